// A/B of whole decode steps between two built checkouts (A and B), in one process: each loads the
// model through its own dist/src/api.js on its own wasm backend, and the two run alternating blocks
// of --block greedy tokens (A first in even pairs, B first in odd ones). On a shared machine the other
// processes' load then falls on both alike, where separate `openelm bench` runs a minute apart
// measured 2x apart. Reports each side's median and 10th-percentile ms per token over the blocks,
// their ratios (A / B: above 1, B is faster) and in how many pairs B's block was faster; an A/A run
// (the same checkout twice) shows the method's own spread. A script, not a test.
//
//   npx tsc -p tsconfig.json && node dist/bench/decode-ab.js --a /path/to/other/checkout [--b .]
//     --model DIR [--dtype q8] [--threads 2] [--pairs 60] [--block 8] [--prompt 128]

import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { benchArgs } from './args.js';

const { values: args } = benchArgs({
  options: {
    a: { type: 'string' }, b: { type: 'string', default: '.' }, model: { type: 'string' },
    dtype: { type: 'string', default: 'q8' }, threads: { type: 'string', default: '2' },
    pairs: { type: 'string', default: '60' }, block: { type: 'string', default: '8' }, prompt: { type: 'string', default: '128' },
  },
});
if (!args.a || !args.model) throw new Error('--a CHECKOUT and --model DIR are required');
const P = Number(args.prompt), B = Number(args.block), N = Number(args.pairs), threads = Number(args.threads);
/** Cache room: the prompt and 32 blocks; then a fresh cache and prompt (untimed). */
const CAP = P + 32 * B;

interface Side { block(): Promise<number>; dispose(): void }

/** What this script uses of a checkout's api.js (any version that has loadModel and forwardDevice). */
interface Api {
  loadModel(src: string, o: object): Promise<{
    model: { config: { vocabSize: number }; newCache(n: number): Cache; forward(i: object[]): Promise<Float32Array>;
      forwardDevice(i: object[]): { logits: unknown; rows: number } };
    backend: { argmax(x: unknown, rows: number, V: number): Promise<Int32Array> };
    dispose(): void;
  }>;
}
interface Cache { length: number; dispose(): void }

async function side(checkout: string): Promise<Side> {
  const api = await import(pathToFileURL(path.resolve(checkout, 'dist/src/api.js')).href) as Api;
  const loaded = await api.loadModel(args.model!, { dtype: args.dtype, backend: 'wasm', threads, native: 'off' });
  const m = loaded.model, be = loaded.backend, V = m.config.vocabSize;
  let cache: Cache | null = null, tok = 5;
  const fresh = async () => {
    cache?.dispose();
    cache = m.newCache(CAP);
    await m.forward([{ cache, tokens: Array.from({ length: P }, (_, i) => (i * 7919 + 11) % V) }]);
  };
  await fresh();
  return {
    async block() {
      if (cache!.length + B > CAP) await fresh();
      const t0 = performance.now();
      for (let i = 0; i < B; i++) {
        const { logits, rows } = m.forwardDevice([{ cache, tokens: [tok] }]);
        tok = (await be.argmax(logits, rows, V))[0];
      }
      return (performance.now() - t0) / B;
    },
    dispose: () => { cache?.dispose(); loaded.dispose(); },
  };
}

async function main(): Promise<void> {
  const A = await side(args.a!), Bs = await side(args.b!);
  for (let i = 0; i < 4; i++) { await A.block(); await Bs.block(); }
  const a: number[] = [], b: number[] = [];
  for (let i = 0; i < N; i++) {
    if (i % 2) { b.push(await Bs.block()); a.push(await A.block()); } else { a.push(await A.block()); b.push(await Bs.block()); }
  }
  const q = (x: number[], f: number) => [...x].sort((u, v) => u - v)[Math.floor(f * (x.length - 1))];
  process.stdout.write(JSON.stringify({
    model: args.model, dtype: args.dtype, threads, pairs: N, block: B, a: args.a, b: args.b,
    a_ms_median: +q(a, 0.5).toFixed(3), b_ms_median: +q(b, 0.5).toFixed(3), a_ms_p10: +q(a, 0.1).toFixed(3), b_ms_p10: +q(b, 0.1).toFixed(3),
    ratio_median: +(q(a, 0.5) / q(b, 0.5)).toFixed(4), ratio_p10: +(q(a, 0.1) / q(b, 0.1)).toFixed(4),
    b_faster_pairs: `${a.filter((v, i) => b[i] < v).length}/${N}`,
  }) + '\n');
  A.dispose(); Bs.dispose();
}

main().catch((e: unknown) => { process.stderr.write(`decode-ab: ${e instanceof Error ? e.stack : String(e)}\n`); process.exitCode = 1; });
