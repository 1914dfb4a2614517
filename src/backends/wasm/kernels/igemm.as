// Integer GEMM for q8/q4 weights (prefill): out[M,N] (+)= x[M,K] · Wᵀ with x quantized per row to
// int8 blocks of 32 (llama.cpp's Q8_0/Q8_1 activations, stored widened to i16) and the weights'
// integer values packed per chunk of 8 output columns into i16 k-pairs, so that one
// i32x4.dot_i16x8_s does 8 multiply-adds (f32 FMA does 4). A 4×8 micro-kernel keeps 8 i32x4
// accumulators over one 32-wide block, then folds them into the f32 output with the block's
// scales (x scale × weight scale; for q4 also min × Σx). Same blocking as the f32 GEMM.
//
// GGUF Q8_0 and Q4_0 block weights (prompts with int8 activations, as their GEMV in blocks_int.as)
// go through the same GEMM, read as stored: the packing takes their integers and f16 scales from
// the 34- and 18-byte blocks, Q8_0 as q8 (one scale per 32) and Q4_0 as signed levels q − 8, so
// every block sum is the exact integer Σ q_w·q_x the GEMV forms, scaled by d_w·d_x (no min term;
// the relaxed build's Q4_0 runs igemmQ4 on the stored levels 0..15 and takes 8·Σ q_x off in integers).
//
// Q4_K (as the backend holds it, repacked: blocks.as BQ4_KR) is q4's arithmetic per sub-block of 32:
// levels 0..15, scale d·sc_j and min −dmin·m_j, taken from the super-block when packing. Q6_K packs
// each weight's (q − 32)·sc (|·| ≤ 32·128, an i16) with d as the block scale: the block sum
// sc_a·Σ_a (q − 32)·q_x + sc_b·Σ_b (q − 32)·q_x is then the GEMV's exact integer (|·| < 2²⁴).

import { fmadd, q4MetaBytes, nibLo, nibHi, codes4u, codes4s } from './simd';
import { f16ToF32Scalar } from './simd';
import { BQ8_0, BQ4_0, BQ4_KR, BQ6_K, BQ6_KR, BQ4_0R } from './blocks';

/**
 * Block dtypes with an integer prompt GEMM (k_linear mode 2): x quantized per block of 32 by
 * k_quant_rows. Add a dtype here and a branch in index.as k_linear (mode 2) to plug in another.
 */
export function hasIntGemm(dtype: i32): bool { return dtype == BQ8_0 || dtype == BQ4_0 || dtype == BQ4_KR || dtype == BQ6_K || dtype == BQ6_KR || dtype == BQ4_0R; }

/** Q8_0/Q4_0: the stored block holding element k of row `row` (k a multiple of 8 within it), and its bytes. */
@inline function blockAt(data: usize, K: i32, row: i32, k: i32, bb: usize): usize {
  return data + (<usize>row * <usize>(K >> 5) + <usize>(k >> 5)) * bb;
}

/** Q4_0 (rq: regrouped, blocks.as BQ4_0R) row `row`: the address of block b's 16 nibble bytes. */
@inline function q40Nibs(data: usize, K: i32, row: i32, b: i32, rq: bool): usize {
  const nb = <usize>(K >> 5);
  return rq ? data + <usize>row * nb * 18 + (nb << 1) + (<usize>b << 4) : data + (<usize>row * nb + <usize>b) * 18 + 2;
}

/** Q4_0 (rq: regrouped) row `row`: the address of block b's half d. */
@inline function q40Half(data: usize, K: i32, row: i32, b: i32, rq: bool): usize {
  const nb = <usize>(K >> 5);
  return rq ? data + <usize>row * nb * 18 + (<usize>b << 1) : data + (<usize>row * nb + <usize>b) * 18;
}

/** Q4_0 (rq: regrouped) row n + r, elements k..k+7 (within one block) as the signed levels q − 8 in i16x8 (zeros past nr). */
@inline function q40nib8(data: usize, K: i32, n: i32, nr: i32, r: i32, k: i32, rq: bool = false): v128 {
  if (r >= nr) return i16x8.splat(0);
  const j = k & 31;
  // elements 0..15 are the 16 bytes' low nibbles, 16..31 their high ones (docs/formats.md)
  const v = v128.load64_zero(q40Nibs(data, K, n + r, k >> 5, rq) + <usize>(j & 15));
  return i16x8.sub(i16x8.extend_low_i8x16_u(j < 16 ? nibLo(v) : nibHi(v)), i16x8.splat(8));
}

/** Q4_K repacked (152-byte super-blocks) / Q6_K (210): the super-block of row `row` holding element k. */
@inline function superAt(data: usize, K: i32, row: i32, k: i32, bb: usize): usize {
  return data + (<usize>row * <usize>(K >> 8) + <usize>(k >> 8)) * bb;
}

/** Q4_K (repacked) row n + r, elements k..k+7 (k a multiple of 8) as levels 0..15 in i16x8 (zeros past nr). */
@inline function q4k8(data: usize, K: i32, n: i32, nr: i32, r: i32, k: i32): v128 {
  if (r >= nr) return i16x8.splat(0);
  // sub-blocks 2c and 2c + 1 are the low and high nibbles of the 32 bytes at 32c
  const e = k & 255, v = v128.load64_zero(superAt(data, K, n + r, k, 152) + 24 + <usize>(((e >> 6) << 5) + (e & 31)));
  return i16x8.extend_low_i8x16_u((e >> 5) & 1 ? nibHi(v) : nibLo(v));
}

/** Q6_K row n + r, elements k..k+7 as (q − 32)·sc in i16x8 (zeros past nr; blocks.as walkQ6K has the layout). */
@inline function q6k8(data: usize, K: i32, n: i32, nr: i32, r: i32, k: i32): v128 {
  if (r >= nr) return i16x8.splat(0);
  const src = superAt(data, K, n + r, k, 210), e = k & 255, h = e >> 7, t = (e >> 5) & 3, l = e & 31;
  const lo = i16x8.extend_low_i8x16_u(v128.load64_zero(src + <usize>(64 * h + 32 * (t & 1) + l)));
  const hi = i16x8.extend_low_i8x16_u(v128.load64_zero(src + <usize>(128 + 32 * h + l)));
  const q = v128.or(v128.and(i16x8.shr_u(lo, (t >> 1) << 2), i16x8.splat(15)), i16x8.shl(v128.and(i16x8.shr_u(hi, 2 * t), i16x8.splat(3)), 4));
  return i16x8.mul(i16x8.sub(q, i16x8.splat(32)), i16x8.splat(<i16>load<i8>(src + <usize>(192 + 8 * h + 2 * t + (l >> 4)))));
}

/**
 * Q6_K repacked (BQ6_KR, 212-byte super-blocks) row n + r, elements k..k+7 as (q − 32)·sc in
 * i16x8, as q6k8: they are lanes m (sub-block, bytes 4m..4m+3) of level vectors j and j + 1
 * (j = 0 or 2) of their group, taken as u32 words (q6krLevels' masks and shifts on 4 bytes).
 */
@inline function q6kr8(data: usize, K: i32, n: i32, nr: i32, r: i32, k: i32): v128 {
  if (r >= nr) return i16x8.splat(0);
  const src = superAt(data, K, n + r, k, 212), e = k & 255, m = (e >> 4) & 3, j = (e >> 2) & 3;
  const q = src + <usize>(48 * (e >> 6) + 4 * m);
  let w0: u32, w1: u32;
  if (j == 0) { w0 = load<u32>(q) & 0x3f3f3f3f; w1 = load<u32>(q, 16) & 0x3f3f3f3f; }
  else {
    const a = load<u32>(q), b = load<u32>(q, 16), c = load<u32>(q, 32);
    w0 = c & 0x3f3f3f3f;
    w1 = ((a >> 6) & 0x03030303) | ((b >> 4) & 0x0c0c0c0c) | ((c >> 2) & 0x30303030);
  }
  const v = i16x8.extend_low_i8x16_u(i32x4.replace_lane(i32x4.splat(<i32>w0), 1, <i32>w1));
  return i16x8.mul(i16x8.sub(v, i16x8.splat(32)), i16x8.splat(<i16>load<i8>(src + <usize>(192 + (e >> 4)))));
}

export const IKC: i32 = 256;   // k per packed chunk (multiple of 32)
export const INC: i32 = 128;   // output columns per packed block (multiple of 8)
const IPANEL_BYTES: i32 = INC * IKC * 2;
const ISCALE_BYTES: i32 = INC * (IKC / 32) * 4;
export const IGEMM_SCRATCH: i32 = IPANEL_BYTES + 2 * ISCALE_BYTES + IKC * 2 + 128 * 4 + 256;

/**
 * Pack 8 weight rows (columns n..n+7 of the output; nr valid), k in [k0, k0+kc), into
 * dst [kc/2][8][2] i16 and their block scales (and mins) into [kc/32][8] f32.
 */
function ipack(dst: usize, dsc: usize, dmn: usize, dtype: i32, data: usize, scales: usize, mins: usize, K: i32,
  n: i32, nr: i32, k0: i32, kc: i32, zero: usize): void {
  const nb = K >> 5, b0 = k0 >> 5, kb = kc >> 5, q4 = dtype == 4 || dtype == BQ4_KR, mb = q4MetaBytes(K);
  const bb: usize = dtype == BQ8_0 ? 34 : 18;
  // scales / mins (q4: decoded from the row's codes, simd.as q4MetaBytes; Q8_0/Q4_0: each block's half)
  for (let b = 0; b < kb; b++) {
    for (let r = 0; r < 8; r++) {
      const o = dsc + (<usize>(b * 8 + r) << 2);
      if (r < nr) {
        if (dtype == BQ4_KR) {
          const k = k0 + (b << 5), src = superAt(data, K, n + r, k, 152), j = <usize>((k >> 5) & 7);
          store<f32>(o, load<f32>(src) * <f32>load<u8>(src + 8 + j));
          store<f32>(dmn + (<usize>(b * 8 + r) << 2), -(load<f32>(src, 4) * <f32>load<u8>(src + 16 + j)));
        } else if (dtype == BQ6_K) store<f32>(o, f16ToF32Scalar(load<u16>(superAt(data, K, n + r, k0 + (b << 5), 210) + 208)));
        else if (dtype == BQ6_KR) store<f32>(o, load<f32>(superAt(data, K, n + r, k0 + (b << 5), 212) + 208));
        else if (dtype == BQ4_0R) store<f32>(o, f16ToF32Scalar(load<u16>(q40Half(data, K, n + r, (k0 >> 5) + b, true))));
        else if (dtype >= BQ8_0) store<f32>(o, f16ToF32Scalar(load<u16>(blockAt(data, K, n + r, k0 + (b << 5), bb))));
        else if (q4) {
          const meta = scales + <usize>(n + r) * mb, c = meta + 8 + <usize>(b0 + b);
          store<f32>(o, <f32>load<u8>(c) * load<f32>(meta));
          store<f32>(dmn + (<usize>(b * 8 + r) << 2), <f32>load<i8>(c + <usize>nb) * load<f32>(meta, 4));
        } else store<f32>(o, f16ToF32Scalar(load<u16>(scales + ((<usize>(n + r) * <usize>nb + <usize>(b0 + b)) << 1))));
      } else {
        store<f32>(o, 0);
        if (q4) store<f32>(dmn + (<usize>(b * 8 + r) << 2), 0);
      }
    }
  }
  // values: per 8 k, each row gives an i16x8 = 4 k-pairs (as i32 lanes); transpose 4×4 per half
  for (let k = 0; k < kc; k += 8) {
    let a0: v128, a1: v128, a2: v128, a3: v128, c0: v128, c1: v128, c2: v128, c3: v128;
    if (dtype == BQ8_0) {
      const base = blockAt(data, K, n, k0 + k, 34) + 2 + <usize>((k0 + k) & 31), rs = <usize>(K >> 5) * 34;
      a0 = v128.load8x8_s(base);
      a1 = nr > 1 ? v128.load8x8_s(base + rs) : v128.load8x8_s(zero);
      a2 = nr > 2 ? v128.load8x8_s(base + 2 * rs) : v128.load8x8_s(zero);
      a3 = nr > 3 ? v128.load8x8_s(base + 3 * rs) : v128.load8x8_s(zero);
      c0 = nr > 4 ? v128.load8x8_s(base + 4 * rs) : v128.load8x8_s(zero);
      c1 = nr > 5 ? v128.load8x8_s(base + 5 * rs) : v128.load8x8_s(zero);
      c2 = nr > 6 ? v128.load8x8_s(base + 6 * rs) : v128.load8x8_s(zero);
      c3 = nr > 7 ? v128.load8x8_s(base + 7 * rs) : v128.load8x8_s(zero);
    } else if (dtype == BQ4_KR) {
      a0 = q4k8(data, K, n, nr, 0, k0 + k);
      a1 = q4k8(data, K, n, nr, 1, k0 + k);
      a2 = q4k8(data, K, n, nr, 2, k0 + k);
      a3 = q4k8(data, K, n, nr, 3, k0 + k);
      c0 = q4k8(data, K, n, nr, 4, k0 + k);
      c1 = q4k8(data, K, n, nr, 5, k0 + k);
      c2 = q4k8(data, K, n, nr, 6, k0 + k);
      c3 = q4k8(data, K, n, nr, 7, k0 + k);
    } else if (dtype == BQ6_K) {
      a0 = q6k8(data, K, n, nr, 0, k0 + k);
      a1 = q6k8(data, K, n, nr, 1, k0 + k);
      a2 = q6k8(data, K, n, nr, 2, k0 + k);
      a3 = q6k8(data, K, n, nr, 3, k0 + k);
      c0 = q6k8(data, K, n, nr, 4, k0 + k);
      c1 = q6k8(data, K, n, nr, 5, k0 + k);
      c2 = q6k8(data, K, n, nr, 6, k0 + k);
      c3 = q6k8(data, K, n, nr, 7, k0 + k);
    } else if (dtype == BQ6_KR) {
      a0 = q6kr8(data, K, n, nr, 0, k0 + k);
      a1 = q6kr8(data, K, n, nr, 1, k0 + k);
      a2 = q6kr8(data, K, n, nr, 2, k0 + k);
      a3 = q6kr8(data, K, n, nr, 3, k0 + k);
      c0 = q6kr8(data, K, n, nr, 4, k0 + k);
      c1 = q6kr8(data, K, n, nr, 5, k0 + k);
      c2 = q6kr8(data, K, n, nr, 6, k0 + k);
      c3 = q6kr8(data, K, n, nr, 7, k0 + k);
    } else if (dtype == BQ4_0 || dtype == BQ4_0R) {
      const rq = dtype == BQ4_0R;
      a0 = q40nib8(data, K, n, nr, 0, k0 + k, rq);
      a1 = q40nib8(data, K, n, nr, 1, k0 + k, rq);
      a2 = q40nib8(data, K, n, nr, 2, k0 + k, rq);
      a3 = q40nib8(data, K, n, nr, 3, k0 + k, rq);
      c0 = q40nib8(data, K, n, nr, 4, k0 + k, rq);
      c1 = q40nib8(data, K, n, nr, 5, k0 + k, rq);
      c2 = q40nib8(data, K, n, nr, 6, k0 + k, rq);
      c3 = q40nib8(data, K, n, nr, 7, k0 + k, rq);
    } else if (dtype == 3) {
      const base = data + <usize>n * <usize>K + <usize>(k0 + k);
      a0 = v128.load8x8_s(base);
      a1 = nr > 1 ? v128.load8x8_s(base + <usize>K) : v128.load8x8_s(zero);
      a2 = nr > 2 ? v128.load8x8_s(base + 2 * <usize>K) : v128.load8x8_s(zero);
      a3 = nr > 3 ? v128.load8x8_s(base + 3 * <usize>K) : v128.load8x8_s(zero);
      c0 = nr > 4 ? v128.load8x8_s(base + 4 * <usize>K) : v128.load8x8_s(zero);
      c1 = nr > 5 ? v128.load8x8_s(base + 5 * <usize>K) : v128.load8x8_s(zero);
      c2 = nr > 6 ? v128.load8x8_s(base + 6 * <usize>K) : v128.load8x8_s(zero);
      c3 = nr > 7 ? v128.load8x8_s(base + 7 * <usize>K) : v128.load8x8_s(zero);
    } else {
      a0 = nib8(data, K, n, nr, 0, k0 + k);
      a1 = nib8(data, K, n, nr, 1, k0 + k);
      a2 = nib8(data, K, n, nr, 2, k0 + k);
      a3 = nib8(data, K, n, nr, 3, k0 + k);
      c0 = nib8(data, K, n, nr, 4, k0 + k);
      c1 = nib8(data, K, n, nr, 5, k0 + k);
      c2 = nib8(data, K, n, nr, 6, k0 + k);
      c3 = nib8(data, K, n, nr, 7, k0 + k);
    }
    const t0 = v128.shuffle<i32>(a0, a1, 0, 4, 1, 5), t1 = v128.shuffle<i32>(a0, a1, 2, 6, 3, 7);
    const t2 = v128.shuffle<i32>(a2, a3, 0, 4, 1, 5), t3 = v128.shuffle<i32>(a2, a3, 2, 6, 3, 7);
    const u0 = v128.shuffle<i32>(c0, c1, 0, 4, 1, 5), u1 = v128.shuffle<i32>(c0, c1, 2, 6, 3, 7);
    const u2 = v128.shuffle<i32>(c2, c3, 0, 4, 1, 5), u3 = v128.shuffle<i32>(c2, c3, 2, 6, 3, 7);
    const d = dst + (<usize>k << 4);   // 4 k-pairs × 32 bytes
    v128.store(d, v128.shuffle<i32>(t0, t2, 0, 1, 4, 5));
    v128.store(d, v128.shuffle<i32>(u0, u2, 0, 1, 4, 5), 16);
    v128.store(d, v128.shuffle<i32>(t0, t2, 2, 3, 6, 7), 32);
    v128.store(d, v128.shuffle<i32>(u0, u2, 2, 3, 6, 7), 48);
    v128.store(d, v128.shuffle<i32>(t1, t3, 0, 1, 4, 5), 64);
    v128.store(d, v128.shuffle<i32>(u1, u3, 0, 1, 4, 5), 80);
    v128.store(d, v128.shuffle<i32>(t1, t3, 2, 3, 6, 7), 96);
    v128.store(d, v128.shuffle<i32>(u1, u3, 2, 3, 6, 7), 112);
  }
}

/** q4 row n + r, elements k..k+7 (within one 32-block) as i16x8 (zeros past nr). */
@inline function nib8(data: usize, K: i32, n: i32, nr: i32, r: i32, k: i32): v128 {
  if (r >= nr) return i16x8.splat(0);
  const e = <usize>(n + r) * <usize>K + <usize>k;        // element index
  const blk = e >> 5, j = <i32>(e & 31);
  // elements j..j+7 of the block: low nibbles of bytes j.. (j < 16) or high nibbles of bytes j-16..
  const v = v128.load64_zero(data + (blk << 4) + <usize>(j & 15));
  const q = j < 16 ? nibLo(v) : nibHi(v);
  return i16x8.extend_low_i8x16_u(q);
}

/**
 * c[mr][8] (+)= over nblk blocks: Σ_k a[i][k]·b[k][j] (int) × xd[i][blk] × bs[blk][j] (+ xs[i][blk] × bm[blk][j]).
 * a: i16 rows lda bytes apart; xd/xs: f32 rows ldd bytes apart; b: packed [..][8][2] i16.
 * ld = 0: the first block overwrites c.
 */
function imicro4x8(a: usize, lda: usize, xd: usize, xs: usize, ldd: usize, b: usize, bs: usize, bm: usize, nblk: i32,
  c: usize, ldc: usize, ld: i32, q4: bool): void {
  const c1 = c + ldc, c2 = c1 + ldc, c3 = c2 + ldc;
  let p = b;
  let r0 = a, r1 = a + lda, r2 = r1 + lda, r3 = r2 + lda;   // advance 64 bytes (one block) per block
  for (let blk = 0; blk < nblk; blk++) {
    let s00 = i32x4.splat(0), s01 = s00, s10 = s00, s11 = s00, s20 = s00, s21 = s00, s30 = s00, s31 = s00;
    const end = p + 512;           // 16 k-pairs × 32 bytes
    while (p < end) {
      const b0 = v128.load(p), b1 = v128.load(p, 16);
      const x0 = v128.load32_splat(r0);
      s00 = i32x4.add(s00, i32x4.dot_i16x8_s(b0, x0)); s01 = i32x4.add(s01, i32x4.dot_i16x8_s(b1, x0));
      const x1 = v128.load32_splat(r1);
      s10 = i32x4.add(s10, i32x4.dot_i16x8_s(b0, x1)); s11 = i32x4.add(s11, i32x4.dot_i16x8_s(b1, x1));
      const x2 = v128.load32_splat(r2);
      s20 = i32x4.add(s20, i32x4.dot_i16x8_s(b0, x2)); s21 = i32x4.add(s21, i32x4.dot_i16x8_s(b1, x2));
      const x3 = v128.load32_splat(r3);
      s30 = i32x4.add(s30, i32x4.dot_i16x8_s(b0, x3)); s31 = i32x4.add(s31, i32x4.dot_i16x8_s(b1, x3));
      p += 32; r0 += 4; r1 += 4; r2 += 4; r3 += 4;
    }
    const bo = <usize>blk << 5;
    const w0 = v128.load(bs + bo), w1 = v128.load(bs + bo, 16);
    const first = ld == 0 && blk == 0;
    const dof = <usize>blk << 2;
    iscale(c, s00, s01, w0, w1, load<f32>(xd + dof), first);
    iscale(c1, s10, s11, w0, w1, load<f32>(xd + ldd + dof), first);
    iscale(c2, s20, s21, w0, w1, load<f32>(xd + 2 * ldd + dof), first);
    iscale(c3, s30, s31, w0, w1, load<f32>(xd + 3 * ldd + dof), first);
    if (q4) {
      const m0 = v128.load(bm + bo), m1 = v128.load(bm + bo, 16);
      imins(c, m0, m1, load<f32>(xs + dof));
      imins(c1, m0, m1, load<f32>(xs + ldd + dof));
      imins(c2, m0, m1, load<f32>(xs + 2 * ldd + dof));
      imins(c3, m0, m1, load<f32>(xs + 3 * ldd + dof));
    }
  }
}

/** One row: same as imicro4x8 with mr = 1. */
function imicro1x8(a: usize, xd: usize, xs: usize, b: usize, bs: usize, bm: usize, nblk: i32, c: usize, ld: i32, q4: bool): void {
  let p = b;
  for (let blk = 0; blk < nblk; blk++) {
    let s00 = i32x4.splat(0), s01 = s00, t00 = s00, t01 = s00;
    const ko = <usize>blk << 6;
    for (let j: usize = 0; j < 64; j += 8) {
      const x0 = v128.load32_splat(a + ko + j), x1 = v128.load32_splat(a + ko + j, 4);
      s00 = i32x4.add(s00, i32x4.dot_i16x8_s(v128.load(p), x0));
      s01 = i32x4.add(s01, i32x4.dot_i16x8_s(v128.load(p, 16), x0));
      t00 = i32x4.add(t00, i32x4.dot_i16x8_s(v128.load(p, 32), x1));
      t01 = i32x4.add(t01, i32x4.dot_i16x8_s(v128.load(p, 48), x1));
      p += 64;
    }
    const bo = <usize>blk << 5, dof = <usize>blk << 2;
    iscale(c, i32x4.add(s00, t00), i32x4.add(s01, t01), v128.load(bs + bo), v128.load(bs + bo, 16), load<f32>(xd + dof), ld == 0 && blk == 0);
    if (q4) imins(c, v128.load(bm + bo), v128.load(bm + bo, 16), load<f32>(xs + dof));
  }
}

@inline function iscale(c: usize, s0: v128, s1: v128, w0: v128, w1: v128, d: f32, first: bool): void {
  const dv = f32x4.splat(d);
  const f0 = f32x4.convert_i32x4_s(s0), f1 = f32x4.convert_i32x4_s(s1);
  if (first) {
    v128.store(c, f32x4.mul(f0, f32x4.mul(w0, dv)));
    v128.store(c, f32x4.mul(f1, f32x4.mul(w1, dv)), 16);
  } else {
    v128.store(c, fmadd(f0, f32x4.mul(w0, dv), v128.load(c)));
    v128.store(c, fmadd(f1, f32x4.mul(w1, dv), v128.load(c, 16)), 16);
  }
}

@inline function imins(c: usize, m0: v128, m1: v128, s: f32): void {
  const sv = f32x4.splat(s);
  v128.store(c, fmadd(m0, sv, v128.load(c)));
  v128.store(c, fmadd(m1, sv, v128.load(c, 16)), 16);
}

/**
 * Output columns [n0, n1) (n0 a multiple of 8), rows of out ldo floats apart. xq: quantized x rows (i16, K per row), xd/xs:
 * per-row block scales and quantized sums (K/32 per row).
 */
export function igemm(out: usize, xq: usize, xd: usize, xs: usize, data: usize, scales: usize, mins: usize, dtype: i32,
  M: i32, N: i32, K: i32, acc: i32, scr: usize, n0: i32, n1: i32, ldo: i32): void {
  if (n0 >= n1) return;
  const panel = scr, psc = scr + IPANEL_BYTES, pmn = psc + ISCALE_BYTES, zero = pmn + ISCALE_BYTES, ctile = zero + (<usize>IKC << 1);
  memory.fill(zero, 0, <usize>IKC << 1);
  const lda = <usize>K << 1, ldd = <usize>(K >> 5) << 2, ldc = <usize>ldo << 2;
  const q4 = dtype == 4 || dtype == BQ4_KR;   // a min per block (× x's quantized block sum)
  for (let nb = n0; nb < n1; nb += INC) {
    const nc = min(INC, n1 - nb);
    for (let k0 = 0; k0 < K; k0 += IKC) {
      const kc = min(IKC, K - k0), nblk = kc >> 5;
      for (let p = 0; p < nc; p += 8) {
        const pi = <usize>(p >> 3);
        ipack(panel + pi * <usize>kc * 16, psc + pi * <usize>nblk * 32, pmn + pi * <usize>nblk * 32,
          dtype, data, scales, mins, K, nb + p, min(8, nc - p), k0, kc, zero);
      }
      const ld = acc != 0 || k0 > 0 ? 1 : 0;
      const kb = <usize>(k0 >> 5) << 2;
      for (let m = 0; m < M; m += 4) {
        const mr = min(4, M - m);
        const a = xq + <usize>m * lda + (<usize>k0 << 1);
        const ad = xd + <usize>m * ldd + kb, as = xs + <usize>m * ldd + kb;
        for (let p = 0; p < nc; p += 8) {
          const nr = min(8, nc - p);
          const pi = <usize>(p >> 3);
          const pp = panel + pi * <usize>kc * 16, ps = psc + pi * <usize>nblk * 32, pm = pmn + pi * <usize>nblk * 32;
          const c = out + ((<usize>m * <usize>ldo + <usize>(nb + p)) << 2);
          if (nr == 8) {
            if (mr == 4) imicro4x8(a, lda, ad, as, ldd, pp, ps, pm, nblk, c, ldc, ld, q4);
            else for (let i = 0; i < mr; i++) imicro1x8(a + <usize>i * lda, ad + <usize>i * ldd, as + <usize>i * ldd, pp, ps, pm, nblk, c + <usize>i * ldc, ld, q4);
          } else {
            for (let i = 0; i < mr; i++) {
              for (let j = 0; j < 8; j++) {
                store<f32>(ctile + (<usize>(i * 8 + j) << 2), ld && j < nr ? load<f32>(c + <usize>i * ldc + (<usize>j << 2)) : 0);
              }
              imicro1x8(a + <usize>i * lda, ad + <usize>i * ldd, as + <usize>i * ldd, pp, ps, pm, nblk, ctile + <usize>i * 32, 1, q4);
              for (let j = 0; j < nr; j++) store<f32>(c + <usize>i * ldc + (<usize>j << 2), load<f32>(ctile + (<usize>(i * 8 + j) << 2)));
            }
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// q4 in the relaxed build: i16x8.relaxed_dot_i8x16_i7x16_s multiplies 16 int8 activations by 16
// 4-bit levels (0..15, the 7-bit operand, so the result is defined on every engine) and adds them
// in pairs: 16 multiply-adds per operation, twice i32x4.dot_i16x8_s. The weights are packed per
// 8 output columns and k-quad (4 consecutive k) as [quad][8 columns][4 levels]; each row's 4
// activations of that quad are one 32-bit splat (a plain load on x86, where a 16-bit splat also
// needs a shuffle). So an i16 lane holds one column's sum over half the k of each quad: over a
// block of 32 that is 16 products of at most 127·15, |·| ≤ 30480 < 2¹⁵, exact without widening
// (each dot's pair, ≤ 3810, never saturates). At the block's end a pairwise add (i32) gives each
// column's exact block sum S, the same integer as the i16 path's, scaled and added in the same
// order (as iscale, then imins): results are bit for bit those igemm gives in the relaxed build.
// Activations are the int8 rows k_quant_rows writes.

const QNC: i32 = 8;

/** 16 int8 activations times 16 levels 0..15, added in pairs (relaxed build only: igemmQ4 is not called in the other). */
@inline function dotU4(x: v128, q: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i16x8.relaxed_dot_i8x16_i7x16_s(x, q);
  unreachable();
  return q;
}

/** Block b of q4 row `row` as 16 bytes (Q4_0, q40: its nibble bytes, rq: as regrouped), or zeros past the valid rows. */
@inline function q4BlockBytes(data: usize, K: i32, row: i32, valid: bool, b: i32, q40: bool, rq: bool = false): v128 {
  if (!valid) return i8x16.splat(0);
  if (q40) return v128.load(q40Nibs(data, K, row, b, rq));
  const blk = <usize>row * <usize>(K >> 5) + <usize>b;
  return v128.load(data + (blk << 4));
}

/** 16 bytes of Q4_K (repacked) row `row`'s nibbles: of the 32 at the sub-block pair holding element k, from byte h (0 or 16); zeros past the valid rows. */
@inline function q4kBytes(data: usize, K: i32, row: i32, valid: bool, k: i32, h: i32): v128 {
  if (!valid) return i8x16.splat(0);
  return v128.load(superAt(data, K, row, k, 152) + 24 + <usize>(((k & 255) >> 6) << 5) + <usize>h);
}

/** 4 columns' 4 quads (a_i: column i as i32 lanes) transposed to 4 quad vectors (out_t: quad t of columns 0..3), stored `stride` apart. */
@inline function transpose4x4(dst: usize, stride: usize, a0: v128, a1: v128, a2: v128, a3: v128): void {
  const t0 = v128.shuffle<i32>(a0, a1, 0, 4, 1, 5), t1 = v128.shuffle<i32>(a0, a1, 2, 6, 3, 7);
  const t2 = v128.shuffle<i32>(a2, a3, 0, 4, 1, 5), t3 = v128.shuffle<i32>(a2, a3, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<i32>(t0, t2, 0, 1, 4, 5));
  v128.store(dst + stride, v128.shuffle<i32>(t0, t2, 2, 3, 6, 7));
  v128.store(dst + 2 * stride, v128.shuffle<i32>(t1, t3, 0, 1, 4, 5));
  v128.store(dst + 3 * stride, v128.shuffle<i32>(t1, t3, 2, 3, 6, 7));
}

/**
 * Row `row`'s scale codes (mo = 0: u8 × D) or min codes (mo = nb: i8 × M) of blocks b..b+3 as f32x4,
 * the same products as one by one; zeros past the valid rows.
 */
@inline function q4Codes(scales: usize, mb: usize, row: i32, valid: bool, b: i32, mo: i32): v128 {
  if (!valid) return f32x4.splat(0);
  const meta = scales + <usize>row * mb, c = meta + 8 + <usize>(mo + b);
  return mo == 0 ? f32x4.mul(codes4u(c), v128.load32_splat(meta)) : f32x4.mul(codes4s(c), v128.load32_splat(meta + 4));
}

/**
 * Pack 8 q4 rows (output columns n..n+7; nr valid), k in [k0, k0+kc), into dst [kc/4][8][4]
 * levels and their block scales and mins into [kc/32][8] f32.
 */
function ipackQ4(dst: usize, dsc: usize, dmn: usize, data: usize, scales: usize, K: i32, n: i32, nr: i32, k0: i32, kc: i32, q40: bool, k4: bool, rq: bool): void {
  const nb = K >> 5, b0 = k0 >> 5, kb = kc >> 5, mb = q4MetaBytes(K);
  if (k4) {
    // Q4_K (repacked): sub-block j's d·sc_j and −dmin·m_j, as ipack
    for (let b = 0; b < kb; b++) {
      for (let r = 0; r < QNC; r++) {
        const o = <usize>(b * QNC + r) << 2;
        if (r < nr) {
          const k = k0 + (b << 5), src = superAt(data, K, n + r, k, 152), j = <usize>((k >> 5) & 7);
          store<f32>(dsc + o, load<f32>(src) * <f32>load<u8>(src + 8 + j));
          store<f32>(dmn + o, -(load<f32>(src, 4) * <f32>load<u8>(src + 16 + j)));
        } else { store<f32>(dsc + o, 0); store<f32>(dmn + o, 0); }
      }
    }
  }
  if (q40) {
    // Q4_0: each block's f16 scale d (its min −8·d is taken off in integers, q40Fold)
    for (let b = 0; b < kb; b++) {
      for (let r = 0; r < QNC; r++) {
        store<f32>(dsc + (<usize>(b * QNC + r) << 2), r < nr ? f16ToF32Scalar(load<u16>(q40Half(data, K, n + r, (k0 >> 5) + b, rq))) : 0);
      }
    }
  }
  // scales and mins, 4 blocks × 4 columns at a time from the rows' codes (a 4×4 transpose), the rest one by one
  const kb4 = q40 || k4 ? 0 : kb & ~3;
  for (let g = 0; g < QNC; g += 4) {
    for (let b = 0; b < kb4; b += 4) {
      const s0 = q4Codes(scales, mb, n + g, g < nr, b0 + b, 0), s1 = q4Codes(scales, mb, n + g + 1, g + 1 < nr, b0 + b, 0);
      const s2 = q4Codes(scales, mb, n + g + 2, g + 2 < nr, b0 + b, 0), s3 = q4Codes(scales, mb, n + g + 3, g + 3 < nr, b0 + b, 0);
      transpose4x4(dsc + (<usize>(b * QNC + g) << 2), QNC << 2, s0, s1, s2, s3);
      const m0 = q4Codes(scales, mb, n + g, g < nr, b0 + b, nb), m1 = q4Codes(scales, mb, n + g + 1, g + 1 < nr, b0 + b, nb);
      const m2 = q4Codes(scales, mb, n + g + 2, g + 2 < nr, b0 + b, nb), m3 = q4Codes(scales, mb, n + g + 3, g + 3 < nr, b0 + b, nb);
      transpose4x4(dmn + (<usize>(b * QNC + g) << 2), QNC << 2, m0, m1, m2, m3);
    }
  }
  const kbEnd = q40 || k4 ? 0 : kb;
  for (let b = kb4; b < kbEnd; b++) {
    for (let r = 0; r < QNC; r++) {
      const o = (<usize>(b * QNC + r) << 2);
      if (r < nr) {
        const meta = scales + <usize>(n + r) * mb, c = meta + 8 + <usize>(b0 + b);
        store<f32>(dsc + o, <f32>load<u8>(c) * load<f32>(meta));
        store<f32>(dmn + o, <f32>load<i8>(c + <usize>nb) * load<f32>(meta, 4));
      } else { store<f32>(dsc + o, 0); store<f32>(dmn + o, 0); }
    }
  }
  for (let b = 0; b < kb; b++) {
    // elements 0..15 of a block are its bytes' low nibbles (quads 0..3), 16..31 the high ones (weight-format.ts)
    const d = dst + (<usize>b << 8);   // 8 quads × 32 bytes per block
    if (k4) {
      // sub-block 2c + s: nibble s of the 32 bytes at 32c (quads 0..3 from the first 16, 4..7 the next)
      const k = k0 + (b << 5), e = k & 255, hi = ((e >> 5) & 1) != 0;
      for (let g = 0; g < 2; g++) {
        const r0 = n + g * 4, o = d + (<usize>g << 4);
        const v0 = q4kBytes(data, K, r0, g * 4 < nr, k, 0), v1 = q4kBytes(data, K, r0 + 1, g * 4 + 1 < nr, k, 0);
        const v2 = q4kBytes(data, K, r0 + 2, g * 4 + 2 < nr, k, 0), v3 = q4kBytes(data, K, r0 + 3, g * 4 + 3 < nr, k, 0);
        const w0 = q4kBytes(data, K, r0, g * 4 < nr, k, 16), w1 = q4kBytes(data, K, r0 + 1, g * 4 + 1 < nr, k, 16);
        const w2 = q4kBytes(data, K, r0 + 2, g * 4 + 2 < nr, k, 16), w3 = q4kBytes(data, K, r0 + 3, g * 4 + 3 < nr, k, 16);
        if (hi) {
          transpose4x4(o, 32, nibHi(v0), nibHi(v1), nibHi(v2), nibHi(v3));
          transpose4x4(o + 128, 32, nibHi(w0), nibHi(w1), nibHi(w2), nibHi(w3));
        } else {
          transpose4x4(o, 32, nibLo(v0), nibLo(v1), nibLo(v2), nibLo(v3));
          transpose4x4(o + 128, 32, nibLo(w0), nibLo(w1), nibLo(w2), nibLo(w3));
        }
      }
      continue;
    }
    for (let g = 0; g < 2; g++) {
      const r0 = n + g * 4;
      const v0 = q4BlockBytes(data, K, r0, g * 4 < nr, b0 + b, q40, rq), v1 = q4BlockBytes(data, K, r0 + 1, g * 4 + 1 < nr, b0 + b, q40, rq);
      const v2 = q4BlockBytes(data, K, r0 + 2, g * 4 + 2 < nr, b0 + b, q40, rq), v3 = q4BlockBytes(data, K, r0 + 3, g * 4 + 3 < nr, b0 + b, q40, rq);
      const o = d + (<usize>g << 4);
      transpose4x4(o, 32, nibLo(v0), nibLo(v1), nibLo(v2), nibLo(v3));
      transpose4x4(o + 128, 32, nibHi(v0), nibHi(v1), nibHi(v2), nibHi(v3));
    }
  }
}

/**
 * One row's block: the two accumulators' column sums, folded into c[0..7] as iscale then imins (the
 * row's scale and quantized sum splatted straight from memory, a plain load on x86).
 */
@inline function q4Fold(c: usize, s0: v128, s1: v128, w0: v128, w1: v128, m0: v128, m1: v128, xd: usize, xs: usize, first: bool): void {
  const dv = v128.load32_splat(xd), sv = v128.load32_splat(xs);
  const f0 = f32x4.convert_i32x4_s(i32x4.extadd_pairwise_i16x8_s(s0)), f1 = f32x4.convert_i32x4_s(i32x4.extadd_pairwise_i16x8_s(s1));
  let c0: v128, c1: v128;
  if (first) {
    c0 = f32x4.mul(f0, f32x4.mul(w0, dv)); c1 = f32x4.mul(f1, f32x4.mul(w1, dv));
  } else {
    c0 = fmadd(f0, f32x4.mul(w0, dv), v128.load(c)); c1 = fmadd(f1, f32x4.mul(w1, dv), v128.load(c, 16));
  }
  v128.store(c, fmadd(m0, sv, c0));
  v128.store(c, fmadd(m1, sv, c1), 16);
}

/**
 * Q4_0's fold of one row's block: the column sums Σ q·q_x of the stored levels less the row's 8·Σ q_x
 * (an i32 at xc, blockSums8) are the exact integers Σ (q − 8)·q_x, times d_w·d_x (as iscale).
 */
@inline function q40Fold(c: usize, s0: v128, s1: v128, w0: v128, w1: v128, xd: usize, xc: usize, first: bool): void {
  const dv = v128.load32_splat(xd), corr = v128.load32_splat(xc);
  const f0 = f32x4.convert_i32x4_s(i32x4.sub(i32x4.extadd_pairwise_i16x8_s(s0), corr));
  const f1 = f32x4.convert_i32x4_s(i32x4.sub(i32x4.extadd_pairwise_i16x8_s(s1), corr));
  if (first) {
    v128.store(c, f32x4.mul(f0, f32x4.mul(w0, dv)));
    v128.store(c, f32x4.mul(f1, f32x4.mul(w1, dv)), 16);
  } else {
    v128.store(c, fmadd(f0, f32x4.mul(w0, dv), v128.load(c)));
    v128.store(c, fmadd(f1, f32x4.mul(w1, dv), v128.load(c, 16)), 16);
  }
}

/** 8·Σ q over each block of 32 of an int8 row of K at x8, as i32 at dst (Q4_0's correction, q40Fold). */
export function blockSums8(x8: usize, K: i32, dst: usize): void {
  for (let b = 0; b < K >> 5; b++) {
    const p = x8 + (<usize>b << 5);
    const s = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.extadd_pairwise_i8x16_s(v128.load(p)), i16x8.extadd_pairwise_i8x16_s(v128.load(p, 16))));
    store<i32>(dst + (<usize>b << 2), (i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3)) << 3);
  }
}

/**
 * c[R][8] (+)= over nblk blocks, R = 1..4 rows of int8 activations (a8, lda8 bytes apart; scales xd,
 * quantized sums xs: ldd bytes apart) against an 8-column q4 panel.
 */
@inline function imicroQ4(a8: usize, lda8: usize, xd: usize, xs: usize, ldd: usize, b: usize, bs: usize, bm: usize, nblk: i32,
  c: usize, ldc: usize, ld: i32, R: i32, q40: bool): void {
  let p = b;
  let r0 = a8, r1 = a8 + lda8, r2 = r1 + lda8, r3 = r2 + lda8;   // advance 32 bytes (one block) per block
  for (let blk = 0; blk < nblk; blk++) {
    const z = i16x8.splat(0);
    let s00 = z, s01 = z, s10 = z, s11 = z, s20 = z, s21 = z, s30 = z, s31 = z;
    const end = p + 256;
    while (p < end) {
      const b0 = v128.load(p), b1 = v128.load(p, 16);
      const x0 = v128.load32_splat(r0);
      s00 = i16x8.add(s00, dotU4(x0, b0)); s01 = i16x8.add(s01, dotU4(x0, b1));
      if (R > 1) {
        const x1 = v128.load32_splat(r1);
        s10 = i16x8.add(s10, dotU4(x1, b0)); s11 = i16x8.add(s11, dotU4(x1, b1));
      }
      if (R > 2) {
        const x2 = v128.load32_splat(r2);
        s20 = i16x8.add(s20, dotU4(x2, b0)); s21 = i16x8.add(s21, dotU4(x2, b1));
      }
      if (R > 3) {
        const x3 = v128.load32_splat(r3);
        s30 = i16x8.add(s30, dotU4(x3, b0)); s31 = i16x8.add(s31, dotU4(x3, b1));
      }
      p += 32; r0 += 4; r1 += 4; r2 += 4; r3 += 4;
    }
    const bo = <usize>blk << 5, dof = <usize>blk << 2;
    const w0 = v128.load(bs + bo), w1 = v128.load(bs + bo, 16);
    const first = ld == 0 && blk == 0;
    if (q40) {
      // (xs: the rows' 8·Σ q_x per block)
      q40Fold(c, s00, s01, w0, w1, xd + dof, xs + dof, first);
      if (R > 1) q40Fold(c + ldc, s10, s11, w0, w1, xd + ldd + dof, xs + ldd + dof, first);
      if (R > 2) q40Fold(c + 2 * ldc, s20, s21, w0, w1, xd + 2 * ldd + dof, xs + 2 * ldd + dof, first);
      if (R > 3) q40Fold(c + 3 * ldc, s30, s31, w0, w1, xd + 3 * ldd + dof, xs + 3 * ldd + dof, first);
      continue;
    }
    const m0 = v128.load(bm + bo), m1 = v128.load(bm + bo, 16);
    q4Fold(c, s00, s01, w0, w1, m0, m1, xd + dof, xs + dof, first);
    if (R > 1) q4Fold(c + ldc, s10, s11, w0, w1, m0, m1, xd + ldd + dof, xs + ldd + dof, first);
    if (R > 2) q4Fold(c + 2 * ldc, s20, s21, w0, w1, m0, m1, xd + 2 * ldd + dof, xs + 2 * ldd + dof, first);
    if (R > 3) q4Fold(c + 3 * ldc, s30, s31, w0, w1, m0, m1, xd + 3 * ldd + dof, xs + 3 * ldd + dof, first);
  }
}
function imicroQ4R1(a8: usize, lda8: usize, xd: usize, xs: usize, ldd: usize, b: usize, bs: usize, bm: usize, nblk: i32, c: usize, ldc: usize, ld: i32): void { imicroQ4(a8, lda8, xd, xs, ldd, b, bs, bm, nblk, c, ldc, ld, 1, false); }
function imicroQ40R1(a8: usize, lda8: usize, xd: usize, xs: usize, ldd: usize, b: usize, bs: usize, bm: usize, nblk: i32, c: usize, ldc: usize, ld: i32): void { imicroQ4(a8, lda8, xd, xs, ldd, b, bs, bm, nblk, c, ldc, ld, 1, true); }
function imicroQ4R2(a8: usize, lda8: usize, xd: usize, xs: usize, ldd: usize, b: usize, bs: usize, bm: usize, nblk: i32, c: usize, ldc: usize, ld: i32): void { imicroQ4(a8, lda8, xd, xs, ldd, b, bs, bm, nblk, c, ldc, ld, 2, false); }
function imicroQ40R2(a8: usize, lda8: usize, xd: usize, xs: usize, ldd: usize, b: usize, bs: usize, bm: usize, nblk: i32, c: usize, ldc: usize, ld: i32): void { imicroQ4(a8, lda8, xd, xs, ldd, b, bs, bm, nblk, c, ldc, ld, 2, true); }
function imicroQ4R3(a8: usize, lda8: usize, xd: usize, xs: usize, ldd: usize, b: usize, bs: usize, bm: usize, nblk: i32, c: usize, ldc: usize, ld: i32): void { imicroQ4(a8, lda8, xd, xs, ldd, b, bs, bm, nblk, c, ldc, ld, 3, false); }
function imicroQ40R3(a8: usize, lda8: usize, xd: usize, xs: usize, ldd: usize, b: usize, bs: usize, bm: usize, nblk: i32, c: usize, ldc: usize, ld: i32): void { imicroQ4(a8, lda8, xd, xs, ldd, b, bs, bm, nblk, c, ldc, ld, 3, true); }
function imicroQ4R4(a8: usize, lda8: usize, xd: usize, xs: usize, ldd: usize, b: usize, bs: usize, bm: usize, nblk: i32, c: usize, ldc: usize, ld: i32): void { imicroQ4(a8, lda8, xd, xs, ldd, b, bs, bm, nblk, c, ldc, ld, 4, false); }
function imicroQ40R4(a8: usize, lda8: usize, xd: usize, xs: usize, ldd: usize, b: usize, bs: usize, bm: usize, nblk: i32, c: usize, ldc: usize, ld: i32): void { imicroQ4(a8, lda8, xd, xs, ldd, b, bs, bm, nblk, c, ldc, ld, 4, true); }

/**
 * igemm for q4 weights in the relaxed build (same arguments, the int8 rows x8 in place of the i16
 * ones); with q40, for Q4_0 blocks at data (scales unused), xs then the rows' 8·Σ q_x per block (blockSums8);
 * with k4, for Q4_K repacked (scales unused; q4's arithmetic with each sub-block's scale and min);
 * rq with q40: Q4_0 as regrouped at load (blocks.as BQ4_0R).
 */
export function igemmQ4(out: usize, x8: usize, xd: usize, xs: usize, data: usize, scales: usize,
  M: i32, N: i32, K: i32, acc: i32, scr: usize, n0: i32, n1: i32, ldo: i32, q40: bool, k4: bool = false, rq: bool = false): void {
  if (n0 >= n1) return;
  const panel = scr, psc = scr + IPANEL_BYTES, pmn = psc + ISCALE_BYTES, ctile = pmn + ISCALE_BYTES + (<usize>IKC << 1);
  const lda8 = <usize>K, ldd = <usize>(K >> 5) << 2, ldc = <usize>ldo << 2;
  for (let nb = n0; nb < n1; nb += INC) {
    const nc = min(INC, n1 - nb);
    for (let k0 = 0; k0 < K; k0 += IKC) {
      const kc = min(IKC, K - k0), nblk = kc >> 5;
      for (let p = 0; p < nc; p += QNC) {
        const pi = <usize>(p / QNC);
        ipackQ4(panel + pi * <usize>kc * QNC, psc + pi * <usize>nblk * 32, pmn + pi * <usize>nblk * 32, data, scales, K, nb + p, min(QNC, nc - p), k0, kc, q40, k4, rq);
      }
      const ld = acc != 0 || k0 > 0 ? 1 : 0;
      const kb = <usize>(k0 >> 5) << 2;
      for (let m = 0; m < M; m += 4) {
        const R = min(4, M - m);
        const a = x8 + <usize>m * lda8 + <usize>k0;
        const ad = xd + <usize>m * ldd + kb, as = xs + <usize>m * ldd + kb;
        for (let p = 0; p < nc; p += QNC) {
          const nr = min(QNC, nc - p);
          const pi = <usize>(p / QNC);
          const pp = panel + pi * <usize>kc * QNC, ps = psc + pi * <usize>nblk * 32, pm = pmn + pi * <usize>nblk * 32;
          const c = out + ((<usize>m * <usize>ldo + <usize>(nb + p)) << 2);
          // a partial column chunk goes through an 8-wide tile (loaded, updated, the valid part stored back)
          const full = nr == QNC;
          const ct = full ? c : ctile, ldt = full ? ldc : <usize>(QNC << 2);
          if (!full) {
            for (let i = 0; i < R; i++) for (let j = 0; j < QNC; j++) {
              store<f32>(ctile + (<usize>(i * QNC + j) << 2), ld && j < nr ? load<f32>(c + <usize>i * ldc + (<usize>j << 2)) : 0);
            }
          }
          const ldt2 = full ? ld : 1;
          if (q40) {
            if (R == 4) imicroQ40R4(a, lda8, ad, as, ldd, pp, ps, pm, nblk, ct, ldt, ldt2);
            else if (R == 3) imicroQ40R3(a, lda8, ad, as, ldd, pp, ps, pm, nblk, ct, ldt, ldt2);
            else if (R == 2) imicroQ40R2(a, lda8, ad, as, ldd, pp, ps, pm, nblk, ct, ldt, ldt2);
            else imicroQ40R1(a, lda8, ad, as, ldd, pp, ps, pm, nblk, ct, ldt, ldt2);
          } else if (R == 4) imicroQ4R4(a, lda8, ad, as, ldd, pp, ps, pm, nblk, ct, ldt, ldt2);
          else if (R == 3) imicroQ4R3(a, lda8, ad, as, ldd, pp, ps, pm, nblk, ct, ldt, ldt2);
          else if (R == 2) imicroQ4R2(a, lda8, ad, as, ldd, pp, ps, pm, nblk, ct, ldt, ldt2);
          else imicroQ4R1(a, lda8, ad, as, ldd, pp, ps, pm, nblk, ct, ldt, ldt2);
          if (!full) {
            for (let i = 0; i < R; i++) for (let j = 0; j < nr; j++) store<f32>(c + <usize>i * ldc + (<usize>j << 2), load<f32>(ctile + (<usize>(i * QNC + j) << 2)));
          }
        }
      }
    }
  }
}
