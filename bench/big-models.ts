// Models past one WebAssembly memory on the default engine (a script, not a test: the checkpoints
// are GBs). Runs a folder written by tools/big_models.py on the WASM backend and compares with the
// PyTorch reference recorded beside it (reference.json): greedy ids, decode speed and the bandwidth
// it implies (bytes of weights streamed per token × tokens/s), the number of wasm memories used,
// and peak RSS against the weights plus KV cache. Prints one JSON object.
//
//   npx tsc -p tsconfig.json && node dist/bench/big-models.js --model /tmp/openelm-3b-bf16 [--dtype auto] [--threads 2] [--tokens 16]

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { loadModel } from '../src/api.js';
import { weightsBytes } from '../src/model/openelm.js';
import { kvValuesPerToken } from '../src/model/config.js';
import type { LoadDType } from '../src/model/load.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' },
    dtype: { type: 'string', default: 'auto' },
    threads: { type: 'string', default: String(os.availableParallelism()) },
    tokens: { type: 'string', default: '16' },
  },
});
if (!args.model) throw new Error('--model DIR is required (a folder from tools/big_models.py)');
const ref = JSON.parse(fs.readFileSync(path.join(args.model, 'reference.json'), 'utf8')) as { prompt: number[]; greedy: number[]; greedy_gaps: number[] };

const t0 = performance.now();
const m = await loadModel(args.model, { backend: 'wasm', dtype: args.dtype as LoadDType, threads: Number(args.threads) });
await m.backend.sync();
const loadS = (performance.now() - t0) / 1000;
const rssAfterLoad = process.memoryUsage().rss;

// greedy against the reference (the reference's own top-1/top-2 gaps say how decisive each step is)
const g = await m.generate(ref.prompt, { maxTokens: ref.greedy.length, temperature: 0, repetitionPenalty: 1, ignoreEos: true });
const same = g.ids.length === ref.greedy.length && g.ids.every((t, i) => t === ref.greedy[i]);

// decode speed: one token at a time after a short prefill
const n = Number(args.tokens);
const cache = m.model.newCache(ref.prompt.length + n + 1);
await m.model.forward([{ cache, tokens: ref.prompt }]);
let tok = ref.greedy[0];
const t1 = performance.now();
for (let i = 0; i < n; i++) {
  const { logits, rows } = m.model.forwardDevice([{ cache, tokens: [tok] }]);
  tok = (await m.backend.argmax(logits, rows, m.config.vocabSize))[0];
}
const decodeS = (performance.now() - t1) / 1000;
const weights = weightsBytes(m.model.weights);
const kv = kvValuesPerToken(m.config) * cache.capacity * 4;
const peak = process.resourceUsage().maxRSS * 1024;
console.log(JSON.stringify({
  model: args.model, dtype: m.model.weights.layers[0].qkv.dtype, engine: m.backend.describe(),
  memory: m.backend.memory(), load_s: +loadS.toFixed(1),
  greedy_ours: g.ids, greedy_reference: ref.greedy, greedy_equal: same, reference_min_gap: Math.min(...ref.greedy_gaps),
  decode_tok_s: +(n / decodeS).toFixed(3), weights_gb: +(weights / 1e9).toFixed(3),
  decode_gb_s: +((weights * n) / decodeS / 1e9).toFixed(2),
  rss_after_load_gb: +(rssAfterLoad / 1e9).toFixed(3), peak_rss_gb: +(peak / 1e9).toFixed(3),
  peak_over_weights_kv: +(peak / (weights + kv)).toFixed(3),
  loadavg: os.loadavg().map((x) => +x.toFixed(2)),
}));
cache.dispose();
m.dispose();
