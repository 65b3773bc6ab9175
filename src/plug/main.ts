/**
 * The `vde_plug` command with vdeplug4's syntax: no locator or one locator = plug it into
 * stdin/stdout (2-byte length framing, for dpipe and ssh cables); two locators = join them;
 * `LOCATOR = COMMAND ARGS` = join it to a command's stdin/stdout. Options as vdeplug4's vde_plug
 * plus --reconnect. Errors in locators or options exit with status 1 and name the bad part.
 */
import yargs from 'yargs';
import { normalizeLongOnly } from '../core/cli.js';
import { daemonize } from '../core/daemon.js';
import { setProgram, setVerbose } from '../core/log.js';
import { parseOctal } from '../core/perms.js';
import type { PlugSide } from '../ports/wire.js';
import { runPlug } from '../ports/runwire.js';
import { LocatorError, parseLocator, resolveIndirection, type Locator } from '../ports/vnl.js';

const LONG_NAMES = ['daemon', 'pidfile', 'log', 'iplog', 'help', 'group', 'group2', 'mod', 'mod2', 'mode', 'mode2', 'port', 'port2', 'descr', 'reconnect', 'verbose'];

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
        '  dgram://unix:LOCAL->REMOTE   dgram://udp:[LADDR:]LPORT->HOST:PORT   slirp:///OPTIONS',
    )
    .option('daemon', { alias: 'd', type: 'boolean', describe: 'run in the background' })
    .option('pidfile', { alias: 'p', type: 'string', describe: 'write the process id to FILE' })
    .option('log', { alias: 'l', type: 'boolean', describe: 'log start and stop to syslog' })
    .option('iplog', { alias: 'L', type: 'boolean', describe: 'same as -l (IP logging is not implemented)' })
    .option('group', { alias: 'g', type: 'string', describe: 'group of the client socket (vde://)' })
    .option('group2', { alias: 'G', type: 'string', describe: 'like -g, for the second locator' })
    .option('mode', { alias: ['m', 'mod'], type: 'string', describe: 'octal mode of the client socket (vde://)' })
    .option('mode2', { alias: ['M', 'mod2'], type: 'string', describe: 'like -m, for the second locator' })
    .option('port', { type: 'string', describe: 'switch port for the first locator (prefer DIR[PORT])' })
    .option('port2', { type: 'string', describe: 'switch port for the second locator' })
    .option('descr', { alias: 'D', type: 'string', default: 'vdeplug:', describe: 'description shown by the switch' })
    .option('reconnect', { type: 'boolean', describe: 'when a switch or stream server goes away, keep the other end and re-attach with backoff' })
    .option('verbose', { type: 'boolean', describe: 'log debug messages' })
    .option('daemon-child', { type: 'boolean', hidden: true })
    .example('vde_plug /tmp/sw', 'stdin/stdout to the switch in /tmp/sw')
    .example('dpipe vde_plug /tmp/s1 = ssh host vde_plug /tmp/s2', 'a cable between two hosts')
    .example('vde_plug --reconnect vde:///tmp/s1 vde:///tmp/s2', 'a local cable that survives switch restarts')
    .example("vde_plug /tmp/sw tap://tap0", 'bridge a tap interface (root)')
    .example("vde_plug /tmp/sw 'udp://5000->192.0.2.7:5000'", 'a UDP tunnel')
    .example('vde_plug /tmp/sw stream://unix:/tmp/q.sock[server]', 'serve QEMU -netdev stream,server=off,addr.type=unix,addr.path=/tmp/q.sock')
    .strictOptions()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .help('help')
    .alias('help', 'h')
    .version(false)
    .parserConfiguration({ 'unknown-options-as-args': false })
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    });
}

function locator(s: string): Locator {
  return parseLocator(resolveIndirection(s));
}

function side(loc: Locator, a: Record<string, unknown>, second: boolean, reconnect: boolean): PlugSide {
  const modeStr = (second ? a.mode2 : a.mode) as string | undefined;
  let mode: number | undefined;
  if (modeStr !== undefined) {
    mode = parseOctal(modeStr);
    if (mode === undefined) throw new Error(`--${second ? 'mode2' : 'mode'}: "${modeStr}" is not an octal mode`);
  }
  const portStr = (second ? a.port2 : a.port) as string | undefined;
  let port: number | undefined;
  if (portStr !== undefined) {
    if (!/^\d+$/.test(portStr) || Number(portStr) > 65535) throw new Error(`--${second ? 'port2' : 'port'}: "${portStr}" is not a port number`);
    port = Number(portStr);
  }
  return {
    locator: loc,
    options: { description: String(a.descr ?? 'vdeplug:'), group: (second ? a.group2 : a.group) as string | undefined, mode, port },
    reconnect,
  };
}


/** Entry point of bin/vde_plug; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  setProgram('vde_plug');
  const eq = argv.indexOf('=');
  const mainArgs = eq >= 0 ? argv.slice(0, eq) : argv;
  const command = eq >= 0 ? argv.slice(eq + 1) : null;
  let a: Record<string, unknown>;
  let sides: [PlugSide, PlugSide];
  try {
    a = (await parser(normalizeLongOnly(mainArgs, LONG_NAMES)).parseAsync()) as Record<string, unknown>;
    const pos = (a._ as (string | number)[]).map(String);
    const reconnect = Boolean(a.reconnect);
    if (command !== null && command.length === 0) throw new Error('"=" must be followed by a command');
    if (pos.length > (command ? 1 : 2)) throw new Error(`too many locators: ${pos.join(' ')}`);
    const first = locator(pos[0] ?? '');
    const secondLoc: Locator = command ? { kind: 'cmd', argv: command } : pos.length === 2 ? locator(pos[1]) : { kind: 'stdio' };
    sides = [side(first, a, false, reconnect), side(secondLoc, a, true, reconnect)];
  } catch (e) {
    const msg = e instanceof LocatorError ? e.message : (e as Error).message;
    process.stderr.write(`vde_plug: ${msg}\nTry 'vde_plug --help' for the syntax.\n`);
    return 1;
  }
  if (a.verbose) setVerbose(true);
  if (a.daemon && !a['daemon-child']) return daemonize('vde_plug', argv.filter((x) => x !== '-d' && x !== '--daemon' && x !== '-daemon'));
  return runPlug(sides, {
    program: 'vde_plug',
    daemonChild: Boolean(a['daemon-child']),
    pidfile: a.pidfile as string | undefined,
    syslog: Boolean(a.log || a.iplog),
    logStartStop: Boolean(a.log || a.iplog),
  });
}
