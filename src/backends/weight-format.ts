// Storage formats of linear weights and the conversions between them and f32.
// q8: blocks of 32 consecutive values along a row (K), int8 q with one f16 scale: x ≈ q·d, 8.5
//     bits per value as GGUF Q8_0. d starts from Q8_0's: max|x| / 127 rounded to f32, then to f16
//     (nearest, ties to even), and moves to the f16 of a least-squares fit of the levels when that
//     leaves less Σ(x − d·q)² (q8Scale); the levels are fitted to the stored d, q = round(x / d)
//     clamped to ±127 (Q8_0 keeps its d and fits the levels to the f32 d before rounding it).
//     `scales` is a Uint16Array of the blocks' f16 bits, in a separate array from the levels. A
//     block whose d would overflow f16 (max|x| ≳ 65504·127) cannot be stored and is refused.
// q4: blocks of 32 along a row, x ≈ q·scale + min with q in 0..15 (GGUF Q4_1 semantics). Byte j of
//     a block's 16 bytes holds element j in its low nibble and element j+16 in its high nibble, so a
//     SIMD kernel unpacks a block with two masks. A block's scale and min are 8-bit codes of two f32
//     per row, as Q4_K codes its sub-blocks' scales and mins (6-bit, per 256 values): scale =
//     fr(D·sc) with sc in 0..255, min = fr(M·mc) with mc in −127..127 (fr: rounding to f32). That is
//     4.5 bits per value and 64 per row, against 6 for an f32 scale and min per block.
//     `scales` holds each row's D and M (f32, little-endian), its nb = cols/32 scale codes (u8), its
//     nb min codes (i8), padded to 4 bytes: q4MetaBytes(cols) per row. Each block is fitted
//     (fitQ4Block) to the values weighted by how large the activations they meet are, when the
//     caller knows (the norm weight before a layer), then coded (setWeightRows).
// Rows must be a multiple of 32 wide for q8/q4 (every OpenELM width is).
// Block dtypes (GGUF's and MLX's, run as stored): each row is whole blocks, stored as the file
// holds them; decoding is core/ggml-quants.ts (bit-identical to gguf-py) plus q4_1_f32 here.

import { bf16ToF32, f32ToBf16, f16ToF32, f32ToF16 } from '../core/dtype.js';
import { OpenELMError } from '../core/errors.js';
import { GGMLType, dequantize } from '../core/ggml-quants.js';
import { BLOCK_DTYPES, type BlockDType, type Weight, type WeightDType } from './backend.js';
import { Q4K_BYTES, Q4KR_BYTES, unpackQ4K } from './q4k-repack.js';
import { Q4_0_BYTES, Q8_0_BYTES, unpackQ4_0, unpackQ8_0Blocks } from './gguf-repack.js';
import { Q6K_BYTES, Q6KR_BYTES, unpackQ6K } from './q6k-repack.js';

export const QBLOCK = 32;

/** Bytes of one q4 row's scale data: D and M (f32), then the scale and min codes of its blocks, padded to 4. */
export function q4MetaBytes(cols: number): number { return 8 + ((cols / 16 + 3) & ~3); }

/** Values and bytes per block of each block dtype, and the ggml type it is (null: ours). */
export const BLOCK_FORMATS: Record<BlockDType, { elems: number; bytes: number; ggml: GGMLType | null }> = {
  q8_0: { elems: 32, bytes: 34, ggml: GGMLType.Q8_0 },
  q4_0: { elems: 32, bytes: 18, ggml: GGMLType.Q4_0 },
  q4_1: { elems: 32, bytes: 20, ggml: GGMLType.Q4_1 },
  q5_0: { elems: 32, bytes: 22, ggml: GGMLType.Q5_0 },
  q5_1: { elems: 32, bytes: 24, ggml: GGMLType.Q5_1 },
  q4_k: { elems: 256, bytes: 144, ggml: GGMLType.Q4_K },
  q5_k: { elems: 256, bytes: 176, ggml: GGMLType.Q5_K },
  q6_k: { elems: 256, bytes: 210, ggml: GGMLType.Q6_K },
  // Q4_1 with f32 d and m: d (f32), m (f32), qs[16]; value fr(d·q) + m
  q4_1_f32: { elems: 32, bytes: 24, ggml: null },
};

export function isBlockDType(d: string): d is BlockDType {
  return (BLOCK_DTYPES as readonly string[]).includes(d);
}

/** The block dtype that holds a ggml type as stored, or null (F32/F16/BF16 and types we do not run). */
export function blockDTypeOfGGML(t: number): BlockDType | null {
  for (const d of BLOCK_DTYPES) if (BLOCK_FORMATS[d].ggml === t) return d;
  return null;
}

/** Bytes of one row of `cols` values of a block dtype. */
export function blockRowBytes(dtype: BlockDType, cols: number): number {
  const f = BLOCK_FORMATS[dtype];
  if (cols % f.elems !== 0) throw new OpenELMError('dtype', `${dtype} stores rows in blocks of ${f.elems} values; a row of ${cols} is not whole blocks`);
  return (cols / f.elems) * f.bytes;
}

/** A 'rows' weight: `parts` (prepared, same cols) stacked by rows. */
export function rowsWeight(parts: Weight[]): Weight {
  if (parts.length === 0) throw new OpenELMError('usage', 'a rows weight needs at least one part');
  const cols = parts[0].cols;
  for (const p of parts) {
    if (p.cols !== cols) throw new OpenELMError('usage', `parts of a rows weight must have the same columns (${p.cols} vs ${cols})`);
    if (p.dtype === 'rows') throw new OpenELMError('usage', 'parts of a rows weight cannot themselves have parts');
  }
  return { dtype: 'rows', rows: parts.reduce((n, p) => n + p.rows, 0), cols, data: new Uint8Array(0), parts };
}

/** The part holding row r of a 'rows' weight, and r's index in it. */
export function partOfRow(w: Weight, r: number): { part: Weight; row: number } {
  let r0 = 0;
  for (const p of w.parts!) {
    if (r < r0 + p.rows) return { part: p, row: r - r0 };
    r0 += p.rows;
  }
  throw new OpenELMError('usage', `row ${r} is outside a weight of ${w.rows} rows`);
}

export function allocWeightStorage(dtype: WeightDType, rows: number, cols: number,
  alloc: (bytes: number, align: number) => ArrayBuffer | { buffer: ArrayBufferLike; byteOffset: number } = (b) => new ArrayBuffer(b)): Weight {
  const n = rows * cols;
  if ((dtype === 'q8' || dtype === 'q4') && cols % QBLOCK !== 0) {
    throw new OpenELMError('dtype', `${dtype} needs rows that are a multiple of ${QBLOCK} wide; this weight has ${cols} columns`);
  }
  const region = (bytes: number) => {
    const r = alloc(bytes, 16);
    return r instanceof ArrayBuffer ? { buffer: r as ArrayBufferLike, byteOffset: 0 } : r;
  };
  if (dtype === 'rows') throw new OpenELMError('usage', 'a rows weight is made from its parts (rowsWeight), not allocated');
  if (isBlockDType(dtype)) {
    const bytes = rows * blockRowBytes(dtype, cols);
    const r = region(bytes);
    return { dtype, rows, cols, data: new Uint8Array(r.buffer, r.byteOffset, bytes) };
  }
  switch (dtype) {
    case 'f32': { const r = region(n * 4); return { dtype, rows, cols, data: new Float32Array(r.buffer, r.byteOffset, n) }; }
    case 'bf16':
    case 'f16': { const r = region(n * 2); return { dtype, rows, cols, data: new Uint16Array(r.buffer, r.byteOffset, n) }; }
    case 'q8': {
      const r = region(n); const s = region((n / QBLOCK) * 2);
      return { dtype, rows, cols, data: new Int8Array(r.buffer, r.byteOffset, n), scales: new Uint16Array(s.buffer, s.byteOffset, n / QBLOCK) };
    }
    case 'q4': {
      const r = region(n / 2); const s = region(rows * q4MetaBytes(cols));
      return { dtype, rows, cols, data: new Uint8Array(r.buffer, r.byteOffset, n / 2), scales: new Uint8Array(s.buffer, s.byteOffset, rows * q4MetaBytes(cols)) };
    }
  }
}

/**
 * Fit one q4 block: the scale s and min m (and the levels q[j] in 0..15) minimizing
 * Σ imp[j]·(q[j]·s + m − x[j])², imp[j] being how much an error in value j costs (1 each without
 * `imp`). Starts from min/max (s = (max − min)/15, m = min, what Q4_1 does), then alternates the
 * weighted least-squares s, m for the current levels with re-rounding the levels, and keeps the
 * best fit seen, so it is never worse than min/max. The error that matters for a product is the
 * error times the activation that meets the weight: a block whose column meets activations 50×
 * larger than the rest (an outlier channel) needs that one value close, which min/max, blind to
 * it, leaves up to half a step off. Writes q into `q` and returns [s, m] (f32 values; setWeightRows
 * then codes them per row and fits the levels again for the coded values).
 */
export function fitQ4Block(x: Float32Array, xo: number, imp: Float32Array | null, io: number, q: Uint8Array): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < QBLOCK; i++) { const v = x[xo + i]; if (v < lo) lo = v; if (v > hi) hi = v; }
  let bs = Math.fround((hi - lo) / 15), bm = Math.fround(lo);
  if (bs === 0) { q.fill(0); return [bs, bm]; }
  const sums = fitSums, cur = fitScratch;
  let best = q4Levels(x, xo, imp, io, bs, bm, q, sums);
  for (let it = 0; it < FIT_ROUNDS; it++) {
    const [s, m] = lsFit(sums);
    if (!(s > 0) || !Number.isFinite(m)) break;
    const e = q4Levels(x, xo, imp, io, s, m, cur, sums);
    if (!(e < best)) break;
    best = e; bs = s; bm = m; q.set(cur);
  }
  return [bs, bm];
}

/** Weighted least-squares s, m (f32) for the levels whose sums q4Levels left in `sums`; [NaN, NaN] when singular. */
function lsFit(sums: Float64Array): [number, number] {
  const [sw, sq, sqq, sx, sqx] = sums;
  const det = sw * sqq - sq * sq;
  if (!(det > 0)) return [NaN, NaN];
  return [Math.fround((sw * sqx - sq * sx) / det), Math.fround((sqq * sx - sq * sqx) / det)];
}

/** Alternations of fitQ4Block: the first two take nearly all of the gain (measured on random and outlier models). */
const FIT_ROUNDS = 2;
const fitScratch = new Uint8Array(QBLOCK);
const fitSums = new Float64Array(5);
/** setWeightRows' q4 scratch: each block's fitted s, m of one row, and one block's levels. */
const q4Row = { fit: new Float32Array(0), q: new Uint8Array(QBLOCK) };

/** A q4 scale s ≥ 0 as a code of D (0..255; 0 only for s = 0). */
function scaleCode(s: number, D: number): number { return s > 0 && D > 0 ? Math.min(255, Math.max(1, Math.round(s / D))) : 0; }
/** A q4 min as a code of M (−127..127). */
function minCode(m: number, M: number): number { return M > 0 ? Math.min(127, Math.max(-127, Math.round(m / M))) : 0; }

/**
 * The nearest levels of x[xo..xo+32) for scale s and min m into out (all 0 when s = 0); returns their weighted squared
 * error and leaves in sums [Σw, Σw·q, Σw·q², Σw·x, Σw·q·x] for the next least-squares step.
 */
function q4Levels(x: Float32Array, xo: number, imp: Float32Array | null, io: number, s: number, m: number, out: Uint8Array, sums: Float64Array): number {
  const inv = s > 0 ? 1 / s : 0;
  let e = 0, sw = 0, sq = 0, sqq = 0, sx = 0, sqx = 0;
  for (let i = 0; i < QBLOCK; i++) {
    const v = x[xo + i], t = (v - m) * inv;
    // Math.round for t in [0, 15]: floor(t + 0.5)
    const l = t <= 0 ? 0 : t >= 15 ? 15 : (t + 0.5) | 0;
    out[i] = l;
    const d = l * s + m - v, wt = imp ? imp[io + i] : 1;
    e += wt * d * d;
    sw += wt; sq += wt * l; sqq += wt * l * l; sx += wt * v; sqx += wt * l * v;
  }
  sums[0] = sw; sums[1] = sq; sums[2] = sqq; sums[3] = sx; sums[4] = sqx;
  return e;
}

/**
 * Write rows [r0, r0 + src.length / cols) of w from f32 values (converting or quantizing).
 * `importance` (one non-negative value per column, e.g. the squared norm weight before the layer)
 * weights each column's quantization error for q4; without it every column counts the same.
 */
export function setWeightRows(w: Weight, r0: number, src: Float32Array, importance?: Float32Array): void {
  const off = r0 * w.cols;
  const n = src.length;
  if (w.dtype === 'rows') {
    for (let i = 0; i < n; i += w.cols) {
      const { part, row } = partOfRow(w, r0 + i / w.cols);
      setWeightRows(part, row, src.subarray(i, i + w.cols), importance);
    }
    return;
  }
  if (isBlockDType(w.dtype)) throw new OpenELMError('dtype', `${w.dtype} weights hold the blocks a file stores; they are not made from f32 values`);
  switch (w.dtype) {
    case 'f32': (w.data as Float32Array).set(src, off); return;
    case 'bf16': { const d = w.data as Uint16Array; for (let i = 0; i < n; i++) d[off + i] = f32ToBf16(src[i]); return; }
    case 'f16': { const d = w.data as Uint16Array; for (let i = 0; i < n; i++) d[off + i] = f32ToF16(src[i]); return; }
    case 'q8': {
      const d = w.data as Int8Array, s = w.scales as Uint16Array;
      for (let b = 0; b < n; b += QBLOCK) {
        let amax = 0;
        for (let i = 0; i < QBLOCK; i++) amax = Math.max(amax, Math.abs(src[b + i]));
        const h = q8Scale(src, b, amax);
        if ((h & 0x7c00) === 0x7c00) throw q8Overflow(r0 + Math.floor(b / w.cols), amax);
        s[(off + b) / QBLOCK] = h;
        // a zero scale (all values 0, or too small for a subnormal f16) leaves every level 0
        const sc = f16ToF32(h);
        for (let i = 0; i < QBLOCK; i++) d[off + b + i] = sc ? Math.max(-127, Math.min(127, Math.round(src[b + i] / sc))) : 0;
      }
      return;
    }
    case 'q4': {
      const d = w.data as Uint8Array, K = w.cols, nb = K / QBLOCK, mb = q4MetaBytes(K);
      if (importance && importance.length !== K) throw new OpenELMError('usage', `q4 importance needs one value per column (${K}), got ${importance.length}`);
      const meta = w.scales as Uint8Array, dv = new DataView(meta.buffer, meta.byteOffset, meta.byteLength);
      if (q4Row.fit.length < 2 * nb) q4Row.fit = new Float32Array(2 * nb);
      const fit = q4Row.fit, q = q4Row.q, cur = fitScratch, sums = fitSums;
      for (let r = 0; r < n / K; r++) {
        // every block fitted in f32, then D and M from the row's largest scale and |min|
        let smax = 0, mmax = 0;
        for (let b = 0; b < nb; b++) {
          const [sc, mn] = fitQ4Block(src, r * K + b * QBLOCK, importance ?? null, b * QBLOCK, q);
          fit[2 * b] = sc; fit[2 * b + 1] = mn;
          smax = Math.max(smax, sc); mmax = Math.max(mmax, Math.abs(mn));
        }
        const D = Math.fround(smax / 255), M = Math.fround(mmax / 127);
        if (!Number.isFinite(D) || !Number.isFinite(M)) throw new OpenELMError('dtype', `q4 cannot hold row ${r0 + r}: its values are not finite`);
        const row = r0 + r, mo = row * mb;
        dv.setFloat32(mo, D, true); dv.setFloat32(mo + 4, M, true);
        for (let b = 0; b < nb; b++) {
          // the levels again for the coded scale and min, then once more the least-squares s, m for
          // them, coded (kept when better)
          const xo = r * K + b * QBLOCK, io = b * QBLOCK, imp = importance ?? null;
          let sc = scaleCode(fit[2 * b], D), mc = minCode(fit[2 * b + 1], M);
          let best = q4Levels(src, xo, imp, io, Math.fround(D * sc), Math.fround(M * mc), q, sums);
          const [s1, m1] = lsFit(sums);
          if (s1 > 0 && Number.isFinite(m1)) {
            const sc1 = scaleCode(s1, D), mc1 = minCode(m1, M);
            const e = q4Levels(src, xo, imp, io, Math.fround(D * sc1), Math.fround(M * mc1), cur, sums);
            if (e < best) { best = e; sc = sc1; mc = mc1; q.set(cur); }
          }
          meta[mo + 8 + b] = sc;
          meta[mo + 8 + nb + b] = mc & 255;
          const base = (row * nb + b) * 16;
          for (let j = 0; j < 16; j++) d[base + j] = q[j] | (q[j + 16] << 4);
        }
      }
      return;
    }
  }
}

/**
 * Σ(x − d·q)² over the block at src[at..at+32) for q = round(x · r) clamped to ±127, r = 1/d, and in
 * q8Ls the least-squares scale Σx·q / Σq² of those levels, all in f32 arithmetic (each Math.fround of
 * one f64 operation on f32 values is the f32 operation: f64 has more than 2·24 + 2 bits) with eight
 * partial sums combined in a fixed order: quantize.as q8Fit runs the same operations four values at
 * a time. Errors below f32's range count as 0 (such blocks keep d).
 */
function q8Fit(src: Float32Array, at: number, d: number): number {
  const fr = Math.fround, r = fr(1 / d), a = q8Acc;
  a.fill(0);
  let qq = 0;
  for (let i = 0; i < QBLOCK; i++) {
    const x = src[at + i], q = Math.max(-127, Math.min(127, Math.round(fr(x * r)))), t = fr(x - fr(d * q));
    a[i & 7] = fr(a[i & 7] + fr(t * t));
    a[8 + (i & 7)] = fr(a[8 + (i & 7)] + fr(x * q));
    qq += q * q;
  }
  q8Ls = fr(fr(fr(fr(a[8] + a[12]) + fr(a[9] + a[13])) + fr(fr(a[10] + a[14]) + fr(a[11] + a[15]))) / qq);
  return fr(fr(fr(a[0] + a[4]) + fr(a[1] + a[5])) + fr(fr(a[2] + a[6]) + fr(a[3] + a[7])));
}
const q8Acc = new Float64Array(16);
let q8Ls = 0;

/**
 * A q8 block's scale (its f16 bits) for the values src[at..at+32) whose largest |value| is amax. It
 * starts from Q8_0's d, fr(amax / 127) rounded to f16; the least-squares scale of d's levels, rounded
 * to f16, replaces it when its own levels leave less squared error, and then once more the
 * least-squares scale of those (below amax / 127 the largest value may clamp at 127, which the error
 * counts). On random normal blocks this leaves 0.95 of Q8_0's squared error at about two error
 * evaluations per block (trying the 7 halves 4 steps below to 2 above d: 0.94 at 7). Zero, infinite
 * and NaN d are returned as they are; every other scale is a normal half, so the GEMV widens the
 * weight's scales with its fast integer add (gemv.as q8Scales4).
 */
export function q8Scale(src: Float32Array, at: number, amax: number): number {
  let h0 = f32ToF16(Math.fround(amax / 127));
  if (h0 === 0 || h0 >= 0x7c00) return h0;
  // Never a subnormal scale: one would send its whole weight down the GEMVs' exact widening (a few
  // more operations per 4 blocks, ~10% in cache; docs/cpu-decode.md). The smallest normal half,
  // 2⁻¹⁴, serves blocks whose largest |value| is under 127·2⁻¹⁴ ≈ 0.0078 with fewer levels.
  if (h0 < 0x400) h0 = 0x400;
  let err = q8Fit(src, at, f16ToF32(h0));
  const h1 = f32ToF16(q8Ls);
  if (h1 === h0 || h1 < 0x400 || h1 >= 0x7c00) return h0;
  const e1 = q8Fit(src, at, f16ToF32(h1));
  if (!(e1 < err)) return h0;
  err = e1;
  const h2 = f32ToF16(q8Ls);
  if (h2 === h0 || h2 === h1 || h2 < 0x400 || h2 >= 0x7c00) return h1;
  return q8Fit(src, at, f16ToF32(h2)) < err ? h2 : h1;
}

/** The one line for a q8 block whose scale f16 cannot hold (the loader prefixes the tensor). */
export function q8Overflow(row: number, amax: number): OpenELMError {
  return new OpenELMError('dtype', `q8 cannot hold row ${row}: a block's largest |value| ${amax} needs a scale above f16's 65504 (q8 holds |values| up to about 65504·127; load this weight as f32, bf16 or f16)`);
}

/** Decode row r of w into dst (length cols). */
export function weightRowToF32(w: Weight, r: number, dst: Float32Array): void {
  const K = w.cols, off = r * K;
  if (w.dtype === 'rows') { const { part, row } = partOfRow(w, r); weightRowToF32(part, row, dst); return; }
  if (w.layout === 'q4_k_r') {
    // one row's super-blocks back into the stored layout, decoded as stored
    const nsb = K / 256, row = new Uint8Array(nsb * Q4K_BYTES), d = w.data as Uint8Array;
    unpackQ4K(d.subarray(r * nsb * Q4KR_BYTES, (r + 1) * nsb * Q4KR_BYTES), row, nsb);
    blockRowToF32('q4_k', row, 0, K, dst);
    return;
  }
  if (w.layout === 'q6_k_r') {
    // the same for Q6_K repacked (q6k-repack.ts)
    const nsb = K / 256, row = new Uint8Array(nsb * Q6K_BYTES), d = w.data as Uint8Array;
    unpackQ6K(d.subarray(r * nsb * Q6KR_BYTES, (r + 1) * nsb * Q6KR_BYTES), row, nsb);
    blockRowToF32('q6_k', row, 0, K, dst);
    return;
  }
  if (w.layout === 'q8_0_r' || w.layout === 'q4_0_r') {
    // one row's blocks back into the stored layout (gguf-repack.ts), decoded as stored
    const nb = K / QBLOCK, d = w.data as Uint8Array, row = new Uint8Array(nb * (w.layout === 'q8_0_r' ? Q8_0_BYTES : Q4_0_BYTES));
    if (w.layout === 'q4_0_r') unpackQ4_0(d.subarray(r * row.length, (r + 1) * row.length), row, 1, nb);
    else {
      // q8's layout: the row's levels at r·K, its halves after all rows' levels
      unpackQ8_0Blocks(d.subarray(r * K, (r + 1) * K), d.subarray(w.rows * K + r * nb * 2, w.rows * K + (r + 1) * nb * 2), row, nb);
    }
    blockRowToF32(w.dtype as BlockDType, row, 0, K, dst);
    return;
  }
  if (isBlockDType(w.dtype)) { blockRowToF32(w.dtype, w.data as Uint8Array, r, K, dst); return; }
  switch (w.dtype) {
    case 'f32': dst.set((w.data as Float32Array).subarray(off, off + K)); return;
    case 'bf16': { const d = w.data as Uint16Array; for (let i = 0; i < K; i++) dst[i] = bf16ToF32(d[off + i]); return; }
    case 'f16': { const d = w.data as Uint16Array; for (let i = 0; i < K; i++) dst[i] = f16ToF32(d[off + i]); return; }
    case 'q8': {
      const d = w.data as Int8Array, s = w.scales as Uint16Array;
      for (let i = 0; i < K; i++) dst[i] = d[off + i] * f16ToF32(s[(off + i) / QBLOCK | 0]);
      return;
    }
    case 'q4': {
      const d = w.data as Uint8Array, meta = w.scales as Uint8Array, nb = K / QBLOCK, mo = r * q4MetaBytes(K);
      const dv = new DataView(meta.buffer, meta.byteOffset, meta.byteLength);
      const D = dv.getFloat32(mo, true), M = dv.getFloat32(mo + 4, true);
      for (let b = 0; b < nb; b++) {
        const sc = Math.fround(D * meta[mo + 8 + b]), mn = Math.fround(M * ((meta[mo + 8 + nb + b] << 24) >> 24)), base = (r * nb + b) * 16;
        for (let j = 0; j < 16; j++) {
          const byte = d[base + j];
          dst[b * QBLOCK + j] = (byte & 15) * sc + mn;
          dst[b * QBLOCK + j + 16] = (byte >> 4) * sc + mn;
        }
      }
      return;
    }
  }
}

/** Decode row r (cols values) of a block weight's stored bytes into dst, exactly. */
export function blockRowToF32(dtype: BlockDType, data: Uint8Array, r: number, cols: number, dst: Float32Array): void {
  const rb = blockRowBytes(dtype, cols), o = r * rb;
  const t = BLOCK_FORMATS[dtype].ggml;
  if (t !== null) { dequantize(t, data, o, cols, dst, 0); return; }
  // q4_1_f32
  const dv = new DataView(data.buffer, data.byteOffset + o, rb);
  for (let b = 0, p = 0; b < cols; b += 32, p += 24) {
    const d = dv.getFloat32(p, true), m = dv.getFloat32(p + 4, true);
    for (let j = 0; j < 16; j++) {
      const q = data[o + p + 8 + j];
      dst[b + j] = Math.fround(d * (q & 15)) + m;
      dst[b + j + 16] = Math.fround(d * (q >> 4)) + m;
    }
  }
}

/** Bytes of storage a weight takes (a 'rows' weight: its parts'). */
export function weightStorageBytes(w: Weight): number {
  if (w.dtype === 'rows') return w.parts!.reduce((n, p) => n + weightStorageBytes(p), 0);
  if (w.layout === 'q4_k_r') return (w.rows * w.cols / 256) * Q4KR_BYTES;
  if (w.layout === 'q6_k_r') return (w.rows * w.cols / 256) * Q6KR_BYTES;
  return weightBytes(w.dtype, w.rows * w.cols, w.cols);
}

/**
 * Bytes of storage n values of this dtype take (data + scales; for a block dtype n is whole blocks;
 * q4 with rows of `cols` values, or without the 64 bits per row when cols is not given).
 */
export function weightBytes(dtype: WeightDType, n: number, cols?: number): number {
  if (dtype === 'rows') throw new OpenELMError('usage', 'the size of a rows weight is its parts\' (weightStorageBytes)');
  if (isBlockDType(dtype)) return Math.ceil(n / BLOCK_FORMATS[dtype].elems) * BLOCK_FORMATS[dtype].bytes;
  switch (dtype) {
    case 'f32': return n * 4;
    case 'bf16': case 'f16': return n * 2;
    case 'q8': return n + (n / QBLOCK) * 2;
    case 'q4': return cols ? n / 2 + (n / cols) * q4MetaBytes(cols) : n / 2 + n / 16;
  }
}
