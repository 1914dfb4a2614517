// Direct preference optimization (task: dpo): batches of preference pairs (chosen rows, then
// rejected rows), the policy's completion log-probabilities from one forward, TRL's loss against
// the frozen reference's log-probabilities, and the backward through the per-sequence sums
// (dpo-step.ts, docs/instruction-tuning.md).
//
// The reference (the run's initial weights, or `dpo.reference: DIR`) scores every training and
// validation pair once, before the first step; its log-probabilities are kept in each checkpoint,
// so a resumed run never needs the reference again and continues bit-identically.

import { OpenELMError } from '../core/errors.js';
import type { TrainableModel } from '../model/trainable.js';
import { DpoSet, dpoBatch } from './data/instruct-set.js';
import { DPO_METRIC_KEYS, dpoLoss, type DpoConfig, type DpoMetrics } from './dpo-loss.js';
import { dpoStep, pairLogps, type PairLogps } from './dpo-step.js';
import {
  InstructOrder, instructTemplate, loadInstructSets, templateCheckpointFiles, withRunLength, type InstructContext, type InstructSets,
} from './instruct-task.js';
import type { Recipe } from './recipe.js';
import type { StepContext, StepResult, TaskState, TrainTask } from './task.js';

const LAYOUT = 'JSONL lines of preference pairs {"prompt", "chosen", "rejected"} (strings, or chosen/rejected as message lists)';

/** Reference log-probability sums of a set: [chosen of pair 0..n), then [rejected of pair 0..n). */
type RefLogps = Float64Array;

export class DpoTask implements TrainTask {
  private refTrain: RefLogps | null = null;
  private refValid: RefLogps | null = null;
  readonly cfg: DpoConfig;

  private readonly train: DpoSet;
  private readonly valid: DpoSet | null;
  private readonly modelFiles: Record<string, string>;

  private constructor(readonly recipe: Recipe, private readonly ctx: InstructContext, private readonly sets: InstructSets<DpoSet>, private readonly order: InstructOrder) {
    const d = recipe.dpo!;
    this.cfg = { beta: d.beta, lossType: d.lossType, labelSmoothing: d.labelSmoothing };
    this.train = sets.train; this.valid = sets.valid;
    this.modelFiles = templateCheckpointFiles(recipe);
  }

  /** Reads and tokenizes every pair; the returned task's recipe has its run length fixed. */
  static async create(ctx: InstructContext): Promise<DpoTask> {
    const r = ctx.recipe;
    const t = { tok: ctx.tok, template: instructTemplate(r), maxLength: r.maxLength!, maxPromptLength: r.maxPromptLength! };
    const sets = await loadInstructSets(ctx, (files, o) => DpoSet.load(files, t, o), 'pairs', LAYOUT);
    const rr = withRunLength(ctx, sets.train.size, 'pairs');
    return new DpoTask(rr, ctx, sets, new InstructOrder(sets.train.size, sets.train.digest(), rr.pipeline.shuffle, rr.pipeline.seed));
  }

  describeBatch(): string {
    const r = this.recipe, d = r.dpo!;
    return `batch: ${r.batchSize} pairs × ${r.gradAccum} accumulation per step (rows of at most ${r.maxLength} tokens, prompts of at most ${r.maxPromptLength}); ${r.steps} steps; ` +
      `${d.lossType} loss, beta ${d.beta}${d.lossType === 'sigmoid' && d.labelSmoothing ? `, label smoothing ${d.labelSmoothing}` : ''}`;
  }

  /** Every pair of `set` scored by `model`, batch_size pairs at a time, in file order; progress every 30 s. */
  private async score(model: TrainableModel, set: DpoSet, what: string, signal?: AbortSignal): Promise<RefLogps | null> {
    const n = set.size, bs = this.recipe.batchSize, out = new Float64Array(2 * n);
    let shown = performance.now();
    for (let i = 0; i < n; i += bs) {
      // let a pending Ctrl-C reach its handler
      await new Promise<void>((res) => setImmediate(res));
      if (signal?.aborted) return null;
      const idx = Array.from({ length: Math.min(bs, n - i) }, (_, j) => i + j);
      const lp = await pairLogps(model, dpoBatch(set, idx));
      out.set(lp.chosen, i);
      out.set(lp.rejected, n + i);
      if (performance.now() - shown > 30_000 && i + bs < n) {
        shown = performance.now();
        this.ctx.log(`reference: ${(i + bs).toLocaleString('en-US')} of ${n.toLocaleString('en-US')} ${what} pairs scored`);
      }
    }
    return out;
  }

  /** The reference log-probabilities of every training and validation pair (fresh runs). */
  async prepare(model: TrainableModel, signal?: AbortSignal): Promise<void> {
    const ref = this.recipe.dpo!.reference;
    const t0 = performance.now();
    const pairs = this.train.size + (this.valid?.size ?? 0);
    this.ctx.log(`reference: scoring ${pairs} pairs with ${ref !== undefined ? ref : 'the initial weights'} (once; kept in every checkpoint)`);
    const scoreAll = async (m: TrainableModel): Promise<void> => {
      this.refTrain = await this.score(m, this.train, 'training', signal);
      this.refValid = this.valid && this.refTrain ? await this.score(m, this.valid, 'validation', signal) : null;
    };
    if (ref === undefined) {
      await scoreAll(model);
    } else {
      const m = await this.ctx.openModel(ref);
      try {
        if (m.model.config.vocabSize !== model.config.vocabSize) {
          throw new OpenELMError('recipe', `${this.recipe.file}: recipe.dpo.reference ${ref} has vocab_size ${m.model.config.vocabSize}; the model being trained has ${model.config.vocabSize}`);
        }
        await scoreAll(m.model);
      } finally {
        m.close();
      }
    }
    if (signal?.aborted) { this.refTrain = this.refValid = null; return; }
    this.ctx.log(`reference: ${pairs} pairs in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }

  private refOf(ref: RefLogps | null, n: number, idx: readonly number[]): PairLogps {
    if (!ref) throw new OpenELMError('train', 'the reference log-probabilities are missing (prepare() was not run and the checkpoint had none)');
    return { chosen: Float64Array.from(idx, (i) => ref[i]), rejected: Float64Array.from(idx, (i) => ref[n + i]) };
  }

  async step(model: TrainableModel, ctx: StepContext): Promise<StepResult> {
    const r = this.recipe, n = this.train.size;
    let loss = 0, tokens = 0, pairs = 0;
    const sums = Object.fromEntries(DPO_METRIC_KEYS.map((k) => [k, 0])) as unknown as DpoMetrics;
    for (let a = 0; a < r.gradAccum; a++) {
      const idx = this.order.take(r.batchSize);
      const b = dpoBatch(this.train, idx);
      // each micro-batch's mean over its pairs weighs 1/grad_accum, as HF's Trainer accumulates
      const res = await dpoStep(model, b, this.refOf(this.refTrain, n, idx), this.cfg, 1 / r.gradAccum, ctx.dropoutSeed(a));
      loss += res.loss / r.gradAccum;
      tokens += b.validTokens;
      pairs += res.pairs;
      for (const k of DPO_METRIC_KEYS) sums[k] += res.metricSums[k];
    }
    return { loss, tokens, metrics: Object.fromEntries(DPO_METRIC_KEYS.map((k) => [k, sums[k] / pairs])) };
  }

  /** The DPO loss and TRL's metrics over the first eval_batches × batch_size validation pairs. */
  async evaluate(model: TrainableModel): Promise<Record<string, number> | undefined> {
    if (!this.valid) return undefined;
    const r = this.recipe, v = this.valid, n = Math.min(v.size, r.data.evalBatches * r.batchSize);
    const pol = new Float64Array(2 * n), ref = new Float64Array(2 * n), count = new Float64Array(2 * n);
    for (let i = 0; i < n; i += r.batchSize) {
      const idx = Array.from({ length: Math.min(r.batchSize, n - i) }, (_, j) => i + j);
      const b = dpoBatch(v, idx);
      const lp = await pairLogps(model, b);
      const rf = this.refOf(this.refValid, v.size, idx);
      const P = idx.length;
      pol.set(lp.chosen, i); pol.set(lp.rejected, n + i);
      ref.set(rf.chosen, i); ref.set(rf.rejected, n + i);
      for (let j = 0; j < P; j++) { count[i + j] = b.rowTokens[j]; count[n + i + j] = b.rowTokens[P + j]; }
    }
    const res = dpoLoss(pol.subarray(0, n), pol.subarray(n), ref.subarray(0, n), ref.subarray(n), this.cfg, count.subarray(0, n), count.subarray(n));
    return { loss: res.loss, ...res.metrics };
  }

  getState(): TaskState {
    const tensors: Record<string, Float64Array> = {};
    if (this.refTrain) tensors.ref_logps_train = this.refTrain;
    if (this.refValid) tensors.ref_logps_valid = this.refValid;
    return { json: { ...this.order.getState(), validDigest: this.valid?.digest() ?? null }, tensors };
  }

  setState(json: unknown, tensors: Record<string, Int32Array | Float64Array>): void {
    this.order.setState(json);
    if ((json as { validDigest?: unknown }).validDigest !== (this.valid?.digest() ?? null)) {
      throw new OpenELMError('checkpoint', 'the validation pairs changed since the checkpoint was written (their reference log-probabilities are in it); resuming needs the same data');
    }
    const take = (name: string, n: number): RefLogps => {
      const t = tensors[name];
      if (!(t instanceof Float64Array) || t.length !== 2 * n) {
        throw new OpenELMError('checkpoint', `the checkpoint's ${name} ${t ? `has ${t.length} values` : 'is missing'}; ${n} pairs need ${2 * n} reference log-probabilities`);
      }
      return t;
    };
    this.refTrain = take('ref_logps_train', this.train.size);
    this.refValid = this.valid ? take('ref_logps_valid', this.valid.size) : null;
  }

  notes(): string[] { return this.sets.notes(); }

  checkpointFiles(): Record<string, string> { return this.modelFiles; }

  async close(): Promise<void> { /* everything is in memory */ }
}
