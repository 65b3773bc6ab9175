/*
 * Real clients through a switch: a QEMU guest on `-netdev vde,sock=DIR` and two network
 * namespaces whose taps are plugged in with Debian's `vde_plug vde://DIR tap://TAP` (vdeplug4).
 * The same scenario runs first against Debian's vde_switch (which proves the harness: a failure
 * only in the vde-ts run points at vde-ts) and then against ours. The guest pings both
 * namespaces, the namespaces ping the guest and each other, and the namespaces exchange
 * 8000-byte pings over a 9000-byte MTU: through ours they arrive, through vde2 they do not (it
 * cuts frames at 1518 bytes). Addresses come from the documentation range 192.0.2.0/24 only.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { buildGuest, parseGuestOutput, startGuest } from '../helpers/guest.js';
import { createNetns, createTap, createTapInNetns, moveLinkToNetns, ping, pollUntil, spawnInNetns, tapAttached, uniqueIfname, withCleanup } from '../helpers/netns.js';
import { SWITCH_BIN } from '../helpers/switchproc.js';

const SETUP_TIMEOUT_MS = 15 * 60 * 1000;
const TEST_TIMEOUT_MS = 180_000;
const GUEST_LIFETIME_MS = 150_000;
const GUEST_JOBS_TIMEOUT_MS = 120_000;
const ATTACH_TIMEOUT_MS = 10_000;
const GUEST_SLEEP_S = 60;
const JUMBO_MTU_BYTES = 9000;
const JUMBO_PING_BYTES = 8000;

const GUEST_IP = '192.0.2.10';
const NS_A_IP = '192.0.2.1';
const NS_B_IP = '192.0.2.2';
const GUEST_MAC = '52:54:00:12:34:57';

const SWITCHES = [
  { name: "Debian's vde_switch (reference)", ours: false },
  { name: 'the vde-ts switch', ours: true },
];

describe.each(SWITCHES)('QEMU and kernel taps through $name', ({ ours }) => {
  const cleanup = withCleanup();

  beforeAll(async () => {
    await ensureTools({ vde_switch: 'vde2', vde_plug: 'vdeplug', ip: 'iproute2', ping: 'iputils-ping', 'qemu-system-x86_64': 'qemu-system-x86' });
    await buildGuest();
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await cleanup.run();
  }, 60_000);

  test(
    `a QEMU guest and two namespaces ping each other; jumbo frames ${ours ? 'pass' : 'are cut'}`,
    async () => {
      const dir = cleanup.path(mkdtempSync(join(tmpdir(), 'vde-ts-interop-')));
      const sw = join(dir, 'sw');
      const mgmt = join(dir, 'mgmt');
      // Debian's vde_switch exits on stdin EOF: spawnInNetns keeps a stdin pipe open
      const argv = ours ? [process.execPath, SWITCH_BIN, '-s', sw, '-M', mgmt, '--nostdin'] : ['vde_switch', '-s', sw, '-M', mgmt];
      const swProc = spawnInNetns(null, argv, { cleanup });
      await pollUntil(() => existsSync(join(sw, 'ctl')) && existsSync(mgmt), ATTACH_TIMEOUT_MS, `switch (${swProc.output()})`);

      const nsA = await createNetns('vtoA', cleanup);
      const tapA = await createTap(uniqueIfname('voa'), { cleanup, mtu: JUMBO_MTU_BYTES });
      const plugA = spawnInNetns(null, ['vde_plug', `vde://${sw}`, `tap://${tapA}`], { cleanup });
      await pollUntil(() => tapAttached(tapA), ATTACH_TIMEOUT_MS, `vde_plug to open ${tapA} (${plugA.output()})`);
      await moveLinkToNetns(tapA, nsA, `${NS_A_IP}/24`, { cleanup, mtu: JUMBO_MTU_BYTES });

      const nsB = await createNetns('vtoB', cleanup);
      const tapB = await createTapInNetns(nsB, uniqueIfname('vob'), `${NS_B_IP}/24`, { cleanup, mtu: JUMBO_MTU_BYTES });
      const plugB = spawnInNetns(nsB, ['vde_plug', `vde://${sw}`, `tap://${tapB}`], { cleanup });
      await pollUntil(() => tapAttached(tapB, nsB), ATTACH_TIMEOUT_MS, `vde_plug to open ${tapB} (${plugB.output()})`);

      const guest = await startGuest({
        netdev: ['-netdev', `vde,id=n0,sock=${sw}`, '-device', `virtio-net-pci,netdev=n0,mac=${GUEST_MAC}`],
        cmdline: { ip: `${GUEST_IP}/24`, ping: `${NS_A_IP},${NS_B_IP}`, count: 3, sleep: GUEST_SLEEP_S },
        timeoutMs: GUEST_LIFETIME_MS,
        cleanup,
      });
      await guest.waitFor(/^VT-SLEEP /m, GUEST_JOBS_TIMEOUT_MS);
      const report = parseGuestOutput(guest.output());
      expect(report.errors).toEqual([]);
      expect(report.addrs).toContain(GUEST_IP);
      for (const target of [NS_A_IP, NS_B_IP]) {
        const p = report.pings.find((x) => x.target === target);
        expect(p?.rx, `guest ping ${target}\n${guest.output()}`).toBe(3);
      }
      for (const [ns, target] of [
        [nsA, GUEST_IP],
        [nsB, GUEST_IP],
        [nsB, NS_A_IP],
      ] as const) {
        const r = await ping(ns, target, 3);
        expect(r.received, `${ns} -> ${target}\n${r.output}`).toBe(3);
      }
      const jumbo = await ping(nsA, NS_B_IP, 3, { size: JUMBO_PING_BYTES, deadlineS: 4 });
      expect(jumbo.received, jumbo.output).toBe(ours ? 3 : 0);
      if (!ours) {
        await guest.kill();
        return;
      }

      // the switch saw all three as vde clients, with QEMU's description
      const { runCommand } = await import('../../src/vdecmd/main.js');
      const ports = JSON.parse((await runCommand(mgmt, 'json/port/print')).data.join('')) as Array<{ endpoints: Array<{ description: string }> }>;
      const descrs = ports.flatMap((p) => p.endpoints.map((e) => e.description));
      expect(descrs.some((d) => d.startsWith('QEMU'))).toBe(true);
      expect(descrs.filter((d) => d.startsWith('vdeplug:'))).toHaveLength(2);
      const table = JSON.parse((await runCommand(mgmt, 'json/hash/print')).data.join('')) as Array<{ mac: string }>;
      expect(table.map((e) => e.mac)).toContain(GUEST_MAC);
      await guest.kill();
    },
    TEST_TIMEOUT_MS,
  );
});
