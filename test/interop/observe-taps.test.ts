/*
 * Capture and metrics against the kernel's own view, with taps inside the switch in two network
 * namespaces: the frames vde_capture records on the port of tap A are the same frames, in the
 * same order per direction, that tcpdump (Debian package `tcpdump`) sees on tap A in its
 * namespace; and the switch's Prometheus counters for both ports equal the kernel's packet and
 * byte counters of the taps (what the kernel sent into a tap the switch received, and back).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCommand } from '../../src/vdecmd/main.js';
import { BT_EPB, parseEpb, PcapngReader } from '../../src/protocol/pcapng.js';
import { ensureTools } from '../helpers/deps.js';
import { createNetns, moveLinkToNetns, netnsExec, ping, pollUntil, spawnInNetns, uniqueIfname, withCleanup } from '../helpers/netns.js';
import { ROOT, SWITCH_BIN } from '../helpers/switchproc.js';

const ATTACH_TIMEOUT_MS = 10_000;

/** The frames of a classic pcap file (tcpdump -w). */
function pcapFrames(file: string): Buffer[] {
  const b = readFileSync(file);
  const le = b.readUInt32LE(0) === 0xa1b2c3d4 || b.readUInt32LE(0) === 0xa1b23c4d;
  const u32 = (o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const out: Buffer[] = [];
  for (let off = 24; off + 16 <= b.length; ) {
    const cap = u32(off + 8);
    out.push(b.subarray(off + 16, off + 16 + cap));
    off += 16 + cap;
  }
  return out;
}

/** GET /metrics from a unix socket. */
function scrape(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ socketPath, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

function sample(text: string, name: string): number {
  const l = text.split('\n').find((x) => x.startsWith(`${name} `));
  if (!l) throw new Error(`no ${name}`);
  return Number(l.slice(name.length + 1));
}

describe('capture and metrics meet the kernel', () => {
  const cleanup = withCleanup();
  let dir: string;
  let mgmt: string;
  let metrics: string;
  let nsA: string;
  let nsB: string;
  let tapA: string;
  let tapB: string;
  const portOf = new Map<string, number>();

  beforeAll(async () => {
    await ensureTools({ ip: 'iproute2', ping: 'iputils-ping', tcpdump: 'tcpdump' });
    dir = cleanup.path(mkdtempSync(join(tmpdir(), 'vde-ts-obs-')));
    mgmt = join(dir, 'mgmt');
    metrics = join(dir, 'metrics.sock');
    tapA = uniqueIfname('voa');
    tapB = uniqueIfname('vob');
    nsA = await createNetns('voA', cleanup);
    nsB = await createNetns('voB', cleanup);
    // no IPv6 chatter (router solicitations, MLD): only the traffic the test makes
    for (const ns of [nsA, nsB]) await netnsExec(ns, ['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    const sw = spawnInNetns(null, [process.execPath, SWITCH_BIN, '-s', join(dir, 'sw'), '-M', mgmt, '--nostdin', '-t', tapA, '-t', tapB, '--metrics', `unix:${metrics}`], { cleanup });
    cleanup.link(tapA, null);
    cleanup.link(tapB, null);
    await pollUntil(() => existsSync(mgmt) && existsSync(metrics), ATTACH_TIMEOUT_MS, `switch (${sw.output()})`);
    await moveLinkToNetns(tapA, nsA, '192.0.2.1/24', { cleanup });
    await moveLinkToNetns(tapB, nsB, '192.0.2.2/24', { cleanup });
    const ports = JSON.parse((await runCommand(mgmt, 'json/port/print')).data.join('')) as Array<{ port: number; endpoints: Array<{ description: string }> }>;
    for (const p of ports) portOf.set(p.endpoints[0].description, p.port);
  }, 120_000);

  afterAll(async () => {
    await cleanup.run();
  }, 60_000);

  test('vde_capture on the port records what tcpdump sees on the tap, per direction, in order', async () => {
    const file = join(dir, 'port.pcapng');
    const tdOut = join(dir, 'tap-out.pcap'); // the kernel sent these into the tap: they enter the switch port
    const tdIn = join(dir, 'tap-in.pcap'); // the switch port sent these: the kernel received them
    const dumps = [['out', tdOut], ['in', tdIn]].map(([q, f]) => spawnInNetns(nsA, ['tcpdump', '-i', tapA, '-Q', q, '--immediate-mode', '-U', '-n', '-w', f], { cleanup, stdin: 'ignore' }));
    await pollUntil(() => dumps.every((d) => /listening on/.test(d.output())), ATTACH_TIMEOUT_MS, 'tcpdump to listen');
    const cap = spawn(process.execPath, [join(ROOT, 'bin', 'vde_capture'), '-w', file, '-q', mgmt, String(portOf.get(tapA))], { stdio: 'ignore' });
    cleanup.process(cap);
    await pollUntil(async () => JSON.parse((await runCommand(mgmt, 'capture/list')).data.join('')).length === 1, ATTACH_TIMEOUT_MS, 'the capture');
    expect((await ping(nsA, '192.0.2.2', 5, { size: 300 })).received).toBe(5);
    expect((await ping(nsB, '192.0.2.1', 3)).received).toBe(3);
    await new Promise((r) => setTimeout(r, 300));
    cap.kill('SIGINT');
    await new Promise((r) => cap.on('exit', r));
    for (const d of dumps) d.child.kill('SIGINT');
    await pollUntil(() => dumps.every((d) => d.child.exitCode !== null || d.child.signalCode !== null), ATTACH_TIMEOUT_MS, 'tcpdump to end');
    const reader = new PcapngReader();
    const epbs = reader.push(readFileSync(file)).filter((b) => b.type === BT_EPB).map(parseEpb);
    const entered = epbs.filter((e) => e.direction === 1).map((e) => e.data.toString('hex'));
    const left = epbs.filter((e) => e.direction === 2).map((e) => e.data.toString('hex'));
    const kernelSent = pcapFrames(tdOut).map((f) => f.toString('hex'));
    const kernelGot = pcapFrames(tdIn).map((f) => f.toString('hex'));
    expect(entered.length).toBeGreaterThanOrEqual(8); // 8 ICMP frames at least, and ARP
    expect(entered, dumps.map((d) => d.output()).join('\n')).toEqual(kernelSent);
    expect(left).toEqual(kernelGot);
  }, 60_000);

  test('the port counters in the metrics equal the kernel counters of the taps', async () => {
    expect((await ping(nsA, '192.0.2.2', 4, { size: 1000 })).received).toBe(4);
    const kernel = async (ns: string, tap: string): Promise<{ rx: number; tx: number; rxBytes: number; txBytes: number }> => {
      const j = JSON.parse((await netnsExec(ns, ['ip', '-s', '-j', 'link', 'show', tap])).stdout) as Array<{ stats64: { rx: { packets: number; bytes: number }; tx: { packets: number; bytes: number } } }>;
      return { rx: j[0].stats64.rx.packets, tx: j[0].stats64.tx.packets, rxBytes: j[0].stats64.rx.bytes, txBytes: j[0].stats64.tx.bytes };
    };
    // read both views until they agree (frames in flight settle within a few polls)
    await pollUntil(async () => {
      const m = await scrape(metrics);
      for (const [ns, tap] of [[nsA, tapA], [nsB, tapB]]) {
        const k = await kernel(ns, tap);
        const p = portOf.get(tap);
        const sw = {
          rx: sample(m, `vde_port_receive_frames_total{port="${p}"}`),
          tx: sample(m, `vde_port_transmit_frames_total{port="${p}"}`),
          rxBytes: sample(m, `vde_port_receive_bytes_total{port="${p}"}`),
          txBytes: sample(m, `vde_port_transmit_bytes_total{port="${p}"}`),
        };
        // the kernel's tap tx (toward the switch) is the switch's receive, and the other way round
        if (k.tx !== sw.rx || k.rx !== sw.tx || k.txBytes !== sw.rxBytes || k.rxBytes !== sw.txBytes) return false;
        if (sw.rx < 8) return false;
      }
      return true;
    }, 10_000, 'switch and kernel counters to agree');
  }, 60_000);
});
