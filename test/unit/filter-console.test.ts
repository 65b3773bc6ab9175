/**
 * The switch's console commands for filters, policing and protected ports, on a real manual
 * engine (so the native stages check the rules and count the hits): filter/add, insert, del,
 * default, clear, print and json/filter/print; port/police with rates and bursts in human units;
 * port/setprotected; their JSON in json/port/print; errors that name the bad part in the data
 * block and leave the filter unchanged; an rc script setting all of it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createEngine, type NativeEngine } from '../../src/native/index.js';
import type { Session } from '../../src/protocol/console.js';
import { createSwitchConsole, type StpControl } from '../../src/switch/console.js';
import { parseRateBits, parseSizeBytes, SwitchState } from '../../src/switch/state.js';
import { frame } from '../helpers/harness.js';

function session(): Session {
  return { name: 'test', interactive: true, debug: new Set(), write: () => {}, end: () => {} };
}

let engine: NativeEngine | null = null;
afterEach(() => {
  engine?.close();
  engine = null;
});

function setup() {
  engine = createEngine(9, undefined, { manual: true });
  const state = new SwitchState(engine, 8, 128);
  for (let n = 1; n <= 4; n++) state.createPort(n, true);
  const stp: StpControl = { enabled: () => false, setEnabled: () => {}, setEdge: () => {}, setBonus: () => {}, portState: () => 'Forwarding', printLines: () => [], json: () => ({}) };
  const con = createSwitchConsole({
    state,
    stp,
    info: () => ({ dir: '/tmp/sw', mode: 0o600, mgmtPath: null, mgmtMode: 0o600, mac: '00:ff:00:00:00:01', priority: 32768, startMs: Date.now() }),
    shutdown: () => {},
  });
  const s = session();
  const run = async (line: string): Promise<string> => (await con.execute(line, s)) ?? '';
  const json = async (line: string): Promise<unknown> => JSON.parse(/^0000 DATA END WITH '\.'\n(.*)\n\.\n/s.exec(await run(line))![1]);
  return { state, con, run, json, s, engine };
}

describe('filter console commands', () => {
  it('adds, inserts, deletes and prints rules with their hits', async () => {
    const { run, json, engine: e } = setup();
    expect(await run('filter/add 1 in deny proto tcp  dport 22')).toMatch(/1000 Success\n$/);
    expect(await run('filter/add 1 in allow type arp')).toMatch(/1000 Success/);
    expect(await run('filter/insert 1 in 1 deny smac 02:00:00:00:00:0c')).toMatch(/1000 Success/);
    expect(await run('filter/default 1 in deny')).toMatch(/1000 Success/);
    e.ingress(1, frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0a', { ethertype: 0x0806 }));
    e.ingress(1, frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0c', { ethertype: 0x0806 }));
    e.ingress(1, frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0a', { ethertype: 0x88b5 }));
    expect(await json('json/filter/print 1')).toEqual([
      {
        port: 1, dir: 'in', default: 'deny', passed: 1, denied: 2, defaultHits: 1,
        rules: [
          { index: 1, rule: 'deny smac 02:00:00:00:00:0c', hits: 1 },
          { index: 2, rule: 'deny proto tcp dport 22', hits: 0 },
          { index: 3, rule: 'allow type arp', hits: 1 },
        ],
      },
    ]);
    const text = await run('filter/print');
    expect(text).toContain('Port 0001 in: default deny, 3 rules, passed 1, denied 2\n 0001 deny smac 02:00:00:00:00:0c (hits 1)\n 0002 deny proto tcp dport 22 (hits 0)\n 0003 allow type arp (hits 1)\n default deny (hits 1)\n');
    expect(e.counters(1).drops.filter).toBe(2);
    expect(await run('filter/del 1 in 2')).toMatch(/1000 Success/);
    expect(((await json('json/filter/print')) as Array<{ rules: unknown[] }>)[0].rules).toHaveLength(2);
    expect(await run('filter/del 1 in 3')).toMatch(/1006 No such device or address/);
    expect(await run('filter/clear 1')).toMatch(/1000 Success/);
    expect(await json('json/filter/print')).toEqual([]);
    expect(await e.stages(1)).toEqual([]);
  });

  it('refuses bad rules with the reason in the data block and keeps the filter as it was', async () => {
    const { run, json } = setup();
    await run('filter/add 2 out allow proto udp');
    const r = await run('filter/add 2 out deny dport 70000');
    expect(r).toContain('filter: rule 2: dport: "70000" is not a port');
    expect(r).toMatch(/1022 Invalid argument\n$/);
    expect(await run('filter/add 2 sideways allow')).toMatch(/usage: PORT in\|out/);
    expect(await run('filter/add 99 in allow')).toMatch(/1022 Invalid argument/);
    expect(await run('filter/add 7 in allow')).toMatch(/port 7 does not exist\n.*1006/s);
    expect(await run('filter/add 2 in')).toMatch(/missing arguments/);
    expect(await run('filter/insert 2 out 5 allow')).toMatch(/position 5 is out of range 1\.\.2/);
    expect(await run('filter/default 2 out maybe')).toMatch(/"maybe" is not allow or deny/);
    expect(await run('filter/clear 2 sideways')).toMatch(/1022/);
    expect(await json('json/filter/print 2')).toEqual([{ port: 2, dir: 'out', default: 'allow', passed: 0, denied: 0, defaultHits: 0, rules: [{ index: 1, rule: 'allow proto udp', hits: 0 }] }]);
  });

  it('sets policing and protected ports, shown in json/port/print', async () => {
    const { run, state, engine: e } = setup();
    expect(await run('port/police 3 10m')).toMatch(/1000 Success/);
    expect(state.port(3).police).toEqual({ rateBits: 10_000_000, burstBytes: 25_000 });
    expect(await run('port/police 3 2.5gbit 256k')).toMatch(/1000 Success/);
    expect(state.port(3).police).toEqual({ rateBits: 2_500_000_000, burstBytes: 262_144 });
    expect((await e.stages(3)).find((s) => s.name === 'police')?.values).toMatchObject({ rate: 2_500_000_000, burst: 262_144 });
    expect(await run('port/police 3 100')).toMatch(/rate 100 bit\/s is out of range 8000\.\.1000000000000\n.*1022/s);
    expect(await run('port/police 3 fast')).toMatch(/rate: "fast" is not a rate/);
    expect(await run('port/police 3 10m 2g')).toMatch(/burst 2147483648 bytes is out of range/);
    expect(await run('port/police 3 10m lots')).toMatch(/burst: "lots" is not a size/);
    expect(state.port(3).police).toEqual({ rateBits: 2_500_000_000, burstBytes: 262_144 }); // unchanged
    expect(await run('port/setprotected 3 1')).toMatch(/1000 Success/);
    await run('port/setprotected 4 1');
    const port3 = JSON.parse(/\n(\{.*\})\n/.exec(await run('json/port/allprint 3'))![1]);
    expect(port3).toMatchObject({ protected: true, police: { rateBits: 2_500_000_000, burstBytes: 262_144 } });
    // protected 3 and 4 do not hear each other; 1 hears both
    expect(await run('port/police 3 off')).toMatch(/1000 Success/);
    expect(await e.stages(3)).toEqual([]);
    expect(state.port(3).police).toBeNull();
    await run('port/setprotected 3 0');
    expect(state.port(3).protected).toBe(false);
  });

  it('runs the same commands from an rc script', async () => {
    const { con, s, state } = setup();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vdets-filter-rc-'));
    try {
      const rc = path.join(dir, 'rc');
      fs.writeFileSync(rc, '# lab filters\nfilter/add 1 in allow proto icmp\nfilter/add 1 in deny src 10.0.0.0/8\nfilter/add 1 in deny dport x\nport/police 2 1m 4k\nport/setprotected 2 1\n');
      const r = await con.runScript(rc, s, false);
      expect(r.errors).toEqual([`${rc}:4: filter/add 1 in deny dport x: Invalid argument`]);
      expect(state.port(1).filters.in.rules).toEqual(['allow proto icmp', 'deny src 10.0.0.0/8']);
      expect(state.port(2)).toMatchObject({ protected: true, police: { rateBits: 1_000_000, burstBytes: 4096 } });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('parses rates and sizes in human units', () => {
    expect(parseRateBits('800k')).toBe(800_000);
    expect(parseRateBits('1.5G')).toBe(1_500_000_000);
    expect(parseRateBits('10mbit')).toBe(10_000_000);
    expect(parseRateBits('64000bps')).toBe(64_000);
    expect(parseRateBits('1e6')).toBeNull();
    expect(parseRateBits('-5m')).toBeNull();
    expect(parseSizeBytes('64k')).toBe(65536);
    expect(parseSizeBytes('1500B')).toBe(1500);
    expect(parseSizeBytes('1.5k')).toBeNull();
  });
});
