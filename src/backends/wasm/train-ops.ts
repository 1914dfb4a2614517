// The training kernels' driver: a GEMM with the three layouts backprop needs (no transposes in JS),
// every forward-with-saves / backward op, the cross-entropy, AdamW and the gradient norm, all on
// tensors in the WASM backend's shared memory and threads, so a training step copies nothing between
// JavaScript and WebAssembly. The kernels are kernels/train_*.as, reached through one pool entry
// point (k_train, operation code in slot 0); WasmBackend's training methods call these.
//
// Determinism: each kernel writes every output element from exactly one work item, and sums over
// rows go through fixed-size blocks reduced in order, so results are bit-identical whatever the
// thread count (and hence across `--resume` with another `threads`).

import { OpenELMError } from '../../core/errors.js';
import { roundToBf16 } from '../../core/dtype.js';
import type { AdamWStep, LossSums } from '../backend.js';
import type { WasmBackend } from './wasm-backend.js';
import { dropoutThreshold, dropoutValues, lowbias32 } from '../dropout.js';

// Operation codes and constants of src/backends/wasm/kernels/train_ops.as / train_gemm.as
// (TOUCH and SCATTER serve wasm-backend.ts's loading, not training).
export const OP = {
  GEMM: 1, RMS_FWD: 2, RMS_BWD: 3, REDUCE: 4, QKROPE_FWD: 5, QKROPE_BWD: 6, ATTN_FWD: 7, ATTN_BWD: 8,
  SWIGLU_FWD: 9, SWIGLU_BWD: 10, SILU_FWD: 11, SILU_BWD: 12, EMBED_FWD: 13, EMBED_BWD: 14, CE: 15,
  ADAMW: 17, SUMSQ: 18, SCALE: 19, FILL: 20, COPY: 21, MULCOLS: 22, COLDOT: 23, DROPMASK: 24, DORASCALE: 25,
  TOUCH: 26, SCATTER: 27,
} as const;
const TMT = 240, TNT = 256;          // GEMM tile (rows, columns)
const RB = 16;                       // rows per partial-sum block
const ABR = 48;                      // attention query block
export const SUMSQ_BLOCK = 65536;

/**
 * Tile sizes for an M×N product on `threads` threads: the largest (up to 240×256) that still give
 * every thread a few tiles to claim, so one slow thread does not hold the others up. Results do
 * not depend on the tiles (train_gemm.as), so this may depend on the thread count.
 */
function tileSizes(M: number, N: number, threads: number): [number, number] {
  // equal tiles (no thin remainder tile that packs a whole B block for a few rows)
  const even = (n: number, max: number, unit: number): number => {
    const parts = Math.ceil(n / max);
    return Math.min(max, Math.ceil(n / parts / unit) * unit);
  };
  let pm = Math.ceil(M / TMT), pn = Math.ceil(N / TNT);
  const want = 3 * threads;
  // more, smaller tiles until every thread has a few to claim (not below ~96×128)
  while (pm * pn < want && (M / (pm + 1) >= 96 || N / (pn + 1) >= 128)) {
    if (M / (pm + 1) >= 96 && (M / pm >= N / pn || N / (pn + 1) < 128)) pm++; else pn++;
  }
  return [even(M, Math.ceil(M / pm / 6) * 6, 6), even(N, Math.ceil(N / pn / 8) * 8, 8)];
}

/** Chunks per thread for element-wise kernels (dynamic claiming absorbs a descheduled thread). */
const CHUNKS_PER_THREAD = 4;

type Args = { i32: Int32Array; f32: Float32Array; f64: Float64Array };
type FloatArray = Float32Array;

/** Grow-only scratch buffers in each wasm memory, one per name. */
class Scratch {
  private bufs = new Map<string, Float32Array>();
  constructor(private readonly be: WasmBackend) {}
  /** Byte offset in shard `shard` of at least `bytes` bytes (contents undefined). */
  get(shard: number, name: string, bytes: number): number {
    const key = `${shard}:${name}`;
    const n = Math.max(16, Math.ceil(bytes / 4));
    let b = this.bufs.get(key);
    if (!b || b.length < n) {
      if (b) this.be.freeF32(b);
      b = this.be.allocF32In(shard, Math.ceil(n * 1.25));
      this.bufs.set(key, b);
    }
    return b.byteOffset;
  }
  view(shard: number, name: string): Float32Array { return this.bufs.get(`${shard}:${name}`)!; }
}

/**
 * All training kernels on one WasmBackend. Tensors should come from its alloc() (the backend's
 * memory); others are staged through scratch and copied back, which is correct but slow.
 */
export class WasmTrainOps {
  private readonly scratch: Scratch;
  /** The memory the current op runs in (its largest operand's; see use()). */
  private shard = 0;
  private stageIdx = 0;
  private copyBack: { dst: Float32Array; src: Float32Array }[] = [];
  private readonly gemmScratch: number;

  constructor(readonly backend: WasmBackend) {
    this.scratch = new Scratch(backend);
    this.gemmScratch = backend.exports.trainScratchBytes();
  }

  get threads(): number { return this.backend.threads; }

  // ------------------------------------------------------------------------------------ plumbing

  /** Chunks for `work` units of work over `items` independent items. */
  chunks(work: number, items: number): number {
    if (this.backend.threads === 1 || work < this.backend.parallelThreshold) return 1;
    return Math.max(1, Math.min(items, this.backend.threads * CHUNKS_PER_THREAD));
  }

  private f32(x: FloatArray, what: string): Float32Array {
    if (!(x instanceof Float32Array)) throw new OpenELMError('usage', `the wasm training kernels take float32 buffers (${what})`);
    return x;
  }

  /** Run the next op in the memory of its largest operand that lives in one (others are staged in). */
  private use(...operands: (FloatArray | null)[]): void {
    let best = -1, shard = 0;
    for (const v of operands) {
      if (!(v instanceof Float32Array) || v.length <= best) continue;
      const s = this.backend.shardOf(v);
      if (s) { best = v.length; shard = s.index; }
    }
    this.shard = shard;
  }

  private here(v: Float32Array): boolean { return this.backend.shardOf(v)?.index === this.shard; }

  /** Offset of a read-only operand; staged (copied in) when it is not in the op's memory. */
  inp(x: FloatArray, n: number, what: string): number {
    const v = this.f32(x, what);
    if (v.length < n) throw new OpenELMError('usage', `${what} has ${v.length} values, needs ${n}`);
    if (this.here(v)) return v.byteOffset;
    const st = this.stage(n);
    st.set(v.length === n ? v : v.subarray(0, n));
    return st.byteOffset;
  }

  /** Offset of an output operand; staged, and copied back after the call, when not in the op's memory. */
  out(x: FloatArray, n: number, what: string, copyIn: boolean): number {
    const v = this.f32(x, what);
    if (v.length < n) throw new OpenELMError('usage', `${what} has ${v.length} values, needs ${n}`);
    if (this.here(v)) return v.byteOffset;
    const st = this.stage(n);
    if (copyIn) st.set(v.length === n ? v : v.subarray(0, n));
    this.copyBack.push({ dst: v, src: st });
    return st.byteOffset;
  }

  /** Int32 ids copied into the wasm memory for one call. */
  ids(a: Int32Array): number {
    const st = this.stage(a.length);
    new Int32Array(st.buffer, st.byteOffset, a.length).set(a);
    return st.byteOffset;
  }

  // Operands from outside the wasm memory: the i-th staged operand of a call uses scratch buffer i.
  private stage(n: number): Float32Array {
    const name = `stage${this.stageIdx++}`;
    this.scratch.get(this.shard, name, n * 4);
    return this.scratch.view(this.shard, name).subarray(0, n);
  }

  /** Run op with the slots `set` writes, then copy staged outputs back. */
  run(op: number, chunks: number, set: (a: Args) => void): void {
    this.stageIdx = 0;
    this.copyBack = [];
    const a = this.backend.kernelArgs(this.shard);
    set(a);
    a.i32[0] = op;
    this.backend.runKernel(this.shard, 'k_train', chunks);
    for (const c of this.copyBack) c.dst.set(c.src);
    this.copyBack = [];
  }

  private threadScratch(bytes: number): { offset: number; stride: number } { return this.backend.threadScratch(this.shard, bytes); }

  gemmRun(C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number, acc: boolean,
    ta: number, tb: number, lda: number, ldb: number, name: string, bf16 = false): void {
    this.use(C, A, B);
    if (M <= 0 || N <= 0) return;
    const nat = this.backend.native;
    if (nat && M * N * K >= this.backend.nativeMinWork && C instanceof Float32Array && A instanceof Float32Array && B instanceof Float32Array) {
      if (bf16) {
        const ha = this.backend.heldBf16(A, M * K), hb = this.backend.heldBf16(B, N * K);
        const got = nat.gemmBf16(this.backend.threads, ta === 1, tb === 1, M, N, K, A, lda, B, ldb, C, N, acc, ha || hb ? { a: ha, b: hb } : undefined);
        if (typeof got === 'number') {
          if (ha && got & 1) ha.filled = true;
          if (hb && got & 2) hb.filled = true;
        }
      } else nat.sgemm(this.backend.threads, ta === 1, tb === 1, M, N, K, A, lda, B, ldb, C, N, acc);
      return;
    }
    if (bf16) {
      // no bf16 GEMM here: the f32 kernels on rounded copies (the same products, no speed-up)
      const a = this.rounded(A, M * K, 'bf16 A'), b = this.rounded(B, N * K, 'bf16 B');
      A = a; B = b;
    }
    const sc = this.threadScratch(this.gemmScratch);
    const serial = this.backend.threads === 1 || M * N * K < this.backend.parallelThreshold;
    const [mt, nt] = serial ? [TMT, TNT] : tileSizes(M, N, this.backend.threads);
    const chunks = serial ? 1 : Math.ceil(M / mt) * Math.ceil(N / nt);
    this.run(OP.GEMM, chunks, ({ i32 }) => {
      i32[1] = this.out(C, M * N, `${name} C`, acc);
      i32[2] = this.inp(A, M * K, `${name} A`);
      i32[3] = this.inp(B, N * K, `${name} B`);
      i32[4] = M; i32[5] = N; i32[6] = K; i32[7] = lda; i32[8] = ldb; i32[9] = N;
      i32[10] = ta; i32[11] = tb; i32[12] = acc ? 1 : 0; i32[13] = sc.offset; i32[14] = sc.stride;
      i32[15] = mt; i32[16] = nt;
    });
  }

  /** n values of x rounded to bf16, in a scratch buffer of this op's memory (valid until the next call for `name`). */
  private rounded(x: FloatArray, n: number, name: string): Float32Array {
    const v = this.f32(x, name);
    if (v.length < n) throw new OpenELMError('usage', `${name} has ${v.length} values, needs ${n}`);
    this.scratch.get(this.shard, name, n * 4);
    const dst = this.scratch.view(this.shard, name).subarray(0, n);
    roundToBf16(dst, v, n);
    return dst;
  }

  // ------------------------------------------------------------------------------------ simple ops

  fill0(x: FloatArray): void {
    this.use(x);
    const n = x.length;
    if (n === 0) return;
    this.run(OP.FILL, this.chunks(n, Math.ceil(n / 65536)), ({ i32 }) => { i32[1] = this.out(x, n, 'fill', false); i32[2] = n; });
  }

  copy(dst: FloatArray, src: FloatArray, n: number): void {
    if (n === 0) return;
    this.sliced([dst, src], n, (o, len) => {
      const d = this.f32(dst, 'copy destination').subarray(o, o + len), s = this.f32(src, 'copy source').subarray(o, o + len);
      this.use(d, s);
      this.run(OP.COPY, this.chunks(len, Math.ceil(len / 65536)), ({ i32 }) => {
        i32[1] = this.out(d, len, 'copy destination', false); i32[2] = this.inp(s, len, 'copy source'); i32[3] = len;
      });
    });
  }

  /**
   * Run an element-wise op over [0, n) in slices when its operands live in different memories, so
   * the staged copies of the others stay within the backend's headroom (each element is computed
   * the same way whatever the slicing, so the results are the same bits).
   */
  private sliced(operands: FloatArray[], n: number, run: (offset: number, length: number) => void): void {
    const homes = new Set(operands.map((v) => (v instanceof Float32Array ? this.backend.shardOf(v)?.index ?? -1 : -1)));
    if (homes.size <= 1) { run(0, n); return; }
    const per = Math.max(65536, Math.floor(this.backend.stagingBytes / (8 * (operands.length - 1)) / 65536) * 65536);
    for (let o = 0; o < n; o += per) run(o, Math.min(per, n - o));
  }

  /** Sum of the per-block partials [nb][stride] (columns col0..col0+n) added into dst, blocks in order. */
  private reduce(dst: FloatArray, part: number, nb: number, n: number, stride: number, col0: number): void {
    this.run(OP.REDUCE, this.chunks(nb * n, Math.ceil(n / 64)), ({ i32 }) => {
      i32[1] = this.out(dst, n, 'reduce destination', true); i32[2] = part; i32[3] = nb; i32[4] = n; i32[5] = stride; i32[6] = col0;
    });
  }

  // ------------------------------------------------------------------------------------ norms

  rmsnormForward(out: FloatArray, rstd: FloatArray, x: FloatArray, w: FloatArray, rows: number, dim: number, eps: number): void {
    this.use(out, x);
    this.run(OP.RMS_FWD, this.chunks(rows * dim, rows), ({ i32, f32 }) => {
      i32[1] = this.out(out, rows * dim, 'rmsnorm output', false); i32[2] = this.out(rstd, rows, 'rmsnorm rstd', false);
      i32[3] = this.inp(x, rows * dim, 'rmsnorm input'); i32[4] = this.inp(w, dim, 'rmsnorm weight');
      i32[5] = rows; i32[6] = dim; f32[7] = eps;
    });
  }

  rmsnormBackward(dx: FloatArray, dw: FloatArray, dy: FloatArray, x: FloatArray, w: FloatArray, rstd: FloatArray, rows: number, dim: number): void {
    this.use(dx, dy, x);
    const nb = Math.ceil(rows / RB);
    const part = this.scratch.get(this.shard, 'partials', nb * dim * 4);
    this.run(OP.RMS_BWD, this.chunks(rows * dim * 2, nb), ({ i32 }) => {
      i32[1] = this.out(dx, rows * dim, 'rmsnorm dx', true); i32[2] = part; i32[3] = this.inp(dy, rows * dim, 'rmsnorm dy');
      i32[4] = this.inp(x, rows * dim, 'rmsnorm x'); i32[5] = this.inp(w, dim, 'rmsnorm weight'); i32[6] = this.inp(rstd, rows, 'rmsnorm rstd');
      i32[7] = rows; i32[8] = dim;
    });
    this.reduce(dw, part, nb, dim, dim, 0);
  }

  qkNormRopeForward(qkv: FloatArray, rstd: FloatArray, rows: number, T: number, Q: number, Hkv: number, hd: number,
    qNorm: FloatArray | null, kNorm: FloatArray | null, cos: FloatArray, sin: FloatArray, eps: number): void {
    this.use(qkv);
    const W = (Q + 2 * Hkv) * hd, half = hd / 2, tab = Math.min(T, rows) * half;
    this.run(OP.QKROPE_FWD, this.chunks(rows * W, rows), ({ i32, f32 }) => {
      i32[1] = this.out(qkv, rows * W, 'qkv', true); i32[2] = this.out(rstd, rows * (Q + Hkv), 'qk rstd', false);
      i32[3] = this.inp(cos, tab, 'rope cos'); i32[4] = this.inp(sin, tab, 'rope sin');
      i32[5] = rows; i32[6] = T; i32[7] = Q; i32[8] = Hkv; i32[9] = hd;
      i32[10] = qNorm ? this.inp(qNorm, hd, 'q norm') : 0; i32[11] = kNorm ? this.inp(kNorm, hd, 'k norm') : 0; f32[12] = eps;
    });
  }

  qkNormRopeBackward(dqkv: FloatArray, dqNorm: FloatArray | null, dkNorm: FloatArray | null, raw: FloatArray, rstd: FloatArray,
    rows: number, T: number, Q: number, Hkv: number, hd: number, qNorm: FloatArray | null, kNorm: FloatArray | null,
    cos: FloatArray, sin: FloatArray): void {
    this.use(dqkv, raw);
    const W = (Q + 2 * Hkv) * hd, half = hd / 2, tab = Math.min(T, rows) * half, nb = Math.ceil(rows / RB);
    const norms = qNorm !== null && kNorm !== null && dqNorm !== null && dkNorm !== null;
    const part = this.scratch.get(this.shard, 'partials', nb * 2 * hd * 4);
    this.run(OP.QKROPE_BWD, this.chunks(rows * W * 2, nb), ({ i32 }) => {
      i32[1] = this.out(dqkv, rows * W, 'dqkv', true); i32[2] = part; i32[3] = this.inp(raw, rows * W, 'raw qkv');
      i32[4] = norms ? this.inp(rstd, rows * (Q + Hkv), 'qk rstd') : 0;
      i32[5] = this.inp(cos, tab, 'rope cos'); i32[6] = this.inp(sin, tab, 'rope sin');
      i32[7] = rows; i32[8] = T; i32[9] = Q; i32[10] = Hkv; i32[11] = hd;
      i32[12] = norms ? this.inp(qNorm, hd, 'q norm') : 0; i32[13] = norms ? this.inp(kNorm, hd, 'k norm') : 0;
    });
    if (norms) {
      this.reduce(dqNorm, part, nb, hd, 2 * hd, 0);
      this.reduce(dkNorm, part, nb, hd, 2 * hd, hd);
    }
  }

  // ------------------------------------------------------------------------------------ attention

  attentionForward(out: FloatArray, lse: FloatArray, qkv: FloatArray, B: number, T: number, Q: number, Hkv: number, hd: number): void {
    this.use(qkv, out);
    if (Q % Hkv !== 0) throw new OpenELMError('usage', `attention: ${Q} query heads are not a multiple of ${Hkv} kv heads`);
    const W = (Q + 2 * Hkv) * hd, M = B * T;
    const sc = this.threadScratch(this.backend.exports.trainAttnScratch(T));
    const items = B * Hkv * Math.ceil(T / ABR);
    this.run(OP.ATTN_FWD, this.chunks(M * Q * T * hd, items), ({ i32 }) => {
      i32[1] = this.out(out, M * Q * hd, 'attention output', false); i32[2] = this.out(lse, M * Q, 'attention lse', false);
      i32[3] = this.inp(qkv, M * W, 'qkv'); i32[4] = B; i32[5] = T; i32[6] = Q; i32[7] = Hkv; i32[8] = hd;
      i32[9] = sc.offset; i32[10] = sc.stride;
    });
  }

  attentionBackward(dqkv: FloatArray, dout: FloatArray, qkv: FloatArray, out: FloatArray, lse: FloatArray,
    B: number, T: number, Q: number, Hkv: number, hd: number): void {
    this.use(dqkv, qkv);
    if (Q % Hkv !== 0) throw new OpenELMError('usage', `attention: ${Q} query heads are not a multiple of ${Hkv} kv heads`);
    const W = (Q + 2 * Hkv) * hd, M = B * T;
    const sc = this.threadScratch(this.backend.exports.trainAttnScratch(T));
    // every (sequence, kv head) is one item: as many chunks as items
    const chunks = this.chunks(M * Q * T * hd * 3, B * Hkv) === 1 ? 1 : B * Hkv;
    this.run(OP.ATTN_BWD, chunks, ({ i32 }) => {
      i32[1] = this.out(dqkv, M * W, 'dqkv', false); i32[2] = this.inp(dout, M * Q * hd, 'attention dout');
      i32[3] = this.inp(qkv, M * W, 'qkv'); i32[4] = this.inp(out, M * Q * hd, 'attention output');
      i32[5] = this.inp(lse, M * Q, 'attention lse'); i32[6] = B; i32[7] = T; i32[8] = Q; i32[9] = Hkv; i32[10] = hd;
      i32[11] = sc.offset; i32[12] = sc.stride;
    });
  }

  // ------------------------------------------------------------------------------------ FFN

  swigluForward(g: FloatArray, u: FloatArray, rows: number, F: number): void {
    this.use(u, g);
    const n = rows * F;
    this.run(OP.SWIGLU_FWD, this.chunks(n * 8, Math.ceil(n / 4096)), ({ i32 }) => {
      i32[1] = this.out(g, n, 'swiglu output', false); i32[2] = this.inp(u, 2 * n, 'swiglu input'); i32[3] = rows; i32[4] = F;
    });
  }

  swigluBackward(du: FloatArray, dg: FloatArray, u: FloatArray, rows: number, F: number): void {
    this.use(du, u, dg);
    const n = rows * F;
    this.run(OP.SWIGLU_BWD, this.chunks(n * 10, Math.ceil(n / 4096)), ({ i32 }) => {
      i32[1] = this.out(du, 2 * n, 'swiglu du', false); i32[2] = this.inp(dg, n, 'swiglu dg'); i32[3] = this.inp(u, 2 * n, 'swiglu u');
      i32[4] = rows; i32[5] = F;
    });
  }

  siluForward(g: FloatArray, u: FloatArray, n: number): void {
    this.use(u, g);
    this.run(OP.SILU_FWD, this.chunks(n * 8, Math.ceil(n / 4096)), ({ i32 }) => {
      i32[1] = this.out(g, n, 'silu output', false); i32[2] = this.inp(u, n, 'silu input'); i32[3] = n;
    });
  }

  siluBackward(du: FloatArray, dg: FloatArray, u: FloatArray, n: number): void {
    this.use(du, u, dg);
    this.run(OP.SILU_BWD, this.chunks(n * 10, Math.ceil(n / 4096)), ({ i32 }) => {
      i32[1] = this.out(du, n, 'silu du', false); i32[2] = this.inp(dg, n, 'silu dg'); i32[3] = this.inp(u, n, 'silu u'); i32[4] = n;
    });
  }

  // ------------------------------------------------------------------------------------ embedding

  embeddingBackward(dtable: FloatArray, dout: FloatArray, ids: Int32Array, D: number, skipId: number): void {
    this.use(dtable, dout);
    const n = ids.length;
    this.run(OP.EMBED_BWD, this.chunks(n * D, Math.ceil(D / 16)), ({ i32 }) => {
      i32[1] = this.out(dtable, dtable.length, 'embedding gradient', true); i32[2] = this.inp(dout, n * D, 'embedding dout');
      i32[3] = this.ids(ids); i32[4] = n; i32[5] = D; i32[6] = skipId;
    });
  }

  // ------------------------------------------------------------------------------------ loss

  /**
   * The cross-entropy kernel over `rows` rows: with gradScale ≠ 0 the logits are overwritten by their
   * gradient (row r further scaled by rowScale[r]); returns the per-row [lse, logit[target]] in f64.
   */
  crossEntropyStats(logits: FloatArray, targets: Int32Array, rows: number, V: number, zLoss: number, gradScale: number,
    rowScale?: Float32Array): Float64Array {
    this.use(logits);
    for (let r = 0; r < rows; r++) {
      const t = targets[r];
      if (!(t >= 0 && t < V) || !Number.isInteger(t)) {
        throw new OpenELMError('usage', `target id ${t} is outside the vocabulary [0, ${V}) and is not the ignore index`);
      }
    }
    const statsOff = this.scratch.get(this.shard, 'ce', rows * 16);
    const ceBuf = this.scratch.view(this.shard, 'ce');
    this.run(OP.CE, this.chunks(rows * V * 4, rows), ({ i32, f64 }) => {
      i32[1] = gradScale !== 0 ? this.out(logits, rows * V, 'logits', true) : this.inp(logits, rows * V, 'logits');
      i32[2] = this.ids(targets.subarray(0, rows)); i32[3] = rows; i32[4] = V; i32[5] = statsOff;
      f64[3] = gradScale; f64[4] = zLoss;
    });
    // per-row weights (preference losses) scale each row's gradient afterwards
    if (gradScale !== 0 && rowScale) for (let r = 0; r < rows; r++) this.scale(logits.subarray(r * V, (r + 1) * V), rowScale[r]);
    return new Float64Array(ceBuf.buffer, ceBuf.byteOffset, rows * 2).slice();
  }

  crossEntropy(logits: FloatArray, targets: Int32Array, rows: number, V: number, zLoss: number, gradScale: number, rowScale?: Float32Array): LossSums {
    const st = this.crossEntropyStats(logits, targets, rows, V, zLoss, gradScale, rowScale);
    let ceSum = 0, lseSqSum = 0;
    for (let r = 0; r < rows; r++) {
      const lse = st[2 * r];
      ceSum += lse - st[2 * r + 1];
      lseSqSum += lse * lse;
    }
    return { ceSum, lseSqSum };
  }

  // ------------------------------------------------------------------------------------ optimizer

  /**
   * The f64 partial sums of x² over blocks of SUMSQ_BLOCK values from x's start (the last block may
   * be shorter); each block is reduced by one thread in a fixed order. Backend.sumSquares adds them
   * in block order (block-sums.ts).
   */
  sumSquaresPartials(x: FloatArray): Float64Array {
    this.use(x);
    const n = x.length;
    if (n === 0) return new Float64Array(0);
    const nb = Math.ceil(n / SUMSQ_BLOCK);
    const off = this.scratch.get(this.shard, 'sumsq', nb * 8);
    this.run(OP.SUMSQ, this.chunks(n, nb), ({ i32 }) => { i32[1] = this.inp(x, n, 'sumsq input'); i32[2] = n; i32[3] = off; });
    return new Float64Array(this.scratch.view(this.shard, 'sumsq').buffer, off, nb).slice();
  }

  /** The pieces of one sumSquares block copied one after the other into scratch (valid until the next gather). */
  gather(pieces: readonly Float32Array[], n: number): Float32Array {
    this.scratch.get(0, 'gather', n * 4);
    const dst = this.scratch.view(0, 'gather').subarray(0, n);
    let at = 0;
    for (const p of pieces) { dst.set(p, at); at += p.length; }
    return dst;
  }

  /** x = f32(x · coef), the multiply in f64 (as `x[i] *= coef` in JavaScript). */
  scale(x: FloatArray, coef: number): void {
    this.use(x);
    const n = x.length;
    this.run(OP.SCALE, this.chunks(n, Math.ceil(n / 65536)), ({ i32, f64 }) => { i32[1] = this.out(x, n, 'scale', true); i32[2] = n; f64[2] = coef; });
  }

  // ------------------------------------------------------------------------------------ adapters

  mulColumns(out: FloatArray, x: FloatArray, s: FloatArray, rows: number, cols: number, acc: boolean): void {
    const n = rows * cols;
    if (n === 0) return;
    this.run(OP.MULCOLS, this.chunks(n, Math.ceil(n / 4096)), ({ i32 }) => {
      i32[2] = this.inp(x, n, 'mulColumns x'); i32[3] = this.inp(s, cols, 'mulColumns scale');
      i32[1] = x === out && !acc ? i32[2] : this.out(out, n, 'mulColumns output', acc);
      i32[4] = rows; i32[5] = cols; i32[6] = acc ? 1 : 0;
    });
  }

  columnDot(out: FloatArray, a: FloatArray, b: FloatArray, rows: number, cols: number, acc: boolean): void {
    if (cols === 0) return;
    const sc = this.threadScratch(this.backend.exports.colDotScratch());
    this.run(OP.COLDOT, this.chunks(rows * cols, Math.ceil(cols / 64)), ({ i32 }) => {
      i32[1] = this.out(out, cols, 'columnDot output', acc); i32[2] = this.inp(a, rows * cols, 'columnDot a');
      i32[3] = this.inp(b, rows * cols, 'columnDot b'); i32[4] = rows; i32[5] = cols; i32[6] = acc ? 1 : 0;
      i32[7] = sc.offset; i32[8] = sc.stride;
    });
  }

  dropoutMask(out: FloatArray, n: number, p: number, seed: number, complement: boolean): void {
    if (n === 0) return;
    const { kept, dropped } = dropoutValues(p, complement);
    this.run(OP.DROPMASK, this.chunks(n * 4, Math.ceil(n / 4096)), ({ i32, f32 }) => {
      i32[1] = this.out(out, n, 'dropout mask', false); i32[2] = n;
      i32[3] = lowbias32(seed >>> 0) | 0; i32[4] = dropoutThreshold(p) | 0; f32[5] = kept; f32[6] = dropped;
    });
  }

  doraScale(c: FloatArray, invN: FloatArray, m: FloatArray, base2: FloatArray, q: FloatArray, n: number, coef: number): void {
    if (n === 0) return;
    this.run(OP.DORASCALE, 1, ({ i32, f64 }) => {
      i32[1] = this.out(c, n, 'dora scale', false); i32[2] = this.out(invN, n, 'dora 1/norm', false);
      i32[3] = this.inp(m, n, 'dora magnitude'); i32[4] = this.inp(base2, n, 'dora base norms'); i32[5] = this.inp(q, n, 'dora q');
      i32[6] = n; f64[4] = coef;
    });
  }

  /** One AdamW update over [0, n) of equal-decay elements (all four arrays in the wasm memory). */
  adamw(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, n: number, k: AdamWStep): void {
    // the native threads compute the same bits about twice as fast (eight f64 lanes instead of two)
    const nat = this.backend.native;
    if (nat?.adamw && n >= 4096) { nat.adamw(this.backend.threads, p, g, m, v, n, k); return; }
    this.sliced([p, g, m, v], n, (o, len) => {
      const P = p.subarray(o, o + len), G = g.subarray(o, o + len), Mm = m.subarray(o, o + len), Vv = v.subarray(o, o + len);
      this.use(P, G, Mm, Vv);
      this.run(OP.ADAMW, this.chunks(len * 4, Math.ceil(len / 16384)), ({ i32, f64 }) => {
        i32[1] = this.out(P, len, 'params', true); i32[2] = this.inp(G, len, 'grads'); i32[3] = this.out(Mm, len, 'adam m', true);
        i32[4] = this.out(Vv, len, 'adam v', true); i32[5] = len;
        f64[3] = k.b1; f64[4] = 1 - k.b1; f64[5] = k.b2; f64[6] = 1 - k.b2; f64[7] = k.stepSize; f64[8] = k.bc2Sqrt; f64[9] = k.eps; f64[10] = k.keep;
      });
    });
  }
}

