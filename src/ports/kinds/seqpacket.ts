/**
 * seqpacket://FD (vdeplug4's libvdeplug_seqpacket): an already open SOCK_SEQPACKET socket that
 * the program inherited as file descriptor FD (a parent made a socket pair and passed one end),
 * one frame per message. The engine gets a duplicate; the inherited descriptor is closed.
 */
import fs from 'node:fs';
import { EpKind, MAX_VDE_FRAME_BYTES, native, sys } from '../../native/index.js';
import { simple, type OpenedEndpoint } from '../endpoint.js';
import type { SeqpacketLocator } from '../vnl.js';

/** Takes over the inherited socket. */
export function openSeqpacket(loc: SeqpacketLocator): OpenedEndpoint {
  const name = `seqpacket://${loc.fd}`;
  if (loc.fd <= 2) throw new Error(`${name}: descriptors 0, 1 and 2 are stdin, stdout and stderr (use stdio:// for them)`);
  let st: fs.Stats;
  try {
    st = fs.fstatSync(loc.fd);
  } catch {
    throw new Error(`${name}: file descriptor ${loc.fd} is not open`);
  }
  if (!st.isSocket()) throw new Error(`${name}: file descriptor ${loc.fd} is not a socket`);
  const a = native();
  const fd = sys(name, () => a.dup(loc.fd));
  a.closeFd(loc.fd);
  return simple(name, fd, EpKind.Dgram, MAX_VDE_FRAME_BYTES);
}
