/**
 * Logging for the command-line tools: to stderr with the program name as prefix, or to the
 * system log (/dev/log, RFC 3164 datagrams) once a tool runs as a daemon, as vde2 does. Levels
 * follow syslog; debug lines appear only when verbose logging is on.
 */
import fs from 'node:fs';
import { native } from '../native/index.js';

export type Level = 'error' | 'warning' | 'info' | 'debug';
const SEVERITY: Record<Level, number> = { error: 3, warning: 4, info: 6, debug: 7 };
const SYSLOG_DAEMON_FACILITY = 3;

let program = 'vde-ts';
let syslogFd = -1;
let verbose = false;
let sink: ((line: string) => void) | null = null;

/** Sets the program name used as log prefix / syslog ident. */
export function setProgram(name: string): void {
  program = name;
}

/** Enables or disables debug-level lines. */
export function setVerbose(on: boolean): void {
  verbose = on;
}

/** Sends log lines to the system log instead of stderr (daemon mode); falls back to stderr. */
export function useSyslog(): void {
  try {
    const a = native();
    const fd = a.unixDgramSocket();
    a.unixConnect(fd, '/dev/log');
    syslogFd = fd;
  } catch {
    syslogFd = -1;
  }
}

/** Redirects log lines to a function (tests). */
export function setLogSink(fn: ((line: string) => void) | null): void {
  sink = fn;
}

/** Writes one log line at the given level. */
export function log(level: Level, msg: string): void {
  if (level === 'debug' && !verbose) return;
  if (sink) {
    sink(`${level}: ${msg}`);
    return;
  }
  if (syslogFd >= 0) {
    const pri = SYSLOG_DAEMON_FACILITY * 8 + SEVERITY[level];
    try {
      fs.writeSync(syslogFd, Buffer.from(`<${pri}>${program}[${process.pid}]: ${msg}`));
      return;
    } catch {
      /* fall through to stderr */
    }
  }
  try {
    process.stderr.write(`${program}: ${msg}\n`);
  } catch {
    /* stderr gone: nothing sensible left to do */
  }
}
