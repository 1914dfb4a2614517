// Build an OpenELM from a source of named tensors (a safetensors checkpoint, or anything that reads
// like one) on a backend. Each tensor is read straight into its final buffer (converted on the fly
// while streaming), so loading never holds two copies of the model; only q8/q4 quantization stages
// a few rows in f32. Opening folders and files is the caller's business (io/model-folder.ts in
// Node), which keeps this module free of any file system.

import type { Backend, ConvertDType, Tensor, Weight, WeightDType } from '../backends/backend.js';
import { WEIGHT_DTYPES } from '../backends/backend.js';
import { blockRowBytes, isBlockDType, rowsWeight, setWeightRows, weightBytes } from '../backends/weight-format.js';
import { OpenELMError } from '../core/errors.js';
import { formatBytes } from '../core/bytes.js';
import { assertFinite } from '../core/finite.js';
import { numel, paramSpecs, type OpenELMConfig } from './config.js';
import { OpenELM, assembleWeights, type ModelWeights } from './openelm.js';
import { checkBufferLimit } from './device-fit.js';

export type LoadDType = ConvertDType | 'auto';

/**
 * f32 values of the staging buffer q8/q4 quantization reads rows through (1 MiB: what the WASM
 * backend stages per quantize call, so a larger one only holds more memory until V8 frees it).
 */
const STAGE_FLOATS = 1 << 18;

/** One row range of a weight as its file stores it (TensorSource.storedWeight). */
export interface StoredPart {
  dtype: Exclude<WeightDType, 'rows'>;
  rows: number;
  /**
   * Fill a weight's storage (allocWeight(dtype, rows, cols): its data, and for q8/q4 its scales)
   * with the stored values.
   */
  read(dst: Weight['data'], scales?: Weight['scales']): void;
  /** Bytes of the stored blocks (block dtypes), when readRange can read them in pieces. */
  bytes?: number;
  /** Bytes [at, at + out.length) of the stored blocks into out (Backend.loadStored). */
  readRange?(at: number, out: Uint8Array): void;
}

/** What loading needs from a checkpoint (io/checkpoint.ts's Checkpoint is one). */
export interface TensorSource {
  /** The model as the user named it (folder, URL), for messages. */
  readonly location?: string;
  names(): string[];
  /** `file` names where the tensor lives, for messages. */
  info(name: string): { dtype: string; shape: readonly number[]; file?: string };
  expectShape(name: string, shape: readonly number[]): unknown;
  readF32(name: string, dst: Float32Array): Float32Array;
  readF32Range(name: string, start: number, count: number, dst: Float32Array): Float32Array;
  readBF16(name: string, dst: Uint16Array): Uint16Array;
  readF16(name: string, dst: Uint16Array): Uint16Array;
  /** True when every tensor reads as its exact f32 values whatever type stores it (GGUF, MLX, .pt readers). */
  readonly decoded?: boolean;
  /**
   * A linear weight held in a format the backends run as stored (GGUF, MLX 4-bit, a pre-quantized
   * q8/q4 folder): its row ranges in order (one, unless they differ in type). Null: read it as
   * f32/bf16/f16. Used when the load dtype is 'auto' or the stored dtype itself.
   */
  storedWeight?(name: string): StoredPart[] | null;
}

export function validateDType(d: string): LoadDType {
  if (d === 'auto' || (WEIGHT_DTYPES as readonly string[]).includes(d)) return d as LoadDType;
  throw new OpenELMError('usage', `unknown dtype "${d}"; choose one of auto, ${WEIGHT_DTYPES.join(', ')}`);
}

/** An OpenELM on `be` with the weights of `src`. Throws OpenELMError naming the tensor on any problem. */
export function modelFromSource(src: TensorSource, config: OpenELMConfig, be: Backend, dtype: LoadDType = 'auto'): OpenELM {
  return new OpenELM(config, be, readWeights(src, config, be, validateDType(dtype)));
}

/** The stored parts of `name` when a load as `want` keeps them as stored, else null. */
function storedFor(src: TensorSource, name: string, want: LoadDType): StoredPart[] | null {
  const parts = src.storedWeight?.(name) ?? null;
  return parts && (want === 'auto' || parts.every((p) => p.dtype === want)) ? parts : null;
}

function storageFor(src: TensorSource, name: string, want: LoadDType): ConvertDType {
  if (want !== 'auto') return want;
  const d = src.info(name).dtype;
  // Q8/Q4: a pre-quantized folder's weight it cannot hand over as stored (a version-1 q8 folder's
  // f32 scales): 'auto' keeps its dtype, quantizing its values again
  return d === 'BF16' ? 'bf16' : d === 'F16' ? 'f16' : d === 'Q8' ? 'q8' : d === 'Q4' ? 'q4' : 'f32';
}

export function readWeights(src: TensorSource, c: OpenELMConfig, be: Backend, dtype: LoadDType): ModelWeights {
  const specs = new Map(paramSpecs(c).map((p) => [p.name, p.shape]));
  for (const [name, shape] of specs) src.expectShape(name, shape);
  for (const name of src.names()) {
    const t = src.info(name);
    if (!['F32', 'F16', 'BF16', 'F64'].includes(t.dtype) && !src.decoded) throw new OpenELMError('checkpoint', `tensor ${name} has dtype ${t.dtype}; OpenELM weights must be F32, F16 or BF16`);
  }
  checkRoom(src, c, be, dtype, specs);
  const tensors: Tensor[] = [], weights: Weight[] = [];
  const fileOf = (name: string): string => src.info(name).file ?? name;
  let stage = new Float32Array(0);
  // q4 fits each block to the activations its columns meet: a layer that reads a norm's output
  // sees channel j scaled by that norm's weight g[j], so an error in column j costs ∝ g[j]².
  const importanceOf = (name: string): Float32Array | undefined => {
    const m = /^(.*\.)(attn\.qkv_proj|ffn\.proj_1)\.weight$/.exec(name);
    if (!m) return undefined;
    const norm = m[1] + (m[2] === 'attn.qkv_proj' ? 'attn_norm.weight' : 'ffn_norm.weight');
    if (!specs.has(norm)) return undefined;
    const g = src.readF32(norm, new Float32Array(numel(specs.get(norm)!)));
    for (let i = 0; i < g.length; i++) g[i] *= g[i];
    return g;
  };
  const vec = (name: string): Tensor => {
    const host = src.readF32(name, new Float32Array(numel(specs.get(name)!)));
    assertFinite(name, fileOf(name), host, 'f32');
    const t = be.alloc(host.length);
    tensors.push(t);
    be.write(t, host);
    return t;
  };
  const lin = (name: string, want: LoadDType = dtype): Weight => {
    const [rows, cols] = specs.get(name)!;
    const stored = storedFor(src, name, want);
    if (stored) return storedWeight(name, stored, cols);
    const st = storageFor(src, name, want);
    const w = be.allocWeight(st, rows, cols);
    weights.push(w);
    const file = fileOf(name);
    if (st === 'f32') src.readF32(name, w.data as Float32Array);
    else if (st === 'bf16') src.readBF16(name, w.data as Uint16Array);
    else if (st === 'f16') src.readF16(name, w.data as Uint16Array);
    else {
      // Quantize row chunks read straight from the file through one staging buffer of ≤ 1 MiB
      // shared by every tensor (never a whole tensor in f32, and no garbage per tensor).
      const step = Math.max(1, Math.floor(STAGE_FLOATS / cols));
      if (stage.length < step * cols) stage = new Float32Array(step * cols);
      const imp = st === 'q4' ? importanceOf(name) : undefined;
      for (let r = 0; r < rows; r += step) {
        const n = Math.min(rows - r, step) * cols;
        const rowsF32 = src.readF32Range(name, r * cols, n, stage).subarray(0, n);
        assertFinite(name, file, rowsF32, 'f32', r * cols);
        try {
          if (be.quantizeRows) be.quantizeRows(w, r, rowsF32, imp); else setWeightRows(w, r, rowsF32, imp);
        } catch (e) {
          // a value the dtype cannot hold (a q8 block past f16's scales): name the tensor
          if (e instanceof OpenELMError && e.code === 'dtype') throw new OpenELMError('dtype', `tensor ${name} in ${file}: ${e.message}`);
          throw e;
        }
      }
    }
    if (st === 'f32' || st === 'bf16' || st === 'f16') assertFinite(name, file, w.data as Float32Array | Uint16Array, st);
    be.prepareWeight(w);
    return w;
  };
  // the staged read where the backend has one and the sizes agree (else read() says what is wrong)
  const staged = (p: StoredPart, cols: number): boolean =>
    !!(be.loadStored || be.loadStoredMany) && !!p.readRange && isBlockDType(p.dtype) && p.bytes === p.rows * blockRowBytes(p.dtype, cols);
  // Every staged part of the model in one call where the backend takes several (loadStoredMany:
  // one pipeline, no per-weight start-up), before assembleWeights asks for them in its order.
  const loaded = new Map<string, Weight>();   // `${name} ${part index}`
  // Blocks go from the file into the backend's storage as they are: memory stays the file's size.
  const storedWeight = (name: string, parts: StoredPart[], cols: number): Weight => {
    const ws = parts.map((p, i) => {
      let w: Weight;
      const pre = loaded.get(`${name} ${i}`);
      if (pre) { w = pre; loaded.delete(`${name} ${i}`); }
      else if (staged(p, cols)) {
        w = be.loadStored ? be.loadStored(p.dtype, p.rows, cols, (at, out) => p.readRange!(at, out)) : be.loadStoredMany!([{ dtype: p.dtype, rows: p.rows, cols, read: (at, out) => p.readRange!(at, out) }])[0];
        weights.push(w);
      } else {
        w = be.allocWeight(p.dtype, p.rows, cols);
        weights.push(w);
        p.read(w.data, w.scales);
      }
      be.prepareWeight(w);
      return w;
    });
    if (ws.length === 1) return ws[0];
    const w = rowsWeight(ws);
    be.prepareWeight(w);
    return w;
  };
  try {
    if (be.loadStoredMany) {
      const batch: { key: string; p: StoredPart; cols: number }[] = [];
      for (const [name, shape] of specs) {
        if (shape.length !== 2) continue;
        (storedFor(src, name, dtype) ?? []).forEach((p, i) => { if (staged(p, shape[1])) batch.push({ key: `${name} ${i}`, p, cols: shape[1] }); });
      }
      const ws = be.loadStoredMany(batch.map(({ p, cols }) => ({ dtype: p.dtype, rows: p.rows, cols, read: (at: number, out: Uint8Array) => p.readRange!(at, out) })));
      weights.push(...ws);
      batch.forEach(({ key }, i) => { loaded.set(key, ws[i]); });
    }
    const model = assembleWeights(c, vec, (name) => lin(name, dtype));
    // (a tensor the model does not use: nothing is left, but never hold its storage)
    for (const w of loaded.values()) be.freeWeight(w);
    return model;
  } catch (e) {
    for (const t of tensors) be.free(t);
    for (const w of weights) be.freeWeight(w);
    throw e;
  }
}


/**
 * Refuse, before anything is allocated, weights that do not fit what the backend may hold (for the
 * WASM backend: the machine's available memory), naming the sizes and the dtypes that would fit.
 */
function checkRoom(src: TensorSource, c: OpenELMConfig, be: Backend, dtype: LoadDType, specs: Map<string, number[]>): void {
  const lim = be.bufferLimit?.();
  if (lim) {
    // Block formats (GGUF, MLX) have no GPU decoder: the device holds them widened to f32.
    const storageOf = (name: string, d: LoadDType): ConvertDType => {
      const stored = storedFor(src, name, d);
      if (!stored) return storageFor(src, name, d);
      const d0 = stored[0].dtype;
      return stored.length === 1 && (d0 === 'q8' || d0 === 'q4') ? d0 : 'f32';
    };
    checkBufferLimit(src.location ?? 'the model', c, dtype, storageOf, lim);
  }
  const mem = be.memory();
  if (!Number.isFinite(mem.limit)) return;
  const room = mem.limit - mem.inUse;
  const bytesAt = (d: LoadDType): number => {
    let n = 0;
    for (const [name, shape] of specs) {
      if (shape.length === 1) { n += numel(shape) * 4; continue; }
      const stored = storedFor(src, name, d);
      if (stored) { for (const p of stored) n += weightBytes(p.dtype, p.rows * shape[1], shape[1]); continue; }
      n += weightBytes(storageFor(src, name, d), numel(shape), shape[1]);
    }
    return n;
  };
  const need = bytesAt(dtype);
  if (need <= room) return;
  const fits = WEIGHT_DTYPES.filter((d) => bytesAt(d) <= room);
  const hint = fits.length ? `it would fit with --dtype ${fits.map((d) => `${d} (${formatBytes(bytesAt(d))})`).join(' or ')}`
    : `even q4 needs ${formatBytes(bytesAt('q4'))}`;
  throw new OpenELMError('memory', `the weights need ${formatBytes(need)}${dtype === 'auto' ? '' : ` as ${dtype}`} but ${formatBytes(room)} of memory are available; ${hint}`);
}
