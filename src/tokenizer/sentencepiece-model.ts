// Reads a SentencePiece `ModelProto` (the `tokenizer.model` file) without a protobuf library.
// Only the fields the BPE encoder/decoder needs are decoded; everything else is skipped by wire type.
// Field numbers are those of sentencepiece_model.proto:
//   ModelProto     { repeated SentencePiece pieces = 1; TrainerSpec trainer_spec = 2; NormalizerSpec normalizer_spec = 3; }
//   SentencePiece  { string piece = 1; float score = 2; Type type = 3 [default NORMAL]; }
//   TrainerSpec    { model_type = 3; vocab_size = 4; max_sentencepiece_length = 20;
//                    treat_whitespace_as_suffix = 24; split_digits = 25; byte_fallback = 35;
//                    unk_id = 40; bos_id = 41; eos_id = 42; pad_id = 43; unk_surface = 44;
//                    unk_piece = 45; bos_piece = 46; eos_piece = 47; pad_piece = 48; }
//   NormalizerSpec { name = 1; precompiled_charsmap = 2; add_dummy_prefix = 3;
//                    remove_extra_whitespaces = 4; escape_whitespaces = 5; }

import { OpenELMError } from '../core/errors.js';
import { PieceTable } from './piece-table.js';

export enum PieceType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

export enum ModelType {
  UNIGRAM = 1,
  BPE = 2,
  WORD = 3,
  CHAR = 4,
}

export interface SentencePiece {
  piece: string;
  score: number;
  type: PieceType;
}

export interface TrainerSpec {
  modelType: ModelType;
  vocabSize: number;
  maxSentencepieceLength: number;
  treatWhitespaceAsSuffix: boolean;
  splitDigits: boolean;
  byteFallback: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  unkSurface: string;
  unkPiece: string;
  bosPiece: string;
  eosPiece: string;
  padPiece: string;
}

export interface NormalizerSpec {
  name: string;
  precompiledCharsmapLength: number;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

export interface SentencePieceModel {
  pieces: SentencePiece[];
  trainerSpec: TrainerSpec;
  normalizerSpec: NormalizerSpec;
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

// ignoreBOM: piece 30143 of Llama-2 is U+FEFF itself, which a default TextDecoder would strip.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// Reading a float from its little-endian bits without a DataView per value (one per piece adds up).
const floatBits = new Int32Array(1);
const floatView = new Float32Array(floatBits.buffer);
function bitsToFloat(bits: number): number {
  floatBits[0] = bits;
  return floatView[0];
}

/** Thrown inside the reader; converted to an OpenELMError naming the source by the caller. */
class WireError extends Error {}

class WireReader {
  pos: number;
  constructor(
    private readonly buf: Uint8Array,
    start: number,
    public end: number,
  ) {
    this.pos = start;
  }

  done(): boolean {
    return this.pos >= this.end;
  }

  /**
   * Varints can be 10 bytes (negative int32 such as pad_id = -1 is sign-extended to 64 bits), so
   * only the low 32 bits are kept exactly, which is all int32/enum/bool fields need.
   */
  varint(): number {
    let lo = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new WireError(`truncated varint at byte ${this.pos}`);
      const b = this.buf[this.pos++];
      if (shift < 32) lo |= (b & 0x7f) << shift;
      shift += 7;
      if ((b & 0x80) === 0) return lo >>> 0;
    }
    throw new WireError(`varint longer than 10 bytes at byte ${this.pos}`);
  }

  int32(): number {
    return this.varint() | 0;
  }

  bool(): boolean {
    return this.varint() !== 0;
  }

  float32(): number {
    if (this.pos + 4 > this.end) throw new WireError(`truncated float at byte ${this.pos}`);
    const b = this.buf, p = this.pos;
    this.pos += 4;
    return bitsToFloat(b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24));
  }

  /** Returns [start, end) of a length-delimited field and advances past it. */
  lengthDelimited(): [number, number] {
    const start = this.skipLength();
    return [start, this.pos];
  }

  string(): string {
    const [s, e] = this.lengthDelimited();
    try {
      return utf8.decode(this.buf.subarray(s, e));
    } catch {
      throw new WireError(`string at byte ${s} is not valid UTF-8`);
    }
  }

  sub(): WireReader {
    const [s, e] = this.lengthDelimited();
    return new WireReader(this.buf, s, e);
  }

  /** Points this reader at [start, end) of the same buffer. */
  reset(start: number, end: number): void {
    this.pos = start;
    this.end = end;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_I64:
        if (this.pos + 8 > this.end) throw new WireError(`truncated fixed64 at byte ${this.pos}`);
        this.pos += 8;
        return;
      case WIRE_LEN:
        this.lengthDelimited();
        return;
      case WIRE_I32:
        if (this.pos + 4 > this.end) throw new WireError(`truncated fixed32 at byte ${this.pos}`);
        this.pos += 4;
        return;
      default:
        throw new WireError(`unsupported wire type ${wireType} at byte ${this.pos}`);
    }
  }

  key(): [number, number] {
    const k = this.keyNumber();
    return [k >>> 3, k & 7];
  }

  /** A field key as one number: field << 3 | wire type. */
  keyNumber(): number {
    const k = this.varint();
    if (k >>> 3 === 0) throw new WireError(`invalid field number 0 at byte ${this.pos}`);
    return k;
  }

  /** lengthDelimited without the array: returns the start and leaves `pos` at the end. */
  skipLength(): number {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) {
      throw new WireError(`length-delimited field of ${len} bytes at byte ${start} runs past the end`);
    }
    this.pos = start + len;
    return start;
  }
}

function expectWire(field: string, got: number, want: number, r: WireReader): void {
  if (got !== want) throw new WireError(`field ${field} has wire type ${got}, expected ${want} (byte ${r.pos})`);
}

/** One piece as stored: its UTF-8 bytes [start, end) in the model's buffer, not yet decoded. */
interface RawPiece { start: number; end: number; score: number; type: PieceType }

function readPiece(r: WireReader, index: number, out: RawPiece): void {
  let found = false;
  out.start = out.end = 0;
  out.score = 0;
  out.type = PieceType.NORMAL;
  while (!r.done()) {
    // keyNumber/skipLength instead of key()/lengthDelimited(): no array per field (four per piece).
    const k = r.keyNumber(), f = k >>> 3, w = k & 7;
    if (f === 1) {
      expectWire('SentencePiece.piece', w, WIRE_LEN, r);
      out.start = r.skipLength();
      out.end = r.pos;
      found = true;
    } else if (f === 2) {
      expectWire('SentencePiece.score', w, WIRE_I32, r);
      out.score = r.float32();
    } else if (f === 3) {
      expectWire('SentencePiece.type', w, WIRE_VARINT, r);
      out.type = r.varint() as PieceType;
      if (out.type < PieceType.NORMAL || out.type > PieceType.BYTE) throw new WireError(`piece ${index} has unknown type ${out.type}`);
    } else {
      r.skip(w);
    }
  }
  if (!found || out.end === out.start) throw new WireError(`piece ${index} has an empty piece string`);
}

function defaultTrainerSpec(): TrainerSpec {
  // Defaults from sentencepiece_model.proto (proto2 defaults apply when a field is absent).
  return {
    modelType: ModelType.UNIGRAM,
    vocabSize: 8000,
    maxSentencepieceLength: 16,
    treatWhitespaceAsSuffix: false,
    splitDigits: false,
    byteFallback: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkSurface: ' \u2047 ',
    unkPiece: '<unk>',
    bosPiece: '<s>',
    eosPiece: '</s>',
    padPiece: '<pad>',
  };
}

function readTrainerSpec(r: WireReader): TrainerSpec {
  const t = defaultTrainerSpec();
  while (!r.done()) {
    const [f, w] = r.key();
    const v = w === WIRE_VARINT;
    const s = w === WIRE_LEN;
    if (f === 3 && v) t.modelType = r.varint() as ModelType;
    else if (f === 4 && v) t.vocabSize = r.int32();
    else if (f === 20 && v) t.maxSentencepieceLength = r.int32();
    else if (f === 24 && v) t.treatWhitespaceAsSuffix = r.bool();
    else if (f === 25 && v) t.splitDigits = r.bool();
    else if (f === 35 && v) t.byteFallback = r.bool();
    else if (f === 40 && v) t.unkId = r.int32();
    else if (f === 41 && v) t.bosId = r.int32();
    else if (f === 42 && v) t.eosId = r.int32();
    else if (f === 43 && v) t.padId = r.int32();
    else if (f === 44 && s) t.unkSurface = r.string();
    else if (f === 45 && s) t.unkPiece = r.string();
    else if (f === 46 && s) t.bosPiece = r.string();
    else if (f === 47 && s) t.eosPiece = r.string();
    else if (f === 48 && s) t.padPiece = r.string();
    else r.skip(w);
  }
  return t;
}

function readNormalizerSpec(r: WireReader): NormalizerSpec {
  const n: NormalizerSpec = {
    name: '',
    precompiledCharsmapLength: 0,
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
  while (!r.done()) {
    const [f, w] = r.key();
    if (f === 1 && w === WIRE_LEN) n.name = r.string();
    else if (f === 2 && w === WIRE_LEN) {
      const [s, e] = r.lengthDelimited();
      n.precompiledCharsmapLength = e - s;
    } else if (f === 3 && w === WIRE_VARINT) n.addDummyPrefix = r.bool();
    else if (f === 4 && w === WIRE_VARINT) n.removeExtraWhitespaces = r.bool();
    else if (f === 5 && w === WIRE_VARINT) n.escapeWhitespaces = r.bool();
    else r.skip(w);
  }
  return n;
}

/**
 * Walks a SentencePiece model's fields, handing each piece to `onPiece` (`raw` is reused: copy what
 * is kept; a WireError it throws is reported like the reader's own). Errors name `source`.
 */
function readModel(bytes: Uint8Array, source: string, onPiece: (raw: RawPiece, index: number) => void): { count: number; trainerSpec: TrainerSpec; normalizerSpec: NormalizerSpec } {
  if (bytes.length === 0) throw new OpenELMError('tokenizer', `tokenizer model ${source} is empty`);
  let count = 0;
  let trainerSpec: TrainerSpec | undefined;
  let normalizerSpec: NormalizerSpec | undefined;
  try {
    const r = new WireReader(bytes, 0, bytes.length);
    const pr = new WireReader(bytes, 0, 0);
    const raw: RawPiece = { start: 0, end: 0, score: 0, type: PieceType.NORMAL };
    while (!r.done()) {
      const k = r.keyNumber(), f = k >>> 3, w = k & 7;
      if (f === 1) {
        expectWire('ModelProto.pieces', w, WIRE_LEN, r);
        const s = r.skipLength();
        pr.reset(s, r.pos);
        readPiece(pr, count, raw);
        onPiece(raw, count++);
      } else if (f === 2) {
        expectWire('ModelProto.trainer_spec', w, WIRE_LEN, r);
        trainerSpec = readTrainerSpec(r.sub());
      } else if (f === 3) {
        expectWire('ModelProto.normalizer_spec', w, WIRE_LEN, r);
        normalizerSpec = readNormalizerSpec(r.sub());
      } else {
        r.skip(w);
      }
    }
  } catch (e) {
    if (e instanceof WireError) {
      throw new OpenELMError('tokenizer', `tokenizer model ${source} is malformed or truncated: ${e.message}`);
    }
    throw e;
  }
  if (count === 0) {
    throw new OpenELMError('tokenizer', `tokenizer model ${source} has no pieces (not a SentencePiece model?)`);
  }
  // Every model SentencePiece writes has both specs after the pieces; their absence means the file
  // was cut at a field boundary.
  if (!trainerSpec || !normalizerSpec) {
    const missing = !trainerSpec ? 'trainer_spec' : 'normalizer_spec';
    throw new OpenELMError('tokenizer', `tokenizer model ${source} is truncated or malformed: no ${missing}`);
  }
  return { count, trainerSpec, normalizerSpec };
}

function pieceText(bytes: Uint8Array, raw: RawPiece): string {
  try {
    return utf8.decode(bytes.subarray(raw.start, raw.end));
  } catch {
    throw new WireError(`string at byte ${raw.start} is not valid UTF-8`);
  }
}

/**
 * Parses the bytes of a SentencePiece model. `source` (a path or a description) is only used in
 * error messages so the user can tell which file is at fault.
 */
export function parseSentencePieceModel(bytes: Uint8Array, source = '<bytes>'): SentencePieceModel {
  const pieces: SentencePiece[] = [];
  const { trainerSpec, normalizerSpec } = readModel(bytes, source, (raw) => {
    pieces.push({ piece: pieceText(bytes, raw), score: raw.score, type: raw.type });
  });
  return { pieces, trainerSpec, normalizerSpec };
}

/** A SentencePiece model with its pieces in a PieceTable (what the Tokenizer keeps). */
export interface CompactSentencePieceModel {
  table: PieceTable;
  trainerSpec: TrainerSpec;
  normalizerSpec: NormalizerSpec;
}

/**
 * parseSentencePieceModel without an object and a string per piece: the pieces' UTF-8 bytes are
 * gathered into one buffer and decoded once. Each piece is valid UTF-8 on its own exactly when the
 * whole is and no piece starts with a continuation byte (then every piece boundary is a character
 * boundary); otherwise the per-piece parser reports the first bad piece as it always has.
 */
export function parseSentencePieceTable(bytes: Uint8Array, source = '<bytes>'): CompactSentencePieceModel {
  let cap = 1024, utf8Len = 0;
  let ranges = new Int32Array(2 * cap), scores = new Float32Array(cap), types = new Uint8Array(cap);
  const { count: n, trainerSpec, normalizerSpec } = readModel(bytes, source, (raw, i) => {
    if (i === cap) {
      cap *= 2;
      const r2 = new Int32Array(2 * cap); r2.set(ranges); ranges = r2;
      const s2 = new Float32Array(cap); s2.set(scores); scores = s2;
      const t2 = new Uint8Array(cap); t2.set(types); types = t2;
    }
    ranges[2 * i] = raw.start;
    ranges[2 * i + 1] = raw.end;
    scores[i] = raw.score;
    types[i] = raw.type;
    utf8Len += raw.end - raw.start;
  });
  const all = new Uint8Array(utf8Len), start = new Int32Array(n + 1);
  let at = 0, units = 0, whole = true;
  for (let i = 0; i < n; i++) {
    const s = ranges[2 * i], e = ranges[2 * i + 1];
    if ((bytes[s] & 0xc0) === 0x80) whole = false;
    // Copied byte by byte: a subarray view per piece would be 32,000 short-lived objects.
    // UTF-16 units: one per UTF-8 lead byte, two for a 4-byte sequence (a surrogate pair).
    for (let j = s; j < e; j++) {
      const b = bytes[j];
      all[at++] = b;
      if ((b & 0xc0) !== 0x80) units += b >= 0xf0 ? 2 : 1;
    }
    start[i + 1] = units;
  }
  let text: string | undefined;
  if (whole) {
    try { text = utf8.decode(all); } catch { text = undefined; }
  }
  if (text === undefined || text.length !== units) {
    const m = parseSentencePieceModel(bytes, source);
    return { table: PieceTable.fromPieces(m.pieces), trainerSpec, normalizerSpec };
  }
  return { table: new PieceTable(text, start, scores.slice(0, n), types.slice(0, n)), trainerSpec, normalizerSpec };
}
