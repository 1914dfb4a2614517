// The adapted modules' forward and backward in plain float64 loops: the executable statement of
// PEFT's math that the backend kernels are tested against. Nothing here is fast.
//
// Linear, input x [M, in], x̃ = dropout(x) (x̃ = x without dropout), s = scale, t = x̃·Aᵀ [M, r]:
//   LoRA  y = x·Wᵀ + s·t·Bᵀ
//   DoRA  c = m / n with n = ||W + s·B·A|| per output row, held constant in backward (detached);
//         y = x·Wᵀ + (c − 1)⊙(x̃·Wᵀ) + c⊙(s·t·Bᵀ)
//         (without dropout this is c⊙(x·Wᵀ + s·t·Bᵀ); with dropout PEFT recomputes the base
//          product on the dropped input for the correction term, and so do we)
// Embedding (no dropout, ever), a_i = A[:, id_i] [r]:
//   LoRA  y_i = W[id_i] + s·B·a_i
//   DoRA  c = m / n with n[d] = ||(W + s·(B·A)ᵀ)[:, d]|| over the vocabulary; y_i = c⊙(W[id_i] + s·B·a_i)
// Ids < 0 (padding) embed as zeros and take no gradient.

import { adapterScale, doraNorms, type AdapterSettings, type ModuleAdapter } from './adapter.js';

export interface ModuleGrads { dA: Float64Array; dB: Float64Array; dMagnitude?: Float64Array; }

export interface LinearSaved { xd: Float64Array; t: Float64Array; baseD?: Float64Array; loraOut?: Float64Array; M: number; }

/** y = x·Wᵀ for x [M, I], W [O, I]. */
function matNT(x: ArrayLike<number>, W: ArrayLike<number>, M: number, O: number, I: number): Float64Array {
  const y = new Float64Array(M * O);
  for (let i = 0; i < M; i++) for (let o = 0; o < O; o++) {
    let s = 0;
    for (let k = 0; k < I; k++) s += x[i * I + k] * W[o * I + k];
    y[i * O + o] = s;
  }
  return y;
}

/** A module's adapter with its scale and, for DoRA, the detached norms (per output row of a linear, per model dimension of the embedding). */
class AdaptedRef {
  readonly scale: number;
  readonly dora: boolean;
  /** DoRA: the detached norms n and c = m / n. */
  readonly n?: Float64Array;
  readonly c?: Float64Array;
  constructor(readonly m: ModuleAdapter, readonly W: ArrayLike<number>, s: Pick<AdapterSettings, 'r' | 'alpha' | 'rslora' | 'type'>) {
    this.scale = adapterScale(s);
    this.dora = s.type === 'dora';
    if (this.dora) {
      this.n = doraNorms(m, W, this.scale);
      this.c = this.n.map((v, o) => m.magnitude![o] / v);
    }
  }

  get r(): number { return this.m.A.length / this.m.module.inFeatures; }
}

export class AdaptedLinearRef extends AdaptedRef {

  /** keep: 0/1 per input element ([M, in]); dropout p scales kept values by 1/(1 − p). */
  forward(x: ArrayLike<number>, M: number, keep?: ArrayLike<number>, p = 0): { y: Float64Array; saved: LinearSaved } {
    const { inFeatures: I, outFeatures: O } = this.m.module, r = this.r, s = this.scale;
    const xd = new Float64Array(M * I);
    for (let j = 0; j < M * I; j++) xd[j] = keep ? (keep[j] ? x[j] / (1 - p) : 0) : x[j];
    const t = matNT(xd, this.m.A, M, r, I);               // [M, r]
    const lora = matNT(t, this.m.B, M, O, r);             // [M, O] (unscaled)
    const base = matNT(x, this.W, M, O, I);
    const y = new Float64Array(M * O);
    if (!this.dora) {
      for (let j = 0; j < M * O; j++) y[j] = base[j] + s * lora[j];
      return { y, saved: { xd, t, M } };
    }
    const c = this.c!;
    const baseD = keep ? matNT(xd, this.W, M, O, I) : base;
    for (let i = 0; i < M; i++) for (let o = 0; o < O; o++) {
      const j = i * O + o;
      y[j] = base[j] + (c[o] - 1) * baseD[j] + c[o] * s * lora[j];
    }
    return { y, saved: { xd, t, baseD, loraOut: lora, M } };
  }

  backward(sv: LinearSaved, dy: ArrayLike<number>, keep?: ArrayLike<number>, p = 0): ModuleGrads & { dx: Float64Array } {
    const { inFeatures: I, outFeatures: O } = this.m.module, r = this.r, s = this.scale, M = sv.M;
    const A = this.m.A, B = this.m.B, W = this.W;
    // g: the gradient reaching the low-rank branch's output (c⊙dy for DoRA).
    const g = new Float64Array(M * O);
    for (let i = 0; i < M; i++) for (let o = 0; o < O; o++) g[i * O + o] = this.dora ? this.c![o] * dy[i * O + o] : dy[i * O + o];
    const dB = new Float64Array(O * r);
    for (let o = 0; o < O; o++) for (let k = 0; k < r; k++) {
      let acc = 0;
      for (let i = 0; i < M; i++) acc += g[i * O + o] * sv.t[i * r + k];
      dB[o * r + k] = s * acc;
    }
    const dt = new Float64Array(M * r);
    for (let i = 0; i < M; i++) for (let k = 0; k < r; k++) {
      let acc = 0;
      for (let o = 0; o < O; o++) acc += g[i * O + o] * B[o * r + k];
      dt[i * r + k] = s * acc;
    }
    const dA = new Float64Array(r * I);
    for (let k = 0; k < r; k++) for (let q = 0; q < I; q++) {
      let acc = 0;
      for (let i = 0; i < M; i++) acc += dt[i * r + k] * sv.xd[i * I + q];
      dA[k * I + q] = acc;
    }
    // dx̃ = dt·A (+ ((c − 1)⊙dy)·W for DoRA); dx = dy·W + dropout'(dx̃).
    const dxd = new Float64Array(M * I);
    for (let i = 0; i < M; i++) for (let q = 0; q < I; q++) {
      let acc = 0;
      for (let k = 0; k < r; k++) acc += dt[i * r + k] * A[k * I + q];
      if (this.dora) for (let o = 0; o < O; o++) acc += (this.c![o] - 1) * dy[i * O + o] * W[o * I + q];
      dxd[i * I + q] = acc;
    }
    const dx = new Float64Array(M * I);
    for (let i = 0; i < M; i++) for (let q = 0; q < I; q++) {
      let acc = 0;
      for (let o = 0; o < O; o++) acc += dy[i * O + o] * W[o * I + q];
      const j = i * I + q;
      dx[j] = acc + (keep ? (keep[j] ? dxd[j] / (1 - p) : 0) : dxd[j]);
    }
    if (!this.dora) return { dA, dB, dx };
    // dm[o] = Σ_i dy·(x̃·Wᵀ + s·t·Bᵀ)[i, o] / n[o]  (c = m / n, n constant)
    const dMagnitude = new Float64Array(O);
    for (let o = 0; o < O; o++) {
      let acc = 0;
      for (let i = 0; i < M; i++) acc += dy[i * O + o] * (sv.baseD![i * O + o] + s * sv.loraOut![i * O + o]);
      dMagnitude[o] = acc / this.n![o];
    }
    return { dA, dB, dMagnitude, dx };
  }
}

export class AdaptedEmbeddingRef extends AdaptedRef {

  /** The adapted lookup [M, dim] and, per row, the unscaled base + s·B·a (what DoRA's gradient needs). */
  forward(ids: ArrayLike<number>): { y: Float64Array; pre: Float64Array } {
    const { inFeatures: V, outFeatures: D } = this.m.module, r = this.r, s = this.scale;
    const M = ids.length, y = new Float64Array(M * D), pre = new Float64Array(M * D);
    for (let i = 0; i < M; i++) {
      const id = ids[i];
      if (id < 0) continue;
      for (let d = 0; d < D; d++) {
        let acc = 0;
        for (let k = 0; k < r; k++) acc += this.m.B[d * r + k] * this.m.A[k * V + id];
        const v = this.W[id * D + d] + s * acc;
        pre[i * D + d] = v;
        y[i * D + d] = this.dora ? this.c![d] * v : v;
      }
    }
    return { y, pre };
  }

  backward(ids: ArrayLike<number>, pre: Float64Array, dy: ArrayLike<number>): ModuleGrads {
    const { inFeatures: V, outFeatures: D } = this.m.module, r = this.r, s = this.scale;
    const dA = new Float64Array(r * V), dB = new Float64Array(D * r);
    const dMagnitude = this.dora ? new Float64Array(D) : undefined;
    const g = new Float64Array(D);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id < 0) continue;
      for (let d = 0; d < D; d++) {
        g[d] = this.dora ? this.c![d] * dy[i * D + d] : dy[i * D + d];
        if (dMagnitude) dMagnitude[d] += dy[i * D + d] * pre[i * D + d] / this.n![d];
      }
      for (let k = 0; k < r; k++) {
        const a = this.m.A[k * V + id];
        let acc = 0;
        for (let d = 0; d < D; d++) { dB[d * r + k] += s * g[d] * a; acc += this.m.B[d * r + k] * g[d]; }
        dA[k * V + id] += s * acc;
      }
    }
    return dMagnitude ? { dA, dB, dMagnitude } : { dA, dB };
  }
}
