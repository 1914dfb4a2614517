// Training attention over B sequences of T tokens (causal, GQA), on the qkv rows the QKV
// projection writes: [B·T, (Q + 2·Hkv)·hd], query head h reading kv head h / (Q / Hkv).
//
// Forward, per work item (sequence b, kv head g, block of BR queries): for each of the G query
// heads of the group, S = Q·Kᵀ over the keys up to the block's last query (one small GEMM), an
// exact row softmax (the whole causal row fits: BR × T floats of scratch, never T × T), O = P·V,
// and the row's logsumexp saved for the backward.
// Backward (flash-attention style: P is recomputed from q, k and the logsumexp), per work item
// (sequence b, kv head g), so each item owns its dK and dV rows and its dQ rows outright and
// nothing is summed across threads: for every query block and head, S = Q·Kᵀ, P = exp(S·scale −
// lse), dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dO ⊙ O))·scale, dQ = dS·K, dK += dSᵀ·Q, dV += Pᵀ·dO, in
// a fixed order. All products go through the training GEMM's tile routine (train_gemm).

import { localGemm, TGEMM_SCRATCH } from './train_gemm';
import { fmadd, hsum, hmax } from './simd';

export const ABR: i32 = 48;

/**
 * exp(x) lane-wise with simd.as's vexp polynomial (Cephes expf, ~2 ulp, input clamped to
 * [-87.3, 88.3]), but n = round(x·log2 e) comes from the 1.5·2^23 rounding trick: its integer
 * sits in the low mantissa bits, so 2^n is a shift and an add instead of nearest + trunc_sat
 * (which V8 expands into a dozen instructions); 20-30 % faster. The fused x·log2 e + 1.5·2^23
 * can pick the other n next to a tie, so results may differ from vexp's in the last bits there.
 */
@inline export function vexpT(x0: v128): v128 {
  const x = f32x4.min(f32x4.max(x0, f32x4.splat(-87.3)), f32x4.splat(88.3));
  const t = fmadd(x, f32x4.splat(1.44269504088896341), f32x4.splat(12582912.0));
  const n = f32x4.sub(t, f32x4.splat(12582912.0));
  let r = fmadd(n, f32x4.splat(-0.693359375), x);
  r = fmadd(n, f32x4.splat(2.12194440e-4), r);
  let p = f32x4.splat(1.9875691500e-4);
  p = fmadd(p, r, f32x4.splat(1.3981999507e-3));
  p = fmadd(p, r, f32x4.splat(8.3334519073e-3));
  p = fmadd(p, r, f32x4.splat(4.1665795894e-2));
  p = fmadd(p, r, f32x4.splat(1.6666665459e-1));
  p = fmadd(p, r, f32x4.splat(5.0000001201e-1));
  p = fmadd(p, f32x4.mul(r, r), f32x4.add(r, f32x4.splat(1)));
  return f32x4.mul(p, i32x4.add(i32x4.shl(t, 23), i32x4.splat(127 << 23)));
}

@inline export function expT(x: f32): f32 { return f32x4.extract_lane(vexpT(f32x4.splat(x)), 0); }

/** ln(x) for a normal positive x, in f64 (no lookup tables: kernels must not have data segments). */
export function logF64(x: f64): f64 {
  const bits = reinterpret<u64>(x);
  let e = <i32>((bits >> 52) & 0x7ff) - 1023;
  let m = reinterpret<f64>((bits & 0x000fffffffffffff) | 0x3ff0000000000000);
  if (m > 1.4142135623730951) { m *= 0.5; e++; }
  const s = (m - 1) / (m + 1), s2 = s * s;
  let p: f64 = 1.0 / 21;
  p = p * s2 + 1.0 / 19; p = p * s2 + 1.0 / 17; p = p * s2 + 1.0 / 15; p = p * s2 + 1.0 / 13;
  p = p * s2 + 1.0 / 11; p = p * s2 + 1.0 / 9; p = p * s2 + 1.0 / 7; p = p * s2 + 1.0 / 5;
  p = p * s2 + 1.0 / 3; p = p * s2 + 1;
  return <f64>e * 0.6931471805599453 + 2 * s * p;
}

/** Scratch bytes per thread for sequences of T tokens. */
export function attnTrainScratch(T: i32): i32 { return TGEMM_SCRATCH + 2 * ABR * T * 4 + 64; }

export function attnFwdItems(B: i32, T: i32, Hkv: i32): i32 { return B * Hkv * ((T + ABR - 1) / ABR); }

/** Forward items c, c + nc, ... */
export function attnForward(out: usize, lse: usize, qkv: usize, B: i32, T: i32, Q: i32, Hkv: i32, hd: i32,
  scr: usize, c: i32, nc: i32): void {
  const W = (Q + 2 * Hkv) * hd, QD = Q * hd, G = Q / Hkv, nqb = (T + ABR - 1) / ABR;
  const scale: f32 = <f32>(1 / Math.sqrt(<f64>hd));
  const S = scr + <usize>TGEMM_SCRATCH, gs = scr;
  const items = B * Hkv * nqb;
  for (let it = c; it < items; it += nc) {
    const b = it / (Hkv * nqb), rem = it - b * Hkv * nqb, g = rem / nqb;
    const qb = nqb - 1 - (rem - g * nqb);        // longest blocks first
    const i0 = qb * ABR, br = min(ABR, T - i0), Tk = i0 + br;
    const rowB = <usize>Tk << 2;
    const kp = qkv + ((<usize>(b * T) * <usize>W + <usize>((Q + g) * hd)) << 2);
    const vp = qkv + ((<usize>(b * T) * <usize>W + <usize>((Q + Hkv + g) * hd)) << 2);
    for (let hh = 0; hh < G; hh++) {
      const h = g * G + hh;
      const qp = qkv + ((<usize>(b * T + i0) * <usize>W + <usize>(h * hd)) << 2);
      localGemm(S, Tk, qp, W, 0, kp, W, 1, br, Tk, hd, 0, gs);
      for (let r = 0; r < br; r++) {
        const row = S + <usize>r * rowB, cnt = i0 + r + 1;
        const c4 = cnt & ~3;
        let mv = f32x4.splat(-3.0e38);
        let j = 0;
        for (; j < c4; j += 4) mv = f32x4.max(mv, v128.load(row + (<usize>j << 2)));
        let mx = hmax(mv);
        for (; j < cnt; j++) mx = max(mx, load<f32>(row + (<usize>j << 2)));
        const sv = f32x4.splat(scale), ms = f32x4.splat(mx * scale);
        let sum = f32x4.splat(0);
        j = 0;
        for (; j < c4; j += 4) {
          const o = <usize>j << 2;
          const p = vexpT(f32x4.sub(f32x4.mul(v128.load(row + o), sv), ms));
          v128.store(row + o, p);
          sum = f32x4.add(sum, p);
        }
        let s = hsum(sum);
        for (; j < cnt; j++) {
          const o = <usize>j << 2;
          const p = expT(load<f32>(row + o) * scale - mx * scale);
          store<f32>(row + o, p);
          s += p;
        }
        const inv = f32x4.splat(<f32>1 / s);
        j = 0;
        for (; j < c4; j += 4) { const o = <usize>j << 2; v128.store(row + o, f32x4.mul(v128.load(row + o), inv)); }
        const il: f32 = <f32>1 / s;
        for (; j < cnt; j++) { const o = <usize>j << 2; store<f32>(row + o, load<f32>(row + o) * il); }
        if (cnt < Tk) memory.fill(row + (<usize>cnt << 2), 0, <usize>(Tk - cnt) << 2);
        store<f32>(lse + ((<usize>((b * Q + h) * T + i0 + r)) << 2), <f32>(<f64>(mx * scale) + logF64(<f64>s)));
      }
      const op = out + ((<usize>(b * T + i0) * <usize>QD + <usize>(h * hd)) << 2);
      localGemm(op, QD, S, Tk, 0, vp, W, 0, br, hd, Tk, 0, gs);
    }
  }
}

export function attnBwdItems(B: i32, Hkv: i32): i32 { return B * Hkv; }

/** Backward items c, c + nc, ...: dqkv (all three parts) is overwritten. */
export function attnBackward(dqkv: usize, dout: usize, qkv: usize, out: usize, lse: usize, B: i32, T: i32, Q: i32,
  Hkv: i32, hd: i32, scr: usize, c: i32, nc: i32): void {
  const W = (Q + 2 * Hkv) * hd, QD = Q * hd, G = Q / Hkv, nqb = (T + ABR - 1) / ABR;
  const scale: f32 = <f32>(1 / Math.sqrt(<f64>hd));
  const gs = scr, S = scr + <usize>TGEMM_SCRATCH, DP = S + <usize>ABR * <usize>T * 4;
  const items = B * Hkv;
  const d4 = hd & ~3;
  for (let it = c; it < items; it += nc) {
    const b = it / Hkv, g = it - b * Hkv;
    const koff = <usize>((Q + g) * hd), voff = <usize>((Q + Hkv + g) * hd);
    const kp = qkv + ((<usize>(b * T) * <usize>W + koff) << 2), vp = qkv + ((<usize>(b * T) * <usize>W + voff) << 2);
    const dkp = dqkv + ((<usize>(b * T) * <usize>W + koff) << 2), dvp = dqkv + ((<usize>(b * T) * <usize>W + voff) << 2);
    for (let j = 0; j < T; j++) {
      const o = <usize>j * <usize>W << 2;
      memory.fill(dkp + o, 0, <usize>hd << 2);
      memory.fill(dvp + o, 0, <usize>hd << 2);
    }
    for (let qb = 0; qb < nqb; qb++) {
      const i0 = qb * ABR, br = min(ABR, T - i0), Tk = i0 + br;
      const rowB = <usize>Tk << 2;
      for (let hh = 0; hh < G; hh++) {
        const h = g * G + hh;
        const qp = qkv + ((<usize>(b * T + i0) * <usize>W + <usize>(h * hd)) << 2);
        const dqp = dqkv + ((<usize>(b * T + i0) * <usize>W + <usize>(h * hd)) << 2);
        const dop = dout + ((<usize>(b * T + i0) * <usize>QD + <usize>(h * hd)) << 2);
        const oop = out + ((<usize>(b * T + i0) * <usize>QD + <usize>(h * hd)) << 2);
        localGemm(S, Tk, qp, W, 0, kp, W, 1, br, Tk, hd, 0, gs);
        localGemm(DP, Tk, dop, QD, 0, vp, W, 1, br, Tk, hd, 0, gs);
        const sv = f32x4.splat(scale);
        for (let r = 0; r < br; r++) {
          const row = S + <usize>r * rowB, drow = DP + <usize>r * rowB, cnt = i0 + r + 1;
          const l = load<f32>(lse + ((<usize>((b * Q + h) * T + i0 + r)) << 2));
          // delta = rowsum(dO ⊙ O)
          const dor = dop + ((<usize>r * <usize>QD) << 2), oor = oop + ((<usize>r * <usize>QD) << 2);
          let dv = f32x4.splat(0);
          let e = 0;
          for (; e < d4; e += 4) { const o = <usize>e << 2; dv = f32x4.add(dv, f32x4.mul(v128.load(dor + o), v128.load(oor + o))); }
          let delta = hsum(dv);
          for (; e < hd; e++) { const o = <usize>e << 2; delta += load<f32>(dor + o) * load<f32>(oor + o); }
          const lv = f32x4.splat(l), dl = f32x4.splat(delta);
          const c4 = cnt & ~3;
          let j = 0;
          for (; j < c4; j += 4) {
            const o = <usize>j << 2;
            const p = vexpT(f32x4.sub(f32x4.mul(v128.load(row + o), sv), lv));
            v128.store(row + o, p);
            v128.store(drow + o, f32x4.mul(f32x4.mul(p, f32x4.sub(v128.load(drow + o), dl)), sv));
          }
          for (; j < cnt; j++) {
            const o = <usize>j << 2;
            const p = expT(load<f32>(row + o) * scale - l);
            store<f32>(row + o, p);
            store<f32>(drow + o, p * (load<f32>(drow + o) - delta) * scale);
          }
          if (cnt < Tk) {
            memory.fill(row + (<usize>cnt << 2), 0, <usize>(Tk - cnt) << 2);
            memory.fill(drow + (<usize>cnt << 2), 0, <usize>(Tk - cnt) << 2);
          }
        }
        localGemm(dqp, W, DP, Tk, 0, kp, W, 0, br, hd, Tk, 0, gs);
        localGemm(dkp, W, DP, Tk, 1, qp, W, 0, Tk, hd, br, 1, gs);
        localGemm(dvp, W, S, Tk, 1, dop, QD, 0, Tk, hd, br, 1, gs);
      }
    }
  }
}
