// What loading holds in host memory besides the weights: 16-bit checkpoint values are converted
// where they land and q8/q4 read rows through one small f32 stage, so a load makes no array per
// chunk or per tensor (docs/quantization.md, "Memory"). The WASM backend keeps the weights in its
// own memories, which process.memoryUsage().arrayBuffers does not count; everything else the
// load allocates as ArrayBuffers does, and within one synchronous load V8 collects little of it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveConfig, type OpenELMHFConfig } from '../src/model/config.js';
import { paramLayout } from '../src/model/layout.js';
import { initParams } from '../src/model/init.js';
import { saveModel } from '../src/io/model-folder.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { modelFromSource, type TensorSource } from '../src/model/load.js';
import { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import type { ConvertDType } from '../src/backends/backend.js';
import { MlxModel, writeMlxFolder } from '../src/formats/mlx.js';
import { openCorenetCheckpoint, writeCorenetCheckpoint } from '../src/formats/corenet.js';
import { writeQuantizedFolder } from '../src/formats/openelm-quant-write.js';
import { openModelSource } from '../src/formats/source.js';

// an embedding of 4096 × 256 (2 MiB as bf16, 4 MiB as f32): larger than the allowance below
const HF: OpenELMHFConfig = {
  model_type: 'openelm', num_transformer_layers: 2, model_dim: 256, head_dim: 32, num_gqa_groups: 2,
  qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 2.0], ffn_dim_divisor: 32, vocab_size: 4096,
  max_context_length: 64, rope_freq_constant: 10000, rope_max_length: 64,
};
/** The loader's f32 row stage (1 MiB) and a little for the small arrays of norms and importances. */
const ALLOWANCE = (1 << 20) + (256 << 10);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-load-memory-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const dir = (() => {
  const config = resolveConfig(HF);
  const layout = paramLayout(config);
  const flat = new Float32Array(layout.total);
  initParams(config, layout, flat, 3);
  const d = path.join(tmp, 'bf16');
  saveModel(d, config, layout, flat, { dtype: 'BF16' });
  return d;
})();

/** Arrays the load holds at its peak besides the weights, sampled as each read of `ck` returns. */
async function loadPeak(ck: object, dtype: ConvertDType, config = resolveConfig(HF)): Promise<number> {
  const be = await WasmBackend.create({ threads: 1 });
  try {
    const base = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const sample = () => { peak = Math.max(peak, process.memoryUsage().arrayBuffers - base); };
    // every read the loader makes, sampled as it returns
    const src = new Proxy(ck, {
      get(t, k) {
        const v = Reflect.get(t, k, t) as unknown;
        if (typeof v !== 'function') return v;
        return (...a: unknown[]) => { const r = (v as (...x: unknown[]) => unknown).apply(t, a); sample(); return r; };
      },
    }) as unknown as TensorSource;
    const m = modelFromSource(src, config, be, dtype);
    assert.equal(m.weights.embed.dtype, dtype);
    return peak;
  } finally {
    be.dispose();
  }
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(2)} MiB`;

for (const dtype of ['q8', 'q4', 'f16', 'f32'] as ConvertDType[]) {
  test(`a ${dtype} load from a bf16 checkpoint holds at most the row stage besides the weights`, async () => {
    const ck = openCheckpoint(dir);
    try {
      const peak = await loadPeak(ck, dtype);
      assert.ok(peak <= ALLOWANCE, `${dtype}: the load held ${mib(peak)} of arrays besides the weights`);
    } finally { ck.close(); }
  });
}

// MLX folders and CoreNet checkpoints decode a row chunk from just its rows (a whole-tensor decode
// per chunk held the tensor in f32: 4 MiB for the embedding here).
const mlxDir = (() => {
  const ck = openCheckpoint(dir);
  try {
    const d = path.join(tmp, 'mlx-q4');
    writeMlxFolder(ck, resolveConfig(HF), d, { quantization: { bits: 4, groupSize: 64 }, dtype: 'BF16' });
    return d;
  } finally { ck.close(); }
})();
const corenetPt = (() => {
  const ck = openCheckpoint(dir);
  try {
    const f = path.join(tmp, 'corenet-bf16.pt');
    writeCorenetCheckpoint(ck, resolveConfig(HF), f);
    return f;
  } finally { ck.close(); }
})();

for (const dtype of ['q8', 'q4'] as ConvertDType[]) {
  test(`a ${dtype} load from a 4-bit MLX folder and from a bf16 CoreNet .pt holds at most the row stage besides the weights`, async () => {
    const m = MlxModel.open(mlxDir);
    try {
      const peak = await loadPeak(m, dtype, m.config);
      assert.ok(peak <= ALLOWANCE, `MLX ${dtype}: the load held ${mib(peak)} of arrays besides the weights`);
    } finally { m.close(); }
    const pt = openCorenetCheckpoint(corenetPt, path.join(dir, 'config.json'));
    try {
      const peak = await loadPeak(pt.source, dtype, pt.config);
      assert.ok(peak <= ALLOWANCE, `CoreNet ${dtype}: the load held ${mib(peak)} of arrays besides the weights`);
    } finally { pt.source.close(); }
  });
}

// A pre-quantized folder's bytes are read straight into the weights' storage: nothing is staged
// (the norms, read as f32, are the only arrays besides the weights).
for (const dtype of ['q8', 'q4'] as const) {
  test(`a pre-quantized ${dtype} folder loads holding no more than its norms besides the weights`, async () => {
    const out = path.join(tmp, `pre-${dtype}`);
    const be = await WasmBackend.create({ threads: 1 });
    const ck = openCheckpoint(dir);
    try { writeQuantizedFolder(ck, resolveConfig(HF), out, dtype, be); } finally { ck.close(); be.dispose(); }
    const src = openModelSource(out);
    try {
      const peak = await loadPeak(src.reader, dtype, src.config);
      assert.ok(peak <= 64 << 10, `pre-quantized ${dtype}: the load held ${mib(peak)} of arrays besides the weights`);
    } finally { src.close(); }
  });
}
