// One thread per element: fill, copy, add, scale, SiLU, SwiGLU, row gather/scatter.

import { WGSL_GRID, type KernelSpec } from '../kernel.js';
import { memo } from './common.js';

export const EW_WG = 256;

function elementwise(name: string, tensors: string[], params: [string, 'u32' | 'f32' | 'i32'][], body: string, host = false): KernelSpec {
  return memo(name, () => ({
    tensors, params, host,
    body: `${WGSL_GRID}
@compute @workgroup_size(${EW_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32) {
  let i = wgid(wid, nwg) * ${EW_WG}u + li;
  if (i >= p.n) { return; }
${body}
}`,
  }));
}

/** x[i] = value. */
export const fillKernel = () => elementwise('fill', ['x'], [['n', 'u32'], ['value', 'f32']], '  st_x(i, p.value);');

/** dst[i] = src[i] (also within one buffer, for ranges that do not overlap). */
export const copyKernel = () => elementwise('copy', ['dst', 'src'], [['n', 'u32']], '  st_dst(i, ld_src(i));');

/** x[i] += y[i]. */
export const addKernel = () => elementwise('add', ['x', 'y'], [['n', 'u32']], '  st_x(i, ld_x(i) + ld_y(i));');

/** x[i] *= c. */
export const scaleKernel = () => elementwise('scale', ['x'], [['n', 'u32'], ['c', 'f32']], '  st_x(i, ld_x(i) * p.c);');

/** out[i] = silu(u[i]). */
export const siluKernel = () => elementwise('silu', ['out', 'u'], [['n', 'u32']],
  '  let a = ld_u(i);\n  st_out(i, a / (1.0 + exp(-a)));');

/** out[r, j] = silu(u[r, j]) · u[r, F + j] for rows of u of width 2F; n = rows · F. */
export const swigluKernel = () => elementwise('swiglu', ['out', 'u'], [['n', 'u32'], ['F', 'u32']],
  `  let r = i / p.F;
  let j = i - r * p.F;
  let a = ld_u(r * 2u * p.F + j);
  st_out(i, (a / (1.0 + exp(-a))) * ld_u(r * 2u * p.F + p.F + j));`);

/** dst[i] = src[rows[i]] for rows of `width`; n = rows · width. */
export const gatherRowsKernel = () => elementwise('gather_rows', ['dst', 'src'], [['n', 'u32'], ['width', 'u32']],
  `  let r = i / p.width;
  let c = i - r * p.width;
  st_dst(i, ld_src(u32(hin(r)) * p.width + c));`, true);

/** dst[rows[i]] = src[i] for rows of `width`; n = rows · width. */
export const scatterRowsKernel = () => elementwise('scatter_rows', ['dst', 'src'], [['n', 'u32'], ['width', 'u32']],
  `  let r = i / p.width;
  let c = i - r * p.width;
  st_dst(u32(hin(r)) * p.width + c, ld_src(i));`, true);

/** Workgroups for n elements. */
export function ewGroups(n: number): number { return Math.ceil(n / EW_WG); }
