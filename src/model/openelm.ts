// OpenELM forward pass (inference), top to bottom.
//
// Notable features versus a vanilla Llama block (Apple, "OpenELM", arXiv 2404.14619; CoreNet
// corenet/modeling/models/language_modeling/general_gpt.py; docs/architecture.md):
// - layer-wise scaling: each layer has its own query heads Q_i, kv heads Hkv_i and FFN width F_i;
// - one fused qkv_proj whose rows are [Q heads | K heads | V heads], GQA with contiguous groups;
// - RMSNorm (eps 1e-6) of every q and k head over head_dim, *before* rotate-half RoPE;
// - SwiGLU with the first half of proj_1 as the SiLU gate and the second half as "up";
// - pre-norm blocks, a final RMSNorm, the head tied to the token embedding, no biases anywhere.
//
// Several sequences of different lengths run together: their new tokens are stacked into one matrix
// for every linear layer, and attention runs per sequence over that sequence's own KV cache.
// Everything runs through the Backend; the logits stay on it (forwardDevice) until a caller reads
// them, so a GPU backend records a whole step before anything comes back.

import type { Backend, Tensor, Weight } from '../backends/backend.js';
import { OpenELMError } from '../core/errors.js';
import { weightStorageBytes } from '../backends/weight-format.js';
import type { OpenELMConfig } from './config.js';
import { KVCache } from './kv-cache.js';
import { EMBEDDING, FINAL_NORM, LM_HEAD, mapLayers, type LayerParams } from './params.js';
import { Rope } from './rope.js';
import type { RuntimeAdapter } from './runtime-adapter.js';

export type LayerWeights = LayerParams<Tensor, Weight>;

export interface ModelWeights {
  embed: Weight;            // [V, D]
  layers: LayerWeights[];
  norm: Tensor;             // [D]
  head: Weight;             // the embedding itself when tied
}

/**
 * Build ModelWeights from two getters keyed by HF tensor name: `vec` for norm vectors, `lin` for
 * linear weights (`embedding` is true for the token embedding and an untied head).
 */
export function assembleWeights(c: OpenELMConfig, vec: (name: string, shape: number[]) => Tensor,
  lin: (name: string, embedding: boolean, shape: number[]) => Weight): ModelWeights {
  const layers = mapLayers(c, vec, (name, shape) => lin(name, false, shape));
  const embed = lin(EMBEDDING, true, [c.vocabSize, c.modelDim]);
  return {
    embed, layers, norm: vec(FINAL_NORM, [c.modelDim]),
    head: c.tiedEmbeddings ? embed : lin(LM_HEAD, true, [c.vocabSize, c.modelDim]),
  };
}

/** Bytes of all weights as stored (linear weights at their dtype, norms f32; a tied head once). */
export function weightsBytes(w: ModelWeights): number {
  const lin = (x: Weight) => weightStorageBytes(x);
  let n = lin(w.embed) + (w.head === w.embed ? 0 : lin(w.head)) + w.norm.length * 4;
  for (const l of w.layers) {
    n += lin(l.qkv) + lin(l.out) + lin(l.proj1) + lin(l.proj2) + (l.attnNorm.length + l.ffnNorm.length) * 4;
    n += ((l.qNorm?.length ?? 0) + (l.kNorm?.length ?? 0)) * 4;
  }
  return n;
}

/** Give every weight and norm of `w` back to the backend. */
export function freeWeights(be: Backend, w: ModelWeights): void {
  for (const L of w.layers) {
    for (const n of [L.attnNorm, L.ffnNorm, L.qNorm, L.kNorm]) if (n) be.free(n);
    for (const x of [L.qkv, L.out, L.proj1, L.proj2]) be.freeWeight(x);
  }
  be.free(w.norm);
  be.freeWeight(w.embed);
  if (w.head !== w.embed) be.freeWeight(w.head);
}

/** One sequence's new tokens for a forward call. */
export interface ForwardItem { cache: KVCache; tokens: ArrayLike<number>; }

/**
 * Grow-only scratch tensors for `rows` stacked tokens; reused across calls to avoid churn. Buffers
 * whose lives never overlap share one block, `act`: qkv and the attention output until the out
 * projection has read them, then the FFN's input projection `u`, with its gated output `g` written
 * over u's start. Sharing takes a layer's scratch from x, xn, tmp, qkv, att, u and g (22400 floats a
 * row for OpenELM-270M) down to x, xn and act (12800): 4.7 MiB less at a 128-token prefill, 18.8
 * MiB at a 512-token chunk.
 */
class Workspace {
  rows = 0;
  x!: Tensor; xn!: Tensor; act!: Tensor;
  /** Where, in floats per stacked row, att starts in act (qkv, u and g start at 0). */
  attAt = 0;
  logits: Tensor | null = null;
  logitRows = 0;
  constructor(private readonly c: OpenELMConfig, private readonly be: Backend) {}

  ensure(rows: number): void {
    if (rows <= this.rows) return;
    const c = this.c, D = c.modelDim, hd = c.headDim;
    let maxW = 0, maxQ = 0, maxF = 0;
    for (let l = 0; l < c.numLayers; l++) {
      maxW = Math.max(maxW, (c.numQueryHeads[l] + 2 * c.numKvHeads[l]) * hd);
      maxQ = Math.max(maxQ, c.numQueryHeads[l] * hd);
      maxF = Math.max(maxF, c.ffnDims[l]);
    }
    this.releaseRows();
    this.rows = rows;
    this.attAt = maxW;
    // g in place: SwiGLU writes g over the start of u (Backend.swiglu allows it), so the FFN
    // takes 2F floats a row, not 3F; without GLU the input projection writes g itself, which
    // SiLU then updates in place. D: logitsFor gathers the selected rows of x into act.
    const actW = Math.max(maxW + maxQ, (c.ffnWithGlu ? 2 : 1) * maxF, D);
    this.x = this.be.alloc(rows * D); this.xn = this.be.alloc(rows * D); this.act = this.be.alloc(rows * actW);
  }

  /** A logits tensor of at least `rows` rows of V. */
  logitsFor(rows: number): Tensor {
    if (!this.logits || this.logitRows < rows) {
      if (this.logits) this.be.free(this.logits);
      this.logitRows = Math.max(rows, this.logitRows);
      this.logits = this.be.alloc(this.logitRows * this.c.vocabSize);
    }
    return this.logits;
  }

  private releaseRows(): void {
    if (!this.rows) return;
    for (const b of [this.x, this.xn, this.act]) this.be.free(b);
    this.rows = 0;
  }

  release(): void {
    this.releaseRows();
    if (this.logits) this.be.free(this.logits);
    this.logits = null; this.logitRows = 0;
  }
}

/**
 * Debug hook: called with intermediate activations (rows × width, row-major, read back from the
 * backend) during forward. Names: embed, and per layer attn_norm, qkv (before QK-norm/RoPE),
 * qkv_rope, attn, attn_out, h, ffn_norm, ffn_out, block_out; then final_norm (layer -1). Used by
 * the golden tests.
 */
export type Tap = (layer: number, name: string, data: Promise<Float32Array>) => void;

export class OpenELM {
  private ws: Workspace;
  /** Set to observe intermediate activations (slows the forward pass). */
  tap: Tap | null = null;
  private readonly rope: Rope;
  /** Largest number of new tokens pushed through the layers at once (longer prompts go in chunks). */
  prefillChunk = 512;
  /** A LoRA adapter applied on top of the base weights in every forward call (see withAdapter). */
  readonly adapter: RuntimeAdapter | null = null;
  /** The model without an adapter (views made by withAdapter inherit from it). */
  private readonly root: OpenELM = this;

  constructor(readonly config: OpenELMConfig, readonly backend: Backend, readonly weights: ModelWeights) {
    this.ws = new Workspace(config, backend);
    this.rope = new Rope(config, backend);
  }

  /**
   * This model with `a` applied at run time (null: the base). The view shares the weights,
   * workspace and RoPE tables, so views must not run forward calls concurrently, which holds for
   * the model itself too (one forward call's results at a time).
   */
  withAdapter(a: RuntimeAdapter | null): OpenELM {
    if (a === this.adapter) return this;
    if (a === null) return this.root;
    const view = Object.create(this.root) as OpenELM;
    Object.defineProperty(view, 'adapter', { value: a, enumerable: true });
    return view;
  }

  /** A KV cache for one sequence of up to `capacity` tokens (default: the model's context length). */
  newCache(capacity = this.config.maxContextLength): KVCache {
    return new KVCache(this.config, this.backend, capacity);
  }

  /**
   * Push new tokens of one or more sequences through the model, appending to their caches.
   * Returns logits [items, V] for each item's last token, or [total tokens, V] with all: true.
   */
  async forward(items: ForwardItem[], opts: { all?: boolean } = {}): Promise<Float32Array> {
    const { logits, rows } = this.forwardDevice(items, opts);
    return this.backend.read(logits, 0, rows * this.config.vocabSize);
  }

  /**
   * forward() without the read-back: the logits stay on the backend (rows × V at the start of the
   * returned tensor, valid until the next forward call), so a caller that needs only an argmax or
   * a few values reads just those.
   */
  forwardDevice(items: ForwardItem[], opts: { all?: boolean } = {}): { logits: Tensor; rows: number } {
    const c = this.config, V = c.vocabSize;
    let total = 0;
    for (const it of items) {
      if (it.tokens.length === 0) throw new OpenELMError('usage', 'forward() needs at least one token per sequence');
      if (it.cache.length + it.tokens.length > it.cache.capacity) {
        throw new OpenELMError('context', `sequence of ${it.cache.length + it.tokens.length} tokens does not fit the KV cache (${it.cache.capacity} tokens)`);
      }
      for (let i = 0; i < it.tokens.length; i++) {
        const t = it.tokens[i];
        if (!Number.isInteger(t) || t < 0 || t >= V) throw new OpenELMError('usage', `token id ${t} is outside the vocabulary [0, ${V})`);
      }
      total += it.tokens.length;
    }
    const outRows = opts.all ? total : items.length;
    const out = this.ws.logitsFor(outRows);
    // Chunk long prefills so scratch memory stays bounded; each chunk still batches all items.
    const done = items.map(() => 0);
    let outRow = 0;
    for (;;) {
      const chunk: ForwardItem[] = [];
      const owners: number[] = [];
      let budget = this.prefillChunk;
      for (let i = 0; i < items.length && budget > 0; i++) {
        const left = items[i].tokens.length - done[i];
        if (left <= 0) continue;
        const take = Math.min(left, budget);
        const toks = Array.prototype.slice.call(items[i].tokens, done[i], done[i] + take) as number[];
        chunk.push({ cache: items[i].cache, tokens: toks });
        owners.push(i);
        done[i] += take;
        budget -= take;
      }
      if (chunk.length === 0) break;
      // Which stacked rows get logits, and where they go in `out`.
      const sel: number[] = [], dst: number[] = [];
      let r = 0;
      for (let k = 0; k < chunk.length; k++) {
        const n = chunk[k].tokens.length;
        if (opts.all) for (let j = 0; j < n; j++) { sel.push(r + j); dst.push(outRow++); }
        else if (done[owners[k]] === items[owners[k]].tokens.length) { sel.push(r + n - 1); dst.push(owners[k]); }
        r += n;
      }
      // Without every row's logits, the last layer's feed-forward runs on the rows that get them
      // (runLayers moves them to the first rows of ws.x)
      const kept = this.runLayers(chunk, opts.all ? undefined : sel);
      if (sel.length) this.logitsFor(kept ? sel.map((_, i) => i) : sel, dst, out);
    }
    return { logits: out, rows: outRows };
  }

  /**
   * Run all layers over the stacked tokens of `items`; leaves the final hidden states in ws.x.
   * With `keep` (the stacked rows whose logits are wanted, ascending), the last layer's attention
   * output projection and feed-forward run on those rows alone, as llama.cpp does for outputs it
   * does not return: the KV cache needs every row's keys and values, but nothing reads the other
   * rows' final states. Those rows then sit in the first keep.length rows of ws.x; returns whether
   * that happened (not with a tap, nor when every row is kept).
   */
  private runLayers(items: ForwardItem[], keep?: number[]): boolean {
    const c = this.config, be = this.backend, ws = this.ws, D = c.modelDim, hd = c.headDim;
    let M = 0;
    for (const it of items) M += it.tokens.length;
    ws.ensure(M);
    const ids = new Int32Array(M), pos = new Int32Array(M);
    let r = 0, maxPos = 0;
    for (const it of items) {
      for (let j = 0; j < it.tokens.length; j++) { ids[r] = it.tokens[j]; pos[r] = it.cache.length + j; r++; }
      maxPos = Math.max(maxPos, it.cache.length + it.tokens.length);
    }
    const rope = this.rope.ensure(maxPos);
    const V = (t: Tensor, n: number) => be.view(t, 0, n);
    // the tap path's projection outputs go to xn, which their inputs (att, g) no longer need
    let x = V(ws.x, M * D), xn = V(ws.xn, M * D), tmp = xn;
    const tap = this.tap ? (l: number, name: string, t: Tensor) => this.tap!(l, name, be.read(t)) : null;
    const ad = this.adapter;
    be.embedding(x, this.weights.embed, ids);
    ad?.embedding(x, ids);
    tap?.(-1, 'embed', x);
    let kept = false;
    for (let l = 0; l < c.numLayers; l++) {
      const L = this.weights.layers[l];
      const Q = c.numQueryHeads[l], H = c.numKvHeads[l], F = c.ffnDims[l];
      const W = (Q + 2 * H) * hd;
      const qkv = V(ws.act, M * W);
      let att = be.view(ws.act, M * ws.attAt, M * Q * hd);
      // attention
      be.rmsnorm(xn, x, L.attnNorm, M, D, c.normEps);
      tap?.(l, 'attn_norm', xn);
      // one sequence (a decode step, a prompt) without a tap or an adapter: the projection, QK-norm,
      // RoPE and the cache store in one call where the backend has it
      const fused = items.length === 1 && !tap && !ad && be.linearQkv !== undefined;
      if (fused) {
        const it = items[0];
        be.linearQkv!(qkv, xn, L.qkv, M, pos, Q, H, hd, L.qNorm, L.kNorm, rope, c.normEps, it.cache.k[l], it.cache.v[l], it.cache.length, it.cache.capacity);
      } else {
        be.linear(qkv, xn, L.qkv, M);
        ad?.linear(qkv, xn, M, l, 'qkv_proj');
        tap?.(l, 'qkv', qkv);
        be.qkNormRope(qkv, M, pos, Q, H, hd, L.qNorm, L.kNorm, rope, c.normEps);
        tap?.(l, 'qkv_rope', qkv);
      }
      let r0 = 0;
      for (const it of items) {
        const S = it.tokens.length, P = it.cache.length;
        const q = be.view(qkv, r0 * W, S * W);
        if (!fused) be.storeKV(it.cache.k[l], it.cache.v[l], q, S, P, Q, H, hd, it.cache.capacity);
        be.attention(be.view(att, r0 * Q * hd, S * Q * hd), q, it.cache.k[l], it.cache.v[l], S, P, Q, H, hd, it.cache.capacity);
        r0 += S;
      }
      if (keep && !tap && l === c.numLayers - 1 && keep.length < M && keep.length * Q * hd <= ws.rows * D) {
        // the rows that get logits, moved to the front: att's to xn (free until the norm below,
        // which comes after the projection that reads them), x's to ws.x through act (qkv is spent)
        const n = keep.length;
        if (n === 0) break;
        const rows = Int32Array.from(keep);
        be.gatherRows(be.view(ws.xn, 0, n * Q * hd), att, rows, Q * hd);
        be.gatherRows(be.view(ws.act, 0, n * D), x, rows, D);
        be.copy(x, be.view(ws.act, 0, n * D), n * D);
        att = be.view(ws.xn, 0, n * Q * hd);
        M = n;
        x = V(ws.x, M * D); xn = V(ws.xn, M * D); tmp = xn;
        kept = true;
      }
      if (tap) {
        tap(l, 'attn', att);
        be.linear(tmp, att, L.out, M);
        ad?.linear(tmp, att, M, l, 'out_proj');
        tap(l, 'attn_out', tmp);
        be.add(x, tmp, M * D);
        tap(l, 'h', x);
      } else { be.linear(x, att, L.out, M, true); ad?.linear(x, att, M, l, 'out_proj'); }
      // feed-forward
      be.rmsnorm(xn, x, L.ffnNorm, M, D, c.normEps);
      tap?.(l, 'ffn_norm', xn);
      const g = V(ws.act, M * F);
      if (c.ffnWithGlu) {
        const u = V(ws.act, M * 2 * F);
        // (an adapter adds to u before SwiGLU reads it)
        if (!ad && be.linearSwiglu) be.linearSwiglu(g, u, xn, L.proj1, M, F);
        else {
          be.linear(u, xn, L.proj1, M);
          ad?.linear(u, xn, M, l, 'proj_1');
          be.swiglu(g, u, M, F);
        }
      } else {
        be.linear(g, xn, L.proj1, M);
        ad?.linear(g, xn, M, l, 'proj_1');
        be.silu(g, g, M * F);
      }
      if (tap) {
        be.linear(tmp, g, L.proj2, M);
        ad?.linear(tmp, g, M, l, 'proj_2');
        tap(l, 'ffn_out', tmp);
        be.add(x, tmp, M * D);
        tap(l, 'block_out', x);
      } else { be.linear(x, g, L.proj2, M, true); ad?.linear(x, g, M, l, 'proj_2'); }
    }
    for (const it of items) it.cache.length += it.tokens.length;
    return kept;
  }

  /** Final norm + head for stacked rows `rows` of ws.x, into rows `dst` of `out`. */
  private logitsFor(rows: number[], dst: number[], out: Tensor): void {
    const c = this.config, D = c.modelDim, V = c.vocabSize, be = this.backend, ws = this.ws;
    const n = rows.length;
    // ws.act and ws.xn have room for every stacked row, and n ≤ stacked rows
    const sel = be.view(ws.act, 0, n * D), normed = be.view(ws.xn, 0, n * D);
    be.gatherRows(sel, ws.x, Int32Array.from(rows), D);
    be.rmsnorm(normed, sel, this.weights.norm, n, D, c.normEps);
    if (this.tap) this.tap(-1, 'final_norm', be.read(normed));
    let inOrder = true;
    for (let i = 1; i < n; i++) if (dst[i] !== dst[0] + i) { inOrder = false; break; }
    if (inOrder) { be.linear(be.view(out, dst[0] * V, n * V), normed, this.weights.head, n); return; }
    // rows that finish in different prefill chunks land at their items' places
    const tmp = be.alloc(n * V);
    be.linear(tmp, normed, this.weights.head, n);
    be.scatterRows(out, tmp, Int32Array.from(dst), V);
    be.free(tmp);
  }

  /** Convenience: logits for every position of one token sequence, from an empty cache. */
  async logitsAll(tokens: ArrayLike<number>): Promise<Float32Array> {
    const cache = this.newCache(Math.max(tokens.length, 1));
    try {
      return await this.forward([{ cache, tokens }], { all: true });
    } finally {
      cache.dispose();
    }
  }

  /**
   * Run a short prefill, a decode step and a greedy pick through a scratch cache, so that a GPU
   * backend compiles its kernels (and grows its buffers) now instead of on the first real token.
   * Reads back and leaves nothing behind but warm caches.
   */
  async warmup(): Promise<void> {
    const n = Math.min(16, this.config.maxContextLength - 1);
    const cache = this.newCache(n + 1);
    try {
      const prompt = Array.from({ length: n }, (_, i) => (i * 7919) % this.config.vocabSize);
      if (n > 0) this.forwardDevice([{ cache, tokens: prompt }]);
      const { logits, rows } = this.forwardDevice([{ cache, tokens: [0] }]);
      await Promise.all([this.backend.argmax(logits, rows, this.config.vocabSize), this.backend.read(logits, 0, 1)]);
    } finally {
      cache.dispose();
    }
  }

  /** Give the workspace and RoPE tables back to the backend (the weights stay). */
  release(): void {
    this.ws.release();
    this.rope.release();
  }
}
