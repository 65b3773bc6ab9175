// EVPN through FRR, the way OVN meets it: FRR learns from the kernel. Two hosts (network
// namespaces h1, h2) on a routed underlay (veth pairs to a router namespace, /32 VTEP addresses
// on their loopbacks, static routes) each run FRR's zebra and bgpd (Debian package frr) with
// their own configuration and run directories, iBGP between the VTEP addresses with
// `address-family l2vpn evpn` / `advertise-all-vni`. On each host a kernel bridge holds a VXLAN
// device (VNI 100, nolearning: FRR installs the remote entries) and the tap of a vde-ts switch;
// behind each switch a "VM" (a namespace with a tap plugged into the switch by our vde_plug), and
// on h1 also a raw client of the switch with a MAC of its own.
// Checked: BGP comes up, ping crosses between the VMs, the MACs behind h1's vde-ts switch appear
// on h2 as remote EVPN MACs of VTEP 10.255.0.1 (`vtysh -c 'show evpn mac vni all json'`) and as
// type-2 routes, and FRR's flood entry for the remote VTEP is in each VXLAN device's FDB. The
// daemons and every other process are stopped by PID; namespaces and files are removed.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { Cleanup, createNetns, netnsExec, ping, pollUntil, run, spawnInNetns, tapAttached, uniqueIfname } from '../helpers/netns.js';
import { ROOT, tmpdir } from '../helpers/switchproc.js';
import { frame, VdeClient } from '../helpers/vdeclient.js';

/** Longest wait for a process to open its tap (slow under the sanitizer run on a loaded machine). */
const ATTACH_MS = 30_000;
const SWITCH_BIN = path.join(ROOT, 'bin', 'vde_switch');
const PLUG_BIN = path.join(ROOT, 'bin', 'vde_plug');
const ZEBRA = '/usr/lib/frr/zebra';
const BGPD = '/usr/lib/frr/bgpd';
const AS = 65000;
const VNI = 100;
const VTEP = ['10.255.0.1', '10.255.0.2'];
const VM_MAC = ['02:00:00:00:01:01', '02:00:00:00:02:01'];
const VM_ADDR = ['192.168.100.1', '192.168.100.2'];
const CLIENT_MAC = '02:00:00:00:01:99';
/** BGP sessions and EVPN routes converge within this time (connect retry lowered to 2 s). */
const CONVERGE_MS = 60_000;

interface Host {
  /** The host's namespace (FRR, bridge, switch). */
  host: string;
  /** The namespace of the VM behind the switch. */
  ns: string;
  dir: string;
  sw: string;
}

/** Runs a vtysh command against a host's daemons and parses the JSON it prints. */
async function vtyJson<T>(h: Host, command: string): Promise<T> {
  const r = await run(['vtysh', '--vty_socket', h.dir, '-c', command], { check: false, timeoutMs: 20_000 });
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`vtysh ${command}: not JSON: ${r.stdout.slice(0, 300)} ${r.stderr.slice(0, 300)}`);
  }
}

interface EvpnMacs {
  [vni: string]: { macs: Record<string, { type: string; remoteVtep?: string; intf?: string }> };
}

describe('EVPN with FRR: MACs behind a vde-ts switch become type-2 routes on the other host', () => {
  const c = new Cleanup();
  const hosts: Host[] = [];
  let client: VdeClient | null = null;

  beforeAll(async () => {
    await ensureTools({ [ZEBRA]: 'frr', [BGPD]: 'frr', vtysh: 'frr', ip: 'iproute2', bridge: 'iproute2', ping: 'iputils-ping' });
    const base = c.path(tmpdir('vdets-evpn-'));
    fs.chmodSync(base, 0o755); // the daemons run as user frr and keep their sockets below
    const r = await createNetns('evr', c);
    await run(['ip', 'netns', 'exec', r, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    for (let i = 0; i < 2; i++) {
      const ns = await createNetns(`evh${i + 1}`, c);
      const ir = uniqueIfname('evr');
      const ih = uniqueIfname('evh');
      await run(['ip', 'link', 'add', ir, 'netns', r, 'type', 'veth', 'peer', 'name', ih, 'netns', ns]);
      c.link(ir, r);
      await run(['ip', '-n', r, 'addr', 'add', `10.0.${i + 1}.1/30`, 'dev', ir]);
      await run(['ip', '-n', r, 'link', 'set', ir, 'up']);
      await run(['ip', '-n', ns, 'addr', 'add', `10.0.${i + 1}.2/30`, 'dev', ih]);
      await run(['ip', '-n', ns, 'link', 'set', ih, 'up']);
      await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      await run(['ip', '-n', ns, 'addr', 'add', `${VTEP[i]}/32`, 'dev', 'lo']);
      await run(['ip', '-n', r, 'route', 'add', `${VTEP[i]}/32`, 'via', `10.0.${i + 1}.2`]);
      // a host route to the other VTEP (FRR does not resolve BGP next hops over a default route)
      await run(['ip', '-n', ns, 'route', 'add', `${VTEP[1 - i]}/32`, 'via', `10.0.${i + 1}.1`]);
      // the kernel side FRR manages: a bridge with a VXLAN device, no data-plane learning on it
      await run(['ip', '-n', ns, 'link', 'add', 'br100', 'type', 'bridge']);
      await run(['ip', '-n', ns, 'link', 'add', 'vxlan100', 'type', 'vxlan', 'id', String(VNI), 'local', VTEP[i], 'dstport', '4789', 'nolearning']);
      await run(['ip', '-n', ns, 'link', 'set', 'vxlan100', 'master', 'br100']);
      await run(['bridge', '-n', ns, 'link', 'set', 'dev', 'vxlan100', 'learning', 'off']);
      await run(['ip', '-n', ns, 'link', 'set', 'br100', 'up']);
      await run(['ip', '-n', ns, 'link', 'set', 'vxlan100', 'up']);
      // FRR: zebra + bgpd as user frr, configuration and sockets in a directory of their own
      const dir = path.join(base, `h${i + 1}`);
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, 'zebra.conf'), `hostname h${i + 1}\n`);
      fs.writeFileSync(
        path.join(dir, 'bgpd.conf'),
        [
          `hostname h${i + 1}`,
          `router bgp ${AS}`,
          ` bgp router-id ${VTEP[i]}`,
          ' no bgp default ipv4-unicast',
          ` neighbor ${VTEP[1 - i]} remote-as ${AS}`,
          ` neighbor ${VTEP[1 - i]} update-source ${VTEP[i]}`,
          ` neighbor ${VTEP[1 - i]} timers connect 2`,
          ' address-family l2vpn evpn',
          `  neighbor ${VTEP[1 - i]} activate`,
          '  advertise-all-vni',
          ' exit-address-family',
          '',
        ].join('\n'),
      );
      await run(['chown', '-R', 'frr:frr', dir]);
      const common = ['-z', path.join(dir, 'zserv.api'), '--vty_socket', dir, '-u', 'frr', '-g', 'frr', '-P', '0'];
      spawnInNetns(ns, [ZEBRA, '-f', path.join(dir, 'zebra.conf'), '-i', path.join(dir, 'zebra.pid'), ...common, '--log', `file:${path.join(dir, 'zebra.log')}`], { cleanup: c });
      await pollUntil(() => fs.existsSync(path.join(dir, 'zserv.api')), 15_000, `zebra of h${i + 1}`);
      spawnInNetns(ns, [BGPD, '-f', path.join(dir, 'bgpd.conf'), '-i', path.join(dir, 'bgpd.pid'), ...common, '--log', `file:${path.join(dir, 'bgpd.log')}`], { cleanup: c });
      // our switch, its tap in the bridge, and a VM behind the switch
      const sw = path.join(base, `sw${i + 1}`);
      const swTap = uniqueIfname('evs');
      spawnInNetns(ns, [process.execPath, SWITCH_BIN, '-s', sw, '--nostdin', '-t', swTap], { cleanup: c });
      await pollUntil(() => fs.existsSync(path.join(sw, 'ctl')), 15_000, `switch of h${i + 1}`);
      await pollUntil(async () => (await netnsExec(ns, ['ip', 'link', 'show', swTap], { check: false })).code === 0, 15_000, 'switch tap');
      await run(['ip', '-n', ns, 'link', 'set', swTap, 'master', 'br100']);
      await run(['ip', '-n', ns, 'link', 'set', swTap, 'up']);
      const vm = await createNetns(`evvm${i + 1}`, c);
      const vmTap = uniqueIfname('evv');
      await run(['ip', '-n', vm, 'tuntap', 'add', 'dev', vmTap, 'mode', 'tap']);
      await run(['ip', '-n', vm, 'link', 'set', vmTap, 'address', VM_MAC[i]]);
      await run(['ip', '-n', vm, 'addr', 'add', `${VM_ADDR[i]}/24`, 'dev', vmTap]);
      await run(['ip', '-n', vm, 'link', 'set', vmTap, 'up']);
      spawnInNetns(vm, [process.execPath, PLUG_BIN, sw, `tap://${vmTap}`], { cleanup: c });
      await pollUntil(() => tapAttached(vmTap, vm), ATTACH_MS, 'VM tap attached');
      hosts.push({ host: ns, ns: vm, dir, sw });
    }
    await pollUntil(async () => {
      for (const h of hosts) {
        const s = await vtyJson<{ peers?: Record<string, { state: string }> }>(h, 'show bgp l2vpn evpn summary json');
        if (!Object.values(s.peers ?? {}).every((p) => p.state === 'Established') || !Object.keys(s.peers ?? {}).length) return false;
      }
      return true;
    }, CONVERGE_MS, 'BGP EVPN sessions established');
  }, 180_000);

  afterAll(async () => {
    client?.close();
    await c.run();
  });

  it('frames flow between the VMs behind the two vde-ts switches, across the routed underlay', async () => {
    await pollUntil(async () => (await ping(hosts[0].ns, VM_ADDR[1], 1, { deadlineS: 2 })).received === 1, CONVERGE_MS, 'first ping across');
    const there = await ping(hosts[0].ns, VM_ADDR[1], 5);
    expect(there.received, there.output).toBe(5);
    const back = await ping(hosts[1].ns, VM_ADDR[0], 5, { size: 1400 });
    expect(back.received, back.output).toBe(5);
  });

  it('the MACs behind a vde-ts switch are remote EVPN MACs (type-2 routes) on the other host', async () => {
    // one more source behind h1's switch: a raw client on another switch port
    client = await VdeClient.connect(hosts[0].sw);
    for (let i = 0; i < 3; i++) client.send(frame('ff:ff:ff:ff:ff:ff', CLIENT_MAC, 46));
    await pollUntil(async () => {
      const m = (await vtyJson<EvpnMacs>(hosts[1], 'show evpn mac vni all json'))[String(VNI)]?.macs ?? {};
      return m[VM_MAC[0]]?.type === 'remote' && m[CLIENT_MAC]?.type === 'remote';
    }, CONVERGE_MS, 'h1 MACs remote on h2');
    const onH2 = (await vtyJson<EvpnMacs>(hosts[1], 'show evpn mac vni all json'))[String(VNI)].macs;
    expect(onH2[VM_MAC[0]]).toMatchObject({ type: 'remote', remoteVtep: VTEP[0] });
    expect(onH2[CLIENT_MAC]).toMatchObject({ type: 'remote', remoteVtep: VTEP[0] });
    expect(onH2[VM_MAC[1]]).toMatchObject({ type: 'local' });
    const onH1 = (await vtyJson<EvpnMacs>(hosts[0], 'show evpn mac vni all json'))[String(VNI)].macs;
    expect(onH1[VM_MAC[1]]).toMatchObject({ type: 'remote', remoteVtep: VTEP[1] });
    // the type-2 routes themselves, and the flood entries FRR installed from the type-3 routes
    const routes = await run(['vtysh', '--vty_socket', hosts[1].dir, '-c', 'show bgp l2vpn evpn route type macip'], { check: false });
    expect(routes.stdout).toContain(`[2]:[0]:[48]:[${VM_MAC[0]}]`);
    expect(routes.stdout).toContain(`[2]:[0]:[48]:[${CLIENT_MAC}]`);
    const fdb = await netnsExec(hosts[1].host, ['bridge', 'fdb', 'show', 'dev', 'vxlan100']);
    expect(fdb.stdout).toMatch(new RegExp(`00:00:00:00:00:00 dst ${VTEP[0].replace(/\./g, '\\.')}`));
    expect(fdb.stdout).toMatch(new RegExp(`${VM_MAC[0]} dst ${VTEP[0].replace(/\./g, '\\.')}`));
  });
});
