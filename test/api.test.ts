import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as api from '../src/index.js';
import { loadModel, type LoadedModel, type DownloadProgress } from '../src/index.js';
import { generate } from '../src/generate/generate.js';
import { tinyModelDir } from './helpers/tiny.js';
import { startFakeHub, folderFiles } from './helpers/fake-hub.js';
import { spawn } from 'node:child_process';

// A tiny random model over the real vocabulary, in a folder whose name marks it as -Instruct.
const raw = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 256, rope_max_length: 256 }, 21);
const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-api-')), 'OpenELM-tiny-Instruct');
fs.renameSync(raw, dir);

const models: LoadedModel[] = [];
after(() => { for (const m of models) m.dispose(); });
async function load(source = dir, opts: api.LoadModelOptions = {}) {
  const m = await loadModel(source, { backend: 'js', ...opts });
  models.push(m);
  return m;
}

test('public exports: the library API and the main lower-level pieces', () => {
  for (const name of ['loadModel', 'LoadedModel', 'ChatSession', 'ensureModel', 'createServer', 'corenetInstructTemplate', 'encodeChatText',
    'Tokenizer', 'loadTokenizer', 'OpenELM', 'KVCache', 'generate', 'generateStream', 'generateMany', 'resolveConfig', 'OpenELMError', 'TextStream']) {
    assert.ok(name in api, name);
  }
});

test('loadModel + generate: greedy by default, repetition penalty 1.2 for -Instruct, same ids as the low-level generate', async () => {
  const m = await load();
  assert.equal(m.isInstruct, true);
  assert.deepEqual(m.defaultOptions(), { temperature: 0, repetitionPenalty: 1.2 });
  assert.equal(m.config.numLayers, 2);
  const r = await m.generate('Once upon a time', { maxTokens: 6 });
  const low = await generate(m.model, m.tokenizer, m.tokenizer.encode('Once upon a time', { bos: true }), { temperature: 0, repetitionPenalty: 1.2, maxTokens: 6 });
  assert.deepEqual(r.ids, low.ids);
  assert.equal(r.text, low.text);
  assert.equal(r.promptTokens, 5);
  // Token-id prompts are used as given; options override the defaults.
  const r2 = await m.generate([1, 15043], { maxTokens: 3, repetitionPenalty: 1 });
  assert.deepEqual(r2.ids, (await generate(m.model, m.tokenizer, [1, 15043], { temperature: 0, maxTokens: 3 })).ids);
});

test('stream: chunks add up to the result; AbortSignal and an early break end it with "abort"', async () => {
  const m = await load();
  const s = m.stream('Hello', { maxTokens: 8, ignoreEos: true });
  let text = '', n = 0;
  for await (const c of s) { text += c.text; n += c.ids.length; }
  const r = await s.result;
  assert.equal(text, r.text);
  assert.equal(n, 8);
  assert.equal(r.finishReason, 'length');
  const ac = new AbortController();
  const s2 = m.stream('Hello', { maxTokens: 50, ignoreEos: true, signal: ac.signal });
  let k = 0;
  for await (const _ of s2) if (++k === 2) ac.abort();
  assert.equal((await s2.result).finishReason, 'abort');
  assert.equal((await s2.result).ids.length, 2);
  const s3 = m.stream('Hello', { maxTokens: 50, ignoreEos: true });
  for await (const _ of s3) break;
  const r3 = await s3.result;
  assert.equal(r3.finishReason, 'abort');
  assert.equal(r3.ids.length, 1);
  assert.equal((await m.generate('Hi', { maxTokens: 5, signal: AbortSignal.abort() })).finishReason, 'abort');
});

test('chat(): sessions keep the KV cache between turns', async () => {
  const m = await load();
  const chat = m.chat({ system: 'Be brief.', defaults: { maxTokens: 4 } });
  const a = await chat.send('Hi');
  const b = await chat.send('More');
  assert.equal(a.cachedTokens, 0);
  assert.ok(b.cachedTokens >= a.promptTokens, `${b.cachedTokens} >= ${a.promptTokens}`);
  assert.equal(chat.messages.length, 5);
});

test('dispose, bad sources, aborted loads', async () => {
  const m = await loadModel(dir, { backend: 'js' });
  m.dispose();
  assert.equal(m.isDisposed, true);
  assert.throws(() => m.stream('x'), /this model was disposed/);
  await assert.rejects(loadModel('no/such/folder/here'), /no\/such\/folder\/here is neither a model folder nor a hub id/);
  await assert.rejects(loadModel(dir, { signal: AbortSignal.abort() }), { name: 'AbortError' });
  await assert.rejects(loadModel(dir, { backend: 'gpu' as 'js' }), /unknown backend "gpu"/);
});

test('loadModel(hub id): downloads through the hub client with progress, then loads offline from the cache', async () => {
  const hub = await startFakeHub({ 'apple/OpenELM-tiny-Instruct': { files: folderFiles(dir) } });
  try {
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-api-hub-'));
    const events: DownloadProgress[] = [];
    process.env.HF_ENDPOINT = hub.url;
    const m = await load('apple/OpenELM-tiny-Instruct', { cacheDir, onProgress: (p) => events.push(p) });
    assert.ok(m.dir.includes(path.join('models--apple--OpenELM-tiny-Instruct', 'snapshots')));
    assert.equal(m.isInstruct, true);
    assert.ok(events.some((e) => e.file === 'model.safetensors' && e.done));
    const n = hub.log.length;
    const m2 = await load('apple/OpenELM-tiny-Instruct', { cacheDir, offline: true });
    assert.equal(m2.dir, m.dir);
    assert.equal(hub.log.length, n);
  } finally {
    delete process.env.HF_ENDPOINT;
    await hub.close();
  }
});

// The README examples (test/examples/*.ts, importing 'openelm' by name) run against the tiny model.
const EXAMPLES = fileURLToPath(new URL('./examples/', import.meta.url));

function runExample(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [path.join(EXAMPLES, `${name}.js`), ...args], { env: { ...process.env, ...env } });
  let stdout = '', stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve) => child.on('close', (code) => { clearTimeout(t); resolve({ status: code ?? -1, stdout, stderr }); }));
}

test('examples/generate', async () => {
  const r = await runExample('generate', [dir]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\n\[(length|stop); [\d.]+ tokens\/s\]\n$/);
});

test('examples/chat', async () => {
  const r = await runExample('chat', [dir]);
  assert.equal(r.status, 0, r.stderr);
  const stats = [...r.stdout.matchAll(/\[(\d+) new prompt tokens, (\d+) reused from the cache\]/g)];
  assert.equal(stats.length, 2);
  assert.equal(Number(stats[0][2]), 0);
  assert.ok(Number(stats[1][2]) > 0, 'the second turn reuses the cache');
});

test('examples/server', async () => {
  const r = await runExample('server', [dir]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\n\[done\]\n$/);
});

test('examples/download (against a local stand-in for the hub)', async () => {
  const hub = await startFakeHub({ 'apple/OpenELM-tiny-Instruct': { files: folderFiles(dir) } });
  try {
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-ex-hub-'));
    const r = await runExample('download', ['apple/OpenELM-tiny-Instruct'], { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(fs.existsSync(path.join(r.stdout.trim(), 'model.safetensors')));
    assert.match(r.stderr, /model\.safetensors: \d+ bytes/);
  } finally {
    await hub.close();
  }
});

