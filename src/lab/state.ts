/**
 * A lab's run directory and the state file in it. The run directory holds every socket,
 * pidfile-like record and log of a running lab, so `vde_lab down NAME` works from a fresh shell:
 * `$VDE_LAB_DIR/NAME`, else `/run/vde_lab/NAME` as root, else `$XDG_RUNTIME_DIR/vde_lab/NAME`
 * or `/tmp/vde_lab-UID/NAME`. state.json records each resource before it is created (a
 * namespace name, a tap name) or as soon as it exists (a PID), so a teardown after Ctrl-C or a
 * crash finds everything.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LabConfig } from './config.js';

/** What runs for a switch. */
export interface SwitchRec { pid: number; dir: string; mgmt: string }
/** What exists for a host. */
export interface HostRec { netns: string; startupPid?: number; holderPid?: number }
/** What exists for a link. */
export interface LinkRec {
  pids: number[]; mgmts: string[]; taps: string[]; port?: number; down: boolean; ab: string; ba: string;
  capturePid?: number; captureFile?: string;
}
/** What runs for a NAT. */
export interface NatRec { pid: number; mgmt: string }
/** What runs for a VM. */
export interface VmRec { pid: number | null; monitor: string; serial: string; port: number; plugPid?: number }
/** The state file of a lab. */
export interface LabState {
  version: 1;
  name: string;
  /** Short id that makes interface and namespace names of this lab unique. */
  id: string;
  dir: string;
  file: string | null;
  privileged: boolean;
  /** The configuration applied (null while a first `up` has not finished). */
  config: LabConfig | null;
  switches: Record<string, SwitchRec>;
  hosts: Record<string, HostRec>;
  links: Record<string, LinkRec>;
  nat: Record<string, NatRec>;
  vms: Record<string, VmRec>;
  tapSeq: number;
  /** Unprivileged: the process holding the lab's user and network namespaces. */
  labPid?: number;
  /** Set when `up` began; the web view and status show it. */
  startedMs: number;
}

/** True when running as root of the initial user namespace (not as root of a user namespace). */
export function isPrivileged(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    return /^\s*0\s+0\s+4294967295\s*$/.test(fs.readFileSync('/proc/self/uid_map', 'utf8'));
  } catch {
    return true;
  }
}

/** The directory that holds the run directories of all labs. */
export function labsRoot(): string {
  if (process.env.VDE_LAB_DIR) return path.resolve(process.env.VDE_LAB_DIR);
  if (isPrivileged()) return '/run/vde_lab';
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (xdg && fs.existsSync(xdg)) return path.join(xdg, 'vde_lab');
  return path.join(os.tmpdir(), `vde_lab-${process.getuid?.() ?? 'user'}`);
}

/** The run directory of lab NAME. */
export function runDir(name: string): string {
  return path.join(labsRoot(), name);
}

/** Reads the state of lab NAME, or null when it is not up. */
export function readState(name: string): LabState | null {
  try {
    return JSON.parse(fs.readFileSync(path.join(runDir(name), 'state.json'), 'utf8')) as LabState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`${path.join(runDir(name), 'state.json')}: ${(e as Error).message}`);
  }
}

/** Writes the state atomically. */
export function writeState(s: LabState): void {
  const f = path.join(s.dir, 'state.json');
  fs.writeFileSync(`${f}.tmp`, JSON.stringify(s, null, 1), { mode: 0o600 });
  fs.renameSync(`${f}.tmp`, f);
}

/** A new, empty state with its run directory created. */
export function newState(name: string, file: string | null): LabState {
  const dir = runDir(name);
  // as root, daemons of other users in a host (FRR) reach their node's directory: 0711 on the way
  fs.mkdirSync(labsRoot(), { recursive: true, mode: isPrivileged() ? 0o711 : 0o700 });
  if (isPrivileged() && (fs.statSync(labsRoot()).mode & 0o111) !== 0o111) fs.chmodSync(labsRoot(), fs.statSync(labsRoot()).mode | 0o011);
  fs.mkdirSync(dir, { recursive: false, mode: 0o700 });
  // unique among labs running at the same time: derived from the run directory and the time
  const id = crypto.createHash('sha1').update(`${dir}\0${process.pid}\0${Date.now()}\0${Math.random()}`).digest('hex').slice(0, 5);
  const s: LabState = { version: 1, name, id, dir, file, privileged: isPrivileged(), config: null, switches: {}, hosts: {}, links: {}, nat: {}, vms: {}, tapSeq: 0, startedMs: Date.now() };
  writeState(s);
  return s;
}

/** Names of the labs that have a run directory. */
export function listLabs(): string[] {
  try {
    return fs.readdirSync(labsRoot()).filter((n) => fs.existsSync(path.join(labsRoot(), n, 'state.json'))).sort();
  } catch {
    return [];
  }
}
