// The backend seam: the few kernels the OpenELM forward pass needs, on flat Float32Array buffers.
//
// Conventions (llm.c style): outputs first, then inputs, then weights, then dimensions.
// Dimension letters: M rows (tokens), K input features, N output features, D model dim,
// hd head dim, Q query heads, Hkv kv heads, F FFN width, S new tokens, P tokens already cached.
// A backend owns the memory its kernels read: `alloc` and `allocWeight` return buffers it can use
// directly (for WebAssembly they are views into the module's memory), so callers allocate every
// activation and weight through it. Everything above this file is backend-agnostic.

export type WeightDType = 'f32' | 'bf16' | 'f16' | 'q8' | 'q4';
export const WEIGHT_DTYPES: readonly WeightDType[] = ['f32', 'bf16', 'f16', 'q8', 'q4'];

/**
 * A linear weight in nn.Linear layout [rows = N out, cols = K in].
 * f32: data is Float32Array. bf16/f16: Uint16Array bit patterns. q8: Int8Array values with one f32
 * scale per block of 32 along K (GGUF Q8_0 semantics). q4: Uint8Array of packed nibbles, blocks of 32
 * along K with a scale and a min per block (value = q * scale + min).
 */
export interface Weight {
  dtype: WeightDType;
  rows: number;
  cols: number;
  data: Float32Array | Uint16Array | Int8Array | Uint8Array;
  scales?: Float32Array;
  mins?: Float32Array;
  /** Backend-private repacked copy (e.g. GEMV panels); set by prepareWeight. */
  packed?: unknown;
}

export interface Backend {
  readonly name: string;
  readonly threads: number;

  /** A zero-filled f32 buffer usable by this backend's kernels. */
  alloc(n: number): Float32Array;
  /**
   * Optional: give back a buffer alloc() returned (e.g. a KV cache that is done). Backends that
   * manage their own memory (wasm: one 4 GiB-capped WebAssembly.Memory) reuse it; without this a
   * long-running process that keeps allocating caches runs out. Neither it nor its views may be
   * used afterwards. Backends on ordinary ArrayBuffers leave it to the GC and may omit it.
   */
  free?(buf: Float32Array): void;
  /** An empty weight of the given dtype; fill it with setWeightRows / quantize helpers, then prepareWeight. */
  allocWeight(dtype: WeightDType, rows: number, cols: number): Weight;
  /** Called once after a weight's data is final (repacking, uploading). */
  prepareWeight(w: Weight): void;

  /** out[M,N] = x[M,K] · Wᵀ, or += when accumulate. */
  linear(out: Float32Array, x: Float32Array, w: Weight, M: number, accumulate?: boolean): void;
  /** out[r] = x[r] / sqrt(mean(x[r]²) + eps) · w, for `rows` rows of `dim`. */
  rmsnorm(out: Float32Array, x: Float32Array, w: Float32Array, rows: number, dim: number, eps: number): void;
  /**
   * In place on rows laid out [Q·hd | Hkv·hd | Hkv·hd]: per-head RMSNorm of q and k heads (weights
   * may be null when normalize_qk_projections is off), then rotate-half RoPE at pos[r]. V untouched.
   * cos/sin are [positions, hd/2] tables.
   */
  qkNormRope(qkv: Float32Array, rows: number, pos: Int32Array, Q: number, Hkv: number, hd: number,
    qNorm: Float32Array | null, kNorm: Float32Array | null, cos: Float32Array, sin: Float32Array, eps: number): void;
  /** Copy the k and v heads of S rows into a [Hkv, cap, hd] cache at positions P..P+S-1. */
  storeKV(kCache: Float32Array, vCache: Float32Array, qkv: Float32Array, S: number, P: number,
    Q: number, Hkv: number, hd: number, cap: number): void;
  /**
   * Causal GQA attention of S queries (absolute positions P..P+S-1, read from qkv rows) over the
   * cache's first P+S keys, bottom-right aligned: query i sees keys 0..P+i. Query head h reads kv
   * head floor(h / (Q/Hkv)). out is [S, Q·hd].
   */
  attention(out: Float32Array, qkv: Float32Array, kCache: Float32Array, vCache: Float32Array, S: number,
    P: number, Q: number, Hkv: number, hd: number, cap: number): void;
  /** out[r, j] = silu(u[r, j]) · u[r, F + j] for u rows of width 2F. */
  swiglu(out: Float32Array, u: Float32Array, rows: number, F: number): void;
  /** out[r, j] = silu(u[r, j]) (non-GLU FFN). */
  silu(out: Float32Array, u: Float32Array, n: number): void;
  /** x += y over n values. */
  addInPlace(x: Float32Array, y: Float32Array, n: number): void;
  /** out[r] = table row ids[r] (dequantized). */
  embedding(out: Float32Array, table: Weight, ids: Int32Array): void;

  /** Release threads and memory. */
  dispose(): void;
}
