// Training throughput: tokens/s of one optimizer step (zeroGrad + forward + backward + clip + AdamW)
// on random weights and random tokens, printed as one JSON line per model.
//
//   node dist/bench/train.bench.js [--model 35m|270m|all] [--steps N] [--warmup W] [--recompute]
//        [--backend js|wasm] [--threads T] [--native auto|on|off]
//
// With --backend wasm the whole step runs on the WASM backend's memory and threads: the training
// GEMM and kernels of src/train/wasm-train.ts, its AdamW and gradient clipping. tokens_per_s
// counts the N timed steps after W warm-up steps.
// Models: "35m" = 8 layers, width 512, head dim 64, GQA 4, vocab 32000 (35.46M params), batch 8 × 256;
// "270m" = OpenELM-270M at batch 4 × 256. Reference on the 2-core dev machine: PyTorch CPU fp32 with
// 2 threads reaches 410 and 80 tokens/s. The plain-JS GEMM is single-threaded; the matmul share of
// the time is reported so a faster Gemm's effect can be predicted.

import { resolveConfig, parameterCount, presetHFConfig, type OpenELMHFConfig } from '../src/model/config.js';
import { initParams } from '../src/model/init.js';
import { Rng } from '../src/core/rng.js';
import { TrainableModel } from '../src/train/model-grad.js';
import os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { JsGemm, type FloatArray, type Gemm, type TrainKernels } from '../src/train/kernels.js';
import { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import { WasmAdamW, wasmTrainKernels, type WasmTrainKernels } from '../src/train/wasm-train.js';
import { AdamW } from '../src/train/adamw.js';
import { BackendGemm } from '../src/train/backend-gemm.js';
import { createBackend, type NativeMode } from '../src/backends/index.js';
import { clipGradNorm } from '../src/train/clip.js';
import { cosineSchedule } from '../src/train/schedule.js';

/** Wraps a Gemm to count its time and FLOPs (keeps the wrapped GEMM's kernels). */
class TimedGemm implements Gemm {
  seconds = 0; flops = 0;
  readonly kernels?: TrainKernels;
  constructor(private readonly inner: Gemm) { this.kernels = inner.kernels; }
  private time(M: number, N: number, K: number, f: () => void): void {
    const t = performance.now(); f(); this.seconds += (performance.now() - t) / 1000; this.flops += 2 * M * N * K;
  }
  nt(C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number, acc: boolean): void { this.time(M, N, K, () => this.inner.nt(C, A, B, M, N, K, acc)); }
  nn(C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number, acc: boolean): void { this.time(M, N, K, () => this.inner.nn(C, A, B, M, N, K, acc)); }
  tn(C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number, acc: boolean): void { this.time(M, N, K, () => this.inner.tn(C, A, B, M, N, K, acc)); }
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

function run(name: string, steps: number, warmup: number, recompute: boolean, base: Gemm, wk: WasmTrainKernels | null, threads: number): void {
  const spec = MODELS[name];
  const config = resolveConfig(spec.hf);
  const gemm = new TimedGemm(base);
  const model = new TrainableModel(config, { gemm, recompute });
  initParams(config, model.layout, model.params as Float32Array, 1);
  // the moments go to the wasm memory when they fit beside the activations (estimated generously)
  const opt = wk ? new WasmAdamW(wk, model.layout, { reserveBytes: 1.5 * 2 ** 30 }) : new AdamW(model.layout);
  const clip = (g: FloatArray) => (wk ? wk.clipGradNorm(g, 1.0) : clipGradNorm(g, 1.0));
  const sched = cosineSchedule({ maxLr: 1e-3, minLr: 1e-4, warmupSteps: 10, maxSteps: 1000 });
  const rng = new Rng(2);
  const { B, T } = spec, n = B * T;
  const times: number[] = [];
  let fb = 0, optS = 0, gemmS = 0, gemmF = 0, loss = 0;
  for (let s = 0; s < warmup + steps; s++) {
    const inputs = new Int32Array(n), targets = new Int32Array(n);
    for (let i = 0; i < n; i++) { inputs[i] = rng.int(config.vocabSize); targets[i] = rng.int(config.vocabSize); }
    const g0 = gemm.seconds, f0 = gemm.flops;
    const t0 = performance.now();
    model.zeroGrad();
    const r = model.forwardBackward(inputs, targets, B, T, { zLoss: true });
    const t1 = performance.now();
    clip(model.grads);
    opt.update(model.params, model.grads, sched.lr(s));
    const t2 = performance.now();
    loss = r.loss;
    if (s < warmup) continue;
    times.push((t2 - t0) / 1000); fb += (t1 - t0) / 1000; optS += (t2 - t1) / 1000;
    gemmS += gemm.seconds - g0; gemmF += gemm.flops - f0;
  }
  const total = times.reduce((a, b) => a + b, 0);
  const mem = process.memoryUsage();
  console.log(JSON.stringify({
    bench: 'train', model: name, params: parameterCount(config), layers: config.numLayers, width: config.modelDim,
    batch: B, seq: T, steps, warmup, recompute, kernels: model.kernels.name, threads,
    tokens_per_s: +(n * steps / total).toFixed(2),
    seconds_per_step: times.map((t) => +t.toFixed(3)),
    forward_backward_s: +(fb / steps).toFixed(3), clip_adamw_s: +(optS / steps).toFixed(3),
    gemm_s: +(gemmS / steps).toFixed(3), gemm_gflops: +(gemmF / gemmS / 1e9).toFixed(2),
    gemm_share: +(gemmS / total).toFixed(3),
    native: wk?.backend.native?.library ?? null,
    moments_in_wasm: opt instanceof WasmAdamW ? opt.inWasm : false,
    wasm_mb: wk ? Math.round(wk.backend.memoryStats().reserved / 2 ** 20) : 0,
    rss_mb: Math.round(mem.rss / 2 ** 20), peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024), last_loss: +loss.toFixed(4),
    loadavg: os.loadavg().map((x) => +x.toFixed(2)),
    pytorch_cpu_fp32_2threads_tokens_per_s: spec.pytorchTokS,
    node: process.version,
  }));
  if (opt instanceof WasmAdamW) opt.dispose();
  model.releaseActivations();
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
  const backend = backendName === 'js' ? null : await createBackend(backendName as 'wasm' | 'auto', { threads, native });
  const wk = backend instanceof WasmBackend ? wasmTrainKernels(backend) : null;
  const base: Gemm = wk ? wk.gemm : backend ? new BackendGemm(backend) : new JsGemm();
  for (const name of which === 'all' ? Object.keys(MODELS) : [which]) {
    if (!MODELS[name]) throw new Error(`unknown --model ${name}; choose ${Object.keys(MODELS).join(', ')} or all`);
    run(name, steps, warmup, recompute, base, wk, backend ? threads : 1);
  }
  backend?.dispose();
}
