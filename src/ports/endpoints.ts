/**
 * Opens the endpoint kinds of vde_plug (and of cables and the switch's listeners) as engine
 * endpoints: each kind turns a parsed locator into file descriptors plus the framing the engine
 * uses on them (datagram, 2-byte or 4-byte length stream, tap), and knows how to notice that its
 * far side went away (a switch's control stream closing, a child exiting, a stream ending) and
 * how to clean up (sockets, files, child processes). Frames never pass through JavaScript.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dns from 'node:dns/promises';
import fs from 'node:fs';
import net from 'node:net';
import { EpKind, MAX_STREAM_FRAME_BYTES, MAX_VDE_FRAME_BYTES, native, sys } from '../native/index.js';
import { takeSocketFd } from '../native/sockets.js';
import { vdeConnect } from './kinds/vdeclient.js';
import type { Locator } from './vnl.js';
import { openVxlan, openVxvde } from './kinds/vxlan.js';
import { openSlirp } from './kinds/slirp.js';

/** Largest frame on vdeplug4-compatible stream framing (VDE_ETHBUFSIZE). */
export const MAX_VDEPLUG_FRAME_BYTES = MAX_VDE_FRAME_BYTES;
/** How long a stream client waits for its server. */
export const STREAM_CONNECT_TIMEOUT_MS = 10_000;
const O_WRONLY = 1;

/** An endpoint ready to be handed to the engine. */
export interface OpenedEndpoint {
  fd: number;
  txFd?: number;
  kind: EpKind;
  maxFrameBytes: number;
  adoptPeer?: boolean;
  /** Human-readable name for messages. */
  name: string;
  /** A native custom endpoint handle (EpKind.Custom): handed to engine.addCustomEndpoint instead of fd. */
  custom?: unknown;
  /** Called once if the far side goes away outside the engine's view (e.g. switch control stream EOF). */
  onLost(cb: (why: string) => void): void;
  /** Releases everything that is not the engine's (the engine closes fd/txFd). */
  close(): void;
}

export interface OpenOptions {
  description?: string;
  group?: string;
  mode?: number;
  port?: number;
}

function simple(name: string, fd: number, kind: EpKind, maxFrameBytes: number, extra: Partial<OpenedEndpoint> = {}): OpenedEndpoint {
  return { fd, kind, maxFrameBytes, name, onLost: () => {}, close: () => {}, ...extra };
}

async function numericHost(host: string): Promise<{ address: string; family: 4 | 6 }> {
  if (net.isIP(host)) return { address: host, family: net.isIP(host) as 4 | 6 };
  try {
    const r = await dns.lookup(host);
    return { address: r.address, family: r.family as 4 | 6 };
  } catch (e) {
    throw new Error(`cannot resolve host "${host}": ${(e as Error).message}`);
  }
}


function connectStream(opts: net.NetConnectOpts, what: string): Promise<net.Socket> {
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

function acceptOne(opts: net.ListenOptions, what: string): Promise<{ sock: net.Socket; server: net.Server }> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ pauseOnConnect: true });
    server.once('error', (e) => reject(new Error(`${what}: ${e.message}`)));
    server.once('connection', (sock) => resolve({ sock, server }));
    server.listen(opts);
  });
}

/** Opens one endpoint; throws an Error whose message names the locator and the reason. */
export async function openEndpoint(loc: Locator, o: OpenOptions = {}): Promise<OpenedEndpoint> {
  const a = native();
  switch (loc.kind) {
    case 'vde': {
      const c = await vdeConnect({ dir: loc.path, port: loc.port ?? o.port, port0: loc.port === 0, group: loc.group ?? o.group, mode: loc.mode ?? o.mode, description: o.description });
      let lostCb: ((why: string) => void) | null = null;
      let closed = false;
      c.ctl.on('data', () => {});
      c.ctl.on('error', () => {});
      c.ctl.on('close', () => {
        if (!closed) lostCb?.(`switch ${c.dir} closed the connection`);
      });
      return {
        fd: c.dataFd,
        kind: EpKind.Dgram,
        maxFrameBytes: MAX_VDE_FRAME_BYTES,
        name: `vde://${c.dir}`,
        onLost: (cb) => (lostCb = cb),
        close: () => {
          closed = true;
          c.ctl.destroy();
        },
      };
    }
    case 'stdio':
      return simple('stdin/stdout', 0, EpKind.Stream2, MAX_VDEPLUG_FRAME_BYTES, { txFd: 1 });
    case 'null': {
      // never readable (a pipe whose write end we keep), writes go to /dev/null
      const [r, w] = a.pipe();
      const sink = a.openFile('/dev/null', O_WRONLY);
      return simple('null://', r, EpKind.Tap, MAX_STREAM_FRAME_BYTES, { txFd: sink, close: () => a.closeFd(w) });
    }
    case 'tap': {
      // tap://IF/vnethdr: virtio-net header and TSO/checksum offloads (the engine segments the
      // kernel's 64 KiB frames in software for the other side); default: plain frames
      const vnet = loc.vnetHdr ?? false;
      const t = sys(`tap://${loc.ifname}`, () => a.openTap(loc.ifname, vnet));
      if (vnet) {
        try {
          a.setTapOffload(t.fd);
        } catch (e) {
          a.closeFd(t.fd);
          throw new Error(`tap://${loc.ifname}/vnethdr: ${(e as Error).message}`);
        }
      }
      return simple(`tap://${t.name}${vnet ? '/vnethdr' : ''}`, t.fd, EpKind.Tap, MAX_STREAM_FRAME_BYTES);
    }
    case 'cmd': {
      const [toChildR, toChildW] = a.pipe();
      const [fromChildR, fromChildW] = a.pipe();
      let child: ChildProcess;
      try {
        child = spawn(loc.argv[0], loc.argv.slice(1), { stdio: [toChildR, fromChildW, 'inherit'] });
      } finally {
        a.closeFd(toChildR);
        a.closeFd(fromChildW);
      }
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', () => resolve());
        child.once('error', (e) => reject(new Error(`cmd://${loc.argv.join(' ')}: ${e.message}`)));
      }).catch((e) => {
        a.closeFd(toChildW);
        a.closeFd(fromChildR);
        throw e;
      });
      return simple(`cmd://${loc.argv.join(' ')}`, fromChildR, EpKind.Stream2, MAX_VDEPLUG_FRAME_BYTES, {
        txFd: toChildW,
        close: () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        },
      });
    }
    case 'udp': {
      const dst = await numericHost(loc.dstHost);
      const fd = a.udpSocket(dst.family);
      try {
        sys(`udp bind`, () => a.ipBind(fd, loc.srcAddr ?? (dst.family === 6 ? '::' : '0.0.0.0'), loc.srcPort));
        sys(`udp connect`, () => a.ipConnect(fd, dst.address, loc.dstPort));
      } catch (e) {
        a.closeFd(fd);
        throw e;
      }
      return simple(`udp://${loc.srcPort}->${loc.dstHost}:${loc.dstPort}`, fd, EpKind.Dgram, MAX_VDE_FRAME_BYTES);
    }
    case 'ptp': {
      // vdeplug4 4.0.1 point-to-point: raw frames over unix datagrams between PATH and PATH+
      const fd = a.unixDgramSocket(1 << 20);
      const peer = `${loc.path}+`;
      const tryBind = (p: string): boolean => {
        try {
          a.unixBind(fd, p);
          return true;
        } catch (e) {
          if ((e as { errno?: number }).errno !== 98) throw e;
          return false;
        }
      };
      const stale = (p: string): boolean => {
        const probe = a.unixDgramSocket();
        try {
          a.unixConnect(probe, p);
          return false;
        } catch {
          return true;
        } finally {
          a.closeFd(probe);
        }
      };
      try {
        if (fs.existsSync(loc.path) && stale(loc.path)) fs.rmSync(loc.path, { force: true });
        if (tryBind(loc.path)) {
          // female: whoever sends first (the male, from PATH+) becomes the peer
          return simple(`ptp://${loc.path}`, fd, EpKind.Dgram, MAX_VDE_FRAME_BYTES, { adoptPeer: true, close: () => fs.rmSync(loc.path, { force: true }) });
        }
        if (fs.existsSync(peer) && stale(peer)) fs.rmSync(peer, { force: true });
        if (!tryBind(peer)) throw new Error(`ptp://${loc.path}: both ${loc.path} and ${peer} are in use`);
        sys(`ptp://${loc.path}`, () => a.unixConnect(fd, loc.path));
        return simple(`ptp://${loc.path}`, fd, EpKind.Dgram, MAX_VDE_FRAME_BYTES, { close: () => fs.rmSync(peer, { force: true }) });
      } catch (e) {
        a.closeFd(fd);
        throw e;
      }
    }
    case 'stream': {
      const kind = loc.framing === 2 ? EpKind.Stream2 : EpKind.Stream4;
      const max = loc.framing === 2 ? MAX_VDEPLUG_FRAME_BYTES : MAX_STREAM_FRAME_BYTES;
      const what = loc.transport === 'unix' ? `stream unix ${loc.path}` : `stream tcp ${loc.host ?? ''}:${loc.port}`;
      if (loc.role === 'client') {
        const s = await connectStream(loc.transport === 'unix' ? { path: loc.path! } : { host: loc.host ?? '127.0.0.1', port: loc.port! }, what);
        if (loc.transport === 'tcp') s.setNoDelay(true);
        return simple(what, takeSocketFd(s), kind, max);
      }
      if (loc.transport === 'unix') fs.rmSync(loc.path!, { force: true });
      const { sock, server } = await acceptOne(loc.transport === 'unix' ? { path: loc.path! } : { host: loc.host || undefined, port: loc.port! }, what);
      if (loc.transport === 'tcp') sock.setNoDelay(true);
      const fd = takeSocketFd(sock);
      server.close();
      if (loc.transport === 'unix') fs.rmSync(loc.path!, { force: true });
      return simple(what, fd, kind, max);
    }
    case 'dgram': {
      if (loc.transport === 'unix') {
        const fd = a.unixDgramSocket(1 << 20);
        try {
          if (loc.localPath) {
            fs.rmSync(loc.localPath, { force: true });
            sys(`dgram bind ${loc.localPath}`, () => a.unixBind(fd, loc.localPath!));
          }
          let connected = false;
          if (loc.remotePath) {
            try {
              a.unixConnect(fd, loc.remotePath);
              connected = true;
            } catch {
              connected = false; // the peer is not there yet: adopt it when it sends
            }
          }
          return simple(`dgram unix ${loc.localPath ?? ''}->${loc.remotePath ?? ''}`, fd, EpKind.Dgram, MAX_STREAM_FRAME_BYTES, {
            adoptPeer: !connected,
            close: () => {
              if (loc.localPath) fs.rmSync(loc.localPath, { force: true });
            },
          });
        } catch (e) {
          a.closeFd(fd);
          throw e;
        }
      }
      const remote = loc.remoteHost ? await numericHost(loc.remoteHost) : null;
      const family = remote?.family ?? (loc.localHost && net.isIP(loc.localHost) === 6 ? 6 : 4);
      const fd = a.udpSocket(family);
      try {
        sys('udp bind', () => a.ipBind(fd, loc.localHost ?? (family === 6 ? '::' : '0.0.0.0'), loc.localPort ?? 0));
        if (remote) sys('udp connect', () => a.ipConnect(fd, remote.address, loc.remotePort!));
      } catch (e) {
        a.closeFd(fd);
        throw e;
      }
      return simple(`dgram udp ${loc.localPort ?? ''}->${loc.remoteHost ?? ''}:${loc.remotePort ?? ''}`, fd, EpKind.Dgram, MAX_STREAM_FRAME_BYTES, { adoptPeer: !remote });
    }
    case 'vxlan':
      return openVxlan(loc);
    case 'vxvde':
      return openVxvde(loc);
    case 'slirp':
      return openSlirp(loc);
    default:
      throw new Error(`${(loc as { kind: string }).kind}:// endpoints are not supported by this build yet`);
  }
}
