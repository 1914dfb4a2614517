// Random initialisation as CoreNet does it (docs/architecture.md, Initialisation): linear weights N(0, in^-1/2), embedding
// N(0, D^-1/2), norms 1, then out_proj and proj_2 re-drawn N(0, D^-1/2 · (2L)^-1/2).

import { Rng } from '../core/rng.js';
import type { OpenELMConfig } from './config.js';
import type { ParamEntry, ParamLayout } from './layout.js';

/**
 * Draw every tensor in layout order from one seeded stream: into a flat host buffer laid out by
 * `layout`, or handed tensor by tensor to a callback (e.g. one writing each into a backend tensor).
 */
export function initParams(c: OpenELMConfig, layout: ParamLayout, out: Float32Array | ((e: ParamEntry, values: Float32Array) => void),
  seed: number, opts: { normJitter?: number } = {}): void {
  const rng = new Rng(seed);
  const D = c.modelDim;
  for (const e of layout.entries) {
    const dst = typeof out === 'function' ? new Float32Array(e.size) : out.subarray(e.offset, e.offset + e.size);
    fill(e, dst);
    if (typeof out === 'function') out(e, dst);
  }

  function fill(e: ParamEntry, dst: Float32Array): void {
    if (e.shape.length === 1) {
      // Tests pass normJitter so a mix-up between norm weights cannot hide behind all-ones.
      const j = opts.normJitter ?? 0;
      for (let i = 0; i < dst.length; i++) dst[i] = 1 + (j ? j * rng.normal() : 0);
      return;
    }
    let std: number;
    if (e.name.endsWith('token_embeddings.weight')) std = Math.pow(D, -0.5);
    else if (e.name.endsWith('out_proj.weight') || e.name.endsWith('proj_2.weight')) std = Math.pow(D, -0.5) * Math.pow(2 * c.numLayers, -0.5);
    else std = Math.pow(e.shape[1], -0.5);
    for (let i = 0; i < dst.length; i++) dst[i] = std * rng.normal();
  }
}
