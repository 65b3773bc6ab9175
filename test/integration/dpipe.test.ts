/**
 * bin/dpipe as real processes: bytes crossing both ways between two commands, a three-command
 * chain over the alternate descriptors (compared with Debian's /usr/bin/dpipe), one-way rings,
 * exit statuses (last command, 127, usage errors 255), EOF propagation when a command exits,
 * no pipe copies left in dpipe, pid/pgrp files, signals, -d, and a cable of Debian vde_plugs
 * (and wirefilter) between two Debian vde_switches. Also logs the throughput of a 100 MB
 * transfer through our dpipe and Debian's (no timing asserts). Every run is bounded in time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseChain, parseOptions, planEdges, planWiring, UsageError } from '../../src/plug/dpipe.js';
import { ensureTools } from '../helpers/deps.js';
import { StdioPlug } from '../helpers/stdioplug.js';
import { ROOT, tmpdir, waitFor } from '../helpers/switchproc.js';
import { frame } from '../helpers/vdeclient.js';

const DPIPE = path.join(ROOT, 'bin', 'dpipe');
const OURS = [process.execPath, DPIPE];
const DEBIAN = ['/usr/bin/dpipe'];
/** Upper bound for one dpipe run in these tests. */
const RUN_TIMEOUT_MS = 15_000;
/** Size of the throughput transfer. */
const BULK_BYTES = 100 * 1024 * 1024;

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  elapsedMs: number;
}

/** Runs a dpipe (ours or Debian's) to completion, killing it by PID if it outlives timeoutMs. */
function run(cmd: string[], args: string[], opts: { cwd?: string; timeoutMs?: number; detached?: boolean; onSpawn?: (p: ChildProcess) => void } = {}): Promise<RunResult> {
  const start = process.hrtime.bigint();
  const p = spawn(cmd[0], [...cmd.slice(1), ...args], { cwd: opts.cwd, detached: opts.detached, stdio: ['ignore', 'pipe', 'pipe'] });
  opts.onSpawn?.(p);
  let stdout = '';
  let stderr = '';
  p.stdout!.on('data', (d) => (stdout += d));
  p.stderr!.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      p.kill('SIGTERM');
      setTimeout(() => p.kill('SIGKILL'), 1000);
      reject(new Error(`dpipe ${args.join(' ')} still running after ${opts.timeoutMs ?? RUN_TIMEOUT_MS} ms; stderr: ${stderr}`));
    }, opts.timeoutMs ?? RUN_TIMEOUT_MS);
    p.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr, elapsedMs: Number(process.hrtime.bigint() - start) / 1e6 });
    });
  });
}

/** Reads a file written by a helper command (trimmed), or '' if it is missing. */
function readOut(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return '';
  }
}

/** Whether a process is gone (or a zombie waiting for its new parent). */
function gone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z';
  } catch {
    return true;
  }
}

/** Process group and session of a process (from /proc). */
function groupOf(pid: number): { pgrp: number; session: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pgrp: Number(f[2]), session: Number(f[3]) };
}

/** Pipe inodes ("pipe:[N]") a process holds, by descriptor. */
function pipesOf(pid: number): Map<number, string> {
  const out = new Map<number, string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target.startsWith('pipe:')) out.set(Number(fd), target);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

let dir: string;
beforeAll(async () => {
  await ensureTools({ dpipe: 'vdeplug', vde_plug: 'vdeplug', vde_switch: 'vde2', wirefilter: 'vde2' });
  dir = tmpdir('vdets-dpipe-');
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('dpipe wiring plan (vdeplug4 recursion)', () => {
  const edges = (args: string): string[] => planEdges(planWiring(parseChain(args.split(' '))));

  it('connects two commands both ways', () => {
    expect(edges('a = b')).toEqual(['0.out>1.in', '1.out>0.in']);
  });

  it('connects the third command to the middle one\'s alternate descriptors', () => {
    expect(edges('a x = b y = c z')).toEqual(['0.out>1.in', '1.altout>2.in', '1.out>0.in', '2.out>1.altin']);
  });

  it('builds the man page rings', () => {
    expect(edges('a =} b }= c')).toEqual(['0.out>1.in', '1.out>2.in', '2.out>0.in']);
    expect(edges('a ={ b {= c')).toEqual(['0.out>2.in', '1.out>0.in', '2.out>1.in']);
    // "a -> b -> d -> c and back to a; alternate ports of d are connected to e"
    expect(edges('a =} b }={ c {= d = e')).toEqual(['0.out>1.in', '1.out>3.in', '2.out>0.in', '3.altout>4.in', '3.out>2.in', '4.out>3.altin']);
  });

  it('rejects malformed chains with a reason', () => {
    for (const [args, msg] of [
      ['a b', /no "=" separator/],
      ['= a = b', /before the first command/],
      ['a = b =', /last argument/],
      ['a = = b', /follows another separator/],
      ['a =} b = c', /never closed/],
      ['a = b }= c', /never opened/],
      ['a =} b {= c', /does not close/],
    ] as const) {
      expect(() => parseChain(args.split(' ')), args).toThrow(UsageError);
      expect(() => parseChain(args.split(' ')), args).toThrow(msg);
    }
  });

  it('parses options getopt-style up to the first non-option', () => {
    const r = parseOptions(['-dp', 'pf', '--pgrp=gf', '-N', 'cmd', '-p', 'x', '=', 'b']);
    expect(r.opts).toMatchObject({ daemon: true, pidFile: 'pf', pgrpFile: 'gf', noWrap: true, noClean: true });
    expect(r.rest).toEqual(['cmd', '-p', 'x', '=', 'b']);
    expect(parseOptions(['--', '-x', '=', 'b']).rest).toEqual(['-x', '=', 'b']);
    expect(() => parseOptions(['--p', 'x'])).toThrow(/ambiguous/);
    expect(() => parseOptions(['-p'])).toThrow(/needs a file name/);
  });
});

describe('dpipe data paths', () => {
  it('carries bytes from cmd1 to cmd2 and back', async () => {
    const a = path.join(dir, 'two-a');
    const b = path.join(dir, 'two-b');
    const r = await run(OURS, ['sh', '-c', `echo from-a; read x; echo "$x" > ${a}`, '=', 'sh', '-c', `read y; echo "$y" > ${b}; echo from-b`]);
    expect(r.code, r.stderr).toBe(0);
    expect(readOut(b)).toBe('from-a');
    expect(readOut(a)).toBe('from-b');
  });

  it('runs a 3-command chain over the alternate descriptors both ways, like Debian\'s dpipe', async () => {
    for (const [name, cmd] of [['ours', OURS], ['debian', DEBIAN]] as const) {
      const f = (x: string): string => path.join(dir, `chain-${name}-${x}`);
      const r = await run(cmd, [
        'sh', '-c', `echo A2C; read x; echo "$x" > ${f('a')}`,
        '=',
        // the middle command relays between its stdin/stdout and its alternate descriptors
        'sh', '-c', `echo "$ALTERNATE_STDIN $ALTERNATE_STDOUT" > ${f('env')}; read l; echo "via-b:$l" >&$ALTERNATE_STDOUT; read r <&$ALTERNATE_STDIN; echo "via-b:$r"`,
        '=',
        'sh', '-c', `read z; echo "$z" > ${f('c')}; echo C2A; echo "$ALTERNATE_STDIN $ALTERNATE_STDOUT" > ${f('cenv')}`,
      ]);
      expect(r.code, `${name}: ${r.stderr}`).toBe(0);
      expect(readOut(f('c')), name).toBe('via-b:A2C');
      expect(readOut(f('a')), name).toBe('via-b:C2A');
      const [ain, aout] = readOut(f('env')).split(' ').map(Number);
      expect(ain).toBeGreaterThanOrEqual(3);
      expect(aout).toBe(ain + 1);
      expect(readOut(f('cenv')), 'exported to every command').toBe(`${ain} ${aout}`);
    }
    expect(readOut(path.join(dir, 'chain-ours-env'))).toBe(readOut(path.join(dir, 'chain-debian-env')));
  });

  it('builds one-way rings with =} }= and ={ {=', async () => {
    const out1 = path.join(dir, 'ring1');
    const r1 = await run(OURS, ['sh', '-c', `echo ring; read x; echo "$x" > ${out1}`, '=}', 'sh', '-c', 'read x; echo "b($x)"', '}=', 'sh', '-c', 'read x; echo "c($x)"']);
    expect(r1.code, r1.stderr).toBe(0);
    expect(readOut(out1)).toBe('c(b(ring))');
    const out2 = path.join(dir, 'ring2');
    const r2 = await run(OURS, ['sh', '-c', `echo ring; read x; echo "$x" > ${out2}`, '={', 'sh', '-c', 'read x; echo "b($x)"', '{=', 'sh', '-c', 'read x; echo "c($x)"']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(readOut(out2)).toBe('b(c(ring))');
  });

  it('leaves no copy of any pipe end in the dpipe process', async () => {
    const pidA = path.join(dir, 'nocopy-a');
    const pidB = path.join(dir, 'nocopy-b');
    const pidC = path.join(dir, 'nocopy-c');
    let dp: ChildProcess | undefined;
    const done = run(OURS, ['sh', '-c', `echo $$ > ${pidA}; exec sleep 30`, '=', 'sh', '-c', `echo $$ > ${pidB}; exec sleep 30`, '=', 'sh', '-c', `echo $$ > ${pidC}; exec sleep 30`], { onSpawn: (p) => (dp = p) });
    await waitFor(() => [pidA, pidB, pidC].every((f) => readOut(f) !== ''), 5000, 'the three commands');
    const children = [pidA, pidB, pidC].map((f) => Number(readOut(f)));
    // a and c use fds 0 and 1, b also its alternate fds (other inherited fds are not ours)
    const used = (pid: number, fds: number[]): string[] => fds.map((fd) => pipesOf(pid).get(fd) ?? `missing fd ${fd}`);
    const childPipes = new Set([...used(children[0], [0, 1]), ...used(children[1], [0, 1, 3, 4]), ...used(children[2], [0, 1])]);
    expect(childPipes.size).toBe(4); // two pipe pairs: a<->b and b's alternate fds<->c
    // c may have written its pid file before dpipe got to close its copies: allow a moment
    const shared = (): string[] => [...pipesOf(dp!.pid!).values()].filter((p) => childPipes.has(p));
    await waitFor(() => shared().length === 0, 2000, 'dpipe to drop its copies').catch(() => {});
    expect(shared()).toEqual([]);
    dp!.kill('SIGTERM');
    const r = await done;
    expect(r.code, r.stderr).toBe(0);
    await waitFor(() => children.every(gone), 5000, 'the commands to get SIGTERM');
  });

  it('logs the throughput of 100 MB through our dpipe and Debian\'s (no copying in dpipe)', async () => {
    const transfer = async (cmd: string[], tag: string): Promise<{ wallMs: number; pipeMs: number }> => {
      const f = (x: string): string => path.join(dir, `bulk-${tag}-${x}`);
      // the reader times itself from its start to EOF: the pipe's share, without dpipe's start-up
      const r = await run(cmd, ['head', '-c', String(BULK_BYTES), '/dev/zero', '=', 'sh', '-c', `date +%s%N > ${f('t0')}; wc -c > ${f('n')}; date +%s%N > ${f('t1')}`], { timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(Number(readOut(f('n')))).toBe(BULK_BYTES);
      return { wallMs: r.elapsedMs, pipeMs: Number(BigInt(readOut(f('t1'))) - BigInt(readOut(f('t0')))) / 1e6 };
    };
    const lines: string[] = [];
    for (const [name, cmd] of [['ours', OURS], ['debian', DEBIAN]] as const) {
      const runs = [];
      for (let i = 0; i < 3; i++) runs.push(await transfer(cmd, `${name}${i}`));
      const best = runs.reduce((a, b) => (b.pipeMs < a.pipeMs ? b : a));
      const mibps = (ms: number): string => (BULK_BYTES / 1048576 / (ms / 1000)).toFixed(0);
      lines.push(`${name.padEnd(6)}: transfer ${best.pipeMs.toFixed(0)} ms = ${mibps(best.pipeMs)} MiB/s (best of 3); whole run ${best.wallMs.toFixed(0)} ms incl. start-up`);
    }
    console.log(`dpipe head -c 100M /dev/zero = sh -c 'wc -c'\n  ${lines.join('\n  ')}`);
  });
});

describe('dpipe process model', () => {
  it('exits with the status of the last command', async () => {
    // "status stderr", so that a failure shows what dpipe said
    const status = async (args: string[]): Promise<string> => {
      const r = await run(OURS, args);
      return `${r.code}${r.stderr.trim() ? ` ${r.stderr.trim()}` : ''}`;
    };
    expect(await status(['sh', '-c', 'exit 3', '=', 'sh', '-c', 'exit 5'])).toBe('5');
    expect(await status(['sh', '-c', 'exit 3', '=', 'true'])).toBe('0');
    expect(await status(['true', '=', 'sh', '-c', 'exit 4', '=', 'sh', '-c', 'exit 9'])).toBe('9');
    expect(await status(['true', '=', 'sh', '-c', 'kill -KILL $$'])).toBe(String(128 + 9));
  });

  it('reports a command that cannot be executed and counts it as 127', async () => {
    const last = await run(OURS, ['cat', '=', 'no-such-command-vdets', 'x']);
    expect(last.code, last.stderr).toBe(127);
    expect(last.stderr).toMatch(/dpipe: cannot execute "no-such-command-vdets": command not found/);
    // the first one missing: the last still runs, sees EOF and its status is dpipe's
    const first = await run(OURS, [path.join(dir, 'no-such-file'), '=', 'sh', '-c', 'cat; exit 6']);
    expect(first.code, first.stderr).toBe(6);
    expect(first.stderr).toMatch(/cannot execute ".*no-such-file": no such file/);
    fs.writeFileSync(path.join(dir, 'not-executable'), '#!/bin/sh\n');
    const noexec = await run(OURS, ['cat', '=', path.join(dir, 'not-executable')]);
    expect(noexec.code, noexec.stderr).toBe(127);
    expect(noexec.stderr).toMatch(/permission denied/);
  });

  it('gives the others EOF when one command exits, then exits', async () => {
    const flag = path.join(dir, 'eof-b');
    const r = await run(OURS, ['sh', '-c', 'echo bye', '=', 'sh', '-c', `cat > ${flag}.data; echo eof > ${flag}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(readOut(flag)).toBe('eof');
    expect(readOut(`${flag}.data`)).toBe('bye');
    // down a chain: c exits -> b's alternate stdin ends -> b exits -> a's stdin ends -> a exits
    const fa = path.join(dir, 'eof-chain-a');
    const fb = path.join(dir, 'eof-chain-b');
    const r2 = await run(OURS, ['sh', '-c', `cat > /dev/null; echo a-eof > ${fa}`, '=', 'sh', '-c', `cat <&$ALTERNATE_STDIN > /dev/null; echo b-eof > ${fb}`, '=', 'sleep', '0.2']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(readOut(fb)).toBe('b-eof');
    expect(readOut(fa)).toBe('a-eof');
    // a writer whose reader is gone dies of SIGPIPE (the signal disposition is not inherited from Node)
    const r3 = await run(OURS, ['sh', '-c', `head -c ${BULK_BYTES} /dev/zero; echo "head=$?" > ${fa}.pipe`, '=', 'sh', '-c', 'head -c 10 > /dev/null']);
    expect(r3.code, r3.stderr).toBe(0);
    expect(readOut(`${fa}.pipe`)).toBe(`head=${128 + 13}`);
  });

  it('rejects usage errors with status 255 and a message', async () => {
    for (const [args, msg] of [
      [['a', 'b'], /no "=" separator/],
      [['=', 'a', '=', 'b'], /before the first command/],
      [['a', '=', 'b', '='], /last argument/],
      [['a', '=}', 'b', '=', 'c'], /"=}" is never closed/],
      [['-x', 'a', '=', 'b'], /unknown option "-x"/],
      [[], /no command given/],
    ] as const) {
      const r = await run(OURS, [...args]);
      expect(r.code, args.join(' ')).toBe(255);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr).toMatch(/^Usage: dpipe/m);
    }
    const h = await run(OURS, ['--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain('dpipe vde_plug /tmp/s1 = wirefilter -l 10 = vde_plug /tmp/s2');
    expect(h.stdout).toMatch(/Node cannot exec in place/);
  });

  it('writes and removes the pid file; SIGTERM stops the commands and exits 0', async () => {
    const pf = path.join(dir, 'dp.pid');
    const ca = path.join(dir, 'pf-a');
    let dp: ChildProcess | undefined;
    const done = run(OURS, ['-p', 'dp.pid', 'sh', '-c', `echo $$ > ${ca}; exec sleep 30`, '=', 'sleep', '30'], { cwd: dir, onSpawn: (p) => (dp = p) });
    await waitFor(() => readOut(pf) !== '' && readOut(ca) !== '', 5000, 'pid file');
    expect(readOut(pf)).toBe(String(dp!.pid));
    dp!.kill('SIGTERM');
    const r = await done;
    expect(r.code, r.stderr).toBe(0);
    expect(fs.existsSync(pf)).toBe(false);
    await waitFor(() => gone(Number(readOut(ca))), 5000, 'command a to stop');
  });

  it('SIGINT stops the commands and re-raises', async () => {
    const ca = path.join(dir, 'int-a');
    let dp: ChildProcess | undefined;
    const done = run(OURS, ['sh', '-c', `echo $$ > ${ca}; exec sleep 30`, '=', 'sleep', '30'], { onSpawn: (p) => (dp = p) });
    await waitFor(() => readOut(ca) !== '', 5000, 'command a');
    dp!.kill('SIGINT');
    const r = await done;
    expect(r.signal).toBe('SIGINT');
    await waitFor(() => gone(Number(readOut(ca))), 5000, 'command a to stop');
  });

  it('-P in someone else\'s process group: a new group holding dpipe and its commands', async () => {
    const gf = path.join(dir, 'grp1');
    const pf = path.join(dir, 'grp1.pid');
    const ca = path.join(dir, 'grp1-a');
    const done = run(OURS, ['-P', gf, '-p', pf, 'sh', '-c', `echo $$ > ${ca}; exec sleep 30`, '=', 'sleep', '30']);
    await waitFor(() => readOut(gf) !== '' && readOut(pf) !== '' && readOut(ca) !== '', 5000, 'pgrp file');
    const pgid = -Number(readOut(gf));
    expect(pgid).toBeGreaterThan(0);
    expect(pgid).not.toBe(groupOf(process.pid).pgrp);
    expect(groupOf(Number(readOut(pf))).pgrp).toBe(pgid);
    expect(groupOf(Number(readOut(ca))).pgrp).toBe(pgid);
    process.kill(-pgid, 'SIGTERM'); // what "kill $(cat pgrpfile)" does
    const r = await done;
    expect(r.code, r.stderr).toBe(0);
    expect(fs.existsSync(gf)).toBe(false);
    expect(fs.existsSync(pf)).toBe(false);
  });

  it('-P as a session leader uses its own group (where Debian\'s dpipe cannot create one)', async () => {
    const gf = path.join(dir, 'grp2');
    const ca = path.join(dir, 'grp2-a');
    let dp: ChildProcess | undefined;
    const done = run(OURS, ['-P', gf, 'sh', '-c', `echo $$ > ${ca}; exec sleep 30`, '=', 'sleep', '30'], { detached: true, onSpawn: (p) => (dp = p) });
    await waitFor(() => readOut(gf) !== '' && readOut(ca) !== '', 5000, 'pgrp file');
    expect(readOut(gf)).toBe(`-${dp!.pid}`);
    expect(groupOf(Number(readOut(ca))).pgrp).toBe(dp!.pid);
    process.kill(-dp!.pid!, 'SIGTERM');
    expect((await done).code).toBe(0);
    expect(fs.existsSync(gf)).toBe(false);
    const deb = await run(DEBIAN, ['-P', path.join(dir, 'grp3'), 'true', '=', 'true'], { detached: true });
    console.log(`Debian dpipe -P as a session leader: exit ${deb.code}, ${deb.stderr.trim()}`);
  });

  it('-d detaches, reports start-up errors first, and runs in its own session', async () => {
    const ca = path.join(dir, 'daemon-a');
    const r = await run(OURS, ['-d', '-p', 'daemon.pid', 'sh', '-c', `echo $$ > ${ca}; exec sleep 30`, '=', 'sleep', '30'], { cwd: dir, timeoutMs: 5000 });
    expect(r.code, r.stderr).toBe(0);
    const pf = path.join(dir, 'daemon.pid'); // a relative pid file is relative to the caller's directory
    await waitFor(() => readOut(pf) !== '' && readOut(ca) !== '', 5000, 'daemon pid file');
    const pid = Number(readOut(pf));
    expect(groupOf(pid)).toEqual({ pgrp: pid, session: pid });
    expect(fs.readlinkSync(`/proc/${pid}/cwd`)).toBe('/');
    process.kill(pid, 'SIGTERM');
    await waitFor(() => !fs.existsSync(pf) && gone(pid) && gone(Number(readOut(ca))), 5000, 'daemon to stop');
    const bad = await run(OURS, ['-d', 'no-such-command-vdets', '=', 'cat'], { timeoutMs: 5000 });
    expect(bad.code, bad.stderr).toBe(127);
    expect(bad.stderr).toMatch(/cannot execute "no-such-command-vdets"/);
  });
});

describe('dpipe cables between Debian vde_switches', () => {
  const procs: ChildProcess[] = [];
  const plugs: StdioPlug[] = [];
  let d1: string;
  let d2: string;
  beforeAll(async () => {
    d1 = path.join(dir, 'sw1');
    d2 = path.join(dir, 'sw2');
    for (const d of [d1, d2]) {
      // Debian's switch reads a console on stdin and exits at EOF: give it an open pipe
      procs.push(spawn('vde_switch', ['-s', d], { stdio: ['pipe', 'ignore', 'ignore'] }));
      await waitFor(() => fs.existsSync(path.join(d, 'ctl')), 5000, `Debian vde_switch in ${d}`);
    }
  });
  afterAll(async () => {
    for (const p of plugs) await p.close();
    for (const p of procs.reverse()) {
      if (p.exitCode !== null || p.signalCode !== null) continue;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
    }
  });

  /** Sends f on a until b receives it (ports take a moment to come up), true on success. */
  const crosses = async (a: StdioPlug, b: StdioPlug, f: Buffer, srcHex: string): Promise<boolean> => {
    for (let i = 0; i < 25; i++) {
      a.send(f);
      const got = await b.recvFrom(srcHex, 200);
      if (got) return got.equals(f);
    }
    return false;
  };

  for (const [label, middle] of [
    ['vde_plug = vde_plug', [] as string[]],
    ['vde_plug = wirefilter = vde_plug', ['=', 'wirefilter']],
  ] as const) {
    it(`carries frames both ways over our dpipe ${label}`, async () => {
      const cable = spawn(process.execPath, [DPIPE, 'vde_plug', d1, ...middle, '=', 'vde_plug', d2], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      cable.stderr!.on('data', (d) => (err += d));
      procs.push(cable);
      const a = new StdioPlug('vde_plug', [d1]);
      const b = new StdioPlug('vde_plug', [d2]);
      plugs.push(a, b);
      const mac = label.length % 200;
      const f = frame('ff:ff:ff:ff:ff:ff', `02:00:00:00:30:${mac.toString(16)}`, 500);
      expect(await crosses(a, b, f, `0200000030${mac.toString(16).padStart(2, '0')}`), err).toBe(true);
      const g = frame('ff:ff:ff:ff:ff:ff', `02:00:00:00:31:${mac.toString(16)}`, 1400);
      expect(await crosses(b, a, g, `0200000031${mac.toString(16).padStart(2, '0')}`), err).toBe(true);
      // closing the cable: SIGTERM to dpipe reaches the commands, dpipe exits 0
      const exited = new Promise<number | null>((r) => cable.once('exit', (code) => r(code)));
      cable.kill('SIGTERM');
      expect(await exited).toBe(0);
      await a.close();
      await b.close();
    });
  }
});
