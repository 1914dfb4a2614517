// The ggml block formats llama.cpp stores weights in, and their exact decoding to f32.
//
// This is the reference: every kernel that computes with GGUF weights as stored must produce the
// values decoded here. They are bit-identical to gguf-py's `gguf.quants.dequantize` (checked on
// files from llama.cpp's converter and llama-quantize in test/gguf-import.test.ts), which computes
// in float32 in this order:
//   Q8_0  x·d                Q4_0  d·(q−8)            Q5_0  d·(q−16)
//   Q4_1  (d·q) + m          Q5_1  (d·q) + m
//   Q4_K, Q5_K  (d·sc)·q − (dmin·m)   per 32-value sub-block, 6-bit sc and m
//   Q6_K  (d·sc)·(q−32)      per 16-value sub-block, int8 sc
// Every product and sum is rounded to float32 (Math.fround) exactly where numpy rounds it.
//
// Block layouts (ggml-common.h; all integers little-endian, d/dmin/m are IEEE halves):
//   Q8_0  34 B / 32:  d, int8 qs[32]
//   Q4_0  18 B / 32:  d, qs[16]            value j: low nibble of qs[j], value j+16: high nibble
//   Q4_1  20 B / 32:  d, m, qs[16]
//   Q5_0  22 B / 32:  d, qh u32, qs[16]    bit j of qh is bit 4 of value j
//   Q5_1  24 B / 32:  d, m, qh u32, qs[16]
//   Q4_K 144 B / 256: d, dmin, scales[12], qs[128]
//   Q5_K 176 B / 256: d, dmin, scales[12], qh[32], qs[128]
//   Q6_K 210 B / 256: ql[128], qh[64], int8 scales[16], d

import { OpenELMError } from './errors.js';
import { f16ToF32 } from './dtype.js';

/** ggml_type values (ggml.h). Only the types listed in GGML_BLOCK can be read. */
export enum GGMLType {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
  Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30,
}

/** Names of every ggml type, for messages about files holding types this project does not read. */
const GGML_TYPE_NAMES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1', 10: 'Q2_K',
  11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS',
  18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8',
  25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 30: 'BF16', 34: 'TQ1_0', 35: 'TQ2_0',
  39: 'MXFP4',
};

export function ggmlTypeName(t: number): string {
  return GGML_TYPE_NAMES[t] ?? `type ${t}`;
}

/** Values per block and bytes per block of each readable type. */
export const GGML_BLOCK: Record<GGMLType, { elems: number; bytes: number }> = {
  [GGMLType.F32]: { elems: 1, bytes: 4 },
  [GGMLType.F16]: { elems: 1, bytes: 2 },
  [GGMLType.BF16]: { elems: 1, bytes: 2 },
  [GGMLType.Q8_0]: { elems: 32, bytes: 34 },
  [GGMLType.Q4_0]: { elems: 32, bytes: 18 },
  [GGMLType.Q4_1]: { elems: 32, bytes: 20 },
  [GGMLType.Q5_0]: { elems: 32, bytes: 22 },
  [GGMLType.Q5_1]: { elems: 32, bytes: 24 },
  [GGMLType.Q4_K]: { elems: 256, bytes: 144 },
  [GGMLType.Q5_K]: { elems: 256, bytes: 176 },
  [GGMLType.Q6_K]: { elems: 256, bytes: 210 },
};

export function isReadableGGMLType(t: number): t is GGMLType {
  return Object.hasOwn(GGML_BLOCK, t);
}

const fr = Math.fround;
const f16 = (b: Uint8Array, o: number): number => f16ToF32(b[o] | (b[o + 1] << 8));
const u32 = (b: Uint8Array, o: number): number => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;

/** Q4_K / Q5_K: the 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes at `o`. */
function scaleMinK4(b: Uint8Array, o: number, j: number): [number, number] {
  if (j < 4) return [b[o + j] & 63, b[o + j + 4] & 63];
  return [(b[o + j + 4] & 0x0f) | ((b[o + j - 4] >> 6) << 4), (b[o + j + 4] >> 4) | ((b[o + j] >> 6) << 4)];
}

function blockQ8_0(b: Uint8Array, o: number, y: Float32Array, p: number): void {
  const d = f16(b, o);
  for (let j = 0; j < 32; j++) y[p + j] = ((b[o + 2 + j] << 24) >> 24) * d;
}

function blockQ4_0(b: Uint8Array, o: number, y: Float32Array, p: number): void {
  const d = f16(b, o);
  for (let j = 0; j < 16; j++) {
    const q = b[o + 2 + j];
    y[p + j] = d * ((q & 0x0f) - 8);
    y[p + j + 16] = d * ((q >> 4) - 8);
  }
}

function blockQ4_1(b: Uint8Array, o: number, y: Float32Array, p: number): void {
  const d = f16(b, o), m = f16(b, o + 2);
  for (let j = 0; j < 16; j++) {
    const q = b[o + 4 + j];
    y[p + j] = fr(d * (q & 0x0f)) + m;
    y[p + j + 16] = fr(d * (q >> 4)) + m;
  }
}

function blockQ5_0(b: Uint8Array, o: number, y: Float32Array, p: number): void {
  const d = f16(b, o), qh = u32(b, o + 2);
  for (let j = 0; j < 16; j++) {
    const q = b[o + 6 + j];
    y[p + j] = d * (((q & 0x0f) | (((qh >>> j) & 1) << 4)) - 16);
    y[p + j + 16] = d * (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16);
  }
}

function blockQ5_1(b: Uint8Array, o: number, y: Float32Array, p: number): void {
  const d = f16(b, o), m = f16(b, o + 2), qh = u32(b, o + 4);
  for (let j = 0; j < 16; j++) {
    const q = b[o + 8 + j];
    y[p + j] = fr(d * ((q & 0x0f) | (((qh >>> j) & 1) << 4))) + m;
    y[p + j + 16] = fr(d * ((q >> 4) | (((qh >>> (j + 16)) & 1) << 4))) + m;
  }
}

function blockQ4_K(b: Uint8Array, o: number, y: Float32Array, p: number): void {
  const d = f16(b, o), dmin = f16(b, o + 2);
  const qs = o + 16;
  for (let c = 0; c < 4; c++) {
    const [sc0, m0] = scaleMinK4(b, o + 4, 2 * c);
    const [sc1, m1] = scaleMinK4(b, o + 4, 2 * c + 1);
    const d0 = fr(d * sc0), dm0 = fr(dmin * m0), d1 = fr(d * sc1), dm1 = fr(dmin * m1);
    const q = qs + 32 * c, out = p + 64 * c;
    for (let l = 0; l < 32; l++) {
      y[out + l] = fr(d0 * (b[q + l] & 0x0f)) - dm0;
      y[out + 32 + l] = fr(d1 * (b[q + l] >> 4)) - dm1;
    }
  }
}

function blockQ5_K(b: Uint8Array, o: number, y: Float32Array, p: number): void {
  const d = f16(b, o), dmin = f16(b, o + 2);
  const qh = o + 16, qs = o + 48;
  for (let c = 0; c < 4; c++) {
    const [sc0, m0] = scaleMinK4(b, o + 4, 2 * c);
    const [sc1, m1] = scaleMinK4(b, o + 4, 2 * c + 1);
    const d0 = fr(d * sc0), dm0 = fr(dmin * m0), d1 = fr(d * sc1), dm1 = fr(dmin * m1);
    const q = qs + 32 * c, out = p + 64 * c, s0 = 2 * c, s1 = 2 * c + 1;
    for (let l = 0; l < 32; l++) {
      const h = b[qh + l];
      y[out + l] = fr(d0 * ((b[q + l] & 0x0f) | (((h >> s0) & 1) << 4))) - dm0;
      y[out + 32 + l] = fr(d1 * ((b[q + l] >> 4) | (((h >> s1) & 1) << 4))) - dm1;
    }
  }
}

function blockQ6_K(b: Uint8Array, o: number, y: Float32Array, p: number): void {
  const ql = o, qh = o + 128, sc = o + 192;
  const d = f16(b, o + 208);
  for (let h = 0; h < 2; h++) {
    for (let k = 0; k < 4; k++) {
      const lo = ql + 64 * h + 32 * (k & 1), shift = k < 2 ? 0 : 4;
      const out = p + 128 * h + 32 * k;
      for (let l = 0; l < 32; l++) {
        const s = (b[sc + 8 * h + 2 * k + (l >> 4)] << 24) >> 24;
        const q = (((b[lo + l] >> shift) & 0x0f) | (((b[qh + 32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
        y[out + l] = fr(d * s) * q;
      }
    }
  }
}

type BlockDecoder = (b: Uint8Array, o: number, y: Float32Array, p: number) => void;

const BLOCK_DECODERS: Partial<Record<GGMLType, BlockDecoder>> = {
  [GGMLType.Q8_0]: blockQ8_0, [GGMLType.Q4_0]: blockQ4_0, [GGMLType.Q4_1]: blockQ4_1,
  [GGMLType.Q5_0]: blockQ5_0, [GGMLType.Q5_1]: blockQ5_1, [GGMLType.Q4_K]: blockQ4_K,
  [GGMLType.Q5_K]: blockQ5_K, [GGMLType.Q6_K]: blockQ6_K,
};

/** Bytes that `n` values of `type` occupy (n a multiple of the block size). */
export function ggmlBytes(type: GGMLType, n: number): number {
  const b = GGML_BLOCK[type];
  if (n % b.elems !== 0) throw new OpenELMError('gguf', `${ggmlTypeName(type)} holds values in blocks of ${b.elems}; ${n} is not a multiple`);
  return (n / b.elems) * b.bytes;
}

/**
 * Decode `n` values of `type` stored at `src[srcOffset..]` into `dst[dstOffset..]`. `n` must be a
 * multiple of the block size (a row of a GGUF tensor always is).
 */
export function dequantize(type: GGMLType, src: Uint8Array, srcOffset: number, n: number, dst: Float32Array, dstOffset = 0): void {
  const need = ggmlBytes(type, n);
  if (srcOffset + need > src.length) throw new OpenELMError('gguf', `${ggmlTypeName(type)}: ${n} values need ${need} bytes, only ${src.length - srcOffset} given`);
  if (dstOffset + n > dst.length) throw new OpenELMError('gguf', `dequantize: destination holds ${dst.length - dstOffset} values, ${n} needed`);
  switch (type) {
    case GGMLType.F32: {
      const dv = new DataView(src.buffer, src.byteOffset + srcOffset, need);
      for (let i = 0; i < n; i++) dst[dstOffset + i] = dv.getFloat32(4 * i, true);
      return;
    }
    case GGMLType.F16:
      for (let i = 0; i < n; i++) dst[dstOffset + i] = f16(src, srcOffset + 2 * i);
      return;
    case GGMLType.BF16: {
      const u = new Uint32Array(dst.buffer, dst.byteOffset + 4 * dstOffset, n);
      for (let i = 0; i < n; i++) u[i] = (src[srcOffset + 2 * i] | (src[srcOffset + 2 * i + 1] << 8)) << 16;
      return;
    }
    default: {
      const dec = BLOCK_DECODERS[type];
      if (!dec) throw new OpenELMError('gguf', `cannot decode ggml type ${ggmlTypeName(type)}`);
      const { elems, bytes } = GGML_BLOCK[type];
      for (let k = 0, o = srcOffset, p = dstOffset; k < n; k += elems, o += bytes, p += elems) dec(src, o, dst, p);
    }
  }
}
