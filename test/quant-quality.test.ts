// Quality of q8 / q4 inference on a model with outlier channels (src/model/outliers.ts): the case
// where int8 activations and 4-bit weights break. The outliers leave the f32 model's logits
// unchanged bit for bit, so the KL divergence of the quantized model to them measures only the
// quantization. Bounds come from measurements (test/tolerances.ts, KL).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveConfig, type OpenELMHFConfig } from '../src/model/config.js';
import { paramLayout } from '../src/model/layout.js';
import { initParams } from '../src/model/init.js';
import { addOutlierChannels, outlierChannels } from '../src/model/outliers.js';
import { loadModelFolder, saveModel } from '../src/io/model-folder.js';
import { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import type { ConvertDType } from '../src/backends/backend.js';
import { Rng } from '../src/core/rng.js';
import { KL } from './tolerances.js';
import { allocWeightStorage, fitQ4Block, setWeightRows, weightRowToF32 } from '../src/backends/weight-format.js';

const HF: OpenELMHFConfig = {
  model_type: 'openelm', num_transformer_layers: 2, model_dim: 256, head_dim: 32, num_gqa_groups: 2,
  qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 2.0], ffn_dim_divisor: 32, vocab_size: 512,
  max_context_length: 64, rope_freq_constant: 10000, rope_max_length: 64,
};
const OUTLIERS = 4, SCALE = 64, SEED = 5, T = 48;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-quant-quality-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function modelDir(outliers: boolean): string {
  const config = resolveConfig(HF);
  const layout = paramLayout(config);
  const flat = new Float32Array(layout.total);
  initParams(config, layout, flat, SEED);
  if (outliers) addOutlierChannels(config, layout, flat, OUTLIERS, SCALE);
  const dir = path.join(tmp, outliers ? 'outliers' : 'plain');
  saveModel(dir, config, layout, flat, { dtype: 'F32' });
  return dir;
}

const tokens = (() => { const r = new Rng(11); return Array.from({ length: T }, () => 3 + r.int(HF.vocab_size! - 3)); })();

/** Logits of every position: all at once (a prompt: the integer GEMM) and one token at a time (decode: the GEMV). */
async function logits(dir: string, dtype: ConvertDType): Promise<{ prefill: Float32Array; decode: Float32Array }> {
  const be = await WasmBackend.create({ threads: 1 });
  try {
    const m = loadModelFolder(dir, { dtype, backend: be });
    const prefill = await m.logitsAll(tokens);
    const V = m.config.vocabSize, decode = new Float32Array(T * V), cache = m.newCache(T);
    for (let i = 0; i < T; i++) decode.set(await m.forward([{ cache, tokens: [tokens[i]] }]), i * V);
    cache.dispose();
    return { prefill, decode };
  } finally {
    be.dispose();
  }
}

/** Mean over positions of KL(softmax(p) || softmax(q)), in float64. */
function meanKL(p: Float32Array, q: Float32Array, V: number): number {
  const lsm = (a: Float32Array, o: number) => {
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, a[o + v]);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(a[o + v] - mx);
    return mx + Math.log(z);
  };
  let s = 0;
  for (let o = 0; o < p.length; o += V) {
    const zp = lsm(p, o), zq = lsm(q, o);
    for (let v = 0; v < V; v++) { const lp = p[o + v] - zp; s += Math.exp(lp) * (lp - (q[o + v] - zq)); }
  }
  return s / (p.length / V);
}

test('outlier channels: distinct, and the f32 model computes exactly what it computed without them', async () => {
  const ch = outlierChannels(256, OUTLIERS);
  assert.equal(new Set(ch).size, OUTLIERS);
  assert.equal(new Set(ch.map((c) => c >> 5)).size, OUTLIERS, 'each in its own block of 32');
  const plain = await logits(modelDir(false), 'f32'), out = await logits(modelDir(true), 'f32');
  assert.deepEqual(out.prefill, plain.prefill);
  assert.deepEqual(out.decode, plain.decode);
});

test('q8 / q4 on a model with 64x outlier channels: mean KL to f32 within the measured bounds, prefill and decode', async (t) => {
  const V = HF.vocab_size!;
  const ref = await logits(modelDir(true), 'f32');
  const refPlain = await logits(modelDir(false), 'f32');
  for (const dtype of ['q8', 'q4'] as const) {
    const q = await logits(path.join(tmp, 'outliers'), dtype);
    const qp = await logits(path.join(tmp, 'plain'), dtype);
    const kl = { prefill: meanKL(ref.prefill, q.prefill, V), decode: meanKL(ref.decode, q.decode, V) };
    const plain = { prefill: meanKL(refPlain.prefill, qp.prefill, V), decode: meanKL(refPlain.decode, qp.decode, V) };
    t.diagnostic(`${dtype}: outliers prefill ${kl.prefill.toExponential(3)} decode ${kl.decode.toExponential(3)}; ` +
      `plain prefill ${plain.prefill.toExponential(3)} decode ${plain.decode.toExponential(3)}`);
    const bound = KL[dtype === 'q8' ? 'q8Outliers' : 'q4Outliers'];
    assert.ok(kl.prefill <= bound, `${dtype} prefill mean KL ${kl.prefill} > ${bound}`);
    assert.ok(kl.decode <= bound, `${dtype} decode mean KL ${kl.decode} > ${bound}`);
    assert.ok(plain.prefill <= bound && plain.decode <= bound, `${dtype} without outliers: ${plain.prefill}, ${plain.decode}`);
  }
});

test('q4 block fit: never worse than min/max, and a value of high importance is kept close', () => {
  const r = new Rng(3), x = new Float32Array(32), q = new Uint8Array(32);
  const err = (s: number, m: number, imp: Float32Array | null) => {
    let e = 0;
    for (let i = 0; i < 32; i++) { const d = Math.fround(q[i] * s) + m - x[i]; e += (imp ? imp[i] : 1) * d * d; }
    return e;
  };
  for (let t = 0; t < 200; t++) {
    for (let i = 0; i < 32; i++) x[i] = r.normal() * (t % 7 === 0 ? 0.01 : 1);
    let lo = Infinity, hi = -Infinity;
    for (const v of x) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    const s0 = Math.fround((hi - lo) / 15), m0 = Math.fround(lo);
    for (let i = 0; i < 32; i++) q[i] = Math.min(15, Math.max(0, Math.round((x[i] - m0) / s0)));
    const e0 = err(s0, m0, null);
    const [s, m] = fitQ4Block(x, 0, null, 0, q);
    assert.ok(err(s, m, null) <= e0 * (1 + 1e-6), `block ${t}: ${err(s, m, null)} > min/max ${e0}`);
  }
  // one column meets activations 64x larger (importance 64²): its tiny weight must not be off by half a step
  for (let i = 0; i < 32; i++) x[i] = r.normal();
  x[5] = 0.3 / 64;
  const imp = new Float32Array(32).fill(1);
  imp[5] = 64 * 64;
  const [s, m] = fitQ4Block(x, 0, imp, 0, q);
  const off = Math.abs(Math.fround(q[5] * s) + m - x[5]);
  // min/max leaves it wherever the grid falls (here ~0.2 steps off); the fit puts it within 1% of a step
  let lo = Infinity, hi = -Infinity;
  for (const v of x) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const s0 = (hi - lo) / 15, off0 = Math.abs(Math.round((x[5] - lo) / s0) * s0 + lo - x[5]);
  assert.ok(off < 0.01 * s && off < off0 / 10, `the important value is ${off} off (step ${s}; min/max: ${off0})`);
});

test('q4 rows: the 8-bit codes of the blocks\' scales and mins cost under 5% of the error of f32 ones, outliers included', () => {
  const r = new Rng(4), K = 1280, rows = 6, x = new Float32Array(rows * K), q = new Uint8Array(32), dec = new Float32Array(K);
  for (let i = 0; i < x.length; i++) x[i] = r.normal() * 0.02;
  // a row with one block 50x wider than the rest (its codes set D, which the small blocks then share)
  for (let i = 0; i < 32; i++) x[2 * K + 64 + i] *= 50;
  const w = allocWeightStorage('q4', rows, K);
  setWeightRows(w, 0, x);
  for (let row = 0; row < rows; row++) {
    let eF32 = 0, eCoded = 0;
    weightRowToF32(w, row, dec);
    for (let b = 0; b < K; b += 32) {
      const [s, m] = fitQ4Block(x, row * K + b, null, 0, q);
      for (let i = 0; i < 32; i++) eF32 += (q[i] * s + m - x[row * K + b + i]) ** 2;
    }
    for (let i = 0; i < K; i++) eCoded += (dec[i] - x[row * K + i]) ** 2;
    assert.ok(eCoded <= eF32 * 1.05, `row ${row}: coded ${eCoded} against f32 scales ${eF32}`);
  }
});
