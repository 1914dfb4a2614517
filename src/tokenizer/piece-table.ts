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

/**
 * Ids by piece text: open addressing over the table's own text, so neither keys nor lookups allocate strings.
 * The hash is a polynomial over UTF-16 code units (h = h * B + unit, mod 2^32), mixed once for the slot:
 * unlike FNV it gives the hashes of all prefixes and suffixes of a piece in one pass each, which is
 * how the Tokenizer finds every split of every piece without hashing each side anew.
 */
const HASH_B = 0x01000193;
/** murmur3's finalizer, so that the slot (low bits) depends on every unit. */
const mix = (h: number): number => {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
};

export class PieceIndex {
  /** The multiplier of rawHash, for callers that hash suffixes right to left. */
  static readonly B = HASH_B;
  private readonly slots: Int32Array;
  private readonly mask: number;

  constructor(private readonly t: PieceTable, slots?: Int32Array) {
    let cap = 16;
    while (cap < 2 * t.size) cap <<= 1;
    if (slots !== undefined && slots.length !== cap) throw new Error(`piece index of ${slots.length} slots for ${t.size} pieces (bug)`);
    this.slots = slots ?? new Int32Array(cap).fill(-1);
    this.mask = cap - 1;
  }

  /** An index whose slots (slotArray of an index of the same pieces) are already filled. */
  static withSlots(t: PieceTable, slots: Int32Array): PieceIndex {
    return new PieceIndex(t, slots);
  }

  get slotArray(): Int32Array {
    return this.slots;
  }

  /** The unmixed hash of s[from, to): sum of unit[i] * B^(to - 1 - i), mod 2^32. */
  static rawHash(s: string, from: number, to: number): number {
    let h = 0;
    for (let i = from; i < to; i++) h = (Math.imul(h, HASH_B) + s.charCodeAt(i)) | 0;
    return h;
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
    for (let i = mix(PieceIndex.rawHash(text, from, to)) & this.mask; ; i = (i + 1) & this.mask) {
      const k = this.slots[i];
      if (k === -1) { this.slots[i] = id; return -1; }
      if (this.same(k, text, from, to)) return k;
    }
  }

  /** Id of the piece whose text is s[from, to), or -1. */
  findRange(s: string, from: number, to: number): number {
    return this.findHashed(PieceIndex.rawHash(s, from, to), s, from, to);
  }

  /** findRange with `h` = rawHash(s, from, to) already known. */
  findHashed(h: number, s: string, from: number, to: number): number {
    for (let i = mix(h) & this.mask; ; i = (i + 1) & this.mask) {
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
    // rawHash(String.fromCodePoint(cp)) without building the string
    const h = len === 2 ? (Math.imul(hi, HASH_B) + lo) | 0 : hi;
    const start = this.t.start, text = this.t.text;
    for (let i = mix(h) & this.mask; ; i = (i + 1) & this.mask) {
      const k = this.slots[i];
      if (k === -1) return -1;
      const a = start[k];
      if (start[k + 1] - a === len && text.charCodeAt(a) === hi && (len === 1 || text.charCodeAt(a + 1) === lo)) return k;
    }
  }
}
