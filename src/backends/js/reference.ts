// The reference kernels: plain loops over typed arrays with f64 accumulation (JS numbers), one
// thread. They are the specification every other backend is tested against: the JS backend runs
// them as they are, and the finite-difference tests run them in float64.
//
// Every op of inference and training is here once, with its backward next to its forward. Sums are
// accumulated in JS numbers (f64) and rounded once on store. Backward kernels that produce
// parameter gradients always accumulate (+=), so gradient accumulation over micro-batches needs
// nothing special; input gradients say in their comment whether they overwrite or add.

import { OpenELMError } from '../../core/errors.js';
import type { AdamWStep, LossSums, MatmulLayout, MatmulPrecision, Weight } from '../backend.js';
import { roundToBf16 } from '../../core/dtype.js';
import { weightRowToF32 } from '../weight-format.js';
import { dropoutHash, dropoutThreshold, dropoutValues } from '../dropout.js';

export type FloatArray = Float32Array | Float64Array;

// ------------------------------------------------------------------------------------------------
// Products.

/** out[c, r] = a[r, c] for an a of rows × cols. */
export function transpose(out: FloatArray, a: FloatArray, rows: number, cols: number): void {
  const TB = 32;
  for (let r0 = 0; r0 < rows; r0 += TB) {
    const r1 = Math.min(rows, r0 + TB);
    for (let c0 = 0; c0 < cols; c0 += TB) {
      const c1 = Math.min(cols, c0 + TB);
      for (let r = r0; r < r1; r++) {
        const ro = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = a[ro + c];
      }
    }
  }
}

/**
 * Plain-JS GEMM. Everything reduces to the A·Bᵀ kernel (both operands K-contiguous), which V8 runs
 * best: a 4×4 register block, 16 f64 accumulators over the full K (one rounding per output, like
 * the inference backend's dot products), with B visited in panels of 64 rows so they stay in L2.
 * nn and tn transpose their operands into scratch first; that is O(n²) against O(n³) work.
 */
export class JsGemm {
  private s32a = new Float32Array(0); private s32b = new Float32Array(0);
  private s64a = new Float64Array(0); private s64b = new Float64Array(0);

  private scratch(like: FloatArray, n: number, which: 0 | 1): FloatArray {
    if (like instanceof Float64Array) {
      if (which === 0) { if (this.s64a.length < n) this.s64a = new Float64Array(n); return this.s64a.subarray(0, n); }
      if (this.s64b.length < n) this.s64b = new Float64Array(n); return this.s64b.subarray(0, n);
    }
    if (which === 0) { if (this.s32a.length < n) this.s32a = new Float32Array(n); return this.s32a.subarray(0, n); }
    if (this.s32b.length < n) this.s32b = new Float32Array(n); return this.s32b.subarray(0, n);
  }

  nt(C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number, acc: boolean): void {
    ntKernel(C, A, B, M, N, K, acc);
  }

  nn(C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number, acc: boolean): void {
    const Bt = this.scratch(B, N * K, 0);
    transpose(Bt, B, K, N);
    ntKernel(C, A, Bt, M, N, K, acc);
  }

  tn(C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number, acc: boolean): void {
    const At = this.scratch(A, M * K, 0), Bt = this.scratch(B, N * K, 1);
    transpose(At, A, K, M);
    transpose(Bt, B, K, N);
    ntKernel(C, At, Bt, M, N, K, acc);
  }

  /** Drop the transpose scratch (it grows to the largest operand seen). */
  release(): void {
    this.s32a = new Float32Array(0); this.s32b = new Float32Array(0);
    this.s64a = new Float64Array(0); this.s64b = new Float64Array(0);
  }
}

function ntKernel(C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number, acc: boolean): void {
  const M4 = M - (M % 4);
  const JB = 64;
  for (let jb = 0; jb < N; jb += JB) {
    const je = Math.min(N, jb + JB);
    const je4 = jb + ((je - jb) - ((je - jb) % 4));
    for (let i = 0; i < M4; i += 4) {
      const a0 = i * K, a1 = a0 + K, a2 = a1 + K, a3 = a2 + K;
      for (let j = jb; j < je4; j += 4) {
        const b0 = j * K, b1 = b0 + K, b2 = b1 + K, b3 = b2 + K;
        let c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        let c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        for (let k = 0; k < K; k++) {
          const x0 = A[a0 + k], x1 = A[a1 + k], x2 = A[a2 + k], x3 = A[a3 + k];
          const y0 = B[b0 + k], y1 = B[b1 + k], y2 = B[b2 + k], y3 = B[b3 + k];
          c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3;
          c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3;
          c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3;
          c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3;
        }
        let o = i * N + j;
        if (acc) {
          C[o] += c00; C[o + 1] += c01; C[o + 2] += c02; C[o + 3] += c03; o += N;
          C[o] += c10; C[o + 1] += c11; C[o + 2] += c12; C[o + 3] += c13; o += N;
          C[o] += c20; C[o + 1] += c21; C[o + 2] += c22; C[o + 3] += c23; o += N;
          C[o] += c30; C[o + 1] += c31; C[o + 2] += c32; C[o + 3] += c33;
        } else {
          C[o] = c00; C[o + 1] = c01; C[o + 2] = c02; C[o + 3] = c03; o += N;
          C[o] = c10; C[o + 1] = c11; C[o + 2] = c12; C[o + 3] = c13; o += N;
          C[o] = c20; C[o + 1] = c21; C[o + 2] = c22; C[o + 3] = c23; o += N;
          C[o] = c30; C[o + 1] = c31; C[o + 2] = c32; C[o + 3] = c33;
        }
      }
      // column tail of this panel
      for (let j = je4; j < je; j++) {
        const b0 = j * K;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let k = 0; k < K; k++) {
          const y = B[b0 + k];
          s0 += A[a0 + k] * y; s1 += A[a1 + k] * y; s2 += A[a2 + k] * y; s3 += A[a3 + k] * y;
        }
        const o = i * N + j;
        if (acc) { C[o] += s0; C[o + N] += s1; C[o + 2 * N] += s2; C[o + 3 * N] += s3; }
        else { C[o] = s0; C[o + N] = s1; C[o + 2 * N] = s2; C[o + 3 * N] = s3; }
      }
    }
  }
  // row tail
  for (let i = M4; i < M; i++) {
    const a0 = i * K;
    for (let j = 0; j < N; j++) {
      const b0 = j * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += A[a0 + k] * B[b0 + k];
      if (acc) C[i * N + j] += s; else C[i * N + j] = s;
    }
  }
}

// ------------------------------------------------------------------------------------------------
// RMSNorm over rows of `dim`: y = x·r·w with r = (mean(x²) + eps)^-1/2.

/**
 * Forward; saves r per row. `roundMid` rounds x·r to f32 before the weight multiply, exactly as the
 * inference backend (and PyTorch's `.type_as(x) * weight` in fp32) does; off for the f64 checks.
 */
export function rmsnormForward(out: FloatArray, rstd: FloatArray | null, x: FloatArray, w: FloatArray,
  rows: number, dim: number, eps: number, roundMid: boolean): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i] * x[o + i];
    const inv = 1 / Math.sqrt(ss / dim + eps);
    if (rstd) rstd[r] = inv;
    if (roundMid) for (let i = 0; i < dim; i++) out[o + i] = Math.fround(x[o + i] * inv) * w[i];
    else for (let i = 0; i < dim; i++) out[o + i] = x[o + i] * inv * w[i];
  }
}

/**
 * Backward. dx += r·(g − x̂·mean(g·x̂)) with g = w⊙dy, x̂ = x·r; dw += Σ_rows dy⊙x̂.
 * dx ACCUMULATES (the residual stream's gradient is already in it).
 */
export function rmsnormBackward(dx: FloatArray, dw: FloatArray, dy: FloatArray, x: FloatArray, w: FloatArray,
  rstd: FloatArray, rows: number, dim: number): void {
  for (let r = 0; r < rows; r++) rmsnormRowBackward(dx, dw, dy, x, w, rstd[r], r * dim, dim, true);
}

/**
 * Backward of one RMSNorm row (y = x·inv·w) at offset o: dw += dy·x̂, and the input gradient
 * inv·(dy·w − x·inv·mean(dy·w·x̂)) added into dx (accumulate) or written over it (dx may be dy).
 */
function rmsnormRowBackward(dx: FloatArray, dw: FloatArray, dy: FloatArray, x: FloatArray, w: FloatArray,
  inv: number, o: number, dim: number, accumulate: boolean): void {
  let dot = 0;
  for (let i = 0; i < dim; i++) {
    const xh = x[o + i] * inv, g = dy[o + i];
    dot += g * w[i] * xh;
    dw[i] += g * xh;
  }
  const m = dot / dim;
  if (accumulate) for (let i = 0; i < dim; i++) dx[o + i] += inv * (dy[o + i] * w[i] - x[o + i] * inv * m);
  else for (let i = 0; i < dim; i++) dx[o + i] = inv * (dy[o + i] * w[i] - x[o + i] * inv * m);
}

// ------------------------------------------------------------------------------------------------
// Per-head QK-norm + rotate-half RoPE on qkv rows laid out [Q·hd | Hkv·hd | Hkv·hd].

/**
 * Forward, in place on `qkv` (which holds the raw projections on entry; training keeps a copy of
 * them for the backward). Row r is at position pos[r]. Saves the per-head rstd [rows, Q+Hkv] when
 * rstd is given and norms are on.
 */
export function qkNormRopeForward(qkv: FloatArray, rstd: FloatArray | null, rows: number, pos: ArrayLike<number>, Q: number, Hkv: number,
  hd: number, qNorm: FloatArray | null, kNorm: FloatArray | null, cos: FloatArray, sin: FloatArray,
  eps: number, roundMid: boolean): void {
  const W = (Q + 2 * Hkv) * hd, half = hd / 2, NH = Q + Hkv;
  for (let r = 0; r < rows; r++) {
    const t = pos[r] * half;
    for (let h = 0; h < NH; h++) {
      const o = r * W + h * hd;
      const nw = h < Q ? qNorm : kNorm;
      if (nw) {
        let ss = 0;
        for (let i = 0; i < hd; i++) ss += qkv[o + i] * qkv[o + i];
        const inv = 1 / Math.sqrt(ss / hd + eps);
        if (rstd) rstd[r * NH + h] = inv;
        if (roundMid) for (let i = 0; i < hd; i++) qkv[o + i] = Math.fround(qkv[o + i] * inv) * nw[i];
        else for (let i = 0; i < hd; i++) qkv[o + i] = qkv[o + i] * inv * nw[i];
      }
      for (let j = 0; j < half; j++) {
        const a = qkv[o + j], b = qkv[o + j + half], c = cos[t + j], s = sin[t + j];
        qkv[o + j] = a * c - b * s;
        qkv[o + j + half] = b * c + a * s;
      }
    }
  }
}

/**
 * Backward, in place on `dqkv` (gradient w.r.t. the post-RoPE q/k on entry, w.r.t. the raw
 * projections on exit; the V part is left alone). RoPE is a rotation, so its backward rotates by
 * −θ. dqNorm/dkNorm accumulate.
 */
export function qkNormRopeBackward(dqkv: FloatArray, dqNorm: FloatArray | null, dkNorm: FloatArray | null,
  raw: FloatArray, rstd: FloatArray, rows: number, pos: ArrayLike<number>, Q: number, Hkv: number, hd: number,
  qNorm: FloatArray | null, kNorm: FloatArray | null, cos: FloatArray, sin: FloatArray): void {
  const W = (Q + 2 * Hkv) * hd, half = hd / 2, NH = Q + Hkv;
  for (let r = 0; r < rows; r++) {
    const t = pos[r] * half;
    for (let h = 0; h < NH; h++) {
      const o = r * W + h * hd;
      for (let j = 0; j < half; j++) {
        const dy1 = dqkv[o + j], dy2 = dqkv[o + j + half], c = cos[t + j], s = sin[t + j];
        dqkv[o + j] = dy1 * c + dy2 * s;
        dqkv[o + j + half] = dy2 * c - dy1 * s;
      }
      const nw = h < Q ? qNorm : kNorm;
      const dnw = h < Q ? dqNorm : dkNorm;
      if (nw && dnw) rmsnormRowBackward(dqkv, dnw, dqkv, raw, nw, rstd[r * NH + h], o, hd, false);
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Causal GQA attention over B sequences of T tokens, qkv rows [B·T, (Q+2Hkv)·hd], out [B·T, Q·hd].
// Query head h reads kv head floor(h / (Q/Hkv)). Scale 1/sqrt(hd).

/** Forward; saves the per-(b, h, i) logsumexp of the scaled scores in lse [B, Q, T]. */
export function attentionForward(out: FloatArray, lse: FloatArray, qkv: FloatArray, B: number, T: number,
  Q: number, Hkv: number, hd: number): void {
  const W = (Q + 2 * Hkv) * hd, G = Q / Hkv, scale = 1 / Math.sqrt(hd);
  const scores = new Float64Array(T);
  const acc = new Float64Array(hd);
  for (let b = 0; b < B; b++) {
    const base = b * T;
    for (let h = 0; h < Q; h++) {
      const ko = (Q + Math.floor(h / G)) * hd, vo = ko + Hkv * hd;
      for (let i = 0; i < T; i++) {
        const qo = (base + i) * W + h * hd;
        let mx = -Infinity;
        for (let j = 0; j <= i; j++) {
          const kr = (base + j) * W + ko;
          let d = 0;
          for (let e = 0; e < hd; e++) d += qkv[qo + e] * qkv[kr + e];
          d *= scale;
          scores[j] = d;
          if (d > mx) mx = d;
        }
        let sum = 0;
        acc.fill(0);
        for (let j = 0; j <= i; j++) {
          const p = Math.exp(scores[j] - mx);
          sum += p;
          const vr = (base + j) * W + vo;
          for (let e = 0; e < hd; e++) acc[e] += p * qkv[vr + e];
        }
        const oo = (base + i) * Q * hd + h * hd;
        for (let e = 0; e < hd; e++) out[oo + e] = acc[e] / sum;
        lse[(b * Q + h) * T + i] = mx + Math.log(sum);
      }
    }
  }
}

/**
 * Backward. Recomputes the probabilities from q, k and the saved lse (flash-attention style, so no
 * T×T matrix is kept). dqkv is OVERWRITTEN for all three parts; a kv head's gradient sums over the
 * G query heads that read it.
 */
export function attentionBackward(dqkv: FloatArray, dout: FloatArray, qkv: FloatArray, lse: FloatArray,
  B: number, T: number, Q: number, Hkv: number, hd: number): void {
  const W = (Q + 2 * Hkv) * hd, G = Q / Hkv, scale = 1 / Math.sqrt(hd);
  dqkv.fill(0, 0, B * T * W);
  const p = new Float64Array(T), dp = new Float64Array(T);
  const dq = new Float64Array(hd);
  for (let b = 0; b < B; b++) {
    const base = b * T;
    for (let h = 0; h < Q; h++) {
      const ko = (Q + Math.floor(h / G)) * hd, vo = ko + Hkv * hd;
      for (let i = 0; i < T; i++) {
        const qo = (base + i) * W + h * hd;
        const go = (base + i) * Q * hd + h * hd;
        const l = lse[(b * Q + h) * T + i];
        let dsum = 0;
        for (let j = 0; j <= i; j++) {
          const kr = (base + j) * W + ko, vr = (base + j) * W + vo;
          let d = 0, g = 0;
          for (let e = 0; e < hd; e++) { d += qkv[qo + e] * qkv[kr + e]; g += dout[go + e] * qkv[vr + e]; }
          const pj = Math.exp(d * scale - l);
          p[j] = pj; dp[j] = g;
          dsum += pj * g;
        }
        dq.fill(0);
        for (let j = 0; j <= i; j++) {
          const kr = (base + j) * W + ko, vr = (base + j) * W + vo;
          const pj = p[j];
          const ds = pj * (dp[j] - dsum) * scale;
          for (let e = 0; e < hd; e++) {
            dq[e] += ds * qkv[kr + e];
            dqkv[kr + e] += ds * qkv[qo + e];
            dqkv[vr + e] += pj * dout[go + e];
          }
        }
        for (let e = 0; e < hd; e++) dqkv[qo + e] = dq[e];
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------
// SwiGLU: u rows [gate(F) | up(F)], g = silu(gate) · up. Without GLU: g = silu(u).

export function swigluForward(g: FloatArray, u: FloatArray, rows: number, F: number): void {
  for (let r = 0; r < rows; r++) {
    const uo = r * 2 * F, oo = r * F;
    for (let j = 0; j < F; j++) {
      const a = u[uo + j];
      g[oo + j] = (a / (1 + Math.exp(-a))) * u[uo + F + j];
    }
  }
}

/** du OVERWRITTEN: d gate = dg·up·silu'(gate), d up = dg·silu(gate); silu'(a) = σ(a)(1 + a(1−σ(a))). */
export function swigluBackward(du: FloatArray, dg: FloatArray, u: FloatArray, rows: number, F: number): void {
  for (let r = 0; r < rows; r++) {
    const uo = r * 2 * F, oo = r * F;
    for (let j = 0; j < F; j++) {
      const a = u[uo + j], b = u[uo + F + j], d = dg[oo + j];
      const s = 1 / (1 + Math.exp(-a));
      du[uo + j] = d * b * s * (1 + a * (1 - s));
      du[uo + F + j] = d * a * s;
    }
  }
}

export function siluForward(g: FloatArray, u: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) { const a = u[i]; g[i] = a / (1 + Math.exp(-a)); }
}

/** du OVERWRITTEN. */
export function siluBackward(du: FloatArray, dg: FloatArray, u: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) {
    const a = u[i], s = 1 / (1 + Math.exp(-a));
    du[i] = dg[i] * s * (1 + a * (1 - s));
  }
}

// ------------------------------------------------------------------------------------------------
// Embedding backward (the lookup is `embedding` below). Ids equal to `skipId` (the padding / ignore
// id) read a zero row and send no gradient, so padded inputs may carry an id outside the vocabulary.

/** dtable rows ACCUMULATE (a token used twice gets both contributions). */
export function embeddingBackward(dtable: FloatArray, dout: FloatArray, ids: Int32Array, D: number, skipId: number): void {
  for (let r = 0; r < ids.length; r++) {
    const id = ids[r];
    if (id === skipId) continue;
    const so = id * D, oo = r * D;
    for (let i = 0; i < D; i++) dtable[so + i] += dout[oo + i];
  }
}

/** x[i] += y[i]. */
export function add(x: FloatArray, y: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) x[i] += y[i];
}

// ------------------------------------------------------------------------------------------------
// Inference ops over a per-sequence KV cache.

/** out[M,N] (+)= x[M,K] · Wᵀ for a weight of any storage dtype (rows decoded to f32 first). */
export function linear(out: FloatArray, x: FloatArray, w: Weight, M: number, accumulate: boolean): void {
  const N = w.rows, K = w.cols;
  const f32 = w.dtype === 'f32' ? (w.data as Float32Array) : null;
  const row = f32 ? null : new Float32Array(K);
  for (let n = 0; n < N; n++) {
    let wr: Float32Array, wo: number;
    if (f32) { wr = f32; wo = n * K; } else { weightRowToF32(w, n, row!); wr = row!; wo = 0; }
    for (let m = 0; m < M; m++) {
      const xo = m * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += x[xo + k] * wr[wo + k];
      out[m * N + n] = accumulate ? out[m * N + n] + s : s;
    }
  }
}

/** Copy the k and v heads of S qkv rows into [Hkv, cap, hd] caches at positions P..P+S-1. */
export function storeKV(kCache: FloatArray, vCache: FloatArray, qkv: FloatArray, S: number, P: number,
  Q: number, Hkv: number, hd: number, cap: number): void {
  const W = (Q + 2 * Hkv) * hd;
  for (let s = 0; s < S; s++) {
    for (let h = 0; h < Hkv; h++) {
      const dst = (h * cap + P + s) * hd;
      const k = s * W + (Q + h) * hd;
      const v = s * W + (Q + Hkv + h) * hd;
      kCache.set(qkv.subarray(k, k + hd), dst);
      vCache.set(qkv.subarray(v, v + hd), dst);
    }
  }
}

/** Causal GQA attention of S new queries over a cache holding P + S keys (see Backend.attention). */
export function attention(out: FloatArray, qkv: FloatArray, kCache: FloatArray, vCache: FloatArray, S: number,
  P: number, Q: number, Hkv: number, hd: number, cap: number): void {
  const W = (Q + 2 * Hkv) * hd, G = Q / Hkv, scale = 1 / Math.sqrt(hd);
  const scores = new Float64Array(P + S);
  const acc = new Float64Array(hd);
  for (let i = 0; i < S; i++) {
    const nk = P + i + 1;
    for (let h = 0; h < Q; h++) {
      const qo = i * W + h * hd;
      const kb = Math.floor(h / G) * cap * hd;
      let mx = -Infinity;
      for (let j = 0; j < nk; j++) {
        let d = 0;
        const ko = kb + j * hd;
        for (let e = 0; e < hd; e++) d += qkv[qo + e] * kCache[ko + e];
        d *= scale;
        scores[j] = d;
        if (d > mx) mx = d;
      }
      let sum = 0;
      acc.fill(0);
      for (let j = 0; j < nk; j++) {
        const p = Math.exp(scores[j] - mx);
        sum += p;
        const vo = kb + j * hd;
        for (let e = 0; e < hd; e++) acc[e] += p * vCache[vo + e];
      }
      const oo = i * Q * hd + h * hd;
      for (let e = 0; e < hd; e++) out[oo + e] = acc[e] / sum;
    }
  }
}

/**
 * out[r] = table row ids[r], dequantized; an id equal to skipId (padding) reads a zero row. An f32
 * table is read directly, so a float64 table (the finite-difference tests) keeps its precision.
 */
export function embedding(out: FloatArray, table: Weight, ids: Int32Array, skipId?: number): void {
  const D = table.cols;
  const f32 = table.dtype === 'f32' ? (table.data as FloatArray) : null;
  const row = f32 ? null : new Float32Array(D);
  for (let r = 0; r < ids.length; r++) {
    const id = ids[r];
    if (id === skipId) { out.fill(0, r * D, r * D + D); continue; }
    if (!(id >= 0 && id < table.rows)) throw new OpenELMError('usage', `token id ${id} is outside the embedding table (${table.rows} rows)`);
    if (f32) { for (let i = 0; i < D; i++) out[r * D + i] = f32[id * D + i]; continue; }
    weightRowToF32(table, id, row!);
    out.set(row!, r * D);
  }
}

/** Index of the largest value of each row (the first on ties). */
export function argmax(x: FloatArray, rows: number, V: number): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0, bv = -Infinity;
    for (let j = 0; j < V; j++) { const v = x[r * V + j]; if (v > bv) { bv = v; best = j; } }
    out[r] = best;
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Cross-entropy over the vocabulary with CoreNet's optional z-loss (train/loss.ts has the model-level
// semantics): per row lse = max-subtracted logsumexp, ce = lse − logit[target].

/**
 * For `rows` logit rows with valid targets: Σ(lse − logit[t]) and Σ lse²; when gradScale ≠ 0 the
 * logits are OVERWRITTEN with d/dlogits of gradScale · Σ_rows [(lse − logit[t]) + zLoss · lse²]:
 * gradScale · (softmax · (1 + 2·zLoss·lse) − onehot(t)), times rowScale[r] when given.
 */
export function crossEntropyRows(logits: FloatArray, targets: ArrayLike<number>, rows: number, V: number,
  zLoss: number, gradScale: number, rowScale?: ArrayLike<number>): LossSums {
  let ceSum = 0, lseSqSum = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * V, t = targets[r];
    if (!(t >= 0 && t < V) || !Number.isInteger(t)) {
      throw new OpenELMError('usage', `target id ${t} is outside the vocabulary [0, ${V}) and is not the ignore index`);
    }
    const lse = rowLse(logits, o, V);
    ceSum += lse - logits[o + t];
    lseSqSum += lse * lse;
    const gs = rowScale ? gradScale * rowScale[r] : gradScale;
    if (gradScale !== 0) {
      const k = gs * (1 + 2 * zLoss * lse);
      for (let j = 0; j < V; j++) logits[o + j] = k * Math.exp(logits[o + j] - lse);
      logits[o + t] -= gs;
    }
  }
  return { ceSum, lseSqSum };
}

/** Per row: [lse, logit[target]] (so log p(target) = logit − lse). */
export function rowLogprobs(logits: FloatArray, targets: ArrayLike<number>, rows: number, V: number): Float64Array {
  const out = new Float64Array(rows * 2);
  for (let r = 0; r < rows; r++) {
    const t = targets[r];
    if (!(t >= 0 && t < V) || !Number.isInteger(t)) throw new OpenELMError('usage', `target id ${t} is outside the vocabulary [0, ${V})`);
    out[2 * r] = rowLse(logits, r * V, V);
    out[2 * r + 1] = logits[r * V + t];
  }
  return out;
}

function rowLse(x: FloatArray, o: number, V: number): number {
  let mx = -Infinity;
  for (let j = 0; j < V; j++) if (x[o + j] > mx) mx = x[o + j];
  let sum = 0;
  for (let j = 0; j < V; j++) sum += Math.exp(x[o + j] - mx);
  return mx + Math.log(sum);
}

// ------------------------------------------------------------------------------------------------
// Optimizer pieces (train/adamw.ts, train/clip.ts).

/** One AdamW update of n elements, PyTorch's single-tensor formula evaluated in f64 per element. */
export function adamw(p: FloatArray, g: FloatArray, m: FloatArray, v: FloatArray, n: number, s: AdamWStep): void {
  const { b1, b2, stepSize, bc2Sqrt, eps, keep } = s;
  for (let i = 0; i < n; i++) {
    const gi = g[i];
    const mi = b1 * m[i] + (1 - b1) * gi;
    const vi = b2 * v[i] + (1 - b2) * gi * gi;
    m[i] = mi; v[i] = vi;
    p[i] = p[i] * keep - stepSize * mi / (Math.sqrt(vi) / bc2Sqrt + eps);
  }
}

/** Σ x², accumulated in f64 in index order (onto `s`: a sum continued over the next tensor). */
export function sumSquares(x: FloatArray, s = 0): number {
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return s;
}

/** x[i] *= coef (multiply in f64, as JavaScript does). */
export function scale(x: FloatArray, coef: number): void {
  for (let i = 0; i < x.length; i++) x[i] *= coef;
}

// ------------------------------------------------------------------------------------------------
// Row moves.

export function gatherRows(dst: FloatArray, src: FloatArray, rows: Int32Array, width: number): void {
  for (let i = 0; i < rows.length; i++) dst.set(src.subarray(rows[i] * width, rows[i] * width + width), i * width);
}

export function scatterRows(dst: FloatArray, src: FloatArray, rows: Int32Array, width: number): void {
  for (let i = 0; i < rows.length; i++) dst.set(src.subarray(i * width, i * width + width), rows[i] * width);
}

/** matmul of the Backend interface on the reference GEMM ('bf16': on copies of A and B rounded to bf16). */
export function matmul(g: JsGemm, C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number,
  layout: MatmulLayout, acc: boolean, precision: MatmulPrecision = 'fp32'): void {
  if (precision === 'bf16') {
    const a = new Float64Array(M * K), b = new Float64Array(N * K);
    roundToBf16(a, A, M * K); roundToBf16(b, B, N * K);
    A = a; B = b;
  }
  if (layout === 'nt') g.nt(C, A, B, M, N, K, acc);
  else if (layout === 'nn') g.nn(C, A, B, M, N, K, acc);
  else g.tn(C, A, B, M, N, K, acc);
}

// ------------------------------------------------------------------------------------------------
// Adapter ops (LoRA / DoRA on a frozen base; model/adapted.ts).

/** out[M,K] (+)= dy[M,N] · W for a weight [N, K] of any dtype; sums over n in order in f64. */
export function linearT(g: JsGemm, out: FloatArray, dy: FloatArray, w: Weight, M: number, accumulate: boolean): void {
  const N = w.rows, K = w.cols;
  let W: FloatArray;
  if (w.dtype === 'f32') W = w.data as Float32Array;
  else {
    const dec = new Float32Array(N * K), row = new Float32Array(K);
    for (let n = 0; n < N; n++) { weightRowToF32(w, n, row); dec.set(row, n * K); }
    W = dec;
  }
  g.nn(out, dy, W, M, K, N, accumulate);
}

/** out[r·cols + j] (+)= x[r·cols + j] · s[j]. */
export function mulColumns(out: FloatArray, x: FloatArray, s: FloatArray, rows: number, cols: number, accumulate: boolean): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    if (accumulate) for (let j = 0; j < cols; j++) out[o + j] += x[o + j] * s[j];
    else for (let j = 0; j < cols; j++) out[o + j] = x[o + j] * s[j];
  }
}

/** out[j] (+)= Σ_r a[r·cols + j] · b[r·cols + j], summed over rows in order in f64. */
export function columnDot(out: FloatArray, a: FloatArray, b: FloatArray, rows: number, cols: number, accumulate: boolean): void {
  const acc = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let j = 0; j < cols; j++) acc[j] += a[o + j] * b[o + j];
  }
  for (let j = 0; j < cols; j++) out[j] = accumulate ? out[j] + acc[j] : acc[j];
}

/** Dropout multipliers from the integer hash of backends/dropout.ts. */
export function dropoutMask(out: FloatArray, n: number, p: number, seed: number, complement: boolean): void {
  const t = dropoutThreshold(p), { kept, dropped } = dropoutValues(p, complement);
  for (let i = 0; i < n; i++) out[i] = dropoutHash(seed, i) >= t ? kept : dropped;
}

/** invN = 1 / sqrt(base2 + coef·q), c = m · invN, in f64. */
export function doraScale(c: FloatArray, invN: FloatArray, m: FloatArray, base2: FloatArray, q: FloatArray, n: number, coef: number): void {
  for (let j = 0; j < n; j++) {
    const inv = 1 / Math.sqrt(base2[j] + coef * q[j]);
    invN[j] = inv;
    c[j] = m[j] * inv;
  }
}
