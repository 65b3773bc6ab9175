// Unit tests of the shared core: getopt_long_only-style option reading (prefixes, last wins,
// missing values), the log rate limit, the one pidfile implementation and the socket-path
// ownership rules (live sockets of any type are never taken over, non-sockets never deleted,
// only what we created is removed).
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { CliError, formatExamples, getoptLongOnly, shellWords, specsFromOptions, standardSpecs } from '../../src/core/cli.js';
import { flushLog, log, LOG_BURST_LINES, LOG_WINDOW_MS, messageShape, setLogSink } from '../../src/core/log.js';
import { PidFile } from '../../src/core/pidfile.js';
import { claimSocketPath, listenUnix, OwnedPath, probeSocketPath } from '../../src/core/sockpath.js';
import { native } from '../../src/native/index.js';

const OPTS = {
  sock: { alias: ['s', 'vdesock', 'unix'], type: 'string' },
  numports: { alias: 'n', type: 'string' },
  hub: { alias: 'x', type: 'boolean' },
  mode: { alias: 'm', type: 'string' },
  mgmt: { alias: 'M', type: 'string' },
  mgmtmode: { type: 'string' },
  mgmtgroup: { type: 'string' },
  daemon: { alias: 'd', type: 'boolean' },
  pidfile: { alias: 'p', type: 'string' },
  tap: { alias: 't', type: 'string', array: true },
} as const;
const SPECS = specsFromOptions(OPTS, standardSpecs('v'));
const g = (argv: string[]): string[] => getoptLongOnly(argv, SPECS);

describe('getoptLongOnly', () => {
  it('reads single-dash long options and unambiguous prefixes, as getopt_long_only', () => {
    expect(g(['-sock', '/x', '-hub', '-numports=4'])).toEqual(['--sock=/x', '--hub', '--numports=4']);
    expect(g(['-mod', '0660'])).toEqual(['--mode=0660']);
    expect(g(['--num', '6', '-vdes', '/y'])).toEqual(['--numports=6', '--sock=/y']);
    expect(g(['-mgmt', 'a', '-mgmtm', '0640'])).toEqual(['--mgmt=a', '--mgmtmode=0640']);
  });
  it('keeps short options and clusters, with attached or separate values', () => {
    expect(g(['-s', '/x', '-xd', '-n6', '-M/m'])).toEqual(['--sock=/x', '--hub', '--daemon', '--numports=6', '--mgmt=/m']);
    expect(g(['-dp', 'pid'])).toEqual(['--daemon', '--pidfile=pid']);
  });
  it('lets the last occurrence win, except for repeatable options', () => {
    expect(g(['-s', 'x1', '-s', 'x2'])).toEqual(['--sock=x2']);
    expect(g(['--sock=a', '-sock', 'b', '--vdesock', 'c'])).toEqual(['--sock=c']);
    expect(g(['-t', 'a', '--tap', 'b', '-tap=c'])).toEqual(['--tap=a', '--tap=b', '--tap=c']);
  });
  it('refuses a missing value, a value for a flag and an ambiguous prefix', () => {
    for (const argv of [['-M'], ['-p'], ['-s'], ['--mgmt'], ['-x', '-sock'], ['-dp']]) expect(() => g(argv), argv.join(' ')).toThrow(CliError);
    expect(() => g(['-M'])).toThrow(/option "-M" needs a value/);
    expect(() => g(['--mgmt'])).toThrow(/option "--mgmt" needs a value/);
    expect(() => g(['--hub=yes'])).toThrow(/takes no value/);
    expect(() => g(['-mgm', 'x'])).toThrow(/"-mgm" is ambiguous \(--mgmt, --mgmtmode, --mgmtgroup\)/);
  });
  it('takes the next argument as the value even if it starts with a dash (getopt)', () => {
    expect(g(['-M', '-d'])).toEqual(['--mgmt=-d']);
  });
  it('passes unknown options and positionals through, and everything after --', () => {
    expect(g(['--bogus', 'pos', '-q', '--', '-sock'])).toEqual(['--bogus', 'pos', '-q', '--', '-sock']);
    expect(getoptLongOnly(['-s', 'x', 'port/print', '-n', '3'], SPECS, { stopAtPositional: true })).toEqual(['--sock=x', 'port/print', '-n', '3']);
  });
});

describe('help examples', () => {
  it('puts every command on a line of its own', () => {
    const t = formatExamples([{ command: "vde_plug /tmp/sw 'udp://5000->127.0.0.1:5001'", what: 'a tunnel' }]);
    expect(t.split('\n')).toEqual(['Examples:', "  vde_plug /tmp/sw 'udp://5000->127.0.0.1:5001'", '      a tunnel']);
  });
  it('splits command lines as a shell does', () => {
    expect(shellWords(`vde_plug /tmp/sw 'udp://5000->h:1' "a b" c\\ d`)).toEqual(['vde_plug', '/tmp/sw', 'udp://5000->h:1', 'a b', 'c d']);
    expect(shellWords("unbalanced 'quote")).toBeNull();
  });
});

describe('log rate limit', () => {
  const lines: string[] = [];
  afterEach(() => {
    flushLog();
    setLogSink(null);
    vi.useRealTimers();
    lines.length = 0;
  });

  it('passes a burst of similar lines, then summarises the rest when the window ends', () => {
    vi.useFakeTimers();
    setLogSink((l) => lines.push(l));
    for (let i = 0; i < 1000; i++) log('warning', `control: refused a client: bad magic 0x${(0x1000 + i).toString(16)}`);
    expect(lines).toHaveLength(LOG_BURST_LINES);
    vi.advanceTimersByTime(LOG_WINDOW_MS);
    expect(lines).toHaveLength(LOG_BURST_LINES + 1);
    expect(lines[LOG_BURST_LINES]).toMatch(/^warning: \.\.\. 995 similar messages suppressed \(last: control: refused a client: bad magic 0x13e7\)$/);
    // a new window passes lines again
    log('warning', 'control: refused a client: bad magic 0x1');
    expect(lines).toHaveLength(LOG_BURST_LINES + 2);
  });

  it('keeps different messages apart and honours explicit keys', () => {
    setLogSink((l) => lines.push(l));
    for (let i = 0; i < 20; i++) log('info', `port ${i}: new endpoint`);
    for (let i = 0; i < 20; i++) log('info', `switch running on /tmp/${i}`);
    expect(lines).toHaveLength(2 * LOG_BURST_LINES);
    for (let i = 0; i < 20; i++) log('info', `completely different text ${'x'.repeat(i)}`, 'one-key');
    expect(lines).toHaveLength(3 * LOG_BURST_LINES);
    flushLog();
    expect(lines.filter((l) => /similar messages suppressed/.test(l))).toHaveLength(3);
  });

  it('gives variants of one message the same shape', () => {
    expect(messageShape('refused "a" port 3 mac 02:00:00:00:00:01 0xfeed')).toBe(messageShape('refused "bb" port 44 mac 02:00:00:00:00:99 0x1'));
  });
});

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vdets-core-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('PidFile', () => {
  it('writes the pid, refuses a live one or a file without a pid, replaces a stale one', () => {
    const f = path.join(tmp, 'a.pid');
    const p = PidFile.create(f);
    expect(fs.readFileSync(f, 'utf8')).toBe(`${process.pid}\n`);
    expect(() => PidFile.create(f)).toThrow(/exists and process \d+ is running/);
    p.remove();
    expect(fs.existsSync(f)).toBe(false);
    fs.writeFileSync(f, 'hello\n');
    expect(() => PidFile.create(f)).toThrow(/exists and does not hold a process id/);
    expect(fs.readFileSync(f, 'utf8')).toBe('hello\n');
    fs.writeFileSync(f, '999999999\n');
    PidFile.create(f).remove();
    expect(fs.existsSync(f)).toBe(false);
  });
  it('removes only the file it wrote', () => {
    const f = path.join(tmp, 'b.pid');
    const p = PidFile.create(f);
    fs.rmSync(f);
    fs.writeFileSync(f, 'someone else\n');
    p.remove();
    expect(fs.readFileSync(f, 'utf8')).toBe('someone else\n');
  });
  it('names the path and the reason in one line', () => {
    expect(() => PidFile.create(path.join(tmp, 'no', 'such', 'x.pid'))).toThrow(/^pidfile .*x\.pid: the directory .* does not exist$/);
    expect(() => PidFile.create(tmp)).toThrow(/^pidfile .* exists and is not a regular file$/);
  });
});

describe('socket paths', () => {
  it('tells live sockets of every type from stale ones and from non-sockets', async () => {
    const a = native();
    const live = path.join(tmp, 'live.sock');
    const srv = net.createServer();
    await listenUnix(srv, live, 0o600);
    expect(fs.statSync(live).mode & 0o777).toBe(0o600);
    expect(await probeSocketPath(live)).toBe('live');
    const dg = path.join(tmp, 'live.dgram');
    const fd = a.unixDgramSocket();
    a.unixBind(fd, dg);
    expect(await probeSocketPath(dg)).toBe('live');
    const stale = path.join(tmp, 'stale.dgram');
    const fd2 = a.unixDgramSocket();
    a.unixBind(fd2, stale);
    a.closeFd(fd2);
    expect(await probeSocketPath(stale)).toBe('stale');
    fs.writeFileSync(path.join(tmp, 'file'), 'x');
    expect(await probeSocketPath(path.join(tmp, 'file'))).toBe('notsocket');
    expect(await probeSocketPath(path.join(tmp, 'absent'))).toBe('absent');

    await expect(claimSocketPath(live, 'test socket')).rejects.toThrow(/test socket .*live\.sock is in use by another process/);
    await expect(claimSocketPath(dg, 'test socket')).rejects.toThrow(/in use by another process/);
    await expect(claimSocketPath(path.join(tmp, 'file'), 'test socket')).rejects.toThrow(/exists and is not a socket; not removing it/);
    await expect(claimSocketPath(path.join(tmp, 'nodir', 'x'), 'test socket')).rejects.toThrow(/the directory .*nodir does not exist/);
    await claimSocketPath(stale, 'test socket');
    expect(fs.existsSync(stale)).toBe(false);
    expect(fs.existsSync(live) && fs.existsSync(dg) && fs.existsSync(path.join(tmp, 'file'))).toBe(true);
    srv.close();
    a.closeFd(fd);
  });

  it('releases only the file it recorded', () => {
    const p = path.join(tmp, 'owned');
    fs.writeFileSync(p, '1');
    const o = OwnedPath.record(p);
    fs.rmSync(p);
    fs.writeFileSync(p, '2');
    o.release();
    expect(fs.readFileSync(p, 'utf8')).toBe('2');
    const o2 = OwnedPath.record(p);
    o2.release();
    expect(fs.existsSync(p)).toBe(false);
  });
});
