import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveConfig, presetHFConfig, parameterCount, makeDivisible, pyRound2, linspace, kvValuesPerToken } from '../src/model/config.js';
import { OpenELMError } from '../src/core/errors.js';

const EXPECTED: Record<string, number> = {
  'OpenELM-270M': 271_527_168,
  'OpenELM-450M': 457_179_136,
  'OpenELM-1_1B': 1_079_891_456,
  'OpenELM-3B': 3_036_647_424,
};

test('preset parameter counts are exact', () => {
  for (const [name, n] of Object.entries(EXPECTED)) {
    assert.equal(parameterCount(resolveConfig(presetHFConfig(name))), n, name);
    assert.equal(parameterCount(resolveConfig(presetHFConfig(name + '-Instruct'))), n, name + '-Instruct');
  }
});

test('per-layer dims match the released configs', () => {
  const c = resolveConfig(presetHFConfig('OpenELM-270M'));
  assert.deepEqual(c.numQueryHeads, [12, 12, 12, 12, 12, 16, 16, 16, 16, 16, 16, 16, 20, 20, 20, 20]);
  assert.deepEqual(c.numKvHeads, [3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5]);
  assert.deepEqual(c.ffnDims, [768, 1024, 1280, 1536, 1792, 2048, 2560, 2816, 3072, 3328, 3584, 3840, 4352, 4608, 4864, 5120]);
  assert.deepEqual(c.ffnMultipliers, [0.5, 0.73, 0.97, 1.2, 1.43, 1.67, 1.9, 2.13, 2.37, 2.6, 2.83, 3.07, 3.3, 3.53, 3.77, 4.0]);
  const b = resolveConfig(presetHFConfig('OpenELM-1_1B'));
  assert.deepEqual(b.ffnDims, [1024, 1280, 1536, 1792, 2048, 2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096, 4608, 4608, 5120, 5376, 5632, 5888, 6144, 6400, 6656, 6912, 7168, 7424, 7680, 7936, 8192]);
  assert.deepEqual(b.numQueryHeads, [16, 16, 16, 20, 20, 20, 20, 20, 20, 20, 24, 24, 24, 24, 24, 24, 24, 24, 28, 28, 28, 28, 28, 28, 32, 32, 32, 32]);
  const t = resolveConfig(presetHFConfig('OpenELM-3B'));
  assert.equal(t.headDim, 128);
  assert.deepEqual(t.numKvHeads.slice(0, 5), [3, 3, 3, 3, 4]);
  assert.equal(kvValuesPerToken(c), 8064);
  assert.equal(kvValuesPerToken(t), 41984);
  const q = resolveConfig(presetHFConfig('OpenELM-450M'));
  assert.deepEqual(q.ffnDims, [768, 1024, 1280, 1536, 1792, 2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096, 4352, 4608, 5120, 5376, 5632, 5888, 6144]);
});

test('make_divisible keeps the 10% rule', () => {
  assert.equal(makeDivisible(100, 256), 256);
  assert.equal(makeDivisible(300, 256), 256 + 256); // 256 < 0.9*300=270 -> bump
  assert.equal(makeDivisible(384, 256), 512); // tie rounds up
  assert.equal(makeDivisible(1280 * 0.5, 256), 768);
});

test('python rounding and linspace', () => {
  assert.equal(pyRound2(0.125), 0.12);
  assert.equal(pyRound2(0.375), 0.38);
  assert.equal(pyRound2(2.675), 2.67); // binary value is below the tie
  assert.deepEqual(linspace(0.5, 1, 3), [0.5, 0.75, 1]);
});

test('custom sizes and explicit per-layer lists', () => {
  const c = resolveConfig({ num_transformer_layers: 3, model_dim: 256, head_dim: 32, vocab_size: 100, num_gqa_groups: 2,
    qkv_multipliers: [0.5, 0.75, 1.0], ffn_multipliers: 2, ffn_dim_divisor: 64 });
  assert.deepEqual(c.numQueryHeads, [4, 6, 8]);
  assert.deepEqual(c.numKvHeads, [2, 3, 4]);
  assert.deepEqual(c.ffnDims, [512, 512, 512]);
});

test('bad configs give clear errors', () => {
  const base = { num_transformer_layers: 2, model_dim: 64, head_dim: 16, vocab_size: 10 };
  assert.throws(() => resolveConfig(null), OpenELMError);
  assert.throws(() => resolveConfig({ ...base, model_dim: undefined }), /missing "model_dim"/);
  assert.throws(() => resolveConfig({ ...base, head_dim: 15 }), /even/);
  assert.throws(() => resolveConfig({ ...base, ffn_multipliers: [1, 2, 3] }), /ffn_multipliers has 3 entries/);
  assert.throws(() => resolveConfig({ ...base, model_type: 'llama' }), /model_type/);
  assert.deepEqual(resolveConfig({ ...base, num_query_heads: [1, 2] }).numQueryHeads, [2, 4]); // recomputed, as Apple does
  assert.throws(() => presetHFConfig('OpenELM-7B'), /unknown preset/);
});
