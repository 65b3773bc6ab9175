/**
 * One capture run of vde_capture (command line or Wireshark extcap): starts the capture on a
 * console (client.ts), copies the pcapng block by block to the output, counts frames, stops
 * gracefully (half-close, then the switch's statistics blocks and its close, at most
 * STOP_GRACE_MS) after COUNT frames, after the duration or on a signal, and at once when the
 * output's reader went away. Back-pressure: while the output does not take more, the socket is
 * not read, so the switch buffers and then drops (and counts) frames for this capture only.
 */
import type net from 'node:net';
import { errorText } from '../core/errors.js';
import { BT_EPB, BT_ISB, parseIsb, PcapngError, PcapngReader } from '../protocol/pcapng.js';
import { startCapture, type StartRequest } from './client.js';

/** How long a graceful stop waits for the switch's statistics blocks and its close. */
export const STOP_GRACE_MS = 3000;

/** What one capture run is told to do. */
export interface CaptureRun {
  socket: string;
  req: StartRequest;
  /** Where the pcapng goes: a writable stream (stdout, a file, a FIFO). */
  out: NodeJS.WritableStream;
  count?: number;
  durationSeconds?: number;
  quiet: boolean;
  program: string;
}

/** Runs one capture to its end; resolves with the exit status. */
export async function runCapture(o: CaptureRun): Promise<number> {
  let cap: Awaited<ReturnType<typeof startCapture>>;
  try {
    cap = await startCapture(o.socket, o.req);
  } catch (e) {
    process.stderr.write(`${o.program}: ${errorText(e)}\n`);
    return 1;
  }
  const sock: net.Socket = cap.sock;
  const reader = new PcapngReader();
  let frames = 0;
  let stopping = false;
  let outGone = false;
  const isbs: ReturnType<typeof parseIsb>[] = [];
  let status = 0;
  let graceTimer: NodeJS.Timeout | null = null;
  let durationTimer: NodeJS.Timeout | null = null;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    if (durationTimer) clearTimeout(durationTimer);
    sock.end(); // half-close: the switch adds the statistics blocks and closes
    graceTimer = setTimeout(() => sock.destroy(), STOP_GRACE_MS);
  };
  const done = new Promise<void>((resolve) => {
    sock.on('close', () => resolve());
  });
  o.out.on('error', () => {
    // the reader went away (tshark quit, Wireshark stopped): stop at once, quietly
    outGone = true;
    sock.destroy();
  });
  const write = (b: Buffer): void => {
    if (outGone) return;
    if (!o.out.write(b)) {
      sock.pause();
      o.out.once('drain', () => sock.resume());
    }
  };
  const consume = (chunk: Buffer): void => {
    let blocks;
    try {
      blocks = reader.push(chunk);
    } catch (e) {
      if (e instanceof PcapngError) {
        process.stderr.write(`${o.program}: ${o.socket}: the capture stream is broken: ${e.message}\n`);
        status = 1;
        sock.destroy();
        return;
      }
      throw e;
    }
    // one write per chunk read, not per block: at 100 000 frames/s a write per frame would cost
    // more CPU than the switch spends forwarding them
    const keep: Buffer[] = [];
    for (const b of blocks) {
      if (b.type === BT_EPB) {
        if (o.count !== undefined && frames >= o.count) continue;
        frames++;
        keep.push(b.raw);
        if (o.count !== undefined && frames >= o.count) stop();
        continue;
      }
      if (b.type === BT_ISB) isbs.push(parseIsb(b));
      keep.push(b.raw);
    }
    if (keep.length) write(keep.length === 1 ? keep[0] : Buffer.concat(keep));
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  const onSignal = (): void => {
    if (stopping) sock.destroy();
    else stop();
  };
  for (const sig of signals) process.on(sig, onSignal);
  sock.on('data', consume);
  sock.on('error', () => {});
  if (cap.first.length) consume(cap.first);
  sock.resume();
  if (o.durationSeconds !== undefined) durationTimer = setTimeout(stop, o.durationSeconds * 1000);
  if (o.count === 0) stop();
  await done;
  if (graceTimer) clearTimeout(graceTimer);
  if (durationTimer) clearTimeout(durationTimer);
  for (const sig of signals) process.off(sig, onSignal);
  if (reader.pending() && !outGone && status === 0 && stopping === false) {
    process.stderr.write(`${o.program}: ${o.socket}: the capture ended inside a block\n`);
    status = 1;
  }
  if (!o.quiet && !outGone) {
    const dropped = isbs.reduce((s, i) => s + Number(i.dropped ?? 0n), 0);
    process.stderr.write(`${o.program}: ${frames} frame${frames === 1 ? '' : 's'} captured${isbs.length ? `, ${dropped} dropped by the capture` : ''}\n`);
  }
  return status;
}

