import * as fs from 'node:fs';
import * as path from 'node:path';
import { readPeftAdapter } from '../../io/peft-folder.js';
import { MLX_CONFIG_FILE, MLX_WEIGHTS_FILE, writeMlxAdapter } from '../../io/mlx-adapter.js';
import { readModelConfig } from '../../io/model-folder.js';
import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { JSON_FLAG, printJson, resolveModelDir } from '../common.js';
import { OpenELMError } from '../../core/errors.js';
import { convertToGGUF, validateGGUFType, GGUF_OUT_TYPES } from '../../convert/to-gguf.js';
import { loadTokenizer, tokenizerFromFile } from '../../io/tokenizer-file.js';
import { checkOutputFile } from '../../io/output-guard.js';
import { openModelSource, type ModelSource } from '../../formats/source.js';
import { writeHFFolder, type HFDType } from '../../formats/hf.js';
import { QUANT_DTYPES, type QuantDType } from '../../formats/openelm-quant.js';
import { writeQuantizedFolder } from '../../formats/openelm-quant-write.js';
import { createBackend } from '../../backends/index.js';
import { writeMlxFolder, MLX_GROUP_SIZES, type MlxDType } from '../../formats/mlx.js';
import { openCorenetCheckpoint, readModelConfigFile, writeCorenetCheckpoint } from '../../formats/corenet.js';
import { seedRunFromCorenet } from '../../formats/corenet-run.js';
import { loadRecipe } from '../../train/recipe.js';

const TARGETS = ['gguf', 'hf', 'mlx', 'corenet', 'run', 'mlx-adapter'] as const;
type Target = (typeof TARGETS)[number];

export const spec: CommandSpec = {
  name: 'convert',
  summary: 'convert a model between HF, GGUF, MLX and CoreNet (.pt) formats, seed a run from a CoreNet training state, or export an adapter for mlx-lm',
  usage: [
    'openelm convert --model SRC --to gguf [--dtype f32|f16|q8_0|q4_0] --out FILE.gguf',
    '       openelm convert --model SRC --to hf [--dtype auto|f32|bf16|f16|q8|q4] --out DIR',
    '       openelm convert --model SRC --to mlx [--q-bits 4|8 --q-group-size 64] [--dtype auto|f32|bf16|f16] --out DIR',
    '       openelm convert --model SRC --to corenet [--dtype auto|f32|bf16|f16] [--pad-from CKPT.pt] --out CKPT.pt',
    '       openelm convert --model TRAINING.pt --config CORENET.yaml --to run --recipe RECIPE.yaml',
    '       openelm convert --model BASE --adapter PEFT_DIR --to mlx-adapter --out DIR',
    '  SRC: an HF folder or hub id, an MLX folder, a .gguf file, or a CoreNet .pt (with --config)',
  ].join('\n'),
  flags: [
    { name: 'model', type: 'string', help: 'source model: folder, hub id, .gguf or .pt', required: true },
    { name: 'to', type: 'string', help: 'output format', default: 'gguf', choices: TARGETS },
    { name: 'adapter', type: 'string', help: 'mlx-adapter: the PEFT adapter folder to export in mlx-lm\'s layout' },
    { name: 'out', type: 'string', help: 'output file (gguf, corenet) or folder (hf, mlx)' },
    { name: 'dtype', type: 'string', help: 'tensor type: gguf f32|f16|q8_0|q4_0 (default f16; q4_0 keeps the embedding in q5_0); hf/mlx/corenet auto|f32|bf16|f16 (default auto: as stored); hf also q8|q4 (a pre-quantized folder: --dtype q8|q4 blocks as a load makes them, loaded without fitting)' },
    { name: 'config', type: 'string', help: 'for a .pt source: its CoreNet training YAML (model_name gives the size) or an HF config.json' },
    { name: 'q-bits', type: 'int', help: 'mlx: quantize linear layers and the embedding to this many bits (4 or 8)' },
    { name: 'q-group-size', type: 'int', help: 'mlx: values per quantization group (32, 64 or 128)', default: 64 },
    { name: 'pad-from', type: 'string', help: 'corenet: take the embedding rows past the vocabulary from this CoreNet .pt (default zeros)' },
    { name: 'recipe', type: 'string', help: 'run: the recipe whose out_dir receives the seeded checkpoint' },
    { name: 'tokenizer', type: 'string', help: 'tokenizer.model to embed (gguf) or copy (mlx) (default: the model\'s, else the bundled Llama-2 one)' },
    { name: 'force', type: 'bool', help: 'replace --out if it already exists (never one of the inputs)' },
    JSON_FLAG,
  ],
};

function dtypeFor(flags: ParsedFlags, to: Target): HFDType | undefined {
  const d = get.str(flags, 'dtype');
  if (d === undefined || d === 'auto' || (to === 'hf' && (QUANT_DTYPES as readonly string[]).includes(d))) return undefined;
  const ok = ['f32', 'bf16', 'f16', ...(to === 'hf' ? QUANT_DTYPES : [])];
  if (!ok.includes(d)) throw new OpenELMError('usage', `unknown --dtype "${d}" for ${to}; choose one of auto, ${ok.join(', ')}`);
  return d.toUpperCase() as HFDType;
}

/** An output folder must not be (or hold, or sit inside) the input, and an existing one is replaced only with --force. */
function checkOutFolder(out: string, input: string, force: boolean): void {
  const o = path.resolve(out), i = path.resolve(input);
  if (o === i || i.startsWith(o + path.sep) || o.startsWith(i + path.sep)) throw new OpenELMError('usage', `--out ${out} is or holds the input ${input}; choose another folder`);
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new OpenELMError('usage', `--out ${out} is a file; give a folder`);
  if (fs.existsSync(out) && fs.readdirSync(out).length && !force) throw new OpenELMError('usage', `--out ${out} already exists; pass --force to replace it`);
  const parent = path.dirname(o);
  if (!fs.existsSync(parent)) throw new OpenELMError('usage', `output folder ${parent} does not exist`);
}

export async function run(flags: ParsedFlags): Promise<number> {
  // Format, dtype and flag combinations are checked before touching the model so a typo fails fast.
  const to = get.str(flags, 'to') as Target;
  const out = get.str(flags, 'out');
  const json = get.bool(flags, 'json');
  if (to === 'mlx-adapter') return toMlxAdapter(flags);
  if (get.str(flags, 'adapter') !== undefined) throw new OpenELMError('usage', '--adapter goes with --to mlx-adapter; to convert an adapted model, openelm merge it first');
  if (to !== 'run' && out === undefined) throw new OpenELMError('usage', '--out is required');
  const qBits = get.num(flags, 'q-bits');
  if (qBits !== undefined && to !== 'mlx') throw new OpenELMError('usage', '--q-bits only applies to --to mlx');
  if (qBits !== undefined && qBits !== 4 && qBits !== 8) throw new OpenELMError('usage', `--q-bits must be 4 or 8, got ${qBits}`);
  const groupSize = get.num(flags, 'q-group-size')!;
  if (!(MLX_GROUP_SIZES as readonly number[]).includes(groupSize)) throw new OpenELMError('usage', `--q-group-size must be one of ${MLX_GROUP_SIZES.join(', ')}, got ${groupSize}`);
  if (get.str(flags, 'pad-from') !== undefined && to !== 'corenet') throw new OpenELMError('usage', '--pad-from only applies to --to corenet');
  if (get.str(flags, 'recipe') !== undefined && to !== 'run') throw new OpenELMError('usage', '--recipe only applies to --to run');
  const tokFile = get.str(flags, 'tokenizer');
  if (tokFile !== undefined && !fs.existsSync(tokFile)) throw new OpenELMError('usage', `tokenizer file ${tokFile} not found`);
  const force = get.bool(flags, 'force');
  const configFile = get.str(flags, 'config');
  if (configFile !== undefined && !fs.existsSync(configFile)) throw new OpenELMError('usage', `--config ${configFile} does not exist`);

  const t0 = performance.now();
  const done = (obj: Record<string, unknown>, line: string) => {
    const ms = Math.round(performance.now() - t0);
    if (json) printJson({ ...obj, ms });
    else process.stderr.write(`${line} in ${(ms / 1000).toFixed(1)} s\n`);
    return 0;
  };

  if (to === 'gguf') {
    const dtype = get.str(flags, 'dtype') ?? 'f16';
    if (!(GGUF_OUT_TYPES as readonly string[]).includes(dtype)) {
      throw new OpenELMError('usage', `unknown --dtype "${dtype}" for gguf; choose one of ${GGUF_OUT_TYPES.join(', ')}`);
    }
    const dir = await resolveModelDir(get.str(flags, 'model')!);
    const r = convertToGGUF(dir, out!, validateGGUFType(dtype), {
      tokenizer: tokFile ? tokenizerFromFile(tokFile) : undefined, config: configFile, overwrite: force, inputs: tokFile ? [tokFile] : [],
    });
    return done({ file: r.file, format: 'gguf', dtype: r.dtype, bytes: r.bytes, tensors: r.tensors, metadata: r.metadata, f16_fallbacks: r.fallbacks },
      `wrote ${r.file}: GGUF ${r.dtype}, ${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(1)} MB` +
      (r.fallbacks.length ? `; ${r.fallbacks.length} tensors kept as f16 (rows not a multiple of 32)` : ''));
  }

  const dtype = dtypeFor(flags, to);
  const model = await resolveModelDir(get.str(flags, 'model')!);

  if (to === 'run') {
    const recipeFile = get.str(flags, 'recipe');
    if (!recipeFile) throw new OpenELMError('usage', '--to run needs --recipe (the run to continue)');
    if (!configFile) throw new OpenELMError('usage', `${model}: pass --config with its CoreNet YAML (or an HF config.json)`);
    const recipe = loadRecipe(recipeFile);
    const ck = openCorenetCheckpoint(model, configFile);
    try {
      const tok = tokFile ? tokenizerFromFile(tokFile) : loadTokenizer(recipe.model.init);
      const r = await seedRunFromCorenet(ck, recipe, tok);
      if (!json) for (const d of r.differences) process.stderr.write(`note: the recipe's ${d} is used from here on\n`);
      return done({ checkpoint: r.dir, step: r.step, iterations: r.iterations, differences: r.differences },
        `seeded ${r.dir} at step ${r.step} (CoreNet iterations ${r.iterations}); continue with: openelm train --recipe ${recipeFile} --resume`);
    } finally {
      ck.source.close();
    }
  }

  if (to === 'hf' || to === 'mlx') checkOutFolder(out!, model, force);
  else {
    const inputs = [model, configFile, get.str(flags, 'pad-from'), tokFile].filter((x): x is string => x !== undefined);
    const own = fs.statSync(model).isDirectory() ? fs.readdirSync(model).map((f) => path.join(model, f)) : [];
    checkOutputFile(out!, { inputs: [...inputs, ...own], overwrite: force });
  }
  const src: ModelSource = openModelSource(model, { config: configFile });
  try {
    const quant = get.str(flags, 'dtype');
    if (to === 'hf' && (QUANT_DTYPES as readonly string[]).includes(quant!)) {
      // quantized by the load itself, on the backend every user has (same bytes on every backend)
      const be = await createBackend('wasm', { native: 'off' });
      try {
        const r = writeQuantizedFolder(src.reader, src.config, out!, quant as QuantDType, be);
        return done({ dir: out, format: 'hf', source: src.format, dtypes: [quant], bytes: r.bytes, files: r.files.map((f) => path.basename(f)) },
          `wrote ${out}: pre-quantized ${quant} folder from ${src.format}, ${(r.bytes / 1e6).toFixed(1)} MB`);
      } finally {
        be.dispose();
      }
    }
    if (to === 'hf') {
      const r = writeHFFolder(src.reader, src.config, out!, dtype);
      return done({ dir: out, format: 'hf', source: src.format, dtypes: r.dtypes, files: r.files.map((f) => path.basename(f)) },
        `wrote ${out}: HF folder (${r.dtypes.join('/')}) from ${src.format}`);
    }
    if (to === 'mlx') {
      const folder = fs.statSync(model).isDirectory() ? model : undefined;
      const tokenizerFile = tokFile ?? (folder && fs.existsSync(path.join(folder, 'tokenizer.model')) ? path.join(folder, 'tokenizer.model') : undefined);
      const r = writeMlxFolder(src.reader, src.config, out!, {
        quantization: qBits !== undefined ? { bits: qBits, groupSize } : undefined, dtype: dtype as MlxDType | undefined, tokenizerFile,
      });
      return done({ dir: out, format: 'mlx', bits: qBits ?? null, group_size: qBits !== undefined ? groupSize : null, quantized: r.quantized.length, unquantized: r.unquantized, bytes: r.bytes },
        `wrote ${out}: MLX folder${qBits !== undefined ? `, ${qBits}-bit (group ${groupSize}) for ${r.quantized.length} tensors` + (r.unquantized.length ? `, ${r.unquantized.length} kept unquantized (width not a multiple of ${groupSize})` : '') : ''}, ${(r.bytes / 1e6).toFixed(1)} MB`);
    }
    // corenet
    const padFile = get.str(flags, 'pad-from');
    const pad = padFile ? openCorenetCheckpoint(padFile, configFile ?? padConfigHint(padFile)) : src.corenet;
    try {
      // Embedding rows: the pad source's, else the CoreNet YAML's vocab_size, else 32128 for the released vocabulary.
      const rows = pad?.embeddingRows ?? (configFile && /\.ya?ml$/i.test(configFile) ? readModelConfigFile(configFile).corenetVocab : undefined);
      const bytes = writeCorenetCheckpoint(src.reader, src.config, out!, { padFrom: pad, dtype, rows });
      return done({ file: out, format: 'corenet', bytes }, `wrote ${out}: CoreNet weights-only checkpoint, ${(bytes / 1e6).toFixed(1)} MB`);
    } finally {
      if (padFile) pad?.source.close();
    }
  } finally {
    src.close();
  }
}

function padConfigHint(padFile: string): never {
  throw new OpenELMError('usage', `--pad-from ${padFile} needs --config (its CoreNet YAML or an HF config.json)`);
}

/** A PEFT adapter folder in mlx-lm's adapter layout (io/mlx-adapter.ts; docs/adapters.md says what cannot go across). */
async function toMlxAdapter(flags: ParsedFlags): Promise<number> {
  const adapterDir = get.str(flags, 'adapter');
  if (adapterDir === undefined) throw new OpenELMError('usage', '--to mlx-adapter needs --adapter DIR (a PEFT adapter folder)');
  const dir = await resolveModelDir(get.str(flags, 'model')!);
  const out = get.str(flags, 'out');
  if (out === undefined) throw new OpenELMError('usage', '--out is required');
  checkOutFolder(out, adapterDir, get.bool(flags, 'force'));
  const a = readPeftAdapter(adapterDir, readModelConfig(dir));
  writeMlxAdapter(out, readModelConfig(dir), a, get.str(flags, 'model'));
  if (get.bool(flags, 'json')) printJson({ out, format: 'mlx-adapter', files: [MLX_WEIGHTS_FILE, MLX_CONFIG_FILE], modules: a.modules.length });
  else process.stderr.write(`wrote ${out}: mlx-lm adapter (${a.settings.type}, r ${a.settings.r}, ${a.modules.length} modules)\n`);
  return 0;
}
