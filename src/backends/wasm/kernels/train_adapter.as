// Kernels of the adapter ops (LoRA / DoRA on a frozen base, src/model/adapted.ts): per-column
// scaling, column-wise dot products, hashed dropout masks and DoRA's magnitude scale. The products
// with the base weight and the low-rank factors go through the training GEMM.
//
// Determinism: every output element is written by one chunk, and a column's dot product runs over
// the rows in order in f64 inside that chunk, so nothing depends on the thread count.

/** Column block of the column-dot kernel: its f64 accumulators live in the thread's scratch. */
export const COLDOT_BLOCK: i32 = 256;

/** out[i] (+)= x[i] · s[i mod cols] for flat indices [i0, i1). */
export function mulColumns(out: usize, x: usize, s: usize, cols: i32, acc: bool, i0: i32, i1: i32): void {
  let i = i0;
  while (i < i1) {
    const r = i / cols, j0 = i - r * cols, j1 = min(cols, j0 + (i1 - i));
    const ro = <usize>r * <usize>cols;
    let j = j0;
    for (; j + 4 <= j1; j += 4) {
      const o = (ro + <usize>j) << 2;
      const p = f32x4.mul(v128.load(x + o), v128.load(s + (<usize>j << 2)));
      v128.store(out + o, acc ? f32x4.add(v128.load(out + o), p) : p);
    }
    for (; j < j1; j++) {
      const o = (ro + <usize>j) << 2;
      const p = load<f32>(x + o) * load<f32>(s + (<usize>j << 2));
      store<f32>(out + o, acc ? load<f32>(out + o) + p : p);
    }
    i += j1 - j0;
  }
}

/** out[j] (+)= Σ_r a[r, j]·b[r, j] for columns [j0, j1), rows in order, products and sums in f64. */
export function columnDot(out: usize, a: usize, b: usize, rows: i32, cols: i32, acc: bool, scratch: usize, j0: i32, j1: i32): void {
  for (let jb = j0; jb < j1; jb += COLDOT_BLOCK) {
    const je = min(j1, jb + COLDOT_BLOCK), w = je - jb;
    memory.fill(scratch, 0, <usize>w << 3);
    for (let r = 0; r < rows; r++) {
      const ro = (<usize>r * <usize>cols + <usize>jb) << 2;
      let j = 0;
      for (; j + 4 <= w; j += 4) {
        const o = ro + (<usize>j << 2), so = scratch + (<usize>j << 3);
        const va = v128.load(a + o), vb = v128.load(b + o);
        const lo = f64x2.mul(f64x2.promote_low_f32x4(va), f64x2.promote_low_f32x4(vb));
        const hi = f64x2.mul(f64x2.promote_low_f32x4(v128.shuffle<f32>(va, va, 2, 3, 0, 1)), f64x2.promote_low_f32x4(v128.shuffle<f32>(vb, vb, 2, 3, 0, 1)));
        v128.store(so, f64x2.add(v128.load(so), lo));
        v128.store(so + 16, f64x2.add(v128.load(so + 16), hi));
      }
      for (; j < w; j++) {
        const o = ro + (<usize>j << 2), so = scratch + (<usize>j << 3);
        store<f64>(so, load<f64>(so) + <f64>load<f32>(a + o) * <f64>load<f32>(b + o));
      }
    }
    for (let j = 0; j < w; j++) {
      const o = out + (<usize>(jb + j) << 2);
      const v = load<f64>(scratch + (<usize>j << 3));
      store<f32>(o, <f32>(acc ? <f64>load<f32>(o) + v : v));
    }
  }
}

@inline function lowbias32(x: v128): v128 {
  x = v128.xor(x, i32x4.shr_u(x, 16));
  x = i32x4.mul(x, i32x4.splat(0x7feb352d));
  x = v128.xor(x, i32x4.shr_u(x, 15));
  x = i32x4.mul(x, i32x4.splat(<i32>0x846ca68b));
  return v128.xor(x, i32x4.shr_u(x, 16));
}

/**
 * Dropout multipliers for [i0, i1) (backends/dropout.ts): keep when
 * lowbias32(lowbias32(i + s) ^ s) ≥ threshold, with s = lowbias32(seed) computed by the caller.
 */
export function dropoutMask(out: usize, s: u32, threshold: u32, kept: f32, dropped: f32, i0: i32, i1: i32): void {
  const sv = i32x4.splat(<i32>s), tv = i32x4.splat(<i32>threshold);
  const kv = f32x4.splat(kept), dv = f32x4.splat(dropped);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const idx = i32x4.add(i32x4.splat(i), i32x4(0, 1, 2, 3));
    const h = lowbias32(v128.xor(lowbias32(i32x4.add(idx, sv)), sv));
    v128.store(out + (<usize>i << 2), v128.bitselect(kv, dv, i32x4.ge_u(h, tv)));
  }
  for (; i < i1; i++) {
    const h = i32x4.extract_lane(lowbias32(v128.xor(lowbias32(i32x4.splat(i + <i32>s)), sv)), 0);
    store<f32>(out + (<usize>i << 2), <u32>h >= threshold ? kept : dropped);
  }
}

/** invN = 1 / sqrt(base2 + coef·q), c = m·invN over [i0, i1), in f64. */
export function doraScale(c: usize, invN: usize, m: usize, base2: usize, q: usize, coef: f64, i0: i32, i1: i32): void {
  for (let i = i0; i < i1; i++) {
    const o = <usize>i << 2;
    const inv = 1.0 / Math.sqrt(<f64>load<f32>(base2 + o) + coef * <f64>load<f32>(q + o));
    store<f32>(invN + o, <f32>inv);
    store<f32>(c + o, <f32>(<f64>load<f32>(m + o) * inv));
  }
}
