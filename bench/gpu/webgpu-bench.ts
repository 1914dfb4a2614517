// The webgpu backend on a real GPU: OpenELM-270M and 1.1B prefill and greedy decode (bf16 weights),
// and OpenELM-270M training tokens/s with MFU, on random weights of the released shapes (speed does
// not depend on the values). One JSON line per measurement on stdout; bench/gpu/run.sh runs it next
// to PyTorch (bench/gpu/torch_bench.py) and compares.
//
//   node dist/bench/gpu/webgpu-bench.js [--infer 270m,1.1b] [--train 270m] [--prompt 512] [--gen 128]
//        [--repeats 3] [--dtype bf16] [--batch 8] [--seq 1024] [--steps 5] [--warmup 2] [--peak-tflops 989]

import '../../src/platform/node.js';
import { parameterCount, presetHFConfig, resolveConfig, paramSpecs, type OpenELMConfig } from '../../src/model/config.js';
import { freeWeights } from '../../src/model/openelm.js';
import { modelFromSource, validateDType, type TensorSource } from '../../src/model/load.js';
import { initParams } from '../../src/model/init.js';
import { TrainableModel } from '../../src/model/trainable.js';
import { AdamW } from '../../src/train/adamw.js';
import { clipGradNorm } from '../../src/train/clip.js';
import { Rng } from '../../src/core/rng.js';
import { f32ToBf16, f32ToF16 } from '../../src/core/dtype.js';
import { WebGPUBackend } from '../../src/backends/webgpu/webgpu-backend.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}
const num = (name: string, dflt: number) => Number(arg(name, String(dflt)));
const list = (name: string, dflt: string) => arg(name, dflt).split(',').filter((m) => m && m !== 'none');
const PRESETS: Record<string, string> = { '270m': 'OpenELM-270M', '450m': 'OpenELM-450M', '1.1b': 'OpenELM-1_1B', '3b': 'OpenELM-3B' };
const median = (a: number[]) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const emit = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');

function config(name: string): OpenELMConfig {
  // for checking this script without a GPU
  if (name === 'tiny') {
    return resolveConfig({ ...presetHFConfig('OpenELM-270M'), num_transformer_layers: 2, model_dim: 64, head_dim: 16, ffn_multipliers: [0.5, 4.0], ffn_dim_divisor: 32, vocab_size: 512 });
  }
  const preset = PRESETS[name];
  if (!preset) throw new Error(`unknown model ${name}; choose one of ${Object.keys(PRESETS).join(', ')}`);
  return resolveConfig(presetHFConfig(preset));
}

/**
 * Weights of the model's shapes, as a checkpoint would hand them to the loader: small uniform
 * values (a cheap generator: the 1.1B model has 1.1 billion), norms 1.
 */
function randomSource(c: OpenELMConfig, seed: number): TensorSource {
  const shapes = new Map(paramSpecs(c).map((p) => [p.name, p.shape]));
  const fill = <A extends { length: number; [i: number]: number }>(name: string, dst: A, conv: (v: number) => number, start = 0): A => {
    if (shapes.get(name)!.length === 1) { for (let i = 0; i < dst.length; i++) dst[i] = conv(1); return dst; }
    let x = (seed * 2654435761 + name.length * 40503 + start * 69069 + 1) >>> 0;
    for (let i = 0; i < dst.length; i++) {
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      dst[i] = conv((x / 4294967296 - 0.5) * 0.07);
    }
    return dst;
  };
  return {
    names: () => [...shapes.keys()],
    info: (name) => ({ dtype: 'F32', shape: shapes.get(name)! }),
    expectShape: () => undefined,
    readF32: (name, dst) => fill(name, dst, (v) => v),
    readF32Range: (name, start, count, dst) => fill(name, dst.subarray(0, count), (v) => v, start),
    readBF16: (name, dst) => fill(name, dst, f32ToBf16),
    readF16: (name, dst) => fill(name, dst, f32ToF16),
  };
}

async function inference(name: string, be: WebGPUBackend): Promise<void> {
  const c = config(name), P = num('prompt', 512), G = num('gen', 128), R = num('repeats', 3);
  const dtype = validateDType(arg('dtype', 'bf16'));
  const t0 = performance.now();
  const model = modelFromSource(randomSource(c, 1), c, be, dtype);
  await model.warmup();
  const loadS = (performance.now() - t0) / 1000;
  const rng = new Rng(5);
  const ids = (n: number) => Array.from({ length: n }, () => 3 + rng.int(c.vocabSize - 3));
  const pre: number[] = [], dec: number[] = [];
  let submitsPerToken = 0, bytesPerToken = 0;
  for (let r = 0; r <= R; r++) {
    const cache = model.newCache(P + G + 1);
    const ta = performance.now();
    const first = model.forwardDevice([{ cache, tokens: ids(P) }]);
    let next = (await be.argmax(first.logits, first.rows, c.vocabSize))[0];
    const tb = performance.now();
    const s0 = be.rt.stats();
    for (let i = 0; i < G; i++) {
      const { logits, rows } = model.forwardDevice([{ cache, tokens: [next] }]);
      next = (await be.argmax(logits, rows, c.vocabSize))[0];
    }
    const tc = performance.now();
    const s1 = be.rt.stats();
    cache.dispose();
    submitsPerToken = (s1.submits - s0.submits) / G;
    bytesPerToken = (s1.readBytes - s0.readBytes) / G;
    if (r === 0) continue; // warm-up round (buffers grow to these shapes)
    pre.push(tb - ta); dec.push(tc - tb);
  }
  emit({
    backend: 'webgpu', what: 'inference', model: name, params: parameterCount(c), dtype, prompt_tokens: P, gen_tokens: G,
    prefill_tok_s: +(P / (median(pre) / 1000)).toFixed(1), decode_tok_s: +(G / (median(dec) / 1000)).toFixed(1),
    decode_ms_per_token: +(median(dec) / G).toFixed(3), submits_per_token: submitsPerToken, read_bytes_per_token: bytesPerToken,
    device_mb: Math.round(be.memory().reserved / 2 ** 20), load_and_warmup_s: +loadS.toFixed(1), device: be.describe(),
  });
  model.release();
  freeWeights(be, model.weights);
}

async function training(name: string, be: WebGPUBackend): Promise<void> {
  const c = config(name), B = num('batch', 8), T = num('seq', 1024), steps = num('steps', 5), warm = num('warmup', 2);
  const peak = num('peak-tflops', 989);
  const model = new TrainableModel(c, be, { recompute: arg('recompute', 'false') === 'true' });
  initParams(c, model.layout, (e, v) => model.setParam(e.name, v), 1);
  const opt = new AdamW(be, model.layout, { weightDecay: 0.1 });
  const rng = new Rng(9);
  const batch = () => Int32Array.from({ length: B * T }, () => rng.int(c.vocabSize));
  const times: number[] = [];
  let loss = NaN;
  for (let s = 0; s < warm + steps; s++) {
    const inputs = batch(), targets = batch();
    const t0 = performance.now();
    model.zeroGrad();
    const r = await model.forwardBackward(inputs, targets, B, T, { zLoss: 1e-4 });
    await clipGradNorm(be, model.grads, 1.0);
    await opt.update(model.params, model.grads, 1e-4);
    await be.sync();
    if (s >= warm) times.push(performance.now() - t0);
    loss = r.loss;
  }
  const tokS = (B * T) / (median(times) / 1000);
  // model FLOPs per token: 6·N for the weights, plus causal attention (QKᵀ and PV, forward and backward)
  let attn = 0;
  for (let l = 0; l < c.numLayers; l++) attn += 6 * T * c.numQueryHeads[l] * c.headDim;
  const n = parameterCount(c), flopsPerToken = 6 * n + attn;
  emit({
    backend: 'webgpu', what: 'training', model: name, params: n, batch: B, seq: T, steps, precision: 'f32',
    tokens_per_s: Math.round(tokS), seconds_per_step: times.map((t) => +(t / 1000).toFixed(3)), last_loss: +loss.toFixed(4),
    model_tflops: +((tokS * flopsPerToken) / 1e12).toFixed(2), mfu_vs_peak: +((tokS * flopsPerToken) / (peak * 1e12)).toFixed(4), peak_tflops: peak,
    device_mb: Math.round(be.memory().reserved / 2 ** 20), device: be.describe(),
  });
  opt.dispose();
  model.dispose();
}

const be = await WebGPUBackend.create();
try {
  for (const m of list('infer', '270m,1.1b')) {
    try { await inference(m, be); } catch (e) { emit({ backend: 'webgpu', what: 'inference', model: m, error: e instanceof Error ? e.message : String(e) }); }
  }
  for (const m of list('train', '270m')) {
    try { await training(m, be); } catch (e) { emit({ backend: 'webgpu', what: 'training', model: m, error: e instanceof Error ? e.message : String(e) }); }
  }
} finally {
  be.dispose();
}
