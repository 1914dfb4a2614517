// MLX model folders: the layout mlx-lm writes and loads, and the layout of CoreNet's own MLX
// converter (corenet/mlx_examples/open_elm/convert.py). See docs/formats.md.
//
// mlx-lm:  config.json (the HF keys, per-layer `ffn_multipliers`, `num_query_heads`,
//          `num_kv_heads`, plus `"quantization": {"group_size", "bits"}` when quantized),
//          model.safetensors (metadata {"format": "mlx"}) and model.safetensors.index.json; HF
//          tensor names. A quantized layer stores `<path>.weight` as uint32 words, and
//          `<path>.scales` / `<path>.biases` [rows, cols / group_size] in the weight's dtype.
//          Every Linear and the Embedding is quantized unless its input width is not a multiple
//          of the group size (mlx-lm's quantize_model predicate).
// CoreNet: weights.safetensors with CoreNet names (no `transformer.`, 32128-row embedding) and
//          config.json {model_name, vocab_size, max_context_length[, quantization]}; only Linear
//          layers are quantized.
//
// Affine quantization (mlx.core.quantize, mlx/backend/cpu/quantized.cpp), per group of
// `group_size` consecutive values of a row, in float32:
//   scale = max((max − min) / (2^bits − 1), 1e-7), negated unless |min| > |max|;
//   edge = the end with the larger magnitude; q0 = rint(edge / scale);
//   if q0 ≠ 0: scale = edge / q0, bias = edge, else bias = 0;
//   q = clamp(rint((w − bias) / scale), 0, 2^bits − 1); scale and bias are stored in the weight's dtype.
// Codes form one little-endian bit stream per row (value j at bit j·bits), stored as uint32 words.
// The value of code q is scale·q + bias (in float32): that is what runs, never a re-quantization.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../core/dtype.js';
import { openCheckpoint, type Checkpoint } from '../io/checkpoint.js';
import { readJsonFile, writeJsonFileAtomic } from '../io/json.js';
import { writeSafetensorsSync, type SafetensorsDType, type TensorToWrite } from '../io/safetensors.js';
import { DecodedTensorSource, type SourceTensorInfo, type TensorReader } from '../io/tensor-source.js';
import type { Weight } from '../backends/backend.js';
import type { StoredPart } from '../model/load.js';
import { paramSpecs, resolveConfig, type OpenELMConfig, type OpenELMHFConfig } from '../model/config.js';
import { CORENET_MODEL_NAMES, corenetModelFromYaml } from './corenet.js';

export const MLX_BITS = [2, 3, 4, 5, 6, 8] as const;
export const MLX_GROUP_SIZES = [32, 64, 128] as const;

export interface MlxQuantization { groupSize: number; bits: number; }

const fr = Math.fround;
/** Code bytes a range read decodes at a time (whole rows; one row when a row is larger). */
const SPAN_BYTES = 1 << 16;

/** C's rint in the default rounding mode: nearest, ties to even. */
function rint(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export type MlxDType = 'F32' | 'BF16' | 'F16';
const roundTo = (d: MlxDType): ((x: number) => number) =>
  d === 'BF16' ? (x) => bf16ToF32(f32ToBf16(x)) : d === 'F16' ? (x) => f16ToF32(f32ToF16(x)) : fr;

export interface MlxQuantized {
  /** rows × (cols·bits/32) words. */
  weight: Uint32Array;
  /** rows × cols/groupSize, exactly representable in the weight dtype. */
  scales: Float32Array;
  biases: Float32Array;
}

/** mlx.core.quantize of a row-major [rows, cols] matrix whose values are already in `dtype`. */
export function mlxQuantize(w: Float32Array, rows: number, cols: number, q: MlxQuantization, dtype: MlxDType): MlxQuantized {
  const { groupSize: gs, bits } = q;
  if (cols % gs !== 0) throw new OpenELMError('mlx', `cannot quantize rows of ${cols} values in groups of ${gs}`);
  if (((cols * bits) % 32) !== 0) throw new OpenELMError('mlx', `rows of ${cols} ${bits}-bit codes do not fill whole uint32 words`);
  const nBins = (1 << bits) - 1, eps = fr(1e-7);
  const toT = roundTo(dtype);
  const wordsPerRow = (cols * bits) / 32;
  const weight = new Uint32Array(rows * wordsPerRow);
  const groups = (rows * cols) / gs;
  const scales = new Float32Array(groups), biases = new Float32Array(groups);
  const codes = new Uint8Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < cols / gs; g++) {
      const o = r * cols + g * gs;
      let wMin = Infinity, wMax = -Infinity;
      for (let j = 0; j < gs; j++) { const v = w[o + j]; if (v > wMax) wMax = v; if (v < wMin) wMin = v; }
      const mask = Math.abs(wMin) > Math.abs(wMax);
      let scale = Math.max(fr(fr(wMax - wMin) / nBins), eps);
      scale = mask ? scale : -scale;
      const edge = mask ? wMin : wMax;
      const q0 = rint(fr(edge / scale));
      let bias = 0;
      if (q0 !== 0) { scale = fr(edge / q0); bias = edge; }
      for (let j = 0; j < gs; j++) {
        const c = rint(fr(fr(w[o + j] - bias) / scale));
        codes[g * gs + j] = Math.min(Math.max(c, 0), nBins);
      }
      scales[r * (cols / gs) + g] = toT(scale);
      biases[r * (cols / gs) + g] = toT(bias);
    }
    // Little-endian bit stream: code j at bit j·bits of the row.
    const base = r * wordsPerRow;
    for (let j = 0; j < cols; j++) {
      const bit = j * bits, word = base + (bit >>> 5), shift = bit & 31;
      weight[word] = (weight[word] | (codes[j] << shift)) >>> 0;
      if (shift + bits > 32) weight[word + 1] = (weight[word + 1] | (codes[j] >>> (32 - shift))) >>> 0;
    }
  }
  return { weight, scales, biases };
}

/** The values a quantized [rows, cols] matrix stands for: scale·q + bias, in float32. */
export function mlxDequantize(words: Uint8Array, scales: Float32Array, biases: Float32Array, rows: number, cols: number, q: MlxQuantization, dst: Float32Array): void {
  mlxDequantizeSpan(words, scales, biases, cols, q, 0, rows * cols, dst);
}

/**
 * Values [from, from + count) of a quantized matrix, counted from the first row that `words`,
 * `scales` and `biases` hold (from may fall inside a row), into dst[0, count).
 */
export function mlxDequantizeSpan(words: Uint8Array, scales: Float32Array, biases: Float32Array, cols: number, q: MlxQuantization, from: number, count: number, dst: Float32Array): void {
  const { groupSize: gs, bits } = q;
  const rowBytes = (cols * bits) / 8, mask = (1 << bits) - 1, gpr = cols / gs;
  let r = Math.floor(from / cols), j = from - r * cols, i = 0;
  for (; i < count; r++, j = 0) {
    const base = r * rowBytes, end = Math.min(cols, j + count - i);
    for (; j < end; j++, i++) {
      const bit = j * bits, b = base + (bit >>> 3), sh = bit & 7;
      // Up to 8 bits starting anywhere in a byte span at most two bytes.
      const code = ((words[b] | ((words[b + 1] ?? 0) << 8)) >>> sh) & mask;
      const k = r * gpr + ((j / gs) | 0);
      dst[i] = fr(fr(scales[k] * code) + biases[k]);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Writing an mlx-lm folder

export interface MlxExportOptions {
  quantization?: MlxQuantization;
  /** dtype of unquantized weights, scales and biases (default: each tensor's stored dtype). */
  dtype?: MlxDType;
  /** A tokenizer.model to copy into the folder (mlx-lm loads it through transformers). */
  tokenizerFile?: string;
}

const STORED: Record<MlxDType, SafetensorsDType> = { F32: 'F32', BF16: 'BF16', F16: 'F16' };

function encode16(v: Float32Array, d: MlxDType): ArrayBufferView {
  if (d === 'F32') return v;
  const enc = d === 'BF16' ? f32ToBf16 : f32ToF16;
  const h = new Uint16Array(v.length);
  for (let i = 0; i < v.length; i++) h[i] = enc(v[i]);
  return h;
}

/** config.json for mlx-lm's openelm ModelArgs (per-layer lists, as Apple's released config.json has). */
export function mlxConfig(c: OpenELMConfig, q: MlxQuantization | undefined, dtype: MlxDType | undefined): Record<string, unknown> {
  const hf: Record<string, unknown> = { ...c.hf, model_type: 'openelm', architectures: c.hf.architectures ?? ['OpenELMForCausalLM'] };
  hf.num_query_heads = c.numQueryHeads;
  hf.num_kv_heads = c.numKvHeads;
  hf.ffn_multipliers = c.ffnMultipliers;
  hf.qkv_multipliers = c.qkvMultipliers.length === 1 ? c.qkvMultipliers[0] : [c.qkvMultipliers[0], c.qkvMultipliers[c.qkvMultipliers.length - 1]];
  hf.rms_norm_eps = c.normEps;
  if (dtype) hf.torch_dtype = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' }[dtype];
  if (q) {
    hf.quantization = { group_size: q.groupSize, bits: q.bits };
    hf.quantization_config = { group_size: q.groupSize, bits: q.bits };
  }
  return Object.fromEntries(Object.entries(hf).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export interface MlxExportResult { files: string[]; quantized: string[]; unquantized: string[]; bytes: number; }

/** Write `src` (HF names) as an mlx-lm model folder. */
export function writeMlxFolder(src: TensorReader, c: OpenELMConfig, outDir: string, opts: MlxExportOptions = {}): MlxExportResult {
  const q = opts.quantization;
  if (q) {
    if (!(MLX_BITS as readonly number[]).includes(q.bits) || !(MLX_GROUP_SIZES as readonly number[]).includes(q.groupSize)) {
      throw new OpenELMError('usage', `MLX quantization needs bits in ${MLX_BITS.join('/')} and a group size of ${MLX_GROUP_SIZES.join('/')}; got ${q.bits} bits, group ${q.groupSize}`);
    }
  }
  const tensors: TensorToWrite[] = [];
  const quantized: string[] = [], unquantized: string[] = [];
  let dtypeUsed: MlxDType | undefined = opts.dtype;
  for (const spec of paramSpecs(c)) {
    const info = src.info(spec.name);
    const d: MlxDType = opts.dtype ?? (info.dtype === 'BF16' || info.dtype === 'F16' ? info.dtype : 'F32');
    dtypeUsed ??= d;
    const toT = roundTo(d);
    const v = src.readF32(spec.name);
    for (let i = 0; i < v.length; i++) v[i] = toT(v[i]);
    const [rows, cols] = spec.shape.length === 2 ? spec.shape : [1, spec.shape[0]];
    if (q && spec.shape.length === 2 && cols % q.groupSize === 0 && (cols * q.bits) % 32 === 0) {
      const r = mlxQuantize(v, rows, cols, q, d);
      const base = spec.name.slice(0, -'.weight'.length);
      tensors.push({ name: spec.name, dtype: 'U32', shape: [rows, (cols * q.bits) / 32], data: r.weight });
      tensors.push({ name: `${base}.scales`, dtype: STORED[d], shape: [rows, cols / q.groupSize], data: encode16(r.scales, d) });
      tensors.push({ name: `${base}.biases`, dtype: STORED[d], shape: [rows, cols / q.groupSize], data: encode16(r.biases, d) });
      quantized.push(spec.name);
    } else {
      tensors.push({ name: spec.name, dtype: STORED[d], shape: spec.shape, data: encode16(v, d) });
      if (spec.shape.length === 2) unquantized.push(spec.name);
    }
  }
  tensors.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  // Created only once every tensor has been read and encoded, so a bad source leaves nothing behind.
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, 'model.safetensors');
  writeSafetensorsSync(file, tensors, { format: 'mlx' });
  const total = tensors.reduce((s, t) => s + t.data.byteLength, 0);
  const index = { metadata: { total_size: total }, weight_map: Object.fromEntries(tensors.map((t) => [t.name, 'model.safetensors'])) };
  writeJsonFileAtomic(path.join(outDir, 'model.safetensors.index.json'), index);
  writeJsonFileAtomic(path.join(outDir, 'config.json'), mlxConfig(c, q, dtypeUsed));
  const files = [file, path.join(outDir, 'model.safetensors.index.json'), path.join(outDir, 'config.json')];
  if (opts.tokenizerFile) {
    const dst = path.join(outDir, 'tokenizer.model');
    if (path.resolve(opts.tokenizerFile) !== path.resolve(dst)) fs.copyFileSync(opts.tokenizerFile, dst);
    // transformers' LlamaTokenizer reads tokenizer.model; mlx-lm loads tokenizers through it.
    writeJsonFileAtomic(path.join(outDir, 'tokenizer_config.json'), {
      tokenizer_class: 'LlamaTokenizer', bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>',
      add_bos_token: true, add_eos_token: false, legacy: true, model_max_length: c.maxContextLength,
    });
    files.push(dst, path.join(outDir, 'tokenizer_config.json'));
  }
  return { files, quantized, unquantized, bytes: fs.statSync(file).size };
}

// ------------------------------------------------------------------------------------------------
// Reading

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export type MlxLayout = 'mlx-lm' | 'corenet-mlx';

/** Which MLX layout a folder holds, or null when it is none (a plain HF folder). */
export function detectMlxFolder(dir: string): MlxLayout | null {
  const cfgPath = path.join(dir, 'config.json');
  if (!fs.existsSync(cfgPath)) return null;
  let cfg: unknown;
  try { cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8')); } catch { return null; }
  if (!isObj(cfg)) return null;
  if (typeof cfg.model_name === 'string' && cfg.model_type === undefined) return 'corenet-mlx';
  if (isObj(cfg.quantization)) return 'mlx-lm';
  return null;
}

function quantOf(v: unknown, where: string): MlxQuantization {
  if (!isObj(v)) throw new OpenELMError('mlx', `${where}: "quantization" must be an object`);
  const gs = v.group_size, bits = v.bits;
  if (!(MLX_GROUP_SIZES as readonly unknown[]).includes(gs) || !(MLX_BITS as readonly unknown[]).includes(bits)) {
    throw new OpenELMError('mlx', `${where}: quantization {group_size: ${String(gs)}, bits: ${String(bits)}} is not supported (group size ${MLX_GROUP_SIZES.join('/')}, bits ${MLX_BITS.join('/')})`);
  }
  if (v.mode !== undefined && v.mode !== 'affine') throw new OpenELMError('mlx', `${where}: quantization mode "${String(v.mode)}" is not supported (only affine)`);
  return { groupSize: gs as number, bits: bits as number };
}

/** An MLX folder's tensors under HF names; quantized ones are dequantized exactly. */
export class MlxModel extends DecodedTensorSource {
  readonly location: string;
  readonly config: OpenELMConfig;
  readonly layout: MlxLayout;
  /** Quantization of each quantized tensor (HF name). */
  readonly quantized = new Map<string, MlxQuantization>();
  private readonly ckpt: Checkpoint;
  /** HF name → name in the file. */
  private readonly fileName = new Map<string, string>();
  private readonly shapes = new Map<string, number[]>();

  private constructor(dir: string) {
    super();
    this.location = dir;
    const layout = detectMlxFolder(dir);
    if (!layout) throw new OpenELMError('mlx', `${dir} is not an MLX model folder`);
    this.layout = layout;
    const cfgPath = path.join(dir, 'config.json');
    const raw = readJsonFile(cfgPath, 'model config') as Obj;
    let hf: OpenELMHFConfig;
    if (layout === 'corenet-mlx') {
      // CoreNet's MLX config is the YAML's general_gpt block without padding_index.
      if (!CORENET_MODEL_NAMES.includes(raw.model_name as string)) {
        throw new OpenELMError('config', `${cfgPath}: model_name "${String(raw.model_name)}" is not a known size (${CORENET_MODEL_NAMES.join(', ')})`);
      }
      hf = corenetModelFromYaml({ model: { language_modeling: { general_gpt: { model_name: raw.model_name, vocab_size: raw.vocab_size, max_context_length: raw.max_context_length } } } }, cfgPath).hf;
    } else {
      hf = raw as OpenELMHFConfig;
    }
    try { this.config = resolveConfig(hf); } catch (e) {
      if (e instanceof OpenELMError) throw new OpenELMError(e.code, `${cfgPath}: ${e.message}`);
      throw e;
    }
    const defaultQ = raw.quantization !== undefined ? quantOf(raw.quantization, cfgPath) : undefined;
    const perLayer = isObj(raw.quantization) ? raw.quantization : {};
    this.ckpt = openCheckpoint(dir);
    try {
      const names = new Set(this.ckpt.names());
      for (const spec of paramSpecs(this.config)) {
        const candidates = layout === 'corenet-mlx' ? [spec.name.replace(/^transformer\./, ''), spec.name] : [spec.name, spec.name.replace(/^transformer\./, '')];
        const fname = candidates.find((n) => names.has(n));
        if (!fname) throw new OpenELMError('checkpoint', `tensor ${candidates[0]} not found in ${dir}`);
        this.fileName.set(spec.name, fname);
        this.shapes.set(spec.name, spec.shape);
        const base = fname.slice(0, -'.weight'.length);
        if (names.has(`${base}.scales`)) {
          // mlx-lm records layers quantized differently from the default under their module path.
          const own = perLayer[base];
          const q = isObj(own) ? quantOf(own, `${cfgPath} (${base})`) : defaultQ;
          if (!q) throw new OpenELMError('mlx', `${dir}: ${base} is quantized but config.json has no "quantization"`);
          const [rows, cols] = spec.shape.length === 2 ? spec.shape : [1, spec.shape[0]];
          this.expectStored(fname, [rows, (cols * q.bits) / 32], ['U32']);
          this.expectStored(`${base}.scales`, [rows, cols / q.groupSize], ['F32', 'BF16', 'F16']);
          this.expectStored(`${base}.biases`, [rows, cols / q.groupSize], ['F32', 'BF16', 'F16']);
          this.quantized.set(spec.name, q);
        } else {
          const big = spec.name === 'transformer.token_embeddings.weight' || spec.name === 'lm_head.weight';
          const t = this.ckpt.info(fname);
          const ok = t.shape.length === spec.shape.length && t.shape.every((d, i) => (i === 0 && big ? d >= spec.shape[0] : d === spec.shape[i]));
          if (!ok) throw new OpenELMError('checkpoint', `tensor ${fname} has shape [${t.shape.join(',')}], expected [${spec.shape.join(',')}] (in ${dir})`);
        }
      }
    } catch (e) {
      this.ckpt.close();
      throw e;
    }
  }

  private expectStored(name: string, shape: number[], dtypes: string[]): void {
    const t = this.ckpt.info(name);
    const big = /token_embeddings|lm_head/.test(name);
    const ok = t.shape.length === 2 && (big ? t.shape[0] >= shape[0] : t.shape[0] === shape[0]) && t.shape[1] === shape[1];
    if (!ok || !dtypes.includes(t.dtype)) {
      throw new OpenELMError('checkpoint', `tensor ${name} is ${t.dtype} [${t.shape.join(',')}], expected ${dtypes.join('/')} [${shape.join(',')}] (in ${this.location})`);
    }
  }

  static open(dir: string): MlxModel {
    return new MlxModel(dir);
  }

  names(): string[] { return [...this.fileName.keys()]; }
  override has(name: string): boolean { return this.fileName.has(name); }

  protected infoOf(name: string): SourceTensorInfo {
    const q = this.quantized.get(name);
    const stored = this.ckpt.info(this.fileName.get(name)!).dtype;
    return { name, dtype: q ? `MLX_Q${q.bits}` : stored, shape: this.shapes.get(name)! };
  }

  /**
   * 4-bit tensors as blocks the backends run as stored: each 32 values of a group become a Q4_1
   * block (half scale and bias: MLX's value fr(scale·q) + bias is Q4_1's fr(d·q) + m) or, for
   * bfloat16/float32 scales, a q4_1_f32 block; only the nibbles move. Other widths read as f32.
   */
  storedWeight(name: string): StoredPart[] | null {
    const q = this.quantized.get(name);
    if (q?.bits !== 4 || q.groupSize % 32 !== 0) return null;
    const fname = this.fileName.get(name)!;
    const base = fname.slice(0, -'.weight'.length);
    const half = this.ckpt.info(`${base}.scales`).dtype === 'F16' && this.ckpt.info(`${base}.biases`).dtype === 'F16';
    const [rows, cols] = this.shapes.get(name)!;
    return [{
      dtype: half ? 'q4_1' : 'q4_1_f32', rows,
      // a slice of rows at a time, as range reads go: a whole tensor's codes, scales and biases
      // at once were garbage the size of the tensor per weight
      read: (dst: Weight['data']) => {
        const out = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
        const rowBytes = cols / 2, gpr = cols / q.groupSize, nb = cols / 32, bb = half ? 20 : 24;
        const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
        const per = this.spanRows(rowBytes);
        for (let r0 = 0; r0 < rows; r0 += per) {
          const n = Math.min(per, rows - r0);
          const words = this.readSpan(fname, q, cols, r0, n, half);
          for (let r = 0; r < n; r++) {
            for (let b = 0; b < nb; b++) {
              const o = ((r0 + r) * nb + b) * bb, g = r * gpr + ((b * 32) / q.groupSize | 0);
              if (half) { dv.setUint16(o, this.spanScales16[g], true); dv.setUint16(o + 2, this.spanBiases16[g], true); } else { dv.setFloat32(o, this.spanScales[g], true); dv.setFloat32(o + 4, this.spanBiases[g], true); }
              const src = r * rowBytes + b * 16, qs = o + (half ? 4 : 8);
              // MLX: value j is nibble j of the row (low nibble first); Q4_1: byte i holds values i and i + 16.
              for (let i = 0; i < 16; i++) {
                const lo = (words[src + (i >> 1)] >> ((i & 1) * 4)) & 15;
                const hi = (words[src + 8 + (i >> 1)] >> ((i & 1) * 4)) & 15;
                out[qs + i] = lo | (hi << 4);
              }
            }
          }
        }
      },
    }];
  }

  protected decode(name: string, dst: Float32Array): void {
    const fname = this.fileName.get(name)!;
    const shape = this.shapes.get(name)!;
    const q = this.quantized.get(name);
    const [rows, cols] = shape.length === 2 ? shape : [1, shape[0]];
    if (!q) {
      // Rows past the model's vocabulary (CoreNet's 32128-row embedding) are not read.
      this.ckpt.readF32Range(fname, 0, dst.length, dst);
      return;
    }
    const base = fname.slice(0, -'.weight'.length);
    const rowBytes = (cols * q.bits) / 8, gpr = cols / q.groupSize;
    const words = this.ckpt.readRaw(fname).subarray(0, rows * rowBytes);
    const scales = new Float32Array(rows * gpr), biases = new Float32Array(rows * gpr);
    this.ckpt.readF32Range(`${base}.scales`, 0, rows * gpr, scales);
    this.ckpt.readF32Range(`${base}.biases`, 0, rows * gpr, biases);
    mlxDequantize(words, scales, biases, rows, cols, q, dst);
  }

  /** Code bytes and group scales/biases of a slice of rows a range read decodes, kept between reads. */
  private spanWords = new Uint8Array(0);
  private spanScales = new Float32Array(0);
  private spanBiases = new Float32Array(0);
  /** The f16 scales/biases of such a slice as stored (blocks with half scales take their bits). */
  private spanScales16 = new Uint16Array(0);
  private spanBiases16 = new Uint16Array(0);

  /** Rows of `rowBytes` code bytes a slice holds: SPAN_BYTES of codes, at least one row. */
  private spanRows(rowBytes: number): number { return Math.max(1, Math.floor(SPAN_BYTES / rowBytes)); }

  /**
   * Rows [r, r + rows) of a quantized tensor's codes (returned) and of its scales and biases into
   * the span buffers: as f32 (spanScales, spanBiases), or with `bits16` as their stored f16 words
   * (spanScales16, spanBiases16). `rows` is at most spanRows of a row of codes.
   */
  private readSpan(fname: string, q: MlxQuantization, cols: number, r: number, rows: number, bits16: boolean): Uint8Array {
    const base = fname.slice(0, -'.weight'.length);
    const rowBytes = (cols * q.bits) / 8, gpr = cols / q.groupSize, n = rows * gpr, per = this.spanRows(rowBytes), full = per * gpr;
    if (this.spanWords.length < rows * rowBytes) this.spanWords = new Uint8Array(per * rowBytes);
    const words = this.ckpt.readRawRange(fname, r * rowBytes, rows * rowBytes, this.spanWords);
    if (bits16) {
      if (this.spanScales16.length < n) { this.spanScales16 = new Uint16Array(full); this.spanBiases16 = new Uint16Array(full); }
      this.ckpt.readRawRange(`${base}.scales`, 2 * r * gpr, 2 * n, new Uint8Array(this.spanScales16.buffer, 0, 2 * n));
      this.ckpt.readRawRange(`${base}.biases`, 2 * r * gpr, 2 * n, new Uint8Array(this.spanBiases16.buffer, 0, 2 * n));
    } else {
      if (this.spanScales.length < n) { this.spanScales = new Float32Array(full); this.spanBiases = new Float32Array(full); }
      this.ckpt.readF32Range(`${base}.scales`, r * gpr, n, this.spanScales);
      this.ckpt.readF32Range(`${base}.biases`, r * gpr, n, this.spanBiases);
    }
    return words;
  }

  /**
   * Only the rows holding [start, start + count), a slice of at most SPAN_BYTES of codes at a
   * time: a load quantizes row chunk by row chunk, and a whole-tensor decode per chunk made
   * garbage of the tensor's f32 size per chunk and took time quadratic in its rows.
   */
  protected override decodeRange(name: string, start: number, count: number, dst: Float32Array): boolean {
    const fname = this.fileName.get(name)!;
    const q = this.quantized.get(name);
    // Float tensors are flat in the file from element 0, whatever rows follow the vocabulary.
    if (!q) { this.ckpt.readF32Range(fname, start, count, dst); return true; }
    const cols = this.shapes.get(name)![1], end = start + count;
    const per = this.spanRows((cols * q.bits) / 8);
    for (let r = Math.floor(start / cols); r * cols < end; r += per) {
      const rows = Math.min(per, Math.ceil(end / cols) - r);
      const from = Math.max(start, r * cols), to = Math.min(end, (r + rows) * cols);
      const words = this.readSpan(fname, q, cols, r, rows, false);
      mlxDequantizeSpan(words, this.spanScales, this.spanBiases, cols, q, from - r * cols, to - from, dst.subarray(from - start, to - start));
    }
    return true;
  }

  protected override raw16(name: string, dst: Uint16Array): void {
    const fname = this.fileName.get(name)!;
    const info = this.ckpt.info(fname);
    const raw = info.dtype === 'BF16' ? this.ckpt.readBF16(fname) : this.ckpt.readF16(fname);
    dst.set(raw.subarray(0, dst.length));
  }

  override close(): void { this.ckpt.close(); }
}
