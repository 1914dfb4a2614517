// A LoRA adapter applied at run time on top of shared base weights, unmerged, so one loaded base
// serves several adapters (chosen per request) and the base itself:
//   linear     y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ          A [r, in], B [out, r] (PEFT's layouts)
//   embedding  y = W[id] + s·A_t[id]·Bᵀ        A_t [vocab, r] (lora_embedding_A transposed), B [dim, r]
// The tied head keeps reading the base embedding, as PEFT's wrapped model does (src/adapters/merge.ts
// unties the head for the same reason), so this computes what the merged model computes.
// DoRA is refused here: its output scale c = m/||W + s·B·A|| multiplies the whole base product, so
// it cannot be added beside the base GEMM; merge it at load instead (docs/adapters.md).

import type { Backend, Tensor, Weight } from '../backends/backend.js';
import { OpenELMError } from '../core/errors.js';
import { adapterScale, type Adapter } from '../adapters/adapter.js';
import type { AdapterTarget } from '../adapters/targets.js';
import type { OpenELMConfig } from './config.js';

interface RuntimeModule { r: number; I: number; O: number; A: Tensor; B: Tensor; table: Weight | null; }

export class RuntimeAdapter {
  readonly scale: number;
  readonly r: number;
  private readonly mods = new Map<string, RuntimeModule>();
  private readonly owned: Tensor[] = [];
  private t: Tensor | null = null;
  private tRows = 0;
  private disposed = false;

  /** `name` is how requests select it (used in error messages). */
  constructor(private readonly be: Backend, c: OpenELMConfig, readonly name: string, adapter: Adapter) {
    if (adapter.settings.type === 'dora') {
      throw new OpenELMError('adapter', `adapter ${name} is DoRA, which cannot be applied per request (its magnitude rescales the base output); merge it at load with a bare --adapter DIR`);
    }
    this.scale = adapterScale(adapter.settings);
    this.r = adapter.settings.r;
    const upload = (data: Float32Array): Tensor => {
      const t = be.alloc(data.length);
      be.write(t, data);
      this.owned.push(t);
      return t;
    };
    try {
      for (const m of adapter.modules) {
        const { inFeatures: I, outFeatures: O, kind, layer, target } = m.module;
        if (m.A.length !== this.r * I || m.B.length !== O * this.r) {
          throw new OpenELMError('adapter', `adapter ${name}: ${m.module.name} has tensors of the wrong size for this base (A ${m.A.length}, B ${m.B.length} values; needs ${this.r * I} and ${O * this.r})`);
        }
        if (layer >= c.numLayers) throw new OpenELMError('adapter', `adapter ${name}: ${m.module.name} is past the base's ${c.numLayers} layers`);
        let A: Tensor, table: Weight | null = null;
        if (kind === 'embedding') {
          // the lookup reads rows: store lora_embedding_A transposed, [vocab, r]
          const At = new Float32Array(I * this.r);
          for (let k = 0; k < this.r; k++) for (let v = 0; v < I; v++) At[v * this.r + k] = m.A[k * I + v];
          A = upload(At);
          table = be.tensorWeight(A, I, this.r);
        } else A = upload(m.A);
        this.mods.set(key(layer, target), { r: this.r, I, O, A, B: upload(m.B), table });
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** y [M, out] += s·(x·Aᵀ)·Bᵀ when this adapter wraps `target` of `layer`. */
  linear(y: Tensor, x: Tensor, M: number, layer: number, target: AdapterTarget): void {
    const m = this.mods.get(key(layer, target));
    if (!m) return;
    const be = this.be, t = this.scratch(M);
    be.matmul(t, x, m.A, M, m.r, m.I, 'nt', false);
    be.scale(t, this.scale);
    be.matmul(y, t, m.B, M, m.O, m.r, 'nt', true);
  }

  /** y [M, dim] (the base lookup) += s·A_t[ids]·Bᵀ when the embedding is wrapped. */
  embedding(y: Tensor, ids: Int32Array): void {
    const m = this.mods.get(key(-1, 'token_embeddings'));
    if (!m) return;
    const be = this.be, M = ids.length, t = this.scratch(M);
    be.embedding(t, m.table!, ids);
    be.scale(t, this.scale);
    be.matmul(y, t, m.B, M, m.O, m.r, 'nt', true);
  }

  private scratch(M: number): Tensor {
    if (this.tRows < M) {
      if (this.t) this.be.free(this.t);
      this.tRows = M;
      this.t = this.be.alloc(M * this.r);
    }
    return this.be.view(this.t!, 0, M * this.r);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.owned) this.be.free(t);
    if (this.t) this.be.free(this.t);
    this.owned.length = 0;
    this.t = null;
  }
}

function key(layer: number, target: AdapterTarget): string { return `${layer}.${target}`; }
