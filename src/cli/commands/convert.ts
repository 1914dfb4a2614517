import { tokenizerFromFile } from '../../io/tokenizer-file.js';
import * as fs from 'node:fs';
import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { JSON_FLAG, printJson, resolveModelDir } from '../common.js';
import { OpenELMError } from '../../core/errors.js';
import { convertToGGUF, validateGGUFType, GGUF_OUT_TYPES } from '../../convert/to-gguf.js';

export const spec: CommandSpec = {
  name: 'convert',
  summary: 'convert a model folder to another format (GGUF for llama.cpp)',
  usage: 'openelm convert --model DIR --to gguf [--dtype f32|f16|q8_0] --out FILE [--force] [--tokenizer FILE] [--json]',
  flags: [
    { name: 'model', type: 'string', help: 'model folder (config.json + model.safetensors) or hub id', required: true },
    { name: 'to', type: 'string', help: 'output format', default: 'gguf' },
    { name: 'dtype', type: 'string', help: 'tensor type of the weights (norms always stay f32)', default: 'f16' },
    { name: 'out', type: 'string', help: 'output file (written to a temporary file, then renamed; never one of the input files)', required: true },
    { name: 'force', type: 'bool', help: 'replace --out if it already exists' },
    { name: 'tokenizer', type: 'string', help: 'tokenizer.model whose vocab goes into the file (default: the model folder\'s, else the bundled Llama-2 one)' },
    JSON_FLAG,
  ],
};

export async function run(flags: ParsedFlags): Promise<number> {
  // Format and dtype are checked before touching the model so a typo fails fast with the choices.
  const to = get.str(flags, 'to')!;
  if (to !== 'gguf') throw new OpenELMError('usage', `unknown --to "${to}"; the only supported format is gguf`);
  const dtype = get.str(flags, 'dtype')!;
  if (!(GGUF_OUT_TYPES as readonly string[]).includes(dtype)) {
    throw new OpenELMError('usage', `unknown --dtype "${dtype}" for gguf; choose one of ${GGUF_OUT_TYPES.join(', ')}`);
  }
  const dir = await resolveModelDir(get.str(flags, 'model')!);
  const tokFile = get.str(flags, 'tokenizer');
  if (tokFile !== undefined && !fs.existsSync(tokFile)) throw new OpenELMError('usage', `tokenizer file ${tokFile} not found`);
  const t0 = performance.now();
  const r = convertToGGUF(dir, get.str(flags, 'out')!, validateGGUFType(dtype), {
    tokenizer: tokFile ? tokenizerFromFile(tokFile) : undefined, inputs: tokFile ? [tokFile] : [], overwrite: get.bool(flags, 'force'),
  });
  const ms = performance.now() - t0;
  if (get.bool(flags, 'json')) {
    printJson({ file: r.file, format: 'gguf', dtype: r.dtype, bytes: r.bytes, tensors: r.tensors, metadata: r.metadata, f16_fallbacks: r.fallbacks, ms: Math.round(ms) });
  } else {
    process.stderr.write(`wrote ${r.file}: GGUF ${r.dtype}, ${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(1)} MB in ${(ms / 1000).toFixed(1)} s` +
      (r.fallbacks.length ? `; ${r.fallbacks.length} tensors kept as f16 (rows not a multiple of 32)` : '') + '\n');
  }
  return 0;
}
