// Backend selection: `js` (reference, runs anywhere), `wasm` (WebAssembly SIMD + threads), or
// `auto` (wasm when this runtime supports it, else js).

import os from 'node:os';
import type { Backend } from './backend.js';
import { JsBackend } from './js/js-backend.js';
import { createWasmBackend } from './wasm/wasm-backend.js';
import { wasmAvailable } from './wasm/kernels.js';
import { OpenELMError } from '../core/errors.js';

export type BackendName = 'js' | 'wasm' | 'auto';
export const BACKEND_NAMES: readonly BackendName[] = ['js', 'wasm', 'auto'];

export interface BackendOptions {
  /** Threads for the wasm backend, including the calling one (default: os.availableParallelism()). */
  threads?: number;
}

export async function createBackend(name: BackendName, opts: BackendOptions = {}): Promise<Backend> {
  if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 1)) {
    throw new OpenELMError('usage', `threads must be a whole number ≥ 1, got ${String(opts.threads)}`);
  }
  const threads = opts.threads ?? os.availableParallelism();
  switch (name) {
    case 'js': return new JsBackend();
    case 'wasm': return createWasmBackend({ threads });
    case 'auto':
      if (wasmAvailable()) {
        try { return await createWasmBackend({ threads }); } catch { /* fall back to the reference */ }
      }
      return new JsBackend();
    default:
      throw new OpenELMError('usage', `unknown backend "${String(name)}"; choose one of ${BACKEND_NAMES.join(', ')}`);
  }
}

export { JsBackend } from './js/js-backend.js';
export { WasmBackend, createWasmBackend, type WasmBackendOptions } from './wasm/wasm-backend.js';
