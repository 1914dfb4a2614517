// A data source turns its files into training rows of seq_len + 1 token ids (inputs are row[0..T),
// targets row[1..T]); PAD marks padded positions. Text sources run CoreNet's pipeline (docs/training.md):
// word chunks → character filter → NFC → encode → BOS + EOS → token filter → layout:
//   pad:  one row per chunk: its first T+1 tokens, right-padded (CoreNet; the rest of the chunk is dropped);
//   pack: chunks concatenated into one token stream, rows are windows [kT, kT+T+1) (no padding).
// Token sources read raw little-endian uint16 ids and cut the same windows.
// Sources loop over their files forever (training) or stop at the end (validation). Everything a
// source holds between two rows is in its state, so a run can be resumed exactly.

import * as fs from 'node:fs';
import { OpenELMError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import type { Tokenizer } from '../../tokenizer/tokenizer.js';
import { openChunkReader, type BadLine, type ChunkReader, type FileCursor } from './chunk-readers.js';
import type { DataFormat } from './files.js';
import { nfc, passesCharFilter } from './text.js';

/**
 * Targets equal to this are ignored by the loss and inputs equal to it embed as zeros. OpenELM's HF
 * vocabulary (32000) has no pad token; CoreNet pads with 32000 in a 32128-row embedding. We keep
 * the HF vocabulary and mark padding with PyTorch's ignore index instead; padding sits only at the
 * end of a row, so under causal attention it never influences a real position.
 */
export const PAD = -100;

export interface PipelineOptions {
  mode: 'pack' | 'pad';
  seqLen: number;
  splitWords: number;
  minChars: number;
  minTokens: number;
}

/** Which part of a source this reader yields when a fraction is held out for validation. */
export interface SplitOptions { role: 'all' | 'train' | 'valid'; fraction: number; }

export interface SourceSpec {
  name: string;
  files: string[];
  format: DataFormat;
  textKey?: string;
  weight: number;
}

export interface SourceStats {
  documents: number;
  chunks: number;
  droppedChars: number;
  droppedTokens: number;
  heldOut: number;
  kept: number;
  rows: number;
  tokens: number;
  badLines: number;
  badExamples: string[];
}

export interface SourceState {
  epoch: number;
  order: number[];
  pos: number;
  cursor: FileCursor | null;
  rng: number[];
  survived: number;
  stats: SourceStats;
  /** token sources: next window start (tokens) in the current file */
  offset?: number;
}

export interface RowSource {
  readonly spec: SourceSpec;
  readonly stats: SourceStats;
  /** Next row of T+1 ids (PAD for padding), or null when a non-looping source is exhausted. */
  nextRow(): Promise<Int32Array | null>;
  getState(): { json: SourceState; tensors: Record<string, Int32Array> };
  setState(json: SourceState, tensors: Record<string, Int32Array>): void;
  close(): Promise<void>;
}

export interface SourceOptions {
  pipe: PipelineOptions;
  split: SplitOptions;
  seed: number;
  /** Start over (new epoch) at the end of the files. */
  loop: boolean;
  /** Shuffle the file order every epoch. */
  shuffleFiles: boolean;
  vocabSize: number;
  /** Hears about skipped corrupt lines as they are met (the first few, then once that more are counted). */
  warn?: (line: string) => void;
}

export function emptyStats(): SourceStats {
  return { documents: 0, chunks: 0, droppedChars: 0, droppedTokens: 0, heldOut: 0, kept: 0, rows: 0, tokens: 0, badLines: 0, badExamples: [] };
}

/** Deterministic hash of a chunk's identity to [0, 1): decides the held-out split. */
export function splitHash(file: number, a: number, b: number, c: number): number {
  let h = 0x811c9dc5;
  for (const v of [file, a, b, c]) {
    h = Math.imul(h ^ (v >>> 0), 0x01000193);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 12;
  }
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h ^= h >>> 13;
  return (h >>> 0) / 4294967296;
}

function inSplit(split: SplitOptions, h: () => number): boolean {
  if (split.role === 'all' || split.fraction <= 0) return split.role !== 'valid';
  const held = h() < split.fraction;
  return split.role === 'valid' ? held : !held;
}

const MAX_BAD_EXAMPLES = 5;

abstract class BaseSource {
  readonly stats: SourceStats = emptyStats();
  protected order: number[];
  protected pos = 0;
  protected epoch = 0;
  protected survived = 0;
  protected rng: Rng;

  constructor(readonly spec: SourceSpec, protected o: SourceOptions) {
    this.rng = new Rng(o.seed);
    this.order = spec.files.map((_, i) => i);
    if (o.shuffleFiles) this.rng.shuffle(this.order);
  }

  /** Called when every file has been read once. Returns false for a finished non-looping source. */
  protected endOfEpoch(what: string): boolean {
    if (!this.o.loop) return false;
    if (this.survived === 0) throw new OpenELMError('data', `${this.describe()}: ${what}`);
    this.epoch++;
    this.survived = 0;
    this.pos = 0;
    if (this.o.shuffleFiles) this.rng.shuffle(this.order);
    return true;
  }

  protected describe(): string {
    const n = this.spec.files.length;
    return `data source "${this.spec.name}" (${n === 1 ? this.spec.files[0] : `${n} files`})`;
  }

  protected baseState(cursor: FileCursor | null): SourceState {
    return { epoch: this.epoch, order: this.order.slice(), pos: this.pos, cursor, rng: this.rng.getState(), survived: this.survived, stats: structuredClone(this.stats) };
  }

  protected setBase(s: SourceState): void {
    if (s.order.length !== this.spec.files.length) {
      throw new OpenELMError('checkpoint', `${this.describe()} had ${s.order.length} files when the checkpoint was written; resuming needs the same files`);
    }
    this.epoch = s.epoch; this.order = s.order.slice(); this.pos = s.pos; this.survived = s.survived;
    this.rng.setState(s.rng);
    Object.assign(this.stats, structuredClone(s.stats));
  }
}

/** text / jsonl / parquet files through CoreNet's pipeline. */
export class TextRowSource extends BaseSource implements RowSource {
  private reader: ChunkReader | null = null;
  private cursor: FileCursor | null = null;
  private carry: number[] = [];

  constructor(spec: SourceSpec, o: SourceOptions, private tok: Tokenizer) { super(spec, o); }

  private onBadLine = (b: BadLine): void => {
    // The same line comes back every epoch; report it once.
    if (this.epoch > 0) return;
    this.stats.badLines++;
    const where = `${b.file}:${b.line}: ${b.reason}`;
    if (this.stats.badExamples.length < MAX_BAD_EXAMPLES) {
      this.stats.badExamples.push(where);
      this.o.warn?.(`data ${this.spec.name}: skipped a corrupt line, ${where}`);
    } else if (this.stats.badLines === MAX_BAD_EXAMPLES + 1) {
      this.o.warn?.(`data ${this.spec.name}: more corrupt lines are skipped; their count is reported at the end`);
    }
  };

  /** Next chunk's token ids (BOS … EOS) that survived the filters, or null at the end of a non-looping source. */
  private async nextTokens(): Promise<number[] | null> {
    const p = this.o.pipe;
    for (;;) {
      if (!this.reader) {
        if (this.pos >= this.order.length) {
          if (!this.endOfEpoch(this.emptyMessage())) return null;
        }
        const fi = this.order[this.pos];
        this.reader = await openChunkReader(this.spec.files[fi], this.spec.format as 'text' | 'jsonl' | 'parquet' | 'llm-adapters', this.cursor, {
          splitWords: p.splitWords, textKey: this.spec.textKey, onBadLine: this.onBadLine, onDocument: () => { this.stats.documents++; },
        });
      }
      const ch = await this.reader.next();
      if (!ch) {
        await this.reader.close();
        this.reader = null;
        this.cursor = null;
        this.pos++;
        continue;
      }
      const fi = this.order[this.pos];
      if (!inSplit(this.o.split, () => splitHash(fi, ch.key[0], ch.key[1], ch.key[2]))) { this.stats.heldOut++; continue; }
      this.stats.chunks++;
      if (!passesCharFilter(ch.text, p.minChars)) { this.stats.droppedChars++; continue; }
      const ids = this.tok.encode(nfc(ch.text), { bos: true, eos: true });
      if (ids.length < p.minTokens) { this.stats.droppedTokens++; continue; }
      this.stats.kept++;
      this.survived++;
      return ids;
    }
  }

  private emptyMessage(): string {
    const s = this.stats, p = this.o.pipe;
    let m = `no chunk survived the filters in a whole pass over the data (${s.chunks} chunks read`;
    if (s.droppedChars) m += `, ${s.droppedChars} with fewer than min_chars = ${p.minChars} characters`;
    if (s.droppedTokens) m += `, ${s.droppedTokens} with fewer than min_tokens = ${p.minTokens} tokens`;
    if (s.badLines) m += `, ${s.badLines} unreadable lines`;
    if (s.heldOut) m += `, ${s.heldOut} held out for validation`;
    return m + '); add text or lower pipeline.min_chars / pipeline.min_tokens';
  }

  async nextRow(): Promise<Int32Array | null> {
    try {
      return await this.buildRow();
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  private async buildRow(): Promise<Int32Array | null> {
    const T = this.o.pipe.seqLen;
    if (this.o.pipe.mode === 'pad') {
      const ids = await this.nextTokens();
      if (!ids) return null;
      const row = new Int32Array(T + 1).fill(PAD);
      const n = Math.min(ids.length, T + 1);
      for (let i = 0; i < n; i++) row[i] = ids[i];
      this.stats.rows++;
      this.stats.tokens += n - 1;
      return row;
    }
    while (this.carry.length < T + 1) {
      const ids = await this.nextTokens();
      if (!ids) return null;
      for (const t of ids) this.carry.push(t);
    }
    const row = Int32Array.from(this.carry.slice(0, T + 1));
    this.carry.splice(0, T);
    this.stats.rows++;
    this.stats.tokens += T;
    return row;
  }

  getState(): { json: SourceState; tensors: Record<string, Int32Array> } {
    const json = this.baseState(this.reader ? this.reader.cursor() : this.cursor);
    return { json, tensors: { carry: Int32Array.from(this.carry) } };
  }

  setState(json: SourceState, tensors: Record<string, Int32Array>): void {
    this.setBase(json);
    this.cursor = json.cursor;
    this.carry = Array.from(tensors.carry ?? []);
    if (this.reader) { void this.reader.close(); this.reader = null; }
  }

  async close(): Promise<void> { if (this.reader) await this.reader.close(); this.reader = null; }
}

/** Pre-tokenized files: raw little-endian uint16 ids, cut into windows of T+1 with stride T. */
export class TokenRowSource extends BaseSource implements RowSource {
  private offset = 0;
  private fd: number | null = null;
  private fdFile = -1;
  private nTok = 0;
  private buf: Buffer;

  constructor(spec: SourceSpec, o: SourceOptions) {
    super(spec, o);
    this.buf = Buffer.alloc((o.pipe.seqLen + 1) * 2);
  }

  private open(fi: number): void {
    if (this.fdFile === fi && this.fd !== null) return;
    this.closeFd();
    const file = this.spec.files[fi];
    let size: number;
    try { this.fd = fs.openSync(file, 'r'); size = fs.fstatSync(this.fd).size; } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new OpenELMError('data', err.code === 'ENOENT' ? `data file ${file} does not exist` : `cannot read data file ${file}: ${err.message}`);
    }
    if (size % 2 !== 0) throw new OpenELMError('data', `token file ${file} has an odd size (${size} bytes); expected little-endian uint16 ids`);
    this.fdFile = fi;
    this.nTok = size / 2;
  }

  private closeFd(): void {
    if (this.fd !== null) { try { fs.closeSync(this.fd); } catch { /* already closed */ } }
    this.fd = null; this.fdFile = -1;
  }

  async nextRow(): Promise<Int32Array | null> {
    const T = this.o.pipe.seqLen, V = this.o.vocabSize;
    for (;;) {
      if (this.pos >= this.order.length) {
        const msg = `no window of seq_len + 1 = ${T + 1} tokens${this.o.split.role !== 'all' ? ' in this split' : ''}: the token files are too short`;
        if (!this.endOfEpoch(msg)) return null;
      }
      const fi = this.order[this.pos];
      this.open(fi);
      if (this.offset + T + 1 > this.nTok) { this.pos++; this.offset = 0; this.closeFd(); continue; }
      const start = this.offset;
      this.offset += T;
      const rowIdx = start / T;
      if (!inSplit(this.o.split, () => splitHash(fi, rowIdx, 0, 2))) { this.stats.heldOut++; continue; }
      const nb = (T + 1) * 2;
      let got = 0;
      while (got < nb) {
        const n = fs.readSync(this.fd!, this.buf, got, nb - got, start * 2 + got);
        if (n === 0) throw new OpenELMError('data', `token file ${this.spec.files[fi]} ended early (was it changed while training?)`);
        got += n;
      }
      const row = new Int32Array(T + 1);
      for (let i = 0; i <= T; i++) {
        const id = this.buf.readUInt16LE(i * 2);
        if (id >= V) throw new OpenELMError('data', `token file ${this.spec.files[fi]}: id ${id} at token ${start + i} is outside the model's vocabulary (${V})`);
        row[i] = id;
      }
      this.survived++;
      this.stats.rows++;
      this.stats.tokens += T;
      return row;
    }
  }

  getState(): { json: SourceState; tensors: Record<string, Int32Array> } {
    return { json: { ...this.baseState(null), offset: this.offset }, tensors: {} };
  }

  setState(json: SourceState): void {
    this.setBase(json);
    this.offset = json.offset ?? 0;
    this.closeFd();
  }

  async close(): Promise<void> { this.closeFd(); }
}

export function createSource(spec: SourceSpec, o: SourceOptions, tok: Tokenizer): RowSource {
  return spec.format === 'tokens' ? new TokenRowSource(spec, o) : new TextRowSource(spec, o, tok);
}
