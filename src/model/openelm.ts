// OpenELM forward pass (inference), top to bottom.
//
// Notable features versus a vanilla Llama block (Apple, "OpenELM", arXiv 2404.14619; CoreNet
// corenet/modeling/models/language_modeling/general_gpt.py):
// - layer-wise scaling: each layer has its own query heads Q_i, kv heads Hkv_i and FFN width F_i;
// - one fused qkv_proj whose rows are [Q heads | K heads | V heads], GQA with contiguous groups;
// - RMSNorm (eps 1e-6) of every q and k head over head_dim, *before* rotate-half RoPE;
// - SwiGLU with the first half of proj_1 as the SiLU gate and the second half as "up";
// - pre-norm blocks, a final RMSNorm, the head tied to the token embedding, no biases anywhere.
//
// Several sequences of different lengths run together: their new tokens are stacked into one matrix
// for every linear layer, and attention runs per sequence over that sequence's own KV cache.

import type { Backend, Weight } from '../backends/backend.js';
import { OpenELMError } from '../core/errors.js';
import type { OpenELMConfig } from './config.js';
import { KVCache } from './kv-cache.js';

export interface LayerWeights {
  attnNorm: Float32Array;   // [D]
  qkv: Weight;              // [(Q + 2·Hkv)·hd, D]
  qNorm: Float32Array | null; // [hd]
  kNorm: Float32Array | null; // [hd]
  out: Weight;              // [D, Q·hd]
  ffnNorm: Float32Array;    // [D]
  proj1: Weight;            // [2F, D] (gate rows first) or [F, D] without GLU
  proj2: Weight;            // [D, F]
}

export interface ModelWeights {
  embed: Weight;            // [V, D]
  layers: LayerWeights[];
  norm: Float32Array;       // [D]
  head: Weight;             // the embedding itself when tied
}

/**
 * Build ModelWeights from two getters keyed by HF tensor name: `vec` for norm vectors, `lin` for
 * linear weights (`embedding` is true for the token embedding and an untied head). The one place
 * that maps checkpoint names onto the model's structure.
 */
export function assembleWeights(c: OpenELMConfig, vec: (name: string) => Float32Array,
  lin: (name: string, embedding: boolean) => Weight): ModelWeights {
  const layers: LayerWeights[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `transformer.layers.${i}.`;
    layers.push({
      attnNorm: vec(p + 'attn_norm.weight'),
      qkv: lin(p + 'attn.qkv_proj.weight', false),
      qNorm: c.normalizeQk ? vec(p + 'attn.q_norm.weight') : null,
      kNorm: c.normalizeQk ? vec(p + 'attn.k_norm.weight') : null,
      out: lin(p + 'attn.out_proj.weight', false),
      ffnNorm: vec(p + 'ffn_norm.weight'),
      proj1: lin(p + 'ffn.proj_1.weight', false),
      proj2: lin(p + 'ffn.proj_2.weight', false),
    });
  }
  const embed = lin('transformer.token_embeddings.weight', true);
  return { embed, layers, norm: vec('transformer.norm.weight'), head: c.tiedEmbeddings ? embed : lin('lm_head.weight', true) };
}

/** One sequence's new tokens for a forward call. */
export interface ForwardItem { cache: KVCache; tokens: ArrayLike<number>; }

/** Growable scratch buffers for `rows` stacked tokens; reused across calls to avoid churn. */
class Workspace {
  rows = 0;
  x!: Float32Array; xn!: Float32Array; qkv!: Float32Array; att!: Float32Array; tmp!: Float32Array;
  u!: Float32Array; g!: Float32Array; pos!: Int32Array;
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
    if (this.rows) for (const b of [this.x, this.xn, this.tmp, this.qkv, this.att, this.u, this.g]) this.be.free?.(b);
    this.rows = rows;
    this.x = this.be.alloc(rows * D);
    this.xn = this.be.alloc(rows * D);
    this.tmp = this.be.alloc(rows * D);
    this.qkv = this.be.alloc(rows * maxW);
    this.att = this.be.alloc(rows * maxQ);
    this.u = this.be.alloc(rows * 2 * maxF);
    this.g = this.be.alloc(rows * maxF);
    this.pos = new Int32Array(rows);
  }
}

/**
 * Debug hook: called with intermediate activations (rows × width, row-major) during forward.
 * Names: embed, and per layer attn_norm, qkv (before QK-norm/RoPE), qkv_rope, attn, attn_out, h,
 * ffn_norm, ffn_out, block_out; then final_norm (layer -1). Used by the golden tests.
 */
export type Tap = (layer: number, name: string, data: Float32Array) => void;

export class OpenELM {
  private ws: Workspace;
  /** Set to observe intermediate activations (slows the forward pass slightly). */
  tap: Tap | null = null;
  private cos: Float32Array = new Float32Array(0);
  private sin: Float32Array = new Float32Array(0);
  private ropeLen = 0;
  /** Largest number of new tokens pushed through the layers at once (longer prompts go in chunks). */
  prefillChunk = 512;

  constructor(readonly config: OpenELMConfig, readonly backend: Backend, readonly weights: ModelWeights) {
    this.ws = new Workspace(config, backend);
    this.ensureRope(config.ropeMaxLength);
  }

  /** A KV cache for one sequence of up to `capacity` tokens (default: the model's context length). */
  newCache(capacity = this.config.maxContextLength): KVCache {
    return new KVCache(this.config, this.backend, capacity);
  }

  // RoPE tables in float64 math, stored f32: cos/sin of p·base^(-2j/hd), regrown past rope_max_length.
  private ensureRope(n: number): void {
    if (n <= this.ropeLen) return;
    const len = Math.max(n, this.ropeLen * 2);
    const half = this.config.headDim / 2, base = this.config.ropeFreqConstant;
    const cos = new Float32Array(len * half), sin = new Float32Array(len * half);
    const inv = new Float64Array(half);
    for (let j = 0; j < half; j++) inv[j] = 1 / Math.pow(base, (2 * j) / this.config.headDim);
    for (let p = 0; p < len; p++) {
      for (let j = 0; j < half; j++) {
        const th = p * inv[j];
        cos[p * half + j] = Math.cos(th);
        sin[p * half + j] = Math.sin(th);
      }
    }
    this.cos = cos; this.sin = sin; this.ropeLen = len;
  }

  /**
   * Push new tokens of one or more sequences through the model, appending to their caches.
   * Returns logits [items, V] for each item's last token, or [total tokens, V] with all: true.
   */
  forward(items: ForwardItem[], opts: { all?: boolean } = {}): Float32Array {
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
    const out = new Float32Array((opts.all ? total : items.length) * V);
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
      this.runLayers(chunk);
      // Select which rows get logits.
      const sel: number[] = [];
      let r = 0;
      for (let k = 0; k < chunk.length; k++) {
        const n = chunk[k].tokens.length;
        if (opts.all) for (let j = 0; j < n; j++) sel.push(r + j);
        else if (done[owners[k]] === items[owners[k]].tokens.length) sel.push(r + n - 1);
        r += n;
      }
      if (sel.length) {
        if (opts.all) {
          this.logitsFor(sel, out.subarray(outRow * V, (outRow + sel.length) * V));
          outRow += sel.length;
        } else {
          // Items finish in different chunks; place each last-token row at its item's index.
          const tmp = new Float32Array(sel.length * V);
          this.logitsFor(sel, tmp);
          let s = 0;
          for (let k = 0; k < chunk.length; k++) {
            if (done[owners[k]] === items[owners[k]].tokens.length) {
              out.set(tmp.subarray(s * V, (s + 1) * V), owners[k] * V);
              s++;
            }
          }
        }
      }
    }
    return out;
  }

  /** Run all layers over the stacked tokens of `items`; leaves the final hidden states in ws.x. */
  private runLayers(items: ForwardItem[]): void {
    const c = this.config, be = this.backend, ws = this.ws, D = c.modelDim, hd = c.headDim;
    let M = 0;
    for (const it of items) M += it.tokens.length;
    ws.ensure(M);
    const ids = new Int32Array(M);
    let r = 0, maxPos = 0;
    for (const it of items) {
      for (let j = 0; j < it.tokens.length; j++) { ids[r] = it.tokens[j]; ws.pos[r] = it.cache.length + j; r++; }
      maxPos = Math.max(maxPos, it.cache.length + it.tokens.length);
    }
    this.ensureRope(maxPos);
    const x = ws.x.subarray(0, M * D), xn = ws.xn.subarray(0, M * D);
    be.embedding(x, this.weights.embed, ids);
    const tap = this.tap, tmp = ws.tmp.subarray(0, M * D);
    tap?.(-1, 'embed', x);
    for (let l = 0; l < c.numLayers; l++) {
      const L = this.weights.layers[l];
      const Q = c.numQueryHeads[l], H = c.numKvHeads[l], F = c.ffnDims[l];
      const W = (Q + 2 * H) * hd;
      const qkv = ws.qkv.subarray(0, M * W), att = ws.att.subarray(0, M * Q * hd);
      // attention
      be.rmsnorm(xn, x, L.attnNorm, M, D, c.normEps);
      tap?.(l, 'attn_norm', xn);
      be.linear(qkv, xn, L.qkv, M);
      tap?.(l, 'qkv', qkv);
      be.qkNormRope(qkv, M, ws.pos, Q, H, hd, L.qNorm, L.kNorm, this.cos, this.sin, c.normEps);
      tap?.(l, 'qkv_rope', qkv);
      let r0 = 0;
      for (const it of items) {
        const S = it.tokens.length, P = it.cache.length;
        const q = qkv.subarray(r0 * W, (r0 + S) * W);
        be.storeKV(it.cache.k[l], it.cache.v[l], q, S, P, Q, H, hd, it.cache.capacity);
        be.attention(att.subarray(r0 * Q * hd, (r0 + S) * Q * hd), q, it.cache.k[l], it.cache.v[l], S, P, Q, H, hd, it.cache.capacity);
        r0 += S;
      }
      if (tap) {
        tap(l, 'attn', att);
        be.linear(tmp, att, L.out, M);
        tap(l, 'attn_out', tmp);
        be.addInPlace(x, tmp, M * D);
        tap(l, 'h', x);
      } else be.linear(x, att, L.out, M, true);
      // feed-forward
      be.rmsnorm(xn, x, L.ffnNorm, M, D, c.normEps);
      tap?.(l, 'ffn_norm', xn);
      const g = ws.g.subarray(0, M * F);
      if (c.ffnWithGlu) {
        const u = ws.u.subarray(0, M * 2 * F);
        be.linear(u, xn, L.proj1, M);
        be.swiglu(g, u, M, F);
      } else {
        be.linear(g, xn, L.proj1, M);
        be.silu(g, g, M * F);
      }
      if (tap) {
        be.linear(tmp, g, L.proj2, M);
        tap(l, 'ffn_out', tmp);
        be.addInPlace(x, tmp, M * D);
        tap(l, 'block_out', x);
      } else be.linear(x, g, L.proj2, M, true);
    }
    for (const it of items) it.cache.length += it.tokens.length;
  }

  /** Final norm + tied head for the selected rows of ws.x. */
  private logitsFor(rows: number[], out: Float32Array): void {
    const c = this.config, D = c.modelDim, be = this.backend, ws = this.ws;
    const n = rows.length;
    const sel = ws.tmp.length >= n * D ? ws.tmp.subarray(0, n * D) : be.alloc(n * D);
    for (let i = 0; i < n; i++) sel.set(ws.x.subarray(rows[i] * D, rows[i] * D + D), i * D);
    const normed = ws.xn.length >= n * D ? ws.xn.subarray(0, n * D) : be.alloc(n * D);
    be.rmsnorm(normed, sel, this.weights.norm, n, D, c.normEps);
    this.tap?.(-1, 'final_norm', normed);
    be.linear(out, normed, this.weights.head, n);
  }

  /** Convenience: logits for every position of one token sequence, from an empty cache. */
  logitsAll(tokens: ArrayLike<number>): Float32Array {
    const cache = this.newCache(Math.max(tokens.length, 1));
    return this.forward([{ cache, tokens }], { all: true });
  }
}
