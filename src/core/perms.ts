/**
 * vde2's permission rules for the switch directory and its sockets (PROTOCOL.md §1.6), and the
 * user/group look-ups behind per-port access control (`port/setuser`, `port/setgroup`). Pure
 * functions over /etc/passwd and /etc/group so they work without native helpers.
 */
import fs from 'node:fs';

export const DEFAULT_SOCK_MODE = 0o600;
export const DEFAULT_DIR_MODE = 0o2700;
export const DEFAULT_MGMT_MODE = 0o600;

/** Derives the directory and socket modes from the -m / --dirmode options as vde2 does. */
export function deriveModes(mode?: number, dirmode?: number): { mode: number; dirmode: number } {
  if (mode === undefined && dirmode === undefined) return { mode: DEFAULT_SOCK_MODE, dirmode: DEFAULT_DIR_MODE };
  if (mode !== undefined && dirmode === undefined) {
    let d = 0o2000;
    for (const shift of [6, 3, 0]) {
      const cls = (mode >> shift) & 0o7;
      if (cls & 0o6) d |= ((cls & 0o6) | 0o1) << shift;
    }
    return { mode, dirmode: d };
  }
  if (mode === undefined) return { mode: dirmode! & 0o666, dirmode: dirmode! };
  return { mode, dirmode: dirmode! };
}

/** Parses an octal mode string ("0660", "660"); returns undefined if it is not one. */
export function parseOctal(s: string): number | undefined {
  if (!/^0?[0-7]{1,4}$/.test(s.trim())) return undefined;
  return parseInt(s.trim(), 8);
}

interface PwEntry { name: string; uid: number; gid: number }
interface GrEntry { name: string; gid: number; members: string[] }

function readLines(file: string): string[][] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
  } catch {
    return [];
  }
}

function passwd(): PwEntry[] {
  return readLines('/etc/passwd').filter((f) => f.length >= 4).map((f) => ({ name: f[0], uid: Number(f[2]), gid: Number(f[3]) }));
}

function groups(): GrEntry[] {
  return readLines('/etc/group').filter((f) => f.length >= 3).map((f) => ({ name: f[0], gid: Number(f[2]), members: (f[3] ?? '').split(',').filter(Boolean) }));
}

/** Resolves a user name or numeric uid; undefined if unknown. */
export function lookupUser(s: string): number | undefined {
  if (/^\d+$/.test(s)) return Number(s);
  return passwd().find((p) => p.name === s)?.uid;
}

/** Resolves a group name or numeric gid; undefined if unknown. */
export function lookupGroup(s: string): number | undefined {
  if (/^\d+$/.test(s)) return Number(s);
  return groups().find((g) => g.name === s)?.gid;
}

/** Returns the user name of a uid, or the number as a string. */
export function userName(uid: number): string {
  return passwd().find((p) => p.uid === uid)?.name ?? String(uid);
}

/** Returns the group name of a gid, or the number as a string. */
export function groupName(gid: number): string {
  return groups().find((g) => g.gid === gid)?.name ?? String(gid);
}

/** True if uid belongs to gid (primary or supplementary group). */
export function userInGroup(uid: number, gid: number): boolean {
  const pw = passwd().find((p) => p.uid === uid);
  if (!pw) return false;
  if (pw.gid === gid) return true;
  return groups().some((g) => g.gid === gid && g.members.includes(pw.name));
}
