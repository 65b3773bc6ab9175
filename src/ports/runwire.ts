/**
 * Runs a VdePlug as a command-line tool (vde_plug, slirpvde): opens both ends, reports start-up
 * to a waiting `-d` parent, writes and removes the pidfile, ends cleanly on SIGINT/SIGTERM/SIGHUP
 * and turns the plug's end into an exit status with a message.
 */
import fs from 'node:fs';
import path from 'node:path';
import { reportStarted } from '../core/daemon.js';
import { log, useSyslog } from '../core/log.js';
import { VdePlug, type PlugSide } from './wire.js';

export interface RunPlugOptions {
  program: string;
  /** Running as the background copy of `-d`. */
  daemonChild: boolean;
  pidfile?: string;
  /** Log to syslog (always in the background copy). */
  syslog?: boolean;
  /** Log START/STOP lines (vde_plug -l). */
  logStartStop?: boolean;
  /** Runs once both ends are open; may return a clean-up function for the end. */
  afterStart?: (plug: VdePlug) => Promise<(() => void) | void>;
}

/** Runs the plug until it ends; resolves with the exit status. */
export async function runPlug(sides: [PlugSide, PlugSide], o: RunPlugOptions): Promise<number> {
  if (o.daemonChild || o.syslog) useSyslog();
  const plug = new VdePlug(sides[0], sides[1]);
  try {
    await plug.start();
  } catch (e) {
    const msg = (e as Error).message;
    if (!(o.daemonChild && reportStarted(msg))) process.stderr.write(`${o.program}: ${msg}\n`);
    return 1;
  }
  let cleanup: (() => void) | void = undefined;
  try {
    cleanup = await o.afterStart?.(plug);
  } catch (e) {
    plug.stop(1, (e as Error).message);
  }
  const pidfile = o.pidfile ? path.resolve(o.pidfile) : null;
  if (pidfile) fs.writeFileSync(pidfile, `${process.pid}\n`);
  if (o.daemonChild) reportStarted();
  if (o.logStartStop) log('info', `START ${process.pid}`);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => plug.stop(0, `caught ${sig}`));
  process.on('SIGPIPE', () => {});
  const r = await plug.done;
  cleanup?.();
  if (pidfile) fs.rmSync(pidfile, { force: true });
  if (o.logStartStop) log('info', `STOP ${process.pid}`);
  if (r.code !== 0) process.stderr.write(`${o.program}: ${r.reason}\n`);
  return r.code;
}
