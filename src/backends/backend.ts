// The backend seam: every computation of inference and training goes through one `Backend`.
// A new backend (a GPU API, another CPU engine) implements this interface and nothing in model/,
// train/, generate/, eval/ or serve/ changes.
//
// Memory. Kernels work on `Tensor`s: flat buffers of f32 values that live where the backend computes
// (views into the WebAssembly memory, GPU buffers, plain typed arrays). Callers never index a tensor;
// they move numbers in and out with write()/read() and slice with view(). Weights of linear layers
// and the embedding are `Weight`s, which may be stored in narrower formats (bf16, f16, q8, q4, and the
// block formats of GGUF and MLX files, run as stored).
//
// Ordering. Operations take effect in call order. A backend may record them and run them later (a
// GPU queue), so nothing returns host numbers synchronously: the only host reads are read(), argmax(),
// crossEntropy() and sumSquares(), which return promises that resolve with the state as of the point
// in the call sequence where they were issued. Small host inputs (token ids, positions, targets) are
// passed per call as typed arrays.
//
// Conventions (llm.c style): outputs first, then inputs, then weights, then dimensions. Dimension
// letters: M rows (tokens), K input features, N output features, D model dim, hd head dim, Q query
// heads, Hkv kv heads, F FFN width, S new tokens, P tokens already cached, B sequences, T tokens per
// sequence, V vocabulary. The exact semantics of every op are those of the plain-JS reference
// (src/backends/js/reference.ts), the oracle every backend is tested against.

/** Storages a checkpoint's weights can be converted to on load (`--dtype`). */
export type ConvertDType = 'f32' | 'bf16' | 'f16' | 'q8' | 'q4';
export const WEIGHT_DTYPES: readonly ConvertDType[] = ['f32', 'bf16', 'f16', 'q8', 'q4'];
/**
 * Block formats that run as the file stores them, never re-quantized (layouts in docs/formats.md,
 * "Block weights"): llama.cpp's ggml types, and q4_1_f32 (Q4_1 with f32 d and m, for MLX 4-bit
 * groups whose scales are not halves). Kernels compute with the exactly decoded values.
 */
export type BlockDType = 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q4_k' | 'q5_k' | 'q6_k' | 'q4_1_f32';
export const BLOCK_DTYPES: readonly BlockDType[] = ['q8_0', 'q4_0', 'q4_1', 'q5_0', 'q5_1', 'q4_k', 'q5_k', 'q6_k', 'q4_1_f32'];
/** 'rows': a weight made of row ranges stored in other dtypes (`Weight.parts`). */
export type WeightDType = ConvertDType | BlockDType | 'rows';

/** One weight for Backend.loadStoredMany: loadStored's arguments. */
export interface StoredLoad {
  dtype: WeightDType;
  rows: number;
  cols: number;
  /** Bytes [at, at + out.length) of the stored blocks into out. */
  read: (at: number, out: Uint8Array) => void;
}

declare const TENSOR: unique symbol;
/** A buffer of numbers owned by a backend (opaque to callers: use the backend's methods). */
export interface Tensor { readonly length: number; readonly [TENSOR]?: never; }

/**
 * A linear weight in nn.Linear layout [rows = N out, cols = K in], or an embedding table [V, D].
 * `data` (+ `scales`, `mins`) is the host storage the loader fills (see weight-format.ts):
 * f32 Float32Array; bf16/f16 Uint16Array bit patterns; q8 Int8Array with one f16 scale per block of
 * 32 along K in `scales` (a Uint16Array of f16 bits; GGUF Q8_0 semantics); q4 Uint8Array of packed nibbles, blocks of 32 along K with a
 * scale and a min (value = q·scale + min) coded per row in `scales` (a Uint8Array); block dtypes Uint8Array of the stored blocks, row after
 * row (each row whole blocks). A 'rows' weight has no data of its own: its rows are its `parts`'
 * rows in order (a proj_1 whose gate and up halves a GGUF stores in different types); a linear with
 * it writes each part's outputs into that part's columns. After prepareWeight a backend may keep
 * its own copy (`packed`) and release the host storage.
 */
export interface Weight {
  dtype: WeightDType;
  rows: number;
  cols: number;
  data: Float32Array | Uint16Array | Int8Array | Uint8Array;
  /** q8: an f16 scale (its bits) per block of 32; q4: per row, its blocks' coded scales and mins (weight-format.ts). */
  scales?: Uint16Array | Uint8Array;
  /** dtype 'rows' only: the weights whose rows, stacked in order, are this one's (same cols). */
  parts?: Weight[];
  /** Backend-private state (packed panels, device buffers, an aliased tensor). */
  packed?: unknown;
  /**
   * Set when a backend rewrote a block weight's data in place into another layout of the same
   * values: 'q4_k_r', q4_k repacked by the wasm backend (q4k-repack.ts); 'q6_k_r', q6_k repacked
   * by it (q6k-repack.ts); 'q8_0_r' and 'q4_0_r', q8_0 and q4_0 regrouped by it (gguf-repack.ts,
   * the same bytes). Readers of data decode that layout (weight-format.ts weightRowToF32 does).
   */
  layout?: 'q4_k_r' | 'q6_k_r' | 'q8_0_r' | 'q4_0_r';
}

/** RoPE tables [positions, hd/2] of cos and sin (model/rope.ts builds them). */
export interface RopeTables { cos: Tensor; sin: Tensor; positions: number; half: number; }

/** Σ over rows of (lse − logit[target]) and of lse², in f64. */
export interface LossSums { ceSum: number; lseSqSum: number; }

/** One AdamW update's constants (train/adamw.ts): p ← p·keep − stepSize·m / (sqrt(v)/bc2Sqrt + eps). */
export interface AdamWStep { b1: number; b2: number; stepSize: number; bc2Sqrt: number; eps: number; keep: number; }

export type MatmulLayout = 'nt' | 'nn' | 'tn';

/**
 * What a product's inputs are: 'fp32' as stored; 'bf16' both operands rounded to bf16 (nearest
 * even, src/core/dtype.ts f32ToBf16) first, then multiplied with sums in f32 or wider and the
 * result written as f32 (mixed-precision training: docs/training.md).
 */
export type MatmulPrecision = 'fp32' | 'bf16';
export const MATMUL_PRECISIONS: readonly MatmulPrecision[] = ['fp32', 'bf16'];

export interface Backend {
  /** 'js', 'wasm', 'webgpu', … */
  readonly name: string;
  /** Compute threads (1 for a GPU backend's host side). */
  readonly threads: number;
  readonly device: 'cpu' | 'gpu';
  /** An external library the backend hands work to (the native sgemm's BLAS), or null. */
  readonly library: string | null;
  /** One line for logs: the engine and what accelerates it. */
  describe(): string;

  // ---------------------------------------------------------------------------------------- memory

  /** A zero-filled tensor of n values. 'stats' tensors hold saved per-row statistics (rstd, lse). */
  alloc(n: number, kind?: 'data' | 'stats'): Tensor;
  /** Give back a tensor from alloc() (not a view); it and its views must not be used afterwards. */
  free(t: Tensor): void;
  /** Values [offset, offset + n) of t, sharing its storage. */
  view(t: Tensor, offset: number, n: number): Tensor;
  /** dst[dstOffset + i] = src[i]. */
  write(dst: Tensor, src: ArrayLike<number>, dstOffset?: number): void;
  /** A host copy of t[offset, offset + n) (default: all of t). */
  read(t: Tensor, offset?: number, n?: number): Promise<Float32Array>;
  /** dst[0..n) = src[0..n). */
  copy(dst: Tensor, src: Tensor, n: number): void;
  fill(dst: Tensor, value: number): void;
  /** dst row i = src row rows[i], rows of `width` values. */
  gatherRows(dst: Tensor, src: Tensor, rows: Int32Array, width: number): void;
  /** dst row rows[i] = src row i. */
  scatterRows(dst: Tensor, src: Tensor, rows: Int32Array, width: number): void;
  /** Bytes this backend holds now, has reserved from its device, and can hold at most (Infinity: no fixed bound). */
  memory(): { inUse: number; reserved: number; limit: number };
  /**
   * Most values one alloc() can hold (Infinity: bounded only by memory().limit): a WebAssembly
   * memory, a GPU buffer. Training splits its parameters, gradients and optimizer state into
   * chunks no larger than this (model/chunked.ts).
   */
  maxTensorValues(): number;
  /**
   * Device backends: the largest buffer one tensor may take, the device limit that sets it, and
   * the device, so a load can be refused before anything is allocated (model/device-fit.ts).
   * WebGPU says this much (adapter limits) but never how much memory is free.
   */
  bufferLimit?(): BufferLimit;
  /** Resolves when every operation issued so far has finished (timing). */
  sync(): Promise<void>;

  // --------------------------------------------------------------------------------------- weights

  /**
   * An empty weight to fill (setWeightRows / reading a checkpoint into `data`), then prepareWeight.
   * Not for 'rows' (weight-format.ts rowsWeight stacks prepared weights).
   */
  allocWeight(dtype: WeightDType, rows: number, cols: number): Weight;
  /**
   * Optional: allocWeight for a block dtype, filled with its stored bytes, which `read` puts into
   * `out` (bytes [at, at + out.length) of the blocks as a file stores them), in pieces the backend
   * chooses; prepareWeight follows as for allocWeight's weights. The WASM backend stages each piece
   * and puts it in place on its threads (page faults in parallel, Q8_0 regrouped on the way).
   */
  loadStored?(dtype: WeightDType, rows: number, cols: number, read: (at: number, out: Uint8Array) => void): Weight;
  /**
   * Optional: loadStored for several weights at once (a model's), in one pipeline: the backend's
   * per-call costs (allocating and mapping staging, the first piece's read) paid once, and a
   * weight's first piece read while the last one's is put in place. The weights in items' order.
   */
  loadStoredMany?(items: readonly StoredLoad[]): Weight[];
  /**
   * Optional: weight-format.ts setWeightRows for q8/q4 weights from allocWeight, faster (the WASM
   * backend quantizes on its threads), writing the very same bytes; other weights go through
   * setWeightRows. Loading quantizes through it when present.
   */
  quantizeRows?(w: Weight, r0: number, src: Float32Array, importance?: Float32Array): void;
  /** Called once a weight's data is final (repacking, uploading). */
  prepareWeight(w: Weight): void;
  /** An f32 weight that IS tensor t (no copy): trainable parameters used by inference ops. */
  tensorWeight(t: Tensor, rows: number, cols: number): Weight;
  /** Give back a weight's storage and anything prepareWeight made for it (a 'rows' weight's parts too). */
  freeWeight(w: Weight): void;

  // ----------------------------------------------------------------------------------- forward ops

  /**
   * out[M,N] = x[M,K] · Wᵀ, or += when accumulate. For M up to 8, each row must come out bit for
   * bit as in a one-row call (speculative decoding's verification reproduces plain decoding).
   * For q8/q4 weights a backend may quantize the activation rows to int8 (llama.cpp's Q8 dot
   * products; TOL.intDotVsRef) unless `exact`, which asks for f32 products on the decoded weight
   * (training on a quantized base needs the function its backward, linearT, differentiates).
   */
  linear(out: Tensor, x: Tensor, w: Weight, M: number, accumulate?: boolean, exact?: boolean): void;
  /** out[r] = f32(x[r] / sqrt(mean(x[r]²) + eps)) · w for `rows` rows of `dim`; saves 1/rms per row in rstd when given. */
  rmsnorm(out: Tensor, x: Tensor, w: Tensor, rows: number, dim: number, eps: number, rstd?: Tensor): void;
  /**
   * In place on rows laid out [Q·hd | Hkv·hd | Hkv·hd]: per-head RMSNorm of the q and k heads (norm
   * weights null when normalize_qk_projections is off), then rotate-half RoPE at position pos[r].
   * V untouched. rstd [rows, Q+Hkv] receives the heads' 1/rms when given (training).
   */
  qkNormRope(qkv: Tensor, rows: number, pos: Int32Array, Q: number, Hkv: number, hd: number,
    qNorm: Tensor | null, kNorm: Tensor | null, rope: RopeTables, eps: number, rstd?: Tensor): void;
  /**
   * Optional: linear(qkv, x, w, S), qkNormRope(qkv, S, pos, Q, Hkv, hd, qNorm, kNorm, rope, eps) and
   * storeKV(kCache, vCache, qkv, S, P, Q, Hkv, hd, cap) in one, for S rows of one sequence at
   * positions pos[r] = P + r; the same values as the three calls.
   */
  linearQkv?(qkv: Tensor, x: Tensor, w: Weight, S: number, pos: Int32Array, Q: number, Hkv: number, hd: number,
    qNorm: Tensor | null, kNorm: Tensor | null, rope: RopeTables, eps: number, kCache: Tensor, vCache: Tensor, P: number, cap: number): void;
  /** Copy the k and v heads of S rows into [Hkv, cap, hd] caches at positions P..P+S-1. */
  storeKV(kCache: Tensor, vCache: Tensor, qkv: Tensor, S: number, P: number, Q: number, Hkv: number, hd: number, cap: number): void;
  /**
   * Causal GQA attention of S queries (positions P..P+S-1, read from qkv rows) over the cache's
   * first P+S keys: query i sees keys 0..P+i; query head h reads kv head floor(h / (Q/Hkv)).
   * out is [S, Q·hd].
   */
  attention(out: Tensor, qkv: Tensor, kCache: Tensor, vCache: Tensor, S: number, P: number, Q: number, Hkv: number, hd: number, cap: number): void;
  /**
   * out[r, j] = silu(u[r, j]) · u[r, F + j] for u rows [gate(F) | up(F)]. out may be the first
   * rows·F values of u itself (the model's forward writes g over u to halve the FFN's scratch).
   */
  swiglu(out: Tensor, u: Tensor, rows: number, F: number): void;
  /**
   * Optional: linear(u, x, w, rows) then swiglu(g, u, rows, F) in one, where w has the 2F rows
   * [gate | up] and g is the first rows·F values of u; the same values as the two calls.
   */
  linearSwiglu?(g: Tensor, u: Tensor, x: Tensor, w: Weight, rows: number, F: number): void;
  /** out[i] = silu(u[i]) (non-GLU FFN). */
  silu(out: Tensor, u: Tensor, n: number): void;
  /** x += y over n values. */
  add(x: Tensor, y: Tensor, n: number): void;
  /** out[r] = table row ids[r] (dequantized); ids equal to skipId give a zero row (padding). */
  embedding(out: Tensor, table: Weight, ids: Int32Array, skipId?: number): void;
  /** Index of the largest value of each of `rows` rows of width V (ties: the first). */
  argmax(x: Tensor, rows: number, V: number): Promise<Int32Array>;

  // ---------------------------------------------------------------------------------- training ops

  /**
   * C[M,N] (+)= A·B with 'nt': A[M,K]·B[N,K]ᵀ, 'nn': A[M,K]·B[K,N], 'tn': A[K,M]ᵀ·B[K,N];
   * precision 'bf16' rounds A and B to bf16 first (default 'fp32').
   */
  matmul(C: Tensor, A: Tensor, B: Tensor, M: number, N: number, K: number, layout: MatmulLayout, accumulate: boolean,
    precision?: MatmulPrecision): void;
  /**
   * Mixed precision: the caller promises that `t` keeps its values until it calls the returned
   * release, so 'bf16' products that read all of `t` (as A or B, the tensor object itself) may
   * round it to bf16 once and reuse the bits. The numbers are those of rounding every time.
   * Optional: a backend without it rounds every time.
   */
  holdBf16?(t: Tensor): () => void;
  /** Causal GQA attention over B sequences of T rows of qkv; out [B·T, Q·hd]; lse [B, Q, T] saved for the backward. */
  causalAttention(out: Tensor, lse: Tensor, qkv: Tensor, B: number, T: number, Q: number, Hkv: number, hd: number): void;
  /** dqkv OVERWRITTEN (q, k and v parts) from dout, recomputing the probabilities from qkv and lse. */
  causalAttentionBackward(dqkv: Tensor, dout: Tensor, qkv: Tensor, out: Tensor, lse: Tensor, B: number, T: number, Q: number, Hkv: number, hd: number): void;
  /** dx += d/dx, dw += d/dw of rmsnorm (rstd from the forward). */
  rmsnormBackward(dx: Tensor, dw: Tensor, dy: Tensor, x: Tensor, w: Tensor, rstd: Tensor, rows: number, dim: number): void;
  /** In place on dqkv (post-RoPE gradient in, raw-projection gradient out; V part untouched); dqNorm/dkNorm +=. */
  qkNormRopeBackward(dqkv: Tensor, dqNorm: Tensor | null, dkNorm: Tensor | null, raw: Tensor, rstd: Tensor, rows: number,
    pos: Int32Array, Q: number, Hkv: number, hd: number, qNorm: Tensor | null, kNorm: Tensor | null, rope: RopeTables): void;
  /** du OVERWRITTEN. */
  swigluBackward(du: Tensor, dg: Tensor, u: Tensor, rows: number, F: number): void;
  /** du OVERWRITTEN. */
  siluBackward(du: Tensor, dg: Tensor, u: Tensor, n: number): void;
  /** dtable rows += dout rows (ids equal to skipId send nothing). */
  embeddingBackward(dtable: Tensor, dout: Tensor, ids: Int32Array, D: number, skipId: number): void;
  /**
   * For `rows` logit rows of width V and their targets (all valid): the sums of LossSums, and when
   * gradScale ≠ 0 the logits OVERWRITTEN by d/dlogits of gradScale·Σ_rows[(lse − logit[t]) + zLoss·lse²],
   * with row r's gradient further multiplied by rowScale[r] when given.
   */
  crossEntropy(logits: Tensor, targets: Int32Array, rows: number, V: number, zLoss: number, gradScale: number,
    rowScale?: Float32Array): Promise<LossSums>;
  /** Per-row (lse, logit[target]) of `rows` logit rows, read back (sequence log-probabilities: logit − lse). */
  rowLogprobs(logits: Tensor, targets: Int32Array, rows: number, V: number): Promise<Float64Array>;
  /**
   * Σ x² in f64, over fixed blocks summed in order (deterministic). Given several tensors: the sum
   * over their concatenation, bit for bit what one tensor holding them in order gives (a gradient
   * split into chunks has the norm of the unsplit one).
   */
  sumSquares(x: Tensor | readonly Tensor[]): Promise<number>;
  /** x = f32(x · coef) with the multiply in f64. */
  scale(x: Tensor, coef: number): void;
  /** One AdamW update of n elements (p, m, v updated in place). */
  adamw(p: Tensor, g: Tensor, m: Tensor, v: Tensor, n: number, s: AdamWStep): void;

  // ------------------------------------------------------------------- adapter ops (LoRA / DoRA)

  /**
   * out[M,K] (+)= dy[M,N] · W for a weight W [N, K] of any dtype, decoded to f32 as linear() decodes
   * it: the input gradient of linear() (a frozen, possibly quantized base).
   */
  linearT(out: Tensor, dy: Tensor, w: Weight, M: number, accumulate?: boolean): void;
  /**
   * out[r·cols + j] (+)= x[r·cols + j] · s[j] for `rows` rows of `cols` values (rows = 1: the
   * element-wise product of two vectors). Without accumulate, out may be x.
   */
  mulColumns(out: Tensor, x: Tensor, s: Tensor, rows: number, cols: number, accumulate?: boolean): void;
  /** out[j] (+)= Σ_r a[r·cols + j] · b[r·cols + j] over `rows` rows (a column-wise dot product). */
  columnDot(out: Tensor, a: Tensor, b: Tensor, rows: number, cols: number, accumulate?: boolean): void;
  /**
   * Dropout multipliers for n elements: element i is kept when dropoutHash(seed, i) ≥ floor(p·2³²)
   * (src/backends/dropout.ts: an integer hash, the same bits on every backend). out[i] = keep ?
   * f32(1/(1−p)) : 0, or with `complement` keep ? f32(1 − f32(1/(1−p))) : 1, so that x·mask +
   * x·complement = x (the part of x dropout removed).
   */
  dropoutMask(out: Tensor, n: number, p: number, seed: number, complement: boolean): void;
  /** DoRA's magnitude scale over n values: invN[j] = 1 / sqrt(base2[j] + coef·q[j]), c[j] = m[j] · invN[j]. */
  doraScale(c: Tensor, invN: Tensor, m: Tensor, base2: Tensor, q: Tensor, n: number, coef: number): void;

  /** Release threads and memory. */
  dispose(): void;
}

/** The largest single buffer of a device backend (Backend.bufferLimit). */
export interface BufferLimit {
  bytes: number;
  /** The device limit that sets it (WebGPU: maxStorageBufferBindingSize or maxBufferSize). */
  limit: string;
  /** The device, as users know it. */
  device: string;
}
