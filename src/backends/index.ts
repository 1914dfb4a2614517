// Backend selection: `js` (reference, runs anywhere), `wasm` (WebAssembly SIMD + threads), or
// `auto` (wasm when this runtime supports it, else js).

import os from 'node:os';
import type { Backend } from './backend.js';
import { JsBackend } from './js/js-backend.js';
import { WasmBackend, createWasmBackend } from './wasm/wasm-backend.js';
import { wasmAvailable } from './wasm/kernels.js';
import { OpenELMError } from '../core/errors.js';
import type { NativeMode } from './native/native.js';

export type BackendName = 'js' | 'wasm' | 'auto';
export const BACKEND_NAMES: readonly BackendName[] = ['js', 'wasm', 'auto'];

export interface BackendOptions {
  /** Threads for the wasm backend, including the calling one (default: os.availableParallelism()). */
  threads?: number;
  /** Native sgemm for prefill and training on the wasm backend (default 'auto': when available). */
  native?: NativeMode;
}

export async function createBackend(name: BackendName, opts: BackendOptions = {}): Promise<Backend> {
  if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 1)) {
    throw new OpenELMError('usage', `threads must be a whole number ≥ 1, got ${String(opts.threads)}`);
  }
  const threads = opts.threads ?? os.availableParallelism();
  switch (name) {
    case 'js': return new JsBackend();
    case 'wasm': return createWasmBackend({ threads, native: opts.native ?? 'auto' });
    case 'auto':
      if (wasmAvailable()) {
        try { return await createWasmBackend({ threads, native: opts.native ?? 'auto' }); } catch (e) {
          // a requested native library that is missing is the user's error, not a reason to fall back
          if (opts.native === 'on') throw e;
        }
      }
      return new JsBackend();
    default:
      throw new OpenELMError('usage', `unknown backend "${String(name)}"; choose one of ${BACKEND_NAMES.join(', ')}`);
  }
}

/** The native sgemm library a backend uses ('libdnnl.so.2', …), or null. */
export function nativeLibrary(be: Backend): string | null {
  return be instanceof WasmBackend ? be.native?.library ?? null : null;
}

export { JsBackend } from './js/js-backend.js';
export { WasmBackend, createWasmBackend, type WasmBackendOptions } from './wasm/wasm-backend.js';
export { nativeBlas, nativeUnavailableReason, NATIVE_MODES, type NativeMode } from './native/native.js';
