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

/** Options of runCommand. */
export interface RunOptions {
  /** How long to wait for the answer to begin (the whole answer when it has no data block). */
  timeoutMs?: number;
  /** Called with each data line as it arrives (streaming commands such as `events`). */
  onLine?: (line: string) => void;
}

/**
 * Sends one command over a console socket and collects its reply. Data lines are also handed to
 * onLine as they arrive, and once the data block has begun there is no time limit (a streaming
 * command such as `events` ends when the console or the caller closes the connection).
 */
export function runCommand(sock: string, command: string, opts: number | RunOptions = {}): Promise<CmdResult> {
  const o: RunOptions = typeof opts === 'number' ? { timeoutMs: opts } : opts;
  const timeoutMs = o.timeoutMs ?? REPLY_TIMEOUT_MS;
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
    let prompted = false;
    let inData = false;
    const data: string[] = [];
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
      if (!prompted) {
        const prompt = buf.indexOf('$ ');
        if (prompt < 0) return;
        prompted = true;
        buf = buf.slice(prompt + 2);
      }
      for (let nl = buf.indexOf('\n'); nl >= 0 && !done; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).replace(/\r$/, '');
        buf = buf.slice(nl + 1);
        if (!inData && line.startsWith('0000 ')) {
          inData = true;
          clearTimeout(t);
        } else if (inData && line === '.') {
          inData = false;
        } else if (inData) {
          data.push(line);
          o.onLine?.(line);
        } else if (/^1\d{3} /.test(line) || line.startsWith('9999')) {
          const status = line.startsWith('9999') ? 0 : parseInt(line.slice(1, 4), 10);
          c.end('logout\n');
          finish(null, { status, statusText: line.slice(5), data });
        }
      }
    });
    c.on('close', () => {
      if (inData && o.onLine) finish(null, { status: 0, statusText: 'connection closed', data });
      finish(got ? new Error(`${sock}: connection closed before the reply`) : notConsole(sock, 'it closed the connection without a banner'));
    });
  });
}
