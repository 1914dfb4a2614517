import * as fs from 'node:fs';
import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { JSON_FLAG, printJson } from '../common.js';
import { OpenELMError } from '../../core/errors.js';
import { averageCheckpoints } from '../../formats/corenet.js';

export const spec: CommandSpec = {
  name: 'average',
  summary: 'average CoreNet .pt checkpoints as CoreNet does (float64 mean, cast back to each tensor\'s dtype)',
  usage: 'openelm average CKPT.pt CKPT.pt ... --out AVG.pt [--json]',
  positional: 'checkpoint',
  flags: [
    { name: 'checkpoint', type: 'string', help: 'a checkpoint to average (give several; training states use their model_state_dict)', repeatable: true },
    { name: 'out', type: 'string', help: 'the averaged weights-only checkpoint', required: true },
    JSON_FLAG,
  ],
};

export async function run(flags: ParsedFlags): Promise<number> {
  const files = get.list(flags, 'checkpoint');
  if (files.length < 2) throw new OpenELMError('usage', 'average needs at least two checkpoints');
  for (const f of files) if (!fs.existsSync(f)) throw new OpenELMError('usage', `checkpoint ${f} does not exist`);
  const out = get.str(flags, 'out')!;
  const t0 = performance.now();
  const r = averageCheckpoints(files, out);
  const ms = Math.round(performance.now() - t0);
  if (get.bool(flags, 'json')) printJson({ file: out, checkpoints: files.length, tensors: r.tensors, bytes: r.bytes, ms });
  else process.stderr.write(`wrote ${out}: the average of ${files.length} checkpoints, ${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(1)} MB in ${(ms / 1000).toFixed(1)} s\n`);
  return 0;
}
