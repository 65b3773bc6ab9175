// Debian's vdeterm (package vde2) on our management console, driven through a pseudo-terminal:
// it sends each edited line without a newline (vde2 treats every read as a command), so our
// console must answer `showinfo` typed into it, and `logout` must end it.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTools } from '../helpers/deps.js';
import { startSwitch, tmpdir, type RunningSwitch } from '../helpers/switchproc.js';

const run = promisify(execFile);

// Runs vdeterm on a pty: waits for its prompt, types each command with Enter, waits for the reply.
const DRIVER = `
import os, pty, sys, time, select
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], [sys.argv[1], sys.argv[2]])
out = b''
def read_until(pred, t):
    global out
    end = time.time() + t
    while time.time() < end and not pred():
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                return
read_until(lambda: b']: ' in out, 5)
for cmd in sys.argv[3:]:
    start = len(out)
    os.write(fd, cmd.encode() + b'\\r')
    read_until(lambda: out.count(b']: ', start) >= 1 and (b'Success' in out[start:] or b'rror' in out[start:] or b'END OF SESSION' in out[start:]), 5)
read_until(lambda: False, 0.5)
sys.stdout.write(out.decode('utf8', 'replace'))
try:
    os.kill(pid, 9)
except OSError:
    pass
`;

describe('vdeterm', () => {
  let sw: RunningSwitch;
  let tools: Record<string, string>;
  let driver: string;
  beforeAll(async () => {
    tools = await ensureTools({ vdeterm: 'vde2', python3: 'python3' });
    driver = path.join(tmpdir(), 'drive_vdeterm.py'); // not pty.py: that would shadow the pty module
    fs.writeFileSync(driver, DRIVER);
    sw = await startSwitch();
  });
  afterAll(async () => {
    await sw.stop();
  });

  it('gets answers to commands typed without a newline, and logs out', async () => {
    const r = await run(tools.python3, [driver, tools.vdeterm, sw.mgmt, 'showinfo', 'port/showinfo', 'logout'], { timeout: 30_000 });
    const out = r.stdout;
    expect(out).toContain('VDE switch V.2.3.3');
    expect(out).toMatch(/pid \d+ MAC [0-9a-f:]{17} uptime \d+/);
    expect(out).toMatch(/vde-ts \d+\.\d+\.\d+/);
    expect(out).toContain('Numports=32');
    expect(out).toMatch(/Success/);
  });
});
