// DPO on an adapter: the per-sequence path (sequenceLogprobs, then sequenceLogprobsBackward with
// per-row weights) through LoRA and DoRA with dropout must give what the cross-entropy path gives,
// whose adapter gradients test/adapter-suite.test.ts holds to PEFT's. Per row b, the mean
// cross-entropy over its targets is −s_b/n_b, so forwardBackward on that row alone with gradScale
// −w_b·n_b adds w_b·∇s_b; summed over the rows that is Σ_b w_b·∇s_b, with the same dropout masks
// because the batch shape and the seed are the same.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/core/rng.js';
import { resolveConfig, type OpenELMConfig, type OpenELMHFConfig } from '../src/model/config.js';
import { initParams } from '../src/model/init.js';
import { paramLayout } from '../src/model/layout.js';
import { paramSpecs } from '../src/model/params.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import { TrainableModel } from '../src/model/trainable.js';
import { initAdapter, type AdapterSettings } from '../src/adapters/adapter.js';
import { adapterToFlat } from '../src/adapters/params.js';
import { ADAPTER_TARGETS } from '../src/adapters/targets.js';
import { TOL, allclose } from './tolerances.js';

const HF: OpenELMHFConfig = {
  model_type: 'openelm', num_transformer_layers: 2, model_dim: 16, head_dim: 4, num_gqa_groups: 2,
  qkv_multipliers: [0.5, 1.0], ffn_multipliers: [1.0, 1.5], ffn_dim_divisor: 8, vocab_size: 23,
  max_context_length: 16, rope_freq_constant: 10000, rope_max_length: 8,
};
const IGNORE = -100;

function adapted(c: OpenELMConfig, s: AdapterSettings): TrainableModel {
  const layout = paramLayout(c), flat = new Float32Array(layout.total);
  initParams(c, layout, flat, 5, { normJitter: 0.2 });
  const base = new Map(layout.entries.map((e) => [e.name, flat.slice(e.offset, e.offset + e.size)]));
  const m = new TrainableModel(c, new JsBackend({ precision: 'f64' }), { adapter: { settings: s }, headChunkRows: 3 });
  for (const p of paramSpecs(c)) m.setBase(p.name, base.get(p.name)!);
  const a = initAdapter(c, s, { seed: 11, baseWeight: (n) => base.get(n)! });
  const r = new Rng(3);
  // every tensor off its init, so every gradient path is live
  for (const mod of a.modules) {
    for (let i = 0; i < mod.B.length; i++) mod.B[i] = 0.3 * r.normal();
    for (let i = 0; i < mod.A.length; i++) mod.A[i] += 0.05 * r.normal();
    if (mod.magnitude) for (let i = 0; i < mod.magnitude.length; i++) mod.magnitude[i] *= 1 + 0.1 * r.normal();
  }
  m.backend.write(m.params, adapterToFlat(a, m.layout));
  return m;
}

async function grads(m: TrainableModel): Promise<Map<string, Float32Array>> {
  return new Map(await Promise.all(m.layout.entries.map(async (e) => [e.name, await m.readGrad(e.name)] as const)));
}

for (const type of ['lora', 'dora'] as const) {
  test(`DPO through a ${type} adapter with dropout: per-sequence log-probabilities and Σ w·∇s equal the cross-entropy path`, async () => {
    const c = resolveConfig(HF);
    const s: AdapterSettings = { type, r: 3, alpha: 6, dropout: 0.25, targets: [...ADAPTER_TARGETS], rslora: false };
    const B = 4, T = 6, rng = new Rng(9);
    const inputs = Int32Array.from({ length: B * T }, () => rng.int(c.vocabSize));
    // completions only, as DPO scores them: a prompt part and a padded tail are ignored
    const targets = Int32Array.from({ length: B * T }, (_, i) => (i % T < 2 || (i >= 3 * T + 4) ? IGNORE : rng.int(c.vocabSize)));
    for (let i = 3 * T + 4; i < B * T; i++) inputs[i] = IGNORE;
    const w = [0.7, -1.3, 0.4, -0.2];
    const seed = 17;

    const m = adapted(c, s);
    m.zeroGrad();
    const sums = await m.sequenceLogprobs(inputs, targets, B, T, { ignoreIndex: IGNORE, train: true, dropoutSeed: seed });
    await m.sequenceLogprobsBackward(w);
    const got = await grads(m);
    // dropout is live in the training forward: scoring without it gives other sums
    const plain = await m.sequenceLogprobs(inputs, targets, B, T, { ignoreIndex: IGNORE });
    assert.ok(plain.some((v, b) => Math.abs(v - sums[b]) > 1e-6), 'dropout changes the training forward');

    const ref = adapted(c, s);
    ref.zeroGrad();
    for (let b = 0; b < B; b++) {
      const only = Int32Array.from(targets, (t, i) => (Math.floor(i / T) === b ? t : IGNORE));
      const n = only.filter((t) => t !== IGNORE).length;
      const res = await ref.forwardBackward(inputs, only, B, T, { ignoreIndex: IGNORE, gradScale: -w[b] * n, dropoutSeed: seed });
      assert.ok(Math.abs(-res.loss * n - sums[b]) < 1e-9 * Math.max(1, Math.abs(sums[b])), `row ${b}: ${sums[b]} vs ${-res.loss * n}`);
    }
    const want = await grads(ref);
    for (const [name, g] of got) {
      const r = allclose(g, want.get(name)!, TOL.grads, name);
      assert.ok(r.ok, r.message);
    }
    assert.ok([...got.values()].some((g) => g.some((v) => v !== 0)), 'gradients reach the adapter');
    m.dispose(); ref.dispose();
  });
}
