// RMSNorm of rows, and the per-head QK-norm + rotate-half RoPE of qkv rows, one workgroup per row
// (per row and head). Both round x·r to f32 before the weight multiply, as the reference does.

import { WGSL_GRID, type KernelSpec } from '../kernel.js';
import { memo, reduceArgs, reduceBuiltins, reduceSum } from './common.js';

const NORM_WG = 256;

/** out[r] = x[r] · rsqrt(mean(x[r]²) + eps) · w; with `rstd`, also rstd[r] = that rsqrt. */
export function rmsnormKernel(rstd: boolean, sg: boolean): KernelSpec {
  return memo(`rmsnorm_${rstd ? 'r' : ''}_${sg ? 'sg' : 'wg'}`, () => ({
    tensors: rstd ? ['out', 'x', 'w', 'rstd'] : ['out', 'x', 'w'],
    params: [['rows', 'u32'], ['dim', 'u32'], ['eps', 'f32']],
    enables: sg ? ['subgroups'] : [],
    body: `${WGSL_GRID}
${reduceSum(NORM_WG, sg)}
@compute @workgroup_size(${NORM_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32${reduceBuiltins(sg)}) {
  let r = wgid(wid, nwg);
  if (r >= p.rows) { return; }
  let o = r * p.dim;
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
