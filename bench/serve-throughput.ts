// Server throughput: `openelm serve` in a child process, N concurrent streaming clients on
// /v1/chat/completions, generated tokens per second overall, time to first token and per-request
// decode speed. Runs the same load against --parallel 1 (a plain FIFO queue) to show what batching
// buys, and a single client for reference. Random weights: speed does not depend on them.
//
//   npx tsc -p tsconfig.json && node dist/bench/serve-throughput.js [--size tiny|small|270M]
//     [--clients 4] [--requests 3] [--max-tokens 64] [--temperature 0.8] [--backend auto] [--threads N] [--json]
// Sampling uses llama-server's defaults (top_k 40, top_p 0.95, min_p 0.05); --temperature 0 is greedy.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { resolveConfig, presetHFConfig, type OpenELMHFConfig } from '../src/model/config.js';
import { paramLayout } from '../src/model/layout.js';
import { initParams } from '../src/model/init.js';
import { saveModel } from '../src/io/model-folder.js';
import { startServe } from './serve-child.js';

const args = process.argv.slice(2);
const arg = (name: string, def: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };
const size = arg('size', 'tiny');
const clients = Number(arg('clients', '4'));
const requests = Number(arg('requests', '3'));
const maxTokens = Number(arg('max-tokens', '64'));
const backend = arg('backend', 'auto');
const threads = arg('threads', '');
const json = args.includes('--json');
const temperature = Number(arg('temperature', '0.8'));

const SIZES: Record<string, Partial<OpenELMHFConfig>> = {
  // The test-suite's tiny shape, with the real vocabulary (so the head dominates).
  tiny: { model_type: 'openelm', num_transformer_layers: 2, model_dim: 64, head_dim: 16, num_gqa_groups: 2, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 2.0], ffn_dim_divisor: 32, vocab_size: 32000, max_context_length: 512, rope_max_length: 512 },
  small: { model_type: 'openelm', num_transformer_layers: 6, model_dim: 256, head_dim: 32, num_gqa_groups: 4, qkv_multipliers: [0.5, 1.0], ffn_multipliers: [0.5, 4.0], ffn_dim_divisor: 64, vocab_size: 32000, max_context_length: 512, rope_max_length: 512 },
};

function makeModel(): string {
  const hf = size === '270M' ? presetHFConfig('OpenELM-270M-Instruct') : SIZES[size];
  if (!hf) throw new Error(`unknown --size ${size}`);
  const config = resolveConfig(hf);
  const layout = paramLayout(config);
  const flat = new Float32Array(layout.total);
  initParams(config, layout, flat, 1);
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-bench-')), `OpenELM-${size}-Instruct`);
  fs.mkdirSync(dir);
  saveModel(dir, config, layout, flat, { dtype: size === '270M' ? 'BF16' : 'F32' });
  return dir;
}

function startServer(dir: string, parallel: number, batch: number): Promise<{ url: string; stop: () => Promise<void> }> {
  const flags = ['--model', dir, '--port', '0', '--parallel', String(parallel), '--batch', String(batch), '--backend', backend, '--quiet'];
  if (threads) flags.push('--threads', threads);
  return startServe(flags);
}

interface One { tokens: number; ttftMs: number; totalMs: number; }

async function request(url: string, i: number): Promise<One> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      messages: [{ role: 'user', content: `Request ${i}: write a short story about a lighthouse keeper and a storm.` }],
      max_tokens: maxTokens, ignore_eos: true, temperature, seed: i, stream: true, stream_options: { include_usage: true },
    }),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttft = -1, tokens = 0, buf = '';
  const dec = new TextDecoder();
  for await (const b of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(b, { stream: true });
    for (let k = buf.indexOf('\n\n'); k >= 0; k = buf.indexOf('\n\n')) {
      const ev = buf.slice(6, k); buf = buf.slice(k + 2);
      if (ev === '[DONE]') continue;
      const j = JSON.parse(ev);
      if (ttft < 0 && j.choices?.[0]?.delta?.content) ttft = performance.now() - t0;
      if (j.usage) tokens = j.usage.completion_tokens;
    }
  }
  return { tokens, ttftMs: ttft, totalMs: performance.now() - t0 };
}

async function load(url: string, nClients: number): Promise<{ tokS: number; ttft: number; perReqTokS: number; wallS: number; tokens: number }> {
  const t0 = performance.now();
  let next = 0;
  const total = nClients * requests;
  const results: One[] = [];
  await Promise.all(Array.from({ length: nClients }, async () => {
    while (next < total) results.push(await request(url, next++));
  }));
  const wall = (performance.now() - t0) / 1000;
  const tokens = results.reduce((a, r) => a + r.tokens, 0);
  const mean = (f: (r: One) => number) => results.reduce((a, r) => a + f(r), 0) / results.length;
  return { tokS: tokens / wall, ttft: mean((r) => r.ttftMs), perReqTokS: mean((r) => r.tokens / (r.totalMs / 1000)), wallS: wall, tokens };
}

const dir = makeModel();
const rows: Record<string, unknown>[] = [];
const scenarios: [string, number, number, number][] = [
  ['1 client', 1, 1, 1],
  [`${clients} clients, --parallel 1 (FIFO queue)`, 1, 1, clients],
  [`${clients} clients, --parallel ${clients} --batch 1 (round robin)`, clients, 1, clients],
  [`${clients} clients, --parallel ${clients} (batched)`, clients, clients, clients],
];
for (const [label, parallel, batch, n] of scenarios) {
  const srv = await startServer(dir, parallel, batch);
  try {
    await request(srv.url, -1); // warm-up
    const r = await load(srv.url, n);
    rows.push({ scenario: label, generated_tokens: r.tokens, wall_s: +r.wallS.toFixed(2), tokens_per_s: +r.tokS.toFixed(1), mean_time_to_first_token_ms: +r.ttft.toFixed(0), per_request_tokens_per_s: +r.perReqTokS.toFixed(1) });
  } finally {
    await srv.stop();
  }
}
const meta = { size, backend, temperature, threads: threads || 'default', cpus: os.cpus().length, cpu: os.cpus()[0]?.model, node: process.version, max_tokens: maxTokens, requests_per_client: requests };
if (json) process.stdout.write(JSON.stringify({ meta, rows }) + '\n');
else {
  console.log(`serve throughput — model ${size} (random weights), backend ${backend}, temperature ${temperature}, ${meta.cpus} CPUs (${meta.cpu}), ${maxTokens} tokens per request, ${requests} requests per client`);
  console.table(rows);
}
fs.rmSync(path.dirname(dir), { recursive: true, force: true });
