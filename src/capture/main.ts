/**
 * `vde_capture [OPTIONS] MGMT_SOCKET [PORT ...]`: live pcapng capture of a running vde_switch
 * (or vde_plug --mgmt, wirefilter -M, slirpvde -M) through its management socket, rootless: whoever may use the
 * socket may capture. Without ports it captures every port, ports that appear later included.
 * The switch's engine writes the pcapng (one clock, CLOCK_REALTIME in nanoseconds, so captures
 * of several switches merge with mergecap); this command passes it to a file or standard output
 * block by block, so `vde_capture SOCK | tshark -r -` and `| wireshark -k -i -` work live.
 *
 * It stops after -c frames, after --duration seconds, on SIGINT/SIGTERM/SIGHUP, when the output
 * goes away (the reader quit) or the switch ends the capture. Stopping is graceful: it
 * half-closes the connection, the switch adds Interface Statistics Blocks (frames seen and
 * dropped by the capture) and closes, and those blocks are written too. Run as a Wireshark
 * extcap (`--extcap-interfaces` etc., see extcap.ts) it lists each running switch's ports as
 * interfaces.
 */
import fs from 'node:fs';
import yargs from 'yargs';
import { CliError, getoptLongOnly, helpText, intOption, specsFromOptions, standardSpecs, type Example } from '../core/cli.js';
import { errorText, installCrashGuard } from '../core/errors.js';
import { versionLine } from '../core/version.js';
import { extcapMain, isExtcapCall } from './extcap.js';
import { runCapture, type CaptureRun } from './run.js';

/** Largest --duration, seconds (a year). */
export const MAX_DURATION_SECONDS = 366 * 24 * 3600;

const OPTIONS = {
  write: { alias: 'w', type: 'string', default: '-', describe: 'write pcapng to FILE ("-": standard output)' },
  count: { alias: 'c', type: 'string', describe: 'stop after COUNT frames' },
  duration: { type: 'string', describe: 'stop after SECONDS' },
  snaplen: { type: 'string', describe: 'keep at most BYTES of each frame (14..262144, default 262144)' },
  direction: { type: 'string', choices: ['in', 'out', 'both'], default: 'both', describe: 'frames entering the switch port (in), leaving it (out), or both' },
  filter: { alias: 'f', type: 'string', describe: 'frame filter: vlan [ID], ether proto|host|src|dst, ip, ip6, arp, [ip|ip6] proto P, tcp, udp, icmp, ... with and/or/not and ()' },
  ethertype: { type: 'string', describe: 'only frames of this ethertype (0x0800, ip, ip6, arp, ...), tagged or not' },
  vlan: { type: 'string', describe: 'only frames tagged with this VLAN id (0..4095)' },
  mac: { type: 'string', describe: 'only frames from or to this MAC address' },
  'ip-proto': { type: 'string', describe: 'only IPv4/IPv6 frames of this protocol (tcp, udp, icmp, icmp6, or 0..255)' },
  quiet: { alias: 'q', type: 'boolean', describe: 'no summary on standard error at the end' },
} as const;
const EXTCAP_SPECS = ['extcap-interfaces', 'extcap-dlts', 'extcap-config', 'capture', 'extcap-interface', 'fifo', 'extcap-capture-filter', 'extcap-version', 'extcap-control-in', 'extcap-control-out'];
const SPECS = specsFromOptions(OPTIONS, standardSpecs());

/** The --help examples (each one line, ready to paste). */
export const EXAMPLES: Example[] = [
  { command: 'vde_capture /tmp/sw.mgmt | tshark -r -', what: 'every port of the switch, decoded live' },
  { command: 'vde_capture /tmp/sw.mgmt 3 | wireshark -k -i -', what: 'port 3 in Wireshark, live' },
  { command: 'vde_capture -w /tmp/p3.pcapng -c 100 --direction in /tmp/sw.mgmt 3', what: 'the first 100 frames entering port 3' },
  { command: "vde_capture -f 'vlan 10 and tcp' --duration 60 -w /tmp/v10.pcapng /tmp/sw.mgmt", what: 'TCP in VLAN 10 for a minute' },
  { command: 'vde_capture --extcap-interfaces', what: 'what Wireshark lists when vde_capture is installed as an extcap (see the man page)' },
];

function parser(argv: string[]) {
  return yargs(argv)
    .scriptName('vde_capture')
    .usage(
      'Usage: vde_capture [OPTIONS] MGMT_SOCKET [PORT ...]\n\n' +
        'Live pcapng capture of the ports of a running vde_switch (vde_switch -M MGMT_SOCKET), vde_plug\n' +
        '(--mgmt), wirefilter (-M) or slirpvde (-M). Without PORTs: every port, also ports that appear later.',
    )
    .options(OPTIONS)
    .version(false)
    .option('version', { type: 'boolean', describe: 'print the version' })
    .help(false)
    .option('help', { alias: 'h', type: 'boolean', describe: 'show this help' })
    .strictOptions()
    .parserConfiguration({ 'greedy-arrays': false })
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    });
}

/** Joins the filter options into one expression (all must hold). */
export function filterOf(a: Record<string, unknown>): string {
  const parts: string[] = [];
  const word = (opt: string, v: string, re: RegExp, what: string): string => {
    if (!re.test(v)) throw new CliError(`--${opt}: "${v}" is not ${what}`);
    return v;
  };
  if (a.filter !== undefined) parts.push(`(${String(a.filter)})`);
  if (a.ethertype !== undefined) parts.push(`ether proto ${word('ethertype', String(a.ethertype), /^(0x[0-9a-f]{1,4}|\d{1,5}|ip|ip6|arp|rarp|lldp|mpls)$/i, 'an ethertype (0x0800, ip, ip6, arp, ...)')}`);
  if (a.vlan !== undefined) parts.push(`vlan ${intOption('vlan', a.vlan, 0, 4095)}`);
  if (a.mac !== undefined) parts.push(`ether host ${word('mac', String(a.mac), /^[0-9a-f]{1,2}([:-][0-9a-f]{1,2}){5}$/i, 'a MAC address (xx:xx:xx:xx:xx:xx)')}`);
  if (a['ip-proto'] !== undefined) {
    const v = String(a['ip-proto']);
    parts.push(/^(tcp|udp|icmp|icmp6|igmp|gre|esp|sctp)$/i.test(v) ? v : `proto ${intOption('ip-proto', v, 0, 255)}`);
  }
  return parts.join(' and ');
}

/** What the command line asks for: a capture, or help or the version (run null). */
export interface ParsedCapture {
  a: Record<string, unknown>;
  run: (Omit<CaptureRun, 'out'> & { file: string }) | null;
}

/** Parses a vde_capture command line (no side effects); throws an Error naming the bad option. */
export async function parseCaptureArgs(argv: string[]): Promise<ParsedCapture> {
  const a = (await parser(getoptLongOnly(argv, SPECS)).parseAsync()) as Record<string, unknown>;
  if (a.help || a.version) return { a, run: null };
  const pos = (a._ as (string | number)[]).map(String);
  if (!pos.length) throw new CliError('no management socket given (vde_capture MGMT_SOCKET [PORT ...])');
  const ports = pos.slice(1).map((p) => intOption('port', p, 0, 65535));
  return {
    a,
    run: {
      socket: pos[0],
      req: {
        ports: ports.length ? ports : 'all',
        direction: (a.direction as 'in' | 'out' | 'both') ?? 'both',
        snaplen: a.snaplen === undefined ? undefined : intOption('snaplen', a.snaplen, 14, 262144),
        filter: filterOf(a),
      },
      count: a.count === undefined ? undefined : intOption('count', a.count, 0),
      durationSeconds: a.duration === undefined ? undefined : intOption('duration', a.duration, 1, MAX_DURATION_SECONDS),
      quiet: Boolean(a.quiet),
      program: 'vde_capture',
      file: String(a.write ?? '-'),
    },
  };
}

/** Entry point of bin/vde_capture; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  installCrashGuard('vde_capture');
  if (isExtcapCall(argv)) return extcapMain(argv);
  let parsed: ParsedCapture;
  try {
    parsed = await parseCaptureArgs(argv);
  } catch (e) {
    process.stderr.write(`vde_capture: ${errorText(e)}\nTry 'vde_capture --help' for the options.\n`);
    return 1;
  }
  const { a, run } = parsed;
  if (a.help) {
    process.stdout.write(await helpText(parser([]), EXAMPLES, `Wireshark extcap: ${EXTCAP_SPECS.map((s) => `--${s}`).join(' ')}\n`));
    return 0;
  }
  if (a.version || !run) {
    process.stdout.write(`${versionLine('vde_capture')}\n`);
    return 0;
  }
  let out: NodeJS.WritableStream;
  if (run.file === '-') {
    if (process.stdout.isTTY) {
      process.stderr.write('vde_capture: standard output is a terminal: give -w FILE, or pipe it (vde_capture SOCK | tshark -r -)\n');
      return 1;
    }
    out = process.stdout;
  } else {
    try {
      out = fs.createWriteStream('', { fd: fs.openSync(run.file, 'w', 0o644) });
    } catch (e) {
      process.stderr.write(`vde_capture: -w ${run.file}: ${errorText(e)}\n`);
      return 1;
    }
  }
  const status = await runCapture({ ...run, out });
  if (out !== process.stdout) await new Promise<void>((r) => (out as fs.WriteStream).end(() => r()));
  return status;
}
