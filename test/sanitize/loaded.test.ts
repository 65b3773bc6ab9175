// Guard of the sanitizer run (vitest.sanitize.config.ts): proves that the test workers and the
// switch processes they start really load the ASan/UBSan build named by VDE_NATIVE_ADDON, with
// the ASan runtime preloaded, so the run can never silently test the ordinary addon instead.
// Only the sanitizer configuration includes this file.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/index.js';
import { startSwitch } from '../helpers/switchproc.js';

const addonPath = process.env.VDE_NATIVE_ADDON ?? '';

/** The file paths mapped into a process (from /proc/PID/maps). */
function mappedFiles(pid: number | 'self'): string[] {
  return fs
    .readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .map((l) => l.split(/\s+/).slice(5).join(' '))
    .filter((p) => p.startsWith('/'));
}

describe('sanitizer run', () => {
  it('names a sanitized addon in VDE_NATIVE_ADDON', () => {
    expect(addonPath, 'VDE_NATIVE_ADDON is set by scripts/test-sanitized.mjs').toMatch(/\/native\/sanitize\/build\/Release\/vde_native\.node$/);
    expect(process.env.ASAN_OPTIONS ?? '').toContain('log_path=');
  });

  it('loads it in the test worker, with the ASan runtime', () => {
    native().dropNames();
    const maps = mappedFiles('self');
    expect(maps).toContain(fs.realpathSync(addonPath));
    expect(maps.some((p) => /\/libasan\.so/.test(p))).toBe(true);
    expect(maps.some((p) => p.endsWith('/native/build/Release/vde_native.node'))).toBe(false);
  });

  it('loads it in a switch process the tests start', async () => {
    const sw = await startSwitch();
    try {
      const maps = mappedFiles(sw.proc.pid!);
      expect(maps).toContain(fs.realpathSync(addonPath));
      expect(maps.some((p) => /\/libasan\.so/.test(p))).toBe(true);
    } finally {
      await sw.stop();
    }
  });
});
