// Finding NaN and infinite values in weight buffers by their bit patterns (exponent all ones), so a
// corrupt or diverged checkpoint is named at load time instead of generating garbage. Integer tests
// on the raw bits cost about one memory pass, cheap next to reading the file.

import { OpenELMError } from './errors.js';

export type FloatBits = 'f32' | 'bf16' | 'f16';

/** Index of the first NaN or ±Infinity, or -1. Uint16Array data is bf16 or f16 bits as `bits` says. */
export function firstNonFinite(data: Float32Array | Uint16Array, bits: FloatBits): number {
  if (bits === 'f32') {
    const u = new Uint32Array(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i < u.length; i++) if ((u[i] & 0x7f800000) === 0x7f800000) return i;
    return -1;
  }
  const mask = bits === 'bf16' ? 0x7f80 : 0x7c00;
  for (let i = 0; i < data.length; i++) if ((data[i] & mask) === mask) return i;
  return -1;
}

/** "NaN", "Infinity" or "-Infinity" for the value at i. */
export function describeNonFinite(data: Float32Array | Uint16Array, bits: FloatBits, i: number): string {
  if (bits === 'f32') return String((data as Float32Array)[i]);
  const v = data[i];
  const mant = bits === 'bf16' ? v & 0x7f : v & 0x3ff;
  return mant !== 0 ? 'NaN' : v & 0x8000 ? '-Infinity' : 'Infinity';
}

/**
 * Throw a one-line error naming the tensor and file when `data` holds a NaN or infinite value.
 * `offset` is where `data` starts within the tensor (for tensors read in chunks).
 */
export function assertFinite(tensor: string, file: string, data: Float32Array | Uint16Array, bits: FloatBits, offset = 0): void {
  const i = firstNonFinite(data, bits);
  if (i < 0) return;
  throw new OpenELMError('checkpoint', `tensor ${tensor} in ${file} holds ${describeNonFinite(data, bits, i)} at element ${offset + i}; ` +
    'the checkpoint is corrupt or its training diverged, so the model would only produce garbage');
}
