// Linear layers, out[M, N] (+)= x[M, K] · Wᵀ with W [N, K] in any storage format, and the general
// f32 products of training.
//
// Decode (M ≤ GEMV_MAX_M) is bound by reading W once: `gemv` gives each row of W to a group of
// threads that stream it in 16-byte units (coalesced), decode the unit in registers and dot it with
// all M rows of x; the group's partial sums meet in a subgroupAdd, or a shared-memory tree without
// subgroups. Prefill and training use `matmul`: 64×64 output tiles, 16-deep slices of both operands
// staged in workgroup memory (weights decoded on the way in), 4×4 results per thread.

import type { ConvertDType } from '../../backend.js';
import { WGSL_GRID, type KernelSpec } from '../kernel.js';
import { UNIT_ELEMS, weightDecoders } from '../weights-wgsl.js';
import { memo } from './common.js';

/**
 * The end of both matmul kernels: each thread's 4×4 results `acc` (rows ty + 16i, columns tx + 16j
 * of the tile at m0, n0) written to C, or added to it when p.acc is set; edge tiles skip what lies
 * outside M × N.
 */
const STORE_TILE = `  for (var i = 0u; i < 4u; i++) {
    let m = m0 + ty + 16u * i;
    if (m >= p.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + tx + 16u * j;
      if (n >= p.N) { continue; }
      let o = m * p.N + n;
      if (p.acc != 0u) { st_c(o, ld_c(o) + acc[i][j]); } else { st_c(o, acc[i][j]); }
    }
  }`;

export const GEMV_MAX_M = 8;
/** Rows of W per GEMV workgroup, and threads per row without subgroups. */
export const GEMV_ROWS = 8;
const GEMV_LANES = 32;
const GEMV_WG = GEMV_ROWS * GEMV_LANES;

/**
 * vec: W is read in 16-byte units (K a multiple of the unit, weight offset 16-byte aligned);
 * otherwise element by element.
 */
export function gemvKernel(dtype: ConvertDType, M: number, vec: boolean, sg: boolean): KernelSpec {
  return memo(`gemv_${dtype}_m${M}_${vec ? 'v' : 'e'}_${sg ? 'sg' : 'wg'}`, () => {
    const E = UNIT_ELEMS[dtype], E4 = E / 4;
    const accDecl = `var acc: array<f32, ${M}>;`;
    // The loop over this thread's share of row n; `lane`/`lanes` index the threads of the row.
    const rowLoop = vec ? `
    let U = p.K / ${E}u;
    for (var u = lane; u < U; u += lanes) {
      let wu = wunit_w(n * U + u);
      let k0 = u * ${E}u;
      for (var m = 0u; m < ${M}u; m++) {
        let xb = m * p.K + k0;
        var s = 0.0;
        for (var c = 0u; c < ${E4}u; c++) {
          let xo = xb + 4u * c;
          s += dot(wu[c], vec4<f32>(ld_x(xo), ld_x(xo + 1u), ld_x(xo + 2u), ld_x(xo + 3u)));
        }
        acc[m] += s;
      }
    }` : `
    for (var k = lane; k < p.K; k += lanes) {
      let wk = wel_w(n * p.K + k);
      for (var m = 0u; m < ${M}u; m++) { acc[m] += wk * ld_x(m * p.K + k); }
    }`;
    const store = `
fn store(m: u32, n: u32, v: f32) {
  let o = m * p.N + n;
  if (p.acc != 0u) { st_out(o, ld_out(o) + v); } else { st_out(o, v); }
}`;
    const body = sg ? `${WGSL_GRID}
${store}
@compute @workgroup_size(${GEMV_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(subgroup_id) sid: u32, @builtin(num_subgroups) nsg: u32,
  @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) lanes: u32) {
  let n0 = wgid(wid, nwg) * ${GEMV_ROWS}u;
  for (var r = sid; r < ${GEMV_ROWS}u; r += nsg) {
    let n = n0 + r;
    if (n >= p.N) { break; }
    ${accDecl}
    ${rowLoop}
    for (var m = 0u; m < ${M}u; m++) {
      let t = subgroupAdd(acc[m]);
      if (lane == 0u) { store(m, n, t); }
    }
  }
}` : `${WGSL_GRID}
${store}
var<workgroup> part: array<f32, ${GEMV_WG * M}>;
@compute @workgroup_size(${GEMV_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32) {
  let r = li / ${GEMV_LANES}u;
  let lane = li % ${GEMV_LANES}u;
  let lanes = ${GEMV_LANES}u;
  let n = wgid(wid, nwg) * ${GEMV_ROWS}u + r;
  ${accDecl}
  if (n < p.N) {
    ${rowLoop}
  }
  for (var m = 0u; m < ${M}u; m++) { part[m * ${GEMV_WG}u + li] = acc[m]; }
  workgroupBarrier();
  for (var s = ${GEMV_LANES / 2}u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var m = 0u; m < ${M}u; m++) { part[m * ${GEMV_WG}u + li] += part[m * ${GEMV_WG}u + li + s]; }
    }
    workgroupBarrier();
  }
  if (lane == 0u && n < p.N) {
    for (var m = 0u; m < ${M}u; m++) { store(m, n, part[m * ${GEMV_WG}u + li]); }
  }
}`;
    return {
      tensors: ['out', 'x'], weights: ['w'], enables: sg ? ['subgroups'] : [],
      params: [['N', 'u32'], ['K', 'u32'], ['acc', 'u32']],
      body: weightDecoders('w', dtype) + '\n' + body,
    };
  });
}

/** Workgroups of a GEMV over N output rows. */
export function gemvGroups(N: number): number { return Math.ceil(N / GEMV_ROWS); }

// ------------------------------------------------------------------------------------------------

/**
 * Where the matmul's B operand comes from: a weight [N, K] in a storage format, a weight [K, N]
 * read transposed (the input gradient of a frozen base, linearT), or an f32 tensor.
 */
export type MatmulB = { weight: ConvertDType } | { weightT: ConvertDType } | { tensor: 'nk' | 'kn' };
const bWeight = (b: MatmulB): ConvertDType | null => ('weight' in b ? b.weight : 'weightT' in b ? b.weightT : null);
const bKey = (b: MatmulB): string => ('weight' in b ? `w${b.weight}` : 'weightT' in b ? `wt${b.weightT}` : `t${b.tensor}`);
const bAt = (b: MatmulB): string => ('weight' in b ? 'wel_w(n * p.K + k)' : 'weightT' in b ? 'wel_w(k * p.N + n)'
  : b.tensor === 'nk' ? 'ld_b(n * p.K + k)' : 'ld_b(k * p.N + n)');
/** A is [M, K] ('mk') or [K, M] ('km'). */
export type MatmulA = 'mk' | 'km';

export const MM_TILE = 64;
const MM_BK = 16;
const MM_WG = 256;

/**
 * Half-precision tiles for f16 weights: 'f16' stages both operands as f16 in workgroup memory and
 * multiplies them four at a time in f16 (shader-f16), adding each 4-term dot product into f32
 * accumulators; 'f32' is the same kernel with f32 in place of f16, so that its indexing is tested
 * on adapters without shader-f16.
 */
export type HalfTiles = 'f16' | 'f32';

function halfMatmulBody(a: MatmulA, aAt: string, bAt: string, half: HalfTiles): string {
  const Q = MM_BK / 4;
  return `alias h = ${half};
var<workgroup> ms: array<vec4<h>, ${MM_TILE * Q}>;
var<workgroup> ns: array<vec4<h>, ${MM_TILE * Q}>;
@compute @workgroup_size(${MM_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * ${MM_TILE}u;
  let n0 = wid.x * ${MM_TILE}u;
  let tx = li % 16u;
  let ty = li / 16u;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += ${MM_BK}u) {
    for (var q = 0u; q < ${(MM_BK * MM_TILE) / MM_WG}u; q++) {
      let e = li + q * ${MM_WG}u;
      ${a === 'mk' ? `let kk = e % ${MM_BK}u; let rr = e / ${MM_BK}u;` : `let rr = e % ${MM_TILE}u; let kk = e / ${MM_TILE}u;`}
      let m = m0 + rr;
      let k = k0 + kk;
      var v = 0.0;
      if (m < p.M && k < p.K) { v = ${aAt}; }
      ms[rr * ${Q}u + kk / 4u][kk % 4u] = h(v);
    }
    for (var q = 0u; q < ${(MM_BK * MM_TILE) / MM_WG}u; q++) {
      let e = li + q * ${MM_WG}u;
      let kk = e % ${MM_BK}u;
      let rr = e / ${MM_BK}u;
      let n = n0 + rr;
      let k = k0 + kk;
      var v = 0.0;
      if (n < p.N && k < p.K) { v = ${bAt}; }
      ns[rr * ${Q}u + kk / 4u][kk % 4u] = h(v);
    }
    workgroupBarrier();
    for (var kq = 0u; kq < ${Q}u; kq++) {
      var av: array<vec4<h>, 4>;
      var bv: array<vec4<h>, 4>;
      for (var i = 0u; i < 4u; i++) {
        av[i] = ms[(ty + 16u * i) * ${Q}u + kq];
        bv[i] = ns[(tx + 16u * i) * ${Q}u + kq];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] += f32(dot(av[i], bv[j])); }
      }
    }
    workgroupBarrier();
  }
${STORE_TILE}
}`;
}

/**
 * C[M, N] (+)= A · Bᵀ with A(m, k) and B(n, k) read through the layouts given; the training
 * products are nt = (mk, nk), nn = (mk, kn), tn = (km, kn).
 */
export function matmulKernel(a: MatmulA, b: MatmulB, half?: HalfTiles, bf16 = false): KernelSpec {
  const wd = bWeight(b);
  return memo(`matmul_${a}_${bKey(b)}${half ? '_h' + half : ''}${bf16 ? '_bf16' : ''}`, () => {
    const aAt = a === 'mk' ? 'ld_a(m * p.K + k)' : 'ld_a(k * p.M + m)';
    const rb = (e: string) => (bf16 ? `round_bf16(${e})` : e);
    const common = {
      tensors: wd ? ['c', 'a'] : ['c', 'a', 'b'],
      weights: wd ? ['w'] : [],
      params: [['M', 'u32'], ['N', 'u32'], ['K', 'u32'], ['acc', 'u32']] as [string, 'u32'][],
    };
    if (half) {
      if (!('weight' in b)) throw new Error('half tiles are for weights [N, K]');
      return { ...common, enables: half === 'f16' ? ['f16'] : [], body: weightDecoders('w', b.weight) + '\n' + halfMatmulBody(a, aAt, bAt(b), half) };
    }
    // Each operand tile is BK × 64; threads walk it along the operand's contiguous index.
    const load = (name: string, kContig: boolean, extent: string, at: string, idx: string) => {
      const inner = kContig
        ? `let kk = e % ${MM_BK}u; let rr = e / ${MM_BK}u;`
        : `let rr = e % ${MM_TILE}u; let kk = e / ${MM_TILE}u;`;
      return `
    for (var q = 0u; q < ${(MM_BK * MM_TILE) / MM_WG}u; q++) {
      let e = li + q * ${MM_WG}u;
      ${inner}
      let ${idx} = ${name}0 + rr;
      let k = k0 + kk;
      var v = 0.0;
      if (${idx} < ${extent} && k < p.K) { v = ${at}; }
      ${name}s[kk * ${MM_TILE}u + rr] = v;
    }`;
    };
    const bKContig = 'weight' in b || ('tensor' in b && b.tensor === 'nk');
    const body = `${wd ? weightDecoders('w', wd) : ''}
${bf16 ? ROUND_BF16 : ''}
var<workgroup> ms: array<f32, ${MM_BK * MM_TILE}>;
var<workgroup> ns: array<f32, ${MM_BK * MM_TILE}>;
@compute @workgroup_size(${MM_WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * ${MM_TILE}u;
  let n0 = wid.x * ${MM_TILE}u;
  let tx = li % 16u;
  let ty = li / 16u;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += ${MM_BK}u) {
    ${load('m', a === 'mk', 'p.M', rb(aAt), 'm')}
    ${load('n', bKContig, 'p.N', rb(bAt(b)), 'n')}
    workgroupBarrier();
    for (var kk = 0u; kk < ${MM_BK}u; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var i = 0u; i < 4u; i++) {
        av[i] = ms[kk * ${MM_TILE}u + ty + 16u * i];
        bv[i] = ns[kk * ${MM_TILE}u + tx + 16u * i];
      }
      for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) { acc[i][j] += av[i] * bv[j]; }
      }
    }
    workgroupBarrier();
  }
${STORE_TILE}
}`;
    return { ...common, body };
  });
}

/**
 * An f32 rounded to bf16 (nearest even) and back, as src/core/dtype.ts f32ToBf16 rounds: the
 * operands of bf16 mixed-precision products. A product of two bf16 values is exact in f32.
 */
const ROUND_BF16 = `fn round_bf16(v: f32) -> f32 {
  let u = bitcast<u32>(v);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0u) { return bitcast<f32>(((u >> 16u) | 0x40u) << 16u); }
  return bitcast<f32>(((u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u) << 16u);
}`;

/** Workgroups (x over N, y over M) of a matmul. */
export function matmulGroups(M: number, N: number): [number, number, number] {
  return [Math.ceil(N / MM_TILE), Math.ceil(M / MM_TILE), 1];
}

/**
 * Products this small (multiply-adds) use `matmulDirect`: one thread per output, no workgroup
 * memory and no barriers. They cost a launch either way on a GPU, and on software adapters
 * (SwiftShader, where barriers are expensive) the tiled kernel is several times slower for them.
 * Both kernels add the K products of an output in the same order, so they give the same sums.
 */
export const DIRECT_MAX_WORK = 1 << 21;

/** C[M, N] (+)= A · Bᵀ, one thread per output, operands as in matmulKernel. */
export function matmulDirectKernel(a: MatmulA, b: MatmulB, bf16 = false): KernelSpec {
  const wd = bWeight(b);
  return memo(`matmul_direct_${a}_${bKey(b)}${bf16 ? '_bf16' : ''}`, () => {
    const aAt = a === 'mk' ? 'ld_a(m * p.K + k)' : 'ld_a(k * p.M + m)';
    const rb = (e: string) => (bf16 ? `round_bf16(${e})` : e);
    return {
      tensors: wd ? ['c', 'a'] : ['c', 'a', 'b'],
      weights: wd ? ['w'] : [],
      params: [['M', 'u32'], ['N', 'u32'], ['K', 'u32'], ['acc', 'u32']],
      body: `${wd ? weightDecoders('w', wd) : ''}
${bf16 ? ROUND_BF16 : ''}
${WGSL_GRID}
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) li: u32) {
  let o = wgid(wid, nwg) * 64u + li;
  if (o >= p.M * p.N) { return; }
  let m = o / p.N;
  let n = o - m * p.N;
  var s = 0.0;
  for (var k = 0u; k < p.K; k++) { s += ${rb(aAt)} * ${rb(bAt(b))}; }
  if (p.acc != 0u) { st_c(o, ld_c(o) + s); } else { st_c(o, s); }
}`,
    };
  });
}
