// Causal GQA attention over a [Hkv, cap, hd] KV cache with an online (streaming) softmax: keys are
// visited in blocks of 32; each block's scores live in a 32-float scratch, the running max and sum
// are rescaled once per block (FlashAttention's recurrence), so memory is O(hd) per (query, head)
// and no S×T score matrix exists. Work items (query i, kv head g, a part of g's query heads) are
// dealt round-robin to chunks, which balances the causal triangle.

import { fmadd, hsum, hsum4, hmax, expf, part } from './simd';

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
 * simd.as's vexp for the softmax's x = s − max ≤ 0, in fewer instructions with the same result for
 * every x that is not NaN: no upper clamp (it never binds), the lower one a pmax (one maxps; wasm's
 * max is eight instructions on x64, for NaN and ±0 rules that cannot matter against −87.3), and n, a
 * whole number in [−126, 0], converted by cvttps2dq without trunc_sat's range fix-up. A NaN x stays
 * NaN (its payload may differ).
 */
@inline function vexpNeg(x0: v128): v128 {
  const x = f32x4.pmax(x0, f32x4.splat(-87.3));
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
  const ni = ASC_FEATURE_RELAXED_SIMD ? i32x4.relaxed_trunc_f32x4_s(n) : i32x4.trunc_sat_f32x4_s(n);
  const e = i32x4.shl(i32x4.add(ni, i32x4.splat(127)), 23);
  return f32x4.mul(p, e);
}

/** Scores of one query head for keys [j0, j0 + nb) into sc, 4 keys at a time; returns their max. */
@inline function scoresBlock(q: usize, kb: usize, j0: i32, nb: i32, hd: i32, d4: i32, rowB: usize, scale: f32, sc: usize): f32 {
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
    const s4 = f32x4.mul(scoreTail(hsum4(a0, a1, a2, a3), q, k0, rowB, e, hd), sv);
    bm = f32x4.pmax(bm, s4);
    v128.store(sc + (<usize>jj << 2), s4);
  }
  return scoresLeft(q, kb, j0, jj, nb, hd, d4, rowB, scale, sc, hmax(bm));
}

/**
 * scoresBlock for two query heads at once (qa into sca, qb into scb): one load of each key vector
 * serves both, and eight accumulators keep the multiply-adds from waiting on each other. Each
 * head's sums are formed in scoresBlock's order, so its scores are bit for bit the same. Returns
 * qa's max; qb's goes to scb + BLK·4.
 */
@inline function scoresBlock2(qa: usize, qb: usize, kb: usize, j0: i32, nb: i32, hd: i32, d4: i32, rowB: usize, scale: f32,
  sca: usize, scb: usize): f32 {
  let jj = 0;
  let bma = f32x4.splat(-3.0e38), bmb = bma;
  const sv = f32x4.splat(scale);
  for (; jj + 4 <= nb; jj += 4) {
    const k0 = kb + <usize>(j0 + jj) * rowB, k1 = k0 + rowB, k2 = k1 + rowB, k3 = k2 + rowB;
    let a0 = f32x4.splat(0), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    let e = 0;
    if (hd == 64) {
      // rows 256 bytes apart and qb = qa + 256: every load is one moving pointer plus a constant
      // offset (V8 otherwise computes each address with its own lea), two steps per pass
      let kp = k0, qp = qa;
      for (; e < 64; e += 4) {
        const qv = v128.load(qp), rv = v128.load(qp, 256);
        const x0 = v128.load(kp), x1 = v128.load(kp, 256), x2 = v128.load(kp, 512), x3 = v128.load(kp, 768);
        a0 = fmadd(x0, qv, a0); a1 = fmadd(x1, qv, a1); a2 = fmadd(x2, qv, a2); a3 = fmadd(x3, qv, a3);
        b0 = fmadd(x0, rv, b0); b1 = fmadd(x1, rv, b1); b2 = fmadd(x2, rv, b2); b3 = fmadd(x3, rv, b3);
        kp += 16; qp += 16;
      }
    } else {
      for (; e < d4; e += 4) {
        const o = <usize>e << 2;
        const qv = v128.load(qa + o), rv = v128.load(qb + o);
        const x0 = v128.load(k0 + o), x1 = v128.load(k1 + o), x2 = v128.load(k2 + o), x3 = v128.load(k3 + o);
        a0 = fmadd(x0, qv, a0); a1 = fmadd(x1, qv, a1); a2 = fmadd(x2, qv, a2); a3 = fmadd(x3, qv, a3);
        b0 = fmadd(x0, rv, b0); b1 = fmadd(x1, rv, b1); b2 = fmadd(x2, rv, b2); b3 = fmadd(x3, rv, b3);
      }
    }
    const sa = f32x4.mul(scoreTail(hsum4(a0, a1, a2, a3), qa, k0, rowB, e, hd), sv);
    const sb = f32x4.mul(scoreTail(hsum4(b0, b1, b2, b3), qb, k0, rowB, e, hd), sv);
    bma = f32x4.pmax(bma, sa); bmb = f32x4.pmax(bmb, sb);
    v128.store(sca + (<usize>jj << 2), sa); v128.store(scb + (<usize>jj << 2), sb);
  }
  store<f32>(scb + (<usize>BLK << 2), scoresLeft(qb, kb, j0, jj, nb, hd, d4, rowB, scale, scb, hmax(bmb)));
  return scoresLeft(qa, kb, j0, jj, nb, hd, d4, rowB, scale, sca, hmax(bma));
}

/** Four keys' dot sums s4 plus the products of the last hd − e dimensions (hd not a multiple of 4). */
@inline function scoreTail(s4: v128, q: usize, k0: usize, rowB: usize, e: i32, hd: i32): v128 {
  if (e >= hd) return s4;
  const k1 = k0 + rowB, k2 = k1 + rowB, k3 = k2 + rowB;
  let t0: f32 = 0, t1: f32 = 0, t2: f32 = 0, t3: f32 = 0;
  for (; e < hd; e++) {
    const o = <usize>e << 2, qe = load<f32>(q + o);
    t0 += qe * load<f32>(k0 + o); t1 += qe * load<f32>(k1 + o); t2 += qe * load<f32>(k2 + o); t3 += qe * load<f32>(k3 + o);
  }
  return f32x4.add(s4, f32x4(t0, t1, t2, t3));
}

/** Scores of the block's last keys [jj, nb) one at a time; returns the block's max. */
@inline function scoresLeft(q: usize, kb: usize, j0: i32, jj: i32, nb: i32, hd: i32, d4: i32, rowB: usize, scale: f32, sc: usize, bmax: f32): f32 {
  for (; jj < nb; jj++) {
    const s = dot(q, kb + <usize>(j0 + jj) * rowB, hd, d4) * scale;
    store<f32>(sc + (<usize>jj << 2), s);
    if (s > bmax) bmax = s;
  }
  return bmax;
}

/**
 * The online-softmax update of one query head by a block of nb keys whose scores are in sc (bmax
 * their max): the head's running max / sum (at ml, ml + 4), its accumulator acc rescaled, and the
 * keys' weights exp(s − max) in place of their scores, for accumV.
 */
@inline function softmaxP(sc: usize, bmax: f32, nb: i32, hd: i32, d4: i32, acc: usize, ml: usize): void {
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
  let jj = 0;
  for (; jj + 4 <= nb; jj += 4) {
    const o = <usize>jj << 2;
    const p = vexpNeg(f32x4.sub(v128.load(sc + o), mv));
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
}

/**
 * acc[e] += Σ p_j · v_j[e] over the block's keys [j0, j0 + nb) (weights p in sc), for e from e0:
 * 32 of acc's floats stay in registers over the keys (each float still takes its keys' products
 * one fused step at a time, in key order), the last ones as before.
 */
@inline function accumV(sc: usize, vb: usize, j0: i32, nb: i32, hd: i32, d4: i32, rowB: usize, acc: usize, e0: i32): void {
  let jj = 0;
  const d32 = e0 + ((d4 - e0) & ~31);
  for (; e0 < d32; e0 += 32) {
    const ao = acc + (<usize>e0 << 2);
    let c0 = v128.load(ao), c1 = v128.load(ao, 16), c2 = v128.load(ao, 32), c3 = v128.load(ao, 48);
    let c4 = v128.load(ao, 64), c5 = v128.load(ao, 80), c6 = v128.load(ao, 96), c7 = v128.load(ao, 112);
    let vr = vb + <usize>j0 * rowB + (<usize>e0 << 2);
    for (jj = 0; jj < nb; jj++) {
      const p = v128.load32_splat(sc + (<usize>jj << 2));
      c0 = fmadd(p, v128.load(vr), c0); c1 = fmadd(p, v128.load(vr, 16), c1);
      c2 = fmadd(p, v128.load(vr, 32), c2); c3 = fmadd(p, v128.load(vr, 48), c3);
      c4 = fmadd(p, v128.load(vr, 64), c4); c5 = fmadd(p, v128.load(vr, 80), c5);
      c6 = fmadd(p, v128.load(vr, 96), c6); c7 = fmadd(p, v128.load(vr, 112), c7);
      vr += rowB;
    }
    v128.store(ao, c0); v128.store(ao, c1, 16); v128.store(ao, c2, 32); v128.store(ao, c3, 48);
    v128.store(ao, c4, 64); v128.store(ao, c5, 80); v128.store(ao, c6, 96); v128.store(ao, c7, 112);
  }
  if (d32 == hd) return;
  jj = 0;
  for (; jj + 4 <= nb; jj += 4) {
    const v0 = vb + <usize>(j0 + jj) * rowB, v1 = v0 + rowB, v2 = v1 + rowB, v3 = v2 + rowB;
    const p0 = v128.load32_splat(sc + (<usize>jj << 2)), p1 = v128.load32_splat(sc + (<usize>jj << 2), 4);
    const p2 = v128.load32_splat(sc + (<usize>jj << 2), 8), p3 = v128.load32_splat(sc + (<usize>jj << 2), 12);
    let e = d32;
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
    let e = d32;
    for (; e < d4; e += 4) { const o = <usize>e << 2; v128.store(acc + o, fmadd(p0, v128.load(v0 + o), v128.load(acc + o))); }
    for (; e < hd; e++) { const o = <usize>e << 2; store<f32>(acc + o, load<f32>(acc + o) + ps * load<f32>(v0 + o)); }
  }
}

/**
 * accumV for two heads (weights in sca and scb, accumulators acca and accb) over the same keys:
 * 16 floats of each accumulator in registers, so each V vector is loaded once for both; every
 * float takes the same fused steps in the same order as in accumV. Dimensions past the last
 * multiple of 16 go through accumV.
 */
@inline function accumV2(sca: usize, scb: usize, vb: usize, j0: i32, nb: i32, hd: i32, d4: i32, rowB: usize, acca: usize, accb: usize): void {
  const d16 = d4 & ~15;
  for (let e0 = 0; e0 < d16; e0 += 16) {
    const ao = acca + (<usize>e0 << 2), bo = accb + (<usize>e0 << 2);
    let a0 = v128.load(ao), a1 = v128.load(ao, 16), a2 = v128.load(ao, 32), a3 = v128.load(ao, 48);
    let b0 = v128.load(bo), b1 = v128.load(bo, 16), b2 = v128.load(bo, 32), b3 = v128.load(bo, 48);
    let vr = vb + <usize>j0 * rowB + (<usize>e0 << 2);
    // scb is sca + SC floats (attentionItems' two score buffers): one pointer for both weights
    const pe = sca + (<usize>nb << 2);
    for (let ps = sca; ps < pe; ps += 4) {
      const pa = v128.load32_splat(ps), pb = v128.load32_splat(ps, SC * 4);
      const x0 = v128.load(vr), x1 = v128.load(vr, 16), x2 = v128.load(vr, 32), x3 = v128.load(vr, 48);
      a0 = fmadd(pa, x0, a0); a1 = fmadd(pa, x1, a1); a2 = fmadd(pa, x2, a2); a3 = fmadd(pa, x3, a3);
      b0 = fmadd(pb, x0, b0); b1 = fmadd(pb, x1, b1); b2 = fmadd(pb, x2, b2); b3 = fmadd(pb, x3, b3);
      vr += rowB;
    }
    v128.store(ao, a0); v128.store(ao, a1, 16); v128.store(ao, a2, 32); v128.store(ao, a3, 48);
    v128.store(bo, b0); v128.store(bo, b1, 16); v128.store(bo, b2, 32); v128.store(bo, b3, 48);
  }
  if (d16 == hd) return;
  accumV(sca, vb, j0, nb, hd, d4, rowB, acca, d16);
  accumV(scb, vb, j0, nb, hd, d4, rowB, accb, d16);
}

/** Floats of one head's block of scores (and a slot after them). */
const SC: i32 = BLK + 4;

/** Scratch bytes per thread: two heads' scores, and per query head of a group its accumulator, max and sum. */
export function attentionScratch(G: i32, hd: i32): i32 { return (2 * SC + G * (hd + 2) + 8) * 4; }

/**
 * How many parts the G query heads of a kv head are split into, so a call with few (query row, kv
 * head) pairs (decode: one row, 3-5 kv heads) still gives `threads` threads equal work: the
 * smallest divisor d of G that makes the item count S·Hkv·d a multiple of the threads and at least
 * two per thread. Heads are independent, so the results do not depend on the split.
 */
export function attentionSplit(S: i32, Q: i32, Hkv: i32, threads: i32): i32 {
  const G = Q / Hkv, items = S * Hkv;
  if (threads <= 1 || items >= 4 * threads) return 1;
  for (let d = 1; d < G; d++) if (G % d == 0 && (items * d) % threads == 0 && items * d >= 2 * threads) return d;
  return max(G, 1);
}

/**
 * Work item = (query row i, kv head g, part of g's query heads; `split` parts): the query heads of
 * an item walk the keys together, block by block, so each block of K and V (BLK·hd floats each,
 * L1-sized) is read from memory once per item instead of once per head.
 */
export function attentionItems(out: usize, qkv: usize, kc: usize, vc: usize, S: i32, P: i32, Q: i32, Hkv: i32,
  hd: i32, cap: i32, split: i32, scr: usize, c: i32, nc: i32): void {
  const W = (Q + 2 * Hkv) * hd, G = Q / Hkv, d4 = hd & ~3;
  const scale: f32 = <f32>1 / sqrt<f32>(<f32>hd);
  const rowB = <usize>hd << 2;
  const sc = scr, sc2 = scr + (<usize>SC << 2), accs = scr + (<usize>(2 * SC) << 2), mls = accs + <usize>G * rowB;
  const ns = max(1, min(split, G)), per = Hkv * ns;
  const items = S * per;
  // A split call has one item per chunk, and two threads claim chunks 0, 1, 2, … alternately: even
  // chunks take the first half of the items in order, odd ones the second half, so the two threads
  // start on different kv heads and one thread's next item is mostly the other part of the kv head
  // it just read (its K and V now in that core's cache), not the part the other thread is reading
  // from memory at the same time. Which thread computes an item never changes its result.
  const paired = ns > 1 && nc == items && (items & 1) == 0;
  for (let ci = c; ci < items; ci += nc) {
    const it = paired ? ((ci & 1) == 0 ? ci >> 1 : (items >> 1) + (ci >> 1)) : ci;
    const i = it / per, gs = it - i * per, g = gs / ns, s = gs - g * ns;
    const h0 = part(G, s, ns, 1), nh = part(G, s + 1, ns, 1) - h0;
    const nk = P + i + 1;
    const kb = kc + (<usize>g * <usize>cap) * rowB, vb = vc + (<usize>g * <usize>cap) * rowB;
    const q0 = qkv + ((<usize>i * <usize>W + <usize>(g * G + h0) * <usize>hd) << 2);
    memory.fill(accs, 0, <usize>nh * rowB);
    for (let hh = 0; hh < nh; hh++) { store<f32>(mls + (<usize>hh << 3), -3.0e38); store<f32>(mls + (<usize>hh << 3), 0, 4); }
    for (let j0 = 0; j0 < nk; j0 += BLK) {
      const nb = min(BLK, nk - j0);
      let hh = 0;
      for (; hh + 2 <= nh; hh += 2) {
        const qa = q0 + <usize>hh * rowB, acca = accs + <usize>hh * rowB, accb = acca + rowB;
        const ma = scoresBlock2(qa, qa + rowB, kb, j0, nb, hd, d4, rowB, scale, sc, sc2);
        softmaxP(sc, ma, nb, hd, d4, acca, mls + (<usize>hh << 3));
        softmaxP(sc2, load<f32>(sc2 + (<usize>BLK << 2)), nb, hd, d4, accb, mls + (<usize>(hh + 1) << 3));
        accumV2(sc, sc2, vb, j0, nb, hd, d4, rowB, acca, accb);
      }
      if (hh < nh) {
        const acc = accs + <usize>hh * rowB;
        softmaxP(sc, scoresBlock(q0 + <usize>hh * rowB, kb, j0, nb, hd, d4, rowB, scale, sc), nb, hd, d4, acc, mls + (<usize>hh << 3));
        accumV(sc, vb, j0, nb, hd, d4, rowB, acc, 0);
      }
    }
    for (let hh = 0; hh < nh; hh++) {
      const acc = accs + <usize>hh * rowB;
      const oo = out + ((<usize>i * <usize>Q * <usize>hd + <usize>(g * G + h0 + hh) * <usize>hd) << 2);
      const il: f32 = <f32>1 / load<f32>(mls + (<usize>hh << 3), 4);
      const iv = f32x4.splat(il);
      let e = 0;
      for (; e < d4; e += 4) { const o = <usize>e << 2; v128.store(oo + o, f32x4.mul(v128.load(acc + o), iv)); }
      for (; e < hd; e++) { const o = <usize>e << 2; store<f32>(oo + o, load<f32>(acc + o) * il); }
    }
  }
}
