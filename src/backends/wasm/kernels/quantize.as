// f32 rows to the q8 and q4 storage formats (../../weight-format.ts describes both), for loading a
// bf16/f32 checkpoint with --dtype q8/q4. The bytes must be those setWeightRows writes in
// weight-format.ts, whatever the backend, so this is the same algorithm with the same f64 and f32
// operations in the same order: values widened to f64, Math.fround as an f32 demotion, JS
// Math.round (nearest, ties toward +∞), `(t + 0.5) | 0` as a truncation, and each weighted sum
// accumulated in index order. SIMD lanes therefore run side by side blocks (q4) or values (q8),
// never parts of one sum, whose order would change its rounding. A row never depends on another,
// so threads split rows freely.

import { q4MetaBytes, f16hiToF32Exact } from './simd';

const QB: i32 = 32;

/** JS Math.round: the nearest integer, ties toward +∞ (x − floor(x) is exact in f64). */
@inline function jsRound(v: f64): f64 {
  const f = floor(v);
  return v - f >= 0.5 ? f + 1 : f;
}

/** JS ToInt32 for the values these codes take (|v| < 2³¹; NaN and ±∞ give 0). */
@inline function toInt(v: f64): i32 { return abs(v) < 2147483648.0 ? <i32>v : 0; }

@inline function scaleCode(s: f64, D: f64): i32 {
  return s > 0 && D > 0 ? toInt(min<f64>(255, max<f64>(1, jsRound(s / D)))) : 0;
}
@inline function minCode(m: f64, M: f64): i32 {
  return M > 0 ? toInt(min<f64>(127, max<f64>(-127, jsRound(m / M)))) : 0;
}

// q4 works on two blocks at once, one per f64x2 lane: lane k of every operation is the scalar
// operation of its block, so each block's numbers are setWeightRows' whatever its neighbour does.
// A row is first laid out in the thread's scratch as f64 pairs: pair p, value i holds value i of
// blocks 2p and 2p + 1 (the last block twice when a row has an odd number).

const ZERO = f64x2(0, 0), HALF = f64x2(0.5, 0.5), FIFTEEN = f64x2(15, 15), ONE = f64x2(1, 1);

/** f64 → f32 → f64 per lane (Math.fround). */
@inline function fround2(v: v128): v128 { return f64x2.promote_low_f32x4(f32x4.demote_f64x2_zero(v)); }

// The pair's sums [Σw, Σw·q, Σw·q², Σw·x, Σw·q·x] for the last levels2() call (Σw and Σw·x do not
// depend on the levels and are summed once per pair); globals belong to an instance, one per thread.
let gW: v128 = ZERO, gQ: v128 = ZERO, gQQ: v128 = ZERO, gX: v128 = ZERO, gQX: v128 = ZERO;
let gS: v128 = ZERO, gM: v128 = ZERO;

/**
 * weight-format.ts q4Levels for a pair: the weighted squared error of each block's nearest levels
 * for its scale s and min m; leaves Σw·q, Σw·q², Σw·q·x in the globals. l is
 * `t <= 0 ? 0 : t >= 15 ? 15 : (t + 0.5) | 0` (NaN: 0, as `| 0` gives). With no importance (every
 * weight 1) the products by the weight are left out: w·y is y exactly.
 */
@inline function levels2(xv: usize, wv: usize, s: v128, m: v128, unit: bool): v128 {
  return unit ? levels2U(xv, s, m) : levels2W(xv, wv, s, m);
}

/** The level of t (see levels2): where t > 0, min(trunc(t + 0.5), 15), else 0 (all bits clear). */
@inline function level2(t: v128): v128 {
  return v128.and(f64x2.pmin(f64x2.trunc(f64x2.add(t, HALF)), FIFTEEN), f64x2.gt(t, ZERO));
}

/** 1/s where s > 0, else 0. */
@inline function inverse2(s: v128): v128 { return v128.and(f64x2.div(ONE, s), f64x2.gt(s, ZERO)); }

function levels2W(xv: usize, wv: usize, s: v128, m: v128): v128 {
  const inv = inverse2(s);
  let e = ZERO, w1 = ZERO, w2 = ZERO, w4 = ZERO;
  for (let i = 0; i < QB; i++) {
    const o = <usize>i << 4;
    const v = v128.load(xv + o), wt = v128.load(wv + o);
    const l = level2(f64x2.mul(f64x2.sub(v, m), inv));
    const d = f64x2.sub(f64x2.add(f64x2.mul(l, s), m), v);
    e = f64x2.add(e, f64x2.mul(f64x2.mul(wt, d), d));
    const wl = f64x2.mul(wt, l);
    w1 = f64x2.add(w1, wl);
    w2 = f64x2.add(w2, f64x2.mul(wl, l));
    w4 = f64x2.add(w4, f64x2.mul(wl, v));
  }
  gQ = w1; gQQ = w2; gQX = w4;
  return e;
}

function levels2U(xv: usize, s: v128, m: v128): v128 {
  const inv = inverse2(s);
  let e = ZERO, w1 = ZERO, w2 = ZERO, w4 = ZERO;
  for (let i = 0; i < QB; i++) {
    const v = v128.load(xv + (<usize>i << 4));
    const l = level2(f64x2.mul(f64x2.sub(v, m), inv));
    const d = f64x2.sub(f64x2.add(f64x2.mul(l, s), m), v);
    e = f64x2.add(e, f64x2.mul(d, d));
    w1 = f64x2.add(w1, l);
    w2 = f64x2.add(w2, f64x2.mul(l, l));
    w4 = f64x2.add(w4, f64x2.mul(l, v));
  }
  gQ = w1; gQQ = w2; gQX = w4;
  return e;
}

/** weight-format.ts lsFit per lane: s, m (f32 values) into gS, gM; returns the lanes where it is not singular. */
@inline function lsFit2(): v128 {
  const det = f64x2.sub(f64x2.mul(gW, gQQ), f64x2.mul(gQ, gQ));
  gS = fround2(f64x2.div(f64x2.sub(f64x2.mul(gW, gQX), f64x2.mul(gQ, gX)), det));
  gM = fround2(f64x2.div(f64x2.sub(f64x2.mul(gQQ, gX), f64x2.mul(gQ, gQX)), det));
  return f64x2.gt(det, ZERO);
}

/** Lanes where v is finite (v − v is 0 only then). */
@inline function finite2(v: v128): v128 { return f64x2.eq(f64x2.sub(v, v), ZERO); }

/** weight-format.ts fitQ4Block for a pair (its levels are not needed here): the blocks' s, m into gS, gM. */
function fitPair(xv: usize, wv: usize, unit: bool): void {
  let lo = f64x2(Infinity, Infinity), hi = f64x2(-Infinity, -Infinity);
  for (let i = 0; i < QB; i++) {
    const v = v128.load(xv + (<usize>i << 4));
    lo = f64x2.pmin(lo, v);   // v < lo ? v : lo
    hi = f64x2.pmax(hi, v);   // hi < v ? v : hi
  }
  let bs = fround2(f64x2.div(f64x2.sub(hi, lo), FIFTEEN)), bm = fround2(lo);
  // a lane is done once its block's fit has returned (s = 0) or left the loop
  let done = f64x2.eq(bs, ZERO);
  if (!i64x2.all_true(done)) {
    let best = levels2(xv, wv, bs, bm, unit);
    for (let it = 0; it < 2; it++) {      // FIT_ROUNDS
      let act = v128.andnot(lsFit2(), done);
      const s = gS, m = gM;
      act = v128.and(act, v128.and(f64x2.gt(s, ZERO), finite2(m)));
      if (!v128.any_true(act)) break;
      const e = levels2(xv, wv, s, m, unit);
      act = v128.and(act, f64x2.lt(e, best));
      best = v128.bitselect(e, best, act); bs = v128.bitselect(s, bs, act); bm = v128.bitselect(m, bm, act);
      done = v128.or(done, v128.not(act));
      if (i64x2.all_true(done)) break;
    }
  }
  gS = bs; gM = bm;
}

/** Scratch bytes per thread quantizeRows needs for rows of K values. */
export function quantizeScratch(K: i32): i32 { const pairs = ((K >> 5) + 1) >> 1; return pairs * (QB * 16 * 2 + 64) + 64; }

/**
 * q4 rows [i0, i1) of the `src` rows (K values each) into weight rows r0 + i: 16 code bytes per
 * block at data, D, M and the scale and min codes at meta. A row whose D or M is not finite gets
 * them written and nothing else (the caller refuses it).
 */
function q4Rows(src: usize, K: i32, imp: usize, unit: bool, data: usize, meta: usize, r0: i32, i0: i32, i1: i32, scr: usize): void {
  const nb = K >> 5, mb = q4MetaBytes(K), pairs = (nb + 1) >> 1;
  const PB = <usize>(QB << 4);                       // bytes of one pair's values
  const xs = scr, ws = scr + <usize>pairs * PB, fits = ws + <usize>pairs * PB;
  // the importance as pairs, once per call
  for (let p = 0; p < pairs; p++) {
    const b0 = p << 1, b1 = min(b0 + 1, nb - 1);
    for (let i = 0; i < QB; i++) {
      const o = ws + <usize>p * PB + (<usize>i << 4);
      store<f64>(o, <f64>load<f32>(imp + (<usize>(b0 * QB + i) << 2)));
      store<f64>(o, <f64>load<f32>(imp + (<usize>(b1 * QB + i) << 2)), 8);
    }
  }
  for (let r = i0; r < i1; r++) {
    const x = src + ((<usize>r * <usize>K) << 2), row = <usize>(r0 + r);
    let smax: f64 = 0, mmax: f64 = 0;
    for (let p = 0; p < pairs; p++) {
      const b0 = p << 1, b1 = min(b0 + 1, nb - 1);
      const xv = xs + <usize>p * PB, wv = ws + <usize>p * PB;
      let w0 = ZERO, w3 = ZERO;
      for (let i = 0; i < QB; i++) {
        const o = <usize>i << 4;
        const v = f64x2.replace_lane(f64x2.splat(<f64>load<f32>(x + (<usize>(b0 * QB + i) << 2))), 1, <f64>load<f32>(x + (<usize>(b1 * QB + i) << 2)));
        v128.store(xv + o, v);
        const wt = v128.load(wv + o);
        w0 = f64x2.add(w0, wt); w3 = f64x2.add(w3, f64x2.mul(wt, v));
      }
      gW = w0; gX = w3;
      fitPair(xv, wv, unit);
      const f = fits + (<usize>p << 6);
      v128.store(f, gS);
      v128.store(f, gM, 16);
      v128.store(f, w0, 32);
      v128.store(f, w3, 48);
      smax = max<f64>(smax, max<f64>(f64x2.extract_lane(gS, 0), f64x2.extract_lane(gS, 1)));
      mmax = max<f64>(mmax, max<f64>(abs<f64>(f64x2.extract_lane(gM, 0)), abs<f64>(f64x2.extract_lane(gM, 1))));
    }
    const D: f64 = <f64><f32>(smax / 255), M: f64 = <f64><f32>(mmax / 127);
    const mo = meta + row * mb;
    store<f32>(mo, <f32>D);
    store<f32>(mo, <f32>M, 4);
    if (!isFinite<f64>(D) || !isFinite<f64>(M)) continue;
    for (let p = 0; p < pairs; p++) {
      const b0 = p << 1, b1 = min(b0 + 1, nb - 1);
      const xv = xs + <usize>p * PB, wv = ws + <usize>p * PB;
      const f = fits + (<usize>p << 6);
      const fs = v128.load(f), fm = v128.load(f, 16);
      // the levels again for the coded scale and min, then once more the least-squares s, m for
      // them, coded (kept when better)
      let sc0 = scaleCode(f64x2.extract_lane(fs, 0), D), sc1 = scaleCode(f64x2.extract_lane(fs, 1), D);
      let mc0 = minCode(f64x2.extract_lane(fm, 0), M), mc1 = minCode(f64x2.extract_lane(fm, 1), M);
      let s = f64x2.replace_lane(f64x2.splat(<f64><f32>(D * <f64>sc0)), 1, <f64><f32>(D * <f64>sc1));
      let m = f64x2.replace_lane(f64x2.splat(<f64><f32>(M * <f64>mc0)), 1, <f64><f32>(M * <f64>mc1));
      gW = v128.load(f, 32); gX = v128.load(f, 48);
      const best = levels2(xv, wv, s, m, unit);
      const ok = v128.and(lsFit2(), v128.and(f64x2.gt(gS, ZERO), finite2(gM)));
      if (v128.any_true(ok)) {
        const ls = gS, lm = gM;
        const tc0 = scaleCode(f64x2.extract_lane(ls, 0), D), tc1 = scaleCode(f64x2.extract_lane(ls, 1), D);
        const tm0 = minCode(f64x2.extract_lane(lm, 0), M), tm1 = minCode(f64x2.extract_lane(lm, 1), M);
        const s1 = f64x2.replace_lane(f64x2.splat(<f64><f32>(D * <f64>tc0)), 1, <f64><f32>(D * <f64>tc1));
        const m1 = f64x2.replace_lane(f64x2.splat(<f64><f32>(M * <f64>tm0)), 1, <f64><f32>(M * <f64>tm1));
        const take = v128.and(ok, f64x2.lt(levels2(xv, wv, s1, m1, unit), best));
        if (i64x2.extract_lane(take, 0) != 0) { sc0 = tc0; mc0 = tm0; }
        if (i64x2.extract_lane(take, 1) != 0) { sc1 = tc1; mc1 = tm1; }
        s = v128.bitselect(s1, s, take); m = v128.bitselect(m1, m, take);
      }
      store<u8>(mo + 8 + <usize>b0, <u8>sc0);
      store<u8>(mo + 8 + <usize>nb + <usize>b0, <u8>mc0);
      store<u8>(mo + 8 + <usize>b1, <u8>sc1);
      store<u8>(mo + 8 + <usize>nb + <usize>b1, <u8>mc1);
      // the chosen levels, recomputed: the same function of x, s and m as levels2() evaluates
      const inv = inverse2(s);
      const o0 = data + ((row * <usize>nb + <usize>b0) << 4), o1 = data + ((row * <usize>nb + <usize>b1) << 4);
      for (let j = 0; j < 16; j++) {
        const tl = f64x2.mul(f64x2.sub(v128.load(xv + (<usize>j << 4)), m), inv);
        const th = f64x2.mul(f64x2.sub(v128.load(xv + (<usize>(j + 16) << 4)), m), inv);
        const ll = i32x4.trunc_sat_f64x2_s_zero(level2(tl)), lh = i32x4.trunc_sat_f64x2_s_zero(level2(th));
        const byte = v128.or(ll, i32x4.shl(lh, 4));
        store<u8>(o0 + <usize>j, <u8>i32x4.extract_lane(byte, 0));
        store<u8>(o1 + <usize>j, <u8>i32x4.extract_lane(byte, 1));
      }
    }
  }
}

/** f32 to f16 bits, nearest with ties to even: core/dtype.ts f32ToF16, bit for bit. */
function f32ToF16(x: f32): u32 {
  const u = reinterpret<u32>(x);
  const sign = (u >> 16) & 0x8000, exp = <i32>((u >> 23) & 0xff);
  let mant = u & 0x7fffff;
  if (exp == 0xff) return sign | 0x7c00 | (mant != 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = <u32>(14 - e);
    let h = mant >> shift;
    const rem = mant & ((<u32>1 << shift) - 1), half = <u32>1 << (shift - 1);
    if (rem > half || (rem == half && (h & 1) != 0)) h++;
    return sign | h;
  }
  let h = (<u32>e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1) != 0)) h++;
  return sign | h;
}

const Q8_MAX = i32x4(127, 127, 127, 127), Q8_MIN = i32x4(-127, -127, -127, -127);
const Q8_MAXF = f32x4(127, 127, 127, 127), Q8_MINF = f32x4(-127, -127, -127, -127);
const ONE32 = f32x4(1, 1, 1, 1), HALF32 = f32x4(0.5, 0.5, 0.5, 0.5);

/** An f16 (its bits) as f64, exactly. */
@inline function f16Value(h: u32): f64 { return <f64>f32x4.extract_lane(f16hiToF32Exact(i32x4.splat(<i32>(h << 16))), 0); }

/**
 * weight-format.ts q8Fit: Σ(x − d·q)² over the 32 values at xb, q = round(x · r) clamped to ±127,
 * r = 1/d, and in q8Ls Σx·q / Σq², in f32; value i goes to partial sum i % 8 (lane i % 4 of
 * accumulator (i / 4) % 2), combined as there (Σq² is an exact integer in any order).
 */
let q8Ls: f32 = 0;
function q8Fit(xb: usize, d: f32): f32 {
  const dv = f32x4.splat(d), rv = f32x4.splat(<f32>1 / d), z = f32x4.splat(0);
  let e0 = z, e1 = z, s0 = z, s1 = z, qq = i32x4.splat(0);
  for (let j = 0; j < QB; j += 8) {
    const p = xb + (<usize>j << 2);
    let x = v128.load(p), q = q8Level(x, rv), t = f32x4.sub(x, f32x4.mul(dv, q));
    e0 = f32x4.add(e0, f32x4.mul(t, t)); s0 = f32x4.add(s0, f32x4.mul(x, q));
    let qi = i32x4.trunc_sat_f32x4_s(q); qq = i32x4.add(qq, i32x4.mul(qi, qi));
    x = v128.load(p, 16); q = q8Level(x, rv); t = f32x4.sub(x, f32x4.mul(dv, q));
    e1 = f32x4.add(e1, f32x4.mul(t, t)); s1 = f32x4.add(s1, f32x4.mul(x, q));
    qi = i32x4.trunc_sat_f32x4_s(q); qq = i32x4.add(qq, i32x4.mul(qi, qi));
  }
  // lanes (a0 + a4, a1 + a5, a2 + a6, a3 + a7), then ((0) + (1)) + ((2) + (3))
  const s = f32x4.add(s0, s1), e = f32x4.add(e0, e1);
  const n = i32x4.extract_lane(qq, 0) + i32x4.extract_lane(qq, 1) + i32x4.extract_lane(qq, 2) + i32x4.extract_lane(qq, 3);
  q8Ls = ((f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1)) + (f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3))) / <f32>n;
  return (f32x4.extract_lane(e, 0) + f32x4.extract_lane(e, 1)) + (f32x4.extract_lane(e, 2) + f32x4.extract_lane(e, 3));
}

/** Math.round(x · r) clamped to ±127, per f32 lane (x − floor(x) is exact in f32). */
@inline function q8Level(x: v128, rv: v128): v128 {
  const y = f32x4.mul(x, rv), f = f32x4.floor(y);
  const r = v128.bitselect(f32x4.add(f, ONE32), f, f32x4.ge(f32x4.sub(y, f), HALF32));
  return f32x4.max(f32x4.min(r, Q8_MAXF), Q8_MINF);
}

/** weight-format.ts q8Scale for a block at xb whose Q8_0 d rounds to the half h (the same fits in the same order). */
function q8Scale(xb: usize, h: u32): u32 {
  if (h == 0 || h >= 0x7c00) return h;
  const h0: u32 = h < 0x400 ? 0x400 : h;   // never subnormal (weight-format.ts q8Scale)
  let err = q8Fit(xb, <f32>f16Value(h0));
  const h1 = f32ToF16(q8Ls);
  if (h1 == h0 || h1 < 0x400 || h1 >= 0x7c00) return h0;
  const e1 = q8Fit(xb, <f32>f16Value(h1));
  if (!(e1 < err)) return h0;
  err = e1;
  const h2 = f32ToF16(q8Ls);
  if (h2 == h0 || h2 == h1 || h2 < 0x400 || h2 >= 0x7c00) return h1;
  return q8Fit(xb, <f32>f16Value(h2)) < err ? h2 : h1;
}

/** Math.round(x / sc) clamped to ±127 for two f32 values at p (NaN gives 0 as ToInt8 does), in lanes 0 and 1. */
@inline function q8Two(p: usize, sv: v128): v128 {
  const y = f64x2.div(f64x2.promote_low_f32x4(v128.load64_zero(p)), sv);
  const f = f64x2.floor(y);
  const q = i32x4.trunc_sat_f64x2_s_zero(v128.bitselect(f64x2.add(f, ONE), f, f64x2.ge(f64x2.sub(y, f), HALF)));
  return i32x4.max_s(i32x4.min_s(q, Q8_MAX), Q8_MIN);
}

/** q8Two for four values at p, in order. */
@inline function q8Four(p: usize, sv: v128): v128 { return v128.shuffle<i32>(q8Two(p, sv), q8Two(p + 8, sv), 0, 1, 4, 5); }

/**
 * q8 rows [i0, i1) of the `src` rows into weight rows r0 + i: int8 values at data, one f16 scale
 * (its bits) per block at scales. A scale f16 cannot hold is written as its infinity, with the
 * block's levels 0; the caller refuses the weight (wasm-backend.ts checkQ8Scales).
 */
function q8Rows(src: usize, K: i32, data: usize, scales: usize, r0: i32, i0: i32, i1: i32): void {
  const nb = K >> 5;
  for (let i = i0; i < i1; i++) {
    const x = src + ((<usize>i * <usize>K) << 2), row = <usize>(r0 + i);
    for (let b = 0; b < nb; b++) {
      const xb = x + (<usize>b << 7);
      // the largest |x| (the order of a max does not matter; NaN wins, as in Math.max)
      let a = f32x4.splat(0);
      for (let j = 0; j < QB; j += 4) a = f32x4.max(a, f32x4.abs(v128.load(xb + (<usize>j << 2))));
      const amax = <f64>max<f32>(max<f32>(f32x4.extract_lane(a, 0), f32x4.extract_lane(a, 1)), max<f32>(f32x4.extract_lane(a, 2), f32x4.extract_lane(a, 3)));
      // weight-format.ts q8Scale: Q8_0's d or the f16 a few steps from it with the least error,
      // then the levels fitted to the stored half
      const h = q8Scale(xb, f32ToF16(<f32>(amax / 127)));
      store<u16>(scales + ((row * <usize>nb + <usize>b) << 1), <u16>h);
      const sc = f16Value(h);
      const o = data + ((row * <usize>nb + <usize>b) << 5);
      // JS `sc ? … : 0`: a zero (or NaN) scale leaves the levels 0; ∞ gives x/∞ = 0 (refused anyway)
      if (!(sc != 0 && sc == sc)) { v128.store(o, i8x16.splat(0)); v128.store(o, i8x16.splat(0), 16); continue; }
      const sv = f64x2.splat(sc);
      for (let j = 0; j < QB; j += 16) {
        // 16 levels per store: pairs of lanes joined into i32x4s, then narrowed (they fit an i8)
        const p = xb + (<usize>j << 2);
        const a = i16x8.narrow_i32x4_s(q8Four(p, sv), q8Four(p + 16, sv));
        const b = i16x8.narrow_i32x4_s(q8Four(p + 32, sv), q8Four(p + 48, sv));
        v128.store(o + <usize>j, i8x16.narrow_i16x8_s(a, b));
      }
    }
  }
}

/**
 * Rows [i0, i1) of a quantization call. dtype 3: q8, 4: q4 (../kernels.ts DTYPE_CODE); imp: K
 * importance weights (q4; all 1 when the caller has none, which gives the same sums), unit: they are all 1.
 */
export function quantizeRows(dtype: i32, src: usize, K: i32, imp: usize, unit: bool, data: usize, scales: usize, r0: i32,
  i0: i32, i1: i32, scr: usize): void {
  if (dtype == 4) q4Rows(src, K, imp, unit, data, scales, r0, i0, i1, scr);
  else if (dtype == 3) q8Rows(src, K, data, scales, r0, i0, i1);
}
