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
//
// The ops run through two seams: Gemm (matmuls) and TrainKernels (everything else, and the memory
// of params, grads and activations): plain JS (also the f64 path of the finite-difference tests)
// or the threaded WASM kernels of wasm-train.ts, whose buffers all live in the WASM memory.

import { OpenELMError } from '../core/errors.js';
import type { Backend } from '../backends/backend.js';
import type { OpenELMConfig } from '../model/config.js';
import { paramLayout, weightsFromFlat, type ParamLayout } from '../model/layout.js';
import type { ModelWeights } from '../model/openelm.js';
import { JsGemm, JsTrainKernels, type FloatArray, type Gemm, type TrainKernels } from './kernels.js';
import { DEFAULT_IGNORE_INDEX, countValid, crossEntropyRows, zLossCoefficient } from './loss.js';

export interface TrainableModelOptions {
  /** Storage of params, grads and activations. 'f64' exists for the finite-difference tests. */
  dtype?: 'f32' | 'f64';
  /** Keep only each block's input and recompute the block in backward (activation checkpointing). */
  recompute?: boolean;
  /**
   * The matmul implementation (default: plain JS). When it brings its own kernels (gemm.kernels,
   * e.g. the WASM GEMM) and dtype is f32, parameters, gradients and activations are allocated in
   * that GEMM's memory and every op runs there, so nothing is copied per call.
   */
  gemm?: Gemm;
  /** The other kernels (default: gemm.kernels for f32 when present, else plain JS). */
  kernels?: TrainKernels;
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
  xn1: FloatArray; rstd1: FloatArray; qkvRaw: FloatArray; qkv: FloatArray; qkRstd: FloatArray;
  lse: FloatArray; att: FloatArray; h: FloatArray; xn2: FloatArray; rstd2: FloatArray; u: FloatArray;
}

export class TrainableModel {
  readonly layout: ParamLayout;
  readonly params: FloatArray;
  readonly grads: FloatArray;
  readonly dtype: 'f32' | 'f64';
  readonly recompute: boolean;
  gemm: Gemm;
  /** The non-matmul kernels, which also own the memory of params, grads and activations. */
  readonly kernels: TrainKernels;
  headChunkRows: number;

  private readonly dims: LayerDims[];
  private readonly P: LayerParams[];
  private readonly G: LayerParams[];
  private readonly embed: FloatArray; private readonly dEmbed: FloatArray;
  private readonly head: FloatArray; private readonly dHead: FloatArray;
  private readonly normW: FloatArray; private readonly dNormW: FloatArray;

  private cos!: FloatArray;
  private sin!: FloatArray;
  private ropeLen = 0;

  // Activation storage, sized for `cap` rows.
  private cap = 0;
  private xs: FloatArray[] = [];       // residual stream: xs[l] is block l's input, xs[L] the last output
  private acts: Acts[] = [];           // one per layer, or a single shared one with recompute
  private xf!: FloatArray; private rstdF!: FloatArray;
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
    this.kernels = opts.kernels ?? (this.dtype === 'f32' && this.gemm.kernels ? this.gemm.kernels : new JsTrainKernels(this.dtype, crossEntropyRows));
    this.headChunkRows = opts.headChunkRows ?? 256;
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

  private alloc(n: number): FloatArray {
    const a = this.kernels.alloc(n);
    if ((this.dtype === 'f64') !== (a instanceof Float64Array)) throw new OpenELMError('usage', `the ${this.kernels.name} training kernels do not store ${this.dtype}`);
    return a;
  }

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

  zeroGrad(): void { this.kernels.fill0(this.grads); }

  /** Inference weights sharing this model's parameter memory (f32 only). */
  inferenceWeights(backend?: Backend): ModelWeights {
    if (!(this.params instanceof Float32Array)) throw new OpenELMError('usage', 'inference weights need an f32 TrainableModel');
    return weightsFromFlat(this.config, this.layout, this.params, backend);
  }

  /** Drop activation buffers (they are re-allocated on the next call). */
  releaseActivations(): void {
    this.freeActs();
    this.freeHead();
    if (this.gemm instanceof JsGemm) this.gemm.release();
  }

  // Activation and head buffers come from the kernels' memory (the 4 GiB WASM memory on the fast
  // path), so they are given back explicitly when they are replaced.
  private actBufs: FloatArray[] = [];
  private headBufs: FloatArray[] = [];
  private actAlloc(n: number, stats = false): FloatArray {
    const a = stats ? this.kernels.allocStats(n) : this.alloc(n);
    this.actBufs.push(a);
    return a;
  }

  private freeActs(): void {
    for (const b of this.actBufs) this.kernels.free(b);
    this.actBufs = [];
    this.cap = 0; this.xs = []; this.acts = [];
  }

  private freeHead(): void {
    for (const b of this.headBufs) this.kernels.free(b);
    this.headBufs = [];
    this.headRows = 0;
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
    // f32 values whatever the storage dtype (the inference model's tables), in the kernels' memory
    if (this.ropeLen) { this.kernels.free(this.cos); this.kernels.free(this.sin); }
    this.cos = this.alloc(len * half); this.cos.set(cos);
    this.sin = this.alloc(len * half); this.sin.set(sin);
    this.ropeLen = len;
  }

  private newActs(rows: number, d: LayerDims): Acts {
    const D = this.config.modelDim, A = (n: number, stats = false) => this.actAlloc(n, stats);
    return {
      xn1: A(rows * D), rstd1: A(rows, true), qkvRaw: A(rows * d.Wq), qkv: A(rows * d.Wq),
      qkRstd: A(rows * (d.Q + d.H), true), lse: A(rows * d.Q, true), att: A(rows * d.QD),
      h: A(rows * D), xn2: A(rows * D), rstd2: A(rows, true), u: A(rows * d.U),
    };
  }

  private ensureActs(M: number): void {
    if (M <= this.cap) return;
    const c = this.config, D = c.modelDim, L = c.numLayers;
    const max: LayerDims = { Q: 0, H: 0, F: 0, Wq: 0, QD: 0, U: 0 };
    for (const d of this.dims) for (const k of Object.keys(max) as (keyof LayerDims)[]) max[k] = Math.max(max[k], d[k]);
    this.freeActs();
    const A = (n: number, stats = false) => this.actAlloc(n, stats);
    try {
      this.xs = [];
      for (let l = 0; l <= L; l++) this.xs.push(A(M * D));
      this.acts = this.recompute ? [this.newActs(M, max)] : this.dims.map((d) => this.newActs(M, d));
      this.xf = A(M * D); this.rstdF = A(M, true);
      this.dres = A(M * D); this.dxn = A(M * D); this.xTmp = A(M * D);
      this.dqkv = A(M * max.Wq); this.datt = A(M * max.QD);
      this.du = A(M * max.U); this.dg = A(M * max.F); this.gbuf = A(M * max.F);
    } catch (e) {
      this.freeActs();
      // the kernels' memory is capped (4 GiB for WASM): say what to change for training
      if (e instanceof OpenELMError && e.code === 'memory') {
        throw new OpenELMError('memory', `the activations of ${M} rows (batch × seq_len) do not fit in the ${this.kernels.name} training memory ` +
          `next to the parameters and gradients; use recompute (activation checkpointing), a smaller batch_size with grad_accum, or a shorter seq_len`);
      }
      throw e;
    }
    this.cap = M;
  }

  private actsFor(l: number): Acts { return this.recompute ? this.acts[0] : this.acts[l]; }

  /** Block l: xOut = x + Attn(norm(x)), then xOut += FFN(norm(xOut)); saves into `a`. */
  private blockForward(l: number, x: FloatArray, xOut: FloatArray, a: Acts, B: number, T: number): void {
    const c = this.config, D = c.modelDim, hd = c.headDim, M = B * T, eps = c.normEps;
    const d = this.dims[l], w = this.P[l], gm = this.gemm, k = this.kernels;
    const xn1 = a.xn1.subarray(0, M * D), qkvRaw = a.qkvRaw.subarray(0, M * d.Wq), qkv = a.qkv.subarray(0, M * d.Wq);
    const att = a.att.subarray(0, M * d.QD), h = a.h.subarray(0, M * D), xn2 = a.xn2.subarray(0, M * D);
    const u = a.u.subarray(0, M * d.U), g = this.gbuf.subarray(0, M * d.F);
    k.rmsnormForward(xn1, a.rstd1, x, w.attnNorm, M, D, eps);
    gm.nt(qkvRaw, xn1, w.qkv, M, d.Wq, D, false);
    k.copy(qkv, qkvRaw, M * d.Wq);
    k.qkNormRopeForward(qkv, a.qkRstd, M, T, d.Q, d.H, hd, w.qNorm, w.kNorm, this.cos, this.sin, eps);
    k.attentionForward(att, a.lse, qkv, B, T, d.Q, d.H, hd);
    k.copy(h, x, M * D);
    gm.nt(h, att, w.out, M, D, d.QD, true);
    k.rmsnormForward(xn2, a.rstd2, h, w.ffnNorm, M, D, eps);
    gm.nt(u, xn2, w.proj1, M, d.U, D, false);
    if (c.ffnWithGlu) k.swigluForward(g, u, M, d.F); else k.siluForward(g, u, M * d.F);
    k.copy(xOut, h, M * D);
    gm.nt(xOut, g, w.proj2, M, D, d.F, true);
  }

  /** On entry this.dres holds dL/d(block output); on exit dL/d(block input). Parameter grads +=. */
  private blockBackward(l: number, x: FloatArray, a: Acts, B: number, T: number): void {
    const c = this.config, D = c.modelDim, hd = c.headDim, M = B * T;
    const d = this.dims[l], w = this.P[l], gw = this.G[l], gm = this.gemm, k = this.kernels;
    const dres = this.dres.subarray(0, M * D), dxn = this.dxn.subarray(0, M * D);
    const xn1 = a.xn1.subarray(0, M * D), qkvRaw = a.qkvRaw.subarray(0, M * d.Wq), qkv = a.qkv.subarray(0, M * d.Wq);
    const att = a.att.subarray(0, M * d.QD), h = a.h.subarray(0, M * D), xn2 = a.xn2.subarray(0, M * D);
    const u = a.u.subarray(0, M * d.U), g = this.gbuf.subarray(0, M * d.F);
    const dg = this.dg.subarray(0, M * d.F), du = this.du.subarray(0, M * d.U);
    const datt = this.datt.subarray(0, M * d.QD), dqkv = this.dqkv.subarray(0, M * d.Wq);
    // FFN: x_out = h + g·W2ᵀ, g = act(u), u = xn2·W1ᵀ, xn2 = norm(h)
    if (c.ffnWithGlu) k.swigluForward(g, u, M, d.F); else k.siluForward(g, u, M * d.F);
    gm.tn(gw.proj2, dres, g, D, d.F, M, true);
    gm.nn(dg, dres, w.proj2, M, d.F, D, false);
    if (c.ffnWithGlu) k.swigluBackward(du, dg, u, M, d.F); else k.siluBackward(du, dg, u, M * d.F);
    gm.tn(gw.proj1, du, xn2, d.U, D, M, true);
    gm.nn(dxn, du, w.proj1, M, D, d.U, false);
    k.rmsnormBackward(dres, gw.ffnNorm, dxn, h, w.ffnNorm, a.rstd2, M, D);
    // attention: h = x + att·Woᵀ
    gm.tn(gw.out, dres, att, D, d.QD, M, true);
    gm.nn(datt, dres, w.out, M, d.QD, D, false);
    k.attentionBackward(dqkv, datt, qkv, att, a.lse, B, T, d.Q, d.H, hd);
    k.qkNormRopeBackward(dqkv, gw.qNorm, gw.kNorm, qkvRaw, a.qkRstd, M, T, d.Q, d.H, hd, w.qNorm, w.kNorm, this.cos, this.sin);
    gm.tn(gw.qkv, dqkv, xn1, d.Wq, D, M, true);
    gm.nn(dxn, dqkv, w.qkv, M, D, d.Wq, false);
    k.rmsnormBackward(dres, gw.attnNorm, dxn, x, w.attnNorm, a.rstd1, M, D);
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
    this.kernels.embeddingForward(this.xs[0].subarray(0, M * D), this.embed, inputs, D, ignore);
    for (let l = 0; l < L; l++) {
      this.blockForward(l, this.xs[l].subarray(0, M * D), this.xs[l + 1].subarray(0, M * D), this.actsFor(l), B, T);
    }
    this.kernels.rmsnormForward(this.xf.subarray(0, M * D), this.rstdF, this.xs[L].subarray(0, M * D), this.normW, M, D, c.normEps);
  }

  /**
   * Fused head + loss over the rows whose target is valid, in chunks. With backward, writes
   * dL/dxf into this.dxn (zero for skipped rows) and accumulates the head gradient.
   */
  private headLoss(targets: Int32Array, M: number, ignore: number, z: number, gradScale: number, backward: boolean): LossResult {
    const c = this.config, D = c.modelDim, V = c.vocabSize, gm = this.gemm, k = this.kernels;
    const n = countValid(targets, ignore);
    if (backward) k.fill0(this.dxn.subarray(0, M * D));
    if (n === 0) return { loss: 0, ce: 0, zloss: 0, validTokens: 0 };
    const rowsIdx = new Int32Array(n);
    for (let r = 0, i = 0; r < M; r++) if (targets[r] !== ignore) rowsIdx[i++] = r;
    const CH = Math.max(1, Math.min(this.headChunkRows, n));
    if (this.headRows < CH) {
      this.freeHead();
      this.headX = this.alloc(CH * D); this.headLogits = this.alloc(CH * V); this.headDx = this.alloc(CH * D);
      this.headBufs = [this.headX, this.headLogits, this.headDx];
      this.headRows = CH;
    }
    const tc = new Int32Array(CH);
    let ceSum = 0, lseSqSum = 0;
    const scale = backward ? gradScale / n : 0;
    for (let s = 0; s < n; s += CH) {
      const m = Math.min(CH, n - s), r0 = rowsIdx[s];
      // a run of consecutive rows (no ignored target inside) is used in place
      const contiguous = rowsIdx[s + m - 1] - r0 === m - 1;
      for (let i = 0; i < m; i++) tc[i] = targets[rowsIdx[s + i]];
      let x: FloatArray;
      if (contiguous) x = this.xf.subarray(r0 * D, (r0 + m) * D);
      else {
        for (let i = 0; i < m; i++) { const r = rowsIdx[s + i]; this.headX.set(this.xf.subarray(r * D, r * D + D), i * D); }
        x = this.headX.subarray(0, m * D);
      }
      const lg = this.headLogits.subarray(0, m * V);
      gm.nt(lg, x, this.head, m, V, D, false);
      const sums = k.crossEntropyRows(lg, tc.subarray(0, m), m, V, z, scale);
      ceSum += sums.ceSum; lseSqSum += sums.lseSqSum;
      if (!backward || scale === 0) continue;
      const dx = contiguous ? this.dxn.subarray(r0 * D, (r0 + m) * D) : this.headDx.subarray(0, m * D);
      gm.nn(dx, lg, this.head, m, D, V, false);
      gm.tn(this.dHead, lg, x, V, D, m, true);
      if (!contiguous) {
        for (let i = 0; i < m; i++) { const r = rowsIdx[s + i]; this.dxn.set(dx.subarray(i * D, i * D + D), r * D); }
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
    this.kernels.fill0(dres);
    this.kernels.rmsnormBackward(dres, this.dNormW, this.dxn.subarray(0, M * D), this.xs[L].subarray(0, M * D), this.normW, this.rstdF, M, D);
    for (let l = L - 1; l >= 0; l--) {
      const x = this.xs[l].subarray(0, M * D);
      if (this.recompute) this.blockForward(l, x, this.xTmp.subarray(0, M * D), this.acts[0], B, T);
      this.blockBackward(l, x, this.actsFor(l), B, T);
    }
    this.kernels.embeddingBackward(this.dEmbed, dres, inputs, D, ignore);
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
    // a plain array (not the kernels' memory): the caller keeps it
    const out = this.dtype === 'f64' ? new Float64Array(M * c.vocabSize) : new Float32Array(M * c.vocabSize);
    this.gemm.nt(out, this.xf.subarray(0, M * c.modelDim), this.head, M, c.vocabSize, c.modelDim, false);
    return out;
  }
}
