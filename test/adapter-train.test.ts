// Adapter training beyond the PEFT fixtures: float64 finite differences of every adapter gradient
// (LoRA, rsLoRA, DoRA, with and without dropout, tied and untied heads, all five targets; DoRA's A
// and B only through its magnitudes, since PEFT detaches the norm from their gradient — the PEFT
// fixtures check those);
// recomputation and thread counts changing no bit; a quantized base on WASM against the reference;
// and a fresh adapter being the identity.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/core/rng.js';
import { resolveConfig, type OpenELMConfig, type OpenELMHFConfig } from '../src/model/config.js';
import { initParams } from '../src/model/init.js';
import { paramLayout } from '../src/model/layout.js';
import { paramSpecs } from '../src/model/params.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import type { Backend, Tensor } from '../src/backends/backend.js';
import type { FloatArray } from '../src/backends/js/reference.js';
import { wasmAvailable } from '../src/backends/wasm/kernels.js';
import { TrainableModel } from '../src/model/trainable.js';
import { initAdapter, type AdapterSettings } from '../src/adapters/adapter.js';
import { adapterToFlat } from '../src/adapters/params.js';
import { ADAPTER_TARGETS } from '../src/adapters/targets.js';
import { createWasm } from './helpers/backends.js';
import { TOL, allclose, assertClose } from './tolerances.js';

const HF: OpenELMHFConfig = {
  model_type: 'openelm', num_transformer_layers: 2, model_dim: 16, head_dim: 4, num_gqa_groups: 2,
  qkv_multipliers: [0.5, 1.0], ffn_multipliers: [1.0, 1.5], ffn_dim_divisor: 8, vocab_size: 23,
  max_context_length: 16, rope_freq_constant: 10000, rope_max_length: 8,
};

const arr = (t: Tensor): FloatArray => t as unknown as FloatArray;

/** Base weights of a small model (seeded), as host f32 tensors by HF name. */
function baseOf(c: OpenELMConfig, seed: number): Map<string, Float32Array> {
  const layout = paramLayout(c), flat = new Float32Array(layout.total);
  initParams(c, layout, flat, seed, { normJitter: 0.2 });
  return new Map(layout.entries.map((e) => [e.name, flat.slice(e.offset, e.offset + e.size)]));
}

/** A model with a base and an adapter whose every tensor is off its init (so every gradient path is live). */
function adapted(be: Backend, c: OpenELMConfig, s: AdapterSettings, opts: { recompute?: boolean; baseDtype?: 'f32' | 'bf16' | 'q8' | 'q4'; seed?: number } = {}): TrainableModel {
  const base = baseOf(c, opts.seed ?? 5);
  const m = new TrainableModel(c, be, { adapter: { settings: s, baseDtype: opts.baseDtype }, recompute: opts.recompute, headChunkRows: 3 });
  for (const p of paramSpecs(c)) m.setBase(p.name, base.get(p.name)!);
  const a = initAdapter(c, s, { seed: 11, baseWeight: (n) => base.get(n)! });
  const r = new Rng(3);
  for (const mod of a.modules) {
    for (let i = 0; i < mod.B.length; i++) mod.B[i] = 0.3 * r.normal();
    for (let i = 0; i < mod.A.length; i++) mod.A[i] += 0.05 * r.normal();
    if (mod.magnitude) for (let i = 0; i < mod.magnitude.length; i++) mod.magnitude[i] *= 1 + 0.1 * r.normal();
  }
  be.write(m.params, adapterToFlat(a, m.layout));
  return m;
}

function batch(B: number, T: number, V: number, seed: number) {
  const r = new Rng(seed);
  const inputs = Int32Array.from({ length: B * T }, () => r.int(V)), targets = Int32Array.from({ length: B * T }, () => r.int(V));
  // a padded tail (input -100: a zero row, no gradient) and an ignored target
  inputs[B * T - 1] = -100; targets[B * T - 1] = -100; targets[B * T - 2] = -100; targets[1] = -100;
  return { inputs, targets };
}

const settings = (type: 'lora' | 'dora', dropout: number, rslora = false): AdapterSettings =>
  ({ type, r: 3, alpha: 5, dropout, targets: [...ADAPTER_TARGETS], rslora });

const FD_CASES: [string, AdapterSettings, Partial<OpenELMHFConfig>][] = [
  ['LoRA', settings('lora', 0), {}],
  ['LoRA, dropout 0.3', settings('lora', 0.3), {}],
  ['rsLoRA, dropout 0.2, untied head, no GLU', settings('lora', 0.2, true), { share_input_output_layers: false, ffn_with_glu: false }],
  ['DoRA', settings('dora', 0), {}],
  ['DoRA, dropout 0.3', settings('dora', 0.3), {}],
  ['DoRA, dropout 0.25, untied head, no QK-norm', settings('dora', 0.25), { share_input_output_layers: false, normalize_qk_projections: false }],
];

for (const [name, s, hf] of FD_CASES) {
  test(`adapter gradients match float64 finite differences: ${name}`, async () => {
    const c = resolveConfig({ ...HF, ...hf });
    const m = adapted(new JsBackend({ precision: 'f64' }), c, s);
    const B = 2, T = 5;
    const { inputs, targets } = batch(B, T, c.vocabSize, 9);
    const opts = { zLoss: 0.01, dropoutSeed: 77 };
    m.zeroGrad();
    const res = await m.forwardBackward(inputs, targets, B, T, opts);
    // the loss of the same pass (same dropout masks), without a backward
    const f = async () => (await m.forwardBackward(inputs, targets, B, T, { ...opts, gradScale: 0 })).loss;
    assert.ok(Math.abs((await f()) - res.loss) < 1e-14);
    const p = arr(m.params), g = arr(m.grads), h = 1e-5;
    // DoRA's norm n depends on A and B but is detached (PEFT), so finite differences of the whole
    // function only agree for the magnitudes; PEFT's fixtures (adapter-suite) check A and B.
    for (const e of m.layout.entries.filter((x) => s.type === 'lora' || x.name.endsWith('.lora_magnitude'))) {
      // every element of small tensors; a spread of 40 of the embedding's [V, r] table
      const idx = e.size <= 64 ? Array.from({ length: e.size }, (_, i) => e.offset + i) : Array.from({ length: 40 }, (_, i) => e.offset + Math.floor((i * e.size) / 40));
      const fd: number[] = [];
      for (const i of idx) {
        const x0 = p[i];
        p[i] = x0 + h; const fp = await f();
        p[i] = x0 - h; const fm = await f();
        p[i] = x0;
        fd.push((fp - fm) / (2 * h));
      }
      assertClose(idx.map((i) => g[i]), fd, { atol: 1e-7, rtol: 1e-5 }, `${name}: ${e.name}`);
    }
    // dropout is off in evaluation: evalLoss differs from the training pass only when p > 0
    const ev = (await m.evalLoss(inputs, targets, B, T, { zLoss: 0.01 })).loss;
    if (s.dropout > 0) assert.ok(Math.abs(ev - res.loss) > 1e-6); else assert.ok(Math.abs(ev - res.loss) < 1e-12);
  });
}

test('a fresh adapter (PEFT init: B = 0, embedding A = 0, DoRA m = ||W||) leaves the base model\'s loss unchanged', async () => {
  const c = resolveConfig(HF);
  const base = baseOf(c, 5);
  const { inputs, targets } = batch(2, 6, c.vocabSize, 4);
  const full = new TrainableModel(c, new JsBackend({ precision: 'f64' }));
  for (const e of full.layout.entries) full.setParam(e.name, base.get(e.name)!);
  const want = (await full.evalLoss(inputs, targets, 2, 6)).loss;
  for (const type of ['lora', 'dora'] as const) {
    const s = settings(type, 0);
    const m = new TrainableModel(c, new JsBackend({ precision: 'f64' }), { adapter: { settings: s } });
    for (const p of paramSpecs(c)) m.setBase(p.name, base.get(p.name)!);
    m.backend.write(m.params, adapterToFlat(initAdapter(c, s, { seed: 1, baseWeight: (n) => base.get(n)! }), m.layout));
    // DoRA: c = m / n with m the f32-stored ||W||, so c = 1 to f32 rounding
    assert.ok(Math.abs((await m.evalLoss(inputs, targets, 2, 6)).loss - want) < (type === 'lora' ? 1e-12 : 1e-6), type);
  }
});

const wasm: Backend[] = [];
after(() => { for (const b of wasm) b.dispose(); });
const skip = !wasmAvailable();

test('WASM adapter training: recompute and the thread count change no bit of the loss or the gradients', { skip }, async () => {
  const c = resolveConfig({ ...HF, model_dim: 32, head_dim: 8, vocab_size: 61 });
  const B = 3, T = 7;
  const { inputs, targets } = batch(B, T, c.vocabSize, 2);
  for (const s of [settings('lora', 0.2), settings('dora', 0.2)]) {
    const results: Float32Array[] = [];
    for (const [threads, recompute] of [[1, false], [3, false], [3, true]] as const) {
      const be = await createWasm({ threads, parallelThreshold: 0 });
      wasm.push(be);
      const m = adapted(be, c, s, { recompute });
      m.zeroGrad();
      const r = await m.forwardBackward(inputs, targets, B, T, { zLoss: 1e-4, dropoutSeed: 5 });
      results.push(Float32Array.from([r.loss, ...(await be.read(m.grads))]));
      m.dispose();
    }
    assert.deepEqual(results[1], results[0], `${s.type}: 3 threads == 1 thread`);
    assert.deepEqual(results[2], results[0], `${s.type}: recompute == saved activations`);
  }
});

test('a bf16 / q8 / q4 base (QLoRA-style) trains on WASM as on the reference, and the quantization is what changes the loss', { skip }, async () => {
  const c = resolveConfig({ ...HF, model_dim: 64, head_dim: 16, ffn_dim_divisor: 32, vocab_size: 61 });
  const B = 2, T = 6;
  const { inputs, targets } = batch(B, T, c.vocabSize, 8);
  const losses = new Map<string, number>();
  for (const dtype of ['f32', 'bf16', 'q8', 'q4'] as const) {
    for (const s of [settings('lora', 0.1), settings('dora', 0)]) {
      const js = adapted(new JsBackend(), c, s, { baseDtype: dtype });
      const be = await createWasm({ threads: 2 });
      wasm.push(be);
      const wm = adapted(be, c, s, { baseDtype: dtype });
      const rj = await js.forwardBackward(inputs, targets, B, T, { dropoutSeed: 1 });
      const rw = await wm.forwardBackward(inputs, targets, B, T, { dropoutSeed: 1 });
      // training asks for exact products (linear's `exact`), so q8/q4 compare as closely as f32
      assertClose([rw.loss], [rj.loss], TOL.fastVsRef, `${dtype} ${s.type} loss`);
      const gj = await js.backend.read(js.grads), gw = await be.read(wm.grads);
      const scale = gj.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
      const r = allclose(gw, gj, { atol: 1e-4 * scale, rtol: 0 }, `${dtype} ${s.type} grads`);
      assert.ok(r.ok, r.message);
      losses.set(`${dtype} ${s.type}`, rj.loss);
      js.dispose(); wm.dispose();
    }
  }
  for (const t of ['lora', 'dora']) {
    assert.notEqual(losses.get(`q4 ${t}`), losses.get(`f32 ${t}`));
    assert.ok(Math.abs(losses.get(`q8 ${t}`)! - losses.get(`f32 ${t}`)!) < 0.05, `q8 base stays near f32 (${t})`);
  }
});
