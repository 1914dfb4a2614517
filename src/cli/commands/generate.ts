import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { JSON_FLAG, MODEL_FLAGS, SPECULATIVE_FLAGS, loadFromFlags, printJson, speculativeFromFlags } from '../common.js';
import { generateStream, type GenerateOptions } from '../../generate/generate.js';

export const spec: CommandSpec = {
  name: 'generate',
  summary: 'continue a prompt (greedy by default; the prompt gets BOS)',
  usage: 'openelm generate --model DIR --prompt TEXT [--max-tokens N] [--temperature X] [--top-k K] [--top-p P] [--min-p P] [--repetition-penalty R] [--seed S] [--stop S]... [--draft-model DIR | --lookup] [--json]',
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
    ...SPECULATIVE_FLAGS,
    JSON_FLAG,
  ],
};

export async function run(flags: ParsedFlags): Promise<number> {
  const loaded = await loadFromFlags(flags);
  const { model, tokenizer, loadMs } = loaded;
  let draft: { dispose(): void } | undefined;
  try {
    const spec = await speculativeFromFlags(flags, loaded);
    draft = spec.draft;
    const prompt = tokenizer.encode(get.str(flags, 'prompt')!, { bos: true });
    const rp = get.num(flags, 'repetition-penalty') ?? loaded.defaultOptions().repetitionPenalty;
    const opts: GenerateOptions = {
      maxTokens: get.num(flags, 'max-tokens'), temperature: get.num(flags, 'temperature'),
      topK: get.num(flags, 'top-k'), topP: get.num(flags, 'top-p'), minP: get.num(flags, 'min-p'),
      repetitionPenalty: rp, seed: get.num(flags, 'seed'), stop: get.list(flags, 'stop'), ignoreEos: get.bool(flags, 'ignore-eos'),
      speculative: spec.options,
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
