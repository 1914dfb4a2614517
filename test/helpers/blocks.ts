// Random block weights for kernel tests: random quantized codes and scale bytes, with the half (or
// f32) scale fields set to finite values sized so that decoded rows have roughly unit-variance dot
// products with unit-variance inputs (as a trained layer's would).

import type { Backend, BlockDType, Weight } from '../../src/backends/backend.js';
import { BLOCK_FORMATS } from '../../src/backends/weight-format.js';
import { f32ToF16 } from '../../src/core/dtype.js';
import type { Rng } from '../../src/core/rng.js';

/** Where each block keeps its scale fields: [byte offset, kind, size of one unit of it]. */
const FIELDS: Record<BlockDType, [number, 'f16' | 'f32', number][]> = {
  q8_0: [[0, 'f16', 1 / 64]],
  q4_0: [[0, 'f16', 1 / 4]],
  q4_1: [[0, 'f16', 1 / 4], [2, 'f16', -2]],
  q5_0: [[0, 'f16', 1 / 8]],
  q5_1: [[0, 'f16', 1 / 8], [2, 'f16', -2]],
  q4_k: [[0, 'f16', 1 / 128], [2, 'f16', 1 / 16]],
  q5_k: [[0, 'f16', 1 / 256], [2, 'f16', 1 / 16]],
  q6_k: [[208, 'f16', 1 / 1024]],
  q4_1_f32: [[0, 'f32', 1 / 4], [4, 'f32', -2]],
};

/** Stored bytes of a rows × cols weight of a block dtype with random contents. */
export function randomBlocks(rng: Rng, dtype: BlockDType, rows: number, cols: number): Uint8Array {
  const { elems, bytes } = BLOCK_FORMATS[dtype];
  const nb = (rows * cols) / elems;
  const out = new Uint8Array(nb * bytes);
  for (let i = 0; i < out.length; i++) out[i] = rng.int(256);
  const dv = new DataView(out.buffer);
  const unit = 1 / Math.sqrt(cols);
  for (let b = 0; b < nb; b++) {
    for (const [off, kind, size] of FIELDS[dtype]) {
      const v = size * unit * (0.5 + rng.next()) * (size > 0 && rng.next() < 0.2 ? -1 : 1);
      if (kind === 'f16') dv.setUint16(b * bytes + off, f32ToF16(v), true);
      else dv.setFloat32(b * bytes + off, v, true);
    }
  }
  return out;
}

/** A prepared weight on `be` holding `data` (stored blocks). */
export function blockWeightOn(be: Backend, dtype: BlockDType, rows: number, cols: number, data: Uint8Array): Weight {
  const w = be.allocWeight(dtype, rows, cols);
  (w.data as Uint8Array).set(data);
  be.prepareWeight(w);
  return w;
}
