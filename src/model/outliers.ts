// Outlier feature channels, as trained LLMs have them (LLM.int8(), arXiv 2208.07339; "Massive
// activations", arXiv 2402.17762): a few channels of the normalized residual stream that every
// qkv_proj and proj_1 reads are tens of times larger than the rest. Quantized inference breaks
// exactly there: an int8 activation block holding such a channel gives its other 31 values a
// step dozens of times too coarse, and the weights those channels meet turn small errors large.
//
// Made from any model without changing what it computes: each chosen channel's attn_norm and
// ffn_norm weight is multiplied by `scale` and the matching input column of qkv_proj / proj_1
// divided by it, so every product x_c·g_c·w_c is unchanged. With a power-of-two scale (e.g. 64)
// every such product is the same f32 number, so the f32 model's logits are bit for bit those of the
// model without outliers, and any change in a quantized model's output is the quantization's.

import { OpenELMError } from '../core/errors.js';
import type { OpenELMConfig } from './config.js';
import type { ParamLayout } from './layout.js';
import { layerTensorName } from './params.js';

/** `count` distinct channels of `dim`, spread over different 32-value blocks and positions in them. */
export function outlierChannels(dim: number, count: number): number[] {
  if (!(Number.isInteger(count) && count >= 1 && count <= dim)) throw new OpenELMError('usage', `outlier channel count must be an integer in 1..${dim}, got ${count}`);
  const out: number[] = [];
  // a prime stride larger than a block lands in a new block at a new position each step
  for (let k = 0; k < dim && out.length < count; k++) { const c = (7 + 331 * k) % dim; if (!out.includes(c)) out.push(c); }
  for (let c = 0; c < dim && out.length < count; c++) if (!out.includes(c)) out.push(c);
  return out;
}

/**
 * Give the model in `flat` (laid out by `layout`) outlier channels in place: the channels'
 * attn_norm / ffn_norm weights times `scale`, qkv_proj / proj_1 input columns divided by it.
 * Returns the channels.
 */
export function addOutlierChannels(c: OpenELMConfig, layout: ParamLayout, flat: Float32Array, count: number, scale: number): number[] {
  if (!(Number.isFinite(scale) && scale > 0)) throw new OpenELMError('usage', `outlier scale must be a positive number, got ${scale}`);
  const channels = outlierChannels(c.modelDim, count);
  const entry = (name: string) => {
    const e = layout.byName.get(name);
    if (!e) throw new OpenELMError('usage', `the layout has no tensor ${name}`);
    return e;
  };
  for (let l = 0; l < c.numLayers; l++) {
    for (const [norm, lin] of [['attnNorm', 'qkv'], ['ffnNorm', 'proj1']] as const) {
      const g = entry(layerTensorName(l, norm)), w = entry(layerTensorName(l, lin));
      const [rows, cols] = w.shape;
      for (const ch of channels) {
        flat[g.offset + ch] *= scale;
        for (let r = 0; r < rows; r++) flat[w.offset + r * cols + ch] /= scale;
      }
    }
  }
  return channels;
}
