/**
 * Datagram kinds, raw frames one per datagram: udp://[SRC:]SPORT->HOST:DPORT (vdeplug4's UDP
 * tunnel; between two vde-ts ends on a path whose MTU allows it, 64 KiB segments with a
 * virtio-net header, agreed in-band: native/src/cable.h), and dgram://unix:LOCAL->REMOTE /
 * dgram://udp:[LADDR:]LPORT->HOST:PORT (QEMU `-netdev dgram`, raw frames only; a side left
 * empty adopts the first peer that sends). A unix LOCAL path is
 * claimed through core/sockpath (a live socket there is refused) and removed at close only if
 * it is still the one we bound.
 */
import net from 'node:net';
import { claimSocketPath, OwnedPath } from '../../core/sockpath.js';
import { EpKind, MAX_STREAM_FRAME_BYTES, MAX_VDE_FRAME_BYTES, native, sys } from '../../native/index.js';
import { numericHost, simple, type OpenedEndpoint, type OpenOptions } from '../endpoint.js';
import type { DgramLocator, UdpLocator } from '../vnl.js';

/** Receive/send buffer of unix datagram endpoints, in bytes. */
export const UNIX_DGRAM_BUFFER_BYTES = 1 << 20;

/** Binds and connects an IP UDP socket; throws naming the step. */
function udpSocket(family: 4 | 6, localHost: string | undefined, localPort: number, remote: { address: string; port: number } | null): number {
  const a = native();
  const fd = a.udpSocket(family);
  try {
    sys('udp bind', () => a.ipBind(fd, localHost ?? (family === 6 ? '::' : '0.0.0.0'), localPort));
    if (remote) sys('udp connect', () => a.ipConnect(fd, remote.address, remote.port));
  } catch (e) {
    a.closeFd(fd);
    throw e;
  }
  return fd;
}

/** udp://: bound to the source, connected to the destination; offers segments to a vde-ts peer unless o.offload is false. */
export async function openUdp(loc: UdpLocator, o: OpenOptions = {}): Promise<OpenedEndpoint> {
  const dst = await numericHost(loc.dstHost);
  const fd = udpSocket(dst.family, loc.srcAddr, loc.srcPort, { address: dst.address, port: loc.dstPort });
  return simple(`udp://${loc.srcPort}->${loc.dstHost}:${loc.dstPort}`, fd, EpKind.Dgram, MAX_VDE_FRAME_BYTES, { offload: o.offload !== false });
}

/** dgram://unix: or dgram://udp:. */
export async function openDgram(loc: DgramLocator): Promise<OpenedEndpoint> {
  const a = native();
  if (loc.transport === 'unix') {
    const name = `dgram unix ${loc.localPath ?? ''}->${loc.remotePath ?? ''}`;
    if (loc.localPath) await claimSocketPath(loc.localPath, `${name}: local socket`);
    const fd = a.unixDgramSocket(UNIX_DGRAM_BUFFER_BYTES);
    let owned: OwnedPath | null = null;
    try {
      if (loc.localPath) {
        sys(`dgram bind ${loc.localPath}`, () => a.unixBind(fd, loc.localPath!));
        owned = OwnedPath.record(loc.localPath);
      }
      let connected = false;
      if (loc.remotePath) {
        try {
          a.unixConnect(fd, loc.remotePath);
          connected = true;
        } catch {
          connected = false; // the peer is not there yet: adopt it when it sends
        }
      }
      return simple(name, fd, EpKind.Dgram, MAX_STREAM_FRAME_BYTES, { adoptPeer: !connected, close: () => owned?.release() });
    } catch (e) {
      a.closeFd(fd);
      owned?.release();
      throw e;
    }
  }
  const remote = loc.remoteHost ? await numericHost(loc.remoteHost) : null;
  const family = remote?.family ?? (loc.localHost && net.isIP(loc.localHost) === 6 ? 6 : 4);
  const fd = udpSocket(family, loc.localHost, loc.localPort ?? 0, remote ? { address: remote.address, port: loc.remotePort! } : null);
  return simple(`dgram udp ${loc.localPort ?? ''}->${loc.remoteHost ?? ''}:${loc.remotePort ?? ''}`, fd, EpKind.Dgram, MAX_STREAM_FRAME_BYTES, { adoptPeer: !remote });
}
