// Integer GEMM for q8/q4 weights (prefill): out[M,N] (+)= x[M,K] · Wᵀ with x quantized per row to
// int8 blocks of 32 (llama.cpp's Q8_0/Q8_1 activations, stored widened to i16) and the weights'
// integer values packed per chunk of 8 output columns into i16 k-pairs, so that one
// i32x4.dot_i16x8_s does 8 multiply-adds (f32 FMA does 4). A 4×8 micro-kernel keeps 8 i32x4
// accumulators over one 32-wide block, then folds them into the f32 output with the block's
// scales (x scale × weight scale; for q4 also min × Σx). Same blocking as the f32 GEMM.

import { fmadd, q4MetaBytes, nibLo, nibHi } from './simd';

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
  const nb = K >> 5, b0 = k0 >> 5, kb = kc >> 5, q4 = dtype == 4, mb = q4MetaBytes(K);
  // scales / mins (q4: decoded from the row's codes, simd.as q4MetaBytes)
  for (let b = 0; b < kb; b++) {
    for (let r = 0; r < 8; r++) {
      const o = dsc + (<usize>(b * 8 + r) << 2);
      if (r < nr) {
        if (q4) {
          const meta = scales + <usize>(n + r) * mb, c = meta + 8 + <usize>(b0 + b);
          store<f32>(o, <f32>load<u8>(c) * load<f32>(meta));
          store<f32>(dmn + (<usize>(b * 8 + r) << 2), <f32>load<i8>(c + <usize>nb) * load<f32>(meta, 4));
        } else store<f32>(o, load<f32>(scales + ((<usize>(n + r) * <usize>nb + <usize>(b0 + b)) << 2)));
      } else {
        store<f32>(o, 0);
        if (q4) store<f32>(dmn + (<usize>(b * 8 + r) << 2), 0);
      }
    }
  }
  // values: per 8 k, each row gives an i16x8 = 4 k-pairs (as i32 lanes); transpose 4×4 per half
  for (let k = 0; k < kc; k += 8) {
    let a0: v128, a1: v128, a2: v128, a3: v128, c0: v128, c1: v128, c2: v128, c3: v128;
    if (dtype == 3) {
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
  const q4 = dtype == 4;
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
