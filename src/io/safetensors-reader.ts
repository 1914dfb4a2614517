// Reading safetensors (https://github.com/huggingface/safetensors#format) from any synchronous
// source of bytes: the header parser and the tensor reads with their dtype conversions. No Node
// module here: io/safetensors.ts reads files through it (SafetensorsFile), the browser entry reads
// downloaded blobs and in-memory bytes.
//
//   [u64 little-endian N][N bytes of UTF-8 JSON header][data section]
//   header = { "__metadata__"?: {str: str}, "<tensor>": {dtype, shape, data_offsets: [begin, end]}, ... }
//   offsets are relative to the start of the data section; tensors are row-major, little-endian.
//
// Reads are synchronous: loading is one long sequential job where an async read per chunk buys no
// parallelism, and sync reads let model loading (model/load.ts) stay plain code. Tensor bytes are
// read on request, straight into the caller's buffer (chunks <= 64 MB): 16-bit values read as f32
// or as the other 16-bit type are converted where they land; other conversions (F32 or F64 to a
// narrower type) go through one shared 4 MB staging buffer. Peak memory stays at the size of the
// destination arrays (never 2x the model), and a load makes no garbage.

import { OpenELMError } from '../core/errors.js';
import { bf16ArrayToF32, f16ArrayToF32, f32ToF16 } from '../core/dtype.js';
import { parseJsonText } from '../core/json-text.js';
import { widenInPlace } from '../core/widen-in-place.js';

export type SafetensorsDType =
  | 'F64'
  | 'F32'
  | 'F16'
  | 'BF16'
  | 'I64'
  | 'I32'
  | 'I16'
  | 'I8'
  | 'U64'
  | 'U32'
  | 'U16'
  | 'U8'
  | 'BOOL'
  | 'F8_E4M3'
  | 'F8_E5M2';

/** Bytes per element. The F8 and integer/BOOL dtypes can only be read raw. */
export const DTYPE_SIZE: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

export function isSafetensorsDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.hasOwn(DTYPE_SIZE, s);
}

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** Absolute byte position of the tensor's data in the file. */
  readonly fileOffset: number;
}

/** Largest header we accept; real headers are a few hundred KB even for huge models. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Largest single read()/write() call. */
const IO_CHUNK = 64 * 1024 * 1024;
/** Staging buffer for converting reads; small enough to stay cache-friendly. */
const STAGING_BYTES = 4 * 1024 * 1024;
/** f32 values widened at a time from the staging buffer when a read re-encodes (256 KB). */
const CONVERT_FLOATS = 65536;

let staging: ArrayBuffer | undefined;
function stagingBuffer(): ArrayBuffer {
  // Shared by all readers: reads are synchronous, so no two conversions can interleave.
  staging ??= new ArrayBuffer(STAGING_BYTES);
  return staging;
}

let converted: Float32Array | undefined;
/** f32 values a 16- or 64-bit chunk of the staging buffer is widened into, a slice at a time. */
function convertBuffer(): Float32Array {
  converted ??= new Float32Array(CONVERT_FLOATS);
  return converted;
}

/** Typed-array views read the host's byte order; safetensors is little-endian. */
export function checkEndianness(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new OpenELMError('safetensors', 'safetensors I/O needs a little-endian CPU; this machine is big-endian');
  }
}

export function shapeNumel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

export abstract class SafetensorsReader {
  /** The file's name, used in messages (a path, a URL, a dropped file's name). */
  readonly path: string;
  /** The `__metadata__` string map (empty if absent). */
  readonly metadata: Readonly<Record<string, string>>;
  readonly fileSize: number;
  /** Start of the data section (8 + header length). */
  readonly dataStart: number;
  private readonly byName: Map<string, TensorInfo>;
  private readonly ordered: TensorInfo[];

  protected constructor(path: string, fileSize: number, header: ParsedHeader) {
    this.path = path;
    this.fileSize = fileSize;
    this.dataStart = header.dataStart;
    this.metadata = header.metadata;
    this.ordered = header.infos;
    this.byName = new Map(header.infos.map((t) => [t.name, t]));
  }

  /**
   * Read up to dst.length bytes at absolute file position `pos` into dst; returns the count read
   * (0 at the end of the file).
   */
  protected abstract readAt(dst: Uint8Array, pos: number): number;

  /** Whether the source can still be read (false once closed). */
  protected abstract get isOpen(): boolean;

  /** All tensors, in the order their data appears in the file. */
  tensors(): TensorInfo[] {
    return this.ordered.slice();
  }

  names(): string[] {
    return this.ordered.map((t) => t.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new OpenELMError('safetensors', `tensor ${name} not found in ${this.path}`);
    return t;
  }

  /** Copy the tensor's raw little-endian bytes into `dst` (allocated if omitted); returns the filled view. */
  readRaw(name: string, dst?: Uint8Array): Uint8Array {
    const t = this.info(name);
    if (dst === undefined) dst = new Uint8Array(t.byteLength);
    else if (dst.byteLength < t.byteLength) {
      throw new OpenELMError(
        'safetensors',
        `buffer for tensor ${name} from ${this.path} is too small: ${dst.byteLength} bytes, need ${t.byteLength}`,
      );
    }
    const out = dst.subarray(0, t.byteLength);
    this.readBytes(t, out, 0, t.byteLength);
    return out;
  }

  /**
   * Bytes [at, at + len) of a tensor's raw data into dst[0, len) (allocated if omitted): rows of a
   * packed tensor (MLX's uint32 code words) without reading the rest.
   */
  readRawRange(name: string, at: number, len: number, dst: Uint8Array = new Uint8Array(len)): Uint8Array {
    const t = this.info(name);
    if (!(Number.isInteger(at) && Number.isInteger(len) && at >= 0 && len >= 0 && at + len <= t.byteLength)) {
      throw new OpenELMError('safetensors', `bytes [${at}, ${at + len}) are outside tensor ${name} (${t.byteLength} bytes)`);
    }
    if (dst.length < len) throw new OpenELMError('safetensors', `buffer for tensor ${name} holds ${dst.length} bytes, needs ${len}`);
    const out = dst.subarray(0, len);
    this.readBytes(t, out, at, len);
    return out;
  }

  /** Read a float tensor (F32/BF16/F16/F64) as f32 into `dst` at element `dstOffset` (allocated if omitted). */
  readF32(name: string, dst?: Float32Array, dstOffset = 0): Float32Array {
    const t = this.info(name);
    const n = shapeNumel(t.shape);
    const out = this.checkDst(t, dst, dstOffset, n, Float32Array, 'F32');
    switch (t.dtype) {
      case 'F32':
        this.readBytes(t, new Uint8Array(out.buffer, out.byteOffset + dstOffset * 4, n * 4), 0, n * 4);
        break;
      case 'BF16':
      case 'F16':
        this.readWidened(t, 0, out.subarray(dstOffset, dstOffset + n));
        break;
      case 'F64': {
        const f64 = new Float64Array(stagingBuffer());
        this.streamConvert(t, (relByte, len) => {
          const at = dstOffset + relByte / 8;
          const k = len / 8;
          for (let i = 0; i < k; i++) out[at + i] = f64[i];
        });
        break;
      }
      default:
        throw this.notFloat(t, 'F32');
    }
    return out;
  }

  /**
   * Elements [start, start + count) of a float tensor (flat, row-major) as f32 into dst[0, count):
   * lets a caller convert a large tensor slice by slice (e.g. quantizing rows) without a full copy.
   */
  readF32Range(name: string, start: number, count: number, dst: Float32Array): Float32Array {
    const t = this.info(name);
    const n = shapeNumel(t.shape);
    if (!(Number.isInteger(start) && Number.isInteger(count) && start >= 0 && count >= 0 && start + count <= n)) {
      throw new OpenELMError('safetensors', `range [${start}, ${start + count}) is outside tensor ${name} (${n} elements)`);
    }
    if (dst.length < count) throw new OpenELMError('safetensors', `destination for ${name} holds ${dst.length} values, needs ${count}`);
    const size = DTYPE_SIZE[t.dtype];
    if (t.dtype === 'F32') {
      this.readBytes(t, new Uint8Array(dst.buffer, dst.byteOffset, count * 4), start * 4, count * 4);
      return dst;
    }
    // A load quantizes every tensor through here, row chunk by row chunk: no array per call (that
    // was garbage the size of the file) and no staging for 16-bit files (widened in place).
    if (t.dtype === 'BF16' || t.dtype === 'F16') {
      this.readWidened(t, start, dst.subarray(0, count));
      return dst;
    }
    if (t.dtype !== 'F64') throw this.notFloat(t, 'F32');
    const buf = stagingBuffer(), per = STAGING_BYTES / size;
    for (let done = 0; done < count; done += per) {
      const k = Math.min(per, count - done);
      this.readBytes(t, new Uint8Array(buf, 0, k * size), (start + done) * size, k * size);
      const f64 = new Float64Array(buf, 0, k);
      for (let i = 0; i < k; i++) dst[done + i] = f64[i];
    }
    return dst;
  }

  /**
   * Read a float tensor as bf16 bit patterns. F32 (and F16, F64 via f32) round to nearest even,
   * as PyTorch's .to(torch.bfloat16) does; NaN stays NaN.
   */
  readBF16(name: string, dst?: Uint16Array, dstOffset = 0): Uint16Array {
    return this.readHalf(name, 'BF16', dst, dstOffset, (vals, out, at) => {
      f32BitsToBf16(new Uint32Array(vals.buffer, vals.byteOffset, vals.length), vals.length, out, at);
    });
  }

  /** Read a float tensor as f16 bit patterns (round to nearest even; overflow to ±Inf). */
  readF16(name: string, dst?: Uint16Array, dstOffset = 0): Uint16Array {
    return this.readHalf(name, 'F16', dst, dstOffset, (vals, out, at) => {
      for (let i = 0; i < vals.length; i++) out[at + i] = f32ToF16(vals[i]);
    });
  }

  /** A 16-bit float tensor read as itself, or any other float tensor streamed as f32 and encoded. */
  private readHalf(name: string, as: 'BF16' | 'F16', dst: Uint16Array | undefined, dstOffset: number,
    encode: (vals: Float32Array, out: Uint16Array, at: number) => void): Uint16Array {
    const t = this.info(name);
    const n = shapeNumel(t.shape);
    const out = this.checkDst(t, dst, dstOffset, n, Uint16Array, as);
    const bytes = new Uint8Array(out.buffer, out.byteOffset + dstOffset * 2, n * 2);
    if (t.dtype === as) this.readBytes(t, bytes, 0, n * 2);
    else if (t.dtype === 'BF16' || t.dtype === 'F16') {
      // the other 16-bit type: read into the destination and re-encode it there, a slice at a time
      this.readBytes(t, bytes, 0, n * 2);
      const tmp = convertBuffer();
      for (let i = 0; i < n; i += tmp.length) {
        const src = out.subarray(dstOffset + i, dstOffset + Math.min(n, i + tmp.length));
        if (t.dtype === 'BF16') bf16ArrayToF32(src, tmp, 0); else f16ArrayToF32(src, tmp, 0);
        encode(tmp.subarray(0, src.length), out, dstOffset + i);
      }
    } else this.streamF32(t, as, (vals, at) => encode(vals, out, dstOffset + at));
    return out;
  }

  /** Elements [start, start + out.length) of a BF16/F16 tensor as f32 into `out`, widened in place. */
  private readWidened(t: TensorInfo, start: number, out: Float32Array): void {
    widenInPlace(out, out.length, 2, (raw) => this.readBytes(t, raw, start * 2, raw.length), (raw, f32) => {
      const half = new Uint16Array(raw.buffer, raw.byteOffset, f32.length);
      if (t.dtype === 'BF16') bf16ArrayToF32(half, f32, 0); else f16ArrayToF32(half, f32, 0);
    });
  }

  /**
   * Feed an F32 or F64 tensor through the staging buffer as f32 values: `sink(vals, at)` gets
   * elements [at, at + vals.length). F32 chunks are the staging buffer itself; F64 is narrowed first.
   */
  private streamF32(t: TensorInfo, as: string, sink: (vals: Float32Array, at: number) => void): void {
    switch (t.dtype) {
      case 'F32': {
        const f32 = new Float32Array(stagingBuffer());
        this.streamConvert(t, (relByte, len) => sink(f32.subarray(0, len / 4), relByte / 4));
        return;
      }
      case 'F64': {
        const f64 = new Float64Array(stagingBuffer()), tmp = convertBuffer();
        this.streamConvert(t, (relByte, len) => {
          for (let i = 0; i < len / 8; i += tmp.length) {
            const k = Math.min(len / 8 - i, tmp.length);
            for (let j = 0; j < k; j++) tmp[j] = f64[i + j];
            sink(tmp.subarray(0, k), relByte / 8 + i);
          }
        });
        return;
      }
      default:
        throw this.notFloat(t, as);
    }
  }

  close(): void {}

  private checkDst<T extends Float32Array | Uint16Array>(
    t: TensorInfo,
    dst: T | undefined,
    dstOffset: number,
    n: number,
    ctor: new (n: number) => T,
    as: string,
  ): T {
    if (dst === undefined) {
      if (dstOffset !== 0) throw new RangeError('dstOffset given without a destination array');
      return new ctor(n);
    }
    if (!Number.isInteger(dstOffset) || dstOffset < 0 || dstOffset + n > dst.length) {
      throw new OpenELMError(
        'safetensors',
        `destination for tensor ${t.name} (${n} ${as} elements) does not fit: array has ${dst.length} elements, offset ${dstOffset}`,
      );
    }
    return dst;
  }

  private notFloat(t: TensorInfo, as: string): OpenELMError {
    return new OpenELMError(
      'safetensors',
      `tensor ${t.name} in ${this.path} has dtype ${t.dtype}; only F32, BF16, F16 and F64 can be read as ${as}`,
    );
  }

  /** Feed the tensor through the staging buffer; `convert(relByte, len)` sees staging[0, len). */
  private streamConvert(t: TensorInfo, convert: (relByte: number, len: number) => void): void {
    const buf = new Uint8Array(stagingBuffer());
    for (let rel = 0; rel < t.byteLength; rel += STAGING_BYTES) {
      const len = Math.min(STAGING_BYTES, t.byteLength - rel);
      this.readBytes(t, buf, rel, len);
      convert(rel, len);
    }
  }

  /** Read `len` bytes starting at tensor-relative `rel` into dst[0, len). */
  private readBytes(t: TensorInfo, dst: Uint8Array, rel: number, len: number): void {
    if (!this.isOpen) throw new OpenELMError('safetensors', `safetensors file ${this.path} is closed`);
    let done = 0;
    while (done < len) {
      const want = Math.min(IO_CHUNK, len - done);
      let got: number;
      try {
        got = this.readAt(dst.subarray(done, done + want), t.fileOffset + rel + done);
      } catch (err) {
        throw new OpenELMError(
          'safetensors',
          `cannot read tensor ${t.name} from ${this.path}: ${(err as Error).message}`,
        );
      }
      if (got === 0) {
        throw new OpenELMError(
          'safetensors',
          `unexpected end of file reading tensor ${t.name} from ${this.path} (file changed or truncated after opening)`,
        );
      }
      done += got;
    }
  }
}

/** f32 bit patterns src[0, n) -> bf16 in dst[at, at+n), round to nearest even, NaN kept quiet. */
function f32BitsToBf16(src: Uint32Array, n: number, dst: Uint16Array, at: number): void {
  for (let i = 0; i < n; i++) {
    const u = src[i];
    dst[at + i] =
      (u & 0x7fffffff) > 0x7f800000 ? (u >>> 16) | 0x40 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** What a header holds: where the data starts, the metadata, the tensors in data order. */
export interface ParsedHeader { dataStart: number; metadata: Record<string, string>; infos: TensorInfo[]; }

function invalid(file: string, msg: string): OpenELMError {
  return new OpenELMError('safetensors', `invalid safetensors file ${file}: ${msg}`);
}

/** The JSON header's length from the file's first 8 bytes (`lenBytes`), checked against the file size. */
export function headerLength(lenBytes: Uint8Array, size: number, file: string): number {
  if (size < 8) throw invalid(file, `file is only ${size} bytes, shorter than the 8-byte header length`);
  if (lenBytes.length < 8) throw invalid(file, 'could not read the 8-byte header length');
  const n64 = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    throw invalid(file, `header length ${n64} is absurd (over ${MAX_HEADER_BYTES} bytes); not a safetensors file?`);
  }
  const n = Number(n64);
  if (8 + n > size) throw invalid(file, `header length ${n} is larger than the rest of the file (${size - 8} bytes); file truncated?`);
  return n;
}

/** Validate a header (the `headerLength` bytes after the first 8) of a file of `size` bytes. */
export function parseHeader(headerBytes: Uint8Array, size: number, file: string): ParsedHeader {
  const bad = (msg: string): OpenELMError => invalid(file, msg);
  const n = headerBytes.length;
  let text: string;
  try {
    text = utf8.decode(headerBytes);
  } catch {
    throw bad('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = parseJsonText(text, 'header');
  } catch (err) {
    throw bad((err as Error).message);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw bad(`header is not a JSON object (got ${Array.isArray(header) ? 'array' : header === null ? 'null' : typeof header})`);
  }
  const dataStart = 8 + n;
  const dataSize = size - dataStart;
  const metadata: Record<string, string> = {};
  const infos: TensorInfo[] = [];
  const begins = new Map<string, number>();
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('__metadata__ is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw bad(`__metadata__ value for "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const tbad = (msg: string) => bad(`tensor ${name}: ${msg}`);
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw tbad('entry is not an object');
    const e = raw as Record<string, unknown>;
    for (const key of ['dtype', 'shape', 'data_offsets']) if (!(key in e)) throw tbad(`missing "${key}"`);
    if (!isSafetensorsDType(e.dtype)) throw tbad(`unknown dtype ${JSON.stringify(e.dtype)}`);
    const dtype = e.dtype;
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw tbad(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
    }
    const offs = e.data_offsets;
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && o >= 0)
    ) {
      throw tbad(`data_offsets ${JSON.stringify(offs)} is not a pair of non-negative integers`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) throw tbad(`data_offsets [${begin},${end}] has begin > end`);
    if (end > dataSize) {
      throw tbad(`data ends at byte ${end} of the data section, but the file only has ${dataSize} data bytes (file truncated?)`);
    }
    const need = shapeNumel(shape as number[]) * DTYPE_SIZE[dtype];
    if (end - begin !== need) {
      throw tbad(`data_offsets span ${end - begin} bytes, but shape ${fmtShape(shape as number[])} of ${dtype} needs ${need}`);
    }
    begins.set(name, begin);
    infos.push({ name, dtype, shape: Object.freeze((shape as number[]).slice()), byteLength: need, fileOffset: dataStart + begin });
  }
  infos.sort((a, b) => a.fileOffset - b.fileOffset || a.byteLength - b.byteLength);
  let prev: TensorInfo | undefined;
  for (const t of infos) {
    if (t.byteLength === 0) continue;
    if (prev && t.fileOffset < prev.fileOffset + prev.byteLength) {
      throw bad(`tensors ${prev.name} and ${t.name} overlap in the data section`);
    }
    prev = t;
  }
  return { dataStart, metadata, infos: infos.map((t) => Object.freeze(t)) };
}

/** A safetensors file held in memory (downloaded bytes, a test fixture). */
export class SafetensorsBytes extends SafetensorsReader {
  private open = true;
  private constructor(path: string, private readonly bytes: Uint8Array, header: ParsedHeader) {
    super(path, bytes.length, header);
  }

  static from(bytes: Uint8Array, name: string): SafetensorsBytes {
    checkEndianness();
    const n = headerLength(bytes.subarray(0, 8), bytes.length, name);
    return new SafetensorsBytes(name, bytes, parseHeader(bytes.subarray(8, 8 + n), bytes.length, name));
  }

  protected readAt(dst: Uint8Array, pos: number): number {
    const n = Math.max(0, Math.min(dst.length, this.bytes.length - pos));
    dst.set(this.bytes.subarray(pos, pos + n));
    return n;
  }

  protected get isOpen(): boolean { return this.open; }

  override close(): void { this.open = false; }
}
