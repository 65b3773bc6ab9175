/**
 * The lab file: YAML read with `yaml` (keeping every node's position), checked against the JSON
 * Schema in schema.ts with ajv, then checked for what a schema cannot say: names that must
 * exist, link ends that fit together, groups, the task graph (unknown tasks, cycles) and tasks
 * that cannot run (a command on a VM that an earlier task powered off). Every error names the
 * line and the field (`lab.yaml:12:5: links.l1.b: unknown node "s9"`). The result is a
 * normalized LabConfig that plan.ts compares and runtime.ts applies.
 */
import fs from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import { LAB_SCHEMA } from './schema.js';

/** A switch as the lab runs it. */
export interface SwitchConf { ports: number; hub: boolean; stp: boolean; vlans: number[]; rc: string[] }
/** One interface of a host. */
export interface IfaceConf { addresses: string[]; mac?: string; mtu?: number }
/** A network-namespace host. */
export interface HostConf {
  interfaces: Record<string, IfaceConf>;
  routes: Array<{ to: string; via?: string; dev?: string }>;
  sysctls: Record<string, string>;
  startup?: string;
}
/** A QEMU guest. */
export interface VmConf {
  kernel?: string; initrd?: string; append?: string; disk?: string; snapshot: boolean; memory: number;
  nic: string; attach: 'vde' | 'stream'; mac?: string; qemu: string; args: string[];
}
/** One end of a link. */
export interface LinkEnd { node: string; kind: 'switch' | 'host' | 'vm'; ifname?: string }
/** A link, its ends ordered so that a host or VM end is `a` when the other end is a switch. */
export interface LinkConf {
  type: 'host-switch' | 'vm-switch' | 'switch-switch' | 'host-host';
  a: LinkEnd; b: LinkEnd; vlan?: number; via: 'local' | 'ssh' | 'udp' | 'vxlan'; ssh: string; port?: number;
  /** Impairment from a to b and from b to a (empty = none). */
  ab: string; ba: string; capture: boolean;
}
/** A slirp NAT endpoint. */
export interface NatConf { switch: string; forwards: string[]; options: string }
/** The control actions a task can take. */
export type TaskAction = 'link-down' | 'link-up' | 'impair' | 'vm-off' | 'vm-on' | 'vm-reset' | 'capture-start' | 'capture-stop' | 'wait';
/** A task of the graph. */
export interface TaskConf {
  on?: string; targets: string[]; run?: string; action?: TaskAction; link?: string; vm?: string; ab?: string; ba?: string;
  seconds: number; after: string[]; timeoutSeconds: number;
  expect: { status: number; output?: string; notOutput?: string; value?: { regex: string; min?: number; max?: number } };
}
/** A whole lab, normalized. */
export interface LabConfig {
  name: string;
  switches: Record<string, SwitchConf>;
  hosts: Record<string, HostConf>;
  vms: Record<string, VmConf>;
  links: Record<string, LinkConf>;
  nat: Record<string, NatConf>;
  groups: Record<string, string[]>;
  tasks: Record<string, TaskConf>;
}

/** A lab file that does not validate; `problems` holds one line per error. */
export class LabFileError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('\n'));
  }
}

/** Default time limit of a task, seconds. */
export const DEFAULT_TASK_TIMEOUT_SECONDS = 60;
/** Default number of ports of a lab switch. */
export const DEFAULT_SWITCH_PORTS = 32;
/** Ports a switch gets beyond its links when the file does not say. */
export const SPARE_PORTS = 8;
/** Default memory of a VM, MiB. */
export const DEFAULT_VM_MEMORY_MIB = 256;

let ajvValidate: ReturnType<Ajv2020['compile']> | null = null;
function validator(): ReturnType<Ajv2020['compile']> {
  if (!ajvValidate) ajvValidate = new Ajv2020({ allErrors: true, strict: false }).compile(LAB_SCHEMA);
  return ajvValidate;
}

type PathPart = string | number;

/** Formats a path as `links.l1.impair.ab` / `routes[0]`. */
function dotted(path: PathPart[]): string {
  let s = '';
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : (s ? '.' : '') + p;
  return s || '(top)';
}

/** Reads and checks a lab file; throws LabFileError with line-numbered problems. */
export function loadLabFile(file: string): LabConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new LabFileError([`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`]);
  }
  return parseLab(text, file);
}

/** Parses and checks lab text; `file` names it in messages. */
export function parseLab(text: string, file = 'lab'): LabConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const where = (offset: number): string => {
    const p = lc.linePos(offset);
    return `${file}:${p.line}:${p.col}`;
  };
  if (doc.errors.length) throw new LabFileError(doc.errors.map((e) => `${where(e.pos[0])}: ${e.message.split('\n')[0]}`));
  const data: unknown = doc.toJS();
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new LabFileError([`${file}:1:1: the lab file must be a mapping with at least "name"`]);
  const at = (path: PathPart[]): string => where(nodeOffset(doc, path));
  const v = validator();
  if (!v(data)) {
    const seen = new Set<string>();
    const out: string[] = [];
    for (const e of v.errors ?? []) {
      if (e.keyword === 'oneOf' || e.keyword === 'if' || (e.keyword === 'required' && e.schemaPath.includes('/oneOf/'))) continue;
      const path = e.instancePath.split('/').slice(1).map((p) => (/^\d+$/.test(p) ? Number(p) : p.replace(/~1/g, '/').replace(/~0/g, '~')));
      let msg = e.message ?? 'invalid';
      if (e.keyword === 'additionalProperties') msg = `unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
      else if (e.keyword === 'enum') msg = `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map(String).join(', ')}`;
      else if (e.keyword === 'propertyNames') msg = `"${(e.params as { propertyName: string }).propertyName}" is not a valid name (a letter, then letters, digits, - or _)`;
      const field = e.keyword === 'additionalProperties' ? [...path, (e.params as { additionalProperty: string }).additionalProperty] : path;
      const line = `${at(field)}: ${dotted(path)}: ${msg}`;
      if (!seen.has(line)) out.push(line);
      seen.add(line);
    }
    // a oneOf failure alone (no other error on that path) still needs saying
    for (const e of v.errors ?? []) {
      if (e.keyword !== 'oneOf') continue;
      const path = e.instancePath.split('/').slice(1);
      if (!out.some((l) => l.includes(`: ${dotted(path)}`))) {
        const what = path[0] === 'tasks' ? 'a task needs either "on" and "run" (a command) or "action" (a control task)' : 'a VM needs either "kernel" or "disk"';
        out.push(`${at(path)}: ${dotted(path)}: ${what}`);
      }
    }
    throw new LabFileError(out);
  }
  return normalize(data as RawLab, at);
}

/** Offset of the node at path, or of the deepest ancestor that exists. */
function nodeOffset(doc: Document, path: PathPart[]): number {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    if (isNode(node) && node.range) {
      // for a key that exists, point at the key rather than the value
      return node.range[0];
    }
  }
  return 0;
}

interface RawLab {
  name: string;
  switches?: Record<string, Partial<SwitchConf> | null>;
  hosts?: Record<string, { interfaces?: Record<string, Partial<IfaceConf> | null>; routes?: HostConf['routes']; sysctls?: Record<string, string | number | boolean>; startup?: string } | null>;
  vms?: Record<string, Partial<VmConf>>;
  links?: Record<string, { a: string; b: string; vlan?: number; via?: LinkConf['via']; ssh?: string; port?: number; impair?: { ab?: string; ba?: string; both?: string }; capture?: boolean }>;
  nat?: Record<string, { switch: string; forwards?: string[]; options?: string }>;
  groups?: Record<string, string[]>;
  tasks?: Record<string, { on?: string; run?: string; action?: TaskAction; link?: string; vm?: string; impair?: { ab?: string; ba?: string; both?: string }; seconds?: number; after?: string[]; timeout?: number; expect?: TaskConf['expect'] | Partial<TaskConf['expect']> }>;
}

function normalize(raw: RawLab, at: (p: PathPart[]) => string): LabConfig {
  const problems: string[] = [];
  const bad = (path: PathPart[], msg: string): void => {
    problems.push(`${at(path)}: ${dotted(path)}: ${msg}`);
  };
  const cfg: LabConfig = { name: raw.name, switches: {}, hosts: {}, vms: {}, links: {}, nat: {}, groups: {}, tasks: {} };
  const kindOf = new Map<string, 'switch' | 'host' | 'vm' | 'group'>();
  const declare = (name: string, kind: 'switch' | 'host' | 'vm' | 'group', path: PathPart[]): void => {
    const was = kindOf.get(name);
    if (was) bad(path, `the name "${name}" is already used by a ${was}`);
    else kindOf.set(name, kind);
  };
  for (const [n, s] of Object.entries(raw.switches ?? {})) {
    declare(n, 'switch', ['switches', n]);
    cfg.switches[n] = { ports: s?.ports ?? DEFAULT_SWITCH_PORTS, hub: s?.hub ?? false, stp: s?.stp ?? false, vlans: [...(s?.vlans ?? [])].sort((x, y) => x - y), rc: s?.rc ?? [] };
  }
  for (const [n, h] of Object.entries(raw.hosts ?? {})) {
    declare(n, 'host', ['hosts', n]);
    const interfaces: Record<string, IfaceConf> = {};
    for (const [i, f] of Object.entries(h?.interfaces ?? {})) {
      interfaces[i] = { addresses: f?.addresses ?? [], ...(f?.mac ? { mac: f.mac.toLowerCase() } : {}), ...(f?.mtu ? { mtu: f.mtu } : {}) };
      (f?.addresses ?? []).forEach((a, k) => {
        if (!isPrefix(a)) bad(['hosts', n, 'interfaces', i, 'addresses', k], `"${a}" is not an address with a prefix length (10.0.0.1/24, fd00::1/64)`);
      });
    }
    const sysctls: Record<string, string> = {};
    for (const [k, val] of Object.entries(h?.sysctls ?? {})) {
      if (!/^net\.[A-Za-z0-9_.\-/]+$/.test(k)) bad(['hosts', n, 'sysctls', k], `only net.* sysctls belong to a network namespace`);
      sysctls[k] = typeof val === 'boolean' ? (val ? '1' : '0') : String(val);
    }
    (h?.routes ?? []).forEach((r, k) => {
      if (r.to !== 'default' && !isPrefix(r.to) && !isAddress(r.to)) bad(['hosts', n, 'routes', k, 'to'], `"${r.to}" is not "default" or a prefix`);
      if (r.via !== undefined && !isAddress(r.via)) bad(['hosts', n, 'routes', k, 'via'], `"${r.via}" is not an address`);
    });
    cfg.hosts[n] = { interfaces, routes: h?.routes ?? [], sysctls, ...(h?.startup ? { startup: h.startup } : {}) };
  }
  for (const [n, m] of Object.entries(raw.vms ?? {})) {
    declare(n, 'vm', ['vms', n]);
    cfg.vms[n] = {
      ...(m.kernel ? { kernel: m.kernel } : {}), ...(m.initrd ? { initrd: m.initrd } : {}), ...(m.append ? { append: m.append } : {}), ...(m.disk ? { disk: m.disk } : {}),
      snapshot: m.snapshot ?? false, memory: m.memory ?? DEFAULT_VM_MEMORY_MIB, nic: m.nic ?? 'virtio-net-pci', attach: m.attach ?? 'vde',
      ...(m.mac ? { mac: m.mac.toLowerCase() } : {}), qemu: m.qemu ?? 'qemu-system-x86_64', args: m.args ?? [],
    };
  }
  for (const [g, members] of Object.entries(raw.groups ?? {})) {
    declare(g, 'group', ['groups', g]);
    members.forEach((m, k) => {
      const kind = kindOf.get(m) ?? (raw.hosts?.[m] !== undefined ? 'host' : raw.vms?.[m] ? 'vm' : undefined);
      if (kind !== 'host' && kind !== 'vm') bad(['groups', g, k], `"${m}" is not a host or VM`);
    });
    cfg.groups[g] = members;
  }
  const vmLinks = new Map<string, string>();
  const usedIfs = new Map<string, string>();
  for (const [n, l] of Object.entries(raw.links ?? {})) {
    const end = (s: string, side: 'a' | 'b'): LinkEnd | null => {
      const [node, ifname, extra] = s.split(':');
      const kind = kindOf.get(node);
      if (extra !== undefined || !node) {
        bad(['links', n, side], `"${s}" is not NODE or HOST:INTERFACE`);
        return null;
      }
      if (!kind || kind === 'group') {
        bad(['links', n, side], kind ? `"${node}" is a group, not a node` : `unknown node "${node}"`);
        return null;
      }
      if (ifname !== undefined && kind !== 'host') {
        bad(['links', n, side], `only a host end names an interface ("${node}" is a ${kind})`);
        return null;
      }
      if (kind === 'host') {
        const i = ifname ?? 'eth0';
        if (!/^[A-Za-z][A-Za-z0-9_.-]{0,14}$/.test(i)) {
          bad(['links', n, side], `"${i}" is not a valid interface name`);
          return null;
        }
        const key = `${node}:${i}`;
        if (usedIfs.has(key)) bad(['links', n, side], `${key} is already the end of link "${usedIfs.get(key)}"`);
        usedIfs.set(key, n);
        return { node, kind, ifname: i };
      }
      return { node, kind };
    };
    let a = end(l.a, 'a');
    let b = end(l.b, 'b');
    if (!a || !b) continue;
    let ab = l.impair?.ab ?? l.impair?.both ?? '';
    let ba = l.impair?.ba ?? l.impair?.both ?? '';
    if ((l.impair?.both !== undefined) && (l.impair.ab !== undefined || l.impair.ba !== undefined)) bad(['links', n, 'impair'], 'give "both" or "ab"/"ba", not both');
    if (a.kind === 'switch' && b.kind !== 'switch') {
      [a, b] = [b, a];
      [ab, ba] = [ba, ab];
    }
    let type: LinkConf['type'];
    if (a.kind === 'host' && b.kind === 'switch') type = 'host-switch';
    else if (a.kind === 'vm' && b.kind === 'switch') type = 'vm-switch';
    else if (a.kind === 'switch' && b.kind === 'switch') type = 'switch-switch';
    else if (a.kind === 'host' && b.kind === 'host') type = 'host-host';
    else {
      bad(['links', n], `a link joins a host or VM to a switch, two switches or two hosts (not ${a.kind} to ${b.kind})`);
      continue;
    }
    if (a.node === b.node) bad(['links', n], 'both ends are the same node');
    if (l.vlan !== undefined && type !== 'host-switch' && type !== 'vm-switch') bad(['links', n, 'vlan'], 'a VLAN is set on a host or VM link to a switch');
    if (l.vlan !== undefined && type !== 'switch-switch' && !cfg.switches[b.node].vlans.includes(l.vlan)) cfg.switches[b.node].vlans = [...cfg.switches[b.node].vlans, l.vlan].sort((x, y) => x - y);
    if (l.via !== undefined && type !== 'switch-switch') bad(['links', n, 'via'], '"via" is for links between two switches');
    if ((l.via === 'udp' || l.via === 'vxlan') && l.port === undefined) bad(['links', n, 'port'], `via ${l.via} needs "port" (the UDP port of end a; end b uses port+1)`);
    if (type === 'vm-switch') {
      if (vmLinks.has(a.node)) bad(['links', n, 'a'], `VM "${a.node}" already has link "${vmLinks.get(a.node)}" (one NIC per VM)`);
      vmLinks.set(a.node, n);
      if (ab || ba) bad(['links', n, 'impair'], 'impairments on a VM link are not supported yet: put the VM behind a switch and impair a cable');
    }
    if (type === 'host-switch' && a.ifname && !cfg.hosts[a.node].interfaces[a.ifname]) cfg.hosts[a.node].interfaces[a.ifname] = { addresses: [] };
    if (type === 'host-host') for (const e of [a, b]) if (e.ifname && !cfg.hosts[e.node].interfaces[e.ifname]) cfg.hosts[e.node].interfaces[e.ifname] = { addresses: [] };
    cfg.links[n] = { type, a, b, ...(l.vlan !== undefined ? { vlan: l.vlan } : {}), via: l.via ?? 'local', ssh: l.ssh ?? 'localhost', ...(l.port !== undefined ? { port: l.port } : {}), ab, ba, capture: l.capture ?? false };
  }
  for (const [h, conf] of Object.entries(cfg.hosts)) {
    for (const i of Object.keys(conf.interfaces)) if (!usedIfs.has(`${h}:${i}`)) bad(['hosts', h, 'interfaces', i], `interface ${i} is not the end of any link`);
  }
  for (const [n, x] of Object.entries(raw.nat ?? {})) {
    if (kindOf.get(x.switch) !== 'switch') bad(['nat', n, 'switch'], `unknown switch "${x.switch}"`);
    (x.forwards ?? []).forEach((f, k) => {
      if (!/^(tcp|udp):(\[[0-9a-fA-F:.]+\]:|[0-9.]+:)?\d{1,5}:(\[[0-9a-fA-F:.]+\]|[0-9.]+):\d{1,5}$/.test(f)) bad(['nat', n, 'forwards', k], `"${f}" is not tcp|udp:[HOSTIP:]HPORT:GUESTIP:GPORT`);
    });
    cfg.nat[n] = { switch: x.switch, forwards: x.forwards ?? [], options: x.options ?? '' };
  }
  // every link and NAT takes a port: a switch without "ports" gets enough, one with too few is refused
  const used = new Map<string, number>();
  for (const l of Object.values(cfg.links)) for (const e of [l.a, l.b]) if (e.kind === 'switch') used.set(e.node, (used.get(e.node) ?? 0) + 1);
  for (const x of Object.values(cfg.nat)) used.set(x.switch, (used.get(x.switch) ?? 0) + 1);
  for (const [n, c] of Object.entries(cfg.switches)) {
    const need = used.get(n) ?? 0;
    if (raw.switches?.[n]?.ports === undefined) c.ports = Math.max(DEFAULT_SWITCH_PORTS, need + SPARE_PORTS);
    else if (c.ports < need) bad(['switches', n, 'ports'], `${c.ports} ports, but ${need} links and NATs attach to ${n}`);
  }
  for (const [n, t] of Object.entries(raw.tasks ?? {})) {
    const p = ['tasks', n];
    let targets: string[] = [];
    if (t.run !== undefined) {
      const k = t.on ? kindOf.get(t.on) : undefined;
      if (!t.on || !k || k === 'switch') bad([...p, 'on'], t.on && k === 'switch' ? `"${t.on}" is a switch: commands run on hosts, VMs or groups` : `unknown host, VM or group "${t.on}"`);
      else targets = k === 'group' ? cfg.groups[t.on] ?? [] : [t.on];
      if (t.action !== undefined) bad([...p, 'action'], 'a command task has no "action"');
    }
    const a = t.action;
    if (a === 'link-down' || a === 'link-up' || a === 'impair' || a === 'capture-start' || a === 'capture-stop') {
      if (!t.link || !cfg.links[t.link]) bad([...p, 'link'], t.link ? `unknown link "${t.link}"` : `${a} needs "link"`);
      else if ((a === 'link-down' || a === 'link-up' || a === 'impair') && cfg.links[t.link].type === 'vm-switch') bad([...p, 'link'], `${a} is not supported on a VM link`);
    }
    if (a === 'impair' && !t.impair) bad([...p, 'impair'], 'impair needs "impair" (ab/ba/both)');
    if (a === 'vm-off' || a === 'vm-on' || a === 'vm-reset') {
      if (!t.vm || !cfg.vms[t.vm]) bad([...p, 'vm'], t.vm ? `unknown VM "${t.vm}"` : `${a} needs "vm"`);
    }
    if (a === 'wait' && t.seconds === undefined) bad([...p, 'seconds'], 'wait needs "seconds"');
    const exp = t.expect ?? {};
    for (const key of ['output', 'notOutput'] as const) {
      const r = exp[key];
      if (r !== undefined) try { new RegExp(r); } catch (e) { bad([...p, 'expect', key], `not a regular expression: ${(e as Error).message}`); }
    }
    if (exp.value) try { new RegExp(exp.value.regex); } catch (e) { bad([...p, 'expect', 'value', 'regex'], `not a regular expression: ${(e as Error).message}`); }
    cfg.tasks[n] = {
      ...(t.on !== undefined ? { on: t.on } : {}), targets, ...(t.run !== undefined ? { run: t.run } : {}), ...(a ? { action: a } : {}),
      ...(t.link ? { link: t.link } : {}), ...(t.vm ? { vm: t.vm } : {}),
      ...(t.impair ? { ab: t.impair.ab ?? t.impair.both ?? '', ba: t.impair.ba ?? t.impair.both ?? '' } : {}),
      seconds: t.seconds ?? 0, after: t.after ?? [], timeoutSeconds: t.timeout ?? DEFAULT_TASK_TIMEOUT_SECONDS,
      expect: { status: exp.status ?? 0, ...(exp.output !== undefined ? { output: exp.output } : {}), ...(exp.notOutput !== undefined ? { notOutput: exp.notOutput } : {}), ...(exp.value ? { value: exp.value } : {}) },
    };
    if (cfg.tasks[n].ab !== undefined && cfg.links[t.link ?? '']?.type === 'host-switch') {
      /* ab/ba keep the file's order of ends; runtime maps them */
    }
    (t.after ?? []).forEach((d, k) => {
      if (!(raw.tasks ?? {})[d]) bad([...p, 'after', k], `unknown task "${d}"`);
      if (d === n) bad([...p, 'after', k], 'a task cannot come after itself');
    });
  }
  // link ends of the file may have been swapped: task impairments follow the link's order
  for (const t of Object.values(cfg.tasks)) {
    if (t.action !== 'impair' || !t.link) continue;
    const rawLink = raw.links?.[t.link];
    const l = cfg.links[t.link];
    if (rawLink && l && rawLink.a.split(':')[0] !== l.a.node) [t.ab, t.ba] = [t.ba, t.ab];
  }
  if (problems.length === 0) {
    const cycle = findCycle(cfg.tasks);
    if (cycle) bad(['tasks', cycle[0], 'after'], `the tasks form a cycle: ${cycle.join(' -> ')}`);
    else problems.push(...unrunnable(cfg).map(([task, msg]) => `${at(['tasks', task])}: tasks.${task}: ${msg}`));
  }
  if (problems.length) throw new LabFileError(problems);
  return cfg;
}

/** True for ADDRESS/LEN (IPv4 or IPv6). */
function isPrefix(s: string): boolean {
  const m = /^(.+)\/(\d{1,3})$/.exec(s);
  if (!m) return false;
  const v6 = m[1].includes(':');
  return isAddress(m[1]) && Number(m[2]) <= (v6 ? 128 : 32);
}

/** True for an IPv4 or IPv6 address. */
function isAddress(s: string): boolean {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(s)) return s.split('.').every((x) => Number(x) <= 255);
  return /^[0-9a-fA-F:]+$/.test(s) && s.includes(':') && (s.match(/::/g) ?? []).length <= 1;
}

/** A cycle in the after-graph as a list of task names (first = last), or null. */
export function findCycle(tasks: Record<string, { after: string[] }>): string[] | null {
  const state = new Map<string, 1 | 2>();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    state.set(n, 1);
    stack.push(n);
    for (const d of tasks[n]?.after ?? []) {
      if (!tasks[d]) continue;
      if (state.get(d) === 1) return [...stack.slice(stack.indexOf(d)), d];
      if (!state.has(d)) {
        const c = visit(d);
        if (c) return c;
      }
    }
    stack.pop();
    state.set(n, 2);
    return null;
  };
  for (const n of Object.keys(tasks)) if (!state.has(n)) {
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

/** All tasks that must be done before t (transitively). */
export function ancestors(tasks: Record<string, { after: string[] }>, t: string): Set<string> {
  const out = new Set<string>();
  const todo = [...(tasks[t]?.after ?? [])];
  while (todo.length) {
    const n = todo.pop()!;
    if (out.has(n)) continue;
    out.add(n);
    todo.push(...(tasks[n]?.after ?? []));
  }
  return out;
}

/**
 * Tasks that cannot run: a command on a VM whose last power task among its ancestors is vm-off,
 * or a capture-stop with no capture-start of that link before it. Returns [task, reason].
 */
export function unrunnable(cfg: LabConfig): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const anc = new Map(Object.keys(cfg.tasks).map((t) => [t, ancestors(cfg.tasks, t)]));
  /** The ancestor power task of vm that every other ancestor power task precedes (the last one), or null. */
  const lastPower = (t: string, vm: string): string | null => {
    const power = [...anc.get(t)!].filter((p) => cfg.tasks[p].vm === vm && /^vm-(off|on|reset)$/.test(cfg.tasks[p].action ?? ''));
    const last = power.filter((p) => power.every((q) => q === p || anc.get(p)!.has(q)));
    return last[0] ?? null;
  };
  for (const [name, t] of Object.entries(cfg.tasks)) {
    if (t.run !== undefined) {
      for (const target of t.targets) {
        if (!cfg.vms[target]) continue;
        const last = lastPower(name, target);
        if (last && cfg.tasks[last].action === 'vm-off') out.push([name, `runs on VM "${target}", which task "${last}" powers off before it (add a vm-on task between them)`]);
      }
    }
    if (t.action === 'vm-reset' && t.vm) {
      const last = lastPower(name, t.vm);
      if (last && cfg.tasks[last].action === 'vm-off') out.push([name, `resets VM "${t.vm}", which task "${last}" powers off before it`]);
    }
    if (t.action === 'capture-stop' && !cfg.links[t.link!].capture) {
      const started = [...anc.get(name)!].some((p) => cfg.tasks[p].action === 'capture-start' && cfg.tasks[p].link === t.link);
      if (!started) out.push([name, `stops a capture of link "${t.link}" that no earlier task starts (and the link has no "capture: true")`]);
    }
  }
  return out;
}
