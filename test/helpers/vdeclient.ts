/**
 * A raw VDE switch client for tests: performs the control handshake byte by byte (so tests can
 * also send broken requests), owns a datagram socket through the addon's socket helpers and
 * sends/receives whole frames. Everything a real libvdeplug client does, nothing hidden.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { TIME_SCALE } from './timescale.js';
import { native } from '../../src/native/index.js';
import { encodeRequestV3, SOCKADDR_UN_BYTES } from '../../src/protocol/handshake.js';

let counter = 0;
/** Longest time a test waits for a frame. */
export const RECV_TIMEOUT_MS = 2000;

/** Builds an Ethernet frame. */
export function frame(dst: string, src: string, payload: Buffer | number = 46, ethertype = 0x88b5): Buffer {
  const mac = (m: string): Buffer => Buffer.from(m.split(':').map((x) => parseInt(x, 16)));
  const body = typeof payload === 'number' ? Buffer.alloc(payload, 0x5a) : payload;
  const et = Buffer.alloc(2);
  et.writeUInt16BE(ethertype);
  return Buffer.concat([mac(dst), mac(src), et, body]);
}

/** Inserts an 802.1Q tag into an untagged frame. */
export function tag(f: Buffer, vlan: number, pcp = 0): Buffer {
  const t = Buffer.from([0x81, 0x00, (pcp << 5) | ((vlan >> 8) & 0x0f), vlan & 0xff]);
  return Buffer.concat([f.subarray(0, 12), t, f.subarray(12)]);
}

/** Sends raw bytes to the control socket and returns what came back before the switch closed it. */
export function rawControl(dir: string, bytes: Buffer, waitMs = 3000): Promise<{ reply: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const c = net.connect({ path: path.join(dir, 'ctl') });
    let reply = Buffer.alloc(0);
    const t = setTimeout(() => {
      c.destroy();
      resolve({ reply, closed: false });
    }, waitMs);
    c.on('connect', () => c.write(bytes));
    c.on('data', (d) => (reply = Buffer.concat([reply, d])));
    c.on('error', () => {});
    c.on('close', () => {
      clearTimeout(t);
      resolve({ reply, closed: true });
    });
  });
}

export class VdeClient {
  private constructor(
    readonly ctl: net.Socket,
    readonly fd: number,
    readonly localPath: string,
    readonly dataPath: string,
    /** The switch's whole reply (110 bytes: a sockaddr_un, and the vde-ts extension when accepted). */
    readonly reply: Buffer,
  ) {}

  /** The port number from the data socket name (DIR/NNN.F). */
  get port(): number {
    return parseInt(path.basename(this.dataPath).split('.')[0], 10);
  }

  /** Connects like libvdeplug (v3 request); rejects if the switch closes the stream instead. */
  static async connect(dir: string, opts: { port?: number; type?: number; description?: string; request?: (p: string) => Buffer } = {}): Promise<VdeClient> {
    const a = native();
    const localPath = path.join(dir, `.${String(process.pid).padStart(5, '0')}-${String(counter++).padStart(5, '0')}`);
    fs.rmSync(localPath, { force: true });
    const fd = a.unixDgramSocket(1 << 20);
    a.unixBind(fd, localPath);
    const req = opts.request ? opts.request(localPath) : encodeRequestV3({ port: opts.port ?? 0, type: opts.type ?? 0, sockPath: localPath, description: opts.description ?? `test user=root pid=${process.pid}` });
    const ctl = net.connect({ path: path.join(dir, 'ctl') });
    try {
      const reply = await new Promise<Buffer>((resolve, reject) => {
        let buf = Buffer.alloc(0);
        const t = setTimeout(() => reject(new Error('no reply from switch')), 5000);
        ctl.on('connect', () => ctl.write(req));
        ctl.on('data', (d) => {
          buf = Buffer.concat([buf, d]);
          if (buf.length >= SOCKADDR_UN_BYTES) {
            clearTimeout(t);
            resolve(buf);
          }
        });
        ctl.on('error', (e) => {
          clearTimeout(t);
          reject(e);
        });
        ctl.on('close', () => {
          clearTimeout(t);
          reject(new Error('switch closed the control stream'));
        });
      });
      ctl.removeAllListeners('data');
      ctl.removeAllListeners('close');
      const end = reply.indexOf(0, 2);
      const dataPath = reply.subarray(2, end < 0 ? SOCKADDR_UN_BYTES : end).toString();
      a.unixConnect(fd, dataPath);
      return new VdeClient(ctl, fd, localPath, dataPath, reply);
    } catch (e) {
      ctl.destroy();
      a.closeFd(fd);
      fs.rmSync(localPath, { force: true });
      throw e;
    }
  }

  /** Sends one frame; returns false if the socket buffer is full. */
  send(f: Buffer): boolean {
    const r = native().sendFd(this.fd, f);
    if (r < 0 && r !== -11) throw new Error(`send failed: errno ${-r}`);
    return r >= 0;
  }

  /** Receives one frame or null after timeoutMs. */
  async recv(timeoutMs = RECV_TIMEOUT_MS): Promise<Buffer | null> {
    const end = Date.now() + timeoutMs * TIME_SCALE;
    for (;;) {
      const b = native().recvFd(this.fd, 70000);
      if (b) return b;
      if (Date.now() >= end) return null;
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  /** Receives every frame arriving within windowMs. */
  async drain(windowMs = 300): Promise<Buffer[]> {
    const out: Buffer[] = [];
    const end = Date.now() + windowMs;
    while (Date.now() < end) {
      const b = native().recvFd(this.fd, 70000);
      if (b) out.push(b);
      else await new Promise((r) => setTimeout(r, 5));
    }
    return out;
  }

  /** Closes the connection like a client that exits. */
  close(): void {
    this.ctl.destroy();
    native().closeFd(this.fd);
    fs.rmSync(this.localPath, { force: true });
  }
}
