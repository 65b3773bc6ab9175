/**
 * The switch's console commands: vde2's command set (PROTOCOL.md §6.3) with its exact text
 * layouts, plus JSON forms of every print command under `json/...` (whose errors are JSON too:
 * `{"error":"...","errno":N}` in the data block). The line protocol itself (framing, prefix
 * lookup, sessions, scripts) is protocol/console.ts; this file only holds the command table and
 * what it needs from the running switch. Values are bounded as on the command line (numports
 * 1..65535, hash size 1..1048576). Additions to vde2's set: port mirroring, storm control,
 * protected ports, policing (port/police) and per-port filters (the filter/ menu, whose rules the
 * native filter stage parses: a bad rule's message goes into the data block).
 */
import { VDE2_VERSION, VDE_TS_VERSION } from '../core/version.js';
import { lookupGroup, lookupUser } from '../core/perms.js';
import type { MacEntryInfo } from '../native/index.js';
import { impairErrorText, impairLines, parseImpairSpec } from '../ports/impair.js';
import { ConsoleServer, CONSOLE_END, type ConsoleCommand, type DebugCategory, type Session } from '../protocol/console.js';
import { hashLine, portJson, portLines } from './format.js';
import { E, parseRateBits, parseSizeBytes, SwitchError, type SwitchState } from './state.js';

export type { Session };
/** The banner vde2 clients see (its version is vde2's; showinfo adds ours). */
export const BANNER = `VDE switch V.${VDE2_VERSION}\n(C) Virtual Square Team (coord. R. Davoli) 2005,2006,2007 - GPLv2\n`;
export const PROMPT = '\nvde$ ';
export { END_OF_SESSION } from '../protocol/console.js';
/** Longest accepted console line (vde2 cut reads at 128 bytes; we refuse longer lines whole). */
export const MAX_LINE_BYTES = 4096;
/** Largest aging value (hash/setexpire, setminper, setgcint), in seconds. */
export const MAX_AGING_SECONDS = 2 ** 31 - 1;

/**
 * Debug categories with vde2's octal tags: only those the switch emits. vde2's `hash/+` and
 * `hash/-` are not offered: addresses are learned on the engine thread, not reported one by one.
 */
export const DEBUG_CATEGORIES: DebugCategory[] = [
  ['port/+', 0o21, 'new port'],
  ['port/-', 0o22, 'closed port'],
  ['port/descr', 0o23, 'set port description'],
  ['port/ep/+', 0o31, 'new endpoint'],
  ['port/ep/-', 0o32, 'closed endpoint'],
  ['fstp/+', 0o41, 'fstp: new port'],
  ['fstp/-', 0o42, 'fstp: closed port'],
  ['fstp/status', 0o44, 'fstp: status change'],
  ['fstp/root', 0o45, 'fstp: new root'],
];

/** What the console needs from the spanning-tree controller. */
export interface StpControl {
  enabled(): boolean;
  setEnabled(on: boolean): void;
  setEdge(port: number, on: boolean): void;
  setBonus(port: number, cost: number): void;
  /** The state the tree gives a port: Forwarding, Learning or Discarding. */
  portState(port: number): 'Forwarding' | 'Learning' | 'Discarding';
  printLines(): string[];
  json(): object;
}

/** What the console needs from the running switch. */
export interface ConsoleHost {
  state: SwitchState;
  info(): { dir: string; mode: number; mgmtPath: string | null; mgmtMode: number; mac: string; priority: number; startMs: number };
  stp: StpControl;
  shutdown(reason: string): void;
  /** Opens (creating if needed) a tap interface on a new port; returns the port number. */
  attachTap(name: string): number;
}

function int(s: string): number {
  const m = /^\s*[+-]?\d+/.exec(s);
  return m ? parseInt(m[0], 10) : 0;
}

function strictInt(s: string, what: string): number {
  if (!/^\s*\d+\s*$/.test(s)) throw new SwitchError(E.EINVAL, `${what}: "${s}" is not a number`);
  return parseInt(s, 10);
}

function args(s: string): string[] {
  return s.split(/[\s]+/).filter(Boolean);
}

/** One direction's filter as filter/print and json/filter/print show it. */
export interface FilterReport {
  port: number;
  dir: 'in' | 'out';
  default: 'allow' | 'deny';
  rules: Array<{ index: number; rule: string; hits: number }>;
  defaultHits: number;
  passed: number;
  denied: number;
}

/** Runs fn; a failure's message goes into the data block as well (text commands), then the error goes on. */
function withMessage(out: string[], fn: () => void): void {
  try {
    fn();
  } catch (e) {
    out.push((e as Error).message);
    throw e;
  }
}

function parseMac(s: string): Buffer | null {
  const m = /^([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})$/i.exec(s.trim());
  return m ? Buffer.from(m.slice(1).map((x) => parseInt(x, 16))) : null;
}

/** Creates the switch's console: the vde2 line protocol with the switch's banner, prompt and commands. */
export function createSwitchConsole(h: ConsoleHost): ConsoleServer {
  const server = new ConsoleServer({
    banner: BANNER,
    prompt: PROMPT,
    maxLineBytes: MAX_LINE_BYTES,
    echoLine: (file, line) => `vde[${file}]: ${line}\n`,
    debugCategories: DEBUG_CATEGORIES,
  });
  server.setCommands(switchCommands(server, h));
  return server;
}

/** The switch's command table, in vde2's registration (and help) order. */
export function switchCommands(server: ConsoleServer, h: ConsoleHost): ConsoleCommand[] {
  const st = (): SwitchState => h.state;
  const portArg = (a: string): number => {
    const n = strictInt(a, 'port');
    st().checkRange(n);
    return n;
  };
  const two = (a: string): [string, string] => {
    const v = args(a);
    if (v.length < 2) throw new SwitchError(E.EINVAL, 'two arguments needed');
    return [v[0], v[1]];
  };
  const printPorts = (a: string, out: string[], all: boolean, json: boolean): number => {
    const list = [...st().ports.values()].sort((x, y) => x.num - y.num);
    if (a.trim() !== '') {
      const n = int(a);
      if (n < 0 || n > st().numPorts) return E.EINVAL;
      const p = st().ports.get(n);
      if (!p || (!all && p.endpoints.size === 0)) return E.ENXIO;
      if (json) out.push(JSON.stringify(portJson(p, st().counters(n))));
      else out.push(...portLines(p, st().counters(n)));
      return 0;
    }
    const chosen = list.filter((p) => all || p.endpoints.size > 0);
    if (json) out.push(JSON.stringify(chosen.map((p) => portJson(p, st().counters(p.num)))));
    else for (const p of chosen) out.push(...portLines(p, st().counters(p.num)));
    return 0;
  };
  const stpStatus = (port: number): string => (h.stp.enabled() ? h.stp.portState(port) : 'Forwarding');
  const vlanLines = (a: string, all: boolean): string[] => {
    const out: string[] = [];
    const vl = a.trim() === '' ? [...st().vlans].sort((x, y) => x - y) : [int(a)];
    if (a.trim() !== '' && !st().vlans.has(vl[0])) throw new SwitchError(E.ENXIO, 'no such VLAN');
    for (const v of vl) {
      out.push(`VLAN ${String(v).padStart(4, '0')}`);
      if (st().hub) continue;
      for (const p of [...st().ports.values()].sort((x, y) => x.num - y.num)) {
        const member = p.untagged === v || p.tagged.has(v);
        const active = p.endpoints.size > 0;
        if (!member || (!all && !active)) continue;
        out.push(` -- Port ${String(p.num).padStart(4, '0')} tagged=${p.untagged === v ? 0 : 1} active=${active ? 1 : 0} status=${stpStatus(p.num)}`);
      }
    }
    return out;
  };
  const vlanJson = (): object =>
    [...st().vlans].sort((x, y) => x - y).map((v) => ({
      vlan: v,
      ports: [...st().ports.values()].filter((p) => p.untagged === v || p.tagged.has(v)).map((p) => ({ port: p.num, tagged: p.untagged !== v, active: p.endpoints.size > 0 })),
    }));
  const showinfo = (): object => {
    const i = h.info();
    return {
      version: VDE2_VERSION,
      vdeTsVersion: VDE_TS_VERSION,
      pid: process.pid,
      mac: i.mac,
      uptimeSeconds: Math.floor((Date.now() - i.startMs) / 1000),
      dir: i.dir,
      mode: i.mode,
      mgmt: i.mgmtPath,
      numPorts: st().numPorts,
      hub: st().hub,
      foreignTags: st().foreignTags,
      macCount: st().engine.macCount(),
      engine: st().engine.stats(),
    };
  };
  // vde2 prints the bucket of a hash table of `hashsize` buckets: the index slot folded to that size
  const hashEntries = async (): Promise<MacEntryInfo[]> =>
    (await st().engine.macTable()).map((e) => ({ ...e, bucket: (e.bucket ?? 0) % st().hashSize })).sort((a, b) => a.bucket - b.bucket);
  const hashFind = async (a: string): Promise<MacEntryInfo> => {
    const v = args(a);
    const mac = parseMac(v[0] ?? '');
    if (!mac) throw new SwitchError(E.EINVAL, 'bad MAC address');
    const e = await st().engine.macFind(mac, v[1] ? int(v[1]) : 0);
    if (!e) throw new SwitchError(E.ENODEV, 'not found');
    return e;
  };
  const aging = (a: string, what: string, min: number): number => {
    const n = strictInt(a, what);
    if (n < min || n > MAX_AGING_SECONDS) throw new SwitchError(E.EINVAL, `${what} ${n} is out of range ${min}..${MAX_AGING_SECONDS}`);
    return n;
  };
  const debugCats = (): DebugCategory[] => server.debugCategories();
  const portInfoLines = (): string[] => [`Numports=${st().numPorts}`, `HUB=${st().hub}`, `counters=true`];
  // "N in|out REST": the port, the direction and the rest of the line (at least minRest words)
  const filterArgs = (a: string, minRest: number): [number, 'in' | 'out', string] => {
    const m = /^(\S+)\s+(\S+)\s*(.*)$/.exec(a.trim());
    if (!m || (m[2] !== 'in' && m[2] !== 'out')) throw new SwitchError(E.EINVAL, 'usage: PORT in|out ...');
    const n = portArg(m[1]);
    st().port(n);
    const rest = m[3].trim().replace(/\s+/g, ' ');
    if (args(rest).length < minRest) throw new SwitchError(E.EINVAL, 'missing arguments');
    return [n, m[2], rest];
  };
  // the filters of one port ("N") or of every port (""), joined with the stage's hit counters
  const filterReport = async (a: string): Promise<FilterReport[]> => {
    let ports = [...st().ports.values()].sort((x, y) => x.num - y.num);
    if (a.trim() !== '') {
      const n = portArg(a.trim());
      ports = [st().port(n)];
    }
    const stages = await st().engine.stages(ports.length === 1 ? ports[0].num : -1);
    const out: FilterReport[] = [];
    for (const p of ports)
      for (const dir of ['in', 'out'] as const) {
        const f = p.filters[dir];
        if (!f.rules.length && f.defaultAction === 'allow') continue;
        const v = stages.find((x) => x.port === p.num && x.dir === dir && x.name === 'filter')?.values ?? {};
        out.push({
          port: p.num,
          dir,
          default: f.defaultAction,
          rules: f.rules.map((rule, i) => ({ index: i + 1, rule, hits: v[`hits.${i + 1}`] ?? 0 })),
          defaultHits: v['hits.default'] ?? 0,
          passed: v.passed ?? 0,
          denied: v.denied ?? 0,
        });
      }
    return out;
  };
  const cmds: ConsoleCommand[] = [
    { path: 'ds', syntax: '============', help: 'DATA SOCKET MENU', menu: true },
    { path: 'ds/showinfo', syntax: '', help: 'show ds info', text: true, run: (_a, out) => { const i = h.info(); out.push(`ctl dir ${i.dir}`, `std mode 0${i.mode.toString(8).padStart(3, '0')}`); } },
    server.helpCommand(),
    { path: 'logout', syntax: '', help: 'logout from this mgmt terminal', run: () => CONSOLE_END },
    { path: 'shutdown', syntax: '', help: 'shutdown of the switch', run: (_a, _o, s) => { setImmediate(() => h.shutdown(`shutdown from ${s.name}`)); return CONSOLE_END; } },
    { path: 'showinfo', syntax: '', help: 'show switch version and info', text: true, run: (_a, out) => {
      const i = showinfo() as { pid: number; mac: string; uptimeSeconds: number };
      out.push(...BANNER.trimEnd().split('\n'), '', `pid ${i.pid} MAC ${i.mac} uptime ${i.uptimeSeconds}`, `vde-ts ${VDE_TS_VERSION}`);
      const inf = h.info();
      if (inf.mgmtPath) out.push(`mgmt ${inf.mgmtPath} perm 0${inf.mgmtMode.toString(8).padStart(3, '0')}`);
    } },
    server.loadCommand(),
    { path: 'debug', syntax: '============', help: 'DEBUG MENU', menu: true },
    { path: 'debug/list', syntax: '', help: 'list debug categories', text: true, run: (a, out, s) => {
      const m = debugCats().filter((c) => c[0].startsWith(a.trim()));
      if (!m.length) return E.ENOENT;
      out.push(`${'CATEGORY'.padEnd(22)} TAG STATUS HELP`, `${'------------'.padEnd(22)} --- ------ ----`);
      for (const [c, tag, help] of m) out.push(`${c.padEnd(22)} ${tag.toString(8).padStart(3, '0')} ${(s.debug.has(c) ? 'ON' : 'OFF').padEnd(6)} ${help}`);
    } },
    { path: 'debug/add', syntax: 'dbgpath', help: 'add debug output', run: (a, _o, s) => {
      if (!s.interactive) return E.EBADF;
      const m = debugCats().filter((c) => c[0].startsWith(a.trim()) && a.trim() !== '');
      if (!m.length) return E.EINVAL;
      if (m.every((c) => s.debug.has(c[0]))) return E.EEXIST;
      m.forEach((c) => s.debug.add(c[0]));
    } },
    { path: 'debug/del', syntax: 'dbgpath', help: 'del debug output', run: (a, _o, s) => {
      if (!s.interactive) return E.EBADF;
      const m = debugCats().filter((c) => c[0].startsWith(a.trim()) && a.trim() !== '');
      if (!m.length) return E.EINVAL;
      m.forEach((c) => s.debug.delete(c[0]));
    } },
    { path: 'hash', syntax: '============', help: 'HASH TABLE MENU', menu: true },
    { path: 'hash/showinfo', syntax: '', help: 'show hash info', text: true, run: (_a, out) => {
      out.push(`Hash size ${st().hashSize}`, `GC interval ${st().gcIntervalSeconds} secs`, `GC expire ${st().expireSeconds} secs`, `Min persistence ${st().minPersistSeconds} secs`);
    } },
    { path: 'hash/setsize', syntax: 'N', help: 'change hash size', run: (a) => {
      st().setHashSize(strictInt(a, 'size'));
    } },
    { path: 'hash/setmax', syntax: 'N', help: 'most addresses the table holds (full: the greediest port loses its oldest)', run: (a) => {
      st().setMacTableMax(strictInt(a, 'entries'));
    } },
    { path: 'hash/setgcint', syntax: 'N', help: 'change garbage collector interval', run: (a) => { st().gcIntervalSeconds = aging(a, 'interval', 1); st().applyAging(); } },
    { path: 'hash/setexpire', syntax: 'N', help: 'change hash entries expire time', run: (a) => { st().expireSeconds = aging(a, 'expire', 0); st().applyAging(); } },
    { path: 'hash/setminper', syntax: 'N', help: 'minimum persistence time', run: (a) => { st().minPersistSeconds = aging(a, 'persistence', 0); st().applyAging(); } },
    { path: 'hash/print', syntax: '', help: 'print the hash table', text: true, run: async (_a, out) => { for (const e of await hashEntries()) out.push(hashLine(e)); } },
    { path: 'hash/find', syntax: 'MAC [VLAN]', help: 'MAC lookup', text: true, run: async (a, out) => { out.push(hashLine(await hashFind(a), 1)); } },
    { path: 'fstp', syntax: '============', help: 'FAST SPANNING TREE MENU', menu: true },
    { path: 'fstp/showinfo', syntax: '', help: 'show fstp info', text: true, run: (_a, out) => {
      const i = h.info();
      out.push(`MAC ${i.mac} Priority ${i.priority} (0x${i.priority.toString(16)})`, `FSTP=${h.stp.enabled()}`);
    } },
    { path: 'fstp/setfstp', syntax: '0/1', help: 'Fast spanning tree on/off', text: true, run: (a, out) => {
      if (st().hub) { out.push("Can't use fstp in hub mode"); return 0; }
      h.stp.setEnabled(int(a) !== 0);
    } },
    { path: 'fstp/setedge', syntax: 'VLAN PORT 1/0', help: 'Define an edge port for a vlan 1=Y 0=N', run: (a) => {
      const v = args(a);
      if (v.length < 3) return E.EINVAL;
      const p = portArg(v[1]);
      st().port(p);
      h.stp.setEdge(p, int(v[2]) !== 0);
    } },
    { path: 'fstp/bonus', syntax: 'VLAN PORT COST', help: 'set the port bonus for a vlan', run: (a) => {
      const v = args(a);
      if (v.length < 3) return E.EINVAL;
      const p = portArg(v[1]);
      st().port(p);
      h.stp.setBonus(p, int(v[2]));
    } },
    { path: 'fstp/print', syntax: '[N]', help: 'print fst data for the defined vlan', text: true, run: (_a, out) => { out.push(...h.stp.printLines()); } },
    { path: 'port', syntax: '============', help: 'PORT STATUS MENU', menu: true },
    { path: 'port/showinfo', syntax: '', help: 'show port info', text: true, run: (_a, out) => { out.push(...portInfoLines()); } },
    { path: 'port/setnumports', syntax: 'N', help: 'set the number of ports', run: (a) => { st().setNumPorts(strictInt(a, 'ports')); } },
    { path: 'port/sethub', syntax: '0/1', help: '1=HUB 0=switch', run: (a) => { const on = int(a) !== 0; st().setHub(on); if (on) h.stp.setEnabled(false); } },
    { path: 'port/setvlan', syntax: 'N VLAN', help: 'set port VLAN (untagged)', run: (a) => {
      const [p, v] = two(a);
      const n = portArg(p);
      st().setUntagged(n, strictInt(v, 'VLAN'));
    } },
    { path: 'port/createauto', syntax: '', help: 'create a port with an automatically allocated id (inactive|notallocatable)', text: true, run: (_a, out) => {
      const n = st().findFreePort();
      if (st().ports.has(n)) st().removePort(n);
      st().createPort(n, false);
      out.push(`Port ${String(n).padStart(4, '0')}`);
    } },
    { path: 'port/create', syntax: 'N', help: 'create the port N (inactive|notallocatable)', run: (a) => { st().createPort(portArg(a), false); } },
    { path: 'port/tap', syntax: 'IF', help: 'attach the tap IF (created if missing) on a new port; prints the port', text: true, run: (a, out) => {
      const name = a.trim();
      if (!name || Buffer.byteLength(name) > 15 || /[\s/]/.test(name)) throw new SwitchError(E.EINVAL, `tap: "${name}" is not a valid interface name`);
      try {
        out.push(String(h.attachTap(name)));
      } catch (e) {
        if (e instanceof SwitchError) throw e;
        throw new SwitchError(E.EPERM, (e as Error).message);
      }
    } },
    { path: 'port/remove', syntax: 'N', help: 'remove the port N', run: (a) => { st().removePort(portArg(a)); } },
    { path: 'port/allocatable', syntax: 'N 0/1', help: 'Is the port allocatable as unnamed? 1=Y 0=N', run: (a) => { const [p, v] = two(a); st().port(portArg(p)).allocatable = int(v) !== 0; } },
    { path: 'port/setuser', syntax: 'N user', help: 'access control: set user', run: (a) => {
      const [p, u] = two(a);
      const port = st().port(portArg(p));
      if (u === 'NONE' || u === 'ANY') { port.user = null; return; }
      const uid = lookupUser(u);
      if (uid === undefined) return E.EINVAL;
      port.user = uid;
    } },
    { path: 'port/setgroup', syntax: 'N user', help: 'access control: set group', run: (a) => {
      const [p, g] = two(a);
      const port = st().port(portArg(p));
      if (g === 'NONE' || g === 'ANY') { port.group = null; return; }
      const gid = lookupGroup(g);
      if (gid === undefined) return E.EINVAL;
      port.group = gid;
    } },
    { path: 'port/epclose', syntax: 'N ID', help: 'remove the endpoint port N/id ID', run: (a) => {
      const [p, id] = two(a);
      const ep = st().port(portArg(p)).endpoints.get(strictInt(id, 'endpoint'));
      if (!ep) return E.ENXIO;
      ep.close();
    } },
    { path: 'port/resetcounter', syntax: '[N]', help: 'reset the port (N) counters', run: (a) => {
      if (a.trim() === '') st().engine.resetCounters(-1);
      else st().engine.resetCounters(st().port(portArg(a)).num);
    } },
    { path: 'port/print', syntax: '[N]', help: 'print the port/endpoint table', text: true, run: (a, out) => printPorts(a, out, false, false) },
    { path: 'port/allprint', syntax: '[N]', help: 'print the port/endpoint table (including inactive port)', text: true, run: (a, out) => printPorts(a, out, true, false) },
    { path: 'port/mirror', syntax: 'N TARGET|none [in|out|both]', help: 'copy the frames of port N to monitor port TARGET', run: (a) => {
      const v = args(a);
      if (v.length < 2) return E.EINVAL;
      const n = portArg(v[0]);
      const dir = (v[2] ?? 'both') as 'in' | 'out' | 'both';
      if (!['in', 'out', 'both'].includes(dir)) return E.EINVAL;
      st().setMirror(n, v[1] === 'none' ? -1 : portArg(v[1]), dir);
    } },
    { path: 'port/impair', syntax: 'N in|out|both SPEC|off', help: 'link emulation on port N: delay, loss, rate... (README: Link emulation)', text: true, run: (a, out) => {
      const m = /^\s*(\S+)\s+(\S+)\s*(.*)$/.exec(a);
      if (!m) { out.push('usage: port/impair N in|out|both SPEC|off'); return E.EINVAL; }
      const n = portArg(m[1]);
      const dir = m[2];
      if (dir !== 'in' && dir !== 'out' && dir !== 'both') { out.push(`direction "${dir}" is not in, out or both`); return E.EINVAL; }
      try {
        st().setImpair(n, dir, parseImpairSpec(m[3]));
      } catch (e) {
        const text = impairErrorText(e);
        if (text === null) throw e;
        out.push(`port/impair: ${text}`);
        return E.EINVAL;
      }
    } },
    { path: 'port/showimpair', syntax: '[N]', help: 'link emulation settings and counters', text: true, run: async (a, out) => {
      const n = a.trim() === '' ? -1 : st().port(portArg(a)).num;
      for (const r of await st().impair.report(n)) out.push(...impairLines(`Port ${String(r.port).padStart(4, '0')} ${r.dir}`, r));
    } },
    { path: 'port/stormctl', syntax: 'N PPS', help: 'limit broadcast/multicast frames entering port N (0=off)', run: (a) => { const [p, v] = two(a); st().setStorm(portArg(p), strictInt(v, 'limit')); } },
    { path: 'port/setprotected', syntax: 'N 0/1', help: 'protected port: talks to unprotected ports only 1=Y 0=N', run: (a) => { const [p, v] = two(a); st().setProtected(portArg(p), strictInt(v, 'flag') !== 0); } },
    { path: 'port/police', syntax: 'N RATE [BURST]|off', help: 'at most RATE bit/s (k/m/g) enter port N, bursts of BURST bytes (k/m/g)', text: true, run: (a, out) => withMessage(out, () => {
      const v = args(a);
      if (v.length < 2 || v.length > 3) throw new SwitchError(E.EINVAL, 'usage: port/police N RATE [BURST] | port/police N off');
      const n = portArg(v[0]);
      if (v[1] === 'off' || v[1] === '0') return st().setPolice(n, null);
      const rate = parseRateBits(v[1]);
      if (rate === null) throw new SwitchError(E.EINVAL, `rate: "${v[1]}" is not a rate in bit/s (e.g. 10m, 1.5g, 800k)`);
      let burst: number | undefined;
      if (v[2] !== undefined) {
        const b = parseSizeBytes(v[2]);
        if (b === null) throw new SwitchError(E.EINVAL, `burst: "${v[2]}" is not a size in bytes (e.g. 64k, 1500)`);
        burst = b;
      }
      st().setPolice(n, rate, burst);
    }) },
    { path: 'vlan', syntax: '============', help: 'VLAN MANAGEMENT MENU', menu: true },
    { path: 'vlan/create', syntax: 'N', help: 'create the VLAN with tag N', run: (a) => { st().createVlan(strictInt(a, 'VLAN')); } },
    { path: 'vlan/remove', syntax: 'N', help: 'remove the VLAN with tag N', run: (a) => { st().removeVlan(strictInt(a, 'VLAN')); } },
    { path: 'vlan/addport', syntax: 'N PORT', help: 'add port to the vlan N (tagged)', run: (a) => { const [v, p] = two(a); st().addTagged(strictInt(v, 'VLAN'), portArg(p)); } },
    { path: 'vlan/delport', syntax: 'N PORT', help: 'delete port from the vlan N (tagged)', run: (a) => { const [v, p] = two(a); st().delTagged(strictInt(v, 'VLAN'), portArg(p)); } },
    { path: 'vlan/print', syntax: '[N]', help: 'print the list of defined vlan', text: true, run: (a, out) => { out.push(...vlanLines(a, false)); } },
    { path: 'vlan/allprint', syntax: '[N]', help: 'print the list of defined vlan (including inactive port)', text: true, run: (a, out) => { out.push(...vlanLines(a, true)); } },
    { path: 'vlan/foreigntags', syntax: 'pass|drop', help: 'tagged frames of a VLAN the port is not in: pass (as untagged payload) or drop', run: (a) => {
      const m = a.trim();
      if (m !== 'pass' && m !== 'drop') return E.EINVAL;
      st().setForeignTags(m);
    } },
    { path: 'filter', syntax: '============', help: 'PORT FILTER MENU', menu: true },
    { path: 'filter/add', syntax: 'N in|out RULE', help: 'append RULE: allow|deny [smac M] [dmac M] [type T] [vlan V|none] [src P] [dst P] [proto P] [sport P] [dport P]', text: true, run: (a, out) => withMessage(out, () => {
      const [n, dir, rest] = filterArgs(a, 1);
      const f = st().port(n).filters[dir];
      st().setFilter(n, dir, [...f.rules, rest], f.defaultAction);
    }) },
    { path: 'filter/insert', syntax: 'N in|out POS RULE', help: 'insert RULE before rule POS (1 = first)', text: true, run: (a, out) => withMessage(out, () => {
      const [n, dir, rest] = filterArgs(a, 2);
      const [posText, ...rule] = rest.split(/\s+/);
      const f = st().port(n).filters[dir];
      const pos = strictInt(posText, 'position');
      if (pos < 1 || pos > f.rules.length + 1) throw new SwitchError(E.EINVAL, `position ${pos} is out of range 1..${f.rules.length + 1}`);
      st().setFilter(n, dir, [...f.rules.slice(0, pos - 1), rule.join(' '), ...f.rules.slice(pos - 1)], f.defaultAction);
    }) },
    { path: 'filter/del', syntax: 'N in|out POS', help: 'delete rule POS (1 = first)', text: true, run: (a, out) => withMessage(out, () => {
      const [n, dir, rest] = filterArgs(a, 1);
      const f = st().port(n).filters[dir];
      const pos = strictInt(rest, 'position');
      if (pos < 1 || pos > f.rules.length) throw new SwitchError(E.ENXIO, `port ${n} ${dir} has no rule ${pos}`);
      st().setFilter(n, dir, f.rules.filter((_r, i) => i !== pos - 1), f.defaultAction);
    }) },
    { path: 'filter/default', syntax: 'N in|out allow|deny', help: 'what happens to frames no rule matches', text: true, run: (a, out) => withMessage(out, () => {
      const [n, dir, rest] = filterArgs(a, 1);
      if (rest !== 'allow' && rest !== 'deny') throw new SwitchError(E.EINVAL, `"${rest}" is not allow or deny`);
      st().setFilter(n, dir, st().port(n).filters[dir].rules, rest);
    }) },
    { path: 'filter/clear', syntax: 'N [in|out]', help: 'remove the rules of port N (both directions without in/out); default allow', run: (a) => {
      const v = args(a);
      if (v.length < 1 || v.length > 2 || (v[1] !== undefined && v[1] !== 'in' && v[1] !== 'out')) return E.EINVAL;
      const n = portArg(v[0]);
      st().port(n);
      for (const dir of v[1] ? [v[1] as 'in' | 'out'] : (['in', 'out'] as const)) st().setFilter(n, dir, [], 'allow');
    } },
    { path: 'filter/print', syntax: '[N]', help: 'print the filters with the hits of each rule', text: true, run: async (a, out) => {
      for (const f of await filterReport(a)) {
        out.push(`Port ${String(f.port).padStart(4, '0')} ${f.dir}: default ${f.default}, ${f.rules.length} rules, passed ${f.passed}, denied ${f.denied}`);
        for (const r of f.rules) out.push(` ${String(r.index).padStart(4, '0')} ${r.rule} (hits ${r.hits})`);
        out.push(` default ${f.default} (hits ${f.defaultHits})`);
      }
    } },
    { path: 'json', syntax: '============', help: 'JSON FORMS OF THE PRINT COMMANDS', menu: true },
    { path: 'json/showinfo', syntax: '', help: 'switch info as JSON', text: true, json: true, run: (_a, out) => { out.push(JSON.stringify(showinfo())); } },
    { path: 'json/port/print', syntax: '[N]', help: 'active ports as JSON', text: true, json: true, run: (a, out) => printPorts(a, out, false, true) },
    { path: 'json/port/allprint', syntax: '[N]', help: 'all ports as JSON', text: true, json: true, run: (a, out) => printPorts(a, out, true, true) },
    { path: 'json/port/showinfo', syntax: '', help: 'port settings as JSON', text: true, json: true, run: (_a, out) => { out.push(JSON.stringify({ numPorts: st().numPorts, hub: st().hub, counters: true })); } },
    { path: 'json/hash/print', syntax: '', help: 'MAC table as JSON', text: true, json: true, run: async (_a, out) => { out.push(JSON.stringify((await hashEntries()).map(({ mac, vlan, port, ageSeconds }) => ({ mac, vlan, port, ageSeconds })))); } },
    { path: 'json/hash/find', syntax: 'MAC [VLAN]', help: 'MAC lookup as JSON', text: true, json: true, run: async (a, out) => { out.push(JSON.stringify(await hashFind(a))); } },
    { path: 'json/hash/showinfo', syntax: '', help: 'hash settings as JSON', text: true, json: true, run: (_a, out) => {
      const s = st().engine.stats();
      out.push(JSON.stringify({ hashSize: st().hashSize, gcIntervalSeconds: st().gcIntervalSeconds, expireSeconds: st().expireSeconds, minPersistSeconds: st().minPersistSeconds, entries: s.macEntries, maxEntries: s.macMaxEntries, evictions: s.macEvictions }));
    } },
    { path: 'json/port/impair', syntax: '[N]', help: 'link emulation settings and counters as JSON', text: true, json: true, run: async (a, out) => {
      const n = a.trim() === '' ? -1 : st().port(portArg(a)).num;
      out.push(JSON.stringify(await st().impair.report(n)));
    } },
    { path: 'json/vlan/print', syntax: '', help: 'VLANs as JSON', text: true, json: true, run: (_a, out) => { out.push(JSON.stringify(vlanJson())); } },
    { path: 'json/fstp/print', syntax: '', help: 'spanning tree state as JSON', text: true, json: true, run: (_a, out) => { out.push(JSON.stringify(h.stp.json())); } },
    { path: 'json/filter/print', syntax: '[N]', help: 'filters and their hits as JSON', text: true, json: true, run: async (a, out) => { out.push(JSON.stringify(await filterReport(a))); } },
  ];
  return cmds;
}
