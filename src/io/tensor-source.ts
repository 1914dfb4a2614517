// A read-only set of named tensors in HF naming, whatever file format holds them. The model loader
// reads weights through this interface, so a safetensors checkpoint (src/io/checkpoint.ts), a GGUF
// file, an MLX folder or a CoreNet .pt file all load the same way.

import { OpenELMError } from '../core/errors.js';
import { f32ToBf16, f32ToF16 } from '../core/dtype.js';
import { checkRange } from '../core/range-check.js';

export interface SourceTensorInfo {
  readonly name: string;
  /** Element type as stored ('F32', 'F16', 'BF16'; other strings for types only readable as f32). */
  readonly dtype: string;
  readonly shape: readonly number[];
}

/** What the loader and converters need from a set of tensors. `Checkpoint` satisfies it too. */
export interface TensorReader {
  readonly location: string;
  names(): string[];
  has(name: string): boolean;
  info(name: string): SourceTensorInfo;
  expectShape(name: string, shape: readonly number[]): SourceTensorInfo;
  readF32(name: string, dst?: Float32Array, dstOffset?: number): Float32Array;
  readF32Range(name: string, start: number, count: number, dst: Float32Array): Float32Array;
  readBF16(name: string, dst?: Uint16Array, dstOffset?: number): Uint16Array;
  readF16(name: string, dst?: Uint16Array, dstOffset?: number): Uint16Array;
  close(): void;
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Base for readers that produce a whole tensor at a time as f32 (decoded formats). Subclasses
 * give `names`, `info` and `decode`; 16-bit reads return the stored bits when the tensor is stored
 * in that type (`raw16`), else round the f32 values.
 */
export abstract class DecodedTensorSource implements TensorReader {
  abstract readonly location: string;
  /** Every tensor reads as its exact f32 values (model/load.ts TensorSource). */
  readonly decoded = true;
  abstract names(): string[];
  /** Info of a tensor that exists (`has` was checked). */
  protected abstract infoOf(name: string): SourceTensorInfo;
  /** All values of a tensor that exists, decoded to f32, written into dst (sized numel). */
  protected abstract decode(name: string, dst: Float32Array): void;
  /** The stored 16-bit words of a tensor whose dtype is F16 or BF16. */
  protected raw16(name: string, dst: Uint16Array): void {
    const v = new Float32Array(dst.length);
    this.decode(name, v);
    const enc = this.infoOf(name).dtype === 'BF16' ? f32ToBf16 : f32ToF16;
    for (let i = 0; i < v.length; i++) dst[i] = enc(v[i]);
  }

  has(name: string): boolean {
    return this.names().includes(name);
  }

  info(name: string): SourceTensorInfo {
    if (!this.has(name)) throw new OpenELMError('checkpoint', `tensor ${name} not found in ${this.location}`);
    return this.infoOf(name);
  }

  expectShape(name: string, shape: readonly number[]): SourceTensorInfo {
    const t = this.info(name);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new OpenELMError('checkpoint', `tensor ${name} has shape [${t.shape.join(',')}], expected [${shape.join(',')}] (in ${this.location})`);
    }
    return t;
  }

  readF32(name: string, dst?: Float32Array, dstOffset = 0): Float32Array {
    const n = numelOf(this.info(name).shape);
    const out = dst ?? new Float32Array(n);
    if (dstOffset + n > out.length) throw new OpenELMError('checkpoint', `tensor ${name}: destination too small (${out.length - dstOffset} < ${n})`);
    this.decode(name, out.subarray(dstOffset, dstOffset + n));
    return out;
  }

  /**
   * Values [start, start + count) decoded into dst[0, count) without the rest of the tensor;
   * false where the source decodes only whole tensors (or not this range).
   */
  protected decodeRange(_name: string, _start: number, _count: number, _dst: Float32Array): boolean {
    return false;
  }

  readF32Range(name: string, start: number, count: number, dst: Float32Array): Float32Array {
    checkRange(`tensor ${name}`, numelOf(this.info(name).shape), start, count, dst.length);
    // a load quantizes row chunk by row chunk: decoding the whole tensor for each chunk made
    // garbage of the tensor's f32 size per chunk
    if (this.decodeRange(name, start, count, dst)) return dst;
    dst.set(this.readF32(name).subarray(start, start + count));
    return dst;
  }

  private read16(name: string, want: 'F16' | 'BF16', dst: Uint16Array | undefined, dstOffset: number): Uint16Array {
    const info = this.info(name);
    const n = numelOf(info.shape);
    const out = dst ?? new Uint16Array(n);
    if (dstOffset + n > out.length) throw new OpenELMError('checkpoint', `tensor ${name}: destination too small (${out.length - dstOffset} < ${n})`);
    const view = out.subarray(dstOffset, dstOffset + n);
    if (info.dtype === want) { this.raw16(name, view); return out; }
    const v = new Float32Array(n);
    this.decode(name, v);
    const enc = want === 'BF16' ? f32ToBf16 : f32ToF16;
    for (let i = 0; i < n; i++) view[i] = enc(v[i]);
    return out;
  }

  readBF16(name: string, dst?: Uint16Array, dstOffset = 0): Uint16Array {
    return this.read16(name, 'BF16', dst, dstOffset);
  }

  readF16(name: string, dst?: Uint16Array, dstOffset = 0): Uint16Array {
    return this.read16(name, 'F16', dst, dstOffset);
  }

  close(): void {}
}
