// The parameter table: every tensor of the model in HF naming, with its offset in one flat f32
// buffer (llm.c style). Training keeps params, grads and Adam moments as four such buffers; the
// inference weights built from a flat buffer are views into it, so nothing is copied.

import type { Backend, Weight } from '../backends/backend.js';
import { paramSpecs, numel, type OpenELMConfig, type ParamSpec } from './config.js';
import { assembleWeights, type ModelWeights } from './openelm.js';

export interface ParamEntry extends ParamSpec { offset: number; size: number; }

export interface ParamLayout {
  entries: ParamEntry[];
  byName: Map<string, ParamEntry>;
  total: number;
}

export function paramLayout(c: OpenELMConfig): ParamLayout {
  const entries: ParamEntry[] = [];
  const byName = new Map<string, ParamEntry>();
  let off = 0;
  for (const p of paramSpecs(c)) {
    const size = numel(p.shape);
    // 16-float alignment keeps every tensor 64-byte aligned for SIMD kernels and GPU bindings.
    off = Math.ceil(off / 16) * 16;
    const e = { ...p, offset: off, size };
    entries.push(e);
    byName.set(p.name, e);
    off += size;
  }
  return { entries, byName, total: Math.ceil(off / 16) * 16 };
}

/** Model weights whose tensors are views of `flat` (f32), laid out by paramLayout. */
export function weightsFromFlat(c: OpenELMConfig, layout: ParamLayout, flat: Float32Array, backend?: Backend): ModelWeights {
  const view = (name: string): Float32Array => {
    const e = layout.byName.get(name);
    if (!e) throw new Error(`layout has no tensor ${name}`);
    return flat.subarray(e.offset, e.offset + e.size);
  };
  const lin = (name: string): Weight => {
    const e = layout.byName.get(name)!;
    const w: Weight = { dtype: 'f32', rows: e.shape[0], cols: e.shape[1], data: view(name) };
    backend?.prepareWeight(w);
    return w;
  };
  return assembleWeights(c, view, (name) => lin(name));
}
