// loadModel for browsers: a model folder URL, a hub id or picked files → a LoadedModel (the same
// class the Node.js library returns: generate, stream, chat). Weights are downloaded with progress
// into the browser's cache (downloads.ts), checked against the memory the backend can give before
// the download starts (plan.ts), and read straight onto the backend (tensor-source.ts).

import type { Backend } from '../backends/backend.js';
import { backendNames, createBackend } from '../backends/index.js';
import { OpenELMError } from '../core/errors.js';
import { corenetInstructTemplate, templateFromTokenizerConfigObject, type ChatTemplate } from '../chat/template.js';
import { modelFromSource, validateDType, type LoadDType, type TensorSource } from '../model/load.js';
import { freeWeights } from '../model/openelm.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { LoadedModel } from '../loaded-model.js';
import { fetchOrExplain, fmtBytes, type FileProgress } from './downloads.js';
import { modelFiles, type ModelFiles, type ModelFilesOptions, type ModelSource } from './model-files.js';
import { checkDeviceFit, checkQuota, planModel, type ModelPlan } from './plan.js';
import { gpuLoadFailure } from '../model/device-fit.js';
import type { GpuLimits } from '../backends/webgpu/device.js';
import { BrowserCheckpoint, openSafetensors } from './tensor-source.js';
import { threadsUnavailableReason } from './platform.js';
import { keepWeightSource, type WeightSource } from './weight-files.js';
import { QuantizedModel } from '../formats/openelm-quant.js';

/** The checkpoint of a plan's files; a pre-quantized folder's reads its q8/q4 layout. */
function planSource(plan: ModelPlan, ckpt: BrowserCheckpoint): TensorSource & { close(): void } {
  if (!plan.quantized) return ckpt;
  try { return new QuantizedModel(ckpt, plan.config, plan.quantized); } catch (e) { ckpt.close(); throw e; }
}

/** 'compile': a GPU backend compiles its kernels (once per page; slow on a software adapter). */
export type LoadPhase = 'plan' | 'download' | 'load' | 'compile' | 'ready';

export interface LoadProgress {
  phase: LoadPhase;
  /** The file being downloaded (phase 'download'). */
  file?: FileProgress;
  /** Bytes of all weight files done so far, and in all (phase 'download'). */
  loaded?: number;
  total?: number;
}

export interface BrowserLoadOptions extends ModelFilesOptions {
  /** Storage of the linear weights: 'auto' (default) keeps the checkpoint's precision; q8/q4 quantize on load. */
  dtype?: LoadDType;
  /** 'auto' (default), 'wasm', 'js', a registered backend ('webgpu'), or a Backend you own. A named backend that is unavailable is an error. */
  backend?: string | Backend;
  /** Compute threads of the WASM backend (default: all cores when the context allows threads, else 1). */
  threads?: number;
  /** The webgpu backend on a device of its own with these buffer limits lowered (to leave room on the GPU, or to test). */
  gpuLimits?: GpuLimits;
  /** KV-cache tokens the memory check budgets for (default: the model's context length). */
  contextTokens?: number;
  onProgress?: (p: LoadProgress) => void;
  /** The plan made beforehand by inspectModel (skips asking the server again). */
  plan?: ModelPlan;
  /** Where the bundled Llama-2 tokenizer.model is served (default: the package's assets/ folder). */
  tokenizerUrl?: string | URL;
  /** A Tokenizer to use instead of the folder's or the bundled one. */
  tokenizer?: Tokenizer;
  /** A chat template instead of the folder's tokenizer_config.json one (else CoreNet's instruct format). */
  chatTemplate?: ChatTemplate;
}

/** The size, memory and files of a model, without downloading its weights. */
export async function inspectModel(source: ModelSource, opts: BrowserLoadOptions = {}): Promise<ModelPlan> {
  const files = modelFiles(source, opts);
  return planModel(files, { dtype: validateDType(opts.dtype ?? 'auto'), backend: typeof opts.backend === 'string' ? opts.backend : opts.backend?.name, contextTokens: opts.contextTokens });
}

let bundled: Promise<Tokenizer> | undefined;

/** The bundled Llama-2 tokenizer (fetched once; every OpenELM model uses it). */
export function bundledTokenizer(url?: string | URL): Promise<Tokenizer> {
  const u = url ?? new URL('../../../assets/tokenizer/tokenizer.model', import.meta.url);
  bundled ??= (async () => {
    const res = await fetchOrExplain(String(u));
    if (!res.ok) throw new OpenELMError('tokenizer', `cannot fetch the bundled tokenizer ${String(u)}: HTTP ${res.status}`);
    return Tokenizer.fromBytes(new Uint8Array(await res.arrayBuffer()), 'bundled Llama-2 tokenizer.model');
  })();
  bundled.catch(() => { bundled = undefined; });
  return bundled;
}

/** A backend by name; one that is not available here is an error that says why (never a fallback). */
export async function browserBackend(name: string, threads?: number, gpuLimits?: GpuLimits): Promise<Backend> {
  if (!backendNames().includes(name)) {
    throw new OpenELMError('backend', `the ${name} backend is not available in this build (available: ${backendNames().join(', ')})`);
  }
  return createBackend(name, { threads, gpuLimits });
}

/** Why the WASM backend runs on one thread here, or null when it has all cores. */
export function singleThreadReason(): string | null { return threadsUnavailableReason(); }

async function loadTokenizer(files: ModelFiles, plan: ModelPlan, opts: BrowserLoadOptions): Promise<Tokenizer> {
  if (opts.tokenizer) return opts.tokenizer;
  if (plan.hasTokenizer) {
    const b = await files.blob('tokenizer.model');
    return Tokenizer.fromBytes(new Uint8Array(await b.arrayBuffer()), `${files.name}/tokenizer.model`);
  }
  return bundledTokenizer(opts.tokenizerUrl);
}

function chatTemplateOf(plan: ModelPlan, opts: BrowserLoadOptions): ChatTemplate {
  if (opts.chatTemplate) return opts.chatTemplate;
  if (plan.tokenizerConfig) {
    const t = templateFromTokenizerConfigObject(plan.tokenizerConfig, `${plan.name}/tokenizer_config.json`);
    if (t) return t;
  }
  return corenetInstructTemplate();
}

/** The weight files of a plan, held as Blobs, as the source training reads the weights from again. */
function blobWeightSource(plan: ModelPlan, blobs: Blob[]): WeightSource {
  return {
    tokenizerConfig: plan.tokenizerConfig ?? undefined,
    loadDType: plan.loadDType,
    async open() {
      const readers = await Promise.all(plan.weightFiles.map((w, i) => openSafetensors(blobs[i], `${plan.name}/${w.file}`)));
      return planSource(plan, new BrowserCheckpoint(plan.name, readers, plan.weightMap));
    },
  };
}

/**
 * Load a model in a browser: a URL of a model folder (`./models/OpenELM-270M-Instruct/`, relative
 * to the page), a hub id (`apple/OpenELM-270M-Instruct`), or picked files. Threads need a Web
 * Worker in a cross-origin-isolated page; elsewhere the WASM backend runs on one thread.
 */
export async function loadModel(source: ModelSource, opts: BrowserLoadOptions = {}): Promise<LoadedModel> {
  opts.signal?.throwIfAborted();
  const dtype = validateDType(opts.dtype ?? 'auto');
  const files = modelFiles(source, opts);
  opts.onProgress?.({ phase: 'plan' });
  const backendName = typeof opts.backend === 'object' ? opts.backend.name : opts.backend ?? 'auto';
  const plan = opts.plan ?? await planModel(files, { dtype, backend: backendName, contextTokens: opts.contextTokens });
  if (!plan.fits) throw new OpenELMError('memory', plan.advice ?? `${plan.name} is too large for this browser`);
  if (opts.keep !== false && files.kind !== 'files') await checkQuota(`${plan.name} (${fmtBytes(plan.downloadBytes)})`, plan.downloadBytes);
  const owned = typeof opts.backend !== 'object';
  const backend = typeof opts.backend === 'object' ? opts.backend : await browserBackend(backendName, opts.threads, opts.gpuLimits);
  try {
    // the device is known now and nothing is on it yet: refuse what it cannot hold before the download
    checkDeviceFit(plan, backend);
    const blobs: Blob[] = [];
    let done = 0;
    for (const w of plan.weightFiles) {
      const b = await files.blob(w.file, (p) => opts.onProgress?.({ phase: 'download', file: p, loaded: done + p.loaded, total: plan.totalBytes }));
      done += b.size;
      blobs.push(b);
      opts.signal?.throwIfAborted();
    }
    const tokenizer = await loadTokenizer(files, plan, opts);
    const chatTemplate = chatTemplateOf(plan, opts);
    opts.onProgress?.({ phase: 'load' });
    const readers = await Promise.all(plan.weightFiles.map((w, i) => openSafetensors(blobs[i], `${plan.name}/${w.file}`)));
    const ckpt = planSource(plan, new BrowserCheckpoint(plan.name, readers, plan.weightMap));
    const t0 = performance.now();
    let model: ReturnType<typeof modelFromSource>;
    try {
      model = modelFromSource(ckpt, plan.config, backend, dtype);
    } finally {
      ckpt.close();
    }
    // a GPU backend compiles its kernels on first use: now, rather than on the first token
    if (backend.device === 'gpu') {
      opts.onProgress?.({ phase: 'compile' });
      try {
        await model.warmup();
      } catch (e) {
        if (!owned) { model.release(); freeWeights(backend, model.weights); }
        throw gpuLoadFailure(plan.name, e);
      }
    }
    const loadMs = performance.now() - t0;
    opts.onProgress?.({ phase: 'ready' });
    const lm = new LoadedModel({ dir: plan.name, model, tokenizer, chatTemplate, isInstruct: plan.instruct, backend, ownsBackend: owned, loadMs });
    keepWeightSource(lm, blobWeightSource(plan, blobs));
    return lm;
  } catch (e) {
    if (owned) backend.dispose();
    throw e;
  }
}
