// One DPO micro-batch: the policy's completion log-probabilities (one forward that keeps its
// activations), the loss against the cached reference log-probabilities, and the backward of
// gradScale · ∂loss/∂θ through the per-sequence sums (docs/instruction-tuning.md).

import type { TrainableModel } from '../model/trainable.js';
import type { InstructBatch } from './data/instruct-set.js';
import { PAD } from './data/sources.js';
import { dpoLoss, type DpoConfig, type DpoLossResult } from './dpo-loss.js';

/** What DPO needs from a model: per-sequence log-probability sums and a backward from per-sequence weights. */
export type SequenceScorer = Pick<TrainableModel, 'sequenceLogprobs' | 'sequenceLogprobsBackward'>;

export type PairBatch = InstructBatch & { pairs: number };

export interface PairLogps { chosen: Float64Array; rejected: Float64Array; }

function split(sums: Float64Array, pairs: number): PairLogps {
  return { chosen: sums.slice(0, pairs), rejected: sums.slice(pairs, 2 * pairs) };
}

/** Completion log-probability sums of every pair of the batch (forward only, no dropout: the reference's, once per pair, and validation). */
export async function pairLogps(model: SequenceScorer, b: PairBatch): Promise<PairLogps> {
  return split(await model.sequenceLogprobs(b.inputs, b.targets, b.rows, b.T, { ignoreIndex: PAD }), b.pairs);
}

/**
 * Loss, metrics and gradients (gradScale · ∂loss/∂θ added to the model's) of one batch of pairs.
 * The policy's forward is a training one: adapter dropout is active (seeded by dropoutSeed), as in
 * TRL, whose policy runs in train mode.
 */
export async function dpoStep(model: SequenceScorer, b: PairBatch, ref: PairLogps, cfg: DpoConfig, gradScale = 1, dropoutSeed?: number): Promise<DpoLossResult & { policy: PairLogps }> {
  const P = b.pairs;
  const policy = split(await model.sequenceLogprobs(b.inputs, b.targets, b.rows, b.T, { ignoreIndex: PAD, train: true, dropoutSeed }), P);
  const res = dpoLoss(policy.chosen, policy.rejected, ref.chosen, ref.rejected, cfg, b.rowTokens.subarray(0, P), b.rowTokens.subarray(P, 2 * P));
  const w = new Float64Array(2 * P);
  for (let i = 0; i < P; i++) { w[i] = gradScale * res.dChosen[i]; w[P + i] = gradScale * res.dRejected[i]; }
  await model.sequenceLogprobsBackward(w);
  return { ...res, policy };
}
