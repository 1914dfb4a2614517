import { tokenizerFromFile } from '../../io/tokenizer-file.js';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readModelConfig } from '../../io/model-folder.js';
import { readPeftAdapter } from '../../io/peft-folder.js';
import { MLX_CONFIG_FILE, MLX_WEIGHTS_FILE, writeMlxAdapter } from '../../io/mlx-adapter.js';
import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { JSON_FLAG, printJson, resolveModelDir } from '../common.js';
import { OpenELMError } from '../../core/errors.js';
import { convertToGGUF, validateGGUFType, GGUF_OUT_TYPES } from '../../convert/to-gguf.js';
import { Tokenizer } from '../../tokenizer/tokenizer.js';

export const spec: CommandSpec = {
  name: 'convert',
  summary: 'convert a model folder to another format (GGUF for llama.cpp), or an adapter to mlx-lm\'s layout',
  usage: 'openelm convert --model DIR --to gguf [--dtype f32|f16|q8_0] --out FILE [--tokenizer FILE] [--json]\n       openelm convert --model DIR --adapter DIR --to mlx-adapter --out DIR [--json]',
  flags: [
    { name: 'model', type: 'string', help: 'model folder (config.json + model.safetensors) or hub id', required: true },
    { name: 'to', type: 'string', help: 'output format: gguf, or mlx-adapter (with --adapter)', default: 'gguf' },
    { name: 'adapter', type: 'string', help: 'with --to mlx-adapter: the PEFT adapter folder to export for mlx-lm' },
    { name: 'dtype', type: 'string', help: 'tensor type of the weights (norms always stay f32)', default: 'f16' },
    { name: 'out', type: 'string', help: 'output file', required: true },
    { name: 'tokenizer', type: 'string', help: 'tokenizer.model whose vocab goes into the file (default: the model folder\'s, else the bundled Llama-2 one)' },
    JSON_FLAG,
  ],
};

export async function run(flags: ParsedFlags): Promise<number> {
  // Format and dtype are checked before touching the model so a typo fails fast with the choices.
  const to = get.str(flags, 'to')!;
  if (to === 'mlx-adapter') return toMlxAdapter(flags);
  if (to !== 'gguf') throw new OpenELMError('usage', `unknown --to "${to}"; choose gguf or mlx-adapter`);
  if (get.str(flags, 'adapter') !== undefined) throw new OpenELMError('usage', '--adapter goes with --to mlx-adapter; to convert an adapted model to GGUF, openelm merge it first');
  const dtype = get.str(flags, 'dtype')!;
  if (!(GGUF_OUT_TYPES as readonly string[]).includes(dtype)) {
    throw new OpenELMError('usage', `unknown --dtype "${dtype}" for gguf; choose one of ${GGUF_OUT_TYPES.join(', ')}`);
  }
  const dir = await resolveModelDir(get.str(flags, 'model')!);
  const tokFile = get.str(flags, 'tokenizer');
  if (tokFile !== undefined && !fs.existsSync(tokFile)) throw new OpenELMError('tokenizer', `tokenizer file ${tokFile} not found`);
  const t0 = performance.now();
  const r = convertToGGUF(dir, get.str(flags, 'out')!, validateGGUFType(dtype), { tokenizer: tokFile ? tokenizerFromFile(tokFile) : undefined });
  const ms = performance.now() - t0;
  if (get.bool(flags, 'json')) {
    printJson({ file: r.file, format: 'gguf', dtype: r.dtype, bytes: r.bytes, tensors: r.tensors, metadata: r.metadata, f16_fallbacks: r.fallbacks, ms: Math.round(ms) });
  } else {
    process.stderr.write(`wrote ${r.file}: GGUF ${r.dtype}, ${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(1)} MB in ${(ms / 1000).toFixed(1)} s` +
      (r.fallbacks.length ? `; ${r.fallbacks.length} tensors kept as f16 (rows not a multiple of 32)` : '') + '\n');
  }
  return 0;
}

/** A PEFT adapter folder in mlx-lm's adapter layout (io/mlx-adapter.ts; docs/adapters.md says what cannot go across). */
async function toMlxAdapter(flags: ParsedFlags): Promise<number> {
  const adapterDir = get.str(flags, 'adapter');
  if (adapterDir === undefined) throw new OpenELMError('usage', '--to mlx-adapter needs --adapter DIR (a PEFT adapter folder)');
  const dir = await resolveModelDir(get.str(flags, 'model')!);
  const out = get.str(flags, 'out')!;
  if (path.resolve(out) === path.resolve(adapterDir)) throw new OpenELMError('usage', `--out ${out} is the --adapter folder; write the mlx-lm adapter somewhere else`);
  const a = readPeftAdapter(adapterDir, readModelConfig(dir));
  writeMlxAdapter(out, readModelConfig(dir), a, get.str(flags, 'model'));
  if (get.bool(flags, 'json')) printJson({ out, format: 'mlx-adapter', files: [MLX_WEIGHTS_FILE, MLX_CONFIG_FILE], modules: a.modules.length });
  else process.stderr.write(`wrote ${out}: mlx-lm adapter (${a.settings.type}, r ${a.settings.r}, ${a.modules.length} modules)\n`);
  return 0;
}
