/**
 * Shared command-line helpers: vde2 tools parse options with getopt_long_only, so `-sock DIR`
 * means `--sock DIR`. normalizeLongOnly rewrites such single-dash long options before yargs
 * sees them, leaving short options and their clusters alone.
 */

/** Rewrites `-name[=v]` to `--name[=v]` when `name` is a known long option. */
export function normalizeLongOnly(argv: string[], longNames: string[]): string[] {
  const known = new Set(longNames);
  const out: string[] = [];
  let rest = false;
  for (const a of argv) {
    if (rest || a === '--') {
      rest = true;
      out.push(a);
      continue;
    }
    if (/^-[^-]/.test(a) && a.length > 2) {
      const name = a.slice(1).split('=')[0];
      if (known.has(name)) {
        out.push(`-${a}`);
        continue;
      }
    }
    out.push(a);
  }
  return out;
}

/** Parses a non-negative integer option strictly; throws a message naming the option. */
export function intOption(name: string, v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const s = String(v);
  if (!/^\d+$/.test(s)) throw new Error(`--${name}: "${s}" is not a whole number`);
  const n = parseInt(s, 10);
  if (n < min || n > max) throw new Error(`--${name}: ${n} is out of range ${min}..${max}`);
  return n;
}
