// One DPO micro-batch: the policy's completion log-probabilities, the loss against the cached
// reference log-probabilities, and the backward that adds gradScale · ∂loss/∂θ to the gradients.

import type { InstructBatch } from './data/instruct-set.js';
import { dpoLoss, type DpoConfig, type DpoLossResult } from './dpo-loss.js';
import type { SequenceScorer } from './sequence-logps.js';

export type PairBatch = InstructBatch & { pairs: number };

export interface PairLogps { chosen: Float64Array; rejected: Float64Array; }

function split(sums: Float64Array, pairs: number): PairLogps {
  return { chosen: sums.slice(0, pairs), rejected: sums.slice(pairs, 2 * pairs) };
}

/** Completion log-probability sums of every pair (forward only): the reference's, once per pair. */
export function pairLogps(scorer: SequenceScorer, b: PairBatch): PairLogps {
  return split(scorer.logProbSums(b.inputs, b.targets, b.rows, b.T), b.pairs);
}

export function dpoStep(scorer: SequenceScorer, b: PairBatch, ref: PairLogps, cfg: DpoConfig, gradScale = 1): DpoLossResult & { policy: PairLogps } {
  const P = b.pairs;
  const policy = pairLogps(scorer, b);
  const res = dpoLoss(policy.chosen, policy.rejected, ref.chosen, ref.rejected, cfg, b.rowTokens.subarray(0, P), b.rowTokens.subarray(P, 2 * P));
  const w = new Float64Array(2 * P);
  for (let i = 0; i < P; i++) { w[i] = gradScale * res.dChosen[i]; w[P + i] = gradScale * res.dRejected[i]; }
  scorer.backwardLogProbs(b.inputs, b.targets, b.rows, b.T, w);
  return { ...res, policy };
}
