// GGUF v3 (the llama.cpp / ggml container): a streaming writer and a small reader.
//
// Layout: "GGUF" magic, version 3, tensor count (u64), metadata count (u64); the metadata
// key/values; one info record per tensor (name, dims in ggml order — dims[0] is the contiguous
// one —, ggml type, byte offset into the data section); padding to the alignment; the data
// section, where every tensor starts at a multiple of the alignment. All integers little-endian.
//
// The writer takes tensors as callbacks that produce their bytes one at a time, so converting a
// large model holds only one tensor's encoded bytes in memory. The file is staged and renamed into
// place (src/io/atomic.ts), so an interrupted conversion never leaves a half-written .gguf.

import * as fs from 'node:fs';
import { OpenELMError } from '../core/errors.js';
import { GGMLType, GGML_BLOCK, dequantize, ggmlTypeName, isReadableGGMLType } from '../core/ggml-quants.js';
import { writeAtomicSync, writeAllSync } from './atomic.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types (gguf_type). */
export enum GGUFType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

export { GGMLType, GGML_BLOCK, ggmlTypeName } from '../core/ggml-quants.js';

export type GGUFScalar = number | bigint | boolean | string;

/** One metadata entry. Arrays carry their element type; nested arrays are not needed here. */
export type GGUFValue =
  | { type: Exclude<GGUFType, GGUFType.ARRAY>; value: GGUFScalar }
  | { type: GGUFType.ARRAY; itemType: Exclude<GGUFType, GGUFType.ARRAY>; value: readonly GGUFScalar[] };

export interface GGUFKV { key: string; value: GGUFValue; }

/** Typed constructors, so call sites read like the llama.cpp key tables. */
export const kv = {
  u32: (key: string, v: number): GGUFKV => ({ key, value: { type: GGUFType.UINT32, value: v } }),
  i32: (key: string, v: number): GGUFKV => ({ key, value: { type: GGUFType.INT32, value: v } }),
  f32: (key: string, v: number): GGUFKV => ({ key, value: { type: GGUFType.FLOAT32, value: v } }),
  bool: (key: string, v: boolean): GGUFKV => ({ key, value: { type: GGUFType.BOOL, value: v } }),
  str: (key: string, v: string): GGUFKV => ({ key, value: { type: GGUFType.STRING, value: v } }),
  i32s: (key: string, v: readonly number[]): GGUFKV => ({ key, value: { type: GGUFType.ARRAY, itemType: GGUFType.INT32, value: v } }),
  f32s: (key: string, v: readonly number[]): GGUFKV => ({ key, value: { type: GGUFType.ARRAY, itemType: GGUFType.FLOAT32, value: v } }),
  strs: (key: string, v: readonly string[]): GGUFKV => ({ key, value: { type: GGUFType.ARRAY, itemType: GGUFType.STRING, value: v } }),
};

export interface GGUFTensorSource {
  name: string;
  /** ggml order: dims[0] is the innermost (contiguous) dimension, i.e. the reverse of a PyTorch shape. */
  dims: number[];
  type: GGMLType;
  /** Produces exactly tensorBytes(type, dims) bytes; called once, in file order. */
  data: () => Uint8Array;
}

export function tensorBytes(type: GGMLType, dims: readonly number[]): number {
  const b = GGML_BLOCK[type];
  if (!b) throw new OpenELMError('gguf', `unsupported ggml type ${type}`);
  if (dims[0] % b.elems !== 0) throw new OpenELMError('gguf', `a ${GGMLType[type]} tensor needs dims[0] divisible by ${b.elems}, got ${dims[0]}`);
  let n = 1;
  for (const d of dims) n *= d;
  return (n / b.elems) * b.bytes;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** Growable little-endian byte builder for the header. */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  len = 0;
  private enc = new TextEncoder();
  private need(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
    this.dv = new DataView(b.buffer);
  }
  u8(v: number) { this.need(1); this.dv.setUint8(this.len, v); this.len += 1; }
  i8(v: number) { this.need(1); this.dv.setInt8(this.len, v); this.len += 1; }
  u16(v: number) { this.need(2); this.dv.setUint16(this.len, v, true); this.len += 2; }
  i16(v: number) { this.need(2); this.dv.setInt16(this.len, v, true); this.len += 2; }
  u32(v: number) { this.need(4); this.dv.setUint32(this.len, v, true); this.len += 4; }
  i32(v: number) { this.need(4); this.dv.setInt32(this.len, v, true); this.len += 4; }
  f32(v: number) { this.need(4); this.dv.setFloat32(this.len, v, true); this.len += 4; }
  f64(v: number) { this.need(8); this.dv.setFloat64(this.len, v, true); this.len += 8; }
  u64(v: number | bigint) { this.need(8); this.dv.setBigUint64(this.len, BigInt(v), true); this.len += 8; }
  i64(v: number | bigint) { this.need(8); this.dv.setBigInt64(this.len, BigInt(v), true); this.len += 8; }
  str(s: string) {
    const b = this.enc.encode(s);
    this.u64(b.length);
    this.need(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  pad(a: number) { const n = alignUp(this.len, a) - this.len; this.need(n); this.buf.fill(0, this.len, this.len + n); this.len += n; }
  bytes(): Uint8Array { return this.buf.subarray(0, this.len); }
}

function checkScalar(key: string, t: GGUFType, v: GGUFScalar): void {
  const bad = (what: string) => new OpenELMError('gguf', `metadata ${key}: ${what}, got ${typeof v === 'string' ? JSON.stringify(v) : String(v)}`);
  switch (t) {
    case GGUFType.STRING: if (typeof v !== 'string') throw bad('expected a string'); return;
    case GGUFType.BOOL: if (typeof v !== 'boolean') throw bad('expected a boolean'); return;
    case GGUFType.FLOAT32: case GGUFType.FLOAT64: if (typeof v !== 'number') throw bad('expected a number'); return;
    case GGUFType.UINT64: case GGUFType.INT64: if (typeof v !== 'bigint' && !Number.isInteger(v)) throw bad('expected an integer'); return;
    default: {
      const lim: Record<number, [number, number]> = {
        [GGUFType.UINT8]: [0, 255], [GGUFType.INT8]: [-128, 127], [GGUFType.UINT16]: [0, 65535],
        [GGUFType.INT16]: [-32768, 32767], [GGUFType.UINT32]: [0, 2 ** 32 - 1], [GGUFType.INT32]: [-(2 ** 31), 2 ** 31 - 1],
      };
      const [lo, hi] = lim[t];
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw bad(`expected a ${GGUFType[t]}`);
    }
  }
}

function putScalar(s: ByteSink, t: GGUFType, v: GGUFScalar): void {
  switch (t) {
    case GGUFType.UINT8: s.u8(v as number); break;
    case GGUFType.INT8: s.i8(v as number); break;
    case GGUFType.UINT16: s.u16(v as number); break;
    case GGUFType.INT16: s.i16(v as number); break;
    case GGUFType.UINT32: s.u32(v as number); break;
    case GGUFType.INT32: s.i32(v as number); break;
    case GGUFType.FLOAT32: s.f32(v as number); break;
    case GGUFType.FLOAT64: s.f64(v as number); break;
    case GGUFType.UINT64: s.u64(v as number | bigint); break;
    case GGUFType.INT64: s.i64(v as number | bigint); break;
    case GGUFType.BOOL: s.u8(v ? 1 : 0); break;
    case GGUFType.STRING: s.str(v as string); break;
    default: throw new OpenELMError('gguf', `cannot write metadata of type ${t}`);
  }
}

/** The encoded header (through the padding before the data section) and each tensor's data offset. */
export function encodeGGUFHeader(meta: readonly GGUFKV[], tensors: readonly Pick<GGUFTensorSource, 'name' | 'dims' | 'type'>[]):
  { header: Uint8Array; offsets: number[]; sizes: number[]; alignment: number } {
  const seen = new Set<string>();
  let alignment = GGUF_DEFAULT_ALIGNMENT;
  for (const m of meta) {
    if (seen.has(m.key)) throw new OpenELMError('gguf', `duplicate metadata key ${m.key}`);
    seen.add(m.key);
    if (m.key === 'general.alignment') {
      const a = Number(m.value.value);
      if (m.value.type !== GGUFType.UINT32 || !(a > 0) || (a & (a - 1)) !== 0) throw new OpenELMError('gguf', 'general.alignment must be a u32 power of two');
      alignment = a;
    }
  }
  const s = new ByteSink();
  s.u32(GGUF_MAGIC);
  s.u32(GGUF_VERSION);
  s.u64(tensors.length);
  s.u64(meta.length);
  for (const m of meta) {
    s.str(m.key);
    s.u32(m.value.type);
    if (m.value.type === GGUFType.ARRAY) {
      s.u32(m.value.itemType);
      s.u64(m.value.value.length);
      for (const v of m.value.value) { checkScalar(m.key, m.value.itemType, v); putScalar(s, m.value.itemType, v); }
    } else {
      checkScalar(m.key, m.value.type, m.value.value);
      putScalar(s, m.value.type, m.value.value);
    }
  }
  const names = new Set<string>();
  const offsets: number[] = [], sizes: number[] = [];
  let off = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw new OpenELMError('gguf', `duplicate tensor name ${t.name}`);
    names.add(t.name);
    if (t.dims.length < 1 || t.dims.length > 4 || t.dims.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new OpenELMError('gguf', `tensor ${t.name} has invalid dims [${t.dims.join(', ')}]`);
    }
    const size = tensorBytes(t.type, t.dims);
    s.str(t.name);
    s.u32(t.dims.length);
    for (const d of t.dims) s.u64(d);
    s.u32(t.type);
    s.u64(off);
    offsets.push(off);
    sizes.push(size);
    off = alignUp(off + size, alignment);
  }
  s.pad(alignment);
  return { header: s.bytes(), offsets, sizes, alignment };
}

/** Write a GGUF file atomically. Returns the file size in bytes. */
export function writeGGUF(file: string, meta: readonly GGUFKV[], tensors: readonly GGUFTensorSource[]): number {
  const { header, offsets, sizes } = encodeGGUFHeader(meta, tensors);
  let end = header.length;
  writeAtomicSync(file, (fd) => {
    writeAllSync(fd, header, 0);
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i];
      const bytes = t.data();
      if (bytes.byteLength !== sizes[i]) {
        throw new OpenELMError('gguf', `tensor ${t.name}: produced ${bytes.byteLength} bytes, expected ${sizes[i]} for ${GGMLType[t.type]} [${t.dims.join(', ')}]`);
      }
      const pos = header.length + offsets[i];
      // Gaps between tensors are alignment padding; write them as zeros rather than leaving holes.
      if (pos > end) writeAllSync(fd, new Uint8Array(pos - end), end);
      writeAllSync(fd, bytes, pos);
      end = pos + bytes.byteLength;
    }
  });
  return end;
}

// ------------------------------------------------------------------------------------------------
// Reader (for tests and inspection): metadata and tensor infos are parsed eagerly, tensor data is
// read on demand.

export interface GGUFTensorInfo { name: string; dims: number[]; type: number; offset: number; }

export interface GGUFFile {
  version: number;
  metadata: Map<string, GGUFScalar | GGUFScalar[]>;
  /** Declared value type of each key (element type for arrays is not kept). */
  metadataTypes: Map<string, GGUFType>;
  tensors: GGUFTensorInfo[];
  alignment: number;
  /** Absolute file offset of the data section. */
  dataOffset: number;
  fileSize: number;
  /**
   * Keys of the tokenizer arrays a `{ vocabulary: false }` read walked past without decoding (their
   * bounds checked): absent from `metadata`; readGGUF without that option reads them.
   */
  skipped?: string[];
  /** The vocabulary a `{ vocabulary: 'packed' }` read kept as flat arrays (those keys are absent from `metadata`). */
  vocab?: GGUFPackedVocabulary;
}

/**
 * A tokenizer's arrays as the file stores them: `tokenizer.ggml.tokens` as its `count` strings
 * serialized (`raw`: each a u64 length and its bytes, not yet checked to be UTF-8: unpackStrings
 * splits them), `scores` (f32) and `token_type` (i32). A key of another element type is in
 * `metadata` as usual.
 */
export interface GGUFPackedVocabulary {
  tokens?: { raw: Uint8Array; count: number };
  scores?: Float32Array;
  types?: Int32Array;
}

export interface ReadGGUFOptions {
  /**
   * false: the vocabulary (tokenizer.ggml.* arrays of more than 64 entries: tokens, scores, types,
   * merges) is not decoded, for a reader that needs only the model (its strings were most of a
   * header's parse, and all of its garbage). 'packed': tokens, scores and token_type of more than 64
   * entries go to `vocab` as flat arrays instead (no string per token; for the tokenizer, which
   * checks the tokens' UTF-8 itself). Default true.
   */
  vocabulary?: boolean | 'packed';
}

/** Bytes of one array element of a fixed-size metadata type (0: a string, or not a scalar type). */
function scalarBytes(t: number): number {
  switch (t) {
    case GGUFType.UINT8: case GGUFType.INT8: case GGUFType.BOOL: return 1;
    case GGUFType.UINT16: case GGUFType.INT16: return 2;
    case GGUFType.UINT32: case GGUFType.INT32: case GGUFType.FLOAT32: return 4;
    case GGUFType.UINT64: case GGUFType.INT64: case GGUFType.FLOAT64: return 8;
    default: return 0;
  }
}

class FileCursor {
  pos = 0;
  private buf: Buffer;
  private bufStart = 0;
  private dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  constructor(private readonly fd: number, readonly size: number, private readonly file: string) {
    this.buf = Buffer.alloc(0);
  }
  private ensure(n: number): void {
    if (this.pos + n > this.size) throw new OpenELMError('gguf', `${this.file} is truncated: ${n} bytes needed at offset ${this.pos}, the file has ${this.size}`);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      const len = Math.min(this.size - this.pos, Math.max(n, 1 << 20));
      this.buf = Buffer.alloc(len);
      fs.readSync(this.fd, this.buf, 0, len, this.pos);
      this.bufStart = this.pos;
    }
  }
  private at(n: number): number { this.ensure(n); const o = this.pos - this.bufStart; this.pos += n; return o; }
  u8() { const o = this.at(1); return this.buf.readUInt8(o); }
  i8() { const o = this.at(1); return this.buf.readInt8(o); }
  u16() { const o = this.at(2); return this.buf.readUInt16LE(o); }
  i16() { const o = this.at(2); return this.buf.readInt16LE(o); }
  u32() { const o = this.at(4); return this.buf.readUInt32LE(o); }
  i32() { const o = this.at(4); return this.buf.readInt32LE(o); }
  f32() { const o = this.at(4); return this.buf.readFloatLE(o); }
  f64() { const o = this.at(8); return this.buf.readDoubleLE(o); }
  u64(): bigint { const o = this.at(8); return this.buf.readBigUInt64LE(o); }
  i64(): bigint { const o = this.at(8); return this.buf.readBigInt64LE(o); }
  /** A u64 that must fit a JS number (counts, offsets, dims). */
  count(what: string): number {
    // two u32 halves: no BigInt per string length (a tokenizer has tens of thousands)
    const o = this.at(8), lo = this.buf.readUInt32LE(o), hi = this.buf.readUInt32LE(o + 4);
    if (hi > 0x1fffff) throw new OpenELMError('gguf', `${this.file}: ${what} ${this.buf.readBigUInt64LE(o)} is implausibly large (corrupt file?)`);
    return hi * 2 ** 32 + lo;
  }
  str(): string {
    const n = this.count('string length');
    const o = this.at(n);
    // Buffer's decoder is much faster than a fatal TextDecoder per string (a tokenizer has tens of
    // thousands); it writes U+FFFD for every invalid sequence, so a string without one was valid
    // UTF-8, and one with it goes through the fatal decoder (a real U+FFFD passes, bad bytes throw)
    const s = this.buf.toString('utf8', o, o + n);
    if (!s.includes('\ufffd')) return s;
    try { return this.dec.decode(this.buf.subarray(o, o + n)); } catch { throw new OpenELMError('gguf', `${this.file}: string at offset ${this.pos - n} is not valid UTF-8`); }
  }
  /** Move past n bytes (their presence checked). */
  skip(n: number): void {
    if (this.pos + n > this.size) throw new OpenELMError('gguf', `${this.file} is truncated: ${n} bytes needed at offset ${this.pos}, the file has ${this.size}`);
    this.pos += n;
  }
  /**
   * Walk past n strings (each a u64 length and its bytes), their presence checked. The lengths are
   * read straight from the buffer while a string is whole in it, with no method call per string (a
   * vocabulary has 32,000 of them; on a cold start each call ran in the interpreter); else, or for a
   * length of 2^32 or more, through count() and skip(), which reload or refuse.
   */
  skipStrings(n: number): void {
    for (let j = 0; j < n; j++) {
      const b = this.buf, p = this.pos - this.bufStart;
      const m = p + 8 <= b.length ? u64Length(b, p) : -1;
      if (m >= 0 && p + 8 + m <= b.length) this.pos += 8 + m;
      else this.skip(this.count('string length'));
    }
  }
  /** n strings as the file stores them (u64 length, bytes; not decoded), copied out in one piece. */
  rawStrings(n: number): Uint8Array {
    const from = this.pos;
    this.skipStrings(n);
    const out = new Uint8Array(this.pos - from);
    if (from >= this.bufStart && this.pos <= this.bufStart + this.buf.length) out.set(this.buf.subarray(from - this.bufStart, this.pos - this.bufStart));
    else if (fs.readSync(this.fd, out, 0, out.length, from) !== out.length) throw new OpenELMError('gguf', `${this.file}: short read of ${out.length} bytes at offset ${from}`);
    return out;
  }
  /** n f32, i32 or u32 values as a typed array (copied: the file's offsets need not be aligned); null as numbers(). */
  typed(t: GGUFType, n: number): Float32Array | Int32Array | Uint32Array | null {
    if ((t !== GGUFType.FLOAT32 && t !== GGUFType.INT32 && t !== GGUFType.UINT32) || 4 * n > 1 << 26) return null;
    const o = this.at(4 * n);
    const aligned = new Uint8Array(4 * n);
    aligned.set(this.buf.subarray(o, o + 4 * n));
    return t === GGUFType.FLOAT32 ? new Float32Array(aligned.buffer) : t === GGUFType.INT32 ? new Int32Array(aligned.buffer) : new Uint32Array(aligned.buffer);
  }
  /**
   * n f32, i32 or u32 values read from the buffer in one pass (a tokenizer's scores and token types);
   * null for another type, or more than 64 MiB of them, which readScalar reads one by one.
   */
  numbers(t: GGUFType, n: number): number[] | null {
    if ((t !== GGUFType.FLOAT32 && t !== GGUFType.INT32 && t !== GGUFType.UINT32) || 4 * n > 1 << 26) return null;
    // Copied into an aligned buffer and converted by Array.from over a typed array (little-endian, as
    // on every platform Node runs on): one Buffer method call per value ran in the interpreter on a
    // cold start and was the largest part of decoding a 32,000-piece vocabulary.
    const view = this.typed(t, n);
    return view && Array.from(view);
  }
}

function readScalar(c: FileCursor, t: number, file: string): GGUFScalar {
  switch (t) {
    case GGUFType.UINT8: return c.u8();
    case GGUFType.INT8: return c.i8();
    case GGUFType.UINT16: return c.u16();
    case GGUFType.INT16: return c.i16();
    case GGUFType.UINT32: return c.u32();
    case GGUFType.INT32: return c.i32();
    case GGUFType.FLOAT32: return c.f32();
    case GGUFType.FLOAT64: return c.f64();
    case GGUFType.UINT64: return c.u64();
    case GGUFType.INT64: return c.i64();
    case GGUFType.BOOL: return c.u8() !== 0;
    case GGUFType.STRING: return c.str();
    default: throw new OpenELMError('gguf', `${file}: unknown metadata value type ${t} at offset ${c.pos - 4}`);
  }
}

/** Parse a GGUF file's header (metadata and tensor infos). */
export function readGGUF(file: string, opts: ReadGGUFOptions = {}): GGUFFile {
  const skipped: string[] = [];
  let vocab: GGUFPackedVocabulary | undefined;
  let fd: number;
  try { fd = fs.openSync(file, 'r'); } catch (e) {
    throw new OpenELMError('gguf', `cannot open ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (e as Error).message}`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const c = new FileCursor(fd, size, file);
    if (c.u32() !== GGUF_MAGIC) throw new OpenELMError('gguf', `${file} is not a GGUF file (bad magic)`);
    const version = c.u32();
    if (version !== 2 && version !== 3) throw new OpenELMError('gguf', `${file}: GGUF version ${version} is not supported (only 2 and 3)`);
    const nTensors = c.count('tensor count');
    const nKV = c.count('metadata count');
    const metadata = new Map<string, GGUFScalar | GGUFScalar[]>();
    const metadataTypes = new Map<string, GGUFType>();
    for (let i = 0; i < nKV; i++) {
      const key = c.str();
      const t = c.u32();
      metadataTypes.set(key, t);
      if (t === GGUFType.ARRAY) {
        const it = c.u32();
        const n = c.count(`array length of ${key}`);
        // Every element takes at least a byte: a longer array cannot be in the file.
        if (n > size - c.pos) throw new OpenELMError('gguf', `${file} is truncated: metadata ${key} declares ${n} values, ${size - c.pos} bytes remain`);
        if (opts.vocabulary === false && n > 64 && key.startsWith('tokenizer.ggml.') && (it === GGUFType.STRING || scalarBytes(it))) {
          if (it === GGUFType.STRING) c.skipStrings(n);
          else c.skip(n * scalarBytes(it));
          skipped.push(key);
          continue;
        }
        const packAs = opts.vocabulary !== 'packed' || n <= 64 ? undefined
          : key === 'tokenizer.ggml.tokens' && it === GGUFType.STRING ? 'tokens'
          : 4 * n > 1 << 26 ? undefined
          : key === 'tokenizer.ggml.scores' && it === GGUFType.FLOAT32 ? 'scores'
          : key === 'tokenizer.ggml.token_type' && it === GGUFType.INT32 ? 'types' : undefined;
        if (packAs !== undefined) {
          vocab ??= {};
          if (packAs === 'tokens') vocab.tokens = { raw: c.rawStrings(n), count: n };
          else if (packAs === 'scores') vocab.scores = c.typed(it, n) as Float32Array;
          else vocab.types = c.typed(it, n) as Int32Array;
          continue;
        }
        let arr: GGUFScalar[] | null = c.numbers(it, n);
        if (!arr) {
          arr = new Array(n);
          for (let j = 0; j < n; j++) arr[j] = readScalar(c, it, file);
        }
        metadata.set(key, arr);
      } else metadata.set(key, readScalar(c, t, file));
    }
    const tensors: GGUFTensorInfo[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = c.str();
      const nd = c.u32();
      if (nd < 1 || nd > 4) throw new OpenELMError('gguf', `${file}: tensor ${name} has ${nd} dims`);
      const dims: number[] = [];
      for (let j = 0; j < nd; j++) dims.push(c.count(`dim of ${name}`));
      const type = c.u32();
      const offset = c.count(`offset of ${name}`);
      tensors.push({ name, dims, type, offset });
    }
    const al = metadata.get('general.alignment');
    const alignment = typeof al === 'number' ? al : GGUF_DEFAULT_ALIGNMENT;
    const dataOffset = alignUp(c.pos, alignment);
    for (const t of tensors) {
      // Types this project cannot read are reported by whoever asks for the tensor, by name.
      if (!isReadableGGMLType(t.type)) continue;
      if (t.offset % alignment !== 0) throw new OpenELMError('gguf', `${file}: tensor ${t.name} offset ${t.offset} is not a multiple of the alignment ${alignment}`);
      const end = dataOffset + t.offset + tensorBytes(t.type, t.dims);
      if (end > size) throw new OpenELMError('gguf', `${file} is truncated: tensor ${t.name} ends at byte ${end}, the file has ${size}`);
    }
    return { version, metadata, metadataTypes, tensors, alignment, dataOffset, fileSize: size, ...(skipped.length ? { skipped } : {}), ...(vocab ? { vocab } : {}) };
  } finally {
    fs.closeSync(fd);
  }
}

/** A string's little-endian u64 length at b[p..p+8), or -1 when it is 4 GiB or more (its high word not 0). */
function u64Length(b: Uint8Array, p: number): number {
  return (b[p + 4] | b[p + 5] | b[p + 6] | b[p + 7]) !== 0 ? -1 : (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
}

/**
 * The bytes of `count` serialized strings (as GGUFPackedVocabulary holds them) back to back, and
 * each one's end: string i is bytes[ends[i], ends[i + 1]).
 */
export function unpackStrings(raw: Uint8Array, count: number): { bytes: Uint8Array; ends: Int32Array } {
  const ends = new Int32Array(count + 1), bytes = new Uint8Array(raw.length - 8 * count);
  let p = 0, len = 0;
  for (let j = 0; j < count; j++) {
    const m = u64Length(raw, p);
    if (m < 0) throw new OpenELMError('gguf', `string ${j} of ${count} is 4 GiB or longer`);
    p += 8;
    for (let k = 0; k < m; k++) bytes[len + k] = raw[p + k];
    p += m;
    len += m;
    ends[j + 1] = len;
  }
  return { bytes, ends };
}

/** Values in a tensor of these (ggml-order) dims. */
export function ggufNumel(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

/** Read one tensor's raw bytes. */
export function readGGUFTensorBytes(file: string, g: GGUFFile, name: string): Uint8Array {
  const t = g.tensors.find((x) => x.name === name);
  if (!t) throw new OpenELMError('gguf', `${file} has no tensor ${name}`);
  if (!isReadableGGMLType(t.type)) throw new OpenELMError('gguf', `${file}: tensor ${name} has ggml type ${ggmlTypeName(t.type)}, which this reader does not decode`);
  const n = tensorBytes(t.type, t.dims);
  const out = new Uint8Array(n);
  const fd = fs.openSync(file, 'r');
  try { fs.readSync(fd, out, 0, n, g.dataOffset + t.offset); } finally { fs.closeSync(fd); }
  return out;
}

/** Read one tensor decoded to f32 (exactly as gguf-py dequantizes it), flattened in ggml order. */
export function readGGUFTensorF32(file: string, g: GGUFFile, name: string): Float32Array {
  const t = g.tensors.find((x) => x.name === name)!;
  const raw = readGGUFTensorBytes(file, g, name);
  const out = new Float32Array(ggufNumel(t.dims));
  dequantize(t.type as GGMLType, raw, 0, out.length, out);
  return out;
}
