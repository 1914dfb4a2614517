// LoRA training throughput, ours against PyTorch + PEFT, in one run: for each model, alternating
// runs of bench/lora.bench.ts and bench/lora_pytorch.py (same config, batch, adapter — r 32, alpha
// 32, dropout 0.1 on all five of Apple's targets by default — optimizer step and thread count),
// each in its own process, then one JSON summary with tokens/s, peak RSS, the ratios, and the load
// average around every run (the machine may be shared: compare the ratios of one run).
//
//   node dist/bench/lora-vs-pytorch.js [--models 35m,270m] [--repeats 2] [--steps 2] [--warmup 1]
//        [--threads 2] [--r 32] [--dropout 0.1] [--dora] [--python .venv/bin/python] [--native auto|on|off]

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveConfig, parameterCount } from '../src/model/config.js';
import { MODELS } from './train.bench.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

interface RunResult { tokens_per_s: number; peak_rss_mb: number; seconds_per_step: number[]; trainable: number; native?: string | null; loadavg_before: number[]; loadavg_after: number[] }

function runOne(cmd: string, args: string[]): RunResult {
  const before = os.loadavg().map((x) => +x.toFixed(2));
  const r = spawnSync(cmd, args, { cwd: repo, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  const line = r.stdout.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) throw new Error(`no JSON line in:\n${r.stdout}`);
  const j = JSON.parse(line) as Record<string, unknown>;
  return {
    tokens_per_s: j.tokens_per_s as number, peak_rss_mb: j.peak_rss_mb as number, seconds_per_step: j.seconds_per_step as number[],
    trainable: j.trainable as number, native: j.native as string | null | undefined,
    loadavg_before: before, loadavg_after: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

const median = (a: number[]): number => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

const models = arg('models', '35m,270m').split(',');
const repeats = Number(arg('repeats', '2'));
const steps = arg('steps', '2'), warmup = arg('warmup', '1'), threads = arg('threads', '2');
const r = arg('r', '32'), dropout = arg('dropout', '0.1'), dora = process.argv.includes('--dora'), native = arg('native', 'auto');
const venv = path.join(repo, '.venv', 'bin', 'python');
const python = arg('python', fs.existsSync(venv) ? venv : 'python3');
const ours = path.join(repo, 'dist', 'bench', 'lora.bench.js');
const theirs = path.join(repo, 'bench', 'lora_pytorch.py');

const results: Record<string, unknown>[] = [];
for (const name of models) {
  const spec = MODELS[name];
  if (!spec) throw new Error(`unknown model ${name}; choose ${Object.keys(MODELS).join(', ')}`);
  const hf = resolveConfig(spec.hf).hf;
  const o: RunResult[] = [], t: RunResult[] = [];
  for (let i = 0; i < repeats; i++) {
    const runOurs = () => o.push(runOne(process.execPath, [ours, '--model', name, '--steps', steps, '--warmup', warmup, '--threads', threads,
      '--native', native, '--r', r, '--alpha', r, '--dropout', dropout, '--type', dora ? 'dora' : 'lora']));
    const runTheirs = () => t.push(runOne(python, [theirs, '--config-json', JSON.stringify(hf), '--batch', String(spec.B), '--seq', String(spec.T),
      '--steps', steps, '--warmup', warmup, '--threads', threads, '--r', r, '--alpha', r, '--dropout', dropout, ...(dora ? ['--dora'] : [])]));
    // alternate which side goes first, so a change of load hurts both alike
    if (i % 2 === 0) { runOurs(); runTheirs(); } else { runTheirs(); runOurs(); }
    process.stderr.write(`${name} round ${i + 1}/${repeats}: ours ${o[o.length - 1].tokens_per_s} tok/s, PyTorch + PEFT ${t[t.length - 1].tokens_per_s} tok/s (load ${os.loadavg()[0].toFixed(1)})\n`);
  }
  const ot = median(o.map((x) => x.tokens_per_s)), tt = median(t.map((x) => x.tokens_per_s));
  const orss = Math.max(...o.map((x) => x.peak_rss_mb)), trss = Math.max(...t.map((x) => x.peak_rss_mb));
  results.push({
    model: name, params: parameterCount(resolveConfig(spec.hf)), batch: spec.B, seq: spec.T, threads: Number(threads),
    adapter: { type: dora ? 'dora' : 'lora', r: Number(r), alpha: Number(r), dropout: Number(dropout), targets: 'all five' },
    trainable_ours: o[0].trainable, trainable_pytorch: t[0].trainable, ours_native: o[0].native ?? null,
    ours_tokens_per_s: ot, pytorch_peft_tokens_per_s: tt, ratio: +(ot / tt).toFixed(3),
    per_round_ratios: o.map((x, i) => +(x.tokens_per_s / t[i].tokens_per_s).toFixed(3)),
    ours_peak_rss_mb: orss, pytorch_peak_rss_mb: trss, rss_ratio: +(orss / trss).toFixed(3),
    runs: { ours: o, pytorch_peft: t },
  });
}
console.log(JSON.stringify({ bench: 'lora-vs-pytorch', node: process.version, cpus: os.cpus().length, loadavg_end: os.loadavg().map((x) => +x.toFixed(2)), results }, null, 1));
