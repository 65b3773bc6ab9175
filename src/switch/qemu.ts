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
 *
 * Each is an endpoint kind of ports/ (stream and dgram, QEMU framing), attached with the one
 * attach lifecycle; a unix path that another process serves is refused, never taken over.
 */
import net from 'node:net';
import { log } from '../core/log.js';
import { Attachment, releaseEndpoint } from '../ports/attach.js';
import type { OpenedEndpoint } from '../ports/endpoint.js';
import { openEndpoint } from '../ports/registry.js';
import { StreamListener } from '../ports/kinds/stream.js';
import type { DgramLocator, StreamLocator } from '../ports/vnl.js';
import type { PortInfo, SwitchState } from './state.js';

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

/** The stream locator of a --qemu-listen / --qemu-connect address (QEMU's 4-byte framing). */
function streamLocator(a: QemuAddr, role: 'server' | 'client'): StreamLocator {
  return a.transport === 'unix'
    ? { kind: 'stream', transport: 'unix', role, path: a.path, framing: 4 }
    : { kind: 'stream', transport: 'tcp', role, host: a.host, port: a.port, framing: 4 };
}

/** The dgram locator of a --qemu-dgram address: bound locally, the peer adopted when it first sends. */
function dgramLocator(a: QemuAddr): DgramLocator {
  return a.transport === 'unix'
    ? { kind: 'dgram', transport: 'unix', localPath: a.path }
    : { kind: 'dgram', transport: 'udp', localHost: a.host, localPort: a.port };
}

/** The QEMU-facing sockets of one switch. */
export class QemuPorts {
  private listeners: StreamListener[] = [];
  private closers: Array<() => void> = [];
  private stopped = false;

  constructor(private state: SwitchState) {}

  /** Opens every spec; throws with a clear message if one cannot be opened. */
  async start(specs: QemuSpec[]): Promise<void> {
    for (const s of specs) {
      if (s.role === 'listen') await this.listen(s.addr);
      else if (s.role === 'connect') this.connect(s.addr, QEMU_RECONNECT_FIRST_MS);
      else await this.dgram(s.addr);
    }
  }

  /** Gives an opened endpoint an automatically allocated switch port. */
  private attach(ep: OpenedEndpoint, description: string, onGone?: () => void): void {
    let port: PortInfo;
    try {
      port = this.state.allocate(0, false, null);
    } catch (e) {
      releaseEndpoint(ep);
      throw e;
    }
    const id = ep.fd;
    let closed = false;
    const close = (engineDropped = false): void => {
      if (closed) return;
      closed = true;
      at.close(engineDropped);
      this.state.detach(port.num, id);
      if (!this.stopped) onGone?.();
    };
    const at = Attachment.attach(this.state.engine, port.num, ep, () => close());
    this.state.attach(port, { id, engineId: at.engineId, module: 'qemu', description, uid: null, close: () => close() });
    log('info', `port ${port.num}: ${description}`);
  }

  private async listen(a: QemuAddr): Promise<void> {
    const what = `--qemu-listen ${describe(a)}`;
    const l = new StreamListener(
      streamLocator(a, 'server'),
      (ep, peer) => {
        try {
          this.attach(ep, `qemu stream ${peer}`);
        } catch (e) {
          log('warning', `${what}: ${(e as Error).message}`);
        }
      },
      (e) => log('error', `${what}: ${e.message}`),
    );
    await l.listen(what);
    this.listeners.push(l);
  }

  private connect(a: QemuAddr, delayMs: number): void {
    if (this.stopped) return;
    openEndpoint(streamLocator(a, 'client'))
      .then((ep) => {
        if (this.stopped) return releaseEndpoint(ep);
        try {
          this.attach(ep, `qemu stream client ${describe(a)}`, () => this.retry(a, QEMU_RECONNECT_FIRST_MS));
        } catch (e) {
          log('warning', `QEMU stream ${describe(a)}: ${(e as Error).message}`);
          this.retry(a, delayMs);
        }
      })
      .catch(() => this.retry(a, delayMs));
  }

  private retry(a: QemuAddr, delayMs: number): void {
    if (this.stopped) return;
    const t = setTimeout(() => this.connect(a, Math.min(delayMs * 2, QEMU_RECONNECT_MAX_MS)), delayMs);
    t.unref();
    this.closers.push(() => clearTimeout(t));
  }

  private async dgram(a: QemuAddr): Promise<void> {
    const what = `--qemu-dgram ${describe(a)}`;
    let ep: OpenedEndpoint;
    try {
      ep = await openEndpoint(dgramLocator(a));
    } catch (e) {
      throw new Error(`${what}: ${(e as Error).message.replace(/^dgram unix \S+: /, '')}`);
    }
    this.attach(ep, `qemu dgram ${describe(a)}`);
  }

  /** Closes the listeners and sockets (the ports' endpoints are closed by the switch). */
  close(): void {
    this.stopped = true;
    for (const l of this.listeners) l.close();
    for (const c of this.closers) c();
  }
}
