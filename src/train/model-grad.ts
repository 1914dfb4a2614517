// The trainable OpenELM: one flat parameter buffer and one flat gradient buffer laid out by
// paramLayout, a forward pass that saves what the backward needs, and an explicit per-layer
// backward (llm.c style, no tape). The forward computes the same function as src/model/openelm.ts
// (same op order and f32 rounding points), with plain causal attention over T and no KV cache.
//
// Shapes: B sequences of T tokens, M = B·T rows; per layer Q query heads, Hkv kv heads, F FFN width.
// Per layer the forward keeps: the block input x, norm outputs and their 1/rms, the raw and the
// normed+rotated qkv, attention output and per-row logsumexp (not the T×T probabilities), the
// post-attention residual h, and the proj_1 output u. With `recompute` only x is kept and the
// block is re-run just before its backward. Logits are never held for all rows: the head and the
// loss run fused over chunks of valid rows, forward and backward together.

import { OpenELMError } from '../core/errors.js';
import type { Backend } from '../backends/backend.js';
import type { OpenELMConfig } from '../model/config.js';
import { paramLayout, weightsFromFlat, type ParamLayout } from '../model/layout.js';
import type { ModelWeights } from '../model/openelm.js';
import {
  JsGemm, attentionBackward, attentionForward, embeddingBackward, embeddingForward, qkNormRopeBackward,
  qkNormRopeForward, rmsnormBackward, rmsnormForward, siluBackward, siluForward, swigluBackward, swigluForward,
  type FloatArray, type Gemm,
} from './kernels.js';
import { DEFAULT_IGNORE_INDEX, countValid, crossEntropyRows, zLossCoefficient } from './loss.js';

export interface TrainableModelOptions {
  /** Storage of params, grads and activations. 'f64' exists for the finite-difference tests. */
  dtype?: 'f32' | 'f64';
  /** Keep only each block's input and recompute the block in backward (activation checkpointing). */
  recompute?: boolean;
  /** The matmul implementation (default: plain JS). */
  gemm?: Gemm;
  /** Rows of logits materialised at once by the fused head + loss (memory: rows × vocab). */
  headChunkRows?: number;
}

export interface ForwardBackwardOptions {
  /** Targets equal to this are skipped; inputs equal to it embed as zeros. Default -100. */
  ignoreIndex?: number;
  /** z-loss coefficient; true means CoreNet's 1e-4. Default off. */
  zLoss?: number | boolean;
  /**
   * Multiplies this micro-batch's gradient contribution (not the returned loss). Gradient
   * accumulation over k micro-batches: `grad_accum: k` means CoreNet/DDP semantics, the mean of
   * the per-micro-batch means, i.e. 1/k each; token-weighted accumulation uses n_i / Σn. See
   * gradAccumScales in loss.ts.
   */
  gradScale?: number;
}

/** loss = ce + zloss; zloss is already multiplied by its coefficient. Means over validTokens. */
export interface LossResult { loss: number; ce: number; zloss: number; validTokens: number; }

interface LayerDims { Q: number; H: number; F: number; Wq: number; QD: number; U: number; }

interface LayerParams {
  attnNorm: FloatArray; qkv: FloatArray; qNorm: FloatArray | null; kNorm: FloatArray | null;
  out: FloatArray; ffnNorm: FloatArray; proj1: FloatArray; proj2: FloatArray;
}

/** One block's saved activations (full-capacity buffers; used through subarrays of M rows). */
interface Acts {
  xn1: FloatArray; rstd1: Float64Array; qkvRaw: FloatArray; qkv: FloatArray; qkRstd: Float64Array;
  lse: Float64Array; att: FloatArray; h: FloatArray; xn2: FloatArray; rstd2: Float64Array; u: FloatArray;
}

export class TrainableModel {
  readonly layout: ParamLayout;
  readonly params: FloatArray;
  readonly grads: FloatArray;
  readonly dtype: 'f32' | 'f64';
  readonly recompute: boolean;
  gemm: Gemm;
  headChunkRows: number;

  private readonly dims: LayerDims[];
  private readonly P: LayerParams[];
  private readonly G: LayerParams[];
  private readonly embed: FloatArray; private readonly dEmbed: FloatArray;
  private readonly head: FloatArray; private readonly dHead: FloatArray;
  private readonly normW: FloatArray; private readonly dNormW: FloatArray;
  private readonly roundMid: boolean;

  private cos = new Float32Array(0);
  private sin = new Float32Array(0);
  private ropeLen = 0;

  // Activation storage, sized for `cap` rows.
  private cap = 0;
  private xs: FloatArray[] = [];       // residual stream: xs[l] is block l's input, xs[L] the last output
  private acts: Acts[] = [];           // one per layer, or a single shared one with recompute
  private xf!: FloatArray; private rstdF!: Float64Array;
  // Backward scratch.
  private dres!: FloatArray; private dxn!: FloatArray; private dqkv!: FloatArray; private datt!: FloatArray;
  private du!: FloatArray; private dg!: FloatArray; private gbuf!: FloatArray; private xTmp!: FloatArray;
  // Fused head + loss chunk buffers (headRows × D / × V).
  private headRows = 0;
  private headX!: FloatArray; private headLogits!: FloatArray; private headDx!: FloatArray;

  constructor(readonly config: OpenELMConfig, opts: TrainableModelOptions = {}) {
    this.dtype = opts.dtype ?? 'f32';
    this.recompute = opts.recompute ?? false;
    this.gemm = opts.gemm ?? new JsGemm();
    this.headChunkRows = opts.headChunkRows ?? 256;
    this.roundMid = this.dtype === 'f32';
    this.layout = paramLayout(config);
    this.params = this.alloc(this.layout.total);
    this.grads = this.alloc(this.layout.total);
    const c = config, hd = c.headDim;
    this.dims = [];
    for (let l = 0; l < c.numLayers; l++) {
      const Q = c.numQueryHeads[l], H = c.numKvHeads[l], F = c.ffnDims[l];
      this.dims.push({ Q, H, F, Wq: (Q + 2 * H) * hd, QD: Q * hd, U: (c.ffnWithGlu ? 2 : 1) * F });
    }
    this.P = this.layerViews(this.params);
    this.G = this.layerViews(this.grads);
    this.embed = this.paramView('transformer.token_embeddings.weight');
    this.dEmbed = this.gradView('transformer.token_embeddings.weight');
    const headName = c.tiedEmbeddings ? 'transformer.token_embeddings.weight' : 'lm_head.weight';
    this.head = this.paramView(headName);
    this.dHead = this.gradView(headName);
    this.normW = this.paramView('transformer.norm.weight');
    this.dNormW = this.gradView('transformer.norm.weight');
    this.ensureRope(c.ropeMaxLength);
  }

  private alloc(n: number): FloatArray { return this.dtype === 'f64' ? new Float64Array(n) : new Float32Array(n); }

  private view(buf: FloatArray, name: string): FloatArray {
    const e = this.layout.byName.get(name);
    if (!e) throw new OpenELMError('usage', `the model has no tensor named ${name}`);
    return buf.subarray(e.offset, e.offset + e.size);
  }
  /** The parameter tensor `name` (HF key), a view into `params`. */
  paramView(name: string): FloatArray { return this.view(this.params, name); }
  /** The gradient of `name`, a view into `grads`. */
  gradView(name: string): FloatArray { return this.view(this.grads, name); }

  private layerViews(buf: FloatArray): LayerParams[] {
    const out: LayerParams[] = [];
    for (let l = 0; l < this.config.numLayers; l++) {
      const p = `transformer.layers.${l}.`;
      const qk = this.config.normalizeQk;
      out.push({
        attnNorm: this.view(buf, p + 'attn_norm.weight'), qkv: this.view(buf, p + 'attn.qkv_proj.weight'),
        qNorm: qk ? this.view(buf, p + 'attn.q_norm.weight') : null, kNorm: qk ? this.view(buf, p + 'attn.k_norm.weight') : null,
        out: this.view(buf, p + 'attn.out_proj.weight'), ffnNorm: this.view(buf, p + 'ffn_norm.weight'),
        proj1: this.view(buf, p + 'ffn.proj_1.weight'), proj2: this.view(buf, p + 'ffn.proj_2.weight'),
      });
    }
    return out;
  }

  zeroGrad(): void { this.grads.fill(0); }

  /** Inference weights sharing this model's parameter memory (f32 only). */
  inferenceWeights(backend?: Backend): ModelWeights {
    if (!(this.params instanceof Float32Array)) throw new OpenELMError('usage', 'inference weights need an f32 TrainableModel');
    return weightsFromFlat(this.config, this.layout, this.params, backend);
  }

  /** Drop activation buffers (they are re-allocated on the next call). */
  releaseActivations(): void {
    this.cap = 0; this.xs = []; this.acts = []; this.headRows = 0;
    const e = this.alloc(0);
    this.xf = this.dres = this.dxn = this.dqkv = this.datt = this.du = this.dg = this.gbuf = this.xTmp = e;
    this.headX = this.headLogits = this.headDx = e;
    this.rstdF = new Float64Array(0);
    if (this.gemm instanceof JsGemm) this.gemm.release();
  }

  // Same tables as the inference model: f64 math, f32 storage.
  private ensureRope(n: number): void {
    if (n <= this.ropeLen) return;
    const len = Math.max(n, this.ropeLen * 2);
    const hd = this.config.headDim, half = hd / 2, base = this.config.ropeFreqConstant;
    const cos = new Float32Array(len * half), sin = new Float32Array(len * half);
    for (let j = 0; j < half; j++) {
      const inv = 1 / Math.pow(base, (2 * j) / hd);
      for (let p = 0; p < len; p++) { cos[p * half + j] = Math.cos(p * inv); sin[p * half + j] = Math.sin(p * inv); }
    }
    this.cos = cos; this.sin = sin; this.ropeLen = len;
  }

  private newActs(rows: number, d: LayerDims): Acts {
    const D = this.config.modelDim;
    return {
      xn1: this.alloc(rows * D), rstd1: new Float64Array(rows), qkvRaw: this.alloc(rows * d.Wq), qkv: this.alloc(rows * d.Wq),
      qkRstd: new Float64Array(rows * (d.Q + d.H)), lse: new Float64Array(rows * d.Q), att: this.alloc(rows * d.QD),
      h: this.alloc(rows * D), xn2: this.alloc(rows * D), rstd2: new Float64Array(rows), u: this.alloc(rows * d.U),
    };
  }

  private ensureActs(M: number): void {
    if (M <= this.cap) return;
    const c = this.config, D = c.modelDim, L = c.numLayers;
    const max: LayerDims = { Q: 0, H: 0, F: 0, Wq: 0, QD: 0, U: 0 };
    for (const d of this.dims) for (const k of Object.keys(max) as (keyof LayerDims)[]) max[k] = Math.max(max[k], d[k]);
    this.xs = [];
    for (let l = 0; l <= L; l++) this.xs.push(this.alloc(M * D));
    this.acts = this.recompute ? [this.newActs(M, max)] : this.dims.map((d) => this.newActs(M, d));
    this.xf = this.alloc(M * D); this.rstdF = new Float64Array(M);
    this.dres = this.alloc(M * D); this.dxn = this.alloc(M * D); this.xTmp = this.alloc(M * D);
    this.dqkv = this.alloc(M * max.Wq); this.datt = this.alloc(M * max.QD);
    this.du = this.alloc(M * max.U); this.dg = this.alloc(M * max.F); this.gbuf = this.alloc(M * max.F);
    this.cap = M;
  }

  private actsFor(l: number): Acts { return this.recompute ? this.acts[0] : this.acts[l]; }

  /** Block l: xOut = x + Attn(norm(x)), then xOut += FFN(norm(xOut)); saves into `a`. */
  private blockForward(l: number, x: FloatArray, xOut: FloatArray, a: Acts, B: number, T: number): void {
    const c = this.config, D = c.modelDim, hd = c.headDim, M = B * T, eps = c.normEps;
    const d = this.dims[l], w = this.P[l], gm = this.gemm;
    const xn1 = a.xn1.subarray(0, M * D), qkvRaw = a.qkvRaw.subarray(0, M * d.Wq), qkv = a.qkv.subarray(0, M * d.Wq);
    const att = a.att.subarray(0, M * d.QD), h = a.h.subarray(0, M * D), xn2 = a.xn2.subarray(0, M * D);
    const u = a.u.subarray(0, M * d.U), g = this.gbuf.subarray(0, M * d.F);
    rmsnormForward(xn1, a.rstd1, x, w.attnNorm, M, D, eps, this.roundMid);
    gm.nt(qkvRaw, xn1, w.qkv, M, d.Wq, D, false);
    qkv.set(qkvRaw);
    qkNormRopeForward(qkv, a.qkRstd, M, T, d.Q, d.H, hd, w.qNorm, w.kNorm, this.cos, this.sin, eps, this.roundMid);
    attentionForward(att, a.lse, qkv, B, T, d.Q, d.H, hd);
    h.set(x);
    gm.nt(h, att, w.out, M, D, d.QD, true);
    rmsnormForward(xn2, a.rstd2, h, w.ffnNorm, M, D, eps, this.roundMid);
    gm.nt(u, xn2, w.proj1, M, d.U, D, false);
    if (c.ffnWithGlu) swigluForward(g, u, M, d.F); else siluForward(g, u, M * d.F);
    xOut.set(h);
    gm.nt(xOut, g, w.proj2, M, D, d.F, true);
  }

  /** On entry this.dres holds dL/d(block output); on exit dL/d(block input). Parameter grads +=. */
  private blockBackward(l: number, x: FloatArray, a: Acts, B: number, T: number): void {
    const c = this.config, D = c.modelDim, hd = c.headDim, M = B * T;
    const d = this.dims[l], w = this.P[l], gw = this.G[l], gm = this.gemm;
    const dres = this.dres.subarray(0, M * D), dxn = this.dxn.subarray(0, M * D);
    const xn1 = a.xn1.subarray(0, M * D), qkvRaw = a.qkvRaw.subarray(0, M * d.Wq), qkv = a.qkv.subarray(0, M * d.Wq);
    const att = a.att.subarray(0, M * d.QD), h = a.h.subarray(0, M * D), xn2 = a.xn2.subarray(0, M * D);
    const u = a.u.subarray(0, M * d.U), g = this.gbuf.subarray(0, M * d.F);
    const dg = this.dg.subarray(0, M * d.F), du = this.du.subarray(0, M * d.U);
    const datt = this.datt.subarray(0, M * d.QD), dqkv = this.dqkv.subarray(0, M * d.Wq);
    // FFN: x_out = h + g·W2ᵀ, g = act(u), u = xn2·W1ᵀ, xn2 = norm(h)
    if (c.ffnWithGlu) swigluForward(g, u, M, d.F); else siluForward(g, u, M * d.F);
    gm.tn(gw.proj2, dres, g, D, d.F, M, true);
    gm.nn(dg, dres, w.proj2, M, d.F, D, false);
    if (c.ffnWithGlu) swigluBackward(du, dg, u, M, d.F); else siluBackward(du, dg, u, M * d.F);
    gm.tn(gw.proj1, du, xn2, d.U, D, M, true);
    gm.nn(dxn, du, w.proj1, M, D, d.U, false);
    rmsnormBackward(dres, gw.ffnNorm, dxn, h, w.ffnNorm, a.rstd2, M, D);
    // attention: h = x + att·Woᵀ
    gm.tn(gw.out, dres, att, D, d.QD, M, true);
    gm.nn(datt, dres, w.out, M, d.QD, D, false);
    attentionBackward(dqkv, datt, qkv, a.lse, B, T, d.Q, d.H, hd);
    qkNormRopeBackward(dqkv, gw.qNorm, gw.kNorm, qkvRaw, a.qkRstd, M, T, d.Q, d.H, hd, w.qNorm, w.kNorm, this.cos, this.sin);
    gm.tn(gw.qkv, dqkv, xn1, d.Wq, D, M, true);
    gm.nn(dxn, dqkv, w.qkv, M, D, d.Wq, false);
    rmsnormBackward(dres, gw.attnNorm, dxn, x, w.attnNorm, a.rstd1, M, D);
  }

  private check(inputs: Int32Array, targets: Int32Array | null, B: number, T: number, ignore: number): void {
    const V = this.config.vocabSize;
    if (!Number.isInteger(B) || !Number.isInteger(T) || B <= 0 || T <= 0) throw new OpenELMError('usage', `batch ${B} × ${T} must be positive integers`);
    if (inputs.length !== B * T) throw new OpenELMError('usage', `inputs has ${inputs.length} ids; expected B·T = ${B * T}`);
    if (targets && targets.length !== B * T) throw new OpenELMError('usage', `targets has ${targets.length} ids; expected B·T = ${B * T}`);
    for (let i = 0; i < inputs.length; i++) {
      const t = inputs[i];
      if (t !== ignore && !(t >= 0 && t < V)) throw new OpenELMError('usage', `input id ${t} at position ${i} is outside the vocabulary [0, ${V})`);
    }
  }

  /** Embedding + all blocks + final norm; leaves normed rows in this.xf. */
  private forwardBody(inputs: Int32Array, B: number, T: number, ignore: number): void {
    const c = this.config, D = c.modelDim, M = B * T, L = c.numLayers;
    this.ensureActs(M);
    this.ensureRope(T);
    embeddingForward(this.xs[0].subarray(0, M * D), this.embed, inputs, D, ignore);
    for (let l = 0; l < L; l++) {
      this.blockForward(l, this.xs[l].subarray(0, M * D), this.xs[l + 1].subarray(0, M * D), this.actsFor(l), B, T);
    }
    rmsnormForward(this.xf, this.rstdF, this.xs[L].subarray(0, M * D), this.normW, M, D, c.normEps, this.roundMid);
  }

  /**
   * Fused head + loss over the rows whose target is valid, in chunks. With backward, writes
   * dL/dxf into this.dxn (zero for skipped rows) and accumulates the head gradient.
   */
  private headLoss(targets: Int32Array, M: number, ignore: number, z: number, gradScale: number, backward: boolean): LossResult {
    const c = this.config, D = c.modelDim, V = c.vocabSize, gm = this.gemm;
    const n = countValid(targets, ignore);
    if (backward) this.dxn.fill(0, 0, M * D);
    if (n === 0) return { loss: 0, ce: 0, zloss: 0, validTokens: 0 };
    const rowsIdx = new Int32Array(n);
    for (let r = 0, k = 0; r < M; r++) if (targets[r] !== ignore) rowsIdx[k++] = r;
    const CH = Math.max(1, Math.min(this.headChunkRows, n));
    if (this.headRows < CH) {
      this.headX = this.alloc(CH * D); this.headLogits = this.alloc(CH * V); this.headDx = this.alloc(CH * D);
      this.headRows = CH;
    }
    const xc = this.headX, logits = this.headLogits, dxc = this.headDx;
    const tc = new Int32Array(CH);
    let ceSum = 0, lseSqSum = 0;
    const scale = backward ? gradScale / n : 0;
    for (let s = 0; s < n; s += CH) {
      const m = Math.min(CH, n - s);
      for (let i = 0; i < m; i++) {
        const r = rowsIdx[s + i];
        xc.set(this.xf.subarray(r * D, r * D + D), i * D);
        tc[i] = targets[r];
      }
      const x = xc.subarray(0, m * D), lg = logits.subarray(0, m * V);
      gm.nt(lg, x, this.head, m, V, D, false);
      const sums = crossEntropyRows(lg, tc, m, V, z, scale);
      ceSum += sums.ceSum; lseSqSum += sums.lseSqSum;
      if (!backward || scale === 0) continue;
      const dx = dxc.subarray(0, m * D);
      gm.nn(dx, lg, this.head, m, D, V, false);
      gm.tn(this.dHead, lg, x, V, D, m, true);
      for (let i = 0; i < m; i++) {
        const r = rowsIdx[s + i];
        this.dxn.set(dx.subarray(i * D, i * D + D), r * D);
      }
    }
    const ce = ceSum / n, zl = z * lseSqSum / n;
    return { loss: ce + zl, ce, zloss: zl, validTokens: n };
  }

  /**
   * One micro-batch: forward with saved activations, mean loss over valid targets, and parameter
   * gradients ADDED to `grads` (call zeroGrad() between optimizer steps). A micro-batch without
   * valid targets returns zeros and leaves the gradients unchanged.
   */
  forwardBackward(inputs: Int32Array, targets: Int32Array, B: number, T: number, opts: ForwardBackwardOptions = {}): LossResult {
    const ignore = opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX, z = zLossCoefficient(opts.zLoss);
    const gradScale = opts.gradScale ?? 1;
    this.check(inputs, targets, B, T, ignore);
    const c = this.config, D = c.modelDim, M = B * T, L = c.numLayers;
    this.forwardBody(inputs, B, T, ignore);
    const res = this.headLoss(targets, M, ignore, z, gradScale, true);
    if (res.validTokens === 0 || gradScale === 0) return res;
    const dres = this.dres.subarray(0, M * D);
    dres.fill(0);
    rmsnormBackward(dres, this.dNormW, this.dxn, this.xs[L].subarray(0, M * D), this.normW, this.rstdF, M, D);
    for (let l = L - 1; l >= 0; l--) {
      const x = this.xs[l].subarray(0, M * D);
      if (this.recompute) this.blockForward(l, x, this.xTmp.subarray(0, M * D), this.acts[0], B, T);
      this.blockBackward(l, x, this.actsFor(l), B, T);
    }
    embeddingBackward(this.dEmbed, dres, inputs, D, ignore);
    return res;
  }

  /** Loss only (evaluation): no gradients touched. */
  evalLoss(inputs: Int32Array, targets: Int32Array, B: number, T: number, opts: Omit<ForwardBackwardOptions, 'gradScale'> = {}): LossResult {
    const ignore = opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX, z = zLossCoefficient(opts.zLoss);
    this.check(inputs, targets, B, T, ignore);
    this.forwardBody(inputs, B, T, ignore);
    return this.headLoss(targets, B * T, ignore, z, 0, false);
  }

  /** Logits for every position, [B·T, V] (tests and debugging; holds all rows at once). */
  logits(inputs: Int32Array, B: number, T: number): FloatArray {
    this.check(inputs, null, B, T, DEFAULT_IGNORE_INDEX);
    const c = this.config, M = B * T;
    this.forwardBody(inputs, B, T, DEFAULT_IGNORE_INDEX);
    const out = this.alloc(M * c.vocabSize);
    this.gemm.nt(out, this.xf.subarray(0, M * c.modelDim), this.head, M, c.vocabSize, c.modelDim, false);
    return out;
  }
}
