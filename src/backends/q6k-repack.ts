// Q6_K repacked: the layout the wasm backend keeps GGUF Q6_K weights in once loaded (kernels/blocks.as
// BQ6_KR), 212 bytes per super-block of 256 values instead of 210:
//
//   4 groups of 64 values, 48 bytes each: A[16] B[16] C[16] | scales[16] (int8, unchanged) | d (f32)
//
// In a group, the 6-bit levels L0, L1, L2 are the low 6 bits of A, B, C, and L3's bits 0-1, 2-3,
// 4-5 are the top 2 bits of A, B, C; byte 4m + r of L_j is the level of value 16m + 4j + r of the
// group, so each 4-byte lane m of a level vector belongs to sub-block m (of 16 values, one scale).
// The int8 GEMV then unpacks 64 levels with 11 vector operations (Q6_K's split nibbles and high
// bits take about 5 per 16) and scales four sub-blocks with one vector (docs/cpu-decode.md); d is
// the half widened exactly (NaN payloads kept). Both directions are exact bit for bit, so the
// stored blocks can always be given back (unpackQ6K).

import { f16BitsToF32Bits, f32BitsToF16Bits } from '../core/dtype.js';

/** Bytes of a Q6_K super-block as stored, and repacked. */
export const Q6K_BYTES = 210;
export const Q6KR_BYTES = 212;

/** Level (0..63) of value i (0..255) of the stored super-block at s of b (ggml's dequantize_row_q6_K). */
function storedLevel(b: Uint8Array, s: number, i: number): number {
  const h = i >> 7, l = i & 127, k = l >> 5, j = l & 31;
  const q = b[s + 64 * h + 32 * (k & 1) + j], qh = b[s + 128 + 32 * h + j];
  return ((k >> 1 ? q >> 4 : q & 15) | (((qh >> (2 * k)) & 3) << 4));
}

/** Byte offset in a repacked super-block of level vector j's byte for value i, and which of A, B, C holds L_j (j < 3). */
function slot(i: number): { g: number; j: number; byte: number } {
  const g = i >> 6, v = i & 63, m = v >> 4, j = (v >> 2) & 3, r = v & 3;
  return { g, j, byte: 4 * m + r };
}

/**
 * Repack `nsb` super-blocks from `src` (Q6_K as stored) into `dst` (212 bytes each). They may share
 * memory when dst starts at or after src (the wasm backend repacks in place, into room allocWeight
 * left after the stored bytes): the super-blocks go last to first, and each is read before written.
 */
export function repackQ6K(src: Uint8Array, dst: Uint8Array, nsb: number): void {
  if (src.length < nsb * Q6K_BYTES || dst.length < nsb * Q6KR_BYTES) throw new RangeError('repackQ6K: buffers too short');
  if (src.buffer === dst.buffer && dst.byteOffset < src.byteOffset && dst.byteOffset + nsb * Q6KR_BYTES > src.byteOffset) {
    throw new RangeError('repackQ6K: an overlapping destination must not start before the source');
  }
  const dv = new DataView(dst.buffer, dst.byteOffset, nsb * Q6KR_BYTES);
  // each super-block copied out first: in place, its destination overlaps it
  const sb = new Uint8Array(Q6K_BYTES), ob = new Uint8Array(Q6KR_BYTES);
  for (let b = nsb - 1; b >= 0; b--) {
    const s = b * Q6K_BYTES, d = b * Q6KR_BYTES;
    sb.set(src.subarray(s, s + Q6K_BYTES));
    ob.fill(0);
    for (let i = 0; i < 256; i++) {
      const q = storedLevel(sb, 0, i), { g, j, byte } = slot(i), o = 48 * g + byte;
      if (j < 3) ob[o + 16 * j] |= q;
      else { ob[o] |= (q & 3) << 6; ob[o + 16] |= ((q >> 2) & 3) << 6; ob[o + 32] |= ((q >> 4) & 3) << 6; }
    }
    ob.set(sb.subarray(192, 208), 192);
    dst.set(ob.subarray(0, 208), d);
    dv.setUint32(d + 208, f16BitsToF32Bits(sb[208] | (sb[209] << 8)), true);
  }
}

/** The stored Q6_K bytes of `nsb` repacked super-blocks (repackQ6K's inverse; src and dst do not overlap). */
export function unpackQ6K(src: Uint8Array, dst: Uint8Array, nsb: number): void {
  if (src.length < nsb * Q6KR_BYTES || dst.length < nsb * Q6K_BYTES) throw new RangeError('unpackQ6K: buffers too short');
  const sv = new DataView(src.buffer, src.byteOffset, nsb * Q6KR_BYTES), dv = new DataView(dst.buffer, dst.byteOffset, nsb * Q6K_BYTES);
  for (let b = 0; b < nsb; b++) {
    const s = b * Q6KR_BYTES, d = b * Q6K_BYTES;
    dst.fill(0, d, d + 192);
    for (let i = 0; i < 256; i++) {
      const { g, j, byte } = slot(i), o = s + 48 * g + byte;
      const q = j < 3 ? src[o + 16 * j] & 63 : (src[o] >> 6) | ((src[o + 16] >> 6) << 2) | ((src[o + 32] >> 6) << 4);
      const h = i >> 7, l = i & 127, k = l >> 5, jj = l & 31;
      const qo = d + 64 * h + 32 * (k & 1) + jj;
      dst[qo] |= k >> 1 ? (q & 15) << 4 : q & 15;
      dst[d + 128 + 32 * h + jj] |= (q >> 4) << (2 * k);
    }
    dst.set(src.subarray(s + 192, s + 208), d + 192);
    dv.setUint16(d + 208, f32BitsToF16Bits(sv.getUint32(s + 208, true)), true);
  }
}
