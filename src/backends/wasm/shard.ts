// One WebAssembly memory of the WASM backend with what lives beside it: the main thread's instance
// of the kernels over it, its argument slots, and its per-thread scratch, GEMV-prep and staging
// areas. A wasm32 memory reaches at most 4 GiB; a model larger than that spreads over several
// shards, and each kernel call runs in the shard that holds its main operand, with the other
// operands staged in (wasm-backend.ts).

import { OpenELMError } from '../../core/errors.js';
import { formatBytes } from '../../core/bytes.js';
import type { SharedArena } from './arena.js';
import type { KernelExports } from './kernels.js';
import { ARG_SLOTS, ARGS_OFFSET } from './sync.js';
import type { WasmInstance } from './wasm-api.js';

export class Shard {
  readonly k: KernelExports;
  /** The 64 argument slots as int32, float32 and float64 views (an f64 takes slots 2i, 2i+1). */
  readonly ai: Int32Array;
  readonly af: Float32Array;
  readonly a64: Float64Array;
  scratchOff = 0;
  scratchStride = 0;
  prepOff = 0;
  prepSize = 0;
  private stage: { off: number; size: number; used: number }[] = [];
  private stageCall = 0;

  constructor(readonly index: number, readonly arena: SharedArena, readonly instance: WasmInstance) {
    this.k = instance.exports as unknown as KernelExports;
    const buf = arena.buffer();
    this.ai = new Int32Array(buf, ARGS_OFFSET, ARG_SLOTS);
    this.af = new Float32Array(buf, ARGS_OFFSET, ARG_SLOTS);
    this.a64 = new Float64Array(buf, ARGS_OFFSET, ARG_SLOTS / 2);
  }

  /** Start a kernel call: reset the staging area. */
  resetStage(): void {
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

  /** Bytes of staging for the current call; valid until the next call's resetStage(). */
  stageTake(bytes: number): number {
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

  /** Per-thread scratch of at least `bytesPerThread` for `threads` threads. */
  ensureScratch(bytesPerThread: number, threads: number): void {
    if (bytesPerThread <= this.scratchStride) return;
    const stride = Math.ceil(bytesPerThread / 256) * 256;
    if (this.scratchStride) this.arena.freeBytes(this.scratchOff);
    this.scratchOff = this.arena.allocBytes(stride * threads, 'kernel scratch');
    this.scratchStride = stride;
  }

  /** The GEMV's prepared-input area (the k_prep_x / k_quant_rows output). */
  ensurePrep(bytes: number): void {
    if (bytes <= this.prepSize) return;
    const size = Math.ceil(bytes / 4096) * 4096;
    if (this.prepSize) this.arena.freeBytes(this.prepOff);
    this.prepOff = this.arena.allocBytes(size, 'gemv input');
    this.prepSize = size;
  }

  /** Offset of v in this memory, or -1 when v lives elsewhere. */
  offsetOf(v: ArrayBufferView): number { return this.arena.owns(v) ? v.byteOffset : -1; }
}

export function shardError(what: string, bytes: number, cap: number): OpenELMError {
  return new OpenELMError('memory', `${what} (${formatBytes(bytes)}) is larger than one WebAssembly memory can hold (${formatBytes(cap)}); ` +
    'split it, or store the weights in a smaller dtype');
}
