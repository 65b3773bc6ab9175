/**
 * The data socket a switch (or a switch:// node) makes for each client that completed the
 * handshake: a unix datagram socket connected to the client's socket and bound to a path in the
 * switch directory, created with its final mode (core/sockpath's umask) so that it never exists
 * with looser permissions. The caller hands the fd to the engine and replies with the path.
 */
import fs from 'node:fs';
import { withSocketMode } from '../core/sockpath.js';
import { native, sys } from '../native/index.js';

/** Socket buffer size of data sockets (bytes). */
export const DATA_SOCKET_BUFFER_BYTES = 1 << 20;

/** Checks the client's socket file as vde2 does (a socket we may read and write); returns its owner uid. */
export function clientSocketOwner(sockPath: string): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(sockPath);
  } catch (e) {
    throw new Error(`client socket ${sockPath}: ${(e as Error).message}`);
  }
  if (!st.isSocket()) throw new Error(`client socket ${sockPath} is not a socket`);
  try {
    fs.accessSync(sockPath, fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    throw new Error(`client socket ${sockPath}: permission denied`);
  }
  return st.uid;
}

/**
 * Creates the data socket: connected to clientPath, bound to dataPath with `mode`; returns its
 * fd. dataPath may be a function of the new socket's fd (vde2 names data sockets DIR/NNN.FD).
 */
export function createDataSocket(clientPath: string, pathOf: string | ((fd: number) => string), mode: number): number {
  const a = native();
  const fd = sys('data socket', () => a.unixDgramSocket(DATA_SOCKET_BUFFER_BYTES));
  try {
    sys(`connect to client socket ${clientPath}`, () => a.unixConnect(fd, clientPath));
    const dataPath = typeof pathOf === 'string' ? pathOf : pathOf(fd);
    fs.rmSync(dataPath, { force: true });
    withSocketMode(mode, () => sys(`bind ${dataPath}`, () => a.unixBind(fd, dataPath)));
  } catch (e) {
    a.closeFd(fd);
    throw e;
  }
  return fd;
}
