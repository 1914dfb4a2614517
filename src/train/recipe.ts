// The recipe file (YAML or JSON) that fully determines a training run. Parsing checks every key and
// type and reports the first problem as one line naming the key path
// (e.g. "recipe.optimizer.betas[1] must be a number"). Defaults come from CoreNet's values for the
// preset size (src/train/presets.ts). Relative input paths (data, model.init) are resolved against
// the recipe's folder, so a recipe and the data beside it work from anywhere (also from an installed
// package); a relative out_dir is resolved against the current folder, so a run's output lands where
// it is started and never inside the folder the recipe ships in.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { OpenELMError } from '../core/errors.js';
import { parseJsonText } from '../io/json.js';
import { presetHFConfig } from '../model/config.js';
import { defaultDataDir } from '../eval/data-dir.js';
import { resolveTask } from '../eval/tasks/index.js';
import { DATA_FORMATS, formatFromExtension, type DataFormat } from './data/files.js';
import { corenetDefaults, genericDefaults, presetSize } from './presets.js';
import { MATMUL_PRECISIONS, type MatmulPrecision } from '../backends/backend.js';
import { ADAPTER_TARGETS, type AdapterTarget } from '../adapters/targets.js';

/** Storage of the frozen base weights during adapter training. */
export const PEFT_BASE_DTYPES = ['f32', 'bf16', 'q8', 'q4'] as const;

/**
 * The recipe's `peft:` block: train an adapter on a frozen base instead of the whole model.
 * Without `init`, unset keys take the defaults below (PEFT's r and alpha, Apple's targets); with
 * `init` (an existing PEFT adapter folder to continue from) unset keys come from that adapter, and
 * keys that are set must agree with it (checked when the run starts).
 */
export interface RecipePeft {
  type?: 'lora' | 'dora';
  r?: number;
  alpha?: number;
  dropout?: number;
  targets?: AdapterTarget[];
  rslora?: boolean;
  /** Absolute path of the PEFT adapter folder to start from. */
  init?: string;
  baseDtype: (typeof PEFT_BASE_DTYPES)[number];
}

export const PEFT_DEFAULTS = { type: 'lora', r: 8, alpha: 8, dropout: 0, targets: [...ADAPTER_TARGETS], rslora: false } as const;

export interface RecipeSource {
  name: string;
  /** As written (relative to the recipe) — used to compare recipes on resume. */
  paths: string[];
  /** Absolute (relative ones resolved against the recipe's folder). */
  absPaths: string[];
  format: DataFormat;
  textKey?: string;
  weight: number;
}

/** `eval_tasks`: benchmarks scored during training (src/train/inloop-eval.ts). */
export interface RecipeEvalTasks {
  tasks: { name: string; numFewshot?: number }[];
  /** As `openelm eval --limit`: the first N documents per task, or a fraction (< 1). */
  limit?: number;
  every: number;
  numFewshot: number;
  batchSize: number;
  /** Absolute. */
  dataDir: string;
}

export type RecipeTask = 'pretrain' | 'sft' | 'dpo';
export type DpoLossType = 'sigmoid' | 'hinge' | 'ipo';

export interface DpoSettings {
  beta: number;
  lossType: DpoLossType;
  labelSmoothing: number;
  /** A frozen reference model: an absolute folder, or a hub id as isHubModelId tells; undefined: the run's initial weights. */
  reference?: string;
}

export interface Recipe {
  file: string;
  /** pretrain: text/token streams (seq_len); sft and dpo: JSONL examples (max_length). */
  task: RecipeTask;
  /** init: an absolute folder, or a hub id (org/name, see isHubModelId) that names no local folder, downloaded at run time. */
  model: { init?: string; preset?: string; config?: Record<string, unknown> };
  /** The HF config.json the model is built from (preset / custom), or undefined for `init`. */
  hfConfig?: Record<string, unknown>;
  seed: number;
  data: { train: RecipeSource[]; valid: RecipeSource[]; validFraction: number; evalBatches: number };
  /** pretrain: seq_len. sft/dpo: max_length − 1 (the most inputs one example row can hold). */
  seqLen: number;
  /** sft/dpo: the longest example row in tokens (TRL's max_length). */
  maxLength?: number;
  /** dpo: TRL's max_prompt_length. */
  maxPromptLength?: number;
  /** sft: train on the completion (or assistant turns) only. */
  maskPrompt: boolean;
  /** sft/dpo chat template file (Jinja or tokenizer_config.json); undefined: the model's, else CoreNet's. */
  chatTemplate?: string;
  dpo?: DpoSettings;
  batchSize: number;
  gradAccum: number;
  /** Optimizer steps; 0 until resolveRunLength when the recipe gives `epochs`. */
  steps: number;
  /** sft/dpo: passes over the training examples, instead of `steps`. */
  epochs?: number;
  pipeline: { mode: 'pack' | 'pad'; shuffle: boolean; seed: number; minChars: number; minTokens: number; splitWords: number; shuffleBuffer: number };
  optimizer: { lr: number; betas: [number, number]; eps: number; weightDecay: number };
  schedule: { type: ScheduleType; warmupSteps: number; warmupInitLr: number; minLr: number; warmupRatio?: number };
  clipGradNorm: number;
  zLoss: number;
  /** Absolute (a relative out_dir is resolved against the current folder). */
  outDir: string;
  logEvery: number;
  evalEvery: number;
  checkpointEvery: number;
  /** eval_every / checkpoint_every as written, kept until the run length is known (epochs need the example count). */
  intervalKeys?: IntervalKeys;
  keepCheckpoints: number;
  recompute: boolean;
  /** Inputs of the matrix products: 'fp32' (default) or 'bf16' (mixed precision, docs/training.md). */
  precision: MatmulPrecision;
  threads?: number;
  /** Compute backend by name ('auto', 'wasm', 'js', 'webgpu', …); the command line may override it. */
  backend?: string;
  sample?: { prompt: string; maxTokens: number; temperature: number; topK: number; seed: number };
  evalTasks?: RecipeEvalTasks;
  /** Adapter training (LoRA / DoRA) on a frozen base; absent for full training. */
  peft?: RecipePeft;
  /** The recipe with every default filled in (snake_case, paths as written): saved with checkpoints. */
  canonical: Record<string, unknown>;
}

export type ScheduleType = 'cosine' | 'constant' | 'hf_cosine';

// ------------------------------------------------------------------------------------ schema

type Schema =
  | { t: 'number'; min?: number; max?: number; gt?: number; lt?: number }
  | { t: 'int'; min?: number; max?: number }
  | { t: 'string'; nonEmpty?: boolean }
  | { t: 'bool' }
  | { t: 'enum'; values: readonly string[] }
  | { t: 'object'; keys: Record<string, Schema>; open?: boolean }
  | { t: 'array'; of: Schema; len?: number; minLen?: number }
  | { t: 'strings' } // a string or a list of strings
  | { t: 'any-object' };

const num = (o: Omit<Extract<Schema, { t: 'number' }>, 't'> = {}): Schema => ({ t: 'number', ...o });
const int = (o: Omit<Extract<Schema, { t: 'int' }>, 't'> = {}): Schema => ({ t: 'int', ...o });
const str: Schema = { t: 'string', nonEmpty: true };
const bool: Schema = { t: 'bool' };
const obj = (keys: Record<string, Schema>): Schema => ({ t: 'object', keys });

const SOURCE: Schema = obj({
  path: { t: 'strings' },
  format: { t: 'enum', values: DATA_FORMATS },
  text_key: str,
  weight: num({ gt: 0 }),
  name: str,
});

const SCHEMA: Schema = obj({
  task: { t: 'enum', values: ['pretrain', 'sft', 'dpo'] },
  model: obj({ init: str, preset: str, config: { t: 'any-object' } }),
  defaults: str,
  seed: int({ min: 0 }),
  data: obj({
    train: { t: 'array', of: SOURCE, minLen: 1 },
    valid: { t: 'array', of: SOURCE },
    valid_fraction: num({ min: 0, lt: 1 }),
    eval_batches: int({ min: 1 }),
  }),
  seq_len: int({ min: 1 }),
  max_length: int({ min: 2 }),
  max_prompt_length: int({ min: 1 }),
  mask_prompt: bool,
  chat_template: str,
  dpo: obj({
    beta: num({ gt: 0 }),
    loss_type: { t: 'enum', values: ['sigmoid', 'hinge', 'ipo'] },
    label_smoothing: num({ min: 0, max: 0.5 }),
    reference: str,
  }),
  batch_size: int({ min: 1 }),
  grad_accum: int({ min: 1 }),
  steps: int({ min: 1 }),
  epochs: num({ gt: 0 }),
  pipeline: obj({
    mode: { t: 'enum', values: ['pack', 'pad'] },
    shuffle: bool,
    seed: int({ min: 0 }),
    min_chars: int({ min: 0 }),
    min_tokens: int({ min: 0 }),
    split_words: int({ min: 1 }),
    shuffle_buffer: int({ min: 0 }),
  }),
  optimizer: obj({
    lr: num({ min: 0 }),
    betas: { t: 'array', of: num({ min: 0, lt: 1 }), len: 2 },
    eps: num({ min: 0 }),
    weight_decay: num({ min: 0 }),
  }),
  schedule: obj({
    type: { t: 'enum', values: ['cosine', 'constant', 'hf_cosine'] },
    warmup_steps: int({ min: 0 }),
    warmup_ratio: num({ min: 0, max: 1 }),
    warmup_init_lr: num({ min: 0 }),
    min_lr: num({ min: 0 }),
  }),
  clip_grad_norm: num({ min: 0 }),
  z_loss: num({ min: 0 }),
  out_dir: str,
  log_every: int({ min: 1 }),
  eval_every: int({ min: 0 }),
  checkpoint_every: int({ min: 1 }),
  keep_checkpoints: int({ min: 1 }),
  recompute: bool,
  precision: { t: 'enum', values: MATMUL_PRECISIONS },
  threads: int({ min: 1 }),
  backend: { t: 'string', nonEmpty: true },
  sample: obj({ prompt: { t: 'string' }, max_tokens: int({ min: 1 }), temperature: num({ min: 0 }), top_k: int({ min: 0 }), seed: int({ min: 0 }) }),
  eval_tasks: obj({
    tasks: { t: 'array', of: str, minLen: 1 },
    limit: num({ gt: 0 }),
    every: int({ min: 1 }),
    num_fewshot: int({ min: 0 }),
    batch_size: int({ min: 1 }),
    data_dir: str,
  }),
  peft: obj({
    type: { t: 'enum', values: ['lora', 'dora'] },
    r: int({ min: 1 }),
    alpha: num({ gt: 0 }),
    dropout: num({ min: 0, lt: 1 }),
    targets: { t: 'array', of: { t: 'enum', values: ADAPTER_TARGETS }, minLen: 1 },
    rslora: bool,
    init: str,
    base_dtype: { t: 'enum', values: PEFT_BASE_DTYPES },
  }),
});

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  return String(v);
}

function check(v: unknown, s: Schema, at: string): void {
  const bad = (what: string): never => { throw new OpenELMError('recipe', `${at} ${what}, got ${typeName(v)}`); };
  switch (s.t) {
    case 'number':
    case 'int': {
      if (typeof v !== 'number' || !Number.isFinite(v)) bad(s.t === 'int' ? 'must be an integer' : 'must be a number');
      const n = v as number;
      if (s.t === 'int' && !Number.isInteger(n)) bad('must be an integer');
      if (s.min !== undefined && n < s.min) bad(`must be >= ${s.min}`);
      if (s.max !== undefined && n > s.max) bad(`must be <= ${s.max}`);
      if (s.t === 'number' && s.gt !== undefined && !(n > s.gt)) bad(`must be > ${s.gt}`);
      if (s.t === 'number' && s.lt !== undefined && !(n < s.lt)) bad(`must be < ${s.lt}`);
      return;
    }
    case 'string':
      if (typeof v !== 'string') bad('must be a string');
      if (s.nonEmpty && (v as string).trim() === '') bad('must not be empty');
      return;
    case 'bool':
      if (typeof v !== 'boolean') bad('must be true or false');
      return;
    case 'enum':
      if (typeof v !== 'string' || !s.values.includes(v)) bad(`must be one of ${s.values.join(', ')}`);
      return;
    case 'strings':
      if (typeof v === 'string') { if (!v.trim()) bad('must not be empty'); return; }
      if (!Array.isArray(v) || v.length === 0) bad('must be a path or a list of paths');
      (v as unknown[]).forEach((x, i) => { check(x, str, `${at}[${i}]`); });
      return;
    case 'any-object':
      if (v === null || typeof v !== 'object' || Array.isArray(v)) bad('must be a mapping');
      return;
    case 'array':
      if (!Array.isArray(v)) bad('must be a list');
      if (s.len !== undefined && (v as unknown[]).length !== s.len) bad(`must be a list of ${s.len} values`);
      if (s.minLen !== undefined && (v as unknown[]).length < s.minLen) bad(`must have at least ${s.minLen} entr${s.minLen === 1 ? 'y' : 'ies'}`);
      (v as unknown[]).forEach((x, i) => { check(x, s.of, `${at}[${i}]`); });
      return;
    case 'object': {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) bad('must be a mapping');
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        const sub = s.keys[k];
        if (!sub) throw new OpenELMError('recipe', `unknown key ${at}.${k} (allowed: ${Object.keys(s.keys).join(', ')})`);
        if (x === null || x === undefined) throw new OpenELMError('recipe', `${at}.${k} has no value`);
        check(x, sub, `${at}.${k}`);
      }
      return;
    }
  }
}

// ------------------------------------------------------------------------------------ parsing

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Deep merge: `over` wins; lists are replaced, not merged. */
function merge(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObj(v) && isObj(out[k]) ? merge(out[k] as Obj, v) : v;
  return out;
}

export function readRecipeText(file: string): unknown {
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new OpenELMError('recipe', err.code === 'ENOENT' ? `recipe file ${file} does not exist` : `cannot read recipe ${file}: ${err.message}`);
  }
  if (/\.json$/i.test(file)) return parseJsonText(text, `recipe ${file}`);
  try {
    return parseYaml(text);
  } catch (e) {
    throw new OpenELMError('recipe', `recipe ${file} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
}

/** The one data format of the files in a folder, if the folder exists and they agree. */
function formatOfFolder(dir: string): DataFormat | undefined {
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return undefined; }
  const found = new Set(names.map(formatFromExtension).filter((f): f is DataFormat => f !== undefined));
  return found.size === 1 ? [...found][0] : undefined;
}

/**
 * `model.init` is a folder (relative to the recipe) or, when no such folder exists, a hub id
 * (`org/name`, downloaded when training starts). Hub ids are kept as written; folders become absolute.
 */
function initLocation(init: string, rel: (p: string) => string): string {
  return /^[\w.-]+\/[\w.-]+$/.test(init) && !init.startsWith('.') && !fs.existsSync(rel(init)) ? init : rel(init);
}

/** True for a `model.init` that names a hub model rather than a folder. */
export function isHubModelId(init: string): boolean {
  return !path.isAbsolute(init);
}

/**
 * A recipe file with `key.path=value` overrides applied (`openelm train --set seed=1`). Values are
 * read as YAML and behave as if written in the recipe (relative paths are against its folder).
 */
export function loadRecipe(file: string, overrides: readonly string[] = []): Recipe {
  return parseRecipe(applyOverrides(readRecipeText(file), overrides), file);
}

export function applyOverrides(raw: unknown, overrides: readonly string[]): unknown {
  if (!overrides.length) return raw;
  const out = isObj(raw) ? structuredClone(raw) : raw;
  for (const o of overrides) {
    const eq = o.indexOf('=');
    const key = eq > 0 ? o.slice(0, eq).trim() : '';
    if (!key || key.split('.').some((p) => !/^[A-Za-z0-9_]+$/.test(p))) {
      throw new OpenELMError('usage', `--set "${o}": expected key=value, e.g. seed=1 or optimizer.lr=0.003`);
    }
    if (!isObj(out)) return out;
    let value: unknown;
    try { value = parseYaml(o.slice(eq + 1)); } catch (e) {
      throw new OpenELMError('usage', `--set ${key}: the value is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
    }
    const parts = key.split('.');
    let at: Obj = out;
    for (let i = 0; i < parts.length - 1; i++) {
      const p = parts[i];
      if (at[p] === undefined) at[p] = {};
      if (!isObj(at[p])) throw new OpenELMError('usage', `--set ${key}: recipe.${parts.slice(0, i + 1).join('.')} is not a mapping`);
      at = at[p] as Obj;
    }
    at[parts[parts.length - 1]] = value;
  }
  return out;
}

/** Validate a parsed recipe object; `file` locates relative paths and names the recipe in errors. */
export function parseRecipe(raw: unknown, file: string): Recipe {
  try {
    return parseRecipeInner(raw, file);
  } catch (e) {
    if (e instanceof OpenELMError && e.code === 'recipe') throw new OpenELMError('recipe', `${file}: ${e.message}`);
    throw e;
  }
}

const INSTRUCT_ONLY = ['max_length', 'mask_prompt', 'chat_template', 'epochs'];
const DPO_ONLY = ['dpo', 'max_prompt_length'];
const PRETRAIN_PIPELINE = ['mode', 'min_chars', 'min_tokens', 'split_words', 'shuffle_buffer'];

/** Keys that only make sense for some tasks: one error naming the key and the task it belongs to. */
function checkTaskKeys(raw: Obj, task: RecipeTask): void {
  const bad = (key: string, why: string): never => { throw new OpenELMError('recipe', `recipe.${key} ${why}`); };
  if (task === 'pretrain') {
    for (const k of DPO_ONLY) if (raw[k] !== undefined) bad(k, 'applies to task dpo (this recipe pretrains; set task: dpo)');
    for (const k of INSTRUCT_ONLY) if (raw[k] !== undefined) bad(k, 'applies to tasks sft and dpo (this recipe pretrains; set task: sft or dpo)');
    return;
  }
  if (raw.seq_len !== undefined) bad('seq_len', `applies to pretraining; task ${task} limits examples with max_length`);
  if (raw.defaults !== undefined) bad('defaults', `(CoreNet's pretraining hyper-parameters) applies to task pretrain, not ${task}`);
  const pipe = raw.pipeline as Obj | undefined;
  for (const k of PRETRAIN_PIPELINE) if (pipe?.[k] !== undefined) bad(`pipeline.${k}`, `applies to pretraining; task ${task} reads one example per JSONL line`);
  if (task === 'sft') for (const k of DPO_ONLY) if (raw[k] !== undefined) bad(k, 'applies to task dpo, not sft');
  if (task === 'dpo') {
    if (raw.mask_prompt !== undefined) bad('mask_prompt', 'applies to task sft (DPO always scores the completions only)');
    if (raw.z_loss !== undefined && raw.z_loss !== 0) bad('z_loss', 'applies to tasks pretrain and sft, not dpo');
  }
  if (raw.steps !== undefined && raw.epochs !== undefined) bad('epochs', 'and recipe.steps exclude each other (give one)');
  if (raw.steps === undefined && raw.epochs === undefined) bad('steps', `or recipe.epochs is required for task ${task}`);
}

function checkScheduleKeys(sch: Obj | undefined): void {
  if (!sch) return;
  if (sch.warmup_steps !== undefined && sch.warmup_ratio !== undefined) {
    throw new OpenELMError('recipe', 'recipe.schedule.warmup_steps and recipe.schedule.warmup_ratio exclude each other (give one)');
  }
  if (sch.type === 'hf_cosine') {
    for (const k of ['warmup_init_lr', 'min_lr']) {
      if (sch[k] !== undefined) throw new OpenELMError('recipe', `recipe.schedule.${k} does not apply to type hf_cosine (it warms up from 0 and decays to 0)`);
    }
  }
}

/** HF TrainingArguments' defaults (AdamW betas 0.9/0.999, no weight decay, max_grad_norm 1), the base of sft and dpo recipes. */
function instructDefaults(): Record<string, unknown> {
  return {
    grad_accum: 1,
    pipeline: { shuffle: true },
    optimizer: { betas: [0.9, 0.999], eps: 1e-8, weight_decay: 0 },
    schedule: { type: 'hf_cosine' },
    clip_grad_norm: 1.0,
    z_loss: 0,
    recompute: false,
    log_every: 10,
  };
}

function parseRecipeInner(raw: unknown, file: string): Recipe {
  if (!isObj(raw)) throw new OpenELMError('recipe', `the recipe must be a mapping of keys (got ${typeName(raw)})`);
  check(raw, SCHEMA, 'recipe');
  const dir = path.dirname(path.resolve(file));
  const rel = (p: string) => path.resolve(dir, p);
  const task = (raw.task as RecipeTask | undefined) ?? 'pretrain';
  const instruct = task !== 'pretrain';
  checkTaskKeys(raw, task);
  checkScheduleKeys(raw.schedule as Obj | undefined);

  // model
  const model = raw.model as Obj | undefined;
  if (!model) throw new OpenELMError('recipe', 'recipe.model is required ({init: HF-DIR}, {preset: OpenELM-270M} or {config: {...}})');
  const kinds = ['init', 'preset', 'config'].filter((k) => model[k] !== undefined);
  if (kinds.length !== 1) throw new OpenELMError('recipe', `recipe.model needs exactly one of init, preset, config (got ${kinds.length ? kinds.join(' and ') : 'none'})`);
  let hfConfig: Obj | undefined;
  let size = raw.defaults !== undefined ? presetSize(raw.defaults as string) : undefined;
  if (raw.defaults !== undefined && !size) throw new OpenELMError('recipe', `recipe.defaults "${raw.defaults}" is not an OpenELM size (270M, 450M, 1_1B, 3B)`);
  if (model.preset !== undefined) {
    try { hfConfig = presetHFConfig(model.preset as string) as unknown as Obj; } catch (e) {
      throw new OpenELMError('recipe', `recipe.model.preset: ${(e as Error).message}`);
    }
    size ??= presetSize(model.preset as string);
  } else if (model.config !== undefined) {
    hfConfig = model.config as Obj;
  }

  const defaults = instruct ? instructDefaults() : size ? corenetDefaults(size) : genericDefaults();
  const r = merge(defaults, raw);
  const need = (key: string, v: unknown) => {
    if (v === undefined) throw new OpenELMError('recipe', `${key} is required (no preset model or \`defaults\` supplies it)`);
  };
  const opt = (r.optimizer ?? {}) as Obj, sch = (r.schedule ?? {}) as Obj, pipe = (r.pipeline ?? {}) as Obj;
  if (!instruct) { need('recipe.steps', r.steps); need('recipe.seq_len', r.seq_len); }
  if (instruct && r.batch_size === undefined) throw new OpenELMError('recipe', `recipe.batch_size is required for task ${task} (examples per micro-batch)`);
  need('recipe.batch_size', r.batch_size);
  if (instruct && opt.lr === undefined) throw new OpenELMError('recipe', `recipe.optimizer.lr is required for task ${task}`);
  need('recipe.optimizer.lr', opt.lr);
  const data = r.data as Obj | undefined;
  if (!data || data.train === undefined) throw new OpenELMError('recipe', `recipe.data.train is required (a list of {path, format})${task === 'dpo' ? ': the preference pairs' : ''}`);

  const seed = (r.seed as number | undefined) ?? 0;
  const steps = (r.steps as number | undefined) ?? 0, epochs = r.epochs as number | undefined;
  const lr = opt.lr as number;
  const maxLength = instruct ? ((r.max_length as number | undefined) ?? 1024) : undefined;
  const maxPromptLength = task === 'dpo' ? ((r.max_prompt_length as number | undefined) ?? 512) : undefined;
  if (maxLength !== undefined && maxPromptLength !== undefined && maxPromptLength >= maxLength) {
    throw new OpenELMError('recipe', `recipe.max_prompt_length (${maxPromptLength}) must be smaller than recipe.max_length (${maxLength}): completions are cut to max_length − max_prompt_length tokens`);
  }
  const seqLen = instruct ? maxLength! - 1 : (r.seq_len as number);

  const sources = (list: unknown[] | undefined, key: string): RecipeSource[] => (list ?? []).map((x, i) => {
    const s = x as Obj, at = `recipe.data.${key}[${i}]`;
    if (s.path === undefined) throw new OpenELMError('recipe', `${at}.path is required`);
    const paths = typeof s.path === 'string' ? [s.path] : (s.path as string[]);
    let format = s.format as DataFormat | undefined;
    if (instruct) {
      if (format !== undefined && format !== 'jsonl') throw new OpenELMError('recipe', `${at}.format must be jsonl for task ${task} (one example per line), got "${format}"`);
      if (s.text_key !== undefined) throw new OpenELMError('recipe', `${at}.text_key applies to pretraining; task ${task} reads ${task === 'dpo' ? 'prompt/chosen/rejected' : 'prompt/completion, messages or text'}`);
      if (s.weight !== undefined && s.weight !== 1) throw new OpenELMError('recipe', `${at}.weight applies to pretraining mixtures; task ${task} uses every example of every source once per epoch`);
      format = 'jsonl';
    }
    if (!format) {
      format = formatFromExtension(paths[0]) ?? formatOfFolder(rel(paths[0]));
      if (!format) throw new OpenELMError('recipe', `${at}.format is required: cannot tell the format of ${paths[0]} from its extension (use ${DATA_FORMATS.join(', ')})`);
    }
    if (s.text_key !== undefined && (format === 'text' || format === 'tokens' || format === 'llm-adapters')) throw new OpenELMError('recipe', `${at}.text_key only applies to jsonl and parquet sources`);
    return {
      name: (s.name as string | undefined) ?? path.basename(paths[0]),
      paths, absPaths: paths.map(rel), format,
      textKey: instruct ? undefined : (s.text_key as string | undefined) ?? (format === 'jsonl' ? 'text' : undefined),
      weight: (s.weight as number | undefined) ?? 1,
    };
  });
  const train = sources(data.train as unknown[], 'train');
  const valid = sources(data.valid as unknown[] | undefined, 'valid');
  const validFraction = (data.valid_fraction as number | undefined) ?? 0;
  if (valid.length && validFraction > 0) throw new OpenELMError('recipe', 'recipe.data.valid and recipe.data.valid_fraction exclude each other');
  const hasValid = valid.length > 0 || validFraction > 0;

  const type = (sch.type as ScheduleType | undefined) ?? 'cosine';
  const warmupRatio = sch.warmup_ratio as number | undefined;
  const evalEveryRaw = r.eval_every as number | undefined;
  if (evalEveryRaw !== undefined && evalEveryRaw > 0 && !hasValid) throw new OpenELMError('recipe', 'recipe.eval_every needs validation data (recipe.data.valid or recipe.data.valid_fraction)');
  const mode = (pipe.mode as 'pack' | 'pad' | undefined) ?? 'pad';
  const shuffle = (pipe.shuffle as boolean | undefined) ?? true;

  const outDir = (r.out_dir as string | undefined) ?? path.join('runs', path.basename(file).replace(/\.(ya?ml|json)$/i, ''));
  const smp = r.sample as Obj | undefined;
  if (smp && smp.prompt === undefined) throw new OpenELMError('recipe', 'recipe.sample.prompt is required');
  const d = r.dpo as Obj | undefined;
  const lossType = (d?.loss_type as DpoLossType | undefined) ?? 'sigmoid';
  if (d?.label_smoothing !== undefined && lossType !== 'sigmoid' && d.label_smoothing !== 0) {
    throw new OpenELMError('recipe', `recipe.dpo.label_smoothing applies to loss_type sigmoid (TRL ignores it for ${lossType})`);
  }
  const evalTasks = r.eval_tasks !== undefined ? parseEvalTasks(r.eval_tasks as Obj, rel) : undefined;
  // In-loop evaluation reads the trained weights in place; an adapter run has no such weights.
  if (evalTasks && raw.peft !== undefined) {
    throw new OpenELMError('recipe', 'recipe.eval_tasks does not work with recipe.peft; score the adapter checkpoints with openelm eval --model BASE --adapter out_dir/step-N');
  }

  const peftRaw = raw.peft as Obj | undefined;
  let peft: RecipePeft | undefined;
  if (peftRaw) {
    const targets = peftRaw.targets as AdapterTarget[] | undefined;
    const dup = targets?.find((t, i) => targets.indexOf(t) !== i);
    if (dup) throw new OpenELMError('recipe', `recipe.peft.targets lists ${dup} twice`);
    const init = peftRaw.init !== undefined ? rel(peftRaw.init as string) : undefined;
    const pick = <K extends keyof typeof PEFT_DEFAULTS>(k: K, v: unknown) => (v !== undefined ? v : init ? undefined : PEFT_DEFAULTS[k]);
    peft = {
      type: pick('type', peftRaw.type) as RecipePeft['type'],
      r: pick('r', peftRaw.r) as number | undefined,
      alpha: pick('alpha', peftRaw.alpha) as number | undefined,
      dropout: pick('dropout', peftRaw.dropout) as number | undefined,
      targets: (targets ?? (init ? undefined : [...PEFT_DEFAULTS.targets])) as AdapterTarget[] | undefined,
      rslora: pick('rslora', peftRaw.rslora) as boolean | undefined,
      init,
      baseDtype: (peftRaw.base_dtype as RecipePeft['baseDtype'] | undefined) ?? 'f32',
    };
  }

  const recipe: Recipe = {
    file,
    task,
    model: { init: model.init !== undefined ? initLocation(model.init as string, rel) : undefined, preset: model.preset as string | undefined, config: model.config as Obj | undefined },
    hfConfig,
    seed,
    data: { train, valid, validFraction, evalBatches: (data.eval_batches as number | undefined) ?? 4 },
    seqLen, maxLength, maxPromptLength,
    maskPrompt: task === 'sft' ? ((r.mask_prompt as boolean | undefined) ?? true) : task === 'dpo',
    chatTemplate: r.chat_template !== undefined ? rel(r.chat_template as string) : undefined,
    dpo: task === 'dpo' ? {
      beta: (d?.beta as number | undefined) ?? 0.1, lossType,
      labelSmoothing: (d?.label_smoothing as number | undefined) ?? 0,
      reference: d?.reference !== undefined ? initLocation(d.reference as string, rel) : undefined,
    } : undefined,
    batchSize: r.batch_size as number, gradAccum: (r.grad_accum as number | undefined) ?? 1, steps, epochs,
    pipeline: {
      mode, shuffle, seed: (pipe.seed as number | undefined) ?? seed,
      minChars: (pipe.min_chars as number | undefined) ?? 200, minTokens: (pipe.min_tokens as number | undefined) ?? 256,
      splitWords: (pipe.split_words as number | undefined) ?? 2048,
      shuffleBuffer: shuffle && !instruct ? ((pipe.shuffle_buffer as number | undefined) ?? 1024) : 0,
    },
    optimizer: {
      lr, betas: ((opt.betas as number[] | undefined) ?? [0.9, 0.95]) as [number, number],
      eps: (opt.eps as number | undefined) ?? 1e-8, weightDecay: (opt.weight_decay as number | undefined) ?? 0.1,
    },
    schedule: {
      type, warmupSteps: (sch.warmup_steps as number | undefined) ?? 0,
      warmupInitLr: type === 'hf_cosine' ? 0 : (sch.warmup_init_lr as number | undefined) ?? 1e-6,
      minLr: type === 'hf_cosine' ? 0 : (sch.min_lr as number | undefined) ?? lr / 10,
      ...(warmupRatio !== undefined ? { warmupRatio } : {}),
    },
    clipGradNorm: (r.clip_grad_norm as number | undefined) ?? 1.0,
    zLoss: (r.z_loss as number | undefined) ?? 0,
    outDir: path.resolve(outDir),
    logEvery: (r.log_every as number | undefined) ?? 10,
    evalEvery: 0,
    checkpointEvery: 0,
    keepCheckpoints: (r.keep_checkpoints as number | undefined) ?? 2,
    recompute: (r.recompute as boolean | undefined) ?? false,
    precision: (r.precision as MatmulPrecision | undefined) ?? 'fp32',
    threads: r.threads as number | undefined,
    backend: r.backend as string | undefined,
    sample: smp ? {
      prompt: smp.prompt as string, maxTokens: (smp.max_tokens as number | undefined) ?? 64,
      temperature: (smp.temperature as number | undefined) ?? 0.8, topK: (smp.top_k as number | undefined) ?? 40,
      seed: (smp.seed as number | undefined) ?? seed,
    } : undefined,
    evalTasks,
    peft,
    canonical: {},
  };
  if (recipe.schedule.type === 'cosine' && recipe.schedule.minLr > lr) {
    throw new OpenELMError('recipe', `recipe.schedule.min_lr (${recipe.schedule.minLr}) is larger than recipe.optimizer.lr (${lr})`);
  }
  recipe.intervalKeys = {
    checkpointEvery: r.checkpoint_every as number | undefined, evalEvery: evalEveryRaw,
    evalTasksEvery: (r.eval_tasks as Obj | undefined)?.every as number | undefined, hasValid,
  };
  if (epochs === undefined) return withSteps(recipe, steps);
  recipe.canonical = canonicalRecipe(recipe);
  return recipe;
}

/** `every` is filled in with the run length (withSteps): its default follows the eval/checkpoint intervals. */
function parseEvalTasks(e: Obj, rel: (p: string) => string): RecipeEvalTasks {
  if (e.tasks === undefined) throw new OpenELMError('recipe', 'recipe.eval_tasks.tasks is required (a list of task names, e.g. [arc_easy, piqa])');
  const tasks = (e.tasks as string[]).map((t, i) => {
    const at = `recipe.eval_tasks.tasks[${i}]`;
    const m = /^([A-Za-z0-9_]+)(?::(\d+))?$/.exec(t.trim());
    if (!m) throw new OpenELMError('recipe', `${at}: cannot read "${t}" (expected a task name, or name:shots)`);
    try { resolveTask(m[1]); } catch (err) {
      throw new OpenELMError('recipe', `${at}: ${(err as Error).message}`);
    }
    return { name: m[1], numFewshot: m[2] === undefined ? undefined : Number(m[2]) };
  });
  return {
    tasks,
    limit: e.limit as number | undefined,
    every: (e.every as number | undefined) ?? 0,
    numFewshot: (e.num_fewshot as number | undefined) ?? 0,
    batchSize: (e.batch_size as number | undefined) ?? 8,
    dataDir: e.data_dir !== undefined ? rel(e.data_dir as string) : defaultDataDir(),
  };
}

export interface IntervalKeys { checkpointEvery?: number; evalEvery?: number; evalTasksEvery?: number; hasValid: boolean }

/** The recipe with its run length fixed: warm-up from warmup_ratio, default checkpoint/eval intervals. */
function withSteps(r: Recipe, steps: number): Recipe {
  const iv = r.intervalKeys ?? { hasValid: r.evalEvery > 0, checkpointEvery: r.checkpointEvery || undefined, evalEvery: r.evalEvery, evalTasksEvery: r.evalTasks?.every || undefined };
  const warmupSteps = r.schedule.warmupRatio !== undefined ? Math.ceil(r.schedule.warmupRatio * steps) : r.schedule.warmupSteps;
  if (r.schedule.type !== 'constant' && warmupSteps > steps) {
    throw new OpenELMError('recipe', `${r.schedule.warmupRatio !== undefined ? 'the warm-up' : 'recipe.schedule.warmup_steps'} (${warmupSteps}) is larger than recipe.steps (${steps})`);
  }
  const checkpointEvery = iv.checkpointEvery ?? Math.max(1, Math.min(steps, 1000));
  const evalEvery = iv.evalEvery ?? (iv.hasValid ? checkpointEvery : 0);
  const out: Recipe = {
    ...r, steps, schedule: { ...r.schedule, warmupSteps }, checkpointEvery, evalEvery,
    evalTasks: r.evalTasks ? { ...r.evalTasks, every: iv.evalTasksEvery ?? (evalEvery || checkpointEvery) } : undefined,
  };
  out.canonical = canonicalRecipe(out);
  // The model and reference as written: a run resolves hub ids and run folders before it knows its length.
  if (r.canonical.model !== undefined) out.canonical.model = r.canonical.model;
  const was = r.canonical.dpo, now = out.canonical.dpo;
  if (isObj(was) && isObj(now)) now.reference = was.reference;
  return out;
}

/**
 * sft/dpo recipes that give `epochs`: the number of optimizer steps once the training examples
 * are counted, ceil(epochs · examples / (batch_size · grad_accum)) (batches run on across epoch
 * boundaries), with the warm-up and intervals that depend on it. Other recipes come back as they are.
 */
export function resolveRunLength(r: Recipe, trainExamples: number): Recipe {
  if (r.epochs === undefined) return r;
  if (trainExamples <= 0) throw new OpenELMError('data', 'the training data has no usable examples');
  const steps = Math.max(1, Math.ceil((r.epochs * trainExamples) / (r.batchSize * r.gradAccum)));
  return withSteps(r, steps);
}

/** Every setting that influences the numbers a run produces, snake_case, paths as written. */
function canonicalRecipe(r: Recipe): Record<string, unknown> {
  const src = (s: RecipeSource) => ({ name: s.name, path: s.paths, format: s.format, text_key: s.textKey ?? null, weight: s.weight });
  const here = path.dirname(path.resolve(r.file));
  const where = (p: string) => (isHubModelId(p) ? p : path.relative(here, p));
  const instruct = r.task !== 'pretrain';
  const schedule: Record<string, unknown> = { type: r.schedule.type, warmup_steps: r.schedule.warmupSteps, warmup_init_lr: r.schedule.warmupInitLr, min_lr: r.schedule.minLr };
  if (r.schedule.warmupRatio !== undefined) { delete schedule.warmup_steps; schedule.warmup_ratio = r.schedule.warmupRatio; }
  const p = r.peft;
  // Only present for adapter runs, so checkpoints of full runs compare equal to recipes without it.
  const peft = p ? {
    peft: {
      type: p.type ?? null, r: p.r ?? null, alpha: p.alpha ?? null, dropout: p.dropout ?? null, targets: p.targets ?? null,
      rslora: p.rslora ?? null, init: p.init !== undefined ? path.relative(here, p.init) : null,
      base_dtype: p.baseDtype,
    },
  } : {};
  const out: Record<string, unknown> = {
    model: r.model.init !== undefined ? { init: where(r.model.init) } : r.model.preset !== undefined ? { preset: r.model.preset } : { config: r.model.config },
    seed: r.seed,
    data: { train: r.data.train.map(src), valid: r.data.valid.map(src), valid_fraction: r.data.validFraction, eval_batches: r.data.evalBatches },
    seq_len: r.seqLen, batch_size: r.batchSize, grad_accum: r.gradAccum, steps: r.steps,
    pipeline: { mode: r.pipeline.mode, shuffle: r.pipeline.shuffle, seed: r.pipeline.seed, min_chars: r.pipeline.minChars, min_tokens: r.pipeline.minTokens, split_words: r.pipeline.splitWords, shuffle_buffer: r.pipeline.shuffleBuffer },
    optimizer: { lr: r.optimizer.lr, betas: r.optimizer.betas, eps: r.optimizer.eps, weight_decay: r.optimizer.weightDecay },
    schedule,
    clip_grad_norm: r.clipGradNorm, z_loss: r.zLoss, recompute: r.recompute,
    log_every: r.logEvery, eval_every: r.evalEvery, checkpoint_every: r.checkpointEvery, keep_checkpoints: r.keepCheckpoints,
    threads: r.threads ?? null, backend: r.backend ?? null, sample: r.sample ?? null,
    eval_tasks: r.evalTasks ? {
      tasks: r.evalTasks.tasks.map((t) => (t.numFewshot === undefined ? t.name : `${t.name}:${t.numFewshot}`)),
      limit: r.evalTasks.limit ?? null, every: r.evalTasks.every, num_fewshot: r.evalTasks.numFewshot, batch_size: r.evalTasks.batchSize,
    } : null,
    // only when not the default, so fp32 recipes (and the checkpoints of runs made before the
    // setting existed) compare equal on resume
    ...(r.precision !== 'fp32' ? { precision: r.precision } : {}),
    ...peft,
  };
  if (!instruct) return out;
  // Pretraining recipes keep the form above (their checkpoints compare against it on resume).
  delete out.seq_len;
  out.pipeline = { shuffle: r.pipeline.shuffle, seed: r.pipeline.seed };
  if (r.epochs !== undefined) { delete out.steps; out.epochs = r.epochs; }
  return {
    task: r.task, ...out,
    max_length: r.maxLength,
    ...(r.task === 'dpo' ? { max_prompt_length: r.maxPromptLength } : { mask_prompt: r.maskPrompt }),
    chat_template: r.chatTemplate !== undefined ? path.relative(here, r.chatTemplate) : null,
    ...(r.dpo ? { dpo: { beta: r.dpo.beta, loss_type: r.dpo.lossType, label_smoothing: r.dpo.labelSmoothing, reference: r.dpo.reference !== undefined ? where(r.dpo.reference) : null } } : {}),
  };
}

/** Override the recipe's precision (`openelm train --precision`); resuming compares it like any setting. */
export function setRecipePrecision(r: Recipe, precision: MatmulPrecision): void {
  if (!MATMUL_PRECISIONS.includes(precision)) throw new OpenELMError('usage', `--precision must be one of ${MATMUL_PRECISIONS.join(', ')}, got "${String(precision)}"`);
  r.precision = precision;
  r.canonical = canonicalRecipe(r);
}

/** Keys that may change between a run and its resumption without changing its numbers. */
const RESUMABLE_CHANGES = new Set(['log_every', 'eval_every', 'checkpoint_every', 'keep_checkpoints', 'threads', 'backend', 'sample', 'steps', 'epochs', 'recompute', 'eval_tasks']);

/** Key paths where two canonical recipes differ in a way that would change the run. */
export function recipeDifferences(saved: Record<string, unknown>, now: Record<string, unknown>): string[] {
  const out: string[] = [];
  const walk = (a: unknown, b: unknown, at: string) => {
    if (isObj(a) && isObj(b)) {
      for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) walk(a[k], b[k], at ? `${at}.${k}` : k);
      return;
    }
    if (JSON.stringify(a) !== JSON.stringify(b)) out.push(at);
  };
  for (const k of new Set([...Object.keys(saved), ...Object.keys(now)])) {
    if (RESUMABLE_CHANGES.has(k)) continue;
    walk(saved[k], now[k], k);
  }
  return out.map((p) => `recipe.${p}`);
}
