// The adapter ops of LoRA/DoRA training on a frozen base (model/adapted.ts): column scaling, column
// dot products, hashed dropout masks (the integer hash of backends/dropout.ts, so every backend
// draws the same mask) and DoRA's magnitude scale. The transposed product with a base weight
// (linearT) is a matmul variant (linear.ts).

import { WGSL_GRID, type KernelSpec } from '../kernel.js';
import { memo } from './common.js';
import { EW_WG } from './elementwise.js';

function perElement(name: string, tensors: string[], params: [string, 'u32' | 'f32'][], body: string, pre = ''): KernelSpec {
  return memo(name, () => ({
    tensors, params,
    body: `${WGSL_GRID}
${pre}
@compute @workgroup_size(${EW_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32) {
  let i = wgid(wid, nwg) * ${EW_WG}u + li;
  if (i >= p.n) { return; }
${body}
}`,
  }));
}

/** out[i] (+)= x[i] · s[i mod cols]; n = rows · cols. */
export const mulColumnsKernel = (acc: boolean) => perElement(`mul_columns_${acc ? 'acc' : 'set'}`, ['out', 'x', 's'], [['n', 'u32'], ['cols', 'u32']],
  `  let v = ld_x(i) * ld_s(i % p.cols);
  ${acc ? 'st_out(i, ld_out(i) + v);' : 'st_out(i, v);'}`);

/** out[j] (+)= Σ_r a[r·cols + j] · b[r·cols + j], one thread per column adding the rows in order; n = cols. */
export const columnDotKernel = (acc: boolean) => perElement(`column_dot_${acc ? 'acc' : 'set'}`, ['out', 'a', 'b'], [['n', 'u32'], ['rows', 'u32']],
  `  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += ld_a(r * p.n + i) * ld_b(r * p.n + i); }
  ${acc ? 'st_out(i, ld_out(i) + s);' : 'st_out(i, s);'}`);

/** out[i] = kept when hash(seed, i) ≥ t, else dropped; `s` is lowbias32(seed), computed on the host. */
export const dropoutMaskKernel = () => perElement('dropout_mask', ['out'], [['n', 'u32'], ['s', 'u32'], ['t', 'u32'], ['kept', 'f32'], ['dropped', 'f32']],
  `  let h = lowbias32(lowbias32(i + p.s) ^ p.s);
  st_out(i, select(p.dropped, p.kept, h >= p.t));`,
  `fn lowbias32(v: u32) -> u32 {
  var x = v;
  x ^= x >> 16u;
  x *= 0x7feb352du;
  x ^= x >> 15u;
  x *= 0x846ca68bu;
  x ^= x >> 16u;
  return x;
}`);

/** invN[j] = 1 / sqrt(base2[j] + coef·q[j]), c[j] = m[j] · invN[j]; n values. */
export const doraScaleKernel = () => perElement('dora_scale', ['c', 'invN', 'm', 'base2', 'q'], [['n', 'u32'], ['coef', 'f32']],
  `  let inv = 1.0 / sqrt(ld_base2(i) + p.coef * ld_q(i));
  st_invN(i, inv);
  st_c(i, ld_m(i) * inv);`);
