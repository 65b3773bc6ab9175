/**
 * Socket helpers shared by the switch and the plugs: taking over the file descriptor of a
 * socket that Node accepted or connected, so the native engine can own it.
 */
import type net from 'node:net';
import { native } from './index.js';

/** Takes over the fd of a connected Node socket (dup) and lets Node forget its own copy. */
export function takeSocketFd(s: net.Socket): number {
  const h = (s as unknown as { _handle?: { fd?: number } })._handle;
  if (!h || typeof h.fd !== 'number' || h.fd < 0) throw new Error('cannot take over the socket');
  const fd = native().dup(h.fd);
  s.pause();
  s.removeAllListeners('data');
  s.destroy();
  return fd;
}
