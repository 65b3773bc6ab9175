/*
 * A QEMU guest on our switch (-netdev vde) gets its address from our slirp endpoint by DHCP and
 * fetches a file from an HTTP server on the host's 127.0.0.1 through the NAT (the gateway
 * 10.0.2.2 is the host's loopback), and the bytes arrive intact. The 10.0.2.x addresses exist
 * only inside the virtual LAN; the only host socket involved is the loopback HTTP server.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { buildGuest, parseGuestOutput, startGuest } from '../helpers/guest.js';
import { pollUntil, withCleanup } from '../helpers/netns.js';
import { ROOT, startSwitch, type RunningSwitch } from '../helpers/switchproc.js';

const FILE_BYTES = 1024 * 1024;
const GUEST_JOBS_TIMEOUT_MS = 120_000;

describe('QEMU guest through our slirp', () => {
  const cleanup = withCleanup();
  let sw: RunningSwitch;
  let server: http.Server;
  const body = randomBytes(FILE_BYTES);

  beforeAll(async () => {
    await ensureTools({ 'qemu-system-x86_64': 'qemu-system-x86' });
    await buildGuest();
    sw = await startSwitch();
    server = http.createServer((_req, res) => res.end(body));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const slirp = spawn(process.execPath, [join(ROOT, 'bin', 'vde_plug'), 'slirp://', sw.dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    cleanup.process(slirp);
    await pollUntil(async () => (await sw.json<unknown[]>('json/port/print')).length === 1, 10_000, 'slirp on the switch');
  }, 15 * 60 * 1000);

  afterAll(async () => {
    await cleanup.run();
    server.close();
    await sw.stop();
  }, 60_000);

  test('DHCP gives 10.0.2.15 and the guest fetches a host file intact', async () => {
    const port = (server.address() as AddressInfo).port;
    const dir = cleanup.path(mkdtempSync(join(tmpdir(), 'vde-ts-qslirp-')));
    expect(existsSync(dir)).toBe(true);
    const guest = await startGuest({
      netdev: ['-netdev', `vde,id=n0,sock=${sw.dir}`, '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:00:00:31'],
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
