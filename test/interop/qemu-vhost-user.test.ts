/*
 * A real QEMU 7.2 guest on `vde_switch --vhost-user PATH` (-netdev vhost-user, guest memory
 * shared through memory-backend-memfd): the guest gets its address by DHCP from our slirp
 * endpoint (`vde_plug slirp://` on the same switch), pings a network namespace whose tap the
 * switch opened (offloads on), fetches a file from the namespace and serves one to it, both
 * checked by sha256 (TCP segments of up to 64 KiB cross the switch whole: the port's average
 * input frame shows it, and the namespace counts no TCP checksum error). Then QEMU is killed:
 * the port goes inactive, and a second QEMU on the same socket gets the same port back and
 * reaches the namespace again. Last the switch restarts: that QEMU (`reconnect=1`) connects to
 * the new switch by itself and the guest is reachable again.
 *
 * QEMU 7.2 under TCG (no KVM here) crashes in vhost_net_start when the virtio-net device uses
 * MSI-X (msix_set_vector_notifiers -> virtio_pci_vector_unmask, seen with gdb), so the device is
 * given `vectors=0` (legacy INTx); with KVM that is not needed. Addresses: slirp's 10.0.2.0/24.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCommand } from '../../src/vdecmd/main.js';
import { ensureTools } from '../helpers/deps.js';
import { buildGuest, parseGuestOutput, startGuest, type GuestHandle } from '../helpers/guest.js';
import { createNetns, moveLinkToNetns, netnsExec, ping, pollUntil, spawnInNetns, uniqueIfname, withCleanup } from '../helpers/netns.js';
import { ROOT, SWITCH_BIN } from '../helpers/switchproc.js';

const SETUP_TIMEOUT_MS = 15 * 60 * 1000;
const TEST_TIMEOUT_MS = 300_000;
const GUEST_LIFETIME_MS = 200_000;
const GUEST_JOBS_TIMEOUT_MS = 150_000;
const ATTACH_TIMEOUT_MS = 10_000;
const GUEST_MEMORY_MB = 256;
const GUEST_SLEEP_S = 120;
const BLOB_BYTES = 8 * 1024 * 1024;
const NS_HTTP_PORT = 8080;
const GUEST_HTTP_PORT = 80;
const CURL_TIMEOUT_S = 60;
/** How long QEMU may take to find a restarted switch (it tries every second). */
const RECONNECT_TIMEOUT_MS = 20_000;

const NS_IP = '10.0.2.50';
const GUEST_IP = '10.0.2.15';
const GUEST2_IP = '10.0.2.16';

/** QEMU arguments for a virtio-net device on a vhost-user socket with shared guest memory (reconnect: seconds between QEMU's attempts when the switch goes away). */
function vhostArgs(sock: string, mac: string, reconnect = 0): { netdev: string[]; extraQemuArgs: string[] } {
  const chardev = `socket,id=c0,path=${sock}${reconnect ? `,reconnect=${reconnect}` : ''}`;
  return {
    netdev: ['-chardev', chardev, '-netdev', 'vhost-user,id=n0,chardev=c0', '-device', `virtio-net-pci,netdev=n0,vectors=0,mac=${mac}`],
    extraQemuArgs: ['-object', `memory-backend-memfd,id=mem,size=${GUEST_MEMORY_MB}M,share=on`, '-numa', 'node,memdev=mem'],
  };
}

interface PortJson {
  port: number;
  active: boolean;
  counters: { inFrames: number; inBytes: number; drops: Record<string, number> };
  endpoints: Array<{ description: string }>;
}

describe('a QEMU guest on a vhost-user port', () => {
  const cleanup = withCleanup();

  beforeAll(async () => {
    await ensureTools({ 'qemu-system-x86_64': 'qemu-system-x86', ip: 'iproute2', ping: 'iputils-ping', curl: 'curl', busybox: 'busybox-static', nstat: 'iproute2' });
    await buildGuest();
  }, SETUP_TIMEOUT_MS);

  afterAll(async () => {
    await cleanup.run();
  }, 60_000);

  test(
    'DHCP through slirp, ping and sha256-checked TCP both ways with a namespace, a QEMU restart and a switch restart',
    async () => {
      const dir = cleanup.path(mkdtempSync(join(tmpdir(), 'vde-ts-qvu-')));
      const sw = join(dir, 'sw');
      const mgmt = join(dir, 'mgmt');
      const sock = join(dir, 'vm.vhost');
      const tap = uniqueIfname('qvu');
      const swProc = spawnInNetns(null, [process.execPath, SWITCH_BIN, '-s', sw, '-M', mgmt, '--nostdin', '-t', tap, '--vhost-user', sock], { cleanup });
      cleanup.link(tap, null);
      await pollUntil(() => existsSync(mgmt) && existsSync(sock), ATTACH_TIMEOUT_MS, `switch (${swProc.output()})`);
      const ports = async (): Promise<PortJson[]> => JSON.parse((await runCommand(mgmt, 'json/port/allprint')).data.join('')) as PortJson[];
      const vmPort = async (): Promise<PortJson | undefined> => (await ports()).find((p) => p.endpoints.some((e) => e.description.includes('vhost-user')));

      const slirp = spawnInNetns(null, [process.execPath, join(ROOT, 'bin', 'vde_plug'), 'slirp://', sw], { cleanup, stdin: 'ignore' });
      await pollUntil(async () => (await ports()).filter((p) => p.active).length === 2, ATTACH_TIMEOUT_MS, `slirp on the switch (${slirp.output()})`);

      const ns = await createNetns('qvu', cleanup);
      await moveLinkToNetns(tap, ns, `${NS_IP}/24`, { cleanup });
      // a file the guest fetches from the namespace
      const www = join(dir, 'www');
      mkdirSync(www);
      const blob = randomBytes(BLOB_BYTES);
      writeFileSync(join(www, 'blob'), blob);
      const httpd = spawnInNetns(ns, ['busybox', 'httpd', '-f', '-p', String(NS_HTTP_PORT), '-h', www], { cleanup, stdin: 'ignore' });
      await pollUntil(async () => (await netnsExec(ns, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${NS_HTTP_PORT}/blob`])).stdout === '200', ATTACH_TIMEOUT_MS, `httpd (${httpd.output()})`);

      const guest: GuestHandle = await startGuest({
        ...vhostArgs(sock, '52:54:00:76:68:01'),
        memoryMb: GUEST_MEMORY_MB,
        cmdline: { dhcp: 1, httpd: GUEST_HTTP_PORT, httpsize: BLOB_BYTES, ping: NS_IP, count: 3, wget: `http://${NS_IP}:${NS_HTTP_PORT}/blob`, sleep: GUEST_SLEEP_S },
        timeoutMs: GUEST_LIFETIME_MS,
        cleanup,
      });
      await guest.waitFor(/^VT-SLEEP /m, GUEST_JOBS_TIMEOUT_MS);
      const report = parseGuestOutput(guest.output());
      expect(report.errors, guest.output()).toEqual([]);
      expect(report.addrs, guest.output()).toContain(GUEST_IP); // DHCP from slirp
      expect(report.pings.find((p) => p.target === NS_IP)?.rx, guest.output()).toBe(3);
      expect(report.wgetSha, guest.output()).toBe(createHash('sha256').update(blob).digest('hex'));
      // the namespace fetches the guest's file
      const got = await netnsExec(ns, ['sh', '-c', `curl -s --max-time ${CURL_TIMEOUT_S} http://${GUEST_IP}:${GUEST_HTTP_PORT}/blob | sha256sum`], { timeoutMs: (CURL_TIMEOUT_S + 10) * 1000 });
      expect(got.stdout.split(' ')[0], guest.output()).toBe(report.httpdSha);
      // 64 KiB segments crossed whole, and the namespace saw no bad TCP checksum
      const p1 = await vmPort();
      expect(p1?.active).toBe(true);
      expect(p1!.counters.inBytes / p1!.counters.inFrames).toBeGreaterThan(3000);
      const nstat = await netnsExec(ns, ['nstat', '-az', 'TcpInCsumErrors']);
      expect(Number(/TcpInCsumErrors\s+(\d+)/.exec(nstat.stdout)?.[1] ?? 0)).toBe(0);
      expect(p1!.counters.drops.badVnetHdr).toBe(0);

      // QEMU goes away: the port stays, inactive; a new QEMU gets it back
      await guest.kill();
      await pollUntil(async () => (await ports()).some((p) => p.port === p1!.port && !p.active), ATTACH_TIMEOUT_MS, 'the guest port inactive');
      const guest2 = await startGuest({
        ...vhostArgs(sock, '52:54:00:76:68:02', 1),
        memoryMb: GUEST_MEMORY_MB,
        cmdline: { ip: `${GUEST2_IP}/24`, ping: NS_IP, count: 3, sleep: 30 },
        timeoutMs: GUEST_LIFETIME_MS,
        cleanup,
      });
      await guest2.waitFor(/^VT-SLEEP /m, GUEST_JOBS_TIMEOUT_MS);
      const report2 = parseGuestOutput(guest2.output());
      expect(report2.pings.find((p) => p.target === NS_IP)?.rx, guest2.output()).toBe(3);
      const p2 = await vmPort();
      expect([p2?.port, p2?.active]).toEqual([p1!.port, true]);
      const back = await ping(ns, GUEST2_IP, 3);
      expect(back.received, back.output).toBe(3);

      // the switch restarts: QEMU (reconnect=1) connects again and the guest is reachable again
      swProc.child.kill('SIGTERM');
      await pollUntil(() => swProc.child.exitCode !== null || swProc.child.signalCode !== null, ATTACH_TIMEOUT_MS, 'the switch to stop');
      const tap2 = uniqueIfname('qvu');
      const sw2 = spawnInNetns(null, [process.execPath, SWITCH_BIN, '-s', sw, '-M', mgmt, '--nostdin', '-t', tap2, '--vhost-user', sock], { cleanup });
      cleanup.link(tap2, null);
      await pollUntil(() => existsSync(mgmt) && existsSync(sock), ATTACH_TIMEOUT_MS, `the switch again (${sw2.output()})`);
      await moveLinkToNetns(tap2, ns, `${NS_IP}/24`, { cleanup });
      await pollUntil(async () => (await vmPort())?.active === true, RECONNECT_TIMEOUT_MS, `QEMU back on the new switch (${sw2.output()})`);
      const again = await pollUntil(async () => {
        const r = await ping(ns, GUEST2_IP, 1, { deadlineS: 2 });
        return r.received === 1 ? r : null;
      }, RECONNECT_TIMEOUT_MS, 'the guest reachable through the new switch');
      expect(again.received).toBe(1);
      await guest2.kill();
    },
    TEST_TIMEOUT_MS,
  );
});
