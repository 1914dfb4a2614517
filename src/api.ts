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
import { generateStream, type GenerateOptions, type GenerationResult, type StreamChunk } from './generate/generate.js';
import type { OpenELMConfig } from './model/config.js';
import { generationDefaults, isInstructName } from './model/family.js';
import { validateDType, type LoadDType } from './model/load.js';
import { freeWeights, type OpenELM } from './model/openelm.js';
import { loadModelFolder, readModelConfig } from './io/model-folder.js';
import { readPeftAdapter } from './io/peft-folder.js';
import type { Adapter } from './adapters/adapter.js';
import { loadTokenizer } from './io/tokenizer-file.js';
import { Tokenizer } from './tokenizer/tokenizer.js';
import { ensureModel, REPO_ID_RE, type DownloadProgress } from './hub/index.js';
import { type ChatTemplate } from './chat/template.js';
import { ChatSession, partialResult, type ChatSessionOptions } from './chat/session.js';
import { TextStream } from './chat/text-stream.js';
import { resolveModelFolder } from './train/run-folder.js';
import { GrammarCache, type ConstraintSpec } from './generate/constrain/cache.js';

export interface LoadModelOptions {
  /** Storage of the linear weights: 'auto' (default) keeps the checkpoint's precision; q8/q4 quantize on load. */
  dtype?: LoadDType;
  /** Compute threads for backends that use them (default: all cores). */
  threads?: number;
  /** 'auto' (default: the fastest available), 'wasm', 'js', another registered backend's name, or a Backend instance you own. */
  backend?: string | Backend;
  /** The optional native sgemm for prefill (npm run build:native): 'auto' (default: when available), 'on', 'off'. */
  native?: 'auto' | 'on' | 'off';
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
  /** A Jinja chat template file or a ChatTemplate (default: the folder's tokenizer_config.json template, else CoreNet's instruct format). */
  chatTemplate?: string | ChatTemplate;
  /**
   * A LoRA / DoRA adapter for this base: a PEFT adapter folder (adapter_config.json +
   * adapter_model.safetensors, e.g. a checkpoint of `openelm train` with a peft block, or that
   * run's folder for its latest checkpoint) or an
   * Adapter, or several of them (which act together, as PEFT's several active adapters do). They
   * are merged into the weights on load, exactly as `openelm merge` does.
   */
  adapter?: string | Adapter | readonly (string | Adapter)[];
}

/** Generation options of the library API. Unset sampling is greedy, as HF's generate(). */
export interface TextGenerateOptions extends Omit<GenerateOptions, 'cache'> {
  /** Start a text prompt with BOS (default true; ignored for token-id prompts). */
  bos?: boolean;
  /** The output is a JSON value of this schema (the supported subset: docs/structured-output.md); generation stops when it is complete. */
  jsonSchema?: unknown;
  /** The output follows this GBNF grammar (llama.cpp's format); generation stops when nothing else may follow. */
  grammar?: string;
}

/** The constraint that `jsonSchema` / `grammar` ask for, if any (both at once is an error). */
export function constraintSpecOf(opts: { jsonSchema?: unknown; grammar?: string }): ConstraintSpec | undefined {
  if (opts.jsonSchema !== undefined && opts.grammar !== undefined) throw new OpenELMError('usage', 'give jsonSchema or grammar, not both');
  if (opts.jsonSchema !== undefined) return { kind: 'json_schema', schema: opts.jsonSchema };
  if (opts.grammar !== undefined) {
    if (typeof opts.grammar !== 'string') throw new OpenELMError('usage', 'grammar must be GBNF text (a string)');
    return { kind: 'grammar', text: opts.grammar };
  }
  return undefined;
}

/** A loaded model with its tokenizer and chat template. Call dispose() when done. */
export class LoadedModel {
  /** The local folder the weights came from (a hub snapshot folder for hub ids). */
  readonly dir: string;
  readonly model: OpenELM;
  readonly tokenizer: Tokenizer;
  readonly chatTemplate: ChatTemplate;
  /** -Instruct models get repetition penalty 1.2 by default, as Apple's model cards use (model/family.ts). */
  readonly isInstruct: boolean;
  readonly backend: Backend;
  /** Milliseconds spent reading the weights onto the backend. */
  readonly loadMs: number;
  private readonly ownsBackend: boolean;
  private disposed = false;
  private grammars_?: GrammarCache;

  constructor(init: { dir: string; model: OpenELM; tokenizer: Tokenizer; chatTemplate: ChatTemplate; isInstruct: boolean; backend: Backend; ownsBackend: boolean; loadMs?: number }) {
    this.dir = init.dir; this.model = init.model; this.tokenizer = init.tokenizer; this.chatTemplate = init.chatTemplate;
    this.isInstruct = init.isInstruct; this.backend = init.backend; this.ownsBackend = init.ownsBackend; this.loadMs = init.loadMs ?? 0;
  }

  get config(): OpenELMConfig { return this.model.config; }

  /** The defaults a call's options are laid over: greedy, and repetition penalty 1.2 for -Instruct models. */
  defaultOptions(): TextGenerateOptions {
    return generationDefaults(this.isInstruct);
  }

  /** Compiled grammars and schemas of this model's vocabulary, kept between calls (and shared with a server). */
  get grammars(): GrammarCache {
    return (this.grammars_ ??= new GrammarCache(this.tokenizer));
  }

  /** Token ids of a text prompt (with BOS unless bos: false). */
  encode(text: string, opts: { bos?: boolean } = {}): number[] {
    return this.tokenizer.encode(text, { bos: opts.bos ?? true });
  }

  decode(ids: readonly number[]): string { return this.tokenizer.decode(ids); }

  /** Generate a continuation of a prompt (text, or token ids used as given). */
  async generate(prompt: string | readonly number[], opts: TextGenerateOptions = {}): Promise<GenerationResult> {
    return this.stream(prompt, opts).done();
  }

  /** Stream a continuation as {text, ids} chunks; `await stream.result` gives timings and the finish reason. */
  stream(prompt: string | readonly number[], opts: TextGenerateOptions = {}): TextStream<GenerationResult> {
    this.live();
    const { bos, jsonSchema, grammar, ...rest } = { ...this.defaultOptions(), ...opts };
    const spec = constraintSpecOf({ jsonSchema, grammar });
    if (spec) {
      if (rest.constraint) throw new OpenELMError('usage', 'give a constraint or jsonSchema/grammar, not both');
      rest.constraint = this.grammars.matcher(spec);
    }
    const ids = typeof prompt === 'string' ? this.encode(prompt, { bos }) : [...prompt];
    const model = this.model, tok = this.tokenizer;
    async function* run(): AsyncGenerator<StreamChunk, GenerationResult> {
      const it = generateStream(model, tok, ids, rest);
      const gen: number[] = [];
      let text = '', result: GenerationResult | undefined, failed = false;
      const t0 = performance.now();
      try {
        for (;;) {
          const r = await it.next();
          if (r.done) { result = r.value; return r.value; }
          gen.push(...r.value.ids);
          text += r.value.text;
          yield r.value;
        }
      } catch (e) {
        failed = true;
        throw e;
      } finally {
        if (!result && !failed) {
          // The consumer stopped early (break): end the generation and still hand back a result.
          await it.return(undefined as never).catch(() => undefined);
          return partialResult(ids.length, gen, text, performance.now() - t0);
        }
      }
    }
    return new TextStream(run());
  }

  /**
   * A conversation that keeps its KV cache between turns (only each new turn is prefilled). Uses
   * the model's chat template; turn options default to greedy (+ repetition penalty 1.2 for -Instruct).
   */
  chat(opts: ChatSessionOptions = {}): ChatSession {
    this.live();
    return new ChatSession(this.model, this.tokenizer, {
      template: this.chatTemplate, ...opts, defaults: { ...this.defaultOptions(), maxTokens: 256, ...opts.defaults },
    });
  }

  /** Release the backend's memory and threads. The model cannot be used afterwards. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.ownsBackend) this.backend.dispose();
    else { this.model.release(); freeWeights(this.backend, this.model.weights); }
  }

  get isDisposed(): boolean { return this.disposed; }

  private live(): void {
    if (this.disposed) throw new OpenELMError('usage', 'this model was disposed');
  }
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
  const backend = typeof opts.backend === 'object' ? opts.backend : await createBackend(opts.backend ?? 'auto', { threads: opts.threads, native: opts.native });
  try {
    const t0 = performance.now();
    const wanted = opts.adapter === undefined ? [] : Array.isArray(opts.adapter) ? opts.adapter as readonly (string | Adapter)[] : [opts.adapter as string | Adapter];
    const adapter = wanted.length ? wanted.map((a) => (typeof a === 'string' ? readPeftAdapter(resolveModelFolder(a, opts.onWarning), readModelConfig(dir)) : a)) : undefined;
    const model = loadModelFolder(dir, { dtype, backend, adapter });
    const loadMs = performance.now() - t0;
    opts.signal?.throwIfAborted();
    const tokenizer = opts.tokenizer instanceof Tokenizer ? opts.tokenizer
      : opts.tokenizer !== undefined ? tokenizerFromFile(opts.tokenizer) : loadTokenizer(dir);
    const chatTemplate = opts.chatTemplate !== undefined && typeof opts.chatTemplate === 'object'
      ? opts.chatTemplate : resolveChatTemplate({ file: opts.chatTemplate, modelDir: dir });
    const nameOrPath = typeof model.config.hf._name_or_path === 'string' ? model.config.hf._name_or_path : '';
    const isInstruct = isInstructName(source, dir, nameOrPath);
    return new LoadedModel({ dir, model, tokenizer, chatTemplate, isInstruct, backend, ownsBackend: owned, loadMs });
  } catch (e) {
    if (owned) backend.dispose();
    throw e;
  }
}
