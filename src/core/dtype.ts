// Scalar format conversions shared by io, engine and training.
// bf16 -> f32 is an exact 16-bit shift; f32 -> bf16 rounds to nearest even (as PyTorch does).

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

export function f32ToBf16(x: number): number {
  f32[0] = x;
  const u = u32[0];
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x007fffff) !== 0) return (u >>> 16) | 0x40; // keep NaN a NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** IEEE half bits to a number (table lookup; the table is built from f16ToF32Exact). */
export function f16ToF32(h: number): number {
  return F16_TABLE[h & 0xffff];
}

function f16ToF32Exact(h: number): number {
  const s = (h & 0x8000) ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 5.9604644775390625e-8; // 2^-24
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function f32ToF16(x: number): number {
  f32[0] = x;
  const u = u32[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

/** Bulk conversions (hot in loaders): typed-array loops, no per-element allocation. */
export function bf16ArrayToF32(src: Uint16Array, dst: Float32Array, dstOffset = 0): void {
  const d = new Uint32Array(dst.buffer, dst.byteOffset + dstOffset * 4, src.length);
  for (let i = 0; i < src.length; i++) d[i] = src[i] << 16;
}

/**
 * dst[i] = src[i] rounded to bf16 (f32ToBf16, then back to f32) for i < n: the operands of a
 * mixed-precision product. A Float64Array is rounded to f32 first.
 */
export function roundToBf16(dst: Float32Array | Float64Array, src: Float32Array | Float64Array, n: number): void {
  if (dst instanceof Float32Array && src instanceof Float32Array) {
    const s = new Uint32Array(src.buffer, src.byteOffset, n), d = new Uint32Array(dst.buffer, dst.byteOffset, n);
    for (let i = 0; i < n; i++) {
      const u = s[i];
      d[i] = (u & 0x7fffffff) > 0x7f800000 ? ((u >>> 16) | 0x40) << 16 : ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
    }
    return;
  }
  for (let i = 0; i < n; i++) dst[i] = bf16ToF32(f32ToBf16(src[i]));
}

export function f16ArrayToF32(src: Uint16Array, dst: Float32Array, dstOffset = 0): void {
  for (let i = 0; i < src.length; i++) dst[dstOffset + i] = F16_TABLE[src[i]];
}

const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let i = 0; i < 65536; i++) t[i] = f16ToF32Exact(i);
  return t;
})();

/** The f32 bits of an IEEE half's bits, exactly (subnormal halves normalized; NaN payloads kept), for layouts that hold a half as f32 and give it back. */
export function f16BitsToF32Bits(h: number): number {
  const s = (h & 0x8000) << 16, e = (h >> 10) & 31, m = h & 0x3ff;
  if (e === 31) return (s | 0x7f800000 | (m << 13)) >>> 0;
  if (e !== 0) return (s | ((e + 112) << 23) | (m << 13)) >>> 0;
  if (m === 0) return s >>> 0;
  let ee = 113, mm = m;
  while (!(mm & 0x400)) { mm <<= 1; ee--; }
  return (s | (ee << 23) | ((mm & 0x3ff) << 13)) >>> 0;
}

/** The half's bits back from f16BitsToF32Bits's f32 bits. */
export function f32BitsToF16Bits(b: number): number {
  const s = (b >>> 16) & 0x8000, e = (b >>> 23) & 255, m = b & 0x7fffff;
  if (e === 255) return s | 0x7c00 | (m >>> 13);
  if (e === 0) return s;
  if (e >= 113) return s | ((e - 112) << 10) | (m >>> 13);
  return s | (((0x800000 | m) >>> 13) >>> (113 - e));
}
