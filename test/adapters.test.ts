// Adapters (LoRA / DoRA) against fixtures made by the real PEFT library (tools/make_peft_goldens.py):
// reading PEFT's folders, writing folders PEFT reads, the per-module math with dropout, merging,
// and one clear error line for each kind of bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Golden, GOLDEN_ROOT, goldenConfig } from './helpers/golden.js';
import { TOL, assertClose } from './tolerances.js';
import { SafetensorsFile, writeSafetensorsSync, type TensorToWrite } from '../src/io/safetensors.js';
import { OpenELMError } from '../src/core/errors.js';
import { readPeftAdapter, writePeftAdapter, PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE } from '../src/io/peft-folder.js';
import { peftConfigJson, peftTensorNames } from '../src/adapters/peft-config.js';
import { adapterScale, doraNorms, initAdapter, type Adapter } from '../src/adapters/adapter.js';
import { AdaptedEmbeddingRef, AdaptedLinearRef } from '../src/adapters/reference-math.js';
import { mergeAdapter } from '../src/adapters/merge.js';
import { ADAPTER_TARGETS } from '../src/adapters/targets.js';
import { mlxAdapterFiles, writeMlxAdapter } from '../src/io/mlx-adapter.js';
import { loadModelFolder } from '../src/io/model-folder.js';
import { JsBackend } from '../src/backends/js/js-backend.js';

const BASE = 'gqa4-hd32';
const CASES = ['lora', 'lora-rslora', 'dora'] as const;
const cfg = goldenConfig(BASE);
const adapterDir = (c: string) => path.join(GOLDEN_ROOT, 'peft', c, 'adapter');
const golden = (c: string) => new Golden(path.join('peft', c));

function baseWeights(): Map<string, Float32Array> {
  const f = SafetensorsFile.open(path.join(GOLDEN_ROOT, BASE, 'model.safetensors'));
  try { return new Map(f.names().map((n) => [n, f.readF32(n)])); } finally { f.close(); }
}
const base = baseWeights();

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-adapters-'));
}

/** A copy of a golden adapter folder with its config (and optionally tensors) edited. */
function editedAdapter(c: string, edit: (cfg: Record<string, unknown>) => void, tensors?: (t: TensorToWrite[]) => TensorToWrite[]): string {
  const dir = tmpDir();
  const raw = JSON.parse(fs.readFileSync(path.join(adapterDir(c), PEFT_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
  edit(raw);
  fs.writeFileSync(path.join(dir, PEFT_CONFIG_FILE), JSON.stringify(raw));
  const src = path.join(adapterDir(c), PEFT_WEIGHTS_FILE);
  if (!tensors) { fs.copyFileSync(src, path.join(dir, PEFT_WEIGHTS_FILE)); return dir; }
  const f = SafetensorsFile.open(src);
  const list: TensorToWrite[] = f.names().map((n) => ({ name: n, dtype: 'F32', shape: [...f.info(n).shape], data: f.readF32(n) }));
  f.close();
  writeSafetensorsSync(path.join(dir, PEFT_WEIGHTS_FILE), tensors(list));
  return dir;
}

function expectAdapterError(dir: string, pattern: RegExp, c = cfg): void {
  assert.throws(() => readPeftAdapter(dir, c), (e: unknown) => {
    assert.ok(e instanceof OpenELMError, `expected OpenELMError, got ${String(e)}`);
    assert.ok(!e.message.includes('\n'), `error is not one line: ${e.message}`);
    assert.match(e.message, pattern);
    return true;
  });
}

test('PEFT-made adapter folders load with PEFT\'s settings, names and shapes', () => {
  for (const c of CASES) {
    const a = readPeftAdapter(adapterDir(c), cfg);
    assert.equal(a.settings.type, c === 'dora' ? 'dora' : 'lora');
    assert.equal(a.settings.r, 4);
    assert.equal(a.settings.alpha, 8);
    assert.equal(a.settings.dropout, 0.1);
    assert.equal(a.settings.rslora, c === 'lora-rslora');
    assert.deepEqual(a.settings.targets, [...ADAPTER_TARGETS]);
    assert.equal(adapterScale(a.settings), c === 'lora-rslora' ? 4 : 2);
    assert.equal(a.modules.length, 1 + 4 * cfg.numLayers);
    const emb = a.modules[0];
    assert.equal(emb.module.name, 'transformer.token_embeddings');
    assert.equal(emb.A.length, 4 * cfg.vocabSize);
    assert.equal(emb.B.length, cfg.modelDim * 4);
    if (c === 'dora') for (const m of a.modules) assert.equal(m.magnitude!.length, m.module.outFeatures);
    else for (const m of a.modules) assert.equal(m.magnitude, undefined);
  }
});

test('written adapter folders have PEFT\'s tensor names, shapes and config, and read back unchanged', () => {
  for (const c of CASES) {
    const a = readPeftAdapter(adapterDir(c), cfg);
    const dir = tmpDir();
    writePeftAdapter(dir, a);
    const theirs = SafetensorsFile.open(path.join(adapterDir(c), PEFT_WEIGHTS_FILE));
    const ours = SafetensorsFile.open(path.join(dir, PEFT_WEIGHTS_FILE));
    assert.deepEqual(ours.names().sort(), theirs.names().sort());
    for (const n of theirs.names()) {
      assert.deepEqual(ours.info(n).shape, theirs.info(n).shape, n);
      assert.equal(ours.info(n).dtype, 'F32');
      assert.deepEqual(ours.readF32(n), theirs.readF32(n), n);
    }
    assert.deepEqual(ours.metadata, { format: 'pt' });
    ours.close(); theirs.close();
    const peftCfg = JSON.parse(fs.readFileSync(path.join(adapterDir(c), PEFT_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    const ourCfg = JSON.parse(fs.readFileSync(path.join(dir, PEFT_CONFIG_FILE), 'utf8')) as Record<string, unknown>;
    // PEFT writes target_modules from a set (any order).
    for (const j of [peftCfg, ourCfg]) j.target_modules = (j.target_modules as string[]).slice().sort();
    assert.deepEqual(ourCfg, peftCfg);
    const back = readPeftAdapter(dir, cfg);
    assert.deepEqual(back.settings, a.settings);
    for (let i = 0; i < a.modules.length; i++) {
      assert.deepEqual(back.modules[i].A, a.modules[i].A);
      assert.deepEqual(back.modules[i].B, a.modules[i].B);
      assert.deepEqual(back.modules[i].magnitude, a.modules[i].magnitude);
    }
    fs.rmSync(dir, { recursive: true });
  }
});

test('PEFT\'s key conventions: lora_embedding_A/B and lora_magnitude_vector carry no .weight suffix', () => {
  const a = readPeftAdapter(adapterDir('dora'), cfg);
  const n = peftTensorNames(a.modules[0].module, true);
  assert.equal(n.A, 'base_model.model.transformer.token_embeddings.lora_embedding_A');
  assert.equal(n.B, 'base_model.model.transformer.token_embeddings.lora_embedding_B');
  assert.equal(n.magnitude, 'base_model.model.transformer.token_embeddings.lora_magnitude_vector');
  const q = peftTensorNames(a.modules[1].module, true);
  assert.equal(q.A, 'base_model.model.transformer.layers.0.attn.qkv_proj.lora_A.weight');
  assert.equal(q.magnitude, 'base_model.model.transformer.layers.0.attn.qkv_proj.lora_magnitude_vector');
});

/** Per-module forward and backward (training mode, PEFT's dropout masks replayed) vs PEFT's captures. */
for (const c of ['lora', 'dora'] as const) {
  test(`${c}: per-module forward/backward with dropout matches PEFT (layer 1 linears and the embedding)`, () => {
    const g = golden(c);
    const a = readPeftAdapter(adapterDir(c), cfg);
    const p = Number(g.metadata().lora_dropout);
    for (const m of a.modules) {
      const key = `module.${m.module.name}`;
      if (!g.has(`${key}.y`)) continue;
      const W = base.get(m.module.weight)!;
      const grads = (gr: { dA: Float64Array; dB: Float64Array; dMagnitude?: Float64Array }) => {
        const kA = m.module.kind === 'embedding' ? 'lora_embedding_A' : 'lora_A.weight';
        const kB = m.module.kind === 'embedding' ? 'lora_embedding_B' : 'lora_B.weight';
        assertClose(gr.dA, g.f32(`${key}.grad.${kA}`), TOL.adapterModule, `${key} dA`);
        assertClose(gr.dB, g.f32(`${key}.grad.${kB}`), TOL.adapterModule, `${key} dB`);
        if (c === 'dora') assertClose(gr.dMagnitude!, g.f32(`${key}.grad.lora_magnitude_vector`), TOL.adapterModule, `${key} dm`);
        // The module's own gradients are the whole-model gradients of its tensors.
        const full = `drop.grad.base_model.model.${m.module.name}`;
        assertClose(gr.dA, g.f32(`${full}.${kA}`), TOL.adapterModule, `${full} dA`);
      };
      if (m.module.kind === 'embedding') {
        const ids = g.i32(`${key}.ids`);
        const ref = new AdaptedEmbeddingRef(m, W, a.settings);
        const { y, pre } = ref.forward(ids);
        assertClose(y, g.f32(`${key}.y`), TOL.adapterModule, `${key} y`);
        grads(ref.backward(ids, pre, g.f32(`${key}.dy`)));
      } else {
        const x = g.f32(`${key}.x`), M = x.length / m.module.inFeatures;
        const maskRaw = g.file.readRaw(`drop.mask.${m.module.name}`);
        const ref = new AdaptedLinearRef(m, W, a.settings);
        const { y, saved } = ref.forward(x, M, maskRaw, p);
        assertClose(y, g.f32(`${key}.y`), TOL.adapterModule, `${key} y`);
        const gr = ref.backward(saved, g.f32(`${key}.dy`), maskRaw, p);
        assertClose(gr.dx, g.f32(`${key}.dx`), TOL.adapterModule, `${key} dx`);
        grads(gr);
      }
    }
    g.close();
  });
}

test('dora: the dropout path differs from PEFT\'s no-dropout formula (the masks matter)', () => {
  const g = golden('dora');
  const a = readPeftAdapter(adapterDir('dora'), cfg);
  const m = a.modules.find((x) => x.module.name === 'transformer.layers.1.attn.qkv_proj')!;
  const x = g.f32(`module.${m.module.name}.x`), M = x.length / m.module.inFeatures;
  const ref = new AdaptedLinearRef(m, base.get(m.module.weight)!, a.settings);
  const plain = ref.forward(x, M).y;
  const r = assertThrowsClose(plain, g.f32(`module.${m.module.name}.y`));
  assert.ok(r > 1e-3, `no-dropout output should differ from the dropout run, max diff ${r}`);
  g.close();
});

function assertThrowsClose(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

for (const c of ['lora', 'dora'] as const) {
  test(`${c}: merged weights equal PEFT's merge, and the merged model (untied head) gives the adapted logits`, async () => {
    const g = golden(c);
    const a = readPeftAdapter(adapterDir(c), cfg);
    const merged = mergeAdapter(cfg, a, (n) => base.get(n)!);
    for (const k of ['transformer.token_embeddings.weight', ...['attn.qkv_proj', 'attn.out_proj', 'ffn.proj_1', 'ffn.proj_2'].map((m) => `transformer.layers.0.${m}.weight`)]) {
      assertClose(merged.weights.get(k)!, g.f32(`merged.${k}`), TOL.adapterMerge, `merged ${k}`);
    }
    assert.deepEqual(merged.weights.get('lm_head.weight'), base.get('transformer.token_embeddings.weight'));
    assert.equal(merged.hfConfig.share_input_output_layers, false);
    // Write the merged model and run it through the ordinary inference engine.
    const dir = tmpDir();
    const tensors: TensorToWrite[] = [...base.keys(), 'lm_head.weight'].map((n) => {
      const data = merged.weights.get(n) ?? base.get(n)!;
      const shape = n === 'lm_head.weight' ? [cfg.vocabSize, cfg.modelDim] : [...SafetensorsFile.open(path.join(GOLDEN_ROOT, BASE, 'model.safetensors')).info(n).shape];
      return { name: n, dtype: 'F32', shape, data };
    });
    writeSafetensorsSync(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(merged.hfConfig));
    const model = loadModelFolder(dir, { backend: new JsBackend(), dtype: 'f32' });
    assert.equal(model.config.tiedEmbeddings, false);
    const ids = g.i32('forward.input_ids'), [B, T] = g.shape('forward.input_ids'), V = cfg.vocabSize;
    const want = g.f32('forward.logits');
    for (let b = 0; b < B; b++) {
      const logits = await model.logitsAll(Array.from(ids.subarray(b * T, (b + 1) * T)));
      assertClose(logits, want.subarray(b * T * V, (b + 1) * T * V), TOL.refLogits, `${c} merged row ${b}`);
    }
    fs.rmSync(dir, { recursive: true });
    g.close();
  });
}

test('merging without an adapted embedding keeps the head tied', () => {
  const a = readPeftAdapter(adapterDir('lora'), cfg);
  const linearsOnly: Adapter = { ...a, settings: { ...a.settings, targets: a.settings.targets.filter((t) => t !== 'token_embeddings') }, modules: a.modules.slice(1) };
  const merged = mergeAdapter(cfg, linearsOnly, (n) => base.get(n)!);
  assert.equal(merged.weights.has('lm_head.weight'), false);
  assert.equal(merged.weights.has('transformer.token_embeddings.weight'), false);
  assert.equal(merged.hfConfig.share_input_output_layers ?? true, true);
});

test('a fresh adapter starts as the identity: B = 0 (linears), A = 0 (embedding), DoRA magnitudes = ||W||', () => {
  for (const type of ['lora', 'dora'] as const) {
    const a = initAdapter(cfg, { type, r: 8, alpha: 16, dropout: 0, targets: [...ADAPTER_TARGETS], rslora: false }, { seed: 1, baseWeight: (n) => base.get(n)! });
    assert.equal(a.modules.length, 1 + 4 * cfg.numLayers);
    for (const m of a.modules) {
      const zero = m.module.kind === 'embedding' ? m.A : m.B, rand = m.module.kind === 'embedding' ? m.B : m.A;
      assert.ok(zero.every((v) => v === 0), `${m.module.name}: the zero factor`);
      assert.ok(rand.some((v) => v !== 0), `${m.module.name}: the random factor`);
      if (m.module.kind === 'linear') {
        const bound = 1 / Math.sqrt(m.module.inFeatures);
        assert.ok(m.A.every((v) => Math.abs(v) <= bound), `${m.module.name}: kaiming-uniform bound`);
      }
      if (type === 'dora') {
        const n = doraNorms(m, base.get(m.module.weight)!, 2);
        assertClose(m.magnitude!, n, { atol: 0, rtol: 1e-6 }, `${m.module.name} magnitude`);
      }
    }
  }
});

// ------------------------------------------------------------------------------- bad input

test('bad adapter folders are refused with one line naming the file, option or tensor', () => {
  expectAdapterError(path.join(tmpDir(), 'missing'), /adapter folder .* does not exist/);
  expectAdapterError(tmpDir(), /is not a PEFT adapter folder \(no adapter_config\.json\)/);
  expectAdapterError(editedAdapter('lora', (j) => { j.r = 0; }), /adapter_config\.json: r must be an integer >= 1, got 0/);
  expectAdapterError(editedAdapter('lora', (j) => { j.r = 2.5; }), /r must be an integer >= 1, got 2\.5/);
  expectAdapterError(editedAdapter('lora', (j) => { j.target_modules = ['qkv_proj', 'q_proj']; }), /target module "q_proj" does not exist in OpenELM/);
  expectAdapterError(editedAdapter('lora', (j) => { j.target_modules = ['q_norm']; }), /target module "q_norm" \(transformer\.layers\.0\.attn\.q_norm\) cannot be adapted/);
  expectAdapterError(editedAdapter('lora', (j) => { j.target_modules = '.*layers\\.0\\..*qkv_proj'; }), /wraps 1 of the 4 qkv_proj modules/);
  expectAdapterError(editedAdapter('lora', (j) => { j.peft_type = 'IA3'; }), /peft_type "IA3" is not supported/);
  expectAdapterError(editedAdapter('lora', (j) => { j.bias = 'all'; }), /bias = "all" is not supported \(only PEFT's default "none"\)/);
  expectAdapterError(editedAdapter('lora', (j) => { j.layers_to_transform = [0, 1]; }), /layers_to_transform = \[0,1\] is not supported/);
  expectAdapterError(editedAdapter('lora', (j) => { j.init_lora_weights = 'pissa'; }), /init_lora_weights = "pissa" is not supported/);
  expectAdapterError(editedAdapter('lora', (j) => { j.rank_pattern = { qkv_proj: 8 }; }), /rank_pattern = \{"qkv_proj":8\} is not supported/);
  expectAdapterError(editedAdapter('lora', (j) => { j.some_future_option = 3; }), /unknown option some_future_option = 3/);
  expectAdapterError(editedAdapter('lora', (j) => { j.lora_dropout = 1; }), /lora_dropout must be in \[0, 1\), got 1/);
  // PEFT writes unset options of newer versions as null: accepted.
  assert.equal(readPeftAdapter(editedAdapter('lora', (j) => { j.some_future_option = null; j.task_type = null; }), cfg).settings.r, 4);
});

test('adapters whose tensors do not fit the base are refused, naming the tensor', () => {
  const name = 'base_model.model.transformer.layers.2.ffn.proj_1.lora_B.weight';
  expectAdapterError(editedAdapter('lora', () => undefined, (ts) => ts.map((t) => t.name === name ? { ...t, shape: [t.shape[0] / 2, 8], data: t.data } : t)),
    new RegExp(`${name.replace(/\./g, '\\.')} is \\[128, 8\\], but this model needs \\[256, 4\\] \\(an adapter for another base model or size\\?\\)`));
  expectAdapterError(editedAdapter('lora', (j) => { j.r = 8; }), /lora_A\.weight is \[4, 384\]|lora_embedding_A is \[4, 384\], but this model needs \[8, 384\] \(adapter_config\.json says r = 8\)/);
  expectAdapterError(editedAdapter('lora', () => undefined, (ts) => ts.filter((t) => !t.name.endsWith('layers.3.attn.out_proj.lora_A.weight'))),
    /has no tensor base_model\.model\.transformer\.layers\.3\.attn\.out_proj\.lora_A\.weight \(adapter_config\.json targets transformer\.layers\.3\.attn\.out_proj\)/);
  expectAdapterError(editedAdapter('lora', () => undefined, (ts) => [...ts, { name: 'base_model.model.transformer.layers.9.attn.qkv_proj.lora_A.weight', dtype: 'F32', shape: [4, 64], data: new Float32Array(256) }]),
    /unexpected tensor .*layers\.9\.attn\.qkv_proj\.lora_A\.weight \(the model has 4 layers: an adapter for another base size\?\)/);
  expectAdapterError(editedAdapter('lora', () => undefined, (ts) => [...ts, { name: 'base_model.model.transformer.token_embeddings.base_layer.weight', dtype: 'F32', shape: [1], data: new Float32Array(1) }]),
    /base weights saved into the adapter .* are not supported/);
  // The whole adapter made for gqa4-hd32 onto another base size.
  expectAdapterError(adapterDir('lora'), /an adapter for another base (model or )?size\?/, goldenConfig('mha-hd64'));
});

test('our adapter_config.json is PEFT-shaped for every setting', () => {
  const j = peftConfigJson({ type: 'dora', r: 32, alpha: 32, dropout: 0.1, targets: [...ADAPTER_TARGETS], rslora: true }, 'apple/OpenELM-270M');
  assert.equal(j.peft_type, 'LORA');
  assert.equal(j.use_dora, true);
  assert.equal(j.use_rslora, true);
  assert.equal(j.r, 32);
  assert.equal(j.lora_alpha, 32);
  assert.equal(j.base_model_name_or_path, 'apple/OpenELM-270M');
  assert.deepEqual(Object.keys(j), Object.keys(j).slice().sort());
});

test('mlx-lm export: Aᵀ/Bᵀ under mlx names, its formula gives the PEFT output; embedding adapters are refused', () => {
  for (const c of ['lora', 'dora'] as const) {
    const a = readPeftAdapter(adapterDir(c), cfg);
    assert.throws(() => mlxAdapterFiles(cfg, a), /cannot export an adapter on token_embeddings to mlx-lm/);
    const linears: Adapter = { ...a, settings: { ...a.settings, targets: a.settings.targets.filter((t) => t !== 'token_embeddings') }, modules: a.modules.slice(1) };
    const dir = tmpDir();
    writeMlxAdapter(dir, cfg, linears, 'apple/OpenELM-270M');
    const conf = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(conf, {
      fine_tune_type: c, use_dora: c === 'dora', num_layers: cfg.numLayers, model: 'apple/OpenELM-270M',
      lora_parameters: { rank: 4, scale: 2, dropout: 0.1, keys: ['attn.out_proj', 'attn.qkv_proj', 'ffn.proj_1', 'ffn.proj_2'] },
    });
    const f = SafetensorsFile.open(path.join(dir, 'adapters.safetensors'));
    assert.equal(f.names().length, linears.modules.length * (c === 'dora' ? 3 : 2));
    // mlx-lm's LoRALinear / DoRALinear at inference, from the exported tensors only:
    //   z = x·W^T + scale·(x·lora_a)·lora_b;  DoRA: z·m / ||W + scale·(lora_b^T·lora_a^T)|| per row.
    const m = linears.modules.find((x) => x.module.name === 'transformer.layers.1.attn.qkv_proj')!;
    const { inFeatures: I, outFeatures: O } = m.module, r = 4, s = 2;
    const la = f.readF32(`${m.module.name}.lora_a`), lb = f.readF32(`${m.module.name}.lora_b`);
    assert.deepEqual(f.info(`${m.module.name}.lora_a`).shape, [I, r]);
    assert.deepEqual(f.info(`${m.module.name}.lora_b`).shape, [r, O]);
    const W = base.get(m.module.weight)!;
    const g = golden(c);
    const x = g.f32(`module.${m.module.name}.x`), M = x.length / I;
    const z = new Float64Array(M * O);
    for (let i = 0; i < M; i++) {
      const t = new Float64Array(r);
      for (let k = 0; k < r; k++) for (let q = 0; q < I; q++) t[k] += x[i * I + q] * la[q * r + k];
      for (let o = 0; o < O; o++) {
        let acc = 0, lo = 0;
        for (let q = 0; q < I; q++) acc += x[i * I + q] * W[o * I + q];
        for (let k = 0; k < r; k++) lo += t[k] * lb[k * O + o];
        z[i * O + o] = acc + s * lo;
      }
    }
    if (c === 'dora') {
      const mm = f.readF32(`${m.module.name}.m`);
      for (let o = 0; o < O; o++) {
        let ss = 0;
        for (let q = 0; q < I; q++) {
          let d = 0;
          for (let k = 0; k < r; k++) d += lb[k * O + o] * la[q * r + k];
          ss += (W[o * I + q] + s * d) ** 2;
        }
        for (let i = 0; i < M; i++) z[i * O + o] *= mm[o] / Math.sqrt(ss);
      }
    }
    const ours = new AdaptedLinearRef(m, W, a.settings).forward(x, M).y;
    assertClose(z, ours, { atol: 1e-9, rtol: 1e-9 }, `${c} mlx formula vs PEFT formula`);
    f.close();
    g.close();
    fs.rmSync(dir, { recursive: true });
  }
});
