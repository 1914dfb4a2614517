// Load an HF-format OpenELM folder (config.json + model.safetensors or shards) into a backend.
// Each tensor is read straight into its final buffer (converted on the fly while streaming), so
// loading never holds two copies of the model; only q8/q4 quantization stages one tensor in f32.

import type { Backend, Weight, WeightDType } from '../backends/backend.js';
import { WEIGHT_DTYPES } from '../backends/backend.js';
import { setWeightRows } from '../backends/weight-format.js';
import { OpenELMError } from '../core/errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import type { TensorReader } from '../io/tensor-source.js';
import { openModelSource, readSourceConfig } from '../formats/source.js';
import { paramSpecs, numel, type OpenELMConfig } from './config.js';
import { OpenELM, assembleWeights, type ModelWeights } from './openelm.js';

export type LoadDType = WeightDType | 'auto';

export interface LoadOptions {
  /** Storage of linear weights. 'auto' keeps the checkpoint's own precision (bf16 stays bf16). */
  dtype?: LoadDType;
  backend: Backend;
}

/** The config of a model folder (HF, or an MLX folder from mlx-lm or CoreNet's converter). */
export function readModelConfig(dir: string): OpenELMConfig {
  return readSourceConfig(dir);
}

export function validateDType(d: string): LoadDType {
  if (d === 'auto' || (WEIGHT_DTYPES as readonly string[]).includes(d)) return d as LoadDType;
  throw new OpenELMError('usage', `unknown dtype "${d}"; choose one of auto, ${WEIGHT_DTYPES.join(', ')}`);
}

/** Load a model folder. Throws OpenELMError naming the file / tensor on any problem. */
export function loadModel(dir: string, opts: LoadOptions): OpenELM {
  const src = openModelSource(dir, { allow: ['hf', 'mlx-lm', 'corenet-mlx'] });
  try {
    return new OpenELM(src.config, opts.backend, readWeights(src.reader, src.config, opts.backend, validateDType(opts.dtype ?? 'auto')));
  } finally {
    src.close();
  }
}

function storageFor(ckpt: TensorReader, name: string, want: LoadDType): WeightDType {
  if (want !== 'auto') return want;
  const d = ckpt.info(name).dtype;
  return d === 'BF16' ? 'bf16' : d === 'F16' ? 'f16' : 'f32';
}

export function readWeights(ckpt: TensorReader, c: OpenELMConfig, be: Backend, dtype: LoadDType): ModelWeights {
  const specs = new Map(paramSpecs(c).map((p) => [p.name, p.shape]));
  for (const [name, shape] of specs) ckpt.expectShape(name, shape);
  for (const info of ckpt.names()) {
    const t = ckpt.info(info);
    // Decoded formats (quantized GGUF / MLX tensors) read as their exact float32 values.
    if (!['F32', 'F16', 'BF16', 'F64'].includes(t.dtype) && ckpt instanceof Checkpoint) throw new OpenELMError('checkpoint', `tensor ${info} has dtype ${t.dtype}; OpenELM weights must be F32, F16 or BF16`);
  }
  const vec = (name: string): Float32Array => {
    const dst = be.alloc(numel(specs.get(name)!));
    ckpt.readF32(name, dst);
    return dst;
  };
  const lin = (name: string, want: LoadDType = dtype): Weight => {
    const [rows, cols] = specs.get(name)!;
    const st = storageFor(ckpt, name, want);
    const w = be.allocWeight(st, rows, cols);
    if (st === 'f32') ckpt.readF32(name, w.data as Float32Array);
    else if (st === 'bf16') ckpt.readBF16(name, w.data as Uint16Array);
    else if (st === 'f16') ckpt.readF16(name, w.data as Uint16Array);
    else {
      // Quantize row chunks read straight from the file (≤ 4 MB of f32 staging, never a whole tensor).
      const step = Math.max(1, Math.floor((1 << 20) / cols));
      const stage = new Float32Array(step * cols);
      for (let r = 0; r < rows; r += step) {
        const n = Math.min(rows - r, step) * cols;
        setWeightRows(w, r, ckpt.readF32Range(name, r * cols, n, stage).subarray(0, n));
      }
    }
    be.prepareWeight(w);
    return w;
  };
  // The tied embedding doubles as the head; 4-bit is too coarse for it, so q4 models keep it at q8.
  const embDType: LoadDType = dtype === 'q4' ? 'q8' : dtype;
  return assembleWeights(c, vec, (name, embedding) => lin(name, embedding ? embDType : dtype));
}
