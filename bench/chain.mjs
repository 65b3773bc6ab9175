/*
 * bench/chain.mjs - the "chain" scenario group of bench/switch.mjs (`--only=chain`): TCP between
 * two network namespaces across a cable between two switches, with the namespaces' taps opened
 * by the switches themselves (-t), the whole chain built once from Debian's tools and once from
 * ours, in the same run:
 *
 *   Debian: /usr/bin/vde_switch -t A  ==cable==  /usr/bin/vde_switch -t B
 *   ours:   node bin/vde_switch -t A  ==cable==  node bin/vde_switch -t B   (tap offloads on)
 *
 * Cables, Debian's tools on the Debian side and ours on ours:
 *   dpipe: /usr/bin/dpipe vde_plug SW1 = vde_plug SW2
 *   ssh:   /usr/bin/dpipe vde_plug SW1 = ssh root@127.0.0.1 vde_plug SW2   (a private sshd on
 *          loopback with throw-away keys, ssh's default cipher, the same for both sides)
 *   tcp:   Debian `dpipe vde_plug SW1 = socat - TCP:127.0.0.1:P` + `socat TCP-LISTEN:P EXEC:"vde_plug SW2"`;
 *          ours `vde_plug SW2 stream://tcp:127.0.0.1:P[server/framing=2]` + `vde_plug SW1 stream://tcp:127.0.0.1:P[framing=2]`
 *
 * Between two vde-ts ends the cable carries 64 KiB segments (native/src/cable.h); between
 * Debian's tools every frame is at most one MTU. Row: iperf3 TCP Gbit/s, namespace A → B, with
 * the CPU of switches + cable. Every process is started through the harness's track() and
 * stopped by PID; namespaces, taps and the sshd's files are removed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { listening, startProc, stopTree, waitUntil } from './cable.mjs';
import { debianTool, oursArgv } from './reference.mjs';

// ---------------------------------------------------------------------------
// constants (unit in the name)

const OUR_PLUG_ARGV = oursArgv('vde_plug');
const DEBIAN_DPIPE = '/usr/bin/dpipe';
const DEBIAN_PLUG = '/usr/bin/vde_plug';
const DEBIAN_SWITCH = '/usr/bin/vde_switch';

const CHAIN_NS_A = 'vdebench-ka';
const CHAIN_NS_B = 'vdebench-kb';
const CHAIN_TAP_A = 'vdbktapa';
const CHAIN_TAP_B = 'vdbktapb';
const CHAIN_ADDR_A = '192.0.2.1';           // RFC 5737 documentation range only
const CHAIN_ADDR_B = '192.0.2.2';
const CHAIN_PREFIX_BITS = 24;
const CHAIN_IPERF_PORT = 5203;
const CHAIN_IPERF_DURATION_S = 5;
const CHAIN_IPERF_START_DELAY_MS = 400;
const CHAIN_UP_TIMEOUT_MS = 20000;          // the cable must carry pings within this time
const CHAIN_LISTEN_TIMEOUT_MS = 10000;
const CHAIN_TAP_TIMEOUT_MS = 15000;         // the switches must have created their taps
const CHAIN_TCP_PORT = 5304;                // loopback TCP cable port (127.0.0.1 only)
const CHAIN_SSH_PORT = 5305;                // the private sshd (127.0.0.1 only)
const CHAIN_POLL_MS = 100;

const TARGET_CHAIN_RATIO = 5.0;             // ours/Debian TCP Gbit/s

export const CHAIN_KINDS = [
  { kind: 'dpipe', title: 'dpipe cable' },
  { kind: 'ssh', title: 'ssh cable (dpipe + ssh to 127.0.0.1)' },
  { kind: 'tcp', title: 'loopback TCP cable (stream:// / socat)' },
];
const SIDES = ['debian', 'ours'];

export const CHAIN_ROWS = CHAIN_KINDS.map(({ kind, title }) => ({
  key: `chain_${kind}_gbps`,
  what: `TCP iperf3 ${CHAIN_IPERF_DURATION_S} s across a ${title}, taps in both switches (-t)`,
  unit: 'Gbit/s',
  fmt: (v) => (Number.isFinite(v) ? v.toFixed(2) : 'n/a'),
  target: { min: TARGET_CHAIN_RATIO, text: `ours/Debian ≥ ${TARGET_CHAIN_RATIO}` },
}));

function cell(row, r) {
  if (!r) return 'not run';
  if (r.error) return `n/a (${String(r.error).replace(/\|/g, '/')})`;
  return `${row.fmt(r.value)}${r.extra ? ` [${r.extra}]` : ''}`;
}

/** The chain table (markdown lines), or [] when the group did not run. */
export function chainTable(results) {
  if (!CHAIN_ROWS.some((r) => results[r.key])) return [];
  const lines = [
    'Chain rows: the whole chain is Debian\'s in one column and ours in the other: two switches with a tap each (`-t`, the taps moved into two namespaces), joined by a cable.',
    `Debian: \`${DEBIAN_SWITCH} -t A\`, \`${DEBIAN_DPIPE} ${DEBIAN_PLUG} SW1 = ${DEBIAN_PLUG} SW2\` (ssh: \`= ssh root@127.0.0.1 ${DEBIAN_PLUG} SW2\`; TCP: \`= socat - TCP:127.0.0.1:P\` + \`socat TCP-LISTEN:P EXEC:"vde_plug SW2"\`).`,
    'Ours: `node bin/vde_switch -t A` (tap offloads on), `dpipe node bin/vde_plug SW1 = node bin/vde_plug SW2` (ssh likewise; TCP: `vde_plug SWn stream://tcp:127.0.0.1:P[server/framing=2]` + `[framing=2]`); between vde-ts ends the cable carries 64 KiB segments.',
    'The ssh cable uses a private sshd on 127.0.0.1 and ssh\'s default cipher on both sides. "CPU" = switches + cable processes (for ssh, sshd\'s side included), % of one CPU.',
    '',
    '| # | chain scenario | unit | Debian chain | ours | ours/Debian | target | result |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const row of CHAIN_ROWS) {
    const res = results[row.key];
    if (!res) continue;
    const d = res.debian, o = res.ours;
    const ok = (x) => x && !x.error && Number.isFinite(x.value);
    const r = ok(d) && ok(o) && d.value ? o.value / d.value : NaN;
    const verdict = Number.isFinite(r) ? (r >= row.target.min ? 'PASS' : 'FAIL') : 'n/a';
    lines.push(`| 9b | ${row.what} | ${row.unit} | ${cell(row, d)} | ${cell(row, o)} | ${Number.isFinite(r) ? `${r.toFixed(2)}x` : 'n/a'} | ${row.target.text} | ${verdict} |`);
  }
  return lines;
}

// ---------------------------------------------------------------------------
// a private sshd on loopback

/** Starts sshd on 127.0.0.1:CHAIN_SSH_PORT with throw-away keys; resolves {client argv, proc} or {error}. */
async function startSshd(ctx, dir) {
  const sshd = ctx.which('sshd') || (fs.existsSync('/usr/sbin/sshd') ? '/usr/sbin/sshd' : null);
  const ssh = ctx.which('ssh');
  const keygen = ctx.which('ssh-keygen');
  if (!sshd || !ssh || !keygen) return { error: 'missing sshd/ssh (Debian packages openssh-server, openssh-client)' };
  const hostKey = path.join(dir, 'host_ed25519');
  const clientKey = path.join(dir, 'client_ed25519');
  for (const k of [hostKey, clientKey]) {
    const r = ctx.run(keygen, ['-q', '-t', 'ed25519', '-N', '', '-f', k]);
    if (!r.ok) return { error: `ssh-keygen: ${r.err}` };
  }
  fs.copyFileSync(`${clientKey}.pub`, path.join(dir, 'authorized_keys'));
  const config = path.join(dir, 'sshd_config');
  fs.writeFileSync(config, [
    `Port ${CHAIN_SSH_PORT}`, 'ListenAddress 127.0.0.1', `HostKey ${hostKey}`, 'PermitRootLogin prohibit-password',
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`, 'StrictModes no', 'UsePAM no', 'PasswordAuthentication no',
    'KbdInteractiveAuthentication no', 'PrintMotd no', `PidFile ${path.join(dir, 'sshd.pid')}`, '',
  ].join('\n'));
  if (!fs.existsSync('/run/sshd')) fs.mkdirSync('/run/sshd', { mode: 0o755 });
  if (listening(CHAIN_SSH_PORT)) return { error: `TCP port ${CHAIN_SSH_PORT} is in use` };
  const proc = startProc(ctx, [sshd, '-D', '-e', '-f', config], 'sshd');
  if (!(await waitUntil(ctx, () => proc.exited || listening(CHAIN_SSH_PORT), CHAIN_LISTEN_TIMEOUT_MS)) || proc.exited) {
    await stopTree(ctx, proc);
    return { error: `sshd did not start: ${ctx.tail(proc.err, 150)}` };
  }
  const client = [ssh, '-F', '/dev/null', '-i', clientKey, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-e', 'none', '-p', String(CHAIN_SSH_PORT), 'root@127.0.0.1'];
  return { proc, client };
}

// ---------------------------------------------------------------------------
// the chain

function ipq(ctx, ...args) { return ctx.run('ip', args, { quiet: true }); }

function teardown(ctx) {
  for (const ns of [CHAIN_NS_A, CHAIN_NS_B]) ipq(ctx, 'netns', 'del', ns);
  for (const l of [CHAIN_TAP_A, CHAIN_TAP_B]) ipq(ctx, 'link', 'del', l);
}

/** Moves the taps the switches made into the namespaces and configures them; returns an error text or null. */
function moveTaps(ctx) {
  for (const [tap, ns, addr] of [[CHAIN_TAP_A, CHAIN_NS_A, CHAIN_ADDR_A], [CHAIN_TAP_B, CHAIN_NS_B, CHAIN_ADDR_B]]) {
    const steps = [
      ['link', 'set', tap, 'netns', ns],
      ['-n', ns, 'link', 'set', 'lo', 'up'],
      ['-n', ns, 'addr', 'add', `${addr}/${CHAIN_PREFIX_BITS}`, 'dev', tap],
      ['-n', ns, 'link', 'set', tap, 'up'],
    ];
    for (const s of steps) {
      const r = ctx.run('ip', s);
      if (!r.ok) return `ip ${s.join(' ')}: ${r.err}`;
    }
  }
  return null;
}

/** The cable's processes for one side and medium (started in order); resolves {procs} or {error}. */
async function layCable(ctx, kind, side, d1, d2, ssh) {
  const plug = side === 'debian' ? [DEBIAN_PLUG] : OUR_PLUG_ARGV;
  if (kind === 'dpipe') return { procs: [startProc(ctx, [DEBIAN_DPIPE, ...plug, d1, '=', ...plug, d2], `${side} dpipe cable`)] };
  if (kind === 'ssh') return { procs: [startProc(ctx, [DEBIAN_DPIPE, ...plug, d1, '=', ...ssh.client, ...plug, d2], `${side} ssh cable`)] };
  const port = CHAIN_TCP_PORT;
  if (!(await waitUntil(ctx, () => !listening(port), CHAIN_LISTEN_TIMEOUT_MS))) return { error: `TCP port ${port} is in use` };
  const first = side === 'debian'
    ? startProc(ctx, [ctx.socat, `TCP-LISTEN:${port},reuseaddr,bind=127.0.0.1`, `EXEC:${DEBIAN_PLUG} ${d2}`], 'socat listener')
    : startProc(ctx, [...plug, d2, `stream://tcp:127.0.0.1:${port}[server/framing=2]`], 'our stream server plug');
  if (!(await waitUntil(ctx, () => first.exited || listening(port), CHAIN_LISTEN_TIMEOUT_MS)) || first.exited) {
    await stopTree(ctx, first);
    return { error: `${first.name} did not listen: ${ctx.tail(first.err, 120) || 'no output'}` };
  }
  const second = side === 'debian'
    ? startProc(ctx, [DEBIAN_DPIPE, ...plug, d1, '=', ctx.socat, '-', `TCP:127.0.0.1:${port}`], 'dpipe socat cable')
    : startProc(ctx, [...plug, d1, `stream://tcp:127.0.0.1:${port}[framing=2]`], 'our stream client plug');
  return { procs: [first, second] };
}

/** CPU ticks so far of the given pids and their descendants. */
function ticks(ctx, pids) {
  return pids.reduce((s, p) => s + (p && ctx.alive(p) ? ctx.cpuTicks(p) : 0), 0);
}

/** One measurement: two switches with taps, a cable, iperf3 A → B. */
async function measure(ctx, kind, side, ssh) {
  const sw = [];
  let cable = null;
  try {
    teardown(ctx);
    for (const ns of [CHAIN_NS_A, CHAIN_NS_B]) {
      const r = ctx.run('ip', ['netns', 'add', ns]);
      if (!r.ok) return { error: `ip netns add: ${r.err}` };
    }
    for (const [tap, name] of [[CHAIN_TAP_A, 'a'], [CHAIN_TAP_B, 'b']]) {
      const argv = side === 'debian' ? [DEBIAN_SWITCH, '-t', tap] : [...oursArgv('vde_switch'), '--nostdin', '-t', tap];
      const s = ctx.makeSwitch(`chain-${kind}-${side}-${name}`, side === 'debian' ? 'ref' : 'ours', argv);
      const st = await s.start();
      if (!st.ok) return { error: `switch did not start: ${ctx.tail(st.reason, 120)}` };
      sw.push(s);
    }
    const tapsUp = await waitUntil(ctx, () => ipq(ctx, 'link', 'show', CHAIN_TAP_A).ok && ipq(ctx, 'link', 'show', CHAIN_TAP_B).ok, CHAIN_TAP_TIMEOUT_MS);
    if (!tapsUp) return { error: 'the switches created no taps' };
    cable = await layCable(ctx, kind, side, sw[0].dir, sw[1].dir, ssh);
    if (cable.error) return { error: cable.error };
    const moved = moveTaps(ctx);
    if (moved) return { error: moved };
    const up = await waitUntil(ctx, async () => {
      if (cable.procs.some((h) => h.exited)) return true;
      return (await ctx.runAsync('ip', ['netns', 'exec', CHAIN_NS_A, 'ping', '-c', '1', '-W', '1', CHAIN_ADDR_B])).ok;
    }, CHAIN_UP_TIMEOUT_MS);
    const dead = cable.procs.find((h) => h.exited);
    if (!up || dead) return { error: `the cable carries no pings${dead ? `: ${dead.name} exited: ${ctx.tail(dead.err, 120)}` : ''}` };
    const srv = startProc(ctx, ['ip', 'netns', 'exec', CHAIN_NS_B, 'iperf3', '-s', '-1', '-p', String(CHAIN_IPERF_PORT)], 'iperf3 server');
    await ctx.sleep(CHAIN_IPERF_START_DELAY_MS);
    // the ssh cable's far end (sshd's session and the plug it runs) counts as cable too
    const pids = [...sw.map((s) => s.pid), ...cable.procs.map((h) => h.p.pid), ...(kind === 'ssh' && ssh.proc ? [ssh.proc.p.pid] : [])];
    const t0 = ticks(ctx, pids);
    const w0 = Date.now();
    const c = await ctx.runAsync('ip', ['netns', 'exec', CHAIN_NS_A, 'iperf3', '-c', CHAIN_ADDR_B, '-p', String(CHAIN_IPERF_PORT),
      '-t', String(CHAIN_IPERF_DURATION_S), '-J'], { timeoutMs: (CHAIN_IPERF_DURATION_S + 20) * 1000 });
    const cpuPct = (100 * (ticks(ctx, pids) - t0)) / ctx.clkTck() / Math.max((Date.now() - w0) / 1000, 1e-9);
    await stopTree(ctx, srv);
    try {
      const j = JSON.parse(c.out);
      if (j.error) return { error: j.error };
      return { value: j.end.sum_received.bits_per_second / 1e9, extra: `CPU ${cpuPct.toFixed(0)}%, ${j.end.sum_sent.retransmits} retransmits` };
    } catch {
      return { error: `iperf3 failed: ${ctx.tail(c.err || srv.err, 150)}` };
    }
  } finally {
    for (const h of cable?.procs ?? []) await stopTree(ctx, h);
    for (const s of sw) await s.stop();
    teardown(ctx);
  }
}

/**
 * Runs the chain group. ctx: the cable group's context (bench/switch.mjs), whose
 * makeSwitch(name, side, argv) starts a switch from argv (-s DIR etc. appended).
 */
export async function scenarioChain(ctx) {
  const keys = CHAIN_ROWS.map((r) => r.key);
  const failAll = (why) => { for (const k of keys) for (const s of SIDES) ctx.setResult(k, s, { error: why }); };
  debianTool('dpipe');
  debianTool('vde_plug');
  debianTool('vde_switch');
  ctx.socat = ctx.which('socat');
  const missing = ['ip', 'iperf3', 'ping'].filter((b) => !ctx.which(b));
  if (missing.length) return failAll(`missing ${missing.join(', ')}`);
  if (process.getuid?.() !== 0 || !fs.existsSync('/dev/net/tun')) return failAll('needs root and /dev/net/tun');
  ctx.cleanupTasks.push(() => teardown(ctx));
  const sshDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vde-bench-ssh-'));
  ctx.cleanupTasks.push(() => fs.rmSync(sshDir, { recursive: true, force: true }));
  const ssh = await startSshd(ctx, sshDir);
  try {
    for (const { kind, title } of CHAIN_KINDS) {
      for (const side of SIDES) {
        if (ctx.stopping()) return;
        if (kind === 'ssh' && ssh.error) { ctx.setResult(`chain_${kind}_gbps`, side, { error: ssh.error }); continue; }
        if (kind === 'tcp' && !ctx.socat) { ctx.setResult(`chain_${kind}_gbps`, side, { error: 'socat missing (Debian package socat)' }); continue; }
        ctx.log(`chain: ${title}, ${side} chain`);
        ctx.setResult(`chain_${kind}_gbps`, side, await measure(ctx, kind, side, ssh));
      }
    }
  } finally {
    if (ssh.proc) await stopTree(ctx, ssh.proc);
    fs.rmSync(sshDir, { recursive: true, force: true });
  }
}
