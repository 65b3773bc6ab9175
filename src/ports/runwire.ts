/**
 * Runs a Wire as a command-line tool (vde_plug, slirpvde): opens both ends, reports start-up to
 * a waiting `-d` parent, writes and removes the pidfile (core/pidfile), ends cleanly on
 * SIGINT/SIGTERM/SIGHUP and turns the wire's end into an exit status with a one-line message.
 */
import { reportStarted } from '../core/daemon.js';
import { errorText } from '../core/errors.js';
import { flushLog, log, useLogFile, useSyslog } from '../core/log.js';
import { PidFile } from '../core/pidfile.js';
import { Wire, type WireSide } from './wire.js';

/** How a tool runs its wire. */
export interface RunWireOptions {
  program: string;
  /** Running as the background copy of `-d`. */
  daemonChild: boolean;
  /** Absolute pidfile path. */
  pidfile?: string;
  /** Log to this file (--logfile); else syslog in the background copy or with `syslog`. */
  logFile?: string;
  /** Log to syslog (always in the background copy). */
  syslog?: boolean;
  /** Log START/STOP lines (vde_plug -l). */
  logStartStop?: boolean;
  /** Runs on the new wire before its ends are opened (stages that must see the first frame); a throw ends the tool with its message. */
  beforeStart?: (wire: Wire) => void | Promise<void>;
  /** Runs once both ends are open; may return a clean-up function for the end. */
  afterStart?: (wire: Wire) => Promise<(() => void) | void>;
}

/** Runs the wire until it ends; resolves with the exit status. */
export async function runWire(sides: [WireSide, WireSide], o: RunWireOptions): Promise<number> {
  const fail = (msg: string): number => {
    if (!(o.daemonChild && reportStarted(msg))) process.stderr.write(`${o.program}: ${msg}\n`);
    return 1;
  };
  try {
    if (o.logFile) useLogFile(o.logFile);
    else if (o.daemonChild || o.syslog) useSyslog();
  } catch (e) {
    return fail(errorText(e));
  }
  let pid: PidFile | null = null;
  try {
    if (o.pidfile) pid = PidFile.create(o.pidfile);
  } catch (e) {
    return fail(errorText(e));
  }
  const wire = new Wire(sides[0], sides[1]);
  // signals are ours from here on: one during start-up (a stream server waiting for its client)
  // ends the wire cleanly too, instead of killing the process with its pidfile left behind
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => wire.stop(0, `caught ${sig}`));
  process.on('SIGPIPE', () => {});
  try {
    await o.beforeStart?.(wire);
  } catch (e) {
    wire.stop(1, errorText(e));
    pid?.remove();
    return fail(errorText(e));
  }
  try {
    const starting = wire.start();
    starting.catch(() => {}); // a start-up that a signal overtook may still fail later: nothing to report then
    const started = await Promise.race([starting.then(() => true), wire.done.then(() => false)]);
    if (!started) {
      pid?.remove();
      flushLog();
      return (await wire.done).code;
    }
  } catch (e) {
    pid?.remove();
    return fail(errorText(e));
  }
  let cleanup: (() => void) | void = undefined;
  try {
    cleanup = await o.afterStart?.(wire);
  } catch (e) {
    wire.stop(1, errorText(e));
  }
  if (o.daemonChild) reportStarted();
  if (o.logStartStop) log('info', `START ${process.pid}`);
  const r = await wire.done;
  cleanup?.();
  pid?.remove();
  if (o.logStartStop) log('info', `STOP ${process.pid}`);
  if (r.code !== 0) {
    if (o.daemonChild) log('error', r.reason);
    else process.stderr.write(`${o.program}: ${r.reason}\n`);
  }
  flushLog();
  return r.code;
}
