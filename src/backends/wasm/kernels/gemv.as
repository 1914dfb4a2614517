// GEMV (decode: 1 to 8 tokens): out[n] (+)= Σ_k x[k]·W[n,k] over row-major W [N, K], streaming W
// once per 4 tokens. Threads split the rows. Every dtype reads the weights in their stored layout (no repacked
// copy, so the model is held once); x is prepared once per call before the threads start
// (deinterleaved for 16-bit weights, quantized to int8 blocks for q8/q4), which costs microseconds.

import { fmadd, hsum, hsum4, bf16hiToF32, f16hiToF32, f16hiToF32Exact, f16AnySubnormal, q4MetaBytes, codes4s, nibLo, nibHi } from './simd';
import { f16x4At, f16SplatAt } from './simd';

// Rows of W are processed one at a time, front to back, so W is read as one sequential stream:
// DRAM prefetchers follow that far better than several interleaved row streams (4 rows at a time
// ran at half the bandwidth here). x stays in L1; several accumulators hide the add latency.
// (f16 where denormal operands are free walks two rows far apart, each a sequential stream of
// its own: gemvF16Pairs.)
//
// Up to 4 rows of x (tokens) share one pass over W, each weight vector used for every row. The
// many-row kernels form each row's sums in exactly the order of the one-row kernels (R only adds
// lanes), so a token's result does not depend on which other tokens share the call: speculative
// decoding's verification (several tokens) then reproduces plain decoding (one token) bit for bit.

// ---------------------------------------------------------------------------------------------
// bf16 / f16: 8 weights per load; the even elements are shifted into the upper halves of the
// 32-bit lanes and the odd ones already are there, so x is pre-split into [evens | odds] per 8.

/** xd[8g..8g+3] = x[8g + 0,2,4,6], xd[8g+4..8g+7] = x[8g + 1,3,5,7] for the K & ~7 leading values. */
export function deinterleave8(xd: usize, x: usize, K: i32): void {
  const end = <usize>(K & ~7) << 2;
  for (let o: usize = 0; o < end; o += 32) {
    const a = v128.load(x + o), b = v128.load(x + o, 16);
    v128.store(xd + o, v128.shuffle<f32>(a, b, 0, 2, 4, 6));
    v128.store(xd + o, v128.shuffle<f32>(a, b, 1, 3, 5, 7), 16);
  }
}

/** The 4 even (hi = false) or odd (hi = true) halves of 8 packed 16-bit floats, as f32. */
@inline function halfPair(v: v128, f16: bool, hi: bool): v128 {
  if (f16) return f16hiToF32(hi ? v : i32x4.shl(v, 16));
  return hi ? bf16hiToF32(v) : i32x4.shl(v, 16);   // the shift already cleared the low half
}

/** halfPair for f16 without denormal operands (for the rare groups holding subnormal halves). */
@inline function halfPairExact(v: v128, hi: bool): v128 { return f16hiToF32Exact(hi ? v : i32x4.shl(v, 16)); }

/**
 * f16 weights against x·2¹¹²: the half's bits moved into place (f16hiToF32 without its multiply by
 * 2¹¹²) are the f32 w·2⁻¹¹², and w·2⁻¹¹² times x·2¹¹² is the same real product w·x, rounded the
 * same way, so the sums are bit for bit those of the unscaled form, one multiply per 4 weights
 * cheaper. Only for groups without subnormal halves (their bits would be f32 denormals).
 */
@inline function f16Bits(v: v128, hi: bool): v128 {
  // The even half is moved up by a shift: V8 (x64) lowers the equivalent byte shuffle to two
  // instructions (pshuflw, pshufhw), and relaxed_swizzle's pshufb loses its mask register in the
  // unrolled loop (docs/cpu-decode.md, "What V8 emits for the f16 GEMV").
  return v128.and(i32x4.shr_s(hi ? v : i32x4.shl(v, 16), 3), i32x4.splat(0x8fffe000));
}

/** Whether k_prep_x stored x·2¹¹² after the deinterleaved x (it does unless some |x| ≥ 2¹⁶ or x is not finite). */
@inline function f16Scaled(xd: usize, K: i32): bool { return load<i32>(xd + (<usize>K << 3)) != 0; }

/** The scaled copy of a deinterleaved x for f16Bits, and its flag (see f16Scaled). */
export function scaleForF16(xd: usize, K: i32): void {
  const n = <usize>(K & ~7) << 2, xs = xd + (<usize>K << 2);
  let m = f32x4.splat(0);
  for (let o: usize = 0; o < n; o += 16) m = f32x4.max(m, f32x4.abs(v128.load(xd + o)));
  const t = f32x4.max(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
  const amax = f32x4.extract_lane(f32x4.max(t, v128.shuffle<f32>(t, t, 1, 0, 3, 2)), 0);
  // NaN compares false: such an x keeps the unscaled path, which propagates it as before
  const ok = amax < 65536;
  if (ok) {
    const s = f32x4.splat(5.192296858534828e33);   // 2¹¹², exact
    for (let o: usize = 0; o < n; o += 16) v128.store(xs + o, f32x4.mul(v128.load(xd + o), s));
  }
  store<i32>(xd + (<usize>K << 3), ok ? 1 : 0);
}

@inline function scalarHalf(h: u32, f16: bool): f32 {
  return f32x4.extract_lane(f16 ? f16hiToF32Exact(i32x4.splat(h << 16)) : bf16hiToF32(i32x4.splat(h << 16)), 0);
}

// ---------------------------------------------------------------------------------------------
// Activation quantization for the integer paths (llama.cpp's Q8_0/Q8_1 activations): per block of
// 32, d = max|x| / 127 and q = round(x / d) in [-127, 127], stored as i16 (for i32x4.dot_i16x8_s)
// and as i8 (for the relaxed i8 dot; skipped when q8 = 0); s = d·Σ q, the block sum of the *quantized* x, for q4's min
// term (llama.cpp's Q8_1): then q4's result is exactly the dot of the dequantized weights with the
// quantized x, and its error is that of x's quantization alone, as for q8.

export function quantizeX(x: usize, K: i32, q16: usize, q8: usize, qd: usize, qs: usize): void {
  const nb = K >> 5;
  for (let b = 0; b < nb; b++) {
    const p = x + (<usize>b << 7);
    const v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
    const v4 = v128.load(p, 64), v5 = v128.load(p, 80), v6 = v128.load(p, 96), v7 = v128.load(p, 112);
    let m = f32x4.max(f32x4.max(f32x4.abs(v0), f32x4.abs(v1)), f32x4.max(f32x4.abs(v2), f32x4.abs(v3)));
    m = f32x4.max(m, f32x4.max(f32x4.max(f32x4.abs(v4), f32x4.abs(v5)), f32x4.max(f32x4.abs(v6), f32x4.abs(v7))));
    const t = f32x4.max(m, v128.shuffle<f32>(m, m, 2, 3, 0, 1));
    const amax = f32x4.extract_lane(f32x4.max(t, v128.shuffle<f32>(t, t, 1, 0, 3, 2)), 0);
    const d: f32 = amax / 127;
    const id = f32x4.splat(amax > 0 ? <f32>127 / amax : <f32>0);
    store<f32>(qd + (<usize>b << 2), d);
    const i0 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v0, id)));
    const i1 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v1, id)));
    const i2 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v2, id)));
    const i3 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v3, id)));
    const i4 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v4, id)));
    const i5 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v5, id)));
    const i6 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v6, id)));
    const i7 = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v7, id)));
    const is = i32x4.add(i32x4.add(i32x4.add(i0, i1), i32x4.add(i2, i3)), i32x4.add(i32x4.add(i4, i5), i32x4.add(i6, i7)));
    const sum = i32x4.extract_lane(is, 0) + i32x4.extract_lane(is, 1) + i32x4.extract_lane(is, 2) + i32x4.extract_lane(is, 3);
    store<f32>(qs + (<usize>b << 2), d * <f32>sum);
    const h0 = i16x8.narrow_i32x4_s(i0, i1), h1 = i16x8.narrow_i32x4_s(i2, i3);
    const h2 = i16x8.narrow_i32x4_s(i4, i5), h3 = i16x8.narrow_i32x4_s(i6, i7);
    const o16 = q16 + (<usize>b << 6);
    v128.store(o16, h0); v128.store(o16, h1, 16); v128.store(o16, h2, 32); v128.store(o16, h3, 48);
    if (q8) {
      const o8 = q8 + (<usize>b << 5);
      v128.store(o8, i8x16.narrow_i16x8_s(h0, h1)); v128.store(o8, i8x16.narrow_i16x8_s(h2, h3), 16);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One row of x (the decode step): small functions of their own, which V8 compiles better than the
// same loops inlined into the many-row dispatcher (measured 20-40% faster here). The many-row
// kernels below sum each row in exactly this order.

export function gemvF32(out: usize, x: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  const rb = <usize>K << 2;
  const e16 = <usize>(K & ~15) << 2, e4 = <usize>(K & ~3) << 2;
  let p = w + <usize>n0 * rb;
  for (let n = n0; n < n1; n++, p += rb) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let o: usize = 0;
    for (; o < e16; o += 64) {
      a0 = fmadd(v128.load(p + o), v128.load(x + o), a0);
      a1 = fmadd(v128.load(p + o, 16), v128.load(x + o, 16), a1);
      a2 = fmadd(v128.load(p + o, 32), v128.load(x + o, 32), a2);
      a3 = fmadd(v128.load(p + o, 48), v128.load(x + o, 48), a3);
    }
    for (; o < e4; o += 16) a0 = fmadd(v128.load(p + o), v128.load(x + o), a0);
    let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
    for (; o < rb; o += 4) s += load<f32>(p + o) * load<f32>(x + o);
    const op = out + (<usize>n << 2);
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

// A subnormal half makes an f32 denormal operand (docs/cpu-decode.md), so each group of 16 halves
// holding one takes the exact conversion. Testing every group in SIMD (AND, MIN, all-true) cost
// as much as the conversion itself; instead prepareWeight records, per row, one bit per group
// (f16SubnormalMap) and the loop tests a bit on the scalar ports. Both conversions give the same
// value, so a stale or absent map (0: test in SIMD) changes only the speed, never a result.

/** 32-bit words of one row's subnormal map (a bit per 16 halves). */
@inline export function subMapWords(K: i32): usize { return <usize>(((K >> 4) + 31) >> 5); }

/** Bytes of an f16 weight [N, K]'s subnormal map (what the backend allocates beside it). */
export function f16MapBytes(N: i32, K: i32): i32 { return N * <i32>subMapWords(K) * 4; }

/** Bit g of row n's words: whether halves 16g..16g+15 of W[n] hold a subnormal (not zero) half. */
export function f16SubnormalMap(w: usize, N: i32, K: i32, map: usize): void {
  const ng = K >> 4, wpr = subMapWords(K), rb = <usize>K << 1;
  const e = i16x8.splat(0x7c00), mm = i16x8.splat(0x03ff), z = i16x8.splat(0);
  for (let n = 0; n < N; n++) {
    const p = w + <usize>n * rb, mp = map + ((<usize>n * wpr) << 2);
    for (let wi: usize = 0; wi < wpr; wi++) store<u32>(mp + (wi << 2), 0);
    for (let g = 0; g < ng; g++) {
      const a = v128.load(p + (<usize>g << 5)), b = v128.load(p + (<usize>g << 5), 16);
      const sa = v128.and(i16x8.eq(v128.and(a, e), z), i16x8.ne(v128.and(a, mm), z));
      const sb = v128.and(i16x8.eq(v128.and(b, e), z), i16x8.ne(v128.and(b, mm), z));
      if (v128.any_true(v128.or(sa, sb))) {
        const q = mp + (<usize>(g >> 5) << 2);
        store<u32>(q, load<u32>(q) | (<u32>1 << <u32>(g & 31)));
      }
    }
  }
}

/**
 * Byte offset (in a row of halves) of the first group at or after `from` whose map bit is set, or
 * e16 when there is none: the loops compare each group's offset with it (one scalar compare).
 */
@inline function nextExact(mp: usize, from: usize, e16: usize): usize {
  let o = from;
  while (o < e16) {
    const word = load<u32>(mp + ((o >> 10) << 2)) >> <u32>((o >> 5) & 31);   // 32 groups of 32 bytes per word
    if (word) return min(o + (<usize>ctz(word) << 5), e16);
    o = (o | 1023) + 1;
  }
  return e16;
}

/** f16 with `mapped`: the groups to convert exactly come from the map at `map`, else from a SIMD test per group. */
@inline function gemvHalfT(out: usize, x: usize, xd: usize, w: usize, map: usize, K: i32, n0: i32, n1: i32, acc: i32,
  f16: bool, scaled: bool, mapped: bool): void {
  const xs = xd + (<usize>K << 2);   // f16 with `scaled`: x·2¹¹², deinterleaved (k_prep_x)
  const rb = <usize>K << 1, wpr = subMapWords(K);
  const e16 = <usize>(K & ~15) << 1, e8 = <usize>(K & ~7) << 1;
  let p = w + <usize>n0 * rb, mp = map + ((<usize>n0 * wpr) << 2);
  for (let n = n0; n < n1; n++, p += rb, mp += wpr << 2) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let o: usize = 0, xo: usize = 0;
    let nx = f16 && mapped ? nextExact(mp, 0, e16) : e16;
    for (; o < e16; o += 32, xo += 64) {
      const v0 = v128.load(p + o), v1 = v128.load(p + o, 16);
      // the same values either way: the exact form only avoids the denormal-operand assists
      if (f16 && (mapped ? o == nx : f16AnySubnormal(v0, v1))) {
        a0 = fmadd(halfPairExact(v0, false), v128.load(xd + xo), a0);
        a1 = fmadd(halfPairExact(v0, true), v128.load(xd + xo, 16), a1);
        a2 = fmadd(halfPairExact(v1, false), v128.load(xd + xo, 32), a2);
        a3 = fmadd(halfPairExact(v1, true), v128.load(xd + xo, 48), a3);
        if (mapped) nx = nextExact(mp, o + 32, e16);
      } else if (f16 && scaled) {
        a0 = fmadd(f16Bits(v0, false), v128.load(xs + xo), a0);
        a1 = fmadd(f16Bits(v0, true), v128.load(xs + xo, 16), a1);
        a2 = fmadd(f16Bits(v1, false), v128.load(xs + xo, 32), a2);
        a3 = fmadd(f16Bits(v1, true), v128.load(xs + xo, 48), a3);
      } else {
        a0 = fmadd(halfPair(v0, f16, false), v128.load(xd + xo), a0);
        a1 = fmadd(halfPair(v0, f16, true), v128.load(xd + xo, 16), a1);
        a2 = fmadd(halfPair(v1, f16, false), v128.load(xd + xo, 32), a2);
        a3 = fmadd(halfPair(v1, f16, true), v128.load(xd + xo, 48), a3);
      }
    }
    if (o < e8) {
      const v0 = v128.load(p + o);
      if (f16) {
        a0 = fmadd(halfPairExact(v0, false), v128.load(xd + xo), a0);
        a1 = fmadd(halfPairExact(v0, true), v128.load(xd + xo, 16), a1);
      } else {
        a0 = fmadd(halfPair(v0, f16, false), v128.load(xd + xo), a0);
        a1 = fmadd(halfPair(v0, f16, true), v128.load(xd + xo, 16), a1);
      }
    }
    let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
    for (let k = K & ~7; k < K; k++) s += load<f32>(x + (<usize>k << 2)) * scalarHalf(load<u16>(p + (<usize>k << 1)), f16);
    const op = out + (<usize>n << 2);
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

/**
 * f16 with a subnormal map: the row is walked as runs of clean groups between the marked ones, so
 * the hot loop holds no map test and nothing live into the exact path (which V8 otherwise spills
 * on every step), and one pointer per stream; V8 unrolls that small loop itself (3 steps per
 * stack check). The sums are formed group by group into the same four accumulators in the same
 * order as gemvHalfT, so results are bit-identical. Only the x·2¹¹² form (the rare multiply form
 * keeps gemvHalfT), in a function of its own: with two inlined copies of the loop, binaryen has
 * been seen to merge them into one loop that tests a flag at every step.
 */
function gemvF16Runs(out: usize, x: usize, xd: usize, w: usize, map: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: bool): void {
  const xs = xd + (<usize>K << 2);
  const rb = <usize>K << 1, wpr = subMapWords(K);
  const e16 = <usize>(K & ~15) << 1;
  let p = w + <usize>n0 * rb, mp = map + ((<usize>n0 * wpr) << 2);
  for (let n = n0; n < n1; n++, p += rb, mp += wpr << 2) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let o: usize = 0;
    while (true) {
      const nx = fast ? e16 : nextExact(mp, o, e16);
      let pw = p + o, px = xs + (o << 1);
      const pe = p + nx;
      for (; pw < pe; pw += 32, px += 64) {
        const v0 = v128.load(pw), v1 = v128.load(pw, 16);
        a0 = fmadd(f16Bits(v0, false), v128.load(px), a0);
        a1 = fmadd(f16Bits(v0, true), v128.load(px, 16), a1);
        a2 = fmadd(f16Bits(v1, false), v128.load(px, 32), a2);
        a3 = fmadd(f16Bits(v1, true), v128.load(px, 48), a3);
      }
      if (nx >= e16) break;
      // the marked group: exact conversion against the unscaled x
      const v0 = v128.load(p + nx), v1 = v128.load(p + nx, 16), xo = xd + (nx << 1);
      a0 = fmadd(halfPairExact(v0, false), v128.load(xo), a0);
      a1 = fmadd(halfPairExact(v0, true), v128.load(xo, 16), a1);
      a2 = fmadd(halfPairExact(v1, false), v128.load(xo, 32), a2);
      a3 = fmadd(halfPairExact(v1, true), v128.load(xo, 48), a3);
      o = nx + 32;
    }
    f16RowEnd(out, x, xd, p, K, n, acc, a0, a1, a2, a3);
  }
}

/**
 * n steps of 8 independent multiply-adds (the GEMV's fmadd) of w by x, w an f32 denormal when
 * den ≠ 0 (and x large, so the products are normal) and a normal f32 otherwise: the backend times
 * both to learn whether this CPU slows down on denormal operands (kernels.ts denormalsFast).
 */
export function denormalProbe(n: i32, den: i32): f32 {
  const w = i32x4.splat(den ? 0x00001234 : 0x3f801234), x = f32x4.splat(den ? 5.192296858534828e33 : 0.75);
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  for (let i = 0; i < n; i++) {
    a0 = fmadd(w, x, a0); a1 = fmadd(w, x, a1); a2 = fmadd(w, x, a2); a3 = fmadd(w, x, a3);
    a4 = fmadd(w, x, a4); a5 = fmadd(w, x, a5); a6 = fmadd(w, x, a6); a7 = fmadd(w, x, a7);
  }
  return hsum(f32x4.add(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(a4, a5), f32x4.add(a6, a7))));
}

/**
 * gemvF16 where denormal operands cost nothing (`fast`, see gemvF16): two rows at once, rows n and
 * n + h of the thread's range [n0, n1), so each thread reads two sequential streams of weights, not
 * one; from DRAM that keeps more lines in flight (docs/cpu-decode.md, "Where denormal operands cost
 * nothing"). x is loaded once for both rows. Every group takes the f16Bits form, subnormal halves
 * included: their bits are the f32 denormal w·2⁻¹¹², exact, so each product is the one the exact
 * conversion gives, and each row's sums go into its own four accumulators in gemvF16Runs's order:
 * every output is bit for bit what the one-row kernels give.
 */
function gemvF16Pairs(out: usize, x: usize, xd: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  const h = (n1 - n0) >> 1;
  for (let i = 0; i < h; i++) gemvF16Pair(out, x, xd, w, K, n0 + i, n0 + h + i, acc);
  if (n0 + 2 * h < n1) gemvHalfT(out, x, xd, w, 0, K, n1 - 1, n1, acc, true, true, false);
}

// The two-row kernel only in the relaxed build: with the SIMD128 build's separate multiply and
// add it measured 0.92-0.96x from DRAM (docs/cpu-decode.md).
const PAIRS = ASC_FEATURE_RELAXED_SIMD;

/**
 * gemvF16Pairs with four rows per pass (n, n + h, n + 2h, n + 3h): four weight streams per thread,
 * which one thread reads faster from DRAM than two (docs/cpu-decode.md, "Four weight rows per
 * pass"). Each row keeps its own four accumulators in gemvF16Pair's order, so every output is bit
 * for bit the same; two accumulators a row would spill nothing but change each sum's order.
 */
function gemvF16Quads(out: usize, x: usize, xd: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  const h = (n1 - n0) >> 2;
  for (let i = 0; i < h; i++) gemvF16Quad(out, x, xd, w, K, n0 + i, n0 + h + i, n0 + 2 * h + i, n0 + 3 * h + i, acc);
  if (n0 + 4 * h < n1) gemvF16Pairs(out, x, xd, w, K, n0 + 4 * h, n1, acc);
}

/**
 * Rows na, nb, nc, nd of gemvF16Quads, each in its own four accumulators in gemvF16Pair's order.
 * V8 keeps several of the 16 accumulators on the stack (32 stack loads and stores per 128 bytes of
 * weights): from DRAM that costs less than the extra streams give, in cache it runs 0.955x of pairs.
 */
function gemvF16Quad(out: usize, x: usize, xd: usize, w: usize, K: i32, na: i32, nb: i32, nc: i32, nd: i32, acc: i32): void {
  const xs = xd + (<usize>K << 2);
  const rb = <usize>K << 1, e16 = <usize>(K & ~15) << 1;
  const pa = w + <usize>na * rb, pb = w + <usize>nb * rb, pc = w + <usize>nc * rb, pd = w + <usize>nd * rb, pe = pa + e16;
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  let b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  let c0 = a0, c1 = a0, c2 = a0, c3 = a0;
  let d0 = a0, d1 = a0, d2 = a0, d3 = a0;
  for (let pw = pa, qw = pb, rw = pc, tw = pd, px = xs; pw < pe; pw += 32, qw += 32, rw += 32, tw += 32, px += 64) {
    const v = v128.load(pw), u = v128.load(qw), r = v128.load(rw), t = v128.load(tw);
    const x0 = v128.load(px), x1 = v128.load(px, 16);
    a0 = fmadd(f16Bits(v, false), x0, a0); a1 = fmadd(f16Bits(v, true), x1, a1);
    b0 = fmadd(f16Bits(u, false), x0, b0); b1 = fmadd(f16Bits(u, true), x1, b1);
    c0 = fmadd(f16Bits(r, false), x0, c0); c1 = fmadd(f16Bits(r, true), x1, c1);
    d0 = fmadd(f16Bits(t, false), x0, d0); d1 = fmadd(f16Bits(t, true), x1, d1);
    const v2 = v128.load(pw, 16), u2 = v128.load(qw, 16), r2 = v128.load(rw, 16), t2 = v128.load(tw, 16);
    const x2 = v128.load(px, 32), x3 = v128.load(px, 48);
    a2 = fmadd(f16Bits(v2, false), x2, a2); a3 = fmadd(f16Bits(v2, true), x3, a3);
    b2 = fmadd(f16Bits(u2, false), x2, b2); b3 = fmadd(f16Bits(u2, true), x3, b3);
    c2 = fmadd(f16Bits(r2, false), x2, c2); c3 = fmadd(f16Bits(r2, true), x3, c3);
    d2 = fmadd(f16Bits(t2, false), x2, d2); d3 = fmadd(f16Bits(t2, true), x3, d3);
  }
  f16RowEnd(out, x, xd, pa, K, na, acc, a0, a1, a2, a3);
  f16RowEnd(out, x, xd, pb, K, nb, acc, b0, b1, b2, b3);
  f16RowEnd(out, x, xd, pc, K, nc, acc, c0, c1, c2, c3);
  f16RowEnd(out, x, xd, pd, K, nd, acc, d0, d1, d2, d3);
}

/** Rows na and nb of gemvF16Pairs. */
function gemvF16Pair(out: usize, x: usize, xd: usize, w: usize, K: i32, na: i32, nb: i32, acc: i32): void {
  const xs = xd + (<usize>K << 2);
  const rb = <usize>K << 1, e16 = <usize>(K & ~15) << 1;
  const pa = w + <usize>na * rb, pb = w + <usize>nb * rb, pe = pa + e16;
  let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
  let b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  // A whole group of each row per step, one pointer per row. V8 keeps two of the 8 accumulators
  // on the stack here (a store and a load each per step); the form with 8 halves per step and the
  // accumulator pairs taking turns had no spill but 12 register moves per 8 halves (the swap of
  // the pairs), and ran 0.95-1.0x of this (docs/cpu-decode.md, "What bounds the two-row f16 step").
  for (let pw = pa, qw = pb, px = xs; pw < pe; pw += 32, qw += 32, px += 64) {
    const v = v128.load(pw), u = v128.load(qw);
    const x0 = v128.load(px), x1 = v128.load(px, 16);
    a0 = fmadd(f16Bits(v, false), x0, a0); a1 = fmadd(f16Bits(v, true), x1, a1);
    b0 = fmadd(f16Bits(u, false), x0, b0); b1 = fmadd(f16Bits(u, true), x1, b1);
    const v2 = v128.load(pw, 16), u2 = v128.load(qw, 16);
    const x2 = v128.load(px, 32), x3 = v128.load(px, 48);
    a2 = fmadd(f16Bits(v2, false), x2, a2); a3 = fmadd(f16Bits(v2, true), x3, a3);
    b2 = fmadd(f16Bits(u2, false), x2, b2); b3 = fmadd(f16Bits(u2, true), x3, b3);
  }
  f16RowEnd(out, x, xd, pa, K, na, acc, a0, a1, a2, a3);
  f16RowEnd(out, x, xd, pb, K, nb, acc, b0, b1, b2, b3);
}

/** The end of a row of gemvF16Runs and gemvF16Pair: the last 8 halves, the leftovers, the sum (gemvF16Runs's order). */
@inline function f16RowEnd(out: usize, x: usize, xd: usize, p: usize, K: i32, n: i32, acc: i32, a0: v128, a1: v128, a2: v128, a3: v128): void {
  const e16 = <usize>(K & ~15) << 1, e8 = <usize>(K & ~7) << 1;
  if (e16 < e8) {
    const v0 = v128.load(p + e16), xo = xd + (e16 << 1);
    a0 = fmadd(halfPairExact(v0, false), v128.load(xo), a0);
    a1 = fmadd(halfPairExact(v0, true), v128.load(xo, 16), a1);
  }
  let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  for (let k = K & ~7; k < K; k++) s += load<f32>(x + (<usize>k << 2)) * scalarHalf(load<u16>(p + (<usize>k << 1)), true);
  const op = out + (<usize>n << 2);
  store<f32>(op, acc ? load<f32>(op) + s : s);
}

export function gemvBf16(out: usize, x: usize, xd: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  gemvHalfT(out, x, xd, w, 0, K, n0, n1, acc, false, false, false);
}
/**
 * map: the weight's f16SubnormalMap, or 0. fast ≠ 0: this CPU takes denormal operands at full
 * speed (the backend measures it: kernels.ts denormalsFast), so no group needs the exact
 * conversion and the map is not read.
 */
export function gemvF16(out: usize, x: usize, xd: usize, w: usize, map: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: i32): void {
  const scaled = f16Scaled(xd, K);
  if (fast && scaled) {
    if (PAIRS) gemvF16Quads(out, x, xd, w, K, n0, n1, acc);
    else gemvF16Runs(out, x, xd, w, map, K, n0, n1, acc, true);
  } else if (map) {
    if (scaled) gemvF16Runs(out, x, xd, w, map, K, n0, n1, acc, false);
    else gemvHalfT(out, x, xd, w, map, K, n0, n1, acc, true, false, true);
  } else if (scaled) gemvHalfT(out, x, xd, w, 0, K, n0, n1, acc, true, true, false);
  else gemvHalfT(out, x, xd, w, 0, K, n0, n1, acc, true, false, false);
}

/** Lane j of v in every lane (a single shuffle). */
@inline export function lane(v: v128, j: i32): v128 {
  if (j == 0) return v128.shuffle<f32>(v, v, 0, 0, 0, 0);
  if (j == 1) return v128.shuffle<f32>(v, v, 1, 1, 1, 1);
  if (j == 2) return v128.shuffle<f32>(v, v, 2, 2, 2, 2);
  return v128.shuffle<f32>(v, v, 3, 3, 3, 3);
}

// q8 with relaxed SIMD: i16x8.relaxed_dot_i8x16_i7x16_s multiplies 16 int8 weights by 16 7-bit
// (0..127) values and adds pairs, so x (−127..127) goes in as its two halves x⁺ = max(x, 0) and
// x⁻ = max(−x, 0): w·x = w·x⁺ − w·x⁻. Both pair sums and their difference are exact in i16 for any
// int8 weight, −128 included (|w·a + w'·b| ≤ 2·128·127 = 32512), and one i32x4.dot_i16x8_s with
// ones widens the difference. Per 16 weights that is 2 + 1 + 1 operations on the raw weight bytes,
// against two widenings, two i16 dots and an add. (Moving x's sign onto w instead, (w ⊕ m) − m
// with |x| as the 7-bit operand, costs the same but turns w = −128 into −128·sgn x.) The i32 lanes
// then hold elements 4j..4j+3 of each 16, not 2j, 2j+1, 2j+8, 2j+9 as the i16 dots' do: the same
// integer block sums, split differently over the lanes before the float scaling, so results move
// by float rounding only against the SIMD128 build's grouping.

/** x⁺ = max(q, 0) at xp and x⁻ = max(−q, 0) at xn for x's int8 form q (quantizeX), K values. */
export function q8SplitSigns(q8: usize, K: i32, xp: usize, xn: usize): void {
  const z = i8x16.splat(0);
  for (let o: usize = 0; o < <usize>K; o += 16) {
    const v = v128.load(q8 + o), pos = i8x16.max_s(v, z);
    v128.store(xp + o, pos);
    v128.store(xn + o, i8x16.sub(pos, v));
  }
}

/** Where q8SplitSigns puts x⁺ and x⁻ in a prepared row (k_prep_x; relaxed build). */
@inline export function q8PosOffset(K: i32): usize { return <usize>K << 2; }
@inline export function q8NegOffset(K: i32): usize { return <usize>K * 5; }

/** q8BlockSplit on loaded vectors: x⁺ (a0, a1) and x⁻ (m0, m1). */
@inline export function q8BlockSplitV(w0: v128, w1: v128, a0: v128, a1: v128, m0: v128, m1: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const one = i16x8.splat(1);
    const p0 = i16x8.sub(i16x8.relaxed_dot_i8x16_i7x16_s(w0, a0), i16x8.relaxed_dot_i8x16_i7x16_s(w0, m0));
    const p1 = i16x8.sub(i16x8.relaxed_dot_i8x16_i7x16_s(w1, a1), i16x8.relaxed_dot_i8x16_i7x16_s(w1, m1));
    return f32x4.convert_i32x4_s(i32x4.add(i32x4.dot_i16x8_s(p0, one), i32x4.dot_i16x8_s(p1, one)));
  } else return f32x4.splat(0);
}

/** One q8 block's dot (32 weights w0, w1 against x⁺, x⁻ at xp, xn) as 4 f32 lanes summing to it (relaxed build). */
@inline export function q8BlockSplit(w0: v128, w1: v128, xp: usize, xn: usize): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const one = i16x8.splat(1);
    const p0 = i16x8.sub(i16x8.relaxed_dot_i8x16_i7x16_s(w0, v128.load(xp)), i16x8.relaxed_dot_i8x16_i7x16_s(w0, v128.load(xn)));
    const p1 = i16x8.sub(i16x8.relaxed_dot_i8x16_i7x16_s(w1, v128.load(xp, 16)), i16x8.relaxed_dot_i8x16_i7x16_s(w1, v128.load(xn, 16)));
    return f32x4.convert_i32x4_s(i32x4.add(i32x4.dot_i16x8_s(p0, one), i32x4.dot_i16x8_s(p1, one)));
  } else return f32x4.splat(0);   // unused: the SIMD128 build widens to i16 (q8Block)
}

@inline export function q8Block(w: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const d0 = i32x4.dot_i16x8_s(v128.load8x8_s(w), x0);
  const d1 = i32x4.dot_i16x8_s(v128.load8x8_s(w, 8), x1);
  const d2 = i32x4.dot_i16x8_s(v128.load8x8_s(w, 16), x2);
  const d3 = i32x4.dot_i16x8_s(v128.load8x8_s(w, 24), x3);
  return f32x4.convert_i32x4_s(i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3)));
}

// q8's f16 block scales (weight-format.ts) are widened to f32 four at a time. The exact widening
// (simd.as f16x4At) keeps a subnormal scale from becoming a denormal operand, but costs about 15%
// of the kernel's arithmetic; a positive normal half is exactly its bits moved up 13 and rebiased
// by an integer add, two operations. The caller says which applies to a whole weight (`fast`:
// every scale a positive normal half, or 0 on a block of zero levels, whose products are 0 either
// way; wasm-backend.ts prepareWeight checks once): the two give the same f32 for those halves, so
// results do not depend on the path.

/** Four q8 scales at p as f32x4 (see above). */
@inline function q8Scales4(p: usize, fast: bool): v128 {
  if (fast) return i32x4.add(i32x4.shl(v128.load16x4_u(p), 13), i32x4.splat(112 << 23));
  return f16x4At(p);
}

// The relaxed build's GEMVs fold the rebiasing into x instead (k_prep_x, q8ScaleX): a positive
// normal half's bits moved up 13 are the f32 s·2⁻¹¹² (normal: s ≥ 2⁻¹⁴), and times x's block scale
// d·2¹¹² that is the same real product s·d, rounded the same way, so every sum is bit for bit what
// the integer add gave, one operation and one constant register fewer per four blocks (as the f16
// GEMV's x·2¹¹²). A row of x with a block scale of 2¹⁶ or more (d·2¹¹² would overflow) or a
// non-finite one has no scaled copy, and its GEMVs take the exact widening, which gives the same f32.

/** Four q8 scales at p, positive normal halves (or 0), as f32x4 times 2⁻¹¹² (see above). */
@inline function q8Scales4Lo(p: usize): v128 { return i32x4.shl(v128.load16x4_u(p), 13); }

/** One such scale at p, times 2⁻¹¹², in every lane. */
@inline function q8Scale1Lo(p: usize): v128 { return i32x4.splat(<i32>load<u16>(p) << 13); }

/** Where k_prep_x puts x's block scales ·2¹¹² in a q8 row (relaxed build), and after them the flag saying it did. */
@inline export function q8ScaledOffset(K: i32): usize { return <usize>K * 6; }

/** Whether the prepared q8 row at prep has x's scales ·2¹¹² (q8ScaleX). */
@inline function q8XScaled(prep: usize, K: i32): bool { return load<i32>(prep + q8ScaledOffset(K) + (<usize>K >> 3)) != 0; }

/** x's K/32 block scales at qd, times 2¹¹², at xs, and the flag after them (see above). */
export function q8ScaleX(qd: usize, K: i32, xs: usize): void {
  const n = <usize>K >> 3;
  let m = f32x4.splat(0);
  for (let o: usize = 0; o < n; o += 4) m = f32x4.max(m, v128.load32_splat(qd + o));
  // NaN compares false: such an x keeps the exact widening, which propagates it as before
  const ok = f32x4.extract_lane(m, 0) < 65536;
  if (ok) for (let o: usize = 0; o < n; o += 4) store<f32>(xs + o, load<f32>(qd + o) * <f32>5.192296858534828e33);   // 2¹¹², exact
  store<i32>(xs + n, ok ? 1 : 0);
}

/** One q8 scale at p as f32 in every lane. */
@inline function q8Scale1(p: usize, fast: bool): v128 {
  if (fast) return i32x4.splat((<i32>load<u16>(p) << 13) + (112 << 23));
  return f16SplatAt(p);
}

/**
 * q8, one row of x: four blocks per step, their scale products in one multiply (as gemvQ4), two
 * chains. q16: x as i16 (SIMD128 build), or the prepared row (relaxed build: x⁺ and x⁻ inside it).
 * ws: the blocks' f16 scales; fast ≠ 0: all of them positive normal halves (q8Scales4).
 */
export function gemvQ8(out: usize, q16: usize, qd: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: i32): void {
  if (fast) gemvQ8T(out, q16, qd, w, ws, K, n0, n1, acc, true);
  else gemvQ8T(out, q16, qd, w, ws, K, n0, n1, acc, false);
}

@inline function gemvQ8T(out: usize, q16: usize, qd: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: bool): void {
  if (ASC_FEATURE_RELAXED_SIMD) { gemvQ8Split(out, q16 + q8PosOffset(K), q16 + q8NegOffset(K), fast ? q16 + q8ScaledOffset(K) : qd, w, ws, K, n0, n1, acc, fast); return; }
  const nb = K >> 5;
  let p = w + <usize>n0 * <usize>K, sp = ws + ((<usize>n0 * <usize>nb) << 1);
  for (let n = n0; n < n1; n++) {
    let f0 = f32x4.splat(0), f1 = f0;
    let xp = q16, dp = qd;
    let b = 0;
    for (; b + 4 <= nb; b += 4) {
      const sc = f32x4.mul(q8Scales4(sp, fast), v128.load(dp));
      f0 = fmadd(q8Block(p, v128.load(xp), v128.load(xp, 16), v128.load(xp, 32), v128.load(xp, 48)), lane(sc, 0), f0);
      f1 = fmadd(q8Block(p + 32, v128.load(xp, 64), v128.load(xp, 80), v128.load(xp, 96), v128.load(xp, 112)), lane(sc, 1), f1);
      f0 = fmadd(q8Block(p + 64, v128.load(xp, 128), v128.load(xp, 144), v128.load(xp, 160), v128.load(xp, 176)), lane(sc, 2), f0);
      f1 = fmadd(q8Block(p + 96, v128.load(xp, 192), v128.load(xp, 208), v128.load(xp, 224), v128.load(xp, 240)), lane(sc, 3), f1);
      p += 128; sp += 8; xp += 256; dp += 16;
    }
    for (let j = 0; b < nb; b++, j++) {
      const c = f32x4.mul(q8Scale1(sp, fast), v128.load32_splat(dp));
      const d = q8Block(p, v128.load(xp), v128.load(xp, 16), v128.load(xp, 32), v128.load(xp, 48));
      if (j & 1) f1 = fmadd(d, c, f1); else f0 = fmadd(d, c, f0);
      p += 32; sp += 2; xp += 64; dp += 4;
    }
    const op = out + (<usize>n << 2);
    const s = hsum(f32x4.add(f0, f1));
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

/**
 * gemvQ8 with relaxed SIMD (q8BlockSplitV), in the same order: even blocks into f0, odd ones into f1.
 * fast: the scales are widened by q8Scales4Lo and qd holds x's scales ·2¹¹² (gemvRows checks both);
 * otherwise the exact widening against x's own scales. One pointer per stream, the blocks at
 * constant offsets from it: V8 folds those into the loads (an address computed as xp + o + 32 took
 * a `lea` per load; docs/cpu-decode.md, "The q8 GEMV").
 */
@inline function gemvQ8Split(out: usize, xp0: usize, xn0: usize, qd: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: bool): void {
  const nb = K >> 5;
  let p = w + <usize>n0 * <usize>K, sp = ws + ((<usize>n0 * <usize>nb) << 1);
  for (let n = n0; n < n1; n++) {
    let f0 = f32x4.splat(0), f1 = f0;
    let xp = xp0, xn = xn0, dp = qd;
    let b = 0;
    for (; b + 4 <= nb; b += 4) {
      const sc = f32x4.mul(fast ? q8Scales4Lo(sp) : q8Scales4(sp, false), v128.load(dp));
      f0 = fmadd(q8BlockSplitV(v128.load(p, 0), v128.load(p, 16), v128.load(xp, 0), v128.load(xp, 16), v128.load(xn, 0), v128.load(xn, 16)), lane(sc, 0), f0);
      f1 = fmadd(q8BlockSplitV(v128.load(p, 32), v128.load(p, 48), v128.load(xp, 32), v128.load(xp, 48), v128.load(xn, 32), v128.load(xn, 48)), lane(sc, 1), f1);
      f0 = fmadd(q8BlockSplitV(v128.load(p, 64), v128.load(p, 80), v128.load(xp, 64), v128.load(xp, 80), v128.load(xn, 64), v128.load(xn, 80)), lane(sc, 2), f0);
      f1 = fmadd(q8BlockSplitV(v128.load(p, 96), v128.load(p, 112), v128.load(xp, 96), v128.load(xp, 112), v128.load(xn, 96), v128.load(xn, 112)), lane(sc, 3), f1);
      p += 128; sp += 8; xp += 128; xn += 128; dp += 16;
    }
    for (let j = 0; b < nb; b++, j++) {
      const c = f32x4.mul(fast ? q8Scale1Lo(sp) : q8Scale1(sp, false), v128.load32_splat(dp));
      const d = q8BlockSplitV(v128.load(p, 0), v128.load(p, 16), v128.load(xp, 0), v128.load(xp, 16), v128.load(xn, 0), v128.load(xn, 16));
      if (j & 1) f1 = fmadd(d, c, f1); else f0 = fmadd(d, c, f0);
      p += 32; sp += 2; xp += 32; xn += 32; dp += 4;
    }
    const op = out + (<usize>n << 2);
    const s = hsum(f32x4.add(f0, f1));
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

// q4 (Q4_1-style blocks with coded scales, simd.as q4MetaBytes): a row's Σ w·x is
//   D·Σ_b dx_b·(sc_b·Σ_j q_j·xq_j)  +  M·Σ_b mc_b·sx_b
// (sc, mc: the block's scale and min codes; dx, sx: x's block scale and quantized block sum from
// quantizeX), so the row's D and M multiply once at its end. Two weight rows per pass, two blocks
// of each per step: the four integer dots are gathered into one vector and multiplied by their
// scale codes in the integers (q4Scaled4, exact), which meets x's block scales in one multiply-add,
// with no broadcast per block (gemvQ4PairR; docs/cpu-decode.md, "Two weight rows per pass").

/**
 * One block's products of its nibbles (lo: elements 0..15, hi: 16..31) with x, partly summed:
 * relaxed SIMD, i16x8 lanes of 4 products each (|lane| ≤ 4·15·127 = 7620); SIMD128, i32x4 lanes.
 * The nibbles are a valid 7-bit operand of i16x8.relaxed_dot_i8x16_i7x16_s (deterministic); the
 * i32x4 ..._add_s form is avoided: V8 11.3 (Node 20) returns twice the true sum.
 */
@inline export function q4Part(lo: v128, hi: v128, x16: usize, x8: usize): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x8), lo), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x8, 16), hi));
  } else {
    const d0 = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), v128.load(x16));
    const d1 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), v128.load(x16, 16));
    const d2 = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), v128.load(x16, 32));
    const d3 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), v128.load(x16, 48));
    return i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3));
  }
}

/**
 * [Σ a, Σ b, Σ c, Σ d] as f32 from four blocks' q4Part vectors: their 32-bit lanes interleaved and
 * summed twice (blocks a b a b, then a b c d). Relaxed SIMD sums in i16: a 32-bit lane holds two
 * i16 sums of 4 products, then of 8, then of 16 (|sum| ≤ 16·15·127 = 30480 < 2¹⁵), and the
 * last widening adds each pair. Exact either way.
 */
@inline export function q4Sums4(a: v128, b: v128, c: v128, d: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const ab = i16x8.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
    const cd = i16x8.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7));
    return f32x4.convert_i32x4_s(i32x4.extadd_pairwise_i16x8_s(i16x8.add(v128.shuffle<i64>(ab, cd, 0, 2), v128.shuffle<i64>(ab, cd, 1, 3))));
  } else return f32x4.convert_i32x4_s(isum4(a, b, c, d));
}

/** [Σ a, Σ b, Σ c, Σ d] of four i32x4 (lanes interleaved and summed twice, as q4Sums4). */
@inline export function isum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i64>(ab, cd, 0, 2), v128.shuffle<i64>(ab, cd, 1, 3));
}

/**
 * sc_b·Σ_b for four blocks: their q4Part vectors gathered as q4Sums4 does, each block's integer dot
 * times its u8 scale code (codes: q4CodesV), as i32x4 (exact: |sc·Σ| ≤ 255·32·15·127 = 15,544,800 < 2²⁴, so
 * the f32 conversion is exact too). Relaxed SIMD: the widening pair add of q4Sums4 becomes
 * i32x4.dot_i16x8_s against the codes, each repeated in its two i16 lanes (pmaddwd: the same
 * instruction, now doing the scale's multiply, where the codes needed two extends, a conversion and
 * an f32 multiply by x's scales). Each i16 lane holds a sum of 16 products (|·| ≤ 30480 < 2¹⁵).
 */
@inline export function q4Scaled4(a: v128, b: v128, c: v128, d: v128, codes: v128): v128 {
  return q4ScaleG(q4Gather4(a, b, c, d), codes);
}

/**
 * Four blocks' q4Part vectors gathered (their 32-bit lanes interleaved and summed twice, as
 * q4Sums4): relaxed SIMD, i16 lanes 2j, 2j + 1 whose sum is block j's dot (each ≤ 30480 in
 * magnitude); SIMD128, i32 lane j the dot.
 */
@inline export function q4Gather4(a: v128, b: v128, c: v128, d: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const ab = i16x8.add(v128.shuffle<i32>(a, b, 0, 4, 1, 5), v128.shuffle<i32>(a, b, 2, 6, 3, 7));
    const cd = i16x8.add(v128.shuffle<i32>(c, d, 0, 4, 1, 5), v128.shuffle<i32>(c, d, 2, 6, 3, 7));
    return i16x8.add(v128.shuffle<i64>(ab, cd, 0, 2), v128.shuffle<i64>(ab, cd, 1, 3));
  } else return isum4(a, b, c, d);
}

/** q4Gather4's vector times the codes (q4CodesV): i32 lanes sc_j·Σ_j (exact, as q4Scaled4). */
@inline export function q4ScaleG(g: v128, codes: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i32x4.dot_i16x8_s(g, codes);
  return i32x4.mul(g, codes);
}

/** sc·(one block's q4Part) as i32 lanes whose sum is sc·Σ (an odd last block; exact as q4Scaled4). */
@inline function q4Scaled1(s: v128, sc: i32): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i32x4.dot_i16x8_s(s, i16x8.splat(<i16>sc));
  return i32x4.mul(s, i32x4.splat(sc));
}

/** q4Gather4's vector as f32 lanes: the four dots (exact). */
@inline export function q4DotsG(g: v128): v128 {
  return f32x4.convert_i32x4_s(ASC_FEATURE_RELAXED_SIMD ? i32x4.extadd_pairwise_i16x8_s(g) : g);
}

/** q4Scaled4's codes operand from four u8 scale codes (bytes 0-3 of v): relaxed, each in two i16 lanes; SIMD128, i32 lanes. */
@inline export function q4CodesV(v: v128): v128 {
  const c8 = i16x8.extend_low_i8x16_u(v);
  if (ASC_FEATURE_RELAXED_SIMD) return v128.shuffle<i16>(c8, c8, 0, 0, 1, 1, 2, 2, 3, 3);
  return i32x4.extend_low_i16x8_u(c8);
}

/**
 * Two blocks of x (at x16 / x8) against two blocks of each of two weight rows (nibbles lo/hi: a, b
 * of one row, c, d of the other), x loaded once for both rows: q4Gather4 of the four blocks.
 */
@inline export function q4Pair4(la: v128, ha: v128, lb: v128, hb: v128, lc: v128, hc: v128, ld: v128, hd: v128, x16: usize, x8: usize): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const x0 = v128.load(x8), x1 = v128.load(x8, 16), x2 = v128.load(x8, 32), x3 = v128.load(x8, 48);
    return q4Gather4(
      i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x0, la), i16x8.relaxed_dot_i8x16_i7x16_s(x1, ha)),
      i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x2, lb), i16x8.relaxed_dot_i8x16_i7x16_s(x3, hb)),
      i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x0, lc), i16x8.relaxed_dot_i8x16_i7x16_s(x1, hc)),
      i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(x2, ld), i16x8.relaxed_dot_i8x16_i7x16_s(x3, hd)));
  } else {
    return q4Gather4(q4Part(la, ha, x16, x8), q4Part(lb, hb, x16 + 64, x8 + 32), q4Part(lc, hc, x16, x8), q4Part(ld, hd, x16 + 64, x8 + 32));
  }
}

/**
 * Σ over the first nb4 (a multiple of 4) blocks of mc·sx, as f32x4 lanes: g = fmadd(codes4s(mp),
 * load(xs), g) four blocks at a time from g = 0 (every q4 form's order); sixteen codes per load
 * where they allow.
 */
@inline function q4MinSum(mp: usize, xs: usize, nb4: i32): v128 {
  let g = f32x4.splat(0);
  let b = 0;
  for (; b + 16 <= nb4; b += 16, mp += 16, xs += 64) {
    const m = v128.load(mp), lo = i16x8.extend_low_i8x16_s(m), hi = i16x8.extend_high_i8x16_s(m);
    g = fmadd(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), v128.load(xs), g);
    g = fmadd(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), v128.load(xs, 16), g);
    g = fmadd(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), v128.load(xs, 32), g);
    g = fmadd(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), v128.load(xs, 48), g);
  }
  for (; b < nb4; b += 4, mp += 4, xs += 16) g = fmadd(codes4s(mp), v128.load(xs), g);
  return g;
}

/**
 * q4 weight rows na and nc together (nc == na for the odd row out of a range: the same sums twice,
 * stored once) against R = 1..4 rows of x (k_prep_x layout, ldp bytes apart; out rows ldo bytes
 * apart). Two blocks of each weight row per step: their four integer dots in one vector (q4Pair4:
 * x's two blocks loaded once for both rows), scaled by their codes in the integers and by x's two
 * block scales (one 8-byte load) in one multiply-add, lanes 0-1 row na, 2-3 row nc. A step loads
 * 4 + 4 vectors (one row of x), where four blocks of one row loaded 4 + 8 and V8 spilled two of
 * them and the accumulator; and each thread reads two weight streams.
 *
 * Per weight row and row of x, in this order whatever the other row and R (so a token's result is
 * that of a one-token call, and independent of the thread split): lane j (0, 1) accumulates
 * (sc_b·Σ_b)·dx_b over the blocks b ≡ j (mod 2) before the last odd one, by multiply-adds from 0;
 * F = (lane 0 + lane 1) + the odd last block's (sc·lanes)·dx summed (hsum); G = hsum(q4MinSum)
 * + the last nb mod 4 blocks' mc·sx in turn; out = D·F + M·G.
 */
@inline function gemvQ4PairR(out: usize, ldo: usize, prep: usize, ldp: usize, w: usize, ws: usize, K: i32,
  na: i32, nc: i32, acc: i32, R: i32): void {
  const nb = K >> 5, mb = q4MetaBytes(K), rb = <usize>K >> 1;
  const o8 = <usize>K << 1, od = <usize>K * 3, os = od + (<usize>K >> 3);
  const ma = ws + <usize>na * mb, mc = ws + <usize>nc * mb;
  let pa = w + <usize>na * rb, pc = w + <usize>nc * rb, sa = ma + 8, sc = mc + 8;
  const z = f32x4.splat(0);
  let f0 = z, f1 = z, f2 = z, f3 = z;
  let x16 = prep, x8 = prep + o8, xd = prep + od;
  let b = 0;
  for (; b + 2 <= nb; b += 2) {
    const va = v128.load(pa), vb = v128.load(pa, 16), vc = v128.load(pc), vd = v128.load(pc, 16);
    const la = nibLo(va), ha = nibHi(va), lb = nibLo(vb), hb = nibHi(vb);
    const lc = nibLo(vc), hc = nibHi(vc), ld = nibLo(vd), hd = nibHi(vd);
    const c4 = q4CodesV(v128.load16_lane(sc, v128.load16_splat(sa), 1));
    f0 = fmadd(f32x4.convert_i32x4_s(q4ScaleG(q4Pair4(la, ha, lb, hb, lc, hc, ld, hd, x16, x8), c4)), v128.load64_splat(xd), f0);
    if (R > 1) f1 = fmadd(f32x4.convert_i32x4_s(q4ScaleG(q4Pair4(la, ha, lb, hb, lc, hc, ld, hd, x16 + ldp, x8 + ldp), c4)), v128.load64_splat(xd + ldp), f1);
    if (R > 2) f2 = fmadd(f32x4.convert_i32x4_s(q4ScaleG(q4Pair4(la, ha, lb, hb, lc, hc, ld, hd, x16 + 2 * ldp, x8 + 2 * ldp), c4)), v128.load64_splat(xd + 2 * ldp), f2);
    if (R > 3) f3 = fmadd(f32x4.convert_i32x4_s(q4ScaleG(q4Pair4(la, ha, lb, hb, lc, hc, ld, hd, x16 + 3 * ldp, x8 + 3 * ldp), c4)), v128.load64_splat(xd + 3 * ldp), f3);
    pa += 32; pc += 32; sa += 2; sc += 2; x16 += 128; x8 += 64; xd += 8;
  }
  for (let r = 0; r < R; r++) {
    const xr = prep + <usize>r * ldp, f = r == 0 ? f0 : r == 1 ? f1 : r == 2 ? f2 : f3;
    q4RowEnd(out + <usize>r * ldo + (<usize>na << 2), acc, ma, f32x4.extract_lane(f, 0) + f32x4.extract_lane(f, 1), pa, b, K, xr);
    if (nc != na) q4RowEnd(out + <usize>r * ldo + (<usize>nc << 2), acc, mc, f32x4.extract_lane(f, 2) + f32x4.extract_lane(f, 3), pc, b, K, xr);
  }
}

/**
 * The end of one q4 output (row with scale data at meta, one row of x at xr in k_prep_x layout),
 * once its blocks before b (all but an odd last one) are summed in F: the odd last block (weights
 * at p) if b < nb, the min term, D and M, and the store at o (added to what is there when acc).
 */
@inline function q4RowEnd(o: usize, acc: i32, meta: usize, F: f32, p: usize, b: i32, K: i32, xr: usize): void {
  const nb = K >> 5, nb4 = nb & ~3;
  const xs = xr + <usize>K * 3 + (<usize>K >> 3), mp = meta + 8 + <usize>nb;
  if (b < nb) {
    const v = v128.load(p), dx = v128.load32_splat(xr + <usize>K * 3 + (<usize>b << 2));
    F += hsum(fmadd(f32x4.convert_i32x4_s(q4Scaled1(q4Part(nibLo(v), nibHi(v), xr + (<usize>b << 6), xr + (<usize>K << 1) + (<usize>b << 5)), load<u8>(meta + 8 + <usize>b))), dx, f32x4.splat(0)));
  }
  let G = hsum(q4MinSum(mp, xs, nb4));
  for (let j = nb4; j < nb; j++) G += <f32>load<i8>(mp + <usize>j) * load<f32>(xs + (<usize>j << 2));
  const s = load<f32>(meta) * F + load<f32>(meta, 4) * G;
  store<f32>(o, acc ? load<f32>(o) + s : s);
}

/** Rows [n0, n1) of out, in pairs (n0 + i, n0 + h + i), the odd one out alone: gemvQ4PairR. */
@inline function gemvQ4Pairs(out: usize, ldo: usize, prep: usize, ldp: usize, w: usize, ws: usize, K: i32,
  n0: i32, n1: i32, acc: i32, R: i32): void {
  const h = (n1 - n0 + 1) >> 1;
  for (let i = 0; i < h; i++) {
    const na = n0 + i, nc = n0 + h + i;
    gemvQ4PairR(out, ldo, prep, ldp, w, ws, K, na, nc < n1 ? nc : na, acc, R);
  }
}

/** q4, one row of x (k_prep_x layout at prep): gemvQ4Pairs. */
export function gemvQ4(out: usize, prep: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  gemvQ4Pairs(out, 0, prep, 0, w, ws, K, n0, n1, acc, 1);
}

// ---------------------------------------------------------------------------------------------
// Several rows of x, R = 2..4. R is a compile-time constant after inlining; rows of x
// (and of its prepared forms) are `ldx` (`ldp`) bytes apart, rows of out `ldo` bytes apart.

@inline function gemvF32R(out: usize, ldo: usize, x: usize, ldx: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32, R: i32): void {
  // Per row, four accumulators over 16-float chunks and a multiply-then-add tail: gemvF32's order.
  const rb = <usize>K << 2;
  const e16 = <usize>(K & ~15) << 2, e4 = <usize>(K & ~3) << 2;
  const x1 = x + ldx, x2 = x1 + ldx, x3 = x2 + ldx;
  let p = w + <usize>n0 * rb;
  for (let n = n0; n < n1; n++, p += rb) {
    const z = f32x4.splat(0);
    let a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
    let c0 = z, c1 = z, c2 = z, c3 = z, d0 = z, d1 = z, d2 = z, d3 = z;
    let o: usize = 0;
    for (; o < e16; o += 64) {
      const u0 = v128.load(p + o), u1 = v128.load(p + o, 16), u2 = v128.load(p + o, 32), u3 = v128.load(p + o, 48);
      a0 = fmadd(u0, v128.load(x + o), a0); a1 = fmadd(u1, v128.load(x + o, 16), a1);
      a2 = fmadd(u2, v128.load(x + o, 32), a2); a3 = fmadd(u3, v128.load(x + o, 48), a3);
      if (R > 1) {
        b0 = fmadd(u0, v128.load(x1 + o), b0); b1 = fmadd(u1, v128.load(x1 + o, 16), b1);
        b2 = fmadd(u2, v128.load(x1 + o, 32), b2); b3 = fmadd(u3, v128.load(x1 + o, 48), b3);
      }
      if (R > 2) {
        c0 = fmadd(u0, v128.load(x2 + o), c0); c1 = fmadd(u1, v128.load(x2 + o, 16), c1);
        c2 = fmadd(u2, v128.load(x2 + o, 32), c2); c3 = fmadd(u3, v128.load(x2 + o, 48), c3);
      }
      if (R > 3) {
        d0 = fmadd(u0, v128.load(x3 + o), d0); d1 = fmadd(u1, v128.load(x3 + o, 16), d1);
        d2 = fmadd(u2, v128.load(x3 + o, 32), d2); d3 = fmadd(u3, v128.load(x3 + o, 48), d3);
      }
    }
    for (; o < e4; o += 16) {
      const u = v128.load(p + o);
      a0 = fmadd(u, v128.load(x + o), a0);
      if (R > 1) b0 = fmadd(u, v128.load(x1 + o), b0);
      if (R > 2) c0 = fmadd(u, v128.load(x2 + o), c0);
      if (R > 3) d0 = fmadd(u, v128.load(x3 + o), d0);
    }
    let s = hsum4(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(b0, b1), f32x4.add(b2, b3)),
      f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3)), f32x4.add(f32x4.add(d0, d1), f32x4.add(d2, d3)));
    for (; o < rb; o += 4) {
      const wk = f32x4.splat(load<f32>(p + o));
      s = f32x4.add(s, f32x4.mul(wk, f32x4(load<f32>(x + o), R > 1 ? load<f32>(x1 + o) : 0, R > 2 ? load<f32>(x2 + o) : 0, R > 3 ? load<f32>(x3 + o) : 0)));
    }
    storeR(out + (<usize>n << 2), ldo, s, acc, R);
  }
}

/** out[r·ldo] (+)= lane r of s for r < R. */
@inline export function storeR(o: usize, ldo: usize, s: v128, acc: i32, R: i32): void {
  store<f32>(o, acc ? load<f32>(o) + f32x4.extract_lane(s, 0) : f32x4.extract_lane(s, 0));
  if (R > 1) store<f32>(o + ldo, acc ? load<f32>(o + ldo) + f32x4.extract_lane(s, 1) : f32x4.extract_lane(s, 1));
  if (R > 2) store<f32>(o + 2 * ldo, acc ? load<f32>(o + 2 * ldo) + f32x4.extract_lane(s, 2) : f32x4.extract_lane(s, 2));
  if (R > 3) store<f32>(o + 3 * ldo, acc ? load<f32>(o + 3 * ldo) + f32x4.extract_lane(s, 3) : f32x4.extract_lane(s, 3));
}

@inline function gemvHalfR(out: usize, ldo: usize, x: usize, ldx: usize, xd: usize, ldp: usize, w: usize, map: usize, K: i32,
  n0: i32, n1: i32, acc: i32, f16: bool, R: i32, scaled: bool, mapped: bool): void {
  // gemvHalfT's order per row (four accumulators, 16 weights per step); weights widened once for all rows.
  const rb = <usize>K << 1, e16 = <usize>(K & ~15) << 1, e8 = <usize>(K & ~7) << 1;
  const x1 = xd + ldp, x2 = x1 + ldp, x3 = x2 + ldp, wpr = subMapWords(K);
  let p = w + <usize>n0 * rb, mp = map + ((<usize>n0 * wpr) << 2);
  for (let n = n0; n < n1; n++, p += rb, mp += wpr << 2) {
    const z = f32x4.splat(0);
    let a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
    let c0 = z, c1 = z, c2 = z, c3 = z, d0 = z, d1 = z, d2 = z, d3 = z;
    let o: usize = 0, xo0: usize = 0;
    let nx = f16 && mapped ? nextExact(mp, 0, e16) : e16;
    for (; o < e16; o += 32, xo0 += 64) {
      const v = v128.load(p + o), t = v128.load(p + o, 16);
      let u0: v128, u1: v128, u2: v128, u3: v128;
      let xo = xo0;
      if (f16 && (mapped ? o == nx : f16AnySubnormal(v, t))) {
        u0 = halfPairExact(v, false); u1 = halfPairExact(v, true); u2 = halfPairExact(t, false); u3 = halfPairExact(t, true);
        if (mapped) nx = nextExact(mp, o + 32, e16);
      } else if (f16 && scaled) {
        // every row's x·2¹¹² (f16Bits), K floats after its deinterleaved x
        u0 = f16Bits(v, false); u1 = f16Bits(v, true); u2 = f16Bits(t, false); u3 = f16Bits(t, true);
        xo += <usize>K << 2;
      } else {
        u0 = halfPair(v, f16, false); u1 = halfPair(v, f16, true); u2 = halfPair(t, f16, false); u3 = halfPair(t, f16, true);
      }
      a0 = fmadd(u0, v128.load(xd + xo), a0); a1 = fmadd(u1, v128.load(xd + xo, 16), a1);
      a2 = fmadd(u2, v128.load(xd + xo, 32), a2); a3 = fmadd(u3, v128.load(xd + xo, 48), a3);
      if (R > 1) {
        b0 = fmadd(u0, v128.load(x1 + xo), b0); b1 = fmadd(u1, v128.load(x1 + xo, 16), b1);
        b2 = fmadd(u2, v128.load(x1 + xo, 32), b2); b3 = fmadd(u3, v128.load(x1 + xo, 48), b3);
      }
      if (R > 2) {
        c0 = fmadd(u0, v128.load(x2 + xo), c0); c1 = fmadd(u1, v128.load(x2 + xo, 16), c1);
        c2 = fmadd(u2, v128.load(x2 + xo, 32), c2); c3 = fmadd(u3, v128.load(x2 + xo, 48), c3);
      }
      if (R > 3) {
        d0 = fmadd(u0, v128.load(x3 + xo), d0); d1 = fmadd(u1, v128.load(x3 + xo, 16), d1);
        d2 = fmadd(u2, v128.load(x3 + xo, 32), d2); d3 = fmadd(u3, v128.load(x3 + xo, 48), d3);
      }
    }
    if (o < e8) {
      const v = v128.load(p + o), xo = xo0;
      const u0 = f16 ? halfPairExact(v, false) : halfPair(v, f16, false), u1 = f16 ? halfPairExact(v, true) : halfPair(v, f16, true);
      a0 = fmadd(u0, v128.load(xd + xo), a0); a1 = fmadd(u1, v128.load(xd + xo, 16), a1);
      if (R > 1) { b0 = fmadd(u0, v128.load(x1 + xo), b0); b1 = fmadd(u1, v128.load(x1 + xo, 16), b1); }
      if (R > 2) { c0 = fmadd(u0, v128.load(x2 + xo), c0); c1 = fmadd(u1, v128.load(x2 + xo, 16), c1); }
      if (R > 3) { d0 = fmadd(u0, v128.load(x3 + xo), d0); d1 = fmadd(u1, v128.load(x3 + xo, 16), d1); }
    }
    let s = hsum4(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(b0, b1), f32x4.add(b2, b3)),
      f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3)), f32x4.add(f32x4.add(d0, d1), f32x4.add(d2, d3)));
    for (let k = K & ~7; k < K; k++) {
      const xk = <usize>k << 2;
      const wk = f32x4.splat(scalarHalf(load<u16>(p + (<usize>k << 1)), f16));
      s = f32x4.add(s, f32x4.mul(wk, f32x4(load<f32>(x + xk), R > 1 ? load<f32>(x + ldx + xk) : 0, R > 2 ? load<f32>(x + 2 * ldx + xk) : 0, R > 3 ? load<f32>(x + 3 * ldx + xk) : 0)));
    }
    storeR(out + (<usize>n << 2), ldo, s, acc, R);
  }
}

/**
 * gemvF16Runs for R rows of x (2 to 4): gemvHalfR's order per row, the run walk of gemvF16Runs
 * (fast: one run per row, the map not read, as gemvF16Runs).
 */
@inline function gemvF16RunsR(out: usize, ldo: usize, x: usize, ldx: usize, xd: usize, ldp: usize, w: usize, map: usize, K: i32,
  n0: i32, n1: i32, acc: i32, R: i32, fast: bool): void {
  const rb = <usize>K << 1, e16 = <usize>(K & ~15) << 1, e8 = <usize>(K & ~7) << 1;
  const xs = xd + (<usize>K << 2), x1 = xs + ldp, x2 = x1 + ldp, x3 = x2 + ldp, wpr = subMapWords(K);
  let p = w + <usize>n0 * rb, mp = map + ((<usize>n0 * wpr) << 2);
  for (let n = n0; n < n1; n++, p += rb, mp += wpr << 2) {
    const z = f32x4.splat(0);
    let a0 = z, a1 = z, a2 = z, a3 = z, b0 = z, b1 = z, b2 = z, b3 = z;
    let c0 = z, c1 = z, c2 = z, c3 = z, d0 = z, d1 = z, d2 = z, d3 = z;
    let o: usize = 0;
    while (true) {
      const nx = fast ? e16 : nextExact(mp, o, e16);
      let pw = p + o, xo = o << 1;
      const pe = p + nx;
      for (; pw < pe; pw += 32, xo += 64) {
        const v = v128.load(pw), t = v128.load(pw, 16);
        const u0 = f16Bits(v, false), u1 = f16Bits(v, true), u2 = f16Bits(t, false), u3 = f16Bits(t, true);
        a0 = fmadd(u0, v128.load(xs + xo), a0); a1 = fmadd(u1, v128.load(xs + xo, 16), a1);
        a2 = fmadd(u2, v128.load(xs + xo, 32), a2); a3 = fmadd(u3, v128.load(xs + xo, 48), a3);
        if (R > 1) {
          b0 = fmadd(u0, v128.load(x1 + xo), b0); b1 = fmadd(u1, v128.load(x1 + xo, 16), b1);
          b2 = fmadd(u2, v128.load(x1 + xo, 32), b2); b3 = fmadd(u3, v128.load(x1 + xo, 48), b3);
        }
        if (R > 2) {
          c0 = fmadd(u0, v128.load(x2 + xo), c0); c1 = fmadd(u1, v128.load(x2 + xo, 16), c1);
          c2 = fmadd(u2, v128.load(x2 + xo, 32), c2); c3 = fmadd(u3, v128.load(x2 + xo, 48), c3);
        }
        if (R > 3) {
          d0 = fmadd(u0, v128.load(x3 + xo), d0); d1 = fmadd(u1, v128.load(x3 + xo, 16), d1);
          d2 = fmadd(u2, v128.load(x3 + xo, 32), d2); d3 = fmadd(u3, v128.load(x3 + xo, 48), d3);
        }
      }
      if (nx >= e16) break;
      const v = v128.load(p + nx), t = v128.load(p + nx, 16), xo2 = nx << 1;
      const u0 = halfPairExact(v, false), u1 = halfPairExact(v, true), u2 = halfPairExact(t, false), u3 = halfPairExact(t, true);
      const y0 = xd + xo2, y1 = y0 + ldp, y2 = y1 + ldp, y3 = y2 + ldp;
      a0 = fmadd(u0, v128.load(y0), a0); a1 = fmadd(u1, v128.load(y0, 16), a1);
      a2 = fmadd(u2, v128.load(y0, 32), a2); a3 = fmadd(u3, v128.load(y0, 48), a3);
      if (R > 1) {
        b0 = fmadd(u0, v128.load(y1), b0); b1 = fmadd(u1, v128.load(y1, 16), b1);
        b2 = fmadd(u2, v128.load(y1, 32), b2); b3 = fmadd(u3, v128.load(y1, 48), b3);
      }
      if (R > 2) {
        c0 = fmadd(u0, v128.load(y2), c0); c1 = fmadd(u1, v128.load(y2, 16), c1);
        c2 = fmadd(u2, v128.load(y2, 32), c2); c3 = fmadd(u3, v128.load(y2, 48), c3);
      }
      if (R > 3) {
        d0 = fmadd(u0, v128.load(y3), d0); d1 = fmadd(u1, v128.load(y3, 16), d1);
        d2 = fmadd(u2, v128.load(y3, 32), d2); d3 = fmadd(u3, v128.load(y3, 48), d3);
      }
      o = nx + 32;
    }
    if (e16 < e8) {
      const v = v128.load(p + e16), y0 = xd + (e16 << 1), y1 = y0 + ldp, y2 = y1 + ldp, y3 = y2 + ldp;
      const u0 = halfPairExact(v, false), u1 = halfPairExact(v, true);
      a0 = fmadd(u0, v128.load(y0), a0); a1 = fmadd(u1, v128.load(y0, 16), a1);
      if (R > 1) { b0 = fmadd(u0, v128.load(y1), b0); b1 = fmadd(u1, v128.load(y1, 16), b1); }
      if (R > 2) { c0 = fmadd(u0, v128.load(y2), c0); c1 = fmadd(u1, v128.load(y2, 16), c1); }
      if (R > 3) { d0 = fmadd(u0, v128.load(y3), d0); d1 = fmadd(u1, v128.load(y3, 16), d1); }
    }
    let s = hsum4(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)), f32x4.add(f32x4.add(b0, b1), f32x4.add(b2, b3)),
      f32x4.add(f32x4.add(c0, c1), f32x4.add(c2, c3)), f32x4.add(f32x4.add(d0, d1), f32x4.add(d2, d3)));
    for (let k = K & ~7; k < K; k++) {
      const xk = <usize>k << 2;
      const wk = f32x4.splat(scalarHalf(load<u16>(p + (<usize>k << 1)), true));
      s = f32x4.add(s, f32x4.mul(wk, f32x4(load<f32>(x + xk), R > 1 ? load<f32>(x + ldx + xk) : 0, R > 2 ? load<f32>(x + 2 * ldx + xk) : 0, R > 3 ? load<f32>(x + 3 * ldx + xk) : 0)));
    }
    storeR(out + (<usize>n << 2), ldo, s, acc, R);
  }
}

@inline function q8BlockW(w0: v128, w1: v128, w2: v128, w3: v128, xp: usize): v128 {
  const d0 = i32x4.dot_i16x8_s(w0, v128.load(xp)), d1 = i32x4.dot_i16x8_s(w1, v128.load(xp, 16));
  const d2 = i32x4.dot_i16x8_s(w2, v128.load(xp, 32)), d3 = i32x4.dot_i16x8_s(w3, v128.load(xp, 48));
  return f32x4.convert_i32x4_s(i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3)));
}

/**
 * q8 (Q8_0 weights): per block, an exact int32 dot of the int8 weights with the int8 activations
 * (sign-extending loads + i32x4.dot_i16x8_s), then one float multiply-add by scale_w·scale_x.
 * Prepared x row r at prep + r·ldp: [q16 (2K) | q8 (K) | d (K/8) | s (K/8)]. */
@inline function gemvQ8R(out: usize, ldo: usize, prep: usize, ldp: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32, R: i32, fast: bool): void {
  if (ASC_FEATURE_RELAXED_SIMD) { gemvQ8SplitR(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, R, fast); return; }
  const nb = K >> 5, qd = <usize>K * 3;
  let p = w + <usize>n0 * <usize>K, sp = ws + ((<usize>n0 * <usize>nb) << 1);
  for (let n = n0; n < n1; n++) {
    // gemvQ8's order per row: two chains (even and odd blocks); the scale products are the same
    // float products as its vector multiply (x's scales broadcast from memory: fewer live registers)
    const z = f32x4.splat(0);
    let f0 = z, f1 = z, f2 = z, f3 = z, h0 = z, h1 = z, h2 = z, h3 = z;
    let xp = prep, dp = prep + qd;
    let b = 0;
    for (; b + 4 <= nb; b += 4) {
      const s4 = q8Scales4(sp, fast);
      { const w0 = v128.load8x8_s(p, 0), w1 = v128.load8x8_s(p, 8), w2 = v128.load8x8_s(p, 16), w3 = v128.load8x8_s(p, 24);
        const s = lane(s4, 0), xq = xp + 0;
        f0 = fmadd(q8BlockW(w0, w1, w2, w3, xq), f32x4.mul(s, v128.load32_splat(dp, 0)), f0);
        if (R > 1) f1 = fmadd(q8BlockW(w0, w1, w2, w3, xq + ldp), f32x4.mul(s, v128.load32_splat(dp + ldp, 0)), f1);
        if (R > 2) f2 = fmadd(q8BlockW(w0, w1, w2, w3, xq + 2 * ldp), f32x4.mul(s, v128.load32_splat(dp + 2 * ldp, 0)), f2);
        if (R > 3) f3 = fmadd(q8BlockW(w0, w1, w2, w3, xq + 3 * ldp), f32x4.mul(s, v128.load32_splat(dp + 3 * ldp, 0)), f3); }
      { const w0 = v128.load8x8_s(p, 32), w1 = v128.load8x8_s(p, 40), w2 = v128.load8x8_s(p, 48), w3 = v128.load8x8_s(p, 56);
        const s = lane(s4, 1), xq = xp + 64;
        h0 = fmadd(q8BlockW(w0, w1, w2, w3, xq), f32x4.mul(s, v128.load32_splat(dp, 4)), h0);
        if (R > 1) h1 = fmadd(q8BlockW(w0, w1, w2, w3, xq + ldp), f32x4.mul(s, v128.load32_splat(dp + ldp, 4)), h1);
        if (R > 2) h2 = fmadd(q8BlockW(w0, w1, w2, w3, xq + 2 * ldp), f32x4.mul(s, v128.load32_splat(dp + 2 * ldp, 4)), h2);
        if (R > 3) h3 = fmadd(q8BlockW(w0, w1, w2, w3, xq + 3 * ldp), f32x4.mul(s, v128.load32_splat(dp + 3 * ldp, 4)), h3); }
      { const w0 = v128.load8x8_s(p, 64), w1 = v128.load8x8_s(p, 72), w2 = v128.load8x8_s(p, 80), w3 = v128.load8x8_s(p, 88);
        const s = lane(s4, 2), xq = xp + 128;
        f0 = fmadd(q8BlockW(w0, w1, w2, w3, xq), f32x4.mul(s, v128.load32_splat(dp, 8)), f0);
        if (R > 1) f1 = fmadd(q8BlockW(w0, w1, w2, w3, xq + ldp), f32x4.mul(s, v128.load32_splat(dp + ldp, 8)), f1);
        if (R > 2) f2 = fmadd(q8BlockW(w0, w1, w2, w3, xq + 2 * ldp), f32x4.mul(s, v128.load32_splat(dp + 2 * ldp, 8)), f2);
        if (R > 3) f3 = fmadd(q8BlockW(w0, w1, w2, w3, xq + 3 * ldp), f32x4.mul(s, v128.load32_splat(dp + 3 * ldp, 8)), f3); }
      { const w0 = v128.load8x8_s(p, 96), w1 = v128.load8x8_s(p, 104), w2 = v128.load8x8_s(p, 112), w3 = v128.load8x8_s(p, 120);
        const s = lane(s4, 3), xq = xp + 192;
        h0 = fmadd(q8BlockW(w0, w1, w2, w3, xq), f32x4.mul(s, v128.load32_splat(dp, 12)), h0);
        if (R > 1) h1 = fmadd(q8BlockW(w0, w1, w2, w3, xq + ldp), f32x4.mul(s, v128.load32_splat(dp + ldp, 12)), h1);
        if (R > 2) h2 = fmadd(q8BlockW(w0, w1, w2, w3, xq + 2 * ldp), f32x4.mul(s, v128.load32_splat(dp + 2 * ldp, 12)), h2);
        if (R > 3) h3 = fmadd(q8BlockW(w0, w1, w2, w3, xq + 3 * ldp), f32x4.mul(s, v128.load32_splat(dp + 3 * ldp, 12)), h3); }
      p += 128; sp += 8; xp += 256; dp += 16;
    }
    for (let j = 0; b < nb; b++, j++) {
      if (j & 1) {
        { const w0 = v128.load8x8_s(p, 0), w1 = v128.load8x8_s(p, 8), w2 = v128.load8x8_s(p, 16), w3 = v128.load8x8_s(p, 24);
          const s = q8Scale1(sp, fast);
          h0 = fmadd(q8BlockW(w0, w1, w2, w3, xp), f32x4.mul(s, v128.load32_splat(dp)), h0);
          if (R > 1) h1 = fmadd(q8BlockW(w0, w1, w2, w3, xp + ldp), f32x4.mul(s, v128.load32_splat(dp + ldp)), h1);
          if (R > 2) h2 = fmadd(q8BlockW(w0, w1, w2, w3, xp + 2 * ldp), f32x4.mul(s, v128.load32_splat(dp + 2 * ldp)), h2);
          if (R > 3) h3 = fmadd(q8BlockW(w0, w1, w2, w3, xp + 3 * ldp), f32x4.mul(s, v128.load32_splat(dp + 3 * ldp)), h3); }
      } else {
        { const w0 = v128.load8x8_s(p, 0), w1 = v128.load8x8_s(p, 8), w2 = v128.load8x8_s(p, 16), w3 = v128.load8x8_s(p, 24);
          const s = q8Scale1(sp, fast);
          f0 = fmadd(q8BlockW(w0, w1, w2, w3, xp), f32x4.mul(s, v128.load32_splat(dp)), f0);
          if (R > 1) f1 = fmadd(q8BlockW(w0, w1, w2, w3, xp + ldp), f32x4.mul(s, v128.load32_splat(dp + ldp)), f1);
          if (R > 2) f2 = fmadd(q8BlockW(w0, w1, w2, w3, xp + 2 * ldp), f32x4.mul(s, v128.load32_splat(dp + 2 * ldp)), f2);
          if (R > 3) f3 = fmadd(q8BlockW(w0, w1, w2, w3, xp + 3 * ldp), f32x4.mul(s, v128.load32_splat(dp + 3 * ldp)), f3); }
      }
      p += 32; sp += 2; xp += 64; dp += 4;
    }
    storeR(out + (<usize>n << 2), ldo, hsum4(f32x4.add(f0, h0), f32x4.add(f1, h1), f32x4.add(f2, h2), f32x4.add(f3, h3)), acc, R);
  }
}

/** One block of gemvQ8SplitR: its dot with row r (prepared rows ldp apart) times the scale product, into a. */
@inline function q8SplitRow(a: v128, w0: v128, w1: v128, prep: usize, ldp: usize, r: i32, o: usize, s: v128, dp: usize, K: i32): v128 {
  const x = prep + <usize>r * ldp;
  return fmadd(q8BlockSplit(w0, w1, x + q8PosOffset(K) + o, x + q8NegOffset(K) + o), f32x4.mul(s, v128.load32_splat(x + dp)), a);
}

/** gemvQ8R with relaxed SIMD: each row's sums in gemvQ8Split's order (fast: folded scales, as there), the weight vectors loaded once for all rows. */
@inline function gemvQ8SplitR(out: usize, ldo: usize, prep: usize, ldp: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32, R: i32, fast: bool): void {
  const nb = K >> 5;
  let p = w + <usize>n0 * <usize>K, sp = ws + ((<usize>n0 * <usize>nb) << 1);
  for (let n = n0; n < n1; n++) {
    const z = f32x4.splat(0);
    let f0 = z, f1 = z, f2 = z, f3 = z, h0 = z, h1 = z, h2 = z, h3 = z;
    let o: usize = 0, dp = fast ? q8ScaledOffset(K) : <usize>K * 3;   // x's block scales (·2¹¹² when fast), from the row's start
    let b = 0;
    for (; b + 4 <= nb; b += 4) {
      const s4 = fast ? q8Scales4Lo(sp) : q8Scales4(sp, false);
      { const w0 = v128.load(p), w1 = v128.load(p, 16), s = lane(s4, 0);
        f0 = q8SplitRow(f0, w0, w1, prep, ldp, 0, o, s, dp, K);
        if (R > 1) f1 = q8SplitRow(f1, w0, w1, prep, ldp, 1, o, s, dp, K);
        if (R > 2) f2 = q8SplitRow(f2, w0, w1, prep, ldp, 2, o, s, dp, K);
        if (R > 3) f3 = q8SplitRow(f3, w0, w1, prep, ldp, 3, o, s, dp, K); }
      { const w0 = v128.load(p, 32), w1 = v128.load(p, 48), s = lane(s4, 1);
        h0 = q8SplitRow(h0, w0, w1, prep, ldp, 0, o + 32, s, dp + 4, K);
        if (R > 1) h1 = q8SplitRow(h1, w0, w1, prep, ldp, 1, o + 32, s, dp + 4, K);
        if (R > 2) h2 = q8SplitRow(h2, w0, w1, prep, ldp, 2, o + 32, s, dp + 4, K);
        if (R > 3) h3 = q8SplitRow(h3, w0, w1, prep, ldp, 3, o + 32, s, dp + 4, K); }
      { const w0 = v128.load(p, 64), w1 = v128.load(p, 80), s = lane(s4, 2);
        f0 = q8SplitRow(f0, w0, w1, prep, ldp, 0, o + 64, s, dp + 8, K);
        if (R > 1) f1 = q8SplitRow(f1, w0, w1, prep, ldp, 1, o + 64, s, dp + 8, K);
        if (R > 2) f2 = q8SplitRow(f2, w0, w1, prep, ldp, 2, o + 64, s, dp + 8, K);
        if (R > 3) f3 = q8SplitRow(f3, w0, w1, prep, ldp, 3, o + 64, s, dp + 8, K); }
      { const w0 = v128.load(p, 96), w1 = v128.load(p, 112), s = lane(s4, 3);
        h0 = q8SplitRow(h0, w0, w1, prep, ldp, 0, o + 96, s, dp + 12, K);
        if (R > 1) h1 = q8SplitRow(h1, w0, w1, prep, ldp, 1, o + 96, s, dp + 12, K);
        if (R > 2) h2 = q8SplitRow(h2, w0, w1, prep, ldp, 2, o + 96, s, dp + 12, K);
        if (R > 3) h3 = q8SplitRow(h3, w0, w1, prep, ldp, 3, o + 96, s, dp + 12, K); }
      p += 128; sp += 8; o += 128; dp += 16;
    }
    for (let j = 0; b < nb; b++, j++) {
      const w0 = v128.load(p), w1 = v128.load(p, 16), s = fast ? q8Scale1Lo(sp) : q8Scale1(sp, false);
      if (j & 1) {
        h0 = q8SplitRow(h0, w0, w1, prep, ldp, 0, o, s, dp, K);
        if (R > 1) h1 = q8SplitRow(h1, w0, w1, prep, ldp, 1, o, s, dp, K);
        if (R > 2) h2 = q8SplitRow(h2, w0, w1, prep, ldp, 2, o, s, dp, K);
        if (R > 3) h3 = q8SplitRow(h3, w0, w1, prep, ldp, 3, o, s, dp, K);
      } else {
        f0 = q8SplitRow(f0, w0, w1, prep, ldp, 0, o, s, dp, K);
        if (R > 1) f1 = q8SplitRow(f1, w0, w1, prep, ldp, 1, o, s, dp, K);
        if (R > 2) f2 = q8SplitRow(f2, w0, w1, prep, ldp, 2, o, s, dp, K);
        if (R > 3) f3 = q8SplitRow(f3, w0, w1, prep, ldp, 3, o, s, dp, K);
      }
      p += 32; sp += 2; o += 32; dp += 4;
    }
    storeR(out + (<usize>n << 2), ldo, hsum4(f32x4.add(f0, h0), f32x4.add(f1, h1), f32x4.add(f2, h2), f32x4.add(f3, h3)), acc, R);
  }
}

// Each (dtype, R) kernel is a function of its own (exported, so binaryen keeps it out of line): V8
// compiles these far better than the same loops inlined together into one dispatcher (2-row q8
// took 4.6x the one-row time inlined).
export function gemvF32R2(out: usize, ldo: usize, x: usize, ldx: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void { gemvF32R(out, ldo, x, ldx, w, K, n0, n1, acc, 2); }
export function gemvF32R3(out: usize, ldo: usize, x: usize, ldx: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void { gemvF32R(out, ldo, x, ldx, w, K, n0, n1, acc, 3); }
export function gemvF32R4(out: usize, ldo: usize, x: usize, ldx: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void { gemvF32R(out, ldo, x, ldx, w, K, n0, n1, acc, 4); }
export function gemvBf16R2(out: usize, ldo: usize, x: usize, ldx: usize, xd: usize, ldp: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void { gemvHalfR(out, ldo, x, ldx, xd, ldp, w, 0, K, n0, n1, acc, false, 2, false, false); }
export function gemvBf16R3(out: usize, ldo: usize, x: usize, ldx: usize, xd: usize, ldp: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void { gemvHalfR(out, ldo, x, ldx, xd, ldp, w, 0, K, n0, n1, acc, false, 3, false, false); }
export function gemvBf16R4(out: usize, ldo: usize, x: usize, ldx: usize, xd: usize, ldp: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void { gemvHalfR(out, ldo, x, ldx, xd, ldp, w, 0, K, n0, n1, acc, false, 4, false, false); }
export function gemvF16R2(out: usize, ldo: usize, x: usize, ldx: usize, xd: usize, ldp: usize, w: usize, map: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: i32): void {
  const scaled = f16Scaled(xd, K) && f16Scaled(xd + 1 * ldp, K);
  if (scaled && (map || fast)) gemvF16RunsR(out, ldo, x, ldx, xd, ldp, w, map, K, n0, n1, acc, 2, fast != 0);
  else if (map) gemvHalfR(out, ldo, x, ldx, xd, ldp, w, map, K, n0, n1, acc, true, 2, false, true);
  else if (scaled) gemvHalfR(out, ldo, x, ldx, xd, ldp, w, 0, K, n0, n1, acc, true, 2, true, false);
  else gemvHalfR(out, ldo, x, ldx, xd, ldp, w, 0, K, n0, n1, acc, true, 2, false, false);
}
export function gemvF16R3(out: usize, ldo: usize, x: usize, ldx: usize, xd: usize, ldp: usize, w: usize, map: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: i32): void {
  const scaled = f16Scaled(xd, K) && f16Scaled(xd + 1 * ldp, K) && f16Scaled(xd + 2 * ldp, K);
  if (scaled && (map || fast)) gemvF16RunsR(out, ldo, x, ldx, xd, ldp, w, map, K, n0, n1, acc, 3, fast != 0);
  else if (map) gemvHalfR(out, ldo, x, ldx, xd, ldp, w, map, K, n0, n1, acc, true, 3, false, true);
  else if (scaled) gemvHalfR(out, ldo, x, ldx, xd, ldp, w, 0, K, n0, n1, acc, true, 3, true, false);
  else gemvHalfR(out, ldo, x, ldx, xd, ldp, w, 0, K, n0, n1, acc, true, 3, false, false);
}
export function gemvF16R4(out: usize, ldo: usize, x: usize, ldx: usize, xd: usize, ldp: usize, w: usize, map: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: i32): void {
  const scaled = f16Scaled(xd, K) && f16Scaled(xd + 1 * ldp, K) && f16Scaled(xd + 2 * ldp, K) && f16Scaled(xd + 3 * ldp, K);
  if (scaled && (map || fast)) gemvF16RunsR(out, ldo, x, ldx, xd, ldp, w, map, K, n0, n1, acc, 4, fast != 0);
  else if (map) gemvHalfR(out, ldo, x, ldx, xd, ldp, w, map, K, n0, n1, acc, true, 4, false, true);
  else if (scaled) gemvHalfR(out, ldo, x, ldx, xd, ldp, w, 0, K, n0, n1, acc, true, 4, true, false);
  else gemvHalfR(out, ldo, x, ldx, xd, ldp, w, 0, K, n0, n1, acc, true, 4, false, false);
}
export function gemvQ8R2(out: usize, ldo: usize, prep: usize, ldp: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: i32): void {
  if (fast) gemvQ8R(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, 2, true); else gemvQ8R(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, 2, false);
}
export function gemvQ8R3(out: usize, ldo: usize, prep: usize, ldp: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: i32): void {
  if (fast) gemvQ8R(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, 3, true); else gemvQ8R(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, 3, false);
}
export function gemvQ8R4(out: usize, ldo: usize, prep: usize, ldp: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32, fast: i32): void {
  if (fast) gemvQ8R(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, 4, true); else gemvQ8R(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, 4, false);
}
export function gemvQ4R2(out: usize, ldo: usize, prep: usize, ldp: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32): void { gemvQ4Pairs(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, 2); }
export function gemvQ4R3(out: usize, ldo: usize, prep: usize, ldp: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32): void { gemvQ4Pairs(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, 3); }
export function gemvQ4R4(out: usize, ldo: usize, prep: usize, ldp: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32): void { gemvQ4Pairs(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, 4); }

/**
 * GEMV over R = 1..4 rows of x. For bf16/f16/q8/q4, `prep` holds the rows' prepared forms
 * (k_prep_x layout) `ldp` bytes apart.
 */
export function gemvRows(dtype: i32, R: i32, out: usize, ldo: usize, x: usize, ldx: usize, prep: usize, ldp: usize,
  w: usize, ws: usize, wm: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  if (dtype == 0) {
    if (R == 1) gemvF32(out, x, w, K, n0, n1, acc);
    else if (R == 2) gemvF32R2(out, ldo, x, ldx, w, K, n0, n1, acc);
    else if (R == 3) gemvF32R3(out, ldo, x, ldx, w, K, n0, n1, acc);
    else gemvF32R4(out, ldo, x, ldx, w, K, n0, n1, acc);
  } else if (dtype == 1) {
    if (R == 1) gemvBf16(out, x, prep, w, K, n0, n1, acc);
    else if (R == 2) gemvBf16R2(out, ldo, x, ldx, prep, ldp, w, K, n0, n1, acc);
    else if (R == 3) gemvBf16R3(out, ldo, x, ldx, prep, ldp, w, K, n0, n1, acc);
    else gemvBf16R4(out, ldo, x, ldx, prep, ldp, w, K, n0, n1, acc);
  } else if (dtype == 2) {
    if (R == 1) gemvF16(out, x, prep, w, ws, K, n0, n1, acc, <i32>wm);
    else if (R == 2) gemvF16R2(out, ldo, x, ldx, prep, ldp, w, ws, K, n0, n1, acc, <i32>wm);
    else if (R == 3) gemvF16R3(out, ldo, x, ldx, prep, ldp, w, ws, K, n0, n1, acc, <i32>wm);
    else gemvF16R4(out, ldo, x, ldx, prep, ldp, w, ws, K, n0, n1, acc, <i32>wm);
  } else if (dtype == 3) {
    // q8: wm ≠ 0 when every scale is a positive normal half (q8Scales4); the relaxed build's fast
    // path also needs x's scales ·2¹¹² in every row (q8ScaleX), else it takes the exact widening
    let fast = wm != 0 ? 1 : 0;
    if (ASC_FEATURE_RELAXED_SIMD) for (let r = 0; r < R; r++) if (!q8XScaled(prep + <usize>r * ldp, K)) fast = 0;
    if (R == 1) gemvQ8(out, prep, prep + <usize>K * 3, w, ws, K, n0, n1, acc, fast);
    else if (R == 2) gemvQ8R2(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, fast);
    else if (R == 3) gemvQ8R3(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, fast);
    else gemvQ8R4(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, fast);
  } else {
    if (R == 1) gemvQ4(out, prep, w, ws, K, n0, n1, acc);
    else if (R == 2) gemvQ4R2(out, ldo, prep, ldp, w, ws, K, n0, n1, acc);
    else if (R == 3) gemvQ4R3(out, ldo, prep, ldp, w, ws, K, n0, n1, acc);
    else gemvQ4R4(out, ldo, prep, ldp, w, ws, K, n0, n1, acc);
  }
}
