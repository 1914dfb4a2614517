// The inference ops of the backend seam on the WebGPU runtime: each records one or two kernel
// dispatches (nothing runs until a read), with the semantics of the JS reference backend.

import { OpenELMError } from '../../core/errors.js';
import type { GpuRuntime, GpuTensor, GpuWeight } from './runtime.js';
import { UNIT_ELEMS } from './weights-wgsl.js';
import { grid } from './kernel.js';
import {
  addKernel, copyKernel, ewGroups, fillKernel, gatherRowsKernel, scaleKernel, scatterRowsKernel, siluKernel, swigluKernel,
} from './kernels/elementwise.js';
import { DIRECT_MAX_WORK, GEMV_MAX_M, gemvGroups, gemvKernel, matmulDirectKernel, matmulGroups, matmulKernel, type HalfTiles } from './kernels/linear.js';
import { normThreads, qkNormRopeGroups, qkNormRopeKernel, rmsnormKernel } from './kernels/norm.js';
import { ATTN_CHUNK, attnCombineKernel, attnFlashKernel, attnSplitKernel, flashTiles, storeKVKernel } from './kernels/attention.js';
import { argmaxKernel, embeddingKernel } from './kernels/lookup.js';
import { rowThreads } from './kernels/loss.js';

export interface RopeTensors { cos: GpuTensor; sin: GpuTensor; positions: number; half: number; }

/** Verification rows of speculative decoding (src/generate/speculative.ts MAX_VERIFY_ROWS). */
export const SPLIT_MAX_QUERIES = 8;

export interface OpsOptions {
  /** Use subgroup operations where the device has them (default true). */
  subgroups?: boolean;
  /**
   * Largest number of new tokens that uses the split-key ("flash-decoding") attention (default 8:
   * its rows equal one-row calls, which speculative decoding's verification of up to 8 rows needs).
   */
  splitMaxQueries?: number;
  /**
   * Half-precision tiles in the prefill matmul of f16 weights: 'auto' (default) when the device
   * has shader-f16, 'off', or 'emulate' (the same kernel in f32, to test it without shader-f16).
   */
  half?: 'auto' | 'off' | 'emulate';
}

export class WebGpuOps {
  readonly sg: boolean;
  /** Tiles of the f16-weight prefill matmul (null: f32 like every other format). */
  readonly half: HalfTiles | null;
  splitMaxQueries: number;
  private scratch: GpuTensor | null = null;
  private ids: GpuTensor | null = null;
  private readonly wgMem: number;

  constructor(readonly rt: GpuRuntime, opts: OpsOptions = {}) {
    this.sg = (opts.subgroups ?? true) && rt.features.subgroups;
    this.splitMaxQueries = opts.splitMaxQueries ?? SPLIT_MAX_QUERIES;
    const half = opts.half ?? 'auto';
    this.half = half === 'emulate' ? 'f32' : half === 'auto' && rt.features.f16 ? 'f16' : null;
    this.wgMem = rt.device.limits.maxComputeWorkgroupStorageSize;
  }

  /** A tensor of at least n values reused across calls (attention partials). */
  private scratchOf(n: number): GpuTensor {
    if (!this.scratch || this.scratch.length < n) {
      if (this.scratch) this.rt.free(this.scratch);
      this.scratch = this.rt.alloc(Math.max(n, 1024));
    }
    return this.scratch;
  }

  // ---------------------------------------------------------------------------------------------
  // memory helpers that need a kernel

  fill(x: GpuTensor, value: number): void {
    if (value === 0 && !Object.is(value, -0)) { this.rt.zero(x); return; }
    this.rt.dispatch(fillKernel(), [x], [], [x.length, value], grid(ewGroups(x.length)));
  }

  copy(dst: GpuTensor, src: GpuTensor, n: number): void {
    if (dst.buf !== src.buf) { this.rt.copy(dst, src, n); return; }
    if (dst.offset < src.offset + n && src.offset < dst.offset + n && dst.offset !== src.offset) {
      throw new Error('copy between overlapping ranges');
    }
    if (dst.offset === src.offset) return;
    this.rt.dispatch(copyKernel(), [dst, src], [], [n], grid(ewGroups(n)));
  }

  gatherRows(dst: GpuTensor, src: GpuTensor, rows: Int32Array, width: number): void {
    const n = rows.length * width;
    this.rt.dispatch(gatherRowsKernel(), [dst, src], [], [n, width], grid(ewGroups(n)), rows);
  }

  scatterRows(dst: GpuTensor, src: GpuTensor, rows: Int32Array, width: number): void {
    const n = rows.length * width;
    this.rt.dispatch(scatterRowsKernel(), [dst, src], [], [n, width], grid(ewGroups(n)), rows);
  }

  // ---------------------------------------------------------------------------------------------
  // forward ops

  /** out[M, N] (+)= x[M, K] · Wᵀ. */
  linear(out: GpuTensor, x: GpuTensor, w: GpuWeight, M: number, accumulate = false): void {
    const N = w.rows, K = w.cols;
    if (M <= GEMV_MAX_M) {
      const vec = K % UNIT_ELEMS[w.dtype] === 0 && w.offset % 4 === 0;
      this.rt.dispatch(gemvKernel(w.dtype, M, vec, this.sg), [out, x], [w], [N, K, accumulate ? 1 : 0], grid(gemvGroups(N)));
    } else {
      // f16 weights may take half-precision tiles (products of f16 values, sums in f32): the
      // weights are half precision already, and the tiles halve workgroup memory traffic.
      const half = w.dtype === 'f16' ? this.half ?? undefined : undefined;
      const direct = !half && M * N * K <= DIRECT_MAX_WORK;
      this.rt.dispatch(direct ? matmulDirectKernel('mk', { weight: w.dtype }) : matmulKernel('mk', { weight: w.dtype }, half), [out, x], [w],
        [M, N, K, accumulate ? 1 : 0], direct ? grid(Math.ceil((M * N) / 64)) : matmulGroups(M, N));
    }
  }

  /** out[M, K] (+)= dy[M, N] · W for a weight W [N, K] in any format (the input gradient of linear). */
  linearT(out: GpuTensor, dy: GpuTensor, w: GpuWeight, M: number, accumulate = false): void {
    const N = w.rows, K = w.cols, b = { weightT: w.dtype } as const;
    const direct = M * N * K <= DIRECT_MAX_WORK;
    // in the matmul's terms: C[M, K] with the sum over N
    this.rt.dispatch(direct ? matmulDirectKernel('mk', b) : matmulKernel('mk', b), [out, dy], [w], [M, K, N, accumulate ? 1 : 0],
      direct ? grid(Math.ceil((M * K) / 64)) : matmulGroups(M, K));
  }

  /** C[M, N] (+)= op(A) · op(B) of f32 tensors: nt = A·Bᵀ, nn = A·B, tn = Aᵀ·B. */
  matmul(C: GpuTensor, A: GpuTensor, B: GpuTensor, M: number, N: number, K: number, layout: 'nt' | 'nn' | 'tn', acc: boolean, bf16 = false): void {
    const a = layout === 'tn' ? 'km' : 'mk', b = { tensor: layout === 'nt' ? 'nk' : 'kn' } as const;
    const direct = M * N * K <= DIRECT_MAX_WORK;
    this.rt.dispatch(direct ? matmulDirectKernel(a, b, bf16) : matmulKernel(a, b, undefined, bf16), [C, A, B], [], [M, N, K, acc ? 1 : 0],
      direct ? grid(Math.ceil((M * N) / 64)) : matmulGroups(M, N));
  }

  rmsnorm(out: GpuTensor, x: GpuTensor, w: GpuTensor, rows: number, dim: number, eps: number, rstd?: GpuTensor): void {
    this.rt.dispatch(rmsnormKernel(!!rstd, this.sg, normThreads(dim)), rstd ? [out, x, w, rstd] : [out, x, w], [], [rows, dim, eps], grid(rows));
  }

  qkNormRope(qkv: GpuTensor, rows: number, pos: Int32Array, Q: number, Hkv: number, hd: number,
    qNorm: GpuTensor | null, kNorm: GpuTensor | null, rope: RopeTensors, eps: number, rstd?: GpuTensor): void {
    if ((qNorm === null) !== (kNorm === null)) throw new Error('qkNormRope needs both norm weights or neither');
    if (hd > 512) throw new OpenELMError('usage', `the webgpu backend supports head dims up to 512, not ${hd}`);
    this.checkPositions(pos, rows, rope);
    const norms = qNorm !== null;
    const tensors = [qkv, rope.cos, rope.sin];
    if (norms) tensors.push(qNorm!, kNorm!);
    if (rstd) tensors.push(rstd);
    this.rt.dispatch(qkNormRopeKernel(norms, !!rstd, this.sg), tensors, [], [rows, Q, Hkv, hd, eps],
      qkNormRopeGroups(Q + Hkv, rows), pos.subarray(0, rows));
  }

  /** Every row's position must have a row in the RoPE tables. */
  checkPositions(pos: Int32Array, rows: number, rope: RopeTensors): void {
    if (pos.length < rows) throw new OpenELMError('usage', `qkNormRope got ${pos.length} positions for ${rows} rows`);
    for (let r = 0; r < rows; r++) {
      const p = pos[r];
      if (!(p >= 0 && p < rope.positions)) throw new OpenELMError('usage', `position ${p} is outside the RoPE tables (${rope.positions} positions)`);
    }
  }

  storeKV(k: GpuTensor, v: GpuTensor, qkv: GpuTensor, S: number, P: number, Q: number, Hkv: number, hd: number, cap: number): void {
    if (P + S > cap) throw new OpenELMError('context', `${P + S} tokens do not fit a KV cache of ${cap}`);
    this.rt.dispatch(storeKVKernel(), [k, v, qkv], [], [S, P, Q, Hkv, hd, cap], [Hkv, S, 1]);
  }

  attention(out: GpuTensor, qkv: GpuTensor, k: GpuTensor, v: GpuTensor, S: number, P: number, Q: number, Hkv: number, hd: number, cap: number): void {
    const G = Q / Hkv, scale = 1 / Math.sqrt(hd);
    if (S <= this.splitMaxQueries) {
      const nsplit = Math.ceil((P + S) / ATTN_CHUNK);
      const part = nsplit === 1 ? out : this.scratchOf(S * Q * nsplit * (hd + 2));
      this.rt.dispatch(attnSplitKernel(G, hd), [out, qkv, k, v, part], [],
        [P, Q, Hkv, cap, nsplit, scale], [nsplit, Hkv, S]);
      if (nsplit > 1) this.rt.dispatch(attnCombineKernel(hd), [out, part], [], [P, Q, nsplit], [Q, S, 1]);
    } else {
      const { bq, bk } = flashTiles(hd, this.wgMem);
      this.rt.dispatch(attnFlashKernel(G, hd, bq, bk), [out, qkv, k, v], [], [S, P, Q, Hkv, cap, scale],
        [Math.ceil((S * G) / bq), Hkv, 1]);
    }
  }

  swiglu(out: GpuTensor, u: GpuTensor, rows: number, F: number): void {
    const n = rows * F;
    // out over u (allowed by the Backend contract): invocations run in no set order, so a row
    // could overwrite u values another has not read yet; go through a temporary tensor instead
    // (back to the buffer pool at once: later commands on the queue run after this one)
    const overlaps = out.buf === u.buf && out.offset < u.offset + 2 * n && u.offset < out.offset + n;
    const dst = overlaps ? this.rt.alloc(n) : out;
    this.rt.dispatch(swigluKernel(), [dst, u], [], [n, F], grid(ewGroups(n)));
    if (overlaps) { this.copy(out, dst, n); this.rt.free(dst); }
  }

  silu(out: GpuTensor, u: GpuTensor, n: number): void {
    this.rt.dispatch(siluKernel(), [out, u], [], [n], grid(ewGroups(n)));
  }

  /** x += y over n values. */
  add(x: GpuTensor, y: GpuTensor, n: number): void {
    this.rt.dispatch(addKernel(), [x, y], [], [n], grid(ewGroups(n)));
  }

  scale(x: GpuTensor, c: number): void {
    this.rt.dispatch(scaleKernel(), [x], [], [x.length, c], grid(ewGroups(x.length)));
  }

  /** out[r] = table row ids[r]; ids equal to skipId give a zero row. */
  embedding(out: GpuTensor, table: GpuWeight, ids: Int32Array, skipId = -1): void {
    const V = table.rows;
    for (const id of ids) {
      if (id !== skipId && !(id >= 0 && id < V)) throw new OpenELMError('usage', `token id ${id} is outside the vocabulary [0, ${V})`);
    }
    const n = ids.length * table.cols;
    this.rt.dispatch(embeddingKernel(table.dtype), [out], [table], [n, table.cols, skipId], grid(ewGroups(n)), ids);
  }

  /** The index of the first maximum of each row; reads back 4 bytes per row. */
  async argmax(logits: GpuTensor, rows: number, V: number): Promise<Int32Array> {
    if (!this.ids || this.ids.length < rows) {
      if (this.ids) this.rt.free(this.ids);
      this.ids = this.rt.alloc(Math.max(rows, 16));
    }
    this.rt.dispatch(argmaxKernel(this.sg, rowThreads(V)), [this.ids, logits], [], [rows, V], grid(rows));
    return new Int32Array(await this.rt.readWords(this.ids, 0, rows));
  }

  dispose(): void {
    if (this.scratch) this.rt.free(this.scratch);
    if (this.ids) this.rt.free(this.ids);
    this.scratch = this.ids = null;
  }
}
