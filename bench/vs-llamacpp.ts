// Head-to-head throughput: this project vs llama.cpp on the same machine, the same OpenELM-shaped
// weights, the same prompt / generation lengths and the same thread count. llama.cpp is either
// node-llama-cpp's prebuilt CPU binary (default) or, with --llama-bin DIR, llama.cpp's own
// `llama-bench` built for this CPU (the faster peer: -march=native, AVX-512, VNNI).
//
//   npx tsc -p tsconfig.json && node dist/bench/vs-llamacpp.js [--model DIR | --size 270M|450M|1_1B|3B]
//     [--llama-bin DIR] [--types f32,f16,q8_0,q4_0] [--prompt-tokens 128] [--gen-tokens 128]
//     [--threads 2] [--rounds 2] [--keep]
//
// Without --model it writes a random-weight OpenELM of --size (bf16 safetensors, like Apple's
// release) to a temp folder. q4_0 needs --llama-bin (llama-quantize makes the Q4_0 file from the F32
// one, as users do; ours is `--dtype q4` from the same checkpoint). Each side runs in its own child process, one dtype at a time, so peak RSS is
// per run and the two never compete for cores; the sides alternate `rounds` times and each keeps
// its best run (throughput fields: max, RSS: min):
//   ours:      `openelm bench --json` at f32 / f16 / q8 on the wasm backend, with --native off and,
//              when the native sgemm is built (npm run build:native), once more with --native on;
//   llama.cpp: GGUF F32 / F16 / Q8_0 written by `convertToGGUF`, default context settings
//              (f16 KV cache, flash attention auto), prefill = one evaluation of the random prompt,
//              decode = gen-tokens greedy steps (logits every step, as ours); with --llama-bin,
//              llama-bench (its warm-up run, its defaults): `-p P -n 0`, then `-p 0 -n G -d P` so
//              its decode follows a P-token context as ours does (bench/llama-bench.ts), peak RSS
//              of the two from /usr/bin/time.
// Decode is memory-bound: every weight is read once per token (the tied head reads the whole
// embedding), so bytes/token is the weights' size and GB/s = bytes/token x decode tok/s.
// read_gb_s is the machine's memory read rate as a decode kernel meets it (bench/read-rate.ts, measured
// before and after the runs, the better kept), the ceiling beside which both sides' decode GB/s stand.
// Prints one JSON object: both sides' prefill/decode tok/s, GB/s, peak RSS and the ratios ours / llama.cpp.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './args.js';
import { Rng } from '../src/core/rng.js';
import { presetHFConfig, resolveConfig } from '../src/model/config.js';
import { paramLayout } from '../src/model/layout.js';
import { initParams } from '../src/model/init.js';
import { saveModel } from '../src/io/model-folder.js';
import { convertToGGUF, type GGUFOutType } from '../src/convert/to-gguf.js';
import { readGGUF } from '../src/io/gguf.js';
import { nativeBlas } from '../src/platform/node-native.js';
import { peakRssKb } from '../src/platform/node.js';
import { llamaBench } from './llama-bench.js';
import { readRateChild } from './read-rate.js';

const SELF = fileURLToPath(import.meta.url);
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

interface Side { prefill_tok_s: number; decode_tok_s: number; rss_mb: number; [k: string]: unknown; }

/** Child-process mode: benchmark one GGUF with llama.cpp and print JSON. */
async function llamaWorker(file: string, promptTokens: number, genTokens: number, threads: number): Promise<void> {
  const nlc = await import('node-llama-cpp');
  const llama = await nlc.getLlama({
    gpu: false, build: 'never', skipDownload: true, usePrebuiltBinaries: true, progressLogs: false,
    logLevel: nlc.LlamaLogLevel.error, maxThreads: threads,
  });
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const loadMs = performance.now() - t0;
  const ctx = await model.createContext({ contextSize: promptTokens + genTokens + 16, batchSize: Math.max(promptTokens, 512), threads, sequences: 1 });
  const seq = ctx.getSequence();
  const rng = new Rng(0);
  const V = (readGGUF(file).metadata.get('tokenizer.ggml.tokens') as string[]).length;
  const randomIds = (n: number) => Array.from({ length: n }, () => 3 + rng.int(V - 3)) as never[];
  const run = async () => {
    await seq.clearHistory();
    const prompt = randomIds(promptTokens);
    const a = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(prompt);
    const b = performance.now();
    let n = 0;
    for await (const tok of seq.evaluate(randomIds(1), { temperature: 0 })) { void tok; if (++n >= genTokens) break; }
    const c = performance.now();
    return { prefill: b - a, decode: c - b };
  };
  await run(); // warm-up, like llama-bench
  const t = await run();
  const out: Side = {
    prefill_tok_s: promptTokens / (t.prefill / 1000), decode_tok_s: genTokens / (t.decode / 1000),
    rss_mb: peakRssKb() / 1024, load_ms: loadMs, threads: ctx.currentThreads,
    llama_cpp: llama.llamaCppRelease.release, kv_cache: 'f16 (default)',
  };
  await ctx.dispose(); await model.dispose(); await llama.dispose();
  process.stdout.write(JSON.stringify(out) + '\n');
}

/** Native llama-bench on one GGUF (bench/llama-bench.ts: decode after the prompt, as ours), peak RSS from /usr/bin/time. */
function llamaBenchSide(bin: string, file: string, P: number, G: number, T: number): Side {
  const r = llamaBench(bin, file, P, G, T, true);
  return { prefill_tok_s: r.prefill_tok_s, decode_tok_s: r.decode_tok_s, rss_mb: r.rss_kb! / 1024, threads: T, llama_cpp: `llama-bench ${r.build_commit}` };
}

function runJson(args: string[], what: string): Side {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 16 << 20 });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  const line = r.stdout.trim().split('\n').pop()!;
  return JSON.parse(line) as Side;
}

function log(msg: string): void { process.stderr.write(`[vs-llamacpp] ${msg}\n`); }

function makeModel(dir: string, size: string): void {
  const config = resolveConfig(presetHFConfig(`OpenELM-${size}`));
  const layout = paramLayout(config);
  const flat = new Float32Array(layout.total);
  initParams(config, layout, flat, 1234);
  saveModel(dir, config, layout, flat, { dtype: 'BF16' });
}

const r2 = (v: number) => Math.round(v * 100) / 100;

/** Field-wise best (highest throughput, lowest RSS) of two runs of the same configuration. */
function best(a: Side | null, b: Side): Side {
  if (!a) return b;
  return { ...a, prefill_tok_s: Math.max(a.prefill_tok_s, b.prefill_tok_s), decode_tok_s: Math.max(a.decode_tok_s, b.decode_tok_s), rss_mb: Math.min(a.rss_mb, b.rss_mb) };
}

async function main(): Promise<void> {
  const { values } = benchArgs({
    options: {
      worker: { type: 'string' }, model: { type: 'string' }, keep: { type: 'boolean', default: false },
      'prompt-tokens': { type: 'string', default: '128' }, 'gen-tokens': { type: 'string', default: '128' },
      threads: { type: 'string', default: '2' }, rounds: { type: 'string', default: '2' },
      size: { type: 'string', default: '270M' }, 'llama-bin': { type: 'string' }, types: { type: 'string' },
    },
  });
  const P = Number(values['prompt-tokens']), G = Number(values['gen-tokens']), T = Number(values.threads), R = Number(values.rounds);
  for (const [k, v] of [['prompt-tokens', P], ['gen-tokens', G], ['threads', T], ['rounds', R]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be an integer >= 1`);
  }
  if (values.worker) return llamaWorker(values.worker, P, G, T);

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-vs-llamacpp-'));
  const size = values.size!;
  const bin = values['llama-bin'];
  const modelDir = values.model ?? path.join(work, `OpenELM-${size}-random`);
  try {
    if (!values.model) {
      fs.mkdirSync(modelDir);
      log(`writing a random OpenELM-${size} (bf16) to ${modelDir}`);
      makeModel(modelDir, size);
    }
    const OURS: Record<string, string> = { f32: 'f32', f16: 'f16', q8_0: 'q8', q4_0: 'q4' };
    const types = (values.types ?? (bin ? 'f32,f16,q8_0,q4_0' : 'f32,f16,q8_0')).split(',');
    for (const t of types) {
      if (!(t in OURS)) throw new Error(`--types: unknown type ${t} (f32, f16, q8_0, q4_0)`);
      if (t === 'q4_0' && !bin) throw new Error('--types q4_0 needs --llama-bin (llama-quantize makes the file)');
    }
    const pairs = types.map((t) => [t, OURS[t]] as [string, string]);
    // ours twice when the native sgemm is built: pure WASM, and WASM + native prefill
    const variants = nativeBlas('auto') ? ['wasm', 'native'] : ['wasm'];
    const rows: Record<string, unknown>[] = [];
    const readBefore = readRateChild(T);
    log(`memory read rate, ${T} threads: ${readBefore?.toFixed(1) ?? '?'} GB/s`);
    for (const [gd, od] of pairs) {
      const file = path.join(work, `model-${gd}.gguf`);
      const c0 = performance.now();
      if (gd === 'q4_0') {
        const f32 = path.join(work, 'model-q4src-f32.gguf');
        convertToGGUF(modelDir, f32, 'f32', { overwrite: true });
        const q = spawnSync(path.join(bin!, 'llama-quantize'), [f32, file, 'Q4_0'], { encoding: 'utf8', maxBuffer: 64 << 20 });
        fs.rmSync(f32);
        if (q.status !== 0) throw new Error(`llama-quantize failed: ${q.stderr.trim().split('\n').slice(-2).join(' | ')}`);
      } else {
        convertToGGUF(modelDir, file, gd as GGUFOutType, { overwrite: true });
      }
      const conv = { bytes: fs.statSync(file).size };
      log(`made GGUF ${gd}: ${(conv.bytes / 1e6).toFixed(0)} MB in ${((performance.now() - c0) / 1000).toFixed(1)} s`);
      // Alternate the two sides and keep each one's best run: other processes on a shared machine
      // only ever slow a run down, so the best of a few is the least disturbed measurement.
      let theirs: Side | null = null;
      const mine: Record<string, Side | null> = Object.fromEntries(variants.map((v) => [v, null]));
      for (let r = 0; r < R; r++) {
        const t = bin ? llamaBenchSide(bin, file, P, G, T)
          : runJson([SELF, '--worker', file, '--prompt-tokens', String(P), '--gen-tokens', String(G), '--threads', String(T)], `llama.cpp ${gd}`);
        log(`llama.cpp ${gd} run ${r + 1}: prefill ${t.prefill_tok_s.toFixed(1)} tok/s, decode ${t.decode_tok_s.toFixed(1)} tok/s (load avg ${os.loadavg()[0].toFixed(1)})`);
        theirs = best(theirs, t);
        for (const v of variants) {
          const m = runJson([CLI, 'bench', '--model', modelDir, '--dtype', od, '--prompt-tokens', String(P), '--gen-tokens', String(G), '--threads', String(T),
            '--native', v === 'native' ? 'on' : 'off', '--json'], `openelm bench ${od} (${v})`);
          log(`openelm ${od} (${v}) run ${r + 1}: prefill ${m.prefill_tok_s.toFixed(1)} tok/s, decode ${m.decode_tok_s.toFixed(1)} tok/s (load avg ${os.loadavg()[0].toFixed(1)})`);
          mine[v] = best(mine[v], m);
        }
      }
      fs.rmSync(file);
      if (!theirs) throw new Error('no runs');
      const row: Record<string, unknown> = {
        dtype: { ours: od, llama_cpp: gd.toUpperCase() },
        llama_cpp: { threads: theirs.threads, prefill_tok_s: r2(theirs.prefill_tok_s), decode_tok_s: r2(theirs.decode_tok_s), rss_mb: r2(theirs.rss_mb), gguf_mb: r2(conv.bytes / 1e6),
          decode_gb_s: r2(conv.bytes * theirs.decode_tok_s / 1e9) },
      };
      for (const v of variants) {
        const m = mine[v]!;
        // `openelm bench` reports weights_mb in MiB; GB/s and the MB beside gguf_mb are decimal
        const wbytes = Number(m.weights_mb) * 2 ** 20;
        row[`ours_${v}`] = { backend: m.backend, native: m.native ?? null, threads: m.threads, prefill_tok_s: r2(m.prefill_tok_s), decode_tok_s: r2(m.decode_tok_s), rss_mb: r2(m.rss_mb),
          weights_mb: r2(wbytes / 1e6), decode_gb_s: r2(wbytes * m.decode_tok_s / 1e9), load_ms: r2(Number(m.load_ms)),
          ratio: { prefill: r2(m.prefill_tok_s / theirs.prefill_tok_s), decode: r2(m.decode_tok_s / theirs.decode_tok_s), rss: r2(m.rss_mb / theirs.rss_mb) } };
      }
      rows.push(row);
    }
    const cpu = os.cpus()[0]?.model ?? 'unknown';
    const reads = [readBefore, readRateChild(T)].filter((v): v is number => v !== null);
    const readGbS = reads.length ? r2(Math.max(...reads)) : null;
    if (readGbS) {
      for (const row of rows) {
        for (const side of ['llama_cpp', 'ours_wasm', 'ours_native']) {
          const o = row[side] as { decode_gb_s: number; decode_of_read?: number } | undefined;
          if (o) o.decode_of_read = r2(o.decode_gb_s / readGbS);
        }
      }
    }
    process.stdout.write(JSON.stringify({
      model: values.model ? values.model : `OpenELM-${size} shape (random bf16 weights)`,
      prompt_tokens: P, gen_tokens: G, threads: T, rounds: R, read_gb_s: readGbS, load_avg_1m_at_end: r2(os.loadavg()[0]), machine: `${cpu}, ${os.availableParallelism()} cores, node ${process.version}`,
      llama_cpp_settings: bin ? 'native llama-bench (built for this CPU), its defaults: warm-up run, f16 KV cache, flash attention auto'
        : 'node-llama-cpp 3.21.1 prebuilt CPU binary, f16 KV cache, flash attention auto, batch >= prompt',
      results: rows,
    }, null, 2) + '\n');
  } finally {
    if (!values.keep) fs.rmSync(work, { recursive: true, force: true });
    else log(`kept ${work}`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`vs-llamacpp: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
});
