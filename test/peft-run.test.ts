// Adapter runs end to end: `openelm train` with a peft block writes PEFT adapter folders as
// checkpoints, resumes bit-identically (DoRA, dropout, a q8 base), stops on Ctrl-C with a
// checkpoint; the adapter is used by generate (--adapter) and the library (adapter option), and
// `openelm merge` writes a plain HF folder that computes what the adapted model computes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseRecipe, type Recipe } from '../src/train/recipe.js';
import { train, type TrainOptions } from '../src/train/trainer.js';
import type { MetricLine } from '../src/train/report.js';
import { readPeftAdapter, writePeftAdapter, PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE } from '../src/io/peft-folder.js';
import { loadModelFolder, readModelConfig } from '../src/io/model-folder.js';
import { loadModel } from '../src/api.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import { OpenELMError } from '../src/core/errors.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { TrainableModel } from '../src/model/trainable.js';
import { paramSpecs } from '../src/model/params.js';
import { adapterToFlat } from '../src/adapters/params.js';
import { mergedSource } from '../src/adapters/merge.js';
import { adapterScale } from '../src/adapters/adapter.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { GOLDEN_ROOT, goldenConfig } from './helpers/golden.js';
import { runCliAsync, spawnCli } from './helpers/cli-async.js';
import { tinyModelDir } from './helpers/tiny.js';
import { interruptTrain } from './helpers/interrupt-train.js';
import { TOL, assertClose } from './tolerances.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SHAKES = path.join(REPO, 'data/corpus/tinyshakespeare.txt');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-peft-run-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const BASE_HF = { num_transformer_layers: 2, model_dim: 32, head_dim: 8, num_gqa_groups: 2, ffn_dim_divisor: 32, vocab_size: 32000, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 2.0] };
const base = tinyModelDir(BASE_HF, 4);
process.on('exit', () => fs.rmSync(base, { recursive: true, force: true }));

let n = 0;
function recipe(peft: Record<string, unknown>, over: Record<string, unknown> = {}): Recipe {
  const dir = path.join(tmp, `run${n++}`);
  fs.mkdirSync(dir);
  const raw = {
    model: { init: base }, peft, seed: 3,
    data: { train: [{ path: SHAKES }], valid_fraction: 0.05, eval_batches: 2 },
    seq_len: 16, batch_size: 2, grad_accum: 2, steps: 8,
    pipeline: { mode: 'pack', split_words: 256, min_chars: 100, min_tokens: 32, shuffle_buffer: 16 },
    optimizer: { lr: 1e-2, weight_decay: 0 }, schedule: { warmup_steps: 2 },
    out_dir: path.join(dir, 'out'), log_every: 1, eval_every: 4, checkpoint_every: 4,
    ...over,
  };
  const file = path.join(dir, 'recipe.yaml');
  fs.writeFileSync(file, JSON.stringify(raw));
  return parseRecipe(raw, file);
}
const quiet: Pick<TrainOptions, 'log'> = { log: () => undefined };
const metrics = (r: Recipe): MetricLine[] => fs.readFileSync(path.join(r.outDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as MetricLine);
const withoutSpeed = (ms: MetricLine[]) => ms.map(({ tokens_per_s: _t, ...rest }) => rest);
const LORA = { type: 'lora', r: 4, alpha: 8, dropout: 0.1 };

test('a LoRA run: PEFT adapter folders as checkpoints, the base untouched, the loss falls, and the report names the adapter', async () => {
  const r = recipe(LORA, { steps: 12, checkpoint_every: 6 });
  const logs: string[] = [];
  const res = await train({ recipe: r, log: (l) => logs.push(l) });
  assert.equal(res.status, 'done');
  const ck = path.join(r.outDir, 'step-00000012');
  assert.deepEqual(fs.readdirSync(ck).sort(), [PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, 'data_state.safetensors', 'manifest.json', 'optimizer.safetensors', 'trainer_state.json']);
  const cfg = readModelConfig(base);
  const a = readPeftAdapter(ck, cfg);
  assert.deepEqual({ type: a.settings.type, r: a.settings.r, alpha: a.settings.alpha, dropout: a.settings.dropout }, LORA);
  assert.equal(a.modules.length, 1 + 4 * 2);
  assert.ok(a.modules.slice(1).every((m) => m.B.some((x) => x !== 0)), 'linear B left its zero init');
  const json = JSON.parse(fs.readFileSync(path.join(ck, PEFT_CONFIG_FILE), 'utf8'));
  assert.equal(json.base_model_name_or_path, base);
  assert.equal(json.peft_type, 'LORA');
  const opt = SafetensorsFile.open(path.join(ck, 'optimizer.safetensors'));
  const nAdapter = a.modules.reduce((s, m) => s + m.A.length + m.B.length, 0);
  assert.ok(opt.info('m').shape[0] >= nAdapter && opt.info('m').shape[0] < nAdapter + 16 * 20, 'Adam state for the adapter only');
  opt.close();
  const ms = metrics(r);
  assert.ok(ms[ms.length - 1].loss < ms[0].loss, `loss falls: ${ms[0].loss} → ${ms[ms.length - 1].loss}`);
  assert.ok(logs.some((l) => /^adapter: lora r 4, alpha 8, dropout 0.1 on token_embeddings, qkv_proj, out_proj, proj_1, proj_2; [\d,]+ trainable parameters \([\d.]+% of the base\); base frozen as f32/.test(l)), logs.join('\n'));
  assert.match(fs.readFileSync(path.join(r.outDir, 'report.html'), 'utf8'), /trainable parameters/);
});

test('resume is bit-identical for an adapter run (DoRA, dropout 0.2, a q8 base)', async () => {
  const peft = { type: 'dora', r: 3, alpha: 6, dropout: 0.2, base_dtype: 'q8' };
  // q8 stores rows in blocks of 32: every linear of this base is a multiple of 32 wide
  const q8base = tinyModelDir({ ...BASE_HF, model_dim: 64, head_dim: 16, ffn_multipliers: [0.5, 1.0] }, 6);
  const over = { steps: 9, checkpoint_every: 3, eval_every: 4, model: { init: q8base } };
  const a = recipe(peft, over);
  await train({ recipe: a, ...quiet });
  const b = recipe(peft, over);
  const first = await train({ recipe: b, stopAfter: 5, ...quiet });
  assert.equal(first.status, 'stopped');
  const second = await train({ recipe: b, resume: true, ...quiet });
  assert.equal(second.status, 'done');
  assert.deepEqual(withoutSpeed(metrics(b)), withoutSpeed(metrics(a)));
  for (const f of [PEFT_WEIGHTS_FILE, 'optimizer.safetensors']) {
    assert.ok(fs.readFileSync(path.join(a.outDir, 'step-00000009', f)).equals(fs.readFileSync(path.join(b.outDir, 'step-00000009', f))), f);
  }
  fs.rmSync(q8base, { recursive: true, force: true });
  // a base whose widths q8 cannot store is named
  await assert.rejects(train({ recipe: recipe(peft), ...quiet }), (e: unknown) => e instanceof OpenELMError &&
    /^recipe\.peft\.base_dtype q8: transformer\.layers\.0\.attn\.out_proj\.weight has 16 columns; q8 stores rows in blocks of 32 \(use bf16 or f32\)$/.test(e.message));
});

test('an adapter run continues from peft.init (an existing PEFT folder), taking its settings', async () => {
  const first = recipe(LORA, { steps: 4 });
  await train({ recipe: first, ...quiet });
  const init = path.join(first.outDir, 'step-00000004');
  const r = recipe({ init, dropout: 0 }, { steps: 2, eval_every: 0 });
  const logs: string[] = [];
  await train({ recipe: r, log: (l) => logs.push(l) });
  assert.ok(logs.some((l) => l.includes('started from the adapter in recipe.peft.init')));
  const a = readPeftAdapter(path.join(r.outDir, 'step-00000002'), readModelConfig(base));
  assert.equal(a.settings.r, 4);
  assert.equal(a.settings.dropout, 0);
});

test('generate and eval --adapter, the library\'s adapter option and `openelm merge` run the same adapted model', async () => {
  const r = recipe(LORA, { steps: 4, eval_every: 0 });
  await train({ recipe: r, ...quiet });
  const ck = path.join(r.outDir, 'step-00000004');
  const out = path.join(tmp, 'merged');
  const m = spawnSync(process.execPath, [CLI, 'merge', '--model', base, '--adapter', ck, '--out', out, '--json'], { encoding: 'utf8' });
  assert.equal(m.status, 0, m.stderr);
  const info = JSON.parse(m.stdout);
  assert.equal(info.untied_head, true, 'the embedding is adapted: the merged head is untied');
  const mcfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
  assert.equal(mcfg.share_input_output_layers, false);
  const gen = (args: string[]) => {
    const g = spawnSync(process.execPath, [CLI, 'generate', ...args, '--prompt', 'ROMEO:', '--max-tokens', '8', '--ignore-eos', '--json', '--backend', 'js'], { encoding: 'utf8' });
    assert.equal(g.status, 0, g.stderr);
    return JSON.parse(g.stdout).ids as number[];
  };
  const withAdapter = gen(['--model', base, '--adapter', ck]);
  assert.deepEqual(gen(['--model', out]), withAdapter);
  assert.deepEqual(gen(['--model', base, '--adapter', r.outDir]), withAdapter, 'a run folder means its latest checkpoint');
  assert.notDeepEqual(gen(['--model', base]), withAdapter, 'the adapter changes the greedy continuation');
  // the library: logits of base + adapter equal the merged folder's
  const lib = await loadModel(base, { adapter: ck, backend: 'js' });
  const merged = await loadModel(out, { backend: 'js' });
  const ids = lib.encode('ROMEO: O');
  assertClose(await lib.model.logitsAll(ids), await merged.model.logitsAll(ids), { atol: 1e-6, rtol: 0 }, 'adapter option vs merged folder');
  lib.dispose(); merged.dispose();
  // eval --adapter (CoreNet's LLM-Adapters scoring): the same per-document log-likelihoods as the merged folder
  const evalLog = (args: string[]) => {
    const file = path.join(tmp, `eval-${n++}.jsonl`);
    const e = spawnSync(process.execPath, [CLI, 'eval', ...args, '--tasks', 'llmadapters_boolq', '--limit', '3', '--log-samples', file, '--json', '--backend', 'js'], { encoding: 'utf8' });
    assert.equal(e.status, 0, e.stderr);
    return fs.readFileSync(file, 'utf8');
  };
  const adaptedEval = evalLog(['--model', base, '--adapter', ck]);
  assert.equal(evalLog(['--model', out]), adaptedEval);
  assert.notEqual(evalLog(['--model', base]), adaptedEval);
  // merge refuses to overwrite its inputs
  const bad = spawnSync(process.execPath, [CLI, 'merge', '--model', base, '--adapter', ck, '--out', ck], { encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^openelm merge: --out .* is or holds the --adapter folder .*; write the merged model somewhere else\n$/);
  // nor an existing folder without --force
  const again = spawnSync(process.execPath, [CLI, 'merge', '--model', base, '--adapter', ck, '--out', out], { encoding: 'utf8' });
  assert.equal(again.status, 2);
  assert.match(again.stderr, /^openelm merge: --out .* already exists; pass --force to replace it\n$/);
  assert.equal(spawnSync(process.execPath, [CLI, 'merge', '--model', base, '--adapter', ck, '--out', out, '--force'], { encoding: 'utf8' }).status, 0);
});

test('merged == applied on the PEFT fixtures: the merged model\'s logits equal the trainable model\'s with the adapter', async () => {
  const BASE = 'gqa4-hd32', cfg = goldenConfig(BASE);
  const f = SafetensorsFile.open(path.join(GOLDEN_ROOT, BASE, 'model.safetensors'));
  const weights = new Map(f.names().map((k) => [k, f.readF32(k)]));
  f.close();
  for (const c of ['lora', 'dora'] as const) {
    const a = readPeftAdapter(path.join(GOLDEN_ROOT, 'peft', c, 'adapter'), cfg);
    const be = new JsBackend();
    const applied = new TrainableModel(cfg, be, { adapter: { settings: a.settings } });
    for (const p of paramSpecs(cfg)) applied.setBase(p.name, weights.get(p.name)!);
    be.write(applied.params, adapterToFlat(a, applied.layout));
    const ids = Int32Array.from({ length: 10 }, (_, i) => (i * 37 + 5) % cfg.vocabSize);
    const want = await applied.logits(ids, 1, 10);
    const merged = loadModelFolder(path.join(GOLDEN_ROOT, BASE), { backend: be, adapter: a });
    assert.equal(merged.config.tiedEmbeddings, false);
    assertClose(await merged.logitsAll(Array.from(ids)), want, TOL.refLogits, `${c} merged vs applied`);
  }
});

test('several adapters (generate, chat, serve, merge, the library) act as PEFT\'s several active adapters, in order: LoRA adds its change, DoRA rescales what came before', async () => {
  const BASE = 'gqa4-hd32', cfg = goldenConfig(BASE), dir = path.join(GOLDEN_ROOT, BASE);
  const lora = readPeftAdapter(path.join(GOLDEN_ROOT, 'peft', 'lora', 'adapter'), cfg);
  const dora = readPeftAdapter(path.join(GOLDEN_ROOT, 'peft', 'dora', 'adapter'), cfg);
  const f = SafetensorsFile.open(path.join(dir, 'model.safetensors'));
  const W = new Map(f.names().map((k) => [k, f.readF32(k)]));
  f.close();
  // PEFT's forward with active adapters [lora, dora] on a linear, written out in f64:
  // y = c ⊙ (W + Δl + Δd)·x with Δ = s·B·A and c = m / ‖W + Δd‖ per output row; [dora, lora] gives c ⊙ (W + Δd) + Δl.
  const delta = (a: typeof lora, name: string) => {
    const m = a.modules.find((x) => x.module.weight === name)!, s = adapterScale(a.settings);
    const { inFeatures: I, outFeatures: O } = m.module, r = a.settings.r, d = new Float64Array(O * I);
    for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) { let acc = 0; for (let k = 0; k < r; k++) acc += m.B[o * r + k] * m.A[k * I + i]; d[o * I + i] = s * acc; }
    return { d, m, I, O };
  };
  const ck = openCheckpoint(dir);
  try {
    const ld = mergedSource(ck, cfg, [lora, dora]), dl = mergedSource(ck, cfg, [dora, lora]);
    assert.equal(ld.hfConfig.share_input_output_layers, false);
    const linears = lora.modules.filter((m) => m.module.kind !== 'embedding').map((m) => m.module.weight);
    assert.ok(linears.length >= 8);
    for (const name of linears) {
      const w = W.get(name)!, l = delta(lora, name), d = delta(dora, name), { I, O } = l;
      const wantLD = new Float32Array(w.length), wantDL = new Float32Array(w.length);
      for (let o = 0; o < O; o++) {
        let ss = 0;
        for (let i = 0; i < I; i++) ss += (w[o * I + i] + d.d[o * I + i]) ** 2;
        const c = d.m.magnitude![o] / Math.sqrt(ss);
        for (let i = 0; i < I; i++) {
          const e = o * I + i;
          wantLD[e] = c * (w[e] + l.d[e] + d.d[e]);
          wantDL[e] = c * (w[e] + d.d[e]) + l.d[e];
        }
      }
      assertClose(ld.source.readF32(name, new Float32Array(w.length)), wantLD, { atol: 1e-6, rtol: 0 }, `[lora, dora]: ${name}`);
      assertClose(dl.source.readF32(name, new Float32Array(w.length)), wantDL, { atol: 1e-6, rtol: 0 }, `[dora, lora]: ${name}`);
    }
    const emb = 'transformer.token_embeddings.weight';
    assert.deepEqual(ld.source.readF32('lm_head.weight', new Float32Array(W.get(emb)!.length)), W.get(emb), 'the untied head is the base embedding');
  } finally { ck.close(); }
  // Two copies of one LoRA adapter compute what that adapter with twice its B computes.
  const doubled = { ...lora, modules: lora.modules.map((m) => ({ ...m, B: m.B.map((x) => 2 * x) })) };
  const be = new JsBackend();
  const ids = Array.from({ length: 10 }, (_, i) => (i * 37 + 5) % cfg.vocabSize);
  const twice = await loadModelFolder(dir, { backend: be, adapter: [lora, lora] }).logitsAll(ids);
  const once2B = await loadModelFolder(dir, { backend: be, adapter: doubled }).logitsAll(ids);
  assertClose(twice, once2B, TOL.refLogits, 'lora + lora vs lora with 2B');
  // From the CLI (the tiny base of these runs): --adapter given twice, in either order, equals the merged folder of both.
  const r = recipe(LORA, { steps: 4, eval_every: 0 });
  await train({ recipe: r, ...quiet });
  const first = path.join(r.outDir, 'step-00000004'), second = path.join(tmp, 'second-adapter');
  const a1 = readPeftAdapter(first, readModelConfig(base));
  writePeftAdapter(second, { ...a1, modules: a1.modules.map((mod) => ({ ...mod, A: mod.A.map((x, i) => x * (1 + 0.3 * Math.sin(i))), B: mod.B.map((x) => -1.5 * x) })) });
  const out = path.join(tmp, 'merged-two');
  const m = spawnSync(process.execPath, [CLI, 'merge', '--model', base, '--adapter', first, '--adapter', second, '--out', out, '--json'], { encoding: 'utf8' });
  assert.equal(m.status, 0, m.stderr);
  assert.equal(JSON.parse(m.stdout).adapters.length, 2);
  const gen = (args: string[]) => {
    const g = spawnSync(process.execPath, [CLI, 'generate', ...args, '--prompt', 'ROMEO:', '--max-tokens', '8', '--ignore-eos', '--json', '--backend', 'js'], { encoding: 'utf8' });
    assert.equal(g.status, 0, g.stderr);
    return JSON.parse(g.stdout).ids as number[];
  };
  const ab = gen(['--model', base, '--adapter', first, '--adapter', second]);
  assert.deepEqual(gen(['--model', base, '--adapter', second, '--adapter', first]), ab);
  assert.deepEqual(gen(['--model', out]), ab);
  assert.notDeepEqual(gen(['--model', base, '--adapter', first]), ab, 'the second adapter changes the continuation');
  const text = (args: string[]) => {
    const g = spawnSync(process.execPath, [CLI, 'generate', ...args, '--prompt', 'ROMEO:', '--max-tokens', '8', '--ignore-eos', '--json', '--backend', 'js'], { encoding: 'utf8' });
    return JSON.parse(g.stdout).text as string;
  };
  const wantText = text(['--model', out]);

  // chat and serve take the same flags: their answers equal the merged folder's
  const chat = async (args: string[]) => {
    const c = await runCliAsync(['chat', ...args, '--backend', 'js', '--max-tokens', '6'], { input: 'Hello there\n/exit\n' });
    assert.equal(c.status, 0, c.stderr);
    return c.stdout;
  };
  assert.equal(await chat(['--model', base, '--adapter', first, '--adapter', second]), await chat(['--model', out]));

  const child = spawnCli(['serve', '--model', base, '--adapter', first, '--adapter', second, '--port', '0', '--backend', 'js']);
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d: string) => {
        stderr += d;
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
        if (m && stderr.includes('model ready')) resolve(m[1]);
      });
      child.on('exit', () => reject(new Error(stderr)));
    });
    const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'ROMEO:', max_tokens: 8, temperature: 0, ignore_eos: true }) });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { choices: { text: string }[] }).choices[0].text, wantText);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
});

test('Ctrl-C in an adapter run finishes the step and writes an adapter checkpoint', async () => {
  const r = recipe(LORA, { steps: 100000, eval_every: 0, checkpoint_every: 100000 });
  const { checkpoint } = await interruptTrain(r.file, 2);
  assert.ok(fs.existsSync(path.join(checkpoint, PEFT_WEIGHTS_FILE)));
});

test('bad input: one line each (no base, an adapter for another base, wrong shapes on --adapter, r < 1, unknown target)', async () => {
  const noBase = recipe(LORA);
  const raw = JSON.parse(fs.readFileSync(noBase.file, 'utf8'));
  delete raw.model.init;
  raw.model.config = BASE_HF;
  await assert.rejects(train({ recipe: parseRecipe(raw, noBase.file), ...quiet }), (e: unknown) =>
    e instanceof OpenELMError && /recipe\.peft trains an adapter on a base model; set recipe\.model\.init/.test(e.message) && !e.message.includes('\n'));

  // an adapter made for another base size
  const other = tinyModelDir({ ...BASE_HF, model_dim: 64, head_dim: 16 }, 2);
  const otherRun = recipe(LORA, { steps: 1, eval_every: 0, schedule: { warmup_steps: 0 }, model: { init: other } });
  await train({ recipe: otherRun, ...quiet });
  const wrong = path.join(otherRun.outDir, 'step-00000001');
  const g = spawnSync(process.execPath, [CLI, 'generate', '--model', base, '--adapter', wrong, '--prompt', 'a', '--max-tokens', '1'], { encoding: 'utf8' });
  assert.equal(g.status, 1);
  assert.match(g.stderr, /^openelm generate: .*adapter_model\.safetensors: base_model\.model\.transformer\.token_embeddings\.lora_embedding_B is \[64, 4\], but this model needs \[32, 4\] \(an adapter for another base model or size\?\)\n$/);
  await assert.rejects(train({ recipe: recipe({ ...LORA, init: wrong }), ...quiet }), /lora_embedding_B is \[64, 4\], but this model needs \[32, 4\]/);

  // r in the adapter's config does not match its tensors
  const edited = path.join(tmp, 'edited');
  writePeftAdapter(edited, readPeftAdapter(wrong, readModelConfig(other)));
  const cfgFile = path.join(edited, PEFT_CONFIG_FILE);
  fs.writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfgFile, 'utf8')), r: 5 }));
  assert.throws(() => readPeftAdapter(edited, readModelConfig(other)), /adapter_config\.json says r = 5/);
  fs.rmSync(other, { recursive: true, force: true });

  for (const [peft, msg] of [[{ r: 0 }, /recipe\.peft\.r must be/], [{ targets: ['qkv_proj', 'lm_head'] }, /recipe\.peft\.targets\[1\]/]] as const) {
    assert.throws(() => recipe(peft), (e: unknown) => e instanceof OpenELMError && msg.test(e.message) && !e.message.includes('\n'));
  }
});

test('convert --to mlx-adapter exports a linears-only adapter and refuses an embedding adapter with the reason', async () => {
  const r = recipe({ ...LORA, targets: ['qkv_proj', 'out_proj', 'proj_1', 'proj_2'] }, { steps: 2, eval_every: 0, schedule: { warmup_steps: 0 } });
  await train({ recipe: r, ...quiet });
  const ck = path.join(r.outDir, 'step-00000002'), out = path.join(tmp, 'mlx');
  const c = spawnSync(process.execPath, [CLI, 'convert', '--model', base, '--adapter', ck, '--to', 'mlx-adapter', '--out', out, '--json'], { encoding: 'utf8' });
  assert.equal(c.status, 0, c.stderr);
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
  assert.equal(cfg.fine_tune_type, 'lora');
  assert.equal(cfg.num_layers, 2);
  assert.equal(cfg.lora_parameters.scale, 2);
  const f = SafetensorsFile.open(path.join(out, 'adapters.safetensors'));
  assert.deepEqual(f.info('transformer.layers.0.attn.qkv_proj.lora_a').shape, [32, 4]);
  const a = readPeftAdapter(ck, readModelConfig(base));
  const A = a.modules[0].A, lora_a = f.readF32('transformer.layers.0.attn.qkv_proj.lora_a');
  assert.equal(lora_a[1 * 4 + 2], A[2 * 32 + 1], 'lora_a = Aᵀ');
  f.close();
  const withEmb = recipe(LORA, { steps: 1, eval_every: 0, schedule: { warmup_steps: 0 } });
  await train({ recipe: withEmb, ...quiet });
  const bad = spawnSync(process.execPath, [CLI, 'convert', '--model', base, '--adapter', path.join(withEmb.outDir, 'step-00000001'), '--to', 'mlx-adapter', '--out', path.join(tmp, 'mlx2')], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^openelm convert: cannot export an adapter on token_embeddings to mlx-lm: .*\n$/);
});
