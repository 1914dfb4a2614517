import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import { loadModel, type LoadedModel } from '../src/api.js';
import { createServer, type OpenELMServer } from '../src/serve/server.js';
import { encodeChatText } from '../src/chat/tokenize.js';
import { generate } from '../src/generate/generate.js';
import { tinyModelDir } from './helpers/tiny.js';
import { post, sseEvents } from './helpers/http.js';
import { spawnCli } from './helpers/cli-async.js';

const raw = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 128, rope_max_length: 128 }, 31);
const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-serve-')), 'OpenELM-tiny-Instruct');
fs.renameSync(raw, dir);
const model: LoadedModel = await loadModel(dir, { backend: 'js' });
const srv: OpenELMServer = await createServer({ model, port: 0, modelId: 'tiny', maxBodyBytes: 4096, warmup: false });
await srv.ready;
const keyed: OpenELMServer = await createServer({ model, port: 0, apiKey: 'sekret', warmup: false });
await keyed.ready;
after(async () => { await srv.close(); await keyed.close(); model.dispose(); });


function expectError(r: { status: number; json: () => { error: { code: number; type: string; message: string } } }, status: number, re: RegExp, type?: string) {
  assert.equal(r.status, status);
  const e = r.json().error;
  assert.equal(e.code, status);
  assert.equal(typeof e.type, 'string');
  if (type) assert.equal(e.type, type);
  assert.match(e.message, re);
}

const tok = model.tokenizer;
const chatIds = (msgs: { role: string; content: string }[]) => encodeChatText(tok, model.chatTemplate.render(msgs), model.chatTemplate);

test('/health is 503 {"error"} while the model loads, then 200 {"status":"ok"}; model routes wait too', async () => {
  let release!: (m: LoadedModel) => void;
  const s = await createServer({ model: () => new Promise<LoadedModel>((r) => { release = r; }), port: 0, disposeModelOnClose: false });
  try {
    const h = await fetch(`${s.url}/health`);
    assert.equal(h.status, 503);
    assert.deepEqual(await h.json(), { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } });
    expectError(await post(`${s.url}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }] }), 503, /Loading model/, 'unavailable_error');
    release(model);
    await s.ready;
    const ok = await fetch(`${s.url}/health`);
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { status: 'ok' });
  } finally {
    await s.close();
  }
});

test('GET /v1/models', async () => {
  const r = await fetch(`${srv.url}/v1/models`);
  assert.equal(r.status, 200);
  const j = await r.json() as { object: string; data: Array<{ id: string; object: string; meta: { n_vocab: number; n_ctx_train: number; n_params: number; size: number } }> };
  assert.equal(j.object, 'list');
  assert.equal(j.data.length, 1);
  assert.equal(j.data[0].id, 'tiny');
  assert.equal(j.data[0].object, 'model');
  assert.equal(j.data[0].meta.n_vocab, 32000);
  assert.equal(j.data[0].meta.n_ctx_train, 128);
  assert.ok(j.data[0].meta.n_params > 0 && j.data[0].meta.size > 0);
});

test('POST /v1/chat/completions (JSON): the chat template, Instruct defaults (greedy at temperature 0, repetition 1.2), usage, timings', async () => {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'What is 2+2?' }];
  const r = await post(`${srv.url}/v1/chat/completions`, { model: 'whatever', messages, max_tokens: 6, temperature: 0 });
  assert.equal(r.status, 200, r.text);
  const j = r.json();
  assert.match(j.id, /^chatcmpl-/);
  assert.equal(j.object, 'chat.completion');
  assert.equal(j.model, 'tiny');
  assert.equal(j.choices[0].message.role, 'assistant');
  const ids = chatIds(messages);
  const want = await generate(model.model, tok, ids, { temperature: 0, repetitionPenalty: 1.2, maxTokens: 6 });
  assert.equal(j.choices[0].message.content, want.text);
  assert.equal(j.choices[0].finish_reason, want.finishReason === 'length' ? 'length' : 'stop');
  assert.deepEqual(j.usage, { prompt_tokens: ids.length, completion_tokens: want.ids.length, total_tokens: ids.length + want.ids.length });
  for (const k of ['prompt_n', 'prompt_ms', 'prompt_per_second', 'predicted_n', 'predicted_ms', 'predicted_per_second', 'cache_n']) assert.equal(typeof j.timings[k], 'number', k);
  assert.equal(j.timings.predicted_n, want.ids.length);
  // Resending the conversation with one more turn reuses the cached prefix (llama.cpp cache_prompt).
  const more = [...messages, { role: 'assistant', content: j.choices[0].message.content }, { role: 'user', content: 'And 3+3?' }];
  const r2 = (await post(`${srv.url}/v1/chat/completions`, { messages: more, max_tokens: 3, temperature: 0 })).json();
  assert.ok(r2.timings.cache_n >= ids.length - 1, `cache_n ${r2.timings.cache_n}`);
  assert.equal(r2.timings.prompt_n + r2.timings.cache_n, r2.usage.prompt_tokens);
  assert.equal(r2.choices[0].message.content, (await generate(model.model, tok, chatIds(more), { temperature: 0, repetitionPenalty: 1.2, maxTokens: 3 })).text);
});

test('POST /v1/chat/completions (SSE): role first, content chunks in order, finish_reason + timings, usage, [DONE]', async () => {
  const body = { messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 12, temperature: 0, ignore_eos: true };
  const plain = (await post(`${srv.url}/v1/chat/completions`, body)).json();
  const r = await post(`${srv.url}/v1/chat/completions`, { ...body, stream: true, stream_options: { include_usage: true } });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
  const events = sseEvents(r.text);
  assert.deepEqual(events[0].choices[0].delta, { role: 'assistant', content: '' });
  for (const e of events) { assert.equal(e.object, 'chat.completion.chunk'); assert.equal(e.id, events[0].id); }
  const content = events.slice(1).map((e) => e.choices[0]?.delta?.content ?? '').join('');
  assert.equal(content, plain.choices[0].message.content, 'streamed text = non-streamed text');
  const fin = events.findIndex((e) => e.choices[0]?.finish_reason);
  assert.equal(events[fin].choices[0].finish_reason, 'length');
  assert.equal(events[fin].timings.predicted_n, 12);
  assert.ok(events.slice(1, fin).every((e) => e.choices[0].finish_reason === null && e.choices[0].delta.content.length > 0));
  const last = events[events.length - 1];
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, plain.usage);
});

test('POST /v1/completions: text and token prompts, stop strings, logit_bias, seeds, SSE', async () => {
  const r = (await post(`${srv.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 8, temperature: 0, repeat_penalty: 1 })).json();
  assert.equal(r.object, 'text_completion');
  const ids = tok.encode('Once upon a time', { bos: true });
  const want = await generate(model.model, tok, ids, { temperature: 0, maxTokens: 8 });
  assert.equal(r.choices[0].text, want.text);
  assert.equal(r.usage.prompt_tokens, ids.length);
  const byIds = (await post(`${srv.url}/v1/completions`, { prompt: ids, max_tokens: 8, temperature: 0, repeat_penalty: 1 })).json();
  assert.equal(byIds.choices[0].text, want.text);
  // A stop string cuts the text (and is not included).
  const cut = want.text.slice(3, 6);
  const st = (await post(`${srv.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 8, temperature: 0, repeat_penalty: 1, stop: [cut] })).json();
  assert.equal(st.choices[0].text, want.text.slice(0, want.text.indexOf(cut)));
  assert.equal(st.choices[0].finish_reason, 'stop');
  // logit_bias (OpenAI map form) forces a token; [[id, false]] bans one.
  const hello = tok.encode('Hello')[0];
  const lb = (await post(`${srv.url}/v1/completions`, { prompt: 'x', max_tokens: 3, temperature: 0, logit_bias: { [hello]: 100 }, repeat_penalty: 1 })).json();
  assert.equal(lb.choices[0].text, 'Hello Hello Hello'.slice(0, lb.choices[0].text.length));
  const first = (await post(`${srv.url}/v1/completions`, { prompt: 'x', max_tokens: 1, temperature: 0 })).json();
  const firstId = tok.encode(first.choices[0].text)[0];
  const banned = (await post(`${srv.url}/v1/completions`, { prompt: 'x', max_tokens: 1, temperature: 0, logit_bias: [[firstId, false]] })).json();
  assert.notEqual(banned.choices[0].text, first.choices[0].text);
  // Same seed, same sample.
  const s = { prompt: 'Hi', max_tokens: 8, temperature: 1.5, top_k: 0, top_p: 1, min_p: 0, seed: 42, ignore_eos: true, presence_penalty: 0.5, frequency_penalty: 0.5 };
  const a = (await post(`${srv.url}/v1/completions`, s)).json(), b = (await post(`${srv.url}/v1/completions`, s)).json();
  assert.equal(a.choices[0].text, b.choices[0].text);
  const stream = sseEvents((await post(`${srv.url}/v1/completions`, { prompt: 'Once upon a time', max_tokens: 8, temperature: 0, repeat_penalty: 1, stream: true })).text);
  assert.equal(stream.map((e) => e.choices[0].text).join(''), want.text);
  assert.equal(stream[stream.length - 1].choices[0].finish_reason, 'length');
});

test('POST /tokenize and /detokenize (llama.cpp shapes)', async () => {
  assert.deepEqual((await post(`${srv.url}/tokenize`, { content: 'Hello world!' })).json(), { tokens: [15043, 3186, 29991] });
  assert.deepEqual((await post(`${srv.url}/tokenize`, { content: 'Hello world!', add_special: true })).json(), { tokens: [1, 15043, 3186, 29991] });
  const pieces = (await post(`${srv.url}/tokenize`, { content: 'Hello world!', with_pieces: true })).json().tokens;
  assert.deepEqual(pieces, [{ id: 15043, piece: ' Hello' }, { id: 3186, piece: ' world' }, { id: 29991, piece: '!' }]);
  // A byte-fallback token that is not valid UTF-8 on its own is a byte list, as in llama.cpp.
  const bytes = (await post(`${srv.url}/tokenize`, { content: '\u{1F600}', with_pieces: true })).json().tokens;
  assert.ok(bytes.some((t: { piece: unknown }) => Array.isArray(t.piece)), JSON.stringify(bytes));
  assert.deepEqual((await post(`${srv.url}/detokenize`, { tokens: [15043, 3186, 29991] })).json(), { content: 'Hello world!', prompt: 'Hello world!' });
  expectError(await post(`${srv.url}/detokenize`, { tokens: [99999] }), 400, /"tokens" must be an array of token ids in \[0, 32000\)/);
  expectError(await post(`${srv.url}/tokenize`, { text: 'x' }), 400, /"content" must be a string/);
  assert.deepEqual((await post(`${srv.url}/apply-template`, { messages: [{ role: 'user', content: 'U' }] })).json(), { prompt: '<|user|>\nU</s>\n<|assistant|>\n' });
});

test('errors: 400 (bad JSON, fields, context), 401, 404, 405, 413 — all {"error":{message,type,code}}', async () => {
  const u = `${srv.url}/v1/chat/completions`;
  expectError(await post(u, '{"messages": [', {}), 400, /request body is not valid JSON/, 'invalid_request_error');
  expectError(await post(u, '[1]'), 400, /request body must be a JSON object/);
  expectError(await post(u, {}), 400, /"messages" must be a non-empty array/);
  expectError(await post(u, { messages: [{ role: 'wizard', content: 'x' }] }), 400, /messages\[0\]\.role must be/);
  expectError(await post(u, { messages: [{ role: 'user', content: [{ type: 'image_url' }] }] }), 400, /only \{"type": "text"/);
  expectError(await post(u, { messages: [{ role: 'user', content: 'x' }], temperature: 9 }), 400, /"temperature" must be in \[0, 2\], got 9/);
  expectError(await post(u, { messages: [{ role: 'user', content: 'x' }], temperature: 'hot' }), 400, /"temperature" must be a number/);
  expectError(await post(u, { messages: [{ role: 'user', content: 'x' }], n: 0 }), 400, /"n" must be in \[1, 16\], got 0/);
  expectError(await post(u, { messages: [{ role: 'user', content: 'x' }], max_tokens: 1.5 }), 400, /"max_tokens" must be an integer/);
  expectError(await post(u, { messages: [{ role: 'user', content: 'x' }], stop: [1] }), 400, /"stop" must be a string or an array of strings/);
  expectError(await post(u, { messages: [{ role: 'user', content: 'x' }], logit_bias: { 40000: 1 } }), 400, /"logit_bias": token id "40000" is outside the vocabulary/);
  expectError(await post(u, { messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function' }] }), 400, /tools\[0\] must be \{"type": "function"/);
  expectError(await post(u, { messages: [{ role: 'user', content: 'word '.repeat(200) }] }), 400, /the prompt has \d+ tokens but the context holds 128/);
  expectError(await post(`${srv.url}/v1/completions`, { prompt: [[1, 2], 'x', []] }), 400, /"prompt" must be a string, an array of token ids, or a non-empty list/);
  expectError(await post(`${srv.url}/v1/completions`, { prompt: [1, 99999] }), 400, /token id 99999 is outside the vocabulary/);
  expectError(await post(`${srv.url}/v1/completions`, { prompt: [[1, 2], [3, -1]] }), 400, /prompt 1: token id -1 is outside the vocabulary/);
  expectError(await post(`${srv.url}/v1/nope`, {}), 404, /no route POST \/v1\/nope/, 'not_found_error');
  const get = await fetch(u);
  assert.equal(get.status, 405);
  assert.equal(((await get.json()) as { error: { code: number } }).error.code, 405);
  // 413: declared too large, and too large while streaming in (chunked, no content-length).
  expectError(await post(u, { messages: [{ role: 'user', content: 'x'.repeat(5000) }] }), 413, /larger than the limit of 4096 bytes/);
  const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(u, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
      let b = ''; res.setEncoding('utf8').on('data', (d) => { b += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    req.on('error', reject);
    req.write('{"messages":"' + 'y'.repeat(3000));
    req.end('y'.repeat(3000) + '"}');
  });
  assert.equal(chunked.status, 413);
  assert.equal(JSON.parse(chunked.body).error.code, 413);
  // 401 with an API key; /health stays public.
  const k = `${keyed.url}/v1/chat/completions`;
  const body = { messages: [{ role: 'user', content: 'x' }], max_tokens: 1 };
  expectError(await post(k, body), 401, /missing API key/, 'authentication_error');
  expectError(await post(k, body, { authorization: 'Bearer wrong' }), 401, /invalid API key/, 'authentication_error');
  assert.equal((await post(k, body, { authorization: 'Bearer sekret' })).status, 200);
  assert.equal((await fetch(`${keyed.url}/v1/models`)).status, 401);
  assert.equal((await fetch(`${keyed.url}/health`)).status, 200);
  assert.equal((await fetch(`${keyed.url}/v1/models`, { method: 'OPTIONS' })).status, 204);
});

test('two concurrent clients get exactly what each gets alone (batched, never sharing a cache); a queue beyond the slots', async () => {
  const bodies = [
    { messages: [{ role: 'user', content: 'First question about cats' }], max_tokens: 10, temperature: 0, ignore_eos: true },
    { messages: [{ role: 'user', content: 'A different, longer second question about dogs and birds' }], max_tokens: 14, temperature: 0, ignore_eos: true },
  ];
  const alone = [];
  for (const b of bodies) alone.push((await post(`${srv.url}/v1/chat/completions`, b)).json().choices[0].message.content);
  const together = await Promise.all([
    post(`${srv.url}/v1/chat/completions`, { ...bodies[0], stream: true }),
    post(`${srv.url}/v1/chat/completions`, bodies[1]),
  ]);
  assert.equal(sseEvents(together[0].text).slice(1).map((e) => e.choices[0]?.delta?.content ?? '').join(''), alone[0]);
  assert.equal(together[1].json().choices[0].message.content, alone[1]);
  // One slot (a FIFO queue), and two slots taking turns without batching (--batch 1).
  for (const cfg of [{ slots: 1 }, { slots: 2, maxBatch: 1 }]) {
    const other = await createServer({ model, port: 0, ...cfg, disposeModelOnClose: false });
    try {
      const rs = await Promise.all(bodies.map((b) => post(`${other.url}/v1/chat/completions`, b)));
      assert.deepEqual(rs.map((r) => r.json().choices[0].message.content), alone, JSON.stringify(cfg));
    } finally {
      await other.close();
    }
  }
});

test('a client that disconnects stops its generation', async () => {
  const e = srv.engine!;
  const before = e.totals.predictedTokens;
  await new Promise<void>((resolve, reject) => {
    const req = http.request(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let chunks = 0;
      res.on('data', () => { if (++chunks === 3) { req.destroy(); resolve(); } });
    });
    req.on('error', () => undefined);
    req.end(JSON.stringify({ messages: [{ role: 'user', content: 'Go on forever' }], max_tokens: 100, ignore_eos: true, stream: true }));
    setTimeout(() => reject(new Error('no data')), 20_000);
  });
  for (let i = 0; i < 200 && e.stats.running > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(e.stats.running, 0, 'the request no longer runs');
  const made = e.totals.predictedTokens - before;
  assert.ok(made < 50, `generated ${made} of 100 tokens`);
  // Also for a non-streaming request.
  const before2 = e.totals.predictedTokens;
  const ac = new AbortController();
  const p = fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', max_tokens: 100, ignore_eos: true }), signal: ac.signal }).catch(() => undefined);
  while (e.stats.running === 0) await new Promise((r) => setTimeout(r, 2));
  ac.abort();
  await p;
  for (let i = 0; i < 200 && e.stats.running > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(e.stats.running, 0);
  assert.ok(e.totals.predictedTokens - before2 < 100);
});

test('CLI: openelm serve prints its URL on stderr, serves, and shuts down gracefully on SIGTERM (running request finishes)', async () => {
  const child = spawnCli(['serve', '--model', dir, '--port', '0', '--backend', 'js']);
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: string) => {
      stderr += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (m && stderr.includes('model ready')) resolve(m[1]);
    });
    child.on('exit', () => reject(new Error(stderr)));
  });
  const h = await fetch(`${url}/health`);
  assert.equal(h.status, 200);
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }], max_tokens: 40, ignore_eos: true, stream: true }) });
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  await reader.read();
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  child.kill('SIGTERM');
  let text = '';
  for (;;) { const { done, value } = await reader.read(); if (done) break; text += new TextDecoder().decode(value); }
  assert.ok(text.endsWith('data: [DONE]\n\n'), 'the running stream completes');
  assert.equal(await exited, 0);
  assert.match(stderr, /SIGTERM, finishing running requests/);
  assert.match(stderr, /stopped/);
});

test('engine: text held back as a possible stop-string prefix is released when a stop token ends the run', async () => {
  const { Engine } = await import('../src/serve/engine.js');
  const e = new Engine(model.model, tok, { slots: 1, contextSize: 64 });
  const prompt = tok.encode('Hello', { bos: true });
  const drain = async (g: AsyncGenerator<unknown, { text: string; ids: number[]; finishReason: string }>) => { let r: IteratorResult<unknown, { text: string; ids: number[]; finishReason: string }>; do r = await g.next(); while (!r.done); return r.value; };
  const sampling = { temperature: 1, seed: 5 };
  const base = await drain(e.submit(prompt, { ...sampling, maxTokens: 12, ignoreEos: true }));
  const k = base.ids.findIndex((id) => id !== base.ids[0]);
  assert.ok(k > 0);
  const head = tok.decode(base.ids.slice(0, k));
  const r = await drain(e.submit(prompt, { ...sampling, maxTokens: 20, stop: [head + 'zzz'], stopTokens: [base.ids[k]] }));
  assert.equal(r.finishReason, 'stop');
  assert.equal(r.text, head);
});
