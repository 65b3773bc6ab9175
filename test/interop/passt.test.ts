/*
 * passt:// end to end with the real passt (Debian package passt): our switch, our
 * `vde_plug --reconnect SW passt:///...` (a private passt on a socketpair), and a network
 * namespace whose tap is plugged into the switch by our `vde_plug tap://` (offloads on). Busybox
 * udhcpc leases the address passt assigns (with its MTU); a file served on the host's 127.0.0.1 is
 * fetched through the gateway address passt maps to the host, sha256-checked; a host client
 * reaches a server in the namespace through passt's port forward (`tcp-ports=`); killing passt is
 * reported (by vde_plug, with the signal) and, with --reconnect, a new passt takes over and the
 * namespace fetches again; without --reconnect vde_plug exits 1 naming passt's end; a missing
 * passt and bad options are named. All traffic stays on loopback and inside the namespace.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { freePort, httpGet, writeUdhcpcScript } from '../helpers/nat.js';
import { createNetns, createTapInNetns, netnsExec, pollUntil, run, spawnInNetns, tapAttached, uniqueIfname, withCleanup } from '../helpers/netns.js';
import { ROOT, runBin, startSwitch, tmpdir, type RunningSwitch } from '../helpers/switchproc.js';

const PLUG_BIN = path.join(ROOT, 'bin', 'vde_plug');
const ATTACH_TIMEOUT_MS = 15_000;
const FILE_BYTES = 4 * 1024 * 1024;
const GUEST_HTTP_PORT = 8080;
const GUEST_ADDR = '10.0.2.15';
const GATEWAY = '10.0.2.2';
const PASST_MTU = 65520;

/** The pids of the children of `pid`. */
async function childPids(pid: number): Promise<number[]> {
  const r = await run(['ps', '-o', 'pid=', '--ppid', String(pid)], { check: false });
  return r.stdout.split('\n').map((l) => Number(l.trim())).filter((n) => n > 0);
}

describe('passt:// with the real passt, a namespace behind our switch', () => {
  const cleanup = withCleanup();
  let sw: RunningSwitch;
  let ns: string;
  let tap: string;
  let hostHttpPort: number;
  let fwdPort: number;
  let fileData: Buffer;
  let plug: ReturnType<typeof spawnInNetns>;
  let dhcpScript: string;

  const lease = async (): Promise<string> => {
    const r = await netnsExec(ns, ['busybox', 'udhcpc', '-i', tap, '-q', '-n', '-f', '-t', '5', '-T', '2', '-s', dhcpScript], { check: false, timeoutMs: 40_000 });
    const a = await netnsExec(ns, ['ip', '-o', 'link', 'show', 'dev', tap]);
    const b = await netnsExec(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', tap]);
    return `${a.stdout}\n${b.stdout}\n${r.stdout}${r.stderr}`;
  };
  const fetchFromHost = async (): Promise<string> => {
    const r = await netnsExec(ns, ['sh', '-c', `curl -sS --max-time 30 http://${GATEWAY}:${hostHttpPort}/file | sha256sum`], { timeoutMs: 60_000 });
    return r.stdout.slice(0, 64);
  };
  const passtPid = async (): Promise<number> => pollUntil(async () => (await childPids(plug.child.pid!))[0], 10_000, 'passt child of vde_plug');

  beforeAll(async () => {
    await ensureTools({ passt: 'passt', ip: 'iproute2', busybox: 'busybox-static', curl: 'curl', ps: 'procps' });
    const dir = cleanup.path(tmpdir('vdets-passt-'));
    sw = await startSwitch();
    cleanup.add('switch', () => sw.stop());

    fileData = randomBytes(FILE_BYTES);
    const hostHttp = http.createServer((req, res) => {
      if (req.url === '/file') res.end(fileData);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => hostHttp.listen(0, '127.0.0.1', r));
    hostHttpPort = (hostHttp.address() as net.AddressInfo).port;
    cleanup.add('http', () => new Promise((r) => hostHttp.close(r)));

    fwdPort = await freePort();
    const loc = `passt:///address=${GUEST_ADDR}/netmask=24/gateway=${GATEWAY}/tcp-ports=${fwdPort}:${GUEST_HTTP_PORT}/mtu=${PASST_MTU}`;
    plug = spawnInNetns(null, [process.execPath, PLUG_BIN, '--reconnect', `vde://${sw.dir}`, loc], { cleanup });
    await pollUntil(async () => (await sw.cmd('port/print')).data.join('\n').includes('vdeplug'), ATTACH_TIMEOUT_MS, `passt plug (${plug.output()})`);

    ns = await createNetns('vpasst', cleanup);
    tap = uniqueIfname('vps');
    await createTapInNetns(ns, tap, null, { cleanup });
    spawnInNetns(ns, [process.execPath, PLUG_BIN, `vde://${sw.dir}`, `tap://${tap}`], { cleanup });
    await pollUntil(() => tapAttached(tap, ns), ATTACH_TIMEOUT_MS, 'our vde_plug on the tap');

    dhcpScript = writeUdhcpcScript(dir);
    const guestDir = path.join(dir, 'www');
    fs.mkdirSync(guestDir);
    fs.writeFileSync(path.join(guestDir, 'guest.txt'), 'hello from the namespace\n');
    spawnInNetns(ns, ['busybox', 'httpd', '-f', '-p', String(GUEST_HTTP_PORT), '-h', guestDir], { cleanup });
  }, 180_000);

  afterAll(async () => {
    await cleanup.run();
  }, 60_000);

  test('busybox udhcpc leases the address, gateway and MTU passt announces', async () => {
    const out = await lease();
    expect(out).toContain(`${GUEST_ADDR}/24`);
    expect(out).toContain(`mtu ${PASST_MTU}`);
    const routes = await netnsExec(ns, ['ip', 'route']);
    expect(routes.stdout).toContain(`default via ${GATEWAY}`);
  }, 60_000);

  test('a file on the host loopback is fetched through the gateway intact', async () => {
    expect(await fetchFromHost()).toBe(createHash('sha256').update(fileData).digest('hex'));
  }, 90_000);

  test("a host client reaches a server in the namespace through passt's port forward", async () => {
    const body = await pollUntil(async () => httpGet(`http://127.0.0.1:${fwdPort}/guest.txt`).catch(() => null), 20_000, 'the forwarded server');
    expect(body.toString()).toBe('hello from the namespace\n');
  }, 60_000);

  test('passt killed: reported with the signal; --reconnect starts a new passt that serves again', async () => {
    const first = await passtPid();
    process.kill(first, 'SIGKILL');
    await pollUntil(() => /passt \(pid \d+\) was killed by SIGKILL/.test(plug.output()), 10_000, `the report (${plug.output()})`);
    await pollUntil(() => /passt \(pid \d+[^)]*\): reconnected/.test(plug.output()), 10_000, `the restart (${plug.output()})`);
    const second = await passtPid();
    expect(second).not.toBe(first);
    expect(plug.child.exitCode).toBeNull();
    expect(await lease()).toContain(`${GUEST_ADDR}/24`);
    expect(await fetchFromHost()).toBe(createHash('sha256').update(fileData).digest('hex'));
  }, 120_000);

  test('without --reconnect, passt dying ends vde_plug with status 1 naming it', async () => {
    const p = spawnInNetns(null, [process.execPath, PLUG_BIN, 'passt:///address=10.9.0.2/netmask=24/gateway=10.9.0.1', 'null://'], { cleanup });
    const pid = await pollUntil(async () => (await childPids(p.child.pid!))[0], 10_000, `passt child (${p.output()})`);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(pid, "SIGKILL");
    const code = await pollUntil(() => p.child.exitCode, 10_000, `vde_plug to exit (${p.output()})`);
    expect(code).toBe(1);
    expect(p.output()).toMatch(/passt \(pid \d+\) was killed by SIGKILL/);
  }, 60_000);

  test('a missing passt is named with its Debian package; bad options are named', async () => {
    const noPath = await run(['env', `PATH=${path.join(ROOT, 'no-such-dir')}`, process.execPath, PLUG_BIN, 'passt://', 'null://'], { check: false, timeoutMs: 20_000 });
    expect(noPath.code).toBe(1);
    expect(noPath.stderr).toMatch(/passt:\/\/: the passt program is not installed \(Debian package "passt"; not found in PATH\)/);
    expect(noPath.stderr).not.toMatch(/\n\s+at /);
    const badKey = await runBin('vde_plug', ['passt:///bogus=1', 'null://'], { timeoutMs: 20_000 });
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toMatch(/unknown key "bogus"/);
    const badMtu = await runBin('vde_plug', ['passt:///mtu=70000', 'null://'], { timeoutMs: 20_000 });
    expect(badMtu.code).toBe(1);
    expect(badMtu.stderr).toMatch(/passt:\/\/: passt \(pid \d+\) exited with status 1: .*MTU/i);
  }, 60_000);
});
