/**
 * The one attach lifecycle of an opened endpoint, used by vde_plug's wire and by the switch's
 * QEMU ports (and every tool to come): add it to an engine port (a native custom handle or fds
 * with their framing), watch for its far side going away, and close it: remove it from the
 * engine (unless the engine already dropped it) and release what the kind holds. An endpoint the
 * engine refuses is released at once and reported with its name.
 */
import { native, type NativeEngine } from '../native/index.js';
import type { OpenedEndpoint } from './endpoint.js';

/** Releases an endpoint that the engine does not own (never added, or refused). */
export function releaseEndpoint(ep: OpenedEndpoint): void {
  ep.close();
  if (ep.custom !== undefined) return; // the native object owns its fds
  const a = native();
  if (ep.fd > 2) a.closeFd(ep.fd);
  if (ep.txFd !== undefined && ep.txFd !== ep.fd && ep.txFd > 2) a.closeFd(ep.txFd);
}

/** An endpoint attached to an engine port. */
export class Attachment {
  private closed = false;

  private constructor(
    readonly engine: NativeEngine,
    readonly port: number,
    readonly ep: OpenedEndpoint,
    /** The engine's id of the endpoint (its events name it). */
    readonly engineId: number,
  ) {}

  /**
   * Adds `ep` to `port` of `engine`; `onLost` runs once when the kind notices that the far side
   * went away outside the engine's view. Throws (after releasing ep) if the engine refuses it.
   */
  static attach(engine: NativeEngine, port: number, ep: OpenedEndpoint, onLost?: (why: string) => void): Attachment {
    const id =
      ep.custom !== undefined
        ? engine.addCustomEndpoint(port, ep.custom, ep.maxFrameBytes)
        : engine.addEndpoint(port, ep.fd, ep.kind, ep.maxFrameBytes, ep.fd > 2, ep.txFd, ep.adoptPeer ?? false, ep.offload ?? false, ep.recordWrites ?? false, ep.wholeSegments ?? false);
    if (!id) {
      releaseEndpoint(ep);
      throw new Error(`${ep.name}: the engine refused the endpoint`);
    }
    const at = new Attachment(engine, port, ep, id);
    if (onLost) ep.onLost((why) => !at.closed && onLost(why));
    return at;
  }

  /** True once close() ran. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Removes the endpoint from the engine (skipped when `engineDropped`: the engine closed it itself) and releases the kind's resources. */
  close(engineDropped = false): void {
    if (this.closed) return;
    this.closed = true;
    if (!engineDropped) this.engine.removeEndpoint(this.engineId);
    this.ep.close();
  }
}
