// WasmBackend vs the JS reference: every kernel on random inputs with odd sizes, every weight
// dtype, 1 and 2 threads (and the plain SIMD128 build next to the relaxed one), then whole tiny
// models. Exactness only; speed is measured by bench/kernels.bench.ts.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { Backend, Weight, WeightDType } from '../src/backends/backend.js';
import { WEIGHT_DTYPES } from '../src/backends/backend.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import { WASM_CONFIGS, cachedWasm, createWasm, disposeCachedWasm, f32, own } from './helpers/backends.js';
import { setDenormalsFast } from '../src/backends/wasm/kernels.js';
import { createBackend } from '../src/backends/index.js';
import { setWeightRows, weightRowToF32 } from '../src/backends/weight-format.js';
import { OpenELMError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { f32ToF16 } from '../src/core/dtype.js';
import type { ModelWeights } from '../src/model/openelm.js';
import { OpenELM } from '../src/model/openelm.js';
import { TOL, assertClose, type Tol } from './tolerances.js';
import { tinyModel } from './helpers/tiny.js';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const toks = [5, 17, 42, 99, 3, 250, 7, 8, 120, 33, 64];
const js = new JsBackend();
/** A WASM tensor as the Float32Array view it is. */
const A = (be: Backend, n: number): Float32Array => f32(be.alloc(n));

after(disposeCachedWasm);

function randn(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.normal() * scale;
  return a;
}

function weightOn(be: Backend, dtype: WeightDType, rows: number, cols: number, src: Float32Array): Weight {
  const w = be.allocWeight(dtype, rows, cols);
  setWeightRows(w, 0, src);
  be.prepareWeight(w);
  return w;
}

// ------------------------------------------------------------------------------------------------
// kernels

/** Each of the first M = 2..8 rows of a many-row linear call must equal its one-row call bit for bit (speculative decoding relies on it). */
function assertRowsMatchOneRow(be: Backend, w: Weight, x: Float32Array, N: number, K: number, what: string): void {
  const one: Float32Array[] = [];
  for (let m = 0; m < 8; m++) {
    const o = new Float32Array(N);
    be.linear(o, x.subarray(m * K, (m + 1) * K), w, 1);
    one.push(o);
  }
  for (let M = 2; M <= 8; M++) {
    const got = new Float32Array(M * N);
    be.linear(got, x.subarray(0, M * K), w, M);
    for (let m = 0; m < M; m++) assert.deepEqual(got.subarray(m * N, (m + 1) * N), one[m], `${what}: row ${m} of ${M}`);
  }
}

const FLOAT_SHAPES = [[1, 29, 37], [1, 67, 8], [1, 5, 3], [2, 9, 13], [3, 29, 37], [4, 16, 64], [5, 21, 130], [8, 21, 40], [9, 17, 24], [13, 130, 300]];
const QUANT_SHAPES = [[1, 29, 96], [1, 67, 32], [1, 3, 288], [2, 29, 96], [3, 7, 32], [5, 37, 64], [8, 29, 64], [9, 130, 288]];

test('q4 prefill (integer GEMM, relaxed build: int8 × 4-bit dots summed in i16 lanes up to their bound) equals the decode GEMV row by row at the largest block sums', async () => {
  // igemmQ4 sums 16 products of at most 127·15 per i16 lane and block (igemm.as), 30480 of 32767:
  // the largest sums come from blocks of levels near 15 met by activations at ±127, so some rows and
  // columns are made that way. Prefill (more than 8 rows) and decode (one row) quantize x alike and
  // sum each block exactly, so they differ by f32 rounding only; a lane that overflowed would be
  // off by 2¹⁶ levels.
  const rng = new Rng(31);
  for (const cfg of WASM_CONFIGS) {
    const be = await cachedWasm(cfg);
    for (const [M, N, K] of [[9, 37, 288], [13, 130, 1280], [16, 16, 32], [10, 24, 64], [11, 20, 96], [12, 8, 512]]) {
      const src = randn(rng, N * K, 1 / Math.sqrt(K));
      for (let n = 0; n < N; n += 3) for (let k = 0; k < K; k++) src[n * K + k] = k % 32 === 0 ? -1 : 1;   // levels 0 and 15
      const x = randn(rng, M * K, 2);
      for (let m = 0; m < M; m += 2) for (let k = 0; k < K; k++) x[m * K + k] = m % 4 === 0 ? 3 : -3;    // ±127 once quantized
      const w = weightOn(be, 'q4', N, K, src);
      const got = new Float32Array(M * N).fill(0.5), rows = new Float32Array(M * N).fill(0.5);
      be.linear(got, x, w, M, true);
      for (let m = 0; m < M; m++) be.linear(rows.subarray(m * N, (m + 1) * N), x.subarray(m * K, (m + 1) * K), w, 1, true);
      // the rounding scales with Σ|w·x| (large terms cancel in these outputs), so the bound is relative to it
      let worst = 0;
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
        let mag = 0;
        for (let k = 0; k < K; k++) mag += Math.abs(src[n * K + k] * x[m * K + k]);
        worst = Math.max(worst, Math.abs(got[m * N + n] - rows[m * N + n]) / (1 + mag));
      }
      if (process.env.OPENELM_PRINT_TOL) console.log(`[int8 GEMM vs GEMV] ${cfg.label} M=${M} N=${N} K=${K}: ${worst.toExponential(2)}`);
      assert.ok(worst <= TOL.int8GemmVsGemv.rtol, `${cfg.label} M=${M} N=${N} K=${K}: |GEMM − GEMV| / (1 + Σ|w·x|) = ${worst}`);
      be.freeWeight(w);
    }
  }
});

for (const cfg of WASM_CONFIGS) {
  test(`linear matches the reference for every dtype (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(11);
    for (const dtype of WEIGHT_DTYPES) {
      const quant = dtype === 'q8' || dtype === 'q4';
      for (const [M, N, K] of quant ? QUANT_SHAPES : FLOAT_SHAPES) {
        const src = randn(rng, N * K, 1 / Math.sqrt(K));
        const wj = weightOn(js, dtype, N, K, src);
        const ww = weightOn(be, dtype, N, K, src);
        const x = randn(rng, M * K);
        const bias = randn(rng, M * N);
        for (const accumulate of [false, true]) {
          const ref = Float32Array.from(bias);
          js.linear(ref, x, wj, M, accumulate);
          // q8/q4 take the integer path with int8-quantized activations (GEMV up to 8 tokens, GEMM
          // beyond); with intGemm off, the GEMM runs in f32 on dequantized panels instead
          for (const intGemm of quant && M > 8 ? [true, false] : [true]) {
            be.intGemm = intGemm;
            const tol: Tol = quant && intGemm ? TOL.intDotVsRef : TOL.fastVsRef;
            const label = `${dtype} M=${M} N=${N} K=${K} acc=${accumulate}${intGemm ? '' : ' f32 GEMM'}`;
            const got = own(be, bias);
            be.linear(got, own(be, x), ww, M, accumulate);
            assertClose(got, ref, tol, label);
            // arrays from outside the wasm memory are staged in and out
            const foreign = Float32Array.from(bias);
            be.linear(foreign, x, ww, M, accumulate);
            assertClose(foreign, ref, tol, `${label} (plain arrays)`);
          }
          be.intGemm = true;
        }
      }
    }
  });

  test(`weights stored outside the wasm memory are copied in by prepareWeight (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(5);
    for (const dtype of WEIGHT_DTYPES) {
      const src = randn(rng, 7 * 64, 0.125);
      const wj = weightOn(js, dtype, 7, 64, src);   // plain ArrayBuffers
      const x = randn(rng, 3 * 64);
      const ref = new Float32Array(21);
      js.linear(ref, x, wj, 3);
      const got = new Float32Array(21);
      be.linear(got, x, wj, 3);
      assertClose(got, ref, dtype === 'q8' || dtype === 'q4' ? TOL.intDotVsRef : TOL.fastVsRef, dtype);
      const emb = new Float32Array(2 * 64), embRef = new Float32Array(2 * 64);
      be.embedding(emb, wj, Int32Array.of(6, 0));
      js.embedding(embRef, wj, Int32Array.of(6, 0));
      assertClose(emb, embRef, { atol: 0, rtol: 0 }, `${dtype} embedding`);
    }
  });

  test(`q8/q4 GEMV: each of up to 8 rows equals a one-row call bit for bit (${cfg.label})`, async () => {
    // The one-row and the 2-4-row integer kernels are separate code in each build (relaxed SIMD
    // and SIMD128) and must sum every row in the same order (speculative decoding's verification;
    // the backend suite checks the default build). K: whole 4-block steps only, a 1-block tail,
    // a 3-block tail.
    const be = await cachedWasm(cfg);
    const rng = new Rng(31);
    const N = 21;
    for (const dtype of ['q8', 'q4'] as const) {
      for (const K of [256, 160, 224]) {
        const w = weightOn(be, dtype, N, K, randn(rng, N * K, 0.1));
        const x = randn(rng, 8 * K);
        for (let i = 0; i < x.length; i += 37) x[i] *= 40;   // outliers: blocks whose int8 scale differs widely
        assertRowsMatchOneRow(be, w, x, N, K, `${dtype} K=${K}`);
        be.freeWeight(w);
      }
    }
  });

  test(`q4 GEMV against float64 on the same quantized operands, 1 to 8 rows of x, odd and even row counts (${cfg.label})`, async () => {
    // The GEMV forms each block's integer dot exactly, scales it by the block's code in the
    // integers, and folds x's block scale, the min codes' term and the row's D and M in f32:
    // against a float64 evaluation of the same quantized product (x quantized per block of 32 as
    // quantizeX does) only that f32 rounding remains, relative to the output's Σ|terms|. Weight
    // rows go through the kernel in pairs (the odd one out alone), two blocks per step (the odd
    // last block, and the last nb mod 4 min codes, apart): K covers those cases.
    const be = await cachedWasm(cfg);
    const rng = new Rng(57);
    const fr = Math.fround;
    const roundEven = (v: number) => { const r = Math.round(v); return Math.abs(v - Math.trunc(v)) === 0.5 && r % 2 !== 0 ? r - 1 : r; };
    let worst = 0;
    for (const [N, K] of [[7, 32], [8, 96], [13, 160], [21, 224], [6, 1280], [33, 64]]) {
      const src = randn(rng, N * K, 1 / Math.sqrt(K));
      for (let k = 0; k < K; k++) src[2 * K + k] = k % 32 === 0 ? -1 : 1;   // levels 0 and 15
      const w = weightOn(be, 'q4', N, K, src);
      const data = w.data as Uint8Array, meta = new DataView((w.scales as Uint8Array).buffer, (w.scales as Uint8Array).byteOffset);
      const nb = K / 32, mb = 8 + ((K / 16 + 3) & ~3);
      for (const M of [1, 2, 3, 4, 8]) {
        const x = randn(rng, M * K);
        for (let i = 0; i < x.length; i += 29) x[i] *= 40;   // outliers: blocks whose int8 scale differs widely
        for (let k = 0; k < K; k++) x[k] = k % 2 ? 3 : -3;   // ±127 once quantized
        const got = new Float32Array(M * N);
        be.linear(got, x, w, M);
        for (let m = 0; m < M; m++) {
          const dx = new Float64Array(nb), q = new Int32Array(K), sx = new Float64Array(nb);
          for (let b = 0; b < nb; b++) {
            let amax = 0;
            for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[m * K + 32 * b + j]));
            dx[b] = fr(amax / 127);
            const id = amax > 0 ? fr(127 / amax) : 0;
            let s = 0;
            for (let j = 0; j < 32; j++) { q[32 * b + j] = roundEven(fr(x[m * K + 32 * b + j] * id)); s += q[32 * b + j]; }
            sx[b] = fr(dx[b] * s);
          }
          for (let n = 0; n < N; n++) {
            const o = n * mb, D = meta.getFloat32(o, true), Mm = meta.getFloat32(o + 4, true);
            let y = 0, mag = 0;
            for (let b = 0; b < nb; b++) {
              const sc = meta.getUint8(o + 8 + b), mc = meta.getInt8(o + 8 + nb + b);
              let dot = 0, adot = 0;
              for (let j = 0; j < 16; j++) {
                const byte = data[(n * K) / 2 + 16 * b + j];
                const t0 = (byte & 15) * q[32 * b + j], t1 = (byte >> 4) * q[32 * b + 16 + j];
                dot += t0 + t1; adot += Math.abs(t0) + Math.abs(t1);
              }
              y += D * sc * dx[b] * dot + Mm * mc * sx[b];
              mag += Math.abs(D * sc * dx[b]) * adot + Math.abs(Mm * mc * sx[b]);
            }
            const e = Math.abs(got[m * N + n] - y) / mag;
            worst = Math.max(worst, e);
            assert.ok(e <= TOL.blockInt8VsF64.rtol, `${cfg.label} q4 N=${N} K=${K} M=${M} row ${m} out ${n}: |GEMV − f64| / Σ|terms| = ${e}`);
          }
        }
      }
      be.freeWeight(w);
    }
    if (process.env.OPENELM_PRINT_TOL) console.log(`[q4 GEMV vs f64] ${cfg.label}: ${worst.toExponential(2)}`);
  });

  test(`q8 GEMV widens subnormal, zero and normal f16 scales exactly, 1 to 4 rows (${cfg.label})`, async () => {
    // The same levels with subnormal scales m·2⁻²⁴ (the exact widening) and with m·2⁻⁴ (all
    // normal: the integer-add widening): every product and sum scales by 2²⁰ exactly, so the
    // outputs must too, bit for bit.
    const be = await cachedWasm(cfg);
    const rng = new Rng(41);
    const N = 9, K = 160, nb = N * K / 32;
    const codes = Int8Array.from({ length: N * K }, () => rng.int(255) - 127);
    const m = Uint16Array.from({ length: nb }, () => 1 + rng.int(1023));
    const make = (scale: (mi: number) => number, zero: boolean): Weight => {
      const w = be.allocWeight('q8', N, K);
      (w.data as Int8Array).set(codes);
      const s = w.scales as Uint16Array;
      for (let b = 0; b < nb; b++) s[b] = f32ToF16(scale(m[b]));
      // a zero scale over zero levels: either widening may take it
      if (zero) { s[7] = 0; (w.data as Int8Array).fill(0, 7 * 32, 8 * 32); }
      be.prepareWeight(w);
      return w;
    };
    const fastOf = (w: Weight) => (w.packed as { mins: number }).mins;
    for (const zero of [false, true]) {
      const sub = make((mi) => mi * 2 ** -24, zero), nrm = make((mi) => mi * 2 ** -4, zero);
      assert.equal(fastOf(sub), 0, 'subnormal scales take the exact widening');
      assert.equal(fastOf(nrm), 1, 'normal scales take the integer add');
      assert.ok([...(sub.scales as Uint16Array)].some((h) => h > 0 && h < 0x400));
      // 1-4 rows: the GEMV; 9 and 33: the integer GEMM, and the f32 GEMM on dequantized panels
      for (const [M, intGemm] of [[1, true], [2, true], [3, true], [4, true], [9, true], [33, true], [33, false]] as const) {
        be.intGemm = intGemm;
        const x = randn(rng, M * K);
        const a = new Float32Array(M * N), b = new Float32Array(M * N);
        be.linear(a, x, sub, M);
        be.linear(b, x, nrm, M);
        assert.ok(a.some((v) => v !== 0));
        assert.deepEqual(b, a.map((v) => v * 2 ** 20), `M=${M} intGemm=${intGemm} zero=${zero}`);
      }
      be.intGemm = true;
      const ea = new Float32Array(2 * K), eb = new Float32Array(2 * K);
      be.embedding(ea, sub, Int32Array.of(0, 5));
      be.embedding(eb, nrm, Int32Array.of(0, 5));
      assert.deepEqual(eb, ea.map((v) => v * 2 ** 20), 'embedding rows');
      assert.deepEqual(ea.subarray(0, K), Float32Array.from(codes.subarray(0, K), (q, i) => q * m[Math.floor(i / 32)] * 2 ** -24), 'the exact values');
      be.freeWeight(sub); be.freeWeight(nrm);
    }
    // a zero scale over nonzero levels takes the exact widening (their products must be 0)
    const w = make((mi) => mi * 2 ** -4, false);
    (w.scales as Uint16Array)[3] = 0;
    be.prepareWeight(w);
    assert.equal(fastOf(w), 0);
    be.freeWeight(w);
  });

  test(`q8 GEMV: rows of x too large for the folded scales give the same sums, 1 to 8 rows (${cfg.label})`, async () => {
    // The relaxed build's GEMVs take x's block scales times 2¹¹² (gemv.as q8ScaleX); a row with a
    // block scale of 2¹⁶ or more has no such copy, and the call takes the exact scale widening.
    // x·2³⁰ quantizes to the same levels with every block scale times 2³⁰, so its outputs must be
    // exactly 2³⁰ times those of x; and a call mixing such a row with others must still give each
    // row its one-row result.
    const be = await cachedWasm(cfg);
    const rng = new Rng(43);
    const N = 13, K = 224;
    const w = weightOn(be, 'q8', N, K, randn(rng, N * K, 0.1));
    for (const M of [1, 2, 3, 4]) {
      const x = randn(rng, M * K), big = x.map((v) => v * 2 ** 30);
      const a = new Float32Array(M * N), b = new Float32Array(M * N);
      be.linear(a, x, w, M);
      be.linear(b, big, w, M);
      assert.ok(a.some((v) => v !== 0));
      assert.deepEqual(b, a.map((v) => v * 2 ** 30), `M=${M}`);
    }
    const x = randn(rng, 8 * K);
    for (let i = K; i < 2 * K; i++) x[i] *= 2 ** 30;   // row 1 only
    assertRowsMatchOneRow(be, w, x, N, K, 'q8, one large row');
    be.freeWeight(w);
  });

  // Each f16 GEMV test runs both ways the backend may prepare a weight (kernels.ts denormalsFast):
  // groups holding subnormal halves converted without denormal operands, and every group converted
  // alike, two rows per step (gemv.as gemvF16Pairs). Both must give the same exact sums.
  for (const [fast, mode] of [[false, 'no denormal operands'], [true, 'denormal operands']] as const) {
    test(`f16 GEMV with subnormal halves: each of up to 8 rows equals a one-row call bit for bit (${cfg.label}, ${mode})`, async () => {
      setDenormalsFast(fast);
      // Every |x| < 2¹⁶, so all rows take the x·2¹¹² form; weights of standard deviation 0.005 hold
      // about 1% subnormal halves, so the kernels walk runs of clean groups between marked ones
      // (adjacent marked groups, a marked first or last group) and must still sum each row in the
      // one-row order. K: whole 16-half groups only, and an 8-half step plus scalar leftovers.
      const be = await cachedWasm(cfg);
      const rng = new Rng(37);
      const N = 21;
      for (const K of [512, 16 * 40 + 11]) {
        const w = weightOn(be, 'f16', N, K, randn(rng, N * K, 0.005));
        const bits = w.data as Uint16Array;
        let sub = 0;
        for (let i = 0; i < N * K; i++) if ((bits[i] & 0x7c00) === 0 && (bits[i] & 0x3ff) !== 0) sub++;
        assert.ok(sub > N * K * 0.004, `K=${K}: the weights hold subnormal halves (${sub})`);
        const x = randn(rng, 8 * K);
        assertRowsMatchOneRow(be, w, x, N, K, `f16 K=${K}`);
        be.freeWeight(w);
      }
    });

    test(`f16 GEMV picks out subnormal, zero and normal halves exactly (${cfg.label}, ${mode})`, async () => {
      setDenormalsFast(fast);
      // The GEMV converts groups holding subnormal halves another way (no denormal operands); both
      // ways must give the exact half, for 1 to 4 tokens per call, in the 16-wide steps and the tails.
      const be = await cachedWasm(cfg);
      const rng = new Rng(21);
      const N = 6, K = 43;
      const w = be.allocWeight('f16', N, K);
      const bits = w.data as Uint16Array;
      for (let i = 0; i < N * K; i++) {
        const r = rng.int(4), sign = rng.int(2) << 15;
        // subnormal (mantissa 1..1023), ±0, a normal; row 0 all subnormal, rows 3.. all normal
        const normal = (1 + rng.int(30)) << 10 | rng.int(1024);
        bits[i] = sign | (i >= 3 * K ? normal : i < K || r === 0 ? 1 + rng.int(1023) : r === 1 ? 0 : normal);
      }
      be.prepareWeight(w);
      const vals = new Float32Array(N * K), row = new Float32Array(K);
      for (let n = 0; n < N; n++) { weightRowToF32(w, n, row); vals.set(row, n * K); }
      // x values: 1; 2¹⁷, past the range where the kernel multiplies by x·2¹¹² instead of rebiasing
      // each half (|x| < 2¹⁶), so a row holding it takes the plain form; 2⁻¹³⁰, a denormal x
      const xs = [1, 2 ** 17, 2 ** -130];
      for (let M = 1; M <= 4; M++) {
        for (let k = 0; k < K; k++) {
          const xt = be.alloc(M * K), ot = be.alloc(M * N), x = f32(xt), out = f32(ot);
          const ks = Array.from({ length: M }, (_, m) => (k + 11 * m) % K);
          const sc = ks.map((_, m) => xs[(k + m) % xs.length]);
          ks.forEach((km, m) => { x[m * K + km] = sc[m]; });
          be.linear(out, x, w, M);
          const want = new Float32Array(M * N);
          ks.forEach((km, m) => { for (let n = 0; n < N; n++) want[m * N + n] = vals[n * K + km] * sc[m]; });
          assertClose(out, want, { atol: 0, rtol: 0 }, `M=${M} k=${k}`);
          be.free(xt); be.free(ot);
        }
      }
      be.freeWeight(w);
    });

    test(`f16 subnormal map marks exactly the groups holding a subnormal half, and long rows stay exact (${cfg.label}, ${mode})`, async () => {
      setDenormalsFast(fast);
      // prepareWeight records, per row, a bit per 16 halves (several 32-bit words for K ≥ 512); the
      // GEMV converts those groups without denormal operands. Zeros are not subnormal.
      const be = await cachedWasm(cfg);
      const rng = new Rng(23);
      const N = 5, K = 16 * 70 + 9, G = K >> 4, words = (G + 31) >> 5;
      const w = be.allocWeight('f16', N, K);
      const bits = w.data as Uint16Array;
      const marked: number[][] = [[], [0, 31, 32, 63, 64, 69], [], Array.from({ length: G }, (_, g) => g), []];
      for (let n = 0; n < N; n++) {
        for (let k = 0; k < K; k++) bits[n * K + k] = rng.int(2) << 15 | (1 + rng.int(30)) << 10 | rng.int(1024);
        for (const g of marked[n]) bits[n * K + 16 * g + rng.int(16)] = rng.int(2) << 15 | (1 + rng.int(1023));
      }
      bits[2 * K + 5] = 0; bits[2 * K + 40] = 0x8000;                  // ±0: not marked
      bits[4 * K + 16 * G + 3] = 1;                                     // a subnormal in the tail: no group
      marked[0] = [7];
      bits[16 * 7 + 15] = 0x83ff;
      be.prepareWeight(w);
      const p = w.packed as { scales: number; shard: { arena: { u8(off: number, n: number): Uint8Array } } };
      assert.ok(p.scales > 0, 'an f16 weight has a map');
      const map = new Uint32Array(p.shard.arena.u8(p.scales, N * words * 4).slice().buffer);
      for (let n = 0; n < N; n++) {
        const got: number[] = [];
        for (let g = 0; g < G; g++) if ((map[n * words + (g >> 5)] >>> (g & 31)) & 1) got.push(g);
        assert.deepEqual(got, marked[n], `row ${n}`);
      }
      // one x value per token at a time, so each output is one exact product
      const vals = new Float32Array(N * K), row = new Float32Array(K);
      for (let n = 0; n < N; n++) { weightRowToF32(w, n, row); vals.set(row, n * K); }
      for (let M = 1; M <= 4; M++) {
        for (const k of [0, 16 * 31 + 15, 16 * 32, 16 * 63 + 1, 16 * 64, 16 * 69 + 8, K - 1]) {
          const xt = be.alloc(M * K), ot = be.alloc(M * N), x = f32(xt), out = f32(ot);
          for (let m = 0; m < M; m++) x[m * K + k] = m === 1 ? 2 ** 17 : 1 + m;
          be.linear(out, x, w, M);
          const want = new Float32Array(M * N);
          for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) want[m * N + n] = vals[n * K + k] * x[m * K + k];
          assertClose(out, want, { atol: 0, rtol: 0 }, `M=${M} k=${k}`);
          be.free(xt); be.free(ot);
        }
      }
      be.freeWeight(w);
    });
  }
  after(() => setDenormalsFast(undefined));

  test(`f16 GEMV: weights prepared for denormal operands give the same outputs bit for bit, 1 to 8 rows of x (${cfg.label})`, async () => {
    // Row counts that leave an odd row to gemvF16Pairs's ranges (21, and chunks of it on 2 threads),
    // weights with about 1% subnormal halves, x with a large row (|x| ≥ 2¹⁶: the plain form) and a
    // K with an 8-half step and leftovers.
    const be = await cachedWasm(cfg);
    const rng = new Rng(41);
    for (const [N, K] of [[21, 512], [8, 16 * 40 + 11], [1, 64], [3, 16]]) {
      const src = randn(rng, N * K, 0.005);
      const outs: Float32Array[] = [];
      for (const fast of [false, true]) {
        setDenormalsFast(fast);
        const w = weightOn(be, 'f16', N, K, src);
        const x = randn(new Rng(43 + N), 8 * K);
        x[3 * K + 1] = 2 ** 17;
        const o = new Float32Array(8 * N);
        for (let m = 0; m < 8; m++) be.linear(o.subarray(m * N, (m + 1) * N), x.subarray(m * K, (m + 1) * K), w, 1);
        const many = new Float32Array(8 * N);
        be.linear(many, x, w, 8);
        assert.deepEqual(many, o, `N=${N} K=${K} fast=${fast}: 8 rows at once equal one-row calls`);
        outs.push(o);
        be.freeWeight(w);
      }
      assert.deepEqual(outs[1], outs[0], `N=${N} K=${K}`);
    }
    setDenormalsFast(undefined);
  });

  test(`rmsnorm, swiglu, silu and add match the reference (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(3);
    for (const [rows, dim] of [[1, 37], [3, 64], [5, 1280], [2, 3]]) {
      const x = randn(rng, rows * dim, 2), w = randn(rng, dim);
      const ref = new Float32Array(rows * dim);
      js.rmsnorm(ref, x, w, rows, dim, 1e-6);
      const got = A(be, rows * dim);
      be.rmsnorm(got, own(be, x), own(be, w), rows, dim, 1e-6);
      assertClose(got, ref, TOL.fastVsRef, `rmsnorm ${rows}x${dim}`);
    }
    for (const [rows, F] of [[1, 37], [3, 128], [2, 1027], [64, 1027], [33, 2048]]) {
      const u = randn(rng, rows * 2 * F, 3);
      u[0] = -100; u[1] = 100; u[2] = 0;
      const ref = new Float32Array(rows * F);
      js.swiglu(ref, u, rows, F);
      const got = A(be, rows * F);
      be.swiglu(got, own(be, u), rows, F);
      assertClose(got, ref, TOL.fastVsRef, `swiglu ${rows}x${F}`);
      // g written over u, as the model's forward does (threads split the columns)
      const ut = own(be, u);
      be.swiglu(be.view(ut, 0, rows * F), ut, rows, F);
      assert.deepEqual(f32(ut).subarray(0, rows * F), got, `swiglu in place ${rows}x${F}`);
      // the reference in place too
      const uj = Float32Array.from(u);
      js.swiglu(uj.subarray(0, rows * F), uj, rows, F);
      assert.deepEqual(uj.subarray(0, rows * F), ref, `reference swiglu in place ${rows}x${F}`);
    }
    for (const n of [1, 37, 4099]) {
      const u = randn(rng, n, 4);
      const ref = new Float32Array(n);
      js.silu(ref, u, n);
      const got = own(be, u);
      be.silu(got, got, n);   // in place, as the model does
      assertClose(got, ref, TOL.fastVsRef, `silu ${n}`);
      const y = randn(rng, n);
      const sum = Float32Array.from(u);
      js.add(sum, y, n);
      const x2 = own(be, u);
      be.add(x2, y, n);
      assertClose(x2, sum, { atol: 0, rtol: 0 }, `add ${n}`);
    }
  });

  test(`linearSwiglu equals linear then swiglu bit for bit, every dtype, 1 to 9 rows (${cfg.label})`, async () => {
    // the GEMV computes each chunk's gate and up rows and then their g columns; more rows, a column
    // count not a multiple of 4 and plain arrays take the two calls
    const be = await cachedWasm(cfg);
    const rng = new Rng(23);
    for (const dtype of WEIGHT_DTYPES) {
      for (const [F, K] of [[64, 96], [148, 64], [36, 32], [30, 64]]) {
        const w = weightOn(be, dtype, 2 * F, K, randn(rng, 2 * F * K, 1 / Math.sqrt(K)));
        for (const M of [1, 2, 3, 5, 8, 9]) {
          const x = own(be, randn(rng, M * K));
          const ref = A(be, M * 2 * F);
          be.linear(ref, x, w, M);
          be.swiglu(be.view(ref, 0, M * F), ref, M, F);
          const u = A(be, M * 2 * F);
          u.fill(NaN);
          be.linearSwiglu(be.view(u, 0, M * F), u, x, w, M, F);
          const label = `${dtype} F=${F} K=${K} M=${M}`;
          assert.deepEqual(u.subarray(0, M * F), ref.subarray(0, M * F), label);
          const plain = new Float32Array(M * 2 * F);
          be.linearSwiglu(plain.subarray(0, M * F), plain, Float32Array.from(x), w, M, F);
          assert.deepEqual(plain.subarray(0, M * F), ref.subarray(0, M * F), `${label} (plain arrays)`);
        }
        be.freeWeight(w);
      }
    }
  });

  test(`qkNormRope matches the reference with and without q/k norms (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(4);
    for (const [Q, Hkv, hd, rows] of [[4, 2, 6, 5], [2, 1, 16, 1], [12, 3, 64, 7], [3, 3, 10, 2]]) {
      const W = (Q + 2 * Hkv) * hd, half = hd / 2, positions = 40;
      const qkv = randn(rng, rows * W, 2);
      const pos = Int32Array.from({ length: rows }, () => Math.floor(rng.next() * positions));
      const cos = randn(rng, positions * half), sin = randn(rng, positions * half);
      for (const norms of [true, false]) {
        const qn = norms ? randn(rng, hd) : null, kn = norms ? randn(rng, hd) : null;
        const ref = Float32Array.from(qkv);
        js.qkNormRope(ref, rows, pos, Q, Hkv, hd, qn, kn, { cos, sin, positions, half }, 1e-6);
        const got = own(be, qkv);
        be.qkNormRope(got, rows, pos, Q, Hkv, hd, qn && own(be, qn), kn && own(be, kn), { cos: own(be, cos), sin: own(be, sin), positions, half }, 1e-6);
        assertClose(got, ref, TOL.fastVsRef, `Q=${Q} Hkv=${Hkv} hd=${hd} norms=${norms}`);
      }
    }
  });

  test(`linearQkv equals linear, qkNormRope and storeKV bit for bit, every dtype, 1 to 9 rows (${cfg.label})`, async () => {
    // the GEMV's chunks are whole heads, each normed, rotated and stored by its chunk; more rows,
    // positions that do not follow P and plain arrays take the three calls
    const be = await cachedWasm(cfg);
    const rng = new Rng(41);
    for (const dtype of WEIGHT_DTYPES) {
      for (const [Q, Hkv, hd, K] of [[4, 2, 16, 64], [12, 3, 64, 96], [3, 1, 8, 32], [2, 2, 12, 64]]) {
        const W = (Q + 2 * Hkv) * hd, half = hd / 2, positions = 24, cap = 20;
        const w = weightOn(be, dtype, W, K, randn(rng, W * K, 1 / Math.sqrt(K)));
        const rope = { cos: own(be, randn(rng, positions * half)), sin: own(be, randn(rng, positions * half)), positions, half };
        for (const norms of [true, false]) {
          const qn = norms ? own(be, randn(rng, hd)) : null, kn = norms ? own(be, randn(rng, hd)) : null;
          for (const [S, P, jump] of [[1, 0, 0], [1, 7, 0], [2, 3, 0], [5, 11, 0], [8, 12, 0], [9, 2, 0], [3, 4, 1]]) {
            const pos = Int32Array.from({ length: S }, (_, r) => P + r + (r === S - 1 ? jump : 0));
            const x = own(be, randn(rng, S * K));
            const k0 = randn(rng, Hkv * cap * hd), v0 = randn(rng, Hkv * cap * hd);
            const ref = A(be, S * W), kr = own(be, k0), vr = own(be, v0);
            be.linear(ref, x, w, S);
            be.qkNormRope(ref, S, pos, Q, Hkv, hd, qn, kn, rope, 1e-6);
            be.storeKV(kr, vr, ref, S, P, Q, Hkv, hd, cap);
            const label = `${dtype} Q=${Q} Hkv=${Hkv} hd=${hd} S=${S} P=${P} jump=${jump} norms=${norms}`;
            const got = A(be, S * W), kw = own(be, k0), vw = own(be, v0);
            be.linearQkv(got, x, w, S, pos, Q, Hkv, hd, qn, kn, rope, 1e-6, kw, vw, P, cap);
            assert.deepEqual(got, ref, `${label} qkv`);
            assert.deepEqual(kw, kr, `${label} K cache`);
            assert.deepEqual(vw, vr, `${label} V cache`);
            const plain = new Float32Array(S * W), kp = own(be, k0), vp = own(be, v0);
            be.linearQkv(plain, Float32Array.from(x), w, S, pos, Q, Hkv, hd, qn, kn, rope, 1e-6, kp, vp, P, cap);
            assert.deepEqual(plain, ref, `${label} qkv (plain arrays)`);
            assert.deepEqual(kp, kr, `${label} K cache (plain arrays)`);
          }
        }
        be.freeWeight(w);
      }
    }
  });

  test(`storeKV and attention match the reference (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(6);
    // the same kernels on one thread, where decode's query heads are not split into parts
    const one = cfg.threads > 1 && cfg.relaxedSimd ? await cachedWasm(WASM_CONFIGS[0]) : null;
    // [S, P, Q, Hkv, hd, cap]: decode, prefill, prefill after a prefix, >64 keys (several blocks),
    // decode with 3 and 4 query heads per kv head (split into parts on 2 threads), a short prefill,
    // head sizes that are not multiples of 16 (the two-head passes' last dimensions); head size 64
    // (its own score loop) with blocks of 2, 3 and 1 last keys and odd query heads per kv head
    for (const [S, P, Q, Hkv, hd, cap] of [[1, 7, 4, 2, 6, 9], [5, 0, 4, 2, 16, 8], [3, 70, 2, 1, 10, 80],
      [70, 0, 4, 4, 8, 70], [1, 130, 12, 3, 64, 140], [2, 0, 3, 1, 4, 2], [1, 40, 15, 5, 64, 41], [1, 150, 20, 5, 64, 160],
      [4, 10, 20, 5, 64, 14], [6, 3, 8, 2, 37, 12], [1, 40, 8, 2, 20, 41],
      [1, 97, 12, 3, 64, 100], [1, 33, 6, 2, 64, 34], [1, 63, 9, 3, 64, 64], [3, 29, 10, 2, 64, 32]]) {
      const W = (Q + 2 * Hkv) * hd;
      const qkv = randn(rng, S * W, 1.5);
      const k0 = randn(rng, Hkv * cap * hd), v0 = randn(rng, Hkv * cap * hd);
      const kr = Float32Array.from(k0), vr = Float32Array.from(v0), outR = new Float32Array(S * Q * hd);
      js.storeKV(kr, vr, qkv, S, P, Q, Hkv, hd, cap);
      js.attention(outR, qkv, kr, vr, S, P, Q, Hkv, hd, cap);
      const kw = own(be, k0), vw = own(be, v0), q = own(be, qkv), outW = A(be, S * Q * hd);
      be.storeKV(kw, vw, q, S, P, Q, Hkv, hd, cap);
      assertClose(kw, kr, { atol: 0, rtol: 0 }, 'K cache');
      assertClose(vw, vr, { atol: 0, rtol: 0 }, 'V cache');
      be.attention(outW, q, kw, vw, S, P, Q, Hkv, hd, cap);
      assertClose(outW, outR, TOL.fastVsRef, `attention S=${S} P=${P} Q=${Q} Hkv=${Hkv} hd=${hd}`);
      if (one) {
        // heads are independent: how a call is split over the threads never changes a bit
        const out1 = A(one, S * Q * hd);
        one.attention(out1, own(one, qkv), own(one, kr), own(one, vr), S, P, Q, Hkv, hd, cap);
        assertClose(outW, out1, { atol: 0, rtol: 0 }, `attention on 1 and 2 threads S=${S} P=${P} Q=${Q} Hkv=${Hkv}`);
      }
    }
  });

  test(`argmax: the first maximum per row, NaN never wins, rows of -inf give 0 (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(61);
    for (const V of [1, 7, 8, 37, 1000]) {
      const rows = 6, x = randn(rng, rows * V);
      x[V - 1] = 9; if (V > 2) x[1] = 9;                     // tie: the first wins
      x[V + V - 1] = 50; x[V] = NaN;                          // NaN never wins
      x.fill(-Infinity, 2 * V, 3 * V);                        // nothing finite
      x.fill(NaN, 3 * V, 4 * V);
      x[4 * V + (V >> 1)] = Infinity;
      const got = await be.argmax(own(be, x), rows, V);
      assert.deepEqual(Array.from(got), Array.from(await js.argmax(x, rows, V)), `argmax V=${V}`);
      assert.equal(got[2], 0); assert.equal(got[3], 0);
      // arrays outside the wasm memories too
      assert.deepEqual(Array.from(await be.argmax(x as unknown as Parameters<Backend['argmax']>[0], rows, V)), Array.from(got));
    }
  });

  test(`embedding dequantizes rows of every dtype exactly (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(8);
    for (const dtype of WEIGHT_DTYPES) {
      const V = 37, D = dtype === 'q8' || dtype === 'q4' ? 96 : 45;
      const src = randn(rng, V * D, 0.5);
      const wj = weightOn(js, dtype, V, D, src), ww = weightOn(be, dtype, V, D, src);
      const ids = Int32Array.of(0, 36, 5, 5, 17);
      const ref = new Float32Array(ids.length * D);
      js.embedding(ref, wj, ids);
      const got = A(be, ids.length * D);
      be.embedding(got, ww, ids);
      assertClose(got, ref, { atol: 0, rtol: 0 }, dtype);
      assert.throws(() => be.embedding(got, ww, Int32Array.of(37)), OpenELMError);
    }
  });
}

// ------------------------------------------------------------------------------------------------
// memory

test('buffers are zeroed, survive memory growth, and freed blocks are reused', async () => {
  const be = await createWasm({ threads: 2 });
  try {
    const a = A(be, 1000);
    assert.ok(a.every((v) => v === 0));
    a.fill(3);
    const before = be.memory().reserved;
    const big = A(be, 64 << 20);          // 256 MiB: forces the memory to grow
    assert.ok(be.memory().reserved > before);
    assert.ok(a.every((v) => v === 3), 'a view made before growth still sees its data');
    const y = A(be, 1000);
    y.fill(1);
    be.add(a, y, 1000);                // kernels still reach the old view
    assert.ok(a.every((v) => v === 4));
    be.free(big);
    const again = A(be, 1000);
    assert.ok(again.every((v) => v === 0), 'reused memory is zeroed');
    const w = be.allocWeight('q4', 64, 64);
    be.freeWeight(w);
    assert.throws(() => be.free(new Float32Array(4)), OpenELMError);
    // a weight that is a view into a bigger buffer: freeWeight() drops only its prepared state
    const flat = A(be, 64 * 64);
    flat.fill(2);
    const view = { dtype: 'f32' as const, rows: 64, cols: 64, data: flat.subarray(0, 64 * 64) };
    be.prepareWeight(view);
    be.freeWeight(view);
    assert.throws(() => be.free(flat.subarray(0, 8)), OpenELMError, 'a subarray is not an allocation');
    A(be, 64 * 64).fill(7);
    assert.ok(flat.every((v) => v === 2), 'the enclosing buffer was not freed');
  } finally {
    be.dispose();
  }
});

test('a disposed KV cache returns its memory, so a long-running process does not run out', async () => {
  const be = await createWasm({ threads: 1 });
  try {
    const { model } = tinyModel({}, 1, be);
    const cache0 = model.newCache(64);
    await model.forward([{ cache: cache0, tokens: toks }]);
    cache0.dispose();
    const before = be.memory().inUse;
    for (let i = 0; i < 50; i++) {
      const cache = model.newCache(64);
      await model.forward([{ cache, tokens: toks }]);
      cache.dispose();
    }
    assert.equal(be.memory().inUse, before);
  } finally {
    be.dispose();
  }
});

test('a model that does not fit the 4 GiB wasm memory fails with a clear error', async () => {
  const be = await createWasm({ threads: 1 });
  try {
    assert.throws(() => be.allocWeight('f32', 32000 * 40, 8192), (e: unknown) =>
      e instanceof OpenELMError && /4 GiB/.test(e.message) && /smaller dtype/.test(e.message));
    assert.throws(() => A(be, 1.2e9), OpenELMError);
    assert.equal(A(be, 16).length, 16, 'the backend still works after refusing');
  } finally {
    be.dispose();
  }
});

test('bad arguments are rejected instead of touching other buffers', async () => {
  const be = await createWasm({ threads: 1 });
  try {
    const w = weightOn(be, 'f32', 8, 16, new Float32Array(128));
    assert.throws(() => be.linear(A(be, 8), A(be, 15), w, 1), OpenELMError);
    assert.throws(() => be.linear(A(be, 7), A(be, 16), w, 1), OpenELMError);
    const guard = A(be, 8);
    be.linear(A(be, 0), A(be, 0), w, 0);   // no rows: nothing written anywhere
    assert.ok(guard.every((v) => v === 0));
    assert.throws(() => be.attention(A(be, 16), A(be, 64), A(be, 64), A(be, 64), 2, 3, 2, 2, 4, 4), OpenELMError);
    be.dispose();
    assert.throws(() => A(be, 4), /disposed/);
  } finally {
    be.dispose();
  }
});

// ------------------------------------------------------------------------------------------------
// whole models

for (const cfg of WASM_CONFIGS) {
  test(`a tiny model gives the reference logits, prefill and cached decode (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    for (const hf of [{}, { num_gqa_groups: 1, normalize_qk_projections: false, ffn_with_glu: false }]) {
      const ref = tinyModel(hf, 1).model;
      const got = tinyModel(hf, 1, be).model;
      const V = ref.config.vocabSize;
      assertClose(await got.logitsAll(toks), await ref.logitsAll(toks), TOL.fastVsRef, `logitsAll ${JSON.stringify(hf)}`);
      const cr = ref.newCache(32), cw = got.newCache(32);
      await ref.forward([{ cache: cr, tokens: toks.slice(0, 4) }]);
      await got.forward([{ cache: cw, tokens: toks.slice(0, 4) }]);
      for (let i = 4; i < toks.length; i++) {
        const a = await got.forward([{ cache: cw, tokens: [toks[i]] }]), b = await ref.forward([{ cache: cr, tokens: [toks[i]] }]);
        assert.equal(a.length, V);
        assertClose(a, b, TOL.fastVsRef, `decode step ${i}`);
      }
    }
  });
}

/** The model's linear weights converted to `dtype` (quantized from the f32 values) on `be`. */
function convertWeights(w: ModelWeights, dtype: WeightDType, be: Backend): ModelWeights {
  const seen = new Map<Weight, Weight>();
  const conv = (x: Weight): Weight => {
    let y = seen.get(x);
    if (!y) {
      y = be.allocWeight(dtype, x.rows, x.cols);
      setWeightRows(y, 0, x.data as Float32Array);
      be.prepareWeight(y);
      seen.set(x, y);
    }
    return y;
  };
  return {
    embed: conv(w.embed), head: conv(w.head), norm: w.norm,
    layers: w.layers.map((l) => ({ ...l, qkv: conv(l.qkv), out: conv(l.out), proj1: conv(l.proj1), proj2: conv(l.proj2) })),
  };
}

async function greedy(model: OpenELM, prompt: number[], steps: number): Promise<{ ids: number[]; gaps: number[] }> {
  const cache = model.newCache(prompt.length + steps);
  let logits = await model.forward([{ cache, tokens: prompt }]);
  const ids: number[] = [], gaps: number[] = [];
  for (let s = 0; s < steps; s++) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    let second = -Infinity;
    for (let i = 0; i < logits.length; i++) if (i !== best && logits[i] > second) second = logits[i];
    ids.push(best);
    gaps.push(logits[best] - second);
    logits = await model.forward([{ cache, tokens: [best] }]);
  }
  return { ids, gaps };
}

test('q8 keeps the greedy tokens of f32 for 32 steps on a tiny model; q4 KL is reported', async (t) => {
  const be = await cachedWasm(WASM_CONFIGS[1]);
  // A random tiny model has near-ties between its top logits, and q8 moves logits by ~3% of their
  // spread here (weight quantization alone ~2%), so agreement is only meaningful where f32 is
  // decisive: take the first seed whose f32 greedy path (judged on f32 alone) keeps a top-1 margin
  // of at least 0.2 logits over 32 steps and is not a single repeated token.
  const prompt = [1, 42, 7, 99];
  let f32: OpenELM | null = null, base: Awaited<ReturnType<typeof greedy>> | null = null, seed = 0;
  for (seed = 1; seed <= 64 && !f32; seed++) {
    const m = tinyModel({}, seed, be).model;
    const g = await greedy(m, prompt, 32);
    if (Math.min(...g.gaps) >= 0.2 && new Set(g.ids).size >= 3) { f32 = m; base = g; }
  }
  assert.ok(f32 && base, 'no tiny model among 64 seeds has a decisive greedy path');
  t.diagnostic(`seed ${seed - 1}: smallest f32 top-1/top-2 gap ${Math.min(...base.gaps).toFixed(3)}, ids ${base.ids.join(' ')}`);
  const q8 = new OpenELM(f32.config, be, convertWeights(f32.weights, 'q8', be));
  const r8 = await greedy(q8, prompt, 32);
  assert.deepEqual(r8.ids, base.ids);
  // q4: mean KL(p_f32 || p_q4) over the next-token distributions along the f32 greedy path
  const q4 = new OpenELM(f32.config, be, convertWeights(f32.weights, 'q4', be));
  const seq = [...prompt, ...base.ids];
  const lf = await f32.logitsAll(seq), l4 = await q4.logitsAll(seq), l8 = await q8.logitsAll(seq);
  const V = f32.config.vocabSize;
  const kl = (a: Float32Array, b: Float32Array) => {
    let total = 0;
    const rows = a.length / V;
    for (let r = 0; r < rows; r++) {
      const pa = softmax(a.subarray(r * V, (r + 1) * V)), pb = softmax(b.subarray(r * V, (r + 1) * V));
      for (let i = 0; i < V; i++) if (pa[i] > 0) total += pa[i] * (Math.log(pa[i]) - Math.log(pb[i]));
    }
    return total / rows;
  };
  const kl4 = kl(lf, l4), kl8 = kl(lf, l8);
  t.diagnostic(`mean KL(f32 || q8) = ${kl8.toExponential(3)}, mean KL(f32 || q4) = ${kl4.toExponential(3)} nats over ${seq.length} positions`);
  assert.ok(Number.isFinite(kl4) && kl4 >= 0 && kl4 < 1, `q4 KL ${kl4}`);
  assert.ok(kl8 < kl4, 'q8 is closer to f32 than q4');
});

function softmax(x: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of x) m = Math.max(m, v);
  const p = new Float64Array(x.length);
  let s = 0;
  for (let i = 0; i < x.length; i++) { p[i] = Math.exp(x[i] - m); s += p[i]; }
  for (let i = 0; i < x.length; i++) p[i] /= s;
  return p;
}

// ------------------------------------------------------------------------------------------------
// selection, lifecycle, build

test('createBackend picks js, wasm or auto and validates threads', async () => {
  const a = await createBackend('js');
  assert.equal(a.name, 'js');
  const b = await createBackend('wasm', { threads: 2 });
  assert.equal(b.name, 'wasm');
  assert.equal(b.threads, 2);
  b.dispose();
  const c = await createBackend('auto', { threads: 1 });
  assert.equal(c.name, 'wasm');
  c.dispose();
  for (const threads of [0, -1, 1.5, NaN]) {
    await assert.rejects(createBackend('wasm', { threads }), (e: unknown) => e instanceof OpenELMError && /threads/.test(e.message));
  }
  await assert.rejects(createBackend('gpu' as 'js'), OpenELMError);
});

test('workers never keep the process alive, even without dispose()', () => {
  const url = new URL('../src/backends/wasm/wasm-backend.js', import.meta.url).href;
  const platform = new URL('../src/platform/node.js', import.meta.url).href;
  const code = `const { WasmBackend } = await import(${JSON.stringify(url)});
    const { nodePlatform } = await import(${JSON.stringify(platform)});
    const be = await WasmBackend.create({ threads: 2, parallelThreshold: 0, spawnWorker: nodePlatform.spawnKernelWorker });
    const x = be.alloc(4096); x.fill(1); be.add(x, x, 4096);
    console.log(x[4095]);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.error, undefined, 'the child process exited by itself');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '2');
});

test('lateWorkers: kernel calls run before the workers are up, with the same results; sync() waits for them', async () => {
  const { nodePlatform } = await import('../src/platform/node.js');
  const { WasmBackend } = await import('../src/backends/wasm/wasm-backend.js');
  const n = 1 << 16, rng = new Rng(7);
  const a = randn(rng, n), b = randn(rng, n);
  const sums: Float32Array[] = [];
  for (const lateWorkers of [false, true]) {
    const be = await WasmBackend.create({ threads: 2, parallelThreshold: 0, spawnWorker: nodePlatform.spawnKernelWorker, lateWorkers });
    try {
      // at once, whether a worker runs yet or not
      const x = A(be, n), y = A(be, n);
      x.set(a); y.set(b);
      be.add(x, y, n);
      sums.push(x.slice());
      await be.sync();
      // and once they all run, they take chunks
      for (let i = 0; i < 200 && be.callStats().workerChunks === 0; i++) { be.add(x, y, n); await new Promise((r) => setTimeout(r, 1)); }
      assert.ok(be.callStats().workerChunks > 0, 'a worker took chunks after sync()');
    } finally { be.dispose(); }
  }
  assert.deepEqual(sums[1], sums[0]);
});

test('lateWorkers: a worker that cannot start leaves the backend running on this thread, and sync() says why', async () => {
  const { WasmBackend } = await import('../src/backends/wasm/wasm-backend.js');
  const spawnWorker = () => ({
    onMessage: () => {}, onError: () => {}, unref: () => {}, terminate: () => {},
    onExit: (cb: (code: number) => void) => { setTimeout(() => cb(1), 0); },
  });
  const be = await WasmBackend.create({ threads: 2, parallelThreshold: 0, spawnWorker, lateWorkers: true });
  try {
    const x = A(be, 4096);
    x.fill(1);
    be.add(x, x, 4096);
    assert.equal(x[4095], 2);
    await assert.rejects(be.sync(), (e: unknown) => e instanceof OpenELMError && /cannot start wasm kernel workers: worker exited with code 1/.test(e.message));
    // still refused later, and calls still run
    await assert.rejects(be.sync(), OpenELMError);
    be.add(x, x, 4096);
    assert.equal(x[0], 4);
  } finally { be.dispose(); }
  // without lateWorkers, create() itself refuses
  await assert.rejects(WasmBackend.create({ threads: 2, spawnWorker }), (e: unknown) => e instanceof OpenELMError && /cannot start wasm kernel workers/.test(e.message));
});

test('lateWorkers: disposed before the workers are up, nothing is reported and the process exits', () => {
  const url = new URL('../src/backends/wasm/wasm-backend.js', import.meta.url).href;
  const platform = new URL('../src/platform/node.js', import.meta.url).href;
  const code = `const { WasmBackend } = await import(${JSON.stringify(url)});
    const { nodePlatform } = await import(${JSON.stringify(platform)});
    process.on('unhandledRejection', (e) => { console.log('unhandled', e); process.exitCode = 3; });
    const be = await WasmBackend.create({ threads: 2, parallelThreshold: 0, spawnWorker: nodePlatform.spawnKernelWorker, lateWorkers: true });
    be.dispose();
    await be.sync();
    const be2 = await WasmBackend.create({ threads: 2, parallelThreshold: 0, spawnWorker: nodePlatform.spawnKernelWorker, lateWorkers: true });
    const x = be2.alloc(4096); x.fill(1); be2.add(x, x, 4096);
    console.log(x[4095]);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.error, undefined, 'the child process exited by itself');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal(r.stdout.trim(), '2');
});

test('the embedded kernels match their AssemblyScript sources', () => {
  const out = execFileSync(process.execPath, [join(repoRoot, 'scripts', 'build-wasm.mjs'), '--check'], { encoding: 'utf8', cwd: repoRoot });
  assert.match(out, /matches/);
});
