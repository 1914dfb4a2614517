// Recipe keys of instruction tuning (task: sft | dpo): defaults, per-key errors, epochs → steps,
// warm-up ratios, the HF cosine schedule, and the shipped OpenELM-Instruct presets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isHubModelId, loadRecipe, parseRecipe, recipeDifferences, resolveRunLength } from '../src/train/recipe.js';
import { hfCosineSchedule } from '../src/train/schedule.js';
import { makeSchedule } from '../src/train/trainer.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-recipe-instruct-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const FILE = path.join(tmp, 'r.yaml');
const RECIPES = fileURLToPath(new URL('../../recipes/', import.meta.url));

/** `obj` without `key` (a key set to undefined would read as a key without a value). */
function without(obj: Record<string, unknown>, key: string): Record<string, unknown> {
  const { [key]: _drop, ...rest } = obj;
  return rest;
}

const SFT: Record<string, unknown> = { task: 'sft', model: { init: 'base' }, data: { train: [{ path: 'chat.jsonl' }] }, batch_size: 4, steps: 10, optimizer: { lr: 2e-5 } };
const DPO = { ...SFT, task: 'dpo', data: { train: [{ path: 'pairs.jsonl' }] } };

function err(raw: unknown): string {
  try { parseRecipe(raw, FILE); } catch (e) { return (e as Error).message; }
  assert.fail('expected an error');
}

test('sft and dpo recipes get HF TrainingArguments / TRL defaults, not CoreNet pretraining ones', () => {
  const s = parseRecipe(SFT, FILE);
  assert.equal(s.task, 'sft');
  assert.equal(s.maxLength, 1024);
  assert.equal(s.seqLen, 1023);
  assert.equal(s.maskPrompt, true);
  assert.deepEqual(s.optimizer, { lr: 2e-5, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 });
  assert.deepEqual(s.schedule, { type: 'hf_cosine', warmupSteps: 0, warmupInitLr: 0, minLr: 0 });
  assert.equal(s.zLoss, 0);
  assert.equal(s.clipGradNorm, 1);
  assert.equal(s.pipeline.shuffle, true);
  assert.equal(s.data.train[0].format, 'jsonl');
  assert.equal(s.data.train[0].textKey, undefined);
  assert.equal(s.dpo, undefined);
  const d = parseRecipe({ ...DPO, dpo: { loss_type: 'hinge', beta: 0.01 } }, FILE);
  assert.equal(d.maxPromptLength, 512);
  assert.deepEqual(d.dpo, { beta: 0.01, lossType: 'hinge', labelSmoothing: 0, reference: undefined });
  assert.deepEqual(parseRecipe(DPO, FILE).dpo, { beta: 0.1, lossType: 'sigmoid', labelSmoothing: 0, reference: undefined });
  assert.equal(parseRecipe({ ...DPO, dpo: { reference: '../ref' } }, FILE).dpo!.reference, path.resolve(tmp, '../ref'));
  assert.equal(parseRecipe(BASE_PRETRAIN, FILE).task, 'pretrain');
});

const BASE_PRETRAIN = { model: { config: { num_transformer_layers: 2 } }, data: { train: [{ path: 'c.txt' }] }, seq_len: 16, batch_size: 2, steps: 10, optimizer: { lr: 1e-3 } };

test('keys that belong to another task are one error naming the key and the task', () => {
  assert.match(err({ ...BASE_PRETRAIN, max_length: 512 }), /recipe\.max_length applies to tasks sft and dpo \(this recipe pretrains; set task: sft or dpo\)/);
  assert.match(err({ ...BASE_PRETRAIN, dpo: { beta: 0.1 } }), /recipe\.dpo applies to task dpo/);
  assert.match(err({ ...SFT, seq_len: 512 }), /recipe\.seq_len applies to pretraining; task sft limits examples with max_length/);
  assert.match(err({ ...SFT, max_prompt_length: 64 }), /recipe\.max_prompt_length applies to task dpo, not sft/);
  assert.match(err({ ...SFT, dpo: { beta: 0.1 } }), /recipe\.dpo applies to task dpo, not sft/);
  assert.match(err({ ...DPO, mask_prompt: false }), /recipe\.mask_prompt applies to task sft/);
  assert.match(err({ ...DPO, z_loss: 1e-4 }), /recipe\.z_loss applies to tasks pretrain and sft, not dpo/);
  assert.match(err({ ...SFT, pipeline: { mode: 'pack' } }), /recipe\.pipeline\.mode applies to pretraining; task sft reads one example per JSONL line/);
  assert.match(err({ ...SFT, defaults: '270M' }), /recipe\.defaults .* applies to task pretrain, not sft/);
  assert.match(err({ ...SFT, data: { train: [{ path: 'x.txt', format: 'text' }] } }), /recipe\.data\.train\[0\]\.format must be jsonl for task sft/);
  assert.match(err({ ...DPO, data: { train: [{ path: 'x.jsonl', text_key: 'body' }] } }), /recipe\.data\.train\[0\]\.text_key applies to pretraining; task dpo reads prompt\/chosen\/rejected/);
  assert.match(err({ ...SFT, data: { train: [{ path: 'a.jsonl', weight: 2 }] } }), /recipe\.data\.train\[0\]\.weight applies to pretraining mixtures; task sft uses every example of every source once per epoch/);
  assert.match(err({ ...SFT, task: 'rlhf' }), /recipe\.task must be one of pretrain, sft, dpo, got "rlhf"/);
});

test('dpo block and lengths: types, ranges, label smoothing only for sigmoid, max_prompt_length < max_length', () => {
  assert.match(err({ ...DPO, dpo: { loss_type: 'kto' } }), /recipe\.dpo\.loss_type must be one of sigmoid, hinge, ipo, got "kto"/);
  assert.match(err({ ...DPO, dpo: { beta: 0 } }), /recipe\.dpo\.beta must be > 0, got 0/);
  assert.match(err({ ...DPO, dpo: { label_smoothing: 0.7 } }), /recipe\.dpo\.label_smoothing must be <= 0\.5/);
  assert.match(err({ ...DPO, dpo: { loss_type: 'hinge', label_smoothing: 0.1 } }), /recipe\.dpo\.label_smoothing applies to loss_type sigmoid \(TRL ignores it for hinge\)/);
  assert.match(err({ ...DPO, dpo: { temperature: 1 } }), /unknown key recipe\.dpo\.temperature/);
  assert.match(err({ ...DPO, max_length: 256, max_prompt_length: 256 }), /recipe\.max_prompt_length \(256\) must be smaller than recipe\.max_length \(256\)/);
  assert.match(err({ ...SFT, max_length: 1 }), /recipe\.max_length must be >= 2, got 1/);
  assert.match(err({ ...SFT, mask_prompt: 'no' }), /recipe\.mask_prompt must be true or false/);
  assert.match(err(without(SFT, 'batch_size')), /recipe\.batch_size is required for task sft/);
  assert.match(err({ ...SFT, optimizer: {} }), /recipe\.optimizer\.lr is required for task sft/);
  assert.match(err({ ...DPO, data: {} }), /recipe\.data\.train is required .*: the preference pairs/);
});

test('epochs instead of steps: steps = ceil(epochs · examples / (batch_size · grad_accum)), warm-up ratio rounds up as HF does', () => {
  assert.match(err({ ...SFT, epochs: 2 }), /recipe\.epochs and recipe\.steps exclude each other/);
  assert.match(err(without(SFT, 'steps')), /recipe\.steps or recipe\.epochs is required for task sft/);
  assert.match(err({ ...BASE_PRETRAIN, epochs: 1 }), /recipe\.epochs applies to tasks sft and dpo/);
  const r = parseRecipe({ ...without(SFT, 'steps'), epochs: 5, grad_accum: 2, schedule: { warmup_ratio: 0.1 } }, FILE);
  assert.equal(r.steps, 0, 'unknown until the examples are counted');
  const s = resolveRunLength(r, 1001);
  assert.equal(s.steps, Math.ceil((5 * 1001) / 8));
  assert.equal(s.schedule.warmupSteps, Math.ceil(0.1 * s.steps));
  assert.equal(s.checkpointEvery, Math.min(s.steps, 1000));
  assert.equal(s.canonical.epochs, 5);
  assert.equal(s.canonical.steps, undefined);
  assert.throws(() => resolveRunLength(r, 0), /no usable examples/);
  // with steps, the ratio resolves at once
  const t = parseRecipe({ ...SFT, steps: 25, schedule: { warmup_ratio: 0.1 } }, FILE);
  assert.equal(t.schedule.warmupSteps, 3);
  assert.equal(resolveRunLength(t, 7), t, 'nothing to resolve');
  assert.match(err({ ...SFT, schedule: { warmup_ratio: 0.1, warmup_steps: 3 } }), /warmup_steps and recipe\.schedule\.warmup_ratio exclude each other/);
  assert.match(err({ ...SFT, schedule: { type: 'hf_cosine', min_lr: 1e-6 } }), /recipe\.schedule\.min_lr does not apply to type hf_cosine/);
  assert.match(err({ ...SFT, schedule: { warmup_steps: 11 } }), /recipe\.schedule\.warmup_steps \(11\) is larger than recipe\.steps \(10\)/);
});

test('hf_cosine is transformers\' get_cosine_schedule_with_warmup', () => {
  const s = hfCosineSchedule({ maxLr: 1, warmupSteps: 2, maxSteps: 10 });
  const want = (t: number) => (t < 2 ? t / 2 : Math.max(0, 0.5 * (1 + Math.cos(Math.PI * (t - 2) / 8))));
  for (let t = 0; t <= 10; t++) assert.ok(Math.abs(s.lr(t) - want(t)) < 1e-15, `t=${t}`);
  assert.equal(s.lr(0), 0);
  assert.equal(s.lr(6), 0.5);
  assert.equal(hfCosineSchedule({ maxLr: 2, warmupSteps: 0, maxSteps: 1 }).lr(0), 2);
  const r = parseRecipe({ ...SFT, schedule: { warmup_steps: 2 } }, FILE);
  assert.equal(makeSchedule(r).lr(1), r.optimizer.lr / 2);
});

test('resume comparisons: instruct keys count, epochs may change; pretraining recipes keep their old canonical form', () => {
  const a = parseRecipe({ ...DPO, dpo: { beta: 0.1 } }, FILE).canonical;
  assert.deepEqual(recipeDifferences(a, parseRecipe({ ...DPO, dpo: { beta: 0.2 } }, FILE).canonical), ['recipe.dpo.beta']);
  assert.deepEqual(recipeDifferences(a, parseRecipe({ ...DPO, max_length: 768 }, FILE).canonical), ['recipe.max_length']);
  const e = (n: number) => parseRecipe({ ...without(DPO, 'steps'), epochs: n }, FILE).canonical;
  assert.deepEqual(recipeDifferences(e(1), e(3)), []);
  const p = parseRecipe(BASE_PRETRAIN, FILE).canonical;
  assert.equal(p.task, undefined);
  assert.equal(p.seq_len, 16);
  assert.deepEqual(Object.keys(p.schedule as object), ['type', 'warmup_steps', 'warmup_init_lr', 'min_lr']);
});

test('OpenELM-Instruct presets: Apple\'s per-size DPO settings', () => {
  const want: Record<string, { epochs: number; lr: number; loss: string }> = {
    '270M': { epochs: 5, lr: 2e-5, loss: 'hinge' }, '450M': { epochs: 8, lr: 3e-5, loss: 'hinge' },
    '1_1B': { epochs: 5, lr: 5e-5, loss: 'sigmoid' }, '3B': { epochs: 10, lr: 1e-4, loss: 'hinge' },
  };
  for (const [size, w] of Object.entries(want)) {
    const r = loadRecipe(path.join(RECIPES, `openelm-instruct-${size}.yaml`));
    assert.equal(r.task, 'dpo', size);
    assert.equal(r.epochs, w.epochs, size);
    assert.equal(r.optimizer.lr, w.lr, size);
    assert.equal(r.dpo!.lossType, w.loss, size);
    assert.equal(r.dpo!.beta, 0.01, size);
    assert.equal(r.dpo!.labelSmoothing, 0, size);
    assert.equal(r.maxLength, 1024);
    assert.equal(r.maxPromptLength, 512);
    assert.equal(r.batchSize, 8);
    assert.equal(r.gradAccum, 2);
    assert.deepEqual(r.schedule, { type: 'hf_cosine', warmupSteps: 0, warmupInitLr: 0, minLr: 0, warmupRatio: 0.1 });
    assert.deepEqual(r.optimizer.betas, [0.9, 0.999]);
    assert.equal(r.optimizer.weightDecay, 0);
    assert.equal(r.clipGradNorm, 1);
    assert.equal(r.seed, 42);
    for (const s of [...r.data.train, ...r.data.valid]) assert.ok(fs.existsSync(s.absPaths[0]), `${size}: ${s.absPaths[0]} is in the repository`);
  }
});

test('model.init and dpo.reference: a folder, or a hub id when no such folder exists', () => {
  const h = parseRecipe({ ...DPO, model: { init: 'apple/OpenELM-270M' }, dpo: { reference: 'apple/OpenELM-270M-Instruct' } }, FILE);
  assert.equal(h.model.init, 'apple/OpenELM-270M');
  assert.ok(isHubModelId(h.model.init!));
  assert.equal(h.dpo!.reference, 'apple/OpenELM-270M-Instruct');
  assert.ok(isHubModelId(h.dpo!.reference!));
  assert.deepEqual(h.canonical.model, { init: 'apple/OpenELM-270M' });
  assert.equal((h.canonical.dpo as { reference: string }).reference, 'apple/OpenELM-270M-Instruct');
  fs.mkdirSync(path.join(tmp, 'org', 'name'), { recursive: true });
  const l = parseRecipe({ ...DPO, model: { init: 'org/name' } }, FILE);
  assert.equal(l.model.init, path.join(tmp, 'org', 'name'));
  assert.ok(!isHubModelId(l.model.init!));
  assert.equal(parseRecipe({ ...DPO, model: { init: './apple/x' } }, FILE).model.init, path.join(tmp, 'apple', 'x'));
});
