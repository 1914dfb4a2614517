import * as fs from 'node:fs';
import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { NATIVE_FLAG } from '../common.js';
import { loadModel } from '../../api.js';
import { OpenELMError, UsageError } from '../../core/errors.js';
import { loadTokenizer } from '../../io/tokenizer-file.js';
import { loadRecipe, setRecipePrecision } from '../../train/recipe.js';
import { MATMUL_PRECISIONS, type MatmulPrecision } from '../../backends/backend.js';
import { train } from '../../train/trainer.js';
import type { NativeMode } from '../../backends/index.js';

export const spec: CommandSpec = {
  name: 'train',
  summary: 'pretrain or fine-tune an OpenELM model from a recipe file (CoreNet\'s pipeline and hyper-parameters; a peft block trains a LoRA/DoRA adapter)',
  usage: 'openelm train --recipe FILE [--resume] [--stop-after N] [--threads N] [--native auto|on|off] [--precision fp32|bf16]',
  flags: [
    { name: 'recipe', type: 'string', help: 'recipe file (YAML or JSON); see recipes/README.md. Data paths are relative to the recipe, out_dir to the current folder', required: true },
    { name: 'resume', type: 'bool', help: 'continue from the newest intact checkpoint in the recipe\'s out_dir' },
    { name: 'stop-after', type: 'int', help: 'stop after this step with a checkpoint (continue later with --resume)', min: 1 },
    { name: 'threads', type: 'int', help: 'compute threads (default: the recipe\'s threads, else all cores; results do not depend on it)', min: 1 },
    NATIVE_FLAG,
    { name: 'precision', type: 'string', choices: MATMUL_PRECISIONS, help: 'inputs of the matrix products (default: the recipe\'s precision, else fp32); bf16 = mixed precision with f32 master weights, see docs/training.md' },
  ],
};

export async function run(flags: ParsedFlags): Promise<number> {
  const file = get.str(flags, 'recipe')!;
  if (!fs.existsSync(file)) throw new UsageError(`recipe file ${file} does not exist`);
  const recipe = loadRecipe(file);
  const threads = get.num(flags, 'threads');
  if (threads !== undefined) recipe.threads = threads;
  const precision = get.str(flags, 'precision');
  if (precision !== undefined) setRecipePrecision(recipe, precision as MatmulPrecision);
  const ac = new AbortController();
  let sigs = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    sigs++;
    if (sigs > 1) {
      process.stderr.write(`\nopenelm train: second ${sig}: quitting now (the last checkpoint is intact)\n`);
      process.exit(130);
    }
    process.stderr.write(`\nopenelm train: ${sig} received: finishing the current step, then writing a checkpoint (press Ctrl-C again to quit at once)\n`);
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let res;
  try {
    res = await train({ recipe, resume: get.bool(flags, 'resume'), stopAfter: get.num(flags, 'stop-after'), signal: ac.signal, native: get.str(flags, 'native') as NativeMode | undefined });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const err = (l: string) => process.stderr.write(l + '\n');
  if (res.status !== 'done') {
    err(`openelm train: ${res.status === 'interrupted' ? 'interrupted' : 'stopped'} after step ${res.step} of ${res.steps}; checkpoint ${res.checkpoint}`);
    err(`continue with: openelm train --recipe ${get.str(flags, 'recipe')} --resume`);
    return res.status === 'interrupted' ? 130 : 0;
  }
  const first = res.firstLoss, last = res.lastLoss;
  err(`done: ${res.step} steps in ${(res.trainMs / 1000).toFixed(0)} s of training; loss ${first?.toFixed(3) ?? '-'} → ${last?.toFixed(3) ?? '-'}` +
    (res.lastValLoss !== undefined ? ` (validation ${res.lastValLoss.toFixed(3)})` : ''));
  err(`checkpoint: ${res.checkpoint}   report: ${res.reportFile}   metrics: ${res.metricsFile}`);
  if (recipe.sample && res.checkpoint) {
    if (!res.checkpoint) throw new OpenELMError('train', 'no checkpoint to sample from');
    // an adapter run's checkpoint is an adapter folder: sample from the base with it merged in
    const loaded = await loadModel(recipe.peft ? recipe.model.init! : res.checkpoint, {
      threads: recipe.threads, native: get.str(flags, 'native') as NativeMode | undefined, tokenizer: loadTokenizer(recipe.model.init),
      adapter: recipe.peft ? res.checkpoint : undefined,
    });
    try {
      const s = recipe.sample;
      const out = await loaded.generate(s.prompt, { maxTokens: s.maxTokens, temperature: s.temperature, topK: s.topK, seed: s.seed, repetitionPenalty: 1 });
      err(`sample from ${res.checkpoint} (temperature ${s.temperature}, top-k ${s.topK}):`);
      process.stdout.write(s.prompt + out.text + '\n');
    } finally {
      loaded.dispose();
    }
  }
  return 0;
}
