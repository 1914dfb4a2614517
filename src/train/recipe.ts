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

export interface Recipe {
  file: string;
  model: { init?: string; preset?: string; config?: Record<string, unknown> };
  /** The HF config.json the model is built from (preset / custom), or undefined for `init`. */
  hfConfig?: Record<string, unknown>;
  seed: number;
  data: { train: RecipeSource[]; valid: RecipeSource[]; validFraction: number; evalBatches: number };
  seqLen: number;
  batchSize: number;
  gradAccum: number;
  steps: number;
  pipeline: { mode: 'pack' | 'pad'; shuffle: boolean; seed: number; minChars: number; minTokens: number; splitWords: number; shuffleBuffer: number };
  optimizer: { lr: number; betas: [number, number]; eps: number; weightDecay: number };
  schedule: { type: 'cosine' | 'constant'; warmupSteps: number; warmupInitLr: number; minLr: number };
  clipGradNorm: number;
  zLoss: number;
  /** Absolute (a relative out_dir is resolved against the current folder). */
  outDir: string;
  logEvery: number;
  evalEvery: number;
  checkpointEvery: number;
  keepCheckpoints: number;
  recompute: boolean;
  /** Inputs of the matrix products: 'fp32' (default) or 'bf16' (mixed precision, docs/training.md). */
  precision: MatmulPrecision;
  threads?: number;
  sample?: { prompt: string; maxTokens: number; temperature: number; topK: number; seed: number };
  /** Adapter training (LoRA / DoRA) on a frozen base; absent for full training. */
  peft?: RecipePeft;
  /** The recipe with every default filled in (snake_case, paths as written): saved with checkpoints. */
  canonical: Record<string, unknown>;
}

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
  batch_size: int({ min: 1 }),
  grad_accum: int({ min: 1 }),
  steps: int({ min: 1 }),
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
    type: { t: 'enum', values: ['cosine', 'constant'] },
    warmup_steps: int({ min: 0 }),
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
  sample: obj({ prompt: { t: 'string' }, max_tokens: int({ min: 1 }), temperature: num({ min: 0 }), top_k: int({ min: 0 }), seed: int({ min: 0 }) }),
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
      (v as unknown[]).forEach((x, i) => check(x, str, `${at}[${i}]`));
      return;
    case 'any-object':
      if (v === null || typeof v !== 'object' || Array.isArray(v)) bad('must be a mapping');
      return;
    case 'array':
      if (!Array.isArray(v)) bad('must be a list');
      if (s.len !== undefined && (v as unknown[]).length !== s.len) bad(`must be a list of ${s.len} values`);
      if (s.minLen !== undefined && (v as unknown[]).length < s.minLen) bad(`must have at least ${s.minLen} entr${s.minLen === 1 ? 'y' : 'ies'}`);
      (v as unknown[]).forEach((x, i) => check(x, s.of, `${at}[${i}]`));
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
  return /^[\w.-]+\/[\w.-]+$/.test(init) && !fs.existsSync(rel(init)) ? init : rel(init);
}

/** True for a `model.init` that names a hub model rather than a folder. */
export function isHubModelId(init: string): boolean {
  return !path.isAbsolute(init);
}

export function loadRecipe(file: string): Recipe {
  return parseRecipe(readRecipeText(file), file);
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

function parseRecipeInner(raw: unknown, file: string): Recipe {
  if (!isObj(raw)) throw new OpenELMError('recipe', `the recipe must be a mapping of keys (got ${typeName(raw)})`);
  check(raw, SCHEMA, 'recipe');
  const dir = path.dirname(path.resolve(file));
  const rel = (p: string) => path.resolve(dir, p);

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

  const defaults = size ? corenetDefaults(size) : genericDefaults();
  const r = merge(defaults, raw);
  const need = (key: string, v: unknown) => {
    if (v === undefined) throw new OpenELMError('recipe', `${key} is required (no preset model or \`defaults\` supplies it)`);
  };
  const opt = (r.optimizer ?? {}) as Obj, sch = (r.schedule ?? {}) as Obj, pipe = (r.pipeline ?? {}) as Obj;
  need('recipe.steps', r.steps); need('recipe.seq_len', r.seq_len); need('recipe.batch_size', r.batch_size); need('recipe.optimizer.lr', opt.lr);
  const data = r.data as Obj | undefined;
  if (!data || data.train === undefined) throw new OpenELMError('recipe', 'recipe.data.train is required (a list of {path, format})');

  const seed = (r.seed as number | undefined) ?? 0;
  const steps = r.steps as number, seqLen = r.seq_len as number;
  const lr = opt.lr as number;

  const sources = (list: unknown[] | undefined, key: string): RecipeSource[] => (list ?? []).map((x, i) => {
    const s = x as Obj, at = `recipe.data.${key}[${i}]`;
    if (s.path === undefined) throw new OpenELMError('recipe', `${at}.path is required`);
    const paths = typeof s.path === 'string' ? [s.path] : (s.path as string[]);
    let format = s.format as DataFormat | undefined;
    if (!format) {
      format = formatFromExtension(paths[0]) ?? formatOfFolder(rel(paths[0]));
      if (!format) throw new OpenELMError('recipe', `${at}.format is required: cannot tell the format of ${paths[0]} from its extension (use ${DATA_FORMATS.join(', ')})`);
    }
    if (s.text_key !== undefined && (format === 'text' || format === 'tokens' || format === 'llm-adapters')) throw new OpenELMError('recipe', `${at}.text_key only applies to jsonl and parquet sources`);
    return {
      name: (s.name as string | undefined) ?? path.basename(paths[0]),
      paths, absPaths: paths.map(rel), format,
      textKey: (s.text_key as string | undefined) ?? (format === 'jsonl' ? 'text' : undefined),
      weight: (s.weight as number | undefined) ?? 1,
    };
  });
  const train = sources(data.train as unknown[], 'train');
  const valid = sources(data.valid as unknown[] | undefined, 'valid');
  const validFraction = (data.valid_fraction as number | undefined) ?? 0;
  if (valid.length && validFraction > 0) throw new OpenELMError('recipe', 'recipe.data.valid and recipe.data.valid_fraction exclude each other');
  const hasValid = valid.length > 0 || validFraction > 0;

  const type = (sch.type as 'cosine' | 'constant' | undefined) ?? 'cosine';
  const warmupSteps = (sch.warmup_steps as number | undefined) ?? 0;
  if (type === 'cosine' && warmupSteps > steps) throw new OpenELMError('recipe', `recipe.schedule.warmup_steps (${warmupSteps}) is larger than recipe.steps (${steps})`);
  const checkpointEvery = (r.checkpoint_every as number | undefined) ?? Math.max(1, Math.min(steps, 1000));
  const evalEvery = (r.eval_every as number | undefined) ?? (hasValid ? checkpointEvery : 0);
  if (evalEvery > 0 && !hasValid) throw new OpenELMError('recipe', 'recipe.eval_every needs validation data (recipe.data.valid or recipe.data.valid_fraction)');
  const mode = (pipe.mode as 'pack' | 'pad' | undefined) ?? 'pad';
  const shuffle = (pipe.shuffle as boolean | undefined) ?? true;

  const outDir = (r.out_dir as string | undefined) ?? path.join('runs', path.basename(file).replace(/\.(ya?ml|json)$/i, ''));
  const smp = r.sample as Obj | undefined;
  if (smp && smp.prompt === undefined) throw new OpenELMError('recipe', 'recipe.sample.prompt is required');

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
    model: { init: model.init !== undefined ? initLocation(model.init as string, rel) : undefined, preset: model.preset as string | undefined, config: model.config as Obj | undefined },
    hfConfig,
    seed,
    data: { train, valid, validFraction, evalBatches: (data.eval_batches as number | undefined) ?? 4 },
    seqLen, batchSize: r.batch_size as number, gradAccum: (r.grad_accum as number | undefined) ?? 1, steps,
    pipeline: {
      mode, shuffle, seed: (pipe.seed as number | undefined) ?? seed,
      minChars: (pipe.min_chars as number | undefined) ?? 200, minTokens: (pipe.min_tokens as number | undefined) ?? 256,
      splitWords: (pipe.split_words as number | undefined) ?? 2048,
      shuffleBuffer: shuffle ? ((pipe.shuffle_buffer as number | undefined) ?? 1024) : 0,
    },
    optimizer: {
      lr, betas: ((opt.betas as number[] | undefined) ?? [0.9, 0.95]) as [number, number],
      eps: (opt.eps as number | undefined) ?? 1e-8, weightDecay: (opt.weight_decay as number | undefined) ?? 0.1,
    },
    schedule: { type, warmupSteps, warmupInitLr: (sch.warmup_init_lr as number | undefined) ?? 1e-6, minLr: (sch.min_lr as number | undefined) ?? lr / 10 },
    clipGradNorm: (r.clip_grad_norm as number | undefined) ?? 1.0,
    zLoss: (r.z_loss as number | undefined) ?? 0,
    outDir: path.resolve(outDir),
    logEvery: (r.log_every as number | undefined) ?? 10,
    evalEvery,
    checkpointEvery,
    keepCheckpoints: (r.keep_checkpoints as number | undefined) ?? 2,
    recompute: (r.recompute as boolean | undefined) ?? false,
    precision: (r.precision as MatmulPrecision | undefined) ?? 'fp32',
    threads: r.threads as number | undefined,
    sample: smp ? {
      prompt: smp.prompt as string, maxTokens: (smp.max_tokens as number | undefined) ?? 64,
      temperature: (smp.temperature as number | undefined) ?? 0.8, topK: (smp.top_k as number | undefined) ?? 40,
      seed: (smp.seed as number | undefined) ?? seed,
    } : undefined,
    peft,
    canonical: {},
  };
  if (recipe.schedule.type === 'cosine' && recipe.schedule.minLr > lr) {
    throw new OpenELMError('recipe', `recipe.schedule.min_lr (${recipe.schedule.minLr}) is larger than recipe.optimizer.lr (${lr})`);
  }
  recipe.canonical = canonicalRecipe(recipe);
  return recipe;
}

/** Every setting that influences the numbers a run produces, snake_case, paths as written. */
function canonicalRecipe(r: Recipe): Record<string, unknown> {
  const src = (s: RecipeSource) => ({ name: s.name, path: s.paths, format: s.format, text_key: s.textKey ?? null, weight: s.weight });
  const p = r.peft;
  // Only present for adapter runs, so checkpoints of full runs compare equal to recipes without it.
  const peft = p ? {
    peft: {
      type: p.type ?? null, r: p.r ?? null, alpha: p.alpha ?? null, dropout: p.dropout ?? null, targets: p.targets ?? null,
      rslora: p.rslora ?? null, init: p.init !== undefined ? path.relative(path.dirname(path.resolve(r.file)), p.init) : null,
      base_dtype: p.baseDtype,
    },
  } : {};
  return {
    model: r.model.init !== undefined ? { init: isHubModelId(r.model.init) ? r.model.init : path.relative(path.dirname(path.resolve(r.file)), r.model.init) } : r.model.preset !== undefined ? { preset: r.model.preset } : { config: r.model.config },
    seed: r.seed,
    data: { train: r.data.train.map(src), valid: r.data.valid.map(src), valid_fraction: r.data.validFraction, eval_batches: r.data.evalBatches },
    seq_len: r.seqLen, batch_size: r.batchSize, grad_accum: r.gradAccum, steps: r.steps,
    pipeline: { mode: r.pipeline.mode, shuffle: r.pipeline.shuffle, seed: r.pipeline.seed, min_chars: r.pipeline.minChars, min_tokens: r.pipeline.minTokens, split_words: r.pipeline.splitWords, shuffle_buffer: r.pipeline.shuffleBuffer },
    optimizer: { lr: r.optimizer.lr, betas: r.optimizer.betas, eps: r.optimizer.eps, weight_decay: r.optimizer.weightDecay },
    schedule: { type: r.schedule.type, warmup_steps: r.schedule.warmupSteps, warmup_init_lr: r.schedule.warmupInitLr, min_lr: r.schedule.minLr },
    clip_grad_norm: r.clipGradNorm, z_loss: r.zLoss, recompute: r.recompute,
    log_every: r.logEvery, eval_every: r.evalEvery, checkpoint_every: r.checkpointEvery, keep_checkpoints: r.keepCheckpoints,
    threads: r.threads ?? null, sample: r.sample ?? null,
    // only when not the default, so fp32 recipes (and the checkpoints of runs made before the
    // setting existed) compare equal on resume
    ...(r.precision !== 'fp32' ? { precision: r.precision } : {}),
    ...peft,
  };
}

/** Override the recipe's precision (`openelm train --precision`); resuming compares it like any setting. */
export function setRecipePrecision(r: Recipe, precision: MatmulPrecision): void {
  if (!MATMUL_PRECISIONS.includes(precision)) throw new OpenELMError('usage', `--precision must be one of ${MATMUL_PRECISIONS.join(', ')}, got "${String(precision)}"`);
  r.precision = precision;
  r.canonical = canonicalRecipe(r);
}

/** Keys that may change between a run and its resumption without changing its numbers. */
const RESUMABLE_CHANGES = new Set(['log_every', 'eval_every', 'checkpoint_every', 'keep_checkpoints', 'threads', 'sample', 'steps', 'recompute']);

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
