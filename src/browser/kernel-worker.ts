// A WASM kernel thread in a browser: a module Web Worker started by platform.ts. Its first message
// is the KernelWorkerInit (compiled module, shared memory, thread id); from then on it runs the
// kernel loop (backends/wasm/worker-loop.ts) and never returns to its event loop.

import { runKernelWorker } from '../backends/wasm/worker-loop.js';
import type { KernelWorkerInit } from '../backends/wasm/pool.js';

interface WorkerScope {
  onmessage: ((e: MessageEvent<KernelWorkerInit>) => void) | null;
  postMessage(m: unknown): void;
}
const scope = globalThis as unknown as WorkerScope;

scope.onmessage = (e) => {
  scope.onmessage = null;
  try {
    runKernelWorker(e.data, (m) => scope.postMessage(m));
  } catch (err) {
    scope.postMessage({ error: `kernel worker ${e.data?.tid ?? '?'}: ${err instanceof Error ? err.message : String(err)}` });
  }
};
