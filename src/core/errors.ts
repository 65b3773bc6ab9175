/**
 * Errors shared by every tool: errno numbers with their Linux texts (the console prints them as
 * `1NNN <text>` status lines), an Error class that carries an errno, and the one-line error
 * message a command-line tool prints for any exception (never a stack trace).
 */

/** The errno values the tools report (Linux numbers). */
export const E = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  ENOSYS: 38,
  EOPNOTSUPP: 95,
  ENOTSOCK: 88,
  EPROTOTYPE: 91,
  EADDRINUSE: 98,
  ECONNRESET: 104,
  ECONNREFUSED: 111,
} as const;

const STRERROR: Record<number, string> = {
  0: 'Success',
  1: 'Operation not permitted',
  2: 'No such file or directory',
  5: 'Input/output error',
  6: 'No such device or address',
  9: 'Bad file descriptor',
  11: 'Resource temporarily unavailable',
  12: 'Cannot allocate memory',
  13: 'Permission denied',
  17: 'File exists',
  19: 'No such device',
  20: 'Not a directory',
  21: 'Is a directory',
  22: 'Invalid argument',
  28: 'No space left on device',
  34: 'Numerical result out of range',
  38: 'Function not implemented',
  88: 'Socket operation on non-socket',
  91: 'Protocol wrong type for socket',
  95: 'Operation not supported',
  98: 'Address already in use',
  104: 'Connection reset by peer',
  111: 'Connection refused',
};

/** The C library's text for an errno (`Unknown error N` for numbers it does not know). */
export function strerror(errno: number): string {
  return STRERROR[errno] ?? `Unknown error ${errno}`;
}

/** An errno-style failure; consoles print it as `1NNN text`, tools as one line. */
export class ErrnoError extends Error {
  constructor(
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

/** The one line a tool prints for an error: its message, never a stack trace. */
export function errorText(e: unknown): string {
  if (e instanceof Error) return e.message.split('\n')[0] || e.name;
  return String(e).split('\n')[0];
}

/** Exit status of an internal error (sysexits EX_SOFTWARE). */
export const INTERNAL_ERROR_EXIT_STATUS = 70;

/**
 * Makes an error nobody caught end the tool with one line (`PROGRAM: internal error: ...`)
 * instead of a Node stack trace; VDE_TS_DEBUG=1 in the environment shows the stack.
 */
export function installCrashGuard(program: string): void {
  const die = (e: unknown): void => {
    const detail = process.env.VDE_TS_DEBUG && e instanceof Error ? `\n${e.stack}` : '';
    try {
      process.stderr.write(`${program}: internal error: ${errorText(e)}${detail}\n`);
    } finally {
      process.exit(INTERNAL_ERROR_EXIT_STATUS);
    }
  };
  process.on('uncaughtException', die);
  process.on('unhandledRejection', die);
}
