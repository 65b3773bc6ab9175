/**
 * switch://, hub:// and multi:// (vdeplug4's process-less nodes, man libvdeplug_switch,
 * libvdeplug_hub, libvdeplug_multi): the program that opens one becomes a small switch, hub or
 * multilink with a vde_switch-compatible directory PATH (default /tmp/vdenode_USER) that other
 * plugs, QEMU and Debian's libvdeplug clients join with the usual handshake (`vde_plug PATH`,
 * `-netdev vde,sock=PATH`). Only "any port" requests are served; requested port numbers and
 * descriptions are ignored, as in vdeplug4. Data sockets are PATH/fdN (N counts clients).
 *
 * The node is its own native engine: port 1 is the program's side (one end of a SOCK_SEQPACKET
 * socket pair, the other end is the endpoint returned to the caller), every joined plug gets a
 * port of its own (switch: learning with MAC+VLAN keys, tagged frames pass as a trunk; hub:
 * every frame to every other port). multi:// puts all joined plugs on one port of a hub, so
 * their frames reach only the program and the program's frames reach all of them.
 *
 * Ownership follows core/sockpath: a live PATH/ctl is refused, a stale one reclaimed, a
 * non-socket never removed; at close only the sockets we bound and the directory we created go.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { log } from '../../core/log.js';
import { deriveModes, lookupGroup } from '../../core/perms.js';
import { claimSocketPath, listenUnix, OwnedPath, removeCreatedDir } from '../../core/sockpath.js';
import { createEngine, EpKind, MAX_VDE_FRAME_BYTES, native, type EngineEvent, type NativeEngine } from '../../native/index.js';
import { encodeSockaddr, REQ_NEW_CONTROL } from '../../protocol/handshake.js';
import { readRequest } from '../../protocol/request.js';
import { clientSocketOwner, createDataSocket } from '../datasock.js';
import { simple, type OpenedEndpoint } from '../endpoint.js';
import { DEFAULT_NODE_EXPIRE_SECONDS, DEFAULT_NODE_HASH_SIZE_ENTRIES, type NetnodeLocator } from '../vnl.js';

/** Default socket mode of a node (vdeplug4). */
export const DEFAULT_NODE_MODE = 0o600;
/** Port of the node's engine that carries the program's own frames. */
const HOST_PORT = 1;
/** multi://: the port every joined plug shares. */
const MULTI_PORT = 2;
/** Ports the node's engine starts with (it grows by doubling). */
const INITIAL_PORTS = 64;
/** Backlog of the control socket, as vde_switch. */
const CTL_BACKLOG = 15;
/** MAC table slots never go below this. */
const MIN_TABLE_ENTRIES = 1024;
const SOCK_SEQPACKET = 5;

/** The default node directory: /tmp/vdenode_<user name> (or _u<euid>). */
export function defaultNodePath(): string {
  try {
    return `/tmp/vdenode_${os.userInfo().username}`;
  } catch {
    return `/tmp/vdenode_u${process.geteuid?.() ?? 0}`;
  }
}

interface Client {
  ctl: net.Socket;
  port: number;
  engineId: number;
  data: OwnedPath;
}

/** One running node. */
class Netnode {
  private engine: NativeEngine;
  private server: net.Server | null = null;
  private ctlOwned: OwnedPath | null = null;
  private createdDir = false;
  private clients = new Set<Client>();
  private usedPorts = new Set<number>();
  private numPorts = INITIAL_PORTS;
  private closed = false;
  private nextData = 0;
  readonly dir: string;
  private mode: number;
  private dirmode: number;
  private gid: number | null = null;

  constructor(readonly loc: NetnodeLocator) {
    this.dir = path.resolve(loc.path || defaultNodePath());
    const m = deriveModes(loc.mode ?? (loc.dirmode === undefined ? DEFAULT_NODE_MODE : undefined), loc.dirmode);
    this.mode = m.mode;
    this.dirmode = m.dirmode;
    if (loc.grp !== undefined) {
      const g = lookupGroup(loc.grp);
      if (g === undefined) throw new Error(`${loc.kind}://${this.dir}: grp: unknown group "${loc.grp}"`);
      this.gid = g;
    }
    this.engine = createEngine(this.numPorts, (evs) => this.onEvents(evs));
    if (loc.kind === 'switch') {
      // vdeplug4's hashsize= bounds the learning table; ours holds at most that many entries
      this.engine.setMacTableMax(Math.max(loc.hashSize ?? DEFAULT_NODE_HASH_SIZE_ENTRIES, MIN_TABLE_ENTRIES));
      this.engine.setAging(loc.expireSeconds ?? DEFAULT_NODE_EXPIRE_SECONDS, 3, 2);
    } else this.engine.setHub(true);
  }

  private get name(): string {
    return `${this.loc.kind}://${this.dir}`;
  }

  /** Creates the directory and control socket, and the program's side; returns the caller's endpoint. */
  async start(): Promise<OpenedEndpoint> {
    try {
      return await this.startInner();
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private async startInner(): Promise<OpenedEndpoint> {
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(this.dir);
    } catch {
      st = null;
    }
    if (st && !st.isDirectory()) throw new Error(`${this.name}: ${this.dir} exists and is not a directory`);
    if (!st) {
      try {
        fs.mkdirSync(this.dir, { mode: this.dirmode & 0o777 });
      } catch (e) {
        throw new Error(`${this.name}: cannot create the directory: ${(e as Error).message}`);
      }
      this.createdDir = true;
      if (this.gid !== null) fs.chownSync(this.dir, -1, this.gid);
      fs.chmodSync(this.dir, this.dirmode);
    }
    const ctlPath = path.join(this.dir, 'ctl');
    await claimSocketPath(ctlPath, `${this.name}: control socket`);
    const srv = net.createServer((s) => void this.onClient(s));
    await listenUnix(srv, ctlPath, this.mode, CTL_BACKLOG).catch((e) => {
      throw new Error(`${this.name}: ${(e as Error).message}`);
    });
    this.server = srv;
    this.ctlOwned = OwnedPath.record(ctlPath);
    if (this.gid !== null) fs.chownSync(ctlPath, -1, this.gid);
    srv.on('error', (e) => log('warning', `${this.name}: ${e.message}`));
    const [hostFd, outerFd] = native().socketPair(SOCK_SEQPACKET);
    if (!this.engine.addEndpoint(HOST_PORT, hostFd, EpKind.Dgram, MAX_VDE_FRAME_BYTES, true)) {
      native().closeFd(hostFd);
      native().closeFd(outerFd);
      throw new Error(`${this.name}: the engine refused the node's own port`);
    }
    return simple(this.name, outerFd, EpKind.Dgram, MAX_VDE_FRAME_BYTES, { close: () => this.close() });
  }

  private allocPort(): number {
    if (this.loc.kind === 'multi') return MULTI_PORT;
    for (let p = HOST_PORT + 1; ; p++) {
      if (p >= this.numPorts) {
        this.numPorts *= 2;
        this.engine.setNumPorts(this.numPorts);
      }
      if (!this.usedPorts.has(p)) {
        this.usedPorts.add(p);
        return p;
      }
    }
  }

  private async onClient(s: net.Socket): Promise<void> {
    let req;
    try {
      req = await readRequest(s);
      if (req.type !== REQ_NEW_CONTROL) throw new Error('only "any port" requests are served (port 0 does not exist here)');
      if (!req.abstract) clientSocketOwner(req.sockPath);
    } catch (e) {
      log('warning', `${this.name}: refused a client: ${(e as Error).message}`, 'netnode-refused');
      s.destroy();
      return;
    }
    if (this.closed) return void s.destroy();
    const port = this.allocPort();
    let fd = -1;
    try {
      const dataPath = path.join(this.dir, `fd${this.nextData++}`);
      fd = createDataSocket(req.sockPath, dataPath, this.mode);
      if (this.gid !== null) fs.chownSync(dataPath, -1, this.gid);
      const data = OwnedPath.record(dataPath);
      const engineId = this.engine.addEndpoint(port, fd, EpKind.Dgram, MAX_VDE_FRAME_BYTES, true);
      if (!engineId) {
        data.release();
        throw new Error('the engine refused the endpoint');
      }
      const c: Client = { ctl: s, port, engineId, data };
      this.clients.add(c);
      s.on('data', () => {});
      s.on('error', () => s.destroy());
      s.on('close', () => this.drop(c, false));
      s.write(encodeSockaddr(dataPath));
    } catch (e) {
      if (fd >= 0) native().closeFd(fd);
      if (this.loc.kind !== 'multi') this.usedPorts.delete(port);
      log('warning', `${this.name}: refused a client: ${(e as Error).message}`, 'netnode-refused');
      s.destroy();
    }
  }

  private drop(c: Client, engineDropped: boolean): void {
    if (!this.clients.delete(c)) return;
    if (!engineDropped) this.engine.removeEndpoint(c.engineId);
    c.data.release();
    if (this.loc.kind !== 'multi') this.usedPorts.delete(c.port);
    c.ctl.destroy();
  }

  private onEvents(evs: EngineEvent[]): void {
    for (const ev of evs) {
      if (ev.type !== 'epClosed') continue;
      for (const c of this.clients) if (c.engineId === ev.ep) this.drop(c, true);
    }
  }

  /** Stops serving and removes what the node created. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.server?.close();
    this.server = null;
    for (const c of [...this.clients]) this.drop(c, false);
    this.ctlOwned?.release();
    this.engine.close();
    if (this.createdDir) removeCreatedDir(this.dir, (m) => log('warning', `${this.name}: ${m}`));
  }
}

/** Opens a switch://, hub:// or multi:// node; the returned endpoint is the program's side. */
export function openNetnode(loc: NetnodeLocator): Promise<OpenedEndpoint> {
  return new Netnode(loc).start();
}
