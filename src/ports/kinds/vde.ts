/**
 * vde://DIR[PORT/group=G/mode=M] (and a plain path): a port of a VDE switch, joined with the v3
 * handshake (vdeclient.ts), offering the vde-ts extension unless offloads are off. The switch
 * dropping the control stream ends the endpoint.
 */
import { EpKind, MAX_STREAM_FRAME_BYTES, MAX_VDE_FRAME_BYTES } from '../../native/index.js';
import type { OpenedEndpoint, OpenOptions } from '../endpoint.js';
import type { VdeLocator } from '../vnl.js';
import { vdeConnect } from './vdeclient.js';

/** Joins a switch; the endpoint is the connected datagram socket, the control stream is watched. */
export async function openVde(loc: VdeLocator, o: OpenOptions): Promise<OpenedEndpoint> {
  const c = await vdeConnect({
    dir: loc.path,
    port: loc.port ?? o.port,
    port0: loc.port === 0,
    group: loc.group ?? o.group,
    mode: loc.mode ?? o.mode,
    description: o.description,
    offload: o.offload !== false,
  });
  let lostCb: ((why: string) => void) | null = null;
  let closed = false;
  c.ctl.on('data', () => {});
  c.ctl.on('error', () => {});
  c.ctl.on('close', () => {
    if (!closed) lostCb?.(`switch ${c.dir} closed the connection`);
  });
  return {
    fd: c.dataFd,
    kind: EpKind.Dgram,
    maxFrameBytes: c.vnet ? MAX_STREAM_FRAME_BYTES : MAX_VDE_FRAME_BYTES,
    offload: c.vnet,
    name: `vde://${c.dir}`,
    onLost: (cb) => (lostCb = cb),
    close: () => {
      closed = true;
      c.ctl.destroy();
    },
  };
}
