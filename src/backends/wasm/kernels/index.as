// Exported kernel entry points. Every entry takes a pointer to its argument slots (i32 or f32,
// 4 bytes each, written by the TypeScript side), the calling thread's index (which scratch area
// it owns) and a chunk of the work: chunk c of nc. Threads claim chunks dynamically (pool.ts), so
// a thread the OS deschedules delays the call by at most one chunk.
// The slot layouts below are written by ../wasm-backend.ts; keep the two in sync.

import { part } from './simd';
import { gemvRows, deinterleave8, quantizeX, q8SplitSigns, q8ScaleX, q8ScaledOffset, q8PosOffset, q8NegOffset, scaleForF16, f16SubnormalMap, f16MapBytes, denormalProbe } from './gemv';
import { gemm, GEMM_SCRATCH } from './gemm';
import { igemm, igemmQ4, hasIntGemm, blockSums8, IGEMM_SCRATCH } from './igemm';
import { BLOCK_MIN, BQ4_0, BQ4_KR, BQ6_K, BQ6_KR, BQ8_0, BQ8_0R, BQ4_0R, repackQ4KInPlace, repackQ6KInPlace, repackQ8_0InPlace, repackQ4_0InPlace, gemvBlock, gemvBlockRows, gemvQ8_0RExact } from './blocks';
import { hasIntGemv, gemvBlockInt, q4_0Correction, q4_0RCorrection, q6KCorrection, q6KCorrOffset, q6KRPermuteX, q6KRXOffset } from './blocks_int';
import { rmsnormRows, qkNormRopeRows, normRopeHead, swigluCols, siluRange, addRange, storeKV, embeddingRows, argmaxRows } from './elementwise';
import { attentionItems, attentionScratch, attentionSplit } from './attention';
import { trainDispatch, trainScratchBytes } from './train_ops';
import { quantizeRows, quantizeScratch } from './quantize';

export { argmaxRows, attentionScratch, attentionSplit, f16SubnormalMap, f16MapBytes, denormalProbe, quantizeScratch, repackQ4KInPlace, repackQ6KInPlace, repackQ8_0InPlace, repackQ4_0InPlace };

/** Scratch bytes per thread the GEMM packing needs. */
export function gemmScratch(): i32 { return max(GEMM_SCRATCH, IGEMM_SCRATCH); }

@inline function ai(a: usize, i: i32): i32 { return load<i32>(a + (<usize>i << 2)); }
@inline function ap(a: usize, i: i32): usize { return <usize>load<u32>(a + (<usize>i << 2)); }
@inline function af(a: usize, i: i32): f32 { return load<f32>(a + (<usize>i << 2)); }


// linear: 0 out, 1 x, 2 data, 3 scales, 4 mins, 5 dtype, 6 M, 7 N, 8 K, 9 acc, 10 scratch, 11 stride,
//         12 mode, 13 prepared x, 14 ldo (floats between rows of out; 0: N), 15 int8 activations for
//         the block dtypes that have them (blocks_int.as; else their exact f32 products), 16 mode 1:
//         F > 0 when the N = 2F rows are SwiGLU's [gate | up] and g is written over out's start,
//         17 mode 1: hd > 0 when the rows are the qkv projection's heads, 18-28 for qkvHeads
// mode 0: f32 GEMM (any dtype, dequantized while packing); 1: GEMV (small M, x prepared by k_prep_x;
// block dtypes decode each weight row into the thread's scratch when M > 1);
// 2: integer GEMM for q8/q4 and the block dtypes of igemm.as hasIntGemm (x quantized by k_quant_rows
// into 13: i16 rows, then scales, then sums, then, where wantsX8, int8 rows: the qx parts below)
export function k_linear(a: usize, tid: i32, c: i32, nc: i32): void {
  const out = ap(a, 0), x = ap(a, 1), data = ap(a, 2), scales = ap(a, 3), mins = ap(a, 4);
  const dtype = ai(a, 5), M = ai(a, 6), N = ai(a, 7), K = ai(a, 8), acc = ai(a, 9), mode = ai(a, 12);
  const ldo = ai(a, 14) > 0 ? ai(a, 14) : N;
  const scr = ap(a, 10) + <usize>tid * ap(a, 11);
  if (mode != 1) {
    const n0 = part(N, c, nc, 8), n1 = part(N, c + 1, nc, 8);
    if (mode == 0) { gemm(out, x, data, scales, mins, dtype, M, N, K, acc, scr, n0, n1, ldo); return; }
    const q = ap(a, 13), xd = qx(q, M, K, QX_D), xs = qx(q, M, K, QX_S);
    // Block dtypes (prompts of GGUF weights with int8 activations): one branch per kernel; the
    // quantized x has the i16 rows (q), the int8 rows (qx(q, M, K, QX_8), where wantsX8), each
    // block's scale d_x (xd) and d_x·Σq_x (xs), K/32 f32 per row.
    if (dtype >= BLOCK_MIN) {
      // Q4_0, relaxed build: the 7-bit dot on the stored levels, x's 8·Σq per block (QX_C) taken off
      if (ASC_FEATURE_RELAXED_SIMD && dtype == BQ4_0) igemmQ4(out, qx(q, M, K, QX_8), xd, qx(q, M, K, QX_C), data, 0, M, N, K, acc, scr, n0, n1, ldo, true);
      // Q4_0 regrouped (BQ4_0R), relaxed build: the same, its nibbles and halves read where the regrouping put them
      else if (ASC_FEATURE_RELAXED_SIMD && dtype == BQ4_0R) igemmQ4(out, qx(q, M, K, QX_8), xd, qx(q, M, K, QX_C), data, 0, M, N, K, acc, scr, n0, n1, ldo, true, false, true);
      // Q4_K (repacked), relaxed build: q4's 7-bit dot on its levels 0..15, each sub-block's min × x's quantized sum
      else if (ASC_FEATURE_RELAXED_SIMD && dtype == BQ4_KR) igemmQ4(out, qx(q, M, K, QX_8), xd, xs, data, 0, M, N, K, acc, scr, n0, n1, ldo, false, true);
      else igemm(out, q, xd, xs, data, scales, mins, dtype, M, N, K, acc, scr, n0, n1, ldo);
      return;
    }
    if (ASC_FEATURE_RELAXED_SIMD && dtype == 4) igemmQ4(out, qx(q, M, K, QX_8), xd, xs, data, scales, M, N, K, acc, scr, n0, n1, ldo, false);
    else igemm(out, q, xd, xs, data, scales, mins, dtype, M, N, K, acc, scr, n0, n1, ldo);
    return;
  }
  const F = ai(a, 16);
  if (F > 0) {
    // SwiGLU fused (WasmBackend.linearSwiglu): the chunk computes gate rows [n0, n1) and up rows
    // [F + n0, F + n1) and then their g columns, written over the start of out as swigluCols does
    // (g's columns [n0, n1) land where only this chunk's columns of u were), so SiLU is split over
    // the threads with the GEMV instead of running after it on one. Each output row and each g value
    // takes the same operations as in the separate calls.
    const n0 = partShrinking(F, c, nc, 4), n1 = partShrinking(F, c + 1, nc, 4);
    if (n0 >= n1) return;
    gemvRange(a, out, x, data, scales, mins, dtype, M, K, acc, scr, ldo, n0, n1);
    gemvRange(a, out, x, data, scales, mins, dtype, M, K, acc, scr, ldo, F + n0, F + n1);
    swigluCols(out, out, M, F, n0, n1);
    return;
  }
  const hd = ai(a, 17);
  if (hd > 0) {
    // the qkv projection with QK-norm, RoPE and the KV-cache store fused (WasmBackend.linearQkv):
    // chunks of whole heads, each normed, rotated and stored by the chunk that computed it, as
    // qkNormRopeRows and storeKV do them (the same operations on each value)
    const n0 = partShrinking(N, c, nc, hd), n1 = partShrinking(N, c + 1, nc, hd);
    if (n0 >= n1) return;
    gemvRange(a, out, x, data, scales, mins, dtype, M, K, acc, scr, ldo, n0, n1);
    qkvHeads(a, out, M, ldo, hd, n0 / hd, n1 / hd);
    return;
  }
  const n0 = partShrinking(N, c, nc, 4), n1 = partShrinking(N, c + 1, nc, 4);
  if (n0 >= n1) return;
  gemvRange(a, out, x, data, scales, mins, dtype, M, K, acc, scr, ldo, n0, n1);
}

/**
 * Heads [h0, h1) of M qkv rows at out (ldo floats apart; rows at positions P + r of one sequence):
 * q and k heads RMSNormed (slots 22, 23: weights, 0 = none; 24 eps) and rotated with the cos/sin
 * rows at 20/21 (row r's at + r·hd/2), then k and v heads copied into the caches at 25/26 ([Hkv,
 * cap (28), hd], position P (27) + r). Slots 18, 19: Q, Hkv.
 */
function qkvHeads(a: usize, out: usize, M: i32, ldo: i32, hd: i32, h0: i32, h1: i32): void {
  const Q = ai(a, 18), Hkv = ai(a, 19), cs = ap(a, 20), sn = ap(a, 21), qn = ap(a, 22), kn = ap(a, 23), eps = af(a, 24);
  const kc = ap(a, 25), vc = ap(a, 26), P = ai(a, 27), cap = ai(a, 28);
  const half = <usize>(hd >> 1), bytes = <usize>hd << 2;
  for (let r = 0; r < M; r++) {
    const row = out + ((<usize>r * <usize>ldo) << 2);
    for (let h = h0; h < h1; h++) {
      const o = row + ((<usize>h * <usize>hd) << 2);
      if (h < Q + Hkv) normRopeHead(o, cs + ((<usize>r * half) << 2), sn + ((<usize>r * half) << 2), hd, h < Q ? qn : kn, eps);
      if (h < Q) continue;
      const kv = h < Q + Hkv ? h - Q : h - Q - Hkv;
      memory.copy((h < Q + Hkv ? kc : vc) + ((<usize>(kv * cap + P + r) * <usize>hd) << 2), o, bytes);
    }
  }
}

/** k_linear's GEMV (mode 1) of weight rows [n0, n1). */
function gemvRange(a: usize, out: usize, x: usize, data: usize, scales: usize, mins: usize, dtype: i32, M: i32, K: i32,
  acc: i32, scr: usize, ldo: i32, n0: i32, n1: i32): void {
  const xp = ap(a, 13);
  // W streamed once per 4 rows of x; each row's result is the same whatever R (see gemv.as, blocks.as)
  const ldp = <usize>prepBytes(K), ldx = <usize>K << 2, ldb = <usize>ldo << 2;
  // (mins: BQ4_0R's flag that its halves are normal ones, of either sign)
  if (blockInt(a, dtype)) { gemvBlockInt(dtype, M, out, ldb, xp, ldp, data, K, n0, n1, acc, mins); return; }
  for (let m = 0; m < M; m += 4) {
    const R = min(4, M - m);
    const om = out + <usize>m * ldb, xm = x + <usize>m * ldx;
    if (dtype < BLOCK_MIN) gemvRows(dtype, R, om, ldb, xm, ldx, xp + <usize>m * ldp, ldp, data, scales, mins, K, n0, n1, acc);
    // Q8_0 regrouped, exact (its other kernels are q8's): levels at data, halves at scales
    else if (dtype == BQ8_0R && R == 1) gemvQ8_0RExact(om, xm, data, scales, K, n0, n1, acc);
    else if (R == 1) gemvBlock(dtype, om, xm, data, K, n0, n1, acc);
    else gemvBlockRows(dtype, R, om, ldb, xm, ldx, data, scales, K, n0, n1, acc, scr);
  }
}

/**
 * Start of chunk c of nc over n rows (multiples of align), chunk c getting a share ∝ nc − c: the
 * threads claim the large chunks first and the last ones are small (1/36 of the rows for 8), so the
 * threads finish within a short chunk of each other, not within an eighth of the call (a 400 µs
 * GEMV: 50 µs, longer than an idle worker spins before it sleeps, so the next call found it asleep).
 */
@inline function partShrinking(n: i32, c: i32, nc: i32, align: i32): i32 {
  const units = (n + align - 1) / align;
  const done = <i64>c * <i64>nc - ((<i64>c * <i64>(c - 1)) >> 1), total = (<i64>nc * <i64>(nc + 1)) >> 1;
  return min(n, <i32>((<i64>units * done) / total) * align);
}

/** Whether a GEMV of this block dtype takes int8 activations (slot 15 asks for them where blocks_int.as has a kernel). */
@inline function blockInt(a: usize, dtype: i32): bool { return dtype >= BLOCK_MIN && ai(a, 15) != 0 && hasIntGemv(dtype); }

// The quantized x of an M×K integer GEMM (slot 13), part after part: i16 rows (xq), their block
// scales (xd) and sums (xs), then, for igemmQ4 in the relaxed build, the int8 rows (x8), and for
// its Q4_0 form each block's 8·Σq as i32 (xc, K/32 per row). k_quant_rows writes it, k_linear reads
// it, quantBytes sizes it.
const QX_Q = 0, QX_D = 1, QX_S = 2, QX_8 = 3, QX_C = 4, QX_END = 5;

/** Address of part `p` (a QX_ constant) of the quantized x at `q`; QX_END gives its end. */
@inline function qx(q: usize, M: i32, K: i32, p: i32): usize {
  const mk = <usize>M * <usize>K, mb = (<usize>M * <usize>(K >> 5)) << 2;
  return q + (p > QX_Q ? mk << 1 : 0) + (p > QX_D ? mb : 0) + (p > QX_S ? mb : 0) + (p > QX_8 ? mk : 0) + (p > QX_C ? mb : 0);
}

/** Whether the integer GEMM of this dtype reads x's int8 rows (part QX_8), which k_quant_rows then writes. */
@inline function wantsX8(dtype: i32): bool { return ASC_FEATURE_RELAXED_SIMD && (dtype == 4 || dtype == BQ4_0 || dtype == BQ4_KR || dtype == BQ4_0R); }

/** Whether k_linear's mode 2 (integer GEMM) takes this dtype: q8, q4, and the block dtypes of igemm.as hasIntGemm. */
export function intGemmDtype(dtype: i32): i32 { return dtype == 3 || dtype == 4 || hasIntGemm(dtype) ? 1 : 0; }

/** Bytes the quantized x of an M×K integer GEMM needs (see k_quant_rows). */
export function quantBytes(M: i32, K: i32): i32 { return <i32>qx(0, M, K, QX_END) + 64; }

/** Quantize rows of x for the integer GEMM (chunks of rows; same slots as k_linear). */
export function k_quant_rows(a: usize, tid: i32, c: i32, nc: i32): void {
  const x = ap(a, 1), M = ai(a, 6), K = ai(a, 8);
  const q = ap(a, 13), xq = qx(q, M, K, QX_Q), xd = qx(q, M, K, QX_D), xs = qx(q, M, K, QX_S);
  const x8 = qx(q, M, K, QX_8);
  const rb = <usize>(K >> 5) << 2;
  for (let m = part(M, c, nc, 1); m < part(M, c + 1, nc, 1); m++) {
    // the int8 rows only for kernels that read them (q8's GEMM reads the i16 rows): pages q8 never writes stay untouched
    const r8 = wantsX8(ai(a, 5)) ? x8 + <usize>m * <usize>K : 0;
    quantizeX(x + ((<usize>m * <usize>K) << 2), K, xq + ((<usize>m * <usize>K) << 1), r8, xd + <usize>m * rb, xs + <usize>m * rb);
    if (ASC_FEATURE_RELAXED_SIMD && (ai(a, 5) == BQ4_0 || ai(a, 5) == BQ4_0R)) blockSums8(r8, K, qx(q, M, K, QX_C) + <usize>m * rb);
  }
}

/** Bytes the prepared x of a K-input GEMV needs (see k_prep_x). */
export function prepBytes(K: i32): i32 { return 8 * K + 64; }

/** Prepare the M input rows of a GEMV once, before the threads start: split for 16-bit
 * weights, quantized to int8 blocks for q8/q4 (and block dtypes in int8 mode); row m at
 * 13 + m·prepBytes(K). Same slots as k_linear. */
export function k_prep_x(a: usize): void {
  const dtype = ai(a, 5), M = ai(a, 6), K = ai(a, 8);
  const ldp = <usize>prepBytes(K);
  for (let m = 0; m < M; m++) {
    const x = ap(a, 1) + ((<usize>m * <usize>K) << 2), xp = ap(a, 13) + <usize>m * ldp;
    if (dtype == 1) deinterleave8(xp, x, K);
    else if (dtype == 2) { deinterleave8(xp, x, K); scaleForF16(xp, K); }
    else if (dtype == 3 || dtype == 4 || blockInt(a, dtype)) {
      quantizeX(x, K, xp, xp + (<usize>K << 1), xp + <usize>K * 3, xp + <usize>K * 3 + (<usize>K >> 3));
      // q8 and Q8_0 (relaxed build): x⁺ and x⁻ for the 7-bit dot (gemv.as q8BlockSplit)
      if (ASC_FEATURE_RELAXED_SIMD && (dtype == 3 || dtype == BQ8_0)) q8SplitSigns(xp + (<usize>K << 1), K, xp + q8PosOffset(K), xp + q8NegOffset(K));
      // q8 (relaxed build): x's block scales ·2¹¹² for the GEMVs' folded scale widening (gemv.as q8ScaleX)
      if (ASC_FEATURE_RELAXED_SIMD && dtype == 3) q8ScaleX(xp + <usize>K * 3, K, xp + q8ScaledOffset(K));
      // Q4_0: after the scales and sums, its relaxed dot's correction (blocks_int.as)
      if (dtype == BQ4_0) q4_0Correction(xp + (<usize>K << 1), K, xp + <usize>K * 3 + (<usize>K >> 2));
      // Q4_0 regrouped: 8·Σq_x per block as f32, in the same place (blocks_int.as gemvQ4_0RInt)
      if (dtype == BQ4_0R) q4_0RCorrection(xp + (<usize>K << 1), K, xp + <usize>K * 3 + (<usize>K >> 2));
      // Q6_K (relaxed build): Σx per 16 values, for its dot of the unsigned 6-bit levels (blocks_int.as)
      if (ASC_FEATURE_RELAXED_SIMD && (dtype == BQ6_K || dtype == BQ6_KR)) q6KCorrection(xp + (<usize>K << 1), K, xp + q6KCorrOffset(K));
      // Q6_K repacked (relaxed build): x in its levels' order as well (blocks_int.as q6KRPermuteX)
      if (ASC_FEATURE_RELAXED_SIMD && dtype == BQ6_KR) q6KRPermuteX(xp + (<usize>K << 1), K, xp + q6KRXOffset(K));
    }
  }
}

// rmsnorm: 0 out, 1 x, 2 w, 3 rows, 4 dim, 5 eps
export function k_rmsnorm(a: usize, tid: i32, c: i32, nc: i32): void {
  const rows = ai(a, 3);
  rmsnormRows(ap(a, 0), ap(a, 1), ap(a, 2), ai(a, 4), af(a, 5), part(rows, c, nc, 1), part(rows, c + 1, nc, 1));
}

// qk norm + rope: 0 qkv, 1 cos rows, 2 sin rows, 3 rows, 4 Q, 5 Hkv, 6 hd, 7 qNorm, 8 kNorm, 9 eps
export function k_qkrope(a: usize, tid: i32, c: i32, nc: i32): void {
  const rows = ai(a, 3);
  qkNormRopeRows(ap(a, 0), ap(a, 1), ap(a, 2), ai(a, 4), ai(a, 5), ai(a, 6), ap(a, 7), ap(a, 8), af(a, 9),
    part(rows, c, nc, 1), part(rows, c + 1, nc, 1));
}

// attention: 0 out, 1 qkv, 2 kc, 3 vc, 4 S, 5 P, 6 Q, 7 Hkv, 8 hd, 9 cap, 10 scratch, 11 stride,
//            12 parts each kv head's query heads are split into (attentionSplit; 0 or 1: none)
export function k_attention(a: usize, tid: i32, c: i32, nc: i32): void {
  attentionItems(ap(a, 0), ap(a, 1), ap(a, 2), ap(a, 3), ai(a, 4), ai(a, 5), ai(a, 6), ai(a, 7), ai(a, 8), ai(a, 9),
    ai(a, 12), ap(a, 10) + <usize>tid * ap(a, 11), c, nc);
}

// swiglu: 0 out, 1 u, 2 rows, 3 F
export function k_swiglu(a: usize, tid: i32, c: i32, nc: i32): void {
  const F = ai(a, 3);
  swigluCols(ap(a, 0), ap(a, 1), ai(a, 2), F, part(F, c, nc, 4), part(F, c + 1, nc, 4));
}

// silu: 0 out, 1 u, 2 n
export function k_silu(a: usize, tid: i32, c: i32, nc: i32): void {
  const n = ai(a, 2);
  siluRange(ap(a, 0), ap(a, 1), part(n, c, nc, 4), part(n, c + 1, nc, 4));
}

// add: 0 x, 1 y, 2 n
export function k_add(a: usize, tid: i32, c: i32, nc: i32): void {
  const n = ai(a, 2);
  addRange(ap(a, 0), ap(a, 1), part(n, c, nc, 4), part(n, c + 1, nc, 4));
}

// storekv: 0 kc, 1 vc, 2 qkv, 3 S, 4 P, 5 Q, 6 Hkv, 7 hd, 8 cap (single-threaded: a few memcpys)
export function k_storekv(a: usize, tid: i32, c: i32, nc: i32): void {
  if (c != 0) return;
  storeKV(ap(a, 0), ap(a, 1), ap(a, 2), ai(a, 3), ai(a, 4), ai(a, 5), ai(a, 6), ai(a, 7), ai(a, 8));
}

// embedding: 0 out, 1 dtype, 2 data, 3 scales, 4 mins, 5 D, 6 ids, 7 n
export function k_embedding(a: usize, tid: i32, c: i32, nc: i32): void {
  const n = ai(a, 7);
  embeddingRows(ap(a, 0), ai(a, 1), ap(a, 2), ap(a, 3), ap(a, 4), ai(a, 5), ap(a, 6), part(n, c, nc, 1), part(n, c + 1, nc, 1));
}

// quantize (loading with --dtype q8/q4): 0 dtype (3 q8, 4 q4), 1 src rows, 2 rows, 3 K, 4 importance
//           (K f32), 5 data, 6 scales (q4: the rows' scale data), 7 first weight row, 8 scratch, 9 stride,
//           10 the importance is all 1
export function k_quantize(a: usize, tid: i32, c: i32, nc: i32): void {
  const rows = ai(a, 2);
  quantizeRows(ai(a, 0), ap(a, 1), ai(a, 3), ap(a, 4), ai(a, 10) != 0, ap(a, 5), ap(a, 6), ai(a, 7),
    part(rows, c, nc, 1), part(rows, c + 1, nc, 1), ap(a, 8) + <usize>tid * ap(a, 9));
}

/**
 * 1 when this build's relaxed-SIMD instructions give the results the kernels rely on (the 7-bit
 * dot must be exact; fused or unfused multiply-add are both fine), checked once at load time.
 */
export function selfTest(): i32 {
  if (!ASC_FEATURE_RELAXED_SIMD) return 1;
  const a = i8x16(-128, 127, -1, 5, -7, 100, -100, 3, 0, 1, -2, 3, -4, 5, -6, 7);
  const b = i8x16(15, 15, 0, 127, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
  const d = i16x8.relaxed_dot_i8x16_i7x16_s(a, b);
  const ok = i16x8.extract_lane_s(d, 0) == -128 * 15 + 127 * 15 && i16x8.extract_lane_s(d, 1) == 5 * 127 &&
    i16x8.extract_lane_s(d, 2) == -63 + 100 && i16x8.extract_lane_s(d, 3) == -200 + 9 &&
    i16x8.extract_lane_s(d, 7) == -60 + 77;
  const m = f32x4.extract_lane(f32x4.relaxed_madd(f32x4.splat(1.5), f32x4.splat(2), f32x4.splat(0.25)), 0);
  return ok && m == 3.25 ? 1 : 0;
}

// ------------------------------------------------------------------------------------------------
// Training kernels (../../../train/wasm-train.ts writes the slots): one entry point, the operation
// in slot 0, so the pool's kernel table needs a single name for all of them.

export function trainScratch(): i32 { return trainScratchBytes(); }

export function k_train(a: usize, tid: i32, c: i32, nc: i32): void {
  trainDispatch(a, tid, c, nc);
}
