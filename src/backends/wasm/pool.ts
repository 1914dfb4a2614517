// Worker threads sharing the kernels' memory, one fork/join per kernel call (protocol in sync.ts):
// the main thread opens a job whose arguments are already in the shared slots, claims chunks
// itself, then waits for the chunks the workers claimed. Starting a worker is the platform's job
// (Node's worker_threads, a browser's Web Workers); the workers run worker-loop.ts.

import { OpenELMError } from '../../core/errors.js';
import { KERNEL_NAMES, type KernelName } from './kernels.js';
import { ARGS_OFFSET, CLAIM, COMPLETED, CTL_OFFSET, CTL_SLOTS, ERROR, FN, GEN, MAIN_SPIN_MS, MAIN_WAIT, NCHUNKS, QUIT,
  SLEEPERS, SPIN_CHECK, drain, type ChunkFn } from './sync.js';
import type { WasmInstance, WasmMemory, WasmModule } from './wasm-api.js';

/** What a kernel worker is started with (structured-cloneable). */
export interface KernelWorkerInit { module: WasmModule; memory: WasmMemory; tid: number; relaxed: boolean; }

/** A started kernel worker. */
export interface KernelWorkerHandle {
  /** Messages from the worker: {ready: true} once, {error: string} when a kernel threw. */
  onMessage(cb: (m: { ready?: boolean; error?: string }) => void): void;
  onError(cb: (e: unknown) => void): void;
  onExit(cb: (code: number) => void): void;
  /** Let the process exit while the worker runs (no-op where that does not apply). */
  unref(): void;
  terminate(): void;
}

export type SpawnKernelWorker = (init: KernelWorkerInit) => KernelWorkerHandle;

export class ThreadPool {
  private readonly ctl: Int32Array;
  private readonly fns: ChunkFn[];
  private readonly workers: KernelWorkerHandle[] = [];
  private lastError = '';
  private closed = false;
  /** Kernel calls run inline (small work or one thread) and split over the threads. */
  readonly counts = { inline: 0, parallel: 0 };

  private constructor(readonly threads: number, memory: WasmMemory, instance: WasmInstance) {
    this.ctl = new Int32Array(memory.buffer, CTL_OFFSET, CTL_SLOTS);
    this.fns = KERNEL_NAMES.map((n) => instance.exports[n] as ChunkFn);
  }

  static async create(threads: number, module: WasmModule, memory: WasmMemory,
    instance: WasmInstance, relaxed: boolean, spawn?: SpawnKernelWorker): Promise<ThreadPool> {
    const pool = new ThreadPool(threads, memory, instance);
    const ready: Promise<void>[] = [];
    for (let tid = 1; tid < threads; tid++) {
      if (!spawn) throw new OpenELMError('usage', 'more than one wasm thread needs a way to start workers');
      const w = spawn({ module, memory, tid, relaxed });
      pool.workers.push(w);
      ready.push(new Promise<void>((resolve, reject) => {
        w.onMessage((m) => {
          if (m.ready) resolve();
          if (m.error) pool.lastError = m.error;
        });
        w.onError(reject);
        w.onExit((code) => reject(new Error(`worker exited with code ${code}`)));
      }));
    }
    try {
      await Promise.all(ready);
    } catch (e) {
      pool.close();
      throw new OpenELMError('wasm', `cannot start wasm kernel workers: ${(e as Error).message}`);
    }
    // A forgotten dispose() must not keep a CLI alive: workers never hold the event loop.
    for (const w of pool.workers) w.unref();
    return pool;
  }

  /** Run kernel `name` split into `chunks` chunks (1 = inline on this thread). Arguments must be in place. */
  run(name: KernelName, chunks: number): void {
    if (this.closed) throw new OpenELMError('usage', 'this wasm backend has been disposed');
    const fi = KERNEL_NAMES.indexOf(name);
    if (chunks <= 1 || this.threads === 1) {
      this.counts.inline++;
      this.fns[fi](ARGS_OFFSET, 0, 0, 1);
      return;
    }
    const ctl = this.ctl;
    this.counts.parallel++;
    Atomics.store(ctl, NCHUNKS, 0);
    Atomics.store(ctl, FN, fi);
    Atomics.store(ctl, COMPLETED, 0);
    Atomics.store(ctl, CLAIM, 0);
    Atomics.store(ctl, NCHUNKS, chunks);
    Atomics.add(ctl, GEN, 1);
    if (Atomics.load(ctl, SLEEPERS) > 0) Atomics.notify(ctl, GEN);
    const err = drain(ctl, this.fns, 0);
    const t1 = performance.now();
    let spins = 0;
    while (Atomics.load(ctl, COMPLETED) < chunks) {
      if (++spins % SPIN_CHECK !== 0) continue;
      if (performance.now() - t1 > MAIN_SPIN_MS) {
        // a worker holding a chunk was probably descheduled: give up the core until it reports
        Atomics.store(ctl, MAIN_WAIT, 1);
        const d = Atomics.load(ctl, COMPLETED);
        if (d < chunks) Atomics.wait(ctl, COMPLETED, d, 5);
        Atomics.store(ctl, MAIN_WAIT, 0);
      }
    }
    const bad = Atomics.exchange(ctl, ERROR, 0);
    if (err) throw err;
    if (bad) throw new OpenELMError('wasm', `wasm kernel ${name} failed on worker ${bad - 1}${this.lastError ? `: ${this.lastError}` : ''}`);
  }

  /** Stop the workers; they leave their loop at once (or are terminated) and never hold the process. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.ctl, QUIT, 1);
    Atomics.add(this.ctl, GEN, 1);
    Atomics.notify(this.ctl, GEN);
    for (const w of this.workers) { w.unref(); w.terminate(); }
  }
}
