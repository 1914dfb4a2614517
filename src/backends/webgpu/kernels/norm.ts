// RMSNorm of rows, and the per-head QK-norm + rotate-half RoPE of qkv rows, one workgroup per row
// (per row and head). Both round x·r to f32 before the weight multiply, as the reference does.

import { WGSL_GRID, type KernelSpec } from '../kernel.js';
import { memo, reduceArgs, reduceBuiltins, reduceSum } from './common.js';

/**
 * Threads per row: enough for the widest rows, fewer for narrow ones (idle threads still pass
 * every barrier, which software adapters pay for dearly).
 */
export function normThreads(dim: number): number { return dim <= 64 ? 64 : dim <= 128 ? 128 : 256; }

/**
 * The start of a kernel with one workgroup of `wg` threads per row of `p.dim` values (`p.rows` rows)
 * that sums across the workgroup: `r` is the row, `o` its first element, `li` the thread.
 */
function rowKernelHead(wg: number, sg: boolean): string {
  return `${WGSL_GRID}
${reduceSum(wg, sg)}
@compute @workgroup_size(${wg}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32${reduceBuiltins(sg)}) {
  let r = wgid(wid, nwg);
  if (r >= p.rows) { return; }
  let o = r * p.dim;`;
}

/** out[r] = x[r] · rsqrt(mean(x[r]²) + eps) · w; with `rstd`, also rstd[r] = that rsqrt. */
export function rmsnormKernel(rstd: boolean, sg: boolean, NORM_WG = 256): KernelSpec {
  return memo(`rmsnorm_${rstd ? 'r' : ''}_${sg ? 'sg' : 'wg'}_${NORM_WG}`, () => ({
    tensors: rstd ? ['out', 'x', 'w', 'rstd'] : ['out', 'x', 'w'],
    params: [['rows', 'u32'], ['dim', 'u32'], ['eps', 'f32']],
    enables: sg ? ['subgroups'] : [],
    body: `${rowKernelHead(NORM_WG, sg)}
  var ss = 0.0;
  for (var i = li; i < p.dim; i += ${NORM_WG}u) { let v = ld_x(o + i); ss += v * v; }
  let inv = 1.0 / sqrt(reduceSum(ss, ${reduceArgs(sg)}) / f32(p.dim) + p.eps);
  ${rstd ? 'if (li == 0u) { st_rstd(r, inv); }' : ''}
  for (var i = li; i < p.dim; i += ${NORM_WG}u) { st_out(o + i, (ld_x(o + i) * inv) * ld_w(i)); }
}`,
  }));
}

const QK_WG = 64;

/**
 * In place on qkv rows [Q·hd | Hkv·hd | Hkv·hd]: RMSNorm of each q and k head over hd (when the
 * norm weights are given), then rotate-half RoPE at position pos[r] (host input). One workgroup per
 * (head, row) for the Q + Hkv rotated heads. With `rstd`, rstd[r·(Q+Hkv) + h] gets the norm factor.
 */
export function qkNormRopeKernel(norms: boolean, rstd: boolean, sg: boolean): KernelSpec {
  return memo(`qknormrope_${norms ? 'n' : ''}${rstd ? 'r' : ''}_${sg ? 'sg' : 'wg'}`, () => ({
    tensors: ['qkv', 'cos', 'sin', ...(norms ? ['qn', 'kn'] : []), ...(rstd ? ['rstd'] : [])],
    host: true,
    params: [['rows', 'u32'], ['Q', 'u32'], ['Hkv', 'u32'], ['hd', 'u32'], ['eps', 'f32']],
    enables: sg ? ['subgroups'] : [],
    body: `${reduceSum(QK_WG, sg)}
@compute @workgroup_size(${QK_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32${reduceBuiltins(sg)}) {
  let h = wid.x;
  let r = wid.z * nwg.y + wid.y;
  if (r >= p.rows) { return; }
  let half = p.hd / 2u;
  let o = r * (p.Q + 2u * p.Hkv) * p.hd + h * p.hd;
  var inv = 1.0;
  ${norms ? `var ss = 0.0;
  for (var i = li; i < p.hd; i += ${QK_WG}u) { let v = ld_qkv(o + i); ss += v * v; }
  inv = 1.0 / sqrt(reduceSum(ss, ${reduceArgs(sg)}) / f32(p.hd) + p.eps);
  ${rstd ? 'if (li == 0u) { st_rstd(r * (p.Q + p.Hkv) + h, inv); }' : ''}` : ''}
  let t = u32(hin(r)) * half;
  for (var j = li; j < half; j += ${QK_WG}u) {
    var a = ld_qkv(o + j);
    var b = ld_qkv(o + j + half);
    ${norms ? `if (h < p.Q) {
      a = (a * inv) * ld_qn(j);
      b = (b * inv) * ld_qn(j + half);
    } else {
      a = (a * inv) * ld_kn(j);
      b = (b * inv) * ld_kn(j + half);
    }` : ''}
    let c = ld_cos(t + j);
    let s = ld_sin(t + j);
    st_qkv(o + j, a * c - b * s);
    st_qkv(o + j + half, b * c + a * s);
  }
}`,
  }));
}

/** Workgroups of qkNormRope: heads along x, rows along y (and z past the per-dimension limit). */
export function qkNormRopeGroups(heads: number, rows: number): [number, number, number] {
  const z = Math.ceil(rows / 65535);
  return [heads, Math.ceil(rows / z), z];
}

// ------------------------------------------------------------------------------------------------
// Backward. Input gradients: one workgroup per row (per row and head), like the forward. Weight
// gradients are sums over rows, taken in two fixed-order stages instead of atomics so that a run
// gives the same bits every time: `*GradPartial` sums chunks of GRAD_CHUNK rows per column into
// partial[chunk, column], then `sumPartials` adds the chunks in order into the gradient.

export const GRAD_CHUNK = 64;

/** dx[r] += rstd·(dy·w − x·rstd·mean(dy·w·x·rstd)) per row. */
export function rmsnormBwdKernel(sg: boolean, NORM_WG = 256): KernelSpec {
  return memo(`rmsnorm_bwd_${sg ? 'sg' : 'wg'}_${NORM_WG}`, () => ({
    tensors: ['dx', 'dy', 'x', 'w', 'rstd'],
    params: [['rows', 'u32'], ['dim', 'u32']],
    enables: sg ? ['subgroups'] : [],
    body: `${rowKernelHead(NORM_WG, sg)}
  let inv = ld_rstd(r);
  var s = 0.0;
  for (var i = li; i < p.dim; i += ${NORM_WG}u) { s += ld_dy(o + i) * ld_w(i) * (ld_x(o + i) * inv); }
  let m = reduceSum(s, ${reduceArgs(sg)}) / f32(p.dim);
  for (var i = li; i < p.dim; i += ${NORM_WG}u) {
    st_dx(o + i, ld_dx(o + i) + inv * (ld_dy(o + i) * ld_w(i) - ld_x(o + i) * inv * m));
  }
}`,
  }));
}

/** partial[c, i] = Σ over rows r of chunk c of dy[r, i]·(x[r, i]·rstd[r]). Workgroups: (columns / 64, chunks). */
export function rmsGradPartialKernel(): KernelSpec {
  return memo('rms_grad_partial', () => ({
    tensors: ['part', 'dy', 'x', 'rstd'],
    params: [['rows', 'u32'], ['dim', 'u32']],
    body: `
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = wid.x * 64u + li;
  if (i >= p.dim) { return; }
  let r0 = wid.y * ${GRAD_CHUNK}u;
  let r1 = min(r0 + ${GRAD_CHUNK}u, p.rows);
  var s = 0.0;
  for (var r = r0; r < r1; r++) { s += ld_dy(r * p.dim + i) * (ld_x(r * p.dim + i) * ld_rstd(r)); }
  st_part(wid.y * p.dim + i, s);
}`,
  }));
}

/** dst[i] += Σ_c partial[c, i] over `chunks` chunks, in order. */
export function sumPartialsKernel(): KernelSpec {
  return memo('sum_partials', () => ({
    tensors: ['dst', 'part'],
    params: [['width', 'u32'], ['chunks', 'u32']],
    body: `
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = wid.x * 64u + li;
  if (i >= p.width) { return; }
  var s = 0.0;
  for (var c = 0u; c < p.chunks; c++) { s += ld_part(c * p.width + i); }
  st_dst(i, ld_dst(i) + s);
}`,
  }));
}

/**
 * In place on dqkv rows: the gradient w.r.t. the rotated q and k heads becomes the gradient w.r.t.
 * the raw projections (RoPE rotated back by −θ, then the per-head RMSNorm backward when `norms`).
 * One workgroup per (head, row) for the Q + Hkv heads; V untouched.
 */
export function qkNormRopeBwdKernel(norms: boolean, sg: boolean): KernelSpec {
  return memo(`qknormrope_bwd_${norms ? 'n' : ''}_${sg ? 'sg' : 'wg'}`, () => ({
    tensors: ['dq', 'cos', 'sin', ...(norms ? ['raw', 'rstd', 'qn', 'kn'] : [])],
    host: true,
    params: [['rows', 'u32'], ['Q', 'u32'], ['Hkv', 'u32'], ['hd', 'u32']],
    enables: sg ? ['subgroups'] : [],
    body: `${reduceSum(QK_WG, sg)}
var<workgroup> us: array<f32, 512>;
@compute @workgroup_size(${QK_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32${reduceBuiltins(sg)}) {
  let h = wid.x;
  let r = wid.z * nwg.y + wid.y;
  if (r >= p.rows) { return; }
  let half = p.hd / 2u;
  let o = r * (p.Q + 2u * p.Hkv) * p.hd + h * p.hd;
  let t = u32(hin(r)) * half;
  for (var j = li; j < half; j += ${QK_WG}u) {
    let dy1 = ld_dq(o + j);
    let dy2 = ld_dq(o + j + half);
    let c = ld_cos(t + j);
    let s = ld_sin(t + j);
    us[j] = dy1 * c + dy2 * s;
    us[j + half] = dy2 * c - dy1 * s;
  }
  workgroupBarrier();
  ${norms ? `let inv = ld_rstd(r * (p.Q + p.Hkv) + h);
  var s = 0.0;
  for (var i = li; i < p.hd; i += ${QK_WG}u) {
    var w = ld_kn(i);
    if (h < p.Q) { w = ld_qn(i); }
    s += us[i] * w * (ld_raw(o + i) * inv);
  }
  let m = reduceSum(s, ${reduceArgs(sg)}) / f32(p.hd);
  for (var i = li; i < p.hd; i += ${QK_WG}u) {
    var w = ld_kn(i);
    if (h < p.Q) { w = ld_qn(i); }
    st_dq(o + i, inv * (us[i] * w - ld_raw(o + i) * inv * m));
  }` : `for (var i = li; i < p.hd; i += ${QK_WG}u) { st_dq(o + i, us[i]); }`}
}`,
  }));
}

/**
 * partial[c, i] = Σ over the (row, head) pairs k of chunk c of g[k, i]·raw[k, i]·rstd[k], where g is
 * the gradient w.r.t. the normed head (dqkv rotated back) and k runs over rows × nh heads from head
 * h0 (the q heads: h0 = 0, nh = Q; the k heads: h0 = Q, nh = Hkv). Must run before the in-place
 * qkNormRopeBwd. Workgroups: (hd / 64, chunks).
 */
export function qkGradPartialKernel(): KernelSpec {
  return memo('qk_grad_partial', () => ({
    tensors: ['part', 'dq', 'raw', 'rstd', 'cos', 'sin'],
    host: true,
    params: [['n', 'u32'], ['Q', 'u32'], ['Hkv', 'u32'], ['hd', 'u32'], ['h0', 'u32'], ['nh', 'u32']],
    body: `
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = wid.x * 64u + li;
  if (i >= p.hd) { return; }
  let half = p.hd / 2u;
  let k0 = wid.y * ${GRAD_CHUNK}u;
  let k1 = min(k0 + ${GRAD_CHUNK}u, p.n);
  var s = 0.0;
  for (var k = k0; k < k1; k++) {
    let r = k / p.nh;
    let h = p.h0 + k % p.nh;
    let o = r * (p.Q + 2u * p.Hkv) * p.hd + h * p.hd;
    let t = u32(hin(r)) * half;
    var g = 0.0;
    if (i < half) {
      g = ld_dq(o + i) * ld_cos(t + i) + ld_dq(o + i + half) * ld_sin(t + i);
    } else {
      let j = i - half;
      g = ld_dq(o + i) * ld_cos(t + j) - ld_dq(o + j) * ld_sin(t + j);
    }
    s += g * (ld_raw(o + i) * ld_rstd(r * (p.Q + p.Hkv) + h));
  }
  st_part(wid.y * p.hd + i, s);
}`,
  }));
}
