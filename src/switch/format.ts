/**
 * Text layouts of the vde2 console that scripts parse (`port/print`, `hash/print`), kept
 * byte-exact to PROTOCOL.md §6.4, plus the JSON forms of the same data. Pure functions from
 * state snapshots to strings (status lines and the help table are protocol/console.ts).
 */
import type { MacEntryInfo, PortCounters } from '../native/index.js';
import { groupName, userName } from '../core/perms.js';
import type { PortInfo } from './state.js';

/** Pads/truncates as printf %-Ns. */
export function padRight(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function padLeft(s: string, n: number): string {
  return s.length >= n ? s : ' '.repeat(n - s.length) + s;
}

function n4(n: number): string {
  return String(n).padStart(4, '0');
}

/** The lines vde2's print_port writes for one port. */
export function portLines(p: PortInfo, c: PortCounters): string[] {
  const active = p.endpoints.size > 0;
  const who = (u: number | null): string => (u === null ? 'NONE' : userName(u));
  const grp = (g: number | null): string => (g === null ? 'NONE' : groupName(g));
  const lines = [
    `Port ${n4(p.num)} untagged_vlan=${n4(p.untagged)} ${active ? 'ACTIVE' : 'INACTIVE'} - ${p.allocatable ? '' : 'NOT '}Unnamed Allocatable`,
    ` Current User: ${who(p.currentUser)} Access Control: (User: ${who(p.user)} - Group: ${grp(p.group)})`,
    ` IN:  pkts ${padLeft(String(c.inFrames), 10)}          bytes ${padLeft(String(c.inBytes), 20)}`,
    ` OUT: pkts ${padLeft(String(c.outFrames), 10)}          bytes ${padLeft(String(c.outBytes), 20)}`,
  ];
  for (const ep of p.endpoints.values())
    lines.push(`  -- endpoint ID ${n4(ep.id)} module ${padRight(ep.module, 12)}: ${ep.description || 'no endpoint description'}`);
  return lines;
}

/** JSON form of one port. */
export function portJson(p: PortInfo, c: PortCounters): object {
  return {
    port: p.num,
    active: p.endpoints.size > 0,
    allocatable: p.allocatable,
    untaggedVlan: p.untagged,
    taggedVlans: [...p.tagged].sort((a, b) => a - b),
    currentUser: p.currentUser,
    user: p.user,
    group: p.group,
    stormLimitPps: p.stormLimitPps,
    mirror: p.mirror,
    protected: p.protected,
    police: p.police,
    counters: c,
    endpoints: [...p.endpoints.values()].map((e) => ({ id: e.id, module: e.module, description: e.description, uid: e.uid, offload: e.offload === true })),
  };
}

/** One `hash/print` line (hash/find passes portOffset 1 to keep vde2's off-by-one). */
export function hashLine(e: MacEntryInfo, portOffset = 0): string {
  return `Hash: ${n4(e.bucket ?? 0)} Addr: ${e.mac} VLAN ${n4(e.vlan)} to port: ${String(e.port + portOffset).padStart(3, '0')}  age ${e.ageSeconds} secs`;
}
