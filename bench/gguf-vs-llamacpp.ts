// GGUF files run as stored: this project vs llama.cpp's own tools on the same files, the same
// prompt / generation lengths and thread count. Speed, load time, size, and quality (mean KL
// divergence of each quantized file's next-token distributions to the f32 model's).
//
//   npx tsc -p tsconfig.json && node dist/bench/gguf-vs-llamacpp.js --llama-bin DIR \
//     [--types Q8_0,Q4_0,Q4_K_M] [--prompt-tokens 128] [--gen-tokens 64] [--threads 2] [--rounds 3] \
//     [--kl-text FILE] [--kl-context 128] [--kl-chunks 4] [--gguf FILE ... --f32 FILE.gguf] [--keep]
//     [--outliers N,SCALE] [--ours q8,q4] [--quality-only] [--kl-decode] [--exact-blocks] [--native off|on]
//
// DIR holds llama.cpp's llama-bench, llama-batched-bench, llama-quantize and llama-perplexity (built
// for this machine). TEXT (default: this repository's README.md) is the text the KL is measured on.
// Without --gguf it writes a random-weight OpenELM-270M, converts it to an F32 GGUF and quantizes
// that with llama-quantize into each of --types (what users do with llama.cpp's tools). Per file the
// two sides alternate `rounds` times (the side that goes first alternates too), each in its own
// process, and each side keeps its best run per metric: other processes on a shared machine only
// ever slow a run down. The 1-minute load average is recorded around every run.
//   ours:      `openelm bench --model FILE.gguf --json` (wasm backend, --native off unless --native on
//              (the addon then takes the prompts: block weights widened, exact f32 products), weights as
//              stored, f32 activations but int8 ones in Q8_0/Q4_0/Q4_K/Q6_K decode and Q8_0/Q4_0 prompts
//              unless --exact-blocks; prefill = one forward of the prompt, decode = gen-tokens
//              greedy steps after it, logits every step; load = reading the file onto the backend,
//              ready = the whole loadModel: backend start, weights, tokenizer);
//   llama.cpp: llama-bench `-p P -n 0`, then `-p 0 -n G -d P` (bench/llama-bench.ts; its defaults
//              otherwise: warm-up run, f16 KV cache, flash attention auto), so its decode follows a
//              P-token context as ours does. Where llama-bench dies of SIGILL (llama.cpp
//              built with AMX on a machine whose OS does not enable AMX tiles; llama-bench cannot
//              turn its AMX weights off), `llama-batched-bench -npp P -ntg G -npl 1 -nr` instead
//              (decode after the prompt, as ours). Load: ready_ms = until its context exists (file
//              memory-mapped), load_ms = its own "load time" (through the first evaluation, which
//              faults the weights in; it counts its vocabulary and context but not the GGUF header's
//              parse), from `llama-batched-bench -v`. ratio.load compares the weights' part alone,
//              ratio.ready our whole load; llama.cpp's load time lies between the two spans.
// Quality: `llama-perplexity -m F32 -f TEXT -c C --chunks N -nr --kl-divergence-base BASE` writes the
// f32 model's log-probabilities and the evaluation tokens, `llama-perplexity -m Q
// --kl-divergence-base BASE --kl-divergence` prints llama.cpp's mean KL for each file. Ours: the
// same tokens (read from BASE; each chunk starts with BOS as llama-perplexity's do), the same
// positions (the second half of each chunk but its last), our f32 model's logits against our
// logits on the quantized file, KL(p_f32 || p_q) in float64.
// Ours also quantizes the f32 file on load (--ours: `--dtype q8` / `q4`, int8 activations in the
// products, as llama.cpp's Q8_0 / Q4_0 products have) and is scored the same way; q8 pairs with
// Q8_0 and q4 with Q4_0 in `quality`. --outliers N,SCALE gives the random model N outlier channels
// of SCALE× (model/outliers.ts: norm weights up, the reading columns down; the f32 model computes
// the same), the case where 8-bit activations and 4-bit weights break. --quality-only skips the
// speed and load runs. Our quantized logits come from one forward of each chunk (prefill's GEMM);
// --kl-decode takes them one token at a time instead (decode's GEMV: int8 activations for
// Q8_0/Q4_0/Q4_K/Q6_K unless --exact-blocks).
// Prints one JSON object with both sides' figures and the ratios ours / llama.cpp.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './args.js';
import { presetHFConfig, resolveConfig } from '../src/model/config.js';
import { paramLayout } from '../src/model/layout.js';
import { initParams } from '../src/model/init.js';
import { saveModel } from '../src/io/model-folder.js';
import { convertToGGUF } from '../src/convert/to-gguf.js';
import { GGUFModel } from '../src/formats/gguf-model.js';
import { ggmlTypeName } from '../src/core/ggml-quants.js';
import { loadModel } from '../src/api.js';
import { addOutlierChannels } from '../src/model/outliers.js';
import type { LoadDType } from '../src/model/load.js';
import { llamaBench, LlamaBenchSigill } from './llama-bench.js';

/** --exact-blocks: our Q8_0/Q4_0/Q4_K/Q6_K decode (and Q8_0/Q4_0 prompts) on the exact f32 path. */
const EXACT_BLOCKS = process.argv.includes('--exact-blocks');
/** --native on: our speed runs and the quantized files' KL with the native addon (`--native on`). */
const NATIVE: 'on' | 'off' = process.argv.includes('--native') && process.argv[process.argv.indexOf('--native') + 1] === 'on' ? 'on' : 'off';
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const README = fileURLToPath(new URL('../../README.md', import.meta.url));

interface Run { prefill_tok_s: number; decode_tok_s: number; load_ms?: number; ready_ms?: number; rss_mb?: number; weights_mb?: number; model_mb?: number; load_avg: [number, number]; }

function log(msg: string): void { process.stderr.write(`[gguf-vs-llamacpp] ${msg}\n`); }
const r2 = (v: number) => Math.round(v * 100) / 100;
const load1 = () => r2(os.loadavg()[0]);

function exec(cmd: string, args: string[], what: string): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`);
  return r.stdout;
}

function ours(file: string, P: number, G: number, T: number): Run {
  const before = load1();
  const out = exec(process.execPath, [CLI, 'bench', '--model', file, '--prompt-tokens', String(P), '--gen-tokens', String(G),
    '--threads', String(T), '--backend', 'wasm', '--native', NATIVE, ...(EXACT_BLOCKS ? ['--exact-blocks'] : []), '--json'], 'openelm bench');
  const j = JSON.parse(out.trim().split('\n').pop()!) as { prefill_tok_s: number; decode_tok_s: number; load_ms: number; ready_ms: number; rss_mb: number; weights_mb: number };
  return { prefill_tok_s: j.prefill_tok_s, decode_tok_s: j.decode_tok_s, load_ms: j.load_ms, ready_ms: j.ready_ms, rss_mb: j.rss_mb, weights_mb: j.weights_mb, load_avg: [before, load1()] };
}

/** Runs of a llama.cpp tool whose output lacks the lines sought before giving up (see llamaRun). */
const LLAMA_TRIES = 8;

/**
 * Runs a llama.cpp tool that prints through its common logger and parses what it printed, running
 * it again where a run that exited 0 lacks the lines sought (`parse` gives null). That logger prints
 * from a thread of its own and is not flushed at exit (common/log.cpp leaks it on purpose; llama.cpp
 * issue 22142, PR 25504), so when the machine is busy the lines queued last (the result row, the
 * perf summary with "load time", the KL statistics) are lost whenever that thread is not scheduled
 * before the process ends: nearly half of the load probe's runs on two shared, busy cores.
 */
function llamaRun<T>(bin: string, args: string[], what: string, parse: (stdout: string, stderr: string) => T | null): T {
  let tail = '';
  for (let i = 1; i <= LLAMA_TRIES; i++) {
    const r = spawnSync(bin, args, { encoding: 'utf8', maxBuffer: 256 << 20 });
    tail = `${r.stdout}\n${r.stderr}`.trim().split('\n').slice(-3).join(' | ');
    if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}): ${tail}`);
    const v = parse(r.stdout, r.stderr);
    if (v !== null) return v;
    log(`${what}: run ${i} of ${LLAMA_TRIES} exited 0 without the lines sought (llama.cpp's logger lost its last lines)`);
  }
  throw new Error(`${what} printed no result in ${LLAMA_TRIES} runs: ${tail}`);
}

/**
 * llama.cpp's speed on a file: llama-bench; where it dies of SIGILL (its AMX kernels on a CPU whose
 * OS or hypervisor does not enable AMX tiles, which llama-bench cannot turn off), llama-batched-bench
 * with -nr (no repacked/AMX weights), whose decode follows the prompt as ours does.
 */
let llamaTool: 'llama-bench' | 'llama-batched-bench' = 'llama-bench';
function llama(dir: string, file: string, P: number, G: number, T: number): Run {
  const before = load1();
  if (llamaTool === 'llama-bench') {
    try {
      const r = llamaBench(dir, file, P, G, T);
      return { prefill_tok_s: r.prefill_tok_s, decode_tok_s: r.decode_tok_s, model_mb: r2(r.model_size / 1e6), load_avg: [before, load1()] };
    } catch (e) {
      if (!(e instanceof LlamaBenchSigill)) throw e;
      log('llama-bench died of SIGILL (AMX kernels not usable here): using llama-batched-bench -nr instead');
      llamaTool = 'llama-batched-bench';
    }
  }
  const n = String(P + G);
  const row = llamaRun(path.join(dir, 'llama-batched-bench'), ['-m', file, '-c', n, '-b', n, '-ub', n, '-npp', String(P), '-ntg', String(G), '-npl', '1',
    '-t', String(T), '-nr', '--output-format', 'jsonl'], `llama-batched-bench on ${path.basename(file)}`,
    (out) => JSON.parse(out.trim().split('\n').filter((l) => l.startsWith('{')).pop() ?? 'null') as { speed_pp: number; speed_tg: number } | null);
  return { prefill_tok_s: row.speed_pp, decode_tok_s: row.speed_tg, load_avg: [before, load1()] };
}

/** Elapsed seconds in a llama.cpp log line ("M.SS.mmm.uuu I ..."). */
function logSeconds(line: string): number {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+) /.exec(line);
  return m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) / 1e3 + Number(m[4]) / 1e6 : NaN;
}

/**
 * llama.cpp's load of a file: ready_ms = until its context exists (weights memory-mapped, not yet
 * read), load_ms = its own "load time" (through the first evaluation, which faults the weights in).
 */
function llamaLoad(dir: string, file: string, T: number): { ready_ms: number; load_ms: number } {
  return llamaRun(path.join(dir, 'llama-batched-bench'), ['-m', file, '-c', '64', '-b', '64', '-ub', '64', '-npp', '4', '-ntg', '1', '-npl', '1',
    '-t', String(T), '-nr', '-v'], `llama-batched-bench -v on ${path.basename(file)}`, (out, err) => {
    const lines = `${out}\n${err}`.split('\n');
    const ctx = lines.find((l) => l.includes('llama_context: constructing')), load = lines.map((l) => /load time =\s*([\d.]+) ms/.exec(l)).find((m) => m);
    return ctx && load ? { ready_ms: r2(logSeconds(ctx) * 1000), load_ms: Number(load[1]) } : null;
  });
}

/** Best (highest) throughput of each metric over the runs. */
function best(runs: Run[]): { prefill_tok_s: number; decode_tok_s: number } {
  return { prefill_tok_s: r2(Math.max(...runs.map((r) => r.prefill_tok_s))), decode_tok_s: r2(Math.max(...runs.map((r) => r.decode_tok_s))) };
}

function makeModel(dir: string, outliers: { count: number; scale: number } | null): number[] {
  const config = resolveConfig(presetHFConfig('OpenELM-270M'));
  const layout = paramLayout(config);
  const flat = new Float32Array(layout.total);
  initParams(config, layout, flat, 1234);
  const channels = outliers ? addOutlierChannels(config, layout, flat, outliers.count, outliers.scale) : [];
  saveModel(dir, config, layout, flat, { dtype: 'F32' });
  return channels;
}

/** Type of each kind of tensor in the file, e.g. {attn_qkv: 'Q4_K×14, Q6_K×2', ...}. */
function typeMix(file: string): Record<string, string> {
  const m = GGUFModel.open(file);
  try {
    const kinds = new Map<string, Map<string, number>>();
    for (const t of m.gguf.tensors) {
      if (t.dims.length !== 2) continue;
      const kind = t.name.replace(/^blk\.\d+\./, '').replace(/\.weight$/, '');
      const c = kinds.get(kind) ?? new Map<string, number>();
      c.set(ggmlTypeName(t.type), (c.get(ggmlTypeName(t.type)) ?? 0) + 1);
      kinds.set(kind, c);
    }
    return Object.fromEntries([...kinds].map(([k, c]) => [k, [...c].map(([t, n]) => `${t}×${n}`).join(', ')]));
  } finally { m.close(); }
}

/** The evaluation tokens llama-perplexity wrote into a --kl-divergence-base file. */
function klBaseTokens(file: string): { ctx: number; chunks: number; tokens: Int32Array } {
  const b = fs.readFileSync(file);
  if (b.subarray(0, 8).toString('latin1') !== '_logits_') throw new Error(`${file} is not a llama-perplexity --kl-divergence-base file`);
  const ctx = b.readUInt32LE(8), chunks = b.readInt32LE(16);
  const tokens = new Int32Array(ctx * chunks);
  for (let i = 0; i < tokens.length; i++) tokens[i] = b.readInt32LE(20 + 4 * i);
  return { ctx, chunks, tokens };
}

/** log-softmax of the row of V logits at `off`, in float64. */
function logSoftmax(logits: Float32Array, off: number, V: number): Float64Array {
  let mx = -Infinity;
  for (let v = 0; v < V; v++) mx = Math.max(mx, logits[off + v]);
  let z = 0;
  for (let v = 0; v < V; v++) z += Math.exp(logits[off + v] - mx);
  const lz = mx + Math.log(z), out = new Float64Array(V);
  for (let v = 0; v < V; v++) out[v] = logits[off + v] - lz;
  return out;
}

/**
 * Our log-probabilities at the positions llama-perplexity's KL scores: per chunk of `ctx` tokens
 * (BOS first when the text starts with it), positions ctx/2 .. ctx-2.
 */
async function ourLogProbs(file: string, base: { ctx: number; chunks: number; tokens: Int32Array }, T: number, native: 'auto' | 'off' | 'on',
  dtype: LoadDType = 'auto', decode = false, exactBlocks = false): Promise<Float64Array[]> {
  const m = await loadModel(file, { backend: 'wasm', threads: T, native, dtype, exactBlocks });
  try {
    const V = m.config.vocabSize, bos = m.config.bosTokenId, addBos = base.tokens[0] === bos, first = base.ctx >> 1;
    const out: Float64Array[] = [];
    for (let c = 0; c < base.chunks; c++) {
      const t = Array.from(base.tokens.subarray(c * base.ctx, (c + 1) * base.ctx));
      if (addBos) t[0] = bos;
      if (decode) {
        // one token per forward: the decode kernels
        const cache = m.model.newCache(base.ctx);
        try {
          for (let j = 0; j < base.ctx - 1; j++) {
            const logits = await m.model.forward([{ cache, tokens: [t[j]] }]);
            if (j >= first) out.push(logSoftmax(logits, 0, V));
          }
        } finally { cache.dispose(); }
        continue;
      }
      const logits = await m.model.logitsAll(t);
      for (let j = first; j < base.ctx - 1; j++) out.push(logSoftmax(logits, j * V, V));
    }
    return out;
  } finally { m.dispose(); }
}

/** Mean over positions of KL(p || q) from log-probabilities. */
function meanKL(p: Float64Array[], q: Float64Array[]): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) {
    let kl = 0;
    for (let v = 0; v < p[i].length; v++) kl += Math.exp(p[i][v]) * (p[i][v] - q[i][v]);
    s += kl;
  }
  return s / p.length;
}

/** llama-perplexity's mean KL divergence for a quantized file against BASE (-nr: see llama()). */
function llamaKL(bin: string, file: string, base: string, T: number): number {
  return llamaRun(bin, ['-m', file, '--kl-divergence-base', base, '--kl-divergence', '-t', String(T), '-nr'],
    `llama-perplexity --kl-divergence on ${path.basename(file)}`, (out, err) => {
      const kl = /Mean\s+KLD:\s+(-?[\d.]+)/.exec(`${out}\n${err}`);
      return kl ? Number(kl[1]) : null;
    });
}

async function main(): Promise<void> {
  const { values } = benchArgs({
    options: {
      'llama-bin': { type: 'string' }, gguf: { type: 'string', multiple: true }, f32: { type: 'string' },
      types: { type: 'string', default: 'Q8_0,Q4_0,Q4_K_M' }, keep: { type: 'boolean', default: false },
      'prompt-tokens': { type: 'string', default: '128' }, 'gen-tokens': { type: 'string', default: '64' },
      threads: { type: 'string', default: '2' }, rounds: { type: 'string', default: '3' },
      'kl-text': { type: 'string', default: README }, 'kl-context': { type: 'string', default: '128' }, 'kl-chunks': { type: 'string', default: '4' },
      outliers: { type: 'string' }, ours: { type: 'string', default: 'q8,q4' }, 'quality-only': { type: 'boolean', default: false },
      'kl-decode': { type: 'boolean', default: false }, 'exact-blocks': { type: 'boolean', default: false },
      native: { type: 'string', default: 'off' },
    },
  });
  if (values.native !== NATIVE) throw new Error(`--native must be off or on, got ${values.native}`);
  const P = Number(values['prompt-tokens']), G = Number(values['gen-tokens']), T = Number(values.threads), R = Number(values.rounds);
  const KC = Number(values['kl-context']), KN = Number(values['kl-chunks']);
  for (const [k, v] of [['prompt-tokens', P], ['gen-tokens', G], ['threads', T], ['rounds', R], ['kl-context', KC], ['kl-chunks', KN]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be an integer >= 1`);
  }
  const bin = values['llama-bin'];
  if (!bin) throw new Error('--llama-bin DIR (llama.cpp\'s llama-bench, llama-quantize, llama-perplexity, built for this machine) is required');
  const tool = (name: string) => {
    const f = path.join(bin, name);
    if (!fs.existsSync(f)) throw new Error(`${f} does not exist`);
    return f;
  };
  if (values.gguf && !values.f32) log('no --f32 FILE.gguf: quality (KL) is skipped');
  let outliers: { count: number; scale: number } | null = null;
  if (values.outliers) {
    const [n, sc] = values.outliers.split(',').map(Number);
    if (!Number.isInteger(n) || n < 1 || !(sc > 0)) throw new Error(`--outliers N,SCALE: N an integer >= 1 and SCALE > 0, got ${values.outliers}`);
    if (values.gguf) throw new Error('--outliers makes its own random model; it cannot be used with --gguf');
    outliers = { count: n, scale: sc };
  }
  const ourTypes = values.ours ? values.ours.split(',').filter((d) => d) : [];
  for (const d of ourTypes) if (d !== 'q8' && d !== 'q4') throw new Error(`--ours takes q8 and/or q4, got ${d}`);

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-gguf-vs-llamacpp-'));
  try {
    const files = values.gguf ?? [];
    let f32 = values.f32;
    let channels: number[] = [];
    if (files.length === 0) {
      const dir = path.join(work, 'OpenELM-270M-random');
      fs.mkdirSync(dir);
      log(`writing a random OpenELM-270M to ${dir}${outliers ? ` with ${outliers.count} outlier channels of ${outliers.scale}x` : ''}`);
      channels = makeModel(dir, outliers);
      f32 = path.join(work, 'model-f32.gguf');
      convertToGGUF(dir, f32, 'f32', { overwrite: true });
      fs.rmSync(dir, { recursive: true });
      for (const t of values.types!.split(',')) {
        const out = path.join(work, `model-${t.toLowerCase()}.gguf`);
        exec(tool('llama-quantize'), [f32, out, t], `llama-quantize ${t}`);
        log(`quantized ${t}: ${(fs.statSync(out).size / 1e6).toFixed(0)} MB`);
        files.push(out);
      }
    }

    // quality first (the f32 file is needed only here)
    const quality = new Map<string, { ours: number; llama_cpp: number }>();
    const ownKL = new Map<string, number>();
    let klInfo: Record<string, unknown> | null = null;
    if (f32) {
      const base = path.join(work, 'base.kld');
      exec(tool('llama-perplexity'), ['-m', f32, '-f', values['kl-text']!, '-c', String(KC), '-b', String(KC), '--chunks', String(KN),
        '-t', String(T), '-nr', '--kl-divergence-base', base], 'llama-perplexity --kl-divergence-base');
      const bt = klBaseTokens(base);
      klInfo = { text: path.basename(values['kl-text']!), context: bt.ctx, chunks: bt.chunks, positions: bt.chunks * (bt.ctx - 1 - (bt.ctx >> 1)) };
      log(`f32 logits over ${bt.chunks} chunks of ${bt.ctx} tokens`);
      const ref = await ourLogProbs(f32, bt, T, 'auto');
      for (const d of ourTypes) {
        const q = await ourLogProbs(f32, bt, T, 'off', d as LoadDType, values['kl-decode']);
        ownKL.set(d, meanKL(ref, q));
        log(`ours --dtype ${d} mean KL: ${meanKL(ref, q).toExponential(3)}`);
      }
      for (const file of files) {
        const q = await ourLogProbs(file, bt, T, NATIVE, 'auto', values['kl-decode'], values['exact-blocks']);
        const l = llamaKL(tool('llama-perplexity'), file, base, T);
        quality.set(file, { ours: meanKL(ref, q), llama_cpp: l });
        log(`${path.basename(file)} mean KL: ours ${meanKL(ref, q).toExponential(3)}, llama.cpp ${l}`);
      }
      if (!values.gguf) fs.rmSync(f32);
    }
    // ours quantized on load beside llama.cpp's file of the same bits
    const pairs: Record<string, unknown>[] = [];
    for (const [d, kl] of ownKL) {
      const peer = [...quality].find(([f]) => path.basename(f).toLowerCase().includes(d === 'q8' ? 'q8_0' : 'q4_0'));
      pairs.push({ ours: `--dtype ${d}`, ours_mean_kl: kl, llama_cpp: peer ? path.basename(peer[0]) : null,
        llama_cpp_mean_kl: peer ? peer[1].llama_cpp : null, ratio: peer ? r2(kl / peer[1].llama_cpp) : null });
    }

    const results: Record<string, unknown>[] = [];
    if (values['quality-only']) {
      for (const file of files) {
        const q = quality.get(file);
        results.push({ file: path.basename(file), file_mb: r2(fs.statSync(file).size / 1e6), types: typeMix(file),
          ours: { mean_kl: q?.ours ?? null }, llama_cpp: { mean_kl: q?.llama_cpp ?? null }, ratio: { kl: q ? r2(q.ours / q.llama_cpp) : null } });
      }
    }
    for (const file of values['quality-only'] ? [] : files) {
      const runs: { ours: Run[]; llama: Run[] } = { ours: [], llama: [] };
      for (let r = 0; r < R; r++) {
        const order = r % 2 === 0 ? ['llama', 'ours'] as const : ['ours', 'llama'] as const;
        for (const side of order) {
          const x = side === 'ours' ? ours(file, P, G, T) : llama(bin, file, P, G, T);
          runs[side].push(x);
          log(`${path.basename(file)} ${side} run ${r + 1}: prefill ${x.prefill_tok_s.toFixed(1)} tok/s, decode ${x.decode_tok_s.toFixed(1)} tok/s (load avg ${x.load_avg[0]} → ${x.load_avg[1]})`);
        }
      }
      const o = best(runs.ours), l = best(runs.llama), q = quality.get(file), ll = llamaLoad(bin, file, T);
      const ourLoad = Math.min(...runs.ours.map((x) => x.load_ms!));
      const ourReady = Math.min(...runs.ours.map((x) => x.ready_ms!));
      results.push({
        file: path.basename(file), file_mb: r2(fs.statSync(file).size / 1e6), types: typeMix(file),
        ours: { ...o, load_ms: r2(ourLoad), ready_ms: r2(ourReady), weights_mb: runs.ours[0].weights_mb, peak_rss_mb: Math.min(...runs.ours.map((x) => x.rss_mb!)), mean_kl: q?.ours ?? null },
        llama_cpp: { ...l, tool: llamaTool, ...ll, model_mb: runs.llama[0].model_mb ?? null, mean_kl: q?.llama_cpp ?? null },
        ratio: {
          prefill: r2(o.prefill_tok_s / l.prefill_tok_s), decode: r2(o.decode_tok_s / l.decode_tok_s),
          load: r2(ourLoad / ll.load_ms), ready: r2(ourReady / ll.load_ms), kl: q ? r2(q.ours / q.llama_cpp) : null,
        },
        runs: { ours: runs.ours, llama_cpp: runs.llama },
      });
    }
    const cpu = os.cpus()[0]?.model ?? 'unknown';
    process.stdout.write(JSON.stringify({
      model: values.gguf ? 'given GGUF files' : 'OpenELM-270M shape, random weights, llama-quantize',
      outliers: outliers ? { ...outliers, channels } : null,
      prompt_tokens: P, gen_tokens: G, threads: T, rounds: R, native: NATIVE, quality: klInfo, quantized_on_load: pairs,
      machine: `${cpu}, ${os.availableParallelism()} cores, node ${process.version}`, load_avg_at_end: os.loadavg().map(r2),
      results,
    }, null, 2) + '\n');
  } finally {
    if (!values.keep) fs.rmSync(work, { recursive: true, force: true });
    else log(`kept ${work}`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`gguf-vs-llamacpp: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
