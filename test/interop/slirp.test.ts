/*
 * User-mode NAT end to end: our switch, our slirp (`vde_plug slirp:///... DIR`, libslirp on its own
 * thread) and a network namespace whose tap is plugged into the switch by Debian's vdeplug4
 * `vde_plug vde://DIR tap://TAP`. Busybox udhcpc leases 10.0.2.15; a file served on the host's
 * 127.0.0.1 is fetched with curl through the gateway 10.0.2.2 with a matching sha256 (busybox-static's
 * wget crashes on Debian 12); a name resolves
 * through the DNS proxy 10.0.2.3 (the slirp process runs in a private mount namespace whose
 * /etc/resolv.conf names a tiny Node DNS responder on a loopback address, so the host's resolver
 * configuration is never touched); a host client reaches a server in the namespace through
 * tcpfwd; a forward to a busy port fails with a clear error while the rest keeps working; runt,
 * oversize and garbage frames and a DHCP flood from 200 MACs leave slirp serving. All traffic
 * stays on loopback and inside the namespace.
 */
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { native } from '../../src/native/index.js';
import { buildSlirpConfig } from '../../src/ports/kinds/slirp-options.js';
import { createSlirp } from '../../src/ports/kinds/slirp.js';
import { ensureTools } from '../helpers/deps.js';
import { freePort, httpGet, writeUdhcpcScript } from '../helpers/nat.js';
import { createNetns, createTap, moveLinkToNetns, netnsExec, pollUntil, run, spawnInNetns, tapAttached, uniqueIfname, withCleanup } from '../helpers/netns.js';
import { ROOT, startSwitch, tmpdir, type RunningSwitch } from '../helpers/switchproc.js';
import { frame, VdeClient } from '../helpers/vdeclient.js';

const PLUG_BIN = path.join(ROOT, 'bin', 'vde_plug');
const SLIRPVDE_BIN = path.join(ROOT, 'bin', 'slirpvde');
const ATTACH_TIMEOUT_MS = 15_000;
const FILE_BYTES = 2 * 1024 * 1024;
const GUEST_HTTP_PORT = 8080;
const DNS_NAME = 'slirp-test.example';
const DNS_ANSWER = '192.0.2.77';
const FLOOD_FRAMES = 200;

/** Answers every A query with DNS_ANSWER for DNS_NAME (NXDOMAIN otherwise). */
function dnsResponder(addr: string): Promise<dgram.Socket> {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (q, rinfo) => {
    if (q.length < 12) return;
    let off = 12;
    const labels: string[] = [];
    while (off < q.length && q[off] !== 0) {
      labels.push(q.subarray(off + 1, off + 1 + q[off]).toString());
      off += 1 + q[off];
    }
    const qEnd = off + 5;
    const name = labels.join('.').toLowerCase();
    const qtype = q.readUInt16BE(off + 1);
    const hit = name === DNS_NAME && qtype === 1;
    const head = Buffer.from(q.subarray(0, 12));
    head.writeUInt16BE(0x8180 | (hit ? 0 : 3), 2); // response, RD+RA, NOERROR / NXDOMAIN
    head.writeUInt16BE(1, 4);
    head.writeUInt16BE(hit ? 1 : 0, 6);
    head.writeUInt16BE(0, 8);
    head.writeUInt16BE(0, 10);
    const answer = hit ? Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...DNS_ANSWER.split('.').map(Number)]) : Buffer.alloc(0);
    sock.send(Buffer.concat([head, q.subarray(12, qEnd), answer]), rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(53, addr, () => resolve(sock));
  });
}

function ipChecksum(b: Buffer): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += b.readUInt16BE(i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

/** A DHCPDISCOVER frame from `mac` (broadcast, UDP checksum 0). */
function dhcpDiscover(mac: Buffer): Buffer {
  const bootp = Buffer.alloc(240 + 4);
  bootp[0] = 1; bootp[1] = 1; bootp[2] = 6;
  randomBytes(4).copy(bootp, 4);
  mac.copy(bootp, 28);
  bootp.writeUInt32BE(0x63825363, 236);
  Buffer.from([53, 1, 1, 255]).copy(bootp, 240);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(68, 0); udp.writeUInt16BE(67, 2); udp.writeUInt16BE(8 + bootp.length, 4);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45; ip.writeUInt16BE(20 + 8 + bootp.length, 2); ip[8] = 64; ip[9] = 17;
  Buffer.from([255, 255, 255, 255]).copy(ip, 16);
  ip.writeUInt16BE(ipChecksum(ip), 10);
  return Buffer.concat([Buffer.alloc(6, 0xff), mac, Buffer.from([0x08, 0x00]), ip, udp, bootp]);
}

describe('slirp:// and Debian vde_plug tap in a namespace', () => {
  const cleanup = withCleanup();
  let sw: RunningSwitch;
  let ns: string;
  let tap: string;
  let hostHttp: http.Server;
  let hostHttpPort: number;
  let fwdPort: number;
  let fileData: Buffer;
  let slirp: ReturnType<typeof spawnInNetns>;
  let dhcpScript: string;
  let debianPlug: string;

  const lease = async (): Promise<string> => {
    const r = await netnsExec(ns, ['busybox', 'udhcpc', '-i', tap, '-q', '-n', '-f', '-t', '5', '-T', '2', '-s', dhcpScript], { check: false, timeoutMs: 40_000 });
    const a = await netnsExec(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', tap]);
    return `${a.stdout}\n${r.stdout}${r.stderr}`;
  };
  const fetchFromHost = async (): Promise<string> => {
    const r = await netnsExec(ns, ['sh', '-c', `curl -sS --max-time 30 http://10.0.2.2:${hostHttpPort}/file | sha256sum`], { timeoutMs: 60_000 });
    return r.stdout.slice(0, 64);
  };

  beforeAll(async () => {
    const tools = await ensureTools({ ip: 'iproute2', busybox: 'busybox-static', vde_plug: 'vdeplug', unshare: 'util-linux', mount: 'mount', curl: 'curl' });
    debianPlug = fs.existsSync('/usr/bin/vde_plug') ? '/usr/bin/vde_plug' : tools.vde_plug;
    const dir = cleanup.path(tmpdir('vdets-slirp-'));
    sw = await startSwitch();
    cleanup.add('switch', () => sw.stop());

    fileData = randomBytes(FILE_BYTES);
    hostHttp = http.createServer((req, res) => {
      if (req.url === '/file') res.end(fileData);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => hostHttp.listen(0, '127.0.0.1', r));
    hostHttpPort = (hostHttp.address() as net.AddressInfo).port;
    cleanup.add('http', () => new Promise((r) => hostHttp.close(r)));

    // DNS: a responder on a private loopback address, named by the slirp process's own resolv.conf
    const dnsAddr = `127.53.${process.pid % 250}.${1 + (Date.now() % 250)}`;
    const dns = await dnsResponder(dnsAddr);
    cleanup.add('dns', () => dns.close());
    const resolv = path.join(dir, 'resolv.conf');
    fs.writeFileSync(resolv, `nameserver ${dnsAddr}\n`);

    fwdPort = await freePort();
    const loc = `slirp:///tcpfwd=127.0.0.1:${fwdPort}:10.0.2.15:${GUEST_HTTP_PORT}`;
    slirp = spawnInNetns(null, ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
      `mount --bind "$0" /etc/resolv.conf && exec "$1" "$2" "$3" "$4"`, resolv, process.execPath, PLUG_BIN, loc, sw.dir], { cleanup });
    await pollUntil(async () => (await sw.cmd('port/print')).data.join('\n').includes('vdeplug'), ATTACH_TIMEOUT_MS, `slirp plug (${slirp.output()})`);

    tap = uniqueIfname('vsl');
    await createTap(tap, { cleanup });
    spawnInNetns(null, [debianPlug, `vde://${sw.dir}`, `tap://${tap}`], { cleanup });
    await pollUntil(() => tapAttached(tap), ATTACH_TIMEOUT_MS, 'Debian vde_plug on the tap');
    ns = await createNetns('vslirp', cleanup);
    await moveLinkToNetns(tap, ns, null, { cleanup });

    dhcpScript = writeUdhcpcScript(dir);

    const guestDir = path.join(dir, 'www');
    fs.mkdirSync(guestDir);
    fs.writeFileSync(path.join(guestDir, 'guest.txt'), 'hello from the namespace\n');
    spawnInNetns(ns, ['busybox', 'httpd', '-f', '-p', String(GUEST_HTTP_PORT), '-h', guestDir], { cleanup });
  }, 180_000);

  afterAll(async () => {
    await cleanup.run();
  }, 60_000);

  test('busybox udhcpc leases 10.0.2.15 with gateway 10.0.2.2', async () => {
    const out = await lease();
    expect(out).toContain('10.0.2.15/24');
    const routes = await netnsExec(ns, ['ip', 'route']);
    expect(routes.stdout).toMatch(/default via 10\.0\.2\.2/);
  }, 60_000);

  test('a file on the host loopback is fetched through 10.0.2.2 intact', async () => {
    expect(await fetchFromHost()).toBe(createHash('sha256').update(fileData).digest('hex'));
  }, 90_000);

  test('a name resolves through the DNS proxy 10.0.2.3 to the local resolver', async () => {
    const r = await netnsExec(ns, ['busybox', 'nslookup', DNS_NAME, '10.0.2.3'], { check: false, timeoutMs: 30_000 });
    expect(r.stdout + r.stderr).toContain(DNS_ANSWER);
  }, 60_000);

  test('a host client reaches a server in the namespace through tcpfwd', async () => {
    const body = await pollUntil(async () => httpGet(`http://127.0.0.1:${fwdPort}/guest.txt`).catch(() => null), 20_000, 'the forwarded server');
    expect(body.toString()).toBe('hello from the namespace\n');
  }, 60_000);

  test('a forward to a port already in use fails clearly, the running slirp keeps working', async () => {
    // a second slirp asking for the same host port: exits 1 naming the forward
    const r = await run([process.execPath, PLUG_BIN, `slirp:///tcpfwd=127.0.0.1:${fwdPort}:10.0.2.15:80`, 'null://'], { check: false, timeoutMs: 20_000 });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`tcp forward 127\\.0\\.0\\.1:${fwdPort} -> 10\\.0\\.2\\.15:80: address already in use`));
    // run-time forwards on a handle: the busy one throws, a free one works
    const { fd, handle } = createSlirp(buildSlirpConfig({}));
    try {
      expect(() => handle.addForward({ udp: false, hostAddr: '127.0.0.1', hostPort: fwdPort, guestAddr: '10.0.2.15', guestPort: 80 })).toThrow(/address already in use/);
      const free = await freePort();
      handle.addForward({ udp: false, hostAddr: '127.0.0.1', hostPort: free, guestAddr: '10.0.2.15', guestPort: 80 });
      handle.removeForward({ udp: false, hostAddr: '127.0.0.1', hostPort: free });
      expect(() => handle.removeForward({ udp: false, hostAddr: '127.0.0.1', hostPort: free })).toThrow(/no such forward/);
    } finally {
      handle.close();
      native().closeFd(fd);
    }
    const body = await httpGet(`http://127.0.0.1:${fwdPort}/guest.txt`);
    expect(body.toString()).toBe('hello from the namespace\n');
  }, 60_000);

  test('runt, oversize and garbage frames toward slirp are dropped without harm', async () => {
    const c = await VdeClient.connect(sw.dir);
    try {
      const src = '02:00:00:00:aa:01';
      c.send(Buffer.from([1, 2, 3, 4, 5]));
      c.send(frame('ff:ff:ff:ff:ff:ff', src, 9000, 0x0800));
      c.send(frame('52:55:0a:00:02:02', src, 4000, 0x0800));
      c.send(frame('ff:ff:ff:ff:ff:ff', src, Buffer.from([0x45, 0, 0xff, 0xff]), 0x0800)); // truncated IPv4
      c.send(frame('ff:ff:ff:ff:ff:ff', src, randomBytes(60), 0x0806)); // garbage ARP
      c.send(frame('ff:ff:ff:ff:ff:ff', src, randomBytes(200), 0x86dd)); // garbage IPv6
      for (let i = 0; i < 50; i++) c.send(frame('ff:ff:ff:ff:ff:ff', src, randomBytes(20 + i * 30), 0x0800));
    } finally {
      c.close();
    }
    expect(slirp.child.exitCode).toBeNull();
    expect(await fetchFromHost()).toBe(createHash('sha256').update(fileData).digest('hex'));
  }, 90_000);

  test('a DHCP flood from 200 MACs leaves slirp serving', async () => {
    const c = await VdeClient.connect(sw.dir);
    try {
      for (let i = 0; i < FLOOD_FRAMES; i++) {
        const mac = randomBytes(6);
        mac[0] = (mac[0] & 0xfe) | 0x02;
        while (!c.send(dhcpDiscover(mac))) await new Promise((r) => setTimeout(r, 2));
      }
      const replies = await c.drain(1000);
      expect(replies.length).toBeGreaterThan(0); // slirp answered (some) of them
    } finally {
      c.close();
    }
    expect(slirp.child.exitCode).toBeNull();
    expect(await lease()).toContain('10.0.2.15/24'); // the known MAC keeps its address
    expect(await fetchFromHost()).toBe(createHash('sha256').update(fileData).digest('hex'));
  }, 120_000);
});

/** Whether a frame is a DHCP reply (IPv4, UDP from port 67) to `mac`. */
function isDhcpReplyTo(f: Buffer, mac: Buffer): boolean {
  return f.length > 14 + 20 + 8 + 34 && f.readUInt16BE(12) === 0x0800 && f[23] === 17 && f.readUInt16BE(34) === 67 && f.subarray(14 + 20 + 8 + 28, 14 + 20 + 8 + 34).equals(mac);
}

describe('slirpvde on our switch', () => {
  const cleanup = withCleanup();
  afterAll(async () => {
    await cleanup.run();
  }, 60_000);

  const offerFor = async (args: string[]): Promise<boolean> => {
    const sw = await startSwitch();
    cleanup.add('switch', () => sw.stop());
    const p = spawnInNetns(null, [process.execPath, SLIRPVDE_BIN, ...args, '-s', sw.dir], { cleanup });
    await pollUntil(async () => (await sw.cmd('port/print')).data.join('\n').includes('slirpvde:'), ATTACH_TIMEOUT_MS, `slirpvde (${p.output()})`);
    const c = await VdeClient.connect(sw.dir);
    try {
      const mac = Buffer.from([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
      c.send(dhcpDiscover(mac));
      return (await c.drain(1000)).some((f) => isDhcpReplyTo(f, mac));
    } finally {
      c.close();
      await sw.stop();
    }
  };

  test('answers DHCP only with -D (slirpvde default: off)', async () => {
    expect(await offerFor(['-q', '-D'])).toBe(true);
    expect(await offerFor(['-q'])).toBe(false);
  }, 60_000);

  test('bad options exit 1 with a message naming the option', async () => {
    const r = await run([process.execPath, SLIRPVDE_BIN, '-H', '10.0.2.2/99', '/nonexistent'], { check: false });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/slirpvde: option -H: prefix length 99 is out of range 1\.\.30/);
    const x = await run([process.execPath, SLIRPVDE_BIN, '-X', '10.0.2.15', '/nonexistent'], { check: false });
    expect(x.code).toBe(1);
    expect(x.stderr).toMatch(/-X \(X11 forwarding\) is not implemented/);
  }, 30_000);
});
