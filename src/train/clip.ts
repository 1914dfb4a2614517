// Global L2 gradient-norm clipping with torch.nn.utils.clip_grad_norm_ semantics: the norm is taken
// over all gradients together; when it exceeds maxNorm every gradient is multiplied by
// maxNorm / (norm + 1e-6). The pre-clip norm is returned (it is what trainers log).

import type { FloatArray } from './kernels.js';

/** Global L2 norm, accumulated in f64. */
export function gradNorm(grads: FloatArray): number {
  let s = 0;
  for (let i = 0; i < grads.length; i++) s += grads[i] * grads[i];
  return Math.sqrt(s);
}

/** Clip in place; returns the norm before clipping. maxNorm ≤ 0 or Infinity only measures. */
export function clipGradNorm(grads: FloatArray, maxNorm: number): number {
  const norm = gradNorm(grads);
  if (maxNorm > 0 && Number.isFinite(maxNorm)) {
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) for (let i = 0; i < grads.length; i++) grads[i] *= coef;
  }
  return norm;
}
