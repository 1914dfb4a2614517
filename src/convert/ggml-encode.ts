// f32 values to the bytes of a ggml tensor type (F32, F16, Q8_0), as llama.cpp stores them.
//
// Q8_0 follows ggml's reference quantizer (quantize_row_q8_0_ref): per block of 32 consecutive
// values, d = max|x| / 127 in f32, q = roundf(x / d) (halves away from zero), and the block is
// stored as {f16 d, int8 q[32]} = 34 bytes. Note the scale is stored in f16, unlike this project's
// in-memory q8 (f32 scale), so the two differ by the f16 rounding of d.

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
    default:
      throw new OpenELMError('gguf', `encoding to ggml type ${GGMLType[type] ?? type} is not supported`);
  }
}
