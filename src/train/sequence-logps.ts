// Per-sequence log-probabilities and their gradients, what DPO needs from the model:
//   logProbSums:       s_r = Σ_t log p(target_t | row r's tokens before t) over r's non-PAD targets
//   backwardLogProbs:  grads += Σ_r w_r · ∇ s_r
// RowwiseScorer builds both from the trainable model's mean-cross-entropy calls, one row at a time
// (the CE mean of a row with n targets is −s_r/n, so a backward with gradScale −w_r·n adds w_r·∇s_r).
// It is exact but runs a forward per row and, for the backward, a second forward; a model that
// returns the sums and takes per-row weights in its fused head + loss replaces it without changing
// callers.

import type { TrainableModel } from './model-grad.js';
import { PAD } from './data/sources.js';

export interface SequenceScorer {
  logProbSums(inputs: Int32Array, targets: Int32Array, rows: number, T: number): Float64Array;
  /** Adds Σ_r weights[r]·∇s_r to the gradients; returns the s_r of the same forward. */
  backwardLogProbs(inputs: Int32Array, targets: Int32Array, rows: number, T: number, weights: ArrayLike<number>): Float64Array;
}

export class RowwiseScorer implements SequenceScorer {
  constructor(readonly model: TrainableModel) {}

  /** Row r cut after its last real input (padding only ever follows it). */
  private row(inputs: Int32Array, targets: Int32Array, r: number, T: number): { x: Int32Array; y: Int32Array; n: number } {
    let len = T;
    while (len > 1 && inputs[r * T + len - 1] === PAD) len--;
    const y = targets.subarray(r * T, r * T + len);
    let n = 0;
    for (let i = 0; i < len; i++) if (y[i] !== PAD) n++;
    return { x: inputs.subarray(r * T, r * T + len), y, n };
  }

  logProbSums(inputs: Int32Array, targets: Int32Array, rows: number, T: number): Float64Array {
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      const { x, y, n } = this.row(inputs, targets, r, T);
      if (n === 0) continue;
      const res = this.model.evalLoss(x, y, 1, x.length, { ignoreIndex: PAD, zLoss: 0 });
      out[r] = -res.ce * n;
    }
    return out;
  }

  backwardLogProbs(inputs: Int32Array, targets: Int32Array, rows: number, T: number, weights: ArrayLike<number>): Float64Array {
    const out = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      const { x, y, n } = this.row(inputs, targets, r, T);
      if (n === 0) continue;
      const w = weights[r];
      const res = w === 0
        ? this.model.evalLoss(x, y, 1, x.length, { ignoreIndex: PAD, zLoss: 0 })
        : this.model.forwardBackward(x, y, 1, x.length, { ignoreIndex: PAD, zLoss: 0, gradScale: -w * n });
      out[r] = -res.ce * n;
    }
    return out;
  }
}
