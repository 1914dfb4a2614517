// Optimizer pieces: CoreNet's LR schedule, AdamW (PyTorch semantics, decay only on 2-D weights),
// global-norm clipping, optimizer-state round trips, and the 10-step AdamW curve of every golden
// in test/golden/ (skipped until they exist).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/core/rng.js';
import { resolveConfig } from '../src/model/config.js';
import { paramLayout } from '../src/model/layout.js';
import { initParams } from '../src/model/init.js';
import type { SafetensorsFile } from '../src/io/safetensors.js';
import { AdamW } from '../src/train/adamw.js';
import { clipGradNorm } from '../src/train/clip.js';
import { constantSchedule, cosineSchedule } from '../src/train/schedule.js';
import { TrainableModel } from '../src/model/trainable.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import { sumSquares } from '../src/backends/js/reference.js';
import type { Tensor } from '../src/backends/backend.js';

/** The JS backend's tensors are typed arrays, so these tests hand it arrays directly. */
const T_ = (a: Float32Array | Float64Array): Tensor => a as unknown as Tensor;
import { Golden, goldenConfig, goldenNames, loadGoldenParams } from './helpers/golden.js';
import { TOL, allclose, assertClose } from './tolerances.js';
import { TINY_HF } from './helpers/tiny.js';

test('CoreNet cosine schedule: warm-up line, peak at W, cosine to min, formula values', () => {
  const s = cosineSchedule({ maxLr: 5.3e-3, minLr: 5.3e-4, warmupSteps: 5000, maxSteps: 350000, warmupInitLr: 1e-6 });
  assert.equal(s.lr(0), 1e-6);
  assert.ok(Math.abs(s.lr(2500) - (1e-6 + 2500 * (5.3e-3 - 1e-6) / 5000)) < 1e-18);
  assert.ok(Math.abs(s.lr(5000) - 5.3e-3) < 1e-18);
  const t = 200000;
  assert.ok(Math.abs(s.lr(t) - (5.3e-4 + 0.5 * (5.3e-3 - 5.3e-4) * (1 + Math.cos(Math.PI * (t - 5000) / 345001)))) < 1e-18);
  // T − W + 1 in the denominator: the last step is just above min, never exactly min
  assert.ok(s.lr(350000) > 5.3e-4 && s.lr(350000) - 5.3e-4 < 1e-12);
  for (let i = 5001; i < 350000; i += 9973) assert.ok(s.lr(i) < s.lr(i - 1));
  // the goldens' small schedule (tools/make_goldens.py)
  const g = cosineSchedule({ maxLr: 1e-2, minLr: 1e-3, warmupSteps: 3, maxSteps: 10 });
  assertClose([0, 1, 2, 3].map((i) => g.lr(i)), [1e-6, 1e-6 + (1e-2 - 1e-6) / 3, 1e-6 + 2 * (1e-2 - 1e-6) / 3, 1e-2], { atol: 1e-17, rtol: 0 });
  assert.throws(() => cosineSchedule({ maxLr: 1, minLr: 0, warmupSteps: 10, maxSteps: 5 }), /maxSteps/);
});

test('constant schedule, with and without warm-up', () => {
  assert.equal(constantSchedule({ lr: 3e-4 }).lr(0), 3e-4);
  const w = constantSchedule({ lr: 1e-3, warmupSteps: 4, warmupInitLr: 0 });
  assert.deepEqual([0, 1, 2, 3, 4, 100].map((i) => w.lr(i)), [0, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3]);
});

test('global-norm clipping returns the pre-clip norm and scales like torch clip_grad_norm_', async () => {
  const be = new JsBackend();
  const g = Float32Array.from([3, 4, 0, 0]);
  assert.equal(await clipGradNorm(be, T_(g), 10), 5);
  assert.deepEqual(Array.from(g), [3, 4, 0, 0]);
  assert.equal(await clipGradNorm(be, T_(g), 1), 5);
  const c = 1 / (5 + 1e-6);
  assertClose(g, [3 * c, 4 * c, 0, 0], { atol: 1e-7, rtol: 0 });
  assert.ok(Math.abs(Math.sqrt(sumSquares(g)) - 5 * c) < 1e-6);
  const h = Float64Array.from([1, 1]);
  assert.equal(await clipGradNorm(be, T_(h), 0), Math.SQRT2); // 0 = measure only
  assert.deepEqual(Array.from(h), [1, 1]);
});

/** PyTorch _single_tensor_adamw for one scalar, in float64. */
function refAdamW(p: number, g: number[], lrs: number[], wd: number, b1 = 0.9, b2 = 0.95, eps = 1e-8): number {
  let m = 0, v = 0;
  for (let t = 1; t <= g.length; t++) {
    const lr = lrs[t - 1];
    p *= 1 - lr * wd;
    m = m + (g[t - 1] - m) * (1 - b1);
    v = v * b2 + (1 - b2) * g[t - 1] * g[t - 1];
    const denom = Math.sqrt(v) / Math.sqrt(1 - Math.pow(b2, t)) + eps;
    p += (-lr / (1 - Math.pow(b1, t))) * (m / denom);
  }
  return p;
}

test('AdamW: PyTorch update, weight decay on 2-D weights (incl. embedding) only, state round trip', async () => {
  const be = new JsBackend();
  const config = resolveConfig(TINY_HF);
  const layout = paramLayout(config);
  const p0 = new Float64Array(layout.total);
  const f32 = new Float32Array(layout.total);
  initParams(config, layout, f32, 3, { normJitter: 0.1 });
  p0.set(f32);
  const rng = new Rng(5);
  const steps = 5, lrs = [1e-3, 5e-3, 1e-2, 2e-3, 7e-4];
  const grads = Array.from({ length: steps }, () => Float64Array.from({ length: layout.total }, () => rng.normal() * 0.01));
  const opt = new AdamW(be, layout, { weightDecay: 0.1 });
  const p = p0.slice();
  for (let t = 0; t < steps; t++) await opt.update(T_(p), T_(grads[t]), lrs[t]);
  assert.equal(opt.step, steps);
  const decayed = new Set(opt.groups.filter((g) => g.decay).map((g) => g.name));
  assert.ok(decayed.has('transformer.token_embeddings.weight') && decayed.has('transformer.layers.0.attn.qkv_proj.weight'));
  assert.ok(!decayed.has('transformer.norm.weight') && !decayed.has('transformer.layers.1.attn.q_norm.weight'));
  for (const e of layout.entries) {
    const wd = e.shape.length === 2 ? 0.1 : 0;
    for (const i of [e.offset, e.offset + Math.floor(e.size / 2), e.offset + e.size - 1]) {
      const want = refAdamW(p0[i], grads.map((g) => g[i]), lrs, wd);
      // m, v are f32 state (as in PyTorch fp32 training)
      assert.ok(Math.abs(p[i] - want) < 1e-8 * Math.max(1, Math.abs(want)), `${e.name}[${i - e.offset}]: ${p[i]} vs ${want}`);
    }
  }
  // Checkpoint: 3 steps, save, 2 more; a fresh optimizer restored from the save must end identically.
  const a = new AdamW(be, layout), pa = p0.slice();
  for (let t = 0; t < 3; t++) await a.update(T_(pa), T_(grads[t]), lrs[t]);
  const saved = await a.state(), pSaved = pa.slice();
  for (let t = 3; t < 5; t++) await a.update(T_(pa), T_(grads[t]), lrs[t]);
  const b = new AdamW(be, layout);
  b.loadState(saved);
  const pb = pSaved.slice();
  for (let t = 3; t < 5; t++) await b.update(T_(pb), T_(grads[t]), lrs[t]);
  assert.deepEqual(Array.from(pb), Array.from(pa));
  assert.throws(() => b.loadState({ step: 1, m: new Float32Array(3), v: new Float32Array(3) }), /optimizer state/);
});

// ------------------------------------------------------------------------------------------------
// Golden 10-step curves (tools/make_goldens.py run_curve: CoreNet LR, zero_grad, loss.backward,
// clip_grad_norm_(1.0), AdamW step).

const goldens = goldenNames();

interface CurveOpt {
  betas: [number, number]; eps: number; weight_decay: number; grad_clip_max_norm: number; max_lr: number; min_lr: number;
  warmup_init_lr: number; warmup_steps: number; max_steps: number; steps: number; z_loss_coef: number; ignore_index: number;
}

function readI32(f: SafetensorsFile, name: string): Int32Array {
  const raw = f.readRaw(name);
  assert.equal(f.info(name).dtype, 'I32');
  return new Int32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
}

for (const name of goldens) {
  test(`golden ${name}: 10-step AdamW curve (loss, grad norm, lr, final params) within TOL.curve`, async () => {
    const be = new JsBackend();
    const model = new TrainableModel(goldenConfig(name), be);
    loadGoldenParams(name, model);
    const g = new Golden(name).file;
    const o = JSON.parse(g.metadata.optimizer) as CurveOpt;
    const [steps, B, T] = g.info('curve.input_ids').shape;
    const inputs = readI32(g, 'curve.input_ids'), targets = readI32(g, 'curve.targets');
    const sched = cosineSchedule({ maxLr: o.max_lr, minLr: o.min_lr, warmupSteps: o.warmup_steps, maxSteps: o.max_steps, warmupInitLr: o.warmup_init_lr });
    const opt = new AdamW(be, model.layout, { beta1: o.betas[0], beta2: o.betas[1], eps: o.eps, weightDecay: o.weight_decay });
    const losses: number[] = [], norms: number[] = [], lrs: number[] = [];
    for (let t = 0; t < steps; t++) {
      const lr = sched.lr(t);
      model.zeroGrad();
      const r = await model.forwardBackward(inputs.subarray(t * B * T, (t + 1) * B * T), targets.subarray(t * B * T, (t + 1) * B * T), B, T,
        { ignoreIndex: o.ignore_index, zLoss: o.z_loss_coef });
      norms.push(await clipGradNorm(be, model.grads, o.grad_clip_max_norm));
      await opt.update(model.params, model.grads, lr);
      losses.push(r.loss); lrs.push(lr);
    }
    const checks = [
      allclose(losses, g.readF32('curve.loss'), TOL.curve, 'curve.loss'),
      allclose(norms, g.readF32('curve.grad_norm'), TOL.curve, 'curve.grad_norm'),
      allclose(lrs, g.readF32('curve.lr'), TOL.curve, 'curve.lr'),
    ];
    let worst = 0, worstName = '';
    for (const e of model.layout.entries) {
      const r = allclose(await model.readParam(e.name), g.readF32(`curve.final.${e.name}`), TOL.curve, `curve.final.${e.name}`);
      if (r.maxAbs >= worst) { worst = r.maxAbs; worstName = e.name; }
      checks.push(r);
    }
    g.close();
    console.log(`[golden ${name}] ${checks.slice(0, 2).map((c) => c.message.split(';')[0]).join(' | ')} | final params worst max abs ${worst.toExponential(3)} (${worstName})`);
    const bad = checks.filter((c) => !c.ok).map((c) => c.message);
    assert.deepEqual(bad, []);
  });
}
