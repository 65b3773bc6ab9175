/**
 * Observation for the two-port tools (vde_plug --mgmt/--metrics, slirpvde -M/--metrics; the
 * coming wirefilter the same way): one object that gives a Wire a capture service (capture/start,
 * capture/list, capture/ports), an event hub (`events`: endpoint attach/detach, stage changes,
 * capture sessions, MAC changes when the engine learns) and the Prometheus metrics of its
 * engine, and a small console for tools that have none of their own. Ports are the wire's two
 * sides, 1 and 2, named after the tool, its process id and the side.
 */
import net from 'node:net';
import { E, ErrnoError } from '../core/errors.js';
import { claimSocketPath, listenUnix, OwnedPath } from '../core/sockpath.js';
import { VDE_TS_VERSION } from '../core/version.js';
import { ConsoleServer, CONSOLE_END, type ConsoleCommand } from '../protocol/console.js';
import { CaptureService } from './capture.js';
import { EventHub, observeStages, publishMacChanges } from './events.js';
import { startMetrics, type MetricsServer } from './metrics.js';
import type { Wire } from './wire.js';

/** Mode of a console socket a tool creates. */
export const CONSOLE_SOCKET_MODE = 0o600;
/** Longest console line of the plug console. */
export const MAX_PLUG_LINE_BYTES = 1024;
const WIRE_PORTS = [1, 2];

/** Serves a console on a unix socket (refusing a live one); returns the function that closes it and removes the file. */
export async function listenConsole(sockPath: string, server: ConsoleServer, mode = CONSOLE_SOCKET_MODE): Promise<() => void> {
  await claimSocketPath(sockPath, 'management socket');
  const srv = net.createServer((s) => server.serveSocket(s));
  await listenUnix(srv, sockPath, mode).catch((e) => {
    throw new Error(`management socket ${sockPath}: ${(e as Error).message}`);
  });
  const owned = OwnedPath.record(sockPath);
  return () => {
    srv.close();
    owned.release();
  };
}

/** Capture, events and metrics of a running Wire (see the file comment). */
export class WireObservation {
  readonly events: EventHub;
  readonly capture: CaptureService;
  private metrics: MetricsServer | null = null;
  private closers: Array<() => void> = [];

  constructor(
    private wire: Wire,
    private tool: string,
  ) {
    this.events = new EventHub((on) => wire.engine.setMacEvents(on));
    observeStages(wire.engine, this.events);
    this.capture = new CaptureService({
      engine: wire.engine,
      title: () => `${tool} ${process.pid}`,
      ports: () => WIRE_PORTS,
      checkPort: (p) => {
        if (!WIRE_PORTS.includes(p)) throw new ErrnoError(E.EINVAL, `port ${p} out of range 1..2 (the two sides of the ${tool})`);
      },
      describe: (p) => ({ name: `${tool} ${process.pid} side ${p}`, description: wire.endpoint(p === 1 ? 0 : 1)?.name ?? 'not attached' }),
      onSession: ({ type, ...f }) => this.events.publish(type, f),
    });
    wire.observer = {
      onEngineEvent: (ev) => {
        if (this.capture.onEngineEvent(ev)) return true;
        if (ev.type === 'macs' && ev.macs) {
          publishMacChanges(this.events, ev.macs);
          return true;
        }
        return false;
      },
      onAttach: (port, name) => {
        this.events.publish('endpoint/attach', { port, description: name });
        this.events.publish('port/up', { port });
        this.capture.portsChanged();
      },
      onDetach: (port, name, why) => {
        this.events.publish('endpoint/detach', { port, description: name, reason: why });
        this.events.publish('port/down', { port });
      },
    };
  }

  /** The console commands: capture/*, events. */
  commands(): ConsoleCommand[] {
    return [...this.capture.commands(), this.events.command(() => ({ tool: this.tool, pid: process.pid }))];
  }

  /** A console of its own for tools without one (vde_plug --mgmt): help, showinfo, capture, events, logout. */
  async serveConsole(sockPath: string): Promise<void> {
    const server = new ConsoleServer({ banner: `VDE ${this.tool} (vde-ts ${VDE_TS_VERSION})\n`, prompt: '\nplug$ ', maxLineBytes: MAX_PLUG_LINE_BYTES });
    const showinfo: ConsoleCommand = {
      path: 'showinfo',
      syntax: '',
      help: 'the two sides and their counters (JSON)',
      text: true,
      run: (_a, out) => {
        out.push(JSON.stringify({ tool: this.tool, pid: process.pid, version: VDE_TS_VERSION, sides: WIRE_PORTS.map((p) => ({ port: p, endpoint: this.wire.endpoint(p === 1 ? 0 : 1)?.name ?? null, counters: this.wire.engine.counters(p) })) }));
      },
    };
    server.setCommands([server.helpCommand(), showinfo, ...this.commands(), { path: 'logout', syntax: '', help: 'end this session', run: () => CONSOLE_END }]);
    this.closers.push(await listenConsole(sockPath, server));
  }

  /** Serves the engine's metrics at addr (tcp:HOST:PORT or unix:PATH). */
  async serveMetrics(addr: string): Promise<void> {
    this.metrics = await startMetrics(addr, { engine: this.wire.engine, tool: this.tool, ports: () => WIRE_PORTS });
  }

  /** Ends capture sessions and closes the console and metrics server. */
  close(): void {
    this.capture.stopAll();
    this.metrics?.close();
    for (const c of this.closers.splice(0)) c();
  }
}
