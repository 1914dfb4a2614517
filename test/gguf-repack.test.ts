// Q8_0 and Q4_0 regrouped (src/backends/gguf-repack.ts), as the wasm backend holds GGUF Q8_0 and
// Q4_0 weights: the regrouping and its inverse give back every stored byte (any half, in place as
// the backend does it), hosts decode the regrouped data to the stored values, and every kernel runs
// on the regrouped layout what it ran on the stored one: the same results bit for bit, but for
// Q4_0's int8 GEMV, whose four blocks per multiply-add round differently (by f32 rounding only).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { BlockDType, Weight } from '../src/backends/backend.js';
import { HALF_NONFINITE, HALF_SLOW, Q4_0_BYTES, Q8_0_BYTES, q4_0HalfBits, q8_0HalfBit, q8_0HalfBits, repackQ4_0, repackQ8_0, unpackQ4_0, unpackQ8_0, unpackQ8_0Blocks } from '../src/backends/gguf-repack.js';
import { DTYPE_CODE } from '../src/backends/wasm/kernels.js';
import type { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import { blockRowToF32, weightRowToF32 } from '../src/backends/weight-format.js';
import { f32ToF16 } from '../src/core/dtype.js';
import { Rng } from '../src/core/rng.js';
import { WASM_CONFIGS, cachedWasm, disposeCachedWasm, f32, own } from './helpers/backends.js';
import { blockWeightOn, randomBlocks } from './helpers/blocks.js';

after(disposeCachedWasm);

/** f32 arrays equal bit for bit (NaNs by their bits). */
function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.deepEqual(new Uint32Array(a.buffer, a.byteOffset, a.length), new Uint32Array(b.buffer, b.byteOffset, b.length), what);
}

// every half class: zero, subnormal, normal, infinity, NaN, both signs
const SPECIAL = [0x0000, 0x8000, 0x0001, 0x83ff, 0x0400, 0x3c00, 0xfbff, 0x7c00, 0xfc00, 0x7e01, 0xfd55, 0x0200];
// the finite ones (a Q8_0 weight with an infinite or NaN d stays as stored)
const FINITE = SPECIAL.filter((h) => (h & 0x7c00) !== 0x7c00);

const BYTES = { q8_0: Q8_0_BYTES, q4_0: Q4_0_BYTES } as const;
const regroup = (dtype: 'q8_0' | 'q4_0', src: Uint8Array, dst: Uint8Array, rows: number, nb: number) =>
  dtype === 'q8_0' ? repackQ8_0(src, dst, rows * nb) : repackQ4_0(src, dst, rows, nb);
const ungroup = (dtype: 'q8_0' | 'q4_0', src: Uint8Array, dst: Uint8Array, rows: number, nb: number) =>
  dtype === 'q8_0' ? unpackQ8_0(src, dst, rows * nb) : unpackQ4_0(src, dst, rows, nb);

/** Stored blocks with every special half as some block's d, and (Q8_0) levels −128 and 127. */
function oddBlocks(rng: Rng, dtype: 'q8_0' | 'q4_0', rows: number, cols: number, halves: number[]): Uint8Array {
  const b = randomBlocks(rng, dtype, rows, cols), dv = new DataView(b.buffer), bb = BYTES[dtype];
  halves.forEach((h, i) => { dv.setUint16(i * 3 * bb, h, true); });
  if (dtype === 'q8_0') for (let i = 0; i < 40; i++) b[i * 7 * bb + 2 + (i % 32)] = i & 1 ? 0x80 : 0x7f;
  return b;
}

for (const dtype of ['q8_0', 'q4_0'] as const) {
  test(`regroup / ungroup ${dtype} give back every stored byte: any halves, in place too; hosts decode the regrouped layout`, () => {
    const rng = new Rng(3), rows = 7, cols = 160, nb = cols / 32;
    const stored = oddBlocks(rng, dtype, rows, cols, SPECIAL);
    const out = new Uint8Array(stored.length), back = new Uint8Array(stored.length);
    regroup(dtype, stored, out, rows, nb);
    ungroup(dtype, out, back, rows, nb);
    assert.deepEqual(back, stored);
    const inPlace = stored.slice();
    regroup(dtype, inPlace, inPlace, rows, nb);
    assert.deepEqual(inPlace, out);
    ungroup(dtype, inPlace, inPlace, rows, nb);
    assert.deepEqual(inPlace, stored);
    if (dtype === 'q8_0') {
      // q8's layout: all levels, then the halves
      for (let b = 0; b < rows * nb; b++) {
        assert.deepEqual(out.subarray(32 * b, 32 * b + 32), stored.subarray(34 * b + 2, 34 * b + 34));
        assert.deepEqual(out.subarray(32 * rows * nb + 2 * b, 32 * rows * nb + 2 * b + 2), stored.subarray(34 * b, 34 * b + 2));
      }
      // one row at a time from its levels and its halves, apart: that row's stored bytes
      const row = new Uint8Array(nb * Q8_0_BYTES);
      for (let r = 0; r < rows; r++) {
        unpackQ8_0Blocks(out.subarray(r * cols, (r + 1) * cols), out.subarray(rows * cols + r * nb * 2, rows * cols + (r + 1) * nb * 2), row, nb);
        assert.deepEqual(row, stored.subarray(r * nb * Q8_0_BYTES, (r + 1) * nb * Q8_0_BYTES), `row ${r}`);
      }
      assert.throws(() => unpackQ8_0Blocks(out.subarray(0, cols - 1), out.subarray(rows * cols, rows * cols + 2 * nb), row, nb), RangeError);
      // the halves as regrouped: an infinite or NaN d among SPECIAL's (bit 1), none among FINITE's
      const halvesOf = (g: Uint8Array) => new Uint16Array(g.slice(32 * rows * nb).buffer);
      assert.equal(q8_0HalfBits(halvesOf(out)), 3);
      const finite = new Uint8Array(stored.length);
      repackQ8_0(oddBlocks(rng, dtype, rows, cols, FINITE), finite, rows * nb);
      assert.equal(q8_0HalfBits(halvesOf(finite)), 2);
    }
    const w: Weight = { dtype, rows, cols, data: out, layout: dtype === 'q8_0' ? 'q8_0_r' : 'q4_0_r' };
    const a = new Float32Array(cols), b = new Float32Array(cols);
    for (let r = 0; r < rows; r++) {
      weightRowToF32(w, r, a);
      blockRowToF32(dtype, stored, r, cols, b);
      sameBits(a, b, `row ${r}`);
    }
  });
}

/** A weight whose packed form points at stored bytes in the backend's memory (the stored layout's kernels). */
function storedOn(be: WasmBackend, dtype: BlockDType, N: number, K: number, stored: Uint8Array): { w: Weight; free: () => void } {
  const t = be.alloc(Math.ceil(stored.length / 4)), tv = f32(t);
  new Uint8Array(tv.buffer, tv.byteOffset, stored.length).set(stored);
  const w: Weight = { dtype, rows: N, cols: K, data: stored.slice() };
  be.prepareWeight(w);
  Object.assign(w.packed as object, { dtype: DTYPE_CODE[dtype as 'q8_0'], data: tv.byteOffset, scales: 0, mins: 0, q80r: undefined });
  return { w, free: () => { be.freeWeight(w); be.free(t); } };
}

for (const cfg of WASM_CONFIGS) {
  for (const dtype of ['q8_0', 'q4_0'] as const) {
    test(`wasm holds ${dtype} regrouped in place; its kernels give the stored layout's results (${cfg.label})`, async () => {
      const be = await cachedWasm(cfg);
      const rng = new Rng(11), N = 37, K = 352, nb = K / 32;   // nb = 11: four-block steps and a tail
      const lay = dtype === 'q8_0' ? 'q8_0_r' : 'q4_0_r';
      for (const halves of [[], FINITE]) {
        const stored = halves.length ? oddBlocks(rng, dtype, N, K, halves) : randomBlocks(rng, dtype, N, K);
        const w = blockWeightOn(be, dtype, N, K, stored);
        assert.equal(w.layout, lay);
        assert.equal(w.data.byteLength, stored.length);
        const ref = new Uint8Array(stored.length);
        regroup(dtype, stored, ref, N, nb);
        assert.deepEqual(w.data, ref, 'the kernel and the host regroup to the same bytes');
        // preparing again (a rows weight's parts are) keeps it as it is
        be.prepareWeight(w);
        assert.deepEqual(w.data, ref);
        // a weight stored outside the backend keeps its bytes; the backend's copy is regrouped
        const outside: Weight = { dtype, rows: N, cols: K, data: stored.slice() };
        be.prepareWeight(outside);
        assert.equal(outside.layout, undefined);
        assert.deepEqual(outside.data, stored);
        const st = storedOn(be, dtype, N, K, stored);
        for (const M of [1, 2, 3, 5, 8, 11]) {
          const x = new Float32Array(M * K);
          for (let i = 0; i < x.length; i++) x[i] = rng.normal();
          for (const mode of ['int8', 'exact', 'blockInt8 off'] as const) {
            const run = (v: Weight) => {
              const o = f32(be.alloc(M * N));
              be.blockInt8 = mode !== 'blockInt8 off';
              try { be.linear(o, own(be, x), v, M, false, mode === 'exact'); } finally { be.blockInt8 = true; }
              return o.slice();
            };
            const got = run(w), what = `${halves.length ? 'special halves' : 'random'}, M ${M}, ${mode}`;
            sameBits(run(outside), got, `outside, ${what}`);
            const want = run(st.w);
            if (dtype === 'q4_0' && mode === 'int8' && M <= 8) {
              // four blocks' dots meet four d·d_x in one multiply-add: f32 rounding apart
              let err = 0, mag = 0;
              for (let i = 0; i < M * N; i++) { err = Math.max(err, Math.abs(got[i] - want[i])); mag = Math.max(mag, Math.abs(want[i])); }
              assert.ok(err <= 1e-5 * mag, `${what}: ${err} of ${mag}`);
            } else sameBits(got, want, what);
            // each token of a 2-8-token call is the one-token result
            if (M > 1 && M <= 8) {
              for (let m = 0; m < M; m++) {
                const o = f32(be.alloc(N));
                be.blockInt8 = mode !== 'blockInt8 off';
                try { be.linear(o, own(be, x.subarray(m * K, (m + 1) * K)), w, 1, false, mode === 'exact'); } finally { be.blockInt8 = true; }
                sameBits(got.subarray(m * N, (m + 1) * N), o, `${what}: token ${m} alone`);
              }
            }
          }
        }
        // the embedding rows (the exact decoder) are the stored values
        const ids = Int32Array.from([0, 36, 5, 5, 17]), e = f32(be.alloc(ids.length * K));
        be.embedding(e, w, ids);
        const row = new Float32Array(K);
        ids.forEach((id, i) => { blockRowToF32(dtype, stored, id, K, row); sameBits(e.subarray(i * K, (i + 1) * K), row, `embedding row ${id}`); });
        be.freeWeight(w); be.freeWeight(outside); st.free();
      }
    });
  }

  test(`q8_0 with an infinite or NaN d stays as stored; the halves' fast flag is computed, results the same either way (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(12), N = 9, K = 256;
    const inf = oddBlocks(rng, 'q8_0', N, K, [0x7c00]);
    const wi = blockWeightOn(be, 'q8_0', N, K, inf);
    assert.equal(wi.layout, undefined);
    assert.deepEqual(wi.data, inf);
    assert.equal((wi.packed as { dtype: number }).dtype, DTYPE_CODE.q8_0);
    be.freeWeight(wi);
    // the same bytes from outside the backend's memory: the copy it regrouped is given back
    const used = be.memory().inUse, nan = oddBlocks(rng, 'q8_0', N, K, [0x7e01]);
    const wn: Weight = { dtype: 'q8_0', rows: N, cols: K, data: nan.slice() };
    be.prepareWeight(wn);
    assert.equal(wn.layout, undefined);
    assert.deepEqual(wn.data, nan);
    assert.equal((wn.packed as { dtype: number }).dtype, DTYPE_CODE.q8_0);
    be.freeWeight(wn);
    assert.equal(be.memory().inUse, used);
    // a zero d over zero levels keeps the fast widening (its products are 0 either way)
    const zero = oddBlocks(rng, 'q8_0', N, K, []), zv = new DataView(zero.buffer);
    for (let b = 0; b < (N * K) / 32; b++) zv.setUint16(b * Q8_0_BYTES, f32ToF16(0.001 + 0.01 * rng.next()), true);
    zero.fill(0, 3 * Q8_0_BYTES, 4 * Q8_0_BYTES);
    const wz = blockWeightOn(be, 'q8_0', N, K, zero);
    assert.equal(wz.layout, 'q8_0_r');
    assert.equal((wz.packed as { mins: number }).mins, 1);
    be.freeWeight(wz);
    for (const dtype of ['q8_0', 'q4_0'] as const) {
      // q8_0: all d positive normal halves take the fast widening, one subnormal, zero or negative d
      // the exact one; q4_0: normal halves of either sign (llama-quantize's d = max/−8 is negative in
      // about half of the blocks) the fast one, a subnormal or zero d the exact one
      const pos = randomBlocks(rng, dtype, N, K), dv = new DataView(pos.buffer);
      const sign = () => (dtype === 'q4_0' && rng.next() < 0.5 ? -1 : 1);
      for (let b = 0; b < (N * K) / 32; b++) dv.setUint16(b * BYTES[dtype], f32ToF16(sign() * (0.001 + 0.01 * rng.next())), true);
      const x = own(be, Float32Array.from({ length: K }, () => rng.normal()));
      const w = blockWeightOn(be, dtype, N, K, pos), p = w.packed as { mins: number };
      assert.equal(p.mins, 1, `${dtype}: normal halves`);
      const a = f32(be.alloc(N)), b = f32(be.alloc(N));
      be.linear(a, x, w, 1);
      p.mins = 0;
      be.linear(b, x, w, 1);
      sameBits(a, b, `${dtype}: the fast and the exact widening`);
      for (const h of [0x0001, 0xbc00, 0x0000]) {
        const odd = pos.slice();
        new DataView(odd.buffer).setUint16(5 * BYTES[dtype], h, true);
        const wo = blockWeightOn(be, dtype, N, K, odd);
        // (q8: 0 over a block of zero levels would still be fast; these levels are random)
        assert.equal((wo.packed as { mins: number }).mins, dtype === 'q4_0' && h === 0xbc00 ? 1 : 0, `${dtype}: d ${h.toString(16)}`);
        be.freeWeight(wo);
      }
      be.freeWeight(w);
    }
  });

  test(`the kernels' in-place regroupings and the host's rules flag every kind of d alike (${cfg.label})`, async () => {
    // one d of each kind among positive normal ones: the flag from the kernels' regrouping (storage
    // from allocWeight) is the host's rule's, and so is the one the host computes for a weight that
    // comes regrouped with no flags (Q4_0's d's at the head of each row: the d is in row 2)
    const be = await cachedWasm(cfg);
    const rng = new Rng(13), N = 3, K = 64, nb = K / 32;
    const fast = (w: Weight) => (w.packed as { mins: number }).mins;
    for (const dtype of ['q8_0', 'q4_0'] as const) {
      for (const h of SPECIAL) {
        const st = randomBlocks(rng, dtype, N, K), dv = new DataView(st.buffer);
        for (let b = 0; b < N * nb; b++) dv.setUint16(b * BYTES[dtype], 0x3c00, true);
        dv.setUint16(4 * BYTES[dtype], h, true);
        const what = `${dtype}: d ${h.toString(16)}`;
        const wk = blockWeightOn(be, dtype, N, K, st);
        const bits = dtype === 'q8_0' ? q8_0HalfBit(h) : q4_0HalfBits(Uint16Array.of(h));
        // (Q8_0 with an infinite or NaN d stays as stored)
        assert.equal(wk.layout === undefined, (bits & HALF_NONFINITE) !== 0, what);
        if (!(bits & HALF_NONFINITE)) {
          assert.equal(fast(wk), bits & HALF_SLOW ? 0 : 1, what);
          const g = new Uint8Array(st.length);
          regroup(dtype, st, g, N, nb);
          const wh: Weight = { dtype, rows: N, cols: K, data: g, layout: dtype === 'q8_0' ? 'q8_0_r' : 'q4_0_r' };
          be.prepareWeight(wh);
          assert.equal(fast(wh), fast(wk), `${what}, regrouped outside`);
          be.freeWeight(wh);
        }
        be.freeWeight(wk);
      }
    }
  });
}
