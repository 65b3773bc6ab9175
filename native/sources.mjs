// The one list of the addon's C++ sources, shared by every build of it: prints each .cc file
// under native/src (recursively, sorted) relative to the current directory, one per line.
// Both gyp files (binding.gyp, sanitize/binding.gyp) run it through vde_native.gypi, in their
// own directory, so a new .cc file is compiled into the addon and the sanitizer build alike.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const srcDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'src');

/** Every .cc file under srcDir as a path relative to the current directory, sorted. */
export function nativeSources() {
  return readdirSync(srcDir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.cc'))
    .map((d) => path.relative(process.cwd(), path.join(d.parentPath, d.name)))
    .sort();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(nativeSources().join('\n') + '\n');
}
