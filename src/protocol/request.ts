/**
 * Server side of the control-socket handshake on a connected stream: collect the bytes of one
 * request, refuse as soon as they cannot begin a valid request (hopelessRequest), when they grow
 * past MAX_REQUEST_BYTES, or when the request is not complete after REQUEST_TIMEOUT_MS, and
 * parse it. Used by the switch's control server and by switch:// / hub:// / multi:// nodes.
 */
import type net from 'node:net';
import { hopelessRequest, MAX_REQUEST_BYTES, minimumRequestBytes, parseRequest, type PortRequest } from './handshake.js';

/** How long a client may take to send its whole request. */
export const REQUEST_TIMEOUT_MS = 2000;

/** Reads one request; rejects with the reason a client is refused (the caller closes the stream). */
export function readRequest(s: net.Socket, timeoutMs = REQUEST_TIMEOUT_MS): Promise<PortRequest> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    let done = false;
    let timer: NodeJS.Timeout | null = null;
    const finish = (err: string | null, req?: PortRequest): void => {
      if (done) return;
      done = true;
      if (timer) clearTimeout(timer);
      s.off('data', onData);
      s.off('close', onClose);
      if (err !== null) reject(new Error(err));
      else resolve(req!);
    };
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.length > MAX_REQUEST_BYTES) return finish(`request of ${buf.length} bytes exceeds ${MAX_REQUEST_BYTES}`);
      const hopeless = hopelessRequest(buf);
      if (hopeless) return finish(hopeless);
      if (buf.length < minimumRequestBytes(buf)) {
        timer ??= setTimeout(() => finish(`truncated request (${buf.length} bytes in ${timeoutMs} ms)`), timeoutMs);
        return;
      }
      const r = parseRequest(buf);
      if (!r.ok) return finish(r.reason);
      finish(null, r.req);
    };
    const onClose = (): void => finish(buf.length ? `the client closed the connection after ${buf.length} bytes` : 'the client closed the connection before a request');
    s.on('data', onData);
    s.on('close', onClose);
    timer = setTimeout(() => finish(`no request within ${timeoutMs} ms`), timeoutMs);
  });
}
