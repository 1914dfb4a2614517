// A/B of the prefill GEMM between two versions of the WASM kernel sources: a git revision (A) and the working tree
// (B), both compiled here with AssemblyScript (relaxed-SIMD build, or --simd128) and instantiated on
// one shared memory, so both read the same weights and activations. One thread; the two alternate
// round by round and each keeps its best round by CPU time (other processes on a shared machine only
// ever slow a round down). q8/q4 run the integer GEMM (int8 activations: k_quant_rows, then
// k_linear in mode 2); f32/f16/bf16 the float one (k_linear in mode 0, f32 activations). A script,
// not a test.
//
//   npx tsc -p tsconfig.json && node dist/bench/gemm-ab.js [--rev HEAD] [--dtypes q4,q8,f16,f32,bf16]
//     [--shapes 1536x1280,1280x1024,7168x1280,1280x3584] [--m 128] [--rounds 7] [--simd128] [--q8-scales-a f32]
//
// q8 keeps one f16 scale per block; --q8-scales-a f32 gives A (a revision from before that) its own
// f32 copy of the same scales, so both builds compute with the same values.
//
// Shapes are N×K (output columns × inputs), the default ones OpenELM-270M's (qkv, out, FFN up/down).
// Prints one JSON line per dtype and shape: GOP/s (2·M·N·K per call) of A and B, B / A, and the largest
// relative difference between their outputs, and how many output values differ in any bit.

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './args.js';
import v8 from 'node:v8';
import { q4MetaBytes } from '../src/backends/weight-format.js';
import { DTYPE_CODE } from '../src/backends/wasm/kernels.js';
import { Rng } from '../src/core/rng.js';
import { f16ToF32, f32ToBf16, f32ToF16 } from '../src/core/dtype.js';
import { Wasm } from '../src/backends/wasm/wasm-api.js';
import { compileKernels, kernelSourcesAt } from './kernel-revs.js';

const { values: args } = benchArgs({
  options: {
    rev: { type: 'string', default: 'HEAD' }, dtypes: { type: 'string', default: 'q4,q8' },
    shapes: { type: 'string', default: '1536x1280,1280x1024,7168x1280,1280x3584' }, m: { type: 'string', default: '128' },
    rounds: { type: 'string', default: '7' }, simd128: { type: 'boolean', default: false },
    'q8-scales-a': { type: 'string', default: 'f16' },
  },
});
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const M = Number(args.m), ROUNDS = Number(args.rounds);
const relaxed = !args.simd128;
const Q8_A_F32 = args['q8-scales-a'] === 'f32';
if (relaxed) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');


interface K_ { k_linear(a: number, tid: number, c: number, nc: number): void; k_quant_rows(a: number, tid: number, c: number, nc: number): void; quantBytes(M: number, K: number): number; gemmScratch(): number; }

/** q8: codes −127..127, every block's scale 0.002 (f16 at scales; with --q8-scales-a f32 also in f32 at scalesA); q4: random levels, scale 0.002 (code 200), min −0.015 (code −100);
 * f32/f16/bf16: normal values of standard deviation 0.02. */
function fillWeight(mem: Uint8Array, data: number, scales: number, scalesA: number, dtype: string, N: number, K: number, rng: Rng): void {
  const n = N * K;
  if (dtype === 'f32') { const w = new Float32Array(mem.buffer, data, n); for (let i = 0; i < n; i++) w[i] = 0.02 * rng.normal(); return; }
  if (dtype === 'f16' || dtype === 'bf16') {
    const w = new Uint16Array(mem.buffer, data, n), enc = dtype === 'f16' ? f32ToF16 : f32ToBf16;
    for (let i = 0; i < n; i++) w[i] = enc(0.02 * rng.normal());
    return;
  }
  if (dtype === 'q8') {
    for (let i = 0; i < n; i++) mem[data + i] = (rng.int(255) - 127) & 255;
    const h = f32ToF16(0.002);
    new Uint16Array(mem.buffer, scales, n / 32).fill(h);
    if (Q8_A_F32) new Float32Array(mem.buffer, scalesA, n / 32).fill(f16ToF32(h));
    return;
  }
  for (let i = 0; i < n / 2; i++) mem[data + i] = rng.int(256);
  const mb = q4MetaBytes(K), dv = new DataView(mem.buffer, scales, N * mb);
  for (let r = 0; r < N; r++) {
    dv.setFloat32(r * mb, 0.002 / 200, true); dv.setFloat32(r * mb + 4, 0.015 / 100, true);
    mem.fill(200, scales + r * mb + 8, scales + r * mb + 8 + K / 32); mem.fill(-100 & 255, scales + r * mb + 8 + K / 32, scales + r * mb + 8 + K / 16);
  }
}

async function main(): Promise<void> {
  const [modA, modB] = await Promise.all([compileKernels(kernelSourcesAt(root, args.rev!), relaxed), compileKernels(kernelSourcesAt(root, null), relaxed)]);
  const shapes = args.shapes!.split(',').map((s) => s.split('x').map(Number) as [number, number]);
  const maxN = Math.max(...shapes.map((s) => s[0])), maxK = Math.max(...shapes.map((s) => s[1]));
  const base = 65536;
  const bytes = M * maxK * 4 + M * maxN * 4 + 2 * (4 * M * maxK + M * maxK) + maxN * maxK * 4 + maxN * maxK / 8 + (16 << 20);
  const memory = new Wasm!.Memory({ initial: Math.ceil((base + bytes) / 65536), maximum: 65536, shared: true });
  const inst = [modA, modB].map((m) => new Wasm!.Instance(m, { env: { memory } }).exports as unknown as K_);
  const buf = memory.buffer as unknown as ArrayBuffer;
  const u8 = new Uint8Array(buf), ai = new Int32Array(buf, 512, 64);
  const rng = new Rng(1);
  const x = base, out = x + M * maxK * 4 + 64, prep = out + M * maxN * 4 + 64;
  const scratch = prep + Math.max(...inst.map((k) => k.quantBytes(M, maxK))) + 64;
  const data = scratch + Math.max(...inst.map((k) => k.gemmScratch())) + 64;
  const scales = data + maxN * maxK * 4 + 64, scalesA = scales + maxN * maxK / 4 + 64;
  const xv = new Float32Array(buf, x, M * maxK);
  for (let i = 0; i < xv.length; i++) xv[i] = rng.normal();
  for (const dtype of args.dtypes!.split(',')) {
    const code = DTYPE_CODE[dtype as keyof typeof DTYPE_CODE];
    if (!['q8', 'q4', 'f32', 'f16', 'bf16'].includes(dtype)) throw new Error(`dtype ${dtype}: q8, q4, f32, f16 or bf16`);
    const int = dtype === 'q8' || dtype === 'q4';
    for (const [N, K] of shapes) {
      fillWeight(u8, data, scales, scalesA, dtype, N, K, rng);
      const call = (k: K_) => {
        ai[0] = out; ai[1] = x; ai[2] = data; ai[3] = dtype === 'q8' && Q8_A_F32 && k === inst[0] ? scalesA : scales; ai[4] = 0; ai[5] = code; ai[6] = M; ai[7] = N; ai[8] = K; ai[9] = 0;
        ai[10] = scratch; ai[11] = 0; ai[12] = int ? 2 : 0; ai[13] = prep; ai[14] = 0; ai[15] = 0;
        if (int) k.k_quant_rows(512, 0, 0, 1);
        k.k_linear(512, 0, 0, 1);
      };
      call(inst[0]); const ra = new Float32Array(buf, out, M * N).slice();
      call(inst[1]); const rb = new Float32Array(buf, out, M * N);
      let maxRel = 0, maxAbs = 0;
      for (let i = 0; i < ra.length; i++) maxAbs = Math.max(maxAbs, Math.abs(ra[i]));
      for (let i = 0; i < ra.length; i++) maxRel = Math.max(maxRel, Math.abs(ra[i] - rb[i]) / maxAbs);
      const ua = new Uint32Array(ra.buffer, ra.byteOffset, ra.length), ub = new Uint32Array(rb.slice().buffer);
      let bitDiffs = 0;
      for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) bitDiffs++;
      const reps = Math.max(1, Math.round(2e9 / (2 * M * N * K)));
      const best = [Infinity, Infinity];
      for (let r = 0; r < ROUNDS; r++) {
        for (const v of r % 2 ? [1, 0] : [0, 1]) {
          const c0 = process.cpuUsage();
          for (let i = 0; i < reps; i++) call(inst[v]);
          const c = process.cpuUsage(c0);
          best[v] = Math.min(best[v], (c.user + c.system) / 1000 / reps);
        }
      }
      const gops = best.map((ms) => +((2 * M * N * K) / (ms * 1e6)).toFixed(1));
      process.stdout.write(JSON.stringify({
        dtype, N, K, M, build: relaxed ? 'relaxed' : 'simd128', a: args.rev, b: 'working tree',
        a_gop_s: gops[0], b_gop_s: gops[1], b_over_a: +(gops[1] / gops[0]).toFixed(3),
        a_ms: +best[0].toFixed(3), b_ms: +best[1].toFixed(3), max_diff_over_max_abs: +maxRel.toExponential(2), bit_diffs: bitDiffs,
      }) + '\n');
    }
  }
}

main().catch((e: unknown) => { process.stderr.write(`gemm-ab: ${e instanceof Error ? e.stack : String(e)}\n`); process.exitCode = 1; });
