// Training state past one memory: parameters, gradients and AdamW's moments cut into chunks of whole
// tensors when one backend tensor cannot hold them (model/chunked.ts). The WASM backend's per-memory
// cap is lowered (shardBytes) so a small model is cut into several chunks over many memories: its
// losses, gradient norms, parameters and moments must equal the one-memory run bit for bit, and a
// checkpoint written from chunks (streamed tensor by tensor) must resume bit-identically.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Backend } from '../src/backends/backend.js';
import type { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import { OpenELMError } from '../src/core/errors.js';
import { resolveConfig, type OpenELMConfig, type OpenELMHFConfig } from '../src/model/config.js';
import { initParams } from '../src/model/init.js';
import { paramLayout } from '../src/model/layout.js';
import { chunkSpans } from '../src/model/chunked.js';
import { TrainableModel } from '../src/model/trainable.js';
import { AdamW } from '../src/train/adamw.js';
import { clipGradNorm } from '../src/train/clip.js';
import { STATE_VERSION, readCheckpointInto, writeCheckpoint, type TrainerState } from '../src/train/state.js';
import { Rng } from '../src/core/rng.js';
import { createWasm, webgpuProbe, webgpuRequired } from './helpers/backends.js';
import { WebGPUBackend } from '../src/backends/webgpu/webgpu-backend.js';

// 0.44M parameters; the embedding (128k values) is the largest tensor
const HF: Partial<OpenELMHFConfig> = {
  num_transformer_layers: 3, model_dim: 128, head_dim: 32, num_gqa_groups: 2, qkv_multipliers: [0.5, 1.0],
  ffn_multipliers: [0.5, 2.0], ffn_dim_divisor: 32, vocab_size: 1000, max_context_length: 64, rope_max_length: 64,
};
const config: OpenELMConfig = resolveConfig({ model_type: 'openelm', ...HF } as OpenELMHFConfig);
const THREADS = 2;
const backends: Backend[] = [];
after(() => { for (const b of backends) b.dispose(); });
async function wasm(shardBytes?: number): Promise<WasmBackend> {
  const be = await createWasm({ threads: THREADS, shardBytes });
  backends.push(be);
  return be;
}

/**
 * A per-memory cap whose largest tensor holds about 150k values, so the 0.44M parameters are cut
 * into at least three chunks (the backend keeps a headroom per memory: a quarter of it, at least
 * twice the kernels' per-thread scratch).
 */
async function smallCap(): Promise<number> {
  const probe = await wasm();
  const scratch = (probe.exports.trainScratchBytes() + probe.exports.gemmScratch()) * THREADS;
  const want = 150_000 * 4 + 65536 + 4096;
  return Math.ceil(Math.max(want / 0.75, want + 2 * scratch) / 65536) * 65536;
}

interface Run { losses: number[]; norms: number[]; params: Float32Array; m: Float32Array; v: Float32Array; }

function batch(rng: Rng): { inputs: Int32Array; targets: Int32Array } {
  const n = 2 * 24, inputs = new Int32Array(n), targets = new Int32Array(n);
  for (let i = 0; i < n; i++) { inputs[i] = rng.int(1000); targets[i] = rng.int(1000); }
  return { inputs, targets };
}

/** Steps [from, to) of one run: batches from a seeded stream (skipping the earlier steps' batches). */
async function steps(m: TrainableModel, opt: AdamW, from: number, to: number): Promise<{ losses: number[]; norms: number[] }> {
  const rng = new Rng(4);
  for (let s = 0; s < from; s++) batch(rng);
  const losses: number[] = [], norms: number[] = [];
  for (let s = from; s < to; s++) {
    const { inputs, targets } = batch(rng);
    m.zeroGrad();
    losses.push((await m.forwardBackward(inputs, targets, 2, 24, { zLoss: true })).loss);
    // a max norm below the gradients' norm: every step clips
    norms.push(await clipGradNorm(m.backend, m.gradChunks, 0.5));
    await opt.update(m.paramChunks, m.gradChunks, 3e-3);
  }
  return { losses, norms };
}

function fresh(be: Backend): { m: TrainableModel; opt: AdamW } {
  const m = new TrainableModel(config, be, { headChunkRows: 16 });
  initParams(config, m.layout, (e, v) => m.setParam(e.name, v), 5, { normJitter: 0.1 });
  return { m, opt: new AdamW(be, m.layout, { placement: 'backend', weightDecay: 0.1 }) };
}

async function finish(m: TrainableModel, opt: AdamW, r: { losses: number[]; norms: number[] }): Promise<Run> {
  const n = m.layout.total;
  const out = { ...r, params: await m.paramChunks.read(), m: await opt.readMoment('m', 0, n), v: await opt.readMoment('v', 0, n) };
  opt.dispose();
  m.dispose();
  return out;
}

function sameBits(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: lengths`);
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) assert.fail(`${what} differ at ${i}: ${a[i]} vs ${b[i]}`);
}

function sameRun(got: Run, ref: Run): void {
  assert.deepEqual(got.losses, ref.losses);
  assert.deepEqual(got.norms, ref.norms);
  sameBits(got.params, ref.params, 'parameters');
  sameBits(got.m, ref.m, 'AdamW m');
  sameBits(got.v, ref.v, 'AdamW v');
}

const cap = await smallCap();

test('the layout is cut between tensors into chunks that cover it, each within the limit', () => {
  const layout = paramLayout(config);
  assert.deepEqual(chunkSpans(layout, layout.total, 'p'), [{ start: 0, size: layout.total }]);
  const spans = chunkSpans(layout, 150_016, 'p');
  assert.ok(spans.length >= 3);
  const starts = new Set(layout.entries.map((e) => e.offset));
  let at = 0;
  for (const s of spans) {
    assert.equal(s.start, at);
    assert.ok(starts.has(s.start) && s.size <= 150_016 && s.size > 0);
    at += s.size;
  }
  assert.equal(at, layout.total);
  assert.throws(() => chunkSpans(layout, 100_000, 'the gradients'),
    (e: unknown) => e instanceof OpenELMError && e.code === 'memory' && /^transformer\.token_embeddings\.weight \(0\.5 MiB of the gradients\) is larger than/.test(e.message));
});

test('sumSquares over several tensors equals the sum over their concatenation bit for bit', async () => {
  const rng = new Rng(11);
  // blocks of 65536 (WASM) and 4096 (WebGPU): cuts inside blocks, a block spanning three tensors, a short last block
  const n = 65536 * 3 + 1234;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (rng.next() - 0.5) * Math.pow(10, rng.int(12) - 6);
  const cuts = [0, 1000, 65536 + 7, 65536 + 100, 65536 + 200, 2 * 65536, 3 * 65536 + 5, n];
  const list: Backend[] = [await wasm(), new JsBackend()];
  if (webgpuProbe.adapter || webgpuRequired) {
    const gpu = await WebGPUBackend.create();
    backends.push(gpu);
    list.push(gpu);
  }
  for (const be of list) {
    const flat = be.alloc(n);
    be.write(flat, x);
    const parts = cuts.slice(1).map((end, i) => {
      const t = be.alloc(end - cuts[i]);
      be.write(t, x.subarray(cuts[i], end));
      return t;
    });
    const want = await be.sumSquares(flat);
    assert.ok(Object.is(await be.sumSquares(parts), want), `${be.name}: split ${await be.sumSquares(parts)} vs flat ${want}`);
    assert.ok(Object.is(await be.sumSquares([flat]), want));
    // a different sum order would give other bits for this spread of magnitudes
    let naive = 0;
    for (const t of parts) naive += await be.sumSquares(t);
    if (be.name !== 'js') assert.notEqual(naive, want, 'the test data tells a per-tensor sum from the blocked one');
    for (const t of [flat, ...parts]) be.free(t);
  }
});

test('training in chunks over many wasm memories equals training in one, bit for bit', async () => {
  const one = await wasm();
  const a = fresh(one);
  assert.equal(a.m.paramChunks.chunks.length, 1);
  const ref = await finish(a.m, a.opt, await steps(a.m, a.opt, 0, 3));

  const many = await wasm(cap);
  const b = fresh(many);
  assert.ok(b.m.paramChunks.chunks.length >= 3, `expected several chunks, got ${b.m.paramChunks.chunks.length}`);
  assert.throws(() => b.m.params, /split into \d+ chunks/);
  const got = await finish(b.m, b.opt, await steps(b.m, b.opt, 0, 3));
  assert.ok(many.memoryCount >= 4, `params, gradients and moments should spread over many memories, got ${many.memoryCount}`);
  sameRun(got, ref);
});

test('a checkpoint written from chunks streams tensor by tensor and resumes bit-identically, in chunks or in one memory', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-chunks-'));
  try {
    const straight = await (async () => {
      const { m, opt } = fresh(await wasm(cap));
      return finish(m, opt, await steps(m, opt, 0, 3));
    })();
    // two steps in chunks, then a checkpoint through the readers (as the trainer writes it)
    const first = fresh(await wasm(cap));
    const head = await steps(first.m, first.opt, 0, 2);
    const state: TrainerState = {
      version: STATE_VERSION, step: 2, tokens: 0, interval: { lossSum: 0, steps: 0, tokens: 0, ms: 0 }, data: null, recipe: {}, trainMs: 0, savedAt: '',
    };
    const dir = await writeCheckpoint(tmp, {
      config, layout: first.m.layout, params: (e) => first.m.readParam(e.name),
      opt: { step: first.opt.step, m: (o, n) => first.opt.readMoment('m', o, n), v: (o, n) => first.opt.readMoment('v', o, n) },
      state, dataTensors: {},
    }, 2);
    // the same checkpoint from host arrays: the same bytes
    const arrays = path.join(tmp, 'arrays');
    const n = first.m.layout.total;
    await writeCheckpoint(arrays, {
      config, layout: first.m.layout, params: await first.m.paramChunks.read(),
      opt: { step: first.opt.step, m: await first.opt.readMoment('m', 0, n), v: await first.opt.readMoment('v', 0, n) },
      state, dataTensors: {},
    }, 2);
    for (const f of ['model.safetensors', 'optimizer.safetensors']) {
      assert.ok(fs.readFileSync(path.join(dir, f)).equals(fs.readFileSync(path.join(arrays, 'step-00000002', f))), `${f} differs`);
    }
    first.opt.dispose();
    first.m.dispose();

    for (const shardBytes of [cap, undefined]) {
      const { m, opt } = fresh(await wasm(shardBytes));
      m.paramChunks.fill(0);
      const ck = readCheckpointInto(dir, m.layout, {
        param: (e, values) => m.setParam(e.name, values),
        moment: (which, offset, values) => opt.writeMoment(which, offset, values),
      });
      opt.setStep(ck.optStep);
      const tail = await steps(m, opt, 2, 3);
      const got = await finish(m, opt, { losses: [...head.losses, ...tail.losses], norms: [...head.norms, ...tail.norms] });
      sameRun(got, straight);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
