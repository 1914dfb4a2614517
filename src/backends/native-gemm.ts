// The optional native GEMM the WASM backend hands compute-bound products to (prefill, training).
// Loading it is the platform's business (src/platform/node-native.ts: a small N-API addon over
// oneDNN or OpenBLAS); the backend only needs these two calls. Sums come in a different order than
// the WASM GEMM's, so results agree with it to float rounding, not bit for bit; they do not depend
// on the thread count.

import type { AdamWStep } from './backend.js';

export type NativeMode = 'auto' | 'on' | 'off';
export const NATIVE_MODES: readonly NativeMode[] = ['auto', 'on', 'off'];

/**
 * The bf16 bits of an operand that does not change for a while (a weight during one pass), kept
 * by the caller so that several products round it once: `bits` in the operand's stored layout,
 * tight; `filled` says whether they hold the rounding already. gemmBf16 fills an unfilled one
 * with the rounding it does anyway and returns which it holds afterwards (bit 1: A, bit 2: B).
 * Only a library with a bf16 GEMM ('dnnl', 'openblas') uses them.
 */
export interface HeldBf16 { bits: Uint16Array; filled: boolean }
export interface HeldBf16Pair { a?: HeldBf16 | null; b?: HeldBf16 | null }

/** CPU seconds of the native threads: rounding operands to bf16 or widening stored weights (round), the products (gemm), adding AMX blocks to C (copy). */
export interface NativeProfile { round: number; gemm: number; copy: number }

export interface NativeGemm {
  /** The library in use ('libdnnl.so.2', …). */
  readonly library: string;
  /** C[M,N] = op(A)·op(B) (+ C when acc), row-major, op = transpose when ta / tb. */
  sgemm(threads: number, ta: boolean, tb: boolean, M: number, N: number, K: number, A: Float32Array, lda: number,
    B: Float32Array, ldb: number, C: Float32Array, ldc: number, acc: boolean): void;
  /**
   * The same product on operands rounded to bf16 (nearest even), sums in f32: matmul's 'bf16'
   * precision. `bf16` says how it runs: the library's bf16 GEMM ('dnnl', 'openblas'), or the
   * rounded operands through its sgemm ('emulated': the same products, no speed-up).
   */
  gemmBf16(threads: number, ta: boolean, tb: boolean, M: number, N: number, K: number, A: Float32Array, lda: number,
    B: Float32Array, ldb: number, C: Float32Array, ldc: number, acc: boolean, held?: HeldBf16Pair): number | undefined;
  readonly bf16: 'dnnl' | 'openblas' | 'emulated';
  /**
   * One AdamW step over n values in place (p, m, v), bit for bit the WASM kernel's (f64 per value,
   * the same operations, no fused multiply-adds), on the native threads; optional.
   */
  adamw?(threads: number, p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, n: number, s: AdamWStep): void;
  /** Where the addon's threads spent their CPU time since the previous call (benchmarks); `on` starts or stops counting. */
  profile?(on: boolean): NativeProfile;
  /** Whether gemmBf16 runs on AMX tiles here (oneDNN's matmul primitive on CPUs that have them). */
  readonly amx?: boolean;
  /** Whether q8/q4 linears can run in int8 arithmetic here (AVX512-VNNI). */
  readonly int8: boolean;
  /** Whether linear() takes q4 weights (an addon built before q4's coded scales does not). */
  readonly q4?: boolean;
  /** Whether linear() takes q8 weights (an addon built before q8's f16 scales does not). */
  readonly q8?: boolean;
  /**
   * Storage codes of the block dtypes (blocks as files store them, no scales: DTYPE_CODE q8_0 ..
   * q4_1_f32) linear() takes, widened to f32: exact products on the file's values, whatever `int8`.
   */
  readonly blocks?: ReadonlySet<number>;
  /**
   * out[M,N] (+)= x[M,K]·Wᵀ for W stored [N,K]; `kind` is the storage code of the WASM kernels
   * (f32 0, bf16 1, f16 2, q8 3, q4 4), with w and scales as in weight-format.ts. With `int8`,
   * q8/q4 weights multiply rows of x quantized to int8 per block of 32 (as the WASM integer GEMM
   * does) where the CPU has VNNI; otherwise they are widened to f32.
   */
  linear(threads: number, out: Float32Array, x: Float32Array, w: ArrayBufferView, kind: number, scales: Uint16Array | Uint8Array | null,
    M: number, N: number, K: number, acc: boolean, int8?: boolean): void;
}
