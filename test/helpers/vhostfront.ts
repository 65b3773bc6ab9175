/**
 * Builds and runs test/helpers/vhostfront.c, a scripted vhost-user front-end (QEMU's part with
 * no VM) for the tests of the switch's --vhost-user ports: normal traffic through the guest's
 * virtqueues, broken control messages and malicious rings. The binary is compiled once per
 * source version into os.tmpdir() (gcc from Debian's gcc package, installed when missing).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTools } from './deps.js';
import { ROOT } from './switchproc.js';

/** Longest a compile may take. */
const COMPILE_TIMEOUT_MS = 60_000;
/** Slack on top of the front-end's own deadline before the test kills it. */
const KILL_SLACK_MS = 5_000;

const SOURCE = join(ROOT, 'test', 'helpers', 'vhostfront.c');

/** One frame the front-end received: its length, chains used, header flags/GSO type, first 64 bytes (hex) and a checksum. */
export interface FrontFrame {
  len: number;
  nbuf: number;
  flags: number;
  gso: number;
  head: string;
  sum: number;
}

/** What a run printed (fields depend on the scenario). */
export interface FrontResult {
  ok: boolean;
  error?: string;
  closed?: boolean;
  replySize?: number;
  reply?: number;
  errSignalled?: boolean;
  afterResetTxUsed?: number;
  txUsed?: number;
  txSent?: number;
  txCall?: boolean;
  txBase?: number;
  rxCount?: number;
  rx?: FrontFrame[];
}

let built: Promise<string> | null = null;

/** Compiles vhostfront (once per source version) and returns the binary's path. */
export function buildVhostFront(): Promise<string> {
  built ??= (async () => {
    const { cc } = await ensureTools({ cc: 'gcc' });
    const src = readFileSync(SOURCE);
    const key = createHash('sha256').update(src).digest('hex').slice(0, 16);
    const dir = join(tmpdir(), 'vde-ts-vhostfront');
    const bin = join(dir, `vhostfront-${key}`);
    if (existsSync(bin)) return bin;
    mkdirSync(dir, { recursive: true });
    const tmp = `${bin}.${process.pid}`;
    await new Promise<void>((resolve, reject) =>
      execFile(cc!, ['-O2', '-Wall', '-o', tmp, SOURCE], { timeout: COMPILE_TIMEOUT_MS }, (e, _o, err) =>
        e ? reject(new Error(`cannot compile ${SOURCE}: ${err || e.message}`)) : resolve(),
      ),
    );
    renameSync(tmp, bin);
    return bin;
  })();
  return built;
}

/** The checksum vhostfront prints for a frame (sum = sum * 31 + byte, 32 bits). */
export function frameSum(f: Buffer): number {
  let s = 0;
  for (const b of f) s = (Math.imul(s, 31) + b) >>> 0;
  return s;
}

/** The frame vhostfront sends as number `seq` (what make_frame() builds). */
export function frontFrame(dst: string, src: string, bytes: number, seq: number): Buffer {
  const f = Buffer.alloc(bytes);
  Buffer.from(dst.split(':').map((x) => parseInt(x, 16))).copy(f, 0);
  Buffer.from(src.split(':').map((x) => parseInt(x, 16))).copy(f, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  for (let k = 14; k < bytes; k++) f[k] = (k * 7 + seq) & 0xff;
  if (bytes >= 18) f.writeUInt32LE(seq >>> 0, 14);
  return f;
}

/** Runs vhostfront against a vhost-user socket; resolves with what it printed (rejects when it printed nothing usable). */
export async function runFront(sock: string, args: string[], deadlineMs = 20_000): Promise<FrontResult> {
  const bin = await buildVhostFront();
  return new Promise((resolve, reject) => {
    execFile(bin, ['--sock', sock, '--deadline-ms', String(deadlineMs), ...args], { timeout: deadlineMs + KILL_SLACK_MS, maxBuffer: 16 << 20 }, (e, out, err) => {
      const line = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as FrontResult);
      } catch {
        reject(new Error(`vhostfront ${args.join(' ')}: no result (${e?.message ?? ''}) ${out} ${err}`));
      }
    });
  });
}
