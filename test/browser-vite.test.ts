// Vite takes the package as it is: a tiny app that imports `openelm` is built by Vite (an app
// build, offline, no dev server) in a temp folder whose node_modules/openelm links to this
// repository, as an install would. The output holds no Node.js import and no Dawn or Node platform
// code; served as static files, the bundle runs golden models in Chromium with the greedy ids
// Node gets.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { loadModel } from '../src/api.js';
import { GOLDEN_ROOT, goldenNames } from './helpers/golden.js';
import { startStaticServer, type StaticServer } from './helpers/static-server.js';
import { browserUnavailable, launchChromium, newPage, type PageDocument } from './helpers/browser.js';

declare const document: PageDocument;

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// Every token of this prompt is inside the golden models' 384-token vocabulary (browser.test.ts).
const PROMPT = 'in the a b c';
const MAX_TOKENS = 12;

// The app a user would write: load a model by URL and generate, on the page or (for WASM threads)
// in a module Web Worker of the cross-origin-isolated page; the ids go on document.body.dataset.
const APP: Record<string, string> = {
  'index.html': '<!doctype html><title>vite app</title><script type="module" src="./main.js"></script>\n',
  'run.js': `import { loadModel } from 'openelm';

export async function run(q) {
  try {
    const m = await loadModel(q.model, { backend: q.backend, keep: false, threads: q.threads ? Number(q.threads) : undefined });
    const r = await m.generate(q.prompt, { maxTokens: Number(q.max_tokens), temperature: 0 });
    const out = { backend: m.backend.name, threads: m.backend.threads, ids: r.ids };
    m.dispose();
    return out;
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}
`,
  'engine.js': `import { run } from './run.js';
self.onmessage = async (e) => self.postMessage(await run(e.data));
`,
  'main.js': `import { run } from './run.js';

const q = Object.fromEntries(new URLSearchParams(location.search));
q.model = new URL(q.model, location.href).href;
const d = document.body.dataset;
const show = (r) => {
  if (r.error) { d.error = r.error; return; }
  d.backend = r.backend;
  d.threads = String(r.threads);
  d.ids = JSON.stringify(r.ids);
};
if (q.worker === '1') {
  const w = new Worker(new URL('./engine.js', import.meta.url), { type: 'module' });
  w.onmessage = (e) => show(e.data);
  w.onerror = (e) => { d.error = 'the worker failed: ' + e.message; };
  w.postMessage(q);
} else {
  run(q).then(show);
}
`,
};

const skip = browserUnavailable() ?? false;
let tmp: string;
let dist: string;
let written: string[] = [];
const moduleIds: string[] = [];
let srv: StaticServer;
let browser: Browser;

before(async () => {
  if (skip) return;
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-vite-'));
  fs.mkdirSync(path.join(tmp, 'app', 'node_modules'), { recursive: true });
  fs.symlinkSync(ROOT, path.join(tmp, 'app', 'node_modules', 'openelm'), 'dir');
  for (const [f, text] of Object.entries(APP)) fs.writeFileSync(path.join(tmp, 'app', f), text);
  dist = path.join(tmp, 'dist');
  const { build } = await import('vite');
  const out = await build({
    root: path.join(tmp, 'app'), configFile: false, logLevel: 'silent', mode: 'production',
    build: { outDir: dist, emptyOutDir: true, minify: false },
  });
  for (const o of Array.isArray(out) ? out : [out]) {
    if (!('output' in o)) continue;
    for (const f of o.output) if (f.type === 'chunk') moduleIds.push(...f.moduleIds);
  }
  const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.relative(dist, path.join(d, e.name))]));
  written = walk(dist).sort();
  srv = await startStaticServer({ mounts: { '/': dist, '/models/': GOLDEN_ROOT } });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await srv?.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('Vite builds an app that imports openelm: the browser entry, its kernel worker and the tokenizer, and nothing of Node', { skip }, () => {
  const rel = moduleIds.map((m) => path.relative(ROOT, m).split(path.sep).join('/'));
  assert.ok(rel.includes('dist/src/browser/index.js'), 'the `browser` export condition picked the browser entry');
  assert.ok(rel.some((m) => m.startsWith('dist/src/backends/wasm/')), 'the WASM backend is in the bundle');
  const nodeSide = rel.filter((m) => /(^|\/)node_modules\/webgpu\/|^dist\/src\/(platform\/node|io\/(?!(safetensors-reader|safetensors-writer|peft-files)\.)|hub\/|cli\/|serve\/)/.test(m));
  assert.deepEqual(nodeSide, [], `Node-side modules in the Vite bundle: ${nodeSide.join(', ')}`);
  assert.ok(written.some((f) => /^assets\/kernel-worker-[\w-]+\.js$/.test(f)), `Vite emitted the kernel worker: ${written.join(', ')}`);
  assert.ok(written.some((f) => /^assets\/engine-[\w-]+\.js$/.test(f)), 'Vite emitted the app\'s engine worker');
  assert.ok(written.some((f) => /^assets\/tokenizer-[\w-]+\.model$/.test(f)), 'Vite emitted the bundled tokenizer');
  const js = written.filter((f) => f.endsWith('.js'));
  assert.ok(js.length >= 2);
  for (const f of js) {
    const text = fs.readFileSync(path.join(dist, f), 'utf8');
    assert.doesNotMatch(text, /["'`]node:[\w/]+["'`]/, `${f} imports a node: module`);
    assert.doesNotMatch(text, /\b(from|import)\s*\(?\s*["'](webgpu|worker_threads|fs|path|os|module|url)["']/, `${f} imports a Node.js module`);
    // Dawn is started by the Node platform only (src/platform/node-webgpu.ts)
    assert.doesNotMatch(text, /libvulkan\.so\.1|function vulkanLoaderPresent|function nodeWebGpu/, `${f} holds Node's WebGPU code`);
  }
});

test('the Vite bundle runs golden models in Chromium: greedy ids equal Node\'s (wasm on the page, wasm with 2 threads in a worker, webgpu)', { skip }, async () => {
  const runs: [string, Record<string, string>, number][] = [
    ...goldenNames().map((n): [string, Record<string, string>, number] => [n, { backend: 'wasm' }, 1]),
    ['gqa2-hd64', { backend: 'wasm', worker: '1', threads: '2' }, 2],
    ['gqa4-hd32', { backend: 'webgpu' }, 1],
  ];
  for (const [name, how, threads] of runs) {
    const lm = await loadModel(path.join(GOLDEN_ROOT, name), { backend: 'wasm', threads: 2 });
    const want = (await lm.generate(PROMPT, { maxTokens: MAX_TOKENS, temperature: 0 })).ids;
    lm.dispose();
    const { context, page, pageErrors } = await newPage(browser);
    const q = new URLSearchParams({ model: `./models/${name}/`, prompt: PROMPT, max_tokens: String(MAX_TOKENS), ...how });
    await page.goto(`${srv.url}/?${q}`);
    await page.waitForFunction(() => document.body.dataset.ids !== undefined || document.body.dataset.error !== undefined, null, { timeout: 60_000 });
    const d = await page.evaluate(() => ({ ...document.body.dataset }));
    await context.close();
    const label = `${name} ${JSON.stringify(how)}`;
    assert.equal(d.error, undefined, `${label}: ${d.error}`);
    assert.equal(d.backend, how.backend, label);
    assert.equal(Number(d.threads), threads, label);
    assert.deepEqual(JSON.parse(d.ids!), want, `${label}: ids of the Vite bundle differ from Node's`);
    assert.deepEqual(pageErrors, []);
  }
});
