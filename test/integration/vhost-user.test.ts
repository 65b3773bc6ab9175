// The switch's --vhost-user ports driven by vhostfront (test/helpers/vhostfront.c), a scripted
// vhost-user front-end that plays QEMU's part with its own memfd "guest memory": frames both ways
// through the virtqueues (plain, jumbo over mergeable buffers, TSO frames kept whole for an
// offload guest and segmented for a VDE client), frames that wait in the switch until the guest
// posts receive buffers, broken control messages (only that connection closes, no descriptor
// leaks), malicious rings (the queue stops and is reported, a device reset recovers it), a
// returning guest getting its old port back, and the option's errors.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fdCount, runBin, startSwitch, tmpdir, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { buildVhostFront, frameSum, frontFrame, runFront, type FrontResult } from '../helpers/vhostfront.js';
import { VdeClient } from '../helpers/vdeclient.js';

const BCAST = 'ff:ff:ff:ff:ff:ff';
const MAC_A = '02:00:00:00:0a:01';
const MAC_B = '02:00:00:00:0b:01';
const PORT_TIMEOUT_MS = 5000;

interface PortJson {
  port: number;
  untaggedVlan: number;
  counters: { drops: Record<string, number>; inFrames: number; outFrames: number };
  endpoints: Array<{ description: string }>;
}

describe('vhost-user ports with a scripted front-end', () => {
  let sw: RunningSwitch;
  let sock: string;

  beforeAll(async () => {
    await buildVhostFront();
    sock = path.join(tmpdir(), 'sw.vhost');
    sw = await startSwitch(['--vhost-user', sock]);
  });
  afterAll(async () => {
    await sw.stop();
  });

  const ports = (): Promise<PortJson[]> => sw.json<PortJson[]>('json/port/print');
  const vhostPorts = async (): Promise<PortJson[]> => (await ports()).filter((p) => p.endpoints.some((e) => e.description.includes('vhost-user')));
  /** Starts a receiving front-end and resolves once its port is active, with the promise of its result (wrapped: an async function would wait for it). */
  const receiver = async (args: string[]): Promise<{ done: Promise<FrontResult> }> => {
    await waitFor(async () => (await vhostPorts()).length === 0, PORT_TIMEOUT_MS, 'the earlier guests gone');
    const done = runFront(sock, ['traffic', '--src', MAC_B, ...args]);
    await waitFor(async () => (await vhostPorts()).length === 1, PORT_TIMEOUT_MS, 'the receiving guest port');
    await new Promise((res) => setTimeout(res, 200)); // its rings are set up right after the connection
    return { done };
  };

  it('carries frames between two guests: 1500 bytes in one buffer, 9000 over six mergeable buffers', async () => {
    for (const [bytes, bufBytes, nbuf] of [
      [1500, 2048, 1],
      [9000, 1536, 6],
    ] as const) {
      const { done: rx } = await receiver(['--rx-expect', '5', '--wait-ms', '8000', '--rx-buf-bytes', String(bufBytes)]);
      const tx = await runFront(sock, ['traffic', '--src', MAC_A, '--dst', BCAST, '--tx-count', '5', '--tx-bytes', String(bytes), '--wait-ms', '100']);
      expect(tx).toMatchObject({ ok: true, txUsed: 5, txSent: 5, txBase: 5 });
      const r = await rx;
      expect(r.ok, r.error).toBe(true);
      expect(r.rx!.map((f) => [f.len, f.nbuf, f.sum])).toEqual([0, 1, 2, 3, 4].map((i) => [bytes, nbuf, frameSum(frontFrame(BCAST, MAC_A, bytes, i))]));
    }
  });

  it('drops (and counts) a frame larger than a guest without mergeable buffers can take, delivers it with big buffers', async () => {
    const { done: small } = await receiver(['--no-mergeable', '--rx-buf-bytes', '2048', '--wait-ms', '1500']);
    const smallPort = (await vhostPorts())[0]!.port;
    const dropsBefore = (await sw.json<PortJson>(`json/port/allprint ${smallPort}`)).counters.drops.oversize;
    await runFront(sock, ['traffic', '--src', MAC_A, '--dst', BCAST, '--tx-count', '2', '--tx-bytes', '9000', '--wait-ms', '100']);
    expect((await small).rxCount).toBe(0);
    const counted = await sw.json<PortJson>(`json/port/allprint ${smallPort}`);
    expect(counted.counters.drops.oversize - dropsBefore).toBe(2);
    const { done: big } = await receiver(['--no-mergeable', '--rx-buf-bytes', '16384', '--rx-expect', '2', '--wait-ms', '8000']);
    await runFront(sock, ['traffic', '--src', MAC_A, '--dst', BCAST, '--tx-count', '2', '--tx-bytes', '9000', '--wait-ms', '100']);
    const b = await big;
    expect(b.rx!.map((f) => [f.len, f.nbuf])).toEqual([
      [9000, 1],
      [9000, 1],
    ]);
  });

  it('exchanges frames with a VDE client', async () => {
    const c = await VdeClient.connect(sw.dir);
    try {
      const { done: rx } = await receiver(['--rx-expect', '1', '--wait-ms', '8000']);
      const f = frontFrame(MAC_B, '02:00:00:00:0c:01', 200, 9);
      c.send(frontFrame(BCAST, '02:00:00:00:0c:01', 60, 1)); // so that the switch learns the client
      c.send(f);
      const r = await rx;
      // the broadcast arrives first (rx-expect 1), then the unicast is queued or delivered: both carry the client's MAC
      expect(r.rx![0]!.sum).toBe(frameSum(frontFrame(BCAST, '02:00:00:00:0c:01', 60, 1)));
      await runFront(sock, ['traffic', '--src', MAC_A, '--dst', '02:00:00:00:0c:01', '--tx-count', '3', '--tx-bytes', '800', '--wait-ms', '100']);
      const got: Buffer[] = [];
      for (let i = 0; i < 3; i++) {
        const g = await c.recv();
        if (g) got.push(g);
      }
      expect(got.map((g) => frameSum(g))).toEqual([0, 1, 2].map((i) => frameSum(frontFrame('02:00:00:00:0c:01', MAC_A, 800, i))));
    } finally {
      c.close();
    }
  });

  it('carries a TSO frame whole to an offload guest and segmented to a VDE client', async () => {
    const c = await VdeClient.connect(sw.dir);
    try {
      const { done: rx } = await receiver(['--rx-expect', '1', '--wait-ms', '8000']);
      await c.drain(100);
      const tx = await runFront(sock, ['traffic', '--src', MAC_A, '--dst', BCAST, '--gso', '--tx-count', '1', '--tx-bytes', '30000', '--wait-ms', '100']);
      expect(tx.txUsed).toBe(1);
      const r = await rx;
      expect(r.rx!.map((f) => [f.len, f.flags, f.gso])).toEqual([[30000, 1, 1]]);
      const segs = await c.drain(1000);
      const payload = 30000 - 54;
      expect(segs.length).toBe(Math.ceil(payload / 1448));
      expect(segs.every((s) => s.length <= 1448 + 54)).toBe(true);
      expect(segs.reduce((n, s) => n + s.length - 54, 0)).toBe(payload);
    } finally {
      c.close();
    }
  });

  it('keeps frames in the switch while the guest has no receive buffers and delivers them when it posts some', async () => {
    const { done: rx } = await receiver(['--rx-late-ms', '1500', '--rx-expect', '20', '--wait-ms', '8000']);
    await runFront(sock, ['traffic', '--src', MAC_A, '--dst', BCAST, '--tx-count', '20', '--tx-bytes', '600', '--wait-ms', '100']);
    const r = await rx;
    expect(r.rx!.map((f) => f.sum)).toEqual(Array.from({ length: 20 }, (_, i) => frameSum(frontFrame(BCAST, MAC_A, 600, i))));
  });

  it('closes only the connection that sends a broken control message, and leaks no descriptor', async () => {
    const fds0 = fdCount(sw.proc.pid!);
    const closing = ['version', 'reply-flag', 'too-long', 'short-payload', 'bad-features', 'too-many-fds', 'mem-too-big', 'mem-not-file', 'bad-index'];
    for (const kind of closing) {
      // (how long the front waits for the close: a loaded machine may take a while; it returns at the close)
      const r = await runFront(sock, ['proto', kind, '--close-ms', '10000']);
      expect(r, kind).toMatchObject({ ok: true, closed: true });
    }
    // an unknown request with need_reply gets a failure reply; half a message is waited for
    expect(await runFront(sock, ['proto', 'unknown-request'])).toMatchObject({ ok: true, closed: false, replySize: 8, reply: 1 });
    expect(await runFront(sock, ['proto', 'truncated'])).toMatchObject({ ok: true, closed: false });
    await waitFor(async () => (await vhostPorts()).length === 0, PORT_TIMEOUT_MS, 'every vhost-user port inactive');
    // (the management connections of these queries close asynchronously)
    // (at most: fds0 may still count a connection of the previous test that was closing)
    await waitFor(() => fdCount(sw.proc.pid!) <= fds0, PORT_TIMEOUT_MS, `the switch back at ${fds0} descriptors (has ${fdCount(sw.proc.pid!)})`);
    expect(sw.output()).toMatch(/endpoint closed \(vhost-user protocol error: a message carries too many file descriptors\)/);
    expect(sw.output()).toMatch(/endpoint closed \(vhost-user: a memory region is larger than its file\)/);
    // and the switch still moves frames
    const { done: rx } = await receiver(['--rx-expect', '1', '--wait-ms', '8000']);
    await runFront(sock, ['traffic', '--src', MAC_A, '--dst', BCAST, '--tx-count', '1', '--wait-ms', '100']);
    expect((await rx).rxCount).toBe(1);
  });

  it('stops a queue the guest corrupts, says so, and recovers after a device reset', async () => {
    for (const kind of ['loop', 'head-range', 'addr-outside', 'nested-indirect', 'avail-jump', 'writable-tx']) {
      const r = await runFront(sock, ['ring', kind, '--dst', BCAST, '--wait-ms', '100']);
      expect(r, kind).toMatchObject({ ok: true, errSignalled: true, afterResetTxUsed: 1 });
    }
    expect(sw.output()).toMatch(/endpoint guest transmit queue stopped: a descriptor chain loops/);
    // a frame too long is dropped and counted, the queue goes on
    for (const kind of ['huge-len', 'oversize']) {
      const r = await runFront(sock, ['ring', kind, '--dst', BCAST, '--wait-ms', '100']);
      expect(r, kind).toMatchObject({ ok: true, errSignalled: false, afterResetTxUsed: 1 });
    }
  });

  it('gives a guest that reconnects its old port back, with the port settings', async () => {
    const first = runFront(sock, ['traffic', '--wait-ms', '1500']);
    await waitFor(async () => (await vhostPorts()).length === 1, PORT_TIMEOUT_MS, 'the guest port');
    const port = (await vhostPorts())[0]!.port;
    await first;
    expect((await sw.cmd('vlan/create 7')).status).toBe(0);
    expect((await sw.cmd(`port/setvlan ${port} 7`)).status).toBe(0);
    await waitFor(async () => (await vhostPorts()).length === 0, PORT_TIMEOUT_MS, 'the port inactive');
    const again = runFront(sock, ['traffic', '--wait-ms', '1500']);
    await waitFor(async () => (await vhostPorts()).length === 1, PORT_TIMEOUT_MS, 'the guest port again');
    const p = (await vhostPorts())[0]!;
    expect([p.port, p.untaggedVlan]).toEqual([port, 7]);
    await again;
    expect((await sw.cmd(`port/setvlan ${port} 0`)).status).toBe(0);
  });
});

describe('--vhost-user without a free port', () => {
  it('closes the connection of a QEMU that finds no free port at once, and serves the first', async () => {
    await buildVhostFront();
    const sock = path.join(tmpdir(), 'one.vhost');
    const sw = await startSwitch(['-n', '1', '--vhost-user', sock]);
    try {
      const first = runFront(sock, ['traffic', '--wait-ms', '3000']);
      await waitFor(async () => (await sw.json<unknown[]>('json/port/print')).length === 1, PORT_TIMEOUT_MS, 'the first guest port');
      const second = await runFront(sock, ['proto', 'truncated', '--close-ms', '10000']);
      expect(second).toMatchObject({ ok: true, closed: true });
      expect(sw.output()).toMatch(/--vhost-user .*no free port/);
      expect((await first).ok).toBe(true);
    } finally {
      await sw.stop();
    }
  });
});

describe('--vhost-user option', () => {
  it('refuses a relative path, a regular file and a live socket, and removes its socket at exit', async () => {
    const dir = tmpdir();
    const rel = await runBin('vde_switch', ['-s', path.join(dir, 'sw'), '--nostdin', '--vhost-user', 'rel.sock']);
    expect(rel.code).toBe(1);
    expect(rel.stderr).toMatch(/--vhost-user: "rel\.sock" must be an absolute path/);
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, 'keep me');
    const reg = await runBin('vde_switch', ['-s', path.join(dir, 'sw2'), '--nostdin', '--vhost-user', file]);
    expect(reg.code).toBe(1);
    expect(reg.stderr).toMatch(/--vhost-user .*file exists and is not a socket/);
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me');
    const sock = path.join(dir, 'v.sock');
    const a = await startSwitch(['--vhost-user', sock]);
    const b = await runBin('vde_switch', ['-s', path.join(dir, 'sw3'), '--nostdin', '--vhost-user', sock]);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/--vhost-user .*v\.sock is in use by another process/);
    expect(fs.statSync(sock).mode & 0o777).toBe(0o600);
    await a.stop();
    expect(fs.existsSync(sock)).toBe(false);
  });
});
