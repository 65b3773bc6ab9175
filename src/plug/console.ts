/**
 * The management console of vde_plug (`--mgmt PATH`): change a cable's link emulation while it
 * runs and read its counters, on the vde2 console line protocol (protocol/console.ts), so
 * `vdecmd -s PATH impair LR delay 10ms` and vdeterm work with it. Directions are the cable's:
 * LR carries frames from the first locator to the second, RL the other way.
 */
import { E } from '../core/errors.js';
import { VDE_TS_VERSION } from '../core/version.js';
import { cableDirOf, cablePorts, impairErrorText, impairLines, parseImpairCommand, type Impairments } from '../ports/impair.js';
import { ConsoleServer, CONSOLE_END, listenConsole, type ConsoleCommand } from '../protocol/console.js';

export const PLUG_BANNER = `VDE plug (vde-ts ${VDE_TS_VERSION})\n`;
export const PLUG_PROMPT = '\nvde_plug$ ';
/** Longest accepted console line. */
export const MAX_PLUG_LINE_BYTES = 4096;

/** What the console shows about the plug. */
export interface PlugInfo {
  left: string;
  right: string;
}

/** The plug console's commands. */
export function plugCommands(server: ConsoleServer, imp: Impairments, info: () => PlugInfo, extra: ConsoleCommand[] = []): ConsoleCommand[] {
  const reports = async (): Promise<Array<{ dir: 'LR' | 'RL'; spec: string; values: Record<string, number> }>> =>
    (await imp.report()).filter((r) => r.dir === 'out').map((r) => ({ dir: cableDirOf(r.port), spec: r.spec, values: r.values }));
  return [
    server.helpCommand(),
    { path: 'showinfo', syntax: '', help: 'the two ends, link emulation and its counters', text: true, run: async (_a, out) => {
      const i = info();
      out.push(`vde_plug (vde-ts ${VDE_TS_VERSION}) pid ${process.pid}`, `L: ${i.left}`, `R: ${i.right}`);
      for (const r of await reports()) out.push(...impairLines(r.dir, { port: 0, dir: 'out', spec: r.spec, values: r.values }));
    } },
    { path: 'impair', syntax: 'LR|RL|both SPEC|off', help: 'link emulation of one direction (README: Link emulation)', text: true, run: (a, out) => {
      try {
        const { dir, spec } = parseImpairCommand(a);
        for (const port of cablePorts(dir)) imp.set(port, 'out', spec);
      } catch (e) {
        const text = impairErrorText(e);
        if (text === null) throw e;
        out.push(text.startsWith('usage:') ? text : `impair: ${text}`);
        return E.EINVAL;
      }
    } },
    { path: 'json/showinfo', syntax: '', help: 'the same as JSON', text: true, json: true, run: async (_a, out) => {
      const i = info();
      out.push(JSON.stringify({ pid: process.pid, left: i.left, right: i.right, impair: await reports() }));
    } },
    ...extra,
    { path: 'logout', syntax: '', help: 'end this session', run: () => CONSOLE_END },
  ];
}

/** Serves the plug's console (plus `extra` commands: capture, events) on a unix socket; resolves with a function that closes it. */
export async function startPlugConsole(sockPath: string, mode: number, imp: Impairments, info: () => PlugInfo, extra: ConsoleCommand[] = []): Promise<() => void> {
  const server = new ConsoleServer({ banner: PLUG_BANNER, prompt: PLUG_PROMPT, maxLineBytes: MAX_PLUG_LINE_BYTES });
  server.setCommands(plugCommands(server, imp, info, extra));
  return listenConsole(server, sockPath, mode);
}
