// Memory-bound row kernels: RMSNorm, fused per-head QK-RMSNorm + rotate-half RoPE, SwiGLU, SiLU,
// x += y, KV-cache stores and embedding rows. Each takes a [r0, r1) range so threads can split rows.

import { fmadd, hsum, vsilu, q4MetaBytes } from './simd';
import { dequantRow } from './gemm';

/** out[r] = x[r] / sqrt(mean(x[r]²) + eps) · w for rows [r0, r1). */
export function rmsnormRows(out: usize, x: usize, w: usize, dim: i32, eps: f32, r0: i32, r1: i32): void {
  const d4 = dim & ~3;
  for (let r = r0; r < r1; r++) {
    const xo = x + ((<usize>r * <usize>dim) << 2), oo = out + ((<usize>r * <usize>dim) << 2);
    let a = f32x4.splat(0), b = a;
    let i = 0;
    for (; i + 8 <= dim; i += 8) {
      const v = v128.load(xo + (<usize>i << 2)), u = v128.load(xo + (<usize>i << 2), 16);
      a = fmadd(v, v, a); b = fmadd(u, u, b);
    }
    for (; i < d4; i += 4) { const v = v128.load(xo + (<usize>i << 2)); a = fmadd(v, v, a); }
    let ss = hsum(f32x4.add(a, b));
    for (; i < dim; i++) { const v = load<f32>(xo + (<usize>i << 2)); ss += v * v; }
    const inv: f32 = <f32>1 / sqrt<f32>(ss / <f32>dim + eps);
    const iv = f32x4.splat(inv);
    i = 0;
    for (; i < d4; i += 4) {
      const o = <usize>i << 2;
      v128.store(oo + o, f32x4.mul(f32x4.mul(v128.load(xo + o), iv), v128.load(w + o)));
    }
    for (; i < dim; i++) {
      const o = <usize>i << 2;
      store<f32>(oo + o, (load<f32>(xo + o) * inv) * load<f32>(w + o));
    }
  }
}

/**
 * Rows [r0, r1) of qkv laid out [Q·hd | Hkv·hd | Hkv·hd]: RMSNorm each q head with qn and each k
 * head with kn (0 = no norm), then rotate-half RoPE with row r's cos/sin at cs + r·half·4 and
 * sn + r·half·4 (the caller gathers the rows of its tables for the rows' positions).
 */
export function qkNormRopeRows(qkv: usize, cs: usize, sn: usize, Q: i32, Hkv: i32, hd: i32,
  qn: usize, kn: usize, eps: f32, r0: i32, r1: i32): void {
  const W = (Q + 2 * Hkv) * hd, half = hd >> 1;
  for (let r = r0; r < r1; r++) {
    const c = cs + ((<usize>r * <usize>half) << 2), s = sn + ((<usize>r * <usize>half) << 2);
    for (let h = 0; h < Q + Hkv; h++) {
      normRopeHead(qkv + ((<usize>r * <usize>W + <usize>h * <usize>hd) << 2), c, s, hd, h < Q ? qn : kn, eps);
    }
  }
}

/** One head of hd values at o: RMSNorm with nw (0 = none), then rotate-half RoPE with cos c and sin s. */
@inline export function normRopeHead(o: usize, c: usize, s: usize, hd: i32, nw: usize, eps: f32): void {
  const half = hd >> 1, h4 = half & ~3, d4 = hd & ~3;
  if (nw) {
    let a = f32x4.splat(0);
    let i = 0;
    for (; i < d4; i += 4) { const v = v128.load(o + (<usize>i << 2)); a = fmadd(v, v, a); }
    let ss = hsum(a);
    for (; i < hd; i++) { const v = load<f32>(o + (<usize>i << 2)); ss += v * v; }
    const inv: f32 = <f32>1 / sqrt<f32>(ss / <f32>hd + eps);
    const iv = f32x4.splat(inv);
    i = 0;
    for (; i < d4; i += 4) {
      const p = <usize>i << 2;
      v128.store(o + p, f32x4.mul(f32x4.mul(v128.load(o + p), iv), v128.load(nw + p)));
    }
    for (; i < hd; i++) { const p = <usize>i << 2; store<f32>(o + p, (load<f32>(o + p) * inv) * load<f32>(nw + p)); }
  }
  const o2 = o + (<usize>half << 2);
  let j = 0;
  for (; j < h4; j += 4) {
    const p = <usize>j << 2;
    const a = v128.load(o + p), b = v128.load(o2 + p), cv = v128.load(c + p), sv = v128.load(s + p);
    v128.store(o + p, f32x4.sub(f32x4.mul(a, cv), f32x4.mul(b, sv)));
    v128.store(o2 + p, f32x4.add(f32x4.mul(b, cv), f32x4.mul(a, sv)));
  }
  for (; j < half; j++) {
    const p = <usize>j << 2;
    const a = load<f32>(o + p), b = load<f32>(o2 + p), cv = load<f32>(c + p), sv = load<f32>(s + p);
    store<f32>(o + p, a * cv - b * sv);
    store<f32>(o2 + p, b * cv + a * sv);
  }
}

/**
 * out[r, j] = silu(u[r, j]) · u[r, F + j] for columns [j0, j1) of every row, rows in ascending order.
 * out may start where u starts (the model writes g over u): row r's outputs land on u's row r/2
 * (r even: its gate half, r odd: its up half) in the same columns, which this call has read
 * already (row 0: in the same step), and no other column range touches them. So threads split the
 * columns, never the rows.
 */
export function swigluCols(out: usize, u: usize, rows: i32, F: i32, j0: i32, j1: i32): void {
  const rb = <usize>(2 * F) << 2, ob = <usize>F << 2, f = <usize>F << 2;
  let g = u, o = out;
  for (let r = 0; r < rows; r++, g += rb, o += ob) {
    let j = j0;
    for (; j + 4 <= j1; j += 4) {
      const p = <usize>j << 2;
      v128.store(o + p, f32x4.mul(vsilu(v128.load(g + p)), v128.load(g + f + p)));
    }
    for (; j < j1; j++) {
      const p = <usize>j << 2;
      store<f32>(o + p, f32x4.extract_lane(vsilu(f32x4.splat(load<f32>(g + p))), 0) * load<f32>(g + f + p));
    }
  }
}

export function siluRange(out: usize, u: usize, i0: i32, i1: i32): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) { const p = <usize>i << 2; v128.store(out + p, vsilu(v128.load(u + p))); }
  for (; i < i1; i++) { const p = <usize>i << 2; store<f32>(out + p, f32x4.extract_lane(vsilu(f32x4.splat(load<f32>(u + p))), 0)); }
}

export function addRange(x: usize, y: usize, i0: i32, i1: i32): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) { const p = <usize>i << 2; v128.store(x + p, f32x4.add(v128.load(x + p), v128.load(y + p))); }
  for (; i < i1; i++) { const p = <usize>i << 2; store<f32>(x + p, load<f32>(x + p) + load<f32>(y + p)); }
}

/** Copy the k and v heads of S qkv rows into [Hkv, cap, hd] caches at positions P.. */
export function storeKV(kc: usize, vc: usize, qkv: usize, S: i32, P: i32, Q: i32, Hkv: i32, hd: i32, cap: i32): void {
  const W = (Q + 2 * Hkv) * hd, bytes = <usize>hd << 2;
  for (let s = 0; s < S; s++) {
    for (let h = 0; h < Hkv; h++) {
      const dst = (<usize>(h * cap + P + s) * <usize>hd) << 2;
      const row = qkv + ((<usize>s * <usize>W) << 2);
      memory.copy(kc + dst, row + ((<usize>(Q + h) * <usize>hd) << 2), bytes);
      memory.copy(vc + dst, row + ((<usize>(Q + Hkv + h) * <usize>hd) << 2), bytes);
    }
  }
}

/**
 * out[r] = dequantized table row ids[r] for r in [r0, r1), bit-identical to the reference: q4's
 * q·scale + min is evaluated in f64 and rounded once, as the JS reference does (the f32 product
 * would round twice without a fused multiply-add).
 */
export function embeddingRows(out: usize, dtype: i32, data: usize, scales: usize, mins: usize, D: i32, ids: usize, r0: i32, r1: i32): void {
  for (let r = r0; r < r1; r++) {
    const row = load<i32>(ids + (<usize>r << 2)), dst = out + ((<usize>r * <usize>D) << 2);
    if (dtype != 4) { dequantRow(dtype, data, scales, mins, D, row, 0, D, dst); continue; }
    const e0 = <usize>row * <usize>D, nb = <usize>(D >> 5);
    const meta = scales + <usize>row * q4MetaBytes(D), ds = load<f32>(meta), dm = load<f32>(meta, 4);
    for (let b: usize = 0; b < <usize>D; b += 32) {
      const blk = (e0 + b) >> 5, k = b >> 5;
      const sc = <f64>(<f32>load<u8>(meta + 8 + k) * ds), mn = <f64>(<f32>load<i8>(meta + 8 + nb + k) * dm);
      const src = data + (blk << 4), d = dst + (b << 2);
      for (let j: usize = 0; j < 16; j++) {
        const byte = <u32>load<u8>(src + j);
        store<f32>(d + (j << 2), <f32>(<f64>(byte & 15) * sc + mn));
        store<f32>(d + ((j + 16) << 2), <f32>(<f64>(byte >> 4) * sc + mn));
      }
    }
  }
}

/**
 * out[r] = the first index of row r's largest value (NaN never wins; a row of −∞ and NaN gives 0),
 * for rows [0, rows) of V values: each lane keeps its first largest value and index, in two sets
 * of lanes so the compares overlap; the lanes are merged preferring the smaller index on ties.
 */
export function argmaxRows(x: usize, rows: i32, V: i32, out: usize): void {
  const v8 = V & ~7;
  for (let r = 0; r < rows; r++) {
    const xr = x + ((<usize>r * <usize>V) << 2);
    let ma = f32x4.splat(-Infinity), mb = ma, ia = i32x4.splat(0), ib = ia;
    let ja = i32x4(0, 1, 2, 3), jb = i32x4(4, 5, 6, 7);
    const step = i32x4.splat(8);
    for (let j = 0; j < v8; j += 8) {
      const a = v128.load(xr + (<usize>j << 2)), b = v128.load(xr + (<usize>j << 2), 16);
      const ga = f32x4.gt(a, ma), gb = f32x4.gt(b, mb);
      ma = v128.bitselect(a, ma, ga); ia = v128.bitselect(ja, ia, ga);
      mb = v128.bitselect(b, mb, gb); ib = v128.bitselect(jb, ib, gb);
      ja = i32x4.add(ja, step); jb = i32x4.add(jb, step);
    }
    // lane by lane: the larger value, on a tie the smaller index
    let best = 0, bv: f32 = -Infinity;
    for (let l = 0; l < 8; l++) {
      const v = l < 4 ? f32x4.extract_lane(ma, 0) : f32x4.extract_lane(mb, 0);
      const i = l < 4 ? i32x4.extract_lane(ia, 0) : i32x4.extract_lane(ib, 0);
      if (v > bv || (v == bv && i < best)) { bv = v; best = i; }
      if (l < 4) { ma = v128.shuffle<f32>(ma, ma, 1, 2, 3, 0); ia = v128.shuffle<i32>(ia, ia, 1, 2, 3, 0); }
      else { mb = v128.shuffle<f32>(mb, mb, 1, 2, 3, 0); ib = v128.shuffle<i32>(ib, ib, 1, 2, 3, 0); }
    }
    for (let j = v8; j < V; j++) { const v = load<f32>(xr + (<usize>j << 2)); if (v > bv) { bv = v; best = j; } }
    store<i32>(out + (<usize>r << 2), best);
  }
}
