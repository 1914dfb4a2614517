// Throughput of the wasm backend at OpenELM-270M shapes (a script, not a test): prints one JSON
// object with
//   kernels: GEMV (1×1280 · 1280×3840, "cold" = cycling through >256 MB of distinct weights so
//            nothing stays in the 32 MiB L3, as in a real decode step; "hot" = one matrix), the tied
//            head GEMV (1×1280 · 1280×32000) and GEMM (128 and 512 × 1280 · 1280×3840), in
//            GFLOP/s (2·M·N·K per second) and weight GB/s, per dtype and thread count;
//   model:   a random OpenELM-270M-shaped model per dtype: prefill tok/s for a 128-token prompt and
//            decode tok/s for the next 64 tokens (logits every step), the figures llama.cpp's
//            (F32 147 / 22.0, Q8_0 386 / 52.0 tok/s on the 2-core Zen 4 dev machine) compare to.
//
//   npx tsc -p tsconfig.json && node dist/bench/kernels.bench.js [--threads 1,2]
//     [--dtypes f32,bf16,f16,q8,q4] [--skip-kernels] [--skip-model] [--prompt 128] [--gen 64]

import os from 'node:os';
import { benchArgs } from './args.js';
import type { Weight, WeightDType } from '../src/backends/backend.js';
import { q4MetaBytes, weightBytes } from '../src/backends/weight-format.js';
import { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import { nodePlatform } from '../src/platform/node.js';
import { presetHFConfig, resolveConfig, type OpenELMConfig } from '../src/model/config.js';
import { OpenELM, type ModelWeights } from '../src/model/openelm.js';

const { values: args } = benchArgs({
  options: {
    threads: { type: 'string', default: '1,2' },
    dtypes: { type: 'string', default: 'f32,bf16,f16,q8,q4' },
    'skip-kernels': { type: 'boolean', default: false },
    'skip-model': { type: 'boolean', default: false },
    prompt: { type: 'string', default: '128' },
    gen: { type: 'string', default: '64' },
  },
});
const THREADS = args.threads.split(',').map(Number);
const DTYPES = args.dtypes.split(',') as WeightDType[];
const PROMPT = Number(args.prompt), GEN = Number(args.gen);

/** Fill a weight with uniform noise of the given std (quantizing as its dtype requires), fast. */
function fillRandom(w: Weight, std: number, seed: number): void {
  let s = (seed * 2654435761) >>> 0 || 1;
  const a = std * Math.sqrt(3) * 2 / 4294967296;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s * a - std * Math.sqrt(3); };
  const K = w.cols, n = w.rows * K;
  switch (w.dtype) {
    case 'f32': { const d = w.data as Float32Array; for (let i = 0; i < n; i++) d[i] = next(); return; }
    case 'bf16': { const d = w.data as Uint16Array; const f = new Float32Array(1), u = new Uint32Array(f.buffer);
      for (let i = 0; i < n; i++) { f[0] = next(); d[i] = u[0] >>> 16; } return; }
    case 'f16': { const d = w.data as Uint16Array; const f = new Float32Array(1), u = new Uint32Array(f.buffer);
      // |x| < 2: exponent fits; truncating the mantissa is fine for a benchmark
      for (let i = 0; i < n; i++) { f[0] = next(); const b = u[0]; const e = ((b >>> 23) & 255) - 112;
        d[i] = e <= 0 ? (b >>> 16) & 0x8000 : ((b >>> 16) & 0x8000) | (e << 10) | ((b >>> 13) & 0x3ff); } return; }
    case 'q8': { const d = w.data as Int8Array, sc = w.scales!; const q = std * Math.sqrt(3) / 127;
      for (let i = 0; i < n; i++) d[i] = Math.round(next() / q);
      sc.fill(q); return; }
    case 'q4': { const d = w.data as Uint8Array, meta = w.scales as Uint8Array; const r = std * Math.sqrt(3);
      for (let i = 0; i < n / 2; i++) d[i] = (next() * 1e6) & 255;
      // every block: scale 2r/15 (code 255), min −r (code −127)
      const K = w.cols, mb = q4MetaBytes(K), dv = new DataView(meta.buffer, meta.byteOffset, meta.byteLength);
      for (let o = 0; o < meta.length; o += mb) {
        dv.setFloat32(o, 2 * r / 15 / 255, true); dv.setFloat32(o + 4, r / 127, true);
        meta.fill(255, o + 8, o + 8 + K / 32); meta.fill(-127 & 255, o + 8 + K / 32, o + 8 + K / 16);
      }
      return; }
  }
}

function median(xs: number[]): number { const s = [...xs].sort((a, b) => a - b); return s[s.length >> 1]; }

/** Median ms per call over 5 rounds of `reps` calls after warm-up. */
function timeIt(fn: (i: number) => void, reps: number): number {
  for (let i = 0; i < Math.max(3, reps >> 2); i++) fn(i);
  const t: number[] = [];
  let k = 0;
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) fn(k++);
    t.push((performance.now() - t0) / reps);
  }
  return median(t);
}

/** A window of rows [r0, r0 + rows) of a big weight, as its own Weight. */
function rowsOf(big: Weight, r0: number, rows: number): Weight {
  const K = big.cols, per = big.dtype === 'q4' ? K / 2 : K;
  const w: Weight = { dtype: big.dtype, rows, cols: K, data: big.data.subarray(r0 * per, (r0 + rows) * per) };
  if (big.scales) w.scales = big.dtype === 'q4' ? big.scales.subarray(r0 * q4MetaBytes(K), (r0 + rows) * q4MetaBytes(K)) : big.scales.subarray(r0 * K / 32, (r0 + rows) * K / 32);
  return w;
}

const r1 = (x: number) => Math.round(x * 10) / 10;

function kernelBench(be: WasmBackend, dtype: WeightDType) {
  const N = 3840, K = 1280, V = 32000;
  const per = weightBytes(dtype, N * K);
  const copies = Math.max(2, Math.ceil(256e6 / per));
  const big = be.allocWeight(dtype, N * copies, K);
  fillRandom(big, 1 / Math.sqrt(K), 1);
  const ws: Weight[] = [];
  for (let c = 0; c < copies; c++) { const w = rowsOf(big, c * N, N); be.prepareWeight(w); ws.push(w); }
  const head = rowsOf(big, 0, Math.min(V, N * copies));
  be.prepareWeight(head);
  const x = be.allocF32(512 * K);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.37);
  const out = be.allocF32(512 * Math.max(N, V));
  const gf = (M: number, n: number, ms: number) => r1((2 * M * n * K) / ms / 1e6);
  const gb = (n: number, ms: number) => r1(weightBytes(dtype, n * K) / ms / 1e6);
  const hot = timeIt(() => be.linear(out, x, ws[0], 1), 100);
  const cold = timeIt((i) => be.linear(out, x, ws[i % copies], 1), 100);
  const headMs = timeIt(() => be.linear(out, x, head, 1), 10);
  const g128 = timeIt(() => be.linear(out, x, ws[0], 128), 2);
  const g512 = timeIt(() => be.linear(out, x, ws[0], 512), 1);
  be.freeWeight(big); be.freeF32(x); be.freeF32(out);
  return {
    dtype, threads: be.threads,
    gemv_cold_gflops: gf(1, N, cold), gemv_cold_gbs: gb(N, cold),
    gemv_hot_gflops: gf(1, N, hot),
    head_gemv_gflops: gf(1, head.rows, headMs), head_gemv_gbs: gb(head.rows, headMs), head_gemv_ms: r1(headMs * 100) / 100,
    gemm128_gflops: gf(128, N, g128), gemm512_gflops: gf(512, N, g512),
  };
}

function modelWeights(be: WasmBackend, c: OpenELMConfig, dtype: WeightDType): { w: ModelWeights; all: (Weight | Float32Array)[] } {
  const D = c.modelDim, hd = c.headDim;
  const all: (Weight | Float32Array)[] = [];
  let seed = 1;
  const lin = (rows: number, cols: number) => {
    const w = be.allocWeight(dtype, rows, cols);
    fillRandom(w, 1 / Math.sqrt(cols), seed++);
    be.prepareWeight(w);
    all.push(w);
    return w;
  };
  const ones = (n: number) => { const a = be.allocF32(n); a.fill(1); all.push(a); return a; };
  const embed = lin(c.vocabSize, D);
  const layers = [];
  for (let l = 0; l < c.numLayers; l++) {
    const Q = c.numQueryHeads[l], H = c.numKvHeads[l], F = c.ffnDims[l];
    layers.push({
      attnNorm: ones(D), qkv: lin((Q + 2 * H) * hd, D), qNorm: ones(hd), kNorm: ones(hd),
      out: lin(D, Q * hd), ffnNorm: ones(D), proj1: lin(2 * F, D), proj2: lin(D, F),
    });
  }
  return { w: { embed, layers, norm: ones(D), head: embed }, all };
}

async function modelBench(be: WasmBackend, c: OpenELMConfig, dtype: WeightDType) {
  const t0 = performance.now();
  const { w, all } = modelWeights(be, c, dtype);
  const buildS = (performance.now() - t0) / 1000;
  const model = new OpenELM(c, be, w);
  const prompt = Array.from({ length: PROMPT }, (_, i) => (i * 7919 + 13) % c.vocabSize);
  const cache = model.newCache(PROMPT + GEN + 8);
  // warm-up: one short prefill and a few decode steps (JIT, wasm tier-up, page faults)
  await model.forward([{ cache, tokens: prompt.slice(0, 16) }]);
  for (let i = 0; i < 4; i++) await model.forward([{ cache, tokens: [i + 5] }]);
  const calls0 = be.callStats();
  const prefill: number[] = [], decode: number[] = [];
  for (let rep = 0; rep < 3; rep++) {
    cache.reset();
    let t = performance.now();
    let logits = await model.forward([{ cache, tokens: prompt }]);
    prefill.push(PROMPT / ((performance.now() - t) / 1000));
    t = performance.now();
    for (let i = 0; i < GEN; i++) {
      let best = 0;
      for (let j = 1; j < logits.length; j++) if (logits[j] > logits[best]) best = j;
      logits = await model.forward([{ cache, tokens: [best] }]);
    }
    decode.push(GEN / ((performance.now() - t) / 1000));
  }
  const calls1 = be.callStats();
  let bytes = 0;
  for (const x of all) if (!(x instanceof Float32Array)) bytes += weightBytes(x.dtype, x.rows * x.cols);
  for (const x of all) { if (x instanceof Float32Array) be.freeF32(x); else be.freeWeight(x); }
  cache.dispose();
  model.release();
  return {
    dtype, threads: be.threads, weights_gb: r1(bytes / 1e8) / 10,
    prefill_tok_s: r1(median(prefill)), decode_tok_s: r1(median(decode)),
    decode_weight_gbs: r1(median(decode) * bytes / 1e9), build_s: r1(buildS),
    // kernel calls during the timed runs: split over the threads / run inline
    calls_parallel: calls1.parallel - calls0.parallel, calls_inline: calls1.inline - calls0.inline,
  };
}

const result: Record<string, unknown> = {
  machine: { cpus: os.cpus()[0]?.model, cores: os.availableParallelism(), node: process.version, loadavg_start: os.loadavg().map(r1) },
  shapes: { gemv: '1x1280 . 1280x3840', head: '1x1280 . 1280x32000', gemm: 'Mx1280 . 1280x3840', model: 'OpenELM-270M, random weights' },
};
const kernels: unknown[] = [], model: unknown[] = [];
const config = resolveConfig(presetHFConfig('OpenELM-270M'));
for (const threads of THREADS) {
  const be = await WasmBackend.create({ threads, spawnWorker: nodePlatform.spawnKernelWorker });
  result.relaxed_simd = be.relaxedSimd;
  try {
    for (const dtype of DTYPES) {
      if (!args['skip-kernels']) { const k = kernelBench(be, dtype); kernels.push(k); console.error(JSON.stringify(k)); }
      if (!args['skip-model']) { const m = await modelBench(be, config, dtype); model.push(m); console.error(JSON.stringify(m)); }
    }
  } finally {
    be.dispose();
  }
}
result.kernels = kernels;
result.model = model;
result.loadavg_end = os.loadavg().map(r1);
console.log(JSON.stringify(result, null, 2));
