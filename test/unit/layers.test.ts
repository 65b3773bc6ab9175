// The shape of src/: tools never import each other, shared code lives in layers that only import
// layers below them (native < core < protocol < ports < tools), and no module imports itself
// through a cycle (type-only imports included, as madge counts them).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');
const LAYERS: Record<string, number> = { native: 0, core: 1, protocol: 2, ports: 3 };
const TOOLS = ['switch', 'plug', 'slirp', 'vdecmd', 'wirefilter', 'capture'];

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    return d.isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Every relative import of a file, resolved to the .ts file it names. */
function imports(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|^import\s+)['"](\.[^'"]+)['"]/gm)].map((m) => m[1]);
  return specs.map((s) => path.resolve(path.dirname(file), s.replace(/\.js$/, '.ts')));
}

function folderOf(file: string): string {
  return path.relative(SRC, file).split(path.sep)[0];
}

const files = sources(SRC);
const graph = new Map(files.map((f) => [f, imports(f)]));

describe('src/ layers', () => {
  it('every import names an existing file', () => {
    for (const [f, deps] of graph) for (const d of deps) expect(fs.existsSync(d), `${path.relative(SRC, f)} imports ${path.relative(SRC, d)}`).toBe(true);
  });

  it('tools never import another tool', () => {
    const bad: string[] = [];
    for (const [f, deps] of graph) {
      const from = folderOf(f);
      if (!TOOLS.includes(from)) continue;
      for (const d of deps) {
        const to = folderOf(d);
        if (TOOLS.includes(to) && to !== from) bad.push(`${path.relative(SRC, f)} -> ${path.relative(SRC, d)}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('shared layers import only themselves and layers below, never a tool', () => {
    const bad: string[] = [];
    for (const [f, deps] of graph) {
      const from = folderOf(f);
      if (!(from in LAYERS)) continue;
      for (const d of deps) {
        const to = folderOf(d);
        if (!(to in LAYERS) || LAYERS[to] > LAYERS[from]) bad.push(`${path.relative(SRC, f)} -> ${path.relative(SRC, d)}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('has no import cycles', () => {
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, stack: string[]): void => {
      if (state.get(f) === 'done') return;
      if (state.get(f) === 'open') {
        cycles.push([...stack.slice(stack.indexOf(f)), f].map((x) => path.relative(SRC, x)).join(' -> '));
        return;
      }
      state.set(f, 'open');
      for (const d of graph.get(f) ?? []) visit(d, [...stack, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    expect(cycles).toEqual([]);
  });

  it('bin/ entry points stay thin', () => {
    const bin = path.join(SRC, '..', 'bin');
    for (const name of fs.readdirSync(bin)) expect(fs.readFileSync(path.join(bin, name), 'utf8').trim().split('\n').length, name).toBeLessThanOrEqual(5);
  });
});
