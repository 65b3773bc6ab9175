/**
 * `vdecmd`: run one management command on a switch (or any VDE console socket) and exit with its
 * status, like vde2's unixcmd/vdecmd. Prints the data block (the lines between
 * `0000 DATA END WITH '.'` and `.`) to stdout; on failure prints the status text to stderr.
 * Exit status: 0 on success, the errno of the `1NNN` status line otherwise, 255 when the socket
 * cannot be reached, is not a console, or the session breaks. A closed stdout (`| head -c 0`)
 * ends it quietly.
 */
import yargs from 'yargs';
import { getoptLongOnly, helpText, specsFromOptions, standardSpecs, type Example } from '../core/cli.js';
import { errorText, installCrashGuard } from '../core/errors.js';
import { versionLine } from '../core/version.js';
import { runCommand, type CmdResult } from '../protocol/consoleclient.js';

export { runCommand, type CmdResult, REPLY_TIMEOUT_MS } from '../protocol/consoleclient.js';

/** Exit status when the socket cannot be used. */
export const UNREACHABLE_EXIT_STATUS = 255;

const OPTIONS = {
  sock: { alias: 's', type: 'string', describe: 'management socket (vde_switch -M, slirpvde -M)' },
} as const;
const SPECS = specsFromOptions(OPTIONS, standardSpecs());

/** The --help examples (each one line, ready to paste). */
export const EXAMPLES: Example[] = [
  { command: 'vdecmd -s /tmp/sw.mgmt port/print', what: 'list the active ports' },
  { command: 'vdecmd -s /tmp/sw.mgmt json/hash/print', what: 'the MAC table as JSON' },
  { command: 'vdecmd -s /tmp/sw.mgmt events', what: 'stream events (ports, endpoints, MACs, spanning tree, stages) as JSON lines until Ctrl-C' },
];

function parser(argv: string[]) {
  return yargs(argv)
    .scriptName('vdecmd')
    .usage('Usage: vdecmd -s SOCKET COMMAND [ARGS...]\n\nRuns one console command on a VDE management socket and exits with its status.')
    .options(OPTIONS)
    .version(false)
    .option('version', { type: 'boolean', describe: 'print the version' })
    .help(false)
    .option('help', { alias: 'h', type: 'boolean', describe: 'show this help' })
    .parserConfiguration({ 'halt-at-non-option': true })
    .strict(false)
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    });
}

/** Writes to stdout; resolves false when stdout is gone (EPIPE), instead of throwing. */
function out(text: string): Promise<boolean> {
  return new Promise((resolve) => {
    if (process.stdout.destroyed || !process.stdout.writable) return resolve(false);
    process.stdout.write(text, (e) => resolve(!e));
  });
}

/** Entry point of bin/vdecmd; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  installCrashGuard('vdecmd');
  // a reader that went away (| head -c 0) is not an error worth a stack trace
  process.stdout.on('error', () => {});
  let a: { sock?: string; version?: boolean; help?: boolean; _: (string | number)[] };
  try {
    a = (await parser(getoptLongOnly(argv, SPECS, { stopAtPositional: true })).parseAsync()) as typeof a;
  } catch (e) {
    process.stderr.write(`vdecmd: ${errorText(e)}\n`);
    return UNREACHABLE_EXIT_STATUS;
  }
  if (a.help) {
    await out(await helpText(parser([]), EXAMPLES));
    return 0;
  }
  if (a.version) {
    await out(`${versionLine('vdecmd')}\n`);
    return 0;
  }
  if (!a.sock) {
    process.stderr.write('vdecmd: no socket given (vdecmd -s SOCKET COMMAND)\n');
    return UNREACHABLE_EXIT_STATUS;
  }
  const command = a._.map(String).join(' ').trim();
  if (!command) {
    process.stderr.write('vdecmd: no command given (try: vdecmd -s SOCKET help)\n');
    return UNREACHABLE_EXIT_STATUS;
  }
  let r: CmdResult;
  // data lines are printed as they arrive: a streaming command (events) runs until interrupted
  let pending: Promise<boolean> = Promise.resolve(true);
  let outGone = false;
  const onLine = (l: string): void => {
    pending = pending.then((ok) => (ok ? out(`${l}\n`) : false)).then((ok) => {
      if (!ok && !outGone) {
        outGone = true;
        process.exit(0); // the reader went away (| head): nothing more to say
      }
      return ok;
    });
  };
  try {
    r = await runCommand(a.sock, command, { onLine });
  } catch (e) {
    process.stderr.write(`vdecmd: ${errorText(e)}\n`);
    return UNREACHABLE_EXIT_STATUS;
  }
  await pending;
  if (r.status !== 0) process.stderr.write(`vdecmd: ${command}: ${r.statusText}\n`);
  return r.status;
}
