// The server against a careless or hostile environment: a port in use, an address the machine does
// not have, exposure without a key, cross-origin pages, non-JSON bodies, and clients that must not
// learn local paths.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, type LoadedModel } from '../src/api.js';
import { OpenELMError } from '../src/core/errors.js';
import { createServer, type OpenELMServer } from '../src/serve/server.js';
import { redactPaths } from '../src/serve/redact.js';
import { spawnCli, runCliAsync } from './helpers/cli-async.js';
import { tinyModelDir } from './helpers/tiny.js';

const raw = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 128, rope_max_length: 128 }, 41);
const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-serve-hard-')), 'OpenELM-tiny-Instruct');
fs.renameSync(raw, dir);
const model: LoadedModel = await loadModel(dir, { backend: 'js' });
const plain: OpenELMServer = await createServer({ model, port: 0 });
const withCors: OpenELMServer = await createServer({ model, port: 0, cors: ['https://app.example/'] });
await Promise.all([plain.ready, withCors.ready]);
after(async () => { await plain.close(); await withCors.close(); model.dispose(); fs.rmSync(path.dirname(dir), { recursive: true, force: true }); });

const chatBody = JSON.stringify({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 2, temperature: 0 });

async function post(url: string, body: string, headers: Record<string, string>) {
  const res = await fetch(url, { method: 'POST', headers, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

/** Start `openelm serve` and collect stderr until `until` matches (or the process ends). */
async function serveCli(args: string[], until: RegExp) {
  const child = spawnCli(['serve', '--model', dir, '--backend', 'js', '--quiet', ...args]);
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await new Promise<void>((resolve) => {
    child.stderr.on('data', (d: string) => { stderr += d; if (until.test(stderr)) resolve(); });
    void exited.then(() => resolve());
  });
  return { child, stderr: () => stderr, exited };
}

test('a busy port or an address not on this machine: one line naming host:port, no stack', async () => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  const port = (blocker.address() as net.AddressInfo).port;
  try {
    const r = await runCliAsync(['serve', '--model', dir, '--port', String(port)]);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stderr, `openelm serve: 127.0.0.1:${port} is already in use (another server is listening there); stop it or choose another port (port 0 picks a free one)\n`);
  } finally {
    blocker.close();
  }
  // 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine.
  const r = await runCliAsync(['serve', '--model', dir, '--host', '192.0.2.1', '--port', '0']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^openelm serve: cannot listen on 192\.0\.2\.1:0: 192\.0\.2\.1 is not an address of this machine/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  // The library rejects with the same OpenELMError.
  await assert.rejects(createServer({ model, port: plain.port }), (e: Error) => e instanceof OpenELMError && e.message.startsWith(`127.0.0.1:${plain.port} is already in use`));
});

test('--host 0.0.0.0 prints the real bound address and warns when there is no API key', async () => {
  const open = await serveCli(['--host', '0.0.0.0', '--port', '0'], /model ready/);
  try {
    assert.match(open.stderr(), /listening on http:\/\/0\.0\.0\.0:\d+ \(every network interface\)/);
    assert.match(open.stderr(), /warning: http:\/\/0\.0\.0\.0:\d+ can be reached from other machines and has no API key.*--api-key/);
    const port = /0\.0\.0\.0:(\d+)/.exec(open.stderr())![1];
    assert.equal((await fetch(`http://127.0.0.1:${port}/health`)).status, 200);
  } finally {
    open.child.kill('SIGTERM');
    assert.equal(await open.exited, 0);
  }
  const keyed = await serveCli(['--host', '0.0.0.0', '--port', '0', '--api-key', 'k'], /model ready/);
  keyed.child.kill('SIGTERM');
  await keyed.exited;
  assert.doesNotMatch(keyed.stderr(), /warning/);
  const local = await serveCli(['--port', '0'], /model ready/);
  local.child.kill('SIGTERM');
  await local.exited;
  assert.match(local.stderr(), /listening on http:\/\/127\.0\.0\.1:\d+ \(loading/);
  assert.doesNotMatch(local.stderr(), /warning/);
});

test('CORS is off unless --cors allows an origin', async () => {
  const origin = { origin: 'https://app.example' };
  const none = await fetch(`${plain.url}/v1/models`, { headers: origin });
  assert.equal(none.status, 200);
  assert.equal(none.headers.get('access-control-allow-origin'), null);
  const pre = await fetch(`${plain.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { ...origin, 'access-control-request-method': 'POST' } });
  assert.equal(pre.headers.get('access-control-allow-origin'), null, 'no preflight approval');

  const ok = await fetch(`${withCors.url}/v1/models`, { headers: origin });
  assert.equal(ok.headers.get('access-control-allow-origin'), 'https://app.example');
  assert.match(ok.headers.get('vary') ?? '', /origin/i);
  const okPre = await fetch(`${withCors.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { ...origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
  assert.equal(okPre.status, 204);
  assert.equal(okPre.headers.get('access-control-allow-origin'), 'https://app.example');
  assert.match(okPre.headers.get('access-control-allow-headers') ?? '', /content-type/);
  const other = await fetch(`${withCors.url}/v1/models`, { headers: { origin: 'https://evil.example' } });
  assert.equal(other.headers.get('access-control-allow-origin'), null);
  // Streams carry the header too.
  const sse = await post(`${withCors.url}/v1/chat/completions`, JSON.stringify({ messages: [{ role: 'user', content: 'x' }], max_tokens: 2, stream: true }), { ...origin, 'content-type': 'application/json' });
  assert.equal(sse.headers.get('access-control-allow-origin'), 'https://app.example');
  const any = await createServer({ model, port: 0, cors: ['*'], disposeModelOnClose: false });
  try {
    assert.equal((await fetch(`${any.url}/health`, { headers: { origin: 'https://x.example' } })).headers.get('access-control-allow-origin'), '*');
  } finally {
    await any.close();
  }
});

test('a body that is not declared JSON is refused with 415; JSON content types are accepted', async () => {
  const u = `${plain.url}/v1/chat/completions`;
  for (const headers of [{ 'content-type': 'text/plain' }, { 'content-type': 'application/x-www-form-urlencoded' }, { 'content-type': 'multipart/form-data; boundary=x' }, {} as Record<string, string>]) {
    const r = await post(u, chatBody, headers);
    assert.equal(r.status, 415, JSON.stringify(headers));
    const e = r.json().error;
    assert.equal(e.code, 415);
    assert.match(e.message, /Content-Type: application\/json/);
  }
  // fetch with a string body and no headers sends text/plain: refused too.
  assert.equal((await fetch(u, { method: 'POST', body: chatBody })).status, 415);
  for (const ct of ['application/json', 'application/json; charset=utf-8', 'Application/JSON', 'application/vnd.openai+json']) {
    assert.equal((await post(u, chatBody, { 'content-type': ct })).status, 200, ct);
  }
  assert.equal((await post(`${plain.url}/tokenize`, JSON.stringify({ content: 'x' }), { 'content-type': 'text/plain' })).status, 415);
});

test('a chat message without content is a 400 naming it', async () => {
  const u = `${plain.url}/v1/chat/completions`;
  const j = { 'content-type': 'application/json' };
  const r = await post(u, JSON.stringify({ messages: [{ role: 'user' }] }), j);
  assert.equal(r.status, 400);
  assert.match(r.json().error.message, /messages\[0\]\.content is required/);
  const n = await post(u, JSON.stringify({ messages: [{ role: 'user', content: null }] }), j);
  assert.equal(n.status, 400);
  assert.match(n.json().error.message, /messages\[0\]\.content must be a string, not null/);
  // An assistant turn may carry null content (OpenAI clients send it after tool calls).
  const a = await post(u, JSON.stringify({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: null }, { role: 'user', content: 'b' }], max_tokens: 1 }), j);
  assert.equal(a.status, 200, a.text);
});

test('clients never see local paths: the model id, load failures, error messages', async () => {
  const m = await (await fetch(`${plain.url}/v1/models`)).json() as { data: { id: string }[] };
  assert.equal(m.data[0].id, 'OpenELM-tiny-Instruct');
  const abs = await createServer({ model, port: 0, modelId: dir, disposeModelOnClose: false });
  try {
    const j = await (await fetch(`${abs.url}/v1/models`)).json() as { data: { id: string }[] };
    assert.equal(j.data[0].id, 'OpenELM-tiny-Instruct');
  } finally {
    await abs.close();
  }
  const broken = await createServer({ model: () => Promise.reject(new OpenELMError('config', `${dir}/config.json not found: a model folder needs config.json`)), port: 0 });
  try {
    await broken.ready.catch(() => undefined);
    for (const r of [await fetch(`${broken.url}/health`), await fetch(`${broken.url}/v1/models`)]) {
      assert.equal(r.status, 500);
      const text = await r.text();
      assert.match(text, /the model failed to load: …\/config\.json not found/);
      assert.ok(!text.includes(os.tmpdir()), text);
    }
  } finally {
    await broken.close();
  }
  // The CLI reports a local folder by its name.
  const cli = await serveCli(['--port', '0'], /model ready/);
  try {
    const port = /127\.0\.0\.1:(\d+)/.exec(cli.stderr())![1];
    const text = await (await fetch(`http://127.0.0.1:${port}/v1/models`)).text();
    assert.match(text, /"id":"OpenELM-tiny-Instruct"/);
    assert.ok(!text.includes(dir), text);
  } finally {
    cli.child.kill('SIGTERM');
    await cli.exited;
  }
});

test('redactPaths cuts absolute paths to their last component and leaves the rest alone', () => {
  assert.equal(redactPaths('model folder /home/u/models/x does not exist'), 'model folder …/x does not exist');
  assert.equal(redactPaths('tensor a.b in /tmp/run/model.safetensors holds NaN'), 'tensor a.b in …/model.safetensors holds NaN');
  assert.equal(redactPaths('C:\\Users\\bob\\m\\config.json not found'), '…/config.json not found');
  assert.equal(redactPaths('file ~/models/y.json'), 'file …/y.json');
  for (const keep of ['the prompt has 5 tokens but the context holds 128', 'accept the terms at https://huggingface.co/apple/x', 'ratio 1/2', '"messages" must be a non-empty array']) {
    assert.equal(redactPaths(keep), keep);
  }
});
