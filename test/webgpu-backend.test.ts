// The webgpu backend beyond the golden suite (test/backend-suite.test.ts runs that on it): what a
// greedy decode step costs (command buffers, bytes read back), pipelines compiled at load, how the
// backend is chosen (auto never takes a software adapter; no adapter is one line and an error),
// and training: a resumed run equals an uninterrupted one bit for bit, a device lost or out of
// memory mid-run stops cleanly with the last checkpoint kept and resumable, activations too large for the device are
// one line with the sizes. Runs on whatever adapter Dawn finds (CI: SwiftShader, so tiny models).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { largestBufferFails, webgpuProbe, webgpuRequired } from './helpers/backends.js';
import { Golden, goldenConfig } from './helpers/golden.js';
import { tinyModelDir } from './helpers/tiny.js';
import { WebGPUBackend } from '../src/backends/webgpu/webgpu-backend.js';
import { createBackend, registerBackend } from '../src/backends/index.js';
import { loadModelFolder } from '../src/io/model-folder.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { decodeStep } from '../src/generate/generate.js';
import { SequenceDecoder } from '../src/generate/decode.js';
import { loadModel } from '../src/api.js';
import { TrainableModel } from '../src/model/trainable.js';
import { OpenELMError } from '../src/core/errors.js';
import { parseRecipe, type Recipe } from '../src/train/recipe.js';
import { train } from '../src/train/trainer.js';

const skip = webgpuProbe.adapter === null && !webgpuRequired ? `no WebGPU adapter (${webgpuProbe.why})` : false;
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-webgpu-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

test('a greedy decode step is one command buffer and reads back 4 bytes per sequence', { skip }, async () => {
  const be = await WebGPUBackend.create();
  const g = new Golden('gqa2-hd64');
  try {
    const model = loadModelFolder(g.dir, { backend: be, dtype: 'f32' });
    await model.warmup();
    const tok = loadTokenizer();
    for (const prompts of [[[1, 5, 9, 33]], [[1, 5, 9, 33], [1, 7], [1, 2, 3, 4, 5, 6]]]) {
      const seqs = prompts.map((p) => ({
        cache: model.newCache(32), dec: new SequenceDecoder(tok, p, model.config.eosTokenId, { temperature: 0, maxTokens: 20, ignoreEos: true }),
        tokens: p as ArrayLike<number>,
      }));
      assert.ok(seqs.every((s) => s.dec.argmaxOnly));
      await decodeStep(model, seqs);
      for (let step = 0; step < 4; step++) {
        for (const s of seqs) s.tokens = [s.dec.ids[s.dec.ids.length - 1]];
        const s0 = be.rt.stats();
        await decodeStep(model, seqs);
        const s1 = be.rt.stats();
        const label = `${seqs.length} sequence(s), step ${step}`;
        assert.ok(s1.submits - s0.submits <= 2, `${label}: ${s1.submits - s0.submits} command buffers`);
        assert.equal(s1.submits - s0.submits, 1, `${label}: one command buffer`);
        assert.equal(s1.reads - s0.reads, 1, label);
        assert.ok((s1.readBytes - s0.readBytes) / seqs.length <= 64, label);
        assert.equal(s1.readBytes - s0.readBytes, 4 * seqs.length, label);
        assert.equal(s1.pipelines, s0.pipelines, `${label}: no pipeline compiled after the first step`);
      }
      for (const s of seqs) s.cache.dispose();
    }
  } finally {
    g.close();
    be.dispose();
  }
});

test('loadModel with backend webgpu compiles the kernels at load: the first tokens compile nothing', { skip }, async () => {
  // head dim and grouping unlike the golden models', so no earlier test compiled these kernels
  const dir = tinyModelDir({ head_dim: 16, num_gqa_groups: 4 }, 5);
  const m = await loadModel(dir, { backend: 'webgpu' });
  try {
    assert.ok(m.backend instanceof WebGPUBackend);
    const before = m.backend.rt.stats().pipelines;
    const out = await m.generate([1, 17, 290, 4, 4, 88, 123, 9, 61, 200, 7], { maxTokens: 3, temperature: 0, ignoreEos: true });
    assert.equal(out.ids.length, 3);
    assert.equal(m.backend.rt.stats().pipelines, before);
  } finally {
    m.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('auto picks WebGPU only on a hardware adapter, never a software one', { skip }, async () => {
  const be = await createBackend('auto', { threads: 1 });
  try {
    assert.equal(be.name, webgpuProbe.adapter && !webgpuProbe.adapter.software ? 'webgpu' : 'wasm');
  } finally {
    be.dispose();
  }
  const gpu = await createBackend('webgpu');
  try {
    assert.equal(gpu.name, 'webgpu');
    assert.equal(gpu.device, 'gpu');
    assert.match(gpu.describe(), /^webgpu on /);
  } finally {
    gpu.dispose();
  }
});

test('--backend webgpu without an adapter: one line and a non-zero exit, no CPU fallback', { skip: process.platform !== 'linux' && 'Vulkan-only check' }, () => {
  const g = new Golden('gqa2-hd64');
  g.close();
  // no Vulkan driver: an empty loader path and a driver list naming nothing
  const env = { ...process.env, LD_LIBRARY_PATH: '', VK_ICD_FILENAMES: path.join(tmp, 'none.json'), VK_DRIVER_FILES: path.join(tmp, 'none.json') };
  const r = spawnSync(process.execPath, [CLI, 'generate', '--model', g.dir, '--prompt', 'hi', '--max-tokens', '2', '--backend', 'webgpu'],
    { encoding: 'utf8', env, timeout: 60_000 });
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^openelm( generate)?: no WebGPU adapter found: .*install/);
});

test('activations that do not fit a device buffer: one line with the sizes and what to change', { skip }, async () => {
  const be = await WebGPUBackend.create();
  const model = new TrainableModel(goldenConfig('mha-hd64'), be);
  try {
    const D = model.config.modelDim, T = Math.floor(be.rt.maxBufferBytes / 4 / D) + 1;
    const ids = new Int32Array(T);
    await assert.rejects(model.forwardBackward(ids, ids, 1, T), (e: unknown) => e instanceof OpenELMError && e.code === 'memory' &&
      /MiB exceeds the largest buffer the GPU allows/.test(e.message) && /recompute/.test(e.message) && !e.message.includes('\n'));
  } finally {
    model.dispose();
    be.dispose();
  }
});

// ------------------------------------------------------------------------------------------------
// training runs

const V = 256;
const tokens = path.join(tmp, 'tokens.bin');
{
  const ids = new Uint16Array(4000);
  for (let i = 0; i < ids.length; i++) ids[i] = (i * 37 + ((i * i) >> 3)) % V;
  fs.writeFileSync(tokens, new Uint8Array(ids.buffer));
}

let runs = 0;
function recipe(backend: string, recompute = false, over: Record<string, unknown> = {}): Recipe {
  const dir = path.join(tmp, `run${runs++}`);
  fs.mkdirSync(dir);
  const raw = {
    model: { config: { num_transformer_layers: 2, model_dim: 32, head_dim: 16, num_gqa_groups: 2, ffn_dim_divisor: 32, vocab_size: V } },
    seed: 7,
    data: { train: [{ path: tokens, format: 'tokens' }] },
    seq_len: 16, batch_size: 2, grad_accum: 2, steps: 4, z_loss: 1e-4,
    optimizer: { lr: 3e-3 }, schedule: { warmup_steps: 1 },
    out_dir: path.join(dir, 'out'), log_every: 1, checkpoint_every: 2, backend, recompute,
    ...over,
  };
  const file = path.join(dir, 'recipe.yaml');
  fs.writeFileSync(file, JSON.stringify(raw));
  return parseRecipe(raw, file);
}
const quiet = { log: () => undefined };
const final = (r: Recipe, step = 4) => ['model.safetensors', 'optimizer.safetensors'].map((f) => fs.readFileSync(path.join(r.outDir, `step-0000000${step}`, f)));

// A backend whose device is lost in the middle of step 3 (its gradient-norm read).
registerBackend('webgpu-lost-at-step-3', {
  async make() {
    const be = await WebGPUBackend.create({ acquire: { own: true } });
    const sumSquares = be.sumSquares.bind(be);
    let steps = 0;
    be.sumSquares = (x) => {
      if (++steps === 3) be.rt.device.destroy();
      return sumSquares(x);
    };
    return be;
  },
});

// A backend that runs out of device memory in the middle of step 3: it asks for a buffer of the
// largest size the device allows, which SwiftShader cannot back (a hardware GPU usually can, and
// then the test says so and leaves that part out).
registerBackend('webgpu-oom-at-step-3', {
  async make() {
    const be = await WebGPUBackend.create({ acquire: { own: true } });
    const sumSquares = be.sumSquares.bind(be);
    let steps = 0;
    be.sumSquares = (x) => {
      if (++steps === 3) be.fill(be.alloc(be.rt.maxBufferBytes / 4), 1);
      return sumSquares(x);
    };
    return be;
  },
});

test('training on WebGPU (grad accumulation, recompute): a resumed run equals an uninterrupted one bit for bit; a device lost or out of memory mid-run keeps the last checkpoint', { skip }, async (t) => {
  const whole = recipe('webgpu');
  const a = await train({ recipe: whole, ...quiet });
  assert.equal(a.status, 'done');
  const losses = fs.readFileSync(path.join(whole.outDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { loss: number }).loss);
  assert.equal(losses.length, 4);
  assert.ok(losses.every(Number.isFinite) && losses[3] < losses[0], `the loss goes down: ${losses.join(', ')}`);

  // with activation recompute too, which re-runs each block's forward and must give the same bits
  const split = recipe('webgpu', true);
  assert.equal((await train({ recipe: split, stopAfter: 2, ...quiet })).status, 'stopped');
  assert.equal((await train({ recipe: split, resume: true, ...quiet })).status, 'done');
  assert.deepEqual(final(split), final(whole), 'stop after 2 + resume, with recompute == 4 steps straight');

  const lost = recipe('webgpu-lost-at-step-3');
  await assert.rejects(train({ recipe: lost, ...quiet }), (e: unknown) => e instanceof OpenELMError && e.code === 'device' &&
    /GPU device was lost/.test(e.message) && /step-00000002 \(continue with --resume\)/.test(e.message) && !e.message.includes('\n'));
  assert.deepEqual(fs.readdirSync(lost.outDir).filter((f) => f.startsWith('step-')), ['step-00000002']);
  assert.equal((await train({ recipe: lost, resume: true, backend: 'webgpu', ...quiet })).status, 'done');
  assert.deepEqual(final(lost), final(whole), 'resumed after the lost device == 4 steps straight');

  if (!(await largestBufferFails())) {
    t.diagnostic('this adapter backs a buffer of its largest size: the out-of-memory run is left out');
    return;
  }
  const oom = recipe('webgpu-oom-at-step-3');
  await assert.rejects(train({ recipe: oom, ...quiet }), (e: unknown) => e instanceof OpenELMError && e.code === 'memory' &&
    /ran out of memory: a buffer of [\d.]+ MiB \(tensor\) did not fit next to the [\d.]+ MiB this process holds/.test(e.message) &&
    /smaller batch_size/.test(e.message) && /recompute/.test(e.message) &&
    /step-00000002 \(continue with --resume\)/.test(e.message) && !e.message.includes('\n'));
  assert.deepEqual(fs.readdirSync(oom.outDir).filter((f) => f.startsWith('step-')), ['step-00000002']);
  assert.equal((await train({ recipe: oom, resume: true, backend: 'webgpu', ...quiet })).status, 'done');
  assert.deepEqual(final(oom), final(whole), 'resumed after running out of memory == 4 steps straight');
});

test('an adapter run on WebGPU (DoRA with dropout on a q8 base): PEFT checkpoints, and stop + resume equals a straight run bit for bit', { skip }, async () => {
  // q8 stores rows in blocks of 32: every linear of this base is a multiple of 32 wide
  const base = tinyModelDir({ num_transformer_layers: 2, model_dim: 64, head_dim: 16, num_gqa_groups: 2, ffn_dim_divisor: 32,
    vocab_size: V, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 1.0] }, 6);
  try {
    const over = { model: { init: base }, peft: { type: 'dora', r: 3, alpha: 6, dropout: 0.2, base_dtype: 'q8' } };
    const whole = recipe('webgpu', false, over);
    assert.equal((await train({ recipe: whole, ...quiet })).status, 'done');
    assert.ok(fs.readdirSync(path.join(whole.outDir, 'step-00000004')).includes('adapter_model.safetensors'));
    const split = recipe('webgpu', false, over);
    assert.equal((await train({ recipe: split, stopAfter: 2, ...quiet })).status, 'stopped');
    assert.equal((await train({ recipe: split, resume: true, ...quiet })).status, 'done');
    for (const f of ['adapter_model.safetensors', 'optimizer.safetensors']) {
      assert.ok(fs.readFileSync(path.join(whole.outDir, 'step-00000004', f)).equals(fs.readFileSync(path.join(split.outDir, 'step-00000004', f))), f);
    }
  } finally { fs.rmSync(base, { recursive: true, force: true }); }
});
