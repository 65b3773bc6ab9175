/**
 * wirefilter's settings as vde2 defines them: nine values per direction (loss, lostburst,
 * delay, dup, bandwidth, speed, channel buffer, noise, MTU), each `value+plus` with a uniform or
 * normal spread, written `[LR|RL]N[+J][K|M|G][U|N][\[node\]]`; a Markov chain of nodes that each
 * hold a full set of values, with weighted edges, switched every `markov-time` ms; and the fifo
 * flag. This module parses and prints those values exactly as vde2 does (its %g layouts), runs
 * the chain's steps, and turns the current node's values into the native impair stage's
 * canonical settings (units: vde2's ms and bytes/s become µs and bit/s; vde2's "N" spread is
 * three standard deviations).
 */

/** The values, in vde2's order. */
export const WF_PARAMS = ['loss', 'lostburst', 'delay', 'dup', 'band', 'speed', 'chanbufsize', 'noise', 'mtu'] as const;
export type WfParam = (typeof WF_PARAMS)[number];
/** Direction indexes: left to right, right to left. */
export const LR = 0;
export const RL = 1;
/** vde2's K, M, G multipliers (powers of two). */
const MULTIPLIERS: Record<string, number> = { K: 1 << 10, M: 1 << 20, G: 1 << 30 };
/** vde2's normal spread: `plus` is 3 sigma ("more than 98 % of the values are inside the limits"). */
export const NORMAL_PLUS_SIGMAS = 3;
/** Default Markov period, ms. */
export const DEFAULT_MARKOV_TIME_MS = 100;
/** Frames one direction may hold (vde2 has no limit; the engine's pool of 64 MiB is the real bound). */
export const WF_LIMIT_FRAMES = 65536;
/** Most Markov nodes accepted. */
export const MAX_MARKOV_NODES = 1024;

/** Largest value (after K/M/G) per parameter, so that nothing the native stage refuses gets through. */
const MAX_VALUE: Record<WfParam, number> = {
  loss: 100, lostburst: 1e9, delay: 3.6e6, dup: 100, band: 1.25e12, speed: 1.25e12, chanbufsize: 4294967295, noise: 8388608, mtu: 65536,
};

/** One value as vde2 keeps it. */
export interface WireValue {
  value: number;
  plus: number;
  alg: 'U' | 'N';
}

/** One Markov node: a name and every value for both directions. */
export interface MarkovNode {
  name: string;
  v: Record<WfParam, [WireValue, WireValue]>;
}

/** A value that does not parse; the message names the value. */
export class WfValueError extends Error {}

function zero(): WireValue {
  return { value: 0, plus: 0, alg: 'U' };
}

function newNode(): MarkovNode {
  const v = {} as Record<WfParam, [WireValue, WireValue]>;
  for (const p of WF_PARAMS) v[p] = [zero(), zero()];
  return { name: '', v };
}

/** C's printf("%g"): six significant digits, trailing zeros removed, exponent form outside 1e-4..1e6. */
export function fmtG(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const [mant, expText] = x.toExponential(5).split('e');
  const exp = Number(expText);
  const strip = (s: string): string => (s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s);
  if (exp < -4 || exp >= 6) return `${strip(mant)}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return strip(x.toFixed(5 - exp));
}

/** `value+plus` and the spread letter, as showinfo prints it (`10+2N`). */
export function fmtWireValue(w: WireValue): string {
  return `${fmtG(w.value)}+${fmtG(w.plus)}${w.alg}`;
}

const NUM = '(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][+-]?\\d+)?';
const VALUE_RE = new RegExp(`^(LR|RL)?(${NUM})(?:\\+(${NUM})?)?(%)?$`, 'i');

/** What a value text sets: the node, the directions, the value. */
export interface ParsedValue {
  node: number;
  dirs: number[];
  w: WireValue;
}

/**
 * Parses vde2's value syntax `[LR|RL]N[+J][K|M|G][U|N][\[node\]]` (a `%` after a percentage is
 * accepted, as vde2's sscanf ignores it). Throws WfValueError for anything vde2 would read as
 * garbage (vde2 silently keeps the old value) and for values out of range.
 */
export function parseWireValue(param: WfParam, text: string, numNodes: number): ParsedValue {
  let s = text.replace(/[ \t\n]+$/, '').replace(/^[ \t]+/, '');
  const bad = (why: string): never => {
    throw new WfValueError(`"${text}" ${why}`);
  };
  if (s === '') bad('is empty');
  let node = 0;
  const nm = /\[([^\]]*)\]$/.exec(s);
  if (nm) {
    if (!/^\s*\d+\s*$/.test(nm[1])) bad('has a node index that is not a number');
    node = Number(nm[1]);
    if (node >= numNodes) bad(`names node ${node}, but there are ${numNodes} (markov-numnodes)`);
    s = s.slice(0, nm.index);
  }
  let alg: 'U' | 'N' = 'U';
  const last = s.slice(-1).toUpperCase();
  if (last === 'U' || last === 'N') {
    alg = last;
    s = s.slice(0, -1);
  }
  let mult = 1;
  const m = MULTIPLIERS[s.slice(-1).toUpperCase()];
  if (m !== undefined) {
    mult = m;
    s = s.slice(0, -1);
  }
  const v = VALUE_RE.exec(s);
  if (!v) bad('is not a value of the form [LR|RL]N[+J][K|M|G][U|N]');
  if (v![4] && param !== 'loss' && param !== 'dup') bad('has a "%" but is not a percentage');
  const value = Number(v![2]) * mult;
  const plus = v![3] === undefined ? 0 : Number(v![3]) * mult;
  const max = MAX_VALUE[param];
  if (!(value <= max) || !(plus <= max)) bad(`is out of range (at most ${fmtG(max)})`);
  const dir = v![1]?.toUpperCase();
  return { node, dirs: dir === 'LR' ? [LR] : dir === 'RL' ? [RL] : [LR, RL], w: { value, plus, alg } };
}

/** The Markov chain and every node's values (vde2's wirefilter state). */
export class WireFilterModel {
  nodes: MarkovNode[] = [newNode()];
  /** Edge weights in percent, adj[i][j]; the loopback adj[i][i] is 100 minus the others. */
  adj: number[][] = [[100]];
  current = 0;
  markovTimeMs = DEFAULT_MARKOV_TIME_MS;
  nofifo = false;

  /** Number of nodes. */
  get numNodes(): number {
    return this.nodes.length;
  }

  /** Sets a value from vde2's syntax (see parseWireValue). */
  set(param: WfParam, text: string): void {
    const p = parseWireValue(param, text, this.numNodes);
    for (const d of p.dirs) this.nodes[p.node].v[param][d] = { ...p.w };
  }

  /** A value of a node and direction. */
  get(param: WfParam, dir: number, node = this.current): WireValue {
    return this.nodes[node].v[param][dir];
  }

  /** vde2's markov_resize: new nodes have only their loopback; edges to removed nodes go to the loopback. */
  resize(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > MAX_MARKOV_NODES) throw new WfValueError(`${n} is not a number of nodes in 1..${MAX_MARKOV_NODES}`);
    const old = this.numNodes;
    if (n === old) return;
    const adj: number[][] = [];
    for (let i = 0; i < n; i++) {
      const row = new Array<number>(n).fill(0);
      row[i] = 100;
      for (let j = 1; j < n; j++) {
        const nj = (i + j) % n;
        if (i < old && nj < old) {
          row[nj] = this.adj[i][nj];
          row[i] -= row[nj];
        }
      }
      adj.push(row);
    }
    this.adj = adj;
    if (n > old) for (let i = old; i < n; i++) this.nodes.push(newNode());
    else this.nodes.length = n;
    if (this.current >= n) this.current = 0;
  }

  /** vde2's setedge: the weight of i->j, the loopback of i recomputed. */
  setEdge(i: number, j: number, weight: number): void {
    const n = this.numNodes;
    if (!Number.isInteger(i) || !Number.isInteger(j) || i < 0 || j < 0 || i >= n || j >= n) throw new WfValueError(`edge ${i},${j}: nodes are 0..${n - 1}`);
    if (!Number.isFinite(weight)) throw new WfValueError(`edge ${i},${j}: weight "${weight}" is not a number`);
    this.adj[i][j] = weight;
    let loop = 100;
    for (let k = 1; k < n; k++) loop -= this.adj[i][(i + k) % n];
    this.adj[i][i] = loop;
  }

  /** vde2's markov_step from the current node with a uniform draw u in [0, 1): returns the next node. */
  step(u: number): number {
    const n = this.numNodes;
    const i = this.current;
    let num = u * 100;
    let k = i;
    for (let j = 0; j < n; j++) {
      k = (i + j) % n;
      const val = this.adj[i][k];
      if (num <= val) break;
      num -= val;
    }
    return k;
  }

  /** The native impair stage's settings for a direction of the current node. */
  nativeConfig(dir: number): Record<string, string> {
    const c: Record<string, string> = {};
    const put = (w: WireValue, key: string, unit: string, scale: number): void => {
      if (w.value + w.plus <= 0) return;
      c[`${key}${unit}`] = String(w.value * scale);
      if (w.plus > 0) {
        c[`${key}_jitter${unit}`] = String(((w.alg === 'N' ? w.plus / NORMAL_PLUS_SIGMAS : w.plus) * scale));
        c[`${key}_dist`] = w.alg === 'N' ? 'normal' : 'uniform';
      }
    };
    const g = (p: WfParam): WireValue => this.get(p, dir);
    put(g('loss'), 'loss', '', 1);
    if (c.loss !== undefined) put(g('lostburst'), 'burst', '', 1);
    put(g('delay'), 'delay', '_us', 1000);
    put(g('dup'), 'dup', '', 1);
    if (c.dup !== undefined) c.dup_repeat = '1';
    put(g('band'), 'rate', '_bps', 8);
    put(g('speed'), 'speed', '_bps', 8);
    put(g('chanbufsize'), 'capacity', '_bytes', 1);
    put(g('noise'), 'noise', '', 1);
    const mtu = g('mtu').value - g('mtu').plus;
    if (mtu > 0) c.mtu = String(Math.min(65536, Math.floor(mtu)));
    if (this.nofifo) c.fifo = '0';
    c.limit = String(WF_LIMIT_FRAMES);
    return c;
  }
}

/** A seeded uniform generator (splitmix32) for the Markov chain's steps. */
export function seededUniform(seed: number): () => number {
  let s = ((seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) >>> 0, 0x9e3779b9)) >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32;
  };
}
