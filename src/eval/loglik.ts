// Log-likelihood of continuations given contexts, as lm-eval's HFLM._loglikelihood_tokens computes it:
// the model reads (ctx + cont)[-(L+1):][:-1] and the log-softmax at the continuation positions is
// summed; greedy means every continuation token is the argmax.
//
// Speed without changing the numbers:
// - requests whose (truncated) contexts are equal form one group; the context runs once into a KV
//   cache and every continuation of the group is scored on top of it (the cache is truncated back
//   to the context between continuations), so a 4-choice question costs one context pass;
// - several groups run in each forward call (their rows are stacked for every matmul);
// - continuations of one token need no second pass at all (the context's last logits score them).

import { OpenELMError } from '../core/errors.js';
import type { KVCache } from '../model/kv-cache.js';
import type { OpenELM } from '../model/openelm.js';

export interface LLRequest { ctx: readonly number[]; cont: readonly number[]; }
export interface LLResult { ll: number; greedy: boolean; }

export interface ScoreOptions {
  /** Context groups per forward call. */
  batchSize?: number;
  /** lm-eval's max_length: longer inputs are cut from the left (default: the model's context length). */
  maxLength?: number;
  /** Upper bound on logit rows requested per forward call (bounds memory: rows x vocab floats). */
  rowsPerCall?: number;
  /** Called after each batch with the number of requests finished so far. */
  onProgress?: (done: number) => void;
}

interface Group { ctx: number[]; conts: number[][]; members: number[][]; }

export class LoglikScorer {
  private caches: KVCache[] = [];
  readonly maxLength: number;
  readonly batchSize: number;
  readonly rowsPerCall: number;

  constructor(private readonly model: OpenELM, opts: ScoreOptions = {}) {
    this.maxLength = opts.maxLength ?? model.config.maxContextLength;
    if (this.maxLength > model.config.maxContextLength) {
      throw new OpenELMError('usage', `max length ${this.maxLength} is longer than the model's context (${model.config.maxContextLength} tokens)`);
    }
    this.batchSize = Math.max(1, opts.batchSize ?? 8);
    this.rowsPerCall = Math.max(1, opts.rowsPerCall ?? 512);
  }

  /** Give the KV caches back to the backend (a trainer evaluating again and again would otherwise grow its memory). */
  dispose(): void {
    for (const c of this.caches) c?.dispose();
    this.caches = [];
  }

  /** Score every request; results come back in request order. */
  async score(reqs: readonly LLRequest[], onProgress?: (done: number) => void): Promise<LLResult[]> {
    const L = this.maxLength;
    const groups = new Map<string, Group>();
    for (let i = 0; i < reqs.length; i++) {
      const { ctx, cont } = reqs[i];
      if (cont.length === 0) throw new OpenELMError('eval', `request ${i} has an empty continuation`);
      if (ctx.length === 0) throw new OpenELMError('eval', `request ${i} has an empty context`);
      if (cont.length > L) throw new OpenELMError('eval', `a continuation of ${cont.length} tokens does not fit the model's ${L}-token window`);
      const over = ctx.length + cont.length - (L + 1);
      const eff = over > 0 ? ctx.slice(over) : ctx.slice();
      const key = eff.join(',');
      let g = groups.get(key);
      if (!g) { g = { ctx: eff, conts: [], members: [] }; groups.set(key, g); }
      const ck = cont.join(',');
      const j = g.conts.findIndex((c) => c.length === cont.length && c.join(',') === ck);
      if (j >= 0) g.members[j].push(i);
      else { g.conts.push(cont.slice()); g.members.push([i]); }
    }
    // Longest first: similar lengths share batches, and a context that does not fit fails early.
    const order = [...groups.values()].sort((a, b) => b.ctx.length - a.ctx.length);
    const out: LLResult[] = new Array(reqs.length);
    let done = 0;
    for (let s = 0; s < order.length; s += this.batchSize) {
      const batch = order.slice(s, s + this.batchSize);
      const res = await this.scoreBatch(batch);
      batch.forEach((g, b) => { g.members.forEach((m, j) => { for (const i of m) { out[i] = res[b][j]; done++; } }); });
      onProgress?.(done);
    }
    return out;
  }

  private cacheFor(b: number, need: number): KVCache {
    let c = this.caches[b];
    if (!c || c.capacity < need) {
      const cap = Math.min(Math.max(need, Math.ceil(need / 128) * 128), Math.max(need, this.model.config.maxContextLength));
      c?.dispose();
      c = this.model.newCache(cap);
      this.caches[b] = c;
    }
    c.reset();
    return c;
  }

  private async scoreBatch(batch: Group[]): Promise<LLResult[][]> {
    const V = this.model.config.vocabSize;
    const caches = batch.map((g, b) => this.cacheFor(b, g.ctx.length + Math.max(...g.conts.map((c) => c.length)) - 1));
    const res: LLResult[][] = batch.map((g) => g.conts.map(() => ({ ll: 0, greedy: true })));
    // Pass 1: every context; its last row scores the first token of each continuation.
    const last = await this.model.forward(batch.map((g, b) => ({ cache: caches[b], tokens: g.ctx })));
    batch.forEach((g, b) => {
      const row = last.subarray(b * V, (b + 1) * V);
      g.conts.forEach((c, j) => { const r = scoreRow(row, c[0]); res[b][j].ll += r.lp; res[b][j].greedy &&= r.greedy; });
    });
    // Pass 2, one continuation index at a time: feed cont[:-1] after the cached context.
    const rounds = Math.max(...batch.map((g) => g.conts.length));
    for (let j = 0; j < rounds; j++) {
      const active = batch.map((_g, b) => b).filter((b) => j < batch[b].conts.length && batch[b].conts[j].length > 1);
      if (!active.length) continue;
      const fed = active.map(() => 0);
      for (;;) {
        const live = active.map((_b, k) => k).filter((k) => fed[k] < batch[active[k]].conts[j].length - 1);
        if (!live.length) break;
        const per = Math.max(1, Math.floor(this.rowsPerCall / live.length));
        const items = live.map((k) => {
          const c = batch[active[k]].conts[j];
          const n = Math.min(per, c.length - 1 - fed[k]);
          return { cache: caches[active[k]], tokens: c.slice(fed[k], fed[k] + n) };
        });
        const logits = await this.model.forward(items, { all: true });
        let r = 0;
        live.forEach((k, q) => {
          const b = active[k], c = batch[b].conts[j], r0 = res[b][j];
          for (let t = 0; t < items[q].tokens.length; t++, r++) {
            const target = c[fed[k] + t + 1];
            const row = logits.subarray(r * V, (r + 1) * V);
            const sr = scoreRow(row, target);
            r0.ll += sr.lp;
            r0.greedy &&= sr.greedy;
          }
          fed[k] += items[q].tokens.length;
        });
      }
      for (const b of active) caches[b].truncate(batch[b].ctx.length);
    }
    return res;
  }
}

/**
 * log-softmax of `row` at `target` (float64 sums, as logProbAt) and whether the target is the argmax
 * (is_greedy; ties count as greedy like isArgmax), in two passes over the vocabulary instead of three.
 */
export function scoreRow(row: Float32Array, target: number): { lp: number; greedy: boolean } {
  const v = row[target];
  let mx = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > mx) mx = row[i];
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i] - mx);
  return { lp: v - mx - Math.log(s), greedy: v >= mx };
}

/** One-shot convenience: score requests with a fresh scorer. */
export function scoreRequests(model: OpenELM, reqs: readonly LLRequest[], opts: ScoreOptions = {}): Promise<LLResult[]> {
  return new LoglikScorer(model, opts).score(reqs, opts.onProgress);
}
