// The sanitizer run of `npm test`: builds the addon with AddressSanitizer + UndefinedBehavior-
// Sanitizer (native/sanitize/binding.gyp: the same target and sources as the addon, into
// native/sanitize/build), then runs every test that drives the addon, the integration and
// interop tests (vitest.sanitize.config.ts), with that build loaded in every test worker and every
// process they start, and fails, printing each report, if ASan or UBSan reported anything.
//
// Node is not built with ASan, and the ASan runtime must be the first library of a process that
// loads instrumented code. LD_PRELOAD would put it into every process of the run, and Debian's
// libvdeplug (vde_plug, wirefilter) dies under it (it dlopens its plugins with RTLD_DEEPBIND),
// so instead the run uses a copy of node with libasan added in front of its DT_NEEDED list
// (patchelf): the "ASan node", named `node` and first on PATH, so the test
// workers (fork), the processes the tests start with process.execPath, and our bin/ scripts
// (#!/usr/bin/env node) all get it, and nothing else does. VDE_NATIVE_ADDON makes src/native/index.ts
// load the sanitized build. Undefined behaviour traps (-fsanitize-undefined-trap-on-error, see
// native/vde_native.gypi) and ASan reports the trap as an "ILL" with the offending line on top of
// its stack. Reports go to files in a fresh log directory (log_path, with the executable's name),
// which must stay empty (a canary module proves first that reports do arrive there); the test
// output is also scanned for reports written to stderr. LeakSanitizer is off: Node leaks by design at exit, and most of our processes end by
// signal, where no leak check runs. Arguments are vitest filters (`node scripts/test-sanitized.mjs
// test/interop/vxlan` runs one file under the sanitizers).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const sanitizeDir = path.join(root, 'native', 'sanitize');
const addon = path.join(sanitizeDir, 'build', 'Release', 'vde_native.node');
const nodedir = path.dirname(path.dirname(process.execPath));
/** Bytes of each report printed on failure (the rest stays in the log directory). */
const MAX_REPORT_PRINT_BYTES = 64 * 1024;
/** Lines of test output that mark a sanitizer report written to stderr instead of the log directory. */
const REPORT_MARKERS = [/ERROR: AddressSanitizer/, /runtime error:/, /ERROR: LeakSanitizer/, /SUMMARY: UndefinedBehaviorSanitizer/];
/** What an ASan "ILL" report means in this build. */
const TRAP_NOTE = 'an "AddressSanitizer: ILL" report is an UndefinedBehaviorSanitizer check that trapped (-fsanitize-undefined-trap-on-error): the top frame is the offending line';

/** Prints a message prefixed with the script's name and exits with status 1. */
function fail(msg) {
  console.error(`test-sanitized: ${msg}`);
  process.exit(1);
}

/** Runs a command with inherited output; exits with a message when it fails. */
function run(cmd, args, cwd, env = process.env) {
  const r = spawnSync(cmd, args, { cwd, stdio: 'inherit', env });
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
}

/** Makes sure a program is on PATH, installing its Debian package with apt-get as root; exits naming the package otherwise. */
function ensureTool(bin, pkg) {
  const have = () => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
  if (!have() && process.geteuid?.() === 0 && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0) {
    console.error(`test-sanitized: ${bin} is missing; installing the Debian package ${pkg}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const args = ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', '--no-install-recommends', pkg];
    if (spawnSync('apt-get', args, { stdio: 'inherit', env }).status !== 0) {
      spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
      spawnSync('apt-get', args, { stdio: 'inherit', env });
    }
  }
  if (!have()) fail(`${bin} is missing: apt-get install -y ${pkg}`);
}

/** Path of a GCC runtime library (libasan.so), installing g++ as root when missing; exits naming the package otherwise. */
function gccRuntime(name) {
  const find = () => {
    const r = spawnSync('gcc', [`-print-file-name=${name}`], { encoding: 'utf8' });
    const p = r.status === 0 ? r.stdout.trim() : '';
    return p && path.isAbsolute(p) && fs.existsSync(p) ? fs.realpathSync(p) : null;
  };
  let found = find();
  if (!found && process.geteuid?.() === 0 && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0) {
    console.error(`test-sanitized: ${name} is missing; installing the Debian package g++ (its libgcc-*-dev holds ${name})`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', '--no-install-recommends', 'g++'], { stdio: 'inherit', env });
    found = find();
  }
  if (!found) fail(`${name} not found (gcc -print-file-name=${name}): apt-get install -y g++ (Debian package libgcc-12-dev holds it)`);
  return found;
}

/** Builds the sanitized addon (configure every time so new sources are picked up; make rebuilds only what changed). */
function buildSanitized() {
  const gyp = require.resolve('node-gyp/bin/node-gyp.js');
  const t0 = Date.now();
  run(process.execPath, [gyp, 'configure', `--nodedir=${nodedir}`, '--loglevel=warn'], sanitizeDir);
  run(process.execPath, [gyp, 'build', '--jobs=2', '--loglevel=warn'], sanitizeDir);
  if (!fs.existsSync(addon)) fail(`the build did not produce ${addon}`);
  console.log(`test-sanitized: sanitized addon built in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${addon}`);
}

/** Checks that the built file really is instrumented: it needs the ASan runtime, calls __asan_init and has UBSan's traps. */
function checkInstrumented() {
  const needed = spawnSync('readelf', ['-d', addon], { encoding: 'utf8' });
  const syms = spawnSync('nm', ['-D', '--undefined-only', addon], { encoding: 'utf8' });
  const code = spawnSync('objdump', ['-d', '--no-show-raw-insn', addon], { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (needed.status !== 0 || syms.status !== 0 || code.status !== 0) fail(`readelf/nm/objdump failed on ${addon} (Debian package binutils)`);
  if (!needed.stdout.includes('libasan.so')) fail(`${addon} does not link libasan.so: it is not a sanitizer build`);
  if (!/\b__asan_init\b/.test(syms.stdout)) fail(`${addon} does not call __asan_init: it is not instrumented`);
  if (!/\bud2\b/.test(code.stdout)) fail(`${addon} has no UBSan traps (ud2): built without -fsanitize=undefined?`);
}

/**
 * Makes the ASan node (see the top of this file) in native/sanitize/build/asan-node/node from the
 * running node and the ASan runtime the addon links (its soname, from the addon's DT_NEEDED), and
 * returns its directory.
 */
function asanNode() {
  const needed = spawnSync('readelf', ['-d', addon], { encoding: 'utf8' }).stdout;
  const soname = (re) => needed.match(re)?.[1] ?? fail(`${addon}: no ${re} in its DT_NEEDED`);
  const runtime = soname(/\[(libasan\.so[.\d]*)\]/);
  const dir = path.join(sanitizeDir, 'build', 'asan-node');
  const bin = path.join(dir, 'node');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(process.execPath, bin);
  run('patchelf', ['--add-needed', runtime, bin], root);
  const first = spawnSync('readelf', ['-d', bin], { encoding: 'utf8' }).stdout.match(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/)?.[1];
  if (first !== runtime) fail(`patchelf did not put ${runtime} first in ${bin} (first: ${first})`);
  return dir;
}

/**
 * Proves that reports reach the log directory: loads native/sanitize/canary.c (built with the
 * sanitizer flags) through VDE_NATIVE_ADDON in a child of the ASan node, once per kind of error,
 * and expects a report of that kind; then empties the directory.
 */
function checkCanary(env, logDir) {
  const src = path.join(sanitizeDir, 'canary.c');
  const lib = path.join(sanitizeDir, 'build', 'canary.node');
  run('gcc', ['-shared', '-fPIC', '-g', '-O1', '-fsanitize=address,undefined', '-fsanitize-undefined-trap-on-error',
    '-I', path.join(nodedir, 'include', 'node'), src, '-o', lib], root);
  const loader = pathToFileURL(path.join(root, 'dist', 'native', 'index.js')).href;
  for (const [fn, want] of [['useAfterFree', /ERROR: AddressSanitizer: heap-use-after-free/], ['signedOverflow', /ERROR: AddressSanitizer: ILL/]]) {
    spawnSync(path.join(env.PATH.split(':')[0], 'node'), ['-e', `import(${JSON.stringify(loader)}).then((m) => m.native().${fn}())`],
      { env: { ...env, VDE_NATIVE_ADDON: lib }, stdio: 'ignore' });
    const texts = reports(logDir).map(([, t]) => t);
    if (!texts.some((t) => want.test(t))) fail(`the canary's ${fn}() left no ${want} report in ${logDir}: reports would be missed`);
    for (const f of fs.readdirSync(logDir)) fs.rmSync(path.join(logDir, f));
  }
}

/** Report files in the log directory, each as [name, text]. */
function reports(logDir) {
  return fs.readdirSync(logDir).map((f) => [f, fs.readFileSync(path.join(logDir, f), 'utf8')]);
}

gccRuntime('libasan.so');
ensureTool('patchelf', 'patchelf');
buildSanitized();
checkInstrumented();
const nodeDir = asanNode();

const logDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vdets-sanitizer-'));
const env = {
  ...process.env,
  VDE_NATIVE_ADDON: addon,
  // the instrumented addon runs several times slower: tests that measure rates and gaps check
  // only what does not depend on speed here (the normal run checks the rest)
  VDE_SANITIZED: '1',
  PATH: `${nodeDir}:${process.env.PATH ?? '/usr/bin:/bin'}`,
  ASAN_OPTIONS: `detect_leaks=0:log_path=${logDir}/asan:log_exe_name=1:handle_sigill=1:handle_abort=1:strict_string_checks=1:check_initialization_order=1`,
};
checkCanary(env, logDir);
const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
const t0 = Date.now();
const child = spawn(path.join(nodeDir, 'node'), [vitest, 'run', '--config', 'vitest.sanitize.config.ts', ...process.argv.slice(2)], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
const marked = [];
for (const [stream, out] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
  let partial = '';
  stream.on('data', (d) => {
    out.write(d);
    const lines = (partial + d).split('\n');
    partial = lines.pop();
    for (const l of lines) if (REPORT_MARKERS.some((m) => m.test(l))) marked.push(l);
  });
}
const status = await new Promise((resolve) => child.on('close', (code, sig) => resolve(code ?? sig)));
const seconds = ((Date.now() - t0) / 1000).toFixed(0);
const found = reports(logDir);
for (const [name, text] of found) {
  console.error(`\n===== sanitizer report ${path.join(logDir, name)} =====`);
  console.error(text.length > MAX_REPORT_PRINT_BYTES ? `${text.slice(0, MAX_REPORT_PRINT_BYTES)}\n[... cut, see the file]` : text);
}
for (const l of marked) console.error(`test-sanitized: report in the test output: ${l}`);
if (found.some(([, text]) => /AddressSanitizer: ILL/.test(text))) console.error(`test-sanitized: ${TRAP_NOTE}`);
if (found.length || marked.length) fail(`${found.length} report file(s) in ${logDir} and ${marked.length} report line(s) in the test output after ${seconds} s`);
if (status !== 0) fail(`the tests failed under the sanitizers (vitest exit ${status}) after ${seconds} s; no sanitizer report`);
fs.rmSync(logDir, { recursive: true, force: true });
console.log(`test-sanitized: the integration and interop tests passed against the ASan/UBSan addon, no sanitizer report (${seconds} s)`);
