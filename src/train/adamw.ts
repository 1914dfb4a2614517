// AdamW with PyTorch's semantics (torch.optim.AdamW, the non-fused single-tensor path), which is
// what CoreNet's `adamw` optimizer wraps (docs/training.md):
//   p ← p − lr·wd·p                      (decoupled decay, only on decayed tensors)
//   m ← β1·m + (1−β1)·g ;  v ← β2·v + (1−β2)·g²
//   p ← p − (lr / (1−β1^t)) · m / (sqrt(v) / sqrt(1−β2^t) + eps)
// Weight decay applies to every tensor of rank ≥ 2 (all linear weights and the tied embedding) and
// not to the 1-D RMSNorm weights, as CoreNet's no_decay_bn_filter_bias grouping does.
//
// The update runs on the model's backend (Backend.adamw, one call per run of equally-decayed
// tensors within a chunk). The moments live on the backend when they fit next to what it already
// holds, cut into the same chunks as the parameters (model/chunked.ts); otherwise they stay in host
// memory and are streamed through the backend in slices. Either way every element gets the same
// f64 formula, so neither the placement nor the chunking changes a bit.

import type { Backend, Tensor } from '../backends/backend.js';
import { OpenELMError } from '../core/errors.js';
import { ChunkedTensor, type Span } from '../model/chunked.js';
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
  private readonly dm: ChunkedTensor | null = null;
  private readonly dv: ChunkedTensor | null = null;
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
    // contiguous runs of equally-decayed tensors: one kernel call each (per chunk)
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
      this.dm = ChunkedTensor.alloc(be, layout, 'AdamW m');
      try {
        this.dv = ChunkedTensor.alloc(be, layout, 'AdamW v');
      } catch (e) {
        this.dm.free();
        throw e;
      }
    } else {
      this.hm = new Float32Array(layout.total);
      this.hv = new Float32Array(layout.total);
    }
  }

  private chunked(t: Tensor | ChunkedTensor, what: string): ChunkedTensor {
    if (t instanceof ChunkedTensor) {
      if (t.layout.total !== this.layout.total) throw new OpenELMError('usage', `AdamW was built for ${this.layout.total} values; got ${what} of ${t.layout.total}`);
      return t;
    }
    if (t.length !== this.layout.total) throw new OpenELMError('usage', `AdamW was built for ${this.layout.total} values; got ${what} of ${t.length}`);
    return ChunkedTensor.of(this.be, this.layout, t);
  }

  /** [offset, offset + size) cut wherever one of the tensors changes chunk: pieces each inside one chunk of all of them. */
  private static pieces(offset: number, size: number, sets: readonly ChunkedTensor[]): Span[] {
    const cuts = new Set<number>([offset + size]);
    for (const t of sets) for (const p of t.pieces(offset, size)) cuts.add(p.start + p.size);
    const ends = [...cuts].sort((a, b) => a - b);
    const out: Span[] = [];
    let o = offset;
    for (const e of ends) { if (e > o) out.push({ start: o, size: e - o }); o = e; }
    return out;
  }

  /**
   * One update of the parameters from the gradients (each a flat tensor of the layout's size, or
   * the model's paramChunks / gradChunks) at learning rate lr; increments `step`.
   */
  async update(params: Tensor | ChunkedTensor, grads: Tensor | ChunkedTensor, lr: number): Promise<void> {
    const P = this.chunked(params, 'params'), G = this.chunked(grads, 'grads');
    this.step++;
    const be = this.be, b1 = this.beta1, b2 = this.beta2;
    const stepSize = lr / (1 - Math.pow(b1, this.step));
    const bc2Sqrt = Math.sqrt(1 - Math.pow(b2, this.step));
    const sets = this.onBackend ? [P, G, this.dm!, this.dv!] : [P, G];
    const sliceM = this.onBackend ? null : be.alloc(Math.min(SLICE, this.layout.total));
    const sliceV = this.onBackend ? null : be.alloc(Math.min(SLICE, this.layout.total));
    try {
      for (const r of this.runs) {
        const s = { b1, b2, stepSize, bc2Sqrt, eps: this.eps, keep: r.decay ? 1 - lr * this.weightDecay : 1 };
        for (const { start, size } of AdamW.pieces(r.offset, r.size, sets)) {
          if (this.onBackend) {
            be.adamw(P.range(start, size), G.range(start, size), this.dm!.range(start, size), this.dv!.range(start, size), size, s);
            continue;
          }
          for (let o = start; o < start + size; o += SLICE) {
            const n = Math.min(SLICE, start + size - o);
            const mm = be.view(sliceM!, 0, n), vv = be.view(sliceV!, 0, n);
            be.write(mm, this.hm!.subarray(o, o + n));
            be.write(vv, this.hv!.subarray(o, o + n));
            be.adamw(P.range(o, n), G.range(o, n), mm, vv, n, s);
            const [m2, v2] = await Promise.all([be.read(mm), be.read(vv)]);
            this.hm!.set(m2, o); this.hv!.set(v2, o);
          }
        }
      }
    } finally {
      if (sliceM) be.free(sliceM);
      if (sliceV) be.free(sliceV);
    }
  }

  /** A host copy of the whole state (m, v and the step count). Checkpoints stream it with readMoment instead. */
  async state(): Promise<AdamWState> {
    if (!this.onBackend) return { step: this.step, m: this.hm!, v: this.hv! };
    const [m, v] = await Promise.all([this.dm!.read(), this.dv!.read()]);
    return { step: this.step, m, v };
  }

  /** A host copy of flat values [offset, offset + n) of m or v (a checkpoint streams the moments slice by slice). */
  readMoment(which: 'm' | 'v', offset: number, n: number): Promise<Float32Array> {
    if (!this.onBackend) return Promise.resolve((which === 'm' ? this.hm! : this.hv!).slice(offset, offset + n));
    return (which === 'm' ? this.dm! : this.dv!).read(offset, n);
  }

  /** Set flat values [offset, offset + values.length) of m or v (resuming, slice by slice). */
  writeMoment(which: 'm' | 'v', offset: number, values: Float32Array): void {
    if (offset + values.length > this.layout.total) throw new OpenELMError('checkpoint', `optimizer state values [${offset}, ${offset + values.length}) are outside the model's ${this.layout.total}`);
    if (!this.onBackend) (which === 'm' ? this.hm! : this.hv!).set(values, offset);
    else (which === 'm' ? this.dm! : this.dv!).write(values, offset);
  }

  /** Set the completed step count (resuming). */
  setStep(step: number): void {
    if (!Number.isInteger(step) || step < 0) throw new OpenELMError('checkpoint', `optimizer step ${step} is not a non-negative integer`);
    this.step = step;
  }

  loadState(s: { step: number; m: ArrayLike<number>; v: ArrayLike<number> }): void {
    const n = this.layout.total;
    if (s.m.length !== n || s.v.length !== n) {
      throw new OpenELMError('checkpoint', `optimizer state has ${s.m.length}/${s.v.length} values; this model needs ${n}`);
    }
    if (!Number.isInteger(s.step) || s.step < 0) throw new OpenELMError('checkpoint', `optimizer step ${s.step} is not a non-negative integer`);
    const f32 = (a: ArrayLike<number>) => (a instanceof Float32Array ? a : Float32Array.from(a));
    this.writeMoment('m', 0, f32(s.m));
    this.writeMoment('v', 0, f32(s.v));
    this.step = s.step;
  }

  /** Give the moments' backend memory back. */
  dispose(): void {
    this.dm?.free();
    this.dv?.free();
  }
}
