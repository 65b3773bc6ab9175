/**
 * Endpoint locators ("Virtual Network Locators", vdeplug4's VNL syntax, PROTOCOL.md §2.3-§2.5,
 * plus the QEMU framings of §10) as pure functions: `parseLocator` turns a string into a typed
 * `Locator` or throws a `LocatorError` that names the offending part; `formatLocator` prints the
 * canonical string back; `resolveIndirection` implements vdeplug4's "a regular file holds the
 * locator on its first line" rule (the only function here that touches the file system).
 * Used by our `vde_plug` and by the switch; opening the endpoints is somebody else's job.
 *
 * Syntax (SCHEME is everything before the first `://`, case-insensitive):
 *
 *   PATH | PATH[opts]              no `://` ⇒ `vde` with the whole string ("/tmp/sw" ≡ "vde:///tmp/sw").
 *                                  vde2 compatibility: a scheme-less string with `->` followed by `:`
 *                                  is the vde2 UDP form and parses as `udp://`.
 *   vde://PATH[X/key=v/...]        PATH = switch directory ('' = default). Inside [...], `/`-separated:
 *                                  a bare number = port (0 = management port 0), another bare word = port
 *                                  group; keys port=, portgroup= (numeric value ⇒ port), group=G,
 *                                  mode=OCTAL. `PATH[]` = any port (vdeplug4 meaning, not vde2's ptp).
 *   tap://IFNAME[/vnethdr]         Linux tap interface (≤15 bytes), optional virtio-net header.
 *   udp://[SRC:]SPORT->DHOST:DPORT raw frames over UDP; IPv6 hosts in brackets ("[::1]:5000").
 *   vxlan://[GROUP][/opts]         opts: port=4789 vni=1 ttl=1 rcvbuf=BYTES[kmg] v6 v4 hashsize=1024
 *                                  expiretime=128 if=IFNAME. GROUP defaults to 239.0.0.1 (ff05:56de::1 with v6).
 *   vxlan://PEER[,PEER...][/opts]  unicast peers (head-end replication) instead of a group: PEER is
 *                                  HOST, HOST:PORT, [V6] or [V6]:PORT (PORT defaults to port=); also
 *                                  peers=FILE (one PEER per line, # comments), local=ADDR (bind);
 *                                  the family is the peers' (v6 for host names of IPv6).
 *   vxvde://[GROUP][/opts]         as vxlan, port=14789, plus grp=GROUP, bind=ADDR, and vni= may be a
 *                                  group name or empty (= caller's egid; resolved when opening).
 *   ptp://PATH                     point-to-point unix socket.
 *   cmd://COMMAND ARGS             child process, split shell-like ('...', "...", \x), no shell.
 *   null://                        sink.  stdio://  = our stdin/stdout (2-byte stream framing).
 *   slirp://[/opts]                user-mode NAT; options kept as raw key/values (keys expanded).
 *   passt://[/opts]                passt(1) as the NAT: options are passt's long options (tcp-ports=SPEC,
 *                                  udp-ports=SPEC, mtu=N, address=A[,A6], dns=A[,A], no-dhcp, ...; see
 *                                  PASST_OPTION_KEYS), passed through to the passt it starts.
 *   stream://unix:PATH[opts]       unix stream socket (QEMU `-netdev stream` / `socket` framing),
 *   stream://tcp:HOST:PORT[opts]   TCP; opts: `server` (alias `listen`: bind and accept instead of
 *                                  connect; a TCP server may leave HOST empty: "stream://tcp::1234[server]"),
 *                                  `framing=4` (QEMU, default) or `framing=2` (VDE stream).
 *                                  Examples: stream://unix:/tmp/q.sock[server], stream://tcp:[::1]:1234.
 *   dgram://unix:LOCAL->REMOTE     raw frames over unix datagrams (QEMU `-netdev dgram`): bind LOCAL,
 *                                  send to REMOTE; either side may be empty, not both.
 *   dgram://udp:[LADDR:]LPORT->RHOST:RPORT   the same over UDP (either side may be empty, not both).
 *   crypt://KEYFILE[opts]{INNER}   authenticated encryption ("vde-ts crypt v1") over INNER, a datagram
 *                                  (udp, dgram, ptp) or stream (stream, stdio, cmd) locator; opts: pass
 *                                  (KEYFILE holds a passphrase), kid=N (its key id, default 1),
 *                                  cipher=chacha20-poly1305 (default) or aes-256-gcm, rekey=SECONDS (120).
 *
 * Quoting (vde_parseparms rules) applies to paths, interface names and option keys/values:
 * '...' and "..." protect delimiters literally, `\` escapes one character, `%XX` (two hex digits,
 * outside quotes) is that byte; a `%` not followed by two hex digits is literal. Host:port parts
 * (udp, stream tcp, dgram udp) are taken literally; cmd:// uses shell quoting only (no %XX). Option keys match by prefix of the known key,
 * first match in vdeplug4's table order wins (`p=5` is `port=5`); giving a key twice is an error.
 */
import fs from 'node:fs';
import { isIP } from 'node:net';
import { splitWords } from '../core/cli.js';

/** Longest locator accepted, in UTF-8 bytes (PATH_MAX). */
export const MAX_LOCATOR_BYTES = 4096;
/** Longest Linux interface name, in bytes (IFNAMSIZ - 1). */
export const MAX_IFNAME_BYTES = 15;
/** Longest unix socket path, in bytes (sun_path minus the terminating NUL). */
export const MAX_UNIX_PATH_BYTES = 107;
/** Default VXLAN UDP port (IANA). */
export const DEFAULT_VXLAN_PORT = 4789;
/** Default vxvde UDP port. */
export const DEFAULT_VXVDE_PORT = 14789;
/** Default VXLAN network identifier. */
export const DEFAULT_VNI = 1;
/** Largest VNI (24 bits). */
export const MAX_VNI = 0xffffff;
/** Default multicast TTL, in hops. */
export const DEFAULT_VX_TTL_HOPS = 1;
/** Default IPv4 multicast group of vxlan/vxvde. */
export const DEFAULT_VX_GROUP_V4 = '239.0.0.1';
/** Default IPv6 multicast group of vxlan/vxvde. */
export const DEFAULT_VX_GROUP_V6 = 'ff05:56de::1';
/** Default size of the vxlan/vxvde MAC table, in entries. */
export const DEFAULT_VX_HASH_SIZE_ENTRIES = 1024;
/** Largest vxlan/vxvde MAC table accepted, in entries. */
export const MAX_VX_HASH_SIZE_ENTRIES = 1 << 20;
/** Default lifetime of a learned vxlan/vxvde address, in seconds. */
export const DEFAULT_VX_EXPIRE_SECONDS = 128;
/** Largest socket receive buffer accepted, in bytes (fits a C int). */
export const MAX_RCVBUF_BYTES = 2 ** 31 - 1;
/** Largest expire time accepted, in seconds. */
export const MAX_EXPIRE_SECONDS = 2 ** 31 - 1;
/** Length-prefix size of QEMU stream framing, in bytes. */
export const QEMU_FRAMING_BYTES = 4;
/** Length-prefix size of VDE stream framing, in bytes. */
export const VDE_FRAMING_BYTES = 2;

/** Schemes parseLocator understands, in the order error messages list them. */
export const KNOWN_SCHEMES = [
  'vde', 'tap', 'udp', 'vxlan', 'vxvde', 'ptp', 'cmd', 'null', 'slirp', 'stream', 'dgram', 'stdio',
  'switch', 'hub', 'multi', 'seqpacket', 'vlan', 'crypt', 'passt',
] as const;
/** Largest file descriptor number seqpacket:// accepts. */
export const MAX_FD = 2 ** 31 - 1;
/** Largest VLAN id vlan:// accepts (4095 is reserved). */
export const MAX_VLAN_ID = 4094;
/** Default MAC table size of a switch:// node, in entries (vdeplug4). */
export const DEFAULT_NODE_HASH_SIZE_ENTRIES = 256;
/** Default lifetime of a switch:// node's MAC entries, in seconds (vdeplug4). */
export const DEFAULT_NODE_EXPIRE_SECONDS = 120;

export interface VdeLocator {
  kind: 'vde';
  /** Switch directory; '' = the default switch. */
  path: string;
  /** Requested port; 0 = management port 0 (request type 1). */
  port?: number;
  /** Port-group name (tries the socket PATH/GROUP first, as vdeplug4). */
  portGroup?: string;
  /** Group (name or number) given to the client's data socket. */
  group?: string;
  /** Permission bits of the client's data socket. */
  mode?: number;
}
export interface StdioLocator { kind: 'stdio' }
export interface TapLocator { kind: 'tap'; ifname: string; vnetHdr?: boolean }
export interface UdpLocator { kind: 'udp'; srcAddr?: string; srcPort: number; dstHost: string; dstPort: number }
/** One unicast VXLAN peer: a host (IP literal or name) and its UDP port (default: the locator's port=). */
export interface VxPeer { host: string; port?: number }
export interface VxlanLocator {
  kind: 'vxlan';
  /** Multicast group (IP literal, no brackets); '' for a unicast endpoint (peers/peersFile). */
  group: string;
  /** Unicast peers given in the locator (head-end replication). */
  peers?: VxPeer[];
  /** A file of peers (one per line), watched for changes while the endpoint runs. */
  peersFile?: string;
  /** Local address to bind (unicast only). */
  local?: string;
  family: 4 | 6;
  port: number;
  vni: number;
  ttl: number;
  /** Interface for the multicast membership (`if=`). */
  ifname?: string;
  rcvbufBytes?: number;
  hashSize: number;
  expireSeconds: number;
}
export interface VxvdeLocator extends Omit<VxlanLocator, 'kind'> {
  kind: 'vxvde';
  /**
   * `grp=`: group name or number whose gid replaces the last three bytes of `group` (and is the VNI
   * unless `vni=` is given); '' = the caller's egid. Applied when opening, not here.
   */
  grp?: string;
  /** When set, the VNI is the gid of this group ('' = egid), resolved when opening; `vni` is then unused. */
  vniGroup?: string;
  /** Local address of the unicast socket (`bind=`). */
  bind?: string;
}
export interface PtpLocator { kind: 'ptp'; path: string }
export interface CmdLocator { kind: 'cmd'; argv: string[] }
export interface NullLocator { kind: 'null' }
export interface StreamLocator {
  kind: 'stream';
  transport: 'unix' | 'tcp';
  role: 'client' | 'server';
  /** unix only. */
  path?: string;
  /** tcp only; absent for a server listening on all addresses. */
  host?: string;
  /** tcp only. */
  port?: number;
  /** Length-prefix size in bytes: 4 = QEMU, 2 = VDE. */
  framing: 4 | 2;
}
export interface DgramLocator {
  kind: 'dgram';
  transport: 'unix' | 'udp';
  localPath?: string;
  remotePath?: string;
  localHost?: string;
  localPort?: number;
  remoteHost?: string;
  remotePort?: number;
}
export interface SlirpLocator {
  kind: 'slirp';
  /** Full key name (aliases folded: addr→host, addr6→host6) → raw value ('' for flags). */
  options: Record<string, string>;
}
/** passt://[/opts]: a passt process as the NAT, with its options passed through. */
export interface PasstLocator {
  kind: 'passt';
  /** passt long option name → raw value ('' for flags), in the order given. */
  options: Record<string, string>;
}

/**
 * switch://, hub://, multi:// (vdeplug4's process-less nodes): the program becomes a small switch,
 * hub or multilink with a vde_switch-compatible directory PATH (PATH/ctl) others join.
 */
export interface NetnodeLocator {
  kind: 'switch' | 'hub' | 'multi';
  /** Node directory; '' = /tmp/vdenode_<user>. */
  path: string;
  /** Mode of the control and data sockets. */
  mode?: number;
  /** Mode of the directory (derived from mode when absent). */
  dirmode?: number;
  /** Group (name or number) of the directory and sockets. */
  grp?: string;
  /** switch only: MAC table size hint, in entries. */
  hashSize?: number;
  /** switch only: lifetime of learned addresses, in seconds. */
  expireSeconds?: number;
  /** switch only: accepted for vdeplug4 compatibility (our table needs no seed). */
  hashSeed?: number;
}
/** seqpacket://FD: an already open SOCK_SEQPACKET socket inherited as file descriptor FD. */
export interface SeqpacketLocator { kind: 'seqpacket'; fd: number }
/** One `tag=` entry of vlan://: the VLAN the VM uses and the VLAN on the network (equal unless remapped). */
export interface VlanTag { vm: number; net: number }
/** vlan://[UNTAGGED][opts]{INNER}: 802.1Q tagging done by the plug on the way to another locator. */
export interface VlanLocator {
  kind: 'vlan';
  /** VLAN the VM sees untagged (0 = none). */
  untagged: number;
  /** Untagged network traffic reaches the VM tagged with this VLAN. */
  untag?: number;
  /** VLANs the VM reaches tagged. */
  tags?: VlanTag[];
  /** Every other VLAN passes too. */
  trunk?: true;
  /** 802.1ad (0x88a8) instead of 802.1Q tags. */
  qinq?: true;
  inner: Locator;
}

/** The ciphers crypt:// offers. */
export const CRYPT_CIPHERS = ['chacha20-poly1305', 'aes-256-gcm'] as const;
/** crypt://KEYFILE[opts]{INNER}: frames sealed with authenticated encryption on their way through INNER. */
export interface CryptLocator {
  kind: 'crypt';
  /** The key file (`KEYID HEX` lines), or with `passphrase` a file whose first line is a passphrase. */
  keyFile: string;
  passphrase?: true;
  /** Key id of a passphrase's key (default 1). */
  kid?: number;
  cipher?: (typeof CRYPT_CIPHERS)[number];
  /** Seconds between rekeys (default 120). */
  rekeySeconds?: number;
  inner: Locator;
}

export type Locator =
  | VdeLocator | StdioLocator | TapLocator | UdpLocator | VxlanLocator | VxvdeLocator | PtpLocator
  | CmdLocator | NullLocator | StreamLocator | DgramLocator | SlirpLocator | PasstLocator
  | NetnodeLocator | SeqpacketLocator | VlanLocator | CryptLocator;
export type LocatorKind = Locator['kind'];

const MAX_SHOWN_CHARS = 120;

function shown(s: string): string {
  const cut = s.length > MAX_SHOWN_CHARS ? `${s.slice(0, MAX_SHOWN_CHARS - 3)}...` : s;
  return /[\x00-\x1f\x7f]/.test(cut) ? JSON.stringify(cut) : cut;
}

function q(s: string): string {
  return JSON.stringify(s.length > MAX_SHOWN_CHARS ? `${s.slice(0, MAX_SHOWN_CHARS - 3)}...` : s);
}

/** A locator that cannot be parsed; `part` is the offending piece, `detail` the message without the locator. */
export class LocatorError extends Error {
  override readonly name = 'LocatorError';
  readonly detail: string;
  constructor(readonly locator: string, readonly part: string, message: string) {
    super(`${shown(locator)}: ${message}`);
    this.detail = message;
  }
}

class Ctx {
  constructor(readonly locator: string) {}
  fail(part: string, message: string): never {
    throw new LocatorError(this.locator, part, message);
  }
}

// ---------------------------------------------------------------------------------------------
// Lexing: quotes, backslash and %XX (vde_parseparms' strtokq plus percent-decoding).

/** One decoded character; `ch` is set only when it came unquoted/unescaped (so it may delimit). */
interface Unit { ch: string | null; bytes: Uint8Array }

const utf8 = new TextEncoder();
const HEX = /^[0-9A-Fa-f]$/;

function lex(ctx: Ctx, raw: string): Unit[] {
  const cps = Array.from(raw);
  const out: Unit[] = [];
  let i = 0;
  while (i < cps.length) {
    const c = cps[i];
    if (c === "'" || c === '"') {
      const end = cps.indexOf(c, i + 1);
      if (end < 0) ctx.fail(cps.slice(i).join(''), `unterminated ${c} quote in ${q(raw)}`);
      for (let j = i + 1; j < end; j++) out.push({ ch: null, bytes: utf8.encode(cps[j]) });
      i = end + 1;
    } else if (c === '\\') {
      if (i + 1 >= cps.length) ctx.fail('\\', `dangling "\\" at the end of ${q(raw)} (write \\\\ for a backslash)`);
      out.push({ ch: null, bytes: utf8.encode(cps[i + 1]) });
      i += 2;
    } else if (c === '%' && i + 2 < cps.length && HEX.test(cps[i + 1]) && HEX.test(cps[i + 2])) {
      out.push({ ch: null, bytes: Uint8Array.of(parseInt(cps[i + 1] + cps[i + 2], 16)) });
      i += 3;
    } else {
      out.push({ ch: c, bytes: utf8.encode(c) });
      i += 1;
    }
  }
  return out;
}

function concatBytes(units: Unit[]): Buffer {
  return Buffer.concat(units.map((u) => u.bytes));
}

/** Lossy text of units, for messages only. */
function show(units: Unit[]): string {
  return concatBytes(units).toString('utf8');
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function text(ctx: Ctx, units: Unit[], what: string): string {
  const buf = concatBytes(units);
  if (buf.includes(0)) ctx.fail('%00', `${what}: contains a NUL byte`);
  try {
    return strictUtf8.decode(buf);
  } catch {
    return ctx.fail(show(units), `${what}: %-escapes do not form valid UTF-8 in ${q(show(units))}`);
  }
}

function splitUnits(units: Unit[], delim: string): Unit[][] {
  const parts: Unit[][] = [[]];
  for (const u of units) {
    if (u.ch === delim) parts.push([]);
    else parts[parts.length - 1].push(u);
  }
  return parts;
}

/** Splits `PATH[opts]` (vde_parsepathparms): the head and the `/`-separated bracket tokens (undefined without brackets). */
function splitBracket(ctx: Ctx, units: Unit[]): { head: Unit[]; tokens?: Unit[][] } {
  const open = units.findIndex((u) => u.ch === '[');
  if (open < 0) return { head: units };
  let close = -1;
  for (let k = open + 1; k < units.length; k++) {
    if (units[k].ch === ']') {
      close = k;
      break;
    }
  }
  if (close < 0) ctx.fail(show(units.slice(open)), `missing "]" after ${q(show(units.slice(open)))}`);
  if (close !== units.length - 1) {
    const tail = show(units.slice(close + 1));
    ctx.fail(tail, `unexpected ${q(tail)} after "]"`);
  }
  return { head: units.slice(0, open), tokens: splitUnits(units.slice(open + 1, close), '/') };
}

// ---------------------------------------------------------------------------------------------
// Options (vde_parseparms / vde_parsepathparms semantics, strict about errors).

interface KeyDef { key: string; slot?: string }
interface Opt { key: string; value: string; hasValue: boolean; /** The bare word that matched a key by prefix (vde positional context). */ bare?: string }

function parseOpts(ctx: Ctx, tokens: Unit[][], defs: KeyDef[], positionalSlot?: string): Map<string, Opt> {
  const out = new Map<string, Opt>();
  for (const tok of tokens) {
    if (tok.length === 0) continue; // "a//b" and a trailing "/" are ignored, as in vdeplug4
    const eq = tok.findIndex((u) => u.ch === '=');
    const key = text(ctx, eq < 0 ? tok : tok.slice(0, eq), 'option');
    if (eq === 0) ctx.fail(show(tok), `option ${q(show(tok))} has an empty key`);
    const def = defs.find((d) => d.key.startsWith(key));
    let slot: string;
    let opt: Opt;
    if (def) {
      slot = def.slot ?? def.key;
      opt = { key: def.key, value: eq < 0 ? '' : text(ctx, tok.slice(eq + 1), def.key), hasValue: eq >= 0 };
      if (eq < 0 && positionalSlot !== undefined) opt.bare = key;
    } else if (eq < 0 && positionalSlot !== undefined) {
      slot = positionalSlot;
      opt = { key: positionalSlot, value: key, hasValue: true };
    } else {
      const hint = eq < 0 && out.size > 0 ? '; a "/" inside a value must be quoted, e.g. key=\'a/b\'' : '';
      return ctx.fail(key, `unknown key ${q(key)} (known: ${defs.map((d) => d.key).join(', ')})${hint}`);
    }
    if (out.has(slot)) {
      const hint = /fwd$/.test(slot) ? ' (combine forwardings with commas)' : '';
      ctx.fail(key, `${slot}: given more than once${hint}`);
    }
    out.set(slot, opt);
  }
  return out;
}

function needValue(ctx: Ctx, o: Opt): string {
  if (o.bare !== undefined) ctx.fail(o.bare, `${q(o.bare)} abbreviates the key "${o.key}", which needs a value (${o.key}=...); write portgroup=${o.bare} for a port group of that name`);
  if (!o.hasValue || o.value === '') ctx.fail(o.key, `${o.key}: needs a value (${o.key}=...)`);
  return o.value;
}

function flag(ctx: Ctx, o: Opt): boolean {
  if (!o.hasValue || o.value === '') return true;
  const v = o.value.toLowerCase();
  if (['1', 'on', 'yes', 'true'].includes(v)) return true;
  if (['0', 'off', 'no', 'false'].includes(v)) return false;
  return ctx.fail(o.value, `${o.key}: ${q(o.value)} is not on/off (a bare "${o.key}" means on)`);
}

function pureFlag(ctx: Ctx, o: Opt): true {
  if (o.hasValue) ctx.fail(o.key, `${o.key}: is a flag and takes no value`);
  return true;
}

function int(ctx: Ctx, what: string, s: string, min: number, max: number): number {
  if (!/^\d+$/.test(s)) ctx.fail(s, `${what}: ${q(s)} is not a number`);
  const n = Number(s);
  if (n < min || n > max) ctx.fail(s, `${what}: ${s} is out of range ${min}..${max}`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// Small validators.

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

function checkIfname(ctx: Ctx, name: string, what: string): string {
  const n = byteLength(name);
  if (n > MAX_IFNAME_BYTES) ctx.fail(name, `${what} ${q(name)} is ${n} bytes long (max ${MAX_IFNAME_BYTES})`);
  if (name === '.' || name === '..') ctx.fail(name, `${what} ${q(name)} is not a valid interface name`);
  const bad = /[/:\s]/.exec(name);
  if (bad) ctx.fail(name, `${what} ${q(name)} contains ${q(bad[0])}, not allowed in interface names`);
  return name;
}

function checkUnixPath(ctx: Ctx, path: string, what: string, maxBytes = MAX_UNIX_PATH_BYTES): string {
  const n = byteLength(path);
  if (n > maxBytes) ctx.fail(path, `${what} ${q(path)} is ${n} bytes long (a unix socket path holds at most ${maxBytes})`);
  return path;
}

const HOSTNAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$/;
const MAX_HOSTNAME_CHARS = 253;

/** Validates a literal host (name, IPv4, or IPv6 without brackets). */
function checkHost(ctx: Ctx, host: string, what: string): string {
  if (host.includes(':')) {
    if (isIP(host) !== 6) ctx.fail(host, `${what} ${q(host)} is not a valid IPv6 address`);
    return host;
  }
  if (/^[\d.]+$/.test(host)) {
    if (isIP(host) !== 4) ctx.fail(host, `${what} ${q(host)} is not a valid IPv4 address`);
    return host;
  }
  if (host.length > MAX_HOSTNAME_CHARS || !HOSTNAME.test(host)) ctx.fail(host, `${what} ${q(host)} is not a valid host name or address`);
  return host;
}

/**
 * Parses `HOST:PORT` / `[V6]:PORT` / (when the host is optional) `PORT`, `:PORT`. `role` names the
 * part in messages; `form` is the expected shape shown to the user.
 */
function hostPort(ctx: Ctx, s: string, role: string, form: string, hostRequired: boolean): { host?: string; port: number } {
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) ctx.fail(s, `${role} ${q(s)}: missing "]" after the IPv6 address`);
    host = s.slice(1, close);
    const after = s.slice(close + 1);
    if (after === '') ctx.fail(s, `${role} ${q(s)} needs a port (${form})`);
    if (!after.startsWith(':')) ctx.fail(after, `${role} ${q(s)}: unexpected ${q(after)} after "]"`);
    portText = after.slice(1);
    if (isIP(host) !== 6) ctx.fail(host, `${role} host ${q(host)} is not a valid IPv6 address`);
  } else {
    const colon = s.lastIndexOf(':');
    if (colon < 0) {
      if (hostRequired) ctx.fail(s, `${role} ${q(s)} needs a port (${form})`);
      host = '';
      portText = s;
    } else {
      // The last ":" starts the port, as vdeplug4's rindex: "::1:5000" is host "::1", port 5000.
      host = s.slice(0, colon);
      portText = s.slice(colon + 1);
      if (host.includes(':') && isIP(host) !== 6) {
        ctx.fail(s, `${role} ${q(s)} is not ${form}; write IPv6 addresses in brackets ([ADDR]:PORT)`);
      }
    }
    if (host !== '') checkHost(ctx, host, `${role} host`);
  }
  if (host === '' && hostRequired) ctx.fail(s, `${role} ${q(s)} needs a host (${form})`);
  if (portText === '') ctx.fail(s, `${role} ${q(s)} needs a port (${form})`);
  const port = int(ctx, `${role} port`, portText, 1, 65535);
  return host === '' ? { port } : { host, port };
}

function fmtHost(h: string): string {
  return h.includes(':') ? `[${h}]` : h;
}

function isMulticast(addr: string, family: 4 | 6): boolean {
  if (family === 4) {
    const first = Number(addr.split('.')[0]);
    return first >= 224 && first <= 239;
  }
  const first = addr.split(':')[0].toLowerCase();
  return first.length === 4 && first.startsWith('ff');
}

// ---------------------------------------------------------------------------------------------
// Per-scheme parsers.

const VDE_KEYS: KeyDef[] = [{ key: 'port', slot: 'port' }, { key: 'portgroup', slot: 'port' }, { key: 'group' }, { key: 'mode' }];
const MAX_VDE_PORT = 65535;
const MAX_MODE = 0o7777;

function parseVde(ctx: Ctx, rest: string): VdeLocator {
  const { head, tokens } = splitBracket(ctx, lex(ctx, rest));
  const loc: VdeLocator = { kind: 'vde', path: text(ctx, head, 'path') };
  if (!tokens) return loc;
  const opts = parseOpts(ctx, tokens, VDE_KEYS, 'port');
  const p = opts.get('port');
  if (p) {
    const v = needValue(ctx, p);
    if (/^\d+$/.test(v)) loc.port = int(ctx, 'port', v, 0, MAX_VDE_PORT);
    else if (/^[\d+-]/.test(v)) ctx.fail(v, `port: ${q(v)} is not a number (port-group names must not start with a digit or sign)`);
    else if (v === '.' || v === '..') ctx.fail(v, `portgroup: ${q(v)} is not a valid port-group name`);
    else loc.portGroup = v;
  }
  const g = opts.get('group');
  if (g) loc.group = needValue(ctx, g);
  const m = opts.get('mode');
  if (m) {
    const v = needValue(ctx, m);
    if (!/^[0-7]{1,6}$/.test(v) || parseInt(v, 8) > MAX_MODE) ctx.fail(v, `mode: ${q(v)} is not an octal mode (e.g. 0660)`);
    loc.mode = parseInt(v, 8);
  }
  return loc;
}

function parseTap(ctx: Ctx, rest: string): TapLocator {
  const [first, ...more] = splitUnits(lex(ctx, rest), '/');
  const ifname = text(ctx, first, 'interface name');
  if (ifname === '') ctx.fail('', 'tap:// needs an interface name (tap://IFNAME)');
  const loc: TapLocator = { kind: 'tap', ifname: checkIfname(ctx, ifname, 'interface name') };
  const opts = parseOpts(ctx, more, [{ key: 'vnethdr' }]);
  const v = opts.get('vnethdr');
  if (v && flag(ctx, v)) loc.vnetHdr = true;
  return loc;
}

const UDP_FORM = '[SRCADDR:]SRCPORT->DSTHOST:DSTPORT';

function parseUdp(ctx: Ctx, rest: string): UdpLocator {
  const arrow = rest.indexOf('->');
  if (arrow < 0) ctx.fail(rest, `udp needs ${UDP_FORM}, got ${q(rest)}`);
  const src = rest.slice(0, arrow);
  const dst = rest.slice(arrow + 2);
  if (src === '') ctx.fail('', `udp needs a source port before "->" (${UDP_FORM})`);
  if (dst === '') ctx.fail('', `udp needs a destination after "->" (${UDP_FORM})`);
  const s = hostPort(ctx, src, 'source', '[ADDR:]PORT', false);
  const d = hostPort(ctx, dst, 'destination', 'HOST:PORT', true);
  const loc: UdpLocator = { kind: 'udp', srcPort: s.port, dstHost: d.host!, dstPort: d.port };
  if (s.host !== undefined) loc.srcAddr = s.host;
  return loc;
}

const VXLAN_KEYS: KeyDef[] = ['port', 'vni', 'ttl', 'rcvbuf', 'v6', 'v4', 'hashsize', 'expiretime', 'if', 'local', 'peers'].map((key) => ({ key }));
/** Most unicast VXLAN peers (the native endpoint's limit). */
export const MAX_VX_PEERS = 1024;

/** Parses one unicast VXLAN peer: HOST, HOST:PORT, [V6], [V6]:PORT or a bare IPv6 address. */
function parseVxPeer(ctx: Ctx, s: string): VxPeer {
  const form = 'HOST, HOST:PORT, [IPV6] or [IPV6]:PORT';
  if (s === '') ctx.fail(s, `an empty peer (${form})`);
  if (s.startsWith('[') && s.endsWith(']')) {
    const h = s.slice(1, -1);
    if (isIP(h) !== 6) ctx.fail(s, `peer ${q(s)} is not an IPv6 address in brackets`);
    return { host: h };
  }
  if (isIP(s) === 6) return { host: s };
  if (!s.includes(':')) return { host: checkHost(ctx, s, 'peer') };
  const r = hostPort(ctx, s, 'peer', form, true);
  return { host: r.host!, port: r.port };
}

/** Prints a peer back (IPv6 hosts in brackets). */
function formatVxPeer(p: VxPeer): string {
  const h = p.host.includes(':') ? `[${p.host}]` : p.host;
  return p.port === undefined ? h : `${h}:${p.port}`;
}

/**
 * Parses a peers file of a unicast vxlan:// endpoint: one peer per line (HOST, HOST:PORT, [V6],
 * [V6]:PORT), blank lines and '#' comments ignored. Throws an Error naming the line.
 */
export function parseVxlanPeersFile(text: string, name: string): VxPeer[] {
  const out: VxPeer[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    try {
      out.push(parseVxPeer(new Ctx(line), line));
    } catch (e) {
      throw new Error(`${name}:${i + 1}: ${e instanceof LocatorError ? e.detail : (e as Error).message}`);
    }
  });
  if (out.length > MAX_VX_PEERS) throw new Error(`${name}: ${out.length} peers (at most ${MAX_VX_PEERS})`);
  return out;
}
const VXVDE_KEYS: KeyDef[] = ['port', 'vni', 'grp', 'ttl', 'rcvbuf', 'v6', 'v4', 'hashsize', 'expiretime', 'if', 'bind'].map((key) => ({ key }));
const RCVBUF_SUFFIX_SHIFT: Record<string, number> = { '': 0, k: 10, m: 20, g: 30 };
const GROUP_NAME = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$/;

/** rcvbuf=SIZE: bytes with an optional k, m or g. */
function rcvbuf(ctx: Ctx, o: Opt): number {
  const v = needValue(ctx, o);
  const m = /^(\d+)([kKmMgG]?)$/.exec(v);
  if (!m) ctx.fail(v, `rcvbuf: ${q(v)} is not a size in bytes (e.g. 262144 or 256k)`);
  const bytes = Number(m[1]) * 2 ** RCVBUF_SUFFIX_SHIFT[m[2].toLowerCase()];
  if (bytes < 1 || bytes > MAX_RCVBUF_BYTES) ctx.fail(v, `rcvbuf: ${v} is out of range 1..${MAX_RCVBUF_BYTES} bytes`);
  return bytes;
}

function parseVx(ctx: Ctx, scheme: 'vxlan' | 'vxvde', rest: string): VxlanLocator | VxvdeLocator {
  const [first, ...more] = splitUnits(lex(ctx, rest), '/');
  let addr = text(ctx, first, 'address');
  if (addr.startsWith('[') && addr.endsWith(']')) addr = addr.slice(1, -1);
  const opts = parseOpts(ctx, more, scheme === 'vxlan' ? VXLAN_KEYS : VXVDE_KEYS);
  const o = (k: string): Opt | undefined => opts.get(k);
  const v4 = o('v4') ? pureFlag(ctx, o('v4')!) : false;
  const v6 = o('v6') ? pureFlag(ctx, o('v6')!) : false;
  let family: 4 | 6;
  const peersOpt = scheme === 'vxlan' ? o('peers') : undefined;
  const unicast = scheme === 'vxlan' && (peersOpt !== undefined || addr.includes(',') || (addr !== '' && !(isIP(addr) && isMulticast(addr, isIP(addr) as 4 | 6))));
  if (unicast) return parseUnicastVxlan(ctx, first, opts, v4, v6);
  if (addr === '') {
    family = v6 ? 6 : 4;
    addr = family === 6 ? DEFAULT_VX_GROUP_V6 : DEFAULT_VX_GROUP_V4;
  } else {
    const f = isIP(addr);
    if (f === 0) ctx.fail(addr, `${scheme} group ${q(addr)} is not an IPv4/IPv6 multicast address`);
    family = f as 4 | 6;
    if (family === 4 && v6 && !v4) ctx.fail('v6', `v6 given but group ${q(addr)} is an IPv4 address`);
    if (family === 6 && v4 && !v6) ctx.fail('v4', `v4 given but group ${q(addr)} is an IPv6 address`);
  }
  if (!isMulticast(addr, family)) ctx.fail(addr, `${scheme} group ${q(addr)} is not a multicast address (224.0.0.0/4 or ff00::/8)`);
  const common = {
    group: addr,
    family,
    port: o('port') ? int(ctx, 'port', needValue(ctx, o('port')!), 1, 65535) : scheme === 'vxlan' ? DEFAULT_VXLAN_PORT : DEFAULT_VXVDE_PORT,
    vni: DEFAULT_VNI,
    ttl: o('ttl') ? int(ctx, 'ttl', needValue(ctx, o('ttl')!), 0, 255) : DEFAULT_VX_TTL_HOPS,
    hashSize: o('hashsize') ? int(ctx, 'hashsize', needValue(ctx, o('hashsize')!), 1, MAX_VX_HASH_SIZE_ENTRIES) : DEFAULT_VX_HASH_SIZE_ENTRIES,
    expireSeconds: o('expiretime') ? int(ctx, 'expiretime', needValue(ctx, o('expiretime')!), 1, MAX_EXPIRE_SECONDS) : DEFAULT_VX_EXPIRE_SECONDS,
  };
  const extra: { ifname?: string; rcvbufBytes?: number } = {};
  if (o('if')) extra.ifname = checkIfname(ctx, needValue(ctx, o('if')!), 'if:');
  if (o('rcvbuf')) extra.rcvbufBytes = rcvbuf(ctx, o('rcvbuf')!);
  if (scheme === 'vxlan') {
    const vni = o('vni');
    if (vni) common.vni = int(ctx, 'vni', needValue(ctx, vni), 0, MAX_VNI);
    if (o('local')) ctx.fail('local', 'local= applies to unicast peers, not to a multicast group');
    return { kind: 'vxlan', ...common, ...extra };
  }
  const loc: VxvdeLocator = { kind: 'vxvde', ...common, ...extra };
  const grp = o('grp');
  if (grp) {
    if (grp.value !== '' && !/^\d+$/.test(grp.value) && !GROUP_NAME.test(grp.value)) ctx.fail(grp.value, `grp: ${q(grp.value)} is neither a number nor a group name`);
    loc.grp = grp.value;
  }
  const vni = o('vni');
  const vniText = vni ? vni.value : grp?.value;
  if (vniText !== undefined) {
    const what = vni ? 'vni' : 'grp';
    if (/^\d+$/.test(vniText)) loc.vni = int(ctx, what, vniText, 0, MAX_VNI);
    else if (vniText === '' || GROUP_NAME.test(vniText)) loc.vniGroup = vniText;
    else ctx.fail(vniText, `${what}: ${q(vniText)} is neither a number nor a group name`);
  }
  const bind = o('bind');
  if (bind) {
    const b = needValue(ctx, bind);
    const f = isIP(b);
    if (f === 0) ctx.fail(b, `bind: ${q(b)} is not an IPv4/IPv6 address`);
    if (f !== family) ctx.fail(b, `bind: ${q(b)} is IPv${f} but the group ${q(addr)} is IPv${family}`);
    loc.bind = b;
  }
  return loc;
}

/** vxlan://PEER[,PEER...][/opts] or vxlan://[/opts]/peers=FILE: a unicast endpoint. */
function parseUnicastVxlan(ctx: Ctx, first: Unit[], opts: Map<string, Opt>, v4: boolean, v6: boolean): VxlanLocator {
  const o = (k: string): Opt | undefined => opts.get(k);
  for (const k of ['ttl', 'if'] as const) if (o(k)) ctx.fail(k, `${k}= applies to a multicast group, not to unicast peers`);
  if (v4 && v6) ctx.fail('v6', 'v4 and v6 both given');
  const peers = first.length === 0 ? [] : splitUnits(first, ',').map((u) => parseVxPeer(ctx, text(ctx, u, 'peer')));
  if (peers.length > MAX_VX_PEERS) ctx.fail(String(peers.length), `${peers.length} peers (at most ${MAX_VX_PEERS})`);
  const fams = new Set(peers.map((p) => isIP(p.host)).filter((f) => f !== 0));
  if (fams.size > 1) ctx.fail(text(ctx, first, 'peers'), 'peers of both IPv4 and IPv6 (one endpoint has one underlay family)');
  let family: 4 | 6 = fams.size ? ([...fams][0] as 4 | 6) : v6 ? 6 : 4;
  for (const p of peers) {
    if (isIP(p.host) && isMulticast(p.host, family)) ctx.fail(p.host, `peer ${q(p.host)} is a multicast address (give a group alone for multicast)`);
  }
  if (fams.size && ((family === 4 && v6) || (family === 6 && v4))) ctx.fail(family === 4 ? 'v6' : 'v4', `the peers are IPv${family} addresses`);
  const loc: VxlanLocator = {
    kind: 'vxlan',
    group: '',
    family,
    port: o('port') ? int(ctx, 'port', needValue(ctx, o('port')!), 1, 65535) : DEFAULT_VXLAN_PORT,
    vni: o('vni') ? int(ctx, 'vni', needValue(ctx, o('vni')!), 0, MAX_VNI) : DEFAULT_VNI,
    ttl: DEFAULT_VX_TTL_HOPS,
    hashSize: o('hashsize') ? int(ctx, 'hashsize', needValue(ctx, o('hashsize')!), 1, MAX_VX_HASH_SIZE_ENTRIES) : DEFAULT_VX_HASH_SIZE_ENTRIES,
    expireSeconds: o('expiretime') ? int(ctx, 'expiretime', needValue(ctx, o('expiretime')!), 1, MAX_EXPIRE_SECONDS) : DEFAULT_VX_EXPIRE_SECONDS,
  };
  if (peers.length) loc.peers = peers;
  if (o('peers')) loc.peersFile = needValue(ctx, o('peers')!);
  if (o('local')) {
    const l = needValue(ctx, o('local')!);
    if (isIP(l) === 0) ctx.fail(l, `local: ${q(l)} is not an IPv4/IPv6 address`);
    if (isIP(l) !== family) {
      if (fams.size || v4 || v6) ctx.fail(l, `local: ${q(l)} is IPv${isIP(l)} but the peers are IPv${family}`);
      family = isIP(l) as 4 | 6;
      loc.family = family;
    }
    loc.local = l;
  }
  if (o('rcvbuf')) loc.rcvbufBytes = rcvbuf(ctx, o('rcvbuf')!);
  return loc;
}

/** ptp appends "+" to the path for its second socket, so the path must leave room for it. */
const MAX_PTP_PATH_BYTES = MAX_UNIX_PATH_BYTES - 1;

function parsePtp(ctx: Ctx, rest: string): PtpLocator {
  const path = text(ctx, lex(ctx, rest), 'path');
  if (path === '') ctx.fail('', 'ptp:// needs a path (ptp://PATH)');
  return { kind: 'ptp', path: checkUnixPath(ctx, path, 'path', MAX_PTP_PATH_BYTES) };
}

/** Splits a command line like a shell would split words ('...', "...", backslash), without expansions. */
function splitCommand(ctx: Ctx, s: string): string[] {
  const r = splitWords(s);
  if ('argv' in r) return r.argv;
  const from = Array.from(s).slice(r.at).join('');
  if (r.error === 'backslash') return ctx.fail('\\', `dangling "\\" at the end of command ${q(s)}`);
  return ctx.fail(from, `unterminated ${r.error === 'squote' ? "'" : '"'} quote in command ${q(s)}`);
}

function parseCmd(ctx: Ctx, rest: string): CmdLocator {
  const argv = splitCommand(ctx, rest);
  if (argv.length === 0) ctx.fail(rest, 'cmd:// needs a command (cmd://COMMAND ARGS)');
  if (argv[0] === '') ctx.fail(rest, 'cmd://: the command name is empty');
  return { kind: 'cmd', argv };
}

const STREAM_KEYS: KeyDef[] = [{ key: 'server' }, { key: 'listen', slot: 'server' }, { key: 'framing' }];

function transportOf<T extends string>(ctx: Ctx, scheme: string, rest: string, allowed: readonly T[], example: string): [T, string] {
  const colon = rest.indexOf(':');
  const t = colon < 0 ? rest : rest.slice(0, colon);
  if (colon < 0 || !(allowed as readonly string[]).includes(t.toLowerCase())) {
    ctx.fail(t, `${scheme}:// needs a transport ${allowed.map((a) => `${a}:`).join(' or ')} (e.g. ${example}), got ${q(t)}`);
  }
  return [t.toLowerCase() as T, rest.slice(colon + 1)];
}

function parseStream(ctx: Ctx, rest: string): StreamLocator {
  const [transport, addr] = transportOf(ctx, 'stream', rest, ['unix', 'tcp'] as const, 'stream://unix:/tmp/q.sock[server]');
  // Split off the trailing [opts]; for tcp the host:port part is literal and an IPv6 host is in brackets.
  let head: Unit[] | string;
  let tokens: Unit[][] | undefined;
  if (transport === 'unix') {
    ({ head, tokens } = splitBracket(ctx, lex(ctx, addr)));
  } else {
    const close = addr.startsWith('[') ? addr.indexOf(']') : -1;
    const open = addr.indexOf('[', close + 1);
    head = open < 0 ? addr : addr.slice(0, open);
    if (open >= 0) ({ tokens } = splitBracket(ctx, lex(ctx, addr.slice(open))));
  }
  const loc: StreamLocator = { kind: 'stream', transport, role: 'client', framing: QEMU_FRAMING_BYTES };
  const opts = parseOpts(ctx, tokens ?? [], STREAM_KEYS);
  const s = opts.get('server');
  if (s && flag(ctx, s)) loc.role = 'server';
  const f = opts.get('framing');
  if (f) {
    const v = needValue(ctx, f);
    if (v !== '2' && v !== '4') ctx.fail(v, `framing: ${q(v)} must be 4 (QEMU, 4-byte length) or 2 (VDE, 2-byte length)`);
    loc.framing = v === '2' ? VDE_FRAMING_BYTES : QEMU_FRAMING_BYTES;
  }
  if (typeof head !== 'string') {
    const path = text(ctx, head, 'path');
    if (path === '') ctx.fail('', 'stream://unix: needs a path (stream://unix:PATH)');
    loc.path = checkUnixPath(ctx, path, 'path');
    return loc;
  }
  const server = loc.role === 'server';
  const form = server ? '[HOST]:PORT' : 'HOST:PORT';
  if (head === '') ctx.fail('', `stream://tcp: needs ${form}`);
  const r = hostPort(ctx, head, 'address', form, !server);
  if (r.host === undefined && !head.startsWith(':')) ctx.fail(head, `address ${q(head)} needs a port (${form})`);
  if (r.host !== undefined) loc.host = r.host;
  loc.port = r.port;
  return loc;
}

function parseDgram(ctx: Ctx, rest: string): DgramLocator {
  const [transport, addr] = transportOf(ctx, 'dgram', rest, ['unix', 'udp'] as const, 'dgram://unix:/tmp/a->/tmp/b');
  const loc: DgramLocator = { kind: 'dgram', transport };
  if (transport === 'unix') {
    const units = lex(ctx, addr);
    const arrow = units.findIndex((u, k) => u.ch === '-' && units[k + 1]?.ch === '>');
    if (arrow < 0) ctx.fail(addr, `dgram://unix: needs LOCAL->REMOTE, got ${q(addr)}`);
    const local = text(ctx, units.slice(0, arrow), 'local path');
    const remote = text(ctx, units.slice(arrow + 2), 'remote path');
    if (local === '' && remote === '') ctx.fail('->', 'dgram://unix: needs a local or a remote path (LOCAL->REMOTE)');
    if (local !== '' && local === remote) ctx.fail(local, `local and remote path are both ${q(local)}`);
    if (local !== '') loc.localPath = checkUnixPath(ctx, local, 'local path');
    if (remote !== '') loc.remotePath = checkUnixPath(ctx, remote, 'remote path');
    return loc;
  }
  const arrow = addr.indexOf('->');
  if (arrow < 0) ctx.fail(addr, `dgram://udp: needs [LADDR:]LPORT->RHOST:RPORT, got ${q(addr)}`);
  const local = addr.slice(0, arrow);
  const remote = addr.slice(arrow + 2);
  if (local === '' && remote === '') ctx.fail('->', 'dgram://udp: needs a local or a remote address ([LADDR:]LPORT->RHOST:RPORT)');
  if (local !== '') {
    const l = hostPort(ctx, local, 'local', '[LADDR:]LPORT', false);
    if (l.host !== undefined) loc.localHost = l.host;
    loc.localPort = l.port;
  }
  if (remote !== '') {
    const r = hostPort(ctx, remote, 'remote', 'RHOST:RPORT', true);
    loc.remoteHost = r.host!;
    loc.remotePort = r.port;
  }
  return loc;
}

/** libvdeplug_slirp's table, in its order (prefix matching depends on it); aliases share a slot. */
const SLIRP_KEYS: KeyDef[] = [
  { key: 'restricted' }, { key: 'v4' }, { key: 'v6' }, { key: 'host' }, { key: 'addr', slot: 'host' },
  { key: 'host6' }, { key: 'addr6', slot: 'host6' }, { key: 'hostname' }, { key: 'tftp_server_name' },
  { key: 'tftp_path' }, { key: 'bootfile' }, { key: 'dhcp' }, { key: 'vnameserver' }, { key: 'vnameserver6' },
  { key: 'vdnssearch' }, { key: 'vdomainname' }, { key: 'mtu' }, { key: 'mru' }, { key: 'disable_host_loopback' },
  { key: 'tcpfwd' }, { key: 'udpfwd' }, { key: 'unixfwd' }, { key: 'cmdfwd' }, { key: 'verbose' },
];

function parseSlirp(ctx: Ctx, rest: string): SlirpLocator {
  const [first, ...more] = splitUnits(lex(ctx, rest), '/');
  if (first.length > 0) ctx.fail(show(first), `slirp:// takes no address, only options (slirp:///key=value/...), got ${q(show(first))}`);
  const options: Record<string, string> = {};
  for (const [slot, o] of parseOpts(ctx, more, SLIRP_KEYS)) options[slot] = o.value;
  return { kind: 'slirp', options };
}

/** passt(1)'s options that passt:// passes through (value options, then flags); keys match by prefix in this order. */
export const PASST_VALUE_KEYS = ['tcp-ports', 'udp-ports', 'mtu', 'address', 'netmask', 'gateway', 'mac-addr', 'dns', 'search', 'interface', 'outbound', 'dns-forward', 'pcap'] as const;
export const PASST_FLAG_KEYS = ['no-dhcp', 'no-ndp', 'no-dhcpv6', 'no-ra', 'no-map-gw', 'no-dhcp-dns', 'no-dhcp-search', 'ipv4-only', 'ipv6-only', 'no-tcp', 'no-udp', 'no-icmp', 'debug', 'trace'] as const;
const PASST_KEYS: KeyDef[] = [...PASST_VALUE_KEYS, ...PASST_FLAG_KEYS].map((key) => ({ key }));

function parsePasst(ctx: Ctx, rest: string): PasstLocator {
  const [first, ...more] = splitUnits(lex(ctx, rest), '/');
  if (first.length > 0) ctx.fail(show(first), `passt:// takes no address, only options (passt:///key=value/...), got ${q(show(first))}`);
  const options: Record<string, string> = {};
  for (const [slot, o] of parseOpts(ctx, more, PASST_KEYS)) {
    if ((PASST_VALUE_KEYS as readonly string[]).includes(slot)) options[slot] = needValue(ctx, o);
    else if (flag(ctx, o)) options[slot] = '';
  }
  return { kind: 'passt', options };
}

const NODE_KEYS: KeyDef[] = ['mode', 'dirmode', 'grp'].map((key) => ({ key }));
const SWITCH_NODE_KEYS: KeyDef[] = [...NODE_KEYS, ...['hashsize', 'expiretime', 'hashseed'].map((key) => ({ key }))];
const MAX_HASH_SEED = 2 ** 32 - 1;

function octalOpt(ctx: Ctx, o: Opt): number {
  const v = needValue(ctx, o);
  if (!/^[0-7]{1,6}$/.test(v) || parseInt(v, 8) > MAX_MODE) ctx.fail(v, `${o.key}: ${q(v)} is not an octal mode (e.g. 0660)`);
  return parseInt(v, 8);
}

function parseNetnode(ctx: Ctx, kind: NetnodeLocator['kind'], rest: string): NetnodeLocator {
  const { head, tokens } = splitBracket(ctx, lex(ctx, rest));
  const path = text(ctx, head, 'path');
  const loc: NetnodeLocator = { kind, path: path === '' ? '' : checkUnixPath(ctx, path, 'path', MAX_UNIX_PATH_BYTES - 8) };
  const opts = parseOpts(ctx, tokens ?? [], kind === 'switch' ? SWITCH_NODE_KEYS : NODE_KEYS);
  const o = (k: string): Opt | undefined => opts.get(k);
  if (o('mode')) loc.mode = octalOpt(ctx, o('mode')!);
  if (o('dirmode')) loc.dirmode = octalOpt(ctx, o('dirmode')!);
  if (o('grp')) {
    const g = needValue(ctx, o('grp')!);
    if (!/^\d+$/.test(g) && !GROUP_NAME.test(g)) ctx.fail(g, `grp: ${q(g)} is neither a number nor a group name`);
    loc.grp = g;
  }
  if (o('hashsize')) loc.hashSize = int(ctx, 'hashsize', needValue(ctx, o('hashsize')!), 1, MAX_VX_HASH_SIZE_ENTRIES);
  if (o('expiretime')) loc.expireSeconds = int(ctx, 'expiretime', needValue(ctx, o('expiretime')!), 1, MAX_EXPIRE_SECONDS);
  if (o('hashseed')) loc.hashSeed = int(ctx, 'hashseed', needValue(ctx, o('hashseed')!), 0, MAX_HASH_SEED);
  return loc;
}

function parseSeqpacket(ctx: Ctx, rest: string): SeqpacketLocator {
  // strtol base 0, as vdeplug4: decimal, 0x hexadecimal or 0 octal
  const m = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)$/.exec(rest);
  if (!m) ctx.fail(rest, `seqpacket:// needs the number of an open SOCK_SEQPACKET file descriptor (seqpacket://FD), got ${q(rest)}`);
  const fd = /^0[xX]/.test(rest) ? parseInt(rest.slice(2), 16) : rest.length > 1 && rest[0] === '0' ? parseInt(rest, 8) : Number(rest);
  if (fd > MAX_FD) ctx.fail(rest, `seqpacket: file descriptor ${rest} is out of range`);
  return { kind: 'seqpacket', fd };
}

const VLAN_KEYS: KeyDef[] = [
  { key: 'untag' }, { key: 'u', slot: 'untag' }, { key: 'tag' }, { key: 't', slot: 'tag' },
  { key: 'trunk' }, { key: 'x', slot: 'trunk' }, { key: 'qinq' }, { key: 'q', slot: 'qinq' }, { key: 'ad', slot: 'qinq' },
];

function vlanId(ctx: Ctx, what: string, s: string): number {
  return int(ctx, what, s, 1, MAX_VLAN_ID);
}

/** Index of the first `{` outside quotes and escapes, or -1. */
function openBrace(s: string): number {
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') i++;
    else if (c === "'" || c === '"') {
      const end = s.indexOf(c, i + 1);
      if (end < 0) return -1;
      i = end;
    } else if (c === '{') return i;
  }
  return -1;
}

/** Splits `HEAD{LOCATOR}` of a nesting scheme (vlan, crypt): the head text and the parsed inner locator. */
function nested(ctx: Ctx, scheme: string, form: string, rest: string): { head: string; inner: Locator } {
  const brace = openBrace(rest);
  if (brace < 0 || !rest.endsWith('}')) ctx.fail(rest, `${scheme}:// needs the nested locator in braces: ${scheme}://${form}{LOCATOR}, got ${q(rest)}`);
  const innerText = rest.slice(brace + 1, -1);
  if (innerText === '') ctx.fail('{}', `${scheme}://: the nested locator in {...} is empty`);
  try {
    return { head: rest.slice(0, brace), inner: parseLocator(innerText) };
  } catch (e) {
    return ctx.fail(innerText, `nested locator: ${e instanceof LocatorError ? e.detail : String(e)}`);
  }
}

function parseVlan(ctx: Ctx, rest: string): VlanLocator {
  const { head: headText, inner } = nested(ctx, 'vlan', 'VLAN[opts]', rest);
  // VLAN[opts] or VLAN/opt/opt (both appear in vdeplug4's man page)
  const units = lex(ctx, headText);
  const bracketed = units.some((u) => u.ch === '[');
  let headUnits: Unit[];
  let tokens: Unit[][];
  if (bracketed) {
    const b = splitBracket(ctx, units);
    headUnits = b.head;
    tokens = b.tokens ?? [];
  } else {
    [headUnits, ...tokens] = splitUnits(units, '/');
  }
  const head = text(ctx, headUnits, 'VLAN');
  const loc: VlanLocator = { kind: 'vlan', untagged: head === '' ? 0 : int(ctx, 'untagged VLAN', head, 0, MAX_VLAN_ID), inner };
  const opts = parseOpts(ctx, tokens, VLAN_KEYS);
  const u = opts.get('untag');
  if (u) loc.untag = int(ctx, 'untag', needValue(ctx, u), 0, MAX_VLAN_ID);
  const t = opts.get('tag');
  if (t) {
    const list = needValue(ctx, t).split(/[:.]/).filter((x) => x !== '');
    loc.tags = list.map((tok) => {
      const m = /^(\d+)(?:-(\d+))?$/.exec(tok);
      if (!m) return ctx.fail(tok, `tag: ${q(tok)} is not VLAN or VLAN-VLAN`);
      const vm = vlanId(ctx, 'tag', m[1]);
      return { vm, net: m[2] === undefined ? vm : vlanId(ctx, 'tag', m[2]) };
    });
    if (loc.tags.length === 0) ctx.fail(t.value, 'tag: needs at least one VLAN');
  }
  if (opts.get('trunk') && flag(ctx, opts.get('trunk')!)) loc.trunk = true;
  if (opts.get('qinq') && flag(ctx, opts.get('qinq')!)) loc.qinq = true;
  return loc;
}

const CRYPT_KEYS: KeyDef[] = [{ key: 'pass' }, { key: 'passphrase', slot: 'pass' }, { key: 'kid' }, { key: 'cipher' }, { key: 'rekey' }];
/** Longest time between rekeys crypt:// accepts, in seconds. */
export const MAX_CRYPT_REKEY_SECONDS = 86400;

function parseCrypt(ctx: Ctx, rest: string): CryptLocator {
  const { head: headText, inner } = nested(ctx, 'crypt', 'KEYFILE[opts]', rest);
  const { head, tokens } = splitBracket(ctx, lex(ctx, headText));
  const keyFile = text(ctx, head, 'key file');
  if (keyFile === '') ctx.fail('', 'crypt:// needs a key file: crypt://KEYFILE[opts]{LOCATOR}');
  const loc: CryptLocator = { kind: 'crypt', keyFile, inner };
  const opts = parseOpts(ctx, tokens ?? [], CRYPT_KEYS);
  const p = opts.get('pass');
  if (p && flag(ctx, p)) loc.passphrase = true;
  const k = opts.get('kid');
  if (k) loc.kid = int(ctx, 'kid', needValue(ctx, k), 0, 255);
  const c = opts.get('cipher');
  if (c) {
    const v = needValue(ctx, c).toLowerCase();
    if (!(CRYPT_CIPHERS as readonly string[]).includes(v)) ctx.fail(v, `cipher: ${q(v)} is not ${CRYPT_CIPHERS.join(' or ')}`);
    loc.cipher = v as CryptLocator['cipher'];
  }
  const r = opts.get('rekey');
  if (r) loc.rekeySeconds = int(ctx, 'rekey', needValue(ctx, r), 1, MAX_CRYPT_REKEY_SECONDS);
  if (loc.kid !== undefined && !loc.passphrase) ctx.fail('kid', 'kid= applies to a passphrase (pass); a key file names its key ids');
  return loc;
}

function noArgument(ctx: Ctx, scheme: string, rest: string): void {
  if (rest !== '') ctx.fail(rest, `${scheme}:// takes no argument, got ${q(rest)}`);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Parses a locator string (vdeplug4 VNL syntax plus our stream/dgram/stdio forms); throws LocatorError. */
export function parseLocator(s: string): Locator {
  if (typeof s !== 'string') throw new LocatorError(String(s), '', 'a locator must be a string');
  const ctx = new Ctx(s);
  const bytes = byteLength(s);
  if (bytes > MAX_LOCATOR_BYTES) ctx.fail('', `locator is ${bytes} bytes long (max ${MAX_LOCATOR_BYTES})`);
  const nul = s.indexOf('\0');
  if (nul >= 0) ctx.fail('\0', `contains a NUL byte at offset ${nul}`);
  if (LONE_SURROGATE.test(s)) ctx.fail('', 'contains an unpaired UTF-16 surrogate (not representable in UTF-8)');
  const sep = s.indexOf('://');
  if (sep < 0) {
    const arrow = s.indexOf('->');
    if (arrow >= 0 && s.indexOf(':', arrow) >= 0) return parseUdp(ctx, s); // vde2 "[src:]sport->dhost:dport"
    return parseVde(ctx, s);
  }
  const scheme = s.slice(0, sep).toLowerCase();
  const rest = s.slice(sep + 3);
  switch (scheme) {
    case 'vde': return parseVde(ctx, rest);
    case 'tap': return parseTap(ctx, rest);
    case 'udp': return parseUdp(ctx, rest);
    case 'vxlan': return parseVx(ctx, 'vxlan', rest);
    case 'vxvde': return parseVx(ctx, 'vxvde', rest);
    case 'ptp': return parsePtp(ctx, rest);
    case 'cmd': return parseCmd(ctx, rest);
    case 'null': noArgument(ctx, 'null', rest); return { kind: 'null' };
    case 'stdio': noArgument(ctx, 'stdio', rest); return { kind: 'stdio' };
    case 'slirp': return parseSlirp(ctx, rest);
    case 'passt': return parsePasst(ctx, rest);
    case 'stream': return parseStream(ctx, rest);
    case 'dgram': return parseDgram(ctx, rest);
    case 'switch':
    case 'hub':
    case 'multi': return parseNetnode(ctx, scheme, rest);
    case 'seqpacket': return parseSeqpacket(ctx, rest);
    case 'vlan': return parseVlan(ctx, rest);
    case 'crypt': return parseCrypt(ctx, rest);
    default:
      return ctx.fail(s.slice(0, sep), `unknown scheme ${q(s.slice(0, sep))} (known: ${KNOWN_SCHEMES.join(', ')})`);
  }
}

// ---------------------------------------------------------------------------------------------
// Printing.

const LEX_SPECIALS = `\\'"%`;

/** Quotes a value for a lexed context so that none of `delims` acts as a delimiter. */
function quote(s: string, delims: string): string {
  const special = (c: string): boolean => LEX_SPECIALS.includes(c) || delims.includes(c);
  if (!Array.from(s).some(special)) return s;
  if (!s.includes("'")) return `'${s}'`;
  return Array.from(s).map((c) => (special(c) ? `\\${c}` : c)).join('');
}

function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

function bracket(opts: string[]): string {
  return opts.length > 0 ? `[${opts.join('/')}]` : '';
}

/** Prints the canonical string of a locator; parseLocator(formatLocator(x)) deep-equals x. */
export function formatLocator(l: Locator): string {
  const OPT = '[]/=';
  switch (l.kind) {
    case 'vde': {
      const opts: string[] = [];
      if (l.port !== undefined) opts.push(String(l.port));
      else if (l.portGroup !== undefined) opts.push(`portgroup=${quote(l.portGroup, OPT)}`);
      if (l.group !== undefined) opts.push(`group=${quote(l.group, OPT)}`);
      if (l.mode !== undefined) opts.push(`mode=${octal(l.mode)}`);
      return `vde://${quote(l.path, '[')}${bracket(opts)}`;
    }
    case 'stdio':
    case 'null':
      return `${l.kind}://`;
    case 'tap':
      return `tap://${quote(l.ifname, '/')}${l.vnetHdr ? '/vnethdr' : ''}`;
    case 'udp':
      return `udp://${l.srcAddr !== undefined ? `${fmtHost(l.srcAddr)}:` : ''}${l.srcPort}->${fmtHost(l.dstHost)}:${l.dstPort}`;
    case 'vxlan':
    case 'vxvde': {
      const opts: string[] = [];
      if (l.kind === 'vxlan' && l.group === '') {
        if (l.port !== DEFAULT_VXLAN_PORT) opts.push(`port=${l.port}`);
        if (l.vni !== DEFAULT_VNI) opts.push(`vni=${l.vni}`);
        if (!l.peers?.some((p) => isIP(p.host)) && l.family === 6 && !(l.local && isIP(l.local) === 6)) opts.push('v6');
        if (l.rcvbufBytes !== undefined) opts.push(`rcvbuf=${l.rcvbufBytes}`);
        if (l.hashSize !== DEFAULT_VX_HASH_SIZE_ENTRIES) opts.push(`hashsize=${l.hashSize}`);
        if (l.expireSeconds !== DEFAULT_VX_EXPIRE_SECONDS) opts.push(`expiretime=${l.expireSeconds}`);
        if (l.local !== undefined) opts.push(`local=${l.local}`);
        if (l.peersFile !== undefined) opts.push(`peers=${quote(l.peersFile, OPT)}`);
        return `vxlan://${(l.peers ?? []).map(formatVxPeer).join(',')}${opts.map((x) => `/${x}`).join('')}`;
      }
      if (l.port !== (l.kind === 'vxlan' ? DEFAULT_VXLAN_PORT : DEFAULT_VXVDE_PORT)) opts.push(`port=${l.port}`);
      if (l.kind === 'vxvde' && l.vniGroup !== undefined) opts.push(l.vniGroup === '' ? 'vni' : `vni=${quote(l.vniGroup, OPT)}`);
      else if (l.vni !== DEFAULT_VNI || (l.kind === 'vxvde' && l.grp !== undefined)) opts.push(`vni=${l.vni}`);
      if (l.kind === 'vxvde' && l.grp !== undefined) opts.push(l.grp === '' ? 'grp' : `grp=${quote(l.grp, OPT)}`);
      if (l.ttl !== DEFAULT_VX_TTL_HOPS) opts.push(`ttl=${l.ttl}`);
      if (l.rcvbufBytes !== undefined) opts.push(`rcvbuf=${l.rcvbufBytes}`);
      if (l.hashSize !== DEFAULT_VX_HASH_SIZE_ENTRIES) opts.push(`hashsize=${l.hashSize}`);
      if (l.expireSeconds !== DEFAULT_VX_EXPIRE_SECONDS) opts.push(`expiretime=${l.expireSeconds}`);
      if (l.ifname !== undefined) opts.push(`if=${quote(l.ifname, OPT)}`);
      if (l.kind === 'vxvde' && l.bind !== undefined) opts.push(`bind=${l.bind}`);
      return `${l.kind}://${l.group}${opts.map((o) => `/${o}`).join('')}`;
    }
    case 'ptp':
      return `ptp://${quote(l.path, '')}`;
    case 'cmd':
      return `cmd://${l.argv.map(shellQuote).join(' ')}`;
    case 'slirp':
    case 'passt':
      return `${l.kind}://${Object.entries(l.options).map(([k, v]) => `/${k}${v === '' ? '' : `=${quote(v, OPT)}`}`).join('')}`;
    case 'stream': {
      const opts: string[] = [];
      if (l.role === 'server') opts.push('server');
      if (l.framing !== QEMU_FRAMING_BYTES) opts.push(`framing=${l.framing}`);
      const addr = l.transport === 'unix' ? quote(l.path ?? '', '[') : `${l.host !== undefined ? fmtHost(l.host) : ''}:${l.port ?? ''}`;
      return `stream://${l.transport}:${addr}${bracket(opts)}`;
    }
    case 'switch':
    case 'hub':
    case 'multi': {
      const opts: string[] = [];
      if (l.mode !== undefined) opts.push(`mode=${octal(l.mode)}`);
      if (l.dirmode !== undefined) opts.push(`dirmode=${octal(l.dirmode)}`);
      if (l.grp !== undefined) opts.push(`grp=${quote(l.grp, OPT)}`);
      if (l.hashSize !== undefined) opts.push(`hashsize=${l.hashSize}`);
      if (l.expireSeconds !== undefined) opts.push(`expiretime=${l.expireSeconds}`);
      if (l.hashSeed !== undefined) opts.push(`hashseed=${l.hashSeed}`);
      return `${l.kind}://${quote(l.path, '[')}${bracket(opts)}`;
    }
    case 'seqpacket':
      return `seqpacket://${l.fd}`;
    case 'vlan': {
      const opts: string[] = [];
      if (l.untag !== undefined) opts.push(`untag=${l.untag}`);
      if (l.tags !== undefined) opts.push(`tag=${l.tags.map((t) => (t.vm === t.net ? `${t.vm}` : `${t.vm}-${t.net}`)).join(':')}`);
      if (l.trunk) opts.push('trunk');
      if (l.qinq) opts.push('qinq');
      return `vlan://${l.untagged}${bracket(opts)}{${formatLocator(l.inner)}}`;
    }
    case 'crypt': {
      const opts: string[] = [];
      if (l.passphrase) opts.push('pass');
      if (l.kid !== undefined) opts.push(`kid=${l.kid}`);
      if (l.cipher !== undefined) opts.push(`cipher=${l.cipher}`);
      if (l.rekeySeconds !== undefined) opts.push(`rekey=${l.rekeySeconds}`);
      return `crypt://${quote(l.keyFile, '[{')}${bracket(opts)}{${formatLocator(l.inner)}}`;
    }
    case 'dgram': {
      if (l.transport === 'unix') return `dgram://unix:${quote(l.localPath ?? '', '>')}->${quote(l.remotePath ?? '', '>')}`;
      const local = l.localPort !== undefined ? `${l.localHost !== undefined ? `${fmtHost(l.localHost)}:` : ''}${l.localPort}` : '';
      const remote = l.remotePort !== undefined ? `${fmtHost(l.remoteHost ?? '')}:${l.remotePort}` : '';
      return `dgram://udp:${local}->${remote}`;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// File indirection (§2.3).

function readRegularFileHead(p: string): string | null {
  try {
    if (!fs.lstatSync(p).isFile()) return null; // lstat, as vdeplug4: a symlink is never read
    const fd = fs.openSync(p, 'r');
    try {
      const buf = Buffer.alloc(MAX_LOCATOR_BYTES + 2);
      const n = fs.readSync(fd, buf, 0, buf.length, 0);
      return buf.subarray(0, n).toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null;
  }
}

// A last character that is not a newline is kept (vdeplug4 drops it unconditionally, §11 item 20);
// a CRLF ending is stripped too. Only regular files count (lstat: a symlink is a path, as in vdeplug4).
/** Returns the first line of the regular file a scheme-less locator names, else the locator unchanged (§2.3). */
export function resolveIndirection(s: string, readFile: (p: string) => string | null = readRegularFileHead): string {
  if (s === '' || s.includes('://')) return s;
  const content = readFile(s);
  if (content === null) return s;
  const nl = content.indexOf('\n');
  const line = nl < 0 ? content : content.slice(0, nl);
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
