// GEMM (prefill, several tokens): out[M,N] (+)= x[M,K] · Wᵀ with W row-major [N, K] in any dtype.
// Goto-style blocking: each work chunk is a range of output columns; for every NC×KC block of W it
// dequantizes and packs the block into panels [NC/8][KC][8] f32 in its scratch (L2-resident), then
// runs register-blocked micro-kernels over all rows of x. The relaxed build takes 6 rows at a time
// (micro6x8 on a tile of x packed per block, 12 f32x4 accumulators); the SIMD128 build, whose
// multiply and add need a temporary register, stays on 4×8 (8 accumulators). Packing costs O(N·K)
// per call against O(M·N·K) of arithmetic. Every output is summed k ascending, one multiply-add per
// k, in single chains except the last M % 4 rows (micro1x8's two chains), whatever the tile: the
// results do not depend on the tile shape.

import { fmadd, f16hiToF32Exact, q4MetaBytes, nibLo, nibHi } from './simd';
import { f16ToF32Scalar } from './simd';
import { BLOCK_MIN, decodeBlockRow } from './blocks';

export const KC: i32 = 256;          // multiple of 32 so q8/q4 blocks never straddle a chunk
export const NC: i32 = 128;
export const PANEL_BYTES: i32 = NC * KC * 4;
export const TMP_BYTES: i32 = 8 * KC * 4;
export const MR: i32 = 6;            // rows of x per packed tile (micro6x8)
export const APACK_BYTES: i32 = MR * KC * 4;
export const GEMM_SCRATCH: i32 = PANEL_BYTES + TMP_BYTES + APACK_BYTES + KC * 4 + MR * 32 + 128;

/** dst[0..len) = row r of W, columns [k0, k0+len), as f32 (k0 and len multiples of 32 for q8/q4, whole blocks for block dtypes). */
export function dequantRow(dtype: i32, data: usize, scales: usize, mins: usize, K: i32, r: i32, k0: i32, len: i32, dst: usize): void {
  if (dtype >= BLOCK_MIN) { decodeBlockRow(dtype, data, K, r, k0, len, dst); return; }
  const e0 = <usize>r * <usize>K + <usize>k0;   // element index of the first value
  if (dtype == 0) { memory.copy(dst, data + (e0 << 2), <usize>len << 2); return; }
  if (dtype == 1 || dtype == 2) {
    const src = data + (e0 << 1);
    const len8 = len & ~7;
    let i = 0;
    for (; i < len8; i += 8) {
      const v = v128.load(src + (<usize>i << 1));
      let lo = i32x4.shl(i32x4.extend_low_i16x8_u(v), 16);
      let hi = i32x4.shl(i32x4.extend_high_i16x8_u(v), 16);
      if (dtype == 2) { lo = f16hi(lo); hi = f16hi(hi); }
      v128.store(dst + (<usize>i << 2), lo);
      v128.store(dst + (<usize>i << 2), hi, 16);
    }
    for (; i < len; i++) {
      const h = i32x4.splat(<i32>load<u16>(src + (<usize>i << 1)) << 16);
      store<f32>(dst + (<usize>i << 2), f32x4.extract_lane(dtype == 2 ? f16hi(h) : h, 0));
    }
    return;
  }
  if (dtype == 3) {
    let src = data + e0, sp = scales + ((e0 >> 5) << 1), d = dst;
    for (let i = 0; i < len; i += 32) {
      const s = f32x4.splat(f16ToF32Scalar(load<u16>(sp)));
      for (let j: usize = 0; j < 32; j += 8) {
        const h = v128.load8x8_s(src + j);
        v128.store(d + (j << 2), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h)), s));
        v128.store(d + (j << 2), f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h)), s), 16);
      }
      src += 32; sp += 2; d += 128;
    }
    return;
  }
  // q4: the row's coded scales (simd.as q4MetaBytes)
  const meta = scales + <usize>r * q4MetaBytes(K), D = load<f32>(meta), M = load<f32>(meta, 4);
  let sp = meta + 8 + <usize>(k0 >> 5), mp = sp + <usize>(K >> 5);
  let src = data + (e0 >> 1), d = dst;
  for (let i = 0; i < len; i += 32) {
    const s = f32x4.splat(<f32>load<u8>(sp) * D), m = f32x4.splat(<f32>load<i8>(mp) * M);
    const v = v128.load(src);
    const lo = nibLo(v), hi = nibHi(v);
    nib16(d, i16x8.extend_low_i8x16_u(lo), s, m);
    nib16(d + 32, i16x8.extend_high_i8x16_u(lo), s, m);
    nib16(d + 64, i16x8.extend_low_i8x16_u(hi), s, m);
    nib16(d + 96, i16x8.extend_high_i8x16_u(hi), s, m);
    src += 16; sp += 1; mp += 1; d += 128;
  }
}

@inline function nib16(d: usize, h: v128, s: v128, m: v128): void {
  v128.store(d, fmadd(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(h)), s, m));
  v128.store(d, fmadd(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(h)), s, m), 16);
}

// Packing converts each weight once per call (against M multiply-adds each), so it takes the
// branch-free exact form: no denormal operands, whose microcode assists cost ~100 cycles on x86.
@inline function f16hi(v: v128): v128 { return f16hiToF32Exact(v); }

/**
 * Transpose 8 f32 rows (row r at src + r·stride, kc values) into one panel [kc][8].
 * Rows r ≥ nr read from `zero` (kc zeros).
 */
function packPanel(dst: usize, src: usize, stride: usize, nr: i32, kc: i32, zero: usize): void {
  const r0 = src, r1 = nr > 1 ? src + stride : zero, r2 = nr > 2 ? src + 2 * stride : zero, r3 = nr > 3 ? src + 3 * stride : zero;
  const r4 = nr > 4 ? src + 4 * stride : zero, r5 = nr > 5 ? src + 5 * stride : zero;
  const r6 = nr > 6 ? src + 6 * stride : zero, r7 = nr > 7 ? src + 7 * stride : zero;
  const kc4 = kc & ~3;
  let k = 0;
  for (; k < kc4; k += 4) {
    const o = <usize>k << 2;
    const a0 = v128.load(r0 + o), a1 = v128.load(r1 + o), a2 = v128.load(r2 + o), a3 = v128.load(r3 + o);
    const b0 = v128.load(r4 + o), b1 = v128.load(r5 + o), b2 = v128.load(r6 + o), b3 = v128.load(r7 + o);
    const t0 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7);
    const t2 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), t3 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7);
    const u0 = v128.shuffle<f32>(b0, b1, 0, 4, 1, 5), u1 = v128.shuffle<f32>(b0, b1, 2, 6, 3, 7);
    const u2 = v128.shuffle<f32>(b2, b3, 0, 4, 1, 5), u3 = v128.shuffle<f32>(b2, b3, 2, 6, 3, 7);
    const d = dst + (<usize>k << 5);
    v128.store(d, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
    v128.store(d, v128.shuffle<f32>(u0, u2, 0, 1, 4, 5), 16);
    v128.store(d, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7), 32);
    v128.store(d, v128.shuffle<f32>(u0, u2, 2, 3, 6, 7), 48);
    v128.store(d, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5), 64);
    v128.store(d, v128.shuffle<f32>(u1, u3, 0, 1, 4, 5), 80);
    v128.store(d, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7), 96);
    v128.store(d, v128.shuffle<f32>(u1, u3, 2, 3, 6, 7), 112);
  }
  for (; k < kc; k++) {
    const o = <usize>k << 2, d = dst + (<usize>k << 5);
    store<f32>(d, load<f32>(r0 + o)); store<f32>(d, load<f32>(r1 + o), 4);
    store<f32>(d, load<f32>(r2 + o), 8); store<f32>(d, load<f32>(r3 + o), 12);
    store<f32>(d, load<f32>(r4 + o), 16); store<f32>(d, load<f32>(r5 + o), 20);
    store<f32>(d, load<f32>(r6 + o), 24); store<f32>(d, load<f32>(r7 + o), 28);
  }
}

/** 16-bit W (bf16 or f16) → f32 for 4 values widened into the upper halves of i32 lanes. */
@inline function wide16(p: usize, f16: bool): v128 {
  const v = i32x4.shl(v128.load16x4_u(p), 16);
  return f16 ? f16hi(v) : v;
}

/**
 * packPanel for bf16/f16 rows (row r at src + r·stride bytes): converts while transposing, so the
 * 16-bit block is read once and never written out as f32 rows first.
 */
function packPanel16(dst: usize, src: usize, stride: usize, nr: i32, kc: i32, zero: usize, f16: bool): void {
  const r0 = src, r1 = nr > 1 ? src + stride : zero, r2 = nr > 2 ? src + 2 * stride : zero, r3 = nr > 3 ? src + 3 * stride : zero;
  const r4 = nr > 4 ? src + 4 * stride : zero, r5 = nr > 5 ? src + 5 * stride : zero;
  const r6 = nr > 6 ? src + 6 * stride : zero, r7 = nr > 7 ? src + 7 * stride : zero;
  const kc4 = kc & ~3;
  let k = 0;
  for (; k < kc4; k += 4) {
    const o = <usize>k << 1;
    const a0 = wide16(r0 + o, f16), a1 = wide16(r1 + o, f16), a2 = wide16(r2 + o, f16), a3 = wide16(r3 + o, f16);
    const b0 = wide16(r4 + o, f16), b1 = wide16(r5 + o, f16), b2 = wide16(r6 + o, f16), b3 = wide16(r7 + o, f16);
    const t0 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7);
    const t2 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), t3 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7);
    const u0 = v128.shuffle<f32>(b0, b1, 0, 4, 1, 5), u1 = v128.shuffle<f32>(b0, b1, 2, 6, 3, 7);
    const u2 = v128.shuffle<f32>(b2, b3, 0, 4, 1, 5), u3 = v128.shuffle<f32>(b2, b3, 2, 6, 3, 7);
    const d = dst + (<usize>k << 5);
    v128.store(d, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
    v128.store(d, v128.shuffle<f32>(u0, u2, 0, 1, 4, 5), 16);
    v128.store(d, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7), 32);
    v128.store(d, v128.shuffle<f32>(u0, u2, 2, 3, 6, 7), 48);
    v128.store(d, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5), 64);
    v128.store(d, v128.shuffle<f32>(u1, u3, 0, 1, 4, 5), 80);
    v128.store(d, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7), 96);
    v128.store(d, v128.shuffle<f32>(u1, u3, 2, 3, 6, 7), 112);
  }
  for (; k < kc; k++) {
    const o = <usize>k << 1, d = dst + (<usize>k << 5);
    const lo = i32x4.replace_lane(i32x4.replace_lane(i32x4.replace_lane(i32x4.splat(<i32>load<u16>(r0 + o) << 16),
      1, <i32>load<u16>(r1 + o) << 16), 2, <i32>load<u16>(r2 + o) << 16), 3, <i32>load<u16>(r3 + o) << 16);
    const hi = i32x4.replace_lane(i32x4.replace_lane(i32x4.replace_lane(i32x4.splat(<i32>load<u16>(r4 + o) << 16),
      1, <i32>load<u16>(r5 + o) << 16), 2, <i32>load<u16>(r6 + o) << 16), 3, <i32>load<u16>(r7 + o) << 16);
    v128.store(d, f16 ? f16hi(lo) : lo);
    v128.store(d, f16 ? f16hi(hi) : hi, 16);
  }
}

/** c[4][8] (+)= a[4][kc] · panel[kc][8]; a rows lda bytes apart, c rows ldc bytes apart. */
function micro4x8(a: usize, lda: usize, b: usize, kc: i32, c: usize, ldc: usize, ld: i32): void {
  let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  const c1 = c + ldc, c2 = c1 + ldc, c3 = c2 + ldc;
  if (ld) {
    c00 = v128.load(c); c01 = v128.load(c, 16);
    c10 = v128.load(c1); c11 = v128.load(c1, 16);
    c20 = v128.load(c2); c21 = v128.load(c2, 16);
    c30 = v128.load(c3); c31 = v128.load(c3, 16);
  }
  let a0 = a, a1 = a + lda, a2 = a1 + lda, a3 = a2 + lda;
  let p = b;
  const end = b + (<usize>kc << 5);
  while (p < end) {
    const b0 = v128.load(p), b1 = v128.load(p, 16);
    const x0 = v128.load32_splat(a0);
    c00 = fmadd(x0, b0, c00); c01 = fmadd(x0, b1, c01);
    const x1 = v128.load32_splat(a1);
    c10 = fmadd(x1, b0, c10); c11 = fmadd(x1, b1, c11);
    const x2 = v128.load32_splat(a2);
    c20 = fmadd(x2, b0, c20); c21 = fmadd(x2, b1, c21);
    const x3 = v128.load32_splat(a3);
    c30 = fmadd(x3, b0, c30); c31 = fmadd(x3, b1, c31);
    a0 += 4; a1 += 4; a2 += 4; a3 += 4; p += 32;
  }
  v128.store(c, c00); v128.store(c, c01, 16);
  v128.store(c1, c10); v128.store(c1, c11, 16);
  v128.store(c2, c20); v128.store(c2, c21, 16);
  v128.store(c3, c30); v128.store(c3, c31, 16);
}

/** Interleave 6 rows of x (row i at a + i·lda, kc values) into one tile [kc][6], so the micro-kernel reads them at fixed offsets from one pointer. */
function packA6(dst: usize, a: usize, lda: usize, kc: i32): void {
  const a1 = a + lda, a2 = a1 + lda, a3 = a2 + lda, a4 = a3 + lda, a5 = a4 + lda;
  const kc4 = kc & ~3;
  let k = 0;
  for (; k < kc4; k += 4) {
    const o = <usize>k << 2, d = dst + <usize>k * 24;
    const r0 = v128.load(a + o), r1 = v128.load(a1 + o), r2 = v128.load(a2 + o), r3 = v128.load(a3 + o);
    const r4 = v128.load(a4 + o), r5 = v128.load(a5 + o);
    const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
    const t2 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5), t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
    const u0 = v128.shuffle<f32>(r4, r5, 0, 4, 1, 5), u1 = v128.shuffle<f32>(r4, r5, 2, 6, 3, 7);
    v128.store(d, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
    v128.store64_lane(d, u0, 0, 16);
    v128.store(d, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7), 24);
    v128.store64_lane(d, u0, 1, 40);
    v128.store(d, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5), 48);
    v128.store64_lane(d, u1, 0, 64);
    v128.store(d, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7), 72);
    v128.store64_lane(d, u1, 1, 88);
  }
  for (; k < kc; k++) {
    const o = <usize>k << 2, d = dst + <usize>k * 24;
    store<f32>(d, load<f32>(a + o)); store<f32>(d, load<f32>(a1 + o), 4);
    store<f32>(d, load<f32>(a2 + o), 8); store<f32>(d, load<f32>(a3 + o), 12);
    store<f32>(d, load<f32>(a4 + o), 16); store<f32>(d, load<f32>(a5 + o), 20);
  }
}

/**
 * c[6][8] (+)= a[6][kc] · panel[kc][8], a packed by packA6. 12 accumulators, 2 panel vectors and
 * one splat fill V8's 15 allocatable xmm registers, for 8 loads per 12 multiply-adds (4×8: 6 per 8).
 * Each output keeps one multiply-add per k, k ascending, as micro4x8 does.
 */
function micro6x8(a: usize, b: usize, kc: i32, c: usize, ldc: usize, ld: i32): void {
  let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  let c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const c1 = c + ldc, c2 = c1 + ldc, c3 = c2 + ldc, c4 = c3 + ldc, c5 = c4 + ldc;
  if (ld) {
    c00 = v128.load(c); c01 = v128.load(c, 16);
    c10 = v128.load(c1); c11 = v128.load(c1, 16);
    c20 = v128.load(c2); c21 = v128.load(c2, 16);
    c30 = v128.load(c3); c31 = v128.load(c3, 16);
    c40 = v128.load(c4); c41 = v128.load(c4, 16);
    c50 = v128.load(c5); c51 = v128.load(c5, 16);
  }
  let q = a, p = b;
  const end = b + (<usize>kc << 5);
  while (p < end) {
    const b0 = v128.load(p), b1 = v128.load(p, 16);
    let x = v128.load32_splat(q);
    c00 = fmadd(x, b0, c00); c01 = fmadd(x, b1, c01);
    x = v128.load32_splat(q, 4);
    c10 = fmadd(x, b0, c10); c11 = fmadd(x, b1, c11);
    x = v128.load32_splat(q, 8);
    c20 = fmadd(x, b0, c20); c21 = fmadd(x, b1, c21);
    x = v128.load32_splat(q, 12);
    c30 = fmadd(x, b0, c30); c31 = fmadd(x, b1, c31);
    x = v128.load32_splat(q, 16);
    c40 = fmadd(x, b0, c40); c41 = fmadd(x, b1, c41);
    x = v128.load32_splat(q, 20);
    c50 = fmadd(x, b0, c50); c51 = fmadd(x, b1, c51);
    q += 24; p += 32;
  }
  v128.store(c, c00); v128.store(c, c01, 16);
  v128.store(c1, c10); v128.store(c1, c11, 16);
  v128.store(c2, c20); v128.store(c2, c21, 16);
  v128.store(c3, c30); v128.store(c3, c31, 16);
  v128.store(c4, c40); v128.store(c4, c41, 16);
  v128.store(c5, c50); v128.store(c5, c51, 16);
}

/** c[2][8] (+)= a[2][kc] · panel[kc][8], one multiply-add per k like micro4x8 (the rows micro6x8 tiles leave). */
function micro2x8(a: usize, lda: usize, b: usize, kc: i32, c: usize, ldc: usize, ld: i32): void {
  let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00;
  const c1 = c + ldc;
  if (ld) { c00 = v128.load(c); c01 = v128.load(c, 16); c10 = v128.load(c1); c11 = v128.load(c1, 16); }
  let a0 = a, a1 = a + lda, p = b;
  const end = b + (<usize>kc << 5);
  while (p < end) {
    const b0 = v128.load(p), b1 = v128.load(p, 16);
    const x0 = v128.load32_splat(a0);
    c00 = fmadd(x0, b0, c00); c01 = fmadd(x0, b1, c01);
    const x1 = v128.load32_splat(a1);
    c10 = fmadd(x1, b0, c10); c11 = fmadd(x1, b1, c11);
    a0 += 4; a1 += 4; p += 32;
  }
  v128.store(c, c00); v128.store(c, c01, 16);
  v128.store(c1, c10); v128.store(c1, c11, 16);
}

/** c[1][8] (+)= a[1][kc] · panel[kc][8]. */
function micro1x8(a: usize, b: usize, kc: i32, c: usize, ld: i32): void {
  let c00 = f32x4.splat(0), c01 = c00, d00 = c00, d01 = c00;
  if (ld) { c00 = v128.load(c); c01 = v128.load(c, 16); }
  let k = 0, p = b, q = a;
  for (; k + 2 <= kc; k += 2) {
    const x0 = v128.load32_splat(q), x1 = v128.load32_splat(q, 4);
    c00 = fmadd(x0, v128.load(p), c00); c01 = fmadd(x0, v128.load(p, 16), c01);
    d00 = fmadd(x1, v128.load(p, 32), d00); d01 = fmadd(x1, v128.load(p, 48), d01);
    p += 64; q += 8;
  }
  if (k < kc) {
    const x0 = v128.load32_splat(q);
    c00 = fmadd(x0, v128.load(p), c00); c01 = fmadd(x0, v128.load(p, 16), c01);
  }
  v128.store(c, f32x4.add(c00, d00)); v128.store(c, f32x4.add(c01, d01), 16);
}

/** mr rows (6: packed at ap; 4 or 2; 1) of x times one panel. */
@inline function tile(mr: i32, a: usize, lda: usize, ap: usize, pp: usize, kc: i32, c: usize, ldc: usize, ld: i32): void {
  if (mr == MR) micro6x8(ap, pp, kc, c, ldc, ld);
  else if (mr == 4) micro4x8(a, lda, pp, kc, c, ldc, ld);
  else if (mr == 2) micro2x8(a, lda, pp, kc, c, ldc, ld);
  else micro1x8(a, pp, kc, c, ld);
}

/** Output columns [n0, n1) of the GEMM (n0 a multiple of 8); rows of out are ldo floats apart. */
export function gemm(out: usize, x: usize, data: usize, scales: usize, mins: usize, dtype: i32,
  M: i32, N: i32, K: i32, acc: i32, scr: usize, n0: i32, n1: i32, ldo: i32): void {
  if (n0 >= n1) return;
  const panel = scr, tmp = scr + PANEL_BYTES, apack = tmp + TMP_BYTES, zero = apack + APACK_BYTES, ctile = zero + (<usize>KC << 2);
  memory.fill(zero, 0, <usize>KC << 2);
  const lda = <usize>K << 2, ldc = <usize>ldo << 2;
  for (let nb = n0; nb < n1; nb += NC) {
    const nc = min(NC, n1 - nb);
    for (let k0 = 0; k0 < K; k0 += KC) {
      const kc = min(KC, K - k0);
      // pack: nc rows of W (columns k0..k0+kc) into ceil(nc/8) panels
      for (let p = 0; p < nc; p += 8) {
        const nr = min(8, nc - p);
        const dst = panel + <usize>p * <usize>kc * 4;
        if (dtype == 0) {
          packPanel(dst, data + ((<usize>(nb + p) * <usize>K + <usize>k0) << 2), lda, nr, kc, zero);
        } else if (dtype <= 2) {
          packPanel16(dst, data + ((<usize>(nb + p) * <usize>K + <usize>k0) << 1), <usize>K << 1, nr, kc, zero, dtype == 2);
        } else {
          for (let r = 0; r < nr; r++) dequantRow(dtype, data, scales, mins, K, nb + p + r, k0, kc, tmp + <usize>r * (<usize>KC << 2));
          packPanel(dst, tmp, <usize>KC << 2, nr, kc, zero);
        }
      }
      const ld = acc != 0 || k0 > 0 ? 1 : 0;
      // Rows below M & ~3 take single-chain kernels (6-row packed tiles, then 4 or 2 rows), the
      // last M % 4 rows micro1x8: which rows go where fixes each output's summation order.
      const M4 = M & ~3, M6 = ASC_FEATURE_RELAXED_SIMD ? M4 - M4 % MR : 0;
      for (let m = 0; m < M; ) {
        const mr = m < M6 ? MR : m < M4 ? min(4, M4 - m) : 1;
        const a = x + ((<usize>m * <usize>K + <usize>k0) << 2);
        if (mr == MR) packA6(apack, a, lda, kc);
        for (let p = 0; p < nc; p += 8) {
          const nr = min(8, nc - p);
          const pp = panel + <usize>p * <usize>kc * 4;
          const c = out + ((<usize>m * <usize>ldo + <usize>(nb + p)) << 2);
          if (nr == 8) { tile(mr, a, lda, apack, pp, kc, c, ldc, ld); continue; }
          for (let i = 0; i < mr; i++) {
            for (let j = 0; j < 8; j++) {
              store<f32>(ctile + (<usize>(i * 8 + j) << 2), ld && j < nr ? load<f32>(c + <usize>i * ldc + (<usize>j << 2)) : 0);
            }
          }
          tile(mr, a, lda, apack, pp, kc, ctile, 32, 1);
          for (let i = 0; i < mr; i++) {
            for (let j = 0; j < nr; j++) store<f32>(c + <usize>i * ldc + (<usize>j << 2), load<f32>(ctile + (<usize>(i * 8 + j) << 2)));
          }
        }
        m += mr;
      }
    }
  }
}

