import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { JSON_FLAG, printJson, tokenizerFromFlags } from '../common.js';
import { OpenELMError } from '../../core/errors.js';

export const spec: CommandSpec = {
  name: 'detokenize',
  summary: 'decode token ids to text',
  usage: 'openelm detokenize --ids 1,2,3 [--json]',
  flags: [
    { name: 'ids', type: 'string', help: 'comma- or space-separated token ids', required: true },
    { name: 'model', type: 'string', help: 'use this model folder\'s tokenizer.model if it has one, or a GGUF file\'s vocabulary' },
    { name: 'tokenizer', type: 'string', help: 'tokenizer.model file to use' },
    JSON_FLAG,
  ],
};

export async function run(flags: ParsedFlags): Promise<number> {
  const raw = get.str(flags, 'ids')!.trim();
  const parts = raw === '' ? [] : raw.split(/[\s,]+/);
  const tok = tokenizerFromFlags(flags, get.str(flags, 'model'));
  const ids = parts.map((p) => {
    const n = Number(p);
    if (!/^\d+$/.test(p) || n >= tok.vocabSize) throw new OpenELMError('usage', `--ids: "${p}" is not a token id in [0, ${tok.vocabSize})`);
    return n;
  });
  const text = tok.decode(ids);
  if (get.bool(flags, 'json')) printJson({ text });
  else process.stdout.write(text + '\n');
  return 0;
}
