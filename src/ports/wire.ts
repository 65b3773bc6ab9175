/**
 * Wire: an engine with two ports and the wire policy (hub mode with two ports copies every frame
 * to the other side), one opened endpoint on each port. vde_plug and slirpvde are a Wire; so is
 * wirefilter. It watches both ends: when one goes away it either ends (vdeplug4's
 * behaviour) or, with reconnect, keeps the other end alive and re-opens the lost one with a
 * capped exponential backoff. Endpoints are opened through the kind registry and attached with
 * the one attach lifecycle (attach.ts).
 */
import { log } from '../core/log.js';
import { createEngine, type EngineEvent, type NativeEngine } from '../native/index.js';
import { Attachment, releaseEndpoint } from './attach.js';
import type { OpenedEndpoint, OpenOptions } from './endpoint.js';
import { openEndpoint, reopenable } from './registry.js';
import type { Locator } from './vnl.js';

/** First and longest pause between reconnection attempts. */
export const RECONNECT_FIRST_MS = 100;
export const RECONNECT_MAX_MS = 1000;
const KEEPALIVE_INTERVAL_MS = 3_600_000;

/** One side of the wire. */
export interface WireSide {
  locator: Locator;
  options: OpenOptions;
  reconnect: boolean;
  /** An endpoint made by the tool itself (wirefilter's pipes), used instead of opening the locator; never re-opened. */
  opened?: () => OpenedEndpoint;
}

/** What a tool watching a wire is told (capture, events: see observe.ts). */
export interface WireObserver {
  /** An engine event the wire does not handle itself; true when the observer took it. */
  onEngineEvent(ev: EngineEvent): boolean;
  /** An endpoint was attached to a port (side 1 or 2) or went away. */
  onAttach(port: number, name: string): void;
  onDetach(port: number, name: string, why: string): void;
}

interface Slot extends WireSide {
  port: number;
  at: Attachment | null;
  timer: NodeJS.Timeout | null;
}

/** Two endpoints joined by an engine. */
export class Wire {
  readonly engine: NativeEngine;
  private slots: Slot[];
  private stopped = false;
  /** Keeps Node's event loop alive while frames flow only through the engine (e.g. tap <-> udp). */
  private keepAlive: NodeJS.Timeout | null = null;
  private finish: ((r: { code: number; reason: string }) => void) | null = null;
  /** Resolves when the wire ends, with the exit status and the reason. */
  readonly done: Promise<{ code: number; reason: string }>;
  /** Told about engine events, attachments and losses (set by the tool once the wire runs). */
  observer: WireObserver | null = null;

  constructor(a: WireSide, b: WireSide) {
    this.engine = createEngine(3, (evs) => this.onEvents(evs));
    this.engine.setHub(true);
    this.engine.setBackpressure(true);
    this.slots = [a, b].map((s, i) => ({ ...s, port: i + 1, at: null, timer: null }));
    this.done = new Promise((r) => (this.finish = r));
  }

  /** Opens both ends (concurrently: a stream server may wait for its client). */
  async start(): Promise<void> {
    const opened = await Promise.allSettled(this.slots.map((s) => (s.opened ? Promise.resolve().then(s.opened) : openEndpoint(s.locator, s.options))));
    const failed = opened.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) {
      for (const r of opened) if (r.status === 'fulfilled') releaseEndpoint(r.value);
      this.engine.close();
      this.stopped = true;
      throw failed.reason;
    }
    // both ends join in one engine step: nothing the first end reads is lost for want of the second
    this.engine.holdCommands();
    try {
      opened.forEach((r, i) => this.attach(this.slots[i], (r as PromiseFulfilledResult<OpenedEndpoint>).value));
    } catch (e) {
      this.engine.releaseCommands();
      this.stop(1, (e as Error).message);
      throw e;
    }
    this.engine.releaseCommands();
    this.keepAlive = setInterval(() => {}, KEEPALIVE_INTERVAL_MS);
  }

  private attach(slot: Slot, ep: OpenedEndpoint): void {
    slot.at = Attachment.attach(this.engine, slot.port, ep, (why) => this.lost(slot, why, false));
    log('debug', `port ${slot.port}: ${ep.name} attached`);
    this.observer?.onAttach(slot.port, ep.name);
  }

  private onEvents(evs: EngineEvent[]): void {
    for (const ev of evs) {
      if (ev.type === 'engineFailed') {
        // the data plane is gone: never keep a cable up without it
        this.stop(1, `the frame engine failed (${ev.detail}: errno ${ev.errno})`);
        return;
      }
      if (this.observer?.onEngineEvent(ev)) continue;
      const slot = this.slots.find((s) => s.at?.engineId === ev.ep);
      if (!slot) continue;
      if (ev.type === 'epClosed') this.lost(slot, ev.detail + (ev.errno ? ` (errno ${ev.errno})` : ''), true);
      else if (ev.type === 'epError') log('warning', `${slot.at?.ep.name}: ${ev.detail} (errno ${ev.errno})`);
    }
  }

  private lost(slot: Slot, why: string, engineDropped: boolean): void {
    if (this.stopped || !slot.at) return;
    const name = slot.at.ep.name;
    if (engineDropped && slot.at.ep.explainLoss) why = slot.at.ep.explainLoss(why);
    slot.at.close(engineDropped);
    slot.at = null;
    this.observer?.onDetach(slot.port, name, why);
    if (slot.reconnect && !slot.opened && reopenable(slot.locator)) {
      log('warning', `${name}: ${why}; reconnecting`);
      this.reopen(slot, RECONNECT_FIRST_MS);
      return;
    }
    const normalEnd = why === 'end of stream' && slot.locator.kind === 'stdio';
    this.stop(normalEnd ? 0 : 1, `${name}: ${why}`);
  }

  private reopen(slot: Slot, delayMs: number): void {
    slot.timer = setTimeout(async () => {
      slot.timer = null;
      if (this.stopped) return;
      try {
        const ep = await openEndpoint(slot.locator, slot.options);
        if (this.stopped) {
          releaseEndpoint(ep);
          return;
        }
        this.attach(slot, ep);
        log('info', `${ep.name}: reconnected`);
      } catch (e) {
        log('debug', `reconnect: ${(e as Error).message}`);
        this.reopen(slot, Math.min(delayMs * 2, RECONNECT_MAX_MS));
      }
    }, delayMs);
  }

  /** The endpoint currently open on side i (0 or 1), or null while it is being re-opened. */
  endpoint(i: 0 | 1): OpenedEndpoint | null {
    return this.slots[i].at?.ep ?? null;
  }

  /** Ends the wire: closes both ends and resolves `done`. */
  stop(code: number, reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.keepAlive) clearInterval(this.keepAlive);
    for (const s of this.slots) {
      if (s.timer) clearTimeout(s.timer);
      s.at?.close();
      s.at = null;
    }
    this.engine.close();
    this.finish?.({ code, reason });
  }
}
