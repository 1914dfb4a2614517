// Rotate-half RoPE tables (spec: docs/architecture.md): cos/sin of p·base^(-2j/hd) for positions p and
// j < hd/2, computed in float64 and stored as f32, as Apple's code does in fp32. Inference and training
// share these tables. They are made on first use for the positions asked (at least FIRST_POSITIONS)
// and grow by doubling, rather than covering rope_max_length (4096) up front: a row's values do not
// depend on the table's length, and a short run neither computes nor keeps the 1 MiB it would not read.

import type { Backend, RopeTables } from '../backends/backend.js';
import type { OpenELMConfig } from './config.js';

/** Host tables [len, hd/2]. */
export function ropeTablesHost(c: OpenELMConfig, len: number): { cos: Float32Array; sin: Float32Array } {
  const half = c.headDim / 2, base = c.ropeFreqConstant;
  const cos = new Float32Array(len * half), sin = new Float32Array(len * half);
  for (let j = 0; j < half; j++) {
    const inv = 1 / Math.pow(base, (2 * j) / c.headDim);
    for (let p = 0; p < len; p++) { cos[p * half + j] = Math.cos(p * inv); sin[p * half + j] = Math.sin(p * inv); }
  }
  return { cos, sin };
}

/** Fewest positions tables are made for (a 256-token context's worth: 64 KB at head_dim 64). */
const FIRST_POSITIONS = 256;

/** The tables on a backend, made and regrown on demand. */
export class Rope {
  private t: RopeTables | null = null;
  constructor(private readonly c: OpenELMConfig, private readonly be: Backend) {}

  /** Tables covering positions [0, n). */
  ensure(n: number): RopeTables {
    if (this.t && n <= this.t.positions) return this.t;
    const len = Math.max(n, Math.min(FIRST_POSITIONS, this.c.ropeMaxLength), (this.t?.positions ?? 0) * 2);
    const host = ropeTablesHost(this.c, len), half = this.c.headDim / 2;
    this.release();
    const cos = this.be.alloc(len * half), sin = this.be.alloc(len * half);
    this.be.write(cos, host.cos);
    this.be.write(sin, host.sin);
    this.t = { cos, sin, positions: len, half };
    return this.t;
  }

  release(): void {
    if (!this.t) return;
    this.be.free(this.t.cos);
    this.be.free(this.t.sin);
    this.t = null;
  }
}
