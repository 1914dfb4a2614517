// Recipes both ways with CoreNet: Apple's own pretraining YAMLs (test/fixtures/corenet/
// pretraining_configs, copied unmodified from apple/corenet) import as recipes with CoreNet's
// hyper-parameters, every key without a counterpart named; recipes export as CoreNet YAMLs with the
// same values at the same keys as Apple's.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { loadRecipe, parseRecipe } from '../src/train/recipe.js';
import { exportCorenetRecipe, importCorenetRecipe } from '../src/formats/corenet-recipe.js';
import { runCli } from './helpers/cli.js';

const CFG = fileURLToPath(new URL('../../test/fixtures/corenet/pretraining_configs/', import.meta.url));
const RECIPES = fileURLToPath(new URL('../../recipes/', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-recipe-corenet-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

type Obj = Record<string, unknown>;
const at = (o: unknown, p: string): unknown => p.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Obj)[k] : undefined), o);
const SIZES: [string, number, number, boolean][] = [
  ['270M', 5.3e-3, 5.3e-4, false], ['450M', 3.9e-3, 3.9e-4, true], ['1_1B', 2.4e-3, 2.4e-4, true], ['3B', 1.2e-3, 1.2e-4, true],
];

test('Apple\'s pretraining YAMLs import as recipes with CoreNet\'s hyper-parameters', () => {
  for (const [size, lr, minLr, recompute] of SIZES) {
    const file = path.join(CFG, `openelm_${size}.yaml`);
    const r = importCorenetRecipe(parseYaml(fs.readFileSync(file, 'utf8'), { merge: true }), file);
    const rec = parseRecipe(r.recipe, path.join(tmp, `${size}.yaml`));
    assert.equal(rec.model.preset, `OpenELM-${size}`);
    assert.equal(rec.optimizer.lr, lr);
    assert.equal(rec.schedule.minLr, minLr);
    assert.deepEqual(rec.optimizer.betas, [0.9, 0.95]);
    assert.equal(rec.optimizer.eps, 1e-8);
    assert.equal(rec.optimizer.weightDecay, 0.1);
    assert.equal(rec.schedule.type, 'cosine');
    assert.equal(rec.schedule.warmupSteps, 5000);
    assert.equal(rec.schedule.warmupInitLr, 1e-6);
    assert.equal(rec.steps, 350_000);
    assert.equal(rec.seqLen, 2048);
    assert.equal(rec.batchSize * rec.gradAccum, 16 * 128);
    assert.equal(rec.zLoss, 1e-4);
    assert.equal(rec.clipGradNorm, 1);
    assert.equal(rec.recompute, recompute);
    assert.equal(rec.pipeline.mode, 'pad');
    assert.equal(rec.pipeline.minTokens, 256);
    assert.equal(rec.pipeline.minChars, 200);
    assert.equal(rec.checkpointEvery, 5000);
    // Every leaf of the YAML is either carried or named.
    assert.ok(r.notCarried.some((l) => l.startsWith('dataset.language_modeling.general_lm.train_data_info[0].file_name is not set')), size);
    assert.ok(r.notCarried.some((l) => l.startsWith('dataset.train_batch_size0 16: the GPU count is not in the YAML')), size);
    if (size === '3B') assert.ok(r.notCarried.some((l) => l.startsWith('fsdp.sharding_strategy')), 'fsdp keys are named');
    else assert.ok(r.notCarried.some((l) => l.startsWith('common.mixed_precision:')), 'mixed precision is named');
    for (const l of r.notCarried) assert.ok(!l.includes('\n'), l);
  }
});

test('the 270M recipe exports to a YAML with Apple\'s values at Apple\'s keys', () => {
  const rec = loadRecipe(path.join(RECIPES, 'corenet-openelm-270M.yaml'));
  const out = exportCorenetRecipe(rec);
  const ours = parseYaml(out.text) as Obj;
  const apple = parseYaml(fs.readFileSync(path.join(CFG, 'openelm_270M.yaml'), 'utf8'), { merge: true }) as Obj;
  for (const k of [
    'common.grad_clip', 'common.save_interval_freq', 'common.log_freq', 'common.mixed_precision', 'common.mixed_precision_dtype',
    'dataset.train_batch_size0', 'dataset.disable_val', 'dataset.category', 'dataset.name',
    'dataset.language_modeling.sequence_length', 'dataset.language_modeling.min_tokens_per_text',
    'dataset.language_modeling.min_characters_per_text', 'dataset.language_modeling.shuffle_data',
    'text_tokenizer.name', 'text_tokenizer.sentence_piece.enable_nfc_normalization', 'text_tokenizer.sentence_piece.append_sot_token',
    'text_tokenizer.sentence_piece.append_eot_token', 'loss.category', 'loss.language_modeling.name',
    'loss.language_modeling.cross_entropy.ignore_index', 'loss.language_modeling.cross_entropy.use_z_loss',
    'optim.name', 'optim.weight_decay', 'optim.no_decay_bn_filter_bias', 'optim.adamw.beta1', 'optim.adamw.beta2', 'optim.adamw.eps',
    'scheduler.is_iteration_based', 'scheduler.max_iterations', 'scheduler.name', 'scheduler.warmup_init_lr', 'scheduler.warmup_iterations',
    'scheduler.cosine.max_lr', 'scheduler.cosine.min_lr', 'model.activation_checkpointing', 'model.language_modeling.name',
    'model.language_modeling.general_gpt.model_name', 'model.language_modeling.general_gpt.vocab_size',
    'model.language_modeling.general_gpt.max_context_length', 'model.language_modeling.general_gpt.padding_index',
    'stats.checkpoint_metric',
  ]) assert.deepEqual(at(ours, k), at(apple, k), k);
  assert.equal(at(ours, 'common.accum_freq'), 1);
  assert.equal((at(ours, 'dataset.language_modeling.general_lm.train_data_info') as unknown[]).length, 13);
  assert.ok(out.notCarried.some((l) => l.startsWith('data.train[].weight')));
  // Importing the export gives back the recipe's hyper-parameters.
  const back = parseRecipe(importCorenetRecipe(ours, 'x.yaml').recipe, path.join(tmp, 'back.yaml'));
  for (const k of ['seqLen', 'steps', 'zLoss', 'clipGradNorm', 'recompute'] as const) assert.deepEqual(back[k], rec[k], k);
  assert.deepEqual(back.optimizer, rec.optimizer);
  assert.deepEqual(back.schedule, rec.schedule);
  assert.equal(back.batchSize * back.gradAccum, rec.batchSize * rec.gradAccum);
});

test('export lists existing data files one by one and splits the batch over --gpus; 3B gets Apple\'s FSDP block', () => {
  const data = path.join(tmp, 'data');
  fs.mkdirSync(data);
  for (const n of ['a-001.jsonl', 'a-002.jsonl']) fs.writeFileSync(path.join(data, n), '{"text": "x"}\n');
  const file = path.join(tmp, 'r3b.yaml');
  fs.writeFileSync(file, JSON.stringify({ model: { preset: 'OpenELM-3B' }, data: { train: [{ path: 'data/a-*.jsonl' }] }, batch_size: 4, grad_accum: 64 }));
  const out = exportCorenetRecipe(loadRecipe(file), { gpus: 16 });
  const y = parseYaml(out.text) as Obj;
  const info = at(y, 'dataset.language_modeling.general_lm.train_data_info') as Obj[];
  assert.deepEqual(info.map((e) => path.basename(e.file_name as string)), ['a-001.jsonl', 'a-002.jsonl']);
  assert.equal(at(y, 'dataset.train_batch_size0'), 4);
  assert.equal(at(y, 'common.accum_freq'), 4);
  assert.equal(at(y, 'train_eval_pipeline.name'), 'fsdp_train_eval_pipeline');
  assert.equal(at(y, 'fsdp.parameter_datatype'), 'bfloat16');
  assert.equal(at(y, 'common.mixed_precision'), undefined);
});

test('CLI: recipe import / export write the file and name what they cannot carry; bad input is one line', () => {
  const out = path.join(tmp, 'imported.yaml');
  let r = runCli(['recipe', 'import', path.join(CFG, 'openelm_450M.yaml'), '--out', out, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.ok(j.not_carried.length > 5);
  assert.equal(loadRecipe(out).model.preset, 'OpenELM-450M');
  const cy = path.join(tmp, 'c.yaml');
  r = runCli(['recipe', 'export', '--to', 'corenet', path.join(RECIPES, 'corenet-openelm-270M.yaml'), '--out', cy]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /not carried over \(\d+\):/);
  const bad = path.join(tmp, 'bad.yaml');
  fs.writeFileSync(bad, 'model:\n  language_modeling:\n    general_gpt:\n      model_name: OpenELM-2B\n');
  const never = path.join(tmp, 'never.yaml');
  for (const [args, re, code] of [
    [['import', bad, '--out', never], /model_name "OpenELM-2B" is not a known size/, 1],
    [['export', path.join(RECIPES, 'test-tiny.yaml'), '--out', never], /CoreNet's YAMLs name only the released sizes/, 2],
    [['export', path.join(RECIPES, 'corenet-openelm-270M.yaml'), '--gpus', '3', '--out', never], /global batch .* does not split over 3 GPUs/, 2],
    [['convert', bad, '--out', never], /needs "export" or "import" first/, 2],
  ] as [string[], RegExp, number][]) {
    r = runCli(['recipe', ...args]);
    assert.equal(r.status, code, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  }
  assert.equal(fs.existsSync(never), false);
});
