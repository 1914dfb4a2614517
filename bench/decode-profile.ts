// Where one decode token's time goes: every Backend call of `gen` single-token steps after a
// prompt, timed on the calling thread and summed per operation (linear per weight shape), plus the
// time outside them (JS glue of the model and the bench loop). A script, not a test.
//
//   npx tsc -p tsconfig.json && node dist/bench/decode-profile.js --model DIR_OR_GGUF [--dtype q8]
//     [--threads 1,2] [--prompt 128] [--gen 64]
//
// Prints one JSON object per thread count: ms per token in total and per operation, the share of
// each, calls per token, and for each linear shape the weight GB/s its GEMV reached; with wasm
// threads, how the workers took part in the split calls (woken late, share of the chunks).

import { parseArgs } from 'node:util';
import { loadModel } from '../src/api.js';
import type { Backend, Weight } from '../src/backends/backend.js';
import type { LoadDType } from '../src/model/load.js';
import { weightStorageBytes } from '../src/backends/weight-format.js';
import type { PoolCounts } from '../src/backends/wasm/pool.js';
import { Rng } from '../src/core/rng.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string' }, dtype: { type: 'string', default: 'auto' }, threads: { type: 'string', default: '1,2' },
    prompt: { type: 'string', default: '128' }, gen: { type: 'string', default: '64' },
  },
});
if (!args.model) throw new Error('--model DIR (or a .gguf file) is required');
const P = Number(args.prompt), G = Number(args.gen);

interface Acc { ms: number; calls: number; bytes: number; }

/** Wrap the backend's methods so each call's wall time is added to `acc[key]`. */
function instrument(be: Backend, acc: Map<string, Acc>, on: { v: boolean }): void {
  const rec = (key: string, ms: number, bytes = 0) => {
    if (!on.v) return;
    const a = acc.get(key) ?? { ms: 0, calls: 0, bytes: 0 };
    a.ms += ms; a.calls++; a.bytes += bytes;
    acc.set(key, a);
  };
  const target = be as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const name of ['rmsnorm', 'qkNormRope', 'storeKV', 'attention', 'swiglu', 'silu', 'add', 'embedding', 'argmax', 'linear']) {
    const f = target[name];
    if (typeof f !== 'function') continue;
    target[name] = function (this: unknown, ...a: unknown[]) {
      const t0 = performance.now();
      const r = f.apply(be, a);
      const ms = performance.now() - t0;
      if (name === 'linear') {
        const w = a[2] as Weight;
        rec(`linear ${w.rows}x${w.cols} ${w.dtype}`, ms, weightStorageBytes(w));
      } else rec(name, ms);
      return r;
    };
  }
}

/** The wasm backend's call counts (other backends have none). */
function stats(be: Backend): PoolCounts | null {
  const f = (be as unknown as { callStats?: () => PoolCounts }).callStats;
  return typeof f === 'function' ? f.call(be) : null;
}

async function main(): Promise<void> {
  for (const threads of args.threads!.split(',').map(Number)) {
    const loaded = await loadModel(args.model!, { dtype: args.dtype as LoadDType, backend: 'wasm', threads, native: 'off' });
    const model = loaded.model, be = loaded.backend, V = model.config.vocabSize;
    const acc = new Map<string, Acc>(), on = { v: false };
    instrument(be, acc, on);
    const rng = new Rng(0);
    const id = () => 3 + rng.int(V - 3);
    const run = async (timed: boolean) => {
      const cache = model.newCache(P + G);
      await model.forward([{ cache, tokens: Array.from({ length: P }, id) }]);
      on.v = timed;
      const k0 = stats(be);
      const t0 = performance.now(), c0 = process.cpuUsage();
      for (let i = 0; i < G; i++) {
        const { logits, rows } = model.forwardDevice([{ cache, tokens: [id()] }]);
        await be.argmax(logits, rows, V);
      }
      const ms = performance.now() - t0, c = process.cpuUsage(c0), k1 = stats(be);
      on.v = false;
      cache.dispose();
      return { ms, cpuMs: (c.user + c.system) / 1000, k0, k1 };
    };
    await run(false);
    const { ms: total, cpuMs, k0, k1 } = await run(true);
    const perTok = total / G;
    let inOps = 0;
    const ops: Record<string, unknown> = {};
    for (const [k, a] of [...acc].sort((x, y) => y[1].ms - x[1].ms)) {
      inOps += a.ms;
      ops[k] = {
        ms_per_token: +(a.ms / G).toFixed(4), share: +(a.ms / total).toFixed(4), calls_per_token: a.calls / G,
        us_per_call: +((a.ms * 1000) / a.calls).toFixed(2),
        ...(a.bytes ? { weight_gb_s: +(a.bytes / (a.ms * 1e6)).toFixed(2) } : {}),
      };
    }
    process.stdout.write(JSON.stringify({
      model: args.model, dtype: args.dtype, threads, backend: be.describe(), prompt: P, gen: G,
      decode_tok_s: +(1000 / perTok).toFixed(2), ms_per_token: +perTok.toFixed(3),
      // all threads' CPU time per token: on a shared machine the time descheduled does not count
      cpu_ms_per_token: +(cpuMs / G).toFixed(3),
      outside_ops_ms_per_token: +((total - inOps) / G).toFixed(4), outside_share: +((total - inOps) / total).toFixed(4),
      // kernel calls split over the threads, how many of them a sleeping worker joined late, and
      // the workers' share of their chunks (on a busy machine a worker that gets no core runs few)
      ...(k0 && k1 ? {
        parallel_calls_per_token: (k1.parallel - k0.parallel) / G, worker_asleep_per_token: (k1.workerAsleep - k0.workerAsleep) / G,
        worker_chunk_share: +((k1.workerChunks - k0.workerChunks) / Math.max(1, k1.chunks - k0.chunks)).toFixed(3),
      } : {}),
      ops,
    }, null, 2) + '\n');
    loaded.dispose();
  }
}

main().catch((e: unknown) => { process.stderr.write(`decode-profile: ${e instanceof Error ? e.stack : String(e)}\n`); process.exitCode = 1; });
