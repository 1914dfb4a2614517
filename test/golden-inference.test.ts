// Inference against the float64 PyTorch reference (tools/openelm_ref.py): logits of a batch with
// different lengths, one layer's intermediates, greedy continuations, on the JS reference backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Golden, goldenNames } from './helpers/golden.js';
import { TOL, assertClose } from './tolerances.js';
import { loadModelFolder as loadModel } from '../src/io/model-folder.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import { generate } from '../src/generate/generate.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';

const names = goldenNames();

test('golden fixtures are present', () => {
  assert.ok(names.length >= 3, `expected >= 3 golden models, found ${names.join(', ') || 'none'}`);
});

for (const name of names) {
  test(`${name}: batch logits match the fp64 reference`, async () => {
    const g = new Golden(name);
    const model = loadModel(g.dir, { backend: new JsBackend(), dtype: 'f32' });
    const ids = g.i32('input_ids'), lengths = g.i32('lengths'), ref = g.f32('logits');
    const [B, T] = g.shape('input_ids');
    const V = model.config.vocabSize;
    const seqs = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * T, b * T + lengths[b])));
    // all rows at once, as a batch of different lengths
    const caches = seqs.map((s) => model.newCache(s.length));
    const out = await model.forward(seqs.map((s, i) => ({ cache: caches[i], tokens: s })), { all: true });
    let off = 0;
    for (let b = 0; b < B; b++) {
      const n = lengths[b];
      assertClose(out.subarray(off * V, (off + n) * V), ref.subarray(b * T * V, (b * T + n) * V), TOL.refLogits, `${name} row ${b}`);
      off += n;
    }
    g.close();
  });

  test(`${name}: layer-1 intermediates match`, async () => {
    const g = new Golden(name);
    const model = loadModel(g.dir, { backend: new JsBackend(), dtype: 'f32' });
    const c = model.config, hd = c.headDim, Q = c.numQueryHeads[1], H = c.numKvHeads[1];
    const T = g.i32('lengths')[0];
    const toks = Array.from(g.i32('input_ids').subarray(0, T));
    const pending = new Map<string, Promise<Float32Array>>();
    model.tap = (layer, n, data) => { if (layer === 1 || layer === -1) pending.set(n, data); };
    await model.logitsAll(toks);
    const got = new Map<string, Float32Array>();
    for (const [k, v] of pending) got.set(k, await v);
    const W = (Q + 2 * H) * hd;
    // [T, heads·hd] rows → [heads, T, hd] as the reference stores them
    const heads = (src: Float32Array, first: number, count: number) => {
      const o = new Float32Array(count * T * hd);
      for (let h = 0; h < count; h++) for (let t = 0; t < T; t++) o.set(src.subarray(t * W + (first + h) * hd, t * W + (first + h + 1) * hd), (h * T + t) * hd);
      return o;
    };
    const check = (mine: Float32Array, key: string) => assertClose(mine, g.f32(key), TOL.refActivations, `${name} ${key}`);
    check(got.get('embed')!, 'act.embed');
    check(got.get('attn_norm')!, 'act.attn_norm');
    check(got.get('qkv')!, 'act.qkv');
    const rope = got.get('qkv_rope')!;
    check(heads(rope, 0, Q), 'act.q');
    check(heads(rope, Q, H), 'act.k');
    check(heads(rope, Q + H, H), 'act.v');
    check(got.get('attn')!, 'act.attn');
    check(got.get('attn_out')!, 'act.attn_out');
    check(got.get('h')!, 'act.h');
    check(got.get('ffn_norm')!, 'act.ffn_norm');
    check(got.get('ffn_out')!, 'act.ffn_out');
    check(got.get('block_out')!, 'act.block_out');
    check(got.get('final_norm')!, 'act.final_norm');
    g.close();
  });

  test(`${name}: greedy continuation ids are identical (cached)`, async () => {
    const g = new Golden(name);
    const model = loadModel(g.dir, { backend: new JsBackend(), dtype: 'f32' });
    const prompt = Array.from(g.i32('greedy.prompt'));
    const want = Array.from(g.i32('greedy.ids'));
    const tok = loadTokenizer();
    const res = await generate(model, tok, prompt, { temperature: 0, maxTokens: want.length, ignoreEos: true });
    assert.deepEqual(res.ids, want);
    g.close();
  });
}
