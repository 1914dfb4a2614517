// The parameter table: every tensor of the model in HF naming, with its offset in one flat f32
// tensor (llm.c style). Training keeps params, grads and Adam moments as four such vectors (each
// one tensor, or chunks of it where a backend cannot hold it whole: chunked.ts); the inference
// weights built from a flat tensor are views into it, so nothing is copied.

import type { Backend, Tensor } from '../backends/backend.js';
import { numel, type OpenELMConfig } from './config.js';
import { assembleWeights, type ModelWeights } from './openelm.js';
import { paramSpecs, type ParamSpec } from './params.js';

export interface ParamEntry extends ParamSpec { offset: number; size: number; }

export interface ParamLayout {
  entries: ParamEntry[];
  byName: Map<string, ParamEntry>;
  total: number;
}

export function paramLayout(c: OpenELMConfig): ParamLayout {
  return layoutOf(paramSpecs(c));
}

/** A flat layout of any list of tensors (the adapter's parameters, a frozen base's vectors), in list order. */
export function layoutOf(specs: readonly ParamSpec[]): ParamLayout {
  const entries: ParamEntry[] = [];
  const byName = new Map<string, ParamEntry>();
  let off = 0;
  for (const p of specs) {
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

/** Model weights whose tensors are views of `flat` (f32, laid out by paramLayout) on backend `be`: nothing is copied. */
export function weightsFromFlat(c: OpenELMConfig, layout: ParamLayout, flat: Tensor, be: Backend): ModelWeights {
  const view = (name: string): Tensor => {
    const e = layout.byName.get(name);
    if (!e) throw new Error(`layout has no tensor ${name}`);
    return be.view(flat, e.offset, e.size);
  };
  return assembleWeights(c, view, (name, _embedding, shape) => be.tensorWeight(view(name), shape[0], shape[1]));
}
