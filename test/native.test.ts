// The optional native sgemm (native/openelm_native.c through src/platform/node-native.ts): products,
// widened bf16/f16/q8/q4 weights, the inference goldens and the training goldens with every
// product routed to it. Skipped where the addon or a BLAS library is missing, unless
// OPENELM_REQUIRE_NATIVE=1 (set by .ci/run after it installed both), which turns a missing
// library into a failure so CI cannot pass by skipping.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { nativeBlas, nativeUnavailableReason } from '../src/platform/node-native.js';
import type { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import { DTYPE_CODE, wasmAvailable } from '../src/backends/wasm/kernels.js';
import { JsBackend } from '../src/backends/js/js-backend.js';
import type { Backend, Weight } from '../src/backends/backend.js';
import { BLOCK_FORMATS, setWeightRows, weightRowToF32 } from '../src/backends/weight-format.js';
import { BLOCK_DTYPES } from '../src/backends/backend.js';
import { bf16ToF32, f16ToF32 } from '../src/core/dtype.js';
import { Rng } from '../src/core/rng.js';
import { OpenELMError } from '../src/core/errors.js';
import { loadModelFolder as loadModel } from '../src/io/model-folder.js';
import { JsGemm } from '../src/backends/js/reference.js';
import { TrainableModel } from '../src/model/trainable.js';
import { createWasm, f32 } from './helpers/backends.js';
import { blockWeightOn, randomBlocks } from './helpers/blocks.js';
import { Golden, goldenConfig, goldenNames, loadGoldenParams, readInts } from './helpers/golden.js';
import { runCli } from './helpers/cli.js';
import { tinyModelDir } from './helpers/tiny.js';
import { TOL, allclose, assertClose } from './tolerances.js';

const required = process.env.OPENELM_REQUIRE_NATIVE === '1';
const have = wasmAvailable() && nativeBlas('auto') !== null;
const skip = !have && !required;

test('native sgemm is available when CI requires it', { skip: !required }, () => {
  assert.ok(have, `native GEMM unavailable: ${nativeUnavailableReason()}`);
});

const backends: WasmBackend[] = [];
async function backend(threads = 2): Promise<WasmBackend> {
  const be = await createWasm({ threads, native: nativeBlas('on') });
  be.nativeMinRows = 1;
  backends.push(be);
  return be;
}
after(() => { for (const b of backends) b.dispose(); });

const rng = new Rng(99);
const randn = (n: number, s = 1): Float32Array => Float32Array.from({ length: n }, () => s * rng.normal());

test('native nt / nn / tn products equal the f64 GEMM, overwriting and accumulating, in and out of wasm memory', { skip }, async () => {
  const k = await backend();
  k.nativeMinWork = 0;
  const js = new JsGemm();
  for (const [M, N, K] of [[1, 1, 1], [5, 7, 3], [33, 65, 17], [256, 300, 129]]) {
    for (const op of ['nt', 'nn', 'tn'] as const) {
      for (const acc of [false, true]) {
        const A = randn(M * K), B = randn(N * K), C0 = randn(M * N);
        const want = Float64Array.from(C0);
        js[op](want, Float64Array.from(A), Float64Array.from(B), M, N, K, acc);
        const inWasm = (a: Float32Array) => { const b = f32(k.alloc(a.length)); b.set(a); return b; };
        const cw = inWasm(C0);
        k.matmul(cw, inWasm(A), inWasm(B), M, N, K, op, acc);
        assertClose(cw, want, { atol: 1e-5 * Math.sqrt(K), rtol: 1e-4 }, `${op} ${M}x${N}x${K} acc ${acc}`);
        const cp = C0.slice();
        k.matmul(cp, A, B, M, N, K, op, acc);
        assertClose(cp, want, { atol: 1e-5 * Math.sqrt(K), rtol: 1e-4 }, `${op} ${M}x${N}x${K} acc ${acc}, plain arrays`);
      }
    }
  }
});

test('native linear widens f32 / bf16 / f16 / q8 / q4 weights exactly like the reference backend, on its own kernel and through the library', { skip }, async () => {
  const be = await backend();
  be.intGemm = false;   // q8/q4 widened to f32 (the int8 path has its own test)
  assert.ok(be.native!.q4, 'the addon takes q4 weights with coded scales (features().q4Codes): rebuild it');
  assert.ok(be.native!.q8, 'the addon takes q8 weights with f16 scales (features().q8Half): rebuild it');
  const blas = nativeBlas('on')!;
  const ref: Backend = new JsBackend();
  // 5 + 6·k rows for the edge tiles of the kernel's row blocks, K past one of its K blocks (256)
  for (const [M, N, K] of [[40, 70, 96], [131, 33, 320]]) {
    const x = randn(M * K), wf = randn(N * K, 0.1);
    wf[5] = 1e-6; wf[6] = -3e-7;           // f16 subnormals
    for (let k = 32; k < 64; k++) wf[K + k] *= 1e-3;   // a q8 block whose f16 scale is subnormal (about 2e-6)
    for (const dtype of ['f32', 'bf16', 'f16', 'q8', 'q4'] as const) {
      const w = be.allocWeight(dtype, N, K), wr = ref.allocWeight(dtype, N, K);
      setWeightRows(w, 0, wf); setWeightRows(wr, 0, wf);
      be.prepareWeight(w); ref.prepareWeight(wr);
      for (const kernel of [true, false]) {
        blas.useWideKernel(kernel);
        for (const acc of [false, true]) {
          const base = randn(M * N);
          const got = f32(be.alloc(M * N)); got.set(base);
          const want = base.slice();
          be.linear(got, x, w, M, acc);
          ref.linear(want, x, wr, M, acc);
          assertClose(got, want, TOL.fastVsRef, `${M}x${N}x${K} ${dtype} acc ${acc}, ${kernel ? 'own kernel' : 'library'}`);
        }
      }
      blas.useWideKernel(true);
    }
  }
  assert.throws(() => be.linear(new Float32Array(10), randn(40 * 96), be.allocWeight('f32', 70, 96), 40),
    (e: unknown) => e instanceof OpenELMError && /linear output/.test(e.message));
});

test('native linear takes block weights as stored: widened exactly, like the reference and the exact WASM path, on its own kernel and through the library', { skip }, async () => {
  const be = await backend();
  const blas = nativeBlas('on')!;
  for (const d of BLOCK_DTYPES) assert.ok(be.native!.blocks?.has(DTYPE_CODE[d]), `the addon takes ${d} (features().blockKinds): rebuild it`);
  // the WASM backend holds Q4_K repacked (q4k-repack.ts), in place unless the weight lives elsewhere
  assert.ok(be.native!.blocks?.has(DTYPE_CODE.q4_k_r), 'the addon takes repacked Q4_K (features().blockKinds): rebuild it');
  assert.ok(be.native!.blocks?.has(DTYPE_CODE.q6_k_r), 'the addon takes repacked Q6_K (features().blockKinds): rebuild it');
  const wasm = await createWasm({ threads: 2 });
  backends.push(wasm);
  wasm.blockInt8 = false;   // the exact f32 GEMM on the decoded values
  const ref: Backend = new JsBackend();
  // the call goes to the addon (counted), not the WASM kernels
  const nat = be.native!, linear = nat.linear.bind(nat);
  let calls = 0;
  (nat as { linear: typeof linear }).linear = (...a: Parameters<typeof linear>) => { calls++; linear(...a); };
  try {
    for (const dtype of BLOCK_DTYPES) for (const [M, N, K] of BLOCK_FORMATS[dtype].elems === 256 ? [[40, 70, 256], [131, 33, 512]] : [[40, 70, 96], [131, 33, 320]]) {
      const x = randn(M * K);
      {
        const data = randomBlocks(rng, dtype, N, K);
        const w = blockWeightOn(be, dtype, N, K, data), ww = blockWeightOn(wasm, dtype, N, K, data), wr = blockWeightOn(ref, dtype, N, K, data);
        for (const kernel of [true, false]) {
          blas.useWideKernel(kernel);
          for (const acc of [false, true]) {
            const base = randn(M * N);
            const got = f32(be.alloc(M * N)); got.set(base);
            const viaWasm = f32(wasm.alloc(M * N)); viaWasm.set(base);
            const want = base.slice();
            const before = calls;
            be.linear(got, x, w, M, acc);
            assert.equal(calls, before + 1, `${dtype}: through the addon`);
            wasm.linear(viaWasm, x, ww, M, acc);
            ref.linear(want, x, wr, M, acc);
            const label = `${M}x${N}x${K} ${dtype} acc ${acc}, ${kernel ? 'own kernel' : 'library'}`;
            assertClose(got, want, TOL.fastVsRef, `${label} vs reference`);
            assertClose(got, viaWasm, TOL.fastVsRef, `${label} vs WASM`);
          }
          // x = the identity: each output is one decoded weight, exactly (the rest adds zeros)
          const eye = new Float32Array(K * K);
          for (let k = 0; k < K; k++) eye[k * K + k] = 1;
          const wT = f32(be.alloc(K * N)), row = new Float32Array(K);
          be.linear(wT, eye, w, K);
          for (let n = 0; n < N; n++) {
            weightRowToF32(wr, n, row);
            for (let k = 0; k < K; k++) {
              if (!Object.is(wT[k * N + n] + 0, row[k] + 0)) assert.fail(`${dtype} ${kernel ? 'own kernel' : 'library'}: W[${n}, ${k}] widened to ${wT[k * N + n]}, the file's value is ${row[k]}`);
            }
          }
        }
        blas.useWideKernel(true);
        if (dtype === 'q4_k' || dtype === 'q6_k') {
          // held repacked in place, the addon reads the repacked bytes; a weight stored outside the
          // backend keeps the file's bytes, which the addon reads as stored
          assert.equal(w.layout, `${dtype}_r`);
          const outside: Weight = { dtype, rows: N, cols: K, data: data.slice() };
          be.prepareWeight(outside);
          assert.equal(outside.layout, undefined);
          const got = f32(be.alloc(M * N)), viaHeld = f32(be.alloc(M * N));
          const before = calls;
          be.linear(got, x, outside, M);
          be.linear(viaHeld, x, w, M);
          assert.equal(calls, before + 2, `${dtype} stored outside: through the addon`);
          assert.deepEqual(got, viaHeld, `${dtype}: the stored and the repacked bytes give the same products`);
          be.freeWeight(outside);
        }
        be.freeWeight(w); wasm.freeWeight(ww);
      }
    }
  } finally {
    (nat as { linear: typeof linear }).linear = linear;
  }
});

test('native linear: every f16 and every bf16 value widens exactly (subnormals included), infinities and NaNs give NaN', { skip }, async () => {
  // x = the identity, so out[k][n] is W[n][k] itself; W holds all 65536 bit patterns, 128 a row,
  // rows 248..255 and 504..511 (f16) or 255 and 511 (bf16) being those of infinities and NaNs:
  // those columns meet 0·inf or NaN in their sums and must come out NaN, whatever NaN the widening made
  const blas = nativeBlas('on')!;
  const M = 128, K = 128, N = 512;
  const x = new Float32Array(M * K);
  for (let i = 0; i < M; i++) x[i * K + i] = 1;
  const bits = Uint16Array.from({ length: N * K }, (_, i) => i);
  for (const [kind, decode] of [[2, f16ToF32], [1, bf16ToF32]] as const) {
    for (const kernel of [true, false]) {
      blas.useWideKernel(kernel);
      for (const threads of [1, 3]) {
        const out = new Float32Array(M * N);
        blas.linear(threads, out, x, bits, kind, null, M, N, K, false);
        let bad = '';
        for (let n = 0; n < N && !bad; n++) {
          const special = kind === 2 ? (n >= 248 && n < 256) || n >= 504 : n === 255 || n === 511;
          for (let k = 0; k < K && !bad; k++) {
            const got = out[k * N + n], want = decode(n * K + k);
            if (special ? !Number.isNaN(got) : got !== want) bad = `bits 0x${(n * K + k).toString(16)}: ${got} vs ${want}`;
          }
        }
        assert.equal(bad, '', `kind ${kind}, ${kernel ? 'own kernel' : 'library'}, ${threads} threads`);
      }
    }
  }
  blas.useWideKernel(true);
});

test('native int8 prefill (q8 / q4, VNNI): equals the WASM integer GEMM, and the reference to TOL.intDotVsRef, any shape, any thread count', { skip }, async () => {
  const nat = await backend(2), nat3 = await backend(3), wasm = await createWasm({ threads: 2 });
  backends.push(wasm);
  if (!nat.native!.int8) { console.log('[native int8] this CPU has no AVX512-VNNI: the native path widens q8/q4 (skipped)'); return; }
  const ref: Backend = new JsBackend();
  let worst = 0;
  for (const [M, N, K] of [[1, 1, 32], [5, 70, 96], [33, 65, 160], [130, 300, 1280], [37, 31, 64]]) {
    // unit-scale outputs (x ~ N(0,1), W rows ~ N(0, 1/K)) as TOL.intDotVsRef was measured for; then
    // the same x with an outlier channel (int8 activations lose the rest of its blocks: held to
    // the WASM path only, which quantizes identically)
    const plain = randn(M * K), wf = randn(N * K, 1 / Math.sqrt(K));
    const outlier = plain.slice();
    for (let r = 0; r < M; r++) outlier[r * K + 3] = 40;
    for (const dtype of ['q8', 'q4'] as const) {
      const w = nat.allocWeight(dtype, N, K), ww = wasm.allocWeight(dtype, N, K), wr = ref.allocWeight(dtype, N, K);
      setWeightRows(w, 0, wf); setWeightRows(ww, 0, wf); setWeightRows(wr, 0, wf);
      nat.prepareWeight(w); wasm.prepareWeight(ww); ref.prepareWeight(wr);
      for (const [xname, x] of [['plain', plain], ['outlier', outlier]] as const) {
        for (const acc of [false, true]) {
          const base = randn(M * N);
          const got = f32(nat.alloc(M * N)); got.set(base);
          const got3 = base.slice(), viaWasm = f32(wasm.alloc(M * N)), want = base.slice();
          viaWasm.set(base);
          nat.linear(got, x, w, M, acc);
          nat3.linear(got3, x, w, M, acc);
          wasm.linear(viaWasm, x, ww, M, acc);
          const label = `${dtype} ${M}x${N}x${K} ${xname} acc ${acc}`;
          assert.deepEqual(got3, got.slice(), `${label}: 3 threads differ from 2`);
          // same quantized operands, exact int32 block dots and the same f32 folding as WASM
          assertClose(got, viaWasm, TOL.int8NativeVsWasm, `${label} vs WASM`);
          for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - viaWasm[i]) / (1 + Math.abs(viaWasm[i])));
          if (xname === 'plain') {
            ref.linear(want, x, wr, M, acc);
            assertClose(got, want, TOL.intDotVsRef, `${label} vs reference`);
          }
        }
      }
    }
  }
  console.log(`[native int8] largest difference from the WASM integer GEMM: ${worst.toExponential(2)} (relative to 1 + |value|)`);
});

for (const name of goldenNames()) {
  test(`${name}: batch logits on the native path match the fp64 reference`, { skip }, async () => {
    const g = new Golden(name);
    const model = loadModel(g.dir, { backend: await backend(), dtype: 'f32' });
    const ids = g.i32('input_ids'), lengths = g.i32('lengths'), ref = g.f32('logits');
    const [B, T] = g.shape('input_ids');
    const V = model.config.vocabSize;
    const seqs = Array.from({ length: B }, (_, b) => Array.from(ids.subarray(b * T, b * T + lengths[b])));
    const out = await model.forward(seqs.map((s) => ({ cache: model.newCache(s.length), tokens: s })), { all: true });
    let off = 0, worst = 0;
    for (let b = 0; b < B; b++) {
      const got = out.subarray(off * V, (off + lengths[b]) * V), want = ref.subarray(b * T * V, (b * T + lengths[b]) * V);
      assertClose(got, want, TOL.fastVsRef, `${name} row ${b}`);
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
      off += lengths[b];
    }
    console.log(`[native golden ${name}] max logits error ${worst.toExponential(2)}`);
    g.close();
  });
}

for (const name of goldenNames()) {
  test(`golden ${name}, every training product native: loss and every gradient within TOL.loss / TOL.grads`, { skip }, async () => {
    const k = await backend();
    k.nativeMinWork = 0;
    const model = new TrainableModel(goldenConfig(name), k);
    loadGoldenParams(name, model);
    const g = new Golden(name).file;
    const opt = JSON.parse(g.metadata.optimizer ?? '{}') as { z_loss_coef?: number; ignore_index?: number };
    const [B, T] = g.info('train.input_ids').shape;
    const res = await model.forwardBackward(readInts(g, 'train.input_ids'), readInts(g, 'train.targets'), B, T,
      { ignoreIndex: opt.ignore_index ?? -100, zLoss: opt.z_loss_coef ?? 1e-4 });
    const checks = [allclose([res.loss], g.readF32('train.loss'), TOL.loss, 'train.loss')];
    for (const e of model.layout.entries) checks.push(allclose(await model.readGrad(e.name), g.readF32(`grad.${e.name}`), TOL.grads, `grad.${e.name}`));
    g.close();
    console.log(`[native golden ${name}] loss error ${checks[0].maxAbs.toExponential(2)}, worst gradient error ${Math.max(...checks.slice(1).map((c) => c.maxAbs)).toExponential(2)}`);
    assert.deepEqual(checks.filter((c) => !c.ok).map((c) => c.message), []);
  });
}

test('native "off" is the pure WASM backend; an unknown mode is a clear error', { skip: !wasmAvailable() }, async () => {
  const off = await createWasm({ threads: 1, native: nativeBlas('off') });
  assert.equal(off.native, null);
  off.dispose();
  assert.throws(() => nativeBlas('bogus' as 'on'), (e: unknown) => e instanceof OpenELMError && /unknown native mode/.test(e.message));
});

test('native products do not depend on the thread count (blocks are cut by shape, not by threads)', { skip }, async () => {
  const one = await backend(1), three = await backend(3);
  one.nativeMinWork = 0; three.nativeMinWork = 0;
  for (const [M, N, K] of [[300, 1000, 64], [2000, 100, 48]]) {
    for (const op of ['nt', 'nn', 'tn'] as const) {
      const A = randn(M * K), B = randn(N * K);
      const c1 = new Float32Array(M * N), c3 = new Float32Array(M * N);
      one.matmul(c1, A, B, M, N, K, op, false);
      three.matmul(c3, A, B, M, N, K, op, false);
      assert.ok(c1.every((v, i) => Object.is(v, c3[i])), `${op} ${M}x${N}x${K}: 1 and 3 threads differ`);
    }
  }
  // widened weights, on the addon's own kernel and through the library; 400 rows: three row ranges
  one.intGemm = false; three.intGemm = false;
  const blas = nativeBlas('on')!;
  for (const [M, N, K] of [[130, 200, 320], [400, 70, 96]]) {
    const x = randn(M * K), wf = randn(N * K, 0.1);
    for (const dtype of ['bf16', 'f16', 'q8', 'q4'] as const) {
      const w = one.allocWeight(dtype, N, K);
      setWeightRows(w, 0, wf); one.prepareWeight(w);
      for (const kernel of [true, false]) {
        blas.useWideKernel(kernel);
        const c1 = new Float32Array(M * N), c3 = new Float32Array(M * N);
        one.linear(c1, x, w, M);
        three.linear(c3, x, w, M);
        assert.ok(c1.every((v, i) => Object.is(v, c3[i])), `linear ${dtype} ${M}x${N}x${K} (${kernel ? 'own kernel' : 'library'}): 1 and 3 threads differ`);
      }
      blas.useWideKernel(true);
    }
  }
});

test('--native on without a loadable library: one clear line, exit 1; --native off and auto still run', { skip: !wasmAvailable() }, () => {
  const dir = tinyModelDir();
  const env = { ...process.env, OPENELM_BLAS: '/nonexistent/libblas.so', OPENELM_NATIVE: '' };
  const on = runCli(['bench', '--model', dir, '--prompt-tokens', '8', '--gen-tokens', '2', '--native', 'on', '--backend', 'wasm', '--json'], { env });
  assert.equal(on.status, 1, on.stderr);
  assert.match(on.stderr, /^openelm bench: native GEMM requested but unavailable: .+\n$/);
  for (const mode of ['off', 'auto']) {
    const r = runCli(['bench', '--model', dir, '--prompt-tokens', '8', '--gen-tokens', '2', '--native', mode, '--backend', 'wasm', '--json'], { env });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).native, null);
  }
  const bad = runCli(['bench', '--model', dir, '--native', 'fast'], { env });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--native must be one of auto, on, off/);
});

// The native AdamW must give the WASM kernel's bits (a run that moves between machines with and
// without the addon, or resumes on another, computes the same parameters): odd lengths for the
// scalar tail, tiny, huge and subnormal values, zero moments (the first step), and a later step.
test('native AdamW equals the WASM AdamW kernel bit for bit, with 1 and 3 threads', { skip }, async () => {
  const wasm = await createWasm({ threads: 2 });
  backends.push(wasm as WasmBackend);
  const nb = nativeBlas('on')!;
  assert.ok(nb.adamw, 'the addon has no adamw()');
  const n = 100_003;
  const p0 = randn(n), g = randn(n, 1e-3), m0 = randn(n, 1e-4), v0 = Float32Array.from(randn(n, 1e-4), (x) => x * x);
  for (let i = 0; i < 64; i++) { g[i * 7] = [1e-42, -3e-39, 6e4, 1e-30][i % 4]; p0[i * 11] = [2e-40, -1e30, 0, -0][i % 4]; }
  for (const [first, step] of [[true, { b1: 0.9, b2: 0.95, stepSize: 1e-3 / 0.1, bc2Sqrt: Math.sqrt(0.05), eps: 1e-8, keep: 1 - 1e-3 * 0.1 }],
    [false, { b1: 0.9, b2: 0.999, stepSize: 3e-4 / (1 - 0.9 ** 7), bc2Sqrt: Math.sqrt(1 - 0.999 ** 7), eps: 1e-8, keep: 1 }]] as const) {
    const m = first ? new Float32Array(n) : m0, v = first ? new Float32Array(n) : v0;
    const t = (x: Float32Array) => { const b = f32(wasm.alloc(n)); b.set(x); return b; };
    const wp = t(p0), wm = t(m), wv = t(v);
    wasm.adamw(wp, t(g), wm, wv, n, step);
    for (const threads of [1, 3]) {
      const np = p0.slice(), nm = m.slice(), nv = v.slice();
      nb.adamw!(threads, np, g, nm, nv, n, step);
      for (const [what, got, want] of [['p', np, wp], ['m', nm, wm], ['v', nv, wv]] as const) {
        const a = new Uint32Array(got.buffer, got.byteOffset, n), b = new Uint32Array(want.buffer, want.byteOffset, n);
        const bad = a.findIndex((x, i) => x !== b[i]);
        assert.equal(bad, -1, `${first ? 'first' : 'later'} step, ${threads} threads: ${what}[${bad}] ${got[bad]} vs the kernel's ${want[bad]}`);
      }
    }
  }
});
