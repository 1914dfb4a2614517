// What the engine needs from its host that differs between Node.js and browsers: how many cores to
// use, how to start kernel worker threads, the optional native GEMM, where WebGPU comes from. The
// core (backends/, model/, tokenizer/, generate/, chat/) imports no Node module; an entry point
// registers its platform (platform/node.ts for the Node library and CLI, a browser entry its own)
// before creating backends.

import { OpenELMError } from '../core/errors.js';
import type { NativeGemm, NativeMode } from '../backends/native-gemm.js';
import type { SpawnKernelWorker } from '../backends/wasm/pool.js';

export interface Platform {
  readonly name: string;
  /** Threads worth using for compute by default. */
  cpuCount(): number;
  /** Starts a WASM kernel worker thread; absent where the runtime cannot share memory with workers. */
  spawnKernelWorker?: SpawnKernelWorker;
  /** The native GEMM for a mode ('off' → null, 'auto' → when it loads, 'on' → or a clear error); absent where there is none. */
  nativeGemm?(mode: NativeMode): NativeGemm | null;
  /** Bytes of RAM the machine has and can give this process now (absent where the host does not say). */
  memory?(): { total: number; available: number };
  /**
   * The WebGPU entry point (a `GPU` object) where the runtime has no `navigator.gpu`: Node loads
   * Dawn here. Resolves null when this host has no way to reach a GPU (the reason in `why`).
   */
  webgpu?(): Promise<{ gpu: unknown } | { gpu: null; why: string }>;
}

let current: Platform | undefined;

export function setPlatform(p: Platform): void { current = p; }

export function getPlatform(): Platform {
  if (!current) throw new OpenELMError('usage', 'no platform registered: import "openelm" (Node.js) or the browser entry before creating a backend');
  return current;
}
