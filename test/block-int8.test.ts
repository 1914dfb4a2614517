// Decode of Q8_0/Q4_0/Q4_K/Q6_K/Q6_K block weights with int8 activations (kernels/blocks_int.as), the wasm
// backend's default for them: against a float64 computation of the same arithmetic (x quantized per
// block of 32 as quantizeX does, exact integer block dots, d_w·d_x per block), each row of a several-
// row call equal to a one-row call, and the exact f32 path still reachable (option, per-call `exact`).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { BlockDType } from '../src/backends/backend.js';
import { createBackend } from '../src/backends/index.js';
import { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import { BLOCK_FORMATS } from '../src/backends/weight-format.js';
import { f16ToF32 } from '../src/core/dtype.js';
import { Rng } from '../src/core/rng.js';
import { WASM_CONFIGS, cachedWasm, disposeCachedWasm, f32, own } from './helpers/backends.js';
import { blockWeightOn, randomBlocks } from './helpers/blocks.js';
import { TOL } from './tolerances.js';

after(disposeCachedWasm);

const DTYPES: BlockDType[] = ['q8_0', 'q4_0', 'q4_k', 'q6_k'];
const fr = Math.fround;

function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** x's blocks of 32 as quantizeX forms them in f32: scale d and integers q. */
function quantize(x: Float32Array): { d: Float32Array; q: Int32Array } {
  const nb = x.length / 32, d = new Float32Array(nb), q = new Int32Array(x.length);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[32 * b + j]));
    d[b] = fr(amax / 127);
    const id = amax > 0 ? fr(127 / amax) : 0;
    for (let j = 0; j < 32; j++) q[32 * b + j] = roundEven(fr(x[32 * b + j] * id));
  }
  return { d, q };
}

/** Q4_K sub-block j's 6-bit scale (m = false) or min (m = true) from the 12 bytes at o (docs/formats.md). */
function kScale(data: Uint8Array, o: number, j: number, m: boolean): number {
  if (j < 4) return data[o + j + (m ? 4 : 0)] & 63;
  return m ? (data[o + j + 4] >> 4) | ((data[o + j] >> 6) << 4) : (data[o + j + 4] & 15) | ((data[o + j - 4] >> 6) << 4);
}

/**
 * Per output: Σ_b d_w·d_x·Σ q_w·q_x (Q4_K: − Σ_j dmin·m_j·d_x·Σ q_x) in float64, and the same sum of
 * absolute values (the size its f32 rounding scales with).
 */
function reference(dtype: BlockDType, data: Uint8Array, N: number, K: number, x: Float32Array): { y: Float64Array; mag: Float64Array } {
  const { bytes } = BLOCK_FORMATS[dtype], nb = K / 32, { d, q } = quantize(x);
  const dv = new DataView(data.buffer, data.byteOffset);
  const y = new Float64Array(N), mag = new Float64Array(N);
  if (dtype === 'q6_k') {
    // value 128h + 32k + l of a super-block: low bits from ql[64h + 32(k & 1) + l] (high nibble for
    // k ≥ 2), high bits (qh[32h + l] >> 2k) & 3, scale scales[8h + 2k + (l >> 4)]; x block 4h + k
    for (let n = 0; n < N; n++) {
      for (let sb = 0; sb < K / 256; sb++) {
        const o = (n * (K / 256) + sb) * bytes, dd = f16ToF32(dv.getUint16(o + 208, true));
        for (let t = 0; t < 8; t++) {
          const h = t >> 2, k = t & 3, b = 8 * sb + t;
          for (let half = 0; half < 2; half++) {
            const sc = dv.getInt8(o + 192 + 8 * h + 2 * k + half);
            let s = 0, a = 0;
            for (let l = 16 * half; l < 16 * half + 16; l++) {
              const ql = data[o + 64 * h + 32 * (k & 1) + l], qh = data[o + 128 + 32 * h + l];
              const qw = ((k < 2 ? ql & 15 : ql >> 4) | (((qh >> (2 * k)) & 3) << 4)) - 32;
              s += qw * q[32 * b + l]; a += Math.abs(qw * q[32 * b + l]);
            }
            y[n] += dd * d[b] * sc * s; mag[n] += Math.abs(dd * d[b] * sc) * a;
          }
        }
      }
    }
    return { y, mag };
  }
  if (dtype === 'q4_k') {
    for (let n = 0; n < N; n++) {
      for (let sb = 0; sb < K / 256; sb++) {
        const o = (n * (K / 256) + sb) * bytes, dd = f16ToF32(dv.getUint16(o, true)), dmin = f16ToF32(dv.getUint16(o + 2, true));
        for (let j = 0; j < 8; j++) {
          const b = 8 * sb + j, c = j >> 1;
          let s = 0, a = 0, sx = 0;
          for (let l = 0; l < 32; l++) {
            const byte = data[o + 16 + 32 * c + l], qw = j & 1 ? byte >> 4 : byte & 15, qx = q[32 * b + l];
            s += qw * qx; a += Math.abs(qw * qx); sx += qx;
          }
          const cs = dd * kScale(data, o + 4, j, false) * d[b], cm = dmin * kScale(data, o + 4, j, true) * d[b];
          y[n] += cs * s - cm * sx; mag[n] += Math.abs(cs) * a + Math.abs(cm * sx);
        }
      }
    }
    return { y, mag };
  }
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nb; b++) {
      const o = (n * nb + b) * bytes, dw = f16ToF32(dv.getUint16(o, true));
      let s = 0, a = 0;
      for (let j = 0; j < 32; j++) {
        const qw = dtype === 'q8_0' ? dv.getInt8(o + 2 + j) : (j < 16 ? data[o + 2 + j] & 15 : data[o + 2 + j - 16] >> 4) - 8;
        s += qw * q[32 * b + j]; a += Math.abs(qw * q[32 * b + j]);
      }
      y[n] += dw * d[b] * s; mag[n] += Math.abs(dw * d[b]) * a;
    }
  }
  return { y, mag };
}

function randn(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

for (const cfg of WASM_CONFIGS) {
  test(`Q8_0/Q4_0/Q4_K/Q6_K GEMV with int8 activations matches float64 on the same quantized operands (${cfg.label})`, async (t) => {
    const be = await cachedWasm(cfg);
    assert.equal(be.blockInt8, true, 'the default');
    const rng = new Rng(31);
    const worst: Record<string, number> = {};
    for (const dtype of DTYPES) {
      worst[dtype] = 0;
      for (const K of BLOCK_FORMATS[dtype].elems === 256 ? [256, 768, 1280] : [32, 96, 160, 288, 1280]) {
        const N = 37, data = randomBlocks(rng, dtype, N, K), w = blockWeightOn(be, dtype, N, K, data);
        const x = randn(rng, K);
        // an outlier channel and an all-zero block: the per-block scales must follow both
        x[5] = 40;
        if (K >= 96) x.fill(0, 32, 64);
        const bias = randn(rng, N);
        for (const accumulate of [false, true]) {
          const got = own(be, bias);
          be.linear(got, own(be, x), w, 1, accumulate);
          const { y, mag } = reference(dtype, data, N, K, x);
          for (let n = 0; n < N; n++) {
            const want = (accumulate ? bias[n] : 0) + y[n];
            const e = Math.abs(got[n] - want) / (mag[n] + (accumulate ? Math.abs(bias[n]) : 0));
            worst[dtype] = Math.max(worst[dtype], e);
            assert.ok(e <= TOL.blockInt8VsF64.rtol, `${dtype} K=${K} acc=${accumulate} row ${n}: ${got[n]} vs ${want} (${e.toExponential(2)} of the magnitude)`);
          }
        }
        be.freeWeight(w);
      }
    }
    t.diagnostic(`worst error relative to Σ|w·x|: ${Object.entries(worst).map(([d, e]) => `${d} ${e.toExponential(2)}`).join(', ')}`);
  });

  test(`Q8_0/Q4_0/Q4_K/Q6_K int8 GEMV: each row of a 2-8-row call equals a one-row call (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(32);
    for (const dtype of DTYPES) {
      const N = 29, K = BLOCK_FORMATS[dtype].elems === 256 ? 768 : 352, w = blockWeightOn(be, dtype, N, K, randomBlocks(rng, dtype, N, K));
      const x = randn(rng, 8 * K);
      const one: Float32Array[] = [];
      for (let m = 0; m < 8; m++) {
        const o = f32(be.alloc(N));
        be.linear(o, own(be, x.subarray(m * K, (m + 1) * K)), w, 1);
        one.push(o.slice());
      }
      for (let M = 2; M <= 8; M++) {
        const o = f32(be.alloc(M * N));
        be.linear(o, own(be, x.subarray(0, M * K)), w, M);
        for (let m = 0; m < M; m++) assert.deepEqual(o.subarray(m * N, (m + 1) * N), one[m], `${dtype}: row ${m} of ${M}`);
      }
      be.freeWeight(w);
    }
  });
}

/** Block dtypes whose prompts (more than 8 tokens) run the integer GEMM (kernels/igemm.as hasIntGemm). */
const GEMM_DTYPES: BlockDType[] = ['q8_0', 'q4_0', 'q4_k', 'q6_k'];

for (const cfg of WASM_CONFIGS) {
  test(`Q8_0/Q4_0/Q4_K/Q6_K prompts (integer GEMM, int8 activations) match float64 on the same quantized operands (${cfg.label})`, async (t) => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(34);
    const worst: Record<string, number> = {};
    for (const dtype of GEMM_DTYPES) {
      worst[dtype] = 0;
      // K past one packed chunk (256) and not a multiple of it; N not a multiple of 8; M past a 4-row tile
      // (the K types: K in whole super-blocks of 256)
      const shapes = BLOCK_FORMATS[dtype].elems === 256 ? [[9, 37, 256], [13, 21, 768], [37, 130, 1280]] : [[9, 37, 96], [13, 21, 288], [37, 130, 1280]];
      for (const [M, N, K] of shapes) {
        const data = randomBlocks(rng, dtype, N, K), w = blockWeightOn(be, dtype, N, K, data);
        const x = randn(rng, M * K);
        for (let m = 0; m < M; m++) x[m * K + ((5 * m) % K)] = 40;
        if (K >= 96) x.fill(0, 32, 64);
        const bias = randn(rng, M * N);
        for (const accumulate of [false, true]) {
          const got = own(be, bias);
          be.linear(got, own(be, x), w, M, accumulate);
          for (let m = 0; m < M; m++) {
            const { y, mag } = reference(dtype, data, N, K, x.subarray(m * K, (m + 1) * K));
            for (let n = 0; n < N; n++) {
              const b = accumulate ? bias[m * N + n] : 0, e = Math.abs(got[m * N + n] - (b + y[n])) / (mag[n] + Math.abs(b));
              worst[dtype] = Math.max(worst[dtype], e);
              assert.ok(e <= TOL.blockInt8VsF64.rtol, `${dtype} ${M}×${N}×${K} acc=${accumulate} [${m}, ${n}]: ${got[m * N + n]} vs ${b + y[n]} (${e.toExponential(2)})`);
            }
          }
        }
        be.freeWeight(w);
      }
    }
    t.diagnostic(`worst error relative to Σ|w·x|: ${Object.entries(worst).map(([d, e]) => `${d} ${e.toExponential(2)}`).join(', ')}`);
  });
}

/**
 * An M×N product of each dtype: linear(exact) and blockInt8 = false give the same result (the exact
 * f32 path: the GEMM for prompts, the walker for decode), and the int8 path another one. k256, k32:
 * the columns of the super-block dtypes and of the others.
 */
async function exactPathAgrees(s: { M: number; N: number; k256: number; k32: number; seed: number }, dtypes: readonly BlockDType[]): Promise<void> {
  const be = await cachedWasm(WASM_CONFIGS[0]);
  const rng = new Rng(s.seed), { M, N } = s;
  for (const dtype of dtypes) {
    const k = BLOCK_FORMATS[dtype].elems === 256 ? s.k256 : s.k32, w = blockWeightOn(be, dtype, N, k, randomBlocks(rng, dtype, N, k));
    const x = own(be, randn(rng, M * k));
    const run = (exact: boolean) => { const o = f32(be.alloc(M * N)); be.linear(o, x, w, M, false, exact); return o.slice(); };
    const int8 = run(false), exactCall = run(true);
    be.blockInt8 = false;
    const off = run(false);
    be.blockInt8 = true;
    assert.deepEqual(exactCall, off, `${dtype}, M ${M}: exact call = blockInt8 off`);
    assert.notDeepEqual(int8, off, `${dtype}, M ${M}: the int8 path is another computation`);
    be.freeWeight(w);
  }
}

test('Q8_0/Q4_0/Q4_K/Q6_K prompts: blockInt8 = false and linear(exact) take the exact f32 GEMM', () =>
  exactPathAgrees({ M: 12, N: 19, k256: 512, k32: 160, seed: 35 }, GEMM_DTYPES));

test('the exact f32 path of Q8_0/Q4_0/Q4_K/Q6_K decode: the exactBlocks option, blockInt8 = false, and linear(exact)', async () => {
  await exactPathAgrees({ M: 1, N: 13, k256: 256, k32: 160, seed: 33 }, DTYPES);
  const made = await createBackend('wasm', { threads: 1, exactBlocks: true });
  try {
    assert.ok(made instanceof WasmBackend);
    assert.equal(made.blockInt8, false);
  } finally { made.dispose(); }
});
