// The recipe's `peft:` block (one error line per bad key), Apple's PEFT presets, and training data
// in LLM-Adapters' format rendered exactly as CoreNet renders it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadRecipe, parseRecipe, recipeDifferences } from '../src/train/recipe.js';
import { adapterSettingsFor } from '../src/train/peft-settings.js';
import { recipeModelConfig } from '../src/train/trainer.js';
import { readPeftAdapter } from '../src/io/peft-folder.js';
import { ADAPTER_TARGETS } from '../src/adapters/targets.js';
import { GOLDEN_ROOT, goldenConfig } from './helpers/golden.js';
import { llmAdaptersPrompt, instructionRecord } from '../src/train/data/llm-adapters.js';
import { PAD, createSource, type RowSource } from '../src/train/data/sources.js';
import { expandDataPath } from '../src/train/data/files.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { nfc } from '../src/train/data/text.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-peft-recipe-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
const FILE = path.join(tmp, 'r.yaml');
const BASE = {
  model: { config: { num_transformer_layers: 2, model_dim: 32, head_dim: 8 } },
  data: { train: [{ path: 'corpus.txt' }] },
  seq_len: 16, batch_size: 2, steps: 10, optimizer: { lr: 1e-3 },
};

function err(peft: unknown): string {
  try { parseRecipe({ ...BASE, peft }, FILE); } catch (e) { return (e as Error).message; }
  assert.fail('expected an error');
}

test('no peft block: a full run, and its canonical recipe has no peft key (old checkpoints still resume)', () => {
  const r = parseRecipe(BASE, FILE);
  assert.equal(r.peft, undefined);
  assert.equal('peft' in r.canonical, false);
});

test('peft block: defaults without init (PEFT\'s r and alpha, Apple\'s five targets)', () => {
  const r = parseRecipe({ ...BASE, peft: {} }, FILE);
  assert.deepEqual(r.peft, { type: 'lora', r: 8, alpha: 8, dropout: 0, targets: [...ADAPTER_TARGETS], rslora: false, init: undefined, baseDtype: 'f32' });
  const s = adapterSettingsFor(r.peft!);
  assert.deepEqual(s, { type: 'lora', r: 8, alpha: 8, dropout: 0, targets: [...ADAPTER_TARGETS], rslora: false });
  const d = parseRecipe({ ...BASE, peft: { type: 'dora', r: 16, alpha: 32, dropout: 0.05, targets: ['qkv_proj'], rslora: true, base_dtype: 'q4' } }, FILE);
  assert.deepEqual(d.peft, { type: 'dora', r: 16, alpha: 32, dropout: 0.05, targets: ['qkv_proj'], rslora: true, init: undefined, baseDtype: 'q4' });
  assert.deepEqual(recipeDifferences(r.canonical, d.canonical).sort(),
    ['recipe.peft.alpha', 'recipe.peft.base_dtype', 'recipe.peft.dropout', 'recipe.peft.r', 'recipe.peft.rslora', 'recipe.peft.targets', 'recipe.peft.type']);
});

test('peft block: one error line per bad key', () => {
  const cases: [unknown, RegExp][] = [
    [{ type: 'qlora' }, /recipe\.peft\.type must be one of lora, dora, got "qlora"/],
    [{ r: 0 }, /recipe\.peft\.r must be >= 1, got 0/],
    [{ r: 2.5 }, /recipe\.peft\.r must be an integer, got 2\.5/],
    [{ alpha: 0 }, /recipe\.peft\.alpha must be > 0, got 0/],
    [{ alpha: '32' }, /recipe\.peft\.alpha must be a number, got "32"/],
    [{ dropout: 1 }, /recipe\.peft\.dropout must be < 1, got 1/],
    [{ dropout: -0.1 }, /recipe\.peft\.dropout must be >= 0, got -0\.1/],
    [{ targets: [] }, /recipe\.peft\.targets must have at least 1 entry/],
    [{ targets: ['qkv_proj', 'q_proj'] }, /recipe\.peft\.targets\[1\] must be one of token_embeddings, qkv_proj, out_proj, proj_1, proj_2, got "q_proj"/],
    [{ targets: 'qkv_proj' }, /recipe\.peft\.targets must be a list/],
    [{ targets: ['qkv_proj', 'qkv_proj'] }, /recipe\.peft\.targets lists qkv_proj twice/],
    [{ rslora: 'yes' }, /recipe\.peft\.rslora must be true or false, got "yes"/],
    [{ init: '' }, /recipe\.peft\.init must not be empty/],
    [{ base_dtype: 'f16' }, /recipe\.peft\.base_dtype must be one of f32, bf16, q8, q4, got "f16"/],
    [{ rank: 8 }, /unknown key recipe\.peft\.rank \(allowed: type, r, alpha, dropout, targets, rslora, init, base_dtype\)/],
    ['lora', /recipe\.peft must be a mapping, got "lora"/],
  ];
  for (const [peft, re] of cases) {
    const m = err(peft);
    assert.ok(!m.includes('\n'), m);
    assert.match(m, re);
  }
});

test('peft.init: unset keys come from the adapter, set ones must agree with it', () => {
  const dir = path.join(GOLDEN_ROOT, 'peft', 'dora', 'adapter');
  const r = parseRecipe({ ...BASE, peft: { init: dir, dropout: 0.05 } }, FILE);
  assert.equal(r.peft!.init, dir);
  assert.equal(r.peft!.r, undefined);
  assert.throws(() => adapterSettingsFor(r.peft!), /recipe\.peft\.init: the adapter at .* has not been read/);
  const init = readPeftAdapter(dir, goldenConfig('gqa4-hd32')).settings;
  assert.deepEqual(adapterSettingsFor(r.peft!, init), { ...init, dropout: 0.05 });
  const clash = parseRecipe({ ...BASE, peft: { init: dir, r: 8 } }, FILE);
  assert.throws(() => adapterSettingsFor(clash.peft!, init), /recipe\.peft\.r is 8 but the adapter in .* has 4; drop the key or make it agree/);
  const rel = parseRecipe({ ...BASE, peft: { init: 'adapters/a' } }, FILE);
  assert.equal(rel.peft!.init, path.join(tmp, 'adapters', 'a'));
  assert.equal((rel.canonical.peft as Record<string, unknown>).init, path.join('adapters', 'a'));
});

test('Apple\'s PEFT presets: LoRA and DoRA on OpenELM-270M with CoreNet\'s settings', () => {
  for (const type of ['lora', 'dora'] as const) {
    const r = loadRecipe(path.join(REPO, 'recipes', `openelm-peft-${type}-270M.yaml`));
    assert.deepEqual(r.peft, { type, r: 32, alpha: 32, dropout: 0.1, targets: [...ADAPTER_TARGETS], rslora: false, init: undefined, baseDtype: 'f32' });
    assert.equal(r.model.init, 'apple/OpenELM-270M');
    assert.equal(recipeModelConfig(r).modelDim, 1280);
    assert.deepEqual(r.canonical.model, { init: 'apple/OpenELM-270M' });
    assert.deepEqual(r.optimizer, { lr: 3e-4, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0 });
    assert.deepEqual(r.schedule, { type: 'cosine', warmupSteps: 1000, warmupInitLr: 1e-6, minLr: 3e-5 });
    assert.equal(r.steps, 4375);
    assert.equal(r.batchSize, 8);
    assert.equal(r.gradAccum, 2);
    assert.equal(r.seqLen, 2048);
    assert.equal(r.zLoss, 1e-4);
    assert.equal(r.clipGradNorm, 1);
    assert.equal(r.pipeline.mode, 'pad');
    assert.equal(r.pipeline.minChars, 0);
    assert.equal(r.pipeline.minTokens, 0);
    assert.equal(r.data.train[0].format, 'llm-adapters');
    assert.equal(expandDataPath(r.data.train[0].absPaths[0], 'llm-adapters', 'recipe.data.train[0]').length, 4);
  }
});

// ------------------------------------------------------------------------------- data

const tok = loadTokenizer();

async function rows(s: RowSource, n = Infinity): Promise<Int32Array[]> {
  const out: Int32Array[] = [];
  for (let r = await s.nextRow(); r && out.length < n; r = out.length < n ? await s.nextRow() : null) out.push(r);
  await s.close();
  return out;
}

function source(files: string[], seqLen: number) {
  return createSource({ name: 't', files, format: 'llm-adapters', weight: 1 }, {
    pipe: { mode: 'pad', seqLen, splitWords: 2048, minChars: 0, minTokens: 0 },
    split: { role: 'all', fraction: 0 }, seed: 0, loop: false, shuffleFiles: false, vocabSize: 32000,
  }, tok);
}

test('LLM-Adapters prompts are byte-for-byte CoreNet\'s generate_prompt_and_response', () => {
  const fx = JSON.parse(fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'llm-adapters', 'prompts.json'), 'utf8')) as { items: { record: Record<string, string>; prompt: string }[] };
  assert.ok(fx.items.length >= 5);
  assert.ok(fx.items.some((i) => i.record.input), 'the fixture covers the input branch');
  for (const it of fx.items) {
    const r = instructionRecord(it.record);
    assert.equal(llmAdaptersPrompt(r.record!), it.prompt);
  }
});

test('llm-adapters data: one padded row per record (BOS, NFC text, EOS), JSON arrays and JSON Lines, bad records reported', async () => {
  const fx = JSON.parse(fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'llm-adapters', 'prompts.json'), 'utf8')) as { items: { record: Record<string, unknown>; prompt: string }[] };
  const recs = fx.items.map((i) => i.record);
  const arr = path.join(tmp, 'a.json');
  fs.writeFileSync(arr, JSON.stringify([recs[0], { instruction: 'no output' }, recs[3]], null, 2));
  const T = 64;
  const s = source([arr], T);
  const got = await rows(s);
  assert.equal(got.length, 2);
  for (const [row, rec] of [[got[0], fx.items[0]], [got[1], fx.items[3]]] as const) {
    const ids = tok.encode(nfc(rec.prompt), { bos: true, eos: true });
    const want = new Int32Array(T + 1).fill(PAD);
    want.set(ids.slice(0, T + 1));
    assert.deepEqual(row, want);
  }
  assert.equal(s.stats.badLines, 1);
  assert.match(s.stats.badExamples[0], /a\.json:2: no "output" field/);
  const jl = path.join(tmp, 'a.jsonl');
  fs.writeFileSync(jl, recs.slice(0, 2).map((r) => JSON.stringify(r)).join('\n') + '\nnot json\n');
  const s2 = source([jl], T);
  const got2 = await rows(s2);
  assert.equal(got2.length, 2);
  assert.deepEqual(got2[0], got[0]);
  assert.match(s2.stats.badExamples[0], /a\.jsonl:3: invalid JSON/);
});

test('llm-adapters data: the shipped files read, and a run resumes mid-file exactly', async () => {
  const files = expandDataPath(path.join(REPO, 'data', 'llm-adapters-commonsense', '*.train.json.gz'), 'llm-adapters', 'test');
  const first = await rows(source(files, 128), 7);
  assert.equal(first.length, 7);
  assert.equal(first[0][0], 1);
  const a = source(files, 128);
  await a.nextRow(); await a.nextRow(); await a.nextRow();
  const st = a.getState();
  await a.close();
  const b = source(files, 128);
  b.setState(structuredClone(st.json), st.tensors);
  const rest = await rows(b, 4);
  for (let i = 0; i < 4; i++) assert.deepEqual(rest[i], first[3 + i]);
});
