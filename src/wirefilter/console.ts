/**
 * wirefilter's management console (`-M SOCKET`, the stdin console with `-v`, rc files and
 * `load`): vde2's commands with its banner, `VDEwf$ ` prompt, help text, showinfo/showedges/
 * showcurrent layouts and Markov debug traces, byte for byte, on the shared console line
 * protocol (protocol/console.ts). vde-ts adds `impair` (netem-style settings on top of vde2's)
 * and `json/showinfo`, and appends counter lines to showinfo. A value vde2 would silently ignore
 * (`delay abc`) is refused with EINVAL and logged with the reason.
 */
import { E } from '../core/errors.js';
import { log } from '../core/log.js';
import { VDE_TS_VERSION } from '../core/version.js';
import { IMPAIR_COUNTERS, impairErrorText, parseImpairCommand } from '../ports/impair.js';
import { ConsoleServer, CONSOLE_END, type ConsoleCommand, type Session } from '../protocol/console.js';
import type { WireFilter } from './filter.js';
import { fmtG, fmtWireValue, LR, RL, WfValueError, type WfParam } from './model.js';

/** The vde2 release Debian ships, as wirefilter's banner names it. */
export const WF_VDE2_VERSION = '2.3.2';
export const WF_BANNER = `\nVDE wirefilter V.${WF_VDE2_VERSION}\n(C) R.Davoli 2005,2006 - GPLv2\n`;
export const WF_PROMPT = '\nVDEwf$ ';
/** What vde2's wirefilter answers to logout before it closes the session. */
export const WF_LOGOUT = '1-01 Unknown error -1\n';
/** Longest accepted console line. */
export const MAX_WF_LINE_BYTES = 4096;
/** Debug category of the Markov traces (markov-debug). */
export const MARKOV_DEBUG = 'markov';

/** vde2's help text, then ours. */
export const WF_HELP = [
  'COMMAND      HELP',
  '------------ ------------',
  'help         print a summary of mgmt commands',
  'load         load a configuration file',
  'showinfo     show status and parameter values',
  'loss         set loss percentage',
  'lostburst    mean length of lost packet bursts',
  'delay        set delay ms',
  'dup          set dup packet percentage',
  'bandwidth    set channel bandwidth bytes/sec',
  'speed        set interface speed bytes/sec',
  'noise        set noise factor bits/Mbyte',
  'mtu          set channel MTU (bytes)',
  'chanbufsize  set channel buffer size (bytes)',
  'fifo         set channel fifoness',
  'shutdown     shut the channel down',
  'logout       log out from this mgmt session',
  'markov-numnodes n  markov mode: set number of states',
  'markov-setnode n   markov mode: set current state',
  "markov-name n,name markov mode: set state's name",
  'markov-time ms     markov mode: transition period',
  'setedge n1,n2,w    markov mode: set edge weight',
  'showinfo n         markov mode: show parameter values',
  'showedges n        markov mode: show edge weights',
  'showcurrent        markov mode: show current state',
  'markov-debug n     markov mode: set debug level',
  'impair DIR SPEC    vde-ts: netem-style settings, DIR = LR|RL|both (README: Link emulation)',
  'json/showinfo      vde-ts: settings and counters as JSON',
];

/** C's atoi: the leading whole number, 0 when there is none. */
function atoi(s: string): number {
  const m = /^\s*[+-]?\d+/.exec(s);
  return m ? parseInt(m[0], 10) : 0;
}

/** What the console needs besides the filter. */
export interface WfConsoleHost {
  filter: WireFilter;
  shutdown(reason: string): void;
}

/** The lines of vde2's showinfo for a node, then vde-ts's counters. */
export async function showinfoLines(f: WireFilter, node: number): Promise<string[]> {
  const m = f.model;
  const out: string[] = [`WireFilter: ${f.bidirectional ? 'bi' : 'mono'}directional`];
  if (m.numNodes > 1) out.push(`Node ${node} "${m.nodes[node].name}" (0,..,${m.numNodes - 1}) Markov-time ${fmtG(m.markovTimeMs)}`);
  const rows: Array<[string, WfParam]> = [
    ['Loss  ', 'loss'], ['Lburst', 'lostburst'], ['Delay ', 'delay'], ['Dup   ', 'dup'], ['Bandw ', 'band'], ['Speed ', 'speed'], ['Noise ', 'noise'],
  ];
  const wv = (p: WfParam, d: number): string => fmtWireValue(m.get(p, d, node));
  const mtu = (d: number): string => fmtG(m.get('mtu', d, node).value - m.get('mtu', d, node).plus);
  const [vl, vr] = await f.values();
  if (f.bidirectional) {
    for (const [label, p] of rows) out.push(`${label} L->R ${wv(p, LR)}   R->L ${wv(p, RL)}`);
    out.push(`MTU    L->R ${mtu(LR)}     R->L ${mtu(RL)}   `);
    out.push(`Cap.   L->R ${wv('chanbufsize', LR)}   R->L ${wv('chanbufsize', RL)}`);
    out.push(`Current Delay Queue size:   L->R ${vl.heldBytes ?? 0}      R->L ${vr.heldBytes ?? 0}   `);
  } else {
    for (const [label, p] of rows) out.push(`${label} ${wv(p, LR)}`);
    out.push(`MTU    ${mtu(LR)}`);
    out.push(`Cap.   ${wv('chanbufsize', LR)}`);
    out.push(`Current Delay Queue size:   ${vl.heldBytes ?? 0}`);
  }
  out.push(`Fifoness ${m.nofifo ? 'FALSE' : 'TRUE'}`);
  out.push(`Waiting packets in delay queues ${(vl.held ?? 0) + (f.bidirectional ? (vr.held ?? 0) : 0)}`);
  const dirs: Array<[string, number, Record<string, number>]> = f.bidirectional ? [['L->R', LR, vl], ['R->L', RL, vr]] : [['L->R', LR, vl]];
  for (const [label, d, v] of dirs) {
    if (f.extraText(d)) out.push(`Extra  ${label} ${f.extraText(d)}`);
    out.push(`Counters ${label} ${IMPAIR_COUNTERS.filter((k) => k !== 'heldBytes').map((k) => `${k} ${v[k] ?? 0}`).join(' ')} seed ${v.seed ?? '-'}`);
  }
  return out;
}

/** The JSON form of showinfo. */
export async function showinfoJson(f: WireFilter): Promise<object> {
  const m = f.model;
  const [vl, vr] = await f.values();
  const dir = (d: number, v: Record<string, number>): object => ({
    values: Object.fromEntries(Object.keys(m.nodes[m.current].v).map((p) => [p, m.get(p as WfParam, d)])),
    extra: f.extraText(d),
    counters: v,
  });
  return {
    vdeTsVersion: VDE_TS_VERSION,
    pid: process.pid,
    bidirectional: f.bidirectional,
    fifo: !m.nofifo,
    markov: { nodes: m.numNodes, current: m.current, name: m.nodes[m.current].name, timeMs: m.markovTimeMs },
    LR: dir(LR, vl),
    RL: dir(RL, vr),
  };
}

/** Creates the console of a filter; `extra` commands (capture, events) go after vde2's, so they never shadow one. */
export function createWfConsole(h: WfConsoleHost, extra: ConsoleCommand[] = []): ConsoleServer {
  const server = new ConsoleServer({
    banner: WF_BANNER,
    prompt: WF_PROMPT,
    maxLineBytes: MAX_WF_LINE_BYTES,
    echoLine: (file, line) => `${WF_PROMPT} (${file}) ${line}\n`,
    debugCategories: [[MARKOV_DEBUG, 0o3700, 'Markov node changes']],
    endOfSession: WF_LOGOUT,
  });
  server.setCommands([...wfCommands(server, h), ...extra]);
  h.filter.onNodeChange = ({ from, to }) => {
    const n = h.filter.model.nodes;
    server.debugRaw(MARKOV_DEBUG, `${String(3800 + to).padStart(4, '0')} Node ${from} "${n[from]?.name ?? ''}" -> ${to} "${n[to]?.name ?? ''}"\n`);
  };
  return server;
}

/** The command table, in vde2's order (the first command whose name starts the line runs). */
export function wfCommands(server: ConsoleServer, h: WfConsoleHost): ConsoleCommand[] {
  const f = h.filter;
  const m = f.model;
  const setter = (param: WfParam, name: string): ConsoleCommand => ({
    path: name,
    syntax: '',
    help: '',
    run: (a) => {
      try {
        m.set(param, a);
      } catch (e) {
        if (!(e instanceof WfValueError)) throw e;
        log('warning', `${name}: ${e.message}`);
        return E.EINVAL;
      }
      f.apply();
    },
  });
  const nodeArg = (a: string): number | null => {
    const n = a.trim() === '' ? m.current : atoi(a);
    return n >= 0 && n < m.numNodes ? n : null;
  };
  return [
    { path: 'help', syntax: '', help: '', text: true, run: (_a, out) => { out.push(...WF_HELP); } },
    { path: 'showinfo', syntax: '', help: '', text: true, run: async (a, out) => {
      const n = nodeArg(a);
      if (n === null) return E.EINVAL;
      out.push(...(await showinfoLines(f, n)));
    } },
    server.loadCommand(),
    setter('delay', 'delay'),
    setter('loss', 'loss'),
    setter('lostburst', 'lostburst'),
    setter('dup', 'dup'),
    setter('band', 'bandwidth'),
    setter('band', 'band'),
    setter('speed', 'speed'),
    setter('chanbufsize', 'chanbufsize'),
    setter('chanbufsize', 'capacity'),
    setter('noise', 'noise'),
    setter('mtu', 'mtu'),
    { path: 'fifo', syntax: '', help: '', run: (a) => {
      m.nofifo = atoi(a) === 0;
      f.apply();
    } },
    { path: 'markov-numnodes', syntax: '', help: '', run: (a) => {
      const n = atoi(a);
      if (n <= 0) return E.EINVAL;
      try {
        m.resize(n);
      } catch (e) {
        log('warning', `markov-numnodes: ${(e as Error).message}`);
        return E.EINVAL;
      }
      f.apply();
      f.markovStart();
    } },
    { path: 'markov-setnode', syntax: '', help: '', run: (a) => {
      const n = atoi(a);
      if (n < 0 || n >= m.numNodes) return E.EINVAL;
      f.setNode(n);
    } },
    { path: 'markov-name', syntax: '', help: '', run: (a) => {
      const r = /^[ \t]*[+-]?\d*[ \t]*,?(.*)$/s.exec(a);
      const n = atoi(a);
      if (!r || n < 0 || n >= m.numNodes) return E.EINVAL;
      m.nodes[n].name = r[1].replace(/\n$/, '');
    } },
    { path: 'markov-time', syntax: '', help: '', run: (a) => {
      const v = Number((/^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?/.exec(a) ?? ['0'])[0]);
      if (!(v > 0) || !Number.isFinite(v)) return E.EINVAL;
      m.markovTimeMs = v;
      f.markovStart();
    } },
    { path: 'setedge', syntax: '', help: '', run: (a) => {
      const r = /^\s*(\d+)\s*,\s*(\d+)\s*,\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*$/.exec(a);
      if (!r) return E.EINVAL;
      try {
        m.setEdge(Number(r[1]), Number(r[2]), Number(r[3]));
      } catch (e) {
        log('warning', `setedge: ${(e as Error).message}`);
        return E.EINVAL;
      }
    } },
    { path: 'showedges', syntax: '', help: '', text: true, run: (a, out) => {
      const n = nodeArg(a);
      if (n === null) return E.EINVAL;
      for (let j = 0; j < m.numNodes; j++)
        if (m.adj[n][j] !== 0) out.push(`Edge ${String(n).padEnd(2)}->${String(j).padEnd(2)} "${m.nodes[n].name}"->"${m.nodes[j].name}" weigth ${fmtG(m.adj[n][j])}`);
    } },
    { path: 'showcurrent', syntax: '', help: '', text: true, run: (_a, out) => {
      out.push(`Current Markov Node ${m.current} "${m.nodes[m.current].name}" (0,..,${m.numNodes - 1})`);
    } },
    { path: 'markov-debug', syntax: '', help: '', run: (a, _o, s: Session) => {
      const n = atoi(a);
      if (!s.interactive || n < 0) return E.EINVAL;
      if (n > 0) s.debug.add(MARKOV_DEBUG);
      else s.debug.delete(MARKOV_DEBUG);
    } },
    { path: 'logout', syntax: '', help: '', run: () => CONSOLE_END },
    { path: 'shutdown', syntax: '', help: '', run: (_a, _o, s) => {
      setImmediate(() => h.shutdown(`shutdown from ${s.name}`));
      return CONSOLE_END;
    } },
    { path: 'impair', syntax: '', help: '', text: true, run: (a, out) => {
      try {
        const { dir, spec } = parseImpairCommand(a);
        f.setExtra(dir, spec);
      } catch (e) {
        const text = impairErrorText(e);
        if (text === null) throw e;
        out.push(text.startsWith('usage:') ? text : `impair: ${text}`);
        return E.EINVAL;
      }
    } },
    { path: 'json/showinfo', syntax: '', help: '', text: true, json: true, run: async (_a, out) => { out.push(JSON.stringify(await showinfoJson(f))); } },
  ];
}
