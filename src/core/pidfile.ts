/**
 * The one pidfile implementation of vde_switch, vde_plug and slirpvde (`-p FILE`). The file is
 * created exclusively and holds `<pid>\n`. An existing file is replaced only when it names a
 * process that is gone; a file that holds no process id, or names a running process, is refused
 * and left alone. At exit the file is removed only if it is still the one this process wrote.
 */
import fs from 'node:fs';
import path from 'node:path';
import { log } from './log.js';
import { OwnedPath } from './sockpath.js';

function describeError(file: string, e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return `pidfile ${file}: the directory ${path.dirname(file)} does not exist`;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return `pidfile ${file}: cannot write there (${code === 'EROFS' ? 'read-only file system' : 'permission denied'})`;
  if (code === 'EISDIR') return `pidfile ${file}: is a directory`;
  return `pidfile ${file}: ${(e as Error).message}`;
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A pidfile this process wrote. */
export class PidFile {
  private owned: OwnedPath | null = null;

  private constructor(
    readonly path: string,
    private readonly pid: number,
  ) {}

  /**
   * Writes the pidfile (path resolved against the current directory). Throws one line naming
   * the file when it cannot be written, holds something else than a process id, or names a
   * running process.
   */
  static create(file: string, pid = process.pid): PidFile {
    const abs = path.resolve(file);
    const p = new PidFile(abs, pid);
    try {
      fs.writeFileSync(abs, `${pid}\n`, { flag: 'wx', mode: 0o644 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(describeError(abs, e));
      let text: string;
      try {
        const st = fs.lstatSync(abs);
        if (!st.isFile()) throw new Error(`pidfile ${abs} exists and is not a regular file`);
        text = fs.readFileSync(abs, 'utf8');
      } catch (e2) {
        if (e2 instanceof Error && e2.message.startsWith('pidfile ')) throw e2;
        throw new Error(describeError(abs, e2));
      }
      if (!/^\s*\d+\s*$/.test(text)) throw new Error(`pidfile ${abs} exists and does not hold a process id; remove it or choose another file`);
      const old = parseInt(text, 10);
      if (old > 0 && running(old)) throw new Error(`pidfile ${abs} exists and process ${old} is running`);
      log('info', `replacing stale pidfile ${abs} (process ${old} is gone)`);
      try {
        fs.rmSync(abs);
        fs.writeFileSync(abs, `${pid}\n`, { flag: 'wx', mode: 0o644 });
      } catch (e3) {
        throw new Error(describeError(abs, e3));
      }
    }
    p.owned = OwnedPath.record(abs);
    return p;
  }

  /** Removes the file if it is still the one written by create(). */
  remove(): void {
    try {
      if (!this.owned?.stillOurs() || parseInt(fs.readFileSync(this.path, 'utf8'), 10) !== this.pid) return;
      fs.rmSync(this.path);
    } catch {
      /* already gone */
    }
  }
}
