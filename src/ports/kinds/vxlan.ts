/**
 * VXLAN (RFC 7348, vdeplug4's `vxlan://`) and vdeplug4 VXVDE (`vxvde://`) endpoints for
 * vde_plug and the switch (PROTOCOL.md §2.4-§2.5). The encapsulation itself lives in the native
 * addon (native/src/vxlan.cc): an EndpointIo the engine drives on its own thread, so frames never
 * pass through JavaScript. This module checks the locator's values, resolves what needs the
 * system's databases (vxvde `grp=` / `vni=` group names, empty = our effective gid) and asks the
 * addon for the endpoint handle; the engine owns the sockets from then on.
 */
import { isIP } from 'node:net';
import { EpKind, MAX_VDE_FRAME_BYTES, native, sys } from '../../native/index.js';
import { lookupGroup } from '../../core/perms.js';
import type { OpenedEndpoint } from '../endpoint.js';
import {
  formatLocator,
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

/** The part of the addon this module uses. */
interface VxAddon {
  createVxlan?: (o: NativeVxOptions) => unknown;
  createVxvde?: (o: NativeVxOptions) => unknown;
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

/** Opens a vxlan:// endpoint (one UDP socket on the VXLAN port, member of the group). */
export async function openVxlan(loc: VxlanLocator): Promise<OpenedEndpoint> {
  const name = formatLocator(loc);
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
