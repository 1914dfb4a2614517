// One optimizer step of the page's fine-tuning, shared by full training and adapters: the two
// differ only in what the forward is asked for (adapters seed their dropout masks per step).

import { OpenELMError } from '../core/errors.js';
import type { ForwardBackwardOptions, TrainableModel } from '../model/trainable.js';
import type { AdamW } from '../train/adamw.js';
import { clipGradNorm } from '../train/clip.js';
import type { FineTuneSettings, FineTuneStep } from './finetune.js';
import { PAD } from './finetune-data.js';

/** torch.nn.utils.clip_grad_norm_ at 1.0, as HF's Trainer does by default. */
const CLIP = 1.0;

export interface StepBatch { inputs: Int32Array; targets: Int32Array; tokens: number; }

/**
 * Trains `model` on one batch of B windows of T tokens and reports the step. Padding (PAD) is
 * never a target. A non-finite loss or gradient norm stops training before the update, so the
 * weights stay those of the last good step.
 */
export async function fineTuneStep(
  model: TrainableModel, opt: AdamW, s: FineTuneSettings, step: number, b: StepBatch, T: number,
  forward: Omit<ForwardBackwardOptions, 'ignoreIndex'>, onStep: (s: FineTuneStep) => void,
): Promise<void> {
  const t0 = performance.now(), be = model.backend, B = s.batchSize;
  model.zeroGrad();
  const r = await model.forwardBackward(b.inputs, b.targets, B, T, { ...forward, ignoreIndex: PAD });
  const norm = Number.isFinite(r.loss) ? await clipGradNorm(be, model.gradChunks, CLIP) : NaN;
  if (!Number.isFinite(r.loss) || !Number.isFinite(norm)) {
    throw new OpenELMError('finetune', `the ${Number.isFinite(r.loss) ? 'gradient norm' : 'loss'} became ${Number.isFinite(r.loss) ? norm : r.loss} at step ${step}; lower the learning rate (${s.learningRate}) and train again`);
  }
  await opt.update(model.paramChunks, model.gradChunks, s.learningRate);
  await be.sync();
  onStep({ step, steps: s.steps, loss: r.loss, learningRate: s.learningRate, tokens: b.tokens, ms: performance.now() - t0 });
}
