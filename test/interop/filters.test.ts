// Port filters, protected ports and policing on a running vde-ts switch, with real traffic: three
// network namespaces (taps plugged in by our vde_plug on fixed ports 1-3) and a QEMU guest on
// port 5 (`-netdev vde,port=5`), all in 192.0.2.0/24 (and fd00:db8::/64 for the namespaces).
// The filters come from the switch's rc file (-f), as a lab file would set them, and through the
// management console at run time:
//  - ingress on the guest's port: its pings to B are denied, to A allowed (rule hits counted);
//  - egress on C's port: ICMP from A denied, from B allowed; IPv6 from A's address denied;
//  - ingress on B's port: TCP replies from B's port 8080 denied (A cannot connect), 8081 allowed;
//  - protected ports: A and B (both protected) cannot reach each other, both reach C;
//  - policing: A floods C with UDP through iperf3 at 1 Gbit/s while B sends TCP to C; A's port is
//    policed at 40 Mbit/s: what reaches C from A stays within the rate (plus the burst), B keeps
//    the larger share, and the police stage counts what it dropped.
// Processes are stopped by PID; namespaces and taps are removed.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { buildGuest, parseGuestOutput, startGuest, type GuestHandle } from '../helpers/guest.js';
import { Cleanup, createNetns, createTapInNetns, netnsExec, ping, pollUntil, run, spawnInNetns, tapAttached, uniqueIfname } from '../helpers/netns.js';
import { ROOT, startSwitch, tmpdir, type RunningSwitch } from '../helpers/switchproc.js';

/** Longest wait for a process to open its tap (slow under the sanitizer run on a loaded machine). */
const ATTACH_MS = 30_000;
const PLUG_BIN = path.join(ROOT, 'bin', 'vde_plug');
const IP = { A: '192.0.2.1', B: '192.0.2.2', C: '192.0.2.3', G: '192.0.2.10' };
const IP6 = { A: 'fd00:db8::1', B: 'fd00:db8::2', C: 'fd00:db8::3' };
const PORT = { A: 1, B: 2, C: 3, G: 5 };
const GUEST_MAC = '52:54:00:12:34:66';
const GUEST_PINGS = 3;
/** Policing: the rate on A's port, the flood A offers, how long, and the tolerance above the rate. */
const POLICE_RATE_MBIT = 40;
const POLICE_BURST = '64k';
const FLOOD_OFFERED = '1G';
const FLOW_SECONDS = 5;
const POLICE_TOLERANCE = 1.15;

interface FilterReport {
  port: number;
  dir: string;
  rules: Array<{ rule: string; hits: number }>;
  defaultHits: number;
  denied: number;
}

describe('filters, protected ports and policing on a running switch', () => {
  const c = new Cleanup();
  let sw: RunningSwitch;
  const ns: Record<'A' | 'B' | 'C', string> = { A: '', B: '', C: '' };
  let guest: GuestHandle | null = null;

  beforeAll(async () => {
    await ensureTools({ ip: 'iproute2', ping: 'iputils-ping', socat: 'socat', iperf3: 'iperf3', 'qemu-system-x86_64': 'qemu-system-x86' });
    await buildGuest();
    const dir = c.path(tmpdir('vdets-filt-'));
    const rc = path.join(dir, 'rc');
    fs.writeFileSync(
      rc,
      [
        '# ports the lab uses, and their filters',
        ...Object.values(PORT).map((p) => `port/create ${p}`),
        `filter/add ${PORT.G} in deny proto icmp dst ${IP.B}/32`,
        `filter/add ${PORT.C} out deny proto icmp src ${IP.A}`,
        `filter/add ${PORT.C} out deny src ${IP6.A}/128`,
        `filter/add ${PORT.B} in deny proto tcp sport 8080`,
        '',
      ].join('\n'),
    );
    sw = await startSwitch(['-f', rc]);
    for (const k of ['A', 'B', 'C'] as const) {
      ns[k] = await createNetns(`flt${k}`, c);
      const tap = await createTapInNetns(ns[k], uniqueIfname(`ft${k}`), `${IP[k]}/24`, { cleanup: c });
      await run(['ip', '-n', ns[k], 'addr', 'add', `${IP6[k]}/64`, 'dev', tap, 'nodad']);
      spawnInNetns(ns[k], [process.execPath, PLUG_BIN, `vde://${sw.dir}[${PORT[k]}]`, `tap://${tap}`], { cleanup: c });
      await pollUntil(() => tapAttached(tap, ns[k]), ATTACH_MS, `tap of ${k} attached`);
    }
  }, 15 * 60_000);

  afterAll(async () => {
    await guest?.kill();
    await c.run();
    await sw?.stop();
  });

  const filters = async (port: number): Promise<FilterReport[]> => sw.json<FilterReport[]>(`json/filter/print ${port}`);

  it('filters from the rc file act on a QEMU guest and on namespaces, and count their hits', async () => {
    guest = await startGuest({
      netdev: ['-netdev', `vde,id=n0,sock=${sw.dir},port=${PORT.G}`, '-device', `virtio-net-pci,netdev=n0,mac=${GUEST_MAC}`],
      cmdline: { ip: `${IP.G}/24`, ping: `${IP.A},${IP.B}`, count: GUEST_PINGS, deadline: 6, sleep: 30 },
      timeoutMs: 150_000,
      cleanup: c,
    });
    await guest.waitFor(/^VT-SLEEP /m, 120_000);
    const report = parseGuestOutput(guest.output());
    expect(report.pings.find((p) => p.target === IP.A)?.rx, guest.output()).toBe(GUEST_PINGS);
    expect(report.pings.find((p) => p.target === IP.B)?.rx).toBe(0);
    // every echo request the guest sent to B was denied and counted (ping -w keeps sending until its deadline)
    const sentToB = report.pings.find((p) => p.target === IP.B)!.tx;
    expect(sentToB).toBeGreaterThanOrEqual(GUEST_PINGS);
    const g = (await filters(PORT.G))[0];
    expect(g.rules[0]).toMatchObject({ rule: `deny proto icmp dst ${IP.B}/32`, hits: sentToB });
    expect(g.denied).toBe(sentToB);
    const port5 = await sw.json<{ counters: { drops: { filter: number } } }>(`json/port/print ${PORT.G}`);
    expect(port5.counters.drops.filter).toBe(sentToB);
    await guest.kill();
    guest = null;
    // egress on C: ICMP from A denied, from B allowed; IPv6 from A denied
    const fromA = await ping(ns.A, IP.C, 3, { deadlineS: 3 });
    expect(fromA.received).toBe(0);
    expect((await ping(ns.B, IP.C, 3)).received).toBe(3);
    const v6 = await netnsExec(ns.A, ['ping', '-6', '-n', '-c', '2', '-W', '1', IP6.C], { check: false });
    expect(v6.stdout).toMatch(/ 0 received/);
    const v6b = await netnsExec(ns.B, ['ping', '-6', '-n', '-c', '2', '-W', '1', IP6.C], { check: false });
    expect(v6b.stdout).toMatch(/ 2 received/);
    const cOut = (await filters(PORT.C))[0];
    expect(cOut.rules[0].hits).toBe(fromA.transmitted);
    expect(cOut.rules[1].hits).toBeGreaterThanOrEqual(2);
  }, 300_000);

  it('TCP port rules: replies from B:8080 are denied, B:8081 passes', async () => {
    for (const p of [8080, 8081]) spawnInNetns(ns.B, ['socat', `TCP-LISTEN:${p},reuseaddr,fork`, 'SYSTEM:echo hello-from-$SOCAT_SOCKPORT'], { cleanup: c });
    await pollUntil(async () => /:8081/.test((await netnsExec(ns.B, ['ss', '-ltn'])).stdout), 10_000, 'servers listening');
    const ok = await netnsExec(ns.A, ['socat', '-T', '3', '-', `TCP:${IP.B}:8081,connect-timeout=3`], { check: false, timeoutMs: 10_000 });
    expect(ok.stdout).toContain('hello-from-8081');
    const denied = await netnsExec(ns.A, ['socat', '-T', '2', '-', `TCP:${IP.B}:8080,connect-timeout=2`], { check: false, timeoutMs: 10_000 });
    expect(denied.stdout).not.toContain('hello');
    const b = (await filters(PORT.B))[0];
    expect(b.rules[0].hits).toBeGreaterThanOrEqual(1); // the SYN-ACK (and its retransmissions)
  });

  it('protected ports talk to unprotected ones only', async () => {
    for (const p of [PORT.A, PORT.B]) expect((await sw.cmd(`port/setprotected ${p} 1`)).status).toBe(0);
    try {
      await netnsExec(ns.A, ['ip', 'neigh', 'flush', 'all']);
      expect((await ping(ns.A, IP.B, 3, { deadlineS: 3 })).received).toBe(0);
      expect((await ping(ns.B, IP.C, 3)).received).toBe(3);
      expect((await netnsExec(ns.A, ['ping', '-6', '-n', '-c', '2', '-W', '1', IP6.B], { check: false })).stdout).toMatch(/ 0 received/);
      expect((await netnsExec(ns.C, ['ping', '-n', '-c', '2', '-W', '1', IP.B], { check: false })).stdout).toMatch(/ 2 received/);
    } finally {
      for (const p of [PORT.A, PORT.B]) await sw.cmd(`port/setprotected ${p} 0`);
    }
    expect((await ping(ns.A, IP.B, 3)).received).toBe(3);
  });

  it(
    'a policed flood takes no more than its rate and the other flow keeps the larger share (two iperf3 flows)',
    { retry: 2, timeout: 120_000 },
    async () => {
      expect((await sw.cmd(`port/police ${PORT.A} ${POLICE_RATE_MBIT}m ${POLICE_BURST}`)).status).toBe(0);
      try {
        const srvUdp = spawnInNetns(ns.C, ['iperf3', '-s', '-1', '-p', '5301', '-J'], { cleanup: c });
        const srvTcp = spawnInNetns(ns.C, ['iperf3', '-s', '-1', '-p', '5302', '-J'], { cleanup: c });
        await pollUntil(async () => /:5302/.test((await netnsExec(ns.C, ['ss', '-ltn'])).stdout) && /:5301/.test((await netnsExec(ns.C, ['ss', '-ltn'])).stdout), 10_000, 'iperf3 servers');
        const [flood, victim] = await Promise.all([
          netnsExec(ns.A, ['iperf3', '-c', IP.C, '-p', '5301', '-u', '-b', FLOOD_OFFERED, '-l', '1400', '-t', String(FLOW_SECONDS), '-J'], { check: false, timeoutMs: 60_000 }),
          netnsExec(ns.B, ['iperf3', '-c', IP.C, '-p', '5302', '-t', String(FLOW_SECONDS), '-J'], { check: false, timeoutMs: 60_000 }),
        ]);
        await pollUntil(() => srvUdp.child.exitCode !== null && srvTcp.child.exitCode !== null, 20_000, 'iperf3 servers done');
        expect(JSON.parse(flood.stdout).error).toBeUndefined();
        // what C received of the flood: the UDP server's own report
        const f = JSON.parse(srvUdp.output().slice(srvUdp.output().indexOf('{'))) as { end: { sum_received: { bits_per_second: number } } };
        const v = JSON.parse(victim.stdout) as { end: { sum_received: { bits_per_second: number } } };
        const floodMbit = f.end.sum_received.bits_per_second / 1e6;
        const victimMbit = v.end.sum_received.bits_per_second / 1e6;
        const burstMbit = (64 * 1024 * 8) / 1e6 / FLOW_SECONDS;
        expect(floodMbit, `flood ${floodMbit.toFixed(1)} Mbit/s, victim ${victimMbit.toFixed(1)}`).toBeLessThanOrEqual(POLICE_RATE_MBIT * POLICE_TOLERANCE + burstMbit);
        expect(floodMbit).toBeGreaterThan(POLICE_RATE_MBIT * 0.5); // the policer lets the rate through
        expect(victimMbit, `victim ${victimMbit.toFixed(1)} Mbit/s against a flood of ${floodMbit.toFixed(1)}`).toBeGreaterThan(2 * floodMbit);
        const port = await sw.json<{ counters: { drops: { police: number } } }>(`json/port/print ${PORT.A}`);
        expect(port.counters.drops.police).toBeGreaterThan(0);
      } finally {
        await sw.cmd(`port/police ${PORT.A} off`);
      }
    },
  );
});
