// PyTorch checkpoint files (`torch.save` since PyTorch 1.6): a ZIP archive holding `<prefix>/data.pkl`
// (the pickled object, whose tensors point at storages by key), `<prefix>/data/<key>` (each
// storage's raw little-endian bytes), `<prefix>/version` and `<prefix>/byteorder`. Read without
// Python through a restricted unpickler (src/io/pickle.ts): only tensors and plain containers.
//
// The writer produces what `torch.save` writes for a dict of tensors, which
// `torch.load(path, weights_only=True)` accepts.

import * as fs from 'node:fs';
import { OpenELMError } from '../core/errors.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../core/dtype.js';
import { writeAtomicSync } from './atomic.js';
import {
  DTYPE_BYTES, Pickler, PyTuple, TorchTensorRef, unpickle, type PyKey, type PyValue, type TorchDType,
} from './pickle.js';
import { ZipReader, ZipWriter } from './zip-store.js';
import { widenInPlace } from '../core/widen-in-place.js';
import { checkRange } from '../core/range-check.js';
import { numelOf } from './tensor-source.js';

export { TorchTensorRef, PyTuple, PyFloat, type PyValue, type PyKey, type TorchDType } from './pickle.js';

/** The slice of 8-byte values a range read narrows at a time. */
const SPAN_BYTES = 1 << 16;

/** Row-major strides of a shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let k = 1;
  for (let i = shape.length - 1; i >= 0; i--) { s[i] = k; k *= shape[i]; }
  return s;
}

/** n values of a storage dtype, as raw little-endian bytes, converted to f32 into dst[0, n). */
function widen(b: Uint8Array, dtype: TorchDType, n: number, dst: Float32Array): Float32Array {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  switch (dtype) {
    case 'F32': dst.set(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + 4 * n))); break;
    case 'F64': for (let i = 0; i < n; i++) dst[i] = dv.getFloat64(8 * i, true); break;
    case 'BF16': for (let i = 0; i < n; i++) dst[i] = bf16ToF32(dv.getUint16(2 * i, true)); break;
    case 'F16': for (let i = 0; i < n; i++) dst[i] = f16ToF32(dv.getUint16(2 * i, true)); break;
    case 'I64': for (let i = 0; i < n; i++) dst[i] = Number(dv.getBigInt64(8 * i, true)); break;
    case 'I32': for (let i = 0; i < n; i++) dst[i] = dv.getInt32(4 * i, true); break;
    case 'I16': for (let i = 0; i < n; i++) dst[i] = dv.getInt16(2 * i, true); break;
    case 'I8': for (let i = 0; i < n; i++) dst[i] = dv.getInt8(i); break;
    case 'U8': case 'BOOL': for (let i = 0; i < n; i++) dst[i] = b[i]; break;
  }
  return dst;
}

export class TorchFile {
  readonly file: string;
  /** The unpickled object (tensors are TorchTensorRef). */
  readonly root: PyValue;
  private readonly zip: ZipReader;
  private readonly prefix: string;

  private constructor(file: string, zip: ZipReader, prefix: string, root: PyValue) {
    this.file = file;
    this.zip = zip;
    this.prefix = prefix;
    this.root = root;
  }

  static open(file: string): TorchFile {
    const zip = ZipReader.open(file, 'PyTorch checkpoint');
    try {
      const pkl = [...zip.entries.keys()].find((n) => n === 'data.pkl' || n.endsWith('/data.pkl'));
      if (!pkl) throw new OpenELMError('checkpoint', `${file} is a ZIP archive but not a PyTorch checkpoint (no data.pkl)`);
      const prefix = pkl.slice(0, pkl.length - 'data.pkl'.length);
      if (zip.has(prefix + 'byteorder')) {
        const order = zip.read(prefix + 'byteorder').toString('latin1');
        if (order !== 'little') throw new OpenELMError('checkpoint', `${file} was saved on a ${order}-endian machine; only little-endian checkpoints are supported`);
      }
      const root = unpickle(zip.read(pkl), { source: file });
      return new TorchFile(file, zip, prefix, root);
    } catch (e) {
      zip.close();
      throw e;
    }
  }

  private record(t: TorchTensorRef): string {
    const name = `${this.prefix}data/${t.storage.key}`;
    if (!this.zip.has(name)) throw new OpenELMError('checkpoint', `${this.file} is truncated or corrupt: storage ${t.storage.key} is missing`);
    const e = this.zip.entry(name);
    const want = t.storage.numel * DTYPE_BYTES[t.storage.dtype];
    if (e.size !== want) throw new OpenELMError('checkpoint', `${this.file}: storage ${t.storage.key} has ${e.size} bytes, expected ${want}`);
    return name;
  }

  /** The storage record of a view that lies inside its storage, and whether the view is contiguous. */
  private view(t: TorchTensorRef): { rec: string; contiguous: boolean } {
    const rec = this.record(t);
    const strides = contiguousStrides(t.shape);
    const contiguous = t.shape.every((d, i) => d === 1 || t.stride[i] === strides[i]);
    let maxIndex = t.offset;
    for (let i = 0; i < t.shape.length; i++) maxIndex += (t.shape[i] - 1) * Math.max(0, t.stride[i]);
    if (t.offset < 0 || t.stride.some((s) => s < 0) || maxIndex >= t.storage.numel) {
      throw new OpenELMError('checkpoint', `${this.file}: a tensor view of storage ${t.storage.key} reaches outside it`);
    }
    return { rec, contiguous };
  }

  /** The tensor's elements, row-major, as raw little-endian bytes of its storage dtype. */
  readBytes(t: TorchTensorRef): Uint8Array {
    const n = numelOf(t.shape);
    if (n === 0) { this.record(t); return new Uint8Array(0); }
    const { rec, contiguous } = this.view(t);
    const es = DTYPE_BYTES[t.storage.dtype];
    if (contiguous) return this.zip.readRange(rec, t.offset * es, n * es);
    // A strided view (rare in checkpoints): gather element by element from the whole storage.
    const all = this.zip.read(rec);
    const out = new Uint8Array(n * es);
    const idx = new Array<number>(t.shape.length).fill(0);
    for (let k = 0; k < n; k++) {
      let src = t.offset;
      for (let i = 0; i < idx.length; i++) src += idx[i] * t.stride[i];
      out.set(all.subarray(src * es, src * es + es), k * es);
      for (let i = idx.length - 1; i >= 0; i--) { if (++idx[i] < t.shape[i]) break; idx[i] = 0; }
    }
    return out;
  }

  /** The tensor as f32 (floating dtypes and integers; f64 is rounded). */
  readF32(t: TorchTensorRef, dst = new Float32Array(numelOf(t.shape))): Float32Array {
    return widen(this.readBytes(t), t.storage.dtype, numelOf(t.shape), dst);
  }

  /** Bytes of 8-byte values (f64, i64) a range read narrows, a slice at a time; kept between reads. */
  private span = new Uint8Array(0);

  /**
   * Elements [start, start + count) of the tensor (row-major) as f32 into dst[0, count). A contiguous
   * tensor (torch.save writes weights so) reads only those values' bytes: a load quantizes row
   * chunk by row chunk, and the whole tensor per chunk cost its f32 size in garbage each time.
   */
  readF32Range(t: TorchTensorRef, start: number, count: number, dst: Float32Array): Float32Array {
    checkRange(`${this.file}, a tensor of storage ${t.storage.key}`, numelOf(t.shape), start, count, dst.length);
    if (count === 0) return dst;
    const { rec, contiguous } = this.view(t);
    if (!contiguous) { dst.set(this.readF32(t).subarray(start, start + count)); return dst; }
    const dtype = t.storage.dtype, es = DTYPE_BYTES[dtype], at = (t.offset + start) * es;
    if (dtype === 'F32') {
      this.zip.readRange(rec, at, count * 4, new Uint8Array(dst.buffer, dst.byteOffset, count * 4));
      return dst;
    }
    if (es <= 4) {
      return widenInPlace(dst, count, es, (raw) => this.zip.readRange(rec, at, raw.length, raw), (raw, out) => widen(raw, dtype, count, out));
    }
    const per = SPAN_BYTES / es;
    if (this.span.length < SPAN_BYTES) this.span = new Uint8Array(SPAN_BYTES);
    for (let done = 0; done < count; done += per) {
      const k = Math.min(per, count - done);
      widen(this.zip.readRange(rec, at + done * es, k * es, this.span), dtype, k, dst.subarray(done, done + k));
    }
    return dst;
  }

  /** The tensor as f64 (exact for every dtype but I64 beyond 2^53). */
  readF64(t: TorchTensorRef): Float64Array {
    if (t.storage.dtype === 'F64') {
      const b = this.readBytes(t);
      return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    }
    return Float64Array.from(this.readF32(t));
  }

  close(): void {
    this.zip.close();
  }
}

/** `obj[key]` of a dict value, or undefined. */
export function pyGet(obj: PyValue | undefined, key: PyKey): PyValue | undefined {
  return obj instanceof Map ? obj.get(key) : undefined;
}

/** A dict whose values are all tensors (a state dict), else null. */
export function asStateDict(v: PyValue | undefined): Map<string, TorchTensorRef> | null {
  if (!(v instanceof Map) || v.size === 0) return null;
  for (const [k, x] of v) if (typeof k !== 'string' || !(x instanceof TorchTensorRef)) return null;
  return v as Map<string, TorchTensorRef>;
}

// ------------------------------------------------------------------------------------------------
// Writer

export type WritableDType = 'F32' | 'BF16' | 'F16' | 'F64';

/** A tensor to save: row-major values, stored in `dtype`. */
export interface TensorToSave {
  dtype: WritableDType;
  shape: number[];
  /**
   * f32 values (encoded to dtype), or the raw 16-bit words when dtype is BF16/F16; a function is
   * called once, while the file is written, so large tensors need not all be in memory at once.
   */
  data: Float32Array | Uint16Array | Float64Array | (() => Float32Array | Uint16Array | Float64Array);
}

function encode(t: TensorToSave): Uint8Array {
  const n = numelOf(t.shape);
  const data = typeof t.data === 'function' ? t.data() : t.data;
  if (data.length !== n) throw new OpenELMError('checkpoint', `a tensor of shape [${t.shape}] needs ${n} values, got ${data.length}`);
  if (t.dtype === 'F32') return new Uint8Array(Float32Array.from(data).buffer);
  if (t.dtype === 'F64') return new Uint8Array(Float64Array.from(data).buffer);
  if (data instanceof Uint16Array) return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + 2 * n));
  const enc = t.dtype === 'BF16' ? f32ToBf16 : f32ToF16;
  const h = new Uint16Array(n);
  for (let i = 0; i < n; i++) h[i] = enc(data[i]);
  return new Uint8Array(h.buffer);
}

const ELEM_BYTES: Record<WritableDType, number> = { F32: 4, F64: 8, BF16: 2, F16: 2 };

/** A value to save: plain data, with tensors given as TensorToSave (marked by `tensor`). */
export type SaveValue = PyValue | { tensor: TensorToSave } | Map<PyKey, SaveValue> | SaveValue[];

/**
 * Write `value` as `torch.save` does (archive prefix "archive", storages in order of appearance,
 * data 64-byte aligned). Atomic: the file appears complete or not at all.
 */
export function saveTorchFile(file: string, value: SaveValue): number {
  const storages: TensorToSave[] = [];
  const convert = (v: SaveValue): PyValue => {
    if (v && typeof v === 'object' && 'tensor' in v && !(v instanceof Map) && !Array.isArray(v)) {
      const t = (v as { tensor: TensorToSave }).tensor;
      const key = String(storages.length);
      storages.push(t);
      return new TorchTensorRef({ key, dtype: t.dtype as TorchDType, numel: numelOf(t.shape), location: 'cpu' }, 0, t.shape.slice(), contiguousStrides(t.shape));
    }
    if (v instanceof Map) { const m = new Map<PyKey, PyValue>(); for (const [k, x] of v) m.set(k, convert(x)); return m; }
    if (Array.isArray(v)) return v.map(convert);
    if (v instanceof PyTuple) return new PyTuple(v.items.map(convert));
    return v as PyValue;
  };
  const pkl = Pickler.dumps(convert(value));
  let size = 0;
  writeAtomicSync(file, (fd) => {
    const z = new ZipWriter(fd, 64);
    const rec = (name: string, b: Uint8Array) => z.add(`archive/${name}`, b.length, [b]);
    const text = (s: string) => new TextEncoder().encode(s);
    rec('data.pkl', pkl);
    rec('.format_version', text('1'));
    rec('.storage_alignment', text('64'));
    rec('byteorder', text('little'));
    storages.forEach((t, i) => { z.add(`archive/data/${i}`, numelOf(t.shape) * ELEM_BYTES[t.dtype], { *[Symbol.iterator]() { yield encode(t); } }); });
    rec('version', text('3\n'));
    size = z.finish();
  });
  return size;
}

/** Size of a file, for reports. */
export function fileSize(file: string): number {
  return fs.statSync(file).size;
}
