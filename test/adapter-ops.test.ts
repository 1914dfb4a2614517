// The adapter ops of the Backend interface (linearT, mulColumns, columnDot, dropoutMask,
// doraScale) on every backend of BACKEND_CASES against plain float64 loops written here, on odd
// shapes, overwriting and accumulating; the dropout hash against its definition; and the WASM
// kernels giving the same bits whatever the thread count.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/core/rng.js';
import type { Backend, Tensor, WeightDType } from '../src/backends/backend.js';
import { allocWeightStorage, setWeightRows, weightRowToF32 } from '../src/backends/weight-format.js';
import { dropoutHash, dropoutThreshold, dropoutValues, lowbias32, mixSeed } from '../src/backends/dropout.js';
import { wasmAvailable } from '../src/backends/wasm/kernels.js';
import { BACKEND_CASES, createWasm } from './helpers/backends.js';
import { TOL, assertClose, type Tol } from './tolerances.js';

const rng = new Rng(97);
const randn = (n: number, s = 1): Float32Array => Float32Array.from({ length: n }, () => s * rng.normal());
const put = (be: Backend, a: ArrayLike<number>): Tensor => { const t = be.alloc(a.length); be.write(t, a); return t; };
/** f32 products of one rounding: what every backend computes within. */
const OPTOL: Tol = { atol: 1e-5, rtol: 1e-5 };

function hostWeight(dtype: WeightDType, rows: number, cols: number, values: Float32Array): { w: ReturnType<typeof allocWeightStorage>; dec: Float32Array } {
  const w = allocWeightStorage(dtype, rows, cols);
  setWeightRows(w, 0, values);
  const dec = new Float32Array(rows * cols), row = new Float32Array(cols);
  for (let r = 0; r < rows; r++) { weightRowToF32(w, r, row); dec.set(row, r * cols); }
  return { w, dec };
}

test('the dropout hash is lowbias32 applied as documented, drops about p of the elements, and seeds decorrelate', () => {
  // lowbias32 reference values (Wellons' hash-prospector), computed independently with BigInt
  const lb = (x: bigint): bigint => {
    const M = 0xffffffffn;
    x ^= x >> 16n; x = (x * 0x7feb352dn) & M; x ^= x >> 15n; x = (x * 0x846ca68bn) & M; x ^= x >> 16n;
    return x;
  };
  for (const x of [0, 1, 2, 12345, 0x7fffffff, 0xffffffff]) assert.equal(lowbias32(x), Number(lb(BigInt(x))));
  for (const [seed, i] of [[0, 0], [7, 3], [0xdeadbeef, 0xfffffff0]]) {
    const s = lb(BigInt(seed));
    const want = lb((lb((BigInt(i) + s) & 0xffffffffn)) ^ s);
    assert.equal(dropoutHash(seed, i), Number(want));
  }
  const n = 200000, t = dropoutThreshold(0.1);
  let dropped = 0, both = 0;
  for (let i = 0; i < n; i++) {
    const a = dropoutHash(11, i) < t, b = dropoutHash(12, i) < t;
    if (a) dropped++;
    if (a && b) both++;
  }
  assert.ok(Math.abs(dropped / n - 0.1) < 0.004, `drop rate ${dropped / n}`);
  assert.ok(Math.abs(both / n - 0.01) < 0.002, `two seeds overlap ${both / n} (independent: 0.01)`);
  assert.equal(dropoutThreshold(0), 0);
  assert.notEqual(mixSeed(1, 2, 3), mixSeed(1, 3, 2));
  const v = dropoutValues(0.1, false), c = dropoutValues(0.1, true);
  assert.equal(v.kept, Math.fround(1 / 0.9));
  assert.equal(v.dropped, 0);
  assert.equal(c.dropped, 1);
  assert.ok(Math.abs(v.kept + c.kept - 1) < 1e-7);
});

for (const bc of BACKEND_CASES) {
  const skip = bc.available() ?? false;

  test(`[${bc.name}] linearT: dy·W for every weight dtype, odd shapes, overwriting and accumulating`, { skip }, async () => {
    const be = await bc.make();
    try {
      for (const dtype of ['f32', 'bf16', 'f16', 'q8', 'q4'] as const) {
        for (const [M, N, K] of [[1, 3, 32], [7, 5, 64], [33, 70, 96], [130, 17, 160]]) {
          const { w: hw, dec } = hostWeight(dtype, N, K, randn(N * K, 0.5));
          const w = be.allocWeight(dtype, N, K);
          w.data.set(hw.data as never);
          if (hw.scales) w.scales!.set(hw.scales);
          be.prepareWeight(w);
          const dy = randn(M * N), init = randn(M * K);
          for (const acc of [false, true]) {
            const want = new Float64Array(M * K);
            for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) {
              let s = acc ? init[m * K + k] : 0;
              for (let n = 0; n < N; n++) s += dy[m * N + n] * dec[n * K + k];
              want[m * K + k] = s;
            }
            const out = put(be, init);
            be.linearT(out, put(be, dy), w, M, acc);
            assertClose(await be.read(out), want, bc.name === 'js' ? OPTOL : TOL.fastVsRef, `${dtype} ${M}×${N}×${K} acc=${acc}`);
          }
          be.freeWeight(w);
        }
      }
    } finally { be.dispose(); }
  });

  test(`[${bc.name}] linear with exact: f32 products on the decoded weight for every dtype (no int8 activations)`, { skip }, async () => {
    const be = await bc.make();
    try {
      for (const dtype of ['f32', 'bf16', 'f16', 'q8', 'q4'] as const) {
        for (const [M, N, K] of [[1, 5, 32], [3, 17, 64], [9, 33, 96], [70, 40, 128]]) {
          const { w: hw, dec } = hostWeight(dtype, N, K, randn(N * K, 0.5));
          const w = be.allocWeight(dtype, N, K);
          w.data.set(hw.data as never);
          if (hw.scales) w.scales!.set(hw.scales);
          be.prepareWeight(w);
          // activations with an outlier per row: int8 quantization of x would show
          const x = randn(M * K);
          for (let m = 0; m < M; m++) x[m * K + (m % K)] = 40;
          const want = new Float64Array(M * N);
          for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
            let s = 0;
            for (let k = 0; k < K; k++) s += x[m * K + k] * dec[n * K + k];
            want[m * N + n] = s;
          }
          const out = be.alloc(M * N);
          be.linear(out, put(be, x), w, M, false, true);
          assertClose(await be.read(out), want, bc.name === 'js' ? OPTOL : TOL.fastVsRef, `${dtype} ${M}×${N}×${K}`);
          be.freeWeight(w);
        }
      }
    } finally { be.dispose(); }
  });

  test(`[${bc.name}] mulColumns and columnDot: per-column scale and column dot products`, { skip }, async () => {
    const be = await bc.make();
    try {
      for (const [rows, cols] of [[1, 1], [1, 37], [5, 3], [19, 300], [64, 513]]) {
        const x = randn(rows * cols), s = randn(cols), init = randn(rows * cols);
        for (const acc of [false, true]) {
          const want = Float64Array.from(init, (v, i) => (acc ? v : 0) + x[i] * s[i % cols]);
          const out = put(be, init);
          be.mulColumns(out, put(be, x), put(be, s), rows, cols, acc);
          assertClose(await be.read(out), want, OPTOL, `mulColumns ${rows}×${cols} acc=${acc}`);
        }
        // in place
        const xi = put(be, x);
        be.mulColumns(xi, xi, put(be, s), rows, cols);
        assertClose(await be.read(xi), Float64Array.from(x, (v, i) => v * s[i % cols]), OPTOL, `mulColumns in place ${rows}×${cols}`);

        const a = randn(rows * cols), b = randn(rows * cols), o0 = randn(cols);
        for (const acc of [false, true]) {
          const want = new Float64Array(cols);
          for (let j = 0; j < cols; j++) {
            let t = 0;
            for (let r = 0; r < rows; r++) t += a[r * cols + j] * b[r * cols + j];
            want[j] = (acc ? o0[j] : 0) + t;
          }
          const out = put(be, o0);
          be.columnDot(out, put(be, a), put(be, b), rows, cols, acc);
          assertClose(await be.read(out), want, OPTOL, `columnDot ${rows}×${cols} acc=${acc}`);
        }
      }
    } finally { be.dispose(); }
  });

  test(`[${bc.name}] dropoutMask gives the hash's mask exactly, and its complement`, { skip }, async () => {
    const be = await bc.make();
    try {
      for (const [n, p, seed] of [[1, 0.5, 3], [37, 0.1, 0xfffffff7], [10007, 0.25, 42], [4096, 0, 9]] as const) {
        const t = dropoutThreshold(p);
        for (const complement of [false, true]) {
          const { kept, dropped } = dropoutValues(p, complement);
          const want = Float32Array.from({ length: n }, (_, i) => (dropoutHash(seed, i) >= t ? kept : dropped));
          const out = be.alloc(n + 3);
          be.fill(out, 7);
          be.dropoutMask(out, n, p, seed, complement);
          const got = await be.read(out);
          assert.deepEqual(got.subarray(0, n), want, `n=${n} p=${p} complement=${complement}`);
          assert.deepEqual(Array.from(got.subarray(n)), [7, 7, 7], 'values past n are untouched');
        }
      }
      assert.throws(() => be.dropoutMask(be.alloc(4), 4, 1, 0, false), /dropout probability/);
    } finally { be.dispose(); }
  });

  test(`[${bc.name}] doraScale: 1/sqrt(base2 + coef·q) and m times it`, { skip }, async () => {
    const be = await bc.make();
    try {
      const n = 37, m = randn(n), q = randn(n, 0.1), base2 = Float32Array.from(randn(n), (v) => 1 + v * v);
      const c = be.alloc(n), inv = be.alloc(n);
      be.doraScale(c, inv, put(be, m), put(be, base2), put(be, q), n, 0.5);
      const wantInv = Float64Array.from(base2, (b, j) => 1 / Math.sqrt(b + 0.5 * q[j]));
      assertClose(await be.read(inv), wantInv, OPTOL, 'invN');
      assertClose(await be.read(c), wantInv.map((v, j) => v * m[j]), OPTOL, 'c');
    } finally { be.dispose(); }
  });
}

const backends: Backend[] = [];
after(() => { for (const b of backends) b.dispose(); });

test('WASM adapter kernels give the same bits on 1 and 3 threads', { skip: !wasmAvailable() }, async () => {
  const one = await createWasm({ threads: 1 }), three = await createWasm({ threads: 3, parallelThreshold: 0 });
  backends.push(one, three);
  const rows = 301, cols = 777;
  const a = randn(rows * cols), b = randn(rows * cols), s = randn(cols);
  const run = async (be: Backend) => {
    const cd = be.alloc(cols), mc = be.alloc(rows * cols), mk = be.alloc(rows * cols);
    be.columnDot(cd, put(be, a), put(be, b), rows, cols);
    be.mulColumns(mc, put(be, a), put(be, s), rows, cols);
    be.dropoutMask(mk, rows * cols, 0.3, 5, true);
    return [await be.read(cd), await be.read(mc), await be.read(mk)];
  };
  const [x, y] = [await run(one), await run(three)];
  for (let i = 0; i < x.length; i++) assert.deepEqual(x[i], y[i]);
});
