/**
 * The user-mode NAT as an engine endpoint. The native addon runs libslirp on its own thread and
 * hands back one end of a SOCK_SEQPACKET socketpair; that end goes to the engine as an ordinary
 * datagram endpoint (EpKind.Dgram), so frames never pass through JavaScript. The handle keeps
 * what JavaScript may do while it runs: add and remove host port forwards (run-time forwards
 * exist only through this API; there is no console), read counters, and stop the thread.
 */
import fs from 'node:fs';
import { EpKind, MAX_STREAM_FRAME_BYTES, native, toNodeError } from '../../native/index.js';
import type { OpenedEndpoint } from '../endpoint.js';
import type { SlirpLocator } from '../vnl.js';
import { parseSlirpOptions, type HostForward, type SlirpConfig } from './slirp-options.js';

/** Counters of one slirp instance (frames toward slirp = In, from slirp = Out). */
export interface SlirpStats {
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  dropRunt: number;
  dropOversize: number;
  dropQueueFull: number;
  dropSendError: number;
  guestErrors: number;
}

/** The running instance, as the addon returns it. */
export interface SlirpHandle {
  /** Stops the slirp thread and frees its sockets (idempotent). */
  close(): void;
  /** Adds a host → guest forward; throws (message includes e.g. "address already in use"). */
  addForward(f: HostForward): void;
  /** Removes a forward by protocol, host address and host port; throws if there is none. */
  removeForward(f: Pick<HostForward, 'udp' | 'hostAddr' | 'hostPort'> & { ipv6?: boolean }): void;
  stats(): SlirpStats;
  /** libslirp's connection table as text. */
  connectionInfo(): string;
}

interface SlirpAddon {
  createSlirp(opts: Record<string, unknown>): { fd: number; handle: SlirpHandle };
  slirpVersion(): string;
}

/** A SlirpLocator that carries a ready configuration (used by slirpvde, whose defaults differ). */
export interface ConfiguredSlirpLocator extends SlirpLocator {
  config: SlirpConfig;
}

function addon(): SlirpAddon {
  return native() as unknown as SlirpAddon;
}

/** libslirp's version string. */
export function slirpVersion(): string {
  return addon().slirpVersion();
}

/** Starts a slirp instance (without its forwards); returns the engine's fd and the handle. */
export function createSlirp(cfg: SlirpConfig): { fd: number; handle: SlirpHandle } {
  if (cfg.tftpPath !== undefined) {
    let st: fs.Stats;
    try {
      st = fs.statSync(cfg.tftpPath);
    } catch (e) {
      throw new Error(`tftp_path: ${cfg.tftpPath}: ${(e as Error).message}`);
    }
    if (!st.isDirectory()) throw new Error(`tftp_path: ${cfg.tftpPath} is not a directory`);
  }
  try {
    return addon().createSlirp({
      v4: cfg.v4,
      v6: cfg.v6,
      restricted: cfg.restricted,
      network: cfg.network,
      netmask: cfg.netmask,
      host: cfg.host,
      dhcpStart: cfg.dhcpStart,
      nameserver: cfg.nameserver,
      prefix6: cfg.prefix6,
      prefixLen6: cfg.prefixLen6,
      host6: cfg.host6,
      nameserver6: cfg.nameserver6,
      hostname: cfg.hostname,
      tftpServerName: cfg.tftpServerName,
      tftpPath: cfg.tftpPath,
      bootfile: cfg.bootfile,
      domainName: cfg.domainName,
      dnsSearch: cfg.dnsSearch,
      mtu: cfg.mtu,
      mru: cfg.mru,
      disableHostLoopback: cfg.disableHostLoopback,
      disableDhcp: !cfg.dhcp,
      verbose: cfg.verbose,
    });
  } catch (e) {
    throw toNodeError(e, 'slirp');
  }
}

/** Starts slirp and applies every configured forward; on a failed forward everything is undone and the error names it. */
export function startSlirp(cfg: SlirpConfig): { fd: number; handle: SlirpHandle } {
  const s = createSlirp(cfg);
  try {
    for (const f of cfg.forwards) s.handle.addForward(f);
  } catch (e) {
    s.handle.close();
    native().closeFd(s.fd);
    throw new Error(`slirp: ${(e as Error).message}`);
  }
  return s;
}

/** Opens slirp:// for vde_plug: the engine gets the socketpair end; close() stops the slirp thread. */
export async function openSlirp(loc: SlirpLocator): Promise<OpenedEndpoint & { slirp: SlirpHandle }> {
  const cfg = (loc as Partial<ConfiguredSlirpLocator>).config ?? parseSlirpOptions(loc.options);
  const { fd, handle } = startSlirp(cfg);
  return {
    fd,
    kind: EpKind.Dgram,
    maxFrameBytes: MAX_STREAM_FRAME_BYTES,
    name: `slirp://${cfg.host}/${cfg.prefixLen}`,
    wholeSegments: true,
    slirp: handle,
    onLost: () => {},
    close: () => handle.close(),
  };
}
