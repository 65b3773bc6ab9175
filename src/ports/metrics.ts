/**
 * Prometheus metrics for any tool (`--metrics ADDR` on vde_switch, vde_plug, slirpvde; wirefilter
 * mounts it the same way): an HTTP server on `tcp:HOST:PORT` or `unix:PATH` that answers
 * `GET /metrics` in the Prometheus text format (version 0.0.4).
 *
 * A scrape reads what the engine publishes without a lock (countersTable: every port's counters
 * and egress-queue gauges in one typed array; stats) plus the stage values the engine thread
 * reports between batches, so it never slows forwarding. Names follow the Prometheus
 * conventions: a `vde_` prefix, base units (frames, bytes, seconds), `_total` for counters, and
 * labels `port`, `vlan`, `reason`, `direction`, `stage`. What each tool adds (the switch's
 * spanning-tree states, VLAN membership, port status) comes through the `extra` callback.
 */
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { claimSocketPath, listenUnix, OwnedPath } from '../core/sockpath.js';
import { VDE_TS_VERSION } from '../core/version.js';
import { COUNTER_TABLE_COLUMNS, native, type NativeEngine, type StageInfo } from '../native/index.js';

/** Mode of a unix metrics socket. */
export const METRICS_SOCKET_MODE = 0o600;
/** Content type of the Prometheus text format. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Where the metrics server listens. */
export type MetricsAddr = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** Parses `tcp:HOST:PORT` (`tcp:[::1]:PORT`, `tcp:PORT` = 127.0.0.1) or `unix:PATH`; throws an Error naming the value. */
export function parseMetricsAddr(s: string): MetricsAddr {
  if (s.startsWith('unix:') && s.length > 5) return { kind: 'unix', path: s.slice(5) };
  const m = /^tcp:(?:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):)?(\d{1,5})$/.exec(s);
  if (m) {
    const port = Number(m[3]);
    const host = m[1] ?? m[2] ?? '127.0.0.1';
    if (port < 1 || port > 65535) throw new Error(`--metrics: "${s}": port ${port} is out of range 1..65535`);
    if (m[1] !== undefined && net.isIPv6(m[1]) === false) throw new Error(`--metrics: "${s}": "${m[1]}" is not an IPv6 address`);
    return { kind: 'tcp', host, port };
  }
  throw new Error(`--metrics: "${s}" is not tcp:HOST:PORT, tcp:PORT or unix:PATH`);
}

/** Checks a --metrics value and makes a unix path absolute (a background copy runs elsewhere); throws an Error naming the value. */
export function metricsOption(v: string): string {
  const addr = parseMetricsAddr(v);
  return addr.kind === 'unix' ? `unix:${path.resolve(addr.path)}` : v;
}

/** Escapes a label value (backslash, double quote, newline). */
function esc(v: string | number): string {
  if (typeof v === 'number') return String(v);
  if (!/[\\"\n]/.test(v)) return v;
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Builds Prometheus text: families with HELP and TYPE, then their samples. */
export class MetricsText {
  private parts: string[] = [];
  private seen = new Set<string>();

  /** Starts a family (HELP and TYPE lines); a name is declared once. */
  family(name: string, type: 'counter' | 'gauge', help: string): this {
    if (this.seen.has(name)) return this;
    this.seen.add(name);
    this.parts.push(`# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`);
    return this;
  }

  /** Adds a sample with labels. */
  sample(name: string, labels: Record<string, string | number> | null, value: number): this {
    let l = '';
    if (labels) {
      for (const k in labels) l += `${l ? ',' : '{'}${k}="${esc(labels[k])}"`;
      if (l) l += '}';
    }
    this.parts.push(`${name}${l} ${Number.isFinite(value) ? value : value > 0 ? '+Inf' : value < 0 ? '-Inf' : 'NaN'}\n`);
    return this;
  }

  /** Adds a preformatted sample line (the hot loop of a 1000-port scrape). */
  raw(line: string): this {
    this.parts.push(line);
    return this;
  }

  /** The exposition text. */
  text(): string {
    return this.parts.join('');
  }
}

/** What a tool exports besides the engine's own metrics. */
export interface MetricsSource {
  engine: NativeEngine;
  /** Tool name for vde_info (vde_switch, vde_plug, ...). */
  tool: string;
  /** The ports to export (the switch: its created ports; a plug: 1 and 2). */
  ports(): number[];
  /** More families (the switch: port status, VLANs, spanning tree); may be async. */
  extra?(m: MetricsText): void | Promise<void>;
}

const PORT_FAMILIES: Array<[string, string, number]> = [
  ['vde_port_receive_frames_total', 'Frames received on the port (before any stage or policy decision).', 0],
  ['vde_port_receive_bytes_total', 'Bytes of the frames received on the port.', 1],
  ['vde_port_transmit_frames_total', 'Frames the kernel accepted for the port.', 2],
  ['vde_port_transmit_bytes_total', 'Bytes of the frames the kernel accepted for the port.', 3],
];

/** Sample-line prefixes ("name{port=\"3\"} ") by family and port, made once per process: a scrape of 1000 ports only joins prefixes and numbers. */
const prefixCache = new Map<string, string[]>();

/** One sample line per port of a column of the counter table. */
function portLines(m: MetricsText, name: string, ports: number[], table: Float64Array, cols: number, col: number, label = ''): void {
  const cache = prefixCache.get(`${name}${label}`) ?? [];
  prefixCache.set(`${name}${label}`, cache);
  const out: string[] = [];
  for (const p of ports) {
    const pre = cache[p] ?? (cache[p] = `${name}{port="${p}"${label}} `);
    out.push(pre, String(table[p * cols + col]), '\n');
  }
  m.raw(out.join(''));
}

/** The impair stage's counters as `_total` counters: [family, help, stage value names]. */
const IMPAIR_COUNTERS: Array<[string, string, string]> = [
  ['vde_impair_frames_total', 'Frames that entered link emulation.', 'frames'],
  ['vde_impair_duplicated_frames_total', 'Extra copies link emulation made.', 'duplicated'],
  ['vde_impair_corrupted_frames_total', 'Frames link emulation corrupted (one or more flipped bits).', 'corrupted'],
  ['vde_impair_reordered_frames_total', 'Frames link emulation sent ahead of frames it held (reorder).', 'reordered'],
];
/** Drops of the impair stage by reason: [reason label, stage value name]. */
const IMPAIR_DROPS: Array<[string, string]> = [
  ['loss', 'lost'],
  ['capacity', 'overCapacity'],
  ['mtu', 'overMtu'],
  ['link_down', 'linkDown'],
];

/** Link emulation (impair stages) in Prometheus form: counters with `_total`, drops by reason, held frames and lateness in base units. */
function impairFamilies(m: MetricsText, stages: StageInfo[]): void {
  const imp = stages.filter((s) => s.name === 'impair' || s.name.startsWith('impair:'));
  if (!imp.length) return;
  const labels = (s: StageInfo): Record<string, string | number> => ({ port: s.port, direction: s.dir });
  for (const [name, help, key] of IMPAIR_COUNTERS) {
    m.family(name, 'counter', help);
    for (const s of imp) m.sample(name, labels(s), s.values[key] ?? 0);
  }
  m.family('vde_impair_dropped_frames_total', 'counter', 'Frames link emulation dropped, by reason (loss, capacity, mtu, link_down).');
  for (const s of imp) for (const [reason, key] of IMPAIR_DROPS) m.sample('vde_impair_dropped_frames_total', { ...labels(s), reason }, s.values[key] ?? 0);
  const gauges: Array<[string, string, (v: Record<string, number>) => number]> = [
    ['vde_impair_held_frames', 'Frames link emulation holds now (delay, rate, slots).', (v) => v.held ?? 0],
    ['vde_impair_held_bytes', 'Bytes of the frames link emulation holds now.', (v) => v.heldBytes ?? 0],
    ['vde_impair_link_up', 'Whether the emulated link is up (0 while down or in a flap\'s down time).', (v) => v.up ?? 1],
    ['vde_impair_release_lateness_mean_seconds', 'Mean lateness of held frames released by the timer.', (v) => (v.lateUsMean ?? 0) / 1e6],
    ['vde_impair_release_lateness_max_seconds', 'Largest lateness of a held frame released by the timer.', (v) => (v.lateUsMax ?? 0) / 1e6],
  ];
  for (const [name, help, get] of gauges) {
    m.family(name, 'gauge', help);
    for (const s of imp) m.sample(name, labels(s), get(s.values));
  }
}

/** Renders the metrics of a tool (see the file comment). */
export async function renderMetrics(src: MetricsSource): Promise<string> {
  const m = new MetricsText();
  const e = src.engine;
  const table = e.countersTable();
  const drops = native().dropNames();
  const cols = COUNTER_TABLE_COLUMNS.length + drops.length;
  const ports = src.ports().filter((p) => (p + 1) * cols <= table.length);
  m.family('vde_info', 'gauge', 'The tool and its version.').sample('vde_info', { tool: src.tool, version: VDE_TS_VERSION }, 1);
  for (const [name, help, col] of PORT_FAMILIES) {
    m.family(name, 'counter', help);
    portLines(m, name, ports, table, cols, col);
  }
  m.family('vde_port_dropped_frames_total', 'counter', 'Frames dropped at the port, by reason (runt, oversize, vlan, stp, storm, queueFull, txError, framing, badVnetHdr, loss, capacity, mtu, filter, police, auth).');
  const dropPre = drops.map((r) => prefixCache.get(`drop:${r}`) ?? (prefixCache.set(`drop:${r}`, []), prefixCache.get(`drop:${r}`)!));
  const out: string[] = [];
  for (const p of ports) {
    const base = p * cols + COUNTER_TABLE_COLUMNS.length;
    for (let r = 0; r < drops.length; r++) {
      const pre = dropPre[r][p] ?? (dropPre[r][p] = `vde_port_dropped_frames_total{port="${p}",reason="${drops[r]}"} `);
      out.push(pre, String(table[base + r]), '\n');
    }
  }
  m.raw(out.join(''));
  m.family('vde_port_egress_queue_frames', 'gauge', "Frames waiting in the egress queues of the port's endpoints.");
  portLines(m, 'vde_port_egress_queue_frames', ports, table, cols, 4);
  m.family('vde_port_egress_queue_bytes', 'gauge', "Bytes waiting in the egress queues of the port's endpoints.");
  portLines(m, 'vde_port_egress_queue_bytes', ports, table, cols, 5);
  const st = e.stats();
  m.family('vde_mac_table_entries', 'gauge', 'Addresses in the MAC table.').sample('vde_mac_table_entries', null, st.macEntries);
  m.family('vde_mac_table_max_entries', 'gauge', 'Most addresses the MAC table holds.').sample('vde_mac_table_max_entries', null, st.macMaxEntries);
  m.family('vde_mac_table_evictions_total', 'counter', 'Addresses evicted because the MAC table was full.').sample('vde_mac_table_evictions_total', null, st.macEvictions);
  m.family('vde_queue_budget_bytes', 'gauge', 'Switch-wide budget for queued and held frames.').sample('vde_queue_budget_bytes', null, st.queueBudgetBytes);
  m.family('vde_queue_used_bytes', 'gauge', 'Bytes of the budget in use.').sample('vde_queue_used_bytes', null, st.queueUsedBytes);
  m.family('vde_bpdu_dropped_total', 'counter', 'Spanning-tree frames dropped because the control plane had too many unread.').sample('vde_bpdu_dropped_total', null, st.bpduDrops);
  m.family('vde_mac_events_dropped_total', 'counter', 'MAC-table changes not reported on the event stream (it was full).').sample('vde_mac_events_dropped_total', null, st.macEventDrops ?? 0);
  const stages = await e.stages(-1);
  impairFamilies(m, stages);
  if (stages.length) {
    m.family('vde_stage_value', 'gauge', 'Values stages report (settings and counters: capture, impairment, storm control, mirroring).');
    for (const s of stages) {
      const [kind, instance] = s.name.split(':');
      for (const [k, v] of Object.entries(s.values))
        m.sample('vde_stage_value', { port: s.port, direction: s.dir, stage: kind, ...(instance ? { instance } : {}), name: k }, v);
    }
  }
  await src.extra?.(m);
  return m.text();
}

/** A running metrics server. */
export class MetricsServer {
  private constructor(
    private srv: http.Server,
    private owned: OwnedPath | null,
    /** Where it listens, as given. */
    readonly where: string,
  ) {}

  /** Starts serving `render()` on /metrics at addr; throws an Error naming the address on failure. */
  static async start(addr: MetricsAddr, render: () => Promise<string>): Promise<MetricsServer> {
    const srv = http.createServer((req, res) => {
      const url = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('method not allowed\n');
        return;
      }
      if (url !== '/metrics') {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found: the metrics are on /metrics\n');
        return;
      }
      render().then(
        (body) => res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE }).end(req.method === 'HEAD' ? undefined : body),
        (e) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`metrics failed: ${(e as Error).message}\n`),
      );
    });
    srv.on('clientError', (_e, sock) => sock.destroy());
    if (addr.kind === 'unix') {
      await claimSocketPath(addr.path, 'metrics socket');
      await listenUnix(srv as unknown as net.Server, addr.path, METRICS_SOCKET_MODE).catch((e) => {
        throw new Error(`--metrics unix:${addr.path}: ${(e as Error).message}`);
      });
      return new MetricsServer(srv, OwnedPath.record(addr.path), `unix:${addr.path}`);
    }
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`--metrics tcp:${addr.host}:${addr.port}: ${e.code === 'EADDRINUSE' ? 'the address is in use' : e.code === 'EADDRNOTAVAIL' ? 'no such local address' : e.message}`)),
      );
      srv.listen(addr.port, addr.host, () => resolve());
    });
    const a = srv.address() as net.AddressInfo;
    return new MetricsServer(srv, null, `tcp:${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
  }

  /** Stops serving and removes a unix socket it created. */
  close(): void {
    this.srv.close();
    this.srv.closeAllConnections?.();
    this.owned?.release();
  }
}

/** Starts the metrics server of a tool: parse, bind, serve renderMetrics(src). */
export async function startMetrics(addr: string, src: MetricsSource): Promise<MetricsServer> {
  return MetricsServer.start(parseMetricsAddr(addr), () => renderMetrics(src));
}
