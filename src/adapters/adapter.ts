// An adapter in memory: its settings and, per wrapped module, PEFT's tensors in PEFT's layouts
// (row-major): A [r, in], B [out, r], and for DoRA the magnitude vector — one value per output row
// of a linear ([out]) and, for the embedding, one per model dimension ([dim], normed over the
// vocabulary). See docs/adapters.md for the math and its sources.

import { OpenELMError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import type { OpenELMConfig } from '../model/config.js';
import { adaptedModules, type AdaptedModule, type AdapterTarget } from './targets.js';

export type AdapterType = 'lora' | 'dora';

export interface AdapterSettings {
  type: AdapterType;
  r: number;
  alpha: number;
  /** lora_dropout: applied to linear inputs in training only; PEFT never applies it to the embedding. */
  dropout: number;
  targets: AdapterTarget[];
  rslora: boolean;
}

export interface ModuleAdapter {
  module: AdaptedModule;
  /** [r, in] (embedding: [r, vocab]). */
  A: Float32Array;
  /** [out, r] (embedding: [dim, r]). */
  B: Float32Array;
  /** DoRA only: [out] (embedding: [dim]). */
  magnitude?: Float32Array;
}

export interface Adapter {
  settings: AdapterSettings;
  modules: ModuleAdapter[];
  /** Where the base model came from, as adapter_config.json's base_model_name_or_path says (informational). */
  baseModel?: string | null;
}

/** PEFT's scaling: alpha / r, or alpha / sqrt(r) with rsLoRA. */
export function adapterScale(s: Pick<AdapterSettings, 'r' | 'alpha' | 'rslora'>): number {
  return s.rslora ? s.alpha / Math.sqrt(s.r) : s.alpha / s.r;
}

export function checkSettings(s: AdapterSettings, where: string): void {
  const bad = (m: string): never => { throw new OpenELMError('adapter', `${where}: ${m}`); };
  if (s.type !== 'lora' && s.type !== 'dora') bad(`type must be lora or dora, got ${JSON.stringify(s.type)}`);
  if (!Number.isInteger(s.r) || s.r < 1) bad(`r must be an integer >= 1, got ${JSON.stringify(s.r)}`);
  if (typeof s.alpha !== 'number' || !Number.isFinite(s.alpha) || s.alpha <= 0) bad(`alpha must be a number > 0, got ${JSON.stringify(s.alpha)}`);
  if (typeof s.dropout !== 'number' || !(s.dropout >= 0 && s.dropout < 1)) bad(`dropout must be in [0, 1), got ${JSON.stringify(s.dropout)}`);
  if (!s.targets.length) bad('targets must name at least one module');
}

/** Per-row L2 norms of a [rows, cols] matrix held in f64 (DoRA's ||W + s·ΔW||). */
function rowNorms(m: Float64Array, rows: number, cols: number): Float64Array {
  const n = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < cols; j++) { const v = m[i * cols + j]; s += v * v; }
    n[i] = Math.sqrt(s);
  }
  return n;
}

/**
 * The matrix DoRA normalises, W + s·ΔW, in the orientation whose rows get one magnitude each:
 * linears [out, in] (ΔW = B·A); the embedding [dim, vocab] (W transposed, ΔW = B·A). f64.
 */
export function doraDirection(m: ModuleAdapter, W: ArrayLike<number>, scale: number): Float64Array {
  const { inFeatures: I, outFeatures: O, kind } = m.module;
  const r = m.A.length / I;
  const V = new Float64Array(O * I);
  for (let o = 0; o < O; o++) {
    for (let i = 0; i < I; i++) {
      let d = 0;
      for (let k = 0; k < r; k++) d += m.B[o * r + k] * m.A[k * I + i];
      // Embedding weight is stored [vocab, dim] = [in, out].
      const w = kind === 'embedding' ? W[i * O + o] : W[o * I + i];
      V[o * I + i] = w + scale * d;
    }
  }
  return V;
}

/** DoRA's per-row norms ||W + s·B·A|| (detached in training): [out] for linears, [dim] for the embedding. */
export function doraNorms(m: ModuleAdapter, W: ArrayLike<number>, scale: number): Float64Array {
  return rowNorms(doraDirection(m, W, scale), m.module.outFeatures, m.module.inFeatures);
}

/**
 * A fresh adapter as PEFT's default init makes one (init_lora_weights=true): linears
 * A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a = sqrt(5)), B = 0; the embedding A = 0,
 * B ~ N(0, 1); DoRA magnitudes = ||W|| along PEFT's axis. `gaussian` draws linear A ~ N(0, 1/r)
 * instead. The random streams are ours (seeded), not PyTorch's.
 */
export function initAdapter(c: OpenELMConfig, s: AdapterSettings, opts: {
  seed: number; init?: 'default' | 'gaussian'; baseWeight?: (name: string) => ArrayLike<number>;
}): Adapter {
  checkSettings(s, 'adapter');
  const rng = new Rng(opts.seed);
  const modules: ModuleAdapter[] = [];
  for (const mod of adaptedModules(c, s.targets)) {
    const { inFeatures: I, outFeatures: O } = mod;
    const A = new Float32Array(s.r * I), B = new Float32Array(O * s.r);
    if (mod.kind === 'embedding') {
      for (let i = 0; i < B.length; i++) B[i] = rng.normal();
    } else if (opts.init === 'gaussian') {
      for (let i = 0; i < A.length; i++) A[i] = rng.normal() / s.r;
    } else {
      const bound = 1 / Math.sqrt(I);
      for (let i = 0; i < A.length; i++) A[i] = (2 * rng.next() - 1) * bound;
    }
    const ma: ModuleAdapter = { module: mod, A, B };
    if (s.type === 'dora') {
      if (!opts.baseWeight) throw new OpenELMError('adapter', 'DoRA needs the base weights to initialise its magnitudes');
      ma.magnitude = Float32Array.from(doraNorms(ma, opts.baseWeight(mod.weight), adapterScale(s)));
    }
    modules.push(ma);
  }
  return { settings: { ...s, targets: [...s.targets] }, modules };
}
