// A tokenizer saved whole: its pieces (PieceTable) and what the constructor derives from them
// (TokenizerState), for the bundled Llama-2 tokenizer (assets/tokenizer/tokenizer.table, written by
// scripts/make-tokenizer-table.mjs from assets/tokenizer/tokenizer.model). Building a Tokenizer runs
// per-piece loops once per process, mostly before V8 has optimized them (docs/architecture.md,
// "Construction time"); restoring these arrays skips them. The table is used only for a
// tokenizer.model whose bytes have the SHA-256 it was made from, or (GGUF) for pieces equal to its
// own, so it gives exactly the tokenizer the constructor would build.
//
// Layout: "OETOKTB1", u32 length of a JSON header, the header, then the arrays at the offsets the
// header gives (4-byte aligned, little-endian as the typed arrays of every platform Node runs on).

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { OpenELMError } from '../core/errors.js';
import { PieceTable } from '../tokenizer/piece-table.js';
import { pyLen } from '../core/pystr.js';
import type { NormalizerSpec, TrainerSpec } from '../tokenizer/sentencepiece-model.js';
import { Tokenizer, type TokenizerState } from '../tokenizer/tokenizer.js';

const MAGIC = 'OETOKTB1';

interface Header {
  /** SHA-256 (hex) and length of the tokenizer.model the table was made from. */
  sha256: string;
  sourceBytes: number;
  trainerSpec: TrainerSpec;
  normalizerSpec: NormalizerSpec;
  astral: [number, number][];
  extraSymbolChar: number[];
  shadowed: [string, number][];
  userDefined: [number, string[]][];
  hasUnused: boolean;
  /** The longest piece in code points (Python's len). */
  longestPiece: number;
  /** name -> [byte offset from the file's start, byte length] */
  arrays: Record<string, [number, number]>;
}

export interface TokenizerTable {
  sha256: string;
  sourceBytes: number;
  trainerSpec: TrainerSpec;
  normalizerSpec: NormalizerSpec;
  table: PieceTable;
  /** The pieces as a GGUF stores them (tokenizer.ggml.tokens: each a u64 length and its UTF-8). */
  ggufTokens: Uint8Array;
  /** The longest piece in code points (Python's len). */
  longestPiece: number;
  state: TokenizerState;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * The pieces as a GGUF's tokenizer.ggml.tokens stores them (each a u64 length and its UTF-8): a GGUF
 * of this vocabulary is recognized by comparing its bytes with these, no piece decoded.
 */
function ggufStrings(t: PieceTable): Uint8Array {
  const enc = new TextEncoder(), pieces: Uint8Array[] = [];
  let n = 0;
  for (let i = 0; i < t.size; i++) {
    const b = enc.encode(t.piece(i));
    pieces.push(b);
    n += 8 + b.length;
  }
  const out = new Uint8Array(n), dv = new DataView(out.buffer);
  let at = 0;
  for (const b of pieces) {
    dv.setBigUint64(at, BigInt(b.length), true);
    out.set(b, at + 8);
    at += 8 + b.length;
  }
  return out;
}

function longestPiece(t: PieceTable): number {
  let n = 0;
  for (let i = 0; i < t.size; i++) n = Math.max(n, pyLen(t.piece(i)));
  return n;
}

/** The table of `tok`, built from the tokenizer.model `source`. */
export function encodeTokenizerTable(tok: Tokenizer, source: Uint8Array): Uint8Array {
  const t = tok.pieceTable, st = tok.state, m = tok.model;
  const parts: [string, Uint8Array][] = [
    ['text', new TextEncoder().encode(t.text)],
    ['start', new Uint8Array(t.start.buffer, t.start.byteOffset, t.start.byteLength)],
    ['scores', new Uint8Array(t.scores.buffer, t.scores.byteOffset, t.scores.byteLength)],
    ['types', t.types],
    ['slots', new Uint8Array(st.slots.buffer, st.slots.byteOffset, st.slots.byteLength)],
    ['bmp', new Uint8Array(st.bmp.buffer, st.bmp.byteOffset, st.bmp.byteLength)],
    ['bigrams', new Uint8Array(st.bigrams.buffer, st.bigrams.byteOffset, st.bigrams.byteLength)],
    ['byteToId', new Uint8Array(st.byteToId.buffer, st.byteToId.byteOffset, st.byteToId.byteLength)],
    ['ggufTokens', ggufStrings(t)],
  ];
  const header = (arrays: Record<string, [number, number]>): Header => ({
    sha256: sha256Hex(source), sourceBytes: source.length, trainerSpec: m.trainerSpec, normalizerSpec: m.normalizerSpec,
    astral: st.astral, extraSymbolChar: st.extraSymbolChar, shadowed: st.shadowed, userDefined: st.userDefined,
    hasUnused: st.hasUnused, longestPiece: longestPiece(t), arrays,
  });
  const align = (x: number): number => (x + 3) & ~3;
  // The header's length depends on the offsets it lists: reserve room for it, lay the arrays out
  // after that, and pad the header with spaces (JSON whitespace) to the room reserved.
  let room = align(new TextEncoder().encode(JSON.stringify(header({}))).length + 256);
  let arrays: Record<string, [number, number]>, json: Uint8Array;
  for (;;) {
    arrays = {};
    let at = 12 + room;
    for (const [name, bytes] of parts) {
      arrays[name] = [at, bytes.length];
      at = align(at + bytes.length);
    }
    const enc = new TextEncoder().encode(JSON.stringify(header(arrays)));
    if (enc.length <= room) {
      json = new Uint8Array(room).fill(0x20);
      json.set(enc);
      break;
    }
    room = align(enc.length + 256);
  }
  const end = Math.max(...Object.values(arrays).map(([o, l]) => o + l));
  const out = new Uint8Array(end);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(8, json.length, true);
  out.set(json, 12);
  for (const [name, bytes] of parts) out.set(bytes, arrays[name][0]);
  return out;
}

/** `handOver`: the table may keep views into `bytes` (the caller does not change them afterwards). */
export function decodeTokenizerTable(bytes: Uint8Array, name: string, handOver = false): TokenizerTable {
  const bad = (why: string): never => {
    throw new OpenELMError('tokenizer', `tokenizer table ${name}: ${why}`);
  };
  if (bytes.length < 12 || new TextDecoder().decode(bytes.subarray(0, 8)) !== MAGIC) bad('not a tokenizer table');
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, true);
  let h: Header;
  try {
    h = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + len))) as Header;
  } catch {
    return bad('its header is not JSON (a damaged file)');
  }
  // Views into the bytes themselves when the caller hands them over 4-byte aligned (the bundled
  // file, read into a buffer of its own: no copy of its 1.2 MB), else into one aligned copy.
  let buf = bytes;
  if (!handOver || bytes.byteOffset % 4 !== 0) {
    buf = new Uint8Array(bytes.length);
    buf.set(bytes);
  }
  const view = <T>(key: string, make: (b: ArrayBufferLike, off: number, n: number) => T, size: number): T => {
    const [off, n] = h.arrays[key] ?? bad(`no array ${key}`);
    if (off % 4 !== 0 || n % size !== 0 || off + n > buf.length) bad(`array ${key} out of bounds`);
    return make(buf.buffer, buf.byteOffset + off, n / size);
  };
  const i32 = (key: string): Int32Array => view(key, (b, o, n) => new Int32Array(b, o, n), 4);
  const [to, tn] = h.arrays.text;
  const table = new PieceTable(
    new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buf.subarray(to, to + tn)),
    i32('start'),
    view('scores', (b, o, n) => new Float32Array(b, o, n), 4),
    view('types', (b, o, n) => new Uint8Array(b, o, n), 1),
  );
  if (table.start.length !== table.size + 1 || table.types.length !== table.size || table.start[table.size] !== table.text.length) bad('inconsistent piece arrays');
  return {
    sha256: h.sha256, sourceBytes: h.sourceBytes, trainerSpec: h.trainerSpec, normalizerSpec: h.normalizerSpec, table,
    ggufTokens: view('ggufTokens', (b, o, n) => new Uint8Array(b, o, n), 1),
    longestPiece: typeof h.longestPiece === 'number' ? h.longestPiece : bad('no longestPiece'),
    state: {
      slots: i32('slots'), bmp: i32('bmp'), astral: h.astral, extraSymbolChar: h.extraSymbolChar, bigrams: i32('bigrams'),
      shadowed: h.shadowed, userDefined: h.userDefined, hasUnused: h.hasUnused, byteToId: i32('byteToId'),
    },
  };
}

const TABLE_CANDIDATES = [
  new URL('../../../assets/tokenizer/tokenizer.table', import.meta.url),
  new URL('../../assets/tokenizer/tokenizer.table', import.meta.url),
];

let bundled: TokenizerTable | null | undefined;

/** The bundled tokenizer's table, or null when the package has none (then tokenizers are built as always). */
export function bundledTokenizerTable(): TokenizerTable | null {
  if (bundled !== undefined) return bundled;
  bundled = null;
  for (const u of TABLE_CANDIDATES) {
    let bytes: Uint8Array;
    try {
      bytes = fs.readFileSync(u);
    } catch {
      continue;
    }
    bundled = decodeTokenizerTable(bytes, u.href, true);
    break;
  }
  return bundled;
}

/** The tokenizer of a tokenizer.model's bytes from the bundled table, when they are the bytes it was made from; else undefined. */
export function tokenizerFromTable(bytes: Uint8Array, source: string): Tokenizer | undefined {
  const tt = bundledTokenizerTable();
  if (tt === null || bytes.length !== tt.sourceBytes || sha256Hex(bytes) !== tt.sha256) return undefined;
  return new Tokenizer({ table: tt.table, trainerSpec: tt.trainerSpec, normalizerSpec: tt.normalizerSpec }, source, tt.state);
}

const sameBytes = (a: ArrayBufferView, b: ArrayBufferView): boolean =>
  a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** The bundled table's derived state when `t` holds exactly its pieces (a GGUF of the Llama-2 vocabulary); else undefined. */
export function tableStateFor(t: PieceTable): TokenizerState | undefined {
  const tt = bundledTokenizerTable();
  if (tt !== null && t === tt.table) return tt.state;
  if (tt === null || t.size !== tt.table.size || t.text !== tt.table.text) return undefined;
  if (!sameBytes(t.start, tt.table.start) || !sameBytes(t.scores, tt.table.scores) || !sameBytes(t.types, tt.table.types)) return undefined;
  return tt.state;
}

/**
 * The bundled table when a GGUF vocabulary is exactly its pieces, compared as the file stores them
 * (one memcmp each): the serialized tokens (u64 length and UTF-8 of each, GGUFPackedVocabulary's
 * `raw`), the f32 scores and the i32 types bit for bit; else undefined. No piece is decoded.
 */
export function bundledTableIfSame(rawTokens: Uint8Array, scores: Float32Array, types: Int32Array): TokenizerTable | undefined {
  const tt = bundledTokenizerTable();
  if (tt === null || scores.length !== tt.table.size || types.length !== tt.table.size || !sameBytes(rawTokens, tt.ggufTokens)) return undefined;
  // the table's u8 types widened to the file's i32 (a native conversion, no loop here)
  if (!sameBytes(scores, tt.table.scores) || !sameBytes(types, new Int32Array(tt.table.types))) return undefined;
  return tt;
}
