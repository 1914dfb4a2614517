// Pretraining as a task of the training loop: token rows from the weighted, shuffled text/token
// sources (data/loader.ts), next-token loss on every non-PAD target, micro-batches weighted
// 1/grad_accum (the mean of micro-batch means, as DDP averages ranks).

import { OpenELMError } from '../core/errors.js';
import type { TrainableModel } from '../model/trainable.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { expandDataPath } from './data/files.js';
import { TrainLoader, readRows, rowsToBatch, type LoaderState } from './data/loader.js';
import { PAD, createSource, type RowSource, type SourceSpec, type SourceStats } from './data/sources.js';
import type { Recipe, RecipeSource } from './recipe.js';
import type { StepContext, StepResult, TaskState, TrainTask } from './task.js';

export function sourceSpecs(list: RecipeSource[], key: string): SourceSpec[] {
  return list.map((s, i) => ({
    name: s.name,
    files: s.absPaths.flatMap((p, j) => expandDataPath(p, s.format, `recipe.data.${key}[${i}].path${s.absPaths.length > 1 ? `[${j}]` : ''}`)),
    format: s.format, textKey: s.textKey, weight: s.weight,
  }));
}

function buildSources(r: Recipe, specs: SourceSpec[], role: 'all' | 'train' | 'valid', tok: Tokenizer, vocab: number, warn?: (line: string) => void): RowSource[] {
  const pipe = { mode: r.pipeline.mode, seqLen: r.seqLen, splitWords: r.pipeline.splitWords, minChars: r.pipeline.minChars, minTokens: r.pipeline.minTokens };
  const training = role !== 'valid';
  return specs.map((s, i) => createSource(s, {
    pipe, split: { role, fraction: r.data.validFraction },
    seed: (r.pipeline.seed * 1000003 + i * 7919 + 17) >>> 0,
    loop: training, shuffleFiles: training && r.pipeline.shuffle, vocabSize: vocab, warn,
  }, tok));
}

/**
 * The training loader a recipe describes (files listed, sources built, nothing read yet). `warn`
 * hears about corrupt input lines as they are skipped.
 */
export function createTrainLoader(r: Recipe, tok: Tokenizer, vocabSize: number, warn?: (line: string) => void): TrainLoader {
  const specs = sourceSpecs(r.data.train, 'train');
  return new TrainLoader(buildSources(r, specs, r.data.validFraction > 0 ? 'train' : 'all', tok, vocabSize, warn),
    { seqLen: r.seqLen, shuffleBuffer: r.pipeline.shuffleBuffer, seed: r.pipeline.seed });
}

/** The validation rows a recipe describes (held-out part of the training sources, or data.valid). */
export async function readValidationRows(r: Recipe, tok: Tokenizer, vocabSize: number): Promise<Int32Array[]> {
  const specs = r.data.valid.length ? sourceSpecs(r.data.valid, 'valid') : r.data.validFraction > 0 ? sourceSpecs(r.data.train, 'train') : [];
  if (!specs.length) return [];
  return readRows(buildSources(r, specs, r.data.valid.length ? 'all' : 'valid', tok, vocabSize), r.data.evalBatches * r.batchSize);
}

export function describeStats(name: string, s: SourceStats): string {
  const parts = [`${s.chunks} chunks`, `${s.kept} kept`];
  if (s.droppedChars) parts.push(`${s.droppedChars} under min_chars`);
  if (s.droppedTokens) parts.push(`${s.droppedTokens} under min_tokens`);
  if (s.heldOut) parts.push(`${s.heldOut} held out for validation`);
  parts.push(`${s.rows} rows`);
  let line = `data ${name}: ${parts.join(', ')}`;
  if (s.badLines) line += `; ${s.badLines} corrupt line${s.badLines === 1 ? '' : 's'} skipped (first: ${s.badExamples.join('; ')})`;
  return line;
}

export class PretrainTask implements TrainTask {
  private readonly loader: TrainLoader;
  private readonly hasValid: boolean;
  private validRows: Int32Array[] | null = null;

  /** Lists the files (a missing path fails here, before any model is built); reads nothing yet. */
  constructor(private readonly r: Recipe, private readonly tok: Tokenizer, private readonly vocabSize: number, warn?: (line: string) => void) {
    const trainSpecs = sourceSpecs(r.data.train, 'train');
    const validSpecs = r.data.valid.length ? sourceSpecs(r.data.valid, 'valid') : r.data.validFraction > 0 ? trainSpecs : [];
    this.hasValid = validSpecs.length > 0;
    if ([...trainSpecs, ...validSpecs].some((s) => s.format !== 'tokens') && vocabSize < tok.vocabSize) {
      throw new OpenELMError('recipe', `${r.file}: the model's vocab_size (${vocabSize}) is smaller than the tokenizer's (${tok.vocabSize})`);
    }
    this.loader = createTrainLoader(r, tok, vocabSize, warn);
  }

  describeBatch(): string {
    const r = this.r;
    return `batch: ${r.batchSize} × ${r.seqLen} tokens × ${r.gradAccum} accumulation = ${(r.batchSize * r.seqLen * r.gradAccum).toLocaleString('en-US')} tokens per step; ${r.steps} steps; ${r.pipeline.mode} layout`;
  }

  async step(model: TrainableModel, ctx: StepContext): Promise<StepResult> {
    const r = this.r;
    let lossSum = 0, tokens = 0;
    for (let a = 0; a < r.gradAccum; a++) {
      const b = await this.loader.nextBatch(r.batchSize);
      const res = await model.forwardBackward(b.inputs, b.targets, r.batchSize, r.seqLen, { ignoreIndex: PAD, zLoss: r.zLoss, gradScale: 1 / r.gradAccum, dropoutSeed: ctx.dropoutSeed(a) });
      lossSum += res.loss;
      tokens += res.validTokens;
    }
    return { loss: lossSum / r.gradAccum, tokens };
  }

  async evaluate(model: TrainableModel): Promise<Record<string, number> | undefined> {
    const r = this.r;
    if (!this.hasValid) return undefined;
    if (!this.validRows) {
      this.validRows = await readValidationRows(r, this.tok, this.vocabSize);
      if (!this.validRows.length) throw new OpenELMError('data', 'the validation data gives no rows (check recipe.data.valid / valid_fraction and the filters)');
    }
    let sum = 0, n = 0;
    for (let i = 0; i < this.validRows.length; i += r.batchSize) {
      const rows = this.validRows.slice(i, i + r.batchSize);
      const b = rowsToBatch(rows, r.seqLen);
      const res = await model.evalLoss(b.inputs, b.targets, rows.length, r.seqLen, { ignoreIndex: PAD, zLoss: r.zLoss });
      sum += res.loss * res.validTokens; n += res.validTokens;
    }
    return n ? { loss: sum / n } : undefined;
  }

  getState(): TaskState { return this.loader.getState(); }

  setState(json: unknown, tensors: Record<string, Int32Array | Float64Array>): void {
    const ints: Record<string, Int32Array> = {};
    for (const [k, v] of Object.entries(tensors)) {
      if (!(v instanceof Int32Array)) throw new OpenELMError('checkpoint', `the checkpoint's data state ${k} is not the pretraining loader's`);
      ints[k] = v;
    }
    this.loader.setState(json as LoaderState, ints);
  }

  notes(): string[] { return this.loader.stats().map((s) => describeStats(s.name, s.stats)); }

  close(): Promise<void> { return this.loader.close(); }
}
