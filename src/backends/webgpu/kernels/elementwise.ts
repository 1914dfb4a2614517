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

// ------------------------------------------------------------------------------------------------
// Training.

/** du over rows of [gate(F) | up(F)] from dg: d gate = dg·up·silu'(gate), d up = dg·silu(gate); n = rows · F. */
export const swigluBwdKernel = () => elementwise('swiglu_bwd', ['du', 'dg', 'u'], [['n', 'u32'], ['F', 'u32']],
  `  let r = i / p.F;
  let j = i - r * p.F;
  let ga = r * 2u * p.F + j;
  let a = ld_u(ga);
  let b = ld_u(ga + p.F);
  let d = ld_dg(i);
  let s = 1.0 / (1.0 + exp(-a));
  st_du(ga, d * b * s * (1.0 + a * (1.0 - s)));
  st_du(ga + p.F, d * a * s);`);

/** du[i] = dg[i]·silu'(u[i]). */
export const siluBwdKernel = () => elementwise('silu_bwd', ['du', 'dg', 'u'], [['n', 'u32']],
  `  let a = ld_u(i);
  let s = 1.0 / (1.0 + exp(-a));
  st_du(i, ld_dg(i) * s * (1.0 + a * (1.0 - s)));`);

/**
 * x[i] = x[i]·hi + x[i]·lo, where hi + lo is the f64 coefficient split into two f32s: the product
 * is then within an ulp of the f64 one, rounded once.
 */
export const scale2Kernel = () => elementwise('scale2', ['x'], [['n', 'u32'], ['hi', 'f32'], ['lo', 'f32']],
  '  let v = ld_x(i);\n  st_x(i, v * p.hi + v * p.lo);');

/**
 * One AdamW step in f32 (the f64 formula of the reference, each operation rounded to f32):
 *   m ← b1·m + (1 − b1)·g ;  v ← b2·v + (1 − b2)·g²
 *   p ← p − decay·p − stepSize·m / (sqrt(v) / bc2 + eps)        (decay = 1 − keep = lr·wd)
 */
export const adamwKernel = () => elementwise('adamw', ['p', 'g', 'm', 'v'],
  [['n', 'u32'], ['b1', 'f32'], ['c1', 'f32'], ['b2', 'f32'], ['c2', 'f32'], ['stepSize', 'f32'], ['bc2', 'f32'], ['eps', 'f32'], ['decay', 'f32']],
  `  let g = ld_g(i);
  let m = p.b1 * ld_m(i) + p.c1 * g;
  let v = p.b2 * ld_v(i) + p.c2 * (g * g);
  st_m(i, m);
  st_v(i, v);
  let w = ld_p(i);
  st_p(i, (w - w * p.decay) - p.stepSize * m / (sqrt(v) / p.bc2 + p.eps));`);
