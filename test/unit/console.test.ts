// Unit tests of the console line protocol (protocol/console.ts) and of the switch's command
// table on the fake engine (no addon, no sockets): replies in order even for asynchronous
// commands, commands without a newline, over-long lines, scripts with line numbers, the bounds
// of hash/setsize and port/setnumports, JSON errors, vlan/print with spanning-tree states and
// the debug categories offered.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { FakeEngine } from '../../src/native/fake.js';
import { ConsoleServer, CONSOLE_IDLE_COMMAND_MS, type Session } from '../../src/protocol/console.js';
import { createSwitchConsole, type StpControl } from '../../src/switch/console.js';
import { SwitchState } from '../../src/switch/state.js';

function session(): Session & { out: string[] } {
  const out: string[] = [];
  return { name: 'test', interactive: true, debug: new Set(), out, write: (s) => out.push(s), end: () => out.push('<end>') };
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

function switchConsole(stpStates: Record<number, 'Forwarding' | 'Learning' | 'Discarding'> = {}, stpOn = false) {
  const engine = new FakeEngine(33);
  const state = new SwitchState(engine, 32, 128);
  const stp: StpControl = {
    enabled: () => stpOn,
    setEnabled: () => {},
    setEdge: () => {},
    setBonus: () => {},
    portState: (p) => stpStates[p] ?? 'Forwarding',
    printLines: () => [],
    json: () => ({}),
  };
  const con = createSwitchConsole({
    state,
    stp,
    info: () => ({ dir: '/tmp/sw', mode: 0o600, mgmtPath: null, mgmtMode: 0o600, mac: '00:ff:00:00:00:01', priority: 32768, startMs: Date.now() }),
    shutdown: () => {},
  });
  return { engine, state, con };
}

describe('console line protocol', () => {
  afterEach(() => vi.useRealTimers());

  it('answers a session\'s lines strictly in order, also when commands are asynchronous', async () => {
    const server = new ConsoleServer({ banner: 'B\n', prompt: '\nt$ ', maxLineBytes: 100 });
    const resolvers: Array<() => void> = [];
    server.setCommands([
      { path: 'slow', syntax: '', help: '', text: true, run: (_a, out) => new Promise<void>((r) => resolvers.push(() => { out.push('slow done'); r(); })) },
      { path: 'fast', syntax: '', help: '', text: true, run: (_a, out) => { out.push('fast done'); } },
    ]);
    const s = session();
    const input = server.lineInput(s, { prompt: '\nt$ ', endOnLogout: true });
    input.push('slow\nfast\n');
    await flush();
    expect(s.out).toEqual([]); // fast waits behind slow
    resolvers[0]();
    await flush();
    await flush();
    expect(s.out.join('')).toBe("0000 DATA END WITH '.'\nslow done\n.\n1000 Success\n\nt$ 0000 DATA END WITH '.'\nfast done\n.\n1000 Success\n\nt$ ");
  });

  it('runs input without a newline once it stays idle (vdeterm), and keeps multi-line writes whole', async () => {
    vi.useFakeTimers();
    const { con } = switchConsole();
    const s = session();
    const input = con.lineInput(s, { prompt: '\nvde$ ', endOnLogout: true });
    input.push('port/show');
    input.push('info');
    await vi.advanceTimersByTimeAsync(CONSOLE_IDLE_COMMAND_MS / 2);
    expect(s.out).toEqual([]);
    await vi.advanceTimersByTimeAsync(CONSOLE_IDLE_COMMAND_MS);
    expect(s.out.join('')).toContain('Numports=32');
    s.out.length = 0;
    input.push('vlan/create 5\nvlan/cre');
    input.push('ate 6\n');
    await vi.advanceTimersByTimeAsync(CONSOLE_IDLE_COMMAND_MS * 2);
    expect(s.out.join('')).toBe('1000 Success\n\nvde$ 1000 Success\n\nvde$ ');
  });

  it('refuses an over-long line whole, with or without its newline', async () => {
    vi.useFakeTimers();
    const server = new ConsoleServer({ banner: '', prompt: '$ ', maxLineBytes: 16 });
    server.setCommands([{ path: 'x', syntax: '', help: '', run: () => {} }]);
    const s = session();
    const input = server.lineInput(s, { prompt: '$ ', endOnLogout: true });
    input.push(`x${'y'.repeat(40)}\n`);
    input.push('x'.repeat(40));
    await vi.advanceTimersByTimeAsync(CONSOLE_IDLE_COMMAND_MS * 2);
    expect(s.out.join('')).toBe('1022 Invalid argument\n$ 1022 Invalid argument\n$ ');
  });

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vdets-con-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('runs scripts in order and reports failing lines with their numbers', async () => {
    const { con, state } = switchConsole();
    const rc = path.join(tmp, 'rc');
    fs.writeFileSync(rc, '# comment\nvlan/create 10\nport/create 3\nport/setvlan 3 10\nno/such\nhash/setsize 100000000\nport/setnumports 4294967296\n');
    const r = await con.runScript(rc, { ...session(), interactive: false }, false);
    expect(state.ports.get(3)?.untagged).toBe(10);
    expect(r.errors).toEqual([
      `${rc}:5: no/such: Function not implemented`,
      `${rc}:6: hash/setsize 100000000: Invalid argument`,
      `${rc}:7: port/setnumports 4294967296: Invalid argument`,
    ]);
    expect(state.numPorts).toBe(32);
  });
});

describe('switch console commands (fake engine)', () => {
  it('bounds hash/setsize and port/setnumports as the command line does', async () => {
    const { con, state, engine } = switchConsole();
    const s = session();
    expect(await con.execute('hash/setsize 100000000', s)).toBe('1022 Invalid argument\n');
    expect(await con.execute('hash/setsize 0', s)).toBe('1022 Invalid argument\n');
    expect(await con.execute('port/setnumports 4294967296', s)).toBe('1022 Invalid argument\n');
    expect(await con.execute('port/setnumports 65536', s)).toBe('1022 Invalid argument\n');
    expect(state.numPorts).toBe(32);
    expect(engine.callsOf('setNumPorts')).toEqual([]);
    expect(await con.execute('hash/setsize 1048576', s)).toBe('1000 Success\n');
    expect(await con.execute('port/setnumports 65535', s)).toBe('1000 Success\n');
    expect(state.hashSize).toBe(1048576);
  });

  it('answers MAC queries from the engine asynchronously, with vde2 layouts', async () => {
    const { con, engine } = switchConsole();
    engine.learn('02:00:00:00:00:07', 0, 3, 5);
    const s = session();
    expect(await con.execute('hash/print', s)).toBe("0000 DATA END WITH '.'\nHash: 0000 Addr: 02:00:00:00:00:07 VLAN 0000 to port: 003  age 5 secs\n.\n1000 Success\n");
    expect(await con.execute('hash/find 02:00:00:00:00:07', s)).toContain('to port: 004');
    expect(await con.execute('hash/find 02:00:00:00:00:08', s)).toBe("0000 DATA END WITH '.'\n.\n1019 No such device\n");
  });

  it('gives json/ errors as JSON, with the same errno as the text form', async () => {
    const { con } = switchConsole();
    const s = session();
    const text = await con.execute('port/print 99', s);
    const json = await con.execute('json/port/print 99', s);
    expect(text).toBe("0000 DATA END WITH '.'\n.\n1022 Invalid argument\n");
    expect(json).toMatch(/^0000 DATA END WITH '\.'\n\{"error":"[^"]+","errno":22\}\n\.\n1022 Invalid argument\n$/);
    expect(await con.execute('json/port/print 5', s)).toMatch(/"errno":6\}\n\.\n1006 No such device or address\n$/);
    const find = await con.execute('json/hash/find zz', s);
    expect(JSON.parse(find!.split('\n')[1])).toEqual({ error: 'bad MAC address', errno: 22 });
  });

  it('prints the spanning-tree state of each port in vlan/print', async () => {
    const { con, state } = switchConsole({ 1: 'Forwarding', 2: 'Discarding', 3: 'Learning' }, true);
    for (const n of [1, 2, 3]) {
      const p = state.createPort(n, true);
      state.attach(p, { id: n + 10, engineId: n, module: 'unix prog', description: '', uid: null, close: () => {} });
    }
    const r = await con.execute('vlan/print', session());
    expect(r).toBe(
      "0000 DATA END WITH '.'\nVLAN 0000\n" +
        ' -- Port 0001 tagged=0 active=1 status=Forwarding\n -- Port 0002 tagged=0 active=1 status=Discarding\n -- Port 0003 tagged=0 active=1 status=Learning\n' +
        '.\n1000 Success\n',
    );
    const off = switchConsole({ 2: 'Discarding' }, false);
    const p = off.state.createPort(2, true);
    off.state.attach(p, { id: 12, engineId: 2, module: 'unix prog', description: '', uid: null, close: () => {} });
    expect(await off.con.execute('vlan/print', session())).toContain('Port 0002 tagged=0 active=1 status=Forwarding');
  });

  it('offers only debug categories the switch emits, and shows the vde-ts version', async () => {
    const { con } = switchConsole();
    const list = (await con.execute('debug/list', session()))!;
    expect(list).not.toMatch(/hash\/[+-]/);
    for (const c of ['port/+', 'port/-', 'port/descr', 'port/ep/+', 'port/ep/-', 'fstp/status', 'fstp/root']) expect(list).toContain(c);
    const info = (await con.execute('showinfo', session()))!;
    expect(info).toMatch(/^0000 DATA END WITH '\.'\nVDE switch V\.2\.3\.3\n\(C\) Virtual Square Team \(coord\. R\. Davoli\) 2005,2006,2007 - GPLv2\n\npid \d+ MAC 00:ff:00:00:00:01 uptime \d+\nvde-ts \d+\.\d+\.\d+/);
    const j = JSON.parse((await con.execute('json/showinfo', session()))!.split('\n')[1]);
    expect(j.version).toBe('2.3.3');
    expect(j.vdeTsVersion).toMatch(/^\d+\.\d+\.\d+/);
  });
});
