// In-loop evaluation (recipe key `eval_tasks`): the `openelm eval` benchmarks, scored on the weights
// the trainer holds at that moment, logged as the `eval` field of a metrics.jsonl line.
//
// The scores equal `openelm eval --model <that step's checkpoint>` with the same tasks, --limit,
// --num-fewshot and --batch-size: the inference model reads the training parameters in place (f32,
// as the checkpoint stores them), on a backend of the same kind, through the same evaluate().
// Evaluation reads the parameters only, and no random stream of the trainer, so a run's training
// numbers are the same with and without it.

import { OpenELMError } from '../core/errors.js';
import { evaluate } from '../eval/evaluator.js';
import { resolveTask } from '../eval/tasks/index.js';
import { OpenELM } from '../model/openelm.js';
import type { TrainableModel } from '../model/trainable.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { RecipeEvalTasks } from './recipe.js';

/** Per task, its numeric results (acc, acc_stderr, acc_norm, …, n) as `openelm eval --json` reports them. */
export type EvalScores = Record<string, Record<string, number>>;

/** Load every task's documents once, so a missing data file stops the run before the model is built. */
export async function checkEvalTasks(spec: RecipeEvalTasks): Promise<void> {
  try {
    await loadAll(spec);
  } catch (e) {
    if (e instanceof OpenELMError && !e.message.startsWith('recipe.eval_tasks')) throw new OpenELMError(e.code, `recipe.eval_tasks: ${e.message}`);
    throw e;
  }
}

async function loadAll(spec: RecipeEvalTasks): Promise<void> {
  for (const t of spec.tasks) {
    for (const task of resolveTask(t.name)) {
      await task.load(spec.dataDir, task.evalSplit);
      const k = task.fixedNumFewshot ?? t.numFewshot ?? spec.numFewshot;
      if (k > 0) {
        if (!task.fewshotSplit) throw new OpenELMError('recipe', `recipe.eval_tasks: ${task.name} has no few-shot split; use num_fewshot 0`);
        if (task.fewshotSplit !== task.evalSplit) await task.load(spec.dataDir, task.fewshotSplit);
      }
    }
  }
}

export class InLoopEval {
  private model: OpenELM | null = null;

  constructor(private readonly spec: RecipeEvalTasks, private readonly trainable: TrainableModel, private readonly tok: Tokenizer) {}

  due(step: number, last: boolean): boolean {
    return step % this.spec.every === 0 || last;
  }

  async run(): Promise<EvalScores> {
    const be = this.trainable.backend;
    if (!this.model) this.model = new OpenELM(this.trainable.config, be, this.trainable.inferenceWeights());
    else {
      // The weights are views of the parameters; a backend that keeps a private copy refreshes it here.
      const w = this.model.weights;
      for (const x of new Set([w.embed, w.head, ...w.layers.flatMap((l) => [l.qkv, l.out, l.proj1, l.proj2])])) be.prepareWeight(x);
    }
    const out = await evaluate(this.model, this.tok, {
      tasks: this.spec.tasks, numFewshot: this.spec.numFewshot, limit: this.spec.limit, dataDir: this.spec.dataDir,
      batchSize: this.spec.batchSize, progressStream: null,
    });
    const scores: EvalScores = {};
    for (const [task, r] of Object.entries(out.results)) {
      const s: Record<string, number> = {};
      for (const [k, v] of Object.entries(r)) if (typeof v === 'number' && k !== 'num_fewshot') s[k] = v;
      scores[task] = s;
    }
    return scores;
  }

  /** Give the inference workspace back (the weights are the trainer's parameters and stay). */
  release(): void {
    this.model?.release();
    this.model = null;
  }
}

/** One short line for the progress log: each task's acc_norm, else acc, else perplexity. */
export function describeScores(s: EvalScores): string {
  return Object.entries(s).map(([task, r]) => {
    const [k, v] = r.acc_norm !== undefined ? ['acc_norm', r.acc_norm] : r.acc !== undefined ? ['acc', r.acc] : ['perplexity', r.perplexity];
    return `${task} ${k} ${v === undefined ? '-' : v.toFixed(4)}`;
  }).join(', ');
}
