/**
 * VXLAN (RFC 7348, vdeplug4's `vxlan://`) and vdeplug4 VXVDE (`vxvde://`) endpoints for
 * vde_plug and the switch (PROTOCOL.md §2.4-§2.5). The encapsulation itself lives in the native
 * addon (native/src/vxlan.cc): an EndpointIo the engine drives on its own thread, so frames never
 * pass through JavaScript. This module checks the locator's values, resolves what needs the
 * system's databases (vxvde `grp=` / `vni=` group names, empty = our effective gid) and asks the
 * addon for the endpoint handle; the engine owns the sockets from then on.
 *
 * A unicast vxlan:// endpoint (peers instead of a group) resolves its peers' names, reads its
 * peers file and watches it: when the file changes (checked every PEERS_FILE_POLL_MS), the new
 * list replaces the old one in the running endpoint, and a file that no longer parses is
 * reported and ignored (the running list stays).
 */
import dns from 'node:dns/promises';
import fs from 'node:fs';
import { isIP } from 'node:net';
import { log } from '../../core/log.js';
import { EpKind, MAX_VDE_FRAME_BYTES, native, sys } from '../../native/index.js';
import { lookupGroup } from '../../core/perms.js';
import type { OpenedEndpoint } from '../endpoint.js';
import {
  formatLocator,
  parseVxlanPeersFile,
  type VxPeer,
  MAX_EXPIRE_SECONDS,
  MAX_IFNAME_BYTES,
  MAX_RCVBUF_BYTES,
  MAX_VNI,
  MAX_VX_HASH_SIZE_ENTRIES,
  type VxlanLocator,
  type VxvdeLocator,
} from '../vnl.js';

/** Largest frame carried by either encapsulation (as vdeplug4: VDE's frame buffer size). */
export const MAX_VX_FRAME_BYTES = MAX_VDE_FRAME_BYTES;
/** Largest multicast TTL, in hops. */
const MAX_TTL_HOPS = 255;
/** Largest gid accepted for `grp=` / `vni=GROUP`. */
const MAX_GID = 2 ** 32 - 2;

/** Options of the native factories (see native/src/vxlan.cc readOptions). */
interface NativeVxOptions {
  group: string;
  port: number;
  vni: number;
  ttl: number;
  ifname?: string;
  rcvbufBytes?: number;
  hashSize: number;
  expireSeconds: number;
  /** vxvde only: local address of the unicast socket. */
  bind?: string;
  /** vxvde only: gid written over the last three bytes of the group address. */
  groupGid?: number;
}

/** How often a peers file is checked for changes, in milliseconds. */
export const PEERS_FILE_POLL_MS = 1000;
/** Largest peers file read, in bytes. */
const MAX_PEERS_FILE_BYTES = 1 << 20;

/** A resolved unicast peer as the addon takes it. */
interface NativePeer {
  addr: string;
  port: number;
}

/** Statistics of a unicast vxlan endpoint (vxlanStats). */
export interface VxlanPeerStats {
  peers: string[];
  floodFrames: number;
  floodCopies: number;
  floodLost: number;
  unicastFrames: number;
  notPeer: number;
}

/** The part of the addon this module uses. */
interface VxAddon {
  createVxlan?: (o: NativeVxOptions) => unknown;
  createVxvde?: (o: NativeVxOptions) => unknown;
  createVxlanPeers?: (o: { port: number; vni: number; family: 4 | 6; peers: NativePeer[]; local?: string; rcvbufBytes?: number; hashSize: number; expireSeconds: number }) => { handle: unknown; control: unknown };
  vxlanSetPeers?: (control: unknown, peers: NativePeer[]) => void;
  vxlanStats?: (control: unknown) => VxlanPeerStats;
}

function isInt(v: unknown, lo: number, hi: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
}

/** Checks the values shared by both kinds (a locator may be built by code, not by parseLocator). */
function commonOptions(loc: VxlanLocator | VxvdeLocator, name: string): NativeVxOptions {
  const bad = (what: string): never => {
    throw new Error(`${name}: ${what}`);
  };
  if (typeof loc.group !== 'string' || isIP(loc.group) === 0) bad(`group "${String(loc.group)}" is not an IPv4/IPv6 address`);
  if (!isInt(loc.port, 1, 65535)) bad(`port ${String(loc.port)} is out of range 1..65535`);
  if (!isInt(loc.vni, 0, MAX_VNI)) bad(`vni ${String(loc.vni)} is out of range 0..${MAX_VNI}`);
  if (!isInt(loc.ttl, 0, MAX_TTL_HOPS)) bad(`ttl ${String(loc.ttl)} is out of range 0..${MAX_TTL_HOPS}`);
  if (!isInt(loc.hashSize, 1, MAX_VX_HASH_SIZE_ENTRIES)) bad(`hashsize ${String(loc.hashSize)} is out of range 1..${MAX_VX_HASH_SIZE_ENTRIES}`);
  if (!isInt(loc.expireSeconds, 1, MAX_EXPIRE_SECONDS)) bad(`expiretime ${String(loc.expireSeconds)} is out of range 1..${MAX_EXPIRE_SECONDS}`);
  const o: NativeVxOptions = { group: loc.group, port: loc.port, vni: loc.vni, ttl: loc.ttl, hashSize: loc.hashSize, expireSeconds: loc.expireSeconds };
  if (loc.ifname !== undefined) {
    if (typeof loc.ifname !== 'string' || loc.ifname === '' || Buffer.byteLength(loc.ifname) > MAX_IFNAME_BYTES || loc.ifname.includes('\0')) {
      bad(`if: "${String(loc.ifname)}" is not an interface name (1..${MAX_IFNAME_BYTES} bytes)`);
    }
    o.ifname = loc.ifname;
  }
  if (loc.rcvbufBytes !== undefined) {
    if (!isInt(loc.rcvbufBytes, 1, MAX_RCVBUF_BYTES)) bad(`rcvbuf ${String(loc.rcvbufBytes)} is out of range 1..${MAX_RCVBUF_BYTES} bytes`);
    o.rcvbufBytes = loc.rcvbufBytes;
  }
  return o;
}

/** Resolves a group name or number to a gid; '' = our effective gid (vdeplug4's vde_grnam2gid). */
function gidOf(name: string, what: string, g: string): number {
  let gid: number | undefined;
  if (g === '') gid = process.getegid?.();
  else gid = lookupGroup(g);
  if (gid === undefined) throw new Error(`${name}: ${what}: unknown group "${g}"`);
  if (!isInt(gid, 0, MAX_GID)) throw new Error(`${name}: ${what}: gid ${gid} is out of range`);
  return gid;
}

function addon(name: string): Required<VxAddon> {
  const a = native() as unknown as VxAddon;
  if (typeof a.createVxlan !== 'function' || typeof a.createVxvde !== 'function') {
    throw new Error(`${name}: the native addon was built without VXLAN support: run "npm run build"`);
  }
  return a as Required<VxAddon>;
}

function opened(name: string, handle: unknown): OpenedEndpoint {
  // (the plug keeps Node's event loop alive while frames flow only on the engine thread)
  return {
    fd: -1,
    kind: EpKind.Custom,
    maxFrameBytes: MAX_VX_FRAME_BYTES,
    name,
    custom: handle,
    onLost: () => {},
    close: () => {},
  };
}

/** Resolves peers to numeric addresses of the family (names through the resolver); throws naming the peer. */
async function resolvePeers(peers: VxPeer[], family: 4 | 6, port: number, name: string): Promise<NativePeer[]> {
  const out: NativePeer[] = [];
  for (const p of peers) {
    let addr = p.host;
    if (isIP(addr) === 0) {
      try {
        addr = (await dns.lookup(p.host, { family })).address;
      } catch (e) {
        throw new Error(`${name}: peer "${p.host}": cannot resolve an IPv${family} address (${(e as Error).message})`);
      }
    } else if (isIP(addr) !== family) {
      throw new Error(`${name}: peer "${p.host}" is not an IPv${family} address like the other peers`);
    }
    out.push({ addr, port: p.port ?? port });
  }
  return out;
}

/** Reads and parses a peers file (at most MAX_PEERS_FILE_BYTES). */
function readPeersFile(file: string): VxPeer[] {
  const st = fs.statSync(file);
  if (!st.isFile()) throw new Error(`${file}: not a regular file`);
  if (st.size > MAX_PEERS_FILE_BYTES) throw new Error(`${file}: larger than ${MAX_PEERS_FILE_BYTES} bytes`);
  return parseVxlanPeersFile(fs.readFileSync(file, 'utf8'), file);
}

/** Opens a unicast vxlan:// endpoint: its peers from the locator and the peers file, which is then watched. */
async function openUnicastVxlan(loc: VxlanLocator, name: string): Promise<OpenedEndpoint> {
  const a = addon(name);
  if (typeof a.createVxlanPeers !== 'function') throw new Error(`${name}: the native addon was built without unicast VXLAN support: run "npm run build"`);
  if (!isInt(loc.port, 1, 65535)) throw new Error(`${name}: port ${String(loc.port)} is out of range 1..65535`);
  if (!isInt(loc.vni, 0, MAX_VNI)) throw new Error(`${name}: vni ${String(loc.vni)} is out of range 0..${MAX_VNI}`);
  const fromLocator = loc.peers ?? [];
  let fromFile: VxPeer[] = [];
  if (loc.peersFile !== undefined) {
    try {
      fromFile = readPeersFile(loc.peersFile);
    } catch (e) {
      throw new Error(`${name}: peers file: ${(e as Error).message}`);
    }
  }
  const peers = await resolvePeers([...fromLocator, ...fromFile], loc.family, loc.port, name);
  const opts = { port: loc.port, vni: loc.vni, family: loc.family, peers, hashSize: loc.hashSize, expireSeconds: loc.expireSeconds } as Parameters<NonNullable<VxAddon['createVxlanPeers']>>[0];
  if (loc.local !== undefined) opts.local = loc.local;
  if (loc.rcvbufBytes !== undefined) opts.rcvbufBytes = loc.rcvbufBytes;
  const { handle, control } = sys(name, () => a.createVxlanPeers!(opts));
  let stopWatching = (): void => {};
  if (loc.peersFile !== undefined) {
    const file = loc.peersFile;
    let busy = false;
    const reload = (): void => {
      if (busy) return;
      busy = true;
      void (async () => {
        try {
          const next = await resolvePeers([...fromLocator, ...readPeersFile(file)], loc.family, loc.port, name);
          a.vxlanSetPeers!(control, next);
          log('info', `${name}: peers now ${next.map((p) => (p.addr.includes(':') ? `[${p.addr}]:${p.port}` : `${p.addr}:${p.port}`)).join(', ') || 'none'}`);
        } catch (e) {
          log('error', `${name}: peers file not applied, the previous peers stay: ${(e as Error).message}`);
        } finally {
          busy = false;
        }
      })();
    };
    const onChange = (cur: fs.Stats, prev: fs.Stats): void => {
      if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size || cur.ino !== prev.ino) reload();
    };
    fs.watchFile(file, { interval: PEERS_FILE_POLL_MS, persistent: false }, onChange);
    stopWatching = () => fs.unwatchFile(file, onChange);
  }
  return {
    ...opened(name, handle),
    close: () => stopWatching(),
    info: () => a.vxlanStats!(control),
    setPeers: async (list: VxPeer[]) => a.vxlanSetPeers!(control, await resolvePeers(list, loc.family, loc.port, name)),
  };
}

/** Opens a vxlan:// endpoint: one UDP socket on the VXLAN port, member of the group, or with unicast peers. */
export async function openVxlan(loc: VxlanLocator): Promise<OpenedEndpoint> {
  const name = formatLocator(loc);
  if (loc.group === '') return openUnicastVxlan(loc, name);
  const o = commonOptions(loc, name);
  const a = addon(name);
  return opened(name, sys(name, () => a.createVxlan(o)));
}

/** Opens a vxvde:// endpoint (shared multicast socket + private unicast socket). */
export async function openVxvde(loc: VxvdeLocator): Promise<OpenedEndpoint> {
  const name = formatLocator(loc);
  const o = commonOptions(loc, name);
  if (loc.vniGroup !== undefined) o.vni = gidOf(name, 'vni', loc.vniGroup) & MAX_VNI; // 24 bits on the wire, as vdeplug4
  if (loc.grp !== undefined) o.groupGid = gidOf(name, 'grp', loc.grp);
  if (loc.bind !== undefined) {
    if (typeof loc.bind !== 'string' || isIP(loc.bind) !== isIP(loc.group)) throw new Error(`${name}: bind: "${String(loc.bind)}" is not an address of the group's family`);
    o.bind = loc.bind;
  }
  const a = addon(name);
  return opened(name, sys(name, () => a.createVxvde(o)));
}
