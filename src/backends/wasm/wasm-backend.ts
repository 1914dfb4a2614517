// The fast CPU backend: WebAssembly SIMD kernels (relaxed SIMD where the runtime has it) over one
// shared memory, split across worker threads. Every buffer it hands out is a view into that memory,
// so kernels run on the caller's data in place; arrays from elsewhere (e.g. a logits buffer the
// model allocates itself, or RoPE tables) are staged through a scratch area and copied back.

import os from 'node:os';
import type { Backend, Weight, WeightDType } from '../backend.js';
import { allocWeightStorage, QBLOCK } from '../weight-format.js';
import { OpenELMError } from '../../core/errors.js';
import { SharedArena } from './arena.js';
import { DTYPE_CODE, loadKernels, type KernelExports, type KernelName } from './kernels.js';
import { ThreadPool } from './pool.js';
import { ARENA_BASE, ARG_SLOTS, ARGS_OFFSET } from './sync.js';
import { Wasm } from './wasm-api.js';
import { nativeBlas, type NativeBlas, type NativeMode } from '../native/native.js';

export interface WasmBackendOptions {
  /** Threads including the calling one (default os.availableParallelism()); 1 runs inline, no workers. */
  threads?: number;
  /** Use relaxed SIMD when the runtime validates it (default true). */
  relaxedSimd?: boolean;
  /**
   * Kernels with less work than this (multiply-adds, or elements × ~8 for SiLU) run on the calling
   * thread only (default 131072, roughly 10–20 µs of one thread: a fork/join costs ~1 µs on an idle
   * machine, more when a worker has to be woken or rescheduled).
   */
  parallelThreshold?: number;
  /**
   * Compute-bound products (prefill, training) through the optional native sgemm
   * (src/backends/native): 'off' (default here: the pure WASM backend), 'auto' (when built and a
   * BLAS library loads) or 'on' (error when it cannot).
   */
  native?: NativeMode;
}

/** Where a weight's storage lives in the wasm memory (set by prepareWeight). */
interface WasmPacked {
  owner: WasmBackend;
  dtype: number;
  data: number;
  scales: number;
  mins: number;
  /** Offsets of copies this backend made (weights whose storage was outside its memory). */
  copies: number[];
}

/** Chunks per thread for dynamic scheduling: enough to absorb a descheduled thread, few enough
 * that claiming (a CAS and a wasm call, well under a microsecond) stays negligible. */
const CHUNKS_PER_THREAD = 4;
/** Largest token count that takes the GEMV path (packing W for a GEMM costs more below this). */
const GEMV_ROWS = 8;
/** Fewest rows for the native linear: it widens all of a non-f32 W per call, which fewer rows do not repay. */
const NATIVE_MIN_ROWS = 32;

export class WasmBackend implements Backend {
  readonly name = 'wasm';
  readonly threads: number;
  /** Whether the relaxed-SIMD kernels are in use. */
  readonly relaxedSimd: boolean;
  parallelThreshold: number;
  /** q8/q4 prefill through the integer GEMM (int8 activations); false dequantizes to an f32 GEMM. */
  intGemm = true;
  /** The native sgemm used for prefill and training products, or null (pure WASM). */
  native: NativeBlas | null;
  /** Fewest rows a linear needs to go native (tests lower it to cover small models). */
  nativeMinRows = NATIVE_MIN_ROWS;

  private readonly arena: SharedArena;
  private readonly pool: ThreadPool;
  private readonly k: KernelExports;
  private readonly ai: Int32Array;
  private readonly af: Float32Array;
  private scratchOff = 0;
  private scratchStride = 0;
  private prepOff = 0;
  private prepSize = 0;
  private stage: { off: number; size: number; used: number }[] = [];
  private stageCall = 0;
  private copyBack: { dst: Float32Array; off: number; n: number }[] = [];
  private disposed = false;
  private argsF64: Float64Array | null = null;
  /** What alloc()/allocWeight() returned, with the allocations free() releases. */
  private readonly owned = new WeakMap<object, number[]>();

  private constructor(threads: number, relaxed: boolean, arena: SharedArena, pool: ThreadPool, k: KernelExports, threshold: number,
    native: NativeBlas | null) {
    this.threads = threads;
    this.native = native;
    this.relaxedSimd = relaxed;
    this.arena = arena;
    this.pool = pool;
    this.k = k;
    this.parallelThreshold = threshold;
    this.ai = new Int32Array(arena.buffer(), ARGS_OFFSET, ARG_SLOTS);
    this.af = new Float32Array(arena.buffer(), ARGS_OFFSET, ARG_SLOTS);
    this.ensureScratch(k.gemmScratch());
  }

  static async create(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
    const threads = opts.threads ?? os.availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) throw new OpenELMError('usage', `threads must be a positive integer, got ${threads}`);
    const native = nativeBlas(opts.native ?? 'off');
    const { module, relaxed } = await loadKernels({ relaxed: opts.relaxedSimd ?? true });
    const arena = new SharedArena(ARENA_BASE, 16 << 20);
    const instance = await Wasm!.instantiate(module, { env: { memory: arena.memory } });
    const pool = await ThreadPool.create(threads, module, arena.memory, instance, relaxed);
    return new WasmBackend(threads, relaxed, arena, pool, instance.exports as unknown as KernelExports, opts.parallelThreshold ?? 131072, native);
  }

  // ------------------------------------------------------------------------------------------
  // memory

  alloc(n: number): Float32Array {
    this.live();
    const off = this.arena.allocBytes(n * 4, `a buffer of ${n} floats`);
    const v = this.arena.f32(off, n);
    this.owned.set(v, [off]);
    return v;
  }

  allocWeight(dtype: WeightDType, rows: number, cols: number): Weight {
    this.live();
    const offs: number[] = [];
    const w = allocWeightStorage(dtype, rows, cols, (bytes) => {
      const byteOffset = this.arena.allocBytes(bytes, `a ${rows}×${cols} ${dtype} weight`);
      offs.push(byteOffset);
      return { buffer: this.arena.buffer(), byteOffset };
    });
    this.owned.set(w, offs);
    return w;
  }

  /**
   * Give memory back: a buffer returned by alloc() or a weight returned by allocWeight() (its
   * storage and any copy prepareWeight made), or for any other weight just prepareWeight's copy.
   * Views of freed memory must not be used afterwards. (Not part of the Backend interface yet:
   * KV caches and workspaces of a long-running server are otherwise never returned.)
   */
  free(x: Float32Array | Weight): void {
    const offs = this.owned.get(x);
    if (ArrayBuffer.isView(x) && !offs) throw new OpenELMError('usage', 'free() needs a buffer returned by this backend\'s alloc()');
    if (!ArrayBuffer.isView(x)) {
      const p = x.packed as WasmPacked | undefined;
      if (p && p.owner === this) { for (const o of p.copies) this.arena.freeBytes(o); x.packed = undefined; }
    }
    if (offs) { for (const o of offs) this.arena.freeBytes(o); this.owned.delete(x); }
  }

  /** Kernel calls so far: run inline (small work) and split over the threads. */
  callStats(): { inline: number; parallel: number } { return { ...this.pool.counts }; }

  /** Bytes currently allocated in the wasm memory, and its current size. */
  memoryStats(): { inUse: number; reserved: number } {
    return { inUse: this.arena.bytesInUse, reserved: this.arena.bytesReserved };
  }

  prepareWeight(w: Weight): void {
    this.live();
    const old = w.packed as WasmPacked | undefined;
    if (old && old.owner === this) for (const o of old.copies) this.arena.freeBytes(o);
    const n = w.rows * w.cols;
    const code = DTYPE_CODE[w.dtype];
    if (code === undefined) throw new OpenELMError('dtype', `unknown weight dtype "${String(w.dtype)}"`);
    if ((w.dtype === 'q8' || w.dtype === 'q4') && w.cols % QBLOCK !== 0) {
      throw new OpenELMError('dtype', `${w.dtype} weights need a multiple of ${QBLOCK} columns; this one has ${w.cols}`);
    }
    const want = w.dtype === 'q4' ? n / 2 : n;
    if (w.data.length < want) throw new OpenELMError('usage', `weight data has ${w.data.length} values, a ${w.rows}×${w.cols} ${w.dtype} weight needs ${want}`);
    const copies: number[] = [];
    const place = (v: ArrayBufferView | undefined, bytes: number, what: string): number => {
      if (!v) throw new OpenELMError('usage', `${w.dtype} weight is missing its ${what}`);
      if (v.byteLength < bytes) throw new OpenELMError('usage', `${w.dtype} weight ${what} has ${v.byteLength} bytes, needs ${bytes}`);
      if (this.arena.owns(v)) return v.byteOffset;
      const off = this.arena.allocBytes(bytes, `a copy of a ${w.rows}×${w.cols} ${w.dtype} weight`);
      this.arena.u8(off, bytes).set(new Uint8Array(v.buffer, v.byteOffset, bytes));
      copies.push(off);
      return off;
    };
    const dataBytes = w.dtype === 'f32' ? n * 4 : w.dtype === 'bf16' || w.dtype === 'f16' ? n * 2 : w.dtype === 'q8' ? n : n / 2;
    const data = place(w.data, dataBytes, 'data');
    const scales = w.dtype === 'q8' || w.dtype === 'q4' ? place(w.scales, (n / QBLOCK) * 4, 'scales') : 0;
    const mins = w.dtype === 'q4' ? place(w.mins, (n / QBLOCK) * 4, 'mins') : 0;
    const p: WasmPacked = { owner: this, dtype: code, data, scales, mins, copies };
    w.packed = p;
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
  }

  // ------------------------------------------------------------------------------------------
  // kernels

  linear(out: Float32Array, x: Float32Array, w: Weight, M: number, accumulate = false): void {
    this.begin();
    const p = this.packedOf(w);
    const N = w.rows, K = w.cols;
    if (M <= 0 || N === 0) return;
    if (this.native && M >= this.nativeMinRows) {
      // the native sgemm reads the caller's arrays wherever they live: no staging
      needLength(x, M * K, 'linear input'); needLength(out, M * N, 'linear output');
      this.native.linear(this.threads, out, x, w.data, p.dtype, w.scales ?? null, w.mins ?? null, M, N, K, accumulate);
      return;
    }
    const xp = this.inF32(x, M * K, 'linear input');
    const op = this.outF32(out, M * N, 'linear output', accumulate);
    // Up to GEMV_ROWS tokens (decode, batched decode) stream W once per 4 rows without packing it;
    // more go through a packed GEMM: integer for q8/q4 (int8 activations), else f32.
    const mode = M <= GEMV_ROWS ? 1 : p.dtype >= DTYPE_CODE.q8 && this.intGemm ? 2 : 0;
    if (mode !== 1) this.ensureScratch(this.k.gemmScratch());
    if (mode === 1 && p.dtype !== 0) this.ensurePrep(M * this.k.prepBytes(K));
    if (mode === 2) this.ensurePrep(this.k.quantBytes(M, K));
    const a = this.ai;
    a[0] = op; a[1] = xp; a[2] = p.data; a[3] = p.scales; a[4] = p.mins; a[5] = p.dtype;
    a[6] = M; a[7] = N; a[8] = K; a[9] = accumulate ? 1 : 0; a[10] = this.scratchOff; a[11] = this.scratchStride;
    a[12] = mode; a[13] = this.prepOff;
    if (mode === 1 && p.dtype !== 0) this.k.k_prep_x(ARGS_OFFSET);
    if (mode === 2) this.exec('k_quant_rows', M * K * 4, M, false);
    this.exec('k_linear', M * N * K, mode === 1 ? Math.ceil(N / 16) : Math.ceil(N / 8));
  }

  rmsnorm(out: Float32Array, x: Float32Array, w: Float32Array, rows: number, dim: number, eps: number): void {
    this.begin();
    const xp = this.inF32(x, rows * dim, 'rmsnorm input');
    const wp = this.inF32(w, dim, 'rmsnorm weight');
    const op = this.outF32(out, rows * dim, 'rmsnorm output', false);
    const a = this.ai;
    a[0] = op; a[1] = xp; a[2] = wp; a[3] = rows; a[4] = dim; this.af[5] = eps;
    this.exec('k_rmsnorm', rows * dim, rows);
  }

  qkNormRope(qkv: Float32Array, rows: number, pos: Int32Array, Q: number, Hkv: number, hd: number,
    qNorm: Float32Array | null, kNorm: Float32Array | null, cos: Float32Array, sin: Float32Array, eps: number): void {
    this.begin();
    const W = (Q + 2 * Hkv) * hd, half = hd / 2;
    if (pos.length < rows) throw new OpenELMError('usage', `qkNormRope got ${pos.length} positions for ${rows} rows`);
    const qp = this.outF32(qkv, rows * W, 'qkv', true);
    // gather each row's cos/sin table row: the tables are plain arrays indexed by position
    const cs = this.stageTake(rows * half * 4), sn = this.stageTake(rows * half * 4);
    const csv = this.arena.f32(cs, rows * half), snv = this.arena.f32(sn, rows * half);
    for (let r = 0; r < rows; r++) {
      const t = pos[r] * half;
      if (!(t >= 0 && t + half <= cos.length && t + half <= sin.length)) {
        throw new OpenELMError('usage', `position ${pos[r]} is outside the RoPE tables (${Math.floor(Math.min(cos.length, sin.length) / half)} positions)`);
      }
      csv.set(cos.subarray(t, t + half), r * half);
      snv.set(sin.subarray(t, t + half), r * half);
    }
    const qn = qNorm ? this.inF32(qNorm, hd, 'q norm weight') : 0;
    const kn = kNorm ? this.inF32(kNorm, hd, 'k norm weight') : 0;
    const a = this.ai;
    a[0] = qp; a[1] = cs; a[2] = sn; a[3] = rows; a[4] = Q; a[5] = Hkv; a[6] = hd; a[7] = qn; a[8] = kn; this.af[9] = eps;
    this.exec('k_qkrope', rows * W, rows);
  }

  storeKV(kCache: Float32Array, vCache: Float32Array, qkv: Float32Array, S: number, P: number,
    Q: number, Hkv: number, hd: number, cap: number): void {
    this.begin();
    if (P + S > cap) throw new OpenELMError('usage', `storeKV: positions ${P}..${P + S - 1} exceed the cache capacity ${cap}`);
    const W = (Q + 2 * Hkv) * hd;
    const qp = this.inF32(qkv, S * W, 'qkv');
    const kp = this.outF32(kCache, Hkv * cap * hd, 'K cache', true);
    const vp = this.outF32(vCache, Hkv * cap * hd, 'V cache', true);
    const a = this.ai;
    a[0] = kp; a[1] = vp; a[2] = qp; a[3] = S; a[4] = P; a[5] = Q; a[6] = Hkv; a[7] = hd; a[8] = cap;
    this.exec('k_storekv', 0, 1);
  }

  attention(out: Float32Array, qkv: Float32Array, kCache: Float32Array, vCache: Float32Array, S: number,
    P: number, Q: number, Hkv: number, hd: number, cap: number): void {
    this.begin();
    if (P + S > cap) throw new OpenELMError('usage', `attention: positions ${P}..${P + S - 1} exceed the cache capacity ${cap}`);
    if (Q % Hkv !== 0) throw new OpenELMError('usage', `attention: ${Q} query heads are not a multiple of ${Hkv} kv heads`);
    const W = (Q + 2 * Hkv) * hd;
    const qp = this.inF32(qkv, S * W, 'qkv');
    const kp = this.inF32(kCache, Hkv * cap * hd, 'K cache');
    const vp = this.inF32(vCache, Hkv * cap * hd, 'V cache');
    const op = this.outF32(out, S * Q * hd, 'attention output', false);
    this.ensureScratch(this.k.attentionScratch(Q / Hkv, hd));
    const a = this.ai;
    a[0] = op; a[1] = qp; a[2] = kp; a[3] = vp; a[4] = S; a[5] = P; a[6] = Q; a[7] = Hkv; a[8] = hd; a[9] = cap;
    a[10] = this.scratchOff; a[11] = this.scratchStride;
    this.exec('k_attention', S * Q * (P + S) * hd * 2, S * Hkv);
  }

  swiglu(out: Float32Array, u: Float32Array, rows: number, F: number): void {
    this.begin();
    const up = this.inF32(u, rows * 2 * F, 'swiglu input');
    const op = this.outF32(out, rows * F, 'swiglu output', false);
    const a = this.ai;
    a[0] = op; a[1] = up; a[2] = rows; a[3] = F;
    this.exec('k_swiglu', rows * F * 8, Math.ceil(rows * F / 1024));
  }

  silu(out: Float32Array, u: Float32Array, n: number): void {
    this.begin();
    const up = this.inF32(u, n, 'silu input');
    const op = this.outF32(out, n, 'silu output', false);
    const a = this.ai;
    a[0] = op; a[1] = up; a[2] = n;
    this.exec('k_silu', n * 8, Math.ceil(n / 1024));
  }

  addInPlace(x: Float32Array, y: Float32Array, n: number): void {
    this.begin();
    const yp = this.inF32(y, n, 'addInPlace y');
    const xp = this.outF32(x, n, 'addInPlace x', true);
    const a = this.ai;
    a[0] = xp; a[1] = yp; a[2] = n;
    this.exec('k_add', n, Math.ceil(n / 1024));
  }

  embedding(out: Float32Array, table: Weight, ids: Int32Array): void {
    this.begin();
    const p = this.packedOf(table);
    const n = ids.length, D = table.cols;
    const idp = this.stageTake(n * 4);
    const idv = this.arena.i32(idp, n);
    for (let r = 0; r < n; r++) {
      const t = ids[r];
      if (!(t >= 0 && t < table.rows)) throw new OpenELMError('usage', `token id ${t} is outside the embedding table (${table.rows} rows)`);
      idv[r] = t;
    }
    const op = this.outF32(out, n * D, 'embedding output', false);
    const a = this.ai;
    a[0] = op; a[1] = p.dtype; a[2] = p.data; a[3] = p.scales; a[4] = p.mins; a[5] = D; a[6] = idp; a[7] = n;
    this.exec('k_embedding', n * D, n);
  }

  // ------------------------------------------------------------------------------------------
  // kernels driven from outside this class (the training kernels, src/train/wasm-train.ts)

  /** Whether a view points into this backend's memory (buffers from alloc() do). */
  owns(v: ArrayBufferView): boolean { return this.arena.owns(v); }

  /** The 64 argument slots as int32, float32 and float64 views (an f64 takes slots 2i, 2i+1). */
  kernelArgs(): { i32: Int32Array; f32: Float32Array; f64: Float64Array } {
    this.argsF64 ??= new Float64Array(this.arena.buffer(), ARGS_OFFSET, ARG_SLOTS / 2);
    return { i32: this.ai, f32: this.af, f64: this.argsF64 };
  }

  /** Call a plain (non-chunked) export of the kernel module, e.g. a scratch-size query. */
  kernelCall(name: string, ...args: number[]): number {
    const f = (this.k as unknown as Record<string, unknown>)[name];
    if (typeof f !== 'function') throw new OpenELMError('wasm', `the wasm kernels have no export ${name}`);
    return (f as (...a: number[]) => number)(...args);
  }

  /** Per-thread scratch of at least `bytesPerThread`: thread t owns [offset + t·stride, +stride). */
  threadScratch(bytesPerThread: number): { offset: number; stride: number } {
    this.live();
    this.ensureScratch(bytesPerThread);
    return { offset: this.scratchOff, stride: this.scratchStride };
  }

  /**
   * Run kernel `name` on the arguments already written to kernelArgs(), split into `chunks`
   * chunks claimed by the threads (1 runs it on this thread). Its buffers must be in this memory.
   */
  runKernel(name: KernelName, chunks: number): void {
    this.live();
    this.pool.run(name, this.threads === 1 ? 1 : Math.max(1, Math.floor(chunks)));
  }

  // ------------------------------------------------------------------------------------------
  // plumbing

  private live(): void {
    if (this.disposed) throw new OpenELMError('usage', 'this wasm backend has been disposed');
  }

  /** Start a kernel call: reset the staging area. */
  private begin(): void {
    this.live();
    this.copyBack.length = 0;
    if (this.stage.length > 1) {
      // the last call overflowed the block: replace the chain by one block that fits it
      for (const b of this.stage) this.arena.freeBytes(b.off);
      const size = Math.ceil(this.stageCall * 1.25 / 4096) * 4096;
      this.stage = [{ off: this.arena.allocBytes(size, 'staging'), size, used: 0 }];
    } else if (this.stage.length) {
      this.stage[0].used = 0;
    }
    this.stageCall = 0;
  }

  /** Bytes of staging for the current call; valid until the next call's begin(). */
  private stageTake(bytes: number): number {
    const need = Math.ceil(Math.max(bytes, 1) / 64) * 64;
    this.stageCall += need;
    let b = this.stage[this.stage.length - 1];
    if (!b || b.used + need > b.size) {
      // chain another block (earlier offsets of this call must stay valid)
      const size = Math.max(need, 1 << 16);
      b = { off: this.arena.allocBytes(size, 'staging'), size, used: 0 };
      this.stage.push(b);
    }
    const off = b.off + b.used;
    b.used += need;
    return off;
  }

  private inF32(v: Float32Array, n: number, what: string): number {
    needLength(v, n, what);
    if (this.arena.owns(v)) return v.byteOffset;
    const off = this.stageTake(n * 4);
    this.arena.f32(off, n).set(v.length === n ? v : v.subarray(0, n));
    return off;
  }

  private outF32(v: Float32Array, n: number, what: string, copyIn: boolean): number {
    needLength(v, n, what);
    if (this.arena.owns(v)) return v.byteOffset;
    const off = this.stageTake(n * 4);
    if (copyIn) this.arena.f32(off, n).set(v.length === n ? v : v.subarray(0, n));
    this.copyBack.push({ dst: v, off, n });
    return off;
  }

  private ensureScratch(bytesPerThread: number): void {
    if (bytesPerThread <= this.scratchStride) return;
    const stride = Math.ceil(bytesPerThread / 256) * 256;
    if (this.scratchStride) this.arena.freeBytes(this.scratchOff);
    this.scratchOff = this.arena.allocBytes(stride * this.threads, 'kernel scratch');
    this.scratchStride = stride;
  }

  private ensurePrep(bytes: number): void {
    if (bytes <= this.prepSize) return;
    const size = Math.ceil(bytes / 4096) * 4096;
    if (this.prepSize) this.arena.freeBytes(this.prepOff);
    this.prepOff = this.arena.allocBytes(size, 'gemv input');
    this.prepSize = size;
  }

  /**
   * Run a kernel split into chunks over the threads: inline when its work (multiply-adds or
   * elements) is below the threshold, else up to CHUNKS_PER_THREAD chunks per thread, capped by
   * the kernel's natural unit count `items`.
   */
  private exec(name: KernelName, work: number, items: number, last = true): void {
    const chunks = work < this.parallelThreshold || this.threads === 1 ? 1 : Math.max(1, Math.min(items, this.threads * CHUNKS_PER_THREAD));
    this.pool.run(name, chunks);
    if (!last) return;
    for (const c of this.copyBack) c.dst.set(this.arena.f32(c.off, c.n));
    this.copyBack.length = 0;
  }
}

function needLength(v: Float32Array, n: number, what: string): void {
  if (v.length < n) throw new OpenELMError('usage', `${what} has ${v.length} values, needs ${n}`);
}

/** A WebAssembly SIMD backend with `threads` threads (default: all available). */
export function createWasmBackend(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
  return WasmBackend.create(opts);
}
