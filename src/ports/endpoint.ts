/**
 * What an opened endpoint is, for every endpoint kind: the file descriptors the engine reads and
 * writes (or a native custom endpoint handle), the framing the engine uses on them, a name for
 * messages, how the kind notices that its far side went away outside the engine's view (a
 * switch's control stream closing, a child exiting), and how it cleans up what is not the
 * engine's (sockets it bound, child processes, files). Plus the small helpers several kinds
 * share: name resolution, stream connect/accept.
 */
import dns from 'node:dns/promises';
import net from 'node:net';
import { EpKind, MAX_VDE_FRAME_BYTES } from '../native/index.js';

/** Largest frame on vdeplug4-compatible stream framing (VDE_ETHBUFSIZE). */
export const MAX_VDEPLUG_FRAME_BYTES = MAX_VDE_FRAME_BYTES;
/** How long a stream client waits for its server. */
export const STREAM_CONNECT_TIMEOUT_MS = 10_000;

/** An endpoint ready to be handed to the engine. */
export interface OpenedEndpoint {
  fd: number;
  txFd?: number;
  kind: EpKind;
  maxFrameBytes: number;
  adoptPeer?: boolean;
  /** Datagram: frames carry a virtio-net header (agreed at the handshake); Stream2: negotiate 64 KiB segments in-band (see addEndpoint). */
  offload?: boolean;
  /** Streams: one record per write, a pipe in packet mode (the reader is Debian's wirefilter). */
  recordWrites?: boolean;
  /** A plain endpoint that takes 64 KiB segments whole, checksums completed (a NAT: slirp, passt); see addEndpoint. */
  wholeSegments?: boolean;
  /** Human-readable name for messages. */
  name: string;
  /** A native custom endpoint handle (EpKind.Custom): handed to engine.addCustomEndpoint instead of fd. */
  custom?: unknown;
  /** Called once if the far side goes away outside the engine's view (e.g. switch control stream EOF). */
  onLost(cb: (why: string) => void): void;
  /** Releases everything that is not the engine's (the engine closes fd/txFd). */
  close(): void;
  /** Turns the engine's reason for losing the endpoint ("end of stream") into the kind's own, when it knows better (passt: how the process ended). */
  explainLoss?(why: string): string;
  /** Kind-specific statistics (unicast vxlan: peers and replication counters; crypt: authentication counters). */
  info?(): object;
  /** Unicast vxlan: replaces the peer list of the running endpoint. */
  setPeers?(peers: Array<{ host: string; port?: number }>): Promise<void>;
}

/** Options that apply to opening any kind (from the tool's command line). */
export interface OpenOptions {
  /** Carry 64 KiB segments with a virtio-net header where the other end is vde-ts too, and open taps with offloads (default true; vde_plug --offload off). */
  offload?: boolean;
  description?: string;
  group?: string;
  mode?: number;
  port?: number;
}

/** An endpoint with fixed fds and nothing to watch. */
export function simple(name: string, fd: number, kind: EpKind, maxFrameBytes: number, extra: Partial<OpenedEndpoint> = {}): OpenedEndpoint {
  return { fd, kind, maxFrameBytes, name, onLost: () => {}, close: () => {}, ...extra };
}

/** Resolves a host name to a numeric address (literal addresses pass through). */
export async function numericHost(host: string): Promise<{ address: string; family: 4 | 6 }> {
  if (net.isIP(host)) return { address: host, family: net.isIP(host) as 4 | 6 };
  try {
    const r = await dns.lookup(host);
    return { address: r.address, family: r.family as 4 | 6 };
  } catch (e) {
    throw new Error(`cannot resolve host "${host}": ${(e as Error).message}`);
  }
}

/** Connects a stream socket, failing after STREAM_CONNECT_TIMEOUT_MS with a message naming `what`. */
export function connectStream(opts: net.NetConnectOpts, what: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(opts);
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error(`${what}: no connection within ${STREAM_CONNECT_TIMEOUT_MS} ms`));
    }, STREAM_CONNECT_TIMEOUT_MS);
    s.once('connect', () => {
      clearTimeout(t);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(t);
      reject(new Error(`${what}: ${e.message}`));
    });
  });
}
