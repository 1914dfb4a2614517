// Adapter training against the real PEFT library (fixtures of tools/make_peft_goldens.py) on every
// backend of BACKEND_CASES, through the trainable model with a frozen base: LoRA, rsLoRA and DoRA
// on all five targets — the adapted logits, the loss and every adapter gradient without dropout and
// with PEFT's own dropout masks replayed, and the 5-step AdamW curve started from the PEFT-made
// adapter (2e-5 relative per step).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { BACKEND_CASES } from './helpers/backends.js';
import { Golden, GOLDEN_ROOT, goldenConfig } from './helpers/golden.js';
import { TOL, allclose, type CloseReport } from './tolerances.js';
import type { Backend } from '../src/backends/backend.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { readPeftAdapter } from '../src/io/peft-folder.js';
import { peftTensorNames } from '../src/adapters/peft-config.js';
import { adapterToFlat, flatToAdapter } from '../src/adapters/params.js';
import type { Adapter, AdapterSettings } from '../src/adapters/adapter.js';
import { paramSpecs } from '../src/model/params.js';
import { TrainableModel } from '../src/model/trainable.js';
import { AdamW } from '../src/train/adamw.js';
import { clipGradNorm } from '../src/train/clip.js';
import { cosineSchedule } from '../src/train/schedule.js';

const BASE = 'gqa4-hd32';
const cfg = goldenConfig(BASE);
const CASES = ['lora', 'lora-rslora', 'dora'] as const;
const adapterDir = (c: string) => path.join(GOLDEN_ROOT, 'peft', c, 'adapter');

function baseTensors(): Map<string, Float32Array> {
  const f = SafetensorsFile.open(path.join(GOLDEN_ROOT, BASE, 'model.safetensors'));
  try { return new Map(f.names().map((n) => [n, f.readF32(n)])); } finally { f.close(); }
}
const base = baseTensors();

/** A trainable model on `be` with the golden base frozen and `a` loaded as its adapter. */
export function adaptedModel(be: Backend, a: Adapter, settings: AdapterSettings = a.settings, baseDtype: 'f32' | 'bf16' | 'q8' | 'q4' = 'f32'): TrainableModel {
  const model = new TrainableModel(cfg, be, { adapter: { settings, baseDtype }, headChunkRows: 7 });
  for (const p of paramSpecs(cfg)) model.setBase(p.name, base.get(p.name)!);
  be.write(model.params, adapterToFlat({ ...a, settings }, model.layout));
  return model;
}

/** Every adapter gradient of the model, by PEFT file key, compared with `${prefix}.grad.<key>`. */
async function gradChecks(model: TrainableModel, g: Golden, prefix: string, settings: AdapterSettings): Promise<CloseReport[]> {
  const grads = flatToAdapter(await model.backend.read(model.grads), model.layout, cfg, settings);
  const out: CloseReport[] = [];
  for (const m of grads.modules) {
    const k = peftTensorNames(m.module, settings.type === 'dora');
    out.push(allclose(m.A, g.f32(`${prefix}.grad.${k.A}`), TOL.adapterGrads, `${prefix} ${k.A}`));
    out.push(allclose(m.B, g.f32(`${prefix}.grad.${k.B}`), TOL.adapterGrads, `${prefix} ${k.B}`));
    if (k.magnitude) out.push(allclose(m.magnitude!, g.f32(`${prefix}.grad.${k.magnitude}`), TOL.adapterGrads, `${prefix} ${k.magnitude}`));
  }
  return out;
}

for (const bc of BACKEND_CASES) {
  const skip = bc.available() ?? false;
  for (const c of CASES) {
    test(`[${bc.name}] ${c}: adapted logits, loss and every adapter gradient vs PEFT, without and with dropout`, { skip }, async () => {
      const be = await bc.make();
      const g = new Golden(path.join('peft', c));
      try {
        const a = readPeftAdapter(adapterDir(c), cfg);
        const checks: CloseReport[] = [];
        // no dropout (PEFT's lora_dropout replaced by the identity)
        const plain = { ...a.settings, dropout: 0 };
        let model = adaptedModel(be, a, plain);
        const [fB, fT] = g.shape('forward.input_ids');
        checks.push(allclose(await model.logits(g.i32('forward.input_ids'), fB, fT), g.f32('forward.logits'), bc.logits, 'forward.logits'));
        const [B, T] = g.shape('train.input_ids');
        const inputs = g.i32('train.input_ids'), targets = g.i32('train.targets');
        let res = await model.forwardBackward(inputs, targets, B, T, { zLoss: 1e-4 });
        checks.push(allclose([res.loss], g.f32('nodrop.loss'), TOL.loss, 'nodrop.loss'), allclose([res.ce], g.f32('nodrop.ce'), TOL.loss, 'nodrop.ce'));
        checks.push(...await gradChecks(model, g, 'nodrop', plain));
        // evaluation is the no-dropout function
        const ev = await model.evalLoss(inputs, targets, B, T, { zLoss: 1e-4 });
        checks.push(allclose([ev.loss], g.f32('nodrop.loss'), TOL.loss, 'evalLoss'));
        model.dispose();
        if (g.has('drop.loss')) {
          // PEFT's dropout masks replayed
          model = adaptedModel(be, a);
          model.setDropoutMasks((name, n) => {
            const raw = g.file.readRaw(`drop.mask.${name}`);
            assert.equal(raw.length, n, `mask of ${name}`);
            return raw;
          });
          res = await model.forwardBackward(inputs, targets, B, T, { zLoss: 1e-4 });
          checks.push(allclose([res.loss], g.f32('drop.loss'), TOL.loss, 'drop.loss'), allclose([res.ce], g.f32('drop.ce'), TOL.loss, 'drop.ce'));
          checks.push(...await gradChecks(model, g, 'drop', a.settings));
          // the masks matter: the hashed masks give another loss
          model.setDropoutMasks(null);
          model.zeroGrad();
          const other = await model.forwardBackward(inputs, targets, B, T, { zLoss: 1e-4, dropoutSeed: 1 });
          assert.ok(Math.abs(other.loss - res.loss) > 1e-4, `dropout masks change the loss (${other.loss} vs ${res.loss})`);
          model.dispose();
        }
        assert.deepEqual(checks.filter((x) => !x.ok).map((x) => x.message), []);
      } finally {
        g.close();
        be.dispose();
      }
    });
  }

  for (const c of ['lora', 'dora'] as const) {
    test(`[${bc.name}] ${c}: 5-step AdamW curve from the PEFT-made adapter (loss and grad norm 2e-5 relative per step, final adapter)`, { skip }, async () => {
      const be = await bc.make();
      const g = new Golden(path.join('peft', c));
      try {
        const a = readPeftAdapter(adapterDir(c), cfg);
        const o = JSON.parse(g.metadata().curve) as { betas: [number, number]; eps: number; weight_decay: number; grad_clip_max_norm: number;
          max_lr: number; min_lr: number; warmup_init_lr: number; warmup_steps: number; max_steps: number; z_loss_coef: number; steps: number };
        const settings = { ...a.settings, dropout: 0 };
        const model = adaptedModel(be, a, settings);
        const sched = cosineSchedule({ maxLr: o.max_lr, minLr: o.min_lr, warmupSteps: o.warmup_steps, maxSteps: o.max_steps, warmupInitLr: o.warmup_init_lr });
        // weight decay on the 2-D tensors (A, B), not on DoRA's magnitudes: AdamW's default rule
        const opt = new AdamW(be, model.layout, { beta1: o.betas[0], beta2: o.betas[1], eps: o.eps, weightDecay: o.weight_decay });
        const [steps, cB, cT] = g.shape('curve.input_ids');
        const inputs = g.i32('curve.input_ids'), targets = g.i32('curve.targets'), n = cB * cT;
        const losses: number[] = [], norms: number[] = [];
        for (let t = 0; t < steps; t++) {
          model.zeroGrad();
          const r = await model.forwardBackward(inputs.subarray(t * n, (t + 1) * n), targets.subarray(t * n, (t + 1) * n), cB, cT, { zLoss: o.z_loss_coef });
          norms.push(await clipGradNorm(be, model.grads, o.grad_clip_max_norm));
          await opt.update(model.params, model.grads, sched.lr(t));
          losses.push(r.loss);
        }
        const checks = [allclose(losses, g.f32('curve.loss'), TOL.adapterCurve, 'curve.loss'), allclose(norms, g.f32('curve.grad_norm'), TOL.adapterCurve, 'curve.grad_norm')];
        const final = flatToAdapter(await be.read(model.params), model.layout, cfg, settings);
        for (const m of final.modules) {
          const k = peftTensorNames(m.module, c === 'dora');
          checks.push(allclose(m.A, g.f32(`curve.final.${k.A}`), TOL.adapterCurveParams, k.A), allclose(m.B, g.f32(`curve.final.${k.B}`), TOL.adapterCurveParams, k.B));
          if (k.magnitude) checks.push(allclose(m.magnitude!, g.f32(`curve.final.${k.magnitude}`), TOL.adapterCurveParams, k.magnitude));
        }
        assert.deepEqual(checks.filter((x) => !x.ok).map((x) => x.message), []);
        opt.dispose();
        model.dispose();
      } finally {
        g.close();
        be.dispose();
      }
    });
  }
}
