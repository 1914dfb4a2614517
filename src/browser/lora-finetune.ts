// LoRA / DoRA fine-tuning in the page: an adapter on the loaded model's frozen base, trained with the
// Node trainer's parts (TrainableModel with `adapter`, AdamW over the adapter's parameters only,
// gradient clipping) on the loaded model's backend. The base is read from the checkpoint in f32 and
// frozen as bf16 when the model was loaded below f32 (bf16, f16, q8, q4), else as f32. Chatting
// with the adapter loads the merged model (adapters/merge.ts, as `openelm merge` and the library's
// `adapter` option do) beside the base; saving gives PEFT's two files.

import { OpenELMError } from '../core/errors.js';
import { formatBytes } from '../core/bytes.js';
import { LoadedModel } from '../loaded-model.js';
import { TrainableModel } from '../model/trainable.js';
import { modelFromSource } from '../model/load.js';
import { LAYER_TENSORS, paramSpecs } from '../model/params.js';
import { allocWeightStorage, setWeightRows, weightRowToF32 } from '../backends/weight-format.js';
import { AdamW } from '../train/adamw.js';
import { checkSettings, initAdapter, type AdapterSettings } from '../adapters/adapter.js';
import { adapterToFlat, flatToAdapter } from '../adapters/params.js';
import { mergedSource } from '../adapters/merge.js';
import { isAdapterTarget, type AdapterTarget } from '../adapters/targets.js';
import { peftAdapterFiles } from '../io/peft-files.js';
import { registerFineTuner, type AdapterFile, type FineTuneData, type FineTuneJob, type FineTuner, type FineTuneSettings, type FineTuneStep } from './finetune.js';
import { WindowSampler, trainingWindows, type TrainingWindows } from './finetune-data.js';
import { fineTuneStep } from './finetune-step.js';
import { weightSourceOf, type WeightSource } from './weight-files.js';

type BaseDType = 'f32' | 'bf16';

/** Values as the frozen base holds them (DoRA's magnitudes start as the norms of these). */
function asStored(values: Float32Array, rows: number, cols: number, dtype: BaseDType): Float32Array {
  if (dtype === 'f32') return values;
  const w = allocWeightStorage(dtype, rows, cols);
  setWeightRows(w, 0, values);
  const out = new Float32Array(rows * cols), row = new Float32Array(cols);
  for (let i = 0; i < rows; i++) { weightRowToF32(w, i, row); out.set(row, i * cols); }
  return out;
}

class AdapterJob implements FineTuneJob {
  private merged: LoadedModel | undefined;
  private disposed = false;

  constructor(
    private readonly base: LoadedModel, private readonly src: WeightSource, private readonly model: TrainableModel,
    private readonly opt: AdamW, private readonly windows: TrainingWindows, private readonly s: FineTuneSettings,
    private readonly settings: AdapterSettings,
  ) {}

  get examples(): number { return this.windows.examples; }
  get tokens(): number { return this.windows.tokens; }

  async run(onStep: (s: FineTuneStep) => void, signal: AbortSignal): Promise<void> {
    this.dropMerged();
    const sampler = new WindowSampler(this.windows, this.s.seed);
    const { model, opt, s } = this, T = this.windows.T;
    try {
      for (let step = 1; step <= s.steps && !signal.aborted; step++) {
        await fineTuneStep(model, opt, s, step, sampler.next(s.batchSize), T, { dropoutSeed: s.seed * 1_000_003 + step }, onStep);
      }
    } finally {
      model.releaseActivations();
    }
  }

  private async adapter() {
    const flat = await this.model.paramChunks.read();
    return { ...flatToAdapter(flat, this.model.layout, this.base.config, this.settings), baseModel: this.base.dir };
  }

  async use(on: boolean): Promise<LoadedModel> {
    if (!on) return this.base;
    if (!this.merged) {
      const b = this.base, ck = await this.src.open();
      try {
        const { source } = mergedSource(ck, b.config, await this.adapter());
        const m = modelFromSource(source, b.config, b.backend, this.src.loadDType ?? 'auto');
        this.merged = new LoadedModel({ dir: `${b.dir} + adapter`, model: m, tokenizer: b.tokenizer, chatTemplate: b.chatTemplate, isInstruct: b.isInstruct, backend: b.backend, ownsBackend: false });
      } finally { ck.close(); }
    }
    return this.merged;
  }

  async files(): Promise<AdapterFile[]> { return peftAdapterFiles(await this.adapter()); }

  private dropMerged(): void { this.merged?.dispose(); this.merged = undefined; }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.dropMerged();
    this.opt.dispose();
    this.model.dispose();
  }
}

/** LoRA and DoRA adapters on the loaded model's backend, saved as PEFT adapters. */
export const loraFineTuner: FineTuner = {
  methods: ['lora', 'dora'],
  async prepare(lm: LoadedModel, data: FineTuneData, s: FineTuneSettings): Promise<FineTuneJob> {
    if (s.method !== 'lora' && s.method !== 'dora') throw new OpenELMError('finetune', `this trainer trains lora or dora adapters, not ${s.method}`);
    const bad = s.targets.filter((t) => !isAdapterTarget(t));
    if (bad.length) throw new OpenELMError('finetune', `cannot adapt ${bad.join(', ')}: the modules are token_embeddings, qkv_proj, out_proj, proj_1, proj_2`);
    const settings: AdapterSettings = { type: s.method, r: s.rank, alpha: s.alpha, dropout: s.dropout, targets: s.targets as AdapterTarget[], rslora: false };
    checkSettings(settings, 'adapter');
    const c = lm.config;
    const windows = trainingWindows(lm.tokenizer, lm.chatTemplate, data, Math.min(s.sequenceLength, c.maxContextLength));
    const src = weightSourceOf(lm);
    if (!src) throw new OpenELMError('finetune', `${lm.dir}: its weights cannot be read again for training (load it with the browser entry's loadModel, or call keepWeightSource)`);
    const baseDtype: BaseDType = src.loadDType === undefined || src.loadDType === 'f32' || src.loadDType === 'auto' ? 'f32' : 'bf16';
    const linear = new Set(LAYER_TENSORS.filter((t) => t.kind === 'linear').map((t) => t.hf));
    const isLinear = (name: string) => [...linear].some((h) => name.endsWith(`.${h}`));
    // The frozen base, the adapter's parameters, gradients and two moments, and the activations.
    let baseBytes = 0;
    for (const p of paramSpecs(c)) baseBytes += p.shape.reduce((a, b) => a * b, 1) * (isLinear(p.name) && baseDtype === 'bf16' ? 2 : 4);
    const mem = lm.backend.memory();
    const rows = s.batchSize * windows.T;
    const actBytes = rows * 4 * c.numLayers * (12 * c.modelDim + 4 * Math.max(...c.ffnDims)) + 4 * Math.min(rows, 256) * c.vocabSize * 2;
    if (mem.inUse + baseBytes + actBytes > mem.limit) {
      throw new OpenELMError('memory', `training an adapter on ${lm.dir} needs about ${formatBytes(baseBytes + actBytes)} beside the loaded model (the frozen base as ${baseDtype} and the activations), more than the ${formatBytes(Math.max(0, mem.limit - mem.inUse))} left to this page; pick a smaller model, batch or sequence length`);
    }
    const model = new TrainableModel(c, lm.backend, { adapter: { settings, baseDtype } });
    let opt: AdamW | undefined;
    const ck = await src.open();
    try {
      for (const p of paramSpecs(c)) {
        ck.expectShape(p.name, p.shape);
        model.setBase(p.name, ck.readF32(p.name, new Float32Array(p.shape.reduce((a, b) => a * b, 1))));
      }
      const a = initAdapter(c, settings, {
        seed: s.seed,
        baseWeight: (name) => {
          const spec = paramSpecs(c).find((p) => p.name === name)!;
          const v = ck.readF32(name, new Float32Array(spec.shape.reduce((x, y) => x * y, 1)));
          return spec.shape.length === 2 && isLinear(name) ? asStored(v, spec.shape[0], spec.shape[1], baseDtype) : v;
        },
      });
      model.paramChunks.write(adapterToFlat(a, model.layout));
      // PEFT with HF Trainer: AdamW (0.9, 0.999), eps 1e-8, no weight decay.
      opt = new AdamW(lm.backend, model.layout, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, reserveBytes: actBytes });
      return new AdapterJob(lm, src, model, opt, windows, s, settings);
    } catch (e) {
      opt?.dispose();
      model.dispose();
      throw e;
    } finally { ck.close(); }
  },
};

registerFineTuner(loraFineTuner);
