// Global L2 gradient-norm clipping with torch.nn.utils.clip_grad_norm_ semantics: the norm is taken
// over all gradients together; when it exceeds maxNorm every gradient is multiplied by
// maxNorm / (norm + 1e-6). The pre-clip norm is returned (it is what trainers log).
//
// Gradients split into chunks (model/chunked.ts) stay one vector: Backend.sumSquares over the
// chunks gives the sum of squares of their concatenation, bit for bit what the unsplit tensor
// gives, and the one coefficient then scales every chunk.

import type { Backend, Tensor } from '../backends/backend.js';
import { ChunkedTensor } from '../model/chunked.js';

/** Clip `grads` in place on its backend; returns the norm before clipping. maxNorm ≤ 0 or Infinity only measures. */
export async function clipGradNorm(be: Backend, grads: Tensor | ChunkedTensor, maxNorm: number): Promise<number> {
  const parts = grads instanceof ChunkedTensor ? grads.tensors : [grads];
  const norm = Math.sqrt(await be.sumSquares(parts.length === 1 ? parts[0] : parts));
  if (maxNorm > 0 && Number.isFinite(maxNorm)) {
    const coef = maxNorm / (norm + 1e-6);
    if (coef < 1) for (const t of parts) be.scale(t, coef);
  }
  return norm;
}
