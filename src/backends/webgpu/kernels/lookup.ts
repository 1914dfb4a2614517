// Token embedding rows out of a table in any storage format, and the greedy pick (argmax) per row,
// so that a greedy decode step reads back one 4-byte id per sequence.

import type { ConvertDType } from '../../backend.js';
import { WGSL_GRID, type KernelSpec } from '../kernel.js';
import { weightDecoders } from '../weights-wgsl.js';
import { NEG_BIG, memo } from './common.js';

/** out[r, d] = table[ids[r], d] (ids are host inputs); rows whose id is skipId get zeros. */
export function embeddingKernel(dtype: ConvertDType): KernelSpec {
  return memo(`embedding_${dtype}`, () => ({
    tensors: ['out'], weights: ['w'], host: true,
    params: [['n', 'u32'], ['D', 'u32'], ['skip', 'i32']],
    body: `${weightDecoders('w', dtype)}
${WGSL_GRID}
@compute @workgroup_size(256) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32) {
  let i = wgid(wid, nwg) * 256u + li;
  if (i >= p.n) { return; }
  let r = i / p.D;
  let id = hin(r);
  var v = 0.0;
  if (id != p.skip) { v = wel_w(u32(id) * p.D + (i - r * p.D)); }
  st_out(i, v);
}`,
  }));
}


/**
 * ids[r] = the index of the first maximum of row r of x [rows, V] (NaN never wins; a row of only
 * NaN or -inf gives 0), stored as i32 bits. One workgroup per row.
 */
export function argmaxKernel(sg: boolean, ARGMAX_WG = 256): KernelSpec {
  const reduce = sg ? `
  // Within a subgroup: the largest value, then the smallest index holding it.
  let bv = subgroupMax(best);
  let bi = subgroupMin(select(0xffffffffu, besti, best == bv));
  if (subgroupElect()) { vals[sid] = bv; idxs[sid] = bi; }
  workgroupBarrier();
  if (li == 0u) {
    var v = vals[0];
    var ix = idxs[0];
    for (var s = 1u; s < nsg; s++) {
      if (vals[s] > v || (vals[s] == v && idxs[s] < ix)) { v = vals[s]; ix = idxs[s]; }
    }
    st_ids(r, bitcast<f32>(select(ix, 0u, ix == 0xffffffffu)));
  }` : `
  vals[li] = best;
  idxs[li] = besti;
  workgroupBarrier();
  for (var s = ${ARGMAX_WG / 2}u; s > 0u; s >>= 1u) {
    if (li < s) {
      let v = vals[li + s];
      let ix = idxs[li + s];
      if (v > vals[li] || (v == vals[li] && ix < idxs[li])) { vals[li] = v; idxs[li] = ix; }
    }
    workgroupBarrier();
  }
  if (li == 0u) { st_ids(r, bitcast<f32>(select(idxs[0], 0u, idxs[0] == 0xffffffffu))); }`;
  return memo(`argmax_${sg ? 'sg' : 'wg'}_${ARGMAX_WG}`, () => ({
    tensors: ['ids', 'x'],
    params: [['rows', 'u32'], ['V', 'u32']],
    enables: sg ? ['subgroups'] : [],
    body: `${WGSL_GRID}
var<workgroup> vals: array<f32, ${ARGMAX_WG}>;
var<workgroup> idxs: array<u32, ${ARGMAX_WG}>;
@compute @workgroup_size(${ARGMAX_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32${sg ? ', @builtin(subgroup_id) sid: u32, @builtin(num_subgroups) nsg: u32' : ''}) {
  let r = wgid(wid, nwg);
  if (r >= p.rows) { return; }
  // "No index" (0xffffffff) until a finite score or +inf wins; -inf and NaN never do.
  var best = ${NEG_BIG};
  var besti = 0xffffffffu;
  for (var i = li; i < p.V; i += ${ARGMAX_WG}u) {
    let v = ld_x(r * p.V + i);
    if (v > best || (v == best && besti == 0xffffffffu)) { best = v; besti = i; }
  }
${reduce}
}`,
  }));
}

/**
 * Embedding backward without atomics: the host groups the rows by token id (host inputs: the count
 * of ids u, u + 1 offsets, u ids, then the row indices of each id in increasing order); one thread
 * per (id, column) adds that id's rows into dtable in row order, as the reference does.
 * Workgroups: (D / 64, ids).
 */
export function embeddingBwdKernel(): KernelSpec {
  return memo('embedding_bwd', () => ({
    tensors: ['dt', 'dout'], host: true,
    params: [['D', 'u32']],
    body: `
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let d = wid.x * 64u + li;
  if (d >= p.D) { return; }
  let u = u32(hin(0u));
  let k = wid.y;
  let a = u32(hin(1u + k));
  let b = u32(hin(2u + k));
  let id = u32(hin(2u + u + k));
  let rows = 2u + 2u * u;
  let o = id * p.D + d;
  var s = ld_dt(o);
  for (var j = a; j < b; j++) { s += ld_dout(u32(hin(rows + j)) * p.D + d); }
  st_dt(o, s);
}`,
  }));
}
