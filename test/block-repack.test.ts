// Q4_K and Q6_K repacked (src/backends/q4k-repack.ts, q6k-repack.ts), as the wasm backend holds GGUF
// Q4_K and Q6_K weights: the repack and its inverse give back every stored byte (any half, NaN and
// subnormal included; in place as the backend does it), hosts decode the repacked data to the stored
// values, and every kernel gives on the repacked layout what it gave on the stored one, bit for bit.
// (Q8_0 and Q4_0 regrouped: test/gguf-repack.test.ts.)

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Weight } from '../src/backends/backend.js';
import { Q4K_BYTES, Q4KR_BYTES, repackQ4K, unpackQ4K } from '../src/backends/q4k-repack.js';
import { Q6K_BYTES, Q6KR_BYTES, repackQ6K, unpackQ6K } from '../src/backends/q6k-repack.js';
import { DTYPE_CODE } from '../src/backends/wasm/kernels.js';
import { blockRowToF32, weightRowToF32 } from '../src/backends/weight-format.js';
import { Rng } from '../src/core/rng.js';
import { WASM_CONFIGS, cachedWasm, disposeCachedWasm, f32, own } from './helpers/backends.js';
import { blockWeightOn, randomBlocks } from './helpers/blocks.js';

after(disposeCachedWasm);

interface Repacked {
  dtype: 'q4_k' | 'q6_k';
  layout: 'q4_k_r' | 'q6_k_r';
  stored: number;
  held: number;
  repack: (src: Uint8Array, dst: Uint8Array, nsb: number) => void;
  unpack: (src: Uint8Array, dst: Uint8Array, nsb: number) => void;
  /** Offsets of the halves in a stored super-block, and of the first of them as f32 in a repacked one. */
  halves: number[];
  f32At: number;
  /** The layout's other fields, checked for super-block b. */
  fields: (out: Uint8Array, stored: Uint8Array, b: number) => void;
  /** Whether the integer GEMM of prompts also reads the stored layout (kernel code of the dtype). */
  gemmReadsStored: boolean;
}

const LAYOUTS: Repacked[] = [
  {
    dtype: 'q4_k', layout: 'q4_k_r', stored: Q4K_BYTES, held: Q4KR_BYTES, repack: repackQ4K, unpack: unpackQ4K,
    halves: [0, 2], f32At: 0, gemmReadsStored: false,
    // the scales and mins as bytes 0..63
    fields: (out, _s, b) => { for (let j = 0; j < 16; j++) assert.ok(out[b * Q4KR_BYTES + 8 + j] < 64); },
  },
  {
    dtype: 'q6_k', layout: 'q6_k_r', stored: Q6K_BYTES, held: Q6KR_BYTES, repack: repackQ6K, unpack: unpackQ6K,
    halves: [208], f32At: 208, gemmReadsStored: true,
    // the scales unchanged
    fields: (out, s, b) => assert.deepEqual(out.subarray(b * Q6KR_BYTES + 192, b * Q6KR_BYTES + 208), s.subarray(b * Q6K_BYTES + 192, b * Q6K_BYTES + 208)),
  },
];

/** An IEEE half's value. */
function f16(h: number): number {
  const e = (h >> 10) & 31, m = h & 0x3ff, s = h & 0x8000 ? -1 : 1;
  return s * (e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
}

function randomBytes(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.int(256);
  return b;
}

/** f32 arrays equal bit for bit (NaNs by their bits). */
function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.deepEqual(new Uint32Array(a.buffer, a.byteOffset, a.length), new Uint32Array(b.buffer, b.byteOffset, b.length), what);
}

// every half class: zero, subnormal, normal, infinity, NaN, both signs
const SPECIAL = [0x0000, 0x8000, 0x0001, 0x83ff, 0x0400, 0x3c00, 0xfbff, 0x7c00, 0xfc00, 0x7e01, 0xfd55, 0x0200];

for (const L of LAYOUTS) {
  test(`${L.layout}: repack / unpack give back every stored byte: any halves (NaN, infinity, subnormal), in place too`, () => {
    const rng = new Rng(7), nsb = 300;
    const stored = randomBytes(rng, nsb * L.stored);
    const dv = new DataView(stored.buffer);
    L.halves.forEach((o, k) => { SPECIAL.forEach((h, i) => { dv.setUint16((i + 20 * k) * L.stored + o, h, true); }); });
    const out = new Uint8Array(nsb * L.held);
    L.repack(stored, out, nsb);
    const back = new Uint8Array(nsb * L.stored);
    L.unpack(out, back, nsb);
    assert.deepEqual(back, stored);
    // in place: the stored bytes at the start of room for the repacked ones, as allocWeight leaves it
    const room = new Uint8Array(nsb * L.held);
    room.set(stored);
    L.repack(room.subarray(0, nsb * L.stored), room, nsb);
    assert.deepEqual(room, out);
    // the first half as an f32 of the same value, and the layout's other fields
    const rv = new DataView(out.buffer);
    for (let b = 0; b < nsb; b++) {
      L.fields(out, stored, b);
      const d = rv.getFloat32(b * L.held + L.f32At, true), h = dv.getUint16(b * L.stored + L.halves[0], true);
      if ((h & 0x7c00) !== 0x7c00) assert.equal(d, f16(h));
    }
  });

  test(`a ${L.layout} weight decodes on the host (weightRowToF32) to the stored values, bit for bit`, () => {
    const rng = new Rng(8), rows = 5, cols = 512;
    const stored = randomBlocks(rng, L.dtype, rows, cols), nsb = (rows * cols) / 256;
    const data = new Uint8Array(nsb * L.held);
    L.repack(stored, data, nsb);
    const w: Weight = { dtype: L.dtype, rows, cols, data, layout: L.layout };
    const a = new Float32Array(cols), b = new Float32Array(cols);
    for (let r = 0; r < rows; r++) {
      weightRowToF32(w, r, a);
      blockRowToF32(L.dtype, stored, r, cols, b);
      sameBits(a, b, `row ${r}`);
    }
  });

  for (const cfg of WASM_CONFIGS) {
    test(`wasm holds ${L.dtype} repacked in place, and its kernels give the stored layout's results bit for bit (${cfg.label})`, async () => {
      const be = await cachedWasm(cfg);
      const rng = new Rng(9), N = 37, K = 768, nsb = (N * K) / 256;
      const stored = randomBlocks(rng, L.dtype, N, K);
      const w = blockWeightOn(be, L.dtype, N, K, stored);
      assert.equal(w.layout, L.layout);
      assert.equal(w.data.byteLength, nsb * L.held);
      const back = new Uint8Array(nsb * L.stored);
      L.unpack(w.data as Uint8Array, back, nsb);
      assert.deepEqual(back, stored);
      // any half (the kernel repacks in place): NaN payloads, infinities, subnormals
      const odd = randomBlocks(rng, L.dtype, 2, 1536), ov = new DataView(odd.buffer);
      SPECIAL.forEach((h, i) => { ov.setUint16(i * L.stored + L.halves[i % L.halves.length], h, true); });
      const wo = blockWeightOn(be, L.dtype, 2, 1536, odd), ob = new Uint8Array(odd.length);
      L.unpack(wo.data as Uint8Array, ob, 12);
      assert.deepEqual(ob, odd);
      const ref = new Uint8Array(12 * L.held);
      L.repack(odd, ref, 12);
      assert.deepEqual(wo.data, ref, 'the kernel and the host repack write the same bytes');
      be.freeWeight(wo);
      // preparing again (a rows weight's parts are) keeps it as it is
      be.prepareWeight(w);
      L.unpack(w.data as Uint8Array, back, nsb);
      assert.deepEqual(back, stored);
      // a weight stored outside the backend keeps its bytes; the backend's copy is repacked
      const outside: Weight = { dtype: L.dtype, rows: N, cols: K, data: stored.slice() };
      be.prepareWeight(outside);
      assert.equal(outside.layout, undefined);
      assert.deepEqual(outside.data, stored);
      // the stored layout, run by the same kernels: a weight whose packed form points at the stored
      // bytes (the dtype's own kernel code) in the backend's memory
      const t = be.alloc(Math.ceil(stored.length / 4));
      const tv = f32(t);
      new Uint8Array(tv.buffer, tv.byteOffset, stored.length).set(stored);
      const asStored: Weight = { dtype: L.dtype, rows: N, cols: K, data: stored.slice() };
      be.prepareWeight(asStored);
      Object.assign(asStored.packed as object, { dtype: DTYPE_CODE[L.dtype], data: tv.byteOffset });
      for (const M of [1, 2, 3, 8, 11]) {
        const x = new Float32Array(M * K);
        for (let i = 0; i < x.length; i++) x[i] = rng.normal();
        for (const exact of [false, true]) {
          const run = (v: Weight) => { const o = f32(be.alloc(M * N)); be.linear(o, own(be, x), v, M, false, exact); return o.slice(); };
          const got = run(w);
          sameBits(run(outside), got, `outside, M ${M}, exact ${exact}`);
          // (prompts with int8 activations run the integer GEMM, which for Q4_K reads only the repacked layout)
          if (exact || M <= 8 || L.gemmReadsStored) sameBits(got, run(asStored), `M ${M}, exact ${exact}`);
        }
      }
      // the embedding rows (the exact decoder) are the stored values
      const ids = Int32Array.from([0, 36, 5, 5, 17]), e = f32(be.alloc(ids.length * K));
      be.embedding(e, w, ids);
      const row = new Float32Array(K);
      ids.forEach((id, i) => { blockRowToF32(L.dtype, stored, id, K, row); sameBits(e.subarray(i * K, (i + 1) * K), row, `embedding row ${id}`); });
      be.freeWeight(w); be.freeWeight(outside); be.freeWeight(asStored); be.free(t);
    });
  }
}
