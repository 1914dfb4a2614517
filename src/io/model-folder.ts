// HF-format OpenELM folders on disk (config.json + model.safetensors or shards): the Node side of
// model loading and saving. model/load.ts builds the model from any TensorSource; this opens the
// folder's. saveModel writes a model held in a flat f32 parameter buffer (tied head: no lm_head key),
// loadable by `openelm generate` and by Apple's HF code; atomically.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend } from '../backends/backend.js';
import { OpenELMError } from '../core/errors.js';
import { resolveConfig, type OpenELMConfig } from '../model/config.js';
import { modelFromSource, type LoadDType } from '../model/load.js';
import type { OpenELM } from '../model/openelm.js';
import { openCheckpoint, saveCheckpoint, saveCheckpointSync, type Checkpoint, type SaveCheckpointOptions } from './checkpoint.js';
import { detectFormat, hfQuantLayout, openModelSource, readSourceConfig, type ModelSource } from '../formats/source.js';
import { writeJsonFileAtomic } from './json.js';
import { f32ToBf16 } from '../core/dtype.js';
import type { ParamEntry, ParamLayout } from '../model/layout.js';
import type { Adapter } from '../adapters/adapter.js';
import { mergedSource } from '../adapters/merge.js';

/** The config of a model folder (HF, or an MLX folder from mlx-lm or CoreNet's converter) or of a GGUF file. */
export function readModelConfig(dir: string): OpenELMConfig {
  checkModelLocation(dir);
  return readSourceConfig(dir);
}

/** Refuse a model location that does not exist or is neither a folder nor a GGUF file. */
function checkModelLocation(dir: string): void {
  if (!fs.existsSync(dir)) throw new OpenELMError('model', `model folder ${dir} does not exist`);
  if (!fs.statSync(dir).isDirectory() && detectFormat(dir) !== 'gguf') {
    throw new OpenELMError('model', `${dir} is not a folder (expected config.json + model.safetensors) or a GGUF file`);
  }
}

/**
 * Load a model folder (HF or MLX) or a GGUF file onto a backend; GGUF and MLX 4-bit weights run as
 * stored. Throws OpenELMError naming the file / tensor on any problem. With `adapter` (LoRA / DoRA
 * adapters for this base, e.g. from readPeftAdapter) the weights are the base with the adapters
 * merged in, as `openelm merge` writes them (adapters/merge.ts).
 */
export function loadModelFolder(dir: string, opts: {
  backend: Backend; dtype?: LoadDType; adapter?: Adapter | readonly Adapter[];
  /** dir already opened (openModelSource, e.g. a GGUF with its vocabulary for the tokenizer too); the caller closes it. */
  source?: ModelSource;
}): OpenELM {
  // (openModelSource reads the config: reading it here too parsed a GGUF's header twice)
  if (!opts.source) checkModelLocation(dir);
  const src = opts.source ?? openModelSource(dir, { allow: ['hf', 'mlx-lm', 'corenet-mlx', 'gguf'] });
  try {
    if (!opts.adapter || (Array.isArray(opts.adapter) && !opts.adapter.length)) return modelFromSource(src.reader, src.config, opts.backend, opts.dtype ?? 'auto');
    const { source, hfConfig } = mergedSource(src.reader, src.config, opts.adapter);
    return modelFromSource(source, resolveConfig(hfConfig), opts.backend, opts.dtype ?? 'auto');
  } finally {
    if (!opts.source) src.close();
  }
}

/**
 * A folder's checkpoint for code that reads its f32/bf16/f16 values as they are stored (training,
 * merging); a pre-quantized q8/q4 folder is refused in one line saying what to give instead.
 */
export function openFloatCheckpoint(dir: string, use: string): Checkpoint {
  const q = fs.existsSync(path.join(dir, 'config.json')) ? hfQuantLayout(dir) : null;
  if (q) throw new OpenELMError('model', `${dir} is a pre-quantized ${q.dtype} folder; ${use} needs the f32/bf16/f16 checkpoint it was made from (or one made with openelm convert --model ${dir} --to hf --dtype bf16 --out DIR)`);
  return openCheckpoint(dir);
}

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
  writeModelConfig(dir, config, dtype);
  return files;
}

/**
 * saveModel for parameters that are not one host array (a model in chunks on a backend): each
 * tensor's F32 values are asked of `read` while its bytes are written, so no more than one tensor
 * is held in memory at a time.
 */
export async function saveModelStreamed(dir: string, config: OpenELMConfig, layout: ParamLayout, read: (e: ParamEntry) => Promise<Float32Array>,
  opts: SaveCheckpointOptions = {}): Promise<string[]> {
  const tensors = layout.entries.map((e) => ({
    name: e.name, dtype: 'F32' as const, shape: e.shape,
    data: { byteLength: e.size * 4, async *pieces() { yield await read(e); } },
  }));
  const files = await saveCheckpoint(dir, tensors, opts);
  writeModelConfig(dir, config, 'F32');
  return files;
}

function writeModelConfig(dir: string, config: OpenELMConfig, dtype: 'F32' | 'BF16'): void {
  const hf = { ...config.hf, torch_dtype: dtype === 'BF16' ? 'bfloat16' : 'float32' };
  hf.model_type ??= 'openelm';
  hf.architectures ??= ['OpenELMForCausalLM'];
  writeJsonFileAtomic(path.join(dir, 'config.json'), hf);
}
