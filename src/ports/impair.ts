/**
 * Link emulation settings as users write them, for every tool that impairs a port or a cable
 * (vde_switch's `port/impair`, vde_plug's `--impair` and console, and the lab runner to come):
 * a netem-like spec (`delay 10ms 2ms distribution normal loss 1% rate 100mbit`) is parsed
 * here into the canonical settings of the native "impair" stage (native/src/stage_impair.cc),
 * with a one-line error naming the bad word. `Impairments` applies specs to an engine's port
 * directions with a tool-wide default seed, remembers them for printing, and reads the stage's
 * counters back. wirefilter speaks vde2's own syntax (src/wirefilter/) and builds the same
 * canonical settings.
 */
import { CliError } from '../core/cli.js';
import type { NativeEngine } from '../native/index.js';

/** The native stage kind. */
export const IMPAIR_STAGE = 'impair';
/** Microseconds per unit of a time word. */
const TIME_UNITS_US: Record<string, number> = { ns: 0.001, us: 1, usec: 1, usecs: 1, 'µs': 1, ms: 1000, msec: 1000, msecs: 1000, s: 1e6, sec: 1e6, secs: 1e6 };
/** Bits per second per unit of a rate word (tc's units: bit/s, and bps = bytes/s). */
const RATE_UNITS_BPS: Record<string, number> = {
  bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9, tbit: 1e12, kibit: 1024, mibit: 1024 ** 2, gibit: 1024 ** 3, tibit: 1024 ** 4,
  bps: 8, kbps: 8e3, mbps: 8e6, gbps: 8e9, tbps: 8e12, kibps: 8 * 1024, mibps: 8 * 1024 ** 2, gibps: 8 * 1024 ** 3, tibps: 8 * 1024 ** 4,
};
/** Bytes per unit of a size word (tc: k = 1024). */
const SIZE_UNITS_BYTES: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };
const DISTRIBUTIONS = ['uniform', 'normal', 'pareto', 'paretonormal'];
/** The words that start an item. */
export const IMPAIR_KEYWORDS = ['delay', 'loss', 'duplicate', 'dup', 'corrupt', 'noise', 'reorder', 'gap', 'rate', 'speed', 'slot', 'limit', 'capacity', 'mtu', 'down', 'up', 'flap', 'nofifo', 'fifo', 'seed', 'off', 'none'];
/** Largest seed (the native stage's: 2^53 - 1). */
export const MAX_IMPAIR_SEED = Number.MAX_SAFE_INTEGER;
const NUMBER_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/;

/** A bad spec; the message names the word (callers add the option or command name). */
export class ImpairSpecError extends Error {}

/** Parsed settings: the spec as normalised text and the native stage's canonical settings. */
export interface ImpairSpec {
  text: string;
  config: Record<string, string>;
}

/** Reads a spec's words one by one. */
class Words {
  private i = 0;
  constructor(private w: string[]) {}
  /** The next word, or undefined. */
  peek(): string | undefined {
    return this.w[this.i];
  }
  /** Takes the next word, failing with `what` when there is none. */
  take(what: string): string {
    const x = this.w[this.i++];
    if (x === undefined) throw new ImpairSpecError(`${what}: a value is missing`);
    return x;
  }
  /** Takes the next word when it starts with a number (an optional argument). */
  takeNumeric(): string | undefined {
    const x = this.w[this.i];
    if (x !== undefined && NUMBER_RE.test(x)) {
      this.i++;
      return x;
    }
    return undefined;
  }
  /** Takes the next word when it equals s. */
  takeIf(s: string): boolean {
    if (this.w[this.i] === s) {
      this.i++;
      return true;
    }
    return false;
  }
  /** True when every word was read. */
  done(): boolean {
    return this.i >= this.w.length;
  }
}

function numberWithUnit(word: string, what: string): { n: number; unit: string } {
  const m = NUMBER_RE.exec(word);
  if (!m) throw new ImpairSpecError(`${what}: "${word}" is not a number`);
  const n = Number(m[0]);
  if (!Number.isFinite(n)) throw new ImpairSpecError(`${what}: "${word}" is not a number`);
  return { n, unit: word.slice(m[0].length).toLowerCase() };
}

/** A time word (10ms, 250us, 1.5s) in µs; bare numbers are refused (tc reads them as µs, wirefilter as ms). */
export function parseTimeUs(word: string, what: string): number {
  const { n, unit } = numberWithUnit(word, what);
  if (unit === '') throw new ImpairSpecError(`${what}: "${word}" needs a unit (us, ms, s)`);
  const k = TIME_UNITS_US[unit];
  if (k === undefined) throw new ImpairSpecError(`${what}: "${word}": unknown time unit "${unit}" (us, ms, s)`);
  if (n < 0) throw new ImpairSpecError(`${what}: "${word}" is negative`);
  return n * k;
}

/** A rate word (100mbit, 1gbit, 125kbps) in bits per second; bare numbers are refused. */
export function parseRateBps(word: string, what: string): number {
  const { n, unit } = numberWithUnit(word, what);
  if (unit === '') throw new ImpairSpecError(`${what}: "${word}" needs a unit (bit, kbit, mbit, gbit; bps, kbps, mbps = bytes/s)`);
  const k = RATE_UNITS_BPS[unit];
  if (k === undefined) throw new ImpairSpecError(`${what}: "${word}": unknown rate unit "${unit}" (bit, kbit, mbit, gbit, tbit, kibit..., bps, kbps, mbps...)`);
  if (n <= 0) throw new ImpairSpecError(`${what}: "${word}" must be above zero`);
  return n * k;
}

/** A percentage word (10% or 10), 0..100. */
export function parsePercent(word: string, what: string): number {
  const m = /^([+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)%?$/.exec(word);
  const n = m ? Number(m[1]) : NaN;
  if (!m || !Number.isFinite(n) || n < 0 || n > 100) throw new ImpairSpecError(`${what}: "${word}" is not a percentage (0..100)`);
  return n;
}

/** A size word in bytes (1500, 64k, 1m; k = 1024 as in tc). */
export function parseSizeBytes(word: string, what: string): number {
  const { n, unit } = numberWithUnit(word, what);
  const k = SIZE_UNITS_BYTES[unit];
  if (k === undefined) throw new ImpairSpecError(`${what}: "${word}": unknown size unit "${unit}" (b, k, m, g)`);
  if (n < 0) throw new ImpairSpecError(`${what}: "${word}" is negative`);
  return Math.round(n * k);
}

function wholeNumber(word: string, what: string, lo: number, hi: number): number {
  if (!/^[+-]?\d+$/.test(word) || Number(word) < lo || Number(word) > hi) throw new ImpairSpecError(`${what}: "${word}" is not a whole number in ${lo}..${hi}`);
  return Number(word);
}

/** Splits a spec into words (blanks or commas separate them). */
export function specWords(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean);
}

/**
 * Parses a spec (see README.md, "Link emulation", for the grammar). An empty spec, `off` or
 * `none` is the empty configuration: frames pass, frames still held leave on time.
 */
export function parseImpairSpec(text: string): ImpairSpec {
  const words = specWords(text);
  const c: Record<string, string> = {};
  const seen = new Set<string>();
  const once = (item: string): void => {
    if (seen.has(item)) throw new ImpairSpecError(`${item} is given twice`);
    seen.add(item);
  };
  const w = new Words(words);
  const set = (k: string, v: number | string): void => {
    c[k] = String(v);
  };
  while (!w.done()) {
    const kw = w.take('spec').toLowerCase();
    switch (kw) {
      case 'off':
      case 'none':
        if (words.length !== 1) throw new ImpairSpecError(`"${kw}" stands alone`);
        break;
      case 'delay': {
        once('delay');
        set('delay_us', parseTimeUs(w.take('delay'), 'delay'));
        const j = w.takeNumeric();
        if (j !== undefined) {
          set('delay_jitter_us', parseTimeUs(j, 'delay jitter'));
          const corr = w.takeNumeric();
          if (corr !== undefined) set('delay_corr', parsePercent(corr, 'delay correlation'));
        }
        if (w.takeIf('distribution')) {
          const d = w.take('distribution');
          if (!DISTRIBUTIONS.includes(d)) throw new ImpairSpecError(`distribution: "${d}" is not one of ${DISTRIBUTIONS.join(', ')}`);
          if (c.delay_jitter_us === undefined) throw new ImpairSpecError('distribution: needs a jitter (delay TIME JITTER distribution ...)');
          set('delay_dist', d);
        }
        break;
      }
      case 'loss': {
        once('loss');
        const model = w.peek();
        if (model === 'burst') {
          w.take('loss');
          set('loss', parsePercent(w.take('loss burst'), 'loss burst'));
          const len = numberWithUnit(w.take('loss burst length'), 'loss burst length');
          if (len.unit !== '' || len.n < 1) throw new ImpairSpecError(`loss burst length: "${len.n}${len.unit}" is not a number of frames (1 or more)`);
          set('burst', len.n);
        } else if (model === 'gemodel' || model === 'gilbert-elliott') {
          w.take('loss');
          set('ge_p', parsePercent(w.take('loss gemodel'), 'loss gemodel p'));
          const names = ['r', '1-h', '1-k'];
          const keys = ['ge_r', 'ge_1h', 'ge_1k'];
          for (let i = 0; i < 3; i++) {
            const x = w.takeNumeric();
            if (x === undefined) break;
            set(keys[i], parsePercent(x, `loss gemodel ${names[i]}`));
          }
        } else if (model === 'state') {
          w.take('loss');
          const keys = ['s4_p13', 's4_p31', 's4_p32', 's4_p23', 's4_p14'];
          set(keys[0], parsePercent(w.take('loss state'), 'loss state p13'));
          for (let i = 1; i < 5; i++) {
            const x = w.takeNumeric();
            if (x === undefined) break;
            set(keys[i], parsePercent(x, `loss state ${keys[i].slice(3)}`));
          }
        } else {
          w.takeIf('random');
          set('loss', parsePercent(w.take('loss'), 'loss'));
          const corr = w.takeNumeric();
          if (corr !== undefined) set('loss_corr', parsePercent(corr, 'loss correlation'));
        }
        if (w.peek() === 'ecn') throw new ImpairSpecError('loss: "ecn" (marking instead of dropping) is not supported');
        break;
      }
      case 'duplicate':
      case 'dup': {
        once('duplicate');
        set('dup', parsePercent(w.take(kw), kw));
        const corr = w.takeNumeric();
        if (corr !== undefined) set('dup_corr', parsePercent(corr, `${kw} correlation`));
        break;
      }
      case 'corrupt': {
        once('corrupt');
        set('corrupt', parsePercent(w.take('corrupt'), 'corrupt'));
        const corr = w.takeNumeric();
        if (corr !== undefined) set('corrupt_corr', parsePercent(corr, 'corrupt correlation'));
        break;
      }
      case 'noise': {
        once('noise');
        const n = numberWithUnit(w.take('noise'), 'noise');
        if (n.unit !== '' || n.n < 0 || n.n > 8 * 1048576) throw new ImpairSpecError(`noise: "${n.n}${n.unit}" is not a number of bits per MiB (0..8388608)`);
        set('noise', n.n);
        break;
      }
      case 'reorder': {
        once('reorder');
        set('reorder', parsePercent(w.take('reorder'), 'reorder'));
        const corr = w.takeNumeric();
        if (corr !== undefined) set('reorder_corr', parsePercent(corr, 'reorder correlation'));
        if (w.takeIf('gap')) set('gap', wholeNumber(w.take('gap'), 'gap', 1, 2 ** 32 - 1));
        break;
      }
      case 'gap':
        once('gap');
        set('gap', wholeNumber(w.take('gap'), 'gap', 1, 2 ** 32 - 1));
        break;
      case 'rate': {
        once('rate');
        set('rate_bps', parseRateBps(w.take('rate'), 'rate'));
        const keys = ['overhead_bytes', 'cell_bytes', 'cell_overhead_bytes'];
        const names = ['rate packet overhead', 'rate cell size', 'rate cell overhead'];
        for (let i = 0; i < 3; i++) {
          const x = w.takeNumeric();
          if (x === undefined) break;
          set(keys[i], wholeNumber(x, names[i], i === 1 ? 0 : -65535, 65535));
        }
        break;
      }
      case 'speed':
        once('speed');
        set('speed_bps', parseRateBps(w.take('speed'), 'speed'));
        break;
      case 'slot': {
        once('slot');
        if (w.takeIf('distribution')) {
          const d = w.take('slot distribution');
          if (!DISTRIBUTIONS.includes(d)) throw new ImpairSpecError(`slot distribution: "${d}" is not one of ${DISTRIBUTIONS.join(', ')}`);
          set('slot_dist', d);
          set('slot_us', parseTimeUs(w.take('slot delay'), 'slot delay'));
          set('slot_jitter_us', parseTimeUs(w.take('slot jitter'), 'slot jitter'));
        } else {
          const min = parseTimeUs(w.take('slot'), 'slot');
          const maxWord = w.takeNumeric();
          const max = maxWord === undefined ? min : parseTimeUs(maxWord, 'slot max');
          if (max < min) throw new ImpairSpecError(`slot: the longest interval ${maxWord} is below the shortest`);
          set('slot_us', (min + max) / 2);
          if (max > min) set('slot_jitter_us', (max - min) / 2);
        }
        for (;;) {
          if (w.takeIf('packets')) set('slot_packets', wholeNumber(w.take('slot packets'), 'slot packets', 1, 2 ** 32 - 1));
          else if (w.takeIf('bytes')) set('slot_bytes', parseSizeBytes(w.take('slot bytes'), 'slot bytes'));
          else break;
        }
        break;
      }
      case 'limit':
        once('limit');
        set('limit', wholeNumber(w.take('limit'), 'limit', 1, 1 << 20));
        break;
      case 'capacity':
        once('capacity');
        set('capacity_bytes', parseSizeBytes(w.take('capacity'), 'capacity'));
        break;
      case 'mtu': {
        once('mtu');
        const m = parseSizeBytes(w.take('mtu'), 'mtu');
        if (m < 14 || m > 65536) throw new ImpairSpecError(`mtu: ${m} is not a frame size in 14..65536`);
        set('mtu', m);
        break;
      }
      case 'down':
      case 'up':
        once('link state');
        set('down', kw === 'down' ? 1 : 0);
        break;
      case 'flap': {
        once('flap');
        const up = parseTimeUs(w.take('flap up time'), 'flap up time');
        const down = parseTimeUs(w.take('flap down time'), 'flap down time');
        if (up <= 0 || down <= 0) throw new ImpairSpecError('flap: both times must be above zero');
        set('flap_up_us', up);
        set('flap_down_us', down);
        break;
      }
      case 'nofifo':
      case 'fifo':
        once('fifo');
        set('fifo', kw === 'fifo' ? 1 : 0);
        break;
      case 'seed':
        once('seed');
        set('seed', wholeNumber(w.take('seed'), 'seed', 0, MAX_IMPAIR_SEED));
        break;
      default:
        throw new ImpairSpecError(`unknown word "${kw}" (known: ${IMPAIR_KEYWORDS.join(', ')})`);
    }
  }
  return { text: words.length === 1 && (words[0] === 'off' || words[0] === 'none') ? '' : words.join(' '), config: c };
}

/** A cable direction: left to right (from the first endpoint to the second), right to left, or both. */
export type CableDir = 'LR' | 'RL' | 'both';

/** Splits `LR:SPEC`, `RL:SPEC` or a bare `SPEC` (both directions). */
export function parseDirected(arg: string): { dir: CableDir; spec: ImpairSpec } {
  const m = /^\s*(LR|RL|both)\s*:(.*)$/is.exec(arg);
  if (!m) return { dir: 'both', spec: parseImpairSpec(arg) };
  const d = m[1].toUpperCase();
  return { dir: d === 'BOTH' ? 'both' : (d as CableDir), spec: parseImpairSpec(m[2]) };
}

/** A tool's --seed: a whole number in 0..2^53-1, or undefined when not given. */
export function seedOption(v: unknown): number | undefined {
  if (v === undefined) return undefined;
  const s = String(v);
  if (!/^\d+$/.test(s) || Number(s) > MAX_IMPAIR_SEED) throw new CliError(`--seed: "${s}" is not a whole number in 0..${MAX_IMPAIR_SEED}`);
  return Number(s);
}

/** A tool's --impair values, each `[LR:|RL:]SPEC`; with `once`, each direction at most once. */
export function impairOptions(values: unknown, once: boolean): Array<{ dir: CableDir; spec: ImpairSpec }> {
  const out: Array<{ dir: CableDir; spec: ImpairSpec }> = [];
  const given = new Set<string>();
  for (const v of (values as unknown[] | undefined) ?? []) {
    let d: { dir: CableDir; spec: ImpairSpec };
    try {
      d = parseDirected(String(v));
    } catch (e) {
      throw new CliError(`--impair: ${(e as Error).message}`);
    }
    for (const x of d.dir === 'both' ? ['LR', 'RL'] : [d.dir]) {
      if (once && given.has(x)) throw new CliError(`--impair: direction ${x} is given twice`);
      given.add(x);
    }
    out.push(d);
  }
  return out;
}

/** The argument of an `impair` console command: `LR|RL|both SPEC|off`; throws ImpairSpecError. */
export function parseImpairCommand(a: string): { dir: CableDir; spec: ImpairSpec } {
  const m = /^\s*(LR|RL|both)\b\s*(.*)$/is.exec(a);
  if (!m) throw new ImpairSpecError('usage: impair LR|RL|both SPEC|off');
  const d = m[1].toUpperCase();
  return { dir: d === 'BOTH' ? 'both' : (d as CableDir), spec: parseImpairSpec(m[2]) };
}

/** What a console shows for a refused spec (ours, or the native stage's `impair: ...`), or null for any other error. */
export function impairErrorText(e: unknown): string | null {
  const msg = (e as Error)?.message ?? '';
  if (e instanceof ImpairSpecError) return msg;
  return /^impair: /.test(msg) ? msg.replace(/^impair: /, '') : null;
}

/** One impaired port direction as printed. */
export interface ImpairReport {
  port: number;
  dir: 'in' | 'out';
  spec: string;
  values: Record<string, number>;
}

/** Counter names of the stage, in print order. */
export const IMPAIR_COUNTERS = ['frames', 'passed', 'released', 'held', 'heldBytes', 'lost', 'duplicated', 'corrupted', 'reordered', 'overCapacity', 'overMtu', 'linkDown'];

/** The text lines of one report: the spec, the state, then the counters. */
export function impairLines(label: string, r: ImpairReport): string[] {
  const v = r.values;
  return [
    `${label}: ${r.spec || '(nothing)'}`,
    `  link ${v.up === 0 ? 'down' : 'up'} seed ${v.seed ?? '-'} limit ${v.limit ?? '-'}`,
    `  ${IMPAIR_COUNTERS.map((k) => `${k} ${v[k] ?? 0}`).join(' ')}`,
  ];
}

/** The specs in force on an engine's ports, applied through the native stage. */
export class Impairments {
  private specs = new Map<string, string>();

  /** seed: the default seed of every direction (each gets its own stream of it). */
  constructor(
    private engine: NativeEngine,
    private seed?: number,
  ) {}

  private static key(port: number, dir: 'in' | 'out'): string {
    return `${port}/${dir}`;
  }

  /**
   * Applies a spec to a port direction (replacing the previous one: frames it holds and its
   * counters carry over); null removes the stage. Throws the native stage's message when a
   * setting is refused.
   */
  set(port: number, dir: 'in' | 'out', spec: ImpairSpec | null): void {
    const k = Impairments.key(port, dir);
    if (spec === null) {
      this.engine.setStage(port, dir, IMPAIR_STAGE, null);
      this.specs.delete(k);
      return;
    }
    const config: Record<string, string> = { ...spec.config, stream: String(port * 2 + (dir === 'out' ? 1 : 0)) };
    if (config.seed === undefined && this.seed !== undefined) config.seed = String(this.seed);
    this.engine.setStage(port, dir, IMPAIR_STAGE, config);
    this.specs.set(k, spec.text);
  }

  /** The spec text in force on a port direction, or null. */
  spec(port: number, dir: 'in' | 'out'): string | null {
    return this.specs.get(Impairments.key(port, dir)) ?? null;
  }

  /** Port directions with a spec (every port with -1), with the stage's values. */
  async report(port = -1): Promise<ImpairReport[]> {
    const stages = await this.engine.stages(port);
    const out: ImpairReport[] = [];
    for (const s of stages) {
      if (s.name !== IMPAIR_STAGE) continue;
      const text = this.specs.get(Impairments.key(s.port, s.dir));
      if (text === undefined) continue;
      out.push({ port: s.port, dir: s.dir, spec: text, values: s.values });
    }
    return out.sort((a, b) => a.port - b.port || (a.dir === 'in' ? -1 : 1));
  }
}

/** The wire ports (src/ports/wire.ts: the first endpoint on port 1, the second on port 2) whose egress carries a cable direction. */
export function cablePorts(dir: CableDir): number[] {
  return dir === 'LR' ? [2] : dir === 'RL' ? [1] : [2, 1];
}

/** The direction name of a wire port's egress: port 2 sends left to right. */
export function cableDirOf(port: number): 'LR' | 'RL' {
  return port === 2 ? 'LR' : 'RL';
}
