/*
 * Checked TCP transfers between network namespaces for the interop tests: a file of random bytes
 * sent with socat from one namespace to a listener in another that hashes what arrives, so a
 * single wrong, lost or duplicated byte anywhere on the path fails the comparison; plus the
 * receiving kernel's count of TCP checksum errors (software segmentation must get them right).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsExec, pollUntil, spawnInNetns, type Cleanup } from './netns.js';

/** How long socat may take to listen, and a transfer to finish. */
const LISTEN_TIMEOUT_MS = 10_000;
const TRANSFER_TIMEOUT_MS = 120_000;
const CHECKSUM_TIMEOUT_MS = 30_000;
const CHUNK_BYTES = 4 * 1024 * 1024;

/** sha256 of a file, hex. */
export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

/** Writes a file of `bytes` random bytes in a fresh temp directory (removed by cleanup); returns its path and sha256. */
export async function randomFile(cleanup: Cleanup, bytes: number): Promise<{ file: string; sha: string }> {
  const dir = cleanup.path(mkdtempSync(join(tmpdir(), 'vde-ts-data-')));
  const file = join(dir, 'data');
  writeFileSync(file, Buffer.alloc(0));
  for (let left = bytes; left > 0; left -= CHUNK_BYTES) writeFileSync(file, randomBytes(Math.min(left, CHUNK_BYTES)), { flag: 'a' });
  return { file, sha: await sha256File(file) };
}

/** Sends `file` from namespace `from` to `toAddr:port` in namespace `to` with socat; returns the sha256 of what arrived. */
export async function transfer(cleanup: Cleanup, from: string, to: string, toAddr: string, file: string, port: number): Promise<string> {
  const server = spawnInNetns(to, ['sh', '-c', `socat -u TCP-LISTEN:${port},reuseaddr STDOUT | sha256sum`], { cleanup, stdin: 'ignore' });
  await pollUntil(async () => (await netnsExec(to, ['ss', '-ltn'])).stdout.includes(`:${port} `), LISTEN_TIMEOUT_MS, 'socat listening');
  await netnsExec(from, ['socat', '-u', `OPEN:${file}`, `TCP:${toAddr}:${port}`], { timeoutMs: TRANSFER_TIMEOUT_MS });
  await pollUntil(() => /^[0-9a-f]{64}/.test(server.output()), CHECKSUM_TIMEOUT_MS, `checksum (${server.output()})`);
  return server.output().slice(0, 64);
}

/** TCP segments with a bad checksum the kernel of namespace ns received so far. */
export async function csumErrors(ns: string): Promise<number> {
  const r = await netnsExec(ns, ['nstat', '-az', 'TcpInCsumErrors']);
  const m = /TcpInCsumErrors\s+(\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}
