/**
 * The filter and police stages and protected ports in the in-process engine (test/helpers/
 * harness.ts, fake clock): which frames pass each rule term (MACs, ethertype, VLAN as it crosses
 * the port, IPv4/IPv6 prefixes, protocol, L4 ports and ranges, fragments, IPv6 extension
 * headers, cut headers), first-match order and the per-rule hit counters, ingress and egress
 * (the egress filter sees the 802.1Q edit), rule-text errors that name the rule and the term,
 * the token bucket's rate and burst on the fake clock (long-run rate exact, frames larger than
 * the burst), and protected ports (no frames between two protected ports, flooding included).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { closeHarnesses, frame, harnessWithPorts, type Harness, type HarnessPort } from '../helpers/harness.js';

const BCAST = 'ff:ff:ff:ff:ff:ff';
const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const C = '02:00:00:00:00:0c';

let h: Harness | null = null;
afterEach(() => {
  closeHarnesses();
  h = null;
});

function switchWith(n: number): { h: Harness; p: HarnessPort[] } {
  const r = harnessWithPorts(n);
  h = r.h;
  return r;
}

function macBytes(s: string): Buffer {
  return Buffer.from(s.split(':').map((x) => parseInt(x, 16)));
}

function ipv4Bytes(s: string): Buffer {
  return Buffer.from(s.split('.').map(Number));
}

/** A minimal IPv6 address parser for test frames (full or :: forms). */
function ipv6Bytes(s: string): Buffer {
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const words = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  words.forEach((w, i) => b.writeUInt16BE(parseInt(w, 16), i * 2));
  return b;
}

interface L3 {
  src: string;
  dst: string;
  proto: number;
  sport?: number;
  dport?: number;
  fragOffset?: number;
  vlan?: number;
  /** IPv6 only: extension headers (next-header values) before the upper layer. */
  ext?: number[];
  dmac?: string;
  smac?: string;
}

/** An Ethernet frame carrying IPv4 or IPv6 (by the address form) with an L4 header of 8 bytes. */
function ipFrame(o: L3): Buffer {
  const v6 = o.src.includes(':');
  const l4 = Buffer.alloc(8);
  l4.writeUInt16BE(o.sport ?? 0, 0);
  l4.writeUInt16BE(o.dport ?? 0, 2);
  let ip: Buffer;
  if (!v6) {
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + l4.length, 2);
    ip.writeUInt16BE((o.fragOffset ?? 0) & 0x1fff, 6);
    ip[8] = 64;
    ip[9] = o.proto;
    ipv4Bytes(o.src).copy(ip, 12);
    ipv4Bytes(o.dst).copy(ip, 16);
  } else {
    const exts: Buffer[] = [];
    const chain = [...(o.ext ?? []), o.proto];
    for (let k = 0; k < (o.ext ?? []).length; k++) {
      const e = Buffer.alloc(8);
      e[0] = chain[k + 1];
      if (o.ext![k] === 44) e.writeUInt16BE((o.fragOffset ?? 0) << 3, 2);
      exts.push(e);
    }
    ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip.writeUInt16BE(exts.length * 8 + l4.length, 4);
    ip[6] = chain[0];
    ip[7] = 64;
    ipv6Bytes(o.src).copy(ip, 8);
    ipv6Bytes(o.dst).copy(ip, 24);
    ip = Buffer.concat([ip, ...exts]);
  }
  const et = Buffer.alloc(2);
  et.writeUInt16BE(v6 ? 0x86dd : 0x0800);
  const tag = o.vlan === undefined ? Buffer.alloc(0) : Buffer.from([0x81, 0x00, (o.vlan >> 8) & 0xf, o.vlan & 0xff]);
  return Buffer.concat([macBytes(o.dmac ?? B), macBytes(o.smac ?? A), tag, et, ip, l4]);
}

/** Installs a filter; returns nothing (throws with the native message on a bad rule). */
function filter(port: number, dir: 'in' | 'out', rules: string, dflt: 'allow' | 'deny' = 'allow'): void {
  h!.engine.setStage(port, dir, 'filter', { rules, default: dflt });
}

async function values(port: number, name: string, dir: 'in' | 'out' = 'in'): Promise<Record<string, number>> {
  const s = (await h!.engine.stages(port)).find((x) => x.name === name && x.dir === dir);
  if (!s) throw new Error(`no ${name} stage on port ${port} ${dir}`);
  return s.values;
}

/** Sends each frame from port 1 and returns which ones port 2 received (by index). */
function passing(p: HarnessPort[], frames: Buffer[]): number[] {
  const got: number[] = [];
  frames.forEach((f, i) => {
    h!.send(p[0], f);
    if (h!.recv(p[1]).length) got.push(i);
  });
  return got;
}

describe('filter stage', () => {
  it('matches MACs (with masks), ethertypes and counts hits per rule and for the default', async () => {
    const { h, p } = switchWith(2);
    filter(1, 'in', `deny smac ${C}; deny dmac 01:00:5e:00:00:00/ff:ff:ff:80:00:00; allow type arp; deny type 0x88b5`, 'allow');
    const frames = [
      frame(B, C), // smac C: rule 1
      frame('01:00:5e:01:02:03', A), // IPv4 multicast MAC: rule 2
      frame(BCAST, A, { ethertype: 0x0806 }), // arp: rule 3 (allowed)
      frame(B, A, { ethertype: 0x88b5 }), // rule 4
      frame(B, A, { ethertype: 0x88b6 }), // default allow
      frame('01:00:5e:81:02:03', A, { ethertype: 0x88b6 }), // outside the mask: default
    ];
    expect(passing(p, frames)).toEqual([2, 4, 5]);
    const v = await values(1, 'filter');
    expect(v).toMatchObject({ rules: 4, default: 1, passed: 3, denied: 3, 'hits.1': 1, 'hits.2': 1, 'hits.3': 1, 'hits.4': 1, 'hits.default': 2 });
    expect(h.counters(1).drops.filter).toBe(3);
  });

  it('matches IPv4 prefixes, protocols, ports and ranges; later fragments carry no ports', () => {
    const { p } = switchWith(2);
    filter(1, 'in', 'allow src 10.1.0.0/16 proto tcp dport 22; allow dst 192.0.2.128/25 proto udp sport 5000-5010; allow proto icmp', 'deny');
    const frames = [
      ipFrame({ src: '10.1.2.3', dst: '10.9.9.9', proto: 6, dport: 22 }), // 0 rule 1
      ipFrame({ src: '10.2.2.3', dst: '10.9.9.9', proto: 6, dport: 22 }), // 1 outside /16
      ipFrame({ src: '10.1.2.3', dst: '10.9.9.9', proto: 17, dport: 22 }), // 2 udp, not tcp
      ipFrame({ src: '10.1.2.3', dst: '10.9.9.9', proto: 6, dport: 23 }), // 3 port
      ipFrame({ src: '1.1.1.1', dst: '192.0.2.200', proto: 17, sport: 5005 }), // 4 rule 2
      ipFrame({ src: '1.1.1.1', dst: '192.0.2.100', proto: 17, sport: 5005 }), // 5 outside /25
      ipFrame({ src: '1.1.1.1', dst: '192.0.2.200', proto: 17, sport: 5011 }), // 6 outside the range
      ipFrame({ src: '1.1.1.1', dst: '2.2.2.2', proto: 1 }), // 7 icmp
      ipFrame({ src: '10.1.2.3', dst: '10.9.9.9', proto: 6, dport: 22, fragOffset: 100 }), // 8 later fragment
      ipFrame({ src: '10.1.2.3', dst: '10.9.9.9', proto: 6, dport: 22, vlan: 7 }), // 9 tagged: same L3
      ipFrame({ src: '10.1.2.3', dst: '10.9.9.9', proto: 6, dport: 22 }).subarray(0, 14 + 20 + 2), // 10 L4 cut short
      frame(B, A, { ethertype: 0x0800, payloadBytes: 10 }), // 11 IPv4 header cut short
    ];
    // frame 9 is tagged VLAN 7, which port 1 (untagged VLAN 0) passes as foreign-tagged payload
    expect(passing(p, frames)).toEqual([0, 4, 7, 9]);
  });

  it('matches IPv6 prefixes through extension headers', () => {
    const { p } = switchWith(2);
    filter(1, 'in', 'allow src 2001:db8::/32 proto udp dport 53; allow dst fe80::1 proto icmp6', 'deny');
    const frames = [
      ipFrame({ src: '2001:db8::5', dst: '2001:db8::6', proto: 17, dport: 53 }), // 0
      ipFrame({ src: '2001:db9::5', dst: '2001:db8::6', proto: 17, dport: 53 }), // 1 prefix
      ipFrame({ src: '2001:db8::5', dst: '2001:db8::6', proto: 17, dport: 53, ext: [0, 60] }), // 2 hop-by-hop + dest opts
      ipFrame({ src: '2001:db8::5', dst: '2001:db8::6', proto: 17, dport: 53, ext: [44], fragOffset: 0 }), // 3 first fragment
      ipFrame({ src: '2001:db8::5', dst: '2001:db8::6', proto: 17, dport: 53, ext: [44], fragOffset: 10 }), // 4 later fragment
      ipFrame({ src: '::1', dst: 'fe80::1', proto: 58 }), // 5 icmp6
      ipFrame({ src: '10.0.0.1', dst: '10.0.0.2', proto: 17, dport: 53 }), // 6 IPv4: no IPv6 rule matches
    ];
    expect(passing(p, frames)).toEqual([0, 2, 3, 5]);
  });

  it('matches the VLAN as the frame crosses the port: ingress as received, egress after the 802.1Q edit', async () => {
    const { h, p } = switchWith(3);
    const e = h.engine;
    e.setUntagged(1, 5); // access port of VLAN 5
    e.setUntagged(2, 4095);
    e.setTagged(2, 5, true); // trunk
    e.setUntagged(3, 5); // another access port
    filter(2, 'out', 'deny vlan 5 type 0x88b6; allow vlan 5; deny vlan none', 'deny');
    filter(3, 'out', 'deny vlan 5; allow vlan none', 'deny');
    h.send(p[0], frame(BCAST, A, { ethertype: 0x88b5 }));
    expect(h.recv(p[1])).toHaveLength(1); // tagged on the trunk: rule 2
    expect(h.recv(p[2])).toHaveLength(1); // untagged on the access port: rule 2 of port 3
    h.send(p[0], frame(BCAST, A, { ethertype: 0x88b6 }));
    expect(h.recv(p[1])).toHaveLength(0); // rule 1 (the ethertype after the inserted tag)
    expect(h.recv(p[2])).toHaveLength(1);
    expect(await values(2, 'filter', 'out')).toMatchObject({ 'hits.1': 1, 'hits.2': 1, 'hits.3': 0 });
    expect(await values(3, 'filter', 'out')).toMatchObject({ 'hits.1': 0, 'hits.2': 2 });
    expect(h.counters(2).drops.filter).toBe(1);
    // ingress: a tagged frame from the trunk is VLAN 5 as received
    filter(2, 'in', 'deny vlan 5 dmac ff:ff:ff:ff:ff:ff');
    h.send(p[1], frame(BCAST, B, { vlan: 5 }));
    expect(h.recv(p[0])).toHaveLength(0);
    expect(h.counters(2).drops.filter).toBe(2);
  });

  it('removing the stage lets everything through again; replacing it restarts the counters', async () => {
    const { h, p } = switchWith(2);
    filter(1, 'in', 'deny type 0x88b5');
    expect(passing(p, [frame(B, A)])).toEqual([]);
    filter(1, 'in', 'deny type 0x88b6');
    expect(passing(p, [frame(B, A)])).toEqual([0]);
    expect(await values(1, 'filter')).toMatchObject({ 'hits.1': 0, 'hits.default': 1 });
    h.engine.setStage(1, 'in', 'filter', null);
    expect(await h.engine.stages(1)).toEqual([]);
    expect(passing(p, [frame(B, A, { ethertype: 0x88b6 })])).toEqual([0]);
  });

  it('refuses bad rule text with the rule number, the term and the value', () => {
    switchWith(1);
    const bad: Array<[string, RegExp]> = [
      ['permit all', /rule 1: starts with "permit", not allow or deny/],
      ['allow; deny dport 99999', /rule 2: dport: "99999" is not a port/],
      ['allow src 10.0.0.0/33', /rule 1: src: "10\.0\.0\.0\/33" is not an IPv4 or IPv6 address/],
      ['allow src 1::2::3', /src: "1::2::3"/],
      ['allow smac 02:00:00:00:00', /smac: "02:00:00:00:00" is not a MAC/],
      ['allow type 0x0100', /type: "0x0100" is not an ethertype/],
      ['allow vlan 4096', /vlan: "4096" is not a VLAN id/],
      ['allow proto icmp dport 7', /sport\/dport need a protocol with ports/],
      ['allow src 10.0.0.1 dst ::1', /different address families/],
      ['allow type ipv6 src 10.0.0.1', /type does not match the family/],
      ['allow dport', /"dport" needs a value/],
      ['allow dport 1 dport 2', /dport is given twice/],
      ['allow colour red', /unknown term "colour"/],
      ['allow smac \u0001\u0002', /smac: "\\x01\\x02"/],
      [Array.from({ length: 257 }, () => 'allow').join(';'), /257 rules \(max 256\)/],
      ['allow ' + 'x'.repeat(70000), /bytes long \(max 65536\)/],
    ];
    for (const [text, msg] of bad) expect(() => filter(1, 'in', text), text.slice(0, 60)).toThrow(msg);
    expect(() => h!.engine.setStage(1, 'in', 'filter', { default: 'maybe' })).toThrow(/default: "maybe" is not allow or deny/);
    expect(() => h!.engine.setStage(1, 'in', 'filter', { rulez: 'allow' })).toThrow(/unknown setting "rulez"/);
  });

  it('takes garbage frames and garbage rule text without harm', async () => {
    const { h, p } = switchWith(2);
    filter(1, 'in', 'allow src 10.0.0.0/8 proto tcp dport 1-1000; deny proto udp; allow type ipv6 dst ::/0', 'deny');
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    for (let i = 0; i < 2000; i++) {
      const len = 14 + Math.floor(rnd() * 120);
      const f = Buffer.alloc(len);
      for (let k = 0; k < len; k++) f[k] = Math.floor(rnd() * 256);
      f[0] = 0x02; // unicast destinations, so nothing floods back
      if (i % 3 === 0) f.writeUInt16BE(rnd() < 0.5 ? 0x0800 : 0x86dd, 12);
      if (i % 5 === 0) f.writeUInt16BE(0x8100, 12);
      h.send(p[0], f);
    }
    h.recv(p[1]);
    const v = await values(1, 'filter');
    expect(v.passed + v.denied).toBe(2000);
    for (let i = 0; i < 300; i++) {
      const text = Array.from({ length: Math.floor(rnd() * 60) }, () => 'allow deny src dst 1.2.3.4/ ::/9 :: proto tcp dport 1-2 smac 0:1:2:3:4:5 ;\n\t\u0000'.split(' ')[Math.floor(rnd() * 14)] ?? ' ').join(' ');
      try {
        filter(1, 'in', text);
      } catch (e) {
        expect((e as Error).message).toMatch(/^filter: /);
      }
    }
  });
});

describe('police stage', () => {
  it('passes the burst at once, then the rate, on the fake clock; counts the rest as police', async () => {
    const { h, p } = switchWith(2);
    // 80 kbit/s = 10000 bytes/s, burst 3000 bytes; frames of 1000 bytes
    h.engine.setStage(1, 'in', 'police', { rate: '80k', burst: 3000 });
    const big = frame(B, A, { payloadBytes: 1000 - 14 });
    const sendN = (n: number): number => {
      let got = 0;
      for (let i = 0; i < n; i++) {
        h.send(p[0], big);
        got += h.recv(p[1]).length;
      }
      return got;
    };
    expect(sendN(10)).toBe(3); // the burst
    h.advanceSeconds(0.35); // 3500 bytes earned, capped at the burst (3000)
    expect(sendN(10)).toBe(3);
    let total = 0;
    for (let s = 0; s < 100; s++) {
      h.advanceSeconds(0.1); // 1000 bytes per step
      total += sendN(5);
    }
    expect(total).toBe(100); // exactly the rate: 10 s x 10000 bytes / 1000
    const v = await values(1, 'police');
    expect(v).toMatchObject({ rate: 80000, burst: 3000, passed: 106, dropped: 520 - 106, passedBytes: 106000 });
    expect(h.counters(1).drops.police).toBe(520 - 106);
  });

  it('lets a frame larger than the burst through a full bucket and repays the debt at the rate', () => {
    const { h, p } = switchWith(2);
    h.engine.setStage(1, 'in', 'police', { rate: '8000k', burst: '2k' }); // 1 MB/s, burst 2048
    const jumbo = frame(B, A, { payloadBytes: 9000 - 14 });
    h.send(p[0], jumbo);
    expect(h.recv(p[1])).toHaveLength(1); // a full bucket pays for it
    h.send(p[0], jumbo);
    expect(h.recv(p[1])).toHaveLength(0); // 6952 bytes in debt
    h.advanceSeconds(0.008); // 8000 earned: 1048 now, not full
    h.send(p[0], jumbo);
    expect(h.recv(p[1])).toHaveLength(0);
    h.advanceSeconds(0.001); // 2048: full again
    h.send(p[0], jumbo);
    expect(h.recv(p[1])).toHaveLength(1);
  });

  it('refuses bad settings', () => {
    switchWith(1);
    const e = h!.engine;
    expect(() => e.setStage(1, 'in', 'police', { rate: '1000' , burst: 3000 })).toThrow(/rate: "1000" is not a rate/);
    expect(() => e.setStage(1, 'in', 'police', { rate: '10x', burst: 3000 })).toThrow(/rate: "10x"/);
    expect(() => e.setStage(1, 'in', 'police', { rate: '10m', burst: 10 })).toThrow(/burst: "10" is not a size/);
    expect(() => e.setStage(1, 'in', 'police', { rate: '10m', burst: '2g' })).toThrow(/burst: "2g"/);
    expect(() => e.setStage(1, 'in', 'police', { rate: '10m' })).toThrow(/burst=BYTES is required/);
    expect(() => e.setStage(1, 'in', 'police', { burst: 3000 })).toThrow(/rate=BITS_PER_SECOND is required/);
    expect(() => e.setStage(1, 'in', 'police', { rate: '99999999999999999999999', burst: 3000 })).toThrow(/rate/);
  });
});

describe('protected ports', () => {
  it('protected ports talk to unprotected ones only, for flooded and learned frames', () => {
    const { h, p } = switchWith(3);
    h.engine.setProtected(1, true);
    h.engine.setProtected(2, true);
    // port 3 (unprotected) is heard by both and hears both
    h.send(p[2], frame(BCAST, C));
    expect(h.recv(p[0])).toHaveLength(1);
    expect(h.recv(p[1])).toHaveLength(1);
    // a broadcast from protected port 1 reaches port 3 only
    h.send(p[0], frame(BCAST, A));
    expect(h.recv(p[1])).toHaveLength(0);
    expect(h.recv(p[2])).toHaveLength(1);
    h.send(p[1], frame(BCAST, B));
    expect(h.recv(p[0])).toHaveLength(0);
    expect(h.recv(p[2])).toHaveLength(1);
    // learned unicast: A (port 1) to B (port 2) is dropped and counted, to C passes
    h.send(p[0], frame(B, A));
    expect(h.recv(p[1])).toHaveLength(0);
    expect(h.counters(1).drops.filter).toBe(1);
    h.send(p[0], frame(C, A));
    expect(h.recv(p[2])).toHaveLength(1);
    h.send(p[2], frame(A, C));
    expect(h.recv(p[0])).toHaveLength(1);
    // unprotect port 2: A and B talk again
    h.engine.setProtected(2, false);
    h.send(p[0], frame(B, A));
    expect(h.recv(p[1])).toHaveLength(1);
  });

  it('applies in hub mode too', () => {
    const { h, p } = switchWith(3);
    h.engine.setHub(true);
    h.engine.setProtected(1, true);
    h.engine.setProtected(2, true);
    h.send(p[0], frame(B, A));
    expect(h.recv(p[1])).toHaveLength(0);
    expect(h.recv(p[2])).toHaveLength(1);
  });
});
