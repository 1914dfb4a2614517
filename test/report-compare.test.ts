// `openelm report`: several runs on one page with a table of final figures, CoreNet logs overlaid
// (the fixture was printed by CoreNet's own logger, tools/corenet_log_fixture.py), and the CLI's
// errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseCorenetLog } from '../src/formats/corenet-log.js';
import { readRun, renderComparison, tailLoss } from '../src/train/compare.js';
import { train } from '../src/train/trainer.js';
import type { MetricLine } from '../src/train/report.js';
import { runCli } from './helpers/cli.js';
import { REPO, tempDir, tinyRecipe } from './helpers/tiny-recipe.js';

const tmp = tempDir('openelm-report-');
const quiet = { log: () => undefined };
const CORENET_LOG = path.join(REPO, 'test/fixtures/corenet/training_logs.txt');

test('a CoreNet training log parses: iteration summaries, loss components, LR, validation summaries', () => {
  const log = parseCorenetLog(fs.readFileSync(CORENET_LOG, 'utf8'));
  assert.deepEqual(log.train.map((p) => p.step), Array.from({ length: 20 }, (_, i) => 1 + 100 * i), 'validation iteration lines are not training points');
  assert.deepEqual(log.train[0], { epoch: 0, step: 1, maxSteps: 2000, loss: 10.5444, losses: { total_loss: 10.5444, ce_loss: 10.4, z_loss: 0.1444 }, lr: 1e-6, elapsed: 0 });
  assert.equal(log.train[2].lr, 0.005268);
  assert.ok(log.train.every((p) => p.loss === p.losses.total_loss && Math.abs(p.losses.ce_loss + p.losses.z_loss - p.loss) < 2e-4));
  assert.deepEqual(log.val.map((v) => [v.step, v.loss]), [[1000, 2.9755], [2000, 3.0402]]);

  // The other shapes CoreNet prints: a plain loss, grad_norm, a single LR, no colour codes.
  const plain = parseCorenetLog('2024-04-01 10:00:00 - LOGS    - Epoch:   2 [     500/  350000], loss: 3.25, grad_norm: 0.8123, LR: 0.005300, Avg. batch load time: 0.010, Elapsed time: 120.50\n');
  assert.deepEqual(plain.train, [{ epoch: 2, step: 500, maxSteps: 350000, loss: 3.25, losses: { total_loss: 3.25 }, lr: 0.0053, gradNorm: 0.8123, elapsed: 120.5 }]);
  assert.throws(() => parseCorenetLog('not a log\n', 'x.txt'), /x\.txt: no CoreNet training lines found/);
});

test('renderComparison overlays several runs, in-loop eval and a CoreNet log, with a table of final figures', async () => {
  const runs = [];
  for (const seed of [1, 2, 3]) {
    const r = tinyRecipe(tmp, { seed, steps: 8, ...(seed === 3 ? { eval_tasks: { tasks: ['piqa'], limit: 4, every: 4 } } : {}) }, `seed${seed}`);
    await train({ recipe: r, ...quiet });
    runs.push(readRun(r.outDir));
  }
  runs.forEach((r, i) => { r.name = `seed${i + 1}`; });
  // 32000·32 embedding + layer 0 (qkv 4·8·32, out 32·16, FFN 3·32·32, norms 80) + layer 1 (8·8·32, 32·32, 3·128·32, 80) + 32
  assert.equal(runs[0].params, 1_024_000 + 4688 + 15440 + 32);
  assert.deepEqual(runs[0].heads, [2, 4]);
  assert.equal(runs[1].seed, 2);
  assert.ok(runs[0].trainMs! > 0);

  const log = parseCorenetLog(fs.readFileSync(CORENET_LOG, 'utf8'));
  const html = renderComparison(runs, { against: [{ name: 'training_logs.txt', log, tokensPerStep: 64 }] });
  for (const r of runs) {
    assert.ok(html.includes(`${r.name}</td>`), r.name);
    const ms = r.metrics;
    const vals = ms.filter((m) => m.val_loss !== undefined);
    assert.ok(html.includes(`<td>${ms[ms.length - 1].loss.toFixed(4)}</td>`), 'final loss in the table');
    assert.ok(html.includes(`<td>${vals[vals.length - 1].val_loss!.toFixed(4)}</td>`), 'final val loss in the table');
  }
  assert.match(html, /3\.6071 \(running mean\)/, 'CoreNet row');
  for (const h of ['Training loss', 'Validation loss', 'Learning rate', 'Throughput', 'Gradient norm', 'In-loop evaluation', 'piqa acc_norm']) assert.ok(html.includes(h), h);
  // One training-loss line per run plus the CoreNet log (dashed), on the first chart.
  const firstChart = html.slice(html.indexOf('<h2>Training loss'), html.indexOf('<h2>Validation loss'));
  assert.equal(firstChart.match(/<polyline/g)?.length, 4);
  assert.equal(firstChart.match(/stroke-dasharray="6 3"/g)?.length, 1);
  assert.doesNotMatch(html, /<script|NaN|undefined/);
});

test('tailLoss weights each metrics line by the steps it covers', () => {
  const m = (step: number, loss: number) => ({ step, loss, lr: 0, grad_norm: 0, tokens: step, tokens_per_s: 1 }) as MetricLine;
  assert.equal(tailLoss([m(1, 9), m(10, 5), m(20, 3)], 0.5), 3);
  assert.equal(tailLoss([m(1, 9), m(10, 5), m(20, 3)], 0.6), (5 * 9 + 3 * 10) / 19);
  assert.equal(tailLoss([]), undefined);
});

test('openelm report: writes the page; names the folder or flag at fault', async () => {
  const a = tinyRecipe(tmp, { steps: 4, eval_every: 2 }, 'cli-a');
  const b = tinyRecipe(tmp, { steps: 4, eval_every: 2, seed: 9 }, 'cli-b');
  await train({ recipe: a, ...quiet });
  await train({ recipe: b, ...quiet });
  const out = path.join(tmp, 'cmp', 'report.html');
  const ok = runCli(['report', a.outDir, b.outDir, '--against', CORENET_LOG, '--x', 'step', '--out', out]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stderr, /wrote .*report\.html: 2 runs \+ 1 CoreNet log/);
  const html = fs.readFileSync(out, 'utf8');
  assert.ok(html.includes('cli-a/out') && html.includes('cli-b/out'), 'two folders named out are told apart by path');

  const none = runCli(['report', '--out', out]);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /^openelm report: name at least one run folder/);
  const missing = runCli(['report', path.join(tmp, 'nope'), '--out', out]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /run folder .*nope does not exist\n$/);
  const notRun = runCli(['report', tmp, '--out', out]);
  assert.match(notRun.stderr, /has no metrics\.jsonl \(is it a training out_dir\?\)/);
  const badLog = runCli(['report', a.outDir, '--against', a.file, '--out', out]);
  assert.equal(badLog.status, 1);
  assert.match(badLog.stderr, /recipe\.yaml: no CoreNet training lines found/);
  const self = runCli(['report', a.outDir, '--out', path.join(a.outDir, 'metrics.jsonl')]);
  assert.match(self.stderr, /would replace its own input/);
  assert.doesNotMatch([none, missing, notRun, badLog, self].map((r) => r.stderr).join(''), /at .*\.js:\d+/);
});
