// Block weights as GGUF and MLX files store them (layouts: docs/formats.md, "Block weights"),
// decoded to f32 in registers and multiplied with f32 activations. Every decoded value is the one
// gguf-py's dequantizer gives (src/core/ggml-quants.ts): the same float32 products and sums in the
// same order, each rounded on its own (mul, then add/sub: never a fused multiply-add), so the
// kernels compute with exactly the file's values and only the dot products' summation order
// differs from an f32 computation on the dequantized weights.
//
// One walker per type visits a row's blocks 16 values at a time and either stores the decoded
// values (GEMM panels, embedding rows, the several-token GEMV) or multiplies them into a dot
// product with x (the one-token GEMV), selected by a constant `mode` after inlining.

import { fmadd, hsum, hsum4, nibLo, nibHi } from './simd';
import { storeR } from './gemv';

// dtype codes (kernels.ts DTYPE_CODE)
export const BQ8_0: i32 = 8;
export const BQ4_0: i32 = 9;
export const BQ4_1: i32 = 10;
export const BQ5_0: i32 = 11;
export const BQ5_1: i32 = 12;
export const BQ4_K: i32 = 13;
export const BQ5_K: i32 = 14;
export const BQ6_K: i32 = 15;
export const BQ4_1F: i32 = 16;   // q4_1_f32
// Q4_K as the wasm backend repacks it at load (wasm/q4k-repack.ts), 152 bytes per 256 values: d and
// dmin as f32, the eight 6-bit scales and eight mins a byte each, then Q4_K's 128 bytes of nibbles.
// The same values as the stored block; the int8 GEMV reads them without unpacking.
export const BQ4_KR: i32 = 17;
// Q6_K as the wasm backend repacks it at load (q6k-repack.ts), 212 bytes per 256 values: per 64
// values (a group of four sub-blocks of 16) three vectors A, B, C whose low 6 bits are levels
// L0, L1, L2 and whose top 2 bits are L3's bits 0-1, 2-3, 4-5; byte 4m + r of L_j is value
// 16m + 4j + r of the group (so each i32 lane m of L_j holds sub-block m); then Q6_K's 16 int8
// scales unchanged, then d as f32. The same values as the stored block (q6krLevels, q6krNatural).
export const BQ6_KR: i32 = 20;
// Q8_0 and Q4_0 as the wasm backend regroups them at load (gguf-repack.ts), the same bytes in
// another order. Q8_0 (BQ8_0R) becomes q8's layout: the levels of all rows (K bytes a row), then
// every block's f16 d; its int8 GEMV, GEMM and embedding are q8's (the backend passes code 3), and
// only the exact GEMV below reads it under this code, with the d's at `scales`. Q4_0 (BQ4_0R)
// keeps 18 bytes per block and row, regrouped within each row: the f16 d's of its blocks, then
// their 16 nibble bytes each, so four d's widen with one load and a row is still read front to
// back (with the d's after the nibbles, the GEMV read each row's tail before its body: 0.8x the
// stored layout from DRAM, where halves first gives 1.4x; docs/cpu-decode.md).
export const BQ8_0R: i32 = 18;
export const BQ4_0R: i32 = 19;

/** The first block dtype code: codes below it are f32, bf16, f16, q8 and q4. */
export const BLOCK_MIN: i32 = 8;

export function blockElems(dtype: i32): i32 { return (dtype >= BQ4_K && dtype <= BQ6_K) || dtype == BQ4_KR || dtype == BQ6_KR ? 256 : 32; }

export function blockBytes(dtype: i32): i32 {
  switch (dtype) {
    case BQ8_0: return 34;
    case BQ4_0: return 18;
    case BQ4_1: return 20;
    case BQ5_0: return 22;
    case BQ5_1: return 24;
    case BQ4_K: return 144;
    case BQ5_K: return 176;
    case BQ6_K: return 210;
    case BQ4_KR: return 152;
    case BQ8_0R: return 34;
    case BQ4_0R: return 18;
    case BQ6_KR: return 212;
    default: return 24;   // q4_1_f32
  }
}

/** An IEEE half's bits as the f32's bits, exactly (subnormals normalized, NaN payloads kept). */
@inline function f16Bits32(h: u32): u32 {
  const s = (h & 0x8000) << 16, e = (h >> 10) & 31, m = h & 0x3ff;
  if (e == 31) return s | 0x7f800000 | (m << 13);
  if (e != 0) return s | ((e + 112) << 23) | (m << 13);
  if (m == 0) return s;
  return s | reinterpret<u32>(<f32>m * reinterpret<f32>(0x33800000));   // m·2⁻²⁴, a normal f32
}

/**
 * Repack nsb Q4_K super-blocks stored at p into BQ4_KR's layout in place (the room for 8 more
 * bytes each follows them): last to first, each read before it is written; q4k-repack.ts
 * repackQ4K does the same on the host. The 12 scale bytes unpack four codes at a time in u32
 * lanes: sc_j = q_j & 63, m_j = q_{j+4} & 63 (j < 4); sc_{j+4} = (q_{j+8} & 15) | (q_j >> 6) << 4,
 * m_{j+4} = (q_{j+8} >> 4) | (q_{j+4} >> 6) << 4.
 */
export function repackQ4KInPlace(p: usize, nsb: i32): void {
  for (let b = nsb - 1; b >= 0; b--) q4krBlock(p + <usize>b * 144, p + <usize>b * 152);
}

/**
 * One Q4_K super-block at s as BQ4_KR's at d (d may be s itself or up to 8 bytes past it: every
 * byte of the block is loaded before the first store that could overlap it).
 */
@inline function q4krBlock(s: usize, d: usize): void {
  const hd = <u32>load<u16>(s), hm = <u32>load<u16>(s, 2);
  const q0 = load<u32>(s, 4), q1 = load<u32>(s, 8), q2 = load<u32>(s, 12);
  memory.copy(d + 24, s + 16, 128);
  store<u32>(d, f16Bits32(hd));
  store<u32>(d, f16Bits32(hm), 4);
  store<u32>(d, q0 & 0x3f3f3f3f, 8);
  store<u32>(d, (q2 & 0x0f0f0f0f) | ((q0 >> 2) & 0x30303030), 12);
  store<u32>(d, q1 & 0x3f3f3f3f, 16);
  store<u32>(d, ((q2 >> 4) & 0x0f0f0f0f) | ((q1 >> 2) & 0x30303030), 20);
}

/**
 * What a weight's f16 d's are, as the flags its GEMVs run under (one rule per layout, shared by the
 * in-place regroupings and the load's scatter, which OR each predicate over the blocks they move
 * and return halfBits; the host's rules are gguf-repack.ts q8_0HalfBit, q4_0HalfBits):
 *   HALF_NONFINITE, an infinity or a NaN: q8's widenings give it a finite value where Q8_0's exact
 *     decoder gives ±∞ or NaN, so a Q8_0 weight with one stays as stored, on the Q8_0 kernels;
 *   HALF_SLOW, a half the fast widening (bits moved up 13, exponent rebiased by an integer add)
 *     does not give exactly: the weight's GEMVs take the exact widening instead.
 * Q8_0 runs on q8's kernels, whose fast widening (gemv.as q8Scales4, and the relaxed build's
 * folded form, q8ScaleX) takes positive normal halves only: llama-quantize's Q8_0 d = max|w|/127 is
 * never negative, so a sign there is rare enough to leave to the exact widening.
 */
const HALF_NONFINITE: u32 = 1;
const HALF_SLOW: u32 = 2;

/**
 * The flags from whether some d was non-finite and some d slow (each 0 or 1). The rules are
 * predicates ORed into one accumulator each, combined once at the end: a function giving each d's
 * bits cost the scatter's loops a shift per block.
 */
@inline function halfBits(nonfinite: u32, slow: u32): u32 { return nonfinite * HALF_NONFINITE | slow * HALF_SLOW; }

/** A Q8_0 (or q8) d h is ±∞ or NaN: its exponent all ones. */
@inline function q8_0Nonfinite(h: u32): u32 { return <u32>((h & 0x7c00) == 0x7c00); }

/** A Q8_0 (or q8) d h is slow: outside [0x0400, 0x7c00), not a positive normal half. */
@inline function q8_0Slow(h: u32): u32 { return <u32>(h - 0x0400 >= 0x7800); }

/**
 * A Q4_0 d h is slow when it is not a normal half of either sign (zero, subnormal, ±∞, NaN).
 * llama-quantize's Q4_0 d = max/−8 (max the value of largest magnitude) is negative in about half
 * the blocks, so the regrouped Q4_0 GEMV's fast widening sign-extends (blocks_int.as
 * gemvQ4_0RPair; docs/cpu-decode.md, "Negative d's take the fast widening too"). No
 * HALF_NONFINITE: a Q4_0 weight stays regrouped whatever its d's, whose exact widening gives ±∞
 * and NaN as the stored layout's decoder does.
 */
@inline function q4_0Slow(h: u32): u32 { return <u32>((h & 0x7fff) - 0x0400 >= 0x7800); }

/**
 * Q8_0 → BQ8_0R in place (gguf-repack.ts repackQ8_0 does the same on the host), in one pass: each
 * block's half is saved at tmp (2·nb bytes) and its levels moved down (block b's bytes are loaded
 * before they are stored, and the stores of blocks 0..b end at 32b, below block b + 1's half at
 * 34b + 34), then the halves follow the levels. Returns what the halves are (halfBits).
 */
export function repackQ8_0InPlace(p: usize, nb: i32, tmp: usize): i32 {
  let bad: u32 = 0, slow: u32 = 0;
  for (let b = 0; b < nb; b++) {
    const s = p + <usize>b * 34, h = <u32>load<u16>(s), v0 = v128.load(s, 2), v1 = v128.load(s, 18);
    store<u16>(tmp + (<usize>b << 1), <u16>h);
    v128.store(p + (<usize>b << 5), v0); v128.store(p + (<usize>b << 5), v1, 16);
    bad |= q8_0Nonfinite(h);
    slow |= q8_0Slow(h);
  }
  memory.copy(p + (<usize>nb << 5), tmp, <usize>nb << 1);
  return <i32>halfBits(bad, slow);
}

/**
 * Q4_0 → BQ4_0R in place, row by row (rows of nb blocks; tmp: 2·nb bytes): the halves saved, the
 * nibble groups moved up from the last block to the first (block b goes from 18b + 2 to 2nb + 16b,
 * never below its source, and each is loaded before it is stored), then the halves in front.
 * Returns what the halves are (halfBits).
 */
export function repackQ4_0InPlace(p: usize, rows: i32, nb: i32, tmp: usize): i32 {
  const rb = <usize>nb * 18, hb = <usize>nb << 1;
  let slow: u32 = 0;
  for (let r = 0; r < rows; r++) {
    const row = p + <usize>r * rb;
    for (let b = 0; b < nb; b++) {
      const h = <u32>load<u16>(row + <usize>b * 18);
      store<u16>(tmp + (<usize>b << 1), <u16>h);
      slow |= q4_0Slow(h);
    }
    for (let b = nb - 1; b >= 0; b--) v128.store(row + hb + (<usize>b << 4), v128.load(row + <usize>b * 18 + 2));
    memory.copy(row, tmp, hb);
  }
  return <i32>halfBits(0, slow);
}

/** Level vector j (0..3) of a BQ6_KR group from its vectors a, b, c: 0..63 per byte. */
@inline export function q6krLevels(a: v128, b: v128, c: v128, j: i32): v128 {
  const m = i8x16.splat(63);
  if (j == 0) return v128.and(a, m);
  if (j == 1) return v128.and(b, m);
  if (j == 2) return v128.and(c, m);
  // L3 = a's top bits | b's top bits << 2 | c's << 4, as ((a' >> 2 | b') >> 2 | c') >> 2 with x' = x & 0xC0:
  // one mask where three shifted ones kept two more constants in vector registers (v128.andnot
  // with m would save that one too, but V8 lowers it to a copy and an andn). 16-bit shifts: each
  // byte's bits stay in it (the high byte's lowest bit in play is bit 10 before the last shift),
  // and the result's top two bits are 0.
  const t = i8x16.splat(-64);
  const a3 = v128.or(i16x8.shr_u(v128.and(a, t), 2), v128.and(b, t));
  return i16x8.shr_u(v128.or(i16x8.shr_u(a3, 2), v128.and(c, t)), 2);
}

/**
 * The 4×4 transpose of i32 lanes that turns a group's level vectors L0..L3 into its sub-blocks in
 * value order (and back): lane j of result m is lane m of L_j. Result m (0..3).
 */
@inline export function q6krNatural(l0: v128, l1: v128, l2: v128, l3: v128, m: i32): v128 {
  // the usual two-step transpose: results 0 and 1 share their first-step shuffles, as do 2 and 3,
  // so a caller that takes all four leaves 8 shuffles after common subexpressions
  if (m < 2) {
    const t0 = v128.shuffle<i32>(l0, l1, 0, 4, 1, 5), t2 = v128.shuffle<i32>(l2, l3, 0, 4, 1, 5);
    return m == 0 ? v128.shuffle<i32>(t0, t2, 0, 1, 4, 5) : v128.shuffle<i32>(t0, t2, 2, 3, 6, 7);
  }
  const t1 = v128.shuffle<i32>(l0, l1, 2, 6, 3, 7), t3 = v128.shuffle<i32>(l2, l3, 2, 6, 3, 7);
  return m == 2 ? v128.shuffle<i32>(t1, t3, 0, 1, 4, 5) : v128.shuffle<i32>(t1, t3, 2, 3, 6, 7);
}

/**
 * Stored Q6_K's sub-block 8h + s of half h (s = 0..7: values 128h + 16s .. + 15) as levels 0..63,
 * from the half's ql vectors (q0..q3: ql[64h..64h+63]) and qh vectors (g0, g1: qh[32h..32h+31]).
 */
@inline function q6kSub(q0: v128, q1: v128, q2: v128, q3: v128, g0: v128, g1: v128, s: i32): v128 {
  const k = (s >> 1) & 3, i = s & 1;
  const l = k & 1 ? (i ? q3 : q2) : (i ? q1 : q0), g = i ? g1 : g0;
  const lo = v128.and(k >> 1 ? i16x8.shr_u(l, 4) : l, i8x16.splat(15));
  const hi = v128.and(i16x8.shl(i16x8.shr_u(g, 2 * k), 4), i8x16.splat(48));
  return v128.or(lo, hi);
}

/** BQ6_KR's vectors A, B, C (c = 0, 1, 2) of a group from its four sub-blocks in value order. */
@inline function q6krPack(n0: v128, n1: v128, n2: v128, n3: v128, c: i32): v128 {
  const l3 = q6krNatural(n0, n1, n2, n3, 3), top = i8x16.splat(-64);
  if (c == 0) return v128.or(q6krNatural(n0, n1, n2, n3, 0), v128.and(i16x8.shl(l3, 6), top));
  if (c == 1) return v128.or(q6krNatural(n0, n1, n2, n3, 1), v128.and(i16x8.shl(l3, 4), top));
  return v128.or(q6krNatural(n0, n1, n2, n3, 2), v128.and(i16x8.shl(l3, 2), top));
}

/** One half of a stored Q6_K super-block (its ql and qh vectors) into its two BQ6_KR groups at o. */
@inline function q6krHalf(o: usize, q0: v128, q1: v128, q2: v128, q3: v128, g0: v128, g1: v128): void {
  const a0 = q6kSub(q0, q1, q2, q3, g0, g1, 0), a1 = q6kSub(q0, q1, q2, q3, g0, g1, 1);
  const a2 = q6kSub(q0, q1, q2, q3, g0, g1, 2), a3 = q6kSub(q0, q1, q2, q3, g0, g1, 3);
  v128.store(o, q6krPack(a0, a1, a2, a3, 0));
  v128.store(o, q6krPack(a0, a1, a2, a3, 1), 16);
  v128.store(o, q6krPack(a0, a1, a2, a3, 2), 32);
  const b0 = q6kSub(q0, q1, q2, q3, g0, g1, 4), b1 = q6kSub(q0, q1, q2, q3, g0, g1, 5);
  const b2 = q6kSub(q0, q1, q2, q3, g0, g1, 6), b3 = q6kSub(q0, q1, q2, q3, g0, g1, 7);
  v128.store(o, q6krPack(b0, b1, b2, b3, 0), 48);
  v128.store(o, q6krPack(b0, b1, b2, b3, 1), 64);
  v128.store(o, q6krPack(b0, b1, b2, b3, 2), 80);
}

/**
 * Repack nsb Q6_K super-blocks stored at p into BQ6_KR's layout in place (the room for 2 more
 * bytes each follows them): last to first, each loaded whole before any of it is written (the
 * destination starts 2b bytes after the source). q6k-repack.ts repackQ6K writes the same bytes.
 */
export function repackQ6KInPlace(p: usize, nsb: i32): void {
  for (let b = nsb - 1; b >= 0; b--) q6krBlock(p + <usize>b * 210, p + <usize>b * 212);
}

/** One Q6_K super-block at s as BQ6_KR's at o (o may overlap s: the block is loaded whole first). */
@inline function q6krBlock(s: usize, o: usize): void {
  const q0 = v128.load(s), q1 = v128.load(s, 16), q2 = v128.load(s, 32), q3 = v128.load(s, 48);
  const q4 = v128.load(s, 64), q5 = v128.load(s, 80), q6 = v128.load(s, 96), q7 = v128.load(s, 112);
  const g0 = v128.load(s, 128), g1 = v128.load(s, 144), g2 = v128.load(s, 160), g3 = v128.load(s, 176);
  const sc = v128.load(s, 192), d = f16Bits32(<u32>load<u16>(s, 208));
  q6krHalf(o, q0, q1, q2, q3, g0, g1);
  q6krHalf(o + 96, q4, q5, q6, q7, g2, g3);
  v128.store(o, sc, 192);
  store<u32>(o, d, 208);
}

/** scatterStored's modes: what the staged bytes are and how they land (wasm-backend.ts loadStoredMany). */
export const SCATTER_COPY: i32 = 0;
export const SCATTER_Q8_0: i32 = 1;
export const SCATTER_Q4_0: i32 = 2;
export const SCATTER_Q4_K: i32 = 3;
export const SCATTER_Q6_K: i32 = 4;

/**
 * Units [u0, u1) of a staged piece of a weight's stored bytes at src put in place at dst, each
 * thread the units of its chunks (so each takes the page faults of what it writes), in the layout
 * the backend keeps (the bytes repackQ8_0InPlace, repackQ4_0InPlace, repackQ4KInPlace and
 * repackQ6KInPlace leave; the regroupings' description in gguf-repack.ts, q4k-repack.ts,
 * q6k-repack.ts):
 *   SCATTER_COPY: bytes, in 4 KiB units (the last one short: n is the piece's bytes);
 *   SCATTER_Q8_0: 34-byte blocks; block b's levels to dst + 32b, its d to aux + 2b;
 *   SCATTER_Q4_0: rows of n 18-byte blocks; each row's d's, then its 16 nibble bytes a block;
 *   SCATTER_Q4_K: 144-byte super-blocks to 152-byte ones;  SCATTER_Q6_K: 210 to 212.
 * Returns what the halves are (halfBits: Q8_0's by q8_0Nonfinite and q8_0Slow, Q4_0's by q4_0Slow;
 * others 0), which the caller ORs into the piece's flags.
 */
export function scatterStored(mode: i32, src: usize, dst: usize, aux: usize, n: i32, u0: i32, u1: i32): u32 {
  let bad: u32 = 0, slow: u32 = 0;
  if (mode == SCATTER_COPY) {
    const b0 = <usize>u0 << 12, b1 = min(<usize>u1 << 12, <usize>n);
    if (b1 > b0) memory.copy(dst + b0, src + b0, b1 - b0);
  } else if (mode == SCATTER_Q8_0) {
    for (let b = u0; b < u1; b++) {
      const s = src + <usize>b * 34, h = <u32>load<u16>(s);
      v128.store(dst + (<usize>b << 5), v128.load(s, 2)); v128.store(dst + (<usize>b << 5), v128.load(s, 18), 16);
      store<u16>(aux + (<usize>b << 1), <u16>h);
      bad |= q8_0Nonfinite(h);
      slow |= q8_0Slow(h);
    }
  } else if (mode == SCATTER_Q4_0) {
    const rb = <usize>n * 18, hb = <usize>n << 1;
    for (let r = u0; r < u1; r++) {
      const s = src + <usize>r * rb, d = dst + <usize>r * rb;
      for (let b = 0; b < n; b++) {
        const h = <u32>load<u16>(s + <usize>b * 18);
        store<u16>(d + (<usize>b << 1), <u16>h);
        v128.store(d + hb + (<usize>b << 4), v128.load(s + <usize>b * 18, 2));
        slow |= q4_0Slow(h);
      }
    }
  } else if (mode == SCATTER_Q4_K) {
    for (let b = u0; b < u1; b++) q4krBlock(src + <usize>b * 144, dst + <usize>b * 152);
  } else {
    for (let b = u0; b < u1; b++) q6krBlock(src + <usize>b * 210, dst + <usize>b * 212);
  }
  return halfBits(bad, slow);
}

/** Bytes of a row of K values. */
@inline export function blockRowBytes(dtype: i32, K: i32): usize {
  return <usize>(K / blockElems(dtype)) * <usize>blockBytes(dtype);
}

const STORE: i32 = 0;
const DOT: i32 = 1;
// how a block's integers become values: q·s, q·s + b, q·s − b
const OPM: i32 = 0;
const OPA: i32 = 1;
const OPS: i32 = 2;

/**
 * The IEEE half at p as f32, exactly. Built from the bits, never by multiplying an f32 denormal:
 * block scales of small weights are often half subnormals (below 6.1e-5: Q6_K's d of most layers),
 * and x86 cores take a microcode assist of ~100 cycles on every denormal operand.
 */
@inline function h2f(p: usize): f32 {
  const h = <u32>load<u16>(p);
  const s = (h & 0x8000) << 16, a = h & 0x7fff;
  if (a >= 0x400) return reinterpret<f32>(s | (a < 0x7c00 ? (a + 0x1c000) << 13 : 0x7f800000 | ((a & 0x3ff) << 13)));
  return reinterpret<f32>(s | reinterpret<u32>(<f32>a * reinterpret<f32>(0x33800000)));   // a·2⁻²⁴
}

/**
 * 16 values from the signed bytes of q: v = q·s (then + b or − b, rounded separately). STORE
 * writes them at p and returns 0; DOT returns Σ v·x[p..p+16) folded into 4 lanes.
 */
@inline function emit16(mode: i32, op: i32, q: v128, s: v128, b: v128, p: usize): v128 {
  const l = i16x8.extend_low_i8x16_s(q), h = i16x8.extend_high_i8x16_s(q);
  let v0 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(l)), s);
  let v1 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(l)), s);
  let v2 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h)), s);
  let v3 = f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h)), s);
  if (op == OPA) { v0 = f32x4.add(v0, b); v1 = f32x4.add(v1, b); v2 = f32x4.add(v2, b); v3 = f32x4.add(v3, b); }
  if (op == OPS) { v0 = f32x4.sub(v0, b); v1 = f32x4.sub(v1, b); v2 = f32x4.sub(v2, b); v3 = f32x4.sub(v3, b); }
  if (mode == STORE) {
    v128.store(p, v0); v128.store(p, v1, 16); v128.store(p, v2, 32); v128.store(p, v3, 48);
    return f32x4.splat(0);
  }
  return dot16(v0, v1, v2, v3, p);
}

/**
 * Σ v·x[p..p+16) folded into 4 lanes. The one-token GEMV (values in registers) and the
 * several-token GEMV (values decoded to scratch) both sum through this one expression, group by
 * group into the same two accumulators, so a token's result never depends on how many came with it.
 */
@inline function dot16(v0: v128, v1: v128, v2: v128, v3: v128, p: usize): v128 {
  return f32x4.add(fmadd(v0, v128.load(p), f32x4.mul(v1, v128.load(p, 16))), fmadd(v2, v128.load(p, 32), f32x4.mul(v3, v128.load(p, 48))));
}

@inline function add4(mode: i32, acc: v128, v: v128): v128 { return mode == DOT ? f32x4.add(acc, v) : acc; }

@inline function lo4(v: v128): v128 { return nibLo(v); }
@inline function hi4(v: v128): v128 { return nibHi(v); }

/** Byte j of the result = 16 when bit j (half = 0) or bit 16 + j (half = 1) of qh is set, else 0. */
@inline function qh16(qh: u32, half: i32): v128 {
  const v = i32x4.splat(<i32>qh);
  const b = half == 0 ? i8x16.swizzle(v, i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1))
    : i8x16.swizzle(v, i8x16(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const m = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return v128.and(i8x16.eq(v128.and(b, m), m), i8x16.splat(16));
}

// ------------------------------------------------------------------------------------------------
// 32-value blocks: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, q4_1_f32. p advances 128 bytes (32 f32) a block.

@inline function walk32(mode: i32, dtype: i32, src: usize, nb: i32, p: usize): v128 {
  let a0 = f32x4.splat(0), a1 = a0;
  const bb = <usize>blockBytes(dtype);
  for (let b = 0; b < nb; b++, src += bb, p += 128) {
    if (dtype == BQ8_0) {
      const s = f32x4.splat(h2f(src));
      a0 = add4(mode, a0, emit16(mode, OPM, v128.load(src + 2), s, s, p));
      a1 = add4(mode, a1, emit16(mode, OPM, v128.load(src + 18), s, s, p + 64));
    } else if (dtype == BQ4_0) {
      const s = f32x4.splat(h2f(src)), v = v128.load(src + 2), e = i8x16.splat(8);
      a0 = add4(mode, a0, emit16(mode, OPM, i8x16.sub(lo4(v), e), s, s, p));
      a1 = add4(mode, a1, emit16(mode, OPM, i8x16.sub(hi4(v), e), s, s, p + 64));
    } else if (dtype == BQ4_1 || dtype == BQ4_1F) {
      const f = dtype == BQ4_1F;
      const s = f32x4.splat(f ? load<f32>(src) : h2f(src)), m = f32x4.splat(f ? load<f32>(src + 4) : h2f(src + 2));
      const v = v128.load(src + (f ? 8 : 4));
      a0 = add4(mode, a0, emit16(mode, OPA, lo4(v), s, m, p));
      a1 = add4(mode, a1, emit16(mode, OPA, hi4(v), s, m, p + 64));
    } else if (dtype == BQ5_0) {
      const s = f32x4.splat(h2f(src)), qh = load<u32>(src + 2), v = v128.load(src + 6), e = i8x16.splat(16);
      a0 = add4(mode, a0, emit16(mode, OPM, i8x16.sub(v128.or(lo4(v), qh16(qh, 0)), e), s, s, p));
      a1 = add4(mode, a1, emit16(mode, OPM, i8x16.sub(v128.or(hi4(v), qh16(qh, 1)), e), s, s, p + 64));
    } else {   // BQ5_1
      const s = f32x4.splat(h2f(src)), m = f32x4.splat(h2f(src + 2)), qh = load<u32>(src + 4), v = v128.load(src + 8);
      a0 = add4(mode, a0, emit16(mode, OPA, v128.or(lo4(v), qh16(qh, 0)), s, m, p));
      a1 = add4(mode, a1, emit16(mode, OPA, v128.or(hi4(v), qh16(qh, 1)), s, m, p + 64));
    }
  }
  return f32x4.add(a0, a1);
}

/** Q8_0 regrouped (BQ8_0R): walk32's Q8_0 arithmetic on nb blocks, levels at lv, halves at sp. */
@inline function walkQ8R(mode: i32, lv: usize, sp: usize, nb: i32, p: usize): v128 {
  let a0 = f32x4.splat(0), a1 = a0;
  for (let b = 0; b < nb; b++, lv += 32, sp += 2, p += 128) {
    const s = f32x4.splat(h2f(sp));
    a0 = add4(mode, a0, emit16(mode, OPM, v128.load(lv), s, s, p));
    a1 = add4(mode, a1, emit16(mode, OPM, v128.load(lv, 16), s, s, p + 64));
  }
  return f32x4.add(a0, a1);
}

/** Q4_0 regrouped (BQ4_0R): walk32's Q4_0 arithmetic on nb blocks, halves at dp, nibbles at q (16 bytes each). */
@inline function walkQ4R(mode: i32, q: usize, dp: usize, nb: i32, p: usize): v128 {
  let a0 = f32x4.splat(0), a1 = a0;
  const e = i8x16.splat(8);
  for (let b = 0; b < nb; b++, q += 16, dp += 2, p += 128) {
    const s = f32x4.splat(h2f(dp)), v = v128.load(q);
    a0 = add4(mode, a0, emit16(mode, OPM, i8x16.sub(lo4(v), e), s, s, p));
    a1 = add4(mode, a1, emit16(mode, OPM, i8x16.sub(hi4(v), e), s, s, p + 64));
  }
  return f32x4.add(a0, a1);
}

// ------------------------------------------------------------------------------------------------
// 256-value super-blocks. p advances 1024 bytes a super-block.

/** Q4_K/Q5_K: the 6-bit scale (m = false) or min (m = true) of sub-block j from the 12 bytes at sc. */
@inline export function kScale(sc: usize, j: i32, m: bool): f32 {
  if (j < 4) return <f32>(load<u8>(sc + <usize>(j + (m ? 4 : 0))) & 63);
  const a = <u32>load<u8>(sc + <usize>(j + 4)), b = <u32>load<u8>(sc + <usize>(j - (m ? 0 : 4)));
  return <f32>((m ? a >> 4 : a & 0x0f) | ((b >> 6) << 4));
}

/** 16 where bit j of each byte of h is set, else 0 (16-bit lane shifts are single instructions; 8-bit ones are not). */
@inline function hbit(h: v128, j: i32): v128 {
  return i16x8.shl(v128.and(i16x8.shr_u(h, j), i8x16.splat(1)), 4);
}

// The walkers below loop over 32- or 64-value parts of a super-block rather than unrolling it: in
// one long straight-line body V8 hoists all of x's loads to the top and spills them.

/** Q4_K's repacked form (BQ4_KR): the scale (m = false) or min (m = true) of sub-block j, a byte each from sc. */
@inline function kScaleR(sc: usize, j: i32, m: bool): f32 { return <f32>load<u8>(sc + <usize>(j + (m ? 8 : 0))); }

/**
 * Q4_K (five = false), Q5_K (five = true, qh = the 32 bytes of high bits) and Q4_K repacked (rp:
 * d, dmin as f32, unpacked scales; the same products d·sc, dmin·m): 64 values per step, two
 * sub-blocks of 32.
 */
@inline function walkK45(mode: i32, five: bool, src: usize, nsb: i32, p: usize, rp: bool = false): v128 {
  let a0 = f32x4.splat(0), a1 = a0;
  const bb: usize = rp ? 152 : five ? 176 : 144;
  for (let b = 0; b < nsb; b++, src += bb, p += 1024) {
    const d = rp ? load<f32>(src) : h2f(src), dmin = rp ? load<f32>(src, 4) : h2f(src + 2);
    const sc = src + (rp ? 8 : 4), qs = src + (rp ? 24 : five ? 48 : 16);
    for (let c = 0; c < 4; c++) {
      const j0 = 2 * c, j1 = 2 * c + 1;
      const k0 = rp ? kScaleR(sc, j0, false) : kScale(sc, j0, false), n0 = rp ? kScaleR(sc, j0, true) : kScale(sc, j0, true);
      const k1 = rp ? kScaleR(sc, j1, false) : kScale(sc, j1, false), n1 = rp ? kScaleR(sc, j1, true) : kScale(sc, j1, true);
      const s0 = f32x4.splat(d * k0), m0 = f32x4.splat(dmin * n0);
      const s1 = f32x4.splat(d * k1), m1 = f32x4.splat(dmin * n1);
      const v0 = v128.load(qs + <usize>(32 * c)), v1 = v128.load(qs + <usize>(32 * c + 16));
      let q0 = lo4(v0), q1 = lo4(v1), q2 = hi4(v0), q3 = hi4(v1);
      if (five) {
        // bit j of qh[l] is bit 4 of value l of sub-block j
        const h0 = v128.load(src + 16), h1 = v128.load(src + 32);
        q0 = v128.or(q0, hbit(h0, j0)); q1 = v128.or(q1, hbit(h1, j0));
        q2 = v128.or(q2, hbit(h0, j1)); q3 = v128.or(q3, hbit(h1, j1));
      }
      const o = p + <usize>(256 * c);
      a0 = add4(mode, a0, emit16(mode, OPS, q0, s0, m0, o));
      a1 = add4(mode, a1, emit16(mode, OPS, q1, s0, m0, o + 64));
      a0 = add4(mode, a0, emit16(mode, OPS, q2, s1, m1, o + 128));
      a1 = add4(mode, a1, emit16(mode, OPS, q3, s1, m1, o + 192));
    }
  }
  return f32x4.add(a0, a1);
}

/**
 * Q6_K: ql[128], qh[64], int8 scales[16] (one per 16 values), d; value (d·sc)·(q − 32). Values
 * 128h + 32k + l (l < 32): low 4 bits from ql[64h + 32(k & 1) + l] (low nibble for k < 2, high
 * for k ≥ 2), high 2 bits from bits 2k, 2k + 1 of qh[32h + l].
 */
@inline function walkQ6K(mode: i32, src: usize, nsb: i32, p: usize): v128 {
  let a0 = f32x4.splat(0), a1 = a0;
  const e = i8x16.splat(32), three = i8x16.splat(3), fifteen = i8x16.splat(15);
  for (let b = 0; b < nsb; b++, src += 210, p += 1024) {
    const d = h2f(src + 208);
    for (let t = 0; t < 8; t++) {
      const h = t >> 2, k = t & 3;
      const lo = src + <usize>(64 * h + 32 * (k & 1)), qh = src + <usize>(128 + 32 * h);
      const sh = (k >> 1) << 2;
      const b0 = v128.and(i16x8.shr_u(v128.load(lo), sh), fifteen), b1 = v128.and(i16x8.shr_u(v128.load(lo, 16), sh), fifteen);
      const h0 = i16x8.shl(v128.and(i16x8.shr_u(v128.load(qh), 2 * k), three), 4);
      const h1 = i16x8.shl(v128.and(i16x8.shr_u(v128.load(qh, 16), 2 * k), three), 4);
      const q0 = i8x16.sub(v128.or(b0, h0), e), q1 = i8x16.sub(v128.or(b1, h1), e);
      const sc = src + <usize>(192 + 8 * h + 2 * k);
      const s0 = f32x4.splat(d * <f32>load<i8>(sc)), s1 = f32x4.splat(d * <f32>load<i8>(sc + 1));
      const o = p + <usize>(128 * t);
      a0 = add4(mode, a0, emit16(mode, OPM, q0, s0, s0, o));
      a1 = add4(mode, a1, emit16(mode, OPM, q1, s1, s1, o + 64));
    }
  }
  return f32x4.add(a0, a1);
}

/**
 * Q6_K repacked (BQ6_KR): the same values and products as walkQ6K, in the same order (sub-block
 * 2t into a0, 2t + 1 into a1), each group's levels put back in value order (q6krNatural).
 */
@inline function walkQ6KR(mode: i32, src: usize, nsb: i32, p: usize): v128 {
  let a0 = f32x4.splat(0), a1 = a0;
  const e = i8x16.splat(32);
  for (let b = 0; b < nsb; b++, src += 212, p += 1024) {
    const d = load<f32>(src, 208);
    for (let g = 0; g < 4; g++) {
      const q = src + <usize>(48 * g);
      const va = v128.load(q), vb = v128.load(q, 16), vc = v128.load(q, 32);
      const l0 = q6krLevels(va, vb, vc, 0), l1 = q6krLevels(va, vb, vc, 1), l2 = q6krLevels(va, vb, vc, 2), l3 = q6krLevels(va, vb, vc, 3);
      const sc = src + <usize>(192 + 4 * g), o = p + <usize>(256 * g);
      const s0 = f32x4.splat(d * <f32>load<i8>(sc)), s1 = f32x4.splat(d * <f32>load<i8>(sc + 1));
      a0 = add4(mode, a0, emit16(mode, OPM, i8x16.sub(q6krNatural(l0, l1, l2, l3, 0), e), s0, s0, o));
      a1 = add4(mode, a1, emit16(mode, OPM, i8x16.sub(q6krNatural(l0, l1, l2, l3, 1), e), s1, s1, o + 64));
      const s2 = f32x4.splat(d * <f32>load<i8>(sc + 2)), s3 = f32x4.splat(d * <f32>load<i8>(sc + 3));
      a0 = add4(mode, a0, emit16(mode, OPM, i8x16.sub(q6krNatural(l0, l1, l2, l3, 2), e), s2, s2, o + 128));
      a1 = add4(mode, a1, emit16(mode, OPM, i8x16.sub(q6krNatural(l0, l1, l2, l3, 3), e), s3, s3, o + 192));
    }
  }
  return f32x4.add(a0, a1);
}

// One small function per dtype and mode (not inlined into each other: V8 compiles a function of
// one walker far better than one holding all of them, and binaryen takes minutes over the latter).
function dotQ8_0(src: usize, n: i32, x: usize): v128 { return walk32(DOT, BQ8_0, src, n >> 5, x); }
function dotQ4_0(src: usize, n: i32, x: usize): v128 { return walk32(DOT, BQ4_0, src, n >> 5, x); }
function dotQ4_1(src: usize, n: i32, x: usize): v128 { return walk32(DOT, BQ4_1, src, n >> 5, x); }
function dotQ5_0(src: usize, n: i32, x: usize): v128 { return walk32(DOT, BQ5_0, src, n >> 5, x); }
function dotQ5_1(src: usize, n: i32, x: usize): v128 { return walk32(DOT, BQ5_1, src, n >> 5, x); }
function dotQ4_1F(src: usize, n: i32, x: usize): v128 { return walk32(DOT, BQ4_1F, src, n >> 5, x); }
function dotQ4_K(src: usize, n: i32, x: usize): v128 { return walkK45(DOT, false, src, n >> 8, x); }
function dotQ5_K(src: usize, n: i32, x: usize): v128 { return walkK45(DOT, true, src, n >> 8, x); }
function dotQ6_K(src: usize, n: i32, x: usize): v128 { return walkQ6K(DOT, src, n >> 8, x); }
function dotQ4_KR(src: usize, n: i32, x: usize): v128 { return walkK45(DOT, false, src, n >> 8, x, true); }
function dotQ6_KR(src: usize, n: i32, x: usize): v128 { return walkQ6KR(DOT, src, n >> 8, x); }
function decQ8_0(src: usize, n: i32, dst: usize): void { walk32(STORE, BQ8_0, src, n >> 5, dst); }
function decQ4_0(src: usize, n: i32, dst: usize): void { walk32(STORE, BQ4_0, src, n >> 5, dst); }
function decQ4_1(src: usize, n: i32, dst: usize): void { walk32(STORE, BQ4_1, src, n >> 5, dst); }
function decQ5_0(src: usize, n: i32, dst: usize): void { walk32(STORE, BQ5_0, src, n >> 5, dst); }
function decQ5_1(src: usize, n: i32, dst: usize): void { walk32(STORE, BQ5_1, src, n >> 5, dst); }
function decQ4_1F(src: usize, n: i32, dst: usize): void { walk32(STORE, BQ4_1F, src, n >> 5, dst); }
function decQ4_K(src: usize, n: i32, dst: usize): void { walkK45(STORE, false, src, n >> 8, dst); }
function decQ5_K(src: usize, n: i32, dst: usize): void { walkK45(STORE, true, src, n >> 8, dst); }
function decQ6_K(src: usize, n: i32, dst: usize): void { walkQ6K(STORE, src, n >> 8, dst); }
function decQ4_KR(src: usize, n: i32, dst: usize): void { walkK45(STORE, false, src, n >> 8, dst, true); }
// BQ4_0R: src a row's start, n its K (its K/32 halves, then the nibble bytes)
function dotQ4_0R(src: usize, n: i32, x: usize): v128 { return walkQ4R(DOT, src + (<usize>(n >> 5) << 1), src, n >> 5, x); }
function dotQ8_0R(lv: usize, sp: usize, n: i32, x: usize): v128 { return walkQ8R(DOT, lv, sp, n >> 5, x); }
function decQ8_0R(lv: usize, sp: usize, n: i32, dst: usize): void { walkQ8R(STORE, lv, sp, n >> 5, dst); }
function decQ4_0R(q: usize, dp: usize, n: i32, dst: usize): void { walkQ4R(STORE, q, dp, n >> 5, dst); }
function decQ6_KR(src: usize, n: i32, dst: usize): void { walkQ6KR(STORE, src, n >> 8, dst); }

/** Σ over n values (whole blocks) at src of decoded w · x, folded into 4 lanes. */
function dotBlocks(dtype: i32, src: usize, n: i32, x: usize): v128 {
  switch (dtype) {
    case BQ4_K: return dotQ4_K(src, n, x);
    case BQ5_K: return dotQ5_K(src, n, x);
    case BQ6_K: return dotQ6_K(src, n, x);
    case BQ4_KR: return dotQ4_KR(src, n, x);
    case BQ4_0R: return dotQ4_0R(src, n, x);
    case BQ6_KR: return dotQ6_KR(src, n, x);
    case BQ8_0: return dotQ8_0(src, n, x);
    case BQ4_0: return dotQ4_0(src, n, x);
    case BQ4_1: return dotQ4_1(src, n, x);
    case BQ5_0: return dotQ5_0(src, n, x);
    case BQ5_1: return dotQ5_1(src, n, x);
    default: return dotQ4_1F(src, n, x);
  }
}

/** n values (whole blocks) stored at src, decoded to f32 at dst. */
export function decodeBlocks(dtype: i32, src: usize, n: i32, dst: usize): void {
  switch (dtype) {
    case BQ4_K: decQ4_K(src, n, dst); break;
    case BQ5_K: decQ5_K(src, n, dst); break;
    case BQ6_K: decQ6_K(src, n, dst); break;
    case BQ4_KR: decQ4_KR(src, n, dst); break;
    case BQ6_KR: decQ6_KR(src, n, dst); break;
    case BQ8_0: decQ8_0(src, n, dst); break;
    case BQ4_0: decQ4_0(src, n, dst); break;
    case BQ4_1: decQ4_1(src, n, dst); break;
    case BQ5_0: decQ5_0(src, n, dst); break;
    case BQ5_1: decQ5_1(src, n, dst); break;
    default: decQ4_1F(src, n, dst);
  }
}

/** Values [k0, k0 + len) of row r of a block weight with K columns, decoded to f32 at dst (k0, len whole blocks). */
export function decodeBlockRow(dtype: i32, data: usize, K: i32, r: i32, k0: i32, len: i32, dst: usize): void {
  if (dtype == BQ4_0R) {
    // a row's halves, then its nibbles
    const row = data + <usize>r * blockRowBytes(dtype, K), b0 = <usize>(k0 >> 5);
    decQ4_0R(row + (<usize>(K >> 5) << 1) + (b0 << 4), row + (b0 << 1), len, dst);
    return;
  }
  const src = data + <usize>r * blockRowBytes(dtype, K) + <usize>(k0 / blockElems(dtype)) * <usize>blockBytes(dtype);
  decodeBlocks(dtype, src, len, dst);
}

// ------------------------------------------------------------------------------------------------
// GEMV

/**
 * One token: out[n] (+)= Σ_k x[k]·W[n,k] for rows [n0, n1), decoding in registers. Value group g
 * (16 values) of a row goes into accumulator g & 1 (every walker alternates them), then the two are
 * added and summed across lanes: gemvBlockRows reproduces exactly this for each of its tokens.
 */
export function gemvBlock(dtype: i32, out: usize, x: usize, w: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  const rb = blockRowBytes(dtype, K);
  let p = w + <usize>n0 * rb;
  for (let n = n0; n < n1; n++, p += rb) {
    const s = hsum(dotBlocks(dtype, p, K, x));
    const op = out + (<usize>n << 2);
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

/** gemvBlock for Q8_0 regrouped (BQ8_0R): levels at w (K a row), halves at ws. */
export function gemvQ8_0RExact(out: usize, x: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32): void {
  for (let n = n0; n < n1; n++) {
    const e = <usize>n * <usize>K;
    const s = hsum(dotQ8_0R(w + e, ws + (e >> 4), K, x));
    const op = out + (<usize>n << 2);
    store<f32>(op, acc ? load<f32>(op) + s : s);
  }
}

/** Values the several-token GEMV decodes at a time (into 1 KiB of per-thread scratch). */
export const BLOCK_CHUNK: i32 = 256;

/**
 * R = 2..4 tokens (rows of x `ldx` bytes apart, of out `ldo` bytes apart): each weight row is
 * decoded 256 values at a time into `tmp` (per-thread scratch, 1 KiB) and used for every token.
 * ws: BQ8_0R's halves (other dtypes ignore it).
 */
export function gemvBlockRows(dtype: i32, R: i32, out: usize, ldo: usize, x: usize, ldx: usize, w: usize, ws: usize, K: i32,
  n0: i32, n1: i32, acc: i32, tmp: usize): void {
  if (R == 2) gemvBlockRows2(dtype, out, ldo, x, ldx, w, ws, K, n0, n1, acc, tmp);
  else if (R == 3) gemvBlockRows3(dtype, out, ldo, x, ldx, w, ws, K, n0, n1, acc, tmp);
  else gemvBlockRows4(dtype, out, ldo, x, ldx, w, ws, K, n0, n1, acc, tmp);
}

// One function per R (exported, so binaryen keeps each out of line): V8 compiles them better so.
export function gemvBlockRows2(dtype: i32, out: usize, ldo: usize, x: usize, ldx: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32, tmp: usize): void {
  gemvBlockRowsR(dtype, out, ldo, x, ldx, w, ws, K, n0, n1, acc, tmp, 2);
}
export function gemvBlockRows3(dtype: i32, out: usize, ldo: usize, x: usize, ldx: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32, tmp: usize): void {
  gemvBlockRowsR(dtype, out, ldo, x, ldx, w, ws, K, n0, n1, acc, tmp, 3);
}
export function gemvBlockRows4(dtype: i32, out: usize, ldo: usize, x: usize, ldx: usize, w: usize, ws: usize, K: i32, n0: i32, n1: i32, acc: i32, tmp: usize): void {
  gemvBlockRowsR(dtype, out, ldo, x, ldx, w, ws, K, n0, n1, acc, tmp, 4);
}

@inline function gemvBlockRowsR(dtype: i32, out: usize, ldo: usize, x: usize, ldx: usize, w: usize, ws: usize, K: i32,
  n0: i32, n1: i32, acc: i32, tmp: usize, R: i32): void {
  const x1 = x + ldx, x2 = x1 + ldx, x3 = x2 + ldx;
  for (let n = n0; n < n1; n++) {
    // a: even 16-value groups, b: odd ones, per token (as gemvBlock's walkers)
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    for (let k0 = 0; k0 < K; k0 += BLOCK_CHUNK) {
      const len = min(BLOCK_CHUNK, K - k0);
      // (BQ8_0R: levels at w, K a row; halves at ws, one per 32 values)
      if (dtype == BQ8_0R) { const e = <usize>n * <usize>K + <usize>k0; decQ8_0R(w + e, ws + (e >> 4), len, tmp); }
      else decodeBlockRow(dtype, w, K, n, k0, len, tmp);
      const xo = <usize>k0 << 2, end = <usize>len << 2;
      for (let o: usize = 0; o < end; o += 128) {
        const t = tmp + o, q = xo + o;
        const u0 = v128.load(t), u1 = v128.load(t, 16), u2 = v128.load(t, 32), u3 = v128.load(t, 48);
        const v0 = v128.load(t, 64), v1 = v128.load(t, 80), v2 = v128.load(t, 96), v3 = v128.load(t, 112);
        a0 = f32x4.add(a0, dot16(u0, u1, u2, u3, x + q)); b0 = f32x4.add(b0, dot16(v0, v1, v2, v3, x + q + 64));
        a1 = f32x4.add(a1, dot16(u0, u1, u2, u3, x1 + q)); b1 = f32x4.add(b1, dot16(v0, v1, v2, v3, x1 + q + 64));
        if (R > 2) { a2 = f32x4.add(a2, dot16(u0, u1, u2, u3, x2 + q)); b2 = f32x4.add(b2, dot16(v0, v1, v2, v3, x2 + q + 64)); }
        if (R > 3) { a3 = f32x4.add(a3, dot16(u0, u1, u2, u3, x3 + q)); b3 = f32x4.add(b3, dot16(v0, v1, v2, v3, x3 + q + 64)); }
      }
    }
    const s = hsum4(f32x4.add(a0, b0), f32x4.add(a1, b1), f32x4.add(a2, b2), f32x4.add(a3, b3));
    storeR(out + (<usize>n << 2), ldo, s, acc, R);
  }
}
