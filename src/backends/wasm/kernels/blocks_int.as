// The one-token GEMV of Q8_0, Q4_0, Q4_K and Q6_K block weights with int8 activations: x is quantized per block
// of 32 exactly as for the q8/q4 weights (quantizeX: d = max|x|/127, q = round(x/d)), and each
// block's product is an exact int32 dot of the stored integers with q, times d_w·d_x. This is the
// arithmetic llama.cpp runs these types with (its Q8_0 activations), at the speed of our own q8/q4
// GEMV; it is not the exact f32 product of blocks.as, whose error is the summation order alone:
// here x's rounding to int8 adds the error TOL.intDotVsRef measures for q8/q4 (TOL.blockInt8VsF64 bounds the rest).
//
// Both builds form the same int32 block sums; only how they are split over lanes before the float
// multiply differs, so relaxed SIMD and SIMD128 agree to f32 rounding, not bit for bit.

import { fmadd, hsum, f16hiToF32Exact, f16x4At, nibLo, nibHi } from './simd';
import { q8Block, q8BlockSplit, q8PosOffset, q4Part, q4Sums4, q4Pair4, q4DotsG, q4Scaled4, q4ScaleG, q4CodesV, isum4, lane } from './gemv';
import { BQ8_0, BQ4_0, BQ4_K, BQ4_KR, BQ6_K, BQ6_KR, BQ4_0R, q6krLevels, q6krNatural } from './blocks';

/** Whether a block dtype has an int8-activation GEMV here. */
export function hasIntGemv(dtype: i32): bool { return dtype == BQ8_0 || dtype == BQ4_0 || dtype == BQ4_K || dtype == BQ4_KR || dtype == BQ6_K || dtype == BQ6_KR || dtype == BQ4_0R; }

/** The four IEEE halves at p, p + s, p + 2s, p + 3s as f32, exactly (no denormal operand). */
@inline function halves4(p: usize, s: usize): v128 {
  let v = i32x4.splat(<i32>load<u16>(p) << 16);
  v = i32x4.replace_lane(v, 1, <i32>load<u16>(p + s) << 16);
  v = i32x4.replace_lane(v, 2, <i32>load<u16>(p + 2 * s) << 16);
  v = i32x4.replace_lane(v, 3, <i32>load<u16>(p + 3 * s) << 16);
  return f16hiToF32Exact(v);
}

@inline function half1(p: usize): f32 { return f32x4.extract_lane(f16hiToF32Exact(i32x4.splat(<i32>load<u16>(p) << 16)), 0); }

/**
 * Q4_0's correction per block for the relaxed dot, lane i = 8·(q[2i] + q[2i+1] + q[16+2i] + q[17+2i]):
 * the relaxed dot needs its 7-bit operand non-negative, so it multiplies the stored nibbles
 * (0..15) and 8·Σq is taken back off in i16 (|values| ≤ 4·127·15, no overflow). Written at corr,
 * 16 bytes per block of 32, from the int8 q at q8.
 */
export function q4_0Correction(q8: usize, K: i32, corr: usize): void {
  const nb = K >> 5;
  for (let b = 0; b < nb; b++) {
    const p = q8 + (<usize>b << 5);
    const s = i16x8.add(i16x8.extadd_pairwise_i8x16_s(v128.load(p)), i16x8.extadd_pairwise_i8x16_s(v128.load(p, 16)));
    v128.store(corr + (<usize>b << 4), i16x8.shl(s, 3));
  }
}

/** Σ (q_w − 8)·q_x over one Q4_0 block (nibbles at w), as 4 lanes of f32 (exact integers). */
@inline function q4_0Block(w: usize, x16: usize, x8: usize, corr: usize): v128 {
  const v = v128.load(w);
  const lo = nibLo(v), hi = nibHi(v);
  if (ASC_FEATURE_RELAXED_SIMD) {
    const s = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x8), lo), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x8, 16), hi));
    return f32x4.convert_i32x4_s(i32x4.extadd_pairwise_i16x8_s(i16x8.sub(s, v128.load(corr))));
  } else {
    const e = i8x16.splat(8), l = i8x16.sub(lo, e), h = i8x16.sub(hi, e);
    const d0 = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(l), v128.load(x16));
    const d1 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(l), v128.load(x16, 16));
    const d2 = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(h), v128.load(x16, 32));
    const d3 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(h), v128.load(x16, 48));
    return f32x4.convert_i32x4_s(i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3)));
  }
}

/**
 * One Q8_0 block's dot (its 32 int8 at w): the relaxed build multiplies them by x⁺ and x⁻ (gemv.as
 * q8BlockSplit, exact for any int8, −128 included), at xs + o and xs + (K bytes) + o; the
 * SIMD128 build widens them to i16 against x's i16 form at x16.
 */
@inline function q8_0Block(w: usize, x16: usize, xs: usize, K: i32): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return q8BlockSplit(v128.load(w), v128.load(w, 16), xs, xs + <usize>K);
  return q8Block(w, v128.load(x16), v128.load(x16, 16), v128.load(x16, 32), v128.load(x16, 48));
}

/**
 * Q8_0 (34-byte blocks: half d, 32 int8), one row of x: gemvQ8's shape, four blocks per step with
 * their four d_w·d_x in one multiply, blocks alternating between two chains.
 */
export function gemvQ8_0Int(out: usize, q16: usize, qd: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  const nb = K >> 5, rb = <usize>nb * 34;
  let p = w + <usize>n0 * rb;
  for (let n = n0; n < n1; n++) {
    let f0 = f32x4.splat(0), f1 = f0;
    let xp = q16, xs = q16 + q8PosOffset(K), dp = qd;
    let b = 0;
    for (; b + 4 <= nb; b += 4) {
      const sc = f32x4.mul(halves4(p, 34), v128.load(dp));
      f0 = fmadd(q8_0Block(p + 2, xp, xs, K), lane(sc, 0), f0);
      f1 = fmadd(q8_0Block(p + 36, xp + 64, xs + 32, K), lane(sc, 1), f1);
      f0 = fmadd(q8_0Block(p + 70, xp + 128, xs + 64, K), lane(sc, 2), f0);
      f1 = fmadd(q8_0Block(p + 104, xp + 192, xs + 96, K), lane(sc, 3), f1);
      p += 136; xp += 256; xs += 128; dp += 16;
    }
    for (let j = 0; b < nb; b++, j++) {
      const c = f32x4.splat(half1(p) * load<f32>(dp));
      if (j & 1) f1 = fmadd(q8_0Block(p + 2, xp, xs, K), c, f1); else f0 = fmadd(q8_0Block(p + 2, xp, xs, K), c, f0);
      p += 34; xp += 64; xs += 32; dp += 4;
    }
    const op = out + (<usize>n << 2);
    const s = hsum(f32x4.add(f0, f1));
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

/** Q4_0 (18-byte blocks: half d, 16 bytes of nibbles, value q − 8), one row of x: as gemvQ8_0Int. */
export function gemvQ4_0Int(out: usize, q16: usize, q8: usize, qd: usize, corr: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  const nb = K >> 5, rb = <usize>nb * 18;
  let p = w + <usize>n0 * rb;
  for (let n = n0; n < n1; n++) {
    let f0 = f32x4.splat(0), f1 = f0;
    let x16 = q16, x8 = q8, dp = qd, cp = corr;
    let b = 0;
    for (; b + 4 <= nb; b += 4) {
      const sc = f32x4.mul(halves4(p, 18), v128.load(dp));
      f0 = fmadd(q4_0Block(p + 2, x16, x8, cp), lane(sc, 0), f0);
      f1 = fmadd(q4_0Block(p + 20, x16 + 64, x8 + 32, cp + 16), lane(sc, 1), f1);
      f0 = fmadd(q4_0Block(p + 38, x16 + 128, x8 + 64, cp + 32), lane(sc, 2), f0);
      f1 = fmadd(q4_0Block(p + 56, x16 + 192, x8 + 96, cp + 48), lane(sc, 3), f1);
      p += 72; x16 += 256; x8 += 128; dp += 16; cp += 64;
    }
    for (let j = 0; b < nb; b++, j++) {
      const c = f32x4.splat(half1(p) * load<f32>(dp));
      if (j & 1) f1 = fmadd(q4_0Block(p + 2, x16, x8, cp), c, f1); else f0 = fmadd(q4_0Block(p + 2, x16, x8, cp), c, f0);
      p += 18; x16 += 64; x8 += 32; dp += 4; cp += 16;
    }
    const op = out + (<usize>n << 2);
    const s = hsum(f32x4.add(f0, f1));
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

/**
 * Q4_K's eight 6-bit scales and eight mins from its 12 scale bytes at sc, as bytes
 * [sc0..sc7, m0..m7] (the layout of docs/formats.md, "Block weights", in one pass of byte shuffles).
 */
@inline function kScales16(sc: usize): v128 {
  const v = v128.load(sc);   // 12 bytes used; the 4 after them are the block's own nibbles
  // lanes 0-3 s[0..3] (sc0-3), 4-7 s[8..11] (sc4-7 low), 8-11 s[4..7] (m0-3), 12-15 s[8..11] (m4-7 low)
  const a = i8x16.swizzle(v, i8x16(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
  // the two high bits: of s[0..3] for sc4-7, of s[4..7] for m4-7
  const b = i8x16.swizzle(v, i8x16(0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 4, 5, 6, 7));
  const lo = v128.and(a, i8x16(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0));
  // 16-bit shifts (byte shifts cost V8 a shift and a mask each): the bits a shift brings in from
  // the neighbouring byte fall outside the masks
  const mhi = v128.and(i16x8.shr_u(a, 4), i8x16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15));
  const top = v128.and(i16x8.shr_u(b, 2), i8x16(0, 0, 0, 0, 48, 48, 48, 48, 0, 0, 0, 0, 48, 48, 48, 48));
  return v128.or(v128.or(lo, mhi), top);
}

/**
 * Sub-blocks 0-3 (Lo) or 4-7 (Hi) of a Q4_K super-block's eight u8 scale codes (i16 lanes of sc) as
 * q4Scaled4's codes operand: relaxed, each code in its two i16 lanes; SIMD128, i32 lanes. The codes
 * multiply the integer dots exactly (|sc·Σ| ≤ 63·32·15·127 < 2²⁴), so a sub-block adds
 * f32(sc·Σ)·d_x in one multiply-add, where Σ·(sc·d_x) rounded twice.
 */
@inline function kCodesLo(sc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return v128.shuffle<i16>(sc, sc, 0, 0, 1, 1, 2, 2, 3, 3);
  return i32x4.extend_low_i16x8_u(sc);
}
@inline function kCodesHi(sc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return v128.shuffle<i16>(sc, sc, 4, 4, 5, 5, 6, 6, 7, 7);
  return i32x4.extend_high_i16x8_u(sc);
}

/**
 * t += four sub-blocks' f32(sc·Σ) (s4) times their d_x (m). Relaxed build: into lanes 0 (sub-blocks
 * 0, 2) and 1 (1, 3) in that order, as the two-row kernel's quarters add them (lanes 2, 3 unused;
 * kRowF sums lanes 0 and 1). SIMD128 build (one row at a time): lane j mod 4, hsum at the end.
 */
@inline function kAdd4(t: v128, s4: v128, m: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return fmadd(v128.shuffle<f32>(s4, s4, 2, 3, 2, 3), v128.shuffle<f32>(m, m, 2, 3, 2, 3), fmadd(s4, m, t));
  return fmadd(s4, m, t);
}

/** The sub-blocks' part of a one-row Q4_K output from its accumulator f (kAdd4's lanes, times d). */
@inline function kRowF(f: v128): f32 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.extract_lane(f, 0) + f32x4.extract_lane(f, 1);
  return hsum(f);
}

/**
 * Q4_K (144-byte super-blocks of 256: half d, half dmin, 12 bytes of 6-bit scales and mins, 128
 * bytes of nibbles; value d·sc_j·q − dmin·m_j in sub-block j of 32), one row of x. Sub-block j
 * meets x's block j exactly, so it is q4's arithmetic with scale d·sc_j and min −dmin·m_j:
 * Σ = Σ_b d·Σ_j sc_j·d_x·Σ q·q_x − Σ_b dmin·Σ_j m_j·(d_x·Σ q_x). As in gemvQ4, four sub-blocks'
 * integer dots are gathered into one vector (gemv.as q4Part, q4Scaled4) and multiplied by their
 * codes in the integers (exact), which meet their four d_x in one multiply-add (kAdd4: the order
 * of the two-row kernel gemvQ4_KRPair), so a super-block costs two such products, two
 * multiply-adds for the mins and one each by d and dmin, with no broadcast per sub-block; its two
 * halves d, dmin come from one 8-byte load.
 */
export function gemvQ4_KInt(out: usize, q16: usize, q8: usize, qd: usize, qs: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  const nsb = K >> 8, rb = <usize>nsb * 144;
  let p = w + <usize>n0 * rb;
  for (let n = n0; n < n1; n++) {
    let f = f32x4.splat(0), g = f;
    let x16 = q16, x8 = q8, dp = qd, sp = qs;
    for (let b = 0; b < nsb; b++, p += 144, x16 += 512, x8 += 256, dp += 32, sp += 32) {
      const dd = f16x4At(p);   // lanes 0, 1: d, dmin (2, 3: scale bytes, unused)
      const sm = kScales16(p + 4);
      const sc = i16x8.extend_low_i8x16_u(sm), mn = i16x8.extend_high_i8x16_u(sm);
      // the 6-bit codes as f32 (non-negative: the signed conversion, one instruction on x64)
      const m0 = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(mn)), m1 = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(mn));
      const u = fmadd(m1, v128.load(sp, 16), f32x4.mul(m0, v128.load(sp)));
      // The two halves of 128 weights in a loop of two, not one straight run: V8 issues a block's
      // loads before its arithmetic, and a whole super-block's 8 weight and 16 x vectors spill.
      let t = f32x4.splat(0), c = kCodesLo(sc), q = p + 16, xh = x16, x8h = x8, dh = dp;
      for (let h = 0; h < 2; h++, q += 64, xh += 256, x8h += 128, dh += 16) {
        const v0 = v128.load(q), v1 = v128.load(q, 16), v2 = v128.load(q, 32), v3 = v128.load(q, 48);
        const s4 = q4Scaled4(q4Part(nibLo(v0), nibLo(v1), xh, x8h), q4Part(nibHi(v0), nibHi(v1), xh + 64, x8h + 32),
          q4Part(nibLo(v2), nibLo(v3), xh + 128, x8h + 64), q4Part(nibHi(v2), nibHi(v3), xh + 192, x8h + 96), c);
        t = kAdd4(t, f32x4.convert_i32x4_s(s4), v128.load(dh));
        c = kCodesHi(sc);
      }
      f = fmadd(t, lane(dd, 0), f);
      g = fmadd(u, lane(dd, 1), g);
    }
    const op = out + (<usize>n << 2);
    const s = kRowF(f) - hsum(g);
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

/**
 * gemvQ4_KInt on Q4_K as the backend repacks it at load (blocks.as BQ4_KR, 152 bytes: f32 d and
 * dmin, then the eight scales and eight mins a byte each, then the nibbles): the same arithmetic
 * on the same values, so the same results bit for bit, without the half conversions and the 6-bit
 * unpacking (about 110 of V8's instructions per super-block in gemvQ4_KInt, its constants made
 * again in every iteration).
 */
export function gemvQ4_KRInt(out: usize, q16: usize, q8: usize, qd: usize, qs: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  // the SIMD128 build keeps one row at a time (its widened x, 8 vectors a quarter, spill the pair
  // step: 0.87x); both forms give the same results bit for bit
  if (!ASC_FEATURE_RELAXED_SIMD) { gemvQ4_KROne(out, q16, q8, qd, qs, w, K, n0, n1, acc); return; }
  const h = (n1 - n0 + 1) >> 1;
  for (let i = 0; i < h; i++) {
    const na = n0 + i, nc = n0 + h + i;
    gemvQ4_KRPair(out, q16, q8, qd, qs, w, K, na, nc < n1 ? nc : na, acc);
  }
}

/**
 * Rows na and nc of gemvQ4_KRInt (nc == na for the odd row out: computed twice, stored once), with
 * each row's float operations those of the relaxed one-row form (gemvQ4_KInt), so its results bit
 * for bit: per super-block, sub-block j's f32(sc_j·Σ_j) (the codes multiply the integer dots,
 * exact) times d_x accumulates into lane j mod 2 of t (j = 0..7 in order, from 0), f += t·d lane-wise,
 * g += u·dmin per super-block in a pass of its own (q4KREnd), out = (f_0 + f_1) − hsum(g). Here a
 * step is a quarter super-block (32 bytes: sub-blocks 2q, 2q + 1) of both rows, x's two blocks
 * loaded once for both (gemv.as q4Pair4): lanes [a_2q, a_2q+1, c_2q, c_2q+1] of one accumulator T
 * for both rows. R = 2..4: the same per token, the nibbles and codes decoded once.
 */
@inline function gemvQ4_KRPair(out: usize, q16: usize, q8: usize, qd: usize, qs: usize, w: usize, K: i32, na: i32, nc: i32, acc: i32,
  ldo: usize = 0, ldp: usize = 0, R: i32 = 1): void {
  // R = 2..4 tokens (rows of x ldp bytes apart, of out ldo apart): the weight's nibbles and codes
  // once per step for all of them, each token's float operations those of a one-token call
  const nsb = K >> 8, rb = <usize>nsb * 152;
  let pa = w + <usize>na * rb, pc = w + <usize>nc * rb;
  const z = f32x4.splat(0);
  const pa0 = pa, pc0 = pc;
  let F0 = z, F1 = z, F2 = z, F3 = z;   // per token, lanes: row na's even and odd sub-blocks, then row nc's
  let x16 = q16, x8 = q8, dp = qd;
  for (let b = 0; b < nsb; b++, pa += 152, pc += 152, x16 += 512, x8 += 256, dp += 32) {
    let T0 = z, T1 = z, T2 = z, T3 = z;
    let qa = pa + 24, qc = pc + 24, xq16 = x16, xq8 = x8, dq = dp, sa = pa + 8, sc = pc + 8;
    for (let q = 0; q < 4; q++, qa += 32, qc += 32, xq16 += 128, xq8 += 64, dq += 8, sa += 2, sc += 2) {
      const va0 = v128.load(qa), va1 = v128.load(qa, 16), vc0 = v128.load(qc), vc1 = v128.load(qc, 16);
      const la0 = nibLo(va0), la1 = nibLo(va1), ha0 = nibHi(va0), ha1 = nibHi(va1), lc0 = nibLo(vc0), lc1 = nibLo(vc1), hc0 = nibHi(vc0), hc1 = nibHi(vc1);
      const c4 = q4CodesV(v128.load16_lane(sc, v128.load16_splat(sa), 1));
      T0 = fmadd(f32x4.convert_i32x4_s(q4ScaleG(q4Pair4(la0, la1, ha0, ha1, lc0, lc1, hc0, hc1, xq16, xq8), c4)), v128.load64_splat(dq), T0);
      if (R > 1) T1 = fmadd(f32x4.convert_i32x4_s(q4ScaleG(q4Pair4(la0, la1, ha0, ha1, lc0, lc1, hc0, hc1, xq16 + ldp, xq8 + ldp), c4)), v128.load64_splat(dq + ldp), T1);
      if (R > 2) T2 = fmadd(f32x4.convert_i32x4_s(q4ScaleG(q4Pair4(la0, la1, ha0, ha1, lc0, lc1, hc0, hc1, xq16 + 2 * ldp, xq8 + 2 * ldp), c4)), v128.load64_splat(dq + 2 * ldp), T2);
      if (R > 3) T3 = fmadd(f32x4.convert_i32x4_s(q4ScaleG(q4Pair4(la0, la1, ha0, ha1, lc0, lc1, hc0, hc1, xq16 + 3 * ldp, xq8 + 3 * ldp), c4)), v128.load64_splat(dq + 3 * ldp), T3);
    }
    const dd = v128.shuffle<f32>(v128.load32_splat(pa), v128.load32_splat(pc), 0, 0, 4, 4);
    F0 = fmadd(T0, dd, F0);
    if (R > 1) F1 = fmadd(T1, dd, F1);
    if (R > 2) F2 = fmadd(T2, dd, F2);
    if (R > 3) F3 = fmadd(T3, dd, F3);
  }
  // The mins' terms in a pass of their own over the two rows (in L1 by now), in the same order:
  // in the loop above their two accumulators made V8 spill the quarter step's operands.
  q4KREnd(F0, out, na, nc, acc, pa0, pc0, qs, nsb);
  if (R > 1) q4KREnd(F1, out + ldo, na, nc, acc, pa0, pc0, qs + ldp, nsb);
  if (R > 2) q4KREnd(F2, out + 2 * ldo, na, nc, acc, pa0, pc0, qs + 2 * ldp, nsb);
  if (R > 3) q4KREnd(F3, out + 3 * ldo, na, nc, acc, pa0, pc0, qs + 3 * ldp, nsb);
}

/** The end of gemvQ4_KRPair's rows na, nc (at pa, pc) for one token (x's sums at sp): the mins' pass and the stores. */
@inline function q4KREnd(F: v128, o: usize, na: i32, nc: i32, acc: i32, pa: usize, pc: usize, sp: usize, nsb: i32): void {
  const z = f32x4.splat(0);
  let ga = z, gc = z;
  for (let b = 0; b < nsb; b++, pa += 152, pc += 152, sp += 32) {
    ga = fmadd(q4KMins(pa, sp), v128.load32_splat(pa, 4), ga);
    gc = fmadd(q4KMins(pc, sp), v128.load32_splat(pc, 4), gc);
  }
  const oa = o + (<usize>na << 2);
  const ra = (f32x4.extract_lane(F, 0) + f32x4.extract_lane(F, 1)) - hsum(ga);
  store<f32>(oa, acc ? load<f32>(oa) + ra : ra);
  if (nc != na) {
    const oc = o + (<usize>nc << 2);
    const rc = (f32x4.extract_lane(F, 2) + f32x4.extract_lane(F, 3)) - hsum(gc);
    store<f32>(oc, acc ? load<f32>(oc) + rc : rc);
  }
}

/** gemvQ4_KRInt (relaxed build) for R = 2..4 tokens at once (rows of x ldp bytes apart, of out ldo apart). */
@inline function gemvQ4_KRTR(out: usize, ldo: usize, xp: usize, ldp: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32, R: i32): void {
  const o8 = <usize>K << 1, od = <usize>K * 3, os = od + (<usize>K >> 3);
  const h = (n1 - n0 + 1) >> 1;
  for (let i = 0; i < h; i++) {
    const na = n0 + i, nc = n0 + h + i;
    gemvQ4_KRPair(out, xp, xp + o8, xp + od, xp + os, w, K, na, nc < n1 ? nc : na, acc, ldo, ldp, R);
  }
}
function gemvQ4_KRIntR(out: usize, ldo: usize, xp: usize, ldp: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32, R: i32): void {
  if (R == 2) gemvQ4_KRTR(out, ldo, xp, ldp, w, K, n0, n1, acc, 2);
  else if (R == 3) gemvQ4_KRTR(out, ldo, xp, ldp, w, K, n0, n1, acc, 3);
  else gemvQ4_KRTR(out, ldo, xp, ldp, w, K, n0, n1, acc, 4);
}

/** A repacked Q4_K super-block's (at p) eight mins times x's quantized sums (at sp), folded into four lanes as gemvQ4_KInt's u. */
@inline function q4KMins(p: usize, sp: usize): v128 {
  const mn = i16x8.extend_high_i8x16_u(v128.load(p, 8));
  const m0 = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(mn)), m1 = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(mn));
  return fmadd(m1, v128.load(sp, 16), f32x4.mul(m0, v128.load(sp)));
}

@inline function gemvQ4_KROne(out: usize, q16: usize, q8: usize, qd: usize, qs: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  const nsb = K >> 8, rb = <usize>nsb * 152;
  let p = w + <usize>n0 * rb;
  for (let n = n0; n < n1; n++) {
    let f = f32x4.splat(0), g = f;
    let x16 = q16, x8 = q8, dp = qd, sp = qs;
    for (let b = 0; b < nsb; b++, p += 152, x16 += 512, x8 += 256, dp += 32, sp += 32) {
      const dd = v128.load64_zero(p);   // lanes 0, 1: d, dmin
      const sm = v128.load(p, 8);
      const sc = i16x8.extend_low_i8x16_u(sm), mn = i16x8.extend_high_i8x16_u(sm);
      const m0 = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(mn)), m1 = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(mn));
      const u = fmadd(m1, v128.load(sp, 16), f32x4.mul(m0, v128.load(sp)));
      let t = f32x4.splat(0), c = kCodesLo(sc), q = p + 24, xh = x16, x8h = x8, dh = dp;
      for (let h = 0; h < 2; h++, q += 64, xh += 256, x8h += 128, dh += 16) {
        const v0 = v128.load(q), v1 = v128.load(q, 16), v2 = v128.load(q, 32), v3 = v128.load(q, 48);
        const s4 = q4Scaled4(q4Part(nibLo(v0), nibLo(v1), xh, x8h), q4Part(nibHi(v0), nibHi(v1), xh + 64, x8h + 32),
          q4Part(nibLo(v2), nibLo(v3), xh + 128, x8h + 64), q4Part(nibHi(v2), nibHi(v3), xh + 192, x8h + 96), c);
        t = kAdd4(t, f32x4.convert_i32x4_s(s4), v128.load(dh));
        c = kCodesHi(sc);
      }
      f = fmadd(t, lane(dd, 0), f);
      g = fmadd(u, lane(dd, 1), g);
    }
    const op = out + (<usize>n << 2);
    const s = kRowF(f) - hsum(g);
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

/** Σ (q − 32)·q_x over 16 values (signed bytes q − 32 in v, i16 q_x at x16) as i32x4 (SIMD128 build). */
@inline function q6Dot16(v: v128, x16: usize): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(v), v128.load(x16)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(v), v128.load(x16, 16)));
}

/**
 * Q6_K's relaxed dot takes the 6-bit level q (0..63, a valid 7-bit operand) as it is stored, so
 * Σ (q − 32)·q_x = Σ q·q_x − 32·Σ q_x; this writes x's part of the second term, the sum of q_x
 * over each 16 values (|·| ≤ 16·127, an i16), K/8 bytes at corr, from the int8 q at q8. The kernel
 * dots these with the weight's sixteen scales per super-block (gemvQ6_KRelaxed).
 */
export function q6KCorrection(q8: usize, K: i32, corr: usize): void {
  for (let o: usize = 0; o < <usize>K; o += 16) {
    const s = i32x4.extadd_pairwise_i16x8_s(i16x8.extadd_pairwise_i8x16_s(v128.load(q8 + o)));
    store<i16>(corr + (o >> 3), <i16>(i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3)));
  }
}

/** Where q6KCorrection puts its sums in a prepared row (k_prep_x; relaxed build). */
@inline export function q6KCorrOffset(K: i32): usize { return <usize>K * 6; }

/**
 * Q6_K (210-byte super-blocks of 256: ql[128], qh[64], int8 scales[16], half d; value
 * d·sc·(q − 32) with a scale per 16 values), one row of x. x's block t (32 values) holds two of
 * the weights' scales: its sum is d·d_x·(sc_a·Σ_a + sc_b·Σ_b), the bracket an integer below 2²⁴
 * (2·16·32·127·128), so exact in f32. The SIMD128 build widens q − 32 to i16; the relaxed build
 * dots q itself with int8 x and takes 32·Σx off per pair (q6KCorrection): the same integers per
 * 16 values, spread over the four lanes differently, so the builds agree to f32 rounding. Even
 * blocks of x go into f0, odd into f1.
 */
export function gemvQ6_KInt(out: usize, q16: usize, q8: usize, qd: usize, corr: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD) { gemvQ6_KRelaxed(out, q8, qd, corr, w, K, n0, n1, acc); return; }
  const nsb = K >> 8;
  let p = w + <usize>n0 * <usize>nsb * 210;
  for (let n = n0; n < n1; n++) {
    let f0 = f32x4.splat(0), f1 = f0;
    let x16 = q16, dp = qd;
    for (let b = 0; b < nsb; b++, p += 210, x16 += 512, dp += 32) {
      const d = f32x4.splat(half1(p + 208));
      const c0 = f32x4.mul(d, v128.load(dp)), c1 = f32x4.mul(d, v128.load(dp, 16));
      f0 = fmadd(q6Block(p, x16, 0), lane(c0, 0), f0);
      f1 = fmadd(q6Block(p, x16, 1), lane(c0, 1), f1);
      f0 = fmadd(q6Block(p, x16, 2), lane(c0, 2), f0);
      f1 = fmadd(q6Block(p, x16, 3), lane(c0, 3), f1);
      f0 = fmadd(q6Block(p, x16, 4), lane(c1, 0), f0);
      f1 = fmadd(q6Block(p, x16, 5), lane(c1, 1), f1);
      f0 = fmadd(q6Block(p, x16, 6), lane(c1, 2), f0);
      f1 = fmadd(q6Block(p, x16, 7), lane(c1, 3), f1);
    }
    const op = out + (<usize>n << 2);
    const s = hsum(f32x4.add(f0, f1));
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

/** The two high bits of 16 levels (bits 2k, 2k + 1 of qh's bytes) moved to bits 4, 5: one shift and one mask. */
@inline function q6High(v: v128, k: i32): v128 {
  const m = i8x16.splat(48);
  if (k == 0) return v128.and(i16x8.shl(v, 4), m);
  if (k == 1) return v128.and(i16x8.shl(v, 2), m);
  if (k == 2) return v128.and(v, m);
  return v128.and(i16x8.shr_u(v, 2), m);
}

/** x block t (a constant) of the Q6_K super-block at p: sc_a·Σ_a + sc_b·Σ_b as f32 (exact; SIMD128 build). */
@inline function q6Block(p: usize, x16: usize, t: i32): v128 {
  const h = t >> 2, k = t & 3;
  const lo = p + <usize>(64 * h + 32 * (k & 1)), qh = p + <usize>(128 + 32 * h);
  const fifteen = i8x16.splat(15), e = i8x16.splat(32);
  const l0 = v128.load(lo), l1 = v128.load(lo, 16);
  const b0 = v128.and(k >> 1 ? i16x8.shr_u(l0, 4) : l0, fifteen), b1 = v128.and(k >> 1 ? i16x8.shr_u(l1, 4) : l1, fifteen);
  const q0 = i8x16.sub(v128.or(b0, q6High(v128.load(qh), k)), e), q1 = i8x16.sub(v128.or(b1, q6High(v128.load(qh, 16), k)), e);
  const sc = p + <usize>(192 + 8 * h + 2 * k), xo = x16 + <usize>(64 * t);
  const is = i32x4.add(i32x4.mul(q6Dot16(q0, xo), i32x4.splat(<i32>load<i8>(sc))), i32x4.mul(q6Dot16(q1, xo + 32), i32x4.splat(<i32>load<i8>(sc + 1))));
  return f32x4.convert_i32x4_s(is);
}

/** The i16 scale in lane j (0..7) of s in all eight lanes: one byte shuffle. */
@inline function splat16(s: v128, j: i32): v128 {
  if (j == 0) return v128.shuffle<i16>(s, s, 0, 0, 0, 0, 0, 0, 0, 0);
  if (j == 1) return v128.shuffle<i16>(s, s, 1, 1, 1, 1, 1, 1, 1, 1);
  if (j == 2) return v128.shuffle<i16>(s, s, 2, 2, 2, 2, 2, 2, 2, 2);
  if (j == 3) return v128.shuffle<i16>(s, s, 3, 3, 3, 3, 3, 3, 3, 3);
  if (j == 4) return v128.shuffle<i16>(s, s, 4, 4, 4, 4, 4, 4, 4, 4);
  if (j == 5) return v128.shuffle<i16>(s, s, 5, 5, 5, 5, 5, 5, 5, 5);
  if (j == 6) return v128.shuffle<i16>(s, s, 6, 6, 6, 6, 6, 6, 6, 6);
  return v128.shuffle<i16>(s, s, 7, 7, 7, 7, 7, 7, 7, 7);
}

/**
 * x block 4h + k of a Q6_K super-block, relaxed build (ql vectors l0, l1: their low nibbles for
 * k < 2, high for k ≥ 2; qh vectors g0, g1; the two scales as i16 splats sa, sb): sc_a·Σ_a q·q_x
 * + sc_b·Σ_b q·q_x over the stored levels q, as four i32 lanes. Each i16 lane of the relaxed dot is
 * a pair's Σ q·x (|·| ≤ 2·63·127); the i16 dot with the scale widens and scales it in one step.
 */
@inline function q6BlockR(l0: v128, l1: v128, g0: v128, g1: v128, k: i32, xo: usize, sa: v128, sb: v128): v128 {
  const fifteen = i8x16.splat(15);
  const b0 = v128.and(k >> 1 ? i16x8.shr_u(l0, 4) : l0, fifteen), b1 = v128.and(k >> 1 ? i16x8.shr_u(l1, 4) : l1, fifteen);
  const q0 = v128.or(b0, q6High(g0, k)), q1 = v128.or(b1, q6High(g1, k));
  const s0 = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo), q0);
  const s1 = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo, 16), q1);
  return i32x4.add(i32x4.dot_i16x8_s(s0, sa), i32x4.dot_i16x8_s(s1, sb));
}

/**
 * gemvQ6_KInt's relaxed build: every vector of a super-block loaded once. Blocks 4i..4i+3 of x
 * are gathered into one i32x4 (isum4), and their correction 32·(sc_a·X_a + sc_b·X_b) (X: x's sums
 * per 16, q6KCorrection) is one i16 dot of the scales with X, taken off in int32: each lane is then
 * block t's integer sc_a·Σ_a (q − 32)·q_x + sc_b·Σ_b (q − 32)·q_x (|·| ≤ 32·32·127·128 < 2²⁴, exact in
 * f32), and one multiply-add by the four d·d_x, with no broadcast per block. The integers per
 * block are the SIMD128 build's; the float sums differ from it by rounding only.
 */
@inline function gemvQ6_KRelaxed(out: usize, q8: usize, qd: usize, corr: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  const nsb = K >> 8;
  let p = w + <usize>n0 * <usize>nsb * 210;
  for (let n = n0; n < n1; n++) {
    let f = f32x4.splat(0);
    let x8 = q8, cp = corr, dp = qd;
    for (let b = 0; b < nsb; b++, p += 210, dp += 32) {
      // both halves' d·d_x before the loop over them: with d·load(dp) inside it, V8 converted
      // the half (and made its five constants) again in each half
      const d = f32x4.splat(half1(p + 208));
      let c = f32x4.mul(d, v128.load(dp)), c1 = f32x4.mul(d, v128.load(dp, 16));
      const sv = v128.load(p, 192);
      // the super-block's halves (128 values: 4 ql vectors, 2 qh vectors, 8 scales) in a loop of
      // two, not one straight run: V8 issues a block's loads before its arithmetic, and spills
      let sh = i16x8.extend_low_i8x16_s(sv), s1 = i16x8.extend_high_i8x16_s(sv), l = p, hb = p + 128;
      for (let h = 0; h < 2; h++, l += 64, hb += 32, x8 += 128, cp += 16) {
        // Each half in two quarters of 32 ql bytes: quarter j has blocks j (low nibbles) and
        // j + 2 (high nibbles) of the half, whose high bits are qh's bits 0-1 and 4-5 for j = 0,
        // 2-3 and 6-7 for j = 1; shifting qh right by 2 after quarter 0 makes both quarters the
        // same code, and the scales likewise move down two lanes. Fewer vectors are loaded at once.
        let g0 = v128.load(hb), g1 = v128.load(hb, 16), sq = sh, lq = l, xq = x8;
        let v0 = i32x4.splat(0), v = v0;
        for (let j = 0; j < 2; j++, lq += 32, xq += 32) {
          const a0 = v128.load(lq), a1 = v128.load(lq, 16);
          const ra = q6BlockR(a0, a1, g0, g1, 0, xq, splat16(sq, 0), splat16(sq, 1));
          const rb = q6BlockR(a0, a1, g0, g1, 2, xq + 64, splat16(sq, 4), splat16(sq, 5));
          // lanes (j, j + 2, j, j + 2) of the half's four block sums
          v0 = v;
          v = i32x4.add(v128.shuffle<i32>(ra, rb, 0, 4, 1, 5), v128.shuffle<i32>(ra, rb, 2, 6, 3, 7));
          g0 = i16x8.shr_u(g0, 2); g1 = i16x8.shr_u(g1, 2);
          sq = v128.shuffle<i16>(sq, sq, 2, 3, 4, 5, 6, 7, 6, 7);
        }
        // the same integers as isum4 of the four blocks: int32 sums are exact in any order
        const i4 = i32x4.sub(i32x4.add(v128.shuffle<i32>(v0, v, 0, 4, 1, 5), v128.shuffle<i32>(v0, v, 2, 6, 3, 7)),
          i32x4.shl(i32x4.dot_i16x8_s(sh, v128.load(cp)), 5));
        f = fmadd(f32x4.convert_i32x4_s(i4), c, f);
        sh = s1; c = c1;
      }
    }
    const op = out + (<usize>n << 2);
    const s = hsum(f);
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

/**
 * x's int8 q in BQ6_KR's order, for its relaxed GEMV (k_prep_x; K bytes at dst): per 64 values,
 * vector j holds values 16m + 4j + r at byte 4m + r, as the level vector L_j holds the weights
 * (blocks.as BQ6_KR), so that one relaxed dot meets all four sub-blocks of a group.
 */
export function q6KRPermuteX(q8: usize, K: i32, dst: usize): void {
  for (let o: usize = 0; o < <usize>K; o += 64) {
    const x0 = v128.load(q8 + o), x1 = v128.load(q8 + o, 16), x2 = v128.load(q8 + o, 32), x3 = v128.load(q8 + o, 48);
    v128.store(dst + o, q6krNatural(x0, x1, x2, x3, 0));
    v128.store(dst + o, q6krNatural(x0, x1, x2, x3, 1), 16);
    v128.store(dst + o, q6krNatural(x0, x1, x2, x3, 2), 32);
    v128.store(dst + o, q6krNatural(x0, x1, x2, x3, 3), 48);
  }
}

/** Where q6KRPermuteX puts x in a prepared row (k_prep_x; relaxed build): q8's x⁺ slot, which Q6_K does not use. */
@inline export function q6KRXOffset(K: i32): usize { return <usize>K << 2; }

/**
 * gemvQ6_KInt on Q6_K as the backend repacks it at load (blocks.as BQ6_KR, 212 bytes: the levels
 * of each group of 64 values in three vectors, the int8 scales, d as f32). Same integers per block
 * of x, same float operations in the same order, so the same results bit for bit, in both builds.
 */
export function gemvQ6_KRInt(out: usize, q16: usize, q8: usize, qd: usize, corr: usize, xr: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  if (ASC_FEATURE_RELAXED_SIMD) {
    // two weight rows per pass (rows n and n + h of the range, as gemvQ4_KRInt's), x's vectors loaded once for both
    const h = (n1 - n0 + 1) >> 1;
    for (let i = 0; i < h; i++) {
      const na = n0 + i, nc = n0 + h + i;
      gemvQ6_KRPair(out, xr, qd, corr, w, K, na, nc < n1 ? nc : na, acc);
    }
    return;
  }
  const nsb = K >> 8;
  let p = w + <usize>n0 * <usize>nsb * 212;
  for (let n = n0; n < n1; n++) {
    let f0 = f32x4.splat(0), f1 = f0;
    let x16 = q16, dp = qd;
    for (let b = 0; b < nsb; b++, p += 212, x16 += 512, dp += 32) {
      const d = f32x4.splat(load<f32>(p, 208));
      let c = f32x4.mul(d, v128.load(dp));
      const c1 = f32x4.mul(d, v128.load(dp, 16));
      // a group (two blocks of x) at a time, its levels decoded once; blocks alternate f0, f1 as in gemvQ6_KInt
      let q = p, sc = p + 192, xo = x16;
      for (let h = 0; h < 2; h++, q += 96, sc += 8, xo += 256) {
        for (let j = 0; j < 2; j++) {
          const g = q + <usize>(48 * j), e = i8x16.splat(32);
          const va = v128.load(g), vb = v128.load(g, 16), vc = v128.load(g, 32);
          const l0 = q6krLevels(va, vb, vc, 0), l1 = q6krLevels(va, vb, vc, 1), l2 = q6krLevels(va, vb, vc, 2), l3 = q6krLevels(va, vb, vc, 3);
          const u0 = i8x16.sub(q6krNatural(l0, l1, l2, l3, 0), e), u1 = i8x16.sub(q6krNatural(l0, l1, l2, l3, 1), e);
          const u2 = i8x16.sub(q6krNatural(l0, l1, l2, l3, 2), e), u3 = i8x16.sub(q6krNatural(l0, l1, l2, l3, 3), e);
          const cj = j ? v128.shuffle<f32>(c, c, 2, 3, 2, 3) : c;
          f0 = fmadd(q6RBlock(u0, u1, xo + <usize>(128 * j), sc + <usize>(4 * j)), lane(cj, 0), f0);
          f1 = fmadd(q6RBlock(u2, u3, xo + <usize>(128 * j + 64), sc + <usize>(4 * j + 2)), lane(cj, 1), f1);
        }
        c = c1;
      }
    }
    const op = out + (<usize>n << 2);
    const s = hsum(f32x4.add(f0, f1));
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

/** q6Block's arithmetic on one block of x from its two sub-blocks' signed levels q0, q1 (value order), scales at sc (SIMD128 build). */
@inline function q6RBlock(q0: v128, q1: v128, xo: usize, sc: usize): v128 {
  const is = i32x4.add(i32x4.mul(q6Dot16(q0, xo), i32x4.splat(<i32>load<i8>(sc))), i32x4.mul(q6Dot16(q1, xo + 32), i32x4.splat(<i32>load<i8>(sc + 1))));
  return f32x4.convert_i32x4_s(is);
}

/**
 * gemvQ6_KRelaxed on BQ6_KR, x in its order (q6KRPermuteX at xr). A group's four level vectors
 * take 11 operations from its three loads (q6krLevels); each meets its x vector in one relaxed dot,
 * whose i16 lanes 2m, 2m + 1 belong to sub-block m, so one vector of the scales (s_m in lanes 2m,
 * 2m + 1: one unpack of the widened scales per group) scales all four in the i16 dot, with no
 * splat per sub-block. Two level vectors' pair sums are added in i16 first (|·| ≤ 4·63·127 <
 * 2¹⁵). The block sums are then gemvQ6_KRelaxed's integers in the same lanes, and the float
 * operations the same.
 */
@inline function gemvQ6_KRRelaxed(out: usize, xr: usize, qd: usize, corr: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  const nsb = K >> 8;
  let p = w + <usize>n0 * <usize>nsb * 212;
  for (let n = n0; n < n1; n++) {
    let f = f32x4.splat(0);
    let x8 = xr, cp = corr, dp = qd;
    for (let b = 0; b < nsb; b++, p += 212, dp += 32) {
      const d = f32x4.splat(load<f32>(p, 208));
      let c = f32x4.mul(d, v128.load(dp)), c1 = f32x4.mul(d, v128.load(dp, 16));
      const sv = v128.load(p, 192);
      let sh = i16x8.extend_low_i8x16_s(sv), s1 = i16x8.extend_high_i8x16_s(sv), q = p;
      for (let h = 0; h < 2; h++, q += 96, x8 += 128, cp += 16) {
        const v0 = q6krGroup(q, x8, v128.shuffle<i16>(sh, sh, 0, 0, 1, 1, 2, 2, 3, 3));
        const v1 = q6krGroup(q + 48, x8 + 64, v128.shuffle<i16>(sh, sh, 4, 4, 5, 5, 6, 6, 7, 7));
        // lanes (2i, 2i + 1) of v0 and v1 are the half's blocks 0, 1 and 2, 3
        const i4 = i32x4.sub(i32x4.add(v128.shuffle<i32>(v0, v1, 0, 2, 4, 6), v128.shuffle<i32>(v0, v1, 1, 3, 5, 7)),
          i32x4.shl(i32x4.dot_i16x8_s(sh, v128.load(cp)), 5));
        f = fmadd(f32x4.convert_i32x4_s(i4), c, f);
        sh = s1; c = c1;
      }
    }
    const op = out + (<usize>n << 2);
    const s = hsum(f);
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

/**
 * Rows na and nc of gemvQ6_KRRelaxed (nc == na for the odd row out: computed twice, stored once),
 * each row's float operations those of the one-row form, lane for lane, so its results bit for bit.
 * A step is one group (64 values: blocks 2g, 2g + 1 of x) of both rows, x's four vectors loaded once
 * for both: its block sums go in lanes [a_2g, a_2g+1, c_2g, c_2g+1], which are lanes 0, 1 (g even) or
 * 2, 3 (g odd) of the one-row kernel's f for rows a and c, so the groups alternate between two
 * accumulators T (lanes 0, 1) and U (lanes 2, 3), swapped after each step, and each lane gets the
 * one-row kernel's multiply-add per half: f = fmadd(block sums, d·d_x, f). The correction
 * 32·Σ sc·Σx of the four blocks is one i16 dot of both rows' four scales with x's four sums.
 */
@inline function gemvQ6_KRPair(out: usize, xr: usize, qd: usize, corr: usize, w: usize, K: i32, na: i32, nc: i32, acc: i32): void {
  const nsb = K >> 8, rb = <usize>nsb * 212;
  let pa = w + <usize>na * rb, pc = w + <usize>nc * rb;
  let T = f32x4.splat(0), U = T;
  let x8 = xr, cp = corr, dp = qd;
  for (let b = 0; b < nsb; b++, pa += 212, pc += 212) {
    const dd = v128.shuffle<f32>(v128.load32_splat(pa + 208), v128.load32_splat(pc + 208), 0, 0, 4, 4);
    let qa = pa, qc = pc, ta = pa + 192, tc = pc + 192;
    for (let g = 0; g < 4; g++, qa += 48, qc += 48, ta += 4, tc += 4, x8 += 64, cp += 8, dp += 8) {
      const sa = v128.load8x8_s(ta), sc = v128.load8x8_s(tc);
      const va = q6krGroup(qa, x8, v128.shuffle<i16>(sa, sa, 0, 0, 1, 1, 2, 2, 3, 3));
      const vc = q6krGroup(qc, x8, v128.shuffle<i16>(sc, sc, 0, 0, 1, 1, 2, 2, 3, 3));
      const cr = i32x4.dot_i16x8_s(v128.shuffle<i16>(sa, sc, 0, 1, 2, 3, 8, 9, 10, 11), v128.load64_splat(cp));
      const i4 = i32x4.sub(i32x4.add(v128.shuffle<i32>(va, vc, 0, 2, 4, 6), v128.shuffle<i32>(va, vc, 1, 3, 5, 7)), i32x4.shl(cr, 5));
      const nT = fmadd(f32x4.convert_i32x4_s(i4), f32x4.mul(dd, v128.load64_splat(dp)), T);
      T = U; U = nT;
    }
  }
  // four swaps a super-block: T is lanes 0, 1 of row a's f, then of row c's; U lanes 2, 3
  const oa = out + (<usize>na << 2);
  const ra = hsum(v128.shuffle<f32>(T, U, 0, 1, 4, 5));
  store<f32>(oa, acc ? load<f32>(oa) + ra : ra);
  if (nc != na) {
    const oc = out + (<usize>nc << 2);
    const rc = hsum(v128.shuffle<f32>(T, U, 2, 3, 6, 7));
    store<f32>(oc, acc ? load<f32>(oc) + rc : rc);
  }
}

/** One BQ6_KR group at q against x (its order) at xo: lane m = s_m·Σ q·q_x over sub-block m (scales s as (s0, s0, s1, s1, …)). */
@inline function q6krGroup(q: usize, xo: usize, s: v128): v128 {
  const va = v128.load(q), vb = v128.load(q, 16), vc = v128.load(q, 32);
  const p0 = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo), q6krLevels(va, vb, vc, 0));
  const p1 = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo, 16), q6krLevels(va, vb, vc, 1));
  const p2 = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo, 32), q6krLevels(va, vb, vc, 2));
  const p3 = i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xo, 48), q6krLevels(va, vb, vc, 3));
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.add(p0, p1), s), i32x4.dot_i16x8_s(i16x8.add(p2, p3), s));
}

/**
 * Q4_0 regrouped's correction (BQ4_0R): 8·Σq_x of each block of x's int8 row at q8, as f32 at dst
 * (K/32 of them; integers below 2¹⁵, exact), taken off four blocks' dots at once.
 */
export function q4_0RCorrection(q8: usize, K: i32, dst: usize): void {
  for (let b = 0; b < K >> 5; b++) {
    const p = q8 + (<usize>b << 5);
    const s = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.extadd_pairwise_i8x16_s(v128.load(p)), i16x8.extadd_pairwise_i8x16_s(v128.load(p, 16))));
    store<f32>(dst + (<usize>b << 2), <f32>((i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3)) << 3));
  }
}

/**
 * Q4_0 as the backend regroups it at load (blocks.as BQ4_0R: per row the blocks' halves, then their
 * 16 nibble bytes each), one row of x, in q4's shape (gemv.as gemvQ4PairR): weight rows na and nc
 * together (nc == na for the odd row out: computed twice, stored once), two blocks of each per
 * step, x's two blocks loaded once for both rows; the four blocks' integer dots of the stored
 * nibbles 0..15 in one vector (q4Pair4), their 8·Σq_x (corr, f32: x's two, one 8-byte load) taken
 * off (exact: integers below 2²⁴), and one multiply-add with the four d·d_x; the four halves (two
 * 4-byte loads) widen by shift, mask and integer add when `fast` (every d of the weight a normal
 * half of either sign: llama-quantize's Q4_0 d = max/−8 is negative in about half of the blocks), else
 * exactly (f16hiToF32Exact); both give every normal half's exact value.
 * Per row, whatever its partner and the thread split: lane j (0, 1) accumulates the blocks
 * b ≡ j (mod 2) before an odd last one, from 0; out = (lane 0 + lane 1) + the odd last block's
 * (Σ − 8·Σq_x)·(d·d_x).
 */
@inline function gemvQ4_0RPair(out: usize, q16: usize, q8: usize, qd: usize, corr: usize, w: usize, K: i32, na: i32, nc: i32, acc: i32, fast: bool,
  ldo: usize = 0, ldp: usize = 0, R: i32 = 1): void {
  // R = 2..4 tokens (rows of x ldp bytes apart, of out ldo apart): the weight's nibbles and d's
  // once per step for all of them, each token's float operations those of a one-token call
  const nb = K >> 5, rb = <usize>nb * 18;
  const ra = w + <usize>na * rb, rc = w + <usize>nc * rb;
  const z = f32x4.splat(0);
  let f0 = z, f1 = z, f2 = z, f3 = z;
  let ha = ra, hc = rc, pa = ra + (<usize>nb << 1), pc = rc + (<usize>nb << 1), x16 = q16, x8 = q8, dp = qd, cp = corr;
  let b = 0;
  for (; b + 2 <= nb; b += 2) {
    const va = v128.load(pa), vb = v128.load(pa, 16), vc = v128.load(pc), vd = v128.load(pc, 16);
    const la = nibLo(va), ha_ = nibHi(va), lb = nibLo(vb), hb = nibHi(vb), lc = nibLo(vc), hc_ = nibHi(vc), ld = nibLo(vd), hd = nibHi(vd);
    const h4 = v128.load32_lane(hc, v128.load32_zero(ha), 1);
    // a normal half's sign to bit 31, its exponent and mantissa 13 up, the exponent rebased (+112)
    const d4 = fast ? i32x4.add(v128.and(i32x4.shl(i32x4.extend_low_i16x8_s(h4), 13), i32x4.splat(0x8fffe000)), i32x4.splat(112 << 23))
      : f16hiToF32Exact(i32x4.shl(i32x4.extend_low_i16x8_u(h4), 16));
    f0 = fmadd(f32x4.sub(q4DotsG(q4Pair4(la, ha_, lb, hb, lc, hc_, ld, hd, x16, x8)), v128.load64_splat(cp)), f32x4.mul(d4, v128.load64_splat(dp)), f0);
    if (R > 1) f1 = fmadd(f32x4.sub(q4DotsG(q4Pair4(la, ha_, lb, hb, lc, hc_, ld, hd, x16 + ldp, x8 + ldp)), v128.load64_splat(cp + ldp)), f32x4.mul(d4, v128.load64_splat(dp + ldp)), f1);
    if (R > 2) f2 = fmadd(f32x4.sub(q4DotsG(q4Pair4(la, ha_, lb, hb, lc, hc_, ld, hd, x16 + 2 * ldp, x8 + 2 * ldp)), v128.load64_splat(cp + 2 * ldp)), f32x4.mul(d4, v128.load64_splat(dp + 2 * ldp)), f2);
    if (R > 3) f3 = fmadd(f32x4.sub(q4DotsG(q4Pair4(la, ha_, lb, hb, lc, hc_, ld, hd, x16 + 3 * ldp, x8 + 3 * ldp)), v128.load64_splat(cp + 3 * ldp)), f32x4.mul(d4, v128.load64_splat(dp + 3 * ldp)), f3);
    pa += 32; pc += 32; ha += 4; hc += 4; x16 += 128; x8 += 64; dp += 8; cp += 8;
  }
  // written out per token, not a loop: with R = 1 the loop cost V8's code 3% of the one-token GEMV
  q4_0REnd(f0, out, na, nc, acc, b, nb, pa, pc, ha, hc, x16, x8, dp, cp);
  if (R > 1) q4_0REnd(f1, out + ldo, na, nc, acc, b, nb, pa, pc, ha, hc, x16 + ldp, x8 + ldp, dp + ldp, cp + ldp);
  if (R > 2) q4_0REnd(f2, out + 2 * ldo, na, nc, acc, b, nb, pa, pc, ha, hc, x16 + 2 * ldp, x8 + 2 * ldp, dp + 2 * ldp, cp + 2 * ldp);
  if (R > 3) q4_0REnd(f3, out + 3 * ldo, na, nc, acc, b, nb, pa, pc, ha, hc, x16 + 3 * ldp, x8 + 3 * ldp, dp + 3 * ldp, cp + 3 * ldp);
}

/** The end of gemvQ4_0RPair's rows na, nc for one token: the odd last block (if b < nb) and the stores. */
@inline function q4_0REnd(f: v128, o: usize, na: i32, nc: i32, acc: i32, b: i32, nb: i32, pa: usize, pc: usize, ha: usize, hc: usize,
  x16: usize, x8: usize, dp: usize, cp: usize): void {
  let fa = f32x4.extract_lane(f, 0) + f32x4.extract_lane(f, 1), fc = f32x4.extract_lane(f, 2) + f32x4.extract_lane(f, 3);
  if (b < nb) {
    const dx = load<f32>(dp), c = load<f32>(cp);
    const va = v128.load(pa), vc = v128.load(pc);
    fa += (hsum(q4DotsG1(q4Part(nibLo(va), nibHi(va), x16, x8))) - c) * (half1(ha) * dx);
    fc += (hsum(q4DotsG1(q4Part(nibLo(vc), nibHi(vc), x16, x8))) - c) * (half1(hc) * dx);
  }
  const oa = o + (<usize>na << 2);
  store<f32>(oa, acc ? load<f32>(oa) + fa : fa);
  if (nc != na) {
    const oc = o + (<usize>nc << 2);
    store<f32>(oc, acc ? load<f32>(oc) + fc : fc);
  }
}

/** One block's q4Part as f32 lanes whose sum is its dot (exact). */
@inline function q4DotsG1(q: v128): v128 {
  return f32x4.convert_i32x4_s(ASC_FEATURE_RELAXED_SIMD ? i32x4.extadd_pairwise_i16x8_s(q) : q);
}

/** Rows [n0, n1) in pairs (n0 + i, n0 + h + i), the odd one out alone: gemvQ4_0RPair. */
@inline function gemvQ4_0RT(out: usize, q16: usize, q8: usize, qd: usize, corr: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: bool): void {
  const h = (n1 - n0 + 1) >> 1;
  for (let i = 0; i < h; i++) {
    const na = n0 + i, nc = n0 + h + i;
    gemvQ4_0RPair(out, q16, q8, qd, corr, w, K, na, nc < n1 ? nc : na, acc, fast);
  }
}

export function gemvQ4_0RInt(out: usize, q16: usize, q8: usize, qd: usize, corr: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: i32): void {
  if (fast) gemvQ4_0RT(out, q16, q8, qd, corr, w, K, n0, n1, acc, true);
  else gemvQ4_0RT(out, q16, q8, qd, corr, w, K, n0, n1, acc, false);
}

/** gemvQ4_0RInt for R = 2..4 tokens at once (rows of x ldp bytes apart, of out ldo apart). */
@inline function gemvQ4_0RTR(out: usize, ldo: usize, xp: usize, ldp: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: bool, R: i32): void {
  const o8 = <usize>K << 1, od = <usize>K * 3, oc = od + (<usize>K >> 2);
  const h = (n1 - n0 + 1) >> 1;
  for (let i = 0; i < h; i++) {
    const na = n0 + i, nc = n0 + h + i;
    gemvQ4_0RPair(out, xp, xp + o8, xp + od, xp + oc, w, K, na, nc < n1 ? nc : na, acc, fast, ldo, ldp, R);
  }
}
function gemvQ4_0RIntR(out: usize, ldo: usize, xp: usize, ldp: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: i32, R: i32): void {
  if (fast) {
    if (R == 2) gemvQ4_0RTR(out, ldo, xp, ldp, w, K, n0, n1, acc, true, 2);
    else if (R == 3) gemvQ4_0RTR(out, ldo, xp, ldp, w, K, n0, n1, acc, true, 3);
    else gemvQ4_0RTR(out, ldo, xp, ldp, w, K, n0, n1, acc, true, 4);
  } else {
    if (R == 2) gemvQ4_0RTR(out, ldo, xp, ldp, w, K, n0, n1, acc, false, 2);
    else if (R == 3) gemvQ4_0RTR(out, ldo, xp, ldp, w, K, n0, n1, acc, false, 3);
    else gemvQ4_0RTR(out, ldo, xp, ldp, w, K, n0, n1, acc, false, 4);
  }
}

/** Rows of W that the several-token GEMV takes at a time (a few KiB: they stay in L1 for every token). */
const ROW_GROUP: i32 = 4;

/**
 * Rows [n0, n1) of out for M = 1..8 rows of x. Every output comes from the one-row kernel (a
 * token's result is then that of a one-token call by construction); with several tokens, W goes by
 * groups of ROW_GROUP rows, each group through the kernel once per token while it is in L1, so W is
 * read from memory once per call. `prep` holds the rows' quantized forms (k_prep_x layout) `ldp`
 * bytes apart.
 */
export function gemvBlockInt(dtype: i32, M: i32, out: usize, ldo: usize, prep: usize, ldp: usize, w: usize, K: i32,
  n0: i32, n1: i32, acc: i32, wm: usize = 0): void {
  // Q4_0 and Q4_K (relaxed build), 2-4 tokens: one pass over W, each weight step decoded once for
  // every token, each token's sums in the one-token kernel's order (so its results bit for bit)
  if (ASC_FEATURE_RELAXED_SIMD && M >= 2 && M <= 4) {
    if (dtype == BQ4_0R) { gemvQ4_0RIntR(out, ldo, prep, ldp, w, K, n0, n1, acc, <i32>wm, M); return; }
    if (dtype == BQ4_KR) { gemvQ4_KRIntR(out, ldo, prep, ldp, w, K, n0, n1, acc, M); return; }
  }
  const g = M == 1 ? n1 - n0 : ROW_GROUP;
  for (let n = n0; n < n1; n += g) {
    const e = min(n + g, n1);
    for (let r = 0; r < M; r++) gemvBlockInt1(dtype, out + <usize>r * ldo, prep + <usize>r * ldp, w, K, n, e, acc, wm);
  }
}

/** wm: BQ4_0R's flag that all its halves are normal ones (gemvQ4_0RInt's fast). */
@inline function gemvBlockInt1(dtype: i32, op: usize, xp: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32, wm: usize): void {
  const o8 = <usize>K << 1, od = <usize>K * 3, os = od + (<usize>K >> 3), oc = od + (<usize>K >> 2);
  if (dtype == BQ4_0R) gemvQ4_0RInt(op, xp, xp + o8, xp + od, xp + oc, w, K, n0, n1, acc, <i32>wm);
  else if (dtype == BQ8_0) gemvQ8_0Int(op, xp, xp + od, w, K, n0, n1, acc);
  else if (dtype == BQ4_KR) gemvQ4_KRInt(op, xp, xp + o8, xp + od, xp + os, w, K, n0, n1, acc);
  else if (dtype == BQ4_K) gemvQ4_KInt(op, xp, xp + o8, xp + od, xp + os, w, K, n0, n1, acc);
  else if (dtype == BQ6_K) gemvQ6_KInt(op, xp, xp + o8, xp + od, xp + q6KCorrOffset(K), w, K, n0, n1, acc);
  else if (dtype == BQ6_KR) gemvQ6_KRInt(op, xp, xp + o8, xp + od, xp + q6KCorrOffset(K), xp + q6KRXOffset(K), w, K, n0, n1, acc);
  else gemvQ4_0Int(op, xp, xp + o8, xp + od, xp + oc, w, K, n0, n1, acc);
}
