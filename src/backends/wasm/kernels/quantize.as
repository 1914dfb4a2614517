// f32 rows to the q8 and q4 storage formats (../../weight-format.ts describes both), for loading a
// bf16/f32 checkpoint with --dtype q8/q4. The bytes must be those setWeightRows writes in
// weight-format.ts, whatever the backend, so this is the same algorithm with the same f64 and f32
// operations in the same order: values widened to f64, Math.fround as an f32 demotion, JS
// Math.round (nearest, ties toward +∞), `(t + 0.5) | 0` as a truncation, and each weighted sum
// accumulated in index order. Scalar on purpose: vectorizing a sum over a block would change its
// order and so its rounding. A row never depends on another, so threads split rows freely.

const QB: i32 = 32;

// The weighted sums of the last levels() call [Σw, Σw·q, Σw·q², Σw·x, Σw·q·x] and the result of
// fitBlock(). Globals belong to an instance, and each thread runs its own instance.
let sW: f64 = 0, sQ: f64 = 0, sQQ: f64 = 0, sX: f64 = 0, sQX: f64 = 0;
let fitS: f64 = 0, fitM: f64 = 0;
let lsS: f64 = 0, lsM: f64 = 0;

/** JS Math.round: the nearest integer, ties toward +∞ (x − floor(x) is exact in f64). */
@inline function jsRound(v: f64): f64 {
  const f = floor(v);
  return v - f >= 0.5 ? f + 1 : f;
}

/** JS ToInt32 for the values these codes take (|v| < 2³¹; NaN and ±∞ give 0). */
@inline function toInt(v: f64): i32 { return abs(v) < 2147483648.0 ? <i32>v : 0; }

/** A q4 level of t = (x − m)/s: `t <= 0 ? 0 : t >= 15 ? 15 : (t + 0.5) | 0` (NaN gives 0, as `| 0` does). */
@inline function level(t: f64): f64 { return t > 0 ? (t >= 15 ? 15 : trunc(t + 0.5)) : 0; }

/**
 * weight-format.ts q4Levels: the weighted squared error of the nearest levels of the block at x for
 * scale s and min m, leaving the sums for the next least-squares step. imp: one weight per value.
 */
function levels(x: usize, imp: usize, s: f64, m: f64): f64 {
  const inv: f64 = s > 0 ? 1 / s : 0;
  let e: f64 = 0, w0: f64 = 0, w1: f64 = 0, w2: f64 = 0, w3: f64 = 0, w4: f64 = 0;
  for (let i = 0; i < QB; i++) {
    const v = <f64>load<f32>(x + (<usize>i << 2));
    const l = level((v - m) * inv);
    const d = l * s + m - v, wt = <f64>load<f32>(imp + (<usize>i << 2));
    e += wt * d * d;
    w0 += wt; w1 += wt * l; w2 += wt * l * l; w3 += wt * v; w4 += wt * l * v;
  }
  sW = w0; sQ = w1; sQQ = w2; sX = w3; sQX = w4;
  return e;
}

/** weight-format.ts lsFit: the weighted least-squares s, m (f32 values) into lsS, lsM; false when singular. */
@inline function lsFit(): bool {
  const det = sW * sQQ - sQ * sQ;
  if (!(det > 0)) return false;
  lsS = <f64><f32>((sW * sQX - sQ * sX) / det);
  lsM = <f64><f32>((sQQ * sX - sQ * sQX) / det);
  return true;
}

/** weight-format.ts fitQ4Block (its levels are not needed here): the block's s, m into fitS, fitM. */
function fitBlock(x: usize, imp: usize): void {
  let lo: f64 = Infinity, hi: f64 = -Infinity;
  for (let i = 0; i < QB; i++) {
    const v = <f64>load<f32>(x + (<usize>i << 2));
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  let bs: f64 = <f64><f32>((hi - lo) / 15), bm: f64 = <f64><f32>lo;
  if (bs == 0) { fitS = bs; fitM = bm; return; }
  let best = levels(x, imp, bs, bm);
  for (let it = 0; it < 2; it++) {        // FIT_ROUNDS
    if (!lsFit()) break;
    const s = lsS, m = lsM;
    if (!(s > 0) || !isFinite<f64>(m)) break;
    const e = levels(x, imp, s, m);
    if (!(e < best)) break;
    best = e; bs = s; bm = m;
  }
  fitS = bs; fitM = bm;
}

@inline function scaleCode(s: f64, D: f64): i32 {
  return s > 0 && D > 0 ? toInt(min<f64>(255, max<f64>(1, jsRound(s / D)))) : 0;
}
@inline function minCode(m: f64, M: f64): i32 {
  return M > 0 ? toInt(min<f64>(127, max<f64>(-127, jsRound(m / M)))) : 0;
}

/** Bytes of one q4 row's scale data (weight-format.ts q4MetaBytes). */
@inline function metaBytes(K: i32): usize { return <usize>(8 + ((K / 16 + 3) & ~3)); }

/** Scratch bytes per thread quantizeRows needs for rows of K values. */
export function quantizeScratch(K: i32): i32 { return (K >> 5) * 16 + 64; }

/**
 * q4 rows [i0, i1) of the `src` rows (K values each) into weight rows r0 + i: 16 code bytes per
 * block at data, D, M and the scale and min codes at meta. A row whose D or M is not finite gets
 * them written and nothing else (the caller refuses it). scr: K/32 pairs of f64.
 */
function q4Rows(src: usize, K: i32, imp: usize, data: usize, meta: usize, r0: i32, i0: i32, i1: i32, scr: usize): void {
  const nb = K >> 5, mb = metaBytes(K);
  for (let i = i0; i < i1; i++) {
    const x = src + ((<usize>i * <usize>K) << 2), row = <usize>(r0 + i);
    let smax: f64 = 0, mmax: f64 = 0;
    for (let b = 0; b < nb; b++) {
      fitBlock(x + (<usize>b << 7), imp + (<usize>b << 7));
      store<f64>(scr + (<usize>b << 4), fitS);
      store<f64>(scr + (<usize>b << 4), fitM, 8);
      smax = max<f64>(smax, fitS); mmax = max<f64>(mmax, abs<f64>(fitM));
    }
    const D: f64 = <f64><f32>(smax / 255), M: f64 = <f64><f32>(mmax / 127);
    const mo = meta + row * mb;
    store<f32>(mo, <f32>D);
    store<f32>(mo, <f32>M, 4);
    if (!isFinite<f64>(D) || !isFinite<f64>(M)) continue;
    for (let b = 0; b < nb; b++) {
      // the levels again for the coded scale and min, then once more the least-squares s, m for them, coded (kept when better)
      const xb = x + (<usize>b << 7), ib = imp + (<usize>b << 7);
      let sc = scaleCode(load<f64>(scr + (<usize>b << 4)), D), mc = minCode(load<f64>(scr + (<usize>b << 4), 8), M);
      let s: f64 = <f64><f32>(D * <f64>sc), m: f64 = <f64><f32>(M * <f64>mc);
      const best = levels(xb, ib, s, m);
      if (lsFit() && lsS > 0 && isFinite<f64>(lsM)) {
        const sc1 = scaleCode(lsS, D), mc1 = minCode(lsM, M);
        const s1: f64 = <f64><f32>(D * <f64>sc1), m1: f64 = <f64><f32>(M * <f64>mc1);
        if (levels(xb, ib, s1, m1) < best) { sc = sc1; mc = mc1; s = s1; m = m1; }
      }
      store<u8>(mo + 8 + <usize>b, <u8>sc);
      store<u8>(mo + 8 + <usize>nb + <usize>b, <u8>mc);
      // the chosen levels, recomputed: the same function of x, s and m as levels() evaluates
      const inv: f64 = s > 0 ? 1 / s : 0, o = data + ((row * <usize>nb + <usize>b) << 4);
      for (let j = 0; j < 16; j++) {
        const lo = <i32>level((<f64>load<f32>(xb + (<usize>j << 2)) - m) * inv);
        const hi = <i32>level((<f64>load<f32>(xb + (<usize>(j + 16) << 2)) - m) * inv);
        store<u8>(o + <usize>j, <u8>(lo | (hi << 4)));
      }
    }
  }
}

/** q8 rows [i0, i1) of the `src` rows into weight rows r0 + i: int8 values at data, one f32 scale per block at scales. */
function q8Rows(src: usize, K: i32, data: usize, scales: usize, r0: i32, i0: i32, i1: i32): void {
  const nb = K >> 5;
  for (let i = i0; i < i1; i++) {
    const x = src + ((<usize>i * <usize>K) << 2), row = <usize>(r0 + i);
    for (let b = 0; b < nb; b++) {
      const xb = x + (<usize>b << 7);
      let amax: f64 = 0;
      for (let j = 0; j < QB; j++) amax = max<f64>(amax, abs<f64>(<f64>load<f32>(xb + (<usize>j << 2))));
      const scale = amax / 127;
      // JS `scale ? 1 / scale : 0`: NaN is falsy too
      const inv: f64 = scale != 0 && scale == scale ? 1 / scale : 0;
      store<f32>(scales + ((row * <usize>nb + <usize>b) << 2), <f32>scale);
      const o = data + ((row * <usize>nb + <usize>b) << 5);
      for (let j = 0; j < QB; j++) store<i8>(o + <usize>j, <i8>toInt(jsRound(<f64>load<f32>(xb + (<usize>j << 2)) * inv)));
    }
  }
}

/**
 * Rows [i0, i1) of a quantization call. dtype 3: q8, 4: q4 (../kernels.ts DTYPE_CODE); imp: K
 * importance weights (q4; all 1 when the caller has none, which gives the same sums).
 */
export function quantizeRows(dtype: i32, src: usize, K: i32, imp: usize, data: usize, scales: usize, r0: i32,
  i0: i32, i1: i32, scr: usize): void {
  if (dtype == 4) q4Rows(src, K, imp, data, scales, r0, i0, i1, scr);
  else if (dtype == 3) q8Rows(src, K, data, scales, r0, i0, i1);
}
