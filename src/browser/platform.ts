// The browser platform: core count from navigator.hardwareConcurrency, WASM kernel threads on Web
// Workers, the memory budget of a page, no native GEMM, WebGPU from navigator.gpu only. Importing this module registers it (the
// browser entry does).
//
// Kernel threads share the WebAssembly memory, which a browser only lets a page post to a worker
// when the page is cross-origin isolated (COOP + COEP headers, or the app's service worker). The
// thread that drives the kernels waits on Atomics.wait, which a window's main thread may not call,
// so threads are offered only inside a worker: run the engine in a Web Worker (the app does).

import { setPlatform, type Platform } from '../platform/platform.js';
import type { KernelWorkerHandle, KernelWorkerInit } from '../backends/wasm/pool.js';

interface BrowserGlobals {
  crossOriginIsolated?: boolean;
  isSecureContext?: boolean;
  WorkerGlobalScope?: unknown;
  navigator?: { hardwareConcurrency?: number; deviceMemory?: number };
}
const g = globalThis as unknown as BrowserGlobals;

let kernelWorkerUrl: string | URL | undefined;

/**
 * Where the kernel worker script is (default: kernel-worker.js next to this module). Bundlers that
 * do not follow `new Worker(new URL(...))` (esbuild) need the URL of the copy they emitted.
 */
export function setKernelWorkerUrl(url: string | URL | undefined): void { kernelWorkerUrl = url; }

/** Why this context cannot run WASM kernel threads, or null when it can. */
export function threadsUnavailableReason(): string | null {
  if (typeof Worker !== 'function') return 'this context cannot start Web Workers';
  if (g.WorkerGlobalScope === undefined) return 'the engine runs on the page\'s main thread, which may not block; run it in a Web Worker';
  if (g.crossOriginIsolated !== true) return 'the page is not cross-origin isolated (serve it with COOP/COEP headers)';
  return null;
}

function spawnKernelWorker(init: KernelWorkerInit): KernelWorkerHandle {
  // Written out as `new Worker(new URL(..., import.meta.url))` so bundlers that follow workers (Vite,
  // webpack) emit the script; the module worker loads the kernel loop (kernel-worker.ts).
  const w = kernelWorkerUrl !== undefined
    ? new Worker(kernelWorkerUrl, { type: 'module', name: `openelm-kernels-${init.tid}` })
    : new Worker(new URL('./kernel-worker.js', import.meta.url), { type: 'module', name: `openelm-kernels-${init.tid}` });
  let ready = false;
  const errorCbs: ((e: unknown) => void)[] = [];
  const fail = (e: unknown) => { for (const cb of errorCbs) cb(e); };
  w.addEventListener('error', (e) => {
    e.preventDefault();
    fail(new Error(e.message || `kernel worker script ${String(kernelWorkerUrl ?? 'kernel-worker.js')} failed to load`));
  });
  w.addEventListener('messageerror', () => fail(new Error('kernel worker could not receive the shared memory (is the page cross-origin isolated?)')));
  // A worker that fails before it is ready never says "ready": report it as a start failure
  // instead of leaving the pool waiting.
  w.addEventListener('message', (e: MessageEvent<{ ready?: boolean; error?: string }>) => {
    if (e.data?.ready) ready = true;
    else if (e.data?.error && !ready) fail(new Error(e.data.error));
  });
  w.postMessage(init);
  return {
    onMessage: (cb) => { w.addEventListener('message', (e: MessageEvent<{ ready?: boolean; error?: string }>) => cb(e.data)); },
    onError: (cb) => { errorCbs.push(cb); },
    // Web Workers have no exit event; a worker that dies reports through 'error'.
    onExit: () => undefined,
    unref: () => undefined,
    terminate: () => { w.terminate(); },
  };
}

/** The device's memory as the browser reports it (navigator.deviceMemory: GiB, rounded), or null. */
export function deviceMemoryBytes(): number | null {
  const d = g.navigator?.deviceMemory;
  return typeof d === 'number' && d > 0 ? d * 2 ** 30 : null;
}

/**
 * What one page may use: half the memory the device reports. Browsers close a tab well before it
 * takes all of the machine's memory, and the rest of the system needs some too.
 */
export function pageMemoryBudget(): number | null {
  const d = deviceMemoryBytes();
  return d === null ? null : d / 2;
}

/**
 * Why this browser context has no navigator.gpu (device.ts asks only when it is absent). Browsers
 * expose WebGPU only to secure contexts (https, or http on localhost), so that comes first.
 */
async function noWebGpu(): Promise<{ gpu: null; why: string }> {
  if (g.isSecureContext === false) return { gpu: null, why: 'WebGPU needs a secure context: serve the page over https or from localhost, or use the wasm backend' };
  return { gpu: null, why: 'this browser has no WebGPU (navigator.gpu): use a browser that has it (Chrome or Edge 113+, Safari 26+, Firefox 141+), or the wasm backend' };
}

function memory(): { total: number; available: number } {
  return { total: deviceMemoryBytes()!, available: pageMemoryBudget()! };
}

export const browserPlatform: Platform = {
  name: 'browser',
  cpuCount: () => Math.max(1, Math.floor(g.navigator?.hardwareConcurrency ?? 1)),
  get spawnKernelWorker() { return threadsUnavailableReason() === null ? spawnKernelWorker : undefined; },
  // absent where the browser does not say (the backend then has no bound of its own)
  get memory() { return deviceMemoryBytes() !== null ? memory : undefined; },
  // WebGPU comes from navigator.gpu (backends/webgpu/device.ts); this hook only says why it is not there
  webgpu: noWebGpu,
};

setPlatform(browserPlatform);
