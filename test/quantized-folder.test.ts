// Pre-quantized q8/q4 folders (formats/openelm-quant.ts): `convert --to hf --dtype q8|q4` writes the
// bytes a `--dtype q8|q4` load makes, and loading the folder copies them into the backend's storage
// without fitting a block: the loaded weights are byte for byte those of the quantizing load.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveConfig, type OpenELMConfig, type OpenELMHFConfig } from '../src/model/config.js';
import { paramLayout } from '../src/model/layout.js';
import { initParams } from '../src/model/init.js';
import { addOutlierChannels } from '../src/model/outliers.js';
import { loadModelFolder, saveModel } from '../src/io/model-folder.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { readWeights, type LoadDType, type TensorSource } from '../src/model/load.js';
import type { ModelWeights } from '../src/model/openelm.js';
import type { Backend } from '../src/backends/backend.js';
import { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import { allocWeightStorage, setWeightRows, weightRowToF32 } from '../src/backends/weight-format.js';
import { openModelSource } from '../src/formats/source.js';
import { QUANT_CONFIG_KEY, QuantizedModel, quantLayoutOf, type QuantDType } from '../src/formats/openelm-quant.js';
import { namedLinear, writeQuantizedFolder } from '../src/formats/openelm-quant-write.js';
import { GGUFModel } from '../src/formats/gguf-model.js';
import { writeSafetensorsSync, type TensorToWrite } from '../src/io/safetensors.js';
import type { SafetensorsDType } from '../src/io/safetensors-reader.js';
import { runCli } from './helpers/cli.js';
import { f16ToF32 } from '../src/core/dtype.js';

// every width a multiple of 32 (q8/q4 blocks); norms jittered so q4's importance weights differ per column
const HF: OpenELMHFConfig = {
  model_type: 'openelm', num_transformer_layers: 2, model_dim: 128, head_dim: 32, num_gqa_groups: 2,
  qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 2.0], ffn_dim_divisor: 32, vocab_size: 32000,
  max_context_length: 64, rope_freq_constant: 10000, rope_max_length: 64,
};
const config = resolveConfig(HF);

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-qfolder-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A bf16 checkpoint; with outliers, 4 channels 64× larger (q4's fit weighs them by the norm weight²). */
function sourceDir(name: string, outliers: boolean): string {
  const layout = paramLayout(config);
  const flat = new Float32Array(layout.total);
  initParams(config, layout, flat, 7, { normJitter: 0.3 });
  if (outliers) addOutlierChannels(config, layout, flat, 4, 64);
  const d = path.join(tmp, name);
  saveModel(d, config, layout, flat, { dtype: 'BF16' });
  return d;
}
const SOURCES = { random: sourceDir('random', false), outliers: sourceDir('outliers', true) };

/** Load `dir` as `dtype` on a backend, counting the f32 row reads a fit starts from. */
function load(dir: string, dtype: LoadDType, be: Backend): { weights: ModelWeights; fitted: number } {
  let fitted = 0;
  const src = openModelSource(dir);
  const counted = new Proxy(src.reader, {
    get(t, k) {
      const v = Reflect.get(t, k, t) as unknown;
      if (typeof v !== 'function') return v;
      return (...a: unknown[]) => { if (k === 'readF32Range') fitted++; return (v as (...x: unknown[]) => unknown).apply(t, a); };
    },
  }) as unknown as TensorSource;
  try {
    return { weights: readWeights(counted, src.config, be, dtype), fitted };
  } finally { src.close(); }
}

function bytes(v: ArrayBufferView | undefined): Buffer {
  assert.ok(v);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function sameWeights(c: OpenELMConfig, a: ModelWeights, b: ModelWeights, what: string): void {
  const A = namedLinear(c, a), B = namedLinear(c, b);
  assert.equal(A.size, B.size);
  for (const [name, wa] of A) {
    const wb = B.get(name)!;
    assert.equal(wb.dtype, wa.dtype, `${what}: ${name} dtype`);
    assert.ok(bytes(wa.data).equals(bytes(wb.data)), `${what}: ${name} data differs`);
    assert.ok(bytes(wa.scales).equals(bytes(wb.scales)), `${what}: ${name} scales differ`);
  }
}

const wasm = () => WasmBackend.create({ threads: 1 });

/** The folder `convert` writes, made once per source and dtype. */
const folders = new Map<string, string>();
async function folder(source: keyof typeof SOURCES, dtype: QuantDType): Promise<string> {
  const key = `${source}-${dtype}`;
  if (!folders.has(key)) {
    const be = await wasm();
    const src = openModelSource(SOURCES[source]);
    const out = path.join(tmp, key);
    try { writeQuantizedFolder(src.reader, src.config, out, dtype, be); } finally { src.close(); be.dispose(); }
    folders.set(key, out);
  }
  return folders.get(key)!;
}

for (const source of ['random', 'outliers'] as const) {
  for (const dtype of ['q8', 'q4'] as const) {
    test(`${source} model, ${dtype}: the folder loads the bytes a --dtype ${dtype} load makes, fitting nothing`, async () => {
      const dir = await folder(source, dtype);
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(cfg[QUANT_CONFIG_KEY], { dtype, version: 2, block_size: 32 });
      const ck = openCheckpoint(dir);
      assert.equal(ck.metadata['openelm.quantization'], dtype);
      assert.equal(ck.metadata['openelm.quantization_version'], '2');
      assert.equal(ck.info('transformer.layers.0.attn.qkv_proj.weight').dtype, dtype === 'q8' ? 'I8' : 'U8');
      assert.equal(ck.info('transformer.layers.0.attn.qkv_proj.scales').dtype, dtype === 'q8' ? 'F16' : 'U8');
      assert.equal(ck.info('transformer.layers.0.attn_norm.weight').dtype, 'BF16', 'norms stay as the source stores them');
      ck.close();
      for (const mk of [wasm, async () => new JsBackend()]) {
        const ref = await mk(), be = await mk();
        try {
          const want = load(SOURCES[source], dtype, ref);
          assert.ok(want.fitted > 0);
          for (const d of ['auto', dtype] as const) {
            const got = load(dir, d, be);
            assert.equal(got.fitted, 0, `a --dtype ${d} load of the folder fitted no block`);
            sameWeights(config, want.weights, got.weights, `${be.name}, --dtype ${d}`);
            // norms: the same f32 values
            assert.deepEqual(await be.read(got.weights.layers[1].ffnNorm), await ref.read(want.weights.layers[1].ffnNorm));
          }
        } finally { ref.dispose(); be.dispose(); }
      }
    });
  }
}

test('any other dtype dequantizes the folder: f32 holds the exact values, q8 fits them again', async () => {
  const dir = await folder('outliers', 'q4');
  const be = new JsBackend();
  const q4 = load(dir, 'q4', be).weights, f32 = load(dir, 'f32', be).weights, q8 = load(dir, 'q8', be).weights;
  const Q4 = namedLinear(config, q4), F32 = namedLinear(config, f32), Q8 = namedLinear(config, q8);
  for (const [name, w] of Q4) {
    const row = new Float32Array(w.cols), all = new Float32Array(w.rows * w.cols);
    for (let r = 0; r < w.rows; r++) { weightRowToF32(w, r, row); all.set(row, r * w.cols); }
    assert.equal(F32.get(name)!.dtype, 'f32');
    assert.deepEqual(F32.get(name)!.data, all, `${name}: f32 is the q4 values`);
    const ref = allocWeightStorage('q8', w.rows, w.cols);
    setWeightRows(ref, 0, all);
    const g = Q8.get(name)!;
    assert.equal(g.dtype, 'q8');
    assert.ok(bytes(g.data).equals(bytes(ref.data)) && bytes(g.scales).equals(bytes(ref.scales)), `${name}: q8 of the q4 values`);
  }
  be.dispose();
});

test('openelm convert --to hf --dtype q4 writes the same folder, refuses its input and a bad dtype', async () => {
  const out = path.join(tmp, 'cli-q4');
  const r = runCli(['convert', '--model', SOURCES.outliers, '--to', 'hf', '--dtype', 'q4', '--out', out, '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { dtypes: string[] }).dtypes[0], 'q4');
  // the CLI quantizes on all threads: the same bytes
  assert.ok(fs.readFileSync(path.join(out, 'model.safetensors')).equals(fs.readFileSync(path.join(await folder('outliers', 'q4'), 'model.safetensors'))));
  const same = runCli(['convert', '--model', out, '--to', 'hf', '--dtype', 'q4', '--out', out, '--force']);
  assert.equal(same.status, 2);
  assert.match(same.stderr, /is or holds the input/);
  const bad = runCli(['convert', '--model', SOURCES.random, '--to', 'hf', '--dtype', 'q5', '--out', path.join(tmp, 'never')]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown --dtype "q5" for hf; choose one of auto, f32, bf16, f16, q8, q4/);
});

test('other writers read the folder dequantized: --to hf --dtype f32 and --to gguf', async () => {
  const dir = await folder('random', 'q8');
  const src = openModelSource(dir);
  try {
    const hf = path.join(tmp, 'back-f32');
    const r = runCli(['convert', '--model', dir, '--to', 'hf', '--dtype', 'f32', '--out', hf]);
    assert.equal(r.status, 0, r.stderr);
    const cfg = JSON.parse(fs.readFileSync(path.join(hf, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(cfg[QUANT_CONFIG_KEY], undefined, 'a plain folder declares no quantized layout');
    const ck = openCheckpoint(hf);
    const name = 'transformer.layers.1.ffn.proj_2.weight';
    assert.deepEqual(ck.readF32(name), src.reader.readF32(name));
    ck.close();
    const gg = path.join(tmp, 'q8.gguf');
    const g = runCli(['convert', '--model', dir, '--to', 'gguf', '--dtype', 'f32', '--out', gg]);
    assert.equal(g.status, 0, g.stderr);
    const m = GGUFModel.open(gg);
    try { assert.deepEqual(m.readF32(name), src.reader.readF32(name)); } finally { m.close(); }
  } finally { src.close(); }
});

/** A copy of folder `dir` whose safetensors holds `edit`'s tensors (every tensor read raw). */
function editedCopy(dir: string, name: string, edit: (t: TensorToWrite[]) => TensorToWrite[]): string {
  const out = path.join(tmp, name);
  fs.mkdirSync(out);
  fs.copyFileSync(path.join(dir, 'config.json'), path.join(out, 'config.json'));
  const ck = openCheckpoint(dir);
  const tensors = ck.names().map((n) => ({ name: n, dtype: ck.info(n).dtype as SafetensorsDType, shape: ck.info(n).shape, data: ck.readRaw(n) }));
  const meta = ck.metadata as Record<string, string>;
  ck.close();
  writeSafetensorsSync(path.join(out, 'model.safetensors'), edit(tensors), meta);
  return out;
}

test('a damaged or unknown folder is refused in one line naming what is wrong', async () => {
  const dir = await folder('random', 'q4');
  const qkv = 'transformer.layers.0.attn.qkv_proj.weight', scales = 'transformer.layers.0.attn.qkv_proj.scales';
  const truncated = path.join(tmp, 'truncated');
  fs.cpSync(dir, truncated, { recursive: true });
  const f = path.join(truncated, 'model.safetensors');
  fs.truncateSync(f, fs.statSync(f).size - 100);
  const version = path.join(tmp, 'version');
  fs.cpSync(dir, version, { recursive: true });
  const cfg = JSON.parse(fs.readFileSync(path.join(version, 'config.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  cfg[QUANT_CONFIG_KEY].version = 3;
  fs.writeFileSync(path.join(version, 'config.json'), JSON.stringify(cfg));
  const shape = editedCopy(dir, 'shape', (ts) => ts.map((t) => (t.name === scales ? { ...t, shape: [t.shape[0] - 1, t.shape[1]], data: (t.data as Uint8Array).subarray(0, (t.shape[0] - 1) * t.shape[1]) } : t)));
  const missing = editedCopy(dir, 'missing', (ts) => ts.filter((t) => t.name !== scales));
  const dtype = editedCopy(dir, 'dtype', (ts) => ts.map((t) => (t.name === qkv ? { ...t, dtype: 'I8' } : t)));
  const nan = editedCopy(dir, 'nan', (ts) => ts.map((t) => {
    if (t.name !== scales) return t;
    const d = new Uint8Array(t.data as Uint8Array);
    new DataView(d.buffer).setFloat32(d.length - t.shape[1], NaN, true);  // the last row's D
    return { ...t, data: d };
  }));
  const cases: [string, RegExp][] = [
    [truncated, /model\.safetensors.*file truncated\?/],
    [version, /openelm_quantization version 3 is not one this openelm reads \(versions 1, 2\)/],
    [shape, new RegExp(`tensor ${scales} is U8 \\[\\d+,\\d+\\], a q4 weight's scales must be U8 \\[\\d+,\\d+\\]`)],
    [missing, new RegExp(`tensor ${scales} \\(weight's scales\\) not found`)],
    [dtype, new RegExp(`tensor ${qkv} is I8 \\[\\d+,64\\], a q4 weight must be U8 \\[\\d+,64\\]`)],
    [nan, new RegExp(`tensor ${scales} row \\d+ holds a scale that is not finite`)],
  ];
  // a q8 folder's scale that is f16's infinity
  const q8 = await folder('random', 'q8');
  const inf = editedCopy(q8, 'inf', (ts) => ts.map((t) => {
    if (t.name !== scales) return t;
    const d = new Uint8Array(t.data as Uint8Array);
    new DataView(d.buffer).setUint16(d.length - 6, 0x7c00, true);
    return { ...t, data: d };
  }));
  cases.push([inf, new RegExp(`tensor ${scales} row \\d+ holds a scale that is not finite`)]);
  const be = new JsBackend();
  for (const [d, re] of cases) assert.throws(() => loadModelFolder(d, { backend: be }), (e: Error) => re.test(e.message) && !e.message.includes('\n'), d);
  be.dispose();
  // the command line: one line, exit status 1 (an error in the input, not in the command)
  for (const [d, re] of cases.slice(0, 2)) {
    const r = runCli(['bench', '--model', d, '--backend', 'js', '--prompt-tokens', '2', '--gen-tokens', '1', '--json']);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

/** `dir` as a version-1 folder (last layout: q8 scales in F32, the f16 ones widened exactly). */
function asVersion1(dir: string, name: string): string {
  const out = editedCopy(dir, name, (ts) => ts.map((t) => {
    if (!t.name.endsWith('.scales') || t.dtype !== 'F16') return t;
    const h = new Uint16Array((t.data as Uint8Array).slice().buffer);
    return { ...t, dtype: 'F32' as const, data: Float32Array.from(h, (x) => f16ToF32(x)) };
  }));
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  cfg[QUANT_CONFIG_KEY].version = 1;
  fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(cfg));
  return out;
}

test('a version-1 folder still loads: q8 (F32 scales) decodes with its own scales and is quantized again; q4 loads as stored', async () => {
  const v1 = asVersion1(await folder('outliers', 'q8'), 'v1-q8');
  // make the F32 scales ones no f16 holds, as a version-1 writer left them
  const edited = editedCopy(v1, 'v1-q8-f32', (ts) => ts.map((t) => {
    if (!t.name.endsWith('.scales')) return t;
    const f = new Float32Array((t.data as Uint8Array).slice().buffer);
    for (let i = 0; i < f.length; i++) f[i] = Math.fround(f[i] * (1 + 2 ** -14));
    return { ...t, data: f };
  }));
  fs.copyFileSync(path.join(v1, 'config.json'), path.join(edited, 'config.json'));
  const ck = openCheckpoint(edited);
  const be = new JsBackend();
  try {
    for (const d of ['auto', 'q8'] as const) {
      const got = load(edited, d, be);
      assert.ok(got.fitted > 0, `--dtype ${d}: quantized again`);
      for (const [name, w] of namedLinear(config, got.weights)) {
        const rows = w.rows, cols = w.cols;
        const codes = new Int8Array(ck.readRaw(name).slice().buffer), s32 = ck.readF32(name.replace(/\.weight$/, '.scales'));
        const values = Float32Array.from(codes, (q, i) => q * s32[Math.floor(i / 32)]);
        const ref = allocWeightStorage('q8', rows, cols);
        setWeightRows(ref, 0, values);
        assert.equal(w.dtype, 'q8');
        assert.ok(bytes(w.data).equals(bytes(ref.data)) && bytes(w.scales).equals(bytes(ref.scales)), `--dtype ${d}: ${name}`);
      }
    }
    // f32: exactly the version-1 values
    const name = 'transformer.layers.1.attn.out_proj.weight';
    const f32 = namedLinear(config, load(edited, 'f32', be).weights).get(name)!;
    const codes = new Int8Array(ck.readRaw(name).slice().buffer), s32 = ck.readF32('transformer.layers.1.attn.out_proj.scales');
    assert.deepEqual(f32.data, Float32Array.from(codes, (q, i) => q * s32[Math.floor(i / 32)]));
  } finally { ck.close(); be.dispose(); }
  // q4's layout did not change: a version-1 q4 folder loads the same bytes as stored
  const q4 = await folder('outliers', 'q4'), v1q4 = asVersion1(q4, 'v1-q4');
  const a = new JsBackend(), b = new JsBackend();
  try {
    const got = load(v1q4, 'auto', b);
    assert.equal(got.fitted, 0);
    sameWeights(config, load(q4, 'auto', a).weights, got.weights, 'version-1 q4');
  } finally { a.dispose(); b.dispose(); }
});

test('a q8 folder to GGUF Q8_0 copies its blocks: the same f16 scale and levels, no second rounding', async () => {
  const dir = await folder('outliers', 'q8');
  const gg = path.join(tmp, 'q8-copy.gguf');
  const r = runCli(['convert', '--model', dir, '--to', 'gguf', '--dtype', 'q8_0', '--out', gg]);
  assert.equal(r.status, 0, r.stderr);
  const ck = openCheckpoint(dir), m = GGUFModel.open(gg);
  try {
    const F = config.ffnDims[0], K = config.modelDim;
    for (const [name, gname, r0] of [
      ['transformer.layers.0.attn.qkv_proj.weight', 'blk.0.attn_qkv.weight', 0],
      ['transformer.layers.0.ffn.proj_1.weight', 'blk.0.ffn_up.weight', F],
      ['transformer.token_embeddings.weight', 'token_embd.weight', 0],
    ] as const) {
      const codes = new Int8Array(ck.readRaw(name).slice().buffer), scales = new Uint16Array(ck.readRaw(name.replace(/\.weight$/, '.scales')).slice().buffer);
      const blocks = m.readRaw(gname);
      const nb = blocks.length / 34;
      assert.ok(nb > 0 && Number.isInteger(nb), gname);
      const dv = new DataView(blocks.buffer, blocks.byteOffset, blocks.byteLength), b0 = r0 * K / 32;
      for (let b = 0; b < nb; b++) {
        assert.equal(dv.getUint16(34 * b, true), scales[b0 + b], `${gname} block ${b}: scale`);
        for (let j = 0; j < 32; j++) assert.equal(dv.getInt8(34 * b + 2 + j), codes[(b0 + b) * 32 + j], `${gname} block ${b} value ${j}`);
      }
    }
  } finally { ck.close(); m.close(); }
});

test('the folder runs: generation from the folder equals generation from the quantizing load', async () => {
  const dir = await folder('outliers', 'q4');
  const { loadModel } = await import('../src/api.js');
  const a = await loadModel(SOURCES.outliers, { backend: 'wasm', threads: 1, native: 'off', dtype: 'q4' });
  const b = await loadModel(dir, { backend: 'wasm', threads: 1, native: 'off' });
  try {
    const opts = { maxTokens: 8, temperature: 0 };
    assert.deepEqual((await b.generate('hello', opts)).ids, (await a.generate('hello', opts)).ids);
  } finally { a.dispose(); b.dispose(); }
});

test('the browser entry reads the folder from its safetensors bytes as stored too', async () => {
  const dir = await folder('random', 'q4');
  const { BrowserCheckpoint, openSafetensors } = await import('../src/browser/tensor-source.js');
  const file = path.join(dir, 'model.safetensors');
  const ck = new BrowserCheckpoint('picked', [await openSafetensors(new Uint8Array(fs.readFileSync(file)), 'picked/model.safetensors')]);
  const layout = quantLayoutOf(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')), 'config.json')!;
  const src = new QuantizedModel(ck, config, layout);
  const be = new JsBackend(), ref = new JsBackend();
  try {
    sameWeights(config, load(dir, 'q4', ref).weights, readWeights(src, config, be, 'auto'), 'browser');
  } finally { src.close(); be.dispose(); ref.dispose(); }
});

test('training and merging, which read the stored floats, refuse a pre-quantized folder in one line', async () => {
  const dir = await folder('random', 'q8');
  const { openFloatCheckpoint } = await import('../src/io/model-folder.js');
  assert.throws(() => openFloatCheckpoint(dir, 'training from it'), /is a pre-quantized q8 folder; training from it needs the f32\/bf16\/f16 checkpoint it was made from/);
  openFloatCheckpoint(SOURCES.random, 'training from it').close();
});
