// Writing any model source as an HF folder (config.json + model.safetensors, Apple's names and
// layout), the form `openelm` runs and Apple's modeling_openelm.py loads.

import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { saveCheckpointSync } from '../io/checkpoint.js';
import { writeJsonFileAtomic } from '../io/json.js';
import type { TensorToWrite } from '../io/safetensors.js';
import type { TensorReader } from '../io/tensor-source.js';
import { paramSpecs, type OpenELMConfig } from '../model/config.js';

export type HFDType = 'F32' | 'BF16' | 'F16';

/**
 * Write `src` as `outDir`. Each tensor keeps its stored dtype when it is F32/BF16/F16 (bits copied
 * unchanged); decoded formats (quantized GGUF or MLX) are written as their exact float32 values.
 * `dtype` forces one dtype for every tensor. All tensors are read before anything is written.
 */
export function writeHFFolder(src: TensorReader, c: OpenELMConfig, outDir: string, dtype?: HFDType): { files: string[]; dtypes: string[] } {
  const tensors: TensorToWrite[] = [];
  const used = new Set<string>();
  for (const spec of paramSpecs(c)) {
    const info = src.info(spec.name);
    const d: HFDType = dtype ?? (info.dtype === 'BF16' || info.dtype === 'F16' ? info.dtype : 'F32');
    used.add(d);
    const data = d === 'BF16' ? src.readBF16(spec.name) : d === 'F16' ? src.readF16(spec.name) : src.readF32(spec.name);
    tensors.push({ name: spec.name, dtype: d, shape: spec.shape, data });
  }
  if (used.size === 0) throw new OpenELMError('convert', 'the model has no tensors');
  const files = saveCheckpointSync(outDir, tensors);
  const only = used.size === 1 ? [...used][0] : 'F32';
  const hf = { ...c.hf, torch_dtype: only === 'BF16' ? 'bfloat16' : only === 'F16' ? 'float16' : 'float32' };
  hf.model_type ??= 'openelm';
  hf.architectures ??= ['OpenELMForCausalLM'];
  writeJsonFileAtomic(path.join(outDir, 'config.json'), hf);
  return { files: [...files, path.join(outDir, 'config.json')], dtypes: [...used] };
}
