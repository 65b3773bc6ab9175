/**
 * `vdecmd`: run one management command on a switch (or any VDE console socket) and exit with its
 * status, like vde2's unixcmd/vdecmd. Prints the data block (the lines between
 * `0000 DATA END WITH '.'` and `.`) to stdout; on failure prints the status text to stderr.
 * Exit status: 0 on success, the errno of the `1NNN` status line otherwise, 255 when the socket
 * cannot be reached or the session breaks.
 */
import net from 'node:net';
import yargs from 'yargs';
import { normalizeLongOnly } from '../core/cli.js';

/** How long to wait for the whole answer. */
export const REPLY_TIMEOUT_MS = 10000;

/** Result of one command. */
export interface CmdResult {
  status: number;
  statusText: string;
  data: string[];
}

/** Sends one command over a console socket and collects its reply. */
export function runCommand(sock: string, command: string, timeoutMs = REPLY_TIMEOUT_MS): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ path: sock });
    let buf = '';
    let sent = false;
    const t = setTimeout(() => {
      c.destroy();
      reject(new Error(`no complete reply from ${sock} within ${timeoutMs} ms`));
    }, timeoutMs);
    c.setEncoding('utf8');
    c.on('error', (e) => {
      clearTimeout(t);
      reject(new Error(`${sock}: ${e.message}`));
    });
    c.on('data', (d: string) => {
      buf += d;
      if (!sent) {
        if (!buf.endsWith('$ ')) return;
        sent = true;
        buf = '';
        c.write(`${command}\n`);
        return;
      }
      const lines = buf.split('\n');
      const idx = lines.findIndex((l) => /^1\d{3} /.test(l) || l.startsWith('9999'));
      if (idx < 0) return;
      clearTimeout(t);
      const status = lines[idx].startsWith('9999') ? 0 : parseInt(lines[idx].slice(1, 4), 10);
      const data: string[] = [];
      const start = lines.findIndex((l) => l.startsWith('0000 '));
      if (start >= 0 && start < idx) {
        for (let i = start + 1; i < idx && lines[i] !== '.'; i++) data.push(lines[i]);
      }
      c.end('logout\n');
      resolve({ status, statusText: lines[idx].slice(5), data });
    });
    c.on('close', () => {
      clearTimeout(t);
      reject(new Error(`${sock}: connection closed before the reply`));
    });
  });
}

/** Entry point of bin/vdecmd; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  let a: { sock?: string; _: (string | number)[] };
  try {
    a = (await yargs(normalizeLongOnly(argv, ['sock', 'help']))
      .scriptName('vdecmd')
      .usage('Usage: vdecmd -s SOCKET COMMAND [ARGS...]\n\nRuns one console command on a VDE management socket and exits with its status.')
      .option('sock', { alias: 's', type: 'string', demandOption: true, describe: 'management socket (vde_switch -M)' })
      .example('vdecmd -s /tmp/sw.mgmt port/print', 'list the active ports')
      .example('vdecmd -s /tmp/sw.mgmt json/hash/print | jq .', 'the MAC table as JSON')
      .parserConfiguration({ 'halt-at-non-option': true })
      .strict(false)
      .help('help')
      .alias('help', 'h')
      .version(false)
      .fail((msg, err) => {
        throw err ?? new Error(msg);
      })
      .parseAsync()) as typeof a;
  } catch (e) {
    process.stderr.write(`vdecmd: ${(e as Error).message}\n`);
    return 255;
  }
  const command = a._.map(String).join(' ').trim();
  if (!command) {
    process.stderr.write('vdecmd: no command given (try: vdecmd -s SOCKET help)\n');
    return 255;
  }
  try {
    const r = await runCommand(a.sock!, command);
    for (const l of r.data) process.stdout.write(`${l}\n`);
    if (r.status !== 0) process.stderr.write(`vdecmd: ${command}: ${r.statusText}\n`);
    return r.status;
  } catch (e) {
    process.stderr.write(`vdecmd: ${(e as Error).message}\n`);
    return 255;
  }
}
