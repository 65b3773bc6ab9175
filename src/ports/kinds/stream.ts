/**
 * Stream kinds: stream://unix:PATH / stream://tcp:HOST:PORT, client or `[server]`, with QEMU's
 * 4-byte length framing (default) or VDE's 2-byte framing. A server accepts one peer for
 * vde_plug (openStream) or any number of peers for the switch's --qemu-listen (StreamListener).
 * The accepted or connected socket's fd goes to the engine; Node forgets its copy. A unix
 * server path is claimed through core/sockpath (a live socket there is refused, never taken
 * over) and removed only if it is still the socket we bound.
 */
import net from 'node:net';
import { claimSocketPath, OwnedPath } from '../../core/sockpath.js';
import { EpKind, MAX_STREAM_FRAME_BYTES, native } from '../../native/index.js';
import { takeSocketFd } from '../../native/sockets.js';
import { connectStream, MAX_VDEPLUG_FRAME_BYTES, simple, type OpenedEndpoint, type OpenOptions } from '../endpoint.js';
import type { StreamLocator } from '../vnl.js';

/** A human-readable name of a stream locator's address. */
export function streamName(loc: StreamLocator): string {
  return loc.transport === 'unix' ? `stream unix ${loc.path}` : `stream tcp ${loc.host ?? ''}:${loc.port}`;
}

/**
 * Turns a connected Node socket into an engine endpoint with the locator's framing. VDE's 2-byte
 * framing (a cable) offers the peer 64 KiB segments in-band unless offload is false; QEMU's
 * 4-byte framing stays exactly QEMU's.
 */
export function streamEndpoint(sock: net.Socket, loc: Pick<StreamLocator, 'framing' | 'transport'>, name: string, offload = false): OpenedEndpoint {
  if (loc.transport === 'tcp') sock.setNoDelay(true);
  const kind = loc.framing === 2 ? EpKind.Stream2 : EpKind.Stream4;
  const max = loc.framing === 2 ? MAX_VDEPLUG_FRAME_BYTES : MAX_STREAM_FRAME_BYTES;
  return simple(name, takeSocketFd(sock), kind, max, { offload: offload && loc.framing === 2 });
}

/** A listening stream socket that hands every accepted peer to `onPeer` as an endpoint. */
export class StreamListener {
  private server: net.Server | null = null;
  private owned: OwnedPath | null = null;

  constructor(
    readonly loc: StreamLocator,
    private onPeer: (ep: OpenedEndpoint, peer: string) => void,
    private onError: (e: Error) => void = () => {},
  ) {}

  /** Binds and listens; throws naming the address when that is impossible (path live, port in use). */
  async listen(what = streamName(this.loc)): Promise<void> {
    const loc = this.loc;
    if (loc.transport === 'unix') await claimSocketPath(loc.path!, what);
    const srv = net.createServer({ pauseOnConnect: true }, (sock) => {
      const peer = loc.transport === 'unix' ? loc.path! : `${sock.remoteAddress}:${sock.remotePort}`;
      try {
        this.onPeer(streamEndpoint(sock, loc, `${streamName(loc)} peer ${peer}`), peer);
      } catch (e) {
        sock.destroy();
        this.onError(e as Error);
      }
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (e) => reject(new Error(`${what}: ${e.message}`)));
      srv.listen(loc.transport === 'unix' ? { path: loc.path } : { host: loc.host || undefined, port: loc.port }, () => resolve());
    });
    srv.on('error', (e) => this.onError(e));
    if (loc.transport === 'unix') this.owned = OwnedPath.record(loc.path!);
    this.server = srv;
  }

  /** Stops listening and removes the socket file if it is still ours. */
  close(): void {
    this.server?.close();
    this.server = null;
    this.owned?.release();
    this.owned = null;
  }
}

/** vde_plug's stream kind: connect, or serve exactly one peer; a 2-byte framed cable offers 64 KiB segments unless o.offload is false. */
export async function openStream(loc: StreamLocator, o: OpenOptions = {}): Promise<OpenedEndpoint> {
  const what = streamName(loc);
  const offload = o.offload !== false && loc.framing === 2;
  if (loc.role === 'client') {
    const s = await connectStream(loc.transport === 'unix' ? { path: loc.path! } : { host: loc.host ?? '127.0.0.1', port: loc.port! }, what);
    return streamEndpoint(s, loc, what, offload);
  }
  return new Promise<OpenedEndpoint>((resolve, reject) => {
    let done = false;
    const l: StreamListener = new StreamListener(
      loc,
      (ep) => {
        if (done) {
          native().closeFd(ep.fd); // a second peer that raced the first: not ours to serve
          return;
        }
        done = true;
        l.close();
        resolve({ ...ep, name: what, offload });
      },
      (e) => {
        if (done) return;
        done = true;
        l.close();
        reject(e);
      },
    );
    l.listen(what).catch((e) => {
      done = true;
      reject(e);
    });
  });
}
