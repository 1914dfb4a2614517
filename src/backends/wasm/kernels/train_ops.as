// Training kernels besides the GEMM and attention: RMSNorm, QK-norm + RoPE, SwiGLU / SiLU,
// embedding, cross-entropy, AdamW, gradient norm, fill. Forward and backward.
//
// Determinism: every output element is written by exactly one chunk, and every sum over rows
// (weight gradients of the norms) is formed per fixed block of RB rows into a partial buffer and
// then reduced over the blocks in order (k_train op REDUCE), so results never depend on the
// number of threads or on which thread ran which chunk.
//
// Slot layouts (i32/f32 slots of 4 bytes; f64 values take two slots starting at an even slot)
// are written by src/train/wasm-train.ts; keep the two in sync.

import { fmadd, hsum, part } from './simd';
import { trainGemm, TGEMM_SCRATCH } from './train_gemm';
import { attnForward, attnBackward, attnTrainScratch, logF64, vexpT } from './train_attention';
import { columnDot, COLDOT_BLOCK, doraScale, dropoutMask, mulColumns } from './train_adapter';
import { scatterStored } from './blocks';

export const RB: i32 = 16;           // rows per partial-sum block

export const OP_GEMM = 1;
export const OP_RMS_FWD = 2;
export const OP_RMS_BWD = 3;
export const OP_REDUCE = 4;
export const OP_QKROPE_FWD = 5;
export const OP_QKROPE_BWD = 6;
export const OP_ATTN_FWD = 7;
export const OP_ATTN_BWD = 8;
export const OP_SWIGLU_FWD = 9;
export const OP_SWIGLU_BWD = 10;
export const OP_SILU_FWD = 11;
export const OP_SILU_BWD = 12;
export const OP_EMBED_FWD = 13;
export const OP_EMBED_BWD = 14;
export const OP_CE = 15;
export const OP_ADAMW = 17;
export const OP_SUMSQ = 18;
export const OP_SCALE = 19;
export const OP_FILL = 20;
export const OP_COPY = 21;
export const OP_MULCOLS = 22;
export const OP_COLDOT = 23;
export const OP_DROPMASK = 24;
export const OP_DORASCALE = 25;
/** Not a training op: storage about to be filled, its pages mapped on every thread (wasm-backend.ts prefault). */
export const OP_TOUCH = 26;
/**
 * Not a training op: a staged piece of a weight's stored bytes put in place in the layout the
 * backend keeps (wasm-backend.ts loadStoredMany; blocks.as scatterStored), split over the threads
 * so that each takes the page faults of what it writes.
 */
export const OP_SCATTER = 27;

/** Elements per block of the gradient-norm partial sums. */
export const SUMSQ_BLOCK: i32 = 65536;

export function trainScratchBytes(): i32 { return TGEMM_SCRATCH; }
export function trainAttnScratch(T: i32): i32 { return attnTrainScratch(T); }
export function colDotScratch(): i32 { return COLDOT_BLOCK * 8; }

@inline function ai(a: usize, i: i32): i32 { return load<i32>(a + (<usize>i << 2)); }
@inline function ap(a: usize, i: i32): usize { return <usize>load<u32>(a + (<usize>i << 2)); }
@inline function af(a: usize, i: i32): f32 { return load<f32>(a + (<usize>i << 2)); }
@inline function ad(a: usize, i: i32): f64 { return load<f64>(a + (<usize>i << 2)); }

export function trainDispatch(a: usize, tid: i32, c: i32, nc: i32): void {
  const op = ai(a, 0);
  switch (op) {
    case OP_GEMM: {
      trainGemm(ap(a, 1), ai(a, 9), ap(a, 2), ai(a, 7), ai(a, 10), ap(a, 3), ai(a, 8), ai(a, 11),
        ai(a, 4), ai(a, 5), ai(a, 6), ai(a, 12), ap(a, 13) + <usize>tid * ap(a, 14), ai(a, 15), ai(a, 16), c, nc);
      break;
    }
    case OP_RMS_FWD: {
      const rows = ai(a, 5);
      rmsFwd(ap(a, 1), ap(a, 2), ap(a, 3), ap(a, 4), ai(a, 6), af(a, 7), part(rows, c, nc, 1), part(rows, c + 1, nc, 1));
      break;
    }
    case OP_RMS_BWD: {
      const nb = (ai(a, 7) + RB - 1) / RB;
      rmsBwd(ap(a, 1), ap(a, 2), ap(a, 3), ap(a, 4), ap(a, 5), ap(a, 6), ai(a, 7), ai(a, 8), part(nb, c, nc, 1), part(nb, c + 1, nc, 1));
      break;
    }
    case OP_REDUCE: {
      const n = ai(a, 4);
      reduceCols(ap(a, 1), ap(a, 2), ai(a, 3), ai(a, 5), ai(a, 6), part(n, c, nc, 4), part(n, c + 1, nc, 4));
      break;
    }
    case OP_QKROPE_FWD: {
      const rows = ai(a, 5);
      qkRopeFwd(ap(a, 1), ap(a, 2), ap(a, 3), ap(a, 4), ai(a, 6), ai(a, 7), ai(a, 8), ai(a, 9), ap(a, 10), ap(a, 11), af(a, 12),
        part(rows, c, nc, 1), part(rows, c + 1, nc, 1));
      break;
    }
    case OP_QKROPE_BWD: {
      const nb = (ai(a, 7) + RB - 1) / RB;
      qkRopeBwd(ap(a, 1), ap(a, 2), ap(a, 3), ap(a, 4), ap(a, 5), ap(a, 6), ai(a, 7), ai(a, 8), ai(a, 9), ai(a, 10), ai(a, 11),
        ap(a, 12), ap(a, 13), part(nb, c, nc, 1), part(nb, c + 1, nc, 1));
      break;
    }
    case OP_ATTN_FWD: {
      attnForward(ap(a, 1), ap(a, 2), ap(a, 3), ai(a, 4), ai(a, 5), ai(a, 6), ai(a, 7), ai(a, 8), ap(a, 9) + <usize>tid * ap(a, 10), c, nc);
      break;
    }
    case OP_ATTN_BWD: {
      attnBackward(ap(a, 1), ap(a, 2), ap(a, 3), ap(a, 4), ap(a, 5), ai(a, 6), ai(a, 7), ai(a, 8), ai(a, 9), ai(a, 10),
        ap(a, 11) + <usize>tid * ap(a, 12), c, nc);
      break;
    }
    case OP_SWIGLU_FWD: {
      const n = ai(a, 3) * ai(a, 4);
      swigluFwd(ap(a, 1), ap(a, 2), ai(a, 4), part(n, c, nc, 4), part(n, c + 1, nc, 4));
      break;
    }
    case OP_SWIGLU_BWD: {
      const n = ai(a, 4) * ai(a, 5);
      swigluBwd(ap(a, 1), ap(a, 2), ap(a, 3), ai(a, 5), part(n, c, nc, 4), part(n, c + 1, nc, 4));
      break;
    }
    case OP_SILU_FWD: {
      const n = ai(a, 3);
      siluFwd(ap(a, 1), ap(a, 2), part(n, c, nc, 4), part(n, c + 1, nc, 4));
      break;
    }
    case OP_SILU_BWD: {
      const n = ai(a, 4);
      siluBwd(ap(a, 1), ap(a, 2), ap(a, 3), part(n, c, nc, 4), part(n, c + 1, nc, 4));
      break;
    }
    case OP_EMBED_FWD: {
      const n = ai(a, 4);
      embedFwd(ap(a, 1), ap(a, 2), ap(a, 3), ai(a, 5), ai(a, 6), part(n, c, nc, 1), part(n, c + 1, nc, 1));
      break;
    }
    case OP_EMBED_BWD: {
      const D = ai(a, 5);
      embedBwd(ap(a, 1), ap(a, 2), ap(a, 3), ai(a, 4), D, ai(a, 6), part(D, c, nc, 4), part(D, c + 1, nc, 4));
      break;
    }
    case OP_CE: {
      const rows = ai(a, 3);
      crossEntropy(ap(a, 1), ap(a, 2), ai(a, 4), ap(a, 5), ad(a, 6), ad(a, 8), part(rows, c, nc, 1), part(rows, c + 1, nc, 1));
      break;
    }
    case OP_ADAMW: {
      const n = ai(a, 5);
      adamw(ap(a, 1), ap(a, 2), ap(a, 3), ap(a, 4), ad(a, 6), ad(a, 8), ad(a, 10), ad(a, 12), ad(a, 14), ad(a, 16), ad(a, 18), ad(a, 20),
        part(n, c, nc, 4), part(n, c + 1, nc, 4));
      break;
    }
    case OP_SUMSQ: {
      const n = ai(a, 2), nb = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
      for (let blk = part(nb, c, nc, 1); blk < part(nb, c + 1, nc, 1); blk++) {
        const i0 = blk * SUMSQ_BLOCK;
        store<f64>(ap(a, 3) + (<usize>blk << 3), sumSq(ap(a, 1), i0, min(n, i0 + SUMSQ_BLOCK)));
      }
      break;
    }
    case OP_SCALE: {
      const n = ai(a, 2);
      scaleF64(ap(a, 1), ad(a, 4), part(n, c, nc, 4), part(n, c + 1, nc, 4));
      break;
    }
    case OP_FILL: {
      const n = ai(a, 2);
      const i0 = part(n, c, nc, 16), i1 = part(n, c + 1, nc, 16);
      if (i1 > i0) memory.fill(ap(a, 1) + (<usize>i0 << 2), 0, <usize>(i1 - i0) << 2);
      break;
    }
    case OP_COPY: {
      const n = ai(a, 3);
      const i0 = part(n, c, nc, 16), i1 = part(n, c + 1, nc, 16);
      if (i1 > i0) memory.copy(ap(a, 1) + (<usize>i0 << 2), ap(a, 2) + (<usize>i0 << 2), <usize>(i1 - i0) << 2);
      break;
    }
    case OP_MULCOLS: {
      const n = ai(a, 4) * ai(a, 5);
      mulColumns(ap(a, 1), ap(a, 2), ap(a, 3), ai(a, 5), ai(a, 6) != 0, part(n, c, nc, 16), part(n, c + 1, nc, 16));
      break;
    }
    case OP_COLDOT: {
      const cols = ai(a, 5);
      columnDot(ap(a, 1), ap(a, 2), ap(a, 3), ai(a, 4), cols, ai(a, 6) != 0, ap(a, 7) + <usize>tid * ap(a, 8),
        part(cols, c, nc, 4), part(cols, c + 1, nc, 4));
      break;
    }
    case OP_DROPMASK: {
      const n = ai(a, 2);
      dropoutMask(ap(a, 1), <u32>ai(a, 3), <u32>ai(a, 4), af(a, 5), af(a, 6), part(n, c, nc, 16), part(n, c + 1, nc, 16));
      break;
    }
    case OP_DORASCALE: {
      const n = ai(a, 6);
      doraScale(ap(a, 1), ap(a, 2), ap(a, 3), ap(a, 4), ap(a, 5), ad(a, 8), part(n, c, nc, 4), part(n, c + 1, nc, 4));
      break;
    }
    case OP_TOUCH: {
      // a zero byte every 4 KiB of n bytes from p: each page's first write (its fault, which the OS
      // zero-fills) taken here, split over the threads, and not by the one thread that fills it next.
      // Storage from allocBytes is all zeros, so this writes nothing that was not there.
      const p = ap(a, 1), pages = <i32>((ap(a, 2) + 4095) >> 12);
      const i0 = part(pages, c, nc, 1), i1 = part(pages, c + 1, nc, 1);
      for (let i = i0; i < i1; i++) store<u8>(p + (<usize>i << 12), 0);
      break;
    }
    case OP_SCATTER: {
      // 1 src, 2 units, 3 mode, 4 dst, 5 aux (Q8_0: its halves), 6 flags (u32, OR'd), 7 n
      // (copy: the piece's bytes, in 4 KiB units; Q4_0: blocks a row)
      const units = ai(a, 2);
      const bits = scatterStored(ai(a, 3), ap(a, 1), ap(a, 4), ap(a, 5), ai(a, 7), part(units, c, nc, 1), part(units, c + 1, nc, 1));
      if (bits) atomic.or<u32>(ap(a, 6), bits);
      break;
    }
    default: unreachable();
  }
}

// ------------------------------------------------------------------------------------------------
// RMSNorm: y = fround(x·r)·w, r = 1/sqrt(mean(x²) + eps), saved per row.

@inline function sumSqRow(x: usize, dim: i32): f32 {
  const d4 = dim & ~3;
  let a = f32x4.splat(0), b = a;
  let i = 0;
  for (; i + 8 <= dim; i += 8) {
    const v = v128.load(x + (<usize>i << 2)), u = v128.load(x + (<usize>i << 2), 16);
    a = fmadd(v, v, a); b = fmadd(u, u, b);
  }
  for (; i < d4; i += 4) { const v = v128.load(x + (<usize>i << 2)); a = fmadd(v, v, a); }
  let ss = hsum(f32x4.add(a, b));
  for (; i < dim; i++) { const v = load<f32>(x + (<usize>i << 2)); ss += v * v; }
  return ss;
}

function rmsFwd(out: usize, rstd: usize, x: usize, w: usize, dim: i32, eps: f32, r0: i32, r1: i32): void {
  const d4 = dim & ~3;
  for (let r = r0; r < r1; r++) {
    const xo = x + ((<usize>r * <usize>dim) << 2), oo = out + ((<usize>r * <usize>dim) << 2);
    const inv = <f32>(1 / Math.sqrt(<f64>sumSqRow(xo, dim) / <f64>dim + <f64>eps));
    store<f32>(rstd + (<usize>r << 2), inv);
    const iv = f32x4.splat(inv);
    let i = 0;
    for (; i < d4; i += 4) {
      const o = <usize>i << 2;
      v128.store(oo + o, f32x4.mul(f32x4.mul(v128.load(xo + o), iv), v128.load(w + o)));
    }
    for (; i < dim; i++) { const o = <usize>i << 2; store<f32>(oo + o, (load<f32>(xo + o) * inv) * load<f32>(w + o)); }
  }
}

/**
 * Blocks [b0, b1) of RB rows: dx += r·(dy⊙w − x̂·mean(dy⊙w⊙x̂)) (dx accumulates), and
 * part[blk][i] = Σ_{rows of blk} dy⊙x̂ (the block's share of dw).
 */
function rmsBwd(dx: usize, part_: usize, dy: usize, x: usize, w: usize, rstd: usize, rows: i32, dim: i32, b0: i32, b1: i32): void {
  const d4 = dim & ~3;
  for (let blk = b0; blk < b1; blk++) {
    const pp = part_ + ((<usize>blk * <usize>dim) << 2);
    memory.fill(pp, 0, <usize>dim << 2);
    const rEnd = min(rows, (blk + 1) * RB);
    for (let r = blk * RB; r < rEnd; r++) {
      const o0 = (<usize>r * <usize>dim) << 2;
      const xo = x + o0, go = dy + o0, dxo = dx + o0;
      const inv = load<f32>(rstd + (<usize>r << 2));
      const iv = f32x4.splat(inv);
      let dot = f32x4.splat(0);
      let i = 0;
      for (; i < d4; i += 4) {
        const o = <usize>i << 2;
        const xh = f32x4.mul(v128.load(xo + o), iv), g = v128.load(go + o);
        dot = fmadd(f32x4.mul(g, v128.load(w + o)), xh, dot);
        v128.store(pp + o, fmadd(g, xh, v128.load(pp + o)));
      }
      let dt = hsum(dot);
      for (; i < dim; i++) {
        const o = <usize>i << 2;
        const xh = load<f32>(xo + o) * inv, g = load<f32>(go + o);
        dt += g * load<f32>(w + o) * xh;
        store<f32>(pp + o, load<f32>(pp + o) + g * xh);
      }
      const m = dt / <f32>dim;
      const mv = f32x4.splat(m);
      i = 0;
      for (; i < d4; i += 4) {
        const o = <usize>i << 2;
        const t = f32x4.sub(f32x4.mul(v128.load(go + o), v128.load(w + o)), f32x4.mul(f32x4.mul(v128.load(xo + o), iv), mv));
        v128.store(dxo + o, fmadd(iv, t, v128.load(dxo + o)));
      }
      for (; i < dim; i++) {
        const o = <usize>i << 2;
        store<f32>(dxo + o, load<f32>(dxo + o) + inv * (load<f32>(go + o) * load<f32>(w + o) - load<f32>(xo + o) * inv * m));
      }
    }
  }
}

/** dst[j] += Σ_blk part[blk·stride + col0 + j] for j in [j0, j1), blocks summed in order. */
function reduceCols(dst: usize, part_: usize, nb: i32, stride: i32, col0: i32, j0: i32, j1: i32): void {
  let j = j0;
  for (; j + 4 <= j1; j += 4) {
    let s = f32x4.splat(0);
    for (let b = 0; b < nb; b++) s = f32x4.add(s, v128.load(part_ + ((<usize>b * <usize>stride + <usize>(col0 + j)) << 2)));
    const o = <usize>j << 2;
    v128.store(dst + o, f32x4.add(v128.load(dst + o), s));
  }
  for (; j < j1; j++) {
    let s: f32 = 0;
    for (let b = 0; b < nb; b++) s += load<f32>(part_ + ((<usize>b * <usize>stride + <usize>(col0 + j)) << 2));
    store<f32>(dst + (<usize>j << 2), load<f32>(dst + (<usize>j << 2)) + s);
  }
}

// ------------------------------------------------------------------------------------------------
// Per-head QK-RMSNorm + rotate-half RoPE on rows [Q·hd | Hkv·hd | Hkv·hd]; position = row mod T;
// cos/sin tables [positions][hd/2].

function qkRopeFwd(qkv: usize, rstd: usize, cs: usize, sn: usize, T: i32, Q: i32, Hkv: i32, hd: i32,
  qn: usize, kn: usize, eps: f32, r0: i32, r1: i32): void {
  const W = (Q + 2 * Hkv) * hd, half = hd >> 1, h4 = half & ~3, d4 = hd & ~3, NH = Q + Hkv;
  for (let r = r0; r < r1; r++) {
    const t = <usize>(r % T) * <usize>half;
    const c = cs + (t << 2), s = sn + (t << 2);
    for (let h = 0; h < NH; h++) {
      const o = qkv + ((<usize>r * <usize>W + <usize>h * <usize>hd) << 2);
      const nw = h < Q ? qn : kn;
      if (nw) {
        const inv = <f32>(1 / Math.sqrt(<f64>sumSqRow(o, hd) / <f64>hd + <f64>eps));
        store<f32>(rstd + ((<usize>r * <usize>NH + <usize>h) << 2), inv);
        const iv = f32x4.splat(inv);
        let i = 0;
        for (; i < d4; i += 4) { const p = <usize>i << 2; v128.store(o + p, f32x4.mul(f32x4.mul(v128.load(o + p), iv), v128.load(nw + p))); }
        for (; i < hd; i++) { const p = <usize>i << 2; store<f32>(o + p, (load<f32>(o + p) * inv) * load<f32>(nw + p)); }
      }
      const o2 = o + (<usize>half << 2);
      let j = 0;
      for (; j < h4; j += 4) {
        const p = <usize>j << 2;
        const a = v128.load(o + p), b = v128.load(o2 + p), cv = v128.load(c + p), sv = v128.load(s + p);
        v128.store(o + p, f32x4.sub(f32x4.mul(a, cv), f32x4.mul(b, sv)));
        v128.store(o2 + p, f32x4.add(f32x4.mul(b, cv), f32x4.mul(a, sv)));
      }
      for (; j < half; j++) {
        const p = <usize>j << 2;
        const a = load<f32>(o + p), b = load<f32>(o2 + p), cv = load<f32>(c + p), sv = load<f32>(s + p);
        store<f32>(o + p, a * cv - b * sv);
        store<f32>(o2 + p, b * cv + a * sv);
      }
    }
  }
}

/**
 * Blocks [b0, b1) of RB rows, in place on dqkv (gradient w.r.t. post-RoPE q/k in, w.r.t. the raw
 * projection out; V untouched). part[blk] = [dqNorm share (hd) | dkNorm share (hd)].
 */
function qkRopeBwd(dqkv: usize, part_: usize, raw: usize, rstd: usize, cs: usize, sn: usize, rows: i32, T: i32, Q: i32,
  Hkv: i32, hd: i32, qn: usize, kn: usize, b0: i32, b1: i32): void {
  const W = (Q + 2 * Hkv) * hd, half = hd >> 1, h4 = half & ~3, d4 = hd & ~3, NH = Q + Hkv;
  for (let blk = b0; blk < b1; blk++) {
    const pp = part_ + ((<usize>blk * <usize>(2 * hd)) << 2);
    memory.fill(pp, 0, <usize>(2 * hd) << 2);
    const rEnd = min(rows, (blk + 1) * RB);
    for (let r = blk * RB; r < rEnd; r++) {
      const t = <usize>(r % T) * <usize>half;
      const c = cs + (t << 2), s = sn + (t << 2);
      for (let h = 0; h < NH; h++) {
        const off = (<usize>r * <usize>W + <usize>h * <usize>hd) << 2;
        const o = dqkv + off, o2 = o + (<usize>half << 2);
        let j = 0;
        for (; j < h4; j += 4) {
          const p = <usize>j << 2;
          const d1 = v128.load(o + p), d2 = v128.load(o2 + p), cv = v128.load(c + p), sv = v128.load(s + p);
          v128.store(o + p, f32x4.add(f32x4.mul(d1, cv), f32x4.mul(d2, sv)));
          v128.store(o2 + p, f32x4.sub(f32x4.mul(d2, cv), f32x4.mul(d1, sv)));
        }
        for (; j < half; j++) {
          const p = <usize>j << 2;
          const d1 = load<f32>(o + p), d2 = load<f32>(o2 + p), cv = load<f32>(c + p), sv = load<f32>(s + p);
          store<f32>(o + p, d1 * cv + d2 * sv);
          store<f32>(o2 + p, d2 * cv - d1 * sv);
        }
        const nw = h < Q ? qn : kn;
        if (!nw) continue;
        const pw = pp + (h < Q ? 0 : <usize>hd << 2);
        const x = raw + off;
        const inv = load<f32>(rstd + ((<usize>r * <usize>NH + <usize>h) << 2));
        const iv = f32x4.splat(inv);
        let dot = f32x4.splat(0);
        let i = 0;
        for (; i < d4; i += 4) {
          const p = <usize>i << 2;
          const xh = f32x4.mul(v128.load(x + p), iv), g = v128.load(o + p);
          dot = fmadd(f32x4.mul(g, v128.load(nw + p)), xh, dot);
          v128.store(pw + p, fmadd(g, xh, v128.load(pw + p)));
        }
        let dt = hsum(dot);
        for (; i < hd; i++) {
          const p = <usize>i << 2;
          const xh = load<f32>(x + p) * inv, g = load<f32>(o + p);
          dt += g * load<f32>(nw + p) * xh;
          store<f32>(pw + p, load<f32>(pw + p) + g * xh);
        }
        const m = dt / <f32>hd, mv = f32x4.splat(m);
        i = 0;
        for (; i < d4; i += 4) {
          const p = <usize>i << 2;
          const tt = f32x4.sub(f32x4.mul(v128.load(o + p), v128.load(nw + p)), f32x4.mul(f32x4.mul(v128.load(x + p), iv), mv));
          v128.store(o + p, f32x4.mul(iv, tt));
        }
        for (; i < hd; i++) {
          const p = <usize>i << 2;
          store<f32>(o + p, inv * (load<f32>(o + p) * load<f32>(nw + p) - load<f32>(x + p) * inv * m));
        }
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------
// SwiGLU / SiLU backward. σ(a) = 1/(1 + e^−a); silu'(a) = σ(a)(1 + a(1 − σ(a))).

@inline function vsigmoid(a: v128): v128 { return f32x4.div(f32x4.splat(1), f32x4.add(f32x4.splat(1), vexpT(f32x4.neg(a)))); }
@inline function vsilu(a: v128): v128 { return f32x4.div(a, f32x4.add(f32x4.splat(1), vexpT(f32x4.neg(a)))); }

/** g[r, j] = silu(u[r, j]) · u[r, F + j] for flat indices [i0, i1) of the [rows, F] output. */
function swigluFwd(out: usize, u: usize, F: i32, i0: i32, i1: i32): void {
  let i = i0;
  while (i < i1) {
    const r = i / F, j0 = i - r * F;
    const jEnd = min(F, j0 + (i1 - i));
    const g = u + ((<usize>r * <usize>(2 * F)) << 2), v = g + (<usize>F << 2), o = out + ((<usize>r * <usize>F) << 2);
    let j = j0;
    for (; j + 4 <= jEnd; j += 4) { const p = <usize>j << 2; v128.store(o + p, f32x4.mul(vsilu(v128.load(g + p)), v128.load(v + p))); }
    for (; j < jEnd; j++) {
      const p = <usize>j << 2;
      store<f32>(o + p, f32x4.extract_lane(vsilu(f32x4.splat(load<f32>(g + p))), 0) * load<f32>(v + p));
    }
    i += jEnd - j0;
  }
}

function siluFwd(out: usize, u: usize, i0: i32, i1: i32): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) { const p = <usize>i << 2; v128.store(out + p, vsilu(v128.load(u + p))); }
  for (; i < i1; i++) { const p = <usize>i << 2; store<f32>(out + p, f32x4.extract_lane(vsilu(f32x4.splat(load<f32>(u + p))), 0)); }
}

/** du[r] = [dg·up·silu'(gate) | dg·silu(gate)] for flat indices [i0, i1) of the [rows, F] gradient dg. */
function swigluBwd(du: usize, dg: usize, u: usize, F: i32, i0: i32, i1: i32): void {
  let i = i0;
  while (i < i1) {
    const r = i / F, j0 = i - r * F;
    const jEnd = min(F, j0 + (i1 - i));
    const gp = u + ((<usize>r * <usize>(2 * F)) << 2), up = gp + (<usize>F << 2);
    const dgp = dg + ((<usize>r * <usize>F) << 2);
    const dgate = du + ((<usize>r * <usize>(2 * F)) << 2), dup = dgate + (<usize>F << 2);
    let j = j0;
    for (; j + 4 <= jEnd; j += 4) {
      const p = <usize>j << 2;
      const a = v128.load(gp + p), b = v128.load(up + p), d = v128.load(dgp + p);
      const s = vsigmoid(a);
      const one = f32x4.splat(1);
      v128.store(dgate + p, f32x4.mul(f32x4.mul(f32x4.mul(d, b), s), f32x4.add(one, f32x4.mul(a, f32x4.sub(one, s)))));
      v128.store(dup + p, f32x4.mul(f32x4.mul(d, a), s));
    }
    for (; j < jEnd; j++) {
      const p = <usize>j << 2;
      const a = load<f32>(gp + p), b = load<f32>(up + p), d = load<f32>(dgp + p);
      const s = f32x4.extract_lane(vsigmoid(f32x4.splat(a)), 0);
      store<f32>(dgate + p, d * b * s * (1 + a * (1 - s)));
      store<f32>(dup + p, d * a * s);
    }
    i += jEnd - j0;
  }
}

function siluBwd(du: usize, dg: usize, u: usize, i0: i32, i1: i32): void {
  let i = i0;
  const one = f32x4.splat(1);
  for (; i + 4 <= i1; i += 4) {
    const p = <usize>i << 2;
    const a = v128.load(u + p), s = vsigmoid(a);
    v128.store(du + p, f32x4.mul(f32x4.mul(v128.load(dg + p), s), f32x4.add(one, f32x4.mul(a, f32x4.sub(one, s)))));
  }
  for (; i < i1; i++) {
    const p = <usize>i << 2;
    const a = load<f32>(u + p), s = f32x4.extract_lane(vsigmoid(f32x4.splat(a)), 0);
    store<f32>(du + p, load<f32>(dg + p) * s * (1 + a * (1 - s)));
  }
}

// ------------------------------------------------------------------------------------------------
// Embedding. Ids equal to skip read a zero row and send no gradient.

function embedFwd(out: usize, table: usize, ids: usize, D: i32, skip: i32, r0: i32, r1: i32): void {
  const rb = <usize>D << 2;
  for (let r = r0; r < r1; r++) {
    const id = load<i32>(ids + (<usize>r << 2));
    if (id == skip) memory.fill(out + <usize>r * rb, 0, rb);
    else memory.copy(out + <usize>r * rb, table + <usize>id * rb, rb);
  }
}

/** Columns [c0, c1) of every used row: dtable[id] += dout[r], rows in order. */
function embedBwd(dtable: usize, dout: usize, ids: usize, n: i32, D: i32, skip: i32, c0: i32, c1: i32): void {
  const rb = <usize>D << 2;
  for (let r = 0; r < n; r++) {
    const id = load<i32>(ids + (<usize>r << 2));
    if (id == skip) continue;
    const d = dtable + <usize>id * rb, s = dout + <usize>r * rb;
    let j = c0;
    for (; j + 4 <= c1; j += 4) { const o = <usize>j << 2; v128.store(d + o, f32x4.add(v128.load(d + o), v128.load(s + o))); }
    for (; j < c1; j++) { const o = <usize>j << 2; store<f32>(d + o, load<f32>(d + o) + load<f32>(s + o)); }
  }
}

// ------------------------------------------------------------------------------------------------
// Cross-entropy over logit rows of width V, one pass set per row while it is in cache: max, then
// p = exp(x − max) and Σp (f32 lanes flushed to f64 every 256 values), lse = max + ln Σp; stats
// per row (f64) = [lse, x[target]]. With gradScale ≠ 0 the row is OVERWRITTEN by the gradient of
// gradScale·(lse − x[t] + z·lse²): k·p/Σp with k = gradScale·(1 + 2z·lse), minus gradScale at t.

function crossEntropy(logits: usize, targets: usize, V: i32, stats: usize, gradScale: f64, z: f64, r0: i32, r1: i32): void {
  const v4 = V & ~3;
  const grad = gradScale != 0;
  for (let r = r0; r < r1; r++) {
    const row = logits + ((<usize>r * <usize>V) << 2);
    const t = <usize>load<i32>(targets + (<usize>r << 2)) << 2;
    const xt = load<f32>(row + t);
    let mv = f32x4.splat(-3.4e38);
    let j = 0;
    for (; j < v4; j += 4) mv = f32x4.max(mv, v128.load(row + (<usize>j << 2)));
    let mx = max(max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)), max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)));
    for (; j < V; j++) mx = max(mx, load<f32>(row + (<usize>j << 2)));
    const ms = f32x4.splat(mx);
    let total: f64 = 0;
    j = 0;
    while (j < v4) {
      const end = min(v4, j + 256);
      let s = f32x4.splat(0);
      if (grad) {
        for (; j < end; j += 4) {
          const o = <usize>j << 2;
          const p = vexpT(f32x4.sub(v128.load(row + o), ms));
          v128.store(row + o, p);
          s = f32x4.add(s, p);
        }
      } else {
        for (; j < end; j += 4) s = f32x4.add(s, vexpT(f32x4.sub(v128.load(row + (<usize>j << 2)), ms)));
      }
      total += <f64>f32x4.extract_lane(s, 0) + <f64>f32x4.extract_lane(s, 1) + <f64>f32x4.extract_lane(s, 2) + <f64>f32x4.extract_lane(s, 3);
    }
    for (; j < V; j++) {
      const o = <usize>j << 2;
      const p = f32x4.extract_lane(vexpT(f32x4.splat(load<f32>(row + o) - mx)), 0);
      if (grad) store<f32>(row + o, p);
      total += <f64>p;
    }
    const lse = <f64>mx + logF64(total);
    const st = stats + (<usize>r << 4);
    store<f64>(st, lse);
    store<f64>(st, <f64>xt, 8);
    if (!grad) continue;
    const f = <f32>(gradScale * (1 + 2 * z * lse) / total);
    const fv = f32x4.splat(f);
    j = 0;
    for (; j < v4; j += 4) { const o = <usize>j << 2; v128.store(row + o, f32x4.mul(v128.load(row + o), fv)); }
    for (; j < V; j++) { const o = <usize>j << 2; store<f32>(row + o, load<f32>(row + o) * f); }
    store<f32>(row + t, <f32>(<f64>load<f32>(row + t) - gradScale));
  }
}

// ------------------------------------------------------------------------------------------------
// AdamW (PyTorch semantics), in f64 per element exactly as src/train/adamw.ts computes it, so both
// give the same bits:  m' = b1·m + c1·g;  v' = b2·v + (c2·g)·g;  p' = p·keep − (ss·m') / (√v' / bc2 + eps)
// with m', v' stored rounded to f32 after the parameter uses the unrounded values.

function adamw(p: usize, g: usize, m: usize, v: usize, b1: f64, c1: f64, b2: f64, c2: f64, ss: f64, bc2: f64, eps: f64, keep: f64,
  i0: i32, i1: i32): void {
  const B1 = f64x2.splat(b1), C1 = f64x2.splat(c1), B2 = f64x2.splat(b2), C2 = f64x2.splat(c2);
  const SS = f64x2.splat(ss), BC = f64x2.splat(bc2), EP = f64x2.splat(eps), KP = f64x2.splat(keep);
  let i = i0;
  for (; i + 2 <= i1; i += 2) {
    const o = <usize>i << 2;
    const gi = f64x2.promote_low_f32x4(v128.load64_zero(g + o));
    const mi = f64x2.add(f64x2.mul(B1, f64x2.promote_low_f32x4(v128.load64_zero(m + o))), f64x2.mul(C1, gi));
    const vi = f64x2.add(f64x2.mul(B2, f64x2.promote_low_f32x4(v128.load64_zero(v + o))), f64x2.mul(f64x2.mul(C2, gi), gi));
    v128.store64_lane(m + o, f32x4.demote_f64x2_zero(mi), 0);
    v128.store64_lane(v + o, f32x4.demote_f64x2_zero(vi), 0);
    const pi = f64x2.promote_low_f32x4(v128.load64_zero(p + o));
    const den = f64x2.add(f64x2.div(f64x2.sqrt(vi), BC), EP);
    v128.store64_lane(p + o, f32x4.demote_f64x2_zero(f64x2.sub(f64x2.mul(pi, KP), f64x2.div(f64x2.mul(SS, mi), den))), 0);
  }
  for (; i < i1; i++) {
    const o = <usize>i << 2;
    const gi = <f64>load<f32>(g + o);
    const mi = b1 * <f64>load<f32>(m + o) + c1 * gi;
    const vi = b2 * <f64>load<f32>(v + o) + c2 * gi * gi;
    store<f32>(m + o, <f32>mi);
    store<f32>(v + o, <f32>vi);
    store<f32>(p + o, <f32>(<f64>load<f32>(p + o) * keep - ss * mi / (Math.sqrt(vi) / bc2 + eps)));
  }
}

/** Σ x² over [i0, i1) in f64 (two f64 lanes, then in order). */
function sumSq(x: usize, i0: i32, i1: i32): f64 {
  let a = f64x2.splat(0), b = a;
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    const lo = f64x2.promote_low_f32x4(v), hi = f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1));
    a = f64x2.add(a, f64x2.mul(lo, lo)); b = f64x2.add(b, f64x2.mul(hi, hi));
  }
  let s = f64x2.extract_lane(a, 0) + f64x2.extract_lane(a, 1) + f64x2.extract_lane(b, 0) + f64x2.extract_lane(b, 1);
  for (; i < i1; i++) { const v = <f64>load<f32>(x + (<usize>i << 2)); s += v * v; }
  return s;
}

/** x = f32(x · coef) (the multiply in f64, as `x[i] *= coef` does in JavaScript). */
function scaleF64(x: usize, coef: f64, i0: i32, i1: i32): void {
  const cv = f64x2.splat(coef);
  let i = i0;
  for (; i + 2 <= i1; i += 2) {
    const o = <usize>i << 2;
    v128.store64_lane(x + o, f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(v128.load64_zero(x + o)), cv)), 0);
  }
  for (; i < i1; i++) { const o = <usize>i << 2; store<f32>(x + o, <f32>(<f64>load<f32>(x + o) * coef)); }
}
