/**
 * Command-line helpers shared by every tool. vde2 parses options with getopt_long_only, so
 * `-sock DIR` means `--sock DIR` and any unambiguous prefix of a long option works (`-mod 0660`
 * is `--mode 0660`, `--num 6` is `--numports 6`). `getoptLongOnly` reproduces that in front of
 * yargs: it rewrites every option it recognises to its canonical `--name[=value]` form, refuses
 * an option whose value is missing (getopt does; yargs would silently ignore it) or an
 * ambiguous prefix, and lets the last occurrence of an option win (vde2) unless the option is
 * repeatable (`--tap`, `--qemu-*`). Strict integer and octal parsing live here too.
 */
import yargs, { type Options } from 'yargs';
import { parseOctal } from './perms.js';

/** A tool's option as getoptLongOnly needs to know it. */
export interface OptSpec {
  /** Canonical long name (what yargs knows the option by). */
  name: string;
  /** Other long names. */
  aliases: string[];
  /** One-character short name, if any. */
  short?: string;
  /** True when the option takes a value. */
  value: boolean;
  /** True when every occurrence counts (the values accumulate). */
  repeatable: boolean;
  /** How messages call the value ("a value", "a file name"). */
  valueName?: string;
}

/** The part of a yargs option definition specsFromOptions reads. */
export interface YargsOptionLike {
  alias?: string | readonly string[];
  type?: string;
  array?: boolean;
}

/** A command-line mistake; the message names the option. */
export class CliError extends Error {}

/** Derives getopt specs from a yargs option table (aliases of one character are short options). */
export function specsFromOptions(options: Record<string, YargsOptionLike>, extra: OptSpec[] = []): OptSpec[] {
  const specs: OptSpec[] = Object.entries(options).map(([name, o]) => {
    const alias = o.alias === undefined ? [] : typeof o.alias === 'string' ? [o.alias] : [...o.alias];
    const names = [name, ...alias];
    const short = names.find((n) => n.length === 1);
    const longs = names.filter((n) => n.length > 1);
    return {
      name: longs[0] ?? name,
      aliases: longs.slice(1),
      short,
      value: o.type !== 'boolean',
      repeatable: o.array === true,
    };
  });
  return [...specs, ...extra];
}

/** Standard flags every tool has: --help (-h) and --version (-v only where given). */
export function standardSpecs(versionShort?: string): OptSpec[] {
  return [
    { name: 'help', aliases: [], short: 'h', value: false, repeatable: false },
    { name: 'version', aliases: [], short: versionShort, value: false, repeatable: false },
  ];
}

/** Options of getoptLongOnly. */
export interface GetoptOptions {
  /** Single-dash long options (`-sock`), as getopt_long_only (default true). */
  longOnly?: boolean;
  /** Stop at the first positional argument (getopt's "+": everything after it is left as is). */
  stopAtPositional?: boolean;
}

function longMatch(name: string, specs: OptSpec[], shown: string): OptSpec | null {
  const exact = specs.find((s) => s.name === name || s.aliases.includes(name));
  if (exact) return exact;
  const hits = specs.filter((s) => s.name.startsWith(name) || s.aliases.some((a) => a.startsWith(name)));
  const distinct = [...new Set(hits)];
  if (distinct.length > 1) throw new CliError(`option "${shown}" is ambiguous (${distinct.map((s) => `--${s.name}`).join(', ')})`);
  return distinct[0] ?? null;
}

function needs(s: OptSpec, shown: string): string {
  return `option "${shown}" needs ${s.valueName ?? 'a value'}`;
}

/**
 * Rewrites argv the way getopt_long_only reads it: recognised options become `--name=value` /
 * `--name`, positionals stay in place, unknown options are passed on untouched (yargs names
 * them). Throws CliError for a missing value, a value given to a flag, or an ambiguous prefix.
 */
export function getoptLongOnly(argv: string[], specs: OptSpec[], o: GetoptOptions = {}): string[] {
  const longOnly = o.longOnly ?? true;
  const out: Array<{ spec: OptSpec | null; token: string }> = [];
  const shortOf = (c: string): OptSpec | undefined => specs.find((s) => s.short === c);
  let i = 0;
  const emit = (spec: OptSpec, value?: string): void => {
    out.push({ spec, token: value === undefined ? `--${spec.name}` : `--${spec.name}=${value}` });
  };
  const takeValue = (spec: OptSpec, shown: string, inline: string | undefined): string => {
    if (inline !== undefined) return inline;
    if (i >= argv.length) throw new CliError(needs(spec, shown));
    return argv[i++];
  };
  const shortCluster = (a: string): void => {
    for (let j = 1; j < a.length; j++) {
      const spec = shortOf(a[j]);
      if (!spec) {
        out.push({ spec: null, token: `-${a.slice(j)}` });
        return;
      }
      if (!spec.value) {
        emit(spec);
        continue;
      }
      const rest = a.slice(j + 1);
      emit(spec, takeValue(spec, `-${a[j]}`, rest === '' ? undefined : rest));
      return;
    }
  };
  while (i < argv.length) {
    const a = argv[i++];
    if (a === '--') {
      out.push(...argv.slice(i - 1).map((token) => ({ spec: null, token })));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      const spec = longMatch(name, specs, `--${name}`);
      if (!spec) {
        out.push({ spec: null, token: a });
        continue;
      }
      const inline = eq < 0 ? undefined : a.slice(eq + 1);
      if (!spec.value) {
        if (inline !== undefined) throw new CliError(`option "--${spec.name}" takes no value`);
        emit(spec);
      } else emit(spec, takeValue(spec, `--${spec.name}`, inline));
      continue;
    }
    if (a.length < 2 || a[0] !== '-') {
      if (o.stopAtPositional) {
        out.push(...argv.slice(i - 1).map((token) => ({ spec: null, token })));
        break;
      }
      out.push({ spec: null, token: a });
      continue;
    }
    // "-x...": as getopt_long_only, a long option (or prefix) first unless it is one known short option
    if (longOnly && (a.length > 2 || !shortOf(a[1]))) {
      const eq = a.indexOf('=');
      const name = a.slice(1, eq < 0 ? undefined : eq);
      const spec = longMatch(name, specs, `-${name}`);
      if (spec) {
        const inline = eq < 0 ? undefined : a.slice(eq + 1);
        if (!spec.value) {
          if (inline !== undefined) throw new CliError(`option "-${name}" takes no value`);
          emit(spec);
        } else emit(spec, takeValue(spec, `-${name}`, inline));
        continue;
      }
    }
    shortCluster(a);
  }
  // the last occurrence of a single-valued option wins, as with getopt in vde2
  const last = new Map<OptSpec, number>();
  out.forEach((t, k) => {
    if (t.spec && t.spec.value && !t.spec.repeatable) last.set(t.spec, k);
  });
  return out.filter((t, k) => !t.spec || !t.spec.value || t.spec.repeatable || last.get(t.spec) === k).map((t) => t.token);
}

/** Rewrites `-name[=v]` to `--name[=v]` when `name` is a known long option (exact names only). */
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

/** Parses an octal mode option (`0660`), or undefined when not given; throws a message naming the option. */
export function octalOption(name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const n = parseOctal(String(v));
  if (n === undefined) throw new CliError(`--${name}: "${String(v)}" is not an octal mode`);
  return n;
}

/** Parses a non-negative integer option strictly; throws a message naming the option. */
export function intOption(name: string, v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const s = String(v);
  if (!/^\d+$/.test(s)) throw new CliError(`--${name}: "${s}" is not a whole number`);
  const n = parseInt(s, 10);
  if (n < min || n > max) throw new CliError(`--${name}: ${n} is out of range ${min}..${max}`);
  return n;
}

/** Where a command line cannot be split: an unterminated quote or a trailing backslash, at code point `at`. */
export interface WordsError {
  error: 'squote' | 'dquote' | 'backslash';
  at: number;
}

/**
 * Splits a command line as a POSIX shell splits words ('...', "..." with \\ \" \$ \` escapes,
 * backslash), without expansions. Works on code points; says where an unbalanced quote starts.
 */
export function splitWords(s: string): { argv: string[] } | WordsError {
  const argv: string[] = [];
  let cur = '';
  let inWord = false;
  const cps = Array.from(s);
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i];
    if (c === ' ' || c === '\t' || c === '\n') {
      if (inWord) argv.push(cur);
      cur = '';
      inWord = false;
    } else if (c === "'") {
      const end = cps.indexOf("'", i + 1);
      if (end < 0) return { error: 'squote', at: i };
      cur += cps.slice(i + 1, end).join('');
      i = end;
      inWord = true;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < cps.length && cps[j] !== '"'; j++) {
        if (cps[j] === '\\' && j + 1 < cps.length && '"\\$`'.includes(cps[j + 1])) j++;
        cur += cps[j];
      }
      if (j >= cps.length) return { error: 'dquote', at: i };
      i = j;
      inWord = true;
    } else if (c === '\\') {
      if (i + 1 >= cps.length) return { error: 'backslash', at: i };
      cur += cps[++i];
      inWord = true;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) argv.push(cur);
  return { argv };
}

/** Splits a command line as a shell does (see splitWords); null if quotes are unbalanced. */
export function shellWords(s: string): string[] | null {
  const r = splitWords(s);
  return 'argv' in r ? r.argv : null;
}

/** One `--help` example: the command (one line, never wrapped) and what it does. */
export interface Example {
  command: string;
  what: string;
}

/** Formats examples for --help: each command on a line of its own, its explanation indented below. */
export function formatExamples(examples: Example[]): string {
  return `Examples:\n${examples.map((e) => `  ${e.command}\n      ${e.what}`).join('\n')}`;
}

/** The part of a yargs instance helpText needs. */
interface HelpSource {
  getHelp(): Promise<string>;
}

/**
 * The --help text: yargs' usage and option table (wrapped to the terminal), then the examples,
 * which are never wrapped so that every command stays whole and can be pasted.
 */
export async function helpText(y: HelpSource, examples: Example[], extra = ''): Promise<string> {
  return `${(await y.getHelp()).trimEnd()}\n\n${extra ? `${extra}\n\n` : ''}${formatExamples(examples)}\n`;
}

/**
 * A tool's yargs parser with the settings every tool wants: its own --version and --help (the
 * tool prints them), strict options, help wrapped to the terminal, errors thrown (the tool prints
 * one line), repeated array options kept apart from positionals.
 */
export function toolParser(argv: string[], name: string, usage: string, options: Record<string, Options>) {
  return yargs(argv)
    .scriptName(name)
    .usage(usage)
    .options(options)
    .version(false)
    .option('version', { type: 'boolean', describe: 'print the version' })
    .strictOptions()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .help(false)
    .option('help', { alias: 'h', type: 'boolean', describe: 'show this help' })
    .parserConfiguration({ 'unknown-options-as-args': false, 'greedy-arrays': false })
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    });
}
