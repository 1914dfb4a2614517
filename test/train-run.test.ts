// End-to-end training runs on a tiny model: metrics and report, checkpoints loadable by
// `openelm generate`, bit-identical resumption, and the failure paths (NaN loss, a failing
// checkpoint write, Ctrl-C, bad input).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { OpenELMError } from '../src/core/errors.js';
import { parseRecipe, type Recipe } from '../src/train/recipe.js';
import { train, type TrainOptions } from '../src/train/trainer.js';
import { SHAKES, tempDir, tinyRecipe } from './helpers/tiny-recipe.js';
import { interruptTrain } from './helpers/interrupt-train.js';
import type { MetricLine } from '../src/train/report.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const tmp = tempDir('openelm-train-run-');
/** A tiny recipe (2 layers, dim 32) in its own folder; `over` replaces top-level keys. */
const recipe = (over: Record<string, unknown> = {}): Recipe => tinyRecipe(tmp, over);

const quiet: Pick<TrainOptions, 'log'> = { log: () => undefined };

function metrics(r: Recipe): MetricLine[] {
  return fs.readFileSync(path.join(r.outDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as MetricLine);
}
const withoutSpeed = (ms: MetricLine[]) => ms.map(({ tokens_per_s: _t, ...rest }) => rest);

test('a run writes metrics.jsonl, a report, and HF checkpoints that `openelm generate` loads', async () => {
  const r = recipe();
  const res = await train({ recipe: r, ...quiet });
  assert.equal(res.status, 'done');
  assert.equal(res.step, 8);
  const ms = metrics(r);
  assert.deepEqual(ms.map((m) => m.step), [1, 2, 4, 6, 8]);
  for (const m of ms) {
    const keys = Object.keys(m);
    assert.deepEqual(keys.slice(0, 6), ['step', 'loss', 'lr', 'grad_norm', 'tokens', 'tokens_per_s']);
    assert.ok(keys.length === 6 || (keys.length === 7 && keys[6] === 'val_loss'));
    assert.ok(Number.isFinite(m.loss) && m.loss > 0 && m.lr > 0 && m.grad_norm > 0 && m.tokens_per_s > 0);
  }
  assert.deepEqual(ms.filter((m) => m.val_loss !== undefined).map((m) => m.step), [4, 8]);
  assert.equal(ms[ms.length - 1].tokens, 8 * 2 * 2 * 16, 'pack mode: every target counts');
  assert.ok(ms[0].loss > 10 && ms[0].loss < 11, `initial loss ≈ ln(32000): ${ms[0].loss}`);

  const report = fs.readFileSync(path.join(r.outDir, 'report.html'), 'utf8');
  assert.match(report, /<svg[\s\S]*polyline/);
  assert.match(report, /finished: 8 steps/);

  const ckpt = path.join(r.outDir, 'step-00000008');
  assert.equal(res.checkpoint, ckpt);
  assert.equal(fs.readFileSync(path.join(r.outDir, 'latest'), 'utf8').trim(), 'step-00000008');
  assert.deepEqual(fs.readdirSync(ckpt).sort(), ['config.json', 'data_state.safetensors', 'manifest.json', 'model.safetensors', 'optimizer.safetensors', 'trainer_state.json']);
  assert.ok(fs.existsSync(path.join(r.outDir, 'step-00000004')), 'keep_checkpoints defaults to 2');
  const cfg = JSON.parse(fs.readFileSync(path.join(ckpt, 'config.json'), 'utf8'));
  assert.deepEqual(cfg.num_query_heads, [2, 4]);

  const g = spawnSync(process.execPath, [CLI, 'generate', '--model', ckpt, '--prompt', 'ROMEO:', '--max-tokens', '5', '--ignore-eos', '--json', '--backend', 'js'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(g.status, 0, g.stderr);
  const out = JSON.parse(g.stdout);
  assert.equal(out.ids.length, 5);
});

test('resume is bit-identical: stop at N/2, resume to N == the uninterrupted run', async () => {
  const a = recipe({ steps: 10, checkpoint_every: 3, log_every: 1, eval_every: 5 });
  await train({ recipe: a, ...quiet });
  const b = recipe({ steps: 10, checkpoint_every: 3, log_every: 1, eval_every: 5 });
  const first = await train({ recipe: b, stopAfter: 5, ...quiet });
  assert.equal(first.status, 'stopped');
  assert.equal(first.checkpoint, path.join(b.outDir, 'step-00000005'));
  const second = await train({ recipe: b, resume: true, ...quiet });
  assert.equal(second.status, 'done');
  assert.deepEqual(withoutSpeed(metrics(b)), withoutSpeed(metrics(a)));
  // the final weights are identical too
  const wa = fs.readFileSync(path.join(a.outDir, 'step-00000010', 'model.safetensors'));
  const wb = fs.readFileSync(path.join(b.outDir, 'step-00000010', 'model.safetensors'));
  assert.ok(wa.equals(wb));
});

test('a crash after the last checkpoint: resume drops the lost steps\' metrics and replays them identically', async () => {
  const over = { steps: 9, checkpoint_every: 4, log_every: 1, eval_every: 3, pipeline: { mode: 'pad', split_words: 8, min_chars: 20, min_tokens: 8, shuffle_buffer: 8 } };
  const a = recipe(over);
  await train({ recipe: a, ...quiet });
  const b = recipe(over);
  await train({ recipe: b, stopAfter: 7, ...quiet });
  // Simulate a crash after step 7 was logged but before its checkpoint existed.
  fs.rmSync(path.join(b.outDir, 'step-00000007'), { recursive: true });
  fs.writeFileSync(path.join(b.outDir, 'latest'), 'step-00000004\n');
  fs.mkdirSync(path.join(b.outDir, '.tmp-step-00000008-1-x'));   // a half-written checkpoint
  assert.equal(metrics(b).length, 7);
  const logs: string[] = [];
  await train({ recipe: b, resume: true, log: (l) => logs.push(l) });
  assert.ok(logs.some((l) => l.includes('resumed from') && l.includes('step-00000004')));
  assert.deepEqual(withoutSpeed(metrics(b)), withoutSpeed(metrics(a)));
  assert.ok(!fs.readdirSync(b.outDir).some((f) => f.startsWith('.tmp-')), 'stale temporary checkpoint removed');
  // pad mode really pads: fewer loss-bearing tokens than slots
  assert.ok(metrics(a)[8].tokens < 9 * 2 * 2 * 16);
});

test('a NaN loss stops the run, names the step, and keeps the last good checkpoint', async () => {
  const r = recipe({ optimizer: { lr: 1e30 }, schedule: { type: 'constant' }, steps: 20, checkpoint_every: 1, eval_every: 0, data: { train: [{ path: SHAKES }] } });
  let caught: unknown;
  try { await train({ recipe: r, ...quiet }); } catch (e) { caught = e; }
  assert.ok(caught instanceof OpenELMError, String(caught));
  const m = /became (NaN|-?Infinity) at step (\d+)/.exec((caught as Error).message);
  assert.ok(m, (caught as Error).message);
  const bad = Number(m[2]);
  const last = path.join(r.outDir, `step-${String(bad - 1).padStart(8, '0')}`);
  assert.match((caught as Error).message, new RegExp(`last good checkpoint is ${last.replace(/[.\\]/g, '\\$&')}`));
  assert.equal(fs.readFileSync(path.join(r.outDir, 'latest'), 'utf8').trim(), path.basename(last));
  assert.ok(!fs.existsSync(path.join(r.outDir, `step-${String(bad).padStart(8, '0')}`)));
});

test('a failing checkpoint write (disk full) leaves no partial checkpoint and the previous one intact', async () => {
  const r = recipe({ steps: 6, checkpoint_every: 2, eval_every: 0, data: { train: [{ path: SHAKES }] } });
  const hooks = {
    afterFile: (f: string) => {
      if (f.includes('step-00000004') && f.endsWith('optimizer.safetensors')) {
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      }
    },
  };
  await assert.rejects(train({ recipe: r, hooks, ...quiet }), (e: Error) => {
    assert.ok(e instanceof OpenELMError);
    assert.match(e.message, /could not write the checkpoint for step 4 \(the disk is full\).*step-00000002 is unchanged/);
    return true;
  });
  assert.deepEqual(fs.readdirSync(r.outDir).filter((f) => f.startsWith('step-') || f.startsWith('.tmp')), ['step-00000002']);
  assert.equal(fs.readFileSync(path.join(r.outDir, 'latest'), 'utf8').trim(), 'step-00000002');
  // and the run can go on from there
  const res = await train({ recipe: r, resume: true, ...quiet });
  assert.equal(res.status, 'done');
});

test('bad input: missing data, empty corpus, existing run without --resume, changed recipe', async () => {
  const missing = recipe({ data: { train: [{ path: 'nope/missing.txt' }] }, eval_every: 0 });
  await assert.rejects(train({ recipe: missing, ...quiet }), /recipe\.data\.train\[0\]\.path: data file .*missing\.txt does not exist/);

  const empty = recipe({ pipeline: { mode: 'pad', min_chars: 100000, split_words: 2048 }, data: { train: [{ path: SHAKES }] }, eval_every: 0 });
  await assert.rejects(train({ recipe: empty, ...quiet }), /no chunk survived the filters.*fewer than min_chars = 100000/);

  const r = recipe({ steps: 2, eval_every: 0, data: { train: [{ path: SHAKES }] } });
  await train({ recipe: r, ...quiet });
  await assert.rejects(train({ recipe: r, ...quiet }), /already holds checkpoints.*--resume/);
  const changed = parseRecipe({ ...JSON.parse(fs.readFileSync(r.file, 'utf8')), optimizer: { lr: 1e-2 } }, r.file);
  await assert.rejects(train({ recipe: changed, resume: true, ...quiet }), /recipe changed since .*recipe\.optimizer\.lr/);
});

test('corrupt JSONL lines are skipped and reported at the end with file:line', async () => {
  const dir = path.join(tmp, 'jsonl');
  fs.mkdirSync(dir);
  const text = fs.readFileSync(SHAKES, 'utf8').slice(0, 40000).split('\n\n');
  const lines = text.map((t) => JSON.stringify({ text: t }));
  lines.splice(3, 0, '{"text": broken');
  fs.writeFileSync(path.join(dir, 'd.jsonl'), lines.join('\n'));
  const r = recipe({ steps: 2, eval_every: 0, data: { train: [{ path: path.join(dir, 'd.jsonl') }] }, pipeline: { mode: 'pack', min_chars: 0, min_tokens: 0 } });
  const logs: string[] = [];
  await train({ recipe: r, log: (l) => logs.push(l) });
  assert.ok(logs.some((l) => /1 corrupt line skipped \(first: .*d\.jsonl:4: invalid JSON/.test(l)), logs.join('\n'));
});

test('SIGINT finishes the step, writes a checkpoint, exits cleanly and says how to resume', async () => {
  const r = recipe({ steps: 100000, log_every: 1, eval_every: 0, checkpoint_every: 100000, data: { train: [{ path: SHAKES }] } });
  const { stderr, step, checkpoint } = await interruptTrain(r.file, 3);
  assert.match(stderr, /SIGINT received: finishing the current step/);
  const state = JSON.parse(fs.readFileSync(path.join(checkpoint, 'trainer_state.json'), 'utf8'));
  assert.equal(state.step, step);
  assert.match(stderr, /--resume/);
});
