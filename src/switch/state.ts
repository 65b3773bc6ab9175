/**
 * The switch's configuration model as the control plane sees it: ports (with their endpoints,
 * access control, allocatable flag and VLAN membership), VLANs and global settings. Every change
 * goes through this class, which keeps the native engine in step (the engine holds the same
 * VLAN/port facts in the form the frame path needs). Port numbers follow vde2 HEAD: `numPorts` N
 * gives ordinary ports 1..N plus the special port 0.
 */
import { E, ErrnoError } from '../core/errors.js';
import { userInGroup } from '../core/perms.js';
import { NativeStpState, type NativeEngine, type PortCounters } from '../native/index.js';
import { Impairments, type ImpairSpec } from '../ports/impair.js';

export { E };

/** "No untagged VLAN": the port drops untagged frames. */
export const VLAN_NONE = 4095;
/** Highest VLAN id `vlan/create` accepts (vde2 accepts 1..4093). */
export const VLAN_MAX_CREATE = 4093;
/** Most ordinary ports a switch may have (-n, port/setnumports). */
export const MAX_NUMPORTS = 65535;
/** Largest MAC table size hint (--hashsize, hash/setsize), in entries. */
export const MAX_HASH_SIZE_ENTRIES = 1 << 20;
/** Default, smallest and largest maximum of MAC table entries (--max-macs, hash/setmax). */
export const DEFAULT_MAC_ENTRIES = 65536;
export const MIN_MAC_ENTRIES = 16;
export const MAX_MAC_ENTRIES = 1 << 20;

export type EndpointModule = 'unix prog' | 'tuntap' | 'stream' | 'qemu';

export interface EndpointInfo {
  id: number; // shown in port/print and used by port/epclose (the data socket's fd for VDE clients)
  engineId: number;
  module: EndpointModule;
  description: string;
  uid: number | null;
  dataPath?: string;
  /** Frames carry a virtio-net header (64 KiB segments, TSO/checksum offloads): taps with offloads, vde-ts clients that agreed at the handshake. */
  offload?: boolean;
  close: () => void; // closes the endpoint's control side (control stream, listener socket...)
}

/** One direction's filter: rules in order (their text as given) and the action for frames none matches. */
export interface PortFilter {
  rules: string[];
  defaultAction: 'allow' | 'deny';
}

/** A port's policer: a token bucket of burstBytes filled at rateBits per second. */
export interface PortPolice {
  rateBits: number;
  burstBytes: number;
}

/** Most rules one filter holds (the native stage's limit). */
export const MAX_FILTER_RULES = 256;
/** Smallest and largest policing rate, in bit/s (the native stage's limits). */
export const MIN_POLICE_RATE_BITS = 8000;
export const MAX_POLICE_RATE_BITS = 1e12;
/** Smallest and largest policing burst, in bytes (the native stage's limits). */
export const MIN_POLICE_BURST_BYTES = 64;
export const MAX_POLICE_BURST_BYTES = 2 ** 30;
/** Default burst when none is given: this many seconds' worth of the rate... */
export const DEFAULT_POLICE_BURST_SECONDS = 0.02;
/** ...but at least this many bytes (a few full-size frames). */
export const MIN_DEFAULT_POLICE_BURST_BYTES = 16384;

const SI_POWERS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 };
const BINARY_POWERS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** Parses a rate in bit/s: N with an optional k/m/g/t (x1000) and an optional "bit"/"bps" ("10m", "2.5Gbit"). */
export function parseRateBits(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)([kmgt]?)(?:bit|bps|b)?(?:\/s)?$/i.exec(s.trim());
  if (!m) return null;
  const v = Math.round(Number(m[1]) * SI_POWERS[m[2].toLowerCase()]);
  return Number.isSafeInteger(v) ? v : null;
}

/** Parses a size in bytes: N with an optional k/m/g (x1024) and an optional "b"/"B" ("64k", "1500"). */
export function parseSizeBytes(s: string): number | null {
  const m = /^(\d+)([kmg]?)b?$/i.exec(s.trim());
  if (!m) return null;
  const v = Number(m[1]) * BINARY_POWERS[m[2].toLowerCase()];
  return Number.isSafeInteger(v) ? v : null;
}

export interface PortInfo {
  num: number;
  endpoints: Map<number, EndpointInfo>;
  allocatable: boolean;
  user: number | null; // access control
  group: number | null;
  currentUser: number | null;
  untagged: number;
  tagged: Set<number>;
  edge: boolean;
  stormLimitPps: number;
  mirror: { target: number; dir: 'in' | 'out' | 'both' } | null;
  /** Protected (isolated): exchanges frames with unprotected ports only. */
  protected: boolean;
  police: PortPolice | null;
  filters: { in: PortFilter; out: PortFilter };
}

/** errno-style failure raised by state operations; the console prints it as `1NNN text`. */
export const SwitchError = ErrnoError;

export class SwitchState {
  numPorts: number;
  hub = false;
  ports = new Map<number, PortInfo>();
  vlans = new Set<number>([0]);
  foreignTags: 'pass' | 'drop' = 'pass';
  expireSeconds = 100;
  minPersistSeconds = 3;
  gcIntervalSeconds = 2;
  hashSize: number;
  macTableMax = DEFAULT_MAC_ENTRIES;
  onPortChange: ((ev: 'port/+' | 'port/-' | 'ep/+' | 'ep/-', port: number, ep?: EndpointInfo) => void) | null = null;
  /** Link emulation on port directions (port/impair). */
  readonly impair: Impairments;

  constructor(
    readonly engine: NativeEngine,
    numPorts: number,
    hashSize: number,
  ) {
    this.numPorts = numPorts;
    this.hashSize = hashSize;
    this.impair = new Impairments(engine);
  }

  /** Returns port n or throws ENXIO. */
  port(n: number): PortInfo {
    const p = this.ports.get(n);
    if (!p) throw new SwitchError(E.ENXIO, `port ${n} does not exist`);
    return p;
  }

  /** Checks n is a valid port number (0..numPorts) or throws EINVAL. */
  checkRange(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.numPorts) throw new SwitchError(E.EINVAL, `port ${n} out of range 0..${this.numPorts}`);
  }

  /** Creates port n (inactive, untagged VLAN 0). */
  createPort(n: number, allocatable: boolean): PortInfo {
    this.checkRange(n);
    if (this.ports.has(n)) throw new SwitchError(E.EEXIST, `port ${n} exists`);
    const p: PortInfo = {
      num: n,
      endpoints: new Map(),
      allocatable,
      user: null,
      group: null,
      currentUser: null,
      untagged: 0,
      tagged: new Set(),
      edge: false,
      stormLimitPps: 0,
      mirror: null,
      protected: false,
      police: null,
      filters: { in: { rules: [], defaultAction: 'allow' }, out: { rules: [], defaultAction: 'allow' } },
    };
    this.ports.set(n, p);
    this.engine.setUntagged(n, 0);
    this.onPortChange?.('port/+', n);
    return p;
  }

  /** Removes an inactive port. */
  removePort(n: number): void {
    this.checkRange(n);
    const p = this.port(n);
    if (p.endpoints.size > 0) throw new SwitchError(E.EADDRINUSE, `port ${n} is active`);
    for (const v of p.tagged) this.engine.setTagged(n, v, false);
    this.engine.setMirror(n, -1, -1);
    this.engine.setStorm(n, 0);
    this.impair.set(n, 'in', null);
    this.impair.set(n, 'out', null);
    if (p.protected) this.engine.setProtected(n, false);
    if (p.police) this.engine.setStage(n, 'in', 'police', null);
    for (const dir of ['in', 'out'] as const) if (p.filters[dir].rules.length || p.filters[dir].defaultAction === 'deny') this.engine.setStage(n, dir, 'filter', null);
    for (const q of this.ports.values()) if (q.mirror?.target === n) this.setMirror(q.num, -1, 'both');
    this.ports.delete(n);
    this.onPortChange?.('port/-', n);
  }

  /** The lowest free allocatable port ≥ 1, or throws ENOSPC. */
  findFreePort(): number {
    for (let i = 1; i <= this.numPorts; i++) {
      const p = this.ports.get(i);
      if (!p) return i;
      if (p.endpoints.size === 0 && p.allocatable) return i;
    }
    throw new SwitchError(E.ENOSPC, 'no free port');
  }

  /** Checks that a client with the given uid may attach to port n (access control + current user). */
  checkAccess(p: PortInfo, uid: number | null): void {
    if (uid !== null && uid !== 0 && (p.user !== null || p.group !== null)) {
      const ok = (p.user !== null && p.user === uid) || (p.group !== null && userInGroup(uid, p.group));
      if (!ok) throw new SwitchError(E.EPERM, `uid ${uid} may not use port ${p.num}`);
    }
    if (p.endpoints.size > 0 && p.currentUser !== uid && uid !== 0)
      throw new SwitchError(E.EADDRINUSE, `port ${p.num} is in use by uid ${p.currentUser}`);
  }

  /**
   * Picks the port for a new endpoint: the requested one (created on demand) or the lowest free
   * one, after access control. Does not attach anything yet.
   */
  allocate(requested: number, port0: boolean, uid: number | null): PortInfo {
    let n: number;
    if (port0) n = 0;
    else if (requested > 0) n = requested;
    else n = this.findFreePort();
    this.checkRange(n);
    const p = this.ports.get(n) ?? this.createPort(n, true);
    this.checkAccess(p, uid);
    return p;
  }

  /** Registers an endpoint (already added to the engine) on a port. */
  attach(p: PortInfo, ep: EndpointInfo): void {
    if (p.endpoints.size === 0) p.currentUser = ep.uid;
    p.endpoints.set(ep.id, ep);
    this.onPortChange?.('ep/+', p.num, ep);
  }

  /** Forgets an endpoint (the caller has removed it from the engine). */
  detach(portNum: number, id: number): void {
    const p = this.ports.get(portNum);
    const ep = p?.endpoints.get(id);
    if (!p || !ep) return;
    p.endpoints.delete(id);
    if (p.endpoints.size === 0) p.currentUser = null;
    this.onPortChange?.('ep/-', portNum, ep);
  }

  /** Sets the number of ordinary ports (1..MAX_NUMPORTS, as on the command line). */
  setNumPorts(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > MAX_NUMPORTS) throw new SwitchError(E.EINVAL, `number of ports ${n} is out of range 1..${MAX_NUMPORTS}`);
    for (const k of this.ports.keys()) if (k > n) throw new SwitchError(E.EADDRINUSE, `port ${k} exists beyond ${n}`);
    this.numPorts = n;
    this.engine.setNumPorts(n + 1);
  }

  /**
   * Sets vde2's hash size (1..MAX_HASH_SIZE_ENTRIES, as on the command line). It only shapes what
   * hash/print shows as the bucket: the table's capacity is its maximum of entries (setMacTableMax).
   */
  setHashSize(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > MAX_HASH_SIZE_ENTRIES) throw new SwitchError(E.EINVAL, `hash size ${n} is out of range 1..${MAX_HASH_SIZE_ENTRIES}`);
    this.hashSize = n;
  }

  /** Sets the most entries the MAC table holds (MIN_MAC_ENTRIES..MAX_MAC_ENTRIES); when full it evicts from the greediest port. */
  setMacTableMax(n: number): void {
    if (!Number.isInteger(n) || n < MIN_MAC_ENTRIES || n > MAX_MAC_ENTRIES) throw new SwitchError(E.EINVAL, `maximum of MAC entries ${n} is out of range ${MIN_MAC_ENTRIES}..${MAX_MAC_ENTRIES}`);
    this.macTableMax = n;
    this.engine.setMacTableMax(n);
  }

  /** Switches hub mode on or off. */
  setHub(on: boolean): void {
    this.hub = on;
    this.engine.setHub(on);
  }

  /** Sets the untagged (access) VLAN of a port; VLAN_NONE removes it. */
  setUntagged(n: number, vlan: number): void {
    const p = this.port(n);
    if (vlan !== VLAN_NONE && !this.vlans.has(vlan)) throw new SwitchError(E.ENXIO, `VLAN ${vlan} does not exist`);
    p.untagged = vlan;
    this.engine.setUntagged(n, vlan);
  }

  /** Creates a VLAN. */
  createVlan(v: number): void {
    if (!Number.isInteger(v) || v < 1 || v > VLAN_MAX_CREATE) throw new SwitchError(E.EINVAL, `VLAN ${v} out of range 1..${VLAN_MAX_CREATE}`);
    if (this.vlans.has(v)) throw new SwitchError(E.EEXIST, `VLAN ${v} exists`);
    this.vlans.add(v);
  }

  /** Removes a VLAN that has no member ports. */
  removeVlan(v: number): void {
    if (!this.vlans.has(v)) throw new SwitchError(E.ENXIO, `VLAN ${v} does not exist`);
    for (const p of this.ports.values()) if (p.untagged === v || p.tagged.has(v)) throw new SwitchError(E.EADDRINUSE, `VLAN ${v} has member ports`);
    if (v === 0) throw new SwitchError(E.EINVAL, 'VLAN 0 cannot be removed');
    this.vlans.delete(v);
  }

  /** Adds a tagged (trunk) membership. */
  addTagged(v: number, n: number): void {
    if (!this.vlans.has(v)) throw new SwitchError(E.ENXIO, `VLAN ${v} does not exist`);
    const p = this.port(n);
    if (p.tagged.has(v)) throw new SwitchError(E.EEXIST, `port ${n} is already in VLAN ${v}`);
    p.tagged.add(v);
    this.engine.setTagged(n, v, true);
  }

  /** Removes a tagged membership (the untagged VLAN cannot be removed this way). */
  delTagged(v: number, n: number): void {
    if (!this.vlans.has(v)) throw new SwitchError(E.ENXIO, `VLAN ${v} does not exist`);
    const p = this.port(n);
    if (p.untagged === v && !p.tagged.has(v)) throw new SwitchError(E.EADDRINUSE, `VLAN ${v} is the untagged VLAN of port ${n}`);
    if (!p.tagged.has(v)) throw new SwitchError(E.ENXIO, `port ${n} is not in VLAN ${v}`);
    p.tagged.delete(v);
    this.engine.setTagged(n, v, false);
  }

  /** Chooses what happens to tagged frames with a VLAN the port is not a member of. */
  setForeignTags(mode: 'pass' | 'drop'): void {
    this.foreignTags = mode;
    this.engine.setForeignTags(mode === 'pass' ? 0 : 1);
  }

  /** Applies aging settings to the engine. */
  applyAging(): void {
    this.engine.setAging(this.expireSeconds, this.minPersistSeconds, this.gcIntervalSeconds);
  }

  /** Sets (or with target -1 clears) port mirroring of port n. */
  setMirror(n: number, target: number, dir: 'in' | 'out' | 'both'): void {
    const p = this.port(n);
    if (target < 0) {
      p.mirror = null;
      this.engine.setMirror(n, -1, -1);
      return;
    }
    this.checkRange(target);
    if (target === n) throw new SwitchError(E.EINVAL, 'a port cannot mirror to itself');
    p.mirror = { target, dir };
    this.engine.setMirror(n, dir !== 'out' ? target : -1, dir !== 'in' ? target : -1);
  }

  /** Sets the broadcast/multicast storm limit of a port (frames per second, 0 = off). */
  setStorm(n: number, pps: number): void {
    const p = this.port(n);
    if (!Number.isInteger(pps) || pps < 0) throw new SwitchError(E.EINVAL, `bad storm limit ${pps}`);
    p.stormLimitPps = pps;
    this.engine.setStorm(n, pps);
  }

  /**
   * Sets link emulation on what port n receives (in), sends (out) or both: the spec replaces the
   * previous one of that direction; frames it holds and its counters carry over.
   */
  setImpair(n: number, dir: 'in' | 'out' | 'both', spec: ImpairSpec): void {
    this.port(n);
    for (const d of dir === 'both' ? (['in', 'out'] as const) : [dir]) this.impair.set(n, d, spec);
  }

  /** Marks port n protected or not (protected ports exchange frames with unprotected ones only). */
  setProtected(n: number, on: boolean): void {
    const p = this.port(n);
    p.protected = on;
    this.engine.setProtected(n, on);
  }

  /**
   * Polices what enters port n: at most rateBits per second with bursts of burstBytes (default:
   * DEFAULT_POLICE_BURST_SECONDS of the rate, at least MIN_DEFAULT_POLICE_BURST_BYTES); null = off.
   */
  setPolice(n: number, rateBits: number | null, burstBytes?: number): void {
    const p = this.port(n);
    if (rateBits === null) {
      p.police = null;
      this.engine.setStage(n, 'in', 'police', null);
      return;
    }
    if (!Number.isSafeInteger(rateBits) || rateBits < MIN_POLICE_RATE_BITS || rateBits > MAX_POLICE_RATE_BITS) {
      throw new SwitchError(E.EINVAL, `rate ${rateBits} bit/s is out of range ${MIN_POLICE_RATE_BITS}..${MAX_POLICE_RATE_BITS}`);
    }
    const burst = burstBytes ?? Math.min(MAX_POLICE_BURST_BYTES, Math.max(MIN_DEFAULT_POLICE_BURST_BYTES, Math.round((rateBits / 8) * DEFAULT_POLICE_BURST_SECONDS)));
    if (!Number.isSafeInteger(burst) || burst < MIN_POLICE_BURST_BYTES || burst > MAX_POLICE_BURST_BYTES) {
      throw new SwitchError(E.EINVAL, `burst ${burst} bytes is out of range ${MIN_POLICE_BURST_BYTES}..${MAX_POLICE_BURST_BYTES}`);
    }
    this.engine.setStage(n, 'in', 'police', { rate: String(rateBits), burst: String(burst) });
    p.police = { rateBits, burstBytes: burst };
  }

  /**
   * Replaces one direction's filter of port n (rules as text, first match wins; defaultAction for
   * frames none matches). The engine checks the rules: a bad one throws EINVAL naming the rule and
   * term, and nothing changes. No rules with default allow removes the stage.
   */
  setFilter(n: number, dir: 'in' | 'out', rules: string[], defaultAction: 'allow' | 'deny'): void {
    const p = this.port(n);
    if (rules.length > MAX_FILTER_RULES) throw new SwitchError(E.ENOSPC, `a filter holds at most ${MAX_FILTER_RULES} rules`);
    for (const r of rules) if (/[;\n\r]/.test(r)) throw new SwitchError(E.EINVAL, `one rule at a time: ${JSON.stringify(r)}`);
    try {
      if (rules.length === 0 && defaultAction === 'allow') this.engine.setStage(n, dir, 'filter', null);
      else this.engine.setStage(n, dir, 'filter', { rules: rules.join('\n'), default: defaultAction });
    } catch (e) {
      throw new SwitchError(E.EINVAL, (e as Error).message);
    }
    p.filters[dir] = { rules: [...rules], defaultAction };
  }

  /** Counters of a port. */
  counters(n: number): PortCounters {
    return this.engine.counters(n);
  }

  /** Sets the spanning-tree state the engine applies to a port. */
  setStpState(n: number, s: NativeStpState): void {
    this.engine.setStpState(n, s);
  }
}

