// Export to mlx-lm's adapter layout (mlx_lm/tuner/lora.py, dora.py, utils.py load_adapters):
//   adapters.safetensors   <module>.lora_a [in, r] = Aᵀ, <module>.lora_b [r, out] = Bᵀ, DoRA <module>.m [out]
//   adapter_config.json    {fine_tune_type, num_layers, lora_parameters: {rank, scale, dropout, keys}}
// mlx-lm adapts the last `num_layers` blocks, at `keys` relative to each block, and uses `scale`
// as given (PEFT's alpha/r or alpha/sqrt(r)). Linears compute the same function in both.
//
// The embedding cannot go across: mlx-lm's OpenELM computes its tied head through
// token_embeddings.as_linear, which adds the LoRA term to the head as well (PEFT's adapter changes
// the lookup only), and mlx-lm's DoRA embedding keeps one magnitude per vocabulary row where PEFT
// keeps one per model dimension. Exporting it would silently change the model, so it is refused.

import * as path from 'node:path';
import * as fs from 'node:fs';
import { OpenELMError } from '../core/errors.js';
import { commitAll, stageFileSync, writeAllSync } from './atomic.js';
import { stageSafetensorsSync, type TensorToWrite } from './safetensors.js';
import type { OpenELMConfig } from '../model/config.js';
import { adapterScale, type Adapter } from '../adapters/adapter.js';

export const MLX_WEIGHTS_FILE = 'adapters.safetensors';
export const MLX_CONFIG_FILE = 'adapter_config.json';

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
  return out;
}

/** The two files of an mlx-lm adapter folder for `a`, or an error saying why it cannot be expressed. */
export function mlxAdapterFiles(c: OpenELMConfig, a: Adapter, baseModel?: string | null): { tensors: TensorToWrite[]; config: Record<string, unknown> } {
  if (a.modules.some((m) => m.module.kind === 'embedding')) {
    throw new OpenELMError('adapter', 'cannot export an adapter on token_embeddings to mlx-lm: mlx-lm applies an embedding adapter to the tied head too (and keeps DoRA magnitudes per token), so the exported model would compute something else');
  }
  const r = a.settings.r, dora = a.settings.type === 'dora';
  const tensors: TensorToWrite[] = [];
  const keys = new Set<string>();
  const layers = new Set<number>();
  for (const m of a.modules) {
    const { inFeatures: I, outFeatures: O, name, layer } = m.module;
    layers.add(layer);
    keys.add(name.replace(/^transformer\.layers\.\d+\./, ''));
    tensors.push({ name: `${name}.lora_a`, dtype: 'F32', shape: [I, r], data: transpose(m.A, r, I) });
    tensors.push({ name: `${name}.lora_b`, dtype: 'F32', shape: [r, O], data: transpose(m.B, O, r) });
    if (dora) tensors.push({ name: `${name}.m`, dtype: 'F32', shape: [O], data: m.magnitude! });
  }
  // mlx-lm wraps the same keys in each of the last num_layers blocks.
  for (let l = 0; l < c.numLayers; l++) {
    if (!layers.has(l) && [...layers].some((x) => x > l)) throw new OpenELMError('adapter', `cannot export to mlx-lm: layer ${l} is not adapted but a later one is (mlx-lm adapts the last num_layers blocks)`);
  }
  tensors.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  const config: Record<string, unknown> = {
    fine_tune_type: dora ? 'dora' : 'lora',
    // Read by mlx-lm releases from before fine_tune_type existed.
    use_dora: dora,
    num_layers: layers.size,
    lora_parameters: { rank: r, scale: adapterScale(a.settings), dropout: a.settings.dropout, keys: [...keys].sort() },
  };
  if (baseModel) config.model = baseModel;
  return { tensors, config };
}

/** Write an mlx-lm adapter folder (created if missing); both files are complete before either replaces an old one. */
export function writeMlxAdapter(dir: string, c: OpenELMConfig, a: Adapter, baseModel?: string | null): void {
  const { tensors, config } = mlxAdapterFiles(c, a, baseModel ?? a.baseModel);
  fs.mkdirSync(dir, { recursive: true });
  const w = stageSafetensorsSync(path.join(dir, MLX_WEIGHTS_FILE), tensors, { format: 'mlx' });
  try {
    const json = Buffer.from(JSON.stringify(config, null, 4) + '\n');
    commitAll([w, stageFileSync(path.join(dir, MLX_CONFIG_FILE), (fd) => writeAllSync(fd, json, 0))]);
  } catch (e) {
    w.discard();
    throw e;
  }
}
