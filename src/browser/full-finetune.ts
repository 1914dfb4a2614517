// Full-model fine-tuning in the page: every weight of the loaded model trained with AdamW on the
// same backend, the same TrainableModel and optimizer the Node trainer uses (model/trainable.ts,
// train/adamw.ts). It costs 16 bytes per parameter (f32 weights, gradients and two moments), so it
// suits small models; adapters (LoRA/DoRA) are the way to tune larger ones.
//
// The weights start from the checkpoint's own values in f32 (read again from the kept download),
// not from the loaded model, whose linears may be stored in bf16 or quantized. Chatting with the
// tuned model reads the training weights in place (no copy); saving writes a model folder
// (config.json + model.safetensors in f32, and the folder's tokenizer_config.json when it had one).

import { OpenELMError } from '../core/errors.js';
import { LoadedModel } from '../loaded-model.js';
import { OpenELM } from '../model/openelm.js';
import { paramLayout } from '../model/layout.js';
import { TrainableModel } from '../model/trainable.js';
import { AdamW } from '../train/adamw.js';
import { safetensorsBytes } from '../io/safetensors-writer.js';
import type { OpenELMConfig } from '../model/config.js';
import { formatBytes as fmtBytes } from '../core/bytes.js';
import { registerFineTuner, type AdapterFile, type FineTuneData, type FineTuneJob, type FineTuner, type FineTuneSettings, type FineTuneStep } from './finetune.js';
import { WindowSampler, trainingWindows, type TrainingWindows } from './finetune-data.js';
import { fineTuneStep } from './finetune-step.js';
import { weightSourceOf } from './weight-files.js';

/** Bytes a training step keeps besides the weights: saved activations and one head chunk of logits. */
function activationBytes(c: OpenELMConfig, rows: number, headRows: number): number {
  let per = 0;
  for (let l = 0; l < c.numLayers; l++) {
    const Q = c.numQueryHeads[l], H = c.numKvHeads[l], Wq = (Q + 2 * H) * c.headDim;
    per += 4 * c.modelDim + 2 * Wq + Q * c.headDim + (c.ffnWithGlu ? 2 : 1) * c.ffnDims[l] + 2 * Q + 3 * H;
  }
  return 4 * (rows * (per + 2 * c.modelDim) + Math.min(headRows, rows) * c.vocabSize * 2);
}

class FullJob implements FineTuneJob {
  private tuned: LoadedModel | undefined;
  private disposed = false;

  constructor(
    private readonly base: LoadedModel,
    private readonly model: TrainableModel,
    private readonly opt: AdamW,
    private readonly windows: TrainingWindows,
    private readonly s: FineTuneSettings,
  ) {}

  get examples(): number { return this.windows.examples; }
  get tokens(): number { return this.windows.tokens; }

  async run(onStep: (s: FineTuneStep) => void, signal: AbortSignal): Promise<void> {
    const sampler = new WindowSampler(this.windows, this.s.seed);
    const { model, opt, s } = this, T = this.windows.T;
    try {
      for (let step = 1; step <= s.steps && !signal.aborted; step++) {
        await fineTuneStep(model, opt, s, step, sampler.next(s.batchSize), T, {}, onStep);
      }
    } finally {
      // Chat after training needs the memory the activations took.
      model.releaseActivations();
    }
  }

  async use(on: boolean): Promise<LoadedModel> {
    if (!on) return this.base;
    const b = this.base;
    this.tuned ??= new LoadedModel({
      dir: `${b.dir} (fine-tuned)`, model: new OpenELM(b.config, b.backend, this.model.inferenceWeights()),
      tokenizer: b.tokenizer, chatTemplate: b.chatTemplate, isInstruct: b.isInstruct, backend: b.backend, ownsBackend: false,
    });
    return this.tuned;
  }

  async files(): Promise<AdapterFile[]> {
    const c = this.base.config, flat = await this.model.paramChunks.read();
    const tensors = this.model.layout.entries.map((e) => ({ name: e.name, dtype: 'F32' as const, shape: e.shape, data: flat.subarray(e.offset, e.offset + e.size) }));
    const enc = new TextEncoder();
    const files: AdapterFile[] = [
      { name: 'config.json', bytes: enc.encode(JSON.stringify({ ...c.hf, torch_dtype: 'float32' }, null, 2) + '\n') },
      { name: 'model.safetensors', bytes: safetensorsBytes('model.safetensors', tensors, { format: 'pt' }) },
    ];
    const tc = weightSourceOf(this.base)?.tokenizerConfig;
    if (tc) files.push({ name: 'tokenizer_config.json', bytes: enc.encode(JSON.stringify(tc, null, 2) + '\n') });
    return files;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // The tuned model's weights are views of the training parameters: release its caches only.
    this.tuned?.model.release();
    this.opt.dispose();
    this.model.dispose();
  }
}

/** Full-model training on the loaded model's backend. */
export const fullFineTuner: FineTuner = {
  methods: ['full'],
  async prepare(lm: LoadedModel, data: FineTuneData, s: FineTuneSettings): Promise<FineTuneJob> {
    const c = lm.config;
    const windows = trainingWindows(lm.tokenizer, lm.chatTemplate, data, Math.min(s.sequenceLength, c.maxContextLength));
    const rows = s.batchSize * windows.T;
    const P = paramLayout(c).total, act = activationBytes(c, rows, 256);
    const mem = lm.backend.memory();
    const need = 16 * P + act;
    if (mem.inUse + need > mem.limit) {
      throw new OpenELMError('memory', `full fine-tuning of ${lm.dir} needs about ${fmtBytes(need)} (weights, gradients and AdamW moments in f32: 16 bytes × ${P.toLocaleString('en-US')} parameters, ` +
        `plus ${fmtBytes(act)} of activations), more than the ${fmtBytes(Math.max(0, mem.limit - mem.inUse))} left to this page; train an adapter (LoRA) or pick a smaller model, batch or sequence length`);
    }
    const src = weightSourceOf(lm);
    if (!src) throw new OpenELMError('finetune', `${lm.dir}: its weights cannot be read again for training (load it with the browser entry's loadModel, or call keepWeightSource)`);
    const ck = await src.open();
    const model = new TrainableModel(c, lm.backend);
    let opt: AdamW | undefined;
    try {
      for (const e of model.layout.entries) {
        ck.expectShape(e.name, e.shape);
        model.setParam(e.name, ck.readF32(e.name, new Float32Array(e.size)));
      }
      // HF Trainer's AdamW defaults (betas 0.9/0.999, eps 1e-8, no weight decay).
      opt = new AdamW(lm.backend, model.layout, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, reserveBytes: act });
      return new FullJob(lm, model, opt, windows, s);
    } catch (e) {
      opt?.dispose();
      model.dispose();
      throw e;
    } finally { ck.close(); }
  },
};

registerFineTuner(fullFineTuner);
