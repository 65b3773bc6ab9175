// Build script run by `npm install`: compiles the native addon with node-gyp against the
// headers of the running Node (explicit --nodedir, so nothing is downloaded), then compiles the
// TypeScript sources to dist/. Fails loudly with the missing Debian package when a build
// dependency is absent.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const nodedir = path.dirname(path.dirname(process.execPath));

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`build: ${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
}

if (!existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) {
  console.error(`build: Node headers not found under ${nodedir}/include/node (install the Debian package nodejs with its headers, or libnode-dev)`);
  process.exit(1);
}
// libslirp (user-mode NAT for slirp:// and slirpvde). Debian's slirp.pc requires glib-2.0's .pc,
// which libslirp-dev does not pull in, so the header is accepted as proof too.
const hasSlirp = () => spawnSync('pkg-config', ['--exists', 'slirp']).status === 0 || existsSync('/usr/include/slirp/libslirp.h');
if (!hasSlirp() && process.geteuid?.() === 0 && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0) {
  // as root on Debian the set-up installs the one system library the addon links against
  console.error('build: libslirp is missing; installing the Debian packages libslirp-dev and pkg-config');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'libslirp-dev', 'pkg-config'], { stdio: 'inherit', env });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
    r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'libslirp-dev', 'pkg-config'], { stdio: 'inherit', env });
  }
}
if (!hasSlirp()) {
  console.error('build: libslirp is missing: apt-get install -y libslirp-dev pkg-config');
  process.exit(1);
}
const gyp = require.resolve('node-gyp/bin/node-gyp.js');
run(process.execPath, [gyp, 'rebuild', `--nodedir=${nodedir}`, '--jobs=2'], path.join(root, 'native'));
// A packed tarball ships dist/ already compiled (and no dev dependencies; its files' mtimes
// say nothing): compile when dist/ is missing, or in a git checkout when sources are newer.
const distMain = path.join(root, 'dist', 'switch', 'main.js');
const newestSource = (dir) =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.ts'))
    .reduce((m, d) => Math.max(m, statSync(path.join(d.parentPath, d.name)).mtimeMs), 0);
const srcDir = path.join(root, 'src');
const checkout = existsSync(path.join(root, '.git'));
if (!existsSync(distMain) || (checkout && newestSource(srcDir) > statSync(distMain).mtimeMs)) {
  const tsPkg = require.resolve('typescript/package.json');
  const tsc = path.join(path.dirname(tsPkg), JSON.parse(readFileSync(tsPkg, 'utf8')).bin.tsc);
  run(process.execPath, [tsc, '-p', 'tsconfig.json'], root);
}
