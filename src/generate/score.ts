// Log-likelihood scoring: log p(token) of given continuations under the model. Perplexity and the
// evaluation harness build on this.

import type { OpenELM } from '../model/openelm.js';

/** log-softmax of one logits row at `target`, in float64. */
export function logProbAt(row: Float32Array, target: number): number {
  let mx = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > mx) mx = row[i];
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i] - mx);
  return row[target] - mx - Math.log(s);
}

/** Is `target` the argmax of the row (lm-eval's is_greedy)? */
export function isArgmax(row: Float32Array, target: number): boolean {
  const v = row[target];
  for (let i = 0; i < row.length; i++) if (row[i] > v) return false;
  return true;
}

/**
 * Score tokens[from..] given everything before: returns log p(tokens[i] | tokens[<i]) for
 * i = from .. tokens.length-1 (from ≥ 1), and whether each was the greedy choice.
 */
export async function scoreTokens(model: OpenELM, tokens: number[], from = 1): Promise<{ logprobs: number[]; greedy: boolean[] }> {
  const V = model.config.vocabSize;
  const logits = await model.logitsAll(tokens.slice(0, tokens.length - 1));
  const logprobs: number[] = [], greedy: boolean[] = [];
  for (let i = Math.max(1, from); i < tokens.length; i++) {
    const row = logits.subarray((i - 1) * V, i * V);
    logprobs.push(logProbAt(row, tokens[i]));
    greedy.push(isArgmax(row, tokens[i]));
  }
  return { logprobs, greedy };
}
