// The KV cache store and causal GQA attention over per-layer caches [Hkv, cap, hd].
//
// Queries i = 0..S-1 sit at positions P + i and see keys 0..P+i. Every kernel handles the G = Q/Hkv
// query heads of one kv head together, so each key and value is read once per group.
//  - attnSplit ("flash-decoding"): for few queries. The keys are cut into chunks of CHUNK; one
//    workgroup per (chunk, kv head, query) computes the chunk's max, sum and weighted values, and
//    attnCombine merges the chunks. With one chunk, attnSplit writes the result itself.
//  - attnFlash: for prefill. One workgroup per tile of BQ (query, head) rows of one kv head walks
//    the keys in tiles of BK staged in workgroup memory, with the online softmax.

import { type KernelSpec } from '../kernel.js';
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

export function attnSplitKernel(G: number, hd: number): KernelSpec {
  return memo(`attn_split_g${G}_hd${hd}`, () => ({
    tensors: ['out', 'qkv', 'kc', 'vc', 'part'],
    params: [['P', 'u32'], ['Q', 'u32'], ['Hkv', 'u32'], ['cap', 'u32'], ['nsplit', 'u32'], ['direct', 'u32'], ['scale', 'f32']],
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
  var cnt = 0u;
  if (k0 < nk) { cnt = min(CH, nk - k0); }
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
    if (p.direct != 0u) {
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

/** out[i, h] from the nsplit partial (weighted values, max, sum) records of attnSplit. */
export function attnCombineKernel(hd: number): KernelSpec {
  return memo(`attn_combine_hd${hd}`, () => ({
    tensors: ['out', 'part'],
    params: [['Q', 'u32'], ['nsplit', 'u32']],
    body: `
const HD = ${hd}u;
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let h = wid.x;
  let i = wid.y;
  let base = (i * p.Q + h) * p.nsplit;
  var M = ${NEG_BIG};
  for (var s = 0u; s < p.nsplit; s++) { M = max(M, ld_part((base + s) * (HD + 2u) + HD)); }
  var L = 0.0;
  for (var s = 0u; s < p.nsplit; s++) {
    let r = (base + s) * (HD + 2u);
    L += ld_part(r + HD + 1u) * exp(ld_part(r + HD) - M);
  }
  for (var d = li; d < HD; d += 64u) {
    var a = 0.0;
    for (var s = 0u; s < p.nsplit; s++) {
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

export function attnFlashKernel(G: number, hd: number, bq: number, bk: number): KernelSpec {
  const npt = Math.ceil((bq * hd) / FLASH_WG);
  return memo(`attn_flash_g${G}_hd${hd}_${bq}x${bk}`, () => ({
    tensors: ['out', 'qkv', 'kc', 'vc'],
    params: [['S', 'u32'], ['P', 'u32'], ['Q', 'u32'], ['Hkv', 'u32'], ['cap', 'u32'], ['scale', 'f32']],
    body: `
const G = ${G}u;
const HD = ${hd}u;
const BQ = ${bq}u;
const BK = ${bk}u;
const WG = ${FLASH_WG}u;
const NPT = ${npt}u;
var<workgroup> qs: array<f32, ${bq * hd}>;
var<workgroup> ks: array<f32, ${bk * hd}>;
var<workgroup> vs: array<f32, ${bk * hd}>;
var<workgroup> ps: array<f32, ${bq * bk}>;
var<workgroup> mrow: array<f32, ${bq}>;
var<workgroup> lrow: array<f32, ${bq}>;
var<workgroup> arow: array<f32, ${bq}>;
@compute @workgroup_size(${FLASH_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = wid.y;
  let r0 = wid.x * BQ;
  let nrows = p.S * G;
  let W = (p.Q + 2u * p.Hkv) * HD;
  for (var e = li; e < BQ * HD; e += WG) {
    let gr = r0 + e / HD;
    var v = 0.0;
    if (gr < nrows) { v = ld_qkv((gr / G) * W + (g * G + gr % G) * HD + e % HD); }
    qs[e] = v;
  }
  if (li < BQ) { mrow[li] = ${NEG_BIG}; lrow[li] = 0.0; }
  var acc: array<f32, NPT>;
  let nkeys = p.P + (min(r0 + BQ, nrows) - 1u) / G + 1u;
  let kb = g * p.cap * HD;
  workgroupBarrier();
  for (var kt = 0u; kt < nkeys; kt += BK) {
    for (var e = li; e < BK * HD; e += WG) {
      let key = kt + e / HD;
      var kv = 0.0;
      var vv = 0.0;
      if (key < nkeys) {
        kv = ld_kc(kb + key * HD + e % HD);
        vv = ld_vc(kb + key * HD + e % HD);
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
      if (gr < nrows && kt + j <= p.P + gr / G) {
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
      st_out((gr / G) * p.Q * HD + (g * G + gr % G) * HD + o % HD, acc[q] / lrow[o / HD]);
    }
  }
}`,
  }));
}
