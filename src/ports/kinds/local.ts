/**
 * Endpoint kinds local to the machine: null:// (a sink), tap://IF (a Linux tap, by default with a
 * virtio-net header and TSO/checksum offloads) and cmd://COMMAND ARGS (a child process speaking
 * the 2-byte length stream on its stdin/stdout, offered 64 KiB segments in-band: cable.h).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { log } from '../../core/log.js';
import { EpKind, MAX_STREAM_FRAME_BYTES, native, toNodeError } from '../../native/index.js';
import { MAX_VDEPLUG_FRAME_BYTES, simple, type OpenedEndpoint, type OpenOptions } from '../endpoint.js';
import type { CmdLocator, TapLocator } from '../vnl.js';

const O_WRONLY = 1;

/** null://: never readable (a pipe whose write end we keep), writes go to /dev/null. */
export function openNull(): OpenedEndpoint {
  const a = native();
  const [r, w] = a.pipe();
  const sink = a.openFile('/dev/null', O_WRONLY);
  return simple('null://', r, EpKind.Tap, MAX_STREAM_FRAME_BYTES, { txFd: sink, close: () => a.closeFd(w) });
}

/** The hint added to a tap error: what the user can do about it. */
export function tapHint(code: string | undefined): string {
  // opening /dev/net/tun without the capability gives EPERM or EACCES depending on the system
  if (code === 'EPERM' || code === 'EACCES') return ' (needs root or CAP_NET_ADMIN)';
  if (code === 'ENOENT') return ' (/dev/net/tun is missing: modprobe tun)';
  return '';
}

/** Opens (or creates) a tap; vnetHdr asks for the virtio-net header and TSO/checksum offloads. */
export function openTapFd(ifname: string, vnetHdr: boolean, what: string): { fd: number; name: string; offloads: boolean } {
  const a = native();
  let t: { fd: number; name: string };
  try {
    t = a.openTap(ifname, vnetHdr);
  } catch (e) {
    const err = toNodeError(e);
    throw new Error(`${what}: ${err.message}${tapHint(err.code)}`);
  }
  let offloads = false;
  if (vnetHdr) {
    try {
      a.setTapOffload(t.fd);
      offloads = true;
    } catch (e) {
      a.closeFd(t.fd);
      throw new Error(`${what}/vnethdr: ${(e as Error).message}`);
    }
  }
  return { ...t, offloads };
}

/**
 * tap://IF[/vnethdr]: with offloads (the default, unless --offload off) the tap carries a
 * virtio-net header with TSO/checksum offloads, so the kernel hands over 64 KiB TCP segments: they
 * travel as they are to a side that takes them (a vde-ts switch or cable) and are segmented in
 * software for any other. A tap that cannot do offloads falls back to plain frames with a
 * warning; /vnethdr insists on them (an error instead).
 */
export function openTap(loc: TapLocator, o: OpenOptions = {}): OpenedEndpoint {
  const what = `tap://${loc.ifname}`;
  let vnet = loc.vnetHdr === true || o.offload !== false;
  let t: { fd: number; name: string };
  try {
    t = openTapFd(loc.ifname, vnet, what);
  } catch (e) {
    if (!vnet || loc.vnetHdr || !/\/vnethdr:/.test((e as Error).message)) throw e;
    log('warning', `${what}: offloads unavailable (${(e as Error).message}); plain frames`);
    vnet = false;
    t = openTapFd(loc.ifname, false, what);
  }
  return simple(`tap://${t.name}${vnet ? '/vnethdr' : ''}`, t.fd, EpKind.Tap, MAX_STREAM_FRAME_BYTES);
}

/** cmd://: runs the command (no shell) with pipes on its stdin/stdout. */
export async function openCmd(loc: CmdLocator, o: OpenOptions = {}): Promise<OpenedEndpoint> {
  const a = native();
  const [toChildR, toChildW] = a.pipe();
  const [fromChildR, fromChildW] = a.pipe();
  let child: ChildProcess;
  try {
    child = spawn(loc.argv[0], loc.argv.slice(1), { stdio: [toChildR, fromChildW, 'inherit'] });
  } finally {
    a.closeFd(toChildR);
    a.closeFd(fromChildW);
  }
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', (e) => reject(new Error(`cmd://${loc.argv.join(' ')}: ${e.message}`)));
  }).catch((e) => {
    a.closeFd(toChildW);
    a.closeFd(fromChildR);
    throw e;
  });
  // Debian's wirefilter as the command reads whole records only (see stdio.ts)
  const relay = path.basename(loc.argv[0] ?? '') === 'wirefilter';
  return simple(`cmd://${loc.argv.join(' ')}`, fromChildR, EpKind.Stream2, MAX_VDEPLUG_FRAME_BYTES, {
    txFd: toChildW,
    offload: o.offload !== false && !relay,
    recordWrites: relay,
    close: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  });
}

