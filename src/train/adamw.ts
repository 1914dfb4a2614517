// AdamW with PyTorch's semantics (torch.optim.AdamW, the non-fused single-tensor path), which is
// what CoreNet's `adamw` optimizer wraps (docs/training.md):
//   p ← p − lr·wd·p                      (decoupled decay, only on decayed tensors)
//   m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g²
//   p ← p − (lr / (1−β1^t)) · m / (sqrt(v) / sqrt(1−β2^t) + eps)
// Weight decay applies to every tensor of rank ≥ 2 (all linear weights and the tied embedding) and
// not to the 1-D RMSNorm weights, as CoreNet's no_decay_bn_filter_bias grouping does.
//
// The update runs on the model's backend (Backend.adamw, one call per run of equally-decayed
// tensors). The moments live on the backend when they fit next to what it already holds; otherwise
// (the 4 GiB WebAssembly memory: OpenELM-270M's params + grads + moments are 4.3 GB) they stay in
// host memory and are streamed through the backend in slices. Either way every element gets the
// same f64 formula, so the two placements give the same bits.

import type { Backend, Tensor } from '../backends/backend.js';
import { OpenELMError } from '../core/errors.js';
import type { ParamLayout } from '../model/layout.js';

export interface AdamWOptions {
  /** Default (0.9, 0.95): OpenELM's pretraining betas. */
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Default 0.1 (OpenELM pretraining). */
  weightDecay?: number;
  /** Override which tensors are decayed (HF key → decay?); default: rank ≥ 2. */
  decay?: (name: string, shape: readonly number[]) => boolean;
  /**
   * Where the moments live: 'auto' (default) on the backend when they fit next to `reserveBytes`
   * (activations still to come), else host memory; or forced.
   */
  placement?: 'auto' | 'backend' | 'host';
  /** Bytes to leave free on the backend for activations when placement is 'auto' (default 1 GiB). */
  reserveBytes?: number;
}

export interface AdamWState { step: number; m: Float32Array; v: Float32Array; }

/** Streamed host moments go through the backend in slices of this many values. */
const SLICE = 1 << 22;

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  weightDecay: number;
  /** Completed optimizer steps (PyTorch's `step` state). */
  step = 0;
  /** [offset, size] of every tensor, and whether it is decayed. */
  readonly groups: { name: string; offset: number; size: number; decay: boolean }[];
  /** Whether m and v live on the backend (else in host memory). */
  readonly onBackend: boolean;
  private readonly runs: { offset: number; size: number; decay: boolean }[];
  private readonly dm: Tensor | null = null;
  private readonly dv: Tensor | null = null;
  private readonly hm: Float32Array | null = null;
  private readonly hv: Float32Array | null = null;

  constructor(private readonly be: Backend, readonly layout: ParamLayout, opts: AdamWOptions = {}) {
    const beta1 = opts.beta1 ?? 0.9, beta2 = opts.beta2 ?? 0.95, eps = opts.eps ?? 1e-8, weightDecay = opts.weightDecay ?? 0.1;
    for (const [k, v] of [['beta1', beta1], ['beta2', beta2]] as const) {
      if (!(v >= 0 && v < 1)) throw new OpenELMError('usage', `AdamW ${k} must be in [0, 1), got ${v}`);
    }
    if (!(eps >= 0)) throw new OpenELMError('usage', `AdamW eps must be >= 0, got ${eps}`);
    if (!(weightDecay >= 0)) throw new OpenELMError('usage', `AdamW weight decay must be >= 0, got ${weightDecay}`);
    this.beta1 = beta1; this.beta2 = beta2; this.eps = eps; this.weightDecay = weightDecay;
    const decay = opts.decay ?? ((_n: string, shape: readonly number[]) => shape.length >= 2);
    this.groups = layout.entries.map((e) => ({ name: e.name, offset: e.offset, size: e.size, decay: decay(e.name, e.shape) }));
    // contiguous runs of equally-decayed tensors: one kernel call each
    this.runs = [];
    for (const g of [...this.groups].sort((a, b) => a.offset - b.offset)) {
      const last = this.runs[this.runs.length - 1];
      if (last && last.decay === g.decay && last.offset + last.size === g.offset) last.size += g.size;
      else this.runs.push({ offset: g.offset, size: g.size, decay: g.decay });
    }
    const placement = opts.placement ?? 'auto';
    const mem = be.memory();
    const need = 2 * layout.total * 4 + (opts.reserveBytes ?? 2 ** 30);
    this.onBackend = placement === 'backend' || (placement === 'auto' && mem.inUse + need <= mem.limit);
    if (this.onBackend) {
      this.dm = be.alloc(layout.total);
      this.dv = be.alloc(layout.total);
    } else {
      this.hm = new Float32Array(layout.total);
      this.hv = new Float32Array(layout.total);
    }
  }

  /** One update of `params` from `grads` (tensors of the layout's size on the backend) at learning rate lr; increments `step`. */
  async update(params: Tensor, grads: Tensor, lr: number): Promise<void> {
    if (params.length !== this.layout.total || grads.length !== this.layout.total) {
      throw new OpenELMError('usage', `AdamW was built for ${this.layout.total} values; got params ${params.length}, grads ${grads.length}`);
    }
    this.step++;
    const be = this.be, b1 = this.beta1, b2 = this.beta2;
    const stepSize = lr / (1 - Math.pow(b1, this.step));
    const bc2Sqrt = Math.sqrt(1 - Math.pow(b2, this.step));
    const sliceM = this.onBackend ? null : be.alloc(Math.min(SLICE, this.layout.total));
    const sliceV = this.onBackend ? null : be.alloc(Math.min(SLICE, this.layout.total));
    try {
      for (const r of this.runs) {
        const s = { b1, b2, stepSize, bc2Sqrt, eps: this.eps, keep: r.decay ? 1 - lr * this.weightDecay : 1 };
        if (this.onBackend) {
          be.adamw(be.view(params, r.offset, r.size), be.view(grads, r.offset, r.size), be.view(this.dm!, r.offset, r.size), be.view(this.dv!, r.offset, r.size), r.size, s);
          continue;
        }
        for (let o = r.offset; o < r.offset + r.size; o += SLICE) {
          const n = Math.min(SLICE, r.offset + r.size - o);
          const mm = be.view(sliceM!, 0, n), vv = be.view(sliceV!, 0, n);
          be.write(mm, this.hm!.subarray(o, o + n));
          be.write(vv, this.hv!.subarray(o, o + n));
          be.adamw(be.view(params, o, n), be.view(grads, o, n), mm, vv, n, s);
          const [m2, v2] = await Promise.all([be.read(mm), be.read(vv)]);
          this.hm!.set(m2, o); this.hv!.set(v2, o);
        }
      }
    } finally {
      if (sliceM) be.free(sliceM);
      if (sliceV) be.free(sliceV);
    }
  }

  /** A host copy of the state (m, v and the step count), for a checkpoint. */
  async state(): Promise<AdamWState> {
    if (!this.onBackend) return { step: this.step, m: this.hm!, v: this.hv! };
    const [m, v] = await Promise.all([this.be.read(this.dm!), this.be.read(this.dv!)]);
    return { step: this.step, m, v };
  }

  loadState(s: { step: number; m: ArrayLike<number>; v: ArrayLike<number> }): void {
    const n = this.layout.total;
    if (s.m.length !== n || s.v.length !== n) {
      throw new OpenELMError('checkpoint', `optimizer state has ${s.m.length}/${s.v.length} values; this model needs ${n}`);
    }
    if (!Number.isInteger(s.step) || s.step < 0) throw new OpenELMError('checkpoint', `optimizer step ${s.step} is not a non-negative integer`);
    if (this.onBackend) { this.be.write(this.dm!, s.m); this.be.write(this.dv!, s.v); }
    else { this.hm!.set(s.m); this.hv!.set(s.v); }
    this.step = s.step;
  }

  /** Give the moments' backend memory back. */
  dispose(): void {
    if (this.dm) this.be.free(this.dm);
    if (this.dv) this.be.free(this.dv);
  }
}
