// Training throughput, ours against PyTorch, in one run: for each model, alternating runs of
// bench/train.bench.ts (WASM backend) and bench/train_pytorch.py (PyTorch CPU, same config,
// batch, step and thread count), each in its own process, then one JSON summary with tokens/s,
// tokens per CPU-second, peak RSS, the ratios and the load average around every run (the machine
// is shared; CPU time is what a run costs whatever else runs beside it).
//
//   node dist/bench/train-vs-pytorch.js [--models 35m,270m] [--repeats 2] [--steps 3] [--warmup 1]
//        [--threads 2] [--attn sdpa|ref] [--python .venv/bin/python] [--no-wasm-only]
//        [--precision fp32,bf16]
//
// --precision lists our variants: fp32 runs against PyTorch fp32; bf16 (mixed precision) runs
// against PyTorch fp32 and PyTorch's CPU bf16 autocast (torch.autocast('cpu', dtype=torch.bfloat16)),
// which is then run too. When the native sgemm is built (npm run build:native) ours runs with it,
// and also once more per round on the WASM kernels alone at fp32 (unless --no-wasm-only).

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

interface RunResult {
  tokens_per_s: number; tokens_per_cpu_s: number; peak_rss_mb: number; seconds_per_step: number[];
  loadavg_before: number[]; loadavg_after: number[];
}

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
    tokens_per_s: j.tokens_per_s as number, tokens_per_cpu_s: j.tokens_per_cpu_s as number, peak_rss_mb: j.peak_rss_mb as number,
    seconds_per_step: j.seconds_per_step as number[], loadavg_before: before, loadavg_after: os.loadavg().map((x) => +x.toFixed(2)),
  };
}

const median = (a: number[]): number => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

const models = arg('models', '35m,270m').split(',');
const repeats = Number(arg('repeats', '2'));
const withNative = nativeBlas('auto') !== null, noWasm = process.argv.includes('--no-wasm-only');
const steps = arg('steps', '3'), warmup = arg('warmup', '1'), threads = arg('threads', '2'), attn = arg('attn', 'sdpa');
const precisions = arg('precision', 'fp32,bf16').split(',');
for (const p of precisions) if (p !== 'fp32' && p !== 'bf16') throw new Error(`--precision takes fp32 and/or bf16, got ${p}`);
const venv = path.join(repo, '.venv', 'bin', 'python');
const python = arg('python', fs.existsSync(venv) ? venv : 'python3');
const ourBench = path.join(repo, 'dist', 'bench', 'train.bench.js');
const torchBench = path.join(repo, 'bench', 'train_pytorch.py');

const summary: Record<string, unknown>[] = [];
for (const name of models) {
  const spec = MODELS[name];
  if (!spec) throw new Error(`unknown model ${name}; choose ${Object.keys(MODELS).join(', ')}`);
  const hf = resolveConfig(spec.hf).hf;
  // every variant of both sides, each run once per round; the order alternates between rounds
  const sides: { key: string; run: () => RunResult }[] = [];
  for (const p of precisions) {
    sides.push({ key: `ours_${p}`, run: () => runOne(process.execPath, [ourBench, '--model', name, '--steps', steps, '--warmup', warmup, '--backend', 'wasm', '--threads', threads, '--native', withNative ? 'on' : 'off', '--precision', p]) });
  }
  if (withNative && !noWasm) sides.push({ key: 'ours_wasm_only_fp32', run: () => runOne(process.execPath, [ourBench, '--model', name, '--steps', steps, '--warmup', warmup, '--backend', 'wasm', '--threads', threads, '--native', 'off']) });
  const torch = (autocast: string) => () => runOne(python, [torchBench, '--config-json', JSON.stringify(hf), '--batch', String(spec.B), '--seq', String(spec.T),
    '--steps', steps, '--warmup', warmup, '--threads', threads, '--attn', attn, '--autocast', autocast]);
  sides.push({ key: 'pytorch_fp32', run: torch('off') });
  if (precisions.includes('bf16')) sides.push({ key: 'pytorch_bf16_autocast', run: torch('bf16') });
  const runs: Record<string, RunResult[]> = Object.fromEntries(sides.map((s) => [s.key, []]));
  for (let i = 0; i < repeats; i++) {
    const order = i % 2 === 0 ? sides : [...sides].reverse();
    for (const s of order) {
      const r = s.run();
      runs[s.key].push(r);
      process.stderr.write(`${name} round ${i + 1}/${repeats}: ${s.key} ${r.tokens_per_s} tok/s, ${r.tokens_per_cpu_s} tok/cpu-s (load ${r.loadavg_before[0]} → ${r.loadavg_after[0]})\n`);
    }
  }
  const med = (k: string, f: keyof RunResult) => median(runs[k].map((r) => r[f] as number));
  const tok: Record<string, number> = {}, cpu: Record<string, number> = {};
  for (const s of sides) { tok[s.key] = med(s.key, 'tokens_per_s'); cpu[s.key] = med(s.key, 'tokens_per_cpu_s'); }
  const ratios: Record<string, number> = {}, cpuRatios: Record<string, number> = {};
  const ratio = (a: string, b: string) => {
    if (tok[a] === undefined || tok[b] === undefined) return;
    ratios[`${a}/${b}`] = +(tok[a] / tok[b]).toFixed(3);
    cpuRatios[`${a}/${b}`] = +(cpu[a] / cpu[b]).toFixed(3);
  };
  ratio('ours_fp32', 'pytorch_fp32'); ratio('ours_bf16', 'pytorch_fp32'); ratio('ours_bf16', 'pytorch_bf16_autocast');
  ratio('ours_bf16', 'ours_fp32'); ratio('pytorch_bf16_autocast', 'pytorch_fp32'); ratio('ours_wasm_only_fp32', 'pytorch_fp32');
  summary.push({
    model: name, params: parameterCount(resolveConfig(spec.hf)), batch: spec.B, seq: spec.T, threads: Number(threads), steps: Number(steps),
    ours_native: withNative ? nativeBlas('auto')!.library : null, ours_bf16_gemm: withNative ? nativeBlas('auto')!.bf16 : 'emulated',
    tokens_per_s: tok, ratios, tokens_per_cpu_s: cpu, cpu_ratios: cpuRatios,
    peak_rss_mb: Object.fromEntries(sides.map((s) => [s.key, Math.max(...runs[s.key].map((r) => r.peak_rss_mb))])),
    runs, pytorch_attn: attn,
  });
}
console.log(JSON.stringify({ bench: 'train-vs-pytorch', node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model, results: summary }, null, 1));
