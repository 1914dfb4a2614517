// GEMV (one token): out[n] (+)= Σ_k x[k]·W[n,k] over row-major W [N, K], streaming W once.
// Threads split the rows. Every dtype reads the weights in their stored layout (no repacked copy,
// so the model is held once); x is prepared per call (deinterleaved for 16-bit weights, quantized
// to int8 blocks for q8/q4) once per call before the threads start, which costs microseconds.

import { fmadd, hsum, hsum4, bf16hiToF32, f16hiToF32 } from './simd';

// ---------------------------------------------------------------------------------------------
// f32

export function gemvF32(out: usize, x: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  const K4 = K & ~3;
  const rb = <usize>K << 2;
  let n = n0;
  for (; n + 4 <= n1; n += 4) {
    const w0 = w + <usize>n * rb, w1 = w0 + rb, w2 = w1 + rb, w3 = w2 + rb;
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    let o: usize = 0;
    const end8 = <usize>(K & ~7) << 2;
    for (; o < end8; o += 32) {
      const xv = v128.load(x + o), xw = v128.load(x + o, 16);
      a0 = fmadd(v128.load(w0 + o), xv, a0);
      a1 = fmadd(v128.load(w1 + o), xv, a1);
      a2 = fmadd(v128.load(w2 + o), xv, a2);
      a3 = fmadd(v128.load(w3 + o), xv, a3);
      b0 = fmadd(v128.load(w0 + o, 16), xw, b0);
      b1 = fmadd(v128.load(w1 + o, 16), xw, b1);
      b2 = fmadd(v128.load(w2 + o, 16), xw, b2);
      b3 = fmadd(v128.load(w3 + o, 16), xw, b3);
    }
    if (o < (<usize>K4 << 2)) {
      const xv = v128.load(x + o);
      a0 = fmadd(v128.load(w0 + o), xv, a0);
      a1 = fmadd(v128.load(w1 + o), xv, a1);
      a2 = fmadd(v128.load(w2 + o), xv, a2);
      a3 = fmadd(v128.load(w3 + o), xv, a3);
    }
    let s = hsum4(f32x4.add(a0, b0), f32x4.add(a1, b1), f32x4.add(a2, b2), f32x4.add(a3, b3));
    if (K4 < K) {
      let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
      for (let k = K4; k < K; k++) {
        const kk = <usize>k << 2;
        const xk = load<f32>(x + kk);
        t0 += xk * load<f32>(w0 + kk); t1 += xk * load<f32>(w1 + kk);
        t2 += xk * load<f32>(w2 + kk); t3 += xk * load<f32>(w3 + kk);
      }
      s = f32x4.add(s, f32x4(t0, t1, t2, t3));
    }
    const op = out + (<usize>n << 2);
    if (acc) s = f32x4.add(s, v128.load(op));
    v128.store(op, s);
  }
  for (; n < n1; n++) {
    const w0 = w + <usize>n * rb;
    let a0 = f32x4.splat(0);
    let o: usize = 0;
    for (; o < (<usize>K4 << 2); o += 16) a0 = fmadd(v128.load(w0 + o), v128.load(x + o), a0);
    let s = hsum(a0);
    for (let k = K4; k < K; k++) s += load<f32>(x + (<usize>k << 2)) * load<f32>(w0 + (<usize>k << 2));
    const op = out + (<usize>n << 2);
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

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

@inline function halfPair(v: v128, f16: bool, hi: bool): v128 {
  const u = hi ? v : i32x4.shl(v, 16);
  return f16 ? f16hiToF32(u) : bf16hiToF32(u);
}

@inline function scalarHalf(h: u32, f16: bool): f32 {
  return f32x4.extract_lane(f16 ? f16hiToF32(i32x4.splat(h << 16)) : bf16hiToF32(i32x4.splat(h << 16)), 0);
}

@inline function gemvHalfT(out: usize, x: usize, xd: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32, f16: bool): void {
  const K8 = K & ~7;
  const rb = <usize>K << 1;
  let n = n0;
  for (; n + 4 <= n1; n += 4) {
    const w0 = w + <usize>n * rb, w1 = w0 + rb, w2 = w1 + rb, w3 = w2 + rb;
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    let o: usize = 0, xo: usize = 0;
    const end = <usize>K8 << 1;
    for (; o < end; o += 16, xo += 32) {
      const xe = v128.load(xd + xo), xq = v128.load(xd + xo, 16);
      const v0 = v128.load(w0 + o), v1 = v128.load(w1 + o), v2 = v128.load(w2 + o), v3 = v128.load(w3 + o);
      a0 = fmadd(halfPair(v0, f16, false), xe, a0); b0 = fmadd(halfPair(v0, f16, true), xq, b0);
      a1 = fmadd(halfPair(v1, f16, false), xe, a1); b1 = fmadd(halfPair(v1, f16, true), xq, b1);
      a2 = fmadd(halfPair(v2, f16, false), xe, a2); b2 = fmadd(halfPair(v2, f16, true), xq, b2);
      a3 = fmadd(halfPair(v3, f16, false), xe, a3); b3 = fmadd(halfPair(v3, f16, true), xq, b3);
    }
    let s = hsum4(f32x4.add(a0, b0), f32x4.add(a1, b1), f32x4.add(a2, b2), f32x4.add(a3, b3));
    if (K8 < K) {
      let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
      for (let k = K8; k < K; k++) {
        const kk = <usize>k << 1;
        const xk = load<f32>(x + (<usize>k << 2));
        t0 += xk * scalarHalf(load<u16>(w0 + kk), f16); t1 += xk * scalarHalf(load<u16>(w1 + kk), f16);
        t2 += xk * scalarHalf(load<u16>(w2 + kk), f16); t3 += xk * scalarHalf(load<u16>(w3 + kk), f16);
      }
      s = f32x4.add(s, f32x4(t0, t1, t2, t3));
    }
    const op = out + (<usize>n << 2);
    if (acc) s = f32x4.add(s, v128.load(op));
    v128.store(op, s);
  }
  for (; n < n1; n++) {
    const w0 = w + <usize>n * rb;
    let a0 = f32x4.splat(0), b0 = a0;
    let o: usize = 0, xo: usize = 0;
    for (; o < (<usize>K8 << 1); o += 16, xo += 32) {
      const v0 = v128.load(w0 + o);
      a0 = fmadd(halfPair(v0, f16, false), v128.load(xd + xo), a0);
      b0 = fmadd(halfPair(v0, f16, true), v128.load(xd + xo, 16), b0);
    }
    let s = hsum(f32x4.add(a0, b0));
    for (let k = K8; k < K; k++) s += load<f32>(x + (<usize>k << 2)) * scalarHalf(load<u16>(w0 + (<usize>k << 1)), f16);
    const op = out + (<usize>n << 2);
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

export function gemvBf16(out: usize, x: usize, xd: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  gemvHalfT(out, x, xd, w, K, n0, n1, acc, false);
}
export function gemvF16(out: usize, x: usize, xd: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  gemvHalfT(out, x, xd, w, K, n0, n1, acc, true);
}

// ---------------------------------------------------------------------------------------------
// Activation quantization for the integer paths (llama.cpp's Q8_0/Q8_1 activations): per block of
// 32, d = max|x| / 127 and q = round(x / d) in [-127, 127], stored as i16 (for i32x4.dot_i16x8_s)
// and as i8 (for the relaxed i8 dot); s = d·Σ q, the block sum of the *quantized* x, for q4's min
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
    const o8 = q8 + (<usize>b << 5);
    v128.store(o8, i8x16.narrow_i16x8_s(h0, h1)); v128.store(o8, i8x16.narrow_i16x8_s(h2, h3), 16);
  }
}

// ---------------------------------------------------------------------------------------------
// q8 (Q8_0 weights): per block, an exact int32 dot of the int8 weights with the int8 activations
// (sign-extending loads + i32x4.dot_i16x8_s), then one float multiply-add by scale_w·scale_x.

@inline function q8Block(w: usize, x0: v128, x1: v128, x2: v128, x3: v128): v128 {
  const d0 = i32x4.dot_i16x8_s(v128.load8x8_s(w), x0);
  const d1 = i32x4.dot_i16x8_s(v128.load8x8_s(w, 8), x1);
  const d2 = i32x4.dot_i16x8_s(v128.load8x8_s(w, 16), x2);
  const d3 = i32x4.dot_i16x8_s(v128.load8x8_s(w, 24), x3);
  return f32x4.convert_i32x4_s(i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3)));
}

export function gemvQ8(out: usize, q16: usize, qd: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  const nb = K >> 5;
  const rb = <usize>K, sb = <usize>nb << 2;
  let n = n0;
  for (; n + 4 <= n1; n += 4) {
    let w0 = w + <usize>n * rb;
    let s0 = ws + <usize>n * sb;
    let f0 = f32x4.splat(0), f1 = f0, f2 = f0, f3 = f0;
    let xp = q16, dp = qd;
    for (let b = 0; b < nb; b++) {
      const x0 = v128.load(xp), x1 = v128.load(xp, 16), x2 = v128.load(xp, 32), x3 = v128.load(xp, 48);
      const d = load<f32>(dp);
      f0 = fmadd(q8Block(w0, x0, x1, x2, x3), f32x4.splat(load<f32>(s0) * d), f0);
      f1 = fmadd(q8Block(w0 + rb, x0, x1, x2, x3), f32x4.splat(load<f32>(s0 + sb) * d), f1);
      f2 = fmadd(q8Block(w0 + 2 * rb, x0, x1, x2, x3), f32x4.splat(load<f32>(s0 + 2 * sb) * d), f2);
      f3 = fmadd(q8Block(w0 + 3 * rb, x0, x1, x2, x3), f32x4.splat(load<f32>(s0 + 3 * sb) * d), f3);
      w0 += 32; s0 += 4; xp += 64; dp += 4;
    }
    let s = hsum4(f0, f1, f2, f3);
    const op = out + (<usize>n << 2);
    if (acc) s = f32x4.add(s, v128.load(op));
    v128.store(op, s);
  }
  for (; n < n1; n++) {
    let w0 = w + <usize>n * rb;
    let s0 = ws + <usize>n * sb;
    let f0 = f32x4.splat(0);
    let xp = q16, dp = qd;
    for (let b = 0; b < nb; b++) {
      const x0 = v128.load(xp), x1 = v128.load(xp, 16), x2 = v128.load(xp, 32), x3 = v128.load(xp, 48);
      f0 = fmadd(q8Block(w0, x0, x1, x2, x3), f32x4.splat(load<f32>(s0) * load<f32>(dp)), f0);
      w0 += 32; s0 += 4; xp += 64; dp += 4;
    }
    const op = out + (<usize>n << 2);
    const s = hsum(f0);
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

// ---------------------------------------------------------------------------------------------
// q4 (Q4_1 weights, x ≈ q·scale + min): Σ w·x = scale·Σ q·x + min·Σ x per block. Σ q·x is an
// int32 dot of the nibbles (0..15) with the int8 activations: with relaxed SIMD the nibbles are a
// valid 7-bit operand of i16x8.relaxed_dot_i8x16_i7x16_s (deterministic); otherwise they are
// widened to i16 for i32x4.dot_i16x8_s. Σ x is the quantized block sum from quantizeX.

@inline function q4Block(w: usize, xq16: usize, xq8: usize): v128 {
  const v = v128.load(w);
  const lo = v128.and(v, i8x16.splat(0x0f));
  const hi = i8x16.shr_u(v, 4);
  if (ASC_FEATURE_RELAXED_SIMD) {
    // Pairs of products fit i16 (2·127·15), so the two halves are summed before widening. The
    // i32x4 ..._add_s form is avoided: V8 11.3 (Node 20) returns twice the true sum.
    const s = i16x8.add(i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xq8), lo), i16x8.relaxed_dot_i8x16_i7x16_s(v128.load(xq8, 16), hi));
    return f32x4.convert_i32x4_s(i32x4.extadd_pairwise_i16x8_s(s));
  } else {
    const d0 = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), v128.load(xq16));
    const d1 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), v128.load(xq16, 16));
    const d2 = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), v128.load(xq16, 32));
    const d3 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), v128.load(xq16, 48));
    return f32x4.convert_i32x4_s(i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3)));
  }
}

export function gemvQ4(out: usize, q16: usize, q8: usize, qd: usize, qs: usize, w: usize, ws: usize, wm: usize,
  K: i32, n0: i32, n1: i32, acc: i32): void {
  const nb = K >> 5;
  const rb = <usize>K >> 1, sb = <usize>nb << 2;
  let n = n0;
  for (; n + 4 <= n1; n += 4) {
    let w0 = w + <usize>n * rb;
    let s0 = ws + <usize>n * sb, m0 = wm + <usize>n * sb;
    let f0 = f32x4.splat(0), f1 = f0, f2 = f0, f3 = f0;
    let g = f32x4.splat(0);
    let x16 = q16, x8 = q8, dp = qd, sp = qs;
    for (let b = 0; b < nb; b++) {
      const d = load<f32>(dp);
      f0 = fmadd(q4Block(w0, x16, x8), f32x4.splat(load<f32>(s0) * d), f0);
      f1 = fmadd(q4Block(w0 + rb, x16, x8), f32x4.splat(load<f32>(s0 + sb) * d), f1);
      f2 = fmadd(q4Block(w0 + 2 * rb, x16, x8), f32x4.splat(load<f32>(s0 + 2 * sb) * d), f2);
      f3 = fmadd(q4Block(w0 + 3 * rb, x16, x8), f32x4.splat(load<f32>(s0 + 3 * sb) * d), f3);
      const mins = f32x4(load<f32>(m0), load<f32>(m0 + sb), load<f32>(m0 + 2 * sb), load<f32>(m0 + 3 * sb));
      g = fmadd(mins, f32x4.splat(load<f32>(sp)), g);
      w0 += 16; s0 += 4; m0 += 4; x16 += 64; x8 += 32; dp += 4; sp += 4;
    }
    let s = f32x4.add(hsum4(f0, f1, f2, f3), g);
    const op = out + (<usize>n << 2);
    if (acc) s = f32x4.add(s, v128.load(op));
    v128.store(op, s);
  }
  for (; n < n1; n++) {
    let w0 = w + <usize>n * rb;
    let s0 = ws + <usize>n * sb, m0 = wm + <usize>n * sb;
    let f0 = f32x4.splat(0);
    let g: f32 = 0;
    let x16 = q16, x8 = q8, dp = qd, sp = qs;
    for (let b = 0; b < nb; b++) {
      f0 = fmadd(q4Block(w0, x16, x8), f32x4.splat(load<f32>(s0) * load<f32>(dp)), f0);
      g += load<f32>(m0) * load<f32>(sp);
      w0 += 16; s0 += 4; m0 += 4; x16 += 64; x8 += 32; dp += 4; sp += 4;
    }
    const op = out + (<usize>n << 2);
    const s = hsum(f0) + g;
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}
