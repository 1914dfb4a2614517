// Builds the optional native GEMM addon (native/openelm_native.c) with node-gyp, the copy that
// ships inside npm. It needs a C compiler and Node's headers (here from the system's Node
// package, found next to the node binary, so nothing is downloaded); at run time it also needs
// a BLAS library (Debian: libdnnl2 or libopenblas0). Without the addon everything runs on WASM.
//
//   node scripts/build-native.mjs [--optional]     (--optional: a failed build is a warning, exit 0)

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const optional = process.argv.includes('--optional');

function stop(msg) {
  console.error(`build-native: ${msg}`);
  process.exit(optional ? 0 : 1);
}

const prefix = path.resolve(path.dirname(process.execPath), '..');
const gyp = [process.env.npm_config_node_gyp, path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')]
  .find((p) => p && existsSync(p));
if (!gyp) stop('node-gyp not found (it ships with npm); the native GEMM stays off');

const args = [gyp, 'rebuild', '--directory', path.join(root, 'native')];
// Node's own headers next to the binary mean node-gyp has nothing to download.
const nodedir = process.env.npm_config_nodedir || (existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : '');
if (nodedir) args.push(`--nodedir=${nodedir}`);
const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (r.status !== 0) {
  const why = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /error|ERR!/.test(l)).slice(0, 6).join('\n');
  stop(`the native addon did not build; the native GEMM stays off\n${why}`);
}
console.log('build-native: built native/build/Release/openelm_native.node');
