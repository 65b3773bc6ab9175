/**
 * Observation for the two-port tools (vde_plug --mgmt/--metrics, slirpvde -M/--metrics,
 * wirefilter -M/--metrics): one object that gives a Wire a capture service (capture/start,
 * capture/list, capture/ports), an event hub (`events`: endpoint attach/detach, stage changes,
 * capture sessions, MAC changes when the engine learns) and the Prometheus metrics of its
 * engine. Each tool adds commands() to its own console. Ports are the wire's two
 * sides, 1 and 2, named after the tool, its process id and the side.
 */
import { E, ErrnoError } from '../core/errors.js';
import type { ConsoleCommand } from '../protocol/console.js';
import { CaptureService } from './capture.js';
import { EventHub, observeStages, publishMacChanges } from './events.js';
import { startMetrics, type MetricsServer } from './metrics.js';
import type { Wire } from './wire.js';

const WIRE_PORTS = [1, 2];

/** Capture, events and metrics of a running Wire (see the file comment). */
export class WireObservation {
  readonly events: EventHub;
  readonly capture: CaptureService;
  private metrics: MetricsServer | null = null;

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

  /** Serves the engine's metrics at addr (tcp:HOST:PORT or unix:PATH). */
  async serveMetrics(addr: string): Promise<void> {
    this.metrics = await startMetrics(addr, { engine: this.wire.engine, tool: this.tool, ports: () => WIRE_PORTS });
  }

  /** Ends capture sessions and closes the metrics server. */
  close(): void {
    this.capture.stopAll();
    this.metrics?.close();
  }
}
