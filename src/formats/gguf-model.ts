// An OpenELM GGUF file (llama.cpp's `openelm` architecture) read back as our model: the config from
// the `openelm.*` metadata, the tokenizer from `tokenizer.ggml.*`, and the weights under their HF
// names. See docs/formats.md for the key and tensor tables.
//
// Tensor names (llama.cpp's converter, conversion/openelm.py):
//   token_embd                → transformer.token_embeddings (also the head: no `output` tensor)
//   blk.N.attn_norm / attn_qkv / attn_q_norm / attn_k_norm / attn_output
//                             → layers.N.attn_norm / attn.qkv_proj / attn.q_norm / attn.k_norm / attn.out_proj
//   blk.N.ffn_norm / ffn_down → layers.N.ffn_norm / ffn.proj_2
//   blk.N.ffn_gate + ffn_up   → layers.N.ffn.proj_1 (gate rows first, then up)
//   output_norm               → transformer.norm
// ggml stores a [out, in] weight with dims {in, out}; the bytes are the same row-major layout.

import * as fs from 'node:fs';
import { OpenELMError } from '../core/errors.js';
import { readGGUF, unpackStrings, tensorBytes, ggufNumel, type GGUFFile, type ReadGGUFOptions, type GGUFScalar, type GGUFTensorInfo } from '../io/gguf.js';
import { GGMLType, dequantize, ggmlBytes, ggmlTypeName, isReadableGGMLType } from '../core/ggml-quants.js';
import { DecodedTensorSource, type SourceTensorInfo } from '../io/tensor-source.js';
import { blockDTypeOfGGML } from '../backends/weight-format.js';
import type { Weight } from '../backends/backend.js';
import type { StoredPart } from '../model/load.js';
import { resolveConfig, presetHFConfig, paramSpecs as paramSpecsOf, PRESET_NAMES, type OpenELMConfig, type OpenELMHFConfig } from '../model/config.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { ModelType, PieceType, type CompactSentencePieceModel, type SentencePieceModel } from '../tokenizer/sentencepiece-model.js';
import { PieceTable } from '../tokenizer/piece-table.js';
import { bundledTableIfSame, tableStateFor } from '../io/tokenizer-table.js';
import { pyLen } from '../core/pystr.js';

/** One GGUF tensor that holds (part of) an HF tensor: rows [row0, row0 + rows) of it. */
export interface GGUFPart {
  gguf: GGUFTensorInfo & { type: GGMLType };
  row0: number;
  rows: number;
  cols: number;
}

const meta = (g: GGUFFile, file: string, key: string): GGUFScalar | GGUFScalar[] => {
  const v = g.metadata.get(key);
  if (v === undefined) throw new OpenELMError('gguf', `${file} has no metadata ${key}`);
  return v;
};

function metaInt(g: GGUFFile, file: string, key: string, dflt?: number): number {
  const v = g.metadata.has(key) || dflt === undefined ? meta(g, file, key) : dflt;
  const n = typeof v === 'bigint' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n <= 0) throw new OpenELMError('gguf', `${file}: metadata ${key} must be a positive integer, got ${JSON.stringify(String(v))}`);
  return n;
}

/** A per-layer metadata value: llama.cpp writes an array, or one number when all layers agree. */
function metaPerLayer(g: GGUFFile, file: string, key: string, n: number): number[] {
  const v = meta(g, file, key);
  const arr = Array.isArray(v) ? v : new Array<GGUFScalar>(n).fill(v);
  if (arr.length !== n) throw new OpenELMError('gguf', `${file}: metadata ${key} has ${arr.length} entries for ${n} layers`);
  return arr.map((x) => {
    const k = typeof x === 'bigint' ? Number(x) : x;
    if (typeof k !== 'number' || !Number.isInteger(k) || k <= 0) throw new OpenELMError('gguf', `${file}: metadata ${key} must hold positive integers, got ${String(x)}`);
    return k;
  });
}

const sameList = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * An HF config.json whose layer-wise scaling gives exactly these per-layer head counts and FFN
 * widths: a released size when one matches, else multiplier ranges when they reproduce the lists,
 * else one multiplier per layer.
 */
export function hfConfigForGeometry(g: {
  numLayers: number; modelDim: number; headDim: number; vocabSize: number; maxContextLength: number;
  ropeFreqConstant: number; numQueryHeads: number[]; numKvHeads: number[]; ffnDims: number[];
}, where: string): OpenELMHFConfig {
  const fits = (hf: OpenELMHFConfig): boolean => {
    try {
      const c = resolveConfig(hf);
      return sameList(c.numQueryHeads, g.numQueryHeads) && sameList(c.numKvHeads, g.numKvHeads) && sameList(c.ffnDims, g.ffnDims);
    } catch { return false; }
  };
  const own = { vocab_size: g.vocabSize, max_context_length: g.maxContextLength, rope_freq_constant: g.ropeFreqConstant };
  for (const name of PRESET_NAMES.filter((n) => !n.endsWith('-Instruct'))) {
    const p = presetHFConfig(name);
    if (p.num_transformer_layers === g.numLayers && p.model_dim === g.modelDim && p.head_dim === g.headDim) {
      const hf = { ...p, ...own };
      if (fits(hf)) return hf;
    }
  }
  const G = g.numQueryHeads[0] / g.numKvHeads[0];
  if (!Number.isInteger(G) || g.numQueryHeads.some((q, i) => q !== G * g.numKvHeads[i])) {
    throw new OpenELMError('gguf', `${where}: query heads [${g.numQueryHeads}] are not one fixed multiple of kv heads [${g.numKvHeads}], which OpenELM requires`);
  }
  const N = g.numLayers, D = g.modelDim, hd = g.headDim;
  const qkv = g.numQueryHeads.map((q) => (q * hd) / D);
  const ffn = g.ffnDims.map((f) => f / D);
  const divisor = g.ffnDims.reduce(gcd);
  const base: OpenELMHFConfig = {
    model_type: 'openelm', architectures: ['OpenELMForCausalLM'],
    num_transformer_layers: N, model_dim: D, head_dim: hd, num_gqa_groups: G, ffn_dim_divisor: divisor,
    ffn_with_glu: true, activation_fn_name: 'swish', normalization_layer_name: 'rms_norm',
    normalize_qk_projections: true, share_input_output_layers: true, rope_max_length: 4096,
    bos_token_id: 1, eos_token_id: 2, initializer_range: 0.02, ...own,
  };
  const range = (v: number[]) => (N === 1 ? v[0] : [v[0], v[N - 1]]);
  for (const q of [range(qkv), qkv]) {
    for (const f of [range(ffn), ffn]) {
      const hf = { ...base, qkv_multipliers: q, ffn_multipliers: f };
      if (fits(hf)) return resolveConfig(hf).hf;
    }
  }
  throw new OpenELMError('gguf', `${where}: no OpenELM config gives query heads [${g.numQueryHeads}] and FFN widths [${g.ffnDims}]`);
}

/** The llama.cpp name of each HF tensor (proj_1 has two). */
function ggufNamesOf(hfName: string): string[] | undefined {
  if (hfName === 'transformer.token_embeddings.weight') return ['token_embd.weight'];
  if (hfName === 'transformer.norm.weight') return ['output_norm.weight'];
  if (hfName === 'lm_head.weight') return ['output.weight'];
  const m = /^transformer\.layers\.(\d+)\.(.+)$/.exec(hfName);
  if (!m) return undefined;
  const b = `blk.${m[1]}.`;
  const map: Record<string, string[]> = {
    'attn_norm.weight': ['attn_norm.weight'], 'attn.qkv_proj.weight': ['attn_qkv.weight'],
    'attn.q_norm.weight': ['attn_q_norm.weight'], 'attn.k_norm.weight': ['attn_k_norm.weight'],
    'attn.out_proj.weight': ['attn_output.weight'], 'ffn_norm.weight': ['ffn_norm.weight'],
    'ffn.proj_1.weight': ['ffn_gate.weight', 'ffn_up.weight'], 'ffn.proj_2.weight': ['ffn_down.weight'],
  };
  return map[m[2]]?.map((s) => b + s);
}

/** SentencePiece model (BPE with byte fallback) from `tokenizer.ggml.*`, as llama.cpp's SPM tokenizer reads it. */
export function ggufSentencePieceModel(g: GGUFFile, file: string): SentencePieceModel {
  const { table, trainerSpec, normalizerSpec } = ggufSentencePieceTable(g, file);
  return { pieces: table.toPieces(), trainerSpec, normalizerSpec };
}

/**
 * ggufSentencePieceModel with the pieces straight in a PieceTable (what the Tokenizer keeps): no
 * object per piece on the way, which for 32,000 pieces is much of the garbage of building a tokenizer.
 */
export function ggufSentencePieceTable(g: GGUFFile, file: string): CompactSentencePieceModel {
  const model = g.metadata.get('tokenizer.ggml.model');
  if (model === undefined) throw new OpenELMError('tokenizer', `${file} has no tokenizer (metadata tokenizer.ggml.model is missing)`);
  if (model !== 'llama') throw new OpenELMError('tokenizer', `${file}: tokenizer.ggml.model is "${String(model)}"; only "llama" (SentencePiece, as OpenELM uses) is supported`);
  const packed = g.vocab?.tokens;
  let tokens: string[] | undefined, n: number;
  if (packed) n = packed.count;
  else {
    const v = meta(g, file, 'tokenizer.ggml.tokens');
    if (!Array.isArray(v) || v.some((t) => typeof t !== 'string')) throw new OpenELMError('tokenizer', `${file}: tokenizer.ggml.tokens must be an array of strings`);
    tokens = v as string[];
    n = tokens.length;
  }
  const scores: ArrayLike<GGUFScalar> | GGUFScalar = g.vocab?.scores ?? g.metadata.get('tokenizer.ggml.scores') ?? new Float32Array(n);
  const types: ArrayLike<GGUFScalar> | GGUFScalar = g.vocab?.types ?? g.metadata.get('tokenizer.ggml.token_type') ?? new Int32Array(n).fill(PieceType.NORMAL);
  const isList = (v: unknown): v is ArrayLike<GGUFScalar> => Array.isArray(v) || ArrayBuffer.isView(v);
  if (!isList(scores) || scores.length !== n) throw new OpenELMError('tokenizer', `${file}: tokenizer.ggml.scores must have ${n} entries`);
  if (!isList(types) || types.length !== n) throw new OpenELMError('tokenizer', `${file}: tokenizer.ggml.token_type must have ${n} entries`);
  let table: PieceTable, maxLen: number;
  // The bundled vocabulary, recognized as the file stores it (tokens, f32 scores and i32 types byte
  // for byte): its table, with no check piece by piece (its pieces are valid ones).
  const tt = packed && scores instanceof Float32Array && types instanceof Int32Array ? bundledTableIfSame(packed.raw, scores, types) : undefined;
  if (tt) {
    table = tt.table;
    maxLen = Math.max(16, tt.longestPiece);
  } else {
    const pieceScores = scores instanceof Float32Array ? scores : new Float32Array(n), pieceTypes = new Uint8Array(n);
    const typeError = (i: number) => new OpenELMError('tokenizer', `${file}: token ${i} has type ${Number(types[i])}, not a SentencePiece type (1..6)`);
    if (types instanceof Int32Array) {
      // the file's i32 types: checked in one plain loop, then narrowed in one copy
      for (let i = 0; i < n; i++) if (!(types[i] >= PieceType.NORMAL && types[i] <= PieceType.BYTE)) throw typeError(i);
      pieceTypes.set(types);
    } else {
      for (let i = 0; i < n; i++) {
        const type = Number(types[i]);
        if (!(type >= PieceType.NORMAL && type <= PieceType.BYTE)) throw typeError(i);
        pieceTypes[i] = type;
      }
    }
    if (pieceScores !== scores) for (let i = 0; i < n; i++) pieceScores[i] = Number(scores[i]);
    maxLen = 16;
    if (tokens) {
      const start = new Int32Array(n + 1);
      for (let i = 0; i < n; i++) {
        const t = tokens[i];
        start[i + 1] = start[i] + t.length;
        if (t.length > maxLen) maxLen = Math.max(maxLen, pyLen(t));
      }
      table = new PieceTable(tokens.join(''), start, pieceScores, pieceTypes);
    } else ({ table, maxLen } = packedPieceTable(packed!, pieceScores, pieceTypes, file));
  }
  const idMeta = (key: string, dflt: number): number => {
    const v = g.metadata.get(key);
    if (v === undefined) return dflt;
    const id = Number(v);
    if (!Number.isInteger(id) || id < 0 || id >= n) throw new OpenELMError('tokenizer', `${file}: ${key} ${String(v)} is not a token id (vocab has ${n})`);
    return id;
  };
  const unk = idMeta('tokenizer.ggml.unknown_token_id', Math.max(0, table.types.indexOf(PieceType.UNKNOWN)));
  const bos = idMeta('tokenizer.ggml.bos_token_id', 1);
  const eos = idMeta('tokenizer.ggml.eos_token_id', 2);
  const pad = idMeta('tokenizer.ggml.padding_token_id', -1);
  const prefix = g.metadata.get('tokenizer.ggml.add_space_prefix');
  return {
    table,
    trainerSpec: {
      modelType: ModelType.BPE, vocabSize: n,
      maxSentencepieceLength: maxLen,
      treatWhitespaceAsSuffix: false, splitDigits: false, byteFallback: true,
      unkId: unk, bosId: bos, eosId: eos, padId: pad, unkSurface: ' \u2047 ',
      unkPiece: table.piece(unk), bosPiece: bos < n ? table.piece(bos) : '<s>', eosPiece: eos < n ? table.piece(eos) : '</s>',
      padPiece: pad >= 0 ? table.piece(pad) : '<pad>',
    },
    // llama.cpp's SPM tokenizer keeps every space (escaped as U+2581) and adds the dummy prefix
    // unless add_space_prefix is false: SentencePiece's identity normalizer with Llama-2's flags.
    normalizerSpec: {
      name: 'identity', precompiledCharsmapLength: 0, addDummyPrefix: prefix === undefined ? true : prefix === true,
      removeExtraWhitespaces: false, escapeWhitespaces: true,
    },
  };
}

/** The PieceTable of packed tokens (not the bundled vocabulary's): their bytes decoded once as a whole. */
function packedPieceTable(tokens: { raw: Uint8Array; count: number }, scores: Float32Array, types: Uint8Array, file: string): { table: PieceTable; maxLen: number } {
  const { bytes, ends } = unpackStrings(tokens.raw, tokens.count), n = tokens.count;
  // UTF-16 starts from the bytes: a lead byte starts one unit, a 4-byte lead two (a surrogate pair);
  // a token's code points (pyLen, for the longest piece) are its lead bytes. A token that starts with
  // a continuation byte is not UTF-8 by itself even when the whole is.
  const start = new Int32Array(n + 1);
  let units = 0, ok = true, maxLen = 16;
  for (let i = 0; i < n; i++) {
    const a = ends[i], b = ends[i + 1];
    if (a < b && (bytes[a] & 0xc0) === 0x80) ok = false;
    let points = 0;
    for (let k = a; k < b; k++) {
      const c = bytes[k];
      if ((c & 0xc0) !== 0x80) { points++; units += c >= 0xf0 ? 2 : 1; }
    }
    start[i + 1] = units;
    if (points > maxLen) maxLen = points;
  }
  let text: string | undefined;
  if (ok) {
    try { text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes); } catch { /* refused below */ }
  }
  if (text === undefined || text.length !== units) {
    // Some token is not UTF-8: the string-per-token read names it, as it always has.
    readGGUF(file);
    throw new OpenELMError('tokenizer', `${file}: tokenizer.ggml.tokens are not valid UTF-8`);
  }
  return { table: new PieceTable(text, start, scores, types), maxLen };
}

export function ggufTokenizer(g: GGUFFile, file: string): Tokenizer {
  const m = ggufSentencePieceTable(g, file);
  // The Llama-2 vocabulary (every OpenELM GGUF's): the bundled table's state, derived from the same pieces.
  return new Tokenizer(m, file, tableStateFor(m.table));
}

export class GGUFModel extends DecodedTensorSource {
  readonly location: string;
  readonly gguf: GGUFFile;
  readonly config: OpenELMConfig;
  private readonly parts = new Map<string, GGUFPart[]>();
  private readonly order: string[] = [];
  private fd: number | null = null;

  private constructor(file: string, g: GGUFFile) {
    super();
    this.location = file;
    this.gguf = g;
    const arch = g.metadata.get('general.architecture');
    if (arch !== 'openelm') throw new OpenELMError('gguf', `${file} is a GGUF of architecture "${String(arch)}", not openelm`);
    const byName = new Map(g.tensors.map((t) => [t.name, t]));
    const tensor = (name: string): GGUFTensorInfo & { type: GGMLType } => {
      const t = byName.get(name);
      if (!t) throw new OpenELMError('gguf', `${file} has no tensor ${name}`);
      if (!isReadableGGMLType(t.type)) {
        throw new OpenELMError('gguf', `${file}: tensor ${name} has type ${ggmlTypeName(t.type)}, which is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K are)`);
      }
      return t as GGUFTensorInfo & { type: GGMLType };
    };
    const emb = tensor('token_embd.weight');
    if (emb.dims.length !== 2) throw new OpenELMError('gguf', `${file}: token_embd.weight has ${emb.dims.length} dims, expected 2`);
    const A = 'openelm.';
    const N = metaInt(g, file, A + 'block_count');
    const D = metaInt(g, file, A + 'embedding_length');
    const headDim = metaInt(g, file, g.metadata.has(A + 'attention.key_length') ? A + 'attention.key_length' : A + 'rope.dimension_count');
    const ropeDims = g.metadata.get(A + 'rope.dimension_count');
    if (ropeDims !== undefined && Number(ropeDims) !== headDim) throw new OpenELMError('gguf', `${file}: rope.dimension_count ${String(ropeDims)} differs from the head size ${headDim}; OpenELM rotates whole heads`);
    const eps = g.metadata.get(A + 'attention.layer_norm_rms_epsilon');
    if (eps !== undefined && eps !== Math.fround(1e-6)) throw new OpenELMError('gguf', `${file}: RMSNorm epsilon ${String(eps)} is not OpenELM's 1e-6`);
    const base = g.metadata.get(A + 'rope.freq_base') ?? 10000;
    const geometry = {
      numLayers: N, modelDim: D, headDim, vocabSize: emb.dims[1],
      maxContextLength: metaInt(g, file, A + 'context_length', 2048),
      ropeFreqConstant: Number(base),
      numQueryHeads: metaPerLayer(g, file, A + 'attention.head_count', N),
      numKvHeads: metaPerLayer(g, file, A + 'attention.head_count_kv', N),
      ffnDims: metaPerLayer(g, file, A + 'feed_forward_length', N),
    };
    const hf = hfConfigForGeometry(geometry, file);
    const untied = byName.has('output.weight');
    if (untied) hf.share_input_output_layers = false;
    const bos = g.metadata.get('tokenizer.ggml.bos_token_id'), eos = g.metadata.get('tokenizer.ggml.eos_token_id');
    if (bos !== undefined) hf.bos_token_id = Number(bos);
    if (eos !== undefined) hf.eos_token_id = Number(eos);
    this.config = resolveConfig(hf);

    // Every HF tensor of the config, from its GGUF part(s), with the shapes checked.
    for (const spec of paramSpecsOf(this.config)) {
      const names = ggufNamesOf(spec.name)!;
      const [rows, cols] = spec.shape.length === 2 ? spec.shape : [1, spec.shape[0]];
      const list: GGUFPart[] = [];
      let row0 = 0;
      for (const n of names) {
        const t = tensor(n);
        const tRows = names.length === 1 ? rows : rows / names.length;
        const want = spec.shape.length === 2 ? [cols, tRows] : [cols];
        if (!sameList(t.dims, want)) throw new OpenELMError('gguf', `${file}: tensor ${n} has dims [${t.dims}], expected [${want}] for this config`);
        list.push({ gguf: t, row0, rows: tRows, cols });
        row0 += tRows;
      }
      this.parts.set(spec.name, list);
      this.order.push(spec.name);
    }
  }

  /**
   * `vocabulary: false`: the tokenizer's arrays are not decoded (readGGUF), for a caller that needs
   * the model alone; tokenizer() then reads them.
   */
  static open(file: string, opts: ReadGGUFOptions = {}): GGUFModel {
    return new GGUFModel(file, readGGUF(file, opts));
  }

  names(): string[] {
    return this.order.slice();
  }

  override has(name: string): boolean {
    return this.parts.has(name);
  }

  /** The GGUF tensors holding an HF tensor (proj_1: gate then up), for kernels that run them as stored. */
  partsOf(name: string): GGUFPart[] {
    this.info(name);
    return this.parts.get(name)!;
  }

  protected infoOf(name: string): SourceTensorInfo {
    const parts = this.parts.get(name)!;
    const types = new Set(parts.map((p) => p.gguf.type));
    const dtype = types.size === 1 ? ggmlTypeName(parts[0].gguf.type) : parts.map((p) => ggmlTypeName(p.gguf.type)).join('+');
    const rows = parts.reduce((s, p) => s + p.rows, 0);
    const shape = parts[0].gguf.dims.length === 2 ? [rows, parts[0].cols] : [parts[0].cols];
    return { name, dtype, shape };
  }

  /** Raw bytes of one GGUF tensor (its blocks as stored). */
  readRaw(ggufName: string, dst?: Uint8Array): Uint8Array {
    const t = this.gguf.tensors.find((x) => x.name === ggufName);
    if (!t || !isReadableGGMLType(t.type)) throw new OpenELMError('gguf', `${this.location} has no readable tensor ${ggufName}`);
    const n = tensorBytes(t.type, t.dims);
    const out = dst ?? new Uint8Array(n);
    this.readAt(t, 0, n, out);
    return out;
  }

  /** Bytes [at, at + len) of tensor t's data into out[0, len), in reads of at most 64 MB. */
  private readAt(t: GGUFTensorInfo, at: number, len: number, out: Uint8Array): void {
    this.fd ??= fs.openSync(this.location, 'r');
    for (let done = 0; done < len;) {
      const k = fs.readSync(this.fd, out, done, Math.min(len - done, 1 << 26), this.gguf.dataOffset + t.offset + at + done);
      if (k <= 0) throw new OpenELMError('gguf', `${this.location} is truncated: tensor ${t.name} could not be read`);
      done += k;
    }
  }

  /**
   * A weight with block-quantized parts, as stored: consecutive GGUF tensors of one type (ffn_gate
   * and ffn_up) are one part whose bytes are theirs back to back; null when every part is
   * F32/F16/BF16 (those load through the ordinary readers).
   */
  storedWeight(name: string): StoredPart[] | null {
    const parts = this.parts.get(name);
    if (parts?.[0].gguf.dims.length !== 2 || !parts.some((p) => blockDTypeOfGGML(p.gguf.type))) return null;
    const dtypeOf = (t: GGMLType): StoredPart['dtype'] =>
      blockDTypeOfGGML(t) ?? (t === GGMLType.F32 ? 'f32' : t === GGMLType.F16 ? 'f16' : 'bf16');
    const out: StoredPart[] = [];
    for (let i = 0; i < parts.length;) {
      let j = i + 1;
      while (j < parts.length && parts[j].gguf.type === parts[i].gguf.type) j++;
      const group = parts.slice(i, j);
      out.push({
        dtype: dtypeOf(parts[i].gguf.type),
        rows: group.reduce((n, p) => n + p.rows, 0),
        read: (dst: Weight['data']) => {
          const bytes = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
          let o = 0;
          for (const p of group) {
            const n = ggmlBytes(p.gguf.type, ggufNumel(p.gguf.dims));
            this.readRaw(p.gguf.name, bytes.subarray(o, o + n));
            o += n;
          }
          if (o !== bytes.length) throw new OpenELMError('gguf', `${this.location}: ${name} has ${o} bytes of blocks, its storage ${bytes.length}`);
        },
        bytes: group.reduce((n, p) => n + ggmlBytes(p.gguf.type, ggufNumel(p.gguf.dims)), 0),
        readRange: (at: number, out: Uint8Array) => {
          // the group's tensors back to back: each piece from the one or more tensors it spans
          let base = 0, done = 0;
          for (const p of group) {
            const n = ggmlBytes(p.gguf.type, ggufNumel(p.gguf.dims));
            const from = at + done - base;
            if (done < out.length && from < n) {
              const k = Math.min(n - from, out.length - done);
              this.readAt(p.gguf, from, k, out.subarray(done, done + k));
              done += k;
            }
            base += n;
          }
          if (done !== out.length) throw new OpenELMError('gguf', `${this.location}: ${name} has ${base} bytes of blocks, not the ${at + out.length} read`);
        },
      });
      i = j;
    }
    return out;
  }

  /** Whole rows decode from just their bytes (a GGUF row is whole blocks); other ranges: false. */
  protected override decodeRange(name: string, start: number, count: number, dst: Float32Array): boolean {
    const parts = this.parts.get(name)!, cols = parts[0].cols;
    if (start % cols !== 0 || count % cols !== 0) return false;
    const r0 = start / cols, r1 = r0 + count / cols;
    for (const p of parts) {
      const a = Math.max(r0, p.row0), b = Math.min(r1, p.row0 + p.rows);
      if (a >= b) continue;
      const rowBytes = ggmlBytes(p.gguf.type, cols);
      const raw = this.readRawRows(p.gguf.name, (a - p.row0) * rowBytes, (b - a) * rowBytes);
      dequantize(p.gguf.type, raw, 0, (b - a) * cols, dst, (a - r0) * cols);
    }
    return true;
  }

  private rowBytes = new Uint8Array(0);

  /** `len` bytes of a GGUF tensor from byte `at`, in a buffer reused from call to call. */
  private readRawRows(ggufName: string, at: number, len: number): Uint8Array {
    const t = this.gguf.tensors.find((x) => x.name === ggufName)!;
    if (this.rowBytes.length < len) this.rowBytes = new Uint8Array(len);
    const out = this.rowBytes.subarray(0, len);
    this.readAt(t, at, len, out);
    return out;
  }

  protected decode(name: string, dst: Float32Array): void {
    for (const p of this.parts.get(name)!) {
      const raw = this.readRaw(p.gguf.name);
      dequantize(p.gguf.type, raw, 0, ggufNumel(p.gguf.dims), dst, p.row0 * p.cols);
    }
  }

  protected override raw16(name: string, dst: Uint16Array): void {
    let o = 0;
    for (const p of this.parts.get(name)!) {
      const raw = this.readRaw(p.gguf.name);
      dst.set(new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2), o);
      o += raw.byteLength / 2;
    }
  }

  /** Bytes the weights take in the file (blocks as stored). */
  weightBytes(): number {
    let n = 0;
    for (const parts of this.parts.values()) for (const p of parts) n += ggmlBytes(p.gguf.type, ggufNumel(p.gguf.dims));
    return n;
  }

  tokenizer(): Tokenizer {
    return ggufTokenizer(this.gguf.skipped ? readGGUF(this.location, { vocabulary: 'packed' }) : this.gguf, this.location);
  }

  override close(): void {
    if (this.fd !== null) { fs.closeSync(this.fd); this.fd = null; }
  }
}
