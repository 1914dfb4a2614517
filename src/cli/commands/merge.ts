import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { JSON_FLAG, printJson, resolveModelDir } from '../common.js';
import { OpenELMError } from '../../core/errors.js';
import { f32ToBf16 } from '../../core/dtype.js';
import { saveCheckpointSync } from '../../io/checkpoint.js';
import { writeFileAtomicSync } from '../../io/atomic.js';
import { writeJsonFileAtomic } from '../../io/json.js';
import { openFloatCheckpoint, readModelConfig } from '../../io/model-folder.js';
import { readPeftAdapter } from '../../io/peft-folder.js';
import { resolveModelFolder } from '../../train/run-folder.js';
import type { TensorToWrite } from '../../io/safetensors.js';
import { mergedSource } from '../../adapters/merge.js';
import { numel, resolveConfig } from '../../model/config.js';
import { paramSpecs } from '../../model/params.js';

export const spec: CommandSpec = {
  name: 'merge',
  summary: 'merge LoRA/DoRA adapters into their base model: a plain HF model folder',
  usage: 'openelm merge --model DIR --adapter DIR [--adapter DIR2 ...] --out DIR [--dtype f32|bf16] [--force] [--json]',
  flags: [
    { name: 'model', type: 'string', help: 'the base model folder (config.json + model.safetensors) or hub id', required: true },
    { name: 'adapter', type: 'string', help: 'the adapter folder (PEFT format: adapter_config.json + adapter_model.safetensors); repeatable: several adapters act together', required: true, repeatable: true },
    { name: 'out', type: 'string', help: 'output folder (created; must not be the model or an adapter folder)', required: true },
    { name: 'dtype', type: 'string', help: 'tensor type of the written weights', default: 'f32', choices: ['f32', 'bf16'] },
    { name: 'force', type: 'bool', help: 'replace --out if it already holds files (never one of the inputs)' },
    JSON_FLAG,
  ],
};

/** Files of the base folder that describe the tokenizer and generation, copied next to the merged weights. */
const SIDE_FILES = ['tokenizer.model', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'generation_config.json'];

export async function run(flags: ParsedFlags): Promise<number> {
  const out = get.str(flags, 'out')!;
  // an adapter run's folder means its latest checkpoint, as --model does
  const adapterDirs = get.list(flags, 'adapter').map((a) => (fs.existsSync(a) ? resolveModelFolder(a) : a));
  const dtype = get.str(flags, 'dtype') === 'bf16' ? 'BF16' : 'F32';
  const dir = await resolveModelDir(get.str(flags, 'model')!);
  for (const [flag, p] of [['--model', dir], ...adapterDirs.map((a) => ['--adapter', a])] as const) {
    const o = path.resolve(out), i = path.resolve(p);
    if (o === i || i.startsWith(o + path.sep) || o.startsWith(i + path.sep)) throw new OpenELMError('usage', `--out ${out} is or holds the ${flag} folder ${p}; write the merged model somewhere else`);
  }
  if (fs.existsSync(out) && !fs.statSync(out).isDirectory()) throw new OpenELMError('usage', `--out ${out} is a file; give a folder`);
  if (fs.existsSync(out) && fs.readdirSync(out).length && !get.bool(flags, 'force')) throw new OpenELMError('usage', `--out ${out} already exists; pass --force to replace it`);
  const c = readModelConfig(dir);
  const adapters = adapterDirs.map((a) => readPeftAdapter(a, c));
  const t0 = performance.now();
  const ck = openFloatCheckpoint(dir, 'merging adapters into it');
  let files: string[];
  let hf: ReturnType<typeof mergedSource>['hfConfig'];
  try {
    const m = mergedSource(ck, c, adapters);
    hf = m.hfConfig;
    const tensors: TensorToWrite[] = paramSpecs(resolveConfig(hf)).map((p) => {
      const v = m.source.readF32(p.name, new Float32Array(numel(p.shape)));
      return { name: p.name, dtype, shape: p.shape, data: dtype === 'F32' ? v : Uint16Array.from(v, (x) => f32ToBf16(x)) };
    });
    fs.mkdirSync(out, { recursive: true });
    files = saveCheckpointSync(out, tensors);
  } finally { ck.close(); }
  writeJsonFileAtomic(path.join(out, 'config.json'), { ...hf, torch_dtype: dtype === 'BF16' ? 'bfloat16' : 'float32' });
  const copied: string[] = [];
  for (const f of SIDE_FILES) {
    const src = path.join(dir, f);
    if (fs.existsSync(src)) { writeFileAtomicSync(path.join(out, f), fs.readFileSync(src)); copied.push(f); }
  }
  const untied = c.tiedEmbeddings && hf.share_input_output_layers === false;
  const ms = performance.now() - t0;
  const described = adapters.map(({ settings: s }) => ({ type: s.type, r: s.r, alpha: s.alpha, rslora: s.rslora, targets: s.targets }));
  if (get.bool(flags, 'json')) {
    printJson({ out, files: [...files.map((f) => path.basename(f)), 'config.json', ...copied], adapter: described[0], adapters: described, untied_head: untied, dtype: dtype.toLowerCase(), ms: Math.round(ms) });
  } else {
    const what = adapters.map((a) => `${a.settings.type} adapter (r ${a.settings.r}, ${a.modules.length} modules)`).join(' + ');
    process.stderr.write(`merged the ${what} into ${dir}: ${out} (${dtype.toLowerCase()}, ${(ms / 1000).toFixed(1)} s)` +
      (untied ? '; the embedding is adapted, so the head is written untied (lm_head.weight = the base embedding, share_input_output_layers: false)' : '') + '\n');
  }
  return 0;
}
