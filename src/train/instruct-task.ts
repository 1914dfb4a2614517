// The data side shared by the sft and dpo tasks: the chat template, every JSONL line of the
// training and validation sources read and tokenized when the run starts (bad lines reported as
// they are met: the first few with file:line and reason, then running counts), the run length
// from `epochs`, and the epoch order a checkpoint records.

import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { corenetInstructTemplate, type ChatTemplate } from '../chat/template.js';
import { resolveChatTemplate } from '../io/chat-template-file.js';
import { readJsonFile } from '../io/json.js';
import type { OpenELMConfig } from '../model/config.js';
import type { TrainableModel } from '../model/trainable.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { EpochOrder, type InstructStats, type OrderState, type SkippedLine } from './data/instruct-set.js';
import type { SplitOptions } from './data/sources.js';
import { sourceSpecs } from './pretrain-task.js';
import { resolveRunLength, type Recipe } from './recipe.js';

export interface InstructContext {
  recipe: Recipe;
  tok: Tokenizer;
  config: OpenELMConfig;
  log: (line: string) => void;
  /** A frozen model of folder `dir` on a backend of its own (the DPO reference), released by close(). */
  openModel(dir: string): Promise<{ model: TrainableModel; close(): void }>;
}

/** Skipped lines shown one by one before only counts are logged. */
export const SHOWN_SKIPS = 5;

const KIND_LABEL: Record<SkippedLine['kind'], string> = { malformed: 'malformed', empty: 'empty', too_long: 'too long' };

function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/** The onSkip handler of one data set: the first SHOWN_SKIPS lines in full, then running counts at 10, 100, 1000, … */
export function skipLogger(what: string, log: (line: string) => void): (s: SkippedLine) => void {
  let total = 0;
  const byKind: Partial<Record<SkippedLine['kind'], number>> = {};
  return (s) => {
    total++;
    byKind[s.kind] = s.count;
    if (total <= SHOWN_SKIPS) {
      log(`${displayPath(s.file)}:${s.line}: skipped: ${s.reason}`);
      if (total === SHOWN_SKIPS) log(`data ${what}: further skipped lines are counted, not shown`);
    } else if (/^10+$/.test(String(total))) {
      const kinds = (Object.keys(byKind) as SkippedLine['kind'][]).map((k) => `${byKind[k]} ${KIND_LABEL[k]}`).join(', ');
      log(`data ${what}: ${total} lines skipped so far (${kinds})`);
    }
  };
}

/** One line of what a data set gave; `heldOut`: the set is the held-out part of the training files. */
export function describeInstructStats(what: string, s: InstructStats, unit: string, heldOut = false): string {
  const skippedN = s.malformed + s.empty + s.tooLong;
  const parts = heldOut ? [`${s.kept + skippedN} held-out lines`] : [`${s.lines} lines`];
  if (s.heldOut) parts.push(`${s.heldOut} held out for validation`);
  parts.push(`${s.kept} ${unit} kept`);
  const kinds = Object.entries(s.kinds).map(([k, n]) => `${n} ${k.replace('_', '/')}`);
  if (kinds.length > 1) parts[parts.length - 1] += ` (${kinds.join(', ')})`;
  if (s.truncated) parts.push(`${s.truncated} cut to the length limits`);
  const skipped = [
    s.malformed ? `${s.malformed} malformed` : '', s.empty ? `${s.empty} empty` : '', s.tooLong ? `${s.tooLong} too long` : '',
  ].filter(Boolean);
  if (skipped.length) parts.push(`skipped: ${skipped.join(', ')}`);
  return `data ${what}: ${parts.join(', ')}`;
}

export interface InstructFiles {
  train: string[];
  /** Validation files and how their lines are split (held out of the training files, or all of data.valid). */
  valid: { files: string[]; split: SplitOptions } | null;
  trainSplit: SplitOptions;
}

/** The files a recipe names (a missing path is an error here, before anything is read). */
export function instructFiles(r: Recipe): InstructFiles {
  const train = sourceSpecs(r.data.train, 'train').flatMap((s) => s.files);
  const frac = r.data.validFraction;
  const valid = r.data.valid.length
    ? { files: sourceSpecs(r.data.valid, 'valid').flatMap((s) => s.files), split: { role: 'all' as const, fraction: 0 } }
    : frac > 0 ? { files: train, split: { role: 'valid' as const, fraction: frac } } : null;
  return { train, valid, trainSplit: { role: frac > 0 ? 'train' : 'all', fraction: frac } };
}

/**
 * The template examples are rendered with: the recipe's chat_template, else that of the adapter
 * the run starts from (peft.init), else the init folder's, else CoreNet's. The adapter's comes
 * before the base's as at inference (`--adapter DIR`), so that continuing an adapter trains on the
 * format it is chatted with.
 */
export function instructTemplate(r: Recipe): ChatTemplate {
  return resolveChatTemplate({ file: r.chatTemplate, adapterDirs: r.peft?.init !== undefined ? [r.peft.init] : [], modelDir: r.model.init });
}

/** An error for a data set that gave nothing to use, naming the first skipped line. */
export function noExamplesError(r: Recipe, key: 'train' | 'valid', s: InstructStats, firstSkip: SkippedLine | null, unit: string, layout: string): OpenELMError {
  const list = key === 'valid' && r.data.valid.length ? r.data.valid : r.data.train;
  const where = `${key === 'valid' && !r.data.valid.length ? 'the held-out part of ' : ''}recipe.data.${key === 'valid' && r.data.valid.length ? 'valid' : 'train'} (${list.map((d) => d.paths.join(', ')).join(', ')})`;
  if (s.lines === 0) return new OpenELMError('data', `${where} holds no lines; task ${r.task} needs ${layout}`);
  const first = firstSkip ? ` (first: ${displayPath(firstSkip.file)}:${firstSkip.line}: ${firstSkip.reason})` : '';
  return new OpenELMError('data', `${where} gives no ${unit === 'pairs' ? 'preference pairs' : unit}: ${s.lines} lines read, none usable${first}; task ${r.task} needs ${layout}`);
}

interface LoadedSet { size: number; stats: InstructStats }
type SetLoader<S> = (files: string[], o: { split: SplitOptions; onSkip: (s: SkippedLine) => void }) => Promise<S>;

export interface InstructSets<S> {
  train: S;
  valid: S | null;
  /** The validation set is the held-out part of the training files (valid_fraction). */
  validHeldOut: boolean;
  /** Data lines for the log and the report. */
  notes(): string[];
}

/** The training and validation sets of a recipe, each line reported as it is skipped; an error when one gives nothing. */
export async function loadInstructSets<S extends LoadedSet>(ctx: InstructContext, load: SetLoader<S>, unit: string, layout: string): Promise<InstructSets<S>> {
  const r = ctx.recipe, files = instructFiles(r);
  const one = async (key: 'train' | 'valid', list: string[], split: SplitOptions): Promise<S> => {
    let first: SkippedLine | null = null;
    const onSkip = skipLogger(key, ctx.log);
    const set = await load(list, { split, onSkip: (s) => { first ??= s; onSkip(s); } });
    ctx.log(describeInstructStats(key, set.stats, unit, key === 'valid' && split.role === 'valid'));
    if (set.size === 0) throw noExamplesError(r, key, set.stats, first, unit, layout);
    return set;
  };
  const train = await one('train', files.train, files.trainSplit);
  const valid = files.valid ? await one('valid', files.valid.files, files.valid.split) : null;
  const validHeldOut = files.valid?.split.role === 'valid';
  return {
    train, valid, validHeldOut,
    notes: () => [describeInstructStats('train', train.stats, unit), ...(valid ? [describeInstructStats('valid', valid.stats, unit, validHeldOut)] : [])],
  };
}

/** The recipe with `epochs` turned into steps, and the log line that says so. */
export function withRunLength(ctx: InstructContext, examples: number, unit: string): Recipe {
  const r = resolveRunLength(ctx.recipe, examples);
  if (ctx.recipe.epochs !== undefined) {
    ctx.log(`run length: ${ctx.recipe.epochs} epochs × ${examples} ${unit} / (${r.batchSize} × ${r.gradAccum} per step) = ${r.steps} steps`);
  }
  return r;
}

/**
 * tokenizer_config.json for the checkpoints when the examples were rendered with a template other
 * than the built-in one (`chat_template: FILE`, peft.init's or the init folder's, as
 * instructTemplate picks it), so that `openelm chat` on a checkpoint renders conversations as the
 * model was trained on them.
 */
export function templateCheckpointFiles(r: Recipe): Record<string, string> {
  const t = instructTemplate(r);
  if (t.source === corenetInstructTemplate().source) return {};
  let cfg: Record<string, unknown> = { chat_template: t.text };
  if (t.source.endsWith('.json')) {
    // a tokenizer config's template is kept as written (a list of named templates stays a list),
    // with the bos/eos tokens it renders with
    const o = readJsonFile(t.source, 'tokenizer config') as Record<string, unknown>;
    cfg = { chat_template: o.chat_template };
    for (const k of ['bos_token', 'eos_token']) if (o[k] !== undefined) cfg[k] = o[k];
  }
  return { 'tokenizer_config.json': JSON.stringify(cfg, null, 2) + '\n' };
}

export interface InstructOrderState extends OrderState {
  /** Hash of the training set's token ids (a resumed run must see the same data). */
  digest: string;
  examples: number;
}

/** The epoch order of a training set, with checks that a checkpoint belongs to the same data. */
export class InstructOrder {
  readonly order: EpochOrder;
  constructor(readonly examples: number, readonly digest: string, shuffle: boolean, seed: number) {
    this.order = new EpochOrder(examples, shuffle, seed);
  }

  take(k: number): number[] { return this.order.take(k); }

  getState(): InstructOrderState { return { ...this.order.getState(), digest: this.digest, examples: this.examples }; }

  setState(s: unknown): void {
    const o = s as Partial<InstructOrderState> | null;
    if (!o || typeof o.digest !== 'string' || typeof o.epoch !== 'number' || typeof o.pos !== 'number') {
      throw new OpenELMError('checkpoint', 'the checkpoint holds no instruction-tuning data position (was it written by a pretraining run?)');
    }
    if (o.digest !== this.digest) {
      throw new OpenELMError('checkpoint', `the training data changed since the checkpoint was written (${o.examples} examples then, ${this.examples} now, different tokens); resuming needs the same data`);
    }
    this.order.setState({ epoch: o.epoch, pos: o.pos });
  }
}
