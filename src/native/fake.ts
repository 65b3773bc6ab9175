/**
 * A fake NativeEngine for unit tests of the control plane (switch state, console, spanning-tree
 * glue) that must run without the addon: it records every call, keeps a MAC table that tests
 * fill with learn(), per-port counters that tests can set, and endpoint ids as the real engine
 * hands them out. Nothing here touches a file descriptor.
 */
import { COUNTER_TABLE_COLUMNS, type EngineStats, type EpKind, type MacEntryInfo, type NativeEngine, type NativeStpState, type PortCounters, type StageInfo } from './index.js';

/** The drop reasons the fake reports in countersTable (the addon's dropNames() order). */
export const DROP_NAMES_FAKE = ['runt', 'oversize', 'vlan', 'stp', 'storm', 'queueFull', 'txError', 'framing', 'badVnetHdr', 'loss', 'capacity', 'mtu', 'filter', 'police', 'auth'];

/** One recorded call: the method name and its arguments. */
export interface FakeCall {
  method: string;
  args: unknown[];
}

interface FakeMac {
  mac: string;
  vlan: number;
  port: number;
  ageSeconds: number;
}

function zeroCounters(): PortCounters {
  return { inFrames: 0, inBytes: 0, outFrames: 0, outBytes: 0, drops: {} };
}

function macText(mac: Buffer): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The fake engine; `calls` lists every method call in order. */
export class FakeEngine implements NativeEngine {
  readonly calls: FakeCall[] = [];
  numPorts: number;
  hub = false;
  closed = false;
  readonly endpoints = new Map<number, { port: number; fd: number; kind: EpKind | 'custom' }>();
  readonly stpStates = new Map<number, NativeStpState>();
  readonly injected: Array<{ port: number; frame: Buffer }> = [];
  private macs = new Map<string, FakeMac>();
  private counterMap = new Map<number, PortCounters>();
  private nextId = 1;
  macSlotCount = 131072;
  macMax = 65536;
  private stageMap = new Map<string, StageInfo>();
  queueBudget = 64 * 1024 * 1024;

  constructor(numPorts = 33) {
    this.numPorts = numPorts;
  }

  private rec(method: string, args: unknown[]): void {
    this.calls.push({ method, args });
  }

  /** Calls of one method (their argument lists). */
  callsOf(method: string): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  /** Test helper: puts an address in the MAC table. */
  learn(mac: string, vlan: number, port: number, ageSeconds = 0): void {
    this.macs.set(`${mac.toLowerCase()}/${vlan}`, { mac: mac.toLowerCase(), vlan, port, ageSeconds });
  }

  /** Test helper: sets the counters a port reports. */
  setCounters(port: number, c: Partial<PortCounters>): void {
    this.counterMap.set(port, { ...zeroCounters(), ...c });
  }

  addEndpoint(port: number, fd: number, kind: EpKind, ...rest: unknown[]): number {
    this.rec('addEndpoint', [port, fd, kind, ...rest]);
    if (port < 0 || port >= this.numPorts) return 0;
    const id = this.nextId++;
    this.endpoints.set(id, { port, fd, kind });
    return id;
  }
  removeEndpoint(id: number): boolean {
    this.rec('removeEndpoint', [id]);
    return this.endpoints.delete(id);
  }
  addCustomEndpoint(port: number, handle: unknown, maxFrameBytes: number): number {
    this.rec('addCustomEndpoint', [port, handle, maxFrameBytes]);
    if (port < 0 || port >= this.numPorts) return 0;
    const id = this.nextId++;
    this.endpoints.set(id, { port, fd: -1, kind: 'custom' });
    return id;
  }
  setNumPorts(n: number): void {
    this.rec('setNumPorts', [n]);
    this.numPorts = n;
  }
  setHub(on: boolean): void {
    this.rec('setHub', [on]);
    this.hub = on;
  }
  setBackpressure(on: boolean): void {
    this.rec('setBackpressure', [on]);
  }
  setUntagged(port: number, vlan: number): void {
    this.rec('setUntagged', [port, vlan]);
  }
  setTagged(port: number, vlan: number, on: boolean): void {
    this.rec('setTagged', [port, vlan, on]);
  }
  setForeignTags(mode: 0 | 1): void {
    this.rec('setForeignTags', [mode]);
  }
  setStpCapture(on: boolean): void {
    this.rec('setStpCapture', [on]);
  }
  setStpState(port: number, state: NativeStpState): void {
    this.rec('setStpState', [port, state]);
    this.stpStates.set(port, state);
  }
  setProtected(port: number, on: boolean): void {
    this.rec('setProtected', [port, on]);
  }
  holdCommands(): void {
    this.rec('holdCommands', []);
  }
  releaseCommands(): void {
    this.rec('releaseCommands', []);
  }
  setAging(expireSeconds: number, minPersistSeconds: number, gcIntervalSeconds: number): void {
    this.rec('setAging', [expireSeconds, minPersistSeconds, gcIntervalSeconds]);
  }
  setStorm(port: number, framesPerSecond: number): void {
    this.rec('setStorm', [port, framesPerSecond]);
  }
  setMirror(port: number, inTarget: number, outTarget: number): void {
    this.rec('setMirror', [port, inTarget, outTarget]);
  }
  setStage(port: number, dir: 'in' | 'out', name: string, config: Record<string, string | number> | null): void {
    this.rec('setStage', [port, dir, name, config]);
    const key = `${port}/${dir}/${name}`;
    if (config) this.stageMap.set(key, { port, dir, name, values: Object.fromEntries(Object.entries(config).map(([k, v]) => [k, Number(v)])) });
    else this.stageMap.delete(key);
  }
  stages(port: number): Promise<StageInfo[]> {
    return Promise.resolve([...this.stageMap.values()].filter((s) => port < 0 || s.port === port));
  }
  setMacTableMax(entries: number): void {
    this.rec('setMacTableMax', [entries]);
    this.macMax = entries;
  }
  setMacEvents(on: boolean): void {
    this.rec('setMacEvents', [on]);
  }
  setQueueBudget(bytes: number): void {
    this.rec('setQueueBudget', [bytes]);
    this.queueBudget = bytes;
  }
  flushMacs(port: number, vlan: number): void {
    this.rec('flushMacs', [port, vlan]);
    for (const [k, e] of this.macs) if ((port < 0 || e.port === port) && (vlan < 0 || e.vlan === vlan)) this.macs.delete(k);
  }
  resetCounters(port: number): void {
    this.rec('resetCounters', [port]);
    if (port < 0) this.counterMap.clear();
    else this.counterMap.delete(port);
  }
  injectFrame(port: number, frame: Buffer): boolean {
    this.rec('injectFrame', [port, frame]);
    this.injected.push({ port, frame });
    return true;
  }
  macTable(): Promise<MacEntryInfo[]> {
    this.rec('macTable', []);
    return Promise.resolve([...this.macs.values()].map((e, i) => ({ ...e, bucket: i })));
  }
  macFind(mac: Buffer, vlan: number): Promise<MacEntryInfo | null> {
    this.rec('macFind', [mac, vlan]);
    const e = this.macs.get(`${macText(mac)}/${vlan}`);
    return Promise.resolve(e ? { ...e, bucket: 0 } : null);
  }
  counters(port: number): PortCounters {
    return this.counterMap.get(port) ?? zeroCounters();
  }
  countersAll(): PortCounters[] {
    return Array.from({ length: this.numPorts }, (_, p) => this.counters(p));
  }
  countersTable(): Float64Array {
    const names = DROP_NAMES_FAKE;
    const cols = COUNTER_TABLE_COLUMNS.length + names.length;
    const t = new Float64Array(this.numPorts * cols);
    for (let p = 0; p < this.numPorts; p++) {
      const c = this.counters(p);
      const row = [c.inFrames, c.inBytes, c.outFrames, c.outBytes, c.queuedFrames ?? 0, c.queuedBytes ?? 0, ...names.map((n) => c.drops[n] ?? 0)];
      t.set(row, p * cols);
    }
    return t;
  }
  stats(): EngineStats {
    return { bpduDrops: 0, queueBudgetBytes: this.queueBudget, queueUsedBytes: 0, macEntries: this.macs.size, macMaxEntries: this.macMax, macEvictions: 0, macSlots: this.macSlotCount };
  }
  pollOnce(): number {
    return 0;
  }
  ingress(port: number, frame: Buffer): boolean {
    this.rec('ingress', [port, frame]);
    return true;
  }
  setTimeNs(ns: number): void {
    this.rec('setTimeNs', [ns]);
  }
  advanceNs(ns: number): void {
    this.rec('advanceNs', [ns]);
  }
  macCount(): number {
    return this.macs.size;
  }
  macSlots(): number {
    return this.macSlotCount;
  }
  close(): void {
    this.rec('close', []);
    this.closed = true;
  }
}
