// LoRA and DoRA inside the trainable model, on Backend ops: PEFT's functions (docs/adapters.md,
// src/adapters/reference-math.ts states them in float64) with a frozen base of any weight dtype.
//
// Parameters. The adapter's tensors are the model's trainable parameters, laid out in one flat
// tensor (adapterParamSpecs). Their orientation is chosen so that every product is a plain GEMM:
//   linear     lora_A [r, in] (PEFT's), lora_B_t [r, out] (PEFT's lora_B transposed), lora_magnitude [out]
//   embedding  lora_A_t [vocab, r] (PEFT's lora_embedding_A transposed: a lookup table),
//              lora_B_t [r, dim] (lora_embedding_B transposed), lora_magnitude [dim]
// src/adapters/params.ts converts between this layout and PEFT's.
//
// Linear, s = scale, x̃ = dropout(x) (training only), t = s·x̃·Aᵀ [M, r]:
//   LoRA   y = x·Wᵀ + t·Bt
//   DoRA   c = m / n, n = ||W + s·B·A|| per output row (detached); pre = x̃·Wᵀ + t·Bt;
//          y = (x − x̃)·Wᵀ + c⊙pre   (= x·Wᵀ + (c − 1)⊙x̃·Wᵀ + c⊙t·Bt, PEFT's dropout form;
//          without dropout x̃ = x and y = c⊙pre)
// Backward (dy; g = c⊙dy for DoRA, dy for LoRA; dt = s·g·Btᵀ):
//   dBt += tᵀ·g, dA += dtᵀ·x̃, dm += (Σ_rows dy⊙pre)/n,
//   dx = g·W + dt·A without dropout; with it dx = (1 − mask)⊙(dy·W) + mask⊙(g·W + dt·A)
//   (LoRA: dx = dy·W + mask⊙(dt·A)), mask = keep/(1 − p), regenerated from the pass's seed.
// Embedding (never dropout): t = s·A_t[id]; LoRA y = W[id] + t·Bt; DoRA y = c⊙(W[id] + t·Bt) with n
// per model dimension over the vocabulary; the tied head keeps reading the base W.
// DoRA's norms without materialising W + s·B·A (so a quantized W never needs decoding):
//   n² = ||W_o||² + 2s·Σ_k Bt[k,o]·(P + (s/2)·G·Bt)[k,o],  P = A·Wᵀ [r, out], G = A·Aᵀ [r, r]
// with ||W_o||² computed once on the host from the stored (possibly quantized) base.

import type { Backend, Tensor, Weight } from '../backends/backend.js';
import { dropoutValues, mixSeed } from '../backends/dropout.js';
import { weightRowToF32 } from '../backends/weight-format.js';
import { OpenELMError } from '../core/errors.js';
import { adapterScale, type AdapterSettings } from '../adapters/adapter.js';
import { adaptedModules, type AdaptedModule } from '../adapters/targets.js';
import type { OpenELMConfig } from './config.js';
import type { LinearRun, LinearSaved, TrainLinear } from './linear.js';
import type { ParamSpec } from './params.js';

/** Names of one module's tensors in the flat adapter parameter table. */
export function adapterParamNames(m: AdaptedModule): { A: string; B: string; magnitude: string } {
  return m.kind === 'embedding'
    ? { A: `${m.name}.lora_A_t`, B: `${m.name}.lora_B_t`, magnitude: `${m.name}.lora_magnitude` }
    : { A: `${m.name}.lora_A`, B: `${m.name}.lora_B_t`, magnitude: `${m.name}.lora_magnitude` };
}

/** The adapter's trainable tensors, module by module (embedding first), in this model's orientation. */
export function adapterParamSpecs(c: OpenELMConfig, s: AdapterSettings): ParamSpec[] {
  const out: ParamSpec[] = [];
  for (const m of adaptedModules(c, s.targets)) {
    const n = adapterParamNames(m), I = m.inFeatures, O = m.outFeatures;
    out.push({ name: n.A, shape: m.kind === 'embedding' ? [I, s.r] : [s.r, I] });
    out.push({ name: n.B, shape: [s.r, O] });
    if (s.type === 'dora') out.push({ name: n.magnitude, shape: [O] });
  }
  return out;
}

/** A module's adapter tensors and their gradients (views into the model's flat tensors). */
export interface AdapterTensors { A: Tensor; B: Tensor; m: Tensor | null; dA: Tensor; dB: Tensor; dm: Tensor | null; }

/** Dropout keep-masks given from outside (one byte per element of a module's input, [M, in]): replaying another implementation's masks. */
export type DropoutMasks = (module: string, M: number) => Uint8Array;

/**
 * What every adapted module of a model shares: the settings, scratch sized for the current row
 * capacity, DoRA's small norm scratch, and where dropout masks come from.
 */
export class AdapterShared {
  readonly r: number;
  readonly scale: number;
  readonly dora: boolean;
  readonly p: number;
  /** Replayed masks (tests against PEFT); null: the backend's hashed masks. */
  masks: DropoutMasks | null = null;
  // [cap × maxIn] ×2, [cap × maxOut], [cap × r]
  mask!: Tensor; xd!: Tensor; g!: Tensor; dt!: Tensor;
  // DoRA norms: P [r × maxOut], G [r × r], q and the column dots [maxOut]
  readonly P: Tensor | null; readonly G: Tensor | null; readonly q: Tensor | null; readonly cd: Tensor | null;

  constructor(private readonly be: Backend, s: AdapterSettings, readonly maxIn: number, readonly maxOut: number, own: (n: number) => Tensor) {
    this.r = s.r;
    this.scale = adapterScale(s);
    this.dora = s.type === 'dora';
    this.p = s.dropout;
    this.P = this.dora ? own(s.r * maxOut) : null;
    this.G = this.dora ? own(s.r * s.r) : null;
    this.q = this.dora ? own(maxOut) : null;
    this.cd = this.dora ? own(maxOut) : null;
  }

  /** (Re)allocate the row-dependent scratch for `rows` rows with the model's activation allocator. */
  allocate(rows: number, alloc: (n: number) => Tensor): void {
    const drop = this.p > 0;
    this.mask = alloc(drop ? rows * this.maxIn : 1);
    this.xd = alloc(drop ? rows * this.maxIn : 1);
    this.g = alloc(this.dora ? rows * this.maxOut : 1);
    this.dt = alloc(rows * this.r);
  }

  /** Fill `out` with module `index`'s dropout multipliers for this pass (or their complement). */
  fillMask(out: Tensor, n: number, index: number, name: string, complement: boolean, run: LinearRun): void {
    if (this.masks) {
      const keep = this.masks(name, n);
      if (keep.length !== n) throw new OpenELMError('usage', `replayed dropout mask of ${name} has ${keep.length} values, needs ${n}`);
      const { kept, dropped } = dropoutValues(this.p, complement);
      this.be.write(out, Float32Array.from(keep, (k) => (k ? kept : dropped)));
      return;
    }
    this.be.dropoutMask(out, n, this.p, mixSeed(run.seed, index), complement);
  }

  view(t: Tensor, n: number): Tensor { return this.be.view(t, 0, n); }
}

/** Row norms² ||W_o||² of a linear weight as stored (decoded as the kernels decode it), in f64. */
export function weightRowNorms2(w: Weight): Float64Array {
  const out = new Float64Array(w.rows), row = new Float32Array(w.cols);
  for (let o = 0; o < w.rows; o++) {
    weightRowToF32(w, o, row);
    let s = 0;
    for (let i = 0; i < w.cols; i++) s += row[i] * row[i];
    out[o] = s;
  }
  return out;
}

/** Column norms² over the vocabulary of an embedding table [V, D], in f64. */
export function embeddingColumnNorms2(values: ArrayLike<number>, V: number, D: number): Float64Array {
  const acc = new Float64Array(D);
  for (let v = 0; v < V; v++) for (let d = 0; d < D; d++) { const x = values[v * D + d]; acc[d] += x * x; }
  return acc;
}

/**
 * What the adapted linear and the adapted embedding share: DoRA's detached scale c = m/n per
 * output (from the products P = A·Wᵀ and G = A·Aᵀ each module forms its own way) and the
 * low-rank branch's backward up to dt.
 */
abstract class AdaptedBranch {
  /** DoRA: the base's ||W_o||² [out], c = m/n and 1/n [out] of the current pass. */
  readonly wn2: Tensor | null;
  readonly c: Tensor | null;
  readonly invN: Tensor | null;

  constructor(protected readonly be: Backend, protected readonly sh: AdapterShared, readonly t: AdapterTensors,
    private readonly outs: number, own: (n: number) => Tensor) {
    this.wn2 = sh.dora ? own(outs) : null;
    this.c = sh.dora ? own(outs) : null;
    this.invN = sh.dora ? own(outs) : null;
  }

  /** P = A·Wᵀ [r, out] and G = A·Aᵀ [r, r], overwritten. */
  protected abstract normProducts(P: Tensor, G: Tensor): void;

  /** DoRA: c and 1/n for the current A, B, m (once per pass, before the forward). */
  prepare(): void {
    if (!this.sh.dora) return;
    const be = this.be, sh = this.sh, r = sh.r, s = sh.scale, O = this.outs;
    const P = sh.view(sh.P!, r * O), G = sh.view(sh.G!, r * r), q = sh.view(sh.q!, O);
    this.normProducts(P, G);
    be.scale(G, s / 2);
    be.matmul(P, G, this.t.B, r, O, r, 'nn', true);
    be.columnDot(q, this.t.B, P, r, O, false);
    be.doraScale(this.c!, this.invN!, this.t.m!, this.wn2!, q, O, 2 * s);
  }

  /**
   * dBt += tᵀ·g and DoRA's dm += (Σ_rows dy⊙pre)/n; returns g (c⊙dy for DoRA, dy for LoRA) and
   * dt = s·g·Btᵀ [M, r], which the module turns into dA and dx.
   */
  protected branchBackward(dy: Tensor, M: number, saved: LinearSaved): { g: Tensor; dt: Tensor } {
    const be = this.be, sh = this.sh, r = sh.r, O = this.outs, t = this.t;
    const ts = sh.view(saved.ts!, M * r), dt = sh.view(sh.dt, M * r);
    let g = dy;
    if (sh.dora) {
      const pre = sh.view(saved.pre!, M * O), cd = sh.view(sh.cd!, O);
      be.columnDot(cd, dy, pre, M, O, false);
      be.mulColumns(t.dm!, cd, this.invN!, 1, O, true);
      g = sh.view(sh.g, M * O);
      be.mulColumns(g, dy, this.c!, M, O, false);
    }
    be.matmul(t.dB, ts, g, r, O, M, 'tn', true);
    be.matmul(dt, g, t.B, M, r, O, 'nt', false);
    be.scale(dt, sh.scale);
    return { g, dt };
  }
}

/** A frozen base linear with a LoRA / DoRA adapter. */
export class AdaptedLinear extends AdaptedBranch implements TrainLinear {
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(be: Backend, readonly module: AdaptedModule, readonly index: number, readonly w: Weight,
    t: AdapterTensors, sh: AdapterShared, own: (n: number) => Tensor) {
    super(be, sh, t, w.rows, own);
    this.inFeatures = w.cols;
    this.outFeatures = w.rows;
  }

  /** Record ||W_o||² of the base as stored (call once the weight's data is final, before prepareWeight). */
  setBaseNorms(): void { if (this.wn2) this.be.write(this.wn2, weightRowNorms2(this.w)); }

  protected normProducts(P: Tensor, G: Tensor): void {
    const r = this.sh.r;
    this.be.linear(P, this.t.A, this.w, r, false, true);
    this.be.matmul(G, this.t.A, this.t.A, r, r, this.inFeatures, 'nt', false);
  }

  forward(y: Tensor, x: Tensor, M: number, accumulate: boolean, saved: LinearSaved, run: LinearRun): void {
    const be = this.be, sh = this.sh, r = sh.r, O = this.outFeatures, I = this.inFeatures;
    const ts = sh.view(saved.ts!, M * r);
    const drop = run.train && sh.p > 0;
    let xin = x;
    let mask: Tensor | null = null, xd: Tensor | null = null;
    if (drop) {
      mask = sh.view(sh.mask, M * I); xd = sh.view(sh.xd, M * I);
      sh.fillMask(mask, M * I, this.index, this.module.name, false, run);
      be.mulColumns(xd, x, mask, 1, M * I);
      xin = xd;
    }
    be.matmul(ts, xin, this.t.A, M, r, I, 'nt', false);
    be.scale(ts, sh.scale);
    if (!sh.dora) {
      be.linear(y, x, this.w, M, accumulate, true);
      be.matmul(y, ts, this.t.B, M, O, r, 'nn', true);
      return;
    }
    const pre = sh.view(saved.pre!, M * O);
    be.linear(pre, xin, this.w, M, false, true);
    be.matmul(pre, ts, this.t.B, M, O, r, 'nn', true);
    if (drop) {
      // the part of x dropout removed still goes through the base: y = (x − x̃)·Wᵀ + c⊙pre
      sh.fillMask(mask!, M * I, this.index, this.module.name, true, run);
      be.mulColumns(xd!, x, mask!, 1, M * I);
      be.linear(y, xd!, this.w, M, accumulate, true);
      be.mulColumns(y, pre, this.c!, M, O, true);
    } else {
      be.mulColumns(y, pre, this.c!, M, O, accumulate);
    }
  }

  backward(dx: Tensor, dy: Tensor, x: Tensor, M: number, saved: LinearSaved, run: LinearRun): void {
    const be = this.be, sh = this.sh, r = sh.r, I = this.inFeatures, t = this.t;
    const { g, dt } = this.branchBackward(dy, M, saved);
    if (!(run.train && sh.p > 0)) {
      be.matmul(t.dA, dt, x, r, I, M, 'tn', true);
      be.linearT(dx, g, this.w, M, false);
      be.matmul(dx, dt, t.A, M, I, r, 'nn', true);
      return;
    }
    const mask = sh.view(sh.mask, M * I), xd = sh.view(sh.xd, M * I);
    sh.fillMask(mask, M * I, this.index, this.module.name, false, run);
    be.mulColumns(xd, x, mask, 1, M * I);
    be.matmul(t.dA, dt, xd, r, I, M, 'tn', true);
    if (!sh.dora) {
      be.linearT(dx, dy, this.w, M, false);
      be.matmul(xd, dt, t.A, M, I, r, 'nn', false);
      be.mulColumns(dx, xd, mask, 1, M * I, true);
      return;
    }
    be.linearT(xd, g, this.w, M, false);
    be.matmul(xd, dt, t.A, M, I, r, 'nn', true);
    be.mulColumns(dx, xd, mask, 1, M * I, false);
    sh.fillMask(mask, M * I, this.index, this.module.name, true, run);
    be.linearT(xd, dy, this.w, M, false);
    be.mulColumns(dx, xd, mask, 1, M * I, true);
  }
}

/** The embedding lookup with a LoRA / DoRA adapter (the base table is an f32 tensor [V, D]). */
export class AdaptedEmbedding extends AdaptedBranch {
  readonly V: number;
  readonly D: number;

  constructor(be: Backend, readonly module: AdaptedModule, readonly table: Tensor, t: AdapterTensors,
    sh: AdapterShared, own: (n: number) => Tensor) {
    super(be, sh, t, module.outFeatures, own);
    this.V = module.inFeatures;
    this.D = module.outFeatures;
  }

  /** Record the base's column norms² (from the host values just written into the table). */
  setBaseNorms(values: ArrayLike<number>): void { if (this.wn2) this.be.write(this.wn2, embeddingColumnNorms2(values, this.V, this.D)); }

  protected normProducts(P: Tensor, G: Tensor): void {
    const r = this.sh.r;
    this.be.matmul(P, this.t.A, this.table, r, this.D, this.V, 'tn', false);
    this.be.matmul(G, this.t.A, this.t.A, r, r, this.V, 'tn', false);
  }

  /** y [M, D] holds the base lookup on entry and the adapted one on exit. */
  forward(y: Tensor, ids: Int32Array, skipId: number, saved: LinearSaved): void {
    const be = this.be, sh = this.sh, r = sh.r, M = ids.length, D = this.D;
    const ts = sh.view(saved.ts!, M * r);
    be.embedding(ts, be.tensorWeight(this.t.A, this.V, r), ids, skipId);
    be.scale(ts, sh.scale);
    if (!sh.dora) { be.matmul(y, ts, this.t.B, M, D, r, 'nn', true); return; }
    const pre = sh.view(saved.pre!, M * D);
    be.copy(pre, y, M * D);
    be.matmul(pre, ts, this.t.B, M, D, r, 'nn', true);
    be.mulColumns(y, pre, this.c!, M, D, false);
  }

  /** dy [M, D]: dL/d(lookup); the adapter's gradients +=. */
  backward(dy: Tensor, ids: Int32Array, skipId: number, saved: LinearSaved): void {
    const { dt } = this.branchBackward(dy, ids.length, saved);
    this.be.embeddingBackward(this.t.dA, dt, ids, this.sh.r, skipId);
  }
}
