// f32 values to the bytes of a ggml tensor type (F32, F16, Q8_0, Q4_0, Q5_0), as llama.cpp stores them.
//
// Q8_0 follows ggml's reference quantizer (quantize_row_q8_0_ref): per block of 32 consecutive
// values, d = max|x| / 127 in f32, q = roundf(x / d) (halves away from zero), and the block is
// stored as {f16 d, int8 q[32]} = 34 bytes. Note the scale is stored in f16, unlike this project's
// q8 (backends/weight-format.ts) keeps this d in f16 too, with its levels fitted to the f16 d: a q8
// weight becomes Q8_0 by copying its bytes (q8ToQ8_0), with no second rounding.
//
// Q4_0 follows quantize_row_q4_0_ref, which llama-quantize runs when no importance matrix is given:
// per block of 32, m = the value of largest magnitude (the first one on a tie), d = m / -8 in f32,
// q = min(15, trunc(x·(1/d) + 8.5)), stored as {f16 d, qs[16]} = 18 bytes with value j in the low
// nibble of qs[j] and value j + 16 in its high nibble; the value is d·(q − 8). Dividing by −8 (not
// 7) puts m itself on q = 0 exactly and gives the other sign one level less. 1/d is taken from the
// f32 d, before d is rounded to f16, as ggml does.
//
// Q5_0 (quantize_row_q5_0_ref) is Q4_0 with 5 bits: d = m / -16, q = min(31, trunc(x·(1/d) + 16.5)),
// stored as {f16 d, u32 qh, qs[16]}: the low 4 bits as Q4_0's nibbles, bit 4 of value j in bit j of
// qh; the value is d·(q − 16).

import { f32ToF16 } from '../core/dtype.js';
import { OpenELMError } from '../core/errors.js';
import { GGMLType, tensorBytes } from '../io/gguf.js';

const fr = Math.fround;

/** C roundf: round half away from zero. */
function roundf(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

export function encodeQ8_0(src: Float32Array, dst: Uint8Array, dstOffset = 0): void {
  if (src.length % 32 !== 0) throw new OpenELMError('gguf', `Q8_0 needs a multiple of 32 values, got ${src.length}`);
  const dv = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  for (let b = 0, o = dstOffset; b < src.length; b += 32, o += 34) {
    let amax = 0;
    for (let j = 0; j < 32; j++) { const a = Math.abs(src[b + j]); if (a > amax) amax = a; }
    const d = fr(amax / 127);
    const id = d ? fr(1 / d) : 0;
    dv.setUint16(o, f32ToF16(d), true);
    for (let j = 0; j < 32; j++) dv.setInt8(o + 2 + j, roundf(fr(src[b + j] * id)));
  }
}

/**
 * Q8_0 blocks of q8 levels and their f16 scales (bits), as stored: block b = {scales[b], codes[32b..32b+32)}.
 * The values are the q8 weight's exactly.
 */
export function q8ToQ8_0(codes: Int8Array, scales: Uint16Array, dst: Uint8Array, dstOffset = 0): void {
  const nb = codes.length / 32;
  if (!Number.isInteger(nb) || scales.length < nb) throw new OpenELMError('gguf', `Q8_0 from q8 needs whole blocks of 32 and one scale each (${codes.length} values, ${scales.length} scales)`);
  const bytes = new Uint8Array(codes.buffer, codes.byteOffset, codes.length);
  for (let b = 0, o = dstOffset; b < nb; b++, o += 34) {
    dst[o] = scales[b] & 255; dst[o + 1] = scales[b] >>> 8;
    dst.set(bytes.subarray(b * 32, b * 32 + 32), o + 2);
  }
}

/** The value of largest magnitude in src[b, b + 32) (the first one on a tie), as ggml picks it. */
function blockMax(src: Float32Array, b: number): number {
  let amax = 0, max = 0;
  for (let j = 0; j < 32; j++) { const v = src[b + j], a = Math.abs(v); if (amax < a) { amax = a; max = v; } }
  return max;
}

export function encodeQ4_0(src: Float32Array, dst: Uint8Array, dstOffset = 0): void {
  if (src.length % 32 !== 0) throw new OpenELMError('gguf', `Q4_0 needs a multiple of 32 values, got ${src.length}`);
  const dv = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  for (let b = 0, o = dstOffset; b < src.length; b += 32, o += 18) {
    const d = fr(blockMax(src, b) / -8);
    const id = d ? fr(1 / d) : 0;
    dv.setUint16(o, f32ToF16(d), true);
    for (let j = 0; j < 16; j++) {
      const lo = Math.min(15, Math.trunc(fr(fr(src[b + j] * id) + 8.5)));
      const hi = Math.min(15, Math.trunc(fr(fr(src[b + j + 16] * id) + 8.5)));
      dst[o + 2 + j] = lo | (hi << 4);
    }
  }
}

export function encodeQ5_0(src: Float32Array, dst: Uint8Array, dstOffset = 0): void {
  if (src.length % 32 !== 0) throw new OpenELMError('gguf', `Q5_0 needs a multiple of 32 values, got ${src.length}`);
  const dv = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
  for (let b = 0, o = dstOffset; b < src.length; b += 32, o += 22) {
    const d = fr(blockMax(src, b) / -16);
    const id = d ? fr(1 / d) : 0;
    dv.setUint16(o, f32ToF16(d), true);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const lo = Math.min(31, Math.trunc(fr(fr(src[b + j] * id) + 16.5)));
      const hi = Math.min(31, Math.trunc(fr(fr(src[b + j + 16] * id) + 16.5)));
      dst[o + 6 + j] = (lo & 15) | ((hi & 15) << 4);
      qh |= ((lo >> 4) << j) | ((hi >> 4) << (j + 16));
    }
    dv.setUint32(o + 2, qh >>> 0, true);
  }
}

/** Encode `src` (ggml order, dims[0] contiguous) as `type`. Typed arrays are little-endian on every
 *  platform Node supports, which is GGUF's byte order. */
export function encodeTensor(src: Float32Array, type: GGMLType, dims: readonly number[]): Uint8Array {
  const out = new Uint8Array(tensorBytes(type, dims));
  switch (type) {
    case GGMLType.F32:
      out.set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
      return out;
    case GGMLType.F16: {
      const h = new Uint16Array(out.buffer);
      for (let i = 0; i < src.length; i++) h[i] = f32ToF16(src[i]);
      return out;
    }
    case GGMLType.Q8_0:
      encodeQ8_0(src, out);
      return out;
    case GGMLType.Q4_0:
      encodeQ4_0(src, out);
      return out;
    case GGMLType.Q5_0:
      encodeQ5_0(src, out);
      return out;
    default:
      throw new OpenELMError('gguf', `encoding to ggml type ${GGMLType[type] ?? type} is not supported`);
  }
}
