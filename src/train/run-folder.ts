// A training run folder (a recipe's out_dir) used where a model folder is expected: `--model
// runs/quickstart` means the run's newest checkpoint, the step folder its `latest` file names (else
// the highest complete step folder). Kept free of heavy imports: every model-loading path calls it.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';

export const LATEST_FILE = 'latest';
const STEP_RE = /^step-\d{8}$/;

const isFile = (p: string) => { try { return fs.statSync(p).isFile(); } catch { return false; } };

/** A complete checkpoint folder: its last-written file is in place. */
export function isCompleteCheckpoint(dir: string): boolean {
  return isFile(path.join(dir, 'trainer_state.json'));
}

/** Complete step folders in a run folder, oldest first. */
export function stepFolders(runDir: string): string[] {
  let names: string[];
  try { names = fs.readdirSync(runDir); } catch { return []; }
  return names.filter((n) => STEP_RE.test(n) && isCompleteCheckpoint(path.join(runDir, n))).sort();
}

/** The step folder `latest` names, if it is complete. */
export function latestNamed(runDir: string): string | null {
  let name: string;
  try { name = fs.readFileSync(path.join(runDir, LATEST_FILE), 'utf8').trim(); } catch { return null; }
  return STEP_RE.test(name) && isCompleteCheckpoint(path.join(runDir, name)) ? path.join(runDir, name) : null;
}

/** The newest checkpoint folder of a run: the one `latest` names, else the highest complete step folder. */
export function latestCheckpointOf(runDir: string): string | null {
  const named = latestNamed(runDir);
  if (named) return named;
  const all = stepFolders(runDir);
  return all.length ? path.join(runDir, all[all.length - 1]) : null;
}

/** Is `dir` a training run folder rather than a model folder? */
export function isRunFolder(dir: string): boolean {
  if (isFile(path.join(dir, 'config.json'))) return false;
  if (isFile(path.join(dir, LATEST_FILE))) return true;
  try { return fs.readdirSync(dir).some((n) => STEP_RE.test(n)); } catch { return false; }
}

/**
 * `dir` itself, or for a training run folder its newest checkpoint (`onNote` hears which). A run
 * folder without a complete checkpoint is an error naming it.
 */
export function resolveModelFolder(dir: string, onNote?: (message: string) => void): string {
  if (!isRunFolder(dir)) return dir;
  const ck = latestCheckpointOf(dir);
  if (!ck) throw new OpenELMError('model', `${dir} is a training run folder without a complete checkpoint yet`);
  onNote?.(`${dir} is a training run; using its latest checkpoint ${ck}`);
  return ck;
}
