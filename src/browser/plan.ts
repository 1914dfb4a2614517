// What loading a model will take, known before any weight is downloaded: the config, the weight
// files and their sizes (and which the browser already keeps), and the memory the model needs,
// checked against what a page may use.
//
// Memory: the linear weights at their storage dtype (q8 = 1 byte + an f32 scale per 32 values,
// q4 = half a byte + an 8-bit scale and min code per 32 and 8 bytes per row; backends/weight-format.ts),
// the 1-D norm weights in f32, the KV cache of a full context in f32
// (model/kv-cache.ts), and working buffers (logits and activations of a prefill). The budget of a
// page is half of the memory the device reports (platform.ts); the WASM backend spreads weights
// beyond 4 GiB over several WebAssembly memories (backends/wasm/shard.ts), so that is the bound.

import { OpenELMError } from '../core/errors.js';
import { parseJsonText } from '../core/json-text.js';
import { kvValuesPerToken, paramSpecs, presetHFConfig, resolveConfig, type OpenELMConfig } from '../model/config.js';
import { isInstructName } from '../model/family.js';
import type { LoadDType } from '../model/load.js';
import { weightBytes } from '../backends/weight-format.js';
import type { Backend, ConvertDType, WeightDType } from '../backends/backend.js';
import { checkBufferLimit } from '../model/device-fit.js';
import { fmtBytes, quotaMessage, storageEstimate } from './downloads.js';
import type { ModelFiles } from './model-files.js';
import { deviceMemoryBytes, pageMemoryBudget } from './platform.js';
import { quantLayoutOf, withoutQuantEntry, type QuantLayout } from '../formats/openelm-quant.js';

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

export interface WeightFile { file: string; size: number | null; cached: boolean; }

export interface MemoryEstimate { weights: number; kvCache: number; work: number; total: number; }

export interface ModelPlan {
  /** The model as the user named it (URL, hub id, folder). */
  name: string;
  kind: ModelFiles['kind'];
  config: OpenELMConfig;
  instruct: boolean;
  params: number;
  weightFiles: WeightFile[];
  /** Tensor → shard, for sharded checkpoints. */
  weightMap?: Record<string, string>;
  /** Bytes still to download (files the browser does not keep yet). */
  downloadBytes: number;
  /** Bytes of all weight files. */
  totalBytes: number;
  /** False when a server did not say how large a file is. */
  sizeKnown: boolean;
  /**
   * Storage of the checkpoint's linear weights: a pre-quantized folder's q8/q4, else its floats'
   * (from the file size per parameter, else config.json's torch_dtype).
   */
  fileDType: 'f32' | 'bf16' | 'f16' | 'q8' | 'q4';
  /** The layout of a pre-quantized folder (formats/openelm-quant.ts), else null. */
  quantized: QuantLayout | null;
  /** Storage of the linear weights once loaded. */
  loadDType: ConvertDType;
  memory: MemoryEstimate;
  /** KV-cache tokens the estimate assumes (the context a chat will use). */
  contextTokens: number;
  /** What the page may use (half the device's memory; null where the browser does not say). */
  limitBytes: number | null;
  /** What the device says it has (navigator.deviceMemory, GiB, rounded by the browser). */
  deviceMemoryBytes: number | null;
  fits: boolean;
  /** Why it does not fit and what would, or a warning when it is close to the device's memory. */
  advice: string | null;
  /** The folder has its own tokenizer.model (else the bundled Llama-2 one is used). */
  hasTokenizer: boolean;
  /** tokenizer_config.json as parsed, or null. */
  tokenizerConfig: unknown;
}

export interface PlanOptions {
  dtype?: LoadDType;
  /** Backend the model will run on; the page's budget applies to the CPU backends ('wasm', 'js', 'auto'). */
  backend?: string;
  /** KV-cache tokens to budget (default: the model's context length). */
  contextTokens?: number;
}

const WORK_BYTES = 64 << 20;

function bytesPerValue(d: WeightDType): number {
  return d === 'f32' ? 4 : d === 'bf16' || d === 'f16' ? 2 : d === 'q8' ? 1 + 2 / 32 : 0.5 + 2 / 32;
}

/** Memory a model of config `c` takes with linear weights stored as `dtype`. */
export function estimateMemory(c: OpenELMConfig, dtype: WeightDType, contextTokens: number): MemoryEstimate {
  let weights = 0;
  for (const p of paramSpecs(c)) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (p.shape.length === 1) weights += n * 4;
    else weights += dtype === 'q4' ? weightBytes('q4', n, p.shape[1]) : n * bytesPerValue(dtype);
  }
  const kvCache = kvValuesPerToken(c) * contextTokens * 4;
  // A prefill's logits and activations: a few rows of vocab-wide floats, plus fixed scratch.
  const work = WORK_BYTES + c.vocabSize * 4 * 64;
  return { weights, kvCache, work, total: weights + kvCache + work };
}

function jsonOf(text: string, what: string): unknown {
  return parseJsonText(text, what);
}

/** Read a model's config and file sizes and work out what loading it takes. */
export async function planModel(files: ModelFiles, opts: PlanOptions = {}): Promise<ModelPlan> {
  const cfgText = await files.text('config.json');
  if (cfgText === null) {
    throw new OpenELMError('model', files.kind === 'files'
      ? `the picked files have no config.json: pick the model folder (config.json + model.safetensors)`
      : files.kind === 'hub'
        ? `hub model ${files.name} was not found (no such model, or it is private or gated and needs a token)`
        : `${files.name} is not a model folder: it has no config.json${files.urlOf ? ` (${files.urlOf('config.json')})` : ''}`);
  }
  let config: OpenELMConfig;
  let quantized: QuantLayout | null;
  try {
    const raw = jsonOf(cfgText, `${files.name}/config.json`);
    quantized = quantLayoutOf(raw, `${files.name}/config.json`);
    config = resolveConfig(withoutQuantEntry(raw));
  } catch (e) {
    if (e instanceof OpenELMError) throw new OpenELMError(e.code, `${files.name} is not an OpenELM model folder: ${e.message}`);
    throw e;
  }

  let weightFiles: WeightFile[];
  let weightMap: Record<string, string> | undefined;
  const single = await files.stat(SINGLE_FILE);
  if (single) weightFiles = [{ file: SINGLE_FILE, ...single }];
  else {
    const idxText = await files.text(INDEX_FILE);
    if (idxText === null) throw new OpenELMError('model', `${files.name} has config.json but no ${SINGLE_FILE} or ${INDEX_FILE}`);
    const idx = jsonOf(idxText, `${files.name}/${INDEX_FILE}`) as { weight_map?: unknown };
    if (!idx || typeof idx.weight_map !== 'object' || idx.weight_map === null) throw new OpenELMError('checkpoint', `${files.name}/${INDEX_FILE}: missing "weight_map" object`);
    weightMap = idx.weight_map as Record<string, string>;
    const shards = [...new Set(Object.values(weightMap))];
    if (shards.length === 0 || shards.some((s) => typeof s !== 'string' || s.includes('/') || s.includes('\\'))) {
      throw new OpenELMError('checkpoint', `${files.name}/${INDEX_FILE}: "weight_map" must map tensors to shard file names`);
    }
    weightFiles = [];
    for (const s of shards) {
      const st = await files.stat(s);
      if (!st) throw new OpenELMError('checkpoint', `${files.name}: shard ${s} named by ${INDEX_FILE} is missing`);
      weightFiles.push({ file: s, ...st });
    }
  }
  const sizeKnown = weightFiles.every((f) => f.size !== null);
  const totalBytes = weightFiles.reduce((a, f) => a + (f.size ?? 0), 0);
  const downloadBytes = weightFiles.reduce((a, f) => a + (f.cached ? 0 : f.size ?? 0), 0);

  let params = 0;
  for (const p of paramSpecs(config)) params += p.shape.reduce((a, b) => a * b, 1);
  const torch = String(config.hf.torch_dtype ?? '');
  const perParam = sizeKnown && params > 0 ? totalBytes / params : 0;
  const fileDType: ModelPlan['fileDType'] = quantized ? quantized.dtype : perParam > 3 ? 'f32' : perParam > 0 ? (torch === 'float16' ? 'f16' : 'bf16')
    : torch === 'float32' ? 'f32' : torch === 'float16' ? 'f16' : 'bf16';
  const loadDType: ConvertDType = !opts.dtype || opts.dtype === 'auto' ? fileDType : opts.dtype;
  const contextTokens = opts.contextTokens ?? config.maxContextLength;
  const memory = estimateMemory(config, loadDType, contextTokens);

  const backend = opts.backend ?? 'auto';
  const deviceMemory = deviceMemoryBytes();
  const limitBytes = backend === 'wasm' || backend === 'auto' || backend === 'js' ? pageMemoryBudget() : null;
  const fits = limitBytes === null || memory.total <= limitBytes;
  const name = files.name;
  let advice: string | null = null;
  if (!fits) advice = tooLargeMessage(name, config, loadDType, memory, contextTokens, limitBytes!, deviceMemory!);
  else if (limitBytes !== null && memory.total > 0.8 * limitBytes) {
    advice = `${name} needs about ${fmtBytes(memory.total)}, close to the ${fmtBytes(limitBytes)} a page may use here; the browser may close the tab (q8 or q4 need less)`;
  }
  const tokCfg = await files.text('tokenizer_config.json');
  const hasTokenizer = (await files.stat('tokenizer.model')) !== null;
  const nameOrPath = typeof config.hf._name_or_path === 'string' ? config.hf._name_or_path : '';
  return {
    name, kind: files.kind, config, instruct: isInstructName(name, nameOrPath), params, weightFiles, weightMap,
    downloadBytes, totalBytes, sizeKnown, fileDType, quantized, loadDType, memory, contextTokens, limitBytes, deviceMemoryBytes: deviceMemory, fits, advice,
    hasTokenizer, tokenizerConfig: tokCfg === null ? null : safeJson(tokCfg),
  };
}

function safeJson(text: string): unknown {
  try { return JSON.parse(text); } catch { return null; }
}

/** "X is too large …: it needs N (…), more than the M a page may use here; it fits with dtype q8 (…)". */
export function tooLargeMessage(name: string, c: OpenELMConfig, dtype: WeightDType, m: MemoryEstimate, ctx: number, limit: number, device: number): string {
  const fitting = (['bf16', 'q8', 'q4'] as WeightDType[])
    .filter((d) => bytesPerValue(d) < bytesPerValue(dtype))
    .map((d) => ({ d, total: estimateMemory(c, d, ctx).total }))
    .filter((x) => x.total <= limit);
  let alt: string;
  if (fitting.length) alt = `it fits with dtype ${fitting.map((x) => `${x.d} (${fmtBytes(x.total)})`).join(' or ')}`;
  else {
    const smaller = ['OpenELM-3B', 'OpenELM-1_1B', 'OpenELM-450M', 'OpenELM-270M'].flatMap((p) => (['bf16', 'q8', 'q4'] as WeightDType[])
      .map((d) => ({ p, d, total: estimateMemory(resolveConfig(presetHFConfig(p)), d, ctx).total })))
      .find((x) => x.total <= limit);
    alt = smaller ? `a smaller model fits, e.g. apple/${smaller.p}-Instruct (${fmtBytes(smaller.total)} in ${smaller.d})` : 'no OpenELM fits';
  }
  return `${name} is too large for this browser: it needs about ${fmtBytes(m.total)} (${fmtBytes(m.weights)} of ${dtype} weights + ` +
    `${fmtBytes(m.kvCache)} KV cache for ${ctx} tokens), more than the ${fmtBytes(limit)} a page may use here ` +
    `(half of the ${fmtBytes(device)} this device reports); ${alt}`;
}

/** Throws a storage error when keeping `bytes` more would exceed this site's quota. */
export async function checkQuota(what: string, bytes: number): Promise<void> {
  if (bytes <= 0) return;
  const est = await storageEstimate();
  if (est && est.quota - est.usage < bytes) {
    throw new OpenELMError('storage', quotaMessage(what, bytes, est));
  }
}

/**
 * Refuse, before anything is allocated or downloaded, a model whose largest weight is larger than
 * the largest buffer the backend's GPU allows (model/device-fit.ts). WebGPU gives no figure for the
 * memory in all: a model that passes can still run out, which the load reports (gpuLoadFailure).
 */
export function checkDeviceFit(plan: ModelPlan, be: Backend): void {
  const lim = be.bufferLimit?.();
  if (!lim) return;
  const storageOf = (_name: string, d: ConvertDType | 'auto'): ConvertDType => (d === 'auto' ? plan.fileDType : d);
  checkBufferLimit(plan.name, plan.config, plan.loadDType, storageOf, lim);
}
