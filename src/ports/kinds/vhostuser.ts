/**
 * The vhost-user kind: a unix socket on which QEMU (`-chardev socket,path=PATH -netdev
 * vhost-user,chardev=...` with shared guest memory) connects as the vhost-user front-end. Each
 * accepted connection becomes one native endpoint (native/src/kinds/vhost_user.cc) that speaks
 * the whole vhost-user protocol on the engine thread and moves frames through the guest's
 * virtqueues; JavaScript only accepts the connection and hands its fd over. The socket path is
 * claimed through core/sockpath (a live socket there is refused, never taken over), created
 * with its final mode, and removed at close only while it is still the socket we bound.
 */
import fs from 'node:fs';
import net from 'node:net';
import { claimSocketPath, listenUnix, OwnedPath } from '../../core/sockpath.js';
import { EpKind, MAX_STREAM_FRAME_BYTES, native, sys } from '../../native/index.js';
import { takeSocketFd } from '../../native/sockets.js';
import { simple, type OpenedEndpoint } from '../endpoint.js';

/** Pending connections the kernel keeps for a vhost-user socket. */
export const VHOST_USER_BACKLOG = 16;

/** Turns an accepted vhost-user connection into an engine endpoint (the native object owns the fd from here). */
export function vhostUserEndpoint(sock: net.Socket, name: string): OpenedEndpoint {
  const fd = takeSocketFd(sock);
  const a = native();
  const handle = sys(name, () => a.createVhostUser(fd));
  // fd stays open (in the native endpoint) while the endpoint lives: a unique id for port/print
  return simple(name, fd, EpKind.Custom, MAX_STREAM_FRAME_BYTES, { custom: handle });
}

/** Options of a vhost-user listening socket. */
export interface VhostUserListenOptions {
  /** Octal mode of the socket file (QEMU's user must be able to connect). */
  mode: number;
  /** Group of the socket file, or null. */
  gid: number | null;
}

/**
 * A listening vhost-user socket that hands every QEMU that connects to `onPeer`, which decides
 * (a port free?) before it turns the connection into an endpoint with `open()`; a connection
 * onPeer does not open, or whose onPeer throws, is closed at once.
 */
export class VhostUserListener {
  private server: net.Server | null = null;
  private owned: OwnedPath | null = null;

  constructor(
    readonly path: string,
    private onPeer: (open: () => OpenedEndpoint) => void,
    private onError: (e: Error) => void = () => {},
  ) {}

  /** Binds and listens; throws naming `what` and the path when that is impossible (path live, not a socket, no directory). */
  async listen(what: string, o: VhostUserListenOptions): Promise<void> {
    await claimSocketPath(this.path, what);
    const srv = net.createServer({ pauseOnConnect: true }, (sock) => {
      let opened = false;
      try {
        this.onPeer(() => {
          opened = true;
          return vhostUserEndpoint(sock, `vhost-user ${this.path}`);
        });
      } catch (e) {
        this.onError(e as Error);
      }
      if (!opened) sock.destroy();
    });
    await listenUnix(srv, this.path, o.mode, VHOST_USER_BACKLOG).catch((e: Error) => {
      throw new Error(`${what} ${this.path}: ${e.message}`);
    });
    this.owned = OwnedPath.record(this.path);
    if (o.gid !== null) fs.chownSync(this.path, -1, o.gid);
    srv.on('error', (e) => this.onError(e));
    this.server = srv;
  }

  /** Stops listening and removes the socket file if it is still ours (connected QEMUs keep their endpoints until closed). */
  close(): void {
    this.server?.close();
    this.server = null;
    this.owned?.release();
    this.owned = null;
  }
}
