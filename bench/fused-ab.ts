// The decode step's fused calls against the calls they replace, on a model's own weights: per round,
// every layer's FFN input projection then SwiGLU (linear + swiglu) against linearSwiglu, and every
// layer's qkv projection then QK-norm/RoPE and the KV-cache store (linear + qkNormRope + storeKV)
// against linearQkv, one token, the four sequences alternating in order from round to round. The
// layers' weights together exceed the last-level cache, so each call streams its weight from memory
// as in a decode step. Reports the fastest and the median round of each (ms for all layers): on a
// shared machine the fastest is the reading, the median shows how much other processes took.
//
//   npx tsc -p tsconfig.json && node dist/bench/fused-ab.js --model DIR [--dtype f16] [--threads 2] [--rounds 200]

import { benchArgs } from './args.js';
import { loadModel } from '../src/api.js';
import type { LoadDType } from '../src/model/load.js';
import { Rope } from '../src/model/rope.js';
import type { WasmBackend } from '../src/backends/wasm/wasm-backend.js';

const { values: args } = benchArgs({
  options: {
    model: { type: 'string' }, dtype: { type: 'string', default: 'f16' }, threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '200' }, pos: { type: 'string', default: '128' },
  },
});
if (!args.model) throw new Error('--model DIR is required');
const threads = Number(args.threads), rounds = Number(args.rounds), P = Number(args.pos);
const loaded = await loadModel(args.model, { dtype: args.dtype as LoadDType, backend: 'wasm', threads, native: 'off' });
const model = loaded.model, be = loaded.backend as WasmBackend, c = model.config;
if (!be.linearSwiglu || !be.linearQkv) throw new Error('this checkout has no fused calls');
const D = c.modelDim, hd = c.headDim;
let maxF = 0, maxW = 0;
for (let l = 0; l < c.numLayers; l++) {
  maxF = Math.max(maxF, c.ffnDims[l]);
  maxW = Math.max(maxW, (c.numQueryHeads[l] + 2 * c.numKvHeads[l]) * hd);
}
const xn = be.alloc(D), u = be.alloc(2 * maxF), qkv = be.alloc(maxW);
be.write(xn, Float32Array.from({ length: D }, (_, i) => Math.sin(i) * 0.5));
const cache = model.newCache(P + 1);
const rope = new Rope(c, be).ensure(P + 1);
const pos = Int32Array.of(P);

const sides: Record<string, () => void> = {
  'linear+swiglu': () => {
    for (let l = 0; l < c.numLayers; l++) {
      const F = c.ffnDims[l];
      be.linear(u, xn, model.weights.layers[l].proj1, 1);
      be.swiglu(be.view(u, 0, F), u, 1, F);
    }
  },
  linearSwiglu: () => {
    for (let l = 0; l < c.numLayers; l++) {
      const F = c.ffnDims[l];
      be.linearSwiglu(be.view(u, 0, F), u, xn, model.weights.layers[l].proj1, 1, F);
    }
  },
  'linear+qkNormRope+storeKV': () => {
    for (let l = 0; l < c.numLayers; l++) {
      const L = model.weights.layers[l], Q = c.numQueryHeads[l], H = c.numKvHeads[l];
      be.linear(qkv, xn, L.qkv, 1);
      be.qkNormRope(qkv, 1, pos, Q, H, hd, L.qNorm, L.kNorm, rope, c.normEps);
      be.storeKV(cache.k[l], cache.v[l], qkv, 1, P, Q, H, hd, cache.capacity);
    }
  },
  linearQkv: () => {
    for (let l = 0; l < c.numLayers; l++) {
      const L = model.weights.layers[l], Q = c.numQueryHeads[l], H = c.numKvHeads[l];
      be.linearQkv(qkv, xn, L.qkv, 1, pos, Q, H, hd, L.qNorm, L.kNorm, rope, c.normEps, cache.k[l], cache.v[l], P, cache.capacity);
    }
  },
};
const names = Object.keys(sides), times = new Map<string, number[]>(names.map((n) => [n, []]));
for (let r = 0; r < rounds + 5; r++) {
  for (let i = 0; i < names.length; i++) {
    const n = names[(i + r) % names.length];
    const t0 = performance.now();
    sides[n]();
    if (r >= 5) times.get(n)!.push(performance.now() - t0);
  }
}
const out: Record<string, unknown> = { model: args.model, dtype: args.dtype, threads, rounds, layers: c.numLayers };
for (const [n, t] of times) {
  t.sort((a, b) => a - b);
  out[n] = { best_ms: +t[0].toFixed(4), median_ms: +t[t.length >> 1].toFixed(4) };
}
console.log(JSON.stringify(out));
loaded.dispose?.();
process.exit(0);
