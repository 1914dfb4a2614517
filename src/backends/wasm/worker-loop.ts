// A kernel worker's life: instantiate the shared-memory kernels and claim chunks of every job the
// main thread opens (see sync.ts), forever, until QUIT. It never returns to its event loop, so it
// is stopped through the control block (or terminated). The platform's worker entry (Node's
// worker_threads script, a browser's Web Worker) calls runKernelWorker with what it was started with.

import { KERNEL_NAMES } from './kernel-names.js';
import type { KernelWorkerInit } from './pool.js';
import { COMPLETED, CTL_SLOTS, GEN, NCHUNKS, QUIT, SLEEPERS, SPIN_CHECK, WORKER_SLEEPS, WORKER_SPIN_MS, drain, type ChunkFn } from './sync.js';
import { Wasm } from './wasm-api.js';

export function runKernelWorker(init: KernelWorkerInit, post: (m: { ready?: boolean; error?: string }) => void): void {
  // one instance of the kernels per memory: a job runs in the memory that holds its operands
  const fns = init.memories.map((memory) => {
    const instance = new Wasm!.Instance(init.module, { env: { memory } });
    return KERNEL_NAMES.map((n) => instance.exports[n] as ChunkFn);
  });
  const ctl = new Int32Array(init.memories[0].buffer, init.ctlOffset, CTL_SLOTS);
  const tid = init.tid;

  let gen = Atomics.load(ctl, GEN);
  post({ ready: true });

  for (;;) {
    let g: number;
    let spins = 0, t0 = 0, t1 = 0;
    for (;;) {
      g = Atomics.load(ctl, GEN);
      if (g !== gen) break;
      if (++spins % SPIN_CHECK !== 0) continue;
      const now = performance.now();
      // The poll's time runs from the end of the last job (t1), not from this worker's last chunk:
      // until the main thread's own chunks are done it is still inside the call, and the next call
      // follows within the few µs of JavaScript between them. At most twice as long in all: a main
      // thread that lost its core in the middle of a chunk gets it back sooner if this one sleeps
      // (where the scheduler groups a process's threads, as Linux's autogroups do, they share one
      // share of the CPUs against other processes).
      if (spins === SPIN_CHECK) t0 = t1 = now;
      else if (Atomics.load(ctl, COMPLETED) < Atomics.load(ctl, NCHUNKS)) t1 = now;
      if (now - t1 > WORKER_SPIN_MS || now - t0 > 2 * WORKER_SPIN_MS) {
        Atomics.add(ctl, SLEEPERS, 1);
        Atomics.add(ctl, WORKER_SLEEPS, 1);
        Atomics.wait(ctl, GEN, gen);
        Atomics.sub(ctl, SLEEPERS, 1);
        spins = 0;
      }
    }
    gen = g;
    if (Atomics.load(ctl, QUIT)) break;
    const err = drain(ctl, fns, tid);
    if (err) post({ error: String((err as Error)?.stack ?? err) });
  }
}
