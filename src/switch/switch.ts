/**
 * VdeSwitch: one running switch. Sets up the switch directory (modes, group, stale-socket
 * reclaim), the native engine, the control server, the management socket and stdin console, the
 * rc file, spanning tree and the pidfile; and tears all of it down on shutdown or signal, removing
 * every socket file, the pidfile and the directory. The CLI (main.ts) only turns options into a
 * SwitchOptions object.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { log } from '../core/log.js';
import { EpKind, MAX_STREAM_FRAME_BYTES, native, toNodeError, type EngineEvent, type NativeEngine } from '../native/index.js';
import { Console, BANNER, PROMPT, END_OF_SESSION, MAX_LINE_BYTES, type Session, type StpControl } from './console.js';
import { CtlServer } from './ctl.js';
import { QemuPorts, type QemuSpec } from './qemu.js';
import { SpanningTreeControl } from './stpctl.js';
import { SwitchState } from './state.js';

/** How long a liveness probe of an existing control socket may take. */
export const PROBE_TIMEOUT_MS = 1000;

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
  taps: string[];
  /** Open taps with a virtio-net header and TSO/checksum offloads (default true). */
  tapOffload?: boolean;
}

/** Probes a unix stream socket path: 'live' (something accepts), 'stale' (refused) or 'absent'. */
export function probeSocket(p: string): Promise<'live' | 'stale' | 'absent'> {
  return new Promise((resolve) => {
    if (!fs.existsSync(p)) return resolve('absent');
    const c = net.connect({ path: p });
    const t = setTimeout(() => {
      c.destroy();
      resolve('live');
    }, PROBE_TIMEOUT_MS);
    c.once('connect', () => {
      clearTimeout(t);
      c.destroy();
      resolve('live');
    });
    c.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(e.code === 'ECONNREFUSED' || e.code === 'ENOTSOCK' ? 'stale' : 'live');
    });
  });
}

function formatMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** A running switch. */
export class VdeSwitch {
  readonly engine: NativeEngine;
  readonly state: SwitchState;
  readonly console: Console;
  readonly mac: Buffer;
  readonly stp: SpanningTreeControl;
  private ctl: CtlServer | null = null;
  private qemu: QemuPorts | null = null;
  private mgmt: net.Server | null = null;
  private mgmtSessions = new Set<net.Socket>();
  private startMs = Date.now();
  private stopped = false;
  private pidWritten = false;
  private stdinListener: (() => void) | null = null;
  private onStop: Array<() => void> = [];
  dir: string;

  constructor(readonly opts: SwitchOptions) {
    this.dir = opts.dir;
    this.mac = opts.mac ?? Buffer.concat([Buffer.from([0x00, 0xff]), randomBytes(4)]);
    this.engine = new (native().Engine)(opts.numPorts + 1, (evs) => this.onEvents(evs));
    this.state = new SwitchState(this.engine, opts.numPorts, opts.hashSize);
    this.engine.resizeMacTable(Math.max(opts.hashSize, 1024));
    this.state.applyAging();
    this.stp = new SpanningTreeControl(this.state, this.mac, opts.priority, (cat, msg) => this.console.debug(cat, msg), {
      helloSeconds: opts.stpHelloSeconds,
      forwardDelaySeconds: opts.stpForwardDelaySeconds,
      maxAgeSeconds: opts.stpMaxAgeSeconds,
    });
    const stpCtl: StpControl = this.stp;
    this.console = new Console({
      state: this.state,
      stp: stpCtl,
      info: () => ({ dir: this.dir, mode: opts.mode, mgmtPath: opts.mgmtPath, mgmtMode: opts.mgmtMode, mac: formatMac(this.mac), priority: opts.priority, startMs: this.startMs }),
      shutdown: (why) => void this.stop(why),
    });
    this.state.onPortChange = (ev, port, ep) => {
      const p2 = String(port).padStart(2, '0');
      if (ev === 'port/+') this.console.debug('port/+', p2);
      else if (ev === 'port/-') this.console.debug('port/-', p2);
      else if (ev === 'ep/+') {
        this.console.debug('port/ep/+', `Port ${p2} FD ${String(ep!.id).padStart(2)}`);
        this.console.debug('port/descr', `Port ${p2} FD ${String(ep!.id).padStart(2)} -> "${ep!.description}"`);
        if (this.state.port(port).endpoints.size === 1) this.stp.portUp(port);
      } else {
        this.console.debug('port/ep/-', `Port ${p2} FD ${String(ep!.id).padStart(2)}`);
        if (this.state.ports.get(port)?.endpoints.size === 0) this.stp.portDown(port);
      }
    };
  }

  /** Creates the directory and sockets and starts serving; throws with a clear message on failure. */
  async start(): Promise<void> {
    const o = this.opts;
    if (o.hub) this.state.setHub(true);
    this.state.setForeignTags(o.foreignTags);
    this.setupDir();
    const ctlPath = path.join(this.dir, 'ctl');
    const probe = await probeSocket(ctlPath);
    if (probe === 'live') throw new Error(`another switch is running on ${ctlPath} (its control socket accepts connections)`);
    if (probe === 'stale') {
      log('info', `removing stale control socket ${ctlPath}`);
      fs.rmSync(ctlPath, { force: true });
    }
    this.ctl = new CtlServer(this.state, { dir: this.dir, mode: o.mode, gid: o.gid, mgmtMode: o.mgmtMode, mgmtGid: o.mgmtGid });
    try {
      await this.ctl.listen();
    } catch (e) {
      this.ctl = null;
      throw new Error(`could not bind to socket '${ctlPath}': ${(e as Error).message}`);
    }
    if (o.pidFile) this.writePidFile(o.pidFile);
    for (const t of o.taps) this.attachTap(t);
    if (o.qemu.length) {
      this.qemu = new QemuPorts(this.state);
      await this.qemu.start(o.qemu);
    }
    if (o.mgmtPath) await this.startMgmt(o.mgmtPath);
    if (o.fstp && !o.hub) this.stp.setEnabled(true);
    if (o.rcFile) this.runRc(o.rcFile, o.rcFileRequired);
    if (o.stdinConsole) this.startStdinConsole();
  }

  /** Opens (creating if needed) a tap interface and gives it an automatically allocated port. */
  private attachTap(name: string): void {
    let tap: { fd: number; name: string };
    // --tap-offload on (default): virtio-net header + TSO/checksum offloads, so that TCP between
    // taps on this switch moves 64 KiB segments; frames for other ports are segmented in software
    const offload = this.opts.tapOffload !== false;
    try {
      tap = native().openTap(name, offload);
      if (offload) {
        try {
          native().setTapOffload(tap.fd);
        } catch (e) {
          log('warning', `--tap ${name}: offloads unavailable (${(e as Error).message}); plain frames`);
        }
      }
    } catch (e) {
      const err = toNodeError(e);
      const hint = err.code === 'EPERM' ? ' (needs root or CAP_NET_ADMIN)' : err.code === 'ENOENT' ? ' (/dev/net/tun is missing: modprobe tun)' : '';
      throw new Error(`--tap ${name}: ${err.message}${hint}`);
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
      close: () => {
        if (closed) return;
        closed = true;
        this.engine.removeEndpoint(engineId);
        this.state.detach(port.num, id);
      },
    });
    log('info', `port ${port.num}: tap ${tap.name}`);
  }

  private setupDir(): void {
    const o = this.opts;
    if (!fs.existsSync(o.dir)) {
      fs.mkdirSync(o.dir, { mode: 0o777 });
    } else if (!fs.statSync(o.dir).isDirectory()) {
      throw new Error(`${o.dir} exists and is not a directory`);
    }
    this.dir = fs.realpathSync(o.dir);
    if (o.gid !== null) fs.chownSync(this.dir, -1, o.gid);
    fs.chmodSync(this.dir, o.dirmode);
    if (Buffer.byteLength(path.join(this.dir, '0000.00000')) > 107) throw new Error(`switch directory path too long for unix sockets: ${this.dir}`);
  }

  private writePidFile(p: string): void {
    const abs = path.resolve(p);
    try {
      fs.writeFileSync(abs, `${process.pid}\n`, { flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`pidfile ${abs}: ${(e as Error).message}`);
      const old = parseInt(fs.readFileSync(abs, 'utf8'), 10);
      let alive = false;
      if (old > 0) {
        try {
          process.kill(old, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (alive) throw new Error(`pidfile ${abs} exists and process ${old} is running`);
      log('info', `replacing stale pidfile ${abs} (process ${old} is gone)`);
      fs.writeFileSync(abs, `${process.pid}\n`);
    }
    this.opts.pidFile = abs;
    this.pidWritten = true;
  }

  private runRc(file: string, required: boolean): void {
    const sess: Session = { name: `rcfile ${file}`, interactive: false, debug: new Set(), write: () => {}, end: () => {} };
    if (!fs.existsSync(file)) {
      if (required) throw new Error(`rc file ${file}: no such file`);
      return;
    }
    const r = this.console.runScript(file, sess, false);
    if (r.errno !== 0) throw new Error(`rc file ${r.errors.join('; ')}`);
    for (const e of r.errors) log('warning', `rc file ${e}`);
  }

  private async startMgmt(p: string): Promise<void> {
    const probe = await probeSocket(p);
    if (probe === 'live') throw new Error(`management socket ${p} is in use by another process`);
    if (probe === 'stale') fs.rmSync(p, { force: true });
    const srv = net.createServer((s) => this.onMgmtClient(s));
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ path: p, backlog: 15 }, () => {
        srv.off('error', reject);
        resolve();
      });
    }).catch((e) => {
      throw new Error(`management socket ${p}: ${(e as Error).message}`);
    });
    srv.on('error', (e) => log('error', `management socket: ${e.message}`));
    fs.chmodSync(p, this.opts.mgmtMode);
    if (this.opts.mgmtGid !== null) fs.chownSync(p, -1, this.opts.mgmtGid);
    this.mgmt = srv;
  }

  /** Feeds raw console input to a session, line by line; returns false once the session ended. */
  private feed(buf: { text: string; overflow: boolean }, chunk: string, sess: Session, prompt: boolean): boolean {
    buf.text += chunk;
    for (;;) {
      const nl = buf.text.indexOf('\n');
      if (nl < 0) {
        if (Buffer.byteLength(buf.text) > MAX_LINE_BYTES) {
          buf.text = '';
          buf.overflow = true;
        }
        return true;
      }
      const line = buf.text.slice(0, nl);
      buf.text = buf.text.slice(nl + 1);
      if (buf.overflow) {
        buf.overflow = false;
        sess.write(`1022 Invalid argument\n${prompt ? PROMPT : ''}`);
        continue;
      }
      const r = this.console.execute(line, sess);
      if (r === END_OF_SESSION) {
        sess.end();
        return false;
      }
      sess.write(`${r ?? ''}${prompt ? PROMPT : ''}`);
    }
  }

  private onMgmtClient(s: net.Socket): void {
    this.mgmtSessions.add(s);
    const sess: Session = {
      name: 'mgmt session',
      interactive: true,
      debug: new Set(),
      write: (t) => {
        if (!s.destroyed) s.write(t);
      },
      end: () => {
        s.end(END_OF_SESSION);
      },
    };
    this.console.addSession(sess);
    const buf = { text: '', overflow: false };
    s.setEncoding('utf8');
    s.write(BANNER + PROMPT);
    s.on('data', (d: string) => {
      if (!this.feed(buf, d, sess, true)) s.removeAllListeners('data');
    });
    s.on('error', () => s.destroy());
    s.on('close', () => {
      this.console.removeSession(sess);
      this.mgmtSessions.delete(s);
    });
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
    const buf = { text: '', overflow: false };
    process.stdin.setEncoding('utf8');
    const onData = (d: string): void => {
      // on the stdin console `logout` does nothing; `shutdown` stops the switch
      this.feed(buf, d, sess, tty);
    };
    const onEnd = (): void => void this.stop('EOF on stdin, cleaning up and exiting');
    process.stdin.on('data', onData);
    process.stdin.on('end', onEnd);
    process.stdin.on('error', onEnd);
    this.stdinListener = () => {
      process.stdin.off('data', onData);
      process.stdin.off('end', onEnd);
      process.stdin.off('error', onEnd);
      process.stdin.pause();
    };
  }

  private onEvents(evs: EngineEvent[]): void {
    for (const ev of evs) {
      if (ev.type === 'bpdu' && ev.frame) this.stp.receive(ev.port, ev.frame);
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

  /** Stops the switch and removes every file it created. Safe to call more than once. */
  async stop(reason = 'shutdown'): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    log('info', reason);
    this.stdinListener?.();
    this.stp.setEnabled(false);
    this.stp.close();
    this.qemu?.close();
    for (const p of this.state.ports.values()) for (const ep of [...p.endpoints.values()]) ep.close();
    this.ctl?.close();
    for (const s of this.mgmtSessions) s.destroy();
    this.mgmt?.close();
    if (this.opts.mgmtPath) fs.rmSync(this.opts.mgmtPath, { force: true });
    this.engine.close();
    try {
      fs.rmdirSync(this.dir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') log('warning', `could not remove ${this.dir}: ${(e as Error).message}`);
    }
    // last: a vanished pidfile tells scripts that the switch has finished cleaning up
    if (this.pidWritten && this.opts.pidFile) fs.rmSync(this.opts.pidFile, { force: true });
    for (const fn of this.onStop) fn();
  }
}

