/**
 * stdio://: our own stdin and stdout with the 2-byte length framing (dpipe and ssh cables,
 * `slirpvde -`). The engine polls stdin directly when it can (a pipe, a socket, a terminal). A
 * regular file or /dev/null cannot be polled, so then stdin is pumped into a pipe we create, in
 * large chunks (never frame by frame): `vde_plug SW < capture` replays a recorded stream, and
 * `vde_plug SW < /dev/null` (or `-d`, whose stdio is /dev/null) ends at once with status 0.
 * When both stdin and stdout are pipes or sockets (a dpipe or ssh cable), the plug offers the
 * peer 64 KiB segments in-band (cable.h); a file or terminal gets exactly the old format.
 *
 * Debian's wirefilter in a dpipe chain (`dpipe vde_plug A = wirefilter = vde_plug B`) reads
 * 2048 bytes at a time and loses its place in the stream when a read ends inside a length
 * field, which batched writes make likely under load. When a process named wirefilter holds
 * the other end of our pipes (found in /proc; only local processes we may inspect), the plug
 * neither negotiates nor batches: one record per write, the pipe in packet mode, so each of
 * wirefilter's reads is one whole record.
 */
import fs from 'node:fs';
import tty from 'node:tty';
import { EpKind, native } from '../../native/index.js';
import { MAX_VDEPLUG_FRAME_BYTES, simple, type OpenedEndpoint, type OpenOptions } from '../endpoint.js';

/** True when epoll cannot watch fd (regular files, block devices, /dev/null and other character devices that are not terminals). */
export function needsPump(fd: number): boolean {
  let st: fs.Stats;
  try {
    st = fs.fstatSync(fd);
  } catch {
    return false;
  }
  if (st.isFile() || st.isBlockDevice()) return true;
  return st.isCharacterDevice() && !tty.isatty(fd);
}

/** Copies fd `from` into a new pipe until EOF; returns the pipe's read end (closed write end = EOF for the engine). */
function pumpIntoPipe(from: number): { fd: number; stop: () => void } {
  const a = native();
  const [r, w] = a.pipe();
  a.setNonBlocking(w, false);
  const rs = fs.createReadStream('', { fd: from, autoClose: false, highWaterMark: 1 << 16 });
  const ws = fs.createWriteStream('', { fd: w, autoClose: true });
  rs.on('error', () => ws.end());
  ws.on('error', () => rs.destroy());
  rs.pipe(ws);
  return {
    fd: r,
    stop: () => {
      rs.destroy();
      ws.destroy();
    },
  };
}

/** Command names (/proc/PID/comm) of the other processes that hold the pipe fd is an end of; [] when fd is no pipe or /proc says nothing. */
export function pipePeers(fd: number): string[] {
  let ino: number;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFIFO()) return [];
    ino = st.ino;
  } catch {
    return [];
  }
  const want = `pipe:[${ino}]`;
  const names: string[] = [];
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d) && Number(d) !== process.pid);
  } catch {
    return [];
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to look at
    }
    for (const f of fds) {
      let link = '';
      try {
        link = fs.readlinkSync(`/proc/${pid}/fd/${f}`);
      } catch {
        continue;
      }
      if (link !== want) continue;
      try {
        names.push(fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim());
      } catch {
        /* exited meanwhile */
      }
      break;
    }
  }
  return names;
}

/** True when Debian's wirefilter (a reader of whole records only) holds the other end of fd's pipe. */
export function wirefilterOn(fd: number): boolean {
  return pipePeers(fd).includes('wirefilter');
}

/** True when fd is a pipe or a socket: the far end may be another program (a cable), not a file or a terminal. */
export function isChannel(fd: number): boolean {
  try {
    const st = fs.fstatSync(fd);
    return st.isFIFO() || st.isSocket();
  } catch {
    return false;
  }
}

/** Opens stdin/stdout as an endpoint. */
export function openStdio(o: OpenOptions = {}): OpenedEndpoint {
  if (!needsPump(0)) {
    const relay = wirefilterOn(1) || wirefilterOn(0);
    const offload = o.offload !== false && !relay && isChannel(0) && isChannel(1);
    return simple('stdin/stdout', 0, EpKind.Stream2, MAX_VDEPLUG_FRAME_BYTES, { txFd: 1, offload, recordWrites: relay });
  }
  const p = pumpIntoPipe(0);
  // the engine closes both fds of an endpoint it owns: give it a copy of stdout, not stdout
  return simple('stdin/stdout', p.fd, EpKind.Stream2, MAX_VDEPLUG_FRAME_BYTES, { txFd: native().dup(1), close: p.stop });
}
