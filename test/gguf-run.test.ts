// Running GGUF files as stored: every fixture (llama.cpp's converter and llama-quantize, every
// block type, a Q4_K_M with a Q8_0 ffn_up beside its Q4_K ffn_gate) loads with its block weights
// unchanged, and its perplexity equals the f32 computation on gguf-py's dequantized weights (the
// JS reference on the decoded file) within 1e-4 relative, on every backend of BACKEND_CASES, for
// prefill (GEMM) and for decode (one token, and three sequences at once). The library and the CLI
// take `--model FILE.gguf` with the file's own tokenizer; bad files fail in one line.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend, Weight } from '../src/backends/backend.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import { blockDTypeOfGGML } from '../src/backends/weight-format.js';
import { ggmlTypeName } from '../src/core/ggml-quants.js';
import { OpenELMError } from '../src/core/errors.js';
import { GGUFModel } from '../src/formats/gguf-model.js';
import { logProbAt } from '../src/generate/score.js';
import { modelFromSource } from '../src/model/load.js';
import { freeWeights, weightsBytes, type OpenELM } from '../src/model/openelm.js';
import { loadModel } from '../src/api.js';
import { BACKEND_CASES } from './helpers/backends.js';
import { runCli } from './helpers/cli.js';
import { GGUF_FIXTURES as FIX, ggufFixture as fix, withTensorType } from './helpers/gguf-fixtures.js';
import { TOL } from './tolerances.js';

const CORPUS = fileURLToPath(new URL('../../data/corpus/tinyshakespeare.txt', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-gguf-run-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const manifest = JSON.parse(fs.readFileSync(fix('MANIFEST.json'), 'utf8')) as { files: Record<string, { model: string }> };
const FILES = Object.keys(manifest.files).filter((f) => manifest.files[f].model !== 'vocab').sort();
const TEXT = fs.readFileSync(CORPUS, 'utf8').slice(0, 1200);
const WINDOW = 24, WINDOWS = 4;

/** WINDOWS windows of WINDOW tokens of the text, in the file's own vocabulary. */
function windowsOf(src: GGUFModel): number[][] {
  const ids = src.tokenizer().encode(TEXT, { bos: true });
  assert.ok(ids.length >= WINDOW * WINDOWS);
  return Array.from({ length: WINDOWS }, (_, i) => ids.slice(i * WINDOW, (i + 1) * WINDOW));
}

/** Mean negative log-likelihood of every token after the first of each window, from whole-window forwards (prefill). */
async function nllPrefill(model: OpenELM, windows: number[][]): Promise<number> {
  const V = model.config.vocabSize;
  let ll = 0, n = 0;
  for (const w of windows) {
    const logits = await model.logitsAll(w.slice(0, -1));
    for (let i = 1; i < w.length; i++) { ll += logProbAt(logits.subarray((i - 1) * V, i * V), w[i]); n++; }
  }
  return -ll / n;
}

/** The same, one token per forward through the KV cache: window 0 alone, the others side by side. */
async function nllDecode(model: OpenELM, windows: number[][]): Promise<number> {
  const V = model.config.vocabSize;
  let ll = 0, n = 0;
  for (const group of [[windows[0]], windows.slice(1)]) {
    const caches = group.map((w) => model.newCache(w.length));
    try {
      for (let i = 0; i + 1 < WINDOW; i++) {
        const logits = await model.forward(group.map((w, k) => ({ cache: caches[k], tokens: [w[i]] })));
        group.forEach((w, k) => { ll += logProbAt(logits.subarray(k * V, (k + 1) * V), w[i + 1]); n++; });
      }
    } finally { for (const c of caches) c.dispose(); }
  }
  return -ll / n;
}

/** What each linear weight of the model should be stored as: the GGUF types, as block dtypes. */
function expectStored(src: GGUFModel, name: string, w: Weight): void {
  const parts = src.partsOf(name);
  const dts = parts.map((p) => blockDTypeOfGGML(p.gguf.type) ?? ggmlTypeName(p.gguf.type).toLowerCase());
  if (new Set(dts).size > 1) {
    assert.equal(w.dtype, 'rows', name);
    assert.deepEqual(w.parts!.map((p) => p.dtype), dts, name);
  } else {
    assert.equal(w.dtype, dts[0], name);
  }
}

const reference = new Map<string, number>();
/** The f32 computation on the dequantized weights: the JS reference with the decoded file as f32. */
async function referenceNll(file: string): Promise<number> {
  let v = reference.get(file);
  if (v === undefined) {
    const src = GGUFModel.open(fix(file));
    try {
      const model = modelFromSource(src, src.config, new JsBackend(), 'f32');
      v = await nllPrefill(model, windowsOf(src));
    } finally { src.close(); }
    reference.set(file, v);
  }
  return v;
}

const relErr = (a: number, b: number) => Math.abs(Math.exp(a) - Math.exp(b)) / Math.exp(b);

for (const bc of BACKEND_CASES) {
  test(`every GGUF fixture runs as stored with the perplexity of its dequantized f32 weights (${bc.name})`, async (t) => {
    const why = bc.available();
    if (why) { t.skip(why); return; }
    const be: Backend = await bc.make();
    // the exact f32 path (Q8_0/Q4_0/Q4_K/Q6_K decode defaults to int8 activations: block-int8.test.ts)
    if (be instanceof WasmBackend) be.blockInt8 = false;
    const worst = { prefill: 0, decode: 0 };
    try {
      for (const file of FILES) {
        const src = GGUFModel.open(fix(file));
        try {
          const model = modelFromSource(src, src.config, be, 'auto');
          try {
            const w = model.weights;
            expectStored(src, 'transformer.token_embeddings.weight', w.embed);
            assert.equal(w.head, w.embed, 'the tied head is the embedding');
            w.layers.forEach((L, i) => {
              const p = `transformer.layers.${i}.`;
              expectStored(src, p + 'attn.qkv_proj.weight', L.qkv);
              expectStored(src, p + 'attn.out_proj.weight', L.out);
              expectStored(src, p + 'ffn.proj_1.weight', L.proj1);
              expectStored(src, p + 'ffn.proj_2.weight', L.proj2);
            });
            // held as the file holds them: the weights take exactly the file's tensor bytes, but
            // that the wasm backend holds Q4_K and Q6_K repacked in place, 8 and 2 bytes more per
            // super-block of 256 (q4k-repack.ts, q6k-repack.ts)
            const all = [...new Set([w.embed, ...w.layers.flatMap((L) => [L.qkv, L.out, L.proj1, L.proj2])].flatMap((x) => x.parts ?? [x]))];
            const extra = [['q4_k', 8], ['q6_k', 2]].reduce((n, [dtype, more]) => {
              const held = all.filter((x) => x.dtype === dtype);
              if (be instanceof WasmBackend) for (const x of held) assert.equal(x.layout, `${dtype}_r`, file);
              return n + held.filter((x) => x.layout === `${dtype}_r`).reduce((m, x) => m + ((x.rows * x.cols) / 256) * (more as number), 0);
            }, 0);
            assert.equal(weightsBytes(w), src.weightBytes() + extra, file);
            const windows = windowsOf(src);
            const ref = await referenceNll(file);
            const prefill = await nllPrefill(model, windows), decode = await nllDecode(model, windows);
            const ep = relErr(prefill, ref), ed = relErr(decode, ref);
            worst.prefill = Math.max(worst.prefill, ep); worst.decode = Math.max(worst.decode, ed);
            assert.ok(ep <= TOL.storedPerplexity.rtol, `${file}: prefill perplexity ${Math.exp(prefill)} vs ${Math.exp(ref)} (rel ${ep.toExponential(2)})`);
            assert.ok(ed <= TOL.storedPerplexity.rtol, `${file}: decode perplexity ${Math.exp(decode)} vs ${Math.exp(ref)} (rel ${ed.toExponential(2)})`);
            // the reference backend computes with the same decoded values in the same order
            if (be.name === 'js') assert.equal(prefill, ref, file);
          } finally {
            model.release();
            freeWeights(be, model.weights);
          }
        } finally { src.close(); }
      }
      t.diagnostic(`worst relative perplexity error: prefill ${worst.prefill.toExponential(2)}, decode ${worst.decode.toExponential(2)}`);
    } finally { be.dispose(); }
  });
}

test('a proj_1 whose ffn_gate and ffn_up have different types loads as two parts, each as stored', () => {
  const src = GGUFModel.open(fix('k256-q4_k_m-mixed.gguf'));
  try {
    const model = modelFromSource(src, src.config, new JsBackend(), 'auto');
    const p1 = model.weights.layers[1].proj1;
    assert.equal(p1.dtype, 'rows');
    assert.deepEqual(p1.parts!.map((p) => [p.dtype, p.rows, p.cols]), [['q4_k', 256, 256], ['q8_0', 256, 256]]);
    // the same file without the override holds both halves in one Q4_K weight
    const plain = GGUFModel.open(fix('k256-q4_k_m.gguf'));
    try {
      const m2 = modelFromSource(plain, plain.config, new JsBackend(), 'auto');
      assert.equal(m2.weights.layers[1].proj1.dtype, 'q4_k');
      assert.equal(m2.weights.layers[1].proj1.rows, 512);
    } finally { plain.close(); }
  } finally { src.close(); }
});

// ------------------------------------------------------------------------------------------------
// Library and CLI

test('loadModel takes a GGUF file: its config, its own tokenizer, its weights as stored', async () => {
  const file = fix('k256-q5_k_m.gguf');
  const m = await loadModel(file, { backend: 'js' });
  try {
    assert.equal(m.tokenizer.vocabSize, 384, 'the GGUF vocabulary, not the bundled 32000-piece one');
    assert.equal(m.config.modelDim, 256);
    assert.equal(m.model.weights.layers[0].qkv.dtype, 'q5_k');
    assert.equal(m.model.weights.embed.dtype, 'q6_k');
    const r = await m.generate('To be', { maxTokens: 4 });
    assert.equal(r.ids.length, 4);
    assert.ok(r.ids.every((id) => id >= 0 && id < 384));
  } finally { m.dispose(); }
  // --tokenizer still wins, and --dtype converts (dequantized exactly, then stored as asked)
  const m2 = await loadModel(file, { backend: 'js', dtype: 'f32', tokenizer: path.join(FIX, '..', '..', '..', 'assets', 'tokenizer', 'tokenizer.model') });
  try {
    assert.equal(m2.tokenizer.vocabSize, 32000);
    assert.equal(m2.model.weights.layers[0].qkv.dtype, 'f32');
  } finally { m2.dispose(); }
});

test('loadModel reads a GGUF header once for tokenizer and weights: the same ids and logits as reading it twice', async () => {
  for (const name of ['k256-q5_k_m.gguf', 'k256-q4_k_m.gguf']) {
    const file = fix(name);
    // native off: the reference backend below has no native GEMM, which rounds prompts differently
    const m = await loadModel(file, { backend: 'wasm', threads: 2, native: 'off' });
    const src = GGUFModel.open(file, { vocabulary: false });
    const be = await WasmBackend.create({ threads: 1 });
    try {
      const tok = GGUFModel.open(file).tokenizer();
      const ids = tok.encode(TEXT, { bos: true }).slice(0, 40);
      assert.deepEqual(m.encode(TEXT).slice(0, 40), ids);
      const ref = modelFromSource(src, src.config, be, 'auto');
      assert.deepEqual(await m.model.logitsAll(ids), await ref.logitsAll(ids), name);
    } finally { m.dispose(); src.close(); be.dispose(); }
  }
});

test('CLI: perplexity, generate, info, tokenize and bench take --model FILE.gguf', () => {
  const file = fix('k256-q4_k_m-mixed.gguf');
  const text = path.join(tmp, 'text.txt');
  fs.writeFileSync(text, TEXT.slice(0, 600));
  const ppl = (dtype: string) => {
    const r = runCli(['perplexity', '--model', file, '--file', text, '--context', '32', '--dtype', dtype, '--threads', '2', '--exact-blocks', '--json']);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { tokens: number; ppl: number };
  };
  const stored = ppl('auto'), decoded = ppl('f32');
  const src = GGUFModel.open(file);
  after(() => src.close());
  const ids = src.tokenizer().encode(TEXT.slice(0, 600), { bos: true });
  assert.equal(stored.tokens, ids.length - Math.ceil(ids.length / 32), 'scored in the GGUF vocabulary');
  assert.ok(Math.abs(stored.ppl - decoded.ppl) / decoded.ppl <= TOL.storedPerplexity.rtol, `${stored.ppl} vs ${decoded.ppl}`);

  const g = runCli(['generate', '--model', file, '--prompt', 'The king', '--max-tokens', '3', '--json']);
  assert.equal(g.status, 0, g.stderr);
  assert.equal(JSON.parse(g.stdout).ids.length, 3);
  const info = runCli(['info', '--model', file, '--json']);
  assert.equal(info.status, 0, info.stderr);
  assert.deepEqual(JSON.parse(info.stdout).layers.map((l: { query_heads: number }) => l.query_heads), [2, 4]);
  const tok = runCli(['tokenize', '--model', file, '--text', 'international', '--json']);
  assert.equal(tok.status, 0, tok.stderr);
  assert.deepEqual(JSON.parse(tok.stdout).ids, src.tokenizer().encode('international'));
  const bench = runCli(['bench', '--model', file, '--prompt-tokens', '9', '--gen-tokens', '2', '--json']);
  assert.equal(bench.status, 0, bench.stderr);
});

test('CLI: a bad GGUF fails in one line naming what is wrong, for every model command', () => {
  const arch = path.join(tmp, 'arch.gguf');
  const b = fs.readFileSync(fix('gqa2-hd64-q8_0.gguf'));
  // "openelm" → "openelx" in general.architecture (and nowhere else matters: the check comes first)
  const at = b.indexOf(Buffer.from('openelm'));
  b.write('openelx', at, 'latin1');
  fs.writeFileSync(arch, b);
  const cut = path.join(tmp, 'cut.gguf');
  fs.writeFileSync(cut, fs.readFileSync(fix('k256-q6_k.gguf')).subarray(0, 400_000));
  const cases: [string, RegExp][] = [
    [arch, /arch\.gguf is a GGUF of architecture "openelx", not openelm/],
    [withTensorType(fix('k256-q4_k_m.gguf'), 'blk.0.attn_qkv.weight', 16, tmp), /tensor blk\.0\.attn_qkv\.weight has type IQ2_XXS, which is not supported/],
    [cut, /cut\.gguf is truncated/],
  ];
  for (const [file, re] of cases) {
    for (const args of [['generate', '--prompt', 'hi', '--max-tokens', '1'], ['perplexity', '--file', CORPUS], ['info']]) {
      const r = runCli([args[0], '--model', file, ...args.slice(1)]);
      assert.notEqual(r.status, 0, `${args[0]} ${file}`);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], re);
    }
  }
});

test('loadModel refuses a truncated GGUF with one OpenELMError, nothing half-loaded', async () => {
  const cut = path.join(tmp, 'cut2.gguf');
  fs.writeFileSync(cut, fs.readFileSync(fix('k256-q4_k_m.gguf')).subarray(0, 480_000));
  await assert.rejects(loadModel(cut, { backend: 'js' }), (e: unknown) => e instanceof OpenELMError && /truncated/.test(e.message) && !e.message.includes('\n'));
});
