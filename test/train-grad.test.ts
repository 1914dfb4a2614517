// Training forward/backward: float64 finite-difference checks of every backward kernel and of the
// whole model, equality of the training forward with the inference forward, recomputation and
// gradient accumulation, and (when test/golden/* exists) loss and gradients against the goldens.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/core/rng.js';
import { resolveConfig, type OpenELMHFConfig } from '../src/model/config.js';
import { initParams } from '../src/model/init.js';
import { OpenELM } from '../src/model/openelm.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import {
  JsGemm, attentionBackward, attentionForward, crossEntropyRows, qkNormRopeBackward, qkNormRopeForward, rmsnormBackward,
  rmsnormForward, siluBackward, siluForward, swigluBackward, swigluForward, type FloatArray,
} from '../src/backends/js/reference.js';
import type { Tensor } from '../src/backends/backend.js';
import { countValid, crossEntropyLoss, gradAccumScales } from '../src/model/loss.js';
import { TrainableModel, type ForwardBackwardOptions } from '../src/model/trainable.js';
import type { SafetensorsFile } from '../src/io/safetensors.js';
import { Golden as GoldenFile, goldenConfig, goldenNames, loadGoldenParams, readInts } from './helpers/golden.js';
import { TOL, allclose, assertClose } from './tolerances.js';

const rng = new Rng(1234);
const randn = (n: number, s = 1): Float64Array => Float64Array.from({ length: n }, () => s * rng.normal());

/** Central differences of f at x (x is perturbed in place and restored). */
function fdGrad(f: () => number, x: FloatArray, idx: Iterable<number>, h = 1e-5): Map<number, number> {
  const out = new Map<number, number>();
  for (const i of idx) {
    const x0 = x[i];
    x[i] = x0 + h; const fp = f();
    x[i] = x0 - h; const fm = f();
    x[i] = x0;
    out.set(i, (fp - fm) / (2 * h));
  }
  return out;
}

const FD_TOL = { atol: 1e-7, rtol: 1e-5 };

/** fdGrad for an objective computed asynchronously (the whole model). */
async function fdGradAsync(f: () => Promise<number>, x: FloatArray, idx: Iterable<number>, h = 1e-5): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const i of idx) {
    const x0 = x[i];
    x[i] = x0 + h; const fp = await f();
    x[i] = x0 - h; const fm = await f();
    x[i] = x0;
    out.set(i, (fp - fm) / (2 * h));
  }
  return out;
}

async function checkFdAsync(label: string, f: () => Promise<number>, x: FloatArray, analytic: FloatArray, idx: number[]): Promise<void> {
  const fd = await fdGradAsync(f, x, idx);
  assertClose(idx.map((i) => analytic[i]), idx.map((i) => fd.get(i)!), FD_TOL, label);
}

/** The JS backend's tensors are its typed arrays: the whole-model tests read and perturb them directly. */
const arr = (t: Tensor): FloatArray => t as unknown as FloatArray;
const posOf = (rows: number, T: number): Int32Array => Int32Array.from({ length: rows }, (_, r) => r % T);

function checkFd(label: string, f: () => number, x: FloatArray, analytic: FloatArray, idx?: number[]): void {
  const ids = idx ?? Array.from({ length: x.length }, (_, i) => i);
  const fd = fdGrad(f, x, ids);
  const a = ids.map((i) => analytic[i]), e = ids.map((i) => fd.get(i)!);
  assertClose(a, e, FD_TOL, label);
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * b[i]; return s; };

// ------------------------------------------------------------------------------------------------
// GEMM

test('gemm nt / nn / tn equal naive matmuls (odd sizes, overwrite and accumulate)', () => {
  const g = new JsGemm();
  for (const [M, N, K] of [[1, 1, 1], [5, 7, 3], [8, 64, 16], [13, 70, 9], [4, 129, 33]]) {
    const A = randn(M * K), Bnt = randn(N * K), Bnn = randn(K * N), At = randn(K * M);
    const C0 = randn(M * N);
    const ref = (get: (i: number, j: number) => number) => {
      const c = new Float64Array(M * N);
      for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) c[i * N + j] = get(i, j);
      return c;
    };
    const nt = ref((i, j) => { let s = 0; for (let k = 0; k < K; k++) s += A[i * K + k] * Bnt[j * K + k]; return s; });
    const nn = ref((i, j) => { let s = 0; for (let k = 0; k < K; k++) s += A[i * K + k] * Bnn[k * N + j]; return s; });
    const tn = ref((i, j) => { let s = 0; for (let k = 0; k < K; k++) s += At[k * M + i] * Bnn[k * N + j]; return s; });
    for (const [name, want, run] of [
      ['nt', nt, (C: Float64Array, acc: boolean) => g.nt(C, A, Bnt, M, N, K, acc)],
      ['nn', nn, (C: Float64Array, acc: boolean) => g.nn(C, A, Bnn, M, N, K, acc)],
      ['tn', tn, (C: Float64Array, acc: boolean) => g.tn(C, At, Bnn, M, N, K, acc)],
    ] as const) {
      const C = C0.slice();
      run(C, false);
      assertClose(C, want, { atol: 1e-12, rtol: 1e-12 }, `${name} ${M}x${N}x${K}`);
      const D = C0.slice();
      run(D, true);
      assertClose(D, want.map((v, i) => v + C0[i]), { atol: 1e-12, rtol: 1e-12 }, `${name} acc ${M}x${N}x${K}`);
    }
  }
});

// ------------------------------------------------------------------------------------------------
// Per-kernel finite differences: f = Σ R ⊙ op(inputs) with a random R, so d f / d out = R.

test('rmsnorm backward matches finite differences', () => {
  const rows = 3, dim = 7, eps = 1e-6;
  const x = randn(rows * dim), w = randn(dim), R = randn(rows * dim);
  const y = new Float64Array(rows * dim), rstd = new Float64Array(rows);
  const f = () => { rmsnormForward(y, rstd, x, w, rows, dim, eps, false); return dot(y, R); };
  f();
  const dx = randn(rows * dim), dx0 = dx.slice(), dw = new Float64Array(dim);
  rmsnormBackward(dx, dw, R, x, w, rstd, rows, dim);
  checkFd('rmsnorm dx (accumulated onto a random start)', f, x, dx.map((v, i) => v - dx0[i]));
  checkFd('rmsnorm dw', f, w, dw);
});

test('QK-norm + rotate-half RoPE backward matches finite differences', () => {
  const T = 5, rows = 2 * T, Q = 4, H = 2, hd = 6, W = (Q + 2 * H) * hd, eps = 1e-6;
  const half = hd / 2, cos = new Float32Array(T * half), sin = new Float32Array(T * half);
  for (let p = 0; p < T; p++) for (let j = 0; j < half; j++) { const th = p * Math.pow(100, -2 * j / hd) + 0.3; cos[p * half + j] = Math.cos(th); sin[p * half + j] = Math.sin(th); }
  for (const withNorm of [true, false]) {
    const raw = randn(rows * W), qn = randn(hd), kn = randn(hd), R = randn(rows * W);
    const y = new Float64Array(rows * W), rstd = new Float64Array(rows * (Q + H));
    const f = () => {
      y.set(raw);
      qkNormRopeForward(y, rstd, rows, posOf(rows, T), Q, H, hd, withNorm ? qn : null, withNorm ? kn : null, cos, sin, eps, false);
      return dot(y, R);
    };
    f();
    const d = R.slice(), dqn = new Float64Array(hd), dkn = new Float64Array(hd);
    qkNormRopeBackward(d, withNorm ? dqn : null, withNorm ? dkn : null, raw, rstd, rows, posOf(rows, T), Q, H, hd,
      withNorm ? qn : null, withNorm ? kn : null, cos, sin);
    checkFd(`qkNormRope d raw (norm ${withNorm})`, f, raw, d);
    if (withNorm) { checkFd('q_norm dw', f, qn, dqn); checkFd('k_norm dw', f, kn, dkn); }
  }
});

test('causal GQA attention backward matches finite differences', () => {
  for (const [B, T, Q, H, hd] of [[2, 5, 4, 2, 3], [1, 6, 4, 1, 4], [1, 4, 2, 2, 2]]) {
    const W = (Q + 2 * H) * hd;
    const qkv = randn(B * T * W), R = randn(B * T * Q * hd);
    const out = new Float64Array(B * T * Q * hd), lse = new Float64Array(B * Q * T);
    const f = () => { attentionForward(out, lse, qkv, B, T, Q, H, hd); return dot(out, R); };
    f();
    const d = randn(B * T * W); // garbage on entry: the kernel must overwrite
    attentionBackward(d, R, qkv, lse, B, T, Q, H, hd);
    checkFd(`attention dqkv B${B} T${T} Q${Q} H${H}`, f, qkv, d);
  }
});

test('attention forward equals the inference backend (bottom-right causal, GQA)', () => {
  const be = new JsBackend();
  const T = 7, Q = 4, H = 2, hd = 8, W = (Q + 2 * H) * hd;
  const qkv = Float32Array.from(randn(T * W));
  const out = new Float32Array(T * Q * hd), lse = new Float64Array(Q * T);
  attentionForward(out, lse, qkv, 1, T, Q, H, hd);
  const kc = new Float32Array(H * T * hd), vc = new Float32Array(H * T * hd), ref = new Float32Array(T * Q * hd);
  const t = (a: Float32Array) => a as unknown as Tensor;
  be.storeKV(t(kc), t(vc), t(qkv), T, 0, Q, H, hd, T);
  be.attention(t(ref), t(qkv), t(kc), t(vc), T, 0, Q, H, hd, T);
  assert.deepEqual(Array.from(out), Array.from(ref));
});

test('SwiGLU and SiLU backward match finite differences', () => {
  const rows = 3, F = 5;
  const u = randn(rows * 2 * F, 2), R = randn(rows * F), g = new Float64Array(rows * F);
  const f = () => { swigluForward(g, u, rows, F); return dot(g, R); };
  const du = randn(rows * 2 * F);
  swigluBackward(du, R, u, rows, F);
  checkFd('swiglu du', f, u, du);
  const v = randn(rows * F, 2), dv = new Float64Array(rows * F);
  const f2 = () => { siluForward(g, v, rows * F); return dot(g, R); };
  siluBackward(dv, R, v, rows * F);
  checkFd('silu du', f2, v, dv);
});

test('cross-entropy + z-loss gradient matches finite differences; stable for huge logits', () => {
  const rows = 3, V = 11, z = 0.05;
  const logits = randn(rows * V, 3), t = [4, 0, 10];
  const f = () => { const s = crossEntropyRows(logits.slice(), t, rows, V, z, 0); return s.ceSum + z * s.lseSqSum; };
  const g = logits.slice();
  crossEntropyRows(g, t, rows, V, z, 1);
  checkFd('dlogits', f, logits, g);
  const big = Float64Array.from({ length: V }, (_, j) => 1000 + j);
  const r = crossEntropyLoss(big, [3], V);
  const lse = 1010 + Math.log(Array.from({ length: V }, (_, j) => Math.exp(j - 10)).reduce((a, b) => a + b));
  assert.ok(Math.abs(r.ce - (lse - 1003)) < 1e-9 && Number.isFinite(r.ce));
  const ign = crossEntropyLoss(new Float64Array(2 * V), [-100, 5], V, { zLoss: true });
  assert.equal(ign.validTokens, 1);
  assert.ok(Math.abs(ign.ce - Math.log(V)) < 1e-12);
  assert.ok(Math.abs(ign.zloss - 1e-4 * Math.log(V) ** 2) < 1e-15);
  assert.throws(() => crossEntropyLoss(new Float64Array(V), [V], V), /outside the vocabulary/);
});

// ------------------------------------------------------------------------------------------------
// Whole model

const FD_HF: OpenELMHFConfig = {
  model_type: 'openelm', num_transformer_layers: 1, model_dim: 16, head_dim: 4, num_gqa_groups: 2,
  qkv_multipliers: 1.0, ffn_multipliers: 1.5, ffn_dim_divisor: 8, vocab_size: 23,
  max_context_length: 16, rope_freq_constant: 10000, rope_max_length: 8,
};

function model(hf: Partial<OpenELMHFConfig>, dtype: 'f32' | 'f64', seed = 7, recompute = false): TrainableModel {
  const config = resolveConfig({ ...FD_HF, ...hf });
  const m = new TrainableModel(config, new JsBackend({ precision: dtype }), { recompute, headChunkRows: 3 });
  const f32 = new Float32Array(m.layout.total);
  initParams(config, m.layout, f32, seed, { normJitter: 0.2 });
  m.backend.write(m.params, f32);
  return m;
}

function batch(B: number, T: number, V: number, seed: number, padTail = 0, ignore = -100) {
  const r = new Rng(seed);
  const inputs = new Int32Array(B * T), targets = new Int32Array(B * T);
  for (let i = 0; i < B * T; i++) { inputs[i] = r.int(V); targets[i] = r.int(V); }
  for (let b = 0; b < B; b++) for (let t = T - padTail; t < T; t++) { targets[b * T + t] = ignore; inputs[b * T + t] = ignore; }
  return { inputs, targets };
}

const FD_VARIANTS: [string, Partial<OpenELMHFConfig>][] = [
  ['1 layer, GQA 2, QK-norm, SwiGLU, tied', {}],
  ['2 layers, layer-wise scaling, z-loss', { num_transformer_layers: 2, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [1.0, 2.0] }],
  ['untied head, no QK-norm, no GLU, MHA', { share_input_output_layers: false, normalize_qk_projections: false, ffn_with_glu: false, num_gqa_groups: 1 }],
];

for (const [name, hf] of FD_VARIANTS) {
  test(`whole-model gradient matches float64 finite differences: ${name}`, async () => {
    const m = model(hf, 'f64');
    const B = 2, T = 5, V = m.config.vocabSize;
    const { inputs, targets } = batch(B, T, V, 3, 1);
    targets[2] = -100; // an ignored target in the middle, too
    const opts: ForwardBackwardOptions = { zLoss: name.includes('z-loss') ? 0.01 : 0 };
    m.zeroGrad();
    const res = await m.forwardBackward(inputs, targets, B, T, opts);
    assert.equal(res.validTokens, B * (T - 1) - 1);
    const f = async () => (await m.evalLoss(inputs, targets, B, T, opts)).loss;
    assert.ok(Math.abs((await f()) - res.loss) < 1e-14);
    for (const e of m.layout.entries) {
      const idx = Array.from({ length: e.size }, (_, i) => e.offset + i);
      await checkFdAsync(e.name, f, arr(m.params), arr(m.grads), idx);
    }
    // the padded input id sends no gradient to any embedding row: unused rows stay exactly zero
    const used = new Set(Array.from(inputs).filter((t) => t >= 0));
    const dE = arr(m.gradView('transformer.token_embeddings.weight')), D = m.config.modelDim;
    if (!m.config.tiedEmbeddings) for (let v = 0; v < V; v++) if (!used.has(v)) assert.ok(dE.subarray(v * D, v * D + D).every((x) => x === 0));
  });
}

test('training forward computes the inference forward (f32 logits)', async () => {
  const hf: Partial<OpenELMHFConfig> = { num_transformer_layers: 3, model_dim: 64, head_dim: 16, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 2.0], ffn_dim_divisor: 32, vocab_size: 300, rope_max_length: 64, max_context_length: 64 };
  const m = model(hf, 'f32');
  const T = 11, V = m.config.vocabSize;
  const { inputs } = batch(2, T, V, 5);
  const lg = await m.logits(inputs, 2, T);
  const inf = new OpenELM(m.config, m.backend, m.inferenceWeights());
  for (let b = 0; b < 2; b++) {
    const ref = await inf.logitsAll(inputs.subarray(b * T, (b + 1) * T));
    const r = allclose(lg.subarray(b * T * V, (b + 1) * T * V), ref, TOL.refLogits, `seq ${b}`);
    assert.ok(r.ok, r.message);
    assert.ok(r.maxAbs < 1e-5, r.message);
  }
  // and evalLoss agrees with the standalone loss on those logits
  const { targets } = batch(2, T, V, 6, 2);
  const ref = crossEntropyLoss(lg, targets, V, { zLoss: true });
  const got = await m.evalLoss(inputs, targets, 2, T, { zLoss: true });
  assert.ok(Math.abs(got.loss - ref.loss) < 1e-6 && Math.abs(got.ce - ref.ce) < 1e-6 && got.validTokens === ref.validTokens);
});

test('recomputation gives the same loss and gradients', async () => {
  const hf = { num_transformer_layers: 2, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [1.0, 2.0] };
  const a = model(hf, 'f32'), b = model(hf, 'f32', 7, true);
  const { inputs, targets } = batch(3, 6, a.config.vocabSize, 9, 2);
  const ra = await a.forwardBackward(inputs, targets, 3, 6, { zLoss: true });
  const rb = await b.forwardBackward(inputs, targets, 3, 6, { zLoss: true });
  assert.equal(ra.loss, rb.loss);
  assert.deepEqual(Array.from(arr(a.grads)), Array.from(arr(b.grads)));
});

test('activation buffers are reused across batch shapes and can be released', async () => {
  const hf = { num_transformer_layers: 2, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [1.0, 2.0] };
  const fresh = model(hf, 'f32'), reused = model(hf, 'f32');
  const V = fresh.config.vocabSize;
  const small = batch(1, 4, V, 21, 1), big = batch(3, 7, V, 22, 2);
  await reused.forwardBackward(big.inputs, big.targets, 3, 7); // grow to 21 rows, then run 4
  reused.zeroGrad();
  const a = await reused.forwardBackward(small.inputs, small.targets, 1, 4, { zLoss: true });
  const b = await fresh.forwardBackward(small.inputs, small.targets, 1, 4, { zLoss: true });
  assert.equal(a.loss, b.loss);
  assert.deepEqual(Array.from(arr(reused.grads)), Array.from(arr(fresh.grads)));
  reused.releaseActivations();
  reused.zeroGrad();
  assert.equal((await reused.forwardBackward(small.inputs, small.targets, 1, 4, { zLoss: true })).loss, b.loss);
  assert.deepEqual(Array.from(arr(reused.grads)), Array.from(arr(fresh.grads)));
});

test('gradient accumulation: two micro-batches equal one batch of both', async () => {
  const hf = { num_transformer_layers: 2, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [1.0, 2.0] };
  const whole = model(hf, 'f64'), acc = model(hf, 'f64');
  const T = 6, V = whole.config.vocabSize;
  // Equal valid counts: mean of micro-batch means (gradScale 1/k, CoreNet + DDP) equals the big batch.
  {
    const { inputs, targets } = batch(4, T, V, 11, 1);
    whole.zeroGrad(); acc.zeroGrad();
    const rw = await whole.forwardBackward(inputs, targets, 4, T, { zLoss: true });
    const r1 = await acc.forwardBackward(inputs.subarray(0, 2 * T), targets.subarray(0, 2 * T), 2, T, { zLoss: true, gradScale: 0.5 });
    const r2 = await acc.forwardBackward(inputs.subarray(2 * T), targets.subarray(2 * T), 2, T, { zLoss: true, gradScale: 0.5 });
    assertClose([(r1.loss + r2.loss) / 2], [rw.loss], { atol: 1e-13, rtol: 0 }, 'loss');
    assertClose(arr(acc.grads), arr(whole.grads), { atol: 1e-13, rtol: 1e-10 }, 'grads (mean of means)');
  }
  // Unequal padding: token-weighted scales (n_i / Σn) reproduce the big batch exactly, the plain
  // mean of means does not (it over-weights the shorter micro-batch).
  {
    const a = batch(2, T, V, 12, 0), b = batch(2, T, V, 13, 3);
    const inputs = new Int32Array([...a.inputs, ...b.inputs]), targets = new Int32Array([...a.targets, ...b.targets]);
    whole.zeroGrad(); acc.zeroGrad();
    await whole.forwardBackward(inputs, targets, 4, T);
    const [sa, sb] = gradAccumScales([countValid(a.targets, -100), countValid(b.targets, -100)], 'token');
    assert.ok(Math.abs(sa - 2 * T / (4 * T - 6)) < 1e-15);
    await acc.forwardBackward(a.inputs, a.targets, 2, T, { gradScale: sa });
    await acc.forwardBackward(b.inputs, b.targets, 2, T, { gradScale: sb });
    assertClose(arr(acc.grads), arr(whole.grads), { atol: 1e-13, rtol: 1e-10 }, 'grads (token-weighted)');
    acc.zeroGrad();
    const [ma, mb] = gradAccumScales([2 * T, 2 * (T - 3)]);
    assert.deepEqual([ma, mb], [0.5, 0.5]);
    await acc.forwardBackward(a.inputs, a.targets, 2, T, { gradScale: ma });
    await acc.forwardBackward(b.inputs, b.targets, 2, T, { gradScale: mb });
    assert.ok(!allclose(arr(acc.grads), arr(whole.grads), { atol: 1e-9, rtol: 1e-6 }).ok);
  }
});

test('bad inputs are rejected with clear errors; an all-ignored batch leaves grads untouched', async () => {
  const m = model({}, 'f32');
  const V = m.config.vocabSize;
  await assert.rejects(m.forwardBackward(new Int32Array(9), new Int32Array(10), 2, 5), /inputs has 9 ids/);
  await assert.rejects(m.forwardBackward(new Int32Array(10).fill(V), new Int32Array(10), 2, 5), /outside the vocabulary/);
  await assert.rejects(m.forwardBackward(new Int32Array(10), new Int32Array(10).fill(V), 2, 5), /target id/);
  m.zeroGrad();
  const r = await m.forwardBackward(new Int32Array(10), new Int32Array(10).fill(-100), 2, 5);
  assert.equal(r.validTokens, 0);
  assert.equal(r.loss, 0);
  assert.ok(arr(m.grads).every((g) => g === 0));
});

// ------------------------------------------------------------------------------------------------
// Goldens (written by tools/openelm_ref.py into test/golden/<name>/); skipped until they exist.

interface Golden {
  name: string; model: TrainableModel; golden: SafetensorsFile; meta: Record<string, string>;
  inputs: Int32Array; targets: Int32Array; B: number; T: number; ignoreIndex: number; zLoss: number;
}

function loadGolden(name: string, dtype: 'f32' | 'f64' = 'f32'): Golden {
  const model = new TrainableModel(goldenConfig(name), new JsBackend({ precision: dtype }));
  loadGoldenParams(name, model);
  const golden = new GoldenFile(name).file;
  const meta = golden.metadata as Record<string, string>;
  // Hyper-parameters recorded by tools/make_goldens.py in the golden's __metadata__.optimizer.
  const opt = JSON.parse(meta.optimizer ?? '{}') as { z_loss_coef?: number; ignore_index?: number };
  const inputs = readInts(golden, 'train.input_ids'), targets = readInts(golden, 'train.targets');
  const [B, T] = golden.info('train.input_ids').shape;
  return { name, model, golden, meta, inputs, targets, B, T, ignoreIndex: opt.ignore_index ?? -100, zLoss: opt.z_loss_coef ?? 1e-4 };
}

for (const name of goldenNames()) {
  test(`golden ${name}: train.loss, train.ce and every grad.<key> within TOL.loss / TOL.grads`, async () => {
    const g = loadGolden(name);
    const res = await g.model.forwardBackward(g.inputs, g.targets, g.B, g.T, { ignoreIndex: g.ignoreIndex, zLoss: g.zLoss });
    const report: string[] = [];
    const lossR = allclose([res.loss], g.golden.readF32('train.loss'), TOL.loss, 'train.loss');
    const ceR = allclose([res.ce], g.golden.readF32('train.ce'), TOL.loss, 'train.ce');
    report.push(lossR.message, ceR.message);
    let worst = 0, worstName = '', fails: string[] = [];
    for (const e of g.model.layout.entries) {
      const r = allclose(await g.model.readGrad(e.name), g.golden.readF32(`grad.${e.name}`), TOL.grads, `grad.${e.name}`);
      if (r.maxAbs > worst) { worst = r.maxAbs; worstName = e.name; }
      if (!r.ok) fails.push(r.message);
    }
    report.push(`worst grad max abs ${worst.toExponential(3)} (${worstName})`);
    console.log(`[golden ${name}] ${report.join(' | ')}`);
    assert.ok(lossR.ok, lossR.message);
    assert.ok(ceR.ok, ceR.message);
    assert.deepEqual(fails, []);
    g.golden.close();
  });
}
