/**
 * Background mode for the command-line tools (`-d`). Node cannot fork, so the tool re-launches
 * itself detached (new session, no stdio, `--daemon-child` in front of the arguments) in the same working
 * directory, and waits until the copy reports over IPC that it is serving, or why it failed; then
 * the foreground process exits with 0 or 1. The copy resolves every relative path while it still
 * runs in the caller's directory, and calls reportStarted() once it is up (or failed), which then
 * moves it to `/` as daemon(3) does.
 *
 * Log lines of the background copy go to `--logfile FILE` when given, else to syslog (/dev/log);
 * where no system logger listens they go to a default file instead of being lost:
 * /var/log/PROGRAM.log for root, ~/.vde2/PROGRAM.log for other users (defaultLogFile).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { syslogAvailable } from './log.js';

/** How long the foreground process waits for the background copy to report. */
export const DAEMON_START_TIMEOUT_MS = 15_000;

/** Options of daemonize. */
export interface DaemonizeOptions {
  /** The --logfile given, if any (decides whether the missing-syslog warning is needed). */
  logFile?: string;
}

/** Where a background process logs when there is no --logfile and no syslog: /var/log/PROGRAM.log (root), ~/.vde2/PROGRAM.log. */
export function defaultLogFile(program: string): string {
  if (process.geteuid?.() === 0) return path.join('/var/log', `${program}.log`);
  return path.join(os.homedir(), '.vde2', `${program}.log`);
}

/**
 * Re-launches the current command in the background (argv in canonical --name=value form, the
 * tool having a --logfile option); resolves with the exit status for the foreground.
 */
export function daemonize(program: string, argv: string[], o: DaemonizeOptions = {}): Promise<number> {
  if (!o.logFile && !syslogAvailable()) {
    const file = defaultLogFile(program);
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    } catch {
      /* the background copy reports an unwritable log file */
    }
    argv = [...argv, `--logfile=${file}`];
  }
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], '--daemon-child', ...argv], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    cwd: process.cwd(),
  });
  return waitForReport(program, child);
}

/** What a background copy reports: ok/error (the tools) or a list of messages and a status (dpipe). */
export interface StartReport {
  ok?: boolean;
  error?: string;
  errors?: string[];
  status?: number;
}

/**
 * Waits until a detached background copy reports its start-up over IPC (or exits, or stays
 * silent for DAEMON_START_TIMEOUT_MS); prints what failed and resolves with the foreground's
 * exit status.
 */
export function waitForReport(program: string, child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      process.stderr.write(`${program}: the background process did not report within ${DAEMON_START_TIMEOUT_MS} ms\n`);
      resolve(1);
    }, DAEMON_START_TIMEOUT_MS);
    child.on('message', (m: StartReport) => {
      clearTimeout(t);
      if (m.error !== undefined) process.stderr.write(`${program}: ${m.error}\n`);
      for (const e of m.errors ?? []) process.stderr.write(`${e}\n`);
      child.disconnect();
      child.unref();
      resolve(m.status ?? (m.ok ? 0 : 1));
    });
    child.on('exit', (code, signal) => {
      clearTimeout(t);
      resolve(code || (signal ? 1 : 1));
    });
  });
}

/** In the background copy: tells the waiting foreground process that start-up succeeded or failed. Returns false outside daemon mode. */
export function reportStarted(error?: string): boolean {
  if (!process.send) return false;
  process.send(error === undefined ? { ok: true } : { ok: false, error });
  if (error === undefined) {
    process.disconnect?.();
    try {
      process.chdir('/');
    } catch {
      /* stay where we are */
    }
  }
  return true;
}
