/**
 * The native link-emulation stage ("impair", native/src/stage_impair.cc) in the in-process
 * harness with its fake clock: every model on a two-port wire whose port 2 impairs what it sends
 * (and once on the way in). Frames carry a sequence number; the tests read what leaves the wire
 * while the clock moves in small steps and check what the frames experienced (delays, losses,
 * copies, flipped bits, order) against the model, with statistical bounds wide enough that a
 * correct stage fails with a probability below one in a million.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { frame, Harness, type HarnessPort } from '../helpers/harness.js';

const A = '02:00:00:00:00:0a';
const B = '02:00:00:00:00:0b';
const SEQ_OFFSET = 14;
const NS_PER_US = 1000;

let h: Harness | null = null;
afterEach(() => {
  h?.close();
  h = null;
});

interface Wire {
  h: Harness;
  left: HarnessPort;
  right: HarnessPort;
  /** What left the right port while frames were being sent (the socket pair holds only a few). */
  early: Arrival[];
}

/** Frames injected between two reads of the right port (its socket pair and queue are bounded). */
const DRAIN_EVERY_FRAMES = 256;

/** A cable (hub policy, ports 1 and 2) with impair settings on port 2's egress (left to right). */
function wire(cfg: Record<string, string | number> | null, dir: 'in' | 'out' = 'out', maxFrameBytes?: number): Wire {
  h = new Harness(3);
  h.engine.setHub(true);
  const left = h.attach(1, maxFrameBytes);
  const right = h.attach(2, maxFrameBytes);
  if (cfg) h.engine.setStage(dir === 'out' ? 2 : 1, dir, 'impair', cfg);
  return { h, left, right, early: [] };
}

/** A frame with a sequence number after the Ethernet header. */
function seqFrame(seq: number, payloadBytes = 46): Buffer {
  const f = frame(B, A, { payloadBytes, fill: 0x5a });
  f.writeUInt32BE(seq, SEQ_OFFSET);
  return f;
}

/** Injects frames 0..n-1 at the left port's ingress (all at the current time). */
function sendMany(w: Wire, n: number, payloadBytes = 46, first = 0): void {
  for (let i = 0; i < n; i++) {
    w.h.ingress(1, seqFrame(first + i, payloadBytes));
    if (i % DRAIN_EVERY_FRAMES === DRAIN_EVERY_FRAMES - 1) drainEarly(w);
  }
}

/** Reads what already left the right port (time 0 of collect()). */
function drainEarly(w: Wire): void {
  for (const b of w.h.recv(w.right)) w.early.push({ seq: b.readUInt32BE(SEQ_OFFSET), atUs: 0, buf: b });
}

interface Arrival {
  seq: number;
  atUs: number;
  buf: Buffer;
}

/** Moves the clock in steps and records what leaves the right port and when (µs after the start). */
function collect(w: Wire, untilUs: number, stepUs: number): Arrival[] {
  drainEarly(w);
  const out: Arrival[] = w.early.splice(0);
  for (let t = stepUs; t <= untilUs; t += stepUs) {
    w.h.engine.advanceNs(stepUs * NS_PER_US);
    for (const b of w.h.recv(w.right)) out.push({ seq: b.readUInt32BE(SEQ_OFFSET), atUs: t, buf: b });
  }
  return out;
}

/** The impair stage's values on a port direction. */
async function values(w: Wire, port = 2, dir: 'in' | 'out' = 'out'): Promise<Record<string, number>> {
  const s = (await w.h.engine.stages(port)).find((x) => x.name === 'impair' && x.dir === dir);
  if (!s) throw new Error('no impair stage');
  return s.values;
}

/** Binomial bounds: n·p ± k·sqrt(n·p·(1-p)) (k = 5: a correct stage falls outside with p < 6e-7). */
function binomial(n: number, p: number, k = 5): [number, number] {
  const sd = Math.sqrt(n * p * (1 - p));
  return [n * p - k * sd, n * p + k * sd];
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

function stddev(xs: number[]): number {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
}

/** Which of frames 0..n-1 arrived, as a boolean array. */
function arrivedSet(arr: Arrival[], n: number): boolean[] {
  const got = new Array<boolean>(n).fill(false);
  for (const a of arr) got[a.seq] = true;
  return got;
}

describe('impair stage: delay and jitter', () => {
  it('passes frames untouched and copies nothing when nothing is configured', async () => {
    const w = wire({});
    sendMany(w, 5);
    const got = w.h.recv(w.right);
    expect(got.map((b) => b.readUInt32BE(SEQ_OFFSET))).toEqual([0, 1, 2, 3, 4]);
    const v = await values(w);
    expect(v).toMatchObject({ frames: 5, passed: 5, held: 0, released: 0 });
  });

  it('delays frames by exactly the configured time on the µs clock', () => {
    const w = wire({ delay_us: 1500 });
    sendMany(w, 3);
    expect(w.h.recv(w.right)).toHaveLength(0);
    w.h.engine.advanceNs(1499 * NS_PER_US);
    expect(w.h.recv(w.right)).toHaveLength(0);
    w.h.engine.advanceNs(1 * NS_PER_US);
    expect(w.h.recv(w.right).map((b) => b.readUInt32BE(SEQ_OFFSET))).toEqual([0, 1, 2]);
    // and a 200 µs delay, the smallest
    h!.engine.setStage(2, 'out', 'impair', { delay_us: 200 });
    sendMany(w, 1, 46, 7);
    w.h.engine.advanceNs(199_999);
    expect(w.h.recv(w.right)).toHaveLength(0);
    w.h.engine.advanceNs(1);
    expect(w.h.recv(w.right)).toHaveLength(1);
  });

  it('keeps the order with jitter by default and reorders with fifo=0', async () => {
    let w = wire({ delay_us: 10_000, delay_jitter_us: 5000, seed: 1 });
    sendMany(w, 200);
    let arr = collect(w, 20_000, 100);
    expect(arr.map((a) => a.seq)).toEqual([...Array(200).keys()]);
    h!.close();
    w = wire({ delay_us: 10_000, delay_jitter_us: 5000, seed: 1, fifo: 0 });
    sendMany(w, 200);
    arr = collect(w, 20_000, 100);
    expect(arr).toHaveLength(200);
    expect(arr.map((a) => a.seq)).not.toEqual([...Array(200).keys()]);
    expect((await values(w)).reordered).toBeGreaterThan(0);
  });

  const N = 2000;
  const cases: Array<{ dist: string; check: (d: number[]) => void }> = [
    {
      dist: 'uniform',
      check: (d) => {
        expect(Math.min(...d)).toBeGreaterThanOrEqual(8000);
        expect(Math.max(...d)).toBeLessThanOrEqual(12_000);
        expect(Math.abs(mean(d) - 10_000)).toBeLessThan(150); // sd 1155/sqrt(2000) = 26
        expect(Math.abs(stddev(d) - 2000 / Math.sqrt(3))).toBeLessThan(120);
      },
    },
    {
      dist: 'normal',
      check: (d) => {
        expect(Math.abs(mean(d) - 10_000)).toBeLessThan(250);
        expect(Math.abs(stddev(d) - 2000)).toBeLessThan(250);
        const within = d.filter((x) => Math.abs(x - 10_000) <= 2000).length / d.length;
        expect(within).toBeGreaterThan(0.6); // 68 % within one sigma
        expect(within).toBeLessThan(0.76);
      },
    },
    {
      dist: 'pareto',
      check: (d) => {
        // netem's table: ((1-u)^(-1/3) - 1.5)·4/3, at least -2/3 sigma, long right tail
        expect(Math.min(...d)).toBeGreaterThanOrEqual(10_000 - (2 / 3) * 2000 - 100);
        const m = mean(d);
        expect(Math.abs(m - 10_000)).toBeLessThan(300);
        expect(Math.max(...d) - 10_000).toBeGreaterThan(3 * (10_000 - Math.min(...d)));
      },
    },
    {
      dist: 'paretonormal',
      check: (d) => {
        expect(Math.abs(mean(d) - 10_000)).toBeLessThan(300);
        expect(stddev(d)).toBeGreaterThan(1000);
        expect(stddev(d)).toBeLessThan(3000);
      },
    },
  ];
  for (const c of cases) {
    it(`draws delays from the ${c.dist} distribution`, () => {
      const w = wire({ delay_us: 10_000, delay_jitter_us: 2000, delay_dist: c.dist, fifo: 0, seed: 42 });
      sendMany(w, N);
      const arr = collect(w, 25_000, 50);
      expect(arr).toHaveLength(N);
      c.check(arr.map((a) => a.atUs));
    });
  }

  it('correlates successive delays with delay_corr', () => {
    const diffs = (corr: number): number => {
      const w = wire({ delay_us: 10_000, delay_jitter_us: 2000, delay_corr: corr, fifo: 0, seed: 7 });
      sendMany(w, 500);
      const byseq = collect(w, 13_000, 50).sort((a, b) => a.seq - b.seq).map((a) => a.atUs);
      h!.close();
      h = null;
      return mean(byseq.slice(1).map((x, i) => Math.abs(x - byseq[i])));
    };
    expect(diffs(90)).toBeLessThan(diffs(0) / 2);
  });
});

describe('impair stage: loss models', () => {
  it('loses frames with Bernoulli probability within binomial bounds, counted as loss', async () => {
    const n = 20_000;
    const w = wire({ loss: 10, seed: 3 });
    sendMany(w, n);
    const got = collect(w, 0, 1).length;
    const [lo, hi] = binomial(n, 0.9);
    expect(got).toBeGreaterThan(lo);
    expect(got).toBeLessThan(hi);
    expect((await values(w)).lost).toBe(n - got);
    expect(w.h.counters(2).drops.loss).toBe(n - got);
  });

  it('loses everything at 100 % and nothing at 0 %', () => {
    let w = wire({ loss: 100 });
    sendMany(w, 100);
    expect(w.h.recv(w.right)).toHaveLength(0);
    h!.close();
    w = wire({ loss: 0 });
    sendMany(w, 100);
    expect(w.h.recv(w.right)).toHaveLength(100);
  });

  /** Mean length of runs of lost frames. */
  function meanBurst(got: boolean[]): number {
    const runs: number[] = [];
    let run = 0;
    for (const g of got) {
      if (!g) run++;
      else if (run) {
        runs.push(run);
        run = 0;
      }
    }
    if (run) runs.push(run);
    return mean(runs);
  }

  it("follows wirefilter's Gilbert model: the loss rate converges to loss, bursts have the mean length lostburst", () => {
    const n = 50_000;
    const w = wire({ loss: 10, burst: 5, seed: 11 });
    sendMany(w, n);
    const got = arrivedSet(collect(w, 0, 1), n);
    const lossRate = got.filter((g) => !g).length / n;
    expect(lossRate).toBeGreaterThan(0.08);
    expect(lossRate).toBeLessThan(0.12);
    expect(meanBurst(got)).toBeGreaterThan(4.3);
    expect(meanBurst(got)).toBeLessThan(5.7);
  });

  it('follows the Gilbert-Elliott model (p, r, 1-h, 1-k)', () => {
    const n = 50_000;
    const [p, r, lossBad, lossGood] = [0.05, 0.3, 0.8, 0.01];
    const w = wire({ ge_p: p * 100, ge_r: r * 100, ge_1h: lossBad * 100, ge_1k: lossGood * 100, seed: 5 });
    sendMany(w, n);
    const got = arrivedSet(collect(w, 0, 1), n);
    const bad = p / (p + r);
    const expected = bad * lossBad + (1 - bad) * lossGood;
    const lossRate = got.filter((g) => !g).length / n;
    expect(Math.abs(lossRate - expected)).toBeLessThan(0.02);
  });

  it('follows the 4-state model (p13, p31, p32, p23, p14) with the stationary loss of its chain', () => {
    const n = 50_000;
    const pr = { p13: 0.05, p31: 0.5, p32: 0.3, p23: 0.4, p14: 0.02 };
    const w = wire({ s4_p13: pr.p13 * 100, s4_p31: pr.p31 * 100, s4_p32: pr.p32 * 100, s4_p23: pr.p23 * 100, s4_p14: pr.p14 * 100, seed: 9 });
    sendMany(w, n);
    const got = arrivedSet(collect(w, 0, 1), n);
    // stationary distribution of netem's chain by iteration (states 1..4; 3 and 4 lose)
    const P = [
      [1 - pr.p13 - pr.p14, 0, pr.p13, pr.p14],
      [0, 1 - pr.p23, pr.p23, 0],
      [pr.p31, pr.p32, 1 - pr.p31 - pr.p32, 0],
      [1, 0, 0, 0],
    ];
    let pi = [1, 0, 0, 0];
    for (let k = 0; k < 2000; k++) pi = [0, 1, 2, 3].map((j) => pi.reduce((s, x, i) => s + x * P[i][j], 0));
    const expected = pi[2] + pi[3];
    const lossRate = got.filter((g) => !g).length / n;
    expect(Math.abs(lossRate - expected)).toBeLessThan(0.025);
    expect(lossRate).toBeGreaterThan(0.05);
  });

  it('correlates losses with loss_corr (longer runs at the same rate)', () => {
    const n = 20_000;
    const runs = (corr: number): { rate: number; burst: number } => {
      const w = wire({ loss: 20, loss_corr: corr, seed: 13 });
      sendMany(w, n);
      const got = arrivedSet(collect(w, 0, 1), n);
      h!.close();
      h = null;
      return { rate: got.filter((g) => !g).length / n, burst: meanBurst(got) };
    };
    // the rate stays 20 %; bursts last 1/(1 - (p + rho(1-p))) = 6.25 frames instead of 1.25
    const plain = runs(0);
    const corr = runs(80);
    expect(Math.abs(corr.rate - 0.2)).toBeLessThan(0.03);
    expect(Math.abs(plain.burst - 1.25)).toBeLessThan(0.1);
    expect(Math.abs(corr.burst - 6.25)).toBeLessThan(0.8);
  });

  it('refuses two loss models at once and incomplete ones, naming the setting', () => {
    h = new Harness(3);
    expect(() => h!.engine.setStage(2, 'out', 'impair', { loss: 5, ge_p: 1 })).toThrow(/one loss model/);
    expect(() => h!.engine.setStage(2, 'out', 'impair', { ge_r: 5 })).toThrow(/needs ge_p/);
    expect(() => h!.engine.setStage(2, 'out', 'impair', { s4_p31: 5 })).toThrow(/needs s4_p13/);
    expect(() => h!.engine.setStage(2, 'out', 'impair', { s4_p13: 60, s4_p14: 60 })).toThrow(/must not exceed 100/);
  });
});

describe('impair stage: duplication, corruption, reordering', () => {
  it("duplicates netem's way (one copy) and wirefilter's (another copy while a draw succeeds)", async () => {
    const n = 10_000;
    let w = wire({ dup: 20, seed: 17 });
    sendMany(w, n);
    let arr = collect(w, 0, 1);
    let extra = arr.length - n;
    let [lo, hi] = binomial(n, 0.2);
    expect(extra).toBeGreaterThan(lo);
    expect(extra).toBeLessThan(hi);
    expect((await values(w)).duplicated).toBe(extra);
    expect(new Set(arr.map((a) => a.seq)).size).toBe(n);
    h!.close();
    w = wire({ dup: 50, dup_repeat: 1, seed: 17 });
    sendMany(w, n);
    arr = collect(w, 1, 1);
    extra = arr.length - n;
    // geometric: mean copies p/(1-p) = 1 per frame, variance p/(1-p)^2 = 2
    [lo, hi] = [n - 5 * Math.sqrt(2 * n), n + 5 * Math.sqrt(2 * n)];
    expect(extra).toBeGreaterThan(lo);
    expect(extra).toBeLessThan(hi);
    const counts = new Map<number, number>();
    for (const a of arr) counts.set(a.seq, (counts.get(a.seq) ?? 0) + 1);
    expect(Math.max(...counts.values())).toBeGreaterThan(4);
  });

  /** Number of differing bits between two buffers. */
  function bitDiff(a: Buffer, b: Buffer): number {
    let n = 0;
    for (let i = 0; i < a.length; i++) for (let x = a[i] ^ b[i]; x; x &= x - 1) n++;
    return n;
  }

  it('corrupts one random bit of a share of the frames (netem corrupt)', async () => {
    const n = 10_000;
    const w = wire({ corrupt: 10, seed: 19 });
    for (let i = 0; i < n; i++) {
      w.h.ingress(1, seqFrame(i, 200));
      if (i % DRAIN_EVERY_FRAMES === 0) drainEarly(w);
    }
    const arr = collect(w, 1, 1);
    expect(arr).toHaveLength(n);
    let bad = 0;
    for (const a of arr) {
      // the sequence number may be the flipped field: compare with every plausible original
      const orig = seqFrame(a.seq, 200);
      const d = bitDiff(a.buf, orig);
      if (d > 1) expect(a.buf.readUInt32BE(SEQ_OFFSET)).not.toBe(a.seq);
      if (d === 1) bad++;
    }
    const corrupted = (await values(w)).corrupted;
    const [lo, hi] = binomial(n, 0.1);
    expect(corrupted).toBeGreaterThan(lo);
    expect(corrupted).toBeLessThan(hi);
    expect(bad).toBeLessThanOrEqual(corrupted);
    expect(bad).toBeGreaterThan(corrupted * 0.95); // flips inside the sequence number look like another frame
  });

  it("flips wirefilter's noise bits per MiB", async () => {
    // 100 bits per MiB on 1500-byte frames: a Poisson number of bits with mean 0.143 per frame
    const n = 4000;
    const perMiB = 100;
    const w = wire({ noise: perMiB, seed: 23 });
    for (let i = 0; i < n; i++) {
      w.h.ingress(1, seqFrame(i, 1486));
      if (i % DRAIN_EVERY_FRAMES === 0) drainEarly(w);
    }
    const arr = collect(w, 1, 1);
    const p = 1 - Math.exp(-(1500 * perMiB) / 1048576);
    const corrupted = (await values(w)).corrupted;
    const [lo, hi] = binomial(n, p);
    expect(arr).toHaveLength(n);
    expect(corrupted).toBeGreaterThan(lo);
    expect(corrupted).toBeLessThan(hi);
  });

  it('sends one frame in `gap` ahead of the delayed queue with the reorder probability (netem)', async () => {
    const w = wire({ delay_us: 10_000, reorder: 100, gap: 5 });
    sendMany(w, 20);
    const arr = collect(w, 10_000, 100);
    // with 100 %: frames 4, 9, 14, 19 (every 5th, after 4 delayed ones) leave at once
    expect(arr.filter((a) => a.atUs === 0).map((a) => a.seq)).toEqual([4, 9, 14, 19]);
    expect(arr.filter((a) => a.atUs === 10_000)).toHaveLength(16);
    expect((await values(w)).reordered).toBe(4);
    h!.close();
    const w2 = wire({ delay_us: 10_000, reorder: 25, seed: 29 });
    sendMany(w2, 4000);
    const ahead = collect(w2, 10_000, 10_000).filter((a) => a.atUs === 0).length;
    const [lo, hi] = binomial(4000, 0.25);
    expect(ahead).toBeGreaterThan(lo);
    expect(ahead).toBeLessThan(hi);
  });
});

describe('impair stage: rate, slotting, queue limits, MTU, link state', () => {
  it('serialises at the configured rate with per-packet overhead', () => {
    // 1 Mbit/s, 1000-byte frames: 8 ms each
    let w = wire({ rate_bps: 1_000_000 });
    sendMany(w, 10, 986);
    let arr = collect(w, 100_000, 500);
    expect(arr.map((a) => a.atUs)).toEqual([8000, 16000, 24000, 32000, 40000, 48000, 56000, 64000, 72000, 80000]);
    h!.close();
    // +24 bytes per packet (preamble, FCS, gap): 1024 bytes = 8.192 ms
    w = wire({ rate_bps: 1_000_000, overhead_bytes: 24 });
    sendMany(w, 10, 986);
    arr = collect(w, 100_000, 4);
    expect(arr.map((a) => a.atUs)).toEqual([...Array(10).keys()].map((i) => 8192 * (i + 1)));
    h!.close();
    // ATM-like cells: 1024 bytes in 48-byte cells of 53 -> 22 cells, 1166 bytes = 9.328 ms
    w = wire({ rate_bps: 1_000_000, overhead_bytes: 24, cell_bytes: 48, cell_overhead_bytes: 5 });
    sendMany(w, 2, 986);
    arr = collect(w, 20_000, 4);
    expect(arr.map((a) => a.atUs)).toEqual([9328, 18656]);
  });

  it("serialises with wirefilter's interface speed too, and rate and delay add up", () => {
    const w = wire({ speed_bps: 8_000_000, delay_us: 5000 });
    sendMany(w, 4, 986); // 1 ms per frame at 1 MB/s
    const arr = collect(w, 20_000, 100);
    expect(arr.map((a) => a.atUs)).toEqual([6000, 7000, 8000, 9000]);
  });

  it('releases frames in slots of at most N packets (netem slot)', () => {
    const w = wire({ slot_us: 1000, slot_packets: 4 });
    sendMany(w, 10);
    const arr = collect(w, 5000, 100);
    const groups = new Map<number, number>();
    for (const a of arr) groups.set(a.atUs, (groups.get(a.atUs) ?? 0) + 1);
    expect([...groups.entries()]).toEqual([
      [1000, 4],
      [2000, 4],
      [3000, 2],
    ]);
  });

  it('drops above the packet limit and the channel capacity, counted as capacity', async () => {
    let w = wire({ delay_us: 10_000, limit: 5 });
    sendMany(w, 10);
    expect(collect(w, 10_000, 10_000)).toHaveLength(5);
    expect(w.h.counters(2).drops.capacity).toBe(5);
    expect((await values(w)).overCapacity).toBe(5);
    h!.close();
    // wirefilter's chanbufsize: bytes of frames waiting, 3 frames of 1000 bytes fit in 3500
    w = wire({ delay_us: 10_000, capacity_bytes: 3500 });
    sendMany(w, 10, 986);
    expect(collect(w, 10_000, 10_000)).toHaveLength(3);
    expect(w.h.counters(2).drops.capacity).toBe(7);
  });

  it('drops frames longer than the MTU, counted as mtu', async () => {
    const w = wire({ mtu: 1000 });
    w.h.ingress(1, seqFrame(0, 986)); // 1000 bytes: passes
    w.h.ingress(1, seqFrame(1, 987));
    expect(w.h.recv(w.right).map((b) => b.readUInt32BE(SEQ_OFFSET))).toEqual([0]);
    expect(w.h.counters(2).drops.mtu).toBe(1);
    expect((await values(w)).overMtu).toBe(1);
  });

  it('drops everything while the link is down, and follows a flap schedule', async () => {
    let w = wire({ down: 1 });
    sendMany(w, 3);
    expect(w.h.recv(w.right)).toHaveLength(0);
    expect(w.h.counters(2).drops.linkDown).toBe(3);
    expect((await values(w)).up).toBe(0);
    h!.engine.setStage(2, 'out', 'impair', { down: 0 });
    sendMany(w, 3);
    expect(w.h.recv(w.right)).toHaveLength(3);
    h!.close();
    // up 10 ms, down 5 ms, from the first frame on; one frame per ms for 60 ms
    w = wire({ flap_up_us: 10_000, flap_down_us: 5000 });
    const got: number[] = [];
    for (let ms = 0; ms < 60; ms++) {
      w.h.ingress(1, seqFrame(ms));
      for (const b of w.h.recv(w.right)) got.push(b.readUInt32BE(SEQ_OFFSET));
      w.h.engine.advanceNs(1_000_000);
    }
    const expected = [...Array(60).keys()].filter((ms) => ms % 15 < 10);
    expect(got).toEqual(expected);
    expect(w.h.counters(2).drops.linkDown).toBe(60 - expected.length);
  });
});

describe('impair stage: seeds, run-time changes, sizes, direction', () => {
  it('loses, duplicates and delays the same frames for the same seed, other frames for another', () => {
    const run = (seed: number): string => {
      const w = wire({ loss: 30, dup: 10, corrupt: 5, delay_us: 1000, delay_jitter_us: 500, fifo: 0, seed });
      sendMany(w, 300);
      const arr = collect(w, 2000, 10);
      h!.close();
      h = null;
      return arr.map((a) => `${a.seq}@${a.atUs}:${a.buf.toString('hex').length}:${a.buf.readUInt8(20)}`).join(',');
    };
    expect(run(1234)).toBe(run(1234));
    expect(run(1234)).not.toBe(run(1235));
  });

  it('gives two directions with one seed different draws through stream=', () => {
    const run = (stream: number): boolean[] => {
      const w = wire({ loss: 50, seed: 99, stream });
      sendMany(w, 200);
      const got = arrivedSet(collect(w, 0, 1), 200);
      h!.close();
      h = null;
      return got;
    };
    expect(run(0)).toEqual(run(0));
    expect(run(0)).not.toEqual(run(1));
  });

  it('keeps held frames, their order and the counters when the settings change at run time', async () => {
    const w = wire({ delay_us: 100_000, seed: 5 });
    sendMany(w, 10);
    w.h.engine.advanceNs(50_000 * NS_PER_US);
    w.h.engine.setStage(2, 'out', 'impair', { delay_us: 0, seed: 5 });
    sendMany(w, 5, 46, 10);
    // the new frames wait behind the old ones (no overtaking), nothing is lost
    expect(w.h.recv(w.right)).toHaveLength(0);
    const v = await values(w);
    expect(v.held).toBe(15);
    expect(v.frames).toBe(15);
    const arr = collect(w, 60_000, 1000);
    expect(arr.map((a) => a.seq)).toEqual([...Array(15).keys()]);
    expect(arr.every((a) => a.atUs === 50_000)).toBe(true);
    // removing the delay entirely: frames pass at once again
    sendMany(w, 2, 46, 15);
    expect(w.h.recv(w.right)).toHaveLength(2);
    expect((await values(w)).frames).toBe(17);
  });

  it('carries jumbo and 64 KiB frames intact through the delay queue', () => {
    const w = wire({ delay_us: 1000 }, 'out', 65536);
    const big = seqFrame(1, 65536 - 14);
    const jumbo = seqFrame(2, 9000);
    w.h.ingress(1, big);
    w.h.ingress(1, jumbo);
    const arr = collect(w, 1000, 1000);
    expect(arr.map((a) => a.buf.length)).toEqual([65536, 9014]);
    expect(arr[0].buf.equals(big)).toBe(true);
    expect(arr[1].buf.equals(jumbo)).toBe(true);
  });

  it('impairs what a port receives when installed on the way in', async () => {
    const w = wire({ delay_us: 2000, loss: 0 }, 'in');
    sendMany(w, 3);
    expect(w.h.recv(w.right)).toHaveLength(0);
    expect(collect(w, 2000, 2000).map((a) => a.seq)).toEqual([0, 1, 2]);
    expect((await values(w, 1, 'in')).released).toBe(3);
  });

  it('frees held frames when removed, and reports its settings', async () => {
    const w = wire({ delay_us: 100_000, seed: 77, limit: 123 });
    sendMany(w, 4);
    const v = await values(w);
    expect(v).toMatchObject({ seed: 77, limit: 123, held: 4 });
    expect(w.h.engine.stats().queueUsedBytes).toBeGreaterThan(0);
    w.h.engine.setStage(2, 'out', 'impair', null);
    expect(w.h.engine.stats().queueUsedBytes).toBe(0);
    expect(collect(w, 200_000, 100_000)).toHaveLength(0);
  });

  it('refuses bad settings with the name of the setting', () => {
    h = new Harness(3);
    const bad: Array<[Record<string, string | number>, RegExp]> = [
      [{ delay_us: -1 }, /delay_us: "-1" is not a number in 0\.\.3600000000/],
      [{ delay_us: 'abc' }, /delay_us: "abc"/],
      [{ loss: 101 }, /loss: "101"/],
      [{ delay_dist: 'weird' }, /delay_dist: "weird" is not a distribution \(uniform, normal, pareto, paretonormal\)/],
      [{ loss_dist: 'pareto' }, /loss_dist: "pareto" is not a distribution \(uniform, normal\)/],
      [{ limit: 0 }, /limit: "0"/],
      [{ limit: 1.5 }, /limit: "1.5" is not a whole number/],
      [{ seed: 2 ** 60 }, /seed: /],
      [{ down: 'yes' }, /down: "yes" is not 0 or 1/],
      [{ flap_up_us: 10 }, /flap schedule needs both/],
      [{ bogus: 1 }, /unknown setting "bogus"/],
      [{ rate_bps: 'Infinity' }, /rate_bps: "Infinity"/],
    ];
    for (const [cfg, re] of bad) expect(() => h!.engine.setStage(2, 'out', 'impair', cfg)).toThrow(re);
  });
});
