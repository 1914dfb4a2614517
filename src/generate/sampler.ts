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

/** A distribution over candidate ids: weight w[i] for ids[i], `total` = Σ w (draws scale by it). */
export interface Candidates { ids: Int32Array; w: Float64Array; total: number; }

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

  /** Greedy with nothing that changes the logits first: the plain argmax is the choice. */
  get plainArgmax(): boolean {
    const o = this.o;
    return this.greedy && !o.logitBias && (o.repetitionPenalty ?? 1) === 1 && !o.presencePenalty && !o.frequencyPenalty;
  }

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
    if (this.greedy) return argmax(logits);
    return this.draw(this.candidates(logits));
  }

  /**
   * The distribution sample() draws from, after the processors (which run on `logits` in place):
   * candidate ids with their probabilities (summing to 1). Greedy is the argmax with probability 1.
   * A draft model's proposals are drawn from this, and speculative verification needs all of it.
   */
  distribution(logits: Float32Array, context: readonly number[] = [], generated: readonly number[] = []): Candidates {
    this.process(logits, context, generated);
    if (this.greedy) return { ids: Int32Array.of(argmax(logits)), w: Float64Array.of(1), total: 1 };
    return this.candidates(logits);
  }

  /** Draw from a distribution (e.g. one from distribution()) with this sampler's generator. */
  draw(c: Candidates): number {
    let r = this.rng.next() * c.total;
    for (let i = 0; i < c.ids.length; i++) { r -= c.w[i]; if (r < 0) return c.ids[i]; }
    return c.ids[c.ids.length - 1];
  }

  /**
   * Speculative sampling's accept/reject rule (Leviathan et al. 2023; Chen et al. 2023): keep the
   * drafted token d with probability min(1, p(d)/q(d)), else draw from the residual
   * max(0, p − q) renormalised. The result is distributed exactly as sample() would draw, whatever
   * the draft distribution q; `q` null means the draft was certain (prompt lookup: q is one-hot on
   * d, so a rejection draws from p without d). Greedy decoding needs no rule: it is the argmax.
   */
  speculate(logits: Float32Array, context: readonly number[], generated: readonly number[], d: number, q: Float64Array | null): number {
    this.process(logits, context, generated);
    if (this.greedy) return argmax(logits);
    const c = this.candidates(logits);
    let pd = 0;
    for (let i = 0; i < c.ids.length; i++) if (c.ids[i] === d) { pd = c.w[i] / c.total; break; }
    const qd = q ? q[d] : 1;
    if (pd > 0 && this.rng.next() * qd < pd) return d;
    // residual: p − q where positive; q's tokens outside p's candidates have p = 0 and drop out
    const w = new Float64Array(c.ids.length);
    let total = 0;
    for (let i = 0; i < c.ids.length; i++) {
      const id = c.ids[i];
      const v = c.w[i] / c.total - (q ? q[id] : id === d ? 1 : 0);
      if (v > 0) { w[i] = v; total += v; }
    }
    // p ≤ q everywhere only when p = q up to rounding, and then any draw from p is right
    return this.draw(total > 0 ? { ids: c.ids, w, total } : c);
  }

  /** Temperature, top-k, top-p and min-p over processed logits: the candidates and their weights. */
  private candidates(logits: Float32Array): Candidates {
    const V = logits.length;
    const t = this.o.temperature ?? 1;
    const topK = this.o.topK ?? 0, topP = this.o.topP ?? 1, minP = this.o.minP ?? 0;
    // Candidates are gathered without sorting the whole vocabulary (that cost ~10 ms a token):
    // top-k keeps logits >= the k-th largest (ties survive, as in HF), found by selection.
    if (this.idx.length !== V) this.idx = new Int32Array(V);
    const idx = this.idx;
    let n = 0;
    if (topK > 0 && topK < V) {
      const kth = kthLargest(logits, topK);
      for (let i = 0; i < V; i++) if (logits[i] >= kth) idx[n++] = i;
    } else { for (let i = 0; i < V; i++) idx[i] = i; n = V; }
    let mx = -Infinity;
    for (let i = 0; i < n; i++) if (logits[idx[i]] > mx) mx = logits[idx[i]];
    mx /= t;
    const probs = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) { const p = Math.exp(logits[idx[i]] / t - mx); probs[i] = p; sum += p; }
    let pmax = 0;
    for (let i = 0; i < n; i++) { probs[i] /= sum; if (probs[i] > pmax) pmax = probs[i]; }
    let cand = Array.from({ length: n }, (_, i) => i);
    if (topP < 1) {
      // HF: drop tokens whose ascending cumulative probability is <= 1 - top_p (keep >= 1).
      // Tokens below (1 - top_p) / n are always dropped (together they weigh < 1 - top_p), so
      // only the rest need sorting.
      const floor = (1 - topP) / n;
      const small = cand.filter((i) => probs[i] < floor);
      cand = cand.filter((i) => probs[i] >= floor).sort((a, b) => probs[a] - probs[b] || idx[b] - idx[a]);
      let cum = 0;
      for (const i of small) cum += probs[i];
      let drop = 0;
      while (drop < cand.length - 1 && cum + probs[cand[drop]] <= 1 - topP) { cum += probs[cand[drop]]; drop++; }
      cand = cand.slice(drop);
    }
    if (minP > 0) {
      const thr = minP * pmax;
      cand = cand.filter((i) => probs[i] >= thr);
    }
    const ids = new Int32Array(cand.length), w = new Float64Array(cand.length);
    let total = 0;
    for (let j = 0; j < cand.length; j++) { ids[j] = idx[cand[j]]; w[j] = probs[cand[j]]; total += w[j]; }
    return { ids, w, total };
  }

  rngState(): number[] { return this.rng.getState(); }
}

export function argmax(a: ArrayLike<number>): number {
  let b = 0, m = -Infinity;
  for (let i = 0; i < a.length; i++) if (a[i] > m) { m = a[i]; b = i; }
  return b;
}

/** The k-th largest value of a (1-based), by quickselect on a copy. */
function kthLargest(a: Float32Array, k: number): number {
  const b = Float32Array.from(a);
  let lo = 0, hi = b.length - 1;
  const want = k - 1;
  while (lo < hi) {
    const pivot = b[(lo + hi) >> 1];
    let i = lo, j = hi;
    while (i <= j) {
      while (b[i] > pivot) i++;
      while (b[j] < pivot) j--;
      if (i <= j) { const t = b[i]; b[i] = b[j]; b[j] = t; i++; j--; }
    }
    if (want <= j) hi = j; else if (want >= i) lo = i; else return b[want];
  }
  return b[want];
}
