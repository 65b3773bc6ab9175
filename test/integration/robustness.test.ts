// One bad client must never hurt the others: killed clients, connect/disconnect storms (no
// leaked fds or socket files), a client that stops reading, and a broadcast flooder next to a
// well-behaved pair. Every load loop here is bounded in count and time.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fdCount, ROOT, startSwitch, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { frame, VdeClient } from '../helpers/vdeclient.js';

const BCAST = 'ff:ff:ff:ff:ff:ff';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let sw: RunningSwitch;
beforeAll(async () => {
  sw = await startSwitch(['-n', '64']);
});
afterAll(async () => {
  await sw.stop();
});

describe('robustness', () => {
  it('survives 1000 connect/disconnect cycles without leaking fds or socket files', async () => {
    // warm up so lazily opened fds (epoll, eventfd, ...) exist before counting
    (await VdeClient.connect(sw.dir)).close();
    await sleep(200);
    const before = fdCount(sw.proc.pid!);
    for (let i = 0; i < 1000; i++) {
      const c = await VdeClient.connect(sw.dir);
      if (i % 100 === 0) c.send(frame(BCAST, '02:00:00:00:10:01'));
      c.close();
    }
    await waitFor(() => fdCount(sw.proc.pid!) <= before, 5000, 'fds to return to the baseline');
    // a data socket file goes when its client's control connection has closed, which Node reports
    // a moment after the descriptors are gone
    const dataFiles = (): string[] => fs.readdirSync(sw.dir).filter((f) => /^\d{3}\.\d+$/.test(f));
    await waitFor(() => dataFiles().length === 0, 5000, `data sockets to go (${dataFiles().join(' ')})`);
    const active = await sw.json<unknown[]>('json/port/print');
    expect(active).toEqual([]);
  });

  it('removes the endpoint of a client killed with SIGKILL mid-traffic', async () => {
    const script = `
      import { VdeClient, frame } from '${path.join(ROOT, 'test/helpers/vdeclient.ts')}';
      const c = await VdeClient.connect(${JSON.stringify(sw.dir)}, { port: 40 });
      console.log('ready');
      const end = Date.now() + 20000;
      while (Date.now() < end) { c.send(frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:11:01')); await new Promise(r => setImmediate(r)); }
    `;
    const b = await VdeClient.connect(sw.dir, { port: 41 });
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    await waitFor(() => out.includes('ready') || child.exitCode !== null, 15000, `killer client to start: ${out}`);
    expect(await b.recv()).not.toBeNull();
    child.kill('SIGKILL');
    await waitFor(async () => (await sw.json<unknown[]>('json/port/print')).length === 1, 5000, 'port 40 to become inactive');
    expect(fs.readdirSync(sw.dir).filter((f) => f.startsWith('040.'))).toEqual([]);
    await b.drain(200);
    const c = await VdeClient.connect(sw.dir);
    c.send(frame(BCAST, '02:00:00:00:11:02'));
    expect(await b.recv()).not.toBeNull();
    b.close();
    c.close();
  });

  it('keeps a pair flowing while another client stops reading, and counts the queue drops', async () => {
    const deaf = await VdeClient.connect(sw.dir, { port: 50 });
    const a = await VdeClient.connect(sw.dir, { port: 51 });
    const b = await VdeClient.connect(sw.dir, { port: 52 });
    // broadcast to fill the deaf client's queue: it never reads
    let sent = 0;
    const end = Date.now() + 5000;
    while (sent < 20000 && Date.now() < end) {
      if (a.send(frame(BCAST, '02:00:00:00:12:01', 1000))) sent++;
      else await sleep(1);
      if (sent % 500 === 0) await b.drain(1);
    }
    await b.drain(300);
    const d = await sw.json<{ counters: { drops: Record<string, number> } }>('json/port/print 50');
    expect(d.counters.drops.queueFull).toBeGreaterThan(0);
    // the pair still exchanges unicast frames promptly
    b.send(frame('02:00:00:00:12:01', '02:00:00:00:12:02'));
    expect(await a.recv()).not.toBeNull();
    let got = 0;
    for (let i = 0; i < 100; i++) {
      a.send(frame('02:00:00:00:12:02', '02:00:00:00:12:01'));
      if (await b.recv(1000)) got++;
    }
    expect(got).toBe(100);
    for (const x of [deaf, a, b]) x.close();
  });

  it('gives a pair its share while another client floods broadcasts', async () => {
    const flooder = await VdeClient.connect(sw.dir, { port: 55 });
    const a = await VdeClient.connect(sw.dir, { port: 56 });
    const b = await VdeClient.connect(sw.dir, { port: 57 });
    b.send(frame(BCAST, '02:00:00:00:13:02'));
    a.send(frame(BCAST, '02:00:00:00:13:01'));
    await sleep(50);
    await a.drain(50);
    await b.drain(50);
    let stop = false;
    const flood = (async () => {
      const end = Date.now() + 8000;
      let n = 0;
      while (!stop && Date.now() < end && n < 2_000_000) {
        for (let k = 0; k < 64; k++) if (flooder.send(frame(BCAST, '02:00:00:00:13:ff', 46))) n++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    let got = 0;
    for (let i = 0; i < 200; i++) {
      a.send(frame('02:00:00:00:13:02', '02:00:00:00:13:01', 46));
      for (;;) {
        const f = await b.recv(1000);
        if (!f) break;
        if (f.subarray(6, 12).toString('hex') === '020000001301') {
          got++;
          break;
        }
      }
    }
    stop = true;
    await flood;
    expect(got).toBe(200);
    for (const x of [flooder, a, b]) x.close();
  });
});
