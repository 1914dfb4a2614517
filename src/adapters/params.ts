// An adapter (PEFT's tensors and layouts, adapter.ts) to and from the trainable model's flat
// adapter parameters (model/adapted.ts): the same numbers, with lora_B — and for the embedding
// lora_embedding_A too — transposed. Used for parameters, their gradients and optimizer moments
// alike; the transposes are exact, so a round trip gives the same bits.

import { OpenELMError } from '../core/errors.js';
import type { OpenELMConfig } from '../model/config.js';
import type { ParamLayout } from '../model/layout.js';
import { adapterParamNames } from '../model/adapted.js';
import type { Adapter, AdapterSettings, ModuleAdapter } from './adapter.js';
import { adaptedModules } from './targets.js';

function transpose(a: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j];
  return out;
}

function entry(layout: ParamLayout, name: string) {
  const e = layout.byName.get(name);
  if (!e) throw new OpenELMError('adapter', `the model's adapter has no tensor ${name} (another target list or type?)`);
  return e;
}

/** The flat parameters [layout.total] holding adapter `a`. Its settings must be the layout's. */
export function adapterToFlat(a: Adapter, layout: ParamLayout): Float32Array {
  const flat = new Float32Array(layout.total), r = a.settings.r;
  const seen = new Set<string>();
  for (const m of a.modules) {
    const n = adapterParamNames(m.module), I = m.module.inFeatures, O = m.module.outFeatures;
    const eA = entry(layout, n.A), eB = entry(layout, n.B);
    if (eA.size !== m.A.length || eB.size !== m.B.length) throw new OpenELMError('adapter', `${m.module.name}: the adapter has r = ${m.A.length / I}; the model was built for r = ${eA.size / I}`);
    flat.set(m.module.kind === 'embedding' ? transpose(m.A, r, I) : m.A, eA.offset);
    flat.set(transpose(m.B, O, r), eB.offset);
    seen.add(n.A).add(n.B);
    if (m.magnitude) {
      const eM = entry(layout, n.magnitude);
      flat.set(m.magnitude, eM.offset);
      seen.add(n.magnitude);
    }
  }
  const missing = layout.entries.find((e) => !seen.has(e.name));
  if (missing) throw new OpenELMError('adapter', `the adapter has no values for ${missing.name}`);
  return flat;
}

/** Adapter `settings` of model `c` from flat parameters (or gradients) laid out by `layout`, in PEFT's layouts. */
export function flatToAdapter(flat: Float32Array, layout: ParamLayout, c: OpenELMConfig, settings: AdapterSettings): Adapter {
  const r = settings.r, modules: ModuleAdapter[] = [];
  for (const module of adaptedModules(c, settings.targets)) {
    const n = adapterParamNames(module), I = module.inFeatures, O = module.outFeatures;
    const eA = entry(layout, n.A), eB = entry(layout, n.B);
    const A = flat.subarray(eA.offset, eA.offset + eA.size), Bt = flat.subarray(eB.offset, eB.offset + eB.size);
    const ma: ModuleAdapter = { module, A: module.kind === 'embedding' ? transpose(A, I, r) : A.slice(), B: transpose(Bt, r, O) };
    if (settings.type === 'dora') {
      const eM = entry(layout, n.magnitude);
      ma.magnitude = flat.slice(eM.offset, eM.offset + eM.size);
    }
    modules.push(ma);
  }
  return { settings: { ...settings, targets: [...settings.targets] }, modules };
}
