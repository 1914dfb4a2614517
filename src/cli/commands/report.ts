import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { readTextFile } from '../common.js';
import { OpenELMError, UsageError } from '../../core/errors.js';
import { writeFileAtomicSync } from '../../io/atomic.js';
import { nameRuns, readRun, renderComparison, type AgainstLog } from '../../train/compare.js';
import { parseCorenetLog } from '../../formats/corenet-log.js';

/** CoreNet's OpenELM pretraining batch: 128 GPUs × 16 sequences × 2048 tokens per iteration. */
const CORENET_TOKENS_PER_STEP = 128 * 16 * 2048;

export const spec: CommandSpec = {
  name: 'report',
  summary: 'compare training runs on one HTML page (loss, validation loss, LR, throughput, gradient norm, in-loop eval)',
  usage: 'openelm report RUN_DIR... --out report.html [--against CORENET_LOG] [--x tokens|step] [--title T]',
  positional: 'run',
  flags: [
    { name: 'run', type: 'string', help: 'a training out_dir (metrics.jsonl); also given as bare arguments', repeatable: true },
    { name: 'out', type: 'string', help: 'HTML file to write', required: true },
    { name: 'against', type: 'string', help: 'a CoreNet training log (training_logs.txt) to overlay (repeatable)', repeatable: true },
    { name: 'against-tokens-per-step', type: 'int', help: 'tokens per CoreNet iteration, to place its log on the tokens axis', default: CORENET_TOKENS_PER_STEP, min: 1 },
    { name: 'x', type: 'string', help: 'x axis', default: 'tokens', choices: ['tokens', 'step'] },
    { name: 'title', type: 'string', help: 'page title' },
  ],
};

export async function run(flags: ParsedFlags): Promise<number> {
  const dirs = get.list(flags, 'run');
  if (!dirs.length) throw new UsageError('name at least one run folder: openelm report RUN_DIR... --out report.html');
  const out = get.str(flags, 'out')!;
  const runs = dirs.map(readRun);
  nameRuns(runs);
  const resolvedOut = path.resolve(out);
  for (const d of dirs) {
    if (resolvedOut === path.resolve(d, 'metrics.jsonl')) throw new OpenELMError('usage', `--out ${out} would replace its own input`);
  }
  const tps = get.num(flags, 'against-tokens-per-step')!;
  const against: AgainstLog[] = get.list(flags, 'against').map((f) => {
    if (resolvedOut === path.resolve(f)) throw new OpenELMError('usage', `--out ${out} would replace its own input`);
    return { name: path.basename(f), log: parseCorenetLog(readTextFile(f, '--against'), f), tokensPerStep: tps };
  });
  const html = renderComparison(runs, { title: get.str(flags, 'title'), x: get.str(flags, 'x') as 'tokens' | 'step', against });
  fs.mkdirSync(path.dirname(resolvedOut), { recursive: true });
  writeFileAtomicSync(out, html);
  process.stderr.write(`wrote ${out}: ${runs.length} run${runs.length === 1 ? '' : 's'}${against.length ? ` + ${against.length} CoreNet log${against.length === 1 ? '' : 's'}` : ''}\n`);
  return 0;
}
