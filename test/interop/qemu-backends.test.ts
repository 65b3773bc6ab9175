/*
 * QEMU attached straight to our switch through its own back-ends, no helper process: -netdev
 * stream (QEMU as client of --qemu-listen unix, and as server reached by --qemu-connect),
 * -netdev socket,connect= (TCP, --qemu-listen tcp), and -netdev dgram (unix and UDP, --qemu-dgram).
 * Each guest pings a namespace plugged into the same switch with Debian's vde_plug tap://, and
 * the namespace pings it back; the switch shows each QEMU as an ordinary port.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCommand } from '../../src/vdecmd/main.js';
import { ensureTools } from '../helpers/deps.js';
import { buildGuest, parseGuestOutput, startGuest } from '../helpers/guest.js';
import { createNetns, createTap, moveLinkToNetns, ping, pollUntil, spawnInNetns, tapAttached, uniqueIfname, withCleanup } from '../helpers/netns.js';
import { SWITCH_BIN } from '../helpers/switchproc.js';

const SETUP_TIMEOUT_MS = 15 * 60 * 1000;
const GUEST_JOBS_TIMEOUT_MS = 120_000;
const ATTACH_TIMEOUT_MS = 10_000;
const NS_IP = '192.0.2.1';
const TCP_PORT_BASE = 20000 + (process.pid % 10000);

describe('QEMU back-ends attached directly to the switch', () => {
  const cleanup = withCleanup();
  let dir: string;
  let mgmt: string;
  let ns: string;

  beforeAll(async () => {
    await ensureTools({ vde_plug: 'vdeplug', ip: 'iproute2', ping: 'iputils-ping', 'qemu-system-x86_64': 'qemu-system-x86' });
    await buildGuest();
    dir = cleanup.path(mkdtempSync(join(tmpdir(), 'vde-ts-qemu-')));
    mgmt = join(dir, 'mgmt');
    const sw = join(dir, 'sw');
    const args = [
      '-s', sw, '-M', mgmt, '--nostdin',
      '--qemu-listen', `unix:${join(dir, 'q.sock')}`,
      '--qemu-listen', `tcp:127.0.0.1:${TCP_PORT_BASE}`,
      '--qemu-connect', `unix:${join(dir, 'qserver.sock')}`,
      '--qemu-dgram', `unix:${join(dir, 'sw.dgram')}`,
      '--qemu-dgram', `udp:127.0.0.1:${TCP_PORT_BASE + 1}`,
    ];
    const proc = spawnInNetns(null, [process.execPath, SWITCH_BIN, ...args], { cleanup });
    await pollUntil(() => existsSync(join(sw, 'ctl')) && existsSync(mgmt), ATTACH_TIMEOUT_MS, `switch (${proc.output()})`);
    ns = await createNetns('vtq', cleanup);
    const tap = await createTap(uniqueIfname('vtq'), { cleanup });
    const plug = spawnInNetns(null, ['vde_plug', `vde://${sw}`, `tap://${tap}`], { cleanup });
    await pollUntil(() => tapAttached(tap), ATTACH_TIMEOUT_MS, `vde_plug (${plug.output()})`);
    await moveLinkToNetns(tap, ns, `${NS_IP}/24`, { cleanup });
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await cleanup.run();
  }, 60_000);

  const cases: Array<{ name: string; ip: string; mac: string; netdev: () => string }> = [
    { name: '-netdev stream client -> --qemu-listen unix', ip: '192.0.2.21', mac: '52:54:00:00:00:21', netdev: () => `stream,id=n0,server=off,addr.type=unix,addr.path=${join(dir, 'q.sock')}` },
    { name: '-netdev socket,connect= -> --qemu-listen tcp', ip: '192.0.2.22', mac: '52:54:00:00:00:22', netdev: () => `socket,id=n0,connect=127.0.0.1:${TCP_PORT_BASE}` },
    { name: '-netdev stream server <- --qemu-connect unix', ip: '192.0.2.23', mac: '52:54:00:00:00:23', netdev: () => `stream,id=n0,server=on,addr.type=unix,addr.path=${join(dir, 'qserver.sock')}` },
    { name: '-netdev dgram unix <-> --qemu-dgram unix', ip: '192.0.2.24', mac: '52:54:00:00:00:24', netdev: () => `dgram,id=n0,local.type=unix,local.path=${join(dir, 'q.dgram')},remote.type=unix,remote.path=${join(dir, 'sw.dgram')}` },
    { name: '-netdev dgram udp <-> --qemu-dgram udp', ip: '192.0.2.25', mac: '52:54:00:00:00:25', netdev: () => `dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=${TCP_PORT_BASE + 2},remote.type=inet,remote.host=127.0.0.1,remote.port=${TCP_PORT_BASE + 1}` },
  ];
  for (const c of cases) {
    test(`${c.name}: guest and namespace ping each other`, async () => {
      const guest = await startGuest({
        netdev: ['-netdev', c.netdev(), '-device', `virtio-net-pci,netdev=n0,mac=${c.mac}`],
        cmdline: { ip: `${c.ip}/24`, ping: NS_IP, count: 3, pingmin: 2, sleep: 30 },
        timeoutMs: 150_000,
        cleanup,
      });
      await guest.waitFor(/^VT-SLEEP /m, GUEST_JOBS_TIMEOUT_MS);
      const report = parseGuestOutput(guest.output());
      expect(report.errors).toEqual([]);
      const p = report.pings.find((x) => x.target === NS_IP);
      expect(p?.ok, guest.output()).toBe(true);
      const back = await ping(ns, c.ip, 3);
      expect(back.received, back.output).toBe(3);
      const ports = JSON.parse((await runCommand(mgmt, 'json/hash/print')).data.join('')) as Array<{ mac: string; port: number }>;
      const entry = ports.find((e) => e.mac === c.mac);
      expect(entry).toBeDefined();
      const port = JSON.parse((await runCommand(mgmt, `json/port/print ${entry!.port}`)).data.join('')) as { endpoints: Array<{ module: string }>; counters: { inFrames: number } };
      expect(port.endpoints[0].module).toBe('qemu');
      expect(port.counters.inFrames).toBeGreaterThan(3);
      await guest.kill();
    }, 180_000);
  }
});
