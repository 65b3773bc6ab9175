/**
 * Paths inside locators, for tools that start from one directory and run from another (the
 * background copy of `-d` runs in /): every path a locator names made absolute, and the switch
 * directory a vde:// locator names (to refuse a cable whose two ends are one switch).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Locator } from './vnl.js';

/** The switch directory a vde:// side names, canonical, or null (other kinds, or a directory that does not exist). */
export function switchDirOf(l: Locator): string | null {
  if (l.kind !== 'vde') return null;
  try {
    return fs.realpathSync(l.path || '/var/run/vde.ctl');
  } catch {
    return null;
  }
}

/** Makes the paths of a locator absolute (the background copy of -d must not depend on its directory). */
export function absoluteLocator(l: Locator): Locator {
  const abs = (p: string | undefined): string | undefined => (p ? path.resolve(p) : p);
  switch (l.kind) {
    case 'vde':
    case 'switch':
    case 'hub':
    case 'multi':
      return l.path ? { ...l, path: path.resolve(l.path) } : l;
    case 'ptp':
      return { ...l, path: path.resolve(l.path) };
    case 'stream':
      return l.transport === 'unix' ? { ...l, path: abs(l.path) } : l;
    case 'dgram':
      return l.transport === 'unix' ? { ...l, localPath: abs(l.localPath), remotePath: abs(l.remotePath) } : l;
    case 'vlan':
      return { ...l, inner: absoluteLocator(l.inner) };
    case 'crypt':
      return { ...l, keyFile: path.resolve(l.keyFile), inner: absoluteLocator(l.inner) };
    default:
      return l;
  }
}
