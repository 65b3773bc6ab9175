/**
 * The `wirefilter` command, a drop-in for vde2's: a cable that loses, delays, duplicates,
 * corrupts and rate-limits frames, per direction, with vde2's options, value syntax, rc files
 * and management console (console.ts), and its three ways of being plugged in:
 *
 * - pipe mode under dpipe: stdin -> ALTERNATE_STDOUT is left to right, ALTERNATE_STDIN -> stdout
 *   right to left (without ALTERNATE_* descriptors: stdin -> stdout only, vde2's
 *   monodirectional filter); frames in vde2's 2-byte length framing;
 * - `-v SOCK1:SOCK2`, two switches (either may be `-`, stdin/stdout), with a console on stdin;
 * - two locators as positional arguments (any kind vde_plug knows, as vdeplug4's wirefilter).
 *
 * It is a two-port Wire (src/ports/wire.ts) with the native impair stage on each port's way
 * out; no frame passes through JavaScript. Options are read as getopt_long_only reads them; the
 * value options repeat and apply in order (`-l LR5 -l RL10`), as in vde2. vde-ts adds --seed,
 * --impair (netem-style settings), --logfile, --nostdin, --version and exact error messages.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Options } from 'yargs';
import { CliError, getoptLongOnly, helpText, octalOption, specsFromOptions, standardSpecs, toolParser, type Example } from '../core/cli.js';
import { daemonize } from '../core/daemon.js';
import { errorText, installCrashGuard } from '../core/errors.js';
import { log, setProgram, setVerbose } from '../core/log.js';
import { versionLine } from '../core/version.js';
import { EpKind, native } from '../native/index.js';
import { MAX_VDEPLUG_FRAME_BYTES, simple, type OpenedEndpoint } from '../ports/endpoint.js';
import { impairOptions, seedOption, type CableDir, type ImpairSpec } from '../ports/impair.js';
import { absoluteLocator, switchDirOf } from '../ports/paths.js';
import { metricsOption } from '../ports/metrics.js';
import { WireObservation } from '../ports/observe.js';
import { runWire } from '../ports/runwire.js';
import { formatLocator, parseLocator, resolveIndirection, type Locator } from '../ports/vnl.js';
import type { WireSide } from '../ports/wire.js';
import { type ConsoleServer, type Session, listenConsole } from '../protocol/console.js';
import { createWfConsole, WF_PROMPT } from './console.js';
import { WireFilter } from './filter.js';
import { WF_PARAMS, WfValueError, type WfParam } from './model.js';

/** vde2's default mode of the management socket. */
export const WF_MGMT_MODE = 0o700;
/** What the switches see as the description of wirefilter's ports (vde2: vde_crosscable). */
export const WF_DESCRIPTION = 'wirefilter';

const VALUE = { type: 'string', array: true } as const;
const OPTIONS = {
  rcfile: { alias: 'f', type: 'string', describe: 'run console commands from FILE before the first frame passes (Markov chains, ...)' },
  loss: { alias: 'l', ...VALUE, describe: 'loss percentage, e.g. 10, LR20.5, RL10+5 (repeatable: -l LR5 -l RL10)' },
  lostburst: { alias: 'L', ...VALUE, describe: "mean length of loss bursts (Gilbert's model with -l)" },
  delay: { alias: 'd', ...VALUE, describe: 'extra delay in ms, e.g. 10, LR10+2N (normal spread), 1000+500U (uniform)' },
  dup: { alias: 'D', ...VALUE, describe: 'duplicated frames percentage' },
  band: { alias: 'b', ...VALUE, describe: 'channel bandwidth in bytes/s (K, M, G = 2^10, 2^20, 2^30): delivery is delayed' },
  speed: { alias: 's', ...VALUE, describe: 'interface speed in bytes/s (K, M, G): frames wait for their transmission time' },
  chanbufsize: { alias: ['c', 'capacity'], ...VALUE, describe: 'channel buffer in bytes: frames above it are dropped' },
  noise: { alias: 'n', ...VALUE, describe: 'damaged bits per MiB' },
  mtu: { alias: 'm', ...VALUE, describe: 'frames longer than this many bytes are dropped' },
  nofifo: { alias: 'N', type: 'boolean', describe: 'frames may be reordered (by the delay spread)' },
  mgmt: { alias: 'M', type: 'string', describe: 'management console on this unix socket (vdecmd, vdeterm, unixterm; vde_capture captures through it)' },
  mgmtmode: { type: 'string', describe: 'octal mode of the management socket (default 0700)' },
  metrics: { type: 'string', describe: 'serve Prometheus metrics on /metrics at tcp:HOST:PORT, tcp:PORT (127.0.0.1) or unix:PATH' },
  'vde-plug': { alias: 'v', type: 'string', describe: 'join two switches, SOCK1:SOCK2 (either may be -, stdin/stdout); a console runs on stdin' },
  daemon: { type: 'boolean', describe: 'run in the background (give -v or two locators)' },
  pidfile: { type: 'string', describe: 'write the process id to FILE (removed at exit)' },
  logfile: { type: 'string', describe: 'append log messages to FILE (instead of stderr or syslog)' },
  seed: { type: 'string', describe: 'seed of the random numbers: the same seed loses, delays and corrupts the same frames' },
  impair: { type: 'string', array: true, describe: 'netem-style settings on top, [LR:|RL:]SPEC, e.g. "LR:reorder 25% gap 5" (README: Link emulation)' },
  nostdin: { type: 'boolean', describe: 'no console on stdin with -v (otherwise EOF on stdin ends wirefilter, as in vde2)' },
  blink: { type: 'string', describe: 'vde2 sends a datagram per frame to SOCKET: not supported (refused)' },
  blinkid: { type: 'string', describe: 'the id of --blink messages: not supported (refused)' },
  verbose: { type: 'boolean', describe: 'log debug messages' },
  'daemon-child': { type: 'boolean', hidden: true },
} as const;
const SPECS = specsFromOptions(OPTIONS, standardSpecs());

/** The --help examples (each one line, ready to paste). */
export const EXAMPLES: Example[] = [
  { command: 'dpipe vde_plug /tmp/s1 = wirefilter -l 10 = vde_plug /tmp/s2', what: 'a cable between two switches that loses 10 % of the frames each way' },
  { command: 'wirefilter -v /tmp/s1:/tmp/s2 -d LR20 -d RL5 -b 1250000 --nostdin', what: 'the same cable without dpipe: 20 ms one way, 5 ms the other, 10 Mbit/s' },
  { command: 'wirefilter -M /tmp/wf.mgmt --daemon -v /tmp/s1:/tmp/s2 -l 5', what: 'in the background; change it later with vdecmd -s /tmp/wf.mgmt loss 20' },
  { command: "wirefilter --seed 42 --impair 'LR:reorder 25% gap 5' --nostdin -d 10 vde:///tmp/s1 vde:///tmp/s2", what: 'reproducible impairments, with netem-style reordering on top' },
  { command: 'wirefilter -f /etc/vde2/markov.rc -v /tmp/s1:/tmp/s2 --nostdin', what: 'a Markov chain of link states from an rc file (markov-numnodes, setedge, ...)' },
];

function parser(argv: string[]) {
  return toolParser(
    argv,
    'wirefilter',
    'Usage:\n' +
      '  dpipe ... = wirefilter [OPTIONS] = ...     a filter in a dpipe cable (stdin/stdout and ALTERNATE_STDIN/ALTERNATE_STDOUT)\n' +
      '  wirefilter [OPTIONS] -v SOCK1:SOCK2       a filter between two switches\n' +
      '  wirefilter [OPTIONS] LOCATOR LOCATOR      a filter between any two endpoints (vde://, tap://, ...)\n\n' +
      'Values: [LR|RL]N[+J][K|M|G][U|N] - LR/RL: one direction (default both), +J: a random spread\n' +
      '(U uniform, N normal), K/M/G: 2^10/2^20/2^30. Left is SOCK1 (or stdin), right SOCK2.',
    OPTIONS as unknown as Record<string, Options>,
  );
}

/** Splits -v's SOCK1:SOCK2 at the first colon that does not start "://" (vde2 splits at the first colon). */
export function splitPlugPair(v: string): [string, string] {
  for (let i = 0; i < v.length; i++) if (v[i] === ':' && !v.startsWith('//', i + 1)) return [v.slice(0, i), v.slice(i + 1)];
  throw new CliError(`--vde-plug: "${v}" is not SOCK1:SOCK2`);
}

/** How the filter is plugged in. */
export type WfMode = { kind: 'pipe' } | { kind: 'locators'; left: Locator; right: Locator };

/** Everything the command line says. */
export interface WfArgs {
  a: Record<string, unknown>;
  mainArgs: string[];
  mode: WfMode;
  /** Value options in command-line order. */
  values: Array<{ param: WfParam; option: string; text: string }>;
  impairs: Array<{ dir: CableDir; spec: ImpairSpec }>;
  seed?: number;
  mgmtMode: number;
}

function locator(s: string, option: string): Locator {
  if (s === '-') return { kind: 'stdio' };
  try {
    return absoluteLocator(parseLocator(resolveIndirection(s)));
  } catch (e) {
    throw new CliError(`${option}: ${(e as Error).message}`);
  }
}

/** Parses a wirefilter command line (no side effects). */
export async function parseWfArgs(argv: string[]): Promise<WfArgs> {
  const mainArgs = getoptLongOnly(argv, SPECS);
  const a = (await parser(mainArgs).parseAsync()) as Record<string, unknown>;
  const pos = (a._ as (string | number)[]).map(String);
  const values: WfArgs['values'] = [];
  // the value options in command-line order (vde2 applies each occurrence as it comes)
  const optName: Record<string, WfParam> = { loss: 'loss', lostburst: 'lostburst', delay: 'delay', dup: 'dup', band: 'band', speed: 'speed', chanbufsize: 'chanbufsize', noise: 'noise', mtu: 'mtu' };
  for (const t of mainArgs) {
    const m = /^--([a-z-]+)=(.*)$/s.exec(t);
    if (m && optName[m[1]]) values.push({ param: optName[m[1]], option: `--${m[1]}`, text: m[2] });
  }
  if (a.blink !== undefined || a.blinkid !== undefined)
    throw new CliError(`--${a.blink !== undefined ? 'blink' : 'blinkid'}: not supported (vde2 sends a datagram per frame; use the counters of showinfo or json/showinfo)`);
  let mode: WfMode = { kind: 'pipe' };
  if (a['vde-plug'] !== undefined) {
    if (pos.length) throw new CliError(`give either -v SOCK1:SOCK2 or two locators, not both (${pos.join(' ')})`);
    const [l, r] = splitPlugPair(String(a['vde-plug']));
    if (!(l === '-' && r === '-')) mode = { kind: 'locators', left: locator(l, '--vde-plug'), right: locator(r, '--vde-plug') };
  } else if (pos.length > 2) {
    throw new CliError(`too many locators: ${pos.join(' ')}`);
  } else if (pos.length) {
    mode = { kind: 'locators', left: locator(pos[0], pos[0]), right: pos.length === 2 ? locator(pos[1], pos[1]) : { kind: 'stdio' } };
  }
  if (mode.kind === 'locators') {
    const d = switchDirOf(mode.left);
    if (d !== null && d === switchDirOf(mode.right)) throw new CliError(`both ends are the switch ${d}: such a cable loops every broadcast back into the switch`);
  }
  const impairs = impairOptions(a.impair, false);
  const seed = seedOption(a.seed);
  const mgmtMode = octalOption('mgmtmode', a.mgmtmode) ?? WF_MGMT_MODE;
  return { a, mainArgs, mode, values, impairs, seed, mgmtMode };
}

/** Builds the filter's model from the value options (errors name the option). */
export function buildFilter(w: WfArgs, bidirectional: boolean): WireFilter {
  const f = new WireFilter(bidirectional, w.seed);
  for (const v of w.values) {
    try {
      f.model.set(v.param, v.text);
    } catch (e) {
      if (e instanceof WfValueError) throw new CliError(`${v.option}: ${e.message}`);
      throw e;
    }
  }
  if (w.a.nofifo) f.model.nofifo = true;
  return f;
}

function isPipeOrSocket(fd: number): boolean {
  try {
    const st = fs.fstatSync(fd);
    return st.isFIFO() || st.isSocket();
  } catch {
    return false;
  }
}

function envFd(name: string): number | null {
  const v = process.env[name];
  if (v === undefined || !/^\d+$/.test(v)) return null;
  try {
    fs.fstatSync(Number(v));
    return Number(v);
  } catch {
    return null;
  }
}

/** The two ends of pipe mode: vde2's check_open_fifos (bidirectional with ALTERNATE_* descriptors, else stdin -> stdout). */
export function pipeSides(): { sides: [WireSide, WireSide]; bidirectional: boolean } {
  if (!isPipeOrSocket(0)) throw new CliError('stdin is not a pipe: run wirefilter inside dpipe, or give -v SOCK1:SOCK2 or two locators');
  if (!isPipeOrSocket(1)) throw new CliError('stdout is not a pipe: run wirefilter inside dpipe, or give -v SOCK1:SOCK2 or two locators');
  const altIn = envFd('ALTERNATE_STDIN');
  const a = native();
  const side = (make: () => OpenedEndpoint): WireSide => ({ locator: { kind: 'stdio' }, options: {}, reconnect: false, opened: make });
  if (altIn === null) {
    // monodirectional: left reads stdin, right writes stdout; the unused halves are a pipe nobody writes and /dev/null
    const [idleR, idleW] = a.pipe();
    const devNull = a.openFile('/dev/null', 1);
    const keep = { idleW };
    return {
      bidirectional: false,
      sides: [
        side(() => simple('stdin', 0, EpKind.Stream2, MAX_VDEPLUG_FRAME_BYTES, { txFd: devNull })),
        side(() => simple('stdout', idleR, EpKind.Stream2, MAX_VDEPLUG_FRAME_BYTES, { txFd: a.dup(1), close: () => void keep })),
      ],
    };
  }
  const altOut = envFd('ALTERNATE_STDOUT');
  if (altOut === null) throw new CliError('ALTERNATE_STDIN is set but ALTERNATE_STDOUT is not an open descriptor');
  if (!isPipeOrSocket(altIn) || !isPipeOrSocket(altOut)) throw new CliError('ALTERNATE_STDIN and ALTERNATE_STDOUT must be pipes');
  return {
    bidirectional: true,
    // the left end is the previous command of the chain (our stdin and stdout), the right end the
    // next one (the alternate descriptors): stdin -> ALTERNATE_STDOUT, ALTERNATE_STDIN -> stdout
    sides: [
      side(() => simple('stdin/stdout', 0, EpKind.Stream2, MAX_VDEPLUG_FRAME_BYTES, { txFd: 1 })),
      side(() => simple('ALTERNATE_STDIN/ALTERNATE_STDOUT', altIn, EpKind.Stream2, MAX_VDEPLUG_FRAME_BYTES, { txFd: altOut })),
    ],
  };
}

/** Reads console commands from stdin (vde2's console with -v); EOF ends the filter. */
function stdinConsole(server: ConsoleServer, stop: (why: string) => void): () => void {
  const sess: Session = { name: 'stdin console', interactive: true, debug: new Set(), write: (t) => process.stdout.write(t), end: () => {} };
  server.addSession(sess);
  const input = server.lineInput(sess, { prompt: WF_PROMPT, endOnLogout: false });
  process.stdin.setEncoding('utf8');
  const onData = (d: string): void => input.push(d);
  const onEnd = (): void => stop('EOF on stdin');
  process.stdin.on('data', onData);
  process.stdin.on('end', onEnd);
  process.stdin.on('error', onEnd);
  return () => {
    input.close();
    process.stdin.off('data', onData);
    process.stdin.off('end', onEnd);
    process.stdin.off('error', onEnd);
    process.stdin.pause();
  };
}

/** Entry point of bin/wirefilter; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  installCrashGuard('wirefilter');
  setProgram('wirefilter');
  let w: WfArgs;
  try {
    w = await parseWfArgs(argv);
  } catch (e) {
    process.stderr.write(`wirefilter: ${errorText(e)}\nTry 'wirefilter --help' for the syntax.\n`);
    return 1;
  }
  const a = w.a;
  if (a.version) {
    process.stdout.write(`${versionLine('wirefilter')}\n`);
    return 0;
  }
  if (a.help) {
    process.stdout.write(await helpText(parser([]), EXAMPLES));
    return 0;
  }
  if (a.verbose) setVerbose(true);
  const daemonChild = Boolean(a['daemon-child']);
  let sides: [WireSide, WireSide];
  let bidirectional = true;
  let filter: WireFilter;
  let metrics: string | undefined;
  try {
    if (w.mode.kind === 'pipe') {
      if (a.daemon || daemonChild) throw new CliError('--daemon: in the background stdin and stdout are /dev/null; give -v SOCK1:SOCK2 or two locators');
      ({ sides, bidirectional } = pipeSides());
    } else {
      sides = [w.mode.left, w.mode.right].map((l) => ({ locator: l, options: { description: WF_DESCRIPTION }, reconnect: false })) as [WireSide, WireSide];
    }
    filter = buildFilter(w, bidirectional);
    if (a.metrics !== undefined) metrics = metricsOption(String(a.metrics));
    if (a.rcfile !== undefined && !fs.existsSync(String(a.rcfile))) throw new CliError(`--rcfile: ${String(a.rcfile)}: no such file`);
  } catch (e) {
    process.stderr.write(`wirefilter: ${errorText(e)}\n`);
    return 1;
  }
  const logFile = a.logfile ? path.resolve(String(a.logfile)) : undefined;
  if (a.daemon && !daemonChild) {
    if (w.mode.kind !== 'locators' || w.mode.left.kind === 'stdio' || w.mode.right.kind === 'stdio') {
      process.stderr.write('wirefilter: --daemon: in the background stdin and stdout are /dev/null; give -v SOCK1:SOCK2 or two locators\n');
      return 1;
    }
    // the background copy gets every path absolute and the two ends as locators
    const rest = w.mainArgs
      .filter((x) => x.startsWith('--') && x !== '--daemon' && !x.startsWith('--vde-plug='))
      .map((x) => {
        const m = /^--(pidfile|logfile|mgmt|rcfile)=(.*)$/s.exec(x);
        if (/^--metrics=/.test(x) && metrics) return `--metrics=${metrics}`;
        return m ? `--${m[1]}=${path.resolve(m[2])}` : x;
      });
    return daemonize('wirefilter', [...rest, formatLocator(w.mode.left), formatLocator(w.mode.right)], { logFile });
  }
  const consoleOnStdin = w.mode.kind === 'locators' && w.mode.left.kind !== 'stdio' && w.mode.right.kind !== 'stdio' && !daemonChild && !a.nostdin;
  let server: ConsoleServer | null = null;
  let obs: WireObservation | null = null;
  const cleanups: Array<() => void> = [];
  return runWire(sides, {
    program: 'wirefilter',
    daemonChild,
    pidfile: a.pidfile ? path.resolve(String(a.pidfile)) : undefined,
    logFile,
    beforeStart: async (wire) => {
      obs = new WireObservation(wire, 'wirefilter');
      cleanups.push(() => obs?.close());
      server = createWfConsole({ filter, shutdown: (why) => wire.stop(0, why) }, obs.commands());
      for (const { dir, spec } of w.impairs) {
        try {
          filter.setExtra(dir, spec);
        } catch (e) {
          throw new Error(`--impair: ${(e as Error).message.replace(/^impair: /, '')}`);
        }
      }
      try {
        filter.attach(wire.engine);
      } catch (e) {
        throw new Error(`settings refused: ${(e as Error).message}`);
      }
      if (a.rcfile !== undefined) {
        const file = path.resolve(String(a.rcfile));
        const sess: Session = { name: `rcfile ${file}`, interactive: false, debug: new Set(), write: () => {}, end: () => {} };
        const r = await server.runScript(file, sess, false);
        if (r.errno !== 0) throw new Error(`--rcfile: ${r.errors.join('; ')}`);
        for (const e of r.errors) log('error', `rc command error: ${e}`);
      }
    },
    afterStart: async (wire) => {
      if (a.mgmt !== undefined) cleanups.push(await listenConsole(server!, path.resolve(String(a.mgmt)), w.mgmtMode));
      if (consoleOnStdin) cleanups.push(stdinConsole(server!, (why) => wire.stop(0, why)));
      if (metrics) await obs!.serveMetrics(metrics);
      const l = sides[0].locator;
      const r = sides[1].locator;
      log('info', w.mode.kind === 'pipe' ? `${bidirectional ? 'bi' : 'mono'}directional filter starting...` : `bidirectional filter L=${formatLocator(l)} R=${formatLocator(r)} starting...`);
      return () => {
        filter.close();
        for (const c of cleanups) c();
      };
    },
  });
}
