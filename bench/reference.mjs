/*
 * bench/reference.mjs - who is who in the benchmarks. The reference side is always Debian's VDE
 * tools named by absolute path (/usr/bin/...), never looked up on PATH, where a global install of
 * vde-ts may shadow them; before a run each one is checked to be an ELF executable that a Debian
 * package owns (dpkg -S) and that still matches the checksum dpkg recorded (dpkg --verify), so a
 * vde-ts script installed over it (npm install -g with the prefix /usr) is refused with a clear
 * message. Our side is always this checkout's bin/, run with the node running the bench.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout this bench belongs to. */
export const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Where Debian installs the VDE commands. */
export const DEBIAN_BIN_DIR = '/usr/bin';
/** The Debian package to install for each reference command. */
export const DEBIAN_PACKAGE_OF = { vde_switch: 'vde2', vde_plug: 'vdeplug', dpipe: 'vdeplug', wirefilter: 'vde2' };
const DPKG_TIMEOUT_MS = 30000;
const ELF_MAGIC = '\x7fELF';

const checked = new Map();

function dpkg(args) {
  const r = spawnSync('dpkg', args, { encoding: 'utf8', timeout: DPKG_TIMEOUT_MS });
  return { ok: r.status === 0 && !r.error, out: (r.stdout || '').trim(), err: (r.stderr || r.error?.message || '').trim() };
}

function firstBytes(file, n) {
  const buf = Buffer.alloc(n);
  const fd = fs.openSync(file, 'r');
  try {
    return buf.subarray(0, fs.readSync(fd, buf, 0, n, 0)).toString('latin1');
  } finally {
    fs.closeSync(fd);
  }
}

/** The absolute path of Debian's command `name`, after checking it is Debian's ELF binary; throws an Error saying what to do otherwise. */
export function debianTool(name) {
  if (checked.has(name)) return checked.get(name);
  const file = path.join(DEBIAN_BIN_DIR, name);
  const pkgHint = DEBIAN_PACKAGE_OF[name] ?? 'the Debian package that provides it';
  const fix = `apt-get install --reinstall -y ${pkgHint}`;
  if (!fs.existsSync(file)) throw new Error(`reference ${name}: ${file} is missing (apt-get install -y ${pkgHint})`);
  const real = fs.realpathSync(file);
  const magic = firstBytes(real, 4);
  if (magic !== ELF_MAGIC) {
    const what = magic.startsWith('#!') ? `a script (${firstBytes(real, 80).split('\n')[0]})` : 'not an ELF executable';
    throw new Error(`reference ${name}: ${file}${real !== file ? ` -> ${real}` : ''} is ${what}, not Debian's binary ` +
      `(a global npm install of vde-ts with the prefix /usr replaces it); restore it with: ${fix}`);
  }
  const owner = dpkg(['-S', real]);
  if (!owner.ok) throw new Error(`reference ${name}: no Debian package owns ${real} (dpkg -S: ${owner.err || 'no answer'}); install it with: apt-get install -y ${pkgHint}`);
  const pkg = owner.out.split('\n')[0].split(':')[0].trim();
  // dpkg --verify prints "??5?????? /path" for files whose content differs from the package's
  const verify = dpkg(['--verify', pkg]);
  const changed = verify.out.split('\n').find((l) => /^..5/.test(l) && l.trim().endsWith(` ${real}`));
  if (changed) throw new Error(`reference ${name}: ${real} differs from the one package ${pkg} installed (dpkg --verify: ${changed.trim()}); restore it with: ${fix}`);
  const info = { path: file, pkg };
  checked.set(name, info);
  return info;
}

/** argv that runs this checkout's command `name` (bin/NAME) with the node running the bench. */
export function oursArgv(name) {
  return [process.execPath, path.join(REPO_DIR, 'bin', name)];
}
