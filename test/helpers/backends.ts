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
 * The WASM builds and thread counts the kernel suites compare with the JS reference. Their
 * parallelThreshold is 0, so even tiny calls are split into chunks over the threads.
 */
export const WASM_CONFIGS = [
  { label: '1 thread', threads: 1, relaxedSimd: true },
  { label: '2 threads', threads: 2, relaxedSimd: true },
  { label: '2 threads, SIMD128 build', threads: 2, relaxedSimd: false },
] as const;
export type WasmConfig = typeof WASM_CONFIGS[number];

const wasmCache = new Map<string, WasmBackend>();

/** One backend per WASM_CONFIGS entry, made on first use and kept until disposeCachedWasm(). */
export async function cachedWasm(cfg: WasmConfig): Promise<WasmBackend> {
  let be = wasmCache.get(cfg.label);
  if (!be) {
    be = await createWasm({ threads: cfg.threads, relaxedSimd: cfg.relaxedSimd, parallelThreshold: 0 });
    wasmCache.set(cfg.label, be);
  }
  return be;
}

/** Frees the backends cachedWasm() made (a test file's `after` hook). */
export function disposeCachedWasm(): void {
  for (const be of wasmCache.values()) be.dispose();
  wasmCache.clear();
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

import { JsBackend } from '../../src/backends/js/js-backend.js';
import { wasmAvailable } from '../../src/backends/wasm/kernels.js';
import { nativeBlas } from '../../src/platform/node-native.js';
import { TOL, type Tol } from '../tolerances.js';
import { probeAdapter } from '../../src/backends/webgpu/device.js';
import { WebGPUBackend } from '../../src/backends/webgpu/webgpu-backend.js';
import { OpenELMError } from '../../src/core/errors.js';

/**
 * The WebGPU adapter of this machine, or why there is none. CI installs SwiftShader (a CPU Vulkan
 * driver) and sets OPENELM_REQUIRE_WEBGPU=1, so there the WebGPU cases must run.
 */
export const webgpuProbe = await probeAdapter();
export const webgpuRequired = process.env.OPENELM_REQUIRE_WEBGPU === '1';

/** Whether this device fails to create a buffer of its own largest size (out of memory); SwiftShader does. */
export async function largestBufferFails(): Promise<boolean> {
  const be = await WebGPUBackend.create({ acquire: { own: true } });
  try {
    const t = be.alloc(be.rt.maxBufferBytes / 4);
    be.fill(t, 1);
    await be.read(be.view(t, 0, 1));
    return false;
  } catch (e) {
    if (e instanceof OpenELMError && e.code === 'memory') return true;
    throw e;
  } finally { be.dispose(); }
}

/**
 * Every backend the interface-level suites run on, with the tolerances its results are held to
 * against the fp64 goldens. Adding a backend here is all it takes to run the golden suite on it;
 * `available` says why it is skipped (a backend whose prerequisites CI installed must not skip).
 */
export interface BackendCase {
  name: string;
  make(): Promise<Backend>;
  available: () => string | null;
  /** Tolerance of logits against the fp64 golden. */
  logits: Tol;
  /**
   * Runs on a software adapter in CI (SwiftShader, slow): end-to-end suites cover one narrow and
   * one wide weight format there instead of all, the kernel tests covering every format.
   */
  software?: boolean;
  /** The backend as users get it, where make() lowers thresholds to reach more code on small shapes. */
  makeDefault?(): Promise<Backend>;
}

export const BACKEND_CASES: BackendCase[] = [
  { name: 'js', make: async () => new JsBackend(), available: () => null, logits: TOL.refLogits },
  {
    name: 'wasm (2 threads)', make: () => createWasm({ threads: 2 }), logits: TOL.fastVsRef,
    available: () => (wasmAvailable() ? null : 'this runtime has no WebAssembly SIMD'),
  },
  {
    name: 'wasm + native sgemm', logits: TOL.fastVsRef,
    make: async () => { const be = await createWasm({ threads: 2, native: nativeBlas('on') }); be.nativeMinRows = 1; be.nativeMinWork = 0; return be; },
    makeDefault: () => createWasm({ threads: 2, native: nativeBlas('on') }),
    available: () => (process.env.OPENELM_REQUIRE_NATIVE === '1' || (wasmAvailable() && nativeBlas('auto')) ? null : 'the native sgemm is not built'),
  },
  {
    name: 'webgpu', make: () => WebGPUBackend.create(), logits: TOL.fastVsRef, software: webgpuProbe.adapter?.software ?? true,
    available: () => (webgpuProbe.adapter || webgpuRequired ? null : webgpuProbe.why),
  },
];
