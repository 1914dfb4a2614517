// MLX folders: `convert --to mlx` writes what mlx-lm loads, with affine quantization packed as
// mlx.core.quantize packs it (checked tensor by tensor against tools/mlx_reference.py, a NumPy
// reimplementation, in test/fixtures/mlx); MLX folders (mlx-lm's and CoreNet's converter's layout)
// run with their exactly dequantized values; the round trip is exact unquantized and within the
// quantization's own error quantized.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { MlxModel, writeMlxFolder, mlxQuantize, mlxDequantize, mlxDequantizeSpan, type MlxDType } from '../src/formats/mlx.js';
import { writeHFFolder } from '../src/formats/hf.js';
import { loadModelFolder as loadModel } from '../src/io/model-folder.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import { resolveConfig } from '../src/model/config.js';
import { OpenELMError } from '../src/core/errors.js';
import { GOLDEN_ROOT } from './helpers/golden.js';
import { createWasm } from './helpers/backends.js';
import { TOL, assertClose } from './tolerances.js';
import { runCli } from './helpers/cli.js';
import { tinyModelDir } from './helpers/tiny.js';
import { allocWeightStorage, blockRowToF32 } from '../src/backends/weight-format.js';

const FIX = fileURLToPath(new URL('../../test/fixtures/mlx/', import.meta.url));
const GOLDEN = path.join(GOLDEN_ROOT, 'gqa2-hd64');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-mlx-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Entry { dtype: string; shape: number[]; sha256: string; dequantized_sha256?: string; }
const manifest = JSON.parse(fs.readFileSync(path.join(FIX, 'MANIFEST.json'), 'utf8')) as {
  mlx_lm: Record<string, Record<string, Entry>>;
  corenet_mlx: Record<string, Record<string, string>>;
};
const sha = (v: ArrayBufferView) => createHash('sha256').update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)).digest('hex');
const ST_DTYPE: Record<string, string> = { float32: 'F32', bfloat16: 'BF16', float16: 'F16', U32: 'U32' };

const CASES: [string, number, number, MlxDType][] = [
  ['gqa2-hd64 q4 g64 float32', 4, 64, 'F32'],
  ['gqa2-hd64 q8 g128 bfloat16', 8, 128, 'BF16'],
  ['gqa2-hd64 q4 g32 float16', 4, 32, 'F16'],
];

function exportGolden(bits: number, groupSize: number, dtype: MlxDType, dir: string) {
  const ck = openCheckpoint(GOLDEN);
  const c = resolveConfig(JSON.parse(fs.readFileSync(path.join(GOLDEN, 'config.json'), 'utf8')));
  try { return writeMlxFolder(ck, c, dir, { quantization: { bits, groupSize }, dtype }); } finally { ck.close(); }
}

test('convert --to mlx packs weights, scales and biases exactly as the MLX reference does', () => {
  for (const [name, bits, gs, dtype] of CASES) {
    const dir = path.join(tmp, name.replace(/ /g, '-'));
    const r = exportGolden(bits, gs, dtype, dir);
    const f = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
    try {
      assert.deepEqual(f.metadata, { format: 'mlx' });
      const want = manifest.mlx_lm[name];
      assert.deepEqual(f.names().sort(), Object.keys(want).sort(), name);
      for (const [t, e] of Object.entries(want)) {
        const info = f.info(t);
        assert.equal(info.dtype, ST_DTYPE[e.dtype], `${name} ${t}`);
        assert.deepEqual(info.shape, e.shape, `${name} ${t}`);
        assert.equal(sha(f.readRaw(t)), e.sha256, `${name} ${t} differs from the MLX reference`);
      }
    } finally { f.close(); }
    // Layers whose input width is not a multiple of the group size stay unquantized.
    if (gs === 128) assert.ok(r.unquantized.includes('transformer.layers.0.attn.qkv_proj.weight'));
    else assert.deepEqual(r.unquantized, []);
  }
});

test('config.json carries what mlx-lm\'s openelm ModelArgs needs and the quantization', () => {
  const dir = path.join(tmp, 'gqa2-hd64-q4-g64-float32');
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  for (const k of ['model_type', 'head_dim', 'num_transformer_layers', 'model_dim', 'vocab_size', 'ffn_dim_divisor', 'num_query_heads', 'num_kv_heads', 'ffn_multipliers']) assert.ok(k in cfg, k);
  assert.equal(cfg.model_type, 'openelm');
  assert.deepEqual(cfg.quantization, { group_size: 64, bits: 4 });
  assert.deepEqual(cfg.num_query_heads, [2, 2, 4]);
  assert.equal(cfg.ffn_multipliers.length, 3, 'one multiplier per layer (mlx-lm indexes them by layer)');
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'model.safetensors.index.json'), 'utf8'));
  assert.equal(index.weight_map['transformer.layers.0.attn.qkv_proj.scales'], 'model.safetensors');
});

test('reading an MLX folder gives the exactly dequantized values (scale·q + bias in float32)', () => {
  for (const [name] of CASES) {
    const m = MlxModel.open(path.join(tmp, name.replace(/ /g, '-')));
    try {
      assert.equal(m.layout, 'mlx-lm');
      for (const [t, e] of Object.entries(manifest.mlx_lm[name])) {
        if (!e.dequantized_sha256) continue;
        assert.ok(m.quantized.has(t), t);
        assert.equal(sha(m.readF32(t)), e.dequantized_sha256, `${name} ${t}`);
      }
    } finally { m.close(); }
  }
});

/** Row ranges and ranges that cut rows, of a tensor of `rows` rows of `cols`. */
function rangesOf(rows: number, cols: number): [number, number][] {
  const r: [number, number][] = [[0, rows * cols], [0, cols], [(rows - 1) * cols, cols], [0, 0], [rows * cols, 0]];
  if (rows > 3) r.push([cols, Math.floor(rows / 2) * cols], [cols + 3, 2 * cols - 5], [2 * cols + 1, 1]);
  if (cols > 8) r.push([5, cols - 7]);
  if (rows > 1 && cols > 8) r.push([cols - 3, 6]);
  return r;
}

test('row ranges of an MLX folder decode as the same slice of the whole tensor, from just their rows (every fixture: 4/8 bits, groups 32/64/128, f32/bf16/f16, CoreNet layout)', () => {
  const dirs = [...CASES.map(([name]) => path.join(tmp, name.replace(/ /g, '-'))), path.join(FIX, 'corenet-gpt-test-q4')];
  for (const dir of dirs) {
    const m = MlxModel.open(dir);
    try {
      for (const name of m.names()) {
        const shape = m.info(name).shape, all = m.readF32(name);
        const cols = shape[shape.length - 1], rows = all.length / cols;
        for (const [start, count] of rangesOf(rows, cols)) {
          const dst = new Float32Array(count + 1).fill(7);
          m.readF32Range(name, start, count, dst);
          assert.ok(dst.subarray(0, count).every((v, i) => Object.is(v, all[start + i])), `${dir} ${name} [${start}, +${count})`);
          assert.equal(dst[count], 7, 'nothing past count');
        }
      }
      // A range reads its rows' codes, scales and biases into buffers kept between reads: nothing
      // the size of the tensor per call, quantized or not.
      const big = (q: boolean) => m.names().filter((n) => m.quantized.has(n) === q && m.info(n).shape.length === 2)
        .sort((a, b) => m.info(b).shape[0] * m.info(b).shape[1] - m.info(a).shape[0] * m.info(a).shape[1])[0];
      for (const name of [big(true), big(false)].filter(Boolean)) {
        const [rows, cols] = m.info(name).shape, half = Math.floor(rows / 2) * cols, dst = new Float32Array(half);
        m.readF32Range(name, 0, half, dst);
        const before = process.memoryUsage().arrayBuffers;
        m.readF32Range(name, cols, half, dst);
        const grew = process.memoryUsage().arrayBuffers - before;
        assert.ok(grew < 4 * cols, `${dir} ${name}: a range of ${half} values allocated ${grew} bytes`);
      }
    } finally { m.close(); }
  }
});

test('a range longer than one read slice (64 KiB of codes) decodes as the whole tensor does (3 and 8 bits)', () => {
  const src = tinyModelDir({ vocab_size: 12000, num_transformer_layers: 1 });
  const ck = openCheckpoint(src);
  try {
    for (const [bits, groupSize] of [[3, 32], [8, 64]]) {
      const dir = path.join(tmp, `wide-q${bits}`);
      writeMlxFolder(ck, resolveConfig(JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'))), dir, { quantization: { bits, groupSize }, dtype: 'F16' });
      const m = MlxModel.open(dir);
      try {
        const emb = 'transformer.token_embeddings.weight', [rows, cols] = m.info(emb).shape, all = m.readF32(emb);
        assert.ok(m.quantized.has(emb) && rows * cols * bits / 8 > 3 * 65536, 'the embedding spans several slices');
        for (const [start, count] of [[0, rows * cols], [1000 * cols + 5, 2100 * cols], [(rows - 1) * cols + 1, cols - 1]]) {
          const dst = new Float32Array(count);
          m.readF32Range(emb, start, count, dst);
          assert.ok(dst.every((v, i) => Object.is(v, all[start + i])), `${bits} bits [${start}, +${count})`);
        }
      } finally { m.close(); }
    }
  } finally { ck.close(); fs.rmSync(src, { recursive: true, force: true }); }
});

test('a span of a quantized matrix, cut anywhere, is the same slice of the whole dequantized matrix (2/3/5/6 bits too)', () => {
  const rows = 5, cols = 128;
  const w = new Float32Array(rows * cols);
  for (let i = 0; i < w.length; i++) w[i] = Math.fround(Math.sin(i * 12.9898) * 3);
  for (const bits of [2, 3, 4, 5, 6, 8]) {
    for (const groupSize of [32, 64, 128]) {
      const q = { bits, groupSize };
      const p = mlxQuantize(w, rows, cols, q, 'F32');
      const words = new Uint8Array(p.weight.buffer), all = new Float32Array(rows * cols);
      mlxDequantize(words, p.scales, p.biases, rows, cols, q, all);
      const rowBytes = (cols * bits) / 8, gpr = cols / groupSize;
      for (const [start, count] of rangesOf(rows, cols)) {
        if (count === 0) continue;
        // what a range read hands over: just the rows holding the span
        const r0 = Math.floor(start / cols), r1 = Math.ceil((start + count) / cols);
        const dst = new Float32Array(count);
        mlxDequantizeSpan(words.subarray(r0 * rowBytes, r1 * rowBytes), p.scales.subarray(r0 * gpr, r1 * gpr), p.biases.subarray(r0 * gpr, r1 * gpr), cols, q, start - r0 * cols, count, dst);
        assert.ok(dst.every((v, i) => Object.is(v, all[start + i])), `${bits} bits, group ${groupSize}, [${start}, +${count})`);
      }
    }
  }
});

test('round trip: unquantized is bit-exact; quantized is within half a step (1.5 at the clipped end) of each group', () => {
  const ck = openCheckpoint(GOLDEN);
  const c = resolveConfig(JSON.parse(fs.readFileSync(path.join(GOLDEN, 'config.json'), 'utf8')));
  try {
    const plain = path.join(tmp, 'plain');
    writeMlxFolder(ck, c, plain);
    const back = openCheckpoint(plain);
    for (const n of ck.names()) assert.deepEqual(back.readRaw(n), ck.readRaw(n), n);
    back.close();
    const m = MlxModel.open(path.join(tmp, 'gqa2-hd64-q4-g64-float32'));
    try {
      for (const n of m.quantized.keys()) {
        const w = ck.readF32(n), d = m.readF32(n);
        const [rows, cols] = ck.info(n).shape;
        const q = mlxQuantize(w, rows, cols, { bits: 4, groupSize: 64 }, 'F32');
        for (let i = 0; i < w.length; i++) {
          const s = Math.abs(q.scales[Math.floor(i / 64)]);
          const code = (q.weight[i >>> 3] >>> ((i & 7) * 4)) & 15;
          // Codes inside the range round to the nearest step; the end opposite the exact edge may
          // be clipped at the last code (MLX rescales so the edge is exact), up to 1.5 steps away.
          const bound = code === 15 ? 1.5 * s : s / 2;
          assert.ok(Math.abs(w[i] - d[i]) <= bound * (1 + 1e-5) + 1e-7, `${n}[${i}]: ${w[i]} vs ${d[i]} (step ${s}, code ${code})`);
        }
      }
    } finally { m.close(); }
  } finally { ck.close(); }
});

test('quantizer: the larger-magnitude end of each group is exact; codes pack LSB first; dequantize inverts it', () => {
  const w = Float32Array.from([-3, -1, 0, 0.5, 1, 2, 2.5, 1.25, ...new Array(24).fill(0.25)]);
  const q = mlxQuantize(w, 1, 32, { bits: 4, groupSize: 32 }, 'F32');
  const d = new Float32Array(32);
  mlxDequantize(new Uint8Array(q.weight.buffer), q.scales, q.biases, 1, 32, { bits: 4, groupSize: 32 }, d);
  assert.equal(d[0], -3, 'the edge (largest magnitude) is exact');
  assert.equal(q.biases[0], -3);
  assert.equal(q.weight[0] & 0xf, 0, 'code 0 is the bias');
  for (let i = 0; i < 32; i++) assert.ok(Math.abs(d[i] - w[i]) <= Math.abs(q.scales[0]) / 2 + 1e-7, `${i}`);
  assert.throws(() => mlxQuantize(w, 1, 32, { bits: 4, groupSize: 64 }, 'F32'), /groups of 64/);
});

test('an MLX folder runs with its dequantized values: the same logits as the HF folder of those values', async () => {
  const ids = [1, 5, 9, 200, 17, 3];
  const logits = async (dir: string) => {
    const be = new JsBackend();
    const model = loadModel(dir, { backend: be });
    return Array.from(await model.logitsAll(ids));
  };
  const qdir = path.join(tmp, 'gqa2-hd64-q8-g128-bfloat16');
  const m = MlxModel.open(qdir);
  const hf = path.join(tmp, 'q8-as-hf');
  writeHFFolder(m, m.config, hf);
  m.close();
  assert.deepEqual(await logits(qdir), await logits(hf));
});

test('4-bit MLX weights run as stored are read a slice of rows at a time: their blocks decode to the tensor\'s values, with nothing the size of the tensor allocated (f16 and f32 scales)', () => {
  const src = tinyModelDir({ vocab_size: 12000, num_transformer_layers: 1 });
  const ck = openCheckpoint(src);
  try {
    for (const [groupSize, dtype, blocks] of [[32, 'F16', 'q4_1'], [64, 'F32', 'q4_1_f32']] as const) {
      const dir = path.join(tmp, `wide-q4-g${groupSize}-${dtype}`);
      writeMlxFolder(ck, resolveConfig(JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8'))), dir, { quantization: { bits: 4, groupSize }, dtype });
      const m = MlxModel.open(dir);
      try {
        const emb = 'transformer.token_embeddings.weight', [rows, cols] = m.info(emb).shape;
        assert.ok(rows * cols / 2 > 3 * 65536, 'the embedding spans several slices');
        for (const name of m.names().filter((n) => m.quantized.has(n))) {
          const [part] = m.storedWeight(name)!, [r, c] = m.info(name).shape;
          assert.equal(part.dtype, blocks);
          const w = allocWeightStorage(part.dtype, part.rows, c), data = w.data as Uint8Array;
          part.read(data);
          const before = process.memoryUsage().arrayBuffers;
          part.read(data);
          const grew = process.memoryUsage().arrayBuffers - before;
          assert.ok(grew < data.length / 8, `${dtype} ${name}: reading ${data.length} bytes of blocks allocated ${grew} bytes`);
          const all = m.readF32(name), row = new Float32Array(c);
          for (let i = 0; i < r; i++) {
            blockRowToF32(blocks, data, i, c, row);
            assert.ok(row.every((v, j) => Object.is(v, all[i * c + j])), `${dtype} ${name} row ${i}`);
          }
        }
      } finally { m.close(); }
    }
  } finally { ck.close(); fs.rmSync(src, { recursive: true, force: true }); }
});

test('4-bit MLX weights run as stored blocks (Q4_1 for half scales, q4_1_f32 otherwise) with their decoded values\' logits', async () => {
  const bf16 = path.join(tmp, 'gqa2-hd64-q4-g128-bfloat16');
  exportGolden(4, 128, 'BF16', bf16);
  const cases: [string, string, string][] = [
    [path.join(tmp, 'gqa2-hd64-q4-g64-float32'), 'q4_1_f32', 'q4_1_f32'],
    [path.join(tmp, 'gqa2-hd64-q4-g32-float16'), 'q4_1', 'q4_1'],
    // rows of 64 are not whole groups of 128: those layers (and the embedding) stay bfloat16, as mlx-lm leaves them
    [bf16, 'q4_1_f32', 'bf16'],
    // CoreNet's converter quantizes Linear layers only: the embedding stays float16
    [path.join(FIX, 'corenet-gpt-test-q4'), 'q4_1', 'f16'],
  ];
  const wasm = await createWasm({ threads: 2 });
  try {
    for (const [dir, lin, emb] of cases) {
      const js = new JsBackend();
      const stored = loadModel(dir, { backend: js });
      const w = stored.weights;
      assert.equal(w.layers[w.layers.length - 1].proj2.dtype, lin, dir);
      assert.equal(w.layers[w.layers.length - 1].out.dtype, lin, dir);
      assert.equal(w.embed.dtype, emb, dir);
      const V = stored.config.vocabSize;
      const ids = [1, 5, 9, 200 % V, 17, 3, 77 % V, 8, 12, 40];
      const want = await loadModel(dir, { backend: new JsBackend(), dtype: 'f32' }).logitsAll(ids);
      assert.deepEqual(await stored.logitsAll(ids), want, `${dir}: the reference computes with the same values`);
      const onWasm = loadModel(dir, { backend: wasm });
      assertClose(await onWasm.logitsAll(ids), want, TOL.fastVsRef, `${dir} prefill (wasm)`);
      const cache = onWasm.newCache(4);
      for (let i = 0; i < 4; i++) {
        const row = await onWasm.forward([{ cache, tokens: [ids[i]] }]);
        assertClose(row, want.subarray(i * V, (i + 1) * V), TOL.fastVsRef, `${dir} decode ${i} (wasm)`);
      }
      cache.dispose();
    }
  } finally { wasm.dispose(); }
});

test('CoreNet\'s MLX layout (CoreNet names, quantized Linear layers) opens and runs', async () => {
  const dir = path.join(FIX, 'corenet-gpt-test-q4');
  const m = MlxModel.open(dir);
  try {
    assert.equal(m.layout, 'corenet-mlx');
    assert.equal(m.config.vocabSize, 264);
    assert.deepEqual(m.config.ffnDims, [256]);
    assert.ok(!m.quantized.has('transformer.token_embeddings.weight'));
    assert.ok(m.quantized.has('transformer.layers.0.ffn.proj_1.weight'));
    for (const [t, h] of Object.entries(manifest.corenet_mlx['gpt-test-q4-g64'])) assert.equal(sha(m.readF32(t)), h, t);
  } finally { m.close(); }
  const model = loadModel(dir, { backend: new JsBackend() });
  const out = await model.logitsAll([1, 2, 3]);
  assert.ok(Array.from(out).every(Number.isFinite));
});

test('CLI: convert --to mlx --q-bits 4, then generate from the folder; bad flags fail in one line', () => {
  const out = path.join(tmp, 'cli-q4');
  let r = runCli(['convert', '--model', GOLDEN, '--to', 'mlx', '--q-bits', '4', '--q-group-size', '64', '--out', out, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.bits, 4);
  assert.equal(j.quantized, 3 * 4 + 1);
  // A model with the full Llama-2 vocabulary, so text prompts work.
  const full = tinyModelDir({ vocab_size: 32000 }, 4);
  const q8 = path.join(tmp, 'cli-q8');
  try {
    r = runCli(['convert', '--model', full, '--to', 'mlx', '--q-bits', '8', '--out', q8]);
    assert.equal(r.status, 0, r.stderr);
    r = runCli(['generate', '--model', q8, '--prompt', 'Hi', '--max-tokens', '3', '--json']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(JSON.parse(r.stdout).ids.length >= 1);
  } finally { fs.rmSync(full, { recursive: true, force: true }); }
  for (const [args, re] of [
    [['--q-bits', '3'], /--q-bits must be 4 or 8, got 3/],
    [['--q-group-size', '48'], /--q-group-size must be one of 32, 64, 128, got 48/],
  ] as [string[], RegExp][]) {
    const bad = path.join(tmp, 'bad-mlx');
    r = runCli(['convert', '--model', GOLDEN, '--to', 'mlx', ...args, '--out', bad]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.equal(fs.existsSync(bad), false);
  }
});

test('a quantized MLX folder with a missing or unsupported piece fails in one line', () => {
  const src = path.join(tmp, 'gqa2-hd64-q4-g64-float32');
  const broken = path.join(tmp, 'broken');
  fs.cpSync(src, broken, { recursive: true });
  const cfg = JSON.parse(fs.readFileSync(path.join(broken, 'config.json'), 'utf8'));
  cfg.quantization = { group_size: 64, bits: 7 };
  fs.writeFileSync(path.join(broken, 'config.json'), JSON.stringify(cfg));
  assert.throws(() => MlxModel.open(broken), (e: unknown) => e instanceof OpenELMError && /quantization \{group_size: 64, bits: 7\} is not supported/.test(e.message) && !e.message.includes('\n'));
  cfg.quantization = { group_size: 32, bits: 4 };
  fs.writeFileSync(path.join(broken, 'config.json'), JSON.stringify(cfg));
  assert.throws(() => MlxModel.open(broken), /tensor transformer\.token_embeddings\.scales is F32 \[384,1\], expected F32\/BF16\/F16 \[384,2\]/);
});
