/**
 * Management console of a running slirp endpoint (`slirpvde -M PATH`): add, remove and list
 * host-to-guest port forwards at run time and show the NAT's counters. It is the vde2 console
 * line protocol of protocol/console.ts with slirpvde's banner, prompt and commands, so
 * `vdecmd -s PATH fwd/list` and vdeterm work with it.
 */
import { E } from '../core/errors.js';
import { log } from '../core/log.js';
import { parseForward, SlirpOptionError, type HostForward } from '../ports/kinds/slirp-options.js';
import type { SlirpHandle } from '../ports/kinds/slirp.js';
import { ConsoleServer, CONSOLE_END, listenConsole, type ConsoleCommand } from '../protocol/console.js';

export const SLIRP_BANNER = 'VDE slirp (vde-ts)\n';
export const SLIRP_PROMPT = '\nslirp$ ';
/** Longest accepted console line. */
export const MAX_SLIRP_LINE_BYTES = 1024;
/** Mode of the console socket. */
export const SLIRP_CONSOLE_MODE = 0o600;

function fwdText(f: HostForward): string {
  const host = f.hostAddr.includes(':') ? `[${f.hostAddr}]` : f.hostAddr;
  return `${f.udp ? 'udp' : 'tcp'} ${host}:${f.hostPort} -> ${f.guestAddr}:${f.guestPort}`;
}

/** The slirp console's commands over a running handle and its list of forwards. */
export function slirpCommands(h: SlirpHandle, forwards: HostForward[]): ConsoleCommand[] {
  const proto = (p: string): boolean | null => (p === 'tcp' ? false : p === 'udp' ? true : null);
  return [
    { path: 'help', syntax: '', help: 'this list', text: true, run: (_a, out) => {
      out.push(
        'help                                   this list',
        'showinfo                               NAT counters',
        'fwd/list                               the host-to-guest forwards',
        'fwd/add tcp|udp [HOSTIP:]HPORT:GUESTIP:GPORT   add a forward',
        'fwd/del tcp|udp [HOSTIP:]HPORT         remove a forward',
        'capture/start [JSON|PORT...]           this connection becomes a pcapng stream (vde_capture)',
        'capture/list                           running capture sessions (JSON)',
        'capture/ports                          the ports a capture can name (JSON)',
        'events                                 stream events as JSON lines',
        'logout                                 end this session',
      );
    } },
    { path: 'showinfo', syntax: '', help: 'NAT counters', text: true, run: (_a, out) => {
      out.push(...Object.entries(h.stats()).map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : v}`));
    } },
    { path: 'fwd', syntax: '============', help: 'PORT FORWARDS', menu: true },
    { path: 'fwd/list', syntax: '', help: 'the host-to-guest forwards', text: true, run: (_a, out) => { out.push(...forwards.map(fwdText)); } },
    { path: 'fwd/add', syntax: 'tcp|udp [HOSTIP:]HPORT:GUESTIP:GPORT', help: 'add a forward', run: (a) => {
      const v = a.split(/\s+/).filter(Boolean);
      const udp = proto(v[0] ?? '');
      if (v.length !== 2 || udp === null) return E.EINVAL;
      let f: HostForward;
      try {
        f = parseForward('fwd/add', v[1], udp);
      } catch (e) {
        if (e instanceof SlirpOptionError) {
          log('warning', `console: ${e.message}`);
          return E.EINVAL;
        }
        throw e;
      }
      try {
        h.addForward(f);
      } catch (e) {
        log('warning', `fwd/add ${v[1]}: ${(e as Error).message}`);
        return /in use/i.test((e as Error).message) ? E.EADDRINUSE : E.EINVAL;
      }
      forwards.push(f);
    } },
    { path: 'fwd/del', syntax: 'tcp|udp [HOSTIP:]HPORT', help: 'remove a forward', run: (a) => {
      const v = a.split(/\s+/).filter(Boolean);
      const udp = proto(v[0] ?? '');
      if (v.length !== 2 || udp === null) return E.EINVAL;
      const m = /^(?:\[([^\]]+)\]:|([^:]+):)?(\d+)$/.exec(v[1]);
      if (!m) return E.EINVAL;
      const hostPort = Number(m[3]);
      const hostAddr = m[1] ?? m[2];
      const i = forwards.findIndex((f) => f.udp === udp && f.hostPort === hostPort && (hostAddr === undefined || f.hostAddr === hostAddr));
      if (i < 0) return E.ENOENT;
      const f = forwards[i];
      h.removeForward({ udp, hostAddr: f.hostAddr, hostPort, ipv6: f.ipv6 });
      forwards.splice(i, 1);
    } },
    { path: 'logout', syntax: '', help: 'end this session', run: () => CONSOLE_END },
  ];
}

/** Serves the console (with the extra commands: capture, events) on a unix socket; returns a function that closes it and removes the file. */
export async function startSlirpConsole(sockPath: string, h: SlirpHandle, forwards: HostForward[], extra: ConsoleCommand[] = []): Promise<() => void> {
  const server = new ConsoleServer({ banner: SLIRP_BANNER, prompt: SLIRP_PROMPT, maxLineBytes: MAX_SLIRP_LINE_BYTES });
  const cmds = slirpCommands(h, forwards);
  const logout = cmds.pop()!;
  server.setCommands([...cmds, ...extra, logout]);
  return listenConsole(server, sockPath, SLIRP_CONSOLE_MODE);
}
