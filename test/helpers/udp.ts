/**
 * Small helpers of tests that use UDP and keys on this host: a free UDP port on loopback (bound
 * and released, so a test can give it to a process it starts), and key files for crypt:// with
 * the permissions crypt:// demands (0600).
 */
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';

/** A UDP port that is free on 127.0.0.1 right now. */
export async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** A fresh 32-byte key in hex. */
export function hexKey(): string {
  return randomBytes(32).toString('hex');
}

/** Writes a key file (mode 0600) in dir with the given lines (default: one fresh key, id 1); returns its path. */
export function writeKeyFile(dir: string, name: string, lines: string[] = [`1 ${hexKey()}`]): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, `${lines.join('\n')}\n`, { mode: 0o600 });
  fs.chmodSync(f, 0o600);
  return f;
}
