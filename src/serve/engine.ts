// Continuous batching for the server: every running request advances by one token per step, in one
// batched forward call (new requests join between steps with their prefill), so N clients cost far
// less than N times one. Each request owns a slot with its own KV cache while it runs (requests are
// never interleaved in one cache); at most `slots` run at once and the rest wait in FIFO order.
// A finished slot keeps its cache, and a new request takes the free slot that shares the longest
// token prefix with its prompt (llama.cpp's cache_prompt), so a chat client that resends the
// conversation only prefills the new turn.

import type { OpenELM } from '../model/openelm.js';
import type { KVCache } from '../model/kv-cache.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { OpenELMError } from '../core/errors.js';
import { tick } from '../core/tick.js';
import { SequenceDecoder, type FinishReason } from '../generate/decode.js';
import { decodeStep, decoderChunk, type GenerateOptions, type StreamChunk } from '../generate/generate.js';
import type { TokenLogprob } from '../generate/logprobs.js';
import { Speculator, type SpeculativeOptions } from '../generate/speculative.js';

/** llama.cpp's per-request `timings` object. */
export interface ServerTimings {
  cache_n: number;
  prompt_n: number; prompt_ms: number; prompt_per_token_ms: number; prompt_per_second: number;
  predicted_n: number; predicted_ms: number; predicted_per_token_ms: number; predicted_per_second: number;
}

export interface EngineResult {
  ids: number[];
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  timings: ServerTimings;
  /** Each new id's logprob, when `logprobs` was asked for. */
  logprobs?: TokenLogprob[];
}

export type EngineOptions = Omit<GenerateOptions, 'cache' | 'signal'>;

export interface EngineConfig {
  /** Requests running at once, each with its own KV cache (default 4). */
  slots?: number;
  /** Tokens per slot cache (default: the model's max_context_length). */
  contextSize?: number;
  /**
   * Most sequences per forward call (default: slots). With fewer, running requests take turns
   * (round robin); useful where a backend's multi-row matmul is slower than its single-row one.
   */
  maxBatch?: number;
  /** Speculative decoding for every request (prompt lookup or a draft model). */
  speculative?: SpeculativeOptions;
}

interface Slot { cache: KVCache | undefined; ids: number[]; lastUsed: number; busy: boolean; }

interface Job {
  prompt: number[];
  dec: SequenceDecoder;
  signal?: AbortSignal;
  slot?: Slot;
  prefilled: boolean;
  cached: number;
  done: boolean;
  error?: unknown;
  result?: EngineResult;
  buffer: StreamChunk[];
  wake?: () => void;
  unlisten?: () => void;
  tQueued: number; tStart: number; tPrefilled: number;
}

function lcp(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}


export class Engine {
  readonly slots: number;
  readonly contextSize: number;
  readonly maxBatch: number;
  private cursor = 0;
  private readonly pool: Slot[] = [];
  private readonly queue: Job[] = [];
  private readonly active: Job[] = [];
  /** Work that needs the model to itself (prompt scoring), run between two steps. */
  private readonly tasks: Array<() => Promise<void>> = [];
  private running = false;
  private clock = 0;
  private readonly spec: Speculator | null;
  /** Totals since start, for /metrics-like reporting and the benchmark. */
  readonly totals = { requests: 0, promptTokens: 0, cachedTokens: 0, predictedTokens: 0, steps: 0, stepMs: 0 };

  constructor(private readonly model: OpenELM, private readonly tokenizer: Tokenizer, cfg: EngineConfig = {}) {
    this.slots = cfg.slots ?? 4;
    this.contextSize = cfg.contextSize ?? model.config.maxContextLength;
    if (!(Number.isInteger(this.slots) && this.slots >= 1)) throw new OpenELMError('usage', `slots must be an integer >= 1, got ${cfg.slots}`);
    if (!(Number.isInteger(this.contextSize) && this.contextSize >= 2)) throw new OpenELMError('usage', `context size must be an integer >= 2, got ${cfg.contextSize}`);
    this.maxBatch = cfg.maxBatch ?? this.slots;
    if (!(Number.isInteger(this.maxBatch) && this.maxBatch >= 1)) throw new OpenELMError('usage', `max batch must be an integer >= 1, got ${cfg.maxBatch}`);
    this.spec = cfg.speculative ? new Speculator(model, cfg.speculative) : null;
    for (let i = 0; i < this.slots; i++) this.pool.push({ cache: undefined, ids: [], lastUsed: 0, busy: false });
  }

  get stats(): { running: number; queued: number } { return { running: this.active.length, queued: this.queue.length }; }

  /**
   * Queue a request. Validates synchronously (throws OpenELMError for a bad prompt or options, so
   * a server can answer 400 before it starts streaming); the generator yields chunks as they come
   * and returns the result. Leaving the iteration early cancels the request.
   */
  submit(prompt: readonly number[], opts: EngineOptions = {}, signal?: AbortSignal): AsyncGenerator<StreamChunk, EngineResult> {
    const V = this.model.config.vocabSize;
    if (prompt.length === 0) throw new OpenELMError('usage', 'the prompt is empty (no tokens)');
    for (const t of prompt) if (!(Number.isInteger(t) && t >= 0 && t < V)) throw new OpenELMError('usage', `token id ${t} is outside the vocabulary [0, ${V})`);
    if (prompt.length >= this.contextSize) {
      throw new OpenELMError('context', `the prompt has ${prompt.length} tokens but the context holds ${this.contextSize}; shorten it`);
    }
    const maxTokens = opts.maxTokens ?? this.contextSize;
    const job: Job = {
      prompt: [...prompt],
      dec: new SequenceDecoder(this.tokenizer, prompt, this.model.config.eosTokenId, { ...opts, maxTokens }),
      signal, prefilled: false, cached: 0, done: false, buffer: [],
      tQueued: performance.now(), tStart: 0, tPrefilled: 0,
    };
    this.totals.requests++;
    if (signal) {
      const onAbort = () => this.finish(job, 'abort');
      signal.addEventListener('abort', onAbort, { once: true });
      job.unlisten = () => signal.removeEventListener('abort', onAbort);
    }
    if (signal?.aborted) this.finish(job, 'abort');
    else if (maxTokens === 0) this.finish(job, 'length');
    else {
      this.queue.push(job);
      this.kick();
    }
    return this.consume(job);
  }

  /**
   * Run `fn` between two decode steps, with the model to itself: the model's workspace holds one
   * forward call's results at a time, so other model calls must not interleave with the steps.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.tasks.push(() => Promise.resolve().then(fn).then(resolve, reject));
      this.kick();
    });
  }

  /** Abort everything running or queued (shutdown). */
  abortAll(): void {
    for (const j of [...this.queue, ...this.active]) if (!j.done) this.finish(j, 'abort');
    this.queue.length = 0;
  }

  private async *consume(job: Job): AsyncGenerator<StreamChunk, EngineResult> {
    try {
      for (;;) {
        while (job.buffer.length) yield job.buffer.shift()!;
        if (job.done) {
          if (job.error) throw job.error;
          return job.result!;
        }
        await new Promise<void>((r) => { job.wake = r; });
        job.wake = undefined;
      }
    } finally {
      // The consumer went away (client disconnected, break): stop generating for it.
      if (!job.done) this.finish(job, 'abort');
    }
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    void this.loop().finally(() => { this.running = false; if (this.queue.length || this.tasks.length) this.kick(); });
  }

  private admit(): void {
    while (this.queue.length) {
      const free = this.pool.filter((s) => !s.busy);
      if (!free.length) return;
      const job = this.queue.shift()!;
      if (job.done) continue;
      // The free slot sharing the longest prefix with this prompt; ties go to the least recently used.
      let best = free[0], bestN = -1;
      for (const s of free) {
        const n = Math.min(lcp(s.ids, job.prompt), job.prompt.length - 1);
        if (n > bestN || (n === bestN && s.lastUsed < best.lastUsed)) { best = s; bestN = n; }
      }
      best.busy = true;
      best.cache ??= this.model.newCache(this.contextSize);
      best.cache.truncate(Math.min(bestN, best.cache.length));
      best.ids.length = best.cache.length;
      job.slot = best;
      job.cached = best.cache.length;
      job.tStart = performance.now();
      this.active.push(job);
    }
  }

  private async loop(): Promise<void> {
    for (;;) {
      while (this.tasks.length) await this.tasks.shift()!();
      for (const j of this.active) if (!j.done && j.signal?.aborted) this.finish(j, 'abort');
      this.reap();
      this.admit();
      if (!this.active.length) { if (this.tasks.length) continue; return; }
      let jobs = [...this.active];
      if (jobs.length > this.maxBatch) {
        const start = this.cursor % jobs.length;
        jobs = [...jobs.slice(start), ...jobs.slice(0, start)].slice(0, this.maxBatch);
        this.cursor = start + this.maxBatch;
      }
      const items = jobs.map((j) => ({
        cache: j.slot!.cache!, dec: j.dec, prompt: j.prompt,
        tokens: j.prefilled ? [j.dec.ids[j.dec.ids.length - 1]] : j.prompt.slice(j.slot!.cache!.length),
      }));
      const steps: { ids: number[]; text: string; done: boolean }[] = new Array(jobs.length);
      const t0 = performance.now();
      try {
        // Prefills and plain decode steps share one forward call; with speculation the decoding
        // requests take a speculative step of their own.
        const spec = this.spec, plain = items.map((_, k) => k).filter((k) => !spec || !jobs[k].prefilled);
        if (plain.length) {
          const r = await decodeStep(this.model, plain.map((k) => items[k]));
          plain.forEach((k, i) => { steps[k] = { ids: r[i].id < 0 ? [] : [r[i].id], text: r[i].text, done: r[i].done }; });
        }
        const fast = spec ? items.map((_, k) => k).filter((k) => jobs[k].prefilled) : [];
        if (fast.length) {
          const r = await spec!.step(fast.map((k) => items[k]));
          fast.forEach((k, i) => { steps[k] = r[i]; });
        }
      } catch (e) {
        // A failed step leaves the caches undefined: fail these requests and empty their slots.
        for (const j of jobs) { j.slot!.cache!.reset(); j.slot!.ids = []; j.error = e; this.finish(j, 'abort'); }
        this.reap();
        continue;
      }
      const t1 = performance.now();
      this.totals.steps++;
      this.totals.stepMs += t1 - t0;
      for (let k = 0; k < jobs.length; k++) {
        const j = jobs[k], r = steps[k];
        if (!j.prefilled) { j.prefilled = true; j.tPrefilled = t1; }
        // a job aborted while its step ran still got a token; it is not sent
        if (j.done) continue;
        if (r.ids.length) this.emit(j, decoderChunk(j.dec, r.ids, r.text));
        if (r.done) this.finish(j, j.dec.finish);
      }
      this.reap();
      await tick();
    }
  }

  private emit(j: Job, c: StreamChunk): void {
    j.buffer.push(c);
    j.wake?.();
  }

  /** Drop finished jobs from the active list and release their slots. */
  private reap(): void {
    for (let i = this.active.length - 1; i >= 0; i--) {
      const j = this.active[i];
      if (!j.done) continue;
      this.active.splice(i, 1);
      // between steps, so no forward call is using the draft cache
      this.spec?.release(j.dec);
      const s = j.slot!;
      if (s.cache && !j.error) s.ids = j.prompt.concat(j.dec.ids).slice(0, s.cache.length);
      s.busy = false;
      s.lastUsed = ++this.clock;
    }
  }

  private finish(j: Job, reason: FinishReason): void {
    if (j.done) return;
    j.done = true;
    j.unlisten?.();
    if (reason === 'abort') j.dec.abort();
    const now = performance.now();
    const promptN = j.prompt.length - j.cached;
    const promptMs = j.tPrefilled ? j.tPrefilled - j.tStart : 0;
    const predMs = j.tPrefilled ? now - j.tPrefilled : 0;
    const n = j.dec.ids.length;
    const timings: ServerTimings = {
      cache_n: j.cached,
      prompt_n: j.tPrefilled ? promptN : 0, prompt_ms: promptMs,
      prompt_per_token_ms: promptN && promptMs ? promptMs / promptN : 0,
      prompt_per_second: promptMs ? (promptN / promptMs) * 1000 : 0,
      // The first token comes out of the prefill step, so decoding speed counts the tokens after it.
      predicted_n: n, predicted_ms: predMs,
      predicted_per_token_ms: n > 1 ? predMs / (n - 1) : 0,
      predicted_per_second: n > 1 && predMs ? ((n - 1) / predMs) * 1000 : 0,
    };
    if (j.tPrefilled) { this.totals.promptTokens += promptN; this.totals.cachedTokens += j.cached; }
    this.totals.predictedTokens += n;
    j.result = { ids: j.dec.ids, text: j.dec.text, finishReason: reason, promptTokens: j.prompt.length, timings, ...(j.dec.logprobs ? { logprobs: j.dec.logprobs } : {}) };
    j.wake?.();
  }
}
