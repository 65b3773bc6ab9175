/**
 * What a running lab looks like now: every node with its state (running, exited), every link
 * with its ends, impairments, link state and counters (from the switch port that carries it, or
 * from the console of the plug that is the link), for `vde_lab status`, the web view and the
 * metrics of a run. Also the DOT graph of a lab (`vde_lab graph`).
 */
import fs from 'node:fs';
import { runCommand } from '../protocol/consoleclient.js';
import type { LabConfig } from './config.js';
import { alive } from './proc.js';
import type { LabState } from './state.js';

/** Counters of one link direction. */
export interface DirCounters { frames: number; bytes: number; drops: number }
/** A link as status shows it. */
export interface LinkStatus {
  name: string; type: string; a: string; b: string; up: boolean; ab: string; ba: string; capture: boolean;
  /** a -> b and b -> a (null when not readable). */
  counters: { ab: DirCounters; ba: DirCounters } | null;
  detail?: unknown;
}
/** A node as status shows it. */
export interface NodeStatus { name: string; kind: 'switch' | 'host' | 'vm' | 'nat'; state: 'running' | 'exited' | 'off'; detail?: string }
/** The whole lab now. */
export interface LabStatus { name: string; dir: string; privileged: boolean; upSinceMs: number; nodes: NodeStatus[]; links: LinkStatus[] }

async function json(sock: string, command: string): Promise<unknown> {
  try {
    const r = await runCommand(sock, command, { timeoutMs: 3000 });
    if (r.status !== 0) return null;
    return JSON.parse(r.data.join('\n')) as unknown;
  } catch {
    return null;
  }
}

interface PortJson { counters?: { inFrames: number; inBytes: number; outFrames: number; outBytes: number; drops: Record<string, number> } }

const sum = (o: Record<string, number> | undefined): number => Object.values(o ?? {}).reduce((x, y) => x + y, 0);

/** Reads the state of every node and link of a running lab. */
export async function labStatus(st: LabState): Promise<LabStatus> {
  const cfg = st.config;
  const nodes: NodeStatus[] = [];
  for (const [n, r] of Object.entries(st.switches)) nodes.push({ name: n, kind: 'switch', state: alive(r.pid, st.dir) ? 'running' : 'exited', detail: `pid ${r.pid}, ${r.mgmt}` });
  let netns = new Set<string>();
  try {
    netns = new Set(fs.readdirSync('/run/netns'));
  } catch {
    /* none */
  }
  for (const [n, r] of Object.entries(st.hosts)) nodes.push({ name: n, kind: 'host', state: r.holderPid ? (alive(r.holderPid, st.dir) ? 'running' : 'exited') : netns.has(r.netns) ? 'running' : 'exited', detail: `netns ${r.netns}${r.startupPid ? `, startup pid ${r.startupPid} ${alive(r.startupPid, st.dir) ? 'running' : 'ended'}` : ''}` });
  for (const [n, r] of Object.entries(st.vms)) nodes.push({ name: n, kind: 'vm', state: r.pid === null ? 'off' : alive(r.pid, st.dir) ? 'running' : 'exited', detail: r.pid ? `pid ${r.pid}, serial ${r.serial}` : 'powered off' });
  for (const [n, r] of Object.entries(st.nat)) nodes.push({ name: n, kind: 'nat', state: alive(r.pid, st.dir) ? 'running' : 'exited', detail: `pid ${r.pid}` });
  const links: LinkStatus[] = [];
  for (const [n, r] of Object.entries(st.links)) {
    const l = cfg?.links[n];
    if (!l) continue;
    const ls: LinkStatus = { name: n, type: l.type, a: l.a.ifname ? `${l.a.node}:${l.a.ifname}` : l.a.node, b: l.b.ifname ? `${l.b.node}:${l.b.ifname}` : l.b.node, up: !r.down, ab: r.ab, ba: r.ba, capture: !!(r.capturePid && alive(r.capturePid, st.dir)), counters: null };
    let port: number | undefined;
    if (l.type === 'host-switch') port = r.port;
    if (l.type === 'vm-switch') port = st.vms[l.a.node]?.port;
    if (port !== undefined) {
      const j = (await json(st.switches[l.b.node].mgmt, `json/port/print ${port}`)) as PortJson | PortJson[] | null;
      const p = Array.isArray(j) ? j[0] : j;
      // the port receives what a sends (a -> b) and sends what b sends to a
      if (p?.counters) ls.counters = { ab: { frames: p.counters.inFrames, bytes: p.counters.inBytes, drops: sum(p.counters.drops) }, ba: { frames: p.counters.outFrames, bytes: p.counters.outBytes, drops: 0 } };
    } else if (r.mgmts.length) {
      const infos = await Promise.all(r.mgmts.map((m) => json(m, 'json/showinfo')));
      ls.detail = infos;
      // a plug reports the frames its impairment stages saw, per direction (LR = a -> b)
      const dirs = new Map<string, { frames: number; drops: number }>();
      infos.forEach((i, k) => {
        for (const x of (i as { impair?: Array<{ dir: string; values?: Record<string, number> }> } | null)?.impair ?? []) {
          const v = x.values ?? {};
          const key = r.mgmts.length === 2 ? (k === 0 ? 'ab' : 'ba') : x.dir === 'LR' ? 'ab' : 'ba';
          if (r.mgmts.length === 2 && x.dir !== 'LR') continue;
          dirs.set(key, { frames: v.frames ?? 0, drops: (v.lost ?? 0) + (v.overCapacity ?? 0) + (v.overMtu ?? 0) + (v.linkDown ?? 0) });
        }
      });
      const ab = dirs.get('ab');
      const ba = dirs.get('ba');
      if (ab || ba) ls.counters = { ab: { frames: ab?.frames ?? 0, bytes: 0, drops: ab?.drops ?? 0 }, ba: { frames: ba?.frames ?? 0, bytes: 0, drops: ba?.drops ?? 0 } };
    }
    links.push(ls);
  }
  return { name: st.name, dir: st.dir, privileged: st.privileged, upSinceMs: st.startedMs, nodes, links };
}

/** Status as text lines. */
export function statusText(s: LabStatus): string {
  const out = [`lab ${s.name} (${s.dir}${s.privileged ? '' : ', unprivileged'}), up ${Math.round((Date.now() - s.upSinceMs) / 1000)} s`, '', 'NODE          KIND    STATE    DETAIL'];
  for (const n of s.nodes) out.push(`${n.name.padEnd(13)} ${n.kind.padEnd(7)} ${n.state.padEnd(8)} ${n.detail ?? ''}`);
  out.push('', 'LINK          A -> B                   STATE  A->B frames/drops  B->A frames/drops  IMPAIRMENTS');
  for (const l of s.links) {
    const c = l.counters;
    const cnt = (d?: DirCounters): string => (d ? `${d.frames}/${d.drops}` : '-').padEnd(18);
    const imp = [l.ab && `ab: ${l.ab}`, l.ba && `ba: ${l.ba}`].filter(Boolean).join('; ') || '-';
    out.push(`${l.name.padEnd(13)} ${`${l.a} -> ${l.b}`.padEnd(24)} ${(l.up ? 'up' : 'DOWN').padEnd(6)} ${cnt(c?.ab)} ${cnt(c?.ba)} ${imp}${l.capture ? ' [capturing]' : ''}`);
  }
  return `${out.join('\n')}\n`;
}

/** The lab's topology in Graphviz DOT. */
export function labDot(cfg: LabConfig): string {
  const q = (s: string): string => JSON.stringify(s);
  const out = [`graph ${q(cfg.name)} {`, '  layout=neato; overlap=false; splines=true;', '  node [fontname="sans-serif"]; edge [fontname="sans-serif", fontsize=10];'];
  for (const n of Object.keys(cfg.switches)) out.push(`  ${q(n)} [shape=box, style=filled, fillcolor="#dbe9ff"];`);
  for (const [n, h] of Object.entries(cfg.hosts)) out.push(`  ${q(n)} [shape=ellipse, label=${q(`${n}\n${Object.values(h.interfaces).flatMap((i) => i.addresses).join('\n')}`)}];`);
  for (const n of Object.keys(cfg.vms)) out.push(`  ${q(n)} [shape=component, style=filled, fillcolor="#fff2cc"];`);
  for (const [n, x] of Object.entries(cfg.nat)) {
    out.push(`  ${q(`nat:${n}`)} [shape=hexagon, label=${q(`${n}\nNAT`)}];`);
    out.push(`  ${q(`nat:${x.switch}:${n}`)} [shape=point, width=0];`.replace(/.*/, `  ${q(`nat:${n}`)} -- ${q(x.switch)} [style=dashed];`));
  }
  for (const [n, l] of Object.entries(cfg.links)) {
    const label = [n, l.vlan !== undefined ? `vlan ${l.vlan}` : '', l.via !== 'local' ? l.via : '', l.ab ? `→ ${l.ab}` : '', l.ba ? `← ${l.ba}` : ''].filter(Boolean).join('\n');
    out.push(`  ${q(l.a.node)} -- ${q(l.b.node)} [label=${q(label)}${l.type === 'switch-switch' ? ', penwidth=2' : ''}];`);
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}
