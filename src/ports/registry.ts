/**
 * The registry of endpoint kinds: for every locator scheme, how to parse it (the VNL parser in
 * vnl.ts), print it back, open it as an engine endpoint, and whether a lost endpoint of that kind
 * can be opened again (vde_plug --reconnect). Tools open endpoints only through openEndpoint.
 */
import type { OpenedEndpoint, OpenOptions } from './endpoint.js';
import { openDgram, openUdp } from './kinds/dgram.js';
import { openCrypt } from './kinds/crypt.js';
import { openCmd, openNull, openTap } from './kinds/local.js';
import { openNetnode } from './kinds/netnode.js';
import { openPasst } from './kinds/passt.js';
import { openPtp } from './kinds/ptp.js';
import { openSeqpacket } from './kinds/seqpacket.js';
import { openSlirp } from './kinds/slirp.js';
import { openStdio } from './kinds/stdio.js';
import { openStream } from './kinds/stream.js';
import { openVde } from './kinds/vde.js';
import { openVlan } from './kinds/vlan.js';
import { openVxlan, openVxvde } from './kinds/vxlan.js';
import { formatLocator, KNOWN_SCHEMES, parseLocator, type Locator, type LocatorKind } from './vnl.js';

type OpenFn<L extends Locator> = (loc: L, o: OpenOptions) => Promise<OpenedEndpoint> | OpenedEndpoint;

/** One endpoint kind. */
export interface EndpointKind {
  scheme: LocatorKind;
  /** Parses a locator of any scheme (the VNL parser dispatches on the scheme). */
  parse: (s: string) => Locator;
  /** Prints a locator back (parse(format(l)) equals l). */
  format: (l: Locator) => string;
  open: OpenFn<Locator>;
  /** A lost endpoint of this kind can be opened again with the same locator. */
  reopenable: boolean;
}

function kind<K extends LocatorKind>(scheme: K, open: OpenFn<Extract<Locator, { kind: K }>>, reopenable: boolean): EndpointKind {
  return { scheme, parse: parseLocator, format: formatLocator, open: open as OpenFn<Locator>, reopenable };
}

/** Every kind, by scheme. */
export const KINDS: Record<LocatorKind, EndpointKind> = {
  vde: kind('vde', openVde, true),
  stdio: kind('stdio', (_l, o) => openStdio(o), false),
  null: kind('null', () => openNull(), false),
  tap: kind('tap', openTap, true),
  cmd: kind('cmd', openCmd, false),
  udp: kind('udp', openUdp, true),
  ptp: kind('ptp', openPtp, true),
  stream: kind('stream', openStream, true),
  dgram: kind('dgram', openDgram, true),
  vxlan: kind('vxlan', openVxlan, false),
  vxvde: kind('vxvde', openVxvde, false),
  slirp: kind('slirp', openSlirp, false),
  passt: kind('passt', openPasst, true),
  switch: kind('switch', openNetnode, false),
  hub: kind('hub', openNetnode, false),
  multi: kind('multi', openNetnode, false),
  seqpacket: kind('seqpacket', openSeqpacket, false),
  vlan: kind('vlan', (l, o) => openVlan(l, o, openEndpoint), true),
  crypt: kind('crypt', (l, o) => openCrypt(l, o, openEndpoint), true),
};

/** The kind of a locator. */
export function kindOf(loc: Locator): EndpointKind {
  return KINDS[loc.kind];
}

/** True when a lost endpoint of this locator can be opened again. */
export function reopenable(loc: Locator): boolean {
  return kindOf(loc).reopenable && ((loc.kind !== 'vlan' && loc.kind !== 'crypt') || reopenable(loc.inner));
}

/** Opens one endpoint; throws an Error whose message names the locator and the reason. */
export async function openEndpoint(loc: Locator, o: OpenOptions = {}): Promise<OpenedEndpoint> {
  const k = kindOf(loc);
  if (!k) throw new Error(`${(loc as { kind: string }).kind}:// endpoints are not supported by this build`);
  return await k.open(loc, o);
}

/** The schemes the registry knows (equal to the parser's). */
export const SCHEMES: readonly string[] = KNOWN_SCHEMES;
