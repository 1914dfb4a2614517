// Prompts (prefill) of block weights as GGUF files store them, one linear at a time: the WASM default
// (the integer GEMM, int8 activations, for the dtypes that have one: kernels/igemm.as hasIntGemm; the
// exact path for the others), the WASM f32 GEMM on the exactly decoded weights (`exact`), and
// the native addon (weights widened to f32 on its AVX2 kernel) where it loads. One process, the paths
// alternating round by round, each keeping its best round by wall time (other processes on a shared
// machine only ever slow a round down), so the ratios within one run are what mean something.
// A script, not a test.
//
//   npx tsc -p tsconfig.json && node dist/bench/block-prefill.js [--dtypes q8_0,q4_0,q4_1,q4_k,q6_k]
//     [--shapes 1536x1280,1280x1024,7168x1280,1280x3584] [--m 128] [--threads 1] [--rounds 7] [--simd128]
//
// Shapes are N×K (output columns × inputs), the default ones OpenELM-270M's (qkv, out, FFN up/down).
// Prints one JSON line per dtype and shape: GOP/s (2·M·N·K per call) of each path and the ratios
// default / exact and native / default.

import { benchArgs } from './args.js';
import { nodePlatform } from '../src/platform/node.js';
import { nativeBlas } from '../src/platform/node-native.js';
import { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import type { BlockDType } from '../src/backends/backend.js';
import { isBlockDType } from '../src/backends/weight-format.js';
import { Rng } from '../src/core/rng.js';
import { blockWeightOn, randomBlocks } from '../test/helpers/blocks.js';

const { values: args } = benchArgs({
  options: {
    dtypes: { type: 'string', default: 'q8_0,q4_0,q4_1,q4_k,q6_k' }, shapes: { type: 'string', default: '1536x1280,1280x1024,7168x1280,1280x3584' },
    m: { type: 'string', default: '128' }, threads: { type: 'string', default: '1' }, rounds: { type: 'string', default: '7' },
    simd128: { type: 'boolean', default: false },
  },
});
const M = Number(args.m), T = Number(args.threads), R = Number(args.rounds);

async function main(): Promise<void> {
  const opts = { threads: T, spawnWorker: nodePlatform.spawnKernelWorker, relaxedSimd: !args.simd128 };
  const wasm = await WasmBackend.create(opts);
  const nat = nativeBlas('auto');
  const withNative = nat ? await WasmBackend.create({ ...opts, native: nat }) : null;
  if (withNative) withNative.nativeMinRows = 1;
  const rng = new Rng(7);
  try {
    for (const dtype of args.dtypes!.split(',')) {
      if (!isBlockDType(dtype)) throw new Error(`${dtype} is not a block dtype`);
      for (const shape of args.shapes!.split(',')) {
        const [N, K] = shape.split('x').map(Number);
        const data = randomBlocks(rng, dtype as BlockDType, N, K);
        const w = blockWeightOn(wasm, dtype, N, K, data), wn = withNative ? blockWeightOn(withNative, dtype, N, K, data) : null;
        const x = wasm.allocF32(M * K), out = wasm.allocF32(M * N);
        for (let i = 0; i < x.length; i++) x[i] = rng.normal();
        const xn = withNative?.allocF32(M * K), outn = withNative?.allocF32(M * N);
        xn?.set(x);
        const paths = ['default', 'exact', ...(withNative ? ['native'] : [])];
        const best: Record<string, number> = Object.fromEntries(paths.map((p) => [p, Infinity]));
        for (let r = 0; r <= R; r++) {
          for (const p of r % 2 ? [...paths].reverse() : paths) {
            const t0 = performance.now();
            if (p === 'native') withNative!.linear(outn!, xn!, wn!, M);
            else wasm.linear(out, x, w, M, false, p === 'exact');
            // (round 0 warms up)
            if (r > 0) best[p] = Math.min(best[p], performance.now() - t0);
          }
        }
        const gops = (ms: number) => Math.round((2 * M * N * K) / ms / 1e5) / 10;
        const r2 = (v: number) => Math.round(v * 100) / 100;
        console.log(JSON.stringify({
          dtype, N, K, M, threads: T, build: wasm.relaxedSimd ? 'relaxed' : 'simd128',
          gop_s: Object.fromEntries(paths.map((p) => [p, gops(best[p])])),
          default_over_exact: r2(best.exact / best.default), ...(withNative ? { native_over_default: r2(best.default / best.native) } : {}),
        }));
        wasm.freeWeight(w); wasm.freeF32(x); wasm.freeF32(out);
        if (withNative) { withNative.freeWeight(wn!); withNative.freeF32(xn!); withNative.freeF32(outn!); }
      }
    }
  } finally {
    wasm.dispose();
    withNative?.dispose();
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`block-prefill: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
