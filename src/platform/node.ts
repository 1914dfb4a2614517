// The Node.js platform: core count from os, kernel workers on worker_threads, the native GEMM addon,
// WebGPU through Dawn, and V8's relaxed-SIMD flag. Importing this module registers it (the library
// entry and the CLI do).

import fs from 'node:fs';
import os from 'node:os';
import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import { setRelaxedSimdEnabler, RELAXED_FLAG } from '../backends/wasm/kernels.js';
import type { KernelWorkerHandle, KernelWorkerInit } from '../backends/wasm/pool.js';
import { nativeBlas } from './node-native.js';
import { nodeWebGpu } from './node-webgpu.js';
import { setPlatform, type Platform } from './platform.js';

function spawnKernelWorker(init: KernelWorkerInit): KernelWorkerHandle {
  const w = new Worker(new URL('./node-kernel-worker.js', import.meta.url), {
    workerData: init,
    // the parent's flags (e.g. --input-type, loaders) may not apply to a worker script
    execArgv: [],
    // The thread runs wasm in shared memory and allocates next to nothing in JS; an explicit old
    // generation bound makes V8 size that heap for it (0.7 MiB less resident per thread, measured
    // on Node 20) and is far above what it holds (a few MB of Node's own bootstrap).
    resourceLimits: { maxOldGenerationSizeMb: 64 },
  });
  return {
    onMessage: (cb) => { w.on('message', cb); },
    onError: (cb) => { w.once('error', cb); },
    onExit: (cb) => { w.once('exit', cb); },
    unref: () => { w.unref(); },
    terminate: () => { void w.terminate(); },
  };
}

/**
 * This process's peak RSS in KiB: VmHWM (Linux), the high-water mark of this program's own memory.
 * getrusage's maxRSS (the fallback elsewhere) survives exec on Linux, so a program started by a
 * large process (spawnSync from a benchmark holding a model) would report that process's RSS instead.
 */
export function peakRssKb(): number {
  try {
    const m = /^VmHWM:\s*(\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]);
  } catch { /* not Linux */ }
  return process.resourceUsage().maxRSS;
}

export const nodePlatform: Platform = {
  name: 'node',
  cpuCount: () => os.availableParallelism(),
  spawnKernelWorker,
  nativeGemm: nativeBlas,
  memory: () => ({ total: os.totalmem(), available: os.freemem() }),
  webgpu: nodeWebGpu,
};

setRelaxedSimdEnabler(() => v8.setFlagsFromString(RELAXED_FLAG));
setPlatform(nodePlatform);
