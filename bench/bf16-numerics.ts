// Mixed-precision numerics at the benchmark's size (too slow for CI; test/train-bf16.test.ts holds
// the small versions):
//   1. the first --steps (4) optimizer steps of the 35.5M bench model (8 layers, width 512, head dim
//      64) at batch 8 × 256 on tinyshakespeare with train.bench.ts's schedule (cosine to 1e-3, 10
//      warm-up steps), fp32 and bf16 from the same weights and batches:
//      per-step loss and gradient norm, and their relative difference (issue bar: 2e-3);
//   2. with --curve: --curve-steps (200) steps at a small learning rate (--curve-lr 1e-4) on
//      --curve-model (35m at batch --curve-batch × 256, or tiny) for fp32, bf16, and bf16 weights
//      (parameters rounded to bf16 after every update, i.e. no f32 master copy): every loss printed.
//
//   node dist/bench/bf16-numerics.js [--steps 4] [--threads 2] [--curve] [--curve-model 35m|tiny]
//        [--curve-steps 200] [--curve-lr 1e-4] [--curve-batch 1]
// Prints one JSON object.

import * as fs from 'node:fs';
import os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveConfig, type OpenELMConfig } from '../src/model/config.js';
import { initParams } from '../src/model/init.js';
import { TrainableModel } from '../src/model/trainable.js';
import { AdamW } from '../src/train/adamw.js';
import { clipGradNorm } from '../src/train/clip.js';
import { cosineSchedule } from '../src/train/schedule.js';
import { createBackend } from '../src/backends/index.js';
import type { MatmulPrecision } from '../src/backends/backend.js';
import { roundToBf16 } from '../src/core/dtype.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import '../src/platform/node.js';
import { MODELS } from './train.bench.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
const threads = Number(arg('threads', '2'));

/** tinyshakespeare as token ids, cut into rows of T+1 (inputs and shifted targets). */
function textRows(T: number): Int32Array[] {
  const tok = loadTokenizer();
  const ids = tok.encode(fs.readFileSync(path.join(repo, 'data/corpus/tinyshakespeare.txt'), 'utf8').slice(0, 400_000));
  const rows: Int32Array[] = [];
  for (let o = 0; o + T + 1 <= ids.length; o += T + 1) rows.push(Int32Array.from(ids.slice(o, o + T + 1)));
  return rows;
}

function batch(rows: Int32Array[], at: number, B: number, T: number): { inputs: Int32Array; targets: Int32Array } {
  const inputs = new Int32Array(B * T), targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const r = rows[(at * B + b) % rows.length];
    inputs.set(r.subarray(0, T), b * T); targets.set(r.subarray(1, T + 1), b * T);
  }
  return { inputs, targets };
}

async function run(config: OpenELMConfig, mode: MatmulPrecision | 'bf16 weights', steps: number, B: number, T: number, lr: (step: number) => number,
  rows: Int32Array[], clip: number): Promise<{ loss: number[]; gradNorm: number[]; seconds: number }> {
  const be = await createBackend('auto', { threads });
  const model = new TrainableModel(config, be, { precision: mode === 'fp32' ? 'fp32' : 'bf16' });
  initParams(config, model.layout, (e, v) => model.setParam(e.name, v), 1);
  const opt = new AdamW(be, model.layout, { reserveBytes: 1.5 * 2 ** 30 });
  const roundWeights = async () => { const p = await be.read(model.params); roundToBf16(p, p, p.length); be.write(model.params, p); };
  if (mode === 'bf16 weights') await roundWeights();
  const loss: number[] = [], gradNorm: number[] = [];
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) {
    const { inputs, targets } = batch(rows, s, B, T);
    model.zeroGrad();
    loss.push((await model.forwardBackward(inputs, targets, B, T, { zLoss: true })).loss);
    gradNorm.push(await clipGradNorm(be, model.grads, clip));
    await opt.update(model.params, model.grads, lr(s));
    if (mode === 'bf16 weights') await roundWeights();
    process.stderr.write(`${mode} step ${s + 1}/${steps}: loss ${loss[s].toFixed(5)}\n`);
  }
  const seconds = (performance.now() - t0) / 1000;
  opt.dispose(); model.dispose(); be.dispose();
  return { loss, gradNorm, seconds };
}

const out: Record<string, unknown> = { bench: 'bf16-numerics', threads, loadavg_start: os.loadavg().map((x) => +x.toFixed(2)) };
const steps = Number(arg('steps', '4'));
{
  const spec = MODELS['35m'];
  const config = resolveConfig(spec.hf);
  const rows = textRows(spec.T);
  const sched = cosineSchedule({ maxLr: 1e-3, minLr: 1e-4, warmupSteps: 10, maxSteps: 1000 });
  const fp32 = await run(config, 'fp32', steps, spec.B, spec.T, (s) => sched.lr(s), rows, 1.0);
  const bf16 = await run(config, 'bf16', steps, spec.B, spec.T, (s) => sched.lr(s), rows, 1.0);
  const rel = fp32.loss.map((l, i) => Math.abs(bf16.loss[i] - l) / Math.abs(l));
  const relNorm = fp32.gradNorm.map((g, i) => Math.abs(bf16.gradNorm[i] - g) / Math.abs(g));
  out.first_steps = {
    model: '35m', batch: spec.B, seq: spec.T, schedule: 'cosine 1e-3, warm-up 10 from 1e-6', data: 'tinyshakespeare',
    fp32_loss: fp32.loss, bf16_loss: bf16.loss, loss_rel_diff: rel.map((x) => +x.toExponential(3)),
    fp32_grad_norm: fp32.gradNorm, bf16_grad_norm: bf16.gradNorm, grad_norm_rel_diff: relNorm.map((x) => +x.toExponential(3)),
    max_loss_rel_diff: +Math.max(...rel).toExponential(3), within_2e_3: Math.max(...rel) <= 2e-3,
    seconds: { fp32: +fp32.seconds.toFixed(1), bf16: +bf16.seconds.toFixed(1) },
  };
}
if (process.argv.includes('--curve')) {
  const which = arg('curve-model', '35m'), cSteps = Number(arg('curve-steps', '200')), lr = Number(arg('curve-lr', '1e-4'));
  const B = Number(arg('curve-batch', '1')), T = which === 'tiny' ? 64 : 256;
  const config = which === 'tiny'
    ? resolveConfig({ model_type: 'openelm', num_transformer_layers: 2, model_dim: 128, head_dim: 32, num_gqa_groups: 2, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 2.0], ffn_dim_divisor: 64, vocab_size: 32000, max_context_length: 256 })
    : resolveConfig(MODELS['35m'].hf);
  const rows = textRows(T);
  const res: Record<string, { loss: number[]; seconds: number }> = {};
  for (const mode of ['fp32', 'bf16', 'bf16 weights'] as const) {
    const r = await run(config, mode, cSteps, B, T, () => lr, rows, 1.0);
    res[mode] = { loss: r.loss.map((x) => +x.toFixed(5)), seconds: +r.seconds.toFixed(1) };
  }
  const mean = (a: number[], from: number, n: number) => a.slice(from, from + n).reduce((x, y) => x + y, 0) / n;
  const w = Math.max(1, Math.floor(cSteps / 10));
  const drop = (a: number[]) => mean(a, 0, w) - mean(a, cSteps - w, w);
  out.curve = {
    model: which, batch: B, seq: T, steps: cSteps, lr, schedule: 'constant', weight_decay: 0.1,
    drop_first_vs_last_tenth: Object.fromEntries(Object.entries(res).map(([k, v]) => [k, +drop(v.loss).toFixed(4)])),
    max_abs_gap_bf16_vs_fp32: +Math.max(...res.fp32.loss.map((l, i) => Math.abs(res.bf16.loss[i] - l))).toExponential(3),
    losses: res,
  };
}
out.loadavg_end = os.loadavg().map((x) => +x.toFixed(2));
console.log(JSON.stringify(out, null, 1));
