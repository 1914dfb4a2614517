#!/usr/bin/env node
// Builds the web app into a static folder (default dist/web/): the page (app.js), the engine worker
// (engine-worker.js), the WASM kernel thread (kernel-worker.js), the cross-origin-isolation service
// worker (sw.js), the static files, and the bundled Llama-2 tokenizer. The bundles are made for
// the browser: a Node.js module anywhere on their path fails the build.
//
//   npm run build:web [-- --out DIR] [-- --no-minify]

import * as esbuild from 'esbuild';
import { builtinModules } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BUILTINS = new Set(builtinModules);
// npm packages that only run in Node.js: `webgpu` is Dawn, a native addon (Node's way to WebGPU;
// browsers have navigator.gpu).
const NODE_ONLY_PACKAGES = new Set(['webgpu']);

/** An esbuild plugin that fails on any Node.js builtin or Node-only package import, naming the file that imports it. */
export function noNodeModules() {
  return {
    name: 'no-node-modules',
    setup(build) {
      build.onResolve({ filter: /.*/ }, (args) => {
        const s = args.path;
        if (s.startsWith('node:') || BUILTINS.has(s) || BUILTINS.has(s.split('/')[0]) || NODE_ONLY_PACKAGES.has(s.split('/')[0])) {
          const from = args.importer ? path.relative(ROOT, args.importer) : '(entry)';
          return { errors: [{ text: `${from} imports the Node.js module "${s}", which browsers do not have` }] };
        }
        return undefined;
      });
    },
  };
}

/** Build the app into `out`; returns the list of files written. */
export async function buildWeb({ out = path.join(ROOT, 'dist', 'web'), minify = true, logLevel = 'warning' } = {}) {
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  const common = {
    bundle: true, platform: 'browser', target: ['chrome111', 'firefox115', 'safari16.4'], minify, sourcemap: true,
    legalComments: 'linked', logLevel, absWorkingDir: ROOT, plugins: [noNodeModules()],
  };
  await esbuild.build({
    ...common, format: 'esm', outdir: out,
    entryPoints: {
      app: 'src/web/app.ts',
      'engine-worker': 'src/web/engine-worker.ts',
      'kernel-worker': 'src/browser/kernel-worker.ts',
    },
  });
  // Service workers are classic scripts where module service workers are not supported.
  await esbuild.build({ ...common, format: 'iife', outfile: path.join(out, 'sw.js'), entryPoints: ['src/web/coi-sw.ts'] });
  for (const f of fs.readdirSync(path.join(ROOT, 'src/web/static'))) fs.copyFileSync(path.join(ROOT, 'src/web/static', f), path.join(out, f));
  fs.copyFileSync(path.join(ROOT, 'assets/tokenizer/tokenizer.model'), path.join(out, 'tokenizer.model'));
  fs.copyFileSync(path.join(ROOT, 'assets/tokenizer/LICENSE-LLAMA2'), path.join(out, 'LICENSE-LLAMA2.txt'));
  return fs.readdirSync(out).sort();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const i = args.indexOf('--out');
  const out = i >= 0 ? path.resolve(args[i + 1]) : undefined;
  try {
    const files = await buildWeb({ out, minify: !args.includes('--no-minify') });
    process.stdout.write(`build:web: ${files.length} files in ${path.relative(process.cwd(), out ?? path.join(ROOT, 'dist', 'web')) || '.'}\n`);
  } catch (e) {
    process.stderr.write(`build:web: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}\n`);
    process.exitCode = 1;
  }
}
