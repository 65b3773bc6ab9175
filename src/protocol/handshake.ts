/**
 * The VDE control-socket handshake (PROTOCOL.md §1.2-§1.4), as pure functions: parse a client's
 * request (v3, or the old v1 layout), and build the 110-byte `struct sockaddr_un` reply. Every
 * malformed request yields a reason string instead of an exception, so the control server can log
 * it and close the stream at once.
 *
 * The vde-ts extension (HandshakeExt): when both ends are vde-ts they agree here to carry a
 * virtio-net header and 64 KiB segments on the data socket. A client offers it in the bytes
 * after its description's terminating NUL (vde2 and vdeplug4 switches store the description as
 * a C string, so they never see it, and the request stays within their 256-byte read); a
 * switch accepts it in the padding after the data socket path's NUL inside the 110-byte reply
 * (a client that did not offer it never looks there; a switch that does not know it leaves
 * zeros). Either side missing, truncated or garbled means today's protocol, byte for byte.
 * Layout (EXT_BYTES): "vde-ts", version (1), flags (bit 0: virtio-net header), largest frame
 * (32-bit little-endian, host order like the rest of the request).
 */

/** The magic number that opens every request (host order on the wire). */
export const VDE_MAGIC = 0xfeedface;
/** Size of a Linux `struct sockaddr_un`: 2-byte family + 108-byte path. */
export const SOCKADDR_UN_BYTES = 110;
/** Offset of the description in a v3 request. */
export const V3_DESCR_OFFSET_BYTES = 122;
/** Offset of the description in a v1 request. */
export const V1_DESCR_OFFSET_BYTES = 124;
/** Largest request the switch accepts (vde2's REQBUFLEN). */
export const MAX_REQUEST_BYTES = 256;
const AF_UNIX = 1;
const SUN_PATH_BYTES = 108;

export const REQ_NEW_CONTROL = 0;
export const REQ_NEW_PORT0 = 1;

/** The extension block's magic, version, flag and size (see the file comment). */
export const EXT_MAGIC = Buffer.from('vde-ts', 'latin1');
export const EXT_VERSION = 1;
/** Frames on the data socket carry a 10-byte virtio-net header (TSO/checksum offloads, 64 KiB segments). */
export const EXT_F_VNET = 1;
export const EXT_BYTES = 12;

/** What one end offers (request) or accepts (reply) of the vde-ts extension. */
export interface HandshakeExt {
  version: number;
  flags: number;
  /** Largest frame (without the virtio-net header) the end takes. */
  maxFrameBytes: number;
}

/** Encodes an extension block (EXT_BYTES). */
export function encodeExt(e: HandshakeExt): Buffer {
  const b = Buffer.alloc(EXT_BYTES);
  EXT_MAGIC.copy(b, 0);
  b[6] = e.version & 0xff;
  b[7] = e.flags & 0xff;
  b.writeUInt32LE(e.maxFrameBytes >>> 0, 8);
  return b;
}

/** Decodes an extension block at the start of b, or null (too short, other magic, version 0). */
export function decodeExt(b: Buffer): HandshakeExt | null {
  if (b.length < EXT_BYTES || !b.subarray(0, EXT_MAGIC.length).equals(EXT_MAGIC) || b[6] === 0) return null;
  return { version: b[6], flags: b[7], maxFrameBytes: b.readUInt32LE(8) };
}

export interface PortRequest {
  version: 1 | 3;
  /** 0 = normal port, 1 = management port 0. */
  type: number;
  /** Requested port: 0 = any free port (type 0) or port 0 (type 1). */
  port: number;
  /** The client's datagram socket path; '' for an abstract address. */
  sockPath: string;
  /** True when the client bound an abstract-namespace address. */
  abstract: boolean;
  description: string;
  /** The vde-ts extension the client offered (v3 only), if any. */
  ext?: HandshakeExt;
}

export type ParseResult = { ok: true; req: PortRequest } | { ok: false; reason: string };

function readSockaddr(buf: Buffer, off: number): { ok: true; path: string; abstract: boolean } | { ok: false; reason: string } {
  const family = buf.readUInt16LE(off);
  if (family !== AF_UNIX) return { ok: false, reason: `socket address family ${family} is not AF_UNIX` };
  const raw = buf.subarray(off + 2, off + 2 + SUN_PATH_BYTES);
  if (raw[0] === 0) {
    const end = raw.indexOf(0, 1);
    const name = raw.subarray(1, end < 0 ? raw.length : end).toString('latin1');
    if (name.length === 0) return { ok: false, reason: 'empty client socket address' };
    return { ok: true, path: `\0${name}`, abstract: true };
  }
  const end = raw.indexOf(0);
  if (end < 0) return { ok: false, reason: 'client socket path is not NUL-terminated' };
  const p = raw.subarray(0, end).toString('utf8');
  if (!p.startsWith('/')) return { ok: false, reason: `client socket path "${p}" is not absolute` };
  return { ok: true, path: p, abstract: false };
}

function cleanDescription(b: Buffer): string {
  const end = b.indexOf(0);
  return (end < 0 ? b : b.subarray(0, end)).toString('utf8').replace(/[\x00-\x1f\x7f]/g, ' ').trimEnd();
}

/** Parses one request as read from the control stream. */
export function parseRequest(buf: Buffer): ParseResult {
  if (buf.length > MAX_REQUEST_BYTES) return { ok: false, reason: `request of ${buf.length} bytes exceeds ${MAX_REQUEST_BYTES}` };
  if (buf.length < 8) return { ok: false, reason: `truncated request (${buf.length} bytes)` };
  const magic = buf.readUInt32LE(0);
  if (magic !== VDE_MAGIC) return { ok: false, reason: `bad magic 0x${magic.toString(16).padStart(8, '0')} (V0 request not supported)` };
  const version = buf.readUInt32LE(4);
  if (version === 3) {
    if (buf.length < V3_DESCR_OFFSET_BYTES) return { ok: false, reason: `truncated v3 request (${buf.length} of ${V3_DESCR_OFFSET_BYTES} bytes)` };
    const word = buf.readUInt32LE(8);
    const type = word & 0xff;
    if (type !== REQ_NEW_CONTROL && type !== REQ_NEW_PORT0) return { ok: false, reason: `bad request type ${type}` };
    const port = type === REQ_NEW_PORT0 ? 0 : word >>> 8;
    const sa = readSockaddr(buf, 12);
    if (!sa.ok) return sa;
    const tail = buf.subarray(V3_DESCR_OFFSET_BYTES);
    const nul = tail.indexOf(0);
    const ext = nul < 0 ? null : decodeExt(tail.subarray(nul + 1));
    return {
      ok: true,
      req: { version: 3, type, port, sockPath: sa.path, abstract: sa.abstract, description: cleanDescription(tail), ...(ext ? { ext } : {}) },
    };
  }
  if (version === 0 || version === 1) {
    // v1: the word at offset 4 is the type (0 or 1), then a 6-byte MAC, then the sockaddr
    if (buf.length < V1_DESCR_OFFSET_BYTES) return { ok: false, reason: `truncated v1 request (${buf.length} of ${V1_DESCR_OFFSET_BYTES} bytes)` };
    const type = version;
    const sa = readSockaddr(buf, 14);
    if (!sa.ok) return sa;
    return {
      ok: true,
      req: { version: 1, type, port: 0, sockPath: sa.path, abstract: sa.abstract, description: cleanDescription(buf.subarray(V1_DESCR_OFFSET_BYTES)) },
    };
  }
  return { ok: false, reason: `request for a version ${version} port, which this switch does not support` };
}

/** Returns how many bytes a request starting with `head` needs at least (0 = cannot tell yet). */
export function minimumRequestBytes(head: Buffer): number {
  if (head.length < 8) return 8;
  if (head.readUInt32LE(0) !== VDE_MAGIC) return 8;
  const v = head.readUInt32LE(4);
  if (v === 3) return V3_DESCR_OFFSET_BYTES;
  if (v === 0 || v === 1) return V1_DESCR_OFFSET_BYTES;
  return 8;
}

/** The 4 magic bytes as they appear on the wire (host order, little-endian). */
const MAGIC_BYTES = Buffer.from([0xce, 0xfa, 0xed, 0xfe]);

/**
 * Says why the bytes received so far cannot begin any valid request (null while they still
 * can): the control server refuses such a client at once instead of waiting for the request
 * timeout. Checks the magic byte by byte, the version (0, 1 or 3), the request type (0 or 1)
 * and the AF_UNIX family of the client address, as far as they have arrived.
 */
export function hopelessRequest(head: Buffer): string | null {
  for (let i = 0; i < Math.min(4, head.length); i++)
    if (head[i] !== MAGIC_BYTES[i]) return `bad magic (byte ${i} is 0x${head[i].toString(16).padStart(2, '0')}; V0 request not supported)`;
  if (head.length > 4 && ![0, 1, 3].includes(head[4])) return `request for a version ${head[4]} port, which this switch does not support`;
  for (let i = 5; i < Math.min(8, head.length); i++)
    if (head[i] !== 0) return `request for a version ${head.length >= 8 ? head.readUInt32LE(4) : `>${0xff}`} port, which this switch does not support`;
  if (head.length < 5) return null;
  const v3 = head[4] === 3;
  if (v3 && head.length > 8 && head[8] !== REQ_NEW_CONTROL && head[8] !== REQ_NEW_PORT0) return `bad request type ${head[8]}`;
  const famOff = v3 ? 12 : 14;
  if (head.length > famOff && head[famOff] !== AF_UNIX) return `socket address family ${head[famOff]} is not AF_UNIX`;
  if (head.length > famOff + 1 && head[famOff + 1] !== 0) return `socket address family ${head.readUInt16LE(famOff)} is not AF_UNIX`;
  const pathOff = famOff + 2;
  if (head.length > pathOff && head[pathOff] !== 0 && head[pathOff] !== 0x2f) return 'client socket path is not absolute';
  return null;
}

/** True when a reply for path p has room for the extension after the path's NUL. */
export function replyHasRoomForExt(p: string): boolean {
  return Buffer.byteLength(p, 'utf8') + 1 + EXT_BYTES <= SUN_PATH_BYTES;
}

/**
 * Encodes a `struct sockaddr_un` (110 bytes) for a path, with the extension block after the
 * path's NUL when ext is given and fits (replyHasRoomForExt); throws if the path does not fit.
 */
export function encodeSockaddr(p: string, ext?: HandshakeExt): Buffer {
  const b = Buffer.alloc(SOCKADDR_UN_BYTES);
  b.writeUInt16LE(AF_UNIX, 0);
  const bytes = Buffer.from(p, 'utf8');
  if (bytes.length >= SUN_PATH_BYTES) throw new Error(`socket path too long (${bytes.length} bytes, limit ${SUN_PATH_BYTES - 1}): ${p}`);
  bytes.copy(b, 2);
  if (ext && replyHasRoomForExt(p)) encodeExt(ext).copy(b, 2 + bytes.length + 1);
  return b;
}

/** Reads a switch's reply (at least SOCKADDR_UN_BYTES): the data socket path and the extension it accepted, if any. */
export function parseReply(reply: Buffer): { path: string; ext: HandshakeExt | null } {
  const sun = reply.subarray(2, SOCKADDR_UN_BYTES);
  const end = sun.indexOf(0);
  const p = sun.subarray(0, end < 0 ? sun.length : end).toString();
  return { path: p, ext: end < 0 ? null : decodeExt(sun.subarray(end + 1)) };
}

/**
 * Builds a v3 request (used by our own clients and tests). With ext the description is cut to
 * leave room for a NUL and the extension block within MAX_REQUEST_BYTES - 1 bytes.
 */
export function encodeRequestV3(opts: { type?: number; port?: number; sockPath: string; description?: string; ext?: HandshakeExt }): Buffer {
  let descr = Buffer.from(opts.description ?? '', 'utf8');
  const extra = opts.ext ? Buffer.concat([Buffer.alloc(1), encodeExt(opts.ext)]) : Buffer.alloc(0);
  const room = MAX_REQUEST_BYTES - 1 - V3_DESCR_OFFSET_BYTES - extra.length;
  if (opts.ext && descr.length > room) descr = descr.subarray(0, room);
  const b = Buffer.alloc(V3_DESCR_OFFSET_BYTES + descr.length + extra.length);
  b.writeUInt32LE(VDE_MAGIC, 0);
  b.writeUInt32LE(3, 4);
  b.writeUInt32LE(((opts.type ?? REQ_NEW_CONTROL) + ((opts.port ?? 0) << 8)) >>> 0, 8);
  encodeSockaddr(opts.sockPath).copy(b, 12);
  descr.copy(b, V3_DESCR_OFFSET_BYTES);
  extra.copy(b, V3_DESCR_OFFSET_BYTES + descr.length);
  return b;
}

/** Builds a v1 request (type 0 = any port, 1 = port 0). */
export function encodeRequestV1(opts: { type?: number; sockPath: string; description?: string }): Buffer {
  const descr = Buffer.from(opts.description ?? '', 'utf8');
  const b = Buffer.alloc(V1_DESCR_OFFSET_BYTES + descr.length);
  b.writeUInt32LE(VDE_MAGIC, 0);
  b.writeUInt32LE(opts.type ?? 0, 4);
  encodeSockaddr(opts.sockPath).copy(b, 14);
  descr.copy(b, V1_DESCR_OFFSET_BYTES);
  return b;
}
