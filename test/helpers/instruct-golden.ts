// Access to test/golden/instruct/ (made by tools/make_instruct_goldens.py): a tiny OpenELM, its
// initial (= DPO reference) and perturbed (policy) weights, and the SFT/DPO goldens.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { resolveConfig, type OpenELMConfig } from '../../src/model/config.js';
import type { TrainableModel } from '../../src/model/trainable.js';
import { GOLDEN_ROOT } from './golden.js';

export const INSTRUCT_DIR = path.join(GOLDEN_ROOT, 'instruct');

/** The goldens' folding of Llama-2 ids into the tiny vocabulary: BOS/EOS (and 0) stay, i ≥ 3 → 3 + i mod (V − 3). */
export function foldIds(ids: readonly number[], vocab: number): number[] {
  return ids.map((i) => (i < 3 ? i : 3 + (i % (vocab - 3))));
}

export class InstructGolden {
  readonly file = SafetensorsFile.open(path.join(INSTRUCT_DIR, 'instruct.safetensors'));
  readonly config: OpenELMConfig = resolveConfig(JSON.parse(fs.readFileSync(path.join(INSTRUCT_DIR, 'config.json'), 'utf8')));
  get vocab(): number { return this.config.vocabSize; }
  meta<T>(key: string): T { return JSON.parse(this.file.metadata[key]) as T; }
  shape(name: string): number[] { return [...this.file.info(name).shape]; }
  f32(name: string): Float32Array { return this.file.readF32(name); }
  i32(name: string): Int32Array {
    const b = this.file.readRaw(name);
    return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  }
  close(): void { this.file.close(); }
}

/** Copy model.safetensors ('initial') or policy.safetensors into a trainable model. */
export function loadInstructParams(which: 'initial' | 'policy', model: TrainableModel): void {
  const w = SafetensorsFile.open(path.join(INSTRUCT_DIR, which === 'initial' ? 'model.safetensors' : 'policy.safetensors'));
  try {
    for (const e of model.layout.entries) model.setParam(e.name, w.readF32(e.name));
  } finally {
    w.close();
  }
}
