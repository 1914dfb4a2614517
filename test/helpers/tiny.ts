// Tiny random OpenELM models for behaviour tests (no fixtures needed).
import { presetHFConfig, resolveConfig, type OpenELMHFConfig } from '../../src/model/config.js';
import { paramLayout, weightsFromFlat } from '../../src/model/layout.js';
import { initParams } from '../../src/model/init.js';
import { OpenELM } from '../../src/model/openelm.js';
import type { Backend } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/js-backend.js';

export const TINY_HF: OpenELMHFConfig = {
  model_type: 'openelm', num_transformer_layers: 3, model_dim: 64, head_dim: 16, num_gqa_groups: 2,
  qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 2.0], ffn_dim_divisor: 32, vocab_size: 300,
  max_context_length: 64, rope_freq_constant: 10000, rope_max_length: 64,
};

export function tinyModel(hf: Partial<OpenELMHFConfig> = {}, seed = 1, backend: Backend = new JsBackend()) {
  const config = resolveConfig({ ...TINY_HF, ...hf });
  const layout = paramLayout(config);
  // host copy of the parameters (saved by tinyModelDir) and the same values on the backend
  const host = new Float32Array(layout.total);
  initParams(config, layout, host, seed, { normJitter: 0.1 });
  const flat = backend.alloc(layout.total);
  backend.write(flat, host);
  return { model: new OpenELM(config, backend, weightsFromFlat(config, layout, flat, backend)), layout, flat, host, config };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { saveModel } from '../../src/io/model-folder.js';

/** A temp folder holding a tiny random model (config.json + model.safetensors). */
export function tinyModelDir(hf: Partial<OpenELMHFConfig> = {}, seed = 1, dtype: 'F32' | 'BF16' = 'F32'): string {
  const { config, layout, host } = tinyModel(hf, seed);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-tiny-'));
  saveModel(dir, config, layout, host, { dtype });
  return dir;
}

/**
 * A preset's shape with another number of layers: its per-layer lists (ffn_multipliers, heads)
 * given back as the range they are made from, so they fit any depth.
 */
export function presetWithLayers(name: string, layers: number): OpenELMHFConfig {
  const { num_query_heads: _q, num_kv_heads: _k, ...hf } = presetHFConfig(name);
  const ffn = hf.ffn_multipliers as number[];
  return { ...hf, ffn_multipliers: [ffn[0], ffn[ffn.length - 1]], num_transformer_layers: layers };
}
