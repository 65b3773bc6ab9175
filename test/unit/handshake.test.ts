// Unit tests of the control handshake codec: every layout, every refusal, and fuzzing with
// random, truncated and oversize input (the parser must answer, never throw).
import { describe, expect, it } from 'vitest';
import {
  decodeExt,
  encodeExt,
  encodeRequestV1,
  encodeRequestV3,
  encodeSockaddr,
  EXT_BYTES,
  EXT_F_VNET,
  MAX_REQUEST_BYTES,
  minimumRequestBytes,
  parseReply,
  parseRequest,
  SOCKADDR_UN_BYTES,
} from '../../src/protocol/handshake.js';

describe('parseRequest', () => {
  it('parses the v3 example of PROTOCOL.md byte for byte', () => {
    const hex =
      'cefaedfe' + '03000000' + '00030000' + '0100' + Buffer.from('/tmp/sw/.01234-00000').toString('hex').padEnd(216, '0') + Buffer.from('vde_plug: user=root PID=1234').toString('hex');
    const b = Buffer.from(hex, 'hex');
    expect(b.length).toBe(150);
    const r = parseRequest(b);
    expect(r).toEqual({ ok: true, req: { version: 3, type: 0, port: 3, sockPath: '/tmp/sw/.01234-00000', abstract: false, description: 'vde_plug: user=root PID=1234' } });
    expect(encodeRequestV3({ port: 3, sockPath: '/tmp/sw/.01234-00000', description: 'vde_plug: user=root PID=1234' })).toEqual(b);
  });

  it('forces port 0 for type 1 and reads v1 requests', () => {
    const r = parseRequest(encodeRequestV3({ type: 1, port: 7, sockPath: '/a' }));
    expect(r.ok && r.req.port).toBe(0);
    const v1 = parseRequest(encodeRequestV1({ type: 1, sockPath: '/x/y', description: 'v1client' }));
    expect(v1).toMatchObject({ ok: true, req: { version: 1, type: 1, port: 0, sockPath: '/x/y', description: 'v1client' } });
  });

  it('accepts abstract client addresses and strips control characters from descriptions', () => {
    const b = encodeRequestV3({ sockPath: '/x', description: 'a\nb\tc' });
    b.fill(0, 14, 14 + 108);
    b.write('abstract-name', 15);
    const r = parseRequest(b);
    expect(r).toMatchObject({ ok: true, req: { abstract: true, sockPath: '\0abstract-name', description: 'a b c' } });
  });

  const refusals: Array<[string, Buffer, RegExp]> = [
    ['empty', Buffer.alloc(0), /truncated request \(0 bytes\)/],
    ['bad magic', Buffer.from('0000000003000000', 'hex'), /bad magic 0x00000000/],
    ['version 2', (() => { const b = encodeRequestV3({ sockPath: '/a' }); b.writeUInt32LE(2, 4); return b; })(), /version 2 port/],
    ['type 5', encodeRequestV3({ sockPath: '/a', type: 5 }), /bad request type 5/],
    ['truncated v3', encodeRequestV3({ sockPath: '/a' }).subarray(0, 100), /truncated v3 request \(100 of 122 bytes\)/],
    ['truncated v1', encodeRequestV1({ sockPath: '/a' }).subarray(0, 60), /truncated v1 request/],
    ['oversize', Buffer.concat([encodeRequestV3({ sockPath: '/a' }), Buffer.alloc(200)]), /exceeds 256/],
    ['relative path', encodeRequestV3({ sockPath: 'rel/path' }), /not absolute/],
    ['family 2', (() => { const b = encodeRequestV3({ sockPath: '/a' }); b.writeUInt16LE(2, 12); return b; })(), /family 2/],
    ['unterminated path', (() => { const b = encodeRequestV3({ sockPath: '/a' }); b.fill(0x41, 14, 122); return b; })(), /not NUL-terminated/],
  ];
  for (const [name, buf, re] of refusals) {
    it(`refuses ${name} with a reason`, () => {
      const r = parseRequest(buf);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(re);
    });
  }

  it('never throws on random, truncated or oversize input', () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const good = encodeRequestV3({ sockPath: '/tmp/x', description: 'd' });
    for (let i = 0; i < 5000; i++) {
      let b: Buffer;
      if (i % 3 === 0) b = good.subarray(0, Math.floor(rnd() * good.length));
      else if (i % 3 === 1) {
        b = Buffer.from(good);
        for (let k = 0; k < 4; k++) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
      } else b = Buffer.from(Array.from({ length: Math.floor(rnd() * 400) }, () => Math.floor(rnd() * 256)));
      expect(() => parseRequest(b)).not.toThrow();
      expect(() => minimumRequestBytes(b)).not.toThrow();
    }
    expect(MAX_REQUEST_BYTES).toBe(256);
  });
});

describe('encodeSockaddr', () => {
  it('writes family 1 and a NUL padded path in 110 bytes', () => {
    const b = encodeSockaddr('/tmp/sw/001.6');
    expect(b.length).toBe(SOCKADDR_UN_BYTES);
    expect(b.readUInt16LE(0)).toBe(1);
    expect(b.subarray(2, 15).toString()).toBe('/tmp/sw/001.6');
    expect(b.subarray(15).every((x) => x === 0)).toBe(true);
  });
  it('refuses a path that does not fit', () => {
    expect(() => encodeSockaddr(`/${'x'.repeat(120)}`)).toThrow(/too long/);
  });
});

describe('the vde-ts extension (virtio-net header and 64 KiB segments on the data socket)', () => {
  const ext = { version: 1, flags: EXT_F_VNET, maxFrameBytes: 65536 };
  /** What vde2's switch keeps of a request: the description as a C string from offset 122. */
  const cString = (b: Buffer, off: number): string => {
    const end = b.indexOf(0, off);
    return b.subarray(off, end < 0 ? b.length : end).toString();
  };

  it('lays the block out as documented: "vde-ts", version, flags, 32-bit little-endian frame limit', () => {
    expect(encodeExt(ext).toString('hex')).toBe(Buffer.from('vde-ts').toString('hex') + '0101' + '00000100');
    expect(decodeExt(encodeExt(ext))).toEqual(ext);
  });

  it('offers it after the description\'s NUL, where a vde2 switch (a C string) never looks', () => {
    const b = encodeRequestV3({ port: 2, sockPath: '/tmp/sw/.00001-00000', description: 'vdeplug: user=root pid=1', ext });
    expect(cString(b, 122)).toBe('vdeplug: user=root pid=1');
    expect(b.length).toBe(122 + 24 + 1 + EXT_BYTES);
    const r = parseRequest(b);
    expect(r).toMatchObject({ ok: true, req: { port: 2, description: 'vdeplug: user=root pid=1', ext } });
    // without the extension the request is byte for byte the old one
    expect(encodeRequestV3({ port: 2, sockPath: '/tmp/sw/.00001-00000', description: 'vdeplug: user=root pid=1' })).toEqual(b.subarray(0, 122 + 24));
    expect(parseRequest(b.subarray(0, 122 + 24))).toMatchObject({ ok: true, req: { description: 'vdeplug: user=root pid=1' } });
    expect((parseRequest(b.subarray(0, 122 + 24)) as { req: object }).req).not.toHaveProperty('ext');
  });

  it('keeps the request within vde2\'s 256-byte read by cutting a long description', () => {
    const b = encodeRequestV3({ sockPath: '/a', description: 'd'.repeat(127), ext });
    expect(b.length).toBeLessThan(MAX_REQUEST_BYTES);
    const r = parseRequest(b);
    expect(r.ok && r.req.ext).toEqual(ext);
  });

  it('is ignored when cut, garbled or of version 0: the plain protocol', () => {
    const b = encodeRequestV3({ sockPath: '/a', description: 'x', ext });
    for (let cut = b.length - EXT_BYTES; cut < b.length; cut++) {
      const r = parseRequest(b.subarray(0, cut));
      expect(r.ok && r.req.ext).toBeFalsy();
    }
    const wrongMagic = Buffer.from(b);
    wrongMagic[122 + 2] = 0x56;
    expect((parseRequest(wrongMagic) as { req: { ext?: unknown } }).req.ext).toBeUndefined();
    const v0 = Buffer.from(b);
    v0[122 + 2 + 6] = 0;
    expect((parseRequest(v0) as { req: { ext?: unknown } }).req.ext).toBeUndefined();
  });

  it('is accepted in the reply\'s padding: the path a C string reads is unchanged, a plain reply says no', () => {
    const plain = encodeSockaddr('/tmp/sw/001.6');
    const accepted = encodeSockaddr('/tmp/sw/001.6', ext);
    expect(accepted.length).toBe(SOCKADDR_UN_BYTES);
    expect(cString(accepted, 2)).toBe('/tmp/sw/001.6');
    expect(accepted.subarray(0, 16)).toEqual(plain.subarray(0, 16));
    expect(parseReply(accepted)).toEqual({ path: '/tmp/sw/001.6', ext });
    expect(parseReply(plain)).toEqual({ path: '/tmp/sw/001.6', ext: null });
  });

  it('is left out of the reply when the path leaves no room for it', () => {
    const p = `/${'p'.repeat(100)}`;
    const r = encodeSockaddr(p, ext);
    expect(r).toEqual(encodeSockaddr(p));
    expect(parseReply(r)).toEqual({ path: p, ext: null });
  });

  it('never throws on random, truncated or oversize requests and replies', () => {
    let seed = 777;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const good = encodeRequestV3({ sockPath: '/tmp/x', description: 'd', ext });
    const reply = encodeSockaddr('/tmp/sw/001.6', ext);
    for (let i = 0; i < 5000; i++) {
      const b = Buffer.from(good);
      for (let k = 0; k < 3; k++) b[122 + Math.floor(rnd() * (b.length - 122))] = Math.floor(rnd() * 256);
      expect(() => parseRequest(b.subarray(0, 122 + Math.floor(rnd() * (b.length - 121))))).not.toThrow();
      const r = Buffer.from(reply);
      for (let k = 0; k < 3; k++) r[Math.floor(rnd() * r.length)] = Math.floor(rnd() * 256);
      expect(() => parseReply(r)).not.toThrow();
      expect(() => parseReply(Buffer.concat([r, Buffer.alloc(Math.floor(rnd() * 64))]))).not.toThrow();
    }
  });
});
