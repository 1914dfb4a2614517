// The reference backend: plain loops over typed arrays, f64 accumulation (JS numbers), one thread.
// It is the specification the fast backends are tested against, and the fallback that runs anywhere.

import type { Backend, Weight, WeightDType } from '../backend.js';
import { allocWeightStorage, weightRowToF32 } from '../weight-format.js';

export class JsBackend implements Backend {
  readonly name = 'js';
  readonly threads = 1;

  alloc(n: number): Float32Array { return new Float32Array(n); }
  allocWeight(dtype: WeightDType, rows: number, cols: number): Weight { return allocWeightStorage(dtype, rows, cols); }
  prepareWeight(): void { /* nothing to repack */ }
  dispose(): void { /* nothing held */ }

  linear(out: Float32Array, x: Float32Array, w: Weight, M: number, accumulate = false): void {
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

  rmsnorm(out: Float32Array, x: Float32Array, w: Float32Array, rows: number, dim: number, eps: number): void {
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let ss = 0;
      for (let i = 0; i < dim; i++) ss += x[o + i] * x[o + i];
      const inv = 1 / Math.sqrt(ss / dim + eps);
      for (let i = 0; i < dim; i++) out[o + i] = Math.fround(x[o + i] * inv) * w[i];
    }
  }

  qkNormRope(qkv: Float32Array, rows: number, pos: Int32Array, Q: number, Hkv: number, hd: number,
    qNorm: Float32Array | null, kNorm: Float32Array | null, cos: Float32Array, sin: Float32Array, eps: number): void {
    const W = (Q + 2 * Hkv) * hd, half = hd / 2;
    for (let r = 0; r < rows; r++) {
      const t = pos[r] * half;
      for (let h = 0; h < Q + Hkv; h++) {
        const o = r * W + h * hd;
        const nw = h < Q ? qNorm : kNorm;
        if (nw) {
          let ss = 0;
          for (let i = 0; i < hd; i++) ss += qkv[o + i] * qkv[o + i];
          const inv = 1 / Math.sqrt(ss / hd + eps);
          for (let i = 0; i < hd; i++) qkv[o + i] = Math.fround(qkv[o + i] * inv) * nw[i];
        }
        for (let j = 0; j < half; j++) {
          const a = qkv[o + j], b = qkv[o + j + half], c = cos[t + j], s = sin[t + j];
          qkv[o + j] = a * c - b * s;
          qkv[o + j + half] = b * c + a * s;
        }
      }
    }
  }

  storeKV(kCache: Float32Array, vCache: Float32Array, qkv: Float32Array, S: number, P: number,
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

  attention(out: Float32Array, qkv: Float32Array, kCache: Float32Array, vCache: Float32Array, S: number,
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

  swiglu(out: Float32Array, u: Float32Array, rows: number, F: number): void {
    for (let r = 0; r < rows; r++) {
      const uo = r * 2 * F, oo = r * F;
      for (let j = 0; j < F; j++) {
        const a = u[uo + j];
        out[oo + j] = (a / (1 + Math.exp(-a))) * u[uo + F + j];
      }
    }
  }

  silu(out: Float32Array, u: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) { const a = u[i]; out[i] = a / (1 + Math.exp(-a)); }
  }

  addInPlace(x: Float32Array, y: Float32Array, n: number): void {
    for (let i = 0; i < n; i++) x[i] += y[i];
  }

  embedding(out: Float32Array, table: Weight, ids: Int32Array): void {
    const D = table.cols;
    const row = new Float32Array(D);
    for (let r = 0; r < ids.length; r++) {
      weightRowToF32(table, ids[r], row);
      out.set(row, r * D);
    }
  }
}
