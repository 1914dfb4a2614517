import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureModel, cachedModel, type DownloadProgress } from '../src/hub/index.js';
import { loadModelFolder as loadModel } from '../src/io/model-folder.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import { saveModel } from '../src/io/model-folder.js';
import { tinyModel, tinyModelDir } from './helpers/tiny.js';
import { startFakeHub, folderFiles, sha256, type FakeHub } from './helpers/fake-hub.js';
import { runCliAsync } from './helpers/cli-async.js';

const modelDir = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2 }, 5);
const files = folderFiles(modelDir);
const weights = files['model.safetensors'];
const weightsSha = sha256(weights);

function shardedFiles(): Record<string, Buffer> {
  const { config, layout, host } = tinyModel({ vocab_size: 320, num_transformer_layers: 2 }, 9);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-shard-'));
  saveModel(dir, config, layout, host, { maxShardBytes: 40_000 });
  return folderFiles(dir);
}

const sharded = shardedFiles();
const hub: FakeHub = await startFakeHub({
  'apple/OpenELM-tiny-Instruct': { files },
  'apple/Gated-tiny': { files, gated: true },
  'apple/Sharded-tiny': { files: sharded },
  'apple/NoWeights': { files: { 'config.json': files['config.json'] } },
});
after(() => hub.close());

const tmpCache = () => fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-hubcache-'));
const gets = (from: number) => hub.log.slice(from).filter((r) => r.method === 'GET');

test('fresh download: HF cache layout, verified blobs, loadable snapshot, token never sent to the CDN', async () => {
  const cacheDir = tmpCache();
  const events: DownloadProgress[] = [];
  const from = hub.log.length;
  const snap = await ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: hub.url, cacheDir, token: 'hf_good', onProgress: (p) => events.push(p) });
  const root = path.join(cacheDir, 'models--apple--OpenELM-tiny-Instruct');
  const commit = fs.readFileSync(path.join(root, 'refs', 'main'), 'utf8');
  assert.match(commit, /^[0-9a-f]{40}$/);
  assert.equal(snap, path.join(root, 'snapshots', commit));
  const link = path.join(snap, 'model.safetensors');
  assert.ok(fs.lstatSync(link).isSymbolicLink());
  assert.equal(fs.readlinkSync(link), path.join('..', '..', 'blobs', weightsSha));
  assert.deepEqual(fs.readFileSync(link), weights);
  assert.deepEqual(fs.readFileSync(path.join(snap, 'config.json')), files['config.json']);
  // Optional files the repo lacks are remembered as missing, as huggingface_hub does.
  assert.ok(fs.existsSync(path.join(root, '.no_exist', commit, 'tokenizer.model')));
  assert.equal(fs.readdirSync(path.join(root, 'blobs')).filter((f) => f.endsWith('.incomplete')).length, 0);
  const done = events.filter((e) => e.done && e.file === 'model.safetensors');
  assert.equal(done.length, 1);
  assert.equal(done[0].downloaded, weights.length);
  const reqs = hub.log.slice(from);
  assert.ok(reqs.some((r) => r.path.startsWith('/cdn/')));
  for (const r of reqs) assert.equal(r.auth, r.path.startsWith('/cdn/') ? undefined : 'Bearer hf_good', `${r.method} ${r.path}`);
  const be = new JsBackend();
  const m = loadModel(snap, { backend: be });
  assert.equal(m.config.numLayers, 2);
  be.dispose();
});

test('cache hit: only one HEAD to resolve the branch, no downloads; a cached commit needs no network', async () => {
  const cacheDir = tmpCache();
  const snap = await ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: hub.url, cacheDir });
  const from = hub.log.length;
  assert.equal(await ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: hub.url, cacheDir }), snap);
  assert.deepEqual(hub.log.slice(from).map((r) => `${r.method} ${path.basename(r.path)}`), ['HEAD config.json']);
  const commit = path.basename(snap);
  const from2 = hub.log.length;
  assert.equal(await ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: hub.url, cacheDir, revision: commit }), snap);
  assert.equal(hub.log.length, from2);
});

test('offline mode uses the cache only, and says so clearly when the model is absent', async () => {
  const cacheDir = tmpCache();
  await assert.rejects(ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: hub.url, cacheDir, offline: true }),
    /offline mode \(HF_HUB_OFFLINE\) is on and apple\/OpenELM-tiny-Instruct@main is not in the cache/);
  const snap = await ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: hub.url, cacheDir });
  const from = hub.log.length;
  assert.equal(await ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: 'http://127.0.0.1:1', cacheDir, offline: true }), snap);
  assert.equal(hub.log.length, from, 'no request in offline mode');
  assert.equal(cachedModel('apple/OpenELM-tiny-Instruct', { cacheDir }), snap);
});

test('unreachable hub: falls back to a cached copy with a warning, else a clear error', async () => {
  const cacheDir = tmpCache();
  const dead = 'http://127.0.0.1:9'; // discard port: connection refused
  await assert.rejects(ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: dead, cacheDir, maxAttempts: 1 }),
    /cannot reach http:\/\/127\.0\.0\.1:9.*not in the cache/);
  const snap = await ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: hub.url, cacheDir });
  const warnings: string[] = [];
  assert.equal(await ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: dead, cacheDir, onWarning: (w) => warnings.push(w) }), snap);
  assert.match(warnings[0], /using the cached copy/);
});

test('resume: a connection cut mid-file continues with a Range request', async () => {
  const cacheDir = tmpCache();
  const from = hub.log.length;
  hub.cutNext(10_000);
  const snap = await ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: hub.url, cacheDir });
  assert.deepEqual(fs.readFileSync(path.join(snap, 'model.safetensors')), weights);
  const cdn = gets(from).filter((r) => r.path.startsWith('/cdn/'));
  assert.equal(cdn.length, 2);
  assert.equal(cdn[0].range, undefined);
  assert.equal(cdn[1].range, 'bytes=10000-');
});

test('resume: a partial file left by an earlier run is continued, not restarted', async () => {
  const cacheDir = tmpCache();
  const blobs = path.join(cacheDir, 'models--apple--OpenELM-tiny-Instruct', 'blobs');
  fs.mkdirSync(blobs, { recursive: true });
  fs.writeFileSync(path.join(blobs, `${weightsSha}.incomplete`), weights.subarray(0, 5000));
  const from = hub.log.length;
  const snap = await ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: hub.url, cacheDir });
  assert.deepEqual(fs.readFileSync(path.join(snap, 'model.safetensors')), weights);
  const cdn = gets(from).filter((r) => r.path.startsWith('/cdn/'));
  assert.deepEqual(cdn.map((r) => r.range), ['bytes=5000-']);
});

test('corrupt partial file: sha256 mismatch, deleted and downloaded again from scratch', async () => {
  const cacheDir = tmpCache();
  const blobs = path.join(cacheDir, 'models--apple--OpenELM-tiny-Instruct', 'blobs');
  fs.mkdirSync(blobs, { recursive: true });
  fs.writeFileSync(path.join(blobs, `${weightsSha}.incomplete`), Buffer.alloc(5000, 7));
  const from = hub.log.length;
  const snap = await ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: hub.url, cacheDir });
  assert.deepEqual(fs.readFileSync(path.join(snap, 'model.safetensors')), weights);
  assert.deepEqual(gets(from).filter((r) => r.path.startsWith('/cdn/')).map((r) => r.range), ['bytes=5000-', undefined]);
});

test('a server that keeps sending corrupt bytes gives a clear error and leaves no partial file', async () => {
  const cacheDir = tmpCache();
  hub.corruptNext(5);
  await assert.rejects(ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: hub.url, cacheDir }),
    /model\.safetensors from apple\/OpenELM-tiny-Instruct: the file is corrupt \(sha256 [0-9a-f]+ instead of [0-9a-f]+\) even after a fresh download/);
  hub.corruptNext(0);
  const blobs = path.join(cacheDir, 'models--apple--OpenELM-tiny-Instruct', 'blobs');
  assert.deepEqual(fs.readdirSync(blobs).filter((f) => f.startsWith(weightsSha)), []);
});

test('404s: unknown file, revision and weights, with what to check', async () => {
  const cacheDir = tmpCache();
  await assert.rejects(ensureModel('apple/NoWeights', { endpoint: hub.url, cacheDir }), /apple\/NoWeights@main has neither model\.safetensors nor model\.safetensors\.index\.json/);
  await assert.rejects(ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: hub.url, cacheDir, revision: 'v9' }), /revision "v9" does not exist in apple\/OpenELM-tiny-Instruct \(HTTP 404\)/);
  await assert.rejects(ensureModel('apple/Nope', { endpoint: hub.url, cacheDir, token: 'hf_good' }), /repository apple\/Nope was not found .*HTTP 404/);
  await assert.rejects(ensureModel('not a repo', { endpoint: hub.url, cacheDir }), /is not a hub model id/);
});

test('401/403: gated or private repos say to set HF_TOKEN; the right token works', async () => {
  const cacheDir = tmpCache();
  await assert.rejects(ensureModel('apple/Gated-tiny', { endpoint: hub.url, cacheDir, token: '' }), /apple\/Gated-tiny is gated or private \(HTTP 401\).*set HF_TOKEN/);
  await assert.rejects(ensureModel('apple/Gated-tiny', { endpoint: hub.url, cacheDir, token: 'hf_bad' }), /gated or private \(HTTP 403\).*HF_TOKEN sent was not accepted/);
  await assert.rejects(ensureModel('apple/Private', { endpoint: hub.url, cacheDir, token: '' }), /repository apple\/Private was not found .*HTTP 401.*set HF_TOKEN/);
  const snap = await ensureModel('apple/Gated-tiny', { endpoint: hub.url, cacheDir, token: 'hf_good' });
  assert.ok(fs.existsSync(path.join(snap, 'model.safetensors')));
});

test('sharded checkpoints: the index and every shard are fetched', async () => {
  const cacheDir = tmpCache();
  assert.ok(Object.keys(sharded).filter((f) => f.endsWith('.safetensors')).length >= 2);
  const snap = await ensureModel('apple/Sharded-tiny', { endpoint: hub.url, cacheDir });
  for (const f of Object.keys(sharded)) assert.deepEqual(fs.readFileSync(path.join(snap, f)), sharded[f], f);
  assert.equal(cachedModel('apple/Sharded-tiny', { cacheDir }), snap);
  const be = new JsBackend();
  loadModel(snap, { backend: be });
  be.dispose();
});

test('CLI: openelm download, then generate --model <hub id> from the cache (HF_HUB_OFFLINE=1)', async () => {
  const cacheDir = tmpCache();
  const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cacheDir, HF_TOKEN: '' };
  const d = await runCliAsync(['download', '--model', 'apple/OpenELM-tiny-Instruct'], { env });
  assert.equal(d.status, 0, d.stderr);
  const snap = d.stdout.trim();
  assert.ok(fs.existsSync(path.join(snap, 'model.safetensors')));
  assert.match(d.stderr, /model\.safetensors/);
  const g = await runCliAsync(['generate', '--model', 'apple/OpenELM-tiny-Instruct', '--prompt', 'Hi', '--max-tokens', '3', '--json', '--backend', 'js'], { env: { ...env, HF_HUB_OFFLINE: '1' } });
  assert.equal(g.status, 0, g.stderr);
  assert.equal(JSON.parse(g.stdout).prompt_tokens, 2);
  const missing = await runCliAsync(['download', '--model', 'apple/Nope'], { env: { ...env, HF_HUB_OFFLINE: '1' } });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^openelm download: offline mode \(HF_HUB_OFFLINE\) is on/);
});

test('two concurrent downloads of the same model fetch each blob once', async () => {
  const cacheDir = tmpCache();
  const from = hub.log.length;
  const [a, b] = await Promise.all([
    ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: hub.url, cacheDir }),
    ensureModel('apple/OpenELM-tiny-Instruct', { endpoint: hub.url, cacheDir }),
  ]);
  assert.equal(a, b);
  assert.equal(gets(from).filter((r) => r.path.startsWith('/cdn/')).length, 1);
  assert.deepEqual(fs.readFileSync(path.join(a, 'model.safetensors')), weights);
});

test('token: $HF_TOKEN first, else the saved login token ($HF_TOKEN_PATH or $HF_HOME/token)', async () => {
  const { hubToken } = await import('../src/hub/index.js');
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-hftoken-'));
  try {
    assert.equal(hubToken({ HF_HOME: home }), undefined);
    fs.writeFileSync(path.join(home, 'token'), 'hf_saved\n');
    assert.equal(hubToken({ HF_HOME: home }), 'hf_saved');
    assert.equal(hubToken({ HF_HOME: home, HF_TOKEN: 'hf_env' }), 'hf_env');
    assert.equal(hubToken({ HF_HOME: home, HF_TOKEN: '', HUGGING_FACE_HUB_TOKEN: 'hf_old' }), 'hf_old');
    fs.writeFileSync(path.join(home, 'other'), 'hf_path');
    assert.equal(hubToken({ HF_HOME: home, HF_TOKEN_PATH: path.join(home, 'other') }), 'hf_path');
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});
