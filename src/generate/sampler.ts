// Token selection with Hugging Face semantics, applied in HF's order: logit bias, repetition
// penalty (over every distinct id seen so far, prompt included), presence/frequency penalties
// (OpenAI, over generated ids), then temperature, top-k, top-p, min-p, and a draw from the
// remaining distribution. Temperature 0 is greedy (argmax after the penalties).

import { Rng } from '../core/rng.js';
import { OpenELMError } from '../core/errors.js';

export interface SamplingOptions {
  temperature?: number;        // 0 = greedy; default 1
  topK?: number;               // 0 = off
  topP?: number;               // 1 = off
  minP?: number;               // 0 = off
  repetitionPenalty?: number;  // 1 = off (HF: divide positive logits, multiply negative ones)
  presencePenalty?: number;    // OpenAI: subtract once per generated id present
  frequencyPenalty?: number;   // OpenAI: subtract per occurrence of a generated id
  logitBias?: Record<number, number>;
  seed?: number;
}

export function validateSampling(o: SamplingOptions): void {
  const bad = (m: string): never => { throw new OpenELMError('usage', m); };
  if (o.temperature !== undefined && !(o.temperature >= 0)) bad(`temperature must be >= 0, got ${o.temperature}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) bad(`top-k must be an integer >= 0, got ${o.topK}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) bad(`top-p must be in (0, 1], got ${o.topP}`);
  if (o.minP !== undefined && !(o.minP >= 0 && o.minP <= 1)) bad(`min-p must be in [0, 1], got ${o.minP}`);
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0)) bad(`repetition penalty must be > 0, got ${o.repetitionPenalty}`);
  for (const k of ['presencePenalty', 'frequencyPenalty'] as const) {
    const v = o[k];
    if (v !== undefined && !(v >= -2 && v <= 2)) bad(`${k === 'presencePenalty' ? 'presence' : 'frequency'} penalty must be in [-2, 2], got ${v}`);
  }
}

export class Sampler {
  private readonly rng: Rng;
  private readonly o: SamplingOptions;
  private idx: Int32Array = new Int32Array(0);

  constructor(opts: SamplingOptions = {}) {
    validateSampling(opts);
    this.o = opts;
    this.rng = new Rng(opts.seed ?? ((Math.random() * 2 ** 32) >>> 0));
  }

  get greedy(): boolean { return (this.o.temperature ?? 1) === 0; }

  /** Apply the processors in place (bias, penalties); exposed for tests and for logprob reporting. */
  process(logits: Float32Array, context: readonly number[], generated: readonly number[]): void {
    const o = this.o;
    if (o.logitBias) for (const [k, v] of Object.entries(o.logitBias)) { const i = Number(k); if (i >= 0 && i < logits.length) logits[i] += v; }
    const rp = o.repetitionPenalty ?? 1;
    if (rp !== 1) {
      const seen = new Set(context);
      for (const id of generated) seen.add(id);
      for (const id of seen) { const s = logits[id]; logits[id] = s < 0 ? s * rp : s / rp; }
    }
    if (o.presencePenalty || o.frequencyPenalty) {
      const counts = new Map<number, number>();
      for (const id of generated) counts.set(id, (counts.get(id) ?? 0) + 1);
      for (const [id, n] of counts) logits[id] -= (o.presencePenalty ?? 0) + n * (o.frequencyPenalty ?? 0);
    }
  }

  /** Choose the next token. `context` = prompt ids, `generated` = ids produced so far. */
  sample(logits: Float32Array, context: readonly number[] = [], generated: readonly number[] = []): number {
    this.process(logits, context, generated);
    const V = logits.length;
    if (this.greedy) return argmax(logits);
    const t = this.o.temperature ?? 1;
    const topK = this.o.topK ?? 0, topP = this.o.topP ?? 1, minP = this.o.minP ?? 0;
    // Work on the candidate ids sorted by logit (descending); ties keep id order.
    if (this.idx.length !== V) this.idx = new Int32Array(V);
    const idx = this.idx;
    for (let i = 0; i < V; i++) idx[i] = i;
    let n = V;
    if (topK > 0 && topK < V) {
      idx.sort((a, b) => logits[b] - logits[a] || a - b);
      // HF keeps every token whose logit is >= the k-th largest (ties survive).
      const kth = logits[idx[topK - 1]];
      n = topK;
      while (n < V && logits[idx[n]] >= kth) n++;
    } else idx.sort((a, b) => logits[b] - logits[a] || a - b);
    const probs = new Float64Array(n);
    const mx = logits[idx[0]] / t;
    let sum = 0;
    for (let i = 0; i < n; i++) { const p = Math.exp(logits[idx[i]] / t - mx); probs[i] = p; sum += p; }
    for (let i = 0; i < n; i++) probs[i] /= sum;
    if (topP < 1) {
      // HF: drop tokens whose ascending cumulative probability is <= 1 - top_p; keep at least one.
      let cum = 0, keep = n;
      for (let i = n - 1; i >= 1; i--) {
        cum += probs[i];
        if (cum <= 1 - topP) keep = i; else break;
      }
      n = keep;
    }
    if (minP > 0) {
      const thr = minP * probs[0];
      let keep = 1;
      while (keep < n && probs[keep] >= thr) keep++;
      n = keep;
    }
    let total = 0;
    for (let i = 0; i < n; i++) total += probs[i];
    let r = this.rng.next() * total;
    for (let i = 0; i < n; i++) { r -= probs[i]; if (r < 0) return idx[i]; }
    return idx[n - 1];
  }

  rngState(): number[] { return this.rng.getState(); }
}

export function argmax(a: ArrayLike<number>): number {
  let b = 0, m = -Infinity;
  for (let i = 0; i < a.length; i++) if (a[i] > m) { m = a[i]; b = i; }
  return b;
}
