// GEMV (decode: 1 to 8 tokens): out[n] (+)= Σ_k x[k]·W[n,k] over row-major W [N, K], streaming W
// once per 4 tokens. Threads split the rows. Every dtype reads the weights in their stored layout (no repacked
// copy, so the model is held once); x is prepared once per call before the threads start
// (deinterleaved for 16-bit weights, quantized to int8 blocks for q8/q4), which costs microseconds.

import { fmadd, hsum4, bf16hiToF32, f16hiToF32 } from './simd';

// Rows of W are processed one at a time, front to back, so W is read as one sequential stream:
// DRAM prefetchers follow that far better than several interleaved row streams (4 rows at a time
// ran at half the bandwidth here). x stays in L1; several accumulators hide the add latency.
//
// Up to 4 rows of x (tokens) share one pass over W, each weight vector used for every row. Each
// row's sums are formed in the same order whatever the number of rows (R only adds lanes), so a
// token's result does not depend on which other tokens share the call: speculative decoding's
// verification (several tokens) then reproduces plain decoding (one token) bit for bit.

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

@inline function scalarHalf(h: u32, f16: bool): f32 {
  return f32x4.extract_lane(f16 ? f16hiToF32(i32x4.splat(h << 16)) : bf16hiToF32(i32x4.splat(h << 16)), 0);
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
    store<f32>(qs + (<usize>b << 2), d * <f32>(i32x4.extract_lane(is, 0) + i32x4.extract_lane(is, 1) + i32x4.extract_lane(is, 2) + i32x4.extract_lane(is, 3)));
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
// The kernels, for R = 1..4 rows of x. R is a compile-time constant after inlining; rows of x
// (and of its prepared forms) are `ldx` (`ldp`) bytes apart, rows of out `ldo` bytes apart.

@inline function gemvF32R(out: usize, ldo: usize, x: usize, ldx: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32, R: i32): void {
  const rb = <usize>K << 2;
  const e8 = <usize>(K & ~7) << 2, e4 = <usize>(K & ~3) << 2;
  const x1 = x + ldx, x2 = x1 + ldx, x3 = x2 + ldx;
  let p = w + <usize>n0 * rb;
  for (let n = n0; n < n1; n++, p += rb) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    let o: usize = 0;
    for (; o < e8; o += 32) {
      const u = v128.load(p + o), v = v128.load(p + o, 16);
      a0 = fmadd(u, v128.load(x + o), a0); b0 = fmadd(v, v128.load(x + o, 16), b0);
      if (R > 1) { a1 = fmadd(u, v128.load(x1 + o), a1); b1 = fmadd(v, v128.load(x1 + o, 16), b1); }
      if (R > 2) { a2 = fmadd(u, v128.load(x2 + o), a2); b2 = fmadd(v, v128.load(x2 + o, 16), b2); }
      if (R > 3) { a3 = fmadd(u, v128.load(x3 + o), a3); b3 = fmadd(v, v128.load(x3 + o, 16), b3); }
    }
    if (o < e4) {
      const u = v128.load(p + o);
      a0 = fmadd(u, v128.load(x + o), a0);
      if (R > 1) a1 = fmadd(u, v128.load(x1 + o), a1);
      if (R > 2) a2 = fmadd(u, v128.load(x2 + o), a2);
      if (R > 3) a3 = fmadd(u, v128.load(x3 + o), a3);
      o += 16;
    }
    let s = hsum4(f32x4.add(a0, b0), f32x4.add(a1, b1), f32x4.add(a2, b2), f32x4.add(a3, b3));
    for (; o < rb; o += 4) {
      const wk = f32x4.splat(load<f32>(p + o));
      s = fmadd(wk, f32x4(load<f32>(x + o), R > 1 ? load<f32>(x1 + o) : 0, R > 2 ? load<f32>(x2 + o) : 0, R > 3 ? load<f32>(x3 + o) : 0), s);
    }
    storeR(out + (<usize>n << 2), ldo, s, acc, R);
  }
}

/** out[r·ldo] (+)= lane r of s for r < R. */
@inline function storeR(o: usize, ldo: usize, s: v128, acc: i32, R: i32): void {
  store<f32>(o, acc ? load<f32>(o) + f32x4.extract_lane(s, 0) : f32x4.extract_lane(s, 0));
  if (R > 1) store<f32>(o + ldo, acc ? load<f32>(o + ldo) + f32x4.extract_lane(s, 1) : f32x4.extract_lane(s, 1));
  if (R > 2) store<f32>(o + 2 * ldo, acc ? load<f32>(o + 2 * ldo) + f32x4.extract_lane(s, 2) : f32x4.extract_lane(s, 2));
  if (R > 3) store<f32>(o + 3 * ldo, acc ? load<f32>(o + 3 * ldo) + f32x4.extract_lane(s, 3) : f32x4.extract_lane(s, 3));
}

@inline function gemvHalfR(out: usize, ldo: usize, x: usize, ldx: usize, xd: usize, ldp: usize, w: usize, K: i32,
  n0: i32, n1: i32, acc: i32, f16: bool, R: i32): void {
  const rb = <usize>K << 1, e8 = <usize>(K & ~7) << 1;
  const d1 = xd + ldp, d2 = d1 + ldp, d3 = d2 + ldp;
  let p = w + <usize>n0 * rb;
  for (let n = n0; n < n1; n++, p += rb) {
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    let o: usize = 0, xo: usize = 0;
    for (; o < e8; o += 16, xo += 32) {
      const v = v128.load(p + o);
      const e = halfPair(v, f16, false), h = halfPair(v, f16, true);
      a0 = fmadd(e, v128.load(xd + xo), a0); b0 = fmadd(h, v128.load(xd + xo, 16), b0);
      if (R > 1) { a1 = fmadd(e, v128.load(d1 + xo), a1); b1 = fmadd(h, v128.load(d1 + xo, 16), b1); }
      if (R > 2) { a2 = fmadd(e, v128.load(d2 + xo), a2); b2 = fmadd(h, v128.load(d2 + xo, 16), b2); }
      if (R > 3) { a3 = fmadd(e, v128.load(d3 + xo), a3); b3 = fmadd(h, v128.load(d3 + xo, 16), b3); }
    }
    let s = hsum4(f32x4.add(a0, b0), f32x4.add(a1, b1), f32x4.add(a2, b2), f32x4.add(a3, b3));
    for (let k = K & ~7; k < K; k++) {
      const xk = <usize>k << 2;
      const wk = f32x4.splat(scalarHalf(load<u16>(p + (<usize>k << 1)), f16));
      s = fmadd(wk, f32x4(load<f32>(x + xk), R > 1 ? load<f32>(x + ldx + xk) : 0, R > 2 ? load<f32>(x + 2 * ldx + xk) : 0, R > 3 ? load<f32>(x + 3 * ldx + xk) : 0), s);
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
@inline function gemvQ8R(out: usize, ldo: usize, prep: usize, ldp: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32, R: i32): void {
  const nb = K >> 5, qd = <usize>K * 3;
  let p = w + <usize>n0 * <usize>K, sp = ws + ((<usize>n0 * <usize>nb) << 2);
  for (let n = n0; n < n1; n++) {
    let f0 = f32x4.splat(0), f1 = f0, f2 = f0, f3 = f0;
    let xp = prep, dp = prep + qd;
    for (let b = 0; b < nb; b++) {
      const w0 = v128.load8x8_s(p), w1 = v128.load8x8_s(p, 8), w2 = v128.load8x8_s(p, 16), w3 = v128.load8x8_s(p, 24);
      const s = load<f32>(sp);
      f0 = fmadd(q8BlockW(w0, w1, w2, w3, xp), f32x4.splat(s * load<f32>(dp)), f0);
      if (R > 1) f1 = fmadd(q8BlockW(w0, w1, w2, w3, xp + ldp), f32x4.splat(s * load<f32>(dp + ldp)), f1);
      if (R > 2) f2 = fmadd(q8BlockW(w0, w1, w2, w3, xp + 2 * ldp), f32x4.splat(s * load<f32>(dp + 2 * ldp)), f2);
      if (R > 3) f3 = fmadd(q8BlockW(w0, w1, w2, w3, xp + 3 * ldp), f32x4.splat(s * load<f32>(dp + 3 * ldp)), f3);
      p += 32; sp += 4; xp += 64; dp += 4;
    }
    storeR(out + (<usize>n << 2), ldo, hsum4(f0, f1, f2, f3), acc, R);
  }
}

/**
 * q4 (Q4_1 weights, x ≈ q·scale + min): Σ w·x = scale·Σ q·x + min·Σ x per block. Σ q·x is an
 * int32 dot of the nibbles (0..15) with the int8 activations: with relaxed SIMD the nibbles are a
 * valid 7-bit operand of i16x8.relaxed_dot_i8x16_i7x16_s (deterministic; pairs of products fit
 * i16, 2·127·15, so the halves are summed before widening, and the i32x4 ..._add_s form is
 * avoided: V8 11.3 (Node 20) returns twice the true sum); otherwise they are widened to i16 for
 * i32x4.dot_i16x8_s. Σ x is the quantized block sum from quantizeX.
 */
@inline function q4BlockV(lo: v128, hi: v128, x16: usize, x8: usize): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    const s = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x8), lo), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(x8, 16), hi));
    return f32x4.convert_i32x4_s(i32x4.extadd_pairwise_i16x8_s(s));
  } else {
    const d0 = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), v128.load(x16));
    const d1 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), v128.load(x16, 16));
    const d2 = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), v128.load(x16, 32));
    const d3 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), v128.load(x16, 48));
    return f32x4.convert_i32x4_s(i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3)));
  }
}

@inline function gemvQ4R(out: usize, ldo: usize, prep: usize, ldp: usize, w: usize, ws: usize, wm: usize, K: i32,
  n0: i32, n1: i32, acc: i32, R: i32): void {
  const nb = K >> 5, o8 = <usize>K << 1, od = <usize>K * 3, os = od + (<usize>K >> 3);
  let p = w + ((<usize>n0 * <usize>K) >> 1);
  let sp = ws + ((<usize>n0 * <usize>nb) << 2), mp = wm + ((<usize>n0 * <usize>nb) << 2);
  for (let n = n0; n < n1; n++) {
    let f0 = f32x4.splat(0), f1 = f0, f2 = f0, f3 = f0, g = f0;
    let x16 = prep, x8 = prep + o8, xd = prep + od, xs = prep + os;
    for (let b = 0; b < nb; b++) {
      const v = v128.load(p);
      const lo = v128.and(v, i8x16.splat(0x0f)), hi = i8x16.shr_u(v, 4);
      const s = load<f32>(sp);
      f0 = fmadd(q4BlockV(lo, hi, x16, x8), f32x4.splat(s * load<f32>(xd)), f0);
      if (R > 1) f1 = fmadd(q4BlockV(lo, hi, x16 + ldp, x8 + ldp), f32x4.splat(s * load<f32>(xd + ldp)), f1);
      if (R > 2) f2 = fmadd(q4BlockV(lo, hi, x16 + 2 * ldp, x8 + 2 * ldp), f32x4.splat(s * load<f32>(xd + 2 * ldp)), f2);
      if (R > 3) f3 = fmadd(q4BlockV(lo, hi, x16 + 3 * ldp, x8 + 3 * ldp), f32x4.splat(s * load<f32>(xd + 3 * ldp)), f3);
      g = fmadd(f32x4.splat(load<f32>(mp)), f32x4(load<f32>(xs), R > 1 ? load<f32>(xs + ldp) : 0,
        R > 2 ? load<f32>(xs + 2 * ldp) : 0, R > 3 ? load<f32>(xs + 3 * ldp) : 0), g);
      p += 16; sp += 4; mp += 4; x16 += 64; x8 += 32; xd += 4; xs += 4;
    }
    storeR(out + (<usize>n << 2), ldo, f32x4.add(hsum4(f0, f1, f2, f3), g), acc, R);
  }
}

/**
 * GEMV over R = 1..4 rows of x. For bf16/f16/q8/q4, `prep` holds the rows' prepared forms
 * (k_prep_x layout) `ldp` bytes apart.
 */
export function gemvRows(dtype: i32, R: i32, out: usize, ldo: usize, x: usize, ldx: usize, prep: usize, ldp: usize,
  w: usize, ws: usize, wm: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  if (dtype == 0) {
    if (R == 1) gemvF32R(out, ldo, x, ldx, w, K, n0, n1, acc, 1);
    else if (R == 2) gemvF32R(out, ldo, x, ldx, w, K, n0, n1, acc, 2);
    else if (R == 3) gemvF32R(out, ldo, x, ldx, w, K, n0, n1, acc, 3);
    else gemvF32R(out, ldo, x, ldx, w, K, n0, n1, acc, 4);
  } else if (dtype == 1 || dtype == 2) {
    const f16 = dtype == 2;
    if (R == 1) gemvHalfR(out, ldo, x, ldx, prep, ldp, w, K, n0, n1, acc, f16, 1);
    else if (R == 2) gemvHalfR(out, ldo, x, ldx, prep, ldp, w, K, n0, n1, acc, f16, 2);
    else if (R == 3) gemvHalfR(out, ldo, x, ldx, prep, ldp, w, K, n0, n1, acc, f16, 3);
    else gemvHalfR(out, ldo, x, ldx, prep, ldp, w, K, n0, n1, acc, f16, 4);
  } else if (dtype == 3) {
    if (R == 1) gemvQ8R(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, 1);
    else if (R == 2) gemvQ8R(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, 2);
    else if (R == 3) gemvQ8R(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, 3);
    else gemvQ8R(out, ldo, prep, ldp, w, ws, K, n0, n1, acc, 4);
  } else {
    if (R == 1) gemvQ4R(out, ldo, prep, ldp, w, ws, wm, K, n0, n1, acc, 1);
    else if (R == 2) gemvQ4R(out, ldo, prep, ldp, w, ws, wm, K, n0, n1, acc, 2);
    else if (R == 3) gemvQ4R(out, ldo, prep, ldp, w, ws, wm, K, n0, n1, acc, 3);
    else gemvQ4R(out, ldo, prep, ldp, w, ws, wm, K, n0, n1, acc, 4);
  }
}
