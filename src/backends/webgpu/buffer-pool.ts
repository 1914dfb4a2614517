/// <reference types="@webgpu/types" />
// GPU buffers by size class, reused instead of created and destroyed per tensor: creation is slow,
// and a reused buffer keeps its cached bind groups. Classes are powers of two up to 64 KiB, then
// quarter steps between powers of two (at most 25 % slack).

export interface GpuBuf {
  readonly buffer: GPUBuffer;
  /** Unique per buffer, the key of cached bind groups. */
  readonly id: number;
  /** Bytes. */
  readonly size: number;
}

let nextId = 1;

/** A buffer outside any pool (weights, arenas). */
export function createBuf(device: GPUDevice, size: number, usage: number, label?: string): GpuBuf {
  const buffer = device.createBuffer({ size, usage, label });
  return { buffer, id: nextId++, size };
}

export function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 4) * 4);
  if (b <= 65536) return 2 ** Math.ceil(Math.log2(b));
  const lo = 2 ** Math.floor(Math.log2(b));
  const step = lo / 4;
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  private free = new Map<number, GpuBuf[]>();
  private live = new Set<GpuBuf>();
  /** Bytes in buffers handed out / kept for reuse, and the most ever handed out at once. */
  liveBytes = 0;
  pooledBytes = 0;
  peakBytes = 0;

  /** `create` makes a buffer of a size class (the runtime's, which watches for out-of-memory). */
  constructor(private readonly create: (size: number) => GpuBuf, private readonly onDestroy: (b: GpuBuf) => void) {}

  /** A buffer of at least `bytes`; `reused` says it held data before (new buffers are zeroed). */
  acquire(bytes: number): { buf: GpuBuf; reused: boolean } {
    const size = sizeClass(bytes);
    const list = this.free.get(size);
    let buf = list?.pop();
    const reused = buf !== undefined;
    if (buf) this.pooledBytes -= size;
    else buf = this.create(size);
    this.live.add(buf);
    this.liveBytes += size;
    if (this.liveBytes > this.peakBytes) this.peakBytes = this.liveBytes;
    return { buf, reused };
  }

  release(buf: GpuBuf): void {
    if (!this.live.delete(buf)) throw new Error('buffer released twice or not from this pool');
    this.liveBytes -= buf.size;
    let list = this.free.get(buf.size);
    if (!list) { list = []; this.free.set(buf.size, list); }
    list.push(buf);
    this.pooledBytes += buf.size;
  }

  /** Destroy a buffer handed out (one that cannot be reused, e.g. with a map still pending). */
  discard(buf: GpuBuf): void {
    if (!this.live.delete(buf)) throw new Error('buffer discarded twice or not from this pool');
    this.liveBytes -= buf.size;
    this.onDestroy(buf);
    buf.buffer.destroy();
  }

  /** Destroy the buffers kept for reuse (the live ones stay). */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) { this.onDestroy(b); b.buffer.destroy(); }
    this.free.clear();
    this.pooledBytes = 0;
  }

  destroyAll(): void {
    this.trim();
    for (const b of this.live) { this.onDestroy(b); b.buffer.destroy(); }
    this.live.clear();
    this.liveBytes = 0;
  }
}
