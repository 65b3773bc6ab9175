// crypt:// with real processes and real tools:
//  - tcpdump on the underlay (a veth between two network namespaces) never sees the payload of
//    ping (-p PATTERN) or of a TCP transfer through a crypt:// UDP cable, while the same capture
//    of a plain udp:// cable does (so the method sees payloads when they are there);
//  - a bit flipped on the way: Debian's vde_plug agno:// (libvdeplug-agno, encryption without
//    authentication) delivers the tampered frame; our crypt:// delivers nothing, and keeps
//    carrying the untouched frames;
//  - a cable between two of our switches through dpipe and pipes (crypt over stdio), frames both
//    ways checked with raw clients.
// Processes are stopped by PID; namespaces, taps and files are removed.
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureFile, ensureTools } from '../helpers/deps.js';
import { Cleanup, createNetns, createTapInNetns, killChild, netnsExec, ping, pollUntil, run, spawnInNetns, tapAttached, uniqueIfname } from '../helpers/netns.js';
import { StdioPlug } from '../helpers/stdioplug.js';
import { ROOT, startSwitch, tmpdir, waitFor, type RunningSwitch } from '../helpers/switchproc.js';
import { writeKeyFile } from '../helpers/udp.js';
import { frame, VdeClient } from '../helpers/vdeclient.js';

/** Longest wait for a process to open its tap (slow under the sanitizer run on a loaded machine). */
const ATTACH_MS = 30_000;
const PLUG_BIN = path.join(ROOT, 'bin', 'vde_plug');
const DEBIAN_PLUG = '/usr/bin/vde_plug';
const DEBIAN_DPIPE = '/usr/bin/dpipe';
const AGNO_PLUGIN = '/usr/lib/x86_64-linux-gnu/vdeplug/libvdeplug_agno.so';
/** A marker no protocol header contains: ping repeats it, the TCP transfer carries it. */
const MARKER_HEX = 'c0ffee5ec7e7f00dbabe0d15ea5e1dea';
const MARKER_TEXT = 'VDE-TS-PLAINTEXT-MARKER-3f9a1c';
const SILENCE_MS = 700;
/** Longest wait for a cable's first frame (the processes start, the ends shake hands; slow under ASan). */
const CABLE_UP_MS = 30_000;

/** A key file (mode 0600) with one fresh key; returns its path. */
function newKey(dir: string, name: string): string {
  return writeKeyFile(dir, name);
}

describe('crypt:// on the wire: tcpdump finds no plaintext', () => {
  const c = new Cleanup();
  let nsA = '';
  let nsB = '';
  let vA = '';
  let tcpdump = '';
  let dir = '';

  beforeAll(async () => {
    const tools = await ensureTools({ tcpdump: 'tcpdump', socat: 'socat', ip: 'iproute2', ping: 'iputils-ping' });
    tcpdump = tools.tcpdump!;
    dir = c.path(tmpdir('vdets-cryptw-'));
    nsA = await createNetns('crwa', c);
    nsB = await createNetns('crwb', c);
    vA = uniqueIfname('crva');
    const vB = uniqueIfname('crvb');
    await run(['ip', 'link', 'add', vA, 'netns', nsA, 'type', 'veth', 'peer', 'name', vB, 'netns', nsB]);
    c.link(vA, nsA);
    for (const [ns, ifname, addr] of [[nsA, vA, '10.89.0.1/30'], [nsB, vB, '10.89.0.2/30']] as const) {
      await run(['ip', '-n', ns, 'addr', 'add', addr, 'dev', ifname]);
      await run(['ip', '-n', ns, 'link', 'set', ifname, 'up']);
    }
  });

  afterAll(async () => {
    await c.run();
  });

  /**
   * Lays a cable (the locators of both ends) between taps in nsA and nsB, runs marked traffic,
   * returns the capture of the underlay (tcpdump filter: udp, or tcp for a stream cable whose
   * server end, A, listens on serverPort before B starts).
   */
  async function captureThrough(cableA: string, cableB: string, tag: string, opts: { filter?: 'udp' | 'tcp'; serverPort?: number } = {}): Promise<{ pcap: Buffer; udpPackets: number }> {
    const local = new Cleanup();
    try {
      const tapA = await createTapInNetns(nsA, uniqueIfname(`ct${tag}`), '192.168.89.1/24', { cleanup: local });
      const tapB = await createTapInNetns(nsB, uniqueIfname(`ct${tag}`), '192.168.89.2/24', { cleanup: local });
      spawnInNetns(nsA, [process.execPath, PLUG_BIN, cableA, `tap://${tapA}`], { cleanup: local });
      if (opts.serverPort) await pollUntil(async () => new RegExp(`:${opts.serverPort}\\b`).test((await netnsExec(nsA, ['ss', '-ltn'])).stdout), ATTACH_MS, 'the cable server listening');
      spawnInNetns(nsB, [process.execPath, PLUG_BIN, cableB, `tap://${tapB}`], { cleanup: local });
      await pollUntil(() => tapAttached(tapA, nsA), ATTACH_MS, 'tap A attached');
      await pollUntil(() => tapAttached(tapB, nsB), ATTACH_MS, 'tap B attached');
      await pollUntil(async () => (await ping(nsA, '192.168.89.2', 1, { deadlineS: 1 })).received === 1, 10_000, 'the cable carries ping');
      const pcapFile = path.join(dir, `${tag}.pcap`);
      // -Z root: Debian's tcpdump would write as user tcpdump, which may not enter our 0700 temp directory;
      // --immediate-mode: every packet reaches the file at once (not when a 1 s ring block times out)
      const cap = spawnInNetns(nsA, [tcpdump, '-Z', 'root', '--immediate-mode', '-i', vA, '-n', '-U', '-s', '0', '-w', pcapFile, opts.filter ?? 'udp'], { cleanup: local });
      await pollUntil(() => /listening on/.test(cap.output()), 10_000, 'tcpdump listening');
      const p = await netnsExec(nsA, ['ping', '-n', '-c', '5', '-i', '0.05', '-W', '1', '-p', MARKER_HEX, '192.168.89.2'], { check: false });
      expect(p.stdout, p.stderr).toMatch(/5 received/);
      // a TCP transfer carrying the text marker
      const server = spawnInNetns(nsB, ['socat', '-u', 'TCP-LISTEN:7777,reuseaddr', 'OPEN:/dev/null'], { cleanup: local });
      await pollUntil(async () => /:7777/.test((await netnsExec(nsB, ['ss', '-ltn'])).stdout), 10_000, 'socat listening');
      await netnsExec(nsA, ['sh', '-c', `for i in $(seq 200); do echo ${MARKER_TEXT}; done | socat -u - TCP:192.168.89.2:7777`], { timeoutMs: 20_000 });
      await pollUntil(() => server.child.exitCode !== null, 10_000, 'the transfer to end');
      await new Promise((r) => setTimeout(r, 300));
      await killChild(cap.child);
      const pcap = fs.readFileSync(pcapFile);
      const count = await run([tcpdump, '-r', pcapFile, '-n'], { check: false });
      return { pcap, udpPackets: count.stdout.split('\n').filter((l) => / IP /.test(l)).length };
    } finally {
      await local.run();
    }
  }

  it('a crypt:// UDP cable carries ping and TCP, and the underlay never shows their payload', async () => {
    const k = newKey(dir, 'key');
    const r = await captureThrough(`crypt://${k}{udp://10.89.0.1:7001->10.89.0.2:7001}`, `crypt://${k}{udp://10.89.0.2:7001->10.89.0.1:7001}`, 'c');
    expect(r.udpPackets).toBeGreaterThan(20);
    expect(r.pcap.includes(Buffer.from(MARKER_HEX, 'hex'))).toBe(false);
    expect(r.pcap.includes(Buffer.from(MARKER_TEXT))).toBe(false);
    expect(r.pcap.includes(Buffer.from(MARKER_TEXT.slice(0, 12)))).toBe(false);
  });

  it('a crypt:// TCP cable (64 KiB segments from the taps sealed whole) shows no payload either', async () => {
    const k = newKey(dir, 'key-tcp');
    const r = await captureThrough(`crypt://${k}{stream://tcp:10.89.0.1:7004[server]}`, `crypt://${k}{stream://tcp:10.89.0.1:7004}`, 't', { filter: 'tcp', serverPort: 7004 });
    expect(r.udpPackets).toBeGreaterThan(10);
    expect(r.pcap.includes(Buffer.from(MARKER_HEX, 'hex'))).toBe(false);
    expect(r.pcap.includes(Buffer.from(MARKER_TEXT))).toBe(false);
    expect(r.pcap.includes(Buffer.from(MARKER_TEXT.slice(0, 12)))).toBe(false);
  });

  it('the same capture of a plain udp:// cable shows both markers (the method sees payloads)', async () => {
    const r = await captureThrough('udp://10.89.0.1:7002->10.89.0.2:7002', 'udp://10.89.0.2:7002->10.89.0.1:7002', 'p');
    expect(r.pcap.includes(Buffer.from(MARKER_HEX, 'hex'))).toBe(true);
    expect(r.pcap.includes(Buffer.from(MARKER_TEXT))).toBe(true);
  });
});

/** A UDP relay on loopback that flips one bit in the middle of each datagram while `tamper` is on. */
class FlipRelay {
  tamper = false;
  private a = dgram.createSocket('udp4');
  private b = dgram.createSocket('udp4');
  constructor(readonly portA: number, readonly portB: number, readonly toA: number, readonly toB: number) {}
  async start(): Promise<void> {
    await new Promise<void>((r) => this.a.bind(this.portA, '127.0.0.1', r));
    await new Promise<void>((r) => this.b.bind(this.portB, '127.0.0.1', r));
    const fwd = (m: Buffer, toB: boolean): void => {
      const out = Buffer.from(m);
      if (this.tamper && out.length > 60) out[Math.floor(out.length / 2)] ^= 0x04;
      (toB ? this.b : this.a).send(out, toB ? this.toB : this.toA, '127.0.0.1');
    };
    this.a.on('message', (m) => fwd(m, true));
    this.b.on('message', (m) => fwd(m, false));
  }
  close(): void {
    this.a.close();
    this.b.close();
  }
}

describe('tampering on the way: Debian agno:// delivers it, crypt:// does not', () => {
  const c = new Cleanup();
  let dir = '';
  const MS = '02:00:00:00:77:01';
  const MR = '02:00:00:00:77:02';

  beforeAll(async () => {
    await ensureTools({ [DEBIAN_PLUG]: 'vdeplug' });
    await ensureFile(() => (fs.existsSync(AGNO_PLUGIN) ? AGNO_PLUGIN : null), 'libvdeplug-agno', 'the agno:// plugin of vdeplug4');
    dir = c.path(tmpdir('vdets-cryptt-'));
  });

  afterAll(async () => {
    await c.run();
  });

  /** Two stdio plugs joined over UDP through a flipping relay; returns what the receiver got of a clean and a tampered frame. */
  async function run2(cmd: string, locOf: (me: number, relay: number) => string): Promise<{ clean: Buffer | null; tampered: Buffer | null; sent: Buffer }> {
    const base = 30000 + (process.pid % 5000) * 4;
    const relay = new FlipRelay(base + 2, base + 3, base, base + 1);
    await relay.start();
    const s = new StdioPlug(cmd, cmd === DEBIAN_PLUG ? [locOf(base, base + 2)] : [PLUG_BIN, locOf(base, base + 2)]);
    const r = new StdioPlug(cmd, cmd === DEBIAN_PLUG ? [locOf(base + 1, base + 3)] : [PLUG_BIN, locOf(base + 1, base + 3)]);
    c.process(s.proc);
    c.process(r.proc);
    try {
      const f = frame(MR, MS, Buffer.from(MARKER_TEXT.repeat(8)));
      // a clean frame first (retried until the cable is up: crypt:// needs its handshake)
      let clean: Buffer | null = null;
      for (const until = Date.now() + CABLE_UP_MS; Date.now() < until && !clean; ) {
        s.send(f);
        clean = await r.recvFrom(MS.replace(/:/g, ''), 300);
      }
      while (await r.recv(SILENCE_MS)); // copies of the retries
      relay.tamper = true;
      s.send(f);
      const tampered = await r.recvFrom(MS.replace(/:/g, ''), SILENCE_MS * 2);
      relay.tamper = false;
      return { clean, tampered, sent: f };
    } finally {
      relay.close();
      await s.close();
      await r.close();
    }
  }

  it("Debian's vde_plug agno:// delivers a frame with a bit flipped on the wire", async () => {
    const key = path.join(dir, 'agno.key');
    fs.writeFileSync(key, `${randomBytes(16).toString('hex')}\n`, { mode: 0o600 });
    const r = await run2(DEBIAN_PLUG, (me, relay) => `agno://${key}{udp://127.0.0.1:${me}->127.0.0.1:${relay}}`);
    expect(r.clean?.equals(r.sent)).toBe(true);
    expect(r.tampered).not.toBeNull(); // delivered...
    expect(r.tampered!.equals(r.sent)).toBe(false); // ...and not what was sent
  });

  it('our vde_plug crypt:// drops the tampered frame and goes on', async () => {
    const key = newKey(dir, 'crypt.key');
    const r = await run2(process.execPath, (me, relay) => `crypt://${key}{udp://127.0.0.1:${me}->127.0.0.1:${relay}}`);
    expect(r.clean?.equals(r.sent)).toBe(true);
    expect(r.tampered).toBeNull();
  });
});

describe('crypt:// over a stream: dpipe between two switches', () => {
  const c = new Cleanup();
  let s1: RunningSwitch;
  let s2: RunningSwitch;

  beforeAll(async () => {
    await ensureTools({ [DEBIAN_DPIPE]: 'vdeplug' });
    const dir = c.path(tmpdir('vdets-cryptd-'));
    const k = newKey(dir, 'key');
    s1 = await startSwitch();
    s2 = await startSwitch();
    const cable = spawnInNetns(null, [DEBIAN_DPIPE, process.execPath, PLUG_BIN, s1.dir, `crypt://${k}{stdio://}`, '=', process.execPath, PLUG_BIN, s2.dir, `crypt://${k}{stdio://}`], { cleanup: c });
    c.process(cable.child);
    await waitFor(async () => (await s1.json<unknown[]>('json/port/print')).length === 1 && (await s2.json<unknown[]>('json/port/print')).length === 1, 15_000, 'both ends plugged');
  });

  afterAll(async () => {
    await c.run();
    await s1?.stop();
    await s2?.stop();
  });

  it('carries frames both ways once the handshake is done', async () => {
    const a = await VdeClient.connect(s1.dir);
    const b = await VdeClient.connect(s2.dir);
    try {
      const f = frame('ff:ff:ff:ff:ff:ff', '02:00:00:00:88:01', 1400);
      let got: Buffer | null = null;
      for (const until = Date.now() + CABLE_UP_MS; Date.now() < until && !got; ) {
        a.send(f);
        got = await b.recv(200);
      }
      expect(got?.equals(f)).toBe(true);
      // each direction has its own session: the way back may come up a moment later (frames
      // before it are dropped and counted as txError), so the jumbo frame is repeated too
      const g = frame('02:00:00:00:88:01', '02:00:00:00:88:02', 9000);
      let back: Buffer | null = null;
      for (const until = Date.now() + CABLE_UP_MS; Date.now() < until && !back?.equals(g); ) {
        b.send(g);
        do back = await a.recv(200);
        while (back && !back.equals(g));
      }
      expect(back?.equals(g)).toBe(true);
    } finally {
      a.close();
      b.close();
    }
  });
});
