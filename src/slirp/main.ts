/**
 * The `slirpvde` command (vde2 2.3.2's syntax): connects a user-mode NAT (libslirp, on its own
 * native thread) to a switch, or with `-` to stdin/stdout using the 2-byte length framing. It is
 * a VdePlug with a vde:// side and a slirp side, so frames never pass through JavaScript. As in
 * slirpvde, DHCP is off unless -D is given and only IPv4 is served. -X/-x (X11 and unix-socket
 * forwards) are not implemented and are rejected with a clear message.
 */
import path from 'node:path';
import yargs from 'yargs';
import { daemonize } from '../core/daemon.js';
import { log, setProgram, setVerbose } from '../core/log.js';
import type { PlugSide } from '../ports/wire.js';
import { runPlug } from '../ports/runwire.js';
import { parseLocator, type Locator } from '../ports/vnl.js';
import { parseOctal } from '../core/perms.js';
import { buildSlirpConfig, parseForward, SlirpOptionError, type HostForward, type SlirpConfig } from '../ports/kinds/slirp-options.js';
import { startSlirpConsole } from './console.js';
import type { ConfiguredSlirpLocator, SlirpHandle } from '../ports/kinds/slirp.js';


function parser(argv: string[]) {
  return yargs(argv)
    .scriptName('slirpvde')
    .usage('Usage: slirpvde [OPTIONS] [SWITCHDIR]\n\nUser-mode NAT (libslirp) for a VDE switch; SWITCHDIR "-" = frames on stdin/stdout (2-byte length framing).')
    .option('sock', { alias: ['s', 'socket', 'vdesock', 'unix'], type: 'string', describe: 'switch directory (or - for stdin/stdout)' })
    .option('pidfile', { alias: 'p', type: 'string', describe: 'write the process id to FILE' })
    .option('group', { alias: 'g', type: 'string', describe: 'group of the switch port socket' })
    .option('mod', { alias: ['m', 'mode'], type: 'string', describe: 'octal mode of the switch port socket' })
    .option('port', { alias: 'P', type: 'string', describe: 'switch port number' })
    .option('daemon', { alias: 'd', type: 'boolean', describe: 'run in the background' })
    .option('host', { alias: ['H', 'n', 'network'], type: 'string', describe: 'virtual gateway ADDR[/LEN] (default 10.0.2.2/24; host part 0 = network+2)' })
    .option('dns', { alias: ['N', 'nameserver'], type: 'string', describe: 'DNS proxy address (default network+3)' })
    .option('dhcp-on', { type: 'boolean', hidden: true })
    .option('dhcp-start', { type: 'string', hidden: true })
    .option('L', { type: 'string', array: true, describe: 'TCP forward HPORT:GUESTIP:GPORT ([HOSTIP:] prefix allowed), repeatable' })
    .option('U', { type: 'string', array: true, describe: 'UDP forward HPORT:GUESTIP:GPORT, repeatable' })
    .option('X', { type: 'string', describe: 'X11 forward (not implemented)' })
    .option('x', { type: 'string', describe: 'PORT:UNIXPATH forward (not implemented)' })
    .option('mgmt', { alias: 'M', type: 'string', describe: 'management socket: add/remove/list port forwards at run time (vdecmd -s PATH fwd/add tcp 8080:10.0.2.15:80)' })
    .option('tftp', { alias: 't', type: 'string', describe: 'serve DIR over TFTP' })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'no start-up messages' })
    .option('verbose', { alias: 'v', type: 'boolean', describe: 'log debug messages and guest errors' })
    .option('daemon-child', { type: 'boolean', hidden: true })
    .epilog('-D, --dhcp[=START]  serve DHCP (off unless given), pool from START (default network+15)')
    .example('slirpvde -D /tmp/sw', 'NAT with DHCP for the switch in /tmp/sw (guests get 10.0.2.15, ...)')
    .example('slirpvde -D -L 2222:10.0.2.15:22 /tmp/sw', 'also forward host port 2222 to a guest\'s ssh')
    .example('slirpvde -H 192.168.50.0/24 -D -t /srv/tftp /tmp/sw', 'other network, TFTP served from /srv/tftp')
    .example('dpipe vde_plug /tmp/sw = ssh host slirpvde -D -', 'NAT on a remote host over ssh')
    .example('slirpvde -D -M /tmp/nat.mgmt /tmp/sw; vdecmd -s /tmp/nat.mgmt fwd/add tcp 8080:10.0.2.15:80', 'add a port forward at run time')
    .example("vde_plug 'slirp:///tcpfwd=8080:10.0.2.15:80' /tmp/sw", 'the vdeplug4 equivalent (DHCP on, IPv6 too)')
    .strictOptions()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .help('help')
    .alias('help', 'h')
    .version(false)
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


/** Entry point of bin/slirpvde; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  setProgram('slirpvde');
  let a: Record<string, unknown>;
  let sides: [PlugSide, PlugSide];
  let cfg: SlirpConfig;
  try {
    a = (await parser(rewriteDhcp(argv)).parseAsync()) as Record<string, unknown>;
    if (a.X !== undefined) throw new Error('-X (X11 forwarding) is not implemented in this build');
    if (a.x !== undefined) throw new Error('-x (PORT:UNIXPATH forwarding) is not implemented in this build');
    const pos = (a._ as (string | number)[]).map(String);
    if (pos.length > 1) throw new Error(`too many arguments: ${pos.join(' ')}`);
    if (pos.length === 1 && a.sock !== undefined) throw new Error('give the switch either with -s or as an argument, not both');
    const dir = (a.sock as string | undefined) ?? pos[0] ?? '';
    let mode: number | undefined;
    if (a.mod !== undefined) {
      mode = parseOctal(String(a.mod));
      if (mode === undefined) throw new Error(`-m: "${String(a.mod)}" is not an octal mode`);
    }
    let port: number | undefined;
    if (a.port !== undefined) {
      const p = String(a.port);
      if (!/^\d{1,5}$/.test(p) || Number(p) > 65535) throw new Error(`-P: "${p}" is not a port number`);
      port = Number(p);
    }
    cfg = slirpvdeConfig(a);
    const swLoc: Locator = dir === '-' ? { kind: 'stdio' } : dir.includes('://') ? parseLocator(dir) : parseLocator(`vde://${dir}`);
    const slirpLoc: ConfiguredSlirpLocator = { kind: 'slirp', options: {}, config: cfg };
    sides = [
      { locator: swLoc, options: { description: 'slirpvde:', group: a.group as string | undefined, mode, port }, reconnect: false },
      { locator: slirpLoc, options: {}, reconnect: false },
    ];
  } catch (e) {
    const msg = e instanceof SlirpOptionError ? `option ${e.message}` : (e as Error).message;
    process.stderr.write(`slirpvde: ${msg}\nTry 'slirpvde --help' for the syntax.\n`);
    return 1;
  }
  if (a.verbose) setVerbose(true);
  if (a.daemon && !a['daemon-child']) return daemonize('slirpvde', argv.filter((x) => x !== '-d' && x !== '--daemon'));
  return runPlug(sides, {
    program: 'slirpvde',
    daemonChild: Boolean(a['daemon-child']),
    pidfile: a.pidfile as string | undefined,
    afterStart: async (plug) => {
      if (!a.quiet && sides[0].locator.kind !== 'stdio') {
        const fw = cfg.forwards.map((f) => ` ${f.udp ? 'udp' : 'tcp'} ${f.hostAddr}:${f.hostPort}->${f.guestAddr}:${f.guestPort}`).join('');
        log('info', `gateway ${cfg.host}/${cfg.prefixLen}, DNS ${cfg.nameserver}, DHCP ${cfg.dhcp ? `from ${cfg.dhcpStart}` : 'off'}${cfg.tftpPath ? `, TFTP ${cfg.tftpPath}` : ''}${fw ? `, forwards${fw}` : ''}`);
      }
      if (!a.mgmt) return;
      const handle = (plug.endpoint(1) as { slirp?: SlirpHandle } | null)?.slirp;
      if (!handle) throw new Error('the slirp endpoint is not available');
      return startSlirpConsole(path.resolve(String(a.mgmt)), handle, [...cfg.forwards]);
    },
  });
}
