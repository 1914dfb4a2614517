// The WebGPU kernels against the JS reference (src/backends/js/reference.ts) on tiny
// shapes, every weight format, with and without subgroup operations; then the runtime's ordering,
// counters and errors. Runs on whatever adapter Dawn finds (in CI: SwiftShader, a CPU Vulkan
// driver, so shapes stay small). Skipped without an adapter unless OPENELM_REQUIRE_WEBGPU=1 (set by
// .ci/run when it installed one), which turns a missing adapter into a failure.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import '../src/platform/node.js';
import type { ConvertDType, Tensor, Weight, WeightDType } from '../src/backends/backend.js';
import { WEIGHT_DTYPES } from '../src/backends/backend.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import { setWeightRows } from '../src/backends/weight-format.js';
import { acquireGpu } from '../src/backends/webgpu/device.js';
import { GpuRuntime, type GpuTensor, type GpuWeight } from '../src/backends/webgpu/runtime.js';
import { WebGpuOps } from '../src/backends/webgpu/ops.js';
import { gpuWeightParts } from '../src/backends/webgpu/weights-wgsl.js';
import { OpenELMError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import * as ref from '../src/backends/js/reference.js';
import { JsGemm, rmsnormForward, qkNormRopeForward } from '../src/backends/js/reference.js';
import { WebGPUBackend } from '../src/backends/webgpu/webgpu-backend.js';
import { TOL, assertClose } from './tolerances.js';

const required = process.env.OPENELM_REQUIRE_WEBGPU === '1';
let rt: GpuRuntime | null = null;
let why = '';
try { rt = await GpuRuntime.create(); } catch (e) { why = e instanceof Error ? e.message : String(e); }
const skip = rt === null && !required ? 'no WebGPU adapter' : false;
after(() => { variants.forEach((o) => { o.dispose(); }); rt?.dispose(); });

test('a WebGPU adapter is present when CI requires it', { skip: !required }, () => {
  assert.ok(rt, `no WebGPU adapter: ${why}`);
});

function R(): GpuRuntime {
  if (!rt) throw new Error(`no WebGPU adapter: ${why}`);
  return rt;
}

// Both reduction flavours where the device has subgroups; the workgroup-memory one everywhere.
const variants: WebGpuOps[] = rt ? [new WebGpuOps(rt, { subgroups: false }), ...(rt.features.subgroups ? [new WebGpuOps(rt, { subgroups: true })] : [])] : [];
const label = (o: WebGpuOps) => (o.sg ? 'subgroups' : 'workgroup');

const js = new JsBackend();
const rng = new Rng(15);
const randn = (n: number, s = 1): Float32Array => Float32Array.from({ length: n }, () => s * rng.normal());
const up = (a: Float32Array): GpuTensor => { const t = R().alloc(a.length); R().write(t, a); return t; };
const down = (t: GpuTensor): Promise<Float32Array> => R().read(t);

function hostWeight(dtype: WeightDType, rows: number, cols: number, src: Float32Array): Weight {
  const w = js.allocWeight(dtype, rows, cols);
  setWeightRows(w, 0, src);
  return w;
}
function gpuWeight(w: Weight): GpuWeight {
  return R().uploadWeight(w.dtype as ConvertDType, w.rows, w.cols, gpuWeightParts(w));
}

// ------------------------------------------------------------------------------------------------
// linear layers

test('linear: every weight format through the GEMV (16-byte units and element by element) and the tiled matmul, overwriting and accumulating', { skip }, async () => {
  for (const dtype of WEIGHT_DTYPES) {
    const quant = dtype === 'q8' || dtype === 'q4';
    // [M, N, K]: GEMV in units, GEMV element-wise (K not a multiple of the unit), tiled matmul
    const shapes = quant ? [[1, 29, 64], [3, 17, 96], [12, 70, 64]] : [[1, 29, 64], [3, 17, 96], [2, 13, 30], [12, 70, 40]];
    for (const [M, N, K] of shapes) {
      const hw = hostWeight(dtype, N, K, randn(N * K, 1 / Math.sqrt(K)));
      const gw = gpuWeight(hw);
      const x = randn(M * K), base = randn(M * N);
      const want = new Float32Array(M * N), wantAcc = base.slice();
      js.linear(want, x, hw, M);
      js.linear(wantAcc, x, hw, M, true);
      for (const ops of M > 8 ? variants.slice(0, 1) : variants) {
        const xt = up(x), out = R().alloc(M * N), acc = up(base);
        ops.linear(out, xt, gw, M);
        ops.linear(acc, xt, gw, M, true);
        assertClose(await down(out), want, TOL.fastVsRef, `${dtype} ${M}x${N}x${K} ${label(ops)}`);
        assertClose(await down(acc), wantAcc, TOL.fastVsRef, `${dtype} ${M}x${N}x${K} accumulate ${label(ops)}`);
        for (const t of [xt, out, acc]) R().free(t);
      }
      R().freeWeight(gw);
    }
  }
});

test('linearT (adapter training on a frozen base): dy·W for every weight format, one thread per output and tiled', { skip }, async () => {
  // [M, N, K] of a weight [N, K]: a small product, and one over DIRECT_MAX_WORK (several tiles, ragged)
  for (const [M, N, K] of [[5, 37, 64], [70, 96, 320]]) {
    for (const dtype of WEIGHT_DTYPES) {
      const hw = hostWeight(dtype, N, K, randn(N * K, 1 / Math.sqrt(N)));
      const gw = gpuWeight(hw);
      const dy = randn(M * N), base = randn(M * K);
      const want = new Float32Array(M * K), wantAcc = base.slice();
      js.linearT(want, dy, hw, M);
      js.linearT(wantAcc, dy, hw, M, true);
      const ops = variants[0], dt = up(dy), out = R().alloc(M * K), acc = up(base);
      ops.linearT(out, dt, gw, M);
      ops.linearT(acc, dt, gw, M, true);
      assertClose(await down(out), want, TOL.fastVsRef, `${dtype} ${M}x${N}x${K}`);
      assertClose(await down(acc), wantAcc, TOL.fastVsRef, `${dtype} ${M}x${N}x${K} accumulate`);
      for (const t of [dt, out, acc]) R().free(t);
      R().freeWeight(gw);
    }
  }
});

test('linear: a GEMV over every batch size up to 8 and a matmul of several tiles', { skip }, async () => {
  const [N, K] = [37, 64];
  const hw = hostWeight('bf16', N, K, randn(N * K, 0.1));
  const gw = gpuWeight(hw);
  for (const M of [2, 4, 5, 8, 9, 130]) {
    const x = randn(M * K), want = new Float32Array(M * N);
    js.linear(want, x, hw, M);
    const out = R().alloc(M * N);
    variants[variants.length - 1].linear(out, up(x), gw, M);
    assertClose(await down(out), want, TOL.fastVsRef, `bf16 M=${M}`);
  }
  // a weight wider than one 64-column tile in both directions
  const big = hostWeight('f32', 150, 70, randn(150 * 70, 0.1));
  const x = randn(67 * 70), want = new Float32Array(67 * 150);
  js.linear(want, x, big, 67);
  const out = R().alloc(67 * 150);
  variants[0].linear(out, up(x), gpuWeight(big), 67);
  assertClose(await down(out), want, TOL.fastVsRef, 'f32 67x150x70');
});

test('linear: the half-precision tiles of f16 weights (f32 stand-in here unless the device has shader-f16)', { skip }, async () => {
  const kinds = ['emulate', ...(R().features.f16 ? ['auto'] as const : [])] as const;
  for (const half of kinds) {
    const ops = new WebGpuOps(R(), { half, subgroups: false });
    for (const [M, N, K] of [[12, 70, 40], [66, 65, 96]]) {
      const src = randn(N * K, 1 / Math.sqrt(K));
      const hw = hostWeight('f16', N, K, src), f32w = hostWeight('f32', N, K, src);
      const x = randn(M * K), base = randn(M * N);
      const want = base.slice(), wantF32 = new Float32Array(M * N);
      js.linear(want, x, hw, M, true);
      js.linear(wantF32, x, f32w, M);
      const acc = up(base), out = R().alloc(M * N), gw = gpuWeight(hw), xt = up(x);
      ops.linear(acc, xt, gw, M, true);
      ops.linear(out, xt, gw, M);
      // the stand-in is f32 arithmetic; real f16 tiles round x to f16 as well
      assertClose(await down(acc), want, half === 'emulate' ? TOL.fastVsRef : TOL.halfVsF32, `f16 tiles (${ops.half}) ${M}x${N}x${K} accumulate`);
      assertClose(await down(out), wantF32, TOL.halfVsF32, `f16 tiles (${ops.half}) ${M}x${N}x${K} vs f32 weights`);
    }
  }
});

test('linear: an f32 weight that views a tensor at an offset (training parameters used for inference)', { skip }, async () => {
  const [M, N, K] = [3, 11, 24];
  const params = randn(7 + N * K);
  const hw = hostWeight('f32', N, K, params.subarray(7));
  const t = up(params);
  const gw = R().tensorWeight(R().view(t, 7, N * K), N, K);
  for (const [m, n] of [[M, N], [10, N]]) {
    const x = randn(m * K), want = new Float32Array(m * n);
    js.linear(want, x, hw, m);
    const out = R().alloc(m * n);
    variants[0].linear(out, up(x), gw, m);
    assertClose(await down(out), want, TOL.fastVsRef, `view weight M=${m}`);
  }
});

test('matmul: nt, nn and tn products of f32 tensors equal the f64 GEMM, overwriting and accumulating', { skip }, async () => {
  const gemm = new JsGemm();
  for (const [M, N, K] of [[5, 7, 3], [70, 33, 20]]) {
    for (const layout of ['nt', 'nn', 'tn'] as const) {
      const A = randn(M * K), B = randn(N * K), C0 = randn(M * N);
      for (const acc of [false, true]) {
        const want = Float64Array.from(C0);
        gemm[layout](want, Float64Array.from(A), Float64Array.from(B), M, N, K, acc);
        const c = up(C0);
        variants[0].matmul(c, up(A), up(B), M, N, K, layout, acc);
        assertClose(await down(c), want, TOL.fastVsRef, `${layout} ${M}x${N}x${K} acc ${acc}`);
      }
    }
  }
});

// ------------------------------------------------------------------------------------------------
// norms and RoPE

test('rmsnorm matches the reference, with the saved rstd of training', { skip }, async () => {
  for (const ops of variants) {
    for (const [rows, dim] of [[1, 64], [3, 300], [5, 7]]) {
      const x = randn(rows * dim, 3), w = randn(dim), want = new Float32Array(rows * dim);
      js.rmsnorm(want, x, w, rows, dim, 1e-6);
      const out = R().alloc(rows * dim), rstd = R().alloc(rows);
      ops.rmsnorm(out, up(x), up(w), rows, dim, 1e-6, rstd);
      assertClose(await down(out), want, TOL.fastVsRef, `rmsnorm ${rows}x${dim} ${label(ops)}`);
      const wantR = new Float64Array(rows), scratch = new Float64Array(rows * dim);
      rmsnormForward(scratch, wantR, Float64Array.from(x), Float64Array.from(w), rows, dim, 1e-6, false);
      assertClose(await down(rstd), wantR, TOL.fastVsRef, `rstd ${rows}x${dim} ${label(ops)}`);
      // in place, without rstd
      const xt = up(x);
      ops.rmsnorm(xt, xt, up(w), rows, dim, 1e-6);
      assertClose(await down(xt), want, TOL.fastVsRef, `rmsnorm in place ${label(ops)}`);
    }
  }
});

function ropeTables(positions: number, hd: number): { cos: Float32Array; sin: Float32Array } {
  const half = hd / 2, cos = new Float32Array(positions * half), sin = new Float32Array(positions * half);
  for (let p = 0; p < positions; p++) {
    for (let j = 0; j < half; j++) {
      const th = p / Math.pow(10000, (2 * j) / hd);
      cos[p * half + j] = Math.cos(th); sin[p * half + j] = Math.sin(th);
    }
  }
  return { cos, sin };
}

test('qkNormRope: per-head norms then RoPE at each row\'s position, V untouched, with and without norms', { skip }, async () => {
  for (const ops of variants) {
    for (const [rows, Q, Hkv, hd] of [[3, 4, 2, 16], [2, 3, 1, 64]]) {
      const positions = 40, { cos, sin } = ropeTables(positions, hd);
      const W = (Q + 2 * Hkv) * hd, qkv = randn(rows * W, 2), qn = randn(hd), kn = randn(hd);
      const pos = Int32Array.from({ length: rows }, (_, i) => (i * 13 + 5) % positions);
      const rope = { cos: up(cos), sin: up(sin), positions, half: hd / 2 };
      for (const norms of [true, false]) {
        const want = qkv.slice();
        js.qkNormRope(want as unknown as Tensor, rows, pos, Q, Hkv, hd, norms ? qn as unknown as Tensor : null, norms ? kn as unknown as Tensor : null,
          { cos: cos as unknown as Tensor, sin: sin as unknown as Tensor, positions, half: hd / 2 }, 1e-6);
        const t = up(qkv), rstd = R().alloc(rows * (Q + Hkv));
        ops.qkNormRope(t, rows, pos, Q, Hkv, hd, norms ? up(qn) : null, norms ? up(kn) : null, rope, 1e-6, norms ? rstd : undefined);
        assertClose(await down(t), want, TOL.fastVsRef, `qkNormRope ${rows}x${Q}/${Hkv}x${hd} norms ${norms} ${label(ops)}`);
        if (norms) {
          const wantR = new Float64Array(rows * (Q + Hkv)), q64 = Float64Array.from(qkv);
          qkNormRopeForward(q64, wantR, rows, pos, Q, Hkv, hd, Float64Array.from(qn), Float64Array.from(kn), cos, sin, 1e-6, false);
          assertClose(await down(rstd), wantR, TOL.fastVsRef, `qk rstd ${label(ops)}`);
        }
      }
    }
  }
});

// ------------------------------------------------------------------------------------------------
// KV cache and attention

test('storeKV + attention: split-key decode (one chunk and several), and flash prefill over a cache, for every GQA grouping', { skip }, async () => {
  const ops = variants[0];
  // [S, P, Q, Hkv, hd, cap]
  const cases = [
    [1, 0, 4, 2, 16, 80],     // first token, one chunk, written directly
    [1, 37, 4, 4, 16, 80],    // decode, one chunk
    [2, 100, 6, 2, 32, 160],  // decode of two tokens over two chunks (split + combine)
    [4, 130, 3, 3, 16, 140],  // three chunks, MHA
    [19, 0, 4, 1, 16, 40],    // flash prefill from empty, MQA
    [21, 30, 8, 2, 64, 60],   // flash prefill after a cached prefix
  ];
  for (const [S, P, Q, Hkv, hd, cap] of cases) {
    const W = (Q + 2 * Hkv) * hd;
    const prefix = randn(Math.max(P, 1) * W), rows = randn(S * W);
    const kc = new Float32Array(Hkv * cap * hd), vc = new Float32Array(Hkv * cap * hd);
    if (P) js.storeKV(kc, vc, prefix, P, 0, Q, Hkv, hd, cap);
    const gk = up(kc), gv = up(vc);
    js.storeKV(kc, vc, rows, S, P, Q, Hkv, hd, cap);
    const want = new Float32Array(S * Q * hd);
    js.attention(want, rows, kc, vc, S, P, Q, Hkv, hd, cap);
    const q = up(rows), out = R().alloc(S * Q * hd);
    ops.storeKV(gk, gv, q, S, P, Q, Hkv, hd, cap);
    ops.attention(out, q, gk, gv, S, P, Q, Hkv, hd, cap);
    const tag = `S=${S} P=${P} Q=${Q} Hkv=${Hkv} hd=${hd}`;
    assertClose(await down(gk), kc, TOL.fastVsRef, `k cache ${tag}`);
    assertClose(await down(gv), vc, TOL.fastVsRef, `v cache ${tag}`);
    assertClose(await down(out), want, TOL.fastVsRef, `attention ${tag}`);
  }
});

test('attention: the split-key and flash paths agree on the same queries', { skip }, async () => {
  const [S, P, Q, Hkv, hd, cap] = [6, 70, 4, 2, 32, 80];
  const W = (Q + 2 * Hkv) * hd, qkv = randn((P + S) * W);
  const kc = R().alloc(Hkv * cap * hd), vc = R().alloc(Hkv * cap * hd), q = up(qkv);
  const ops = variants[0];
  ops.storeKV(kc, vc, q, P + S, 0, Q, Hkv, hd, cap);
  const last = R().view(q, P * W, S * W);
  const a = R().alloc(S * Q * hd), b = R().alloc(S * Q * hd);
  const keep = ops.splitMaxQueries;
  ops.splitMaxQueries = S; ops.attention(a, last, kc, vc, S, P, Q, Hkv, hd, cap);
  ops.splitMaxQueries = 0; ops.attention(b, last, kc, vc, S, P, Q, Hkv, hd, cap);
  ops.splitMaxQueries = keep;
  assertClose(await down(a), await down(b), TOL.fastVsRef, 'split vs flash');
});

// Speculative decoding verifies up to 8 rows in one forward and must reproduce one-row decoding.
test('attention: each of up to 8 new queries equals a one-row call at its position, across chunk boundaries', { skip }, async () => {
  // P + S crosses the 64-key chunk (one chunk for the first queries, two for the last) and 128
  for (const [P, Q, Hkv, hd] of [[59, 4, 2, 16], [124, 2, 1, 32]]) {
    const cap = P + 8, W = (Q + 2 * Hkv) * hd, qkv = up(randn((P + 8) * W));
    const kc = R().alloc(Hkv * cap * hd), vc = R().alloc(Hkv * cap * hd);
    const ops = variants[0];
    ops.storeKV(kc, vc, qkv, P + 8, 0, Q, Hkv, hd, cap);
    const one: Float32Array[] = [];
    for (let i = 0; i < 8; i++) {
      const o = R().alloc(Q * hd);
      ops.attention(o, R().view(qkv, (P + i) * W, W), kc, vc, 1, P + i, Q, Hkv, hd, cap);
      one.push(await down(o));
    }
    for (let S = 2; S <= 8; S++) {
      const o = R().alloc(S * Q * hd);
      ops.attention(o, R().view(qkv, P * W, S * W), kc, vc, S, P, Q, Hkv, hd, cap);
      const got = await down(o);
      for (let i = 0; i < S; i++) assert.deepEqual(got.subarray(i * Q * hd, (i + 1) * Q * hd), one[i], `P=${P}: row ${i} of ${S}`);
    }
  }
});

// ------------------------------------------------------------------------------------------------
// element-wise ops, lookups

test('swiglu, silu, add (also of two views of one buffer), scale, fill, copy, row gather and scatter', { skip }, async () => {
  const ops = variants[0];
  const rows = 3, F = 37, u = randn(rows * 2 * F, 4);
  const want = new Float32Array(rows * F);
  js.swiglu(want, u, rows, F);
  const g = R().alloc(rows * F);
  ops.swiglu(g, up(u), rows, F);
  const gOut = await down(g);
  assertClose(gOut, want, TOL.fastVsRef, 'swiglu');
  // g written over u, as the model's forward does (through the scratch tensor here)
  const uIn = up(u);
  ops.swiglu(R().view(uIn, 0, rows * F), uIn, rows, F);
  assert.deepEqual((await down(uIn)).subarray(0, rows * F), gOut, 'swiglu in place');
  const s = new Float32Array(u.length);
  js.silu(s, u, u.length);
  const ut = up(u);
  ops.silu(ut, ut, u.length);
  assertClose(await down(ut), s, TOL.fastVsRef, 'silu in place');
  // add within one buffer: x = first half, y = second half
  const both = randn(2 * 50), t = up(both);
  ops.add(R().view(t, 0, 50), R().view(t, 50, 50), 50);
  const sum = both.slice(0, 50).map((v, i) => v + both[50 + i]);
  assertClose((await down(t)).subarray(0, 50), sum, TOL.fastVsRef, 'add of views');
  ops.scale(t, -0.5);
  assertClose((await down(t)).subarray(50), both.subarray(50).map((v) => v * -0.5), TOL.fastVsRef, 'scale');
  ops.fill(R().view(t, 10, 5), 2.5);
  const f = await down(t);
  assert.deepEqual(Array.from(f.subarray(10, 15)), [2.5, 2.5, 2.5, 2.5, 2.5]);
  ops.copy(R().view(t, 60, 20), R().view(t, 0, 20), 20);
  assert.deepEqual(Array.from((await down(t)).subarray(60, 80)), Array.from(f.subarray(0, 20)));
  // gather rows 2, 0, 2 of a [3, 4] table; scatter them back to rows 1, 0, 3 of a [4, 4] one
  const table = Float32Array.from({ length: 12 }, (_, i) => i), gath = R().alloc(12), scat = R().alloc(16);
  ops.gatherRows(gath, up(table), Int32Array.from([2, 0, 2]), 4);
  ops.scatterRows(scat, gath, Int32Array.from([1, 0, 3]), 4);
  assert.deepEqual(Array.from(await down(gath)), [8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11]);
  assert.deepEqual(Array.from(await down(scat)), [0, 1, 2, 3, 8, 9, 10, 11, 0, 0, 0, 0, 8, 9, 10, 11]);
});

test('embedding: rows of a table in every format; the skip id reads zeros', { skip }, async () => {
  const [V, D] = [50, 64];
  for (const dtype of WEIGHT_DTYPES) {
    const hw = hostWeight(dtype, V, D, randn(V * D));
    const ids = Int32Array.from([3, 49, 0, 3, 7]);
    const want = new Float32Array(ids.length * D);
    js.embedding(want, hw, ids);
    want.fill(0, 2 * D, 3 * D);
    const out = R().alloc(ids.length * D);
    const skipIds = ids.slice(); skipIds[2] = -100;
    variants[0].embedding(out, gpuWeight(hw), skipIds, -100);
    // q4 decodes q·scale + min, which the GPU may fuse into one rounding
    assertClose(await down(out), want, dtype === 'q4' ? TOL.fastVsRef : { atol: 0, rtol: 0 }, `embedding ${dtype}`);
  }
  assert.throws(() => variants[0].embedding(R().alloc(D), gpuWeight(hostWeight('f32', V, D, randn(V * D))), Int32Array.from([V])),
    (e: unknown) => e instanceof OpenELMError && /outside the vocabulary/.test(e.message));
});

test('argmax: the first maximum per row, NaN never wins, rows of -inf give 0; 4 bytes read back per row', { skip }, async () => {
  for (const ops of variants) {
    const V = 1000, rows = 4, x = randn(rows * V);
    x[0 * V + 17] = 9; x[0 * V + 700] = 9;                 // tie: first wins
    x[1 * V + 999] = 5; x[1 * V + 3] = NaN;                // NaN ignored
    x.fill(-Infinity, 2 * V, 3 * V);                       // nothing finite
    x[3 * V + 512] = Infinity;
    const want = [17, 999, 0, 512];
    const before = R().stats().readBytes;
    const got = await ops.argmax(up(x), rows, V);
    assert.deepEqual(Array.from(got), want, label(ops));
    assert.equal(R().stats().readBytes - before, 4 * rows);
  }
});

// ------------------------------------------------------------------------------------------------
// training ops, through the Backend interface (odd shapes: tiles cut short, G = 3, several chunks)

const backends = (): WebGPUBackend[] => variants.map((o) => new WebGPUBackend(R(), { subgroups: o.sg }));
const T_ = (a: GpuTensor): Tensor => a as unknown as Tensor;
const upT = (a: ArrayLike<number>): Tensor => T_(up(Float32Array.from(a)));
const downT = (t: Tensor): Promise<Float32Array> => R().read(t as unknown as GpuTensor);

test('causal attention for training: output, lse and the recompute backward match the f64 reference; two runs give the same bits', { skip }, async () => {
  const be = backends()[0];
  for (const [B, T, Q, Hkv, hd] of [[2, 13, 6, 2, 16], [1, 19, 2, 2, 32]]) {
    const W = (Q + 2 * Hkv) * hd, M = B * T;
    const qkv = randn(M * W), dout = randn(M * Q * hd);
    const out = new Float64Array(M * Q * hd), lse = new Float64Array(B * Q * T), dqkv = new Float64Array(M * W);
    ref.attentionForward(out, lse, Float64Array.from(qkv), B, T, Q, Hkv, hd);
    ref.attentionBackward(dqkv, Float64Array.from(dout), Float64Array.from(qkv), lse, B, T, Q, Hkv, hd);
    const tag = `B=${B} T=${T} Q=${Q} Hkv=${Hkv} hd=${hd}`;
    const run = async () => {
      const q = upT(qkv), o = T_(R().alloc(M * Q * hd)), l = T_(R().alloc(B * Q * T)), d = upT(randn(M * W));
      be.causalAttention(o, l, q, B, T, Q, Hkv, hd);
      be.causalAttentionBackward(d, upT(dout), q, o, l, B, T, Q, Hkv, hd);
      return Promise.all([downT(o), downT(l), downT(d)]);
    };
    const [o1, l1, d1] = await run();
    assertClose(o1, out, TOL.fastVsRef, `attention out ${tag}`);
    assertClose(l1, lse, TOL.fastVsRef, `attention lse ${tag}`);
    assertClose(d1, dqkv, TOL.fastVsRef, `attention dqkv ${tag}`);
    const [o2, l2, d2] = await run();
    assert.deepEqual([o2, l2, d2], [o1, l1, d1], `two runs ${tag}`);
  }
});

test('rmsnorm and qkNormRope backward: input gradients overwrite or add, weight gradients add, as the reference does', { skip }, async () => {
  for (const be of backends()) {
    const lab = be.ops.sg ? 'subgroups' : 'workgroup';
    // rmsnorm: 70 rows (two chunks of the weight-gradient sum), a width that is no power of two
    const [rows, dim] = [70, 90];
    const x = randn(rows * dim, 2), w = randn(dim), dy = randn(rows * dim), dx0 = randn(rows * dim), dw0 = randn(dim);
    const rstd = new Float64Array(rows), scratch = new Float64Array(rows * dim);
    rmsnormForward(scratch, rstd, Float64Array.from(x), Float64Array.from(w), rows, dim, 1e-6, false);
    const dx = Float64Array.from(dx0), dw = Float64Array.from(dw0);
    ref.rmsnormBackward(dx, dw, Float64Array.from(dy), Float64Array.from(x), Float64Array.from(w), rstd, rows, dim);
    const gdx = upT(dx0), gdw = upT(dw0);
    be.rmsnormBackward(gdx, gdw, upT(dy), upT(x), upT(w), upT(rstd), rows, dim);
    assertClose(await downT(gdx), dx, TOL.fastVsRef, `rmsnorm dx ${lab}`);
    assertClose(await downT(gdw), dw, TOL.fastVsRef, `rmsnorm dw ${lab}`);
    // qkNormRope: 20 rows × 4 q heads (two chunks), positions out of order, with and without norms
    const [R_, Q, Hkv, hd] = [20, 4, 2, 16], positions = 40, { cos, sin } = ropeTables(positions, hd);
    const W = (Q + 2 * Hkv) * hd, raw = randn(R_ * W, 2), g0 = randn(R_ * W), qn = randn(hd), kn = randn(hd), dqn0 = randn(hd), dkn0 = randn(hd);
    const pos = Int32Array.from({ length: R_ }, (_, i) => (i * 7 + 3) % positions);
    const qrstd = new Float64Array(R_ * (Q + Hkv));
    qkNormRopeForward(Float64Array.from(raw), qrstd, R_, pos, Q, Hkv, hd, Float64Array.from(qn), Float64Array.from(kn), cos, sin, 1e-6, false);
    const rope = { cos: upT(cos), sin: upT(sin), positions, half: hd / 2 };
    for (const norms of [true, false]) {
      const want = Float64Array.from(g0), dqn = Float64Array.from(dqn0), dkn = Float64Array.from(dkn0);
      ref.qkNormRopeBackward(want, norms ? dqn : null, norms ? dkn : null, Float64Array.from(raw), qrstd, R_, pos, Q, Hkv, hd,
        norms ? Float64Array.from(qn) : null, norms ? Float64Array.from(kn) : null, cos, sin);
      const gd = upT(g0), gq = upT(dqn0), gk = upT(dkn0);
      be.qkNormRopeBackward(gd, norms ? gq : null, norms ? gk : null, upT(raw), upT(qrstd), R_, pos, Q, Hkv, hd,
        norms ? upT(qn) : null, norms ? upT(kn) : null, rope);
      assertClose(await downT(gd), want, TOL.fastVsRef, `qkNormRope dqkv norms ${norms} ${lab}`);
      if (norms) {
        assertClose(await downT(gq), dqn, TOL.fastVsRef, `dqNorm ${lab}`);
        assertClose(await downT(gk), dkn, TOL.fastVsRef, `dkNorm ${lab}`);
      }
    }
  }
});

test('swiglu and silu backward; embedding backward adds rows in row order (the same bits as the reference)', { skip }, async () => {
  const be = backends()[0];
  const rows = 3, F = 37, u = randn(rows * 2 * F, 3), dg = randn(rows * F);
  const want = new Float32Array(rows * 2 * F);
  ref.swigluBackward(want, dg, u, rows, F);
  const du = upT(randn(rows * 2 * F));
  be.swigluBackward(du, upT(dg), upT(u), rows, F);
  assertClose(await downT(du), want, TOL.fastVsRef, 'swiglu backward');
  const wantS = new Float32Array(u.length), dgs = randn(u.length);
  ref.siluBackward(wantS, dgs, u, u.length);
  const dus = upT(new Float32Array(u.length));
  be.siluBackward(dus, upT(dgs), upT(u), u.length);
  assertClose(await downT(dus), wantS, TOL.fastVsRef, 'silu backward');
  const [V, D] = [11, 70], ids = Int32Array.from([3, 7, 3, -100, 0, 3, 10, 7]);
  const table = randn(V * D), dout = randn(ids.length * D), wantE = table.slice();
  ref.embeddingBackward(wantE, dout, ids, D, -100);
  const dt = upT(table);
  be.embeddingBackward(dt, upT(dout), ids, D, -100);
  assert.deepEqual(await downT(dt), wantE);
  assert.throws(() => be.embeddingBackward(dt, upT(dout), Int32Array.from([V]), D, -100), (e: unknown) => e instanceof OpenELMError);
});

test('cross-entropy with z-loss and row scales: the loss sums and the gradient over the logits; rowLogprobs', { skip }, async () => {
  const be = backends()[0];
  const [rows, V] = [5, 300], logits = randn(rows * V, 3), targets = Int32Array.from([0, 299, 17, 17, 150]);
  const rowScale = Float32Array.from([1, 0.5, 2, 0, 1.25]);
  for (const [z, gs, rs] of [[1e-4, 0.2, rowScale], [0, 1, undefined], [0, 0, undefined]] as const) {
    const want = Float64Array.from(logits);
    const sums = ref.crossEntropyRows(want, targets, rows, V, z, gs, rs);
    const t = upT(logits);
    const got = await be.crossEntropy(t, targets, rows, V, z, gs, rs);
    assertClose([got.ceSum, got.lseSqSum], [sums.ceSum, sums.lseSqSum], TOL.loss, `loss sums z=${z} gs=${gs}`);
    assertClose(await downT(t), gs === 0 ? logits : want, TOL.fastVsRef, `gradient z=${z} gs=${gs}`);
  }
  assertClose(await be.rowLogprobs(upT(logits), targets, rows, V), ref.rowLogprobs(logits, targets, rows, V), TOL.loss, 'rowLogprobs');
  await assert.rejects(async () => be.crossEntropy(upT(logits), Int32Array.from([0, 0, 0, 0, V]), rows, V, 0, 1), (e: unknown) => e instanceof OpenELMError);
});

test('sumSquares, scale and AdamW against the f64 reference', { skip }, async () => {
  const be = backends()[0];
  const n = 10_007, x = randn(n);
  const ss = await be.sumSquares(upT(x));
  assert.ok(Math.abs(ss - ref.sumSquares(x)) <= 1e-6 * ref.sumSquares(x), `sumSquares ${ss} vs ${ref.sumSquares(x)}`);
  const t = upT(x), coef = 0.123456789012345;
  be.scale(t, coef);
  const wantScale = x.slice();
  ref.scale(wantScale, coef);
  assertClose(await downT(t), wantScale, { atol: 0, rtol: 1.2e-7 }, 'scale');
  const p = randn(n, 0.1), g = randn(n, 0.01), m = randn(n, 0.001), v = Float32Array.from(randn(n, 1e-4), (a) => a * a);
  const s = { b1: 0.9, b2: 0.95, stepSize: 3e-4 / (1 - 0.9 ** 3), bc2Sqrt: Math.sqrt(1 - 0.95 ** 3), eps: 1e-8, keep: 1 - 3e-4 * 0.1 };
  const [wp, wm, wv] = [p.slice(), m.slice(), v.slice()];
  ref.adamw(wp, g, wm, wv, n, s);
  const [gp, gm, gv] = [upT(p), upT(m), upT(v)];
  be.adamw(gp, upT(g), gm, gv, n, s);
  // each f32 operation rounds: a few ulps of the terms (p ~ 0.1, m ~ 1e-3, v ~ 1e-4)
  assertClose(await downT(gp), wp, { atol: 3e-8, rtol: 0 }, 'adamw p');
  assertClose(await downT(gm), wm, { atol: 1e-9, rtol: 0 }, 'adamw m');
  assertClose(await downT(gv), wv, { atol: 3e-11, rtol: 0 }, 'adamw v');
});

// ------------------------------------------------------------------------------------------------
// runtime

test('runtime: reads see every earlier op, writes land in order, reused buffers come back zeroed, one submit per read', { skip }, async () => {
  const r = R(), ops = variants[0];
  const a = r.alloc(8);
  r.write(a, Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]));
  ops.scale(a, 2);
  r.write(a, Float32Array.from([100]), 1);       // after the scale, so not doubled
  ops.add(a, a, 8);                              // x += x: one binding for both arguments
  const s0 = r.stats();
  const got = await r.read(a);
  const s1 = r.stats();
  assert.deepEqual(Array.from(got), [4, 200, 12, 16, 20, 24, 28, 32]);
  assert.equal(s1.submits - s0.submits, 1, 'one submit for the recorded ops and the read');
  assert.equal(s1.readBytes - s0.readBytes, 32);
  // a large write goes straight to the queue, still after the ops recorded before it
  const n = 200_000, big = r.alloc(n), src = randn(n);
  ops.fill(big, 7);
  r.write(big, src);
  assertClose(await r.read(big, n - 5, 5), src.subarray(n - 5), { atol: 0, rtol: 0 }, 'large write');
  r.free(big);
  const again = r.alloc(n);
  assert.ok((await r.read(again)).every((v) => v === 0), 'a reused buffer is zero-filled');
  r.free(again);
  // pipelines and bind groups are cached: repeating a step creates neither
  const w = gpuWeight(hostWeight('q8', 32, 64, randn(32 * 64)));
  const x = up(randn(64)), out = r.alloc(32);
  const step = async () => { ops.linear(out, x, w, 1); ops.add(out, out, 32); await ops.argmax(out, 1, 32); };
  await step();
  const t0 = r.stats();
  await step();
  const t1 = r.stats();
  assert.equal(t1.pipelines, t0.pipelines);
  assert.equal(t1.bindGroups, t0.bindGroups);
  assert.equal(t1.submits - t0.submits, 1);
  assert.equal(t1.readBytes - t0.readBytes, 4);
});

test('no adapter: one line saying so and how to get one', async () => {
  const none = { requestAdapter: async () => null, wgslLanguageFeatures: new Set<string>() } as unknown as GPU;
  await assert.rejects(acquireGpu({ gpu: none }), (e: unknown) =>
    e instanceof OpenELMError && /^no WebGPU adapter found: install a GPU driver/.test(e.message) && !e.message.includes('\n'));
});

test('a lost device fails reads with a clear error instead of hanging', { skip }, async () => {
  const r2 = await GpuRuntime.create({ own: true });
  const t = r2.alloc(1000);
  new WebGpuOps(r2).fill(t, 1);
  const pending = r2.read(t);
  r2.device.destroy();
  await assert.rejects(pending, (e: unknown) => e instanceof OpenELMError);
  await assert.rejects(r2.read(t), (e: unknown) => e instanceof OpenELMError && /GPU device was lost/.test(e.message));
  assert.throws(() => r2.alloc(4), (e: unknown) => e instanceof OpenELMError && /lost/.test(e.message));
  r2.dispose();
});

test('a tensor larger than the device allows is refused with the sizes', { skip }, () => {
  const n = Math.floor(R().maxBufferBytes / 4) + 1;
  assert.throws(() => R().alloc(n), (e: unknown) => e instanceof OpenELMError && /MiB exceeds the largest buffer the GPU allows/.test(e.message));
});
