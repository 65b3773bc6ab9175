/**
 * Spanning tree for the vde-ts switch.
 *
 * One bridge-wide instance of IEEE 802.1D-2004 Rapid Spanning Tree (clause 17
 * state machines, RST BPDUs of protocol version 2), falling back per port to
 * legacy 802.1D STP (version 0 Configuration and TCN BPDUs, forward-delay
 * listening/learning) when a legacy peer such as a Linux bridge with
 * `stp_state 1` is heard. The module does no I/O of its own: frames leave
 * through StpHost.sendFrame, port states through StpHost.setPortState, MAC
 * table flushes through StpHost.flush, and time advances only through
 * tick(nowMs), so the whole thing can be simulated deterministically.
 */

/* ------------------------------------------------------------------------ */
/* Public types                                                              */
/* ------------------------------------------------------------------------ */

export type PortState = 'discarding' | 'learning' | 'forwarding';
export type PortRole = 'root' | 'designated' | 'alternate' | 'backup' | 'disabled' | 'edge';

export interface StpHost {
  /** Transmit a full Ethernet frame on a port. */
  sendFrame(port: number, frame: Buffer): void;
  /** The switch applies this state to its frame path for the port. */
  setPortState(port: number, state: PortState): void;
  /** Topology change: flush learned MACs of one port, or of all ports when port is undefined. */
  flush(port?: number): void;
  /** Optional diagnostics sink. */
  log?(msg: string): void;
  /** Optional: a port's role changed (from null when the port first got one). */
  roleChanged?(port: number, from: PortRole | null, to: PortRole): void;
}

export interface StpOptions {
  /** Bridge MAC address (6 bytes); also the source address of every BPDU. */
  bridgeMac: Buffer;
  /** Bridge priority, 0..65535, rounded down to a multiple of 4096 (default 32768). */
  priority?: number;
  /** Hello time in seconds (default 2, accepted 1..10). */
  helloSeconds?: number;
  /** Max age in seconds (default 20, accepted 6..40). */
  maxAgeSeconds?: number;
  /** Forward delay in seconds (default 15, accepted 4..30). */
  forwardDelaySeconds?: number;
  /** Default port path cost (default 20000, the RSTP cost of 1 Gbit/s). */
  portCost?: number;
  /** Default for automatic edge detection on new ports (802.1D AutoEdge, default true). */
  autoEdge?: boolean;
}

export interface StpPortStatus {
  port: number;
  role: PortRole;
  state: PortState;
  edge: boolean;
  cost: number;
  designatedBridge: string;
  protocol: 'rstp' | 'stp';
  /** Port identifier (priority and number) as carried in BPDUs, e.g. "8003". */
  portId: string;
  /** The port priority vector's designated port identifier. */
  designatedPort: string;
  /** RST/Config/TCN BPDUs accepted / transmitted on this port since it was added. */
  rxBpdus: number;
  txBpdus: number;
}

export interface StpStatus {
  enabled: boolean;
  bridgeId: string;
  rootId: string;
  rootPort: number | null;
  rootPathCost: number;
  isRoot: boolean;
  ports: StpPortStatus[];
  /** Times a topology change started (some port's tcWhile went from zero to running). */
  topologyChangeCount: number;
  /** True while any port's tcWhile timer runs. */
  topologyChange: boolean;
  helloSeconds: number;
  maxAgeSeconds: number;
  forwardDelaySeconds: number;
}

/** Outcome of receiveBpdu: accepted, or rejected with a human-readable reason. */
export type BpduRxResult = { ok: true } | { ok: false; reason: string };

export type BpduType = 'config' | 'tcn' | 'rst';

/**
 * A decoded BPDU. Times are in seconds (the wire carries 1/256 s units, so any
 * multiple of 1/256 round-trips exactly). For TCN BPDUs only type and version
 * are meaningful; the other fields are zero.
 */
export interface Bpdu {
  type: BpduType;
  version: number;
  flags: number;
  rootId: bigint;
  rootPathCost: number;
  bridgeId: bigint;
  portId: number;
  messageAgeSeconds: number;
  maxAgeSeconds: number;
  helloSeconds: number;
  forwardDelaySeconds: number;
}

export type BpduDecodeResult = { ok: true; bpdu: Bpdu } | { ok: false; reason: string };

/* ------------------------------------------------------------------------ */
/* Constants                                                                 */
/* ------------------------------------------------------------------------ */

/** Bridge group address every BPDU is sent to. */
export const STP_GROUP_MAC: Buffer = Buffer.from([0x01, 0x80, 0xc2, 0x00, 0x00, 0x00]);
export const ETH_HEADER_BYTES = 14;
export const LLC_HEADER_BYTES = 3;
/** Minimum Ethernet frame without FCS; shorter frames are padded on transmit. */
export const ETH_MIN_FRAME_BYTES = 60;
/** Largest frame accepted (1514 + one VLAN tag); anything bigger is rejected as oversize. */
export const ETH_MAX_FRAME_BYTES = 1518;
/** Largest value of an 802.3 length field. */
export const ETH_MAX_LENGTH_FIELD_BYTES = 1500;
export const CONFIG_BPDU_BYTES = 35;
export const TCN_BPDU_BYTES = 4;
export const RST_BPDU_BYTES = 36;
export const BPDU_TIME_UNITS_PER_SECOND = 256;

export const BPDU_TYPE_CONFIG = 0x00;
export const BPDU_TYPE_RST = 0x02;
export const BPDU_TYPE_TCN = 0x80;
export const PROTOCOL_VERSION_STP = 0;
export const PROTOCOL_VERSION_RSTP = 2;
/** MSTP (802.1Q) BPDUs carry an RST-compatible CIST part and are processed as RST BPDUs. */
export const PROTOCOL_VERSION_MSTP = 3;
/** Highest protocol version (SPB, 802.1Q) still processed as an RST BPDU; anything above is rejected. */
export const PROTOCOL_VERSION_MAX_KNOWN = 4;

export const FLAG_TC = 0x01;
export const FLAG_PROPOSAL = 0x02;
export const FLAG_ROLE_MASK = 0x0c;
export const FLAG_LEARNING = 0x10;
export const FLAG_FORWARDING = 0x20;
export const FLAG_AGREEMENT = 0x40;
export const FLAG_TC_ACK = 0x80;
/** Port role codes carried in bits 3-4 of the RST BPDU flags (after shifting right by 2). */
export const ENCODED_ROLE_UNKNOWN = 0;
export const ENCODED_ROLE_ALTERNATE_BACKUP = 1;
export const ENCODED_ROLE_ROOT = 2;
export const ENCODED_ROLE_DESIGNATED = 3;

export const DEFAULT_BRIDGE_PRIORITY = 32768;
export const BRIDGE_PRIORITY_STEP = 4096;
export const DEFAULT_PORT_PRIORITY = 128;
export const PORT_PRIORITY_STEP = 16;
export const MAX_PORT_PRIORITY = 240;
export const DEFAULT_HELLO_SECONDS = 2;
export const DEFAULT_MAX_AGE_SECONDS = 20;
export const DEFAULT_FORWARD_DELAY_SECONDS = 15;
export const MIN_HELLO_SECONDS = 1;
export const MAX_HELLO_SECONDS = 10;
export const MIN_MAX_AGE_SECONDS = 6;
export const MAX_MAX_AGE_SECONDS = 40;
export const MIN_FORWARD_DELAY_SECONDS = 4;
export const MAX_FORWARD_DELAY_SECONDS = 30;
/** 802.1D Migrate Time: protocol-migration and edge-detection delay. */
export const MIGRATE_TIME_SECONDS = 3;
/** 802.1D Transmit Hold Count: BPDUs a port may send per second beyond the periodic ones. */
export const TX_HOLD_COUNT_BPDUS = 6;
export const DEFAULT_PORT_COST = 20000;
export const MIN_PORT_COST = 1;
export const MAX_PORT_COST = 200_000_000;
/** Port numbers are 12 bits inside a port identifier. */
export const PORT_NUMBER_MASK = 0x0fff;
/** A tick() after a longer gap only replays this many seconds of timer activity. */
export const MAX_CATCHUP_SECONDS = 120;
const MS_PER_SECOND = 1000;
const MAX_PATH_COST = 0xffffffff;
const MAC_MASK = 0xffff_ffff_ffffn;
/** Safety net against a state machine cycling forever inside one run. */
const MAX_RUN_ITERATIONS = 10_000;
/** Rejected BPDUs are logged at most this often per port. */
const REJECT_LOG_INTERVAL_MS = 10_000;

/* ------------------------------------------------------------------------ */
/* Identifier helpers                                                        */
/* ------------------------------------------------------------------------ */

/** Build a 64-bit bridge identifier from a 16-bit priority and a 6-byte MAC. */
export function makeBridgeId(priority: number, mac: Buffer): bigint {
  let macValue = 0n;
  for (let i = 0; i < 6; i++) macValue = (macValue << 8n) | BigInt(mac[i] ?? 0);
  return (BigInt(priority & 0xffff) << 48n) | macValue;
}

/** Format a bridge identifier the way Linux does: "8000.0200aabbccdd". */
export function formatBridgeId(id: bigint): string {
  const prio = Number((id >> 48n) & 0xffffn).toString(16).padStart(4, '0');
  const mac = (id & MAC_MASK).toString(16).padStart(12, '0');
  return `${prio}.${mac}`;
}

/** Build a 16-bit 802.1D-2004 port identifier from a priority (0..240) and a port number. */
export function makePortId(priority: number, portNumber: number): number {
  return (((priority >> 4) & 0xf) << 12) | (portNumber & PORT_NUMBER_MASK);
}

/** True when the frame is addressed to the bridge group address 01:80:c2:00:00:00. */
export function isBpduFrame(frame: Buffer): boolean {
  if (!Buffer.isBuffer(frame) || frame.length < 6) return false;
  for (let i = 0; i < 6; i++) if (frame[i] !== STP_GROUP_MAC[i]) return false;
  return true;
}

/* ------------------------------------------------------------------------ */
/* Codec                                                                     */
/* ------------------------------------------------------------------------ */

function secondsToWire(seconds: number): number {
  const v = Math.round(seconds * BPDU_TIME_UNITS_PER_SECOND);
  return Number.isFinite(v) ? Math.min(0xffff, Math.max(0, v)) : 0;
}

/** Encode a BPDU as a full Ethernet frame (802.3 length + LLC 42 42 03), padded to 60 bytes. */
export function encodeBpdu(bpdu: Bpdu, srcMac: Buffer): Buffer {
  const bpduBytes = bpdu.type === 'tcn' ? TCN_BPDU_BYTES : bpdu.type === 'rst' ? RST_BPDU_BYTES : CONFIG_BPDU_BYTES;
  const frameBytes = Math.max(ETH_MIN_FRAME_BYTES, ETH_HEADER_BYTES + LLC_HEADER_BYTES + bpduBytes);
  const f = Buffer.alloc(frameBytes);
  STP_GROUP_MAC.copy(f, 0);
  srcMac.copy(f, 6, 0, 6);
  f.writeUInt16BE(LLC_HEADER_BYTES + bpduBytes, 12);
  f[14] = 0x42;
  f[15] = 0x42;
  f[16] = 0x03;
  const o = ETH_HEADER_BYTES + LLC_HEADER_BYTES;
  f.writeUInt16BE(0, o); // protocol identifier
  f[o + 2] = bpdu.version & 0xff;
  f[o + 3] = bpdu.type === 'tcn' ? BPDU_TYPE_TCN : bpdu.type === 'rst' ? BPDU_TYPE_RST : BPDU_TYPE_CONFIG;
  if (bpdu.type === 'tcn') return f;
  f[o + 4] = bpdu.flags & 0xff;
  f.writeBigUInt64BE(BigInt.asUintN(64, bpdu.rootId), o + 5);
  f.writeUInt32BE(Math.min(MAX_PATH_COST, Math.max(0, Math.trunc(bpdu.rootPathCost))) >>> 0, o + 13);
  f.writeBigUInt64BE(BigInt.asUintN(64, bpdu.bridgeId), o + 17);
  f.writeUInt16BE(bpdu.portId & 0xffff, o + 25);
  f.writeUInt16BE(secondsToWire(bpdu.messageAgeSeconds), o + 27);
  f.writeUInt16BE(secondsToWire(bpdu.maxAgeSeconds), o + 29);
  f.writeUInt16BE(secondsToWire(bpdu.helloSeconds), o + 31);
  f.writeUInt16BE(secondsToWire(bpdu.forwardDelaySeconds), o + 33);
  if (bpdu.type === 'rst') f[o + 35] = 0; // version 1 length
  return f;
}

function hex(n: number, digits: number): string {
  return '0x' + n.toString(16).padStart(digits, '0');
}

/** Decode and validate a received Ethernet frame carrying a BPDU; never throws. */
export function decodeBpdu(frame: Buffer): BpduDecodeResult {
  try {
    return decodeBpduUnsafe(frame);
  } catch (e) {
    return { ok: false, reason: `malformed BPDU (${e instanceof Error ? e.message : String(e)})` };
  }
}

function decodeBpduUnsafe(frame: Buffer): BpduDecodeResult {
  if (!Buffer.isBuffer(frame)) return { ok: false, reason: 'not a Buffer' };
  if (frame.length > ETH_MAX_FRAME_BYTES) return { ok: false, reason: `oversize frame (${frame.length} bytes)` };
  if (frame.length < ETH_HEADER_BYTES + LLC_HEADER_BYTES) {
    return { ok: false, reason: `truncated frame (${frame.length} bytes)` };
  }
  if (!isBpduFrame(frame)) return { ok: false, reason: 'destination is not 01:80:c2:00:00:00' };
  const lengthField = frame.readUInt16BE(12);
  if (lengthField > ETH_MAX_LENGTH_FIELD_BYTES) {
    return { ok: false, reason: `EtherType ${hex(lengthField, 4)} where an 802.3 length field was expected` };
  }
  if (frame[14] !== 0x42 || frame[15] !== 0x42 || frame[16] !== 0x03) {
    return { ok: false, reason: `wrong LLC header ${frame.subarray(14, 17).toString('hex')} (expected 424203)` };
  }
  if (lengthField < LLC_HEADER_BYTES + TCN_BPDU_BYTES) {
    return { ok: false, reason: `802.3 length ${lengthField} too short for any BPDU` };
  }
  if (ETH_HEADER_BYTES + lengthField > frame.length) {
    return { ok: false, reason: `truncated frame: length field says ${lengthField} bytes, ${frame.length - ETH_HEADER_BYTES} present` };
  }
  const bpduBytes = lengthField - LLC_HEADER_BYTES;
  const o = ETH_HEADER_BYTES + LLC_HEADER_BYTES;
  const protocolId = frame.readUInt16BE(o);
  if (protocolId !== 0) return { ok: false, reason: `protocol identifier ${hex(protocolId, 4)} is not 0` };
  const version = frame[o + 2]!;
  const typeCode = frame[o + 3]!;
  let type: BpduType;
  let needBytes: number;
  if (typeCode === BPDU_TYPE_CONFIG) {
    type = 'config';
    needBytes = CONFIG_BPDU_BYTES;
    if (version !== PROTOCOL_VERSION_STP) return { ok: false, reason: `unknown protocol version ${version} for a Configuration BPDU` };
  } else if (typeCode === BPDU_TYPE_TCN) {
    type = 'tcn';
    needBytes = TCN_BPDU_BYTES;
    if (version !== PROTOCOL_VERSION_STP) return { ok: false, reason: `unknown protocol version ${version} for a TCN BPDU` };
  } else if (typeCode === BPDU_TYPE_RST) {
    type = 'rst';
    needBytes = RST_BPDU_BYTES;
    if (version < PROTOCOL_VERSION_RSTP || version > PROTOCOL_VERSION_MAX_KNOWN) {
      return { ok: false, reason: `unknown protocol version ${version} for an RST BPDU` };
    }
  } else {
    return { ok: false, reason: `unknown BPDU type ${hex(typeCode, 2)}` };
  }
  if (bpduBytes < needBytes) {
    return { ok: false, reason: `truncated ${type} BPDU (${bpduBytes} bytes, need ${needBytes})` };
  }
  if (type === 'tcn') {
    return {
      ok: true,
      bpdu: {
        type, version, flags: 0, rootId: 0n, rootPathCost: 0, bridgeId: 0n, portId: 0,
        messageAgeSeconds: 0, maxAgeSeconds: 0, helloSeconds: 0, forwardDelaySeconds: 0,
      },
    };
  }
  return {
    ok: true,
    bpdu: {
      type,
      version,
      flags: frame[o + 4]!,
      rootId: frame.readBigUInt64BE(o + 5),
      rootPathCost: frame.readUInt32BE(o + 13),
      bridgeId: frame.readBigUInt64BE(o + 17),
      portId: frame.readUInt16BE(o + 25),
      messageAgeSeconds: frame.readUInt16BE(o + 27) / BPDU_TIME_UNITS_PER_SECOND,
      maxAgeSeconds: frame.readUInt16BE(o + 29) / BPDU_TIME_UNITS_PER_SECOND,
      helloSeconds: frame.readUInt16BE(o + 31) / BPDU_TIME_UNITS_PER_SECOND,
      forwardDelaySeconds: frame.readUInt16BE(o + 33) / BPDU_TIME_UNITS_PER_SECOND,
    },
  };
}

/* ------------------------------------------------------------------------ */
/* Internal state                                                            */
/* ------------------------------------------------------------------------ */

type Role = 'root' | 'designated' | 'alternate' | 'backup' | 'disabled';
type InfoIs = 'disabled' | 'aged' | 'mine' | 'received';
type RcvdInfo = 'superiorDesignated' | 'repeatedDesignated' | 'inferiorDesignated' | 'inferiorRootAlternate' | 'other';

/** 802.1D priority vector; ids compare as unsigned 64-bit, port ids as 16-bit. */
interface PriorityVector {
  rootId: bigint;
  rootPathCost: number;
  designatedBridgeId: bigint;
  designatedPortId: number;
  bridgePortId: number;
}

/** 802.1D timer parameters, all in whole seconds. */
interface Times {
  messageAge: number;
  maxAge: number;
  forwardDelay: number;
  helloTime: number;
}

type PrxState = 'DISCARD' | 'RECEIVE';
type PpmState = 'CHECKING_RSTP' | 'SELECTING_STP' | 'SENSING';
type BdmState = 'EDGE' | 'NOT_EDGE';
type PtxState = 'TRANSMIT_INIT' | 'TRANSMIT_PERIODIC' | 'TRANSMIT_CONFIG' | 'TRANSMIT_TCN' | 'TRANSMIT_RSTP' | 'IDLE';
type PimState =
  | 'DISABLED' | 'AGED' | 'UPDATE' | 'CURRENT' | 'RECEIVE' | 'SUPERIOR_DESIGNATED'
  | 'REPEATED_DESIGNATED' | 'INFERIOR_DESIGNATED' | 'NOT_DESIGNATED' | 'OTHER';
type PrtState =
  | 'INIT_PORT' | 'DISABLE_PORT' | 'DISABLED_PORT'
  | 'ROOT_PROPOSED' | 'ROOT_AGREED' | 'ROOT_SYNCED' | 'REROOT' | 'ROOT_FORWARD' | 'ROOT_LEARN' | 'REROOTED' | 'ROOT_PORT'
  | 'DESIGNATED_PROPOSE' | 'DESIGNATED_AGREED' | 'DESIGNATED_SYNCED' | 'DESIGNATED_RETIRED'
  | 'DESIGNATED_FORWARD' | 'DESIGNATED_LEARN' | 'DESIGNATED_DISCARD' | 'DESIGNATED_PORT'
  | 'BLOCK_PORT' | 'BACKUP_PORT' | 'ALTERNATE_PROPOSED' | 'ALTERNATE_AGREED' | 'ALTERNATE_PORT';
type PstState = 'DISCARDING' | 'LEARNING' | 'FORWARDING';
type TcmState =
  | 'INACTIVE' | 'LEARNING' | 'DETECTED' | 'ACTIVE' | 'NOTIFIED_TCN' | 'NOTIFIED_TC' | 'PROPAGATING' | 'ACKNOWLEDGED';

interface PortConfig {
  adminEdge: boolean;
  autoEdge: boolean;
  pointToPoint: boolean;
  cost: number;
  priority: number;
}

/** Per-port variables of 802.1D-2004 clause 17.19, plus bookkeeping. */
class Port {
  readonly port: number;
  portId: number;
  cost: number;
  adminEdge: boolean;
  autoEdge: boolean;
  pointToPoint: boolean;
  portEnabled = true;
  removing = false;

  // Port Receive
  prx: PrxState = 'DISCARD';
  rcvdBpdu = false;
  rcvdRSTP = false;
  rcvdSTP = false;
  rcvdMsg = false;
  rxPending: Bpdu | null = null;
  rcvdBpduData: Bpdu | null = null;
  // Port Protocol Migration
  ppm: PpmState = 'CHECKING_RSTP';
  mcheck = false;
  sendRSTP = true;
  mdelayWhile = 0;
  // Bridge Detection
  bdm: BdmState = 'NOT_EDGE';
  operEdge = false;
  edgeDelayWhile = 0;
  // Port Transmit
  ptx: PtxState = 'TRANSMIT_INIT';
  newInfo = true;
  txCount = 0;
  helloWhen = 0;
  tcAck = false;
  // Port Information
  pim: PimState = 'DISABLED';
  infoIs: InfoIs = 'disabled';
  rcvdInfo: RcvdInfo = 'other';
  portPriority: PriorityVector;
  portTimes: Times;
  msgPriority: PriorityVector;
  msgTimes: Times;
  designatedPriority: PriorityVector;
  designatedTimes: Times;
  rcvdInfoWhile = 0;
  proposed = false;
  proposing = false;
  agree = false;
  agreed = false;
  disputed = false;
  reselect = true;
  selected = false;
  updtInfo = false;
  // Role selection / transitions
  selectedRole: Role = 'disabled';
  role: Role = 'disabled';
  prt: PrtState = 'INIT_PORT';
  learn = false;
  forward = false;
  sync = false;
  synced = false;
  reRoot = false;
  fdWhile = 0;
  rrWhile = 0;
  rbWhile = 0;
  // Port State Transition
  pst: PstState = 'DISCARDING';
  learning = false;
  forwarding = false;
  // Topology Change
  tcm: TcmState = 'INACTIVE';
  tcWhile = 0;
  rcvdTc = false;
  rcvdTcn = false;
  rcvdTcAck = false;
  tcProp = false;

  // Bookkeeping
  reportedState: PortState | null = null;
  loggedRole: PortRole | null = null;
  loggedProtocol: 'rstp' | 'stp' = 'rstp';
  rxBpdus = 0;
  txBpdus = 0;
  lastRejectLogMs = -Infinity;

  constructor(port: number, cfg: PortConfig, bridgeVector: PriorityVector, times: Times) {
    this.port = port;
    this.portId = makePortId(cfg.priority, port);
    this.cost = cfg.cost;
    this.adminEdge = cfg.adminEdge;
    this.autoEdge = cfg.autoEdge;
    this.pointToPoint = cfg.pointToPoint;
    this.portPriority = { ...bridgeVector };
    this.msgPriority = { ...bridgeVector };
    this.designatedPriority = { ...bridgeVector };
    this.portTimes = { ...times };
    this.msgTimes = { ...times };
    this.designatedTimes = { ...times };
  }
}

/** Compare the first four components of two priority vectors; negative when a is better. */
function cmpVector(a: PriorityVector, b: PriorityVector): number {
  if (a.rootId !== b.rootId) return a.rootId < b.rootId ? -1 : 1;
  if (a.rootPathCost !== b.rootPathCost) return a.rootPathCost < b.rootPathCost ? -1 : 1;
  if (a.designatedBridgeId !== b.designatedBridgeId) return a.designatedBridgeId < b.designatedBridgeId ? -1 : 1;
  if (a.designatedPortId !== b.designatedPortId) return a.designatedPortId < b.designatedPortId ? -1 : 1;
  return 0;
}

function sameTimes(a: Times, b: Times): boolean {
  return a.messageAge === b.messageAge && a.maxAge === b.maxAge && a.forwardDelay === b.forwardDelay && a.helloTime === b.helloTime;
}

function clampInt(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, Math.round(v)));
}

function sameBridgeAddress(a: bigint, b: bigint): boolean {
  return (a & MAC_MASK) === (b & MAC_MASK);
}

function isFiniteNumber(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/* ------------------------------------------------------------------------ */
/* The spanning tree                                                         */
/* ------------------------------------------------------------------------ */

/** One bridge-wide RSTP instance with per-port legacy STP fallback. */
export class SpanningTree {
  private readonly host: StpHost;
  private readonly bridgeMac: Buffer;
  private bridgePriority: number;
  private bridgeId: bigint;
  private readonly helloSeconds: number;
  private readonly maxAgeSeconds: number;
  private readonly forwardDelaySeconds: number;
  private readonly defaultPortCost: number;
  private readonly defaultAutoEdge: boolean;

  private enabled = false;
  private readonly ports = new Map<number, Port>();
  private readonly portOrder: number[] = [];
  private readonly config = new Map<number, PortConfig>();

  private rootPriority: PriorityVector;
  private rootTimes: Times;
  private prsInitialized = false;

  private lastNowMs: number | null = null;
  private secondBaseMs: number | null = null;

  private busy = false;
  private readonly deferred: Array<() => void> = [];
  private readonly outFrames: Array<{ port: number; frame: Buffer }> = [];
  private readonly flushQueue = new Set<number>();
  private topologyChangeCount = 0;
  private loggedRootId: bigint | null = null;
  /** Bumped on every state transition; tree-wide summaries are cached per generation. */
  private stateGeneration = 0;
  private summaryGeneration = -1;
  private summaryNotReady = false;
  private summaryUnsynced = 0;
  private summaryUnsyncedNonRoot = 0;
  private summaryRrWhileRunning = 0;

  constructor(host: StpHost, opts: StpOptions) {
    this.host = host;
    if (!opts || !Buffer.isBuffer(opts.bridgeMac) || opts.bridgeMac.length !== 6) {
      throw new TypeError('SpanningTree: bridgeMac must be a 6-byte Buffer');
    }
    this.bridgeMac = Buffer.from(opts.bridgeMac);
    if (this.bridgeMac[0]! & 1) this.log('warning: bridge MAC is a multicast address');
    this.bridgePriority = this.normalizeBridgePriority(opts.priority ?? DEFAULT_BRIDGE_PRIORITY);
    this.bridgeId = makeBridgeId(this.bridgePriority, this.bridgeMac);
    this.helloSeconds = this.normalizeTime('helloSeconds', opts.helloSeconds, DEFAULT_HELLO_SECONDS, MIN_HELLO_SECONDS, MAX_HELLO_SECONDS);
    this.maxAgeSeconds = this.normalizeTime('maxAgeSeconds', opts.maxAgeSeconds, DEFAULT_MAX_AGE_SECONDS, MIN_MAX_AGE_SECONDS, MAX_MAX_AGE_SECONDS);
    this.forwardDelaySeconds = this.normalizeTime(
      'forwardDelaySeconds', opts.forwardDelaySeconds, DEFAULT_FORWARD_DELAY_SECONDS, MIN_FORWARD_DELAY_SECONDS, MAX_FORWARD_DELAY_SECONDS);
    if (!(2 * (this.forwardDelaySeconds - 1) >= this.maxAgeSeconds && this.maxAgeSeconds >= 2 * (this.helloSeconds + 1))) {
      this.log(`warning: timers violate 2*(forwardDelay-1) >= maxAge >= 2*(hello+1) ` +
        `(hello ${this.helloSeconds}, maxAge ${this.maxAgeSeconds}, forwardDelay ${this.forwardDelaySeconds})`);
    }
    this.defaultPortCost = this.normalizeCost(opts.portCost ?? DEFAULT_PORT_COST);
    this.defaultAutoEdge = opts.autoEdge ?? true;
    this.rootPriority = this.bridgeVector();
    this.rootTimes = this.bridgeTimes();
  }

  /* ---------------------------- public API ------------------------------ */

  /** Turn spanning tree on: every port restarts discarding (edge ports forward at once). */
  enable(): void {
    if (this.busy) { this.deferred.push(() => this.enable()); return; }
    if (this.enabled) return;
    this.enabled = true;
    this.secondBaseMs = this.lastNowMs;
    this.rootPriority = this.bridgeVector();
    this.rootTimes = this.bridgeTimes();
    this.prsInitialized = false;
    for (const n of this.portOrder) {
      const p = this.newPort(n);
      this.ports.set(n, p);
    }
    this.loggedRootId = null;
    this.log(`spanning tree enabled, bridge id ${formatBridgeId(this.bridgeId)}`);
    this.run();
  }

  /** Turn spanning tree off: every port forwards and no BPDU is sent. */
  disable(): void {
    if (this.busy) { this.deferred.push(() => this.disable()); return; }
    if (!this.enabled) return;
    this.enabled = false;
    for (const n of this.portOrder) {
      if (this.ports.get(n)?.reportedState !== 'forwarding') this.callHost(() => this.host.setPortState(n, 'forwarding'));
    }
    this.ports.clear();
    this.outFrames.length = 0;
    this.flushQueue.clear();
    this.callHost(() => this.host.flush());
    this.log('spanning tree disabled, all ports forwarding');
  }

  /** Link up: a port starts discarding (unless edge or spanning tree is disabled). */
  addPort(port: number): void {
    if (this.busy) { this.deferred.push(() => this.addPort(port)); return; }
    if (!Number.isInteger(port) || port < 0) { this.log(`addPort: invalid port ${String(port)}`); return; }
    if (this.portOrder.includes(port)) return;
    if ((port & PORT_NUMBER_MASK) !== port || port === 0) {
      this.log(`warning: port ${port} does not fit a 12-bit 802.1D port number; identifier uses ${port & PORT_NUMBER_MASK}`);
    }
    this.portOrder.push(port);
    this.portOrder.sort((a, b) => a - b);
    if (!this.enabled) {
      this.callHost(() => this.host.setPortState(port, 'forwarding'));
      return;
    }
    const p = this.newPort(port);
    this.ports.set(port, p);
    this.run();
  }

  /** Link down: the port's information is withdrawn and roles are recomputed at once. */
  removePort(port: number): void {
    if (this.busy) { this.deferred.push(() => this.removePort(port)); return; }
    const idx = this.portOrder.indexOf(port);
    if (idx < 0) return;
    this.portOrder.splice(idx, 1);
    const p = this.ports.get(port);
    if (!p) return;
    if (this.enabled) {
      p.portEnabled = false;
      p.removing = true;
      this.run();
    }
    this.ports.delete(port);
    if (this.enabled) {
      for (const q of this.ports.values()) q.reselect = true;
      this.run();
    }
  }

  /** Mark a port as an edge port (802.1D AdminEdge): it forwards at once and never causes topology changes. */
  setEdge(port: number, edge: boolean): void {
    const cfg = this.portConfig(port);
    cfg.adminEdge = !!edge;
    const p = this.ports.get(port);
    if (!p) return;
    if (this.busy) { this.deferred.push(() => this.setEdge(port, edge)); return; }
    p.adminEdge = cfg.adminEdge;
    if (this.enabled) {
      // Re-evaluate Bridge Detection as at BEGIN so the change takes effect now.
      this.enterBdm(p, p.adminEdge ? 'EDGE' : 'NOT_EDGE');
      this.run();
    }
  }

  /** Enable or disable automatic edge detection (802.1D AutoEdge) on a port. */
  setAutoEdge(port: number, autoEdge: boolean): void {
    const cfg = this.portConfig(port);
    cfg.autoEdge = !!autoEdge;
    const p = this.ports.get(port);
    if (p) { p.autoEdge = cfg.autoEdge; this.runIfIdle(); }
  }

  /** Declare whether a port's link is point-to-point (default true); proposal/agreement needs it. */
  setPointToPoint(port: number, pointToPoint: boolean): void {
    const cfg = this.portConfig(port);
    cfg.pointToPoint = !!pointToPoint;
    const p = this.ports.get(port);
    if (p) { p.pointToPoint = cfg.pointToPoint; this.runIfIdle(); }
  }

  /** Set a port's path cost (1..200000000). */
  setPortCost(port: number, cost: number): void {
    const cfg = this.portConfig(port);
    cfg.cost = this.normalizeCost(cost);
    const p = this.ports.get(port);
    if (p && p.cost !== cfg.cost) {
      p.cost = cfg.cost;
      p.reselect = true;
      p.selected = false;
      this.runIfIdle();
    }
  }

  /** Set a port's priority (0..240, rounded down to a multiple of 16). */
  setPortPriority(port: number, prio: number): void {
    const cfg = this.portConfig(port);
    cfg.priority = this.normalizePortPriority(prio);
    const p = this.ports.get(port);
    const newId = makePortId(cfg.priority, port);
    if (p && p.portId !== newId) {
      p.portId = newId;
      p.reselect = true;
      p.selected = false;
      this.runIfIdle();
    }
  }

  /** Change the bridge priority at run time (rounded down to a multiple of 4096). */
  setBridgePriority(prio: number): void {
    const normalized = this.normalizeBridgePriority(prio);
    if (normalized === this.bridgePriority) return;
    this.bridgePriority = normalized;
    this.bridgeId = makeBridgeId(normalized, this.bridgeMac);
    for (const p of this.ports.values()) { p.reselect = true; p.selected = false; }
    this.runIfIdle();
  }

  /** Force protocol migration check (802.1D mcheck): the port tries RSTP again. */
  mcheck(port: number): void {
    const p = this.ports.get(port);
    if (p) { p.mcheck = true; this.runIfIdle(); }
  }

  /** Process a received BPDU frame; returns why it was rejected, never throws. */
  receiveBpdu(port: number, frame: Buffer): BpduRxResult {
    try {
      if (!this.enabled) return { ok: false, reason: 'spanning tree disabled' };
      const p = this.ports.get(port);
      if (!p || p.removing) return { ok: false, reason: `unknown port ${String(port)}` };
      const d = decodeBpdu(frame);
      if (!d.ok) return this.reject(p, d.reason);
      const b = d.bpdu;
      if (b.type === 'config' && b.messageAgeSeconds >= b.maxAgeSeconds) {
        return this.reject(p, `message age ${b.messageAgeSeconds}s is not below max age ${b.maxAgeSeconds}s`);
      }
      if (b.type !== 'tcn' && sameBridgeAddress(b.bridgeId, this.bridgeId) &&
          (b.portId & PORT_NUMBER_MASK) === (p.portId & PORT_NUMBER_MASK)) {
        return this.reject(p, 'own BPDU looped back to the sending port');
      }
      if (this.busy) {
        this.deferred.push(() => { this.deliver(port, b); });
        return { ok: true };
      }
      this.deliver(port, b);
      return { ok: true };
    } catch (e) {
      this.busy = false;
      const reason = `internal error: ${e instanceof Error ? e.message : String(e)}`;
      this.log(`receiveBpdu on port ${String(port)}: ${reason}`);
      return { ok: false, reason };
    }
  }

  /** Advance time; timers run in whole seconds however often this is called. */
  tick(nowMs: number): void {
    if (!isFiniteNumber(nowMs)) return;
    if (this.busy) { this.deferred.push(() => this.tick(nowMs)); return; }
    if (this.lastNowMs === null || this.secondBaseMs === null || nowMs < this.lastNowMs) {
      this.lastNowMs = nowMs;
      this.secondBaseMs = nowMs;
      return;
    }
    this.lastNowMs = nowMs;
    if (!this.enabled) { this.secondBaseMs = nowMs; return; }
    const maxCatchupMs = MAX_CATCHUP_SECONDS * MS_PER_SECOND;
    if (nowMs - this.secondBaseMs > maxCatchupMs) this.secondBaseMs = nowMs - maxCatchupMs;
    while (nowMs - this.secondBaseMs >= MS_PER_SECOND) {
      this.secondBaseMs += MS_PER_SECOND;
      try {
        this.oneSecond();
      } catch (e) {
        this.log(`tick: internal error: ${e instanceof Error ? e.message : String(e)}`);
      }
      this.run();
    }
  }

  /** True when the frame is addressed to 01:80:c2:00:00:00. */
  isBpdu(frame: Buffer): boolean {
    return isBpduFrame(frame);
  }

  /** True when the frame is addressed to 01:80:c2:00:00:00. */
  static isBpdu(frame: Buffer): boolean {
    return isBpduFrame(frame);
  }

  /** Snapshot of the bridge and every port, for consoles and tests. */
  status(): StpStatus {
    const ports: StpPortStatus[] = [];
    let rootPort: number | null = null;
    for (const n of this.portOrder) {
      const p = this.ports.get(n);
      if (!p) {
        ports.push({
          port: n, role: this.config.get(n)?.adminEdge ? 'edge' : 'designated', state: 'forwarding',
          edge: !!this.config.get(n)?.adminEdge, cost: this.config.get(n)?.cost ?? this.defaultPortCost,
          designatedBridge: formatBridgeId(this.bridgeId), protocol: 'rstp',
          portId: makePortId(this.config.get(n)?.priority ?? DEFAULT_PORT_PRIORITY, n).toString(16).padStart(4, '0'),
          designatedPort: makePortId(this.config.get(n)?.priority ?? DEFAULT_PORT_PRIORITY, n).toString(16).padStart(4, '0'),
          rxBpdus: 0, txBpdus: 0,
        });
        continue;
      }
      if (p.role === 'root') rootPort = n;
      ports.push({
        port: n,
        role: this.publicRole(p),
        state: this.stateOf(p),
        edge: p.operEdge,
        cost: p.cost,
        designatedBridge: formatBridgeId(p.portPriority.designatedBridgeId),
        protocol: p.sendRSTP ? 'rstp' : 'stp',
        portId: p.portId.toString(16).padStart(4, '0'),
        designatedPort: p.portPriority.designatedPortId.toString(16).padStart(4, '0'),
        rxBpdus: p.rxBpdus,
        txBpdus: p.txBpdus,
      });
    }
    const enabled = this.enabled;
    const rootId = enabled ? this.rootPriority.rootId : this.bridgeId;
    return {
      enabled,
      bridgeId: formatBridgeId(this.bridgeId),
      rootId: formatBridgeId(rootId),
      rootPort: enabled ? rootPort : null,
      rootPathCost: enabled ? this.rootPriority.rootPathCost : 0,
      isRoot: rootId === this.bridgeId,
      ports,
      topologyChangeCount: this.topologyChangeCount,
      topologyChange: enabled && [...this.ports.values()].some((p) => p.tcWhile !== 0),
      helloSeconds: this.helloSeconds,
      maxAgeSeconds: this.maxAgeSeconds,
      forwardDelaySeconds: this.forwardDelaySeconds,
    };
  }

  /* ---------------------------- plumbing -------------------------------- */

  private log(msg: string): void {
    try { this.host.log?.(`stp: ${msg}`); } catch { /* a broken logger must not break STP */ }
  }

  private callHost(fn: () => void): void {
    try { fn(); } catch (e) { this.log(`host callback failed: ${e instanceof Error ? e.message : String(e)}`); }
  }

  private reject(p: Port, reason: string): BpduRxResult {
    const now = this.lastNowMs ?? 0;
    if (now - p.lastRejectLogMs >= REJECT_LOG_INTERVAL_MS) {
      p.lastRejectLogMs = now;
      this.log(`port ${p.port}: BPDU rejected: ${reason}`);
    }
    return { ok: false, reason };
  }

  private runIfIdle(): void {
    if (!this.busy && this.enabled) this.run();
  }

  private deliver(port: number, b: Bpdu): void {
    const p = this.ports.get(port);
    if (!p || p.removing || !this.enabled) return;
    p.rxPending = b;
    p.rcvdBpdu = true;
    p.rxBpdus++;
    this.run();
  }

  private portConfig(port: number): PortConfig {
    let cfg = this.config.get(port);
    if (!cfg) {
      cfg = {
        adminEdge: false, autoEdge: this.defaultAutoEdge, pointToPoint: true,
        cost: this.defaultPortCost, priority: DEFAULT_PORT_PRIORITY,
      };
      this.config.set(port, cfg);
    }
    return cfg;
  }

  private normalizeBridgePriority(prio: number): number {
    let v = isFiniteNumber(prio) ? Math.trunc(prio) : DEFAULT_BRIDGE_PRIORITY;
    v = Math.min(0xffff, Math.max(0, v));
    const rounded = v - (v % BRIDGE_PRIORITY_STEP);
    if (rounded !== prio) this.log(`warning: bridge priority ${String(prio)} rounded down to ${rounded} (multiple of ${BRIDGE_PRIORITY_STEP})`);
    return rounded;
  }

  private normalizePortPriority(prio: number): number {
    let v = isFiniteNumber(prio) ? Math.trunc(prio) : DEFAULT_PORT_PRIORITY;
    v = Math.min(MAX_PORT_PRIORITY, Math.max(0, v));
    const rounded = v - (v % PORT_PRIORITY_STEP);
    if (rounded !== prio) this.log(`warning: port priority ${String(prio)} rounded down to ${rounded} (multiple of ${PORT_PRIORITY_STEP}, max ${MAX_PORT_PRIORITY})`);
    return rounded;
  }

  private normalizeCost(cost: number): number {
    const v = isFiniteNumber(cost) ? clampInt(cost, MIN_PORT_COST, MAX_PORT_COST) : DEFAULT_PORT_COST;
    if (v !== cost) this.log(`warning: port cost ${String(cost)} adjusted to ${v}`);
    return v;
  }

  private normalizeTime(name: string, value: number | undefined, def: number, lo: number, hi: number): number {
    if (value === undefined) return def;
    const v = isFiniteNumber(value) ? clampInt(value, lo, hi) : def;
    if (v !== value) this.log(`warning: ${name} ${String(value)} adjusted to ${v} (range ${lo}..${hi})`);
    return v;
  }

  private bridgeVector(): PriorityVector {
    return { rootId: this.bridgeId, rootPathCost: 0, designatedBridgeId: this.bridgeId, designatedPortId: 0, bridgePortId: 0 };
  }

  private bridgeTimes(): Times {
    return { messageAge: 0, maxAge: this.maxAgeSeconds, forwardDelay: this.forwardDelaySeconds, helloTime: this.helloSeconds };
  }

  /** BEGIN for one port: every per-port machine enters its initial state. */
  private newPort(n: number): Port {
    const cfg = this.portConfig(n);
    const p = new Port(n, cfg, this.bridgeVector(), { ...this.rootTimes, helloTime: this.helloSeconds });
    p.designatedPriority = { ...this.rootPriority, designatedBridgeId: this.bridgeId, designatedPortId: p.portId, bridgePortId: p.portId };
    this.enterPrxDiscard(p);
    this.enterPpm(p, 'CHECKING_RSTP');
    this.enterBdm(p, p.adminEdge ? 'EDGE' : 'NOT_EDGE');
    this.enterPtx(p, 'TRANSMIT_INIT');
    this.enterPim(p, 'DISABLED');
    this.enterPrt(p, 'INIT_PORT');
    this.enterPst(p, 'DISCARDING');
    this.enterTcm(p, 'INACTIVE', true);
    return p;
  }

  /** Run every state machine until none of them can take a transition, then talk to the host. */
  /** Record that a transition happened (cached summaries are stale); always true. */
  private touched(): boolean {
    this.stateGeneration++;
    return true;
  }

  private run(): void {
    if (this.busy) return;
    this.busy = true;
    this.stateGeneration++; // timers and settings may have changed since the last run
    try {
      if (this.enabled) {
        // Port Transmit only consumes the other machines' variables (newInfo, roles, flags), so it
        // runs once they have settled: one BPDU then carries every change made in this round.
        let iterations = 0;
        let transmitted = true;
        while (transmitted) {
          let changed = true;
          while (changed) {
            if (++iterations > MAX_RUN_ITERATIONS) throw new Error('state machines did not settle');
            changed = false;
            for (const p of this.ports.values()) {
              if (this.stepPrx(p)) changed = this.touched();
              if (this.stepPpm(p)) changed = this.touched();
              if (this.stepBdm(p)) changed = this.touched();
              if (this.stepPim(p)) changed = this.touched();
            }
            if (this.stepPrs()) changed = this.touched();
            for (const p of this.ports.values()) {
              if (this.stepPrt(p)) changed = this.touched();
              if (this.stepPst(p)) changed = this.touched();
              if (this.stepTcm(p)) changed = this.touched();
            }
          }
          transmitted = false;
          for (const p of this.ports.values()) {
            while (this.stepPtx(p)) {
              transmitted = true;
              if (++iterations > MAX_RUN_ITERATIONS) throw new Error('port transmit machine did not settle');
            }
          }
        }
      }
    } catch (e) {
      this.log(`internal error in state machines: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      try {
        this.publish();
      } finally {
        this.busy = false;
      }
    }
    while (this.deferred.length > 0 && !this.busy) {
      const next = this.deferred.shift()!;
      next();
    }
  }

  /** Apply port states (blocking first), then flushes, then queued BPDUs; log notable changes. */
  private publish(): void {
    if (this.enabled) {
      const order: PortState[] = ['discarding', 'learning', 'forwarding'];
      for (const want of order) {
        for (const p of this.ports.values()) {
          const st = this.stateOf(p);
          if (st !== want || st === p.reportedState || p.removing) continue;
          p.reportedState = st;
          this.callHost(() => this.host.setPortState(p.port, st));
        }
      }
    }
    if (this.flushQueue.size > 0) {
      const list = [...this.flushQueue];
      this.flushQueue.clear();
      for (const n of list) this.callHost(() => this.host.flush(n));
    }
    if (this.outFrames.length > 0) {
      const frames = this.outFrames.splice(0);
      for (const { port, frame } of frames) {
        const p = this.ports.get(port);
        if (!this.enabled || !p || p.removing) continue;
        this.callHost(() => this.host.sendFrame(port, frame));
      }
    }
    if (!this.enabled) return;
    if (this.loggedRootId !== this.rootPriority.rootId) {
      this.loggedRootId = this.rootPriority.rootId;
      if (this.rootPriority.rootId === this.bridgeId) this.log('this bridge is now the root');
      else {
        this.log(`new root ${formatBridgeId(this.rootPriority.rootId)}, root path cost ${this.rootPriority.rootPathCost}` +
          `, root port ${[...this.ports.values()].find((p) => p.role === 'root')?.port ?? '?'}`);
      }
    }
    for (const p of this.ports.values()) {
      if (p.removing) continue;
      const role = this.publicRole(p);
      if (role !== p.loggedRole) {
        if (p.loggedRole !== null) this.log(`port ${p.port}: role ${p.loggedRole} -> ${role}`);
        const from = p.loggedRole;
        p.loggedRole = role;
        const host = this.host;
        if (host.roleChanged) this.callHost(() => host.roleChanged!(p.port, from, role));
      }
      const proto = p.sendRSTP ? 'rstp' : 'stp';
      if (proto !== p.loggedProtocol) {
        this.log(`port ${p.port}: ${proto === 'stp' ? 'legacy STP peer detected, using Configuration/TCN BPDUs' : 'back to RSTP'}`);
        p.loggedProtocol = proto;
      }
    }
  }

  private stateOf(p: Port): PortState {
    if (!this.enabled) return 'forwarding';
    return p.forwarding ? 'forwarding' : p.learning ? 'learning' : 'discarding';
  }

  private publicRole(p: Port): PortRole {
    if (!this.enabled) return p.adminEdge ? 'edge' : 'designated';
    if (p.role === 'designated' && p.operEdge) return 'edge';
    return p.role;
  }

  /** 802.1D Port Timers machine: one-second decrement of every timer. */
  private oneSecond(): void {
    const dec = (v: number): number => (v > 0 ? v - 1 : 0);
    for (const p of this.ports.values()) {
      p.helloWhen = dec(p.helloWhen);
      p.mdelayWhile = dec(p.mdelayWhile);
      p.edgeDelayWhile = dec(p.edgeDelayWhile);
      p.txCount = dec(p.txCount);
      p.fdWhile = dec(p.fdWhile);
      p.rrWhile = dec(p.rrWhile);
      p.rbWhile = dec(p.rbWhile);
      p.tcWhile = dec(p.tcWhile);
      p.rcvdInfoWhile = dec(p.rcvdInfoWhile);
    }
  }

  /* --------------------------- derived values --------------------------- */

  private helloTimeOf(p: Port): number { return p.designatedTimes.helloTime; }
  private fwdDelayOf(p: Port): number { return p.designatedTimes.forwardDelay; }
  private maxAgeOf(p: Port): number { return p.designatedTimes.maxAge; }
  /** 17.20.5 forwardDelay: HelloTime when talking RSTP, Forward Delay otherwise. */
  private forwardDelayOf(p: Port): number { return p.sendRSTP ? this.helloTimeOf(p) : this.fwdDelayOf(p); }
  private edgeDelayOf(p: Port): number { return p.pointToPoint ? MIGRATE_TIME_SECONDS : this.maxAgeOf(p); }

  /**
   * Tree-wide facts behind allSynced and reRooted, recomputed only after a transition: every
   * variable they read changes only inside a transition or outside run(), so the cache is
   * never stale when consulted, and large bridges avoid a quadratic scan per step.
   */
  private summary(): void {
    if (this.summaryGeneration === this.stateGeneration) return;
    this.summaryGeneration = this.stateGeneration;
    let notReady = false;
    let unsynced = 0;
    let unsyncedNonRoot = 0;
    let rrRunning = 0;
    for (const q of this.ports.values()) {
      if (!q.selected || q.role !== q.selectedRole || q.updtInfo) notReady = true;
      if (!q.synced) {
        unsynced++;
        if (q.role !== 'root') unsyncedNonRoot++;
      }
      if (q.rrWhile !== 0) rrRunning++;
    }
    this.summaryNotReady = notReady;
    this.summaryUnsynced = unsynced;
    this.summaryUnsyncedNonRoot = unsyncedNonRoot;
    this.summaryRrWhileRunning = rrRunning;
  }

  /** 802.1Q-2011 13.25.1 allSynced (the 802.1D-2004 definition refined). */
  private allSynced(p: Port): boolean {
    this.summary();
    if (this.summaryNotReady) return false;
    if (p.role === 'root' || p.role === 'alternate') return this.summaryUnsyncedNonRoot === 0;
    if (p.role === 'designated') return this.summaryUnsynced - (p.synced ? 0 : 1) === 0;
    return false;
  }

  /** 17.20.10 reRooted: no port other than p still has rrWhile running. */
  private reRooted(p: Port): boolean {
    this.summary();
    return this.summaryRrWhileRunning - (p.rrWhile !== 0 ? 1 : 0) === 0;
  }

  /* ------------------------- Port Receive (17.23) ------------------------ */

  private enterPrxDiscard(p: Port): void {
    p.prx = 'DISCARD';
    p.rcvdBpdu = p.rcvdRSTP = p.rcvdSTP = false;
    p.rcvdMsg = false;
    p.edgeDelayWhile = MIGRATE_TIME_SECONDS;
  }

  private stepPrx(p: Port): boolean {
    if ((p.rcvdBpdu || p.edgeDelayWhile !== MIGRATE_TIME_SECONDS) && !p.portEnabled) {
      this.enterPrxDiscard(p);
      return true;
    }
    if ((p.prx === 'DISCARD' && p.rcvdBpdu && p.portEnabled) ||
        (p.prx === 'RECEIVE' && p.rcvdBpdu && p.portEnabled && !p.rcvdMsg)) {
      p.prx = 'RECEIVE';
      const b = p.rxPending;
      p.rcvdBpduData = b;
      // updtBPDUVersion()
      if (b && b.type === 'rst') p.rcvdRSTP = true; else p.rcvdSTP = true;
      p.operEdge = false;
      p.rcvdBpdu = false;
      p.rcvdMsg = b !== null;
      p.edgeDelayWhile = MIGRATE_TIME_SECONDS;
      return true;
    }
    return false;
  }

  /* --------------------- Port Protocol Migration (17.24) ----------------- */

  private enterPpm(p: Port, s: PpmState): void {
    p.ppm = s;
    if (s === 'CHECKING_RSTP') {
      p.mcheck = false;
      p.sendRSTP = true; // rstpVersion: this implementation always runs ForceProtocolVersion 2
      p.mdelayWhile = MIGRATE_TIME_SECONDS;
    } else if (s === 'SELECTING_STP') {
      p.sendRSTP = false;
      p.mdelayWhile = MIGRATE_TIME_SECONDS;
    } else {
      p.rcvdRSTP = p.rcvdSTP = false;
    }
  }

  private stepPpm(p: Port): boolean {
    switch (p.ppm) {
      case 'CHECKING_RSTP':
        if (p.mdelayWhile !== MIGRATE_TIME_SECONDS && !p.portEnabled) { this.enterPpm(p, 'CHECKING_RSTP'); return true; }
        if (p.mdelayWhile === 0) { this.enterPpm(p, 'SENSING'); return true; }
        return false;
      case 'SELECTING_STP':
        if (p.mdelayWhile === 0 || !p.portEnabled || p.mcheck) { this.enterPpm(p, 'SENSING'); return true; }
        return false;
      case 'SENSING':
        if (!p.portEnabled || p.mcheck || (!p.sendRSTP && p.rcvdRSTP)) { this.enterPpm(p, 'CHECKING_RSTP'); return true; }
        if (p.sendRSTP && p.rcvdSTP) { this.enterPpm(p, 'SELECTING_STP'); return true; }
        return false;
    }
  }

  /* ------------------------ Bridge Detection (17.25) --------------------- */

  private enterBdm(p: Port, s: BdmState): void {
    p.bdm = s;
    p.operEdge = s === 'EDGE';
  }

  private stepBdm(p: Port): boolean {
    if (p.bdm === 'EDGE') {
      if ((!p.portEnabled && !p.adminEdge) || !p.operEdge) { this.enterBdm(p, 'NOT_EDGE'); return true; }
      return false;
    }
    if ((!p.portEnabled && p.adminEdge) ||
        (p.edgeDelayWhile === 0 && p.autoEdge && p.sendRSTP && p.proposing)) {
      this.enterBdm(p, 'EDGE');
      return true;
    }
    return false;
  }

  /* ------------------------- Port Transmit (17.26) ----------------------- */

  private enterPtx(p: Port, s: PtxState): void {
    p.ptx = s;
    switch (s) {
      case 'TRANSMIT_INIT':
        p.newInfo = true;
        p.txCount = 0;
        break;
      case 'TRANSMIT_PERIODIC':
        p.newInfo = p.newInfo || p.role === 'designated' || (p.role === 'root' && p.tcWhile !== 0);
        break;
      case 'TRANSMIT_CONFIG':
        p.newInfo = false;
        this.txConfig(p);
        p.txCount++;
        p.tcAck = false;
        break;
      case 'TRANSMIT_TCN':
        p.newInfo = false;
        this.txTcn(p);
        p.txCount++;
        break;
      case 'TRANSMIT_RSTP':
        p.newInfo = false;
        this.txRstp(p);
        p.txCount++;
        p.tcAck = false;
        break;
      case 'IDLE':
        p.helloWhen = this.helloTimeOf(p);
        break;
    }
  }

  private stepPtx(p: Port): boolean {
    if (!p.portEnabled) {
      if (p.ptx !== 'TRANSMIT_INIT' || !p.newInfo || p.txCount !== 0) { this.enterPtx(p, 'TRANSMIT_INIT'); return true; }
      return false;
    }
    if (p.ptx !== 'IDLE') { this.enterPtx(p, 'IDLE'); return true; }
    if (!p.selected || p.updtInfo) return false; // allTransmitReady
    if (p.helloWhen === 0) { this.enterPtx(p, 'TRANSMIT_PERIODIC'); return true; }
    if (p.txCount >= TX_HOLD_COUNT_BPDUS || !p.newInfo) return false;
    // Deviation: hold newInfo while the role is still Disabled instead of dropping the BPDU.
    if (p.role === 'disabled') return false;
    if (p.sendRSTP) { this.enterPtx(p, 'TRANSMIT_RSTP'); return true; }
    if (p.role === 'designated') { this.enterPtx(p, 'TRANSMIT_CONFIG'); return true; }
    // Deviation: a legacy root port only sends a TCN while it has a topology change to report.
    if (p.role === 'root' && p.tcWhile !== 0) { this.enterPtx(p, 'TRANSMIT_TCN'); return true; }
    return false;
  }

  private queueBpdu(p: Port, b: Bpdu): void {
    if (p.removing || !p.portEnabled) return;
    p.txBpdus++;
    this.outFrames.push({ port: p.port, frame: encodeBpdu(b, this.bridgeMac) });
  }

  private txConfig(p: Port): void {
    if (p.role === 'disabled') return;
    const d = p.designatedPriority;
    const t = p.designatedTimes;
    this.queueBpdu(p, {
      type: 'config', version: PROTOCOL_VERSION_STP,
      flags: (p.tcWhile !== 0 ? FLAG_TC : 0) | (p.tcAck ? FLAG_TC_ACK : 0),
      rootId: d.rootId, rootPathCost: d.rootPathCost, bridgeId: d.designatedBridgeId, portId: d.designatedPortId,
      messageAgeSeconds: t.messageAge, maxAgeSeconds: t.maxAge, helloSeconds: t.helloTime, forwardDelaySeconds: t.forwardDelay,
    });
  }

  private txTcn(p: Port): void {
    if (p.role === 'disabled') return;
    this.queueBpdu(p, {
      type: 'tcn', version: PROTOCOL_VERSION_STP, flags: 0, rootId: 0n, rootPathCost: 0, bridgeId: 0n, portId: 0,
      messageAgeSeconds: 0, maxAgeSeconds: 0, helloSeconds: 0, forwardDelaySeconds: 0,
    });
  }

  private txRstp(p: Port): void {
    if (p.role === 'disabled') return;
    const d = p.designatedPriority;
    const t = p.designatedTimes;
    const roleCode = p.role === 'root' ? ENCODED_ROLE_ROOT : p.role === 'designated' ? ENCODED_ROLE_DESIGNATED : ENCODED_ROLE_ALTERNATE_BACKUP;
    let flags = roleCode << 2;
    if (p.tcWhile !== 0) flags |= FLAG_TC;
    if (p.proposing) flags |= FLAG_PROPOSAL;
    if (p.learning) flags |= FLAG_LEARNING;
    if (p.forwarding) flags |= FLAG_FORWARDING;
    if (p.agree) flags |= FLAG_AGREEMENT;
    this.queueBpdu(p, {
      type: 'rst', version: PROTOCOL_VERSION_RSTP, flags,
      rootId: d.rootId, rootPathCost: d.rootPathCost, bridgeId: d.designatedBridgeId, portId: d.designatedPortId,
      messageAgeSeconds: t.messageAge, maxAgeSeconds: t.maxAge, helloSeconds: t.helloTime, forwardDelaySeconds: t.forwardDelay,
    });
  }

  /* ------------------------ Port Information (17.27) --------------------- */

  private betterOrSameInfo(p: Port, newInfoIs: InfoIs): boolean {
    if (newInfoIs === 'received' && p.infoIs === 'received') return cmpVector(p.msgPriority, p.portPriority) <= 0;
    if (newInfoIs === 'mine' && p.infoIs === 'mine') return cmpVector(p.designatedPriority, p.portPriority) <= 0;
    return false;
  }

  /** Flags that carry meaning for the BPDU's type (Configuration BPDUs only define TC and TC Ack). */
  private msgFlags(p: Port): number {
    const b = p.rcvdBpduData;
    if (!b) return 0;
    return b.type === 'config' ? b.flags & (FLAG_TC | FLAG_TC_ACK) : b.type === 'rst' ? b.flags : 0;
  }

  private rcvInfo(p: Port): RcvdInfo {
    const b = p.rcvdBpduData;
    if (!b) return 'other';
    if (b.type === 'tcn') {
      p.rcvdTcn = true; // setTcFlags() for a TCN BPDU
      return 'other';
    }
    let designated: boolean;
    if (b.type === 'config') designated = true;
    else {
      const roleCode = (b.flags & FLAG_ROLE_MASK) >> 2;
      // An Unknown role is treated as Designated, as if the BPDU were a Configuration BPDU (802.1D 9.2.9).
      designated = roleCode === ENCODED_ROLE_DESIGNATED || roleCode === ENCODED_ROLE_UNKNOWN;
    }
    p.msgPriority = {
      rootId: b.rootId, rootPathCost: b.rootPathCost, designatedBridgeId: b.bridgeId,
      designatedPortId: b.portId, bridgePortId: b.portId,
    };
    p.msgTimes = {
      messageAge: clampInt(b.messageAgeSeconds, 0, 0xff),
      maxAge: clampInt(b.maxAgeSeconds, MIN_MAX_AGE_SECONDS, MAX_MAX_AGE_SECONDS),
      forwardDelay: clampInt(b.forwardDelaySeconds, MIN_FORWARD_DELAY_SECONDS, MAX_FORWARD_DELAY_SECONDS),
      helloTime: clampInt(b.helloSeconds, MIN_HELLO_SECONDS, MAX_HELLO_SECONDS),
    };
    const c = cmpVector(p.msgPriority, p.portPriority);
    if (designated) {
      const sameSender = sameBridgeAddress(p.msgPriority.designatedBridgeId, p.portPriority.designatedBridgeId) &&
        (p.msgPriority.designatedPortId & PORT_NUMBER_MASK) === (p.portPriority.designatedPortId & PORT_NUMBER_MASK);
      if (c < 0 || sameSender) return 'superiorDesignated';
      const same = c === 0 && sameTimes(p.msgTimes, p.portTimes);
      if (!same && c <= 0) return 'superiorDesignated';
      if (same && p.infoIs === 'received') return 'repeatedDesignated';
      return 'inferiorDesignated';
    }
    if (c >= 0) return 'inferiorRootAlternate';
    return 'other';
  }

  /**
   * Deviation (count-to-infinity mitigation): every BPDU a bridge sends carries the same root
   * identifier, root path cost and times, whichever of its ports sends it. So when bridge X tells
   * port p something new, information from X still held by our other ports is stale; it is
   * updated as the SUPERIOR_DESIGNATED state would do once X's next BPDU arrives there. Without
   * this, a port holding X's old "root R via me" claim could be chosen as the new root port
   * right after X lost R, which starts count-to-infinity and its transient forwarding loops.
   */
  private refreshSiblingInfo(p: Port): void {
    const b = p.rcvdBpduData;
    if (!b || b.type === 'tcn' || sameBridgeAddress(b.bridgeId, this.bridgeId)) return;
    for (const q of this.ports.values()) {
      if (q === p || q.infoIs !== 'received' || q.portPriority.designatedBridgeId !== b.bridgeId) continue;
      const old = q.portPriority;
      if (old.rootId === p.msgPriority.rootId && old.rootPathCost === p.msgPriority.rootPathCost &&
          sameTimes({ ...p.msgTimes, helloTime: q.portTimes.helloTime }, q.portTimes)) continue;
      const updated: PriorityVector = { ...old, rootId: p.msgPriority.rootId, rootPathCost: p.msgPriority.rootPathCost };
      q.agreed = q.proposing = false;
      q.agree = q.agree && cmpVector(updated, old) <= 0;
      q.synced = false;
      q.portPriority = updated;
      q.portTimes = { ...p.msgTimes, helloTime: q.portTimes.helloTime };
      q.reselect = true;
      q.selected = false;
    }
  }

  private recordProposal(p: Port): void {
    if (this.msgFlags(p) & FLAG_PROPOSAL) p.proposed = true;
  }

  private recordAgreement(p: Port): void {
    if (p.pointToPoint && (this.msgFlags(p) & FLAG_AGREEMENT)) {
      p.agreed = true;
      p.proposing = false;
    } else {
      p.agreed = false;
    }
  }

  private recordDispute(p: Port): void {
    if (this.msgFlags(p) & FLAG_LEARNING) {
      p.disputed = true;
      p.agreed = false;
    }
  }

  private setTcFlags(p: Port): void {
    const f = this.msgFlags(p);
    if (f & FLAG_TC) p.rcvdTc = true;
    if (f & FLAG_TC_ACK) p.rcvdTcAck = true;
  }

  private recordTimes(p: Port): void {
    p.portTimes = { ...p.msgTimes, helloTime: Math.max(MIN_HELLO_SECONDS, p.msgTimes.helloTime) };
  }

  private updtRcvdInfoWhile(p: Port): void {
    const t = p.portTimes;
    p.rcvdInfoWhile = t.messageAge + 1 <= t.maxAge ? 3 * t.helloTime : 0;
  }

  private enterPim(p: Port, s: PimState): void {
    p.pim = s;
    switch (s) {
      case 'DISABLED':
        p.rcvdMsg = false;
        p.proposing = p.proposed = p.agree = p.agreed = false;
        p.rcvdInfoWhile = 0;
        p.infoIs = 'disabled';
        p.reselect = true;
        p.selected = false;
        break;
      case 'AGED':
        p.infoIs = 'aged';
        p.reselect = true;
        p.selected = false;
        break;
      case 'UPDATE':
        p.proposing = p.proposed = false;
        p.agreed = p.agreed && this.betterOrSameInfo(p, 'mine');
        p.synced = p.synced && p.agreed;
        p.portPriority = { ...p.designatedPriority };
        p.portTimes = { ...p.designatedTimes };
        p.updtInfo = false;
        p.infoIs = 'mine';
        p.newInfo = true;
        break;
      case 'CURRENT':
        break;
      case 'RECEIVE':
        p.rcvdInfo = this.rcvInfo(p);
        this.refreshSiblingInfo(p);
        break;
      case 'SUPERIOR_DESIGNATED':
        p.agreed = p.proposing = false;
        this.recordProposal(p);
        this.setTcFlags(p);
        p.agree = p.agree && this.betterOrSameInfo(p, 'received');
        this.recordAgreement(p);
        p.synced = p.synced && p.agreed;
        p.portPriority = { ...p.msgPriority };
        this.recordTimes(p);
        this.updtRcvdInfoWhile(p);
        p.infoIs = 'received';
        p.reselect = true;
        p.selected = false;
        p.rcvdMsg = false;
        break;
      case 'REPEATED_DESIGNATED':
        this.recordProposal(p);
        this.setTcFlags(p);
        this.recordAgreement(p);
        this.updtRcvdInfoWhile(p);
        p.rcvdMsg = false;
        break;
      case 'INFERIOR_DESIGNATED':
        this.recordDispute(p);
        p.rcvdMsg = false;
        break;
      case 'NOT_DESIGNATED':
        this.recordAgreement(p);
        this.setTcFlags(p);
        p.rcvdMsg = false;
        break;
      case 'OTHER':
        p.rcvdMsg = false;
        break;
    }
  }

  private stepPim(p: Port): boolean {
    if (!p.portEnabled && p.infoIs !== 'disabled') { this.enterPim(p, 'DISABLED'); return true; }
    switch (p.pim) {
      case 'DISABLED':
        if (p.portEnabled) { this.enterPim(p, 'AGED'); return true; }
        if (p.rcvdMsg) { this.enterPim(p, 'DISABLED'); return true; }
        return false;
      case 'AGED':
        if (p.selected && p.updtInfo) { this.enterPim(p, 'UPDATE'); return true; }
        return false;
      case 'UPDATE':
      case 'SUPERIOR_DESIGNATED':
      case 'REPEATED_DESIGNATED':
      case 'INFERIOR_DESIGNATED':
      case 'NOT_DESIGNATED':
      case 'OTHER':
        this.enterPim(p, 'CURRENT');
        return true;
      case 'CURRENT':
        if (p.rcvdMsg && !p.updtInfo) { this.enterPim(p, 'RECEIVE'); return true; }
        if (p.infoIs === 'received' && p.rcvdInfoWhile === 0 && !p.updtInfo && !p.rcvdMsg) {
          this.log(`port ${p.port}: information from ${formatBridgeId(p.portPriority.designatedBridgeId)} aged out`);
          this.enterPim(p, 'AGED');
          return true;
        }
        if (p.selected && p.updtInfo) { this.enterPim(p, 'UPDATE'); return true; }
        return false;
      case 'RECEIVE':
        switch (p.rcvdInfo) {
          case 'superiorDesignated': this.enterPim(p, 'SUPERIOR_DESIGNATED'); break;
          case 'repeatedDesignated': this.enterPim(p, 'REPEATED_DESIGNATED'); break;
          case 'inferiorDesignated': this.enterPim(p, 'INFERIOR_DESIGNATED'); break;
          case 'inferiorRootAlternate': this.enterPim(p, 'NOT_DESIGNATED'); break;
          case 'other': this.enterPim(p, 'OTHER'); break;
        }
        return true;
    }
  }

  /* ---------------------- Port Role Selection (17.28) -------------------- */

  private stepPrs(): boolean {
    if (!this.prsInitialized) {
      // INIT_BRIDGE: updtRoleDisabledTree()
      for (const p of this.ports.values()) p.selectedRole = 'disabled';
      this.prsInitialized = true;
      this.roleSelection();
      return true;
    }
    for (const p of this.ports.values()) {
      if (p.reselect) { this.roleSelection(); return true; }
    }
    return false;
  }

  private roleSelection(): void {
    for (const p of this.ports.values()) p.reselect = false; // clearReselectTree()
    this.updtRolesTree();
    for (const p of this.ports.values()) p.selected = true; // setSelectedTree()
  }

  private updtRolesTree(): void {
    let root = this.bridgeVector();
    let rootPortId = 0;
    let rootPort: Port | null = null;
    for (const p of this.ports.values()) {
      if (p.infoIs !== 'received') continue;
      if (sameBridgeAddress(p.portPriority.designatedBridgeId, this.bridgeId)) continue;
      const rpv: PriorityVector = {
        ...p.portPriority,
        rootPathCost: Math.min(MAX_PATH_COST, p.portPriority.rootPathCost + p.cost),
        bridgePortId: p.portId,
      };
      const c = cmpVector(rpv, root);
      if (c < 0 || (c === 0 && p.portId <= rootPortId)) {
        root = rpv;
        rootPortId = p.portId;
        rootPort = p;
      }
    }
    this.rootPriority = root;
    this.rootTimes = rootPort
      ? { ...rootPort.portTimes, messageAge: rootPort.portTimes.messageAge + 1 }
      : this.bridgeTimes();
    for (const p of this.ports.values()) {
      p.designatedPriority = {
        rootId: root.rootId, rootPathCost: root.rootPathCost, designatedBridgeId: this.bridgeId,
        designatedPortId: p.portId, bridgePortId: p.portId,
      };
      p.designatedTimes = { ...this.rootTimes, helloTime: this.helloSeconds };
    }
    for (const p of this.ports.values()) {
      switch (p.infoIs) {
        case 'disabled':
          p.selectedRole = 'disabled';
          break;
        case 'aged':
          p.selectedRole = 'designated';
          p.updtInfo = true;
          break;
        case 'mine':
          p.selectedRole = 'designated';
          if (cmpVector(p.portPriority, p.designatedPriority) !== 0 || !sameTimes(p.portTimes, p.designatedTimes)) {
            p.updtInfo = true;
          }
          break;
        case 'received':
          if (p === rootPort) {
            p.selectedRole = 'root';
            p.updtInfo = false;
          } else if (cmpVector(p.portPriority, p.designatedPriority) <= 0) {
            p.selectedRole = sameBridgeAddress(p.portPriority.designatedBridgeId, this.bridgeId) ? 'backup' : 'alternate';
            p.updtInfo = false;
          } else {
            p.selectedRole = 'designated';
            p.updtInfo = true;
          }
          break;
      }
    }
  }

  /* ---------------------- Port Role Transitions (17.29) ------------------ */

  private enterPrt(p: Port, s: PrtState): void {
    p.prt = s;
    switch (s) {
      case 'INIT_PORT':
        p.role = 'disabled';
        p.learn = p.forward = false;
        p.synced = false;
        p.sync = p.reRoot = true;
        p.rrWhile = this.fwdDelayOf(p);
        p.fdWhile = this.maxAgeOf(p);
        p.rbWhile = 0;
        break;
      case 'DISABLE_PORT':
        // As mstpd: role becomes Disabled (not selectedRole) so a later role change is always seen.
        p.role = 'disabled';
        p.learn = p.forward = false;
        break;
      case 'DISABLED_PORT':
        p.fdWhile = this.maxAgeOf(p);
        p.synced = true;
        p.rrWhile = 0;
        p.sync = p.reRoot = false;
        break;
      case 'ROOT_PROPOSED':
        for (const q of this.ports.values()) q.sync = true; // setSyncTree()
        p.proposed = false;
        break;
      case 'ROOT_AGREED':
        p.proposed = p.sync = false;
        p.agree = true;
        p.newInfo = true;
        break;
      case 'ROOT_SYNCED':
        p.synced = true;
        p.sync = false;
        break;
      case 'REROOT':
        for (const q of this.ports.values()) q.reRoot = true; // setReRootTree()
        break;
      case 'ROOT_FORWARD':
        p.fdWhile = 0;
        p.forward = true;
        break;
      case 'ROOT_LEARN':
        p.fdWhile = this.forwardDelayOf(p);
        p.learn = true;
        break;
      case 'REROOTED':
        p.reRoot = false;
        break;
      case 'ROOT_PORT':
        p.role = 'root';
        p.rrWhile = this.fwdDelayOf(p);
        break;
      case 'DESIGNATED_PROPOSE':
        p.proposing = true;
        p.edgeDelayWhile = this.edgeDelayOf(p);
        p.newInfo = true;
        break;
      case 'DESIGNATED_AGREED':
        p.proposed = p.sync = false;
        p.agree = true;
        p.newInfo = true;
        break;
      case 'DESIGNATED_SYNCED':
        p.rrWhile = 0;
        p.synced = true;
        p.sync = false;
        break;
      case 'DESIGNATED_RETIRED':
        p.reRoot = false;
        break;
      case 'DESIGNATED_FORWARD':
        p.forward = true;
        p.fdWhile = 0;
        p.agreed = p.sendRSTP;
        break;
      case 'DESIGNATED_LEARN':
        p.learn = true;
        p.fdWhile = this.forwardDelayOf(p);
        break;
      case 'DESIGNATED_DISCARD':
        p.learn = p.forward = p.disputed = false;
        p.fdWhile = this.forwardDelayOf(p);
        break;
      case 'DESIGNATED_PORT':
        p.role = 'designated';
        break;
      case 'BLOCK_PORT':
        p.role = p.selectedRole;
        p.learn = p.forward = false;
        break;
      case 'BACKUP_PORT':
        p.rbWhile = 2 * this.helloTimeOf(p);
        break;
      case 'ALTERNATE_PROPOSED':
        for (const q of this.ports.values()) q.sync = true; // setSyncTree()
        p.proposed = false;
        break;
      case 'ALTERNATE_AGREED':
        p.proposed = false;
        p.agree = true;
        p.newInfo = true;
        break;
      case 'ALTERNATE_PORT':
        p.fdWhile = this.forwardDelayOf(p);
        p.synced = true;
        p.rrWhile = 0;
        p.sync = p.reRoot = false;
        break;
    }
  }

  private stepPrt(p: Port): boolean {
    const ready = p.selected && !p.updtInfo;
    if (ready && p.role !== p.selectedRole) {
      switch (p.selectedRole) {
        case 'disabled': this.enterPrt(p, 'DISABLE_PORT'); break;
        case 'root': this.enterPrt(p, 'ROOT_PORT'); break;
        case 'designated': this.enterPrt(p, 'DESIGNATED_PORT'); break;
        case 'alternate':
        case 'backup': this.enterPrt(p, 'BLOCK_PORT'); break;
      }
      return true;
    }
    switch (p.prt) {
      case 'INIT_PORT':
        this.enterPrt(p, 'DISABLE_PORT');
        return true;
      case 'DISABLE_PORT':
        if (ready && !p.learning && !p.forwarding) { this.enterPrt(p, 'DISABLED_PORT'); return true; }
        return false;
      case 'DISABLED_PORT':
        if (ready && (p.fdWhile !== this.maxAgeOf(p) || p.sync || p.reRoot || !p.synced)) {
          this.enterPrt(p, 'DISABLED_PORT');
          return true;
        }
        return false;
      case 'ROOT_PROPOSED':
      case 'ROOT_AGREED':
      case 'ROOT_SYNCED':
      case 'REROOT':
      case 'ROOT_FORWARD':
      case 'ROOT_LEARN':
      case 'REROOTED':
        this.enterPrt(p, 'ROOT_PORT');
        return true;
      case 'ROOT_PORT': {
        if (!ready) return false;
        if (!p.forward && !p.reRoot) { this.enterPrt(p, 'REROOT'); return true; }
        if ((p.agreed && !p.synced) || (p.sync && p.synced)) { this.enterPrt(p, 'ROOT_SYNCED'); return true; }
        if ((!p.agree && this.allSynced(p)) || (p.proposed && p.agree)) { this.enterPrt(p, 'ROOT_AGREED'); return true; }
        if (p.proposed && !p.agree) { this.enterPrt(p, 'ROOT_PROPOSED'); return true; }
        // Only a port that is not yet forwarding can advance (reRooted scans the tree, so skip it otherwise).
        const canAdvance = (!p.learn || !p.forward) && (p.fdWhile === 0 || (p.rbWhile === 0 && this.reRooted(p)));
        if (canAdvance && !p.learn) { this.enterPrt(p, 'ROOT_LEARN'); return true; }
        if (canAdvance && p.learn && !p.forward) { this.enterPrt(p, 'ROOT_FORWARD'); return true; }
        if (p.reRoot && p.forward) { this.enterPrt(p, 'REROOTED'); return true; }
        if (p.rrWhile !== this.fwdDelayOf(p)) { this.enterPrt(p, 'ROOT_PORT'); return true; }
        return false;
      }
      case 'DESIGNATED_PROPOSE':
      case 'DESIGNATED_AGREED':
      case 'DESIGNATED_SYNCED':
      case 'DESIGNATED_RETIRED':
      case 'DESIGNATED_FORWARD':
      case 'DESIGNATED_LEARN':
      case 'DESIGNATED_DISCARD':
        this.enterPrt(p, 'DESIGNATED_PORT');
        return true;
      case 'DESIGNATED_PORT': {
        if (!ready) return false;
        if (p.reRoot && p.rrWhile === 0) { this.enterPrt(p, 'DESIGNATED_RETIRED'); return true; }
        if ((!p.learning && !p.forwarding && !p.synced) || (p.agreed && !p.synced) ||
            (p.operEdge && !p.synced) || (p.sync && p.synced)) {
          this.enterPrt(p, 'DESIGNATED_SYNCED');
          return true;
        }
        if ((p.proposed || !p.agree) && this.allSynced(p)) { this.enterPrt(p, 'DESIGNATED_AGREED'); return true; }
        if (!p.forward && !p.agreed && !p.proposing && !p.operEdge) { this.enterPrt(p, 'DESIGNATED_PROPOSE'); return true; }
        const canAdvance = (p.fdWhile === 0 || p.agreed || p.operEdge) && (p.rrWhile === 0 || !p.reRoot) && !p.sync;
        if (canAdvance && !p.learn) { this.enterPrt(p, 'DESIGNATED_LEARN'); return true; }
        if (canAdvance && p.learn && !p.forward) { this.enterPrt(p, 'DESIGNATED_FORWARD'); return true; }
        if (((p.sync && !p.synced) || (p.reRoot && p.rrWhile !== 0) || p.disputed) && !p.operEdge && (p.learn || p.forward)) {
          this.enterPrt(p, 'DESIGNATED_DISCARD');
          return true;
        }
        return false;
      }
      case 'BLOCK_PORT':
        if (ready && !p.learning && !p.forwarding) { this.enterPrt(p, 'ALTERNATE_PORT'); return true; }
        return false;
      case 'BACKUP_PORT':
      case 'ALTERNATE_PROPOSED':
      case 'ALTERNATE_AGREED':
        this.enterPrt(p, 'ALTERNATE_PORT');
        return true;
      case 'ALTERNATE_PORT':
        if (!ready) return false;
        if ((!p.agree && this.allSynced(p)) || (p.proposed && p.agree)) { this.enterPrt(p, 'ALTERNATE_AGREED'); return true; }
        if (p.proposed && !p.agree) { this.enterPrt(p, 'ALTERNATE_PROPOSED'); return true; }
        if (p.rbWhile !== 2 * this.helloTimeOf(p) && p.role === 'backup') { this.enterPrt(p, 'BACKUP_PORT'); return true; }
        if (p.fdWhile !== this.forwardDelayOf(p) || p.sync || p.reRoot || !p.synced) { this.enterPrt(p, 'ALTERNATE_PORT'); return true; }
        return false;
    }
  }

  /* ---------------------- Port State Transition (17.30) ------------------ */

  private enterPst(p: Port, s: PstState): void {
    p.pst = s;
    p.learning = s !== 'DISCARDING';
    p.forwarding = s === 'FORWARDING';
  }

  private stepPst(p: Port): boolean {
    switch (p.pst) {
      case 'DISCARDING':
        if (p.learn) { this.enterPst(p, 'LEARNING'); return true; }
        return false;
      case 'LEARNING':
        if (!p.learn) { this.enterPst(p, 'DISCARDING'); return true; }
        if (p.forward) { this.enterPst(p, 'FORWARDING'); return true; }
        return false;
      case 'FORWARDING':
        if (!p.forward) { this.enterPst(p, 'DISCARDING'); return true; }
        return false;
    }
  }

  /* ------------------------ Topology Change (17.31) ---------------------- */

  private fdbFlush(p: Port): void {
    if (p.operEdge) return;
    this.flushQueue.add(p.port);
  }

  private setTcPropTree(p: Port): void {
    for (const q of this.ports.values()) if (q !== p) q.tcProp = true;
  }

  private newTcWhile(p: Port): void {
    if (p.tcWhile !== 0) return;
    const anyRunning = [...this.ports.values()].some((q) => q.tcWhile !== 0);
    if (p.sendRSTP) {
      p.tcWhile = this.helloTimeOf(p) + 1;
      p.newInfo = true;
    } else {
      p.tcWhile = this.rootTimes.maxAge + this.rootTimes.forwardDelay;
    }
    if (!anyRunning) this.topologyChangeCount++;
  }

  private enterTcm(p: Port, s: TcmState, begin = false): void {
    p.tcm = s;
    switch (s) {
      case 'INACTIVE':
        if (!begin) this.fdbFlush(p);
        p.tcWhile = 0;
        p.tcAck = false;
        break;
      case 'LEARNING':
        p.rcvdTc = p.rcvdTcn = p.rcvdTcAck = false;
        p.tcProp = false;
        break;
      case 'DETECTED':
        this.log(`port ${p.port}: topology change detected`);
        this.newTcWhile(p);
        this.setTcPropTree(p);
        p.newInfo = true;
        break;
      case 'ACTIVE':
        break;
      case 'NOTIFIED_TCN':
        this.newTcWhile(p);
        break;
      case 'NOTIFIED_TC':
        p.rcvdTcn = p.rcvdTc = false;
        if (p.role === 'designated') {
          p.tcAck = true;
          p.newInfo = true; // Deviation: acknowledge at once rather than at the next hello.
        }
        this.setTcPropTree(p);
        break;
      case 'PROPAGATING':
        this.newTcWhile(p);
        this.fdbFlush(p);
        p.tcProp = false;
        break;
      case 'ACKNOWLEDGED':
        p.tcWhile = 0;
        p.rcvdTcAck = false;
        break;
    }
  }

  private stepTcm(p: Port): boolean {
    const active = p.role === 'root' || p.role === 'designated';
    switch (p.tcm) {
      case 'INACTIVE':
        if (p.learn) { this.enterTcm(p, 'LEARNING'); return true; }
        return false;
      case 'LEARNING':
        if (active && p.forward && !p.operEdge) { this.enterTcm(p, 'DETECTED'); return true; }
        if (p.rcvdTc || p.rcvdTcn || p.rcvdTcAck || p.tcProp) { this.enterTcm(p, 'LEARNING'); return true; }
        if (!active && !(p.learn || p.learning)) { this.enterTcm(p, 'INACTIVE'); return true; }
        return false;
      case 'DETECTED':
      case 'NOTIFIED_TC':
      case 'PROPAGATING':
      case 'ACKNOWLEDGED':
        this.enterTcm(p, 'ACTIVE');
        return true;
      case 'NOTIFIED_TCN':
        this.enterTcm(p, 'NOTIFIED_TC');
        return true;
      case 'ACTIVE':
        if (!active || p.operEdge) { this.enterTcm(p, 'LEARNING'); return true; }
        if (p.rcvdTcn) { this.enterTcm(p, 'NOTIFIED_TCN'); return true; }
        if (p.rcvdTc) { this.enterTcm(p, 'NOTIFIED_TC'); return true; }
        if (p.tcProp && !p.operEdge) { this.enterTcm(p, 'PROPAGATING'); return true; }
        if (p.rcvdTcAck) { this.enterTcm(p, 'ACKNOWLEDGED'); return true; }
        return false;
    }
  }
}
