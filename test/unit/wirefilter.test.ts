/**
 * wirefilter without processes: vde2's value syntax and %g layouts (checked against the C
 * library's printf), the Markov chain's arithmetic as vde2 does it, the translation into the
 * native stage's settings, every command-line option (and garbage refused with the option's
 * name), and every console command on a filter bound to an in-process engine, with vde2's exact
 * output layouts.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createEngine, type NativeEngine } from '../../src/native/index.js';
import { ConsoleServer, type Session } from '../../src/protocol/console.js';
import { createWfConsole, WF_HELP, WF_LOGOUT } from '../../src/wirefilter/console.js';
import { mergeSettings, WireFilter } from '../../src/wirefilter/filter.js';
import { buildFilter, parseWfArgs, splitPlugPair } from '../../src/wirefilter/main.js';
import { fmtG, LR, parseWireValue, RL, seededUniform, WireFilterModel } from '../../src/wirefilter/model.js';

describe('vde2 values', () => {
  it('prints numbers as C printf %g does', () => {
    const xs = [0, 1, 10, 2.5, 0.5, 100, 125000, 999999, 1e6, 1234567, 0.0001, 0.00001, 1 / 3, 2 / 3, 123456789, 1.5e-7, 65536, 3.14159265, 99.99995, 1e21, 0.000123456];
    const want = execFileSync('sh', ['-c', `printf '%g\\n' ${xs.map((x) => x.toPrecision(17)).join(' ')}`], { encoding: 'utf8' }).trim().split('\n');
    expect(xs.map(fmtG)).toEqual(want);
  });

  it('parses [LR|RL]N[+J][K|M|G][U|N][[node]]', () => {
    expect(parseWireValue('loss', '10', 1)).toEqual({ node: 0, dirs: [LR, RL], w: { value: 10, plus: 0, alg: 'U' } });
    expect(parseWireValue('loss', 'LR20.5', 1)).toEqual({ node: 0, dirs: [LR], w: { value: 20.5, plus: 0, alg: 'U' } });
    expect(parseWireValue('delay', 'RL1000+500N', 1)).toEqual({ node: 0, dirs: [RL], w: { value: 1000, plus: 500, alg: 'N' } });
    expect(parseWireValue('band', '128+64KN', 1)).toEqual({ node: 0, dirs: [LR, RL], w: { value: 128 * 1024, plus: 64 * 1024, alg: 'N' } });
    expect(parseWireValue('band', '1M', 1).w.value).toBe(1 << 20);
    expect(parseWireValue('band', '1g', 1).w.value).toBe(1 << 30);
    expect(parseWireValue('delay', '100+10N[4]', 5)).toEqual({ node: 4, dirs: [LR, RL], w: { value: 100, plus: 10, alg: 'N' } });
    expect(parseWireValue('loss', '10%', 1).w.value).toBe(10);
    expect(parseWireValue('delay', '5u', 1).w.alg).toBe('U');
    expect(parseWireValue('delay', '0.2', 1).w.value).toBe(0.2);
  });

  it('refuses what vde2 silently ignores, naming the value', () => {
    expect(() => parseWireValue('delay', 'abc', 1)).toThrow(/"abc" is not a value of the form/);
    expect(() => parseWireValue('delay', '', 1)).toThrow(/is empty/);
    expect(() => parseWireValue('delay', '10[3]', 2)).toThrow(/names node 3, but there are 2/);
    expect(() => parseWireValue('delay', '10[x]', 2)).toThrow(/node index that is not a number/);
    expect(() => parseWireValue('loss', '150', 1)).toThrow(/out of range \(at most 100\)/);
    expect(() => parseWireValue('delay', '-5', 1)).toThrow(/not a value/);
    expect(() => parseWireValue('delay', '10%', 1)).toThrow(/not a percentage/);
    expect(() => parseWireValue('delay', 'XY10', 1)).toThrow(/not a value/);
    expect(() => parseWireValue('delay', '1e999', 1)).toThrow(/out of range/);
  });

  it("resizes, weighs edges and steps the Markov chain as vde2's markov_* functions", () => {
    const m = new WireFilterModel();
    m.resize(3);
    expect(m.adj).toEqual([[100, 0, 0], [0, 100, 0], [0, 0, 100]]);
    m.setEdge(0, 1, 30);
    m.setEdge(0, 2, 20);
    expect(m.adj[0]).toEqual([50, 30, 20]);
    // markov_step walks from the current node over ROT(i, j): 0, 1, 2
    expect(m.step(0.49)).toBe(0);
    expect(m.step(0.51)).toBe(1);
    expect(m.step(0.81)).toBe(2);
    m.current = 1;
    m.setEdge(1, 0, 100);
    expect(m.adj[1][1]).toBe(0);
    expect(m.step(0)).toBe(1); // a draw of exactly 0 is <= the loopback's weight 0: vde2 stays
    expect(m.step(0.5)).toBe(0);
    // shrinking: edges to removed nodes go back to the loopback; the current node falls back to 0
    m.current = 2;
    m.resize(2);
    expect(m.adj).toEqual([[70, 30], [100, 0]]);
    expect(m.current).toBe(0);
    expect(() => m.setEdge(0, 5, 1)).toThrow(/nodes are 0..1/);
    expect(() => m.resize(0)).toThrow(/1\.\.1024/);
  });

  it('turns vde2 values into native settings (ms -> µs, bytes/s -> bit/s, N spread = 3 sigma)', () => {
    const m = new WireFilterModel();
    m.set('loss', 'LR5+3N');
    m.set('lostburst', '4');
    m.set('delay', 'LR10+2');
    m.set('dup', '1');
    m.set('band', '125000');
    m.set('speed', 'RL1M');
    m.set('chanbufsize', '30000');
    m.set('noise', '10');
    m.set('mtu', '1500+100');
    m.nofifo = true;
    expect(m.nativeConfig(LR)).toEqual({
      loss: '5', loss_jitter: '1', loss_dist: 'normal', burst: '4', delay_us: '10000', delay_jitter_us: '2000', delay_dist: 'uniform', dup: '1', dup_repeat: '1',
      rate_bps: '1000000', capacity_bytes: '30000', noise: '10', mtu: '1400', fifo: '0', limit: '65536',
    });
    expect(m.nativeConfig(RL)).toEqual({ dup: '1', dup_repeat: '1', rate_bps: '1000000', speed_bps: String(8 * 2 ** 20), capacity_bytes: '30000', noise: '10', mtu: '1400', fifo: '0', limit: '65536' });
  });

  it('lets extra netem-style settings replace a whole group of vde2 settings', () => {
    const base = { loss: '5', burst: '4', delay_us: '1000', rate_bps: '8000' };
    expect(mergeSettings(base, { ge_p: '1' })).toEqual({ delay_us: '1000', rate_bps: '8000', ge_p: '1' });
    expect(mergeSettings(base, { delay_us: '5', reorder: '10', gap: '2' })).toEqual({ loss: '5', burst: '4', delay_us: '5', rate_bps: '8000', reorder: '10', gap: '2' });
    expect(mergeSettings(base, undefined)).toBe(base);
  });

  it('draws the same Markov steps for the same seed', () => {
    const a = seededUniform(7);
    const b = seededUniform(7);
    const c = seededUniform(8);
    const xa = Array.from({ length: 20 }, a);
    expect(xa).toEqual(Array.from({ length: 20 }, b));
    expect(xa).not.toEqual(Array.from({ length: 20 }, c));
    expect(xa.every((x) => x >= 0 && x < 1)).toBe(true);
  });
});

describe('wirefilter command line', () => {
  it('reads every option, vde2 style (getopt_long_only, repeated values applied in order)', async () => {
    const w = await parseWfArgs([
      '-l', 'LR5', '-l', 'RL10', '-L', '3', '-d', '10+2N', '-D', '1', '-b', '1M', '-s', '2M', '-c', '30000', '--capacity', 'LR40000', '-n', '5',
      '-m', '1500', '-N', '-M', '/tmp/x.mgmt', '--mgmtmode', '0660', '-f', '/tmp/rc', '--pidfile', '/tmp/p', '--logfile', '/tmp/l', '--seed', '42',
      '--impair', 'LR:reorder 10% gap 2', '--nostdin', '-v', '/tmp/a:/tmp/b',
    ]);
    expect(w.values.map((v) => `${v.param}=${v.text}`)).toEqual([
      'loss=LR5', 'loss=RL10', 'lostburst=3', 'delay=10+2N', 'dup=1', 'band=1M', 'speed=2M', 'chanbufsize=30000', 'chanbufsize=LR40000', 'noise=5', 'mtu=1500',
    ]);
    expect(w.a).toMatchObject({ nofifo: true, mgmt: '/tmp/x.mgmt', rcfile: '/tmp/rc', pidfile: '/tmp/p', logfile: '/tmp/l', nostdin: true });
    expect(w.mgmtMode).toBe(0o660);
    expect(w.seed).toBe(42);
    expect(w.impairs[0]).toMatchObject({ dir: 'LR', spec: { config: { reorder: '10', gap: '2' } } });
    expect(w.mode).toEqual({ kind: 'locators', left: { kind: 'vde', path: '/tmp/a' }, right: { kind: 'vde', path: '/tmp/b' } });
    const f = buildFilter(w, true);
    expect(f.model.get('loss', LR).value).toBe(5);
    expect(f.model.get('loss', RL).value).toBe(10);
    expect(f.model.get('chanbufsize', LR).value).toBe(40000);
    expect(f.model.get('chanbufsize', RL).value).toBe(30000);
    expect(f.model.nofifo).toBe(true);
    // single-dash long options and prefixes, as vde2's getopt_long_only
    const w2 = await parseWfArgs(['-loss', '7', '-delay=3', '-daemon', '-pidf', '/tmp/q', 'vde:///tmp/a', 'tap://t0']);
    expect(w2.values.map((v) => v.param)).toEqual(['loss', 'delay']);
    expect(w2.a).toMatchObject({ daemon: true, pidfile: '/tmp/q' });
    expect(w2.mode).toMatchObject({ kind: 'locators', right: { kind: 'tap' } });
    expect((await parseWfArgs([])).mode).toEqual({ kind: 'pipe' });
    expect((await parseWfArgs(['-v', '-:-'])).mode).toEqual({ kind: 'pipe' });
    expect((await parseWfArgs(['-v', '-:/tmp/b'])).mode).toMatchObject({ left: { kind: 'stdio' }, right: { kind: 'vde' } });
  });

  it('splits -v at the first colon that does not start a scheme', () => {
    expect(splitPlugPair('/tmp/a:/tmp/b')).toEqual(['/tmp/a', '/tmp/b']);
    expect(splitPlugPair('vde:///tmp/a:vde:///tmp/b')).toEqual(['vde:///tmp/a', 'vde:///tmp/b']);
    expect(() => splitPlugPair('/tmp/a')).toThrow(/--vde-plug: "\/tmp\/a" is not SOCK1:SOCK2/);
  });

  const bad: Array<[string[], RegExp]> = [
    [['-l', 'abc'], /--loss: "abc" is not a value/],
    [['--delay', '10[2]'], /--delay: "10\[2\]" names node 2/],
    [['-b', '1X'], /--band: "1X"/],
    [['-m', '-5'], /--mtu: "-5"/],
    [['-l'], /option "-l" needs a value/],
    [['--seed', 'x'], /--seed: "x" is not a whole number/],
    [['--mgmtmode', '999'], /--mgmtmode: "999" is not an octal mode/],
    [['--impair', 'LR:delay 10'], /--impair: delay: "10" needs a unit/],
    [['--blink', '/tmp/b'], /--blink: not supported/],
    [['--blinkid', 'x'], /--blinkid: not supported/],
    [['-v', 'nocolon'], /--vde-plug: "nocolon" is not SOCK1:SOCK2/],
    [['-v', '/a:/b', '/c'], /either -v SOCK1:SOCK2 or two locators/],
    [['a', 'b', 'c'], /too many locators/],
    [['--frobnicate'], /Unknown argument|frobnicate/],
    [['foo://x', '/tmp/b'], /unknown scheme "foo"/],
  ];
  for (const [argv, re] of bad) {
    it(`refuses ${argv.join(' ')}`, async () => {
      let msg = '';
      try {
        const w = await parseWfArgs(argv);
        buildFilter(w, true);
      } catch (e) {
        msg = (e as Error).message;
      }
      expect(msg).toMatch(re);
    });
  }

  it('refuses a cable whose two ends are one switch', async () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'vdets-wf-'));
    try {
      await expect(parseWfArgs(['-v', `${d}:${d}`])).rejects.toThrow(/both ends are the switch/);
    } finally {
      fs.rmSync(d, { recursive: true });
    }
  });
});

describe('wirefilter console', () => {
  let engine: NativeEngine | null = null;
  afterEach(() => {
    engine?.close();
    engine = null;
  });

  function setup(bidirectional = true): { f: WireFilter; c: ConsoleServer; s: Session; out: string[]; run: (l: string) => Promise<string> } {
    engine = createEngine(3, undefined, { manual: true });
    engine.setHub(true);
    const f = new WireFilter(bidirectional, 1);
    const c = createWfConsole({ filter: f, shutdown: () => {} });
    f.attach(engine);
    const out: string[] = [];
    const s: Session = { name: 'test', interactive: true, debug: new Set(), write: (t) => out.push(t), end: () => {} };
    c.addSession(s);
    return { f, c, s, out, run: async (l) => (await c.execute(l, s)) ?? '' };
  }

  const block = (lines: string[]): string => `0000 DATA END WITH '.'\n${lines.map((l) => `${l}\n`).join('')}.\n1000 Success\n`;

  it("answers help and showinfo with vde2's layouts", async () => {
    const { run } = setup();
    expect(await run('help')).toBe(block(WF_HELP));
    expect(await run('loss LR5')).toBe('1000 Success\n');
    expect(await run('delay LR10+2N')).toBe('1000 Success\n');
    expect(await run('bandwidth 125000')).toBe('1000 Success\n');
    expect(await run('capacity 30000')).toBe('1000 Success\n');
    expect(await run('mtu 1500')).toBe('1000 Success\n');
    const info = (await run('showinfo')).split('\n');
    expect(info.slice(0, 15)).toEqual([
      "0000 DATA END WITH '.'",
      'WireFilter: bidirectional',
      'Loss   L->R 5+0U   R->L 0+0U',
      'Lburst L->R 0+0U   R->L 0+0U',
      'Delay  L->R 10+2N   R->L 0+0U',
      'Dup    L->R 0+0U   R->L 0+0U',
      'Bandw  L->R 125000+0U   R->L 125000+0U',
      'Speed  L->R 0+0U   R->L 0+0U',
      'Noise  L->R 0+0U   R->L 0+0U',
      'MTU    L->R 1500     R->L 1500   ',
      'Cap.   L->R 30000+0U   R->L 30000+0U',
      'Current Delay Queue size:   L->R 0      R->L 0   ',
      'Fifoness TRUE',
      'Waiting packets in delay queues 0',
      expect.stringMatching(/^Counters L->R frames 0 .* seed 1$/),
    ]);
    expect(info.at(-2)).toBe('1000 Success');
  });

  it('shows a monodirectional filter as vde2 does', async () => {
    const { run } = setup(false);
    const info = (await run('showinfo')).split('\n');
    expect(info.slice(1, 4)).toEqual(['WireFilter: monodirectional', 'Loss   0+0U', 'Lburst 0+0U']);
    expect(info).toContain('MTU    0');
    expect(info).toContain('Current Delay Queue size:   0');
  });

  it('sets every value, refuses garbage with EINVAL, and applies the result to the engine', async () => {
    const { run, f } = setup();
    for (const c of ['delay 10', 'loss 1', 'lostburst 2', 'dup 1', 'bandwidth 1M', 'band 2M', 'speed 3M', 'chanbufsize 1000', 'capacity 2000', 'noise 3', 'mtu 1400', 'fifo 0', 'fifo 1'])
      expect(await run(c), c).toBe('1000 Success\n');
    for (const c of ['delay abc', 'loss 200', 'mtu', 'delay 10[1]', 'bandwidth ZZ']) expect(await run(c), c).toBe('1022 Invalid argument\n');
    expect(await run('frobnicate')).toBe('1038 Function not implemented\n');
    expect(f.model.get('band', LR).value).toBe(2 ** 21);
    expect(f.model.get('chanbufsize', RL).value).toBe(2000);
    const stages = await engine!.stages(-1);
    expect(stages.filter((s) => s.name === 'impair').map((s) => `${s.port}/${s.dir}`).sort()).toEqual(['1/out', '2/out']);
  });

  it('runs Markov chains: nodes, names, edges, current node, time, debug traces', async () => {
    const { run, f, out } = setup();
    expect(await run('markov-numnodes 0')).toBe('1022 Invalid argument\n');
    expect(await run('markov-numnodes 2')).toBe('1000 Success\n');
    expect(await run('markov-name 1,bad state')).toBe('1000 Success\n');
    expect(await run('setedge 0,1,30')).toBe('1000 Success\n');
    expect(await run('setedge 0,7,30')).toBe('1022 Invalid argument\n');
    expect(await run('setedge 0;1')).toBe('1022 Invalid argument\n');
    expect(await run('showedges 0')).toBe(block(['Edge 0 ->0  ""->"" weigth 70', 'Edge 0 ->1  ""->"bad state" weigth 30']));
    expect(await run('showedges 9')).toBe("0000 DATA END WITH '.'\n.\n1022 Invalid argument\n");
    expect(await run('loss 100[1]')).toBe('1000 Success\n');
    expect(await run('markov-debug 1')).toBe('1000 Success\n');
    expect(await run('markov-setnode 1')).toBe('1000 Success\n');
    expect(await run('markov-setnode 2')).toBe('1022 Invalid argument\n');
    expect(await run('showcurrent')).toBe(block(['Current Markov Node 1 "bad state" (0,..,1)']));
    const info = (await run('showinfo')).split('\n');
    expect(info[2]).toBe('Node 1 "bad state" (0,..,1) Markov-time 100');
    expect(info[3]).toBe('Loss   L->R 100+0U   R->L 100+0U');
    // node 1 is applied to the engine: everything is lost
    expect((await engine!.stages(2)).find((s) => s.name === 'impair')).toBeDefined();
    expect(await run('markov-time 0')).toBe('1022 Invalid argument\n');
    expect(await run('markov-time 5')).toBe('1000 Success\n');
    expect(f.model.markovTimeMs).toBe(5);
    // node 1 has only its loopback; go to node 0, which moves to 1 with 30 % per step: traces arrive
    expect(await run('setedge 1,0,100')).toBe('1000 Success\n');
    const deadline = Date.now() + 5000;
    while (!out.some((l) => l.startsWith('3801 Node 0 "" -> 1 "bad state"')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(out.some((l) => /^3800 Node 1 "bad state" -> 0 ""\n$/.test(l))).toBe(true);
    expect(out.some((l) => /^3801 Node 0 "" -> 1 "bad state"\n$/.test(l))).toBe(true);
    expect(await run('markov-debug 0')).toBe('1000 Success\n');
    f.close();
  });

  it('loads scripts with the echo vde2 gives, adds netem-style extras, answers JSON and logout', async () => {
    const { run, c, s, f } = setup();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vdets-wfrc-'));
    try {
      const rc = path.join(dir, 'rc');
      fs.writeFileSync(rc, 'delay 7\nloss 3\n');
      expect(await run(`load ${rc}`)).toBe(`0000 DATA END WITH '.'\n\nVDEwf$  (${rc}) delay 7\n1000 Success\n\nVDEwf$  (${rc}) loss 3\n1000 Success\n.\n1000 Success\n`);
      expect(await run(`load ${dir}/missing`)).toBe("0000 DATA END WITH '.'\n.\n1002 No such file or directory\n");
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
    expect(await run('impair LR reorder 10% gap 2')).toBe("0000 DATA END WITH '.'\n.\n1000 Success\n");
    expect(await run('impair LR bogus')).toMatch(/^0000 DATA END WITH '.'\nimpair: unknown word "bogus".*\n.\n1022 Invalid argument\n$/);
    expect(await run('impair LR loss gemodel 1%')).toMatch(/1000 Success/); // replaces vde2's loss
    expect(f.extraText(LR)).toBe('loss gemodel 1%');
    expect(await run('impair sideways x')).toMatch(/usage: impair/);
    const j = JSON.parse((await run('json/showinfo')).split('\n')[1]) as { LR: { extra: string; values: { delay: { value: number } } } };
    expect(j.LR.extra).toBe('loss gemodel 1%');
    expect(j.LR.values.delay.value).toBe(7);
    expect(await c.execute('logout', s)).toBe('9999 END OF SESSION');
    expect(WF_LOGOUT).toBe('1-01 Unknown error -1\n');
  });
});
