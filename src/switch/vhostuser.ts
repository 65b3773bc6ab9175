/**
 * vhost-user ports of the switch (`--vhost-user PATH`, repeatable): the switch listens on PATH as
 * a vhost-user back-end and every QEMU that connects (`-chardev socket,id=c0,path=PATH -netdev
 * vhost-user,id=n0,chardev=c0` with shared memory) becomes an ordinary switch port (counters,
 * VLANs, port/print, module `qemu`). The frames and the whole vhost-user protocol stay in the
 * native endpoint; this file only accepts connections and picks ports.
 *
 * When QEMU exits or restarts its connection closes and the port becomes inactive (the engine
 * closes the endpoint and reports it). A QEMU that connects to the same PATH again gets the
 * lowest port this PATH used before that is free again, so a restarted VM comes back on its old
 * port, with the port's VLAN and other settings.
 */
import { log } from '../core/log.js';
import { Attachment } from '../ports/attach.js';
import type { OpenedEndpoint } from '../ports/endpoint.js';
import { VhostUserListener } from '../ports/kinds/vhostuser.js';
import type { PortInfo, SwitchState } from './state.js';

/** Parses a --vhost-user value (an absolute path of a unix socket); throws with the option name. */
export function parseVhostUserPath(v: string): string {
  if (!v.startsWith('/')) throw new Error(`--vhost-user: "${v}" must be an absolute path`);
  if (Buffer.byteLength(v) > 107) throw new Error(`--vhost-user: "${v}" is too long for a unix socket (at most 107 bytes)`);
  if (v.includes('\0')) throw new Error('--vhost-user: the path contains a NUL byte');
  return v;
}

/** Settings of the sockets (the switch's -m and -g). */
export interface VhostUserSocketOptions {
  mode: number;
  gid: number | null;
}

/** The vhost-user listeners of one switch. */
export class VhostUserPorts {
  private listeners: VhostUserListener[] = [];
  /** Ports each path gave out, oldest first: a QEMU that comes back gets one of these again. */
  private used = new Map<string, number[]>();

  constructor(
    private state: SwitchState,
    private o: VhostUserSocketOptions,
  ) {}

  /** Listens on every path; throws with a clear message when one cannot be opened. */
  async start(paths: string[]): Promise<void> {
    for (const p of paths) {
      const what = '--vhost-user';
      const l = new VhostUserListener(
        p,
        (open) => {
          try {
            this.attach(p, open);
          } catch (e) {
            log('warning', `${what} ${p}: ${(e as Error).message}`);
          }
        },
        (e) => log('error', `${what} ${p}: ${e.message}`),
      );
      await l.listen(what, this.o);
      this.listeners.push(l);
      this.used.set(p, []);
    }
  }

  /** The port for a new connection on path: one it used before that is free, else the lowest free port. */
  private pick(path: string): PortInfo {
    const before = this.used.get(path) ?? [];
    for (const n of before) {
      const p = this.state.ports.get(n);
      if (p && p.endpoints.size === 0 && p.allocatable && n <= this.state.numPorts) return this.state.allocate(n, false, null);
    }
    const p = this.state.allocate(0, false, null);
    before.push(p.num);
    this.used.set(path, before);
    return p;
  }

  /** Gives a connected QEMU its port (a connection without a free port is closed by the listener). */
  private attach(path: string, open: () => OpenedEndpoint): void {
    const port = this.pick(path);
    const ep = open();
    const at = Attachment.attach(this.state.engine, port.num, ep);
    const id = ep.fd;
    let closed = false;
    const description = `qemu vhost-user ${path}`;
    this.state.attach(port, {
      id,
      engineId: at.engineId,
      module: 'qemu',
      description,
      uid: null,
      close: () => {
        if (closed) return;
        closed = true;
        at.close();
        this.state.detach(port.num, id);
      },
    });
    log('info', `port ${port.num}: ${description}`);
  }

  /** Closes the listening sockets (the ports' endpoints are closed by the switch). */
  close(): void {
    for (const l of this.listeners) l.close();
    this.listeners = [];
  }
}
