// Speculative decoding: propose a few tokens cheaply, then check them with one forward pass of the
// model. Decode streams every weight once per step whatever the number of rows (up to a few), so
// k+1 rows cost little more than one, and each accepted proposal is a step saved.
//
// Two proposers: prompt lookup (the tokens that followed the latest earlier occurrence of the
// sequence's trailing n-gram, the idea of HF's prompt_lookup_num_tokens and llama.cpp's lookup
// decoding; free, and strong when the output repeats its input: code edits, extraction, summaries)
// and a draft model (a smaller OpenELM with the same tokenizer, e.g. 270M for 3B).
//
// Verification runs each row through the shared decode step (decode.ts) in order, so penalties,
// constraints and stop rules see exactly the tokens plain decoding would. Greedy keeps the
// argmax: the output is the plain decode's, token for token, because backends keep each row of a
// linear of up to MAX_VERIFY_ROWS rows identical to a one-row call (the backend suite checks
// it). Sampling uses the accept/reject rule (Sampler.speculate), so the distribution of the
// output is unchanged.

import type { OpenELM } from '../model/openelm.js';
import type { KVCache } from '../model/kv-cache.js';
import { OpenELMError } from '../core/errors.js';
import { Sampler } from './sampler.js';
import type { SequenceDecoder, StepResult } from './decode.js';

/** Rows a verification forward may have: the backends' row-exact GEMV limit (see backend.ts linear). */
export const MAX_VERIFY_ROWS = 8;

export interface SpeculativeOptions {
  /** Draft model proposing the tokens (same tokenizer and vocabulary as the model); a loaded model (api.ts) will do. */
  draftModel?: OpenELM | { model: OpenELM };
  /** Prompt-lookup drafting (the default when there is no draft model); n-gram lengths tried, longest first. */
  lookup?: boolean | { ngramMin?: number; ngramMax?: number };
  /** Most tokens proposed per step, 1..7 (default 3). */
  maxDraft?: number;
}

/** How speculation went over one generate call. */
export interface SpeculativeStats {
  /** Verification steps. */
  steps: number;
  /** Tokens proposed. */
  drafted: number;
  /** Proposals the model agreed with (each saved a decode step). */
  accepted: number;
}

/** One sequence being generated speculatively. */
export interface SpecSeq {
  dec: SequenceDecoder;
  cache: KVCache;
  prompt: readonly number[];
}

/** One step's output for one sequence: the tokens it took and the text they released. */
export interface SpecStepResult { ids: number[]; text: string; done: boolean; }

interface DraftState { cache: KVCache; sampler: Sampler; }

// 3 proposals + the model's own token = 4 rows: one pass over the weights in the WASM GEMV
const DEFAULT_MAX_DRAFT = 3;

export class Speculator {
  readonly stats: SpeculativeStats = { steps: 0, drafted: 0, accepted: 0 };
  private readonly maxDraft: number;
  private readonly ngramMin: number;
  private readonly ngramMax: number;
  private readonly draft?: OpenELM;
  private readonly drafts = new Map<SequenceDecoder, DraftState>();

  constructor(private readonly model: OpenELM, opts: SpeculativeOptions) {
    this.maxDraft = opts.maxDraft ?? DEFAULT_MAX_DRAFT;
    if (!(Number.isInteger(this.maxDraft) && this.maxDraft >= 1 && this.maxDraft < MAX_VERIFY_ROWS)) {
      throw new OpenELMError('usage', `draft tokens per step must be an integer from 1 to ${MAX_VERIFY_ROWS - 1}, got ${opts.maxDraft}`);
    }
    if (opts.draftModel && opts.lookup) throw new OpenELMError('usage', 'choose one way to draft: a draft model or prompt lookup, not both');
    const lk = typeof opts.lookup === 'object' ? opts.lookup : {};
    this.ngramMin = lk.ngramMin ?? 2;
    this.ngramMax = lk.ngramMax ?? 4;
    if (!(Number.isInteger(this.ngramMin) && Number.isInteger(this.ngramMax) && this.ngramMin >= 1 && this.ngramMin <= this.ngramMax)) {
      throw new OpenELMError('usage', `prompt lookup needs integer n-gram sizes with 1 <= min <= max, got ${this.ngramMin}..${this.ngramMax}`);
    }
    this.draft = opts.draftModel && 'model' in opts.draftModel ? opts.draftModel.model : opts.draftModel;
    if (this.draft && this.draft.config.vocabSize !== model.config.vocabSize) {
      throw new OpenELMError('usage', `the draft model's vocabulary has ${this.draft.config.vocabSize} tokens but the model's has ${model.config.vocabSize}; they must share the tokenizer`);
    }
  }

  /**
   * One step for each sequence: propose, verify in forward passes of at most MAX_VERIFY_ROWS rows,
   * take the agreed tokens plus the model's own next one, and roll the caches back past the rest.
   * Each sequence's cache must hold all its tokens but the last (as after a plain decode step).
   */
  async step(seqs: SpecSeq[]): Promise<SpecStepResult[]> {
    const props = await this.propose(seqs);
    const out: SpecStepResult[] = new Array(seqs.length);
    // group sequences so no verification forward has more rows than the row-exact limit
    let group: number[] = [], rows = 0;
    const flush = async () => { if (group.length) await this.verify(seqs, props, group, out); group = []; rows = 0; };
    for (let i = 0; i < seqs.length; i++) {
      const n = this.pending(seqs[i]).length + props[i].ids.length;
      if (rows + n > MAX_VERIFY_ROWS) await flush();
      group.push(i); rows += n;
    }
    await flush();
    this.stats.steps++;
    return out;
  }

  /** Free one sequence's draft cache (it has finished). */
  release(dec: SequenceDecoder): void {
    this.drafts.get(dec)?.cache.dispose();
    this.drafts.delete(dec);
  }

  /** Free the draft caches. */
  dispose(): void {
    for (const d of this.drafts.values()) d.cache.dispose();
    this.drafts.clear();
  }

  /** The sequence's tokens its cache does not hold yet. */
  private pending(s: SpecSeq): number[] {
    const have = s.cache.length, p = s.prompt.length;
    return have >= p ? s.dec.ids.slice(have - p) : [...s.prompt.slice(have), ...s.dec.ids];
  }

  /** How many tokens the sequence may have proposed: the cache, the token budget and the row limit bound it. */
  private budget(s: SpecSeq): number {
    const pend = this.pending(s).length;
    return Math.max(0, Math.min(
      this.maxDraft,
      s.dec.maxTokens - s.dec.ids.length - 1,           // the step also takes the model's own token
      s.cache.capacity - s.cache.length - pend,
      MAX_VERIFY_ROWS - pend,
    ));
  }

  private async propose(seqs: SpecSeq[]): Promise<{ ids: number[]; q: (Float64Array | null)[] }[]> {
    const props = seqs.map(() => ({ ids: [] as number[], q: [] as (Float64Array | null)[] }));
    if (!this.draft) {
      seqs.forEach((s, i) => { props[i].ids = lookupDraft([...s.prompt, ...s.dec.ids], this.budget(s), this.ngramMin, this.ngramMax); });
      return props;
    }
    const draft = this.draft, V = draft.config.vocabSize;
    const want = seqs.map((s) => this.budget(s));
    const states = seqs.map((s, i) => (want[i] > 0 ? this.draftState(s) : null));
    // the draft cache must also hold the sequence plus k-1 proposals
    seqs.forEach((s, i) => {
      const st = states[i];
      if (!st) return;
      const total = s.prompt.length + s.dec.ids.length;
      want[i] = Math.max(0, Math.min(want[i], st.cache.capacity - total + 1));
    });
    for (let j = 0; ; j++) {
      const live = seqs.map((_, i) => i).filter((i) => want[i] > j);
      if (!live.length) break;
      const items = live.map((i) => {
        const s = seqs[i], st = states[i]!;
        const toks = j === 0 ? [...s.prompt, ...s.dec.ids].slice(st.cache.length) : [props[i].ids[j - 1]];
        return { cache: st.cache, tokens: toks };
      });
      const logits = await draft.forward(items);
      live.forEach((i, r) => {
        const s = seqs[i], st = states[i]!;
        const row = logits.subarray(r * V, (r + 1) * V);
        const dist = st.sampler.distribution(row, s.prompt, [...s.dec.ids, ...props[i].ids]);
        const id = st.sampler.draw(dist);
        let q: Float64Array | null = null;
        if (!st.sampler.greedy) {
          q = new Float64Array(V);
          for (let c = 0; c < dist.ids.length; c++) q[dist.ids[c]] = dist.w[c] / dist.total;
        }
        props[i].ids.push(id); props[i].q.push(q);
      });
    }
    return props;
  }

  private draftState(s: SpecSeq): DraftState {
    let st = this.drafts.get(s.dec);
    if (!st) {
      const draft = this.draft!;
      const cap = Math.min(s.cache.capacity, draft.config.maxContextLength);
      const seed = s.dec.sampling.seed;
      // its own generator: the draft's draws must not shift the model's
      st = { cache: draft.newCache(cap), sampler: new Sampler({ ...s.dec.sampling, seed: seed === undefined ? undefined : (seed ^ 0x5bd1e995) >>> 0 }) };
      this.drafts.set(s.dec, st);
    }
    return st;
  }

  private async verify(seqs: SpecSeq[], props: { ids: number[]; q: (Float64Array | null)[] }[], group: number[], out: SpecStepResult[]): Promise<void> {
    const model = this.model, V = model.config.vocabSize;
    const pend = group.map((i) => this.pending(seqs[i]));
    const before = group.map((i) => seqs[i].cache.length);
    const items = group.map((i, g) => ({ cache: seqs[i].cache, tokens: [...pend[g], ...props[i].ids] }));
    // Greedy without processors needs only each row's argmax: the backend finds it and the logits stay there.
    let ids: Int32Array | null = null, logits: Float32Array | null = null;
    if (group.every((i) => seqs[i].dec.argmaxOnly)) {
      const { logits: t, rows } = model.forwardDevice(items, { all: true });
      ids = Int32Array.from(await model.backend.argmax(t, rows, V));
    } else logits = await model.forward(items, { all: true });
    let row = 0;
    group.forEach((i, g) => {
      const s = seqs[i], p = props[i], dec = s.dec;
      const base = row + pend[g].length - 1;           // the row that predicts the first new token
      const start = before[g] + pend[g].length;        // the cache length holding every token so far
      const res: SpecStepResult = { ids: [], text: '', done: false };
      let agreed = 0;
      for (let r = 0; r <= p.ids.length; r++) {
        const room = start + r + 1 <= s.cache.capacity;
        const drafted = r < p.ids.length ? p.ids[r] : -1;
        let step: StepResult;
        if (dec.done) break;
        if (ids) step = dec.step(null, room, ids[base + r]);
        else {
          const lr = logits!.subarray((base + r) * V, (base + r + 1) * V);
          step = drafted >= 0 ? dec.stepDraft(lr, room, drafted, p.q[r] ?? null) : dec.step(lr, room);
        }
        res.ids.push(step.id); res.text += step.text;
        if (step.done) { res.done = true; break; }
        if (step.id !== drafted) break;
        agreed++;
      }
      // keep the tokens up to the last agreed proposal; the model's own token is fed next step
      s.cache.truncate(start + agreed);
      const st = this.drafts.get(dec);
      if (st && st.cache.length > start + agreed) st.cache.truncate(start + agreed);
      this.stats.drafted += p.ids.length;
      this.stats.accepted += agreed;
      out[i] = res;
      row += items[g].tokens.length;
    });
  }
}

/**
 * Prompt lookup: the up to k tokens that followed the latest earlier occurrence of the sequence's
 * last n tokens, trying n from ngramMax down to ngramMin; none when nothing matches.
 */
export function lookupDraft(tokens: readonly number[], k: number, ngramMin: number, ngramMax: number): number[] {
  const L = tokens.length;
  if (k <= 0) return [];
  for (let n = Math.min(ngramMax, L - 1); n >= ngramMin; n--) {
    // candidate starts i with tokens[i..i+n) == tokens[L-n..L) and at least one token after
    for (let i = L - n - 1; i >= 0; i--) {
      let j = 0;
      while (j < n && tokens[i + j] === tokens[L - n + j]) j++;
      if (j === n) return tokens.slice(i + n, Math.min(L, i + n + k));
    }
  }
  return [];
}
