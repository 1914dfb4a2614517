// Writing a pre-quantized q8/q4 folder (formats/openelm-quant.ts has the layout). The weights are
// quantized by the loader itself (model/load.ts readWeights onto a backend, importance weights
// included), and the file takes the bytes that load left in the backend's storage: a load of the
// folder is then the load of the source, byte for byte, without the fit.

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backend, Weight } from '../backends/backend.js';
import { OpenELMError } from '../core/errors.js';
import { saveCheckpointSync } from '../io/checkpoint.js';
import { writeJsonFileAtomic } from '../io/json.js';
import type { TensorToWrite } from '../io/safetensors.js';
import type { TensorReader } from '../io/tensor-source.js';
import { paramSpecs, type OpenELMConfig } from '../model/config.js';
import { readWeights } from '../model/load.js';
import { freeWeights, type ModelWeights } from '../model/openelm.js';
import { EMBEDDING, LAYER_TENSORS, LM_HEAD, layerTensorName } from '../model/params.js';
import {
  QUANT_CONFIG_KEY, quantConfigEntry, quantFileMetadata, quantTensorShapes, scalesName, withoutQuantEntry, type QuantDType,
} from './openelm-quant.js';

export interface QuantExportResult { files: string[]; bytes: number; }

/** Each linear weight (and the embedding, and an untied head) under its HF name. */
export function namedLinear(c: OpenELMConfig, w: ModelWeights): Map<string, Weight> {
  const m = new Map<string, Weight>([[EMBEDDING, w.embed]]);
  if (!c.tiedEmbeddings) m.set(LM_HEAD, w.head);
  w.layers.forEach((L, l) => {
    for (const t of LAYER_TENSORS) if (t.kind === 'linear') m.set(layerTensorName(l, t.key), L[t.key] as Weight);
  });
  return m;
}

/**
 * Write `src` as a pre-quantized `dtype` folder at `outDir`, quantized on `be` (a backend that keeps
 * weights in host-visible storage: wasm or js). Norms keep the source's F32/BF16/F16.
 */
export function writeQuantizedFolder(src: TensorReader, c: OpenELMConfig, outDir: string, dtype: QuantDType, be: Backend): QuantExportResult {
  const weights = readWeights(src, c, be, dtype);
  try {
    const lin = namedLinear(c, weights);
    const tensors: TensorToWrite[] = [];
    let normDType: 'F32' | 'BF16' | 'F16' | undefined;
    for (const p of paramSpecs(c)) {
      if (p.shape.length === 1) {
        const d = src.info(p.name).dtype;
        const st = d === 'BF16' || d === 'F16' ? d : 'F32';
        normDType ??= st;
        tensors.push({ name: p.name, dtype: st, shape: p.shape, data: st === 'BF16' ? src.readBF16(p.name) : st === 'F16' ? src.readF16(p.name) : src.readF32(p.name) });
        continue;
      }
      const w = lin.get(p.name)!;
      if (w.dtype !== dtype || !w.scales) throw new OpenELMError('convert', `${p.name} loaded as ${w.dtype}, not ${dtype}; the backend ${be.name} cannot write a ${dtype} folder`);
      const s = quantTensorShapes(dtype, p.shape[0], p.shape[1]);
      tensors.push({ name: p.name, dtype: s.data[0] as 'I8' | 'U8', shape: s.data[1], data: w.data });
      tensors.push({ name: scalesName(p.name), dtype: s.scales[0] as 'F16' | 'U8', shape: s.scales[1], data: w.scales });
    }
    fs.mkdirSync(outDir, { recursive: true });
    const files = saveCheckpointSync(outDir, tensors, { metadata: quantFileMetadata(dtype) });
    const torch = normDType === 'BF16' ? 'bfloat16' : normDType === 'F16' ? 'float16' : 'float32';
    const hf: Record<string, unknown> = { ...withoutQuantEntry(c.hf), torch_dtype: torch, [QUANT_CONFIG_KEY]: quantConfigEntry(dtype) };
    hf.model_type ??= 'openelm';
    hf.architectures ??= ['OpenELMForCausalLM'];
    writeJsonFileAtomic(path.join(outDir, 'config.json'), hf);
    const bytes = tensors.reduce((n, t) => n + t.data.byteLength, 0);
    return { files: [...files, path.join(outDir, 'config.json')], bytes };
  } finally {
    freeWeights(be, weights);
  }
}
