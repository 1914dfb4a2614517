// The one table of numeric tolerances every exactness test uses: pass when
// |actual − expected| ≤ atol + rtol·|expected| element-wise (numpy allclose).
// Goldens are computed in float64 by tools/openelm_ref.py and stored as float32, so these bounds
// measure our error only. Each entry says what it covers; change one only with a measurement.

export interface Tol { atol: number; rtol: number; }

export const TOL = {
  /** JS reference backend, fp32 storage with f64 accumulation: logits and activations vs fp64 golden.
   *  Measured max abs logits error 9.5e-7 over the three golden models (2026-11-26). */
  refLogits: { atol: 1e-5, rtol: 1e-5 },
  refActivations: { atol: 1e-5, rtol: 1e-4 },
  /** Fast (WASM SIMD, f32 accumulation) backends vs the JS reference. */
  fastVsRef: { atol: 1e-4, rtol: 1e-3 },
  /**
   * WASM integer GEMV/GEMM for q8/q4 weights: activation rows are quantized to int8 per block of
   * 32 (llama.cpp Q8_0/Q8_1), vs the JS reference on the same quantized weights, for unit-scale
   * outputs (x ~ N(0,1), W rows ~ N(0, 1/K)). Measured (one token) on K = 32..5120, 10k outputs
   * each: rms error 0.0053–0.0057, max 0.027 for both q8 and q4; ~2× headroom.
   */
  intDotVsRef: { atol: 5e-2, rtol: 1e-2 },
  /**
   * WASM GEMV of Q8_0/Q4_0/Q4_K/Q6_K block weights with int8 activations (blocks_int.as) vs float64
   * on the same quantized operands (exact integer block dots): f32 rounding of the scale products
   * and of the block sums only, so the bound is relative to Σ|d_w·d_x·q_w·q_x| of the output
   * (rtol; atol unused).
   * Measured at worst (K = 32..1280, an outlier channel and a zero block; relaxed and SIMD128
   * builds, 1 and 2 threads): q4_0 1.26e-7, q8_0 8.7e-8, q6_k 4.9e-8, q4_k 4.6e-8; ~8× headroom.
   */
  blockInt8VsF64: { atol: 0, rtol: 1e-6 },
  /**
   * Perplexity of a model run with its GGUF/MLX block weights as stored vs the f32 computation on
   * the exactly decoded weights (JS reference): only the summation order of the dot products
   * differs. Measured over every GGUF fixture, prefill and decode, wasm 2 threads: max rel 1.3e-7.
   */
  storedPerplexity: { atol: 0, rtol: 1e-4 },
  /**
   * The native int8 (VNNI) prefill vs the WASM integer GEMM on the same weights and x: identical
   * quantized operands and exact int32 block dots; only the f32 folding may differ (fused or not
   * multiply-adds in WASM's relaxed SIMD). Measured 1.39e-6·(1 + |value|) at worst (test/native.test.ts
   * shapes, q8 and q4, with and without an outlier channel); ~3.5× headroom.
   */
  int8NativeVsWasm: { atol: 5e-6, rtol: 5e-6 },
  /**
   * The WASM integer GEMM (prefill) vs its GEMV (decode) on the same rows: the same int8 x and exact
   * block sums, folded into f32 in other orders, so the bound is relative to Σ|w·x| of the output
   * plus 1 (rtol; atol unused). Measured 2.85e-7 at worst (test/wasm-backend.test.ts q4 shapes with
   * the largest block sums, relaxed and SIMD128 builds, 1 and 2 threads); ~3.5× headroom.
   */
  int8GemmVsGemv: { atol: 0, rtol: 1e-6 },
  /**
   * The AMX bf16 product (oneDNN's matmul primitive) vs the BLAS-like bf16 GEMM and vs the f64
   * product of the same rounded operands: both sum exact products in f32, in other orders. atol is
   * per sqrt(K) (multiply by it) for unit-normal operands; measured 8.9e-7·sqrt(K) at worst (test/train-bf16.test.ts
   * shapes, both comparisons, no rtol), ~2.2× headroom.
   */
  bf16AmxVsBlas: { atol: 2e-6, rtol: 1e-5 },
  /** f16 / bf16 weight storage vs f32. */
  halfVsF32: { atol: 1e-2, rtol: 1e-2 },
  /** Training: loss and parameter gradients vs golden. */
  loss: { atol: 1e-5, rtol: 1e-5 },
  grads: { atol: 1e-5, rtol: 1e-3 },
  /**
   * Mixed-precision training (bf16 product inputs, f32 sums) vs the fp64 bf16-input goldens
   * (tools/make_bf16_goldens.py): the loss. Measured 1.0e-5 at worst (js, wasm, native; three
   * models); the fp32 loss sits 6.8e-4 to 3.7e-3 away. Gradients: TOL_L2 below.
   */
  bf16Loss: { atol: 3e-5, rtol: 0 },
  /** 10-step AdamW loss curve. */
  curve: { atol: 1e-4, rtol: 0 },
  /** Instruction tuning: 4-step DPO curves (sigmoid + label smoothing, hinge, ipo), loss per step,
   *  relative (issue 14 asks for 2e-5). Measured max 9.9e-8 on the js backend, 9.0e-7 (hinge) on
   *  wasm with 2 threads. */
  instructCurveLoss: { atol: 0, rtol: 2e-5 },
  /**
   * Adapted module forward/backward (src/adapters/reference-math.ts, f64 from the f32-stored
   * captures) vs PEFT's float64 per-module captures. Measured max abs 2.4e-7 (y), 1.2e-7 (dA),
   * relative to each tensor's max |v| <= 7.1e-8 (2026-12-06).
   */
  adapterModule: { atol: 2e-6, rtol: 1e-5 },
  /**
   * A LoRA adapter applied unmerged at run time (y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ, src/model/runtime-adapter.ts)
   * vs the same adapter merged into f32 weights at load, JS backend, logits of the gqa4-hd32 golden
   * base with PEFT's lora and rsLoRA goldens. Measured max abs 1.2e-6 (js), 2.1e-6 (wasm) on 8-token prompts; greedy ids identical (2026-12-06).
   */
  adapterUnmerged: { atol: 1e-5, rtol: 1e-5 },
  /** Merged weights (f64 merge rounded to f32) vs PEFT's float64 merge_and_unload stored as f32. Measured 0 (2026-12-06). */
  adapterMerge: { atol: 1e-7, rtol: 1e-7 },
  /**
   * Adapter training through the trainable model (test/adapter-suite.test.ts): every LoRA / rsLoRA /
   * DoRA gradient vs PEFT's float64 ones, without and with dropout. Measured max abs 9.1e-6 (js),
   * 1.2e-4 (wasm: rsLoRA's embedding A, scale 4, elements up to ~0.3) (2026-12-08).
   */
  adapterGrads: { atol: 1e-5, rtol: 1e-3 },
  /** Adapter 5-step AdamW curve: loss and gradient norm per step, 2e-5 relative (the bound issue 13 sets). */
  adapterCurve: { atol: 0, rtol: 2e-5 },
  /**
   * The adapter after those 5 steps. AdamW divides by sqrt(v), so elements whose gradients are near
   * zero move by up to ~lr on f32 noise. Measured max abs 3.7e-5 (js), 1.5e-4 (wasm), lr 1e-2.
   */
  adapterCurveParams: { atol: 3e-4, rtol: 0 },
  /** Per-item eval log-likelihoods vs the reference. */
  loglik: { atol: 1e-4, rtol: 0 },
} as const satisfies Record<string, Tol>;

/**
 * Relative L2 bounds, ‖actual − expected‖ / ‖expected‖, for results where a few elements may
 * legitimately move by a rounding step: with bf16 product inputs an operand that lands within f32
 * rounding of a bf16 tie rounds the other way in f32 than in the fp64 reference (about 1 in 10⁵
 * elements), which moves the gradients that flow through it by ~2⁻⁸ of one term.
 */
export const TOL_L2 = {
  /** All gradients of a bf16 step together vs the bf16 goldens. Measured ≤ 2.4e-3 (js, wasm, native; three
   *  models, batch 2×16); the fp32 gradients are 1.16e-2 to 1.29e-2 away, so an fp32 step fails. */
  bf16GradsAll: 5e-3,
  /** Each gradient tensor alone (small tensors feel a single flip more). Measured ≤ 4.5e-3. */
  bf16GradTensor: 1e-2,
} as const satisfies Record<string, number>;

/** ‖actual − expected‖ / ‖expected‖ (f64 sums). */
export function relL2(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let d = 0, n = 0;
  for (let i = 0; i < actual.length; i++) { d += (actual[i] - expected[i]) ** 2; n += expected[i] ** 2; }
  return n === 0 ? (d === 0 ? 0 : Infinity) : Math.sqrt(d / n);
}

export interface CloseReport { ok: boolean; maxAbs: number; maxRel: number; worst: number; message: string; }

export function allclose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol, label = ''): CloseReport {
  if (actual.length !== expected.length) {
    return { ok: false, maxAbs: Infinity, maxRel: Infinity, worst: -1, message: `${label}: length ${actual.length} != expected ${expected.length}` };
  }
  let ok = true, maxAbs = 0, maxRel = 0, worst = -1, worstExcess = -Infinity;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    if (Number.isNaN(e) || Number.isNaN(a)) { if (Number.isNaN(e) !== Number.isNaN(a)) { ok = false; worst = i; } continue; }
    const d = Math.abs(a - e);
    const excess = d - (tol.atol + tol.rtol * Math.abs(e));
    if (d > maxAbs) maxAbs = d;
    if (e !== 0 && d / Math.abs(e) > maxRel) maxRel = d / Math.abs(e);
    if (excess > worstExcess) { worstExcess = excess; worst = i; }
    if (excess > 0) ok = false;
  }
  const pairs: string[] = [];
  for (let i = 0; i < Math.min(5, actual.length); i++) pairs.push(`(${actual[i]}, ${expected[i]})`);
  const message = `${label}: max abs ${maxAbs.toExponential(3)}, max rel ${maxRel.toExponential(3)}, worst at ${worst}` +
    (worst >= 0 ? ` (${actual[worst]} vs ${expected[worst]})` : '') + `; first pairs ${pairs.join(' ')}; tol atol ${tol.atol} rtol ${tol.rtol}`;
  return { ok, maxAbs, maxRel, worst, message };
}

/** assert-style helper for node:test. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol, label = ''): void {
  const r = allclose(actual, expected, tol, label);
  if (!r.ok) throw new Error(`not close: ${r.message}`);
}

/**
 * Mean KL divergence (nats per position) of a quantized model's next-token distributions to the
 * f32 model's, on test/quant-quality.test.ts's model (model_dim 256, so 4 of its 8 activation
 * blocks hold an outlier) with 4 outlier channels of 64x (src/model/outliers.ts), prefill and
 * decode, wasm. Measured 2026-12-06: q8 4.40e-2 (without the outliers 4.3e-4: int8 activations
 * coarsen every block that holds one, as llama.cpp's Q8_0 activations do); q4 6.73e-2 with the
 * importance-weighted block fit (weight-format.ts fitQ4Block), 0.727 with plain min/max blocks;
 * 8.70e-2 once its scales and mins became 8-bit codes and the embedding/head q4 too (4.5 bits per
 * weight where it had 6, the embedding 9). ~1.5x headroom at the first measurement.
 */
export const KL = {
  q8Outliers: 6.6e-2,
  q4Outliers: 0.1,
} as const satisfies Record<string, number>;
