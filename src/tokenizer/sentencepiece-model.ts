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

/** Thrown inside the reader; converted to an OpenELMError naming the source by the caller. */
class WireError extends Error {}

class WireReader {
  pos: number;
  constructor(
    private readonly buf: Uint8Array,
    start: number,
    readonly end: number,
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
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }

  /** Returns [start, end) of a length-delimited field and advances past it. */
  lengthDelimited(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (len > this.end - start) {
      throw new WireError(`length-delimited field of ${len} bytes at byte ${start} runs past the end`);
    }
    this.pos = start + len;
    return [start, start + len];
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
    const k = this.varint();
    const field = k >>> 3;
    if (field === 0) throw new WireError(`invalid field number 0 at byte ${this.pos}`);
    return [field, k & 7];
  }
}

function expectWire(field: string, got: number, want: number, r: WireReader): void {
  if (got !== want) throw new WireError(`field ${field} has wire type ${got}, expected ${want} (byte ${r.pos})`);
}

function readPiece(r: WireReader, index: number): SentencePiece {
  let piece: string | undefined;
  let score = 0;
  let type = PieceType.NORMAL;
  while (!r.done()) {
    const [f, w] = r.key();
    if (f === 1) {
      expectWire('SentencePiece.piece', w, WIRE_LEN, r);
      piece = r.string();
    } else if (f === 2) {
      expectWire('SentencePiece.score', w, WIRE_I32, r);
      score = r.float32();
    } else if (f === 3) {
      expectWire('SentencePiece.type', w, WIRE_VARINT, r);
      type = r.varint() as PieceType;
      if (type < PieceType.NORMAL || type > PieceType.BYTE) throw new WireError(`piece ${index} has unknown type ${type}`);
    } else {
      r.skip(w);
    }
  }
  if (piece === undefined || piece.length === 0) throw new WireError(`piece ${index} has an empty piece string`);
  return { piece, score, type };
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
 * Parses the bytes of a SentencePiece model. `source` (a path or a description) is only used in
 * error messages so the user can tell which file is at fault.
 */
export function parseSentencePieceModel(bytes: Uint8Array, source = '<bytes>'): SentencePieceModel {
  if (bytes.length === 0) throw new OpenELMError('tokenizer', `tokenizer model ${source} is empty`);
  const pieces: SentencePiece[] = [];
  let trainerSpec: TrainerSpec | undefined;
  let normalizerSpec: NormalizerSpec | undefined;
  try {
    const r = new WireReader(bytes, 0, bytes.length);
    while (!r.done()) {
      const [f, w] = r.key();
      if (f === 1) {
        expectWire('ModelProto.pieces', w, WIRE_LEN, r);
        pieces.push(readPiece(r.sub(), pieces.length));
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
  if (pieces.length === 0) {
    throw new OpenELMError('tokenizer', `tokenizer model ${source} has no pieces (not a SentencePiece model?)`);
  }
  // Every model SentencePiece writes has both specs after the pieces; their absence means the file
  // was cut at a field boundary.
  if (!trainerSpec || !normalizerSpec) {
    const missing = !trainerSpec ? 'trainer_spec' : 'normalizer_spec';
    throw new OpenELMError('tokenizer', `tokenizer model ${source} is truncated or malformed: no ${missing}`);
  }
  return { pieces, trainerSpec, normalizerSpec };
}
