// Q4_K repacked: the layout the wasm backend keeps GGUF Q4_K weights in once loaded (kernels/blocks.as
// BQ4_KR), 152 bytes per super-block of 256 values instead of 144:
//
//   d (f32) | dmin (f32) | sc[8] (bytes) | m[8] (bytes) | qs[128] (Q4_K's nibbles, unchanged)
//
// The same values: each half widened exactly to f32 (NaN payloads kept), the eight 6-bit scales and
// eight 6-bit mins that Q4_K packs into 12 bytes (ggml's get_scale_min_k4) one byte each. The int8
// GEMV then reads d, dmin and the scales with a load and a few widenings instead of two exact half
// conversions and a byte shuffle (docs/cpu-decode.md). Both directions are exact bit for bit, so
// the stored blocks can always be given back (unpackQ4K).

import { f16BitsToF32Bits, f32BitsToF16Bits } from '../core/dtype.js';

/** Bytes of a Q4_K super-block as stored, and repacked. */
export const Q4K_BYTES = 144;
export const Q4KR_BYTES = 152;

/**
 * Repack `nsb` super-blocks from `src` (Q4_K as stored) into `dst` (152 bytes each). They may share
 * memory when dst starts at or after src (the wasm backend repacks in place, into room allocWeight
 * left after the stored bytes): the super-blocks go last to first, and each is read before written.
 */
export function repackQ4K(src: Uint8Array, dst: Uint8Array, nsb: number): void {
  if (src.length < nsb * Q4K_BYTES || dst.length < nsb * Q4KR_BYTES) throw new RangeError('repackQ4K: buffers too short');
  if (src.buffer === dst.buffer && dst.byteOffset < src.byteOffset && dst.byteOffset + nsb * Q4KR_BYTES > src.byteOffset) {
    throw new RangeError('repackQ4K: an overlapping destination must not start before the source');
  }
  const sv = new DataView(src.buffer, src.byteOffset, nsb * Q4K_BYTES), dv = new DataView(dst.buffer, dst.byteOffset, nsb * Q4KR_BYTES);
  // one view over both when they share a buffer, so the nibbles move by copyWithin (a memmove)
  const same = src.buffer === dst.buffer, lo = Math.min(src.byteOffset, dst.byteOffset);
  const both = same ? new Uint8Array(dst.buffer, lo, Math.max(src.byteOffset + nsb * Q4K_BYTES, dst.byteOffset + nsb * Q4KR_BYTES) - lo) : dst;
  const so = src.byteOffset - lo, dso = dst.byteOffset - lo;
  const q = new Uint8Array(12);
  for (let b = nsb - 1; b >= 0; b--) {
    const s = b * Q4K_BYTES, d = b * Q4KR_BYTES;
    const hd = sv.getUint16(s, true), hm = sv.getUint16(s + 2, true);
    for (let i = 0; i < 12; i++) q[i] = src[s + 4 + i];
    if (same) both.copyWithin(dso + d + 24, so + s + 16, so + s + 144);
    else dst.set(src.subarray(s + 16, s + 144), d + 24);
    dv.setUint32(d, f16BitsToF32Bits(hd), true);
    dv.setUint32(d + 4, f16BitsToF32Bits(hm), true);
    for (let j = 0; j < 4; j++) {
      dst[d + 8 + j] = q[j] & 63;
      dst[d + 16 + j] = q[j + 4] & 63;
      dst[d + 12 + j] = (q[j + 8] & 15) | ((q[j] >> 6) << 4);
      dst[d + 20 + j] = (q[j + 8] >> 4) | ((q[j + 4] >> 6) << 4);
    }
  }
}

/** The stored Q4_K bytes of `nsb` repacked super-blocks (repackQ4K's inverse; src and dst do not overlap). */
export function unpackQ4K(src: Uint8Array, dst: Uint8Array, nsb: number): void {
  if (src.length < nsb * Q4KR_BYTES || dst.length < nsb * Q4K_BYTES) throw new RangeError('unpackQ4K: buffers too short');
  const sv = new DataView(src.buffer, src.byteOffset, nsb * Q4KR_BYTES), dv = new DataView(dst.buffer, dst.byteOffset, nsb * Q4K_BYTES);
  for (let b = 0; b < nsb; b++) {
    const s = b * Q4KR_BYTES, d = b * Q4K_BYTES;
    dv.setUint16(d, f32BitsToF16Bits(sv.getUint32(s, true)), true);
    dv.setUint16(d + 2, f32BitsToF16Bits(sv.getUint32(s + 4, true)), true);
    for (let j = 0; j < 4; j++) {
      const sc = src[s + 8 + j], sc4 = src[s + 12 + j], m = src[s + 16 + j], m4 = src[s + 20 + j];
      dst[d + 4 + j] = (sc & 63) | ((sc4 >> 4) << 6);
      dst[d + 8 + j] = (m & 63) | ((m4 >> 4) << 6);
      dst[d + 12 + j] = (sc4 & 15) | ((m4 & 15) << 4);
    }
    dst.set(src.subarray(s + 24, s + 152), d + 16);
  }
}
