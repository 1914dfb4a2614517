// The WebGPU backend: the Backend seam on WGSL kernels (ops.ts for inference, train-ops.ts for
// training) over the runtime (runtime.ts). The same code runs in browsers (navigator.gpu) and in
// Node (Dawn). Tensors are views of pooled GPU buffers; weights are uploaded once in their storage
// format and decoded inside the kernels. Operations are recorded and submitted when something is
// read, so a greedy decode step is one command buffer that returns one id per sequence.

import type { AdamWStep, Backend, BufferLimit, LossSums, MatmulLayout, MatmulPrecision, RopeTables, Tensor, Weight, WeightDType } from '../backend.js';
import { OpenELMError } from '../../core/errors.js';
import { allocWeightStorage, isBlockDType, weightRowToF32 } from '../weight-format.js';
import type { AcquireOptions } from './device.js';
import { WebGpuOps, type OpsOptions, type RopeTensors } from './ops.js';
import { GpuRuntime, GpuTensor, type GpuWeight } from './runtime.js';
import { gpuWeightParts } from './weights-wgsl.js';
import { WebGpuTrainOps } from './train-ops.js';
import { grid } from './kernel.js';
import { ewGroups } from './kernels/elementwise.js';
import { columnDotKernel, doraScaleKernel, dropoutMaskKernel, mulColumnsKernel } from './kernels/adapter.js';
import { dropoutThreshold, dropoutValues, lowbias32 } from '../dropout.js';
import { checkDropout } from '../js/js-backend.js';
import { tensorList } from '../block-sums.js';

export interface WebGPUBackendOptions extends OpsOptions {
  /** How to get the device (default: the process's shared device on the preferred adapter). */
  acquire?: AcquireOptions & { own?: boolean };
}

const g = (t: Tensor): GpuTensor => {
  if (!(t instanceof GpuTensor)) throw new OpenELMError('usage', 'a tensor of another backend was passed to the webgpu backend');
  return t;
};
const gOpt = (t: Tensor | null): GpuTensor | null => (t ? g(t) : null);
const rope = (r: RopeTables): RopeTensors => ({ cos: g(r.cos), sin: g(r.sin), positions: r.positions, half: r.half });

export class WebGPUBackend implements Backend {
  readonly name = 'webgpu';
  readonly threads = 1;
  readonly device = 'gpu' as const;
  readonly library = null;
  readonly ops: WebGpuOps;
  private readonly train: WebGpuTrainOps;

  static async create(opts: WebGPUBackendOptions = {}): Promise<WebGPUBackend> {
    return new WebGPUBackend(await GpuRuntime.create(opts.acquire), opts);
  }

  constructor(readonly rt: GpuRuntime, opts: OpsOptions = {}) {
    this.ops = new WebGpuOps(rt, opts);
    this.train = new WebGpuTrainOps(rt, this.ops);
  }

  describe(): string {
    const a = this.rt.adapter, extras: string[] = [];
    if (this.ops.half) extras.push('shader-f16');
    if (this.ops.sg) extras.push('subgroups');
    return `webgpu on ${a.description || a.vendor || 'an unnamed adapter'}${a.software ? ' (a software adapter: slow)' : ''}` +
      (extras.length ? `, ${extras.join(', ')}` : '');
  }

  // ---------------------------------------------------------------------------------------- memory

  alloc(n: number): Tensor {
    if (!(Number.isInteger(n) && n >= 0)) throw new OpenELMError('usage', `cannot allocate ${n} values`);
    return this.rt.alloc(n);
  }
  free(t: Tensor): void { this.rt.free(g(t)); }
  view(t: Tensor, offset: number, n: number): Tensor {
    const x = g(t);
    if (!(offset >= 0 && n >= 0 && offset + n <= x.length)) throw new OpenELMError('usage', `view [${offset}, ${offset + n}) is outside a tensor of ${x.length} values`);
    return this.rt.view(x, offset, n);
  }
  write(dst: Tensor, src: ArrayLike<number>, dstOffset = 0): void {
    this.rt.write(g(dst), src instanceof Float32Array ? src : Float32Array.from(src), dstOffset);
  }
  read(t: Tensor, offset = 0, n?: number): Promise<Float32Array> {
    const x = g(t);
    return this.rt.read(x, offset, n ?? x.length - offset);
  }
  copy(dst: Tensor, src: Tensor, n: number): void { this.ops.copy(g(dst), g(src), n); }
  fill(dst: Tensor, value: number): void { this.ops.fill(g(dst), value); }
  gatherRows(dst: Tensor, src: Tensor, rows: Int32Array, width: number): void { this.ops.gatherRows(g(dst), g(src), rows, width); }
  scatterRows(dst: Tensor, src: Tensor, rows: Int32Array, width: number): void { this.ops.scatterRows(g(dst), g(src), rows, width); }
  /** WebGPU does not say how much memory the device has: the limit is unknown (Infinity). */
  memory(): { inUse: number; reserved: number; limit: number } {
    const m = this.rt.memory();
    return { inUse: m.inUse, reserved: m.reserved, limit: Infinity };
  }
  /** The largest buffer the device allows (bufferLimit), in values. */
  maxTensorValues(): number { return Math.floor(this.rt.maxBufferBytes / 64) * 16; }
  /** One tensor is one buffer: the smaller of the device's maxBufferSize and maxStorageBufferBindingSize. */
  bufferLimit(): BufferLimit {
    const l = this.rt.device.limits;
    const a = this.rt.adapter;
    return {
      bytes: this.rt.maxBufferBytes,
      limit: l.maxStorageBufferBindingSize <= l.maxBufferSize ? 'maxStorageBufferBindingSize' : 'maxBufferSize',
      // browsers may leave the description empty (privacy): the vendor and architecture then
      device: a.description || `${a.vendor} ${a.architecture}`.trim() || 'this GPU',
    };
  }
  /** The most device memory this backend has held at once (bytes). */
  peakMemory(): number { return this.rt.memory().peak; }
  sync(): Promise<void> { return this.rt.sync(); }

  // --------------------------------------------------------------------------------------- weights

  allocWeight(dtype: WeightDType, rows: number, cols: number): Weight { return allocWeightStorage(dtype, rows, cols); }

  /**
   * Uploads the weight in its storage format; the host copy is released. GGUF/MLX block formats
   * have no WGSL decoder yet: they are widened to f32 (their exact values) on first use, so that a
   * 'rows' weight stacked from block parts can still read the parts' host blocks.
   */
  prepareWeight(w: Weight): void {
    const old = w.packed as GpuWeight | undefined;
    if (old && w.data.length === 0) return;
    if (isBlockDType(w.dtype)) return;
    let gw: GpuWeight;
    if (w.dtype === 'rows') {
      gw = this.widened(w);
      for (const p of w.parts ?? []) this.freeWeight(p);
    } else {
      gw = this.rt.uploadWeight(w.dtype, w.rows, w.cols, gpuWeightParts(w));
    }
    if (old) this.rt.freeWeight(old);
    w.packed = gw;
    w.data = w.data.subarray(0, 0);
    w.scales = undefined;
  }

  tensorWeight(t: Tensor, rows: number, cols: number): Weight {
    return { dtype: 'f32', rows, cols, data: new Float32Array(0), packed: this.rt.tensorWeight(g(t), rows, cols) };
  }

  freeWeight(w: Weight): void {
    const p = w.packed as GpuWeight | undefined;
    if (p) this.rt.freeWeight(p);
    w.packed = undefined;
    w.data = w.data.subarray(0, 0);
  }

  /** An f32 copy on the device of a weight stored in blocks (or in parts). */
  private widened(w: Weight): GpuWeight {
    const f = new Float32Array(w.rows * w.cols);
    for (let r = 0; r < w.rows; r++) weightRowToF32(w, r, f.subarray(r * w.cols, (r + 1) * w.cols));
    return this.rt.uploadWeight('f32', w.rows, w.cols, [f]);
  }

  private gw(w: Weight): GpuWeight {
    if (!w.packed && isBlockDType(w.dtype) && w.data.length) {
      w.packed = this.widened(w);
      w.data = w.data.subarray(0, 0);
    }
    const p = w.packed as GpuWeight | undefined;
    if (!p) throw new OpenELMError('usage', `a ${w.rows}×${w.cols} ${w.dtype} weight was used before prepareWeight()`);
    return p;
  }

  // ----------------------------------------------------------------------------------- forward ops

  // Products with q8/q4 weights are f32 products of the decoded weight already, so `exact` changes nothing here.
  linear(out: Tensor, x: Tensor, w: Weight, M: number, accumulate = false): void { this.ops.linear(g(out), g(x), this.gw(w), M, accumulate); }
  rmsnorm(out: Tensor, x: Tensor, w: Tensor, rows: number, dim: number, eps: number, rstd?: Tensor): void {
    this.ops.rmsnorm(g(out), g(x), g(w), rows, dim, eps, rstd ? g(rstd) : undefined);
  }
  qkNormRope(qkv: Tensor, rows: number, pos: Int32Array, Q: number, Hkv: number, hd: number,
    qNorm: Tensor | null, kNorm: Tensor | null, r: RopeTables, eps: number, rstd?: Tensor): void {
    this.ops.qkNormRope(g(qkv), rows, pos, Q, Hkv, hd, gOpt(qNorm), gOpt(kNorm), rope(r), eps, rstd ? g(rstd) : undefined);
  }
  storeKV(kCache: Tensor, vCache: Tensor, qkv: Tensor, S: number, P: number, Q: number, Hkv: number, hd: number, cap: number): void {
    this.ops.storeKV(g(kCache), g(vCache), g(qkv), S, P, Q, Hkv, hd, cap);
  }
  attention(out: Tensor, qkv: Tensor, kCache: Tensor, vCache: Tensor, S: number, P: number, Q: number, Hkv: number, hd: number, cap: number): void {
    if (Q % Hkv !== 0) throw new OpenELMError('usage', `attention: ${Q} query heads are not a multiple of ${Hkv} kv heads`);
    this.ops.attention(g(out), g(qkv), g(kCache), g(vCache), S, P, Q, Hkv, hd, cap);
  }
  swiglu(out: Tensor, u: Tensor, rows: number, F: number): void { this.ops.swiglu(g(out), g(u), rows, F); }
  silu(out: Tensor, u: Tensor, n: number): void { this.ops.silu(g(out), g(u), n); }
  add(x: Tensor, y: Tensor, n: number): void { this.ops.add(g(x), g(y), n); }
  embedding(out: Tensor, table: Weight, ids: Int32Array, skipId?: number): void { this.ops.embedding(g(out), this.gw(table), ids, skipId); }
  argmax(x: Tensor, rows: number, V: number): Promise<Int32Array> { return this.ops.argmax(g(x), rows, V); }

  // ---------------------------------------------------------------------------------- training ops

  matmul(C: Tensor, A: Tensor, B: Tensor, M: number, N: number, K: number, layout: MatmulLayout, accumulate: boolean, precision: MatmulPrecision = 'fp32'): void {
    this.ops.matmul(g(C), g(A), g(B), M, N, K, layout, accumulate, precision === 'bf16');
  }
  causalAttention(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, Q: number, Hkv: number, hd: number): void {
    this.train.causalAttention(g(out), g(lse), g(qkv), B, T, Q, Hkv, hd);
  }
  causalAttentionBackward(dqkv: Tensor, dout: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, B: number, T: number, Q: number, Hkv: number, hd: number): void {
    this.train.causalAttentionBackward(g(dqkv), g(dout), g(qkv), g(out), g(lse), B, T, Q, Hkv, hd);
  }
  rmsnormBackward(dx: Tensor, dw: Tensor, dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, rows: number, dim: number): void {
    this.train.rmsnormBackward(g(dx), g(dw), g(dy), g(x), g(w), g(rstd), rows, dim);
  }
  qkNormRopeBackward(dqkv: Tensor, dqNorm: Tensor | null, dkNorm: Tensor | null, raw: Tensor, rstd: Tensor, rows: number,
    pos: Int32Array, Q: number, Hkv: number, hd: number, qNorm: Tensor | null, kNorm: Tensor | null, r: RopeTables): void {
    this.train.qkNormRopeBackward(g(dqkv), gOpt(dqNorm), gOpt(dkNorm), g(raw), g(rstd), rows, pos, Q, Hkv, hd, gOpt(qNorm), gOpt(kNorm), rope(r));
  }
  swigluBackward(du: Tensor, dg: Tensor, u: Tensor, rows: number, F: number): void { this.train.swigluBackward(g(du), g(dg), g(u), rows, F); }
  siluBackward(du: Tensor, dg: Tensor, u: Tensor, n: number): void { this.train.siluBackward(g(du), g(dg), g(u), n); }
  embeddingBackward(dtable: Tensor, dout: Tensor, ids: Int32Array, D: number, skipId: number): void {
    this.train.embeddingBackward(g(dtable), g(dout), ids, D, skipId);
  }
  crossEntropy(logits: Tensor, targets: Int32Array, rows: number, V: number, zLoss: number, gradScale: number, rowScale?: Float32Array): Promise<LossSums> {
    return this.train.crossEntropy(g(logits), targets, rows, V, zLoss, gradScale, rowScale);
  }
  rowLogprobs(logits: Tensor, targets: Int32Array, rows: number, V: number): Promise<Float64Array> {
    return this.train.rowLogprobs(g(logits), targets, rows, V);
  }
  sumSquares(x: Tensor | readonly Tensor[]): Promise<number> { return this.train.sumSquares(tensorList(x).map(g)); }
  scale(x: Tensor, coef: number): void { this.train.scale(g(x), coef); }
  adamw(p: Tensor, gr: Tensor, m: Tensor, v: Tensor, n: number, s: AdamWStep): void { this.train.adamw(g(p), g(gr), g(m), g(v), n, s); }

  // ---------------------------------------------------------------------------------- adapter ops

  linearT(out: Tensor, dy: Tensor, w: Weight, M: number, accumulate = false): void { this.ops.linearT(g(out), g(dy), this.gw(w), M, accumulate); }
  mulColumns(out: Tensor, x: Tensor, s: Tensor, rows: number, cols: number, accumulate = false): void {
    const n = rows * cols;
    this.rt.dispatch(mulColumnsKernel(accumulate), [g(out), g(x), g(s)], [], [n, cols], grid(ewGroups(n)));
  }
  columnDot(out: Tensor, a: Tensor, b: Tensor, rows: number, cols: number, accumulate = false): void {
    this.rt.dispatch(columnDotKernel(accumulate), [g(out), g(a), g(b)], [], [cols, rows], grid(ewGroups(cols)));
  }
  dropoutMask(out: Tensor, n: number, p: number, seed: number, complement: boolean): void {
    checkDropout(p, n, out.length);
    const { kept, dropped } = dropoutValues(p, complement);
    this.rt.dispatch(dropoutMaskKernel(), [g(out)], [], [n, lowbias32(seed >>> 0), dropoutThreshold(p), kept, dropped], grid(ewGroups(n)));
  }
  doraScale(c: Tensor, invN: Tensor, m: Tensor, base2: Tensor, q: Tensor, n: number, coef: number): void {
    this.rt.dispatch(doraScaleKernel(), [g(c), g(invN), g(m), g(base2), g(q)], [], [n, coef], grid(ewGroups(n)));
  }

  dispose(): void {
    if (this.rt.disposed) return;
    try { this.train.dispose(); this.ops.dispose(); } catch { /* a lost device: the runtime still lets go below */ }
    this.rt.dispose();
  }
}
