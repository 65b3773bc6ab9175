/*
 * A private sshd for cable tests: `ssh root@127.0.0.1 vde_plug DIR` as users lay ssh cables,
 * on a loopback port of the caller's choice, with keys made for the test and removed after it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { run, pollUntil, type Cleanup } from './netns.js';
import { listening, start, type Proc } from './procs.js';
import { tmpdir } from './switchproc.js';

/** How long sshd may take to listen. */
const LISTEN_TIMEOUT_MS = 10_000;

/** A running private sshd. */
export interface Sshd {
  proc: Proc;
  /** ssh client argv up to and including the destination; append the remote command. */
  client: string[];
}

/**
 * Starts a private sshd on 127.0.0.1:port with throw-away host and client keys (root logs in by
 * key only) and checks that the client gets in. tools maps sshd, ssh and ssh-keygen to their
 * paths (ensureTools).
 */
export async function startSshd(cleanup: Cleanup, tools: Record<string, string>, port: number): Promise<Sshd> {
  const dir = cleanup.path(tmpdir('vdets-ssh-'));
  const hostKey = path.join(dir, 'host_ed25519');
  const clientKey = path.join(dir, 'client_ed25519');
  for (const k of [hostKey, clientKey]) await run([tools['ssh-keygen']!, '-q', '-t', 'ed25519', '-N', '', '-C', 'vde-ts test', '-f', k]);
  const authorized = path.join(dir, 'authorized_keys');
  fs.copyFileSync(`${clientKey}.pub`, authorized);
  const config = path.join(dir, 'sshd_config');
  fs.writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      'PermitRootLogin prohibit-password',
      `AuthorizedKeysFile ${authorized}`,
      'StrictModes no',
      'UsePAM no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PrintMotd no',
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      '',
    ].join('\n'),
  );
  // sshd refuses to start without its privilege separation directory (created by the ssh
  // service on a normal host). It is the package's runtime directory, not test state, and a
  // parallel run may be using it: it is left in place.
  if (!fs.existsSync('/run/sshd')) fs.mkdirSync('/run/sshd', { mode: 0o755 });
  if (listening(port)) throw new Error(`TCP port ${port} is already in use`);
  const proc = start(cleanup, [tools.sshd!, '-D', '-e', '-f', config], 'sshd');
  await pollUntil(() => proc.p.exitCode !== null || listening(port), LISTEN_TIMEOUT_MS, `sshd on port ${port}`);
  if (proc.p.exitCode !== null) throw new Error(`sshd exited: ${proc.out()}`);
  const client = [
    tools.ssh!,
    '-F', '/dev/null',
    '-i', clientKey,
    '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'BatchMode=yes',
    '-o', 'LogLevel=ERROR',
    '-o', 'ConnectTimeout=5',
    '-e', 'none',
    '-p', String(port),
    'root@127.0.0.1',
  ];
  const probe = await run([...client, 'echo', 'ssh-ok'], { check: false, timeoutMs: 20_000 });
  if (!/ssh-ok/.test(probe.stdout)) throw new Error(`ssh to the test sshd failed: ${probe.stderr}${proc.out()}`);
  return { proc, client };
}
