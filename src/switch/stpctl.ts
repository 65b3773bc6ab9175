/**
 * Glue between the switch and the spanning-tree protocol machine (stp.ts): feeds it the BPDUs
 * the engine captures, drives its clock, applies the port states it decides to the engine, sends
 * its BPDUs through the engine and renders `fstp/print` (vde2 layout) and its JSON form. The
 * protocol is IEEE 802.1D RSTP/STP on the wire, so it meets other vde-ts switches and Linux
 * bridges; vde2's own FSTP dialect is not spoken.
 */
import { NativeStpState } from '../native/index.js';
import type { StpControl } from './console.js';
import type { SwitchState } from './state.js';
import { SpanningTree, type PortState } from './stp.js';

/** How often the protocol machine's clock ticks. */
export const STP_TICK_MS = 250;

const STATE_MAP: Record<PortState, NativeStpState> = {
  discarding: NativeStpState.Discarding,
  learning: NativeStpState.Learning,
  forwarding: NativeStpState.Forwarding,
};

/** The switch's spanning-tree control: off by default (every port forwards). */
export class SpanningTreeControl implements StpControl {
  private tree: SpanningTree;
  private on = false;
  private timer: NodeJS.Timeout | null = null;
  private bonus = new Map<number, number>();
  /** The state the tree last gave each port (ports it never touched forward). */
  private states = new Map<number, PortState>();

  constructor(
    private state: SwitchState,
    mac: Buffer,
    priority: number,
    private debug: (category: string, msg: string) => void,
    timers: { helloSeconds?: number; forwardDelaySeconds?: number; maxAgeSeconds?: number } = {},
    /** Told about state and role changes of ports (the event stream). */
    private onEvent: (type: 'stp/state' | 'stp/role', fields: Record<string, unknown>) => void = () => {},
  ) {
    this.tree = new SpanningTree(
      {
        sendFrame: (port, frame) => {
          this.state.engine.injectFrame(port, frame);
        },
        setPortState: (port, s) => {
          const from = this.states.get(port) ?? null;
          this.states.set(port, s);
          this.state.setStpState(port, STATE_MAP[s]);
          this.debug('fstp/status', `Port ${String(port).padStart(4, '0')} ${s}`);
          if (from !== s) this.onEvent('stp/state', { port, state: s, from });
        },
        roleChanged: (port, from, to) => this.onEvent('stp/role', { port, role: to, from }),
        flush: (port) => {
          this.state.engine.flushMacs(port ?? -1, -1);
        },
        log: (msg) => {
          if (msg.startsWith('new root') || msg.startsWith('this bridge is now the root')) this.debug('fstp/root', msg);
        },
      },
      { bridgeMac: mac, priority, ...timers },
    );
  }

  /** True when spanning tree runs. */
  enabled(): boolean {
    return this.on;
  }

  /** Starts or stops the protocol; stopping makes every port forward again. */
  setEnabled(on: boolean): void {
    if (on === this.on) return;
    this.on = on;
    this.state.engine.setStpCapture(on);
    if (on) {
      this.tree.enable();
      for (const p of this.state.ports.values()) if (p.endpoints.size > 0) this.tree.addPort(p.num);
      this.timer = setInterval(() => this.tree.tick(Date.now()), STP_TICK_MS);
      this.timer.unref();
      this.tree.tick(Date.now());
    } else {
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      for (const p of this.state.ports.values()) this.tree.removePort(p.num);
      this.tree.disable();
      this.states.clear();
      for (const p of this.state.ports.values()) this.state.setStpState(p.num, NativeStpState.Forwarding);
    }
  }

  /** A port got its first endpoint. */
  portUp(port: number): void {
    if (this.on) {
      this.tree.addPort(port);
      if (this.state.ports.get(port)?.edge) this.tree.setEdge(port, true);
      this.debug('fstp/+', `Port ${String(port).padStart(4, '0')}`);
    }
  }

  /** A port lost its last endpoint. */
  portDown(port: number): void {
    if (this.on) {
      this.tree.removePort(port);
      this.debug('fstp/-', `Port ${String(port).padStart(4, '0')}`);
    }
    this.states.delete(port);
    this.state.setStpState(port, NativeStpState.Forwarding);
  }

  /** A BPDU arrived on a port. */
  receive(port: number, frame: Buffer): void {
    if (this.on) this.tree.receiveBpdu(port, frame);
  }

  /** The state the tree gives a port, as vlan/print shows it. */
  portState(port: number): 'Forwarding' | 'Learning' | 'Discarding' {
    const st = this.on ? this.states.get(port) ?? 'forwarding' : 'forwarding';
    return st === 'forwarding' ? 'Forwarding' : st === 'learning' ? 'Learning' : 'Discarding';
  }

  /** Marks a port as edge (never blocks, no BPDUs expected). */
  setEdge(port: number, on: boolean): void {
    const p = this.state.ports.get(port);
    if (p) p.edge = on;
    this.tree.setEdge(port, on);
  }

  /** vde2's cost bonus: lowers the path cost of a port by `cost`. */
  setBonus(port: number, cost: number): void {
    this.bonus.set(port, cost);
    const BASE_COST = 20000;
    this.tree.setPortCost(port, Math.max(1, BASE_COST - cost));
  }

  /** `fstp/print` lines in vde2's layout. */
  printLines(): string[] {
    const s = this.tree.status();
    const hex = (id: string): string => id.replace(/[^0-9a-f]/gi, '').replace(/(..)(?=.)/g, '$1:');
    const lines = [`FST DATA VLAN 0000 ${s.isRoot ? 'ROOTSWITCH' : ''} ${this.on ? '' : 'FSTP IS DISABLED'}`];
    lines.push(` ++ root ${hex(s.rootId)}`, ` ++ designated ${hex(s.bridgeId)}`);
    lines.push(` ++ rootport ${String(s.rootPort ?? 0).padStart(4, '0')} cost ${s.rootPathCost} age 0 bonusport 0000 bonuscost 0`);
    const role: Record<string, string> = { root: 'Root', designated: 'Designated', alternate: 'Alternate/Backup', backup: 'Alternate/Backup', edge: 'Edge', disabled: 'Unknown' };
    for (const p of s.ports) {
      const info = this.state.ports.get(p.port);
      const tagged = info && info.untagged !== 0 ? 1 : 0;
      lines.push(` -- Port ${String(p.port).padStart(4, '0')} tagged=${tagged} portcost=${p.cost} role=${role[p.role] ?? 'Unknown'}`);
    }
    return lines;
  }

  /** JSON form of the spanning-tree state. */
  json(): object {
    return this.tree.status();
  }

  /** Stops the clock. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
