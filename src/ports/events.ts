/**
 * The JSON event stream of a tool (`vdecmd -s SOCK events`): one JSON object per line, each with
 * a `time` (ISO 8601, milliseconds, UTC) and a `type`, for scripts and the lab runner that would
 * otherwise poll. Tools publish what happens to an EventHub: ports up and down, endpoints
 * attached and detached (with who attached), MAC addresses learned, moved, aged and evicted
 * (from the engine, bounded: engine.setMacEvents is on only while someone listens), spanning-tree
 * role and state changes, stage changes (impairment, capture, mirror...), capture sessions.
 *
 * The `events` console command streams them in the console's data block until the client goes
 * away. A client that does not read costs at most MAX_EVENT_BACKLOG_BYTES of buffered output:
 * beyond that its events are dropped and counted, and once it reads again it first gets
 * `{"type":"events/dropped","count":N}`.
 */
import type { MacChange, NativeEngine } from '../native/index.js';
import { CONSOLE_DETACHED, DATA_HEADER, type ConsoleCommand, type Session } from '../protocol/console.js';

/** Output a slow `events` client may have waiting before its events are dropped. */
export const MAX_EVENT_BACKLOG_BYTES = 1 << 20;

/** One event: a type and its fields (time is added by publish). */
export interface VdeEvent {
  type: string;
  time?: string;
  [field: string]: unknown;
}

/** Where a tool's events go (see the file comment). */
export class EventHub {
  private subs = new Set<(e: VdeEvent) => void>();

  /** Called with true when the first subscriber arrives and false when the last leaves. */
  constructor(private onActive?: (active: boolean) => void) {}

  /** True while someone listens (publishers may skip expensive work otherwise). */
  active(): boolean {
    return this.subs.size > 0;
  }

  /** Sends an event to every subscriber, with the current time. */
  publish(type: string, fields: Record<string, unknown> = {}): void {
    if (!this.subs.size) return;
    const e: VdeEvent = { time: new Date().toISOString(), type, ...fields };
    for (const fn of this.subs) fn(e);
  }

  /** Adds a subscriber; returns the function that removes it. */
  subscribe(fn: (e: VdeEvent) => void): () => void {
    this.subs.add(fn);
    if (this.subs.size === 1) this.onActive?.(true);
    return () => {
      if (this.subs.delete(fn) && this.subs.size === 0) this.onActive?.(false);
    };
  }

  /** The `events` console command: streams this hub's events on a socket session until it closes. */
  command(describe: () => Record<string, unknown> = () => ({})): ConsoleCommand {
    return {
      path: 'events',
      syntax: '',
      help: 'stream events as JSON lines (ports, endpoints, MACs, spanning tree, stages) until the client leaves',
      run: async (_a, _out, s: Session) => {
        if (!s.closed || !s.backlog) return 95; // EOPNOTSUPP: only a socket session can stream
        let dropped = 0;
        const write = (e: VdeEvent): void => {
          if (s.backlog!() > MAX_EVENT_BACKLOG_BYTES) {
            dropped++;
            return;
          }
          if (dropped) {
            s.write(`${JSON.stringify({ time: new Date().toISOString(), type: 'events/dropped', count: dropped })}\n`);
            dropped = 0;
          }
          s.write(`${JSON.stringify(e)}\n`);
        };
        s.write(`${DATA_HEADER}\n`);
        write({ time: new Date().toISOString(), type: 'events/start', ...describe() });
        const off = this.subscribe(write);
        await s.closed;
        off();
        return CONSOLE_DETACHED;
      },
    };
  }
}

/**
 * Publishes stage changes made through an engine: wraps its setStage, setMirror and setStorm so
 * that every change (impairment, filters, mirroring, storm control; capture sessions excepted,
 * they have events of their own) becomes a `stage` event with the port, direction, stage name and
 * the new configuration (null: removed).
 */
export function observeStages(engine: NativeEngine, hub: EventHub): void {
  const setStage = engine.setStage.bind(engine);
  const setMirror = engine.setMirror.bind(engine);
  const setStorm = engine.setStorm.bind(engine);
  engine.setStage = (port, dir, name, config) => {
    setStage(port, dir, name, config);
    if (!name.startsWith('capture:')) hub.publish('stage', { port, direction: dir, stage: name, config });
  };
  engine.setMirror = (port, inTarget, outTarget) => {
    setMirror(port, inTarget, outTarget);
    hub.publish('stage', { port, direction: 'both', stage: 'mirror', config: inTarget < 0 && outTarget < 0 ? null : { in: inTarget < 0 ? null : inTarget, out: outTarget < 0 ? null : outTarget } });
  };
  engine.setStorm = (port, pps) => {
    setStorm(port, pps);
    hub.publish('stage', { port, direction: 'in', stage: 'storm', config: pps ? { pps } : null });
  };
}

/** Publishes the engine's MAC-table changes (a "macs" event) as mac/learned, mac/moved, mac/aged, mac/evicted. */
export function publishMacChanges(hub: EventHub, changes: MacChange[]): void {
  for (const c of changes) {
    const f: Record<string, unknown> = { mac: c.mac, vlan: c.vlan, port: c.port };
    if (c.what === 'moved') f.from = c.oldPort;
    hub.publish(`mac/${c.what}`, f);
  }
}
