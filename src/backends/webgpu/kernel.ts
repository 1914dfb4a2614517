// A compute kernel as data: its WGSL body plus the arguments it binds. The runtime assembles the
// full shader per call site's aliasing (two tensor arguments in one buffer share one binding, since
// WebGPU forbids overlapping writable bindings), so bodies never name bindings directly:
//   tensors  `ld_x(i)` / `st_x(i, v)` read and write element i of tensor argument x (f32, the
//            tensor's own offset already applied; i32 results are stored with bitcast<f32>);
//   weights  `wq_w(i)` is 32-bit word i of weight w's storage and `wv_w(i)` its 16-byte unit i
//            (read-only, see weights-wgsl.ts for the decoders);
//   host     `hin(i)` is i32 number i of the small host inputs (token ids, positions) uploaded for
//            this call;
//   params   `p.name` are the uniform parameters.

export type ParamType = 'u32' | 'i32' | 'f32';

export interface KernelSpec {
  /** Unique per variant (name plus every variant choice), the pipeline cache key. */
  readonly key: string;
  readonly tensors: readonly string[];
  readonly weights?: readonly string[];
  /** Reads host inputs through hin(i). */
  readonly host?: boolean;
  readonly params: readonly (readonly [string, ParamType])[];
  /** WGSL enable directives the body needs ('f16', 'subgroups'). */
  readonly enables?: readonly ('f16' | 'subgroups')[];
  /** Helper functions, workgroup variables and the `@compute fn main`. */
  readonly body: string;
}

/** Bytes of one dispatch's uniform block: the dynamic-offset alignment every adapter accepts. */
export const PARAM_SLOT = 256;
const MAX_PARAM_WORDS = PARAM_SLOT / 4;

const paramCache = new WeakMap<KernelSpec, (readonly [string, ParamType])[]>();

/**
 * The parameter list as the shader sees it: each tensor's element offset, each weight's word
 * offset and element count, the host-input offset, then the kernel's own.
 */
export function allParams(k: KernelSpec): (readonly [string, ParamType])[] {
  let out = paramCache.get(k);
  if (out) return out;
  out = [];
  for (const t of k.tensors) out.push([`o_${t}`, 'u32']);
  for (const w of k.weights ?? []) out.push([`o_${w}`, 'u32'], [`n_${w}`, 'u32']);
  if (k.host) out.push(['o_hin', 'u32']);
  out.push(...k.params);
  if (out.length > MAX_PARAM_WORDS) throw new Error(`kernel ${k.key}: ${out.length} parameters exceed ${MAX_PARAM_WORDS}`);
  paramCache.set(k, out);
  return out;
}

/**
 * The full WGSL of a kernel for one aliasing pattern: slots[i] is the binding slot of tensor i
 * (equal slots share a buffer). Binding 0 is the uniform block, 1 the host inputs when used,
 * then one binding per distinct tensor slot, then the weights.
 */
export function assembleShader(k: KernelSpec, slots: readonly number[]): string {
  const lines: string[] = [];
  for (const e of k.enables ?? []) lines.push(`enable ${e};`);
  if (k.enables?.includes('subgroups')) lines.push('requires subgroup_id;');
  lines.push('struct Params {');
  for (const [name, type] of allParams(k)) lines.push(`  ${name}: ${type},`);
  lines.push('}');
  lines.push('@group(0) @binding(0) var<uniform> p: Params;');
  let b = 1;
  if (k.host) {
    lines.push(`@group(0) @binding(${b++}) var<storage, read> hin_buf: array<i32>;`);
    lines.push('fn hin(i: u32) -> i32 { return hin_buf[p.o_hin + i]; }');
  }
  const nslots = slots.length ? Math.max(...slots) + 1 : 0;
  for (let s = 0; s < nslots; s++) lines.push(`@group(0) @binding(${b++}) var<storage, read_write> t${s}: array<f32>;`);
  k.tensors.forEach((t, i) => {
    lines.push(`fn ld_${t}(i: u32) -> f32 { return t${slots[i]}[p.o_${t} + i]; }`);
    lines.push(`fn st_${t}(i: u32, v: f32) { t${slots[i]}[p.o_${t} + i] = v; }`);
  });
  for (const w of k.weights ?? []) {
    lines.push(`@group(0) @binding(${b++}) var<storage, read> w_${w}: array<vec4<u32>>;`);
    lines.push(`fn wq_${w}(i: u32) -> u32 { let j = p.o_${w} + i; return w_${w}[j >> 2u][j & 3u]; }`);
    lines.push(`fn wv_${w}(i: u32) -> vec4<u32> { return w_${w}[(p.o_${w} >> 2u) + i]; }`);
  }
  lines.push(k.body);
  return lines.join('\n');
}

/** Number of distinct bindings of each kind, the key of the bind group layout. */
export function layoutKey(k: KernelSpec, nslots: number): string {
  return `h${k.host ? 1 : 0}t${nslots}w${k.weights?.length ?? 0}`;
}


/**
 * The linear workgroup id for grids folded into two dimensions (one dimension holds at most
 * 65535 workgroups): use as `wgid(wid, nwg)` with @builtin(workgroup_id) and @builtin(num_workgroups).
 */
export const WGSL_GRID = 'fn wgid(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.y * nwg.x + wid.x; }';

/** A 1-D count of workgroups folded into (x, y) under the per-dimension limit. */
export function grid(groups: number, maxPerDim = 65535): [number, number, number] {
  if (groups <= maxPerDim) return [Math.max(groups, 1), 1, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y, 1];
}
