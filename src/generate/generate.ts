// Autoregressive generation on token ids: prefill the prompt, then decode one token per step for
// every live sequence in a single batched forward call, each through the shared decode step
// (decode.ts). Streaming is an async iterator of text chunks (UTF-8-safe, stop-string-safe); an
// AbortSignal ends it between tokens.

import type { OpenELM } from '../model/openelm.js';
import type { KVCache } from '../model/kv-cache.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { OpenELMError } from '../core/errors.js';
import { tick } from '../core/tick.js';
import { SequenceDecoder, type DecodeOptions, type FinishReason, type StepResult } from './decode.js';
import type { TokenLogprob } from './logprobs.js';
import { Speculator, type SpeculativeOptions, type SpeculativeStats } from './speculative.js';

export type { FinishReason } from './decode.js';

export interface GenerateOptions extends DecodeOptions {
  signal?: AbortSignal;
  /** Reuse a cache that already holds a prefix of the prompt (chat sessions); its first `cache.length` prompt ids are skipped. */
  cache?: KVCache;
  /** Speculative decoding: prompt lookup or a draft model proposes, one forward pass checks. */
  speculative?: SpeculativeOptions;
}

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
  /** Each new id's logprob, when `logprobs` was asked for. */
  logprobs?: TokenLogprob[];
  /** How speculative decoding went (all prompts of the call together), when it was on. */
  speculative?: SpeculativeStats;
}

export interface StreamChunk { text: string; ids: number[]; logprobs?: TokenLogprob[]; }

/** A step's chunk: its text, its id and, when recorded, the id's logprob. */
export function stepChunk(r: StepResult): StreamChunk {
  return r.logprob ? { text: r.text, ids: [r.id], logprobs: [r.logprob] } : { text: r.text, ids: [r.id] };
}

/** The chunk of a step that took the last `ids.length` tokens of `dec` (one, or several when speculating). */
export function decoderChunk(dec: SequenceDecoder, ids: number[], text: string): StreamChunk {
  return dec.logprobs ? { text, ids, logprobs: dec.logprobs.slice(dec.logprobs.length - ids.length) } : { text, ids };
}


interface SeqState { prompt: number[]; cache: KVCache; dec: SequenceDecoder; }

function checkPrompt(model: OpenELM, prompt: number[], cap: number): void {
  if (prompt.length === 0) throw new OpenELMError('usage', 'the prompt is empty (no tokens)');
  if (prompt.length >= cap) {
    throw new OpenELMError('context', `the prompt has ${prompt.length} tokens but the context holds ${cap} (model max_context_length ${model.config.maxContextLength}); shorten it`);
  }
}

const ENDED: StepResult = { id: -1, text: '', done: true };

/**
 * One forward step for `seqs` and each one's next token, through the shared decode step. When every
 * sequence only needs the argmax, the backend computes it and the logits never come back.
 */
export async function decodeStep(model: OpenELM, seqs: { cache: KVCache; tokens: ArrayLike<number>; dec: SequenceDecoder }[]):
  Promise<StepResult[]> {
  const items = seqs.map((s) => ({ cache: s.cache, tokens: s.tokens }));
  const V = model.config.vocabSize;
  if (seqs.every((s) => s.dec.argmaxOnly)) {
    const { logits, rows } = model.forwardDevice(items);
    const ids = await model.backend.argmax(logits, rows, V);
    return seqs.map((s, k) => (s.dec.done ? ENDED : s.dec.step(null, s.cache.length + 1 <= s.cache.capacity, ids[k])));
  }
  const logits = await model.forward(items);
  // a sequence ended while the step ran (aborted) takes no token
  return seqs.map((s, k) => (s.dec.done ? ENDED : s.dec.step(logits.subarray(k * V, (k + 1) * V), s.cache.length + 1 <= s.cache.capacity)));
}

/**
 * Generate for several prompts at once. Yields per-step chunks as [index, chunk] pairs and returns
 * one result per prompt. The single-prompt helpers below wrap this.
 */
export async function* generateMany(model: OpenELM, tok: Tokenizer, prompts: number[][], opts: GenerateOptions = {}):
  AsyncGenerator<[number, StreamChunk], GenerationResult[]> {
  const maxTokens = opts.maxTokens ?? 128;
  const cap = model.config.maxContextLength;
  if (opts.cache && prompts.length !== 1) throw new OpenELMError('usage', 'a reusable cache works with one prompt at a time');
  // A constraint follows one sequence; several prompts would share its position.
  if (opts.constraint && prompts.length !== 1) throw new OpenELMError('usage', 'a constraint works with one prompt at a time');
  const decoders = prompts.map((p, i) => {
    checkPrompt(model, p, opts.cache?.capacity ?? cap);
    return new SequenceDecoder(tok, p, model.config.eosTokenId, { ...opts, seed: opts.seed === undefined ? undefined : opts.seed + i });
  });
  const seqs: SeqState[] = prompts.map((p, i) => {
    const cache = opts.cache ?? model.newCache(Math.min(cap, p.length + maxTokens));
    if (cache.length > p.length - 1) cache.truncate(Math.max(0, Math.min(cache.length, p.length - 1)));
    return { prompt: p, cache, dec: decoders[i] };
  });
  const spec = opts.speculative ? new Speculator(model, opts.speculative) : null;
  try {
    const t0 = performance.now();
    let t1 = t0, decodeSteps = 0, first = true;
    let live = seqs.filter((s) => !s.dec.done);
    while (live.length) {
      // The first step prefills every prompt; its last token's logits pick the first new token.
      const steps = spec && !first
        ? await spec.step(live)
        : (await decodeStep(model, live.map((s) => ({
          cache: s.cache, dec: s.dec, tokens: first ? s.prompt.slice(s.cache.length) : [s.dec.ids[s.dec.ids.length - 1]],
        })))).map((r) => ({ ids: r.id < 0 ? [] : [r.id], text: r.text, done: r.done }));
      if (first) { t1 = performance.now(); first = false; } else decodeSteps++;
      const next: SeqState[] = [];
      for (let k = 0; k < live.length; k++) {
        const s = live[k], r = steps[k];
        if (r.ids.length) yield [seqs.indexOf(s), decoderChunk(s.dec, r.ids, r.text)];
        if (r.done) continue;
        if (opts.signal?.aborted) { s.dec.abort(); continue; }
        next.push(s);
      }
      live = next;
      if (!live.length) break;
      await tick();
      if (opts.signal?.aborted) { for (const s of live) s.dec.abort(); break; }
    }
    const t2 = performance.now();
    const promptN = seqs.reduce((a, s) => a + s.prompt.length, 0);
    const predicted = seqs.reduce((a, s) => a + s.dec.ids.length, 0);
    const timings: Timings = {
      prompt_n: promptN, prompt_ms: t1 - t0, prompt_per_second: promptN / Math.max(1e-9, (t1 - t0) / 1000),
      predicted_n: predicted, predicted_ms: t2 - t1,
      predicted_per_second: decodeSteps ? (predicted - seqs.length) / Math.max(1e-9, (t2 - t1) / 1000) : 0,
    };
    const stats = spec ? { ...spec.stats } : undefined;
    return seqs.map((s) => ({
      ids: s.dec.ids, text: s.dec.text, finishReason: s.dec.finish, promptTokens: s.prompt.length, timings,
      ...(s.dec.logprobs ? { logprobs: s.dec.logprobs } : {}), ...(stats ? { speculative: stats } : {}),
    }));
  } finally {
    // Caches made here go back to the backend (the WASM backend manages its own memory), also when
    // the consumer stops iterating early.
    if (!opts.cache) for (const s of seqs) s.cache.dispose();
    spec?.dispose();
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
