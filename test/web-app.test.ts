// `openelm web`: the server that hands the built app and one model folder to a browser. It serves
// files only (the page runs the model); here its headers, paths and refusals are checked over HTTP.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startWebAppServer, defaultAppDir } from '../src/serve/web-app.js';
import { OpenELMError } from '../src/core/errors.js';
import { GOLDEN_ROOT } from './helpers/golden.js';

const MODEL = path.join(GOLDEN_ROOT, 'mha-hd64');
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

function fakeApp(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-webapp-'));
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>app</title>');
  fs.writeFileSync(path.join(dir, 'app.js'), 'export {};');
  return dir;
}

test('openelm web serves the app and the model with COOP/COEP, and names the model in /openelm-web.json', async () => {
  const app = fakeApp();
  const srv = await startWebAppServer({ appDir: app, modelDir: MODEL, name: 'test/mha-hd64', port: 0 });
  try {
    const index = await fetch(srv.url);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get('cross-origin-opener-policy'), 'same-origin');
    assert.equal(index.headers.get('cross-origin-embedder-policy'), 'require-corp');
    assert.match(index.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await index.text(), /<title>app<\/title>/);
    assert.match((await fetch(new URL('app.js', srv.url))).headers.get('content-type') ?? '', /javascript/);

    const info = await fetch(new URL('openelm-web.json', srv.url));
    assert.deepEqual(await info.json(), { model: './model/', name: 'test/mha-hd64' });

    const cfg = await fetch(new URL('model/config.json', srv.url));
    assert.deepEqual(await cfg.json(), JSON.parse(fs.readFileSync(path.join(MODEL, 'config.json'), 'utf8')));

    const size = fs.statSync(path.join(MODEL, 'model.safetensors')).size;
    const head = await fetch(new URL('model/model.safetensors', srv.url), { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers.get('content-length')), size);

    const part = await fetch(new URL('model/model.safetensors', srv.url), { headers: { range: 'bytes=0-7' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 0-7/${size}`);
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), new Uint8Array(fs.readFileSync(path.join(MODEL, 'model.safetensors')).subarray(0, 8)));

    for (const bad of ['model/..%2Fgolden.safetensors', 'model/%2E%2E/golden.safetensors', 'model/.hidden', 'model/sub/config.json', '..%2F..%2Fpackage.json', 'nope.js']) {
      const r = await fetch(new URL(bad, srv.url));
      assert.equal(r.status, 404, bad);
    }
    assert.equal((await fetch(srv.url, { method: 'POST' })).status, 405);
  } finally {
    await srv.close();
    fs.rmSync(app, { recursive: true, force: true });
  }
});

test('openelm web refuses an unbuilt app and a folder that is not a model, in one line', async () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-webapp-empty-'));
  try {
    await assert.rejects(startWebAppServer({ appDir: empty, modelDir: MODEL, name: 'x', port: 0 }),
      (e: unknown) => e instanceof OpenELMError && /the web app is not built .* run npm run build:web/.test(e.message));
    const app = fakeApp();
    await assert.rejects(startWebAppServer({ appDir: app, modelDir: empty, name: 'x', port: 0 }),
      (e: unknown) => e instanceof OpenELMError && /is not a model folder: it has no config\.json/.test(e.message));
    fs.rmSync(app, { recursive: true, force: true });
  } finally {
    fs.rmSync(empty, { recursive: true, force: true });
  }
});

test('the openelm web command prints its URL, serves the built app, and stops on SIGINT', { skip: fs.existsSync(path.join(defaultAppDir(), 'index.html')) ? false : 'dist/web is not built (npm run build:web)' }, async () => {
  const child = spawn(process.execPath, [CLI, 'web', '--model', MODEL, '--port', '0', '--quiet'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8');
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: string) => { err += d; const m = /open (http:\/\/\S+)/.exec(err); if (m) resolve(m[1]); });
    child.once('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
  const page = await fetch(url);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /app\.js/);
  assert.equal((await fetch(new URL('model/config.json', url))).status, 200);
  const code = await new Promise<number | null>((resolve) => { child.once('exit', resolve); child.kill('SIGINT'); });
  assert.equal(code, 0);
  assert.match(err, /openelm web: stopped/);
});

test('openelm web without --model is a usage error', async () => {
  const child = spawn(process.execPath, [CLI, 'web'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => { err += d; });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 2);
  assert.match(err, /--model/);
  assert.equal(err.trim().split('\n').length, 1);
});
