// Training batches from a weighted mixture of sources, through an optional seeded shuffle buffer,
// and a fixed validation set. Nothing is read ahead: the loader's state after batch k is exactly
// what batch k+1 needs, so a checkpoint can hold it and a resumed run gets the same batches.

import { OpenELMError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import { PAD, type RowSource, type SourceState, type SourceStats } from './sources.js';

export interface Batch {
  /** B·T input ids (PAD in padded positions). */
  inputs: Int32Array;
  /** B·T next-token targets (PAD = ignored). */
  targets: Int32Array;
  /** Targets that count towards the loss. */
  validTokens: number;
}

export interface LoaderState {
  mixRng: number[];
  shuffleRng: number[];
  bufferRows: number;
  sources: SourceState[];
}

/** B rows of T+1 ids → inputs row[0..T), targets row[1..T]. */
export function rowsToBatch(rows: Int32Array[], T: number): Batch {
  const B = rows.length;
  const inputs = new Int32Array(B * T), targets = new Int32Array(B * T);
  let valid = 0;
  for (let b = 0; b < B; b++) {
    const r = rows[b];
    inputs.set(r.subarray(0, T), b * T);
    targets.set(r.subarray(1, T + 1), b * T);
  }
  for (let i = 0; i < targets.length; i++) if (targets[i] !== PAD) valid++;
  return { inputs, targets, validTokens: valid };
}

export interface TrainLoaderOptions {
  seqLen: number;
  /** Rows held by the shuffle buffer; 0 = no shuffling beyond the file order. */
  shuffleBuffer: number;
  seed: number;
}

export class TrainLoader {
  private weights: number[];
  private mixRng: Rng;
  private shuffleRng: Rng;
  private buffer: Int32Array[] = [];

  constructor(readonly sources: RowSource[], private o: TrainLoaderOptions) {
    if (!sources.length) throw new OpenELMError('data', 'the recipe has no training data (recipe.data.train is empty)');
    const total = sources.reduce((a, s) => a + s.spec.weight, 0);
    this.weights = sources.map((s) => s.spec.weight / total);
    // Separate streams so that changing one knob (e.g. the buffer size) does not reshuffle the other.
    this.mixRng = new Rng((o.seed ^ 0x6d1f) >>> 0);
    this.shuffleRng = new Rng((o.seed ^ 0x5bd1e995) >>> 0);
  }

  private async pickRow(): Promise<Int32Array> {
    let i = 0;
    if (this.sources.length > 1) {
      const u = this.mixRng.next();
      let acc = 0;
      i = this.sources.length - 1;
      for (let k = 0; k < this.weights.length; k++) { acc += this.weights[k]; if (u < acc) { i = k; break; } }
    }
    const r = await this.sources[i].nextRow();
    if (!r) throw new Error('a training source ended although it loops');
    return r;
  }

  async nextRow(): Promise<Int32Array> {
    const n = this.o.shuffleBuffer;
    if (n <= 0) return this.pickRow();
    while (this.buffer.length < n) this.buffer.push(await this.pickRow());
    const j = this.shuffleRng.int(n);
    const out = this.buffer[j];
    this.buffer[j] = await this.pickRow();
    return out;
  }

  async nextBatch(B: number): Promise<Batch> {
    const rows: Int32Array[] = [];
    for (let b = 0; b < B; b++) rows.push(await this.nextRow());
    return rowsToBatch(rows, this.o.seqLen);
  }

  getState(): { json: LoaderState; tensors: Record<string, Int32Array> } {
    const tensors: Record<string, Int32Array> = {};
    const T1 = this.o.seqLen + 1;
    if (this.buffer.length) {
      const all = new Int32Array(this.buffer.length * T1);
      this.buffer.forEach((r, i) => { all.set(r, i * T1); });
      tensors['shuffle_buffer'] = all;
    }
    const sources = this.sources.map((s, i) => {
      const st = s.getState();
      for (const [k, v] of Object.entries(st.tensors)) tensors[`source${i}.${k}`] = v;
      return st.json;
    });
    return { json: { mixRng: this.mixRng.getState(), shuffleRng: this.shuffleRng.getState(), bufferRows: this.buffer.length, sources }, tensors };
  }

  setState(json: LoaderState, tensors: Record<string, Int32Array>): void {
    if (json.sources.length !== this.sources.length) {
      throw new OpenELMError('checkpoint', `the checkpoint has ${json.sources.length} training sources but the recipe has ${this.sources.length}`);
    }
    this.mixRng.setState(json.mixRng);
    this.shuffleRng.setState(json.shuffleRng);
    const T1 = this.o.seqLen + 1;
    this.buffer = [];
    const all = tensors['shuffle_buffer'];
    if (json.bufferRows) {
      if (!all || all.length !== json.bufferRows * T1) throw new OpenELMError('checkpoint', 'the checkpoint\'s shuffle buffer does not match seq_len');
      for (let i = 0; i < json.bufferRows; i++) this.buffer.push(all.slice(i * T1, (i + 1) * T1));
    }
    this.sources.forEach((s, i) => {
      const t: Record<string, Int32Array> = {};
      const pre = `source${i}.`;
      for (const [k, v] of Object.entries(tensors)) if (k.startsWith(pre)) t[k.slice(pre.length)] = v;
      s.setState(json.sources[i], t);
    });
  }

  stats(): { name: string; stats: SourceStats }[] {
    return this.sources.map((s) => ({ name: s.spec.name, stats: s.stats }));
  }

  async close(): Promise<void> { for (const s of this.sources) await s.close(); }
}

/** Up to `maxRows` rows from non-looping sources, taken round-robin (the validation set). */
export async function readRows(sources: RowSource[], maxRows: number): Promise<Int32Array[]> {
  const rows: Int32Array[] = [];
  const live = sources.slice();
  while (rows.length < maxRows && live.length) {
    for (let i = 0; i < live.length && rows.length < maxRows;) {
      const r = await live[i].nextRow();
      if (r) { rows.push(r); i++; } else { await live[i].close(); live.splice(i, 1); }
    }
  }
  for (const s of live) await s.close();
  return rows;
}
