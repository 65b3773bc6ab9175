// Hopeless handshakes and log floods: a control connection whose first bytes cannot begin a valid
// VDE request is closed at once (not after the 2 s request timeout), a slow but valid client
// still gets its port, and thousands of refused clients leave a handful of log lines plus a
// summary instead of one line each.
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeRequestV3 } from '../../src/protocol/handshake.js';
import { native } from '../../src/native/index.js';
import { REQUEST_TIMEOUT_MS } from '../../src/protocol/request.js';
import { startSwitch, waitFor, type RunningSwitch } from '../helpers/switchproc.js';

/** Connects, sends `chunks` with pauses between them, resolves with how long the switch took to close after the first byte (or null if it did not within 4 s). */
function closeDelay(dir: string, chunks: Buffer[], gapMs = 0): Promise<{ closedAfterMs: number | null; reply: Buffer }> {
  return new Promise((resolve) => {
    const c = net.connect({ path: path.join(dir, 'ctl') });
    let t0 = 0;
    let reply = Buffer.alloc(0);
    const giveUp = setTimeout(() => {
      c.destroy();
      resolve({ closedAfterMs: null, reply });
    }, 4000);
    c.on('connect', async () => {
      t0 = Date.now();
      for (const [i, ch] of chunks.entries()) {
        if (i > 0 && gapMs) await new Promise((r) => setTimeout(r, gapMs));
        if (!c.destroyed) c.write(ch);
      }
    });
    c.on('data', (d) => (reply = Buffer.concat([reply, d])));
    c.on('error', () => {});
    c.on('close', () => {
      clearTimeout(giveUp);
      resolve({ closedAfterMs: Date.now() - t0, reply });
    });
  });
}

describe('hopeless handshakes', () => {
  let sw: RunningSwitch;
  beforeAll(async () => {
    sw = await startSwitch();
  });
  afterAll(async () => {
    await sw.stop();
  });

  it('closes a client at its first impossible byte, well before the request timeout', async () => {
    for (const garbage of [Buffer.from('G'), Buffer.from([0xce, 0xfa, 0x00]), Buffer.from([0xce, 0xfa, 0xed, 0xfe, 0x07])]) {
      const r = await closeDelay(sw.dir, [garbage]);
      expect(r.closedAfterMs, garbage.toString('hex')).not.toBeNull();
      expect(r.closedAfterMs!, garbage.toString('hex')).toBeLessThan(REQUEST_TIMEOUT_MS / 2);
    }
    // the log names the real reason, not a timeout
    await waitFor(() => /refused a client: bad magic \(byte 0 is 0x47/.test(sw.output()), 3000, 'refusal line');
    expect(sw.output()).not.toMatch(/truncated request/);
  });

  it('still serves a slow but valid client that sends its request in pieces', async () => {
    const a = native();
    const local = path.join(sw.dir, `.${String(process.pid).padStart(5, '0')}-99999`);
    const fd = a.unixDgramSocket();
    a.unixBind(fd, local);
    const req = encodeRequestV3({ sockPath: local, description: 'slow client' });
    const c = net.connect({ path: path.join(sw.dir, 'ctl') });
    let reply = Buffer.alloc(0);
    c.on('data', (d) => (reply = Buffer.concat([reply, d])));
    await new Promise((r) => c.once('connect', r));
    const t0 = Date.now();
    for (const [i, piece] of [req.subarray(0, 3), req.subarray(3, 13), req.subarray(13, 100), req.subarray(100)].entries()) {
      if (i > 0) await new Promise((r) => setTimeout(r, 300));
      c.write(piece);
    }
    await waitFor(() => reply.length >= 110, 3000, 'the 110-byte reply');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(reply.subarray(2).toString().replace(/\0+$/, '')).toMatch(new RegExp(`^${sw.dir}/\\d{3}\\.\\d+$`));
    expect((await sw.json<Array<{ endpoints: Array<{ description: string }> }>>('json/port/print'))[0].endpoints[0].description).toBe('slow client');
    c.destroy();
    a.closeFd(fd);
  });

  it('summarises a flood of refused clients instead of logging each one', async () => {
    const before = (sw.output().match(/refused a client/g) ?? []).length;
    await Promise.all(Array.from({ length: 300 }, () => closeDelay(sw.dir, [Buffer.from('x')])));
    const after = (sw.output().match(/refused a client/g) ?? []).length;
    expect(after - before).toBeLessThan(20);
  });
});
