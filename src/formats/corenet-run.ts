// Seeding an `openelm train` run from a CoreNet training state: the weights, AdamW's moments and
// step become a checkpoint folder in the recipe's out_dir, so `openelm train --recipe R --resume`
// continues Apple's (or your cluster's) run here. The data stream starts at the beginning of the
// recipe's data: CoreNet does not save its data position.

import * as fs from 'node:fs';
import { OpenELMError } from '../core/errors.js';
import { paramLayout } from '../model/layout.js';
import type { Recipe } from '../train/recipe.js';
import { recipeModelConfig } from '../train/trainer.js';
import { createTrainLoader } from '../train/pretrain-task.js';
import { STATE_VERSION, listCheckpoints, writeCheckpoint, type TrainerState } from '../train/state.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { CorenetCheckpoint } from './corenet.js';

export interface SeedResult {
  dir: string;
  step: number;
  iterations: number;
  /** Recipe hyper-parameters that differ from the training state's (the recipe's are used). */
  differences: string[];
}

export async function seedRunFromCorenet(ck: CorenetCheckpoint, recipe: Recipe, tok: Tokenizer): Promise<SeedResult> {
  const where = ck.file.file;
  const opt = ck.training?.optimizer;
  // An sft/dpo task's data state (its example order, DPO's reference log-probabilities) is built by
  // the run itself; such runs start from a converted folder as model.init instead.
  if (recipe.task !== 'pretrain') throw new OpenELMError('usage', `${recipe.file}: seeding a run from a CoreNet training state is for task pretrain; for task ${recipe.task}, convert ${where} with --to hf and name that folder as model.init`);
  if (!ck.training) throw new OpenELMError('usage', `${where} holds weights only; seeding a run needs a CoreNet training state (model_state_dict + optim_state_dict)`);
  if (!opt) throw new OpenELMError('checkpoint', `${where} has no AdamW state in optim_state_dict`);
  const c = recipeModelConfig(recipe);
  const k = ck.config;
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  for (const [what, a, b] of [
    ['layers', c.numLayers, k.numLayers], ['model_dim', c.modelDim, k.modelDim], ['head_dim', c.headDim, k.headDim],
    ['query heads', c.numQueryHeads, k.numQueryHeads], ['kv heads', c.numKvHeads, k.numKvHeads],
    ['FFN widths', c.ffnDims, k.ffnDims], ['vocab_size', c.vocabSize, k.vocabSize],
  ] as const) {
    if (!same(a, b)) throw new OpenELMError('usage', `${recipe.file}: the recipe's model has ${what} ${JSON.stringify(a)}, the checkpoint ${JSON.stringify(b)}`);
  }
  if (opt.step >= recipe.steps) throw new OpenELMError('usage', `${where} is at step ${opt.step}, not before recipe.steps (${recipe.steps})`);
  if (listCheckpoints(recipe.outDir).length) throw new OpenELMError('usage', `${recipe.outDir} already holds checkpoints of a run; choose another out_dir`);

  const layout = paramLayout(c);
  const params = new Float32Array(layout.total), m = new Float32Array(layout.total), v = new Float32Array(layout.total);
  for (const e of layout.entries) {
    ck.source.readF32(e.name, params, e.offset);
    m.set(opt.m.get(e.name)!, e.offset);
    v.set(opt.v.get(e.name)!, e.offset);
  }
  const differences: string[] = [];
  const o = recipe.optimizer;
  if (o.betas[0] !== opt.betas[0] || o.betas[1] !== opt.betas[1]) differences.push(`betas ${o.betas.join('/')} (checkpoint ${opt.betas.join('/')})`);
  if (o.eps !== opt.eps) differences.push(`eps ${o.eps} (checkpoint ${opt.eps})`);
  if (o.weightDecay !== opt.weightDecay) differences.push(`weight_decay ${o.weightDecay} (checkpoint ${opt.weightDecay})`);

  const loader = createTrainLoader(recipe, tok, c.vocabSize);
  let data: ReturnType<typeof loader.getState>;
  try { data = loader.getState(); } finally { await loader.close(); }
  const state: TrainerState = {
    version: STATE_VERSION, step: opt.step, tokens: 0, interval: { lossSum: 0, steps: 0, tokens: 0, ms: 0 },
    data: data.json, recipe: recipe.canonical, trainMs: 0, savedAt: new Date().toISOString(),
  };
  fs.mkdirSync(recipe.outDir, { recursive: true });
  const dir = await writeCheckpoint(recipe.outDir, { config: c, layout, params, opt: { step: opt.step, m, v }, state, dataTensors: data.tensors }, recipe.keepCheckpoints);
  return { dir, step: opt.step, iterations: ck.training.iterations, differences };
}
