/*
 * Tap offloads (`vde_switch -t A -t B`, `--tap-offload on|off`): taps opened with a virtio-net
 * header and TSO/checksum offloads move 64 KiB TCP segments between two namespaces; a tap on the
 * far side of a Debian `vde_plug vde://DIR tap://T` (no offloads) gets the same stream segmented
 * and checksummed in software. Every transfer is 100 MB through a real TCP tool (socat) with a
 * sha256 comparison, and the receiving namespace must count no TCP checksum errors. The header
 * validation (every field, impossible values dropped) and the software segmentation (IPv4, IPv6,
 * 802.1Q) are checked directly through the addon's vnetCheck/vnetResolve: a tap cannot feed the
 * switch a forged header (the kernel writes it), and the kernel rejects a forged one written
 * into a tap with EINVAL before it reaches anything.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { native } from '../../src/native/index.js';
import { runCommand } from '../../src/vdecmd/main.js';
import { ensureTools } from '../helpers/deps.js';
import { createNetns, createTap, moveLinkToNetns, netnsExec, pollUntil, spawnInNetns, uniqueIfname, withCleanup, type Cleanup } from '../helpers/netns.js';
import { SWITCH_BIN } from '../helpers/switchproc.js';
import { csumErrors, randomFile, transfer } from '../helpers/transfer.js';
import { checkSegment, tsoFrame, vnet } from '../helpers/tso.js';

const ATTACH_TIMEOUT_MS = 10_000;
const TRANSFER_BYTES = 100 * 1024 * 1024;
const TCP_PORT = 5301;
const PLUG_SETTLE_MS = 500;

interface Rig {
  tapA: string;
  mgmt: string;
  nsA: string;
  nsB: string;
}

/** Switch with tap A (opened by the switch) and B either opened by the switch or by Debian vde_plug. */
async function rig(cleanup: Cleanup, offload: 'on' | 'off', b: 'switch' | 'debian-plug'): Promise<Rig> {
  const dir = cleanup.path(mkdtempSync(join(tmpdir(), 'vde-ts-tof-')));
  const mgmt = join(dir, 'mgmt');
  const sock = join(dir, 'sw');
  const tapA = uniqueIfname('toa');
  const tapB = uniqueIfname('tob');
  const args = [process.execPath, SWITCH_BIN, '-s', sock, '-M', mgmt, '--nostdin', '--tap-offload', offload, '-t', tapA];
  if (b === 'switch') args.push('-t', tapB);
  const sw = spawnInNetns(null, args, { cleanup });
  cleanup.link(tapA, null);
  cleanup.link(tapB, null);
  await pollUntil(() => existsSync(mgmt), ATTACH_TIMEOUT_MS, `switch (${sw.output()})`);
  if (b === 'debian-plug') {
    await createTap(tapB, { cleanup });
    const plug = spawnInNetns(null, ['vde_plug', `vde://${sock}`, `tap://${tapB}`], { cleanup, stdin: 'ignore' });
    await new Promise((r) => setTimeout(r, PLUG_SETTLE_MS));
    expect(plug.child.exitCode, plug.output()).toBeNull();
  }
  const nsA = await createNetns('toA', cleanup);
  const nsB = await createNetns('toB', cleanup);
  await moveLinkToNetns(tapA, nsA, '192.0.2.1/24', { cleanup });
  await moveLinkToNetns(tapB, nsB, '192.0.2.2/24', { cleanup });
  return { tapA, mgmt, nsA, nsB };
}

/** Average size of the frames the switch read from tap A (port of endpoint description tapA). */
async function avgInFrame(mgmt: string, tap: string): Promise<number> {
  const ports = JSON.parse((await runCommand(mgmt, 'json/port/print')).data.join('')) as Array<{ counters: { inFrames: number; inBytes: number }; endpoints: Array<{ description: string }> }>;
  const p = ports.find((x) => x.endpoints.some((e) => e.description.startsWith(tap)));
  return p && p.counters.inFrames ? p.counters.inBytes / p.counters.inFrames : 0;
}

async function drops(mgmt: string): Promise<Record<string, number>> {
  const ports = JSON.parse((await runCommand(mgmt, 'json/port/print')).data.join('')) as Array<{ counters: { drops: Record<string, number> } }>;
  const sum: Record<string, number> = {};
  for (const p of ports) for (const [k, v] of Object.entries(p.counters.drops)) sum[k] = (sum[k] ?? 0) + v;
  return sum;
}

describe('tap offloads: 64 KiB segments between taps, software segmentation for the rest', () => {
  const shared = withCleanup();
  let file: string;
  let want: string;

  beforeAll(async () => {
    await ensureTools({ ip: 'iproute2', socat: 'socat', nstat: 'iproute2', ethtool: 'ethtool', vde_plug: 'vdeplug' });
    ({ file, sha: want } = await randomFile(shared, TRANSFER_BYTES));
  }, 60_000);

  afterAll(async () => {
    await shared.run();
  }, 60_000);

  for (const offload of ['on', 'off'] as const) {
    test(`100 MB between two switch taps, --tap-offload ${offload}`, async () => {
      const cleanup = withCleanup();
      try {
        const r = await rig(cleanup, offload, 'switch');
        const before = await csumErrors(r.nsB);
        expect(await transfer(cleanup, r.nsA, r.nsB, '192.0.2.2', file, TCP_PORT)).toBe(want);
        expect(await csumErrors(r.nsB)).toBe(before);
        const d = await drops(r.mgmt);
        expect(d.badVnetHdr ?? 0).toBe(0);
        expect(d.oversize ?? 0).toBe(0);
        // with offloads the sender's tap hands the switch TSO frames far above the 1500-byte MTU
        const avg = await avgInFrame(r.mgmt, r.tapA);
        if (offload === 'on') expect(avg).toBeGreaterThan(8000);
        else expect(avg).toBeLessThan(1600);
        const k = await netnsExec(r.nsA, ['ethtool', '-k', r.tapA]);
        expect(k.stdout).toMatch(new RegExp(`tcp-segmentation-offload: ${offload}`));
      } finally {
        await cleanup.run();
      }
    }, 240_000);
  }

  test('100 MB each way between a switch tap with offloads and a Debian vde_plug tap (software segmentation)', async () => {
    const cleanup = withCleanup();
    try {
      const r = await rig(cleanup, 'on', 'debian-plug');
      const beforeB = await csumErrors(r.nsB);
      const beforeA = await csumErrors(r.nsA);
      expect(await transfer(cleanup, r.nsA, r.nsB, '192.0.2.2', file, TCP_PORT)).toBe(want);
      expect(await csumErrors(r.nsB)).toBe(beforeB);
      expect(await avgInFrame(r.mgmt, r.tapA)).toBeGreaterThan(8000); // GSO in, segmented out
      expect(await transfer(cleanup, r.nsB, r.nsA, '192.0.2.1', file, TCP_PORT + 1)).toBe(want);
      expect(await csumErrors(r.nsA)).toBe(beforeA);
      const d = await drops(r.mgmt);
      expect(d.badVnetHdr ?? 0).toBe(0);
      expect(d.oversize ?? 0).toBe(0);
    } finally {
      await cleanup.run();
    }
  }, 300_000);
});

// --- header validation and software segmentation, without a tap --------------------------------

describe('virtio-net header validation and software segmentation (addon)', () => {
  const a = native();
  for (const v6 of [false, true]) {
    for (const vlan of [false, true]) {
      test(`TSO ${v6 ? 'IPv6' : 'IPv4'}${vlan ? ' with an 802.1Q tag' : ''}: segments with valid checksums, sequence numbers and flags`, () => {
        const payload = randomBytes(65000 - 100);
        const mss = 1448;
        const { frame, l4 } = tsoFrame(v6, vlan, payload);
        const h = vnet(1, v6 ? 4 : 1, l4 + 32, mss, l4, 16);
        expect(a.vnetCheck(h, frame)).toBe('needsWork');
        const segs = a.vnetResolve(h, frame)!;
        expect(segs.length).toBe(Math.ceil(payload.length / mss));
        const l3 = vlan ? 18 : 14;
        const parts: Buffer[] = [];
        segs.forEach((s, i) => {
          expect(s.length).toBeLessThanOrEqual(l3 + (v6 ? 40 : 20) + 32 + mss);
          const r = checkSegment(s, v6, l3);
          expect(r.seq).toBe((0xfffff000 + i * mss) >>> 0);
          const last = i === segs.length - 1;
          expect(r.flags & 0x09).toBe(last ? 0x09 : 0); // FIN|PSH only on the last
          expect(r.flags & 0x10).toBe(0x10); // ACK everywhere
          if (!v6) expect(s.readUInt16BE(l3 + 4)).toBe((0xfffe + i) & 0xffff);
          parts.push(r.payload);
        });
        expect(Buffer.concat(parts).equals(payload)).toBe(true);
      });
    }
  }

  test('a partial checksum without GSO is filled in', () => {
    const { frame, l4 } = tsoFrame(false, false, randomBytes(777));
    const h = vnet(1, 0, 0, 0, l4, 16);
    expect(a.vnetCheck(h, frame)).toBe('needsWork');
    const out = a.vnetResolve(h, frame)!;
    expect(out).toHaveLength(1);
    checkSegment(out[0]!, false, 14);
  });

  test('impossible headers are refused (the engine drops them as badVnetHdr)', () => {
    const { frame, l4 } = tsoFrame(false, false, randomBytes(4000));
    const ok = (over: Partial<{ flags: number; gso: number; hdrLen: number; gsoSize: number; start: number; off: number }>, f = frame) =>
      a.vnetCheck(vnet(over.flags ?? 1, over.gso ?? 1, over.hdrLen ?? l4 + 32, over.gsoSize ?? 1448, over.start ?? l4, over.off ?? 16), f);
    expect(ok({})).toBe('needsWork');
    expect(ok({ gsoSize: 0 })).toBe('bad');
    expect(ok({ hdrLen: frame.length + 1 })).toBe('bad');
    expect(ok({ start: frame.length })).toBe('bad');
    expect(ok({ off: 60000 })).toBe('bad');
    expect(ok({ gso: 3 })).toBe('bad'); // UDP fragmentation offload: not accepted
    expect(ok({ gso: 0x42 })).toBe('bad');
    expect(ok({ gso: 4 })).toBe('bad'); // TCPv6 type on an IPv4 frame
    expect(ok({ flags: 0x80 })).toBe('bad');
    expect(ok({ flags: 0 })).toBe('bad'); // GSO without a partial checksum
    expect(ok({ gsoSize: 1 })).toBe('bad'); // more segments than any TCP sender makes
    expect(ok({}, frame.subarray(0, 40))).toBe('bad'); // headers cut off
    expect(a.vnetCheck(vnet(0, 0, 0, 0, 0, 0), frame)).toBe('plain');
    expect(a.vnetCheck(vnet(2, 0, 0, 0, 0, 0), frame)).toBe('plain');
    expect(a.vnetCheck(vnet(1, 0, 0, 0, 2, 0), frame)).toBe('bad'); // checksum start inside the MAC header
    expect(a.dropNames()).toContain('badVnetHdr');
  });
});
