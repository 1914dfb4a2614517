import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { JSON_FLAG, printJson, readTextFile, tokenizerFromFlags } from '../common.js';
import { OpenELMError } from '../../core/errors.js';

export const spec: CommandSpec = {
  name: 'tokenize',
  summary: 'encode text with the Llama-2 tokenizer',
  usage: 'openelm tokenize (--text T | --file F) [--bos] [--json]',
  flags: [
    { name: 'text', type: 'string', help: 'text to encode' },
    { name: 'file', type: 'string', help: 'UTF-8 file to encode' },
    { name: 'bos', type: 'bool', help: 'prepend the BOS id (1)' },
    { name: 'eos', type: 'bool', help: 'append the EOS id (2)' },
    { name: 'model', type: 'string', help: 'use this model folder\'s tokenizer.model if it has one, or a GGUF file\'s vocabulary' },
    { name: 'tokenizer', type: 'string', help: 'tokenizer.model file to use' },
    JSON_FLAG,
  ],
};

export async function run(flags: ParsedFlags): Promise<number> {
  const text = get.str(flags, 'text'), file = get.str(flags, 'file');
  if ((text === undefined) === (file === undefined)) throw new OpenELMError('usage', 'give exactly one of --text or --file');
  const input = text ?? readTextFile(file!, 'input file');
  const tok = tokenizerFromFlags(flags, get.str(flags, 'model'));
  const ids = tok.encode(input, { bos: get.bool(flags, 'bos'), eos: get.bool(flags, 'eos') });
  if (get.bool(flags, 'json')) printJson({ ids });
  else process.stdout.write(ids.join(' ') + '\n');
  return 0;
}
