/**
 * Live capture for any tool with a console (vde_switch, vde_plug --mgmt, slirpvde -M, and
 * wirefilter once it mounts it): the `capture/start` console command takes the client's
 * connection over and hands its fd to the engine's capture stage (native/src/stage_capture.cc),
 * which writes pcapng into it from the engine thread; `capture/list` shows the sessions.
 *
 * Protocol (what `vde_capture` speaks): the client sends `capture/start` with an optional JSON
 * object `{"ports": [N, ...] | "all", "direction": "in" | "out" | "both", "snaplen": BYTES,
 * "filter": "EXPR"}` (plain port numbers instead of JSON work too: `capture/start 1 3`). On
 * success it gets the data block `{"session": ..., "ports": [...], ...}` and `1000 Success`, and
 * from then on the connection carries pcapng only: a Section Header Block at once, an Interface
 * Description Block per port before its first frame, Enhanced Packet Blocks, and Interface
 * Statistics Blocks when the capture ends. To stop, the client half-closes its side (shutdown
 * SHUT_WR): the engine adds the statistics, writes what is left and closes; a client that just
 * goes away ends the session too. On failure the data block holds `{"error": ..., "errno": N}`
 * with the usual status line, and the session stays a console session.
 *
 * Whoever may use the console socket may capture (rootless). A session on "all" ports follows
 * the host: ports that appear later are captured too (the host calls portsChanged()), and a
 * port's interface description is its description when its first frame is captured.
 */
import { E, ErrnoError } from '../core/errors.js';
import { log } from '../core/log.js';
import { VDE_TS_VERSION } from '../core/version.js';
import { native, type EngineEvent, type NativeEngine } from '../native/index.js';
import { CONSOLE_DETACHED, DATA_HEADER, statusLine, type ConsoleCommand, type Session } from '../protocol/console.js';

/** Default and largest snapshot length, bytes (the engine's limits). */
export const DEFAULT_SNAPLEN_BYTES = 262144;
export const MIN_SNAPLEN_BYTES = 14;
/** Longest filter expression, bytes. */
export const MAX_FILTER_BYTES = 1024;
/** Capture sessions one tool serves at once. */
export const MAX_CAPTURE_SESSIONS = 32;

/** What a tool gives its capture service. */
export interface CaptureHost {
  engine: NativeEngine;
  /** What this tool is, for capture clients' lists (e.g. "vde_switch /tmp/sw"). */
  title(): string;
  /** Ports "all" means now (the switch: port 0 and the created ports; a plug: its two sides). */
  ports(): number[];
  /** Throws an ErrnoError (EINVAL/ENXIO) when port cannot be captured. */
  checkPort(port: number): void;
  /** Interface name (unique across tools, e.g. "/tmp/sw[3]") and description of a port. */
  describe(port: number): { name: string; description: string };
  /** Told when sessions start and end (the event stream). */
  onSession?(ev: { type: 'capture/start' | 'capture/stop'; session: string; ports?: number[] | 'all'; reason?: string }): void;
}

/** A capture request as the console receives it. */
export interface CaptureRequest {
  ports: number[] | 'all';
  direction: 'in' | 'out' | 'both';
  snaplen: number;
  filter: string;
}

interface Running {
  id: string;
  req: CaptureRequest;
  /** port -> description the stage was installed with */
  installed: Map<number, string>;
  startMs: number;
}

let nextSession = 1;

/** Parses the argument of capture/start (JSON object, port numbers, or nothing = all ports). */
export function parseCaptureRequest(arg: string): CaptureRequest {
  const req: CaptureRequest = { ports: 'all', direction: 'both', snaplen: DEFAULT_SNAPLEN_BYTES, filter: '' };
  const a = arg.trim();
  if (a === '' || a === 'all') return req;
  if (!a.startsWith('{')) {
    const words = a.split(/\s+/);
    if (!words.every((w) => /^\d{1,5}$/.test(w))) throw new ErrnoError(E.EINVAL, `capture/start: "${a}" is neither port numbers nor a JSON object`);
    req.ports = words.map(Number);
    return req;
  }
  let o: unknown;
  try {
    o = JSON.parse(a);
  } catch {
    throw new ErrnoError(E.EINVAL, 'capture/start: the argument is not valid JSON');
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new ErrnoError(E.EINVAL, 'capture/start: the argument must be a JSON object');
  const r = o as Record<string, unknown>;
  for (const k of Object.keys(r)) if (!['ports', 'direction', 'snaplen', 'filter'].includes(k)) throw new ErrnoError(E.EINVAL, `capture/start: unknown field "${k}" (known: ports, direction, snaplen, filter)`);
  if (r.ports !== undefined && r.ports !== 'all') {
    if (!Array.isArray(r.ports) || r.ports.length === 0 || !r.ports.every((p) => Number.isInteger(p) && p >= 0 && p <= 65535))
      throw new ErrnoError(E.EINVAL, 'capture/start: "ports" must be "all" or a non-empty list of port numbers');
    req.ports = [...new Set(r.ports as number[])];
  }
  if (r.direction !== undefined) {
    if (r.direction !== 'in' && r.direction !== 'out' && r.direction !== 'both') throw new ErrnoError(E.EINVAL, 'capture/start: "direction" must be "in", "out" or "both"');
    req.direction = r.direction;
  }
  if (r.snaplen !== undefined) {
    if (!Number.isInteger(r.snaplen) || (r.snaplen as number) < MIN_SNAPLEN_BYTES || (r.snaplen as number) > DEFAULT_SNAPLEN_BYTES)
      throw new ErrnoError(E.EINVAL, `capture/start: "snaplen" must be a whole number ${MIN_SNAPLEN_BYTES}..${DEFAULT_SNAPLEN_BYTES}`);
    req.snaplen = r.snaplen as number;
  }
  if (r.filter !== undefined) {
    if (typeof r.filter !== 'string' || Buffer.byteLength(r.filter) > MAX_FILTER_BYTES) throw new ErrnoError(E.EINVAL, `capture/start: "filter" must be a string of at most ${MAX_FILTER_BYTES} bytes`);
    req.filter = r.filter;
  }
  return req;
}

/** The capture sessions of one tool (see the file comment). */
export class CaptureService {
  private sessions = new Map<string, Running>();

  constructor(private host: CaptureHost) {}

  /** The console commands: capture/start and capture/list. */
  commands(): ConsoleCommand[] {
    return [
      { path: 'capture', syntax: '============', help: 'LIVE CAPTURE (pcapng)', menu: true },
      {
        path: 'capture/start',
        syntax: '[JSON|PORT...]',
        help: 'this connection becomes a pcapng stream (vde_capture speaks it)',
        text: true,
        json: true,
        run: (a, _out, s) => this.start(a, s),
      },
      {
        path: 'capture/ports',
        syntax: '',
        help: 'the ports a capture can name, with interface names (JSON)',
        text: true,
        json: true,
        run: (_a, out) => {
          out.push(JSON.stringify({ title: this.host.title(), ports: this.host.ports().map((port) => ({ port, ...this.host.describe(port) })) }));
        },
      },
      {
        path: 'capture/list',
        syntax: '',
        help: 'running capture sessions (JSON)',
        text: true,
        json: true,
        run: async (_a, out) => {
          out.push(JSON.stringify(await this.list()));
        },
      },
    ];
  }

  /** The sessions with their ports and per-port counters (from the stages). */
  async list(): Promise<object[]> {
    const stages = this.sessions.size ? await this.host.engine.stages(-1) : [];
    return [...this.sessions.values()].map((r) => ({
      session: r.id,
      ports: r.req.ports,
      direction: r.req.direction,
      snaplen: r.req.snaplen,
      filter: r.req.filter,
      seconds: Math.round((Date.now() - r.startMs) / 1000),
      stages: stages.filter((st) => st.name === `capture:${r.id}`).map((st) => ({ port: st.port, dir: st.dir, ...st.values })),
    }));
  }

  private async start(arg: string, s: Session): Promise<number> {
    if (!s.detach) throw new ErrnoError(E.EOPNOTSUPP, 'capture/start needs a socket session (a management console connection)');
    const req = parseCaptureRequest(arg);
    if (this.sessions.size >= MAX_CAPTURE_SESSIONS) throw new ErrnoError(E.EAGAIN, `too many capture sessions (at most ${MAX_CAPTURE_SESSIONS})`);
    const ports = req.ports === 'all' ? this.host.ports() : req.ports;
    for (const p of ports) this.host.checkPort(p);
    const bad = native().checkCaptureFilter(req.filter);
    if (bad !== null) throw new ErrnoError(E.EINVAL, bad);
    const id = `c${nextSession++}`;
    const info = { session: id, ports: req.ports === 'all' ? 'all' : ports, direction: req.direction, snaplen: req.snaplen, filter: req.filter, format: 'pcapng' };
    s.write(`${DATA_HEADER}\n${JSON.stringify(info)}\n.\n${statusLine(0)}\n`);
    let fd: number;
    try {
      fd = await s.detach();
    } catch (e) {
      log('info', `capture ${id}: the client left before the capture started (${(e as Error).message})`);
      return CONSOLE_DETACHED;
    }
    const run: Running = { id, req, installed: new Map(), startMs: Date.now() };
    try {
      this.install(run, ports, fd);
    } catch (e) {
      // the first stage adopts the fd: only a refusal before that leaves it with us
      if (run.installed.size === 0) native().closeFd(fd);
      log('warning', `capture ${id}: ${(e as Error).message}`);
      this.removeStages(run);
      return CONSOLE_DETACHED;
    }
    this.sessions.set(id, run);
    log('info', `capture ${id}: started on ${req.ports === 'all' ? 'all ports' : `port${ports.length > 1 ? 's' : ''} ${ports.join(', ')}`} (${req.direction}${req.filter ? `, filter ${req.filter}` : ''})`);
    this.host.onSession?.({ type: 'capture/start', session: id, ports: info.ports as number[] | 'all' });
    return CONSOLE_DETACHED;
  }

  private dirs(req: CaptureRequest): Array<'in' | 'out'> {
    return req.direction === 'both' ? ['in', 'out'] : [req.direction];
  }

  // Installs the session's stages on ports; fd (first call only) starts the session in the engine.
  private install(run: Running, ports: number[], fd?: number): void {
    let first = fd;
    for (const p of ports) {
      const d = this.host.describe(p);
      for (const dir of this.dirs(run.req)) {
        const cfg: Record<string, string | number> = { session: run.id, ifname: d.name, ifdescr: d.description };
        if (first !== undefined) Object.assign(cfg, { fd: first, snaplen: run.req.snaplen, filter: run.req.filter, appl: `vde-ts ${VDE_TS_VERSION}` });
        this.host.engine.setStage(p, dir, `capture:${run.id}`, cfg);
        first = undefined;
        run.installed.set(p, d.description);
      }
    }
  }

  private removeStages(run: Running): void {
    for (const p of run.installed.keys()) for (const dir of this.dirs(run.req)) this.host.engine.setStage(p, dir, `capture:${run.id}`, null);
    run.installed.clear();
  }

  /** The host's ports or their descriptions changed: sessions on "all" ports follow. */
  portsChanged(): void {
    for (const run of this.sessions.values()) {
      const want = run.req.ports === 'all' ? this.host.ports() : [...run.installed.keys()];
      const redo = want.filter((p) => run.installed.get(p) !== this.host.describe(p).description);
      if (!redo.length) continue;
      try {
        this.install(run, redo);
      } catch (e) {
        log('warning', `capture ${run.id}: ${(e as Error).message}`);
      }
    }
  }

  /** Handles the engine's "stage" events about capture sessions; true when the event was one. */
  onEngineEvent(ev: EngineEvent): boolean {
    if (ev.type !== 'stage' || !ev.name?.startsWith('capture:')) return false;
    const run = this.sessions.get(ev.name.slice('capture:'.length));
    if (!run) return true;
    this.sessions.delete(run.id);
    this.removeStages(run);
    log('info', `capture ${run.id}: ended (${ev.detail})`);
    this.host.onSession?.({ type: 'capture/stop', session: run.id, reason: ev.detail });
    return true;
  }

  /** Ends every session (the tool stops): their stages go, so the engine writes the statistics and closes. */
  stopAll(): void {
    for (const run of this.sessions.values()) this.removeStages(run);
    this.sessions.clear();
  }

  /** Number of running sessions. */
  count(): number {
    return this.sessions.size;
  }
}
