/*
 * Large segments through the slirp endpoint, end to end: our switch, our `vde_plug SW
 * slirp:///mtu=65520`, and a network namespace whose tap is plugged in by our `vde_plug tap://`
 * (offloads on, 64 KiB segments on the data socket). Busybox udhcpc takes the MTU from the lease
 * (slirp's DHCP replies carry option 26) and IPv6 takes it from router advertisements (an MTU
 * option slirp's endpoint adds); a 24 MiB file goes up from the namespace to a host
 * server on 127.0.0.1 and one comes down, both sha256-checked; the switch's counters show the
 * frames toward slirp averaging well above 1514 bytes (whole segments, not 1500-byte hops), and
 * the namespace's kernel saw no TCP checksum error. All traffic stays on loopback and inside the
 * namespace.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { writeUdhcpcScript } from '../helpers/nat.js';
import { createNetns, createTapInNetns, netnsExec, pollUntil, spawnInNetns, tapAttached, uniqueIfname, withCleanup } from '../helpers/netns.js';
import { ROOT, startSwitch, tmpdir, type RunningSwitch } from '../helpers/switchproc.js';
import { csumErrors } from '../helpers/transfer.js';

const PLUG_BIN = path.join(ROOT, 'bin', 'vde_plug');
const ATTACH_TIMEOUT_MS = 15_000;
const FILE_BYTES = 24 * 1024 * 1024;
const SLIRP_MTU = 65520;
/** The largest MTU a tap takes. */
const TAP_MAX_MTU = 65521;
/** Frames toward slirp must average above this many bytes (a 1500-byte path averages below 1514). */
const LARGE_AVERAGE_BYTES = 8000;

interface PortJson {
  port: number;
  counters: { outFrames: number; outBytes: number };
  endpoints: Array<{ description: string }>;
}

describe('slirp:// takes and gives 64 KiB segments (our tap plug with offloads in a namespace)', () => {
  const cleanup = withCleanup();
  let sw: RunningSwitch;
  let ns: string;
  let tap: string;
  let dir: string;
  let port: number;
  let down: Buffer;
  let upSha = '';
  let slirpPid = 0;

  const slirpPort = async (): Promise<PortJson> => {
    const ports = await sw.json<PortJson[]>('json/port/print');
    const p = ports.find((x) => x.endpoints.some((e) => e.description.includes(`pid=${slirpPid}`)));
    if (!p) throw new Error(`no port for the slirp plug (pid ${slirpPid}): ${JSON.stringify(ports)}`);
    return p;
  };

  beforeAll(async () => {
    await ensureTools({ ip: 'iproute2', busybox: 'busybox-static', curl: 'curl', nstat: 'iproute2' });
    dir = cleanup.path(tmpdir('vdets-slirpseg-'));
    sw = await startSwitch();
    cleanup.add('switch', () => sw.stop());

    down = randomBytes(FILE_BYTES);
    const srv = http.createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/file') {
        res.end(down);
        return;
      }
      const h = createHash('sha256');
      req.on('data', (d: Buffer) => h.update(d));
      req.on('end', () => {
        upSha = h.digest('hex');
        res.end('ok\n');
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    port = (srv.address() as net.AddressInfo).port;
    cleanup.add('http', () => new Promise((r) => srv.close(r)));

    const slirp = spawnInNetns(null, [process.execPath, PLUG_BIN, `vde://${sw.dir}`, `slirp:///mtu=${SLIRP_MTU}`], { cleanup });
    slirpPid = slirp.child.pid!;
    await pollUntil(async () => (await slirpPort().catch(() => null)) !== null, ATTACH_TIMEOUT_MS, `slirp plug (${slirp.output()})`);

    ns = await createNetns('vslseg', cleanup);
    tap = uniqueIfname('vsg');
    await createTapInNetns(ns, tap, null, { cleanup });
    spawnInNetns(ns, [process.execPath, PLUG_BIN, `vde://${sw.dir}`, `tap://${tap}`], { cleanup });
    await pollUntil(() => tapAttached(tap, ns), ATTACH_TIMEOUT_MS, 'our vde_plug on the tap');
    writeUdhcpcScript(dir);
  }, 180_000);

  afterAll(async () => {
    await cleanup.run();
  }, 60_000);

  test(`router advertisements carry the MTU (${SLIRP_MTU}; libslirp's own have none)`, async () => {
    // a device MTU above slirp's, so the kernel takes the advertised one for IPv6
    await netnsExec(ns, ['sysctl', '-qw', `net.ipv6.conf.${tap}.accept_ra=2`]);
    await netnsExec(ns, ['ip', 'link', 'set', 'dev', tap, 'mtu', String(TAP_MAX_MTU)]);
    await netnsExec(ns, ['ip', 'link', 'set', 'dev', tap, 'up']);
    const v6mtu = async (): Promise<number> => Number((await netnsExec(ns, ['cat', `/proc/sys/net/ipv6/conf/${tap}/mtu`])).stdout.trim());
    await pollUntil(async () => (await v6mtu()) === SLIRP_MTU, 20_000, `the advertised MTU (now ${await v6mtu()})`);
  }, 60_000);

  test(`the lease carries the MTU (${SLIRP_MTU}) and the namespace takes it`, async () => {
    await netnsExec(ns, ['busybox', 'udhcpc', '-i', tap, '-q', '-n', '-f', '-t', '5', '-T', '2', '-s', path.join(dir, 'dhcp.sh')], { check: false, timeoutMs: 40_000 });
    const link = await netnsExec(ns, ['ip', '-o', 'link', 'show', 'dev', tap]);
    expect(link.stdout).toContain(`mtu ${SLIRP_MTU}`);
    expect((await netnsExec(ns, ['ip', '-4', '-o', 'addr', 'show', 'dev', tap])).stdout).toContain('10.0.2.15/24');
  }, 60_000);

  test('a file goes up to the host whole, in large frames toward slirp', async () => {
    const file = path.join(dir, 'up');
    const data = randomBytes(FILE_BYTES);
    fs.writeFileSync(file, data);
    const before = (await slirpPort()).counters;
    const csumBefore = await csumErrors(ns);
    await netnsExec(ns, ['curl', '-sS', '--max-time', '60', '-T', file, `http://10.0.2.2:${port}/up`], { timeoutMs: 90_000 });
    expect(upSha).toBe(createHash('sha256').update(data).digest('hex'));
    const after = (await slirpPort()).counters;
    const frames = after.outFrames - before.outFrames;
    const bytes = after.outBytes - before.outBytes;
    expect(bytes).toBeGreaterThan(FILE_BYTES);
    expect(bytes / frames).toBeGreaterThan(LARGE_AVERAGE_BYTES);
    expect(await csumErrors(ns)).toBe(csumBefore);
  }, 120_000);

  test('a file comes down from the host whole, with no checksum error in the namespace', async () => {
    const csumBefore = await csumErrors(ns);
    const r = await netnsExec(ns, ['sh', '-c', `curl -sS --max-time 60 http://10.0.2.2:${port}/file | sha256sum`], { timeoutMs: 90_000 });
    expect(r.stdout.slice(0, 64)).toBe(createHash('sha256').update(down).digest('hex'));
    expect(await csumErrors(ns)).toBe(csumBefore);
  }, 120_000);
});
