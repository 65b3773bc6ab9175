// Unit tests of the endpoint-locator parser (src/plug/vnl.ts): valid locators of every kind, the
// canonical printer and its round trips, the error table (each error names the bad part), the
// file indirection helper, and a seeded fuzz loop checking that nothing but LocatorError escapes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_VX_EXPIRE_SECONDS, DEFAULT_VX_HASH_SIZE_ENTRIES, DEFAULT_VXLAN_PORT, DEFAULT_VXVDE_PORT, KNOWN_SCHEMES,
  type Locator, LocatorError, MAX_LOCATOR_BYTES, formatLocator, parseLocator, resolveIndirection,
} from '../../src/ports/vnl.js';

const VX = { port: DEFAULT_VXLAN_PORT, vni: 1, ttl: 1, hashSize: DEFAULT_VX_HASH_SIZE_ENTRIES, expireSeconds: DEFAULT_VX_EXPIRE_SECONDS };
const VXV = { ...VX, port: DEFAULT_VXVDE_PORT };

const VALID: Array<[string, Locator]> = [
  // vde, with and without scheme (§1.9, §2.3)
  ['/tmp/sw', { kind: 'vde', path: '/tmp/sw' }],
  ['vde:///tmp/sw', { kind: 'vde', path: '/tmp/sw' }],
  ['', { kind: 'vde', path: '' }],
  ['vde://', { kind: 'vde', path: '' }],
  ['VDE:///tmp/sw', { kind: 'vde', path: '/tmp/sw' }],
  ['/tmp/sw[3]', { kind: 'vde', path: '/tmp/sw', port: 3 }],
  ['/tmp/sw[0]', { kind: 'vde', path: '/tmp/sw', port: 0 }],
  ['/tmp/sw[]', { kind: 'vde', path: '/tmp/sw' }],
  ['[5]', { kind: 'vde', path: '', port: 5 }],
  ['relative/sw', { kind: 'vde', path: 'relative/sw' }],
  ['vde:///tmp/sw[3/mode=0660/group=vde]', { kind: 'vde', path: '/tmp/sw', port: 3, mode: 0o660, group: 'vde' }],
  ['vde:///tmp/sw[port=7/m=600]', { kind: 'vde', path: '/tmp/sw', port: 7, mode: 0o600 }],
  ['vde:///tmp/sw[portgroup=12]', { kind: 'vde', path: '/tmp/sw', port: 12 }],
  ['vde:///tmp/sw[uplink]', { kind: 'vde', path: '/tmp/sw', portGroup: 'uplink' }],
  ['vde:///tmp/sw[portgroup=g1/group=1000]', { kind: 'vde', path: '/tmp/sw', portGroup: 'g1', group: '1000' }],
  ['vde:///tmp/sw[3//]', { kind: 'vde', path: '/tmp/sw', port: 3 }],
  ['vde:///tmp/my%20sw', { kind: 'vde', path: '/tmp/my sw' }],
  ["vde:///tmp/'a[b]'", { kind: 'vde', path: '/tmp/a[b]' }],
  ['vde:///tmp/a\\[b[2]', { kind: 'vde', path: '/tmp/a[b', port: 2 }],
  ['vde:///tmp/"x y"[group=\'a/b\']', { kind: 'vde', path: '/tmp/x y', group: 'a/b' }],
  ['vde:///tmp/%C3%A9', { kind: 'vde', path: '/tmp/é' }],
  ['vde:///tmp/100%', { kind: 'vde', path: '/tmp/100%' }],
  ['vde:///tmp/sw]', { kind: 'vde', path: '/tmp/sw]' }],
  // tap
  ['tap://tap0', { kind: 'tap', ifname: 'tap0' }],
  ['tap://vde-tap-15chars', { kind: 'tap', ifname: 'vde-tap-15chars' }],
  ['tap://tap0/vnethdr', { kind: 'tap', ifname: 'tap0', vnetHdr: true }],
  ['tap://tap0/vnethdr=off', { kind: 'tap', ifname: 'tap0' }],
  // udp (§1.10, §2.4), and vde2's scheme-less form
  ['udp://5000->10.0.0.2:5001', { kind: 'udp', srcPort: 5000, dstHost: '10.0.0.2', dstPort: 5001 }],
  ['udp://10.0.0.1:5000->peer.example:5001', { kind: 'udp', srcAddr: '10.0.0.1', srcPort: 5000, dstHost: 'peer.example', dstPort: 5001 }],
  ['udp://:5000->h:1', { kind: 'udp', srcPort: 5000, dstHost: 'h', dstPort: 1 }],
  ['udp://[::1]:5000->[::1]:5001', { kind: 'udp', srcAddr: '::1', srcPort: 5000, dstHost: '::1', dstPort: 5001 }],
  ['udp://::1:5000->::1:5001', { kind: 'udp', srcAddr: '::1', srcPort: 5000, dstHost: '::1', dstPort: 5001 }],
  ['udp://5000->[fe80::1%eth0]:5001', { kind: 'udp', srcPort: 5000, dstHost: 'fe80::1%eth0', dstPort: 5001 }],
  ['5000->localhost:6000', { kind: 'udp', srcPort: 5000, dstHost: 'localhost', dstPort: 6000 }],
  // vxlan / vxvde (§2.4, §2.5)
  ['vxlan://', { kind: 'vxlan', group: '239.0.0.1', family: 4, ...VX }],
  ['vxlan://234.0.0.1/vni=42', { kind: 'vxlan', group: '234.0.0.1', family: 4, ...VX, vni: 42 }],
  ['vxlan:///v6', { kind: 'vxlan', group: 'ff05:56de::1', family: 6, ...VX }],
  ['vxlan:///v4', { kind: 'vxlan', group: '239.0.0.1', family: 4, ...VX }],
  ['vxlan://ff02::1234/p=5000/t=3', { kind: 'vxlan', group: 'ff02::1234', family: 6, ...VX, port: 5000, ttl: 3 }],
  ['vxlan://[ff02::9]', { kind: 'vxlan', group: 'ff02::9', family: 6, ...VX }],
  ['vxlan://239.1.1.1/vni=0/rcvbuf=256k/hashsize=64/expiretime=30/if=eth0', {
    kind: 'vxlan', group: '239.1.1.1', family: 4, ...VX, vni: 0, rcvbufBytes: 262144, hashSize: 64, expireSeconds: 30, ifname: 'eth0',
  }],
  ['vxlan://239.1.1.1/vni=16777215/rcvbuf=1000', { kind: 'vxlan', group: '239.1.1.1', family: 4, ...VX, vni: 16777215, rcvbufBytes: 1000 }],
  // unicast vxlan: a static peer list
  ['vxlan://10.0.0.1', { kind: 'vxlan', group: '', family: 4, ...VX, peers: [{ host: '10.0.0.1' }] }],
  ['vxlan://10.0.0.2,10.0.0.3:4790/vni=42', { kind: 'vxlan', group: '', family: 4, ...VX, vni: 42, peers: [{ host: '10.0.0.2' }, { host: '10.0.0.3', port: 4790 }] }],
  ['vxlan://[2001:db8::2]:4790,2001:db8::3/port=5000/local=2001:db8::1', {
    kind: 'vxlan', group: '', family: 6, ...VX, port: 5000, local: '2001:db8::1', peers: [{ host: '2001:db8::2', port: 4790 }, { host: '2001:db8::3' }],
  }],
  ['vxlan://example.org', { kind: 'vxlan', group: '', family: 4, ...VX, peers: [{ host: 'example.org' }] }],
  ['vxlan://h1.example,h2.example/v6', { kind: 'vxlan', group: '', family: 6, ...VX, peers: [{ host: 'h1.example' }, { host: 'h2.example' }] }],
  ["vxlan:///vni=9/peers='/etc/vde/peers'", { kind: 'vxlan', group: '', family: 4, ...VX, vni: 9, peersFile: '/etc/vde/peers' }],
  ['vxlan:///v6/pe=peers.txt/rcvbuf=1k/hashsize=8/expiretime=9', { kind: 'vxlan', group: '', family: 6, ...VX, peersFile: 'peers.txt', rcvbufBytes: 1024, hashSize: 8, expireSeconds: 9 }],
  ['vxvde://', { kind: 'vxvde', group: '239.0.0.1', family: 4, ...VXV }],
  ['vxvde://239.1.2.3', { kind: 'vxvde', group: '239.1.2.3', family: 4, ...VXV }],
  ['vxvde:///v6/vni=7', { kind: 'vxvde', group: 'ff05:56de::1', family: 6, ...VXV, vni: 7 }],
  ['vxvde:///vni=users', { kind: 'vxvde', group: '239.0.0.1', family: 4, ...VXV, vniGroup: 'users' }],
  ['vxvde:///vni', { kind: 'vxvde', group: '239.0.0.1', family: 4, ...VXV, vniGroup: '' }],
  ['vxvde:///grp=1000', { kind: 'vxvde', group: '239.0.0.1', family: 4, ...VXV, grp: '1000', vni: 1000 }],
  ['vxvde:///grp=kvm', { kind: 'vxvde', group: '239.0.0.1', family: 4, ...VXV, grp: 'kvm', vniGroup: 'kvm' }],
  ['vxvde:///grp=kvm/vni=3', { kind: 'vxvde', group: '239.0.0.1', family: 4, ...VXV, grp: 'kvm', vni: 3 }],
  ['vxvde://239.9.9.9/bind=10.1.2.3/port=9999', { kind: 'vxvde', group: '239.9.9.9', family: 4, ...VXV, bind: '10.1.2.3', port: 9999 }],
  // ptp, cmd, null, stdio
  ['ptp:///tmp/p2p', { kind: 'ptp', path: '/tmp/p2p' }],
  ['ptp://rel', { kind: 'ptp', path: 'rel' }],
  ['cmd://vde_plug /tmp/sw', { kind: 'cmd', argv: ['vde_plug', '/tmp/sw'] }],
  ["cmd://ssh -x host 'vde_plug /tmp/sw[3]'", { kind: 'cmd', argv: ['ssh', '-x', 'host', 'vde_plug /tmp/sw[3]'] }],
  ['cmd://a "b \\"c\\" d" e\\ f \'\' g', { kind: 'cmd', argv: ['a', 'b "c" d', 'e f', '', 'g'] }],
  ['cmd://  spaced   out  ', { kind: 'cmd', argv: ['spaced', 'out'] }],
  ['cmd://printf %20s', { kind: 'cmd', argv: ['printf', '%20s'] }],
  ['null://', { kind: 'null' }],
  ['stdio://', { kind: 'stdio' }],
  // slirp (raw options, keys expanded by prefix, aliases folded)
  ['slirp://', { kind: 'slirp', options: {} }],
  // passt (passt's long options passed through, prefixes expanded, flags on/off)
  ['passt://', { kind: 'passt', options: {} }],
  ['passt:///t=8080:80/mtu=65520/no-dhcpv6', { kind: 'passt', options: { 'tcp-ports': '8080:80', mtu: '65520', 'no-dhcpv6': '' } }],
  ["passt:///address=10.0.2.15,fd00::15/tcp-ports='127.0.0.1/8080'/no-ra=off", { kind: 'passt', options: { address: '10.0.2.15,fd00::15', 'tcp-ports': '127.0.0.1/8080' } }],
  ['slirp:///tcpfwd=8080:10.0.2.15:80', { kind: 'slirp', options: { tcpfwd: '8080:10.0.2.15:80' } }],
  ['slirp:///tcpfwd=8080:10.0.2.15:80/dhcp', { kind: 'slirp', options: { tcpfwd: '8080:10.0.2.15:80', dhcp: '' } }],
  ["slirp:///addr='10.1.0.2/16'/v4/tftp_p='/srv/tftp'/verbose", { kind: 'slirp', options: { host: '10.1.0.2/16', v4: '', tftp_path: '/srv/tftp', verbose: '' } }],
  ['slirp:///addr6=fd00::2/vdnssearch=a.b,c.d', { kind: 'slirp', options: { host6: 'fd00::2', vdnssearch: 'a.b,c.d' } }],
  // stream (QEMU -netdev stream/socket framing by default)
  ['stream://unix:/tmp/q.sock', { kind: 'stream', transport: 'unix', role: 'client', path: '/tmp/q.sock', framing: 4 }],
  ['stream://unix:/tmp/q.sock[server]', { kind: 'stream', transport: 'unix', role: 'server', path: '/tmp/q.sock', framing: 4 }],
  ['stream://unix:/tmp/q.sock[listen/framing=2]', { kind: 'stream', transport: 'unix', role: 'server', path: '/tmp/q.sock', framing: 2 }],
  ['stream://unix:/tmp/q.sock[f=4]', { kind: 'stream', transport: 'unix', role: 'client', path: '/tmp/q.sock', framing: 4 }],
  ["stream://unix:'/tmp/a[1].sock'", { kind: 'stream', transport: 'unix', role: 'client', path: '/tmp/a[1].sock', framing: 4 }],
  ['stream://tcp:127.0.0.1:1234', { kind: 'stream', transport: 'tcp', role: 'client', host: '127.0.0.1', port: 1234, framing: 4 }],
  ['stream://tcp::1234[server]', { kind: 'stream', transport: 'tcp', role: 'server', port: 1234, framing: 4 }],
  ['stream://tcp:[::1]:1234[server/framing=2]', { kind: 'stream', transport: 'tcp', role: 'server', host: '::1', port: 1234, framing: 2 }],
  ['stream://TCP:qemu-host:1234', { kind: 'stream', transport: 'tcp', role: 'client', host: 'qemu-host', port: 1234, framing: 4 }],
  // dgram (QEMU -netdev dgram: raw frames)
  ['dgram://unix:/tmp/sw+->/tmp/sw', { kind: 'dgram', transport: 'unix', localPath: '/tmp/sw+', remotePath: '/tmp/sw' }],
  ['dgram://unix:/tmp/a->', { kind: 'dgram', transport: 'unix', localPath: '/tmp/a' }],
  ['dgram://unix:->/tmp/b', { kind: 'dgram', transport: 'unix', remotePath: '/tmp/b' }],
  ["dgram://unix:'/tmp/x->y'->/tmp/z", { kind: 'dgram', transport: 'unix', localPath: '/tmp/x->y', remotePath: '/tmp/z' }],
  ['dgram://udp:5000->10.0.0.2:5001', { kind: 'dgram', transport: 'udp', localPort: 5000, remoteHost: '10.0.0.2', remotePort: 5001 }],
  ['dgram://udp:10.0.0.1:5000->10.0.0.2:5001', { kind: 'dgram', transport: 'udp', localHost: '10.0.0.1', localPort: 5000, remoteHost: '10.0.0.2', remotePort: 5001 }],
  ['dgram://udp:->230.0.0.1:1234', { kind: 'dgram', transport: 'udp', remoteHost: '230.0.0.1', remotePort: 1234 }],
  ['dgram://udp:[::1]:5000->', { kind: 'dgram', transport: 'udp', localHost: '::1', localPort: 5000 }],
  // vdeplug4's process-less nodes, seqpacket and vlan
  ['switch://', { kind: 'switch', path: '' }],
  ['switch:///tmp/node[mode=0660/hashsize=1024/expiretime=30/hashseed=7]', { kind: 'switch', path: '/tmp/node', mode: 0o660, hashSize: 1024, expireSeconds: 30, hashSeed: 7 }],
  ['hub:///tmp/hub[grp=kvm/dirmode=02770]', { kind: 'hub', path: '/tmp/hub', grp: 'kvm', dirmode: 0o2770 }],
  ['multi:///tmp/vm1', { kind: 'multi', path: '/tmp/vm1' }],
  ['seqpacket://7', { kind: 'seqpacket', fd: 7 }],
  ['seqpacket://0x10', { kind: 'seqpacket', fd: 16 }],
  ['vlan://3{tap://mytap}', { kind: 'vlan', untagged: 3, inner: { kind: 'tap', ifname: 'mytap' } }],
  ['vlan://3[untag=4/trunk/tag=10:11-12:12-11]{vde:///tmp/myswitch}', {
    kind: 'vlan', untagged: 3, untag: 4, tags: [{ vm: 10, net: 10 }, { vm: 11, net: 12 }, { vm: 12, net: 11 }], trunk: true, inner: { kind: 'vde', path: '/tmp/myswitch' },
  }],
  ['vlan://4{vlan://5/qinq{vxvde://234.1.2.3}}', {
    kind: 'vlan', untagged: 4, inner: { kind: 'vlan', untagged: 5, qinq: true, inner: { kind: 'vxvde', group: '234.1.2.3', family: 4, port: 14789, vni: 1, ttl: 1, hashSize: 1024, expireSeconds: 128 } },
  }],
  // crypt
  ['crypt:///etc/vde/k{udp://5000->192.0.2.7:5000}', { kind: 'crypt', keyFile: '/etc/vde/k', inner: { kind: 'udp', srcPort: 5000, dstHost: '192.0.2.7', dstPort: 5000 } }],
  ['crypt://k[pass/kid=3/cipher=AES-256-GCM/rekey=30]{stdio://}', { kind: 'crypt', keyFile: 'k', passphrase: true, kid: 3, cipher: 'aes-256-gcm', rekeySeconds: 30, inner: { kind: 'stdio' } }],
  ['crypt:///tmp/my%20key[c=chacha20-poly1305]{stream://tcp:host:7000[server]}', {
    kind: 'crypt', keyFile: '/tmp/my key', cipher: 'chacha20-poly1305', inner: { kind: 'stream', transport: 'tcp', role: 'server', host: 'host', port: 7000, framing: 4 },
  }],
];

describe('parseLocator: valid locators', () => {
  it.each(VALID)('%s', (s, expected) => {
    expect(parseLocator(s)).toStrictEqual(expected);
  });
  it('covers every scheme', () => {
    const kinds = new Set(VALID.map(([, l]) => l.kind));
    for (const k of KNOWN_SCHEMES) expect(kinds.has(k)).toBe(true);
  });
  it('accepts a locator of exactly MAX_LOCATOR_BYTES', () => {
    const s = `/${'x'.repeat(MAX_LOCATOR_BYTES - 1)}`;
    expect(parseLocator(s)).toStrictEqual({ kind: 'vde', path: s });
  });
});

describe('formatLocator', () => {
  it.each(VALID)('round-trips %s', (s) => {
    const l = parseLocator(s);
    const f = formatLocator(l);
    expect(parseLocator(f)).toStrictEqual(l);
    expect(formatLocator(parseLocator(f))).toBe(f);
  });
  it('prints canonical forms', () => {
    const canon: Array<[string, string]> = [
      ['/tmp/sw', 'vde:///tmp/sw'],
      ['vde:///tmp/sw[3/mode=0660/group=vde]', 'vde:///tmp/sw[3/group=vde/mode=0660]'],
      ['/tmp/sw[uplink]', 'vde:///tmp/sw[portgroup=uplink]'],
      ['vde:///tmp/my%20sw[group=a\\/b]', "vde:///tmp/my sw[group='a/b']"],
      ['vde:///tmp/%27x[0]', "vde:///tmp/\\'x[0]"],
      ["vde:///tmp/it\\'s\\[x[0]", "vde:///tmp/it\\'s\\[x[0]"],
      ['vxlan://234.0.0.1/vni=42', 'vxlan://234.0.0.1/vni=42'],
      ['vxlan:///v6/port=4789', 'vxlan://ff05:56de::1'],
      ['slirp:///tcpfwd=8080:10.0.2.15:80', 'slirp:///tcpfwd=8080:10.0.2.15:80'],
      ['udp://::1:5000->::1:5001', 'udp://[::1]:5000->[::1]:5001'],
      ['cmd://a "b c" d', "cmd://a 'b c' d"],
      ["cmd://it\\'s", "cmd://'it'\\''s'"],
      ['stream://unix:/tmp/q.sock[listen/framing=4]', 'stream://unix:/tmp/q.sock[server]'],
      ['stream://tcp::1234[s/f=2]', 'stream://tcp::1234[server/framing=2]'],
      ['dgram://unix:/tmp/a->/tmp/b', 'dgram://unix:/tmp/a->/tmp/b'],
      ["dgram://unix:'/tmp/x->y'->/tmp/z", "dgram://unix:'/tmp/x->y'->/tmp/z"],
    ];
    for (const [s, f] of canon) expect(formatLocator(parseLocator(s)), s).toBe(f);
  });
  it('round-trips hand-built locators with awkward strings', () => {
    const odd = ["a'b", 'x"y', 'p%41q', 'back\\slash', 'sp ace', '[br]/sl', 'é-ü', 'ends-', '>gt'];
    for (const p of odd) {
      const ls: Locator[] = [
        { kind: 'vde', path: `/tmp/${p}`, portGroup: `g${p}`, group: p },
        { kind: 'ptp', path: `/tmp/${p}` },
        { kind: 'cmd', argv: [p, '', p + p] },
        { kind: 'stream', transport: 'unix', role: 'server', path: `/tmp/${p}`, framing: 2 },
        { kind: 'dgram', transport: 'unix', localPath: `/tmp/${p}`, remotePath: `/tmp/${p}2` },
        { kind: 'slirp', options: { tftp_path: `/srv/${p}`, verbose: '' } },
      ];
      for (const l of ls) expect(parseLocator(formatLocator(l)), formatLocator(l)).toStrictEqual(l);
    }
  });
});

const ERRORS: Array<[string, RegExp, string?]> = [
  ['udp://5000->host', /^udp:\/\/5000->host: destination "host" needs a port \(HOST:PORT\)$/, 'host'],
  ['foo://x', /unknown scheme "foo" \(known: vde, tap, udp, vxlan, vxvde, ptp, cmd, null, slirp, stream, dgram, stdio, switch, hub, multi, seqpacket, vlan, crypt, passt\)/, 'foo'],
  ['crypt://k', /crypt:\/\/ needs the nested locator in braces/],
  ['crypt://k{}', /nested locator in \{\.\.\.\} is empty/, '{}'],
  ['crypt://{udp://1->h:2}', /crypt:\/\/ needs a key file/],
  ['crypt://k[cipher=des]{stdio://}', /cipher: "des" is not chacha20-poly1305 or aes-256-gcm/, 'des'],
  ['crypt://k[kid=3]{stdio://}', /kid= applies to a passphrase/, 'kid'],
  ['crypt://k[pass/kid=256]{stdio://}', /kid: 256 is out of range 0\.\.255/],
  ['crypt://k[rekey=0]{stdio://}', /rekey: 0 is out of range 1\.\.86400/],
  ['crypt://k[bogus]{stdio://}', /unknown key "bogus" \(known: pass, passphrase, kid, cipher, rekey\)/, 'bogus'],
  ['crypt://k{foo://}', /nested locator: unknown scheme "foo"/],
  ['switch:///tmp/n[bogus=1]', /unknown key "bogus" \(known: mode, dirmode, grp, hashsize, expiretime, hashseed\)/, 'bogus'],
  ['hub:///tmp/n[hashsize=4]', /unknown key "hashsize" \(known: mode, dirmode, grp\)/, 'hashsize'],
  ['switch:///tmp/n[mode=999]', /mode: "999" is not an octal mode/, '999'],
  ['seqpacket://x', /seqpacket:\/\/ needs the number of an open SOCK_SEQPACKET file descriptor/, 'x'],
  ['seqpacket://', /seqpacket:\/\/ needs the number/, ''],
  ['vlan://3', /vlan:\/\/ needs the nested locator in braces/, '3'],
  ['vlan://3{}', /nested locator in \{\.\.\.\} is empty/, '{}'],
  ['vlan://4095{null://}', /untagged VLAN: 4095 is out of range 0\.\.4094/, '4095'],
  ['vlan://3[tag=5-x]{null://}', /tag: "5-x" is not VLAN or VLAN-VLAN/, '5-x'],
  ['vlan://3{foo://}', /nested locator: unknown scheme "foo"/, 'foo://'],
  ['://x', /unknown scheme ""/, ''],
  ['vde:///tmp/sw[99999999999]', /port: 99999999999 is out of range 0\.\.65535/, '99999999999'],
  ['/tmp/sw[65536]', /port: 65536 is out of range 0\.\.65535/, '65536'],
  ['vxlan://239.0.0.1/vni=abc', /vni: "abc" is not a number/, 'abc'],
  ['vxlan://x/zzz=1', /unknown key "zzz" \(known: port, vni, ttl, rcvbuf, v6, v4, hashsize, expiretime, if, local, peers\)/, 'zzz'],
  ['vxlan://239.0.0.1/vni=16777216', /vni: 16777216 is out of range 0\.\.16777215/],
  ['vxlan://239.0.0.1/port=0', /port: 0 is out of range 1\.\.65535/, '0'],
  ['vxlan://239.0.0.1/port', /port: needs a value \(port=\.\.\.\)/],
  ['vxlan://239.0.0.1/ttl=256', /ttl: 256 is out of range 0\.\.255/],
  ['vxlan://239.0.0.1/v6=1', /v6: is a flag and takes no value/],
  ['vxlan://239.0.0.1/v6', /v6 given but group "239.0.0.1" is an IPv4 address/],
  ['vxlan://10.0.0.1,239.1.1.1', /peer "239\.1\.1\.1" is a multicast address/, '239.1.1.1'],
  ['vxlan://10.0.0.1,::2', /peers of both IPv4 and IPv6/],
  ['vxlan://10.0.0.1/ttl=3', /ttl= applies to a multicast group, not to unicast peers/, 'ttl'],
  ['vxlan://10.0.0.1/if=eth0', /if= applies to a multicast group/, 'if'],
  ['vxlan://10.0.0.1/v6', /the peers are IPv4 addresses/, 'v6'],
  ['vxlan://10.0.0.1/local=::1', /local: "::1" is IPv6 but the peers are IPv4/, '::1'],
  ['vxlan://10.0.0.1/local=nowhere', /local: "nowhere" is not an IPv4\/IPv6 address/, 'nowhere'],
  ['vxlan://239.1.1.1/local=10.0.0.1', /local= applies to unicast peers/, 'local'],
  ['vxlan://10.0.0.1:0', /peer port: 0 is out of range 1\.\.65535/],
  ['vxlan://10.0.0.1,,10.0.0.2', /an empty peer/],
  ['vxlan://[10.0.0.1]', /peer "\[10\.0\.0\.1\]" is not an IPv6 address in brackets/],
  ['vxlan://bad_host!', /peer "bad_host!" is not a valid host name/],
  ['vxlan://239.0.0.1/rcvbuf=lots', /rcvbuf: "lots" is not a size in bytes/],
  ['vxlan://239.0.0.1/rcvbuf=4g', /rcvbuf: 4g is out of range/],
  ['vxlan://239.0.0.1/if=averyveryverylongifname', /if: "averyveryverylongifname" is 23 bytes long \(max 15\)/],
  ['vxlan://239.0.0.1/port=1/port=2', /port: given more than once/],
  ['vxvde://239.0.0.1/bind=::1', /bind: "::1" is IPv6 but the group "239.0.0.1" is IPv4/],
  ['vxvde://239.0.0.1/vni=a b', /vni: "a b" is neither a number nor a group name/],
  ['vxvde://239.0.0.1/bogus', /unknown key "bogus" \(known: port, vni, grp, ttl, rcvbuf, v6, v4, hashsize, expiretime, if, bind\)/, 'bogus'],
  ['vde:///tmp/sw[mode=999]', /mode: "999" is not an octal mode \(e\.g\. 0660\)/, '999'],
  ['vde:///tmp/sw[mode=17777]', /mode: "17777" is not an octal mode/],
  ['vde:///tmp/sw[mode=]', /mode: needs a value/],
  ['vde:///tmp/sw[g]', /"g" abbreviates the key "group", which needs a value/, 'g'],
  ['vde:///tmp/sw[3x]', /port: "3x" is not a number/, '3x'],
  ['vde:///tmp/sw[-1]', /port: "-1" is not a number/],
  ['vde:///tmp/sw[3/4]', /port: given more than once/],
  ['vde:///tmp/sw[zzz=1]', /unknown key "zzz" \(known: port, portgroup, group, mode\)/, 'zzz'],
  ['vde:///tmp/sw[=1]', /option "=1" has an empty key/],
  ['vde:///tmp/sw[3', /missing "\]" after "\[3"/],
  ['vde:///tmp/sw[3]x', /unexpected "x" after "\]"/, 'x'],
  ["vde:///tmp/'sw", /unterminated ' quote/],
  ['vde:///tmp/"sw', /unterminated " quote/],
  ['vde:///tmp/sw\\', /dangling "\\" at the end/],
  ['vde:///tmp/%00', /path: contains a NUL byte/, '%00'],
  ['vde:///tmp/%ff', /path: %-escapes do not form valid UTF-8/],
  ['/tmp/a\0b', /contains a NUL byte at offset 6/],
  ['/tmp/\uD800', /unpaired UTF-16 surrogate/],
  [`/${'x'.repeat(MAX_LOCATOR_BYTES)}`, /locator is 4097 bytes long \(max 4096\)/],
  [`/${'é'.repeat(2100)}`, /locator is 4201 bytes long \(max 4096\)/],
  ['tap://', /tap:\/\/ needs an interface name \(tap:\/\/IFNAME\)/],
  ['tap://averyveryverylongname', /interface name "averyveryverylongname" is 21 bytes long \(max 15\)/, 'averyveryverylongname'],
  ['tap://tap 0', /interface name "tap 0" contains " "/],
  ['tap://tap0:1', /interface name "tap0:1" contains ":"/],
  ['tap://tap0/vnethdr=maybe', /vnethdr: "maybe" is not on\/off/],
  ['tap://tap0/multiqueue', /unknown key "multiqueue" \(known: vnethdr\)/],
  ['udp://5000', /udp needs \[SRCADDR:\]SRCPORT->DSTHOST:DSTPORT/],
  ['udp://->h:1', /needs a source port before "->"/],
  ['udp://5000->', /needs a destination after "->"/],
  ['udp://0->h:1', /source port: 0 is out of range 1\.\.65535/, '0'],
  ['udp://5000->h:65536', /destination port: 65536 is out of range 1\.\.65535/],
  ['udp://5000->h:http', /destination port: "http" is not a number/],
  ['udp://5000->:6000', /destination ":6000" needs a host \(HOST:PORT\)/],
  ['udp://5000->[::1]', /destination "\[::1\]" needs a port/],
  ['udp://5000->::1', /write IPv6 addresses in brackets/],
  ['udp://5000->999.1.1.1:5', /destination host "999.1.1.1" is not a valid IPv4 address/],
  ['udp://5000->bad_host!:5', /destination host "bad_host!" is not a valid host name or address/],
  ['ptp://', /ptp:\/\/ needs a path \(ptp:\/\/PATH\)/],
  [`ptp:///${'p'.repeat(106)}`, /path ".*" is 107 bytes long \(a unix socket path holds at most 106\)/],
  ['cmd://', /cmd:\/\/ needs a command \(cmd:\/\/COMMAND ARGS\)/],
  ['cmd://   ', /cmd:\/\/ needs a command/],
  ["cmd://'' arg", /the command name is empty/],
  ["cmd://echo 'oops", /unterminated ' quote in command/],
  ['cmd://echo "oops', /unterminated " quote in command/],
  ['null://x', /null:\/\/ takes no argument, got "x"/, 'x'],
  ['stdio://x', /stdio:\/\/ takes no argument/],
  ['slirp://10.0.2.2', /slirp:\/\/ takes no address, only options/],
  ['passt://10.0.2.2', /passt:\/\/ takes no address, only options/],
  ['passt:///bogus=1', /unknown key "bogus"/],
  ['passt:///mtu', /mtu: needs a value/],
  ['slirp:///nonsense=1', /unknown key "nonsense" \(known: restricted, v4, v6, host, addr,/, 'nonsense'],
  ['slirp:///addr=10.0.2.2/24', /unknown key "24" .*a "\/" inside a value must be quoted/],
  ['slirp:///tcpfwd=1:2:3/tcpfwd=4:5:6', /tcpfwd: given more than once \(combine forwardings with commas\)/],
  ['slirp:///host=1/addr=2', /host: given more than once/],
  ['stream://', /stream:\/\/ needs a transport unix: or tcp:/],
  ['stream:///tmp/q.sock', /needs a transport unix: or tcp: .*got "\/tmp\/q.sock"/],
  ['stream://unix:', /stream:\/\/unix: needs a path/],
  ['stream://unix:[server]', /stream:\/\/unix: needs a path/],
  [`stream://unix:/${'s'.repeat(107)}`, /is 108 bytes long \(a unix socket path holds at most 107\)/],
  ['stream://unix:/tmp/q[framing=3]', /framing: "3" must be 4 \(QEMU, 4-byte length\) or 2 \(VDE, 2-byte length\)/, '3'],
  ['stream://unix:/tmp/q[server=perhaps]', /server: "perhaps" is not on\/off/],
  ['stream://unix:/tmp/q[server/listen]', /server: given more than once/],
  ['stream://unix:/tmp/q[tls]', /unknown key "tls" \(known: server, listen, framing\)/],
  ['stream://tcp:', /stream:\/\/tcp: needs HOST:PORT/],
  ['stream://tcp::1234', /address ":1234" needs a host \(HOST:PORT\)/],
  ['stream://tcp:host', /address "host" needs a port \(HOST:PORT\)/],
  ['stream://tcp:1234[server]', /address "1234" needs a port \(\[HOST\]:PORT\)/],
  ['stream://tcp:h:0', /address port: 0 is out of range 1\.\.65535/],
  ['stream://tcp:[::1]:80[x', /missing "\]"/],
  ['dgram://unix:/tmp/a', /dgram:\/\/unix: needs LOCAL->REMOTE/],
  ['dgram://unix:->', /needs a local or a remote path/],
  ['dgram://unix:/tmp/a->/tmp/a', /local and remote path are both "\/tmp\/a"/],
  ['dgram://udp:5000', /dgram:\/\/udp: needs \[LADDR:\]LPORT->RHOST:RPORT/],
  ['dgram://udp:5000->h', /remote "h" needs a port \(RHOST:RPORT\)/],
  ['dgram://udp:99999->h:1', /local port: 99999 is out of range/],
  ['dgram://tcp:1->2', /dgram:\/\/ needs a transport unix: or udp:/, 'tcp'],
];

describe('parseLocator: errors name the bad part', () => {
  it.each(ERRORS)('%s', (s, re, part) => {
    let err: unknown;
    try {
      parseLocator(s);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LocatorError);
    const le = err as LocatorError;
    expect(le.message).toMatch(re);
    expect(le.locator).toBe(s);
    expect(le.message.startsWith(`${s.length > 120 ? s.slice(0, 10) : s.includes('\0') ? '"' : s}`)).toBe(true);
    if (part !== undefined) expect(le.part).toBe(part);
  });
  it('rejects non-strings with a LocatorError', () => {
    expect(() => parseLocator(42 as unknown as string)).toThrow(LocatorError);
  });
  it('shortens very long locators in messages', () => {
    try {
      parseLocator(`foo://${'x'.repeat(5000)}`);
    } catch (e) {
      expect((e as Error).message.length).toBeLessThan(400);
    }
  });
});

describe('resolveIndirection', () => {
  const files: Record<string, string> = {
    '/f/nl': 'vxvde://239.1.2.3\nsecond line\n',
    '/f/nonl': 'vde:///tmp/sw',
    '/f/crlf': 'tap://tap0\r\n',
    '/f/empty': '',
    '/f/blank': '\n',
  };
  const reader = (p: string): string | null => files[p] ?? null;
  it('reads the first line without its newline', () => expect(resolveIndirection('/f/nl', reader)).toBe('vxvde://239.1.2.3'));
  it('keeps a last character that is not a newline', () => expect(resolveIndirection('/f/nonl', reader)).toBe('vde:///tmp/sw'));
  it('strips CRLF', () => expect(resolveIndirection('/f/crlf', reader)).toBe('tap://tap0'));
  it('turns an empty file or first line into the default locator', () => {
    expect(resolveIndirection('/f/empty', reader)).toBe('');
    expect(resolveIndirection('/f/blank', reader)).toBe('');
  });
  it('leaves other strings alone', () => {
    expect(resolveIndirection('/tmp/sw', reader)).toBe('/tmp/sw');
    expect(resolveIndirection('', () => 'x')).toBe('');
    expect(resolveIndirection('vde:///f/nl', () => { throw new Error('must not read'); })).toBe('vde:///f/nl');
  });
  it('uses regular files only (real file system)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vnl-'));
    try {
      fs.writeFileSync(path.join(dir, 'loc'), 'vxlan://234.0.0.1/vni=42');
      fs.mkdirSync(path.join(dir, 'sw'));
      fs.symlinkSync(path.join(dir, 'sw'), path.join(dir, 'link'));
      expect(resolveIndirection(path.join(dir, 'loc'))).toBe('vxlan://234.0.0.1/vni=42');
      expect(parseLocator(resolveIndirection(path.join(dir, 'loc')))).toMatchObject({ kind: 'vxlan', vni: 42 });
      expect(resolveIndirection(path.join(dir, 'sw'))).toBe(path.join(dir, 'sw'));
      expect(resolveIndirection(path.join(dir, 'link'))).toBe(path.join(dir, 'link'));
      expect(resolveIndirection(path.join(dir, 'missing[3]'))).toBe(path.join(dir, 'missing[3]'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('fuzz: only LocatorError escapes, and whatever parses round-trips', () => {
  // mulberry32: small seeded PRNG so failures are reproducible.
  function rng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const ALPHABET = [..."/:[]'\"\\%->=.,0123456789abcdefxyz \t\n@+_", 'é', '\u{1F600}', '\uD800', '\0', '%41', '%ff', '%00', '->', '://', '[::1]'];
  const PREFIXES = [...KNOWN_SCHEMES.map((k) => `${k}://`), '', 'stream://unix:', 'stream://tcp:', 'dgram://unix:', 'dgram://udp:'];
  const seeds = VALID.map(([s]) => s);

  function check(s: string): void {
    let l: Locator;
    try {
      l = parseLocator(s);
    } catch (e) {
      if (!(e instanceof LocatorError)) throw new Error(`non-LocatorError for ${JSON.stringify(s)}: ${String(e)}`);
      expect(e.message.length).toBeGreaterThan(0);
      return;
    }
    const f = formatLocator(l);
    const again = parseLocator(f);
    if (JSON.stringify(again) !== JSON.stringify(l)) {
      throw new Error(`round trip of ${JSON.stringify(s)} via ${JSON.stringify(f)}: ${JSON.stringify(l)} != ${JSON.stringify(again)}`);
    }
    expect(again).toStrictEqual(l);
  }

  it('random strings', () => {
    const r = rng(0x5eed);
    const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
    for (let i = 0; i < 3000; i++) {
      let s = pick(PREFIXES);
      const n = Math.floor(r() * 24);
      for (let j = 0; j < n; j++) s += pick(ALPHABET);
      check(s);
    }
  });

  it('truncations and mutations of valid locators', () => {
    const r = rng(0xbeef);
    const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
    for (const s of seeds) for (let k = 0; k <= s.length; k++) check(s.slice(0, k));
    for (let i = 0; i < 4000; i++) {
      let s = pick(seeds);
      const edits = 1 + Math.floor(r() * 3);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(r() * (s.length + 1));
        const op = r();
        if (op < 0.4) s = s.slice(0, at) + pick(ALPHABET) + s.slice(at);
        else if (op < 0.7) s = s.slice(0, at) + s.slice(at + 1);
        else s = s.slice(0, at) + pick(ALPHABET) + s.slice(at + 1);
      }
      check(s);
    }
  });

  it('oversized inputs', () => {
    check(`vde:///${'a'.repeat(MAX_LOCATOR_BYTES * 2)}`);
    check(`cmd://${"'".repeat(5000)}`);
    check(`vde:///tmp/sw[${'1/'.repeat(1000)}]`);
  });
});
