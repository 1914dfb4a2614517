// Instruction-tuning data in memory: every JSONL line of the sources is read once, validated and
// tokenized up front (so bad lines are reported as they are met, and `epochs` can be turned into a
// step count), then kept as token ids in one pool. Batches are drawn epoch after epoch, in file
// order or in a seeded permutation per epoch; the position in that order is all a checkpoint needs.
//
// Rows never share attention: each example (SFT) or each completion with its prompt (DPO) is its
// own row, right-padded to the longest row of the batch with PAD, which embeds as zeros and is
// never a target (causal attention keeps padding at a row's end from touching its real tokens).

import { OpenELMError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import { LineReader, compressionOf, openByteStream } from './byte-stream.js';
import { ExampleError } from './chat-spans.js';
import { TooLongError, tokenizeDpo, tokenizeSft, type InstructTokenizing, type SftKind } from './instruct-examples.js';
import { PAD, splitHash, type SplitOptions } from './sources.js';

export interface InstructStats {
  /** Non-blank lines read (held-out ones included). */
  lines: number;
  kept: number;
  /** Not JSON, missing or mistyped fields, unknown roles. */
  malformed: number;
  /** An empty completion or assistant message. */
  empty: number;
  /** Dropped by the length rules (a prompt over max_prompt_length; nothing trainable within max_length). */
  tooLong: number;
  /** Kept, but cut to the length limits. */
  truncated: number;
  /** Lines held out for validation (valid_fraction). */
  heldOut: number;
  /** Loss-bearing tokens: SFT trained tokens; DPO chosen + rejected completion tokens. */
  tokens: number;
  /** SFT: examples of each layout. */
  kinds: Partial<Record<SftKind | 'strings' | 'chat', number>>;
}

export interface SkippedLine {
  file: string;
  line: number;
  reason: string;
  kind: 'malformed' | 'empty' | 'too_long';
  /** Lines of this kind skipped so far (this one included). */
  count: number;
}

export interface InstructLoadOptions {
  split?: SplitOptions;
  /** Called for each skipped line when it is met. */
  onSkip?: (s: SkippedLine) => void;
}

export function emptyInstructStats(): InstructStats {
  return { lines: 0, kept: 0, malformed: 0, empty: 0, tooLong: 0, truncated: 0, heldOut: 0, tokens: 0, kinds: {} };
}

/** A growable Int32 pool with a parallel byte mask. */
class Pool {
  ids = new Int32Array(1 << 12);
  mask = new Uint8Array(1 << 12);
  length = 0;
  private hash = 0x811c9dc5;

  push(ids: ArrayLike<number>, mask?: ArrayLike<number>): number {
    const at = this.length, n = ids.length;
    if (at + n > this.ids.length) {
      let cap = this.ids.length;
      while (cap < at + n) cap *= 2;
      const a = new Int32Array(cap); a.set(this.ids.subarray(0, at)); this.ids = a;
      const b = new Uint8Array(cap); b.set(this.mask.subarray(0, at)); this.mask = b;
    }
    let h = this.hash;
    for (let i = 0; i < n; i++) {
      const v = ids[i], m = mask ? mask[i] : 0;
      this.ids[at + i] = v; this.mask[at + i] = m;
      h = Math.imul(h ^ (v >>> 0), 0x01000193) >>> 0;
      h = Math.imul(h ^ m, 0x01000193) >>> 0;
    }
    this.hash = h;
    this.length = at + n;
    return at;
  }

  /** Hash of everything pushed, in order (detects changed data on resume). */
  digest(): string { return `${(this.hash >>> 0).toString(16).padStart(8, '0')}-${this.length}`; }
}

/** Reads every JSONL line of `files`, passing the parsed object (or the parse error) on. */
async function readLines(files: string[], split: SplitOptions, stats: InstructStats,
  each: (obj: unknown, file: string, line: number) => void, skip: (file: string, line: number, reason: string, kind: SkippedLine['kind']) => void): Promise<void> {
  const utf8 = new TextDecoder('utf-8');
  for (let f = 0; f < files.length; f++) {
    const file = files[f];
    const s = await openByteStream(file, compressionOf(file), 0);
    try {
      const lr = new LineReader(s, 0, 1);
      for (let l = await lr.next(); l; l = await lr.next()) {
        const text = utf8.decode(l.bytes);
        if (text.trim() === '') continue;
        stats.lines++;
        if (split.fraction > 0 && split.role !== 'all') {
          const held = splitHash(f, l.line, 0, 2) < split.fraction;
          if (held !== (split.role === 'valid')) { if (split.role === 'train') stats.heldOut++; continue; }
        }
        let obj: unknown;
        try { obj = JSON.parse(text); } catch (e) {
          skip(file, l.line, `invalid JSON (${(e as Error).message.split('\n')[0]})`, 'malformed');
          continue;
        }
        try {
          each(obj, file, l.line);
        } catch (e) {
          if (e instanceof TooLongError) skip(file, l.line, e.message, 'too_long');
          else if (e instanceof ExampleError) skip(file, l.line, e.message, e.kind);
          else throw e;
        }
      }
    } finally {
      await s.close();
    }
  }
}

function skipper(stats: InstructStats, onSkip?: (s: SkippedLine) => void) {
  return (file: string, line: number, reason: string, kind: SkippedLine['kind']): void => {
    const count = kind === 'too_long' ? ++stats.tooLong : kind === 'empty' ? ++stats.empty : ++stats.malformed;
    onSkip?.({ file, line, reason, kind, count });
  };
}

// ------------------------------------------------------------------------------------------ sets

export interface Row { ids: Int32Array; trained: Uint8Array; }

export class SftSet {
  readonly stats = emptyInstructStats();
  private pool = new Pool();
  private start: number[] = [];
  private len: number[] = [];

  get size(): number { return this.start.length; }
  digest(): string { return this.pool.digest(); }

  add(ids: ArrayLike<number>, trained: ArrayLike<number>): void {
    this.start.push(this.pool.push(ids, trained));
    this.len.push(ids.length);
  }

  row(i: number): Row {
    const a = this.start[i], n = this.len[i];
    return { ids: this.pool.ids.subarray(a, a + n), trained: this.pool.mask.subarray(a, a + n) };
  }

  static async load(files: string[], t: InstructTokenizing & { maskPrompt: boolean }, o: InstructLoadOptions = {}): Promise<SftSet> {
    const set = new SftSet(), st = set.stats;
    await readLines(files, o.split ?? { role: 'all', fraction: 0 }, st, (obj) => {
      const ex = tokenizeSft(obj, t);
      set.add(ex.ids, ex.trained);
      st.kept++;
      if (ex.truncated) st.truncated++;
      st.kinds[ex.kind] = (st.kinds[ex.kind] ?? 0) + 1;
      for (let i = 0; i < ex.trained.length; i++) st.tokens += ex.trained[i];
    }, skipper(st, o.onSkip));
    return set;
  }
}

export class DpoSet {
  readonly stats = emptyInstructStats();
  private pool = new Pool();
  /** Per pair: pool offsets and lengths of prompt, chosen, rejected. */
  private at: number[] = [];

  get size(): number { return this.at.length / 6; }
  digest(): string { return this.pool.digest(); }

  add(prompt: ArrayLike<number>, chosen: ArrayLike<number>, rejected: ArrayLike<number>): void {
    this.at.push(this.pool.push(prompt), prompt.length, this.pool.push(chosen), chosen.length, this.pool.push(rejected), rejected.length);
  }

  /** The chosen (which 0) or rejected (1) row of pair i: prompt + completion, completion trained. */
  row(i: number, which: 0 | 1): Row {
    const a = this.at, k = 6 * i, ids = this.pool.ids;
    const p = a[k + 1], c = a[k + 3 + 2 * which];
    const out = new Int32Array(p + c), trained = new Uint8Array(p + c);
    out.set(ids.subarray(a[k], a[k] + p), 0);
    out.set(ids.subarray(a[k + 2 + 2 * which], a[k + 2 + 2 * which] + c), p);
    trained.fill(1, p);
    return { ids: out, trained };
  }

  static async load(files: string[], t: InstructTokenizing & { maxPromptLength: number }, o: InstructLoadOptions = {}): Promise<DpoSet> {
    const set = new DpoSet(), st = set.stats;
    await readLines(files, o.split ?? { role: 'all', fraction: 0 }, st, (obj) => {
      const p = tokenizeDpo(obj, t);
      set.add(p.prompt, p.chosen, p.rejected);
      st.kept++;
      if (p.truncated) st.truncated++;
      const k = p.chat ? 'chat' : 'strings';
      st.kinds[k] = (st.kinds[k] ?? 0) + 1;
      st.tokens += p.chosen.length + p.rejected.length;
    }, skipper(st, o.onSkip));
    return set;
  }
}

// ------------------------------------------------------------------------------------------ order

export interface OrderState { epoch: number; pos: number; }

/**
 * Example indices epoch after epoch: 0..n−1 in file order, or a seeded permutation that depends
 * only on (seed, epoch), so the state is two integers.
 */
export class EpochOrder {
  private perm: Uint32Array | null = null;
  private permEpoch = -1;
  epoch = 0;
  pos = 0;

  constructor(readonly n: number, readonly shuffle: boolean, readonly seed: number) {
    if (n <= 0) throw new OpenELMError('data', 'the training data has no usable examples');
  }

  private order(): Uint32Array | null {
    if (!this.shuffle) return null;
    if (this.permEpoch !== this.epoch) {
      const p = new Uint32Array(this.n);
      for (let i = 0; i < this.n; i++) p[i] = i;
      const rng = new Rng((Math.imul(this.seed ^ 0x2545f491, 0x9e3779b1) + this.epoch * 0x632be5ab) >>> 0);
      for (let i = this.n - 1; i > 0; i--) { const j = rng.int(i + 1); const t = p[i]; p[i] = p[j]; p[j] = t; }
      this.perm = p; this.permEpoch = this.epoch;
    }
    return this.perm;
  }

  next(): number {
    const p = this.order();
    const i = p ? p[this.pos] : this.pos;
    if (++this.pos === this.n) { this.pos = 0; this.epoch++; }
    return i;
  }

  take(k: number): number[] { return Array.from({ length: k }, () => this.next()); }

  getState(): OrderState { return { epoch: this.epoch, pos: this.pos }; }
  setState(s: OrderState): void {
    if (!(Number.isInteger(s.epoch) && s.epoch >= 0 && Number.isInteger(s.pos) && s.pos >= 0 && s.pos < this.n)) {
      throw new OpenELMError('checkpoint', `the checkpoint's data position (epoch ${s.epoch}, example ${s.pos}) does not fit ${this.n} examples; did the data change?`);
    }
    this.epoch = s.epoch; this.pos = s.pos;
  }
}

// ------------------------------------------------------------------------------------------ batches

export interface InstructBatch {
  /** rows·T input ids, PAD after each row's end. */
  inputs: Int32Array;
  /** rows·T targets: the next id where it is trained, else PAD. */
  targets: Int32Array;
  rows: number;
  T: number;
  /** Targets that count, per row and in all. */
  rowTokens: Int32Array;
  validTokens: number;
}

/** Rows padded to the longest: inputs ids[0..n−1), targets ids[1..n) where trained. */
export function collateRows(rows: Row[]): InstructBatch {
  const T = Math.max(1, ...rows.map((r) => r.ids.length - 1));
  const B = rows.length;
  const inputs = new Int32Array(B * T).fill(PAD), targets = new Int32Array(B * T).fill(PAD), rowTokens = new Int32Array(B);
  let valid = 0;
  rows.forEach((r, b) => {
    const n = r.ids.length;
    inputs.set(r.ids.subarray(0, n - 1), b * T);
    for (let t = 0; t < n - 1; t++) {
      if (r.trained[t + 1]) { targets[b * T + t] = r.ids[t + 1]; rowTokens[b]++; }
    }
    valid += rowTokens[b];
  });
  return { inputs, targets, rows: B, T, rowTokens, validTokens: valid };
}

export function sftBatch(set: SftSet, idx: readonly number[]): InstructBatch {
  return collateRows(idx.map((i) => set.row(i)));
}

/** 2·pairs rows: the chosen rows of the pairs, then their rejected rows (TRL's concatenated batch). */
export function dpoBatch(set: DpoSet, idx: readonly number[]): InstructBatch & { pairs: number } {
  const rows = [...idx.map((i) => set.row(i, 0)), ...idx.map((i) => set.row(i, 1))];
  return { ...collateRows(rows), pairs: idx.length };
}
