/**
 * Client side of the VDE switch protocol, as libvdeplug does it (PROTOCOL.md §1.2, §1.6, §2.2):
 * bind a datagram socket in the switch directory (`.PPPPP-NNNNN`, with the /var/run, /var/tmp,
 * /tmp fallbacks), apply the group/mode rules, send the v3 request with a description, read the
 * 110-byte reply and connect to the switch's data socket. Works with any VDE switch: ours,
 * Debian's vde_switch, vdeplug4's switch:// nodes. With `offload` the request also offers the
 * vde-ts extension (protocol/handshake.ts): a vde-ts switch that accepts it exchanges frames with
 * a virtio-net header and 64 KiB segments on the data socket; any other switch never sees it.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { MAX_STREAM_FRAME_BYTES, native, sys } from '../../native/index.js';
import { lookupGroup } from '../../core/perms.js';
import { encodeRequestV3, EXT_F_VNET, EXT_VERSION, parseReply, REQ_NEW_CONTROL, REQ_NEW_PORT0, SOCKADDR_UN_BYTES } from '../../protocol/handshake.js';

/** How long the switch may take to answer the request. */
export const HANDSHAKE_TIMEOUT_MS = 5000;
/** Default client socket mode (libvdeplug's vde_open_args default). */
export const DEFAULT_CLIENT_MODE = 0o700;
const FALLBACK_DIRS = ['/var/run', '/var/tmp', '/tmp'];
const MAX_BIND_TRIES = 1000;

export interface VdeConnectOptions {
  /** Switch directory; '' = the default switch. */
  dir: string;
  /** Port to request (0 = any); use port0 for the management port. */
  port?: number;
  port0?: boolean;
  /** Group (name or gid) for the client socket. */
  group?: string;
  /** Mode of the client socket (default 0700). */
  mode?: number;
  /** Description prefix, e.g. "vdeplug:" (user and pid are appended). */
  description?: string;
  /** Offer the vde-ts extension: virtio-net header and 64 KiB segments on the data socket. */
  offload?: boolean;
}

export interface VdeConnection {
  /** Connected datagram socket carrying frames. */
  dataFd: number;
  /** The control stream; its EOF means the switch dropped us. */
  ctl: net.Socket;
  /** The switch's data socket path (DIR/NNN.F). */
  remotePath: string;
  /** The canonical switch directory. */
  dir: string;
  /** The switch accepted the extension: frames on dataFd carry a virtio-net header. */
  vnet: boolean;
}

/** The default switch directory: ~/.vde2/default.switch, else /var/run/vde.ctl, else /tmp/vde.ctl. */
export function defaultSwitchDir(): string {
  const home = path.join(os.homedir(), '.vde2', 'default.switch');
  if (fs.existsSync(home)) return home;
  for (const d of ['/var/run/vde.ctl', '/tmp/vde.ctl']) if (fs.existsSync(path.join(d, 'ctl'))) return d;
  return process.geteuid?.() === 0 ? '/var/run/vde.ctl' : '/tmp/vde.ctl';
}

/** The description libvdeplug sends: "<descr> user=<name> pid=<pid>[ SSH=<ip>]". */
export function clientDescription(prefix: string): string {
  let user: string;
  try {
    user = os.userInfo().username;
  } catch {
    user = String(process.geteuid?.() ?? '?');
  }
  const ssh = process.env.SSH_CLIENT?.split(' ')[0];
  return `${prefix} user=${user} pid=${process.pid}${ssh ? ` SSH=${ssh}` : ''}`.slice(0, 127);
}

function connectCtl(ctlPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ path: ctlPath });
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e) => reject(e));
  });
}

function bindClientSocket(dir: string): { fd: number; localPath: string } {
  const a = native();
  const fd = sys('client socket', () => a.unixDgramSocket(1 << 20));
  const pid = String(process.pid).padStart(5, '0');
  const dirs = [dir, ...FALLBACK_DIRS];
  let lastErr: unknown;
  for (const d of dirs) {
    for (let n = 0; n < MAX_BIND_TRIES; n++) {
      const p = d === dir ? path.join(d, `.${pid}-${String(n).padStart(5, '0')}`) : path.join(d, `vde.${pid}-${String(n).padStart(5, '0')}`);
      try {
        a.unixBind(fd, p);
        return { fd, localPath: p };
      } catch (e) {
        lastErr = e;
        if ((e as { errno?: number }).errno === 98) continue; // EADDRINUSE: next counter
        break; // other failure: next directory
      }
    }
  }
  a.closeFd(fd);
  throw new Error(`cannot bind a client socket in ${dir} or ${FALLBACK_DIRS.join(', ')}: ${(lastErr as Error)?.message}`);
}

/** Connects to a VDE switch; rejects with a message naming the switch and the reason. */
export async function vdeConnect(o: VdeConnectOptions): Promise<VdeConnection> {
  const dirGiven = o.dir || defaultSwitchDir();
  let dir: string;
  try {
    dir = fs.realpathSync(dirGiven);
  } catch {
    throw new Error(`switch ${dirGiven}: no such directory (is the switch running?)`);
  }
  const ctlPath = path.join(dir, 'ctl');
  let ctl: net.Socket;
  try {
    ctl = await connectCtl(ctlPath);
  } catch (e) {
    throw new Error(`switch ${dir}: cannot connect to ${ctlPath}: ${(e as Error).message}`);
  }
  let fd = -1;
  let localPath = '';
  try {
    ({ fd, localPath } = bindClientSocket(dir));
    let mode = o.mode ?? DEFAULT_CLIENT_MODE;
    if (o.group !== undefined) {
      const gid = lookupGroup(o.group);
      if (gid === undefined) throw new Error(`group "${o.group}" does not exist`);
      fs.chownSync(localPath, -1, gid);
    } else if ((mode & 0o77) === 0) {
      const st = fs.statSync(ctlPath);
      if (st.uid !== 0 && st.uid !== process.geteuid?.()) {
        try {
          fs.chownSync(localPath, -1, st.gid);
          mode |= 0o70;
        } catch {
          mode |= 0o77;
        }
      }
    }
    fs.chmodSync(localPath, mode);
    const req = encodeRequestV3({
      type: o.port0 ? REQ_NEW_PORT0 : REQ_NEW_CONTROL,
      port: o.port0 ? 0 : (o.port ?? 0),
      sockPath: localPath,
      description: clientDescription(o.description ?? 'vdeplug:'),
      ...(o.offload ? { ext: { version: EXT_VERSION, flags: EXT_F_VNET, maxFrameBytes: MAX_STREAM_FRAME_BYTES } } : {}),
    });
    const reply = await new Promise<Buffer>((resolve, reject) => {
      let buf = Buffer.alloc(0);
      const t = setTimeout(() => done(new Error(`no answer within ${HANDSHAKE_TIMEOUT_MS} ms`)), HANDSHAKE_TIMEOUT_MS);
      const done = (err: Error | null, b?: Buffer): void => {
        clearTimeout(t);
        ctl.removeAllListeners('data');
        ctl.removeAllListeners('close');
        ctl.removeAllListeners('error');
        if (err) reject(err);
        else resolve(b!);
      };
      ctl.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= SOCKADDR_UN_BYTES) done(null, buf);
      });
      ctl.on('error', (e) => done(e));
      ctl.on('close', () => done(new Error(`the switch refused the connection${o.port ? ` to port ${o.port}` : ''} (see the switch's log)`)));
      ctl.write(req);
    });
    const { path: remotePath, ext } = parseReply(reply);
    const vnet = o.offload === true && ext !== null && (ext.flags & EXT_F_VNET) !== 0;
    sys(`connect to ${remotePath}`, () => native().unixConnect(fd, remotePath));
    try {
      fs.chmodSync(remotePath, mode);
    } catch {
      /* best effort, as libvdeplug */
    }
    // like vdeplug4: the switch is connected to our socket already, the name is not needed
    fs.rmSync(localPath, { force: true });
    return { dataFd: fd, ctl, remotePath, dir, vnet };
  } catch (e) {
    ctl.destroy();
    if (fd >= 0) native().closeFd(fd);
    if (localPath) fs.rmSync(localPath, { force: true });
    throw new Error(`switch ${dir}: ${(e as Error).message}`);
  }
}
