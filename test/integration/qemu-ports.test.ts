// The switch's QEMU-facing ports fed by hand: a well-formed 4-byte-framed stream client, a client
// that connects and sends garbage (its port goes away, the others keep working), option errors,
// and a UDP peer sending runts and oversize datagrams to a --qemu-dgram port (dropped, counted).
import dgram from 'node:dgram';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSwitch, tmpdir, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { frame, VdeClient } from '../helpers/vdeclient.js';

const UDP_PORT = 40000 + (process.pid % 10000);
const BCAST = 'ff:ff:ff:ff:ff:ff';

function framed4(f: Buffer): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(f.length);
  return Buffer.concat([h, f]);
}

describe('QEMU ports fed by hand', () => {
  let sw: RunningSwitch;
  let sock: string;
  beforeAll(async () => {
    sock = path.join(tmpdir(), 'q.sock');
    sw = await startSwitch(['--qemu-listen', `unix:${sock}`, '--qemu-dgram', `udp:127.0.0.1:${UDP_PORT}`]);
  });
  afterAll(async () => {
    await sw.stop();
  });

  it('carries 4-byte framed frames both ways, up to 64 KiB towards other stream ports', async () => {
    const c = await VdeClient.connect(sw.dir);
    const q = net.connect({ path: sock });
    await new Promise((r) => q.once('connect', r));
    let got = Buffer.alloc(0);
    q.on('data', (d) => (got = Buffer.concat([got, d])));
    await waitFor(async () => (await sw.json<unknown[]>('json/port/print')).length === 3, 5000, 'qemu port');
    const f = frame(BCAST, '02:00:00:00:50:01', 500);
    q.write(framed4(f));
    expect((await c.recv())?.equals(f)).toBe(true);
    const g = frame(BCAST, '02:00:00:00:50:02', 100);
    c.send(g);
    await waitFor(() => got.length >= 4 + g.length, 2000, 'frame on the stream');
    expect(got.readUInt32BE(0)).toBe(g.length);
    expect(got.subarray(4, 4 + g.length).equals(g)).toBe(true);
    q.destroy();
    c.close();
  });

  it('drops a client that sends garbage, and keeps serving the others', async () => {
    const c = await VdeClient.connect(sw.dir);
    const good = net.connect({ path: sock });
    const bad = net.connect({ path: sock });
    await Promise.all([new Promise((r) => good.once('connect', r)), new Promise((r) => bad.once('connect', r))]);
    await waitFor(async () => (await sw.json<unknown[]>('json/port/print')).length === 4, 5000, 'two qemu ports');
    bad.on('error', () => {});
    const closed = new Promise((r) => bad.once('close', r));
    bad.write(Buffer.from([0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8]));
    await closed;
    await waitFor(async () => (await sw.json<unknown[]>('json/port/print')).length === 3, 5000, 'garbage port gone');
    const f = frame(BCAST, '02:00:00:00:51:01', 60);
    good.write(framed4(f));
    expect((await c.recv())?.equals(f)).toBe(true);
    good.destroy();
    c.close();
  });

  it('drops and counts runts from a UDP peer, and never cuts a 64 KiB frame down for a VDE client', async () => {
    const c = await VdeClient.connect(sw.dir);
    const u = dgram.createSocket('udp4');
    await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
    const send = (b: Buffer) => new Promise((r) => u.send(b, UDP_PORT, '127.0.0.1', r));
    await send(Buffer.alloc(5));
    await send(Buffer.alloc(13));
    await send(Buffer.alloc(65000, 1));
    const f = frame(BCAST, '02:00:00:00:52:01', 300);
    await send(f);
    expect((await c.recv())?.equals(f)).toBe(true);
    const ports = await sw.json<Array<{ endpoints: Array<{ module: string; description: string }>; counters: { drops: Record<string, number> } }>>('json/port/print');
    const p = ports.find((x) => x.endpoints.some((e) => e.description.startsWith('qemu dgram udp')))!;
    expect(p.counters.drops.runt).toBe(2);
    // the 65000-byte frame is valid on QEMU's side but too big for a VDE datagram client: dropped there, counted
    const mine = ports.find((x) => x.endpoints.some((e) => e.module === 'unix prog'))!;
    expect(mine.counters.drops.oversize).toBe(1);
    // and frames go back to the adopted peer
    const back = new Promise<Buffer>((r) => u.once('message', (m) => r(m)));
    const g = frame('02:00:00:00:52:01', '02:00:00:00:52:02', 100);
    c.send(g);
    expect((await back).equals(g)).toBe(true);
    u.close();
    c.close();
  });

  it('re-connects a --qemu-connect port when its QEMU goes away and comes back', async () => {
    const qsock = path.join(tmpdir(), 'vm.sock');
    const conns: net.Socket[] = [];
    let server = net.createServer((c) => conns.push(c));
    await new Promise<void>((r) => server.listen({ path: qsock }, () => r()));
    const sw2 = await startSwitch(['--qemu-connect', `unix:${qsock}`]);
    try {
      await waitFor(() => conns.length === 1, 5000, 'first connection');
      const c = await VdeClient.connect(sw2.dir);
      // the "VM" restarts: its socket goes away and a new server appears on the same path
      conns[0].destroy();
      server.close();
      await new Promise((r) => setTimeout(r, 300));
      server = net.createServer((cc) => conns.push(cc));
      await new Promise<void>((r) => server.listen({ path: qsock }, () => r()));
      await waitFor(() => conns.length === 2, 3000, 'the switch to re-connect');
      let got = Buffer.alloc(0);
      conns[1].on('data', (d) => (got = Buffer.concat([got, d])));
      const f = frame(BCAST, '02:00:00:00:53:01', 100);
      c.send(f);
      await waitFor(() => got.length >= 4 + f.length, 2000, 'frame to the new VM');
      expect(got.subarray(4, 4 + f.length).equals(f)).toBe(true);
      c.close();
    } finally {
      for (const x of conns) x.destroy();
      server.close();
      await sw2.stop();
    }
  });

  it('refuses bad --qemu-* values with the option name', async () => {
    for (const [args, re] of [
      [['--qemu-listen', 'nonsense'], /--qemu-listen: "nonsense" must be unix:PATH or tcp:\[HOST:\]PORT/],
      [['--qemu-dgram', 'tcp:1234'], /--qemu-dgram: tcp: is not valid here/],
      [['--qemu-listen', 'tcp:127.0.0.1:99999'], /port 99999 out of range/],
      [['--qemu-connect', 'unix:relative'], /must be absolute/],
    ] as Array<[string[], RegExp]>) {
      await expect(startSwitch(args)).rejects.toThrow(re);
    }
  });
});
