/**
 * The vde2 console line protocol (PROTOCOL.md §6.2), one implementation for every console: the
 * switch's management socket and stdin console, slirpvde's console and wirefilter's. A tool
 * gives a command table, a banner and a prompt; this module does the rest:
 *
 * - framing: a text command's output goes in a data block (`0000 DATA END WITH '.'` ... `.`),
 *   then the status line (`1000 Success` or `1NNN <strerror>`), then the prompt; `logout` ends a
 *   session with `9999 END OF SESSION`;
 * - command lookup as vde2: the first registered path that is a prefix of the input, the rest
 *   (after blanks) is the argument; unknown input gets ENOSYS;
 * - input: split into lines (`\r` removed), so several commands in one write all run; as in vde2
 *   a read that ends without a newline is a command too once the input stays idle for
 *   CONSOLE_IDLE_COMMAND_MS (vdeterm sends commands without a newline); a line longer than the
 *   limit is refused whole;
 * - commands may be asynchronous (their `run` returns a Promise): each session's lines are still
 *   answered strictly in order, and scripts (`load`, rc files) run their lines in order, with
 *   failures reported with file and line number;
 * - asynchronous debug lines (`3NNN category message`) to the sessions that subscribed;
 * - a command may take a socket session over: it writes its own reply, then either streams on
 *   (`events`: the session's `closed` promise says when the client left) or detaches the
 *   connection (`capture/start`: `detach()` hands the socket's fd over, the console forgets
 *   the session and writes nothing more to it).
 */
import fs from 'node:fs';
import net from 'node:net';
import { E, ErrnoError, strerror } from '../core/errors.js';
import { log } from '../core/log.js';
import { native } from '../native/index.js';
import { claimSocketPath, listenUnix, OwnedPath } from '../core/sockpath.js';

export const DATA_HEADER = "0000 DATA END WITH '.'";
export const END_OF_SESSION = '9999 END OF SESSION';
/** What a command's run returns to end the session (logout, shutdown). */
export const CONSOLE_END = -1;
/** What a command's run returns after it took the connection over (session.detach()): nothing more is written. */
export const CONSOLE_DETACHED = -2;
/** execute()'s answer for a command that took the connection over. */
export const DETACHED = '\u0000detached';
/** Idle time after which input without a trailing newline is run as a command (vde2 treats every read as one). */
export const CONSOLE_IDLE_COMMAND_MS = 100;
/** Deepest nesting of `load` scripts. */
export const MAX_LOAD_DEPTH = 8;

/** The status line of a command result: `1000 Success`, `1022 Invalid argument`, ... */
export function statusLine(errno: number): string {
  return `1${String(errno).padStart(3, '0')} ${strerror(errno)}`;
}

/** One console session (a socket client, the stdin console, or a script run without one). */
export interface Session {
  readonly name: string;
  /** False for rc files: commands that need a terminal (debug/add) refuse them. */
  readonly interactive: boolean;
  debug: Set<string>;
  write(s: string): void;
  end(): void;
  /** Socket sessions: resolves when the client is gone. */
  closed?: Promise<void>;
  /** Socket sessions: bytes written and not yet taken by the kernel (a streaming command bounds it). */
  backlog?(): number;
  /**
   * Socket sessions: stops reading, waits until everything written has left, and hands the
   * connection over as a new fd (the caller owns it; the console forgets the session).
   */
  detach?(): Promise<number>;
}

/** One entry of a command table. */
export interface ConsoleCommand {
  path: string;
  syntax: string;
  help: string;
  /** The output goes in a data block. */
  text?: boolean;
  /** A menu header (shown by help, never run). */
  menu?: boolean;
  /** On failure the data block holds `{"error":...,"errno":N}` (json/... commands). */
  json?: boolean;
  /** Runs the command; returns an errno (0 or nothing = success, CONSOLE_END = end the session). */
  run?: (arg: string, out: string[], s: Session) => number | void | Promise<number | void>;
}

/** A debug category: name, vde2's octal tag, help text. */
export type DebugCategory = [name: string, tag: number, help: string];

/** What a tool gives its console. */
export interface ConsoleOptions {
  /** Sent when a socket client connects. */
  banner: string;
  /** Sent after every reply, e.g. `\nvde$ `. */
  prompt: string;
  /** Longest accepted input line, in bytes. */
  maxLineBytes: number;
  /** How `load` echoes a script line (vde2: `vde[FILE]: LINE`). */
  echoLine?: (file: string, line: string) => string;
  /** Debug categories that sessions may subscribe to. */
  debugCategories?: DebugCategory[];
  /** What a socket session gets when it ends with logout (default END_OF_SESSION). */
  endOfSession?: string;
}

/** Result of running a script. */
export interface ScriptResult {
  errno: number;
  output: string;
  errors: string[];
}

/** Formats the `help` table line (vde2: `%-18s %-15s %s`). */
export function helpLine(path: string, syntax: string, help: string): string {
  return `${path.padEnd(18)} ${syntax.padEnd(15)} ${help}`;
}

/** A console: command table, sessions, and the line protocol on sockets and streams. */
export class ConsoleServer {
  private commands: ConsoleCommand[] = [];
  private sessions = new Set<Session>();
  private loadDepth = 0;

  constructor(readonly opts: ConsoleOptions) {}

  /** Sets the command table (the order is the lookup and help order). */
  setCommands(cmds: ConsoleCommand[]): void {
    this.commands = cmds;
  }

  /** The command table. */
  table(): readonly ConsoleCommand[] {
    return this.commands;
  }

  /** The standard `help [prefix]` command over this console's table. */
  helpCommand(): ConsoleCommand {
    return {
      path: 'help',
      syntax: '[arg]',
      help: 'Help (limited to arg when specified)',
      text: true,
      run: (a, out) => {
        out.push(helpLine('COMMAND PATH', 'SYNTAX', 'HELP'), helpLine('------------', '--------------', '------------'));
        for (const c of this.commands) if (c.path.startsWith(a.trim())) out.push(helpLine(c.path, c.syntax, c.help));
      },
    };
  }

  /** The standard `load FILE` command: runs a script with each line echoed. */
  loadCommand(): ConsoleCommand {
    return {
      path: 'load',
      syntax: 'path',
      help: 'load a configuration script',
      text: true,
      run: async (a, out, s) => {
        if (!a.trim()) return E.EINVAL;
        const r = await this.runScript(a.trim(), s, true);
        out.push(...r.output.replace(/\n$/, '').split('\n').filter((l, i, arr) => l !== '' || i < arr.length - 1));
        return r.errno;
      },
    };
  }

  /** Registers a session for debug output. */
  addSession(s: Session): void {
    this.sessions.add(s);
  }

  /** Forgets a session. */
  removeSession(s: Session): void {
    this.sessions.delete(s);
  }

  /** The debug categories this console offers. */
  debugCategories(): DebugCategory[] {
    return this.opts.debugCategories ?? [];
  }

  /** Sends a line as it is to every session subscribed to the category (tools whose debug lines have their own layout). */
  debugRaw(category: string, line: string): void {
    for (const s of this.sessions) if (s.debug.has(category)) s.write(line);
  }

  /** Sends an asynchronous debug line to every session subscribed to the category. */
  debug(category: string, msg: string): void {
    const cat = this.debugCategories().find((c) => c[0] === category);
    if (!cat) return;
    for (const s of this.sessions)
      if (s.debug.has(category)) s.write(`3${cat[1].toString(8).padStart(3, '0')} ${category} ${msg}\n`);
  }

  /**
   * Runs one input line and resolves with the reply bytes (data block + status line), null for
   * lines that produce only a prompt (empty, comments), or END_OF_SESSION.
   */
  async execute(line: string, s: Session): Promise<string | null> {
    let input = line.replace(/\r$/, '').replace(/^[ \t]+/, '');
    if (input === '' || input.startsWith('#')) return null;
    if (Buffer.byteLength(input) > this.opts.maxLineBytes) return `${statusLine(E.EINVAL)}\n`;
    input = input.replace(/[ \t]+$/, '');
    const cmd = this.commands.find((c) => !c.menu && input.startsWith(c.path));
    if (!cmd || !cmd.run) return `${statusLine(E.ENOSYS)}\n`;
    const arg = input.slice(cmd.path.length).replace(/^[ \t]+/, '');
    const out: string[] = [];
    let errno = 0;
    let message = '';
    try {
      errno = (await cmd.run(arg, out, s)) ?? 0;
    } catch (e) {
      if (e instanceof ErrnoError) {
        errno = e.errno;
        message = e.message;
      } else {
        log('error', `console: ${cmd.path}: ${(e as Error).message ?? e}`);
        errno = E.EINVAL;
      }
    }
    if (errno === CONSOLE_END) return END_OF_SESSION;
    if (errno === CONSOLE_DETACHED) return DETACHED;
    let reply = '';
    if (cmd.json && errno !== 0) {
      out.length = 0;
      out.push(JSON.stringify({ error: message || strerror(errno), errno }));
    }
    if (cmd.text) reply += `${DATA_HEADER}\n${out.map((l) => `${l}\n`).join('')}.\n`;
    return `${reply}${statusLine(errno)}\n`;
  }

  /** Runs a script file line by line, in order, as `load` and rc files do; collects failures with line numbers. */
  async runScript(file: string, s: Session, echo: boolean): Promise<ScriptResult> {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      return { errno: code === 'ENOENT' ? E.ENOENT : code === 'EACCES' ? E.EACCES : E.EINVAL, output: '', errors: [`${file}: ${(e as Error).message}`] };
    }
    if (this.loadDepth >= MAX_LOAD_DEPTH) return { errno: E.EINVAL, output: '', errors: [`${file}: load nested deeper than ${MAX_LOAD_DEPTH}`] };
    this.loadDepth++;
    let output = '';
    const errors: string[] = [];
    try {
      const lines = text.split('\n');
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i].replace(/\r$/, '');
        if (echo && line.trim() !== '' && !line.trim().startsWith('#')) output += this.opts.echoLine?.(file, line) ?? `${line}\n`;
        const r = await this.execute(line, s);
        if (r === null) continue;
        if (echo) output += r;
        const status = /^1(\d{3}) (.*)$/m.exec(r.split('\n').reverse().find((l) => /^1\d{3} /.test(l)) ?? '');
        if (status && status[1] !== '000') errors.push(`${file}:${i + 1}: ${line.trim()}: ${status[2]}`);
      }
    } finally {
      this.loadDepth--;
    }
    return { errno: 0, output, errors };
  }

  /**
   * Serves one connected socket: banner and prompt, then the line protocol until logout, EOF or
   * an error. Returns the session (already registered for debug output).
   */
  serveSocket(sock: net.Socket, name = 'mgmt session'): Session {
    let closedResolve: () => void = () => {};
    const closed = new Promise<void>((r) => (closedResolve = r));
    const sess: Session = {
      name,
      interactive: true,
      debug: new Set(),
      write: (t) => {
        if (!sock.destroyed && sock.writable) sock.write(t);
      },
      end: () => {
        sock.end(this.opts.endOfSession ?? END_OF_SESSION);
      },
      closed,
      backlog: () => sock.writableLength,
      detach: () => detachSocket(sock, () => {
        input.close();
        this.removeSession(sess);
        sock.removeAllListeners('data');
      }),
    };
    this.addSession(sess);
    const input = new LineInput(this, sess, { prompt: this.opts.prompt, endOnLogout: true });
    sock.setEncoding('utf8');
    sock.write(this.opts.banner + this.opts.prompt);
    sock.on('data', (d: string) => input.push(d));
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      input.close();
      this.removeSession(sess);
      closedResolve();
    });
    return sess;
  }

  /** Makes a line reader for a stream session (the stdin console uses it without a banner). */
  lineInput(sess: Session, o: { prompt: string; endOnLogout: boolean }): LineInput {
    return new LineInput(this, sess, o);
  }
}

/** The fd of a connected unix socket (libuv keeps it in the handle), or -1. */
function socketFd(sock: net.Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' ? fd : -1;
}

/**
 * Takes a connection away from Node: stops reading, waits until what was written has left,
 * duplicates the fd (close-on-exec) and destroys Node's socket. Resolves with the new fd.
 */
async function detachSocket(sock: net.Socket, forget: () => void): Promise<number> {
  forget();
  sock.pause();
  await new Promise<void>((resolve, reject) => {
    if (sock.destroyed) return reject(new ErrnoError(E.ECONNRESET, 'the client left'));
    sock.write('', (e) => (e ? reject(e) : resolve()));
  });
  const fd = socketFd(sock);
  if (fd < 0 || sock.writableLength > 0) {
    sock.destroy();
    throw new ErrnoError(E.EIO, 'the connection cannot be handed over');
  }
  const copy = native().dup(fd);
  sock.destroy();
  return copy;
}

/**
 * The input side of one session: splits what arrives into lines, runs them one after another
 * (waiting for asynchronous commands), writes each reply followed by the prompt.
 */
export class LineInput {
  private buf = '';
  private overflow = false;
  private queue: Array<string | { overlong: true }> = [];
  private busy = false;
  private ended = false;
  private idle: NodeJS.Timeout | null = null;

  constructor(
    private server: ConsoleServer,
    private sess: Session,
    private o: { prompt: string; endOnLogout: boolean },
  ) {}

  /** Feeds raw input. */
  push(chunk: string): void {
    if (this.ended) return;
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    this.buf += chunk;
    for (let nl = this.buf.indexOf('\n'); nl >= 0; nl = this.buf.indexOf('\n')) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (this.overflow) {
        this.overflow = false;
        this.queue.push({ overlong: true });
      } else this.queue.push(line);
    }
    if (Buffer.byteLength(this.buf) > this.server.opts.maxLineBytes) {
      this.buf = '';
      this.overflow = true;
    }
    if (this.buf !== '' || this.overflow) {
      // vde2 runs every read as a command: input that stays without a newline is one too
      this.idle = setTimeout(() => {
        this.idle = null;
        if (this.overflow) {
          this.overflow = false;
          this.queue.push({ overlong: true });
        } else if (this.buf !== '') {
          this.queue.push(this.buf);
          this.buf = '';
        }
        void this.drain();
      }, CONSOLE_IDLE_COMMAND_MS);
    }
    void this.drain();
  }

  /** Stops reading (the session went away). */
  close(): void {
    this.ended = true;
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    this.queue.length = 0;
  }

  private async drain(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      while (!this.ended && this.queue.length) {
        const item = this.queue.shift()!;
        const r = typeof item === 'string' ? await this.server.execute(item, this.sess) : `${statusLine(E.EINVAL)}\n`;
        if (this.ended) return;
        if (r === DETACHED) {
          this.close();
          return;
        }
        if (r === END_OF_SESSION) {
          if (this.o.endOnLogout) {
            this.close();
            this.sess.end();
            return;
          }
          continue;
        }
        this.sess.write(`${r ?? ''}${this.o.prompt}`);
      }
    } finally {
      this.busy = false;
    }
  }
}

/**
 * Serves a console on a unix stream socket at sockPath (refused when something answers there; a
 * stale socket is reclaimed), created with `mode`; resolves with a function that closes it and
 * removes the socket (only while the path still names it).
 */
export async function listenConsole(server: ConsoleServer, sockPath: string, mode: number): Promise<() => void> {
  await claimSocketPath(sockPath, 'management socket');
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    server.serveSocket(s);
  });
  await listenUnix(srv, sockPath, mode).catch((e) => {
    throw new Error(`management socket ${sockPath}: ${(e as Error).message}`);
  });
  srv.on('error', (e) => log('error', `management socket: ${e.message}`));
  const owned = OwnedPath.record(sockPath);
  return () => {
    for (const s of sockets) s.destroy();
    srv.close();
    owned.release();
  };
}
