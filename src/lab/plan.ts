/**
 * What `vde_lab up` must do to go from the configuration that runs to a new one, in the spirit
 * of snabb's `configure()`: compare the two, and list the actions (destroy what went or changed
 * beyond repair, create what is new, change impairments and captures in place). A node that is
 * recreated takes its links with it; a host whose links are recreated gets its routes again.
 * Pure: the result depends on the two configurations only (tested in test/unit/lab-plan.test.ts).
 */
import type { LabConfig, LinkConf } from './config.js';

/** One step of a plan. */
export type Action =
  | { op: 'destroy-link' | 'destroy-nat' | 'destroy-vm' | 'destroy-host' | 'destroy-switch'; name: string }
  | { op: 'create-switch' | 'create-host' | 'create-vm' | 'create-nat' | 'create-link' | 'host-routes' | 'host-startup'; name: string }
  | { op: 'impair-link'; name: string; ab: string; ba: string }
  | { op: 'capture-link'; name: string; on: boolean };

const EMPTY: LabConfig = { name: '', switches: {}, hosts: {}, vms: {}, links: {}, nat: {}, groups: {}, tasks: {} };

const same = (x: unknown, y: unknown): boolean => JSON.stringify(x) === JSON.stringify(y);

/** Nodes a link depends on. */
function linkNodes(l: LinkConf): string[] {
  return [l.a.node, l.b.node];
}

/** The actions that turn `old` (null: nothing runs) into `next`, in the order they must run. */
export function plan(old: LabConfig | null, next: LabConfig): Action[] {
  const o = old ?? EMPTY;
  const out: Action[] = [];
  const gone = (a: Record<string, unknown>, b: Record<string, unknown>, n: string): boolean => !(n in b) || !same(a[n], b[n]);
  const swRe = new Set(Object.keys(o.switches).filter((n) => gone(o.switches, next.switches, n)));
  const hostRe = new Set(Object.keys(o.hosts).filter((n) => gone(o.hosts, next.hosts, n)));
  const vmRe = new Set(Object.keys(o.vms).filter((n) => gone(o.vms, next.vms, n)));
  const nodeRe = new Set([...swRe, ...hostRe, ...vmRe]);
  const linkRe = new Set<string>();
  for (const [n, l] of Object.entries(o.links)) {
    const nl = next.links[n];
    const structural = (x: LinkConf): unknown => ({ ...x, ab: '', ba: '', capture: false });
    if (!nl || !same(structural(l), structural(nl)) || linkNodes(l).some((x) => nodeRe.has(x))) linkRe.add(n);
  }
  const natRe = new Set(Object.keys(o.nat).filter((n) => gone(o.nat, next.nat, n) || swRe.has(o.nat[n].switch)));
  for (const n of [...linkRe].sort()) out.push({ op: 'destroy-link', name: n });
  for (const n of [...natRe].sort()) out.push({ op: 'destroy-nat', name: n });
  for (const n of [...vmRe].sort()) out.push({ op: 'destroy-vm', name: n });
  for (const n of [...hostRe].sort()) out.push({ op: 'destroy-host', name: n });
  for (const n of [...swRe].sort()) out.push({ op: 'destroy-switch', name: n });
  const isNew = (had: Record<string, unknown>, re: Set<string>, n: string): boolean => !(n in had) || re.has(n);
  for (const n of Object.keys(next.switches).sort()) if (isNew(o.switches, swRe, n)) out.push({ op: 'create-switch', name: n });
  const newHosts = Object.keys(next.hosts).sort().filter((n) => isNew(o.hosts, hostRe, n));
  for (const n of newHosts) out.push({ op: 'create-host', name: n });
  for (const n of Object.keys(next.nat).sort()) if (isNew(o.nat, natRe, n)) out.push({ op: 'create-nat', name: n });
  const newLinks = Object.keys(next.links).sort().filter((n) => isNew(o.links, linkRe, n));
  for (const n of newLinks) out.push({ op: 'create-link', name: n });
  for (const n of Object.keys(next.links).sort()) {
    if (newLinks.includes(n)) continue;
    const a = o.links[n];
    const b = next.links[n];
    if (a.ab !== b.ab || a.ba !== b.ba) out.push({ op: 'impair-link', name: n, ab: b.ab, ba: b.ba });
    if (a.capture !== b.capture) out.push({ op: 'capture-link', name: n, on: b.capture });
  }
  for (const n of Object.keys(next.vms).sort()) if (isNew(o.vms, vmRe, n)) out.push({ op: 'create-vm', name: n });
  // hosts whose interfaces came back need their routes again; new hosts also start their command
  const touched = new Set(newHosts);
  for (const n of newLinks) for (const e of [next.links[n].a, next.links[n].b]) if (e.kind === 'host') touched.add(e.node);
  for (const n of [...touched].sort()) out.push({ op: 'host-routes', name: n });
  for (const n of newHosts) if (next.hosts[n].startup) out.push({ op: 'host-startup', name: n });
  return out;
}

/** The actions that take everything in cfg down. */
export function teardown(cfg: LabConfig): Action[] {
  return plan(cfg, EMPTY).filter((a) => a.op.startsWith('destroy-'));
}
