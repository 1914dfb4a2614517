// Training kernels: the matmul seam (Gemm) and the forward-with-saves / backward pairs of every
// OpenELM op, llm.c style (explicit per-op backward, no autograd tape).
//
// All kernels take FloatArray so the same code runs in float32 (training) and float64 (the
// finite-difference tests). Sums are accumulated in JS numbers (f64) and rounded once on store.
// Backward kernels that produce parameter gradients always accumulate (+=), so gradient
// accumulation over micro-batches needs nothing special; input gradients say in their comment
// whether they overwrite or add.

export type FloatArray = Float32Array | Float64Array;

/** Σ(lse − logit[target]) and Σ lse² over a chunk of rows (see crossEntropyRows in loss.ts). */
export interface LossSums { ceSum: number; lseSqSum: number; }

/**
 * Every op of the trainable model besides the matmuls, on buffers from alloc()/allocStats(): the
 * plain-JS kernels below (JsTrainKernels, also the float64 path of the finite-difference tests)
 * or the threaded WASM ones (src/train/wasm-train.ts). Semantics are those of the functions of the
 * same name in this file; the statistics buffers (rstd, lse) belong to the implementation.
 */
export interface TrainKernels {
  readonly name: string;
  /** Storage for parameters, gradients and activations. */
  alloc(n: number): FloatArray;
  /** Storage for saved statistics (per-row rstd, attention logsumexp). */
  allocStats(n: number): FloatArray;
  /** Give back a buffer from alloc()/allocStats() (no-op where memory is garbage-collected). */
  free(x: FloatArray): void;
  fill0(x: FloatArray): void;
  /** dst[0..n) = src[0..n). */
  copy(dst: FloatArray, src: FloatArray, n: number): void;
  rmsnormForward(out: FloatArray, rstd: FloatArray, x: FloatArray, w: FloatArray, rows: number, dim: number, eps: number): void;
  rmsnormBackward(dx: FloatArray, dw: FloatArray, dy: FloatArray, x: FloatArray, w: FloatArray, rstd: FloatArray, rows: number, dim: number): void;
  qkNormRopeForward(qkv: FloatArray, rstd: FloatArray, rows: number, T: number, Q: number, Hkv: number, hd: number,
    qNorm: FloatArray | null, kNorm: FloatArray | null, cos: FloatArray, sin: FloatArray, eps: number): void;
  qkNormRopeBackward(dqkv: FloatArray, dqNorm: FloatArray | null, dkNorm: FloatArray | null, raw: FloatArray, rstd: FloatArray,
    rows: number, T: number, Q: number, Hkv: number, hd: number, qNorm: FloatArray | null, kNorm: FloatArray | null,
    cos: FloatArray, sin: FloatArray): void;
  attentionForward(out: FloatArray, lse: FloatArray, qkv: FloatArray, B: number, T: number, Q: number, Hkv: number, hd: number): void;
  /** `out` is the forward's attention output (some implementations use it for rowsum(dO ⊙ O)). */
  attentionBackward(dqkv: FloatArray, dout: FloatArray, qkv: FloatArray, out: FloatArray, lse: FloatArray,
    B: number, T: number, Q: number, Hkv: number, hd: number): void;
  swigluForward(g: FloatArray, u: FloatArray, rows: number, F: number): void;
  swigluBackward(du: FloatArray, dg: FloatArray, u: FloatArray, rows: number, F: number): void;
  siluForward(g: FloatArray, u: FloatArray, n: number): void;
  siluBackward(du: FloatArray, dg: FloatArray, u: FloatArray, n: number): void;
  embeddingForward(out: FloatArray, table: FloatArray, ids: Int32Array, D: number, skipId: number): void;
  embeddingBackward(dtable: FloatArray, dout: FloatArray, ids: Int32Array, D: number, skipId: number): void;
  /** crossEntropyRows of loss.ts: sums, and with gradScale ≠ 0 the logits OVERWRITTEN by their gradient. */
  crossEntropyRows(logits: FloatArray, targets: Int32Array, rows: number, V: number, zLoss: number, gradScale: number): LossSums;
}

/**
 * The matmul seam. Row-major, no strides: pass subarrays. `acc` adds into C instead of overwriting.
 * A WASM / native implementation replaces JsGemm without touching the model code.
 */
export interface Gemm {
  /**
   * The other training kernels working on the same memory as this GEMM, when it has them (the
   * WASM GEMM does); TrainableModel then allocates its buffers there and runs every op with them.
   */
  readonly kernels?: TrainKernels;
  /** C[M,N] (+)= A[M,K] · B[N,K]ᵀ  (forward of a linear layer: x · Wᵀ) */
  nt(C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number, acc: boolean): void;
  /** C[M,N] (+)= A[M,K] · B[K,N]   (input gradient: dy · W) */
  nn(C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number, acc: boolean): void;
  /** C[M,N] (+)= A[K,M]ᵀ · B[K,N]  (weight gradient: dyᵀ · x) */
  tn(C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number, acc: boolean): void;
}

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
export class JsGemm implements Gemm {
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
export function rmsnormForward(out: FloatArray, rstd: FloatArray, x: FloatArray, w: FloatArray,
  rows: number, dim: number, eps: number, roundMid: boolean): void {
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[o + i] * x[o + i];
    const inv = 1 / Math.sqrt(ss / dim + eps);
    rstd[r] = inv;
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
 * Forward, in place on `qkv` (which holds the raw projections on entry; the caller keeps a copy of
 * them for the backward). Row r of sequence position pos = r mod T. Saves the per-head rstd
 * [rows, Q+Hkv] when norms are given.
 */
export function qkNormRopeForward(qkv: FloatArray, rstd: FloatArray, rows: number, T: number, Q: number, Hkv: number,
  hd: number, qNorm: FloatArray | null, kNorm: FloatArray | null, cos: FloatArray, sin: FloatArray,
  eps: number, roundMid: boolean): void {
  const W = (Q + 2 * Hkv) * hd, half = hd / 2, NH = Q + Hkv;
  for (let r = 0; r < rows; r++) {
    const t = (r % T) * half;
    for (let h = 0; h < NH; h++) {
      const o = r * W + h * hd;
      const nw = h < Q ? qNorm : kNorm;
      if (nw) {
        let ss = 0;
        for (let i = 0; i < hd; i++) ss += qkv[o + i] * qkv[o + i];
        const inv = 1 / Math.sqrt(ss / hd + eps);
        rstd[r * NH + h] = inv;
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
  raw: FloatArray, rstd: FloatArray, rows: number, T: number, Q: number, Hkv: number, hd: number,
  qNorm: FloatArray | null, kNorm: FloatArray | null, cos: FloatArray, sin: FloatArray): void {
  const W = (Q + 2 * Hkv) * hd, half = hd / 2, NH = Q + Hkv;
  for (let r = 0; r < rows; r++) {
    const t = (r % T) * half;
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
// Embedding lookup. Ids equal to `skipId` (the padding / ignore id) read a zero row and send no
// gradient, so padded inputs may carry an id outside the vocabulary.

export function embeddingForward(out: FloatArray, table: FloatArray, ids: Int32Array, D: number, skipId: number): void {
  for (let r = 0; r < ids.length; r++) {
    const id = ids[r];
    if (id === skipId) { out.fill(0, r * D, r * D + D); continue; }
    const so = id * D, oo = r * D;
    for (let i = 0; i < D; i++) out[oo + i] = table[so + i];
  }
}

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
export function addInto(x: FloatArray, y: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) x[i] += y[i];
}

// ------------------------------------------------------------------------------------------------

/**
 * The plain-JS kernels as a TrainKernels (float32 or float64 storage). Statistics are kept in f64.
 * `roundMid` rounds RMSNorm's x·r to f32 before the weight multiply (the f32 path; see
 * rmsnormForward). The loss kernel is passed in to keep this file free of the loss module.
 */
export class JsTrainKernels implements TrainKernels {
  readonly name = 'js';
  constructor(readonly dtype: 'f32' | 'f64',
    private readonly ce: (logits: FloatArray, targets: Int32Array, rows: number, V: number, z: number, s: number) => LossSums) {}
  private get roundMid(): boolean { return this.dtype === 'f32'; }
  alloc(n: number): FloatArray { return this.dtype === 'f64' ? new Float64Array(n) : new Float32Array(n); }
  allocStats(n: number): FloatArray { return new Float64Array(n); }
  free(_x: FloatArray): void { /* garbage-collected */ }
  fill0(x: FloatArray): void { x.fill(0); }
  copy(dst: FloatArray, src: FloatArray, n: number): void { dst.set(src.length === n ? src : src.subarray(0, n)); }
  rmsnormForward(out: FloatArray, rstd: FloatArray, x: FloatArray, w: FloatArray, rows: number, dim: number, eps: number): void {
    rmsnormForward(out, rstd, x, w, rows, dim, eps, this.roundMid);
  }
  rmsnormBackward(dx: FloatArray, dw: FloatArray, dy: FloatArray, x: FloatArray, w: FloatArray, rstd: FloatArray, rows: number, dim: number): void {
    rmsnormBackward(dx, dw, dy, x, w, rstd, rows, dim);
  }
  qkNormRopeForward(qkv: FloatArray, rstd: FloatArray, rows: number, T: number, Q: number, Hkv: number, hd: number,
    qNorm: FloatArray | null, kNorm: FloatArray | null, cos: FloatArray, sin: FloatArray, eps: number): void {
    qkNormRopeForward(qkv, rstd, rows, T, Q, Hkv, hd, qNorm, kNorm, cos, sin, eps, this.roundMid);
  }
  qkNormRopeBackward(dqkv: FloatArray, dqNorm: FloatArray | null, dkNorm: FloatArray | null, raw: FloatArray, rstd: FloatArray,
    rows: number, T: number, Q: number, Hkv: number, hd: number, qNorm: FloatArray | null, kNorm: FloatArray | null,
    cos: FloatArray, sin: FloatArray): void {
    qkNormRopeBackward(dqkv, dqNorm, dkNorm, raw, rstd, rows, T, Q, Hkv, hd, qNorm, kNorm, cos, sin);
  }
  attentionForward(out: FloatArray, lse: FloatArray, qkv: FloatArray, B: number, T: number, Q: number, Hkv: number, hd: number): void {
    attentionForward(out, lse, qkv, B, T, Q, Hkv, hd);
  }
  attentionBackward(dqkv: FloatArray, dout: FloatArray, qkv: FloatArray, _out: FloatArray, lse: FloatArray,
    B: number, T: number, Q: number, Hkv: number, hd: number): void {
    attentionBackward(dqkv, dout, qkv, lse, B, T, Q, Hkv, hd);
  }
  swigluForward(g: FloatArray, u: FloatArray, rows: number, F: number): void { swigluForward(g, u, rows, F); }
  swigluBackward(du: FloatArray, dg: FloatArray, u: FloatArray, rows: number, F: number): void { swigluBackward(du, dg, u, rows, F); }
  siluForward(g: FloatArray, u: FloatArray, n: number): void { siluForward(g, u, n); }
  siluBackward(du: FloatArray, dg: FloatArray, u: FloatArray, n: number): void { siluBackward(du, dg, u, n); }
  embeddingForward(out: FloatArray, table: FloatArray, ids: Int32Array, D: number, skipId: number): void { embeddingForward(out, table, ids, D, skipId); }
  embeddingBackward(dtable: FloatArray, dout: FloatArray, ids: Int32Array, D: number, skipId: number): void { embeddingBackward(dtable, dout, ids, D, skipId); }
  crossEntropyRows(logits: FloatArray, targets: Int32Array, rows: number, V: number, zLoss: number, gradScale: number): LossSums {
    return this.ce(logits, targets, rows, V, zLoss, gradScale);
  }
}
