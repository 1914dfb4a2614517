// OpenELM configuration: the raw HF `config.json` (OpenELMHFConfig, snake_case keys as Apple ships
// them) and the resolved per-layer geometry (OpenELMConfig) the engine runs on.
//
// Layer-wise scaling is the part generic engines get wrong: every layer has its own query-head,
// kv-head and FFN width, derived from linear ranges of multipliers exactly as Apple's
// configuration_openelm.py does (numpy linspace, Python round(v, 2), make_divisible with its 10 % rule).

import { OpenELMError } from '../core/errors.js';
import { paramSpecs, type ParamSpec } from './params.js';

/** The keys of Apple's OpenELMConfig as they appear in config.json. */
export interface OpenELMHFConfig {
  model_type?: string;
  architectures?: string[];
  num_transformer_layers: number;
  model_dim: number;
  head_dim: number;
  num_gqa_groups?: number;
  qkv_multipliers?: number | number[];
  ffn_multipliers?: number | number[];
  ffn_dim_divisor?: number;
  ffn_with_glu?: boolean;
  activation_fn_name?: string;
  normalization_layer_name?: string;
  normalize_qk_projections?: boolean;
  share_input_output_layers?: boolean;
  rope_freq_constant?: number;
  rope_max_length?: number;
  max_context_length?: number;
  vocab_size: number;
  bos_token_id?: number;
  eos_token_id?: number;
  num_query_heads?: number[];
  num_kv_heads?: number[];
  initializer_range?: number;
  torch_dtype?: string;
  [extra: string]: unknown;
}

/** Fully resolved geometry; every per-layer list has numLayers entries. */
export interface OpenELMConfig {
  numLayers: number;
  modelDim: number;
  headDim: number;
  vocabSize: number;
  maxContextLength: number;
  ropeFreqConstant: number;
  ropeMaxLength: number;
  /** Query heads per kv head (Apple's confusingly named `num_gqa_groups`). */
  numGqaGroups: number;
  qkvMultipliers: number[];
  ffnMultipliers: number[];
  numQueryHeads: number[];
  numKvHeads: number[];
  ffnDims: number[];
  ffnWithGlu: boolean;
  normalizeQk: boolean;
  tiedEmbeddings: boolean;
  normEps: number;
  bosTokenId: number;
  eosTokenId: number;
  /** The config.json this was resolved from (kept so checkpoints round-trip unchanged). */
  hf: OpenELMHFConfig;
}

/** Python's round(v, 2) for the values linspace produces (exact halves round to even). */
export function pyRound2(v: number): number {
  // A double is an exact tie at 2 decimals only when it is k/8 with k odd (x.125, x.375, ...).
  if (Number.isInteger(v * 8) && !Number.isInteger(v * 4)) {
    const lo = Math.floor(v * 100) / 100;
    const hi = Math.ceil(v * 100) / 100;
    return Math.round(lo * 100) % 2 === 0 ? lo : hi;
  }
  return Number(v.toFixed(2));
}

/** numpy.linspace(a, b, n) with float64 semantics: a + i*step, last value exactly b. */
export function linspace(a: number, b: number, n: number): number[] {
  if (n === 1) return [a];
  const step = (b - a) / (n - 1);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(i * step + a);
  out[n - 1] = b;
  return out;
}

/** MobileNet's make_divisible: nearest multiple of d (ties up), at least d, never > 10 % below v. */
export function makeDivisible(v: number, d: number): number {
  let r = Math.max(d, Math.floor(Math.floor(v + d / 2) / d) * d);
  if (r < 0.9 * v) r += d;
  return r;
}

function multipliers(name: string, m: number | number[] | undefined, n: number, dflt: number[]): number[] {
  const v = m ?? dflt;
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v <= 0) throw new OpenELMError('config', `${name} must be a positive number, got ${v}`);
    return new Array<number>(n).fill(v);
  }
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'number' || !Number.isFinite(x) || x <= 0)) {
    throw new OpenELMError('config', `${name} must be a positive number or a list of positive numbers`);
  }
  // Apple's convention: a 2-element list is a (min, max) range over depth; otherwise one value per layer.
  if (v.length === 2) return linspace(v[0], v[1], n).map(pyRound2);
  if (v.length === n) return v.slice();
  throw new OpenELMError('config', `${name} has ${v.length} entries; expected 2 (a range) or ${n} (one per layer)`);
}

function posInt(hf: Record<string, unknown>, key: string, dflt?: number): number {
  const v = hf[key] ?? dflt;
  if (v === undefined) throw new OpenELMError('config', `config.json is missing "${key}"`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new OpenELMError('config', `config.json "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function bool(hf: Record<string, unknown>, key: string, dflt: boolean): boolean {
  const v = hf[key] ?? dflt;
  if (typeof v !== 'boolean') throw new OpenELMError('config', `config.json "${key}" must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/** Resolve an HF config.json object into per-layer geometry. Pure; throws OpenELMError on bad input. */
export function resolveConfig(raw: unknown): OpenELMConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new OpenELMError('config', 'config.json must contain a JSON object');
  }
  const hf = raw as OpenELMHFConfig & Record<string, unknown>;
  if (hf.model_type !== undefined && hf.model_type !== 'openelm') {
    throw new OpenELMError('config', `config.json model_type is "${String(hf.model_type)}", expected "openelm"`);
  }
  const numLayers = posInt(hf, 'num_transformer_layers');
  const modelDim = posInt(hf, 'model_dim');
  const headDim = posInt(hf, 'head_dim');
  const vocabSize = posInt(hf, 'vocab_size');
  const numGqaGroups = posInt(hf, 'num_gqa_groups', 1);
  const ffnDivisor = posInt(hf, 'ffn_dim_divisor', 256);
  const maxContextLength = posInt(hf, 'max_context_length', 2048);
  const ropeMaxLength = posInt(hf, 'rope_max_length', 4096);
  const rope = hf.rope_freq_constant ?? 10000;
  if (typeof rope !== 'number' || !(rope > 0)) throw new OpenELMError('config', `config.json "rope_freq_constant" must be a positive number`);
  if (headDim % 2 !== 0) throw new OpenELMError('config', `head_dim must be even for rotary embeddings, got ${headDim}`);
  const act = hf.activation_fn_name ?? 'swish';
  if (act !== 'swish' && act !== 'silu') throw new OpenELMError('config', `activation_fn_name "${String(act)}" is not supported (OpenELM uses "swish")`);
  const norm = hf.normalization_layer_name ?? 'rms_norm';
  if (norm !== 'rms_norm') throw new OpenELMError('config', `normalization_layer_name "${String(norm)}" is not supported (OpenELM uses "rms_norm")`);

  const qkvMultipliers = multipliers('qkv_multipliers', hf.qkv_multipliers, numLayers, [0.5, 1.0]);
  const ffnMultipliers = multipliers('ffn_multipliers', hf.ffn_multipliers, numLayers, [0.5, 4.0]);
  const numQueryHeads: number[] = [];
  const numKvHeads: number[] = [];
  const ffnDims: number[] = [];
  for (let i = 0; i < numLayers; i++) {
    const qDim = makeDivisible(modelDim * qkvMultipliers[i], headDim * numGqaGroups);
    const q = qDim / headDim;
    numQueryHeads.push(q);
    numKvHeads.push(q / numGqaGroups);
    ffnDims.push(makeDivisible(ffnMultipliers[i] * modelDim, ffnDivisor));
  }
  // Like Apple's configuration_openelm.py, the stored num_query_heads / num_kv_heads lists are
  // ignored and recomputed; a checkpoint that disagrees is caught by the tensor shape checks.
  // The config.json written back has Apple's released shape: one ffn_multipliers entry and one
  // head count per layer (llama.cpp's converter and mlx-lm read those lists, not the ranges),
  // while qkv_multipliers stays as given, since Apple's code always reads it as a (min, max) range.
  const bos = hf.bos_token_id ?? 1;
  const eos = hf.eos_token_id ?? 2;
  return {
    numLayers, modelDim, headDim, vocabSize, maxContextLength, ropeMaxLength,
    ropeFreqConstant: rope, numGqaGroups, qkvMultipliers, ffnMultipliers,
    numQueryHeads, numKvHeads, ffnDims,
    ffnWithGlu: bool(hf, 'ffn_with_glu', true),
    normalizeQk: bool(hf, 'normalize_qk_projections', true),
    tiedEmbeddings: bool(hf, 'share_input_output_layers', true),
    normEps: 1e-6,
    bosTokenId: typeof bos === 'number' ? bos : 1,
    eosTokenId: typeof eos === 'number' ? eos : 2,
    hf: { ...hf, ffn_multipliers: ffnMultipliers, num_query_heads: numQueryHeads, num_kv_heads: numKvHeads },
  };
}

export { paramSpecs, type ParamSpec };

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function parameterCount(c: OpenELMConfig): number {
  let n = 0;
  for (const p of paramSpecs(c)) n += numel(p.shape);
  return n;
}

/** KV-cache values per token (K and V, all layers). */
export function kvValuesPerToken(c: OpenELMConfig): number {
  let n = 0;
  for (const k of c.numKvHeads) n += 2 * k * c.headDim;
  return n;
}

// ----------------------------------------------------------------------------------------------
// Presets: the four released sizes, as Apple's OpenELM_CONFIGS / config.json describe them.

const BASE = {
  model_type: 'openelm', architectures: ['OpenELMForCausalLM'],
  num_gqa_groups: 4, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 4.0], ffn_dim_divisor: 256,
  ffn_with_glu: true, activation_fn_name: 'swish', normalization_layer_name: 'rms_norm',
  normalize_qk_projections: true, share_input_output_layers: true, rope_freq_constant: 10000,
  rope_max_length: 4096, max_context_length: 2048, vocab_size: 32000, bos_token_id: 1, eos_token_id: 2,
  initializer_range: 0.02, torch_dtype: 'bfloat16',
};

const SIZES: Record<string, { num_transformer_layers: number; model_dim: number; head_dim: number }> = {
  '270M': { num_transformer_layers: 16, model_dim: 1280, head_dim: 64 },
  '450M': { num_transformer_layers: 20, model_dim: 1536, head_dim: 64 },
  '1_1B': { num_transformer_layers: 28, model_dim: 2048, head_dim: 64 },
  '3B': { num_transformer_layers: 36, model_dim: 3072, head_dim: 128 },
};

export const PRESET_NAMES: string[] = Object.keys(SIZES).flatMap((s) => [`OpenELM-${s}`, `OpenELM-${s}-Instruct`]);

/** HF config.json object for a preset name such as "OpenELM-270M" or "apple/OpenELM-1_1B-Instruct". */
export function presetHFConfig(name: string): OpenELMHFConfig {
  const m = /^(?:apple\/)?OpenELM-(270M|450M|1_1B|1\.1B|3B)(-Instruct)?$/i.exec(name.trim());
  if (!m) throw new OpenELMError('config', `unknown preset "${name}"; choose one of ${PRESET_NAMES.join(', ')}`);
  const size = m[1].toUpperCase().replace('1.1B', '1_1B');
  const key = Object.keys(SIZES).find((k) => k.toUpperCase() === size);
  if (!key) throw new OpenELMError('config', `unknown preset "${name}"`);
  const hf = { ...BASE, ...SIZES[key] } as OpenELMHFConfig;
  const c = resolveConfig(hf);
  return c.hf;
}
