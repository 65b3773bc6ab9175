/**
 * The management console of the switch: vde2's command set and line protocol (PROTOCOL.md §6)
 * for sessions on the -M socket and on stdin, plus JSON forms of every print command under
 * `json/...`. Commands are looked up as vde2 does (the first registered path that is a prefix of
 * the input, the rest is the argument); unlike vde2, input is split into lines, `\r` is removed
 * and an over-long line is refused instead of being cut.
 */
import fs from 'node:fs';
import { log } from '../core/log.js';
import { hashLine, helpLine, portJson, portLines, statusLine } from './format.js';
import { lookupGroup, lookupUser } from '../core/perms.js';
import { E, SwitchError, type SwitchState } from './state.js';

/** Version vde2 clients see in the banner. */
export const VDE_VERSION = '2.3.3';
export const BANNER = `VDE switch V.${VDE_VERSION}\n(C) Virtual Square Team (coord. R. Davoli) 2005,2006,2007 - GPLv2\n`;
export const PROMPT = '\nvde$ ';
export const DATA_HEADER = "0000 DATA END WITH '.'";
export const END_OF_SESSION = '9999 END OF SESSION';
/** Longest accepted console line (vde2 cut reads at 128 bytes; we refuse longer lines whole). */
export const MAX_LINE_BYTES = 4096;
/** Deepest nesting of `load` scripts. */
export const MAX_LOAD_DEPTH = 8;

/** Debug categories with vde2's octal tags. */
export const DEBUG_CATEGORIES: Array<[string, number, string]> = [
  ['hash/+', 0o11, 'hash: new element'],
  ['hash/-', 0o12, 'hash: discarded element'],
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

export interface Session {
  readonly name: string;
  readonly interactive: boolean; // false for rc files
  debug: Set<string>;
  write(s: string): void;
  end(): void;
}

export interface StpControl {
  enabled(): boolean;
  setEnabled(on: boolean): void;
  setEdge(port: number, on: boolean): void;
  setBonus(port: number, cost: number): void;
  printLines(): string[];
  json(): object;
}

export interface ConsoleHost {
  state: SwitchState;
  info(): { dir: string; mode: number; mgmtPath: string | null; mgmtMode: number; mac: string; priority: number; startMs: number };
  stp: StpControl;
  shutdown(reason: string): void;
}

interface Command {
  path: string;
  syntax: string;
  help: string;
  text?: boolean;
  menu?: boolean;
  run?: (arg: string, out: string[], s: Session) => number | void;
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

function parseMac(s: string): Buffer | null {
  const m = /^([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})$/i.exec(s.trim());
  return m ? Buffer.from(m.slice(1).map((x) => parseInt(x, 16))) : null;
}

/** The command table and interpreter shared by all sessions. */
export class Console {
  private commands: Command[];
  private sessions = new Set<Session>();
  private loadDepth = 0;

  constructor(private host: ConsoleHost) {
    this.commands = this.table();
  }

  /** Registers a session for debug output. */
  addSession(s: Session): void {
    this.sessions.add(s);
  }

  /** Forgets a session. */
  removeSession(s: Session): void {
    this.sessions.delete(s);
  }

  /** Sends an asynchronous debug line to every session subscribed to the category. */
  debug(category: string, msg: string): void {
    const cat = DEBUG_CATEGORIES.find((c) => c[0] === category);
    if (!cat) return;
    for (const s of this.sessions)
      if (s.debug.has(category)) s.write(`3${cat[1].toString(8).padStart(3, '0')} ${category} ${msg}\n`);
  }

  /**
   * Runs one input line for a session and returns the reply bytes (data block + status line),
   * or null for lines that produce only a prompt (empty, comments). `logout`/`shutdown` return
   * the end-of-session marker.
   */
  execute(line: string, s: Session): string | null {
    let input = line.replace(/\r$/, '').replace(/^[ \t]+/, '');
    if (input === '' || input.startsWith('#')) return null;
    if (Buffer.byteLength(input) > MAX_LINE_BYTES) return `${statusLine(E.EINVAL)}\n`;
    input = input.replace(/[ \t]+$/, '');
    const cmd = this.commands.find((c) => !c.menu && input.startsWith(c.path));
    if (!cmd || !cmd.run) return `${statusLine(E.ENOSYS)}\n`;
    const arg = input.slice(cmd.path.length).replace(/^[ \t]+/, '');
    const out: string[] = [];
    let errno = 0;
    try {
      errno = cmd.run(arg, out, s) ?? 0;
    } catch (e) {
      if (e instanceof SwitchError) errno = e.errno;
      else {
        log('error', `console: ${cmd.path}: ${(e as Error).stack ?? e}`);
        errno = E.EINVAL;
      }
    }
    if (errno < 0) return END_OF_SESSION; // logout / shutdown
    let reply = '';
    if (cmd.text) reply += `${DATA_HEADER}\n${out.map((l) => `${l}\n`).join('')}.\n`;
    return `${reply}${statusLine(errno)}\n`;
  }

  /** Runs a script file line by line, as `load` and rc files do; returns errors with line numbers. */
  runScript(file: string, s: Session, echo: boolean): { errno: number; output: string; errors: string[] } {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return { errno: code === 'ENOENT' ? E.ENOENT : code === 'EACCES' ? 13 : E.EINVAL, output: '', errors: [`${file}: ${(e as Error).message}`] };
    }
    if (this.loadDepth >= MAX_LOAD_DEPTH) return { errno: E.EINVAL, output: '', errors: [`${file}: load nested deeper than ${MAX_LOAD_DEPTH}`] };
    this.loadDepth++;
    let output = '';
    const errors: string[] = [];
    try {
      text.split('\n').forEach((raw, i) => {
        const line = raw.replace(/\r$/, '');
        if (echo && line.trim() !== '' && !line.trim().startsWith('#')) output += `vde[${file}]: ${line}\n`;
        const r = this.execute(line, s);
        if (r === null) return;
        if (echo) output += r;
        const status = /^1(\d{3}) (.*)$/m.exec(r.split('\n').reverse().find((l) => /^1\d{3} /.test(l)) ?? '');
        if (status && status[1] !== '000') errors.push(`${file}:${i + 1}: ${line.trim()}: ${status[2]}`);
      });
    } finally {
      this.loadDepth--;
    }
    return { errno: 0, output, errors };
  }

  private table(): Command[] {
    const h = this.host;
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
          out.push(` -- Port ${String(p.num).padStart(4, '0')} tagged=${p.untagged === v ? 0 : 1} active=${active ? 1 : 0} status=Forwarding`);
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
        version: VDE_VERSION,
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
      };
    };
    const hashEntries = () => st().engine.macTable().sort((a, b) => (a.bucket ?? 0) - (b.bucket ?? 0));
    const hashFind = (a: string): ReturnType<SwitchState['engine']['macFind']> => {
      const v = args(a);
      const mac = parseMac(v[0] ?? '');
      if (!mac) throw new SwitchError(E.EINVAL, 'bad MAC address');
      const e = st().engine.macFind(mac, v[1] ? int(v[1]) : 0);
      if (!e) throw new SwitchError(E.ENODEV, 'not found');
      return e;
    };
    const portInfoLines = (): string[] => [`Numports=${st().numPorts}`, `HUB=${st().hub}`, `counters=true`];
    const cmds: Command[] = [
      { path: 'ds', syntax: '============', help: 'DATA SOCKET MENU', menu: true },
      { path: 'ds/showinfo', syntax: '', help: 'show ds info', text: true, run: (_a, out) => { const i = h.info(); out.push(`ctl dir ${i.dir}`, `std mode 0${i.mode.toString(8).padStart(3, '0')}`); } },
      { path: 'help', syntax: '[arg]', help: 'Help (limited to arg when specified)', text: true, run: (a, out) => {
        out.push(helpLine('COMMAND PATH', 'SYNTAX', 'HELP'), helpLine('------------', '--------------', '------------'));
        for (const c of this.commands) if (c.path.startsWith(a.trim())) out.push(helpLine(c.path, c.syntax, c.help));
      } },
      { path: 'logout', syntax: '', help: 'logout from this mgmt terminal', run: () => -1 },
      { path: 'shutdown', syntax: '', help: 'shutdown of the switch', run: (_a, _o, s) => { setImmediate(() => h.shutdown(`shutdown from ${s.name}`)); return -1; } },
      { path: 'showinfo', syntax: '', help: 'show switch version and info', text: true, run: (_a, out) => {
        const i = showinfo() as { pid: number; mac: string; uptimeSeconds: number };
        out.push(...BANNER.trimEnd().split('\n'), '', `pid ${i.pid} MAC ${i.mac} uptime ${i.uptimeSeconds}`);
        const inf = h.info();
        if (inf.mgmtPath) out.push(`mgmt ${inf.mgmtPath} perm 0${inf.mgmtMode.toString(8).padStart(3, '0')}`);
      } },
      { path: 'load', syntax: 'path', help: 'load a configuration script', text: true, run: (a, out, s) => {
        if (!a.trim()) return E.EINVAL;
        const r = this.runScript(a.trim(), s, true);
        out.push(...r.output.replace(/\n$/, '').split('\n').filter((l, i, arr) => l !== '' || i < arr.length - 1));
        return r.errno;
      } },
      { path: 'debug', syntax: '============', help: 'DEBUG MENU', menu: true },
      { path: 'debug/list', syntax: '', help: 'list debug categories', text: true, run: (a, out, s) => {
        const m = DEBUG_CATEGORIES.filter((c) => c[0].startsWith(a.trim()));
        if (!m.length) return E.ENOENT;
        out.push(`${'CATEGORY'.padEnd(22)} TAG STATUS HELP`, `${'------------'.padEnd(22)} --- ------ ----`);
        for (const [c, tag, help] of m) out.push(`${c.padEnd(22)} ${tag.toString(8).padStart(3, '0')} ${(s.debug.has(c) ? 'ON' : 'OFF').padEnd(6)} ${help}`);
      } },
      { path: 'debug/add', syntax: 'dbgpath', help: 'add debug output', run: (a, _o, s) => {
        if (!s.interactive) return E.EBADF;
        const m = DEBUG_CATEGORIES.filter((c) => c[0].startsWith(a.trim()) && a.trim() !== '');
        if (!m.length) return E.EINVAL;
        if (m.every((c) => s.debug.has(c[0]))) return E.EEXIST;
        m.forEach((c) => s.debug.add(c[0]));
      } },
      { path: 'debug/del', syntax: 'dbgpath', help: 'del debug output', run: (a, _o, s) => {
        if (!s.interactive) return E.EBADF;
        const m = DEBUG_CATEGORIES.filter((c) => c[0].startsWith(a.trim()) && a.trim() !== '');
        if (!m.length) return E.EINVAL;
        m.forEach((c) => s.debug.delete(c[0]));
      } },
      { path: 'hash', syntax: '============', help: 'HASH TABLE MENU', menu: true },
      { path: 'hash/showinfo', syntax: '', help: 'show hash info', text: true, run: (_a, out) => {
        out.push(`Hash size ${st().hashSize}`, `GC interval ${st().gcIntervalSeconds} secs`, `GC expire ${st().expireSeconds} secs`, `Min persistence ${st().minPersistSeconds} secs`);
      } },
      { path: 'hash/setsize', syntax: 'N', help: 'change hash size', run: (a) => {
        const n = strictInt(a, 'size');
        if (n < 1) return E.EINVAL;
        st().hashSize = n;
        st().engine.resizeMacTable(n);
      } },
      { path: 'hash/setgcint', syntax: 'N', help: 'change garbage collector interval', run: (a) => { const n = strictInt(a, 'interval'); if (n < 1) return E.EINVAL; st().gcIntervalSeconds = n; st().applyAging(); } },
      { path: 'hash/setexpire', syntax: 'N', help: 'change hash entries expire time', run: (a) => { st().expireSeconds = strictInt(a, 'expire'); st().applyAging(); } },
      { path: 'hash/setminper', syntax: 'N', help: 'minimum persistence time', run: (a) => { st().minPersistSeconds = strictInt(a, 'persistence'); st().applyAging(); } },
      { path: 'hash/print', syntax: '', help: 'print the hash table', text: true, run: (_a, out) => { for (const e of hashEntries()) out.push(hashLine(e)); } },
      { path: 'hash/find', syntax: 'MAC [VLAN]', help: 'MAC lookup', text: true, run: (a, out) => { out.push(hashLine(hashFind(a)!, 1)); } },
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
      { path: 'port/stormctl', syntax: 'N PPS', help: 'limit broadcast/multicast frames entering port N (0=off)', run: (a) => { const [p, v] = two(a); st().setStorm(portArg(p), strictInt(v, 'limit')); } },
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
      { path: 'json', syntax: '============', help: 'JSON FORMS OF THE PRINT COMMANDS', menu: true },
      { path: 'json/showinfo', syntax: '', help: 'switch info as JSON', text: true, run: (_a, out) => { out.push(JSON.stringify(showinfo())); } },
      { path: 'json/port/print', syntax: '[N]', help: 'active ports as JSON', text: true, run: (a, out) => printPorts(a, out, false, true) },
      { path: 'json/port/allprint', syntax: '[N]', help: 'all ports as JSON', text: true, run: (a, out) => printPorts(a, out, true, true) },
      { path: 'json/port/showinfo', syntax: '', help: 'port settings as JSON', text: true, run: (_a, out) => { out.push(JSON.stringify({ numPorts: st().numPorts, hub: st().hub, counters: true })); } },
      { path: 'json/hash/print', syntax: '', help: 'MAC table as JSON', text: true, run: (_a, out) => { out.push(JSON.stringify(hashEntries().map(({ mac, vlan, port, ageSeconds }) => ({ mac, vlan, port, ageSeconds })))); } },
      { path: 'json/hash/find', syntax: 'MAC [VLAN]', help: 'MAC lookup as JSON', text: true, run: (a, out) => { out.push(JSON.stringify(hashFind(a))); } },
      { path: 'json/hash/showinfo', syntax: '', help: 'hash settings as JSON', text: true, run: (_a, out) => {
        out.push(JSON.stringify({ hashSize: st().hashSize, gcIntervalSeconds: st().gcIntervalSeconds, expireSeconds: st().expireSeconds, minPersistSeconds: st().minPersistSeconds, entries: st().engine.macCount() }));
      } },
      { path: 'json/vlan/print', syntax: '', help: 'VLANs as JSON', text: true, run: (_a, out) => { out.push(JSON.stringify(vlanJson())); } },
      { path: 'json/fstp/print', syntax: '', help: 'spanning tree state as JSON', text: true, run: (_a, out) => { out.push(JSON.stringify(h.stp.json())); } },
    ];
    return cmds;
  }
}

