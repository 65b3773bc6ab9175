// Build script run by `npm install` (the package's install script, also for a global install of
// the packed tarball): compiles the native addon with node-gyp against the headers of the running
// Node (explicit --nodedir, so nothing is downloaded), then compiles the TypeScript sources to
// dist/ when they are missing or older than the sources. node-gyp is the one npm provides to
// lifecycle scripts (npm_config_node_gyp), else the devDependency of a checkout; TypeScript is
// only needed in a checkout, since the tarball ships dist/ compiled. Fails loudly, naming the
// missing Debian package or npm package, when a build dependency is absent (libslirp-dev,
// libssl-dev: as root on Debian they are installed with apt-get).
//
// `node scripts/build.mjs --dist-only` (the prepack script) only recompiles dist/ from scratch,
// so that a packed tarball never carries compiled files of sources that no longer exist.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const nodedir = path.dirname(path.dirname(process.execPath));
const distOnly = process.argv.includes('--dist-only');

function run(cmd, args, cwd) {
  const r = spawnSync(cmd, args, { cwd, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`build: ${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
    process.exit(1);
  }
}

function fail(message) {
  console.error(`build: ${message}`);
  process.exit(1);
}

/** Returns [command, ...args] that runs node-gyp: npm's own, else the checkout's devDependency. */
function nodeGypCommand() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return fromNpm.endsWith('.js') ? [process.execPath, fromNpm] : [fromNpm];
  try {
    return [process.execPath, require.resolve('node-gyp/bin/node-gyp.js')];
  } catch {
    return fail(
      'node-gyp not found: run the build through npm (npm install, npm rebuild, npm run build: npm passes ' +
        'its own node-gyp in npm_config_node_gyp), or install the dev dependencies of a checkout (npm ci)',
    );
  }
}

/** Compiles src/ to dist/ with the checkout's TypeScript (a devDependency). */
function compileTypeScript() {
  let tsPkg;
  try {
    tsPkg = require.resolve('typescript/package.json');
  } catch {
    fail(`dist/ must be compiled but TypeScript is not installed (a dev dependency): run npm ci in a checkout`);
  }
  const tsc = path.join(path.dirname(tsPkg), JSON.parse(readFileSync(tsPkg, 'utf8')).bin.tsc);
  run(process.execPath, [tsc, '-p', 'tsconfig.json'], root);
}

const distDir = path.join(root, 'dist');
if (distOnly) {
  rmSync(distDir, { recursive: true, force: true });
  compileTypeScript();
  process.exit(0);
}

if (!existsSync(path.join(nodedir, 'include', 'node', 'node_api.h'))) {
  fail(`Node headers not found under ${nodedir}/include/node (install the Debian package nodejs with its headers, or libnode-dev)`);
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
if (!hasSlirp()) fail('libslirp is missing: apt-get install -y libslirp-dev pkg-config');
// OpenSSL's libcrypto (crypt://: AEAD, HKDF, HMAC): the headers of libssl-dev
const hasCrypto = () => existsSync('/usr/include/openssl/evp.h') || spawnSync('pkg-config', ['--exists', 'libcrypto']).status === 0;
if (!hasCrypto() && process.geteuid?.() === 0 && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0) {
  console.error('build: the OpenSSL headers are missing; installing the Debian package libssl-dev');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'libssl-dev'], { stdio: 'inherit', env });
  if (r.status !== 0) {
    spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
    r = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'libssl-dev'], { stdio: 'inherit', env });
  }
}
if (!hasCrypto()) fail('OpenSSL libcrypto headers are missing: apt-get install -y libssl-dev');
const [gyp, ...gypArgs] = nodeGypCommand();
run(gyp, [...gypArgs, 'rebuild', `--nodedir=${nodedir}`, '--jobs=2'], path.join(root, 'native'));
const checkout = existsSync(path.join(root, '.git'));
if (!checkout) {
  // an installed package keeps only the addon: the object files are most of native/build
  const release = path.join(root, 'native', 'build', 'Release');
  for (const d of ['obj.target', '.deps']) rmSync(path.join(release, d), { recursive: true, force: true });
}
// A packed tarball ships dist/ already compiled (and no dev dependencies; its files' mtimes
// say nothing): compile when dist/ is missing, or in a git checkout when sources are newer.
const distMain = path.join(distDir, 'switch', 'main.js');
const newestSource = (dir) =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile() && d.name.endsWith('.ts'))
    .reduce((m, d) => Math.max(m, statSync(path.join(d.parentPath, d.name)).mtimeMs), 0);
const srcDir = path.join(root, 'src');
if (!existsSync(distMain) || (checkout && newestSource(srcDir) > statSync(distMain).mtimeMs)) compileTypeScript();
