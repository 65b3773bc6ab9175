/**
 * The `slirpvde` command (vde2 2.3.2's syntax): connects a user-mode NAT (libslirp, on its own
 * native thread) to a switch, or with `-` to stdin/stdout using the 2-byte length framing. It is
 * a VdePlug with a vde:// side and a slirp side, so frames never pass through JavaScript. As in
 * slirpvde, DHCP is off unless -D is given and only IPv4 is served. -X/-x (X11 and unix-socket
 * forwards) are not implemented and are rejected with a clear message.
 */
import path from 'node:path';
import yargs from 'yargs';
import { CliError, getoptLongOnly, helpText, specsFromOptions, standardSpecs, type Example } from '../core/cli.js';
import { daemonize } from '../core/daemon.js';
import { errorText, installCrashGuard } from '../core/errors.js';
import { log, setProgram, setVerbose } from '../core/log.js';
import { parseOctal } from '../core/perms.js';
import { versionLine } from '../core/version.js';
import { buildSlirpConfig, parseForward, SlirpOptionError, type HostForward, type SlirpConfig } from '../ports/kinds/slirp-options.js';
import type { ConfiguredSlirpLocator, SlirpHandle } from '../ports/kinds/slirp.js';
import { metricsOption } from '../ports/metrics.js';
import { WireObservation } from '../ports/observe.js';
import { runWire } from '../ports/runwire.js';
import { parseLocator, type Locator } from '../ports/vnl.js';
import type { WireSide } from '../ports/wire.js';
import { startSlirpConsole } from './console.js';


const OPTIONS = {
  sock: { alias: ['s', 'socket', 'vdesock', 'unix'], type: 'string', describe: 'switch directory (or - for stdin/stdout)' },
  pidfile: { alias: 'p', type: 'string', describe: 'write the process id to FILE (removed at exit)' },
  logfile: { type: 'string', describe: 'append log messages to FILE (instead of stderr or syslog)' },
  group: { alias: 'g', type: 'string', describe: 'group of the switch port socket' },
  mod: { alias: ['m', 'mode'], type: 'string', describe: 'octal mode of the switch port socket' },
  port: { alias: 'P', type: 'string', describe: 'switch port number' },
  daemon: { alias: 'd', type: 'boolean', describe: 'run in the background (logs to --logfile, else syslog)' },
  host: { alias: ['H', 'n', 'network'], type: 'string', describe: 'virtual gateway ADDR[/LEN] (default 10.0.2.2/24; host part 0 = network+2)' },
  dns: { alias: ['N', 'nameserver'], type: 'string', describe: 'DNS proxy address (default network+3)' },
  'dhcp-on': { type: 'boolean', hidden: true },
  'dhcp-start': { type: 'string', hidden: true },
  L: { type: 'string', array: true, describe: 'TCP forward HPORT:GUESTIP:GPORT ([HOSTIP:] prefix allowed), repeatable' },
  U: { type: 'string', array: true, describe: 'UDP forward HPORT:GUESTIP:GPORT, repeatable' },
  X: { type: 'string', describe: 'X11 forward (not implemented)' },
  x: { type: 'string', describe: 'PORT:UNIXPATH forward (not implemented)' },
  mgmt: { alias: 'M', type: 'string', describe: 'management socket: add/remove/list port forwards at run time, capture (vde_capture), events' },
  metrics: { type: 'string', describe: 'serve Prometheus metrics on /metrics at tcp:HOST:PORT, tcp:PORT (127.0.0.1) or unix:PATH' },
  tftp: { alias: 't', type: 'string', describe: 'serve DIR over TFTP' },
  quiet: { alias: 'q', type: 'boolean', describe: 'no start-up messages' },
  verbose: { alias: 'v', type: 'boolean', describe: 'log debug messages and guest errors' },
  'daemon-child': { type: 'boolean', hidden: true },
} as const;
const SPECS = specsFromOptions(OPTIONS, standardSpecs());

/** The --help examples (each one line, ready to paste). */
export const EXAMPLES: Example[] = [
  { command: 'slirpvde -D /tmp/sw', what: 'NAT with DHCP for the switch in /tmp/sw (guests get 10.0.2.15, ...)' },
  { command: 'slirpvde -D -L 2222:10.0.2.15:22 /tmp/sw', what: "also forward host port 2222 to a guest's ssh" },
  { command: 'slirpvde -H 192.168.50.0/24 -D -t /srv/tftp /tmp/sw', what: 'other network, TFTP served from /srv/tftp' },
  { command: 'dpipe vde_plug /tmp/sw = ssh host slirpvde -D -', what: 'NAT on a remote host over ssh' },
  { command: 'slirpvde -D -M /tmp/nat.mgmt /tmp/sw', what: 'with a console: vdecmd -s /tmp/nat.mgmt fwd/add tcp 8080:10.0.2.15:80' },
  { command: "vde_plug 'slirp:///tcpfwd=8080:10.0.2.15:80' /tmp/sw", what: 'the vdeplug4 equivalent (DHCP on, IPv6 too)' },
];

function parser(argv: string[]) {
  return yargs(argv)
    .scriptName('slirpvde')
    .usage('Usage: slirpvde [OPTIONS] [SWITCHDIR]\n\nUser-mode NAT (libslirp) for a VDE switch; SWITCHDIR "-" = frames on stdin/stdout (2-byte length framing).')
    .options(OPTIONS)
    .version(false)
    .option('version', { type: 'boolean', describe: 'print the version' })
    .epilog('-D, --dhcp[=START]  serve DHCP (off unless given), pool from START (default network+15)')
    .strictOptions()
    .parserConfiguration({ 'greedy-arrays': false })
    .wrap(Math.min(110, process.stdout.columns || 100))
    .help(false)
    .option('help', { alias: 'h', type: 'boolean', describe: 'show this help' })
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    });
}

/** Rewrites slirpvde's optional-argument -D/--dhcp[=START] into hidden flags yargs understands. */
export function rewriteDhcp(argv: string[]): string[] {
  const out: string[] = [];
  let rest = false;
  for (const a of argv) {
    if (rest || a === '--') {
      rest = true;
      out.push(a);
    } else if (a === '-D' || a === '--dhcp') out.push('--dhcp-on');
    else if (a.startsWith('--dhcp=')) out.push('--dhcp-on', `--dhcp-start=${a.slice(7)}`);
    else if (/^-D./.test(a)) out.push('--dhcp-on', `--dhcp-start=${a.slice(2).replace(/^=/, '')}`);
    else out.push(a);
  }
  return out;
}

/** Builds the slirp configuration from parsed slirpvde arguments. */
export function slirpvdeConfig(a: Record<string, unknown>): SlirpConfig {
  const forwards: HostForward[] = [];
  for (const [opt, udp] of [['L', false], ['U', true]] as const) {
    for (const v of (a[opt] as string[] | undefined) ?? []) forwards.push(parseForward(`-${opt}`, String(v), udp));
  }
  return buildSlirpConfig(
    {
      v4: true,
      v6: false,
      host: a.host as string | undefined,
      nameserver: a.dns as string | undefined,
      dhcp: Boolean(a['dhcp-on']),
      dhcpStart: a['dhcp-start'] as string | undefined,
      tftpPath: a.tftp as string | undefined,
      forwards,
      verbose: Boolean(a.verbose),
    },
    { host: '-H', vnameserver: '-N', dhcp: '-D', tftp_path: '-t', tcpfwd: '-L', udpfwd: '-U' },
  );
}


/** Parses a slirpvde command line (no side effects): the two sides, the configuration and the parsed options. */
export async function parseSlirpvdeArgs(argv: string[]): Promise<{ a: Record<string, unknown>; args: string[]; sides: [WireSide, WireSide] | null; cfg: SlirpConfig | null }> {
  const args = getoptLongOnly(rewriteDhcp(argv), SPECS);
  const a = (await parser(args).parseAsync()) as Record<string, unknown>;
  if (a.help || a.version) return { a, args, sides: null, cfg: null };
  if (a.X !== undefined) throw new CliError('-X (X11 forwarding) is not implemented in this build');
  if (a.x !== undefined) throw new CliError('-x (PORT:UNIXPATH forwarding) is not implemented in this build');
  const pos = (a._ as (string | number)[]).map(String);
  if (pos.length > 1) throw new CliError(`too many arguments: ${pos.join(' ')}`);
  if (pos.length === 1 && a.sock !== undefined) throw new CliError('give the switch either with -s or as an argument, not both');
  const dir = (a.sock as string | undefined) ?? pos[0] ?? '';
  let mode: number | undefined;
  if (a.mod !== undefined) {
    mode = parseOctal(String(a.mod));
    if (mode === undefined) throw new CliError(`-m: "${String(a.mod)}" is not an octal mode`);
  }
  let port: number | undefined;
  if (a.port !== undefined) {
    const p = String(a.port);
    if (!/^\d{1,5}$/.test(p) || Number(p) > 65535) throw new CliError(`-P: "${p}" is not a port number`);
    port = Number(p);
  }
  const cfg = slirpvdeConfig(a);
  const swLoc: Locator = dir === '-' ? { kind: 'stdio' } : dir.includes('://') ? parseLocator(dir) : { kind: 'vde', path: dir === '' ? '' : path.resolve(dir) };
  const slirpLoc: ConfiguredSlirpLocator = { kind: 'slirp', options: {}, config: cfg };
  const sides: [WireSide, WireSide] = [
    { locator: swLoc, options: { description: 'slirpvde:', group: a.group as string | undefined, mode, port }, reconnect: false },
    { locator: slirpLoc, options: {}, reconnect: false },
  ];
  return { a, args, sides, cfg };
}

/** Entry point of bin/slirpvde; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  installCrashGuard('slirpvde');
  setProgram('slirpvde');
  let a: Record<string, unknown>;
  let args: string[];
  let sides: [WireSide, WireSide] | null;
  let cfg: SlirpConfig | null;
  try {
    ({ a, args, sides, cfg } = await parseSlirpvdeArgs(argv));
  } catch (e) {
    const msg = e instanceof SlirpOptionError ? `option ${e.message}` : errorText(e);
    process.stderr.write(`slirpvde: ${msg}\nTry 'slirpvde --help' for the syntax.\n`);
    return 1;
  }
  if (a.version) {
    process.stdout.write(`${versionLine('slirpvde')}\n`);
    return 0;
  }
  if (!sides || !cfg) {
    process.stdout.write(await helpText(parser([]), EXAMPLES));
    return 0;
  }
  const config = cfg;
  if (a.verbose) setVerbose(true);
  const logFile = a.logfile ? path.resolve(String(a.logfile)) : undefined;
  const mgmt = a.mgmt ? path.resolve(String(a.mgmt)) : undefined;
  let metrics: string | undefined;
  try {
    if (a.metrics !== undefined) metrics = metricsOption(String(a.metrics));
  } catch (e) {
    process.stderr.write(`slirpvde: ${errorText(e)}\n`);
    return 1;
  }
  if (a.daemon && !a['daemon-child']) {
    const rest = args.filter((x) => x !== '--daemon').map((x) => {
      if (/^--metrics=/.test(x) && metrics) return `--metrics=${metrics}`;
      const m = /^--(pidfile|logfile|mgmt|sock|tftp)=(.*)$/.exec(x);
      return m && !(m[1] === 'sock' && (m[2] === '-' || m[2].includes('://'))) ? `--${m[1]}=${path.resolve(m[2])}` : x;
    });
    return daemonize('slirpvde', rest, { logFile });
  }
  return runWire(sides, {
    program: 'slirpvde',
    daemonChild: Boolean(a['daemon-child']),
    pidfile: a.pidfile ? path.resolve(String(a.pidfile)) : undefined,
    logFile,
    afterStart: async (wire) => {
      if (!a.quiet && sides![0].locator.kind !== 'stdio') {
        const fw = config.forwards.map((f) => ` ${f.udp ? 'udp' : 'tcp'} ${f.hostAddr}:${f.hostPort}->${f.guestAddr}:${f.guestPort}`).join('');
        log('info', `gateway ${config.host}/${config.prefixLen}, DNS ${config.nameserver}, DHCP ${config.dhcp ? `from ${config.dhcpStart}` : 'off'}${config.tftpPath ? `, TFTP ${config.tftpPath}` : ''}${fw ? `, forwards${fw}` : ''}`);
      }
      if (!mgmt && !metrics) return;
      const obs = new WireObservation(wire, 'slirpvde');
      let closeConsole: (() => void) | undefined;
      try {
        if (mgmt) {
          const handle = (wire.endpoint(1) as { slirp?: SlirpHandle } | null)?.slirp;
          if (!handle) throw new Error('the slirp endpoint is not available');
          closeConsole = await startSlirpConsole(mgmt, handle, [...config.forwards], obs.commands());
        }
        if (metrics) await obs.serveMetrics(metrics);
      } catch (e) {
        closeConsole?.();
        obs.close();
        throw e;
      }
      return () => {
        obs.close();
        closeConsole?.();
      };
    },
  });
}
