/*
 * A QEMU guest's DHCP exchange with our slirp endpoint, captured live: once at the switch port
 * the guest is on (vde_capture on the switch's console) and once at the slirp endpoint itself
 * (a vde_plug slirp:// with --mgmt, captured through the plug's console). tshark decodes both
 * files as DHCP (Discover, Offer, Request, ACK from 10.0.2.2, the address 10.0.2.15), and
 * capinfos accepts them.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { buildGuest, parseGuestOutput, startGuest } from '../helpers/guest.js';
import { pollUntil, run, withCleanup } from '../helpers/netns.js';
import { ROOT, startSwitch, type RunningSwitch } from '../helpers/switchproc.js';
import { runCommand } from '../../src/vdecmd/main.js';

const GUEST_JOBS_TIMEOUT_MS = 120_000;
const GUEST_MAC = '52:54:00:00:00:41';

describe('capturing a QEMU guest that asks our slirp for an address', () => {
  const cleanup = withCleanup();
  let sw: RunningSwitch;
  let tools: Record<string, string>;
  let dir: string;
  let plugMgmt: string;

  beforeAll(async () => {
    tools = await ensureTools({ 'qemu-system-x86_64': 'qemu-system-x86', tshark: 'tshark', capinfos: 'tshark' });
    await buildGuest();
    sw = await startSwitch();
    dir = cleanup.path(mkdtempSync(join(tmpdir(), 'vde-ts-capguest-')));
    plugMgmt = join(dir, 'slirp.mgmt');
    const slirp = spawn(process.execPath, [join(ROOT, 'bin', 'vde_plug'), '--mgmt', plugMgmt, 'slirp://', sw.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanup.process(slirp);
    await pollUntil(async () => existsSync(plugMgmt) && (await sw.json<unknown[]>('json/port/print')).length === 1, 10_000, 'slirp on the switch');
  }, 15 * 60 * 1000);

  afterAll(async () => {
    await cleanup.run();
    await sw.stop();
  }, 60_000);

  test('tshark decodes the DHCP exchange in both captures', async () => {
    const atSwitch = join(dir, 'switch.pcapng');
    const atSlirp = join(dir, 'slirp.pcapng');
    const caps = [
      spawn(process.execPath, [join(ROOT, 'bin', 'vde_capture'), '-w', atSwitch, '-q', sw.mgmt], { stdio: 'ignore' }),
      spawn(process.execPath, [join(ROOT, 'bin', 'vde_capture'), '-w', atSlirp, '-q', '--ip-proto', 'udp', plugMgmt, '2'], { stdio: 'ignore' }),
    ];
    for (const c of caps) cleanup.process(c);
    await pollUntil(async () => JSON.parse((await runCommand(sw.mgmt, 'capture/list')).data.join('')).length === 1, 10_000, 'the switch capture');
    await pollUntil(async () => JSON.parse((await runCommand(plugMgmt, 'capture/list')).data.join('')).length === 1, 10_000, 'the slirp capture');
    const guest = await startGuest({
      netdev: ['-netdev', `vde,id=n0,sock=${sw.dir}`, '-device', `virtio-net-pci,netdev=n0,mac=${GUEST_MAC}`],
      cmdline: { dhcp: 1 },
      timeoutMs: 150_000,
      cleanup,
    });
    await guest.waitFor(/^VT-DONE/m, GUEST_JOBS_TIMEOUT_MS);
    const report = parseGuestOutput(guest.output());
    expect(report.addrs).toContain('10.0.2.15');
    await guest.kill();
    for (const c of caps) c.kill('SIGINT');
    await Promise.all(caps.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.on('exit', r)))));
    for (const file of [atSwitch, atSlirp]) {
      expect((await run([tools.capinfos, file])).code).toBe(0);
      const r = await run([tools.tshark, '-r', file, '-Y', 'dhcp', '-T', 'fields', '-e', 'dhcp.option.dhcp', '-e', 'dhcp.hw.mac_addr', '-e', 'dhcp.ip.your', '-e', 'dhcp.option.dhcp_server_id']);
      const rows = r.stdout.trim().split('\n').filter(Boolean).map((l) => l.split('\t'));
      const types = rows.map((x) => Number(x[0]));
      // Discover (1), Offer (2), Request (3), ACK (5), each seen once per direction it passed
      for (const t of [1, 2, 3, 5]) expect(types, `${file}: ${r.stdout}`).toContain(t);
      expect(rows.every((x) => x[1].split(",").every((m) => m === GUEST_MAC)), r.stdout).toBe(true);
      const ack = rows.find((x) => Number(x[0]) === 5)!;
      expect(ack[2]).toBe('10.0.2.15');
      expect(ack[3]).toBe('10.0.2.2');
    }
  }, 240_000);
});
