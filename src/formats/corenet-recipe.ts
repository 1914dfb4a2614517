// Recipes both ways: an `openelm train` recipe as a CoreNet training YAML (the structure of
// apple/corenet projects/openelm/pretraining_configs/*.yaml), and such a YAML as a recipe. Every
// setting that has no counterpart on the other side is named, never dropped silently.
// See docs/scale-out.md for the key table.

import * as path from 'node:path';
import { stringify as toYaml } from 'yaml';
import { OpenELMError } from '../core/errors.js';
import { PRESET_NAMES, presetHFConfig, resolveConfig } from '../model/config.js';
import type { Recipe } from '../train/recipe.js';
import { expandDataPath, type DataFormat } from '../train/data/files.js';
import { recipeModelConfig } from '../train/trainer.js';
import { corenetModelFromYaml } from './corenet.js';

/** Apple's layout for the released runs: 16 sequences on each of 8 GPUs × 16 nodes. */
export const DEFAULT_GPUS = 128;
const PADDING_INDEX = 32000;
const CORENET_VOCAB = 32128;

export interface RecipeConversion {
  /** The converted document (YAML text). */
  text: string;
  /** One line per setting that could not be carried over (or only approximately). */
  notCarried: string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The released size a recipe's model is (preset name, or a config with exactly that geometry). */
function releasedSize(r: Recipe): string {
  if (r.model.preset) return r.model.preset.replace(/^apple\//i, '').replace(/-Instruct$/i, '').replace('1.1B', '1_1B');
  const c = recipeModelConfig(r);
  for (const name of PRESET_NAMES.filter((n) => !n.endsWith('-Instruct'))) {
    const p = resolveConfig(presetHFConfig(name));
    if (JSON.stringify([p.numLayers, p.modelDim, p.headDim, p.numQueryHeads, p.numKvHeads, p.ffnDims]) ===
      JSON.stringify([c.numLayers, c.modelDim, c.headDim, c.numQueryHeads, c.numKvHeads, c.ffnDims])) return name;
  }
  throw new OpenELMError('usage', `${r.file}: CoreNet's YAMLs name only the released sizes (${PRESET_NAMES.filter((n) => !n.endsWith('-Instruct')).join(', ')}); this recipe's model is not one of them`);
}

/** CoreNet's general_lm file entries for one of our source paths (as absolute paths). */
function corenetFiles(p: string, format: DataFormat): { files: string[]; pattern?: string } {
  try {
    // Files that exist now are listed one by one: exact, whatever their naming.
    return { files: expandDataPath(p, format, 'data') };
  } catch {
    // Not on this machine (data prepared on the cluster): CoreNet numbers files with {file_id}.
    return { files: [], pattern: p.replace(/\*/g, '{file_id:05d}') };
  }
}

export function exportCorenetRecipe(r: Recipe, opts: { gpus?: number } = {}): RecipeConversion {
  const gpus = opts.gpus ?? DEFAULT_GPUS;
  const notCarried: string[] = [];
  const size = releasedSize(r);
  const global = r.batchSize * r.gradAccum;
  if (global % gpus !== 0) throw new OpenELMError('usage', `${r.file}: the global batch (batch_size ${r.batchSize} × grad_accum ${r.gradAccum} = ${global}) does not split over ${gpus} GPUs; pass --gpus with a divisor of ${global}`);
  const perGpu = global / gpus;
  const micro = perGpu % r.batchSize === 0 ? r.batchSize : perGpu;
  const accum = perGpu / micro;

  const trainInfo: Obj[] = [];
  r.data.train.forEach((s, i) => {
    if (s.format === 'text' || s.format === 'tokens') {
      notCarried.push(`data.train[${i}] (${s.name}): format ${s.format} — CoreNet's general_lm reads parquet, jsonl and json.gz only`);
      return;
    }
    const textKey = s.textKey ?? (s.format === 'parquet' ? 'content' : 'text');
    s.absPaths.forEach((abs, j) => {
      const { files, pattern } = corenetFiles(abs, s.format);
      for (const f of files) trainInfo.push({ file_name: f, text_key: textKey, file_id_range: [0, 1] });
      if (pattern) {
        trainInfo.push({ file_name: pattern, text_key: textKey, file_id_range: [0, 1] });
        notCarried.push(`data.train[${i}].path ${s.paths[j]}: no files here to list; file_name ${pattern} needs the cluster's file names and file_id_range`);
      }
    });
  });
  if (r.data.train.some((s) => s.weight !== r.data.train[0].weight)) notCarried.push('data.train[].weight: CoreNet pools every file, so corpora mix in proportion to their size');
  if (r.data.valid.length || r.data.validFraction > 0) notCarried.push('data.valid / valid_fraction: Apple\'s runs disable validation (dataset.disable_val)');
  if (r.pipeline.mode !== 'pad') notCarried.push(`pipeline.mode ${r.pipeline.mode}: CoreNet pads one chunk per row (pad)`);
  if (r.pipeline.splitWords !== 2048) notCarried.push(`pipeline.split_words ${r.pipeline.splitWords}: CoreNet splits documents every 2048 words`);
  if (r.pipeline.shuffleBuffer > 0) notCarried.push(`pipeline.shuffle_buffer ${r.pipeline.shuffleBuffer}: CoreNet shuffles files only`);
  notCarried.push('keep_checkpoints: CoreNet keeps every interval checkpoint (common.save_all_checkpoints)');
  if (r.sample) notCarried.push('sample: no CoreNet equivalent');

  const scheduler: Obj = { is_iteration_based: true, max_iterations: r.steps, warmup_init_lr: r.schedule.warmupInitLr, warmup_iterations: r.schedule.warmupSteps };
  if (r.schedule.type === 'cosine') Object.assign(scheduler, { name: 'cosine', cosine: { max_lr: r.optimizer.lr, min_lr: r.schedule.minLr } });
  else Object.assign(scheduler, { name: 'fixed', fixed: { lr: r.optimizer.lr } });

  const model: Obj = {
    activation_checkpointing: r.recompute,
    language_modeling: {
      name: 'general_gpt',
      general_gpt: { model_name: size, vocab_size: CORENET_VOCAB, max_context_length: Math.max(r.seqLen, 2048), padding_index: PADDING_INDEX },
    },
  };
  if (r.model.init) {
    (model.language_modeling as Obj).pretrained = `${path.basename(r.model.init)}.pt`;
    notCarried.push(`model.init ${r.model.init}: convert it with \`openelm convert --model ${r.model.init} --to corenet --out ${path.basename(r.model.init)}.pt\` and point model.language_modeling.pretrained at it`);
  }
  // Apple trained 3B with FSDP (bf16 parameters, f32 gradient reduction) and the others with DDP.
  const fsdp = size === 'OpenELM-3B';
  const doc: Obj = {
    taskname: `+ [${size}] from ${path.basename(r.file)}`,
    common: {
      run_label: 'train', seed: r.seed, log_freq: r.logEvery, auto_resume: true, grad_clip: r.clipGradNorm,
      accum_freq: accum, save_all_checkpoints: true, save_interval_freq: r.checkpointEvery,
      ...(fsdp ? {} : { mixed_precision: true, mixed_precision_dtype: 'bfloat16' }),
    },
    ...(fsdp ? {
      train_eval_pipeline: { name: 'fsdp_train_eval_pipeline' },
      fsdp: { sharding_strategy: 'full_shard', parameter_datatype: 'bfloat16', gradient_reduction_datatype: 'float32', buffer_datatype: 'bfloat16', cpu_offload: false, limit_all_gathers: true },
    } : {}),
    dataset: {
      root_train: '', disable_val: true, train_batch_size0: micro, workers: 4, persistent_workers: true, pin_memory: true,
      category: 'language_modeling', name: 'general_lm',
      language_modeling: {
        sequence_length: r.seqLen, min_tokens_per_text: r.pipeline.minTokens, min_characters_per_text: r.pipeline.minChars,
        shuffle_data: r.pipeline.shuffle, general_lm: { train_data_info: trainInfo },
      },
    },
    text_tokenizer: { name: 'sentence_piece', sentence_piece: { enable_nfc_normalization: true, append_sot_token: true, append_eot_token: true, model_path: 'tokenizer.model' } },
    loss: { category: 'language_modeling', language_modeling: { name: 'cross_entropy', cross_entropy: { ignore_index: PADDING_INDEX, use_z_loss: r.zLoss > 0, z_loss_eps: r.zLoss > 0 ? r.zLoss : 1e-4 } } },
    optim: { name: 'adamw', weight_decay: r.optimizer.weightDecay, no_decay_bn_filter_bias: true, adamw: { beta1: r.optimizer.betas[0], beta2: r.optimizer.betas[1], eps: r.optimizer.eps } },
    scheduler,
    model,
    stats: { val: ['loss'], train: ['loss'], checkpoint_metric: 'loss.total_loss', checkpoint_metric_max: false },
  };
  notCarried.push('text_tokenizer.sentence_piece.model_path: point it at Llama-2\'s tokenizer.model (assets/tokenizer/tokenizer.model in this package)');
  const head = [
    `# CoreNet training config written by \`openelm recipe export\` from ${path.basename(r.file)}.`,
    `# Global batch ${global} sequences = ${micro} per GPU × ${gpus} GPUs${accum > 1 ? ` × ${accum} accumulation steps` : ''} (common.accum_freq).`,
    '# Run on each node: corenet-train --common.config-file THIS.yaml --ddp.rank RANK --ddp.world-size WORLD --ddp.dist-url tcp://HOST:PORT',
    '',
  ].join('\n');
  return { text: head + toYaml(doc, { lineWidth: 0 }), notCarried };
}

// ------------------------------------------------------------------------------------------------
// Import

/** Paths into the YAML (dotted), read once each; whatever is left unread is reported. */
class Reader {
  private readonly used = new Set<string>();
  constructor(private readonly doc: Obj) {}
  get(p: string): unknown {
    this.used.add(p);
    let v: unknown = this.doc;
    for (const k of p.split('.')) v = isObj(v) ? v[k] : undefined;
    return v;
  }
  /** Leaf keys present in the document that were never read (anchor holders excluded). */
  unread(): string[] {
    const out: string[] = [];
    const walk = (v: unknown, p: string) => {
      if (this.used.has(p)) return;
      if (isObj(v) && Object.keys(v).length) { for (const [k, x] of Object.entries(v)) walk(x, p ? `${p}.${k}` : k); return; }
      if (!/^_anchor/.test(p)) out.push(p);
    };
    walk(this.doc, '');
    return out;
  }
}

const WHY: Record<string, string> = {
  'common.mixed_precision': 'training here runs in float32',
  'common.mixed_precision_dtype': 'training here runs in float32',
  'common.auto_resume': 'pass --resume to openelm train',
  'common.save_all_checkpoints': 'keep_checkpoints decides how many are kept',
  'common.eval_every_k_iterations': 'validation is off in this YAML',
  'common.run_label': 'runs are named by out_dir',
  'dataset.root_train': 'paths are given per source',
  'dataset.disable_val': 'no validation data is set',
  'dataset.workers': 'data loading is single-process here',
  'dataset.persistent_workers': 'data loading is single-process here',
  'dataset.pin_memory': 'no GPU here',
  'train_eval_pipeline.name': 'FSDP is a multi-GPU concern',
  'loss.language_modeling.cross_entropy.ignore_index': 'padding uses the ignore index −100 with the 32000-row vocabulary',
  'text_tokenizer.sentence_piece.model_path': 'the bundled Llama-2 tokenizer is used',
  'stats.val': 'metrics are fixed (loss, lr, grad norm, tokens/s)',
  'stats.train': 'metrics are fixed (loss, lr, grad norm, tokens/s)',
  'stats.checkpoint_metric': 'no best-checkpoint tracking',
  'stats.checkpoint_metric_max': 'no best-checkpoint tracking',
  'taskname': 'a label only',
};

export function importCorenetRecipe(doc: unknown, file: string, opts: { gpus?: number } = {}): RecipeConversion & { recipe: Obj } {
  if (!isObj(doc)) throw new OpenELMError('config', `${file} is not a YAML mapping`);
  const gpus = opts.gpus ?? DEFAULT_GPUS;
  const y = new Reader(doc);
  const notCarried: string[] = [];
  const m = corenetModelFromYaml(doc, file);
  for (const k of ['model_name', 'vocab_size', 'max_context_length', 'padding_index']) y.get(`model.language_modeling.general_gpt.${k}`);
  y.get('model.language_modeling.name');
  const recipe: Obj = {};
  recipe.model = m.modelName?.startsWith('OpenELM-') ? { preset: m.modelName } : { config: m.hf };
  if (m.hf.vocab_size !== 32000 && m.modelName?.startsWith('OpenELM-')) notCarried.push(`model.language_modeling.general_gpt.vocab_size: the released vocabulary (32000) is used`);
  const pretrained = y.get('model.language_modeling.pretrained');
  if (typeof pretrained === 'string') notCarried.push(`model.language_modeling.pretrained ${pretrained}: convert it with \`openelm convert --model ${pretrained} --config ${path.basename(file)} --to hf --out DIR\` and set model: {init: DIR}`);
  const num = (p: string): number | undefined => { const v = y.get(p); return typeof v === 'number' ? v : undefined; };
  const seqLen = num('dataset.language_modeling.sequence_length');
  if (seqLen !== undefined) recipe.seq_len = seqLen;
  const micro = num('dataset.train_batch_size0');
  const accum = num('common.accum_freq') ?? 1;
  if (micro !== undefined) {
    recipe.batch_size = micro;
    recipe.grad_accum = gpus * accum;
    notCarried.push(`dataset.train_batch_size0 ${micro}: the GPU count is not in the YAML; grad_accum ${gpus * accum} assumes ${gpus} GPUs${accum > 1 ? ` × accum_freq ${accum}` : ''} (openelm recipe import --gpus N)`);
  }
  const steps = num('scheduler.max_iterations');
  if (steps !== undefined) recipe.steps = steps;
  if (y.get('scheduler.is_iteration_based') === false) notCarried.push('scheduler.is_iteration_based false: schedules here count optimizer steps');
  const sched = y.get('scheduler.name');
  const schedule: Obj = {};
  const optimizer: Obj = {};
  if (sched === 'cosine') {
    schedule.type = 'cosine';
    const max = num('scheduler.cosine.max_lr'), min = num('scheduler.cosine.min_lr');
    if (max !== undefined) optimizer.lr = max;
    if (min !== undefined) schedule.min_lr = min;
  } else if (sched === 'fixed') {
    schedule.type = 'constant';
    const lr = num('scheduler.fixed.lr');
    if (lr !== undefined) optimizer.lr = lr;
  } else if (sched !== undefined) notCarried.push(`scheduler.name ${String(sched)}: only cosine and fixed have counterparts`);
  const wi = num('scheduler.warmup_iterations'), wlr = num('scheduler.warmup_init_lr');
  if (wi !== undefined) schedule.warmup_steps = wi;
  if (wlr !== undefined) schedule.warmup_init_lr = wlr;
  const optName = y.get('optim.name');
  if (optName !== undefined && optName !== 'adamw') notCarried.push(`optim.name ${String(optName)}: only adamw is supported; AdamW is used`);
  const wd = num('optim.weight_decay'), b1 = num('optim.adamw.beta1'), b2 = num('optim.adamw.beta2'), eps = num('optim.adamw.eps');
  if (wd !== undefined) optimizer.weight_decay = wd;
  if (b1 !== undefined || b2 !== undefined) optimizer.betas = [b1 ?? 0.9, b2 ?? 0.999];
  if (eps !== undefined) optimizer.eps = eps;
  if (y.get('optim.no_decay_bn_filter_bias') === false) notCarried.push('optim.no_decay_bn_filter_bias false: 1-D tensors (the norms) are never decayed here');
  if (Object.keys(optimizer).length) recipe.optimizer = optimizer;
  if (Object.keys(schedule).length) recipe.schedule = schedule;
  const clip = num('common.grad_clip');
  if (clip !== undefined) recipe.clip_grad_norm = clip;
  const useZ = y.get('loss.language_modeling.cross_entropy.use_z_loss'), zEps = num('loss.language_modeling.cross_entropy.z_loss_eps');
  y.get('loss.category');
  y.get('loss.language_modeling.name');
  recipe.z_loss = useZ === true ? zEps ?? 1e-4 : 0;
  const ls = num('loss.language_modeling.cross_entropy.label_smoothing');
  if (ls) notCarried.push(`loss.language_modeling.cross_entropy.label_smoothing ${ls}: not supported`);
  const seed = num('common.seed');
  if (seed !== undefined) recipe.seed = seed;
  const logFreq = num('common.log_freq'), save = num('common.save_interval_freq');
  if (logFreq !== undefined) recipe.log_every = logFreq;
  if (save !== undefined) recipe.checkpoint_every = save;
  const ac = y.get('model.activation_checkpointing');
  if (typeof ac === 'boolean') recipe.recompute = ac;
  const pipeline: Obj = { mode: 'pad' };
  const minTok = num('dataset.language_modeling.min_tokens_per_text'), minChars = num('dataset.language_modeling.min_characters_per_text');
  if (minTok !== undefined) pipeline.min_tokens = minTok;
  if (minChars !== undefined) pipeline.min_chars = minChars;
  const shuffle = y.get('dataset.language_modeling.shuffle_data');
  if (typeof shuffle === 'boolean') pipeline.shuffle = shuffle;
  pipeline.shuffle_buffer = 0;
  recipe.pipeline = pipeline;
  y.get('dataset.category');
  y.get('dataset.name');
  for (const k of ['enable_nfc_normalization', 'append_sot_token', 'append_eot_token']) {
    if (y.get(`text_tokenizer.sentence_piece.${k}`) === false) notCarried.push(`text_tokenizer.sentence_piece.${k} false: chunks are always NFC-normalised and get BOS and EOS`);
  }
  y.get('text_tokenizer.name');

  const info = y.get('dataset.language_modeling.general_lm.train_data_info');
  const train: Obj[] = [];
  (Array.isArray(info) ? info : []).forEach((e, i) => {
    const where = `dataset.language_modeling.general_lm.train_data_info[${i}]`;
    if (!isObj(e)) return;
    const name = typeof e.file_name === 'string' ? e.file_name : undefined;
    const textKey = typeof e.text_key === 'string' ? e.text_key : 'text';
    if (!name) {
      notCarried.push(`${where}.file_name is not set (commented out in Apple's YAMLs): set data.train[${train.length}].path to the files`);
      train.push({ name: `source${i}`, path: `SET-PATH-OF-train_data_info-${i}`, format: textKey === 'content' ? 'parquet' : 'jsonl', text_key: textKey });
      return;
    }
    const glob = name.replace(/\{file_id[^}]*\}/g, '*');
    const format = /\.parquet$/.test(name) ? 'parquet' : 'jsonl';
    train.push({ name: path.basename(glob).replace(/[*{}].*$/, '').replace(/[-_.]+$/, '') || `source${i}`, path: glob, format, text_key: textKey });
    if (glob !== name) notCarried.push(`${where}.file_id_range ${JSON.stringify(e.file_id_range)}: the glob ${glob} matches every file of that name`);
  });
  if (!train.length) notCarried.push('dataset.language_modeling.general_lm.train_data_info is empty: add data.train sources');
  recipe.data = { train };

  for (const k of y.unread()) notCarried.push(`${k}: ${WHY[k] ?? (k.startsWith('fsdp.') ? 'FSDP is a multi-GPU concern' : 'no counterpart')}`);
  const head = [
    `# openelm recipe imported from ${path.basename(file)} by \`openelm recipe import\`.`,
    '# Settings with no counterpart are listed by the command; check data.train before training.',
    '',
  ].join('\n');
  return { recipe, text: head + toYaml(recipe, { lineWidth: 0 }), notCarried };
}
