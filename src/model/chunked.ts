// A layout's values (parameters, their gradients, AdamW's moments) on a backend: one flat tensor,
// or several chunks when the backend's largest tensor (Backend.maxTensorValues: one 4 GiB
// WebAssembly memory, one GPU buffer) cannot hold them all. Chunks are cut between tensors, so
// every tensor is a view into one chunk, and they keep the flat offsets: chunk k holds flat values
// [start, start + size), the chunks one after the other covering [0, layout.total). Where the cuts
// fall depends only on the layout and that size, so parameters, gradients and moments are cut at
// the same places and an element-wise update pairs chunk k with chunk k. A layout that fits in one
// chunk gets exactly the single flat tensor it always had. See docs/training.md, "Past one memory".

import type { Backend, Tensor } from '../backends/backend.js';
import { OpenELMError } from '../core/errors.js';
import { formatBytes } from '../core/bytes.js';
import type { ParamLayout } from './layout.js';

/** Flat values [start, start + size). */
export interface Span { start: number; size: number; }
export interface Chunk extends Span { tensor: Tensor; }

/**
 * Where a layout is cut so that no chunk holds more than maxValues values: a chunk starts where a
 * tensor starts and runs to the next chunk's start (the padding after its last tensor included).
 */
export function chunkSpans(layout: ParamLayout, maxValues: number, what: string): Span[] {
  if (layout.total <= maxValues) return [{ start: 0, size: layout.total }];
  const spans: Span[] = [];
  let start = 0;
  for (const e of [...layout.entries].sort((a, b) => a.offset - b.offset)) {
    if (e.size > maxValues) {
      throw new OpenELMError('memory', `${e.name} (${formatBytes(e.size * 4)} of ${what}) is larger than the ${formatBytes(maxValues * 4)} ` +
        'one tensor of this backend can hold');
    }
    if (e.offset + e.size - start > maxValues) { spans.push({ start, size: e.offset - start }); start = e.offset; }
  }
  spans.push({ start, size: layout.total - start });
  return spans;
}

export class ChunkedTensor {
  private constructor(private readonly be: Backend, readonly layout: ParamLayout, readonly chunks: readonly Chunk[], private readonly owned: boolean) {}

  /** Zero-filled chunks for `layout` (`what` names them in errors); all are allocated or none. */
  static alloc(be: Backend, layout: ParamLayout, what: string): ChunkedTensor {
    const chunks: Chunk[] = [];
    try {
      for (const s of chunkSpans(layout, be.maxTensorValues(), what)) chunks.push({ ...s, tensor: be.alloc(s.size) });
    } catch (e) {
      for (const c of chunks) be.free(c.tensor);
      throw e;
    }
    return new ChunkedTensor(be, layout, chunks, true);
  }

  /** A flat tensor of the whole layout, as one chunk (free() leaves it to its owner). */
  static of(be: Backend, layout: ParamLayout, t: Tensor): ChunkedTensor {
    if (t.length !== layout.total) throw new OpenELMError('usage', `a tensor of ${t.length} values does not hold a layout of ${layout.total}`);
    return new ChunkedTensor(be, layout, [{ start: 0, size: layout.total, tensor: t }], false);
  }

  get tensors(): Tensor[] { return this.chunks.map((c) => c.tensor); }

  /** The one tensor holding every value, or null when the values are split. */
  get whole(): Tensor | null { return this.chunks.length === 1 ? this.chunks[0].tensor : null; }

  /** Whether `other` is cut at the same places. */
  sameSplit(other: ChunkedTensor): boolean {
    return other.chunks.length === this.chunks.length && other.chunks.every((c, i) => c.start === this.chunks[i].start && c.size === this.chunks[i].size);
  }

  /** The chunk holding flat value `offset`. */
  private chunkAt(offset: number): Chunk {
    let lo = 0, hi = this.chunks.length - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (this.chunks[mid].start <= offset) lo = mid; else hi = mid - 1; }
    return this.chunks[lo];
  }

  /** [offset, offset + n) as pieces that each lie in one chunk, in order. */
  pieces(offset: number, n: number): Span[] {
    if (!(offset >= 0 && n >= 0 && offset + n <= this.layout.total)) {
      throw new OpenELMError('usage', `values [${offset}, ${offset + n}) are outside a layout of ${this.layout.total}`);
    }
    const out: Span[] = [];
    for (let o = offset, end = offset + n; o < end;) {
      const c = this.chunkAt(o), len = Math.min(end, c.start + c.size) - o;
      out.push({ start: o, size: len });
      o += len;
    }
    return out;
  }

  /** Flat values [offset, offset + n) as a view; they must lie in one chunk. */
  range(offset: number, n: number): Tensor {
    const c = this.chunkAt(offset);
    if (offset + n > c.start + c.size) throw new OpenELMError('usage', `values [${offset}, ${offset + n}) span two chunks`);
    return this.be.view(c.tensor, offset - c.start, n);
  }

  /** Tensor `name` of the layout (HF key) as a view. */
  view(name: string): Tensor {
    const e = this.layout.byName.get(name);
    if (!e) throw new OpenELMError('usage', `the model has no tensor named ${name}`);
    return this.range(e.offset, e.size);
  }

  fill(value: number): void { for (const c of this.chunks) this.be.fill(c.tensor, value); }

  /** Set flat values [offset, offset + values.length). */
  write(values: Float32Array, offset = 0): void {
    for (const p of this.pieces(offset, values.length)) this.be.write(this.range(p.start, p.size), values.subarray(p.start - offset, p.start - offset + p.size));
  }

  /** A host copy of flat values [offset, offset + n) (default: all; for small layouts, or a slice at a time). */
  async read(offset = 0, n = this.layout.total - offset): Promise<Float32Array> {
    const ps = this.pieces(offset, n);
    if (ps.length === 1) return this.be.read(this.range(ps[0].start, ps[0].size));
    const out = new Float32Array(n);
    for (const p of ps) out.set(await this.be.read(this.range(p.start, p.size)), p.start - offset);
    return out;
  }

  /** Give the chunks back to the backend (those of alloc() only). */
  free(): void {
    if (!this.owned) return;
    for (const c of this.chunks) this.be.free(c.tensor);
  }
}
