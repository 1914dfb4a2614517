// What a training run with a `peft:` block adds to the loop (trainer.ts calls these at a few fixed
// points): the frozen base read from model.init into the trainable model, the adapter started from
// peft.init or from PEFT's init, and checkpoints whose model files are a PEFT adapter folder
// (adapter_config.json + adapter_model.safetensors) that PEFT, `openelm generate --adapter` and
// `openelm merge` read. Optimizer moments stay in the model's flat adapter layout.

import { OpenELMError } from '../core/errors.js';
import { openFloatCheckpoint } from '../io/model-folder.js';
import { readPeftAdapter, writePeftAdapter } from '../io/peft-folder.js';
import { allocWeightStorage, setWeightRows, weightRowToF32 } from '../backends/weight-format.js';
import { initAdapter, type Adapter, type AdapterSettings } from '../adapters/adapter.js';
import { adapterToFlat, flatToAdapter } from '../adapters/params.js';
import type { OpenELMConfig } from '../model/config.js';
import { LAYER_TENSORS, paramSpecs } from '../model/params.js';
import type { TrainableModel } from '../model/trainable.js';
import { adapterSettingsFor } from './peft-settings.js';
import type { Recipe, RecipePeft } from './recipe.js';

export interface PeftRun {
  settings: AdapterSettings;
  baseDtype: RecipePeft['baseDtype'];
  /** The adapter peft.init names, read and checked against the base. */
  init: Adapter | null;
}

/** The adapter settings of a recipe's peft block (reading peft.init when it names an adapter). */
export function preparePeftRun(r: Recipe, c: OpenELMConfig): PeftRun {
  const p = r.peft!;
  if (r.model.init === undefined) {
    throw new OpenELMError('recipe', `${r.file}: recipe.peft trains an adapter on a base model; set recipe.model.init to the base (a model folder or hub id)`);
  }
  const init = p.init !== undefined ? readPeftAdapter(p.init, c) : null;
  return { settings: adapterSettingsFor(p, init?.settings), baseDtype: p.baseDtype, init };
}

/** Linear weights are held in the base dtype; their values as stored (what DoRA's magnitudes are the norms of). */
function asStored(values: Float32Array, shape: readonly number[], dtype: RecipePeft['baseDtype']): Float32Array {
  if (dtype === 'f32' || shape.length !== 2) return values;
  const [rows, cols] = shape, w = allocWeightStorage(dtype, rows, cols);
  setWeightRows(w, 0, values);
  const out = new Float32Array(rows * cols), row = new Float32Array(cols);
  for (let i = 0; i < rows; i++) { weightRowToF32(w, i, row); out.set(row, i * cols); }
  return out;
}

/** Read the frozen base from `dir` into the model, then set its adapter (peft.init, or PEFT's init with `seed`). */
export function loadBaseAndAdapter(model: TrainableModel, dir: string, run: PeftRun, seed: number): void {
  const c = model.config;
  const linear = new Set(LAYER_TENSORS.filter((t) => t.kind === 'linear').map((t) => t.hf));
  const isLinear = (name: string) => [...linear].some((h) => name.endsWith(`.${h}`));
  const ck = openFloatCheckpoint(dir, 'fine-tuning an adapter on it');
  try {
    for (const p of paramSpecs(c)) {
      ck.expectShape(p.name, p.shape);
      model.setBase(p.name, ck.readF32(p.name));
    }
    const a = run.init ?? initAdapter(c, run.settings, {
      seed,
      baseWeight: (name) => {
        const spec = paramSpecs(c).find((p) => p.name === name)!;
        return asStored(ck.readF32(name), spec.shape, isLinear(name) ? run.baseDtype : 'f32');
      },
    });
    model.paramChunks.write(adapterToFlat({ ...a, settings: run.settings }, model.layout));
  } finally { ck.close(); }
}

/** The model files of an adapter run's checkpoint: a PEFT adapter folder in `dir`. */
export function writeAdapterFiles(dir: string, c: OpenELMConfig, model: TrainableModel, params: Float32Array, baseModel: string | null): void {
  writePeftAdapter(dir, flatToAdapter(params, model.layout, c, model.adapter!), { baseModel });
}

/** Read an adapter run's checkpoint folder into flat parameters laid out for `model`. */
export function readAdapterFiles(dir: string, c: OpenELMConfig, model: TrainableModel, params: Float32Array): void {
  const a = readPeftAdapter(dir, c);
  const want = model.adapter!;
  if (a.settings.type !== want.type || a.settings.r !== want.r || [...a.settings.targets].sort().join() !== [...want.targets].sort().join()) {
    throw new OpenELMError('checkpoint', `${dir} holds a ${a.settings.type} adapter of r ${a.settings.r} on ${a.settings.targets.join(', ')}; this run trains ${want.type} r ${want.r} on ${want.targets.join(', ')}`);
  }
  params.set(adapterToFlat({ ...a, settings: want }, model.layout));
}

/** "1,234,567 trainable adapter parameters (0.45% of 270M)". */
export function describeAdapter(model: TrainableModel, baseParams: number, run: PeftRun): string {
  const n = model.layout.entries.reduce((s, e) => s + e.size, 0);
  const s = run.settings;
  return `${s.type} r ${s.r}, alpha ${s.alpha}${s.rslora ? ' (rsLoRA)' : ''}, dropout ${s.dropout} on ${s.targets.join(', ')}; ` +
    `${n.toLocaleString('en-US')} trainable parameters (${(100 * n / baseParams).toFixed(2)}% of the base); base frozen as ${run.baseDtype}` +
    (run.init ? '; started from the adapter in recipe.peft.init' : '');
}
