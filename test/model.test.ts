import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tinyModel, maxAbsDiff } from './helpers/tiny.js';

const toks = [5, 17, 42, 99, 3, 250, 7, 8, 120, 33, 64];

test('per-layer geometry of the tiny model varies', () => {
  const { config } = tinyModel();
  assert.deepEqual(config.numQueryHeads, [2, 4, 4]);
  assert.ok(new Set(config.ffnDims).size > 1);
});

test('cached decoding equals one uncached pass', async () => {
  const { model } = tinyModel();
  const all = await model.logitsAll(toks);
  const V = model.config.vocabSize;
  const cache = model.newCache(32);
  await model.forward([{ cache, tokens: toks.slice(0, 4) }]);
  for (let i = 4; i < toks.length; i++) {
    const l = await model.forward([{ cache, tokens: [toks[i]] }]);
    assert.ok(maxAbsDiff(l, all.subarray(i * V, (i + 1) * V)) < 1e-5, `pos ${i}`);
  }
});

test('chunked prefill equals a single pass', async () => {
  const { model } = tinyModel();
  const a = await model.logitsAll(toks);
  model.prefillChunk = 3;
  const b = await model.logitsAll(toks);
  assert.ok(maxAbsDiff(a, b) < 1e-6);
});

test('batched sequences of different lengths equal one by one', async () => {
  const { model } = tinyModel();
  const V = model.config.vocabSize;
  const seqs = [toks, toks.slice(2, 5), toks.slice(0, 8).reverse()];
  const single: Float32Array[] = [];
  for (const s of seqs) single.push(await model.forward([{ cache: model.newCache(32), tokens: s }]));
  model.prefillChunk = 5;
  const caches = seqs.map(() => model.newCache(32));
  const batched = await model.forward(seqs.map((s, i) => ({ cache: caches[i], tokens: s })));
  for (let i = 0; i < seqs.length; i++) assert.ok(maxAbsDiff(batched.subarray(i * V, (i + 1) * V), single[i]) < 1e-5, `seq ${i}`);
  // and a batched decode step continues each sequence correctly
  const next = await model.forward(seqs.map((_, i) => ({ cache: caches[i], tokens: [9] })));
  for (let i = 0; i < seqs.length; i++) {
    const ref = await model.logitsAll([...seqs[i], 9]);
    const n = seqs[i].length;
    assert.ok(maxAbsDiff(next.subarray(i * V, (i + 1) * V), ref.subarray(n * V, (n + 1) * V)) < 1e-5);
  }
});

test('bad tokens and overflowing caches are rejected', async () => {
  const { model } = tinyModel();
  await assert.rejects(model.forward([{ cache: model.newCache(4), tokens: [1, 2, 3, 4, 5] }]), /does not fit/);
  await assert.rejects(model.forward([{ cache: model.newCache(4), tokens: [1000] }]), /outside the vocabulary/);
});
