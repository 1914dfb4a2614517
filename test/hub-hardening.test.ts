// Hub downloads against bad endpoints and bad mirrors: every file is checked against the hub's
// ETag before it enters the cache (sha256 for LFS files, the git blob hash otherwise), a mirror
// serving an HTML page cannot poison the cache, `download --force` repairs a damaged cache, a bad
// HF_ENDPOINT is one clear line, and Ctrl-C says how to resume.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { ensureModel } from '../src/hub/index.js';
import { tinyModelDir } from './helpers/tiny.js';
import { startFakeHub, folderFiles, sha256, type FakeHub } from './helpers/fake-hub.js';
import { runCliAsync, spawnCli } from './helpers/cli-async.js';

const ID = 'apple/OpenELM-tiny-Instruct';
const files = folderFiles(tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2 }, 7));
const weightsSha = sha256(files['model.safetensors']);
const hub: FakeHub = await startFakeHub({ [ID]: { files } });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-hub-hard-'));
after(async () => { await hub.close(); fs.rmSync(tmp, { recursive: true, force: true }); });

let k = 0;
const freshCache = () => { const d = path.join(tmp, `cache${k++}`); fs.mkdirSync(d); return d; };
const repoRoot = (cache: string) => path.join(cache, 'models--apple--OpenELM-tiny-Instruct');
/** Every file under a folder, relative (symlinks listed, not followed). */
function tree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => !fs.statSync(path.join(dir, f), { throwIfNoEntry: false })?.isDirectory()).sort();
}
const commitOf = async () => (await fetch(`${hub.url}/${ID}/resolve/main/config.json`, { method: 'HEAD' })).headers.get('x-repo-commit')!;

/** A "mirror" that answers every file with 200, an HTML page and the given ETag (and the hub's real commit). */
async function htmlMirror(etag: string): Promise<{ url: string; close: () => Promise<void> }> {
  const commit = await commitOf();
  const page = Buffer.from('<!doctype html><html><body><h1>Welcome to our mirror!</h1></body></html>\n');
  const s = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html', 'content-length': page.length, etag: `"${etag}"`, 'x-repo-commit': commit });
    res.end(req.method === 'HEAD' ? undefined : page);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); }) };
}

test('HF_ENDPOINT without a scheme (or otherwise not an http(s) URL) is one clear line', async () => {
  const cases: [string, RegExp][] = [
    ['host.example', /HF_ENDPOINT "host\.example" is not a URL; give the scheme too, e\.g\. https:\/\/host\.example$/],
    ['host.example:8080', /HF_ENDPOINT "host\.example:8080" must be an http:\/\/ or https:\/\/ URL; give the scheme too, e\.g\. https:\/\/host\.example:8080$/],
    ['ftp://host.example', /HF_ENDPOINT "ftp:\/\/host\.example" must be an http:\/\/ or https:\/\/ URL/],
    ['http://', /HF_ENDPOINT "http:\/\/" is not a URL/],
  ];
  for (const [endpoint, re] of cases) {
    for (const args of [['download', ID], ['generate', '--model', ID, '--prompt', 'x']]) {
      const r = await runCliAsync(args, { env: { HF_ENDPOINT: endpoint, HF_HUB_CACHE: freshCache(), HF_HUB_OFFLINE: '' } });
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr.trim(), re);
      assert.doesNotMatch(r.stderr, /internal error|TypeError/);
    }
  }
});

test('a mirror answering with an HTML page and a made-up ETag cannot poison the cache; the real hub then works', async () => {
  const cacheDir = freshCache();
  const cases: [string, RegExp][] = [
    ['0123456789abcdef0123456789abcdef01234567', /config\.json from apple\/OpenELM-tiny-Instruct: the file is corrupt \(git blob sha1 [0-9a-f]{40} instead of 0123456789abcdef0123456789abcdef01234567\) even after a fresh download, so it was not cached/],
    ['a'.repeat(64), /the file is corrupt \(sha256 [0-9a-f]{64} instead of a{64}\)/],
    ['v1-made-up', /sent the ETag "v1-made-up" for config\.json in apple\/OpenELM-tiny-Instruct, which is neither a sha256 nor a git blob hash, so the file cannot be verified/],
    ['../../../../escape', /neither a sha256 nor a git blob hash/],
  ];
  for (const [etag, re] of cases) {
    const mirror = await htmlMirror(etag);
    try {
      const r = await runCliAsync(['download', ID], { env: { HF_ENDPOINT: mirror.url, HF_HUB_CACHE: cacheDir } });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr.trim().split('\n').pop()!, re);
      assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
      assert.deepEqual(tree(path.join(repoRoot(cacheDir), 'blobs')), [], `no blob entered the cache (${etag})`);
      assert.deepEqual(tree(path.join(repoRoot(cacheDir), 'snapshots')), []);
      assert.ok(!fs.existsSync(path.join(repoRoot(cacheDir), 'refs', 'main')));
      assert.ok(!fs.existsSync(path.join(tmp, 'escape')));
    } finally {
      await mirror.close();
    }
  }
  const good = await runCliAsync(['download', ID], { env: { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cacheDir } });
  assert.equal(good.status, 0, good.stderr);
  const snap = good.stdout.trim();
  for (const f of ['config.json', 'model.safetensors']) assert.deepEqual(fs.readFileSync(path.join(snap, f)), files[f], f);
});

test('download --force checks every cached file against the hub and repairs a poisoned cache', async () => {
  const cacheDir = freshCache();
  const snap = await ensureModel(ID, { endpoint: hub.url, cacheDir });
  const html = Buffer.from('<html>not a model</html>');
  // As an unverifying downloader would have left it: the weights blob holds a web page, and
  // config.json points at a blob named by a made-up ETag.
  fs.writeFileSync(path.join(repoRoot(cacheDir), 'blobs', weightsSha), html);
  const fake = 'f'.repeat(40);
  fs.writeFileSync(path.join(repoRoot(cacheDir), 'blobs', fake), html);
  fs.rmSync(path.join(snap, 'config.json'));
  fs.symlinkSync(path.join('..', '..', 'blobs', fake), path.join(snap, 'config.json'));
  const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cacheDir };
  const broken = await runCliAsync(['generate', '--model', ID, '--prompt', 'x', '--max-tokens', '1', '--backend', 'js'], { env });
  assert.equal(broken.status, 1);
  const r = await runCliAsync(['download', ID, '--force'], { env });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), snap);
  assert.match(r.stderr, new RegExp(`warning: the cached model\\.safetensors \\(.*${weightsSha}\\) does not match the hub's hash ${weightsSha}; downloading it again`));
  for (const f of ['config.json', 'model.safetensors']) assert.deepEqual(fs.readFileSync(path.join(snap, f)), files[f], f);
  const g = await runCliAsync(['generate', '--model', ID, '--prompt', 'x', '--max-tokens', '1', '--backend', 'js', '--json'], { env: { ...env, HF_HUB_OFFLINE: '1' } });
  assert.equal(g.status, 0, g.stderr);
  // A healthy cache: --force re-checks and downloads nothing.
  const from = hub.log.length;
  assert.equal((await runCliAsync(['download', ID, '--force'], { env })).status, 0);
  assert.ok(hub.log.slice(from).every((q) => q.method === 'HEAD'), 'only metadata requests');
});

test('Ctrl-C during download: exit 130 and one line saying how to resume; running it again resumes', async () => {
  const cacheDir = freshCache();
  const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cacheDir };
  hub.stallNext(5000);
  const child = spawnCli(['download', ID], env);
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  child.stdin.end();
  const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
  const partial = path.join(repoRoot(cacheDir), 'blobs', `${weightsSha}.incomplete`);
  for (let i = 0; i < 600 && !(fs.existsSync(partial) && fs.statSync(partial).size >= 5000); i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(fs.statSync(partial).size, 5000, 'the transfer is under way');
  child.kill('SIGINT');
  assert.equal(await exited, 130, stderr);
  const last = stderr.trim().split('\n').pop()!;
  assert.equal(last, `openelm download: interrupted; the part already downloaded is kept, and running "openelm download ${ID}" again resumes it`);
  assert.doesNotMatch(stderr, /internal error|\n\s+at /);
  const from = hub.log.length;
  const again = await runCliAsync(['download', ID], { env });
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(fs.readFileSync(path.join(again.stdout.trim(), 'model.safetensors')), files['model.safetensors']);
  assert.deepEqual(hub.log.slice(from).filter((q) => q.method === 'GET' && q.path.startsWith('/cdn/')).map((q) => q.range), ['bytes=5000-']);
});
