// The reference backend: the plain-JS kernels of reference.ts on ordinary typed arrays, one thread.
// It is the oracle the fast backends are tested against and the fallback that runs anywhere. With
// precision 'f64' its tensors are Float64Arrays and nothing rounds to f32 on the way (the
// finite-difference checks of the training backward use that).

import type { AdamWStep, Backend, LossSums, MatmulLayout, MatmulPrecision, RopeTables, Tensor, Weight, WeightDType } from '../backend.js';
import { OpenELMError } from '../../core/errors.js';
import { allocWeightStorage, weightStorageBytes } from '../weight-format.js';
import * as ref from './reference.js';
import { tensorList } from '../block-sums.js';
import type { FloatArray } from './reference.js';

export interface JsBackendOptions {
  /** Storage of tensors (default f32). f64 exists for the finite-difference tests. */
  precision?: 'f32' | 'f64';
}

const arr = (t: Tensor): FloatArray => t as unknown as FloatArray;
const opt = (t: Tensor | null): FloatArray | null => (t ? arr(t) : null);

export class JsBackend implements Backend {
  readonly name = 'js';
  readonly threads = 1;
  readonly device = 'cpu' as const;
  readonly library = null;
  readonly precision: 'f32' | 'f64';
  private readonly gemm = new ref.JsGemm();
  private bytes = 0;

  constructor(opts: JsBackendOptions = {}) {
    this.precision = opts.precision ?? 'f32';
  }

  describe(): string { return this.precision === 'f64' ? 'js (float64 reference)' : 'js (reference)'; }

  // ---------------------------------------------------------------------------------------- memory

  alloc(n: number, kind: 'data' | 'stats' = 'data'): Tensor {
    if (!(Number.isInteger(n) && n >= 0)) throw new OpenELMError('usage', `cannot allocate ${n} values`);
    // statistics (rstd, lse) are kept in f64, as the float64 path needs
    const a = kind === 'stats' || this.precision === 'f64' ? new Float64Array(n) : new Float32Array(n);
    this.bytes += a.byteLength;
    return a as unknown as Tensor;
  }
  free(t: Tensor): void { this.bytes -= arr(t).byteLength; }
  view(t: Tensor, offset: number, n: number): Tensor {
    const a = arr(t);
    if (!(offset >= 0 && n >= 0 && offset + n <= a.length)) throw new OpenELMError('usage', `view [${offset}, ${offset + n}) is outside a tensor of ${a.length} values`);
    return a.subarray(offset, offset + n) as unknown as Tensor;
  }
  write(dst: Tensor, src: ArrayLike<number>, dstOffset = 0): void { arr(dst).set(src, dstOffset); }
  read(t: Tensor, offset = 0, n?: number): Promise<Float32Array> {
    const a = arr(t);
    return Promise.resolve(Float32Array.from(a.subarray(offset, n === undefined ? a.length : offset + n)));
  }
  copy(dst: Tensor, src: Tensor, n: number): void { arr(dst).set(arr(src).subarray(0, n)); }
  fill(dst: Tensor, value: number): void { arr(dst).fill(value); }
  gatherRows(dst: Tensor, src: Tensor, rows: Int32Array, width: number): void { ref.gatherRows(arr(dst), arr(src), rows, width); }
  scatterRows(dst: Tensor, src: Tensor, rows: Int32Array, width: number): void { ref.scatterRows(arr(dst), arr(src), rows, width); }
  memory(): { inUse: number; reserved: number; limit: number } { return { inUse: this.bytes, reserved: this.bytes, limit: Infinity }; }
  maxTensorValues(): number { return Infinity; }
  sync(): Promise<void> { return Promise.resolve(); }
  dispose(): void { this.gemm.release(); }

  // --------------------------------------------------------------------------------------- weights

  allocWeight(dtype: WeightDType, rows: number, cols: number): Weight {
    const w = allocWeightStorage(dtype, rows, cols);
    this.bytes += weightStorageBytes(w);
    return w;
  }
  prepareWeight(): void { /* nothing to repack */ }
  tensorWeight(t: Tensor, rows: number, cols: number): Weight {
    // an f64 tensor stays f64: the reference kernels read `data` through FloatArray
    return { dtype: 'f32', rows, cols, data: arr(t) as Float32Array };
  }
  freeWeight(w: Weight): void {
    if (w.parts) { for (const p of w.parts) this.freeWeight(p); return; }
    if (w.data.buffer.byteLength) this.bytes -= weightStorageBytes(w);
    w.data = new Float32Array(0);
  }

  private get roundMid(): boolean { return this.precision === 'f32'; }

  // ----------------------------------------------------------------------------------- forward ops

  linear(out: Tensor, x: Tensor, w: Weight, M: number, accumulate = false): void { ref.linear(arr(out), arr(x), w, M, accumulate); }
  rmsnorm(out: Tensor, x: Tensor, w: Tensor, rows: number, dim: number, eps: number, rstd?: Tensor): void {
    ref.rmsnormForward(arr(out), rstd ? arr(rstd) : null, arr(x), arr(w), rows, dim, eps, this.roundMid);
  }
  qkNormRope(qkv: Tensor, rows: number, pos: Int32Array, Q: number, Hkv: number, hd: number,
    qNorm: Tensor | null, kNorm: Tensor | null, rope: RopeTables, eps: number, rstd?: Tensor): void {
    checkPositions(pos, rows, rope);
    ref.qkNormRopeForward(arr(qkv), rstd ? arr(rstd) : null, rows, pos, Q, Hkv, hd, opt(qNorm), opt(kNorm), arr(rope.cos), arr(rope.sin), eps, this.roundMid);
  }
  storeKV(kCache: Tensor, vCache: Tensor, qkv: Tensor, S: number, P: number, Q: number, Hkv: number, hd: number, cap: number): void {
    ref.storeKV(arr(kCache), arr(vCache), arr(qkv), S, P, Q, Hkv, hd, cap);
  }
  attention(out: Tensor, qkv: Tensor, kCache: Tensor, vCache: Tensor, S: number, P: number, Q: number, Hkv: number, hd: number, cap: number): void {
    ref.attention(arr(out), arr(qkv), arr(kCache), arr(vCache), S, P, Q, Hkv, hd, cap);
  }
  swiglu(out: Tensor, u: Tensor, rows: number, F: number): void { ref.swigluForward(arr(out), arr(u), rows, F); }
  silu(out: Tensor, u: Tensor, n: number): void { ref.siluForward(arr(out), arr(u), n); }
  add(x: Tensor, y: Tensor, n: number): void { ref.add(arr(x), arr(y), n); }
  embedding(out: Tensor, table: Weight, ids: Int32Array, skipId?: number): void { ref.embedding(arr(out), table, ids, skipId); }
  argmax(x: Tensor, rows: number, V: number): Promise<Int32Array> { return Promise.resolve(ref.argmax(arr(x), rows, V)); }

  // ---------------------------------------------------------------------------------- training ops

  matmul(C: Tensor, A: Tensor, B: Tensor, M: number, N: number, K: number, layout: MatmulLayout, accumulate: boolean, precision?: MatmulPrecision): void {
    ref.matmul(this.gemm, arr(C), arr(A), arr(B), M, N, K, layout, accumulate, precision);
  }
  causalAttention(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, Q: number, Hkv: number, hd: number): void {
    checkGroups(Q, Hkv);
    ref.attentionForward(arr(out), arr(lse), arr(qkv), B, T, Q, Hkv, hd);
  }
  causalAttentionBackward(dqkv: Tensor, dout: Tensor, qkv: Tensor, _out: Tensor, lse: Tensor, B: number, T: number, Q: number, Hkv: number, hd: number): void {
    checkGroups(Q, Hkv);
    ref.attentionBackward(arr(dqkv), arr(dout), arr(qkv), arr(lse), B, T, Q, Hkv, hd);
  }
  rmsnormBackward(dx: Tensor, dw: Tensor, dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, rows: number, dim: number): void {
    ref.rmsnormBackward(arr(dx), arr(dw), arr(dy), arr(x), arr(w), arr(rstd), rows, dim);
  }
  qkNormRopeBackward(dqkv: Tensor, dqNorm: Tensor | null, dkNorm: Tensor | null, raw: Tensor, rstd: Tensor, rows: number,
    pos: Int32Array, Q: number, Hkv: number, hd: number, qNorm: Tensor | null, kNorm: Tensor | null, rope: RopeTables): void {
    checkPositions(pos, rows, rope);
    ref.qkNormRopeBackward(arr(dqkv), opt(dqNorm), opt(dkNorm), arr(raw), arr(rstd), rows, pos, Q, Hkv, hd, opt(qNorm), opt(kNorm), arr(rope.cos), arr(rope.sin));
  }
  swigluBackward(du: Tensor, dg: Tensor, u: Tensor, rows: number, F: number): void { ref.swigluBackward(arr(du), arr(dg), arr(u), rows, F); }
  siluBackward(du: Tensor, dg: Tensor, u: Tensor, n: number): void { ref.siluBackward(arr(du), arr(dg), arr(u), n); }
  embeddingBackward(dtable: Tensor, dout: Tensor, ids: Int32Array, D: number, skipId: number): void {
    ref.embeddingBackward(arr(dtable), arr(dout), ids, D, skipId);
  }
  crossEntropy(logits: Tensor, targets: Int32Array, rows: number, V: number, zLoss: number, gradScale: number, rowScale?: Float32Array): Promise<LossSums> {
    return Promise.resolve(ref.crossEntropyRows(arr(logits), targets, rows, V, zLoss, gradScale, rowScale));
  }
  rowLogprobs(logits: Tensor, targets: Int32Array, rows: number, V: number): Promise<Float64Array> {
    return Promise.resolve(ref.rowLogprobs(arr(logits), targets, rows, V));
  }
  sumSquares(x: Tensor | readonly Tensor[]): Promise<number> {
    // one running sum in index order: over a concatenation it is the same sum
    let s = 0;
    for (const t of tensorList(x)) s = ref.sumSquares(arr(t), s);
    return Promise.resolve(s);
  }
  scale(x: Tensor, coef: number): void { ref.scale(arr(x), coef); }
  adamw(p: Tensor, g: Tensor, m: Tensor, v: Tensor, n: number, s: AdamWStep): void { ref.adamw(arr(p), arr(g), arr(m), arr(v), n, s); }

  // ---------------------------------------------------------------------------------- adapter ops

  linearT(out: Tensor, dy: Tensor, w: Weight, M: number, accumulate = false): void { ref.linearT(this.gemm, arr(out), arr(dy), w, M, accumulate); }
  mulColumns(out: Tensor, x: Tensor, s: Tensor, rows: number, cols: number, accumulate = false): void {
    ref.mulColumns(arr(out), arr(x), arr(s), rows, cols, accumulate);
  }
  columnDot(out: Tensor, a: Tensor, b: Tensor, rows: number, cols: number, accumulate = false): void {
    ref.columnDot(arr(out), arr(a), arr(b), rows, cols, accumulate);
  }
  dropoutMask(out: Tensor, n: number, p: number, seed: number, complement: boolean): void {
    checkDropout(p, n, arr(out).length);
    ref.dropoutMask(arr(out), n, p, seed, complement);
  }
  doraScale(c: Tensor, invN: Tensor, m: Tensor, base2: Tensor, q: Tensor, n: number, coef: number): void {
    ref.doraScale(arr(c), arr(invN), arr(m), arr(base2), arr(q), n, coef);
  }
}

/** Every position must have a row in the RoPE tables. */
export function checkPositions(pos: Int32Array, rows: number, rope: RopeTables): void {
  if (pos.length < rows) throw new OpenELMError('usage', `qkNormRope got ${pos.length} positions for ${rows} rows`);
  for (let r = 0; r < rows; r++) {
    const p = pos[r];
    if (!(p >= 0 && p < rope.positions)) throw new OpenELMError('usage', `position ${p} is outside the RoPE tables (${rope.positions} positions)`);
  }
}

export function checkGroups(Q: number, Hkv: number): void {
  if (Q % Hkv !== 0) throw new OpenELMError('usage', `attention: ${Q} query heads are not a multiple of ${Hkv} kv heads`);
}

export function checkDropout(p: number, n: number, length: number): void {
  if (!(p >= 0 && p < 1)) throw new OpenELMError('usage', `dropout probability must be in [0, 1), got ${p}`);
  if (n > length) throw new OpenELMError('usage', `dropout mask of ${n} values does not fit a tensor of ${length}`);
}
