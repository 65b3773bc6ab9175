// Control-socket handshake against a real switch process: v3/v1 requests, port requests,
// port 0, several endpoints per port, and every refusal closing the stream at once.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRequestV1, encodeRequestV3, EXT_F_VNET, parseReply, VDE_MAGIC } from '../../src/protocol/handshake.js';
import { startSwitch, type RunningSwitch } from '../helpers/switchproc.js';
import { frame, rawControl, VdeClient } from '../helpers/vdeclient.js';

let sw: RunningSwitch;
beforeAll(async () => {
  sw = await startSwitch(['-n', '8']);
});
afterAll(async () => {
  await sw.stop();
});

describe('handshake', () => {
  it('answers a v3 request with a 110-byte address DIR/NNN.F and forwards frames', async () => {
    const a = await VdeClient.connect(sw.dir);
    const b = await VdeClient.connect(sw.dir);
    expect(a.dataPath).toMatch(new RegExp(`^${sw.dir}/\\d{3}\\.\\d+$`));
    expect(fs.statSync(a.dataPath).isSocket()).toBe(true);
    expect(a.port).not.toBe(b.port);
    a.send(frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0a'));
    const got = await b.recv();
    expect(got?.subarray(6, 12).toString('hex')).toBe('02000000000a');
    a.close();
    b.close();
  });

  it('gives the requested port, port 0 via type 1, and several endpoints on one port', async () => {
    const p5 = await VdeClient.connect(sw.dir, { port: 5 });
    expect(p5.port).toBe(5);
    const p5b = await VdeClient.connect(sw.dir, { port: 5 });
    expect(p5b.port).toBe(5);
    const p0 = await VdeClient.connect(sw.dir, { type: 1 });
    expect(p0.port).toBe(0);
    const other = await VdeClient.connect(sw.dir);
    other.send(frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0b'));
    // a frame to port 5 reaches both of its endpoints, and port 0 gets the flood too
    expect(await p5.recv()).not.toBeNull();
    expect(await p5b.recv()).not.toBeNull();
    expect(await p0.recv()).not.toBeNull();
    const ports = await sw.json<Array<{ port: number; endpoints: unknown[] }>>('json/port/print');
    expect(ports.find((p) => p.port === 5)?.endpoints).toHaveLength(2);
    for (const c of [p5, p5b, p0, other]) c.close();
  });

  it('accepts the old v1 request layout', async () => {
    const c = await VdeClient.connect(sw.dir, { request: (p) => encodeRequestV1({ sockPath: p, description: 'v1client' }) });
    expect(c.port).toBeGreaterThan(0);
    const ports = await sw.json<Array<{ endpoints: Array<{ description: string }> }>>('json/port/print');
    expect(ports.some((p) => p.endpoints.some((e) => e.description === 'v1client'))).toBe(true);
    c.close();
  });

  it('refuses a port out of range by closing the stream at once', async () => {
    const t0 = Date.now();
    await expect(VdeClient.connect(sw.dir, { port: 9 })).rejects.toThrow(/closed/);
    expect(Date.now() - t0).toBeLessThan(1500);
    await expect(VdeClient.connect(sw.dir, { port: 100000 })).rejects.toThrow(/closed/);
  });

  const bad: Array<[string, (p: string) => Buffer]> = [
    ['bad magic', (p) => { const b = encodeRequestV3({ sockPath: p }); b.writeUInt32LE(0x12345678, 0); return b; }],
    ['version 2', (p) => { const b = encodeRequestV3({ sockPath: p }); b.writeUInt32LE(2, 4); return b; }],
    ['version 7', (p) => { const b = encodeRequestV3({ sockPath: p }); b.writeUInt32LE(7, 4); return b; }],
    ['request type 5', (p) => encodeRequestV3({ sockPath: p, type: 5 })],
    ['missing client socket', () => encodeRequestV3({ sockPath: '/nonexistent/dir/sock' })],
    ['relative client path', () => encodeRequestV3({ sockPath: 'relative/sock' })],
    ['oversized request', (p) => Buffer.concat([encodeRequestV3({ sockPath: p }), Buffer.alloc(300, 0x41)])],
    ['non-unix address family', (p) => { const b = encodeRequestV3({ sockPath: p }); b.writeUInt16LE(2, 12); return b; }],
  ];
  for (const [name, make] of bad) {
    it(`closes the stream at once on ${name}`, async () => {
      const t0 = Date.now();
      await expect(VdeClient.connect(sw.dir, { request: make })).rejects.toThrow(/closed/);
      expect(Date.now() - t0).toBeLessThan(1500);
    });
  }

  it('refuses a client path that is not a socket', async () => {
    const file = path.join(sw.dir, '.not-a-socket');
    fs.writeFileSync(file, 'x');
    const r = await rawControl(sw.dir, encodeRequestV3({ sockPath: file }));
    expect(r.closed).toBe(true);
    expect(r.reply.length).toBe(0);
    fs.rmSync(file);
  });

  it('closes a truncated request after the request timeout and survives random garbage', async () => {
    const head = Buffer.alloc(40);
    head.writeUInt32LE(VDE_MAGIC, 0);
    head.writeUInt32LE(3, 4);
    const r = await rawControl(sw.dir, head, 4000);
    expect(r.closed).toBe(true);
    for (let i = 0; i < 30; i++) {
      const g = Buffer.alloc(1 + Math.floor(Math.random() * 300));
      for (let k = 0; k < g.length; k++) g[k] = Math.floor(Math.random() * 256);
      const rr = await rawControl(sw.dir, g, 3000);
      expect(rr.reply.length).toBe(0);
    }
    // still serving
    const a = await VdeClient.connect(sw.dir);
    const b = await VdeClient.connect(sw.dir);
    a.send(frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0c'));
    expect(await b.recv()).not.toBeNull();
    a.close();
    b.close();
  });

  it('enforces port/setuser access control by the owner of the client socket', async () => {
    expect((await sw.cmd('port/create 6')).status).toBe(0);
    expect((await sw.cmd('port/setuser 6 root')).status).toBe(0);
    // a client whose socket belongs to nobody (uid 65534) is refused, root is accepted
    await expect(
      VdeClient.connect(sw.dir, {
        port: 6,
        request: (p) => {
          fs.chownSync(p, 65534, 65534);
          return encodeRequestV3({ sockPath: p, port: 6 });
        },
      }),
    ).rejects.toThrow(/closed/);
    const ok = await VdeClient.connect(sw.dir, { port: 6 });
    expect(ok.port).toBe(6);
    ok.close();
    expect((await sw.cmd('port/setuser 6 NONE')).status).toBe(0);
  });

  it('keeps an inactive port with its counters and VLAN after the client leaves', async () => {
    expect((await sw.cmd('vlan/create 12')).status).toBe(0);
    const a = await VdeClient.connect(sw.dir, { port: 7 });
    expect((await sw.cmd('port/setvlan 7 12')).status).toBe(0);
    a.send(frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0d'));
    await new Promise((r) => setTimeout(r, 100));
    a.close();
    await new Promise((r) => setTimeout(r, 200));
    const p = await sw.json<{ active: boolean; untaggedVlan: number; counters: { inFrames: number } }>('json/port/allprint 7');
    expect(p.active).toBe(false);
    expect(p.untaggedVlan).toBe(12);
    expect(p.counters.inFrames).toBe(1);
    expect(fs.readdirSync(sw.dir).filter((f) => f.startsWith('007.'))).toEqual([]);
    const again = await VdeClient.connect(sw.dir, { port: 7 });
    again.send(frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:00:0d'));
    await new Promise((r) => setTimeout(r, 100));
    const p2 = await sw.json<{ counters: { inFrames: number } }>('json/port/print 7');
    expect(p2.counters.inFrames).toBe(2);
    again.close();
  });
});

describe('the vde-ts handshake extension against the switch process', () => {
  const ext = { version: 1, flags: EXT_F_VNET, maxFrameBytes: 65536 };
  const endpointOffload = async (dataPath: string): Promise<boolean | undefined> => {
    const ports = await sw.json<Array<{ endpoints: Array<{ id: number; offload: boolean }> }>>('json/port/print');
    const id = Number(path.basename(dataPath).split('.')[1]);
    return ports.flatMap((p) => p.endpoints).find((e) => e.id === id)?.offload;
  };

  it('accepts it in the reply padding: the data socket then carries a virtio-net header both ways', async () => {
    const c = await VdeClient.connect(sw.dir, { request: (p) => encodeRequestV3({ sockPath: p, description: 'ext client', ext }) });
    const b = await VdeClient.connect(sw.dir);
    expect(parseReply(c.reply)).toEqual({ path: c.dataPath, ext });
    expect(parseReply(b.reply).ext).toBeNull();
    expect(await endpointOffload(c.dataPath)).toBe(true);
    expect(await endpointOffload(b.dataPath)).toBe(false);
    const f = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:0e:01');
    c.send(Buffer.concat([Buffer.alloc(10), f]));
    expect(await b.recv()).toEqual(f);
    const g = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:0e:02', 3000);
    b.send(g);
    expect(await c.recv()).toEqual(Buffer.concat([Buffer.alloc(10), g]));
    c.close();
    b.close();
  });

  it('answers a cut, garbled or version-0 extension with exactly the plain reply', async () => {
    const variants: Array<[string, (p: string) => Buffer]> = [
      ['cut', (p) => { const r = encodeRequestV3({ sockPath: p, description: 'x', ext }); return r.subarray(0, r.length - 3); }],
      ['wrong magic', (p) => { const r = encodeRequestV3({ sockPath: p, description: 'x', ext }); r[122 + 2] ^= 0xff; return r; }],
      ['version 0', (p) => { const r = encodeRequestV3({ sockPath: p, description: 'x', ext }); r[122 + 2 + 6] = 0; return r; }],
      ['no virtio-net flag', (p) => encodeRequestV3({ sockPath: p, description: 'x', ext: { ...ext, flags: 0 } })],
    ];
    for (const [what, request] of variants) {
      const c = await VdeClient.connect(sw.dir, { request });
      const end = c.reply.indexOf(0, 2);
      expect(c.reply.length, what).toBe(110);
      expect(c.reply.subarray(end).every((x) => x === 0), what).toBe(true);
      expect(await endpointOffload(c.dataPath), what).toBe(false);
      c.close();
    }
  });

  it('survives random bytes after the description: each client is served or refused, the switch goes on', async () => {
    let seed = 4242;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    for (let i = 0; i < 60; i++) {
      const tail = Buffer.from(Array.from({ length: 1 + rnd(40) }, () => rnd(256)));
      if (i % 3 === 0) Buffer.from('vde-ts').copy(tail, 0, 0, Math.min(6, tail.length));
      const c = await VdeClient.connect(sw.dir, { request: (p) => Buffer.concat([encodeRequestV3({ sockPath: p, description: 'r' }), Buffer.from([0]), tail]) }).catch(() => null);
      c?.close();
    }
    const ok = await VdeClient.connect(sw.dir);
    expect(ok.port).toBeGreaterThan(0);
    ok.close();
  });
});
