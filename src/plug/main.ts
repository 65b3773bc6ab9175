/**
 * The `vde_plug` command with vdeplug4's syntax: no locator or one locator = plug it into
 * stdin/stdout (2-byte length framing, for dpipe and ssh cables); two locators = join them;
 * `LOCATOR = COMMAND ARGS` = join it to a command's stdin/stdout. Options as vdeplug4's vde_plug
 * plus --reconnect and --logfile, read as getopt_long_only reads them. Errors in locators or
 * options exit with status 1 and name the bad part. A plug whose two ends are the same switch
 * is refused (it would loop every broadcast back into the switch).
 */
import fs from 'node:fs';
import path from 'node:path';
import yargs from 'yargs';
import { CliError, getoptLongOnly, helpText, specsFromOptions, standardSpecs, type Example } from '../core/cli.js';
import { daemonize } from '../core/daemon.js';
import { errorText, installCrashGuard } from '../core/errors.js';
import { setProgram, setVerbose } from '../core/log.js';
import { parseOctal } from '../core/perms.js';
import { versionLine } from '../core/version.js';
import { runWire } from '../ports/runwire.js';
import { parseLocator, resolveIndirection, type Locator } from '../ports/vnl.js';
import type { WireSide } from '../ports/wire.js';

const OPTIONS = {
  daemon: { alias: 'd', type: 'boolean', describe: 'run in the background (stdin/stdout are then /dev/null: give two locators)' },
  pidfile: { alias: 'p', type: 'string', describe: 'write the process id to FILE (removed at exit)' },
  log: { alias: 'l', type: 'boolean', describe: 'log start and stop to syslog' },
  iplog: { alias: 'L', type: 'boolean', describe: 'same as -l (IP logging is not implemented)' },
  logfile: { type: 'string', describe: 'append log messages to FILE (instead of stderr or syslog)' },
  group: { alias: 'g', type: 'string', describe: 'group of the client socket (vde://)' },
  group2: { alias: 'G', type: 'string', describe: 'like -g, for the second locator' },
  mode: { alias: ['m', 'mod'], type: 'string', describe: 'octal mode of the client socket (vde://)' },
  mode2: { alias: ['M', 'mod2'], type: 'string', describe: 'like -m, for the second locator' },
  port: { type: 'string', describe: 'switch port for the first locator (prefer DIR[PORT])' },
  port2: { type: 'string', describe: 'switch port for the second locator' },
  descr: { alias: 'D', type: 'string', default: 'vdeplug:', describe: 'description shown by the switch' },
  reconnect: { type: 'boolean', describe: 'when a switch or stream server goes away, keep the other end and re-attach with backoff' },
  verbose: { type: 'boolean', describe: 'log debug messages' },
  'daemon-child': { type: 'boolean', hidden: true },
} as const;
const SPECS = specsFromOptions(OPTIONS, standardSpecs());

/** The --help examples (each one line, ready to paste). */
export const EXAMPLES: Example[] = [
  { command: 'vde_plug /tmp/sw', what: 'stdin/stdout to the switch in /tmp/sw' },
  { command: 'dpipe vde_plug /tmp/s1 = ssh host vde_plug /tmp/s2', what: 'a cable between two hosts (ssh encrypts and authenticates it)' },
  { command: 'vde_plug --reconnect vde:///tmp/s1 vde:///tmp/s2', what: 'a local cable that survives switch restarts' },
  { command: 'vde_plug /tmp/sw tap://tap0', what: 'bridge a tap interface (root)' },
  { command: "vde_plug /tmp/sw 'udp://5000->127.0.0.1:5001'", what: 'a UDP tunnel (give the far host instead of 127.0.0.1)' },
  { command: "vde_plug /tmp/sw 'stream://unix:/tmp/q.sock[server]'", what: 'serve QEMU -netdev stream,server=off,addr.type=unix,addr.path=/tmp/q.sock' },
  { command: 'vde_plug switch:///tmp/node null://', what: 'a switch without a switch process: others join with vde_plug /tmp/node' },
  { command: "vde_plug 'vlan://10{vde:///tmp/sw}' tap://tap0", what: 'the tap sees VLAN 10 of the switch untagged' },
  { command: 'vde_plug /tmp/sw vxlan://192.0.2.2,192.0.2.3/vni=42', what: 'VXLAN to static unicast peers (no multicast needed), as Linux vxlan devices with static FDB entries' },
  { command: "vde_plug /tmp/sw 'crypt:///etc/vde/cable.key{udp://5000->192.0.2.7:5000}'", what: 'an authenticated encrypted UDP cable (the same key file on both hosts)' },
];

function parser(argv: string[]) {
  return yargs(argv)
    .scriptName('vde_plug')
    .usage(
      'Usage:\n' +
        '  vde_plug [OPTIONS] [LOCATOR]              plug LOCATOR into stdin/stdout (2-byte length framing)\n' +
        '  vde_plug [OPTIONS] LOCATOR LOCATOR        join two endpoints\n' +
        '  vde_plug [OPTIONS] [LOCATOR] = CMD ARGS   join LOCATOR to a command\'s stdin/stdout\n\n' +
        'A LOCATOR without "://" is a switch directory (vde://). Kinds:\n' +
        '  vde://DIR[PORT/group=G/mode=M]   tap://IF   null://   ptp://PATH   cmd://COMMAND ARGS\n' +
        '  udp://[SRC:]SPORT->HOST:PORT     vxlan://GROUP/vni=N/port=P/if=IF   vxvde://GROUP\n' +
        '  stream://unix:PATH[server/framing=2]   stream://tcp:HOST:PORT[server/framing=2]   (QEMU: framing=4)\n' +
        '  dgram://unix:LOCAL->REMOTE   dgram://udp:[LADDR:]LPORT->HOST:PORT   slirp:///OPTIONS\n' +
        '  switch://DIR[mode=M/hashsize=N]   hub://DIR   multi://DIR   seqpacket://FD\n' +
        '  vlan://VLAN[untag=V/tag=V:V/trunk]{LOCATOR}\n' +
        '  vxlan://PEER,PEER/vni=N/port=P/peers=FILE   (unicast VXLAN, head-end replication)\n' +
        '  crypt://KEYFILE[pass/kid=N/cipher=aes-256-gcm/rekey=S]{LOCATOR}   (authenticated encryption over a\n' +
        '    datagram or stream LOCATOR: udp, dgram, ptp, stream, stdio, cmd)',
    )
    .options(OPTIONS)
    .version(false)
    .option('version', { type: 'boolean', describe: 'print the version' })
    .strictOptions()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .help(false)
    .option('help', { alias: 'h', type: 'boolean', describe: 'show this help' })
    .parserConfiguration({ 'unknown-options-as-args': false, 'greedy-arrays': false })
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    });
}

function locator(s: string): Locator {
  return parseLocator(resolveIndirection(s));
}

function side(loc: Locator, a: Record<string, unknown>, second: boolean, reconnect: boolean): WireSide {
  const modeStr = (second ? a.mode2 : a.mode) as string | undefined;
  let mode: number | undefined;
  if (modeStr !== undefined) {
    mode = parseOctal(modeStr);
    if (mode === undefined) throw new CliError(`--${second ? 'mode2' : 'mode'}: "${modeStr}" is not an octal mode`);
  }
  const portStr = (second ? a.port2 : a.port) as string | undefined;
  let port: number | undefined;
  if (portStr !== undefined) {
    if (!/^\d+$/.test(portStr) || Number(portStr) > 65535) throw new CliError(`--${second ? 'port2' : 'port'}: "${portStr}" is not a port number`);
    port = Number(portStr);
  }
  return {
    locator: loc,
    options: { description: String(a.descr ?? 'vdeplug:'), group: (second ? a.group2 : a.group) as string | undefined, mode, port },
    reconnect,
  };
}

/** The switch directory a vde:// side names, canonical, or null (other kinds, or a directory that does not exist). */
function switchDirOf(l: Locator): string | null {
  if (l.kind !== 'vde') return null;
  try {
    return fs.realpathSync(l.path || '/var/run/vde.ctl');
  } catch {
    return null;
  }
}

/** Makes the paths of a locator absolute (the background copy of -d must not depend on its directory). */
function absolute(l: Locator): Locator {
  const abs = (p: string | undefined): string | undefined => (p ? path.resolve(p) : p);
  switch (l.kind) {
    case 'vde':
    case 'switch':
    case 'hub':
    case 'multi':
      return l.path ? { ...l, path: path.resolve(l.path) } : l;
    case 'ptp':
      return { ...l, path: path.resolve(l.path) };
    case 'stream':
      return l.transport === 'unix' ? { ...l, path: abs(l.path) } : l;
    case 'dgram':
      return l.transport === 'unix' ? { ...l, localPath: abs(l.localPath), remotePath: abs(l.remotePath) } : l;
    case 'vlan':
      return { ...l, inner: absolute(l.inner) };
    case 'crypt':
      return { ...l, keyFile: path.resolve(l.keyFile), inner: absolute(l.inner) };
    default:
      return l;
  }
}

/** Parses a vde_plug command line (no side effects): the two sides and the parsed options. */
export async function parsePlugArgs(argv: string[]): Promise<{ a: Record<string, unknown>; sides: [WireSide, WireSide] | null; mainArgs: string[]; command: string[] | null }> {
  const eq = argv.indexOf('=');
  const command = eq >= 0 ? argv.slice(eq + 1) : null;
  const mainArgs = getoptLongOnly(eq >= 0 ? argv.slice(0, eq) : argv, SPECS);
  const a = (await parser(mainArgs).parseAsync()) as Record<string, unknown>;
  if (a.help || a.version) return { a, sides: null, mainArgs, command };
  const pos = (a._ as (string | number)[]).map(String);
  const reconnect = Boolean(a.reconnect);
  if (command !== null && command.length === 0) throw new CliError('"=" must be followed by a command');
  if (pos.length > (command ? 1 : 2)) throw new CliError(`too many locators: ${pos.join(' ')}`);
  const first = absolute(locator(pos[0] ?? ''));
  const secondLoc: Locator = command ? { kind: 'cmd', argv: command } : pos.length === 2 ? absolute(locator(pos[1])) : { kind: 'stdio' };
  const d1 = switchDirOf(first);
  if (d1 !== null && d1 === switchDirOf(secondLoc))
    throw new CliError(`both ends are the switch ${d1}: such a plug loops every broadcast back into the switch`);
  return { a, sides: [side(first, a, false, reconnect), side(secondLoc, a, true, reconnect)], mainArgs, command };
}

/** Entry point of bin/vde_plug; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  installCrashGuard('vde_plug');
  setProgram('vde_plug');
  let a: Record<string, unknown>;
  let sides: [WireSide, WireSide] | null;
  let mainArgs: string[];
  let command: string[] | null;
  try {
    ({ a, sides, mainArgs, command } = await parsePlugArgs(argv));
  } catch (e) {
    process.stderr.write(`vde_plug: ${errorText(e)}\nTry 'vde_plug --help' for the syntax.\n`);
    return 1;
  }
  if (a.version) {
    process.stdout.write(`${versionLine('vde_plug')}\n`);
    return 0;
  }
  if (!sides) {
    process.stdout.write(await helpText(parser([]), EXAMPLES));
    return 0;
  }
  if (a.verbose) setVerbose(true);
  const logFile = a.logfile ? path.resolve(String(a.logfile)) : undefined;
  const pidfile = a.pidfile ? path.resolve(String(a.pidfile)) : undefined;
  if (a.daemon && !a['daemon-child']) {
    if (sides[1].locator.kind === 'stdio')
      process.stderr.write('vde_plug: note: in the background stdin and stdout are /dev/null, so this plug ends at once; give two locators (e.g. vde_plug -d /tmp/sw tap://tap0)\n');
    const rest = mainArgs.filter((x) => x !== '--daemon').map((x) => {
      const m = /^--(pidfile|logfile)=(.*)$/.exec(x);
      return m ? `--${m[1]}=${path.resolve(m[2])}` : x;
    });
    return daemonize('vde_plug', command ? [...rest, '=', ...command] : rest, { logFile });
  }
  return runWire(sides, {
    program: 'vde_plug',
    daemonChild: Boolean(a['daemon-child']),
    pidfile,
    logFile,
    syslog: Boolean(a.log || a.iplog),
    logStartStop: Boolean(a.log || a.iplog),
  });
}
