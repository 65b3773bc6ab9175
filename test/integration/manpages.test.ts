// The manual pages under man/ stay correct and in step with the commands: each page is linted
// by groff (-ww) and mandoc (-Tlint -Wall) with no warning at all, renders without characters
// that break copy and paste (typographic hyphens and quotes), carries the package version, and
// mentions every long option the command's --help prints, every locator scheme vde_plug --help
// lists and every console command of vde_switch and slirpvde (asked of running processes).
// package.json's "man" field must list exactly the files of man/, one section-1 page per command.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../helpers/deps.js';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  bin: Record<string, string>;
  man: string[];
};
/** Upper bound for one lint, render or --help run. */
const TOOL_TIMEOUT_MS = 20_000;
/** How long a switch or slirpvde may take to open its management socket. */
const START_TIMEOUT_MS = 15_000;
const POLL_INTERVAL_MS = 50;
/** Characters that look like ASCII in a terminal but do not paste as such into a shell. */
const UNPASTABLE = /[\u2010\u2011\u2012\u2013\u2018\u2019\u201c\u201d\u2212]/u;

let tools: Record<string, string>;
const started: ChildProcess[] = [];
let tmp = '';

beforeAll(async () => {
  tools = await ensureTools({ groff: 'groff-base', mandoc: 'mandoc' });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vdets-man-'));
});

afterAll(() => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** The roff source of a page with escapes reduced to the characters they print. */
function plainSource(page: string): string {
  return fs
    .readFileSync(path.join(ROOT, page), 'utf8')
    .replace(/\\f(\[[^\]]*\]|\(..|.)/g, '')
    .replace(/\\\(aq/g, "'")
    .replace(/\\\(dq/g, '"')
    .replace(/\\[-]/g, '-')
    .replace(/\\[&c%]/g, '')
    .replace(/\\e/g, '\\');
}

/** Whether `word` occurs in `text` not glued to a longer option or command name. */
function mentions(text: string, word: string): boolean {
  const esc = word.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  return new RegExp(`(?<![\\w/-])${esc}(?![\\w/-])`).test(text);
}

/** The long options (--name) a --help text prints. */
function longOptions(help: string): string[] {
  return [...new Set([...help.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)].map((m) => `--${m[1]}`))];
}

/** Runs a command of the checkout's bin/ and returns its standard output. */
async function bin(command: string, args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [path.join(ROOT, 'bin', command), ...args], { timeout: TOOL_TIMEOUT_MS });
  return stdout;
}

/** Waits until `file` exists, failing with `what` and the process output after the bound. */
async function waitForFile(file: string, proc: ChildProcess, out: () => string, what: string): Promise<void> {
  const until = Date.now() + START_TIMEOUT_MS;
  while (!fs.existsSync(file)) {
    if (proc.exitCode !== null || Date.now() > until) throw new Error(`${what} did not open ${file}: ${out()}`);
    await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS));
  }
}

/** Starts a checkout command in the background, keeping its output for error messages. */
function startBackground(command: string, args: string[]): { proc: ChildProcess; out: () => string } {
  const proc = spawn(process.execPath, [path.join(ROOT, 'bin', command), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  started.push(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  return { proc, out: () => out };
}

/** The command names in the first column of a console's `help` data block. */
function consoleCommands(help: string): string[] {
  return help
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((w) => w[0] && /^[a-z]/.test(w[0]) && !w.includes('============') && w[0] !== 'COMMAND')
    .map((w) => w[0]);
}

describe('package.json and man/', () => {
  it('lists exactly the pages of man/, with a section-1 page for every command', () => {
    const files = fs.readdirSync(path.join(ROOT, 'man')).map((f) => `man/${f}`).sort();
    expect([...PKG.man].sort()).toEqual(files);
    for (const command of Object.keys(PKG.bin)) expect(PKG.man).toContain(`man/${command}.1`);
  });
});

describe.each(PKG.man)('%s', (page) => {
  it('passes groff -ww and mandoc -Tlint -Wall without a warning', async () => {
    const g = await run(tools.groff, ['-man', '-Tutf8', '-ww', '-z', path.join(ROOT, page)], { timeout: TOOL_TIMEOUT_MS });
    expect(g.stderr).toBe('');
    // mandoc exits non-zero and prints the message on any warning
    const m = await run(tools.mandoc, ['-Tlint', '-Wall', path.join(ROOT, page)], { timeout: TOOL_TIMEOUT_MS }).catch((e) => e);
    expect(`${m.stdout ?? ''}${m.stderr ?? ''}`).toBe('');
  });

  it('renders only characters that paste into a shell, and names the package version', async () => {
    const { stdout } = await run(tools.groff, ['-man', '-Tutf8', '-P-c', path.join(ROOT, page)], { timeout: TOOL_TIMEOUT_MS });
    const bad = stdout.split('\n').filter((l) => UNPASTABLE.test(l));
    expect(bad).toEqual([]);
    const th = fs.readFileSync(path.join(ROOT, page), 'utf8').split('\n').find((l) => l.startsWith('.TH '));
    expect(th).toContain(`"vde-ts ${PKG.version}"`);
  });
});

describe.each(Object.keys(PKG.bin))('%s --help against its page', (command) => {
  it('every long option of --help is in the page', async () => {
    const help = await bin(command, ['--help']);
    const text = plainSource(`man/${command}.1`);
    const options = longOptions(help);
    expect(options.length).toBeGreaterThan(0);
    expect(options.filter((o) => !mentions(text, o))).toEqual([]);
  });
});

describe('locators and console commands', () => {
  it('every locator scheme vde_plug --help lists is in vde_plug.1', async () => {
    const help = await bin('vde_plug', ['--help']);
    const schemes = [...new Set([...help.matchAll(/(?<![\w])([a-z][a-z0-9]*):\/\//g)].map((m) => `${m[1]}://`))];
    expect(schemes.length).toBeGreaterThan(5);
    const text = plainSource('man/vde_plug.1');
    expect(schemes.filter((s) => !text.includes(s))).toEqual([]);
  });

  it('every console command of a running vde_switch is in vde_switch.1', async () => {
    const dir = path.join(tmp, 'sw');
    const mgmt = path.join(tmp, 'sw.mgmt');
    const sw = startBackground('vde_switch', ['-s', dir, '-M', mgmt, '--nostdin']);
    await waitForFile(mgmt, sw.proc, sw.out, 'vde_switch');
    const commands = consoleCommands(await bin('vdecmd', ['-s', mgmt, 'help']));
    sw.proc.kill('SIGTERM');
    expect(commands).toContain('port/print');
    const text = plainSource('man/vde_switch.1');
    expect(commands.filter((c) => !mentions(text, c))).toEqual([]);
  });

  it('every console command of a running wirefilter and vde_plug --mgmt is in its page', async () => {
    for (const [command, args, page] of [
      ['wirefilter', ['--nostdin', 'null://', 'null://'], 'man/wirefilter.1'],
      ['vde_plug', ['null://', 'null://'], 'man/vde_plug.1'],
    ] as const) {
      const mgmt = path.join(tmp, `${command}.mgmt`);
      const p = startBackground(command, [command === 'wirefilter' ? '-M' : '--mgmt', mgmt, ...args]);
      await waitForFile(mgmt, p.proc, p.out, command);
      const help = await bin('vdecmd', ['-s', mgmt, 'help']);
      p.proc.kill('SIGTERM');
      // wirefilter's help is vde2's: "COMMAND  HELP" lines with the command first
      const commands = command === 'wirefilter'
        ? help.split('\n').map((l) => l.split(/\s+/)[0]).filter((c) => /^[a-z][a-z/-]+$/.test(c) && c !== 'COMMAND')
        : consoleCommands(help);
      expect(commands.length).toBeGreaterThan(3);
      const text = plainSource(page);
      expect(commands.filter((c) => !mentions(text, c))).toEqual([]);
    }
  });

  it('every console command of a running slirpvde is in slirpvde.1', async () => {
    const mgmt = path.join(tmp, 'nat.mgmt');
    const nat = startBackground('slirpvde', ['-q', '-M', mgmt, '-']);
    await waitForFile(mgmt, nat.proc, nat.out, 'slirpvde');
    const commands = consoleCommands(await bin('vdecmd', ['-s', mgmt, 'help']));
    nat.proc.kill('SIGTERM');
    expect(commands).toContain('fwd/add');
    const text = plainSource('man/slirpvde.1');
    expect(commands.filter((c) => !mentions(text, c))).toEqual([]);
  });
});
