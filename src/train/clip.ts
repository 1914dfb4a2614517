// Global L2 gradient-norm clipping with torch.nn.utils.clip_grad_norm_ semantics: the norm is taken
// over all gradients together; when it exceeds maxNorm every gradient is multiplied by
// maxNorm / (norm + 1e-6). The pre-clip norm is returned (it is what trainers log).

import type { Backend, Tensor } from '../backends/backend.js';

/** Clip `grads` in place on its backend; returns the norm before clipping. maxNorm ≤ 0 or Infinity only measures. */
export async function clipGradNorm(be: Backend, grads: Tensor, maxNorm: number): Promise<number> {
  const norm = Math.sqrt(await be.sumSquares(grads));
  if (maxNorm > 0 && Number.isFinite(maxNorm)) {
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) be.scale(grads, coef);
  }
  return norm;
}
