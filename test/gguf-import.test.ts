// GGUF import: files made by llama.cpp's own converter and llama-quantize (test/fixtures/gguf, see
// tools/make_gguf_fixtures.py) decode bit for bit as gguf-py's `gguf.quants.dequantize` does, give
// back the model's config and weights under HF names, and carry a tokenizer that matches
// SentencePiece. Bad files fail with one line naming what is wrong.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { readGGUF, readGGUFTensorF32, writeGGUF, kv, GGMLType } from '../src/io/gguf.js';
import { dequantize, ggmlTypeName, GGML_BLOCK } from '../src/core/ggml-quants.js';
import { GGUFModel, ggufTokenizer } from '../src/formats/gguf-model.js';
import { bundledTokenizerTable } from '../src/io/tokenizer-table.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { resolveConfig } from '../src/model/config.js';
import { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { OpenELMError } from '../src/core/errors.js';
import { GOLDEN_ROOT, goldenConfig } from './helpers/golden.js';
import { runCli } from './helpers/cli.js';
import { GGUF_FIXTURES as FIX, ggufFixture as fix, withTensorType } from './helpers/gguf-fixtures.js';

const TOKFIX = fileURLToPath(new URL('../../test/fixtures/tokenizer/', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-gguf-import-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface ManifestTensor { name: string; type: string; dims: number[]; sha256_f32: string; first: number[]; }
interface ManifestFile { model: string; made_with: string; bytes: number; sha256: string; tensors: ManifestTensor[]; }
const manifest = JSON.parse(fs.readFileSync(path.join(FIX, 'MANIFEST.json'), 'utf8')) as { files: Record<string, ManifestFile> };
const modelFiles = Object.keys(manifest.files).filter((f) => manifest.files[f].model !== 'vocab');
const sha = (a: Float32Array) => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

test('fixtures are the committed files and cover every supported block type', () => {
  const types = new Set<string>();
  for (const [f, m] of Object.entries(manifest.files)) {
    const bytes = fs.readFileSync(fix(f));
    assert.equal(bytes.length, m.bytes, f);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), m.sha256, f);
    for (const t of m.tensors) types.add(t.type);
  }
  assert.deepEqual([...types].sort(), ['BF16', 'F16', 'F32', 'Q4_0', 'Q4_1', 'Q4_K', 'Q5_0', 'Q5_1', 'Q5_K', 'Q6_K', 'Q8_0']);
});

test('every tensor of every fixture decodes bit-exactly as gguf-py dequantizes it', () => {
  let n = 0;
  for (const f of modelFiles) {
    const g = readGGUF(fix(f));
    assert.equal(g.tensors.length, manifest.files[f].tensors.length, f);
    for (const want of manifest.files[f].tensors) {
      const info = g.tensors.find((t) => t.name === want.name)!;
      assert.equal(ggmlTypeName(info.type), want.type, `${f} ${want.name}`);
      assert.deepEqual(info.dims, want.dims, `${f} ${want.name}`);
      const got = readGGUFTensorF32(fix(f), g, want.name);
      assert.deepEqual(Array.from(got.subarray(0, 4)), want.first, `${f} ${want.name} first values`);
      assert.equal(sha(got), want.sha256_f32, `${f} ${want.name} (${want.type}) differs from gguf-py`);
      n++;
    }
  }
  assert.ok(n > 200, `${n} tensors checked`);
});

test('dequantize decodes a range in the middle of a buffer and checks its bounds', () => {
  const g = readGGUF(fix('k256-q4_k_m.gguf'));
  const t = g.tensors.find((x) => x.name === 'blk.0.attn_qkv.weight')!;
  assert.equal(ggmlTypeName(t.type), 'Q4_K');
  const whole = readGGUFTensorF32(fix('k256-q4_k_m.gguf'), g, t.name);
  const raw = fs.readFileSync(fix('k256-q4_k_m.gguf')).subarray(g.dataOffset + t.offset);
  const rowBytes = (256 / 256) * GGML_BLOCK[GGMLType.Q4_K].bytes;
  const rows = new Float32Array(3 * 256 + 1);
  dequantize(GGMLType.Q4_K, raw, 5 * rowBytes, 3 * 256, rows, 1);
  assert.deepEqual(rows.subarray(1), whole.subarray(5 * 256, 8 * 256));
  assert.throws(() => dequantize(GGMLType.Q4_K, raw, 0, 100, rows), /blocks of 256/);
  assert.throws(() => dequantize(GGMLType.Q4_K, raw.subarray(0, 100), 0, 256, new Float32Array(256)), /need 144 bytes/);
});

test('GGUF model: config from openelm.* metadata, weights under HF names equal the source checkpoint', () => {
  const golden = goldenConfig('gqa2-hd64');
  const m = GGUFModel.open(fix('gqa2-hd64-f16.gguf'));
  try {
    for (const k of ['numLayers', 'modelDim', 'headDim', 'vocabSize', 'maxContextLength', 'numQueryHeads', 'numKvHeads', 'ffnDims', 'numGqaGroups', 'ropeFreqConstant', 'tiedEmbeddings'] as const) {
      assert.deepEqual(m.config[k], golden[k], k);
    }
    // The config we derive resolves back to the same geometry (it is what an HF export would write).
    assert.deepEqual(resolveConfig(m.config.hf).ffnDims, golden.ffnDims);
    const ck = openCheckpoint(path.join(GOLDEN_ROOT, 'gqa2-hd64'));
    try {
      assert.deepEqual(m.names().sort(), ck.names().sort());
      // Norms are F32 in the file (exact), weights F16 (the converter's rounding, as ours).
      for (const n of ck.names()) {
        if (ck.info(n).shape.length === 1) assert.deepEqual(m.readF32(n), ck.readF32(n), n);
        else assert.deepEqual(m.readF16(n), ck.readF16(n), n);
      }
      // proj_1 is ffn_gate's rows then ffn_up's.
      const p = m.partsOf('transformer.layers.2.ffn.proj_1.weight');
      assert.deepEqual(p.map((x) => [x.gguf.name, x.row0, x.rows, x.cols]), [['blk.2.ffn_gate.weight', 0, 256, 64], ['blk.2.ffn_up.weight', 256, 256, 64]]);
      assert.deepEqual(m.info('transformer.layers.2.ffn.proj_1.weight').shape, [512, 64]);
    } finally { ck.close(); }
  } finally { m.close(); }
});

test('GGUF model: 16-bit files give their stored bits; quantized files give the decoded values', () => {
  const ck = openCheckpoint(path.join(GOLDEN_ROOT, 'gqa2-hd64'));
  const name = 'transformer.layers.1.attn.qkv_proj.weight';
  try {
    const bf = GGUFModel.open(fix('gqa2-hd64-bf16.gguf'));
    assert.equal(bf.info(name).dtype, 'BF16');
    assert.deepEqual(bf.readBF16(name), ck.readBF16(name));
    bf.close();
    const hf = GGUFModel.open(fix('gqa2-hd64-f16.gguf'));
    assert.equal(hf.info(name).dtype, 'F16');
    assert.deepEqual(hf.readF16(name), ck.readF16(name));
    hf.close();
    const q = GGUFModel.open(fix('k256-q4_k_m.gguf'));
    const k = JSON.parse(fs.readFileSync(fix('k256-config.json'), 'utf8'));
    const want = resolveConfig(k);
    assert.deepEqual([q.config.numQueryHeads, q.config.numKvHeads, q.config.ffnDims], [want.numQueryHeads, want.numKvHeads, want.ffnDims]);
    assert.equal(q.info('transformer.token_embeddings.weight').dtype, 'Q6_K');
    assert.equal(q.info('transformer.layers.0.attn.out_proj.weight').dtype, 'Q5_0');
    const m = manifest.files['k256-q4_k_m.gguf'].tensors.find((t) => t.name === 'blk.1.ffn_down.weight')!;
    assert.equal(sha(q.readF32('transformer.layers.1.ffn.proj_2.weight')), m.sha256_f32);
    // The stored weights are the file minus metadata and padding.
    assert.ok(q.weightBytes() < fs.statSync(fix('k256-q4_k_m.gguf')).size);
    assert.ok(q.weightBytes() > 0.9 * fs.statSync(fix('k256-q4_k_m.gguf')).size);
    q.close();
  } finally { ck.close(); }
});

// ------------------------------------------------------------------------------------------------
// Tokenizer from tokenizer.ggml.*

const vocab = readGGUF(fix('llama-spm-vocab.gguf'));
const ggufTok = ggufTokenizer(vocab, fix('llama-spm-vocab.gguf'));

test('GGUF tokenizer: same pieces, scores and types as the Llama-2 tokenizer.model', () => {
  const ref = loadTokenizer();
  assert.equal(ggufTok.vocabSize, 32000);
  assert.deepEqual([ggufTok.unkId, ggufTok.bosId, ggufTok.eosId, ggufTok.padId], [0, 1, 2, -1]);
  for (let i = 0; i < 32000; i++) {
    if (ggufTok.idToPiece(i) !== ref.idToPiece(i) || ggufTok.pieceType(i) !== ref.pieceType(i) || ggufTok.pieceScore(i) !== ref.pieceScore(i)) {
      assert.fail(`piece ${i}: ${ggufTok.idToPiece(i)} / ${ref.idToPiece(i)}`);
    }
  }
});

test('GGUF tokenizer matches SentencePiece on the tokenizer fixtures', () => {
  const lines = fs.readFileSync(path.join(TOKFIX, 'spm-reference-encodings.jsonl'), 'utf8').split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as { text: string; ids: number[] });
  assert.equal(lines.length, 1591);
  let bad = 0;
  for (const l of lines) if (JSON.stringify(ggufTok.encode(l.text)) !== JSON.stringify(l.ids)) bad++;
  assert.equal(bad, 0);
  const inputs = fs.readFileSync(path.join(TOKFIX, 'ggml-vocab-llama-spm.gguf.inp'), 'utf8').split('\n__ggml_vocab_test__\n');
  inputs.pop();
  const outs = fs.readFileSync(path.join(TOKFIX, 'ggml-vocab-llama-spm.gguf.out'), 'utf8').split('\n');
  for (let i = 0; i < inputs.length; i++) {
    const want = outs[i].trim() === '' ? [] : outs[i].trim().split(/\s+/).map(Number);
    assert.deepEqual(ggufTok.encode(inputs[i]), want, JSON.stringify(inputs[i]));
  }
  const fuzz = fs.readFileSync(path.join(TOKFIX, 'spm-fuzz.jsonl'), 'utf8').split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as { kind: string; text: string; ids: number[] });
  for (const l of fuzz) {
    if (l.kind === 'encode') assert.deepEqual(ggufTok.encode(l.text), l.ids, JSON.stringify(l.text));
    else assert.equal(ggufTok.decode(l.ids), l.text, JSON.stringify(l.ids));
  }
});

test('a model GGUF carries its own (truncated) vocabulary, not the bundled one', () => {
  const m = GGUFModel.open(fix('gqa2-hd64-q8_0.gguf'));
  const t = m.tokenizer();
  m.close();
  assert.ok(t instanceof Tokenizer);
  assert.equal(t.vocabSize, 384);
  assert.equal(t.idToPiece(383), loadTokenizer().idToPiece(383));
  // Pieces past id 383 are not in this vocabulary, so text falls back to bytes sooner.
  assert.ok(t.encode('international').length > loadTokenizer().encode('international').length);
});

test('opened without its vocabulary, a model GGUF reads the same model, and its tokenizer reads the vocabulary then', () => {
  const file = fix('gqa2-hd64-q8_0.gguf');
  const full = readGGUF(file), lean = readGGUF(file, { vocabulary: false });
  assert.deepEqual(lean.skipped, ['tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type']);
  assert.equal(full.skipped, undefined);
  assert.deepEqual(lean.tensors, full.tensors);
  assert.equal(lean.dataOffset, full.dataOffset);
  for (const [k, v] of full.metadata) if (!lean.skipped!.includes(k)) assert.deepEqual(lean.metadata.get(k), v, k);
  const m = GGUFModel.open(file, { vocabulary: false }), w = GGUFModel.open(file);
  try {
    assert.deepEqual(m.config, w.config);
    const name = 'transformer.layers.0.attn.qkv_proj.weight';
    assert.deepEqual(m.readF32(name), w.readF32(name));
    assert.deepEqual(m.tokenizer().encode('international pieces'), w.tokenizer().encode('international pieces'));
  } finally { m.close(); w.close(); }
  // a token that is not UTF-8 still stops the tokenizer (its read is where the vocabulary is decoded)
  const raw = fs.readFileSync(file), at = raw.indexOf(Buffer.from('<unk>')), bad = path.join(tmp, 'bad-token.gguf');
  const b = Buffer.from(raw); b[at + 1] = 0xff;
  fs.writeFileSync(bad, b);
  const lm = GGUFModel.open(bad, { vocabulary: false });
  try { oneLine(() => lm.tokenizer(), /bad-token\.gguf: string at offset \d+ is not valid UTF-8/); } finally { lm.close(); }
  // a vocabulary cut short is refused either way
  const cut = path.join(tmp, 'cut-vocab.gguf');
  fs.writeFileSync(cut, raw.subarray(0, at + 100));
  oneLine(() => readGGUF(cut, { vocabulary: false }), /cut-vocab\.gguf is truncated/);
  oneLine(() => readGGUF(cut, { vocabulary: 'packed' }), /cut-vocab\.gguf is truncated/);
});

test('a packed vocabulary gives the tokenizer the decoded one gives; the bundled table only for exactly its pieces', () => {
  const file = fix('llama-spm-vocab.gguf');
  const full = readGGUF(file), packed = readGGUF(file, { vocabulary: 'packed' });
  const vocabKeys = ['tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type'];
  assert.ok(packed.vocab?.tokens && packed.vocab.scores && packed.vocab.types);
  for (const k of vocabKeys) assert.equal(packed.metadata.has(k), false, k);
  for (const [k, v] of full.metadata) if (!vocabKeys.includes(k)) assert.deepEqual(packed.metadata.get(k), v, k);
  assert.deepEqual(packed.tensors, full.tensors);
  const table = bundledTokenizerTable()!.table;
  const text = 'Hello  world!\n\tünïcødé 日本語 😀 <s> 1234567 \u0000 international';
  const fromPacked = ggufTokenizer(packed, file), fromFull = ggufTokenizer(full, file);
  assert.equal(fromPacked.pieceTable, table, 'the Llama-2 vocabulary is the bundled table');
  assert.deepEqual(fromPacked.model, fromFull.model);
  assert.deepEqual(fromPacked.encode(text), fromFull.encode(text));

  // One piece's bytes, its boundary with the next, one score's last bit, one type: each a vocabulary
  // the table is not used for, with the tokenizer (or the refusal) the strings give.
  const tokens = full.metadata.get('tokenizer.ggml.tokens') as string[];
  const scores = full.metadata.get('tokenizer.ggml.scores') as number[];
  const types = full.metadata.get('tokenizer.ggml.token_type') as number[];
  const write = (name: string, tk: string[], sc: number[], ty: number[], pad = ''): string => {
    const f = path.join(tmp, name);
    writeGGUF(f, [
      ...(pad ? [kv.str('x.pad', pad)] : []), kv.str('tokenizer.ggml.model', 'llama'), kv.strs('tokenizer.ggml.tokens', tk), kv.f32s('tokenizer.ggml.scores', sc),
      kv.i32s('tokenizer.ggml.token_type', ty), kv.u32('tokenizer.ggml.bos_token_id', 1), kv.u32('tokenizer.ggml.eos_token_id', 2),
      kv.u32('tokenizer.ggml.unknown_token_id', 0),
    ], []);
    return f;
  };
  const i = tokens.findIndex((t, k) => k > 1000 && /^[a-z]{4,}$/.test(t) && /^[a-z]{4,}$/.test(tokens[k + 1]));
  const bumped = (t: string) => t.slice(0, -1) + String.fromCharCode(t.charCodeAt(t.length - 1) + 1);
  const nextUp = (x: number) => { const f = new Float32Array([x]); new Int32Array(f.buffer)[0] += 1; return f[0]; };
  const variants: [string, string[], number[], number[]][] = [
    ['same', tokens, scores, types],
    ['byte', tokens.map((t, k) => (k === i ? bumped(t) : t)), scores, types],
    ['split', tokens.map((t, k) => (k === i ? t + tokens[i + 1][0] : k === i + 1 ? t.slice(1) : t)), scores, types],
    ['score', tokens, scores.map((x, k) => (k === i ? nextUp(x) : x)), types],
    ['type', tokens, scores, types.map((x, k) => (k === i ? 4 : x))],
  ];
  for (const [name, tk, sc, ty] of variants) {
    const f = write(`vocab-${name}.gguf`, tk, sc, ty);
    const strings = (): Tokenizer => ggufTokenizer(readGGUF(f), f);
    const flat = (): Tokenizer => ggufTokenizer(readGGUF(f, { vocabulary: 'packed' }), f);
    let want: Tokenizer | Error, got: Tokenizer | Error;
    try { want = strings(); } catch (e) { want = e as Error; }
    try { got = flat(); } catch (e) { got = e as Error; }
    if (want instanceof Error || got instanceof Error) {
      assert.equal(String(got), String(want), name);
      continue;
    }
    assert.equal(got.pieceTable === table, name === 'same', `${name}: the bundled table is used only for its own pieces`);
    assert.equal(want.pieceTable === table, false, name);
    assert.deepEqual(got.state, want.state, name);
    assert.deepEqual(got.model, want.model, name);
    assert.deepEqual(got.encode(text + ' ' + tk[i]), want.encode(text + ' ' + tk[i]), name);
  }
  // tokens that straddle the reader's 1 MiB buffer (a long string before them) read the same
  const padded = write('vocab-padded.gguf', tokens, scores, types, 'p'.repeat(900_000));
  const straddled = ggufTokenizer(readGGUF(padded, { vocabulary: 'packed' }), padded);
  assert.equal(straddled.pieceTable, table);
  assert.deepEqual(readGGUF(padded, { vocabulary: 'packed' }).vocab!.tokens!.raw, packed.vocab!.tokens!.raw);

  // Tokens that are UTF-8 together but not each alone (a character split over two) are refused as a
  // string-per-token read refuses them.
  const small = Array.from({ length: 300 }, (_, k) => (k === 0 ? '<unk>' : k === 1 ? '<s>' : k === 2 ? '</s>' : `t${k}`));
  const f = write('vocab-split-char.gguf', small, small.map(() => 0), small.map((_, k) => (k === 0 ? 2 : k < 3 ? 3 : 1)));
  const raw = fs.readFileSync(f), at = raw.indexOf(Buffer.from('t100'));
  assert.equal(raw.toString('latin1', at + 12, at + 16), 't101');
  raw[at + 3] = 0xc3; raw[at + 12] = 0xa9; // 't10\xc3', then (past t101's u64 length) '\xa9101'
  fs.writeFileSync(f, raw);
  oneLine(() => readGGUF(f), /vocab-split-char\.gguf: string at offset \d+ is not valid UTF-8/);
  oneLine(() => ggufTokenizer(readGGUF(f, { vocabulary: 'packed' }), f), /vocab-split-char\.gguf: string at offset \d+ is not valid UTF-8/);
});

test('row ranges decode as the same slice of the whole tensor, from just their rows (every fixture type, gate/up split)', () => {
  for (const f of modelFiles) {
    const m = GGUFModel.open(fix(f));
    try {
      for (const name of m.names()) {
        const shape = m.info(name).shape, all = m.readF32(name);
        const cols = shape[shape.length - 1], rows = all.length / cols;
        const ranges: [number, number][] = [[0, all.length], [0, cols], [(rows - 1) * cols, cols]];
        if (rows > 3) ranges.push([cols, Math.floor(rows / 2) * cols], [cols + 3, 2 * cols - 5]);
        for (const [start, count] of ranges) {
          const dst = new Float32Array(count + 1).fill(7);
          m.readF32Range(name, start, count, dst);
          assert.ok(dst.subarray(0, count).every((v, i) => Object.is(v, all[start + i])), `${f} ${name} [${start}, +${count})`);
          assert.equal(dst[count], 7, 'nothing past count');
        }
      }
      // a row range reads only its rows (the buffer for them is kept): no tensor-sized array per call
      const emb = 'transformer.token_embeddings.weight', cols = m.info(emb).shape[1], row = new Float32Array(cols);
      m.readF32Range(emb, 0, cols, row);
      const before = process.memoryUsage().arrayBuffers;
      m.readF32Range(emb, cols, cols, row);
      assert.ok(process.memoryUsage().arrayBuffers - before < 4 * cols, `${f}: a row range allocated`);
      oneLine(() => m.readF32Range(m.names()[0], 1, m.readF32(m.names()[0]).length, new Float32Array(1 << 20)), /range \[1, \d+\) is outside its \d+ values/);
    } finally { m.close(); }
  }
});

// ------------------------------------------------------------------------------------------------
// Bad input

function oneLine(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof OpenELMError, String(e));
    assert.ok(!e.message.includes('\n'), e.message);
    assert.match(e.message, re);
    return true;
  });
}

test('a GGUF of another architecture is refused by name', () => {
  const f = path.join(tmp, 'llama.gguf');
  writeGGUF(f, [kv.str('general.architecture', 'llama'), kv.u32('llama.block_count', 1)], [
    { name: 'token_embd.weight', dims: [32, 2], type: GGMLType.F32, data: () => new Uint8Array(256) },
  ]);
  oneLine(() => GGUFModel.open(f), /llama\.gguf is a GGUF of architecture "llama", not openelm/);
});

test('an unsupported tensor type is refused naming the tensor and the type', () => {
  // IQ2_XXS (16) in a tensor every model needs.
  const f = withTensorType(fix('k256-q4_k_m.gguf'), 'blk.1.ffn_up.weight', 16, tmp);
  oneLine(() => GGUFModel.open(f), /tensor blk\.1\.ffn_up\.weight has type IQ2_XXS, which is not supported/);
});

test('a truncated GGUF is refused in one line, wherever it is cut', () => {
  const b = fs.readFileSync(fix('k256-q5_k_m.gguf'));
  for (const cut of [3, 20, 1000, 60_000, b.length - 1000, b.length - 1]) {
    const f = path.join(tmp, `cut${cut}.gguf`);
    fs.writeFileSync(f, b.subarray(0, cut));
    oneLine(() => GGUFModel.open(f), /is truncated|is not a GGUF file/);
  }
});

test('CLI: convert --model FILE.gguf --to hf writes the exactly decoded weights', () => {
  const out = path.join(tmp, 'from-gguf');
  const r = runCli(['convert', '--model', fix('k256-q4_k_m.gguf'), '--to', 'hf', '--out', out, '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).source, 'gguf');
  const ck = openCheckpoint(out);
  try {
    const want = manifest.files['k256-q4_k_m.gguf'].tensors.find((t) => t.name === 'blk.0.attn_qkv.weight')!;
    assert.equal(ck.info('transformer.layers.0.attn.qkv_proj.weight').dtype, 'F32');
    assert.equal(sha(ck.readF32('transformer.layers.0.attn.qkv_proj.weight')), want.sha256_f32);
  } finally { ck.close(); }
  const cfg = resolveConfig(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')));
  assert.deepEqual(cfg.numQueryHeads, [2, 4]);
});
