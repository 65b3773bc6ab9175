/**
 * The `vde_plug` command with vdeplug4's syntax: no locator or one locator = plug it into
 * stdin/stdout (2-byte length framing, for dpipe and ssh cables); two locators = join them;
 * `LOCATOR = COMMAND ARGS` = join it to a command's stdin/stdout. Options as vdeplug4's vde_plug
 * plus --reconnect and --logfile, read as getopt_long_only reads them. Errors in locators or
 * options exit with status 1 and name the bad part. A plug whose two ends are the same switch
 * is refused (it would loop every broadcast back into the switch).
 */
import path from 'node:path';
import type { Options } from 'yargs';
import { CliError, getoptLongOnly, helpText, octalOption, specsFromOptions, standardSpecs, toolParser, type Example } from '../core/cli.js';
import { daemonize } from '../core/daemon.js';
import { errorText, installCrashGuard } from '../core/errors.js';
import { setProgram, setVerbose } from '../core/log.js';
import { parseOctal } from '../core/perms.js';
import { versionLine } from '../core/version.js';
import { metricsOption } from '../ports/metrics.js';
import { WireObservation } from '../ports/observe.js';
import { cablePorts, impairOptions, Impairments, seedOption, type CableDir, type ImpairSpec } from '../ports/impair.js';
import { formatLocator } from '../ports/vnl.js';
import { runWire } from '../ports/runwire.js';
import { startPlugConsole } from './console.js';
import { absoluteLocator, switchDirOf } from '../ports/paths.js';
import { parseLocator, resolveIndirection, type Locator } from '../ports/vnl.js';

/** Default mode of the management socket. */
export const PLUG_MGMT_MODE = 0o600;
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
  mgmt: { type: 'string', describe: 'management console on this unix socket (vdecmd, vdeterm, vde_capture): impair, capture/start, events, showinfo' },
  mgmtmode: { type: 'string', describe: 'octal mode of the management socket (default 0600)' },
  metrics: { type: 'string', describe: 'serve Prometheus metrics on /metrics at tcp:HOST:PORT, tcp:PORT (127.0.0.1) or unix:PATH' },
  impair: { type: 'string', array: true, describe: 'link emulation, [LR:|RL:]SPEC (LR: first locator to second; no prefix: both ways), e.g. "LR:delay 10ms loss 1%"; repeatable' },
  seed: { type: 'string', describe: 'seed of the link emulation\'s random numbers (the same seed loses the same frames)' },
  offload: {
    type: 'string',
    choices: ['on', 'off'],
    default: 'on',
    describe: 'on: 64 KiB TCP segments with a virtio-net header where the other end is vde-ts too (switch, cable), taps with TSO/checksum offloads; off: plain frames only',
  },
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
  { command: "vde_plug --reconnect /tmp/sw 'passt:///tcp-ports=8080:80'", what: 'passt as the NAT (Debian package passt), host port 8080 to the guest\'s 80, restarted if it dies' },
  { command: "vde_plug /tmp/sw 'slirp:///mtu=65520'", what: 'libslirp as the NAT, announcing MTU 65520 for namespaces and VMs whose path takes 64 KiB frames' },
  { command: 'vde_plug switch:///tmp/node null://', what: 'a switch without a switch process: others join with vde_plug /tmp/node' },
  { command: "vde_plug 'vlan://10{vde:///tmp/sw}' tap://tap0", what: 'the tap sees VLAN 10 of the switch untagged' },
  { command: 'vde_plug --mgmt /tmp/cable.mgmt /tmp/s1 /tmp/s2', what: 'a cable you can watch: vde_capture /tmp/cable.mgmt | tshark -r -' },
  { command: "vde_plug --impair 'LR:delay 10ms loss 1%' --impair 'RL:rate 10mbit' /tmp/s1 /tmp/s2", what: 'a cable with 10 ms and 1 % loss one way, 10 Mbit/s the other' },
  { command: "vde_plug --mgmt /tmp/cable.mgmt --impair 'delay 5ms' /tmp/s1 /tmp/s2", what: 'the same, changed while it runs: vdecmd -s /tmp/cable.mgmt impair both delay 50ms' },
  { command: 'vde_plug /tmp/sw vxlan://192.0.2.2,192.0.2.3/vni=42', what: 'VXLAN to static unicast peers (no multicast needed), as Linux vxlan devices with static FDB entries' },
  { command: "vde_plug /tmp/sw 'crypt:///etc/vde/cable.key{udp://5000->192.0.2.7:5000}'", what: 'an authenticated encrypted UDP cable (the same key file on both hosts)' },
];

function parser(argv: string[]) {
  return toolParser(
    argv,
    'vde_plug',
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
      '    datagram or stream LOCATOR: udp, dgram, ptp, stream, stdio, cmd); KEYFILE holds "KEYID HEX" lines,\n' +
      '    mode 0600, the same on both ends: (umask 077; mkdir -p /etc/vde; echo "1 $(openssl rand -hex 32)" > /etc/vde/cable.key)',
    OPTIONS as unknown as Record<string, Options>,
  );
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
    options: { description: String(a.descr ?? 'vdeplug:'), group: (second ? a.group2 : a.group) as string | undefined, mode, port, offload: a.offload !== 'off' },
    reconnect,
  };
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
  const first = absoluteLocator(locator(pos[0] ?? ''));
  const secondLoc: Locator = command ? { kind: 'cmd', argv: command } : pos.length === 2 ? absoluteLocator(locator(pos[1])) : { kind: 'stdio' };
  const d1 = switchDirOf(first);
  if (d1 !== null && d1 === switchDirOf(secondLoc))
    throw new CliError(`both ends are the switch ${d1}: such a plug loops every broadcast back into the switch`);
  return { a, sides: [side(first, a, false, reconnect), side(secondLoc, a, true, reconnect)], mainArgs, command };
}

/** The plug's link emulation options, checked: --impair (each direction at most once), --seed, --mgmt, --mgmtmode. */
export function plugImpairOptions(a: Record<string, unknown>): { impairs: Array<{ dir: CableDir; spec: ImpairSpec }>; seed?: number; mgmt?: string; mgmtMode: number } {
  return {
    impairs: impairOptions(a.impair, true),
    seed: seedOption(a.seed),
    mgmt: a.mgmt === undefined ? undefined : path.resolve(String(a.mgmt)),
    mgmtMode: octalOption('mgmtmode', a.mgmtmode) ?? PLUG_MGMT_MODE,
  };
}

/** Entry point of bin/vde_plug; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  installCrashGuard('vde_plug');
  setProgram('vde_plug');
  let a: Record<string, unknown>;
  let sides: [WireSide, WireSide] | null;
  let mainArgs: string[];
  let command: string[] | null;
  let imp: ReturnType<typeof plugImpairOptions>;
  try {
    ({ a, sides, mainArgs, command } = await parsePlugArgs(argv));
    imp = plugImpairOptions(a);
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
  let impairments: Impairments | null = null;
  const logFile = a.logfile ? path.resolve(String(a.logfile)) : undefined;
  const pidfile = a.pidfile ? path.resolve(String(a.pidfile)) : undefined;
  let metrics: string | undefined;
  try {
    if (a.metrics !== undefined) metrics = metricsOption(String(a.metrics));
  } catch (e) {
    process.stderr.write(`vde_plug: ${errorText(e)}\n`);
    return 1;
  }
  if (a.daemon && !a['daemon-child']) {
    if (sides[1].locator.kind === 'stdio')
      process.stderr.write('vde_plug: note: in the background stdin and stdout are /dev/null, so this plug ends at once; give two locators (e.g. vde_plug -d /tmp/sw tap://tap0)\n');
    const rest = mainArgs.filter((x) => x !== '--daemon').map((x) => {
      const m = /^--(pidfile|logfile|mgmt)=(.*)$/.exec(x);
      if (/^--metrics=/.test(x) && metrics) return `--metrics=${metrics}`;
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
    beforeStart: (wire) => {
      impairments = new Impairments(wire.engine, imp.seed);
      for (const { dir, spec } of imp.impairs) {
        try {
          for (const port of cablePorts(dir)) impairments.set(port, 'out', spec);
        } catch (e) {
          throw new Error(`--impair: ${(e as Error).message.replace(/^impair: /, '')}`);
        }
      }
    },
    afterStart: imp.mgmt || metrics ? async (wire) => {
      const obs = new WireObservation(wire, 'vde_plug');
      const closers: Array<() => void> = [() => obs.close()];
      const closeAll = (): void => closers.splice(0).reverse().forEach((c) => c());
      try {
        const s = sides!;
        if (imp.mgmt && impairments)
          closers.push(await startPlugConsole(imp.mgmt, imp.mgmtMode, impairments, () => ({ left: formatLocator(s[0].locator), right: formatLocator(s[1].locator) }), obs.commands()));
        if (metrics) await obs.serveMetrics(metrics);
      } catch (e) {
        closeAll();
        throw e;
      }
      return closeAll;
    } : undefined,
  });
}
