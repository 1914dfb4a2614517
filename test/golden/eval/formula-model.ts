// The tiny OpenELM of the eval goldens, rebuilt from the closed-form weights of
// tools/eval_goldens.py (weight_values): no weights file is needed for a 32000-token vocabulary.

import { resolveConfig, type OpenELMHFConfig } from '../../../src/model/config.js';
import { paramLayout, weightsFromFlat } from '../../../src/model/layout.js';
import { OpenELM } from '../../../src/model/openelm.js';
import type { Backend } from '../../../src/backends/backend.js';
import { JsBackend } from '../../../src/backends/js/js-backend.js';

function fnv1a(name: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(name, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** The same values as weight_values(name, shape, fan_in) in tools/eval_goldens.py. */
export function fillFormula(out: Float32Array, name: string, shape: number[]): void {
  const seed = fnv1a(name), fanIn = shape[shape.length - 1];
  const scale = Math.sqrt(3 / fanIn);
  for (let i = 0; i < out.length; i++) {
    let h = (Math.imul(i, 0x9e3779b9) + seed) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
    h = Math.imul(h, 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
    const x = ((h >>> 8) / 16777216) * 2 - 1;
    out[i] = shape.length === 1 ? 1 + 0.1 * x : name.endsWith('token_embeddings.weight') ? x * 0.5 : x * scale;
  }
}

export function formulaModel(hf: OpenELMHFConfig, backend: Backend = new JsBackend()): OpenELM {
  const config = resolveConfig({ model_type: 'openelm', ...hf });
  const layout = paramLayout(config);
  const host = new Float32Array(layout.total);
  for (const e of layout.entries) fillFormula(host.subarray(e.offset, e.offset + e.size), e.name, e.shape);
  const flat = backend.alloc(layout.total);
  backend.write(flat, host);
  return new OpenELM(config, backend, weightsFromFlat(config, layout, flat, backend));
}
