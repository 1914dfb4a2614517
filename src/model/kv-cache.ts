// Per-sequence KV cache. Every layer has its own kv-head count, so each layer gets its own
// [Hkv_i, capacity, hd] buffers for K (after k_norm and RoPE) and V. Caching post-RoPE keys (as the
// MLX ports do) is numerically the same as Apple's pre-RoPE cache and saves re-rotating every step.

import type { Backend, Tensor } from '../backends/backend.js';
import type { OpenELMConfig } from './config.js';
import { OpenELMError } from '../core/errors.js';

export class KVCache {
  readonly capacity: number;
  readonly k: Tensor[] = [];
  readonly v: Tensor[] = [];
  /** Tokens currently stored (the position of the next token). */
  length = 0;

  constructor(config: OpenELMConfig, private readonly backend: Backend, capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new OpenELMError('usage', `KV cache capacity must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
    for (let l = 0; l < config.numLayers; l++) {
      const n = config.numKvHeads[l] * capacity * config.headDim;
      this.k.push(backend.alloc(n));
      this.v.push(backend.alloc(n));
    }
  }

  /** Forget everything after the first n tokens (e.g. to reuse a shared prompt prefix). */
  truncate(n: number): void {
    if (n < 0 || n > this.length) throw new OpenELMError('usage', `cannot truncate a cache of ${this.length} tokens to ${n}`);
    this.length = n;
  }

  reset(): void { this.length = 0; }

  /** Give the buffers back to the backend (needed by backends with their own memory); the cache is unusable afterwards. */
  dispose(): void {
    for (const a of [...this.k, ...this.v]) this.backend.free(a);
    this.k.length = 0;
    this.v.length = 0;
    this.length = 0;
  }

  /** Bytes held by this cache. */
  get bytes(): number {
    let n = 0;
    for (const a of this.k) n += a.length * 4 * 2;
    return n;
  }
}
