/**
 * vlan://[UNTAGGED][untag=V/tag=LIST/trunk]{INNER} (vdeplug_vlan, man libvdeplug_vlan): 802.1Q
 * tagging done by the plug on the way to another locator. The program's side sees the VLAN
 * UNTAGGED without tags, and the VLANs of `tag=` tagged; INNER (the network) carries them all
 * tagged, and its untagged traffic reaches the program tagged with `untag=`. `trunk` lets every
 * other VLAN pass tagged too.
 *
 * Built on the engine's own VLAN handling: a small two-port learning engine with the program's
 * side on port 1 (one end of a SOCK_SEQPACKET socket pair; the other end is the endpoint
 * returned to the caller) and INNER on port 2. Renumbering a VLAN on the way (`tag=11-12`) and
 * 802.1ad double tags (`qinq`) are refused: the engine only inserts and strips 802.1Q tags.
 */
import { createEngine, EpKind, MAX_VDE_FRAME_BYTES, native, type EngineEvent } from '../../native/index.js';
import { Attachment, releaseEndpoint } from '../attach.js';
import { simple, type OpenedEndpoint, type OpenOptions } from '../endpoint.js';
import { formatLocator, MAX_VLAN_ID, type Locator, type VlanLocator } from '../vnl.js';

/** "No untagged VLAN" for an engine port. */
const VLAN_NONE = 4095;
const VM_PORT = 1;
const NET_PORT = 2;
const SOCK_SEQPACKET = 5;
const FOREIGN_DROP = 1;

/** Opens the nested locator and the tagging engine in front of it. */
export async function openVlan(loc: VlanLocator, o: OpenOptions, openAny: (l: Locator, o: OpenOptions) => Promise<OpenedEndpoint>): Promise<OpenedEndpoint> {
  const name = formatLocator(loc);
  if (loc.qinq) throw new Error(`${name}: qinq (802.1ad double tags) is not supported; only 802.1Q tags`);
  const remap = loc.tags?.find((t) => t.vm !== t.net);
  if (remap) throw new Error(`${name}: renumbering VLAN ${remap.vm} to ${remap.net} is not supported; give the same VLAN on both sides`);
  const untagged = loc.untagged || VLAN_NONE;
  const untag = loc.untag || VLAN_NONE;
  if (untagged !== VLAN_NONE && untagged === untag) throw new Error(`${name}: VLAN ${untagged} cannot be both the untagged VLAN and untag=`);
  const inner = await openAny(loc.inner, o);
  let lostCb: ((why: string) => void) | null = null;
  let at: Attachment | null = null;
  const engine = createEngine(3, (evs: EngineEvent[]) => {
    for (const ev of evs)
      if (ev.type === 'epClosed' && at && ev.ep === at.engineId) {
        at.close(true);
        lostCb?.(`${inner.name}: ${ev.detail}`);
      }
  });
  engine.setForeignTags(FOREIGN_DROP);
  engine.setUntagged(VM_PORT, untagged);
  engine.setUntagged(NET_PORT, untag);
  const vmTagged = new Set<number>();
  const netTagged = new Set<number>();
  if (untag !== VLAN_NONE) vmTagged.add(untag);
  if (untagged !== VLAN_NONE) netTagged.add(untagged);
  for (const t of loc.tags ?? []) {
    vmTagged.add(t.vm);
    netTagged.add(t.net);
  }
  if (loc.trunk)
    for (let v = 1; v <= MAX_VLAN_ID; v++) {
      if (v !== untagged) vmTagged.add(v);
      if (v !== untag) netTagged.add(v);
    }
  for (const v of vmTagged) engine.setTagged(VM_PORT, v, true);
  for (const v of netTagged) engine.setTagged(NET_PORT, v, true);
  const [vmFd, outerFd] = native().socketPair(SOCK_SEQPACKET);
  try {
    if (!engine.addEndpoint(VM_PORT, vmFd, EpKind.Dgram, MAX_VDE_FRAME_BYTES, true)) {
      native().closeFd(vmFd);
      throw new Error(`${name}: the engine refused the endpoint`);
    }
    at = Attachment.attach(engine, NET_PORT, inner, (why) => lostCb?.(why));
  } catch (e) {
    if (!at) releaseEndpoint(inner);
    native().closeFd(outerFd);
    engine.close();
    throw e;
  }
  return simple(name, outerFd, EpKind.Dgram, MAX_VDE_FRAME_BYTES, {
    onLost: (cb) => (lostCb = cb),
    close: () => {
      at?.close();
      engine.close();
    },
  });
}
