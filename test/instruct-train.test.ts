// Instruction-tuning numerics against tools/make_instruct_goldens.py (float64 PyTorch reference, TRL
// 0.8.6's DPO formulas, cross-checked there against the installed TRL's DPOTrainer): SFT loss and
// gradients under each masking mode, DPO losses and their gradients (w.r.t. the per-sequence
// log-probabilities and every parameter), and three 4-step DPO curves.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { loadTokenizer } from '../src/tokenizer/load.js';
import { corenetInstructTemplate } from '../src/chat/template.js';
import { TrainableModel } from '../src/train/model-grad.js';
import { AdamW } from '../src/train/adamw.js';
import { clipGradNorm } from '../src/train/clip.js';
import { hfCosineSchedule } from '../src/train/schedule.js';
import { DpoSet, EpochOrder, dpoBatch } from '../src/train/data/instruct-set.js';
import { PAD } from '../src/train/data/sources.js';
import { DPO_METRIC_KEYS, dpoLoss, dpoPairLoss, type DpoConfig, type DpoMetrics } from '../src/train/dpo-loss.js';
import { dpoStep, pairLogps, type PairBatch, type PairLogps } from '../src/train/dpo-step.js';
import { RowwiseScorer } from '../src/train/sequence-logps.js';
import type { DpoLossType } from '../src/train/recipe.js';
import { INSTRUCT_DIR, InstructGolden, foldIds, loadInstructParams } from './helpers/instruct-golden.js';
import { TOL, allclose, assertClose } from './tolerances.js';

const g = new InstructGolden();
process.on('exit', () => g.close());
const tok = loadTokenizer();
const template = corenetInstructTemplate();

interface LossMeta { loss_type: DpoLossType; beta: number; label_smoothing: number }
const lossConfigs = g.meta<Record<string, LossMeta>>('dpo_losses');
const cfgOf = (m: LossMeta): DpoConfig => ({ beta: m.beta, lossType: m.loss_type, labelSmoothing: m.label_smoothing });

function model(which: 'initial' | 'policy'): TrainableModel {
  const m = new TrainableModel(g.config);
  loadInstructParams(which, m);
  return m;
}

/** Every parameter gradient within TOL.grads; returns the largest absolute error. */
function checkGrads(m: TrainableModel, prefix: string): number {
  let worst = 0;
  for (const e of m.layout.entries) {
    const r = allclose(m.gradView(e.name), g.f32(`${prefix}.grad.${e.name}`), TOL.grads, `${prefix}.grad.${e.name}`);
    assert.ok(r.ok, r.message);
    worst = Math.max(worst, r.maxAbs);
  }
  return worst;
}

/** The golden's pairs, folded into the tiny vocabulary, in file order. */
async function goldenPairs(): Promise<{ set: DpoSet; fold: (b: PairBatch) => PairBatch }> {
  const data = (await import('node:fs')).readFileSync(path.join(INSTRUCT_DIR, 'data.json'), 'utf8');
  const d = JSON.parse(data) as { dpo: { max_length: number; max_prompt_length: number } };
  const set = await DpoSet.load([path.join(INSTRUCT_DIR, 'dpo.jsonl')], { tok, template, maxLength: d.dpo.max_length, maxPromptLength: d.dpo.max_prompt_length });
  const f = (a: Int32Array) => Int32Array.from(a, (v) => (v === PAD ? PAD : foldIds([v], g.vocab)[0]));
  return { set, fold: (b) => ({ ...b, inputs: f(b.inputs), targets: f(b.targets) }) };
}

test('SFT: loss and every gradient under each masking mode (completion/assistant only; everything)', (t) => {
  for (const mode of ['mask_prompt', 'all']) {
    const [B, T] = g.shape(`sft.${mode}.input_ids`);
    const m = model('initial');
    m.zeroGrad();
    const res = m.forwardBackward(g.i32(`sft.${mode}.input_ids`), g.i32(`sft.${mode}.targets`), B, T, { ignoreIndex: PAD, zLoss: 0 });
    assertClose([res.loss], g.f32(`sft.${mode}.loss`), TOL.loss, `sft.${mode}.loss`);
    t.diagnostic(`sft ${mode}: |loss error| ${Math.abs(res.loss - g.f32(`sft.${mode}.loss`)[0]).toExponential(2)}, max |grad error| ${checkGrads(m, `sft.${mode}`).toExponential(2)}`);
  }
});

test('DPO formulas: per-pair losses, ∂loss/∂log-prob sums and TRL\'s metrics for sigmoid, sigmoid + label smoothing, hinge, ipo', () => {
  const ref = g.f32('dpo.ref_logps'), pol = g.f32('dpo.policy_logps');
  const targets = g.i32('dpo.targets'), [rows, T] = g.shape('dpo.targets');
  const counts = Array.from({ length: rows }, (_, r) => targets.subarray(r * T, (r + 1) * T).filter((t) => t !== PAD).length);
  const P = rows / 2;
  for (const [name, meta] of Object.entries(lossConfigs)) {
    const r = dpoLoss(pol.subarray(0, P), pol.subarray(P), ref.subarray(0, P), ref.subarray(P), cfgOf(meta), counts.slice(0, P), counts.slice(P));
    assertClose([r.loss], g.f32(`dpo.${name}.loss`), TOL.loss, `${name} loss`);
    assertClose(r.losses, g.f32(`dpo.${name}.losses`), TOL.loss, `${name} losses`);
    assertClose([...r.dChosen, ...r.dRejected], g.f32(`dpo.${name}.d_logps`), TOL.grads, `${name} d_logps`);
    assertClose(DPO_METRIC_KEYS.map((k) => r.metrics[k]), g.f32(`dpo.${name}.metrics`), TOL.loss, `${name} metrics`);
  }
  // the hinge golden has active and inactive pairs
  const h = g.f32('dpo.hinge.losses');
  assert.ok(h.some((x) => x === 0) && h.some((x) => x > 0));
});

test('DPO loss derivatives match finite differences (every loss type, both sides of the hinge)', () => {
  const configs: DpoConfig[] = [
    { beta: 0.1, lossType: 'sigmoid', labelSmoothing: 0 }, { beta: 0.5, lossType: 'sigmoid', labelSmoothing: 0.3 },
    { beta: 0.2, lossType: 'hinge', labelSmoothing: 0 }, { beta: 0.1, lossType: 'ipo', labelSmoothing: 0 },
  ];
  for (const c of configs) {
    for (const z of [-40, -3, -0.2, 0, 0.7, 4.9, 5.1, 60]) {
      const h = 1e-6;
      const fd = (dpoPairLoss(z + h, c)[0] - dpoPairLoss(z - h, c)[0]) / (2 * h);
      assert.ok(Math.abs(fd - dpoPairLoss(z, c)[1]) < 1e-6, `${c.lossType} ls ${c.labelSmoothing} at z=${z}: fd ${fd} vs ${dpoPairLoss(z, c)[1]}`);
      assert.ok(Number.isFinite(dpoPairLoss(z, c)[0]));
    }
  }
  assert.ok(Math.abs(dpoPairLoss(0, configs[0])[0] - Math.LN2) < 1e-15);
  assert.equal(dpoPairLoss(1 / 0.2, configs[2])[1], 0, 'hinge gradient is 0 at the kink, as PyTorch\'s relu');
});

test('DPO: reference and policy log-probabilities, and every parameter gradient of each loss', async (t) => {
  const { set, fold } = await goldenPairs();
  const b = fold(dpoBatch(set, Array.from({ length: set.size }, (_, i) => i)));
  assert.deepEqual([...b.inputs], [...g.i32('dpo.input_ids')]);
  const refModel = model('initial');
  const ref = pairLogps(new RowwiseScorer(refModel), b);
  assertClose([...ref.chosen, ...ref.rejected], g.f32('dpo.ref_logps'), TOL.loss, 'reference log-probs');
  const pol = model('policy');
  const scorer = new RowwiseScorer(pol);
  for (const [name, meta] of Object.entries(lossConfigs)) {
    pol.zeroGrad();
    const r = dpoStep(scorer, b, ref, cfgOf(meta));
    assertClose([...r.policy.chosen, ...r.policy.rejected], g.f32('dpo.policy_logps'), TOL.loss, 'policy log-probs');
    assertClose([r.loss], g.f32(`dpo.${name}.loss`), TOL.loss, `${name} loss`);
    t.diagnostic(`dpo ${name}: |loss error| ${Math.abs(r.loss - g.f32(`dpo.${name}.loss`)[0]).toExponential(2)}, max |grad error| ${checkGrads(pol, `dpo.${name}`).toExponential(2)}`);
  }
});

interface CurveMeta { steps: number; pairs_per_micro_batch: number; grad_accum: number; lr: number; warmup_steps: number; betas: [number, number]; eps: number; weight_decay: number; clip: number; losses: Record<string, { beta: number; label_smoothing: number }> }

test('DPO 4-step curves (AdamW, HF cosine warm-up from 0, clipping, 2 × 2 accumulation, cached reference): loss within TOL.instructCurveLoss (2e-5 relative) per step', async (t) => {
  const curve = g.meta<CurveMeta>('curve');
  const { set, fold } = await goldenPairs();
  for (const [lossType, lc] of Object.entries(curve.losses)) {
    const cfg: DpoConfig = { beta: lc.beta, lossType: lossType as DpoLossType, labelSmoothing: lc.label_smoothing };
    const m = model('initial');
    const scorer = new RowwiseScorer(m);
    const opt = new AdamW(m.layout, { beta1: curve.betas[0], beta2: curve.betas[1], eps: curve.eps, weightDecay: curve.weight_decay });
    const sched = hfCosineSchedule({ maxLr: curve.lr, warmupSteps: curve.warmup_steps, maxSteps: curve.steps });
    const order = new EpochOrder(set.size, false, 0);
    // The reference is the initial model: every pair's log-probabilities, once, before any update.
    const all = pairLogps(scorer, fold(dpoBatch(set, Array.from({ length: set.size }, (_, i) => i))));
    const losses: number[] = [], norms: number[] = [], lrs: number[] = [], metrics: number[] = [];
    for (let t = 0; t < curve.steps; t++) {
      const lr = sched.lr(t);
      m.zeroGrad();
      let loss = 0;
      const sums = Object.fromEntries(DPO_METRIC_KEYS.map((k) => [k, 0])) as unknown as DpoMetrics;
      for (let a = 0; a < curve.grad_accum; a++) {
        const idx = order.take(curve.pairs_per_micro_batch);
        const ref: PairLogps = { chosen: Float64Array.from(idx, (i) => all.chosen[i]), rejected: Float64Array.from(idx, (i) => all.rejected[i]) };
        const r = dpoStep(scorer, fold(dpoBatch(set, idx)), ref, cfg, 1 / curve.grad_accum);
        loss += r.loss / curve.grad_accum;
        for (const k of DPO_METRIC_KEYS) sums[k] += r.metrics[k] / curve.grad_accum;
      }
      norms.push(clipGradNorm(m.grads, curve.clip));
      opt.update(m.params, m.grads, lr);
      losses.push(loss); lrs.push(lr); metrics.push(...DPO_METRIC_KEYS.map((k) => sums[k]));
    }
    const want = g.f32(`curve.${lossType}.loss`);
    const lr = allclose(losses, want, TOL.instructCurveLoss, `${lossType} curve loss`);
    assert.ok(lr.ok, lr.message);
    t.diagnostic(`curve ${lossType}: max relative loss error per step ${lr.maxRel.toExponential(2)}`);
    assertClose(norms, g.f32(`curve.${lossType}.grad_norm`), TOL.curve, `${lossType} grad_norm`);
    assertClose(lrs, g.f32(`curve.${lossType}.lr`), TOL.curve, `${lossType} lr`);
    assertClose(metrics, g.f32(`curve.${lossType}.metrics`), TOL.curve, `${lossType} metrics`);
    for (const e of m.layout.entries) {
      const r = allclose(m.paramView(e.name), g.f32(`curve.${lossType}.final.${e.name}`), TOL.curve, `${lossType} final ${e.name}`);
      assert.ok(r.ok, r.message);
    }
  }
});

test('SFT: each row alone gives the batch\'s per-token losses (padding never leaks into a row)', () => {
  const [B, T] = g.shape('sft.all.input_ids');
  const inputs = g.i32('sft.all.input_ids'), targets = g.i32('sft.all.targets');
  const m = model('initial');
  let sum = 0, n = 0;
  for (let b = 0; b < B; b++) {
    const row = inputs.subarray(b * T, (b + 1) * T);
    const len = row.indexOf(PAD) < 0 ? T : row.indexOf(PAD);
    const r = m.evalLoss(row.subarray(0, len), targets.subarray(b * T, b * T + len), 1, len, { ignoreIndex: PAD, zLoss: 0 });
    sum += r.loss * r.validTokens; n += r.validTokens;
  }
  assertClose([sum / n], g.f32('sft.all.loss'), TOL.loss, 'row-by-row mean');
});
