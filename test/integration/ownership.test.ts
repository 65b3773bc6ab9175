// Never delete or take over what this process did not create: a refused start leaves another
// switch's sockets and directory alone; live unix sockets (of any type) are refused, not taken
// over, by the switch's -M and --qemu-listen, by vde_plug's stream servers and by ptp://; a
// regular file where a socket should be is refused, never deleted; an existing directory is not
// chmod'ed; a pidfile without a pid is refused; data sockets left by a killed switch are
// reclaimed at the next start; sockets exist with their final mode from the first moment.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, runBin, SWITCH_BIN, startSwitch, tmpdir, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { VdeClient } from '../helpers/vdeclient.js';

const PLUG_BIN = path.join(ROOT, 'bin', 'vde_plug');

/** Runs a tool to its end and returns its status and output. */
const runTool = (bin: string, args: string[]): ReturnType<typeof runBin> => runBin(path.basename(bin), args);

/** True when a stream socket at p accepts a connection. */
function accepts(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect({ path: p });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

describe('a refused start touches nothing of a live switch', () => {
  let a: RunningSwitch;
  beforeAll(async () => {
    a = await startSwitch();
  });
  afterAll(async () => {
    await a.stop();
  });

  it('-M naming the live switch\'s management socket: refused, the socket stays and answers', async () => {
    const b = path.join(tmpdir(), 'b');
    const r = await runTool(SWITCH_BIN, ['-s', b, '-M', a.mgmt, '--nostdin']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/management socket .* is in use by another process/);
    expect(fs.existsSync(a.mgmt)).toBe(true);
    expect((await a.cmd('port/showinfo')).status).toBe(0);
    expect(fs.existsSync(b)).toBe(false);
  });

  it('-M naming the live switch\'s control socket: refused, ctl stays and serves', async () => {
    const r = await runTool(SWITCH_BIN, ['-s', path.join(tmpdir(), 'b'), '-M', path.join(a.dir, 'ctl'), '--nostdin']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/in use by another process/);
    const c = await VdeClient.connect(a.dir);
    c.close();
  });

  it('-s naming the live switch: refused, its directory and sockets stay', async () => {
    const other = path.join(tmpdir(), 'other.mgmt');
    const r = await runTool(SWITCH_BIN, ['-s', a.dir, '-M', other, '--nostdin']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/another switch is running/);
    expect(fs.readdirSync(a.dir)).toContain('ctl');
    expect(fs.existsSync(other)).toBe(false);
    const c = await VdeClient.connect(a.dir);
    c.close();
  });

  it('vde_plug stream://unix:PATH[server] and ptp://PATH refuse a live socket and leave it', async () => {
    for (const loc of [`stream://unix:${a.mgmt}[server]`, `ptp://${a.mgmt}`]) {
      const r = await runTool(PLUG_BIN, ['null://', loc]);
      expect(r.code, loc).toBe(1);
      expect(r.out, loc).toMatch(/in use by another process|socket of another kind/);
      expect(await accepts(a.mgmt), loc).toBe(true);
    }
  });
});

describe('QEMU listeners', () => {
  it('a second switch with the same --qemu-listen unix:PATH is refused and the first keeps PATH', async () => {
    const q = path.join(tmpdir(), 'q.sock');
    const a = await startSwitch(['--qemu-listen', `unix:${q}`]);
    const r = await runTool(SWITCH_BIN, ['-s', path.join(tmpdir(), 'b'), '--nostdin', '--qemu-listen', `unix:${q}`]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/--qemu-listen unix:.*q\.sock.* is in use by another process/);
    expect(await accepts(q)).toBe(true);
    await a.stop();
    expect(fs.existsSync(q)).toBe(false);
  });
});

describe('files that are not ours', () => {
  it('a regular file as DIR/ctl or as -M is refused and kept', async () => {
    const d = path.join(tmpdir(), 'sw');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'ctl'), 'precious\n');
    const r = await runTool(SWITCH_BIN, ['-s', d, '--nostdin']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/ctl exists and is not a socket; not removing it/);
    expect(fs.readFileSync(path.join(d, 'ctl'), 'utf8')).toBe('precious\n');
    const m = path.join(tmpdir(), 'mgmt');
    fs.writeFileSync(m, 'precious\n');
    const r2 = await runTool(SWITCH_BIN, ['-s', path.join(tmpdir(), 'sw2'), '-M', m, '--nostdin']);
    expect(r2.code).toBe(1);
    expect(r2.out).toMatch(/mgmt exists and is not a socket; not removing it/);
    expect(fs.readFileSync(m, 'utf8')).toBe('precious\n');
  });

  it('an existing directory is used as it is: not chmod\'ed, not removed at exit', async () => {
    const d = path.join(tmpdir(), 'mine');
    fs.mkdirSync(d);
    fs.chmodSync(d, 0o755);
    fs.writeFileSync(path.join(d, 'notes'), 'keep\n');
    const sw = await startSwitch([], { dir: d });
    expect(fs.statSync(d).mode & 0o7777).toBe(0o755);
    expect(fs.statSync(path.join(d, 'ctl')).mode & 0o777).toBe(0o600);
    await sw.stop();
    expect(fs.readdirSync(d)).toEqual(['notes']);
  });

  it('-p naming a file without a process id is refused and the file kept', async () => {
    const pid = path.join(tmpdir(), 'not.pid');
    fs.writeFileSync(pid, 'my notes\n');
    const r = await runTool(SWITCH_BIN, ['-s', path.join(tmpdir(), 'sw'), '-p', pid, '--nostdin']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/pidfile .*not\.pid exists and does not hold a process id/);
    expect(r.out).not.toMatch(/NaN/);
    expect(fs.readFileSync(pid, 'utf8')).toBe('my notes\n');
  });

  it('a management socket in a missing directory is reported as such', async () => {
    const r = await runTool(SWITCH_BIN, ['-s', path.join(tmpdir(), 'sw'), '-M', '/nonexistent-vdets/dir/mgmt', '--nostdin']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/management socket \/nonexistent-vdets\/dir\/mgmt: the directory \/nonexistent-vdets\/dir does not exist/);
  });
});

describe('after SIGKILL', () => {
  it('reclaims the stale control and data sockets and removes the directory at exit', async () => {
    const sw = await startSwitch();
    const dir = sw.dir;
    const clients = [await VdeClient.connect(dir), await VdeClient.connect(dir)];
    const dataNames = fs.readdirSync(dir).filter((n) => /^\d{3}\.\d+$/.test(n));
    expect(dataNames).toHaveLength(2);
    sw.proc.kill('SIGKILL');
    await waitFor(() => sw.proc.exitCode !== null || sw.proc.signalCode !== null, 5000, 'switch killed');
    for (const c of clients) c.close();
    expect(fs.readdirSync(dir).filter((n) => /^\d{3}\.\d+$/.test(n))).toEqual(dataNames);
    const sw2 = await startSwitch([], { dir });
    expect(fs.readdirSync(dir).filter((n) => dataNames.includes(n))).toEqual([]);
    expect(sw2.output()).toMatch(/removed 2 stale data sockets/);
    await sw2.stop();
    expect(fs.existsSync(dir)).toBe(false);
  });
});

describe('socket modes', () => {
  it('the management and control sockets never exist with another mode', async () => {
    const base = tmpdir();
    const mgmt = path.join(base, 'm');
    const dir = path.join(base, 'sw');
    const p = spawn(process.execPath, [SWITCH_BIN, '-s', dir, '-M', mgmt, '--mgmtmode', '0640', '-m', '0620', '--nostdin'], { stdio: 'ignore' });
    const seen = { mgmt: -1, ctl: -1 };
    const end = Date.now() + 10_000;
    while ((seen.mgmt < 0 || seen.ctl < 0) && Date.now() < end) {
      for (const [k, f] of [['mgmt', mgmt], ['ctl', path.join(dir, 'ctl')]] as const) {
        if (seen[k] >= 0) continue;
        try {
          seen[k] = fs.lstatSync(f).mode & 0o777;
        } catch {
          /* not there yet */
        }
      }
    }
    p.kill('SIGTERM');
    await new Promise((r) => p.once('exit', r));
    expect(seen).toEqual({ mgmt: 0o640, ctl: 0o620 });
  });
});
