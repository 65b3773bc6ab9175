/**
 * The `vde_switch` command: vde2's options (single-dash long forms included), validated with
 * precise errors, turned into SwitchOptions; then the switch runs until a signal, `shutdown`, or
 * EOF on the stdin console. `-d` re-launches the switch as a detached background process that
 * logs to syslog, and returns once it is serving (or prints why it failed).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yargs from 'yargs';
import { intOption, normalizeLongOnly } from '../core/cli.js';
import { daemonize, reportStarted } from '../core/daemon.js';
import { log, setProgram, setVerbose, useSyslog } from '../core/log.js';
import { deriveModes, lookupGroup, parseOctal, DEFAULT_MGMT_MODE } from '../core/perms.js';
import { parseQemuSpec } from './qemu.js';
import { VdeSwitch, type SwitchOptions } from './switch.js';

/** Default switch directory for root. */
export const DEFAULT_DIR_ROOT = '/var/run/vde.ctl';
/** Default switch directory for other users. */
export const DEFAULT_DIR_USER = '/tmp/vde.ctl';
export const DEFAULT_NUMPORTS = 32;
export const DEFAULT_HASHSIZE = 128;
export const DEFAULT_PRIORITY = 0x8000;

const LONG_NAMES = [
  'help', 'version', 'numports', 'hub', 'fstp', 'macaddr', 'priority', 'hashsize', 'sock', 'vdesock', 'unix', 'mode', 'dirmode',
  'group', 'daemon', 'pidfile', 'rcfile', 'mgmt', 'mgmtmode', 'mgmtgroup', 'nostdin', 'debugclients', 'tap', 'tap-offload', 'foreign-tags', 'verbose', 'stp-hello', 'stp-forward-delay', 'stp-max-age', 'qemu-listen', 'qemu-connect', 'qemu-dgram',
];

function parser(argv: string[]) {
  const root = process.geteuid?.() === 0;
  return yargs(argv)
    .scriptName('vde_switch')
    .usage(
      'Usage: vde_switch [OPTIONS]\n\n' +
        'A VDE Ethernet switch. Clients (QEMU -netdev vde, vde_plug, libvdeplug programs) connect to\n' +
        `the control socket DIR/ctl; the default DIR is ${DEFAULT_DIR_ROOT} as root, ${DEFAULT_DIR_USER} otherwise.\n` +
        'Single-dash long options (-sock DIR, -hub) work as in vde2.',
    )
    .option('sock', { alias: ['s', 'vdesock', 'unix'], type: 'string', describe: 'switch directory (control socket DIR/ctl)', default: root ? DEFAULT_DIR_ROOT : DEFAULT_DIR_USER, defaultDescription: root ? DEFAULT_DIR_ROOT : DEFAULT_DIR_USER })
    .option('numports', { alias: 'n', type: 'string', describe: 'number of ordinary ports (1..N; port 0 is extra)', default: String(DEFAULT_NUMPORTS) })
    .option('hub', { alias: 'x', type: 'boolean', describe: 'hub mode: flood every frame, no learning, no VLANs' })
    .option('fstp', { alias: 'F', type: 'boolean', describe: 'run spanning tree (IEEE 802.1D RSTP/STP BPDUs) against loops' })
    .option('macaddr', { type: 'string', describe: 'switch MAC for spanning tree (xx:xx:xx:xx:xx:xx)' })
    .option('priority', { type: 'string', describe: 'spanning-tree bridge priority 0..65535', default: String(DEFAULT_PRIORITY) })
    .option('stp-hello', { type: 'string', describe: 'spanning-tree hello time, seconds 1..10', default: '2' })
    .option('stp-forward-delay', { type: 'string', describe: 'spanning-tree forward delay, seconds 4..30 (legacy STP peers wait twice this)', default: '15' })
    .option('stp-max-age', { type: 'string', describe: 'spanning-tree max age, seconds 6..40', default: '20' })
    .option('hashsize', { type: 'string', describe: 'initial MAC table size (it grows as needed)', default: String(DEFAULT_HASHSIZE) })
    .option('mode', { alias: 'm', type: 'string', describe: 'octal mode of ctl and data sockets (default 0600)' })
    .option('dirmode', { type: 'string', describe: 'octal mode of the directory (default 02700, or derived from --mode)' })
    .option('group', { alias: 'g', type: 'string', describe: 'group owning the directory and sockets' })
    .option('mgmt', { alias: 'M', type: 'string', describe: 'management socket path (use vdecmd, vdeterm, socat)' })
    .option('mgmtmode', { type: 'string', describe: 'octal mode of the management socket (default 0600)' })
    .option('mgmtgroup', { type: 'string', describe: 'group of the management socket' })
    .option('rcfile', { alias: 'f', type: 'string', describe: 'run console commands from FILE at start' })
    .option('daemon', { alias: 'd', type: 'boolean', describe: 'run in the background, log to syslog, no stdin console' })
    .option('pidfile', { alias: 'p', type: 'string', describe: 'write the process id to FILE (removed at exit)' })
    .option('nostdin', { type: 'boolean', describe: 'do not use stdin as a console (keep running when stdin closes)' })
    .option('foreign-tags', { type: 'string', choices: ['pass', 'drop'], default: 'pass', describe: '802.1Q frames of a VLAN the port is not a member of: pass them through in the port\'s untagged VLAN, or drop them (vde2)' })
    .option('qemu-listen', { type: 'string', array: true, describe: 'accept QEMU -netdev stream/socket clients: unix:PATH or tcp:[HOST:]PORT (repeatable)' })
    .option('qemu-connect', { type: 'string', array: true, describe: 'connect to a listening QEMU (-netdev stream,server=on / socket,listen=): unix:PATH or tcp:HOST:PORT' })
    .option('qemu-dgram', { type: 'string', array: true, describe: 'a port for QEMU -netdev dgram: unix:PATH or udp:[HOST:]PORT' })
    .option('tap', { alias: 't', type: 'string', array: true, describe: 'attach a Linux tap interface, created if missing (repeatable or comma-separated; needs root or CAP_NET_ADMIN)' })
    .option('tap-offload', { type: 'string', choices: ['on', 'off'], default: 'on', describe: 'taps opened by -t use a virtio-net header with TSO/checksum offloads (TCP between taps moves 64 KiB segments); off = plain frames' })
    .option('debugclients', { alias: 'D', type: 'string', describe: 'accepted for vde2 compatibility; ignored', hidden: true })
    .option('verbose', { type: 'boolean', describe: 'log debug messages' })
    .option('daemon-child', { type: 'boolean', hidden: true })
    .version('version', 'print the version', 'VDE 2.3.3 (vde-ts 0.1.0)')
    .alias('version', 'v')
    .help('help')
    .alias('help', 'h')
    .example('vde_switch -s /tmp/sw -M /tmp/sw.mgmt', 'switch in /tmp/sw with a management socket')
    .example('vde_switch -s /tmp/sw -m 0660 -g kvm -d -p /run/sw.pid', 'shared with group kvm, in the background')
    .example('vde_switch -sock /tmp/sw -numports 64 -hub', 'vde2-style single-dash options work too')
    .example('vde_switch -F --priority 4096 -s /tmp/sw', 'spanning tree, preferred as root')
    .example('qemu-system-x86_64 -netdev vde,id=n0,sock=/tmp/sw -device virtio-net-pci,netdev=n0', 'attach a VM')
    .example('vde_switch -s /tmp/sw --qemu-listen unix:/tmp/sw.qemu', 'then: qemu ... -netdev stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/sw.qemu')
    .strict()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    });
}

function parseMac(s: string): Buffer {
  const m = /^([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})[:.]([0-9a-f]{1,2})$/i.exec(s);
  if (!m) throw new Error(`--macaddr: "${s}" is not a MAC address (xx:xx:xx:xx:xx:xx)`);
  return Buffer.from(m.slice(1).map((x) => parseInt(x, 16)));
}

function octal(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = parseOctal(v);
  if (n === undefined) throw new Error(`--${name}: "${v}" is not an octal mode`);
  return n;
}

function group(name: string, v: string | undefined): number | null {
  if (v === undefined) return null;
  const g = lookupGroup(v);
  if (g === undefined) throw new Error(`--${name}: no such group "${v}"`);
  return g;
}

/** Turns parsed arguments into SwitchOptions, throwing an Error that names the bad option. */
export function toOptions(a: Record<string, unknown>): SwitchOptions {
  const { mode, dirmode } = deriveModes(octal('mode', a.mode as string | undefined), octal('dirmode', a.dirmode as string | undefined));
  const home = os.homedir();
  let rcFile = (a.rcfile as string | undefined) ?? null;
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
  for (const t of taps) if (Buffer.byteLength(t) > 15 || /[\s/]/.test(t)) throw new Error(`--tap: "${t}" is not a valid interface name (at most 15 bytes, no spaces or slashes)`);
  return {
    dir: path.resolve(String(a.sock)),
    numPorts: intOption('numports', a.numports, 1, 65535),
    hub: Boolean(a.hub),
    fstp: Boolean(a.fstp),
    mac: a.macaddr ? parseMac(String(a.macaddr)) : undefined,
    priority: intOption('priority', a.priority, 0, 65535),
    stpHelloSeconds: intOption('stp-hello', a['stp-hello'] ?? '2', 1, 10),
    stpForwardDelaySeconds: intOption('stp-forward-delay', a['stp-forward-delay'] ?? '15', 4, 30),
    stpMaxAgeSeconds: intOption('stp-max-age', a['stp-max-age'] ?? '20', 6, 40),
    hashSize: intOption('hashsize', a.hashsize, 1, 1 << 24),
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
    qemu: [
      ...((a['qemu-listen'] as string[] | undefined) ?? []).map((v) => parseQemuSpec('listen', v)),
      ...((a['qemu-connect'] as string[] | undefined) ?? []).map((v) => parseQemuSpec('connect', v)),
      ...((a['qemu-dgram'] as string[] | undefined) ?? []).map((v) => parseQemuSpec('dgram', v)),
    ],
  };
}


/** Entry point of bin/vde_switch; returns the process exit code once the switch is serving or failed. */
export async function main(argv: string[]): Promise<number> {
  setProgram('vde_switch');
  const args = normalizeLongOnly(argv, LONG_NAMES);
  let a: Record<string, unknown>;
  let opts: SwitchOptions;
  try {
    a = (await parser(args).parseAsync()) as Record<string, unknown>;
    if ((a._ as unknown[]).length) throw new Error(`unexpected argument "${(a._ as unknown[])[0]}"`);
    opts = toOptions(a);
  } catch (e) {
    process.stderr.write(`vde_switch: ${(e as Error).message}\nTry 'vde_switch --help' for the options.\n`);
    return 1;
  }
  if (a.verbose) setVerbose(true);
  if (a.daemon && !a['daemon-child']) return daemonize('vde_switch', args.filter((x) => x !== '-d' && x !== '--daemon'));
  const isChild = Boolean(a['daemon-child']);
  if (isChild) useSyslog();
  const sw = new VdeSwitch(opts);
  try {
    await sw.start();
  } catch (e) {
    const msg = (e as Error).message;
    if (!(isChild && reportStarted(msg))) process.stderr.write(`vde_switch: ${msg}\n`);
    await sw.stop('start-up failed');
    return 1;
  }
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void sw.stop(`caught ${sig}, cleaning up and exiting`));
  process.on('SIGPIPE', () => {});
  sw.onStopped(() => setImmediate(() => process.exit(0)));
  if (isChild) reportStarted();
  log('info', `switch running on ${sw.dir} (${opts.numPorts} ports)`);
  return -1;
}
