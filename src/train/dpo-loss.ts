// The DPO objective on per-sequence log-probabilities, as TRL's DPOTrainer.dpo_loss computes it
// (TRL 0.8, the version of the alignment-handbook run behind OpenELM-Instruct; the formulas are
// unchanged in later releases except where noted in docs/instruction-tuning.md):
//
//   z = (log π(c) − log π(r)) − (log π_ref(c) − log π_ref(r))
//   sigmoid: −(1 − ls)·logσ(βz) − ls·logσ(−βz)
//   hinge:   relu(1 − βz)
//   ipo:     (z − 1/(2β))²          with log-probabilities averaged over each completion's tokens
//
// log π(y) is the sum over the completion tokens (and the EOS) of log p(token | preceding tokens);
// for ipo TRL divides it by the number of those tokens. The batch loss is the mean over pairs.
// Besides the loss this returns its gradient with respect to each pair's policy log-probability
// *sums*, which the model turns into per-row weights of ∇ Σ log p, and TRL's logged metrics.

import type { DpoLossType } from './recipe.js';

export interface DpoConfig { beta: number; lossType: DpoLossType; labelSmoothing: number; }

export interface DpoMetrics {
  'rewards/chosen': number;
  'rewards/rejected': number;
  'rewards/accuracies': number;
  'rewards/margins': number;
  'logps/chosen': number;
  'logps/rejected': number;
}

export const DPO_METRIC_KEYS: readonly (keyof DpoMetrics)[] = [
  'rewards/chosen', 'rewards/rejected', 'rewards/accuracies', 'rewards/margins', 'logps/chosen', 'logps/rejected',
];

export interface DpoLossResult {
  /** Mean over the pairs. */
  loss: number;
  /** Per pair. */
  losses: Float64Array;
  /** ∂loss/∂(Σ log π(chosen)) and ∂loss/∂(Σ log π(rejected)) per pair (the mean's 1/pairs included). */
  dChosen: Float64Array;
  dRejected: Float64Array;
  /** Means over the pairs. */
  metrics: DpoMetrics;
  /** Sums over the pairs (to average metrics over several batches). */
  metricSums: DpoMetrics;
  pairs: number;
}

/** log σ(x), stable for large |x|. */
export function logSigmoid(x: number): number {
  return Math.min(x, 0) - Math.log1p(Math.exp(-Math.abs(x)));
}

export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** ℓ(z) and dℓ/dz for one pair. */
export function dpoPairLoss(z: number, c: DpoConfig): [number, number] {
  const b = c.beta;
  switch (c.lossType) {
    case 'sigmoid': {
      const ls = c.labelSmoothing;
      const loss = -(1 - ls) * logSigmoid(b * z) - ls * logSigmoid(-b * z);
      return [loss, -(1 - ls) * b * sigmoid(-b * z) + ls * b * sigmoid(b * z)];
    }
    case 'hinge': {
      const m = 1 - b * z;
      // PyTorch's relu has gradient 0 at 0.
      return m > 0 ? [m, -b] : [0, 0];
    }
    case 'ipo': {
      const d = z - 1 / (2 * b);
      return [d * d, 2 * d];
    }
  }
}

/**
 * The loss over a batch of pairs. Log-probabilities are per-sequence sums; `chosenTokens` and
 * `rejectedTokens` (completion token counts) are needed by ipo only.
 */
export function dpoLoss(
  policyChosen: ArrayLike<number>, policyRejected: ArrayLike<number>,
  refChosen: ArrayLike<number>, refRejected: ArrayLike<number>,
  c: DpoConfig, chosenTokens?: ArrayLike<number>, rejectedTokens?: ArrayLike<number>,
): DpoLossResult {
  const n = policyChosen.length;
  if (policyRejected.length !== n || refChosen.length !== n || refRejected.length !== n) throw new Error('dpoLoss: the four log-probability arrays must have one value per pair');
  const avg = c.lossType === 'ipo';
  if (avg && (!chosenTokens || !rejectedTokens)) throw new Error('dpoLoss: ipo needs the completion token counts');
  const losses = new Float64Array(n), dChosen = new Float64Array(n), dRejected = new Float64Array(n);
  const sums: DpoMetrics = { 'rewards/chosen': 0, 'rewards/rejected': 0, 'rewards/accuracies': 0, 'rewards/margins': 0, 'logps/chosen': 0, 'logps/rejected': 0 };
  let total = 0;
  for (let i = 0; i < n; i++) {
    const sc = avg ? 1 / chosenTokens![i] : 1, sr = avg ? 1 / rejectedTokens![i] : 1;
    const pc = policyChosen[i] * sc, pr = policyRejected[i] * sr, rc = refChosen[i] * sc, rr = refRejected[i] * sr;
    const z = (pc - pr) - (rc - rr);
    const [l, dl] = dpoPairLoss(z, c);
    losses[i] = l; total += l;
    dChosen[i] = (dl * sc) / n;
    dRejected[i] = (-dl * sr) / n;
    const rwc = c.beta * (pc - rc), rwr = c.beta * (pr - rr);
    sums['rewards/chosen'] += rwc;
    sums['rewards/rejected'] += rwr;
    sums['rewards/accuracies'] += rwc > rwr ? 1 : 0;
    sums['rewards/margins'] += rwc - rwr;
    sums['logps/chosen'] += pc;
    sums['logps/rejected'] += pr;
  }
  const metrics = { ...sums };
  for (const k of DPO_METRIC_KEYS) metrics[k] = n ? sums[k] / n : 0;
  return { loss: n ? total / n : 0, losses, dChosen, dRejected, metrics, metricSums: sums, pairs: n };
}
