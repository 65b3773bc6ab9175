/**
 * ptp://PATH, vdeplug4 4.0.1's point-to-point link: raw frames over unix datagrams between PATH
 * and PATH+ (PROTOCOL.md §1.10). The first end binds PATH ("female"); the second finds PATH live,
 * binds PATH+ and connects to PATH ("male"). The peer of the first end is PATH+ by convention, so
 * the first end connects to it as soon as it appears (watching the directory) and can send at
 * once, before the second end has said anything; a peer that sends first is adopted too.
 * Liveness checks go through core/sockpath (any socket type answering makes a path live, so a
 * stream socket at PATH is never unlinked), and each end removes only the path it bound.
 */
import fs from 'node:fs';
import path from 'node:path';
import { checkParentDir, claimSocketPath, OwnedPath, probeSocketPath } from '../../core/sockpath.js';
import { EpKind, MAX_VDE_FRAME_BYTES, native, sys } from '../../native/index.js';
import { simple, type OpenedEndpoint } from '../endpoint.js';
import type { PtpLocator } from '../vnl.js';
import { UNIX_DGRAM_BUFFER_BYTES } from './dgram.js';

/** Opens one end of a ptp link. */
export async function openPtp(loc: PtpLocator): Promise<OpenedEndpoint> {
  const a = native();
  const name = `ptp://${loc.path}`;
  const peer = `${loc.path}+`;
  checkParentDir(loc.path, name);
  const state = await probeSocketPath(loc.path);
  if (state === 'notsocket') throw new Error(`${name}: ${loc.path} exists and is not a socket; not removing it`);
  const fd = a.unixDgramSocket(UNIX_DGRAM_BUFFER_BYTES);
  try {
    if (state !== 'live') {
      // female: bind PATH; the peer is PATH+
      if (state === 'stale') fs.rmSync(loc.path, { force: true });
      sys(name, () => a.unixBind(fd, loc.path));
      const owned = OwnedPath.record(loc.path);
      const tryConnect = (): boolean => {
        try {
          a.unixConnect(fd, peer);
          return true;
        } catch {
          return false;
        }
      };
      let watcher: fs.FSWatcher | null = null;
      if (!tryConnect()) {
        // the second end binds PATH+ when it starts: connect then, so our frames reach it at once
        const base = path.basename(peer);
        try {
          watcher = fs.watch(path.dirname(peer), (_ev, f) => {
            if (f === null || f === base) tryConnect();
          });
          watcher.on('error', () => {});
          watcher.unref();
        } catch {
          watcher = null; // without a watch the peer is adopted when it first sends
        }
      }
      return simple(name, fd, EpKind.Dgram, MAX_VDE_FRAME_BYTES, {
        adoptPeer: true,
        close: () => {
          watcher?.close();
          owned.release();
        },
      });
    }
    // male: PATH is live; bind PATH+ (refusing a live one) and connect to PATH
    await claimSocketPath(peer, name);
    sys(name, () => a.unixBind(fd, peer));
    const owned = OwnedPath.record(peer);
    try {
      a.unixConnect(fd, loc.path);
    } catch (e) {
      owned.release();
      const errno = (e as { errno?: number }).errno;
      if (errno === 91) throw new Error(`${name}: ${loc.path} is a socket of another kind (not a ptp:// end); not touching it`);
      throw new Error(`${name}: connect to ${loc.path}: ${(e as Error).message}`);
    }
    return simple(name, fd, EpKind.Dgram, MAX_VDE_FRAME_BYTES, { close: () => owned.release() });
  } catch (e) {
    a.closeFd(fd);
    throw e;
  }
}
