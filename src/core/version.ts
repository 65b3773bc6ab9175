/**
 * Version strings: the vde-ts release (from package.json) that `--version`, `showinfo` and
 * `json/showinfo` report, and the vde2 version our switch banner keeps for clients that parse it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The vde2 release whose console and wire formats we reproduce (the banner says `V.2.3.3`). */
export const VDE2_VERSION = '2.3.3';

function readVersion(): string {
  // src/core/version.ts and dist/core/version.js both sit two levels below package.json
  const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
  try {
    const v = (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version?: unknown }).version;
    return typeof v === 'string' ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The vde-ts release, e.g. "0.1.0". */
export const VDE_TS_VERSION = readVersion();

/**
 * What `PROGRAM --version` prints (one line). vde_switch keeps vde2's form (`VDE 2.3.3`, as
 * `vde_switch -v` prints it) for scripts that parse it, with our release after it.
 */
export function versionLine(program: string): string {
  if (program === 'vde_switch') return `VDE ${VDE2_VERSION} (vde-ts ${VDE_TS_VERSION})`;
  return `${program} (vde-ts) ${VDE_TS_VERSION}, compatible with VDE ${VDE2_VERSION}`;
}
