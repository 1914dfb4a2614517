// safetensors files on disk: reading (the format and the reads live in safetensors-reader.ts; this
// opens a file and reads it with positioned sync reads, fs.readSync, of which only the 8-byte length
// and the JSON header happen at open time) and writing.
//
// Writing is atomic (temp file + fsync + rename, see atomic.ts) and streams each tensor's bytes
// directly from the caller's arrays, or (async writers) from pieces the caller makes on demand.

import * as fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { OpenELMError } from '../core/errors.js';
import { commitAll, stageFile, stageFileSync, writeAll, writeAllSync, type StagedFile } from './atomic.js';
import { SafetensorsReader, checkEndianness, headerLength, parseHeader, type ParsedHeader } from './safetensors-reader.js';
import { bytesOf, isStreamed, planSafetensors, type TensorToStream, type TensorToWrite, type WritePlan } from './safetensors-writer.js';

export {
  DTYPE_SIZE, MAX_HEADER_BYTES, SafetensorsBytes, SafetensorsReader, isSafetensorsDType, shapeNumel,
  type SafetensorsDType, type TensorInfo,
} from './safetensors-reader.js';
export { safetensorsBytes, type StreamedData, type TensorToStream, type TensorToWrite } from './safetensors-writer.js';

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

/** Validate tensors for writing (names, dtypes, shapes, data sizes) without touching the disk. */
export function checkTensorsToWrite(
  path: string,
  tensors: readonly TensorToStream[],
  metadata?: Record<string, string>,
): void {
  planSafetensors(path, tensors, metadata);
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

async function writeBody(fh: FileHandle, plan: WritePlan, tensors: readonly TensorToStream[]): Promise<void> {
  await writeAll(fh, plan.header, 0);
  let pos = plan.header.length;
  for (const t of tensors) {
    if (!isStreamed(t.data)) {
      const b = bytesOf(t.data);
      await writeAll(fh, b, pos);
      pos += b.byteLength;
      continue;
    }
    const end = pos + t.data.byteLength;
    for await (const piece of t.data.pieces()) {
      const b = bytesOf(piece);
      if (pos + b.byteLength > end) throw new OpenELMError('safetensors', `tensor ${t.name} streamed more than its ${t.data.byteLength} bytes`);
      await writeAll(fh, b, pos);
      pos += b.byteLength;
    }
    if (pos !== end) throw new OpenELMError('safetensors', `tensor ${t.name} streamed ${t.data.byteLength - (end - pos)} of its ${t.data.byteLength} bytes`);
  }
  if (pos !== plan.total) throw new OpenELMError('safetensors', `tensor data changed size while writing`);
}

/** Write a complete temp file for `path` without replacing it yet (see atomic.ts StagedFile). */
export function stageSafetensorsSync(
  path: string,
  tensors: readonly TensorToWrite[],
  metadata?: Record<string, string>,
): StagedFile {
  const plan = planSafetensors(path, tensors, metadata);
  return stageFileSync(path, (fd) => writeBodySync(fd, plan, tensors));
}

export async function stageSafetensors(
  path: string,
  tensors: readonly TensorToStream[],
  metadata?: Record<string, string>,
): Promise<StagedFile> {
  const plan = planSafetensors(path, tensors, metadata);
  return stageFile(path, (fh) => writeBody(fh, plan, tensors));
}

/**
 * Atomically write a safetensors file: header padded with spaces to a multiple of 8, data in the
 * given order with contiguous offsets. On error no temp file remains and an existing file is untouched.
 */
export async function writeSafetensors(
  path: string,
  tensors: readonly TensorToStream[],
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
