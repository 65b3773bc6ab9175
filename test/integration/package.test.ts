// Packaging as a user meets it. (1) The lockfile matches package.json: a fresh `npm install` in a
// clean copy of the work tree leaves `git status` clean. (2) The packed tarball installs globally
// into a prefix of its own (README's command, with npm 11's --allow-scripts approval checked by
// --strict-allow-scripts): every command runs --help (and --version once it offers it), the
// installed switch serves, the man pages land in PREFIX/share/man where man-db finds them through
// PATH, no build-only package (typescript, node-gyp) is installed, the install stays small, and
// Debian's /usr/bin/vde_switch is left untouched. Both use the npm cache (--prefer-offline).
import { execFile, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../helpers/deps.js';

const execFileP = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  bin: Record<string, string>;
  man: string[];
};
/** Debian's switch, which a global install must never replace. */
const DEBIAN_SWITCH = '/usr/bin/vde_switch';
/** Bound of one npm install (reifying node_modules, or installing and compiling the addon). */
const NPM_INSTALL_TIMEOUT_MS = 480_000; // compiles the whole addon at niceness 15 beside the other tests
/** Bound of npm pack, git and the commands' --help runs. */
const SHORT_TIMEOUT_MS = 60_000;
/** Niceness of the npm installs, so that compiling the addon yields the CPUs to tests running alongside. */
const NPM_NICENESS = '15';
/** Bound of a whole test of this file (its steps are bounded one by one as well). */
const TEST_TIMEOUT_MS = 600_000;
/** How long the installed switch may take to open its management socket. */
const START_TIMEOUT_MS = 15_000;
const POLL_INTERVAL_MS = 50;
/** The installed package must stay below this (it was 44 MB with TypeScript as a dependency). */
const INSTALL_SIZE_MAX_BYTES = 8 * 1024 * 1024;
const OUTPUT_MAX_BYTES = 32 * 1024 * 1024;

let tmp = '';
let tools: Record<string, string>;

beforeAll(async () => {
  tools = await ensureTools({ git: 'git', npm: 'npm', nice: 'coreutils', man: 'man-db', [DEBIAN_SWITCH]: 'vde2' });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vdets-pkg-'));
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** The environment without the npm_* variables of an enclosing `npm test`, so only the user's npm config applies. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'MANPATH') env[k] = v;
  return { ...env, ...extra };
}

/** Runs a program to completion within `timeoutMs`; rejects with its output on failure. */
async function sh(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<string> {
  try {
    const r = await execFileP(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? cleanEnv(),
      timeout: opts.timeoutMs ?? SHORT_TIMEOUT_MS,
      killSignal: 'SIGKILL',
      maxBuffer: OUTPUT_MAX_BYTES,
    });
    return r.stdout;
  } catch (e) {
    const x = e as { message: string; stdout?: string; stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${x.message}\n${(x.stdout ?? '').slice(-3000)}\n${(x.stderr ?? '').slice(-3000)}`);
  }
}

/** Size of a directory tree in bytes (files counted once per inode, as du does). */
function treeBytes(dir: string): number {
  const seen = new Set<string>();
  let total = 0;
  for (const d of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const st = fs.lstatSync(path.join(d.parentPath, d.name));
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) continue;
    seen.add(key);
    total += st.size;
  }
  return total;
}

/** Content hash and modification time of a file, to prove it unchanged. */
function fingerprint(file: string): string {
  const st = fs.statSync(file);
  return `${crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex')} ${st.mtimeMs} ${st.ino}`;
}

describe('package-lock.json', () => {
  it(
    'matches package.json: npm install in a clean copy of the work tree leaves git status clean',
    async () => {
      // the work tree as it is (committed or not): tracked and untracked files, not ignored ones
      const listed = (await sh(tools.git, ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT })).split('\0');
      const copy = path.join(tmp, 'clone');
      for (const f of listed.filter((f) => f && fs.existsSync(path.join(ROOT, f)))) {
        fs.mkdirSync(path.dirname(path.join(copy, f)), { recursive: true });
        fs.copyFileSync(path.join(ROOT, f), path.join(copy, f));
      }
      const git = (...args: string[]): Promise<string> =>
        sh(tools.git, ['-c', 'user.name=vde-ts test', '-c', 'user.email=test@localhost', '-c', 'commit.gpgsign=false', ...args], { cwd: copy });
      await git('init', '-q');
      await git('add', '-A');
      await git('commit', '-q', '-m', 'snapshot');
      // scripts would build the addon; the lockfile question does not need it
      await sh(tools.nice, ['-n', NPM_NICENESS, tools.npm, 'install', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], {
        cwd: copy,
        timeoutMs: NPM_INSTALL_TIMEOUT_MS,
      });
      const status = await git('status', '--porcelain');
      const diff = status ? await git('diff') : '';
      expect(`${status}${diff.slice(0, 4000)}`).toBe('');
      fs.rmSync(copy, { recursive: true, force: true });
    },
    TEST_TIMEOUT_MS,
  );
});

describe('global install of the packed tarball into a prefix of its own', () => {
  it(
    'installs every command, the man pages and no build-only package, and leaves Debian\'s vde_switch alone',
    async () => {
      const debianBefore = fingerprint(DEBIAN_SWITCH);
      // dist/ is already built by the global set-up; prepack would rebuild it under running tests
      const packOut = await sh(tools.npm, ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: ROOT });
      const tarball = path.join(tmp, (JSON.parse(packOut) as { filename: string }[])[0].filename);
      const prefix = path.join(tmp, 'prefix');
      // npm 11.19's --strict-allow-scripts preflight lstat()s PREFIX/lib before creating it
      fs.mkdirSync(path.join(prefix, 'lib', 'node_modules'), { recursive: true });
      // the approval of a tarball's install script names its absolute path (not the package name)
      await sh(
        tools.nice,
        ['-n', NPM_NICENESS, tools.npm, 'install', '-g', '--prefix', prefix, `--allow-scripts=${tarball}`, '--strict-allow-scripts', '--prefer-offline', '--no-audit', '--no-fund', tarball],
        { timeoutMs: NPM_INSTALL_TIMEOUT_MS },
      );
      const pkgDir = path.join(prefix, 'lib', 'node_modules', PKG.name);
      expect(fs.existsSync(path.join(pkgDir, 'native', 'build', 'Release', 'vde_native.node'))).toBe(true);
      for (const buildOnly of ['typescript', 'node-gyp', '@typescript']) expect(fs.existsSync(path.join(pkgDir, 'node_modules', buildOnly))).toBe(false);
      expect(treeBytes(pkgDir)).toBeLessThan(INSTALL_SIZE_MAX_BYTES);

      const env = cleanEnv({ PATH: `${path.join(prefix, 'bin')}:${process.env.PATH ?? ''}` });
      for (const command of Object.keys(PKG.bin)) {
        const exe = path.join(prefix, 'bin', command);
        expect(fs.realpathSync(exe).startsWith(`${fs.realpathSync(pkgDir)}${path.sep}`)).toBe(true);
        const help = await sh(exe, ['--help'], { env });
        expect(help).toMatch(/usage/i);
        expect(help).toContain(command);
        if (/(?<![\w-])--version\b/.test(help)) expect(await sh(exe, ['--version'], { env })).toContain(PKG.version);
      }

      // the installed switch runs (the addon loads) and the installed vdecmd talks to it
      const dir = path.join(tmp, 'sw');
      const mgmt = path.join(tmp, 'sw.mgmt');
      const sw = spawn(path.join(prefix, 'bin', 'vde_switch'), ['-s', dir, '-M', mgmt, '--nostdin'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let swOut = '';
      sw.stdout!.on('data', (d) => (swOut += d));
      sw.stderr!.on('data', (d) => (swOut += d));
      try {
        const until = Date.now() + START_TIMEOUT_MS;
        while (!fs.existsSync(mgmt)) {
          if (sw.exitCode !== null || Date.now() > until) throw new Error(`installed vde_switch did not open ${mgmt}: ${swOut}`);
          await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS));
        }
        expect(await sh(path.join(prefix, 'bin', 'vdecmd'), ['-s', mgmt, 'showinfo'], { env })).toMatch(/\S/);
      } finally {
        if (sw.exitCode === null && sw.signalCode === null) sw.kill('SIGKILL');
      }

      // man pages: linked into PREFIX/share/man, found by man-db through PATH (no MANPATH needed)
      for (const page of PKG.man) {
        const section = /\.(\d)$/.exec(page)![1];
        const installed = path.join(prefix, 'share', 'man', `man${section}`, path.basename(page));
        expect(fs.existsSync(installed)).toBe(true);
        const found = (await sh(tools.man, ['-w', section, path.basename(page, `.${section}`)], { env })).trim();
        expect(fs.realpathSync(found)).toBe(fs.realpathSync(installed));
      }

      expect(fingerprint(DEBIAN_SWITCH)).toBe(debianBefore);
      const magic = Buffer.alloc(4);
      const fd = fs.openSync(DEBIAN_SWITCH, 'r');
      fs.readSync(fd, magic, 0, 4, 0);
      fs.closeSync(fd);
      expect(magic.toString('latin1')).toBe('\x7fELF');
    },
    TEST_TIMEOUT_MS,
  );
});
