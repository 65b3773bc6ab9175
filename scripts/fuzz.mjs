// Fuzzing of the addon's parsers of untrusted bytes, the last part of `npm test`. Every .cc file
// in native/fuzz is one libFuzzer target: it is built with clang++ -fsanitize=fuzzer,address,
// undefined into native/fuzz/build and run for FUZZ_SECONDS_PER_TARGET from its committed seed
// corpus (native/fuzz/corpus/TARGET, read only; what the run finds goes to a work corpus under
// native/fuzz/build). Any crash, sanitizer report, broken invariant, leak, slow input or memory
// blow-up fails the run, printing the reproducer (path, hex dump, the command that replays it).
//
// A target's leading comment may hold directives, paths relative to native/fuzz:
//   // fuzz-sources: ../src/offload.cc     more files to compile with it
//   // fuzz-args: -max_len=65610           more libFuzzer options
//   // fuzz-requires: ../src/classify.h    not built until that file exists (reported, see README)
//   // fuzz-libs: -lcrypto                 libraries to link (system libraries the code under test uses)
// and native/fuzz/TARGET.dict, when present, is passed as its dictionary.
//
// clang and its libFuzzer runtime come from Debian's clang and libclang-rt-dev packages: as root
// the script installs them when missing; otherwise it stops naming them. Nothing is skipped.
// Usage: node scripts/fuzz.mjs [--seconds N] [TARGET...]
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const fuzzDir = path.join(root, 'native', 'fuzz');
const buildDir = path.join(fuzzDir, 'build');
/** Fuzzing time of each target in `npm test` (seconds; --seconds overrides). */
const FUZZ_SECONDS_PER_TARGET = 30;
/** Memory limit of a fuzzing process; more is reported as a failure (libFuzzer -rss_limit_mb). */
const FUZZ_RSS_LIMIT_MB = 2048;
/** One input running longer than this is reported as a failure (libFuzzer -timeout, seconds). */
const FUZZ_INPUT_TIMEOUT_SECONDS = 10;
/** Bytes of a crashing input shown as a hex dump. */
const REPRO_DUMP_BYTES = 512;
/** Lines of a failed target's output printed. */
const FAILURE_TAIL_LINES = 80;
/** Debian packages holding clang++ and the libFuzzer/ASan/UBSan runtimes. */
const CLANG_PACKAGES = ['clang', 'libclang-rt-dev'];
const COMPILE_FLAGS = ['-std=c++17', '-g', '-O1', '-fno-omit-frame-pointer', '-fsanitize=fuzzer,address,undefined',
  '-fno-sanitize-recover=undefined', '-Wall', '-Wextra', '-Wno-unused-parameter'];

/** Prints a message prefixed with the script's name and exits with status 1. */
function fail(msg) {
  console.error(`fuzz: ${msg}`);
  process.exit(1);
}

/** Parses the command line: --seconds N and target names. */
function parseArgs(argv) {
  const o = { seconds: FUZZ_SECONDS_PER_TARGET, targets: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--seconds') {
      o.seconds = Number(argv[++i]);
      if (!Number.isInteger(o.seconds) || o.seconds < 1) fail(`--seconds: "${argv[i]}" is not a whole number of seconds`);
    } else if (argv[i].startsWith('-')) {
      fail(`unknown option ${argv[i]} (usage: node scripts/fuzz.mjs [--seconds N] [TARGET...])`);
    } else {
      o.targets.push(argv[i]);
    }
  }
  return o;
}

/** True when a trivial libFuzzer program builds with this compiler (so the runtimes are there). */
function compilerWorks(cxx) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vdets-fuzz-probe-'));
  try {
    const src = path.join(dir, 'p.cc');
    fs.writeFileSync(src, '#include <cstdint>\n#include <cstddef>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t *, size_t) { return 0; }\n');
    return spawnSync(cxx, [...COMPILE_FLAGS, src, '-o', path.join(dir, 'p')], { stdio: 'ignore' }).status === 0;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Finds a clang++ that builds libFuzzer targets, installing Debian's packages as root when none does. */
function findClang() {
  const candidates = ['clang++', ...Array.from({ length: 8 }, (_, i) => `clang++-${21 - i}`)];
  const pick = () => candidates.find((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status === 0 && compilerWorks(c));
  let cxx = pick();
  if (!cxx && process.geteuid?.() === 0 && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0) {
    console.error(`fuzz: no clang++ with libFuzzer; installing the Debian packages ${CLANG_PACKAGES.join(' ')}`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const args = ['-o', 'DPkg::Lock::Timeout=600', 'install', '-y', '--no-install-recommends', ...CLANG_PACKAGES];
    if (spawnSync('apt-get', args, { stdio: 'inherit', env }).status !== 0) {
      spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
      spawnSync('apt-get', args, { stdio: 'inherit', env });
    }
    cxx = pick();
  }
  if (!cxx) fail(`no clang++ that builds -fsanitize=fuzzer programs: apt-get install -y ${CLANG_PACKAGES.join(' ')}`);
  return cxx;
}

/** A target's directives (see the top of this file) from its leading comment. */
function directives(file) {
  const d = { sources: [], args: [], requires: [], libs: [] };
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('//')) break;
    const m = line.match(/^\/\/\s*fuzz-(sources|args|requires|libs):\s*(.*)$/);
    if (m) d[m[1]].push(...m[2].trim().split(/\s+/).filter(Boolean));
  }
  return d;
}

/** Hex dump of the first REPRO_DUMP_BYTES bytes of a file. */
function hexDump(file) {
  const b = fs.readFileSync(file);
  const lines = [];
  for (let o = 0; o < Math.min(b.length, REPRO_DUMP_BYTES); o += 16) {
    const row = b.subarray(o, Math.min(o + 16, b.length));
    lines.push(`  ${o.toString(16).padStart(6, '0')}  ${[...row].map((x) => x.toString(16).padStart(2, '0')).join(' ')}`);
  }
  if (b.length > REPRO_DUMP_BYTES) lines.push(`  ... ${b.length} bytes in all`);
  return lines.join('\n');
}

/** Builds one target; returns the binary's path. */
function build(cxx, name, d) {
  const out = path.join(buildDir, name);
  const srcs = [path.join(fuzzDir, `${name}.cc`), ...d.sources.map((s) => path.resolve(fuzzDir, s))];
  const r = spawnSync(cxx, [...COMPILE_FLAGS, '-I', path.join(root, 'native', 'src'), ...srcs, '-o', out, ...d.libs], { stdio: 'inherit' });
  if (r.status !== 0) fail(`${name}: ${cxx} failed (exit ${r.status ?? r.signal})`);
  return out;
}

/** Runs one target for the given time; resolves with { ok, output, stats }. */
function runTarget(bin, name, d, seconds) {
  const seeds = path.join(fuzzDir, 'corpus', name);
  if (!fs.existsSync(seeds) || fs.readdirSync(seeds).length === 0) fail(`${name}: no seed corpus in ${seeds} (commit a few real inputs there)`);
  const work = path.join(buildDir, 'corpus', name);
  const artifacts = path.join(buildDir, 'artifacts', name);
  fs.mkdirSync(work, { recursive: true });
  fs.mkdirSync(artifacts, { recursive: true });
  const dict = path.join(fuzzDir, `${name}.dict`);
  const args = [`-max_total_time=${seconds}`, `-rss_limit_mb=${FUZZ_RSS_LIMIT_MB}`, `-timeout=${FUZZ_INPUT_TIMEOUT_SECONDS}`,
    '-print_final_stats=1', `-artifact_prefix=${artifacts}/`, ...(fs.existsSync(dict) ? [`-dict=${dict}`] : []), ...d.args, work, seeds];
  const env = { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:strict_string_checks=1', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' };
  return new Promise((resolve) => {
    const p = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (x) => (output += x));
    p.stderr.on('data', (x) => (output += x));
    p.on('close', (code, sig) => resolve({ ok: code === 0, status: code ?? sig, output }));
  });
}

const opts = parseArgs(process.argv.slice(2));
const all = fs.readdirSync(fuzzDir).filter((f) => f.endsWith('.cc')).map((f) => f.slice(0, -3)).sort();
const unknown = opts.targets.filter((t) => !all.includes(t));
if (unknown.length) fail(`unknown target(s) ${unknown.join(', ')} (known: ${all.join(', ')})`);
const chosen = opts.targets.length ? opts.targets : all;
const cxx = findClang();
fs.mkdirSync(buildDir, { recursive: true });
const waiting = [];
for (const name of chosen) {
  const d = directives(path.join(fuzzDir, `${name}.cc`));
  const missing = d.requires.filter((r) => !fs.existsSync(path.resolve(fuzzDir, r)));
  if (missing.length) {
    waiting.push(`${name} (needs ${missing.map((m) => path.relative(root, path.resolve(fuzzDir, m))).join(', ')})`);
    continue;
  }
  const t0 = Date.now();
  const bin = build(cxx, name, d);
  const built = (Date.now() - t0) / 1000;
  const r = await runTarget(bin, name, d, opts.seconds);
  const stat = (k) => r.output.match(new RegExp(`stat::${k}:\\s+(\\d+)`))?.[1] ?? '?';
  if (!r.ok) {
    console.error(r.output.split('\n').slice(-FAILURE_TAIL_LINES).join('\n'));
    const art = r.output.match(/(?:Test unit|artifact) written to (\S+)/)?.[1];
    if (art && fs.existsSync(art)) {
      console.error(`\nfuzz: ${name}: reproducer ${art}:\n${hexDump(art)}`);
      console.error(`fuzz: replay it with: ${path.relative(root, bin)} ${art}`);
      console.error(`fuzz: once fixed, add it to the seeds: cp ${art} ${path.join('native', 'fuzz', 'corpus', name)}/`);
    }
    fail(`${name} failed (exit ${r.status}) after ${stat('number_of_executed_units')} inputs`);
  }
  console.log(`fuzz: ${name}: ${stat('number_of_executed_units')} inputs in ${opts.seconds} s (built in ${built.toFixed(0)} s), no failure; corpus ${fs.readdirSync(path.join(buildDir, 'corpus', name)).length} new + ${fs.readdirSync(path.join(fuzzDir, 'corpus', name)).length} seeds`);
}
for (const w of waiting) console.log(`fuzz: ${w}: not built yet, that header does not exist (see native/fuzz/README.md)`);
