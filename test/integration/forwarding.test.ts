// Forwarding behaviour of the native engine seen from real clients: learning, flooding, frame
// size limits, VLAN tagging rules, hub mode, aging, MAC moves, mirroring and storm control.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwitch, type RunningSwitch } from '../helpers/switchproc.js';
import { frame, tag, VdeClient } from '../helpers/vdeclient.js';

const BCAST = 'ff:ff:ff:ff:ff:ff';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface PortJson {
  port: number;
  counters: { inFrames: number; outFrames: number; drops: Record<string, number> };
}

describe('learning switch', () => {
  let sw: RunningSwitch;
  const clients: VdeClient[] = [];
  const client = async (opts: Parameters<typeof VdeClient.connect>[1] = {}) => {
    const c = await VdeClient.connect(sw.dir, opts);
    clients.push(c);
    return c;
  };
  beforeAll(async () => {
    sw = await startSwitch();
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await sw.stop();
  });

  it('floods unknown destinations, then sends learned unicast to one port only', async () => {
    const [a, b, c] = [await client(), await client(), await client()];
    a.send(frame('02:00:00:00:01:02', '02:00:00:00:01:01'));
    expect(await b.recv()).not.toBeNull();
    expect(await c.recv()).not.toBeNull();
    b.send(frame('02:00:00:00:01:01', '02:00:00:00:01:02'));
    expect((await a.recv())?.subarray(6, 12).toString('hex')).toBe('020000000102');
    expect(await c.recv(300)).toBeNull();
    a.send(frame('02:00:00:00:01:02', '02:00:00:00:01:01'));
    expect(await b.recv()).not.toBeNull();
    expect(await c.recv(300)).toBeNull();
    const table = await sw.json<Array<{ mac: string; vlan: number; port: number }>>('json/hash/print');
    expect(table).toContainEqual(expect.objectContaining({ mac: '02:00:00:00:01:01', vlan: 0, port: a.port }));
    const text = await sw.cmd('hash/print');
    expect(text.data.some((l) => /^Hash: \d{4} Addr: 02:00:00:00:01:01 VLAN 0000 to port: \d{3}  age \d+ secs$/.test(l))).toBe(true);
    const found = await sw.cmd('hash/find 02:00:00:00:01:01');
    expect(found.data[0]).toContain(`to port: ${String(a.port + 1).padStart(3, '0')}`);
    for (const x of [a, b, c]) x.close();
  });

  it('carries frames of 14 to 9234 bytes intact and drops and counts runts and oversize frames', async () => {
    const [a, b] = [await client(), await client()];
    for (const len of [14, 60, 1518, 1522, 9000, 9234]) {
      const f = frame(BCAST, '02:00:00:00:02:01', len - 14);
      a.send(f);
      const got = await b.recv();
      expect(got?.length).toBe(len);
      expect(got?.equals(f)).toBe(true);
    }
    a.send(Buffer.alloc(13, 1));
    a.send(frame(BCAST, '02:00:00:00:02:01', 9235 - 14));
    a.send(frame(BCAST, '02:00:00:00:02:01', 20000));
    expect(await b.recv(300)).toBeNull();
    const p = await sw.json<PortJson>(`json/port/print ${a.port}`);
    expect(p.counters.drops.runt).toBe(1);
    expect(p.counters.drops.oversize).toBe(2);
    a.close();
    b.close();
  });

  it('applies 802.1Q rules: access ports untagged, trunks tagged, tags inserted and stripped', async () => {
    const access = await client();
    const trunk = await client();
    const other = await client(); // VLAN 0, must see nothing of VLAN 5
    expect((await sw.cmd('vlan/create 5')).status).toBe(0);
    expect((await sw.cmd(`port/setvlan ${access.port} 5`)).status).toBe(0);
    expect((await sw.cmd(`vlan/addport 5 ${trunk.port}`)).status).toBe(0);
    const f = frame(BCAST, '02:00:00:00:05:01', 46, 0x0800);
    access.send(f);
    const onTrunk = await trunk.recv();
    expect(onTrunk?.length).toBe(f.length + 4);
    expect(onTrunk?.subarray(12, 16).toString('hex')).toBe('81000005');
    expect(await other.recv(300)).toBeNull();
    // tagged on the trunk, PCP kept on trunk->trunk, stripped to the access port
    trunk.send(tag(frame(BCAST, '02:00:00:00:05:02', 46, 0x0800), 5, 7));
    const onAccess = await access.recv();
    expect(onAccess?.length).toBe(60);
    expect(onAccess?.subarray(12, 14).toString('hex')).toBe('0800');
    // a VLAN the trunk is not in is dropped there... and what vlan/print says
    const vl = await sw.cmd('vlan/print 5');
    expect(vl.data[0]).toBe('VLAN 0005');
    expect(vl.data).toContain(` -- Port ${String(trunk.port).padStart(4, '0')} tagged=1 active=1 status=Forwarding`);
    expect((await sw.cmd('vlan/create 4094')).status).toBe(22);
    expect((await sw.cmd('vlan/remove 5')).status).toBe(98);
    for (const x of [access, trunk, other]) x.close();
  });

  it('passes foreign-tagged frames through an access port by default and drops them when told', async () => {
    // fresh ports: inactive ports keep their VLAN settings from earlier tests, as in vde2
    const a = await client({ port: 20 });
    const b = await client({ port: 21 });
    const tagged = tag(frame(BCAST, '02:00:00:00:06:01'), 77);
    a.send(tagged);
    const got = await b.recv();
    expect(got?.equals(tagged)).toBe(true);
    expect((await sw.cmd('vlan/foreigntags drop')).status).toBe(0);
    a.send(tagged);
    expect(await b.recv(300)).toBeNull();
    const p = await sw.json<PortJson>(`json/port/print ${a.port}`);
    expect(p.counters.drops.vlan).toBe(1);
    expect((await sw.cmd('vlan/foreigntags pass')).status).toBe(0);
    a.close();
    b.close();
  });

  it('ages entries out and respects the minimum persistence before a MAC moves', async () => {
    const [a, b, c] = [await client({ port: 30 }), await client({ port: 31 }), await client({ port: 32 })];
    a.send(frame(BCAST, '02:00:00:00:07:01'));
    await sleep(100);
    // the same MAC appears on c within 3 s: it must stay on a
    c.send(frame(BCAST, '02:00:00:00:07:01'));
    await sleep(100);
    let e = await sw.json<{ port: number }>('json/hash/find 02:00:00:00:07:01');
    expect(e.port).toBe(a.port);
    expect((await sw.cmd('hash/setminper 0')).status).toBe(0);
    await sleep(1100);
    c.send(frame(BCAST, '02:00:00:00:07:01'));
    await sleep(100);
    e = await sw.json<{ port: number }>('json/hash/find 02:00:00:00:07:01');
    expect(e.port).toBe(c.port);
    expect((await sw.cmd('hash/setexpire 1')).status).toBe(0);
    expect((await sw.cmd('hash/setgcint 1')).status).toBe(0);
    await sleep(3200);
    expect((await sw.cmd('hash/find 02:00:00:00:07:01')).status).toBe(19);
    await sw.cmd('hash/setexpire 100');
    await sw.cmd('hash/setminper 3');
    for (const x of [a, b, c]) x.close();
  });

  it('mirrors a port to a monitor port and limits broadcast storms', async () => {
    const [a, b, mon] = [await client({ port: 25 }), await client({ port: 26 }), await client({ port: 27 })];
    b.send(frame(BCAST, '02:00:00:00:08:02'));
    a.send(frame(BCAST, '02:00:00:00:08:01'));
    await sleep(100);
    await a.drain(100);
    await b.drain(100);
    await mon.drain(100);
    expect((await sw.cmd(`port/mirror ${a.port} ${mon.port} both`)).status).toBe(0);
    a.send(frame('02:00:00:00:08:02', '02:00:00:00:08:01'));
    expect(await b.recv()).not.toBeNull();
    expect((await mon.recv())?.subarray(0, 6).toString('hex')).toBe('020000000802');
    b.send(frame('02:00:00:00:08:01', '02:00:00:00:08:02'));
    expect(await a.recv()).not.toBeNull();
    expect((await mon.recv())?.subarray(0, 6).toString('hex')).toBe('020000000801');
    expect((await sw.cmd(`port/mirror ${a.port} none`)).status).toBe(0);
    expect((await sw.cmd(`port/stormctl ${a.port} 10`)).status).toBe(0);
    for (let i = 0; i < 50; i++) a.send(frame(BCAST, '02:00:00:00:08:01'));
    const got = await b.drain(500);
    expect(got.length).toBeGreaterThanOrEqual(10);
    expect(got.length).toBeLessThanOrEqual(20); // at most two one-second windows
    const p = await sw.json<PortJson>(`json/port/print ${a.port}`);
    expect(p.counters.drops.storm).toBeGreaterThanOrEqual(30);
    for (const x of [a, b, mon]) x.close();
  });
});

describe('hub mode', () => {
  it('sends unicast to every other port', async () => {
    const sw = await startSwitch(['-x']);
    const [a, b, c] = [await VdeClient.connect(sw.dir), await VdeClient.connect(sw.dir), await VdeClient.connect(sw.dir)];
    b.send(frame(BCAST, '02:00:00:00:09:02'));
    await a.drain(200);
    await c.drain(200);
    a.send(frame('02:00:00:00:09:02', '02:00:00:00:09:01'));
    expect(await b.recv()).not.toBeNull();
    expect(await c.recv()).not.toBeNull();
    const info = await sw.cmd('port/showinfo');
    expect(info.data).toContain('HUB=true');
    for (const x of [a, b, c]) x.close();
    await sw.stop();
  });
});
