// Storage formats of linear weights and the conversions between them and f32.
// q8: blocks of 32 consecutive values along a row (K), int8 q with one f32 scale: x ≈ q·scale
//     (GGUF Q8_0 semantics: scale = max|x| / 127, q = round(x / scale)).
// q4: blocks of 32 along a row with an f32 scale and min: x ≈ q·scale + min, q in 0..15
//     (GGUF Q4_1 semantics). Byte j of a block's 16 bytes holds element j in its low nibble and
//     element j+16 in its high nibble, so a SIMD kernel unpacks a block with two masks.
// Rows must be a multiple of 32 wide for q8/q4 (every OpenELM width is).

import { bf16ToF32, f32ToBf16, f16ToF32, f32ToF16 } from '../core/dtype.js';
import { OpenELMError } from '../core/errors.js';
import type { Weight, WeightDType } from './backend.js';

export const QBLOCK = 32;

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
  switch (dtype) {
    case 'f32': { const r = region(n * 4); return { dtype, rows, cols, data: new Float32Array(r.buffer, r.byteOffset, n) }; }
    case 'bf16':
    case 'f16': { const r = region(n * 2); return { dtype, rows, cols, data: new Uint16Array(r.buffer, r.byteOffset, n) }; }
    case 'q8': {
      const r = region(n); const s = region((n / QBLOCK) * 4);
      return { dtype, rows, cols, data: new Int8Array(r.buffer, r.byteOffset, n), scales: new Float32Array(s.buffer, s.byteOffset, n / QBLOCK) };
    }
    case 'q4': {
      const r = region(n / 2); const s = region((n / QBLOCK) * 4); const m = region((n / QBLOCK) * 4);
      return { dtype, rows, cols, data: new Uint8Array(r.buffer, r.byteOffset, n / 2),
        scales: new Float32Array(s.buffer, s.byteOffset, n / QBLOCK), mins: new Float32Array(m.buffer, m.byteOffset, n / QBLOCK) };
    }
  }
}

/** Write rows [r0, r0 + src.length / cols) of w from f32 values (converting or quantizing). */
export function setWeightRows(w: Weight, r0: number, src: Float32Array): void {
  const off = r0 * w.cols;
  const n = src.length;
  switch (w.dtype) {
    case 'f32': (w.data as Float32Array).set(src, off); return;
    case 'bf16': { const d = w.data as Uint16Array; for (let i = 0; i < n; i++) d[off + i] = f32ToBf16(src[i]); return; }
    case 'f16': { const d = w.data as Uint16Array; for (let i = 0; i < n; i++) d[off + i] = f32ToF16(src[i]); return; }
    case 'q8': {
      const d = w.data as Int8Array, s = w.scales!;
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
      const d = w.data as Uint8Array, s = w.scales!, m = w.mins!;
      for (let b = 0; b < n; b += QBLOCK) {
        let lo = Infinity, hi = -Infinity;
        for (let i = 0; i < QBLOCK; i++) { const v = src[b + i]; if (v < lo) lo = v; if (v > hi) hi = v; }
        const scale = (hi - lo) / 15;
        const inv = scale ? 1 / scale : 0;
        const blk = (off + b) / QBLOCK;
        s[blk] = scale; m[blk] = lo;
        const base = blk * 16;
        for (let j = 0; j < 16; j++) {
          const a = Math.min(15, Math.max(0, Math.round((src[b + j] - lo) * inv)));
          const c = Math.min(15, Math.max(0, Math.round((src[b + j + 16] - lo) * inv)));
          d[base + j] = a | (c << 4);
        }
      }
      return;
    }
  }
}

/** Decode row r of w into dst (length cols). */
export function weightRowToF32(w: Weight, r: number, dst: Float32Array): void {
  const K = w.cols, off = r * K;
  switch (w.dtype) {
    case 'f32': dst.set((w.data as Float32Array).subarray(off, off + K)); return;
    case 'bf16': { const d = w.data as Uint16Array; for (let i = 0; i < K; i++) dst[i] = bf16ToF32(d[off + i]); return; }
    case 'f16': { const d = w.data as Uint16Array; for (let i = 0; i < K; i++) dst[i] = f16ToF32(d[off + i]); return; }
    case 'q8': {
      const d = w.data as Int8Array, s = w.scales!;
      for (let i = 0; i < K; i++) dst[i] = d[off + i] * s[(off + i) / QBLOCK | 0];
      return;
    }
    case 'q4': {
      const d = w.data as Uint8Array, s = w.scales!, m = w.mins!;
      for (let b = 0; b < K; b += QBLOCK) {
        const blk = (off + b) / QBLOCK, sc = s[blk], mn = m[blk], base = blk * 16;
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

/** Bytes of storage a weight of this dtype takes (data + scales). */
export function weightBytes(dtype: WeightDType, n: number): number {
  switch (dtype) {
    case 'f32': return n * 4;
    case 'bf16': case 'f16': return n * 2;
    case 'q8': return n + (n / QBLOCK) * 4;
    case 'q4': return n / 2 + (n / QBLOCK) * 8;
  }
}
