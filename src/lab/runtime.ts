/**
 * Brings a lab's parts up and down and changes them while they run. Every switch is a
 * `vde_switch` process (management socket in the run directory); a host is a network namespace
 * whose interfaces are taps owned by the switch (console `port/tap`, then the tap is moved into
 * the namespace: a host costs no process of its own); a cable between switches, a point-to-point
 * link between hosts and a NAT are `vde_plug` processes with a management console (impairments
 * change at run time); a VM is a QEMU process on `-netdev vde` (or stream, through a plug).
 * Impairments of a host's link live on its switch port (`port/impair`). Captures are
 * `vde_capture` processes writing pcapng into the run directory. Every resource is recorded in
 * state.json (state.ts) before or as soon as it exists; `destroyAll` removes whatever the state
 * names, so it works after Ctrl-C, a crash, or from another shell.
 */
import fs from 'node:fs';
import path from 'node:path';
import { runCommand } from '../protocol/consoleclient.js';
import type { LabConfig, LinkConf } from './config.js';
import { type Action } from './plan.js';
import { alive, cmd, ownCommand, parallel, startDetached, stopPid, until } from './proc.js';
import { writeState, type LabState, type LinkRec } from './state.js';

/** How long a started process may take to answer on its management socket, ms. */
export const START_TIMEOUT_MS = 30_000;
/** At most this many steps of one phase run at the same time. */
export const PARALLEL_STEPS = 8;
/** At most this many processes (switches, plugs, QEMU) start at the same time. */
export const PARALLEL_STARTS = 6;
/** At most this many stop steps at the same time (signals and waits, little CPU). */
export const DESTROY_PARALLEL_STEPS = 32;

/** Runs a console command and returns its data lines; throws with the status text on failure. */
export async function consoleCmd(sock: string, command: string): Promise<string[]> {
  const r = await runCommand(sock, command, { timeoutMs: 15_000 });
  if (r.status !== 0) throw new Error(`${command}: ${[...r.data, r.statusText].filter(Boolean).join(': ')}`);
  return r.data;
}

/** Whether the console at sock answers. */
async function answers(sock: string): Promise<boolean> {
  try {
    await runCommand(sock, 'showinfo', { timeoutMs: 2000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * argv that runs a command inside a host: `ip netns exec` as root; unprivileged, nsenter into the
 * lab's user namespace and the host's network namespace (held by a sleeping process).
 */
export function inHost(st: LabState, host: string, argv: string[]): string[] {
  const h = st.hosts[host];
  if (!h) throw new Error(`no host "${host}" in lab ${st.name}`);
  if (st.privileged) return ['ip', 'netns', 'exec', h.netns, ...argv];
  return ['nsenter', `--target=${h.holderPid}`, '--user', '--net', '--preserve-credentials', ...argv];
}

/** Environment of commands run in a host: the lab, the node and a directory of the node's own. */
export function hostEnv(st: LabState, host: string): NodeJS.ProcessEnv {
  return { ...process.env, VDE_LAB_NAME: st.name, VDE_LAB_NODE: host, VDE_LAB_NODE_DIR: path.join(st.dir, `n-${host}`) };
}

/** argv that runs a command in the lab's own namespaces (unprivileged), or as it is (root). */
export function inLab(st: LabState, argv: string[]): string[] {
  if (st.privileged) return argv;
  if (!st.labPid) throw new Error(`lab ${st.name}: its user namespace is not up`);
  return ['nsenter', `--target=${st.labPid}`, '--user', '--net', '--preserve-credentials', ...argv];
}

/** The network namespace of a process (its /proc link), or null when it is gone. */
function netnsOf(pid: number): string | null {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/net`);
  } catch {
    return null;
  }
}

/** Kills (SIGKILL) every process of ours whose network namespace is ns. */
function killInNetns(ns: string): void {
  killInNetnsSet(new Set([ns]));
}

/** Kills (SIGKILL) every process whose network namespace is one of nss (one pass over /proc). */
function killInNetnsSet(nss: Set<string>): void {
  if (!nss.size) return;
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    const n = netnsOf(Number(p));
    if (n !== null && nss.has(n)) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

/**
 * Unprivileged labs live in a user namespace of their own, held by a sleeping process together
 * with the lab's network namespace (where switches own their taps); hosts are network
 * namespaces created inside it. Starts it (once) and records its PID.
 */
export async function ensureUserns(st: LabState): Promise<void> {
  if (st.privileged || (st.labPid && alive(st.labPid, st.dir))) return;
  const mine = fs.readlinkSync('/proc/self/ns/user');
  const pid = startDetached(['unshare', '--user', '--map-root-user', '--net', '--', 'sh', '-c', 'ip link set lo up; while :; do sleep 3600; done', 'vde_lab-userns', st.dir], path.join(st.dir, 'userns.log'));
  st.labPid = pid;
  writeState(st);
  await until(() => {
    try {
      return fs.readlinkSync(`/proc/${pid}/ns/user`) !== mine;
    } catch {
      return false;
    }
  }, START_TIMEOUT_MS, 'user namespace', () => alive(pid));
}

/** The running lab: applies plans and control actions to it. */
export class LabRuntime {
  constructor(readonly st: LabState, private readonly say: (line: string) => void = () => {}) {}

  private get cfg(): LabConfig {
    return this.st.config!;
  }

  private save(): void {
    writeState(this.st);
  }

  private log(name: string): string {
    fs.mkdirSync(path.join(this.st.dir, 'log'), { recursive: true });
    return path.join(this.st.dir, 'log', `${name}.log`);
  }

  /** Applies the actions of a plan for the configuration `next`, phase by phase. */
  async apply(next: LabConfig, actions: Action[]): Promise<void> {
    const old = this.st.config;
    await ensureUserns(this.st);
    // destroy steps read the old configuration, create steps the new one
    const phases: Array<[string[], LabConfig | null]> = [
      [['destroy-link'], old], [['destroy-nat', 'destroy-vm'], old], [['destroy-host', 'destroy-switch'], old],
      [['create-switch', 'create-host'], next], [['create-nat', 'create-link', 'impair-link', 'capture-link'], next],
      [['create-vm', 'host-routes'], next], [['host-startup'], next],
    ];
    for (const [ops, cfg] of phases) {
      const mine = actions.filter((a) => ops.includes(a.op));
      if (!mine.length) continue;
      this.st.config = cfg ?? next;
      if (ops.includes('create-host') && this.st.privileged) await this.addNamespaces(mine.filter((a) => a.op === 'create-host').map((a) => a.name));
      const t0 = Date.now();
      // steps that start a process wait mostly for it to boot: they get a pool of their own
      const heavy = (a: Action): boolean => a.op === 'create-switch' || a.op === 'create-nat' || a.op === 'create-vm' || (a.op === 'create-link' && (next.links[a.name].type !== 'host-switch' || next.links[a.name].capture));
      await Promise.all([
        parallel(mine.filter(heavy), PARALLEL_STARTS, (a) => this.step(a)),
        parallel(mine.filter((a) => !heavy(a)), PARALLEL_STEPS, (a) => this.step(a)),
      ]);
      if (process.env.VDE_LAB_TIMING) this.say(`phase ${ops.join('+')}: ${mine.length} steps in ${Date.now() - t0} ms`);
    }
    this.st.config = next;
    this.save();
  }

  private aborted = false;

  /** Makes every step not yet started fail (Ctrl-C during up). */
  abort(): void {
    this.aborted = true;
  }

  private async step(a: Action): Promise<void> {
    if (this.aborted) throw new Error('interrupted');
    switch (a.op) {
      case 'create-switch': return this.createSwitch(a.name);
      case 'create-host': return this.createHost(a.name);
      case 'create-nat': return this.createNat(a.name);
      case 'create-link': return this.createLink(a.name);
      case 'create-vm': return this.createVm(a.name);
      case 'host-routes': return this.hostRoutes(a.name);
      case 'host-startup': return this.hostStartup(a.name);
      case 'impair-link': return this.setImpair(a.name, a.ab, a.ba);
      case 'capture-link': return a.on ? this.startCapture(a.name) : this.stopCapture(a.name);
      case 'destroy-link': return this.destroyLink(a.name);
      case 'destroy-nat': return this.destroyNat(a.name);
      case 'destroy-vm': return this.destroyVm(a.name);
      case 'destroy-host': return this.destroyHost(a.name);
      case 'destroy-switch': return this.destroySwitch(a.name);
    }
  }

  // ---- switches

  private async createSwitch(name: string): Promise<void> {
    const c = this.cfg.switches[name];
    const dir = path.join(this.st.dir, `s-${name}`);
    const mgmt = path.join(this.st.dir, `s-${name}.mgmt`);
    const rc = path.join(this.st.dir, `s-${name}.rc`);
    const lines = [...c.vlans.map((v) => `vlan/create ${v}`), ...c.rc];
    fs.writeFileSync(rc, lines.map((l) => `${l}\n`).join(''), { mode: 0o600 });
    const argv = ownCommand('vde_switch', ['-s', dir, '-M', mgmt, '-n', String(c.ports), '--nostdin', '-f', rc, ...(c.hub ? ['--hub'] : []), ...(c.stp ? ['--fstp'] : [])]);
    const pid = startDetached(inLab(this.st, argv), this.log(`switch-${name}`));
    this.st.switches[name] = { pid, dir, mgmt };
    this.save();
    await until(() => answers(mgmt), START_TIMEOUT_MS, `switch ${name}`, () => alive(pid));
    this.say(`switch ${name} up`);
  }

  private async destroySwitch(name: string): Promise<void> {
    const r = this.st.switches[name];
    if (!r) return;
    await stopPid(r.pid, this.st.dir);
    delete this.st.switches[name];
    this.save();
  }

  // ---- hosts

  /** Creates the named network namespaces of new hosts in one `ip -batch` (root). */
  private async addNamespaces(hosts: string[]): Promise<void> {
    if (!hosts.length) return;
    for (const h of hosts) this.st.hosts[h] = { netns: `vdelab-${this.st.id}-${h}` };
    this.save();
    await cmd(['ip', '-batch', '-'], { input: hosts.map((h) => `netns add ${this.st.hosts[h].netns}\n`).join('') });
  }

  private async createHost(name: string): Promise<void> {
    const c = this.cfg.hosts[name];
    const netns = `vdelab-${this.st.id}-${name}`;
    if (!this.st.hosts[name]) {
      this.st.hosts[name] = { netns };
      this.save();
      if (this.st.privileged) await cmd(['ip', 'netns', 'add', netns]);
    }
    // the node's own directory (VDE_LAB_NODE_DIR): daemons of other users (FRR) may use it
    fs.chmodSync(this.st.dir, 0o711);
    fs.mkdirSync(path.join(this.st.dir, `n-${name}`), { mode: 0o755 });
    fs.chmodSync(path.join(this.st.dir, `n-${name}`), 0o755);
    if (!this.st.privileged) {
      // a sleeping process holds the host's network namespace inside the lab's user namespace
      const labNs = netnsOf(this.st.labPid!);
      const pid = startDetached(inLab(this.st, ['unshare', '--net', '--', 'sh', '-c', 'ip link set lo up; while :; do sleep 3600; done', 'vde_lab-host', this.st.dir]), this.log(`host-${name}`));
      this.st.hosts[name].holderPid = pid;
      this.save();
      await until(() => { const n = netnsOf(pid); return n !== null && n !== labNs; }, START_TIMEOUT_MS, `host ${name}`, () => alive(pid));
    }
    const sys = Object.entries(c.sysctls);
    if (sys.length) await cmd(inHost(this.st, name, ['sysctl', '-q', '-w', ...sys.map(([k, v]) => `${k}=${v}`)]));
  }

  /** Brings the host's loopback up, sets its addresses and routes (again: they go with a recreated interface). */
  private async hostRoutes(name: string): Promise<void> {
    const c = this.cfg.hosts[name];
    const addrs = Object.entries(c.interfaces).flatMap(([i, f]) => f.addresses.map((a) => `addr replace ${a} dev ${i}${a.includes(':') ? ' nodad' : ''}`));
    const lines = ['link set dev lo up', ...addrs, ...c.routes.map((r) => `route replace ${r.to}${r.via ? ` via ${r.via}` : ''}${r.dev ? ` dev ${r.dev}` : ''}`)];
    await cmd(this.ipHost(name, ['-batch', '-']), { input: `${lines.join('\n')}\n` });
  }

  /** argv of `ip ARGS` inside a host. */
  private ipHost(host: string, args: string[]): string[] {
    return this.st.privileged ? ['ip', '-n', this.st.hosts[host].netns, ...args] : inHost(this.st, host, ['ip', ...args]);
  }

  /** Moves tap dev from the lab's namespace into a host as interface IF (MAC, MTU, up). */
  private async moveTo(dev: string, host: string, ifname: string): Promise<void> {
    const h = this.st.hosts[host];
    const f = this.cfg.hosts[host].interfaces[ifname] ?? { addresses: [] };
    await cmd(inLab(this.st, ['ip', 'link', 'set', 'dev', dev, 'netns', this.st.privileged ? h.netns : String(h.holderPid), 'name', ifname, ...(f.mac ? ['address', f.mac] : []), ...(f.mtu ? ['mtu', String(f.mtu)] : []), 'up']));
    // the addresses follow in hostRoutes, one command per host
  }

  private async hostStartup(name: string): Promise<void> {
    const c = this.cfg.hosts[name];
    if (!c.startup) return;
    const pid = startDetached(inHost(this.st, name, ['sh', '-c', `# vde_lab ${this.st.dir}\n${c.startup}`]), this.log(`host-${name}`), hostEnv(this.st, name));
    this.st.hosts[name].startupPid = pid;
    this.save();
  }

  private async destroyHost(name: string): Promise<void> {
    const r = this.st.hosts[name];
    if (!r) return;
    if (r.startupPid) await stopPid(r.startupPid, this.st.dir, { group: true });
    // every process left in the namespace goes with it
    if (this.st.privileged) {
      const ns = (() => { try { return fs.statSync(`/run/netns/${r.netns}`).ino; } catch { return null; } })();
      if (ns !== null) killInNetns(`net:[${ns}]`);
      await cmd(['ip', 'netns', 'del', r.netns], { check: false });
    } else if (r.holderPid) {
      const ns = netnsOf(r.holderPid);
      if (ns && alive(r.holderPid, this.st.dir)) killInNetns(ns);
      await stopPid(r.holderPid, this.st.dir);
    }
    fs.rmSync(path.join(this.st.dir, `n-${name}`), { recursive: true, force: true });
    delete this.st.hosts[name];
    this.save();
  }

  private nextTap(): string {
    this.st.tapSeq += 1;
    return `vl${this.st.id}${this.st.tapSeq.toString(36)}`;
  }

  // ---- links

  private async createLink(name: string): Promise<void> {
    const l = this.cfg.links[name];
    const rec: LinkRec = { pids: [], mgmts: [], taps: [], down: false, ab: l.ab, ba: l.ba };
    this.st.links[name] = rec;
    this.save();
    if (l.type === 'host-switch') {
      const sw = this.st.switches[l.b.node];
      const tap = this.nextTap();
      rec.taps.push(tap);
      this.save();
      const port = Number((await consoleCmd(sw.mgmt, `port/tap ${tap}`))[0]);
      rec.port = port;
      this.save();
      if (l.vlan !== undefined) await consoleCmd(sw.mgmt, `port/setvlan ${port} ${l.vlan}`);
      if (l.ab || l.ba) await this.applyImpair(name);
      await this.moveTo(tap, l.a.node, l.a.ifname!);
    } else if (l.type === 'host-host') {
      const ta = this.nextTap();
      const tb = this.nextTap();
      rec.taps.push(ta, tb);
      await this.startPlug(name, rec, [`tap://${ta}`, `tap://${tb}`], l.ab, l.ba, 'p', true);
      await this.moveTo(ta, l.a.node, l.a.ifname!);
      await this.moveTo(tb, l.b.node, l.b.ifname!);
    } else if (l.type === 'switch-switch') {
      const da = this.st.switches[l.a.node].dir;
      const db = this.st.switches[l.b.node].dir;
      if (l.via === 'local') await this.startPlug(name, rec, [da, db], l.ab, l.ba, 'p');
      else if (l.via === 'ssh') await this.startPlug(name, rec, [da, '=', 'ssh', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=accept-new', l.ssh, ...ownCommand('vde_plug', [db])], l.ab, l.ba, 'p');
      else if (l.via === 'udp') {
        const p = l.port!;
        await this.startPlug(name, rec, [da, `udp://127.0.0.1:${p}->127.0.0.1:${p + 1}`], l.ab, '', 'a');
        await this.startPlug(name, rec, [db, `udp://127.0.0.1:${p + 1}->127.0.0.1:${p}`], l.ba, '', 'b');
      } else {
        const p = l.port!;
        const vni = 1 + (p % 16_000_000);
        await this.startPlug(name, rec, [da, `vxlan://127.0.0.2/vni=${vni}/port=${p}/local=127.0.0.1`], l.ab, '', 'a');
        await this.startPlug(name, rec, [db, `vxlan://127.0.0.1/vni=${vni}/port=${p}/local=127.0.0.2`], l.ba, '', 'b');
      }
    } else {
      // vm-switch: the VM's own start attaches it (create-vm); nothing runs for the link itself
    }
    if (l.capture) await this.startCapture(name);
    this.say(`link ${name} up`);
  }

  private async startPlug(name: string, rec: LinkRec, locators: string[], lr: string, rl: string, tag: string, inLabNs = false): Promise<void> {
    const mgmt = path.join(this.st.dir, `l-${name}-${tag}.mgmt`);
    const argv = ownCommand('vde_plug', ['--mgmt', mgmt, '-D', `vde_lab:${this.st.name}:${name}`, ...(lr ? ['--impair', `LR:${lr}`] : []), ...(rl ? ['--impair', `RL:${rl}`] : []), ...locators]);
    const pid = startDetached(inLabNs ? inLab(this.st, argv) : argv, this.log(`link-${name}-${tag}`));
    rec.pids.push(pid);
    rec.mgmts.push(mgmt);
    this.save();
    await until(() => answers(mgmt), START_TIMEOUT_MS, `link ${name}`, () => alive(pid));
  }

  /** Pushes the link's impairments (with its down state) to where they live. */
  private async applyImpair(name: string): Promise<void> {
    const l = this.cfg.links[name];
    const r = this.st.links[name];
    const spec = (s: string): string => (r.down ? `${s} down`.trim() : s.trim() || 'off');
    if (l.type === 'host-switch') {
      const sw = this.st.switches[l.b.node];
      // ab = host -> switch = what the port receives
      await consoleCmd(sw.mgmt, `port/impair ${r.port} in ${spec(r.ab)}`);
      await consoleCmd(sw.mgmt, `port/impair ${r.port} out ${spec(r.ba)}`);
    } else if (r.mgmts.length === 1) {
      await consoleCmd(r.mgmts[0], `impair LR ${spec(r.ab)}`);
      await consoleCmd(r.mgmts[0], `impair RL ${spec(r.ba)}`);
    } else if (r.mgmts.length === 2) {
      await consoleCmd(r.mgmts[0], `impair LR ${spec(r.ab)}`);
      await consoleCmd(r.mgmts[1], `impair LR ${spec(r.ba)}`);
    } else throw new Error(`link ${name}: impairments are not supported on a ${l.type} link`);
  }

  /** Changes a link's impairments at run time (queued frames are kept). */
  async setImpair(name: string, ab: string, ba: string): Promise<void> {
    const r = this.st.links[name];
    r.ab = ab;
    r.ba = ba;
    this.save();
    await this.applyImpair(name);
  }

  /** Takes a link down (every frame dropped, counted as linkDown) or up again. */
  async setLinkState(name: string, up: boolean): Promise<void> {
    this.st.links[name].down = !up;
    this.save();
    await this.applyImpair(name);
  }

  /** Starts a pcapng capture of the link into the run directory (captures/LINK.pcapng). */
  async startCapture(name: string): Promise<void> {
    const l = this.cfg.links[name];
    const r = this.st.links[name];
    if (r.capturePid && alive(r.capturePid, this.st.dir)) return;
    fs.mkdirSync(path.join(this.st.dir, 'captures'), { recursive: true });
    const file = path.join(this.st.dir, 'captures', `${name}.pcapng`);
    let where: string[];
    if (l.type === 'host-switch') where = [this.st.switches[l.b.node].mgmt, String(r.port)];
    else if (l.type === 'vm-switch') where = [this.st.switches[l.b.node].mgmt, String(this.st.vms[l.a.node].port)];
    else where = [r.mgmts[0]];
    const pid = startDetached(ownCommand('vde_capture', ['-q', '-w', file, ...where]), this.log(`capture-${name}`));
    r.capturePid = pid;
    r.captureFile = file;
    this.save();
    await until(() => fs.existsSync(file) && fs.statSync(file).size > 0, START_TIMEOUT_MS, `capture of ${name}`, () => alive(pid));
  }

  /** Stops the link's capture (the file is complete afterwards). */
  async stopCapture(name: string): Promise<void> {
    const r = this.st.links[name];
    if (!r?.capturePid) return;
    try {
      process.kill(r.capturePid, 'SIGINT');
    } catch {
      /* gone */
    }
    await until(() => !alive(r.capturePid!, this.st.dir), 5000, `capture of ${name}`).catch(() => stopPid(r.capturePid!, this.st.dir));
    delete r.capturePid;
    this.save();
  }

  private async destroyLink(name: string): Promise<void> {
    const r = this.st.links[name];
    if (!r) return;
    const old = this.st.config?.links[name];
    await this.stopCapture(name);
    for (const p of r.pids) await stopPid(p, this.st.dir);
    if (old?.type === 'host-switch' && r.port) {
      const sw = this.st.switches[old.b.node];
      if (sw && alive(sw.pid, this.st.dir)) {
        try {
          const j = JSON.parse((await consoleCmd(sw.mgmt, `json/port/print ${r.port}`)).join('')) as { endpoints?: Array<{ id: number }> } | Array<{ endpoints?: Array<{ id: number }> }>;
          const p = Array.isArray(j) ? j[0] : j;
          for (const e of p?.endpoints ?? []) await consoleCmd(sw.mgmt, `port/epclose ${r.port} ${e.id}`);
          await consoleCmd(sw.mgmt, `port/remove ${r.port}`);
        } catch {
          /* the switch may be going away too */
        }
      }
    }
    // a tap whose owner is gone disappears with it; one still around (moved into a host) is removed
    if (this.st.privileged) for (const t of r.taps) await cmd(['ip', 'link', 'del', t], { check: false });
    for (const m of r.mgmts) fs.rmSync(m, { force: true });
    delete this.st.links[name];
    this.save();
  }

  // ---- NAT

  private async createNat(name: string): Promise<void> {
    const c = this.cfg.nat[name];
    const opts = [...c.forwards.map((f) => `${f.startsWith('udp:') ? 'udpfwd' : 'tcpfwd'}=${f.slice(4)}`), ...(c.options ? c.options.split('/').filter(Boolean) : [])];
    const mgmt = path.join(this.st.dir, `n-${name}.mgmt`);
    const argv = ownCommand('vde_plug', ['--mgmt', mgmt, '-D', `vde_lab:${this.st.name}:${name}`, `slirp:///${opts.join('/')}`, this.st.switches[c.switch].dir]);
    const pid = startDetached(argv, this.log(`nat-${name}`));
    this.st.nat[name] = { pid, mgmt };
    this.save();
    await until(() => answers(mgmt), START_TIMEOUT_MS, `nat ${name}`, () => alive(pid));
    this.say(`nat ${name} up`);
  }

  private async destroyNat(name: string): Promise<void> {
    const r = this.st.nat[name];
    if (!r) return;
    await stopPid(r.pid, this.st.dir);
    fs.rmSync(r.mgmt, { force: true });
    delete this.st.nat[name];
    this.save();
  }

  // ---- VMs

  private vmLink(name: string): [string, LinkConf] | null {
    const e = Object.entries(this.cfg.links).find(([, l]) => l.type === 'vm-switch' && l.a.node === name);
    return e ?? null;
  }

  private async createVm(name: string): Promise<void> {
    const serial = path.join(this.st.dir, `v-${name}.serial`);
    const monitor = path.join(this.st.dir, `v-${name}.mon`);
    const link = this.vmLink(name);
    let port = 0;
    if (link) {
      const sw = this.cfg.switches[link[1].b.node];
      const used = new Set(Object.values(this.st.vms).map((v) => v.port));
      port = sw.ports;
      while (used.has(port)) port -= 1;
    }
    this.st.vms[name] = { pid: null, monitor, serial, port };
    this.save();
    await this.vmPowerOn(name);
    this.say(`vm ${name} started`);
  }

  /** Starts a VM's QEMU (a VM with snapshot: true starts from the same disk state every time). */
  async vmPowerOn(name: string): Promise<void> {
    const c = this.cfg.vms[name];
    const r = this.st.vms[name];
    if (r.pid && alive(r.pid, this.st.dir)) return;
    const link = this.vmLink(name);
    const net: string[] = [];
    if (link) {
      const l = link[1];
      const swDir = this.st.switches[l.b.node].dir;
      const mac = c.mac ?? `52:54:00:${this.st.id.slice(0, 2)}:${this.st.id.slice(2, 4)}:${(Object.keys(this.cfg.vms).indexOf(name) + 1).toString(16).padStart(2, '0')}`;
      if (c.attach === 'vde') net.push('-netdev', `vde,id=n0,sock=${swDir},port=${r.port}`);
      else {
        const sock = path.join(this.st.dir, `v-${name}.net`);
        fs.rmSync(sock, { force: true });
        if (!r.plugPid || !alive(r.plugPid, this.st.dir)) {
          const mgmt = path.join(this.st.dir, `v-${name}.plug.mgmt`);
          r.plugPid = startDetached(ownCommand('vde_plug', ['--mgmt', mgmt, `vde://${swDir}[${r.port}]`, `stream://unix:${sock}[server]`]), this.log(`vm-${name}-plug`));
          this.save();
          await until(() => answers(mgmt), START_TIMEOUT_MS, `vm ${name} network`, () => alive(r.plugPid!));
        }
        net.push('-netdev', `stream,id=n0,server=off,reconnect=1,addr.type=unix,addr.path=${sock}`);
      }
      net.push('-device', `${c.nic},netdev=n0,mac=${mac}`);
      if (l.vlan !== undefined) {
        await consoleCmd(this.st.switches[l.b.node].mgmt, `port/create ${r.port}`).catch(() => {});
        await consoleCmd(this.st.switches[l.b.node].mgmt, `port/setvlan ${r.port} ${l.vlan}`);
      }
    } else net.push('-nic', 'none');
    fs.rmSync(r.serial, { force: true });
    fs.rmSync(r.monitor, { force: true });
    const argv = [
      c.qemu, '-name', `vde_lab:${this.st.name}:${name}`, '-m', String(c.memory), '-display', 'none', '-nodefaults', '-no-user-config',
      '-serial', `unix:${r.serial},server=on,wait=off`, '-monitor', `unix:${r.monitor},server=on,wait=off`,
      ...(c.kernel ? ['-kernel', c.kernel] : []), ...(c.initrd ? ['-initrd', c.initrd] : []), ...(c.append ? ['-append', c.append] : []),
      ...(c.disk ? ['-drive', `file=${c.disk},if=virtio${c.snapshot ? ',snapshot=on' : ''}`] : []),
      ...net, ...c.args,
    ];
    r.pid = startDetached(argv, this.log(`vm-${name}`));
    this.save();
    await until(() => fs.existsSync(r.monitor), START_TIMEOUT_MS, `vm ${name}`, () => alive(r.pid!));
  }

  /** Powers a VM off (its QEMU ends; with snapshot: true its disk changes are gone). */
  async vmPowerOff(name: string): Promise<void> {
    const r = this.st.vms[name];
    if (r.pid) await stopPid(r.pid, this.st.dir, { graceMs: 1000 });
    r.pid = null;
    this.save();
  }

  /** Resets a running VM (QEMU's system_reset). */
  async vmReset(name: string): Promise<void> {
    const r = this.st.vms[name];
    if (!r.pid || !alive(r.pid, this.st.dir)) throw new Error(`vm ${name} is not running`);
    await monitorCmd(r.monitor, 'system_reset');
  }

  private async destroyVm(name: string): Promise<void> {
    const r = this.st.vms[name];
    if (!r) return;
    await this.vmPowerOff(name);
    if (r.plugPid) await stopPid(r.plugPid, this.st.dir);
    delete this.st.vms[name];
    this.save();
  }

  /** Removes everything the state names, in dependency order; never throws. */
  async destroyAll(): Promise<string[]> {
    const errors: string[] = [];
    const each = async (names: string[], fn: (n: string) => Promise<void>): Promise<void> => {
      await parallel(names, DESTROY_PARALLEL_STEPS, async (n) => {
        try {
          await fn(n);
        } catch (e) {
          errors.push(`${n}: ${(e as Error).message}`);
        }
      });
    };
    // everything goes: a link needs no tidying on its switch, its taps go with their owner
    await each(Object.keys(this.st.links), async (n) => {
      const r = this.st.links[n];
      await this.stopCapture(n);
      for (const p of r.pids) await stopPid(p, this.st.dir);
      for (const m of r.mgmts) fs.rmSync(m, { force: true });
    });
    await each(Object.keys(this.st.nat), (n) => this.destroyNat(n));
    await each(Object.keys(this.st.vms), (n) => this.destroyVm(n));
    if (this.st.privileged) {
      const hosts = Object.keys(this.st.hosts);
      await each(hosts, async (h) => {
        const p = this.st.hosts[h].startupPid;
        if (p) await stopPid(p, this.st.dir, { group: true });
      });
      // one pass over /proc: whatever still runs in a host's namespace is killed
      const inodes = new Map<string, string>();
      for (const h of hosts) {
        try {
          inodes.set(`net:[${fs.statSync(`/run/netns/${this.st.hosts[h].netns}`).ino}]`, h);
        } catch {
          /* not there */
        }
      }
      killInNetnsSet(new Set(inodes.keys()));
      const present = new Set(fs.existsSync('/run/netns') ? fs.readdirSync('/run/netns') : []);
      const del = hosts.map((h) => this.st.hosts[h].netns).filter((n) => present.has(n));
      if (del.length) await cmd(['ip', '-batch', '-'], { input: del.map((n) => `netns del ${n}\n`).join(''), check: false });
      for (const h of hosts) {
        fs.rmSync(path.join(this.st.dir, `n-${h}`), { recursive: true, force: true });
        delete this.st.hosts[h];
      }
      this.save();
    } else await each(Object.keys(this.st.hosts), (n) => this.destroyHost(n));
    await each(Object.keys(this.st.switches), (n) => this.destroySwitch(n));
    this.st.links = {};
    this.save();
    if (this.st.privileged) {
      // taps made but never handed over (an up interrupted at that moment)
      const left = (await cmd(['ip', '-o', 'link', 'show'], { check: false })).stdout.split('\n').map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1]).filter((n): n is string => !!n && n.startsWith(`vl${this.st.id}`));
      for (const t of left) await cmd(['ip', 'link', 'del', t], { check: false });
    }
    if (this.st.labPid) {
      const ns = netnsOf(this.st.labPid);
      if (ns && alive(this.st.labPid, this.st.dir)) killInNetns(ns);
      await stopPid(this.st.labPid, this.st.dir);
      delete this.st.labPid;
      this.save();
    }
    return errors;
  }
}

/** Sends one command to a QEMU human monitor socket. */
export function monitorCmd(sock: string, command: string): Promise<void> {
  return new Promise((resolve, reject) => {
    import('node:net').then(({ default: net }) => {
      const c = net.connect(sock);
      c.on('error', (e) => reject(new Error(`${sock}: ${e.message}`)));
      c.on('connect', () => {
        c.write(`${command}\n`);
        setTimeout(() => {
          c.end();
          resolve();
        }, 200);
      });
    }, reject);
  });
}
