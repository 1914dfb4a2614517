/// <reference types="@webgpu/types" />
// Records ops into one command encoder until something must be read back, then submits them as one
// command buffer. Per-dispatch uniforms go into 256-byte slots of one uniform buffer (dynamic
// offsets) and small host inputs (ids, positions, staged writes) into one storage arena; both are
// uploaded with one writeBuffer each just before the submit, which the queue orders before the
// commands that read them and after every earlier submit.

import { BufferUsage } from './device.js';
import { PARAM_SLOT } from './kernel.js';
import { createBuf, type GpuBuf } from './buffer-pool.js';

export interface RecorderStats {
  submits: number;
  dispatches: number;
  /** Bytes of host inputs and staged writes uploaded through the arena, and of direct writes. */
  uploadBytes: number;
}

export class Recorder {
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private slots = 0;
  private slotCap: number;
  private paramHost!: ArrayBuffer;
  paramU32!: Uint32Array; paramI32!: Int32Array; paramF32!: Float32Array;
  paramBuf!: GpuBuf;
  private hostUsed = 0;
  private hostCap: number;
  private hostHost!: ArrayBuffer;
  hostI32!: Int32Array; hostF32!: Float32Array;
  hostBuf!: GpuBuf;
  /** Commands recorded since the last submit. */
  pending = 0;
  /** Submit on its own after this many dispatches, so long recordings keep the GPU busy. */
  autoFlush = 2048;
  readonly stats: RecorderStats = { submits: 0, dispatches: 0, uploadBytes: 0 };

  constructor(private readonly device: GPUDevice, private readonly onDestroy: (b: GpuBuf) => void,
    slotCap = 1024, hostWords = 65536) {
    this.slotCap = slotCap;
    this.hostCap = hostWords;
    this.makeParams();
    this.makeHost();
  }

  private makeParams(): void {
    if (this.paramBuf) { this.onDestroy(this.paramBuf); this.paramBuf.buffer.destroy(); }
    this.paramHost = new ArrayBuffer(this.slotCap * PARAM_SLOT);
    this.paramU32 = new Uint32Array(this.paramHost);
    this.paramI32 = new Int32Array(this.paramHost);
    this.paramF32 = new Float32Array(this.paramHost);
    this.paramBuf = createBuf(this.device, this.slotCap * PARAM_SLOT, BufferUsage.UNIFORM | BufferUsage.COPY_DST, 'params');
  }

  private makeHost(): void {
    if (this.hostBuf) { this.onDestroy(this.hostBuf); this.hostBuf.buffer.destroy(); }
    this.hostHost = new ArrayBuffer(this.hostCap * 4);
    this.hostI32 = new Int32Array(this.hostHost);
    this.hostF32 = new Float32Array(this.hostHost);
    this.hostBuf = createBuf(this.device, this.hostCap * 4,
      BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC, 'host-inputs');
  }

  /**
   * Room for one more dispatch (when `slot`) and `words` host words; submits what is recorded first
   * when it does not fit, and grows the arenas for next time. Returns the uniform slot and the
   * word offset of the host words.
   */
  reserve(words: number, slot: boolean): { slot: number; hostAt: number } {
    const needWords = words;
    if ((slot && this.slots >= this.slotCap) || this.hostUsed + needWords > this.hostCap || this.pending >= this.autoFlush) {
      const grewSlots = slot && this.slots >= this.slotCap;
      const grewHost = this.hostUsed + needWords > this.hostCap;
      this.flush();
      if (grewSlots) { this.slotCap *= 2; this.makeParams(); }
      if (grewHost || needWords > this.hostCap) {
        this.hostCap = Math.max(this.hostCap * 2, needWords);
        this.makeHost();
      }
    }
    const at = this.hostUsed;
    this.hostUsed += needWords;
    const s = slot ? this.slots++ : -1;
    return { slot: s, hostAt: at };
  }

  private enc(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.device.createCommandEncoder();
    return this.encoder;
  }

  computePass(): GPUComputePassEncoder {
    if (!this.pass) this.pass = this.enc().beginComputePass();
    this.pending++;
    this.stats.dispatches++;
    return this.pass;
  }

  private endPass(): GPUCommandEncoder {
    if (this.pass) { this.pass.end(); this.pass = null; }
    return this.enc();
  }

  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.endPass().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
    this.pending++;
  }

  clear(dst: GPUBuffer, offset: number, bytes: number): void {
    this.endPass().clearBuffer(dst, offset, bytes);
    this.pending++;
  }

  /** Upload the arenas and submit everything recorded (nothing when nothing is). */
  flush(): void {
    if (!this.encoder) return;
    const enc = this.endPass();
    if (this.hostUsed) {
      this.device.queue.writeBuffer(this.hostBuf.buffer, 0, this.hostHost, 0, this.hostUsed * 4);
      this.stats.uploadBytes += this.hostUsed * 4;
    }
    if (this.slots) this.device.queue.writeBuffer(this.paramBuf.buffer, 0, this.paramHost, 0, this.slots * PARAM_SLOT);
    this.device.queue.submit([enc.finish()]);
    this.stats.submits++;
    this.encoder = null;
    this.slots = 0;
    this.hostUsed = 0;
    this.pending = 0;
  }

  destroy(): void {
    this.pass = null;
    this.encoder = null;
    this.onDestroy(this.paramBuf); this.paramBuf.buffer.destroy();
    this.onDestroy(this.hostBuf); this.hostBuf.buffer.destroy();
  }
}
