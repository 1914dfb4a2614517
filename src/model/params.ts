// The one description of OpenELM's tensors: their Hugging Face names, shapes and roles. The
// checkpoint table (paramSpecs), the flat training layout (layout.ts), the inference weights and the
// trainable model's views all derive from LAYER_TENSORS, so a name or shape lives in one place.
// Names are Apple's HF names (modeling_openelm.py); CoreNet's own names drop the `transformer.`
// prefix (docs/architecture.md).

import type { OpenELMConfig } from './config.js';

export const EMBEDDING = 'transformer.token_embeddings.weight';
export const FINAL_NORM = 'transformer.norm.weight';
export const LM_HEAD = 'lm_head.weight';

/** Per-layer tensors: `norm` vectors [width] and `linear` weights [out, in]. */
export type LayerTensorKey = 'attnNorm' | 'qkv' | 'qNorm' | 'kNorm' | 'out' | 'ffnNorm' | 'proj1' | 'proj2';

interface LayerTensor { key: LayerTensorKey; hf: string; kind: 'norm' | 'linear'; }

export const LAYER_TENSORS: readonly LayerTensor[] = [
  { key: 'attnNorm', hf: 'attn_norm.weight', kind: 'norm' },
  { key: 'qkv', hf: 'attn.qkv_proj.weight', kind: 'linear' },
  { key: 'qNorm', hf: 'attn.q_norm.weight', kind: 'norm' },
  { key: 'kNorm', hf: 'attn.k_norm.weight', kind: 'norm' },
  { key: 'out', hf: 'attn.out_proj.weight', kind: 'linear' },
  { key: 'ffnNorm', hf: 'ffn_norm.weight', kind: 'norm' },
  { key: 'proj1', hf: 'ffn.proj_1.weight', kind: 'linear' },
  { key: 'proj2', hf: 'ffn.proj_2.weight', kind: 'linear' },
];

/** HF name of tensor `key` of layer l. */
export function layerTensorName(l: number, key: LayerTensorKey): string {
  return `transformer.layers.${l}.${LAYER_TENSORS.find((t) => t.key === key)!.hf}`;
}

/** Whether layer tensor `key` exists under this config (q/k norms only with normalize_qk_projections). */
export function hasLayerTensor(c: OpenELMConfig, key: LayerTensorKey): boolean {
  return (key !== 'qNorm' && key !== 'kNorm') || c.normalizeQk;
}

/** Shape of tensor `key` of layer l: qkv rows are [Q heads | K heads | V heads]; proj_1 rows [gate | up] with GLU. */
export function layerTensorShape(c: OpenELMConfig, l: number, key: LayerTensorKey): number[] {
  const D = c.modelDim, hd = c.headDim, Q = c.numQueryHeads[l], K = c.numKvHeads[l], F = c.ffnDims[l];
  switch (key) {
    case 'attnNorm': case 'ffnNorm': return [D];
    case 'qNorm': case 'kNorm': return [hd];
    case 'qkv': return [(Q + 2 * K) * hd, D];
    case 'out': return [D, Q * hd];
    case 'proj1': return [(c.ffnWithGlu ? 2 : 1) * F, D];
    case 'proj2': return [D, F];
  }
}

/** One entry of the parameter table: HF key and shape (PyTorch [out, in] layout). */
export interface ParamSpec { name: string; shape: number[]; }

/** Every tensor of an OpenELM checkpoint in HF naming, in a stable order (the flat-buffer layout order). */
export function paramSpecs(c: OpenELMConfig): ParamSpec[] {
  const out: ParamSpec[] = [{ name: EMBEDDING, shape: [c.vocabSize, c.modelDim] }];
  for (let l = 0; l < c.numLayers; l++) {
    for (const t of LAYER_TENSORS) if (hasLayerTensor(c, t.key)) out.push({ name: layerTensorName(l, t.key), shape: layerTensorShape(c, l, t.key) });
  }
  out.push({ name: FINAL_NORM, shape: [c.modelDim] });
  if (!c.tiedEmbeddings) out.push({ name: LM_HEAD, shape: [c.vocabSize, c.modelDim] });
  return out;
}

/** One layer's tensors, norms as N and linear weights as L (null: q/k norms switched off). */
export interface LayerParams<N, L> {
  attnNorm: N; qkv: L; qNorm: N | null; kNorm: N | null; out: L; ffnNorm: N; proj1: L; proj2: L;
}

/** Build every layer's LayerParams from getters keyed by HF name. */
export function mapLayers<N, L>(c: OpenELMConfig, norm: (name: string, shape: number[]) => N,
  lin: (name: string, shape: number[]) => L): LayerParams<N, L>[] {
  const layers: LayerParams<N, L>[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const p = {} as Record<LayerTensorKey, N | L | null>;
    for (const t of LAYER_TENSORS) {
      if (!hasLayerTensor(c, t.key)) { p[t.key] = null; continue; }
      const name = layerTensorName(l, t.key), shape = layerTensorShape(c, l, t.key);
      p[t.key] = t.kind === 'norm' ? norm(name, shape) : lin(name, shape);
    }
    layers.push(p as unknown as LayerParams<N, L>);
  }
  return layers;
}
