// Tiny training recipes (2 layers, dim 32, a few steps on tiny Shakespeare) in their own temp
// folders, for tests that need real runs: report comparison, TensorBoard files, in-loop evaluation.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRecipe, type Recipe } from '../../src/train/recipe.js';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const SHAKES = path.join(REPO, 'data/corpus/tinyshakespeare.txt');

export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let n = 0;
/** A tiny recipe written to `<root>/<name>/recipe.yaml` (out_dir `<root>/<name>/out`); `over` replaces top-level keys. */
export function tinyRecipe(root: string, over: Record<string, unknown> = {}, name = `run${n++}`): Recipe {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  const raw = {
    model: { config: { num_transformer_layers: 2, model_dim: 32, head_dim: 8, num_gqa_groups: 2, ffn_dim_divisor: 32 } },
    seed: 3,
    data: { train: [{ path: SHAKES }], valid_fraction: 0.05, eval_batches: 2 },
    seq_len: 16, batch_size: 2, grad_accum: 2, steps: 8,
    pipeline: { mode: 'pack', split_words: 256, min_chars: 100, min_tokens: 32, shuffle_buffer: 16 },
    optimizer: { lr: 3e-3 }, schedule: { warmup_steps: 2 },
    out_dir: path.join(dir, 'out'), log_every: 2, eval_every: 4, checkpoint_every: 4,
    ...over,
  };
  const file = path.join(dir, 'recipe.yaml');
  fs.writeFileSync(file, JSON.stringify(raw));
  return parseRecipe(raw, file);
}
