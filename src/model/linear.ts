// One linear layer of the trainable model, whatever holds its weight: every product of a block
// with a weight goes through `TrainLinear`, so the block code is the same for full training (a
// trainable f32 weight with its gradient), a frozen base (any weight dtype, no gradient) and a
// frozen base with a LoRA / DoRA adapter (adapted.ts).

import type { Backend, MatmulPrecision, Tensor, Weight } from '../backends/backend.js';

/** What one forward/backward pass of the model shares with its layers. */
export interface LinearRun {
  /** Training mode: adapter dropout is active. */
  train: boolean;
  /** Seed of this pass's dropout masks (the backward regenerates the forward's masks from it). */
  seed: number;
}

/** Buffers a layer saves in its forward for its backward (per layer, or shared with recompute). */
export interface LinearSaved {
  /** Adapters: s·x̃·Aᵀ [M, r]. */
  ts: Tensor | null;
  /** DoRA: the pre-magnitude output x̃·Wᵀ + s·x̃·Aᵀ·Bᵀ [M, out]. */
  pre: Tensor | null;
}

export interface TrainLinear {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** y[M, out] = x[M, in]·Wᵀ (+ the adapter), or += when accumulate. */
  forward(y: Tensor, x: Tensor, M: number, accumulate: boolean, saved: LinearSaved, run: LinearRun): void;
  /** dx[M, in] OVERWRITTEN with dL/dx; the layer's trainable gradients +=. x is the forward's input. */
  backward(dx: Tensor, dy: Tensor, x: Tensor, M: number, saved: LinearSaved, run: LinearRun): void;
}

/**
 * A trainable f32 weight [out, in] and its gradient (views into the model's flat tensors); its three
 * products take the model's precision (bf16: bf16-rounded inputs, f32 sums).
 */
export class DenseLinear implements TrainLinear {
  constructor(private readonly be: Backend, readonly w: Tensor, readonly dw: Tensor, readonly outFeatures: number, readonly inFeatures: number,
    private readonly precision: MatmulPrecision = 'fp32') {}

  forward(y: Tensor, x: Tensor, M: number, accumulate: boolean): void {
    this.be.matmul(y, x, this.w, M, this.outFeatures, this.inFeatures, 'nt', accumulate, this.precision);
  }

  backward(dx: Tensor, dy: Tensor, x: Tensor, M: number): void {
    const be = this.be, O = this.outFeatures, I = this.inFeatures;
    // both products read dY: rounded once (bf16)
    withHeldBf16(be, this.precision === 'bf16', dy, () => {
      be.matmul(this.dw, dy, x, O, I, M, 'tn', true, this.precision);
      be.matmul(dx, dy, this.w, M, I, O, 'nn', false, this.precision);
    });
  }
}

/** Runs `body` with `t` held for bf16 products (Backend.holdBf16) when `hold`, released after. */
export function withHeldBf16(be: Backend, hold: boolean, t: Tensor, body: () => void): void {
  const release = hold ? be.holdBf16?.(t) : undefined;
  try {
    body();
  } finally {
    release?.();
  }
}

/** A frozen weight of any storage dtype: no gradient, only the input's. */
export class FrozenLinear implements TrainLinear {
  readonly outFeatures: number;
  readonly inFeatures: number;
  constructor(private readonly be: Backend, readonly w: Weight) {
    this.outFeatures = w.rows;
    this.inFeatures = w.cols;
  }

  forward(y: Tensor, x: Tensor, M: number, accumulate: boolean): void { this.be.linear(y, x, this.w, M, accumulate, true); }

  backward(dx: Tensor, dy: Tensor, _x: Tensor, M: number): void { this.be.linearT(dx, dy, this.w, M, false); }
}
