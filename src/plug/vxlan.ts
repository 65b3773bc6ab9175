/**
 * VXLAN (RFC 7348) and vdeplug4 VXVDE endpoints for vde_plug. Placeholder until the native
 * encapsulation lands: opening one reports clearly that this build cannot do it yet.
 */
import type { OpenedEndpoint } from './endpoints.js';
import type { VxlanLocator, VxvdeLocator } from './vnl.js';

/** Opens a vxlan:// endpoint. */
export async function openVxlan(loc: VxlanLocator): Promise<OpenedEndpoint> {
  throw new Error(`vxlan://${loc.group}: VXLAN endpoints are not supported by this build yet`);
}

/** Opens a vxvde:// endpoint. */
export async function openVxvde(loc: VxvdeLocator): Promise<OpenedEndpoint> {
  throw new Error(`vxvde://${loc.group}: VXVDE endpoints are not supported by this build yet`);
}
