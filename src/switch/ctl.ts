/**
 * The control-socket server of the switch: accepts clients on DIR/ctl, reads one handshake
 * request, checks it (magic, version, type, port range, client socket, access control), creates
 * the per-endpoint datagram socket DIR/NNN.F, hands its fd to the engine and answers with the
 * 110-byte address. Any refusal closes the stream at once with a logged reason (vde2 2.3.2 left
 * such clients hanging). EOF on the control stream removes the endpoint and its socket file.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { log } from '../core/log.js';
import { EpKind, MAX_VDE_FRAME_BYTES, native, sys } from '../native/index.js';
import { encodeSockaddr, MAX_REQUEST_BYTES, minimumRequestBytes, parseRequest, type PortRequest } from '../protocol/handshake.js';
import { type SwitchState, SwitchError, type PortInfo } from './state.js';

/** How long a client may take to send its whole request. */
export const REQUEST_TIMEOUT_MS = 2000;
/** Backlog of the listening socket, as vde2. */
export const CTL_BACKLOG = 15;
/** Socket buffer size of data sockets (bytes). */
export const DATA_SOCKET_BUFFER_BYTES = 1 << 20;

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

/** The control server; `listen()` binds DIR/ctl, `close()` drops every client. */
export class CtlServer {
  private server: net.Server | null = null;
  private clients = new Set<net.Socket>();
  readonly ctlPath: string;

  constructor(
    private state: SwitchState,
    private opts: CtlOptions,
  ) {
    this.ctlPath = path.join(opts.dir, 'ctl');
  }

  /** Binds and listens on DIR/ctl (the caller checked for a live switch first). */
  async listen(): Promise<void> {
    const srv = net.createServer({ allowHalfOpen: false }, (s) => this.onClient(s));
    srv.maxConnections = 100000;
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ path: this.ctlPath, backlog: CTL_BACKLOG }, () => {
        srv.off('error', reject);
        resolve();
      });
    });
    srv.on('error', (e) => log('error', `control socket: ${e.message}`));
    fs.chmodSync(this.ctlPath, this.opts.mode);
    if (this.opts.gid !== null) fs.chownSync(this.ctlPath, -1, this.opts.gid);
    this.server = srv;
  }

  /** Stops listening, closes every client and unlinks DIR/ctl. */
  close(): void {
    this.server?.close();
    this.server = null;
    for (const c of this.clients) c.destroy();
    this.clients.clear();
    try {
      fs.unlinkSync(this.ctlPath);
    } catch {
      /* already gone */
    }
  }

  private onClient(s: net.Socket): void {
    this.clients.add(s);
    let buf = Buffer.alloc(0);
    let done = false;
    let timer: NodeJS.Timeout | null = null;
    const refuse = (reason: string): void => {
      done = true;
      if (timer) clearTimeout(timer);
      log('warning', `control: refused a client: ${reason}`);
      s.destroy();
    };
    const tryParse = (): void => {
      if (done) return;
      if (buf.length > MAX_REQUEST_BYTES) return refuse(`request of ${buf.length} bytes exceeds ${MAX_REQUEST_BYTES}`);
      if (buf.length < minimumRequestBytes(buf)) {
        timer ??= setTimeout(() => refuse(`truncated request (${buf.length} bytes in ${REQUEST_TIMEOUT_MS} ms)`), REQUEST_TIMEOUT_MS);
        return;
      }
      const r = parseRequest(buf);
      if (!r.ok) return refuse(r.reason);
      done = true;
      if (timer) clearTimeout(timer);
      s.removeListener('data', onData);
      try {
        this.accept(s, r.req);
      } catch (e) {
        const err = e as Error;
        refuse(`${r.req.description || 'client'}: ${err.message}`);
      }
    };
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      tryParse();
    };
    s.on('data', onData);
    s.on('error', () => s.destroy());
    s.on('close', () => {
      this.clients.delete(s);
      if (timer) clearTimeout(timer);
    });
  }

  private clientUid(req: PortRequest): number | null {
    if (req.abstract) return null;
    let st: fs.Stats;
    try {
      st = fs.statSync(req.sockPath);
    } catch (e) {
      throw new Error(`client socket ${req.sockPath}: ${(e as Error).message}`);
    }
    if (!st.isSocket()) throw new Error(`client socket ${req.sockPath} is not a socket`);
    try {
      fs.accessSync(req.sockPath, fs.constants.R_OK | fs.constants.W_OK);
    } catch {
      throw new Error(`client socket ${req.sockPath}: permission denied`);
    }
    return st.uid;
  }

  private accept(s: net.Socket, req: PortRequest): void {
    const a = native();
    const uid = this.clientUid(req);
    let port: PortInfo;
    try {
      port = this.state.allocate(req.port, req.type === 1, uid);
    } catch (e) {
      if (e instanceof SwitchError) throw new Error(`port ${req.type === 1 ? 0 : req.port || 'any'}: ${e.message}`);
      throw e;
    }
    const fd = sys('data socket', () => a.unixDgramSocket(DATA_SOCKET_BUFFER_BYTES));
    let dataPath = '';
    let engineId = 0;
    try {
      sys(`connect to client socket ${req.sockPath}`, () => a.unixConnect(fd, req.sockPath));
      dataPath = dataSocketPath(this.opts.dir, port.num, fd);
      fs.rmSync(dataPath, { force: true });
      sys(`bind ${dataPath}`, () => a.unixBind(fd, dataPath));
      this.setDataPerms(dataPath, port.num, uid);
      engineId = this.state.engine.addEndpoint(port.num, fd, EpKind.Dgram, MAX_VDE_FRAME_BYTES, true);
      if (!engineId) throw new Error('the engine refused the endpoint');
    } catch (e) {
      if (!engineId) a.closeFd(fd);
      if (dataPath) fs.rmSync(dataPath, { force: true });
      throw e;
    }
    const id = fd;
    const portNum = port.num;
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      this.state.engine.removeEndpoint(engineId);
      fs.rmSync(dataPath, { force: true });
      this.state.detach(portNum, id);
      s.destroy();
    };
    this.state.attach(port, { id, engineId, module: 'unix prog', description: req.description, uid, dataPath, close });
    s.on('close', close);
    s.on('data', () => {
      /* the control stream carries nothing after the handshake; ignore stray bytes */
    });
    s.write(encodeSockaddr(dataPath));
    log('debug', `port ${portNum}: new endpoint ${id} "${req.description}"`);
  }

  private setDataPerms(p: string, port: number, uid: number | null): void {
    const { mode, gid, mgmtMode, mgmtGid } = this.opts;
    const isRoot = process.geteuid?.() === 0;
    if (port === 0) {
      fs.chmodSync(p, mgmtMode);
      if (mgmtGid !== null) fs.chownSync(p, -1, mgmtGid);
      return;
    }
    if (isRoot && uid !== null) {
      fs.chmodSync(p, mode & 0o700);
      fs.chownSync(p, uid, gid ?? -1);
    } else {
      fs.chmodSync(p, mode);
      if (gid !== null) fs.chownSync(p, -1, gid);
    }
  }
}
