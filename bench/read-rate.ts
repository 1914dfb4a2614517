// This machine's memory read rate as a decode kernel sees it: the best of several one-token f32
// GEMVs (one multiply-add per 4 bytes read, so memory, not arithmetic, bounds them) over a 512 MB
// weight on the wasm backend with T threads. Decode streams every weight once per token, so a
// model's decode GB/s next to this figure shows how far it is from the machine's limit.
//
//   node dist/bench/read-rate.js [--threads 2] [--mb 512] [--rounds 7]   (prints one JSON line)

import { benchArgs } from './args.js';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import '../src/platform/node.js';
import { createBackend } from '../src/backends/index.js';

/** GB/s (decimal) of the fastest of `rounds` f32 GEMVs over `mb` MB, on T threads. */
export async function readRate(T: number, mb = 512, rounds = 7): Promise<number> {
  const be = await createBackend('wasm', { threads: T, native: 'off' });
  const K = 2048, N = Math.floor((mb * 1e6) / (4 * K));
  const w = be.allocWeight('f32', N, K);
  const data = w.data as Float32Array;
  for (let i = 0; i < data.length; i += 1024) data.fill(((i >> 10) % 7) * 0.01, i, Math.min(i + 1024, data.length));
  be.prepareWeight(w);
  const x = be.alloc(K), out = be.alloc(N);
  be.write(x, new Float32Array(K).fill(0.5));
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    be.linear(out, x, w, 1);
    await be.read(out, 0, 1); // waits for the call where a backend queues work
    best = Math.min(best, performance.now() - t0);
  }
  be.freeWeight(w); be.free(x); be.free(out);
  be.dispose();
  return (N * K * 4) / (best / 1000) / 1e9;
}

/** readRate in a child process, so its 512 MB never sits in the caller's peak RSS. */
export function readRateChild(T: number, mb = 512): number | null {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--threads', String(T), '--mb', String(mb)], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { read_gb_s: number }).read_gb_s;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = benchArgs({ options: { threads: { type: 'string', default: '2' }, mb: { type: 'string', default: '512' }, rounds: { type: 'string', default: '7' } } });
  const T = Number(values.threads), mb = Number(values.mb), R = Number(values.rounds);
  readRate(T, mb, R).then((g) => {
    process.stdout.write(JSON.stringify({ threads: T, mb, read_gb_s: Math.round(g * 100) / 100 }) + '\n');
  }, (e: unknown) => { process.stderr.write(`read-rate: ${e instanceof Error ? e.message : String(e)}\n`); process.exitCode = 1; });
}
