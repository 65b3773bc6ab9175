/**
 * crypt://KEYFILE[pass/kid=N/cipher=C]{INNER}: an authenticated encrypted cable ("vde-ts crypt
 * v1", native/src/crypt_proto.h) over any datagram locator (udp://, dgram://, ptp://: one record
 * per datagram) or stream locator (stream://, stdio://, cmd://: records behind a 4-byte length),
 * so `vde_plug`, dpipe/ssh cables and TCP cables can carry it. This module opens INNER, reads the
 * keys and hands both to the native endpoint, which seals and opens every frame on the engine
 * thread with OpenSSL's libcrypto.
 *
 * The key file holds `KEYID HEX` lines (64 hex digits: 32 bytes, KEYID 0..255, `#` comments);
 * the first key sends and every key is accepted, so keys rotate without dropping the cable (add
 * the new key second on both ends, then move it first, then remove the old one). A file with a
 * single bare HEX key is key id 1. With `pass` the file's first line is a passphrase, stretched
 * with scrypt (N=2^15, r=8, p=1, salt "vde-ts crypt v1") into the key `kid=` (default 1). Like
 * ssh with its private keys, a key file that others may read is refused. The file is watched:
 * when it changes, the new keys replace the old ones in the running cable; a file that no longer
 * parses is reported and ignored.
 */
import { scrypt } from 'node:crypto';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { log } from '../../core/log.js';
import { EpKind, native, sys } from '../../native/index.js';
import { releaseEndpoint } from '../attach.js';
import type { OpenedEndpoint, OpenOptions } from '../endpoint.js';
import { formatLocator, type CryptLocator, type Locator } from '../vnl.js';

/** Bytes of a key. */
export const CRYPT_KEY_BYTES = 32;
/** Key ids a key file may hold at most (the native endpoint's limit). */
export const MAX_CRYPT_KEYS = 16;
/** Key id of a single bare key, and of a passphrase without kid=. */
export const DEFAULT_CRYPT_KID = 1;
/** How often the key file is checked for changes, in milliseconds. */
export const KEY_FILE_POLL_MS = 1000;
/** scrypt parameters for passphrases: cost (N), block size (r), parallelism (p), and its salt. */
export const SCRYPT_COST = 1 << 15;
export const SCRYPT_BLOCK_SIZE = 8;
export const SCRYPT_PARALLELISM = 1;
export const SCRYPT_SALT = 'vde-ts crypt v1';
/** Shortest passphrase accepted, in characters. */
export const MIN_PASSPHRASE_CHARS = 12;
/** Largest key file read, in bytes. */
const MAX_KEY_FILE_BYTES = 64 * 1024;
const SCRYPT_MAXMEM_BYTES = 256 * 1024 * 1024;

const scryptAsync = promisify(scrypt) as (pw: string, salt: string, len: number, o: object) => Promise<Buffer>;

/** One key of a cable. */
export interface CryptKeyEntry {
  id: number;
  key: Buffer;
}

/** The keys of a cable: every key is accepted, sendKey seals. */
export interface CryptKeys {
  keys: CryptKeyEntry[];
  sendKey: number;
}

/** Counters of a crypt endpoint (cryptStats). */
export interface CryptStats {
  rxFrames: number;
  txFrames: number;
  malformed: number;
  unknownKey: number;
  badAuth: number;
  noSession: number;
  replayed: number;
  helloReceived: number;
  helloSent: number;
  handshakes: number;
  rotations: number;
  txNoSession: number;
  established: boolean;
}

interface CryptAddon {
  createCrypt?: (o: object) => { handle: unknown; control: unknown };
  cryptSetKeys?: (control: unknown, keys: CryptKeyEntry[], sendKey: number) => void;
  cryptStats?: (control: unknown) => CryptStats;
}

/** Parses a key file's text: `KEYID HEX` lines or one bare HEX key; throws naming the line. */
export function parseKeyFile(text: string, name: string): CryptKeys {
  const keys: CryptKeyEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/#.*$/, '').trim();
    if (line === '') continue;
    const words = line.split(/\s+/);
    const where = `${name}:${i + 1}`;
    let id: number;
    let hex: string;
    if (words.length === 1) {
      if (keys.length > 0) throw new Error(`${where}: a key without a key id (write "KEYID HEX" on every line when there are several keys)`);
      [id, hex] = [DEFAULT_CRYPT_KID, words[0]];
    } else if (words.length === 2) {
      // the first word is shown only when it is a number: a line written "HEX KEYID" must not put key digits in a log
      if (!/^\d{1,3}$/.test(words[0]) || Number(words[0]) > 255) {
        throw new Error(`${where}: ${/^\d{1,12}$/.test(words[0]) ? `key id "${words[0]}"` : 'the key id (the first word)'} is not a number 0..255`);
      }
      [id, hex] = [Number(words[0]), words[1]];
    } else {
      throw new Error(`${where}: expected "KEYID HEX" (2 words), got ${words.length}`);
    }
    if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new Error(`${where}: a key is 64 hex digits (32 bytes); make one with: openssl rand -hex 32`);
    if (keys.some((k) => k.id === id)) throw new Error(`${where}: key id ${id} is given twice`);
    if (words.length === 1 && lines.slice(i + 1).some((l) => l.replace(/#.*$/, '').trim() !== '')) throw new Error(`${where}: a key without a key id must be the only key`);
    keys.push({ id, key: Buffer.from(hex, 'hex') });
  }
  if (keys.length === 0) throw new Error(`${name}: no key in the file`);
  if (keys.length > MAX_CRYPT_KEYS) throw new Error(`${name}: ${keys.length} keys (at most ${MAX_CRYPT_KEYS})`);
  return { keys, sendKey: keys[0].id };
}

/** Derives the key of a passphrase (scrypt through OpenSSL). */
export async function passphraseKey(passphrase: string, name: string): Promise<Buffer> {
  if ([...passphrase].length < MIN_PASSPHRASE_CHARS) throw new Error(`${name}: the passphrase is shorter than ${MIN_PASSPHRASE_CHARS} characters`);
  return scryptAsync(passphrase, SCRYPT_SALT, CRYPT_KEY_BYTES, { N: SCRYPT_COST, r: SCRYPT_BLOCK_SIZE, p: SCRYPT_PARALLELISM, maxmem: SCRYPT_MAXMEM_BYTES });
}

/** Reads the keys a crypt locator names (checking the file's permissions); throws naming the file. */
export async function readCryptKeys(loc: CryptLocator): Promise<CryptKeys> {
  const file = loc.keyFile;
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new Error(`key file ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : (e as Error).message}`);
  }
  if (!st.isFile()) throw new Error(`key file ${file}: not a regular file`);
  if (st.mode & 0o077) throw new Error(`key file ${file}: others may read it (mode 0${(st.mode & 0o777).toString(8)}): chmod 600 ${file}`);
  if (st.size > MAX_KEY_FILE_BYTES) throw new Error(`key file ${file}: larger than ${MAX_KEY_FILE_BYTES} bytes`);
  const text = fs.readFileSync(file, 'utf8');
  if (!loc.passphrase) return parseKeyFile(text, `key file ${file}`);
  const pass = text.split('\n')[0].replace(/\r$/, '');
  const id = loc.kid ?? DEFAULT_CRYPT_KID;
  return { keys: [{ id, key: await passphraseKey(pass, `key file ${file}`) }], sendKey: id };
}

function addon(name: string): Required<CryptAddon> {
  const a = native() as unknown as CryptAddon;
  if (typeof a.createCrypt !== 'function' || typeof a.cryptSetKeys !== 'function' || typeof a.cryptStats !== 'function') {
    throw new Error(`${name}: the native addon was built without crypt support: run "npm run build"`);
  }
  return a as Required<CryptAddon>;
}

/** Opens a crypt:// endpoint: its keys, then INNER, then the native endpoint over INNER's fds. */
export async function openCrypt(loc: CryptLocator, o: OpenOptions, openAny: (l: Locator, o: OpenOptions) => Promise<OpenedEndpoint>): Promise<OpenedEndpoint> {
  const name = formatLocator(loc);
  const a = addon(name);
  let keys: CryptKeys;
  try {
    keys = await readCryptKeys(loc);
  } catch (e) {
    throw new Error(`${name}: ${(e as Error).message}`);
  }
  const inner = await openAny(loc.inner, o);
  let created: { handle: unknown; control: unknown };
  try {
    const stream = inner.kind === EpKind.Stream2 || inner.kind === EpKind.Stream4;
    if (inner.custom !== undefined || !(stream || inner.kind === EpKind.Dgram) || inner.fd < 0) {
      throw new Error(`${name}: crypt:// runs over a datagram or stream locator (udp, dgram, ptp, stream, stdio, cmd), not over ${loc.inner.kind}://`);
    }
    created = sys(name, () =>
      a.createCrypt({
        fd: inner.fd,
        ...(inner.txFd !== undefined && inner.txFd !== inner.fd ? { txFd: inner.txFd } : {}),
        stream,
        adoptPeer: inner.adoptPeer ?? false,
        closeFds: inner.fd > 2,
        offload: o.offload !== false, // 64 KiB segments as SEG records where the transport carries them
        suite: loc.cipher ?? 'chacha20-poly1305',
        keys: keys.keys,
        sendKey: keys.sendKey,
        ...(loc.rekeySeconds !== undefined ? { rekeySeconds: loc.rekeySeconds } : {}),
      }),
    );
  } catch (e) {
    releaseEndpoint(inner);
    throw e;
  }
  const { handle, control } = created;
  // the key file is watched: a rotation needs no restart
  const file = loc.keyFile;
  let busy = false;
  const onChange = (cur: fs.Stats, prev: fs.Stats): void => {
    if (busy || (cur.mtimeMs === prev.mtimeMs && cur.size === prev.size && cur.ino === prev.ino)) return;
    busy = true;
    void (async () => {
      try {
        const k = await readCryptKeys(loc);
        a.cryptSetKeys(control, k.keys, k.sendKey);
        log('info', `${name}: keys now ${k.keys.map((x) => x.id).join(', ')} (sending with ${k.sendKey})`);
      } catch (e) {
        log('error', `${name}: key file not applied, the previous keys stay: ${(e as Error).message}`);
      } finally {
        busy = false;
      }
    })();
  };
  fs.watchFile(file, { interval: KEY_FILE_POLL_MS, persistent: false }, onChange);
  return {
    fd: -1,
    kind: EpKind.Custom,
    maxFrameBytes: inner.maxFrameBytes,
    name,
    custom: handle,
    onLost: (cb) => inner.onLost(cb),
    close: () => {
      fs.unwatchFile(file, onChange);
      inner.close();
    },
    info: () => a.cryptStats(control),
  };
}
