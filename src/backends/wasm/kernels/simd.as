// SIMD helpers shared by every kernel (AssemblyScript, compiled by scripts/build-wasm.mjs).
// The module is compiled twice: once for plain SIMD128 and once with relaxed SIMD, where
// ASC_FEATURE_RELAXED_SIMD is true and the helpers below use the fused / dot forms.

/** a·b + c (fused when relaxed SIMD is available: results may differ in the last bit). */
@inline export function fmadd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  else return f32x4.add(f32x4.mul(a, b), c);
}

@inline export function zero4(): v128 { return f32x4.splat(0); }

/** Sum of the 4 lanes. */
@inline export function hsum(v: v128): f32 {
  const t = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  const u = f32x4.add(t, v128.shuffle<f32>(t, t, 1, 0, 3, 2));
  return f32x4.extract_lane(u, 0);
}

/** [Σa, Σb, Σc, Σd]: the lane sums of four vectors in one vector. */
@inline export function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(v128.shuffle<f32>(a, b, 0, 4, 1, 5), v128.shuffle<f32>(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(v128.shuffle<f32>(c, d, 0, 4, 1, 5), v128.shuffle<f32>(c, d, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(ab, cd, 0, 1, 4, 5), v128.shuffle<f32>(ab, cd, 2, 3, 6, 7));
}

@inline export function hmax(v: v128): f32 {
  const t = f32x4.max(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  const u = f32x4.max(t, v128.shuffle<f32>(t, t, 1, 0, 3, 2));
  return f32x4.extract_lane(u, 0);
}

/**
 * exp(x) lane-wise: 2^n · e^r with n = round(x·log2 e) and r reduced in two steps (Cody–Waite),
 * e^r from Cephes' degree-6 expf polynomial (about 2 ulp). x is clamped to [-87.3, 88.3] so the
 * result stays a normal float: exp of anything below -87.3 comes out as ~1e-38 instead of 0.
 */
@inline export function vexp(x0: v128): v128 {
  const x = f32x4.min(f32x4.max(x0, f32x4.splat(-87.3)), f32x4.splat(88.3));
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(1.44269504088896341)));
  let r = fmadd(n, f32x4.splat(-0.693359375), x);
  r = fmadd(n, f32x4.splat(2.12194440e-4), r);
  let p = f32x4.splat(1.9875691500e-4);
  p = fmadd(p, r, f32x4.splat(1.3981999507e-3));
  p = fmadd(p, r, f32x4.splat(8.3334519073e-3));
  p = fmadd(p, r, f32x4.splat(4.1665795894e-2));
  p = fmadd(p, r, f32x4.splat(1.6666665459e-1));
  p = fmadd(p, r, f32x4.splat(5.0000001201e-1));
  p = fmadd(p, f32x4.mul(r, r), f32x4.add(r, f32x4.splat(1)));
  const e = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return f32x4.mul(p, e);
}

@inline export function expf(x: f32): f32 { return f32x4.extract_lane(vexp(f32x4.splat(x)), 0); }

/** silu(a) = a / (1 + exp(-a)). */
@inline export function vsilu(a: v128): v128 {
  return f32x4.div(a, f32x4.add(f32x4.splat(1), vexp(f32x4.neg(a))));
}

/** Start of thread tid's share when n items are split into nt chunks whose boundaries are multiples of align. */
@inline export function part(n: i32, tid: i32, nt: i32, align: i32): i32 {
  const units = (n + align - 1) / align;
  return min(n, <i32>((<i64>units * tid) / nt) * align);
}

// bf16 / f16 bit patterns held in the upper 16 bits of a 32-bit lane (low bits ignored) → f32.
/** bf16 is the upper half of an f32: just clear the low half. */
@inline export function bf16hiToF32(v: v128): v128 { return v128.and(v, i32x4.splat(0xffff0000)); }

/**
 * f16 → f32: move exponent and mantissa down 3 bits (the sign stays put via an arithmetic
 * shift and a mask), then scale by 2^112 to rebias the exponent. Exact for normal and subnormal
 * halves; Inf/NaN halves come out as finite ±2^16·(1+m) (weights never hold them). A subnormal
 * half becomes an f32 denormal operand of the multiply, which costs x86 cores a microcode assist
 * (~100+ cycles): hot loops test for those first (f16AnySubnormal) and take f16hiToF32Exact.
 */
@inline export function f16hiToF32(v: v128): v128 {
  const b = v128.and(i32x4.shr_s(v, 3), i32x4.splat(0x8fffe000));
  return f32x4.mul(b, f32x4.splat(5.192296858534828e33));
}

/**
 * f16hiToF32 without any denormal operand: the exponent is rebiased by an integer add; a
 * subnormal half (exponent 0, mantissa m) is built as ±2⁻¹⁴·(1 + m/1024) and ±2⁻¹⁴ is subtracted,
 * which leaves ±m·2⁻²⁴ exactly (zero halves give +0).
 */
@inline export function f16hiToF32Exact(v: v128): v128 {
  const b = v128.and(i32x4.shr_s(v, 3), i32x4.splat(0x8fffe000));
  const z = i32x4.eq(v128.and(v, i32x4.splat(0x7c000000)), i32x4.splat(0));
  const t = i32x4.add(b, v128.bitselect(i32x4.splat(113 << 23), i32x4.splat(112 << 23), z));
  const c = v128.and(z, v128.or(v128.and(v, i32x4.splat(0x80000000)), i32x4.splat(0x38800000)));
  return f32x4.sub(t, c);
}

/** The four f16 at p (consecutive, e.g. q8's block scales) as f32x4, exactly (f16hiToF32Exact). */
@inline export function f16x4At(p: usize): v128 { return f16hiToF32Exact(i32x4.shl(v128.load16x4_u(p), 16)); }

/**
 * One f16 (bits in the low 16 of h) as f32, exactly, without a denormal operand: a normal half is
 * its bits moved up 13 and rebiased by an integer add; a subnormal one m·2⁻²⁴ from the integer m
 * (a normal f32) times 2⁻²⁴. Infinity and NaN halves (never a weight's scale) come out finite.
 */
@inline export function f16ToF32Scalar(h: u32): f32 {
  const a = h & 0x7fff;
  const v = a >= 0x400 ? reinterpret<f32>((a << 13) + (112 << 23)) : <f32>a * 5.9604644775390625e-8;
  return h & 0x8000 ? -v : v;
}

/** The f16 at p as f32 in every lane, exactly. */
@inline export function f16SplatAt(p: usize): v128 { return f16hiToF32Exact(i32x4.splat(<i32>load<u16>(p) << 16)); }

/**
 * Whether any of the 16 halves in a and b has a zero exponent: subnormal (or zero, rare in weights,
 * which then merely takes the exact path too).
 */
@inline export function f16AnySubnormal(a: v128, b: v128): bool {
  const e = i16x8.splat(0x7c00);
  return !i16x8.all_true(i16x8.min_u(v128.and(a, e), v128.and(b, e)));
}

// 4-bit weights: a byte's low and high nibble as bytes 0..15. i8x16.shr_u would do for the high
// one, but V8 (x64) has no byte shift and builds that op's mask anew at every use (5 instructions);
// a 16-bit shift and the low nibble's mask, which stays in a register, give the same bytes in 2.
@inline export function nibLo(v: v128): v128 { return v128.and(v, i8x16.splat(0x0f)); }
@inline export function nibHi(v: v128): v128 { return v128.and(i16x8.shr_u(v, 4), i8x16.splat(0x0f)); }

// q4's coded scales (weight-format.ts): per row, D and M (f32), nb u8 scale codes, nb i8 min
// codes, padded to 4 bytes. A block's scale is D·sc and its min M·mc, each one f32 multiply.

/** Bytes of one q4 row's scale data. */
@inline export function q4MetaBytes(K: i32): usize { return 8 + ((<usize>(K >> 4) + 3) & ~3); }

/** Four u8 codes at p as f32x4. */
@inline export function codes4u(p: usize): v128 {
  // 0..255: the signed conversion is exact and one instruction (x86 has no unsigned one)
  return f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(i16x8.extend_low_i8x16_u(v128.load32_zero(p))));
}

/** Four i8 codes at p as f32x4. */
@inline export function codes4s(p: usize): v128 {
  return f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(v128.load32_zero(p))));
}
