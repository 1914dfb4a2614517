import { test } from 'node:test';
import assert from 'node:assert/strict';

import { logSumExp, promptLogprobs, tokenLogprob, topLogprobs } from '../src/generate/logprobs.js';
import { logProbAt } from '../src/generate/score.js';
import { loadModelFolder as loadModel } from '../src/io/model-folder.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import { Rng } from '../src/core/rng.js';
import { Golden, goldenNames } from './helpers/golden.js';
import { tinyModel } from './helpers/tiny.js';
import { TOL, assertClose } from './tolerances.js';

test('tokenLogprob and topLogprobs: log-softmax in float64, top-k sorted (ties by lower id), k capped at the vocabulary', () => {
  const rng = new Rng(1);
  for (let round = 0; round < 20; round++) {
    const V = 50 + round * 37;
    const row = Float32Array.from({ length: V }, () => Math.round((rng.next() * 20 - 10) * (round % 3 ? 1 : 4)) / 4);
    const lse = logSumExp(row);
    let total = 0;
    for (let i = 0; i < V; i++) total += Math.exp(row[i] - lse);
    assert.ok(Math.abs(total - 1) < 1e-12);
    const k = 1 + (round % 7);
    const want = Array.from({ length: V }, (_, i) => i).sort((a, b) => row[b] - row[a] || a - b).slice(0, k);
    const top = topLogprobs(row, k);
    assert.deepEqual(top.map((t) => t.id), want);
    for (const t of top) assert.equal(t.logprob, row[t.id] - lse);
    const id = Math.floor(rng.next() * V);
    const tl = tokenLogprob(row, id, k);
    assert.ok(Math.abs(tl.logprob - logProbAt(row, id)) < 1e-12);
    assert.deepEqual(tl.top, top);
  }
  assert.equal(topLogprobs(Float32Array.of(1, 2), 5).length, 2);
  assert.deepEqual(topLogprobs(Float32Array.of(1, 2), 0), []);
});

test('promptLogprobs matches the fp64 reference logits of the golden models (first entry null)', async () => {
  const names = goldenNames();
  assert.ok(names.length >= 3);
  for (const name of names) {
    const g = new Golden(name);
    const model = loadModel(g.dir, { backend: new JsBackend(), dtype: 'f32' });
    const V = model.config.vocabSize;
    const T = g.i32('lengths')[0];
    const ids = Array.from(g.i32('input_ids').subarray(0, T));
    const ref = g.f32('logits');
    // Treat the sequence's own first id as "BOS" so that nothing is put in front.
    const r = await promptLogprobs(model, ids, { bosId: ids[0], top: 3 });
    assert.equal(r.bosAdded, false);
    assert.equal(r.entries.length, T);
    assert.equal(r.entries[0], null);
    const got: number[] = [], want: number[] = [];
    for (let i = 1; i < T; i++) {
      const row = ref.subarray((i - 1) * V, i * V);
      const e = r.entries[i]!;
      got.push(e.logprob, ...e.top.map((t) => t.logprob));
      want.push(logProbAt(row, ids[i]), ...topLogprobs(row, 3).map((t) => t.logprob));
      assert.deepEqual(e.top.map((t) => t.id), topLogprobs(row, 3).map((t) => t.id), `${name} position ${i}`);
    }
    assertClose(got, want, TOL.loglik, `${name} prompt logprobs`);
    assertClose(r.next, ref.subarray((T - 1) * V, T * V), TOL.refLogits, `${name} next-token logits`);
    g.close();
  }
});

test('promptLogprobs puts BOS in front of a prompt that lacks it, and reports the caller\'s tokens only', async () => {
  const { model } = tinyModel({}, 4);
  const bos = 1;
  const prompt = [17, 200, 5, 99, 42];
  const a = await promptLogprobs(model, prompt, { bosId: bos, top: 2 });
  const b = await promptLogprobs(model, [bos, ...prompt], { bosId: bos, top: 2 });
  assert.equal(a.bosAdded, true);
  assert.equal(b.bosAdded, false);
  assert.equal(a.entries.length, prompt.length);
  assert.equal(a.entries[0], null);
  for (let i = 1; i < prompt.length; i++) assert.deepEqual(a.entries[i], b.entries[i + 1]);
  assert.deepEqual(a.next, b.next);
  // Scored with BOS in front, the logprobs differ from scoring the bare sequence.
  const bare = await promptLogprobs(model, prompt, { bosId: prompt[0] });
  assert.notEqual(bare.entries[1]!.logprob, a.entries[1]!.logprob);
});

test('wire shapes: completions {tokens, token_logprobs, top_logprobs, text_offset} and chat {content: [...]}', async () => {
  const { loadTokenizer } = await import('../src/io/tokenizer-file.js');
  const { completionLogprobs, chatLogprobs, textOffsets, tokenText } = await import('../src/serve/logprobs-wire.js');
  const tok = loadTokenizer();
  const ids = [1, ...tok.encode('Hi 😀 there')];
  assert.equal(tokenText(tok, 1), '<s>');
  assert.equal(tokenText(tok, 6324), ' Hi');
  assert.equal(tokenText(tok, tok.pieceToId('<0x41>')), 'A');
  assert.equal(tokenText(tok, tok.pieceToId('<0xF0>')), '<0xF0>');
  // Offsets into the decoded text; the bytes of the emoji all point at its start.
  const text = tok.decode(ids);
  const off = textOffsets(tok, ids);
  assert.equal(off.length, ids.length);
  const cpIndex = (sub: string) => [...text.slice(0, text.indexOf(sub))].length;
  const emoji = cpIndex('😀');
  const byteIds = ids.map((id, i) => [id, i] as const).filter(([id]) => tok.isByte(id));
  assert.equal(byteIds.length, 4);
  for (const [, i] of byteIds) assert.equal(off[i], emoji);
  assert.equal(off[ids.length - 1], cpIndex('there') - 1);
  const row = Float32Array.from({ length: tok.vocabSize }, (_, i) => (i === 6324 ? 5 : i === 1 ? 4 : 0));
  const e = tokenLogprob(row, 6324, 2);
  const c = completionLogprobs(tok, [1, 6324], [null, e], [0, 0]);
  assert.deepEqual(c.tokens, ['<s>', ' Hi']);
  assert.deepEqual(c.token_logprobs, [null, e.logprob]);
  assert.deepEqual(c.top_logprobs, [null, { ' Hi': e.top[0].logprob, '<s>': e.top[1].logprob }]);
  // lm-eval's greediness check: the token's logprob is the largest top_logprobs value.
  const top: Record<string, number> = c.top_logprobs[1]!;
  assert.equal(Math.max(...Object.values(top)), c.token_logprobs[1]);
  const chat = chatLogprobs(tok, [e]);
  assert.deepEqual(chat.content[0], {
    token: ' Hi', logprob: e.logprob, bytes: [0x20, 0x48, 0x69],
    top_logprobs: [{ token: ' Hi', logprob: e.top[0].logprob, bytes: [0x20, 0x48, 0x69] }, { token: '<s>', logprob: e.top[1].logprob, bytes: [0x3c, 0x73, 0x3e] }],
  });
});

test('promptLogprobs scores in chunks through a KV cache: any chunk size gives the same entries as one pass', async () => {
  const { model } = tinyModel({}, 6);
  const prompt = Array.from({ length: 23 }, (_, i) => (i * 37 + 11) % 300);
  const whole = await promptLogprobs(model, prompt, { bosId: 1, top: 3, chunk: 1000 });
  for (const chunk of [1, 4, 7]) {
    const r = await promptLogprobs(model, prompt, { bosId: 1, top: 3, chunk });
    const flat = (x: typeof r) => x.entries.slice(1).flatMap((e) => [e!.logprob, ...e!.top.map((t) => t.logprob)]);
    assertClose(flat(r), flat(whole), TOL.loglik, `chunk ${chunk}`);
    assert.deepEqual(r.entries.slice(1).map((e) => e!.top.map((t) => t.id)), whole.entries.slice(1).map((e) => e!.top.map((t) => t.id)));
  }
});

test('the decode step records logprobs of the raw distribution, before a mask and the sampling processors', async () => {
  const { SequenceDecoder } = await import('../src/generate/decode.js');
  const { loadTokenizer } = await import('../src/io/tokenizer-file.js');
  const tok = loadTokenizer();
  const row = Float32Array.from({ length: tok.vocabSize }, (_, i) => Math.sin(i) * 3);
  const banned = topLogprobs(row, 1)[0].id;
  // The constraint bans the most likely token; the processors change the rest.
  const constraint = { mask: (l: Float32Array) => { l[banned] = -Infinity; }, accept: () => undefined, complete: false };
  const dec = new SequenceDecoder(tok, [1], tok.eosId, { temperature: 0, repetitionPenalty: 1.5, logitBias: { 7: 2 }, logprobs: 2, constraint });
  const r = dec.step(row.slice(), true);
  assert.notEqual(r.id, banned);
  assert.deepEqual(r.logprob, tokenLogprob(row, r.id, 2));
  assert.equal(r.logprob!.top[0].id, banned);
  assert.deepEqual(dec.logprobs, [r.logprob]);
  assert.equal(new SequenceDecoder(tok, [1], tok.eosId, { temperature: 0, logprobs: 0 }).argmaxOnly, false);
  assert.throws(() => new SequenceDecoder(tok, [1], tok.eosId, { logprobs: -1 }), /logprobs must be an integer >= 0/);
});
