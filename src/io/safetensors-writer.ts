// The safetensors layout for writing, with no file system: the checked header of a set of tensors
// (offsets contiguous in the given order, JSON padded with spaces to a multiple of 8) and, for
// browsers, the whole file as bytes. safetensors.ts writes the same layout to disk atomically.

import { OpenELMError } from '../core/errors.js';
import { DTYPE_SIZE, MAX_HEADER_BYTES, checkEndianness, fmtShape, isSafetensorsDType, shapeNumel, type SafetensorsDType } from './safetensors-reader.js';

export interface TensorToWrite {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Row-major little-endian element data: byteLength must equal numel · itemsize. */
  readonly data: ArrayBufferView;
}

/** A tensor for the asynchronous writers, whose data may also be made piece by piece while the file is written. */
export interface TensorToStream extends Omit<TensorToWrite, 'data'> {
  readonly data: ArrayBufferView | StreamedData;
}

/** A tensor's bytes made on demand, in pieces (no copy of the whole tensor is ever held). */
export interface StreamedData {
  readonly byteLength: number;
  pieces(): AsyncIterable<ArrayBufferView>;
}

export function isStreamed(d: ArrayBufferView | StreamedData): d is StreamedData {
  return !ArrayBuffer.isView(d) && typeof (d as StreamedData).pieces === 'function';
}

export interface WritePlan {
  /** 8-byte length + padded JSON. */
  header: Uint8Array;
  /** Bytes of the whole file. */
  total: number;
}

/** Validate tensors and build the file header; `file` names the target in messages. */
export function planSafetensors(file: string, tensors: readonly TensorToStream[], metadata?: Record<string, string>): WritePlan {
  const bad = (msg: string) => new OpenELMError('safetensors', `cannot write ${file}: ${msg}`);
  checkEndianness();
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw bad(`metadata value for "${k}" is not a string`);
    }
    header.__metadata__ = { ...metadata };
  }
  const seen = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    if (typeof t.name !== 'string' || t.name === '' || t.name === '__metadata__') {
      throw bad(`invalid tensor name ${JSON.stringify(t.name)}`);
    }
    if (seen.has(t.name)) throw bad(`duplicate tensor name ${t.name}`);
    seen.add(t.name);
    if (!isSafetensorsDType(t.dtype)) throw bad(`tensor ${t.name}: unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw bad(`tensor ${t.name}: shape ${JSON.stringify(t.shape)} is not a list of non-negative integers`);
    }
    const need = shapeNumel(t.shape) * DTYPE_SIZE[t.dtype];
    const data = t.data;
    if (!ArrayBuffer.isView(data) && !isStreamed(data)) throw bad(`tensor ${t.name}: data is not a typed array or DataView`);
    if (data.byteLength !== need) {
      throw bad(`tensor ${t.name}: data has ${data.byteLength} bytes, but shape ${fmtShape(t.shape)} of ${t.dtype} needs ${need}`);
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape.slice(), data_offsets: [offset, offset + need] };
    offset += need;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_BYTES) throw bad(`header would be ${padded} bytes, over the ${MAX_HEADER_BYTES}-byte limit`);
  const out = new Uint8Array(8 + padded);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length);
  return { header: out, total: out.length + offset };
}

export function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** A whole safetensors file in memory (browsers hand it to a download; Node writes files with safetensors.ts). */
export function safetensorsBytes(file: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  const plan = planSafetensors(file, tensors, metadata);
  const out = new Uint8Array(plan.total);
  out.set(plan.header, 0);
  let pos = plan.header.length;
  for (const t of tensors) {
    out.set(bytesOf(t.data), pos);
    pos += t.data.byteLength;
  }
  return out;
}
