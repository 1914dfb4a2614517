// Instruction-tuning numerics against tools/make_instruct_goldens.py (float64 PyTorch reference, TRL
// 0.8.6's DPO formulas, cross-checked there against the installed TRL's DPOTrainer): SFT loss and
// gradients under each masking mode, DPO losses and their gradients (w.r.t. the per-sequence
// log-probabilities and every parameter), and three 4-step DPO curves, on every backend of
// BACKEND_CASES; and the model's per-sequence log-probabilities against one row at a time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { corenetInstructTemplate } from '../src/chat/template.js';
import type { Backend } from '../src/backends/backend.js';
import { TrainableModel } from '../src/model/trainable.js';
import { resolveConfig } from '../src/model/config.js';
import { initParams } from '../src/model/init.js';
import { AdamW } from '../src/train/adamw.js';
import { clipGradNorm } from '../src/train/clip.js';
import { hfCosineSchedule } from '../src/train/schedule.js';
import { DpoSet, EpochOrder, dpoBatch } from '../src/train/data/instruct-set.js';
import { PAD } from '../src/train/data/sources.js';
import { DPO_METRIC_KEYS, dpoLoss, dpoPairLoss, type DpoConfig, type DpoMetrics } from '../src/train/dpo-loss.js';
import { dpoStep, pairLogps, type PairBatch, type PairLogps } from '../src/train/dpo-step.js';
import type { DpoLossType } from '../src/train/recipe.js';
import { BACKEND_CASES } from './helpers/backends.js';
import { INSTRUCT_DIR, InstructGolden, foldIds, loadInstructParams } from './helpers/instruct-golden.js';
import { TOL, allclose, assertClose } from './tolerances.js';

const g = new InstructGolden();
process.on('exit', () => g.close());
const tok = loadTokenizer();
const template = corenetInstructTemplate();

interface LossMeta { loss_type: DpoLossType; beta: number; label_smoothing: number }
const lossConfigs = g.meta<Record<string, LossMeta>>('dpo_losses');
const cfgOf = (m: LossMeta): DpoConfig => ({ beta: m.beta, lossType: m.loss_type, labelSmoothing: m.label_smoothing });

function model(be: Backend, which: 'initial' | 'policy'): TrainableModel {
  const m = new TrainableModel(g.config, be);
  loadInstructParams(which, m);
  return m;
}

/** Every parameter gradient within TOL.grads; returns the largest absolute error. */
async function checkGrads(m: TrainableModel, prefix: string): Promise<number> {
  let worst = 0;
  for (const e of m.layout.entries) {
    const r = allclose(await m.readGrad(e.name), g.f32(`${prefix}.grad.${e.name}`), TOL.grads, `${prefix}.grad.${e.name}`);
    assert.ok(r.ok, r.message);
    worst = Math.max(worst, r.maxAbs);
  }
  return worst;
}

/** The golden's pairs, folded into the tiny vocabulary, in file order. */
async function goldenPairs(): Promise<{ set: DpoSet; fold: (b: PairBatch) => PairBatch }> {
  const d = JSON.parse(fs.readFileSync(path.join(INSTRUCT_DIR, 'data.json'), 'utf8')) as { dpo: { max_length: number; max_prompt_length: number } };
  const set = await DpoSet.load([path.join(INSTRUCT_DIR, 'dpo.jsonl')], { tok, template, maxLength: d.dpo.max_length, maxPromptLength: d.dpo.max_prompt_length });
  const f = (a: Int32Array) => Int32Array.from(a, (v) => (v === PAD ? PAD : foldIds([v], g.vocab)[0]));
  return { set, fold: (b) => ({ ...b, inputs: f(b.inputs), targets: f(b.targets) }) };
}

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

interface CurveMeta { steps: number; pairs_per_micro_batch: number; grad_accum: number; lr: number; warmup_steps: number; betas: [number, number]; eps: number; weight_decay: number; clip: number; losses: Record<string, { beta: number; label_smoothing: number }> }

for (const bc of BACKEND_CASES) {
  const skip = bc.available() ?? false;

  test(`[${bc.name}] SFT: loss and every gradient under each masking mode (completion/assistant only; everything)`, { skip }, async (t) => {
    const be = await bc.make();
    try {
      for (const mode of ['mask_prompt', 'all']) {
        const [B, T] = g.shape(`sft.${mode}.input_ids`);
        const m = model(be, 'initial');
        m.zeroGrad();
        const res = await m.forwardBackward(g.i32(`sft.${mode}.input_ids`), g.i32(`sft.${mode}.targets`), B, T, { ignoreIndex: PAD, zLoss: 0 });
        assertClose([res.loss], g.f32(`sft.${mode}.loss`), TOL.loss, `sft.${mode}.loss`);
        t.diagnostic(`sft ${mode}: |loss error| ${Math.abs(res.loss - g.f32(`sft.${mode}.loss`)[0]).toExponential(2)}, max |grad error| ${(await checkGrads(m, `sft.${mode}`)).toExponential(2)}`);
        m.dispose();
      }
    } finally { be.dispose(); }
  });

  test(`[${bc.name}] SFT: each row alone gives the batch's per-token losses (padding never leaks into a row)`, { skip }, async () => {
    const be = await bc.make();
    try {
      const [B, T] = g.shape('sft.all.input_ids');
      const inputs = g.i32('sft.all.input_ids'), targets = g.i32('sft.all.targets');
      const m = model(be, 'initial');
      let sum = 0, n = 0;
      for (let b = 0; b < B; b++) {
        const row = inputs.subarray(b * T, (b + 1) * T);
        const len = row.indexOf(PAD) < 0 ? T : row.indexOf(PAD);
        const r = await m.evalLoss(row.subarray(0, len), targets.subarray(b * T, b * T + len), 1, len, { ignoreIndex: PAD, zLoss: 0 });
        sum += r.loss * r.validTokens; n += r.validTokens;
      }
      assertClose([sum / n], g.f32('sft.all.loss'), TOL.loss, 'row-by-row mean');
      m.dispose();
    } finally { be.dispose(); }
  });

  test(`[${bc.name}] DPO: reference and policy log-probabilities, and every parameter gradient of each loss`, { skip }, async (t) => {
    const be = await bc.make();
    try {
      const { set, fold } = await goldenPairs();
      const b = fold(dpoBatch(set, Array.from({ length: set.size }, (_, i) => i)));
      assert.deepEqual([...b.inputs], [...g.i32('dpo.input_ids')]);
      const refModel = model(be, 'initial');
      const ref = await pairLogps(refModel, b);
      refModel.dispose();
      assertClose([...ref.chosen, ...ref.rejected], g.f32('dpo.ref_logps'), TOL.loss, 'reference log-probs');
      const pol = model(be, 'policy');
      for (const [name, meta] of Object.entries(lossConfigs)) {
        pol.zeroGrad();
        const r = await dpoStep(pol, b, ref, cfgOf(meta));
        assertClose([...r.policy.chosen, ...r.policy.rejected], g.f32('dpo.policy_logps'), TOL.loss, 'policy log-probs');
        assertClose([r.loss], g.f32(`dpo.${name}.loss`), TOL.loss, `${name} loss`);
        t.diagnostic(`dpo ${name}: |loss error| ${Math.abs(r.loss - g.f32(`dpo.${name}.loss`)[0]).toExponential(2)}, max |grad error| ${(await checkGrads(pol, `dpo.${name}`)).toExponential(2)}`);
      }
      pol.dispose();
    } finally { be.dispose(); }
  });

  test(`[${bc.name}] DPO 4-step curves (AdamW, HF cosine warm-up from 0, clipping, 2 × 2 accumulation, cached reference): loss within TOL.instructCurveLoss (2e-5 relative) per step`, { skip }, async (t) => {
    const be = await bc.make();
    try {
      const curve = g.meta<CurveMeta>('curve');
      const { set, fold } = await goldenPairs();
      for (const [lossType, lc] of Object.entries(curve.losses)) {
        const cfg: DpoConfig = { beta: lc.beta, lossType: lossType as DpoLossType, labelSmoothing: lc.label_smoothing };
        const m = model(be, 'initial');
        const opt = new AdamW(be, m.layout, { beta1: curve.betas[0], beta2: curve.betas[1], eps: curve.eps, weightDecay: curve.weight_decay });
        const sched = hfCosineSchedule({ maxLr: curve.lr, warmupSteps: curve.warmup_steps, maxSteps: curve.steps });
        const order = new EpochOrder(set.size, false, 0);
        // The reference is the initial model: every pair's log-probabilities, once, before any update.
        const all = await pairLogps(m, fold(dpoBatch(set, Array.from({ length: set.size }, (_, i) => i))));
        const losses: number[] = [], norms: number[] = [], lrs: number[] = [], metrics: number[] = [];
        for (let s = 0; s < curve.steps; s++) {
          const lr = sched.lr(s);
          m.zeroGrad();
          let loss = 0;
          const sums = Object.fromEntries(DPO_METRIC_KEYS.map((k) => [k, 0])) as unknown as DpoMetrics;
          for (let a = 0; a < curve.grad_accum; a++) {
            const idx = order.take(curve.pairs_per_micro_batch);
            const ref: PairLogps = { chosen: Float64Array.from(idx, (i) => all.chosen[i]), rejected: Float64Array.from(idx, (i) => all.rejected[i]) };
            const r = await dpoStep(m, fold(dpoBatch(set, idx)), ref, cfg, 1 / curve.grad_accum);
            loss += r.loss / curve.grad_accum;
            for (const k of DPO_METRIC_KEYS) sums[k] += r.metrics[k] / curve.grad_accum;
          }
          norms.push(await clipGradNorm(be, m.grads, curve.clip));
          await opt.update(m.params, m.grads, lr);
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
          const r = allclose(await m.readParam(e.name), g.f32(`curve.${lossType}.final.${e.name}`), TOL.curve, `${lossType} final ${e.name}`);
          assert.ok(r.ok, r.message);
        }
        opt.dispose();
        m.dispose();
      }
    } finally { be.dispose(); }
  });

  test(`[${bc.name}] sequence log-probabilities and their weighted backward equal one row at a time (odd chunks, gaps, recompute)`, { skip }, async () => {
    const be = await bc.make();
    try {
      const config = resolveConfig({
        model_type: 'openelm', vocab_size: 61, model_dim: 24, head_dim: 8, num_transformer_layers: 2,
        num_gqa_groups: 2, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 2.0], ffn_dim_divisor: 8,
        max_context_length: 32, share_input_output_layers: false, normalize_qk_projections: true, ffn_with_glu: true,
      });
      const B = 4, T = 9;
      // row 0 full; row 1 a gap in its targets (a masked prompt turn); row 2 short; row 3 nothing to score
      const lens = [9, 9, 5, 6];
      const inputs = new Int32Array(B * T).fill(PAD), targets = new Int32Array(B * T).fill(PAD);
      for (let b = 0; b < B; b++) {
        for (let t = 0; t < lens[b]; t++) {
          inputs[b * T + t] = (7 * b + 3 * t + 1) % 61;
          const scored = b === 3 ? false : b === 1 ? t < 2 || t > 4 : t >= 1;
          if (scored) targets[b * T + t] = (5 * b + 11 * t + 2) % 61;
        }
      }
      const weights = [0.7, -1.3, 0.25, 2];
      for (const recompute of [false, true]) {
        const m = new TrainableModel(config, be, { recompute, headChunkRows: 5 });
        initParams(config, m.layout, (e, v) => m.setParam(e.name, v), 3);
        // one row at a time through the mean-loss path: s = −ce·n, and gradScale −w·n gives w·∇s
        const want = new Float64Array(B);
        m.zeroGrad();
        for (let b = 0; b < B; b++) {
          const len = lens[b], x = inputs.subarray(b * T, b * T + len), y = targets.subarray(b * T, b * T + len);
          const n = y.filter((v) => v !== PAD).length;
          if (n === 0) continue;
          const r = await m.forwardBackward(x, y, 1, len, { ignoreIndex: PAD, gradScale: -weights[b] * n });
          want[b] = -r.ce * n;
        }
        const wantGrads = await be.read(m.grads);
        m.zeroGrad();
        const got = await m.sequenceLogprobs(inputs, targets, B, T, { ignoreIndex: PAD });
        assert.equal(got[3], 0);
        assertClose(got, want, TOL.loss, `log-prob sums (recompute ${recompute})`);
        await m.sequenceLogprobsBackward(weights);
        assertClose(await be.read(m.grads), wantGrads, TOL.grads, `weighted gradients (recompute ${recompute})`);
        // the backward consumes the forward
        await assert.rejects(m.sequenceLogprobsBackward(weights), /preceding sequenceLogprobs/);
        // the same sums whatever the chunk size
        m.headChunkRows = 256;
        assertClose(await m.sequenceLogprobs(inputs, targets, B, T, { ignoreIndex: PAD }), got, TOL.loss, 'one chunk');
        // another forward discards the kept activations
        await m.evalLoss(inputs, targets, B, T, { ignoreIndex: PAD });
        await assert.rejects(m.sequenceLogprobsBackward(weights), /preceding sequenceLogprobs/);
        m.dispose();
      }
    } finally { be.dispose(); }
  });
}
