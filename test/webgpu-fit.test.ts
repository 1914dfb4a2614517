// Loading onto a GPU that cannot hold the model, in Node through Dawn (the npm package `webgpu`):
// a device asked for lowered buffer limits (requiredLimits) refuses a model whose largest tensor is
// over them before anything is allocated, naming the model, the need and the limit; running out of
// memory or losing the device during a load is one line naming the model, what was allocated is
// freed, and the backend loads the next model. Runs on whatever adapter Dawn finds (CI: SwiftShader).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { largestBufferFails, webgpuProbe, webgpuRequired } from './helpers/backends.js';
import { GOLDEN_ROOT } from './helpers/golden.js';
import { WebGPUBackend } from '../src/backends/webgpu/webgpu-backend.js';
import { loadModel } from '../src/api.js';
import { OpenELMError } from '../src/core/errors.js';
import { paramSpecs, resolveConfig } from '../src/model/config.js';
import { presetWithLayers } from './helpers/tiny.js';
import { largestBuffer } from '../src/model/device-fit.js';

const skip = webgpuProbe.adapter === null && !webgpuRequired ? `no WebGPU adapter (${webgpuProbe.why})` : false;
const MIB = 2 ** 20;
const PROMPT = [1, 17, 290, 4, 4, 88, 123];

/**
 * A model folder of OpenELM-3B's shape (2 layers) whose model.safetensors declares every tensor in
 * BF16 but is a sparse file: the refusal must come before any of it is read.
 */
function sparse3B(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-gpufit-'));
  const hf = presetWithLayers('OpenELM-3B-Instruct', 2);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hf));
  const header: Record<string, unknown> = {};
  let at = 0;
  for (const p of paramSpecs(resolveConfig(hf))) {
    const bytes = p.shape.reduce((a, b) => a * b, 1) * 2;
    header[p.name] = { dtype: 'BF16', shape: p.shape, data_offsets: [at, at + bytes] };
    at += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const file = path.join(dir, 'model.safetensors');
  const head = Buffer.alloc(8 + json.length);
  head.writeBigUInt64LE(BigInt(json.length), 0);
  head.write(json, 8, 'utf8');
  fs.writeFileSync(file, head);
  fs.truncateSync(file, head.length + at);
  return dir;
}

test('a device asked for lowered limits (requiredLimits) refuses a model whose largest tensor is over them, before allocating anything', { skip }, async () => {
  const be = await WebGPUBackend.create({ acquire: { limits: { maxBufferSize: 256 * MIB, maxStorageBufferBindingSize: 128 * MIB } } });
  const dir = sparse3B();
  try {
    assert.equal(be.rt.device.limits.maxStorageBufferBindingSize, 128 * MIB);
    assert.deepEqual({ ...be.bufferLimit(), device: '' }, { bytes: 128 * MIB, limit: 'maxStorageBufferBindingSize', device: '' });
    const cfg = resolveConfig(presetWithLayers('OpenELM-3B-Instruct', 2));
    assert.equal(largestBuffer(cfg, 'bf16', (_n, d) => (d === 'auto' ? 'bf16' : d)).bytes, 32000 * 3072 * 2);
    await assert.rejects(loadModel(dir, { backend: be }), (e: unknown) => {
      assert.ok(e instanceof OpenELMError && e.code === 'memory', String(e));
      assert.match(e.message, new RegExp(`^${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} does not fit this GPU: its largest tensor, transformer\\.token_embeddings\\.weight ` +
        '\\(32000×3072 bf16\\), needs one buffer of 187\\.5 MiB, more than the 128 MiB one buffer may take on .+ \\(maxStorageBufferBindingSize\\); ' +
        'it fits with dtype q8 \\(largest buffer 99\\.6 MiB\\) or q4 \\(largest buffer 70\\.3 MiB\\), or on the wasm backend$'));
      return true;
    });
    assert.deepEqual(be.memory(), { inUse: 0, reserved: 0, limit: Infinity }, 'nothing was allocated');
    assert.equal(be.rt.stats().uploadBytes, 0);
    // the same device takes a model that fits
    const m = await loadModel(path.join(GOLDEN_ROOT, 'mha-hd64'), { backend: be });
    assert.equal((await m.generate(PROMPT, { maxTokens: 3, temperature: 0, ignoreEos: true })).ids.length, 3);
    m.dispose();
  } finally {
    be.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('limits below WebGPU\'s defaults get the defaults; a limit that is not a byte count is a usage error', { skip }, async () => {
  const be = await WebGPUBackend.create({ acquire: { limits: { maxStorageBufferBindingSize: 1000 } } });
  try {
    assert.equal(be.bufferLimit().bytes, 128 * MIB);
  } finally { be.dispose(); }
  await assert.rejects(WebGPUBackend.create({ acquire: { limits: { maxBufferSize: -1 } } }), /the GPU limit maxBufferSize must be a whole number of bytes > 0, got -1/);
});

test('out of memory or a lost device during a load: one line naming the model, what it allocated is freed, the backend loads the next model', { skip }, async (t) => {
  const dir = path.join(GOLDEN_ROOT, 'gqa2-hd64');
  const want = await (async () => {
    const m = await loadModel(dir, { backend: 'wasm', threads: 2 });
    try { return (await m.generate(PROMPT, { maxTokens: 6, temperature: 0, ignoreEos: true })).ids; } finally { m.dispose(); }
  })();

  // The device is destroyed while the third weight goes up.
  const lost = await WebGPUBackend.create({ acquire: { own: true } });
  const prepare = lost.prepareWeight.bind(lost);
  let n = 0;
  lost.prepareWeight = (w) => { if (++n === 3) lost.rt.device.destroy(); prepare(w); };
  await assert.rejects(loadModel(dir, { backend: lost }), (e: unknown) => e instanceof OpenELMError && e.code === 'device' &&
    new RegExp(`^${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} could not be loaded on the GPU \\(the GPU device was lost \\(destroyed.*\\)\\); ` +
      'what it had allocated is freed: load it with a narrower dtype \\(q8, q4\\) or on the wasm backend$').test(e.message));
  lost.dispose();

  if (!(await largestBufferFails())) {
    t.diagnostic('this adapter backs a buffer of its largest size: the out-of-memory load is left out');
    return;
  }
  // A buffer this device cannot back is asked for while the third weight goes up.
  const be = await WebGPUBackend.create({ acquire: { own: true } });
  try {
    const prep = be.prepareWeight.bind(be);
    let k = 0;
    be.prepareWeight = (w) => {
      if (++k === 3) be.free(be.alloc(be.rt.maxBufferBytes / 4));
      prep(w);
    };
    await assert.rejects(loadModel(dir, { backend: be }), (e: unknown) => e instanceof OpenELMError && e.code === 'memory' &&
      new RegExp(`^${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} could not be loaded on the GPU \\(the GPU ran out of memory: a buffer of [\\d.]+ MiB \\(tensor\\) ` +
        'did not fit next to the [\\d.]+ MiB this process holds on .*\\); what it had allocated is freed: load it with a narrower dtype \\(q8, q4\\) or on the wasm backend$').test(e.message));
    // the golden model's weights are ~460 KB; what stays is the backend's own (argmax ids, scratch)
    const held = be.memory().inUse;
    assert.ok(held < 4096, `the weights uploaded before the failure are freed (${held} bytes held)`);
    be.prepareWeight = prep;
    const m = await loadModel(dir, { backend: be });
    try {
      assert.deepEqual((await m.generate(PROMPT, { maxTokens: 6, temperature: 0, ignoreEos: true })).ids, want, 'the backend loads and runs the model after the failure');
    } finally { m.dispose(); }
  } finally {
    be.dispose();
  }
});
