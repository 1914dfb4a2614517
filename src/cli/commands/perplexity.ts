import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { JSON_FLAG, MODEL_FLAGS, loadFromFlags, printJson, readTextFile } from '../common.js';
import { scoreTokens } from '../../generate/score.js';
import { OpenELMError } from '../../core/errors.js';

export const spec: CommandSpec = {
  name: 'perplexity',
  summary: 'perplexity of a text file (BOS + text, scored in non-overlapping windows)',
  usage: 'openelm perplexity --model DIR --file F [--context N] [--json]',
  flags: [
    ...MODEL_FLAGS,
    { name: 'file', type: 'string', help: 'UTF-8 text file', required: true },
    { name: 'context', type: 'int', help: 'window length in tokens', default: 2048, min: 2 },
    JSON_FLAG,
  ],
};

export async function run(flags: ParsedFlags): Promise<number> {
  const text = readTextFile(get.str(flags, 'file')!, 'input file');
  const { model, tokenizer, backend } = await loadFromFlags(flags);
  try {
    const ctx = get.num(flags, 'context')!;
    if (ctx > model.config.maxContextLength) {
      throw new OpenELMError('context', `--context ${ctx} is longer than the model's context (${model.config.maxContextLength} tokens)`);
    }
    const ids = tokenizer.encode(text, { bos: true });
    if (ids.length < 2) throw new OpenELMError('usage', 'the file has no text to score');
    let nll = 0, n = 0;
    const t0 = performance.now();
    for (let s = 0; s < ids.length; s += ctx) {
      const win = ids.slice(s, s + ctx);
      if (win.length < 2) break;
      const { logprobs } = scoreTokens(model, win);
      for (const lp of logprobs) { nll -= lp; n++; }
      if (!get.bool(flags, 'json')) process.stderr.write(`\r[${Math.min(ids.length, s + ctx)}/${ids.length} tokens] ppl ${Math.exp(nll / n).toFixed(4)}`);
    }
    const res = { tokens: n, nll: nll / n, ppl: Math.exp(nll / n), seconds: (performance.now() - t0) / 1000 };
    if (get.bool(flags, 'json')) printJson(res);
    else process.stderr.write(`\ntokens ${res.tokens}  nll ${res.nll.toFixed(6)}  ppl ${res.ppl.toFixed(4)}\n`);
    return 0;
  } finally {
    backend.dispose();
  }
}
