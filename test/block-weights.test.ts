// Block weights (GGUF and MLX types run as stored): the WASM kernels against the JS reference on
// random blocks and odd shapes, 1 and 2 threads, relaxed SIMD and plain SIMD128. Decoding is
// checked bit for bit (embedding rows, and one-hot GEMV inputs that pick single weights out of
// the in-register decoder); products to f32 summation order. Weights made of row ranges of
// different types ('rows', a GGUF proj_1 whose gate and up differ) equal their parts stacked.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, BlockDType, Weight } from '../src/backends/backend.js';
import { BLOCK_DTYPES } from '../src/backends/backend.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import { BLOCK_FORMATS, rowsWeight, setWeightRows, weightRowToF32, weightStorageBytes } from '../src/backends/weight-format.js';
import { dequantize } from '../src/core/ggml-quants.js';
import { OpenELMError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { WASM_CONFIGS, cachedWasm, disposeCachedWasm, f32, own } from './helpers/backends.js';
import { blockWeightOn, randomBlocks } from './helpers/blocks.js';
import { TOL, assertClose } from './tolerances.js';

const js = new JsBackend();
after(disposeCachedWasm);

function randn(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal();
  return a;
}

/** K values per row for a dtype: whole blocks, more than one KC chunk of the GEMM for some. */
const widths = (d: BlockDType): number[] => (BLOCK_FORMATS[d].elems === 256 ? [256, 768] : [32, 96, 288]);
const SHAPES: [number, number][] = [[1, 29], [1, 3], [2, 9], [3, 29], [4, 16], [5, 37], [8, 21], [9, 17], [13, 130]];

test('the JS row decoder of ggml block dtypes is core/ggml-quants.ts; q4_1_f32 is fr(d·q) + m', () => {
  const rng = new Rng(3);
  for (const dtype of BLOCK_DTYPES) {
    const K = BLOCK_FORMATS[dtype].elems * 3, rows = 5;
    const w = blockWeightOn(js, dtype, rows, K, randomBlocks(rng, dtype, rows, K));
    const row = new Float32Array(K), want = new Float32Array(K);
    const rb = (K / BLOCK_FORMATS[dtype].elems) * BLOCK_FORMATS[dtype].bytes;
    weightRowToF32(w, 3, row);
    const t = BLOCK_FORMATS[dtype].ggml;
    if (t !== null) dequantize(t, w.data as Uint8Array, 3 * rb, K, want);
    else {
      const dv = new DataView((w.data as Uint8Array).buffer, (w.data as Uint8Array).byteOffset);
      for (let b = 0; b < K / 32; b++) {
        const o = 3 * rb + 24 * b, d = dv.getFloat32(o, true), m = dv.getFloat32(o + 4, true);
        for (let j = 0; j < 32; j++) {
          const byte = (w.data as Uint8Array)[o + 8 + (j & 15)];
          want[32 * b + j] = Math.fround(Math.fround(d * (j < 16 ? byte & 15 : byte >> 4)) + m);
        }
      }
    }
    assert.deepEqual(row, want, dtype);
    assert.equal(weightStorageBytes(w), rows * rb);
    assert.throws(() => setWeightRows(w, 0, new Float32Array(K)), OpenELMError);
    assert.throws(() => js.allocWeight(dtype, 2, BLOCK_FORMATS[dtype].elems + 16), /whole blocks/);
  }
});

for (const cfg of WASM_CONFIGS) {
  test(`embedding decodes every block dtype bit for bit (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(8);
    for (const dtype of BLOCK_DTYPES) {
      for (const D of widths(dtype)) {
        const V = 37, data = randomBlocks(rng, dtype, V, D);
        const wj = blockWeightOn(js, dtype, V, D, data), ww = blockWeightOn(be, dtype, V, D, data);
        const ids = Int32Array.of(0, 36, 5, 5, 17, 2, 9);
        const ref = new Float32Array(ids.length * D);
        js.embedding(ref, wj, ids);
        const got = f32(be.alloc(ids.length * D));
        be.embedding(got, ww, ids);
        assertClose(got, ref, { atol: 0, rtol: 0 }, `${dtype} D=${D}`);
        assert.throws(() => be.embedding(got, ww, Int32Array.of(37)), OpenELMError);
        be.freeWeight(ww);
      }
    }
  });

  test(`one-token GEMV decodes in registers to the exact values (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(9);
    for (const dtype of BLOCK_DTYPES) {
      const K = BLOCK_FORMATS[dtype].elems * 2, N = 7;
      const data = randomBlocks(rng, dtype, N, K);
      const wj = blockWeightOn(js, dtype, N, K, data), ww = blockWeightOn(be, dtype, N, K, data);
      const rowsRef = new Float32Array(N * K), row = new Float32Array(K);
      for (let n = 0; n < N; n++) { weightRowToF32(wj, n, row); rowsRef.set(row, n * K); }
      // x = e_k: out[n] = 1·W[n,k] + Σ 0·W[n,j], exactly W[n,k]
      const x = f32(be.alloc(K)), out = f32(be.alloc(N)), col = new Float32Array(N);
      for (let k = 0; k < K; k++) {
        x.fill(0); x[k] = 1;
        be.linear(out, x, ww, 1);
        for (let n = 0; n < N; n++) col[n] = rowsRef[n * K + k];
        assertClose(out, col, { atol: 0, rtol: 0 }, `${dtype} column ${k}`);
      }
      be.freeWeight(ww);
    }
  });

  test(`linear with block weights matches the reference on odd shapes (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(11);
    for (const dtype of BLOCK_DTYPES) {
      for (const K of widths(dtype)) {
        for (const [M, N] of SHAPES) {
          const data = randomBlocks(rng, dtype, N, K);
          const wj = blockWeightOn(js, dtype, N, K, data), ww = blockWeightOn(be, dtype, N, K, data);
          const x = randn(rng, M * K), bias = randn(rng, M * N);
          for (const accumulate of [false, true]) {
            const ref = Float32Array.from(bias);
            js.linear(ref, x, wj, M, accumulate);
            const label = `${dtype} M=${M} N=${N} K=${K} acc=${accumulate}`;
            const got = own(be, bias);
            be.linear(got, own(be, x), ww, M, accumulate);
            assertClose(got, ref, TOL.fastVsRef, label);
            // arrays from outside the wasm memory are staged in and out
            const foreign = Float32Array.from(bias);
            be.linear(foreign, x, ww, M, accumulate);
            assertClose(foreign, ref, TOL.fastVsRef, `${label} (plain arrays)`);
          }
          be.freeWeight(ww);
        }
      }
    }
  });

  test(`a weight of row ranges in different dtypes equals its parts stacked (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(12);
    const K = 256;
    const mk = (b: Backend): { w: Weight; parts: Weight[] } => {
      const r = new Rng(13);
      const a = blockWeightOn(b, 'q4_k', 19, K, randomBlocks(r, 'q4_k', 19, K));
      const c = blockWeightOn(b, 'q8_0', 11, K, randomBlocks(r, 'q8_0', 11, K));
      const f = b.allocWeight('f16', 5, K);
      setWeightRows(f, 0, randn(r, 5 * K));
      b.prepareWeight(f);
      const w = rowsWeight([a, c, f]);
      b.prepareWeight(w);
      return { w, parts: [a, c, f] };
    };
    const { w: wj, parts } = mk(js), { w: ww } = mk(be);
    assert.equal(wj.rows, 35);
    assert.equal(weightStorageBytes(wj), parts.reduce((n, p) => n + weightStorageBytes(p), 0));
    for (const M of [1, 3, 13]) {
      const x = randn(rng, M * K), bias = randn(rng, M * 35);
      for (const accumulate of [false, true]) {
        // the reference: each part's product in its columns
        const ref = Float32Array.from(bias);
        let c0 = 0;
        for (const p of parts) {
          const o = new Float32Array(M * p.rows);
          js.linear(o, x, p, M);
          for (let m = 0; m < M; m++) for (let j = 0; j < p.rows; j++) ref[m * 35 + c0 + j] = (accumulate ? ref[m * 35 + c0 + j] : 0) + o[m * p.rows + j];
          c0 += p.rows;
        }
        const viaJs = Float32Array.from(bias);
        js.linear(viaJs, x, wj, M, accumulate);
        assertClose(viaJs, ref, { atol: 1e-6, rtol: 1e-6 }, `js M=${M} acc=${accumulate}`);
        const got = own(be, bias);
        be.linear(got, own(be, x), ww, M, accumulate);
        assertClose(got, ref, TOL.fastVsRef, `wasm M=${M} acc=${accumulate}`);
        const foreign = Float32Array.from(bias);
        be.linear(foreign, x, ww, M, accumulate);
        assertClose(foreign, ref, TOL.fastVsRef, `wasm M=${M} acc=${accumulate} (plain arrays)`);
      }
    }
    const ids = Int32Array.of(0, 18, 19, 29, 30, 34);
    const ej = new Float32Array(ids.length * K), ew = new Float32Array(ids.length * K);
    js.embedding(ej, wj, ids);
    be.embedding(ew, ww, ids);
    assertClose(ew, ej, { atol: 0, rtol: 0 }, 'embedding');
    be.freeWeight(ww);
    js.freeWeight(wj);
  });
}

test('results do not depend on the thread count', async () => {
  const one = await cachedWasm(WASM_CONFIGS[0]), two = await cachedWasm(WASM_CONFIGS[1]);
  const rng = new Rng(21);
  for (const dtype of BLOCK_DTYPES) {
    const K = BLOCK_FORMATS[dtype].elems === 256 ? 512 : 320, N = 67;
    const data = randomBlocks(rng, dtype, N, K);
    const w1 = blockWeightOn(one, dtype, N, K, data), w2 = blockWeightOn(two, dtype, N, K, data);
    for (const M of [1, 3, 20]) {
      const x = randn(rng, M * K);
      const a = new Float32Array(M * N), b = new Float32Array(M * N);
      one.linear(a, x, w1, M);
      two.linear(b, x, w2, M);
      assert.deepEqual(a, b, `${dtype} M=${M}`);
    }
    one.freeWeight(w1); two.freeWeight(w2);
  }
});
