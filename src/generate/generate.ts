// Autoregressive generation on token ids: prefill the prompt, then decode one token per step for
// every live sequence in a single batched forward call. Streaming is an async iterator of text
// chunks (UTF-8-safe, stop-string-safe); an AbortSignal ends it between tokens.

import type { OpenELM } from '../model/openelm.js';
import type { KVCache } from '../model/kv-cache.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { StreamDecoder } from '../tokenizer/stream-decoder.js';
import { OpenELMError } from '../core/errors.js';
import { Sampler, type SamplingOptions } from './sampler.js';
import { StopMatcher } from './stop.js';

export interface GenerateOptions extends SamplingOptions {
  /** Maximum new tokens (default 128). */
  maxTokens?: number;
  /** Stop when the text contains one of these (the stop string is not included). */
  stop?: string[];
  /** Stop after one of these ids (default: the model's EOS); the id is not part of the text. */
  stopTokens?: number[];
  /** Keep going past EOS (benchmarks). */
  ignoreEos?: boolean;
  signal?: AbortSignal;
  /** Reuse a cache that already holds a prefix of the prompt (chat sessions); its first `cache.length` prompt ids are skipped. */
  cache?: KVCache;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface Timings {
  prompt_n: number; prompt_ms: number; prompt_per_second: number;
  predicted_n: number; predicted_ms: number; predicted_per_second: number;
}

export interface GenerationResult {
  ids: number[];          // new token ids (a final EOS/stop token included when it ended the run)
  text: string;           // decoded new text, stop string excluded
  finishReason: FinishReason;
  promptTokens: number;
  timings: Timings;
}

export interface StreamChunk { text: string; ids: number[]; }

const tick = () => new Promise<void>((r) => setImmediate(r));

interface SeqState {
  prompt: number[]; cache: KVCache; sampler: Sampler; decoder: StreamDecoder; stopper: StopMatcher;
  ids: number[]; text: string; done: boolean; finish: FinishReason; pending: number;
}

function checkPrompt(model: OpenELM, prompt: number[], cap: number, maxTokens: number): void {
  if (prompt.length === 0) throw new OpenELMError('usage', 'the prompt is empty (no tokens)');
  if (prompt.length >= cap) {
    throw new OpenELMError('context', `the prompt has ${prompt.length} tokens but the context holds ${cap} (model max_context_length ${model.config.maxContextLength}); shorten it`);
  }
  if (!(Number.isInteger(maxTokens) && maxTokens >= 0)) throw new OpenELMError('usage', `max tokens must be an integer >= 0, got ${maxTokens}`);
}

/**
 * Generate for several prompts at once. Yields per-step chunks as [index, chunk] pairs and returns
 * one result per prompt. The single-prompt helpers below wrap this.
 */
export async function* generateMany(model: OpenELM, tok: Tokenizer, prompts: number[][], opts: GenerateOptions = {}):
  AsyncGenerator<[number, StreamChunk], GenerationResult[]> {
  const maxTokens = opts.maxTokens ?? 128;
  const stopTokens = new Set(opts.ignoreEos ? [] : (opts.stopTokens ?? [model.config.eosTokenId]));
  const cap = model.config.maxContextLength;
  if (opts.cache && prompts.length !== 1) throw new OpenELMError('usage', 'a reusable cache works with one prompt at a time');
  const seqs: SeqState[] = prompts.map((p, i) => {
    checkPrompt(model, p, opts.cache?.capacity ?? cap, maxTokens);
    const cache = opts.cache ?? model.newCache(Math.min(cap, p.length + maxTokens));
    if (cache.length > p.length - 1) cache.truncate(Math.max(0, Math.min(cache.length, p.length - 1)));
    return {
      prompt: p, cache, sampler: new Sampler({ ...opts, seed: opts.seed === undefined ? undefined : opts.seed + i }),
      decoder: new StreamDecoder(tok), stopper: new StopMatcher(opts.stop ?? []),
      ids: [], text: '', done: maxTokens === 0, finish: 'length' as FinishReason, pending: -1,
    };
  });
  try {
    const t0 = performance.now();
    // Prefill every prompt; the last prompt token's logits pick the first new token.
    const live0 = seqs.filter((s) => !s.done);
    let logits = live0.length ? model.forward(live0.map((s) => ({ cache: s.cache, tokens: s.prompt.slice(s.cache.length) }))) : new Float32Array(0);
    const t1 = performance.now();
    let decodeSteps = 0;
    const V = model.config.vocabSize;
    let live = live0;
    while (live.length) {
      const next: SeqState[] = [];
      for (let k = 0; k < live.length; k++) {
        const s = live[k];
        const row = logits.subarray(k * V, (k + 1) * V);
        const id = s.sampler.sample(row, s.prompt, s.ids);
        s.ids.push(id);
        let text = '';
        let stopped = false;
        if (stopTokens.has(id)) {
          // The run ends here: release text held back as a possible stop-string start, and any
          // unfinished UTF-8 bytes (as decode() would render them).
          const r = s.stopper.push(s.decoder.flush());
          text = r.emit + (r.stopped ? '' : s.stopper.flush());
          stopped = true; s.finish = 'stop';
        }
        else {
          const r = s.stopper.push(s.decoder.push(id));
          text = r.emit;
          if (r.stopped) { stopped = true; s.finish = 'stop'; }
        }
        if (!stopped && (s.ids.length >= maxTokens || s.cache.length + 1 > s.cache.capacity)) {
          text += s.stopper.push(s.decoder.flush()).emit + s.stopper.flush();
          s.finish = 'length';
          stopped = true;
        }
        s.text += text;
        yield [seqs.indexOf(s), { text, ids: [id] }];
        if (stopped) { s.done = true; continue; }
        if (opts.signal?.aborted) { s.finish = 'abort'; s.done = true; continue; }
        next.push(s);
      }
      live = next;
      if (!live.length) break;
      await tick();
      if (opts.signal?.aborted) { for (const s of live) { s.finish = 'abort'; s.done = true; } break; }
      logits = model.forward(live.map((s) => ({ cache: s.cache, tokens: [s.ids[s.ids.length - 1]] })));
      decodeSteps++;
    }
    const t2 = performance.now();
    const promptN = seqs.reduce((a, s) => a + s.prompt.length, 0);
    const predicted = seqs.reduce((a, s) => a + s.ids.length, 0);
    const timings: Timings = {
      prompt_n: promptN, prompt_ms: t1 - t0, prompt_per_second: promptN / Math.max(1e-9, (t1 - t0) / 1000),
      predicted_n: predicted, predicted_ms: t2 - t1,
      predicted_per_second: decodeSteps ? (predicted - seqs.length) / Math.max(1e-9, (t2 - t1) / 1000) : 0,
    };
    return seqs.map((s) => ({ ids: s.ids, text: s.text, finishReason: s.finish, promptTokens: s.prompt.length, timings }));
  } finally {
    // Caches made here go back to the backend (the WASM backend manages its own 4 GiB memory),
    // also when the consumer stops iterating early.
    if (!opts.cache) for (const s of seqs) s.cache.dispose();
  }
}

/** Stream one prompt's continuation as text chunks; the generator's return value is the full result. */
export async function* generateStream(model: OpenELM, tok: Tokenizer, prompt: number[], opts: GenerateOptions = {}):
  AsyncGenerator<StreamChunk, GenerationResult> {
  const it = generateMany(model, tok, [prompt], opts);
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value[0];
    yield r.value[1];
  }
}

export async function generate(model: OpenELM, tok: Tokenizer, prompt: number[], opts: GenerateOptions = {}): Promise<GenerationResult> {
  const it = generateStream(model, tok, prompt, opts);
  for (;;) { const r = await it.next(); if (r.done) return r.value; }
}

export async function generateBatch(model: OpenELM, tok: Tokenizer, prompts: number[][], opts: GenerateOptions = {}): Promise<GenerationResult[]> {
  const it = generateMany(model, tok, prompts, opts);
  for (;;) { const r = await it.next(); if (r.done) return r.value; }
}
