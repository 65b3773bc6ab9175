/*
 * Run-time port forwards through slirpvde's management socket (-M): TCP and UDP forwards added with
 * `fwd/add` reaches a server inside a namespace on the switch, `fwd/list` shows it, a forward to
 * a host port already in use fails with "Address already in use" while the existing one keeps
 * working, and `fwd/del` removes it. The namespace uses 10.0.2.15, the slirp default, and exists
 * only behind our switch.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { runCommand } from '../../src/vdecmd/main.js';
import { ensureTools } from '../helpers/deps.js';
import { createNetns, createTap, moveLinkToNetns, netnsExec, pollUntil, run, spawnInNetns, tapAttached, uniqueIfname, withCleanup } from '../helpers/netns.js';
import { ROOT, startSwitch, tmpdir, type RunningSwitch } from '../helpers/switchproc.js';

const HOST_PORT = 41000 + (process.pid % 10000);
const GUEST_PORT = 8081;
const ATTACH_TIMEOUT_MS = 10_000;

function fetchLine(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host, port });
    let got = '';
    const t = setTimeout(() => {
      c.destroy();
      reject(new Error('no answer'));
    }, 5000);
    c.on('data', (d) => (got += d));
    c.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    c.on('close', () => {
      clearTimeout(t);
      resolve(got.trim());
    });
  });
}

describe('slirpvde management socket', () => {
  const cleanup = withCleanup();
  let sw: RunningSwitch;
  let mgmt: string;
  let ns: string;

  beforeAll(async () => {
    await ensureTools({ ip: 'iproute2', socat: 'socat', vde_plug: 'vdeplug' });
    sw = await startSwitch();
    mgmt = path.join(tmpdir(), 'nat.mgmt');
    const nat = spawnInNetns(null, [process.execPath, path.join(ROOT, 'bin', 'slirpvde'), '-M', mgmt, sw.dir], { cleanup });
    await pollUntil(async () => (await sw.cmd('port/print')).data.join('\n').includes('slirpvde:'), ATTACH_TIMEOUT_MS, `slirpvde (${nat.output()})`);
    ns = await createNetns('vsc', cleanup);
    const tap = await createTap(uniqueIfname('vsc'), { cleanup });
    const plug = spawnInNetns(null, ['vde_plug', `vde://${sw.dir}`, `tap://${tap}`], { cleanup });
    await pollUntil(() => tapAttached(tap), ATTACH_TIMEOUT_MS, `vde_plug (${plug.output()})`);
    await moveLinkToNetns(tap, ns, '10.0.2.15/24', { cleanup });
    await run(['ip', '-n', ns, 'route', 'add', 'default', 'via', '10.0.2.2']);
    await run(['ip', '-n', ns, '-6', 'addr', 'add', 'fd00::15/64', 'dev', tap, 'nodad']);
    spawnInNetns(ns, ['socat', `TCP-LISTEN:${GUEST_PORT},reuseaddr,fork`, 'SYSTEM:echo hello-from-guest'], { cleanup, stdin: 'ignore' });
    spawnInNetns(ns, ['socat', `UDP-RECVFROM:${GUEST_PORT},fork`, 'SYSTEM:echo udp-from-guest'], { cleanup, stdin: 'ignore' });
    await pollUntil(async () => (await netnsExec(ns, ['ss', '-ltn'])).stdout.includes(`:${GUEST_PORT}`), ATTACH_TIMEOUT_MS, 'guest server');
  }, 120_000);

  afterAll(async () => {
    await cleanup.run();
    await sw.stop();
  }, 60_000);

  test('forwards an IPv6 host port to an IPv6 guest (vde_plug slirp:///v6/tcpfwd=[::1]:P:[fd00::15]:G)', async () => {
    spawnInNetns(ns, ['socat', `TCP6-LISTEN:${GUEST_PORT + 1},reuseaddr,fork`, 'SYSTEM:echo hello-over-ipv6'], { cleanup, stdin: 'ignore' });
    const p6 = spawnInNetns(null, [process.execPath, path.join(ROOT, 'bin', 'vde_plug'), `slirp:///v6/tcpfwd=[::1]:${HOST_PORT + 2}:[fd00::15]:${GUEST_PORT + 1}`, sw.dir], { cleanup });
    let got = '';
    for (let i = 0; i < 20 && got !== 'hello-over-ipv6'; i++) {
      got = await fetchLine(HOST_PORT + 2, '::1').catch(() => '');
      if (got !== 'hello-over-ipv6') await new Promise((r) => setTimeout(r, 250));
    }
    expect(got, p6.output()).toBe('hello-over-ipv6');
  }, 60_000);

  test('forwards UDP at run time', async () => {
    expect((await runCommand(mgmt, `fwd/add udp 127.0.0.1:${HOST_PORT + 1}:10.0.2.15:${GUEST_PORT}`)).status).toBe(0);
    const sock = dgram.createSocket('udp4');
    try {
      let got = '';
      sock.on('message', (m) => (got = m.toString().trim()));
      // the first datagram may be spent on slirp's ARP for the guest: resend until answered
      for (let i = 0; i < 20 && !got; i++) {
        sock.send('ping', HOST_PORT + 1, '127.0.0.1');
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(got).toBe('udp-from-guest');
    } finally {
      sock.close();
      expect((await runCommand(mgmt, `fwd/del udp ${HOST_PORT + 1}`)).status).toBe(0);
    }
  }, 60_000);

  test('adds, lists and removes forwards at run time', async () => {
    const add = await runCommand(mgmt, `fwd/add tcp 127.0.0.1:${HOST_PORT}:10.0.2.15:${GUEST_PORT}`);
    expect(add.status).toBe(0);
    expect(await fetchLine(HOST_PORT)).toBe('hello-from-guest');
    expect((await runCommand(mgmt, 'fwd/list')).data).toEqual([`tcp 127.0.0.1:${HOST_PORT} -> 10.0.2.15:${GUEST_PORT}`]);
    const again = await runCommand(mgmt, `fwd/add tcp 127.0.0.1:${HOST_PORT}:10.0.2.15:${GUEST_PORT}`);
    expect(again.status).toBe(98);
    expect(await fetchLine(HOST_PORT)).toBe('hello-from-guest');
    expect((await runCommand(mgmt, 'fwd/add tcp nonsense')).status).toBe(22);
    expect((await runCommand(mgmt, 'no/such')).status).toBe(38);
    expect((await runCommand(mgmt, `fwd/del tcp 127.0.0.1:${HOST_PORT}`)).status).toBe(0);
    await expect(fetchLine(HOST_PORT)).rejects.toThrow();
    expect((await runCommand(mgmt, `fwd/del tcp ${HOST_PORT}`)).status).toBe(2);
    const info = await runCommand(mgmt, 'showinfo');
    expect(info.status).toBe(0);
    expect(info.data.length).toBeGreaterThan(0);
  }, 60_000);
});
