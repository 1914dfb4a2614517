// The golden suite through the Backend interface only, on every backend of BACKEND_CASES
// (test/helpers/backends.ts): inference (batch logits of sequences of different lengths, greedy
// ids, cached == uncached, batched == one by one) and training (loss and every gradient, the
// 10-step AdamW curve). A new backend is tested by adding one entry there.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKEND_CASES } from './helpers/backends.js';
import { Golden, goldenConfig, goldenNames, loadGoldenParams, readInts } from './helpers/golden.js';
import { TOL, allclose, assertClose } from './tolerances.js';
import { loadModelFolder } from '../src/io/model-folder.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { generate } from '../src/generate/generate.js';
import { TrainableModel } from '../src/model/trainable.js';
import { AdamW } from '../src/train/adamw.js';
import { clipGradNorm } from '../src/train/clip.js';
import { cosineSchedule } from '../src/train/schedule.js';
import { BLOCK_FORMATS, rowsWeight, setWeightRows } from '../src/backends/weight-format.js';
import { BLOCK_DTYPES, type BlockDType, type Weight, type WeightDType } from '../src/backends/backend.js';
import { Rng } from '../src/core/rng.js';
import { blockWeightOn, randomBlocks } from './helpers/blocks.js';
import { MAX_VERIFY_ROWS } from '../src/generate/speculative.js';

const names = goldenNames();

for (const bc of BACKEND_CASES) {
  const skip = bc.available() ?? false;
  for (const name of names) {
    test(`[${bc.name}] ${name}: inference goldens (batch logits, greedy ids, cached == uncached, batched == single)`, { skip }, async () => {
      const be = await bc.make();
      const g = new Golden(name);
      try {
        const model = loadModelFolder(g.dir, { backend: be, dtype: 'f32' });
        const V = model.config.vocabSize;
        const ids = g.i32('input_ids'), lengths = g.i32('lengths'), ref = g.f32('logits');
        const [B, T] = g.shape('input_ids');
        const seqs = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * T, b * T + lengths[b])));
        const out = await model.forward(seqs.map((s) => ({ cache: model.newCache(s.length), tokens: s })), { all: true });
        let off = 0;
        for (let b = 0; b < B; b++) {
          const n = lengths[b];
          assertClose(out.subarray(off * V, (off + n) * V), ref.subarray(b * T * V, (b * T + n) * V), bc.logits, `${name} row ${b}`);
          // one by one, and token by token through the cache, give the same rows
          const single = await model.logitsAll(seqs[b]);
          assertClose(single, out.subarray(off * V, (off + n) * V), TOL.fastVsRef, `${name} row ${b} alone`);
          const cache = model.newCache(n);
          for (let t = 0; t < n; t++) {
            const step = await model.forward([{ cache, tokens: [seqs[b][t]] }]);
            assertClose(step, single.subarray(t * V, (t + 1) * V), TOL.fastVsRef, `${name} row ${b} cached step ${t}`);
          }
          cache.dispose();
          off += n;
        }
        const prompt = Array.from(g.i32('greedy.prompt')), want = Array.from(g.i32('greedy.ids'));
        const res = await generate(model, loadTokenizer(), prompt, { temperature: 0, maxTokens: want.length, ignoreEos: true });
        assert.deepEqual(res.ids, want);
      } finally {
        g.close();
        be.dispose();
      }
    });

    test(`[${bc.name}] ${name}: training goldens (loss, every gradient, 10-step AdamW curve)`, { skip }, async () => {
      const be = await bc.make();
      const g = new Golden(name).file;
      try {
        const model = new TrainableModel(goldenConfig(name), be);
        loadGoldenParams(name, model);
        const o = JSON.parse(g.metadata.optimizer) as {
          betas: [number, number]; eps: number; weight_decay: number; grad_clip_max_norm: number; max_lr: number; min_lr: number;
          warmup_init_lr: number; warmup_steps: number; max_steps: number; z_loss_coef: number; ignore_index: number;
        };
        const [B, T] = g.info('train.input_ids').shape;
        const res = await model.forwardBackward(readInts(g, 'train.input_ids'), readInts(g, 'train.targets'), B, T,
          { ignoreIndex: o.ignore_index, zLoss: o.z_loss_coef });
        const checks = [allclose([res.loss], g.readF32('train.loss'), TOL.loss, 'train.loss'), allclose([res.ce], g.readF32('train.ce'), TOL.loss, 'train.ce')];
        for (const e of model.layout.entries) checks.push(allclose(await model.readGrad(e.name), g.readF32(`grad.${e.name}`), TOL.grads, `grad.${e.name}`));
        // the curve starts again from the golden weights
        loadGoldenParams(name, model);
        const [steps, cB, cT] = g.info('curve.input_ids').shape;
        const inputs = readInts(g, 'curve.input_ids'), targets = readInts(g, 'curve.targets');
        const sched = cosineSchedule({ maxLr: o.max_lr, minLr: o.min_lr, warmupSteps: o.warmup_steps, maxSteps: o.max_steps, warmupInitLr: o.warmup_init_lr });
        const opt = new AdamW(be, model.layout, { beta1: o.betas[0], beta2: o.betas[1], eps: o.eps, weightDecay: o.weight_decay });
        const losses: number[] = [], norms: number[] = [];
        for (let t = 0; t < steps; t++) {
          model.zeroGrad();
          const r = await model.forwardBackward(inputs.subarray(t * cB * cT, (t + 1) * cB * cT), targets.subarray(t * cB * cT, (t + 1) * cB * cT), cB, cT,
            { ignoreIndex: o.ignore_index, zLoss: o.z_loss_coef });
          norms.push(await clipGradNorm(be, model.grads, o.grad_clip_max_norm));
          await opt.update(model.params, model.grads, sched.lr(t));
          losses.push(r.loss);
        }
        checks.push(allclose(losses, g.readF32('curve.loss'), TOL.curve, 'curve.loss'), allclose(norms, g.readF32('curve.grad_norm'), TOL.curve, 'curve.grad_norm'));
        for (const e of model.layout.entries) checks.push(allclose(await model.readParam(e.name), g.readF32(`curve.final.${e.name}`), TOL.curve, `curve.final.${e.name}`));
        assert.deepEqual(checks.filter((c) => !c.ok).map((c) => c.message), []);
        opt.dispose();
        model.dispose();
      } finally {
        g.close();
        be.dispose();
      }
    });
  }
}

// Speculative decoding checks k+1 tokens in one forward pass and must reproduce decoding them one
// at a time bit for bit (src/generate/speculative.ts): every row of a linear of up to
// MAX_VERIFY_ROWS rows must equal a one-row call, in every weight format, on the backend as users
// get it (the native sgemm takes only larger products there). Block dtypes (GGUF and MLX weights run
// as stored) too, and a weight of row ranges in different dtypes (a GGUF proj_1 whose halves differ).
for (const bc of BACKEND_CASES) {
  test(`[${bc.name}] linear: each of up to ${MAX_VERIFY_ROWS} rows equals a one-row call, every dtype`, { skip: bc.available() ?? false }, async () => {
    const be = await (bc.makeDefault ?? bc.make)();
    try {
      const N = 37;
      const kinds = [...(['f32', 'bf16', 'f16', 'q8', 'q4'] as const), ...BLOCK_DTYPES, 'rows' as const];
      for (const dtype of kinds) {
        // K reaches every tail: a partial 16-wide step and scalar leftovers (float), an odd block
        // count (quantized), a last decode chunk shorter than the others (block dtypes)
        const K = dtype === 'q8' || dtype === 'q4' ? 160 : dtype === 'f32' || dtype === 'bf16' || dtype === 'f16' ? 171
          : dtype === 'rows' || BLOCK_FORMATS[dtype].elems === 256 ? 768 : 352;
        const x = Float32Array.from({ length: MAX_VERIFY_ROWS * K }, (_, i) => Math.cos(i * 0.11));
        let w: Weight;
        if (dtype === 'rows') {
          const r = new Rng(7);
          w = rowsWeight([blockWeightOn(be, 'q4_k', 20, K, randomBlocks(r, 'q4_k', 20, K)), blockWeightOn(be, 'q6_k', N - 20, K, randomBlocks(r, 'q6_k', N - 20, K))]);
          be.prepareWeight(w);
        } else if (dtype in BLOCK_FORMATS) {
          w = blockWeightOn(be, dtype as BlockDType, N, K, randomBlocks(new Rng(7), dtype as BlockDType, N, K));
        } else {
          const src = Float32Array.from({ length: N * K }, (_, i) => Math.sin(i * 0.37) + 0.01 * (i % 7));
          w = be.allocWeight(dtype as WeightDType, N, K);
          setWeightRows(w, 0, src);
          be.prepareWeight(w);
        }
        const one: Float32Array[] = [];
        for (let m = 0; m < MAX_VERIFY_ROWS; m++) {
          const xt = be.alloc(K), ot = be.alloc(N);
          be.write(xt, x.subarray(m * K, (m + 1) * K));
          be.linear(ot, xt, w, 1);
          one.push(await be.read(ot));
          be.free(xt); be.free(ot);
        }
        for (let M = 2; M <= MAX_VERIFY_ROWS; M++) {
          const xt = be.alloc(M * K), ot = be.alloc(M * N);
          be.write(xt, x.subarray(0, M * K));
          be.linear(ot, xt, w, M);
          const got = await be.read(ot);
          for (let m = 0; m < M; m++) assert.deepEqual(got.subarray(m * N, (m + 1) * N), one[m], `${dtype}: row ${m} of ${M}`);
          be.free(xt); be.free(ot);
        }
        be.freeWeight(w);
      }
    } finally { be.dispose(); }
  });
}
