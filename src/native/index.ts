/**
 * Loader and typed surface of the native addon (native/). The addon owns the frame path: an
 * engine thread with its epoll loop, the MAC table and every data fd. This module gives the rest
 * of the TypeScript code typed access to it and converts the addon's errno-carrying errors into
 * Node-style errors (`code` such as 'ENOENT', a readable message).
 *
 * Engines are made with createEngine(), which returns the NativeEngine surface the tools use.
 * Configuration calls return at once (the engine thread applies them between batches); counters
 * and statistics are read without a lock; MAC-table queries (macTable, macFind) answer with
 * Promises that the engine thread's reply events resolve. A manual engine (no thread, fake
 * clock) is driven by the caller; the in-process test harness uses it. src/native/fake.ts
 * implements the same surface without the addon, for unit tests.
 */
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Endpoint kinds understood by the engine (numeric values match native/src/engine.h). */
export enum EpKind {
  Dgram = 0,
  Stream2 = 1,
  Stream4 = 2,
  Tap = 3,
  Custom = 4,
}

/** Spanning-tree state of a port as the engine applies it. */
export enum NativeStpState {
  Forwarding = 0,
  Learning = 1,
  Discarding = 2,
}

/** Largest frame on VDE ports: 9216-byte MTU + 14-byte header + 4-byte 802.1Q tag. */
export const MAX_VDE_FRAME_BYTES = 9234;
/** Largest frame on QEMU stream and tap ports. */
export const MAX_STREAM_FRAME_BYTES = 65536;
/** Smallest frame accepted anywhere: an Ethernet header. */
export const MIN_FRAME_BYTES = 14;

export interface PortCounters {
  inFrames: number;
  inBytes: number;
  outFrames: number;
  outBytes: number;
  drops: Record<string, number>;
  /** Frames and bytes waiting in the egress queues of the port's endpoints (gauges). */
  queuedFrames?: number;
  queuedBytes?: number;
}

/** Columns of countersTable() before the drop reasons (then one per dropNames() entry). */
export const COUNTER_TABLE_COLUMNS = ['inFrames', 'inBytes', 'outFrames', 'outBytes', 'queuedFrames', 'queuedBytes'] as const;

/** One change of the MAC table (events with setMacEvents(true)). */
export interface MacChange {
  what: 'learned' | 'moved' | 'aged' | 'evicted';
  mac: string;
  vlan: number;
  port: number;
  /** For moved: the port it was on. */
  oldPort?: number;
}

export interface MacEntryInfo {
  mac: string;
  vlan: number;
  port: number;
  ageSeconds: number;
  bucket?: number;
}

export interface EngineEvent {
  /**
   * bpdu: a spanning-tree frame; epError: an endpoint failed but stays; epClosed: the engine
   * closed an endpoint; engineFailed: the data plane stopped (the tool must exit); stage: a
   * stage says something (`name` is its full name, e.g. a capture session that ended); macs:
   * MAC-table changes (with setMacEvents(true)).
   */
  type: 'bpdu' | 'epError' | 'epClosed' | 'engineFailed' | 'stage' | 'macs';
  port: number;
  ep: number;
  errno: number;
  detail: string;
  frame?: Buffer;
  name?: string;
  macs?: MacChange[];
}

/** Engine-wide statistics, read without a lock. */
export interface EngineStats {
  /** Spanning-tree frames dropped because JavaScript had too many unread ones. */
  bpduDrops: number;
  /** Switch-wide budget for queued and held frames, and what is in use. */
  queueBudgetBytes: number;
  queueUsedBytes: number;
  macEntries: number;
  macMaxEntries: number;
  macEvictions: number;
  macSlots: number;
  /** MAC-table changes not reported because JavaScript had too many unread ones. */
  macEventDrops?: number;
}

/** A stage on a port, as a query reports it: its name, direction and named values (settings, counters). */
export interface StageInfo {
  port: number;
  dir: 'in' | 'out';
  name: string;
  values: Record<string, number>;
}

/** Options of a new engine. */
export interface EngineOptions {
  /** No thread: the caller drives the engine with pollOnce/ingress/advanceNs (tests). */
  manual?: boolean;
}

/** The engine as the tools use it (see createEngine). */
export interface NativeEngine {
  /**
   * Hands an fd to the engine; txFd (default fd) is the write side, adoptPeer makes a datagram
   * socket adopt its first sender. offload: a datagram socket carries a virtio-net header before
   * every frame and 64 KiB segments (both ends agreed at the VDE handshake); a Stream2 endpoint
   * offers its peer 64 KiB segments in-band and uses them when the peer is vde-ts too.
   * recordWrites: a stream writes one record per write, a pipe in packet mode (for a reader that
   * must read whole records, such as Debian's wirefilter). wholeSegments: a GSO frame (64 KiB
   * segment from a tap with offloads) up to maxFrameBytes goes to this endpoint whole, as one
   * frame with its checksums completed, instead of its segments (a NAT back-end: slirp, passt).
   * Returns 0 when refused (the caller keeps the fds).
   */
  addEndpoint(port: number, fd: number, kind: EpKind, maxFrameBytes: number, closeFd: boolean, txFd?: number, adoptPeer?: boolean, offload?: boolean, recordWrites?: boolean, wholeSegments?: boolean): number;
  /** Closes an endpoint (asynchronously); false when the id is not (or no longer) known. */
  removeEndpoint(id: number): boolean;
  /** Hands a custom endpoint (from a native factory such as createVxlan) to the engine; returns 0 on failure. */
  addCustomEndpoint(port: number, handle: unknown, maxFrameBytes: number): number;
  setNumPorts(n: number): void;
  setHub(on: boolean): void;
  /** Stop reading an endpoint while another port has frames queued (plugs: nothing dropped inside a cable). */
  setBackpressure(on: boolean): void;
  setUntagged(port: number, vlan: number): void;
  setTagged(port: number, vlan: number, on: boolean): void;
  setForeignTags(mode: 0 | 1): void;
  setStpCapture(on: boolean): void;
  setStpState(port: number, state: NativeStpState): void;
  /** Marks a port protected: protected ports exchange no frames with each other, only with unprotected ones. */
  setProtected(port: number, on: boolean): void;
  /** Holds the commands sent from now on until releaseCommands(), which the engine then applies together, with no frame in between (nests). */
  holdCommands(): void;
  /** Ends a holdCommands(): the held commands go to the engine at once. */
  releaseCommands(): void;
  setAging(expireSeconds: number, minPersistSeconds: number, gcIntervalSeconds: number): void;
  setStorm(port: number, framesPerSecond: number): void;
  setMirror(port: number, inTarget: number, outTarget: number): void;
  /**
   * Installs (or with null removes) a stage on a port direction: `name` is a registered stage kind
   * (native().stageKinds()), `config` its settings as name/value pairs. A bad setting throws with
   * the stage's own message. A stage of the same name on that port and direction is replaced.
   */
  setStage(port: number, dir: 'in' | 'out', name: string, config: Record<string, string | number> | null): void;
  /** The stages of a port (all ports with -1), answered by the engine thread. */
  stages(port: number): Promise<StageInfo[]>;
  /** Most entries the MAC table holds (evicting from the port with the most entries when full). */
  setMacTableMax(entries: number): void;
  /** Reports learned, moved, aged and evicted MAC entries as 'macs' events (bounded; the rest counted in stats().macEventDrops). */
  setMacEvents(on: boolean): void;
  /** Switch-wide budget for frames waiting in egress queues and stages. */
  setQueueBudget(bytes: number): void;
  flushMacs(port: number, vlan: number): void;
  resetCounters(port: number): void;
  /** Sends a frame out of a port (through its egress stages). */
  injectFrame(port: number, frame: Buffer): boolean;
  /** Every learned address (answered by the engine thread). */
  macTable(): Promise<MacEntryInfo[]>;
  /** The entry for a MAC on a VLAN, or null (answered by the engine thread). */
  macFind(mac: Buffer, vlan: number): Promise<MacEntryInfo | null>;
  counters(port: number): PortCounters;
  /** Every port's counters in one call, index = port number. */
  countersAll(): PortCounters[];
  /** Every port's counters as one flat table: COUNTER_TABLE_COLUMNS, then one column per dropNames() entry, per port. */
  countersTable(): Float64Array;
  /** Engine statistics (lock-free). */
  stats(): EngineStats;
  /** Entries in the MAC table (lock-free). */
  macCount(): number;
  /** Index slots of the MAC table (lock-free). */
  macSlots(): number;
  close(): void;
  // --- manual engines (tests) ---
  /** Runs one loop iteration without blocking. */
  pollOnce(): number;
  /** Processes a frame as if a port had received it. */
  ingress(port: number, frame: Buffer): boolean;
  /** Sets the fake clock (nanoseconds). */
  setTimeNs(ns: number): void;
  /** Moves the fake clock forward and fires due timers and aging. */
  advanceNs(ns: number): void;
}

/** An event as the addon delivers it: also replies to MAC-table queries. */
export interface RawEvent extends Omit<EngineEvent, 'type' | 'macs'> {
  type: EngineEvent['type'] | 'reply';
  queryId?: number;
  macs?: MacEntryInfo[] | MacChange[];
  stages?: StageInfo[];
}

/** The addon's engine class: MAC-table queries answer with reply events. */
export interface RawEngine extends Omit<NativeEngine, 'macTable' | 'macFind' | 'macCount' | 'macSlots' | 'stages'> {
  queryMacs(queryId: number, mac: Buffer | null, vlan: number): void;
  queryStages(queryId: number, port: number): void;
  /** Manual engines: the events since the last call. */
  takeEvents(): RawEvent[];
}

/** Callback receiving the engine's events (BPDUs, endpoint failures), in batches. */
export type EngineEventSink = (evs: EngineEvent[]) => void;

interface Addon {
  Engine: new (numPorts: number, onEvents?: (evs: RawEvent[]) => void, opts?: EngineOptions) => RawEngine;
  unixDgramSocket(bufferBytes?: number): number;
  unixBind(fd: number, path: string): void;
  unixConnect(fd: number, path: string): void;
  closeFd(fd: number): void;
  /** Sends one datagram (non-blocking); returns bytes sent or -errno. */
  sendFd(fd: number, data: Buffer): number;
  /** Receives one datagram (non-blocking); null when nothing is waiting. */
  recvFd(fd: number, maxBytes: number): Buffer | null;
  dropNames(): string[];
  /** Creates a pipe: [readFd, writeFd], close-on-exec. */
  pipe(): [number, number];
  /** Creates a connected unix socket pair (type 1 stream, 2 dgram, 5 seqpacket), close-on-exec. */
  socketPair(type: number): [number, number];
  /** Opens or creates a tap interface (needs CAP_NET_ADMIN for creation). */
  openTap(name: string, vnetHdr?: boolean): { fd: number; name: string };
  /**
   * TUNSETOFFLOAD on a tap opened with vnetHdr (flags default TUN_F_CSUM|TUN_F_TSO4|TUN_F_TSO6):
   * the kernel then hands over 64 KiB TCP segments with partial checksums, and the engine carries
   * them to other offload taps as they are and segments them in software for everything else.
   * A tap opened with vnetHdr is recognised by the engine's addEndpoint on its own.
   */
  setTapOffload(fd: number, flags?: number): void;
  /** Checks a 10-byte virtio_net_hdr against its frame as the engine does for frames read from a tap. */
  vnetCheck(hdr: Buffer, frame: Buffer): 'plain' | 'needsWork' | 'bad';
  /** The frames the engine makes of a GSO / partial-checksum frame for a destination without offloads (null if it is dropped). */
  vnetResolve(hdr: Buffer, frame: Buffer): Buffer[] | null;
  /** Duplicates an fd (close-on-exec). */
  dup(fd: number): number;
  /** Creates a non-blocking UDP socket (family 4 or 6), optionally with SO_REUSEADDR. */
  udpSocket(family: 4 | 6, reuseAddr?: boolean): number;
  /** Binds an IP socket to a numeric address and port. */
  ipBind(fd: number, addr: string, port: number): void;
  /** Connects an IP socket to a numeric address and port. */
  ipConnect(fd: number, addr: string, port: number): void;
  /** Opens a file with open(2) flags (O_RDONLY 0, O_WRONLY 1, O_RDWR 2). */
  openFile(path: string, flags: number): number;
  /** Sets or clears O_NONBLOCK. */
  setNonBlocking(fd: number, on: boolean): void;
  /** Names of the stage kinds engines can install (setStage). */
  stageKinds(): string[];
  /** null when a capture filter expression parses, else the message saying what is wrong. */
  checkCaptureFilter(text: string): string | null;
  /** Makes a vhost-user back-end endpoint of a connected vhost-user socket (the handle owns fd, also on failure) for addCustomEndpoint. */
  createVhostUser(fd: number): unknown;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
let addon: Addon | undefined;

/** Returns the loaded addon (VDE_NATIVE_ADDON, an absolute path, overrides the build: the sanitizer run), with a clear message if it was not built. */
export function native(): Addon {
  if (addon) return addon;
  const override = process.env.VDE_NATIVE_ADDON;
  const file = override ? path.resolve(override) : path.resolve(here, '..', '..', 'native', 'build', 'Release', 'vde_native.node');
  try {
    addon = require(file) as Addon;
  } catch (e) {
    throw new Error(`vde-ts: the native addon is not built (${file}): run "npm install" or "npm run build" (${(e as Error).message})`);
  }
  return addon;
}

const errnoNames = new Map<number, string>(Object.entries(osConstants.errno).map(([k, v]) => [v as number, k]));

/** Converts an addon error (with numeric `errno`) into a Node-style error with `code`. */
export function toNodeError(e: unknown, context?: string): NodeJS.ErrnoException {
  const err = e as NodeJS.ErrnoException & { errno?: number };
  if (typeof err?.errno === 'number' && !err.code) {
    err.code = errnoNames.get(err.errno) ?? `E${err.errno}`;
  }
  if (context && err instanceof Error) err.message = `${context}: ${err.message}`;
  return err;
}

/** Runs a native socket call and rethrows failures as Node-style errors. */
export function sys<T>(context: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toNodeError(e, context);
  }
}

/** Raw methods that make a manual engine produce events, delivered right after the call. */
const DRIVING = new Set<string>(['pollOnce', 'ingress', 'advanceNs', 'injectFrame', 'removeEndpoint', 'addEndpoint', 'addCustomEndpoint', 'setNumPorts']);

/**
 * Adapts the addon's engine to the NativeEngine surface: reply events resolve the Promises of
 * MAC-table queries (and never reach onEvents), and a manual engine's events are delivered
 * after every call that drives it.
 */
export function wrapEngine(raw: RawEngine, onEvents: EngineEventSink | undefined, manual: boolean): { engine: NativeEngine; handle: (evs: RawEvent[]) => void } {
  const queries = new Map<number, (e: RawEvent | null) => void>();
  let nextQuery = 1;
  const handle = (evs: RawEvent[]): void => {
    const rest: EngineEvent[] = [];
    for (const e of evs) {
      if (e.type !== 'reply') {
        rest.push(e as EngineEvent);
        continue;
      }
      const done = queries.get(e.queryId ?? 0);
      queries.delete(e.queryId ?? 0);
      done?.(e);
    }
    if (rest.length) onEvents?.(rest);
  };
  const deliver = (): void => {
    const evs = raw.takeEvents();
    if (evs.length) handle(evs);
  };
  const call = <K extends keyof RawEngine>(k: K) => (...a: unknown[]): unknown => {
    const r = (raw[k] as (...x: unknown[]) => unknown).apply(raw, a);
    if (manual && DRIVING.has(k)) deliver();
    return r;
  };
  // a query is a command whose reply event carries queryId; a closed engine answers null
  const ask = (send: (id: number) => void): Promise<RawEvent | null> =>
    new Promise((resolve, reject) => {
      const id = nextQuery;
      nextQuery = nextQuery >= 0xffffffff ? 1 : nextQuery + 1;
      queries.set(id, resolve);
      try {
        send(id);
      } catch (e) {
        queries.delete(id);
        reject(e);
        return;
      }
      if (manual) deliver();
    });
  const query = async (mac: Buffer | null, vlan: number): Promise<MacEntryInfo[]> => ((await ask((id) => raw.queryMacs(id, mac, vlan)))?.macs ?? []) as MacEntryInfo[];
  const engine = {
    macTable: () => query(null, 0),
    macFind: async (mac: Buffer, vlan: number) => (await query(mac, vlan))[0] ?? null,
    stages: async (port: number) => (await ask((id) => raw.queryStages(id, port)))?.stages ?? [],
    macCount: () => raw.stats().macEntries,
    macSlots: () => raw.stats().macSlots,
    close: () => {
      raw.close();
      for (const done of queries.values()) done(null);
      queries.clear();
    },
  } as Partial<NativeEngine> as Record<string, unknown>;
  const names: Array<keyof RawEngine> = [
    'addEndpoint', 'removeEndpoint', 'addCustomEndpoint', 'setNumPorts', 'setHub', 'setBackpressure', 'setUntagged', 'setTagged',
    'setForeignTags', 'setStpCapture', 'setStpState', 'setProtected', 'holdCommands', 'releaseCommands', 'setAging', 'setStorm', 'setMirror', 'setStage', 'setMacTableMax', 'setMacEvents',
    'setQueueBudget', 'flushMacs', 'resetCounters', 'injectFrame', 'counters', 'countersAll', 'countersTable', 'stats', 'pollOnce', 'ingress',
    'setTimeNs', 'advanceNs',
  ];
  for (const n of names) engine[n] = call(n);
  return { engine: engine as unknown as NativeEngine, handle };
}

/** Creates a native engine with numPorts ports (0..numPorts-1) and an event callback. */
export function createEngine(numPorts: number, onEvents?: EngineEventSink, opts: EngineOptions = {}): NativeEngine {
  const manual = opts.manual === true;
  let handle: (evs: RawEvent[]) => void = () => {};
  const raw = new (native().Engine)(numPorts, (evs) => handle(evs), opts);
  const w = wrapEngine(raw, onEvents, manual);
  handle = w.handle;
  return w.engine;
}
