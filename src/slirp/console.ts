/**
 * Management console of a running slirp endpoint (`slirpvde -M PATH`): add, remove and list
 * host-to-guest port forwards at run time and show the NAT's counters. It speaks the VDE console
 * line protocol (banner, `$ ` prompt, `0000 DATA END WITH '.'` / `.` / `1000 Success` /
 * `1NNN <error>`), so `vdecmd -s PATH fwd/list` and vdeterm work with it.
 */
import fs from 'node:fs';
import net from 'node:net';
import { log } from '../core/log.js';
import { statusLine } from '../switch/format.js';
import { parseForward, SlirpOptionError, type HostForward } from '../ports/kinds/slirp-options.js';
import type { SlirpHandle } from '../ports/kinds/slirp.js';

export const SLIRP_BANNER = 'VDE slirp (vde-ts)\n';
export const SLIRP_PROMPT = '\nslirp$ ';
/** Longest accepted console line. */
export const MAX_SLIRP_LINE_BYTES = 1024;
const EINVAL = 22;
const ENOENT = 2;
const EADDRINUSE = 98;

function fwdText(f: HostForward): string {
  const host = f.hostAddr.includes(':') ? `[${f.hostAddr}]` : f.hostAddr;
  return `${f.udp ? 'udp' : 'tcp'} ${host}:${f.hostPort} -> ${f.guestAddr}:${f.guestPort}`;
}

/** Runs one console line against the slirp handle; returns the reply (without prompt) or null. */
export function slirpCommand(line: string, h: SlirpHandle, forwards: HostForward[]): string | null {
  const input = line.replace(/\r$/, '').trim();
  if (!input || input.startsWith('#')) return null;
  const [cmd, ...rest] = input.split(/\s+/);
  const text = (lines: string[], errno = 0): string => `0000 DATA END WITH '.'\n${lines.map((l) => `${l}\n`).join('')}.\n${statusLine(errno)}\n`;
  try {
    switch (cmd) {
      case 'help':
        return text([
          'help                                   this list',
          'showinfo                               NAT counters',
          'fwd/list                               the host-to-guest forwards',
          'fwd/add tcp|udp [HOSTIP:]HPORT:GUESTIP:GPORT   add a forward',
          'fwd/del tcp|udp [HOSTIP:]HPORT         remove a forward',
          'logout                                 end this session',
        ]);
      case 'showinfo':
        return text(Object.entries(h.stats()).map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : v}`));
      case 'fwd/list':
        return text(forwards.map(fwdText));
      case 'fwd/add': {
        if (rest.length !== 2 || !['tcp', 'udp'].includes(rest[0])) return `${statusLine(EINVAL)}\n`;
        const f = parseForward('fwd/add', rest[1], rest[0] === 'udp');
        try {
          h.addForward(f);
        } catch (e) {
          log('warning', `fwd/add ${rest[1]}: ${(e as Error).message}`);
          return `${statusLine(/in use/i.test((e as Error).message) ? EADDRINUSE : EINVAL)}\n`;
        }
        forwards.push(f);
        return `${statusLine(0)}\n`;
      }
      case 'fwd/del': {
        if (rest.length !== 2 || !['tcp', 'udp'].includes(rest[0])) return `${statusLine(EINVAL)}\n`;
        const m = /^(?:\[([^\]]+)\]:|([^:]+):)?(\d+)$/.exec(rest[1]);
        if (!m) return `${statusLine(EINVAL)}\n`;
        const udp = rest[0] === 'udp';
        const hostPort = Number(m[3]);
        const hostAddr = m[1] ?? m[2];
        const i = forwards.findIndex((f) => f.udp === udp && f.hostPort === hostPort && (hostAddr === undefined || f.hostAddr === hostAddr));
        if (i < 0) return `${statusLine(ENOENT)}\n`;
        const f = forwards[i];
        h.removeForward({ udp, hostAddr: f.hostAddr, hostPort, ipv6: f.ipv6 });
        forwards.splice(i, 1);
        return `${statusLine(0)}\n`;
      }
      default:
        return `${statusLine(38)}\n`;
    }
  } catch (e) {
    if (e instanceof SlirpOptionError) log('warning', `console: ${e.message}`);
    return `${statusLine(EINVAL)}\n`;
  }
}

/** Serves the console on a unix socket; returns a function that closes it and removes the file. */
export async function startSlirpConsole(sockPath: string, h: SlirpHandle, forwards: HostForward[]): Promise<() => void> {
  fs.rmSync(sockPath, { force: true });
  const srv = net.createServer((s) => {
    let buf = '';
    s.setEncoding('utf8');
    s.write(SLIRP_BANNER + SLIRP_PROMPT);
    s.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() === 'logout') {
          s.end('9999 END OF SESSION');
          return;
        }
        const r = Buffer.byteLength(line) > MAX_SLIRP_LINE_BYTES ? `${statusLine(EINVAL)}\n` : slirpCommand(line, h, forwards);
        s.write(`${r ?? ''}${SLIRP_PROMPT}`);
      }
      if (Buffer.byteLength(buf) > MAX_SLIRP_LINE_BYTES) buf = '';
    });
    s.on('error', () => s.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', (e) => reject(new Error(`management socket ${sockPath}: ${e.message}`)));
    srv.listen({ path: sockPath }, () => resolve());
  });
  fs.chmodSync(sockPath, 0o600);
  return () => {
    srv.close();
    fs.rmSync(sockPath, { force: true });
  };
}
