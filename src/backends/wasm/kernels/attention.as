// Causal GQA attention over a [Hkv, cap, hd] KV cache with an online (streaming) softmax: keys are
// visited in blocks of 32; each block's scores live in a 32-float scratch, the running max and sum
// are rescaled once per block (FlashAttention's recurrence), so memory is O(hd) per (query, head)
// and no S×T score matrix exists. Work items (query i, kv head g) are dealt round-robin to chunks,
// which balances the causal triangle.

import { fmadd, hsum, hsum4, hmax, vexp, expf } from './simd';

const BLK: i32 = 32;

@inline function dot(a: usize, b: usize, hd: i32, d4: i32): f32 {
  let s0 = f32x4.splat(0), s1 = s0;
  let i = 0;
  for (; i + 8 <= d4; i += 8) {
    const o = <usize>i << 2;
    s0 = fmadd(v128.load(a + o), v128.load(b + o), s0);
    s1 = fmadd(v128.load(a + o, 16), v128.load(b + o, 16), s1);
  }
  for (; i < d4; i += 4) { const o = <usize>i << 2; s0 = fmadd(v128.load(a + o), v128.load(b + o), s0); }
  let s = hsum(f32x4.add(s0, s1));
  for (; i < hd; i++) { const o = <usize>i << 2; s += load<f32>(a + o) * load<f32>(b + o); }
  return s;
}

/**
 * One query head over one block of keys [j0, j0 + nb): scores into sc, then the online-softmax
 * update of the head's running max / sum (at ml, ml + 4) and accumulator acc.
 */
@inline function headBlock(q: usize, kb: usize, vb: usize, j0: i32, nb: i32, hd: i32, d4: i32, rowB: usize, scale: f32,
  sc: usize, acc: usize, ml: usize): void {
  // scores of the block, 4 keys at a time
  let jj = 0;
  let bm = f32x4.splat(-3.0e38);
  const sv = f32x4.splat(scale);
  for (; jj + 4 <= nb; jj += 4) {
    const k0 = kb + <usize>(j0 + jj) * rowB, k1 = k0 + rowB, k2 = k1 + rowB, k3 = k2 + rowB;
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0;
    let e = 0;
    for (; e < d4; e += 4) {
      const o = <usize>e << 2;
      const qv = v128.load(q + o);
      a0 = fmadd(v128.load(k0 + o), qv, a0); a1 = fmadd(v128.load(k1 + o), qv, a1);
      a2 = fmadd(v128.load(k2 + o), qv, a2); a3 = fmadd(v128.load(k3 + o), qv, a3);
    }
    let s4 = hsum4(a0, a1, a2, a3);
    if (d4 < hd) {
      let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
      for (; e < hd; e++) {
        const o = <usize>e << 2, qe = load<f32>(q + o);
        t0 += qe * load<f32>(k0 + o); t1 += qe * load<f32>(k1 + o); t2 += qe * load<f32>(k2 + o); t3 += qe * load<f32>(k3 + o);
      }
      s4 = f32x4.add(s4, f32x4(t0, t1, t2, t3));
    }
    s4 = f32x4.mul(s4, sv);
    bm = f32x4.max(bm, s4);
    v128.store(sc + (<usize>jj << 2), s4);
  }
  let bmax = hmax(bm);
  for (; jj < nb; jj++) {
    const s = dot(q, kb + <usize>(j0 + jj) * rowB, hd, d4) * scale;
    store<f32>(sc + (<usize>jj << 2), s);
    if (s > bmax) bmax = s;
  }
  // rescale the running sum and accumulator when the max grows
  let m = load<f32>(ml), l = load<f32>(ml, 4);
  if (bmax > m) {
    const corr = expf(m - bmax);
    l *= corr;
    const cv = f32x4.splat(corr);
    let e = 0;
    for (; e < d4; e += 4) { const o = <usize>e << 2; v128.store(acc + o, f32x4.mul(v128.load(acc + o), cv)); }
    for (; e < hd; e++) { const o = <usize>e << 2; store<f32>(acc + o, load<f32>(acc + o) * corr); }
    m = bmax;
  }
  // p = exp(s - m), l += Σp
  const mv = f32x4.splat(m);
  let lv = f32x4.splat(0);
  jj = 0;
  for (; jj + 4 <= nb; jj += 4) {
    const o = <usize>jj << 2;
    const p = vexp(f32x4.sub(v128.load(sc + o), mv));
    v128.store(sc + o, p);
    lv = f32x4.add(lv, p);
  }
  l += hsum(lv);
  for (; jj < nb; jj++) {
    const o = <usize>jj << 2;
    const p = expf(load<f32>(sc + o) - m);
    store<f32>(sc + o, p);
    l += p;
  }
  store<f32>(ml, m); store<f32>(ml, l, 4);
  // acc += Σ p_j · v_j, 4 keys per pass over acc
  jj = 0;
  for (; jj + 4 <= nb; jj += 4) {
    const v0 = vb + <usize>(j0 + jj) * rowB, v1 = v0 + rowB, v2 = v1 + rowB, v3 = v2 + rowB;
    const p0 = v128.load32_splat(sc + (<usize>jj << 2)), p1 = v128.load32_splat(sc + (<usize>jj << 2), 4);
    const p2 = v128.load32_splat(sc + (<usize>jj << 2), 8), p3 = v128.load32_splat(sc + (<usize>jj << 2), 12);
    let e = 0;
    for (; e < d4; e += 4) {
      const o = <usize>e << 2;
      let a = v128.load(acc + o);
      a = fmadd(p0, v128.load(v0 + o), a); a = fmadd(p1, v128.load(v1 + o), a);
      a = fmadd(p2, v128.load(v2 + o), a); a = fmadd(p3, v128.load(v3 + o), a);
      v128.store(acc + o, a);
    }
    const ps0 = f32x4.extract_lane(p0, 0), ps1 = f32x4.extract_lane(p1, 0), ps2 = f32x4.extract_lane(p2, 0), ps3 = f32x4.extract_lane(p3, 0);
    for (; e < hd; e++) {
      const o = <usize>e << 2;
      store<f32>(acc + o, load<f32>(acc + o) + ps0 * load<f32>(v0 + o) + ps1 * load<f32>(v1 + o) + ps2 * load<f32>(v2 + o) + ps3 * load<f32>(v3 + o));
    }
  }
  for (; jj < nb; jj++) {
    const v0 = vb + <usize>(j0 + jj) * rowB;
    const ps = load<f32>(sc + (<usize>jj << 2));
    const p0 = f32x4.splat(ps);
    let e = 0;
    for (; e < d4; e += 4) { const o = <usize>e << 2; v128.store(acc + o, fmadd(p0, v128.load(v0 + o), v128.load(acc + o))); }
    for (; e < hd; e++) { const o = <usize>e << 2; store<f32>(acc + o, load<f32>(acc + o) + ps * load<f32>(v0 + o)); }
  }
}

/** Scratch bytes per thread: scores, and per query head of a group its accumulator, max and sum. */
export function attentionScratch(G: i32, hd: i32): i32 { return (BLK + G * (hd + 2) + 8) * 4; }

/**
 * Work item = (query row i, kv head g): the G query heads sharing kv head g walk the keys
 * together, block by block, so each block of K and V (BLK·hd floats each, L1-sized) is read from
 * memory once per group instead of once per head.
 */
export function attentionItems(out: usize, qkv: usize, kc: usize, vc: usize, S: i32, P: i32, Q: i32, Hkv: i32,
  hd: i32, cap: i32, scr: usize, c: i32, nc: i32): void {
  const W = (Q + 2 * Hkv) * hd, G = Q / Hkv, d4 = hd & ~3;
  const scale: f32 = <f32>1 / sqrt<f32>(<f32>hd);
  const rowB = <usize>hd << 2;
  const sc = scr, accs = scr + (<usize>BLK << 2), mls = accs + <usize>G * rowB;
  const items = S * Hkv;
  for (let it = c; it < items; it += nc) {
    const i = it / Hkv, g = it - i * Hkv;
    const nk = P + i + 1;
    const kb = kc + (<usize>g * <usize>cap) * rowB, vb = vc + (<usize>g * <usize>cap) * rowB;
    const q0 = qkv + ((<usize>i * <usize>W + <usize>(g * G) * <usize>hd) << 2);
    memory.fill(accs, 0, <usize>G * rowB);
    for (let hh = 0; hh < G; hh++) { store<f32>(mls + (<usize>hh << 3), -3.0e38); store<f32>(mls + (<usize>hh << 3), 0, 4); }
    for (let j0 = 0; j0 < nk; j0 += BLK) {
      const nb = min(BLK, nk - j0);
      for (let hh = 0; hh < G; hh++) {
        headBlock(q0 + <usize>hh * rowB, kb, vb, j0, nb, hd, d4, rowB, scale, sc, accs + <usize>hh * rowB, mls + (<usize>hh << 3));
      }
    }
    for (let hh = 0; hh < G; hh++) {
      const acc = accs + <usize>hh * rowB;
      const oo = out + ((<usize>i * <usize>Q * <usize>hd + <usize>(g * G + hh) * <usize>hd) << 2);
      const il: f32 = <f32>1 / load<f32>(mls + (<usize>hh << 3), 4);
      const iv = f32x4.splat(il);
      let e = 0;
      for (; e < d4; e += 4) { const o = <usize>e << 2; v128.store(oo + o, f32x4.mul(v128.load(acc + o), iv)); }
      for (; e < hd; e++) { const o = <usize>e << 2; store<f32>(oo + o, load<f32>(acc + o) * il); }
    }
  }
}
