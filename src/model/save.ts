// Save a model held in a flat f32 parameter buffer as an HF folder: config.json + model.safetensors
// (tied head: no lm_head key), loadable by `openelm generate` and by Apple's HF code. Atomic.

import * as path from 'node:path';
import { saveCheckpointSync, type SaveCheckpointOptions } from '../io/checkpoint.js';
import { writeJsonFileAtomic } from '../io/json.js';
import { f32ToBf16 } from '../core/dtype.js';
import type { OpenELMConfig } from './config.js';
import type { ParamLayout } from './layout.js';

export interface SaveModelOptions extends SaveCheckpointOptions {
  /** Tensor dtype in the file (default F32). */
  dtype?: 'F32' | 'BF16';
}

export function saveModel(dir: string, config: OpenELMConfig, layout: ParamLayout, flat: Float32Array, opts: SaveModelOptions = {}): string[] {
  const dtype = opts.dtype ?? 'F32';
  const tensors = layout.entries.map((e) => {
    const v = flat.subarray(e.offset, e.offset + e.size);
    let data: ArrayBufferView = v;
    if (dtype === 'BF16') {
      const h = new Uint16Array(v.length);
      for (let i = 0; i < v.length; i++) h[i] = f32ToBf16(v[i]);
      data = h;
    }
    return { name: e.name, dtype, shape: e.shape, data };
  });
  const files = saveCheckpointSync(dir, tensors, opts);
  const hf = { ...config.hf, torch_dtype: dtype === 'BF16' ? 'bfloat16' : 'float32' };
  hf.model_type ??= 'openelm';
  hf.architectures ??= ['OpenELMForCausalLM'];
  writeJsonFileAtomic(path.join(dir, 'config.json'), hf);
  return files;
}
