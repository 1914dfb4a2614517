// The layer-wise scaling ablation recipes (recipes/ablation/): each pair has the same parameter
// count (within 1%; these are equal) and differs only in how the layers are shaped; the other
// settings (data, tokens, optimizer, schedule) are identical. And `--set` overrides for seed sweeps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { parameterCount } from '../src/model/config.js';
import { applyOverrides, loadRecipe, recipeDifferences } from '../src/train/recipe.js';
import { recipeModelConfig } from '../src/train/trainer.js';
import { REPO } from './helpers/tiny-recipe.js';

const PAIRS: [string, string][] = [['layerwise', 'uniform'], ['gpu-layerwise', 'gpu-uniform']];
const file = (n: string) => path.join(REPO, 'recipes/ablation', `${n}.yaml`);

for (const [lw, un] of PAIRS) {
  test(`${lw} and ${un}: equal parameter counts, layer-wise vs constant shapes, everything else identical`, () => {
    const a = loadRecipe(file(lw)), b = loadRecipe(file(un));
    const ca = recipeModelConfig(a), cb = recipeModelConfig(b);
    const na = parameterCount(ca), nb = parameterCount(cb);
    assert.ok(Math.abs(na - nb) / na < 0.01, `${na} vs ${nb}`);
    const emb = (c: typeof ca) => c.vocabSize * c.modelDim;
    assert.equal(emb(ca), emb(cb), 'same embedding');
    assert.ok(Math.abs((na - emb(ca)) - (nb - emb(cb))) / (na - emb(ca)) < 0.01, 'same parameters outside the embedding');
    assert.equal(ca.numLayers, cb.numLayers);
    // Layer-wise: heads and FFN grow with depth; uniform: one value for every layer.
    assert.ok(ca.numQueryHeads[0] < ca.numQueryHeads[ca.numLayers - 1] && ca.ffnDims[0] < ca.ffnDims[ca.numLayers - 1]);
    assert.equal(new Set(cb.numQueryHeads).size, 1);
    assert.equal(new Set(cb.numKvHeads).size, 1);
    assert.equal(new Set(cb.ffnDims).size, 1);
    // The same run otherwise: only the model and where it is written differ.
    const diffs = recipeDifferences(a.canonical, b.canonical).filter((d) => !d.startsWith('recipe.model.'));
    assert.deepEqual(diffs, []);
    assert.deepEqual({ ...a.canonical, model: null, out_dir: null }, { ...b.canonical, model: null, out_dir: null });
    assert.notEqual(a.outDir, b.outDir);
  });
}

test('--set overrides recipe keys as if written in the file; bad ones name the key', () => {
  const r = loadRecipe(file('layerwise'), ['seed=2', 'out_dir=runs/ablation-layerwise-s2', 'optimizer.lr=0.004']);
  assert.equal(r.seed, 2);
  assert.equal(r.pipeline.seed, 2, 'the data order follows the seed');
  assert.equal(r.optimizer.lr, 0.004);
  assert.equal(r.outDir, path.resolve('runs/ablation-layerwise-s2'), 'out_dir is against the current folder');
  assert.deepEqual(applyOverrides({ a: { b: 1 } }, ['a.c=[1, 2]', 'd={x: y}']), { a: { b: 1, c: [1, 2] }, d: { x: 'y' } });
  assert.throws(() => loadRecipe(file('layerwise'), ['seed']), /--set "seed": expected key=value/);
  assert.throws(() => loadRecipe(file('layerwise'), ['seed=two']), /recipe\.seed must be an integer, got "two"/);
  assert.throws(() => loadRecipe(file('layerwise'), ['optimiser.lr=1']), /unknown key recipe\.optimiser/);
  assert.throws(() => loadRecipe(file('layerwise'), ['seed.x=1']), /--set seed\.x: recipe\.seed is not a mapping/);
});
