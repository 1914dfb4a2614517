// Training throughput, ours against PyTorch, in one run: for each model, alternating runs of
// bench/train.bench.ts (WASM backend) and bench/train_pytorch.py (PyTorch CPU fp32, same config,
// batch, step and thread count), each in its own process, then one JSON summary with tokens/s,
// peak RSS, the ratios and the load average around every run (the machine is shared).
//
//   node dist/bench/train-vs-pytorch.js [--models 35m,270m] [--repeats 2] [--steps 3] [--warmup 1]
//        [--threads 2] [--attn sdpa|ref] [--python .venv/bin/python] [--no-wasm-only]
//
// When the native sgemm is built (npm run build:native) ours runs with it, and also once more per
// round on the WASM kernels alone (unless --no-wasm-only).

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveConfig, parameterCount } from '../src/model/config.js';
import { MODELS } from './train.bench.js';
import { nativeBlas } from '../src/platform/node-native.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

interface RunResult { tokens_per_s: number; peak_rss_mb: number; seconds_per_step: number[]; loadavg_before: number[]; loadavg_after: number[] }

function lastJson(out: string): Record<string, unknown> {
  const line = out.trim().split('\n').reverse().find((l) => l.startsWith('{'));
  if (!line) throw new Error(`no JSON line in:\n${out}`);
  return JSON.parse(line) as Record<string, unknown>;
}

function runOne(cmd: string, args: string[]): RunResult {
  const before = os.loadavg().map((x) => +x.toFixed(2));
  const r = spawnSync(cmd, args, { cwd: repo, encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  const j = lastJson(r.stdout);
  return {
    tokens_per_s: j.tokens_per_s as number, peak_rss_mb: j.peak_rss_mb as number, seconds_per_step: j.seconds_per_step as number[],
    loadavg_before: before, loadavg_after: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

const median = (a: number[]): number => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

const models = arg('models', '35m,270m').split(',');
const repeats = Number(arg('repeats', '2'));
const withNative = nativeBlas('auto') !== null, noWasm = process.argv.includes('--no-wasm-only');
const steps = arg('steps', '3'), warmup = arg('warmup', '1'), threads = arg('threads', '2'), attn = arg('attn', 'sdpa');
const venv = path.join(repo, '.venv', 'bin', 'python');
const python = arg('python', fs.existsSync(venv) ? venv : 'python3');
const ourBench = path.join(repo, 'dist', 'bench', 'train.bench.js');
const torchBench = path.join(repo, 'bench', 'train_pytorch.py');

const summary: Record<string, unknown>[] = [];
for (const name of models) {
  const spec = MODELS[name];
  if (!spec) throw new Error(`unknown model ${name}; choose ${Object.keys(MODELS).join(', ')}`);
  const hf = resolveConfig(spec.hf).hf;
  const ours: RunResult[] = [], torch: RunResult[] = [], oursWasm: RunResult[] = [];
  for (let i = 0; i < repeats; i++) {
    // alternate which goes first, so a load change hurts both alike
    const mine = (native: string) => runOne(process.execPath, [ourBench, '--model', name, '--steps', steps, '--warmup', warmup, '--backend', 'wasm', '--threads', threads, '--native', native]);
    const o = () => { ours.push(mine(withNative ? 'on' : 'off')); if (withNative && !noWasm) oursWasm.push(mine('off')); };
    const t = () => torch.push(runOne(python, [torchBench, '--config-json', JSON.stringify(hf), '--batch', String(spec.B), '--seq', String(spec.T),
      '--steps', steps, '--warmup', warmup, '--threads', threads, '--attn', attn]));
    if (i % 2 === 0) { o(); t(); } else { t(); o(); }
    process.stderr.write(`${name} round ${i + 1}/${repeats}: ours ${ours[ours.length - 1].tokens_per_s} tok/s${oursWasm.length ? ` (wasm only ${oursWasm[oursWasm.length - 1].tokens_per_s})` : ''}, pytorch ${torch[torch.length - 1].tokens_per_s} tok/s\n`);
  }
  const ot = median(ours.map((r) => r.tokens_per_s)), tt = median(torch.map((r) => r.tokens_per_s));
  const orss = Math.max(...ours.map((r) => r.peak_rss_mb)), trss = Math.max(...torch.map((r) => r.peak_rss_mb));
  summary.push({
    model: name, params: parameterCount(resolveConfig(spec.hf)), batch: spec.B, seq: spec.T, threads: Number(threads), steps: Number(steps),
    ours_native: withNative ? nativeBlas('auto')!.library : null,
    ours_tokens_per_s: ot, pytorch_tokens_per_s: tt, ratio: +(ot / tt).toFixed(3),
    ...(oursWasm.length ? { ours_wasm_only_tokens_per_s: median(oursWasm.map((r) => r.tokens_per_s)), wasm_only_ratio: +(median(oursWasm.map((r) => r.tokens_per_s)) / tt).toFixed(3) } : {}),
    ours_peak_rss_mb: orss, pytorch_peak_rss_mb: trss, rss_ratio: +(orss / trss).toFixed(3),
    runs: { ours, pytorch: torch, ours_wasm_only: oursWasm }, pytorch_attn: attn,
  });
}
console.log(JSON.stringify({ bench: 'train-vs-pytorch', node: process.version, cpus: os.cpus().length, results: summary }, null, 1));
