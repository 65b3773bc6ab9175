/**
 * QEMU's own network back-ends attached straight to the switch, no helper process in between
 * (PROTOCOL.md §10). Three kinds of switch-side sockets, each a normal switch port per peer:
 *
 *   --qemu-listen unix:PATH | tcp:[HOST:]PORT   stream server, 4-byte length framing; every
 *       QEMU that connects (-netdev stream,server=off / -netdev socket,connect=) gets a port
 *   --qemu-connect unix:PATH | tcp:HOST:PORT    stream client to a QEMU that listens
 *       (-netdev stream,server=on / -netdev socket,listen=); re-connects with backoff
 *   --qemu-dgram unix:PATH | udp:[HOST:]PORT     raw frames per datagram (-netdev dgram); the
 *       first sender becomes the peer
 */
import fs from 'node:fs';
import net from 'node:net';
import { log } from '../core/log.js';
import { takeSocketFd } from '../native/sockets.js';
import { EpKind, MAX_STREAM_FRAME_BYTES, native, sys } from '../native/index.js';
import type { SwitchState, PortInfo } from './state.js';

/** Pause between attempts of a --qemu-connect port to reach its QEMU. */
export const QEMU_RECONNECT_FIRST_MS = 100;
export const QEMU_RECONNECT_MAX_MS = 1000;

export type QemuAddr = { transport: 'unix'; path: string } | { transport: 'tcp' | 'udp'; host: string; port: number };
export interface QemuSpec {
  role: 'listen' | 'connect' | 'dgram';
  addr: QemuAddr;
}

/** Parses a --qemu-* value; throws with the option name and the bad part. */
export function parseQemuSpec(role: QemuSpec['role'], v: string): QemuSpec {
  const opt = `--qemu-${role}`;
  const m = /^(unix|tcp|udp):(.+)$/.exec(v);
  if (!m) throw new Error(`${opt}: "${v}" must be unix:PATH or ${role === 'dgram' ? 'udp' : 'tcp'}:[HOST:]PORT`);
  const [, transport, rest] = m;
  if (transport === 'unix') {
    if (!rest.startsWith('/')) throw new Error(`${opt}: unix path "${rest}" must be absolute`);
    return { role, addr: { transport: 'unix', path: rest } };
  }
  if ((transport === 'udp') !== (role === 'dgram')) throw new Error(`${opt}: ${transport}: is not valid here (use ${role === 'dgram' ? 'udp' : 'tcp'}:)`);
  const hp = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(rest) ?? /^()()(\d+)$/.exec(rest);
  if (!hp) throw new Error(`${opt}: "${rest}" is not [HOST:]PORT`);
  const port = Number(hp[3]);
  if (port < 1 || port > 65535) throw new Error(`${opt}: port ${port} out of range 1..65535`);
  const host = hp[1] ?? hp[2] ?? '';
  if (role === 'connect' && !host) throw new Error(`${opt}: a host is needed (tcp:HOST:PORT)`);
  if (host && !net.isIP(host) && role !== 'connect') throw new Error(`${opt}: "${host}" is not an IP address`);
  return { role, addr: { transport: transport as 'tcp' | 'udp', host: host || '127.0.0.1', port } };
}

function describe(a: QemuAddr): string {
  return a.transport === 'unix' ? `unix:${a.path}` : `${a.transport}:${a.host}:${a.port}`;
}


/** The QEMU-facing sockets of one switch. */
export class QemuPorts {
  private servers: net.Server[] = [];
  private closers: Array<() => void> = [];
  private stopped = false;

  constructor(private state: SwitchState) {}

  /** Opens every spec; throws with a clear message if one cannot be opened. */
  async start(specs: QemuSpec[]): Promise<void> {
    for (const s of specs) {
      if (s.role === 'listen') await this.listen(s.addr);
      else if (s.role === 'connect') this.connect(s.addr, QEMU_RECONNECT_FIRST_MS);
      else this.dgram(s.addr);
    }
  }

  private attach(fd: number, kind: EpKind, adopt: boolean, description: string, onGone?: () => void): void {
    let port: PortInfo;
    try {
      port = this.state.allocate(0, false, null);
    } catch (e) {
      native().closeFd(fd);
      throw e;
    }
    const engineId = this.state.engine.addEndpoint(port.num, fd, kind, MAX_STREAM_FRAME_BYTES, true, undefined, adopt);
    if (!engineId) {
      native().closeFd(fd);
      throw new Error(`${description}: the engine refused the endpoint`);
    }
    let closed = false;
    const id = fd;
    this.state.attach(port, {
      id,
      engineId,
      module: 'qemu',
      description,
      uid: null,
      close: () => {
        if (closed) return;
        closed = true;
        this.state.engine.removeEndpoint(engineId);
        this.state.detach(port.num, id);
        if (!this.stopped) onGone?.();
      },
    });
    log('info', `port ${port.num}: ${description}`);
  }

  private async listen(a: QemuAddr): Promise<void> {
    const what = `QEMU stream listener ${describe(a)}`;
    if (a.transport === 'unix') fs.rmSync(a.path, { force: true });
    const srv = net.createServer({ pauseOnConnect: true }, (sock) => {
      try {
        if (a.transport !== 'unix') sock.setNoDelay(true);
        const peer = a.transport === 'unix' ? a.path : `${sock.remoteAddress}:${sock.remotePort}`;
        this.attach(takeSocketFd(sock), EpKind.Stream4, false, `qemu stream ${peer}`);
      } catch (e) {
        log('warning', `${what}: ${(e as Error).message}`);
        sock.destroy();
      }
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (e) => reject(new Error(`${what}: ${e.message}`)));
      srv.listen(a.transport === 'unix' ? { path: a.path } : { host: a.host, port: a.port }, () => resolve());
    });
    srv.on('error', (e) => log('error', `${what}: ${e.message}`));
    this.servers.push(srv);
    if (a.transport === 'unix') this.closers.push(() => fs.rmSync(a.path, { force: true }));
  }

  private connect(a: QemuAddr, delayMs: number): void {
    if (this.stopped) return;
    const what = `QEMU stream ${describe(a)}`;
    const s = net.connect(a.transport === 'unix' ? { path: a.path } : { host: a.host, port: a.port });
    s.once('connect', () => {
      try {
        if (a.transport !== 'unix') s.setNoDelay(true);
        this.attach(takeSocketFd(s), EpKind.Stream4, false, `qemu stream client ${describe(a)}`, () => this.retry(a, QEMU_RECONNECT_FIRST_MS));
      } catch (e) {
        log('warning', `${what}: ${(e as Error).message}`);
        this.retry(a, delayMs);
      }
    });
    s.once('error', () => {
      s.destroy();
      this.retry(a, delayMs);
    });
  }

  private retry(a: QemuAddr, delayMs: number): void {
    if (this.stopped) return;
    const t = setTimeout(() => this.connect(a, Math.min(delayMs * 2, QEMU_RECONNECT_MAX_MS)), delayMs);
    t.unref();
    this.closers.push(() => clearTimeout(t));
  }

  private dgram(a: QemuAddr): void {
    const n = native();
    let fd: number;
    if (a.transport === 'unix') {
      fs.rmSync(a.path, { force: true });
      fd = n.unixDgramSocket(1 << 20);
      try {
        sys(`--qemu-dgram ${describe(a)}`, () => n.unixBind(fd, a.path));
      } catch (e) {
        n.closeFd(fd);
        throw e;
      }
      this.closers.push(() => fs.rmSync(a.path, { force: true }));
    } else {
      fd = n.udpSocket(net.isIP(a.host) === 6 ? 6 : 4);
      try {
        sys(`--qemu-dgram ${describe(a)}`, () => n.ipBind(fd, a.host, a.port));
      } catch (e) {
        n.closeFd(fd);
        throw e;
      }
    }
    this.attach(fd, EpKind.Dgram, true, `qemu dgram ${describe(a)}`);
  }

  /** Closes the listeners and sockets (the ports' endpoints are closed by the switch). */
  close(): void {
    this.stopped = true;
    for (const s of this.servers) s.close();
    for (const c of this.closers) c();
  }
}
