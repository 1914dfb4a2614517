import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { JSON_FLAG, MODEL_FLAGS, SPECULATIVE_FLAGS, loadFromFlags, printJson, speculativeFromFlags } from '../common.js';
import * as fs from 'node:fs';
import { generateStream, type GenerateOptions } from '../../generate/generate.js';
import { OpenELMError, UsageError } from '../../core/errors.js';
import type { ConstraintSpec } from '../../generate/constrain/cache.js';
import { compileGbnf, compileJsonSchema } from '../../generate/constrain/compile.js';
import type { CompiledGrammar } from '../../generate/constrain/grammar.js';
import { GrammarMasker } from '../../generate/constrain/mask.js';
import { tokenizerVocab } from '../../generate/constrain/vocab.js';

export const spec: CommandSpec = {
  name: 'generate',
  summary: 'continue a prompt (greedy by default; the prompt gets BOS)',
  usage: 'openelm generate --model DIR --prompt TEXT [--max-tokens N] [--temperature X] [--top-k K] [--top-p P] [--min-p P] [--repetition-penalty R] [--seed S] [--stop S]... [--json-schema FILE | --grammar FILE] [--draft-model DIR | --lookup] [--json]',
  flags: [
    ...MODEL_FLAGS,
    { name: 'prompt', type: 'string', help: 'prompt text', required: true },
    { name: 'max-tokens', type: 'int', help: 'maximum new tokens', default: 128, min: 0 },
    { name: 'temperature', type: 'float', help: 'sampling temperature; 0 = greedy', default: 0, min: 0 },
    { name: 'top-k', type: 'int', help: 'keep the k most likely tokens (0 = off)', default: 0, min: 0 },
    { name: 'top-p', type: 'float', help: 'nucleus sampling mass (1 = off)', default: 1, min: 0, max: 1 },
    { name: 'min-p', type: 'float', help: 'drop tokens below min-p × the top probability (0 = off)', default: 0, min: 0, max: 1 },
    { name: 'repetition-penalty', type: 'float', help: 'HF repetition penalty (default 1.2 for -Instruct models, else 1)', min: 0 },
    { name: 'seed', type: 'int', help: 'random seed for sampling', min: 0 },
    { name: 'stop', type: 'string', help: 'stop string (repeatable)', repeatable: true },
    { name: 'ignore-eos', type: 'bool', help: 'keep generating past the end-of-sequence token' },
    { name: 'json-schema', type: 'string', help: 'the output is a JSON value of the schema in FILE (docs/structured-output.md lists the keywords); stops when the value is complete' },
    { name: 'grammar', type: 'string', help: 'the output follows the GBNF grammar in FILE (llama.cpp\'s format)' },
    ...SPECULATIVE_FLAGS,
    JSON_FLAG,
  ],
};

function readFlagFile(flag: string, file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new UsageError(`--${flag} ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a folder, not a file' : err.message}`);
  }
}

/** The constraint of --json-schema / --grammar, read before the model loads so a bad file fails fast. */
export function constraintFromFlags(flags: ParsedFlags): ConstraintSpec | undefined {
  const schemaFile = get.str(flags, 'json-schema'), grammarFile = get.str(flags, 'grammar');
  if (schemaFile !== undefined && grammarFile !== undefined) throw new UsageError('--json-schema and --grammar are alternatives; give one');
  if (schemaFile !== undefined) {
    const text = readFlagFile('json-schema', schemaFile);
    try {
      return { kind: 'json_schema', schema: JSON.parse(text) };
    } catch (e) {
      throw new UsageError(`--json-schema ${schemaFile}: not valid JSON (${(e as Error).message})`);
    }
  }
  if (grammarFile !== undefined) return { kind: 'grammar', text: readFlagFile('grammar', grammarFile), source: grammarFile };
  return undefined;
}

export async function run(flags: ParsedFlags): Promise<number> {
  const constraint = constraintFromFlags(flags);
  let grammar: CompiledGrammar | undefined;
  if (constraint) {
    // Compiled before the weights load, so that schema and grammar errors come at once.
    try {
      grammar = constraint.kind === 'json_schema' ? compileJsonSchema(constraint.schema) : constraint.kind === 'grammar' ? compileGbnf(constraint.text, constraint.source) : undefined;
    } catch (e) {
      if (!(e instanceof OpenELMError)) throw e;
      // A grammar error already starts with FILE:LINE:COLUMN.
      throw new UsageError(constraint.kind === 'json_schema' ? `--json-schema ${get.str(flags, 'json-schema')}: ${e.message}` : `--grammar ${e.message}`);
    }
  }
  const loaded = await loadFromFlags(flags);
  const { model, tokenizer, loadMs } = loaded;
  let draft: { dispose(): void } | undefined;
  try {
    const specOpts = await speculativeFromFlags(flags, loaded);
    draft = specOpts.draft;
    const prompt = tokenizer.encode(get.str(flags, 'prompt')!, { bos: true });
    const rp = get.num(flags, 'repetition-penalty') ?? loaded.defaultOptions().repetitionPenalty;
    const opts: GenerateOptions = {
      maxTokens: get.num(flags, 'max-tokens'), temperature: get.num(flags, 'temperature'),
      topK: get.num(flags, 'top-k'), topP: get.num(flags, 'top-p'), minP: get.num(flags, 'min-p'),
      repetitionPenalty: rp, seed: get.num(flags, 'seed'), stop: get.list(flags, 'stop'), ignoreEos: get.bool(flags, 'ignore-eos'),
      constraint: grammar ? new GrammarMasker(grammar, tokenizerVocab(tokenizer)).newMatcher() : undefined,
      speculative: specOpts.options,
    };
    const json = get.bool(flags, 'json');
    const ac = new AbortController();
    const onSig = () => ac.abort();
    process.once('SIGINT', onSig);
    opts.signal = ac.signal;
    const it = generateStream(model, tokenizer, prompt, opts);
    let r = await it.next();
    while (!r.done) {
      if (!json && r.value.text) process.stdout.write(r.value.text);
      r = await it.next();
    }
    process.off('SIGINT', onSig);
    const res = r.value;
    if (json) {
      printJson({ ids: res.ids, text: res.text, prompt_tokens: res.promptTokens, finish_reason: res.finishReason,
        timings: { load_ms: loadMs, ...res.timings }, ...(res.speculative ? { speculative: res.speculative } : {}) });
    } else {
      process.stdout.write('\n');
      const t = res.timings;
      const sp = res.speculative;
      const acc = sp ? `; ${sp.accepted}/${sp.drafted} drafted tokens accepted` : '';
      process.stderr.write(`[${res.promptTokens} prompt tokens, ${t.prompt_per_second.toFixed(1)} tok/s prefill; ${res.ids.length} generated, ${t.predicted_per_second.toFixed(1)} tok/s${acc}; ${res.finishReason}]\n`);
    }
    return 0;
  } finally {
    draft?.dispose();
    loaded.dispose();
  }
}
