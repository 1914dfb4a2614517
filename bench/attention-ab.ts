// A/B of decode attention (k_attention, one query row over a KV cache) between two versions of the
// WASM kernel sources: a git revision (A) and the working tree (B), compiled here and instantiated
// on one shared memory, so both read the same caches. One thread runs every chunk of a call in
// turn, each chunk timed: the sum is the call's work, and a greedy claim of the timed chunks by
// --threads threads (what pool.ts does) gives the call's span without another thread disturbing
// it. Each layer has its own cache, so a round touches as many KV bytes as a decode token does.
// A script, not a test.
//
//   npx tsc -p tsconfig.json && node dist/bench/attention-ab.js [--rev HEAD] [--q 16] [--hkv 4] [--hd 64]
//     [--pos 192] [--layers 16] [--rows 1] [--threads 2] [--rounds 15]
//
// Prints one JSON line: µs per call (work and span) of A and B, the KV bytes read per call with the
// GB/s that makes, and how many outputs differ in any bit.

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './args.js';
import v8 from 'node:v8';
import { Rng } from '../src/core/rng.js';
import { Wasm } from '../src/backends/wasm/wasm-api.js';
import { compileKernels, kernelSourcesAt } from './kernel-revs.js';

const { values: args } = benchArgs({
  options: {
    rev: { type: 'string', default: 'HEAD' }, q: { type: 'string', default: '16' }, hkv: { type: 'string', default: '4' },
    hd: { type: 'string', default: '64' }, pos: { type: 'string', default: '192' }, layers: { type: 'string', default: '16' },
    rows: { type: 'string', default: '1' }, threads: { type: 'string', default: '2' }, rounds: { type: 'string', default: '15' },
    simd128: { type: 'boolean', default: false },
  },
});
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const Q = Number(args.q), H = Number(args.hkv), hd = Number(args.hd), S = Number(args.rows);
const L = Number(args.layers), T = Number(args.threads), ROUNDS = Number(args.rounds);
const P = Number(args.pos) - S, cap = P + S;
const relaxed = !args.simd128;
if (relaxed) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');

interface K_ { k_attention(a: number, tid: number, c: number, nc: number): void; attentionScratch(G: number, hd: number): number; attentionSplit?(S: number, Q: number, Hkv: number, threads: number): number; }

/** Chunk count the backend asks for: up to 4 per thread, capped by the kernel's items (a split call: one per item). */
function chunksOf(k: K_): number {
  const split = splitOf(k), items = S * H * split;
  return split > 1 ? items : Math.max(1, Math.min(items, T * 4));
}

/** Parts each kv head's query heads are split into (kernels before the split have none). */
const splitOf = (k: K_): number => (k.attentionSplit ? k.attentionSplit(S, Q, H, T) : 1);

/** Greedy dynamic claiming of chunks (in order) by T threads: when the last one finishes. */
function span(chunkUs: number[]): number {
  const free = new Array<number>(T).fill(0);
  for (const c of chunkUs) { let t = 0; for (let i = 1; i < T; i++) if (free[i] < free[t]) t = i; free[t] += c; }
  return Math.max(...free);
}

async function main(): Promise<void> {
  const [modA, modB] = await Promise.all([compileKernels(kernelSourcesAt(root, args.rev!), relaxed), compileKernels(kernelSourcesAt(root, null), relaxed)]);
  const W = (Q + 2 * H) * hd, cacheF = H * cap * hd;
  const base = 65536, scratchStride = 1 << 16;
  const qkvOff = base, outOff = qkvOff + S * W * 4 + 64, scrOff = outOff + S * Q * hd * 4 + 64;
  const cacheOff = scrOff + scratchStride * 2 + 64;
  const bytes = cacheOff + L * 2 * cacheF * 4 + 64;
  const memory = new Wasm!.Memory({ initial: Math.ceil(bytes / 65536), maximum: 65536, shared: true });
  const inst = [modA, modB].map((m) => new Wasm!.Instance(m, { env: { memory } }).exports as unknown as K_);
  const buf = memory.buffer as unknown as ArrayBuffer;
  const ai = new Int32Array(buf, 512, 64);
  const rng = new Rng(1);
  const fill = (off: number, n: number) => { const v = new Float32Array(buf, off, n); for (let i = 0; i < n; i++) v[i] = rng.normal(); };
  fill(qkvOff, S * W);
  for (let l = 0; l < L; l++) fill(cacheOff + l * 2 * cacheF * 4, 2 * cacheF);
  const call = (k: K_, l: number, c: number, nc: number) => {
    const kc = cacheOff + l * 2 * cacheF * 4;
    ai[0] = outOff; ai[1] = qkvOff; ai[2] = kc; ai[3] = kc + cacheF * 4; ai[4] = S; ai[5] = P; ai[6] = Q; ai[7] = H; ai[8] = hd; ai[9] = cap;
    ai[10] = scrOff; ai[11] = scratchStride; ai[12] = splitOf(k);
    k.k_attention(512, 0, c, nc);
  };
  const outs = inst.map((k) => { const nc = chunksOf(k); for (let c = 0; c < nc; c++) call(k, 0, c, nc); return new Float32Array(buf, outOff, S * Q * hd).slice(); });
  let differ = 0, maxRel = 0;
  for (let i = 0; i < outs[0].length; i++) {
    if (outs[0][i] !== outs[1][i]) differ++;
    maxRel = Math.max(maxRel, Math.abs(outs[0][i] - outs[1][i]) / (Math.abs(outs[0][i]) + 1e-6));
  }
  const work = [Infinity, Infinity], spans = [Infinity, Infinity];
  for (let r = 0; r < ROUNDS; r++) {
    for (const v of r % 2 ? [1, 0] : [0, 1]) {
      const k = inst[v], nc = chunksOf(k);
      let w = 0, sp = 0;
      for (let l = 0; l < L; l++) {
        const us: number[] = [];
        for (let c = 0; c < nc; c++) { const t0 = performance.now(); call(k, l, c, nc); us.push((performance.now() - t0) * 1000); }
        w += us.reduce((a, b) => a + b, 0); sp += span(us);
      }
      work[v] = Math.min(work[v], w / L); spans[v] = Math.min(spans[v], sp / L);
    }
  }
  const kvBytes = 2 * H * (P + S) * hd * 4;
  process.stdout.write(JSON.stringify({
    Q, Hkv: H, hd, positions: P + S, rows: S, threads: T, build: relaxed ? 'relaxed' : 'simd128', a: args.rev, b: 'working tree',
    chunks: inst.map(chunksOf), a_work_us: +work[0].toFixed(2), b_work_us: +work[1].toFixed(2), a_span_us: +spans[0].toFixed(2), b_span_us: +spans[1].toFixed(2),
    b_speedup: +(spans[0] / spans[1]).toFixed(3), kv_kb: +(kvBytes / 1024).toFixed(1),
    a_kv_gb_s: +(kvBytes / (work[0] * 1e3)).toFixed(2), b_kv_gb_s: +(kvBytes / (work[1] * 1e3)).toFixed(2),
    outputs_differing: differ, max_rel_diff: +maxRel.toExponential(2),
  }) + '\n');
}

main().catch((e: unknown) => { process.stderr.write(`attention-ab: ${e instanceof Error ? e.stack : String(e)}\n`); process.exitCode = 1; });
