// Command-line habits of vde2 and vdeplug4 users, end to end: the last of a repeated option
// wins, a missing value is an error, getopt_long_only prefixes (`-mod 0660`), `-d` with
// relative paths, --version and --logfile on every command, --help examples that paste and
// run, errors as one line (never a Node stack trace, also for EPIPE), and the smaller traps:
// vdecmd on a control socket, the start-up line after an rc file, `vde_plug S S`, dpipe with a
// missing command, and vde_plug with a file, /dev/null or -d for stdin.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shellWords } from '../../src/core/cli.js';
import { parsePlugArgs, EXAMPLES as PLUG_EXAMPLES } from '../../src/plug/main.js';
import { parseSlirpvdeArgs, EXAMPLES as SLIRP_EXAMPLES } from '../../src/slirp/main.js';
import { parseSwitchArgs, EXAMPLES as SWITCH_EXAMPLES } from '../../src/switch/main.js';
import { EXAMPLES as VDECMD_EXAMPLES } from '../../src/vdecmd/main.js';
import { parseCaptureArgs, EXAMPLES as CAPTURE_EXAMPLES } from '../../src/capture/main.js';
import { parseWfArgs, EXAMPLES as WF_EXAMPLES } from '../../src/wirefilter/main.js';
import { ROOT, runBin, SWITCH_BIN, startSwitch, tmpdir, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { frame, VdeClient } from '../helpers/vdeclient.js';

const run = promisify(execFile);
const BIN = (t: string): string => path.join(ROOT, 'bin', t);
const TOOLS = ['vde_switch', 'vde_plug', 'dpipe', 'slirpvde', 'vdecmd', 'vde_capture', 'wirefilter'];

const tool = runBin;

describe('repeated and incomplete options', () => {
  it('the last -s wins (no directory named "x1,x2")', async () => {
    const base = tmpdir();
    const p = spawn(process.execPath, [SWITCH_BIN, '-s', path.join(base, 'x1'), '-s', path.join(base, 'x2'), '--nostdin'], { stdio: 'ignore' });
    await waitFor(() => fs.existsSync(path.join(base, 'x2', 'ctl')) || p.exitCode !== null, 8000, 'switch in x2');
    expect(fs.readdirSync(base).sort()).toEqual(['x2']);
    p.kill('SIGTERM');
    await new Promise((r) => p.once('exit', r));
  });

  for (const [t, args] of [
    ['vde_switch', ['-M']], ['vde_switch', ['-p']], ['vde_switch', ['-s']], ['vde_switch', ['--mgmtmode']],
    ['vde_plug', ['null://', 'null://', '-p']], ['slirpvde', ['-', '-p']], ['vdecmd', ['-s']], ['vde_capture', ['/tmp/m', '-w']], ['wirefilter', ['-v']], ['wirefilter', ['-l']],
  ] as Array<[string, string[]]>) {
    it(`${t} ${args.join(' ')}: a missing value is an error naming the option`, async () => {
      const r = await tool(t, args);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/option "-{1,2}[A-Za-z]+" needs a value/);
    });
  }

  it('accepts the man page form -mod 0660 (getopt_long_only prefix)', async () => {
    const sw = await startSwitch(['-mod', '0660']);
    expect(fs.statSync(path.join(sw.dir, 'ctl')).mode & 0o777).toBe(0o660);
    await sw.stop();
  });
});

describe('background mode and log files', () => {
  it('-d with relative paths puts -s, -p and -M where the user was, and --logfile gets the log', async () => {
    const base = tmpdir();
    const r = await tool('vde_switch', ['-d', '-s', 'rel-sw', '-p', 'rel.pid', '-M', 'rel.mgmt', '--logfile', 'rel.log'], { cwd: base });
    expect(r.code, r.stderr).toBe(0);
    expect(fs.existsSync(path.join(base, 'rel-sw', 'ctl'))).toBe(true);
    expect(fs.existsSync(path.join(base, 'rel.mgmt'))).toBe(true);
    const pid = parseInt(fs.readFileSync(path.join(base, 'rel.pid'), 'utf8'), 10);
    await waitFor(() => /switch running on .*rel-sw/.test(fs.readFileSync(path.join(base, 'rel.log'), 'utf8')), 5000, 'log line');
    process.kill(pid, 'SIGTERM');
    await waitFor(() => !fs.existsSync(path.join(base, 'rel.pid')), 5000, 'daemon exit');
    expect(fs.readFileSync(path.join(base, 'rel.log'), 'utf8')).toMatch(/caught SIGTERM/);
  });

  it('--logfile works in the foreground of vde_plug and slirpvde too', async () => {
    const base = tmpdir();
    const log = path.join(base, 'plug.log');
    const r = await tool('vde_plug', ['--logfile', log, 'vde:///nonexistent-vdets', 'null://']);
    expect(r.code).toBe(1);
    expect(fs.existsSync(log)).toBe(true);
    const bad = await tool('slirpvde', ['--logfile', '/nonexistent-vdets/x.log', '-']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--logfile \/nonexistent-vdets\/x\.log: the directory does not exist/);
  });

  it('every command prints its version', async () => {
    for (const t of TOOLS) {
      const r = await tool(t, ['--version']);
      expect(r.code, t).toBe(0);
      expect(r.stdout, t).toMatch(t === 'vde_switch' ? /^VDE 2\.3\.3 \(vde-ts \d+\.\d+\.\d+\)$/m : new RegExp(`^${t} \\(vde-ts\\) \\d+\\.\\d+\\.\\d+`));
    }
  });
});

describe('--help examples', () => {
  it('print each command on one line, whatever the terminal width', async () => {
    for (const [t, examples] of [['vde_switch', SWITCH_EXAMPLES], ['vde_plug', PLUG_EXAMPLES], ['slirpvde', SLIRP_EXAMPLES], ['vdecmd', VDECMD_EXAMPLES], ['vde_capture', CAPTURE_EXAMPLES], ['wirefilter', WF_EXAMPLES]] as const) {
      const r = await run(process.execPath, [BIN(t), '--help'], { env: { ...process.env, COLUMNS: '60' } });
      const lines = r.stdout.split('\n').map((l) => l.trim());
      for (const e of examples) expect(lines, `${t}: ${e.command}`).toContain(e.command);
    }
  });

  it('are accepted by the tools\' own parsers', async () => {
    for (const e of [...SWITCH_EXAMPLES, ...PLUG_EXAMPLES, ...SLIRP_EXAMPLES, ...VDECMD_EXAMPLES, ...CAPTURE_EXAMPLES, ...WF_EXAMPLES]) {
      // a pipeline's first command is ours (vde_capture SOCK | tshark -r -)
      const argv = shellWords(e.command.split(' | ')[0]);
      expect(argv, e.command).not.toBeNull();
      const [cmd, ...args] = argv!;
      if (cmd === 'vde_switch') expect((await parseSwitchArgs(args)).opts, e.command).not.toBeNull();
      else if (cmd === 'vde_plug') expect((await parsePlugArgs(args)).sides, e.command).not.toBeNull();
      else if (cmd === 'slirpvde') expect((await parseSlirpvdeArgs(args)).sides, e.command).not.toBeNull();
      else if (cmd === 'vde_capture' && args[0]?.startsWith('--extcap')) expect(args, e.command).toEqual(['--extcap-interfaces']);
      else if (cmd === 'vde_capture') expect((await parseCaptureArgs(args)).run, e.command).not.toBeNull();
      else if (cmd === 'wirefilter') expect((await parseWfArgs(args)).mode, e.command).toBeDefined();
      else expect(['vdecmd', 'dpipe', 'qemu-system-x86_64'], e.command).toContain(cmd);
    }
  });
});

describe('errors are one line, never a stack trace', () => {
  const BAD: Array<[string, string[]]> = [
    ['vde_switch', ['-s', '/proc/vdets/sw', '--nostdin']],
    ['vde_switch', ['-p', '/nonexistent-vdets/x.pid', '--nostdin']],
    ['vde_switch', ['-n', '99999999999999999999']],
    ['vde_switch', ['--logfile', '/proc/vdets.log', '--nostdin']],
    ['vde_switch', ['-t', 'bad name']],
    ['vde_switch', ['--qemu-listen', 'unix:relative']],
    ['vde_plug', ['-p', '/nonexistent-vdets/x.pid', 'null://', 'null://']],
    ['vde_plug', ['vde:///nonexistent-vdets']],
    ['vde_plug', ['null://', 'stream://unix:/nonexistent-vdets/s[server]']],
    ['vde_plug', ['null://', 'seqpacket://99']],
    ['vde_plug', ['null://', 'vlan://3[tag=1-2]{null://}']],
    ['vde_plug', ['null://', 'cmd:///nonexistent-vdets/cmd']],
    ['vde_plug', ['null://', 'switch:///proc/vdets-node']],
    ['vde_plug', ['null://', 'crypt:///nonexistent-vdets/key{udp://1->127.0.0.1:2}']],
    ['vde_plug', ['null://', 'crypt:///dev/null{null://}']],
    ['vde_plug', ['null://', "vxlan:///peers='/nonexistent-vdets/peers'"]],
    ['vde_plug', ['null://', 'vxlan://no-such-host.invalid']],
    ['slirpvde', ['-p', '/nonexistent-vdets/x.pid', '-']],
    ['slirpvde', ['-L', 'bad', '-']],
    ['slirpvde', ['-M', '/nonexistent-vdets/dir/m', '-']],
    ['slirpvde', ['/nonexistent-vdets']],
    ['vdecmd', ['-s', '/nonexistent-vdets', 'help']],
    ['vdecmd', ['help']],
    ['vde_capture', []],
    ['vde_capture', ['/nonexistent-vdets/mgmt']],
    ['vde_capture', ['-w', '/nonexistent-vdets/x.pcapng', '/tmp/m']],
    ['vde_capture', ['-c', 'x', '/tmp/m']],
    ['dpipe', ['a']],
    ['wirefilter', ['-l', 'abc']],
    ['wirefilter', ['--blink', '/tmp/x']],
    ['wirefilter', ['-v', '/nonexistent-vdets/a:/nonexistent-vdets/b', '--nostdin']],
    ['wirefilter', []],
    ['wirefilter', ['-M', '/nonexistent-vdets/dir/m', 'null://', 'null://', '--nostdin']],
    ['wirefilter', ['-f', '/nonexistent-vdets/rc', 'null://', 'null://']],
    ['dpipe', ['-p', '/nonexistent-vdets/p', 'true', '=', 'true']],
  ];
  for (const [t, args] of BAD) {
    it(`${t} ${args.join(' ')}`, async () => {
      const r = await tool(t, args);
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.stderr).not.toMatch(/^\s+at /m);
      expect(r.stderr).not.toMatch(/node:internal|Error: .*\n.*\n.*at /);
      const lines = r.stderr.split('\n').filter((l) => l !== '' && !/^Try '|^Usage: dpipe/.test(l));
      expect(lines.length, r.stderr).toBeGreaterThanOrEqual(1);
      expect(lines.length, r.stderr).toBeLessThanOrEqual(2);
    });
  }

  it('vdecmd into a closed pipe (| head -c 0) ends quietly', async () => {
    const sw = await startSwitch();
    const r = await run('sh', ['-c', `"${process.execPath}" "${BIN('vdecmd')}" -s "${sw.mgmt}" help | head -c 0; echo "status $?"`]);
    expect(r.stderr).toBe('');
    await sw.stop();
  });
});

describe('smaller traps', () => {
  let sw: RunningSwitch;
  beforeAll(async () => {
    const rc = path.join(tmpdir(), 'rc');
    fs.writeFileSync(rc, 'port/setnumports 8\n');
    sw = await startSwitch(['-f', rc]);
  });
  afterAll(async () => {
    await sw.stop();
  });

  it('the start-up line gives the number of ports after the rc file', async () => {
    await waitFor(() => /switch running on/.test(sw.output()), 3000, 'start-up line');
    expect(sw.output()).toMatch(/switch running on .* \(8 ports\)/);
  });

  it('vdecmd on a switch control socket says so at once', async () => {
    const t0 = Date.now();
    const r = await tool('vdecmd', ['-s', path.join(sw.dir, 'ctl'), 'port/print']);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(r.code).toBe(255);
    expect(r.stderr).toMatch(/is not a management console: .*switch control socket/);
  });

  it('vde_plug with both ends on the same switch is refused', async () => {
    const r = await tool('vde_plug', [sw.dir, `vde://${sw.dir}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/both ends are the switch .*loops every broadcast/);
    expect(await sw.json<unknown[]>('json/port/print')).toEqual([]);
  });

  it('dpipe with a missing first command does not report success', async () => {
    const r = await tool('dpipe', ['no-such-command-vdets', '=', 'cat']);
    expect(r.code).toBe(127);
  });

  it('vde_plug replays a recorded stream from a regular file, and ends with status 0', async () => {
    const file = path.join(tmpdir(), 'frames.bin');
    const frames = Array.from({ length: 50 }, (_, i) => frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:55:01', 60 + i));
    fs.writeFileSync(file, Buffer.concat(frames.map((f) => Buffer.concat([Buffer.from([f.length >> 8, f.length & 0xff]), f]))));
    const c = await VdeClient.connect(sw.dir);
    const r = await tool('vde_plug', [sw.dir], { stdin: file });
    expect(r.code, r.stderr).toBe(0);
    const got: Buffer[] = [];
    for (let i = 0; i < frames.length; i++) {
      const g = await c.recv(2000);
      if (!g) break;
      got.push(g);
    }
    expect(got).toEqual(frames);
    c.close();
  });

  it('vde_plug with /dev/null on stdin, or in the background, ends with status 0', async () => {
    const r = await tool('vde_plug', [sw.dir], { stdin: '/dev/null' });
    expect(r.code, r.stderr).toBe(0);
    const d = await tool('vde_plug', ['-d', sw.dir]);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stderr).toMatch(/stdin and stdout are \/dev\/null/);
  });
});
