// A pre-quantized OpenELM folder: an HF folder (config.json + model.safetensors, Apple's tensor
// names) whose linear weights and embedding hold our q8 or q4 layout exactly as the backends store
// it (backends/weight-format.ts), so loading copies bytes instead of fitting blocks. docs/formats.md
// ("Pre-quantized q8/q4 folders") describes it:
//
//   config.json   the model's keys plus "openelm_quantization": {"dtype": "q8"|"q4", "version": 2,
//                 "block_size": 32}
//   <name>        a linear weight or the embedding: q8 I8 [rows, cols] (one int8 per value);
//                 q4 U8 [rows, cols/2] (16 bytes per block of 32: value j low nibble, j+16 high)
//   <base>.scales q8 F16 [rows, cols/32] (one scale per block); q4 U8 [rows, q4MetaBytes(cols)]
//                 (per row: D and M as f32, the blocks' u8 scale codes, their i8 min codes, padding)
//   norms         as the source stored them (F32, BF16 or F16); a load keeps them in f32
//   __metadata__  {"format": "openelm", "openelm.quantization": "q4", "openelm.quantization_version": "2"}
//
// Version 1 differs in q8 only: F32 scales (q8 kept an f32 scale per block then). Such a folder
// still reads: its q8 weights decode to their exact values with their own scales, and a q8 load
// quantizes those again (as a q4 folder loaded as q8 is); its q4 weights load as stored.
//
// Nothing Node-side here (the browser bundle takes this module): the Node loader wraps a
// Checkpoint, the browser loader its BrowserCheckpoint.

import { OpenELMError } from '../core/errors.js';
import { checkRange } from '../core/range-check.js';
import type { Weight } from '../backends/backend.js';
import { QBLOCK, q4MetaBytes, weightRowToF32 } from '../backends/weight-format.js';
import { f32ToBf16, f32ToF16 } from '../core/dtype.js';
import type { StoredPart } from '../model/load.js';
import { paramSpecs, type OpenELMConfig } from '../model/config.js';

/** The config.json key naming the layout. */
export const QUANT_CONFIG_KEY = 'openelm_quantization';
/** The layout version this build writes; it reads this one and QUANT_READS, and refuses others. */
export const QUANT_VERSION = 2;
/** Every version this build reads (1: q8 scales in F32). */
export const QUANT_READS: readonly number[] = [1, 2];
export type QuantDType = 'q8' | 'q4';
export const QUANT_DTYPES: readonly QuantDType[] = ['q8', 'q4'];

export interface QuantLayout { dtype: QuantDType; version: number; }

/** The config.json entry for a folder of `dtype` weights. */
export function quantConfigEntry(dtype: QuantDType): Record<string, unknown> {
  return { dtype, version: QUANT_VERSION, block_size: QBLOCK };
}

/** The `__metadata__` of the safetensors files of such a folder. */
export function quantFileMetadata(dtype: QuantDType): Record<string, string> {
  return { format: 'openelm', 'openelm.quantization': dtype, 'openelm.quantization_version': String(QUANT_VERSION) };
}

/**
 * The layout a parsed config.json declares, or null for an ordinary folder. Throws one line for
 * an entry this build cannot read (`where` names the file).
 */
export function quantLayoutOf(cfg: unknown, where: string): QuantLayout | null {
  if (typeof cfg !== 'object' || cfg === null || !(QUANT_CONFIG_KEY in cfg)) return null;
  const q = (cfg as Record<string, unknown>)[QUANT_CONFIG_KEY];
  if (typeof q !== 'object' || q === null || Array.isArray(q)) throw new OpenELMError('config', `${where}: "${QUANT_CONFIG_KEY}" must be an object`);
  const { dtype, version, block_size: bs } = q as Record<string, unknown>;
  if (typeof version !== 'number' || !QUANT_READS.includes(version)) {
    throw new OpenELMError('config', `${where}: ${QUANT_CONFIG_KEY} version ${String(version)} is not one this openelm reads (versions ${QUANT_READS.join(', ')}); convert the model again from its f32/bf16 checkpoint`);
  }
  if (!(QUANT_DTYPES as readonly unknown[]).includes(dtype)) {
    throw new OpenELMError('config', `${where}: ${QUANT_CONFIG_KEY} dtype "${String(dtype)}" is not one of ${QUANT_DTYPES.join(', ')}`);
  }
  if (bs !== undefined && bs !== QBLOCK) throw new OpenELMError('config', `${where}: ${QUANT_CONFIG_KEY} block_size ${String(bs)} is not ${QBLOCK}`);
  return { dtype: dtype as QuantDType, version };
}

/** config.json's keys without the layout entry (what a model's config is, whatever stores its weights). */
export function withoutQuantEntry<T>(cfg: T): T {
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg) || !(QUANT_CONFIG_KEY in cfg)) return cfg;
  const rest: Record<string, unknown> = { ...(cfg as Record<string, unknown>) };
  delete rest[QUANT_CONFIG_KEY];
  return rest as T;
}

/** Name of the scales tensor of linear weight `name` (`….weight` → `….scales`). */
export function scalesName(name: string): string { return `${name.slice(0, -'.weight'.length)}.scales`; }

/** Stored dtype and shape of a quantized weight's data and scales (in a folder of layout `version`). */
export function quantTensorShapes(dtype: QuantDType, rows: number, cols: number, version = QUANT_VERSION): { data: [string, number[]]; scales: [string, number[]] } {
  return dtype === 'q8'
    ? { data: ['I8', [rows, cols]], scales: [version === 1 ? 'F32' : 'F16', [rows, cols / QBLOCK]] }
    : { data: ['U8', [rows, cols / 2]], scales: ['U8', [rows, q4MetaBytes(cols)]] };
}

/** What the reader needs of the folder's safetensors (io/checkpoint.ts Checkpoint, browser/tensor-source.ts BrowserCheckpoint). */
export interface RawTensorReader {
  readonly location: string;
  names(): string[];
  info(name: string): { dtype: string; shape: readonly number[]; file?: string };
  readRawRange(name: string, at: number, len: number, dst: Uint8Array): Uint8Array;
  readF32(name: string, dst: Float32Array): Float32Array;
  readF32Range(name: string, start: number, count: number, dst: Float32Array): Float32Array;
  readBF16(name: string, dst: Uint16Array): Uint16Array;
  readF16(name: string, dst: Uint16Array): Uint16Array;
  close(): void;
}

/** Bytes copied per read into a weight's storage (a browser reads a Blob slice of this size). */
const COPY_BYTES = 1 << 20;
/** Stored bytes a range decode reads at a time (whole rows; one row when a row is larger). */
const SPAN_BYTES = 1 << 16;

/**
 * A pre-quantized folder's tensors under HF names. The quantized weights load as stored
 * (storedWeight) when the load asks for their dtype or 'auto'; any other read decodes them to
 * their exact f32 values (weightRowToF32), so `--dtype f32` dequantizes and the other quantized
 * dtype fits its blocks again to those values.
 */
export class QuantizedModel {
  readonly location: string;
  /** Every tensor reads as its exact f32 values (model/load.ts TensorSource). */
  readonly decoded = true;
  private readonly spec = new Map<string, number[]>();
  private spanData = new Uint8Array(0);
  private spanScales = new Uint8Array(0);
  private row = new Float32Array(0);

  constructor(private readonly inner: RawTensorReader, readonly config: OpenELMConfig, readonly layout: QuantLayout) {
    this.location = inner.location;
    const have = new Set(inner.names());
    const where = (name: string) => inner.info(name).file ?? inner.location;
    const expect = (name: string, dtypes: readonly string[], shape: readonly number[], what: string) => {
      if (!have.has(name)) throw new OpenELMError('checkpoint', `tensor ${name} (${what}) not found in ${inner.location}`);
      const t = inner.info(name);
      if (!dtypes.includes(t.dtype) || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new OpenELMError('checkpoint', `tensor ${name} is ${t.dtype} [${t.shape.join(',')}], a ${layout.dtype} ${what} must be ${dtypes.join('/')} [${shape.join(',')}] (in ${where(name)})`);
      }
    };
    for (const p of paramSpecs(config)) {
      this.spec.set(p.name, p.shape);
      if (p.shape.length === 1) { expect(p.name, ['F32', 'BF16', 'F16'], p.shape, 'norm'); continue; }
      const [rows, cols] = p.shape;
      if (cols % QBLOCK !== 0) throw new OpenELMError('checkpoint', `${p.name} has rows of ${cols} values, not whole blocks of ${QBLOCK}`);
      const s = quantTensorShapes(layout.dtype, rows, cols, layout.version);
      expect(p.name, [s.data[0]], s.data[1], 'weight');
      expect(scalesName(p.name), [s.scales[0]], s.scales[1], 'weight\'s scales');
    }
  }

  names(): string[] { return [...this.spec.keys()]; }
  has(name: string): boolean { return this.spec.has(name); }

  /** Quantized weights say 'Q8'/'Q4' (read as f32 unless loaded as stored); norms their stored type. */
  info(name: string): { name: string; dtype: string; shape: readonly number[]; file?: string } {
    const shape = this.spec.get(name);
    if (!shape) throw new OpenELMError('checkpoint', `tensor ${name} not found in ${this.location}`);
    const t = this.inner.info(name);
    return { name, dtype: shape.length === 2 ? this.layout.dtype.toUpperCase() : t.dtype, shape, file: t.file };
  }

  expectShape(name: string, shape: readonly number[]): ReturnType<QuantizedModel['info']> {
    const t = this.info(name);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new OpenELMError('checkpoint', `tensor ${name} has shape [${t.shape.join(',')}], expected [${shape.join(',')}] (in ${this.location})`);
    }
    return t;
  }

  private numel(name: string): number { return this.info(name).shape.reduce((a, b) => a * b, 1); }

  readF32(name: string, dst?: Float32Array, dstOffset = 0): Float32Array {
    const n = this.numel(name), out = dst ?? new Float32Array(n);
    if (dstOffset + n > out.length) throw new OpenELMError('checkpoint', `tensor ${name}: destination too small (${out.length - dstOffset} < ${n})`);
    this.decodeRange(name, 0, n, out.subarray(dstOffset, dstOffset + n));
    return out;
  }

  readF32Range(name: string, start: number, count: number, dst: Float32Array): Float32Array {
    checkRange(`tensor ${name}`, this.numel(name), start, count, dst.length);
    this.decodeRange(name, start, count, dst);
    return dst;
  }

  /** Norms stored in that type: their bits; anything else: its f32 values rounded. */
  private read16(name: string, want: 'BF16' | 'F16', dst: Uint16Array | undefined, dstOffset: number): Uint16Array {
    const n = this.numel(name), out = dst ?? new Uint16Array(n);
    if (dstOffset + n > out.length) throw new OpenELMError('checkpoint', `tensor ${name}: destination too small (${out.length - dstOffset} < ${n})`);
    const view = out.subarray(dstOffset, dstOffset + n);
    if (this.info(name).dtype === want) { if (want === 'BF16') this.inner.readBF16(name, view); else this.inner.readF16(name, view); return out; }
    const v = this.readF32(name), enc = want === 'BF16' ? f32ToBf16 : f32ToF16;
    for (let i = 0; i < n; i++) view[i] = enc(v[i]);
    return out;
  }

  readBF16(name: string, dst?: Uint16Array, dstOffset = 0): Uint16Array { return this.read16(name, 'BF16', dst, dstOffset); }
  readF16(name: string, dst?: Uint16Array, dstOffset = 0): Uint16Array { return this.read16(name, 'F16', dst, dstOffset); }

  /** Bytes per row of a quantized weight's data and scales. */
  private rowBytes(cols: number): [number, number] {
    return this.layout.dtype === 'q8' ? [cols, (cols / QBLOCK) * (this.v1q8 ? 4 : 2)] : [cols / 2, q4MetaBytes(cols)];
  }

  /** A version-1 q8 folder: F32 scales, which today's q8 storage does not hold. */
  private get v1q8(): boolean { return this.layout.dtype === 'q8' && this.layout.version === 1; }

  /** A quantized weight as stored: its bytes go straight into the backend's storage, a row range at a time. */
  storedWeight(name: string): StoredPart[] | null {
    const shape = this.spec.get(name);
    // version-1 q8 reads as its values (decodeRange), which a q8 load quantizes again
    if (shape?.length !== 2 || this.v1q8) return null;
    const [rows, cols] = shape;
    const [db, sb] = this.rowBytes(cols);
    const copy = (tensor: string, v: ArrayBufferView, bytes: number) => {
      const out = new Uint8Array(v.buffer, v.byteOffset, bytes);
      for (let at = 0; at < bytes; at += COPY_BYTES) {
        const n = Math.min(COPY_BYTES, bytes - at);
        this.inner.readRawRange(tensor, at, n, out.subarray(at, at + n));
      }
    };
    return [{
      dtype: this.layout.dtype, rows,
      read: (dst: Weight['data'], scales?: Weight['scales']) => {
        if (!scales) throw new OpenELMError('usage', `${name}: a ${this.layout.dtype} weight is read with its scales`);
        copy(name, dst, rows * db);
        copy(scalesName(name), scales, rows * sb);
        this.checkScales(name, scales, rows, cols);
      },
    }];
  }

  /** Refuse non-finite scales (a damaged file) naming the tensor and row, as a load from f32 refuses non-finite values. */
  private checkScales(name: string, scales: NonNullable<Weight['scales']>, rows: number, cols: number): void {
    const bad = (r: number) => new OpenELMError('checkpoint', `tensor ${scalesName(name)} row ${r} holds a scale that is not finite (in ${this.inner.info(scalesName(name)).file ?? this.location})`);
    if (this.layout.dtype === 'q8') {
      const s = scales as Uint16Array, nb = cols / QBLOCK;
      for (let i = 0; i < rows * nb; i++) if ((s[i] & 0x7c00) === 0x7c00) throw bad(Math.floor(i / nb));
      return;
    }
    const dv = new DataView(scales.buffer, scales.byteOffset, scales.byteLength), mb = q4MetaBytes(cols);
    for (let r = 0; r < rows; r++) {
      if (!Number.isFinite(dv.getFloat32(r * mb, true)) || !Number.isFinite(dv.getFloat32(r * mb + 4, true))) throw bad(r);
    }
  }

  /** Values [start, start + count) into dst: only the rows holding them, SPAN_BYTES of stored data at a time. */
  private decodeRange(name: string, start: number, count: number, dst: Float32Array): void {
    const shape = this.spec.get(name)!;
    if (shape.length === 1) { this.inner.readF32Range(name, start, count, dst); return; }
    const cols = shape[1], end = start + count, [db, sb] = this.rowBytes(cols);
    const per = Math.max(1, Math.floor(SPAN_BYTES / db));
    if (this.spanData.length < per * db) this.spanData = new Uint8Array(per * db);
    if (this.spanScales.length < per * sb) this.spanScales = new Uint8Array(per * sb);
    if (this.row.length < cols) this.row = new Float32Array(cols);
    for (let r = Math.floor(start / cols); r * cols < end; r += per) {
      const n = Math.min(per, Math.ceil(end / cols) - r);
      const data = this.inner.readRawRange(name, r * db, n * db, this.spanData);
      const sc = this.inner.readRawRange(scalesName(name), r * sb, n * sb, this.spanScales);
      const q8 = new Int8Array(data.buffer, data.byteOffset, n * db);
      const w: Weight = this.layout.dtype === 'q8'
        ? { dtype: 'q8', rows: n, cols, data: q8, scales: new Uint16Array(sc.buffer, sc.byteOffset, n * sb / 2) }
        : { dtype: 'q4', rows: n, cols, data, scales: sc };
      const s32 = this.v1q8 ? new Float32Array(sc.buffer, sc.byteOffset, n * sb / 4) : null;
      for (let i = 0; i < n; i++) {
        const from = Math.max(start, (r + i) * cols), to = Math.min(end, (r + i + 1) * cols);
        if (from >= to) continue;
        if (s32) { for (let k = 0; k < cols; k++) this.row[k] = q8[i * cols + k] * s32[(i * cols + k) / QBLOCK | 0]; }
        else weightRowToF32(w, i, this.row);
        dst.set(this.row.subarray(from - (r + i) * cols, to - (r + i) * cols), from - start);
      }
    }
  }

  close(): void { this.inner.close(); }
}
