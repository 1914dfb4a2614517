// The fork/join protocol shared by the main thread (pool.ts) and the workers (worker.ts), on a few
// Int32 slots of the shared memory.
//
// A job is split into chunks that threads claim one at a time with a compare-and-swap on CLAIM,
// so a thread the OS deschedules (2 vCPUs, other processes, V8's own threads) delays a call by at
// most one chunk instead of stalling it; the main thread claims chunks too and the call ends when
// COMPLETED reaches the chunk count, whether or not every worker woke up. Opening a job:
//   NCHUNKS = 0 (closed) → kernel index and arguments → COMPLETED = 0 → CLAIM = 0 → NCHUNKS = n → GEN++
// A claimer reads CLAIM before NCHUNKS and re-reads the job after a successful claim, so a stale
// claim attempt from an earlier job either fails its CAS or sees an index past the chunk count.
// Idle workers spin on GEN (≈0.3 µs hand-off) and only after a while sleep in Atomics.wait
// (≈50 µs to wake), since a decode step makes ~100 kernel calls.

export const CTL_OFFSET = 256;      // bytes; below the arena base, never allocated (in memory 0)
export const CTL_BLOCKS = 4;        // control blocks of CTL_SLOTS ints in [CTL_OFFSET, ARGS_OFFSET): one per pool generation
export const ARGS_OFFSET = 512;     // kernel argument slots (64 × 4 bytes)
export const ARG_SLOTS = 64;
export const ARENA_BASE = 65536;

export const GEN = 0;          // job generation, bumped to wake workers
export const CLAIM = 1;        // next chunk to claim
export const NCHUNKS = 2;      // chunks in the open job (0 = closed)
export const COMPLETED = 3;    // chunks finished
export const FN = 4;           // kernel index into KERNEL_NAMES
export const SLEEPERS = 5;     // workers blocked in Atomics.wait on GEN
export const MAIN_WAIT = 6;    // main thread blocked in Atomics.wait on COMPLETED
export const QUIT = 7;         // set before the final generation bump on dispose
export const ERROR = 8;        // 1 + tid of a thread whose kernel threw
export const SHARD = 9;        // which memory (and so which instance of the kernels) the open job runs in
export const WORKER_CHUNKS = 10; // chunks the workers ran (the main thread adds it to its counts and clears it)
export const WORKER_SLEEPS = 11; // times a worker stopped polling and slept (the main thread adds it to its counts and clears it)
export const CTL_SLOTS = 16;

/**
 * How long a thread polls before it sleeps, in ms. A worker's poll covers the gaps between the
 * kernel calls of a decode step (a few µs of JS each); it is kept short because on a machine with
 * other busy processes a polling worker costs the main thread CPU time: with 2 vCPUs and two
 * other busy threads, a 1280×1280 q8 GEMV on 2 threads took 177 µs with 0.2 ms of polling, 131 µs
 * with 0.02 ms and 123 µs with none (1 thread: 112 µs). The main thread polls for the last chunks
 * of a call, which finish within a chunk's time when nothing else competes.
 */
export const WORKER_SPIN_MS = 0.05;
export const MAIN_SPIN_MS = 0.5;
export const SPIN_CHECK = 64;

export type ChunkFn = (args: number, tid: number, chunk: number, chunks: number) => void;

/**
 * Claim and run chunks of the open job until none are left, with the kernels of the job's memory
 * (fns[shard][fn]). Returns the first error a kernel threw (the chunk still counts as completed so
 * the caller's join cannot hang).
 */
export function drain(ctl: Int32Array, fns: ChunkFn[][], tid: number): unknown {
  let err: unknown = null;
  for (;;) {
    const c = Atomics.load(ctl, CLAIM);
    if (c >= Atomics.load(ctl, NCHUNKS)) return err;
    if (Atomics.compareExchange(ctl, CLAIM, c, c + 1) !== c) continue;
    const n = Atomics.load(ctl, NCHUNKS);
    if (c >= n) continue;
    try {
      fns[Atomics.load(ctl, SHARD)][Atomics.load(ctl, FN)](ARGS_OFFSET, tid, c, n);
    } catch (e) {
      err ??= e;
      Atomics.store(ctl, ERROR, tid + 1);
    }
    if (tid !== 0) Atomics.add(ctl, WORKER_CHUNKS, 1);
    Atomics.add(ctl, COMPLETED, 1);
    if (tid !== 0 && Atomics.load(ctl, MAIN_WAIT)) Atomics.notify(ctl, COMPLETED);
  }
}
