// Worker threads sharing the kernels' memories, one fork/join per kernel call (protocol in sync.ts):
// the main thread opens a job whose arguments are already in the shared slots of the memory it runs
// in, claims chunks itself, then waits for the chunks the workers claimed. Starting a worker is the
// platform's job (Node's worker_threads, a browser's Web Workers); the workers run worker-loop.ts
// with one instance of the kernels per memory.

import { OpenELMError } from '../../core/errors.js';
import { KERNEL_NAMES, type KernelName } from './kernel-names.js';
import { ARGS_OFFSET, CLAIM, COMPLETED, CTL_BLOCKS, CTL_OFFSET, CTL_SLOTS, ERROR, FN, GEN, MAIN_SPIN_MS, MAIN_WAIT, NCHUNKS, QUIT,
  SHARD, SLEEPERS, SPIN_CHECK, WORKER_CHUNKS, WORKER_SLEEPS, drain, type ChunkFn } from './sync.js';
import type { WasmInstance, WasmMemory, WasmModule } from './wasm-api.js';

/** What a kernel worker is started with (structured-cloneable). */
export interface KernelWorkerInit {
  module: WasmModule;
  /** Every memory of the backend; the control block lives in the first. */
  memories: WasmMemory[];
  /** Byte offset of this pool's control block in memories[0]. */
  ctlOffset: number;
  tid: number;
  relaxed: boolean;
}

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

/** ThreadPool.counts. */
export interface PoolCounts {
  inline: number; parallel: number; workerAsleep: number; chunks: number; workerChunks: number;
  /** Times a worker gave up polling and slept (each one a wake-up some later call waits for). */
  workerSleeps: number;
  /** ms this thread waited, after it found no chunk left to claim, for the chunks other threads held. */
  joinWaitMs: number;
}

/** Counts before any call. */
export const noCounts = (): PoolCounts => ({ inline: 0, parallel: 0, workerAsleep: 0, chunks: 0, workerChunks: 0, workerSleeps: 0, joinWaitMs: 0 });

export type SpawnKernelWorker = (init: KernelWorkerInit) => KernelWorkerHandle;

let generation = 0;

const chunkFns = (inst: WasmInstance): ChunkFn[] => KERNEL_NAMES.map((n) => inst.exports[n] as ChunkFn);

export class ThreadPool {
  private readonly ctl: Int32Array;
  /** fns[memory][kernel] on this thread. */
  private readonly fns: ChunkFn[][];
  private readonly workers: KernelWorkerHandle[] = [];
  private lastError = '';
  private closed = false;
  /**
   * Kernel calls run inline (small work or one thread) and split over the threads; of the split
   * ones, how many opened while a worker slept (it then starts a wake-up late), and of their
   * chunks, how many the workers ran; how often a worker slept, and how long this thread waited
   * at the end of the split calls.
   */
  counts: PoolCounts = noCounts();

  /** Memories the workers have instances for; jobs in later memories run on this thread only. */
  readonly workerMemories: number;

  private constructor(readonly threads: number, memories: WasmMemory[], instances: WasmInstance[], readonly ctlOffset: number) {
    this.ctl = new Int32Array(memories[0].buffer, ctlOffset, CTL_SLOTS);
    this.ctl.fill(0);
    this.fns = instances.map(chunkFns);
    this.workerMemories = memories.length;
  }

  /** This thread's instance for a memory added after the workers started (until a new pool replaces this one). */
  addInstance(instance: WasmInstance): void { this.fns.push(chunkFns(instance)); }

  /**
   * A pool of `threads` threads (this one included) over `memories`, with this thread's kernel
   * instance for each. Each pool takes its own control block (consecutive pools alternate), so a
   * replaced pool's workers, which may take a moment to stop, never see a new pool's jobs.
   */
  static async create(threads: number, module: WasmModule, memories: WasmMemory[],
    instances: WasmInstance[], relaxed: boolean, spawn?: SpawnKernelWorker): Promise<ThreadPool> {
    const { pool, ready } = ThreadPool.start(threads, module, memories, instances, relaxed, spawn);
    try {
      await ready;
    } catch (e) {
      pool.close();
      throw e;
    }
    return pool;
  }

  /**
   * create() without waiting for the workers: the pool runs calls at once, a job's chunks going to
   * the threads that are up (this one at least; a worker that comes up later joins the next job,
   * or the one open, by claiming chunks). `ready` resolves once every worker runs (or the pool was
   * closed first) and rejects with the reason one could not start; the pool then stays usable on
   * the threads that did, and closing it is the caller's choice.
   */
  static start(threads: number, module: WasmModule, memories: WasmMemory[],
    instances: WasmInstance[], relaxed: boolean, spawn?: SpawnKernelWorker): { pool: ThreadPool; ready: Promise<void> } {
    if (threads > 1 && !spawn) throw new OpenELMError('usage', 'more than one wasm thread needs a way to start workers');
    const ctlOffset = CTL_OFFSET + (generation++ % CTL_BLOCKS) * CTL_SLOTS * 4;
    const pool = new ThreadPool(threads, memories, instances, ctlOffset);
    const started: Promise<void>[] = [];
    for (let tid = 1; tid < threads; tid++) {
      const w = spawn!({ module, memories, ctlOffset, tid, relaxed });
      pool.workers.push(w);
      started.push(new Promise<void>((resolve, reject) => {
        w.onMessage((m) => {
          if (m.ready) resolve();
          if (m.error) pool.lastError = m.error;
        });
        w.onError(reject);
        w.onExit((code) => reject(new Error(`worker exited with code ${code}`)));
      }));
    }
    const ready = Promise.all(started).then(() => {
      // A forgotten dispose() must not keep a CLI alive: workers never hold the event loop.
      for (const w of pool.workers) w.unref();
    }, (e: unknown) => {
      // close() terminates the workers: one that had not started yet reports that, not a failure
      if (pool.closed) return;
      throw new OpenELMError('wasm', `cannot start wasm kernel workers: ${(e as Error).message}`);
    });
    return { pool, ready };
  }

  /**
   * Run kernel `name` in memory `shard`, split into `chunks` chunks (1 = inline on this thread).
   * Arguments must be in place in that memory's slots. `meanwhile` runs on this thread once the
   * workers have the chunks (after the kernel when it runs inline).
   */
  run(shard: number, name: KernelName, chunks: number, meanwhile?: () => void): void {
    if (this.closed) throw new OpenELMError('usage', 'this wasm backend has been disposed');
    const fi = KERNEL_NAMES.indexOf(name);
    if (chunks <= 1 || this.threads === 1 || shard >= this.workerMemories) {
      this.counts.inline++;
      this.fns[shard][fi](ARGS_OFFSET, 0, 0, 1);
      meanwhile?.();
      return;
    }
    const ctl = this.ctl;
    this.counts.parallel++;
    Atomics.store(ctl, NCHUNKS, 0);
    Atomics.store(ctl, FN, fi);
    Atomics.store(ctl, SHARD, shard);
    Atomics.store(ctl, COMPLETED, 0);
    Atomics.store(ctl, CLAIM, 0);
    Atomics.store(ctl, NCHUNKS, chunks);
    Atomics.add(ctl, GEN, 1);
    if (Atomics.load(ctl, SLEEPERS) > 0) { this.counts.workerAsleep++; Atomics.notify(ctl, GEN); }
    // work of the caller's that touches nothing the kernel reads or writes, done while the workers
    // take chunks; then this thread takes what is left (an error from it waits for the join)
    let hostErr: unknown = null, hostFailed = false;
    if (meanwhile) { try { meanwhile(); } catch (e) { hostErr = e; hostFailed = true; } }
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
    this.counts.joinWaitMs += performance.now() - t1;
    this.counts.chunks += chunks;
    this.counts.workerChunks += Atomics.exchange(ctl, WORKER_CHUNKS, 0);
    this.counts.workerSleeps += Atomics.exchange(ctl, WORKER_SLEEPS, 0);
    const bad = Atomics.exchange(ctl, ERROR, 0);
    if (err) throw err;
    if (hostFailed) throw hostErr;
    if (bad) throw new OpenELMError('wasm', `wasm kernel ${name} failed on worker ${bad - 1}${this.lastError ? `: ${this.lastError}` : ''}`);
  }

  /**
   * Wake sleeping workers now, ahead of the split calls that follow shortly (a forward pass starts):
   * a wake-up takes tens of µs, which then overlap the calls run inline before the first split one
   * instead of delaying it. A woken worker polls as after a job, then sleeps again if none comes.
   */
  wake(): void {
    if (!this.closed && this.threads > 1 && Atomics.load(this.ctl, SLEEPERS) > 0) Atomics.notify(this.ctl, GEN);
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
