/**
 * Runs once before the suite: makes sure the addon and dist/ are built (so `npm test` works
 * right after a clone + npm install) and that the Debian tools the interop tests drive are
 * installed (installing them with apt-get when missing, failing with the package name if that
 * is impossible).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureTools } from './helpers/deps.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Vitest global set-up hook. */
export default async function setup(): Promise<void> {
  const addon = path.join(root, 'native', 'build', 'Release', 'vde_native.node');
  const newest = (dir: string): number =>
    fs.readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((d) => d.isFile())
      .reduce((m, d) => Math.max(m, fs.statSync(path.join(d.parentPath, d.name)).mtimeMs), 0);
  const built = fs.existsSync(addon) && fs.existsSync(path.join(root, 'dist', 'switch', 'main.js'));
  if (!built || newest(path.join(root, 'src')) > fs.statSync(path.join(root, 'dist', 'switch', 'main.js')).mtimeMs || newest(path.join(root, 'native', 'src')) > fs.statSync(addon).mtimeMs) {
    execFileSync(process.execPath, [path.join(root, 'scripts', 'build.mjs')], { stdio: 'inherit' });
  }
  await ensureTools({
    vde_switch: 'vde2',
    vde_plug: 'vdeplug',
    dpipe: 'vdeplug',
    'qemu-system-x86_64': 'qemu-system-x86',
    busybox: 'busybox-static',
    ip: 'iproute2',
    cpio: 'cpio',
  });
}
