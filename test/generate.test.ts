import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sampler, argmax } from '../src/generate/sampler.js';
import { StopMatcher } from '../src/generate/stop.js';
import { generate, generateBatch, generateStream } from '../src/generate/generate.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { tinyModel } from './helpers/tiny.js';

const tok = loadTokenizer();

test('greedy is argmax; temperature 0 ignores the seed', () => {
  const l = new Float32Array([0.1, 2, -1, 1.9]);
  assert.equal(new Sampler({ temperature: 0, seed: 1 }).sample(l.slice()), 1);
  assert.equal(argmax(l), 1);
});

test('repetition penalty follows HF (divide positives, multiply negatives) over prompt and output', () => {
  const s = new Sampler({ temperature: 0, repetitionPenalty: 2 });
  const l = new Float32Array([3, -1, 2.5, 0]);
  s.process(l, [0], [1]);
  assert.deepEqual(Array.from(l), [1.5, -2, 2.5, 0]);
  assert.equal(new Sampler({ temperature: 0, repetitionPenalty: 2 }).sample(new Float32Array([3, -1, 2.5, 0]), [0]), 2);
});

test('presence/frequency penalties and logit bias', () => {
  const s = new Sampler({ temperature: 0, presencePenalty: 0.5, frequencyPenalty: 0.25, logitBias: { 3: 10 } });
  const l = new Float32Array([1, 1, 1, 1]);
  s.process(l, [], [0, 0, 1]);
  assert.deepEqual(Array.from(l), [1 - 0.5 - 0.5, 1 - 0.5 - 0.25, 1, 11]);
});

function histogram(opts: ConstructorParameters<typeof Sampler>[0], logits: number[], n = 4000) {
  const s = new Sampler(opts);
  const h = new Array(logits.length).fill(0);
  for (let i = 0; i < n; i++) h[s.sample(Float32Array.from(logits))]++;
  return h.map((c) => c / n);
}

test('top-k, top-p and min-p keep the right candidates', () => {
  const logits = [Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)];
  const k2 = histogram({ temperature: 1, topK: 2, seed: 3 }, logits);
  assert.equal(k2[2] + k2[3], 0);
  assert.ok(Math.abs(k2[0] - 0.625) < 0.04, `top-k renormalises: ${k2}`);
  // top-p 0.8: cumulative ascending 0.05, 0.2 (<= 0.2 removed) → keep {0, 1}
  const p = histogram({ temperature: 1, topP: 0.8, seed: 4 }, logits);
  assert.equal(p[2] + p[3], 0);
  assert.ok(p[1] > 0.3);
  // top-p 0.81 keeps token 2 too (0.2 > 0.19)
  const p2 = histogram({ temperature: 1, topP: 0.81, seed: 4 }, logits);
  assert.ok(p2[2] > 0);
  // min-p 0.35: threshold 0.175 → keep {0, 1}
  const m = histogram({ temperature: 1, minP: 0.35, seed: 5 }, logits);
  assert.equal(m[2] + m[3], 0);
  // plain sampling follows the distribution
  const f = histogram({ temperature: 1, seed: 6 }, logits, 20000);
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(f[i] - Math.exp(logits[i])) < 0.02, `p[${i}] ${f[i]}`);
});

test('bad sampling values are rejected', () => {
  assert.throws(() => new Sampler({ topP: 0 }), /top-p/);
  assert.throws(() => new Sampler({ temperature: -1 }), /temperature/);
  assert.throws(() => new Sampler({ topK: 1.5 }), /top-k/);
});

test('stop strings are held back across chunks and cut', () => {
  const m = new StopMatcher(['\n\nUser:', 'END']);
  const out: string[] = [];
  let stopped = false;
  for (const piece of ['Hello', ' wor', 'ld\n', '\nUs', 'er: more']) {
    const r = m.push(piece);
    out.push(r.emit);
    if (r.stopped) { stopped = true; break; }
  }
  assert.ok(stopped);
  assert.equal(out.join(''), 'Hello world');
  const n = new StopMatcher(['END']);
  assert.equal(n.push('the EN').emit, 'the ');
  assert.equal(n.push('Dless').emit, '');
  // "ENDless" contains END → stopped with "the " already emitted
});

test('generation: seeded sampling is reproducible; stream text equals final text', async () => {
  const { model } = tinyModel({ vocab_size: 32000 }, 5);
  const prompt = tok.encode('The cat', { bos: true });
  const a = await generate(model, tok, prompt, { temperature: 0.9, topK: 50, seed: 11, maxTokens: 12, ignoreEos: true });
  const b = await generate(model, tok, prompt, { temperature: 0.9, topK: 50, seed: 11, maxTokens: 12, ignoreEos: true });
  assert.deepEqual(a.ids, b.ids);
  assert.equal(a.ids.length, 12);
  assert.equal(a.finishReason, 'length');
  let streamed = '';
  const it = generateStream(model, tok, prompt, { temperature: 0.9, topK: 50, seed: 11, maxTokens: 12, ignoreEos: true });
  let r = await it.next();
  while (!r.done) { streamed += r.value.text; r = await it.next(); }
  assert.equal(streamed, r.value.text);
  assert.equal(r.value.text, tok.decode(a.ids));
});

test('generation stops on EOS, on stop strings, and on abort', async () => {
  const { model } = tinyModel({ vocab_size: 32000 }, 5);
  const prompt = tok.encode('The cat', { bos: true });
  const greedy = await generate(model, tok, prompt, { temperature: 0, maxTokens: 10, ignoreEos: true });
  // make the 3rd greedy token count as EOS
  const eosLike = greedy.ids[2];
  const r = await generate(model, tok, prompt, { temperature: 0, maxTokens: 10, stopTokens: [eosLike] });
  assert.deepEqual(r.ids, greedy.ids.slice(0, greedy.ids.indexOf(eosLike) + 1));
  assert.equal(r.finishReason, 'stop');
  // a stop string taken from the greedy text
  const text = tok.decode(greedy.ids);
  const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
  if (stop.trim().length === 2) {
    const s = await generate(model, tok, prompt, { temperature: 0, maxTokens: 10, ignoreEos: true, stop: [stop] });
    assert.equal(s.finishReason, 'stop');
    assert.equal(s.text, text.slice(0, text.indexOf(stop)));
  }
  const ac = new AbortController();
  let n = 0;
  const it = generateStream(model, tok, prompt, { temperature: 0, maxTokens: 50, ignoreEos: true, signal: ac.signal });
  let x = await it.next();
  while (!x.done) { if (++n === 3) ac.abort(); x = await it.next(); }
  assert.equal(x.value.finishReason, 'abort');
  assert.ok(x.value.ids.length <= 4);
});

test('a batch of prompts gives the same tokens as one at a time', async () => {
  const { model } = tinyModel({ vocab_size: 32000 }, 6);
  const prompts = ['Hello there', 'A much longer prompt about the weather today', 'x'].map((p) => tok.encode(p, { bos: true }));
  const batch = await generateBatch(model, tok, prompts, { temperature: 0, maxTokens: 8, ignoreEos: true });
  for (let i = 0; i < prompts.length; i++) {
    const one = await generate(model, tok, prompts[i], { temperature: 0, maxTokens: 8, ignoreEos: true });
    assert.deepEqual(batch[i].ids, one.ids);
  }
});

test('empty prompt and overlong prompt are errors', async () => {
  const { model } = tinyModel({ vocab_size: 32000, max_context_length: 16 }, 5);
  await assert.rejects(generate(model, tok, [], {}), /prompt is empty/);
  await assert.rejects(generate(model, tok, new Array(20).fill(5), {}), /context holds 16/);
});
