// Folding an adapter into the base weights, as PEFT's merge does, so a plain HF model computes what
// the adapted model computes:
//   LoRA:  W' = W + s·B·A                       (embedding: W' = W + s·(B·A)ᵀ, W stored [vocab, dim])
//   DoRA:  W' = m / ||W + s·B·A|| · (W + s·B·A)  norms per output row for linears; for the
//          embedding per model dimension, over the vocabulary (PEFT's axis conventions).
// The tied head: Apple's model computes logits with the *base* embedding even when the lookup is
// adapted (PEFT wraps only the lookup). Folding the adapter into the embedding would change the
// head too, so a merged model whose embedding was adapted gets an untied lm_head.weight holding the
// base embedding and share_input_output_layers: false. (PEFT's own merge_and_unload keeps the head
// tied and so does not reproduce the adapted model; see docs/adapters.md.)

import { OpenELMError } from '../core/errors.js';
import { f32ToBf16, f32ToF16 } from '../core/dtype.js';
import type { OpenELMConfig, OpenELMHFConfig } from '../model/config.js';
import type { TensorSource } from '../model/load.js';
import { EMBEDDING, LM_HEAD } from '../model/params.js';
import { adapterScale, doraDirection, type Adapter, type ModuleAdapter } from './adapter.js';

/** The merged weight of one module, in the base weight's layout ([out, in]; embedding [vocab, dim]). */
export function mergeModuleWeight(m: ModuleAdapter, W: ArrayLike<number>, scale: number, dora: boolean): Float32Array {
  return Float32Array.from(mergedF64(m, W, scale, dora));
}

/** mergeModuleWeight before rounding to f32. */
function mergedF64(m: ModuleAdapter, W: ArrayLike<number>, scale: number, dora: boolean): Float64Array {
  const { inFeatures: I, outFeatures: O, kind } = m.module;
  if (W.length !== I * O) throw new OpenELMError('adapter', `cannot merge into ${m.module.weight}: it has ${W.length} values, the adapter expects ${O * I}`);
  const V = doraDirection(m, W, scale); // [out, in] = W + s·B·A in the direction orientation
  if (dora) {
    if (!m.magnitude) throw new OpenELMError('adapter', `DoRA adapter has no magnitude vector for ${m.module.name}`);
    for (let o = 0; o < O; o++) {
      let ss = 0;
      for (let i = 0; i < I; i++) ss += V[o * I + i] * V[o * I + i];
      const f = m.magnitude[o] / Math.sqrt(ss);
      for (let i = 0; i < I; i++) V[o * I + i] *= f;
    }
  }
  if (kind !== 'embedding') return V;
  const out = new Float64Array(O * I);
  for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) out[i * O + o] = V[o * I + i];
  return out;
}

/**
 * The weight of a module adapted by several adapters at once, active in the given order, as PEFT
 * computes it (its forward and its merge agree): a LoRA adapter adds its change, W_k = W_{k-1} + Δ_k
 * with Δ_k = s·B·A; a DoRA adapter rescales what came before, W_k = c_k ⊙ (W_{k-1} + Δ_k), with
 * c_k = m / ‖W + Δ_k‖ taken over the *base* weight W (PEFT's DoRA forward scales the running
 * result; its merge takes the norm of the unmerged weight). LoRA adapters alone commute; an order
 * with DoRA matters. With one adapter this is mergeModuleWeight.
 */
export function mergeModuleWeights(parts: readonly { module: ModuleAdapter; scale: number; dora: boolean }[], W: ArrayLike<number>): Float32Array {
  if (parts.length === 1) return mergeModuleWeight(parts[0].module, W, parts[0].scale, parts[0].dora);
  const cur = Float64Array.from(W);
  for (const p of parts) {
    const { inFeatures: I, outFeatures: O, kind } = p.module.module;
    const plus = mergedF64(p.module, W, p.scale, false); // W + Δ_k, in the base weight's layout
    // element (o, i) of the direction orientation: linears store [out, in], the embedding [vocab, dim]
    const at = kind === 'embedding' ? (o: number, i: number) => i * O + o : (o: number, i: number) => o * I + i;
    if (!p.dora) {
      for (let e = 0; e < cur.length; e++) cur[e] += plus[e] - W[e];
      continue;
    }
    const mag = p.module.magnitude;
    if (!mag) throw new OpenELMError('adapter', `DoRA adapter has no magnitude vector for ${p.module.module.name}`);
    for (let o = 0; o < O; o++) {
      let ss = 0;
      for (let i = 0; i < I; i++) ss += plus[at(o, i)] * plus[at(o, i)];
      const c = mag[o] / Math.sqrt(ss);
      for (let i = 0; i < I; i++) {
        const e = at(o, i);
        cur[e] = c * (cur[e] + plus[e] - W[e]);
      }
    }
  }
  return Float32Array.from(cur);
}

export interface MergedWeights {
  /** Replaced or added tensors (HF keys); every other base tensor is unchanged. */
  weights: Map<string, Float32Array>;
  /** The config.json of the merged model. */
  hfConfig: OpenELMHFConfig;
}

/** Merge `a` into the base weights that `baseWeight(name)` returns (f32 or wider, HF layout). */
export function mergeAdapter(c: OpenELMConfig, a: Adapter, baseWeight: (name: string) => ArrayLike<number>): MergedWeights {
  const scale = adapterScale(a.settings), dora = a.settings.type === 'dora';
  const weights = new Map<string, Float32Array>();
  let untie = false;
  for (const m of a.modules) {
    const W = baseWeight(m.module.weight);
    if (m.module.kind === 'embedding' && c.tiedEmbeddings) {
      untie = true;
      weights.set('lm_head.weight', Float32Array.from(W));
    }
    weights.set(m.module.weight, mergeModuleWeight(m, W, scale, dora));
  }
  const hfConfig: OpenELMHFConfig = { ...c.hf };
  if (untie) hfConfig.share_input_output_layers = false;
  return { weights, hfConfig };
}

/**
 * A tensor source that reads as the base with the adapter(s) merged in (computed when a tensor is
 * first read, the last one kept for chunked reads), plus the untied lm_head when the embedding is
 * adapted; and the config to load it with. Inference with adapters loads this, so every inference
 * path (KV cache, batches, any storage dtype) runs the adapted model at the cost of the base.
 * Several adapters (for the same base) act as PEFT's several active adapters do, in the given
 * order (mergeModuleWeights). Merged tensors report the base tensor's file dtype, so `dtype: auto` stores
 * them as the base is stored (exact for an F32 base; rounded to BF16 / F16 for such bases).
 */
export function mergedSource(src: TensorSource, c: OpenELMConfig, adapters: Adapter | readonly Adapter[]): { source: TensorSource; hfConfig: OpenELMHFConfig } {
  const list = Array.isArray(adapters) ? adapters as readonly Adapter[] : [adapters as Adapter];
  if (!list.length) throw new OpenELMError('adapter', 'mergedSource needs at least one adapter');
  const byWeight = new Map<string, { module: ModuleAdapter; scale: number; dora: boolean }[]>();
  for (const a of list) {
    const scale = adapterScale(a.settings), dora = a.settings.type === 'dora';
    for (const m of a.modules) {
      const parts = byWeight.get(m.module.weight) ?? [];
      parts.push({ module: m, scale, dora });
      byWeight.set(m.module.weight, parts);
    }
  }
  const untie = c.tiedEmbeddings && list.some((a) => a.modules.some((m) => m.module.kind === 'embedding'));
  const alias = (name: string) => (untie && name === LM_HEAD ? EMBEDDING : name);
  let last: { name: string; data: Float32Array } | null = null;
  const merged = (name: string): Float32Array | null => {
    const parts = byWeight.get(name);
    if (!parts) return null;
    if (last?.name !== name) {
      const shape = src.info(name).shape;
      last = { name, data: mergeModuleWeights(parts, src.readF32(name, new Float32Array(shape.reduce((x, y) => x * y, 1)))) };
    }
    return last.data;
  };
  const source: TensorSource = {
    decoded: src.decoded,
    names: () => (untie ? [...src.names(), LM_HEAD] : src.names()),
    info: (name) => src.info(alias(name)),
    expectShape: (name, shape) => src.expectShape(alias(name), shape),
    readF32(name, dst) {
      const v = merged(name);
      if (!v) return src.readF32(alias(name), dst);
      dst.set(v);
      return dst;
    },
    readF32Range(name, start, count, dst) {
      const v = merged(name);
      if (!v) return src.readF32Range(alias(name), start, count, dst);
      dst.set(v.subarray(start, start + count));
      return dst;
    },
    readBF16(name, dst) {
      const v = merged(name);
      if (!v) return src.readBF16(alias(name), dst);
      for (let i = 0; i < v.length; i++) dst[i] = f32ToBf16(v[i]);
      return dst;
    },
    readF16(name, dst) {
      const v = merged(name);
      if (!v) return src.readF16(alias(name), dst);
      for (let i = 0; i < v.length; i++) dst[i] = f32ToF16(v[i]);
      return dst;
    },
  };
  const hfConfig: OpenELMHFConfig = { ...c.hf };
  if (untie) hfConfig.share_input_output_layers = false;
  return { source, hfConfig };
}
