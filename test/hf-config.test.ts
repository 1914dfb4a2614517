// The config.json openelm writes has the shape of Apple's released files: `qkv_multipliers` a
// (min, max) range, `ffn_multipliers`, `num_query_heads` and `num_kv_heads` one entry per layer.
// llama.cpp's convert_hf_to_gguf.py and mlx-lm read those lists (docs/architecture.md).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PRESET_NAMES, presetHFConfig, resolveConfig, type OpenELMConfig } from '../src/model/config.js';
import { GOLDEN_ROOT, goldenConfig } from './helpers/golden.js';
import { runCli } from './helpers/cli.js';
import { tinyModelDir } from './helpers/tiny.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-hf-config-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The written config.json of `dir`, checked against Apple's shape for the model `c` describes. */
function assertAppleShape(dir: string, c: OpenELMConfig): void {
  const raw = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.deepEqual(raw.ffn_multipliers, c.ffnMultipliers, `${dir}: ffn_multipliers per layer`);
  assert.deepEqual(raw.num_query_heads, c.numQueryHeads, `${dir}: num_query_heads per layer`);
  assert.deepEqual(raw.num_kv_heads, c.numKvHeads, `${dir}: num_kv_heads per layer`);
  assert.deepEqual(raw.qkv_multipliers, c.hf.qkv_multipliers, `${dir}: qkv_multipliers as given`);
  const back = resolveConfig(raw);
  assert.deepEqual([back.numQueryHeads, back.numKvHeads, back.ffnDims], [c.numQueryHeads, c.numKvHeads, c.ffnDims], `${dir} reads back as the same model`);
}

test('presets are described layer by layer, as Apple\'s released config.json files are', () => {
  // OpenELM-270M's released config.json: qkv_multipliers [0.5, 1.0] and these lists
  const hf = presetHFConfig('OpenELM-270M');
  assert.deepEqual(hf.qkv_multipliers, [0.5, 1.0]);
  assert.deepEqual(hf.ffn_multipliers, [0.5, 0.73, 0.97, 1.2, 1.43, 1.67, 1.9, 2.13, 2.37, 2.6, 2.83, 3.07, 3.3, 3.53, 3.77, 4.0]);
  assert.deepEqual(hf.num_query_heads, [12, 12, 12, 12, 12, 16, 16, 16, 16, 16, 16, 16, 20, 20, 20, 20]);
  assert.deepEqual(hf.num_kv_heads, [3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5]);
  for (const name of PRESET_NAMES) {
    const p = presetHFConfig(name), n = p.num_transformer_layers;
    for (const k of ['ffn_multipliers', 'num_query_heads', 'num_kv_heads'] as const) assert.equal((p[k] as number[]).length, n, `${name} ${k}`);
    assert.deepEqual(p.qkv_multipliers, [0.5, 1.0], name);
    // the lists describe the same model as the ranges they came from
    assert.deepEqual(resolveConfig(p).ffnDims, resolveConfig({ ...p, ffn_multipliers: [0.5, 4.0] }).ffnDims, name);
  }
});

test('saved models, convert --to hf and merge write per-layer lists for a model given by ranges', () => {
  // a tiny model whose config has both multipliers as (min, max) ranges
  const saved = tinyModelDir({ qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 2.0], num_transformer_layers: 4 });
  const c = resolveConfig(JSON.parse(fs.readFileSync(path.join(saved, 'config.json'), 'utf8')));
  assert.equal(c.numLayers, 4);
  assert.deepEqual(c.ffnMultipliers, [0.5, 1, 1.5, 2]);
  assertAppleShape(saved, c);

  const hf = path.join(tmp, 'converted');
  const r = runCli(['convert', '--model', saved, '--to', 'hf', '--out', hf]);
  assert.equal(r.status, 0, r.stderr);
  assertAppleShape(hf, c);

  const base = path.join(GOLDEN_ROOT, 'gqa4-hd32');
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(base, 'config.json'), 'utf8')).ffn_multipliers, [0.5, 2.5], 'the golden base is given by ranges');
  const merged = path.join(tmp, 'merged');
  const m = runCli(['merge', '--model', base, '--adapter', path.join(GOLDEN_ROOT, 'peft', 'lora', 'adapter'), '--out', merged]);
  assert.equal(m.status, 0, m.stderr);
  assertAppleShape(merged, goldenConfig('gqa4-hd32'));
  fs.rmSync(saved, { recursive: true, force: true });
});
