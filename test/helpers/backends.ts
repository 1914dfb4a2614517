// Backends for tests: the Node platform (worker threads, the native GEMM) registered, the WASM
// backend with test options, and the registry the backend-parameterised suites run over.

import { nodePlatform } from '../../src/platform/node.js';
import type { Backend, Tensor } from '../../src/backends/backend.js';
import { WasmBackend, type WasmBackendOptions } from '../../src/backends/wasm/wasm-backend.js';

/** A WASM backend with the Node platform's worker threads (native GEMM only when asked for). */
export function createWasm(opts: Omit<WasmBackendOptions, 'spawnWorker'> = {}): Promise<WasmBackend> {
  return WasmBackend.create({ spawnWorker: nodePlatform.spawnKernelWorker, ...opts });
}

/**
 * A CPU backend's tensor as the typed array it is (JS and WASM tensors are Float32Array views), so
 * kernel tests can fill and read them directly.
 */
export const f32 = (t: Tensor): Float32Array => t as unknown as Float32Array;

/** A tensor of the backend's own memory holding `src` (typed as the array it is on CPU backends). */
export function own(be: Backend, src: ArrayLike<number>): Float32Array {
  const t = be.alloc(src.length);
  be.write(t, src);
  return f32(t);
}
