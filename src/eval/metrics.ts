// Per-document metrics and their aggregation, following lm-eval (api/task.py process_results and
// api/metrics.py at dc90fec).

import { pyLen, utf8Len } from '../core/pystr.js';

/** numpy.argmax: index of the first maximum. */
export function argmax(xs: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}

export interface McScores { acc: number; acc_norm: number; acc_bytes: number; pred: number; pred_norm: number; }

/**
 * Multiple-choice metrics for one document: acc = argmax(ll) is the gold; acc_norm divides each ll by
 * len(choice) in Unicode code points (the choice text without the " " delimiter); acc_bytes by its
 * UTF-8 length (newer lm-eval's acc_bytes; dc90fec does not have it, it is reported as an extra).
 */
export function mcScores(lls: readonly number[], choices: readonly string[], gold: number): McScores {
  const pred = argmax(lls);
  const predNorm = argmax(lls.map((l, i) => l / pyLen(choices[i])));
  const predBytes = argmax(lls.map((l, i) => l / utf8Len(choices[i])));
  return { acc: +(pred === gold), acc_norm: +(predNorm === gold), acc_bytes: +(predBytes === gold), pred, pred_norm: predNorm };
}

export function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** lm-eval mean_stderr: sample standard deviation (n - 1) over sqrt(n). */
export function meanStderr(xs: readonly number[]): number {
  if (xs.length < 2) return NaN;
  const mu = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - mu) * (x - mu);
  return Math.sqrt(s / (xs.length - 1)) / Math.sqrt(xs.length);
}

/** lm-eval's "perplexity" aggregation: exp(-mean(ll)). */
export function perplexity(lls: readonly number[]): number { return Math.exp(-mean(lls)); }

/** Size-weighted mean of subtask scores (aggregate_subtask_metrics with weight_by_size=True). */
export function weightedMean(values: readonly number[], sizes: readonly number[]): number {
  let s = 0, n = 0;
  values.forEach((v, i) => { s += v * sizes[i]; n += sizes[i]; });
  return s / n;
}

/** lm-eval pooled_sample_stderr for a group of subtasks. */
export function pooledStderr(stderrs: readonly number[], sizes: readonly number[]): number {
  let num = 0, n = 0;
  stderrs.forEach((se, i) => { num += (sizes[i] - 1) * se * se * sizes[i]; n += sizes[i]; });
  return Math.sqrt(num / (n - sizes.length) / n);
}

/** Document-level perplexities from total log-likelihoods (lm-eval weighted_perplexity / bits_per_byte). */
export function rollingMetrics(totalLl: number, words: number, bytes: number) {
  return {
    word_perplexity: Math.exp(-totalLl / words),
    byte_perplexity: Math.exp(-totalLl / bytes),
    bits_per_byte: -totalLl / bytes / Math.LN2,
  };
}
