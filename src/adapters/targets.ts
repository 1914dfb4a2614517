// Which OpenELM modules an adapter can wrap, under the module names of Apple's HF code
// (modeling_openelm.py), which are the names PEFT matches `target_modules` against and writes into
// adapter files. Apple's PEFT runs adapt all five kinds.
//
// Shapes follow PEFT: a linear W [out, in] gets A [r, in] and B [out, r]; the embedding
// [vocab, dim] is treated as a map from vocab to dim, so A is [r, vocab] and B is [dim, r]
// (PEFT's lora_embedding_A / lora_embedding_B).

import { OpenELMError } from '../core/errors.js';
import type { OpenELMConfig } from '../model/config.js';

export const ADAPTER_TARGETS = ['token_embeddings', 'qkv_proj', 'out_proj', 'proj_1', 'proj_2'] as const;
export type AdapterTarget = (typeof ADAPTER_TARGETS)[number];

export function isAdapterTarget(s: string): s is AdapterTarget {
  return (ADAPTER_TARGETS as readonly string[]).includes(s);
}

export interface AdaptedModule {
  /** HF module name, e.g. `transformer.layers.3.attn.qkv_proj`. */
  name: string;
  target: AdapterTarget;
  /** Layer index, or -1 for the embedding. */
  layer: number;
  kind: 'linear' | 'embedding';
  /** The base weight this module owns (HF checkpoint key). */
  weight: string;
  /** Linear: in features. Embedding: vocabulary size. */
  inFeatures: number;
  /** Linear: out features. Embedding: model dimension. */
  outFeatures: number;
}

const SUB: Record<Exclude<AdapterTarget, 'token_embeddings'>, string> = {
  qkv_proj: 'attn.qkv_proj', out_proj: 'attn.out_proj', proj_1: 'ffn.proj_1', proj_2: 'ffn.proj_2',
};

/** Every adaptable module of the model, embedding first, then layer by layer in target order. */
export function allAdaptableModules(c: OpenELMConfig): AdaptedModule[] {
  const D = c.modelDim, hd = c.headDim;
  const out: AdaptedModule[] = [{
    name: 'transformer.token_embeddings', target: 'token_embeddings', layer: -1, kind: 'embedding',
    weight: 'transformer.token_embeddings.weight', inFeatures: c.vocabSize, outFeatures: D,
  }];
  for (let l = 0; l < c.numLayers; l++) {
    const Q = c.numQueryHeads[l], K = c.numKvHeads[l], F = c.ffnDims[l];
    const dims: Record<keyof typeof SUB, [number, number]> = {
      qkv_proj: [D, (Q + 2 * K) * hd], out_proj: [Q * hd, D], proj_1: [D, (c.ffnWithGlu ? 2 : 1) * F], proj_2: [F, D],
    };
    for (const t of ['qkv_proj', 'out_proj', 'proj_1', 'proj_2'] as const) {
      const name = `transformer.layers.${l}.${SUB[t]}`;
      out.push({ name, target: t, layer: l, kind: 'linear', weight: `${name}.weight`, inFeatures: dims[t][0], outFeatures: dims[t][1] });
    }
  }
  return out;
}

/** The modules adapted when `targets` are wrapped everywhere (PEFT's list form of target_modules). */
export function adaptedModules(c: OpenELMConfig, targets: readonly AdapterTarget[]): AdaptedModule[] {
  const want = new Set(targets);
  return allAdaptableModules(c).filter((m) => want.has(m.target));
}

/**
 * Every module name of Apple's OpenELMForCausalLM (as `named_modules()` lists them, root excluded),
 * so a PEFT target can be told apart as "not adaptable" versus "does not exist".
 */
export function allModuleNames(c: OpenELMConfig): string[] {
  const names = ['transformer', 'transformer.token_embeddings', 'transformer.layers'];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `transformer.layers.${l}`;
    names.push(p, `${p}.attn`, `${p}.attn.qkv_proj`, `${p}.attn.pos_embedding`);
    if (c.normalizeQk) names.push(`${p}.attn.q_norm`, `${p}.attn.k_norm`);
    names.push(`${p}.attn.out_proj`, `${p}.ffn`, `${p}.ffn.proj_1`, `${p}.ffn.proj_2`, `${p}.ffn.act`, `${p}.ffn_norm`, `${p}.attn_norm`);
  }
  names.push('transformer.norm');
  // Apple's untied variant also builds an (unused) transformer.classifier next to lm_head.
  if (!c.tiedEmbeddings) names.push('transformer.classifier', 'lm_head');
  return names;
}

/** One module by its HF name, or an error naming it. */
export function moduleByName(c: OpenELMConfig, name: string): AdaptedModule {
  const m = allAdaptableModules(c).find((x) => x.name === name);
  if (!m) throw new OpenELMError('adapter', `the model has no adaptable module ${name}`);
  return m;
}
