/**
 * Client side of the vde2 console line protocol: connect to a console socket (a switch's -M
 * socket, slirpvde's, wirefilter's), send one command, collect its data block and status line,
 * log out. The command is sent right after connecting (consoles read input whenever it comes),
 * so a socket that is not a console is recognised at once: a VDE control socket closes the
 * connection on the first bytes without ever sending a banner.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** How long to wait for the whole answer. */
export const REPLY_TIMEOUT_MS = 10000;

/** Result of one command. */
export interface CmdResult {
  status: number;
  statusText: string;
  data: string[];
}

function notConsole(sock: string, why: string): Error {
  const hint = path.basename(sock) === 'ctl' ? ' (it looks like a switch control socket: give the switch\'s management socket, vde_switch -M PATH)' : '';
  return new Error(`${sock} is not a management console: ${why}${hint}`);
}

/** Sends one command over a console socket and collects its reply. */
export function runCommand(sock: string, command: string, timeoutMs = REPLY_TIMEOUT_MS): Promise<CmdResult> {
  try {
    if (fs.statSync(sock).isDirectory()) return Promise.reject(notConsole(sock, 'it is a directory (a switch directory? its management socket is the path given to vde_switch -M)'));
  } catch {
    /* connect reports it */
  }
  return new Promise((resolve, reject) => {
    const c = net.connect({ path: sock });
    let buf = '';
    let got = false;
    let done = false;
    const finish = (e: Error | null, r?: CmdResult): void => {
      if (done) return;
      done = true;
      clearTimeout(t);
      if (e) reject(e);
      else resolve(r!);
    };
    const t = setTimeout(() => {
      c.destroy();
      finish(new Error(`no complete reply from ${sock} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.on('connect', () => c.write(`${command}\n`));
    c.on('error', (e: NodeJS.ErrnoException) => {
      if (got || e.code === 'EPIPE' || e.code === 'ECONNRESET') finish(got ? new Error(`${sock}: ${e.message}`) : notConsole(sock, 'it closed the connection without a banner'));
      else finish(new Error(`${sock}: ${e.code === 'ENOENT' ? 'no such socket' : e.code === 'ECONNREFUSED' ? 'nothing is listening (connection refused)' : e.message}`));
    });
    c.on('data', (d: string) => {
      got = true;
      buf += d;
      // the command went out at once, so its reply follows the first prompt (which ends in "$ ")
      const prompt = buf.indexOf('$ ');
      if (prompt < 0) return;
      const lines = buf.slice(prompt + 2).split('\n');
      const idx = lines.findIndex((l) => /^1\d{3} /.test(l) || l.startsWith('9999'));
      if (idx < 0) return;
      const status = lines[idx].startsWith('9999') ? 0 : parseInt(lines[idx].slice(1, 4), 10);
      const data: string[] = [];
      const start = lines.findIndex((l) => l.startsWith('0000 '));
      if (start >= 0 && start < idx) {
        for (let i = start + 1; i < idx && lines[i] !== '.'; i++) data.push(lines[i]);
      }
      c.end('logout\n');
      finish(null, { status, statusText: lines[idx].slice(5), data });
    });
    c.on('close', () => {
      finish(got ? new Error(`${sock}: connection closed before the reply`) : notConsole(sock, 'it closed the connection without a banner'));
    });
  });
}
