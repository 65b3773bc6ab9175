/**
 * The control-socket server of the switch: accepts clients on DIR/ctl, reads one handshake
 * request (protocol/request.ts: a client whose first bytes cannot begin a valid request is
 * refused at once, not after the request timeout), checks it (port range, client socket, access
 * control), creates the per-endpoint datagram socket DIR/NNN.F with its final mode, hands its fd
 * to the engine and answers with the 110-byte address. Any refusal closes the stream at once
 * with a logged (rate-limited) reason; vde2 2.3.2 left such clients hanging. EOF on the control
 * stream removes the endpoint and its socket file.
 *
 * A vde-ts client that offers the handshake extension (protocol/handshake.ts) gets it accepted in
 * the reply when the data socket's path leaves room for it: its data socket then carries a
 * virtio-net header before every frame and 64 KiB segments both ways. Every other client
 * (Debian's libvdeplug, QEMU) gets exactly the reply vde2 sends.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ErrnoError } from '../core/errors.js';
import { log } from '../core/log.js';
import { listenUnix, OwnedPath, probeDgramPath } from '../core/sockpath.js';
import { EpKind, MAX_STREAM_FRAME_BYTES, MAX_VDE_FRAME_BYTES, native } from '../native/index.js';
import { encodeSockaddr, EXT_F_VNET, EXT_VERSION, replyHasRoomForExt, type HandshakeExt, type PortRequest } from '../protocol/handshake.js';
import { readRequest } from '../protocol/request.js';
import { clientSocketOwner, createDataSocket } from '../ports/datasock.js';
import type { SwitchState, PortInfo } from './state.js';

export { REQUEST_TIMEOUT_MS } from '../protocol/request.js';
export { DATA_SOCKET_BUFFER_BYTES } from '../ports/datasock.js';
/** Backlog of the listening socket, as vde2. */
export const CTL_BACKLOG = 15;
/** vde2's data socket names: port number (3 digits or more), a dot, the switch's fd number. */
export const DATA_SOCKET_NAME = /^\d{3,}\.\d+$/;

export interface CtlOptions {
  dir: string;
  mode: number;
  gid: number | null;
  /** Mode and group applied to port 0's data socket (the management port). */
  mgmtMode: number;
  mgmtGid: number | null;
}

/** Formats a data socket path as vde2 names it: DIR/%03d.%d. */
export function dataSocketPath(dir: string, port: number, fd: number): string {
  return path.join(dir, `${String(port).padStart(3, '0')}.${fd}`);
}

/**
 * Removes the data sockets a killed switch left in DIR: only files named as vde2 names them
 * (DIR/NNN.F) that are sockets nobody answers on. Returns how many went.
 */
export function reclaimStaleDataSockets(dir: string): number {
  let n = 0;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    if (!DATA_SOCKET_NAME.test(name)) continue;
    const p = path.join(dir, name);
    if (probeDgramPath(p) !== 'stale') continue;
    fs.rmSync(p, { force: true });
    n++;
  }
  return n;
}

/** The control server; `listen()` binds DIR/ctl, `close()` drops every client. */
export class CtlServer {
  private server: net.Server | null = null;
  private clients = new Set<net.Socket>();
  private owned: OwnedPath | null = null;
  readonly ctlPath: string;

  constructor(
    private state: SwitchState,
    private opts: CtlOptions,
  ) {
    this.ctlPath = path.join(opts.dir, 'ctl');
  }

  /** Binds and listens on DIR/ctl with its final mode (the caller checked the path is free). */
  async listen(): Promise<void> {
    const srv = net.createServer({ allowHalfOpen: false }, (s) => void this.onClient(s));
    srv.maxConnections = 100000;
    await listenUnix(srv, this.ctlPath, this.opts.mode, CTL_BACKLOG);
    this.owned = OwnedPath.record(this.ctlPath);
    srv.on('error', (e) => log('error', `control socket: ${e.message}`));
    if (this.opts.gid !== null) fs.chownSync(this.ctlPath, -1, this.opts.gid);
    this.server = srv;
  }

  /** Stops listening, closes every client and unlinks DIR/ctl (if it is still ours). */
  close(): void {
    this.server?.close();
    this.server = null;
    for (const c of this.clients) c.destroy();
    this.clients.clear();
    this.owned?.release();
    this.owned = null;
  }

  private async onClient(s: net.Socket): Promise<void> {
    this.clients.add(s);
    s.on('error', () => s.destroy());
    s.on('close', () => this.clients.delete(s));
    let req: PortRequest;
    try {
      req = await readRequest(s);
    } catch (e) {
      log('warning', `control: refused a client: ${(e as Error).message}`, 'ctl-refused');
      s.destroy();
      return;
    }
    try {
      this.accept(s, req);
    } catch (e) {
      log('warning', `control: refused a client: ${req.description || 'client'}: ${(e as Error).message}`, 'ctl-refused');
      s.destroy();
    }
  }

  private accept(s: net.Socket, req: PortRequest): void {
    if (s.destroyed) return;
    const uid = req.abstract ? null : clientSocketOwner(req.sockPath);
    let port: PortInfo;
    try {
      port = this.state.allocate(req.port, req.type === 1, uid);
    } catch (e) {
      if (e instanceof ErrnoError) throw new Error(`port ${req.type === 1 ? 0 : req.port || 'any'}: ${e.message}`);
      throw e;
    }
    // the data socket's name carries its fd number: make the socket, then bind it under that name
    const a = native();
    const isRoot = process.geteuid?.() === 0;
    const { mode, gid, mgmtMode, mgmtGid } = this.opts;
    const sockMode = port.num === 0 ? mgmtMode : isRoot && uid !== null ? mode & 0o700 : mode;
    const sockGid = port.num === 0 ? mgmtGid : gid;
    let fd = -1;
    let dataPath = '';
    let engineId = 0;
    let owned: OwnedPath | null = null;
    let ext: HandshakeExt | null = null;
    try {
      fd = createDataSocket(req.sockPath, (p) => (dataPath = dataSocketPath(this.opts.dir, port.num, p)), sockMode);
      owned = OwnedPath.record(dataPath);
      if (port.num !== 0 && isRoot && uid !== null) fs.chownSync(dataPath, uid, sockGid ?? -1);
      else if (sockGid !== null) fs.chownSync(dataPath, -1, sockGid);
      if (req.ext && (req.ext.flags & EXT_F_VNET) !== 0 && replyHasRoomForExt(dataPath))
        ext = { version: EXT_VERSION, flags: EXT_F_VNET, maxFrameBytes: MAX_STREAM_FRAME_BYTES };
      const max = ext ? MAX_STREAM_FRAME_BYTES : MAX_VDE_FRAME_BYTES;
      engineId = this.state.engine.addEndpoint(port.num, fd, EpKind.Dgram, max, true, undefined, false, ext !== null);
      if (!engineId) throw new Error('the engine refused the endpoint');
    } catch (e) {
      if (!engineId && fd >= 0) a.closeFd(fd);
      owned?.release();
      throw e;
    }
    const id = fd;
    const portNum = port.num;
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      this.state.engine.removeEndpoint(engineId);
      owned!.release();
      this.state.detach(portNum, id);
      s.destroy();
    };
    this.state.attach(port, { id, engineId, module: 'unix prog', description: req.description, uid, dataPath, offload: ext !== null, close });
    s.on('close', close);
    s.on('data', () => {
      /* the control stream carries nothing after the handshake; ignore stray bytes */
    });
    s.write(encodeSockaddr(dataPath, ext ?? undefined));
    log('debug', `port ${portNum}: new endpoint ${id} "${req.description}"${ext ? ' (64 KiB segments)' : ''}`);
  }
}
