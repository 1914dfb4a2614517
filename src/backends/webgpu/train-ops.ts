// The training ops of the backend seam on the WebGPU runtime, with the semantics of the reference
// kernels (src/backends/js/reference.ts). Every result element is written by one GPU thread that
// adds its terms in an order fixed by the shapes (sums over rows go through fixed chunks, never
// atomics), so a run repeats bit for bit, and a resumed training run equals an uninterrupted one.
// Host numbers (loss sums, the sum of squares) stay on the GPU as small per-row / per-block results
// until their read is submitted with the rest of the step; the host adds them in f64.

import { OpenELMError } from '../../core/errors.js';
import type { AdamWStep, LossSums } from '../backend.js';
import { grid } from './kernel.js';
import type { GpuRuntime, GpuTensor } from './runtime.js';
import type { RopeTensors, WebGpuOps } from './ops.js';
import { adamwKernel, ewGroups, scale2Kernel, siluBwdKernel, swigluBwdKernel } from './kernels/elementwise.js';
import {
  attnBwdKVKernel, attnBwdQKernel, attnDeltaKernel, attnTrainFwdKernel, trainTiles,
} from './kernels/attention.js';
import {
  GRAD_CHUNK, normThreads, qkGradPartialKernel, qkNormRopeBwdKernel, qkNormRopeGroups, rmsGradPartialKernel, rmsnormBwdKernel, sumPartialsKernel,
} from './kernels/norm.js';
import { SQ_BLOCK, crossEntropyKernel, rowThreads, sumSquaresKernel } from './kernels/loss.js';
import { blockedSumSquares } from '../block-sums.js';
import { embeddingBwdKernel } from './kernels/lookup.js';

export class WebGpuTrainOps {
  /** Scratch tensors reused across calls (partial sums, attention's D), grown on demand. */
  private scratch = new Map<string, GpuTensor>();
  private readonly wgMem: number;

  constructor(readonly rt: GpuRuntime, readonly ops: WebGpuOps) {
    this.wgMem = rt.device.limits.maxComputeWorkgroupStorageSize;
  }

  private scratchOf(name: string, n: number): GpuTensor {
    let t = this.scratch.get(name);
    if (!t || t.length < n) {
      if (t) this.rt.free(t);
      t = this.rt.alloc(Math.max(n, 256));
      this.scratch.set(name, t);
    }
    return this.rt.view(t, 0, n);
  }

  // ---------------------------------------------------------------------------------- attention

  causalAttention(out: GpuTensor, lse: GpuTensor, qkv: GpuTensor, B: number, T: number, Q: number, Hkv: number, hd: number): void {
    const G = checkGroups(Q, Hkv);
    const { bq, bk } = trainTiles(hd, this.wgMem);
    this.rt.dispatch(attnTrainFwdKernel(G, hd, bq, bk), [out, lse, qkv], [], [T, Q, Hkv, 1 / Math.sqrt(hd)],
      [Math.ceil((T * G) / bq), Hkv, B]);
  }

  causalAttentionBackward(dqkv: GpuTensor, dout: GpuTensor, qkv: GpuTensor, out: GpuTensor, lse: GpuTensor,
    B: number, T: number, Q: number, Hkv: number, hd: number): void {
    const G = checkGroups(Q, Hkv);
    const { bq, bk } = trainTiles(hd, this.wgMem);
    const n = B * Q * T, scale = 1 / Math.sqrt(hd);
    const dd = this.scratchOf('delta', n);
    this.rt.dispatch(attnDeltaKernel(hd), [dd, dout, out], [], [n, T, Q], grid(Math.ceil(n / 64)));
    this.rt.dispatch(attnBwdKVKernel(G, hd, bq, bk), [dqkv, dout, qkv, lse, dd], [], [T, Q, Hkv, scale], [Math.ceil(T / bk), Hkv, B]);
    this.rt.dispatch(attnBwdQKernel(G, hd, bq, bk), [dqkv, dout, qkv, lse, dd], [], [T, Q, Hkv, scale], [Math.ceil((T * G) / bq), Hkv, B]);
  }

  // ---------------------------------------------------------------------------------- norms

  /** dst[0, width) += Σ over `rows` rows of the product `partial` computes, in two fixed-order stages. */
  private columnSum(dst: GpuTensor, rows: number, width: number, partial: (part: GpuTensor, chunks: number) => void): void {
    const chunks = Math.ceil(rows / GRAD_CHUNK);
    if (chunks === 0) return;
    const part = this.scratchOf('partial', chunks * width);
    partial(part, chunks);
    this.rt.dispatch(sumPartialsKernel(), [dst, part], [], [width, chunks], [Math.ceil(width / 64), 1, 1]);
  }

  rmsnormBackward(dx: GpuTensor, dw: GpuTensor, dy: GpuTensor, x: GpuTensor, w: GpuTensor, rstd: GpuTensor, rows: number, dim: number): void {
    this.columnSum(dw, rows, dim, (part, chunks) =>
      this.rt.dispatch(rmsGradPartialKernel(), [part, dy, x, rstd], [], [rows, dim], [Math.ceil(dim / 64), chunks, 1]));
    this.rt.dispatch(rmsnormBwdKernel(this.ops.sg, normThreads(dim)), [dx, dy, x, w, rstd], [], [rows, dim], grid(rows));
  }

  qkNormRopeBackward(dqkv: GpuTensor, dqNorm: GpuTensor | null, dkNorm: GpuTensor | null, raw: GpuTensor, rstd: GpuTensor, rows: number,
    pos: Int32Array, Q: number, Hkv: number, hd: number, qNorm: GpuTensor | null, kNorm: GpuTensor | null, rope: RopeTensors): void {
    if (hd > 512) throw new OpenELMError('usage', `the webgpu backend supports head dims up to 512, not ${hd}`);
    this.ops.checkPositions(pos, rows, rope);
    // the reference runs the norm backward for heads whose norm weight and its gradient are both given
    const norms = qNorm !== null && kNorm !== null && dqNorm !== null && dkNorm !== null;
    if (!norms && (qNorm !== null && dqNorm !== null) !== (kNorm !== null && dkNorm !== null)) {
      throw new Error('qkNormRopeBackward needs both norm gradients or neither');
    }
    const p = pos.subarray(0, rows);
    if (norms) {
      for (const [dnw, h0, nh] of [[dqNorm!, 0, Q], [dkNorm!, Q, Hkv]] as const) {
        this.columnSum(dnw, rows * nh, hd, (part, chunks) =>
          this.rt.dispatch(qkGradPartialKernel(), [part, dqkv, raw, rstd, rope.cos, rope.sin], [], [rows * nh, Q, Hkv, hd, h0, nh],
            [Math.ceil(hd / 64), chunks, 1], p));
      }
    }
    const tensors = [dqkv, rope.cos, rope.sin];
    if (norms) tensors.push(raw, rstd, qNorm!, kNorm!);
    this.rt.dispatch(qkNormRopeBwdKernel(norms, this.ops.sg), tensors, [], [rows, Q, Hkv, hd], qkNormRopeGroups(Q + Hkv, rows), p);
  }

  // ---------------------------------------------------------------------------------- element-wise

  swigluBackward(du: GpuTensor, dg: GpuTensor, u: GpuTensor, rows: number, F: number): void {
    this.rt.dispatch(swigluBwdKernel(), [du, dg, u], [], [rows * F, F], grid(ewGroups(rows * F)));
  }

  siluBackward(du: GpuTensor, dg: GpuTensor, u: GpuTensor, n: number): void {
    this.rt.dispatch(siluBwdKernel(), [du, dg, u], [], [n], grid(ewGroups(n)));
  }

  embeddingBackward(dtable: GpuTensor, dout: GpuTensor, ids: Int32Array, D: number, skipId: number): void {
    const V = dtable.length / D;
    // rows grouped by id, each group in row order
    const byId = new Map<number, number[]>();
    for (let r = 0; r < ids.length; r++) {
      const id = ids[r];
      if (id === skipId) continue;
      if (!(Number.isInteger(id) && id >= 0 && id < V)) throw new OpenELMError('usage', `token id ${id} is outside the embedding table (${V} rows)`);
      let l = byId.get(id);
      if (!l) { l = []; byId.set(id, l); }
      l.push(r);
    }
    const u = byId.size;
    if (u === 0) return;
    const host = new Int32Array(2 + 2 * u + ids.length);
    host[0] = u;
    let k = 0, at = 0;
    const rowsAt = 2 + 2 * u;
    for (const [id, rows] of byId) {
      host[1 + k] = at;
      host[2 + u + k] = id;
      for (const r of rows) host[rowsAt + at++] = r;
      k++;
    }
    host[1 + u] = at;
    this.rt.dispatch(embeddingBwdKernel(), [dtable, dout], [], [D], [Math.ceil(D / 64), u, 1], host.subarray(0, rowsAt + at));
  }

  // ---------------------------------------------------------------------------------- loss

  /** Per-row [lse, logit[target]] of `rows` rows (the gradient written over the logits when gradScale ≠ 0). */
  private lossRows(logits: GpuTensor, targets: Int32Array, rows: number, V: number, zLoss: number, gradScale: number,
    rowScale?: Float32Array): Promise<Float32Array> {
    if (targets.length < rows) throw new OpenELMError('usage', `${targets.length} targets for ${rows} rows`);
    for (let r = 0; r < rows; r++) {
      const t = targets[r];
      if (!(Number.isInteger(t) && t >= 0 && t < V)) {
        throw new OpenELMError('usage', `target id ${t} is outside the vocabulary [0, ${V}) and is not the ignore index`);
      }
    }
    if (rows === 0) return Promise.resolve(new Float32Array(0));
    const grad = gradScale !== 0;
    const host = new Int32Array(grad ? 2 * rows : rows);
    host.set(targets.subarray(0, rows));
    if (grad) {
      const gs = new Float32Array(rows);
      for (let r = 0; r < rows; r++) gs[r] = rowScale ? gradScale * rowScale[r] : gradScale;
      host.set(new Int32Array(gs.buffer), rows);
    }
    const stats = this.rt.alloc(2 * rows);
    this.rt.dispatch(crossEntropyKernel(grad, rowThreads(V)), [stats, logits], [], [rows, V, zLoss], grid(rows), host);
    const out = this.rt.read(stats);
    // the read's copy is recorded: the buffer can go back to the pool (its reuse clears it later)
    this.rt.free(stats);
    return out;
  }

  async crossEntropy(logits: GpuTensor, targets: Int32Array, rows: number, V: number, zLoss: number, gradScale: number,
    rowScale?: Float32Array): Promise<LossSums> {
    const s = await this.lossRows(logits, targets, rows, V, zLoss, gradScale, rowScale);
    let ceSum = 0, lseSqSum = 0;
    for (let r = 0; r < rows; r++) {
      const lse = s[2 * r];
      ceSum += lse - s[2 * r + 1];
      lseSqSum += lse * lse;
    }
    return { ceSum, lseSqSum };
  }

  async rowLogprobs(logits: GpuTensor, targets: Int32Array, rows: number, V: number): Promise<Float64Array> {
    return Float64Array.from(await this.lossRows(logits, targets, rows, V, 0, 0));
  }

  // ---------------------------------------------------------------------------------- optimizer

  /** The per-block partial sums of x² (blocks of SQ_BLOCK from x's start), read back. */
  private sumSquaresPartials(x: GpuTensor): Promise<Float32Array> {
    const n = x.length, blocks = Math.ceil(n / SQ_BLOCK);
    if (blocks === 0) return Promise.resolve(new Float32Array(0));
    const part = this.rt.alloc(blocks);
    this.rt.dispatch(sumSquaresKernel(), [part, x], [], [n, blocks], grid(blocks));
    const got = this.rt.read(part);
    this.rt.free(part);
    return got;
  }

  /** Σ x² over the concatenation of xs, as one tensor holding them would give it (block-sums.ts). */
  sumSquares(xs: readonly GpuTensor[]): Promise<number> {
    return blockedSumSquares(xs, (x) => x.length, SQ_BLOCK, (x, o, n) => this.sumSquaresPartials(this.rt.view(x, o, n)), async (pieces, n) => {
      const tmp = this.rt.alloc(n);
      let at = 0;
      for (const p of pieces) { this.rt.copy(this.rt.view(tmp, at, p.n), this.rt.view(p.t, p.offset, p.n), p.n); at += p.n; }
      const got = this.sumSquaresPartials(tmp);
      this.rt.free(tmp);
      return (await got)[0];
    });
  }

  scale(x: GpuTensor, coef: number): void {
    const hi = Math.fround(coef), lo = Math.fround(coef - hi);
    this.rt.dispatch(scale2Kernel(), [x], [], [x.length, hi, lo], grid(ewGroups(x.length)));
  }

  adamw(p: GpuTensor, g: GpuTensor, m: GpuTensor, v: GpuTensor, n: number, s: AdamWStep): void {
    this.rt.dispatch(adamwKernel(), [p, g, m, v], [], [n, s.b1, 1 - s.b1, s.b2, 1 - s.b2, s.stepSize, s.bc2Sqrt, s.eps, 1 - s.keep],
      grid(ewGroups(n)));
  }

  dispose(): void {
    for (const t of this.scratch.values()) this.rt.free(t);
    this.scratch.clear();
  }
}

function checkGroups(Q: number, Hkv: number): number {
  if (Q % Hkv !== 0) throw new OpenELMError('usage', `attention: ${Q} query heads are not a multiple of ${Hkv} kv heads`);
  return Q / Hkv;
}
