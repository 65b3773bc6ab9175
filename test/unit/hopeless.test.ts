// hopelessRequest: the control server refuses a client as soon as the bytes it sent cannot begin
// any valid request (bad magic byte, unsupported version, bad type, wrong address family,
// relative path), while every prefix of a valid v1 or v3 request is still acceptable.
import { describe, expect, it } from 'vitest';
import { encodeRequestV1, encodeRequestV3, hopelessRequest } from '../../src/protocol/handshake.js';

describe('hopelessRequest', () => {
  it('accepts every prefix of valid requests', () => {
    const reqs = [
      encodeRequestV3({ sockPath: '/tmp/sw/.01234-00000', description: 'vde_plug: user=root pid=1' }),
      encodeRequestV3({ type: 1, sockPath: '/x' }),
      encodeRequestV3({ port: 300, sockPath: '/x' }),
      encodeRequestV1({ sockPath: '/tmp/a', description: 'v1' }),
      encodeRequestV1({ type: 1, sockPath: '/tmp/a' }),
    ];
    for (const r of reqs) for (let n = 0; n <= r.length; n++) expect(hopelessRequest(r.subarray(0, n)), `${n} bytes`).toBeNull();
    const abstract = encodeRequestV3({ sockPath: '/x' });
    abstract[14] = 0;
    expect(hopelessRequest(abstract.subarray(0, 15))).toBeNull();
  });

  it('refuses at the first byte that cannot fit', () => {
    expect(hopelessRequest(Buffer.from('G'))).toMatch(/bad magic \(byte 0 is 0x47/);
    expect(hopelessRequest(Buffer.from('GET / HTTP/1.0\r\n'))).toMatch(/bad magic/);
    expect(hopelessRequest(Buffer.from([0xce, 0xfa, 0xed, 0x00]))).toMatch(/byte 3/);
    const v3 = encodeRequestV3({ sockPath: '/x' });
    const at = (i: number, v: number, n = i + 1): Buffer => {
      const b = Buffer.from(v3);
      b[i] = v;
      return b.subarray(0, n);
    };
    expect(hopelessRequest(at(4, 2))).toMatch(/version 2 port/);
    expect(hopelessRequest(at(5, 1))).toMatch(/port, which this switch does not support/);
    expect(hopelessRequest(at(8, 5))).toMatch(/bad request type 5/);
    expect(hopelessRequest(at(12, 2))).toMatch(/family 2 is not AF_UNIX/);
    expect(hopelessRequest(at(14, 0x78))).toMatch(/not absolute/);
  });
});
