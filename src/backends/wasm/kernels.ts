// Loading the compiled kernels: pick the relaxed-SIMD build when this runtime validates it
// (Node 20 needs V8's --experimental-wasm-relaxed-simd, which the platform can switch on at run
// time before compiling: enableRelaxedSimd), else the plain SIMD128 build.

import { OpenELMError } from '../../core/errors.js';
import { KERNELS_RELAXED, KERNELS_SIMD128 } from './kernels.generated.js';
import { Wasm, type WasmModule } from './wasm-api.js';

export { KERNEL_NAMES, RELAXED_FLAG, type KernelName } from './kernel-names.js';

/** The kernel module's plain exports (the chunked entry points are called by name through the pool). */
export interface KernelExports {
  selfTest(): number;
  gemmScratch(): number;
  prepBytes(K: number): number;
  quantBytes(M: number, K: number): number;
  /** 1 when k_linear's integer GEMM (mode 2) takes this storage code (q8, q4, and the block dtypes that have a kernel there), else 0. */
  intGemmDtype(dtype: number): number;
  attentionScratch(G: number, hd: number): number;
  /** out[r] (int32) = the first index of row r's largest value (NaN never wins, else 0), rows of V floats at x. */
  argmaxRows(x: number, rows: number, V: number, out: number): void;
  /** Parts a kv head's query heads are split into for an attention call of S rows on `threads` threads (k_attention slot 12). */
  attentionSplit(S: number, Q: number, Hkv: number, threads: number): number;
  k_prep_x(args: number): void;
  /** One bit per 16 halves of an f16 weight [N, K] at w: which groups hold a subnormal half (gemv.as). */
  f16SubnormalMap(w: number, N: number, K: number, map: number): void;
  /** Repack n Q4_K super-blocks at p into the backend's layout in place (blocks.as BQ4_KR; room for 8 bytes more each after them). */
  repackQ4KInPlace(p: number, n: number): void;
  /** Repack n Q6_K super-blocks at p into the backend's layout in place (blocks.as BQ6_KR; room for 2 bytes more each after them). */
  repackQ6KInPlace(p: number, n: number): void;
  /** Regroup nb Q8_0 blocks at p into q8's layout in place (blocks.as BQ8_0R; tmp: 2·nb bytes of scratch). */
  /** Bits: 1, a half is an infinity or a NaN; 2, a half is not a positive normal one. */
  repackQ8_0InPlace(p: number, nb: number, tmp: number): number;
  /** Regroup `rows` rows of nb Q4_0 blocks at p in place (blocks.as BQ4_0R; tmp: 2·nb bytes of scratch). Bits: 2, a half is not a normal one of either sign. */
  repackQ4_0InPlace(p: number, rows: number, nb: number, tmp: number): number;
  /** Bytes of that map. */
  f16MapBytes(N: number, K: number): number;
  /** n steps of 8 multiply-adds with a denormal (den ≠ 0) or a normal operand, for denormalsFast. */
  denormalProbe(n: number, den: number): number;
  /** Scratch bytes per thread of the training GEMM. */
  trainScratchBytes(): number;
  /** Scratch bytes per thread of the training attention for sequences of T tokens. */
  trainAttnScratch(T: number): number;
  /** Scratch bytes per thread of the column-dot kernel. */
  colDotScratch(): number;
  /** Scratch bytes per thread of k_quantize for rows of K values. */
  quantizeScratch(K: number): number;
}

let denormals: boolean | undefined;

/**
 * Whether this CPU multiplies denormal f32 operands at the speed of normal ones (AMD Zen 3: yes;
 * Intel cores: no, each costs a microcode assist of the order of 100 cycles). Where it does, the
 * f16 GEMV converts every half with the same few operations and streams two rows per thread
 * (gemv.as gemvF16Pairs); elsewhere it converts the groups holding a subnormal half without
 * denormal operands. Both give the same results bit for bit, so this picks only a speed.
 * Measured once per process (well under a millisecond where they are fast, some 15 ms where
 * not): the same multiply-adds with a denormal and with a normal operand, alternating, the best
 * of up to 7 runs each; fast when within 3x. An assist makes them 10x slower or more; on V8's
 * baseline code (Liftoff, where the first calls run) the SIMD128 build's denormal runs measured
 * 1.3-2.2x slower on a Zen 3 core, where the optimized code runs both at the same speed.
 * setDenormalsFast overrides it (tests).
 */
export function denormalsFast(k: KernelExports): boolean {
  if (denormals === undefined) {
    const n = 16384, best = [Infinity, Infinity];
    for (let r = 0; r < 7 && !(r >= 2 && best[1] > 8 * best[0]); r++) {
      for (const den of r % 2 ? [1, 0] : [0, 1]) {
        const t = performance.now();
        k.denormalProbe(n, den);
        best[den] = Math.min(best[den], performance.now() - t);
      }
    }
    denormals = best[1] <= 3 * best[0];
  }
  return denormals;
}

/** Overrides denormalsFast's measurement (undefined: measure again). */
export function setDenormalsFast(v: boolean | undefined): void { denormals = v; }

/** Storage codes the kernels dispatch on (kernels/blocks.as has the block dtypes' codes). */
export const DTYPE_CODE = {
  f32: 0, bf16: 1, f16: 2, q8: 3, q4: 4,
  q8_0: 8, q4_0: 9, q4_1: 10, q5_0: 11, q5_1: 12, q4_k: 13, q5_k: 14, q6_k: 15, q4_1_f32: 16,
  // q4_k as the wasm backend repacks it at load (q4k-repack.ts; not a weight dtype of its own)
  q4_k_r: 17,
  // q6_k as the wasm backend repacks it at load (q6k-repack.ts; not a weight dtype of its own)
  q6_k_r: 20,
  // q8_0 and q4_0 as the wasm backend regroups them at load (gguf-repack.ts): q8_0_r runs on q8's
  // kernels (code 3) but for its exact GEMV
  q8_0_r: 18, q4_0_r: 19,
} as const;
/** Codes from here on are block dtypes (weights run as stored, f32 activations). */
export const BLOCK_CODE_MIN = 8;

let cached: { module: WasmModule; relaxed: boolean } | null = null;

function bytes(b64: string): Uint8Array {
  const s = atob(b64), out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

let enableRelaxed: (() => void) | undefined;
/** How this runtime switches relaxed SIMD on when it is behind a flag (Node: a V8 flag); set by the platform. */
export function setRelaxedSimdEnabler(f: () => void): void { enableRelaxed = f; }

/**
 * Whether this runtime can run WebAssembly SIMD with shared memory at all. Asks for a shared memory
 * rather than looking for the SharedArrayBuffer global: a browser page that is not cross-origin
 * isolated hides the global but may still create shared WebAssembly memories (one thread then).
 */
export function wasmAvailable(): boolean {
  try {
    if (Wasm === undefined) return false;
    new Wasm.Memory({ initial: 1, maximum: 1, shared: true });
    return Wasm.validate(bytes(KERNELS_SIMD128));
  } catch { return false; }
}

/** Compile the kernels once per process. `relaxed: false` forces the SIMD128 build. */
export async function loadKernels(opts: { relaxed?: boolean } = {}): Promise<{ module: WasmModule; relaxed: boolean }> {
  if (!Wasm) throw new OpenELMError('wasm', 'this JavaScript runtime has no WebAssembly; use the js backend');
  const api = Wasm;
  const wantRelaxed = opts.relaxed ?? true;
  if (cached && cached.relaxed === wantRelaxed) return cached;
  let relaxed = false;
  if (wantRelaxed) {
    const rb = bytes(KERNELS_RELAXED);
    relaxed = api.validate(rb);
    if (!relaxed) {
      try { enableRelaxed?.(); relaxed = api.validate(rb); } catch { relaxed = false; }
    }
  }
  let module: WasmModule | null = null;
  if (relaxed) {
    // Relaxed instructions are implementation-defined at the edges; make sure this engine gives
    // what the kernels assume, else use the plain build.
    try {
      const m = await api.compile(bytes(KERNELS_RELAXED));
      const inst = await api.instantiate(m, { env: { memory: new api.Memory({ initial: 1, maximum: 1, shared: true }) } });
      if ((inst.exports as unknown as KernelExports).selfTest() === 1) module = m;
    } catch { /* fall through to SIMD128 */ }
    relaxed = module !== null;
  }
  if (!module) {
    try {
      module = await api.compile(bytes(KERNELS_SIMD128));
    } catch (e) {
      throw new OpenELMError('wasm', `cannot compile the WebAssembly SIMD kernels (${(e as Error).message}); use the js backend`);
    }
  }
  const r = { module, relaxed };
  if (wantRelaxed) cached = r;
  return r;
}
