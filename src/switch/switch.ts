/**
 * VdeSwitch: one running switch. Sets up the switch directory (modes, group, stale-socket
 * reclaim), the native engine, the control server, the management socket and stdin console, the
 * rc file, spanning tree and the pidfile; and tears all of it down on shutdown or signal.
 *
 * It never deletes or takes over what it did not create:
 * - a live control socket, management socket, QEMU or vhost-user socket path is refused
 *   (core/sockpath);
 * - a path that exists and is not a socket (a regular file as DIR/ctl or as -M) is refused and
 *   left alone;
 * - the directory: a missing one is created with --dirmode (and removed at exit when empty); one
 *   that holds only a dead switch's leftovers (a stale ctl, stale data sockets DIR/NNN.F) is
 *   reclaimed: the stale sockets go, and the directory is removed at exit like one we made; any
 *   other existing directory (empty or not) is used as it is: never chmod'ed, chown'ed or removed;
 * - at exit only the sockets this process bound and the pidfile it wrote are removed, each only
 *   if the path still names what we created.
 * Observation: `capture/start` on the management console makes the connection a live pcapng
 * stream of any ports (ports/capture.ts), `events` streams JSON events (ports/events.ts), and
 * `--metrics ADDR` serves Prometheus metrics (ports/metrics.ts).
 * The CLI (main.ts) only turns options into a SwitchOptions object.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { errorText } from '../core/errors.js';
import { userName } from '../core/perms.js';
import { flushLog, log } from '../core/log.js';
import { PidFile } from '../core/pidfile.js';
import { checkParentDir, claimSocketPath, listenUnix, OwnedPath, probeSocketPath, removeCreatedDir } from '../core/sockpath.js';
import { createEngine, EpKind, MAX_STREAM_FRAME_BYTES, native, type EngineEvent, type NativeEngine } from '../native/index.js';
import type { ConsoleServer, Session } from '../protocol/console.js';
import { CaptureService } from '../ports/capture.js';
import { EventHub, observeStages, publishMacChanges } from '../ports/events.js';
import { openTapFd } from '../ports/kinds/local.js';
import { startMetrics, type MetricsServer, type MetricsText } from '../ports/metrics.js';
import { createSwitchConsole, PROMPT, type StpControl } from './console.js';
import { CtlServer, DATA_SOCKET_NAME, reclaimStaleDataSockets } from './ctl.js';
import { QemuPorts, type QemuSpec } from './qemu.js';
import { SpanningTreeControl } from './stpctl.js';
import { SwitchState } from './state.js';
import { VhostUserPorts } from './vhostuser.js';

export { PROBE_TIMEOUT_MS } from '../core/sockpath.js';

export interface SwitchOptions {
  dir: string;
  numPorts: number;
  hub: boolean;
  fstp: boolean;
  mac?: Buffer;
  priority: number;
  stpHelloSeconds?: number;
  stpForwardDelaySeconds?: number;
  stpMaxAgeSeconds?: number;
  hashSize: number;
  /** Most entries of the MAC table (default DEFAULT_MAC_ENTRIES). */
  maxMacs?: number;
  mode: number;
  dirmode: number;
  gid: number | null;
  mgmtPath: string | null;
  mgmtMode: number;
  mgmtGid: number | null;
  stdinConsole: boolean;
  rcFile: string | null;
  rcFileRequired: boolean;
  pidFile: string | null;
  foreignTags: 'pass' | 'drop';
  qemu: QemuSpec[];
  /** vhost-user back-end sockets (--vhost-user), absolute paths. */
  vhostUser?: string[];
  taps: string[];
  /** Open taps with a virtio-net header and TSO/checksum offloads (default true). */
  tapOffload?: boolean;
  /** Serve Prometheus metrics here (tcp:HOST:PORT or unix:PATH). */
  metrics?: string | null;
}

/** Probes a unix socket path: 'live' (something answers), 'stale' (refused) or 'absent' (also for non-sockets). */
export async function probeSocket(p: string): Promise<'live' | 'stale' | 'absent'> {
  const s = await probeSocketPath(p);
  return s === 'notsocket' ? 'absent' : s;
}

function formatMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Names a dead switch leaves in its directory: ctl, data sockets, and clients' .PPPPP-NNNNN sockets. */
const SWITCH_LEFTOVER = /^(ctl|\d{3,}\.\d+|\.\d{5,}-\d{5})$/;

/** A running switch. */
export class VdeSwitch {
  readonly engine: NativeEngine;
  readonly state: SwitchState;
  readonly console: ConsoleServer;
  readonly mac: Buffer;
  readonly stp: SpanningTreeControl;
  readonly events: EventHub;
  readonly capture: CaptureService;
  private metrics: MetricsServer | null = null;
  private ctl: CtlServer | null = null;
  private qemu: QemuPorts | null = null;
  private vhost: VhostUserPorts | null = null;
  private mgmt: net.Server | null = null;
  private mgmtOwned: OwnedPath | null = null;
  private mgmtSessions = new Set<net.Socket>();
  private startMs = Date.now();
  private stopped = false;
  /** Exit status once stopped: 1 after an engine failure. */
  exitCode = 0;
  /** The directory is ours to remove at exit (we created it, or reclaimed a dead switch's). */
  private ownDir = false;
  private pid: PidFile | null = null;
  private stdinListener: (() => void) | null = null;
  private onStop: Array<() => void> = [];
  dir: string;

  constructor(readonly opts: SwitchOptions) {
    this.dir = opts.dir;
    this.mac = opts.mac ?? Buffer.concat([Buffer.from([0x00, 0xff]), randomBytes(4)]);
    this.engine = createEngine(opts.numPorts + 1, (evs) => this.onEvents(evs));
    this.events = new EventHub((on) => this.engine.setMacEvents(on));
    observeStages(this.engine, this.events);
    this.state = new SwitchState(this.engine, opts.numPorts, opts.hashSize);
    if (opts.maxMacs !== undefined) this.state.setMacTableMax(opts.maxMacs);
    this.state.applyAging();
    this.stp = new SpanningTreeControl(this.state, this.mac, opts.priority, (cat, msg) => this.console.debug(cat, msg), {
      helloSeconds: opts.stpHelloSeconds,
      forwardDelaySeconds: opts.stpForwardDelaySeconds,
      maxAgeSeconds: opts.stpMaxAgeSeconds,
    }, (type, fields) => this.events.publish(type, fields));
    const stpCtl: StpControl = this.stp;
    this.console = createSwitchConsole({
      state: this.state,
      stp: stpCtl,
      info: () => ({ dir: this.dir, mode: opts.mode, mgmtPath: opts.mgmtPath, mgmtMode: opts.mgmtMode, mac: formatMac(this.mac), priority: opts.priority, startMs: this.startMs }),
      shutdown: (why) => void this.stop(why),
      attachTap: (name) => this.attachTap(name),
    });
    this.capture = new CaptureService({
      engine: this.engine,
      title: () => `vde_switch ${this.dir}`,
      ports: () => [...new Set([0, ...this.state.ports.keys()])].sort((a, b) => a - b),
      checkPort: (p) => this.state.checkRange(p),
      describe: (p) => ({ name: `${this.dir}[${p}]`, description: this.portDescription(p) }),
      onSession: ({ type, ...f }) => this.events.publish(type, f),
    });
    this.console.setCommands([...this.console.table(), ...this.capture.commands(), this.events.command(() => ({ tool: 'vde_switch', dir: this.dir, pid: process.pid }))]);
    this.state.onPortChange = (ev, port, ep) => {
      const p2 = String(port).padStart(2, '0');
      if (ev === 'port/+') {
        this.console.debug('port/+', p2);
        this.events.publish('port/create', { port });
      } else if (ev === 'port/-') {
        this.console.debug('port/-', p2);
        this.events.publish('port/remove', { port });
      } else if (ev === 'ep/+') {
        this.console.debug('port/ep/+', `Port ${p2} FD ${String(ep!.id).padStart(2)}`);
        this.console.debug('port/descr', `Port ${p2} FD ${String(ep!.id).padStart(2)} -> "${ep!.description}"`);
        this.events.publish('endpoint/attach', { port, endpoint: ep!.id, module: ep!.module, description: ep!.description, uid: ep!.uid, user: ep!.uid === null ? null : userName(ep!.uid) });
        if (this.state.port(port).endpoints.size === 1) {
          this.stp.portUp(port);
          this.events.publish('port/up', { port });
        }
      } else {
        this.console.debug('port/ep/-', `Port ${p2} FD ${String(ep!.id).padStart(2)}`);
        this.events.publish('endpoint/detach', { port, endpoint: ep!.id, module: ep!.module, description: ep!.description });
        if (this.state.ports.get(port)?.endpoints.size === 0) {
          this.stp.portDown(port);
          this.events.publish('port/down', { port });
        }
      }
      this.capture.portsChanged();
    };
  }

  /** What a capture names a port by: its endpoints' descriptions. */
  private portDescription(port: number): string {
    const p = this.state.ports.get(port);
    const eps = p ? [...p.endpoints.values()] : [];
    return eps.length ? eps.map((e) => `${e.module}: ${e.description || 'no description'}`).join('; ') : 'no endpoint';
  }

  /** The switch's own metrics families: port status, VLANs, spanning tree, capture sessions. */
  private switchMetrics(m: MetricsText): void {
    const ports = [...this.state.ports.values()].sort((a, b) => a.num - b.num);
    // template lines, not m.sample(): this runs for every port of a 1000-port switch per scrape
    const lines = (f: (p: (typeof ports)[number]) => string): void => {
      m.raw(ports.map(f).join(''));
    };
    m.family('vde_port_up', 'gauge', 'Whether the port has an endpoint (1) or not (0).');
    lines((p) => `vde_port_up{port="${p.num}"} ${p.endpoints.size > 0 ? 1 : 0}\n`);
    m.family('vde_port_endpoints', 'gauge', 'Endpoints attached to the port.');
    lines((p) => `vde_port_endpoints{port="${p.num}"} ${p.endpoints.size}\n`);
    m.family('vde_port_vlan_member', 'gauge', 'VLAN membership of the port (1), untagged or tagged.');
    lines((p) => (p.untagged !== 4095 ? `vde_port_vlan_member{port="${p.num}",vlan="${p.untagged}",tagged="false"} 1\n` : '') +
      [...p.tagged].sort((a, b) => a - b).map((v) => `vde_port_vlan_member{port="${p.num}",vlan="${v}",tagged="true"} 1\n`).join(''));
    m.family('vde_port_stp_state', 'gauge', 'Spanning-tree state of the port: 1 for the state it is in (forwarding, learning, discarding).');
    const stpOn = this.stp.enabled();
    lines((p) => {
      const st = stpOn ? this.stp.portState(p.num) : 'Forwarding';
      return `vde_port_stp_state{port="${p.num}",state="forwarding"} ${st === 'Forwarding' ? 1 : 0}\nvde_port_stp_state{port="${p.num}",state="learning"} ${st === 'Learning' ? 1 : 0}\nvde_port_stp_state{port="${p.num}",state="discarding"} ${st === 'Discarding' ? 1 : 0}\n`;
    });
    m.family('vde_stp_enabled', 'gauge', 'Whether spanning tree runs.').sample('vde_stp_enabled', null, this.stp.enabled() ? 1 : 0);
    m.family('vde_capture_sessions', 'gauge', 'Running capture sessions.').sample('vde_capture_sessions', null, this.capture.count());
    m.family('vde_start_time_seconds', 'gauge', 'When the switch started, seconds since the epoch.').sample('vde_start_time_seconds', null, Math.floor(this.startMs / 1000));
  }

  /** Creates the directory and sockets and starts serving; throws with a clear message on failure. */
  async start(): Promise<void> {
    const o = this.opts;
    if (o.hub) this.state.setHub(true);
    this.state.setForeignTags(o.foreignTags);
    // everything that can refuse without creating anything comes first
    if (o.mgmtPath) await claimSocketPath(o.mgmtPath, 'management socket');
    await this.setupDir();
    const ctlPath = path.join(this.dir, 'ctl');
    this.ctl = new CtlServer(this.state, { dir: this.dir, mode: o.mode, gid: o.gid, mgmtMode: o.mgmtMode, mgmtGid: o.mgmtGid });
    try {
      await this.ctl.listen();
    } catch (e) {
      this.ctl = null;
      throw new Error(`could not bind to socket '${ctlPath}': ${(e as Error).message}`);
    }
    if (o.pidFile) this.pid = PidFile.create(o.pidFile);
    for (const t of o.taps) this.attachTap(t);
    if (o.qemu.length) {
      this.qemu = new QemuPorts(this.state);
      await this.qemu.start(o.qemu);
    }
    if (o.vhostUser?.length) {
      this.vhost = new VhostUserPorts(this.state, { mode: o.mode, gid: o.gid });
      await this.vhost.start(o.vhostUser);
    }
    if (o.mgmtPath) await this.startMgmt(o.mgmtPath);
    if (o.metrics) {
      this.metrics = await startMetrics(o.metrics, {
        engine: this.engine,
        tool: 'vde_switch',
        ports: () => [...this.state.ports.keys()].sort((a, b) => a - b),
        extra: (m) => this.switchMetrics(m),
      });
      log('info', `metrics on ${this.metrics.where}/metrics`);
    }
    if (o.fstp && !o.hub) this.stp.setEnabled(true);
    if (o.rcFile) await this.runRc(o.rcFile, o.rcFileRequired);
    if (o.stdinConsole) this.startStdinConsole();
  }

  /** Opens (creating if needed) a tap interface and gives it an automatically allocated port. */
  private attachTap(name: string): number {
    // --tap-offload on (default): virtio-net header + TSO/checksum offloads, so that TCP between
    // taps on this switch moves 64 KiB segments; frames for other ports are segmented in software
    const offload = this.opts.tapOffload !== false;
    let tap: { fd: number; name: string; offloads: boolean };
    try {
      tap = openTapFd(name, offload, `--tap ${name}`);
    } catch (e) {
      if (!offload || !/\/vnethdr:/.test((e as Error).message)) throw e;
      log('warning', `--tap ${name}: offloads unavailable (${(e as Error).message}); plain frames`);
      tap = openTapFd(name, false, `--tap ${name}`);
    }
    const port = this.state.allocate(0, false, null);
    const engineId = this.engine.addEndpoint(port.num, tap.fd, EpKind.Tap, MAX_STREAM_FRAME_BYTES, true);
    if (!engineId) {
      native().closeFd(tap.fd);
      throw new Error(`--tap ${name}: the engine refused the endpoint`);
    }
    const id = tap.fd;
    let closed = false;
    this.state.attach(port, {
      id,
      engineId,
      module: 'tuntap',
      description: tap.name,
      uid: null,
      offload: tap.offloads,
      close: () => {
        if (closed) return;
        closed = true;
        this.engine.removeEndpoint(engineId);
        this.state.detach(port.num, id);
      },
    });
    log('info', `port ${port.num}: tap ${tap.name}`);
    return port.num;
  }

  /** Creates, reclaims or adopts the switch directory (see the file comment) and refuses a live switch. */
  private async setupDir(): Promise<void> {
    const o = this.opts;
    checkParentDir(o.dir, 'switch directory');
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(o.dir);
    } catch {
      st = null;
    }
    if (!st) {
      try {
        fs.mkdirSync(o.dir, { mode: o.dirmode & 0o777 });
      } catch (e) {
        throw new Error(`switch directory ${o.dir}: ${errorText(e)}`);
      }
      this.ownDir = true;
      this.dir = fs.realpathSync(o.dir);
      if (o.gid !== null) fs.chownSync(this.dir, -1, o.gid);
      fs.chmodSync(this.dir, o.dirmode);
    } else {
      if (!st.isDirectory()) throw new Error(`${o.dir} exists and is not a directory`);
      this.dir = fs.realpathSync(o.dir);
      const ctlPath = path.join(this.dir, 'ctl');
      const probe = await probeSocketPath(ctlPath);
      if (probe === 'live') throw new Error(`another switch is running on ${ctlPath} (its control socket accepts connections)`);
      if (probe === 'notsocket') throw new Error(`${ctlPath} exists and is not a socket; not removing it`);
      if (probe === 'stale') {
        // a switch died here: its directory, its leftovers and the removal at exit are ours now
        const names = fs.readdirSync(this.dir);
        this.ownDir = names.every((n) => SWITCH_LEFTOVER.test(n));
        log('info', `removing stale control socket ${ctlPath}`);
        fs.rmSync(ctlPath, { force: true });
        const n = reclaimStaleDataSockets(this.dir);
        if (n) log('info', `removed ${n} stale data socket${n === 1 ? '' : 's'} in ${this.dir}`);
      } else if (fs.readdirSync(this.dir).some((n) => DATA_SOCKET_NAME.test(n))) {
        reclaimStaleDataSockets(this.dir);
      }
    }
    if (Buffer.byteLength(path.join(this.dir, '0000.00000')) > 107) throw new Error(`switch directory path too long for unix sockets: ${this.dir}`);
  }

  private async runRc(file: string, required: boolean): Promise<void> {
    const sess: Session = { name: `rcfile ${file}`, interactive: false, debug: new Set(), write: () => {}, end: () => {} };
    if (!fs.existsSync(file)) {
      if (required) throw new Error(`rc file ${file}: no such file`);
      return;
    }
    const r = await this.console.runScript(file, sess, false);
    if (r.errno !== 0) throw new Error(`rc file ${r.errors.join('; ')}`);
    for (const e of r.errors) log('warning', `rc file ${e}`);
  }

  private async startMgmt(p: string): Promise<void> {
    await claimSocketPath(p, 'management socket');
    const srv = net.createServer((s) => this.onMgmtClient(s));
    await listenUnix(srv, p, this.opts.mgmtMode).catch((e) => {
      throw new Error(`management socket ${p}: ${(e as Error).message}`);
    });
    this.mgmtOwned = OwnedPath.record(p);
    srv.on('error', (e) => log('error', `management socket: ${e.message}`));
    if (this.opts.mgmtGid !== null) fs.chownSync(p, -1, this.opts.mgmtGid);
    this.mgmt = srv;
  }

  private onMgmtClient(s: net.Socket): void {
    this.mgmtSessions.add(s);
    this.console.serveSocket(s);
    s.on('close', () => this.mgmtSessions.delete(s));
  }

  private startStdinConsole(): void {
    const tty = process.stdin.isTTY === true;
    const sess: Session = {
      name: 'stdin console',
      interactive: true,
      debug: new Set(),
      write: (t) => process.stdout.write(t),
      end: () => {},
    };
    this.console.addSession(sess);
    // on the stdin console `logout` does nothing; `shutdown` stops the switch
    const input = this.console.lineInput(sess, { prompt: tty ? PROMPT : '', endOnLogout: false });
    process.stdin.setEncoding('utf8');
    const onData = (d: string): void => input.push(d);
    const onEnd = (): void => void this.stop('EOF on stdin, cleaning up and exiting');
    process.stdin.on('data', onData);
    process.stdin.on('end', onEnd);
    process.stdin.on('error', onEnd);
    this.stdinListener = () => {
      input.close();
      process.stdin.off('data', onData);
      process.stdin.off('end', onEnd);
      process.stdin.off('error', onEnd);
      process.stdin.pause();
    };
  }

  private onEvents(evs: EngineEvent[]): void {
    for (const ev of evs) {
      if (ev.type === 'engineFailed') {
        // the data plane is gone: never keep serving without it
        log('error', `the frame engine failed (${ev.detail}: errno ${ev.errno}); stopping`);
        this.exitCode = 1;
        void this.stop('engine failure');
        return;
      }
      if (this.capture.onEngineEvent(ev)) continue;
      if (ev.type === 'macs' && ev.macs) publishMacChanges(this.events, ev.macs);
      else if (ev.type === 'bpdu' && ev.frame) this.stp.receive(ev.port, ev.frame);
      else if (ev.type === 'epError') log('warning', `port ${ev.port}: endpoint ${ev.detail}: errno ${ev.errno}`);
      else if (ev.type === 'epClosed') {
        log('info', `port ${ev.port}: endpoint closed (${ev.detail})`);
        const p = this.state.ports.get(ev.port);
        for (const e of p?.endpoints.values() ?? []) if (e.engineId === ev.ep) e.close();
      }
    }
  }

  /** Registers a callback run after the switch stopped. */
  onStopped(fn: () => void): void {
    this.onStop.push(fn);
  }

  /** Stops the switch and removes every file it created (and nothing else). Safe to call more than once. */
  async stop(reason = 'shutdown'): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    log('info', reason);
    this.stdinListener?.();
    this.stp.setEnabled(false);
    this.stp.close();
    this.qemu?.close();
    this.capture.stopAll();
    this.metrics?.close();
    this.vhost?.close();
    for (const p of this.state.ports.values()) for (const ep of [...p.endpoints.values()]) ep.close();
    this.ctl?.close();
    for (const s of this.mgmtSessions) s.destroy();
    this.mgmt?.close();
    this.mgmtOwned?.release();
    this.engine.close();
    if (this.ownDir) removeCreatedDir(this.dir, (m) => log('warning', m));
    // last: a vanished pidfile tells scripts that the switch has finished cleaning up
    this.pid?.remove();
    flushLog();
    for (const fn of this.onStop) fn();
  }
}
