/**
 * Drives a real `vde_plug` (Debian vdeplug4, or any command speaking the 2-byte length stream
 * on stdin/stdout) from a test: writes frames with the 2-byte big-endian length framing and
 * parses the frames it prints. Killed by PID on close.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export class StdioPlug {
  private buf = Buffer.alloc(0);
  private frames: Buffer[] = [];
  readonly proc: ChildProcess;
  stderr = '';

  constructor(cmd: string, args: string[]) {
    this.proc = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 2) {
        const n = this.buf.readUInt16BE(0);
        if (this.buf.length < 2 + n) break;
        this.frames.push(this.buf.subarray(2, 2 + n));
        this.buf = this.buf.subarray(2 + n);
      }
    });
    this.proc.stderr!.on('data', (d) => (this.stderr += d));
    this.proc.stdin!.on('error', () => {});
  }

  /** Sends one frame. */
  send(f: Buffer): void {
    const h = Buffer.alloc(2);
    h.writeUInt16BE(f.length);
    this.proc.stdin!.write(Buffer.concat([h, f]));
  }

  /** Waits for the next frame (null after timeoutMs). */
  async recv(timeoutMs = 2000): Promise<Buffer | null> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const f = this.frames.shift();
      if (f) return f;
      if (this.proc.exitCode !== null) return null;
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.frames.shift() ?? null;
  }

  /** Waits for a frame whose source MAC is src (hex without colons), skipping others. */
  async recvFrom(srcHex: string, timeoutMs = 2000): Promise<Buffer | null> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      const f = await this.recv(end - Date.now());
      if (!f) return null;
      if (f.subarray(6, 12).toString('hex') === srcHex) return f;
    }
    return null;
  }

  /** Kills the process (by PID) and waits for it. */
  async close(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode) return;
    const done = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGTERM');
    await done;
  }
}
