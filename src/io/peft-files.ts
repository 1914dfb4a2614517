// A PEFT adapter's two files as bytes, with no file system (peft-folder.ts writes them to disk; the
// browser hands them to a download): adapter_model.safetensors with PEFT's tensor names and shapes,
// and adapter_config.json as PEFT writes it.

import { OpenELMError } from '../core/errors.js';
import type { Adapter } from '../adapters/adapter.js';
import { peftConfigJson, peftTensorNames } from '../adapters/peft-config.js';
import { safetensorsBytes, type TensorToWrite } from './safetensors-writer.js';

/** The tensors of adapter_model.safetensors, sorted by name (float32). */
export function peftTensors(a: Adapter): TensorToWrite[] {
  const dora = a.settings.type === 'dora', r = a.settings.r;
  const out: TensorToWrite[] = [];
  for (const m of a.modules) {
    const n = peftTensorNames(m.module, dora);
    out.push({ name: n.A, dtype: 'F32', shape: [r, m.module.inFeatures], data: m.A });
    out.push({ name: n.B, dtype: 'F32', shape: [m.module.outFeatures, r], data: m.B });
    if (n.magnitude) {
      if (!m.magnitude) throw new OpenELMError('adapter', `DoRA adapter has no magnitude vector for ${m.module.name}`);
      out.push({ name: n.magnitude, dtype: 'F32', shape: [m.module.outFeatures], data: m.magnitude });
    }
  }
  return out.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
}

/** adapter_config.json and adapter_model.safetensors of `a`, as bytes. */
export function peftAdapterFiles(a: Adapter, opts: { baseModel?: string | null } = {}): { name: string; bytes: Uint8Array }[] {
  const config = JSON.stringify(peftConfigJson(a.settings, opts.baseModel ?? a.baseModel ?? null), null, 2) + '\n';
  return [
    { name: 'adapter_config.json', bytes: new TextEncoder().encode(config) },
    { name: 'adapter_model.safetensors', bytes: safetensorsBytes('adapter_model.safetensors', peftTensors(a), { format: 'pt' }) },
  ];
}
