// Storage formats of linear weights and the conversions between them and f32.
// q8: blocks of 32 consecutive values along a row (K), int8 q with one f32 scale: x ≈ q·scale
//     (GGUF Q8_0 semantics: scale = max|x| / 127, q = round(x / scale)).
// q4: groups of 32 or 64 along a row (`Weight.group`) with an f16 scale and min: x ≈ q·scale + min,
//     q in 0..15 (GGUF Q4_1 semantics; group 64 is MLX's default 4-bit layout, 4.5 bits per weight
//     as Q4_0). The nibbles are stored per block of 32 whatever the group: byte j of a block's 16
//     bytes holds element j in its low nibble and element j+16 in its high nibble, so a SIMD kernel
//     unpacks a block with two masks; a group of 64 is two blocks sharing one scale and min.
//     scale and min are fitted per group (fitQ4Block) to the values weighted by how large the
//     activations they meet are, when the caller knows (the norm weight before a layer).
// Rows must be a multiple of 32 wide for q8/q4 (every OpenELM width is), and of 64 for q4 groups of 64.
// Block dtypes (GGUF's and MLX's, run as stored): each row is whole blocks, stored as the file
// holds them; decoding is core/ggml-quants.ts (bit-identical to gguf-py) plus q4_1_f32 here.

import { bf16ToF32, f32ToBf16, f16ToF32, f32ToF16 } from '../core/dtype.js';
import { OpenELMError } from '../core/errors.js';
import { GGMLType, dequantize } from '../core/ggml-quants.js';
import { BLOCK_DTYPES, type BlockDType, type Weight, type WeightDType } from './backend.js';

export const QBLOCK = 32;

/** Values per q4 scale and min. */
export type Q4Group = 32 | 64;

/** The q4 group a weight of `cols` columns gets unless told: 64 where rows are whole groups of 64. */
export function defaultQ4Group(cols: number): Q4Group { return cols % 64 === 0 ? 64 : 32; }

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
  alloc: (bytes: number, align: number) => ArrayBuffer | { buffer: ArrayBufferLike; byteOffset: number } = (b) => new ArrayBuffer(b),
  group?: Q4Group): Weight {
  const n = rows * cols;
  if ((dtype === 'q8' || dtype === 'q4') && cols % QBLOCK !== 0) {
    throw new OpenELMError('dtype', `${dtype} needs rows that are a multiple of ${QBLOCK} wide; this weight has ${cols} columns`);
  }
  const g = group ?? defaultQ4Group(cols);
  if (dtype === 'q4' && cols % g !== 0) throw new OpenELMError('dtype', `q4 groups of ${g} need rows that are a multiple of ${g} wide; this weight has ${cols} columns`);
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
      const r = region(n); const s = region((n / QBLOCK) * 4);
      return { dtype, rows, cols, data: new Int8Array(r.buffer, r.byteOffset, n), scales: new Float32Array(s.buffer, s.byteOffset, n / QBLOCK) };
    }
    case 'q4': {
      const r = region(n / 2); const s = region((n / g) * 2); const m = region((n / g) * 2);
      return { dtype, rows, cols, group: g, data: new Uint8Array(r.buffer, r.byteOffset, n / 2),
        scales: new Uint16Array(s.buffer, s.byteOffset, n / g), mins: new Uint16Array(m.buffer, m.byteOffset, n / g) };
    }
  }
}

/**
 * Fit one q4 group of n values (32 or 64): the scale s and min m, both halves, (and the levels
 * q[j] in 0..15) minimizing Σ imp[j]·(q[j]·s + m − x[j])², imp[j] being how much an error in value
 * j costs (1 each without `imp`). Starts from min/max (s = (max − min)/15, m = min, what Q4_1
 * does), then alternates the weighted least-squares s, m for the current levels with re-rounding
 * the levels, each candidate s, m rounded to f16 first (the levels are chosen for the stored
 * values), and keeps the best fit seen, so it is never worse than min/max. The error that matters
 * for a product is the error times the activation that meets the weight: a value whose column
 * meets activations 50× larger than the rest (an outlier channel) needs to be close, which
 * min/max, blind to it, leaves up to half a step off. Writes q[0..n) and returns [s, m] (f32
 * values that are exact halves).
 */
export function fitQ4Block(x: Float32Array, xo: number, imp: Float32Array | null, io: number, q: Uint8Array, n: number = QBLOCK): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < n; i++) { const v = x[xo + i]; if (v < lo) lo = v; if (v > hi) hi = v; }
  let bs = halfScale((hi - lo) / 15), bm = halfMin(lo);
  if (!Number.isFinite(bs) || !Number.isFinite(bm)) {
    throw new OpenELMError('dtype', `q4 stores its scales and mins as f16, which cannot hold a group spanning [${lo}, ${hi}]`);
  }
  if (bs === 0) { q.fill(0, 0, n); return [0, bm]; }
  const sums = fitSums, cur = fitScratch;
  let best = q4Levels(x, xo, imp, io, bs, bm, q, sums, n);
  for (let it = 0; it < FIT_ROUNDS; it++) {
    // weighted least squares for s, m given the levels (the sums q4Levels gathered for them)
    const [sw, sq, sqq, sx, sqx] = sums;
    const det = sw * sqq - sq * sq;
    if (!(det > 0)) break;
    const s = halfScale((sw * sqx - sq * sx) / det), m = halfMin((sqq * sx - sq * sqx) / det);
    if (!(s > 0) || !Number.isFinite(s) || !Number.isFinite(m)) break;
    const e = q4Levels(x, xo, imp, io, s, m, cur, sums, n);
    if (!(e < best)) break;
    best = e; bs = s; bm = m; q.set(cur.subarray(0, n));
  }
  return [bs, bm];
}

// q4 scales and mins are never subnormal halves, so that kernels can convert them with one
// multiply and no denormal operand (docs/cpu-decode.md, "f16 weights and subnormal halves").
const MIN_NORMAL_HALF = 2 ** -14;

/** A scale v > 0 as the nearest f16, at least the smallest normal half (its levels then still span the group); 0 stays 0. */
function halfScale(v: number): number { return v > 0 ? Math.max(MIN_NORMAL_HALF, f16ToF32(f32ToF16(v))) : 0; }

/** A min as the nearest f16 that is not subnormal (0 or ±2⁻¹⁴ for those). */
function halfMin(v: number): number {
  const h = f16ToF32(f32ToF16(v));
  if (h === 0 || Math.abs(h) >= MIN_NORMAL_HALF) return h;
  return Math.abs(v) < MIN_NORMAL_HALF / 2 ? 0 : Math.sign(v) * MIN_NORMAL_HALF;
}

/** Alternations of fitQ4Block: the first two take nearly all of the gain (measured on random and outlier models). */
const FIT_ROUNDS = 2;
const fitScratch = new Uint8Array(64);
const fitSums = new Float64Array(5);

/**
 * The nearest levels of x[xo..xo+n) for scale s and min m into out; returns their weighted squared
 * error and leaves in sums [Σw, Σw·q, Σw·q², Σw·x, Σw·q·x] for the next least-squares step.
 */
function q4Levels(x: Float32Array, xo: number, imp: Float32Array | null, io: number, s: number, m: number, out: Uint8Array, sums: Float64Array, n: number): number {
  const inv = 1 / s;
  let e = 0, sw = 0, sq = 0, sqq = 0, sx = 0, sqx = 0;
  for (let i = 0; i < n; i++) {
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
      const d = w.data as Int8Array, s = w.scales as Float32Array;
      for (let b = 0; b < n; b += QBLOCK) {
        let amax = 0;
        for (let i = 0; i < QBLOCK; i++) amax = Math.max(amax, Math.abs(src[b + i]));
        const scale = amax / 127;
        const inv = scale ? 1 / scale : 0;
        s[(off + b) / QBLOCK] = scale;
        for (let i = 0; i < QBLOCK; i++) d[off + b + i] = Math.round(src[b + i] * inv);
      }
      return;
    }
    case 'q4': {
      const d = w.data as Uint8Array, s = w.scales as Uint16Array, m = w.mins as Uint16Array, K = w.cols, G = q4Group(w);
      if (importance && importance.length !== K) throw new OpenELMError('usage', `q4 importance needs one value per column (${K}), got ${importance.length}`);
      const q = new Uint8Array(64);
      for (let b = 0; b < n; b += G) {
        const g = (off + b) / G;
        const [sc, mn] = fitQ4Block(src, b, importance ?? null, b % K, q, G);
        s[g] = f32ToF16(sc); m[g] = f32ToF16(mn);
        for (let h = 0; h < G; h += QBLOCK) {
          const base = ((off + b + h) / QBLOCK) * 16;
          for (let j = 0; j < 16; j++) d[base + j] = q[h + j] | (q[h + j + 16] << 4);
        }
      }
      return;
    }
  }
}

/** Decode row r of w into dst (length cols). */
export function weightRowToF32(w: Weight, r: number, dst: Float32Array): void {
  const K = w.cols, off = r * K;
  if (w.dtype === 'rows') { const { part, row } = partOfRow(w, r); weightRowToF32(part, row, dst); return; }
  if (isBlockDType(w.dtype)) { blockRowToF32(w.dtype, w.data as Uint8Array, r, K, dst); return; }
  switch (w.dtype) {
    case 'f32': dst.set((w.data as Float32Array).subarray(off, off + K)); return;
    case 'bf16': { const d = w.data as Uint16Array; for (let i = 0; i < K; i++) dst[i] = bf16ToF32(d[off + i]); return; }
    case 'f16': { const d = w.data as Uint16Array; for (let i = 0; i < K; i++) dst[i] = f16ToF32(d[off + i]); return; }
    case 'q8': {
      const d = w.data as Int8Array, s = w.scales as Float32Array;
      for (let i = 0; i < K; i++) dst[i] = d[off + i] * s[(off + i) / QBLOCK | 0];
      return;
    }
    case 'q4': {
      const d = w.data as Uint8Array, s = w.scales as Uint16Array, m = w.mins as Uint16Array, G = q4Group(w);
      for (let b = 0; b < K; b += QBLOCK) {
        const blk = (off + b) / QBLOCK, g = (off + b) / G | 0, sc = f16ToF32(s[g]), mn = f16ToF32(m[g]), base = blk * 16;
        for (let j = 0; j < 16; j++) {
          const byte = d[base + j];
          dst[b + j] = (byte & 15) * sc + mn;
          dst[b + j + 16] = (byte >> 4) * sc + mn;
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

/** The q4 group of a q4 weight (weights made before groups existed: 32). */
export function q4Group(w: Weight): Q4Group { return w.group ?? 32; }

/** Bytes of storage a weight takes (a 'rows' weight: its parts'). */
export function weightStorageBytes(w: Weight): number {
  if (w.dtype === 'rows') return w.parts!.reduce((n, p) => n + weightStorageBytes(p), 0);
  return weightBytes(w.dtype, w.rows * w.cols, w.dtype === 'q4' ? q4Group(w) : undefined);
}

/**
 * Bytes of storage n values of this dtype take (data + scales; for a block dtype n is whole blocks;
 * q4 with its group, 64 unless told: the default of rows that are whole groups of 64).
 */
export function weightBytes(dtype: WeightDType, n: number, group: Q4Group = 64): number {
  if (dtype === 'rows') throw new OpenELMError('usage', 'the size of a rows weight is its parts\' (weightStorageBytes)');
  if (isBlockDType(dtype)) return Math.ceil(n / BLOCK_FORMATS[dtype].elems) * BLOCK_FORMATS[dtype].bytes;
  switch (dtype) {
    case 'f32': return n * 4;
    case 'bf16': case 'f16': return n * 2;
    case 'q8': return n + (n / QBLOCK) * 4;
    case 'q4': return n / 2 + (n / group) * 4;
  }
}
