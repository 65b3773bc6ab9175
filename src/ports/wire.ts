/**
 * VdePlug: the engine with two ports and the wire policy (hub mode with two ports copies every
 * frame to the other side), one opened endpoint on each port. It watches both ends: when one
 * goes away it either ends the plug (vdeplug4's behaviour) or, with reconnect, keeps the other
 * end alive and re-opens the lost one with a capped exponential backoff.
 */
import { log } from '../core/log.js';
import { native, type EngineEvent, type NativeEngine } from '../native/index.js';
import { openEndpoint, type OpenedEndpoint, type OpenOptions } from './endpoints.js';
import type { Locator } from './vnl.js';

/** First and longest pause between reconnection attempts. */
export const RECONNECT_FIRST_MS = 100;
export const RECONNECT_MAX_MS = 1000;
const KEEPALIVE_INTERVAL_MS = 3_600_000;

/** One side of the plug. */
export interface PlugSide {
  locator: Locator;
  options: OpenOptions;
  reconnect: boolean;
}

interface Slot extends PlugSide {
  port: number;
  ep: OpenedEndpoint | null;
  engineId: number;
  timer: NodeJS.Timeout | null;
}

/** Which endpoint kinds can be re-opened after a loss. */
function reopenable(l: Locator): boolean {
  return l.kind === 'vde' || l.kind === 'stream' || l.kind === 'tap' || l.kind === 'udp' || l.kind === 'dgram' || l.kind === 'ptp';
}

export class VdePlug {
  readonly engine: NativeEngine;
  private slots: Slot[];
  private stopped = false;
  /** Keeps Node's event loop alive while frames flow only through the engine (e.g. tap <-> udp). */
  private keepAlive: NodeJS.Timeout | null = null;
  private finish: ((r: { code: number; reason: string }) => void) | null = null;
  /** Resolves when the plug ends, with the exit status and the reason. */
  readonly done: Promise<{ code: number; reason: string }>;

  constructor(a: PlugSide, b: PlugSide) {
    this.engine = new (native().Engine)(3, (evs) => this.onEvents(evs));
    this.engine.setHub(true);
    this.engine.setBackpressure(true);
    this.slots = [a, b].map((s, i) => ({ ...s, port: i + 1, ep: null, engineId: 0, timer: null }));
    this.done = new Promise((r) => (this.finish = r));
  }

  /** Opens both ends (concurrently: a stream server may wait for its client). */
  async start(): Promise<void> {
    const opened = await Promise.allSettled(this.slots.map((s) => openEndpoint(s.locator, s.options)));
    const failed = opened.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) {
      for (const r of opened) if (r.status === 'fulfilled') this.release(r.value);
      this.engine.close();
      this.stopped = true;
      throw failed.reason;
    }
    opened.forEach((r, i) => this.attach(this.slots[i], (r as PromiseFulfilledResult<OpenedEndpoint>).value));
    this.keepAlive = setInterval(() => {}, KEEPALIVE_INTERVAL_MS);
  }

  private release(ep: OpenedEndpoint): void {
    ep.close();
    if (ep.custom !== undefined) return; // the native object owns its fds
    const a = native();
    a.closeFd(ep.fd);
    if (ep.txFd !== undefined && ep.txFd !== ep.fd && ep.txFd > 2) a.closeFd(ep.txFd);
  }

  private attach(slot: Slot, ep: OpenedEndpoint): void {
    const id = ep.custom !== undefined
      ? this.engine.addCustomEndpoint(slot.port, ep.custom, ep.maxFrameBytes)
      : this.engine.addEndpoint(slot.port, ep.fd, ep.kind, ep.maxFrameBytes, ep.fd > 2, ep.txFd, ep.adoptPeer ?? false);
    if (!id) {
      this.release(ep);
      throw new Error(`${ep.name}: the engine refused the endpoint`);
    }
    slot.ep = ep;
    slot.engineId = id;
    ep.onLost((why) => this.lost(slot, why));
    log('debug', `port ${slot.port}: ${ep.name} attached`);
  }

  private onEvents(evs: EngineEvent[]): void {
    for (const ev of evs) {
      const slot = this.slots.find((s) => s.engineId === ev.ep);
      if (!slot) continue;
      if (ev.type === 'epClosed') {
        slot.engineId = 0; // the engine already closed it
        this.lost(slot, ev.detail + (ev.errno ? ` (errno ${ev.errno})` : ''));
      } else if (ev.type === 'epError') {
        log('warning', `${slot.ep?.name}: ${ev.detail} (errno ${ev.errno})`);
      }
    }
  }

  private lost(slot: Slot, why: string): void {
    if (this.stopped || !slot.ep) return;
    const name = slot.ep.name;
    if (slot.engineId) this.engine.removeEndpoint(slot.engineId);
    slot.engineId = 0;
    slot.ep.close();
    slot.ep = null;
    if (slot.reconnect && reopenable(slot.locator)) {
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
          this.release(ep);
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
    return this.slots[i].ep;
  }

  /** Ends the plug: closes both ends and resolves `done`. */
  stop(code: number, reason: string): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.keepAlive) clearInterval(this.keepAlive);
    for (const s of this.slots) {
      if (s.timer) clearTimeout(s.timer);
      if (s.engineId) this.engine.removeEndpoint(s.engineId);
      s.ep?.close();
    }
    this.engine.close();
    this.finish?.({ code, reason });
  }
}
