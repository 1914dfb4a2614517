// The fast CPU backend: WebAssembly SIMD kernels (relaxed SIMD where the runtime has it) over shared
// memories, split across worker threads. Every tensor it hands out is a view into one of its
// memories, so kernels run on the data in place. A wasm32 memory holds at most 4 GiB, so a larger
// model spreads over several (shards, shard.ts): each kernel call runs in the memory of its main
// operand (the weight of a linear layer, the cache of an attention call) and the other operands
// are staged in and copied back — small next to the work for the shapes a model has. Arrays from
// outside every memory are staged the same way. Inference kernels are driven here, the training
// kernels by train-ops.ts; products large enough to be compute-bound may go to an optional native
// sgemm (native-gemm.ts).

import type { AdamWStep, Backend, BlockDType, LossSums, MatmulLayout, MatmulPrecision, RopeTables, StoredLoad, Tensor, Weight, WeightDType } from '../backend.js';
import { allocWeightStorage, blockRowBytes, isBlockDType, q4MetaBytes, q8Overflow, QBLOCK, setWeightRows, weightBytes, weightRowToF32 } from '../weight-format.js';
import { Q4K_BYTES, Q4KR_BYTES } from '../q4k-repack.js';
import { HALF_NONFINITE, HALF_SLOW, Q4_0_BYTES, Q8_0_BYTES, q4_0HalfBits, q8_0HalfBit, q8_0HalfBits, repackQ4_0, repackQ8_0, unpackQ8_0 } from '../gguf-repack.js';
import { Q6K_BYTES, Q6KR_BYTES } from '../q6k-repack.js';
import { OpenELMError } from '../../core/errors.js';
import { formatBytes } from '../../core/bytes.js';
import { checkDropout, checkPositions } from '../js/js-backend.js';
import { MAX_BYTES, SharedArena } from './arena.js';
import { BLOCK_CODE_MIN, DTYPE_CODE, denormalsFast, loadKernels, type KernelExports, type KernelName } from './kernels.js';
import { ThreadPool, noCounts, type PoolCounts, type SpawnKernelWorker } from './pool.js';
import { Shard, shardError } from './shard.js';
import { ARENA_BASE, ARGS_OFFSET } from './sync.js';
import { Wasm, type WasmModule } from './wasm-api.js';
import type { HeldBf16, NativeGemm } from '../native-gemm.js';
import { OP, SUMSQ_BLOCK, WasmTrainOps } from './train-ops.js';
import { blockedSumSquares, tensorList } from '../block-sums.js';

export interface WasmBackendOptions {
  /** Threads including the calling one (default 1); 1 runs inline, no workers. */
  threads?: number;
  /** Starts a kernel worker thread (the platform's: worker_threads in Node, Web Workers in browsers); needed for threads > 1. */
  spawnWorker?: SpawnKernelWorker;
  /** Use relaxed SIMD when the runtime validates it (default true). */
  relaxedSimd?: boolean;
  /**
   * Kernels with less work than this (multiply-adds, or elements × ~8 for SiLU) run on the calling
   * thread only (default 131072, roughly 10–20 µs of one thread: a fork/join costs ~1 µs on an idle
   * machine, more when a worker has to be woken or rescheduled).
   */
  parallelThreshold?: number;
  /** Compute-bound products (prefill, training) through a native sgemm (default none: pure WASM). */
  native?: NativeGemm | null;
  /**
   * Most bytes one memory hands out before the next one is started (default: the 4 GiB a wasm32
   * memory can reach). Tests lower it to run the multi-memory paths on small models.
   */
  shardBytes?: number;
  /** Bytes all memories together may hold (memory().limit; default: no bound but the machine's). */
  memoryLimit?: number;
  /**
   * Products of block weights with f32 activations on the exactly decoded weights instead of
   * int8-quantized activations: decode (up to 8 tokens) of Q8_0, Q4_0, Q4_K and Q6_K, and prompts of
   * the block dtypes with an integer GEMM (Q8_0, Q4_0). Default false: int8, llama.cpp's arithmetic
   * for these types, several times faster kernels. Sets blockInt8 false.
   */
  exactBlocks?: boolean;
  /**
   * Return once the kernels are compiled, with the worker threads still starting (Node takes tens of
   * ms a thread): kernel calls meanwhile run on the threads that are up, this one at least, and
   * sync() waits for the rest (and throws if one could not start). Lets a caller do its own work,
   * e.g. build a tokenizer, while they start. Default false: create() waits for them.
   */
  lateWorkers?: boolean;
}

/** Where a weight's storage lives in the wasm memories (set by prepareWeight). */
interface WasmPacked {
  owner: WasmBackend;
  /** The memory holding data, scales and mins. */
  shard: Shard;
  dtype: number;
  data: number;
  scales: number;
  mins: number;
  /** Offsets of copies this backend made (weights whose storage was outside its memory). */
  copies: number[];
  /** A Q8_0 weight regrouped into q8's layout (dtype is q8's code): its exact path and the addon read it as Q8_0. */
  q80r?: true;
}

/** Chunks per thread for dynamic scheduling: enough to absorb a descheduled thread, few enough
 * that claiming (a CAS and a wasm call, well under a microsecond) stays negligible. */
const CHUNKS_PER_THREAD = 4;
/** Block dtypes whose GEMV has an int8-activation kernel (kernels/blocks_int.as). */
const BLOCK_INT8_CODES: ReadonlySet<number> = new Set([DTYPE_CODE.q8_0, DTYPE_CODE.q4_0, DTYPE_CODE.q4_0_r, DTYPE_CODE.q4_k, DTYPE_CODE.q4_k_r, DTYPE_CODE.q6_k, DTYPE_CODE.q6_k_r]);
/** Largest token count that takes the GEMV path (packing W for a GEMM costs more below this). */
const GEMV_ROWS = 8;
/**
 * Refuse rows [i, i + n) of a q8 quantization (weight rows r0 + i..) where a block's scale came out
 * infinite (the kernel writes f16's infinity when max|x|/127 overflows it), as setWeightRows does.
 */
function checkQ8Scales(s: Uint16Array, src: Float32Array, K: number, r0: number, i: number, n: number): void {
  const nb = K / QBLOCK;
  for (let j = (r0 + i) * nb; j < (r0 + i + n) * nb; j++) {
    if ((s[j] & 0x7c00) !== 0x7c00) continue;
    const at = (j - r0 * nb) * QBLOCK;
    let amax = 0;
    for (let k = 0; k < QBLOCK; k++) amax = Math.max(amax, Math.abs(src[at + k]));
    throw q8Overflow(Math.floor(j / nb), amax);
  }
}

/**
 * Whether every one of a q8 weight's nb scales is a positive normal half, or 0 over a block whose
 * levels are all 0 (its products are 0 whatever the scale): then the GEMV widens them with an
 * integer add instead of the exact widening subnormal halves need (gemv.as q8Scales4).
 */
function q8FastScales(s: Uint16Array, q: Int8Array, nb: number): boolean {
  for (let b = 0; b < nb; b++) {
    const h = s[b];
    if (!(q8_0HalfBit(h) & HALF_SLOW)) continue;
    if (h !== 0) return false;
    for (let j = b * QBLOCK; j < (b + 1) * QBLOCK; j++) if (q[j] !== 0) return false;
  }
  return true;
}

/**
 * Bytes loadStoredMany reads at a time, put in place by all threads: small enough to stay in cache
 * between the read and the scatter, large enough that a fork/join per piece costs little (2 MiB
 * against 1: 6% less time for a 289 MB Q8_0 file, 7 of 7 alternated quiet rounds; no difference
 * for Q4_K_M; docs/quantization.md "One pipeline for the whole model").
 */
const LOAD_STAGE_BYTES = 2 << 20;
/** OP_SCATTER's modes (blocks.as SCATTER_*). */
const SCATTER = { copy: 0, q8_0: 1, q4_0: 2, q4_k: 3, q6_k: 4 } as const;
/**
 * How loadStoredMany puts a weight's staged bytes in place (OP_SCATTER, blocks.as scatterStored):
 * in units of `unit` stored bytes, a piece holding whole units, each unit's first `placed` bytes
 * at the destination (the levels and d's, repacked or regrouped, in the layout prepareWeight
 * keeps) and its last `aux` (Q8_0's d) after all of the weight's levels; `perRow`: the unit is a
 * row of such blocks (Q4_0 regroups per row); `halves`: the scatter classifies the d's
 * (HALF_* bits, for prepareWeight). Other dtypes are copied as stored, in 4 KiB units.
 */
interface Scattered { mode: number; unit: number; placed: number; aux: number; layout?: Weight['layout']; perRow?: boolean; halves?: boolean }
const SCATTERED: { readonly [d in WeightDType]?: Scattered } = {
  q8_0: { mode: SCATTER.q8_0, unit: Q8_0_BYTES, placed: QBLOCK, aux: 2, layout: 'q8_0_r', halves: true },
  q4_0: { mode: SCATTER.q4_0, unit: Q4_0_BYTES, placed: Q4_0_BYTES, aux: 0, layout: 'q4_0_r', perRow: true, halves: true },
  q4_k: { mode: SCATTER.q4_k, unit: Q4K_BYTES, placed: Q4KR_BYTES, aux: 0, layout: 'q4_k_r' },
  q6_k: { mode: SCATTER.q6_k, unit: Q6K_BYTES, placed: Q6KR_BYTES, aux: 0, layout: 'q6_k_r' },
};
const COPIED: Scattered = { mode: SCATTER.copy, unit: 4096, placed: 4096, aux: 0 };
/**
 * Bytes a weight of `bytes` stored bytes holds: Q4_K and Q6_K keep room after their blocks to be
 * repacked in place (+8 and +2 bytes a super-block: holdRelaid, loadStoredMany's scatter).
 */
function heldBytes(dtype: WeightDType, bytes: number): number {
  return dtype === 'q4_k' ? (bytes / Q4K_BYTES) * Q4KR_BYTES : dtype === 'q6_k' ? (bytes / Q6K_BYTES) * Q6KR_BYTES : bytes;
}
/** Smallest storage prefault() maps on all threads (below it, one thread's faults cost less than a fork/join). */
const PREFAULT_MIN_BYTES = 1 << 20;

/** Most values quantizeRows stages into a memory per kernel call (1 MiB). */
const QUANTIZE_STAGE_FLOATS = 1 << 18;
/** Fewest rows for the native linear: it widens all of a non-f32 W per call, which fewer rows do not repay. */
const NATIVE_MIN_ROWS = 32;

export class WasmBackend implements Backend {
  readonly name = 'wasm';
  readonly device = 'cpu' as const;
  readonly threads: number;
  /** Whether the relaxed-SIMD kernels are in use. */
  readonly relaxedSimd: boolean;
  parallelThreshold: number;
  /** q8/q4 prefill through the integer GEMM (int8 activations; natively too where the CPU has VNNI); false dequantizes to an f32 GEMM. */
  intGemm = true;
  /**
   * GEMV (decode) of the block dtypes that have an int8-activation kernel (Q8_0, Q4_0, Q4_K, Q6_K) through it,
   * and prompts (more than 8 tokens) of those with an integer GEMM (igemm.as hasIntGemm: Q8_0, Q4_0):
   * x quantized per block of 32 as for q8/q4 (the error of TOL.intDotVsRef). false: exact f32 products, whose
   * only error is the summation order (TOL.storedPerplexity). Calls with `exact` always take those.
   */
  blockInt8 = true;
  /** The native sgemm used for prefill and training products, or null (pure WASM). */
  native: NativeGemm | null;
  /** Fewest rows a linear needs to go native (tests lower it to cover small models). */
  nativeMinRows = NATIVE_MIN_ROWS;
  /**
   * Multiply-adds from which a training product goes to the native sgemm (below it the call and
   * thread hand-off cost more than the faster kernel saves; tests lower it).
   */
  nativeMinWork = 1 << 20;

  private readonly shards: Shard[] = [];
  /** The shard the current kernel call runs in. */
  private cur: Shard;
  private pool: ThreadPool;
  /** A pool being started that knows every shard (set while one is pending). */
  private respawn: Promise<void> | null = null;
  /** The first pool's workers starting (lateWorkers), with the error that stopped one if any. */
  private starting: Promise<unknown> | null = null;
  private readonly counts: PoolCounts = noCounts();
  private copyBack: { dst: Float32Array; off: number; n: number }[] = [];
  private disposed = false;
  /** What alloc()/allocWeight() returned: its shard and the allocations free() releases. */
  private readonly owned = new WeakMap<object, { shard: Shard; offs: number[]; room?: boolean }>();
  /** loadStoredMany's Q8_0 and Q4_0 weights: what their halves are (blocks.as scatterStored's bits), for prepareWeight. */
  private readonly loadedBits = new WeakMap<Weight, number>();
  private readonly train: WasmTrainOps;
  /** linearT's decoded copy of a non-f32 weight, and the row ids that decode it. */
  private decoded: Float32Array | null = null;
  private iota: Int32Array | null = null;
  private readonly shardBytes: number;
  private readonly memoryLimit: number;
  /**
   * Bytes of each memory that new tensors and weights leave free for the kernel calls running there
   * (staged operands, per-thread scratch): 256 MiB of a 4 GiB memory, a quarter of a small one but
   * at least twice the kernels' per-thread scratch.
   */
  private readonly headroom: number;

  private constructor(threads: number, relaxed: boolean, shard0: Shard, pool: ThreadPool, threshold: number,
    native: NativeGemm | null, private readonly module: WasmModule, private readonly spawn: SpawnKernelWorker | undefined,
    shardBytes: number, memoryLimit: number) {
    this.threads = threads;
    this.native = native;
    this.relaxedSimd = relaxed;
    this.shards.push(shard0);
    this.cur = shard0;
    this.pool = pool;
    this.pool.counts = this.counts;
    this.parallelThreshold = threshold;
    this.shardBytes = shardBytes;
    this.memoryLimit = memoryLimit;
    const scratch = (shard0.k.trainScratchBytes() + shard0.k.gemmScratch()) * threads;
    this.headroom = Math.min(256 << 20, Math.max(Math.floor(shardBytes / 4), 2 * scratch));
    shard0.ensureScratch(shard0.k.gemmScratch(), threads);
    this.train = new WasmTrainOps(this);
  }

  private applyOptions(opts: WasmBackendOptions): this {
    if (opts.exactBlocks) this.blockInt8 = false;
    return this;
  }

  static async create(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
    const threads = opts.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1) throw new OpenELMError('usage', `threads must be a positive integer, got ${threads}`);
    if (threads > 1 && !opts.spawnWorker) throw new OpenELMError('usage', 'more than one wasm thread needs a way to start workers (spawnWorker)');
    const shardBytes = Math.min(opts.shardBytes ?? MAX_BYTES, MAX_BYTES);
    const { module, relaxed } = await loadKernels({ relaxed: opts.relaxedSimd ?? true });
    const arena = new SharedArena(ARENA_BASE, 16 << 20, shardBytes);
    const instance = await Wasm!.instantiate(module, { env: { memory: arena.memory } });
    if (!opts.lateWorkers) {
      const pool = await ThreadPool.create(threads, module, [arena.memory], [instance], relaxed, opts.spawnWorker);
      return new WasmBackend(threads, relaxed, new Shard(0, arena, instance), pool, opts.parallelThreshold ?? 131072, opts.native ?? null,
        module, opts.spawnWorker, shardBytes, opts.memoryLimit ?? Infinity).applyOptions(opts);
    }
    const { pool, ready } = ThreadPool.start(threads, module, [arena.memory], [instance], relaxed, opts.spawnWorker);
    const b = new WasmBackend(threads, relaxed, new Shard(0, arena, instance), pool, opts.parallelThreshold ?? 131072, opts.native ?? null,
      module, opts.spawnWorker, shardBytes, opts.memoryLimit ?? Infinity).applyOptions(opts);
    // kept as a value, not a rejection, until sync() reports it (no unhandled rejection meanwhile)
    b.starting = ready.then(() => null, (e: unknown) => e);
    return b;
  }

  get library(): string | null { return this.native?.library ?? null; }

  describe(): string {
    return `wasm, ${this.threads} thread${this.threads === 1 ? '' : 's'}${this.relaxedSimd ? ' (relaxed SIMD)' : ''}` +
      (this.shards.length > 1 ? `, ${this.shards.length} memories` : '') +
      (this.native ? ` + native sgemm (${this.native.library})` : '');
  }

  /** The kernel module's plain exports (scratch-size queries). */
  get exports(): KernelExports { return this.shards[0].k; }

  /** Bytes a kernel call may stage into the memory it runs in (a share of each memory's headroom). */
  get stagingBytes(): number { return this.headroom / 2; }

  /** How many WebAssembly memories the backend uses now. */
  get memoryCount(): number { return this.shards.length; }

  // ------------------------------------------------------------------------------------------
  // memory

  /** The shard a view lives in, or null for arrays outside every wasm memory. */
  shardOf(v: ArrayBufferView): Shard | null {
    for (const s of this.shards) if (s.arena.owns(v)) return s;
    return null;
  }

  /**
   * A shard with room for `bytes` that still leaves its headroom free (the staging and scratch of
   * kernel calls that run there): the first such, else a new one.
   */
  private place(bytes: number, what: string): Shard {
    this.live();
    for (const s of this.shards) if (s.arena.canFit(bytes + this.headroom)) return s;
    const fresh = this.shardBytes - ARENA_BASE - this.headroom;
    if (bytes > fresh) throw shardError(what, bytes, this.shardBytes);
    const inUse = this.memory().inUse;
    if (inUse + bytes > this.memoryLimit) {
      throw new OpenELMError('memory', `${what} (${formatBytes(bytes)}) does not fit: ${formatBytes(inUse)} are in use of the ${formatBytes(this.memoryLimit)} this backend may take`);
    }
    return this.addShard();
  }

  /** Start another memory with its kernel instance; the worker threads learn of it asynchronously (jobs there run on this thread until then). */
  private addShard(): Shard {
    const arena = new SharedArena(ARENA_BASE, 16 << 20, this.shardBytes);
    const instance = new Wasm!.Instance(this.module, { env: { memory: arena.memory } });
    const shard = new Shard(this.shards.length, arena, instance);
    this.shards.push(shard);
    shard.ensureScratch(shard.k.gemmScratch(), this.threads);
    this.pool.addInstance(instance);
    if (this.threads > 1 && !this.respawn) this.respawn = this.respawnPool();
    return shard;
  }

  /** Replace the pool by one whose workers have every shard (repeated while shards keep coming). */
  private async respawnPool(): Promise<void> {
    try {
      while (!this.disposed && this.pool.workerMemories < this.shards.length) {
        const shards = [...this.shards];
        const next = await ThreadPool.create(this.threads, this.module, shards.map((s) => s.arena.memory), shards.map((s) => s.instance),
          this.relaxedSimd, this.spawn);
        for (const s of this.shards.slice(shards.length)) next.addInstance(s.instance);
        next.counts = this.counts;
        const old = this.pool;
        this.pool = next;
        old.close();
        if (this.disposed) next.close();
      }
    } finally {
      this.respawn = null;
    }
  }

  private allocIn(shard: Shard, n: number): Float32Array {
    const off = shard.arena.allocBytes(n * 4, `a buffer of ${n} floats`);
    const v = shard.arena.f32(off, n);
    this.owned.set(v, { shard, offs: [off] });
    return v;
  }

  /** A zero-filled f32 view of n values in a wasm memory (what alloc() returns, typed for this backend's own use). */
  allocF32(n: number): Float32Array {
    this.live();
    if (!(Number.isInteger(n) && n >= 0)) throw new OpenELMError('usage', `cannot allocate ${n} values`);
    return this.allocIn(this.place(n * 4, `a buffer of ${n} floats`), n);
  }

  /** A zero-filled f32 view of n values in shard `index` (the training kernels' scratch). */
  allocF32In(index: number, n: number): Float32Array {
    this.live();
    return this.allocIn(this.shards[index], n);
  }

  /** Give back a view allocF32()/alloc() returned. */
  freeF32(v: Float32Array): void {
    const o = this.owned.get(v);
    if (!o) throw new OpenELMError('usage', 'free() needs a tensor returned by this backend\'s alloc() (not a view)');
    for (const off of o.offs) o.shard.arena.freeBytes(off);
    this.owned.delete(v);
  }

  alloc(n: number): Tensor { return this.allocF32(n) as unknown as Tensor; }
  free(t: Tensor): void { this.freeF32(f32(t)); }

  view(t: Tensor, offset: number, n: number): Tensor {
    const a = f32(t);
    if (!(offset >= 0 && n >= 0 && offset + n <= a.length)) throw new OpenELMError('usage', `view [${offset}, ${offset + n}) is outside a tensor of ${a.length} values`);
    return a.subarray(offset, offset + n) as unknown as Tensor;
  }

  write(dst: Tensor, src: ArrayLike<number>, dstOffset = 0): void { f32(dst).set(src, dstOffset); }

  read(t: Tensor, offset = 0, n?: number): Promise<Float32Array> {
    const a = f32(t);
    return Promise.resolve(a.slice(offset, n === undefined ? a.length : offset + n));
  }

  copy(dst: Tensor, src: Tensor, n: number): void { this.train.copy(f32(dst), f32(src), n); }

  fill(dst: Tensor, value: number): void {
    if (value === 0) this.train.fill0(f32(dst)); else f32(dst).fill(value);
  }

  gatherRows(dst: Tensor, src: Tensor, rows: Int32Array, width: number): void {
    const d = f32(dst), s = f32(src);
    for (let i = 0; i < rows.length; i++) d.set(s.subarray(rows[i] * width, rows[i] * width + width), i * width);
  }

  scatterRows(dst: Tensor, src: Tensor, rows: Int32Array, width: number): void {
    const d = f32(dst), s = f32(src);
    for (let i = 0; i < rows.length; i++) d.set(s.subarray(i * width, i * width + width), rows[i] * width);
  }

  /**
   * Resolves once the worker threads run (lateWorkers) and have every memory (after a new shard was
   * started); throws if a worker could not start.
   */
  async sync(): Promise<void> {
    if (this.starting) {
      const err = await this.starting;
      if (err) throw err;
      this.starting = null;
    }
    while (this.respawn) await this.respawn;
  }

  allocWeight(dtype: WeightDType, rows: number, cols: number): Weight {
    this.live();
    // data, scales and mins go into one memory, where the kernels read them together
    const what = `a ${rows}×${cols} ${dtype} weight`;
    // q4_k, q6_k: room after the stored blocks for prepareWeight to repack them in place (holdRelaid)
    const room = dtype === 'q4_k' || dtype === 'q6_k';
    const held = (bytes: number) => heldBytes(dtype, bytes);
    const shard = this.place(held(weightBytes(dtype, rows * cols, cols)) + (dtype === 'f16' ? this.cur.k.f16MapBytes(rows, cols) : 0) + 3 * 64, what);
    const offs: number[] = [];
    const w = allocWeightStorage(dtype, rows, cols, (bytes) => {
      const byteOffset = shard.arena.allocBytes(held(bytes), what);
      offs.push(byteOffset);
      this.prefault(shard, byteOffset, held(bytes));
      return { buffer: shard.arena.buffer(), byteOffset };
    });
    this.owned.set(w, { shard, offs, room });
    return w;
  }

  /** loadStoredMany for one weight. */
  loadStored(dtype: WeightDType, rows: number, cols: number, read: (at: number, out: Uint8Array) => void): Weight {
    return this.loadStoredMany([{ dtype, rows, cols, read }])[0];
  }

  /**
   * Block weights read from their stored bytes through two staging blocks in the same memory, one
   * pipeline for all of them: each piece read there by this thread (the copy out of the page cache,
   * into pages that stay mapped and cached from piece to piece and weight to weight) while all
   * threads put the previous piece in place (OP_SCATTER), each taking the page faults of what it
   * writes, in the layout prepareWeight keeps (Q8_0 regrouped as q8's layout, Q4_0 regrouped, Q4_K
   * and Q6_K repacked; blocks.as scatterStored), the halves classified on the way. The weights are
   * allocated first, back to back, the staging blocks above them and given back at the end (their
   * pages go to what is allocated next). One thread: each weight read straight into its storage
   * (a staging copy would be one copy more, with no second thread to share the faults).
   */
  loadStoredMany(items: readonly StoredLoad[]): Weight[] {
    this.live();
    if (this.threads === 1 || items.some((it) => !isBlockDType(it.dtype))) {
      const out: Weight[] = [];
      try {
        for (const { dtype, rows, cols, read } of items) {
          const w = this.allocWeight(dtype, rows, cols);
          out.push(w);
          read(0, new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength));
        }
      } catch (e) {
        for (const w of out) this.freeWeight(w);
        throw e;
      }
      return out;
    }
    interface Job { shard: Shard; off: number; bytes: number; held: number; how: Scattered; unit: number; placed: number; n: number; step: number }
    const jobs: Job[] = [];
    // staging (two blocks and the weights' flags) per memory the weights went to
    const stages = new Map<Shard, number>();
    const flagsBytes = 4 * items.length;
    const release = () => {
      for (const [sh, st] of stages) sh.arena.freeBytes(st);
      stages.clear();
    };
    try {
      for (const { dtype, rows, cols } of items) {
        const what = `a ${rows}×${cols} ${dtype} weight`;
        const bytes = rows * blockRowBytes(dtype as BlockDType, cols);
        const held = heldBytes(dtype, bytes);
        if ((dtype === 'q8_0' || dtype === 'q4_0') && cols % QBLOCK !== 0) throw new OpenELMError('usage', `${what} needs whole blocks per row`);
        // the unit a piece holds whole (Q4_0: a row of blocks); a Q4_0 row past a staging block is
        // copied as stored and regrouped by prepareWeight
        let how = SCATTERED[dtype] ?? COPIED;
        const nb = cols / QBLOCK;
        if (how.perRow && how.unit * nb > LOAD_STAGE_BYTES) how = COPIED;
        const per = how.perRow ? nb : 1, unit = how.unit * per, placed = how.placed * per;
        const shard = this.place(held + 2 * LOAD_STAGE_BYTES + flagsBytes + 3 * 64, what);
        // not zeroed: the scatter writes every byte (a repack every byte of the room after the stored size)
        const off = shard.arena.allocBytes(held, what, false);
        jobs.push({ shard, off, bytes, held, how, unit, placed, n: how.perRow ? nb : 0, step: Math.floor(LOAD_STAGE_BYTES / unit) * unit });
      }
      for (const { shard } of jobs) {
        if (stages.has(shard)) continue;
        const st = shard.arena.allocBytes(2 * LOAD_STAGE_BYTES + flagsBytes, 'staged blocks', false);
        new Uint32Array(shard.arena.buffer(), st + 2 * LOAD_STAGE_BYTES, items.length).fill(0);
        stages.set(shard, st);
      }
      // the pieces of all weights in order; piece k is read into block k & 1 of its memory's stage
      const pieces: { j: number; at: number; len: number }[] = [];
      for (let j = 0; j < jobs.length; j++) {
        for (let at = 0; at < jobs[j].bytes; at += jobs[j].step) pieces.push({ j, at, len: Math.min(jobs[j].step, jobs[j].bytes - at) });
      }
      const stageOf = (k: number) => stages.get(jobs[pieces[k].j].shard)! + (k & 1) * LOAD_STAGE_BYTES;
      // weight j's halves' flags (scatterStored's bits), after its memory's two staging blocks
      const flagsAt = (j: number) => stages.get(jobs[j].shard)! + 2 * LOAD_STAGE_BYTES + 4 * j;
      const readPiece = (k: number) => {
        const { j, at, len } = pieces[k];
        items[j].read(at, jobs[j].shard.arena.u8(stageOf(k), len));
      };
      if (pieces.length) readPiece(0);
      for (let k = 0; k < pieces.length; k++) {
        const { j, at, len } = pieces[k], job = jobs[j];
        this.begin(job.shard);
        const a = this.cur.ai;
        // a copy's last unit may be short (the kernel is given the piece's bytes)
        const units = Math.ceil(len / job.unit), u0 = at / job.unit, { how } = job;
        a[0] = OP.SCATTER; a[1] = stageOf(k); a[2] = units; a[3] = how.mode;
        // the destination of the piece's first unit, and of its aux bytes (after all units' placed ones)
        a[4] = job.off + u0 * job.placed;
        a[5] = how.aux ? job.off + (job.bytes / job.unit) * job.placed + u0 * how.aux : 0;
        a[6] = flagsAt(j);
        a[7] = how === COPIED ? len : job.n;
        // chunks of 128 KiB or more: this thread reads the next piece while the others start, then
        // takes the chunks they have not
        const chunks = Math.max(1, Math.min(8 * this.threads, units, Math.ceil(len / (128 << 10))));
        this.pool.run(this.cur.index, 'k_train', chunks, k + 1 < pieces.length ? () => readPiece(k + 1) : undefined);
      }
      const out = items.map(({ dtype, rows, cols }, j): Weight => {
        const job = jobs[j];
        const bits = new Uint32Array(job.shard.arena.buffer(), flagsAt(j), 1)[0];
        const w: Weight = { dtype, rows, cols, data: job.shard.arena.u8(job.off, job.held) };
        if (bits & HALF_NONFINITE) {
          // an infinite or NaN d (Q8_0's scatter alone reports one): the stored blocks back
          // (prepareWeight keeps them as stored)
          unpackQ8_0(w.data as Uint8Array, w.data as Uint8Array, job.bytes / Q8_0_BYTES);
        } else {
          if (job.how.layout) w.layout = job.how.layout;
          if (job.how.halves) this.loadedBits.set(w, bits);
        }
        this.owned.set(w, { shard: job.shard, offs: [job.off], room: job.held > job.bytes });
        return w;
      });
      release();
      return out;
    } catch (e) {
      release();
      for (const job of jobs) job.shard.arena.freeBytes(job.off);
      throw e;
    }
  }

  /**
   * Map the pages of `bytes` zeroed bytes at `off` on all threads (train_ops.as OP_TOUCH writes a zero
   * into each): a load then fills a weight's storage without one page fault every 4 KiB on its one
   * thread, the larger part of reading a file into fresh memory (a GGUF's Q8_0 blocks: about 4/5).
   */
  private prefault(shard: Shard, off: number, bytes: number): void {
    if (this.threads === 1 || bytes < PREFAULT_MIN_BYTES) return;
    this.begin(shard);
    const a = this.cur.ai;
    a[0] = OP.TOUCH; a[1] = off; a[2] = bytes;
    // a first touch of a page costs about as much as a few thousand stores; chunks of 1 MiB (256
    // faults, well under a millisecond), so a thread descheduled on a shared machine holds up the
    // join by little
    this.exec('k_train', bytes, Math.ceil(bytes / 4096), true, Math.ceil(bytes / PREFAULT_MIN_BYTES));
  }

  /**
   * Give a weight's memory back: its storage when allocWeight() made it, and any copy prepareWeight
   * made. Views of freed memory must not be used afterwards.
   */
  freeWeight(w: Weight): void {
    if (w.parts) { for (const part of w.parts) this.freeWeight(part); return; }
    const p = w.packed as WasmPacked | undefined;
    if (p && p.owner === this) { for (const o of p.copies) p.shard.arena.freeBytes(o); w.packed = undefined; }
    const o = this.owned.get(w);
    if (o) { for (const off of o.offs) o.shard.arena.freeBytes(off); this.owned.delete(w); }
  }

  tensorWeight(t: Tensor, rows: number, cols: number): Weight {
    const a = f32(t);
    if (a.length < rows * cols) throw new OpenELMError('usage', `a ${rows}×${cols} weight needs ${rows * cols} values, the tensor has ${a.length}`);
    const w: Weight = { dtype: 'f32', rows, cols, data: a };
    this.prepareWeight(w);
    return w;
  }

  /**
   * setWeightRows on the threads, for q8/q4 weights whose storage lives in one of this backend's
   * memories (what allocWeight returns); others go through setWeightRows itself. The rows are
   * staged into the weight's memory; each row comes out the same whatever the thread count.
   */
  quantizeRows(w: Weight, r0: number, src: Float32Array, importance?: Float32Array): void {
    this.live();
    const q4 = w.dtype === 'q4';
    const scales = q4 || w.dtype === 'q8' ? w.scales : undefined;
    const home = scales ? this.shardOf(w.data) : null;
    if (!scales || !home?.arena.owns(scales)) { setWeightRows(w, r0, src, importance); return; }
    const K = w.cols, rows = src.length / K;
    if (!(Number.isInteger(rows) && Number.isInteger(r0) && r0 >= 0 && r0 + rows <= w.rows)) {
      throw new OpenELMError('usage', `${src.length} values are not whole rows ${r0}.. of a ${w.rows}×${K} weight`);
    }
    if (q4 && importance && importance.length !== K) throw new OpenELMError('usage', `q4 importance needs one value per column (${K}), got ${importance.length}`);
    // Rows from outside the memory are copied in a few at a time through a block taken for this
    // call and given back at its end, not the staging area: that area lives as long as the backend
    // and would keep a load's 1 MiB resident through inference (a block freed at the top of the
    // memory goes back to the bump pointer, and the weights and buffers allocated next reuse it).
    const step = Math.max(1, Math.floor(QUANTIZE_STAGE_FLOATS / K));
    // (the scratch first: a block allocated above this one would keep it from the bump pointer)
    home.ensureScratch(home.k.quantizeScratch(K), this.threads);
    const inside = home.offsetOf(src) >= 0;
    const tmpBytes = (inside ? 0 : Math.min(step, rows) * K * 4) + (q4 ? K * 4 : 0);
    const tmp = tmpBytes ? home.arena.allocBytes(tmpBytes, 'rows to quantize', false) : -1;
    try {
      const ip = q4 ? tmp + tmpBytes - K * 4 : 0;
      // no importance weighs every column 1: the same sums, bit for bit
      if (q4) { const imp = home.arena.f32(ip, K); if (importance) imp.set(importance); else imp.fill(1); }
      for (let i = 0; i < rows; i += step) {
        const n = Math.min(step, rows - i);
        this.begin(home);
        let xp = home.offsetOf(src) + i * K * 4;
        if (!inside) { xp = tmp; home.arena.f32(tmp, n * K).set(src.subarray(i * K, (i + n) * K)); }
        const a = this.cur.ai;
        a[0] = DTYPE_CODE[w.dtype as 'q8' | 'q4']; a[1] = xp; a[2] = n; a[3] = K; a[4] = ip;
        a[5] = w.data.byteOffset; a[6] = scales.byteOffset; a[7] = r0 + i; a[8] = this.cur.scratchOff; a[9] = this.cur.scratchStride;
        a[10] = importance ? 0 : 1;
        // about 40 f64 operations per value for q4, 4 for q8
        this.exec('k_quantize', n * K * (q4 ? 40 : 4), n);
        if (!q4) checkQ8Scales(w.scales as Uint16Array, src, K, r0, i, n);
      }
    } finally {
      if (tmp >= 0) home.arena.freeBytes(tmp);
    }
    if (!q4) return;
    const meta = w.scales as Uint8Array, mb = q4MetaBytes(K);
    const dv = new DataView(meta.buffer, meta.byteOffset, meta.byteLength);
    for (let r = r0; r < r0 + rows; r++) {
      if (!Number.isFinite(dv.getFloat32(r * mb, true)) || !Number.isFinite(dv.getFloat32(r * mb + 4, true))) {
        throw new OpenELMError('dtype', `q4 cannot hold row ${r}: its values are not finite`);
      }
    }
  }

  /**
   * Kernel calls so far: run inline (small work) and split over the threads; of the split ones,
   * those that opened while a worker slept, and their chunks in all and run by the workers; how
   * often a worker slept, and the ms this thread waited at the split calls' ends.
   */
  callStats(): PoolCounts { return { ...this.counts }; }

  /** The largest tensor a fresh memory takes next to its headroom (16-value multiples, as layouts align tensors). */
  maxTensorValues(): number {
    return Math.floor((this.shardBytes - ARENA_BASE - this.headroom) / 64) * 16;
  }

  /** Bytes allocated in the wasm memories, their current size, and what they may take together. */
  memory(): { inUse: number; reserved: number; limit: number } {
    let inUse = 0, reserved = 0;
    for (const s of this.shards) { inUse += s.arena.bytesInUse; reserved += s.arena.bytesReserved; }
    return { inUse, reserved, limit: this.memoryLimit };
  }

  prepareWeight(w: Weight): void {
    this.live();
    if (w.parts) { for (const part of w.parts) this.prepareWeight(part); return; }
    const old = w.packed as WasmPacked | undefined;
    if (old && old.owner === this) for (const o of old.copies) old.shard.arena.freeBytes(o);
    if (w.dtype === 'q4_k') { this.prepareQ4K(w); return; }
    if (w.dtype === 'q6_k') { this.prepareQ6K(w); return; }
    if ((w.dtype === 'q8_0' || w.dtype === 'q4_0') && this.prepareRegrouped(w)) return;
    const n = w.rows * w.cols;
    const code = w.dtype === 'rows' ? undefined : DTYPE_CODE[w.dtype];
    if (code === undefined) throw new OpenELMError('dtype', `unknown weight dtype "${String(w.dtype)}"`);
    if ((w.dtype === 'q8' || w.dtype === 'q4') && w.cols % QBLOCK !== 0) {
      throw new OpenELMError('dtype', `${w.dtype} weights need a multiple of ${QBLOCK} columns; this one has ${w.cols}`);
    }
    const block = isBlockDType(w.dtype);
    const want = block ? weightBytes(w.dtype, n) : w.dtype === 'q4' ? n / 2 : n;
    if (w.data.length < want) throw new OpenELMError('usage', `weight data has ${w.data.length} values, a ${w.rows}×${w.cols} ${w.dtype} weight needs ${want}`);
    const dataBytes = block ? want : w.dtype === 'f32' ? n * 4 : w.dtype === 'bf16' || w.dtype === 'f16' ? n * 2 : w.dtype === 'q8' ? n : n / 2;
    const parts: [ArrayBufferView | undefined, number, string][] = [[w.data, dataBytes, 'data']];
    if (w.dtype === 'q8') parts.push([w.scales, (n / QBLOCK) * 2, 'scales']);
    if (w.dtype === 'q4') parts.push([w.scales, w.rows * q4MetaBytes(w.cols), 'scales']);
    for (const [v, bytes, what] of parts) {
      if (!v) throw new OpenELMError('usage', `${w.dtype} weight is missing its ${what}`);
      if (v.byteLength < bytes) throw new OpenELMError('usage', `${w.dtype} weight ${what} has ${v.byteLength} bytes, needs ${bytes}`);
    }
    // The kernels read all parts from one memory: the data's, when every part is already there;
    // otherwise copies of all of them in a memory with room.
    const home = this.shardOf(w.data);
    const inPlace = home !== null && parts.every(([v]) => home.arena.owns(v!));
    const mapBytes = w.dtype === 'f16' ? this.cur.k.f16MapBytes(w.rows, w.cols) : 0;
    const shard = inPlace ? home : this.place(parts.reduce((t, [, b]) => t + b + 64, mapBytes), `a copy of a ${w.rows}×${w.cols} ${w.dtype} weight`);
    const copies: number[] = [];
    const offs = parts.map(([v, bytes]) => {
      if (inPlace) return v!.byteOffset;
      const off = shard.arena.allocBytes(bytes, `a copy of a ${w.rows}×${w.cols} ${w.dtype} weight`);
      shard.arena.u8(off, bytes).set(new Uint8Array(v!.buffer, v!.byteOffset, bytes));
      copies.push(off);
      return off;
    });
    // f16: which groups of 16 halves hold a subnormal, so the GEMV need not test each group in
    // SIMD (gemv.as f16SubnormalMap); it rides in the scales slot, which f16 does not use
    // (without room for it, the GEMV tests in SIMD as before: the same results, slower)
    if (w.dtype === 'f16' && shard.arena.canFit(mapBytes)) {
      const off = shard.arena.allocBytes(mapBytes, `the subnormal map of a ${w.rows}×${w.cols} f16 weight`);
      shard.k.f16SubnormalMap(offs[0], w.rows, w.cols, off);
      copies.push(off);
      offs[1] = off;
    }
    // f16: whether the GEMV may take denormal operands (kernels.ts denormalsFast; gemv.as gemvF16);
    // it rides in the mins slot, which f16 does not use
    if (w.dtype === 'f16') offs[2] = denormalsFast(shard.k) ? 1 : 0;
    // q8: whether the GEMV may widen the f16 scales with an integer add (gemv.as q8Scales4); it
    // rides in the mins slot, which q8 does not use
    if (w.dtype === 'q8') offs[2] = q8FastScales(w.scales as Uint16Array, w.data as Int8Array, n / QBLOCK) ? 1 : 0;
    const p: WasmPacked = { owner: this, shard, dtype: code, data: offs[0], scales: offs[1] ?? 0, mins: offs[2] ?? 0, copies };
    w.packed = p;
  }

  /**
   * Block dtypes held in a layout their kernels read more cheaply than the file's, the model still
   * held once (docs/cpu-decode.md): Q4_K repacked (q4k-repack.ts: d and dmin as f32, the scales and
   * mins a byte each), Q6_K repacked (q6k-repack.ts: each group of 64 levels in three vectors, d as
   * f32), Q8_0 regrouped as q8's layout, on q8's kernels, and Q4_0 with each row's halves before its
   * nibbles (gguf-repack.ts). Storage from allocWeight is relaid in place (it left room after the
   * stored bytes where the layout is larger) and the weight's data then says so (w.layout; hosts
   * decode it, weight-format.ts); a weight stored elsewhere keeps its bytes and the backend relays
   * its own copy.
   */
  private holdRelaid(w: Weight, lay: NonNullable<Weight['layout']>, stored: number, held: number, relay: (sh: Shard, off: number) => void): { shard: Shard; off: number; copies: number[] } {
    const what = `a ${w.rows}×${w.cols} ${w.dtype} weight`;
    const need = w.layout === lay ? held : stored;
    if (w.data.byteLength < need) throw new OpenELMError('usage', `weight data has ${w.data.byteLength} bytes, ${what} needs ${need}`);
    const home = this.shardOf(w.data), o = this.owned.get(w);
    if (home?.arena.owns(w.data) && (w.layout === lay || (o?.offs[0] === w.data.byteOffset && (held <= stored || o.room)))) {
      const off = w.data.byteOffset;
      if (w.layout !== lay) { relay(home, off); w.data = home.arena.u8(off, held); w.layout = lay; }
      return { shard: home, off, copies: [] };
    }
    const shard = this.place(held + 64, `a copy of ${what}`);
    const off = shard.arena.allocBytes(held, `a copy of ${what}`);
    shard.arena.u8(off, held).set(new Uint8Array(w.data.buffer, w.data.byteOffset, need));
    if (w.layout !== lay) relay(shard, off);
    return { shard, off, copies: [off] };
  }

  private prepareQ4K(w: Weight): void {
    const blocks = blockRowBytes('q4_k', w.cols) / Q4K_BYTES * w.rows;
    // a kernel (the same bytes as q4k-repack.ts repackQ4K, several times faster than it)
    const { shard, off, copies } = this.holdRelaid(w, 'q4_k_r', blocks * Q4K_BYTES, blocks * Q4KR_BYTES, (sh, at) => sh.k.repackQ4KInPlace(at, blocks));
    w.packed = { owner: this, shard, dtype: DTYPE_CODE.q4_k_r, data: off, scales: 0, mins: 0, copies } satisfies WasmPacked;
  }

  private prepareQ6K(w: Weight): void {
    const blocks = blockRowBytes('q6_k', w.cols) / Q6K_BYTES * w.rows;
    const { shard, off, copies } = this.holdRelaid(w, 'q6_k_r', blocks * Q6K_BYTES, blocks * Q6KR_BYTES, (sh, at) => sh.k.repackQ6KInPlace(at, blocks));
    w.packed = { owner: this, shard, dtype: DTYPE_CODE.q6_k_r, data: off, scales: 0, mins: 0, copies } satisfies WasmPacked;
  }

  /** Q8_0 and Q4_0 regrouped (holdRelaid). False (nothing done): a Q8_0 weight with an infinite or NaN d, which stays as stored. */
  private prepareRegrouped(w: Weight): boolean {
    const q8 = w.dtype === 'q8_0', lay = q8 ? 'q8_0_r' : 'q4_0_r';
    const n = w.rows * w.cols, nb = n / QBLOCK, bytes = weightBytes(w.dtype, n);
    if (w.cols % QBLOCK !== 0) throw new OpenELMError('usage', `a ${w.rows}×${w.cols} ${w.dtype} weight needs whole blocks per row`);
    // what the halves are (HALF_* bits: the kernels' regrouping or loadStoredMany's scatter finds
    // them while moving the halves; the host looks when neither did); -1 until known
    let halfBits = -1;
    const regroup = (sh: Shard, at: number) => {
      // the kernels move the bytes in place through 2 bytes a block (Q8_0) or a row (Q4_0) of scratch;
      // without room for that, the host does it (the same bytes)
      const tb = 2 * (q8 ? nb : w.cols / QBLOCK) + 64;
      if (sh.arena.canFit(tb)) {
        const tmp = sh.arena.allocBytes(tb, 'regrouping scratch', false);
        halfBits = q8 ? sh.k.repackQ8_0InPlace(at, nb, tmp) : sh.k.repackQ4_0InPlace(at, w.rows, w.cols / QBLOCK, tmp);
        sh.arena.freeBytes(tmp);
      } else {
        const v = sh.arena.u8(at, bytes);
        if (q8) repackQ8_0(v, v, nb); else repackQ4_0(v, v, w.rows, w.cols / QBLOCK);
      }
    };
    const wasStored = w.layout !== lay;
    const { shard, off, copies } = this.holdRelaid(w, lay, bytes, bytes, regroup);
    const halves = (at: number, count: number) => new Uint16Array(shard.arena.buffer(), at, count);
    if (halfBits < 0) {
      // Q4_0's halves lead each regrouped row
      const rb = (w.cols / QBLOCK) * Q4_0_BYTES;
      const q4Rows = () => { let bits = 0; for (let r = 0; r < w.rows && !bits; r++) bits = q4_0HalfBits(halves(off + r * rb, w.cols / QBLOCK)); return bits; };
      halfBits = this.loadedBits.get(w) ?? (q8 ? q8_0HalfBits(halves(off + n, nb)) : q4Rows());
    }
    this.loadedBits.delete(w);
    if (q8) {
      const hs = halves(off + n, nb);
      if (wasStored && halfBits & HALF_NONFINITE) {
        // an infinite or NaN d (rare: checked after the regrouping, which reads every half anyway):
        // the stored blocks back, or the copy dropped
        if (copies.length) shard.arena.freeBytes(copies[0]);
        else { const v = shard.arena.u8(off, bytes); unpackQ8_0(v, v, nb); w.data = v; w.layout = undefined; }
        return false;
      }
      // q8's flag (prepareWeight): also 0 over a block of zero levels, whose products are 0 either way
      // (only a weight with a half that is not a positive normal one needs that look at its levels)
      const fast = !(halfBits & HALF_SLOW) || q8FastScales(hs, new Int8Array(shard.arena.buffer(), off, n), nb);
      w.packed = { owner: this, shard, dtype: DTYPE_CODE.q8, data: off, scales: off + n, mins: fast ? 1 : 0, copies, q80r: true } satisfies WasmPacked;
    } else {
      w.packed = { owner: this, shard, dtype: DTYPE_CODE.q4_0_r, data: off, scales: 0, mins: halfBits & HALF_SLOW ? 0 : 1, copies } satisfies WasmPacked;
    }
    return true;
  }

  private packedOf(w: Weight): WasmPacked {
    const p = w.packed as WasmPacked | undefined;
    if (p && p.owner === this) return p;
    this.prepareWeight(w);
    return w.packed as WasmPacked;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pool.close();
    this.held.clear();
    this.heldFree.clear();
  }

  /**
   * bf16 bits of the tensors held now (holdBf16), filled by the first native bf16 product that
   * reads them; bit buffers of released holds wait by length for the next pass's holds (the same
   * weights every step), outside the WASM memories.
   */
  private readonly held = new Map<Float32Array, HeldBf16>();
  private readonly heldFree = new Map<number, Uint16Array[]>();

  holdBf16(t: Tensor): () => void {
    const v = f32(t), nat = this.native;
    // only the native bf16 GEMMs take bits; the WASM kernels and an emulating library round each time
    if (!nat || nat.bf16 === 'emulated' || this.held.has(v)) return () => {};
    const h: HeldBf16 = { bits: this.heldFree.get(v.length)?.pop() ?? new Uint16Array(v.length), filled: false };
    this.held.set(v, h);
    return () => {
      if (this.held.get(v) !== h) return;
      this.held.delete(v);
      const free = this.heldFree.get(v.length);
      if (free) free.push(h.bits); else this.heldFree.set(v.length, [h.bits]);
    };
  }

  /** The held bits of `v` when a product reads all n of its values, else null. */
  heldBf16(v: Float32Array, n: number): HeldBf16 | null {
    const h = this.held.get(v);
    return h && v.length === n ? h : null;
  }

  // ------------------------------------------------------------------------------------------
  // kernels

  linear(outT: Tensor, xT: Tensor, w: Weight, M: number, accumulate = false, exact = false): void {
    if (w.parts) {
      // each part writes its rows' outputs: columns [c0, c0 + part.rows) of out's rows of w.rows
      let c0 = 0;
      for (const part of w.parts) { this.linearCols(f32(outT), f32(xT), part, M, accumulate, exact, c0, w.rows); c0 += part.rows; }
      return;
    }
    this.linearCols(f32(outT), f32(xT), w, M, accumulate, exact, 0, w.rows);
  }

  /** out[m, c0 + n] (+)= x[m]·W[n] for the N = w.rows rows of w, out's rows ldo floats apart. */
  private linearCols(out: Float32Array, x: Float32Array, w: Weight, M: number, accumulate: boolean, exact: boolean, c0: number, ldo: number): void {
    const p = this.packedOf(w);
    this.begin(p.shard);
    const N = w.rows, K = w.cols;
    if (M <= 0 || N === 0) return;
    const cols = c0 !== 0 || ldo !== N;
    if (cols) {
      // a column slice: out's rows are staged whole (other parts' columns must survive the copy back)
      const op = this.outF32(out, M * ldo, 'linear output', true);
      this.linearRun(op + c0 * 4, x, p, M, N, K, accumulate, exact, ldo);
      return;
    }
    // the addon reads w.data, which holds Q4_K repacked only when the backend repacked it in place
    // (a weight stored elsewhere keeps the file's bytes, and the backend its own repacked copy)
    // (likewise Q6_K repacked, Q8_0 and Q4_0 regrouped; Q8_0 regrouped is q8's layout, which the addon
    // reads as q8, widened as it widens Q8_0 blocks: the same values)
    const nd = p.dtype === DTYPE_CODE.q4_k_r && w.layout !== 'q4_k_r' ? DTYPE_CODE.q4_k
      : p.dtype === DTYPE_CODE.q6_k_r && w.layout !== 'q6_k_r' ? DTYPE_CODE.q6_k
      : p.dtype === DTYPE_CODE.q4_0_r && w.layout !== 'q4_0_r' ? DTYPE_CODE.q4_0
      : p.q80r && w.layout !== 'q8_0_r' ? DTYPE_CODE.q8_0 : p.dtype;
    if (this.native && M >= this.nativeMinRows && (nd < BLOCK_CODE_MIN || this.native.blocks?.has(nd))
      && (nd !== DTYPE_CODE.q4 || this.native.q4) && (nd !== DTYPE_CODE.q8 || this.native.q8)
      && (!p.q80r || nd !== DTYPE_CODE.q8 || this.native.blocks?.has(DTYPE_CODE.q8_0))) {
      // (block dtypes: widened there, exact products on the stored values, within the exact path's tolerance)
      // the native sgemm reads the caller's arrays wherever they live: no staging
      needLength(x, M * K, 'linear input'); needLength(out, M * N, 'linear output');
      if (p.q80r && nd === DTYPE_CODE.q8) {
        const d = w.data, n = N * K;
        this.native.linear(this.threads, out, x, new Int8Array(d.buffer, d.byteOffset, n), nd, new Uint16Array(d.buffer, d.byteOffset + n, n / QBLOCK), M, N, K, accumulate, false);
        return;
      }
      this.native.linear(this.threads, out, x, w.data, nd, w.scales ?? null, M, N, K, accumulate, this.intGemm && !exact);
      return;
    }
    const op = this.outF32(out, M * N, 'linear output', accumulate);
    this.linearRun(op, x, p, M, N, K, accumulate, exact, N);
  }

  /**
   * linear(u, x, w, M) then swiglu(g, u, M, F), w's 2F rows SwiGLU's [gate | up] and g the first
   * M·F values of u. A GEMV (up to 8 rows) runs SiLU in the same call, each chunk on the g columns
   * of the rows it computed, so it is split over the threads with the GEMV instead of following it
   * on this thread alone; the values are those of the two calls, bit for bit.
   */
  linearSwiglu(gT: Tensor, uT: Tensor, xT: Tensor, w: Weight, M: number, F: number): void {
    const g = f32(gT), u = f32(uT), x = f32(xT);
    if (w.parts || M > GEMV_ROWS || M <= 0 || F % 4 !== 0 || w.rows !== 2 * F || g.buffer !== u.buffer || g.byteOffset !== u.byteOffset
      || (this.native && M >= this.nativeMinRows)) {
      this.linear(uT, xT, w, M);
      this.swiglu(gT, uT, M, F);
      return;
    }
    const p = this.packedOf(w);
    this.begin(p.shard);
    const op = this.outF32(u, M * 2 * F, 'linear output', false);
    if (!this.linearRun(op, x, p, M, 2 * F, w.cols, false, false, 2 * F, F)) this.swiglu(gT, uT, M, F);
  }

  /**
   * linear(qkv, x, w, S), qkNormRope(qkv, S, pos, ...) and storeKV(k, v, qkv, S, P, ...) in one call
   * for S rows of one sequence at positions P.. (pos[r] = P + r): a GEMV (up to 8 rows) splits its
   * rows into whole heads and each chunk norms, rotates and stores the heads it computed, so that
   * work is split over the threads and two calls go. The values are those of the three calls.
   */
  linearQkv(qkvT: Tensor, xT: Tensor, w: Weight, S: number, pos: Int32Array, Q: number, Hkv: number, hd: number,
    qNormT: Tensor | null, kNormT: Tensor | null, rope: RopeTables, eps: number, kT: Tensor, vT: Tensor, P: number, cap: number): void {
    const qkv = f32(qkvT), x = f32(xT), k = f32(kT), v = f32(vT);
    const fallback = (): void => {
      this.linear(qkvT, xT, w, S);
      this.qkNormRope(qkvT, S, pos, Q, Hkv, hd, qNormT, kNormT, rope, eps);
      this.storeKV(kT, vT, qkvT, S, P, Q, Hkv, hd, cap);
    };
    const W = (Q + 2 * Hkv) * hd;
    if (w.parts || S > GEMV_ROWS || S <= 0 || w.rows !== W || hd % 4 !== 0 || (this.native && S >= this.nativeMinRows)) { fallback(); return; }
    const p = this.packedOf(w);
    this.begin(p.shard);
    // the caches and the norm weights are written and read in place, in the weight's memory
    const qn = qNormT ? this.cur.offsetOf(f32(qNormT)) : 0, kn = kNormT ? this.cur.offsetOf(f32(kNormT)) : 0;
    const kp = this.cur.offsetOf(k), vp = this.cur.offsetOf(v);
    let ok = kp >= 0 && vp >= 0 && qn >= 0 && kn >= 0;
    for (let r = 0; ok && r < S; r++) ok = pos[r] === P + r;
    if (!ok) { fallback(); return; }
    if (P + S > cap) throw new OpenELMError('usage', `storeKV: positions ${P}..${P + S - 1} exceed the cache capacity ${cap}`);
    needLength(k, Hkv * cap * hd, 'K cache'); needLength(v, Hkv * cap * hd, 'V cache');
    if (qNormT) needLength(f32(qNormT), hd, 'q norm weight');
    if (kNormT) needLength(f32(kNormT), hd, 'k norm weight');
    const [cp, sp] = this.ropeAt(rope, pos, S);
    const op = this.outF32(qkv, S * W, 'linear output', false);
    const a = this.cur.ai;
    a[17] = hd; a[18] = Q; a[19] = Hkv; a[20] = cp; a[21] = sp; a[22] = qn; a[23] = kn; this.cur.af[24] = eps;
    a[25] = kp; a[26] = vp; a[27] = P; a[28] = cap;
    if (!this.linearRun(op, x, p, S, W, w.cols, false, false, W, 0, hd)) {
      // (not a GEMV after all: the other two calls on its output)
      this.qkNormRope(qkvT, S, pos, Q, Hkv, hd, qNormT, kNormT, rope, eps);
      this.storeKV(kT, vT, qkvT, S, P, Q, Hkv, hd, cap);
    }
  }

  /**
   * Returns whether SwiGLU (glu = F > 0) or the qkv heads' work (heads = hd > 0, slots 18-28
   * written by the caller) ran fused in the GEMV; when not, the caller runs it.
   */
  private linearRun(op: number, x: Float32Array, p: WasmPacked, M: number, N: number, K: number, accumulate: boolean, exactAsked: boolean, ldo: number, glu = 0, heads = 0): boolean {
    const xp = this.inF32(x, M * K, 'linear input');
    // Up to GEMV_ROWS tokens (decode, batched decode) stream W once per 4 rows without packing it;
    // more go through a packed GEMM: integer for q8/q4 and block dtypes that have one (int8
    // activations) unless exact, else f32 (block dtypes: on their exactly decoded values).
    // Q8_0 regrouped runs as q8 (int8 activations: GEMV, integer GEMM; exact: the f32 GEMM on the same
    // values) but for its exact GEMV, whose walker (code q8_0_r) gives each token the one-token result
    // as Q8_0's does; its int8 activations follow blockInt8, as for the block dtypes
    const exact = exactAsked || (p.q80r === true && !this.blockInt8);
    const q80x = p.q80r === true && exact && M <= GEMV_ROWS;
    const code = q80x ? DTYPE_CODE.q8_0_r : p.dtype;
    const quant = !q80x && (p.dtype === DTYPE_CODE.q8 || p.dtype === DTYPE_CODE.q4);
    // block dtypes whose prompts have an integer GEMM (the kernels say which) take it as their GEMV
    // takes int8 activations: unless exact or blockInt8 is off
    const blockGemm = !exact && this.blockInt8 && (code >= BLOCK_CODE_MIN || p.q80r === true) && this.cur.k.intGemmDtype(code) === 1;
    const mode = exact && quant ? 0 : M <= GEMV_ROWS ? 1 : (quant && this.intGemm) || blockGemm ? 2 : 0;
    const blockInt = mode === 1 && !exact && this.blockInt8 && BLOCK_INT8_CODES.has(code);
    const prep = mode === 1 && ((code !== 0 && code < BLOCK_CODE_MIN) || blockInt);
    if (mode !== 1 || code >= BLOCK_CODE_MIN) this.cur.ensureScratch(this.cur.k.gemmScratch(), this.threads);
    if (prep) this.cur.ensurePrep(M * this.cur.k.prepBytes(K));
    if (mode === 2) this.cur.ensurePrep(this.cur.k.quantBytes(M, K));
    const a = this.cur.ai;
    a[0] = op; a[1] = xp; a[2] = p.data; a[3] = p.scales; a[4] = p.mins; a[5] = code;
    a[6] = M; a[7] = N; a[8] = K; a[9] = accumulate ? 1 : 0; a[10] = this.cur.scratchOff; a[11] = this.cur.scratchStride;
    a[12] = mode; a[13] = this.cur.prepOff; a[14] = ldo; a[15] = blockInt ? 1 : 0;
    const fused = (glu > 0 || heads > 0) && mode === 1;
    a[16] = fused ? glu : 0; a[17] = fused ? heads : 0;
    if (prep) this.cur.k.k_prep_x(ARGS_OFFSET);
    if (mode === 2) this.exec('k_quant_rows', M * K * 4, M, false);
    this.exec('k_linear', M * N * K, mode !== 1 ? Math.ceil(N / 8) : !fused ? Math.ceil(N / 16) : glu > 0 ? Math.ceil(glu / 16) : N / heads);
    return fused;
  }

  rmsnorm(outT: Tensor, xT: Tensor, wT: Tensor, rows: number, dim: number, eps: number, rstd?: Tensor): void {
    const out = f32(outT), x = f32(xT), w = f32(wT);
    if (rstd) { this.train.rmsnormForward(out, f32(rstd), x, w, rows, dim, eps); return; }
    this.begin(x);
    const xp = this.inF32(x, rows * dim, 'rmsnorm input');
    const wp = this.inF32(w, dim, 'rmsnorm weight');
    const op = this.outF32(out, rows * dim, 'rmsnorm output', false);
    const a = this.cur.ai;
    a[0] = op; a[1] = xp; a[2] = wp; a[3] = rows; a[4] = dim; this.cur.af[5] = eps;
    this.exec('k_rmsnorm', rows * dim, rows);
  }

  qkNormRope(qkvT: Tensor, rows: number, pos: Int32Array, Q: number, Hkv: number, hd: number,
    qNormT: Tensor | null, kNormT: Tensor | null, rope: RopeTables, eps: number, rstd?: Tensor): void {
    const qkv = f32(qkvT), qNorm = qNormT ? f32(qNormT) : null, kNorm = kNormT ? f32(kNormT) : null;
    this.begin(rstd ? null : qkv);
    if (rstd) {
      // training: the kernel that also saves the heads' 1/rms, over the gathered per-row tables
      const { cs, sn } = this.ropeRows(rope, pos, rows);
      this.train.qkNormRopeForward(qkv, f32(rstd), rows, rows, Q, Hkv, hd, qNorm, kNorm, cs, sn, eps);
      return;
    }
    const [cp, sp] = this.ropeAt(rope, pos, rows);
    const W = (Q + 2 * Hkv) * hd;
    const qp = this.outF32(qkv, rows * W, 'qkv', true);
    const qn = qNorm ? this.inF32(qNorm, hd, 'q norm weight') : 0;
    const kn = kNorm ? this.inF32(kNorm, hd, 'k norm weight') : 0;
    const a = this.cur.ai;
    a[0] = qp; a[1] = cp; a[2] = sp; a[3] = rows; a[4] = Q; a[5] = Hkv; a[6] = hd; a[7] = qn; a[8] = kn; this.cur.af[9] = eps;
    this.exec('k_qkrope', rows * W, rows);
  }

  /**
   * Where k_qkrope reads the rows' cos/sin: in the tables themselves when the rows' positions follow
   * one another and the tables live in this call's memory (a decode step, one sequence's prompt),
   * else in rows gathered by ropeRows. The same values either way.
   */
  private ropeAt(rope: RopeTables, pos: Int32Array, rows: number): [number, number] {
    checkPositions(pos, rows, rope);
    const cos = f32(rope.cos), sin = f32(rope.sin);
    let inPlace = rows > 0 && this.cur.offsetOf(cos) >= 0 && this.cur.offsetOf(sin) >= 0;
    for (let r = 1; inPlace && r < rows; r++) inPlace = pos[r] === pos[0] + r;
    if (inPlace) {
      const o = pos[0] * rope.half * 4;
      return [cos.byteOffset + o, sin.byteOffset + o];
    }
    const { cs, sn } = this.ropeRows(rope, pos, rows);
    return [cs.byteOffset, sn.byteOffset];
  }

  /** Each row's cos/sin table row (by its position), gathered into staging: valid until the next kernel call. */
  private ropeRows(rope: RopeTables, pos: Int32Array, rows: number): { cs: Float32Array; sn: Float32Array } {
    checkPositions(pos, rows, rope);
    const half = rope.half, cos = f32(rope.cos), sin = f32(rope.sin);
    const cs = this.cur.arena.f32(this.cur.stageTake(rows * half * 4), rows * half), sn = this.cur.arena.f32(this.cur.stageTake(rows * half * 4), rows * half);
    for (let r = 0; r < rows; r++) {
      const t = pos[r] * half;
      cs.set(cos.subarray(t, t + half), r * half);
      sn.set(sin.subarray(t, t + half), r * half);
    }
    return { cs, sn };
  }

  storeKV(kT: Tensor, vT: Tensor, qkvT: Tensor, S: number, P: number, Q: number, Hkv: number, hd: number, cap: number): void {
    const kCache = f32(kT), vCache = f32(vT), qkv = f32(qkvT);
    this.begin(kCache);
    if (P + S > cap) throw new OpenELMError('usage', `storeKV: positions ${P}..${P + S - 1} exceed the cache capacity ${cap}`);
    const W = (Q + 2 * Hkv) * hd;
    const qp = this.inF32(qkv, S * W, 'qkv');
    const kp = this.outF32(kCache, Hkv * cap * hd, 'K cache', true);
    const vp = this.outF32(vCache, Hkv * cap * hd, 'V cache', true);
    const a = this.cur.ai;
    a[0] = kp; a[1] = vp; a[2] = qp; a[3] = S; a[4] = P; a[5] = Q; a[6] = Hkv; a[7] = hd; a[8] = cap;
    this.exec('k_storekv', 0, 1);
  }

  attention(outT: Tensor, qkvT: Tensor, kT: Tensor, vT: Tensor, S: number, P: number, Q: number, Hkv: number, hd: number, cap: number): void {
    const out = f32(outT), qkv = f32(qkvT), kCache = f32(kT), vCache = f32(vT);
    this.begin(kCache);
    if (P + S > cap) throw new OpenELMError('usage', `attention: positions ${P}..${P + S - 1} exceed the cache capacity ${cap}`);
    if (Q % Hkv !== 0) throw new OpenELMError('usage', `attention: ${Q} query heads are not a multiple of ${Hkv} kv heads`);
    const W = (Q + 2 * Hkv) * hd;
    const qp = this.inF32(qkv, S * W, 'qkv');
    const kp = this.inF32(kCache, Hkv * cap * hd, 'K cache');
    const vp = this.inF32(vCache, Hkv * cap * hd, 'V cache');
    const op = this.outF32(out, S * Q * hd, 'attention output', false);
    this.cur.ensureScratch(this.cur.k.attentionScratch(Q / Hkv, hd), this.threads);
    const a = this.cur.ai;
    a[0] = op; a[1] = qp; a[2] = kp; a[3] = vp; a[4] = S; a[5] = P; a[6] = Q; a[7] = Hkv; a[8] = hd; a[9] = cap;
    a[10] = this.cur.scratchOff; a[11] = this.cur.scratchStride;
    // decode has only a few (row, kv head) items: their query heads are split so the threads get equal shares
    const split = this.cur.k.attentionSplit(S, Q, Hkv, this.threads);
    a[12] = split;
    // (a split call's items are equal, so each is its own chunk)
    this.exec('k_attention', S * Q * (P + S) * hd * 2, S * Hkv * split, true, split > 1 ? S * Hkv * split : undefined);
  }

  swiglu(outT: Tensor, uT: Tensor, rows: number, F: number): void {
    const out = f32(outT), u = f32(uT);
    this.begin(u);
    const up = this.inF32(u, rows * 2 * F, 'swiglu input');
    const op = this.outF32(out, rows * F, 'swiglu output', false);
    const a = this.cur.ai;
    a[0] = op; a[1] = up; a[2] = rows; a[3] = F;
    // column chunks (out may overlay u: elementwise.as swigluCols)
    this.exec('k_swiglu', rows * F * 8, Math.min(Math.ceil(rows * F / 1024), Math.ceil(F / 4)));
  }

  silu(outT: Tensor, uT: Tensor, n: number): void {
    const out = f32(outT), u = f32(uT);
    this.begin(u);
    const up = this.inF32(u, n, 'silu input');
    const op = this.outF32(out, n, 'silu output', false);
    const a = this.cur.ai;
    a[0] = op; a[1] = up; a[2] = n;
    this.exec('k_silu', n * 8, Math.ceil(n / 1024));
  }

  add(xT: Tensor, yT: Tensor, n: number): void {
    const x = f32(xT), y = f32(yT);
    this.begin(x);
    const yp = this.inF32(y, n, 'add y');
    const xp = this.outF32(x, n, 'add x', true);
    const a = this.cur.ai;
    a[0] = xp; a[1] = yp; a[2] = n;
    this.exec('k_add', n, Math.ceil(n / 1024));
  }

  embedding(outT: Tensor, table: Weight, ids: Int32Array, skipId?: number): void {
    const out = f32(outT);
    if (table.parts) {
      // a table in several parts (no file stores one so): decoded row by row on the host
      const D = table.cols, row = new Float32Array(D);
      for (let r = 0; r < ids.length; r++) {
        const t = ids[r];
        if (t === skipId) { out.fill(0, r * D, r * D + D); continue; }
        if (!(t >= 0 && t < table.rows)) throw new OpenELMError('usage', `token id ${t} is outside the embedding table (${table.rows} rows)`);
        weightRowToF32(table, t, row);
        out.set(row, r * D);
      }
      return;
    }
    const p = this.packedOf(table);
    this.begin(p.shard);
    // a forward pass starts with its embedding: a worker that slept since the last one wakes now,
    // while this and the first norm run, rather than at the first split call
    this.pool.wake();
    const n = ids.length, D = table.cols;
    const idp = this.cur.stageTake(n * 4);
    const idv = this.cur.arena.i32(idp, n);
    let skipped = false;
    for (let r = 0; r < n; r++) {
      const t = ids[r];
      // padding rows read row 0 and are zeroed below
      if (t === skipId) { idv[r] = 0; skipped = true; continue; }
      if (!(t >= 0 && t < table.rows)) throw new OpenELMError('usage', `token id ${t} is outside the embedding table (${table.rows} rows)`);
      idv[r] = t;
    }
    const op = this.outF32(out, n * D, 'embedding output', false);
    const a = this.cur.ai;
    a[0] = op; a[1] = p.dtype; a[2] = p.data; a[3] = p.scales; a[4] = p.mins; a[5] = D; a[6] = idp; a[7] = n;
    this.exec('k_embedding', n * D, n);
    if (skipped) for (let r = 0; r < n; r++) if (ids[r] === skipId) out.fill(0, r * D, r * D + D);
  }

  argmax(xT: Tensor, rows: number, V: number): Promise<Int32Array> {
    const x = f32(xT), out = new Int32Array(rows);
    const home = this.shardOf(x);
    if (home && rows > 0) {
      // in SIMD where the logits are (a decode step's head output: 32000 values, several times faster than this loop)
      needLength(x, rows * V, 'argmax input');
      this.begin(home);
      const op = this.cur.stageTake(rows * 4);
      this.cur.k.argmaxRows(x.byteOffset, rows, V, op);
      out.set(this.cur.arena.i32(op, rows));
      return Promise.resolve(out);
    }
    for (let r = 0; r < rows; r++) {
      let best = 0, bv = -Infinity;
      for (let j = 0, o = r * V; j < V; j++) if (x[o + j] > bv) { bv = x[o + j]; best = j; }
      out[r] = best;
    }
    return Promise.resolve(out);
  }

  // ------------------------------------------------------------------------------------------
  // training ops (driven by train-ops.ts)

  matmul(C: Tensor, A: Tensor, B: Tensor, M: number, N: number, K: number, layout: MatmulLayout, accumulate: boolean, precision?: MatmulPrecision): void {
    const c = f32(C), a = f32(A), b = f32(B), bf16 = precision === 'bf16';
    if (layout === 'nt') this.train.gemmRun(c, a, b, M, N, K, accumulate, 0, 1, K, K, 'gemm nt', bf16);
    else if (layout === 'nn') this.train.gemmRun(c, a, b, M, N, K, accumulate, 0, 0, K, N, 'gemm nn', bf16);
    else this.train.gemmRun(c, a, b, M, N, K, accumulate, 1, 0, M, N, 'gemm tn', bf16);
  }
  causalAttention(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, Q: number, Hkv: number, hd: number): void {
    this.train.attentionForward(f32(out), f32(lse), f32(qkv), B, T, Q, Hkv, hd);
  }
  causalAttentionBackward(dqkv: Tensor, dout: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, B: number, T: number, Q: number, Hkv: number, hd: number): void {
    this.train.attentionBackward(f32(dqkv), f32(dout), f32(qkv), f32(out), f32(lse), B, T, Q, Hkv, hd);
  }
  rmsnormBackward(dx: Tensor, dw: Tensor, dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, rows: number, dim: number): void {
    this.train.rmsnormBackward(f32(dx), f32(dw), f32(dy), f32(x), f32(w), f32(rstd), rows, dim);
  }
  qkNormRopeBackward(dqkv: Tensor, dqNorm: Tensor | null, dkNorm: Tensor | null, raw: Tensor, rstd: Tensor, rows: number,
    pos: Int32Array, Q: number, Hkv: number, hd: number, qNorm: Tensor | null, kNorm: Tensor | null, rope: RopeTables): void {
    this.begin(f32(dqkv));
    const { cs, sn } = this.ropeRows(rope, pos, rows);
    const o = (t: Tensor | null) => (t ? f32(t) : null);
    this.train.qkNormRopeBackward(f32(dqkv), o(dqNorm), o(dkNorm), f32(raw), f32(rstd), rows, rows, Q, Hkv, hd, o(qNorm), o(kNorm), cs, sn);
  }
  swigluBackward(du: Tensor, dg: Tensor, u: Tensor, rows: number, F: number): void { this.train.swigluBackward(f32(du), f32(dg), f32(u), rows, F); }
  siluBackward(du: Tensor, dg: Tensor, u: Tensor, n: number): void { this.train.siluBackward(f32(du), f32(dg), f32(u), n); }
  embeddingBackward(dtable: Tensor, dout: Tensor, ids: Int32Array, D: number, skipId: number): void {
    this.train.embeddingBackward(f32(dtable), f32(dout), ids, D, skipId);
  }
  crossEntropy(logits: Tensor, targets: Int32Array, rows: number, V: number, zLoss: number, gradScale: number, rowScale?: Float32Array): Promise<LossSums> {
    return Promise.resolve(this.train.crossEntropy(f32(logits), targets, rows, V, zLoss, gradScale, rowScale));
  }
  rowLogprobs(logits: Tensor, targets: Int32Array, rows: number, V: number): Promise<Float64Array> {
    return Promise.resolve(this.train.crossEntropyStats(f32(logits), targets, rows, V, 0, 0));
  }
  sumSquares(x: Tensor | readonly Tensor[]): Promise<number> {
    const tr = this.train;
    return blockedSumSquares(tensorList(x).map(f32), (v) => v.length, SUMSQ_BLOCK,
      (v, o, n) => Promise.resolve(tr.sumSquaresPartials(v.subarray(o, o + n))),
      (pieces, n) => Promise.resolve(tr.sumSquaresPartials(tr.gather(pieces.map((p) => p.t.subarray(p.offset, p.offset + p.n)), n))[0]));
  }
  scale(x: Tensor, coef: number): void { this.train.scale(f32(x), coef); }
  adamw(p: Tensor, g: Tensor, m: Tensor, v: Tensor, n: number, s: AdamWStep): void { this.train.adamw(f32(p), f32(g), f32(m), f32(v), n, s); }

  // ------------------------------------------------------------------------------------------
  // adapter ops

  linearT(outT: Tensor, dyT: Tensor, w: Weight, M: number, accumulate = false): void {
    const N = w.rows, K = w.cols;
    if (M <= 0 || K === 0) return;
    // f32 weights are read in place; other dtypes are decoded once per call into scratch (N·K
    // values against M·N·K multiply-adds) by the embedding kernel, then the training GEMM runs.
    let W: Float32Array;
    if (w.dtype === 'f32') W = w.data as Float32Array;
    else {
      if (!this.decoded || this.decoded.length < N * K) {
        if (this.decoded) this.freeF32(this.decoded);
        this.decoded = this.allocF32(N * K);
      }
      W = this.decoded.subarray(0, N * K);
      if (!this.iota || this.iota.length < N) this.iota = Int32Array.from({ length: N }, (_, i) => i);
      this.embedding(W as unknown as Tensor, w, this.iota.subarray(0, N));
    }
    this.train.gemmRun(f32(outT), f32(dyT), W, M, K, N, accumulate, 0, 0, N, K, 'linearT');
  }
  mulColumns(out: Tensor, x: Tensor, s: Tensor, rows: number, cols: number, accumulate = false): void {
    this.train.mulColumns(f32(out), f32(x), f32(s), rows, cols, accumulate);
  }
  columnDot(out: Tensor, a: Tensor, b: Tensor, rows: number, cols: number, accumulate = false): void {
    this.train.columnDot(f32(out), f32(a), f32(b), rows, cols, accumulate);
  }
  dropoutMask(out: Tensor, n: number, p: number, seed: number, complement: boolean): void {
    checkDropout(p, n, f32(out).length);
    this.train.dropoutMask(f32(out), n, p, seed, complement);
  }
  doraScale(c: Tensor, invN: Tensor, m: Tensor, base2: Tensor, q: Tensor, n: number, coef: number): void {
    this.train.doraScale(f32(c), f32(invN), f32(m), f32(base2), f32(q), n, coef);
  }


  // ------------------------------------------------------------------------------------------
  // what train-ops.ts drives the training kernels with

  /** Whether a view points into one of this backend's memories (tensors from alloc() do). */
  owns(v: ArrayBufferView): boolean { return this.shardOf(v) !== null; }

  /** Shard `index`'s 64 argument slots as int32, float32 and float64 views (an f64 takes slots 2i, 2i+1). */
  kernelArgs(index: number): { i32: Int32Array; f32: Float32Array; f64: Float64Array } {
    const s = this.shards[index];
    return { i32: s.ai, f32: s.af, f64: s.a64 };
  }

  /** Per-thread scratch of at least `bytesPerThread` in shard `index`: thread t owns [offset + t·stride, +stride). */
  threadScratch(index: number, bytesPerThread: number): { offset: number; stride: number } {
    this.live();
    const s = this.shards[index];
    s.ensureScratch(bytesPerThread, this.threads);
    return { offset: s.scratchOff, stride: s.scratchStride };
  }

  /**
   * Run kernel `name` in shard `index` on the arguments already written to its kernelArgs(), split
   * into `chunks` chunks claimed by the threads (1 runs it on this thread). Its buffers must be in that memory.
   */
  runKernel(index: number, name: KernelName, chunks: number): void {
    this.live();
    this.pool.run(index, name, this.threads === 1 ? 1 : Math.max(1, Math.floor(chunks)));
  }

  // ------------------------------------------------------------------------------------------
  // plumbing

  private live(): void {
    if (this.disposed) throw new OpenELMError('usage', 'this wasm backend has been disposed');
  }

  /** Start a kernel call in the shard of `anchor` (its main operand; null or a foreign array: shard 0). */
  private begin(anchor: Float32Array | Shard | null): void {
    this.live();
    if (this.copyBack.length) this.copyBack.length = 0;
    this.cur = anchor instanceof Shard ? anchor : (anchor && this.shardOf(anchor)) || this.shards[0];
    this.cur.resetStage();
  }

  private inF32(v: Float32Array, n: number, what: string): number {
    needLength(v, n, what);
    const off = this.cur.offsetOf(v);
    if (off >= 0) return off;
    const st = this.cur.stageTake(n * 4);
    this.cur.arena.f32(st, n).set(v.length === n ? v : v.subarray(0, n));
    return st;
  }

  private outF32(v: Float32Array, n: number, what: string, copyIn: boolean): number {
    needLength(v, n, what);
    const off = this.cur.offsetOf(v);
    if (off >= 0) return off;
    const st = this.cur.stageTake(n * 4);
    if (copyIn) this.cur.arena.f32(st, n).set(v.length === n ? v : v.subarray(0, n));
    this.copyBack.push({ dst: v, off: st, n });
    return st;
  }

  /**
   * Run a kernel in the current shard, split into chunks over the threads: inline when its work
   * (multiply-adds or elements) is below the threshold, else up to CHUNKS_PER_THREAD chunks per
   * thread (or maxChunks), capped by the kernel's natural unit count `items`.
   */
  private exec(name: KernelName, work: number, items: number, last = true, maxChunks = this.threads * CHUNKS_PER_THREAD): void {
    const chunks = work < this.parallelThreshold || this.threads === 1 ? 1 : Math.max(1, Math.min(items, maxChunks));
    this.pool.run(this.cur.index, name, chunks);
    if (!last) return;
    if (!this.copyBack.length) return;
    for (const c of this.copyBack) c.dst.set(this.cur.arena.f32(c.off, c.n));
    this.copyBack.length = 0;
  }
}

const f32 = (t: Tensor): Float32Array => t as unknown as Float32Array;

function needLength(v: Float32Array, n: number, what: string): void {
  if (v.length < n) throw new OpenELMError('usage', `${what} has ${v.length} values, needs ${n}`);
}
