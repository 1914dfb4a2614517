// Log-probabilities of tokens, as OpenAI-style `logprobs` report them: the log-softmax of the
// model's raw next-token distribution (before temperature, penalties, biases or a grammar mask),
// computed in float64, with the top alternatives. Also the scoring of a prompt's own tokens for
// `echo`: the first token has no logprob (null); a prompt that does not start with BOS is scored
// with BOS in front, as OpenELM is evaluated, but only the caller's tokens get entries.

import type { OpenELM } from '../model/openelm.js';

export interface TopLogprob { id: number; logprob: number }

export interface TokenLogprob {
  id: number;
  logprob: number;
  /** The `top` most likely tokens, most likely first (ties: lower id first). */
  top: TopLogprob[];
}

/** log Σ exp(row), in float64. */
export function logSumExp(row: Float32Array): number {
  let mx = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > mx) mx = row[i];
  if (mx === -Infinity) return -Infinity;
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i] - mx);
  return mx + Math.log(s);
}

/** The k most likely tokens of a logits row with their logprobs (one pass, no full sort). */
export function topLogprobs(row: Float32Array, k: number, lse = logSumExp(row)): TopLogprob[] {
  const n = Math.min(k, row.length);
  if (n <= 0) return [];
  const ids: number[] = [];
  // Kept sorted by (value desc, id asc); a new entry only enters if it beats the last.
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (ids.length === n && !(v > row[ids[n - 1]])) continue;
    let j = ids.length < n ? ids.length : n - 1;
    while (j > 0 && v > row[ids[j - 1]]) j--;
    if (ids.length < n) ids.splice(j, 0, i);
    else { ids.pop(); ids.splice(j, 0, i); }
  }
  return ids.map((id) => ({ id, logprob: row[id] - lse }));
}

/** The logprob of `id` under a logits row, with the `top` alternatives. */
export function tokenLogprob(row: Float32Array, id: number, top = 0): TokenLogprob {
  const lse = logSumExp(row);
  return { id, logprob: row[id] - lse, top: topLogprobs(row, top, lse) };
}

export interface PromptLogprobs {
  /** One entry per prompt token; the first is null. */
  entries: Array<TokenLogprob | null>;
  /** Whether BOS was put in front for scoring. */
  bosAdded: boolean;
  /** The logits after the last prompt token (the next token's distribution). */
  next: Float32Array;
}

/** Logit rows computed per forward call while scoring (bounds memory: rows × vocabulary floats). */
const SCORE_ROWS = 256;

/**
 * Scores every token of `prompt` given the ones before it (for `echo`). The prompt runs through a
 * KV cache in pieces of `chunk` tokens, so memory stays at chunk × vocabulary floats.
 */
export async function promptLogprobs(model: OpenELM, prompt: readonly number[], opts: { bosId: number; top?: number; chunk?: number }): Promise<PromptLogprobs> {
  const bosAdded = prompt.length === 0 || prompt[0] !== opts.bosId;
  const ids = bosAdded ? [opts.bosId, ...prompt] : [...prompt];
  const V = model.config.vocabSize;
  const off = bosAdded ? 1 : 0;
  const chunk = Math.max(1, opts.chunk ?? SCORE_ROWS);
  const entries: Array<TokenLogprob | null> = prompt.map(() => null);
  let next = new Float32Array(0);
  const cache = model.newCache(Math.max(ids.length, 1));
  try {
    for (let s = 0; s < ids.length; s += chunk) {
      const n = Math.min(chunk, ids.length - s);
      const logits = await model.forward([{ cache, tokens: ids.slice(s, s + n) }], { all: true });
      // Row j of the whole sequence predicts ids[j + 1], which is prompt token j + 1 - off.
      for (let r = 0; r < n; r++) {
        const j = s + r, i = j + 1 - off;
        if (i >= 1 && i < prompt.length) entries[i] = tokenLogprob(logits.subarray(r * V, (r + 1) * V), prompt[i], opts.top ?? 0);
      }
      if (s + n === ids.length) next = logits.slice((n - 1) * V, n * V);
    }
  } finally {
    cache.dispose();
  }
  return { entries, bosAdded, next };
}
