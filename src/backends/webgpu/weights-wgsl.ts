// WGSL decoders of the weight storage formats (src/backends/weight-format.ts), read in-kernel so
// that weights stay in their compact form on the GPU. One GPU buffer per weight, as 32-bit words:
//   f32   n words
//   bf16  n/2 words, element 2i in the low half of word i (little-endian Uint16Array)
//   f16   same packing, decoded with unpack2x16float (no `shader-f16` needed)
//   q8    n/4 words of int8 (element 4i + j in byte j), then n/64 words of f16 scales (block 2i in
//         the low half of word i), decoded exactly in integer arithmetic (wscale: a subnormal scale
//         is m·2⁻²⁴, a normal f32, so no implementation's flushing of subnormal halves touches it)
//   q4    n/8 words of nibbles (block b's 16 bytes at words 4b..4b+3: byte j holds element j in its
//         low nibble and j + 16 in its high one), then n/32 f32 scales, then n/32 f32 mins: the
//         host's coded scales and mins decoded on upload (gpuWeightParts), 6 bits per value here
// The body of a kernel with weight argument `w` gets, for a flat element index e (row·K + k):
//   wel_w(e) -> f32                       one element (any layout, any alignment)
//   wunit_w(u) -> array<vec4<f32>, E/4>   the E = WE elements of 16-byte unit u, in order
// where E is 4 (f32), 8 (bf16, f16), 16 (q8) or 32 (q4).

import type { ConvertDType, Weight } from '../backend.js';
import { q4MetaBytes } from '../weight-format.js';

/** Elements per 16-byte unit of each storage format. */
export const UNIT_ELEMS: Record<ConvertDType, number> = { f32: 4, bf16: 8, f16: 8, q8: 16, q4: 32 };

/** Words of GPU storage a weight of n elements takes (before rounding up to 16 bytes). */
export function weightWords(dtype: ConvertDType, n: number): number {
  switch (dtype) {
    case 'f32': return n;
    case 'bf16': case 'f16': return Math.ceil(n / 2);
    case 'q8': return n / 4 + n / 64;
    case 'q4': return n / 8 + n / 16;
  }
}

/** The host arrays of a weight in the order and layout its GPU buffer holds them (see above). */
export function gpuWeightParts(w: Weight): ArrayBufferView[] {
  if (w.dtype !== 'q4') return [w.data, ...(w.scales ? [w.scales] : [])];
  const meta = w.scales as Uint8Array, dv = new DataView(meta.buffer, meta.byteOffset, meta.byteLength);
  const nb = w.cols / 32, mb = q4MetaBytes(w.cols), sc = new Float32Array(w.rows * nb), mn = new Float32Array(w.rows * nb);
  for (let r = 0; r < w.rows; r++) {
    const o = r * mb, D = dv.getFloat32(o, true), M = dv.getFloat32(o + 4, true);
    for (let b = 0; b < nb; b++) {
      sc[r * nb + b] = D * meta[o + 8 + b];
      mn[r * nb + b] = M * ((meta[o + 8 + nb + b] << 24) >> 24);
    }
  }
  return [w.data, sc, mn];
}

/** The decoder functions for weight argument `w` (its element count is the parameter n_w). */
export function weightDecoders(w: string, dtype: ConvertDType): string {
  const E4 = UNIT_ELEMS[dtype] / 4;
  const unitType = `array<vec4<f32>, ${E4}>`;
  switch (dtype) {
    case 'f32':
      return `
fn wel_${w}(e: u32) -> f32 { return bitcast<f32>(wq_${w}(e)); }
fn wunit_${w}(u: u32) -> ${unitType} { return ${unitType}(bitcast<vec4<f32>>(wv_${w}(u))); }`;
    case 'bf16':
      return `
fn wel_${w}(e: u32) -> f32 {
  let x = wq_${w}(e >> 1u);
  return bitcast<f32>(select(x << 16u, x & 0xffff0000u, (e & 1u) == 1u));
}
fn bf2_${w}(x: u32) -> vec2<f32> { return bitcast<vec2<f32>>(vec2<u32>(x << 16u, x & 0xffff0000u)); }
fn wunit_${w}(u: u32) -> ${unitType} {
  let v = wv_${w}(u);
  return ${unitType}(vec4<f32>(bf2_${w}(v.x), bf2_${w}(v.y)), vec4<f32>(bf2_${w}(v.z), bf2_${w}(v.w)));
}`;
    case 'f16':
      return `
fn wel_${w}(e: u32) -> f32 {
  let v = unpack2x16float(wq_${w}(e >> 1u));
  return select(v.x, v.y, (e & 1u) == 1u);
}
fn wunit_${w}(u: u32) -> ${unitType} {
  let v = wv_${w}(u);
  return ${unitType}(vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y)), vec4<f32>(unpack2x16float(v.z), unpack2x16float(v.w)));
}`;
    case 'q8':
      return `
fn wscale_${w}(b: u32) -> f32 {
  let h = (wq_${w}((p.n_${w} >> 2u) + (b >> 1u)) >> (16u * (b & 1u))) & 0xffffu;
  let a = h & 0x7fffu;
  let v = select(bitcast<f32>((a << 13u) + 0x38000000u), f32(a) * 5.9604644775390625e-8, a < 0x400u);
  return select(v, -v, (h & 0x8000u) != 0u);
}
fn wel_${w}(e: u32) -> f32 {
  let x = bitcast<i32>(wq_${w}(e >> 2u) << (24u - 8u * (e & 3u))) >> 24u;
  return f32(x) * wscale_${w}(e >> 5u);
}
fn i8x4_${w}(x: u32) -> vec4<f32> {
  return vec4<f32>(vec4<i32>(bitcast<i32>(x << 24u), bitcast<i32>(x << 16u), bitcast<i32>(x << 8u), bitcast<i32>(x)) >> vec4<u32>(24u));
}
fn wunit_${w}(u: u32) -> ${unitType} {
  let v = wv_${w}(u);
  let s = wscale_${w}(u >> 1u);
  return ${unitType}(i8x4_${w}(v.x) * s, i8x4_${w}(v.y) * s, i8x4_${w}(v.z) * s, i8x4_${w}(v.w) * s);
}`;
    case 'q4':
      return `
fn wscale_${w}(b: u32) -> f32 { return bitcast<f32>(wq_${w}((p.n_${w} >> 3u) + b)); }
fn wmin_${w}(b: u32) -> f32 { return bitcast<f32>(wq_${w}((p.n_${w} >> 3u) + (p.n_${w} >> 5u) + b)); }
fn wel_${w}(e: u32) -> f32 {
  let b = e >> 5u;
  let j = e & 31u;
  let byte = j & 15u;
  let x = (wq_${w}(b * 4u + (byte >> 2u)) >> (8u * (byte & 3u) + select(0u, 4u, j >= 16u))) & 15u;
  return f32(x) * wscale_${w}(b) + wmin_${w}(b);
}
fn lo4_${w}(x: u32) -> vec4<f32> { return vec4<f32>((vec4<u32>(x) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(15u)); }
fn hi4_${w}(x: u32) -> vec4<f32> { return vec4<f32>((vec4<u32>(x) >> vec4<u32>(4u, 12u, 20u, 28u)) & vec4<u32>(15u)); }
fn wunit_${w}(u: u32) -> ${unitType} {
  let v = wv_${w}(u);
  let s = wscale_${w}(u);
  let m = wmin_${w}(u);
  return ${unitType}(lo4_${w}(v.x) * s + m, lo4_${w}(v.y) * s + m, lo4_${w}(v.z) * s + m, lo4_${w}(v.w) * s + m,
    hi4_${w}(v.x) * s + m, hi4_${w}(v.y) * s + m, hi4_${w}(v.z) * s + m, hi4_${w}(v.w) * s + m);
}`;
  }
}
