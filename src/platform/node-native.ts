// The optional native GEMM (native/openelm_native.c): oneDNN's or OpenBLAS's sgemm reached through
// a small N-API addon, for the products that are compute-bound (prefill, training). It is built by
// `npm run build:native` and needs a BLAS library from the system's packages (Debian: libdnnl2 or
// libopenblas0); without either, everything runs on the WASM kernels as before. The sums come in a
// different order than the WASM GEMM's, so results agree with it to float rounding, not bit for bit;
// they do not depend on the thread count (the addon cuts products into blocks by shape and runs the
// library single-threaded per block on its own threads, see native/openelm_native.c).

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import type { AdamWStep } from '../backends/backend.js';
import { NATIVE_MODES, type HeldBf16Pair, type NativeGemm, type NativeMode, type NativeProfile } from '../backends/native-gemm.js';

interface Addon {
  load(paths: string[]): string;
  setThreads(n: number): void;
  sgemm(ta: boolean, tb: boolean, M: number, N: number, K: number, A: Float32Array, lda: number,
    B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number): void;
  gemmBf16(ta: boolean, tb: boolean, M: number, N: number, K: number, A: Float32Array, lda: number,
    B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number,
    heldA: Uint16Array | null, aFilled: boolean, heldB: Uint16Array | null, bFilled: boolean): number;
  profile(on: boolean): NativeProfile;
  adamw?(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, n: number,
    b1: number, c1: number, b2: number, c2: number, stepSize: number, bc2Sqrt: number, eps: number, keep: number): void;
  features(): { bf16: 'dnnl' | 'openblas' | 'emulated'; amx: boolean; amxBlocks: number; int8: boolean; q4Codes?: boolean; q8Half?: boolean; blockKinds?: number[] };
  useAmx(on: boolean): boolean;
  useWideKernel?(on: boolean): boolean;
  linear(out: Float32Array, x: Float32Array, w: ArrayBufferView, kind: number, scales: Uint16Array | Uint8Array | null,
    unused: null, M: number, N: number, K: number, accumulate: boolean, int8: boolean): void;
}

export class NativeBlas implements NativeGemm {
  private threadsSet = 0;
  readonly bf16: 'dnnl' | 'openblas' | 'emulated';
  readonly int8: boolean;
  readonly q4: boolean;
  readonly q8: boolean;
  readonly blocks: ReadonlySet<number>;
  private amxOn: boolean;
  constructor(private readonly addon: Addon, readonly library: string) {
    const f = addon.features();
    this.bf16 = f.bf16;
    this.int8 = f.int8;
    // an addon built before q4's coded scales reads them as f32 arrays: q4 then stays on the WASM kernels
    this.q4 = f.q4Codes === true;
    // and one built before q8's f16 scales reads them as f32 arrays: q8 then stays on the WASM kernels
    this.q8 = f.q8Half === true;
    // block dtypes as stored (an addon built before them has none: they stay on the WASM kernels)
    this.blocks = new Set(f.blockKinds ?? []);
    this.amxOn = f.amx;
    const adamw = addon.adamw?.bind(addon);
    if (adamw) {
      // (an addon built before adamw() existed has none: the WASM kernel runs instead)
      this.adamw = (threads, p, g, m, v, n, s) => {
        this.use(threads);
        adamw(p, g, m, v, n, s.b1, 1 - s.b1, s.b2, 1 - s.b2, s.stepSize, s.bc2Sqrt, s.eps, s.keep);
      };
    }
  }

  /** Whether gemmBf16 runs on AMX tiles (oneDNN's matmul primitive) rather than the BLAS-like bf16 GEMM. */
  get amx(): boolean { return this.amxOn; }

  /**
   * Allows or forbids (default) the AMX path; returns whether it is in use now. Both paths multiply
   * the same rounded operands with f32 sums, in a different order (OPENELM_AMX=on allows it for a
   * whole process).
   */
  useAmx(on: boolean): boolean {
    this.amxOn = this.addon.useAmx(on);
    return this.amxOn;
  }

  /**
   * Whether linear() multiplies bf16/f16/q8/q4 weights on the addon's own AVX2 kernel (widening
   * them straight into its packed layout; CPUs with AVX2, FMA and F16C) rather than widening
   * panels for the library's sgemm; `on` false forces the library path. Both sum in f32, in
   * different orders (the tests compare them). False with an addon built before the kernel.
   */
  useWideKernel(on: boolean): boolean { return this.addon.useWideKernel?.(on) ?? false; }

  /** Blocks of bf16 products run on AMX in this process so far (the tests check the path is taken). */
  amxBlocks(): number { return this.addon.features().amxBlocks; }

  private use(threads: number): void {
    if (threads !== this.threadsSet) { this.addon.setThreads(threads); this.threadsSet = threads; }
  }

  /** C[M,N] = op(A)·op(B) (+ C when acc), row-major, op = transpose when ta / tb. */
  sgemm(threads: number, ta: boolean, tb: boolean, M: number, N: number, K: number, A: Float32Array, lda: number,
    B: Float32Array, ldb: number, C: Float32Array, ldc: number, acc: boolean): void {
    this.use(threads);
    this.addon.sgemm(ta, tb, M, N, K, A, lda, B, ldb, acc ? 1 : 0, C, ldc);
  }

  /** The same product on bf16-rounded operands with f32 sums (NativeGemm.gemmBf16). */
  gemmBf16(threads: number, ta: boolean, tb: boolean, M: number, N: number, K: number, A: Float32Array, lda: number,
    B: Float32Array, ldb: number, C: Float32Array, ldc: number, acc: boolean, held?: HeldBf16Pair): number {
    this.use(threads);
    const a = held?.a ?? null, b = held?.b ?? null;
    return this.addon.gemmBf16(ta, tb, M, N, K, A, lda, B, ldb, acc ? 1 : 0, C, ldc, a?.bits ?? null, a?.filled ?? false, b?.bits ?? null, b?.filled ?? false);
  }

  /**
   * CPU seconds the addon's threads spent rounding operands to bf16 or widening stored weights, in
   * the products and adding AMX column blocks to C since the previous call; `on` starts or stops counting.
   */
  profile(on: boolean): NativeProfile { return this.addon.profile(on); }

  /** One AdamW step in place, bit for bit the WASM kernel's (NativeGemm.adamw); absent with an addon built before it existed. */
  readonly adamw?: (threads: number, p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, n: number, s: AdamWStep) => void;

  /**
   * out[M,N] (+)= x[M,K]·Wᵀ for W stored [N,K]; `kind` is the storage code the WASM kernels use
   * too (DTYPE_CODE: f32 0, bf16 1, f16 2, q8 3, q4 4, and the block codes of `blocks`), with w and
   * scales as in weight-format.ts.
   */
  linear(threads: number, out: Float32Array, x: Float32Array, w: ArrayBufferView, kind: number, scales: Uint16Array | Uint8Array | null,
    M: number, N: number, K: number, acc: boolean, int8 = false): void {
    this.use(threads);
    this.addon.linear(out, x, w, kind, scales, null, M, N, K, acc, int8);
  }
}

const ADDON = 'native/build/Release/openelm_native.node';
/** Libraries tried in order: oneDNN (fastest sgemm measured here), then OpenBLAS. */
const LIBRARIES = ['libdnnl.so.3', 'libdnnl.so.2', 'libopenblas.so.0', 'libdnnl.dylib', 'libopenblas.dylib'];

let loaded: { blas: NativeBlas | null; why: string } | undefined;

function repoRoot(): string {
  // dist/src/platform/node-native.js -> the package root, three folders up
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

function load(): { blas: NativeBlas | null; why: string } {
  const file = path.join(repoRoot(), ADDON);
  if (!existsSync(file)) return { blas: null, why: `the native addon is not built (${ADDON}; run npm run build:native)` };
  let addon: Addon;
  try {
    addon = createRequire(import.meta.url)(file) as Addon;
  } catch (e) {
    return { blas: null, why: `the native addon does not load: ${(e as Error).message.split('\n')[0]}` };
  }
  const wanted = process.env.OPENELM_BLAS ? [process.env.OPENELM_BLAS] : LIBRARIES;
  try {
    return { blas: new NativeBlas(addon, addon.load(wanted)), why: '' };
  } catch (e) {
    return { blas: null, why: `${(e as Error).message} (install libdnnl2 or libopenblas0, or set OPENELM_BLAS)` };
  }
}

/**
 * The native GEMM for `mode`: 'off' → null; 'auto' → the library when it loads, else null;
 * 'on' → the library, or a clear error saying why not. OPENELM_NATIVE=on|off|auto overrides 'auto'.
 */
export function nativeBlas(mode: NativeMode = 'auto'): NativeBlas | null {
  if (!NATIVE_MODES.includes(mode)) throw new OpenELMError('usage', `unknown native mode "${String(mode)}"; choose ${NATIVE_MODES.join(', ')}`);
  const env = process.env.OPENELM_NATIVE;
  if (mode === 'auto' && env !== undefined && env !== '') {
    if (!(NATIVE_MODES as readonly string[]).includes(env)) throw new OpenELMError('usage', `OPENELM_NATIVE must be one of ${NATIVE_MODES.join(', ')}, got "${env}"`);
    mode = env as NativeMode;
  }
  if (mode === 'off') return null;
  loaded ??= load();
  if (!loaded.blas && mode === 'on') throw new OpenELMError('backend', `native GEMM requested but unavailable: ${loaded.why}`);
  return loaded.blas;
}

/** Why the native GEMM is not available ('' when it is). */
export function nativeUnavailableReason(): string {
  loaded ??= load();
  return loaded.why;
}
