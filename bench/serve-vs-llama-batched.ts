// Concurrent-stream throughput of `openelm serve` beside llama.cpp's `llama-batched-bench` on the same
// weights: B streams, each a PP-token prompt and TG generated tokens (greedy, EOS ignored), with the
// same thread count. Ours is measured end to end over HTTP (B streaming /v1/completions clients
// against one server with --parallel B, continuous batching); llama-batched-bench measures the
// library's batched decode without a server, so it is the upper bound a server built on it can reach.
//
//   npx tsc -p tsconfig.json && node dist/bench/serve-vs-llama-batched.js --llama-batched-bench PATH
//     [--model DIR] [--dtype q8] [--gguf FILE | --convert-hf-to-gguf SCRIPT [--python python3]]
//     [--streams 1,8] [--pp 128] [--tg 64] [--threads 2] [--rounds 2] [--llama-args "-nr ..."]
//
// Without --model it writes a random-weight OpenELM-270M (bf16 safetensors, like Apple's release).
// The GGUF for llama.cpp (Q8_0 for --dtype q8): --gguf as given; or written by llama.cpp's own
// convert_hf_to_gguf.py (pass its path; gguf-py must be importable, e.g. PYTHONPATH=llama.cpp/gguf-py);
// or, by default, by `openelm convert --to gguf`. Without --llama-batched-bench only ours runs.
// --llama-args adds flags to llama-batched-bench (e.g. -nr where a -march=native build uses AMX
// instructions the virtual machine does not allow: SIGILL in tilezero).
// Both sides spin-wait between their threads: on a machine whose cores are busy with other work,
// compare at --threads 1 (two spinning threads on two shared cores collapse, llama.cpp's worst).
//
// Figures per B (llama-batched-bench's columns): S_PP = B*PP / T_PP, S_TG = B*TG / T_TG, S = B*(PP+TG) / T.
// Ours: T_PP runs from sending the requests to the last stream's first token (the prefill step also
// yields the first token), T_TG from there to the last stream's end, over B*(TG-1) tokens; the
// best of `rounds` runs is kept. Prints one JSON object.

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
import { bundledTokenizerPath } from '../src/io/tokenizer-file.js';
import { startServe } from './serve-child.js';

const { values: a } = benchArgs({
  options: {
    'llama-batched-bench': { type: 'string' }, model: { type: 'string' }, dtype: { type: 'string', default: 'q8' },
    gguf: { type: 'string' }, 'convert-hf-to-gguf': { type: 'string' }, python: { type: 'string', default: 'python3' },
    streams: { type: 'string', default: '1,8' }, pp: { type: 'string', default: '128' }, tg: { type: 'string', default: '64' },
    threads: { type: 'string', default: '2' }, 'llama-args': { type: 'string', default: '' }, rounds: { type: 'string', default: '2' }, backend: { type: 'string', default: 'auto' },
  },
});
const STREAMS = a.streams!.split(',').map(Number), PP = Number(a.pp), TG = Number(a.tg);
const THREADS = Number(a.threads), ROUNDS = Number(a.rounds);
const GGUF_TYPE: Record<string, GGUFOutType> = { q8: 'q8_0', f16: 'f16', f32: 'f32' };

interface Row { B: number; PP: number; TG: number; T_PP_s: number; S_PP: number; T_TG_s: number; S_TG: number; T_s: number; S: number; }
const r3 = (x: number) => +x.toFixed(3), r1 = (x: number) => +x.toFixed(1);

function randomModel(tmp: string): string {
  // config.json as Apple's release writes it (per-layer lists), which llama.cpp's converter needs
  const preset = presetHFConfig('OpenELM-270M'), r = resolveConfig(preset);
  const config = resolveConfig({ ...preset, ffn_multipliers: r.ffnMultipliers, num_query_heads: r.numQueryHeads, num_kv_heads: r.numKvHeads });
  const layout = paramLayout(config);
  const flat = new Float32Array(layout.total);
  initParams(config, layout, flat, 1);
  const dir = path.join(tmp, 'OpenELM-270M');
  fs.mkdirSync(dir);
  saveModel(dir, config, layout, flat, { dtype: 'BF16' });
  return dir;
}

function startServer(dir: string, parallel: number): Promise<{ url: string; stop: () => Promise<void> }> {
  const ctx = PP + TG + 8;
  return startServe(['--model', dir, '--dtype', a.dtype!, '--port', '0', '--parallel', String(parallel), '--ctx-size', String(ctx),
    '--threads', String(THREADS), '--backend', a.backend!, '--quiet']);
}

/** One streamed completion; times (ms since t0) of its first token and its end, and its token count. */
async function stream(url: string, prompt: number[], t0: number): Promise<{ first: number; end: number; tokens: number }> {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: TG, ignore_eos: true, temperature: 0, stream: true, stream_options: { include_usage: true } }),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let first = -1, tokens = 0, buf = '';
  const dec = new TextDecoder();
  for await (const b of res.body as unknown as AsyncIterable<Uint8Array>) {
    if (first < 0) first = performance.now() - t0;
    buf += dec.decode(b, { stream: true });
    for (let k = buf.indexOf('\n\n'); k >= 0; k = buf.indexOf('\n\n')) {
      const ev = buf.slice(6, k); buf = buf.slice(k + 2);
      if (ev === '[DONE]') continue;
      const j = JSON.parse(ev) as { usage?: { completion_tokens: number } };
      if (j.usage) tokens = j.usage.completion_tokens;
    }
  }
  return { first, end: performance.now() - t0, tokens };
}

async function ours(dir: string, B: number, rng: Rng): Promise<Row & { tokens: number }> {
  const srv = await startServer(dir, B);
  try {
    const prompt = () => Array.from({ length: PP }, () => 3 + rng.int(31997));
    await stream(srv.url, prompt(), performance.now()); // warm-up
    let best: (Row & { tokens: number }) | undefined;
    for (let r = 0; r < ROUNDS; r++) {
      // fresh random prompts: nothing is served from a slot's cached prefix
      const prompts = Array.from({ length: B }, prompt);
      const t0 = performance.now();
      const res = await Promise.all(prompts.map((p) => stream(srv.url, p, t0)));
      const tpp = Math.max(...res.map((x) => x.first)) / 1000, t = Math.max(...res.map((x) => x.end)) / 1000;
      const tokens = res.reduce((s, x) => s + x.tokens, 0);
      if (tokens !== B * TG) throw new Error(`expected ${B * TG} tokens, got ${tokens}`);
      const row = {
        B, PP, TG, T_PP_s: r3(tpp), S_PP: r1((B * PP) / tpp), T_TG_s: r3(t - tpp), S_TG: r1((B * (TG - 1)) / (t - tpp)),
        T_s: r3(t), S: r1((B * (PP + TG)) / t), tokens,
      };
      if (!best || row.S > best.S) best = row;
    }
    return best!;
  } finally {
    await srv.stop();
  }
}

function makeGGUF(dir: string, tmp: string): { file: string; by: string } {
  if (a.gguf) return { file: a.gguf, by: 'given' };
  const type = GGUF_TYPE[a.dtype!];
  if (!type) throw new Error(`--dtype ${a.dtype} has no GGUF counterpart (q8, f16, f32)`);
  const file = path.join(tmp, `model-${type}.gguf`);
  const script = a['convert-hf-to-gguf'];
  if (script) {
    // the reference converter reads the SentencePiece model from the folder
    const conv = path.join(tmp, 'hf');
    fs.mkdirSync(conv);
    for (const f of fs.readdirSync(dir)) fs.copyFileSync(path.join(dir, f), path.join(conv, f));
    if (!fs.existsSync(path.join(conv, 'tokenizer.model'))) fs.copyFileSync(fileURLToPath(bundledTokenizerPath()), path.join(conv, 'tokenizer.model'));
    const r = spawnSync(a.python!, [script, conv, '--outtype', type, '--outfile', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`convert_hf_to_gguf.py failed (exit ${r.status}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    return { file, by: 'convert_hf_to_gguf.py' };
  }
  convertToGGUF(dir, file, type, { overwrite: true });
  return { file, by: 'openelm convert --to gguf' };
}

function llama(bin: string, file: string): { rows: Row[]; build?: string } {
  const ctx = Math.max(...STREAMS) * (PP + TG) + 16;
  const args = ['-m', file, '-c', String(ctx), '-b', '2048', '-ub', '512', '-npp', String(PP), '-ntg', String(TG),
    '-npl', STREAMS.join(','), '-t', String(THREADS), '--output-format', 'jsonl', ...a['llama-args']!.split(' ').filter(Boolean)];
  let best: Row[] = [];
  let build: string | undefined;
  for (let r = 0; r < ROUNDS; r++) {
    const p = spawnSync(bin, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
    if (p.status !== 0) throw new Error(`llama-batched-bench failed (${p.signal ?? `exit ${p.status}`}): ${p.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    build ??= /build: (\S+ \(\S+\))/.exec(p.stderr)?.[1];
    const rows = p.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => {
      const j = JSON.parse(l) as Record<string, number>;
      return { B: j.pl, PP: j.pp, TG: j.tg, T_PP_s: r3(j.t_pp), S_PP: r1(j.speed_pp), T_TG_s: r3(j.t_tg), S_TG: r1(j.speed_tg), T_s: r3(j.t), S: r1(j.speed) };
    });
    best = STREAMS.map((B) => {
      const now = rows.find((x) => x.B === B)!, was = best.find((x) => x.B === B);
      return !was || now.S > was.S ? now : was;
    });
  }
  return { rows: best, build };
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-bench-'));
try {
  const dir = a.model ?? randomModel(tmp);
  const rng = new Rng(7);
  const oursRows: (Row & { tokens: number })[] = [];
  for (const B of STREAMS) oursRows.push(await ours(dir, B, rng));
  let llamaOut: { rows: Row[]; build?: string; gguf_by: string } | undefined;
  const bin = a['llama-batched-bench'];
  if (bin) {
    const g = makeGGUF(dir, tmp);
    llamaOut = { ...llama(bin, g.file), gguf_by: g.by };
  }
  const ratios = llamaOut ? STREAMS.map((B) => {
    const o = oursRows.find((x) => x.B === B)!, l = llamaOut!.rows.find((x) => x.B === B)!;
    return { B, S_TG: r3(o.S_TG / l.S_TG), S: r3(o.S / l.S) };
  }) : undefined;
  const meta = {
    model: a.model ? path.basename(dir) : 'OpenELM-270M shape, random weights', dtype: a.dtype, pp: PP, tg: TG, threads: THREADS, rounds: ROUNDS,
    llama_args: a['llama-args'] || undefined,
    cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, load_average: os.loadavg().map((x) => +x.toFixed(1)),
  };
  process.stdout.write(JSON.stringify({ meta, openelm_serve: oursRows, ...(llamaOut ? { llama_batched_bench: llamaOut, ours_over_llama: ratios } : {}) }) + '\n');
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
