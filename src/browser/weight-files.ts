// Where a loaded model's weights can be read again, kept beside it: training in the page needs the
// checkpoint's values in f32 (the loaded model may hold them as bf16 or quantized). For a model the
// browser entry loaded, that is its weight files' Blobs (the kept downloads in the Cache API, on
// disk, or the picked files; load.ts), so nothing is fetched twice and nothing extra is held in
// memory. This module stays free of DOM types so that Node can run the page's trainers too.

import type { LoadedModel } from '../loaded-model.js';
import type { LoadDType, TensorSource } from '../model/load.js';

export interface WeightSource {
  /** Open the checkpoint again; the caller closes it. */
  open(): Promise<TensorSource & { close(): void }>;
  /** The folder's tokenizer_config.json as parsed (saved beside a fine-tuned model), if it had one. */
  tokenizerConfig?: unknown;
  /** How the loaded model stores its linear weights (a merged adapter model is loaded the same way). */
  loadDType?: LoadDType;
}

const kept = new WeakMap<LoadedModel, WeightSource>();

/** Say where `lm`'s weights can be read again (loadModel does this; so can code that loads models its own way). */
export function keepWeightSource(lm: LoadedModel, src: WeightSource): void { kept.set(lm, src); }

export function weightSourceOf(lm: LoadedModel): WeightSource | undefined { return kept.get(lm); }
