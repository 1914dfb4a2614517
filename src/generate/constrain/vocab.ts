// The vocabulary as byte strings, the way generated text is decoded, plus a byte trie over it.
//
// A SentencePiece piece is its text with U+2581 turned into a space; a <0xNN> token is the byte
// NN; control and unknown tokens produce no text a grammar could match and are never allowed
// (EOS is handled apart: allowed exactly when the value is complete). The first piece of a
// generation loses one leading space when decoded (SentencePiece's dummy prefix; see
// StreamDecoder), so the first token is matched by its `startBytes`.
//
// The trie stores the tokens sorted by bytes, in preorder: the tokens below a trie node are one
// contiguous run of the sorted order, so a rejected node rejects a whole run at once.

import { PieceType } from '../../tokenizer/sentencepiece-model.js';
import type { Tokenizer } from '../../tokenizer/tokenizer.js';

export interface TokenVocab {
  readonly size: number;
  /** The bytes a token adds to the text, or null for tokens a grammar never allows. */
  readonly bytes: ReadonlyArray<Uint8Array | null>;
  /** The same for the first token of a generation. */
  readonly startBytes: ReadonlyArray<Uint8Array | null>;
  /** End-of-sequence ids: allowed only once the value is complete. */
  readonly eosIds: readonly number[];
}

const utf8 = new TextEncoder();
const vocabCache = new WeakMap<Tokenizer, TokenVocab>();

/** The byte view of a SentencePiece tokenizer's vocabulary (computed once per tokenizer). */
export function tokenizerVocab(tok: Tokenizer): TokenVocab {
  let v = vocabCache.get(tok);
  if (v) return v;
  const n = tok.vocabSize;
  const bytes: Array<Uint8Array | null> = new Array(n).fill(null);
  const startBytes: Array<Uint8Array | null> = new Array(n).fill(null);
  for (let id = 0; id < n; id++) {
    const type = tok.pieceType(id);
    if (type === PieceType.BYTE) {
      bytes[id] = startBytes[id] = Uint8Array.of(tok.byteValue(id));
    } else if (type === PieceType.NORMAL || type === PieceType.USER_DEFINED) {
      bytes[id] = utf8.encode(tok.decodePiece(id, false, true).text);
      startBytes[id] = utf8.encode(tok.decodePiece(id, true, true).text);
    }
  }
  v = { size: n, bytes, startBytes, eosIds: tok.eosId >= 0 ? [tok.eosId] : [] };
  vocabCache.set(tok, v);
  return v;
}

export class TokenTrie {
  /** Token ids in byte order; the trie's token indices point into this. */
  readonly sortedIds: Int32Array;
  readonly sortedBytes: Uint8Array[];
  /** Trie nodes in preorder (the root is implicit, at depth 0). */
  readonly nodeByte: Uint8Array;
  readonly nodeDepth: Int32Array;
  /** Index just past the node's subtree. */
  readonly nodeEnd: Int32Array;
  /** Tokens spelled exactly by the node: sorted indices [tokLo, tokHi). */
  readonly tokLo: Int32Array;
  readonly tokHi: Int32Array;
  /** Tokens in the node's subtree: sorted indices [tokLo, subHi). */
  readonly subHi: Int32Array;
  /** Tokens with no bytes at all (spelled by the root). */
  readonly rootTokHi: number;
  readonly maxDepth: number;

  constructor(bytes: ReadonlyArray<Uint8Array | null>) {
    const ids: number[] = [];
    for (let i = 0; i < bytes.length; i++) if (bytes[i]) ids.push(i);
    // Latin-1 strings compare like their bytes, and much faster than byte arrays.
    const keys: string[] = new Array(bytes.length);
    for (const i of ids) {
      const b = bytes[i]!;
      let k = '';
      for (let j = 0; j < b.length; j++) k += String.fromCharCode(b[j]);
      keys[i] = k;
    }
    ids.sort((a, b) => (keys[a] < keys[b] ? -1 : keys[a] > keys[b] ? 1 : a - b));
    this.sortedIds = Int32Array.from(ids);
    this.sortedBytes = ids.map((i) => bytes[i]!);
    let total = 0, maxDepth = 0;
    for (const b of this.sortedBytes) { total += b.length; maxDepth = Math.max(maxDepth, b.length); }
    const nodeByte = new Uint8Array(total), nodeDepth = new Int32Array(total), nodeEnd = new Int32Array(total);
    const tokLo = new Int32Array(total), tokHi = new Int32Array(total), subHi = new Int32Array(total);
    const path: number[] = []; // trie node at each depth (index depth-1)
    let count = 0, rootTokHi = 0;
    let prev: Uint8Array = new Uint8Array(0);
    const close = (k: number) => { const n = path.pop()!; nodeEnd[n] = count; subHi[n] = k; };
    for (let k = 0; k < ids.length; k++) {
      const b = this.sortedBytes[k];
      let l = 0;
      while (l < b.length && l < prev.length && b[l] === prev[l]) l++;
      if (l === b.length && b.length === prev.length && k > 0) {
        // Same bytes as the previous token: same node.
        if (b.length === 0) rootTokHi = k + 1; else tokHi[path[path.length - 1]] = k + 1;
        continue;
      }
      while (path.length > l) close(k);
      for (let d = l; d < b.length; d++) {
        const n = count++;
        nodeByte[n] = b[d];
        nodeDepth[n] = d + 1;
        tokLo[n] = k;
        tokHi[n] = k;
        path.push(n);
      }
      if (b.length === 0) rootTokHi = k + 1;
      else tokHi[path[path.length - 1]] = k + 1;
      prev = b;
    }
    while (path.length) close(ids.length);
    this.nodeByte = nodeByte.slice(0, count);
    this.nodeDepth = nodeDepth.slice(0, count);
    this.nodeEnd = nodeEnd.slice(0, count);
    this.tokLo = tokLo.slice(0, count);
    this.tokHi = tokHi.slice(0, count);
    this.subHi = subHi.slice(0, count);
    this.rootTokHi = rootTokHi;
    this.maxDepth = maxDepth;
  }

  get nodeCount(): number { return this.nodeByte.length; }
}

const trieCache = new WeakMap<ReadonlyArray<Uint8Array | null>, TokenTrie>();

/** The trie of a byte table, built once per table (grammars compiled for one vocabulary share it). */
export function trieOf(bytes: ReadonlyArray<Uint8Array | null>): TokenTrie {
  let t = trieCache.get(bytes);
  if (!t) { t = new TokenTrie(bytes); trieCache.set(bytes, t); }
  return t;
}
