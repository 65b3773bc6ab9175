/*
 * A QEMU guest on our switch (-netdev vde) gets its address from the real passt behind our
 * `vde_plug SW passt:///...` by DHCP and fetches a file from an HTTP server on the host's
 * 127.0.0.1 through passt (the gateway address passt maps to the host's loopback), sha256-checked.
 * passt is told the addresses (10.0.2.15, gateway 10.0.2.2) and mtu=1500, since the guest's
 * -netdev vde path carries 1500-byte frames. Only the loopback HTTP server is a host socket.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { buildGuest, parseGuestOutput, startGuest } from '../helpers/guest.js';
import { pollUntil, withCleanup } from '../helpers/netns.js';
import { ROOT, startSwitch, type RunningSwitch } from '../helpers/switchproc.js';

const FILE_BYTES = 1024 * 1024;
const GUEST_JOBS_TIMEOUT_MS = 120_000;

describe('QEMU guest through passt://', () => {
  const cleanup = withCleanup();
  let sw: RunningSwitch;
  let server: http.Server;
  const body = randomBytes(FILE_BYTES);

  beforeAll(async () => {
    await ensureTools({ 'qemu-system-x86_64': 'qemu-system-x86', passt: 'passt' });
    await buildGuest();
    sw = await startSwitch();
    server = http.createServer((_req, res) => res.end(body));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const plug = spawn(process.execPath, [join(ROOT, 'bin', 'vde_plug'), sw.dir, 'passt:///address=10.0.2.15/netmask=24/gateway=10.0.2.2/mtu=1500'], { stdio: ['pipe', 'pipe', 'pipe'] });
    cleanup.process(plug);
    await pollUntil(async () => (await sw.json<unknown[]>('json/port/print')).length === 1, 15_000, 'passt on the switch');
  }, 15 * 60 * 1000);

  afterAll(async () => {
    await cleanup.run();
    server.close();
    await sw.stop();
  }, 60_000);

  test('DHCP from passt gives 10.0.2.15 and the guest fetches a host file intact', async () => {
    const port = (server.address() as AddressInfo).port;
    const guest = await startGuest({
      netdev: ['-netdev', `vde,id=n0,sock=${sw.dir}`, '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:00:00:41'],
      cmdline: { dhcp: 1, wget: `http://10.0.2.2:${port}/file` },
      timeoutMs: 150_000,
      cleanup,
    });
    await guest.waitFor(/^VT-DONE/m, GUEST_JOBS_TIMEOUT_MS);
    const report = parseGuestOutput(guest.output());
    expect(report.errors, guest.output()).toEqual([]);
    expect(report.addrs).toContain('10.0.2.15');
    expect(report.wgetSha).toBe(createHash('sha256').update(body).digest('hex'));
    await guest.kill();
  }, 180_000);
});
