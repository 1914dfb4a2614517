// The vocabulary in a few flat arrays: every piece's text in one string with its start offsets,
// the scores and the types. For Llama-2's 32,000 pieces, one object and one string per piece with a
// Map from text to id take ~4 MB of heap, and building them makes enough short-lived garbage to
// grow V8's young generation by ~30 MB of RSS that the process keeps (docs/quantization.md,
// "Memory"); these arrays hold the same in ~1 MB and are built with a handful of allocations.

import type { PieceType, SentencePiece } from './sentencepiece-model.js';

export class PieceTable {
  readonly size: number;

  /**
   * @param text every piece's text, concatenated in id order
   * @param start UTF-16 offset of each piece in `text`, plus the end of the last one (size + 1 entries)
   */
  constructor(
    readonly text: string,
    readonly start: Int32Array,
    readonly scores: Float32Array,
    readonly types: Uint8Array,
  ) {
    this.size = scores.length;
  }

  static fromPieces(pieces: readonly SentencePiece[]): PieceTable {
    const n = pieces.length, start = new Int32Array(n + 1), scores = new Float32Array(n), types = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      start[i + 1] = start[i] + pieces[i].piece.length;
      scores[i] = pieces[i].score;
      types[i] = pieces[i].type;
    }
    return new PieceTable(pieces.map((p) => p.piece).join(''), start, scores, types);
  }

  piece(id: number): string {
    return this.text.slice(this.start[id], this.start[id + 1]);
  }

  toPieces(): SentencePiece[] {
    return Array.from({ length: this.size }, (_, i) => ({ piece: this.piece(i), score: this.scores[i], type: this.types[i] as PieceType }));
  }
}

/** Ids by piece text: open addressing over the table's own text, so neither keys nor lookups allocate strings. */
// FNV-1a over UTF-16 code units, with a final mix so that the low bits (the slot) depend on all of them.
const FNV_OFFSET = 0x811c9dc5;
const fnvStep = (h: number, unit: number): number => Math.imul(h ^ unit, 0x01000193);
const fnvFinish = (h: number): number => (h ^ (h >>> 15)) >>> 0;

export class PieceIndex {
  private readonly slots: Int32Array;
  private readonly mask: number;

  constructor(private readonly t: PieceTable) {
    let cap = 16;
    while (cap < 2 * t.size) cap <<= 1;
    this.slots = new Int32Array(cap).fill(-1);
    this.mask = cap - 1;
  }

  private static hash(s: string, from: number, to: number): number {
    let h = FNV_OFFSET;
    for (let i = from; i < to; i++) h = fnvStep(h, s.charCodeAt(i));
    return fnvFinish(h);
  }

  private same(id: number, s: string, from: number, to: number): boolean {
    const a = this.t.start[id], len = this.t.start[id + 1] - a, text = this.t.text;
    if (len !== to - from) return false;
    for (let i = 0; i < len; i++) if (text.charCodeAt(a + i) !== s.charCodeAt(from + i)) return false;
    return true;
  }

  /** Adds piece `id` unless a piece with the same text is indexed; returns that piece's id, or -1 when `id` was added. */
  add(id: number): number {
    const text = this.t.text, from = this.t.start[id], to = this.t.start[id + 1];
    for (let i = PieceIndex.hash(text, from, to) & this.mask; ; i = (i + 1) & this.mask) {
      const k = this.slots[i];
      if (k === -1) { this.slots[i] = id; return -1; }
      if (this.same(k, text, from, to)) return k;
    }
  }

  /** Id of the piece whose text is s[from, to), or -1. */
  findRange(s: string, from: number, to: number): number {
    for (let i = PieceIndex.hash(s, from, to) & this.mask; ; i = (i + 1) & this.mask) {
      const k = this.slots[i];
      if (k === -1 || this.same(k, s, from, to)) return k;
    }
  }

  find(s: string): number {
    return this.findRange(s, 0, s.length);
  }

  /** Id of the piece that is the one character `cp`, or -1 (find without building the string: the encoder asks this for every character outside the merge symbols, such as each newline). */
  findCodePoint(cp: number): number {
    const len = cp > 0xffff ? 2 : 1;
    const hi = len === 2 ? 0xd800 + ((cp - 0x10000) >> 10) : cp, lo = len === 2 ? 0xdc00 + ((cp - 0x10000) & 0x3ff) : 0;
    // hash(String.fromCodePoint(cp)) without building the string
    let h = fnvStep(FNV_OFFSET, hi);
    if (len === 2) h = fnvStep(h, lo);
    const start = this.t.start, text = this.t.text;
    for (let i = fnvFinish(h) & this.mask; ; i = (i + 1) & this.mask) {
      const k = this.slots[i];
      if (k === -1) return -1;
      const a = start[k];
      if (start[k + 1] - a === len && text.charCodeAt(a) === hi && (len === 1 || text.charCodeAt(a + 1) === lo)) return k;
    }
  }
}
