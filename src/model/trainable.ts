// The trainable OpenELM: flat parameters and flat gradients laid out by paramLayout (each one
// tensor, or chunks of whole tensors when the backend cannot hold them in one: chunked.ts), a
// forward pass that saves what the backward needs, and an explicit per-layer backward (llm.c
// style, no tape), all on one Backend. The forward computes the same function as
// openelm.ts (same op order and f32 rounding points), with plain causal attention over T and no KV
// cache; test/train-grad.test.ts holds the two together.
//
// Shapes: B sequences of T tokens, M = B·T rows; per layer Q query heads, Hkv kv heads, F FFN width.
// Per layer the forward keeps: the block input x, norm outputs and their 1/rms, the raw and the
// normed+rotated qkv, attention output and per-row logsumexp (not the T×T probabilities), the
// post-attention residual h, and the proj_1 output u. With `recompute` only x is kept and the
// block is re-run just before its backward. Logits are never held for all rows: the head and the
// loss run fused over chunks of valid rows, forward and backward together.
//
// Host numbers come back only where they are needed: the loss sums of each head chunk are awaited
// once per micro-batch, after every operation of the step has been issued.
//
// Preference losses (DPO) need a second shape of step: per-sequence log-probability sums
// s_b = Σ_t log p(target_t) first (the loss is a function of all of them), then a backward of
// Σ_b w_b·∇s_b with weights computed on the host. sequenceLogprobs runs the forward and keeps the
// activations; sequenceLogprobsBackward recomputes only the head chunks' logits (rows × vocab is
// never held for all rows) and runs the usual backward over the kept activations.
//
// Every product with a layer's weight goes through a TrainLinear (linear.ts). Full training uses
// trainable f32 weights; adapter training (options.adapter) freezes the base — its linears held in
// any weight dtype, its norms, embedding and head as f32 without gradients — and makes the LoRA /
// DoRA tensors (adapted.ts) the model's parameters: then `layout`, `params` and `grads` are the
// adapter's, and AdamW and clipping see nothing else.

import type { Backend, LossSums, MatmulLayout, MatmulPrecision, Tensor, Weight } from '../backends/backend.js';
import { setWeightRows } from '../backends/weight-format.js';
import { OpenELMError } from '../core/errors.js';
import type { AdapterSettings } from '../adapters/adapter.js';
import { adaptedModules } from '../adapters/targets.js';
import type { OpenELMConfig } from './config.js';
import { layoutOf, paramLayout, type ParamLayout } from './layout.js';
import { assembleWeights, type ModelWeights } from './openelm.js';
import { ChunkedTensor } from './chunked.js';
import { EMBEDDING, FINAL_NORM, LM_HEAD, mapLayers, paramSpecs, type LayerParams } from './params.js';
import { DenseLinear, FrozenLinear, withHeldBf16, type LinearRun, type LinearSaved, type TrainLinear } from './linear.js';
import { AdaptedEmbedding, AdaptedLinear, AdapterShared, adapterParamNames, adapterParamSpecs, type AdapterTensors, type DropoutMasks } from './adapted.js';
import { Rope } from './rope.js';
import { DEFAULT_IGNORE_INDEX, countValid, zLossCoefficient } from './loss.js';

export interface TrainableModelOptions {
  /** Keep only each block's input and recompute the block in backward (activation checkpointing). */
  recompute?: boolean;
  /** Rows of logits materialised at once by the fused head + loss (memory: rows × vocab). */
  headChunkRows?: number;
  /**
   * Inputs of every matrix product (forward and backward, head included): 'fp32' (default) or
   * 'bf16' (mixed precision: bf16-rounded operands, f32 sums; parameters, gradients, norms,
   * attention, softmax and loss stay f32). See docs/training.md. Adapter training applies it to
   * the head only: the frozen base's products and the adapters' stay f32.
   */
  precision?: MatmulPrecision;
  /** Train a LoRA / DoRA adapter on a frozen base instead of the whole model. */
  adapter?: AdapterTraining;
}

/** Adapter training: the adapter's settings, and how the frozen base's linear weights are stored. */
export interface AdapterTraining {
  settings: AdapterSettings;
  /** Storage of the base's linear weights (default f32); the embedding, norms and head stay f32. */
  baseDtype?: 'f32' | 'bf16' | 'q8' | 'q4';
}

export interface ForwardBackwardOptions {
  /** Targets equal to this are skipped; inputs equal to it embed as zeros. Default -100. */
  ignoreIndex?: number;
  /** z-loss coefficient; true means CoreNet's 1e-4. Default off. */
  zLoss?: number | boolean;
  /** Seed of this micro-batch's adapter dropout masks (default: a per-model counter). */
  dropoutSeed?: number;
  /**
   * Multiplies this micro-batch's gradient contribution (not the returned loss). Gradient
   * accumulation over k micro-batches: `grad_accum: k` means CoreNet/DDP semantics, the mean of
   * the per-micro-batch means, i.e. 1/k each; token-weighted accumulation uses n_i / Σn. See
   * gradAccumScales in loss.ts.
   */
  gradScale?: number;
}

export interface SequenceLogprobOptions {
  /** Targets equal to this are skipped; inputs equal to it embed as zeros. Default -100. */
  ignoreIndex?: number;
  /** A training forward: adapter dropout is active (the policy's log-probabilities of a DPO step). Default false (scoring). */
  train?: boolean;
  /** With train: the seed of the dropout masks (default: a per-model counter); the backward reuses them. */
  dropoutSeed?: number;
}

/** loss = ce + zloss; zloss is already multiplied by its coefficient. Means over validTokens. */
export interface LossResult { loss: number; ce: number; zloss: number; validTokens: number; }

interface LayerDims { Q: number; H: number; F: number; Wq: number; QD: number; U: number; }

/** A layer's norm weights (linear weights live in its TrainLinears). */
type Norms = LayerParams<Tensor, null>;
type LinearKey = 'qkv' | 'out' | 'proj1' | 'proj2';
const LINEAR_KEYS: readonly LinearKey[] = ['qkv', 'out', 'proj1', 'proj2'];
type Linears = Record<LinearKey, TrainLinear>;

/** One chunk of the fused head: its normed rows, their logits, which rows, read in place or gathered. */
interface HeadChunk { x: Tensor; lg: Tensor; idx: Int32Array; contiguous: boolean; }

/** One block's saved activations (full-capacity tensors; used through views of M rows). */
interface Acts {
  xn1: Tensor; rstd1: Tensor; qkvRaw: Tensor; qkv: Tensor; qkRstd: Tensor;
  lse: Tensor; att: Tensor; h: Tensor; xn2: Tensor; rstd2: Tensor; u: Tensor;
  /** What each linear saves for its backward (adapters). */
  lin: Record<LinearKey, LinearSaved>;
}

const NO_SAVE: LinearSaved = { ts: null, pre: null };

export class TrainableModel {
  readonly layout: ParamLayout;
  /** The parameters: one tensor per chunk of the layout (AdamW, clipping and checkpoints go chunk by chunk). */
  readonly paramChunks: ChunkedTensor;
  /** The gradients, cut like paramChunks. */
  readonly gradChunks: ChunkedTensor;
  readonly recompute: boolean;
  readonly precision: MatmulPrecision;
  headChunkRows: number;

  /** Adapter training: the settings (null: full training). */
  readonly adapter: AdapterSettings | null;
  /** Adapter training: the frozen base's f32 tensors (embedding, norms, untied head) and their layout. */
  readonly baseLayout: ParamLayout | null = null;
  private readonly baseFlat: Tensor | null = null;

  private readonly dims: LayerDims[];
  private readonly P: Norms[];
  private readonly G: Norms[];
  private readonly lin: Linears[];
  private readonly embed: Tensor; private readonly dEmbed: Tensor | null;
  private readonly head: Tensor; private readonly dHead: Tensor | null;
  private readonly normW: Tensor; private readonly dNormW: Tensor;
  private readonly rope: Rope;
  // adapter training
  private readonly baseWeights = new Map<string, Weight>();
  private readonly adapted = new Map<string, AdaptedLinear>();
  private readonly embAdapter: AdaptedEmbedding | null = null;
  private readonly shared: AdapterShared | null = null;
  private readonly owned: Tensor[] = [];
  /** Where the frozen norms' unused weight gradients go (adapter training). */
  private readonly sink: Tensor | null = null;
  private embSaved: LinearSaved = NO_SAVE;
  private run: LinearRun = { train: false, seed: 0 };
  private dropoutCalls = 0;

  // Activation storage, sized for `cap` rows.
  private cap = 0;
  private xs: Tensor[] = [];           // residual stream: xs[l] is block l's input, xs[L] the last output
  private acts: Acts[] = [];           // one per layer, or a single shared one with recompute
  private xf!: Tensor; private rstdF!: Tensor;
  // Backward scratch.
  private dres!: Tensor; private dxn!: Tensor; private dqkv!: Tensor; private datt!: Tensor;
  private du!: Tensor; private dg!: Tensor; private gbuf!: Tensor; private xTmp!: Tensor;
  // Fused head + loss chunk buffers (headRows × D / × V).
  private headRows = 0;
  private headX!: Tensor; private headLogits!: Tensor; private headDx!: Tensor;

  private actBufs: Tensor[] = [];
  private headBufs: Tensor[] = [];
  /** The batch whose activations sequenceLogprobs kept for sequenceLogprobsBackward. */
  private seqPending: { inputs: Int32Array; targets: Int32Array; B: number; T: number; ignore: number; pos: Int32Array; run: LinearRun } | null = null;

  constructor(readonly config: OpenELMConfig, readonly backend: Backend, opts: TrainableModelOptions = {}) {
    this.recompute = opts.recompute ?? false;
    this.precision = opts.precision ?? 'fp32';
    this.headChunkRows = opts.headChunkRows ?? 256;
    this.adapter = opts.adapter?.settings ?? null;
    const c = config, hd = c.headDim, be = backend;
    this.layout = this.adapter ? layoutOf(adapterParamSpecs(c, this.adapter)) : paramLayout(config);
    this.paramChunks = ChunkedTensor.alloc(backend, this.layout, 'the parameters');
    try {
      this.gradChunks = ChunkedTensor.alloc(backend, this.layout, 'the gradients');
    } catch (e) {
      this.paramChunks.free();
      throw e;
    }
    this.dims = [];
    for (let l = 0; l < c.numLayers; l++) {
      const Q = c.numQueryHeads[l], H = c.numKvHeads[l], F = c.ffnDims[l];
      this.dims.push({ Q, H, F, Wq: (Q + 2 * H) * hd, QD: Q * hd, U: (c.ffnWithGlu ? 2 : 1) * F });
    }
    const headName = c.tiedEmbeddings ? EMBEDDING : LM_HEAD;
    this.rope = new Rope(c, backend);
    if (!this.adapter) {
      this.P = mapLayers(c, (n) => this.paramView(n), () => null);
      this.G = mapLayers(c, (n) => this.gradView(n), () => null);
      this.lin = mapLayers(c, () => null, (n, shape) => new DenseLinear(be, this.paramView(n), this.gradView(n), shape[0], shape[1], this.precision))
        .map((p) => ({ qkv: p.qkv, out: p.out, proj1: p.proj1, proj2: p.proj2 }));
      this.embed = this.paramView(EMBEDDING);
      this.dEmbed = this.gradView(EMBEDDING);
      this.head = this.paramView(headName);
      this.dHead = this.gradView(headName);
      this.normW = this.paramView(FINAL_NORM);
      this.dNormW = this.gradView(FINAL_NORM);
      return;
    }
    // Adapter training: a frozen base plus the adapter, all allocated now so that memory runs out here.
    try {
      const s = this.adapter, baseDtype = opts.adapter!.baseDtype ?? 'f32';
      const linearNames = new Set(mapLayers(c, () => null, (n) => n).flatMap((p) => LINEAR_KEYS.map((k) => p[k])));
      this.baseLayout = layoutOf(paramSpecs(c).filter((p) => !linearNames.has(p.name)));
      this.baseFlat = this.own(this.baseLayout.total);
      const sink = this.own(Math.max(c.modelDim, hd));
      this.sink = sink;
      this.P = mapLayers(c, (n) => this.baseView(n), () => null);
      this.G = mapLayers(c, (_n, shape) => be.view(sink, 0, shape[0]), () => null);
      this.embed = this.baseView(EMBEDDING);
      this.dEmbed = null;
      this.head = this.baseView(headName);
      this.dHead = null;
      this.normW = this.baseView(FINAL_NORM);
      this.dNormW = be.view(sink, 0, c.modelDim);
      const mods = adaptedModules(c, s.targets);
      const lin = mods.filter((m) => m.kind === 'linear');
      const maxIn = Math.max(1, ...lin.map((m) => m.inFeatures));
      const maxOut = Math.max(1, ...mods.map((m) => m.outFeatures));
      this.shared = new AdapterShared(be, s, maxIn, maxOut, (n) => this.own(n));
      const tensors = (name: string): AdapterTensors => {
        const n = adapterParamNames(mods.find((m) => m.name === name)!);
        const dora = s.type === 'dora';
        return {
          A: this.paramView(n.A), B: this.paramView(n.B), m: dora ? this.paramView(n.magnitude) : null,
          dA: this.gradView(n.A), dB: this.gradView(n.B), dm: dora ? this.gradView(n.magnitude) : null,
        };
      };
      this.lin = mapLayers(c, () => null, (n, shape) => {
        if ((baseDtype === 'q8' || baseDtype === 'q4') && shape[1] % 32 !== 0) {
          throw new OpenELMError('dtype', `recipe.peft.base_dtype ${baseDtype}: ${n} has ${shape[1]} columns; ${baseDtype} stores rows in blocks of 32 (use bf16 or f32)`);
        }
        const w = be.allocWeight(baseDtype, shape[0], shape[1]);
        this.baseWeights.set(n, w);
        const module = n.replace(/\.weight$/, '');
        const idx = mods.findIndex((m) => m.name === module);
        if (idx < 0) return new FrozenLinear(be, w) as TrainLinear;
        const a = new AdaptedLinear(be, mods[idx], idx, w, tensors(module), this.shared!, (k) => this.own(k));
        this.adapted.set(n, a);
        return a;
      }).map((p) => ({ qkv: p.qkv, out: p.out, proj1: p.proj1, proj2: p.proj2 }));
      const emb = mods.find((m) => m.kind === 'embedding');
      if (emb) this.embAdapter = new AdaptedEmbedding(be, emb, this.embed, tensors(emb.name), this.shared, (k) => this.own(k));
    } catch (e) {
      this.freeBase();
      this.gradChunks.free();
      this.paramChunks.free();
      throw e;
    }
  }

  private own(n: number): Tensor {
    const t = this.backend.alloc(n);
    this.owned.push(t);
    return t;
  }

  private freeBase(): void {
    for (const w of this.baseWeights.values()) this.backend.freeWeight(w);
    this.baseWeights.clear();
    for (const t of this.owned) this.backend.free(t);
    this.owned.length = 0;
  }

  private baseView(name: string): Tensor {
    const e = this.baseLayout!.byName.get(name);
    if (!e) throw new OpenELMError('usage', `the base model has no tensor named ${name}`);
    return this.backend.view(this.baseFlat!, e.offset, e.size);
  }

  /**
   * Adapter training: set base tensor `name` (HF key, f32 host values). Linear weights are stored
   * in the base dtype (quantized here when q8/q4); DoRA's base norms are taken from what is stored.
   */
  setBase(name: string, values: Float32Array): void {
    if (!this.adapter) throw new OpenELMError('usage', 'setBase is for adapter training; use setParam');
    const w = this.baseWeights.get(name);
    if (w) {
      if (values.length !== w.rows * w.cols) throw new OpenELMError('usage', `${name} has ${values.length} values; the model needs ${w.rows * w.cols}`);
      setWeightRows(w, 0, values);
      this.adapted.get(name)?.setBaseNorms();
      this.backend.prepareWeight(w);
      return;
    }
    const e = this.baseLayout!.byName.get(name);
    if (!e) throw new OpenELMError('usage', `the model has no tensor named ${name}`);
    if (values.length !== e.size) throw new OpenELMError('usage', `${name} has ${values.length} values; the model needs ${e.size}`);
    this.backend.write(this.baseView(name), values);
    if (name === EMBEDDING) this.embAdapter?.setBaseNorms(values);
  }

  /** Adapter training: replay given dropout keep-masks instead of the hashed ones (tests against PEFT), or null. */
  setDropoutMasks(masks: DropoutMasks | null): void {
    if (!this.shared) throw new OpenELMError('usage', 'dropout masks belong to adapter training');
    this.shared.masks = masks;
  }

  /**
   * Runs `body` (a pass's synchronous part: every product it issues) with the weights held for bf16
   * (Backend.holdBf16): each is rounded by the first product that reads it and reused by the others,
   * the forward's and the backward's dX (and the head's in every chunk). Nothing writes the
   * weights inside a pass, and the holds end with it, before anything (AdamW) can.
   */
  private withHeldWeights<T>(body: () => T): T {
    const be = this.backend;
    if (this.precision !== 'bf16' || !be.holdBf16) return body();
    const releases = [be.holdBf16(this.head)];
    for (const L of this.lin) for (const k of LINEAR_KEYS) { const lin = L[k]; if (lin instanceof DenseLinear) releases.push(be.holdBf16(lin.w)); }
    try {
      return body();
    } finally {
      for (const r of releases) r();
    }
  }

  /** The head's products; the layers' go through their TrainLinear, which full training builds with the same precision. */
  private mm(C: Tensor, A: Tensor, B: Tensor, M: number, N: number, K: number, layout: MatmulLayout, accumulate: boolean): void {
    this.backend.matmul(C, A, B, M, N, K, layout, accumulate, this.precision);
  }

  /**
   * All parameters as one flat tensor: for a model whose parameters fit in one tensor of the
   * backend (paramChunks works for every model).
   */
  get params(): Tensor { return this.whole(this.paramChunks, 'parameters'); }
  /** All gradients as one flat tensor (see params). */
  get grads(): Tensor { return this.whole(this.gradChunks, 'gradients'); }

  private whole(c: ChunkedTensor, what: string): Tensor {
    if (c.whole) return c.whole;
    throw new OpenELMError('usage', `the ${what} of this model are split into ${c.chunks.length} chunks (one ${this.backend.name} tensor cannot hold them); use ${what === 'parameters' ? 'paramChunks' : 'gradChunks'}`);
  }

  /** The parameter tensor `name` (HF key), a view into its chunk. */
  paramView(name: string): Tensor { return this.paramChunks.view(name); }
  /** The gradient of `name`, a view into its chunk. */
  gradView(name: string): Tensor { return this.gradChunks.view(name); }
  /** Set parameter `name` from host values. */
  setParam(name: string, values: ArrayLike<number>): void { this.backend.write(this.paramView(name), values); }
  readParam(name: string): Promise<Float32Array> { return this.backend.read(this.paramView(name)); }
  readGrad(name: string): Promise<Float32Array> { return this.backend.read(this.gradView(name)); }

  zeroGrad(): void {
    this.gradChunks.fill(0);
    if (this.sink) this.backend.fill(this.sink, 0);
  }

  /** Inference weights sharing this model's parameter memory (for OpenELM on the same backend). */
  inferenceWeights(): ModelWeights {
    if (this.adapter) throw new OpenELMError('usage', 'an adapter-training model has no flat inference weights; merge the adapter into the base (adapters/merge.ts)');
    return assembleWeights(this.config, (n) => this.paramView(n), (n, _embedding, shape) => this.backend.tensorWeight(this.paramView(n), shape[0], shape[1]));
  }

  /** Drop activation buffers (they are re-allocated on the next call). */
  releaseActivations(): void {
    this.seqPending = null;
    this.freeActs();
    this.freeHead();
  }

  /** Give everything back to the backend; the model cannot be used afterwards. */
  dispose(): void {
    this.releaseActivations();
    this.rope.release();
    this.freeBase();
    this.gradChunks.free();
    this.paramChunks.free();
  }

  private actAlloc(n: number, stats = false): Tensor {
    const a = this.backend.alloc(n, stats ? 'stats' : 'data');
    this.actBufs.push(a);
    return a;
  }

  private freeActs(): void {
    for (const b of this.actBufs) this.backend.free(b);
    this.actBufs = [];
    this.cap = 0; this.xs = []; this.acts = []; this.embSaved = NO_SAVE;
  }

  private freeHead(): void {
    for (const b of this.headBufs) this.backend.free(b);
    this.headBufs = [];
    this.headRows = 0;
  }

  private newActs(rows: number, d: LayerDims, l: number | null): Acts {
    const D = this.config.modelDim, A = (n: number, stats = false) => this.actAlloc(n, stats);
    // adapted linears save s·x̃·Aᵀ (and, for DoRA, their pre-magnitude output) for the backward
    const outs: Record<LinearKey, number> = { qkv: d.Wq, out: D, proj1: d.U, proj2: D };
    const saved = (k: LinearKey): LinearSaved => {
      const adapted = l === null ? this.adapted.size > 0 && this.anyAdapted(k) : this.lin[l][k] instanceof AdaptedLinear;
      if (!adapted || !this.shared) return NO_SAVE;
      return { ts: A(rows * this.shared.r), pre: this.shared.dora ? A(rows * outs[k]) : null };
    };
    return {
      xn1: A(rows * D), rstd1: A(rows, true), qkvRaw: A(rows * d.Wq), qkv: A(rows * d.Wq),
      qkRstd: A(rows * (d.Q + d.H), true), lse: A(rows * d.Q, true), att: A(rows * d.QD),
      h: A(rows * D), xn2: A(rows * D), rstd2: A(rows, true), u: A(rows * d.U),
      lin: { qkv: saved('qkv'), out: saved('out'), proj1: saved('proj1'), proj2: saved('proj2') },
    };
  }

  private anyAdapted(k: LinearKey): boolean { return this.lin.some((L) => L[k] instanceof AdaptedLinear); }

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
      this.acts = this.recompute ? [this.newActs(M, max, null)] : this.dims.map((d, l) => this.newActs(M, d, l));
      this.xf = A(M * D); this.rstdF = A(M, true);
      this.dres = A(M * D); this.dxn = A(M * D); this.xTmp = A(M * D);
      this.dqkv = A(M * max.Wq); this.datt = A(M * max.QD);
      this.du = A(M * max.U); this.dg = A(M * max.F); this.gbuf = A(M * max.F);
      if (this.shared) {
        this.shared.allocate(M, (n) => A(n));
        if (this.embAdapter) this.embSaved = { ts: A(M * this.shared.r), pre: this.shared.dora ? A(M * D) : null };
      }
    } catch (e) {
      this.freeActs();
      // the backend's memory is bounded (4 GiB for WASM): say what to change for training
      if (e instanceof OpenELMError && e.code === 'memory') {
        throw new OpenELMError('memory', `the activations of ${M} rows (batch × seq_len) do not fit in the ${this.backend.name} backend's memory ` +
          `next to the parameters and gradients; use recompute (activation checkpointing), a smaller batch_size with grad_accum, or a shorter seq_len (${e.message})`);
      }
      throw e;
    }
    this.cap = M;
  }

  private actsFor(l: number): Acts { return this.recompute ? this.acts[0] : this.acts[l]; }

  /** Block l: xOut = x + Attn(norm(x)), then xOut += FFN(norm(xOut)); saves into `a`. */
  private blockForward(l: number, x: Tensor, xOut: Tensor, a: Acts, B: number, T: number, pos: Int32Array): void {
    const c = this.config, D = c.modelDim, hd = c.headDim, M = B * T, eps = c.normEps;
    const d = this.dims[l], w = this.P[l], L = this.lin[l], S = a.lin, run = this.run, be = this.backend;
    const v = (t: Tensor, n: number) => be.view(t, 0, n);
    const xn1 = v(a.xn1, M * D), qkvRaw = v(a.qkvRaw, M * d.Wq), qkv = v(a.qkv, M * d.Wq);
    const att = v(a.att, M * d.QD), h = v(a.h, M * D), xn2 = v(a.xn2, M * D);
    const u = v(a.u, M * d.U), g = v(this.gbuf, M * d.F);
    const rope = this.rope.ensure(T);
    be.rmsnorm(xn1, x, w.attnNorm, M, D, eps, a.rstd1);
    L.qkv.forward(qkvRaw, xn1, M, false, S.qkv, run);
    be.copy(qkv, qkvRaw, M * d.Wq);
    be.qkNormRope(qkv, M, pos, d.Q, d.H, hd, w.qNorm, w.kNorm, rope, eps, a.qkRstd);
    be.causalAttention(att, a.lse, qkv, B, T, d.Q, d.H, hd);
    be.copy(h, x, M * D);
    L.out.forward(h, att, M, true, S.out, run);
    be.rmsnorm(xn2, h, w.ffnNorm, M, D, eps, a.rstd2);
    L.proj1.forward(u, xn2, M, false, S.proj1, run);
    if (c.ffnWithGlu) be.swiglu(g, u, M, d.F); else be.silu(g, u, M * d.F);
    be.copy(xOut, h, M * D);
    L.proj2.forward(xOut, g, M, true, S.proj2, run);
  }

  /** On entry this.dres holds dL/d(block output); on exit dL/d(block input). Parameter grads +=. */
  private blockBackward(l: number, x: Tensor, a: Acts, B: number, T: number, pos: Int32Array): void {
    const c = this.config, D = c.modelDim, hd = c.headDim, M = B * T;
    const d = this.dims[l], w = this.P[l], gw = this.G[l], L = this.lin[l], S = a.lin, run = this.run, be = this.backend;
    const v = (t: Tensor, n: number) => be.view(t, 0, n);
    const dres = v(this.dres, M * D), dxn = v(this.dxn, M * D);
    const xn1 = v(a.xn1, M * D), qkvRaw = v(a.qkvRaw, M * d.Wq), qkv = v(a.qkv, M * d.Wq);
    const att = v(a.att, M * d.QD), h = v(a.h, M * D), xn2 = v(a.xn2, M * D);
    const u = v(a.u, M * d.U), g = v(this.gbuf, M * d.F);
    const dg = v(this.dg, M * d.F), du = v(this.du, M * d.U);
    const datt = v(this.datt, M * d.QD), dqkv = v(this.dqkv, M * d.Wq);
    const rope = this.rope.ensure(T);
    // FFN: x_out = h + g·W2ᵀ, g = act(u), u = xn2·W1ᵀ, xn2 = norm(h)
    if (c.ffnWithGlu) be.swiglu(g, u, M, d.F); else be.silu(g, u, M * d.F);
    L.proj2.backward(dg, dres, g, M, S.proj2, run);
    if (c.ffnWithGlu) be.swigluBackward(du, dg, u, M, d.F); else be.siluBackward(du, dg, u, M * d.F);
    L.proj1.backward(dxn, du, xn2, M, S.proj1, run);
    be.rmsnormBackward(dres, gw.ffnNorm, dxn, h, w.ffnNorm, a.rstd2, M, D);
    // attention: h = x + att·Woᵀ
    L.out.backward(datt, dres, att, M, S.out, run);
    be.causalAttentionBackward(dqkv, datt, qkv, att, a.lse, B, T, d.Q, d.H, hd);
    be.qkNormRopeBackward(dqkv, gw.qNorm, gw.kNorm, qkvRaw, a.qkRstd, M, pos, d.Q, d.H, hd, w.qNorm, w.kNorm, rope);
    L.qkv.backward(dxn, dqkv, xn1, M, S.qkv, run);
    be.rmsnormBackward(dres, gw.attnNorm, dxn, x, w.attnNorm, a.rstd1, M, D);
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
    if (targets) {
      for (let i = 0; i < targets.length; i++) {
        const t = targets[i];
        if (t !== ignore && !(Number.isInteger(t) && t >= 0 && t < V)) {
          throw new OpenELMError('usage', `target id ${t} at position ${i} is outside the vocabulary [0, ${V}) and is not the ignore index`);
        }
      }
    }
  }

  /** Row r of every sequence sits at position r mod T. */
  private positions(B: number, T: number): Int32Array {
    const pos = new Int32Array(B * T);
    for (let r = 0; r < B * T; r++) pos[r] = r % T;
    return pos;
  }

  /** Embedding + all blocks + final norm; leaves normed rows in this.xf. */
  private forwardBody(inputs: Int32Array, B: number, T: number, ignore: number, pos: Int32Array): void {
    const c = this.config, D = c.modelDim, M = B * T, L = c.numLayers, be = this.backend;
    this.seqPending = null;
    this.ensureActs(M);
    if (this.adapter) for (const a of this.adapted.values()) a.prepare();
    be.embedding(be.view(this.xs[0], 0, M * D), be.tensorWeight(this.embed, c.vocabSize, D), inputs, ignore);
    if (this.embAdapter) {
      this.embAdapter.prepare();
      this.embAdapter.forward(be.view(this.xs[0], 0, M * D), inputs, ignore, this.embSaved);
    }
    for (let l = 0; l < L; l++) {
      this.blockForward(l, be.view(this.xs[l], 0, M * D), be.view(this.xs[l + 1], 0, M * D), this.actsFor(l), B, T, pos);
    }
    be.rmsnorm(be.view(this.xf, 0, M * D), be.view(this.xs[L], 0, M * D), this.normW, M, D, c.normEps, this.rstdF);
  }

  /** The rows whose target is valid, and the chunk size (head buffers grown to fit). */
  private headPlan(targets: Int32Array, M: number, ignore: number, n: number): { rowsIdx: Int32Array; CH: number } {
    const D = this.config.modelDim, V = this.config.vocabSize, be = this.backend;
    const rowsIdx = new Int32Array(n);
    for (let r = 0, i = 0; r < M; r++) if (targets[r] !== ignore) rowsIdx[i++] = r;
    const CH = Math.max(1, Math.min(this.headChunkRows, n));
    if (this.headRows < CH) {
      this.freeHead();
      this.headX = be.alloc(CH * D); this.headLogits = be.alloc(CH * V); this.headDx = be.alloc(CH * D);
      this.headBufs = [this.headX, this.headLogits, this.headDx];
      this.headRows = CH;
    }
    return { rowsIdx, CH };
  }

  /** Logits of m rows of rowsIdx from s, in headLogits; a run of consecutive rows is read in place. */
  private headChunk(rowsIdx: Int32Array, s: number, m: number): HeadChunk {
    const D = this.config.modelDim, V = this.config.vocabSize, be = this.backend;
    const r0 = rowsIdx[s];
    const contiguous = rowsIdx[s + m - 1] - r0 === m - 1;
    const idx = rowsIdx.subarray(s, s + m);
    let x: Tensor;
    if (contiguous) x = be.view(this.xf, r0 * D, m * D);
    else { x = be.view(this.headX, 0, m * D); be.gatherRows(x, this.xf, idx, D); }
    const lg = be.view(this.headLogits, 0, m * V);
    this.mm(lg, x, this.head, m, V, D, 'nt', false);
    return { x, lg, idx, contiguous };
  }

  /** With the chunk's logits overwritten by their gradient: its rows of dL/dxf (in this.dxn) and dHead +=. */
  private headChunkBackward(k: HeadChunk, m: number): void {
    const D = this.config.modelDim, V = this.config.vocabSize, be = this.backend;
    const dx = k.contiguous ? be.view(this.dxn, k.idx[0] * D, m * D) : be.view(this.headDx, 0, m * D);
    // both products read the logits' gradient: rounded once (bf16)
    withHeldBf16(be, this.precision === 'bf16' && this.dHead !== null, k.lg, () => {
      this.mm(dx, k.lg, this.head, m, D, V, 'nn', false);
      if (this.dHead) this.mm(this.dHead, k.lg, k.x, V, D, m, 'tn', true);
    });
    if (!k.contiguous) be.scatterRows(this.dxn, dx, k.idx, D);
  }

  /**
   * Fused head + loss over the rows whose target is valid, in chunks. With backward, writes
   * dL/dxf into this.dxn (zero for skipped rows) and accumulates the head gradient.
   */
  private async headLoss(targets: Int32Array, M: number, ignore: number, z: number, gradScale: number, backward: boolean): Promise<LossResult> {
    const D = this.config.modelDim, V = this.config.vocabSize, be = this.backend;
    const n = countValid(targets, ignore);
    if (backward) be.fill(be.view(this.dxn, 0, M * D), 0);
    if (n === 0) return { loss: 0, ce: 0, zloss: 0, validTokens: 0 };
    const { rowsIdx, CH } = this.headPlan(targets, M, ignore, n);
    const sums: Promise<LossSums>[] = [];
    const scale = backward ? gradScale / n : 0;
    for (let s = 0; s < n; s += CH) {
      const m = Math.min(CH, n - s);
      const k = this.headChunk(rowsIdx, s, m);
      const tc = new Int32Array(m);
      for (let i = 0; i < m; i++) tc[i] = targets[k.idx[i]];
      sums.push(be.crossEntropy(k.lg, tc, m, V, z, scale));
      if (!backward || scale === 0) continue;
      this.headChunkBackward(k, m);
    }
    let ceSum = 0, lseSqSum = 0;
    for (const p of await Promise.all(sums)) { ceSum += p.ceSum; lseSqSum += p.lseSqSum; }
    const ce = ceSum / n, zl = z * lseSqSum / n;
    return { loss: ce + zl, ce, zloss: zl, validTokens: n };
  }

  /**
   * One micro-batch: forward with saved activations, mean loss over valid targets, and parameter
   * gradients ADDED to `grads` (call zeroGrad() between optimizer steps). A micro-batch without
   * valid targets returns zeros and leaves the gradients unchanged.
   */
  async forwardBackward(inputs: Int32Array, targets: Int32Array, B: number, T: number, opts: ForwardBackwardOptions = {}): Promise<LossResult> {
    const ignore = opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX, z = zLossCoefficient(opts.zLoss);
    const gradScale = opts.gradScale ?? 1;
    this.check(inputs, targets, B, T, ignore);
    const M = B * T;
    const pos = this.positions(B, T);
    this.run = { train: true, seed: opts.dropoutSeed ?? this.dropoutCalls++ };
    return this.withHeldWeights(() => {
      this.forwardBody(inputs, B, T, ignore, pos);
      const n = countValid(targets, ignore);
      // the head's backward is issued inside headLoss; its loss sums are awaited at its end, after
      // the whole backward below has been issued too
      const loss = this.headLoss(targets, M, ignore, z, gradScale, true);
      if (n > 0 && gradScale !== 0) this.bodyBackward(inputs, B, T, ignore, pos);
      return loss;
    });
  }

  /** With dL/dxf in this.dxn: the final norm, every block and the embedding; parameter grads +=. */
  private bodyBackward(inputs: Int32Array, B: number, T: number, ignore: number, pos: Int32Array): void {
    const c = this.config, D = c.modelDim, M = B * T, L = c.numLayers, be = this.backend;
    const dres = be.view(this.dres, 0, M * D);
    be.fill(dres, 0);
    be.rmsnormBackward(dres, this.dNormW, be.view(this.dxn, 0, M * D), be.view(this.xs[L], 0, M * D), this.normW, this.rstdF, M, D);
    for (let l = L - 1; l >= 0; l--) {
      const x = be.view(this.xs[l], 0, M * D);
      if (this.recompute) this.blockForward(l, x, be.view(this.xTmp, 0, M * D), this.acts[0], B, T, pos);
      this.blockBackward(l, x, this.actsFor(l), B, T, pos);
    }
    if (this.dEmbed) be.embeddingBackward(this.dEmbed, dres, inputs, D, ignore);
    this.embAdapter?.backward(dres, inputs, ignore, this.embSaved);
  }

  /**
   * Per-sequence log-probability sums s_b = Σ_t log p(targets[b·T + t] | inputs of row b up to t),
   * over the targets that are not the ignore index (0 for a row without any). The activations are
   * kept so that sequenceLogprobsBackward can follow without another forward; any other call that
   * runs the model discards them.
   */
  async sequenceLogprobs(inputs: Int32Array, targets: Int32Array, B: number, T: number, opts: SequenceLogprobOptions = {}): Promise<Float64Array> {
    const ignore = opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX;
    this.check(inputs, targets, B, T, ignore);
    const V = this.config.vocabSize, M = B * T, be = this.backend;
    const pos = this.positions(B, T);
    this.run = opts.train ? { train: true, seed: opts.dropoutSeed ?? this.dropoutCalls++ } : { train: false, seed: 0 };
    const out = new Float64Array(B);
    const n = countValid(targets, ignore);
    const { rowsIdx, parts } = this.withHeldWeights(() => {
      this.forwardBody(inputs, B, T, ignore, pos);
      if (n === 0) return { rowsIdx: new Int32Array(0), parts: [] };
      const { rowsIdx, CH } = this.headPlan(targets, M, ignore, n);
      const parts: Promise<Float64Array>[] = [];
      for (let s = 0; s < n; s += CH) {
        const m = Math.min(CH, n - s);
        const k = this.headChunk(rowsIdx, s, m);
        const tc = new Int32Array(m);
        for (let i = 0; i < m; i++) tc[i] = targets[k.idx[i]];
        parts.push(be.rowLogprobs(k.lg, tc, m, V));
      }
      return { rowsIdx, parts };
    });
    if (n > 0) {
      // summed in row order, whatever the chunk size
      let i = 0;
      for (const p of await Promise.all(parts)) {
        for (let j = 0; j < p.length; j += 2, i++) out[Math.floor(rowsIdx[i] / T)] += p[j + 1] - p[j];
      }
    }
    this.seqPending = { inputs, targets, B, T, ignore, pos, run: this.run };
    return out;
  }

  /**
   * grads += Σ_b weights[b]·∇s_b for the batch of the preceding sequenceLogprobs call, from its kept
   * activations (only the head chunks' logits are computed again). Consumes that forward.
   */
  async sequenceLogprobsBackward(weights: ArrayLike<number>): Promise<void> {
    const p = this.seqPending;
    if (!p) throw new OpenELMError('usage', 'sequenceLogprobsBackward needs the activations of a preceding sequenceLogprobs call (any other use of the model discards them)');
    this.seqPending = null;
    const { inputs, targets, B, T, ignore, pos } = p;
    // the backward regenerates the forward's dropout masks from its seed
    this.run = p.run;
    if (weights.length !== B) throw new OpenELMError('usage', `weights has ${weights.length} values; expected one per sequence (${B})`);
    let any = false;
    for (let b = 0; b < B; b++) {
      if (!Number.isFinite(weights[b])) throw new OpenELMError('usage', `the weight of sequence ${b} is ${weights[b]}`);
      if (weights[b] !== 0) any = true;
    }
    const D = this.config.modelDim, V = this.config.vocabSize, M = B * T, be = this.backend;
    const n = countValid(targets, ignore);
    if (n === 0 || !any) return;
    be.fill(be.view(this.dxn, 0, M * D), 0);
    const { rowsIdx, CH } = this.headPlan(targets, M, ignore, n);
    const pending: Promise<LossSums>[] = [];
    this.withHeldWeights(() => {
      for (let s = 0; s < n; s += CH) {
        const m = Math.min(CH, n - s);
        const k = this.headChunk(rowsIdx, s, m);
        const tc = new Int32Array(m), rowScale = new Float32Array(m);
        for (let i = 0; i < m; i++) {
          tc[i] = targets[k.idx[i]];
          // ∇ log p(t) = −∇(lse − logit[t])
          rowScale[i] = -weights[Math.floor(k.idx[i] / T)];
        }
        pending.push(be.crossEntropy(k.lg, tc, m, V, 0, 1, rowScale));
        this.headChunkBackward(k, m);
      }
      this.bodyBackward(inputs, B, T, ignore, pos);
    });
    await Promise.all(pending);
  }

  /** Loss only (evaluation): no gradients touched. */
  evalLoss(inputs: Int32Array, targets: Int32Array, B: number, T: number, opts: Omit<ForwardBackwardOptions, 'gradScale'> = {}): Promise<LossResult> {
    const ignore = opts.ignoreIndex ?? DEFAULT_IGNORE_INDEX, z = zLossCoefficient(opts.zLoss);
    this.check(inputs, targets, B, T, ignore);
    this.run = { train: false, seed: 0 };
    return this.withHeldWeights(() => {
      this.forwardBody(inputs, B, T, ignore, this.positions(B, T));
      return this.headLoss(targets, B * T, ignore, z, 0, false);
    });
  }

  /** Logits for every position, [B·T, V] (tests and debugging; holds all rows at once). */
  async logits(inputs: Int32Array, B: number, T: number): Promise<Float32Array> {
    this.check(inputs, null, B, T, DEFAULT_IGNORE_INDEX);
    const c = this.config, M = B * T, be = this.backend;
    this.run = { train: false, seed: 0 };
    const out = this.withHeldWeights(() => {
      this.forwardBody(inputs, B, T, DEFAULT_IGNORE_INDEX, this.positions(B, T));
      const o = be.alloc(M * c.vocabSize);
      try {
        this.mm(o, be.view(this.xf, 0, M * c.modelDim), this.head, M, c.vocabSize, c.modelDim, 'nt', false);
      } catch (e) {
        be.free(o);
        throw e;
      }
      return o;
    });
    try {
      return await be.read(out);
    } finally {
      be.free(out);
    }
  }
}
