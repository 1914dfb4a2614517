// AdamW with PyTorch's semantics (torch.optim.AdamW, the non-fused single-tensor path), which is
// what CoreNet's `adamw` optimizer wraps (spec §4.1):
//   p ← p − lr·wd·p                      (decoupled decay, only on decayed tensors)
//   m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g²
//   p ← p − (lr / (1−β1^t)) · m / (sqrt(v) / sqrt(1−β2^t) + eps)
// Weight decay applies to every tensor of rank ≥ 2 (all linear weights and the tied embedding) and
// not to the 1-D RMSNorm weights, as CoreNet's no_decay_bn_filter_bias grouping does.
// The state (m, v, step) is exposed as plain buffers so checkpoints can save and restore it.

import { OpenELMError } from '../core/errors.js';
import type { ParamLayout } from '../model/layout.js';
import type { FloatArray } from './kernels.js';

export interface AdamWOptions {
  /** Default (0.9, 0.95): OpenELM's pretraining betas. */
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Default 0.1 (OpenELM pretraining). */
  weightDecay?: number;
  /** Override which tensors are decayed (HF key → decay?); default: rank ≥ 2. */
  decay?: (name: string, shape: readonly number[]) => boolean;
}

export interface AdamWState { step: number; m: Float32Array; v: Float32Array; }

/** Defaults, validation and weight-decay groups shared by every AdamW implementation. */
export function resolveAdamW(layout: ParamLayout, opts: AdamWOptions) {
  const beta1 = opts.beta1 ?? 0.9, beta2 = opts.beta2 ?? 0.95, eps = opts.eps ?? 1e-8, weightDecay = opts.weightDecay ?? 0.1;
  for (const [k, v] of [['beta1', beta1], ['beta2', beta2]] as const) {
    if (!(v >= 0 && v < 1)) throw new OpenELMError('usage', `AdamW ${k} must be in [0, 1), got ${v}`);
  }
  if (!(eps >= 0)) throw new OpenELMError('usage', `AdamW eps must be >= 0, got ${eps}`);
  if (!(weightDecay >= 0)) throw new OpenELMError('usage', `AdamW weight decay must be >= 0, got ${weightDecay}`);
  const decay = opts.decay ?? ((_n: string, shape: readonly number[]) => shape.length >= 2);
  const groups = layout.entries.map((e) => ({ name: e.name, offset: e.offset, size: e.size, decay: decay(e.name, e.shape) }));
  return { beta1, beta2, eps, weightDecay, groups };
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  weightDecay: number;
  /** Completed optimizer steps (PyTorch's `step` state). */
  step = 0;
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** [offset, size] of every tensor, and whether it is decayed. */
  readonly groups: { name: string; offset: number; size: number; decay: boolean }[];

  /** `moments`: zeroed buffers for m and v where a subclass wants them (e.g. in wasm memory). */
  constructor(readonly layout: ParamLayout, opts: AdamWOptions = {}, moments?: { m: Float32Array; v: Float32Array }) {
    const h = resolveAdamW(layout, opts);
    this.beta1 = h.beta1; this.beta2 = h.beta2; this.eps = h.eps; this.weightDecay = h.weightDecay;
    this.groups = h.groups;
    this.m = moments?.m ?? new Float32Array(layout.total);
    this.v = moments?.v ?? new Float32Array(layout.total);
  }

  /** Throws unless params and grads hold one value per parameter. */
  protected checkSizes(params: FloatArray, grads: FloatArray): void {
    if (params.length !== this.m.length || grads.length !== this.m.length) {
      throw new OpenELMError('usage', `AdamW was built for ${this.m.length} values; got params ${params.length}, grads ${grads.length}`);
    }
  }

  /** One update of `params` from `grads` at learning rate lr; increments `step`. */
  update(params: FloatArray, grads: FloatArray, lr: number): void {
    this.checkSizes(params, grads);
    this.step++;
    const b1 = this.beta1, b2 = this.beta2, eps = this.eps, m = this.m, v = this.v;
    const stepSize = lr / (1 - Math.pow(b1, this.step));
    const bc2Sqrt = Math.sqrt(1 - Math.pow(b2, this.step));
    for (const g of this.groups) {
      const keep = g.decay ? 1 - lr * this.weightDecay : 1;
      const end = g.offset + g.size;
      for (let i = g.offset; i < end; i++) {
        const gi = grads[i];
        const mi = b1 * m[i] + (1 - b1) * gi;
        const vi = b2 * v[i] + (1 - b2) * gi * gi;
        m[i] = mi; v[i] = vi;
        params[i] = params[i] * keep - stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps);
      }
    }
  }

  /** Views of the live state (no copy); save these three for a checkpoint. */
  state(): AdamWState { return { step: this.step, m: this.m, v: this.v }; }

  loadState(s: { step: number; m: ArrayLike<number>; v: ArrayLike<number> }): void {
    if (s.m.length !== this.m.length || s.v.length !== this.v.length) {
      throw new OpenELMError('checkpoint', `optimizer state has ${s.m.length}/${s.v.length} values; this model needs ${this.m.length}`);
    }
    if (!Number.isInteger(s.step) || s.step < 0) throw new OpenELMError('checkpoint', `optimizer step ${s.step} is not a non-negative integer`);
    this.m.set(s.m); this.v.set(s.v); this.step = s.step;
  }
}
