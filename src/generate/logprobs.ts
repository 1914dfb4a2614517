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

/** Scores every token of `prompt` given the ones before it (for `echo`). */
export async function promptLogprobs(model: OpenELM, prompt: readonly number[], opts: { bosId: number; top?: number }): Promise<PromptLogprobs> {
  const bosAdded = prompt.length === 0 || prompt[0] !== opts.bosId;
  const ids = bosAdded ? [opts.bosId, ...prompt] : [...prompt];
  const V = model.config.vocabSize;
  const logits = await model.logitsAll(ids);
  const off = bosAdded ? 1 : 0;
  const entries: Array<TokenLogprob | null> = prompt.map((id, i) => {
    if (i === 0) return null;
    const j = i + off - 1;
    return tokenLogprob(logits.subarray(j * V, (j + 1) * V), id, opts.top ?? 0);
  });
  return { entries, bosAdded, next: logits.slice((ids.length - 1) * V, ids.length * V) };
}
