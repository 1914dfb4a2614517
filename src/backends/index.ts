// The one backend factory: `js` (the reference, runs anywhere), `wasm` (WebAssembly SIMD + threads,
// with the optional native GEMM), `webgpu` (WGSL on a GPU), backends registered by other modules, or
// `auto` (the fastest available: a registered backend that says it should be preferred, i.e. WebGPU
// on a hardware adapter, else wasm, else js).
// Threads, workers and the native library come from the registered platform (platform/platform.ts).

import type { Backend } from './backend.js';
import { JsBackend } from './js/js-backend.js';
import { WasmBackend } from './wasm/wasm-backend.js';
import { wasmAvailable } from './wasm/kernels.js';
import { OpenELMError } from '../core/errors.js';
import type { NativeMode } from './native-gemm.js';
import { getPlatform } from '../platform/platform.js';
import { webgpuProvider } from './webgpu/provider.js';
import type { GpuLimits } from './webgpu/device.js';

export interface BackendOptions {
  /** Compute threads for CPU backends, including the calling one (default: all cores). */
  threads?: number;
  /** Native sgemm for prefill and training on the wasm backend (default 'auto': when available). */
  native?: NativeMode;
  /** GPU backends: ask for a device with these buffer limits below the adapter's (webgpu/device.ts). */
  gpuLimits?: GpuLimits;
  /** wasm: block weights with exact f32 products instead of int8 activations, decode and prompts (WasmBackendOptions.exactBlocks). */
  exactBlocks?: boolean;
  /** wasm: return before the worker threads are up; sync() waits for them (WasmBackendOptions.lateWorkers). */
  lateWorkers?: boolean;
}

/** A backend other modules add (e.g. WebGPU): `make` creates it; `preferred` says whether `auto` should pick it here. */
export interface BackendProvider {
  make(opts: BackendOptions): Promise<Backend>;
  preferred?(): Promise<boolean>;
}

const providers = new Map<string, BackendProvider>();

/** Make `name` available to createBackend (and to `auto` when its provider is preferred). */
export function registerBackend(name: string, p: BackendProvider): void { providers.set(name, p); }

// WebGPU (browsers: navigator.gpu; Node: Dawn through the platform) is always known by name.
registerBackend('webgpu', webgpuProvider);

/** Names createBackend accepts now. */
export function backendNames(): string[] { return ['auto', 'wasm', 'js', ...providers.keys()]; }

export async function createBackend(name: string, opts: BackendOptions = {}): Promise<Backend> {
  if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 1)) {
    throw new OpenELMError('usage', `threads must be a whole number ≥ 1, got ${String(opts.threads)}`);
  }
  const provider = providers.get(name);
  if (provider) return provider.make(opts);
  switch (name) {
    case 'js': return new JsBackend();
    case 'wasm': return makeWasm(opts);
    case 'auto': {
      for (const p of providers.values()) if (await p.preferred?.()) return p.make(opts);
      if (wasmAvailable()) {
        try { return await makeWasm(opts); } catch (e) {
          // a requested native library that is missing is the user's error, not a reason to fall back
          if (opts.native === 'on') throw e;
        }
      }
      return new JsBackend();
    }
    default:
      throw new OpenELMError('usage', `unknown backend "${name}"; choose one of ${backendNames().join(', ')}`);
  }
}

async function makeWasm(opts: BackendOptions): Promise<Backend> {
  const pf = getPlatform();
  const threads = opts.threads ?? pf.cpuCount();
  const mode = opts.native ?? 'auto';
  const native = pf.nativeGemm ? pf.nativeGemm(mode) : null;
  if (!native && mode === 'on') throw new OpenELMError('backend', `native GEMM requested but this platform (${pf.name}) has none`);
  // the weights may spread over several wasm memories; what the machine has bounds them together
  const memoryLimit = pf.memory ? pf.memory().available : Infinity;
  return WasmBackend.create({ threads: pf.spawnKernelWorker ? threads : 1, spawnWorker: pf.spawnKernelWorker, native, memoryLimit, exactBlocks: opts.exactBlocks, lateWorkers: opts.lateWorkers });
}

export { JsBackend } from './js/js-backend.js';
export { WasmBackend, type WasmBackendOptions } from './wasm/wasm-backend.js';
export { NATIVE_MODES, type NativeMode, type NativeGemm } from './native-gemm.js';
