// Cross-entropy over the vocabulary with an ignore index, plus CoreNet's optional z-loss
// (docs/training.md):  loss = mean_valid(lse − logit[target]) + zLoss · mean_valid(lse²),
// where lse is the max-subtracted logsumexp of a row and "valid" means target ≠ ignoreIndex.
// CoreNet's own implementation also adds lse² of padded rows (whose logits it zeroes) to the logged
// value; we follow the spec's recommendation and average over valid tokens only.

import { OpenELMError } from '../core/errors.js';
import { crossEntropyRows, type FloatArray } from '../backends/js/reference.js';

/** CoreNet's z-loss coefficient, used when z-loss is switched on without a value. */
export const DEFAULT_Z_LOSS = 1e-4;
/** PyTorch's default ignore_index. OpenELM pretraining uses the pad id 32000. */
export const DEFAULT_IGNORE_INDEX = -100;

/** Resolve the user-facing z-loss option: true → 1e-4, false/undefined → 0, a number as given. */
export function zLossCoefficient(z: number | boolean | undefined): number {
  if (z === undefined || z === false) return 0;
  if (z === true) return DEFAULT_Z_LOSS;
  if (!Number.isFinite(z) || z < 0) throw new OpenELMError('usage', `z-loss coefficient must be a non-negative number, got ${z}`);
  return z;
}

/** Number of targets that count towards the mean (target ≠ ignoreIndex). */
export function countValid(targets: ArrayLike<number>, ignoreIndex: number): number {
  let n = 0;
  for (let i = 0; i < targets.length; i++) if (targets[i] !== ignoreIndex) n++;
  return n;
}

export interface CrossEntropyResult { loss: number; ce: number; zloss: number; validTokens: number; }

/**
 * Standalone loss over [rows, V] logits (no gradient); the reference the fused training path is
 * tested against. zloss is the weighted term, so loss = ce + zloss.
 */
export function crossEntropyLoss(logits: FloatArray, targets: ArrayLike<number>, V: number,
  opts: { ignoreIndex?: number; zLoss?: number | boolean } = {}): CrossEntropyResult {
  const ignore = opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX, z = zLossCoefficient(opts.zLoss);
  let ceSum = 0, lseSqSum = 0, n = 0;
  for (let r = 0; r < targets.length; r++) {
    if (targets[r] === ignore) continue;
    const s = crossEntropyRows(logits.subarray(r * V, (r + 1) * V), [targets[r]], 1, V, z, 0);
    ceSum += s.ceSum; lseSqSum += s.lseSqSum; n++;
  }
  if (n === 0) return { loss: 0, ce: 0, zloss: 0, validTokens: 0 };
  const ce = ceSum / n, zl = z * lseSqSum / n;
  return { loss: ce + zl, ce, zloss: zl, validTokens: n };
}

/**
 * gradScale for each of the k micro-batches accumulated into one optimizer step.
 *
 * 'mean' (what `grad_accum: k` means here): every micro-batch's mean loss weighs 1/k, whatever its
 * number of valid tokens. This is CoreNet's semantics, where each GPU averages over its own
 * micro-batch and DDP then averages the GPUs' gradients; with equal valid counts it equals one
 * batch of all k micro-batches.
 * 'token': weights n_i / Σn, so the step equals one big batch's mean over all valid tokens even
 * when padding differs (needs the counts before the first backward; see countValid).
 */
export function gradAccumScales(validTokens: readonly number[], mode: 'mean' | 'token' = 'mean'): number[] {
  const k = validTokens.length;
  if (mode === 'mean') return validTokens.map(() => 1 / k);
  const total = validTokens.reduce((a, b) => a + b, 0);
  return validTokens.map((n) => (total > 0 ? n / total : 0));
}
