// The one decode step every generator shares (generate, chat through it, the server's batched
// engine): logits → per-step mask (constrained decoding) → sampler (processors, then the draw) →
// stop checks (EOS and stop tokens, stop strings, max tokens, context, a completed constraint) →
// UTF-8-safe, stop-string-safe text. Callers own the model calls and the batching; this owns what
// happens to one sequence between two forward passes.

import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { StreamDecoder } from '../tokenizer/stream-decoder.js';
import { OpenELMError } from '../core/errors.js';
import { Sampler, type SamplingOptions } from './sampler.js';
import { StopMatcher } from './stop.js';
import { tokenLogprob, type TokenLogprob } from './logprobs.js';

export type FinishReason = 'stop' | 'length' | 'abort';

/**
 * A per-step constraint on the next token (JSON schema, grammar, tool-call arguments; speculative
 * decoding's verification plugs in the same way). The decoder calls mask() on each step's logits
 * before sampling, then accept() with the chosen token; when `complete` turns true the sequence
 * ends with finish reason 'stop'.
 */
export interface TokenConstraint {
  /** Set the logits of every token that may not come next to -Infinity. */
  mask(logits: Float32Array): void;
  accept(id: number): void;
  readonly complete: boolean;
}

export interface DecodeOptions extends SamplingOptions {
  /** Maximum new tokens (default 128). */
  maxTokens?: number;
  /** Stop when the text contains one of these (the stop string is not included). */
  stop?: string[];
  /** Stop after one of these ids (default: the model's EOS); the id is not part of the text. */
  stopTokens?: number[];
  /** Keep going past EOS (benchmarks). */
  ignoreEos?: boolean;
  /** Restricts which tokens may come next (constrained decoding). */
  constraint?: TokenConstraint;
  /**
   * Record each new token's logprob under the raw distribution (before the mask and the
   * processors) with this many most likely alternatives (0: the token's own only).
   */
  logprobs?: number;
}

/** What one step produced: the token, the text it released, and whether the sequence ended. */
export interface StepResult { id: number; text: string; done: boolean; logprob?: TokenLogprob; }

/** One sequence's state between forward passes. */
export class SequenceDecoder {
  readonly ids: number[] = [];
  text = '';
  finish: FinishReason = 'length';
  done: boolean;
  private readonly sampler: Sampler;
  private readonly decoder: StreamDecoder;
  private readonly stopper: StopMatcher;
  private readonly stopTokens: Set<number>;
  readonly maxTokens: number;
  private readonly constraint?: TokenConstraint;
  private readonly topLogprobs?: number;
  /** One entry per generated id when `logprobs` was asked for. */
  readonly logprobs?: TokenLogprob[];
  /** The sampling options this sequence draws with (a draft model proposes with the same). */
  readonly sampling: SamplingOptions;

  /** `prompt` is the context the repetition penalty sees; `eos` the model's EOS id. */
  constructor(tok: Tokenizer, readonly prompt: readonly number[], eos: number, opts: DecodeOptions = {}) {
    this.maxTokens = opts.maxTokens ?? 128;
    if (!(Number.isInteger(this.maxTokens) && this.maxTokens >= 0)) throw new OpenELMError('usage', `max tokens must be an integer >= 0, got ${opts.maxTokens}`);
    this.sampler = new Sampler(opts);
    this.sampling = opts;
    this.decoder = new StreamDecoder(tok);
    this.stopper = new StopMatcher(opts.stop ?? []);
    this.stopTokens = new Set(opts.ignoreEos ? [] : (opts.stopTokens ?? [eos]));
    this.constraint = opts.constraint;
    if (opts.logprobs !== undefined) {
      if (!(Number.isInteger(opts.logprobs) && opts.logprobs >= 0)) throw new OpenELMError('usage', `logprobs must be an integer >= 0, got ${opts.logprobs}`);
      this.topLogprobs = opts.logprobs;
      this.logprobs = [];
    }
    this.done = this.maxTokens === 0;
  }

  /** Whether the next token is the plain argmax of the logits (a backend can compute it without sending the logits back). */
  get argmaxOnly(): boolean { return this.sampler.plainArgmax && !this.constraint && this.topLogprobs === undefined; }

  /**
   * Choose the next token from this sequence's logits row (modified in place by the mask and the
   * processors), or take `chosen` when the caller already has the argmax (argmaxOnly). `room` is
   * whether the cache can hold one more token after this one.
   */
  step(logits: Float32Array | null, room: boolean, chosen?: number): StepResult {
    if (chosen !== undefined) return this.take(chosen, room);
    if (!logits) throw new OpenELMError('usage', 'a decode step needs the logits unless the argmax is given');
    const raw = this.topLogprobs !== undefined ? logits.slice() : null;
    this.constraint?.mask(logits);
    return this.take(this.sampler.sample(logits, this.prompt, this.ids), room, raw);
  }

  /**
   * The step for a row whose input was a drafted token (speculative decoding): the token this
   * step would choose, decided by the accept/reject rule against `draft` (drawn with probability
   * q[draft] from the draft distribution `q`, or certain when q is null). Greedy is the argmax
   * as in step(); the caller compares the result with `draft` to know whether to go on.
   */
  stepDraft(logits: Float32Array, room: boolean, draft: number, q: Float64Array | null): StepResult {
    const raw = this.topLogprobs !== undefined ? logits.slice() : null;
    this.constraint?.mask(logits);
    return this.take(this.sampler.speculate(logits, this.prompt, this.ids, draft, q), room, raw);
  }

  /** Take `id` as the next token; `raw` is the unmasked logits row when logprobs are recorded. */
  private take(id: number, room: boolean, raw: Float32Array | null = null): StepResult {
    let logprob: TokenLogprob | undefined;
    if (raw) { logprob = tokenLogprob(raw, id, this.topLogprobs); this.logprobs!.push(logprob); }
    this.constraint?.accept(id);
    this.ids.push(id);
    let text = '';
    let stopped = false;
    if (this.stopTokens.has(id)) {
      // The run ends here: release text held back as a possible stop-string start, and any
      // unfinished UTF-8 bytes (as decode() would render them).
      const r = this.stopper.push(this.decoder.flush());
      text = r.emit + (r.stopped ? '' : this.stopper.flush());
      stopped = true; this.finish = 'stop';
    } else {
      const r = this.stopper.push(this.decoder.push(id));
      text = r.emit;
      if (r.stopped) { stopped = true; this.finish = 'stop'; }
      else if (this.constraint?.complete) {
        text += this.stopper.push(this.decoder.flush()).emit + this.stopper.flush();
        stopped = true; this.finish = 'stop';
      }
    }
    if (!stopped && (this.ids.length >= this.maxTokens || !room)) {
      text += this.stopper.push(this.decoder.flush()).emit + this.stopper.flush();
      this.finish = 'length';
      stopped = true;
    }
    this.text += text;
    if (stopped) this.done = true;
    return logprob ? { id, text, done: stopped, logprob } : { id, text, done: stopped };
  }

  /** End the sequence early (client gone, Ctrl-C). */
  abort(): void {
    if (this.done) return;
    this.done = true;
    this.finish = 'abort';
  }
}
