// Quantizing rows to q8/q4 on the WASM backend's threads (kernels/quantize.as, what loading with
// --dtype q8/q4 runs) against weight-format.ts setWeightRows, the reference: the same bytes, codes
// and scale data alike, for random rows, outlier columns, importance weights, degenerate blocks and
// extreme magnitudes, at 1, 2 and 3 threads and in both WASM builds; then whole models loaded on
// each backend.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Weight } from '../src/backends/backend.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import type { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import { allocWeightStorage, setWeightRows } from '../src/backends/weight-format.js';
import { OpenELMError } from '../src/core/errors.js';
import { f16ToF32 } from '../src/core/dtype.js';
import { encodeQ8_0 } from '../src/convert/ggml-encode.js';
import { Rng } from '../src/core/rng.js';
import { loadModelFolder } from '../src/io/model-folder.js';
import { saveModel } from '../src/io/model-folder.js';
import { createWasm } from './helpers/backends.js';
import { tinyModel } from './helpers/tiny.js';

const CONFIGS = [
  { label: '1 thread', threads: 1, relaxedSimd: true },
  { label: '2 threads', threads: 2, relaxedSimd: true },
  { label: '3 threads, SIMD128 build', threads: 3, relaxedSimd: false },
] as const;
const backends = new Map<string, WasmBackend>();
async function wasm(cfg: typeof CONFIGS[number]): Promise<WasmBackend> {
  let be = backends.get(cfg.label);
  // threshold 0: even one row's call is split into chunks over the threads
  if (!be) { be = await createWasm({ threads: cfg.threads, relaxedSimd: cfg.relaxedSimd, parallelThreshold: 0 }); backends.set(cfg.label, be); }
  return be;
}
after(() => { for (const be of backends.values()) be.dispose(); });

const bytes = (v: ArrayBufferView): Uint8Array => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

/** The first byte where two weights' storage differs, or null. */
function firstDiff(a: Weight, b: Weight): string | null {
  for (const part of ['data', 'scales'] as const) {
    const x = bytes(a[part]!), y = bytes(b[part]!);
    if (x.length !== y.length) return `${part}: ${x.length} vs ${y.length} bytes`;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return `${part} byte ${i}: ${x[i]} vs ${y[i]}`;
  }
  return null;
}

/** rows × K values: each row a different kind of trouble, cycling through `kinds`. */
function rowsOf(rows: number, K: number, kinds: ((j: number, r: number) => number)[]): Float32Array {
  const a = new Float32Array(rows * K);
  for (let r = 0; r < rows; r++) for (let j = 0; j < K; j++) a[r * K + j] = kinds[r % kinds.length](j, r);
  return a;
}

function cases(rng: Rng, K: number): { name: string; src: Float32Array }[] {
  const n = () => rng.normal();
  return [
    { name: 'random', src: rowsOf(29, K, [() => n() * 0.02, () => n(), () => rng.next() * 3 - 1]) },
    // a few columns 64x larger than the rest (an outlier channel hits every row of a layer)
    { name: 'outlier columns', src: rowsOf(17, K, [(j) => n() * (j % 37 === 5 ? 64 : 1) * 0.03]) },
    {
      name: 'degenerate blocks', src: rowsOf(12, K, [
        () => 0,                                   // all zero: D = M = 0
        (j) => (j >> 5) % 2 ? 0.25 : -1.5,         // constant blocks: s = 0
        (j) => (j % 32 === 7 ? 1 : 0),             // one value per block
        (j) => (j % 2 ? 3 : -3),                   // two levels only
        (j) => (j >> 5 === 1 ? n() : 0),           // one live block in a zero row
        (j) => -0 * j,                             // negative zeros
        // q8 scale 1 and ties x.5 (JS rounds them up); q4 steps that land halfway
        (j) => (j % 32 === 0 ? 127 : (j % 8) - 3.5),
        (j) => (j % 32 === 0 ? 15 : (j % 16) + (j % 3 ? 0.5 : 0)),
      ]),
    },
    {
      name: 'tiny and huge magnitudes', src: rowsOf(14, K, [
        () => n() * 1e-40,                         // subnormal f32
        () => n() * 1e-30,
        () => n() * 1e30,
        () => (rng.next() * 2 - 1) * 3e38,      // near the f32 limit
        (j) => n() * (j < 32 ? 1e20 : 1e-20),      // one huge block: D far above the others' scales
        (j) => n() * (j < 32 ? 1e-38 : 1),         // one nearly zero block
        () => 5 + n() * 1e-6,                       // a large min, tiny scale
        // q8's scale search at f16's edges: d = 2⁻¹⁴ (the steps below it are subnormal), d two
        // subnormal steps above 0 (the steps below 0 are skipped), d = f16's largest (none above)
        (j) => (j % 32 === 9 ? -127 * 2 ** -14 : (rng.next() * 2 - 1) * 127 * 2 ** -14),
        (j) => (j % 32 === 2 ? 254 * 2 ** -24 : (rng.next() * 2 - 1) * 254 * 2 ** -24),
        (j) => (j % 32 === 31 ? 65504 * 127 : (rng.next() * 2 - 1) * 65504 * 127),
      ]),
    },
  ];
}

/** Importance kinds: none, random, outlier columns weighted 64², some columns weighing nothing. */
function importances(rng: Rng, K: number): { name: string; imp?: Float32Array }[] {
  const f = (g: (j: number) => number) => Float32Array.from({ length: K }, (_, j) => g(j));
  return [
    { name: 'no importance' },
    { name: 'random importance', imp: f(() => rng.next() * 2) },
    { name: 'outlier importance', imp: f((j) => (j % 37 === 5 ? 4096 : 1)) },
    { name: 'zero importance on some columns', imp: f((j) => (j % 3 === 0 ? 0 : (j % 32 === 1 ? 1e-30 : 1))) },
  ];
}

for (const cfg of CONFIGS) {
  test(`quantizeRows, ${cfg.label}: the same q4 and q8 bytes as setWeightRows`, async () => {
    const be = await wasm(cfg);
    const rng = new Rng(7);
    let checked = 0;
    for (const K of [32, 96, 256]) {
      for (const { name, src } of cases(rng, K)) {
        const rows = src.length / K;
        for (const { name: iname, imp } of importances(rng, K)) {
          for (const dtype of ['q4', 'q8'] as const) {
            if (dtype === 'q8' && imp) continue;
            const ref = allocWeightStorage(dtype, rows, K);
            const w = be.allocWeight(dtype, rows, K);
            // q8's f16 scales cannot hold the huge rows: both refuse them with the same line
            const refused = (() => { try { setWeightRows(ref, 0, src, imp); } catch (e) { return e; } return null; })();
            if (refused) {
              assert.ok(dtype === 'q8' && refused instanceof OpenELMError && /q8 cannot hold row \d+/.test(refused.message), String(refused));
              assert.throws(() => be.quantizeRows(w, 0, src, imp), (e: unknown) => e instanceof OpenELMError && e.message === refused.message);
              be.freeWeight(w);
              continue;
            }
            be.quantizeRows(w, 0, src, imp);
            assert.equal(firstDiff(w, ref), null, `${dtype} ${name}, ${iname}, K=${K}`);
            be.freeWeight(w);
            checked++;
          }
        }
      }
    }
    assert.ok(checked > 50);
  });
}

/** The f32 value of f16 bits. */
const half = (h: number): number => f16ToF32(h);

/** Σ(x − d·q)² of a block for levels q (f64). */
function sqErr(x: Float32Array, d: number, q: ArrayLike<number>): number {
  let e = 0;
  for (let j = 0; j < 32; j++) e += (x[j] - d * q[j]) ** 2;
  return e;
}

/** The levels round(x / d) clamped to ±127 (0 for d = 0). */
const levelsFor = (x: Float32Array, d: number): number[] => Array.from(x, (v) => (d ? Math.max(-127, Math.min(127, Math.round(v / d))) + 0 : 0));

test('q8 scales: Q8_0\'s d or a least-squares f16 with less squared error, levels fitted to it; never subnormal; zero and overflowing scales', async () => {
  const be = await wasm(CONFIGS[0]);
  const rng = new Rng(13), K = 64;
  // block magnitudes from f16's subnormals (d = 2⁻²⁴·m) through its normal range to its largest scale
  const mags = [3e-6, 1e-5, 6e-5, 2e-4, 7.7e-3, 1, 300, 65504 * 127, 6.4e-7, 0.02, 0.05, 3];
  // row 7: one value per block exactly 65504·127, whose d is f16's largest
  const src = rowsOf(mags.length, K, mags.map((m, r) => (j: number) => (r === 7 && j % 32 === 3 ? m : (rng.next() * 2 - 1) * m)));
  const w = allocWeightStorage('q8', mags.length, K);
  setWeightRows(w, 0, src);
  const s = w.scales as Uint16Array, q = w.data as Int8Array;
  const gg = new Uint8Array(34);
  let subnormal = 0, floored = 0, moved = 0, ours = 0, q80 = 0;
  for (let b = 0; b < s.length; b++) {
    const x = src.subarray(b * 32, b * 32 + 32);
    encodeQ8_0(x, gg);
    const h0 = gg[0] | (gg[1] << 8), d = half(s[b]);
    if ((s[b] & 0x7c00) === 0 && s[b] !== 0) subnormal++;
    // levels fitted to the stored d: within half a step of x unless clamped at ±127
    const want = levelsFor(x, d);
    for (let j = 0; j < 32; j++) {
      assert.equal(q[b * 32 + j], want[j], `block ${b} value ${j}: round(x / d16)`);
      if (d > 0 && Math.abs(want[j]) < 127) assert.ok(Math.abs(q[b * 32 + j] * d - x[j]) <= d / 2 * (1 + 1e-12), `block ${b} value ${j}`);
    }
    // a block whose Q8_0 d is subnormal gets the smallest normal half or above (the GEMVs' fast widening)
    if (h0 !== 0 && h0 < 0x400) { floored++; assert.ok(s[b] >= 0x400, `block ${b}: a subnormal d (${h0}) becomes normal (${s[b]})`); continue; }
    // the scale: Q8_0's d, or a half whose levels leave less error than d's
    const e = sqErr(x, d, want), e0 = sqErr(x, half(h0), levelsFor(x, half(h0)));
    assert.ok(s[b] === h0 || e < e0 * (1 + 1e-12), `block ${b}: the half ${s[b]} fits worse than Q8_0's ${h0}`);
    // llama.cpp's Q8_0 bytes for the same block (levels fitted to its f32 d)
    const gq = Array.from(gg.subarray(2), (v) => (v << 24) >> 24);
    const eq = sqErr(x, half(h0), gq);
    assert.ok(e <= eq, `block ${b}: ${e} worse than Q8_0's ${eq}`);
    if (s[b] !== h0) moved++;
    if (mags[Math.floor(b / 2)] >= 0.02 && mags[Math.floor(b / 2)] <= 3) { ours += e; q80 += eq; }
  }
  assert.equal(subnormal, 0, 'no subnormal scale');
  assert.ok(floored >= 2, `${floored} blocks whose Q8_0 d is subnormal`);
  assert.ok(moved >= 4, `${moved} blocks moved off Q8_0's d`);
  assert.ok(ours < q80 * 0.99, `normal blocks' squared error ${ours} vs Q8_0's ${q80}`);
  assert.ok([...s].some((h) => h === 0) && [...s].some((h) => h === 0x7bff), 'a zero scale (values below f16\'s) and f16\'s largest');
  // the WASM kernel writes the same bytes
  const wb = be.allocWeight('q8', mags.length, K);
  be.quantizeRows(wb, 0, src);
  assert.equal(firstDiff(wb, w), null);
  be.freeWeight(wb);
  // a block past f16's largest scale: one line, the row named, from both
  const big = src.slice();
  big[5 * K + 40] = 65520 * 127;
  const msg = /q8 cannot hold row 5: a block's largest \|value\| 8321040 needs a scale above f16's 65504/;
  assert.throws(() => setWeightRows(allocWeightStorage('q8', mags.length, K), 0, big), msg);
  const wc = be.allocWeight('q8', mags.length, K);
  assert.throws(() => be.quantizeRows(wc, 0, big), msg);
  be.freeWeight(wc);
  // just below it is held: 65519·127 rounds to f16's 65504
  big[5 * K + 40] = 65519 * 127;
  setWeightRows(allocWeightStorage('q8', mags.length, K), 0, big);
});

test('quantizeRows: rows written in chunks at any first row equal one call; rows outside are untouched', async () => {
  const be = await wasm(CONFIGS[1]);
  const rng = new Rng(3), K = 128, rows = 23;
  const src = Float32Array.from({ length: rows * K }, () => rng.normal());
  for (const dtype of ['q4', 'q8'] as const) {
    const ref = allocWeightStorage(dtype, rows, K);
    setWeightRows(ref, 0, src);
    const w = be.allocWeight(dtype, rows, K);
    for (const [a, b] of [[5, 12], [0, 5], [12, 23]]) be.quantizeRows(w, a, src.subarray(a * K, b * K));
    assert.equal(firstDiff(w, ref), null, dtype);
    const part = be.allocWeight(dtype, rows, K);
    be.quantizeRows(part, 4, src.subarray(4 * K, 6 * K));
    assert.ok(bytes(part.data).subarray(0, 4 * K / (dtype === 'q4' ? 2 : 1)).every((x) => x === 0), `${dtype}: rows before r0 untouched`);
    be.freeWeight(w); be.freeWeight(part);
  }
});

test('quantizeRows: NaN in a q4 row codes as setWeightRows codes it; an infinite row fails with its message', async () => {
  const be = await wasm(CONFIGS[1]);
  const rng = new Rng(5), K = 64;
  const src = Float32Array.from({ length: 4 * K }, () => rng.normal());
  src[K + 3] = NaN;
  const ref = allocWeightStorage('q4', 4, K);
  setWeightRows(ref, 0, src);
  const w = be.allocWeight('q4', 4, K);
  be.quantizeRows(w, 0, src);
  assert.equal(firstDiff(w, ref), null);
  src[2 * K + 40] = Infinity;
  const expected = (() => { try { setWeightRows(allocWeightStorage('q4', 4, K), 0, src); } catch (e) { return e; } return null; })();
  assert.ok(expected instanceof OpenELMError && /row 2/.test(expected.message), String(expected));
  assert.throws(() => be.quantizeRows(w, 0, src), (e: unknown) => e instanceof OpenELMError && e.message === expected.message);
  assert.throws(() => be.quantizeRows(w, 0, src, new Float32Array(K - 1)), /one value per column/);
  assert.throws(() => be.quantizeRows(w, 3, src.subarray(0, 2 * K)), OpenELMError);
  be.freeWeight(w);
});

test('quantizeRows: weights outside the backend\'s memories and other dtypes go through setWeightRows', async () => {
  const be = await wasm(CONFIGS[0]);
  const rng = new Rng(9), K = 64;
  const src = Float32Array.from({ length: 3 * K }, () => rng.normal());
  for (const dtype of ['q4', 'q8', 'bf16'] as const) {
    const ref = allocWeightStorage(dtype, 3, K), w = allocWeightStorage(dtype, 3, K);
    setWeightRows(ref, 0, src);
    be.quantizeRows(w, 0, src);
    assert.deepEqual(bytes(w.data), bytes(ref.data), dtype);
  }
});

/** Every linear weight of a loaded model, in a fixed order. */
function linears(w: { embed: Weight; head: Weight; layers: object[] }): Weight[] {
  const out = [w.embed, w.head];
  for (const l of w.layers) for (const v of Object.values(l)) if (v && typeof v === 'object' && 'dtype' in v && 'rows' in v) out.push(v as Weight);
  return out;
}

test('a model loaded with --dtype q4 / q8 holds the same bytes on the WASM backend (2 threads) as on the JS backend', async () => {
  const { config, layout, host } = tinyModel({ model_dim: 128, vocab_size: 500 }, 4);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-qload-'));
  try {
    saveModel(dir, config, layout, host, { dtype: 'BF16' });
    const be = await wasm(CONFIGS[1]);
    for (const dtype of ['q4', 'q8'] as const) {
      const a = loadModelFolder(dir, { backend: new JsBackend(), dtype }), b = loadModelFolder(dir, { backend: be, dtype });
      const wa = linears(a.weights), wb = linears(b.weights);
      assert.equal(wa.length, wb.length);
      assert.ok(wa.every((w) => w.dtype === dtype));
      for (let i = 0; i < wa.length; i++) assert.equal(firstDiff(wb[i], wa[i]), null, `${dtype} weight ${i}`);
    }
    // a NaN in a linear weight is refused naming the tensor, on the WASM path too
    const name = 'transformer.layers.1.ffn.proj_1.weight';
    const e = layout.byName.get(name);
    assert.ok(e, name);
    host[e.offset + 77] = NaN;
    saveModel(dir, config, layout, host, { dtype: 'BF16' });
    assert.throws(() => loadModelFolder(dir, { backend: be, dtype: 'q4' }),
      (err: unknown) => err instanceof OpenELMError && err.message.includes(name) && !err.message.includes('\n'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('quantizeRows in a second WebAssembly memory (a model past 4 GiB, here a 6 MiB cap) gives the same bytes', async () => {
  const be = await createWasm({ threads: 2, shardBytes: 6 << 20, parallelThreshold: 0 });
  try {
    const rng = new Rng(11), K = 512, rows = 1024;
    const src = Float32Array.from({ length: rows * K }, () => rng.normal() * 0.05);
    const imp = Float32Array.from({ length: K }, () => rng.next());
    const seen = new Set<number>();
    for (let i = 0; i < 24 && seen.size < 2; i++) {
      const dtype = i % 2 ? 'q8' : 'q4';
      const w = be.allocWeight(dtype, rows, K);
      seen.add(be.shardOf(w.data)!.index);
      const ref = allocWeightStorage(dtype, rows, K);
      setWeightRows(ref, 0, src, dtype === 'q4' ? imp : undefined);
      be.quantizeRows(w, 0, src, dtype === 'q4' ? imp : undefined);
      assert.equal(firstDiff(w, ref), null, `${dtype} in memory ${be.shardOf(w.data)!.index}`);
    }
    assert.ok(seen.has(1), 'a weight landed in the second memory');
    await be.sync();
    // once the workers know the second memory, its calls are split over them too
    const w = be.allocWeight('q4', rows, K);
    const ref = allocWeightStorage('q4', rows, K);
    setWeightRows(ref, 0, src, imp);
    be.quantizeRows(w, 0, src, imp);
    assert.equal(firstDiff(w, ref), null, `q4 in memory ${be.shardOf(w.data)!.index} after sync`);
  } finally {
    be.dispose();
  }
});
