// Pieces shared by the kernels: a memo of kernel variants and workgroup-wide reductions with and
// without subgroup operations.

import type { KernelSpec } from '../kernel.js';

const specs = new Map<string, KernelSpec>();

/** One KernelSpec object per key, so per-spec caches (parameters, pipelines) hit. */
export function memo(key: string, make: () => Omit<KernelSpec, 'key'>): KernelSpec {
  let k = specs.get(key);
  if (!k) { k = { key, ...make() }; specs.set(key, k); }
  return k;
}

/** Builtins the entry point must declare for `reduceSum` (subgroup variants need the extra ones). */
export function reduceBuiltins(sg: boolean): string {
  return sg ? ', @builtin(subgroup_id) sid: u32, @builtin(num_subgroups) nsg: u32' : '';
}

/** The arguments the entry point passes to `reduceSum`. */
export function reduceArgs(sg: boolean): string {
  return sg ? 'li, sid, nsg' : 'li';
}

/**
 * `fn reduceSum(v, li[, sid, nsg]) -> f32`: the sum of v over a workgroup of `wg` threads (a power
 * of two), returned to every thread. Call from uniform control flow.
 */
export function reduceSum(wg: number, sg: boolean): string {
  if (sg) {
    return `
var<workgroup> red_s: array<f32, ${wg}>;
fn reduceSum(v: f32, li: u32, sid: u32, nsg: u32) -> f32 {
  let s = subgroupAdd(v);
  if (subgroupElect()) { red_s[sid] = s; }
  workgroupBarrier();
  var t = 0.0;
  for (var i = 0u; i < nsg; i++) { t += red_s[i]; }
  workgroupBarrier();
  return t;
}`;
  }
  return `
var<workgroup> red_s: array<f32, ${wg}>;
fn reduceSum(v: f32, li: u32) -> f32 {
  red_s[li] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (li < s) { red_s[li] += red_s[li + s]; }
    workgroupBarrier();
  }
  let t = red_s[0];
  workgroupBarrier();
  return t;
}`;
}

/** The lowest finite f32, the "no score yet" value of running maxima (WGSL has no -inf literal). */
export const NEG_BIG = '-3.4028234663852886e38';
