// The 2-4-token int8 GEMVs of Q4_0 and Q4_K (regrouped / repacked at load: blocks_int.as
// gemvQ4_0RIntR, gemvQ4_KRIntR) decode each weight step once for every token; each token's result
// must stay the one-token call's bit for bit (speculative decoding's verification compares them),
// for every block count (an odd last Q4_0 block), odd row counts (a row paired with itself),
// accumulation, and the thread split.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { BlockDType } from '../src/backends/backend.js';
import { Rng } from '../src/core/rng.js';
import { WASM_CONFIGS, cachedWasm, disposeCachedWasm, f32, own } from './helpers/backends.js';
import { blockWeightOn, randomBlocks } from './helpers/blocks.js';

after(disposeCachedWasm);

const CASES: [BlockDType, number[]][] = [['q4_0', [32, 64, 96, 160, 1280]], ['q4_k', [256, 512, 768, 1280]]];

for (const cfg of WASM_CONFIGS) {
  test(`Q4_0/Q4_K int8 GEMV: each token of a 2-4-token call equals a one-token call, bit for bit (${cfg.label})`, async () => {
    const be = await cachedWasm(cfg);
    const rng = new Rng(77);
    for (const [dtype, Ks] of CASES) {
      for (const K of Ks) {
        for (const N of [1, 2, 7, 30]) {
          const w = blockWeightOn(be, dtype, N, K, randomBlocks(rng, dtype, N, K));
          const x = new Float32Array(4 * K);
          for (let i = 0; i < x.length; i++) x[i] = rng.normal();
          const bias = new Float32Array(4 * N);
          for (let i = 0; i < bias.length; i++) bias[i] = rng.normal();
          for (const accumulate of [false, true]) {
            const one: Float32Array[] = [];
            for (let m = 0; m < 4; m++) {
              const o = own(be, bias.subarray(m * N, (m + 1) * N));
              be.linear(o, own(be, x.subarray(m * K, (m + 1) * K)), w, 1, accumulate);
              one.push(f32(o).slice());
            }
            for (let M = 2; M <= 4; M++) {
              const o = own(be, bias.subarray(0, M * N));
              be.linear(o, own(be, x.subarray(0, M * K)), w, M, accumulate);
              for (let m = 0; m < M; m++) {
                assert.deepEqual(f32(o).subarray(m * N, (m + 1) * N), one[m], `${dtype} K=${K} N=${N} acc=${accumulate}: token ${m} of ${M}`);
              }
            }
          }
          be.freeWeight(w);
        }
      }
    }
  });
}
