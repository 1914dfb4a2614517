// Flags and helpers shared by the commands that load a model.

import * as fs from 'node:fs';
import type { FlagSpec, ParsedFlags } from './args.js';
import { get } from './args.js';
import type { Backend } from '../backends/backend.js';
import { createBackend, BACKEND_NAMES, NATIVE_MODES, type BackendName, type NativeMode } from '../backends/index.js';
import { OpenELMError } from '../core/errors.js';
import { loadModel, validateDType, type LoadDType } from '../model/load.js';
import type { OpenELM } from '../model/openelm.js';
import { loadTokenizer } from '../tokenizer/load.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { resolveModelFolder } from '../train/run-folder.js';

/** --native: the optional native sgemm for prefill/training (npm run build:native). */
export const NATIVE_FLAG: FlagSpec = {
  name: 'native', type: 'string', help: 'native sgemm for prefill and training: auto (when built and a BLAS loads), on, off', default: 'auto', choices: [...NATIVE_MODES],
};

export const MODEL_FLAGS: FlagSpec[] = [
  { name: 'model', type: 'string', help: 'model folder (config.json + model.safetensors), training run folder (its latest checkpoint) or hub id', required: true },
  { name: 'dtype', type: 'string', help: 'weight storage: auto keeps the checkpoint precision', default: 'auto', choices: ['auto', 'f32', 'bf16', 'f16', 'q8', 'q4'] },
  { name: 'threads', type: 'int', help: 'compute threads (default: all cores)', min: 1 },
  { name: 'backend', type: 'string', help: 'compute backend', default: 'auto', choices: ['auto', 'wasm', 'js'] },
  NATIVE_FLAG,
  { name: 'tokenizer', type: 'string', help: 'tokenizer.model to use (default: the model folder\'s, else the bundled Llama-2 one)' },
];

export const JSON_FLAG: FlagSpec = { name: 'json', type: 'bool', help: 'print one JSON object on stdout and nothing else' };

export async function makeBackend(name: string, threads: number | undefined, native: string = 'auto'): Promise<Backend> {
  if (!(BACKEND_NAMES as readonly string[]).includes(name)) throw new OpenELMError('usage', `unknown backend "${name}"; choose one of ${BACKEND_NAMES.join(', ')}`);
  return createBackend(name as BackendName, { threads, native: native as NativeMode });
}

/** Resolve --model to a local folder; a hub id (org/name) that is not a local path is downloaded. */
export async function resolveModelDir(model: string): Promise<string> {
  if (fs.existsSync(model)) return resolveModelFolder(model, (m) => process.stderr.write(`openelm: ${m}\n`));
  if (/^[\w.-]+\/[\w.-]+$/.test(model)) {
    const hub = await import('../hub/index.js');
    const { stderrProgress } = await import('../hub/progress.js');
    try {
      return await hub.ensureModel(model, { onProgress: stderrProgress(), onWarning: (m) => process.stderr.write(`openelm: ${m}\n`) });
    } catch (e) {
      if (e instanceof OpenELMError) throw e;
      throw new OpenELMError('hub', `could not download ${model}: ${(e as Error).message}`);
    }
  }
  throw new OpenELMError('usage', `model folder ${model} does not exist`);
}

export interface Loaded { model: OpenELM; tokenizer: Tokenizer; dir: string; backend: Backend; loadMs: number; }

export async function loadFromFlags(flags: ParsedFlags): Promise<Loaded> {
  const dtype: LoadDType = validateDType(get.str(flags, 'dtype') ?? 'auto');
  const dir = await resolveModelDir(get.str(flags, 'model')!);
  const backend = await makeBackend(get.str(flags, 'backend') ?? 'auto', get.num(flags, 'threads'), get.str(flags, 'native') ?? 'auto');
  const t0 = performance.now();
  try {
    const model = loadModel(dir, { dtype, backend });
    const tokenizer = tokenizerFromFlags(flags, dir);
    return { model, tokenizer, dir, backend, loadMs: performance.now() - t0 };
  } catch (e) {
    backend.dispose();
    throw e;
  }
}

export function printJson(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

export function readTextFile(file: string, what: string): string {
  if (!fs.existsSync(file)) throw new OpenELMError('usage', `${what} ${file} does not exist`);
  if (!fs.statSync(file).isFile()) throw new OpenELMError('usage', `${what} ${file} is not a file`);
  return fs.readFileSync(file, 'utf8');
}

export function tokenizerFromFlags(flags: ParsedFlags, modelDir?: string): Tokenizer {
  const file = get.str(flags, 'tokenizer');
  if (file !== undefined) {
    if (!fs.existsSync(file)) throw new OpenELMError('usage', `tokenizer file ${file} not found`);
    return Tokenizer.fromFile(file);
  }
  if (modelDir !== undefined && !fs.existsSync(modelDir)) throw new OpenELMError('usage', `model folder ${modelDir} does not exist`);
  return loadTokenizer(modelDir);
}
