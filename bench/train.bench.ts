// Training throughput: tokens/s of one optimizer step (zeroGrad + forward + backward + clip + AdamW)
// on random weights and random tokens, printed as one JSON line per model.
//
//   node dist/bench/train.bench.js [--model 35m|270m|all] [--steps N] [--warmup W] [--recompute]
//        [--backend js|wasm] [--threads T] [--native auto|on|off] [--precision fp32|bf16] [--profile]
//        [--no-hold]
//
// --no-hold hides the backend's holdBf16, so every bf16 product rounds both operands again (the
// way before holds existed; for A/B runs).
// --profile adds a per-operation breakdown of the timed steps (wall and CPU time of every backend
// call, products by direction and shape; bench/op-profile.ts) and, with the native addon, the CPU
// time its threads spent rounding operands to bf16, in the library's products and copying AMX
// blocks; the table goes to stderr, the rows into the JSON line. Timing every call synchronizes
// nothing that was not synchronous already, but costs a little.
//
// The whole step runs on the chosen backend (with --backend wasm: its memory and threads, the
// training GEMM and kernels, AdamW and gradient clipping). tokens_per_s
// counts the N timed steps after W warm-up steps.
// Models: "35m" = 8 layers, width 512, head dim 64, GQA 4, vocab 32000 (35.46M params), batch 8 × 256;
// "270m" = OpenELM-270M at batch 4 × 256. Reference on the 2-core dev machine: PyTorch CPU fp32 with
// 2 threads reaches 410 and 80 tokens/s. The plain-JS GEMM is single-threaded; the matmul share of
// the time is reported so a faster matmul's effect can be predicted.

import { resolveConfig, parameterCount, presetHFConfig, type OpenELMHFConfig } from '../src/model/config.js';
import { initParams } from '../src/model/init.js';
import { Rng } from '../src/core/rng.js';
import { TrainableModel } from '../src/model/trainable.js';
import os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MATMUL_PRECISIONS, type Backend, type MatmulPrecision } from '../src/backends/backend.js';
import { AdamW } from '../src/train/adamw.js';
import { createBackend, type NativeMode } from '../src/backends/index.js';
import { peakRssKb } from '../src/platform/node.js';
import { clipGradNorm } from '../src/train/clip.js';
import { cosineSchedule } from '../src/train/schedule.js';
import { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import { formatProfile, profiled, type OpRow } from './op-profile.js';

/** The backend with its matmul timed and its FLOPs counted (everything else passes through). */
function timedMatmul(be: Backend): { be: Backend; stats: { seconds: number; flops: number } } {
  const stats = { seconds: 0, flops: 0 };
  const wrapped = new Proxy(be, {
    get(target, prop, recv) {
      const v = Reflect.get(target, prop, recv) as unknown;
      if (prop !== 'matmul' || typeof v !== 'function') return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      return (...a: Parameters<Backend['matmul']>) => {
        const t = performance.now();
        target.matmul(...a);
        stats.seconds += (performance.now() - t) / 1000; stats.flops += 2 * a[3] * a[4] * a[5];
      };
    },
  });
  return { be: wrapped, stats };
}

/** The backend without holdBf16 (every bf16 product rounds its operands itself). */
function withoutHolds(be: Backend): Backend {
  return new Proxy(be, {
    get(target, prop) {
      if (prop === 'holdBf16') return undefined;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

export const MODELS: Record<string, { hf: OpenELMHFConfig; B: number; T: number; pytorchTokS: number }> = {
  '35m': {
    hf: {
      model_type: 'openelm', num_transformer_layers: 8, model_dim: 512, head_dim: 64, num_gqa_groups: 4,
      qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 4.0], ffn_dim_divisor: 256, vocab_size: 32000,
    },
    B: 8, T: 256, pytorchTokS: 410,
  },
  '270m': { hf: presetHFConfig('OpenELM-270M'), B: 4, T: 256, pytorchTokS: 80 },
};

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

async function run(name: string, steps: number, warmup: number, recompute: boolean, backend: Backend, precision: MatmulPrecision, profile: boolean): Promise<void> {
  const spec = MODELS[name];
  const config = resolveConfig(spec.hf);
  const base = process.argv.includes('--no-hold') ? withoutHolds(backend) : backend;
  const prof = profile ? profiled(base) : null;
  const { be, stats: gemm } = timedMatmul(prof ? prof.be : base);
  const native = backend instanceof WasmBackend ? backend.native : null;
  let nativeProf = { round: 0, gemm: 0, copy: 0 };
  const model = new TrainableModel(config, be, { recompute, precision });
  initParams(config, model.layout, (e, v) => model.setParam(e.name, v), 1);
  // the moments go to the backend's memory when they fit beside the activations (estimated generously)
  const opt = new AdamW(be, model.layout, { reserveBytes: 1.5 * 2 ** 30 });
  const sched = cosineSchedule({ maxLr: 1e-3, minLr: 1e-4, warmupSteps: 10, maxSteps: 1000 });
  const rng = new Rng(2);
  const { B, T } = spec, n = B * T;
  const times: number[] = [];
  let fb = 0, optS = 0, gemmS = 0, gemmF = 0, loss = 0, cpuS = 0;
  for (let s = 0; s < warmup + steps; s++) {
    if (s === warmup && prof) { prof.reset(); native?.profile?.(true); }
    const inputs = new Int32Array(n), targets = new Int32Array(n);
    for (let i = 0; i < n; i++) { inputs[i] = rng.int(config.vocabSize); targets[i] = rng.int(config.vocabSize); }
    // as the trainer lets the event loop turn between steps: a wasm memory started during a step
    // (the optimizer's state, past 4 GiB) gets its worker threads then; without it, every kernel in
    // that memory would stay on this thread for the whole run
    await backend.sync();
    const g0 = gemm.seconds, f0 = gemm.flops;
    const t0 = performance.now(), c0 = process.cpuUsage();
    model.zeroGrad();
    const r = await model.forwardBackward(inputs, targets, B, T, { zLoss: true });
    const t1 = performance.now();
    await clipGradNorm(be, model.grads, 1.0);
    await opt.update(model.params, model.grads, sched.lr(s));
    const t2 = performance.now();
    loss = r.loss;
    if (s < warmup) continue;
    times.push((t2 - t0) / 1000); fb += (t1 - t0) / 1000; optS += (t2 - t1) / 1000;
    const c = process.cpuUsage(c0); cpuS += (c.user + c.system) / 1e6;
    gemmS += gemm.seconds - g0; gemmF += gemm.flops - f0;
  }
  const total = times.reduce((a, b) => a + b, 0);
  let profileRows: OpRow[] | undefined;
  if (prof) {
    profileRows = prof.rows();
    nativeProf = native?.profile?.(false) ?? nativeProf;
    process.stderr.write(`${name} ${precision}, per step (${steps} steps):\n${formatProfile(profileRows, steps, total / steps, cpuS / steps)}\n`);
    if (native?.profile) {
      process.stderr.write(`native threads, CPU ms per step: rounding to bf16 ${(nativeProf.round / steps * 1e3).toFixed(1)}, ` +
        `library products ${(nativeProf.gemm / steps * 1e3).toFixed(1)}, AMX block copies ${(nativeProf.copy / steps * 1e3).toFixed(1)}\n`);
    }
  }
  const mem = process.memoryUsage();
  console.log(JSON.stringify({
    bench: 'train', model: name, params: parameterCount(config), layers: config.numLayers, width: config.modelDim,
    batch: B, seq: T, steps, warmup, recompute, precision, kernels: backend.name, threads: backend.threads,
    tokens_per_s: +(n * steps / total).toFixed(2),
    // every thread of the process (workers and the native pool included): what a step costs in CPU
    tokens_per_cpu_s: +(n * steps / cpuS).toFixed(2),
    seconds_per_step: times.map((t) => +t.toFixed(3)),
    forward_backward_s: +(fb / steps).toFixed(3), clip_adamw_s: +(optS / steps).toFixed(3),
    gemm_s: +(gemmS / steps).toFixed(3), gemm_gflops: +(gemmF / gemmS / 1e9).toFixed(2),
    gemm_share: +(gemmS / total).toFixed(3),
    native: backend.library,
    moments_in_wasm: opt.onBackend,
    wasm_mb: backend.name === 'wasm' ? Math.round(backend.memory().reserved / 2 ** 20) : 0,
    rss_mb: Math.round(mem.rss / 2 ** 20), peak_rss_mb: Math.round(peakRssKb() / 1024), last_loss: +loss.toFixed(4),
    loadavg: os.loadavg().map((x) => +x.toFixed(2)),
    pytorch_cpu_fp32_2threads_tokens_per_s: spec.pytorchTokS,
    node: process.version,
    ...(profileRows ? {
      profile: profileRows.map((r) => ({ op: r.op, calls: r.calls / steps, wall_ms: +(r.wallS / steps * 1e3).toFixed(2), cpu_ms: +(r.cpuS / steps * 1e3).toFixed(2) })),
      native_profile_cpu_ms: { round: +(nativeProf.round / steps * 1e3).toFixed(1), gemm: +(nativeProf.gemm / steps * 1e3).toFixed(1), copy: +(nativeProf.copy / steps * 1e3).toFixed(1) },
    } : {}),
  }));
  opt.dispose();
  model.dispose();
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1]);
if (isMain) await main();

async function main(): Promise<void> {
  const which = arg('model', 'all');
  const steps = Number(arg('steps', '1'));
  const warmup = Number(arg('warmup', '0'));
  const recompute = process.argv.includes('--recompute');
  const backendName = arg('backend', 'js');
  const threads = Number(arg('threads', '2'));
  const native = arg('native', 'auto') as NativeMode;
  const precision = arg('precision', 'fp32') as MatmulPrecision;
  const profile = process.argv.includes('--profile');
  if (!MATMUL_PRECISIONS.includes(precision)) throw new Error(`--precision must be one of ${MATMUL_PRECISIONS.join(', ')}`);
  const backend = await createBackend(backendName, { threads, native });
  for (const name of which === 'all' ? Object.keys(MODELS) : [which]) {
    if (!MODELS[name]) throw new Error(`unknown --model ${name}; choose ${Object.keys(MODELS).join(', ')} or all`);
    await run(name, steps, warmup, recompute, backend, precision, profile);
  }
  backend.dispose();
}
