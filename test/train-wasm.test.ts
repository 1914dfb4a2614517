// The WASM training path (WasmBackend's training ops, src/backends/wasm/train-ops.ts): every kernel
// against the JS kernels, the whole model against the JS model, the goldens (loss, gradients,
// 10-step AdamW curve) on the WASM path, AdamW bit-identical to the JS AdamW, and results that do
// not depend on the thread count. Everything goes through the Backend interface.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/core/rng.js';
import { OpenELMError } from '../src/core/errors.js';
import { resolveConfig, type OpenELMHFConfig } from '../src/model/config.js';
import { initParams } from '../src/model/init.js';
import type { SafetensorsFile } from '../src/io/safetensors.js';
import type { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import type { Backend, RopeTables } from '../src/backends/backend.js';
import { wasmAvailable } from '../src/backends/wasm/kernels.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import {
  JsGemm, attentionBackward, attentionForward, crossEntropyRows, embedding, embeddingBackward, qkNormRopeBackward, qkNormRopeForward,
  rmsnormBackward, rmsnormForward, siluBackward, siluForward, swigluBackward, swigluForward,
} from '../src/backends/js/reference.js';
import { AdamW } from '../src/train/adamw.js';
import { clipGradNorm } from '../src/train/clip.js';
import { cosineSchedule } from '../src/train/schedule.js';
import { TrainableModel } from '../src/model/trainable.js';
import { TOL, allclose, assertClose, type Tol } from './tolerances.js';
import { Golden, goldenConfig, goldenNames, loadGoldenParams, readInts } from './helpers/golden.js';
import { createWasm, f32 } from './helpers/backends.js';

const skip = !wasmAvailable();
const backends: WasmBackend[] = [];
async function kernels(threads = 2, forceParallel = true): Promise<WasmBackend> {
  const be = await createWasm({ threads });
  // split even the smallest kernels over the threads, so the tests exercise the chunking
  if (forceParallel) be.parallelThreshold = 0;
  backends.push(be);
  return be;
}
after(() => { for (const b of backends) b.dispose(); });

const rng = new Rng(4321);
const randn = (n: number, s = 1): Float32Array => Float32Array.from({ length: n }, () => s * rng.normal());
/** A copy in the wasm memory. */
function inW(k: Backend, a: ArrayLike<number>): Float32Array { const b = f32(k.alloc(a.length)); b.set(a); return b; }
const A = (k: Backend, n: number): Float32Array => f32(k.alloc(n));
const posOf = (rows: number, T: number): Int32Array => Int32Array.from({ length: rows }, (_, r) => r % T);
const f64 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a);
/** WASM f32 kernels against the JS kernels run in f64 on the same inputs. */
const KTOL: Tol = { atol: 2e-5, rtol: 2e-4 };

test('training GEMM nt / nn / tn equals the JS GEMM at tile edges, overwriting and accumulating, in and out of wasm memory', { skip }, async () => {
  const k = await kernels();
  const js = new JsGemm();
  for (const [M, N, K] of [[1, 1, 1], [5, 7, 3], [6, 8, 4], [13, 70, 9], [241, 257, 300], [7, 513, 600], [481, 9, 257]]) {
    for (const op of ['nt', 'nn', 'tn'] as const) {
      for (const acc of [false, true]) {
        const A = randn(M * K), B = randn(N * K), C0 = randn(M * N);
        const want = f64(C0);
        js[op](want, f64(A), f64(B), M, N, K, acc);
        const cw = inW(k, C0);
        k.matmul(cw, inW(k, A), inW(k, B), M, N, K, op, acc);
        assertClose(cw, want, { atol: 1e-5 * Math.sqrt(K), rtol: 1e-4 }, `${op} ${M}x${N}x${K} acc ${acc}`);
        const cp = C0.slice();
        k.matmul(cp, A, B, M, N, K, op, acc);   // plain arrays: staged through wasm memory
        assert.deepEqual(Array.from(cp), Array.from(cw), `${op} ${M}x${N}x${K}: staged operands give the same bits`);
      }
    }
  }
});

test('WASM RMSNorm forward/backward equal the JS kernels', { skip }, async () => {
  const k = await kernels();
  const rows = 37, dim = 70, eps = 1e-6;
  const x = randn(rows * dim), w = randn(dim), dy = randn(rows * dim), dx0 = randn(rows * dim), dw0 = randn(dim);
  const out = new Float64Array(rows * dim), rstd = new Float64Array(rows);
  rmsnormForward(out, rstd, f64(x), f64(w), rows, dim, eps, false);
  const dx = f64(dx0), dw = f64(dw0);
  rmsnormBackward(dx, dw, f64(dy), f64(x), f64(w), rstd, rows, dim);
  const wo = A(k, rows * dim), wr = A(k, rows), xw = inW(k, x), ww = inW(k, w);
  k.rmsnorm(wo, xw, ww, rows, dim, eps, wr);
  assertClose(wo, out, KTOL, 'rmsnorm out');
  assertClose(wr, rstd, KTOL, 'rmsnorm rstd');
  const wdx = inW(k, dx0), wdw = inW(k, dw0);
  k.rmsnormBackward(wdx, wdw, inW(k, dy), xw, ww, wr, rows, dim);
  assertClose(wdx, dx, KTOL, 'rmsnorm dx (accumulated)');
  assertClose(wdw, dw, KTOL, 'rmsnorm dw (accumulated)');
});

test('WASM QK-norm + RoPE forward/backward equal the JS kernels, with and without norms', { skip }, async () => {
  const k = await kernels();
  const T = 9, rows = 2 * T + 3, Q = 4, H = 2, hd = 12, W = (Q + 2 * H) * hd, half = hd / 2, eps = 1e-6;
  const cos = new Float32Array(64 * half), sin = new Float32Array(64 * half);
  for (let p = 0; p < 64; p++) for (let j = 0; j < half; j++) { const th = p * Math.pow(100, -2 * j / hd); cos[p * half + j] = Math.cos(th); sin[p * half + j] = Math.sin(th); }
  for (const norms of [true, false]) {
    const raw = randn(rows * W), qn = randn(hd), kn = randn(hd), dy = randn(rows * W), dqn0 = randn(hd), dkn0 = randn(hd);
    const y = f64(raw), rstd = new Float64Array(rows * (Q + H));
    qkNormRopeForward(y, rstd, rows, posOf(rows, T), Q, H, hd, norms ? f64(qn) : null, norms ? f64(kn) : null, cos, sin, eps, false);
    const d = f64(dy), dqn = f64(dqn0), dkn = f64(dkn0);
    qkNormRopeBackward(d, norms ? dqn : null, norms ? dkn : null, f64(raw), rstd, rows, posOf(rows, T), Q, H, hd, norms ? f64(qn) : null, norms ? f64(kn) : null, cos, sin);
    const wy = inW(k, raw), wr = A(k, rows * (Q + H)), wqn = inW(k, qn), wkn = inW(k, kn);
    const rope: RopeTables = { cos: inW(k, cos), sin: inW(k, sin), positions: 64, half };
    k.qkNormRope(wy, rows, posOf(rows, T), Q, H, hd, norms ? wqn : null, norms ? wkn : null, rope, eps, wr);
    assertClose(wy, y, KTOL, `qkrope out (norms ${norms})`);
    const wd = inW(k, dy), wdq = inW(k, dqn0), wdk = inW(k, dkn0);
    k.qkNormRopeBackward(wd, norms ? wdq : null, norms ? wdk : null, inW(k, raw), wr, rows, posOf(rows, T), Q, H, hd, norms ? wqn : null, norms ? wkn : null, rope);
    assertClose(wd, d, KTOL, `qkrope d raw (norms ${norms})`);
    assertClose(wdq, dqn, KTOL, 'dq_norm'); assertClose(wdk, dkn, KTOL, 'dk_norm');
  }
});

test('WASM attention forward/backward equal the JS kernels (causal, GQA, blocks and tails)', { skip }, async () => {
  const k = await kernels();
  for (const [B, T, Q, H, hd] of [[2, 5, 4, 2, 8], [1, 50, 4, 1, 16], [2, 97, 6, 3, 64], [1, 130, 2, 2, 12], [3, 48, 8, 2, 32]]) {
    const W = (Q + 2 * H) * hd, M = B * T;
    const qkv = randn(M * W), dout = randn(M * Q * hd);
    const out = new Float64Array(M * Q * hd), lse = new Float64Array(M * Q);
    attentionForward(out, lse, f64(qkv), B, T, Q, H, hd);
    const dqkv = new Float64Array(M * W);
    attentionBackward(dqkv, f64(dout), f64(qkv), lse, B, T, Q, H, hd);
    const wq = inW(k, qkv), wo = A(k, M * Q * hd), wl = A(k, M * Q);
    k.causalAttention(wo, wl, wq, B, T, Q, H, hd);
    const label = `B${B} T${T} Q${Q} H${H} hd${hd}`;
    assertClose(wo, out, KTOL, `attention out ${label}`);
    assertClose(wl, lse, KTOL, `attention lse ${label}`);
    const wd = inW(k, randn(M * W)); // garbage on entry: all three parts are overwritten
    k.causalAttentionBackward(wd, inW(k, dout), wq, wo, wl, B, T, Q, H, hd);
    assertClose(wd, dqkv, { atol: 1e-4, rtol: 1e-3 }, `attention dqkv ${label}`);
  }
});

test('WASM SwiGLU / SiLU forward/backward and embedding forward/backward equal the JS kernels', { skip }, async () => {
  const k = await kernels();
  const rows = 11, F = 29;
  const u = randn(rows * 2 * F, 3), dg = randn(rows * F);
  const g = new Float64Array(rows * F), du = new Float64Array(rows * 2 * F);
  swigluForward(g, f64(u), rows, F); swigluBackward(du, f64(dg), f64(u), rows, F);
  const wg = A(k, rows * F), wdu = A(k, rows * 2 * F), wu = inW(k, u);
  k.swiglu(wg, wu, rows, F); k.swigluBackward(wdu, inW(k, dg), wu, rows, F);
  assertClose(wg, g, KTOL, 'swiglu'); assertClose(wdu, du, KTOL, 'swiglu du');
  const n = rows * F, v = randn(n, 3);
  const s = new Float64Array(n), ds = new Float64Array(n);
  siluForward(s, f64(v), n); siluBackward(ds, f64(dg), f64(v), n);
  const ws = A(k, n), wds = A(k, n), wv = inW(k, v);
  k.silu(ws, wv, n); k.siluBackward(wds, inW(k, dg), wv, n);
  assertClose(ws, s, KTOL, 'silu'); assertClose(wds, ds, KTOL, 'silu du');

  const V = 13, D = 36, ids = Int32Array.from([3, 0, 12, 3, -100, 7, 3, 12, -100, 1]);
  const table = randn(V * D), dout = randn(ids.length * D), dt0 = randn(V * D);
  const e = new Float32Array(ids.length * D), dt = dt0.slice();
  embedding(e, { dtype: 'f32', rows: V, cols: D, data: table }, ids, -100); embeddingBackward(dt, dout, ids, D, -100);
  const we = A(k, ids.length * D), wdt = inW(k, dt0);
  k.embedding(we, k.tensorWeight(inW(k, table), V, D), ids, -100);
  k.embeddingBackward(wdt, inW(k, dout), ids, D, -100);
  assert.deepEqual(Array.from(we), Array.from(e), 'embedding rows are copied exactly');
  assertClose(wdt, dt, { atol: 1e-6, rtol: 1e-6 }, 'embedding gradient');
  assert.throws(() => k.embedding(we, k.tensorWeight(inW(k, table), V, D), Int32Array.from([V]), -100), /outside the embedding table/);
});

test('WASM cross-entropy + z-loss equals loss.ts (sums and logit gradients)', { skip }, async () => {
  const k = await kernels();
  const rows = 7, V = 1001, z = 1e-4, gs = 0.37;
  const logits = randn(rows * V, 4), t = Int32Array.from([0, 1000, 5, 77, 5, 999, 500]);
  logits[3 * V + 11] = 60; // one large logit
  const ref = f64(logits);
  const r = crossEntropyRows(ref, t, rows, V, z, gs);
  const wl = inW(k, logits);
  const w = await k.crossEntropy(wl, t, rows, V, z, gs);
  assertClose([w.ceSum, w.lseSqSum], [r.ceSum, r.lseSqSum], { atol: 1e-5, rtol: 1e-6 }, 'sums');
  assertClose(wl, ref, { atol: 1e-7, rtol: 1e-4 }, 'dlogits');
  const noGrad = inW(k, logits);
  const w0 = await k.crossEntropy(noGrad, t, rows, V, z, 0);
  assert.equal(w0.ceSum, w.ceSum);
  assert.deepEqual(Array.from(noGrad), Array.from(logits), 'gradScale 0 leaves the logits alone');
  assert.throws(() => k.crossEntropy(inW(k, logits), Int32Array.from([V]), 1, V, 0, 1), /outside the vocabulary/);
});

test('WASM AdamW gives the same bits as the JS AdamW; clipping matches clip.ts', { skip }, async () => {
  const k = await kernels();
  const hf: OpenELMHFConfig = { model_type: 'openelm', num_transformer_layers: 2, model_dim: 32, head_dim: 8, num_gqa_groups: 2, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 2.0], ffn_dim_divisor: 16, vocab_size: 101 };
  const config = resolveConfig(hf);
  const model = new TrainableModel(config, k);
  const pJs = new Float32Array(model.layout.total);
  initParams(config, model.layout, pJs, 9, { normJitter: 0.1 });
  const js = new JsBackend();
  const a = new AdamW(js, model.layout, { weightDecay: 0.1 });
  for (const inWasm of [true, false]) {
    const b = new AdamW(k, model.layout, { weightDecay: 0.1, placement: inWasm ? 'backend' : 'host' });
    assert.equal(b.onBackend, inWasm);
    const pw = inW(k, pJs), pj = pJs.slice();
    const aa = new AdamW(js, model.layout, { weightDecay: 0.1 });
    for (let s = 0; s < 4; s++) {
      const g = randn(model.layout.total, 0.01);
      const gj = g.slice(), gw = inW(k, g);
      const nj = await clipGradNorm(js, gj, 0.05), nw = await clipGradNorm(k, gw, 0.05);
      assert.ok(Math.abs(nj - nw) < 1e-12 * nj, `norm ${nj} vs ${nw}`);
      // same gradients into both optimizers (the norms differ in the last bits, so clip once)
      gw.set(gj);
      await aa.update(pj, gj, 1e-2 * (s + 1));
      await b.update(pw, gw, 1e-2 * (s + 1));
    }
    assert.deepEqual(Array.from(pw), Array.from(pj), `params (moments in wasm: ${inWasm})`);
    const sb = await b.state(), sa = await aa.state();
    assert.deepEqual(Array.from(sb.m), Array.from(sa.m));
    assert.deepEqual(Array.from(sb.v), Array.from(sa.v));
    b.dispose();
  }
  assert.equal(a.step, 0);
});

// ------------------------------------------------------------------------------------------------
// Whole model

const HF: OpenELMHFConfig = {
  model_type: 'openelm', num_transformer_layers: 2, model_dim: 64, head_dim: 16, num_gqa_groups: 2,
  qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 2.0], ffn_dim_divisor: 32, vocab_size: 300,
  rope_max_length: 64, max_context_length: 128,
};
const VARIANTS: [string, Partial<OpenELMHFConfig>][] = [
  ['GQA, QK-norm, SwiGLU, tied', {}],
  ['untied head, no QK-norm, no GLU, MHA', { share_input_output_layers: false, normalize_qk_projections: false, ffn_with_glu: false, num_gqa_groups: 1 }],
];

function batch(B: number, T: number, V: number, seed: number, padTail = 0) {
  const r = new Rng(seed);
  const inputs = new Int32Array(B * T), targets = new Int32Array(B * T);
  for (let i = 0; i < B * T; i++) { inputs[i] = r.int(V); targets[i] = r.int(V); }
  for (let b = 0; b < B; b++) for (let t = T - padTail; t < T; t++) { targets[b * T + t] = -100; inputs[b * T + t] = -100; }
  return { inputs, targets };
}

for (const [name, hf] of VARIANTS) {
  for (const recompute of [false, true]) {
    test(`WASM model equals the JS model: ${name}${recompute ? ', recompute' : ''}`, { skip }, async () => {
      const k = await kernels();
      const config = resolveConfig({ ...HF, ...hf });
      const js = new TrainableModel(config, new JsBackend(), { headChunkRows: 40 });
      const wm = new TrainableModel(config, k, { recompute, headChunkRows: 40 });
      assert.equal(wm.backend.name, 'wasm');
      assert.ok(k.owns(f32(wm.params)) && k.owns(f32(wm.grads)), 'params and grads live in the wasm memory');
      const p0 = new Float32Array(js.layout.total);
      initParams(config, js.layout, p0, 3, { normJitter: 0.2 });
      js.backend.write(js.params, p0);
      wm.backend.write(wm.params, p0);
      const B = 3, T = 53;
      const { inputs, targets } = batch(B, T, config.vocabSize, 8, 4);
      targets[10] = -100; // an ignored target mid-sequence: the head takes the gather path
      for (const gradScale of [1, 0.5]) {
        const rj = await js.forwardBackward(inputs, targets, B, T, { zLoss: true, gradScale });
        const rw = await wm.forwardBackward(inputs, targets, B, T, { zLoss: true, gradScale });
        assert.equal(rw.validTokens, rj.validTokens);
        assertClose([rw.loss, rw.ce, rw.zloss], [rj.loss, rj.ce, rj.zloss], TOL.loss, 'loss');
      }
      for (const e of js.layout.entries) assertClose(await wm.readGrad(e.name), await js.readGrad(e.name), TOL.grads, `grad ${e.name} (accumulated twice)`);
      const ej = await js.evalLoss(inputs, targets, B, T), ew = await wm.evalLoss(inputs, targets, B, T);
      assertClose([ew.loss], [ej.loss], TOL.loss, 'eval loss');
      const lj = await js.logits(inputs, B, T), lw = await wm.logits(inputs, B, T);
      assertClose(lw, lj, TOL.fastVsRef, 'logits');
    });
  }
}

test('activation memory goes back to the wasm memory when released', { skip }, async () => {
  const k = await kernels();
  const config = resolveConfig(HF);
  const m = new TrainableModel(config, k);
  initParams(config, m.layout, (e, v) => m.setParam(e.name, v), 1);
  const small = batch(2, 40, config.vocabSize, 3), big = batch(3, 60, config.vocabSize, 4);
  // the kernels' own scratch grows to the largest shape once; measure after that
  await m.forwardBackward(big.inputs, big.targets, 3, 60);
  m.releaseActivations();
  const base = k.memory().inUse;
  m.zeroGrad();
  const r1 = await m.forwardBackward(small.inputs, small.targets, 2, 40);
  assert.ok(k.memory().inUse > base);
  await m.forwardBackward(big.inputs, big.targets, 3, 60); // grows: the smaller buffers are given back
  m.releaseActivations();
  assert.equal(k.memory().inUse, base);
  m.zeroGrad();
  assert.equal((await m.forwardBackward(small.inputs, small.targets, 2, 40)).loss, r1.loss);
});

test('activations beyond the memory the backend may take fail with a training hint, and the model still works after', { skip }, async () => {
  // the backend may hold 3 GiB (as the machine's free memory bounds it in use): the activations of 64 × 1024 rows do not fit
  const k = await createWasm({ threads: 2, memoryLimit: 3 * 2 ** 30 });
  backends.push(k);
  const config = resolveConfig({ ...HF, num_transformer_layers: 2, model_dim: 1024, head_dim: 64, max_context_length: 4096 });
  const m = new TrainableModel(config, k);
  const B = 64, T = 1024;
  await assert.rejects(m.forwardBackward(new Int32Array(B * T), new Int32Array(B * T), B, T),
    (e: unknown) => e instanceof OpenELMError && e.code === 'memory' && /recompute/.test(e.message) && /batch_size/.test(e.message));
  const { inputs, targets } = batch(1, 8, config.vocabSize, 1);
  assert.ok(Number.isFinite((await m.forwardBackward(inputs, targets, 1, 8)).loss));
});

/** Three AdamW steps on the WASM path; returns the losses and the final parameters. */
async function threeSteps(threads: number, forceParallel: boolean): Promise<{ losses: number[]; params: Float32Array; norms: number[] }> {
  const k = await kernels(threads, forceParallel);
  const config = resolveConfig({ ...HF, num_transformer_layers: 3, model_dim: 96, vocab_size: 700 });
  const m = new TrainableModel(config, k, { headChunkRows: 64 });
  initParams(config, m.layout, (e, v) => m.setParam(e.name, v), 5);
  const opt = new AdamW(k, m.layout);
  const losses: number[] = [], norms: number[] = [];
  for (let s = 0; s < 3; s++) {
    const { inputs, targets } = batch(4, 100, config.vocabSize, 30 + s, s);
    m.zeroGrad();
    losses.push((await m.forwardBackward(inputs, targets, 4, 100, { zLoss: true, gradScale: 0.5 })).loss);
    norms.push(await clipGradNorm(k, m.grads, 1.0));
    await opt.update(m.params, m.grads, 1e-3);
  }
  return { losses, norms, params: await k.read(m.params) };
}

test('results do not depend on the thread count: 1, 2 and 3 threads give bit-identical losses and parameters after 3 steps', { skip }, async () => {
  const one = await threeSteps(1, false);
  for (const [threads, force] of [[2, false], [2, true], [3, true]] as const) {
    const r = await threeSteps(threads, force);
    const what = `${threads} threads${force ? ' (every kernel split)' : ''}`;
    assert.deepEqual(r.losses, one.losses, `losses, ${what}`);
    assert.deepEqual(r.norms, one.norms, `gradient norms, ${what}`);
    assert.ok(r.params.every((v, i) => Object.is(v, one.params[i])), `parameters, ${what}`);
  }
});

// ------------------------------------------------------------------------------------------------
// Goldens (test/golden/<name>, written by tools/make_goldens.py) on the WASM path.

const goldens = goldenNames();

async function goldenModel(name: string): Promise<{ model: TrainableModel; k: WasmBackend; g: SafetensorsFile }> {
  const k = await kernels(2, false);
  const model = new TrainableModel(goldenConfig(name), k);
  loadGoldenParams(name, model);
  return { model, k, g: new Golden(name).file };
}

for (const name of goldens) {
  test(`golden ${name} on the WASM path: loss, ce and every gradient within TOL.loss / TOL.grads`, { skip }, async () => {
    const { model, g } = await goldenModel(name);
    const opt = JSON.parse(g.metadata.optimizer ?? '{}') as { z_loss_coef?: number; ignore_index?: number };
    const inputs = readInts(g, 'train.input_ids'), targets = readInts(g, 'train.targets');
    const [B, T] = g.info('train.input_ids').shape;
    const res = await model.forwardBackward(inputs, targets, B, T, { ignoreIndex: opt.ignore_index ?? -100, zLoss: opt.z_loss_coef ?? 1e-4 });
    const checks = [allclose([res.loss], g.readF32('train.loss'), TOL.loss, 'train.loss'), allclose([res.ce], g.readF32('train.ce'), TOL.loss, 'train.ce')];
    let worst = 0;
    for (const e of model.layout.entries) {
      const r = allclose(await model.readGrad(e.name), g.readF32(`grad.${e.name}`), TOL.grads, `grad.${e.name}`);
      worst = Math.max(worst, r.maxAbs);
      checks.push(r);
    }
    g.close();
    console.log(`[wasm golden ${name}] ${checks[0].message.split(';')[0]} | worst grad max abs ${worst.toExponential(3)}`);
    assert.deepEqual(checks.filter((c) => !c.ok).map((c) => c.message), []);
  });

  test(`golden ${name} on the WASM path: 10-step AdamW curve within TOL.curve`, { skip }, async () => {
    const { model, k, g } = await goldenModel(name);
    const o = JSON.parse(g.metadata.optimizer) as {
      betas: [number, number]; eps: number; weight_decay: number; grad_clip_max_norm: number; max_lr: number; min_lr: number;
      warmup_init_lr: number; warmup_steps: number; max_steps: number; z_loss_coef: number; ignore_index: number;
    };
    const [steps, B, T] = g.info('curve.input_ids').shape;
    const inputs = readInts(g, 'curve.input_ids'), targets = readInts(g, 'curve.targets');
    const sched = cosineSchedule({ maxLr: o.max_lr, minLr: o.min_lr, warmupSteps: o.warmup_steps, maxSteps: o.max_steps, warmupInitLr: o.warmup_init_lr });
    const adam = new AdamW(k, model.layout, { beta1: o.betas[0], beta2: o.betas[1], eps: o.eps, weightDecay: o.weight_decay });
    const losses: number[] = [], norms: number[] = [];
    for (let t = 0; t < steps; t++) {
      model.zeroGrad();
      const r = await model.forwardBackward(inputs.subarray(t * B * T, (t + 1) * B * T), targets.subarray(t * B * T, (t + 1) * B * T), B, T,
        { ignoreIndex: o.ignore_index, zLoss: o.z_loss_coef });
      norms.push(await clipGradNorm(k, model.grads, o.grad_clip_max_norm));
      await adam.update(model.params, model.grads, sched.lr(t));
      losses.push(r.loss);
    }
    const checks = [allclose(losses, g.readF32('curve.loss'), TOL.curve, 'curve.loss'), allclose(norms, g.readF32('curve.grad_norm'), TOL.curve, 'curve.grad_norm')];
    for (const e of model.layout.entries) checks.push(allclose(await model.readParam(e.name), g.readF32(`curve.final.${e.name}`), TOL.curve, `curve.final.${e.name}`));
    g.close();
    console.log(`[wasm golden ${name}] ${checks.slice(0, 2).map((c) => c.message.split(';')[0]).join(' | ')}`);
    assert.deepEqual(checks.filter((c) => !c.ok).map((c) => c.message), []);
  });
}


