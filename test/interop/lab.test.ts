// vde_lab with real parts: two switches joined by an impaired cable, three namespace hosts, one
// QEMU guest (the tiny test guest) and a slirp NAT, with tasks checking ping, delay and HTTP
// fetches (through the NAT to a server on the host's loopback, and from the guest's busybox
// httpd); every example in examples/labs/ run by `vde_lab run`; `up` applied again to a changed
// file changes only the difference; nothing left behind after down (from another process),
// Ctrl-C during up, a hanging task or a crashed switch; two labs with the same node names side
// by side; the same lab run as user nobody (a user namespace per lab) and the refusal when the
// kernel allows no user namespaces; graph as DOT and SVG (Graphviz); the web view in Debian's
// headless chromium through playwright-core (rates, node states, a capture downloaded as pcapng).
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { buildGuest, type GuestImage } from '../helpers/guest.js';

const exec = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const LAB = path.join(ROOT, 'bin', 'vde_lab');
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), `vdelab-test-${process.pid}-`));
/** Every lab of this file runs under this directory (the tests' own VDE_LAB_DIR). */
const LABS = path.join(WORK, 'labs');
const ENV = { ...process.env, VDE_LAB_DIR: LABS };
/** A directory user nobody owns (the unprivileged runs). */
const USER_DIR = path.join(WORK, 'nobody');

/** Runs vde_lab with args; resolves with its exit status and output (never rejects). */
async function lab(args: string[], o: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await exec(process.execPath, [LAB, ...args], { env: o.env ?? ENV, timeout: o.timeoutMs ?? 120_000, maxBuffer: 64 << 20 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}

/** What a lab left behind: namespaces, processes naming its run directory, taps, the run directory. */
async function leftovers(name: string, root = LABS): Promise<string[]> {
  const dir = path.join(root, name);
  const out: string[] = [];
  if (fs.existsSync(dir)) out.push(`run directory ${dir}`);
  for (const p of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.includes(`${dir}/`) && !/\) Z /.test(fs.readFileSync(`/proc/${p}/stat`, 'utf8'))) out.push(`process ${p}: ${cmd.replace(/\0/g, ' ').slice(0, 120)}`);
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Namespaces and taps of lab id (from its state file while it runs). */
async function kernelLeftovers(id: string): Promise<string[]> {
  const ns = (await exec('ip', ['netns', 'list'])).stdout.split('\n').filter((l) => l.startsWith(`vdelab-${id}-`));
  const links = (await exec('ip', ['-o', 'link'])).stdout.split('\n').filter((l) => l.includes(`vl${id}`));
  return [...ns, ...links];
}

function stateOf(name: string): { id: string; switches: Record<string, { pid: number }> } {
  return JSON.parse(fs.readFileSync(path.join(LABS, name, 'state.json'), 'utf8')) as never;
}

let guest: GuestImage;
let httpServer: http.Server;
let httpPort = 0;
const BLOB = 'vde_lab fetched this through slirp\n';

beforeAll(async () => {
  await ensureTools({ ip: 'iproute2', ping: 'iputils-ping', wget: 'wget', busybox: 'busybox-static', 'qemu-system-x86_64': 'qemu-system-x86', dot: 'graphviz', chromium: 'chromium', setpriv: 'util-linux', traceroute: 'traceroute', '/usr/lib/frr/zebra': 'frr', '/usr/lib/frr/ospfd': 'frr' });
  guest = await buildGuest();
  fs.chmodSync(WORK, 0o755);
  fs.mkdirSync(USER_DIR);
  fs.chownSync(USER_DIR, 65534, 65534);
  for (const f of [guest.kernel, guest.initrd]) {
    // the guest must be readable by nobody: every directory on the way searchable
    for (let d = path.dirname(f); d !== '/'; d = path.dirname(d)) if (!(fs.statSync(d).mode & 0o001)) throw new Error(`${d} is not searchable by other users`);
    if (!(fs.statSync(f).mode & 0o004)) throw new Error(`${f} is not readable by other users`);
  }
  httpServer = http.createServer((_q, r) => r.end(BLOB));
  await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
  httpPort = (httpServer.address() as AddressInfo).port;
}, 600_000);

afterAll(async () => {
  httpServer?.close();
  for (const n of fs.existsSync(LABS) ? fs.readdirSync(LABS) : []) await lab(['down', n]);
  fs.rmSync(WORK, { recursive: true, force: true });
});

/** The lab of the issue: two switches, an impaired cable, three hosts, a QEMU guest, a NAT. */
function realLab(name: string): string {
  const append = 'console=ttyS0 panic=-1 quiet loglevel=3 i8042.noaux i8042.nokbd i8042.nopnp vtg.ip=10.0.0.5/24 vtg.httpd=80 vtg.httpsize=4096 vtg.nopoweroff=1';
  const noRom = ['virtio-net-pci', 'e1000'].flatMap((n) => ['-global', `${n}.romfile=`]);
  return `name: ${name}
switches:
  s1: {}
  s2: {}
hosts:
  h1:
    interfaces: {eth0: {addresses: [10.0.0.1/24]}}
  h2:
    interfaces: {eth0: {addresses: [10.0.0.2/24]}}
  h3:
    interfaces: {eth0: {addresses: [10.0.2.15/24]}}
    routes: [{to: default, via: 10.0.2.2}]
vms:
  vm1:
    kernel: ${guest.kernel}
    initrd: ${guest.initrd}
    append: ${JSON.stringify(append)}
    memory: 256
    args: ${JSON.stringify(['-M', 'pc', '-accel', 'tcg', '-cpu', 'max', '-no-reboot', ...noRom])}
links:
  h1-s1: {a: 'h1:eth0', b: s1}
  h2-s2: {a: 'h2:eth0', b: s2}
  h3-s1: {a: 'h3:eth0', b: s1, capture: true}
  vm1-s2: {a: vm1, b: s2}
  cable: {a: s1, b: s2, impair: {ab: delay 15ms, ba: delay 15ms}}
nat:
  out: {switch: s1}
tasks:
  ping:
    on: h1
    run: ping -c 3 -i 0.2 -W 2 10.0.0.2
    expect: {output: ' 3 received'}
  delay:
    on: h1
    after: [ping]
    run: ping -c 5 -i 0.2 10.0.0.2
    expect: {value: {regex: 'rtt min/avg/max/mdev = ([\\d.]+)', min: 29, max: 500}}
  nat-fetch:
    on: h3
    run: wget -q -O - http://10.0.2.2:${httpPort}/
    timeout: 30
    expect: {output: 'fetched this through slirp'}
  vm-up:
    on: h1
    run: for i in $(seq 120); do ping -c 1 -W 1 10.0.0.5 >/dev/null && exit 0; done; exit 1
    timeout: 150
  vm-fetch:
    on: h2
    after: [vm-up]
    run: for i in $(seq 30); do n=$(wget -q -O - http://10.0.0.5/blob | wc -c); [ "$n" = 4096 ] && echo $n && exit 0; sleep 1; done; exit 1
    timeout: 30
    expect: {output: '^4096$'}
`;
}

describe('vde_lab with real parts', () => {
  it('runs the lab of two switches, an impaired cable, three hosts, a QEMU guest and a NAT', async () => {
    const file = path.join(WORK, 'real.yaml');
    fs.writeFileSync(file, realLab('real'));
    const results = path.join(WORK, 'real-results');
    const r = await lab(['run', file, '-o', results], { timeoutMs: 300_000 });
    expect(r.code, `${r.err}\n${fs.existsSync(path.join(results, 'summary.txt')) ? fs.readFileSync(path.join(results, 'summary.txt'), 'utf8') : ''}`).toBe(0);
    const summary = JSON.parse(fs.readFileSync(path.join(results, 'summary.json'), 'utf8')) as { ok: boolean; passed: number; tasks: Array<{ name: string; runs: Array<{ value?: number }> }> };
    expect(summary).toMatchObject({ ok: true, passed: 5 });
    // 15 ms each way on the cable: the minimum round trip is at least 30 ms
    expect(summary.tasks.find((t) => t.name === 'delay')!.runs[0].value).toBeGreaterThanOrEqual(29);
    expect(fs.readFileSync(path.join(results, 'tasks', 'nat-fetch.out'), 'utf8')).toBe(BLOB);
    // the captured link's pcapng is complete and holds frames of h3
    const cap = fs.readFileSync(path.join(results, 'captures', 'h3-s1.pcapng'));
    expect(cap.readUInt32LE(0)).toBe(0x0a0d0d0a);
    expect(cap.length).toBeGreaterThan(200);
    const metrics = JSON.parse(fs.readFileSync(path.join(results, 'metrics.json'), 'utf8')) as { links: Array<{ name: string; counters: { ab: { frames: number } } | null }> };
    expect(metrics.links.find((l) => l.name === 'h1-s1')!.counters!.ab.frames).toBeGreaterThan(5);
    expect(await leftovers('real')).toEqual([]);
  }, 320_000);

  it('runs every example in examples/labs/', async () => {
    const dir = path.join(ROOT, 'examples', 'labs');
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const r = await lab(['run', path.join(dir, f), '-o', path.join(WORK, `ex-${f}`)], { timeoutMs: 300_000 });
      expect(r.code, `${f}: ${r.err}`).toBe(0);
      const name = /^name:\s*(\S+)/m.exec(fs.readFileSync(path.join(dir, f), 'utf8'))![1];
      expect(await leftovers(name)).toEqual([]);
    }
  }, 600_000);
});

const SMALL = (name: string, delay = '5ms', extraHost = false): string => `name: ${name}
switches: {s1: {}, s2: {}}
hosts:
  a: {interfaces: {eth0: {addresses: [10.1.0.1/24]}}}
  b: {interfaces: {eth0: {addresses: [10.1.0.2/24]}}}
${extraHost ? '  c: {interfaces: {eth0: {addresses: [10.1.0.3/24]}}}\n' : ''}links:
  a-s1: {a: 'a:eth0', b: s1}
  b-s2: {a: 'b:eth0', b: s2}
${extraHost ? "  c-s2: {a: 'c:eth0', b: s2}\n" : ''}  cable: {a: s1, b: s2, impair: {both: delay ${delay}}}
`;

/** Minimum round-trip time from a to address, ms. */
async function minRtt(name: string, to: string): Promise<number> {
  const r = await lab(['exec', name, 'a', '--', 'ping', '-c', '4', '-i', '0.2', to]);
  expect(r.code, r.out + r.err).toBe(0);
  return Number(/= ([\d.]+)\//.exec(r.out)![1]);
}

describe('up, down and what is left', () => {
  it('up again applies only the difference; down from another process leaves nothing', async () => {
    const file = path.join(WORK, 'idem.yaml');
    fs.writeFileSync(file, SMALL('idem'));
    let r = await lab(['up', file]);
    expect(r.code, r.err).toBe(0);
    const id = stateOf('idem').id;
    const pids = stateOf('idem').switches;
    expect(await minRtt('idem', '10.1.0.2')).toBeGreaterThanOrEqual(9.5);
    r = await lab(['up', file]);
    expect(r.err).toMatch(/nothing to change/);
    fs.writeFileSync(file, SMALL('idem', '40ms', true));
    r = await lab(['up', file]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/\(create-host 1, create-link 1, impair-link 1, host-routes 1\)/);
    // the switches kept running (same processes); the cable's delay changed in place
    expect(stateOf('idem').switches).toEqual(pids);
    expect(await minRtt('idem', '10.1.0.3')).toBeGreaterThanOrEqual(79);
    const st = await lab(['status', 'idem', '--json']);
    const s = JSON.parse(st.out) as { nodes: Array<{ name: string; state: string }>; links: Array<{ name: string; ab: string; counters: unknown }> };
    expect(s.nodes.filter((n) => n.state === 'running').map((n) => n.name).sort()).toEqual(['a', 'b', 'c', 's1', 's2']);
    expect(s.links.find((l) => l.name === 'cable')).toMatchObject({ ab: 'delay 40ms' });
    expect((await lab(['status', 'idem'])).out).toMatch(/cable\s+s1 -> s2\s+up/);
    r = await lab(['down', 'idem']);
    expect(r.code, r.err).toBe(0);
    expect(await leftovers('idem')).toEqual([]);
    expect(await kernelLeftovers(id)).toEqual([]);
    expect((await lab(['down', 'idem'])).err).toMatch(/no lab "idem" is up/);
  }, 120_000);

  it('two labs with the same node names run side by side', async () => {
    const f1 = path.join(WORK, 'twin1.yaml');
    const f2 = path.join(WORK, 'twin2.yaml');
    fs.writeFileSync(f1, SMALL('twin1'));
    fs.writeFileSync(f2, SMALL('twin2', '1ms'));
    expect((await lab(['up', f1])).code).toBe(0);
    expect((await lab(['up', f2])).code).toBe(0);
    expect(await minRtt('twin1', '10.1.0.2')).toBeGreaterThanOrEqual(9.5);
    expect(await minRtt('twin2', '10.1.0.2')).toBeLessThan(9.5);
    expect((await lab(['status'])).out.split('\n')).toEqual(expect.arrayContaining(['twin1', 'twin2']));
    expect((await lab(['down', 'twin1'])).code).toBe(0);
    expect(await minRtt('twin2', '10.1.0.2')).toBeGreaterThan(1.9);
    expect((await lab(['down', 'twin2'])).code).toBe(0);
    expect([...(await leftovers('twin1')), ...(await leftovers('twin2'))]).toEqual([]);
  }, 120_000);

  it('Ctrl-C during up leaves nothing behind', async () => {
    const hosts = Array.from({ length: 12 }, (_, i) => `  h${i}: {interfaces: {eth0: {addresses: [10.2.0.${i + 1}/24]}}}`).join('\n');
    const links = Array.from({ length: 12 }, (_, i) => `  l${i}: {a: 'h${i}:eth0', b: s${i % 2}}`).join('\n');
    const file = path.join(WORK, 'intr.yaml');
    fs.writeFileSync(file, `name: intr\nswitches: {s0: {}, s1: {}}\nhosts:\n${hosts}\nlinks:\n${links}\n  c: {a: s0, b: s1}\n`);
    const child = spawn(process.execPath, [LAB, 'up', file], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    await new Promise<void>((resolve) => {
      const t = setInterval(() => {
        if (/link \S+ up/.test(err)) {
          clearInterval(t);
          resolve();
        }
      }, 5);
    });
    child.kill('SIGINT');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    expect(code, err).toBe(1);
    expect(err).toMatch(/interrupted/);
    expect(await leftovers('intr')).toEqual([]);
    expect(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('vde_lab-intr-'))).toEqual([]);
    expect((await exec('ip', ['netns', 'list'])).stdout).not.toMatch(/vdelab-[0-9a-f]{5}-h\d+/);
  }, 120_000);

  it('a hanging task is killed at its time limit and a crashed switch does not stop down', async () => {
    const file = path.join(WORK, 'hang.yaml');
    fs.writeFileSync(file, `${SMALL('hang')}tasks:\n  hang: {on: a, run: 'sleep 1000 & sleep 1000', timeout: 1}\n  after-hang: {on: b, run: 'true', after: [hang]}\n  fine: {on: b, run: 'echo ok', expect: {output: '^ok$'}}\n`);
    const res = path.join(WORK, 'hang-results');
    const r = await lab(['run', file, '-o', res]);
    expect(r.code).toBe(1);
    expect(fs.readFileSync(path.join(res, 'summary.txt'), 'utf8')).toMatch(/failed\s+hang: a: timed out after 1 s\nskipped\s+after-hang: task "hang" did not pass\npassed\s+fine/);
    expect(await leftovers('hang')).toEqual([]);
    // a switch that crashes: its taps vanish with it, down still removes the rest
    const f2 = path.join(WORK, 'crash.yaml');
    fs.writeFileSync(f2, SMALL('crash'));
    expect((await lab(['up', f2])).code).toBe(0);
    const st = stateOf('crash');
    process.kill(st.switches.s1.pid, 'SIGKILL');
    expect((await lab(['status', 'crash'])).out).toMatch(/s1\s+switch\s+exited/);
    const d = await lab(['down', 'crash']);
    expect(d.code, d.err).toBe(0);
    expect(await leftovers('crash')).toEqual([]);
    expect(await kernelLeftovers(st.id)).toEqual([]);
  }, 120_000);

  it('refuses hosts when the kernel allows no user namespaces, with the reason', async () => {
    const file = path.join(USER_DIR, 'nobody.yaml');
    fs.writeFileSync(file, SMALL('nobody'));
    fs.chmodSync(file, 0o644);
    // as nobody, inside a user namespace whose limit for further user namespaces is 0
    const script = `echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" "$@"`;
    const r = await asNobody(['unshare', '--user', '--map-root-user', 'sh', '-c', script, process.execPath, LAB, 'up', file]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^vde_lab: lab nobody: hosts \(network namespaces with taps\) need root, or unprivileged user namespaces, which this kernel refuses \(unshare: .*; see sysctl kernel\.unprivileged_userns_clone/m);
    expect(r.err).not.toMatch(/\n\s+at /);
  }, 60_000);
});

/** Runs argv as user nobody (uid 65534) with its own VDE_LAB_DIR. */
async function asNobody(argv: string[], timeoutMs = 300_000): Promise<{ code: number; out: string; err: string }> {
  const env = { ...process.env, VDE_LAB_DIR: path.join(USER_DIR, 'labs'), HOME: USER_DIR };
  try {
    const r = await exec('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...argv], { env, timeout: timeoutMs, cwd: USER_DIR, maxBuffer: 64 << 20 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, out: x.stdout ?? '', err: x.stderr ?? '' };
  }
}

describe('as an unprivileged user', () => {
  it('runs the same lab (hosts in a user namespace, the guest, the NAT) and leaves nothing', async () => {
    const file = path.join(USER_DIR, 'real.yaml');
    fs.writeFileSync(file, realLab('realuser'));
    fs.chmodSync(file, 0o644);
    const results = path.join(USER_DIR, 'results');
    const r = await asNobody([process.execPath, LAB, 'run', file, '-o', results]);
    expect(r.code, r.err).toBe(0);
    const summary = JSON.parse(fs.readFileSync(path.join(results, 'summary.json'), 'utf8')) as { ok: boolean; passed: number };
    expect(summary).toMatchObject({ ok: true, passed: 5 });
    expect(fs.readFileSync(path.join(results, 'tasks', 'nat-fetch.out'), 'utf8')).toBe(BLOB);
    expect(await leftovers('realuser', path.join(USER_DIR, 'labs'))).toEqual([]);
    const left = (await exec('ps', ['-u', '65534', '-o', 'pid=,args='])).stdout.split('\n').filter((l) => l.includes(USER_DIR));
    expect(left).toEqual([]);
  }, 320_000);
});

describe('VM control', () => {
  it('runs commands on a VM console, resets it, powers it off and on', async () => {
    const append = 'console=ttyS0 panic=-1 quiet loglevel=3 i8042.noaux i8042.nokbd i8042.nopnp vtg.ip=10.3.0.5/24 vtg.shell=1';
    const noRom = ['virtio-net-pci', 'e1000'].flatMap((n) => ['-global', `${n}.romfile=`]);
    const wait = (name: string, after: string[]): string => `  ${name}:\n    on: h1\n    after: [${after.join(', ')}]\n    run: for i in $(seq 120); do ping -c 1 -W 1 10.3.0.5 >/dev/null && exit 0; done; exit 1\n    timeout: 150\n`;
    const file = path.join(WORK, 'vmctl.yaml');
    fs.writeFileSync(file, `name: vmctl
switches: {s1: {}}
hosts:
  h1: {interfaces: {eth0: {addresses: [10.3.0.1/24]}}}
vms:
  vm1:
    kernel: ${guest.kernel}
    initrd: ${guest.initrd}
    append: ${JSON.stringify(append)}
    args: ${JSON.stringify(['-M', 'pc', '-accel', 'tcg', '-cpu', 'max', ...noRom])}
links:
  h1-s1: {a: 'h1:eth0', b: s1}
  vm1-s1: {a: vm1, b: s1}
tasks:
${wait('booted', [])}  addr:
    on: vm1
    after: [booted]
    run: ip -4 addr show eth0
    timeout: 30
    expect: {output: 'inet 10\\.3\\.0\\.5/24'}
  fails:
    on: vm1
    after: [addr]
    run: 'false'
    timeout: 30
    expect: {status: 1}
  reset: {action: vm-reset, vm: vm1, after: [fails]}
${wait('after-reset', ['reset'])}  off: {action: vm-off, vm: vm1, after: [after-reset]}
  gone:
    on: h1
    after: [off]
    run: ping -c 2 -W 1 10.3.0.5
    expect: {status: 1}
  on: {action: vm-on, vm: vm1, after: [gone]}
${wait('back', ['on'])}`);
    const res = path.join(WORK, 'vmctl-results');
    const r = await lab(['run', file, '-o', res], { timeoutMs: 400_000 });
    expect(r.code, `${r.err}`).toBe(0);
    expect(fs.readFileSync(path.join(res, 'tasks', 'addr.out'), 'utf8')).toMatch(/inet 10\.3\.0\.5\/24/);
    expect(await leftovers('vmctl')).toEqual([]);
  }, 420_000);
});

describe('graph and web view', () => {
  it('draws the topology as DOT and SVG', async () => {
    const file = path.join(WORK, 'graph.yaml');
    fs.writeFileSync(file, SMALL('graph'));
    const dot = await lab(['graph', file]);
    expect(dot.code).toBe(0);
    expect(dot.out).toMatch(/^graph "graph" \{/);
    expect(dot.out).toContain('"s1" -- "s2" [label="cable\\n→ delay 5ms\\n← delay 5ms"');
    const svg = await lab(['graph', file, '--svg']);
    expect(svg.code, svg.err).toBe(0);
    expect(svg.out).toMatch(/<svg[\s\S]*<\/svg>/);
  });

  it('the web view shows nodes, live rates, and downloads a capture as pcapng (headless chromium)', async () => {
    const { chromium } = await import('playwright-core');
    const file = path.join(WORK, 'web.yaml');
    fs.writeFileSync(file, SMALL('web'));
    expect((await lab(['up', file])).code).toBe(0);
    const web = spawn(process.execPath, [LAB, 'web', 'web', '--listen', '127.0.0.1:0'], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    const traffic = spawn(process.execPath, [LAB, 'exec', 'web', 'a', '--', 'ping', '-i', '0.05', '-c', '400', '-s', '1000', '10.1.0.2'], { env: ENV, stdio: 'ignore' });
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        web.stdout.on('data', (d) => {
          out += d;
          const m = /http:\/\/\S+\//.exec(out);
          if (m) resolve(m[0]);
        });
        web.on('close', () => reject(new Error('web view exited')));
      });
      const page = await browser.newPage({ acceptDownloads: true });
      await page.goto(url);
      await page.waitForFunction(() => Number(document.body.dataset.polls ?? 0) >= 3, undefined, { timeout: 20_000 });
      expect(await page.locator('#nodes tr[data-node="s1"] .state').textContent()).toBe('running');
      expect(await page.locator('svg [data-node="a"]').getAttribute('class')).toBe('running');
      // rates appear for the host link carrying the pings (1000-byte payloads, 20 per second)
      await page.waitForFunction(() => /kbit\/s|Mbit\/s/.test(document.querySelector('#links tr[data-link="a-s1"] .ab')?.textContent ?? ''), undefined, { timeout: 20_000 });
      const [download] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.locator('#links tr[data-link="a-s1"] a.capture').click()]);
      const saved = path.join(WORK, 'web.pcapng');
      await download.saveAs(saved);
      const cap = fs.readFileSync(saved);
      expect(cap.readUInt32LE(0)).toBe(0x0a0d0d0a);
      expect(cap.length).toBeGreaterThan(1000);
      // a switch that dies turns red in the page
      process.kill(stateOf('web').switches.s2.pid, 'SIGKILL');
      await page.waitForFunction(() => document.querySelector('#nodes tr[data-node="s2"] .state')?.textContent === 'exited', undefined, { timeout: 20_000 });
    } finally {
      await browser.close();
      traffic.kill('SIGKILL');
      web.kill('SIGTERM');
      await lab(['down', 'web']);
    }
    expect(await leftovers('web')).toEqual([]);
  }, 120_000);
});
