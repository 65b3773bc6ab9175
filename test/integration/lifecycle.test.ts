// Start-up and shutdown of the switch process: directory and socket modes, refusing a live
// switch and reclaiming a stale one, cleanup on every signal and on `shutdown`, daemon mode with
// a pidfile, rc files (good and bad), option errors and the console protocol byte by byte.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SWITCH_BIN, startSwitch, tmpdir, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { VdeClient } from '../helpers/vdeclient.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runSwitch(args: string[], timeoutMs = 5000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [SWITCH_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.stderr!.on('data', (d) => (out += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

/** Opens a raw console session and returns a function sending one chunk and reading the reply. */
async function session(mgmt: string) {
  const c = net.connect({ path: mgmt });
  let buf = '';
  c.setEncoding('utf8');
  c.on('data', (d: string) => (buf += d));
  await waitFor(() => buf.endsWith('vde$ '), 3000, 'banner');
  const banner = buf;
  return {
    banner,
    c,
    async send(s: string, until: (b: string) => boolean = (b) => b.endsWith('\nvde$ ')): Promise<string> {
      buf = '';
      c.write(s);
      await waitFor(() => until(buf), 3000, `reply to ${JSON.stringify(s.slice(0, 40))}`);
      return buf;
    },
  };
}

describe('directory, modes and ownership', () => {
  it('creates the directory 02700 and ctl 0600 by default, and derives modes from -m', async () => {
    const sw = await startSwitch();
    expect(fs.statSync(sw.dir).mode & 0o7777).toBe(0o2700);
    expect(fs.statSync(path.join(sw.dir, 'ctl')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(sw.mgmt).mode & 0o777).toBe(0o600);
    await sw.stop();
    const sw2 = await startSwitch(['-m', '0660', '--mgmtmode', '0640']);
    expect(fs.statSync(sw2.dir).mode & 0o7777).toBe(0o2770);
    expect(fs.statSync(path.join(sw2.dir, 'ctl')).mode & 0o777).toBe(0o660);
    expect(fs.statSync(sw2.mgmt).mode & 0o777).toBe(0o640);
    const c = await VdeClient.connect(sw2.dir);
    // as root with a known client uid the data socket is mode & 0700, owned by the client
    expect(fs.statSync(c.dataPath).mode & 0o777).toBe(0o600);
    c.close();
    const ds = await sw2.cmd('ds/showinfo');
    expect(ds.data).toEqual([`ctl dir ${sw2.dir}`, 'std mode 0660']);
    await sw2.stop();
  });
});

describe('lifecycle', () => {
  it('refuses to start over a live switch and reclaims a stale control socket', async () => {
    const sw = await startSwitch();
    const r = await runSwitch(['-s', sw.dir, '--nostdin']);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/another switch is running/);
    expect(fs.existsSync(path.join(sw.dir, 'ctl'))).toBe(true);
    // kill -9 leaves a stale ctl behind; the next switch takes it over
    const dir = sw.dir;
    sw.proc.kill('SIGKILL');
    await sleep(300);
    expect(fs.existsSync(path.join(dir, 'ctl'))).toBe(true);
    const sw2 = await startSwitch([], { dir });
    const c = await VdeClient.connect(sw2.dir);
    c.close();
    await sw2.stop();
    expect(fs.existsSync(dir)).toBe(false);
  });

  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    it(`removes sockets, pidfile and directory on ${sig}`, async () => {
      const pid = path.join(tmpdir(), 'sw.pid');
      const sw = await startSwitch(['-p', pid]);
      expect(fs.readFileSync(pid, 'utf8').trim()).toBe(String(sw.proc.pid));
      const c = await VdeClient.connect(sw.dir);
      const dir = sw.dir;
      const mgmt = sw.mgmt;
      const code = await sw.stop(sig);
      expect(code).toBe(0);
      expect(fs.existsSync(dir)).toBe(false);
      expect(fs.existsSync(mgmt)).toBe(false);
      expect(fs.existsSync(pid)).toBe(false);
      c.close();
    });
  }

  it('shuts down from the console with 9999 END OF SESSION and cleans up', async () => {
    const sw = await startSwitch();
    const s = await session(sw.mgmt);
    const r = await s.send('shutdown\n', (b) => b.includes('9999 END OF SESSION'));
    expect(r).toBe('9999 END OF SESSION');
    await waitFor(() => sw.proc.exitCode !== null, 5000, 'switch exit');
    expect(fs.existsSync(sw.dir)).toBe(false);
  });

  it('exits with a clear message when stdin closes, and stays up with --nostdin', async () => {
    const base = tmpdir();
    const p = spawn(process.execPath, [SWITCH_BIN, '-s', path.join(base, 'sw')], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stderr!.on('data', (d) => (out += d));
    await waitFor(() => fs.existsSync(path.join(base, 'sw', 'ctl')), 5000, 'ctl');
    p.stdin!.write('port/showinfo\n');
    let stdout = '';
    p.stdout!.on('data', (d) => (stdout += d));
    await waitFor(() => stdout.includes('1000 Success'), 3000, 'stdin console reply');
    expect(stdout).toContain('Numports=32');
    p.stdin!.end();
    await waitFor(() => p.exitCode !== null, 5000, 'exit on EOF');
    expect(p.exitCode).toBe(0);
    expect(out).toMatch(/EOF on stdin/);
    expect(fs.existsSync(path.join(base, 'sw'))).toBe(false);
  });

  it('daemonizes with -d, writes the pidfile, and refuses a live pidfile', async () => {
    const base = tmpdir();
    const dir = path.join(base, 'sw');
    const pid = path.join(base, 'sw.pid');
    const r = await run(process.execPath, [SWITCH_BIN, '-d', '-s', dir, '-p', pid]);
    expect(r.stderr).toBe('');
    const daemonPid = parseInt(fs.readFileSync(pid, 'utf8'), 10);
    expect(() => process.kill(daemonPid, 0)).not.toThrow();
    const again = await runSwitch(['-s', path.join(base, 'other'), '-p', pid, '--nostdin']);
    expect(again.code).toBe(1);
    expect(again.out).toMatch(/pidfile .* exists and process \d+ is running/);
    process.kill(daemonPid, 'SIGTERM');
    await waitFor(() => !fs.existsSync(pid), 5000, 'daemon cleanup');
    expect(fs.existsSync(dir)).toBe(false);
  });
});

describe('options and rc files', () => {
  const cases: Array<[string[], RegExp]> = [
    [['--numports', 'abc'], /--numports: "abc" is not a whole number/],
    [['-n', '0'], /--numports: 0 is out of range/],
    [['--mode', '999'], /--mode: "999" is not an octal mode/],
    [['--group', 'no-such-group-xyz'], /no such group "no-such-group-xyz"/],
    [['--macaddr', 'zz:zz'], /--macaddr: "zz:zz" is not a MAC address/],
    [['--bogus'], /Unknown argument/i],
    [['extra-positional'], /Unknown argument: extra-positional/],
    [['-f', '/nonexistent/rc'], /rc file \/nonexistent\/rc: no such file/],
  ];
  for (const [args, msg] of cases) {
    it(`rejects ${args.join(' ')} with a clear message and exit 1`, async () => {
      const r = await runSwitch(['-s', path.join(tmpdir(), 'sw'), '--nostdin', ...args]);
      expect(r.code).toBe(1);
      expect(r.out).toMatch(msg);
    });
  }

  it('accepts vde2 single-dash long options and documents every option in --help', async () => {
    const base = tmpdir();
    const sw = await startSwitch(['-numports', '6', '-hub']);
    const info = await sw.cmd('port/showinfo');
    expect(info.data).toEqual(['Numports=6', 'HUB=true', 'counters=true']);
    await sw.stop();
    const h = await runSwitch(['--help']);
    for (const o of ['--sock', '--numports', '--hub', '--fstp', '--macaddr', '--priority', '--hashsize', '--mode', '--dirmode', '--group', '--mgmt', '--mgmtmode', '--mgmtgroup', '--rcfile', '--daemon', '--pidfile', '--nostdin', '--foreign-tags', '--tap'])
      expect(h.out).toContain(o);
    expect(h.out).toMatch(/Examples:/);
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('runs a good rc file and reports bad lines with their line numbers while still starting', async () => {
    const base = tmpdir();
    const rc = path.join(base, 'rc');
    fs.writeFileSync(rc, '# comment\nvlan/create 10\nport/create 3\nport/setvlan 3 10\nno/such/command\nvlan/create 99999\n');
    const sw = await startSwitch(['-f', rc]);
    const p = await sw.json<{ untaggedVlan: number }>('json/port/allprint 3');
    expect(p.untaggedVlan).toBe(10);
    expect(sw.output()).toMatch(/rc:5: no\/such\/command: Function not implemented/);
    expect(sw.output()).toMatch(/rc:6: vlan\/create 99999: Invalid argument/);
    await sw.stop();
  });
});

describe('console protocol', () => {
  let sw: RunningSwitch;
  beforeAll(async () => {
    sw = await startSwitch();
  });
  afterAll(async () => {
    await sw.stop();
  });

  it('greets with the vde2 banner and frames replies byte-exactly', async () => {
    const s = await session(sw.mgmt);
    expect(s.banner).toBe('VDE switch V.2.3.3\n(C) Virtual Square Team (coord. R. Davoli) 2005,2006,2007 - GPLv2\n\nvde$ ');
    expect(await s.send('port/showinfo\n')).toBe("0000 DATA END WITH '.'\nNumports=32\nHUB=false\ncounters=true\n.\n1000 Success\n\nvde$ ");
    expect(await s.send('vlan/create 7\n')).toBe('1000 Success\n\nvde$ ');
    expect(await s.send('nonsense\n')).toBe('1038 Function not implemented\n\nvde$ ');
    expect(await s.send('port/print 999\n')).toBe("0000 DATA END WITH '.'\n.\n1022 Invalid argument\n\nvde$ ");
    expect(await s.send('\n')).toBe('\nvde$ ');
    expect(await s.send('# comment\n')).toBe('\nvde$ ');
    // prefix matching as vde2: helpport = help port
    const help = await s.send('helpport\n');
    expect(help).toContain('port/print');
    expect(help).not.toContain('hash/print');
    expect(await s.send('logout\n', (b) => b.includes('9999'))).toBe('9999 END OF SESSION');
  });

  it('handles CRLF, several commands in one write, garbage and over-long lines', async () => {
    const s = await session(sw.mgmt);
    expect(await s.send('port/showinfo\r\n')).toContain('1000 Success');
    const two = await s.send('vlan/create 8\nvlan/create 8\n', (b) => b.split('vde$ ').length === 3);
    expect(two).toBe('1000 Success\n\nvde$ 1017 File exists\n\nvde$ ');
    const garbage = Buffer.alloc(2000);
    for (let i = 0; i < garbage.length; i++) garbage[i] = 32 + Math.floor(Math.random() * 90);
    expect(await s.send(`${garbage.toString('latin1')}\n`)).toMatch(/^1038 Function not implemented\n/);
    expect(await s.send(`${'x'.repeat(10000)}\n`)).toBe('1022 Invalid argument\n\nvde$ ');
    const bin = Buffer.from(Array.from({ length: 500 }, () => Math.floor(Math.random() * 256)).filter((b) => b !== 10));
    s.c.write(Buffer.concat([bin, Buffer.from('\n')]));
    await sleep(200);
    expect(await s.send('port/showinfo\n')).toContain('Numports=32');
    s.c.destroy();
  });

  it('has a JSON form of the print commands', async () => {
    const c = await VdeClient.connect(sw.dir);
    const info = await sw.json<{ numPorts: number; hub: boolean }>('json/showinfo');
    expect(info.numPorts).toBe(32);
    expect(await sw.json('json/port/showinfo')).toEqual({ numPorts: 32, hub: false, counters: true });
    expect(await sw.json<unknown[]>('json/vlan/print')).toContainEqual(expect.objectContaining({ vlan: 0 }));
    expect(await sw.json('json/hash/showinfo')).toMatchObject({ expireSeconds: 100, minPersistSeconds: 3, gcIntervalSeconds: 2 });
    expect(await sw.json('json/fstp/print')).toMatchObject({ enabled: false });
    c.close();
  });

  it('sends debug lines to subscribed sessions', async () => {
    const s = await session(sw.mgmt);
    expect(await s.send('debug/add port/ep\n')).toBe('1000 Success\n\nvde$ ');
    let buf = '';
    s.c.on('data', (d: string) => (buf += d));
    const c = await VdeClient.connect(sw.dir, { port: 9 });
    await waitFor(() => buf.includes('3031 port/ep/+ Port 09'), 3000, 'debug line');
    c.close();
    await waitFor(() => buf.includes('3032 port/ep/- Port 09'), 3000, 'debug line');
    s.c.destroy();
  });
});

describe('vdecmd', () => {
  it('prints the data block and exits with the status errno', async () => {
    const sw = await startSwitch();
    const bin = path.join(path.dirname(SWITCH_BIN), 'vdecmd');
    const ok = await run(process.execPath, [bin, '-s', sw.mgmt, 'port/showinfo']);
    expect(ok.stdout).toBe('Numports=32\nHUB=false\ncounters=true\n');
    const bad = await run(process.execPath, [bin, '-s', sw.mgmt, 'port/print', '5']).catch((e) => e);
    expect(bad.code).toBe(6);
    expect(bad.stderr).toMatch(/No such device or address/);
    const none = await run(process.execPath, [bin, '-s', '/nonexistent.sock', 'help']).catch((e) => e);
    expect(none.code).toBe(255);
    await sw.stop();
  });
});
