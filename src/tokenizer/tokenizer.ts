// SentencePiece BPE tokenizer (the Llama-2 `tokenizer.model`), reimplemented to give exactly the
// ids of SentencePieceProcessor.encode / the text of SentencePieceProcessor.decode.
//
// Encoding follows sentencepiece's normalizer.cc + bpe_model.cc + sentencepiece_processor.cc:
//   1. normalize: (optionally collapse spaces), replace ' ' by U+2581, prepend the dummy U+2581;
//   2. split into one symbol per Unicode character (user-defined pieces match as one symbol);
//   3. repeatedly merge the adjacent pair whose concatenation is a piece with the highest score,
//      ties going to the leftmost pair (a heap of candidate pairs, stale entries skipped lazily);
//   4. a leftover symbol that is not a piece becomes its UTF-8 bytes as <0xXX> pieces (byte_fallback).
// SentencePiece does not pre-split BPE input on whitespace. For speed the text is cut only where
// no piece of the vocabulary contains the two adjacent characters: no merge can ever cross such a
// boundary and merges on either side never compete for a symbol, so encoding the parts separately
// gives the same ids. Repeated parts (words) are then served from a cache.
// split_digits is a training-time option only; the vocabulary simply has no multi-digit pieces.

import { OpenELMError } from '../core/errors.js';
import { PairTable } from './pair-table.js';
import { PieceIndex, PieceTable } from './piece-table.js';
import {
  ModelType,
  PieceType,
  parseSentencePieceTable,
  type CompactSentencePieceModel,
  type NormalizerSpec,
  type SentencePieceModel,
  type TrainerSpec,
} from './sentencepiece-model.js';
import { decodeByteRun, pushUtf8 } from './utf8.js';

export interface EncodeOptions {
  /** Prepend the BOS id (default false, as SentencePiece). */
  bos?: boolean;
  /** Append the EOS id (default false). */
  eos?: boolean;
}

export interface DecodeOptions {
  /**
   * true (default): control tokens (<s>, </s>) decode to nothing, as in SentencePiece.
   * false: control tokens are written as their piece text ("<s>"), like HF's
   * skip_special_tokens=False.
   */
  skipSpecial?: boolean;
}

const SPACE_SYMBOL = '\u2581';

/** Pieces that take part in merges (SentencePiece's IsNormal / IsUserDefined / IsUnused). */
const isMergeable = (ty: number): boolean => ty === PieceType.NORMAL || ty === PieceType.USER_DEFINED || ty === PieceType.UNUSED;
/** Parts longer than this (characters) are not cached: they are rare and would bloat the cache. */
const MAX_CACHED_PART = 64;
const MAX_CACHE_ENTRIES = 1 << 18;

/**
 * What the constructor derives from the pieces alone (not from the specs): the piece index, the
 * symbols and character pairs, the byte pieces. A vocabulary's state can be saved once
 * (Tokenizer.state, the bundled tokenizer's prebuilt table) and handed to the constructor with the
 * same pieces, which then skips the per-piece loops, the largest part of a cold construction.
 */
export interface TokenizerState {
  /** PieceIndex's slots. */
  slots: Int32Array;
  /** [code unit, symbol] for each BMP character that has a symbol, in pairs. */
  bmp: Int32Array;
  astral: [number, number][];
  extraSymbolChar: number[];
  /** The adjacent-character pairs, [a, b] in pairs. */
  bigrams: Int32Array;
  shadowed: [string, number][];
  userDefined: [number, string[]][];
  hasUnused: boolean;
  byteToId: Int32Array;
}

export class Tokenizer {
  readonly vocabSize: number;
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
  /** -1 when the model defines no pad piece (Llama-2). */
  readonly padId: number;
  private readonly trainerSpec: TrainerSpec;
  private readonly normalizerSpec: NormalizerSpec;
  private readonly table: PieceTable;
  private readonly types: Uint8Array;
  private readonly scores: Float32Array;
  /** SentencePiece's PieceToId: reserved (non-normal) pieces win over normal ones. */
  private readonly pieceIds: PieceIndex;
  /** Mergeable pieces whose text a reserved piece also has (PieceToId gives the reserved one). Empty for Llama-2. */
  private readonly shadowed: Map<string, number>;
  private readonly byteToId: Int32Array;
  /** Byte value of a BYTE piece, -1 for other ids. */
  private readonly idToByte: Int16Array;
  private readonly byteFallback: boolean;
  private readonly addDummyPrefix: boolean;
  private readonly removeExtraWhitespaces: boolean;
  private readonly escapeWhitespaces: boolean;
  private readonly unkSurface: string;

  // Merge symbols: ids < vocabSize are mergeable pieces (NORMAL/USER_DEFINED/UNUSED); ids >=
  // vocabSize stand for characters that occur inside pieces without being pieces themselves.
  private readonly bmpSymbol: Int32Array;
  private readonly astralSymbol: Map<number, number>;
  private readonly extraSymbolChar: number[];
  /**
   * The merge of a symbol pair plus one (0: none), filled on first use (mergeOf): building it for
   * every split of every piece took most of the construction, and an encode meets few pairs.
   */
  private readonly merges: PairTable;
  /** Adjacent-character pairs that occur inside some mergeable piece. */
  private readonly bigrams: PairTable;
  /** USER_DEFINED pieces by first UTF-16 unit, longest first. Empty for Llama-2. */
  private readonly userDefined: Map<number, string[]>;
  private readonly hasUnused: boolean;

  private cache = new Map<number, CacheEntry>();
  private cacheSize = 0;

  // Scratch buffers reused across calls (grown on demand).
  private segSym: Int32Array = new Int32Array(256);
  private segCp: Int32Array = new Int32Array(256);
  private symLen = new Int32Array(256);
  private symPrev = new Int32Array(256);
  private symNext = new Int32Array(256);
  private heapScore = new Float64Array(768);
  private heapLeft = new Int32Array(768);
  private heapRight = new Int32Array(768);
  private heapSize = new Int32Array(768);
  private heapMerged = new Int32Array(768);

  /**
   * A parsed model proto, or one whose pieces are already in a PieceTable. `state`: that of a
   * tokenizer built from the very same pieces (Tokenizer.state), whose checks those pieces passed.
   */
  constructor(model: SentencePieceModel | CompactSentencePieceModel, source = '<bytes>', state?: TokenizerState) {
    const { trainerSpec: ts, normalizerSpec: ns } = model;
    const bad = (msg: string): never => {
      throw new OpenELMError('tokenizer', `tokenizer model ${source}: ${msg}`);
    };
    if (ts.modelType !== ModelType.BPE) {
      bad(`model_type ${ModelType[ts.modelType] ?? ts.modelType} is not supported (only BPE)`);
    }
    if (ns.precompiledCharsmapLength > 0) {
      bad(`normalizer '${ns.name}' with a precompiled charsmap is not supported (only 'identity')`);
    }
    if (ts.treatWhitespaceAsSuffix) bad('treat_whitespace_as_suffix is not supported');

    this.trainerSpec = ts;
    this.normalizerSpec = ns;
    const t = 'table' in model ? model.table : PieceTable.fromPieces(model.pieces);
    const text = t.text, start = t.start;
    const n = t.size;
    this.table = t;
    this.vocabSize = n;
    this.types = t.types;
    this.scores = t.scores;
    if (state !== undefined) {
      this.pieceIds = PieceIndex.withSlots(t, state.slots);
      this.shadowed = new Map(state.shadowed);
      this.userDefined = new Map(state.userDefined);
      this.hasUnused = state.hasUnused;
    } else {
      const mergeable = (id: number): boolean => isMergeable(this.types[id]);
      // Reserved pieces first: they win PieceToId over a normal piece with the same text.
      this.pieceIds = new PieceIndex(t);
      for (let i = 0; i < n; i++) {
        if (!mergeable(i) && this.pieceIds.add(i) >= 0) bad(`duplicate piece ${JSON.stringify(t.piece(i))} at id ${i}`);
      }
      this.shadowed = new Map();
      this.userDefined = new Map();
      let hasUnused = false;
      for (let i = 0; i < n; i++) {
        if (!mergeable(i)) continue;
        const other = this.pieceIds.add(i);
        if (other >= 0) {
          const p = t.piece(i);
          const dup = mergeable(other) ? other : this.shadowed.get(p);
          if (dup !== undefined) bad(`duplicate piece ${JSON.stringify(p)} (ids ${dup} and ${i})`);
          this.shadowed.set(p, i);
        }
        if (this.types[i] === PieceType.UNUSED) hasUnused = true;
        if (this.types[i] === PieceType.USER_DEFINED) {
          const p = t.piece(i);
          const k = p.charCodeAt(0);
          const list = this.userDefined.get(k) ?? [];
          list.push(p);
          list.sort((a, b) => b.length - a.length);
          this.userDefined.set(k, list);
        }
      }
      this.hasUnused = hasUnused;
    }
    const typed = (piece: string, type: PieceType): number => {
      const id = this.pieceIds.find(piece);
      return id >= 0 && this.types[id] === type ? id : -1;
    };
    this.unkId = typed(ts.unkPiece, PieceType.UNKNOWN);
    if (this.unkId < 0) bad(`unk piece ${JSON.stringify(ts.unkPiece)} is missing or not of type UNKNOWN`);
    this.bosId = typed(ts.bosPiece, PieceType.CONTROL);
    this.eosId = typed(ts.eosPiece, PieceType.CONTROL);
    this.padId = typed(ts.padPiece, PieceType.CONTROL);
    this.unkSurface = ts.unkSurface;
    this.byteFallback = ts.byteFallback;
    this.addDummyPrefix = ns.addDummyPrefix;
    this.removeExtraWhitespaces = ns.removeExtraWhitespaces;
    this.escapeWhitespaces = ns.escapeWhitespaces;

    this.byteToId = state !== undefined ? state.byteToId.slice() : new Int32Array(256).fill(-1);
    this.idToByte = new Int16Array(n).fill(-1);
    if (state !== undefined) for (let b = 0; b < 256; b++) if (this.byteToId[b] >= 0) this.idToByte[this.byteToId[b]] = b;
    for (let i = 0; i < n && state === undefined; i++) {
      if (this.types[i] !== PieceType.BYTE) continue;
      const m = /^<0x([0-9A-F]{2})>$/.exec(t.piece(i));
      if (!m) bad(`byte piece ${JSON.stringify(t.piece(i))} (id ${i}) is not of the form <0xXX>`);
      const b = parseInt(m![1], 16);
      this.byteToId[b] = i;
      this.idToByte[i] = b;
    }
    if (this.byteFallback && this.byteToId.includes(-1)) {
      bad('byte_fallback is set but not all 256 <0xXX> byte pieces are present');
    }

    const types = this.types;

    // Symbols for single characters; pseudo-symbols for characters that only occur inside pieces are
    // added by buildSymbols.
    const bmp = new Int32Array(0x10000).fill(-1);
    this.bmpSymbol = bmp;
    this.merges = new PairTable(1024);
    // The distinct adjacent code-point pairs are few (3,279 in Llama-2's 32,000 pieces): sized for the
    // vocabulary it held 768 KiB, mostly empty; it grows if a vocabulary needs more.
    this.bigrams = new PairTable(state !== undefined ? state.bigrams.length / 2 : 4096);
    if (state !== undefined) {
      for (let i = 0; i < state.bmp.length; i += 2) bmp[state.bmp[i]] = state.bmp[i + 1];
      this.astralSymbol = new Map(state.astral);
      this.extraSymbolChar = state.extraSymbolChar.slice();
      const bg = state.bigrams;
      for (let i = 0; i < bg.length; i += 2) this.bigrams.set(bg[i], bg[i + 1], 1);
      return;
    }
    this.astralSymbol = new Map();
    this.extraSymbolChar = [];
    for (let id = 0; id < n; id++) {
      if (!isMergeable(types[id])) continue;
      const s = start[id], len = start[id + 1] - s;
      if (len === 1) bmp[text.charCodeAt(s)] = id;
      else if (len === 2) {
        const cp = cpAt(text, s, s + 2);
        if (cp > 0xffff) this.astralSymbol.set(cp, id);
      }
    }
    buildSymbols(t, bmp, this.astralSymbol, this.extraSymbolChar, this.bigrams);
  }

  /** What the constructor derived from the pieces (see TokenizerState). */
  get state(): TokenizerState {
    const bmp: number[] = [];
    for (let c = 0; c < 0x10000; c++) if (this.bmpSymbol[c] >= 0) bmp.push(c, this.bmpSymbol[c]);
    return {
      slots: this.pieceIds.slotArray.slice(),
      bmp: Int32Array.from(bmp),
      astral: [...this.astralSymbol],
      extraSymbolChar: this.extraSymbolChar.slice(),
      bigrams: this.bigrams.keys(),
      shadowed: [...this.shadowed],
      userDefined: [...this.userDefined].map(([k, v]) => [k, v.slice()]),
      hasUnused: this.hasUnused,
      byteToId: this.byteToId.slice(),
    };
  }

  /** The pieces (text, scores, types), as the tokenizer keeps them. */
  get pieceTable(): PieceTable {
    return this.table;
  }

  /** The model proto: pieces, trainer and normalizer specs (the pieces are built anew on each call). */
  get model(): SentencePieceModel {
    return { pieces: this.table.toPieces(), trainerSpec: this.trainerSpec, normalizerSpec: this.normalizerSpec };
  }

  /** Parses a SentencePiece model from bytes (browser-safe). `source` names it in errors. */
  static fromBytes(bytes: Uint8Array, source = '<bytes>'): Tokenizer {
    return new Tokenizer(parseSentencePieceTable(bytes, source), source);
  }

  idToPiece(id: number): string {
    this.checkId(id);
    return this.table.piece(id);
  }

  /** SentencePiece's PieceToId: the id of `piece`, or unkId when it is not in the vocabulary. */
  pieceToId(piece: string): number {
    const id = this.pieceIds.find(piece);
    return id >= 0 ? id : this.unkId;
  }

  pieceType(id: number): PieceType {
    this.checkId(id);
    return this.types[id] as PieceType;
  }

  pieceScore(id: number): number {
    this.checkId(id);
    return this.scores[id];
  }

  isControl(id: number): boolean {
    return id >= 0 && id < this.vocabSize && this.types[id] === PieceType.CONTROL;
  }

  isByte(id: number): boolean {
    return id >= 0 && id < this.vocabSize && this.types[id] === PieceType.BYTE;
  }

  /** Byte value of a <0xXX> piece, or -1. */
  byteValue(id: number): number {
    return id >= 0 && id < this.vocabSize ? this.idToByte[id] : -1;
  }

  /** Drops the per-word cache (only useful for benchmarking a cold tokenizer). */
  clearCache(): void {
    this.cache = new Map();
    this.cacheSize = 0;
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new OpenELMError('tokenizer', `token id ${id} is out of range [0, ${this.vocabSize})`);
    }
  }

  /** SentencePiece normalization for the identity normalizer. */
  normalize(text: string): string {
    if (text.length === 0) return '';
    let t = text;
    if (this.removeExtraWhitespaces) {
      t = t.replace(/ +/g, ' ');
      let a = 0;
      let b = t.length;
      if (t.charCodeAt(0) === 0x20) a = 1;
      if (b > a && t.charCodeAt(b - 1) === 0x20) b--;
      t = t.slice(a, b);
      if (t.length === 0) return '';
    }
    const space = this.escapeWhitespaces ? SPACE_SYMBOL : ' ';
    if (this.escapeWhitespaces) t = t.replaceAll(' ', SPACE_SYMBOL);
    return this.addDummyPrefix ? space + t : t;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.bos && this.bosId >= 0) out.push(this.bosId);
    this.encodeNormalized(this.normalize(text), out);
    if (!this.byteFallback) collapseUnknownRuns(out, this.unkId, opts.bos && this.bosId >= 0 ? 1 : 0);
    if (opts.eos && this.eosId >= 0) out.push(this.eosId);
    return out;
  }

  private ensureSegmentCapacity(n: number): void {
    if (this.segSym.length >= n) return;
    let cap = this.segSym.length;
    while (cap < n) cap *= 2;
    const grow = (a: Int32Array): Int32Array => {
      const b = new Int32Array(cap);
      b.set(a);
      return b;
    };
    this.segSym = grow(this.segSym);
    this.segCp = grow(this.segCp);
    this.symLen = new Int32Array(cap);
    this.symPrev = new Int32Array(cap);
    this.symNext = new Int32Array(cap);
    this.heapScore = new Float64Array(3 * cap);
    this.heapLeft = new Int32Array(3 * cap);
    this.heapRight = new Int32Array(3 * cap);
    this.heapSize = new Int32Array(3 * cap);
    this.heapMerged = new Int32Array(3 * cap);
  }

  private encodeNormalized(norm: string, out: number[]): void {
    const n = norm.length;
    const bmp = this.bmpSymbol;
    const bigrams = this.bigrams;
    let count = 0;
    let segStart = 0;
    let prev = -1;
    let hash = 0;
    let i = 0;
    while (i < n) {
      let cp = norm.charCodeAt(i);
      let w = 1;
      if (cp >= 0xd800 && cp <= 0xdfff) {
        // A JS string may hold a lone surrogate; it becomes U+FFFD, as TextEncoder would encode it
        // and as SentencePiece's normalizer replaces malformed UTF-8.
        const d = i + 1 < n ? norm.charCodeAt(i + 1) : 0;
        if (cp <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
          cp = ((cp - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
          w = 2;
        } else {
          cp = 0xfffd;
        }
      }
      const s = cp < 0x10000 ? bmp[cp] : (this.astralSymbol.get(cp) ?? -1);
      if (count > 0 && (s < 0 || prev < 0 || bigrams.get(prev, s) < 0)) {
        this.encodePart(norm, segStart, i, count, hash, out);
        segStart = i;
        count = 0;
        hash = 0;
      }
      hash = (Math.imul(hash, 0x01000193) ^ s) & 0x3fffffff;
      if (count >= this.segSym.length) this.ensureSegmentCapacity(count + 1);
      this.segSym[count] = s;
      this.segCp[count] = cp;
      count++;
      prev = s;
      i += w;
    }
    if (count > 0) this.encodePart(norm, segStart, n, count, hash, out);
  }

  /**
   * Encodes norm[start, end), whose `count` characters are in segSym/segCp. The cache is keyed by
   * the symbol sequence (hashed while scanning) rather than a substring, to avoid allocating one
   * string per word.
   */
  private encodePart(norm: string, start: number, end: number, count: number, hash: number, out: number[]): void {
    if (count === 1 && this.userDefined.size === 0) {
      this.emitSymbol(this.segSym[0], this.segCp[0], out, null);
      return;
    }
    const cacheable = count <= MAX_CACHED_PART && this.userDefined.size === 0;
    const sym = this.segSym;
    let head: CacheEntry | undefined;
    if (cacheable) {
      head = this.cache.get(hash);
      for (let e = head; e !== undefined; e = e.next) {
        const k = e.syms;
        if (k.length !== count) continue;
        let same = true;
        for (let j = 0; j < count; j++) {
          if (k[j] !== sym[j]) {
            same = false;
            break;
          }
        }
        if (same) {
          const ids = e.ids;
          for (let j = 0; j < ids.length; j++) out.push(ids[j]);
          return;
        }
      }
    }
    const syms = cacheable ? sym.slice(0, count) : null;
    const first = out.length;
    this.bpe(norm, start, end, count, out);
    if (syms !== null) {
      if (this.cacheSize >= MAX_CACHE_ENTRIES) {
        this.cache = new Map();
        this.cacheSize = 0;
        head = undefined;
      }
      this.cache.set(hash, { syms, ids: Int32Array.from(out.slice(first)), next: head });
      this.cacheSize++;
    }
  }

  /** SentencePiece's bpe_model.cc Encode on one part. */
  private bpe(norm: string, start: number, end: number, count: number, out: number[]): void {
    const sym = this.segSym;
    const cps = this.segCp;
    const len = this.symLen;
    const prev = this.symPrev;
    const next = this.symNext;
    if (this.userDefined.size > 0) count = this.splitUserDefined(norm, start, end, count);
    else for (let i = 0; i < count; i++) len[i] = 1;
    for (let i = 0; i < count; i++) {
      prev[i] = i - 1;
      next[i] = i + 1 < count ? i + 1 : -1;
    }

    const hScore = this.heapScore;
    const hLeft = this.heapLeft;
    const hRight = this.heapRight;
    const hSize = this.heapSize;
    const hMerged = this.heapMerged;
    const merges = this.merges;
    const scores = this.scores;
    let revMerge: Map<number, [number, number]> | null = null;
    let hn = 0;

    // Max-heap on (score desc, left asc).
    const before = (a: number, b: number): boolean =>
      hScore[a] > hScore[b] || (hScore[a] === hScore[b] && hLeft[a] < hLeft[b]);
    const swap = (a: number, b: number): void => {
      let t = hScore[a];
      hScore[a] = hScore[b];
      hScore[b] = t;
      t = hLeft[a];
      hLeft[a] = hLeft[b];
      hLeft[b] = t;
      t = hRight[a];
      hRight[a] = hRight[b];
      hRight[b] = t;
      t = hSize[a];
      hSize[a] = hSize[b];
      hSize[b] = t;
      t = hMerged[a];
      hMerged[a] = hMerged[b];
      hMerged[b] = t;
    };
    const push = (l: number, r: number): void => {
      const a = sym[l], b = sym[r];
      let m = merges.get(a, b) - 1;
      if (m < -1) m = this.mergeOf(a, b);
      if (m < 0) return;
      if (hn >= hScore.length) throw new Error('BPE heap overflow (bug)');
      let i = hn++;
      hScore[i] = scores[m];
      hLeft[i] = l;
      hRight[i] = r;
      hSize[i] = len[l] + len[r];
      hMerged[i] = m;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!before(i, p)) break;
        swap(i, p);
        i = p;
      }
      if (this.hasUnused && this.types[m] === PieceType.UNUSED) {
        revMerge ??= new Map();
        revMerge.set(m, [sym[l], sym[r]]);
      }
    };
    const pop = (): void => {
      hn--;
      if (hn > 0) {
        swap(0, hn);
        let i = 0;
        for (;;) {
          const a = 2 * i + 1;
          if (a >= hn) break;
          const b = a + 1;
          const c = b < hn && before(b, a) ? b : a;
          if (!before(c, i)) break;
          swap(c, i);
          i = c;
        }
      }
    };

    for (let i = 1; i < count; i++) push(i - 1, i);
    while (hn > 0) {
      const l = hLeft[0];
      const r = hRight[0];
      const size = hSize[0];
      const m = hMerged[0];
      pop();
      // Stale entry: one side was merged away or grew since the pair was queued.
      if (len[l] === 0 || len[r] === 0 || len[l] + len[r] !== size) continue;
      sym[l] = m;
      len[l] = size;
      len[r] = 0;
      const nr = next[r];
      next[l] = nr;
      if (nr >= 0) prev[nr] = l;
      if (prev[l] >= 0) push(prev[l], l);
      if (nr >= 0) push(l, nr);
    }
    for (let i = 0; i >= 0; i = next[i]) this.emitSymbol(sym[i], cps[i], out, revMerge);
  }

  /**
   * The mergeable piece whose text is that of symbol a followed by that of symbol b, or -1 (as
   * SentencePiece's PieceToId with IsNormal/IsUserDefined/IsUnused), remembered in `merges`. A
   * symbol's text is its piece's, or for a pseudo-symbol its character.
   */
  private mergeOf(a: number, b: number): number {
    // Only mergeable pieces and pseudo-symbols have merges (a user-defined match whose text a
    // reserved piece shadows is a reserved id here).
    if ((a < this.vocabSize && !isMergeable(this.types[a])) || (b < this.vocabSize && !isMergeable(this.types[b]))) {
      this.merges.set(a, b, 0);
      return -1;
    }
    const s = this.symbolText(a) + this.symbolText(b);
    const found = this.pieceIds.find(s);
    let m = found >= 0 && isMergeable(this.types[found]) ? found : -1;
    if (m < 0 && this.shadowed.size > 0) m = this.shadowed.get(s) ?? -1;
    this.merges.set(a, b, m + 1);
    return m;
  }

  private symbolText(s: number): string {
    return s < this.vocabSize ? this.table.piece(s) : String.fromCodePoint(this.extraSymbolChar[s - this.vocabSize]);
  }

  /** Re-splits the part's characters into initial symbols, matching user-defined pieces greedily. */
  private splitUserDefined(norm: string, start: number, end: number, count: number): number {
    const chars = Array.from(this.segSym.subarray(0, count));
    const charCps = Array.from(this.segCp.subarray(0, count));
    let k = 0;
    let ci = 0;
    let pos = start;
    while (pos < end) {
      const cands = this.userDefined.get(norm.charCodeAt(pos));
      let matched = '';
      if (cands) for (const c of cands) if (c.length <= end - pos && norm.startsWith(c, pos)) { matched = c; break; }
      if (matched) {
        const nChars = Array.from(matched).length;
        this.segSym[k] = this.pieceIds.find(matched);
        this.segCp[k] = charCps[ci];
        this.symLen[k] = nChars;
        ci += nChars;
        pos += matched.length;
      } else {
        this.segSym[k] = chars[ci];
        this.segCp[k] = charCps[ci];
        this.symLen[k] = 1;
        pos += charCps[ci] > 0xffff ? 2 : 1;
        ci++;
      }
      k++;
    }
    return k;
  }

  /**
   * Output for one final symbol: a mergeable piece id as is (UNUSED pieces re-split into the pair
   * that formed them), anything else through PieceToId and, for unknowns, byte fallback.
   */
  private emitSymbol(s: number, cp: number, out: number[], revMerge: Map<number, [number, number]> | null): void {
    if (s >= 0 && s < this.vocabSize) {
      if (this.hasUnused && this.types[s] === PieceType.UNUSED) {
        const pair = revMerge?.get(s);
        if (pair) {
          this.emitSymbol(pair[0], this.symbolChar(pair[0]), out, revMerge);
          this.emitSymbol(pair[1], this.symbolChar(pair[1]), out, revMerge);
          return;
        }
      }
      out.push(s);
      return;
    }
    const found = this.pieceIds.findCodePoint(cp);
    const id = found >= 0 ? found : this.unkId;
    if (id !== this.unkId || !this.byteFallback) {
      out.push(id);
      return;
    }
    const bytes: number[] = [];
    pushUtf8(cp, bytes);
    for (const b of bytes) out.push(this.byteToId[b]);
  }

  private symbolChar(s: number): number {
    if (s >= this.vocabSize) return this.extraSymbolChar[s - this.vocabSize];
    return this.table.text.codePointAt(this.table.start[s])!;
  }

  /** Text of one non-byte piece, following SentencePiece's DecodeSentencePiece. */
  decodePiece(id: number, isBosWs: boolean, skipSpecial: boolean): { text: string; bosWsSeen: boolean } {
    const type = this.types[id];
    if (type === PieceType.CONTROL) return { text: skipSpecial ? '' : this.table.piece(id), bosWsSeen: false };
    if (type === PieceType.UNKNOWN) return { text: this.unkSurface, bosWsSeen: false };
    let piece = this.table.piece(id);
    let seen = false;
    if (isBosWs && (this.addDummyPrefix || this.removeExtraWhitespaces) && piece.startsWith(SPACE_SYMBOL)) {
      piece = piece.slice(SPACE_SYMBOL.length);
      seen = !this.removeExtraWhitespaces;
    }
    return { text: piece.replaceAll(SPACE_SYMBOL, ' '), bosWsSeen: seen };
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const skipSpecial = opts.skipSpecial ?? true;
    let text = '';
    let isBosWs = true;
    let bosWsSeen = false;
    const bytes: number[] = [];
    for (const id of ids) {
      this.checkId(id);
      const b = this.idToByte[id];
      if (b >= 0) {
        bytes.push(b);
        continue;
      }
      if (bytes.length > 0) {
        text += decodeByteRun(bytes, 0, bytes.length);
        bytes.length = 0;
      }
      if (bosWsSeen || text.length > 0) isBosWs = false;
      const r = this.decodePiece(id, isBosWs, skipSpecial);
      bosWsSeen = r.bosWsSeen;
      text += r.text;
    }
    if (bytes.length > 0) text += decodeByteRun(bytes, 0, bytes.length);
    return text;
  }
}

interface CacheEntry {
  syms: Int32Array;
  ids: Int32Array;
  /** Next entry with the same hash. */
  next: CacheEntry | undefined;
}

/** In SentencePiece without byte fallback, a run of unknown pieces is reported as one <unk>. */
function collapseUnknownRuns(ids: number[], unkId: number, from: number): void {
  let w = from;
  for (let r = from; r < ids.length; r++) {
    if (ids[r] === unkId && w > from && ids[w - 1] === unkId) continue;
    ids[w++] = ids[r];
  }
  ids.length = w;
}

/**
 * Gives each character that occurs inside a mergeable piece without being a piece itself a
 * pseudo-symbol (n, n + 1, ... in order of first occurrence) and fills the table of adjacent-character
 * pairs inside mergeable pieces: one pass over the pieces' text. The merge table is not built here
 * (Tokenizer.mergeOf finds a pair's merge on first use). A module function rather than constructor
 * code: it runs once per tokenizer, so it must get optimized (on-stack replacement) early, which a
 * small function does much sooner than the whole constructor.
 */
function buildSymbols(t: PieceTable, bmp: Int32Array, astral: Map<number, number>, extraSymbolChar: number[], bigrams: PairTable): void {
  const text = t.text, start = t.start, types = t.types, n = t.size;
  for (let id = 0; id < n; id++) {
    const ty = types[id];
    if (!(ty === PieceType.NORMAL || ty === PieceType.USER_DEFINED || ty === PieceType.UNUSED)) continue;
    const e = start[id + 1];
    for (let j = start[id], a = -1; j < e;) {
      const cp = cpAt(text, j, e);
      let b = cp < 0x10000 ? bmp[cp] : (astral.get(cp) ?? -1);
      if (b < 0) {
        b = n + extraSymbolChar.length;
        extraSymbolChar.push(cp);
        if (cp < 0x10000) bmp[cp] = b;
        else astral.set(cp, b);
      }
      if (a >= 0) bigrams.set(a, b, 1);
      a = b;
      j += cp > 0xffff ? 2 : 1;
    }
  }
}

/**
 * Code point at text[j], not pairing a surrogate across `end` (the end of its piece). Every test is
 * evaluated on every call: the construction loops are optimized while they run (on-stack replacement),
 * and a test first reached after that (the first surrogate, thousands of pieces in) would throw the
 * optimized loop away for lack of type feedback.
 */
function cpAt(text: string, j: number, end: number): number {
  const c = text.charCodeAt(j);
  const d = text.charCodeAt(j + 1) | 0; // NaN past the end of the text -> 0
  const high = (c & 0xfc00) === 0xd800, low = (d & 0xfc00) === 0xdc00, inside = j + 1 < end;
  const pair = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
  return high && low && inside ? pair : c;
}
