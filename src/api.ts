import { resolveChatTemplate } from './io/chat-template-file.js';
import { tokenizerFromFile } from './io/tokenizer-file.js';
// The library API: load an OpenELM model from a folder or the Hugging Face hub, then generate,
// stream or chat with it.
//
//   import { loadModel } from 'openelm';
//   const model = await loadModel('apple/OpenELM-270M-Instruct');
//   const chat = model.chat({ system: 'You are terse.' });
//   for await (const chunk of chat.stream('Name three colors.')) process.stdout.write(chunk.text);
//   model.dispose();

import * as fs from 'node:fs';
import './platform/node.js';
import type { Backend } from './backends/backend.js';
import { createBackend } from './backends/index.js';
import { OpenELMError } from './core/errors.js';
import { isInstructName } from './model/family.js';
import { validateDType, type LoadDType } from './model/load.js';
import { loadModelFolder, readModelConfig } from './io/model-folder.js';
import { gpuLoadFailure } from './model/device-fit.js';
import { freeWeights } from './model/openelm.js';
import { isGGUFFile, modelTokenizer, openModelSource, type ModelSource } from './formats/source.js';
import { readPeftAdapter } from './io/peft-folder.js';
import type { Adapter } from './adapters/adapter.js';
import { RuntimeAdapter } from './model/runtime-adapter.js';
import { Tokenizer } from './tokenizer/tokenizer.js';
import { ensureModel, REPO_ID_RE, type DownloadProgress } from './hub/index.js';
import type { ChatTemplate } from './chat/template.js';
import { ADAPTER_NAME_RE, LoadedModel } from './loaded-model.js';
import { resolveModelFolder } from './train/run-folder.js';

export { ADAPTER_NAME_RE, LoadedModel, constraintSpecOf, type TextGenerateOptions } from './loaded-model.js';

export interface LoadModelOptions {
  /** Storage of the linear weights: 'auto' (default) keeps the checkpoint's precision; q8/q4 quantize on load. */
  dtype?: LoadDType;
  /** Compute threads for backends that use them (default: all cores). */
  threads?: number;
  /** 'auto' (default: the fastest available), 'wasm', 'js', another registered backend's name, or a Backend instance you own. */
  backend?: string | Backend;
  /** The optional native sgemm for prefill (npm run build:native): 'auto' (default: when available), 'on', 'off'. */
  native?: 'auto' | 'on' | 'off';
  /**
   * GGUF block weights on the wasm backend: exact f32 products on the decoded weights in decode
   * (Q8_0/Q4_0/Q4_K/Q6_K) and prompts (Q8_0/Q4_0) (default false: int8-quantized activations,
   * as llama.cpp, faster kernels). With the native addon, prompts are exact products either way.
   */
  exactBlocks?: boolean;
  /** Cancels a hub download (the partial file is kept and resumed next time). */
  signal?: AbortSignal;
  /** Download progress of hub models, per file. */
  onProgress?: (p: DownloadProgress) => void;
  /** Hub warnings (e.g. a file served without a checksum). */
  onWarning?: (message: string) => void;
  /** Hub revision (branch, tag or commit; default "main"). */
  revision?: string;
  /** Hub access token (default $HF_TOKEN). */
  token?: string;
  /** Hub cache root (default $HF_HUB_CACHE or $HF_HOME/hub). */
  cacheDir?: string;
  /** Only use the hub cache (default $HF_HUB_OFFLINE). */
  offline?: boolean;
  /** A tokenizer.model path or a Tokenizer (default: the folder's tokenizer.model, else the bundled Llama-2 one). */
  tokenizer?: string | Tokenizer;
  /** A Jinja chat template file or a ChatTemplate (default: the tokenizer_config.json template of an adapter folder in `adapter`, else the model folder's, else CoreNet's instruct format). */
  chatTemplate?: string | ChatTemplate;
  /**
   * A LoRA / DoRA adapter for this base: a PEFT adapter folder (adapter_config.json +
   * adapter_model.safetensors, e.g. a checkpoint of `openelm train` with a peft block, or that
   * run's folder for its latest checkpoint) or an
   * Adapter, or several of them (which act together, as PEFT's several active adapters do). They
   * are merged into the weights on load, exactly as `openelm merge` does.
   */
  adapter?: string | Adapter | readonly (string | Adapter)[];
  /**
   * Named LoRA adapters kept apart from the weights and applied at run time, each loaded once:
   * `generate(prompt, { adapter: name })` (or a server request's `model`) picks one per call, and
   * calls without one run the base (with any merged `adapter`). DoRA adapters are refused here.
   */
  adapters?: Readonly<Record<string, string | Adapter>>;
}

/** Resolve a model source to a local folder: an existing path as is, a hub id (org/name) through the HF cache. */
export async function resolveModelSource(source: string, opts: LoadModelOptions = {}): Promise<string> {
  if (fs.existsSync(source)) return resolveModelFolder(source, opts.onWarning);
  if (!REPO_ID_RE.test(source)) throw new OpenELMError('usage', `model folder ${source} does not exist, and ${source} is neither a model folder nor a hub id (org/name)`);
  try {
    return await ensureModel(source, {
      signal: opts.signal, onProgress: opts.onProgress, onWarning: opts.onWarning, revision: opts.revision, token: opts.token,
      cacheDir: opts.cacheDir, offline: opts.offline,
    });
  } catch (e) {
    if (e instanceof OpenELMError || (e as Error)?.name === 'AbortError') throw e;
    throw new OpenELMError('hub', `could not download ${source}: ${(e as Error).message}`);
  }
}

/**
 * Load a model from a local folder (config.json + model.safetensors or shards), a training run
 * folder (its latest checkpoint) or a Hugging Face hub id such as "apple/OpenELM-270M-Instruct"
 * (downloaded into the HF cache on first use). This is the front door the CLI uses too.
 */
export async function loadModel(source: string, opts: LoadModelOptions = {}): Promise<LoadedModel> {
  opts.signal?.throwIfAborted();
  const dtype = validateDType(opts.dtype ?? 'auto');
  if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 1)) throw new OpenELMError('usage', `threads must be an integer >= 1, got ${opts.threads}`);
  const dir = await resolveModelSource(source, opts);
  opts.signal?.throwIfAborted();
  const owned = typeof opts.backend !== 'object';
  // The worker threads start while the tokenizer is built (lateWorkers; the sync() below waits for
  // them): each takes tens of ms, during which this thread would otherwise wait.
  const backend = typeof opts.backend === 'object' ? opts.backend
    : await createBackend(opts.backend ?? 'auto', { threads: opts.threads, native: opts.native, exactBlocks: opts.exactBlocks, lateWorkers: true });
  // A GGUF's header is read once, with its vocabulary, for the tokenizer and the weights.
  let gguf: ModelSource | null = null;
  try {
    if (opts.tokenizer === undefined && isGGUFFile(dir)) gguf = openModelSource(dir, { allow: ['gguf'], vocabulary: true });
    const tokenizer = opts.tokenizer instanceof Tokenizer ? opts.tokenizer
      : opts.tokenizer !== undefined ? tokenizerFromFile(opts.tokenizer) : gguf?.tokenizer ? gguf.tokenizer() : modelTokenizer(dir);
    opts.signal?.throwIfAborted();
    const t0 = performance.now();
    const wanted = opts.adapter === undefined ? [] : Array.isArray(opts.adapter) ? opts.adapter as readonly (string | Adapter)[] : [opts.adapter as string | Adapter];
    const resolved = wanted.map((a) => (typeof a === 'string' ? resolveModelFolder(a, opts.onWarning) : a));
    const adapterDirs = resolved.filter((a): a is string => typeof a === 'string');
    const adapter = resolved.length ? resolved.map((a) => (typeof a === 'string' ? readPeftAdapter(a, readModelConfig(dir)) : a)) : undefined;
    const model = loadModelFolder(dir, { dtype, backend, adapter, source: gguf ?? undefined });
    gguf?.close();
    const adapters = new Map<string, RuntimeAdapter>();
    try {
      for (const [name, a] of Object.entries(opts.adapters ?? {})) {
        if (!ADAPTER_NAME_RE.test(name)) throw new OpenELMError('usage', `adapter name ${JSON.stringify(name)} is not allowed; use letters, digits and . _ : - (starting with a letter or digit)`);
        adapters.set(name, new RuntimeAdapter(backend, model.config, name, typeof a === 'string' ? readPeftAdapter(a, model.config) : a));
      }
    } catch (e) {
      for (const a of adapters.values()) a.dispose();
      if (!owned) { model.release(); freeWeights(backend, model.weights); }
      throw e;
    }
    // a GPU backend compiles its kernels on first use: now, rather than on the first token
    if (backend.device === 'gpu') {
      try {
        await model.warmup();
      } catch (e) {
        for (const a of adapters.values()) a.dispose();
        if (!owned) { model.release(); freeWeights(backend, model.weights); }
        throw gpuLoadFailure(source, e);
      }
    }
    const loadMs = performance.now() - t0;
    opts.signal?.throwIfAborted();
    const chatTemplate = opts.chatTemplate !== undefined && typeof opts.chatTemplate === 'object'
      ? opts.chatTemplate : resolveChatTemplate({ file: opts.chatTemplate, adapterDirs, modelDir: dir });
    const nameOrPath = typeof model.config.hf._name_or_path === 'string' ? model.config.hf._name_or_path : '';
    const isInstruct = isInstructName(source, dir, nameOrPath);
    // the worker threads (and those of the memories that weights past one wasm memory start) start
    // asynchronously: let them, so decoding never runs on fewer threads
    await backend.sync();
    return new LoadedModel({ dir, model, tokenizer, chatTemplate, isInstruct, backend, ownsBackend: owned, loadMs, adapters });
  } catch (e) {
    gguf?.close();
    if (owned) backend.dispose();
    throw e;
  }
}
