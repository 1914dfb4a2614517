// One shared WebAssembly.Memory (a wasm32 memory: at most 4 GiB) with a first-fit allocator over it.
// The backend holds several (shard.ts) when a model does not fit in one. Views handed out stay valid
// when the memory grows (a shared memory never moves), but each growth makes `memory.buffer` a new
// SharedArrayBuffer object, so ownership is tracked by remembering every buffer object a view was
// made from.

import { OpenELMError } from '../../core/errors.js';
import { formatBytes } from '../../core/bytes.js';
import { Wasm, type WasmMemory } from './wasm-api.js';

const PAGE = 65536;
const MAX_PAGES = 65536;             // wasm32: 4 GiB
export const MAX_BYTES = MAX_PAGES * PAGE;
const ALIGN = 64;

interface Block { off: number; size: number; }

export class SharedArena {
  readonly memory: WasmMemory;
  private readonly buffers = new WeakSet<ArrayBufferLike>();
  /** The buffer buffer() returned last (one of buffers). */
  private last: ArrayBufferLike | null = null;
  private readonly live = new Map<number, number>();   // offset -> size
  private freeList: Block[] = [];                      // sorted by offset, coalesced
  private top: number;
  private pristine: number;                            // bytes at or above this were never handed out

  /** `capBytes` bounds what this arena hands out (tests lower it to exercise several memories). */
  constructor(readonly base: number, initialBytes = 64 << 20, readonly capBytes = MAX_BYTES) {
    const pages = Math.max(Math.ceil(base / PAGE) + 1, Math.ceil(initialBytes / PAGE));
    this.memory = new Wasm!.Memory({ initial: pages, maximum: MAX_PAGES, shared: true });
    this.top = base;
    this.pristine = base;
  }

  /** The current buffer (a new object after each growth), remembered as ours. */
  buffer(): SharedArrayBuffer {
    const b = this.memory.buffer as unknown as SharedArrayBuffer;
    this.buffers.add(b);
    this.last = b;
    return b;
  }

  /** Whether a view points into this memory. */
  owns(v: ArrayBufferView): boolean {
    // (the latest buffer first: a decode step asks a few hundred times, and the set lookup cost
    // a third of the step's JavaScript)
    const b = v.buffer;
    return b === this.last || this.buffers.has(b);
  }

  get bytesInUse(): number { let n = 0; for (const s of this.live.values()) n += s; return n; }
  get bytesReserved(): number { return this.memory.buffer.byteLength; }

  /** Whether allocBytes(bytes) would succeed now. */
  canFit(bytes: number): boolean {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    if (this.freeList.some((b) => b.size >= size)) return true;
    return this.top + size <= this.capBytes;
  }

  /** Allocate `bytes` (zero-filled unless `zero` is false: the caller overwrites it all), returning the byte offset. */
  allocBytes(bytes: number, what = 'buffer', zero = true): number {
    if (!Number.isFinite(bytes) || bytes < 0) throw new OpenELMError('usage', `cannot allocate ${bytes} bytes for ${what}`);
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    for (let i = 0; i < this.freeList.length; i++) {
      const b = this.freeList[i];
      if (b.size < size) continue;
      const off = b.off;
      if (b.size === size) this.freeList.splice(i, 1);
      else { b.off += size; b.size -= size; }
      this.live.set(off, size);
      if (zero) new Uint8Array(this.buffer(), off, Math.min(size, this.pristine - off)).fill(0);
      return off;
    }
    const off = this.top;
    const end = off + size;
    if (end > this.capBytes) {
      throw new OpenELMError('memory', `a WebAssembly memory holds at most ${formatBytes(this.capBytes)}; ` +
        `${what} (${formatBytes(size)}) does not fit next to the ${formatBytes(this.bytesInUse)} already allocated there`);
    }
    this.ensure(end);
    if (zero && off < this.pristine) new Uint8Array(this.buffer(), off, Math.min(size, this.pristine - off)).fill(0);
    this.top = end;
    this.pristine = Math.max(this.pristine, end);
    this.live.set(off, size);
    return off;
  }

  /** Return a block to the allocator (its views must no longer be used). */
  freeBytes(off: number): void {
    const size = this.live.get(off);
    if (size === undefined) throw new OpenELMError('usage', `no live wasm allocation at offset ${off}`);
    this.live.delete(off);
    let lo = 0, hi = this.freeList.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (this.freeList[mid].off < off) lo = mid + 1; else hi = mid; }
    this.freeList.splice(lo, 0, { off, size });
    // coalesce with neighbours
    if (lo + 1 < this.freeList.length && this.freeList[lo].off + this.freeList[lo].size === this.freeList[lo + 1].off) {
      this.freeList[lo].size += this.freeList[lo + 1].size;
      this.freeList.splice(lo + 1, 1);
    }
    if (lo > 0 && this.freeList[lo - 1].off + this.freeList[lo - 1].size === this.freeList[lo].off) {
      this.freeList[lo - 1].size += this.freeList[lo].size;
      this.freeList.splice(lo, 1);
      lo--;
    }
    // give the tail back to the bump pointer
    const last = this.freeList[this.freeList.length - 1];
    if (last && last.off + last.size === this.top) { this.top = last.off; this.freeList.pop(); }
  }

  /** The size of a live allocation starting at off, or undefined. */
  sizeOf(off: number): number | undefined { return this.live.get(off); }

  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const cur = have / PAGE;
    const need = Math.ceil(end / PAGE);
    // Grow in steps of at least 1/8 of the current size so many small allocations do not each grow.
    const want = Math.min(MAX_PAGES, Math.max(need, cur + Math.ceil(cur / 8)));
    try {
      this.memory.grow(want - cur);
    } catch {
      try { this.memory.grow(need - cur); } catch (e) {
        throw new OpenELMError('memory', `cannot grow the WebAssembly memory to ${(end / 2 ** 30).toFixed(2)} GiB ` +
          `(${(e as Error).message}); load the weights with a smaller dtype (bf16, q8 or q4)`);
      }
    }
  }

  f32(off: number, n: number): Float32Array { return new Float32Array(this.buffer(), off, n); }
  i32(off: number, n: number): Int32Array { return new Int32Array(this.buffer(), off, n); }
  u8(off: number, n: number): Uint8Array { return new Uint8Array(this.buffer(), off, n); }
}
