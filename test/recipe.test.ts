// Recipe files: parsing (YAML and JSON), defaults from CoreNet's presets, and one clear error per
// problem naming the key path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isHubModelId, loadRecipe, parseRecipe, recipeDifferences } from '../src/train/recipe.js';
import { makeSchedule, recipeModelConfig } from '../src/train/trainer.js';
import { isRunFolder } from '../src/train/run-folder.js';
import { corenetDefaults } from '../src/train/presets.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-recipe-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const FILE = path.join(tmp, 'r.yaml');

const BASE = {
  model: { config: { num_transformer_layers: 2, model_dim: 32, head_dim: 8 } },
  data: { train: [{ path: 'corpus.txt' }] },
  seq_len: 16, batch_size: 2, steps: 10, optimizer: { lr: 1e-3 },
};

function withKey(obj: Record<string, unknown>, keyPath: string, value: unknown): Record<string, unknown> {
  const out = structuredClone(obj);
  const parts = keyPath.split('.');
  let o = out as Record<string, unknown>;
  for (const p of parts.slice(0, -1)) { o[p] ??= {}; o = o[p] as Record<string, unknown>; }
  o[parts[parts.length - 1]] = value;
  return out;
}

function err(raw: unknown): string {
  try { parseRecipe(raw, FILE); } catch (e) { return (e as Error).message; }
  assert.fail('expected an error');
}

test('a minimal recipe gets CoreNet\'s size-independent defaults; data paths are relative to the recipe, out_dir to the current folder', () => {
  const r = parseRecipe(BASE, FILE);
  assert.deepEqual(r.optimizer, { lr: 1e-3, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.1 });
  assert.deepEqual(r.schedule, { type: 'cosine', warmupSteps: 0, warmupInitLr: 1e-6, minLr: 1e-4 });
  assert.equal(r.clipGradNorm, 1);
  assert.equal(r.zLoss, 1e-4);
  assert.deepEqual(r.pipeline, { mode: 'pad', shuffle: true, seed: 0, minChars: 200, minTokens: 256, splitWords: 2048, shuffleBuffer: 1024 });
  assert.equal(r.gradAccum, 1);
  assert.equal(r.data.train[0].absPaths[0], path.join(tmp, 'corpus.txt'));
  assert.equal(r.data.train[0].format, 'text');
  assert.equal(r.outDir, path.resolve('runs', 'r'));
  assert.equal(parseRecipe({ ...BASE, out_dir: 'x/y' }, FILE).outDir, path.resolve('x/y'));
  assert.equal(parseRecipe({ ...BASE, out_dir: path.join(tmp, 'abs') }, FILE).outDir, path.join(tmp, 'abs'));
  assert.equal(r.evalEvery, 0);
});

test('presets carry CoreNet\'s hyper-parameters for every size', () => {
  const want: Record<string, [number, number]> = { 'OpenELM-270M': [5.3e-3, 5.3e-4], 'OpenELM-450M': [3.9e-3, 3.9e-4], 'OpenELM-1_1B': [2.4e-3, 2.4e-4], 'OpenELM-3B': [1.2e-3, 1.2e-4] };
  for (const [name, [lr, minLr]] of Object.entries(want)) {
    const r = parseRecipe({ model: { preset: name }, data: { train: [{ path: 'x.parquet' }] } }, FILE);
    assert.equal(r.optimizer.lr, lr, name);
    assert.deepEqual(r.optimizer.betas, [0.9, 0.95]);
    assert.equal(r.optimizer.eps, 1e-8);
    assert.equal(r.optimizer.weightDecay, 0.1);
    assert.deepEqual(r.schedule, { type: 'cosine', warmupSteps: 5000, warmupInitLr: 1e-6, minLr });
    assert.equal(r.steps, 350000);
    assert.equal(r.seqLen, 2048);
    assert.equal(r.batchSize * r.gradAccum, 2048, 'global batch of 2048 sequences');
    assert.equal(r.clipGradNorm, 1.0);
    assert.equal(r.zLoss, 1e-4);
    assert.equal(r.pipeline.mode, 'pad');
    assert.equal(r.pipeline.minChars, 200);
    assert.equal(r.pipeline.minTokens, 256);
    assert.equal(r.pipeline.splitWords, 2048);
    assert.equal(r.recompute, name !== 'OpenELM-270M');
    assert.equal(r.data.train[0].format, 'parquet');
  }
  // explicit keys win over the preset; `defaults` applies a size's values to a custom model
  const r = parseRecipe({ ...BASE, defaults: 'OpenELM-1_1B', schedule: { warmup_steps: 2 } }, FILE);
  assert.equal(r.optimizer.lr, 1e-3);
  assert.equal(r.schedule.minLr, 2.4e-4, 'min_lr comes from the size\'s defaults');
  assert.equal(r.gradAccum, 128);
  assert.equal(r.recompute, true);
  assert.equal(corenetDefaults('3B').grad_accum, 128);
});

test('the preset schedule is CoreNet\'s exact LR formula', () => {
  const r = parseRecipe({ model: { preset: 'OpenELM-270M' }, data: { train: [{ path: 'x.parquet' }] } }, FILE);
  const s = makeSchedule(r);
  const max = 5.3e-3, min = 5.3e-4;
  assert.equal(s.lr(0), 1e-6);
  assert.equal(s.lr(2500), 1e-6 + 2500 * (max - 1e-6) / 5000);
  assert.equal(s.lr(5000), max);
  for (const t of [5001, 100000, 349999]) {
    assert.equal(s.lr(t), min + 0.5 * (max - min) * (1 + Math.cos(Math.PI * (t - 5000) / (350000 - 5000 + 1))));
  }
  assert.equal(recipeModelConfig(r).numLayers, 16);
});

test('custom layer-wise-scaled configs inherit OpenELM\'s config fields', () => {
  const r = parseRecipe(withKey(BASE, 'model.config', { num_transformer_layers: 4, model_dim: 64, head_dim: 16, num_gqa_groups: 2, ffn_dim_divisor: 32 }), FILE);
  const c = recipeModelConfig(r);
  assert.deepEqual(c.numQueryHeads, [2, 4, 4, 4]);
  assert.deepEqual(c.ffnDims, [32, 128, 192, 256]);
  assert.equal(c.vocabSize, 32000);
  assert.equal(c.tiedEmbeddings, true);
  const bad = parseRecipe(withKey(BASE, 'model.config', { num_transformer_layers: 2, model_dim: 32, head_dim: 7 }), FILE);
  assert.throws(() => recipeModelConfig(bad), /recipe\.model\.config: head_dim must be even/);
});

test('wrong types and unknown keys: one error naming the key path', () => {
  const cases: [string, unknown, RegExp][] = [
    ['optimizer.betas', [0.9, '0.95'], /^.*r\.yaml: recipe\.optimizer\.betas\[1\] must be a number, got "0\.95"$/],
    ['optimizer.betas', [0.9], /recipe\.optimizer\.betas must be a list of 2 values/],
    ['optimizer.betas', [0.9, 1.5], /recipe\.optimizer\.betas\[1\] must be < 1/],
    ['optimizer.beta', 0.9, /unknown key recipe\.optimizer\.beta \(allowed: lr, betas, eps, weight_decay\)/],
    ['steps', 2.5, /recipe\.steps must be an integer, got 2\.5/],
    ['steps', 0, /recipe\.steps must be >= 1/],
    ['seq_len', '128', /recipe\.seq_len must be an integer, got "128"/],
    ['pipeline.mode', 'packed', /recipe\.pipeline\.mode must be one of pack, pad, got "packed"/],
    ['pipeline.shuffle', 'yes', /recipe\.pipeline\.shuffle must be true or false/],
    ['schedule.type', 'linear', /recipe\.schedule\.type must be one of cosine, constant/],
    ['data.train', [], /recipe\.data\.train must have at least 1 entry/],
    ['data.train', [{ path: 'a.txt', format: 'csv' }], /recipe\.data\.train\[0\]\.format must be one of text, jsonl, parquet, tokens/],
    ['data.train', [{ path: 'a.txt', weight: -1 }], /recipe\.data\.train\[0\]\.weight must be > 0/],
    ['data.train', [{ path: 'a.csv' }], /recipe\.data\.train\[0\]\.format is required: cannot tell the format of a\.csv/],
    ['data.train', [{ paths: 'a.txt' }], /unknown key recipe\.data\.train\[0\]\.paths/],
    ['data.train', [{ path: 'a.txt', text_key: 'x' }], /recipe\.data\.train\[0\]\.text_key only applies to jsonl and parquet/],
    ['data.valid_fraction', 1, /recipe\.data\.valid_fraction must be < 1/],
    ['warmup', 5, /unknown key recipe\.warmup/],
    ['model', { preset: 'OpenELM-270M', init: 'x' }, /recipe\.model needs exactly one of init, preset, config \(got init and preset\)/],
    ['model', { preset: 'OpenELM-9B' }, /recipe\.model\.preset: unknown preset "OpenELM-9B"/],
    ['sample', { max_tokens: 3 }, /recipe\.sample\.prompt is required/],
    ['eval_every', 5, /recipe\.eval_every needs validation data/],
    ['schedule', { warmup_steps: 20 }, /recipe\.schedule\.warmup_steps \(20\) is larger than recipe\.steps \(10\)/],
  ];
  for (const [k, v, re] of cases) assert.match(err(withKey(BASE, k, v)), re, `${k} = ${JSON.stringify(v)}`);
  const { optimizer: _o, ...noLr } = BASE;
  assert.match(err(noLr), /recipe\.optimizer\.lr is required/);
  const { model: _m, ...noModel } = BASE;
  assert.match(err(noModel), /recipe\.model is required/);
  assert.match(err([1, 2]), /the recipe must be a mapping/);
  assert.match(err({ ...BASE, data: { valid: [{ path: 'v.txt' }] } }), /recipe\.data\.train is required/);
});

test('YAML and JSON files; syntax errors name the file', () => {
  const y = path.join(tmp, 'ok.yaml');
  fs.writeFileSync(y, 'model:\n  preset: OpenELM-450M\ndata:\n  train:\n    - {path: data/*.jsonl.gz, text_key: body, weight: 2}\n  valid_fraction: 0.01\nsteps: 100\nschedule: {warmup_steps: 10}\n');
  const r = loadRecipe(y);
  assert.equal(r.data.train[0].format, 'jsonl');
  assert.equal(r.data.train[0].textKey, 'body');
  assert.equal(r.data.train[0].weight, 2);
  assert.equal(r.evalEvery, r.checkpointEvery);
  const j = path.join(tmp, 'ok.json');
  fs.writeFileSync(j, JSON.stringify(BASE));
  assert.equal(loadRecipe(j).steps, 10);
  const bad = path.join(tmp, 'bad.yaml');
  fs.writeFileSync(bad, 'model:\n  preset: [unclosed\n');
  assert.throws(() => loadRecipe(bad), /bad\.yaml is not valid YAML/);
  fs.writeFileSync(bad, 'steps: 1\nsteps: 2\n');
  assert.throws(() => loadRecipe(bad), /bad\.yaml is not valid YAML.*unique/);
  const badJson = path.join(tmp, 'bad.json');
  fs.writeFileSync(badJson, '{"steps": 1,}');
  assert.throws(() => loadRecipe(badJson), /bad\.json is not valid JSON/);
  assert.throws(() => loadRecipe(path.join(tmp, 'missing.yaml')), /recipe file .*missing\.yaml does not exist/);
});

test('resume compatibility: only settings that do not change the numbers may differ', () => {
  const a = parseRecipe(BASE, FILE).canonical;
  assert.deepEqual(recipeDifferences(a, parseRecipe({ ...BASE, log_every: 3, steps: 20, checkpoint_every: 2 }, FILE).canonical), []);
  assert.deepEqual(recipeDifferences(a, parseRecipe({ ...BASE, optimizer: { lr: 2e-3 } }, FILE).canonical), ['recipe.optimizer.lr', 'recipe.schedule.min_lr']);
  assert.deepEqual(recipeDifferences(a, parseRecipe({ ...BASE, seed: 5 }, FILE).canonical), ['recipe.seed', 'recipe.pipeline.seed']);
});

test('the shipped recipes parse', () => {
  const dir = new URL('../../recipes/', import.meta.url);
  const files = fs.readdirSync(dir).filter((f) => /\.(ya?ml|json)$/.test(f));
  assert.ok(files.includes('quickstart.yaml') && files.includes('test-tiny.yaml'));
  for (const f of files) {
    const r = loadRecipe(path.join(dir.pathname, f));
    assert.ok(r.steps > 0 || (r.epochs ?? 0) > 0, f);
    // Recipes that start from another run (whose checkpoints may not exist yet) have no config to read here;
    // Apple's hub models have their presets' geometry.
    const init = r.model.init;
    if (init === undefined || isHubModelId(init) || (fs.existsSync(init) && !isRunFolder(init))) recipeModelConfig(r);
  }
});
