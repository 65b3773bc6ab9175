/**
 * Logging for the command-line tools: to stderr with the program name as prefix, to a file
 * (`--logfile FILE`, one timestamped line per message), or to the system log (/dev/log, RFC 3164
 * datagrams) once a tool runs as a daemon, as vde2 does. Levels follow syslog; debug lines appear
 * only when verbose logging is on.
 *
 * Repeated messages are rate-limited: messages of the same shape (the same text once numbers and
 * quoted parts are blanked, or the same explicit key) pass LOG_BURST_LINES times per
 * LOG_WINDOW_MS; the rest are counted and summarised in one line ("... N similar messages
 * suppressed") when the window ends, so a client that reconnects thousands of times cannot fill
 * the disk with identical refusals.
 */
import fs from 'node:fs';
import { native } from '../native/index.js';

export type Level = 'error' | 'warning' | 'info' | 'debug';
const SEVERITY: Record<Level, number> = { error: 3, warning: 4, info: 6, debug: 7 };
const SYSLOG_DAEMON_FACILITY = 3;
/** The system log socket. */
export const SYSLOG_PATH = '/dev/log';
/** Messages of one shape that pass per window before the rest are counted instead. */
export const LOG_BURST_LINES = 5;
/** Length of a rate-limit window. */
export const LOG_WINDOW_MS = 10_000;
/** At most this many message shapes are tracked at once (older windows are flushed first). */
const MAX_TRACKED_SHAPES = 1000;

let program = 'vde-ts';
let syslogFd = -1;
let logFd = -1;
let verbose = false;
let sink: ((line: string) => void) | null = null;

interface Window {
  level: Level;
  startMs: number;
  count: number;
  suppressed: number;
  last: string;
  timer: NodeJS.Timeout | null;
}
const windows = new Map<string, Window>();

/** Sets the program name used as log prefix / syslog ident. */
export function setProgram(name: string): void {
  program = name;
}

/** Enables or disables debug-level lines. */
export function setVerbose(on: boolean): void {
  verbose = on;
}

/** True when a system logger listens on /dev/log. */
export function syslogAvailable(): boolean {
  try {
    return fs.statSync(SYSLOG_PATH).isSocket();
  } catch {
    return false;
  }
}

/** Sends log lines to the system log instead of stderr (daemon mode); returns false (and keeps stderr) if there is none. */
export function useSyslog(): boolean {
  try {
    const a = native();
    const fd = a.unixDgramSocket();
    try {
      a.unixConnect(fd, SYSLOG_PATH);
    } catch (e) {
      a.closeFd(fd);
      throw e;
    }
    syslogFd = fd;
    return true;
  } catch {
    syslogFd = -1;
    return false;
  }
}

/** Appends log lines to FILE (created 0640 if missing); throws with the path and the reason. */
export function useLogFile(file: string): void {
  try {
    logFd = fs.openSync(file, 'a', 0o640);
  } catch (e) {
    throw new Error(`--logfile ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'the directory does not exist' : (e as Error).message}`);
  }
}

/** Redirects log lines to a function (tests). */
export function setLogSink(fn: ((line: string) => void) | null): void {
  sink = fn;
}

function write(level: Level, msg: string): void {
  if (sink) {
    sink(`${level}: ${msg}`);
    return;
  }
  if (logFd >= 0) {
    try {
      fs.writeSync(logFd, `${new Date().toISOString()} ${program}[${process.pid}]: ${level}: ${msg}\n`);
      return;
    } catch {
      /* fall through */
    }
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

/** The shape of a message: numbers, hex and quoted parts blanked, so variants of one message share a key. */
export function messageShape(msg: string): string {
  return msg.replace(/"[^"]*"|'[^']*'/g, '"…"').replace(/0x[0-9a-f]+|[0-9a-f]{2}(:[0-9a-f]{2}){5}|\d+/gi, '#');
}

function closeWindow(key: string, w: Window): void {
  if (w.timer) clearTimeout(w.timer);
  windows.delete(key);
  if (w.suppressed > 0) write(w.level, `... ${w.suppressed} similar message${w.suppressed === 1 ? '' : 's'} suppressed (last: ${w.last})`);
}

/** Writes one log line at the given level, rate-limited per message shape (or per `key`). */
export function log(level: Level, msg: string, key?: string): void {
  if (level === 'debug' && !verbose) return;
  const k = `${level}\0${key ?? messageShape(msg)}`;
  const now = Date.now();
  let w = windows.get(k);
  if (w && now - w.startMs >= LOG_WINDOW_MS) {
    closeWindow(k, w);
    w = undefined;
  }
  if (!w) {
    if (windows.size >= MAX_TRACKED_SHAPES) {
      const [oldKey, old] = windows.entries().next().value as [string, Window];
      closeWindow(oldKey, old);
    }
    w = { level, startMs: now, count: 0, suppressed: 0, last: msg, timer: null };
    windows.set(k, w);
  }
  w.count++;
  w.last = msg;
  if (w.count <= LOG_BURST_LINES) {
    write(level, msg);
    return;
  }
  w.suppressed++;
  if (!w.timer) {
    const win = w;
    win.timer = setTimeout(() => closeWindow(k, win), Math.max(0, win.startMs + LOG_WINDOW_MS - now));
    win.timer.unref();
  }
}

/** Writes the summaries of every open rate-limit window now (at exit). */
export function flushLog(): void {
  for (const [k, w] of [...windows]) closeWindow(k, w);
}
