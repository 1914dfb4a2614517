// A/B of the one-token GEMV (decode's kernel) between two versions of the WASM kernel sources: a
// git revision (A) and the working tree (B), both compiled here with AssemblyScript (relaxed-SIMD
// build, or --simd128) and instantiated on one shared memory, so both read the same weights. One
// thread; the two alternate call by call set by set, and each keeps its best round, since other
// processes on a shared machine only ever slow a round down. Weights cycle through --mb MB of distinct
// matrices so they come from DRAM, as in a real decode step. A script, not a test.
//
//   npx tsc -p tsconfig.json && node dist/bench/gemv-ab.js [--rev HEAD] [--dtypes f16,q8,q4,q4_0,q8_0,q4_k,q6_k]
//     [--n 3840] [--k 1280] [--mb 512] [--rounds 7] [--rows 1] [--simd128] [--f16-std 0.02] [--exact-blocks]
//     [--q8-scales-a f32] [--q8-exact-scales] [--f16-fast auto|0|1] [--held-a] [--seed 1]
//
// q8 keeps one f16 scale per block; --q8-scales-a f32 gives A (a revision from before that) its own
// f32 copy of the same scales, so both builds compute with the same values, each streaming its own
// scales (GB/s count each side's own bytes; compare the times, a_us and b_us). --q8-exact-scales
// runs B's q8 GEMV on the exact scale widening meant for weights with subnormal scales.
//
// f16: --f16-fast 1 passes the flag that lets a build's f16 GEMV take denormal operands (wasm-backend.ts
// sets it where kernels.ts denormalsFast finds them as fast as normal ones; auto: the same test here);
// builds before the flag ignore it.
//
// Q8_0/Q4_0/Q4_K/Q6_K run with int8 activations, the backend's default, where a build has that kernel (a
// revision before it runs them exact); --exact-blocks runs both builds on the exact f32 path.
//
// q4_k, q6_k: B (the working tree) runs them repacked as the wasm backend holds them (q4k-repack.ts, 152 bytes per
// 256 values instead of 144; q6k-repack.ts, 212 instead of 210), from its own copy of the same weights, when its kernels have that
// layout; GB/s count each side's own bytes (compare the times, a_us and b_us). q8_0 and q4_0: B runs
// them regrouped as the wasm backend holds them (gguf-repack.ts: Q8_0 as q8's layout on q8's GEMV,
// Q4_0 with each row's halves before its nibbles), from its own copy of the same bytes, with the
// halves' fast-widening flag the backend computes; their d's are made positive, as a quantizer's are.
// --held-a: A runs those four from the held layout as well (the same bytes), to compare two
// revisions' kernels of the held layout rather than the stored one's.
//
// f16, one row of x: each build's error against the float64 sum of the same products, relative to the sum
// of their magnitudes (f64_max_*, f64_mean_* over the N outputs), to judge a change of summation order;
// --seed draws other weights and x.
//
// Prints one JSON line per dtype: weight GB/s of A and B (best round, by wall and by CPU time) and B / A.

import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './args.js';
import v8 from 'node:v8';
import { BLOCK_FORMATS, isBlockDType, q4MetaBytes } from '../src/backends/weight-format.js';
import { DTYPE_CODE, denormalsFast, type KernelExports } from '../src/backends/wasm/kernels.js';
import { f16ToF32, f32ToF16 } from '../src/core/dtype.js';
import { Rng } from '../src/core/rng.js';
import { Wasm } from '../src/backends/wasm/wasm-api.js';
import { compileKernels, kernelSourcesAt } from './kernel-revs.js';
import { randomBlocks } from '../test/helpers/blocks.js';
import { Q4KR_BYTES, repackQ4K } from '../src/backends/q4k-repack.js';
import { HALF_SLOW, q4_0HalfBits, q8_0HalfBits, repackQ4_0, repackQ8_0 } from '../src/backends/gguf-repack.js';
import { Q6KR_BYTES, repackQ6K } from '../src/backends/q6k-repack.js';

const { values: args } = benchArgs({
  options: {
    rev: { type: 'string', default: 'HEAD' }, dtypes: { type: 'string', default: 'f16,q8,q4,q4_0,q8_0,q4_k,q6_k' },
    n: { type: 'string', default: '3840' }, k: { type: 'string', default: '1280' }, mb: { type: 'string', default: '512' },
    rounds: { type: 'string', default: '7' }, 'f16-std': { type: 'string', default: '0.02' }, rows: { type: 'string', default: '1' }, simd128: { type: 'boolean', default: false },
    'exact-blocks': { type: 'boolean', default: false }, 'q8-scales-a': { type: 'string', default: 'f16' }, 'q8-exact-scales': { type: 'boolean', default: false },
    'f16-fast': { type: 'string', default: 'auto' }, 'held-a': { type: 'boolean', default: false }, seed: { type: 'string', default: '1' },
  },
});
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const N = Number(args.n), K = Number(args.k), M = Number(args.rows), ROUNDS = Number(args.rounds);
const relaxed = !args.simd128;
const Q8_A_F32 = args['q8-scales-a'] === 'f32';
if (relaxed) v8.setFlagsFromString('--experimental-wasm-relaxed-simd');


interface K_ { k_linear(a: number, tid: number, c: number, nc: number): void; k_prep_x(a: number): void; prepBytes(K: number): number; gemmScratch(): number; f16SubnormalMap?(w: number, N: number, K: number, map: number): void; denormalProbe?(n: number, den: number): number; }

/** Bytes of one N×K weight's parts: [data, scales, mins]. */
function partBytes(dtype: string): number[] {
  const n = N * K;
  if (isBlockDType(dtype)) return [(n / BLOCK_FORMATS[dtype].elems) * BLOCK_FORMATS[dtype].bytes];
  if (dtype === 'f16') return [2 * n, N * (((K >> 4) + 31) >> 5) * 4];   // data, subnormal map
  if (dtype === 'bf16') return [2 * n];
  if (dtype === 'f32') return [4 * n];
  // q8: codes, f16 scales (and A's f32 copy of them with --q8-scales-a f32)
  if (dtype === 'q8') return Q8_A_F32 ? [n, n / 16, n / 8] : [n, n / 16];
  return [n / 2, N * q4MetaBytes(K)];
}

function fillWeight(mem: Uint8Array, offs: number[], dtype: string, rng: Rng): void {
  const n = N * K;
  if (isBlockDType(dtype)) {
    const b = randomBlocks(rng, dtype, N, K);
    // Q8_0/Q4_0: d = max|w|/127 (or /8) is positive in a quantized file (randomBlocks makes a fifth negative)
    if (dtype === 'q8_0' || dtype === 'q4_0') for (let o = 0, bb = BLOCK_FORMATS[dtype].bytes; o < b.length; o += bb) b[o + 1] &= 0x7f;
    mem.set(b, offs[0]);
    return;
  }
  if (dtype === 'f16') {
    // N(0, 0.02²) weights, as an initialised or trained layer: ~0.25% of them are f16 subnormals
    const d = new Uint16Array(mem.buffer, offs[0], n);
    const std = Number(args['f16-std']);
    let sub = 0;
    for (let i = 0; i < n; i++) { d[i] = f32ToF16(rng.normal() * std); if ((d[i] & 0x7c00) === 0 && (d[i] & 0x3ff) !== 0) sub++; }
    process.stderr.write(`f16 weights: ${((100 * sub) / n).toFixed(3)}% subnormal\n`);
    return;
  }
  if (dtype === 'q8' || dtype === 'q4') {
    const d = mem.subarray(offs[0], offs[0] + partBytes(dtype)[0]);
    for (let i = 0; i < d.length; i++) d[i] = dtype === 'q8' ? (rng.int(255) - 127) & 255 : rng.int(256);
    if (dtype === 'q8') {
      const h = f32ToF16(0.002);
      new Uint16Array(mem.buffer, offs[1], n / 32).fill(h);
      if (Q8_A_F32) new Float32Array(mem.buffer, offs[2], n / 32).fill(f16ToF32(h));
      return;
    }
    // q4: every block's scale 0.002 (code 200), min −0.015 (code −100)
    const mb = q4MetaBytes(K), dv = new DataView(mem.buffer, offs[1], N * mb);
    for (let r = 0; r < N; r++) {
      dv.setFloat32(r * mb, 0.002 / 200, true); dv.setFloat32(r * mb + 4, 0.015 / 100, true);
      mem.fill(200, offs[1] + r * mb + 8, offs[1] + r * mb + 8 + K / 32); mem.fill(-100 & 255, offs[1] + r * mb + 8 + K / 32, offs[1] + r * mb + 8 + K / 16);
    }
    return;
  }
  throw new Error(`dtype ${dtype} not supported here`);
}

async function main(): Promise<void> {
  const [modA, modB] = await Promise.all([compileKernels(kernelSourcesAt(root, args.rev!), relaxed), compileKernels(kernelSourcesAt(root, null), relaxed)]);
  const dtypes = args.dtypes!.split(',');
  const maxSet = Math.max(...dtypes.map((d) => partBytes(d).reduce((a, b) => a + b + 64, 0)));
  const base = 65536, fixed = 64 << 20, pool = 2.1 * (Number(args.mb) * 1e6 + 2 * maxSet);   // q4_k, q6_k: B has a repacked copy (152/144, 212/210 of the size) after A's sets
  const memory = new Wasm!.Memory({ initial: Math.ceil((base + fixed + pool) / 65536), maximum: 65536, shared: true });
  const inst = [modA, modB].map((m) => new Wasm!.Instance(m, { env: { memory } }).exports as unknown as K_);
  const buf = memory.buffer as unknown as ArrayBuffer;
  const u8 = new Uint8Array(buf), ai = new Int32Array(buf, 512, 64);
  const prober = inst.find((k) => k.denormalProbe);
  const f16Fast = args['f16-fast'] === 'auto' ? prober !== undefined && denormalsFast(prober as unknown as KernelExports) : args['f16-fast'] === '1';
  if (dtypes.includes('f16')) process.stderr.write(`f16: denormal operands ${f16Fast ? 'allowed' : 'avoided'}\n`);
  const rng = new Rng(Number(args.seed));
  const x = base, out = x + M * K * 4 + 64, prep = out + M * N * 4 + 64, scratch = prep + M * inst[1].prepBytes(K) + 64;
  const xv = new Float32Array(buf, x, M * K);
  for (let i = 0; i < xv.length; i++) xv[i] = rng.normal();
  for (const dtype of dtypes) {
    const code = DTYPE_CODE[dtype as keyof typeof DTYPE_CODE];
    if (code === undefined) throw new Error(`unknown dtype ${dtype}`);
    const parts = partBytes(dtype);
    const stride = parts.reduce((a, b) => a + b + 64, 0);
    const sets = Math.max(2, Math.ceil((Number(args.mb) * 1e6) / stride));
    const offs: number[][] = [];
    for (let s = 0; s < sets; s++) {
      let o = base + fixed + s * stride;
      offs.push(parts.map((b) => { const r = o; o += b + 64; return r; }));
    }
    // B's repacked q4_k / q6_k (regrouped q8_0, q4_0) sets, after A's
    const codes = DTYPE_CODE as Record<string, number>;
    const regroupB = (dtype === 'q8_0' && 'q8_0_r' in codes) || (dtype === 'q4_0' && 'q4_0_r' in codes);
    const bCode = dtype === 'q4_k' ? codes.q4_k_r : dtype === 'q6_k' ? codes.q6_k_r : !regroupB ? undefined : dtype === 'q8_0' ? codes.q8 : codes.q4_0_r;
    const repackB = bCode !== undefined;
    const bBytes = !repackB ? 0 : regroupB ? parts[0] : (N * K / 256) * (dtype === 'q4_k' ? Q4KR_BYTES : Q6KR_BYTES), bStride = bBytes + 64;
    const offsB = repackB ? Array.from({ length: sets }, (_, s) => [base + fixed + sets * stride + s * bStride]) : offs;
    // one set of random weights, copied to the others: distinct addresses are what keeps them out of the caches
    fillWeight(u8, offs[0], dtype, rng);
    // f16: the subnormal map prepareWeight makes (builds before it ignore the slot)
    const mapper = inst.find((k) => k.f16SubnormalMap)?.f16SubnormalMap;
    if (dtype === 'f16' && mapper) mapper(offs[0][0], N, K, offs[0][1]);
    for (let s = 1; s < sets; s++) u8.copyWithin(offs[s][0], offs[0][0], offs[0][0] + stride - 64);
    if (repackB) {
      const src = u8.subarray(offs[0][0], offs[0][0] + parts[0]), dst = u8.subarray(offsB[0][0], offsB[0][0] + bBytes);
      if (dtype === 'q8_0') repackQ8_0(src, dst, (N * K) / 32);
      else if (dtype === 'q4_0') repackQ4_0(src, dst, N, K / 32);
      else (dtype === 'q4_k' ? repackQ4K : repackQ6K)(src, dst, (N * K) / 256);
      for (let s = 1; s < sets; s++) u8.copyWithin(offsB[s][0], offsB[0][0], offsB[0][0] + bBytes);
    }
    // regrouped q8_0 / q4_0: the flag wasm-backend.ts computes (every half one the fast widening takes:
    // Q8_0 positive normal ones, Q4_0 normal ones of either sign)
    const halvesB = (o: number) => dtype === 'q8_0' ? [new Uint16Array(u8.buffer, o + N * K, (N * K) / 32)]
      : Array.from({ length: N }, (_, r) => new Uint16Array(u8.buffer, o + r * (K / 32) * 18, K / 32));
    const fastB = regroupB && halvesB(offsB[0][0]).every((hs) => !((dtype === 'q8_0' ? q8_0HalfBits : q4_0HalfBits)(hs) & HALF_SLOW)) ? 1 : 0;
    if (regroupB) process.stderr.write(`${dtype}: B regrouped, halves ${fastB ? 'all normal (fast widening)' : 'widened exactly'}\n`);
    // --held-a: A runs the held layout too (the same bytes as B's), for a revision that has it
    const heldA = args['held-a'] && repackB;
    const call = (k: K_, s: number) => {
      const held = k === inst[1] || heldA;
      const [d, sc, mn] = held ? offsB[s] : offs[s], q8A = dtype === 'q8' && Q8_A_F32;
      if (regroupB && held) {
        ai[0] = out; ai[1] = x; ai[2] = d; ai[3] = dtype === 'q8_0' ? d + N * K : 0; ai[4] = fastB; ai[5] = bCode!; ai[6] = M; ai[7] = N; ai[8] = K; ai[9] = 0;
        ai[10] = scratch; ai[11] = 1 << 20; ai[12] = 1; ai[13] = prep; ai[14] = 0; ai[15] = args['exact-blocks'] ? 0 : 1;
        // (--exact-blocks: q8_0 regrouped runs its exact walker under its own code)
        if (args['exact-blocks'] && dtype === 'q8_0') ai[5] = codes.q8_0_r;
        k.k_prep_x(512);
        k.k_linear(512, 0, 0, 1);
        return;
      }
      // q8: the mins slot says every scale is a positive normal half (wasm-backend.ts prepareWeight), as 0.002 is
      ai[0] = out; ai[1] = x; ai[2] = d; ai[3] = (q8A && k === inst[0] ? mn : sc) ?? 0; ai[4] = dtype === 'q8' ? Number(!args['q8-exact-scales']) : dtype === 'f16' ? Number(f16Fast) : mn ?? 0; ai[5] = repackB && held ? bCode : code; ai[6] = M; ai[7] = N; ai[8] = K; ai[9] = 0;
      ai[10] = scratch; ai[11] = 1 << 20; ai[12] = 1; ai[13] = prep; ai[14] = 0; ai[15] = args['exact-blocks'] ? 0 : 1;
      k.k_prep_x(512);
      k.k_linear(512, 0, 0, 1);
    };
    // the two builds must agree (same kernels up to the change under test)
    // V8 runs a function on its baseline compiler until enough work has gone through it; a kernel
    // with a tighter inner loop can take more calls to reach optimized code than the other build's,
    // so both warm up for a fixed time first (a real decode calls each kernel thousands of times)
    for (const k of inst) { const t = performance.now(); for (let i = 0; performance.now() - t < 400; i++) call(k, i % sets); }
    call(inst[0], 0); const ra = new Float32Array(buf, out, M * N).slice();
    call(inst[1], 0); const rb = new Float32Array(buf, out, M * N);
    let maxRel = 0;
    for (let i = 0; i < ra.length; i++) maxRel = Math.max(maxRel, Math.abs(ra[i] - rb[i]) / (Math.abs(ra[i]) + 1e-6));
    // f16: each side's error against the float64 sum, relative to the sum of |terms| (M = 1)
    const f64err: Record<string, number> = {};
    if (dtype === 'f16' && M === 1) {
      const wv = new Uint16Array(buf, offs[0][0], N * K);
      let ma = 0, mb = 0, sa = 0, sb = 0;
      for (let n = 0; n < N; n++) {
        let s = 0, t = 0;
        for (let k = 0; k < K; k++) { const p = f16ToF32(wv[n * K + k]) * xv[k]; s += p; t += Math.abs(p); }
        const ea = Math.abs(ra[n] - s) / t, eb = Math.abs(rb[n] - s) / t;
        ma = Math.max(ma, ea); mb = Math.max(mb, eb); sa += ea; sb += eb;
      }
      Object.assign(f64err, { f64_max_a: +ma.toExponential(3), f64_max_b: +mb.toExponential(3), f64_mean_a: +(sa / N).toExponential(3), f64_mean_b: +(sb / N).toExponential(3) });
    }
    // wall time, and this process's CPU time (on a machine shared with other jobs the time this
    // thread was descheduled does not count there; the process is this one thread but for V8's)
    const best = [Infinity, Infinity], bestCpu = [Infinity, Infinity];
    for (let r = 0; r < ROUNDS; r++) {
      for (const v of r % 2 ? [1, 0] : [0, 1]) {
        const c0 = process.cpuUsage(), t0 = performance.now();
        for (let s = 0; s < sets; s++) call(inst[v], s);
        const ms = performance.now() - t0, c = process.cpuUsage(c0);
        best[v] = Math.min(best[v], ms / sets);
        bestCpu[v] = Math.min(bestCpu[v], (c.user + c.system) / 1000 / sets);
      }
    }
    // the bytes each side streams (with --q8-scales-a f32, A reads the f32 scales and B the f16 ones)
    const bytesOf = (v: number) => repackB && (v === 1 || heldA) ? bBytes : dtype === 'q8' && Q8_A_F32 ? parts[0] + parts[v === 0 ? 2 : 1] : parts.reduce((a, b) => a + b, 0);
    const gbs = best.map((ms, v) => +(bytesOf(v) / (ms * 1e6)).toFixed(2)), cpu = bestCpu.map((ms, v) => +(bytesOf(v) / (ms * 1e6)).toFixed(2));
    process.stdout.write(JSON.stringify({
      dtype, N, K, rows: M, build: relaxed ? 'relaxed' : 'simd128', a: args.rev, b: 'working tree', sets,
      a_gb_s: gbs[0], b_gb_s: gbs[1], b_over_a: +(gbs[1] / gbs[0]).toFixed(3),
      cpu_a_gb_s: cpu[0], cpu_b_gb_s: cpu[1], cpu_b_over_a: +(cpu[1] / cpu[0]).toFixed(3),
      a_us: +(best[0] * 1000).toFixed(1), b_us: +(best[1] * 1000).toFixed(1),
      cpu_a_us: +(bestCpu[0] * 1000).toFixed(1), cpu_b_us: +(bestCpu[1] * 1000).toFixed(1), cpu_time_a_over_b: +(bestCpu[0] / bestCpu[1]).toFixed(3), max_rel_diff: +maxRel.toExponential(2), ...f64err,
    }) + '\n');
  }
}

main().catch((e: unknown) => { process.stderr.write(`gemv-ab: ${e instanceof Error ? e.stack : String(e)}\n`); process.exitCode = 1; });
