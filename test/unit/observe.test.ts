/**
 * The parsers of observation, with good input, garbage, truncation and oversize: the pcapng
 * block reader (what vde_capture and the tests read from a switch), the capture/start argument,
 * --metrics addresses, vde_capture's filter options, the console answer the capture client
 * reads, extcap interface names and socket lists; and the Prometheus text builder's escaping,
 * the event hub's subscription life cycle, the capture filter's refusals.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseAnswer } from '../../src/capture/client.js';
import { candidateSockets, parseInterface } from '../../src/capture/extcap.js';
import { filterOf } from '../../src/capture/main.js';
import { native } from '../../src/native/index.js';
import { parseCaptureRequest } from '../../src/ports/capture.js';
import { EventHub } from '../../src/ports/events.js';
import { MetricsText, parseMetricsAddr } from '../../src/ports/metrics.js';
import { BT_EPB, BT_IDB, BT_SHB, MAX_PCAPNG_BLOCK_BYTES, parseEpb, parseIdb, PcapngError, PcapngReader } from '../../src/protocol/pcapng.js';

/** A little-endian pcapng block. */
function block(type: number, body: Buffer): Buffer {
  const len = 12 + body.length;
  const h = Buffer.alloc(8);
  h.writeUInt32LE(type, 0);
  h.writeUInt32LE(len, 4);
  const t = Buffer.alloc(4);
  t.writeUInt32LE(len, 0);
  return Buffer.concat([h, body, t]);
}
const SHB = block(BT_SHB, Buffer.from('4d3c2b1a01000000ffffffffffffffff00000000', 'hex'));
const IDB = block(BT_IDB, Buffer.concat([Buffer.from('01000000ffff0000', 'hex'), Buffer.from('0200050070312d3030000000', 'hex'), Buffer.from('0900010009000000', 'hex'), Buffer.alloc(4)]));
function epb(i: number): Buffer {
  const frame = Buffer.alloc(60, i);
  const head = Buffer.alloc(20);
  head.writeUInt32LE(0, 0);
  head.writeUInt32LE(0, 4);
  head.writeUInt32LE(i, 8);
  head.writeUInt32LE(60, 12);
  head.writeUInt32LE(60, 16);
  return block(BT_EPB, Buffer.concat([head, frame, Buffer.from('0200040001000000', 'hex'), Buffer.alloc(4)]));
}

describe('pcapng reader', () => {
  const stream = Buffer.concat([SHB, IDB, epb(1), epb(2)]);

  it('splits a stream into blocks, however it is cut', () => {
    const want = new PcapngReader().push(stream).map((b) => b.type);
    expect(want).toEqual([BT_SHB, BT_IDB, BT_EPB, BT_EPB]);
    for (let cut = 1; cut < stream.length; cut += 7) {
      const r = new PcapngReader();
      const got = [...r.push(stream.subarray(0, cut)), ...r.push(stream.subarray(cut))].map((b) => b.type);
      expect(got).toEqual(want);
      expect(r.pending()).toBe(0);
    }
    const [, idb, e1] = new PcapngReader().push(stream);
    expect(parseIdb(idb)).toEqual(expect.objectContaining({ linkType: 1, name: 'p1-00', unitsPerSecond: 1_000_000_000n }));
    expect(parseEpb(e1)).toEqual(expect.objectContaining({ timestamp: 1n, capturedLength: 60, direction: 1 }));
  });

  it('keeps a truncated block pending and refuses garbage, bad lengths and bad trailers', () => {
    const r = new PcapngReader();
    expect(r.push(stream.subarray(0, stream.length - 3)).length).toBe(3);
    expect(r.pending()).toBeGreaterThan(0);
    expect(() => new PcapngReader().push(Buffer.from('GET / HTTP/1.0\r\n\r\n'))).toThrow(PcapngError);
    const big = Buffer.from(SHB);
    big.writeUInt32LE(MAX_PCAPNG_BLOCK_BYTES + 4, 4);
    expect(() => new PcapngReader().push(big)).toThrow(/bad block length/);
    const odd = Buffer.concat([SHB, epb(1)]);
    odd.writeUInt32LE(71, SHB.length + 4);
    expect(() => new PcapngReader().push(odd)).toThrow(/bad block length 71/);
    const trailer = Buffer.concat([SHB, epb(1)]);
    trailer.writeUInt32LE(0, trailer.length - 4);
    expect(() => new PcapngReader().push(trailer)).toThrow(/trailer/);
    const magic = Buffer.from(SHB);
    magic.writeUInt32LE(0x12345678, 8);
    expect(() => new PcapngReader().push(magic)).toThrow(/byte-order magic/);
  });

  it('random bytes never throw anything but PcapngError, and a bad EPB is refused', () => {
    for (let i = 0; i < 2000; i++) {
      const r = new PcapngReader();
      const junk = i % 2 ? Buffer.concat([SHB, randomBytes(1 + (i % 300))]) : randomBytes(1 + (i % 300));
      try {
        for (const b of r.push(junk)) if (b.type === BT_EPB) parseEpb(b);
      } catch (e) {
        expect(e).toBeInstanceOf(PcapngError);
      }
    }
    const bad = Buffer.from(epb(1));
    bad.writeUInt32LE(5000, 8 + 12); // captured length beyond the block
    expect(() => parseEpb(new PcapngReader().push(Buffer.concat([SHB, bad]))[1])).toThrow(/runs past/);
  });
});

describe('capture/start argument', () => {
  it('takes nothing, port numbers or a JSON object', () => {
    expect(parseCaptureRequest('')).toEqual({ ports: 'all', direction: 'both', snaplen: 262144, filter: '' });
    expect(parseCaptureRequest('1 3 3').ports).toEqual([1, 3, 3]);
    expect(parseCaptureRequest('{"ports":[2,2,5],"direction":"in","snaplen":96,"filter":"vlan 3"}')).toEqual({ ports: [2, 5], direction: 'in', snaplen: 96, filter: 'vlan 3' });
  });
  it('refuses garbage, unknown fields, bad values and oversize filters', () => {
    for (const [arg, msg] of [
      ['{', /not valid JSON/],
      ['[1]', /neither port numbers nor a JSON object/],
      ['{"ports":"some"}', /"ports"/],
      ['{"port":1}', /unknown field "port"/],
      ['{"ports":[]}', /"ports"/],
      ['{"ports":[70000]}', /"ports"/],
      ['{"direction":"up"}', /"direction"/],
      ['{"snaplen":13}', /"snaplen"/],
      [`{"filter":"${'x'.repeat(1025)}"}`, /"filter"/],
      ['1 two', /neither port numbers nor a JSON object/],
    ] as const)
      expect(() => parseCaptureRequest(arg), arg).toThrow(msg);
  });
});

describe('--metrics addresses', () => {
  it('parses tcp and unix forms', () => {
    expect(parseMetricsAddr('tcp:127.0.0.1:9310')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 9310 });
    expect(parseMetricsAddr('tcp:9310')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 9310 });
    expect(parseMetricsAddr('tcp:[::1]:9310')).toEqual({ kind: 'tcp', host: '::1', port: 9310 });
    expect(parseMetricsAddr('tcp:localhost:1')).toEqual({ kind: 'tcp', host: 'localhost', port: 1 });
    expect(parseMetricsAddr('unix:/tmp/m.sock')).toEqual({ kind: 'unix', path: '/tmp/m.sock' });
  });
  it('refuses the rest, naming the option', () => {
    for (const bad of ['', 'tcp:', 'tcp:0', 'tcp:h:70000', 'udp:1', 'unix:', 'http://x', 'tcp:[zz]:1', `tcp:${'9'.repeat(20)}`])
      expect(() => parseMetricsAddr(bad), bad).toThrow(/^--metrics: /);
  });
});

describe('vde_capture filter options', () => {
  it('joins the options into one expression the engine accepts', () => {
    const f = filterOf({ filter: 'tcp or udp', ethertype: 'ip', vlan: '10', mac: '52:54:00:12:34:56', 'ip-proto': 'icmp' });
    expect(f).toBe('(tcp or udp) and ether proto ip and vlan 10 and ether host 52:54:00:12:34:56 and icmp');
    expect(native().checkCaptureFilter(f)).toBeNull();
    expect(filterOf({ 'ip-proto': '132' })).toBe('proto 132');
    expect(filterOf({})).toBe('');
  });
  it('refuses bad values with the option named', () => {
    expect(() => filterOf({ ethertype: 'ipx' })).toThrow(/--ethertype: "ipx"/);
    expect(() => filterOf({ vlan: '4096' })).toThrow(/--vlan: 4096 is out of range/);
    expect(() => filterOf({ mac: '52:54:00:12:34' })).toThrow(/--mac/);
    expect(() => filterOf({ 'ip-proto': '256' })).toThrow(/--ip-proto/);
  });
  it('the engine refuses broken expressions with a message naming the word', () => {
    expect(native().checkCaptureFilter('vlan and (tcp')).toMatch(/expected "\)"/);
    expect(native().checkCaptureFilter('ether proto 0x10000')).toMatch(/ethertype/);
    expect(native().checkCaptureFilter('frob')).toMatch(/unknown word "frob"/);
    expect(native().checkCaptureFilter('tcp $')).toMatch(/unexpected character/);
    expect(native().checkCaptureFilter('('.repeat(40) + 'tcp' + ')'.repeat(40))).toMatch(/nested/);
    expect(native().checkCaptureFilter(Array(100).fill('ip').join(' or '))).toMatch(/too complex/);
    expect(native().checkCaptureFilter('x'.repeat(2000))).toMatch(/longer than/);
  });
});

describe('console answers (capture client)', () => {
  const banner = "VDE switch V.2.3.3\n(C) Virtual Square Team\n\nvde$ ";
  it('finds the status line after the prompt and the bytes after it', () => {
    const full = Buffer.concat([Buffer.from(`${banner}0000 DATA END WITH '.'\n{"session":"c1"}\n.\n1000 Success\n`), SHB]);
    for (let cut = 0; cut < full.length - SHB.length; cut += 5) expect(parseAnswer(full.subarray(0, cut))).toBeNull();
    const a = parseAnswer(full)!;
    expect(a).toEqual(expect.objectContaining({ status: 0, statusText: 'Success', data: ['{"session":"c1"}'] }));
    expect(a.rest).toEqual(SHB);
    expect(parseAnswer(Buffer.from(`${banner}1038 Function not implemented\n`))!.status).toBe(38);
    expect(parseAnswer(randomBytes(4096))).toBeNull();
  });
});

describe('extcap', () => {
  it('interface names carry the socket and an optional port', () => {
    expect(parseInterface('vde:/tmp/sw.mgmt')).toEqual({ socket: '/tmp/sw.mgmt' });
    expect(parseInterface('vde:/tmp/sw.mgmt:12')).toEqual({ socket: '/tmp/sw.mgmt', port: 12 });
    expect(parseInterface('eth0')).toBeNull();
  });
  it('lists the sockets named in the environment first, once each', () => {
    const list = candidateSockets({ VDE_CAPTURE_SOCKETS: '/x/a.mgmt, /x/b.mgmt /x/a.mgmt', HOME: '/nonexistent' });
    expect(list.slice(0, 2)).toEqual(['/x/a.mgmt', '/x/b.mgmt']);
  });
});

describe('metrics text and the event hub', () => {
  it('escapes label values and declares a family once', () => {
    const m = new MetricsText();
    m.family('x_total', 'counter', 'help').family('x_total', 'counter', 'again').sample('x_total', { d: 'a"b\\c\nd' }, 1).sample('x_total', null, Infinity);
    expect(m.text()).toBe('# HELP x_total help\n# TYPE x_total counter\nx_total{d="a\\"b\\\\c\\nd"} 1\nx_total +Inf\n');
  });
  it('tells when the first subscriber comes and the last goes; events carry a time', () => {
    const seen: boolean[] = [];
    const hub = new EventHub((on) => seen.push(on));
    hub.publish('ignored');
    const got: unknown[] = [];
    const off1 = hub.subscribe((e) => got.push(e));
    const off2 = hub.subscribe(() => {});
    hub.publish('port/up', { port: 3 });
    off1();
    off2();
    off2();
    expect(seen).toEqual([true, false]);
    expect(got).toEqual([expect.objectContaining({ type: 'port/up', port: 3, time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) })]);
  });
});
