// Supervised fine-tuning (task: sft): one example per row, right-padded to the longest row of the
// micro-batch, next-token loss on the trained tokens only (docs/instruction-tuning.md). The loss of
// a step is the mean over all its trained tokens, as HF's causal-LM loss and TRL's SFTTrainer
// compute it: with grad_accum each micro-batch's mean is weighted by its share of the tokens.

import type { TrainableModel } from '../model/trainable.js';
import { gradAccumScales } from '../model/loss.js';
import { SftSet, sftBatch } from './data/instruct-set.js';
import { PAD } from './data/sources.js';
import {
  InstructOrder, instructTemplate, loadInstructSets, templateCheckpointFiles, withRunLength, type InstructContext, type InstructSets,
} from './instruct-task.js';
import type { Recipe } from './recipe.js';
import type { StepContext, StepResult, TaskState, TrainTask } from './task.js';

const LAYOUT = 'JSONL lines of {"messages": [...]}, {"prompt", "completion"} or {"text"}';

export class SftTask implements TrainTask {
  private readonly train: SftSet;
  private readonly valid: SftSet | null;
  private readonly modelFiles: Record<string, string>;

  private constructor(readonly recipe: Recipe, private readonly sets: InstructSets<SftSet>, private readonly order: InstructOrder) {
    this.train = sets.train; this.valid = sets.valid;
    this.modelFiles = templateCheckpointFiles(recipe);
  }

  /** Reads and tokenizes every example; the returned task's recipe has its run length fixed. */
  static async create(ctx: InstructContext): Promise<SftTask> {
    const r = ctx.recipe;
    const t = { tok: ctx.tok, template: instructTemplate(r), maxLength: r.maxLength!, maskPrompt: r.maskPrompt };
    const sets = await loadInstructSets(ctx, (files, o) => SftSet.load(files, t, o), 'examples', LAYOUT);
    const rr = withRunLength(ctx, sets.train.size, 'examples');
    return new SftTask(rr, sets, new InstructOrder(sets.train.size, sets.train.digest(), rr.pipeline.shuffle, rr.pipeline.seed));
  }

  describeBatch(): string {
    const r = this.recipe;
    return `batch: ${r.batchSize} examples × ${r.gradAccum} accumulation per step (rows padded to the longest, at most ${r.maxLength} tokens); ${r.steps} steps; ` +
      `loss on ${r.maskPrompt ? 'the completions / assistant turns' : 'every token after the BOS'}`;
  }

  async step(model: TrainableModel, ctx: StepContext): Promise<StepResult> {
    const r = this.recipe;
    const batches = Array.from({ length: r.gradAccum }, () => sftBatch(this.train, this.order.take(r.batchSize)));
    const scales = gradAccumScales(batches.map((b) => b.validTokens), 'token');
    let sum = 0, tokens = 0;
    for (let i = 0; i < batches.length; i++) {
      const b = batches[i];
      const res = await model.forwardBackward(b.inputs, b.targets, b.rows, b.T, { ignoreIndex: PAD, zLoss: r.zLoss, gradScale: scales[i], dropoutSeed: ctx.dropoutSeed(i) });
      sum += res.loss * res.validTokens;
      tokens += res.validTokens;
    }
    return { loss: tokens ? sum / tokens : 0, tokens };
  }

  async evaluate(model: TrainableModel): Promise<Record<string, number> | undefined> {
    if (!this.valid) return undefined;
    const r = this.recipe, n = Math.min(this.valid.size, r.data.evalBatches * r.batchSize);
    let sum = 0, tokens = 0;
    for (let i = 0; i < n; i += r.batchSize) {
      const b = sftBatch(this.valid, Array.from({ length: Math.min(r.batchSize, n - i) }, (_, j) => i + j));
      const res = await model.evalLoss(b.inputs, b.targets, b.rows, b.T, { ignoreIndex: PAD, zLoss: r.zLoss });
      sum += res.loss * res.validTokens; tokens += res.validTokens;
    }
    return tokens ? { loss: sum / tokens } : undefined;
  }

  getState(): TaskState { return { json: this.order.getState(), tensors: {} }; }
  setState(json: unknown): void { this.order.setState(json); }

  notes(): string[] { return this.sets.notes(); }

  checkpointFiles(): Record<string, string> { return this.modelFiles; }

  async close(): Promise<void> { /* everything is in memory */ }
}
