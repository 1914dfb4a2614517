// Training matmuls on a compute backend. On the WASM backend this is the training GEMM of
// wasm-train.ts (nt / nn / tn packed directly, no transposes), which also brings the other training
// kernels (`kernels`), so a TrainableModel built with this GEMM keeps its parameters, gradients and
// activations in the backend's memory and runs every op there. On any other backend every product
// is reduced to the backend's linear kernel, C = A·Bᵀ, with B passed as a transient f32 weight
// (nn / tn transpose their operands into scratch first). Float64 operands (the finite-difference
// checks) stay on the JS GEMM.

import type { Backend, Weight } from '../backends/backend.js';
import { WasmBackend } from '../backends/wasm/wasm-backend.js';
import { JsGemm, transpose, type FloatArray, type Gemm, type TrainKernels } from './kernels.js';
import { wasmTrainKernels, type WasmGemm } from './wasm-train.js';

export class BackendGemm implements Gemm {
  private readonly js = new JsGemm();
  private readonly wasm: WasmGemm | null;
  readonly kernels?: TrainKernels;
  private ta: Float32Array;
  private tb: Float32Array;

  constructor(private readonly be: Backend) {
    this.wasm = be instanceof WasmBackend ? wasmTrainKernels(be).gemm : null;
    if (this.wasm) this.kernels = this.wasm.kernels;
    this.ta = be.alloc(0);
    this.tb = be.alloc(0);
  }

  private scratch(which: 0 | 1, n: number): Float32Array {
    const cur = which === 0 ? this.ta : this.tb;
    if (cur.length >= n) return cur.subarray(0, n);
    this.be.free?.(cur);
    const next = this.be.alloc(Math.ceil(n * 1.25));
    if (which === 0) this.ta = next; else this.tb = next;
    return next.subarray(0, n);
  }

  nt(C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number, acc: boolean): void {
    if (this.wasm) { this.wasm.nt(C, A, B, M, N, K, acc); return; }
    if (!(C instanceof Float32Array && A instanceof Float32Array && B instanceof Float32Array)) { this.js.nt(C, A, B, M, N, K, acc); return; }
    const w: Weight = { dtype: 'f32', rows: N, cols: K, data: B.length === N * K ? B : B.subarray(0, N * K) };
    this.be.linear(C, A, w, M, acc);
    // Release the copy prepareWeight may have made: B changes between calls (it is a parameter).
    (this.be as { free?: (x: unknown) => void }).free?.(w);
  }

  nn(C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number, acc: boolean): void {
    if (this.wasm) { this.wasm.nn(C, A, B, M, N, K, acc); return; }
    if (!(C instanceof Float32Array)) { this.js.nn(C, A, B, M, N, K, acc); return; }
    const Bt = this.scratch(1, N * K);
    transpose(Bt, B, K, N);
    this.nt(C, A, Bt, M, N, K, acc);
  }

  tn(C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number, acc: boolean): void {
    if (this.wasm) { this.wasm.tn(C, A, B, M, N, K, acc); return; }
    if (!(C instanceof Float32Array)) { this.js.tn(C, A, B, M, N, K, acc); return; }
    const At = this.scratch(0, M * K), Bt = this.scratch(1, N * K);
    transpose(At, A, K, M);
    transpose(Bt, B, K, N);
    this.nt(C, At, Bt, M, N, K, acc);
  }
}
