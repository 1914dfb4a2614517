// Cross-entropy over logit rows (with CoreNet's z-loss and its gradient written over the logits)
// and the blockwise sum of squares of the gradient-norm clip. Both leave small per-row or per-block
// results on the GPU that the host adds up in f64, in order, once they are read back.

import { WGSL_GRID, type KernelSpec } from '../kernel.js';
import { NEG_BIG, memo } from './common.js';

/** Threads per row of a row-wide reduction over V values (few for narrow rows, see normThreads). */
export function rowThreads(V: number): number { return V <= 8192 ? 64 : 256; }

/**
 * One workgroup per row r of x [rows, V], target t = host input r (row scale: the f32 bits at
 * host input rows + r): stats[2r] = lse, stats[2r + 1] = x[t]; with `grad`, x row r is overwritten
 * by gs·(1 + 2·zLoss·lse)·softmax − gs·onehot(t), gs = the row's scale.
 */
export function crossEntropyKernel(grad: boolean, CE_WG = 256): KernelSpec {
  return memo(`cross_entropy_${grad ? 'g' : 'f'}_${CE_WG}`, () => ({
    tensors: ['stats', 'x'],
    host: true,
    params: [['rows', 'u32'], ['V', 'u32'], ['zLoss', 'f32']],
    body: `${WGSL_GRID}
var<workgroup> red: array<f32, ${CE_WG}>;
var<workgroup> xt: f32;
@compute @workgroup_size(${CE_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32) {
  let r = wgid(wid, nwg);
  if (r >= p.rows) { return; }
  let o = r * p.V;
  let t = u32(hin(r));
  var m = ${NEG_BIG};
  for (var j = li; j < p.V; j += ${CE_WG}u) { m = max(m, ld_x(o + j)); }
  red[li] = m;
  workgroupBarrier();
  for (var s = ${CE_WG / 2}u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] = max(red[li], red[li + s]); }
    workgroupBarrier();
  }
  let mx = red[0];
  workgroupBarrier();
  var e = 0.0;
  for (var j = li; j < p.V; j += ${CE_WG}u) { e += exp(ld_x(o + j) - mx); }
  red[li] = e;
  if (li == 0u) { xt = ld_x(o + t); }
  workgroupBarrier();
  for (var s = ${CE_WG / 2}u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  let lse = mx + log(red[0]);
  if (li == 0u) {
    st_stats(2u * r, lse);
    st_stats(2u * r + 1u, xt);
  }
  ${grad ? `let gs = bitcast<f32>(hin(p.rows + r));
  let k = gs * (1.0 + 2.0 * p.zLoss * lse);
  for (var j = li; j < p.V; j += ${CE_WG}u) {
    var v = k * exp(ld_x(o + j) - lse);
    if (j == t) { v -= gs; }
    st_x(o + j, v);
  }` : ''}
}`,
  }));
}

/** Elements per block of sumSquares (each block's sum is read back and added on the host). */
export const SQ_BLOCK = 4096;
const SQ_WG = 64;

/** part[b] = Σ x[i]² over block b of SQ_BLOCK elements, in a fixed order. */
export function sumSquaresKernel(): KernelSpec {
  return memo('sum_squares', () => ({
    tensors: ['part', 'x'],
    params: [['n', 'u32'], ['blocks', 'u32']],
    body: `${WGSL_GRID}
var<workgroup> red: array<f32, ${SQ_WG}>;
@compute @workgroup_size(${SQ_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32) {
  let b = wgid(wid, nwg);
  if (b >= p.blocks) { return; }
  let i0 = b * ${SQ_BLOCK}u;
  let i1 = min(i0 + ${SQ_BLOCK}u, p.n);
  var s = 0.0;
  for (var i = i0 + li; i < i1; i += ${SQ_WG}u) { let v = ld_x(i); s += v * v; }
  red[li] = s;
  workgroupBarrier();
  for (var k = ${SQ_WG / 2}u; k > 0u; k >>= 1u) {
    if (li < k) { red[li] += red[li + k]; }
    workgroupBarrier();
  }
  if (li == 0u) { st_part(b, red[0]); }
}`,
  }));
}
