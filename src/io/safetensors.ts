// safetensors files on disk: reading (the format and the reads live in safetensors-reader.ts; this
// opens a file and reads it with positioned sync reads, fs.readSync, of which only the 8-byte length
// and the JSON header happen at open time) and writing.
//
// Writing is atomic (temp file + fsync + rename, see atomic.ts) and streams each tensor's bytes
// directly from the caller's arrays.

import * as fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { OpenELMError } from '../core/errors.js';
import { commitAll, stageFile, stageFileSync, writeAll, writeAllSync, type StagedFile } from './atomic.js';
import {
  DTYPE_SIZE, MAX_HEADER_BYTES, SafetensorsReader, checkEndianness, fmtShape, headerLength, isSafetensorsDType, parseHeader, shapeNumel,
  type ParsedHeader, type SafetensorsDType,
} from './safetensors-reader.js';

export {
  DTYPE_SIZE, MAX_HEADER_BYTES, SafetensorsBytes, SafetensorsReader, isSafetensorsDType, shapeNumel,
  type SafetensorsDType, type TensorInfo,
} from './safetensors-reader.js';

/** A safetensors file on disk, read with positioned sync reads (only the header is read at open). */
export class SafetensorsFile extends SafetensorsReader {
  private fd: number | undefined;

  private constructor(path: string, fd: number, size: number, header: ParsedHeader) {
    super(path, size, header);
    this.fd = fd;
  }

  /** Open a file and validate its header; reads only the first 8 + N bytes. */
  static open(path: string): SafetensorsFile {
    checkEndianness();
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'ENOENT') throw new OpenELMError('safetensors', `safetensors file not found: ${path}`);
      throw new OpenELMError('safetensors', `cannot open safetensors file ${path}: ${e.message}`);
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw new OpenELMError('safetensors', `invalid safetensors file ${path}: not a regular file`);
      const n = headerLength(readExactlyAt(fd, 8, 0), st.size, path);
      const headerBytes = readExactlyAt(fd, n, 8);
      if (headerBytes.length < n) throw new OpenELMError('safetensors', `invalid safetensors file ${path}: file shrank while reading the header`);
      return new SafetensorsFile(path, fd, st.size, parseHeader(headerBytes, st.size, path));
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  protected readAt(dst: Uint8Array, pos: number): number {
    return fs.readSync(this.fd!, dst, 0, dst.length, pos);
  }

  protected get isOpen(): boolean { return this.fd !== undefined; }

  override close(): void {
    if (this.fd !== undefined) {
      const fd = this.fd;
      this.fd = undefined;
      fs.closeSync(fd);
    }
  }
}

function readExactlyAt(fd: number, len: number, pos: number): Uint8Array {
  const buf = new Uint8Array(len);
  let done = 0;
  while (done < len) {
    const got = fs.readSync(fd, buf, done, len - done, pos + done);
    if (got === 0) break;
    done += got;
  }
  return done === len ? buf : buf.subarray(0, done);
}

// ---------------------------------------------------------------- writing

export interface TensorToWrite {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  /** Row-major little-endian element data: byteLength must equal numel · itemsize. */
  readonly data: ArrayBufferView;
}

interface WritePlan {
  header: Uint8Array; // 8-byte length + padded JSON
  total: number;
}

/** Validate tensors and build the file header (offsets contiguous, in the given order). */
function planWrite(file: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): WritePlan {
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
    if (!ArrayBuffer.isView(data)) throw bad(`tensor ${t.name}: data is not a typed array or DataView`);
    if (data.byteLength !== need) {
      throw bad(`tensor ${t.name}: data has ${data.byteLength} bytes, but shape ${fmtShape(t.shape)} of ${t.dtype} needs ${need}`);
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape.slice(), data_offsets: [offset, offset + need] };
    offset += need;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_BYTES) throw bad(`header would be ${padded} bytes, over the ${MAX_HEADER_BYTES}-byte limit`);
  const out = new Uint8Array(8 + padded);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length);
  return { header: out, total: out.length + offset };
}

/** Validate tensors for writing (names, dtypes, shapes, data sizes) without touching the disk. */
export function checkTensorsToWrite(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): void {
  planWrite(path, tensors, metadata);
}

function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function writeBodySync(fd: number, plan: WritePlan, tensors: readonly TensorToWrite[]): void {
  writeAllSync(fd, plan.header, 0);
  let pos = plan.header.length;
  for (const t of tensors) {
    const b = bytesOf(t.data);
    writeAllSync(fd, b, pos);
    pos += b.byteLength;
  }
  if (pos !== plan.total) throw new OpenELMError('safetensors', `tensor data changed size while writing`);
}

async function writeBody(fh: FileHandle, plan: WritePlan, tensors: readonly TensorToWrite[]): Promise<void> {
  await writeAll(fh, plan.header, 0);
  let pos = plan.header.length;
  for (const t of tensors) {
    const b = bytesOf(t.data);
    await writeAll(fh, b, pos);
    pos += b.byteLength;
  }
  if (pos !== plan.total) throw new OpenELMError('safetensors', `tensor data changed size while writing`);
}

/** Write a complete temp file for `path` without replacing it yet (see atomic.ts StagedFile). */
export function stageSafetensorsSync(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): StagedFile {
  const plan = planWrite(path, tensors, metadata);
  return stageFileSync(path, (fd) => writeBodySync(fd, plan, tensors));
}

export async function stageSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): Promise<StagedFile> {
  const plan = planWrite(path, tensors, metadata);
  return stageFile(path, (fh) => writeBody(fh, plan, tensors));
}

/**
 * Atomically write a safetensors file: header padded with spaces to a multiple of 8, data in the
 * given order with contiguous offsets. On error no temp file remains and an existing file is untouched.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): Promise<void> {
  commitAll([await stageSafetensors(path, tensors, metadata)]);
}

export function writeSafetensorsSync(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): void {
  commitAll([stageSafetensorsSync(path, tensors, metadata)]);
}
