// In-loop evaluation (recipe eval_tasks): the scores logged during training equal `openelm eval` on
// the checkpoint of the same step, evaluation does not change the training numbers, and bad
// eval_tasks keys fail with one line naming the key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseRecipe } from '../src/train/recipe.js';
import { createTrainableModel, recipeModelConfig, train } from '../src/train/trainer.js';
import { InLoopEval } from '../src/train/inloop-eval.js';
import { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import { defaultDataDir } from '../src/eval/data-dir.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import type { MetricLine } from '../src/train/report.js';
// Train on the backend `openelm eval` picks (WASM where it loads), so the two evaluations can be compared bit for bit.
import '../src/platform/node.js';
import { runCli } from './helpers/cli.js';
import { tempDir, tinyRecipe } from './helpers/tiny-recipe.js';

const tmp = tempDir('openelm-inloop-');
const quiet = { log: () => undefined };
const metricsOf = (dir: string) => fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as MetricLine);
const TASKS = ['arc_easy', 'piqa', 'lambada_openai', 'winogrande'];

test('in-loop evaluation equals `openelm eval` on the checkpoint of the same step', async () => {
  const r = tinyRecipe(tmp, { keep_checkpoints: 3, eval_tasks: { tasks: TASKS, limit: 12, every: 4, batch_size: 4 } });
  const logs: string[] = [];
  await train({ recipe: r, log: (l) => logs.push(l) });
  const ms = metricsOf(r.outDir);
  assert.deepEqual(ms.filter((m) => m.eval).map((m) => m.step), [4, 8]);
  assert.ok(logs.some((l) => /^step 4\/8 {2}eval: arc_easy acc_norm \d\.\d{4}, piqa acc_norm/.test(l)), logs.join('\n'));
  const scores: Record<number, Record<string, Record<string, number>>> = {};
  for (const step of [4, 8]) {
    const ck = path.join(r.outDir, `step-0000000${step}`);
    const res = runCli(['eval', '--model', ck, '--tasks', TASKS.join(','), '--limit', '12', '--batch-size', '4', '--json'], { timeoutMs: 300_000 });
    assert.equal(res.status, 0, res.stderr);
    const cli = JSON.parse(res.stdout).results as Record<string, Record<string, unknown>>;
    const inLoop = ms.find((m) => m.step === step)!.eval!;
    assert.deepEqual(Object.keys(inLoop).sort(), Object.keys(cli).sort());
    for (const [task, want] of Object.entries(cli)) {
      const numeric = Object.fromEntries(Object.entries(want).filter(([k, v]) => typeof v === 'number' && k !== 'num_fewshot'));
      assert.deepEqual(inLoop[task], numeric, `${task} at step ${step}`);
    }
    scores[step] = inLoop;
  }
  // The comparison can fail: the two steps' weights give different log-likelihoods.
  assert.notEqual(scores[4].lambada_openai.perplexity, scores[8].lambada_openai.perplexity);
  const report = fs.readFileSync(path.join(r.outDir, 'report.html'), 'utf8');
  for (const h of ['In-loop evaluation', 'arc_easy acc_norm', 'piqa acc', 'lambada_openai perplexity', 'winogrande acc']) assert.ok(report.includes(h), h);
});

test('training numbers are the same with and without in-loop evaluation', async () => {
  const a = tinyRecipe(tmp);
  const b = tinyRecipe(tmp, { eval_tasks: { tasks: ['piqa'], limit: 5, every: 2 } });
  await train({ recipe: a, ...quiet });
  await train({ recipe: b, ...quiet });
  const strip = (ms: MetricLine[]) => ms.map(({ tokens_per_s: _t, eval: _e, ...rest }) => rest);
  assert.deepEqual(strip(metricsOf(b.outDir)), strip(metricsOf(a.outDir)));
  assert.deepEqual(metricsOf(b.outDir).filter((m) => m.eval).map((m) => m.step), [2, 4, 6, 8]);
  const wa = fs.readFileSync(path.join(a.outDir, 'step-00000008', 'model.safetensors'));
  const wb = fs.readFileSync(path.join(b.outDir, 'step-00000008', 'model.safetensors'));
  assert.ok(wa.equals(wb));
});

test('eval_tasks: defaults, per-key errors, and a resume may change it', async () => {
  const file = path.join(tmp, 'r.yaml');
  const base = { model: { config: { num_transformer_layers: 2, model_dim: 32, head_dim: 8 } }, data: { train: [{ path: 'c.txt' }], valid_fraction: 0.1 }, seq_len: 16, batch_size: 2, steps: 10, optimizer: { lr: 1e-3 }, checkpoint_every: 5 };
  const r = parseRecipe({ ...base, eval_tasks: { tasks: ['arc_easy', 'hellaswag:10'] } }, file);
  assert.deepEqual(r.evalTasks?.tasks, [{ name: 'arc_easy', numFewshot: undefined }, { name: 'hellaswag', numFewshot: 10 }]);
  assert.equal(r.evalTasks?.every, 5, 'every defaults to eval_every');
  assert.equal(r.evalTasks?.batchSize, 8);
  assert.equal(r.evalTasks?.numFewshot, 0);
  assert.equal(r.evalTasks?.limit, undefined);
  assert.match(r.evalTasks!.dataDir, /data[/\\]eval[/\\]?$/);
  const err = (e: unknown) => { try { parseRecipe({ ...base, eval_tasks: e }, file); } catch (x) { return (x as Error).message; } return 'no error'; };
  assert.match(err({ tasks: ['arc_easy', 'nope'] }), /recipe\.eval_tasks\.tasks\[1\]: unknown task "nope"/);
  assert.match(err({ tasks: ['arc easy'] }), /recipe\.eval_tasks\.tasks\[0\]: cannot read "arc easy"/);
  assert.match(err({ tasks: [] }), /recipe\.eval_tasks\.tasks must have at least 1 entry/);
  assert.match(err({ limit: 5 }), /recipe\.eval_tasks\.tasks is required/);
  assert.match(err({ tasks: ['piqa'], every: 0 }), /recipe\.eval_tasks\.every must be >= 1/);
  assert.match(err({ tasks: ['piqa'], limit: -1 }), /recipe\.eval_tasks\.limit must be > 0/);
  assert.match(err({ tasks: ['piqa'], shots: 1 }), /unknown key recipe\.eval_tasks\.shots/);
  assert.throws(() => parseRecipe({ ...base, peft: { r: 4 }, eval_tasks: { tasks: ['piqa'] } }, file), /recipe\.eval_tasks does not work with recipe\.peft/);

  // Missing task data stops the run before the model is built, naming the file.
  const missing = tinyRecipe(tmp, { eval_tasks: { tasks: ['piqa'], data_dir: 'no-such-dir' } });
  await assert.rejects(train({ recipe: missing, ...quiet }), /no-such-dir/);
  assert.ok(!fs.existsSync(missing.outDir));

  // eval_tasks does not change the training numbers, so a resume may add or drop it.
  const c = tinyRecipe(tmp, { steps: 8 });
  await train({ recipe: c, stopAfter: 4, ...quiet });
  const withTasks = parseRecipe({ ...JSON.parse(fs.readFileSync(c.file, 'utf8')), eval_tasks: { tasks: ['piqa'], limit: 3 } }, c.file);
  const res = await train({ recipe: withTasks, resume: true, ...quiet });
  assert.equal(res.status, 'done');
  assert.ok(metricsOf(c.outDir).find((m) => m.step === 8)?.eval?.piqa);
});

test('repeated in-loop evaluations give their memory back (WASM backend)', async () => {
  const r = tinyRecipe(tmp);
  const config = recipeModelConfig(r);
  const { model, backend } = await createTrainableModel(config, { recompute: false, threads: 2 });
  try {
    assert.ok(backend instanceof WasmBackend, backend.describe());
    const ev = new InLoopEval({ tasks: [{ name: 'piqa' }, { name: 'lambada_openai' }], limit: 6, every: 1, numFewshot: 0, batchSize: 4, dataDir: defaultDataDir() }, model, loadTokenizer());
    const first = await ev.run();
    const inUse = backend.memory().inUse;
    for (let i = 0; i < 3; i++) assert.deepEqual(await ev.run(), first, 'same weights, same scores');
    assert.equal(backend.memory().inUse, inUse);
  } finally {
    backend?.dispose();
  }
});
