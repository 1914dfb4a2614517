// Q8_0 and Q4_0 regrouped: the layouts the wasm backend keeps GGUF Q8_0 and Q4_0 weights in once
// loaded (kernels/blocks.as BQ8_0R, BQ4_0R). The same bytes in another order, so the model stays in
// memory once and the stored blocks can always be given back (unpackQ8_0, unpackQ4_0):
//
//   Q8_0 → q8's layout, for the whole weight of nb blocks (34 bytes each as stored):
//     levels[32·nb] (int8, the blocks in order) | d[nb] (f16 bits)
//   Q4_0 → per row of nb blocks (18 bytes each as stored):
//     d[nb] (f16 bits) | nibbles[16·nb] (each block's 16 bytes, unchanged)
//   (the halves first, so a GEMV reads each row front to back)
//
// Stored, each block's half sits before its integers, so the GEMVs gathered four d's with four
// scalar loads and converted them exactly; regrouped, four d's are one 8-byte load, and a repacked
// Q8_0 weight runs on q8's own kernels (docs/cpu-decode.md, "Q8_0 and Q4_0 regrouped at load").

/** Bytes of a Q8_0 and a Q4_0 block of 32 values (the same regrouped). */
export const Q8_0_BYTES = 34;
export const Q4_0_BYTES = 18;

/** The view of src's first n bytes, copied when dst shares its memory (the regrouping moves bytes both ways). */
function source(src: Uint8Array, dst: Uint8Array, n: number): Uint8Array {
  const s = src.subarray(0, n);
  return s.buffer === dst.buffer ? s.slice() : s;
}

/** Regroup nb Q8_0 blocks from src into dst (q8's layout; dst may be src itself). */
export function repackQ8_0(src: Uint8Array, dst: Uint8Array, nb: number): void {
  const n = nb * Q8_0_BYTES;
  if (src.length < n || dst.length < n) throw new RangeError('repackQ8_0: buffers too short');
  const s = source(src, dst, n);
  for (let b = 0; b < nb; b++) {
    dst.set(s.subarray(b * 34 + 2, b * 34 + 34), b * 32);
    dst[32 * nb + 2 * b] = s[b * 34];
    dst[32 * nb + 2 * b + 1] = s[b * 34 + 1];
  }
}

/** The stored Q8_0 blocks of nb regrouped ones (repackQ8_0's inverse). */
export function unpackQ8_0(src: Uint8Array, dst: Uint8Array, nb: number): void {
  const n = nb * Q8_0_BYTES;
  if (src.length < n || dst.length < n) throw new RangeError('unpackQ8_0: buffers too short');
  const s = source(src, dst, n);
  unpackQ8_0Blocks(s.subarray(0, 32 * nb), s.subarray(32 * nb, n), dst, nb);
}

/**
 * nb stored Q8_0 blocks from their levels (32·nb int8) and halves (nb f16, 2·nb bytes) held apart,
 * as q8's layout holds them: any run of whole blocks, e.g. one row of a regrouped weight, whose
 * levels and halves lie far apart. dst must not overlap either.
 */
export function unpackQ8_0Blocks(levels: Uint8Array, halves: Uint8Array, dst: Uint8Array, nb: number): void {
  if (levels.length < 32 * nb || halves.length < 2 * nb || dst.length < nb * Q8_0_BYTES) throw new RangeError('unpackQ8_0Blocks: buffers too short');
  for (let b = 0; b < nb; b++) {
    dst[b * 34] = halves[2 * b];
    dst[b * 34 + 1] = halves[2 * b + 1];
    dst.set(levels.subarray(b * 32, b * 32 + 32), b * 34 + 2);
  }
}

/** Regroup `rows` rows of nb Q4_0 blocks from src into dst (dst may be src itself). */
export function repackQ4_0(src: Uint8Array, dst: Uint8Array, rows: number, nb: number): void {
  const rb = nb * Q4_0_BYTES, n = rows * rb;
  if (src.length < n || dst.length < n) throw new RangeError('repackQ4_0: buffers too short');
  const s = source(src, dst, n);
  for (let r = 0; r < rows; r++) {
    const o = r * rb;
    for (let b = 0; b < nb; b++) {
      dst.set(s.subarray(o + b * 18 + 2, o + b * 18 + 18), o + 2 * nb + b * 16);
      dst[o + 2 * b] = s[o + b * 18];
      dst[o + 2 * b + 1] = s[o + b * 18 + 1];
    }
  }
}

/** The stored Q4_0 blocks of `rows` regrouped rows of nb blocks (repackQ4_0's inverse). */
export function unpackQ4_0(src: Uint8Array, dst: Uint8Array, rows: number, nb: number): void {
  const rb = nb * Q4_0_BYTES, n = rows * rb;
  if (src.length < n || dst.length < n) throw new RangeError('unpackQ4_0: buffers too short');
  const s = source(src, dst, n);
  for (let r = 0; r < rows; r++) {
    const o = r * rb;
    for (let b = 0; b < nb; b++) {
      dst[o + b * 18] = s[o + 2 * b];
      dst[o + b * 18 + 1] = s[o + 2 * b + 1];
      dst.set(s.subarray(o + 2 * nb + b * 16, o + 2 * nb + b * 16 + 16), o + b * 18 + 2);
    }
  }
}

/**
 * What a block's f16 d is, as bits ORed over a weight (the flags its GEMVs run under; the kernels'
 * rules are blocks.as q8_0Nonfinite, q8_0Slow and q4_0Slow, which the regroupings and the load's scatter
 * apply while they move the halves; these serve the host's regrouping and weights that come
 * regrouped without flags):
 *   HALF_NONFINITE, an infinity or a NaN: q8's widenings give it a finite value where Q8_0's exact
 *     decoder gives ±∞ or NaN, so a Q8_0 weight with one stays as stored, on the Q8_0 kernels;
 *   HALF_SLOW, a half the fast widening (bits moved up 13, exponent rebiased by an integer add)
 *     does not give exactly: the weight's GEMVs take the exact widening instead.
 */
export const HALF_NONFINITE = 1;
export const HALF_SLOW = 2;

/**
 * One Q8_0 (or q8) half's bits. q8's fast widening (gemv.as q8Scales4) takes positive normal halves
 * only: llama-quantize's Q8_0 d = max|w|/127 is never negative, so a sign is left to the exact one.
 */
export function q8_0HalfBit(h: number): number {
  if (h >= 0x0400 && h < 0x7c00) return 0;
  return HALF_SLOW | ((h & 0x7c00) === 0x7c00 ? HALF_NONFINITE : 0);
}

/** What Q8_0's halves hs are (q8_0HalfBit ORed; blocks.as repackQ8_0InPlace reports the same). */
export function q8_0HalfBits(hs: Uint16Array): number {
  let bits = 0;
  for (let i = 0; i < hs.length; i++) bits |= q8_0HalfBit(hs[i]);
  return bits;
}

/**
 * What Q4_0's halves hs are: HALF_SLOW when one is not a normal half of either sign (zero,
 * subnormal, ±∞, NaN). llama-quantize's Q4_0 d = max/−8 (max the value of largest magnitude) is
 * negative in about half the blocks, so the regrouped Q4_0 GEMV's fast widening sign-extends
 * (blocks_int.as gemvQ4_0RPair). No HALF_NONFINITE: a Q4_0 weight stays regrouped whatever its d's.
 */
export function q4_0HalfBits(hs: Uint16Array): number {
  for (let i = 0; i < hs.length; i++) { const a = hs[i] & 0x7fff; if (a < 0x0400 || a >= 0x7c00) return HALF_SLOW; }
  return 0;
}
