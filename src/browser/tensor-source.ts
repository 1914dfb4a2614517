// Model weights in a browser: safetensors files held as Blobs (a download kept in the Cache API, a
// dropped File) or bytes, as the TensorSource that model/load.ts builds a model from.
//
// Loading is synchronous (model/load.ts), and a Blob is read asynchronously, except in a worker,
// where FileReaderSync reads a slice in place: there each tensor is read straight from the blob into
// its buffer and the file is never held in memory twice. On a window's main thread the whole file is
// read into memory first.

import { OpenELMError } from '../core/errors.js';
import type { TensorSource } from '../model/load.js';
import {
  SafetensorsBytes, SafetensorsReader, checkEndianness, headerLength, parseHeader, type ParsedHeader, type TensorInfo,
} from '../io/safetensors-reader.js';

interface FileReaderSyncCtor { new(): { readAsArrayBuffer(b: Blob): ArrayBuffer } }
const FileReaderSyncImpl = (globalThis as unknown as { FileReaderSync?: FileReaderSyncCtor }).FileReaderSync;

/** A safetensors Blob read slice by slice with FileReaderSync (workers only). */
class BlobSafetensors extends SafetensorsReader {
  private readonly reader = new FileReaderSyncImpl!();
  private blob: Blob | null;

  constructor(name: string, blob: Blob, header: ParsedHeader) {
    super(name, blob.size, header);
    this.blob = blob;
  }

  protected readAt(dst: Uint8Array, pos: number): number {
    const end = Math.min(this.blob!.size, pos + dst.length);
    if (end <= pos) return 0;
    const buf = this.reader.readAsArrayBuffer(this.blob!.slice(pos, end));
    dst.set(new Uint8Array(buf));
    return buf.byteLength;
  }

  protected get isOpen(): boolean { return this.blob !== null; }

  override close(): void { this.blob = null; }
}

/** Open a safetensors file held as a Blob (or bytes); only its header is read here, in a worker. */
export async function openSafetensors(data: Blob | Uint8Array, name: string): Promise<SafetensorsReader> {
  checkEndianness();
  if (data instanceof Uint8Array) return SafetensorsBytes.from(data, name);
  if (!FileReaderSyncImpl) return SafetensorsBytes.from(new Uint8Array(await data.arrayBuffer()), name);
  const n = headerLength(new Uint8Array(await data.slice(0, 8).arrayBuffer()), data.size, name);
  return new BlobSafetensors(name, data, parseHeader(new Uint8Array(await data.slice(8, 8 + n).arrayBuffer()), data.size, name));
}

/**
 * A checkpoint made of one or more safetensors files (HF shards with model.safetensors.index.json),
 * as one TensorSource. `location` names it in messages.
 */
export class BrowserCheckpoint implements TensorSource {
  private readonly where = new Map<string, SafetensorsReader>();

  constructor(readonly location: string, private readonly files: SafetensorsReader[], weightMap?: Record<string, string>) {
    if (!weightMap) {
      for (const f of files) for (const n of f.names()) this.where.set(n, f);
      return;
    }
    const byName = new Map(files.map((f) => [f.path.split('/').pop()!, f]));
    for (const [tensor, file] of Object.entries(weightMap)) {
      const f = byName.get(file);
      if (!f) throw new OpenELMError('checkpoint', `${location}: the index names shard ${file}, which was not loaded`);
      if (!f.has(tensor)) throw new OpenELMError('checkpoint', `${location}: the index puts tensor ${tensor} in ${file}, which does not hold it`);
      this.where.set(tensor, f);
    }
  }

  names(): string[] { return [...this.where.keys()]; }

  info(name: string): TensorInfo & { file: string } { const f = this.fileOf(name); return { ...f.info(name), file: f.path }; }

  expectShape(name: string, shape: readonly number[]): TensorInfo {
    const t = this.info(name);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new OpenELMError('checkpoint', `tensor ${name} has shape [${t.shape.join(',')}], expected [${shape.join(',')}] (in ${t.file})`);
    }
    return t;
  }

  readRawRange(name: string, at: number, len: number, dst: Uint8Array): Uint8Array { return this.fileOf(name).readRawRange(name, at, len, dst); }
  readF32(name: string, dst: Float32Array): Float32Array { return this.fileOf(name).readF32(name, dst); }
  readF32Range(name: string, start: number, count: number, dst: Float32Array): Float32Array { return this.fileOf(name).readF32Range(name, start, count, dst); }
  readBF16(name: string, dst: Uint16Array): Uint16Array { return this.fileOf(name).readBF16(name, dst); }
  readF16(name: string, dst: Uint16Array): Uint16Array { return this.fileOf(name).readF16(name, dst); }

  close(): void { for (const f of this.files) f.close(); }

  private fileOf(name: string): SafetensorsReader {
    const f = this.where.get(name);
    if (f) return f;
    const alt = name.startsWith('transformer.') ? name.slice('transformer.'.length) : `transformer.${name}`;
    const hint = !this.where.has(alt) ? ''
      : name.startsWith('transformer.') ? " (this checkpoint uses corenet/MLX names without the 'transformer.' prefix)"
      : " (this checkpoint uses HF names with the 'transformer.' prefix)";
    throw new OpenELMError('checkpoint', `tensor ${name} not found in ${this.location}${hint}`);
  }
}
