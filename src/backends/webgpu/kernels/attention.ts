// The KV cache store and causal GQA attention over per-layer caches [Hkv, cap, hd].
//
// Queries i = 0..S-1 sit at positions P + i and see keys 0..P+i. Every kernel handles the G = Q/Hkv
// query heads of one kv head together, so each key and value is read once per group.
//  - attnSplit ("flash-decoding"): for few queries. The keys are cut into chunks of CHUNK; one
//    workgroup per (chunk, kv head, query) computes the chunk's max, sum and weighted values, and
//    attnCombine merges the chunks. With one chunk, attnSplit writes the result itself.
//  - attnFlash: for prefill. One workgroup per tile of BQ (query, head) rows of one kv head walks
//    the keys in tiles of BK staged in workgroup memory, with the online softmax.

import type { KernelSpec } from '../kernel.js';
import { NEG_BIG, memo } from './common.js';

/** k/v heads of S qkv rows -> cache positions P..P+S-1; one thread per element. */
export function storeKVKernel(): KernelSpec {
  return memo('store_kv', () => ({
    tensors: ['kc', 'vc', 'qkv'],
    params: [['S', 'u32'], ['P', 'u32'], ['Q', 'u32'], ['Hkv', 'u32'], ['hd', 'u32'], ['cap', 'u32']],
    body: `
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let s = wid.y;
  let h = wid.x;
  let W = (p.Q + 2u * p.Hkv) * p.hd;
  let dst = (h * p.cap + p.P + s) * p.hd;
  let src = s * W + (p.Q + h) * p.hd;
  for (var d = li; d < p.hd; d += 64u) {
    st_kc(dst + d, ld_qkv(src + d));
    st_vc(dst + d, ld_qkv(src + p.Hkv * p.hd + d));
  }
}`,
  }));
}

/** Keys per attnSplit workgroup. */
export const ATTN_CHUNK = 64;
const SPLIT_WG = 64;

/**
 * Split-key attention of S queries: workgroup (split, g, i) scores query i's heads of kv group g
 * against keys split·CH.. of its own prefix. A query whose keys fit one chunk is written directly;
 * longer ones leave a (weighted values, max, sum) record per chunk for attnCombine. Both decisions
 * depend only on the query's position, never on S or on the other queries, so each of S rows comes
 * out bit for bit as a one-row call at its position (speculative decoding relies on that).
 */
export function attnSplitKernel(G: number, hd: number): KernelSpec {
  return memo(`attn_split_g${G}_hd${hd}`, () => ({
    tensors: ['out', 'qkv', 'kc', 'vc', 'part'],
    params: [['P', 'u32'], ['Q', 'u32'], ['Hkv', 'u32'], ['cap', 'u32'], ['nsplit', 'u32'], ['scale', 'f32']],
    body: `
const G = ${G}u;
const HD = ${hd}u;
const CH = ${ATTN_CHUNK}u;
const WG = ${SPLIT_WG}u;
var<workgroup> qs: array<f32, ${G * hd}>;
var<workgroup> sc: array<f32, ${G * ATTN_CHUNK}>;
var<workgroup> mx: array<f32, ${G}>;
var<workgroup> sm: array<f32, ${G}>;
@compute @workgroup_size(${SPLIT_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let split = wid.x;
  let g = wid.y;
  let i = wid.z;
  let W = (p.Q + 2u * p.Hkv) * HD;
  let nk = p.P + i + 1u;
  let k0 = split * CH;
  if (k0 >= nk) { return; }
  let cnt = min(CH, nk - k0);
  let direct = nk <= CH;
  for (var e = li; e < G * HD; e += WG) { qs[e] = ld_qkv(i * W + g * G * HD + e); }
  workgroupBarrier();
  let kb = g * p.cap * HD;
  for (var e = li; e < G * CH; e += WG) {
    let hh = e / CH;
    let j = e % CH;
    var s = ${NEG_BIG};
    if (j < cnt) {
      let ko = kb + (k0 + j) * HD;
      var d = 0.0;
      for (var c = 0u; c < HD; c++) { d += qs[hh * HD + c] * ld_kc(ko + c); }
      s = d * p.scale;
    }
    sc[e] = s;
  }
  workgroupBarrier();
  if (li < G) {
    var m = ${NEG_BIG};
    for (var j = 0u; j < cnt; j++) { m = max(m, sc[li * CH + j]); }
    var l = 0.0;
    for (var j = 0u; j < cnt; j++) {
      let e = exp(sc[li * CH + j] - m);
      sc[li * CH + j] = e;
      l += e;
    }
    mx[li] = m;
    sm[li] = l;
  }
  workgroupBarrier();
  for (var e = li; e < G * HD; e += WG) {
    let hh = e / HD;
    let d = e % HD;
    var a = 0.0;
    for (var j = 0u; j < cnt; j++) { a += sc[hh * CH + j] * ld_vc(kb + (k0 + j) * HD + d); }
    let h = g * G + hh;
    if (direct) {
      st_out(i * p.Q * HD + h * HD + d, a / sm[hh]);
    } else {
      let po = ((i * p.Q + h) * p.nsplit + split) * (HD + 2u);
      st_part(po + d, a);
      if (d == 0u) {
        st_part(po + HD, mx[hh]);
        st_part(po + HD + 1u, sm[hh]);
      }
    }
  }
}`,
  }));
}

/** out[i, h] from the partial records of the chunks query i has (queries of one chunk were written directly). */
export function attnCombineKernel(hd: number): KernelSpec {
  return memo(`attn_combine_hd${hd}`, () => ({
    tensors: ['out', 'part'],
    params: [['P', 'u32'], ['Q', 'u32'], ['nsplit', 'u32']],
    body: `
const HD = ${hd}u;
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let h = wid.x;
  let i = wid.y;
  let nq = (p.P + i + ${ATTN_CHUNK}u) / ${ATTN_CHUNK}u;
  if (nq == 1u) { return; }
  let base = (i * p.Q + h) * p.nsplit;
  var M = ${NEG_BIG};
  for (var s = 0u; s < nq; s++) { M = max(M, ld_part((base + s) * (HD + 2u) + HD)); }
  var L = 0.0;
  for (var s = 0u; s < nq; s++) {
    let r = (base + s) * (HD + 2u);
    L += ld_part(r + HD + 1u) * exp(ld_part(r + HD) - M);
  }
  for (var d = li; d < HD; d += 64u) {
    var a = 0.0;
    for (var s = 0u; s < nq; s++) {
      let r = (base + s) * (HD + 2u);
      a += ld_part(r + d) * exp(ld_part(r + HD) - M);
    }
    st_out(i * p.Q * HD + h * HD + d, a / L);
  }
}`,
  }));
}

const FLASH_WG = 64;

/** Rows (query, head) and keys per attnFlash tile that fit the workgroup memory limit. */
export function flashTiles(hd: number, limitBytes: number): { bq: number; bk: number } {
  for (const [bq, bk] of [[16, 16], [16, 8], [8, 8], [4, 4]]) {
    if ((bq * hd + 2 * bk * hd + bq * bk + 3 * bq) * 4 <= limitBytes) return { bq, bk };
  }
  throw new Error(`head dim ${hd} is too large for ${limitBytes} bytes of workgroup memory`);
}

/** The WGSL constants of a tiled attention kernel: G query heads per kv head, head size, tiles, threads, outputs per thread. */
function tileConsts(G: number, hd: number, bq: number, bk: number, npt: number): string {
  return `const G = ${G}u;
const HD = ${hd}u;
const BQ = ${bq}u;
const BK = ${bk}u;
const WG = ${FLASH_WG}u;
const NPT = ${npt}u;`;
}

/** Where the forward kernels (inference with a KV cache, training without) read and write. */
interface FlashAddressing {
  /** WGSL that sets r0 (the tile's first row) and nrows (rows of (query, head)), and what addressing needs. */
  rows: string;
  /** Element e % HD of the query of row gr. */
  q: string;
  /** WGSL that sets nkeys, the keys the tile's last row sees, and what addressing needs. */
  keys: string;
  /** Element e % HD of the key and value `key` of kv head g. */
  k: string;
  v: string;
  /** Keys before query 0 (the cache's), as a WGSL term ending in `+ `, or ''. */
  past: string;
  /** Where row gr's output starts. */
  out: string;
  /** WGSL after the output is written. */
  end: string;
}

/**
 * The forward of causal attention for one tile of BQ (query, head) rows of kv head g: the keys in
 * tiles of BK staged in workgroup memory, with the online softmax (FlashAttention).
 */
function flashMain(bq: number, bk: number, hd: number, a: FlashAddressing): string {
  return `var<workgroup> qs: array<f32, ${bq * hd}>;
var<workgroup> ks: array<f32, ${bk * hd}>;
var<workgroup> vs: array<f32, ${bk * hd}>;
var<workgroup> ps: array<f32, ${bq * bk}>;
var<workgroup> mrow: array<f32, ${bq}>;
var<workgroup> lrow: array<f32, ${bq}>;
var<workgroup> arow: array<f32, ${bq}>;
@compute @workgroup_size(${FLASH_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = wid.y;
${a.rows}
  for (var e = li; e < BQ * HD; e += WG) {
    let gr = r0 + e / HD;
    var v = 0.0;
    if (gr < nrows) { v = ${a.q}; }
    qs[e] = v;
  }
  if (li < BQ) { mrow[li] = ${NEG_BIG}; lrow[li] = 0.0; }
  var acc: array<f32, NPT>;
${a.keys}
  workgroupBarrier();
  for (var kt = 0u; kt < nkeys; kt += BK) {
    for (var e = li; e < BK * HD; e += WG) {
      let key = kt + e / HD;
      var kv = 0.0;
      var vv = 0.0;
      if (key < nkeys) {
        kv = ${a.k};
        vv = ${a.v};
      }
      ks[e] = kv;
      vs[e] = vv;
    }
    workgroupBarrier();
    for (var e = li; e < BQ * BK; e += WG) {
      let r = e / BK;
      let j = e % BK;
      let gr = r0 + r;
      var s = ${NEG_BIG};
      if (gr < nrows && kt + j <= ${a.past}gr / G) {
        var d = 0.0;
        for (var c = 0u; c < HD; c++) { d += qs[r * HD + c] * ks[j * HD + c]; }
        s = d * p.scale;
      }
      ps[e] = s;
    }
    workgroupBarrier();
    if (li < BQ) {
      let mold = mrow[li];
      var mnew = mold;
      for (var j = 0u; j < BK; j++) { mnew = max(mnew, ps[li * BK + j]); }
      let alpha = exp(mold - mnew);
      var l = lrow[li] * alpha;
      for (var j = 0u; j < BK; j++) {
        let e = exp(ps[li * BK + j] - mnew);
        ps[li * BK + j] = e;
        l += e;
      }
      mrow[li] = mnew;
      lrow[li] = l;
      arow[li] = alpha;
    }
    workgroupBarrier();
    for (var q = 0u; q < NPT; q++) {
      let o = li + q * WG;
      if (o < BQ * HD) {
        let r = o / HD;
        let d = o % HD;
        var a = acc[q] * arow[r];
        for (var j = 0u; j < BK; j++) { a += ps[r * BK + j] * vs[j * HD + d]; }
        acc[q] = a;
      }
    }
    workgroupBarrier();
  }
  for (var q = 0u; q < NPT; q++) {
    let o = li + q * WG;
    let gr = r0 + o / HD;
    if (o < BQ * HD && gr < nrows) {
      st_out(${a.out} + o % HD, acc[q] / lrow[o / HD]);
    }
  }${a.end}
}`;
}

export function attnFlashKernel(G: number, hd: number, bq: number, bk: number): KernelSpec {
  const npt = Math.ceil((bq * hd) / FLASH_WG);
  return memo(`attn_flash_g${G}_hd${hd}_${bq}x${bk}`, () => ({
    tensors: ['out', 'qkv', 'kc', 'vc'],
    params: [['S', 'u32'], ['P', 'u32'], ['Q', 'u32'], ['Hkv', 'u32'], ['cap', 'u32'], ['scale', 'f32']],
    body: `
${tileConsts(G, hd, bq, bk, npt)}
${flashMain(bq, bk, hd, {
  rows: `  let r0 = wid.x * BQ;
  let nrows = p.S * G;
  let W = (p.Q + 2u * p.Hkv) * HD;`,
  q: 'ld_qkv((gr / G) * W + (g * G + gr % G) * HD + e % HD)',
  keys: `  let nkeys = p.P + (min(r0 + BQ, nrows) - 1u) / G + 1u;
  let kb = g * p.cap * HD;`,
  k: 'ld_kc(kb + key * HD + e % HD)',
  v: 'ld_vc(kb + key * HD + e % HD)',
  past: 'p.P + ',
  out: '(gr / G) * p.Q * HD + (g * G + gr % G) * HD',
  end: '',
})}`,
  }));
}

// ------------------------------------------------------------------------------------------------
// Training: causal attention over B sequences of T qkv rows (no cache), forward with the per-row
// logsumexp saved, and the FlashAttention-2 backward that recomputes the probabilities from q, k
// and that logsumexp (Dao, 2023, arXiv 2307.08691, Algorithm 2) in three kernels:
//   attnDelta   Dᵢ = dOᵢ · Oᵢ for every (row, head), the Σⱼ Pᵢⱼ dPᵢⱼ of the softmax backward;
//   attnBwdKV   per tile of keys of one kv head: dK and dV summed over the G query heads and every
//               later query, in a fixed order;
//   attnBwdQ    per tile of (query, head) rows: dQ summed over the keys.
// Every gradient element is written by one thread that adds its terms in a fixed order, so the
// result is the same on every run (no atomics).

/** Tiles for the training kernels: rows (query, head) and keys that fit the workgroup memory. */
export function trainTiles(hd: number, limitBytes: number): { bq: number; bk: number } {
  for (const [bq, bk] of [[16, 16], [16, 8], [8, 8], [4, 4]]) {
    if (((2 * bq + 2 * bk) * hd + 2 * bq * bk + 2 * bq) * 4 <= limitBytes) return { bq, bk };
  }
  throw new Error(`head dim ${hd} is too large for ${limitBytes} bytes of workgroup memory`);
}

/** Addressing of the training layout: qkv rows [B·T, (Q + 2·Hkv)·hd], out rows [B·T, Q·hd], lse [B, Q, T]. */
const TRAIN_ADDR = `
fn W() -> u32 { return (p.Q + 2u * p.Hkv) * HD; }
fn qAt(b: u32, i: u32, h: u32) -> u32 { return (b * p.T + i) * W() + h * HD; }
fn kAt(b: u32, j: u32, g: u32) -> u32 { return (b * p.T + j) * W() + (p.Q + g) * HD; }
fn vAt(b: u32, j: u32, g: u32) -> u32 { return (b * p.T + j) * W() + (p.Q + p.Hkv + g) * HD; }
fn oAt(b: u32, i: u32, h: u32) -> u32 { return (b * p.T + i) * p.Q * HD + h * HD; }
fn sAt(b: u32, i: u32, h: u32) -> u32 { return (b * p.Q + h) * p.T + i; }`;

/** Forward: one workgroup per tile of BQ (query, head) rows of one kv head of one sequence. */
export function attnTrainFwdKernel(G: number, hd: number, bq: number, bk: number): KernelSpec {
  const npt = Math.ceil((bq * hd) / FLASH_WG);
  return memo(`attn_train_fwd_g${G}_hd${hd}_${bq}x${bk}`, () => ({
    tensors: ['out', 'lse', 'qkv'],
    params: [['T', 'u32'], ['Q', 'u32'], ['Hkv', 'u32'], ['scale', 'f32']],
    body: `
${tileConsts(G, hd, bq, bk, npt)}
${TRAIN_ADDR}
${flashMain(bq, bk, hd, {
  rows: `  let b = wid.z;
  let r0 = wid.x * BQ;
  let nrows = p.T * G;`,
  q: 'ld_qkv(qAt(b, gr / G, g * G + gr % G) + e % HD)',
  keys: '  let nkeys = (min(r0 + BQ, nrows) - 1u) / G + 1u;',
  k: 'ld_qkv(kAt(b, key, g) + e % HD)',
  v: 'ld_qkv(vAt(b, key, g) + e % HD)',
  past: '',
  out: 'oAt(b, gr / G, g * G + gr % G)',
  end: `
  if (li < BQ && r0 + li < nrows) {
    let gr = r0 + li;
    st_lse(sAt(b, gr / G, g * G + gr % G), mrow[li] + log(lrow[li]));
  }`,
})}`,
  }));
}

/** D[b, h, i] = dout row · out row of head h (one thread each). */
export function attnDeltaKernel(hd: number): KernelSpec {
  return memo(`attn_delta_hd${hd}`, () => ({
    tensors: ['dd', 'dout', 'out'],
    params: [['n', 'u32'], ['T', 'u32'], ['Q', 'u32']],
    body: `
const HD = ${hd}u;
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32) {
  let t = (wid.y * nwg.x + wid.x) * 64u + li;
  if (t >= p.n) { return; }
  let i = t % p.T;
  let h = (t / p.T) % p.Q;
  let b = t / (p.T * p.Q);
  let o = (b * p.T + i) * p.Q * HD + h * HD;
  var s = 0.0;
  for (var d = 0u; d < HD; d++) { s += ld_dout(o + d) * ld_out(o + d); }
  st_dd(t, s);
}`,
  }));
}

/** The shared part of both backward kernels: P and dS of a (rows × keys) tile. */
function bwdScores(): string {
  return `
    for (var e = li; e < BQ * BK; e += WG) {
      let r = e / BK;
      let j = e % BK;
      let gr = r0 + r;
      let key = kt + j;
      var pp = 0.0;
      var ds = 0.0;
      if (gr < nrows && key < p.T && key <= gr / G) {
        var s = 0.0;
        var dp = 0.0;
        for (var c = 0u; c < HD; c++) {
          s += qs[r * HD + c] * ks[j * HD + c];
          dp += dos[r * HD + c] * vs[j * HD + c];
        }
        pp = exp(s * p.scale - lrow[r]);
        ds = pp * (dp - drow[r]) * p.scale;
      }
      ps[e] = pp;
      dss[e] = ds;
    }`;
}

function bwdLoadRows(): string {
  return `
    for (var e = li; e < BQ * HD; e += WG) {
      let gr = r0 + e / HD;
      var qv = 0.0;
      var dv = 0.0;
      if (gr < nrows) {
        let i = gr / G;
        let h = g * G + gr % G;
        qv = ld_qkv(qAt(b, i, h) + e % HD);
        dv = ld_dout(oAt(b, i, h) + e % HD);
      }
      qs[e] = qv;
      dos[e] = dv;
    }
    if (li < BQ) {
      let gr = r0 + li;
      var lv = 0.0;
      var dd = 0.0;
      if (gr < nrows) {
        let s = sAt(b, gr / G, g * G + gr % G);
        lv = ld_lse(s);
        dd = ld_dd(s);
      }
      lrow[li] = lv;
      drow[li] = dd;
    }`;
}

function bwdLoadKeys(): string {
  return `
    for (var e = li; e < BK * HD; e += WG) {
      let key = kt + e / HD;
      var kv = 0.0;
      var vv = 0.0;
      if (key < p.T) {
        kv = ld_qkv(kAt(b, key, g) + e % HD);
        vv = ld_qkv(vAt(b, key, g) + e % HD);
      }
      ks[e] = kv;
      vs[e] = vv;
    }`;
}

function bwdShared(bq: number, bk: number, hd: number): string {
  return `
var<workgroup> qs: array<f32, ${bq * hd}>;
var<workgroup> dos: array<f32, ${bq * hd}>;
var<workgroup> ks: array<f32, ${bk * hd}>;
var<workgroup> vs: array<f32, ${bk * hd}>;
var<workgroup> ps: array<f32, ${bq * bk}>;
var<workgroup> dss: array<f32, ${bq * bk}>;
var<workgroup> lrow: array<f32, ${bq}>;
var<workgroup> drow: array<f32, ${bq}>;`;
}

const BWD_PARAMS: [string, 'u32' | 'f32'][] = [['T', 'u32'], ['Q', 'u32'], ['Hkv', 'u32'], ['scale', 'f32']];

/** dK and dV of one tile of BK keys of kv head g (workgroup y) in sequence b (z). */
export function attnBwdKVKernel(G: number, hd: number, bq: number, bk: number): KernelSpec {
  const npt = Math.ceil((bk * hd) / FLASH_WG);
  return memo(`attn_bwd_kv_g${G}_hd${hd}_${bq}x${bk}`, () => ({
    tensors: ['dqkv', 'dout', 'qkv', 'lse', 'dd'],
    params: BWD_PARAMS,
    body: `
${tileConsts(G, hd, bq, bk, npt)}
${TRAIN_ADDR}
${bwdShared(bq, bk, hd)}
@compute @workgroup_size(${FLASH_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = wid.y;
  let b = wid.z;
  let kt = wid.x * BK;
  let nrows = p.T * G;
  ${bwdLoadKeys()}
  var dk: array<f32, NPT>;
  var dv: array<f32, NPT>;
  // the queries that see these keys: rows (i, head) with i >= kt
  for (var r0 = kt * G; r0 < nrows; r0 += BQ) {
    workgroupBarrier();
    ${bwdLoadRows()}
    workgroupBarrier();
    ${bwdScores()}
    workgroupBarrier();
    for (var q = 0u; q < NPT; q++) {
      let o = li + q * WG;
      if (o < BK * HD) {
        let j = o / HD;
        let d = o % HD;
        var a = dk[q];
        var c = dv[q];
        for (var r = 0u; r < BQ; r++) {
          a += dss[r * BK + j] * qs[r * HD + d];
          c += ps[r * BK + j] * dos[r * HD + d];
        }
        dk[q] = a;
        dv[q] = c;
      }
    }
  }
  for (var q = 0u; q < NPT; q++) {
    let o = li + q * WG;
    let key = kt + o / HD;
    if (o < BK * HD && key < p.T) {
      st_dqkv(kAt(b, key, g) + o % HD, dk[q]);
      st_dqkv(vAt(b, key, g) + o % HD, dv[q]);
    }
  }
}`,
  }));
}

/** dQ of one tile of BQ (query, head) rows of kv head g (workgroup y) in sequence b (z). */
export function attnBwdQKernel(G: number, hd: number, bq: number, bk: number): KernelSpec {
  const npt = Math.ceil((bq * hd) / FLASH_WG);
  return memo(`attn_bwd_q_g${G}_hd${hd}_${bq}x${bk}`, () => ({
    tensors: ['dqkv', 'dout', 'qkv', 'lse', 'dd'],
    params: BWD_PARAMS,
    body: `
${tileConsts(G, hd, bq, bk, npt)}
${TRAIN_ADDR}
${bwdShared(bq, bk, hd)}
@compute @workgroup_size(${FLASH_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = wid.y;
  let b = wid.z;
  let r0 = wid.x * BQ;
  let nrows = p.T * G;
  ${bwdLoadRows()}
  var dq: array<f32, NPT>;
  let nkeys = (min(r0 + BQ, nrows) - 1u) / G + 1u;
  for (var kt = 0u; kt < nkeys; kt += BK) {
    workgroupBarrier();
    ${bwdLoadKeys()}
    workgroupBarrier();
    ${bwdScores()}
    workgroupBarrier();
    for (var q = 0u; q < NPT; q++) {
      let o = li + q * WG;
      if (o < BQ * HD) {
        let r = o / HD;
        let d = o % HD;
        var a = dq[q];
        for (var j = 0u; j < BK; j++) { a += dss[r * BK + j] * ks[j * HD + d]; }
        dq[q] = a;
      }
    }
  }
  for (var q = 0u; q < NPT; q++) {
    let o = li + q * WG;
    let gr = r0 + o / HD;
    if (o < BQ * HD && gr < nrows) {
      st_dqkv(qAt(b, gr / G, g * G + gr % G) + o % HD, dq[q]);
    }
  }
}`,
  }));
}
