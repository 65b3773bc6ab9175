/**
 * vde_capture as a Wireshark extcap (extcap(4)): installed (or linked) into Wireshark's extcap
 * folder, it makes Wireshark and tshark list every running switch's ports as capture interfaces.
 *
 * Interfaces: `vde:SOCKET` (all ports of the console at SOCKET) and `vde:SOCKET:PORT`. The
 * consoles are found among VDE_CAPTURE_SOCKETS (paths separated by commas or blanks), the lines
 * of $XDG_CONFIG_HOME/vde-ts/capture-sockets (default ~/.config/...), and every unix socket
 * named *.mgmt in /tmp, /run, /var/run and $XDG_RUNTIME_DIR; each is asked `capture/ports`
 * (PROBE_TIMEOUT_MS), and those that do not answer as a capturing console are left out.
 * Capturing (`--capture --extcap-interface IF --fifo PATH`) is runCapture() into the FIFO, with
 * the capture filter (vde-ts's filter language, which tcpdump's simple expressions also are),
 * the direction and the snapshot length as options. Wireshark stops it with SIGTERM, or by
 * closing the FIFO.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { errorText } from '../core/errors.js';
import { VDE_TS_VERSION } from '../core/version.js';
import { native } from '../native/index.js';
import { consolePorts } from './client.js';
import { runCapture } from './run.js';

/** How long a console may take to answer the listing. */
export const PROBE_TIMEOUT_MS = 700;
/** Most sockets probed for one listing. */
export const MAX_PROBED_SOCKETS = 64;
/** Where extcap interface names start. */
export const EXTCAP_PREFIX = 'vde:';

/** True when the arguments are Wireshark's extcap calls rather than a command line. */
export function isExtcapCall(argv: string[]): boolean {
  return argv.some((x) => /^--(extcap-interfaces|extcap-dlts|extcap-config|capture|extcap-interface|extcap-capture-filter)(=|$)/.test(x));
}

/** Reads `--name VALUE` / `--name=VALUE` / `--flag` from extcap arguments. */
function extcapArgs(argv: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i];
    if (!x.startsWith('--')) continue;
    const eq = x.indexOf('=');
    if (eq > 0) m.set(x.slice(2, eq), x.slice(eq + 1));
    else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) m.set(x.slice(2), argv[++i]);
    else m.set(x.slice(2), '');
  }
  return m;
}

/** Candidate console sockets (see the file comment). */
export function candidateSockets(env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  const add = (p: string): void => {
    const abs = path.resolve(p);
    if (p.trim() && !out.includes(abs)) out.push(abs);
  };
  for (const p of (env.VDE_CAPTURE_SOCKETS ?? '').split(/[\s,]+/)) if (p) add(p);
  const cfg = path.join(env.XDG_CONFIG_HOME || path.join(env.HOME || os.homedir(), '.config'), 'vde-ts', 'capture-sockets');
  try {
    for (const l of fs.readFileSync(cfg, 'utf8').split('\n')) if (l.trim() && !l.trim().startsWith('#')) add(l.trim());
  } catch {
    /* no list */
  }
  for (const dir of ['/tmp', '/run', '/var/run', env.XDG_RUNTIME_DIR].filter((d): d is string => Boolean(d))) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names.filter((x) => x.endsWith('.mgmt'))) {
      try {
        if (fs.statSync(path.join(dir, n)).isSocket()) add(path.join(dir, n));
      } catch {
        /* gone */
      }
    }
  }
  return out.slice(0, MAX_PROBED_SOCKETS);
}

/** Splits an interface name into socket and port (undefined: all ports). */
export function parseInterface(name: string): { socket: string; port?: number } | null {
  if (!name.startsWith(EXTCAP_PREFIX)) return null;
  const rest = name.slice(EXTCAP_PREFIX.length);
  const m = /^(.*):(\d{1,5})$/.exec(rest);
  return m ? { socket: m[1], port: Number(m[2]) } : { socket: rest };
}

/** extcap's {key=value} quoting: no braces inside values. */
function v(s: string): string {
  return s.replace(/[{}]/g, (c) => (c === '{' ? '(' : ')'));
}

async function listInterfaces(): Promise<string> {
  const lines = [`extcap {version=${VDE_TS_VERSION}}{help=man:vde_capture(1)}`];
  const found = await Promise.all(candidateSockets().map((s) => consolePorts(s, PROBE_TIMEOUT_MS).then((r) => ({ s, r }), () => null)));
  for (const f of found) {
    if (!f) continue;
    lines.push(`interface {value=${v(EXTCAP_PREFIX + f.s)}}{display=${v(`${f.r.title}: all ports`)}}`);
    for (const p of f.r.ports) lines.push(`interface {value=${v(`${EXTCAP_PREFIX}${f.s}:${p.port}`)}}{display=${v(`${f.r.title}: port ${p.port}${p.description ? ` (${p.description})` : ''}`)}}`);
  }
  return lines.join('\n') + '\n';
}

const CONFIG = [
  'arg {number=0}{call=--direction}{display=Direction}{type=selector}{tooltip=Frames entering the port, leaving it, or both}',
  'value {arg=0}{value=both}{display=both}{default=true}',
  'value {arg=0}{value=in}{display=in (entering the port)}',
  'value {arg=0}{value=out}{display=out (leaving the port)}',
  'arg {number=1}{call=--snaplen}{display=Snapshot length (bytes)}{type=unsigned}{range=14,262144}{default=262144}',
].join('\n');

/** Runs an extcap call; resolves with the exit status. */
export async function extcapMain(argv: string[]): Promise<number> {
  const a = extcapArgs(argv);
  if (a.has('extcap-interfaces')) {
    process.stdout.write(await listInterfaces());
    return 0;
  }
  const ifname = a.get('extcap-interface') ?? '';
  const iface = parseInterface(ifname);
  if (!iface) {
    process.stderr.write(`vde_capture: --extcap-interface: "${ifname}" is not a vde interface (${EXTCAP_PREFIX}SOCKET[:PORT])\n`);
    return 1;
  }
  if (a.has('extcap-dlts')) {
    process.stdout.write('dlt {number=1}{name=EN10MB}{display=Ethernet}\n');
    return 0;
  }
  if (a.has('extcap-config')) {
    process.stdout.write(`${CONFIG}\n`);
    return 0;
  }
  const filter = a.get('extcap-capture-filter') ?? '';
  if (!a.has('capture')) {
    // filter validation: an empty answer means the filter is good
    const bad = filter ? native().checkCaptureFilter(filter) : null;
    if (bad) process.stdout.write(`${bad}\n`);
    return 0;
  }
  const fifo = a.get('fifo');
  if (!fifo) {
    process.stderr.write('vde_capture: --capture needs --fifo PATH\n');
    return 1;
  }
  const dir = a.get('direction') ?? 'both';
  if (dir !== 'in' && dir !== 'out' && dir !== 'both') {
    process.stderr.write(`vde_capture: --direction: "${dir}" is not in, out or both\n`);
    return 1;
  }
  const snap = a.get('snaplen');
  let out: fs.WriteStream;
  try {
    out = fs.createWriteStream('', { fd: fs.openSync(fifo, 'w') });
  } catch (e) {
    process.stderr.write(`vde_capture: --fifo ${fifo}: ${errorText(e)}\n`);
    return 1;
  }
  const status = await runCapture({
    socket: iface.socket,
    req: { ports: iface.port === undefined ? 'all' : [iface.port], direction: dir, snaplen: snap && /^\d+$/.test(snap) ? Number(snap) : undefined, filter },
    out,
    quiet: true,
    program: 'vde_capture',
  });
  await new Promise<void>((r) => out.end(() => r()));
  return status;
}
