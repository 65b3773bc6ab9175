/*
 * Tap interfaces inside the switch (`vde_switch -t IFNAME`, repeatable or comma-separated): two
 * namespaces whose taps the switch opened ping each other, including 8000-byte pings over a
 * 9000-byte MTU; a TCP transfer between them arrives intact; and a tap deleted while in use
 * (`ip link del`) makes its port go away cleanly while the switch keeps serving.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCommand } from '../../src/vdecmd/main.js';
import { ensureTools } from '../helpers/deps.js';
import { createNetns, createTap, moveLinkToNetns, netnsExec, ping, pollUntil, run, spawnInNetns, tapAttached, uniqueIfname, withCleanup } from '../helpers/netns.js';
import { SWITCH_BIN } from '../helpers/switchproc.js';

const ATTACH_TIMEOUT_MS = 10_000;
const JUMBO_MTU_BYTES = 9000;
const TRANSFER_BYTES = 8 * 1024 * 1024;
const TCP_PORT = 5201;

describe('vde_switch -t: taps in the switch', () => {
  const cleanup = withCleanup();
  let mgmt: string;
  let nsA: string;
  let nsB: string;
  let tapA: string;
  let tapB: string;

  beforeAll(async () => {
    await ensureTools({ ip: 'iproute2', ping: 'iputils-ping', socat: 'socat' });
    const dir = cleanup.path(mkdtempSync(join(tmpdir(), 'vde-ts-tap-')));
    mgmt = join(dir, 'mgmt');
    tapA = uniqueIfname('vsa');
    tapB = uniqueIfname('vsb');
    const sw = spawnInNetns(null, [process.execPath, SWITCH_BIN, '-s', join(dir, 'sw'), '-M', mgmt, '--nostdin', '-t', tapA, '--tap', tapB], { cleanup });
    cleanup.link(tapA, null);
    cleanup.link(tapB, null);
    await pollUntil(() => existsSync(mgmt), ATTACH_TIMEOUT_MS, `switch (${sw.output()})`);
    nsA = await createNetns('vsA', cleanup);
    nsB = await createNetns('vsB', cleanup);
    await moveLinkToNetns(tapA, nsA, '192.0.2.1/24', { cleanup, mtu: JUMBO_MTU_BYTES });
    await moveLinkToNetns(tapB, nsB, '192.0.2.2/24', { cleanup, mtu: JUMBO_MTU_BYTES });
  }, 120_000);

  afterAll(async () => {
    await cleanup.run();
  }, 60_000);

  test('two namespaces ping through the switch, jumbo frames too, and the ports show module tuntap', async () => {
    expect((await ping(nsA, '192.0.2.2', 3)).received).toBe(3);
    expect((await ping(nsB, '192.0.2.1', 3, { size: 8000 })).received).toBe(3);
    const text = await runCommand(mgmt, 'port/print');
    expect(text.data.filter((l) => /module tuntap +: vs[ab]/.test(l))).toHaveLength(2);
  });

  test('a TCP transfer between the namespaces arrives intact', async () => {
    const data = randomBytes(TRANSFER_BYTES);
    const want = createHash('sha256').update(data).digest('hex');
    const server = spawnInNetns(nsB, ['sh', '-c', `socat -u TCP-LISTEN:${TCP_PORT},reuseaddr STDOUT | sha256sum`], { cleanup, stdin: 'ignore' });
    await pollUntil(async () => (await netnsExec(nsB, ['ss', '-ltn'])).stdout.includes(`:${TCP_PORT}`), ATTACH_TIMEOUT_MS, 'socat listening');
    await netnsExec(nsA, ['socat', '-u', 'STDIN', `TCP:192.0.2.2:${TCP_PORT}`], { input: data, timeoutMs: 60_000 });
    await pollUntil(() => /^[0-9a-f]{64}/.test(server.output()), 30_000, 'checksum');
    expect(server.output().slice(0, 64)).toBe(want);
  }, 120_000);

  test('a tap deleted while in use leaves a clean inactive port and the switch keeps serving', async () => {
    await run(['ip', '-n', nsB, 'link', 'del', tapB]);
    await pollUntil(async () => {
      const ports = JSON.parse((await runCommand(mgmt, 'json/port/print')).data.join('')) as Array<{ endpoints: Array<{ description: string }> }>;
      return !ports.some((p) => p.endpoints.some((e) => e.description === tapB));
    }, ATTACH_TIMEOUT_MS, 'the deleted tap to leave its port');
    const info = await runCommand(mgmt, 'port/showinfo');
    expect(info.status).toBe(0);
    const ports = JSON.parse((await runCommand(mgmt, 'json/port/print')).data.join('')) as Array<{ endpoints: Array<{ description: string }> }>;
    expect(ports.some((p) => p.endpoints.some((e) => e.description === tapA))).toBe(true);
  });
});

describe('tap errors and our own tap plug', () => {
  const cleanup = withCleanup();
  afterAll(async () => {
    await cleanup.run();
  }, 60_000);

  test('without root, -t fails with a clear message and leaves nothing behind', async () => {
    const dir = join(tmpdir(), `vde-ts-nobody-${process.pid}`);
    const r = await run(['su', '-s', '/bin/sh', 'nobody', '-c', `${process.execPath} ${SWITCH_BIN} -s ${dir} -t vtnope${process.pid % 1000} --nostdin`], { check: false });
    expect(r.code).toBe(1);
    // opening /dev/net/tun without the capability gives EPERM on some systems, EACCES on others
    expect(r.stderr).toMatch(/--tap vtnope\d+: .*(Operation not permitted|Permission denied) \(needs root or CAP_NET_ADMIN\)/);
    expect(existsSync(dir)).toBe(false);
  });

  test('our vde_plug tap:// joins two namespaces through our switch', async () => {
    const dir = cleanup.path(mkdtempSync(join(tmpdir(), 'vde-ts-tapplug-')));
    const sw = spawnInNetns(null, [process.execPath, SWITCH_BIN, '-s', join(dir, 'sw'), '--nostdin'], { cleanup });
    await pollUntil(() => existsSync(join(dir, 'sw', 'ctl')), ATTACH_TIMEOUT_MS, `switch (${sw.output()})`);
    const ns: string[] = [];
    for (const [i, addr] of ['192.0.2.1/24', '192.0.2.2/24'].entries()) {
      const n = await createNetns(`vtp${i}`, cleanup);
      const tap = await createTap(uniqueIfname(`vtp${i}`), { cleanup });
      const plug = spawnInNetns(null, [process.execPath, join(SWITCH_BIN, '..', 'vde_plug'), join(dir, 'sw'), `tap://${tap}`], { cleanup });
      await pollUntil(() => tapAttached(tap), ATTACH_TIMEOUT_MS, `our tap plug (${plug.output()})`);
      await moveLinkToNetns(tap, n, addr, { cleanup });
      ns.push(n);
    }
    expect((await ping(ns[0], '192.0.2.2', 3)).received).toBe(3);
  }, 60_000);
});
