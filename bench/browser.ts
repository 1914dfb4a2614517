// WASM throughput in a browser page beside Node.js, on the same machine, model, prompt and thread
// count. The page is the built web app in Debian's Chromium (playwright-core), served with COOP/COEP
// by a static server, driven through its automation hook; Node runs the library's loadModel. Both use
// the WASM backend (Node with --native off), greedy decoding past EOS.
//
//   npx tsc -p tsconfig.json && node dist/bench/browser.js [--model DIR] [--prompt-tokens 32]
//     [--gen-tokens 64] [--threads 2] [--rounds 2] [--dtype auto]
//
// Without --model it writes a random-weight OpenELM-270M (bf16, like Apple's release) to a temp
// folder. The sides alternate `rounds` times and each keeps its best run. Prints one JSON object.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchArgs } from './args.js';
import { loadModel } from '../src/api.js';
import { presetHFConfig, resolveConfig } from '../src/model/config.js';
import { paramLayout } from '../src/model/layout.js';
import { initParams } from '../src/model/init.js';
import { saveModel } from '../src/io/model-folder.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { startStaticServer } from '../test/helpers/static-server.js';
import { builtWebApp, launchChromium, newPage, runHook } from '../test/helpers/browser.js';

const { values: a } = benchArgs({
  options: {
    model: { type: 'string' }, 'prompt-tokens': { type: 'string', default: '32' }, 'gen-tokens': { type: 'string', default: '64' },
    threads: { type: 'string', default: '2' }, rounds: { type: 'string', default: '2' }, dtype: { type: 'string', default: 'auto' },
  },
});
const promptTokens = Number(a['prompt-tokens']), gen = Number(a['gen-tokens']), threads = Number(a.threads), rounds = Number(a.rounds);
const log = (m: string) => process.stderr.write(`[bench browser] ${m}\n`);

let dir = a.model;
let tmp: string | undefined;
if (!dir) {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-bench-browser-'));
  dir = path.join(tmp, 'OpenELM-270M-random');
  log(`writing a random-weight OpenELM-270M (bf16) to ${dir}`);
  const config = resolveConfig(presetHFConfig('OpenELM-270M'));
  const layout = paramLayout(config);
  const flat = new Float32Array(layout.total);
  initParams(config, layout, flat, 1234);
  saveModel(dir, config, layout, flat, { dtype: 'BF16' });
}

// A prompt of about promptTokens tokens (with BOS), the same text on both sides.
const tok = loadTokenizer();
const words = 'the quick brown fox jumps over the lazy dog while a small model runs in the browser'.split(' ');
let prompt = '';
for (let i = 0; tok.encode(prompt, { bos: true }).length < promptTokens; i++) prompt += (i ? ' ' : '') + words[i % words.length];
const promptIds = tok.encode(prompt, { bos: true }).length;

interface Side { prefill_tok_s: number; decode_tok_s: number; }
const best = (x: Side | null, y: Side): Side => (x ? { prefill_tok_s: Math.max(x.prefill_tok_s, y.prefill_tok_s), decode_tok_s: Math.max(x.decode_tok_s, y.decode_tok_s) } : y);
const r2 = (v: number) => Math.round(v * 100) / 100;

async function nodeRun(): Promise<Side> {
  const lm = await loadModel(dir!, { backend: 'wasm', threads, native: 'off', dtype: a.dtype as 'auto' });
  try {
    const r = await lm.generate(prompt, { maxTokens: gen, temperature: 0, ignoreEos: true, repetitionPenalty: 1 });
    return { prefill_tok_s: r.timings.prompt_per_second, decode_tok_s: r.timings.predicted_per_second };
  } finally {
    lm.dispose();
  }
}

const app = await builtWebApp();
const srv = await startStaticServer({ mounts: { '/': app, '/model/': dir } });
const browser = await launchChromium();
let node: Side | null = null, page: Side | null = null;
let pageInfo: { threads?: number; isolated?: boolean; backend?: string } = {};
try {
  for (let i = 0; i < rounds; i++) {
    node = best(node, await nodeRun());
    const { context, page: p } = await newPage(browser);
    const r = await runHook(p, srv.url, {
      model: './model/', prompt, max_tokens: String(gen), temperature: '0', backend: 'wasm', threads: String(threads),
      keep: '0', ignore_eos: '1', dtype: a.dtype!,
    }, 600_000);
    await context.close();
    if (r.error) throw new Error(`page: ${r.error}`);
    page = best(page, { prefill_tok_s: r.promptPerSecond!, decode_tok_s: r.tokensPerSecond! });
    pageInfo = { threads: r.threads, isolated: r.isolated, backend: r.backend };
    log(`round ${i + 1}: node ${JSON.stringify(node)} page ${JSON.stringify(page)}`);
  }
} finally {
  await browser.close();
  await srv.close();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify({
  model: a.model ?? 'OpenELM-270M (random weights, bf16)', dtype: a.dtype, threads, prompt_tokens: promptIds, gen_tokens: gen, rounds,
  chromium: browser.version(), page_info: pageInfo,
  node: { prefill_tok_s: r2(node!.prefill_tok_s), decode_tok_s: r2(node!.decode_tok_s) },
  page: { prefill_tok_s: r2(page!.prefill_tok_s), decode_tok_s: r2(page!.decode_tok_s) },
  page_over_node: { prefill: r2(page!.prefill_tok_s / node!.prefill_tok_s), decode: r2(page!.decode_tok_s / node!.decode_tok_s) },
}) + '\n');
