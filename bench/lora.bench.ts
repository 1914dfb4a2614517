// LoRA training throughput: tokens/s of one optimizer step (zeroGrad + forward + backward + clip +
// AdamW over the adapter) with a frozen random base and random tokens, printed as one JSON line.
// The adapter is Apple's PEFT setting by default: r 32, alpha 32, dropout 0.1 on the embedding,
// qkv_proj, out_proj, proj_1 and proj_2 of every layer.
//
//   node dist/bench/lora.bench.js [--model 35m|270m] [--steps N] [--warmup W] [--threads T]
//        [--native auto|on|off] [--type lora|dora] [--r 32] [--dropout 0.1] [--base-dtype f32|bf16|q8|q4]
//        [--recompute]

import os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveConfig, parameterCount } from '../src/model/config.js';
import { initParams } from '../src/model/init.js';
import { paramLayout } from '../src/model/layout.js';
import { Rng } from '../src/core/rng.js';
import { TrainableModel } from '../src/model/trainable.js';
import { createBackend, type NativeMode } from '../src/backends/index.js';
import { peakRssKb } from '../src/platform/node.js';
import { AdamW } from '../src/train/adamw.js';
import { clipGradNorm } from '../src/train/clip.js';
import { cosineSchedule } from '../src/train/schedule.js';
import { initAdapter, type AdapterSettings } from '../src/adapters/adapter.js';
import { adapterToFlat } from '../src/adapters/params.js';
import { ADAPTER_TARGETS } from '../src/adapters/targets.js';
import { MODELS } from './train.bench.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

async function main(): Promise<void> {
  const name = arg('model', '35m');
  const spec = MODELS[name];
  if (!spec) throw new Error(`unknown --model ${name}; choose ${Object.keys(MODELS).join(', ')}`);
  const steps = Number(arg('steps', '2')), warmup = Number(arg('warmup', '1'));
  const baseDtype = arg('base-dtype', 'f32') as 'f32' | 'bf16' | 'q8' | 'q4';
  const settings: AdapterSettings = {
    type: arg('type', 'lora') as 'lora' | 'dora', r: Number(arg('r', '32')), alpha: Number(arg('alpha', '32')),
    dropout: Number(arg('dropout', '0.1')), targets: [...ADAPTER_TARGETS], rslora: false,
  };
  const backend = await createBackend(arg('backend', 'wasm'), { threads: Number(arg('threads', '2')), native: arg('native', 'auto') as NativeMode });
  const config = resolveConfig(spec.hf);
  const model = new TrainableModel(config, backend, { adapter: { settings, baseDtype }, recompute: process.argv.includes('--recompute') });
  // a random base, set tensor by tensor (no second copy of the whole model on the host)
  const layout = paramLayout(config);
  const base = new Map<string, Float32Array>();
  initParams(config, layout, (e, v) => { model.setBase(e.name, v); if (settings.type === 'dora') base.set(e.name, v); }, 1);
  backend.write(model.params, adapterToFlat(initAdapter(config, settings, { seed: 1, baseWeight: (n) => base.get(n)! }), model.layout));
  base.clear();
  const opt = new AdamW(backend, model.layout, { weightDecay: 0 });
  const sched = cosineSchedule({ maxLr: 3e-4, minLr: 3e-5, warmupSteps: 10, maxSteps: 1000 });
  const rng = new Rng(2);
  const { B, T } = spec, n = B * T;
  const times: number[] = [];
  let loss = 0;
  for (let s = 0; s < warmup + steps; s++) {
    const inputs = new Int32Array(n), targets = new Int32Array(n);
    for (let i = 0; i < n; i++) { inputs[i] = rng.int(config.vocabSize); targets[i] = rng.int(config.vocabSize); }
    const t0 = performance.now();
    model.zeroGrad();
    const r = await model.forwardBackward(inputs, targets, B, T, { zLoss: true, dropoutSeed: s });
    await clipGradNorm(backend, model.grads, 1.0);
    await opt.update(model.params, model.grads, sched.lr(s));
    await backend.sync();
    loss = r.loss;
    if (s >= warmup) times.push((performance.now() - t0) / 1000);
  }
  const total = times.reduce((a, b) => a + b, 0);
  console.log(JSON.stringify({
    bench: 'lora', model: name, params: parameterCount(config), trainable: model.layout.entries.reduce((a, e) => a + e.size, 0),
    adapter: settings, base_dtype: baseDtype, batch: B, seq: T, steps, warmup, kernels: backend.name, threads: backend.threads, native: backend.library,
    tokens_per_s: +(n * steps / total).toFixed(2), seconds_per_step: times.map((t) => +t.toFixed(3)),
    wasm_mb: backend.name === 'wasm' ? Math.round(backend.memory().reserved / 2 ** 20) : 0,
    peak_rss_mb: Math.round(peakRssKb() / 1024), last_loss: +loss.toFixed(4),
    loadavg: os.loadavg().map((x) => +x.toFixed(2)), node: process.version,
  }));
  opt.dispose();
  model.dispose();
  backend.dispose();
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1]);
if (isMain) await main();
