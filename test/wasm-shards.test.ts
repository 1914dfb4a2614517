// Models larger than one WebAssembly memory (4 GiB): the WASM backend spreads weights, caches and
// training state over several memories and runs each kernel in the memory of its main operand. Here
// the per-memory cap is lowered (shardBytes) so small models take the same paths: results must equal
// a single-memory backend bit for bit, with 1 and 2 threads (the worker pool is restarted when a
// memory is added), and the limits must fail with one clear line.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../src/backends/backend.js';
import type { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import { OpenELMError } from '../src/core/errors.js';
import { resolveConfig, type OpenELMHFConfig } from '../src/model/config.js';
import { initParams } from '../src/model/init.js';
import { loadModelFolder } from '../src/io/model-folder.js';
import { TrainableModel } from '../src/model/trainable.js';
import { AdamW } from '../src/train/adamw.js';
import { clipGradNorm } from '../src/train/clip.js';
import { Rng } from '../src/core/rng.js';
import { createWasm } from './helpers/backends.js';
import { tinyModelDir } from './helpers/tiny.js';

// 2.09M parameters (8.3 MB as f32) for inference; 0.44M (1.7 MB) for training, whose flat parameter,
// gradient and moment tensors each fit one small memory but not together.
const HF: Partial<OpenELMHFConfig> = {
  num_transformer_layers: 4, model_dim: 256, head_dim: 32, num_gqa_groups: 2, qkv_multipliers: [0.5, 1.0],
  ffn_multipliers: [0.5, 2.0], ffn_dim_divisor: 32, vocab_size: 2000, max_context_length: 64, rope_max_length: 64,
};
const TRAIN_HF: Partial<OpenELMHFConfig> = { ...HF, num_transformer_layers: 3, model_dim: 128, vocab_size: 1000 };
const SMALL = 6 << 20, TRAIN_SMALL = 5 << 20;
const backends: WasmBackend[] = [];
async function wasm(threads: number, shardBytes?: number, memoryLimit?: number): Promise<WasmBackend> {
  const be = await createWasm({ threads, shardBytes, memoryLimit });
  backends.push(be);
  return be;
}
after(() => { for (const b of backends) b.dispose(); });

const dir = tinyModelDir(HF, 3);
const toks = [1, 17, 420, 99, 3, 250, 7, 8, 120, 33, 640, 5, 1999];

async function logitsOn(be: Backend, dtype: 'f32' | 'bf16' | 'q8'): Promise<Float32Array[]> {
  const m = loadModelFolder(dir, { backend: be, dtype });
  await be.sync();
  const out = [await m.logitsAll(toks)];
  // a cached decode after a prefill, two sequences batched
  const a = m.newCache(32), b = m.newCache(32);
  out.push(await m.forward([{ cache: a, tokens: toks.slice(0, 7) }, { cache: b, tokens: toks.slice(3, 6) }]));
  for (let i = 0; i < 4; i++) out.push(await m.forward([{ cache: a, tokens: [toks[7 + i]] }, { cache: b, tokens: [toks[i]] }]));
  return out;
}

for (const threads of [1, 2]) {
  test(`a model spread over several wasm memories gives the single-memory logits bit for bit (${threads} thread${threads > 1 ? 's' : ''})`, async () => {
    for (const dtype of ['f32', 'bf16', 'q8'] as const) {
      const one = await wasm(threads), many = await wasm(threads, SMALL);
      const ref = await logitsOn(one, dtype), got = await logitsOn(many, dtype);
      // f32 (8.3 MB) and bf16 (4.2 MB) weights need several 6 MiB memories; q8 (2.2 MB) fits one
      if (dtype !== 'q8') assert.ok(many.memoryCount >= 2, `${dtype}: expected several memories, got ${many.memoryCount}`);
      assert.equal(one.memoryCount, 1);
      for (let i = 0; i < ref.length; i++) assert.ok(got[i].every((v, j) => Object.is(v, ref[i][j])), `${dtype} call ${i} differs`);
      if (threads > 1) assert.ok(many.callStats().parallel > 0, 'kernels were split over the threads after the pool learned the new memories');
    }
  });
}

/** Three training steps on `be`: losses, gradient norms and the final parameters. */
async function threeSteps(be: Backend): Promise<{ losses: number[]; norms: number[]; params: Float32Array }> {
  const config = resolveConfig({ model_type: 'openelm', ...TRAIN_HF } as OpenELMHFConfig);
  const m = new TrainableModel(config, be, { headChunkRows: 16 });
  initParams(config, m.layout, (e, v) => m.setParam(e.name, v), 5, { normJitter: 0.1 });
  const opt = new AdamW(be, m.layout, { placement: 'backend' });
  const rng = new Rng(4);
  const losses: number[] = [], norms: number[] = [];
  for (let s = 0; s < 3; s++) {
    const n = 2 * 24, inputs = new Int32Array(n), targets = new Int32Array(n);
    for (let i = 0; i < n; i++) { inputs[i] = rng.int(1000); targets[i] = rng.int(1000); }
    m.zeroGrad();
    losses.push((await m.forwardBackward(inputs, targets, 2, 24, { zLoss: true })).loss);
    norms.push(await clipGradNorm(be, m.grads, 1.0));
    await opt.update(m.params, m.grads, 1e-3);
  }
  return { losses, norms, params: await be.read(m.params) };
}

test('training over several wasm memories equals training in one, bit for bit', async () => {
  const ref = await threeSteps(await wasm(2));
  const be = await wasm(2, TRAIN_SMALL);
  const got = await threeSteps(be);
  assert.ok(be.memoryCount >= 3, `params, gradients and moments should take several memories, got ${be.memoryCount}`);
  assert.deepEqual(got.losses, ref.losses);
  assert.deepEqual(got.norms, ref.norms);
  assert.ok(got.params.every((v, i) => Object.is(v, ref.params[i])), 'parameters differ');
});

test('one tensor larger than a wasm memory, and more than the backend may hold, fail with one clear line', async () => {
  const be = await wasm(1, SMALL, 24 << 20);
  assert.throws(() => be.alloc(6 << 18), (e: unknown) => e instanceof OpenELMError && /\(6 MiB\) is larger than one WebAssembly memory can hold \(6 MiB\)/.test(e.message));
  assert.throws(() => be.allocWeight('f32', 2048, 1024), (e: unknown) => e instanceof OpenELMError && /larger than one WebAssembly memory/.test(e.message) && /smaller dtype/.test(e.message));
  for (let i = 0; i < 3; i++) be.alloc(256 << 10);
  assert.throws(() => { for (let i = 0; i < 64; i++) be.alloc(256 << 10); }, (e: unknown) => e instanceof OpenELMError && e.code === 'memory' && /may take/.test(e.message));
  assert.equal(be.alloc(16).length, 16, 'the backend still works after refusing');
});

test('weights that do not fit the memory available are refused before anything is allocated, naming a dtype that fits', async () => {
  // f32 weights ~8.3 MB: with 6 MB to spare, bf16 (~4.2 MB) fits and f32 does not
  const be = await wasm(1, undefined, 6 * 2 ** 20 + (await wasm(1)).memory().inUse);
  const before = be.memory().inUse;
  assert.throws(() => loadModelFolder(dir, { backend: be, dtype: 'f32' }),
    (e: unknown) => e instanceof OpenELMError && e.code === 'memory' && /the weights need [\d.]+ MiB as f32/.test(e.message) && /--dtype bf16/.test(e.message));
  assert.equal(be.memory().inUse, before, 'nothing was allocated');
  loadModelFolder(dir, { backend: be, dtype: 'bf16' });
});
