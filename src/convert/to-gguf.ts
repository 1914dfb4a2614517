// An HF-format OpenELM folder to a GGUF file for llama.cpp's `openelm` architecture.
//
// What llama.cpp expects (src/llama-model.cpp, the OPENELM case, and its converter):
// - per-layer head counts, kv-head counts and FFN widths as i32 arrays of block_count entries;
// - key_length = value_length = rope.dimension_count = head_dim, rms eps 1e-6;
// - tensors in ggml dim order (the reverse of PyTorch's): a [out, in] weight is {in, out};
// - proj_1 split into ffn_gate (first F rows) and ffn_up (last F rows);
// - no output.weight: llama.cpp loads token_embd a second time as the head;
// - norms (all 1-D tensors) stay F32 whatever the file type; 2-D weights whose rows are not a
//   multiple of 32 cannot be Q8_0 / Q4_0 and fall back to F16 (what llama.cpp's converter does);
// - q4_0 files hold the layers' weights in Q4_0 and the embedding (the tied head) in Q5_0, which
//   is what `llama-quantize --token-embedding-type q5_0 F32.gguf OUT.gguf Q4_0` writes: smaller
//   than llama-quantize's default Q4_0 (whose head is Q6_K, for which ggml has no reference
//   quantizer simple enough to match), within a few percent of its KL (docs/quantization.md);
// - the Llama-2 SentencePiece vocab as tokenizer.ggml.* ("llama" model), padded with unused
//   [PADn] pieces when the model's vocab_size is larger (CoreNet's 32128).

import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import * as fs from 'node:fs';
import { openModelSource } from '../formats/source.js';
import { checkOutputFile } from '../io/output-guard.js';
import { writeGGUF, kv, GGMLType, tensorBytes, type GGUFKV, type GGUFTensorSource } from '../io/gguf.js';
import { paramSpecs, type OpenELMConfig } from '../model/config.js';
import { loadTokenizer } from '../io/tokenizer-file.js';
import { PieceType } from '../tokenizer/sentencepiece-model.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { encodeTensor, q8ToQ8_0 } from './ggml-encode.js';
import { QuantizedModel } from '../formats/openelm-quant.js';
import { allocWeightStorage } from '../backends/weight-format.js';
import type { Weight } from '../backends/backend.js';

export const GGUF_OUT_TYPES = ['f32', 'f16', 'q8_0', 'q4_0'] as const;
export type GGUFOutType = (typeof GGUF_OUT_TYPES)[number];

/** llama_ftype values for general.file_type (LLAMA_FTYPE_MOSTLY_*). */
const FILE_TYPE: Record<GGUFOutType, number> = { f32: 0, f16: 1, q8_0: 7, q4_0: 2 };
const TENSOR_TYPE: Record<GGUFOutType, GGMLType> = { f32: GGMLType.F32, f16: GGMLType.F16, q8_0: GGMLType.Q8_0, q4_0: GGMLType.Q4_0 };
/** The embedding's (and so the head's) type where it differs from the layers'. */
const EMBEDDING_TYPE: Partial<Record<GGUFOutType, GGMLType>> = { q4_0: GGMLType.Q5_0 };

export interface ConvertOptions {
  /** Tokenizer whose vocab goes into the file (default: the folder's tokenizer.model, else the bundled Llama-2 one). */
  tokenizer?: Tokenizer;
  /** general.name (default: the folder's name). */
  name?: string;
  /** Replace an existing output file (never one of the files being read). Default false. */
  overwrite?: boolean;
  /** Further files the conversion reads (e.g. the tokenizer file), so the output is never one of them. */
  inputs?: string[];
  /** For a CoreNet .pt source: its CoreNet YAML or HF config.json. */
  config?: string;
}

export interface ConvertResult {
  file: string;
  bytes: number;
  dtype: GGUFOutType;
  tensors: number;
  metadata: number;
  /** Tensors written as F16 because Q8_0 / Q4_0 could not hold them. */
  fallbacks: string[];
}

export function validateGGUFType(d: string): GGUFOutType {
  if ((GGUF_OUT_TYPES as readonly string[]).includes(d)) return d as GGUFOutType;
  throw new OpenELMError('usage', `unknown GGUF dtype "${d}"; choose one of ${GGUF_OUT_TYPES.join(', ')}`);
}

/** Every file the conversion of `dir` reads. */
/** Every file the conversion may read: the input file, or every file of the input folder, and `extra`. */
function inputFiles(input: string, extra: readonly string[]): string[] {
  const own = fs.statSync(input).isDirectory() ? fs.readdirSync(input).map((f) => path.join(input, f)) : [input];
  return [...own, ...extra];
}

function checkSupported(c: OpenELMConfig, where: string): void {
  const no = (what: string) => new OpenELMError('convert', `${where}: llama.cpp's openelm architecture needs ${what}`);
  if (!c.tiedEmbeddings) throw no('share_input_output_layers = true (it has no separate output tensor)');
  if (!c.normalizeQk) throw no('normalize_qk_projections = true (attn_q_norm / attn_k_norm are required tensors)');
  if (!c.ffnWithGlu) throw no('ffn_with_glu = true (it reads ffn_gate and ffn_up)');
}

/** The tokenizer.ggml.* metadata for a vocab of exactly `vocabSize` entries. */
export function vocabMetadata(tok: Tokenizer, c: OpenELMConfig): GGUFKV[] {
  const model = tok.model, pieces = model.pieces;
  if (pieces.length > c.vocabSize) {
    throw new OpenELMError('convert', `the tokenizer has ${pieces.length} pieces but the model's vocab_size is ${c.vocabSize}; the embedding must cover every token`);
  }
  const tokens: string[] = [], scores: number[] = [], types: number[] = [];
  for (const p of pieces) { tokens.push(p.piece); scores.push(p.score); types.push(p.type); }
  // SentencePiece piece types and GGUF token types share their numbering (NORMAL 1 ... BYTE 6).
  for (let i = pieces.length; i < c.vocabSize; i++) { tokens.push(`[PAD${i}]`); scores.push(-1000); types.push(PieceType.UNUSED); }
  const out = [
    kv.str('tokenizer.ggml.model', 'llama'),
    kv.strs('tokenizer.ggml.tokens', tokens),
    kv.f32s('tokenizer.ggml.scores', scores),
    kv.i32s('tokenizer.ggml.token_type', types),
    kv.u32('tokenizer.ggml.bos_token_id', c.bosTokenId),
    kv.u32('tokenizer.ggml.eos_token_id', c.eosTokenId),
    kv.u32('tokenizer.ggml.unknown_token_id', tok.unkId),
  ];
  if (tok.padId >= 0) out.push(kv.u32('tokenizer.ggml.padding_token_id', tok.padId));
  out.push(
    kv.bool('tokenizer.ggml.add_bos_token', true),
    kv.bool('tokenizer.ggml.add_eos_token', false),
    kv.bool('tokenizer.ggml.add_space_prefix', model.normalizerSpec.addDummyPrefix),
  );
  return out;
}

export function openelmMetadata(c: OpenELMConfig, dtype: GGUFOutType, name: string): GGUFKV[] {
  const A = 'openelm.';
  return [
    kv.str('general.architecture', 'openelm'),
    kv.str('general.name', name),
    kv.u32('general.alignment', 32),
    kv.u32('general.file_type', FILE_TYPE[dtype]),
    kv.u32('general.quantization_version', 2),
    kv.u32(A + 'block_count', c.numLayers),
    kv.u32(A + 'context_length', c.maxContextLength),
    kv.u32(A + 'embedding_length', c.modelDim),
    kv.i32s(A + 'feed_forward_length', c.ffnDims),
    kv.i32s(A + 'attention.head_count', c.numQueryHeads),
    kv.i32s(A + 'attention.head_count_kv', c.numKvHeads),
    kv.u32(A + 'attention.key_length', c.headDim),
    kv.u32(A + 'attention.value_length', c.headDim),
    kv.u32(A + 'rope.dimension_count', c.headDim),
    kv.f32(A + 'rope.freq_base', c.ropeFreqConstant),
    kv.f32(A + 'attention.layer_norm_rms_epsilon', c.normEps),
  ];
}

/** Tensor plan: GGUF name, HF source, row range of the source (for the proj_1 split). */
interface Plan { name: string; src: string; shape: number[]; rows?: [number, number]; }

function tensorPlan(c: OpenELMConfig): Plan[] {
  const specs = new Map(paramSpecs(c).map((p) => [p.name, p.shape]));
  const plan: Plan[] = [];
  const add = (name: string, src: string, rows?: [number, number]) => {
    const shape = specs.get(src)!.slice();
    if (rows) shape[0] = rows[1] - rows[0];
    plan.push({ name, src, shape, rows });
  };
  add('token_embd.weight', 'transformer.token_embeddings.weight');
  for (let i = 0; i < c.numLayers; i++) {
    const p = `transformer.layers.${i}.`, b = `blk.${i}.`, F = c.ffnDims[i];
    add(b + 'attn_norm.weight', p + 'attn_norm.weight');
    add(b + 'attn_qkv.weight', p + 'attn.qkv_proj.weight');
    add(b + 'attn_q_norm.weight', p + 'attn.q_norm.weight');
    add(b + 'attn_k_norm.weight', p + 'attn.k_norm.weight');
    add(b + 'attn_output.weight', p + 'attn.out_proj.weight');
    add(b + 'ffn_norm.weight', p + 'ffn_norm.weight');
    add(b + 'ffn_gate.weight', p + 'ffn.proj_1.weight', [0, F]);
    add(b + 'ffn_up.weight', p + 'ffn.proj_1.weight', [F, 2 * F]);
    add(b + 'ffn_down.weight', p + 'ffn.proj_2.weight');
  }
  add('output_norm.weight', 'transformer.norm.weight');
  return plan;
}

/** Convert a model (any format openModelSource reads) to GGUF at `out` (written atomically). */
export function convertToGGUF(dir: string, out: string, dtype: GGUFOutType, opts: ConvertOptions = {}): ConvertResult {
  validateGGUFType(dtype);
  // Cheap checks first (missing input, a folder as output); the own-input check needs the file list.
  checkOutputFile(out, { inputs: [], overwrite: true });
  const src = openModelSource(dir, { config: opts.config });
  const ckpt = src.reader;
  try {
    checkOutputFile(out, { inputs: inputFiles(dir, [...(opts.config ? [opts.config] : []), ...(opts.inputs ?? [])]), overwrite: opts.overwrite });
    const config = src.config;
    checkSupported(config, src.format === 'hf' ? path.join(dir, 'config.json') : dir);
    const folder = fs.statSync(dir).isDirectory() ? dir : undefined;
    const tok = opts.tokenizer ?? src.tokenizer?.() ?? loadTokenizer(folder);
    const meta = [...openelmMetadata(config, dtype, opts.name ?? path.basename(path.resolve(dir)).replace(/\.(gguf|pt|pth)$/i, '')), ...vocabMetadata(tok, config)];
    for (const p of paramSpecs(config)) ckpt.expectShape(p.name, p.shape);
    // proj_1 feeds two tensors in a row; keep the last source read so it is read once.
    let last: { src: string; data: Float32Array } | null = null;
    const read = (src: string): Float32Array => {
      if (last?.src !== src) last = { src, data: ckpt.readF32(src) };
      return last.data;
    };
    // A pre-quantized q8 folder's weights are Q8_0 blocks already (the same f16 scale, the same
    // levels): to Q8_0 they are copied, not quantized again.
    let lastQ8: { src: string; w: Weight } | null = null;
    const storedQ8 = (src: string, shape: readonly number[]): Weight | null => {
      if (lastQ8?.src === src) return lastQ8.w;
      const parts = ckpt instanceof QuantizedModel ? ckpt.storedWeight(src) : null;
      if (parts?.length !== 1 || parts[0].dtype !== 'q8') return null;
      const w = allocWeightStorage('q8', shape[0], shape[1]);
      parts[0].read(w.data, w.scales);
      lastQ8 = { src, w };
      return w;
    };
    const fallbacks: string[] = [];
    const tensors: GGUFTensorSource[] = tensorPlan(config).map((p) => {
      const dims = p.shape.slice().reverse();
      let type = p.shape.length === 1 ? GGMLType.F32 : p.name === 'token_embd.weight' ? EMBEDDING_TYPE[dtype] ?? TENSOR_TYPE[dtype] : TENSOR_TYPE[dtype];
      if ((type === GGMLType.Q8_0 || type === GGMLType.Q4_0 || type === GGMLType.Q5_0) && dims[0] % 32 !== 0) { type = GGMLType.F16; fallbacks.push(p.name); }
      return {
        name: p.name, dims, type,
        data: () => {
          const q8 = type === GGMLType.Q8_0 ? storedQ8(p.src, ckpt.info(p.src).shape) : null;
          if (q8) {
            const [r0, r1] = p.rows ?? [0, q8.rows], K = q8.cols, out = new Uint8Array(tensorBytes(type, dims));
            q8ToQ8_0((q8.data as Int8Array).subarray(r0 * K, r1 * K), (q8.scales as Uint16Array).subarray(r0 * K / 32, r1 * K / 32), out);
            return out;
          }
          let v = read(p.src);
          if (p.rows) { const K = p.shape[1]; v = v.subarray(p.rows[0] * K, p.rows[1] * K); }
          return encodeTensor(v, type, dims);
        },
      };
    });
    const bytes = writeGGUF(out, meta, tensors);
    return { file: out, bytes, dtype, tensors: tensors.length, metadata: meta.length, fallbacks };
  } finally {
    src.close();
  }
}
