// A loaded model with its tokenizer and chat template: what loadModel() returns, in Node.js
// (api.ts) and in browsers (browser/load.ts). Generation, streaming and chat; no files.

import type { Backend } from './backends/backend.js';
import { OpenELMError } from './core/errors.js';
import { generateStream, type GenerateOptions, type GenerationResult, type StreamChunk } from './generate/generate.js';
import type { OpenELMConfig } from './model/config.js';
import { generationDefaults } from './model/family.js';
import { freeWeights, type OpenELM } from './model/openelm.js';
import type { Tokenizer } from './tokenizer/tokenizer.js';
import type { ChatTemplate } from './chat/template.js';
import { ChatSession, partialResult, type ChatSessionOptions } from './chat/session.js';
import { TextStream } from './chat/text-stream.js';
import { GrammarCache, type ConstraintSpec } from './generate/constrain/cache.js';
import type { RuntimeAdapter } from './model/runtime-adapter.js';

/** Generation options of the library API. Unset sampling is greedy, as HF's generate(). */
export interface TextGenerateOptions extends Omit<GenerateOptions, 'cache'> {
  /** Start a text prompt with BOS (default true; ignored for token-id prompts). */
  bos?: boolean;
  /** The output is a JSON value of this schema (the supported subset: docs/structured-output.md); generation stops when it is complete. */
  jsonSchema?: unknown;
  /** The output follows this GBNF grammar (llama.cpp's format); generation stops when nothing else may follow. */
  grammar?: string;
  /** The name of one of the model's run-time adapters (loadModel's `adapters`); default: the base. */
  adapter?: string;
}

/** The constraint that `jsonSchema` / `grammar` ask for, if any (both at once is an error). */
/** Names a run-time adapter may have: what a request's `model` field can carry. */
export const ADAPTER_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

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
  /** Where the weights came from: a local folder (a hub snapshot folder for hub ids), or in a browser the model's URL or name. */
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
  /** The run-time adapters by name (loadModel's `adapters`), in the order given. */
  readonly adapters: ReadonlyMap<string, RuntimeAdapter>;

  constructor(init: { dir: string; model: OpenELM; tokenizer: Tokenizer; chatTemplate: ChatTemplate; isInstruct: boolean; backend: Backend; ownsBackend: boolean; loadMs?: number; adapters?: ReadonlyMap<string, RuntimeAdapter> }) {
    this.dir = init.dir; this.model = init.model; this.tokenizer = init.tokenizer; this.chatTemplate = init.chatTemplate;
    this.isInstruct = init.isInstruct; this.backend = init.backend; this.ownsBackend = init.ownsBackend; this.loadMs = init.loadMs ?? 0;
    this.adapters = init.adapters ?? new Map();
  }

  /** The model with the named run-time adapter applied (undefined: the base); an unknown name is an error. */
  modelFor(adapter: string | undefined): OpenELM {
    if (adapter === undefined) return this.model;
    const a = this.adapters.get(adapter);
    if (!a) {
      const known = [...this.adapters.keys()];
      throw new OpenELMError('usage', `no adapter named ${JSON.stringify(adapter)} is loaded (${known.length ? `loaded: ${known.join(', ')}` : 'none are; pass adapters to loadModel'})`);
    }
    return this.model.withAdapter(a);
  }

  get config(): OpenELMConfig { return this.model.config; }

  /** The defaults a call's options are laid over: greedy, and repetition penalty 1.2 for -Instruct models. */
  defaultOptions(): TextGenerateOptions {
    return generationDefaults(this.isInstruct);
  }

  /** Compiled grammars and schemas of this model's vocabulary, kept between calls (and shared with a server). */
  get grammars(): GrammarCache {
    this.grammars_ ??= new GrammarCache(this.tokenizer);
    return this.grammars_;
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
    const { bos, jsonSchema, grammar, adapter, ...rest } = { ...this.defaultOptions(), ...opts };
    const model = this.modelFor(adapter);
    const spec = constraintSpecOf({ jsonSchema, grammar });
    if (spec) {
      if (rest.constraint) throw new OpenELMError('usage', 'give a constraint or jsonSchema/grammar, not both');
      rest.constraint = this.grammars.matcher(spec);
    }
    const ids = typeof prompt === 'string' ? this.encode(prompt, { bos }) : [...prompt];
    const tok = this.tokenizer;
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
          // biome-ignore lint/correctness/noUnsafeFinally: a consumer's break resumes here with a return, and only a return in finally replaces its value; no exception is in flight (failed is false)
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
    else {
      for (const a of this.adapters.values()) a.dispose();
      this.model.release();
      freeWeights(this.backend, this.model.weights);
    }
  }

  get isDisposed(): boolean { return this.disposed; }

  private live(): void {
    if (this.disposed) throw new OpenELMError('usage', 'this model was disposed');
  }
}
