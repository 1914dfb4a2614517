import { tokenizerFromFile } from '../io/tokenizer-file.js';
// Flags and helpers shared by the commands that load a model. Loading itself goes through the
// library's front door (api.ts loadModel), so the CLI and the library cannot drift apart.

import * as fs from 'node:fs';
import type { FlagSpec, ParsedFlags } from './args.js';
import { get } from './args.js';
import { ADAPTER_NAME_RE, loadModel, resolveModelSource, type LoadedModel, type LoadModelOptions } from '../api.js';
import { NATIVE_MODES, backendNames } from '../backends/index.js';
import { OpenELMError } from '../core/errors.js';
import { validateDType } from '../model/load.js';
import { loadTokenizer } from '../io/tokenizer-file.js';
import { modelTokenizer } from '../formats/source.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { stderrProgress } from '../hub/progress.js';
import type { SpeculativeOptions } from '../generate/speculative.js';

/** --native: the optional native sgemm for prefill/training (npm run build:native). */
export const NATIVE_FLAG: FlagSpec = {
  name: 'native', type: 'string', help: 'native sgemm for prefill and training: auto (when built and a BLAS loads), on, off', default: 'auto', choices: [...NATIVE_MODES],
};

export const MODEL_FLAGS: FlagSpec[] = [
  { name: 'model', type: 'string', help: 'model folder (config.json + model.safetensors, or MLX), GGUF file, training run folder (its latest checkpoint) or hub id', required: true },
  { name: 'dtype', type: 'string', help: 'weight storage: auto keeps the checkpoint precision', default: 'auto', choices: ['auto', 'f32', 'bf16', 'f16', 'q8', 'q4'] },
  { name: 'threads', type: 'int', help: 'compute threads (default: all cores)', min: 1 },
  { name: 'backend', type: 'string', help: 'compute backend', default: 'auto', choices: backendNames() },
  NATIVE_FLAG,
  { name: 'exact-blocks', type: 'bool', help: 'GGUF block weights: exact f32 products instead of int8 activations in decode (Q8_0/Q4_0/Q4_K/Q6_K) and prompts (Q8_0/Q4_0) (slower)' },
  { name: 'tokenizer', type: 'string', help: 'tokenizer.model to use (default: the model folder\'s, else the bundled Llama-2 one)' },
  { name: 'adapter', type: 'string', help: 'a LoRA/DoRA adapter folder (PEFT format: a checkpoint of a peft run, or the run folder for its latest) merged into the model on load (repeatable: several adapters act together)', repeatable: true },
];

/** Speculative decoding (generate, chat, serve). */
export const SPECULATIVE_FLAGS: FlagSpec[] = [
  { name: 'draft-model', type: 'string', help: 'speculative decoding: a smaller model with the same tokenizer drafts tokens (folder or hub id; loaded with --dtype)' },
  { name: 'lookup', type: 'bool', help: 'speculative decoding: draft by prompt lookup (the tokens that followed the last n-gram earlier in the text)' },
  { name: 'draft-max', type: 'int', help: 'most tokens drafted per step', default: 3, min: 1, max: 7 },
];

/**
 * The speculative options the flags ask for (none without --draft-model or --lookup); a draft
 * model is loaded onto the model's backend. `draft` is that model, to dispose with it.
 */
export async function speculativeFromFlags(flags: ParsedFlags, loaded: LoadedModel): Promise<{ options?: SpeculativeOptions; draft?: LoadedModel }> {
  const draftArg = get.str(flags, 'draft-model'), lookup = get.bool(flags, 'lookup');
  if (draftArg !== undefined && lookup) throw new OpenELMError('usage', '--draft-model and --lookup are two ways to draft: give one');
  if (draftArg === undefined && !lookup) return {};
  const maxDraft = get.num(flags, 'draft-max');
  if (lookup) return { options: { lookup: true, maxDraft } };
  // --adapter belongs to the model, not to the draft (another base).
  const draft = await loadModel(draftArg!, { ...loadOptionsFromFlags(flags), adapter: undefined, adapters: undefined, backend: loaded.backend });
  if (draft.config.vocabSize !== loaded.config.vocabSize) {
    draft.dispose();
    throw new OpenELMError('usage', `--draft-model ${draftArg} has a vocabulary of ${draft.config.vocabSize} tokens but the model's has ${loaded.config.vocabSize}; the draft must share the tokenizer`);
  }
  return { options: { draftModel: draft, maxDraft }, draft };
}

export const JSON_FLAG: FlagSpec = { name: 'json', type: 'bool', help: 'print one JSON object on stdout and nothing else' };

const hubCallbacks = () => ({ onProgress: stderrProgress(), onWarning: (m: string) => process.stderr.write(`openelm: ${m}\n`) });

/** Resolve --model to a local folder; a hub id (org/name) that is not a local path is downloaded. */
export function resolveModelDir(model: string): Promise<string> {
  return resolveModelSource(model, hubCallbacks());
}

/**
 * --adapter values: NAME=DIR is a named adapter applied per request (serve), anything else a
 * folder merged at load. A value that is an existing path stays a folder even if it holds "=".
 */
export function splitAdapterFlags(values: readonly string[]): { merged: string[]; named: Record<string, string> } {
  const merged: string[] = [], named: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    const name = eq > 0 ? v.slice(0, eq) : '';
    if (!name || !ADAPTER_NAME_RE.test(name) || fs.existsSync(v)) { merged.push(v); continue; }
    if (Object.hasOwn(named, name)) throw new OpenELMError('usage', `--adapter ${name}=… is given twice; each named adapter needs its own name`);
    const dir = v.slice(eq + 1);
    if (!dir) throw new OpenELMError('usage', `--adapter ${v} names no folder; give NAME=DIR`);
    named[name] = dir;
  }
  return { merged, named };
}

/** loadModel's options from the MODEL_FLAGS (and --chat-template where a command has it). */
export function loadOptionsFromFlags(flags: ParsedFlags, opts: { namedAdapters?: boolean } = {}): LoadModelOptions {
  const file = get.str(flags, 'tokenizer');
  const { merged, named } = splitAdapterFlags(get.list(flags, 'adapter'));
  const names = Object.keys(named);
  if (names.length && !opts.namedAdapters) {
    throw new OpenELMError('usage', `--adapter ${names[0]}=DIR (an adapter chosen per request) is for openelm serve; here give the adapter folder alone to merge it`);
  }
  if (file !== undefined && !fs.existsSync(file)) throw new OpenELMError('usage', `tokenizer file ${file} not found`);
  return {
    dtype: validateDType(get.str(flags, 'dtype') ?? 'auto'),
    backend: get.str(flags, 'backend') ?? 'auto',
    threads: get.num(flags, 'threads'),
    native: (get.str(flags, 'native') ?? 'auto') as 'auto' | 'on' | 'off',
    ...(get.bool(flags, 'exact-blocks') ? { exactBlocks: true } : {}),
    tokenizer: file,
    chatTemplate: get.str(flags, 'chat-template'),
    adapter: merged,
    ...(names.length ? { adapters: named } : {}),
    ...hubCallbacks(),
  };
}

/** The model the flags name, through the library's loadModel. */
export function loadFromFlags(flags: ParsedFlags): Promise<LoadedModel> {
  return loadModel(get.str(flags, 'model')!, loadOptionsFromFlags(flags));
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
    return tokenizerFromFile(file);
  }
  if (modelDir === undefined) return loadTokenizer();
  if (!fs.existsSync(modelDir)) throw new OpenELMError('usage', `model folder ${modelDir} does not exist`);
  return modelTokenizer(modelDir);
}
