/*
 * Self-test of the QEMU-guest and network-namespace test helpers against the REFERENCE Debian tools
 * only (vde2's vde_switch, vdeplug's vde_plug, QEMU's `-netdev vde`): if this passes, a failure in a
 * vde-ts interop test that uses the same helpers points at vde-ts, not at the harness.
 * Topology (all addresses from the documentation range 192.0.2.0/24):
 *   guest 192.0.2.10 (QEMU -netdev vde) ─┐
 *   ns A  192.0.2.1  (tap made in root ns, opened by root-ns vde_plug, then moved) ─┤ Debian vde_switch
 *   ns B  192.0.2.2  (tap made inside ns B, vde_plug run inside ns B) ─┘
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { buildGuest, parseGuestOutput, startGuest } from '../helpers/guest.js';
import {
  createNetns,
  createTap,
  createTapInNetns,
  moveLinkToNetns,
  ping,
  pollUntil,
  spawnInNetns,
  tapAttached,
  uniqueIfname,
  withCleanup,
} from '../helpers/netns.js';

/** Time allowed for installing packages and building the initramfs. */
const SETUP_TIMEOUT_MS = 15 * 60 * 1000;
/** Time allowed for the whole scenario. */
const TEST_TIMEOUT_MS = 180_000;
/** Hard limit for the guest's life. */
const GUEST_LIFETIME_MS = 150_000;
/** Time allowed for the guest to boot and finish its own pings. */
const GUEST_JOBS_TIMEOUT_MS = 120_000;
/** Time allowed for a switch socket or tap to appear. */
const ATTACH_TIMEOUT_MS = 10_000;
/** Seconds the guest stays up after its own pings so the namespaces can ping it. */
const GUEST_SLEEP_S = 60;

const GUEST_IP = '192.0.2.10';
const NS_A_IP = '192.0.2.1';
const NS_B_IP = '192.0.2.2';
const GUEST_MAC = '52:54:00:12:34:56';

describe('test helpers against the reference Debian VDE tools', () => {
  const cleanup = withCleanup();

  beforeAll(async () => {
    await ensureTools({
      vde_switch: 'vde2',
      vde_plug: 'vdeplug',
      ip: 'iproute2',
      ping: 'iputils-ping',
    });
    await buildGuest();
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await cleanup.run();
  }, 60_000);

  test(
    'QEMU guest and two namespaces ping each other through Debian vde_switch',
    async () => {
      const dir = cleanup.path(mkdtempSync(join(tmpdir(), 'vde-ts-selftest-')));
      const sw = join(dir, 'sw');

      // Debian's vde_switch exits on stdin EOF: spawnInNetns keeps a stdin pipe open; killed by PID.
      const swProc = spawnInNetns(null, ['vde_switch', '-s', sw], { cleanup });
      await pollUntil(() => existsSync(join(sw, 'ctl')), ATTACH_TIMEOUT_MS, `vde_switch ctl socket (${swProc.output()})`);

      // ns A: tap created in the root namespace, opened there by vde_plug, then moved into ns A.
      const nsA = await createNetns('vtsA', cleanup);
      const tapA = await createTap(uniqueIfname('vta'), { cleanup });
      const plugA = spawnInNetns(null, ['vde_plug', `vde://${sw}`, `tap://${tapA}`], { cleanup });
      await pollUntil(() => tapAttached(tapA), ATTACH_TIMEOUT_MS, `vde_plug to open ${tapA} (${plugA.output()})`);
      await moveLinkToNetns(tapA, nsA, `${NS_A_IP}/24`, { cleanup });

      // ns B: tap created inside ns B and opened by a vde_plug running inside ns B.
      const nsB = await createNetns('vtsB', cleanup);
      const tapB = await createTapInNetns(nsB, uniqueIfname('vtb'), `${NS_B_IP}/24`, { cleanup });
      const plugB = spawnInNetns(nsB, ['vde_plug', `vde://${sw}`, `tap://${tapB}`], { cleanup });
      await pollUntil(() => tapAttached(tapB, nsB), ATTACH_TIMEOUT_MS, `vde_plug to open ${tapB} (${plugB.output()})`);

      const started = Date.now();
      const guest = await startGuest({
        netdev: ['-netdev', `vde,id=n0,sock=${sw}`, '-device', `virtio-net-pci,netdev=n0,mac=${GUEST_MAC}`],
        cmdline: { ip: `${GUEST_IP}/24`, ping: `${NS_A_IP},${NS_B_IP}`, count: 3, sleep: GUEST_SLEEP_S },
        timeoutMs: GUEST_LIFETIME_MS,
      });
      cleanup.process(guest.child);

      await guest.waitFor(/^VT-SLEEP /m, GUEST_JOBS_TIMEOUT_MS);
      const bootAndPingMs = Date.now() - started;
      const report = parseGuestOutput(guest.output());
      expect(report.errors).toEqual([]);
      expect(report.mac).toBe(GUEST_MAC);
      expect(report.addrs).toContain(GUEST_IP);
      for (const target of [NS_A_IP, NS_B_IP]) {
        const p = report.pings.find((x) => x.target === target);
        expect(p, `guest ping ${target}\n${guest.output()}`).toBeDefined();
        expect(p!.rx).toBe(3);
        expect(p!.ok).toBe(true);
      }

      // The namespaces ping the (sleeping) guest and each other.
      for (const [ns, target] of [
        [nsA, GUEST_IP],
        [nsB, GUEST_IP],
        [nsB, NS_A_IP],
      ] as const) {
        const r = await ping(ns, target, 3);
        expect(r.received, `${ns} -> ${target}\n${r.output}`).toBe(3);
        expect(r.rttAvgMs).not.toBeNull();
      }

      await guest.kill();
      console.log(`guest boot + 2x3 pings: ${bootAndPingMs} ms`);
    },
    TEST_TIMEOUT_MS,
  );
});
