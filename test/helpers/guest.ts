/*
 * Tiny QEMU test guest for vde-ts interoperability tests. buildGuest() assembles, from Debian
 * packages only, a kernel (linux-image-cloud-amd64) plus a gzip'ed newc initramfs holding
 * busybox-static, the virtio-net driver stack and a /init script; startGuest()/runGuest() boot it
 * with caller supplied network arguments (e.g. `-netdev vde,...`) and watch its serial console.
 *
 * The guest's job is given on the kernel command line as `vtg.KEY=VALUE` words (values must not
 * contain spaces). In the `cmdline` record of GuestOptions a key without a dot gets the `vtg.`
 * prefix added; a key containing a dot (e.g. `vtg.ip`, `net.ifnames`) is passed verbatim.
 *
 *   vtg.ip=A/P[,A/P...]   static IPv4 address(es) for eth0
 *   vtg.gw=ADDR           default IPv4 route via ADDR
 *   vtg.ip6=A/P[,...]     static IPv6 address(es) (added with nodad; implies vtg.ipv6=1)
 *   vtg.ipv6=1            keep IPv6 enabled on eth0 (default: disabled, to keep the wire quiet)
 *   vtg.mtu=N             eth0 MTU
 *   vtg.dhcp=1            run `udhcpc -i eth0 -q -n` (tries vtg.dhcptries=N times, default 5)
 *   vtg.ping=A[,A...]     ping each target (ping6 for targets containing ':')
 *   vtg.count=N           echo requests per target (default 3)
 *   vtg.interval=S        seconds between requests (default 0.2)
 *   vtg.size=N            ICMP payload bytes (default 56)
 *   vtg.pingmin=N         replies needed for "ok" (default: vtg.count)
 *   vtg.deadline=S        ping -w deadline in seconds (default count*interval+5)
 *   vtg.httpd=PORT        serve /www on PORT with busybox httpd; /www/blob holds random bytes
 *   vtg.httpsize=BYTES    size of /www/blob (default 1048576)
 *   vtg.wget=URL          fetch URL (bounded by vtg.wgettimeout=S, default 30)
 *   vtg.wgetrepeat=N      first fetch vtg.wget N times into /dev/null (benchmarks; default 0)
 *   vtg.sleep=S           stay up S seconds after the jobs (answering pings, serving HTTP)
 *   vtg.nopoweroff=1      do not power off at the end (idle until killed)
 *   vtg.shell=1           after the jobs, a shell on the console (vde_lab's VM command tasks)
 *
 * Console markers (one per line, in this order):
 *   VT-BOOT                         init started
 *   VT-ERROR <text>                 something in the set-up failed (e.g. insmod, no eth0)
 *   VT-UP eth0 <mac>                eth0 is up
 *   VT-DHCP <ip>/<plen> router=<r>  udhcpc got a lease (then VT-RESULT dhcp ok|fail)
 *   VT-ADDR <ip>                    every IPv4 address on eth0 (VT-ADDR6 <ip6> for IPv6)
 *   VT-READY                        network configured, jobs start now
 *   VT-HTTPD-SHA <sha256> / VT-HTTPD-SIZE <n> / VT-RESULT httpd ok|fail
 *   VT-PING <target> tx=<n> rx=<n> rtt=<min>/<avg>/<max>   then VT-RESULT ping ok|fail <target>
 *   VT-WGET-SHA <sha256> / VT-WGET-SIZE <n> / VT-RESULT wget ok|fail
 *   VT-SLEEP <s>                    staying up
 *   VT-DONE                         about to power off
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants as fsConstants,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ensureFile, ensureTools } from './deps.js';
import { defaultCleanup, type Cleanup } from './netns.js';

/** Bump when the initramfs layout changes in a way the script hash does not capture. */
const INITRD_FORMAT_VERSION = 3;
/** Modules whose dependency closure (from modules.dep) goes into the initramfs, in load order. */
const ROOT_MODULES = ['virtio_pci', 'virtio_net'];
/** Upper bound for the cpio run while building the initramfs. */
const CPIO_TIMEOUT_MS = 60_000;
/** Upper bound for decompressing one module. */
const DECOMPRESS_TIMEOUT_MS = 30_000;
/** Unfinished build directories older than this are removed (a crashed run left them). */
const STALE_BUILD_AGE_MS = 60 * 60 * 1000;
/** Cached images of other keys (older code or kernels) older than this are removed. */
const STALE_CACHE_AGE_MS = 24 * 60 * 60 * 1000;
/** Default guest RAM. */
const GUEST_MEMORY_MB = 256;
/** Grace period between SIGTERM and SIGKILL when killing QEMU. */
const KILL_GRACE_MS = 2_000;
/** How much console output is kept in memory (older output is dropped). */
const CONSOLE_MAX_CHARS = 4 * 1024 * 1024;

/** Terminal control sequences (SeaBIOS clears the screen) removed from the captured console. */
const ANSI_ESCAPE_RE = /\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])/g;
/** An escape sequence cut off at the end of a chunk (QEMU's serial often writes byte by byte). */
const ANSI_PARTIAL_RE = /\x1b(\[[0-9;?]*)?$/;
/** NICs whose iPXE option ROM is disabled (saves boot time; the kernel is loaded with -kernel). */
const NO_ROM_NICS = ['virtio-net-pci', 'e1000', 'rtl8139', 'ne2k_pci', 'pcnet', 'e1000e', 'vmxnet3'];

/** Shell script run as /init inside the guest (busybox sh); `@{` stands for the shell's `${`. */
const INIT_SCRIPT = String.raw`#!/bin/busybox sh
# vde-ts test guest init: reads vtg.* job keys from /proc/cmdline, reports VT-* markers on the console.
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /sbin /usr/bin /usr/sbin /www /etc
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
say() { echo "VT-$*"; }
finish() {
  say DONE
  sync
  if [ "$VT_shell" = 1 ]; then while :; do sh; done; fi
  if [ "$VT_nopoweroff" = 1 ]; then while :; do sleep 3600; done; fi
  poweroff -f
  echo o > /proc/sysrq-trigger
  sleep 10
  exit 1
}
echo
say BOOT
for w in $(cat /proc/cmdline); do
  case "$w" in
    vtg.*=*)
      k=@{w%%=*}; k=@{k#vtg.}; v=@{w#*=}
      case "$k" in *[!a-z0-9_]*|'') say "ERROR bad key $k"; continue ;; esac
      eval "VT_$k=\$v" ;;
  esac
done
for m in $(cat /lib/vtg/modules.order); do
  insmod "/lib/vtg/$m" || say "ERROR insmod $m"
done
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 100 ]; do usleep 50000; n=$((n+1)); done
ip link set lo up
if [ ! -e /sys/class/net/eth0 ]; then say "ERROR no eth0"; finish; fi
[ -n "$VT_ip6" ] && VT_ipv6=1
if [ "$VT_ipv6" != 1 ]; then
  for f in /proc/sys/net/ipv6/conf/default/disable_ipv6 /proc/sys/net/ipv6/conf/eth0/disable_ipv6; do
    [ -e $f ] && echo 1 > $f
  done
fi
[ -n "$VT_mtu" ] && { ip link set eth0 mtu "$VT_mtu" || say "ERROR mtu $VT_mtu"; }
ip link set eth0 up
say "UP eth0 $(cat /sys/class/net/eth0/address)"
if [ "$VT_dhcp" = 1 ]; then
  if udhcpc -i eth0 -q -n -t "@{VT_dhcptries:-5}" -T 1 -A 1 -s /etc/udhcpc.script >/tmp/udhcpc.log 2>&1; then
    grep '^VT-' /tmp/udhcpc.log
    say "RESULT dhcp ok"
  else
    cat /tmp/udhcpc.log
    say "RESULT dhcp fail"
  fi
fi
for a in $(echo "$VT_ip" | tr , ' '); do ip addr add "$a" dev eth0 || say "ERROR addr $a"; done
for a in $(echo "$VT_ip6" | tr , ' '); do ip -6 addr add "$a" dev eth0 nodad || say "ERROR addr6 $a"; done
[ -n "$VT_gw" ] && { ip route add default via "$VT_gw" || say "ERROR gw $VT_gw"; }
for a in $(ip -4 -o addr show dev eth0 | awk '{print $4}'); do say "ADDR @{a%/*}"; done
if [ "$VT_ipv6" = 1 ]; then
  for a in $(ip -6 -o addr show dev eth0 | awk '{print $4}'); do say "ADDR6 @{a%/*}"; done
fi
say READY
if [ -n "$VT_httpd" ]; then
  head -c "@{VT_httpsize:-1048576}" /dev/urandom > /www/blob
  say "HTTPD-SHA $(sha256sum /www/blob | cut -d' ' -f1)"
  say "HTTPD-SIZE $(wc -c < /www/blob)"
  if httpd -p "$VT_httpd" -h /www; then say "RESULT httpd ok"; else say "RESULT httpd fail"; fi
fi
count=@{VT_count:-3}
interval=@{VT_interval:-0.2}
pingmin=@{VT_pingmin:-$count}
deadline=@{VT_deadline:-$(awk "BEGIN{print int($count*$interval+5.999)}")}
for t in $(echo "$VT_ping" | tr , ' '); do
  case "$t" in *:*) p=ping6 ;; *) p=ping ;; esac
  $p -c "$count" -i "$interval" -s "@{VT_size:-56}" -W 1 -w "$deadline" "$t" > /tmp/ping.out 2>&1
  tx=$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' /tmp/ping.out)
  rx=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/ping.out)
  rtt=$(sed -n 's#.*min/avg/max = \([0-9./]*\).*#\1#p' /tmp/ping.out)
  say "PING $t tx=@{tx:-0} rx=@{rx:-0} rtt=@{rtt:--}"
  if [ "@{rx:-0}" -ge "$pingmin" ] && [ "@{rx:-0}" -gt 0 ]; then say "RESULT ping ok $t"; else cat /tmp/ping.out; say "RESULT ping fail $t"; fi
done
if [ -n "$VT_wget" ]; then
  n=@{VT_wgetrepeat:-0}
  while [ "$n" -gt 0 ]; do timeout "@{VT_wgettimeout:-30}" wget -q -O /dev/null "$VT_wget"; n=$((n-1)); done
  rm -f /tmp/wget.out
  if timeout "@{VT_wgettimeout:-30}" wget -q -O /tmp/wget.out "$VT_wget"; then
    say "WGET-SHA $(sha256sum /tmp/wget.out | cut -d' ' -f1)"
    say "WGET-SIZE $(wc -c < /tmp/wget.out)"
    say "RESULT wget ok"
  else
    say "RESULT wget fail"
  fi
fi
if [ -n "$VT_sleep" ]; then say "SLEEP $VT_sleep"; sleep "$VT_sleep"; fi
finish
`.replaceAll('@{', '${');

/** udhcpc event script: configures the lease with `ip` and reports it; `@{` stands for `${`. */
const UDHCPC_SCRIPT = String.raw`#!/bin/sh
# busybox udhcpc event script for the vde-ts test guest
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/@{mask:-24}" dev "$interface"
    r=""
    for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    echo "VT-DHCP $ip/@{mask:-24} router=@{r:--}"
    ;;
esac
exit 0
`.replaceAll('@{', '${');

/** Kernel and initramfs paths produced by buildGuest(). */
export interface GuestImage {
  kernel: string;
  initrd: string;
}

/** Options for startGuest()/runGuest(). */
export interface GuestOptions {
  /** Extra QEMU arguments for the network, e.g. ['-netdev','vde,id=n0,sock=/tmp/sw','-device','virtio-net-pci,netdev=n0']. */
  netdev: string[];
  /** Guest job (see the key list at the top of this file); keys without a dot get the `vtg.` prefix. */
  cmdline: Record<string, string | number>;
  /** Hard limit for the guest's life; QEMU is killed when it is reached. */
  timeoutMs: number;
  /** Guest RAM in MiB (default 256). */
  memoryMb?: number;
  /** Further raw QEMU arguments. */
  extraQemuArgs?: string[];
  /** Acceleration: 'auto' (default: KVM when /dev/kvm is usable, env VT_GUEST_ACCEL overrides), 'kvm' or 'tcg'. */
  accel?: 'auto' | 'kvm' | 'tcg';
  /** Mirror the console to process.stderr (also enabled by env VT_GUEST_ECHO=1). */
  echo?: boolean;
  /** Registry that kills QEMU by PID if the test forgets to (default: netns.ts defaultCleanup). */
  cleanup?: Cleanup;
}

/** A running guest. */
export interface GuestHandle {
  /** The QEMU process. */
  child: ChildProcess;
  /** QEMU's PID. */
  pid: number;
  /** Console output so far (\r and terminal escape sequences removed). */
  output(): string;
  /** Resolves with the first match of `re` in the console output; rejects after `ms` or when QEMU exits first. */
  waitFor(re: RegExp, ms: number): Promise<RegExpMatchArray>;
  /** Resolves when QEMU has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Kills QEMU by PID (SIGTERM, then SIGKILL) and waits for it to exit. */
  kill(): Promise<void>;
  /** True once the timeoutMs hard limit fired and QEMU was killed. */
  timedOut(): boolean;
}

/** Result of runGuest(). */
export interface GuestResult {
  /** Console output (\r and terminal escape sequences removed). */
  output: string;
  /** QEMU exit status (0 after the guest's poweroff); null when it was killed at timeoutMs or by a signal. */
  code: number | null;
  /** True when the guest did not power off within timeoutMs. */
  timedOut: boolean;
}

/** Parsed VT-* markers of a guest console log. */
export interface GuestReport {
  boot: boolean;
  ready: boolean;
  done: boolean;
  mac: string | null;
  addrs: string[];
  pings: { target: string; tx: number; rx: number; rtt: string; ok: boolean }[];
  wgetSha: string | null;
  httpdSha: string | null;
  errors: string[];
}

/** Runs a program (no shell) with a time limit; resolves with stdout as a Buffer. */
function run(file: string, args: string[], timeoutMs: number, cwd?: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { cwd, timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'buffer', maxBuffer: 1024 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${file} ${args.join(' ')}: ${err.message}\n${stderr.toString()}`));
        else resolve(stdout);
      },
    );
  });
}

/** Compares dotted/dashed version strings numerically (for picking the newest kernel). */
function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => (/^\d+$/.test(x) ? Number(x) : x));
  const pb = b.split(/[.-]/).map((x) => (/^\d+$/.test(x) ? Number(x) : x));
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? -1;
    const y = pb[i] ?? -1;
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    return String(x) < String(y) ? -1 : 1;
  }
  return 0;
}

/** Returns the newest installed cloud kernel version that also has its modules, or null. */
function findCloudKernel(): string | null {
  let entries: string[];
  try {
    entries = readdirSync('/boot');
  } catch {
    return null;
  }
  const versions = entries
    .map((f) => /^vmlinuz-(.+-cloud-amd64)$/.exec(f)?.[1])
    .filter((v): v is string => v !== undefined && existsSync(`/lib/modules/${v}/modules.dep`))
    .sort(compareVersions);
  return versions.length > 0 ? versions[versions.length - 1]! : null;
}

/** Throws unless `path` is a statically linked ELF executable (no PT_INTERP program header). */
function assertStaticElf(path: string, pkg: string): void {
  const fd = openSync(path, 'r');
  try {
    const hdr = Buffer.alloc(64);
    readSync(fd, hdr, 0, 64, 0);
    if (hdr.readUInt32BE(0) !== 0x7f454c46 || hdr[4] !== 2) throw new Error(`${path} is not a 64-bit ELF file`);
    const phoff = Number(hdr.readBigUInt64LE(0x20));
    const phentsize = hdr.readUInt16LE(0x36);
    const phnum = hdr.readUInt16LE(0x38);
    const ph = Buffer.alloc(phentsize * phnum);
    readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) {
      if (ph.readUInt32LE(i * phentsize) === 3) {
        throw new Error(`${path} is dynamically linked; the guest needs the static one from Debian package ${pkg}`);
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** Returns the module files (relative to /lib/modules/VER) needed for ROOT_MODULES, dependencies first. */
function resolveModules(kver: string): string[] {
  const base = `/lib/modules/${kver}`;
  const deps = new Map<string, string[]>();
  for (const line of readFileSync(join(base, 'modules.dep'), 'utf8').split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (m) deps.set(m[1]!, m[2]!.split(/\s+/).filter(Boolean));
  }
  let builtin = '';
  try {
    builtin = readFileSync(join(base, 'modules.builtin'), 'utf8');
  } catch {
    /* no builtin list: assume nothing is built in */
  }
  const modName = (p: string): string => basename(p).replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
  const builtinNames = new Set(builtin.split('\n').filter(Boolean).map(modName));
  const byName = new Map<string, string>();
  for (const p of deps.keys()) byName.set(modName(p), p);
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (p: string, depth: number): void => {
    if (seen.has(p) || depth > 64) return;
    seen.add(p);
    // modules.dep lists the full closure; visiting recursively gives a valid topological order.
    for (const d of deps.get(p) ?? []) visit(d, depth + 1);
    order.push(p);
  };
  for (const root of ROOT_MODULES) {
    if (builtinNames.has(root)) continue;
    const p = byName.get(root);
    if (p === undefined) throw new Error(`kernel ${kver} has neither a built-in nor a module ${root}`);
    visit(p, 0);
  }
  return order;
}

/** Copies (decompressing .xz/.zst/.gz) a kernel module to `dest` as a plain .ko file. */
async function installModule(src: string, dest: string): Promise<void> {
  if (src.endsWith('.ko')) {
    copyFileSync(src, dest);
  } else if (src.endsWith('.ko.gz')) {
    writeFileSync(dest, gunzipSync(readFileSync(src)));
  } else if (src.endsWith('.ko.xz')) {
    await ensureTools({ xz: 'xz-utils' });
    writeFileSync(dest, await run('xz', ['-dc', src], DECOMPRESS_TIMEOUT_MS));
  } else if (src.endsWith('.ko.zst')) {
    await ensureTools({ zstd: 'zstd' });
    writeFileSync(dest, await run('zstd', ['-dcq', src], DECOMPRESS_TIMEOUT_MS));
  } else {
    throw new Error(`unknown kernel module format: ${src}`);
  }
}

/** Ensures QEMU, busybox-static, cpio and the cloud kernel are installed; returns the kernel version and tool paths. */
async function ensureGuestDeps(): Promise<{ kver: string; busybox: string; qemu: string }> {
  const tools = await ensureTools({
    'qemu-system-x86_64': 'qemu-system-x86',
    busybox: 'busybox-static',
    cpio: 'cpio',
  });
  const kver = await ensureFile(findCloudKernel, 'linux-image-cloud-amd64', 'kernel /boot/vmlinuz-*-cloud-amd64');
  const busybox = tools['busybox']!;
  assertStaticElf(busybox, 'busybox-static');
  return { kver, busybox, qemu: tools['qemu-system-x86_64']! };
}

/** Builds (or reuses from the cache under os.tmpdir()) the guest kernel + initramfs. */
export async function buildGuest(): Promise<GuestImage> {
  const { kver, busybox } = await ensureGuestDeps();
  const kernel = `/boot/vmlinuz-${kver}`;
  const modules = resolveModules(kver);
  const bb = statSync(busybox);
  const key = createHash('sha256')
    .update(
      JSON.stringify([INITRD_FORMAT_VERSION, INIT_SCRIPT, UDHCPC_SCRIPT, modules, bb.size, bb.mtimeMs, kver]),
    )
    .digest('hex')
    .slice(0, 16);
  const cacheRoot = join(tmpdir(), 'vde-ts-guest');
  const cacheDir = join(cacheRoot, `${kver}-${key}`);
  const initrd = join(cacheDir, 'initrd.gz');
  if (existsSync(initrd)) return { kernel, initrd };

  mkdirSync(cacheRoot, { recursive: true });
  pruneCache(cacheRoot, basename(cacheDir));
  const work = join(cacheRoot, `.build-${process.pid}-${randomBytes(4).toString('hex')}`);
  const root = join(work, 'root');
  const out = join(work, 'out');
  try {
    for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'run', 'www', 'lib/vtg']) {
      mkdirSync(join(root, d), { recursive: true });
    }
    mkdirSync(out);
    copyFileSync(busybox, join(root, 'bin/busybox'));
    chmodSync(join(root, 'bin/busybox'), 0o755);
    symlinkSync('busybox', join(root, 'bin/sh'));
    writeFileSync(join(root, 'init'), INIT_SCRIPT, { mode: 0o755 });
    writeFileSync(join(root, 'etc/udhcpc.script'), UDHCPC_SCRIPT, { mode: 0o755 });
    const names: string[] = [];
    for (const rel of modules) {
      const name = basename(rel).replace(/\.ko(\.(xz|zst|gz))?$/, '.ko');
      await installModule(join('/lib/modules', kver, rel), join(root, 'lib/vtg', name));
      names.push(name);
    }
    writeFileSync(join(root, 'lib/vtg/modules.order'), names.join('\n') + '\n');
    const archive = await run(
      'sh',
      [
        '-c',
        'cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet --reproducible',
        'sh',
        root,
      ],
      CPIO_TIMEOUT_MS,
    );
    writeFileSync(join(out, 'initrd.gz'), gzipSync(archive, { level: 6 }));
    writeFileSync(join(out, 'modules.txt'), names.join('\n') + '\n');
    try {
      renameSync(out, cacheDir);
    } catch (e) {
      // A parallel test worker won the race: use its copy.
      const code = (e as NodeJS.ErrnoException).code;
      if ((code !== 'EEXIST' && code !== 'ENOTEMPTY') || !existsSync(initrd)) throw e;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return { kernel, initrd };
}

/** Removes crashed builds and old cache entries under `cacheRoot` (never the entry `keep`). */
function pruneCache(cacheRoot: string, keep: string): void {
  const now = Date.now();
  for (const name of readdirSync(cacheRoot)) {
    if (name === keep) continue;
    const p = join(cacheRoot, name);
    try {
      const age = now - statSync(p).mtimeMs;
      if (age > (name.startsWith('.build-') ? STALE_BUILD_AGE_MS : STALE_CACHE_AGE_MS)) {
        rmSync(p, { recursive: true, force: true });
      }
    } catch {
      /* raced with another worker: ignore */
    }
  }
}

/**
 * Returns true when KVM acceleration is worth using: /dev/kvm opens read-write AND the CPU advertises
 * vmx/svm. (Inside some VMs /dev/kvm exists without vmx/svm; there KVM guests run far slower than TCG.)
 */
export function kvmUsable(): boolean {
  try {
    closeSync(openSync('/dev/kvm', fsConstants.O_RDWR));
  } catch {
    return false;
  }
  try {
    return /^flags\s*:.*\b(vmx|svm)\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

/** Turns a GuestOptions.cmdline record into kernel command-line words. */
function cmdlineWords(cmdline: Record<string, string | number>): string[] {
  return Object.entries(cmdline).map(([k, v]) => {
    const value = String(v);
    if (/\s/.test(value) || /\s|=/.test(k) || value === '') {
      throw new Error(`guest cmdline ${k}=${value}: keys/values must be non-empty and contain no spaces`);
    }
    return `${k.includes('.') ? k : `vtg.${k}`}=${value}`;
  });
}

/** Boots the guest with the given network arguments and returns a handle to its QEMU process. */
export async function startGuest(opts: GuestOptions): Promise<GuestHandle> {
  const image = await buildGuest();
  const { qemu } = await ensureGuestDeps();
  const accelChoice = opts.accel ?? ((process.env.VT_GUEST_ACCEL as 'kvm' | 'tcg' | undefined) || 'auto');
  const useKvm = accelChoice === 'kvm' || (accelChoice === 'auto' && kvmUsable());
  const kernelArgs = ['console=ttyS0', 'panic=-1', 'quiet', 'loglevel=3', 'i8042.noaux', 'i8042.nokbd', 'i8042.nopnp', ...cmdlineWords(opts.cmdline)];
  const args = [
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-display', 'none',
    '-no-reboot',
    '-M', 'pc',
    ...(useKvm ? ['-enable-kvm', '-cpu', 'host'] : ['-accel', 'tcg', '-cpu', 'max']),
    '-smp', '1',
    '-m', `${opts.memoryMb ?? GUEST_MEMORY_MB}M`,
    '-serial', 'stdio',
    ...NO_ROM_NICS.flatMap((nic) => ['-global', `${nic}.romfile=`]),
    '-kernel', image.kernel,
    '-initrd', image.initrd,
    '-append', kernelArgs.join(' '),
    ...opts.netdev,
    ...(opts.extraQemuArgs ?? []),
  ];
  const echo = opts.echo ?? process.env.VT_GUEST_ECHO === '1';
  const child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  (opts.cleanup ?? defaultCleanup).process(child);
  let out = '';
  let dropped = 0;
  const listeners = new Set<() => void>();
  const append = (text: string): void => {
    if (echo) process.stderr.write(text);
    out += text;
    if (out.length > CONSOLE_MAX_CHARS) {
      dropped += out.length - CONSOLE_MAX_CHARS;
      out = out.slice(out.length - CONSOLE_MAX_CHARS);
    }
    for (const l of listeners) l();
  };
  /** Returns a data handler for one output stream that strips \r and escape sequences. */
  const sink = (): ((chunk: Buffer) => void) => {
    let pending = ''; // unfinished escape sequence carried over to the next chunk
    return (chunk: Buffer): void => {
      let text = pending + chunk.toString('latin1');
      pending = '';
      const partial = ANSI_PARTIAL_RE.exec(text);
      if (partial && partial[0].length < 32) {
        pending = partial[0];
        text = text.slice(0, partial.index);
      }
      append(text.replace(ANSI_ESCAPE_RE, '').replace(/\r/g, ''));
    };
  };
  child.stdout!.on('data', sink());
  child.stderr!.on('data', sink());

  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('error', (err) => {
      append(`\n[qemu spawn error: ${err.message}]\n`);
      exitInfo = { code: null, signal: null };
      resolve(exitInfo);
      for (const l of listeners) l();
    });
    // 'close' (not 'exit') so that all console output has been read when `exited` resolves.
    child.on('close', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
      for (const l of listeners) l();
    });
  });
  const pid = child.pid ?? -1;

  const kill = async (): Promise<void> => {
    if (exitInfo !== null || pid <= 0) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const t = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, KILL_GRACE_MS);
    // Bounded: a process that survives SIGKILL for this long is reported by the caller's own timeout.
    await Promise.race([exited, new Promise((r) => setTimeout(r, 3 * KILL_GRACE_MS))]);
    clearTimeout(t);
  };
  let timedOut = false;
  const hardLimit = setTimeout(() => {
    timedOut = true;
    append(`\n[vde-ts: guest timeout after ${opts.timeoutMs} ms, killing qemu pid ${pid}]\n`);
    void kill();
  }, opts.timeoutMs);
  void exited.then(() => clearTimeout(hardLimit));

  const waitFor = (re: RegExp, ms: number): Promise<RegExpMatchArray> =>
    new Promise((resolve, reject) => {
      const plain = new RegExp(re.source, re.flags.replace('g', '').replace('y', ''));
      let timer: NodeJS.Timeout | undefined;
      const check = (): void => {
        const m = plain.exec(out);
        if (m) {
          done();
          resolve(m);
        } else if (exitInfo !== null) {
          done();
          reject(new Error(`guest exited (code ${exitInfo.code}, signal ${exitInfo.signal}) before ${re}; console:\n${tail(out)}`));
        }
      };
      const done = (): void => {
        listeners.delete(check);
        if (timer) clearTimeout(timer);
      };
      timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${ms} ms waiting for ${re} on the guest console:\n${tail(out)}`));
      }, ms);
      listeners.add(check);
      check();
    });

  return {
    child,
    pid,
    output: () => (dropped > 0 ? `[... ${dropped} chars dropped ...]\n` : '') + out,
    waitFor,
    exited,
    kill,
    timedOut: () => timedOut,
  };
}

/** Last part of a console log, for error messages. */
function tail(s: string, chars = 3000): string {
  return s.length > chars ? `...${s.slice(-chars)}` : s;
}

/** Boots the guest, waits until it powers off (or kills it at timeoutMs) and returns its console output. */
export async function runGuest(opts: GuestOptions): Promise<GuestResult> {
  const g = await startGuest(opts);
  const { code } = await g.exited;
  // QEMU exits with status 0 on SIGTERM too, so report null when it had to be killed.
  const timedOut = g.timedOut();
  return { output: g.output(), code: timedOut ? null : code, timedOut };
}

/** Extracts the VT-* markers from a guest console log. */
export function parseGuestOutput(output: string): GuestReport {
  const lines = output.split('\n');
  const report: GuestReport = {
    boot: false,
    ready: false,
    done: false,
    mac: null,
    addrs: [],
    pings: [],
    wgetSha: null,
    httpdSha: null,
    errors: [],
  };
  for (const raw of lines) {
    const line = raw.trim();
    let m: RegExpExecArray | null;
    if (line === 'VT-BOOT') report.boot = true;
    else if (line === 'VT-READY') report.ready = true;
    else if (line === 'VT-DONE') report.done = true;
    else if ((m = /^VT-UP eth0 (\S+)/.exec(line))) report.mac = m[1]!;
    else if ((m = /^VT-ADDR6? (\S+)/.exec(line))) report.addrs.push(m[1]!);
    else if ((m = /^VT-WGET-SHA ([0-9a-f]{64})/.exec(line))) report.wgetSha = m[1]!;
    else if ((m = /^VT-HTTPD-SHA ([0-9a-f]{64})/.exec(line))) report.httpdSha = m[1]!;
    else if ((m = /^VT-ERROR (.*)/.exec(line))) report.errors.push(m[1]!);
    else if ((m = /^VT-PING (\S+) tx=(\d+) rx=(\d+) rtt=(\S+)/.exec(line))) {
      report.pings.push({ target: m[1]!, tx: Number(m[2]), rx: Number(m[3]), rtt: m[4]!, ok: false });
    } else if ((m = /^VT-RESULT ping (ok|fail) (\S+)/.exec(line))) {
      const target = m[2]!;
      const ok = m[1] === 'ok';
      const entry = [...report.pings].reverse().find((p) => p.target === target);
      if (entry) entry.ok = ok;
    }
  }
  return report;
}
