/**
 * The netem-like impairment spec (src/ports/impair.ts) that vde_switch's port/impair, vde_plug's
 * --impair and wirefilter's impair command share: every item and its canonical native settings,
 * directions, and garbage, truncated and oversized input refused with a message naming the word.
 * The native stage accepts every configuration the parser produces.
 */
import { describe, expect, it } from 'vitest';
import { createEngine } from '../../src/native/index.js';
import { ImpairSpecError, parseDirected, parseImpairSpec, parseRateBps, parseTimeUs } from '../../src/ports/impair.js';

describe('impairment specs', () => {
  const cases: Array<[string, Record<string, string>]> = [
    ['', {}],
    ['off', {}],
    ['none', {}],
    ['delay 10ms', { delay_us: '10000' }],
    ['delay 1.5ms 200us', { delay_us: '1500', delay_jitter_us: '200' }],
    ['delay 100ms 10ms 25% distribution normal', { delay_us: '100000', delay_jitter_us: '10000', delay_corr: '25', delay_dist: 'normal' }],
    ['delay 1s 100ms distribution paretonormal', { delay_us: '1000000', delay_jitter_us: '100000', delay_dist: 'paretonormal' }],
    ['delay 250usec', { delay_us: '250' }],
    ['loss 1%', { loss: '1' }],
    ['loss random 0.5% 25%', { loss: '0.5', loss_corr: '25' }],
    ['loss burst 10% 4', { loss: '10', burst: '4' }],
    ['loss gemodel 1% 10% 70% 0.1%', { ge_p: '1', ge_r: '10', ge_1h: '70', ge_1k: '0.1' }],
    ['loss gemodel 2%', { ge_p: '2' }],
    ['loss state 1% 30% 5% 40% 0.5%', { s4_p13: '1', s4_p31: '30', s4_p32: '5', s4_p23: '40', s4_p14: '0.5' }],
    ['duplicate 1% 10%', { dup: '1', dup_corr: '10' }],
    ['dup 5', { dup: '5' }],
    ['corrupt 0.1%', { corrupt: '0.1' }],
    ['noise 100', { noise: '100' }],
    ['delay 10ms reorder 25% 50% gap 5', { delay_us: '10000', reorder: '25', reorder_corr: '50', gap: '5' }],
    ['reorder 10% gap 3', { reorder: '10', gap: '3' }],
    ['rate 100mbit', { rate_bps: '100000000' }],
    ['rate 1gbit 24', { rate_bps: '1000000000', overhead_bytes: '24' }],
    ['rate 2mbit -10 48 5', { rate_bps: '2000000', overhead_bytes: '-10', cell_bytes: '48', cell_overhead_bytes: '5' }],
    ['rate 125kbps', { rate_bps: '1000000' }],
    ['rate 1mibit', { rate_bps: String(1024 * 1024) }],
    ['speed 10mbit', { speed_bps: '10000000' }],
    ['slot 800us 1ms packets 32 bytes 64k', { slot_us: '900', slot_jitter_us: '100', slot_packets: '32', slot_bytes: '65536' }],
    ['slot 2ms', { slot_us: '2000' }],
    ['slot distribution normal 1ms 200us packets 4', { slot_dist: 'normal', slot_us: '1000', slot_jitter_us: '200', slot_packets: '4' }],
    ['limit 1000 capacity 64k mtu 1514', { limit: '1000', capacity_bytes: '65536', mtu: '1514' }],
    ['down', { down: '1' }],
    ['up', { down: '0' }],
    ['flap 10s 2s', { flap_up_us: '10000000', flap_down_us: '2000000' }],
    ['nofifo delay 10ms 5ms', { fifo: '0', delay_us: '10000', delay_jitter_us: '5000' }],
    ['seed 42 loss 10%', { seed: '42', loss: '10' }],
    ['delay 10ms,loss 1%', { delay_us: '10000', loss: '1' }],
  ];
  for (const [text, config] of cases) {
    it(`parses "${text}"`, () => {
      const s = parseImpairSpec(text);
      expect(s.config).toEqual(config);
    });
  }

  it('gives specs that the native stage accepts', () => {
    const e = createEngine(3, undefined, { manual: true });
    try {
      for (const [text] of cases) e.setStage(1, 'out', 'impair', parseImpairSpec(text).config);
    } finally {
      e.close();
    }
  });

  it('normalises the text and splits directions', () => {
    expect(parseImpairSpec('  delay   10ms ,  loss 1% ').text).toBe('delay 10ms loss 1%');
    expect(parseImpairSpec('off').text).toBe('');
    expect(parseDirected('LR:delay 10ms')).toMatchObject({ dir: 'LR', spec: { config: { delay_us: '10000' } } });
    expect(parseDirected('rl: loss 2%')).toMatchObject({ dir: 'RL', spec: { config: { loss: '2' } } });
    expect(parseDirected('both:rate 1mbit')).toMatchObject({ dir: 'both' });
    expect(parseDirected('delay 1ms')).toMatchObject({ dir: 'both' });
  });

  const bad: Array<[string, RegExp]> = [
    ['delay', /delay: a value is missing/],
    ['delay 10', /delay: "10" needs a unit \(us, ms, s\)/],
    ['delay 10 parsecs', /delay: "10" needs a unit/],
    ['delay 10light', /unknown time unit "light"/],
    ['delay -5ms', /delay: "-5ms" is negative/],
    ['delay 10ms distribution normal', /needs a jitter/],
    ['delay 10ms 1ms distribution lognormal', /distribution: "lognormal" is not one of/],
    ['loss', /loss: a value is missing/],
    ['loss abc', /loss: "abc" is not a percentage/],
    ['loss 101%', /loss: "101%" is not a percentage/],
    ['loss 5% ecn', /"ecn" .* not supported/],
    ['loss burst 10% 0', /not a number of frames/],
    ['loss 1% loss 2%', /loss is given twice/],
    ['rate 100', /rate: "100" needs a unit/],
    ['rate 0mbit', /must be above zero/],
    ['rate 10furlongs', /unknown rate unit "furlongs"/],
    ['rate 10mbit 1.5', /rate packet overhead: "1.5" is not a whole number/],
    ['mtu 10', /mtu: 10 is not a frame size/],
    ['limit 0', /limit: "0" is not a whole number in 1\.\./],
    ['limit 99999999', /limit: "99999999"/],
    ['slot 2ms 1ms', /below the shortest/],
    ['flap 1s', /flap down time: a value is missing/],
    ['seed -1', /seed: "-1"/],
    ['seed 99999999999999999999', /seed: /],
    ['off delay 1ms', /"off" stands alone/],
    ['frobnicate', /unknown word "frobnicate" \(known: delay, loss/],
    ['gap x', /gap: "x"/],
    ['noise 1k', /noise: .* bits per MiB/],
  ];
  for (const [text, re] of bad) {
    it(`refuses "${text}"`, () => {
      expect(() => parseImpairSpec(text)).toThrow(ImpairSpecError);
      expect(() => parseImpairSpec(text)).toThrow(re);
    });
  }

  it('refuses garbage, truncated and oversized input with an ImpairSpecError only', () => {
    let seed = 1;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const words = ['delay', 'loss', 'rate', '10ms', '5%', 'gap', 'slot', 'packets', 'x', '', '-1', '1e999', 'NaN', '%', 'ms', 'distribution', 'normal', 'state', 'gemodel', '\u0000', 'ü'];
    for (let i = 0; i < 3000; i++) {
      const text = Array.from({ length: rnd(8) }, () => words[rnd(words.length)]).join(rnd(2) ? ' ' : ',');
      try {
        parseImpairSpec(text);
      } catch (e) {
        expect(e).toBeInstanceOf(ImpairSpecError);
      }
    }
    expect(() => parseImpairSpec(`delay ${'9'.repeat(400)}ms`)).toThrow(ImpairSpecError);
    expect(() => parseImpairSpec('delay 1ms '.repeat(1000))).toThrow(/given twice/);
  });

  it('reads units as tc does', () => {
    expect(parseTimeUs('1.5s', 'x')).toBe(1.5e6);
    expect(parseTimeUs('500ns', 'x')).toBe(0.5);
    expect(parseRateBps('1gbit', 'x')).toBe(1e9);
    expect(parseRateBps('1mbps', 'x')).toBe(8e6);
    expect(parseRateBps('1gibit', 'x')).toBe(2 ** 30);
  });
});
