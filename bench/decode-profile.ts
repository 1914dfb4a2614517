// Where one decode token's time goes: every Backend call of `gen` single-token steps after a
// prompt, timed on the calling thread and summed per operation (linear per weight shape), plus the
// time outside them (JS glue of the model and the bench loop). With --prefill, where one prompt's
// forward pass goes instead (best of --rounds), each linear split into its kernels (the integer
// GEMM's activation quantization, k_quant_rows, apart from the GEMM). A script, not a test.
//
//   npx tsc -p tsconfig.json && node dist/bench/decode-profile.js --model DIR_OR_GGUF [--dtype q8]
//     [--threads 1,2] [--prompt 128] [--gen 64] [--prefill] [--rounds 5] [--native off|on|lib] [--exact-blocks]
//     [--kernels off]
//
// --exact-blocks: GGUF block weights on the exact f32 products (loadModel exactBlocks), for an A/B of the int8 kernels.
// --native (default off): on routes prefill's linears to the native addon as `openelm bench
// --native on` does; lib too, but with widened weights through the library's sgemm rather than the
// addon's own AVX2 kernel (NativeBlas.useWideKernel(false)), to compare the two. --exact-blocks:
// GGUF block weights with exact f32 products, no int8 activations (WasmBackendOptions.exactBlocks).
//
// --kernels off (wasm, decode): every kernel call a no-op (the split ones still fork and join), so
// the step's time is what its JavaScript and the thread pool's hand-offs cost, free of the memory
// traffic that makes them hard to see beside the GEMVs; the logits are garbage.
//
// Prints one JSON object per thread count: ms per token in total and per operation, the share of
// each, calls per token, and for each linear shape the weight GB/s its GEMV reached, and with wasm
// threads how the workers took part in the split calls (woken late, share of the chunks), and per
// linear the µs of its k_prep_x (on the calling thread before the split) and of its join; --prefill:
// ms per prompt, and each linear's GOP/s, 2·M·N·K per call.

import { benchArgs } from './args.js';
import { loadModel } from '../src/api.js';
import type { Backend, Weight } from '../src/backends/backend.js';
import type { LoadDType } from '../src/model/load.js';
import { weightStorageBytes } from '../src/backends/weight-format.js';
import type { PoolCounts } from '../src/backends/wasm/pool.js';
import { Rng } from '../src/core/rng.js';
import { nativeBlas } from '../src/platform/node-native.js';

const { values: args } = benchArgs({
  options: {
    model: { type: 'string' }, dtype: { type: 'string', default: 'auto' }, threads: { type: 'string', default: '1,2' },
    prompt: { type: 'string', default: '128' }, gen: { type: 'string', default: '64' },
    prefill: { type: 'boolean', default: false }, rounds: { type: 'string', default: '5' },
    native: { type: 'string', default: 'off' }, 'exact-blocks': { type: 'boolean', default: false },
    kernels: { type: 'string', default: 'on' },
  },
});
if (!args.model) throw new Error('--model DIR (or a .gguf file) is required');
const P = Number(args.prompt), G = Number(args.gen);
if (!['off', 'on', 'lib'].includes(args.native!)) throw new Error('--native must be off, on or lib');
const native = args.native === 'off' ? 'off' : 'on';
if (args.native !== 'off') nativeBlas('on')!.useWideKernel(args.native === 'on');
if (!['on', 'off'].includes(args.kernels!)) throw new Error('--kernels must be on or off');

interface Acc { ms: number; calls: number; bytes: number; ops: number; cpu: number; join: number; chunks: number; wchunks: number; asleep: number; prep: number; }

/** Wrap the backend's methods so each call's wall time is added to `acc[key]`. */
function instrument(be: Backend, acc: Map<string, Acc>, on: { v: boolean }): void {
  let prepMs = 0;
  const rec = (key: string, ms: number, bytes = 0, ops = 0, cpu = 0, d: { join: number; chunks: number; wchunks: number; asleep: number } | null = null) => {
    if (!on.v) return;
    const a = acc.get(key) ?? { ms: 0, calls: 0, bytes: 0, ops: 0, cpu: 0, join: 0, chunks: 0, wchunks: 0, asleep: 0, prep: 0 };
    a.ms += ms; a.calls++; a.bytes += bytes; a.ops += ops; a.cpu += cpu;
    if (d) { a.join += d.join; a.chunks += d.chunks; a.wchunks += d.wchunks; a.asleep += d.asleep; }
    a.prep += prepMs; prepMs = 0;
    acc.set(key, a);
  };
  // kernel calls inside a linear are recorded under its key too (the wasm backend's thread pool)
  let inLinear = '';
  const pool = (be as unknown as { pool?: { run: (shard: number, name: string, chunks: number) => void } }).pool;
  if (args.prefill && pool) {
    const run = pool.run.bind(pool);
    pool.run = (shard, name, chunks) => {
      const t0 = performance.now(), c0 = process.cpuUsage();
      run(shard, name, chunks);
      const c = process.cpuUsage(c0);
      if (inLinear) rec(`${inLinear} ${name}`, performance.now() - t0, 0, 0, (c.user + c.system) / 1000);
    };
  }
  // decode: the GEMVs' input preparation (k_prep_x, on the calling thread before the split) timed apart
  const shards = (be as unknown as { shards?: { k: Record<string, unknown> }[] }).shards;
  if (!args.prefill && shards) {
    for (const sh of shards) {
      const prep = sh.k.k_prep_x as (a: number) => void;
      sh.k = { ...sh.k, k_prep_x: (x: number) => { const t = performance.now(); prep(x); prepMs += performance.now() - t; } };
    }
  }
  const target = be as unknown as Record<string, (...a: unknown[]) => unknown>;
  // one key string per weight, made once: building and hashing a new string per call cost more
  // than some of the calls it timed, and that time landed outside them
  const keys = new Map<string, WeakMap<Weight, string>>();
  const keyOf = (w: Weight, more = ''): string => {
    let m = keys.get(more);
    if (!m) { m = new WeakMap(); keys.set(more, m); }
    let k = m.get(w);
    if (k === undefined) { k = `linear ${w.rows}x${w.cols} ${w.dtype}${more}`; m.set(w, k); }
    return k;
  };
  // the fused calls (linearSwiglu, linearQkv) under their weight's key with what they add; a call
  // they make in turn (the separate calls they fall back to) is not recorded twice
  const fused: Record<string, [number, number, string]> = { linearSwiglu: [3, 4, ' +swiglu'], linearQkv: [2, 3, ' +qknorm,rope,kv'] };
  let depth = 0;
  for (const name of ['rmsnorm', 'qkNormRope', 'storeKV', 'attention', 'swiglu', 'silu', 'add', 'embedding', 'argmax', 'linear', 'linearSwiglu', 'linearQkv']) {
    const f = target[name];
    if (typeof f !== 'function') continue;
    const [wi, mi, more] = name === 'linear' ? [2, 3, ''] : fused[name] ?? [-1, -1, ''];
    target[name] = function (this: unknown, ...a: unknown[]) {
      if (depth > 0) return f.apply(be, a);
      const w = wi >= 0 ? a[wi] as Weight : null;
      const key = w ? keyOf(w, more) : name;
      inLinear = w ? `  ${key}` : '';
      // (the pool's counts around each decode linear: its join wait, chunks, worker share, wake-ups)
      const s0 = args.prefill || !w ? null : stats(be);
      prepMs = 0;
      const t0 = performance.now(), c0 = args.prefill ? process.cpuUsage() : null;
      depth++;
      let r: unknown;
      try { r = f.apply(be, a); } finally { depth--; }
      const ms = performance.now() - t0, c = c0 ? process.cpuUsage(c0) : null;
      const cpu = c ? (c.user + c.system) / 1000 : 0;
      inLinear = '';
      const s1 = s0 ? stats(be) : null;
      const d = s0 && s1 ? { join: s1.joinWaitMs - s0.joinWaitMs, chunks: s1.chunks - s0.chunks, wchunks: s1.workerChunks - s0.workerChunks, asleep: s1.workerAsleep - s0.workerAsleep } : null;
      if (w) rec(key, ms, weightStorageBytes(w), 2 * (a[mi] as number) * w.rows * w.cols, cpu, d);
      else rec(name, ms, 0, 0, cpu, d);
      return r;
    };
  }
}

/** --kernels off: every kernel of the wasm backend a no-op (its private parts, reached as the pool is above). */
function noKernels(be: Backend): void {
  type Pool = { run: (shard: number, name: string, chunks: number) => void };
  const b = be as unknown as { pool?: Pool; shards?: { k: Record<string, unknown>; ai: Int32Array }[] };
  if (!b.pool || !b.shards) throw new Error('--kernels off needs the wasm backend');
  const pool = b.pool, shards = b.shards, run = pool.run.bind(pool);
  // every call, split as it would be, runs k_add over 0 values: the workers too, which have their own instances
  pool.run = (shard, _name, chunks) => {
    const a = shards[shard].ai;
    a[0] = 0; a[1] = 0; a[2] = 0;
    run(shard, 'k_add', chunks);
  };
  const noop = () => {};
  for (const sh of shards) sh.k = { ...sh.k, k_prep_x: noop, argmaxRows: noop };
}

/** The wasm backend's call counts (other backends have none). */
function stats(be: Backend): PoolCounts | null {
  const f = (be as unknown as { callStats?: () => PoolCounts }).callStats;
  return typeof f === 'function' ? f.call(be) : null;
}

/** One prompt's forward pass, best of --rounds (fresh cache each), ops summed over the rounds. */
async function prefill(threads: number): Promise<void> {
  const loaded = await loadModel(args.model!, { dtype: args.dtype as LoadDType, backend: 'wasm', threads, native, exactBlocks: args['exact-blocks'] });
  const model = loaded.model, be = loaded.backend, V = model.config.vocabSize;
  const acc = new Map<string, Acc>(), on = { v: false };
  instrument(be, acc, on);
  const rng = new Rng(0);
  const R = Number(args.rounds);
  let best = Infinity, bestCpu = Infinity, sum = 0;
  for (let r = -1; r < R; r++) {
    const cache = model.newCache(P);
    const tokens = Array.from({ length: P }, () => 3 + rng.int(V - 3));
    on.v = r >= 0;
    const t0 = performance.now(), c0 = process.cpuUsage();
    const { logits, rows } = model.forwardDevice([{ cache, tokens }]);
    await be.argmax(logits, rows, V);
    const ms = performance.now() - t0, c = process.cpuUsage(c0);
    on.v = false;
    cache.dispose();
    if (r < 0) continue;
    sum += ms;
    best = Math.min(best, ms); bestCpu = Math.min(bestCpu, (c.user + c.system) / 1000);
  }
  // totals: every linear, and their kernels (activation quantization, GEMM) across shapes
  const totals: Record<string, { ms: number; cpu_ms: number; gop_s?: number; cpu_gop_s_per_thread?: number }> = {};
  for (const [k, a] of acc) {
    const kind = k.startsWith(' ') ? `linear ${k.split(' ').pop()}` : k.startsWith('linear') ? 'linear' : k;
    const t = totals[kind] ?? { ms: 0, cpu_ms: 0 };
    t.ms += a.ms / R; t.cpu_ms += a.cpu / R;
    totals[kind] = t;
    if (kind === 'linear') (t as { ops?: number }).ops = ((t as { ops?: number }).ops ?? 0) + a.ops / R;
  }
  for (const t of Object.values(totals)) {
    const o = (t as { ops?: number }).ops;
    t.ms = +t.ms.toFixed(2); t.cpu_ms = +t.cpu_ms.toFixed(2);
    if (o) { t.gop_s = +(o / (t.ms * 1e6)).toFixed(1); t.cpu_gop_s_per_thread = +(o / (t.cpu_ms * 1e6)).toFixed(1); delete (t as { ops?: number }).ops; }
  }
  let inOps = 0;
  const ops: Record<string, unknown> = {};
  for (const [k, a] of [...acc].sort((x, y) => (x[0].startsWith(' ') ? 1 : 0) - (y[0].startsWith(' ') ? 1 : 0) || y[1].ms - x[1].ms)) {
    if (!k.startsWith(' ')) inOps += a.ms;
    ops[k] = {
      ms_per_prefill: +(a.ms / R).toFixed(3), cpu_ms_per_prefill: +(a.cpu / R).toFixed(3), share: +(a.ms / sum).toFixed(4), calls: a.calls / R,
      // GOP/s by wall time, and by CPU time per thread (what a quiet machine would give)
      ...(a.ops ? { gop_s: +(a.ops / (a.ms * 1e6)).toFixed(1), cpu_gop_s_per_thread: +(a.ops / (a.cpu * 1e6)).toFixed(1) } : {}),
    };
  }
  process.stdout.write(JSON.stringify({
    model: args.model, dtype: args.dtype, threads, backend: be.describe(), prompt: P, rounds: R,
    prefill_tok_s: +((P * 1000) / best).toFixed(1), best_ms: +best.toFixed(2), mean_ms: +(sum / R).toFixed(2),
    // all threads' CPU time (the pool's threads spin while they wait: about threads × wall)
    best_cpu_ms: +bestCpu.toFixed(2),
    outside_ops_ms: +((sum - inOps) / R).toFixed(3), totals, ops,
  }, null, 2) + '\n');
  loaded.dispose();
}

async function main(): Promise<void> {
  if (args.prefill) {
    for (const threads of args.threads!.split(',').map(Number)) await prefill(threads);
    return;
  }
  for (const threads of args.threads!.split(',').map(Number)) {
    const loaded = await loadModel(args.model!, { dtype: args.dtype as LoadDType, backend: 'wasm', threads, native, exactBlocks: args['exact-blocks'] });
    const model = loaded.model, be = loaded.backend, V = model.config.vocabSize;
    if (args.kernels === 'off') noKernels(be);
    const acc = new Map<string, Acc>(), on = { v: false };
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
    // the steps without the per-call timers (which cost about a µs a call, some of it outside the calls)
    const plain = await run(false);
    instrument(be, acc, on);
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
        ...(a.prep ? { prep_us_per_call: +((a.prep * 1000) / a.calls).toFixed(2) } : {}),
        ...(a.chunks ? { join_us_per_call: +((a.join * 1000) / a.calls).toFixed(2), chunks_per_call: a.chunks / a.calls,
          worker_chunk_share: +(a.wchunks / a.chunks).toFixed(3), asleep_per_call: +(a.asleep / a.calls).toFixed(3) } : {}),
      };
    }
    process.stdout.write(JSON.stringify({
      model: args.model, dtype: args.dtype, threads, backend: be.describe(), prompt: P, gen: G,
      ...(args.kernels === 'off' ? { kernels: 'off' } : {}),
      decode_tok_s: +(1000 / perTok).toFixed(2), ms_per_token: +perTok.toFixed(3),
      untimed_ms_per_token: +(plain.ms / G).toFixed(3), untimed_cpu_ms_per_token: +(plain.cpuMs / G).toFixed(3),
      // all threads' CPU time per token: on a shared machine the time descheduled does not count
      cpu_ms_per_token: +(cpuMs / G).toFixed(3),
      outside_ops_ms_per_token: +((total - inOps) / G).toFixed(4), outside_share: +((total - inOps) / total).toFixed(4),
      // kernel calls split over the threads, how many of them a sleeping worker joined late, and
      // the workers' share of their chunks (on a busy machine a worker that gets no core runs few)
      ...(k0 && k1 ? {
        parallel_calls_per_token: (k1.parallel - k0.parallel) / G, worker_asleep_per_token: (k1.workerAsleep - k0.workerAsleep) / G,
        worker_chunk_share: +((k1.workerChunks - k0.workerChunks) / Math.max(1, k1.chunks - k0.chunks)).toFixed(3),
        // how often the worker stopped polling (each sleep makes a later call wait for its wake-up),
        // and how long the main thread waited at the ends of the split calls for the worker's chunks
        worker_sleeps_per_token: (k1.workerSleeps - k0.workerSleeps) / G,
        join_wait_ms_per_token: +((k1.joinWaitMs - k0.joinWaitMs) / G).toFixed(4),
      } : {}),
      ops,
    }, null, 2) + '\n');
    loaded.dispose();
  }
}

main().catch((e: unknown) => { process.stderr.write(`decode-profile: ${e instanceof Error ? e.stack : String(e)}\n`); process.exitCode = 1; });
