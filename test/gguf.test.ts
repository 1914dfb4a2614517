// GGUF export: the container format itself, the openelm metadata/tensor layout, CLI errors, and the
// proof that matters — llama.cpp (node-llama-cpp's prebuilt CPU binary) loads the files we write
// and produces the same greedy tokens and log-probabilities as our own engine.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runCli } from './helpers/cli.js';
import { tinyModelDir } from './helpers/tiny.js';
import {
  writeGGUF, readGGUF, readGGUFTensorF32, readGGUFTensorBytes, kv, GGMLType, GGUFType, GGUF_MAGIC,
} from '../src/io/gguf.js';
import { encodeQ4_0, encodeQ5_0, encodeQ8_0 } from '../src/convert/ggml-encode.js';
import { GOLDEN_ROOT } from './helpers/golden.js';
import { fileURLToPath } from 'node:url';
import { convertToGGUF, type GGUFOutType } from '../src/convert/to-gguf.js';
import { f16ToF32, f32ToF16 } from '../src/core/dtype.js';
import { resolveConfig, type OpenELMHFConfig } from '../src/model/config.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { loadModelFolder as loadModel } from '../src/io/model-folder.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { generate } from '../src/generate/generate.js';
import type { Backend, ConvertDType } from '../src/backends/backend.js';
import { createBackend } from '../src/backends/index.js';
import '../src/platform/node.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-gguf-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

// ------------------------------------------------------------------------------------------------
// The container

test('GGUF writer: header, typed metadata, 32-byte aligned tensor data, reader round trip', () => {
  const file = path.join(tmp, 'rt.gguf');
  const a = Float32Array.from({ length: 5 * 3 }, (_, i) => i * 0.25 - 1);
  const h = Float32Array.from({ length: 7 }, (_, i) => i / 3);
  const q = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
  const meta = [
    kv.str('general.architecture', 'test'), kv.u32('general.alignment', 32), kv.i32('x.neg', -5),
    kv.f32('x.f', 0.5), kv.bool('x.b', true), kv.i32s('x.arr', [1, 2, 3]), kv.strs('x.strs', ['a', 'ü', '']),
    kv.f32s('x.fs', [1.5, -2]),
  ];
  const size = writeGGUF(file, meta, [
    { name: 'a', dims: [3, 5], type: GGMLType.F32, data: () => new Uint8Array(a.buffer) },
    { name: 'h', dims: [7], type: GGMLType.F16, data: () => { const u = Uint16Array.from(h, f32ToF16); return new Uint8Array(u.buffer); } },
    { name: 'q', dims: [32, 2], type: GGMLType.Q8_0, data: () => { const b = new Uint8Array(68); encodeQ8_0(q, b); return b; } },
  ]);
  assert.equal(fs.statSync(file).size, size);
  const raw = fs.readFileSync(file);
  assert.equal(raw.readUInt32LE(0), GGUF_MAGIC);
  assert.equal(raw.subarray(0, 4).toString('latin1'), 'GGUF');
  assert.equal(raw.readUInt32LE(4), 3);
  const g = readGGUF(file);
  assert.equal(g.version, 3);
  assert.equal(g.metadata.get('x.neg'), -5);
  assert.equal(g.metadataTypes.get('general.alignment'), GGUFType.UINT32);
  assert.equal(g.metadataTypes.get('x.arr'), GGUFType.ARRAY);
  assert.deepEqual(g.metadata.get('x.strs'), ['a', 'ü', '']);
  assert.deepEqual(g.metadata.get('x.fs'), [1.5, -2]);
  assert.equal(g.metadata.get('x.b'), true);
  assert.equal(g.dataOffset % 32, 0);
  for (const t of g.tensors) assert.equal(t.offset % 32, 0, `${t.name} offset ${t.offset}`);
  assert.deepEqual(g.tensors.map((t) => [t.name, t.dims, t.type]), [['a', [3, 5], 0], ['h', [7], 1], ['q', [32, 2], 8]]);
  assert.deepEqual(readGGUFTensorF32(file, g, 'a'), a);
  assert.deepEqual(Array.from(readGGUFTensorF32(file, g, 'h')), Array.from(h, (v) => f16ToF32(f32ToF16(v))));
  const qd = readGGUFTensorF32(file, g, 'q');
  for (let i = 0; i < 64; i++) assert.ok(Math.abs(qd[i] - q[i]) <= 1 / 254 + 1e-3, `q[${i}]`);
  assert.equal(size, g.dataOffset + g.tensors[2].offset + 68);
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-')), [], 'no staging files left');
});

test('GGUF reader: numeric arrays read in bulk, ASCII and UTF-8 strings, and bad strings and counts refused in one line', () => {
  const file = path.join(tmp, 'arrays.gguf');
  const fs32 = [0.1, -0, 3.4e38, 1e-45, Number.NaN, -Infinity];
  writeGGUF(file, [
    kv.f32s('x.f', fs32), kv.i32s('x.i', [-(2 ** 31), 0, 2 ** 31 - 1]),
    { key: 'x.u', value: { type: GGUFType.ARRAY, itemType: GGUFType.UINT32, value: [0, 2 ** 32 - 1] } },
    { key: 'x.u8', value: { type: GGUFType.ARRAY, itemType: GGUFType.UINT8, value: [7, 255] } },
    kv.strs('x.s', ['plain', '\u2581the', 'é', '', '\x7f~', '\u{1f600}', 'a\ufffdb']),
  ], []);
  const g = readGGUF(file);
  assert.deepEqual(g.metadata.get('x.f'), fs32.map(Math.fround));
  assert.ok(Object.is((g.metadata.get('x.f') as number[])[1], -0));
  assert.deepEqual(g.metadata.get('x.i'), [-(2 ** 31), 0, 2 ** 31 - 1]);
  assert.deepEqual(g.metadata.get('x.u'), [0, 2 ** 32 - 1]);
  assert.deepEqual(g.metadata.get('x.u8'), [7, 255]);
  assert.deepEqual(g.metadata.get('x.s'), ['plain', '\u2581the', 'é', '', '\x7f~', '\u{1f600}', 'a\ufffdb']);
  // a string that is not UTF-8 (a lone continuation byte) and one with a length past 2^53
  const raw = fs.readFileSync(file), bad = path.join(tmp, 'arrays-bad.gguf');
  const at = raw.indexOf(Buffer.from('plain'));
  const utf = Buffer.from(raw); utf[at + 2] = 0x80;
  fs.writeFileSync(bad, utf);
  assert.throws(() => readGGUF(bad), /arrays-bad\.gguf: string at offset \d+ is not valid UTF-8/);
  const big = Buffer.from(raw); big.writeBigUInt64LE(2n ** 60n, at - 8);
  fs.writeFileSync(bad, big);
  assert.throws(() => readGGUF(bad), /arrays-bad\.gguf: string length 1152921504606846976 is implausibly large/);
});

test('GGUF writer rejects bad input and leaves no file behind', () => {
  const file = path.join(tmp, 'bad.gguf');
  assert.throws(() => writeGGUF(file, [kv.u32('k', -1)], []), /metadata k: expected a UINT32/);
  assert.throws(() => writeGGUF(file, [kv.str('k', 'a'), kv.str('k', 'b')], []), /duplicate metadata key k/);
  assert.throws(() => writeGGUF(file, [], [{ name: 'q', dims: [48], type: GGMLType.Q8_0, data: () => new Uint8Array(0) }]), /divisible by 32/);
  assert.throws(() => writeGGUF(file, [], [{ name: 't', dims: [4], type: GGMLType.F32, data: () => new Uint8Array(3) }]), /produced 3 bytes, expected 16/);
  assert.equal(fs.existsSync(file), false);
  assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-')), []);
});

test('Q8_0 follows ggml: d = max|x|/127 stored as f16, q = roundf(x/d) with halves away from zero', () => {
  const x = new Float32Array(32);
  x[0] = 127; x[1] = 2.5; x[2] = -2.5; x[3] = -127; x[4] = 0.49; x[5] = 63.5;
  const b = new Uint8Array(34);
  encodeQ8_0(x, b);
  const dv = new DataView(b.buffer);
  assert.equal(f16ToF32(dv.getUint16(0, true)), 1);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((i) => dv.getInt8(1 + i)), [127, 3, -3, -127, 0, 64, 0]);
  const z = new Uint8Array(34);
  encodeQ8_0(new Float32Array(32), z);
  assert.ok(z.every((v) => v === 0), 'an all-zero block has d = 0 and q = 0');
});

// ------------------------------------------------------------------------------------------------
// The openelm export

// head_dim 64 and widths that are multiples of 64 suit every llama.cpp kernel (and Q8_0's blocks of
// 32); GQA 2 with layer-wise scaling gives per-layer q heads 4,4,6,6 / kv heads 2,2,3,3 and FFN
// widths 192..768. Seed 3 gives greedy top-1/top-2 logit margins ≥ 0.5 along the checked path, so
// comparing argmax tokens across f16 / Q8_0 arithmetic is meaningful (asserted below).
const HF: Partial<OpenELMHFConfig> = {
  vocab_size: 32000, model_dim: 384, head_dim: 64, num_transformer_layers: 4, num_gqa_groups: 2,
  qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 2.0], ffn_dim_divisor: 64,
  max_context_length: 128, rope_max_length: 128,
};
const SEED = 3;
const DTYPES: GGUFOutType[] = ['f32', 'f16', 'q8_0', 'q4_0'];
let modelDir = '';
const ggufOf = (d: GGUFOutType) => path.join(tmp, `tiny-${d}.gguf`);

before(() => {
  modelDir = tinyModelDir(HF, SEED);
  for (const d of DTYPES) if (d !== 'q8_0') convertToGGUF(modelDir, ggufOf(d), d);
  // q8_0 goes through the CLI, so the command path is exercised too.
  const r = runCli(['convert', '--model', modelDir, '--to', 'gguf', '--dtype', 'q8_0', '--out', ggufOf('q8_0'), '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.dtype, 'q8_0');
  assert.equal(j.tensors, 4 * 9 + 2);
  assert.deepEqual(j.f16_fallbacks, []);
});
after(() => { if (modelDir) fs.rmSync(modelDir, { recursive: true, force: true }); });

test('convert: openelm metadata with per-layer arrays and the Llama-2 vocab', () => {
  const c = resolveConfig({ ...HF, model_type: 'openelm' } as OpenELMHFConfig);
  const tok = loadTokenizer();
  for (const d of DTYPES) {
    const g = readGGUF(ggufOf(d));
    const m = g.metadata;
    assert.equal(m.get('general.architecture'), 'openelm');
    assert.equal(m.get('general.file_type'), { f32: 0, f16: 1, q8_0: 7, q4_0: 2 }[d]);
    assert.equal(m.get('general.alignment'), 32);
    assert.equal(m.get('openelm.block_count'), 4);
    assert.equal(m.get('openelm.context_length'), 128);
    assert.equal(m.get('openelm.embedding_length'), 384);
    assert.deepEqual(m.get('openelm.feed_forward_length'), c.ffnDims);
    assert.deepEqual(m.get('openelm.attention.head_count'), [4, 4, 6, 6]);
    assert.deepEqual(m.get('openelm.attention.head_count_kv'), [2, 2, 3, 3]);
    assert.equal(m.get('openelm.attention.key_length'), 64);
    assert.equal(m.get('openelm.attention.value_length'), 64);
    assert.equal(m.get('openelm.rope.dimension_count'), 64);
    assert.equal(m.get('openelm.rope.freq_base'), 10000);
    assert.equal(m.get('openelm.attention.layer_norm_rms_epsilon'), Math.fround(1e-6));
    for (const k of ['openelm.block_count', 'openelm.embedding_length', 'general.file_type', 'tokenizer.ggml.bos_token_id']) {
      assert.equal(g.metadataTypes.get(k), GGUFType.UINT32, k);
    }
    assert.equal(m.get('tokenizer.ggml.model'), 'llama');
    const tokens = m.get('tokenizer.ggml.tokens') as string[];
    const types = m.get('tokenizer.ggml.token_type') as number[];
    const scores = m.get('tokenizer.ggml.scores') as number[];
    assert.equal(tokens.length, 32000);
    assert.deepEqual([tokens[0], tokens[1], tokens[2], tokens[13], tokens[15043]], ['<unk>', '<s>', '</s>', '<0x0A>', '▁Hello']);
    assert.deepEqual([types[0], types[1], types[2], types[13], types[15043]], [2, 3, 3, 6, 1]);
    assert.equal(scores[15043], tok.pieceScore(15043));
    assert.equal(m.get('tokenizer.ggml.bos_token_id'), 1);
    assert.equal(m.get('tokenizer.ggml.eos_token_id'), 2);
    assert.equal(m.get('tokenizer.ggml.unknown_token_id'), 0);
    assert.equal(m.get('tokenizer.ggml.add_bos_token'), true);
    assert.equal(m.get('tokenizer.ggml.add_eos_token'), false);
  }
});

test('convert: tensor names, ggml dim order, types (norms stay F32) and values, gate/up split', () => {
  const c = resolveConfig({ ...HF, model_type: 'openelm' } as OpenELMHFConfig);
  const ck = openCheckpoint(modelDir);
  try {
    for (const d of DTYPES) {
      const file = ggufOf(d);
      const g = readGGUF(file);
      const names = g.tensors.map((t) => t.name);
      assert.equal(names.length, 2 + 9 * 4);
      assert.ok(!names.includes('output.weight'), 'tied head: no output tensor');
      const wt = { f32: GGMLType.F32, f16: GGMLType.F16, q8_0: GGMLType.Q8_0, q4_0: GGMLType.Q4_0 }[d];
      const by = new Map(g.tensors.map((t) => [t.name, t]));
      assert.deepEqual(by.get('token_embd.weight')!.dims, [384, 32000]);
      // q4_0 keeps the embedding (the tied head) in Q5_0
      assert.equal(by.get('token_embd.weight')!.type, d === 'q4_0' ? GGMLType.Q5_0 : wt);
      assert.deepEqual(by.get('output_norm.weight')!.dims, [384]);
      for (let i = 0; i < 4; i++) {
        const Q = c.numQueryHeads[i], H = c.numKvHeads[i], F = c.ffnDims[i];
        const exp: Record<string, number[]> = {
          attn_norm: [384], attn_qkv: [384, (Q + 2 * H) * 64], attn_q_norm: [64], attn_k_norm: [64],
          attn_output: [Q * 64, 384], ffn_norm: [384], ffn_gate: [384, F], ffn_up: [384, F], ffn_down: [F, 384],
        };
        for (const [n, dims] of Object.entries(exp)) {
          const t = by.get(`blk.${i}.${n}.weight`)!;
          assert.deepEqual(t.dims, dims, `blk.${i}.${n}`);
          assert.equal(t.type, dims.length === 1 ? GGMLType.F32 : wt, `blk.${i}.${n} type`);
        }
      }
      // Values: the split of proj_1 in layer 2 (gate = first F rows, up = last F rows), and a norm.
      const F = c.ffnDims[2];
      const p1 = ck.readF32('transformer.layers.2.ffn.proj_1.weight');
      const gate = readGGUFTensorF32(file, g, 'blk.2.ffn_gate.weight');
      const up = readGGUFTensorF32(file, g, 'blk.2.ffn_up.weight');
      const tol = d === 'f32' ? 0 : d === 'f16' ? 1e-3 : d === 'q8_0' ? 0.02 : 0.05;
      let worst = 0;
      for (let i = 0; i < F * 384; i++) {
        worst = Math.max(worst, Math.abs(gate[i] - p1[i]), Math.abs(up[i] - p1[F * 384 + i]));
      }
      assert.ok(worst <= tol, `${d}: gate/up max error ${worst}`);
      assert.deepEqual(readGGUFTensorF32(file, g, 'blk.3.attn_k_norm.weight'), ck.readF32('transformer.layers.3.attn.k_norm.weight'));
      if (d === 'f16') {
        const raw = readGGUFTensorBytes(file, g, 'blk.0.attn_qkv.weight');
        const src = ck.readF32('transformer.layers.0.attn.qkv_proj.weight');
        const h = new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2);
        for (let i = 0; i < src.length; i += 97) assert.equal(h[i], f32ToF16(src[i]));
      }
    }
  } finally {
    ck.close();
  }
});

// llama-quantize's Q4_0 and Q5_0 of the golden model (test/fixtures/gguf, --pure: every 2-D tensor
// of that type) are the reference: our encoders must give the same bytes for every tensor.
for (const [type, encode, bytes] of [[GGMLType.Q4_0, encodeQ4_0, 18], [GGMLType.Q5_0, encodeQ5_0, 22]] as const) {
  const tn = type === GGMLType.Q4_0 ? 'q4_0' : 'q5_0';
  test(`${tn.toUpperCase()} follows ggml: every block equals llama-quantize's, byte for byte`, () => {
    const fixture = fileURLToPath(new URL(`../../test/fixtures/gguf/gqa2-hd64-${tn}.gguf`, import.meta.url));
    const g = readGGUF(fixture);
    const ck = openCheckpoint(path.join(GOLDEN_ROOT, 'gqa2-hd64'));
    try {
      const hfOf = (name: string): { src: string; half?: 0 | 1 } => {
        if (name === 'token_embd.weight') return { src: 'transformer.token_embeddings.weight' };
        const m = /^blk\.(\d+)\.(\w+)\.weight$/.exec(name)!;
        const p = `transformer.layers.${m[1]}.`;
        const map: Record<string, { src: string; half?: 0 | 1 }> = {
          attn_qkv: { src: p + 'attn.qkv_proj.weight' }, attn_output: { src: p + 'attn.out_proj.weight' },
          ffn_down: { src: p + 'ffn.proj_2.weight' }, ffn_gate: { src: p + 'ffn.proj_1.weight', half: 0 }, ffn_up: { src: p + 'ffn.proj_1.weight', half: 1 },
        };
        return map[m[2]];
      };
      let n = 0;
      for (const t of g.tensors) {
        if (t.type !== type) continue;
        const { src, half } = hfOf(t.name);
        let v = ck.readF32(src);
        if (half !== undefined) v = v.subarray(half * (v.length / 2), (half + 1) * (v.length / 2));
        const mine = new Uint8Array((v.length / 32) * bytes);
        encode(v, mine);
        assert.deepEqual(mine, readGGUFTensorBytes(fixture, g, t.name), t.name);
        n++;
      }
      assert.equal(n, 1 + 5 * 3, 'token_embd and 5 weights per layer');
    } finally {
      ck.close();
    }
  });
}

test('Q4_0 edge cases: zeros stay zero, the largest magnitude lands on q = 0', () => {
  // a block of zeros stays zero: d = 0 / −8 = −0 (stored as the half 0x8000, as ggml does), every q
  // the middle level 8
  const z = new Uint8Array(18);
  encodeQ4_0(new Float32Array(32), z);
  assert.deepEqual(Array.from(z), [0, 0x80, ...new Array(16).fill(0x88)]);
  const x = new Float32Array(32).map((_, i) => (i - 12) / 10);
  const b = new Uint8Array(18);
  encodeQ4_0(x, b);
  assert.equal(f16ToF32(b[0] | (b[1] << 8)), f16ToF32(f32ToF16(Math.fround(1.9 / -8))));
  assert.equal(b[2 + 15] >> 4, 0, 'x[31] = 1.9, the largest magnitude, is q = 0');
});

test('convert: clear errors for bad flags, missing model or output folder, and a vocab the tokenizer does not fit', () => {
  const expectFail = (args: string[], re: RegExp) => {
    const r = runCli(['convert', ...args]);
    assert.notEqual(r.status, 0, `expected failure: ${args.join(' ')}`);
    assert.match(r.stderr, re);
    assert.ok(r.stderr.trim().split('\n').length === 1, `one line: ${r.stderr}`);
  };
  const out = path.join(tmp, 'x.gguf');
  expectFail(['--model', modelDir, '--to', 'onnx', '--out', out], /--to must be one of gguf, hf, mlx, corenet, run, mlx-adapter; got "onnx"/);
  expectFail(['--model', modelDir, '--dtype', 'q4_k', '--out', out], /unknown --dtype "q4_k".*f32, f16, q8_0/);
  expectFail(['--model', path.join(tmp, 'nope'), '--out', out], /model folder .*nope does not exist/);
  expectFail(['--model', modelDir, '--out', path.join(tmp, 'no-such-dir', 'm.gguf')], /output folder .*no-such-dir does not exist/);
  expectFail(['--model', modelDir], /--out is required/);
  const small = tinyModelDir({ vocab_size: 300 }, 1);
  try {
    expectFail(['--model', small, '--out', out], /tokenizer has 32000 pieces but the model's vocab_size is 300/);
  } finally {
    fs.rmSync(small, { recursive: true, force: true });
  }
  assert.equal(fs.existsSync(out), false);
  const r = runCli(['convert', '--help']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /--dtype/);
});

test('convert: a vocab_size above the tokenizer\'s is padded with unused [PADn] tokens (CoreNet\'s 32128)', () => {
  const dir = tinyModelDir({ ...HF, vocab_size: 32032, num_transformer_layers: 1 }, 2);
  try {
    const file = path.join(tmp, 'pad.gguf');
    convertToGGUF(dir, file, 'f16');
    const g = readGGUF(file);
    const tokens = g.metadata.get('tokenizer.ggml.tokens') as string[];
    const types = g.metadata.get('tokenizer.ggml.token_type') as number[];
    assert.equal(tokens.length, 32032);
    assert.equal(tokens[32000], '[PAD32000]');
    assert.equal(types[32031], 5);
    assert.deepEqual(g.tensors.find((t) => t.name === 'token_embd.weight')!.dims, [384, 32032]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------------------------------------------
// llama.cpp runs what we wrote

type NLC = typeof import('node-llama-cpp');
type Llama = Awaited<ReturnType<NLC['getLlama']>>;
let nlc: NLC | null = null;
let llama: Llama | null = null;
let skipWhy = '';

before(async () => {
  try {
    nlc = await import('node-llama-cpp');
    // Prebuilt CPU binary only: never download sources, never compile, never probe GPUs.
    llama = await nlc.getLlama({
      gpu: false, build: 'never', skipDownload: true, usePrebuiltBinaries: true, progressLogs: false,
      logLevel: nlc.LlamaLogLevel.error,
    });
  } catch (e) {
    skipWhy = `node-llama-cpp's prebuilt llama.cpp binary cannot load on ${process.platform}-${process.arch}: ${(e as Error).message ?? e}`;
  }
});
after(async () => { await llama?.dispose(); });

const PROMPT = 'The capital of France is';
const STEPS = 8;

function logSoftmax(row: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of row) m = Math.max(m, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  const ls = Math.log(s) + m;
  return Float64Array.from(row, (v) => v - ls);
}

/** llama.cpp's greedy tokens and its next-token distribution after the prompt. */
async function llamaGreedy(file: string, ids: number[], steps: number): Promise<{ tokens: number[]; probs: Map<number, number> }> {
  const model = await llama!.loadModel({ modelPath: file });
  // f32 KV cache and no flash attention: both would otherwise round attention through f16, and
  // this test wants llama.cpp's arithmetic as close to ours as it can be.
  const ctx = await model.createContext({
    contextSize: 64, threads: 2, flashAttention: false, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
  });
  try {
    const seq = ctx.getSequence();
    const tokens: number[] = [];
    let probs: Map<number, number> | undefined;
    for await (const r of seq.evaluateWithMetadata(ids as never[], { probabilities: true }, { temperature: 0 })) {
      probs ??= r.probabilities as Map<number, number>;
      tokens.push(r.token as number);
      if (tokens.length >= steps) break;
    }
    return { tokens, probs: probs! };
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}

async function ours(dtype: ConvertDType, ids: number[], backend: Backend) {
  const model = loadModel(modelDir, { dtype, backend });
  const tok = loadTokenizer();
  const g = await generate(model, tok, ids, { maxTokens: STEPS, temperature: 0, ignoreEos: true });
  // Logits along the whole greedy path give the first-step distribution and every step's margin.
  const seq = [...ids, ...g.ids];
  const V = 32000;
  const all = await model.logitsAll(seq.slice(0, -1));
  let minMargin = Infinity;
  for (let p = ids.length - 1; p < seq.length - 1; p++) {
    const row = all.subarray(p * V, (p + 1) * V);
    let a = -Infinity, b = -Infinity;
    for (const v of row) { if (v > a) { b = a; a = v; } else if (v > b) b = v; }
    minMargin = Math.min(minMargin, a - b);
  }
  return { tokens: g.ids, logp: logSoftmax(all.subarray((ids.length - 1) * V, ids.length * V)), minMargin };
}

function maxLogpDiff(probs: Map<number, number>, logp: Float64Array): number {
  let worst = 0, n = 0;
  for (const [t, p] of probs) {
    if (p < 1e-6) continue; // f32 probabilities below this lose relative precision
    worst = Math.max(worst, Math.abs(Math.log(p) - logp[t]));
    n++;
  }
  assert.ok(n > 30000, `compared ${n} tokens`);
  return worst;
}

test('llama.cpp tokenizes with our vocab exactly as we do (BOS added by us, not twice)', async (t) => {
  if (!llama) return t.skip(skipWhy);
  const tok = loadTokenizer();
  const model = await llama.loadModel({ modelPath: ggufOf('f16') });
  try {
    assert.equal(model.tokens.bos, 1);
    assert.equal(model.tokens.eos, 2);
    for (const s of [PROMPT, 'Hello world! 12345 café naïve — ok?', '  two  spaces\nnew line\ttab', 'emoji 🦙 and 中文']) {
      assert.deepEqual(Array.from(model.tokenize(s)), tok.encode(s), JSON.stringify(s));
    }
  } finally {
    await model.dispose();
  }
});

// Each dtype compares llama.cpp on our GGUF against our engine with the same weight storage
// (f32 / f16 / q8). Tolerances on log-probabilities: f32 is the same arithmetic up to summation
// order; llama.cpp's F16 matmul also rounds activations to f16; its Q8_0 matmul quantizes the
// activations to 8 bits, which ours does not.
const CASES: [GGUFOutType, ConvertDType, number][] = [['f32', 'f32', 1e-4], ['f16', 'f16', 2e-2], ['q8_0', 'q8', 0.25]];
let f32Tokens: number[] | null = null;
for (const [gd, od, tol] of CASES) {
  test(`llama.cpp on our ${gd} GGUF: greedy tokens equal ours (${od}) and log-probs agree within ${tol}`, async (t) => {
    if (!llama) return t.skip(skipWhy);
    const ids = loadTokenizer().encode(PROMPT, { bos: true });
    assert.equal(ids[0], 1);
    // f32 runs on the reference backend; f16 / q8 on the default one (wasm when present), which
    // also keeps this test fast (the reference decodes half/8-bit rows on every call).
    const backend = od === 'f32' ? new JsBackend() : await createBackend('auto', { threads: 2 });
    let me: Awaited<ReturnType<typeof ours>>;
    try { me = await ours(od, ids, backend); } finally { backend.dispose(); }
    assert.ok(me.minMargin > 0.1, `seed ${SEED} should give clear greedy margins; got ${me.minMargin}`);
    const them = await llamaGreedy(ggufOf(gd), ids, STEPS);
    assert.deepEqual(them.tokens, me.tokens, `${gd}: llama.cpp ${them.tokens} vs ours ${me.tokens}`);
    if (gd === 'f32') f32Tokens = me.tokens;
    else if (f32Tokens) assert.deepEqual(me.tokens, f32Tokens, `${od} tokens equal f32 tokens`);
    const d = maxLogpDiff(them.probs, me.logp);
    t.diagnostic(`${gd} (ours on ${backend.name}): max |log p llama.cpp - log p ours| = ${d.toExponential(2)}; min greedy margin ${me.minMargin.toFixed(3)}`);
    assert.ok(d <= tol, `${gd}: log-prob difference ${d} > ${tol}`);
  });
}
