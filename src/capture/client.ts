/**
 * The client side of live capture: connects to a tool's management console, asks for
 * `capture/start` (ports/capture.ts describes the protocol) and hands back the connection once
 * the console has answered, with the pcapng bytes that followed the answer in the same read.
 * Also asks a console for its capturable ports (`capture/ports`, for Wireshark's extcap list).
 * Everything a console sends is untrusted: the text part of an answer is bounded
 * (MAX_REPLY_TEXT_BYTES) and a console that does not answer in time is an error.
 */
import net from 'node:net';

/** Most bytes of console text (banner, prompt, answer) read before the pcapng starts. */
export const MAX_REPLY_TEXT_BYTES = 64 * 1024;
/** How long the console may take to answer capture/start. */
export const START_TIMEOUT_MS = 10_000;

/** A capture request (ports/capture.ts CaptureRequest). */
export interface StartRequest {
  ports: number[] | 'all';
  direction: 'in' | 'out' | 'both';
  snaplen?: number;
  filter?: string;
}

/** A started capture: the connection (paused), the first pcapng bytes, the console's description. */
export interface StartedCapture {
  sock: net.Socket;
  first: Buffer;
  info: Record<string, unknown>;
}

/** A console's answer: status, status text and data lines, plus the bytes after the status line. */
interface Answer {
  status: number;
  statusText: string;
  data: string[];
  rest: Buffer;
}

/** Splits a console answer out of buf (after the first prompt); null while incomplete. */
export function parseAnswer(buf: Buffer): Answer | null {
  const prompt = buf.indexOf('$ ');
  if (prompt < 0) return null;
  let off = prompt + 2;
  const data: string[] = [];
  let inData = false;
  for (;;) {
    const nl = buf.indexOf(0x0a, off);
    if (nl < 0) return null;
    const line = buf.subarray(off, nl).toString('utf8').replace(/\r$/, '');
    off = nl + 1;
    if (!inData && line.startsWith('0000 ')) inData = true;
    else if (inData && line === '.') inData = false;
    else if (inData) data.push(line);
    else if (/^1\d{3} /.test(line)) return { status: parseInt(line.slice(1, 4), 10), statusText: line.slice(5), data, rest: buf.subarray(off) };
  }
}

/** Connects to sockPath, sends one command and resolves with its answer, the socket paused after it. */
export function ask(sockPath: string, command: string, timeoutMs = START_TIMEOUT_MS): Promise<{ sock: net.Socket; answer: Answer }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ path: sockPath });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (e: Error | null, answer?: Answer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.removeAllListeners('data');
      if (e) {
        sock.destroy();
        reject(e);
      } else {
        sock.pause();
        resolve({ sock, answer: answer! });
      }
    };
    const timer = setTimeout(() => finish(new Error(`${sockPath}: no answer within ${timeoutMs} ms`)), timeoutMs);
    sock.on('connect', () => sock.write(`${command}\n`));
    sock.on('error', (e: NodeJS.ErrnoException) =>
      finish(new Error(`${sockPath}: ${e.code === 'ENOENT' ? 'no such socket' : e.code === 'ECONNREFUSED' ? 'nothing is listening (connection refused)' : e.code === 'EACCES' ? 'permission denied (whoever may use the management socket may capture: ask its owner for its group or mode, --mgmtmode)' : e.message}`)),
    );
    sock.on('close', () => finish(new Error(`${sockPath}: the connection closed before an answer (is it a management console?)`)));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const a = parseAnswer(buf);
      if (a) return finish(null, a);
      if (buf.length > MAX_REPLY_TEXT_BYTES) finish(new Error(`${sockPath}: not a management console (no answer in ${MAX_REPLY_TEXT_BYTES} bytes)`));
    });
  });
}

/** The error text a JSON console command put in its data block, or the status text. */
function errorOf(a: Answer): string {
  for (const l of a.data) {
    try {
      const o = JSON.parse(l) as { error?: unknown };
      if (typeof o.error === 'string') return o.error;
    } catch {
      /* not JSON */
    }
  }
  return a.statusText;
}

/** Asks the console at sockPath to capture; resolves once the pcapng stream starts. */
export async function startCapture(sockPath: string, req: StartRequest): Promise<StartedCapture> {
  const { sock, answer } = await ask(sockPath, `capture/start ${JSON.stringify(req)}`);
  if (answer.status !== 0) {
    sock.destroy();
    throw new Error(`${sockPath}: ${answer.status === 38 ? 'this console cannot capture (no capture/start command)' : errorOf(answer)}`);
  }
  let info: Record<string, unknown> = {};
  try {
    info = JSON.parse(answer.data[0] ?? '{}') as Record<string, unknown>;
  } catch {
    /* an answer without a description still starts the stream */
  }
  return { sock, first: Buffer.from(answer.rest), info };
}

/** One capturable port of a console. */
export interface ConsolePort {
  port: number;
  name: string;
  description: string;
}

/** The console's capturable ports and what it is (capture/ports); rejects for consoles without capture. */
export async function consolePorts(sockPath: string, timeoutMs: number): Promise<{ title: string; ports: ConsolePort[] }> {
  const { sock, answer } = await ask(sockPath, 'capture/ports', timeoutMs);
  sock.end('logout\n');
  sock.destroy();
  if (answer.status !== 0) throw new Error(`${sockPath}: ${errorOf(answer)}`);
  const o = JSON.parse(answer.data[0] ?? '{}') as { title?: unknown; ports?: unknown };
  if (typeof o.title !== 'string' || !Array.isArray(o.ports)) throw new Error(`${sockPath}: capture/ports answered without a port list`);
  return { title: o.title, ports: (o.ports as ConsolePort[]).filter((p) => Number.isInteger(p.port)) };
}
