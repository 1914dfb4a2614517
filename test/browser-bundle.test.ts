// Bundlers take the browser entry as it is: esbuild bundles it for platform=browser, and any Node.js
// module on its import graph fails the build (scripts/build-web.mjs noNodeModules). Also checks the
// package's `browser` export condition and the web app build.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
type Plugin = esbuild.Plugin;
const { noNodeModules, buildWeb } = await import(path.join(ROOT, 'scripts/build-web.mjs')) as {
  noNodeModules(): Plugin; buildWeb(o: { out: string; logLevel?: string; minify?: boolean }): Promise<string[]>;
};

async function bundle(opts: esbuild.BuildOptions): Promise<esbuild.BuildResult & { text: string }> {
  const r = await esbuild.build({
    bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent', absWorkingDir: ROOT,
    plugins: [noNodeModules()], metafile: true, ...opts,
  });
  return { ...r, text: new TextDecoder().decode(r.outputFiles![0].contents) };
}

test('esbuild bundles the browser entry for browsers, with no Node.js module on its path', async () => {
  const r = await bundle({ entryPoints: ['src/browser/index.ts'] });
  const inputs = Object.keys(r.metafile!.inputs);
  assert.ok(inputs.includes('src/browser/index.ts'));
  assert.ok(inputs.some((f) => f.startsWith('src/backends/wasm/')), 'the WASM backend is in the bundle');
  assert.ok(inputs.includes('src/backends/webgpu/webgpu-backend.ts'), 'the WebGPU backend is in the bundle');
  // Dawn (npm `webgpu`) is Node's way to WebGPU, reached only through platform/node-webgpu.ts
  const dawn = inputs.filter((f) => /(^|\/)node_modules\/webgpu\/|^src\/platform\/node/.test(f));
  assert.deepEqual(dawn, [], `Node's WebGPU in the bundle: ${dawn.join(', ')}`);
  // Of io/ and train/ only the byte-level safetensors code and the optimizer the page's trainer shares.
  const nodeSide = inputs.filter((f) => /^src\/(io\/(?!(safetensors-reader|safetensors-writer|peft-files)\.)|train\/(?!(adamw|clip)\.)|hub\/|cli\/|serve\/|platform\/node)/.test(f));
  assert.deepEqual(nodeSide, [], `Node-side modules in the bundle: ${nodeSide.join(', ')}`);
  assert.ok(inputs.includes('src/browser/full-finetune.ts') && inputs.includes('src/browser/lora-finetune.ts'), 'the page\'s trainers are in the bundle');
  assert.match(r.text, /export\s*\{[^}]*loadModel/);
});

test('the check fails the bundle when a module on the path imports Node.js', async () => {
  for (const spec of ['node:fs', 'fs', 'worker_threads', 'fs/promises', 'webgpu']) {
    await assert.rejects(
      bundle({ stdin: { contents: `import '${spec}'; export * from './src/browser/index.js';`, resolveDir: ROOT, loader: 'ts', sourcefile: 'probe.ts' } }),
      (e: Error) => new RegExp(`probe\\.ts imports the Node\\.js module "${spec}"`).test(e.message),
      spec,
    );
  }
  // and through a real file of the repo (the Node entry imports the Node platform)
  await assert.rejects(bundle({ entryPoints: ['src/index.ts'] }), /imports the Node\.js module "node:/);
});

test('the package\'s browser condition resolves to the browser entry; Node gets the Node entry', async () => {
  const probe = { contents: "export { loadModel, inspectModel } from 'openelm';", resolveDir: ROOT, sourcefile: 'app.js' };
  const browser = await bundle({ stdin: probe });
  assert.ok(Object.keys(browser.metafile!.inputs).includes('dist/src/browser/index.js'));
  await assert.rejects(bundle({ stdin: { contents: "export { loadModel } from 'openelm';", resolveDir: ROOT }, platform: 'node', plugins: [noNodeModules()] }),
    /imports the Node\.js module/);
});

test('npm run build:web writes a static app: page, engine worker, kernel worker, service worker, tokenizer', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-web-build-'));
  try {
    const files = await buildWeb({ out, logLevel: 'error' });
    for (const f of ['index.html', 'app.js', 'app.css', 'engine-worker.js', 'kernel-worker.js', 'sw.js', 'tokenizer.model', '_headers']) {
      assert.ok(files.includes(f), `${f} missing from ${files.join(', ')}`);
    }
    assert.match(fs.readFileSync(path.join(out, 'index.html'), 'utf8'), /<script type="module" src="\.\/app\.js">/);
    assert.match(fs.readFileSync(path.join(out, '_headers'), 'utf8'), /Cross-Origin-Embedder-Policy: require-corp/);
    // the kernel worker carries the loop, not a second copy of the kernels
    assert.ok(fs.statSync(path.join(out, 'kernel-worker.js')).size < 20_000);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
