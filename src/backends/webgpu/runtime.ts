/// <reference types="@webgpu/types" />
// The WebGPU runtime under the webgpu backend: tensors (views of pooled buffers), weights (one
// read-only buffer each, in their compact format), ordered host writes and reads, and dispatch of
// kernels through the pipeline cache and the command recorder. Errors the device reports
// asynchronously (validation, out of memory) and a lost device surface at the next read as one
// OpenELMError; a read never waits on a device that is gone.

import { OpenELMError } from '../../core/errors.js';
import type { WeightDType } from '../backend.js';
import { BufferPool, createBuf, type GpuBuf } from './buffer-pool.js';
import { acquireGpu, BufferUsage, MapMode, type AcquireOptions, type GpuAdapterSummary, type GpuFeatures } from './device.js';
import { allParams, type KernelSpec } from './kernel.js';
import { PipelineCache } from './pipelines.js';
import { Recorder } from './recorder.js';
import { weightWords } from './weights-wgsl.js';

/** f32 elements [offset, offset + length) of a pooled buffer. */
export class GpuTensor {
  constructor(readonly buf: GpuBuf, readonly offset: number, readonly length: number, readonly isRoot: boolean) {}
}

/** A weight on the GPU: its storage words (see weights-wgsl.ts) from word `offset` on. */
export interface GpuWeight {
  readonly buf: GpuBuf;
  readonly dtype: WeightDType;
  readonly rows: number;
  readonly cols: number;
  /** Word offset of element 0 (non-zero only for f32 weights that view a tensor). */
  readonly offset: number;
  /** Whether the runtime created the buffer (and frees it with the weight). */
  readonly owned: boolean;
}

export interface RuntimeStats {
  submits: number;
  dispatches: number;
  uploadBytes: number;
  reads: number;
  readBytes: number;
  pipelines: number;
  bindGroups: number;
  /** Bytes of device memory held now (tensors, pooled buffers, weights, arenas) and at most so far. */
  deviceBytes: number;
  peakDeviceBytes: number;
}

/** Arena writes up to this size are recorded in order; larger ones submit first and upload directly. */
const STAGED_WRITE_BYTES = 1 << 18;

export class GpuRuntime {
  private readonly pool: BufferPool;
  private readonly readPool: BufferPool;
  private readonly pipes: PipelineCache;
  readonly rec: Recorder;
  private readonly weights = new Set<GpuWeight>();
  private weightBytes = 0;
  private peak = 0;
  private reads = 0;
  private readBytes = 0;
  private errors: string[] = [];
  private lostInfo: { reason: string; message: string } | null = null;
  private readonly lost: Promise<void>;
  private disposed = false;
  readonly maxBufferBytes: number;

  static async create(opts: AcquireOptions = {}): Promise<GpuRuntime> {
    const h = await acquireGpu(opts);
    return new GpuRuntime(h.device, h.adapter, h.features);
  }

  constructor(readonly device: GPUDevice, readonly adapter: GpuAdapterSummary, readonly features: GpuFeatures) {
    this.maxBufferBytes = Math.min(device.limits.maxBufferSize, device.limits.maxStorageBufferBindingSize);
    this.pipes = new PipelineCache(device);
    const drop = (b: GpuBuf) => this.pipes.dropBuffer(b);
    this.pool = new BufferPool(device, BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST, 'tensor', drop);
    this.readPool = new BufferPool(device, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'readback', drop);
    this.rec = new Recorder(device, drop);
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      const e = ev.error;
      const oom = (e.constructor?.name === 'GPUOutOfMemoryError') || /out of memory/i.test(e.message);
      this.errors.push(oom
        ? `the GPU ran out of memory: ${mib(this.deviceBytes())} MiB in use on ${this.adapter.description}`
        : `WebGPU error: ${e.message.split('\n')[0]}`);
    };
    this.lost = device.lost.then((info) => {
      this.lostInfo = { reason: String(info.reason), message: info.message };
    });
  }

  // ---------------------------------------------------------------------------------------------
  // state and errors

  private check(): void {
    if (this.disposed) throw new OpenELMError('webgpu', 'the webgpu backend was used after dispose()');
    if (this.lostInfo) throw this.lostError();
  }

  private lostError(): OpenELMError {
    const i = this.lostInfo!;
    return new OpenELMError('webgpu', `the GPU device was lost (${i.reason}${i.message ? ': ' + i.message.split('\n')[0] : ''}); ` +
      'results since the last read are gone, start again');
  }

  private raiseErrors(): void {
    if (this.errors.length === 0) return;
    const first = this.errors[0];
    this.errors = [];
    throw new OpenELMError('webgpu', first);
  }

  deviceBytes(): number {
    const b = this.pool.liveBytes + this.pool.pooledBytes + this.readPool.liveBytes + this.readPool.pooledBytes + this.weightBytes;
    if (b > this.peak) this.peak = b;
    return b;
  }

  stats(): RuntimeStats {
    const s = this.rec.stats;
    const deviceBytes = this.deviceBytes();
    return { submits: s.submits, dispatches: s.dispatches, uploadBytes: s.uploadBytes, reads: this.reads,
      readBytes: this.readBytes, pipelines: this.pipes.compiled, bindGroups: this.pipes.bindGroupCount,
      deviceBytes, peakDeviceBytes: this.peak };
  }

  // ---------------------------------------------------------------------------------------------
  // tensors

  private tooBig(what: string, bytes: number): OpenELMError {
    return new OpenELMError('webgpu', `${what} of ${mib(bytes)} MiB exceeds the largest buffer the GPU allows ` +
      `(${mib(this.maxBufferBytes)} MiB on ${this.adapter.description})`);
  }

  /** A zero-filled tensor of n f32 values. */
  alloc(n: number): GpuTensor {
    this.check();
    const bytes = Math.max(n, 1) * 4;
    if (bytes > this.maxBufferBytes) throw this.tooBig('a tensor', bytes);
    const { buf, reused } = this.pool.acquire(bytes);
    // A new buffer is zeroed by WebGPU; a reused one is cleared in order with the recorded work.
    if (reused) this.rec.clear(buf.buffer, 0, buf.size);
    this.deviceBytes();
    return new GpuTensor(buf, 0, n, true);
  }

  free(t: GpuTensor): void {
    if (this.disposed) return;
    if (!t.isRoot) throw new Error('free() takes a tensor from alloc(), not a view');
    this.pool.release(t.buf);
  }

  view(t: GpuTensor, offset: number, n: number): GpuTensor {
    if (offset < 0 || n < 0 || offset + n > t.length) throw new Error(`view [${offset}, ${offset + n}) outside a tensor of ${t.length}`);
    return new GpuTensor(t.buf, t.offset + offset, n, false);
  }

  write(dst: GpuTensor, src: Float32Array, dstOffset = 0): void {
    this.check();
    if (dstOffset + src.length > dst.length) throw new Error(`write of ${src.length} at ${dstOffset} outside a tensor of ${dst.length}`);
    if (src.length === 0) return;
    const bytes = src.length * 4, at = (dst.offset + dstOffset) * 4;
    if (bytes <= STAGED_WRITE_BYTES) {
      const { hostAt } = this.rec.reserve(src.length, false);
      this.rec.hostF32.set(src, hostAt);
      this.rec.copy(this.rec.hostBuf.buffer, hostAt * 4, dst.buf.buffer, at, bytes);
    } else {
      this.rec.flush();
      this.device.queue.writeBuffer(dst.buf.buffer, at, src.buffer, src.byteOffset, bytes);
      this.rec.stats.uploadBytes += bytes;
    }
  }

  /** dst[0..n) = src[0..n), in order with the recorded ops. */
  copy(dst: GpuTensor, src: GpuTensor, n: number): void {
    this.check();
    if (n === 0) return;
    if (dst.buf === src.buf) throw new Error('copy within one buffer needs the copy kernel');
    this.rec.copy(src.buf.buffer, src.offset * 4, dst.buf.buffer, dst.offset * 4, n * 4);
  }

  zero(dst: GpuTensor): void {
    this.check();
    if (dst.length) this.rec.clear(dst.buf.buffer, dst.offset * 4, dst.length * 4);
  }

  /** Submit everything recorded so far. */
  flush(): void {
    this.check();
    this.rec.flush();
  }

  /** The raw 32-bit words [offset, offset + n) of a tensor after every op recorded before this call. */
  async readWords(src: GpuTensor, offset = 0, n = src.length - offset): Promise<ArrayBuffer> {
    this.check();
    if (offset < 0 || n < 0 || offset + n > src.length) throw new Error(`read [${offset}, ${offset + n}) outside a tensor of ${src.length}`);
    const bytes = Math.max(n, 1) * 4;
    const staging = this.readPool.acquire(bytes).buf;
    if (n) this.rec.copy(src.buf.buffer, (src.offset + offset) * 4, staging.buffer, 0, n * 4);
    this.rec.flush();
    const mapped = staging.buffer.mapAsync(MapMode.READ, 0, bytes);
    mapped.catch(() => { /* a lost device rejects it; the race below reports that */ });
    try {
      await Promise.race([mapped, this.lost.then(() => { throw this.lostError(); })]);
    } catch (e) {
      if (this.lostInfo) throw this.lostError();
      this.raiseErrors();
      throw new OpenELMError('webgpu', `reading back from the GPU failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
    }
    const out = staging.buffer.getMappedRange(0, n * 4).slice(0);
    staging.buffer.unmap();
    this.readPool.release(staging);
    this.reads++;
    this.readBytes += n * 4;
    this.raiseErrors();
    return out;
  }

  async read(src: GpuTensor, offset = 0, n = src.length - offset): Promise<Float32Array> {
    return new Float32Array(await this.readWords(src, offset, n));
  }

  /** Resolves when the GPU has finished everything submitted; reports pending errors. */
  async sync(): Promise<void> {
    this.check();
    this.rec.flush();
    await Promise.race([this.device.queue.onSubmittedWorkDone(), this.lost]);
    if (this.lostInfo) throw this.lostError();
    this.raiseErrors();
  }

  // ---------------------------------------------------------------------------------------------
  // weights

  /** Upload a weight's storage (data, then scales, then mins, as weights-wgsl.ts lays them out). */
  uploadWeight(dtype: WeightDType, rows: number, cols: number, parts: readonly ArrayBufferView[]): GpuWeight {
    this.check();
    const n = rows * cols;
    const words = weightWords(dtype, n);
    const bytes = Math.ceil(words / 4) * 16;
    if (bytes > this.maxBufferBytes) throw this.tooBig(`a ${rows}×${cols} ${dtype} weight`, bytes);
    const buf = createBuf(this.device, bytes, BufferUsage.STORAGE | BufferUsage.COPY_DST, `weight ${rows}x${cols} ${dtype}`);
    const host = new Uint8Array(bytes);
    let at = 0;
    for (const p of parts) {
      host.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), at);
      at += p.byteLength;
    }
    if (at > bytes) throw new Error(`weight parts of ${at} bytes exceed ${bytes}`);
    this.device.queue.writeBuffer(buf.buffer, 0, host);
    this.rec.stats.uploadBytes += bytes;
    const w: GpuWeight = { buf, dtype, rows, cols, offset: 0, owned: true };
    this.weights.add(w);
    this.weightBytes += bytes;
    this.deviceBytes();
    return w;
  }

  /** An f32 tensor used as a weight [rows, cols] without a copy. */
  tensorWeight(t: GpuTensor, rows: number, cols: number): GpuWeight {
    if (rows * cols > t.length) throw new Error(`a ${rows}×${cols} weight does not fit a tensor of ${t.length}`);
    return { buf: t.buf, dtype: 'f32', rows, cols, offset: t.offset, owned: false };
  }

  freeWeight(w: GpuWeight): void {
    if (!w.owned || !this.weights.delete(w)) return;
    this.weightBytes -= w.buf.size;
    this.pipes.dropBuffer(w.buf);
    w.buf.buffer.destroy();
  }

  // ---------------------------------------------------------------------------------------------
  // dispatch

  /**
   * Record kernel k over `groups` workgroups. Tensors and weights in the order of k's lists; host
   * inputs (read in the kernel through hin(i)) are uploaded with this batch.
   */
  dispatch(k: KernelSpec, tensors: readonly GpuTensor[], weights: readonly GpuWeight[], params: readonly number[],
    groups: readonly [number, number, number], host?: ArrayLike<number>): void {
    this.check();
    if (tensors.length !== k.tensors.length || weights.length !== (k.weights?.length ?? 0)) {
      throw new Error(`kernel ${k.key}: ${tensors.length} tensors and ${weights.length} weights for ${k.tensors.length} and ${k.weights?.length ?? 0}`);
    }
    if (groups[0] === 0 || groups[1] === 0 || groups[2] === 0) return;
    // Tensor arguments in one buffer share a binding (overlapping writable bindings are invalid).
    const slots: number[] = [];
    const bufs: GpuBuf[] = [];
    let pattern = '';
    for (let i = 0; i < tensors.length; i++) {
      const b = tensors[i].buf;
      let s = bufs.indexOf(b);
      if (s < 0) { s = bufs.length; bufs.push(b); }
      slots.push(s);
    }
    if (bufs.length !== tensors.length) pattern = slots.join(',');
    const compiled = this.pipes.get(k, slots, pattern);
    const hostLen = k.host ? (host?.length ?? 0) : 0;
    const { slot, hostAt } = this.rec.reserve(hostLen, true);
    const rec = this.rec;
    if (hostLen) {
      const h = host!;
      for (let i = 0; i < hostLen; i++) rec.hostI32[hostAt + i] = h[i];
    }
    // Parameters: tensor offsets, weight offsets and sizes, host offset, then the kernel's own.
    const spec = allParams(k);
    const base = slot * 64;
    let j = 0;
    for (const t of tensors) rec.paramU32[base + j++] = t.offset;
    for (const w of weights) { rec.paramU32[base + j++] = w.offset; rec.paramU32[base + j++] = w.rows * w.cols; }
    if (k.host) rec.paramU32[base + j++] = hostAt;
    if (params.length !== spec.length - j) throw new Error(`kernel ${k.key}: ${params.length} parameters for ${spec.length - j}`);
    for (let i = 0; i < params.length; i++, j++) {
      const t = spec[j][1];
      if (t === 'f32') rec.paramF32[base + j] = params[i];
      else if (t === 'i32') rec.paramI32[base + j] = params[i];
      else rec.paramU32[base + j] = params[i];
    }
    const all: GpuBuf[] = [rec.paramBuf];
    if (k.host) all.push(rec.hostBuf);
    all.push(...bufs);
    for (const w of weights) all.push(w.buf);
    const group = this.pipes.bindGroup(compiled, all);
    const pass = rec.computePass();
    pass.setPipeline(compiled.pipeline);
    pass.setBindGroup(0, group, [slot * 256]);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
  }

  /** The WGSL a kernel variant compiled from (for error reports and tests). */
  shaderSource(key: string): string | undefined { return this.pipes.sources.get(key); }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.rec.destroy();
    this.pool.destroyAll();
    this.readPool.destroyAll();
    for (const w of this.weights) w.buf.buffer.destroy();
    this.weights.clear();
    this.device.destroy();
  }
}

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}
