/**
 * The `vde_switch` command: vde2's options, read as getopt_long_only reads them (single-dash long
 * forms and unambiguous prefixes: `-sock DIR`, `-mod 0660`; the last of a repeated option wins,
 * except the repeatable --tap, --qemu-* and --vhost-user; a missing value is an error),
 * validated with precise errors, turned into SwitchOptions; then the switch runs until a signal,
 * `shutdown`, or EOF on the stdin console. `-d` re-launches the switch as a detached background
 * process that logs to --logfile or syslog, and returns once it is serving (or prints why it
 * failed).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yargs from 'yargs';
import { CliError, getoptLongOnly, helpText, intOption, octalOption, specsFromOptions, standardSpecs, type Example } from '../core/cli.js';
import { daemonize, reportStarted } from '../core/daemon.js';
import { errorText, installCrashGuard } from '../core/errors.js';
import { log, setProgram, setVerbose, useLogFile, useSyslog } from '../core/log.js';
import { deriveModes, lookupGroup, DEFAULT_MGMT_MODE } from '../core/perms.js';
import { versionLine } from '../core/version.js';
import { metricsOption } from '../ports/metrics.js';
import { parseQemuSpec } from './qemu.js';
import { parseVhostUserPath } from './vhostuser.js';
import { DEFAULT_MAC_ENTRIES, MAX_HASH_SIZE_ENTRIES, MAX_MAC_ENTRIES, MAX_NUMPORTS, MIN_MAC_ENTRIES } from './state.js';
import { VdeSwitch, type SwitchOptions } from './switch.js';

/** Default switch directory for root. */
export const DEFAULT_DIR_ROOT = '/var/run/vde.ctl';
/** Default switch directory for other users. */
export const DEFAULT_DIR_USER = '/tmp/vde.ctl';
export const DEFAULT_NUMPORTS = 32;
export const DEFAULT_HASHSIZE = 128;
export const DEFAULT_PRIORITY = 0x8000;

const root = process.geteuid?.() === 0;

/** The options, as yargs defines them (getoptLongOnly reads the same table). */
const OPTIONS = {
  sock: { alias: ['s', 'vdesock', 'unix'], type: 'string', describe: 'switch directory (control socket DIR/ctl)', default: root ? DEFAULT_DIR_ROOT : DEFAULT_DIR_USER, defaultDescription: root ? DEFAULT_DIR_ROOT : DEFAULT_DIR_USER },
  numports: { alias: 'n', type: 'string', describe: `number of ordinary ports (1..${MAX_NUMPORTS}; port 0 is extra)`, default: String(DEFAULT_NUMPORTS) },
  hub: { alias: 'x', type: 'boolean', describe: 'hub mode: flood every frame, no learning, no VLANs' },
  fstp: { alias: 'F', type: 'boolean', describe: 'run spanning tree (IEEE 802.1D RSTP/STP BPDUs) against loops' },
  macaddr: { type: 'string', describe: 'switch MAC for spanning tree (xx:xx:xx:xx:xx:xx)' },
  priority: { type: 'string', describe: 'spanning-tree bridge priority 0..65535', default: String(DEFAULT_PRIORITY) },
  'stp-hello': { type: 'string', describe: 'spanning-tree hello time, seconds 1..10', default: '2' },
  'stp-forward-delay': { type: 'string', describe: 'spanning-tree forward delay, seconds 4..30 (legacy STP peers wait twice this)', default: '15' },
  'stp-max-age': { type: 'string', describe: 'spanning-tree max age, seconds 6..40', default: '20' },
  hashsize: { type: 'string', describe: `vde2's hash size 1..${MAX_HASH_SIZE_ENTRIES} (kept for compatibility: it only shapes hash/print's bucket numbers)`, default: String(DEFAULT_HASHSIZE) },
  'max-macs': { type: 'string', describe: `most addresses the MAC table holds, ${MIN_MAC_ENTRIES}..${MAX_MAC_ENTRIES}; when full, the port holding the most loses its oldest`, default: String(DEFAULT_MAC_ENTRIES) },
  mode: { alias: 'm', type: 'string', describe: 'octal mode of ctl and data sockets (default 0600)' },
  dirmode: { type: 'string', describe: 'octal mode of a directory the switch creates (default 02700, or derived from --mode)' },
  group: { alias: 'g', type: 'string', describe: 'group owning the directory and sockets' },
  mgmt: { alias: 'M', type: 'string', describe: 'management socket path (use vdecmd, vdeterm, socat)' },
  mgmtmode: { type: 'string', describe: 'octal mode of the management socket (default 0600)' },
  mgmtgroup: { type: 'string', describe: 'group of the management socket' },
  rcfile: { alias: 'f', type: 'string', describe: 'run console commands from FILE at start' },
  daemon: { alias: 'd', type: 'boolean', describe: 'run in the background (logs to --logfile, else syslog), no stdin console' },
  pidfile: { alias: 'p', type: 'string', describe: 'write the process id to FILE (removed at exit)' },
  logfile: { type: 'string', describe: 'append log messages to FILE (instead of stderr or syslog)' },
  nostdin: { type: 'boolean', describe: 'do not use stdin as a console (keep running when stdin closes)' },
  'foreign-tags': { type: 'string', choices: ['pass', 'drop'], default: 'pass', describe: "802.1Q frames of a VLAN the port is not a member of: pass them through in the port's untagged VLAN, or drop them (vde2)" },
  'qemu-listen': { type: 'string', array: true, describe: 'accept QEMU -netdev stream/socket clients: unix:PATH or tcp:[HOST:]PORT (repeatable)' },
  'qemu-connect': { type: 'string', array: true, describe: 'connect to a listening QEMU (-netdev stream,server=on / socket,listen=): unix:PATH or tcp:HOST:PORT' },
  'qemu-dgram': { type: 'string', array: true, describe: 'a port for QEMU -netdev dgram: unix:PATH or udp:[HOST:]PORT' },
  'vhost-user': { type: 'string', array: true, describe: 'listen on unix socket PATH as a vhost-user back-end: each QEMU -netdev vhost-user that connects gets a port (repeatable; the socket gets --mode and --group)' },
  tap: { alias: 't', type: 'string', array: true, describe: 'attach a Linux tap interface, created if missing (repeatable or comma-separated; needs root or CAP_NET_ADMIN)' },
  'tap-offload': { type: 'string', choices: ['on', 'off'], default: 'on', describe: 'taps opened by -t use a virtio-net header with TSO/checksum offloads (TCP between taps moves 64 KiB segments); off = plain frames' },
  debugclients: { alias: 'D', type: 'string', describe: 'accepted for vde2 compatibility; ignored', hidden: true },
  metrics: { type: 'string', describe: 'serve Prometheus metrics on /metrics at tcp:HOST:PORT, tcp:PORT (127.0.0.1) or unix:PATH' },
  verbose: { type: 'boolean', describe: 'log debug messages' },
  'daemon-child': { type: 'boolean', hidden: true },
} as const;

/** The --help examples (each one line, ready to paste). */
export const EXAMPLES: Example[] = [
  { command: 'vde_switch -s /tmp/sw -M /tmp/sw.mgmt', what: 'switch in /tmp/sw with a management socket' },
  { command: 'vde_switch -s /tmp/sw -m 0660 -g kvm -d -p /tmp/sw.pid', what: 'shared with group kvm, in the background' },
  { command: 'vde_switch -sock /tmp/sw -numports 64 -hub', what: 'vde2-style single-dash options work too' },
  { command: 'vde_switch -F --priority 4096 -s /tmp/sw', what: 'spanning tree, preferred as root' },
  { command: 'vde_switch -s /tmp/sw --qemu-listen unix:/tmp/sw.qemu', what: 'then: qemu-system-x86_64 ... -netdev stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/sw.qemu' },
  {
    command: 'vde_switch -s /tmp/sw --vhost-user /tmp/sw.vhost',
    what:
      'then: qemu-system-x86_64 -m 512M -object memory-backend-memfd,id=mem,size=512M,share=on -numa node,memdev=mem ' +
      '-chardev socket,id=c0,path=/tmp/sw.vhost -netdev vhost-user,id=n0,chardev=c0 -device virtio-net-pci,netdev=n0 ...',
  },
  { command: 'qemu-system-x86_64 -netdev vde,id=n0,sock=/tmp/sw -device virtio-net-pci,netdev=n0', what: 'attach a VM' },
  { command: 'vde_switch -s /tmp/sw -M /tmp/sw.mgmt --metrics tcp:127.0.0.1:9310', what: 'then: curl http://127.0.0.1:9310/metrics; vde_capture /tmp/sw.mgmt | tshark -r -' },
];

function parser(argv: string[]) {
  return yargs(argv)
    .scriptName('vde_switch')
    .usage(
      'Usage: vde_switch [OPTIONS]\n\n' +
        'A VDE Ethernet switch. Clients (QEMU -netdev vde, vde_plug, libvdeplug programs) connect to\n' +
        `the control socket DIR/ctl; the default DIR is ${DEFAULT_DIR_ROOT} as root, ${DEFAULT_DIR_USER} otherwise.\n` +
        'Single-dash long options and unambiguous prefixes (-sock DIR, -hub, -mod 0660) work as in vde2.',
    )
    .options(OPTIONS)
    .version(false)
    .option('version', { alias: 'v', type: 'boolean', describe: 'print the version' })
    .help(false)
    .option('help', { alias: 'h', type: 'boolean', describe: 'show this help' })
    .strict()
    .parserConfiguration({ 'greedy-arrays': false })
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    });
}

const SPECS = specsFromOptions(OPTIONS, standardSpecs('v'));

function parseMac(s: string): Buffer {
  const m = /^([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})$/i.exec(s);
  if (!m) throw new CliError(`--macaddr: "${s}" is not a MAC address (xx:xx:xx:xx:xx:xx)`);
  return Buffer.from(m.slice(1).map((x) => parseInt(x, 16)));
}

const octal = octalOption;

function group(name: string, v: string | undefined): number | null {
  if (v === undefined) return null;
  const g = lookupGroup(v);
  if (g === undefined) throw new CliError(`--${name}: no such group "${v}"`);
  return g;
}

/** Turns parsed arguments into SwitchOptions (every path absolute), throwing an Error that names the bad option. */
export function toOptions(a: Record<string, unknown>): SwitchOptions {
  const { mode, dirmode } = deriveModes(octal('mode', a.mode as string | undefined), octal('dirmode', a.dirmode as string | undefined));
  const home = os.homedir();
  let rcFile = (a.rcfile as string | undefined) ? path.resolve(String(a.rcfile)) : null;
  const rcFileRequired = rcFile !== null;
  if (!rcFile) {
    for (const f of [path.join(home, '.vde2', 'vde_switch.rc'), '/etc/vde2/vde_switch.rc']) {
      if (fs.existsSync(f)) {
        rcFile = f;
        break;
      }
    }
  }
  const taps = ((a.tap as string[] | undefined) ?? []).flatMap((t) => t.split(',')).filter(Boolean);
  for (const t of taps) if (Buffer.byteLength(t) > 15 || /[\s/]/.test(t)) throw new CliError(`--tap: "${t}" is not a valid interface name (at most 15 bytes, no spaces or slashes)`);
  return {
    dir: path.resolve(String(a.sock)),
    numPorts: intOption('numports', a.numports, 1, MAX_NUMPORTS),
    hub: Boolean(a.hub),
    fstp: Boolean(a.fstp),
    mac: a.macaddr ? parseMac(String(a.macaddr)) : undefined,
    priority: intOption('priority', a.priority, 0, 65535),
    stpHelloSeconds: intOption('stp-hello', a['stp-hello'] ?? '2', 1, 10),
    stpForwardDelaySeconds: intOption('stp-forward-delay', a['stp-forward-delay'] ?? '15', 4, 30),
    stpMaxAgeSeconds: intOption('stp-max-age', a['stp-max-age'] ?? '20', 6, 40),
    hashSize: intOption('hashsize', a.hashsize, 1, MAX_HASH_SIZE_ENTRIES),
    maxMacs: intOption('max-macs', a['max-macs'] ?? String(DEFAULT_MAC_ENTRIES), MIN_MAC_ENTRIES, MAX_MAC_ENTRIES),
    mode,
    dirmode,
    gid: group('group', a.group as string | undefined),
    mgmtPath: a.mgmt ? path.resolve(String(a.mgmt)) : null,
    mgmtMode: octal('mgmtmode', a.mgmtmode as string | undefined) ?? DEFAULT_MGMT_MODE,
    mgmtGid: group('mgmtgroup', a.mgmtgroup as string | undefined),
    stdinConsole: !a.daemon && !a.nostdin && !a['daemon-child'],
    rcFile,
    rcFileRequired,
    pidFile: (a.pidfile as string | undefined) ? path.resolve(String(a.pidfile)) : null,
    foreignTags: (a['foreign-tags'] as 'pass' | 'drop') ?? 'pass',
    taps,
    tapOffload: (a['tap-offload'] ?? 'on') !== 'off',
    metrics: a.metrics === undefined ? null : metricsOption(String(a.metrics)),
    qemu: [
      ...((a['qemu-listen'] as string[] | undefined) ?? []).map((v) => parseQemuSpec('listen', v)),
      ...((a['qemu-connect'] as string[] | undefined) ?? []).map((v) => parseQemuSpec('connect', v)),
      ...((a['qemu-dgram'] as string[] | undefined) ?? []).map((v) => parseQemuSpec('dgram', v)),
    ],
    vhostUser: ((a['vhost-user'] as string[] | undefined) ?? []).map(parseVhostUserPath),
  };
}

/** Parses a vde_switch command line (no side effects); returns the canonical arguments, the parsed values and the options. */
export async function parseSwitchArgs(argv: string[]): Promise<{ args: string[]; a: Record<string, unknown>; opts: SwitchOptions | null }> {
  const args = getoptLongOnly(argv, SPECS);
  const a = (await parser(args).parseAsync()) as Record<string, unknown>;
  if (a.help || a.version) return { args, a, opts: null };
  if ((a._ as unknown[]).length) throw new CliError(`unexpected argument "${(a._ as unknown[])[0]}"`);
  return { args, a, opts: toOptions(a) };
}

/** Entry point of bin/vde_switch; returns the process exit code once the switch is serving or failed (-1 = keep running). */
export async function main(argv: string[]): Promise<number> {
  installCrashGuard('vde_switch');
  setProgram('vde_switch');
  let args: string[];
  let a: Record<string, unknown>;
  let opts: SwitchOptions | null;
  try {
    ({ args, a, opts } = await parseSwitchArgs(argv));
  } catch (e) {
    process.stderr.write(`vde_switch: ${errorText(e)}\nTry 'vde_switch --help' for the options.\n`);
    return 1;
  }
  if (a.version) {
    process.stdout.write(`${versionLine('vde_switch')}\n`);
    return 0;
  }
  if (!opts) {
    process.stdout.write(await helpText(parser([]), EXAMPLES));
    return 0;
  }
  if (a.verbose) setVerbose(true);
  const logFile = a.logfile ? path.resolve(String(a.logfile)) : undefined;
  if (a.daemon && !a['daemon-child']) {
    // the background copy starts in this directory and gets every path already absolute
    const abs = args.filter((x) => x !== '--daemon').map((x) => {
      const m = /^--(sock|pidfile|mgmt|rcfile|logfile)=(.*)$/.exec(x);
      if (/^--metrics=unix:/.test(x)) return `--metrics=unix:${path.resolve(x.slice('--metrics=unix:'.length))}`;
      return m ? `--${m[1]}=${path.resolve(m[2])}` : x;
    });
    return daemonize('vde_switch', abs, { logFile });
  }
  const isChild = Boolean(a['daemon-child']);
  try {
    if (logFile) useLogFile(logFile);
    else if (isChild) useSyslog();
  } catch (e) {
    if (!(isChild && reportStarted(errorText(e)))) process.stderr.write(`vde_switch: ${errorText(e)}\n`);
    return 1;
  }
  const sw = new VdeSwitch(opts);
  try {
    await sw.start();
  } catch (e) {
    const msg = errorText(e);
    if (!(isChild && reportStarted(msg))) process.stderr.write(`vde_switch: ${msg}\n`);
    await sw.stop('start-up failed');
    return 1;
  }
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void sw.stop(`caught ${sig}, cleaning up and exiting`));
  process.on('SIGPIPE', () => {});
  sw.onStopped(() => setImmediate(() => process.exit(sw.exitCode)));
  if (isChild) reportStarted();
  log('info', `switch running on ${sw.dir} (${sw.state.numPorts} ports)`);
  return -1;
}
