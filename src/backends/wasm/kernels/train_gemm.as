// Training GEMM: C[M,N] (+)= op(A)[M,K] · op(B)[K,N] for the three layouts backprop needs, without
// transposing anything up front. op(A)(m,k) is A[m·lda + k] (ta = 0) or A[k·lda + m] (ta = 1);
// op(B)(k,n) is B[k·ldb + n] (tb = 0) or B[n·ldb + k] (tb = 1). So x·Wᵀ is (0, 1), dy·W is (0, 0)
// and dyᵀ·x is (1, 0).
//
// C is cut into tiles of MT×NT that depend on the shape only; a tile is one unit of parallel
// work, owned by one thread. For every KC-slice of K the tile packs its block of op(A) into
// panels [kc][6] and its block of op(B) into panels [kc][8] (both L2-resident), then runs a 6×8
// register-blocked micro-kernel (12 f32x4 accumulators: the widest tile V8 keeps in its 16 xmm
// registers; measured ~63-66 GFLOP/s per core against ~58 for 4×8). Every element of C is
// computed by the same micro-kernel over the same K order wherever its tile boundaries fall, so
// results do not depend on how many threads ran (edge tiles go through a zero-padded 6×8 copy).
// Packing both operands costs about 1/(2·MT) + 1/(2·NT) of the arithmetic.

import { fmadd } from './simd';

export const TMR: i32 = 6;
export const TNR: i32 = 8;
export const TKC: i32 = 256;
export const TMT: i32 = 240;     // multiple of TMR
export const TNT: i32 = 256;     // multiple of TNR
const PA_BYTES: i32 = TMT * TKC * 4;
const PB_BYTES: i32 = TNT * TKC * 4;
const CT_BYTES: i32 = TMR * TNR * 4;
/** Scratch bytes per thread: packed A and B blocks, an edge tile, a row of zeros. */
export const TGEMM_SCRATCH: i32 = PA_BYTES + PB_BYTES + CT_BYTES + TKC * 4 + 64;

/** c[6][8] (+)= a[kc][6] · b[kc][8] (both packed); c rows ldc bytes apart; ld = 0 starts from zero. */
function micro6x8(a: usize, b: usize, kc: i32, c: usize, ldc: usize, ld: i32): void {
  const c1 = c + ldc, c2 = c1 + ldc, c3 = c2 + ldc, c4 = c3 + ldc, c5 = c4 + ldc;
  let c00 = f32x4.splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  let c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  if (ld) {
    c00 = v128.load(c); c01 = v128.load(c, 16); c10 = v128.load(c1); c11 = v128.load(c1, 16);
    c20 = v128.load(c2); c21 = v128.load(c2, 16); c30 = v128.load(c3); c31 = v128.load(c3, 16);
    c40 = v128.load(c4); c41 = v128.load(c4, 16); c50 = v128.load(c5); c51 = v128.load(c5, 16);
  }
  let p = b, q = a;
  const end = b + (<usize>kc << 5);
  while (p < end) {
    const b0 = v128.load(p), b1 = v128.load(p, 16);
    const x0 = v128.load32_splat(q); c00 = fmadd(x0, b0, c00); c01 = fmadd(x0, b1, c01);
    const x1 = v128.load32_splat(q, 4); c10 = fmadd(x1, b0, c10); c11 = fmadd(x1, b1, c11);
    const x2 = v128.load32_splat(q, 8); c20 = fmadd(x2, b0, c20); c21 = fmadd(x2, b1, c21);
    const x3 = v128.load32_splat(q, 12); c30 = fmadd(x3, b0, c30); c31 = fmadd(x3, b1, c31);
    const x4 = v128.load32_splat(q, 16); c40 = fmadd(x4, b0, c40); c41 = fmadd(x4, b1, c41);
    const x5 = v128.load32_splat(q, 20); c50 = fmadd(x5, b0, c50); c51 = fmadd(x5, b1, c51);
    p += 32; q += 24;
  }
  v128.store(c, c00); v128.store(c, c01, 16); v128.store(c1, c10); v128.store(c1, c11, 16);
  v128.store(c2, c20); v128.store(c2, c21, 16); v128.store(c3, c30); v128.store(c3, c31, 16);
  v128.store(c4, c40); v128.store(c4, c41, 16); v128.store(c5, c50); v128.store(c5, c51, 16);
}

/** Pack op(A) rows [m0, m0+mc) × K-slice [k0, k0+kc) into panels [kc][6] (missing rows are zero). */
function packA(dst: usize, a: usize, lda: i32, ta: i32, m0: i32, mc: i32, k0: i32, kc: i32, zero: usize): void {
  for (let p = 0; p < mc; p += TMR) {
    const nr = min(TMR, mc - p);
    const d0 = dst + <usize>p * <usize>kc * 4;
    if (ta == 0) {
      const rs = <usize>lda << 2;
      const r0 = a + ((<usize>(m0 + p) * <usize>lda + <usize>k0) << 2);
      const s0 = r0, s1 = nr > 1 ? r0 + rs : zero, s2 = nr > 2 ? r0 + 2 * rs : zero;
      const s3 = nr > 3 ? r0 + 3 * rs : zero, s4 = nr > 4 ? r0 + 4 * rs : zero, s5 = nr > 5 ? r0 + 5 * rs : zero;
      const kc4 = kc & ~3;
      let k = 0;
      for (; k < kc4; k += 4) {
        const o = <usize>k << 2;
        const a0 = v128.load(s0 + o), a1 = v128.load(s1 + o), a2 = v128.load(s2 + o), a3 = v128.load(s3 + o);
        const a4 = v128.load(s4 + o), a5 = v128.load(s5 + o);
        const t0 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7);
        const t2 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), t3 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7);
        const u0 = v128.shuffle<f32>(a4, a5, 0, 4, 1, 5), u1 = v128.shuffle<f32>(a4, a5, 2, 6, 3, 7);
        const d = d0 + <usize>k * 24;
        v128.store(d, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
        store<i64>(d + 16, i64x2.extract_lane(u0, 0));
        v128.store(d + 24, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7));
        store<i64>(d + 40, i64x2.extract_lane(u0, 1));
        v128.store(d + 48, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5));
        store<i64>(d + 64, i64x2.extract_lane(u1, 0));
        v128.store(d + 72, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7));
        store<i64>(d + 88, i64x2.extract_lane(u1, 1));
      }
      for (; k < kc; k++) {
        const o = <usize>k << 2, d = d0 + <usize>k * 24;
        store<f32>(d, load<f32>(s0 + o)); store<f32>(d, load<f32>(s1 + o), 4);
        store<f32>(d, load<f32>(s2 + o), 8); store<f32>(d, load<f32>(s3 + o), 12);
        store<f32>(d, load<f32>(s4 + o), 16); store<f32>(d, load<f32>(s5 + o), 20);
      }
    } else {
      const rs = <usize>lda << 2;
      let s = a + ((<usize>k0 * <usize>lda + <usize>(m0 + p)) << 2);
      if (nr == TMR) {
        for (let k = 0; k < kc; k++) {
          const d = d0 + <usize>k * 24;
          v128.store(d, v128.load(s));
          store<i64>(d + 16, load<i64>(s + 16));
          s += rs;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          const d = d0 + <usize>k * 24;
          for (let i = 0; i < TMR; i++) store<f32>(d + (<usize>i << 2), i < nr ? load<f32>(s + (<usize>i << 2)) : 0);
          s += rs;
        }
      }
    }
  }
}

/** Pack op(B) columns [n0, n0+nc) × K-slice [k0, k0+kc) into panels [kc][8] (missing columns are zero). */
function packB(dst: usize, b: usize, ldb: i32, tb: i32, n0: i32, nc: i32, k0: i32, kc: i32, zero: usize): void {
  for (let p = 0; p < nc; p += TNR) {
    const nr = min(TNR, nc - p);
    const d0 = dst + <usize>p * <usize>kc * 4;
    if (tb == 1) {
      const rs = <usize>ldb << 2;
      const r0 = b + ((<usize>(n0 + p) * <usize>ldb + <usize>k0) << 2);
      const s0 = r0, s1 = nr > 1 ? r0 + rs : zero, s2 = nr > 2 ? r0 + 2 * rs : zero, s3 = nr > 3 ? r0 + 3 * rs : zero;
      const s4 = nr > 4 ? r0 + 4 * rs : zero, s5 = nr > 5 ? r0 + 5 * rs : zero;
      const s6 = nr > 6 ? r0 + 6 * rs : zero, s7 = nr > 7 ? r0 + 7 * rs : zero;
      const kc4 = kc & ~3;
      let k = 0;
      for (; k < kc4; k += 4) {
        const o = <usize>k << 2;
        const a0 = v128.load(s0 + o), a1 = v128.load(s1 + o), a2 = v128.load(s2 + o), a3 = v128.load(s3 + o);
        const b0 = v128.load(s4 + o), b1 = v128.load(s5 + o), b2 = v128.load(s6 + o), b3 = v128.load(s7 + o);
        const t0 = v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(a0, a1, 2, 6, 3, 7);
        const t2 = v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), t3 = v128.shuffle<f32>(a2, a3, 2, 6, 3, 7);
        const u0 = v128.shuffle<f32>(b0, b1, 0, 4, 1, 5), u1 = v128.shuffle<f32>(b0, b1, 2, 6, 3, 7);
        const u2 = v128.shuffle<f32>(b2, b3, 0, 4, 1, 5), u3 = v128.shuffle<f32>(b2, b3, 2, 6, 3, 7);
        const d = d0 + (<usize>k << 5);
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
        const o = <usize>k << 2, d = d0 + (<usize>k << 5);
        store<f32>(d, load<f32>(s0 + o)); store<f32>(d, load<f32>(s1 + o), 4);
        store<f32>(d, load<f32>(s2 + o), 8); store<f32>(d, load<f32>(s3 + o), 12);
        store<f32>(d, load<f32>(s4 + o), 16); store<f32>(d, load<f32>(s5 + o), 20);
        store<f32>(d, load<f32>(s6 + o), 24); store<f32>(d, load<f32>(s7 + o), 28);
      }
    } else {
      const rs = <usize>ldb << 2;
      let s = b + ((<usize>k0 * <usize>ldb + <usize>(n0 + p)) << 2);
      if (nr == TNR) {
        for (let k = 0; k < kc; k++) {
          const d = d0 + (<usize>k << 5);
          v128.store(d, v128.load(s)); v128.store(d, v128.load(s, 16), 16);
          s += rs;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          const d = d0 + (<usize>k << 5);
          for (let j = 0; j < TNR; j++) store<f32>(d + (<usize>j << 2), j < nr ? load<f32>(s + (<usize>j << 2)) : 0);
          s += rs;
        }
      }
    }
  }
}

/** One tile: rows [m0, m0+mc), columns [n0, n0+nc) of C, all of K. */
export function gemmTile(c: usize, ldc: i32, a: usize, lda: i32, ta: i32, b: usize, ldb: i32, tb: i32,
  K: i32, acc: i32, m0: i32, mc: i32, n0: i32, nc: i32, scr: usize): void {
  const pa = scr, pb = scr + <usize>PA_BYTES, ct = pb + <usize>PB_BYTES, zero = ct + <usize>CT_BYTES;
  const ldcB = <usize>ldc << 2;
  if (K <= 0) {
    if (acc) return;
    for (let i = 0; i < mc; i++) memory.fill(c + ((<usize>(m0 + i) * <usize>ldc + <usize>n0) << 2), 0, <usize>nc << 2);
    return;
  }
  memory.fill(zero, 0, <usize>TKC << 2);
  for (let k0 = 0; k0 < K; k0 += TKC) {
    const kc = min(TKC, K - k0);
    packA(pa, a, lda, ta, m0, mc, k0, kc, zero);
    packB(pb, b, ldb, tb, n0, nc, k0, kc, zero);
    const ld = acc != 0 || k0 > 0 ? 1 : 0;
    for (let jp = 0; jp < nc; jp += TNR) {
      const nr = min(TNR, nc - jp);
      const bp = pb + <usize>jp * <usize>kc * 4;
      for (let ip = 0; ip < mc; ip += TMR) {
        const mr = min(TMR, mc - ip);
        const ap = pa + <usize>ip * <usize>kc * 4;
        const cp = c + ((<usize>(m0 + ip) * <usize>ldc + <usize>(n0 + jp)) << 2);
        if (mr == TMR && nr == TNR) { micro6x8(ap, bp, kc, cp, ldcB, ld); continue; }
        for (let i = 0; i < TMR; i++) {
          for (let j = 0; j < TNR; j++) {
            store<f32>(ct + (<usize>(i * TNR + j) << 2), ld && i < mr && j < nr ? load<f32>(cp + <usize>i * ldcB + (<usize>j << 2)) : 0);
          }
        }
        micro6x8(ap, bp, kc, ct, <usize>TNR << 2, 1);
        for (let i = 0; i < mr; i++) {
          for (let j = 0; j < nr; j++) store<f32>(cp + <usize>i * ldcB + (<usize>j << 2), load<f32>(ct + (<usize>(i * TNR + j) << 2)));
        }
      }
    }
  }
}

/** Number of mt×nt tiles of an M×N product (the parallel work items). */
export function gemmTiles(M: i32, N: i32, mt: i32, nt: i32): i32 { return ((M + mt - 1) / mt) * ((N + nt - 1) / nt); }

/**
 * Tiles c, c + nc, c + 2nc, ... of the product, tiles of mt×nt (multiples of 6 and 8, at most
 * TMT×TNT). Every element is computed the same way whatever the tile sizes: its own chain of
 * multiply-adds over K in KC-slices, so the caller may pick tiles for load balance.
 */
export function trainGemm(c: usize, ldc: i32, a: usize, lda: i32, ta: i32, b: usize, ldb: i32, tb: i32,
  M: i32, N: i32, K: i32, acc: i32, scr: usize, mt: i32, nt: i32, ch: i32, nch: i32): void {
  const tnN = (N + nt - 1) / nt, items = gemmTiles(M, N, mt, nt);
  for (let it = ch; it < items; it += nch) {
    const mi = it / tnN, ni = it - mi * tnN;
    const m0 = mi * mt, n0 = ni * nt;
    gemmTile(c, ldc, a, lda, ta, b, ldb, tb, K, acc, m0, min(mt, M - m0), n0, min(nt, N - n0), scr);
  }
}

/** The whole product on the calling thread (small products inside other kernels, e.g. attention). */
export function localGemm(c: usize, ldc: i32, a: usize, lda: i32, ta: i32, b: usize, ldb: i32, tb: i32,
  M: i32, N: i32, K: i32, acc: i32, scr: usize): void {
  trainGemm(c, ldc, a, lda, ta, b, ldb, tb, M, N, K, acc, scr, TMT, TNT, 0, 1);
}
