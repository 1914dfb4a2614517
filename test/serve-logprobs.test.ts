// Log-probabilities over HTTP: completions logprobs + echo as lm-evaluation-harness's
// local-completions model sends them (lists of token-id prompts, one choice each), checked against
// the evaluator's own scorer; generated-token logprobs on both endpoints, streamed and not.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel, type LoadedModel } from '../src/api.js';
import { createServer, type OpenELMServer } from '../src/serve/server.js';
import { scoreRequests } from '../src/eval/loglik.js';
import { promptLogprobs } from '../src/generate/logprobs.js';
import { tinyModelDir } from './helpers/tiny.js';
import { post as postTo, sseEvents } from './helpers/http.js';
import { TOL, assertClose } from './tolerances.js';

const dir = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 256, rope_max_length: 256 }, 47);
const model: LoadedModel = await loadModel(dir, { backend: 'js' });
const tok = model.tokenizer;
const srv: OpenELMServer = await createServer({ model, port: 0, warmup: false });
await srv.ready;
after(async () => { await srv.close(); model.dispose(); });

const post = (route: string, body: unknown) => postTo(`${srv.url}${route}`, body);

test('lm-eval\'s scoring request: token-id prompts, echo, max_tokens 1, logprobs 1 → the evaluator\'s log-likelihoods and greediness', async () => {
  // Requests as lm-eval builds them: context + continuation token ids, no BOS (the server adds it).
  const pairs = [
    { ctx: tok.encode('The capital of France is'), cont: tok.encode(' Paris', { bos: false }).slice(-2) },
    { ctx: tok.encode('Question: 2+2? Answer:'), cont: tok.encode(' four') },
    { ctx: tok.encode('A'), cont: tok.encode(' long continuation of several tokens') },
  ];
  const r = await post('/v1/completions', { prompt: pairs.map((p) => [...p.ctx, ...p.cont]), echo: true, max_tokens: 1, logprobs: 1, temperature: 0, seed: 1234 });
  assert.equal(r.status, 200, r.text);
  const choices = [...r.json().choices].sort((a: { index: number }, b: { index: number }) => a.index - b.index);
  assert.equal(choices.length, pairs.length);
  // openelm eval scores with BOS in front of the context.
  const want = await scoreRequests(model.model, pairs.map((p) => ({ ctx: [tok.bosId, ...p.ctx], cont: p.cont })));
  pairs.forEach((p, i) => {
    const lp = choices[i].logprobs;
    const n = p.ctx.length + p.cont.length;
    assert.equal(lp.token_logprobs.length, n + 1, 'one entry per prompt token, then the generated one');
    assert.equal(lp.token_logprobs[0], null);
    assert.equal(lp.tokens.length, n + 1);
    assert.equal(lp.text_offset.length, n + 1);
    // lm-eval (openai_completions.py parse_logprobs): sum token_logprobs[ctxlen:-1]; greedy when each equals its top value.
    const slice = lp.token_logprobs.slice(p.ctx.length, -1);
    const tops = lp.top_logprobs.slice(p.ctx.length, -1);
    const ll = slice.reduce((a: number, b: number) => a + b, 0);
    const greedy = slice.every((v: number, k: number) => v === Math.max(...(Object.values(tops[k]) as number[])));
    assertClose([ll], [want[i].ll], TOL.loglik, `request ${i}`);
    assert.equal(greedy, want[i].greedy, `request ${i}`);
  });
  // A prompt that starts with BOS gets the same scores (BOS is not doubled), plus the BOS entry.
  const withBos = (await post('/v1/completions', { prompt: [tok.bosId, ...pairs[0].ctx, ...pairs[0].cont], echo: true, max_tokens: 1, logprobs: 1, temperature: 0 })).json().choices[0].logprobs;
  assert.deepEqual(withBos.token_logprobs.slice(2), choices[0].logprobs.token_logprobs.slice(1));
  assert.equal(withBos.tokens[0], '<s>');
});

test('echo: the text starts with the prompt; with max_tokens 0 only the prompt is scored', async () => {
  const ids = tok.encode('Once upon a time', { bos: true });
  const gen = (await post('/v1/completions', { prompt: 'Once upon a time', max_tokens: 4, temperature: 0, repeat_penalty: 1 })).json().choices[0].text;
  const e = (await post('/v1/completions', { prompt: 'Once upon a time', max_tokens: 4, temperature: 0, repeat_penalty: 1, echo: true })).json().choices[0];
  assert.ok(e.text.startsWith('Once upon a time'), e.text);
  assert.equal(e.text.slice('Once upon a time'.length).replace(/^ /, ''), gen);
  assert.equal(tok.decode(tok.encode(e.text)), e.text);
  const z = (await post('/v1/completions', { prompt: ids, max_tokens: 0, echo: true, logprobs: 2 })).json().choices[0];
  assert.equal(z.text, tok.decode(ids));
  assert.equal(z.logprobs.tokens.length, ids.length);
  const ref = await promptLogprobs(model.model, ids, { bosId: tok.bosId, top: 2 });
  assert.deepEqual(z.logprobs.token_logprobs, ref.entries.map((x) => (x ? x.logprob : null)));
  // Echo with more new tokens runs through the engine: the prompt part is the same.
  const long = (await post('/v1/completions', { prompt: ids, max_tokens: 3, echo: true, logprobs: 2, temperature: 0 })).json().choices[0];
  assert.deepEqual(long.logprobs.token_logprobs.slice(0, ids.length), z.logprobs.token_logprobs);
  assert.equal(long.logprobs.tokens.length, ids.length + 3);
});

test('generated-token logprobs: raw distribution (a grammar does not renormalise them), equal to scoring the output', async () => {
  const prompt = tok.encode('Answer:', { bos: true });
  const r = (await post('/v1/completions', { prompt, grammar: 'root ::= "yes, indeed" | "no"', logprobs: 3, max_tokens: 10, temperature: 0 })).json().choices[0];
  assert.ok(['yes, indeed', 'no'].includes(r.text), r.text);
  const lp = r.logprobs;
  assert.equal(lp.tokens.join('').replace(/<\/s>$/, '').trimStart(), r.text);
  const lib = await model.generate(prompt, { grammar: 'root ::= "yes, indeed" | "no"', logprobs: 3, maxTokens: 10, temperature: 0 });
  assert.equal(lib.text, r.text);
  assert.deepEqual(lp.token_logprobs, lib.logprobs!.map((e) => e.logprob));
  const genIds = lib.ids.filter((id) => id !== tok.eosId);
  const scored = await promptLogprobs(model.model, [...prompt, ...genIds], { bosId: tok.bosId, top: 3 });
  const want = scored.entries.slice(prompt.length).map((e) => e!.logprob);
  assertClose(lp.token_logprobs.slice(0, genIds.length), want, TOL.loglik, 'generated vs scored');
  for (const t of lp.top_logprobs) assert.ok(Object.keys(t).length <= 3 && Object.keys(t).length >= 1);
  // Offsets count code points of the text: each token's text starts where its offset points.
  const cps = [...r.text];
  for (let i = 0; i < genIds.length; i++) {
    const at = cps.slice(lp.text_offset[i]).join('');
    assert.ok(at.startsWith(i === 0 ? lp.tokens[0].trimStart() : lp.tokens[i]), `token ${i} ${JSON.stringify(lp.tokens[i])} at ${lp.text_offset[i]}`);
  }
});

test('chat logprobs / top_logprobs, and streamed logprobs that add up to the non-streamed ones', async () => {
  const body = { messages: [{ role: 'user', content: 'Say something.' }], logprobs: true, top_logprobs: 3, max_tokens: 6, temperature: 0, repeat_penalty: 1, ignore_eos: true };
  const c = (await post('/v1/chat/completions', body)).json().choices[0];
  const content = c.logprobs.content;
  assert.equal(content.length, 6);
  assert.equal(content.map((x: { token: string }) => x.token).join('').trimStart(), c.message.content);
  for (const x of content) {
    assert.equal(x.top_logprobs.length, 3);
    // Greedy without penalties: the chosen token is the most likely one.
    assert.equal(x.top_logprobs[0].token, x.token);
    assert.equal(x.top_logprobs[0].logprob, x.logprob);
    assert.deepEqual(x.bytes, [...Buffer.from(x.token, 'utf8')]);
    assert.ok(x.top_logprobs[1].logprob <= x.top_logprobs[0].logprob);
  }
  const s = sseEvents((await post('/v1/chat/completions', { ...body, stream: true })).text);
  assert.deepEqual(s.flatMap((e) => e.choices[0]?.logprobs?.content ?? []), content);
  const tb = { prompt: 'Hello', logprobs: 2, max_tokens: 5, temperature: 0, ignore_eos: true };
  const t = (await post('/v1/completions', tb)).json().choices[0].logprobs;
  const ts = sseEvents((await post('/v1/completions', { ...tb, stream: true })).text).map((e) => e.choices[0].logprobs).filter(Boolean);
  assert.deepEqual({ tokens: ts.flatMap((x) => x.tokens), token_logprobs: ts.flatMap((x) => x.token_logprobs), top_logprobs: ts.flatMap((x) => x.top_logprobs), text_offset: ts.flatMap((x) => x.text_offset) }, t);
  // No logprobs asked: null.
  assert.equal((await post('/v1/completions', { prompt: 'x', max_tokens: 1 })).json().choices[0].logprobs, null);
});

test('n > 1 on completions with a list of prompts: prompts × n choices, index = prompt × n + k', async () => {
  const r = (await post('/v1/completions', { prompt: ['Hi', 'There'], n: 2, max_tokens: 3, temperature: 1, seed: 9, ignore_eos: true })).json();
  assert.deepEqual(r.choices.map((c: { index: number }) => c.index), [0, 1, 2, 3]);
  const one = (await post('/v1/completions', { prompt: 'There', max_tokens: 3, temperature: 1, seed: 10, ignore_eos: true })).json();
  assert.equal(r.choices[3].text, one.choices[0].text);
  const ev = sseEvents((await post('/v1/completions', { prompt: ['Hi', 'There'], n: 2, max_tokens: 3, temperature: 1, seed: 9, ignore_eos: true, stream: true })).text);
  for (let i = 0; i < 4; i++) assert.equal(ev.filter((e) => e.choices[0].index === i).map((e) => e.choices[0].text).join(''), r.choices[i].text);
  assert.equal(ev.filter((e) => e.choices[0].finish_reason).length, 4);
});

test('bad logprobs requests are 400s', async () => {
  const e400 = async (route: string, body: unknown, re: RegExp) => { const r = await post(route, body); assert.equal(r.status, 400, r.text); assert.match(r.json().error.message, re); };
  const m = [{ role: 'user', content: 'x' }];
  await e400('/v1/chat/completions', { messages: m, top_logprobs: 2 }, /"top_logprobs" needs "logprobs": true/);
  await e400('/v1/chat/completions', { messages: m, logprobs: true, top_logprobs: 21 }, /"top_logprobs" must be in \[0, 20\]/);
  await e400('/v1/chat/completions', { messages: m, logprobs: 1 }, /"logprobs" must be true or false/);
  await e400('/v1/completions', { prompt: 'x', logprobs: 50 }, /"logprobs" must be in \[0, 20\]/);
  await e400('/v1/completions', { prompt: [[1, 2], [3, 32000]], echo: true, logprobs: 1 }, /prompt 1: token id 32000 is outside the vocabulary \[0, 32000\)/);
  await e400('/v1/completions', { prompt: [[1, 2.5]] }, /token id 2.5 is outside the vocabulary/);
});
