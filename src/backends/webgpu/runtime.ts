/// <reference types="@webgpu/types" />
// The WebGPU runtime under the webgpu backend: tensors (views of pooled buffers), weights (one
// read-only buffer each, in their compact format), ordered host writes and reads, and dispatch of
// kernels through the pipeline cache and the command recorder. Errors the device reports
// asynchronously (validation, out of memory) and a lost device surface at the next read as one
// OpenELMError; a read never waits on a device that is gone.
//
// Reads are batched: each one records its copy into a staging buffer at once (so it sees exactly
// the ops issued before it), and the reads issued in one synchronous stretch of JavaScript share one
// submit, made in a microtask. A training step's loss sums, a decode step's argmax and a pair of
// reads under Promise.all each cost one command buffer.

import { OpenELMError } from '../../core/errors.js';
import type { ConvertDType } from '../backend.js';
import { BufferPool, createBuf, type GpuBuf } from './buffer-pool.js';
import { acquireGpu, BufferUsage, MapMode, sharedGpu, type AcquireOptions, type GpuAdapterSummary, type GpuFeatures, type GpuHandle } from './device.js';
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
  readonly dtype: ConvertDType;
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

/** What every runtime on one device shares: compiled pipelines, reported errors, the lost state. */
interface DeviceState {
  pipes: PipelineCache;
  errors: OpenELMError[];
  lostInfo: { reason: string; message: string } | null;
  lost: Promise<void>;
}

const deviceStates = new WeakMap<GPUDevice, DeviceState>();

function deviceState(device: GPUDevice, adapter: GpuAdapterSummary): DeviceState {
  let st = deviceStates.get(device);
  if (st) return st;
  const s: DeviceState = { pipes: new PipelineCache(device), errors: [], lostInfo: null, lost: Promise.resolve() };
  device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
    // handled: the next read reports it as one line. Unprevented, Dawn also prints it on stdout
    // (and browsers on the console), into a command's output.
    ev.preventDefault();
    const e = ev.error;
    const oom = (e.constructor?.name === 'GPUOutOfMemoryError') || /out of memory/i.test(e.message);
    s.errors.push(oom ? new OpenELMError('memory', `the GPU ran out of memory on ${adapter.description}: ${MEMORY_HINT}`)
      : new OpenELMError('webgpu', `WebGPU error: ${e.message.split('\n')[0]}`));
  };
  s.lost = device.lost.then((info) => { s.lostInfo = { reason: String(info.reason), message: info.message }; });
  deviceStates.set(device, s);
  st = s;
  return st;
}

const MEMORY_HINT = 'make the work smaller (training: recompute, a smaller batch_size with grad_accum, a shorter seq_len; ' +
  'inference: a shorter context, fewer sequences at once, a narrower dtype) or free the GPU';

interface PendingRead { staging: GpuBuf; bytes: number; n: number; resolve(b: ArrayBuffer): void; reject(e: unknown): void; }

export class GpuRuntime {
  private readonly pool: BufferPool;
  private readonly readPool: BufferPool;
  private readonly pipes: PipelineCache;
  private readonly state: DeviceState;
  readonly rec: Recorder;
  private readonly weights = new Set<GpuWeight>();
  private weightBytes = 0;
  private peak = 0;
  private reads = 0;
  private readBytes = 0;
  private pending: PendingRead[] = [];
  disposed = false;
  readonly maxBufferBytes: number;
  readonly device: GPUDevice;
  readonly adapter: GpuAdapterSummary;
  readonly features: GpuFeatures;

  /**
   * A runtime on the process's shared device, or on a device of its own when `opts` asks for
   * something particular (features turned off, another GPU object, `own`).
   */
  static async create(opts: AcquireOptions & { own?: boolean } = {}): Promise<GpuRuntime> {
    const own = opts.own === true || opts.gpu !== undefined || (opts.disable?.length ?? 0) > 0 || opts.powerPreference !== undefined ||
      opts.limits !== undefined;
    return new GpuRuntime(own ? await acquireGpu(opts) : await sharedGpu(), own);
  }

  /** `ownsDevice`: dispose() destroys the device too (else other runtimes may still use it). */
  constructor(h: GpuHandle, private readonly ownsDevice: boolean) {
    this.device = h.device;
    this.adapter = h.adapter;
    this.features = h.features;
    const device = this.device;
    this.maxBufferBytes = Math.min(device.limits.maxBufferSize, device.limits.maxStorageBufferBindingSize);
    this.state = deviceState(device, h.adapter);
    this.pipes = this.state.pipes;
    const drop = (b: GpuBuf) => this.pipes.dropBuffer(b);
    this.pool = new BufferPool((size) => this.createBuffer(size, BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST, 'tensor'), drop);
    this.readPool = new BufferPool((size) => this.createBuffer(size, BufferUsage.MAP_READ | BufferUsage.COPY_DST, 'readback'), drop);
    this.rec = new Recorder(device, drop);
  }

  /**
   * A new buffer; running out of device memory is reported by WebGPU later, so the sizes are kept
   * for the error the next read raises.
   */
  private createBuffer(size: number, usage: number, label: string): GpuBuf {
    const inUse = this.deviceBytes();
    this.device.pushErrorScope('out-of-memory');
    const b = createBuf(this.device, size, usage, label);
    void this.device.popErrorScope().then((e) => {
      if (e) {
        this.state.errors.push(new OpenELMError('memory', `the GPU ran out of memory: a buffer of ${mib(size)} MiB (${label}) did not fit next to ` +
          `the ${mib(inUse)} MiB this process holds on ${this.adapter.description}; ${MEMORY_HINT}`));
      }
    }, () => { /* a lost device: reported as such */ });
    return b;
  }

  // ---------------------------------------------------------------------------------------------
  // state and errors

  private check(): void {
    if (this.disposed) throw new OpenELMError('webgpu', 'the webgpu backend was used after dispose()');
    if (this.state.lostInfo) throw this.lostError();
  }

  /** Whether the device is gone (every later call fails). */
  get lost(): boolean { return this.state.lostInfo !== null; }

  private lostError(): OpenELMError {
    const i = this.state.lostInfo!;
    return new OpenELMError('device', `the GPU device was lost (${i.reason}${i.message ? ': ' + i.message.split('\n')[0] : ''}); ` +
      'results since the last read are gone');
  }

  private raiseErrors(): void {
    const errs = this.state.errors;
    if (errs.length === 0) return;
    // out of memory explains the validation errors that follow it (invalid buffers)
    const first = errs.find((e) => e.code === 'memory') ?? errs[0];
    errs.length = 0;
    throw first;
  }

  deviceBytes(): number {
    const b = this.pool.liveBytes + this.pool.pooledBytes + this.readPool.liveBytes + this.readPool.pooledBytes + this.weightBytes;
    if (b > this.peak) this.peak = b;
    return b;
  }

  /** Bytes of tensors and weights held now, of everything including buffers pooled for reuse, and the most so far. */
  memory(): { inUse: number; reserved: number; peak: number } {
    const reserved = this.deviceBytes();
    return { inUse: this.pool.liveBytes + this.readPool.liveBytes + this.weightBytes, reserved, peak: this.peak };
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
    return new OpenELMError('memory', `${what} of ${mib(bytes)} MiB exceeds the largest buffer the GPU allows ` +
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
  readWords(src: GpuTensor, offset = 0, n = src.length - offset): Promise<ArrayBuffer> {
    this.check();
    if (offset < 0 || n < 0 || offset + n > src.length) throw new Error(`read [${offset}, ${offset + n}) outside a tensor of ${src.length}`);
    const bytes = Math.max(n, 1) * 4;
    const staging = this.readPool.acquire(bytes).buf;
    if (n) this.rec.copy(src.buf.buffer, (src.offset + offset) * 4, staging.buffer, 0, n * 4);
    return new Promise<ArrayBuffer>((resolve, reject) => {
      if (this.pending.length === 0) queueMicrotask(() => { void this.finishReads(); });
      this.pending.push({ staging, bytes, n, resolve, reject });
    });
  }

  /** Submit what is recorded and map every pending read's staging buffer. */
  private async finishReads(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const fail = (e: unknown) => {
      for (const r of batch) {
        // the staging buffers go back to the pool, so a failed read holds no device memory
        if (!this.disposed) {
          const st = r.staging.buffer.mapState;
          if (st === 'pending') this.readPool.discard(r.staging);
          else {
            if (st === 'mapped') r.staging.buffer.unmap();
            this.readPool.release(r.staging);
          }
        }
        r.reject(e);
      }
    };
    if (this.disposed) { fail(new OpenELMError('webgpu', 'the webgpu backend was disposed before a read finished')); return; }
    if (this.state.lostInfo) { fail(this.lostError()); return; }
    try {
      this.rec.flush();
    } catch (e) {
      fail(e);
      return;
    }
    const lost = this.state.lost.then(() => { throw this.lostError(); });
    lost.catch(() => { /* raced below */ });
    const maps = batch.map((r) => {
      const m = r.staging.buffer.mapAsync(MapMode.READ, 0, r.bytes);
      m.catch(() => { /* a lost device rejects it; the race reports that */ });
      return m;
    });
    try {
      await Promise.race([Promise.all(maps), lost]);
    } catch (e) {
      if (this.state.lostInfo) { fail(this.lostError()); return; }
      try { this.raiseErrors(); } catch (err) { fail(err); return; }
      fail(new OpenELMError('webgpu', `reading back from the GPU failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`));
      return;
    }
    let err: unknown = null;
    try { this.raiseErrors(); } catch (e) { err = e; }
    for (const r of batch) {
      const out = r.staging.buffer.getMappedRange(0, r.n * 4).slice(0);
      r.staging.buffer.unmap();
      if (!this.disposed) this.readPool.release(r.staging);
      this.reads++;
      this.readBytes += r.n * 4;
      if (err) r.reject(err); else r.resolve(out);
    }
  }

  async read(src: GpuTensor, offset = 0, n = src.length - offset): Promise<Float32Array> {
    return new Float32Array(await this.readWords(src, offset, n));
  }

  /** Resolves when the GPU has finished everything submitted; reports pending errors. */
  async sync(): Promise<void> {
    this.check();
    this.rec.flush();
    await Promise.race([this.device.queue.onSubmittedWorkDone(), this.state.lost]);
    if (this.state.lostInfo) throw this.lostError();
    this.raiseErrors();
  }

  // ---------------------------------------------------------------------------------------------
  // weights

  /** Upload a weight's storage (data, then scales, then mins, as weights-wgsl.ts lays them out). */
  uploadWeight(dtype: ConvertDType, rows: number, cols: number, parts: readonly ArrayBufferView[]): GpuWeight {
    this.check();
    const n = rows * cols;
    const words = weightWords(dtype, n);
    const bytes = Math.ceil(words / 4) * 16;
    if (bytes > this.maxBufferBytes) throw this.tooBig(`a ${rows}×${cols} ${dtype} weight`, bytes);
    const buf = this.createBuffer(bytes, BufferUsage.STORAGE | BufferUsage.COPY_DST, `a ${rows}×${cols} ${dtype} weight`);
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
    for (const w of this.weights) { this.pipes.dropBuffer(w.buf); w.buf.buffer.destroy(); }
    this.weights.clear();
    if (this.ownsDevice) this.device.destroy();
  }
}

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}
