/**
 * A running wirefilter: vde2's model (model.ts) applied to a two-port wire. The left end is the
 * wire's port 1 and the right end port 2 (src/ports/wire.ts), so frames going left to right are
 * impaired on port 2's egress and right to left on port 1's, by the native impair stage. Every
 * change (a console command, an rc file line, a Markov step) rebuilds both directions' settings
 * and replaces the stages, which keep their queued frames, counters and random state. The
 * Markov chain steps every markov-time ms on a timer (as vde2: a step at start and one per
 * period after), drawing from a generator seeded by --seed. Extra netem-style settings
 * (`--impair`, the `impair` command) are layered on the vde2 values; where both set the same
 * thing (say the delay) the extra wins.
 */
import { performance } from 'node:perf_hooks';
import type { NativeEngine } from '../native/index.js';
import { cablePorts, Impairments, type CableDir, type ImpairSpec } from '../ports/impair.js';
import { LR, RL, seededUniform, WireFilterModel } from './model.js';

/** Key prefixes that belong together: an extra setting in one of them replaces vde2's whole group. */
const FAMILIES = [
  ['loss', 'burst', 'ge_', 's4_'],
  ['delay_'],
  ['dup'],
  ['rate_', 'overhead_bytes', 'cell_'],
  ['speed_'],
  ['capacity_'],
  ['noise'],
  ['mtu'],
  ['fifo'],
  ['limit'],
];

/** The vde2 settings of a direction with the extra ones on top. */
export function mergeSettings(base: Record<string, string>, extra: Record<string, string> | undefined): Record<string, string> {
  if (!extra) return base;
  const out = { ...base };
  for (const fam of FAMILIES) {
    const inFam = (k: string): boolean => fam.some((p) => k.startsWith(p));
    if (Object.keys(extra).some(inFam)) for (const k of Object.keys(out)) if (inFam(k)) delete out[k];
  }
  return { ...out, ...extra };
}

/** A node change of the Markov chain. */
export interface NodeChange {
  from: number;
  to: number;
}

/** The filter's state, bound to an engine. */
export class WireFilter {
  readonly model = new WireFilterModel();
  private extras: [ImpairSpec | null, ImpairSpec | null] = [null, null];
  private imp: Impairments | null = null;
  private timer: NodeJS.Timeout | null = null;
  private nextStepMs = 0;
  private rand: () => number;
  /** Called after every node change (markov-debug traces). */
  onNodeChange: ((c: NodeChange) => void) | null = null;

  /** bidirectional: two ends (false: one pipe in, one pipe out, as vde2's monodirectional filter). */
  constructor(
    readonly bidirectional: boolean,
    private seed?: number,
  ) {
    this.rand = seed !== undefined ? seededUniform(seed) : Math.random;
  }

  /** Binds the filter to a wire's engine and applies the settings (call before frames flow). */
  attach(engine: NativeEngine): void {
    this.imp = new Impairments(engine, this.seed);
    this.apply();
    this.markovStart();
  }

  /** Sets the extra settings of a direction (null or an empty spec: none) and applies them; a refused spec changes nothing and throws. */
  setExtra(dir: CableDir, spec: ImpairSpec | null): void {
    const before: [ImpairSpec | null, ImpairSpec | null] = [...this.extras];
    for (const d of dir === 'both' ? [LR, RL] : [dir === 'LR' ? LR : RL]) this.extras[d] = spec && spec.text !== '' ? spec : null;
    try {
      this.apply();
    } catch (e) {
      this.extras = before;
      this.apply();
      throw e;
    }
  }

  /** The extra settings of a direction, as text. */
  extraText(d: number): string {
    return this.extras[d]?.text ?? '';
  }

  /** Pushes the current node's settings to both directions (throws the native stage's message if it refuses one). */
  apply(): void {
    if (!this.imp) return;
    for (const d of [LR, RL]) {
      const config = mergeSettings(this.model.nativeConfig(d), this.extras[d]?.config);
      for (const port of cablePorts(d === LR ? 'LR' : 'RL')) this.imp.set(port, 'out', { text: this.extraText(d), config });
    }
  }

  /** The stage values of each direction (LR, RL), empty before attach. */
  async values(): Promise<[Record<string, number>, Record<string, number>]> {
    const out: [Record<string, number>, Record<string, number>] = [{}, {}];
    for (const r of (await this.imp?.report()) ?? []) if (r.dir === 'out') out[r.port === 2 ? LR : RL] = r.values;
    return out;
  }

  /** vde2's markov_start: with more than one node, one step now and one every markov-time ms. */
  markovStart(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.model.numNodes < 2 || !this.imp) return;
    this.nextStepMs = performance.now();
    this.markovTick();
  }

  /** Moves to a node now (markov-setnode). */
  setNode(n: number): void {
    const from = this.model.current;
    this.model.current = n;
    if (from !== n) this.apply();
  }

  private markovTick(): void {
    this.timer = null;
    const now = performance.now();
    while (now >= this.nextStepMs) {
      this.nextStepMs += this.model.markovTimeMs;
      const from = this.model.current;
      const to = this.model.step(this.rand());
      if (to !== from) {
        this.model.current = to;
        this.apply();
        this.onNodeChange?.({ from, to });
      }
    }
    this.timer = setTimeout(() => this.markovTick(), Math.max(0, this.nextStepMs - performance.now()));
    this.timer.unref();
  }

  /** Stops the Markov timer. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
