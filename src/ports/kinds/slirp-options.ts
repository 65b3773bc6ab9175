/**
 * Options of the user-mode NAT (libslirp): vdeplug_slirp's `slirp:///key=value/flag` names,
 * validated into one SlirpConfig with precise errors that name the option. Addresses follow
 * libslirp's defaults: host (virtual gateway) 10.0.2.2/24, so network 10.0.2.0/24, DNS proxy
 * network+3, DHCP pool from network+15; IPv6 fd00::2/64 with the DNS proxy at prefix::3. A host
 * part of 0 (e.g. `host=192.168.7.0/24`) puts the gateway at network+2, as slirpvde does.
 * Port forwards are `[hostIP:]hport:guestIP:gport` (an IPv6 host address in brackets), several
 * separated by commas; the host address defaults to 0.0.0.0 (all interfaces), as slirpvde's -L.
 */
import path from 'node:path';
import { isIPv4, isIPv6 } from 'node:net';

/** libslirp's interface MTU/MRU limits (IF_MTU_MIN / IF_MTU_MAX). */
export const MIN_MTU_BYTES = 68;
export const MAX_MTU_BYTES = 65521;
/** Longest accepted option value (locators are shorter anyway). */
export const MAX_OPTION_VALUE_CHARS = 4096;
/** At most this many forwards per option list. */
export const MAX_FORWARDS = 256;
/** At most this many DNS search domains (DHCP option 119 stays small). */
export const MAX_DNS_SEARCH_DOMAINS = 16;
/** BOOTP's sname and file fields (64 and 128 bytes, NUL-terminated). */
export const MAX_TFTP_SERVER_NAME_BYTES = 63;
export const MAX_BOOTFILE_BYTES = 127;
/** Longest DNS name (RFC 1035) and label. */
export const MAX_DNS_NAME_CHARS = 253;
export const MAX_DNS_LABEL_CHARS = 63;

/** One host → guest port forward. */
export interface HostForward {
  udp: boolean;
  hostAddr: string;
  hostPort: number;
  guestAddr: string;
  guestPort: number;
  /** Listen on an IPv6 host address. */
  ipv6?: boolean;
}

/** A complete, validated libslirp configuration. */
export interface SlirpConfig {
  v4: boolean;
  v6: boolean;
  restricted: boolean;
  /** Virtual gateway (the host as seen from the guests). */
  host: string;
  prefixLen: number;
  network: string;
  netmask: string;
  host6: string;
  prefix6: string;
  prefixLen6: number;
  hostname?: string;
  tftpServerName?: string;
  tftpPath?: string;
  bootfile?: string;
  /** Whether slirp answers DHCP (on for slirp://, off for slirpvde unless -D). */
  dhcp: boolean;
  dhcpStart: string;
  nameserver: string;
  nameserver6: string;
  dnsSearch: string[];
  domainName?: string;
  /** 0 = libslirp's default (1500). */
  mtu: number;
  mru: number;
  disableHostLoopback: boolean;
  forwards: HostForward[];
  verbose: boolean;
}

/** An invalid option; `option` is its name. */
export class SlirpOptionError extends Error {
  override readonly name = 'SlirpOptionError';
  constructor(readonly option: string, message: string) {
    super(`${option}: ${message}`);
  }
}

/** Option names understood in slirp:// (aliases addr → host, addr6 → host6 are folded by the VNL parser). */
export const SLIRP_OPTION_NAMES = [
  'restricted', 'v4', 'v6', 'host', 'addr', 'host6', 'addr6', 'hostname', 'tftp_server_name', 'tftp_path', 'bootfile',
  'dhcp', 'vnameserver', 'vnameserver6', 'vdnssearch', 'vdomainname', 'mtu', 'mru', 'disable_host_loopback',
  'tcpfwd', 'udpfwd', 'unixfwd', 'cmdfwd', 'verbose',
] as const;

const FLAG_NAMES = new Set(['restricted', 'v4', 'v6', 'disable_host_loopback', 'verbose']);

function shown(v: string): string {
  return JSON.stringify(v.length > 80 ? `${v.slice(0, 77)}...` : v);
}

function ip4ToInt(a: string): number {
  return a.split('.').reduce((n, o) => n * 256 + Number(o), 0) >>> 0;
}

function intToIp4(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

function ip6ToBig(a: string): bigint {
  let s = a;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = ip4ToInt(v4[1]);
    s = `${s.slice(0, -v4[1].length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function bigToIp6(n: bigint): string {
  const g: string[] = [];
  for (let i = 7; i >= 0; i--) g.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  // compress the longest run of zero groups
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== '0') { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === '0') j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  if (best < 0) return g.join(':');
  return `${g.slice(0, best).join(':')}::${g.slice(best + bestLen).join(':')}`;
}

function checkValue(option: string, v: string): void {
  if (v.length > MAX_OPTION_VALUE_CHARS) throw new SlirpOptionError(option, `value is ${v.length} characters long (max ${MAX_OPTION_VALUE_CHARS})`);
  if (/[\x00-\x1f\x7f]/.test(v)) throw new SlirpOptionError(option, `value ${shown(v)} contains control characters`);
}

/** Parses a flag's value: empty (bare flag) or a yes/no word. */
export function parseFlag(option: string, v: string): boolean {
  const s = v.toLowerCase();
  if (s === '' || s === '1' || s === 'yes' || s === 'on' || s === 'true') return true;
  if (s === '0' || s === 'no' || s === 'off' || s === 'false') return false;
  throw new SlirpOptionError(option, `is a flag (use "${option}" alone), got value ${shown(v)}`);
}

function parseInt10(option: string, v: string, min: number, max: number, what = 'value'): number {
  if (!/^\d{1,10}$/.test(v)) throw new SlirpOptionError(option, `${what} ${shown(v)} is not a decimal number`);
  const n = Number(v);
  if (n < min || n > max) throw new SlirpOptionError(option, `${what} ${n} is out of range ${min}..${max}`);
  return n;
}

function needValue(option: string, v: string): string {
  if (v === '') throw new SlirpOptionError(option, 'needs a value (key=value)');
  return v;
}

function ipv4(option: string, v: string): string {
  if (!isIPv4(v)) throw new SlirpOptionError(option, `${shown(v)} is not an IPv4 address`);
  return v;
}

function dnsName(option: string, v: string): string {
  const name = v.endsWith('.') ? v.slice(0, -1) : v;
  if (name.length === 0 || name.length > MAX_DNS_NAME_CHARS) throw new SlirpOptionError(option, `${shown(v)} is not a domain name (1..${MAX_DNS_NAME_CHARS} characters)`);
  for (const label of name.split('.')) {
    if (label.length === 0 || label.length > MAX_DNS_LABEL_CHARS || !/^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?$/.test(label)) {
      throw new SlirpOptionError(option, `${shown(v)} is not a valid domain name (label ${shown(label)})`);
    }
  }
  return name;
}

function printable(option: string, v: string, maxBytes: number): string {
  if (!/^[\x20-\x7e]+$/.test(v)) throw new SlirpOptionError(option, `${shown(v)} must be printable ASCII`);
  if (v.length > maxBytes) throw new SlirpOptionError(option, `${shown(v)} is ${v.length} bytes long (max ${maxBytes})`);
  return v;
}

interface Net4 { host: number; prefixLen: number; mask: number; network: number }

function parseHost4(option: string, v: string): Net4 {
  const m = /^([^/]*)(?:\/(.*))?$/.exec(v)!;
  ipv4(option, m[1]);
  const prefixLen = m[2] === undefined ? 24 : parseInt10(option, m[2], 1, 30, 'prefix length');
  const mask = prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
  let host = ip4ToInt(m[1]);
  const network = (host & mask) >>> 0;
  if ((host & ~mask) >>> 0 === 0) host = (network + 2) >>> 0; // slirpvde: host part 0 ⇒ gateway at network+2
  if ((host | mask) >>> 0 === 0xffffffff) throw new SlirpOptionError(option, `${m[1]} is the broadcast address of ${intToIp4(network)}/${prefixLen}`);
  return { host, prefixLen, mask, network };
}

function inNet(n: Net4, a: number): boolean {
  return ((a & n.mask) >>> 0) === n.network && a !== n.network && (a | n.mask) >>> 0 !== 0xffffffff;
}

/** Parses a forward list `[hostIP:]hport:guestIP:gport[,...]` for option tcpfwd or udpfwd. */
export function parseForwardList(option: string, value: string, udp: boolean): HostForward[] {
  checkValue(option, value);
  const items = needValue(option, value).split(',');
  if (items.length > MAX_FORWARDS) throw new SlirpOptionError(option, `${items.length} forwards (max ${MAX_FORWARDS})`);
  return items.map((item) => parseForward(option, item.trim(), udp));
}

/** Parses one forward `[hostIP:]hport:guestIP:gport` (IPv6 host address in brackets). */
export function parseForward(option: string, item: string, udp: boolean): HostForward {
  const form = '[hostIP:]hport:guestIP:gport (IPv6 addresses in brackets)';
  const m = /^(?:(\[[^\]]*\]|[^:[\]]*):)?(\d+):(\[[^\]]*\]|[^:[\]]+):(\d+)$/.exec(item);
  if (!m) {
    if (/\[[^\]]*$/.test(item)) throw new SlirpOptionError(option, `${shown(item)}: unclosed "[" (expected ${form})`);
    throw new SlirpOptionError(option, `${shown(item)} is not ${form}`);
  }
  const unbracket = (a: string): string => (a.startsWith('[') ? a.slice(1, -1) : a);
  const hostGiven = m[1] !== undefined && m[1] !== '' ? unbracket(m[1]) : undefined;
  const ga = unbracket(m[3]);
  if (m[1]?.startsWith('[') && !isIPv6(hostGiven ?? '')) throw new SlirpOptionError(option, `${shown(item)}: ${shown(hostGiven ?? '')} is not an IPv6 address`);
  if (hostGiven !== undefined && !isIPv4(hostGiven) && !isIPv6(hostGiven)) {
    throw new SlirpOptionError(option, `${shown(item)}: host address ${shown(hostGiven)} is not an IP address`);
  }
  const guest6 = m[3].startsWith('[');
  if (guest6 ? !isIPv6(ga) : !isIPv4(ga)) throw new SlirpOptionError(option, `${shown(item)}: guest address ${shown(ga)} is not an ${guest6 ? 'IPv6' : 'IPv4'} address`);
  const hostAddr = hostGiven ?? (guest6 ? '::' : '0.0.0.0');
  // libslirp forwards within one address family: it cannot present an IPv6 peer to an IPv4 guest
  if (isIPv6(hostAddr) !== guest6) {
    throw new SlirpOptionError(option, `${shown(item)}: host and guest addresses must be of the same family (IPv6 guest addresses go in brackets, e.g. [::1]:8080:[fd00::15]:80)`);
  }
  const f: HostForward = {
    udp,
    hostAddr,
    hostPort: parseInt10(option, m[2], 1, 65535, `${shown(item)}: host port`),
    guestAddr: ga,
    guestPort: parseInt10(option, m[4], 1, 65535, `${shown(item)}: guest port`),
  };
  if (guest6) f.ipv6 = true;
  return f;
}

/** Optional fields of a configuration before addresses are derived. */
export interface SlirpSettings {
  v4?: boolean;
  v6?: boolean;
  restricted?: boolean;
  host?: string;
  host6?: string;
  hostname?: string;
  tftpServerName?: string;
  tftpPath?: string;
  bootfile?: string;
  dhcp?: boolean;
  dhcpStart?: string;
  nameserver?: string;
  nameserver6?: string;
  dnsSearch?: string[];
  domainName?: string;
  mtu?: number;
  mru?: number;
  disableHostLoopback?: boolean;
  forwards?: HostForward[];
  verbose?: boolean;
}

/** Validates settings and derives every address (network, DNS, DHCP start, IPv6 prefix). */
export function buildSlirpConfig(s: SlirpSettings, names: Record<string, string> = {}): SlirpConfig {
  const n = (k: string): string => names[k] ?? k;
  const v4 = s.v4 ?? true;
  const v6 = s.v6 ?? true;
  if (!v4 && !v6) throw new SlirpOptionError(`${n('v4')}/${n('v6')}`, 'at least one of IPv4 and IPv6 must be enabled');
  const net = parseHost4(n('host'), s.host ?? '10.0.2.2/24');
  const netmask = intToIp4(net.mask);
  const cidr = `${intToIp4(net.network)}/${net.prefixLen}`;
  const nameserver = s.nameserver !== undefined ? ipv4(n('vnameserver'), s.nameserver) : intToIp4((net.network + 3) >>> 0);
  const dhcpStart = s.dhcpStart !== undefined ? ipv4(n('dhcp'), s.dhcpStart) : intToIp4((net.network + 15) >>> 0);
  const ns = ip4ToInt(nameserver);
  const ds = ip4ToInt(dhcpStart);
  if (!inNet(net, ns)) throw new SlirpOptionError(n('vnameserver'), `${nameserver} is not a host address in ${cidr}`);
  if (ns === net.host) throw new SlirpOptionError(n('vnameserver'), `${nameserver} is the gateway's own address`);
  if (!inNet(net, ds)) throw new SlirpOptionError(n('dhcp'), `${dhcpStart} is not a host address in ${cidr}`);
  if (ds === net.host || ds === ns) throw new SlirpOptionError(n('dhcp'), `${dhcpStart} collides with the gateway or DNS address`);

  const h6 = /^([^/]*)(?:\/(.*))?$/.exec(s.host6 ?? 'fd00::2/64')!;
  if (!isIPv6(h6[1])) throw new SlirpOptionError(n('host6'), `${shown(h6[1])} is not an IPv6 address`);
  const prefixLen6 = h6[2] === undefined ? 64 : parseInt10(n('host6'), h6[2], 1, 126, 'prefix length');
  const mask6 = ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - prefixLen6)) - 1n);
  const host6 = ip6ToBig(h6[1]);
  const prefix6 = host6 & mask6;
  const nameserver6 = s.nameserver6 !== undefined ? s.nameserver6 : bigToIp6(prefix6 | 3n);
  if (!isIPv6(nameserver6)) throw new SlirpOptionError(n('vnameserver6'), `${shown(nameserver6)} is not an IPv6 address`);
  if ((ip6ToBig(nameserver6) & mask6) !== prefix6) throw new SlirpOptionError(n('vnameserver6'), `${nameserver6} is outside ${bigToIp6(prefix6)}/${prefixLen6}`);

  const mtu = s.mtu ?? 0;
  const mru = s.mru ?? 0;
  for (const [k, v] of [['mtu', mtu], ['mru', mru]] as const) {
    if (v !== 0 && (!Number.isInteger(v) || v < MIN_MTU_BYTES || v > MAX_MTU_BYTES)) throw new SlirpOptionError(n(k), `${v} is out of range ${MIN_MTU_BYTES}..${MAX_MTU_BYTES}`);
  }
  const dnsSearch = (s.dnsSearch ?? []).map((d) => dnsName(n('vdnssearch'), d));
  if (dnsSearch.length > MAX_DNS_SEARCH_DOMAINS) throw new SlirpOptionError(n('vdnssearch'), `${dnsSearch.length} domains (max ${MAX_DNS_SEARCH_DOMAINS})`);
  const forwards = s.forwards ?? [];
  const seen = new Set<string>();
  for (const f of forwards) {
    const key = `${f.udp ? 'udp' : 'tcp'} ${f.hostAddr} ${f.hostPort}`;
    const opt = n(f.udp ? 'udpfwd' : 'tcpfwd');
    if (seen.has(key)) throw new SlirpOptionError(opt, `host port ${f.hostPort} on ${f.hostAddr} is forwarded twice`);
    seen.add(key);
    if (!f.ipv6 && !inNet(net, ip4ToInt(f.guestAddr))) throw new SlirpOptionError(opt, `guest address ${f.guestAddr} is not a host address in ${cidr}`);
  }
  const cfg: SlirpConfig = {
    v4, v6,
    restricted: s.restricted ?? false,
    host: intToIp4(net.host),
    prefixLen: net.prefixLen,
    network: intToIp4(net.network),
    netmask,
    host6: bigToIp6(host6),
    prefix6: bigToIp6(prefix6),
    prefixLen6,
    dhcp: s.dhcp ?? true,
    dhcpStart,
    nameserver,
    nameserver6: bigToIp6(ip6ToBig(nameserver6)),
    dnsSearch,
    mtu,
    mru,
    disableHostLoopback: s.disableHostLoopback ?? false,
    forwards,
    verbose: s.verbose ?? false,
  };
  if (s.hostname !== undefined) cfg.hostname = dnsName(n('hostname'), s.hostname);
  if (s.tftpServerName !== undefined) cfg.tftpServerName = printable(n('tftp_server_name'), s.tftpServerName, MAX_TFTP_SERVER_NAME_BYTES);
  if (s.bootfile !== undefined) cfg.bootfile = printable(n('bootfile'), s.bootfile, MAX_BOOTFILE_BYTES);
  if (s.tftpPath !== undefined) {
    if (s.tftpPath === '') throw new SlirpOptionError(n('tftp_path'), 'needs a directory');
    cfg.tftpPath = path.resolve(s.tftpPath);
  }
  if (s.domainName !== undefined) cfg.domainName = dnsName(n('vdomainname'), s.domainName);
  return cfg;
}

/** Parses slirp:// options (full key names → raw values, '' for bare flags) into a SlirpConfig. */
export function parseSlirpOptions(opts: Record<string, string>): SlirpConfig {
  const s: SlirpSettings = {};
  const known = new Set<string>(SLIRP_OPTION_NAMES);
  let v4: boolean | undefined;
  let v6: boolean | undefined;
  const forwards: HostForward[] = [];
  for (const [key, value] of Object.entries(opts)) {
    if (!known.has(key)) throw new SlirpOptionError(key, `unknown option (known: ${SLIRP_OPTION_NAMES.join(', ')})`);
    if (typeof value !== 'string') throw new SlirpOptionError(key, 'value must be a string');
    checkValue(key, value);
    if (FLAG_NAMES.has(key)) {
      const on = parseFlag(key, value);
      if (key === 'v4') v4 = on;
      else if (key === 'v6') v6 = on;
      else if (key === 'restricted') s.restricted = on;
      else if (key === 'disable_host_loopback') s.disableHostLoopback = on;
      else s.verbose = on;
      continue;
    }
    switch (key) {
      case 'host': case 'addr': s.host = needValue(key, value); break;
      case 'host6': case 'addr6': s.host6 = needValue(key, value); break;
      case 'hostname': s.hostname = needValue(key, value); break;
      case 'tftp_server_name': s.tftpServerName = needValue(key, value); break;
      case 'tftp_path': s.tftpPath = needValue(key, value); break;
      case 'bootfile': s.bootfile = needValue(key, value); break;
      case 'dhcp': if (value !== '') s.dhcpStart = value; break;
      case 'vnameserver': s.nameserver = needValue(key, value); break;
      case 'vnameserver6': s.nameserver6 = needValue(key, value); break;
      case 'vdnssearch': s.dnsSearch = needValue(key, value).split(','); break;
      case 'vdomainname': s.domainName = needValue(key, value); break;
      case 'mtu': s.mtu = parseInt10(key, needValue(key, value), MIN_MTU_BYTES, MAX_MTU_BYTES); break;
      case 'mru': s.mru = parseInt10(key, needValue(key, value), MIN_MTU_BYTES, MAX_MTU_BYTES); break;
      case 'tcpfwd': forwards.push(...parseForwardList(key, value, false)); break;
      case 'udpfwd': forwards.push(...parseForwardList(key, value, true)); break;
      case 'unixfwd': case 'cmdfwd':
        throw new SlirpOptionError(key, 'is not supported by this build (use tcpfwd/udpfwd)');
    }
  }
  // vdeplug_slirp: naming only v4 (or only v6) enables just that family; neither = both.
  if (v4 !== undefined || v6 !== undefined) {
    s.v4 = v4 ?? false;
    s.v6 = v6 ?? false;
  }
  if (forwards.length > MAX_FORWARDS) throw new SlirpOptionError('tcpfwd/udpfwd', `${forwards.length} forwards (max ${MAX_FORWARDS})`);
  s.forwards = forwards;
  s.dhcp = true;
  return buildSlirpConfig(s);
}
