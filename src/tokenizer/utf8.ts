// UTF-8 handling that matches SentencePiece byte for byte. TextDecoder is not used for byte-fallback
// runs because its replacement policy (one U+FFFD per maximal invalid subpart) differs from
// SentencePiece's (one U+FFFD per invalid byte, overlongs and surrogates rejected).

export const REPLACEMENT_CHAR = '\uFFFD';

/** Bytes a sequence starting with `lead` claims to have; 0 for a byte that cannot start one. */
export function utf8SequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if ((lead & 0xe0) === 0xc0) return 2;
  if ((lead & 0xf0) === 0xe0) return 3;
  if ((lead & 0xf8) === 0xf0) return 4;
  return 0;
}

function isTrail(b: number): boolean {
  return (b & 0xc0) === 0x80;
}

function isValidCodepoint(cp: number): boolean {
  return cp < 0xd800 || (cp >= 0xe000 && cp <= 0x10ffff);
}

/**
 * SentencePiece's DecodeUTF8 on bytes[off, end). When a valid character starts at `off` it returns
 * `(length << 21) | codePoint` (length 1..4); otherwise -1, meaning exactly one byte is consumed and
 * becomes U+FFFD.
 */
export function decodeUtf8At(bytes: ArrayLike<number>, off: number, end: number): number {
  const len = end - off;
  const b0 = bytes[off];
  if (b0 < 0x80) {
    return (1 << 21) | b0;
  }
  if (len >= 2 && (b0 & 0xe0) === 0xc0) {
    const b1 = bytes[off + 1];
    const cp = ((b0 & 0x1f) << 6) | (b1 & 0x3f);
    if (isTrail(b1) && cp >= 0x80 && isValidCodepoint(cp)) {
      return (2 << 21) | cp;
    }
  } else if (len >= 3 && (b0 & 0xf0) === 0xe0) {
    const b1 = bytes[off + 1];
    const b2 = bytes[off + 2];
    const cp = ((b0 & 0x0f) << 12) | ((b1 & 0x3f) << 6) | (b2 & 0x3f);
    if (isTrail(b1) && isTrail(b2) && cp >= 0x800 && isValidCodepoint(cp)) {
      return (3 << 21) | cp;
    }
  } else if (len >= 4 && (b0 & 0xf8) === 0xf0) {
    const b1 = bytes[off + 1];
    const b2 = bytes[off + 2];
    const b3 = bytes[off + 3];
    const cp = ((b0 & 0x07) << 18) | ((b1 & 0x3f) << 12) | ((b2 & 0x3f) << 6) | (b3 & 0x3f);
    if (isTrail(b1) && isTrail(b2) && isTrail(b3) && cp >= 0x10000 && isValidCodepoint(cp)) {
      return (4 << 21) | cp;
    }
  }
  return -1;
}

/** Decodes a complete run of byte-fallback bytes the way SentencePiece's decoder does. */
export function decodeByteRun(bytes: ArrayLike<number>, start: number, end: number): string {
  return decodeUtf8Run(bytes, start, end, false).text;
}

/**
 * decodeByteRun over bytes[start, end), optionally stopping before a sequence that more bytes
 * could still complete (`keepIncomplete`); `next` is where decoding stopped.
 */
export function decodeUtf8Run(bytes: ArrayLike<number>, start: number, end: number, keepIncomplete: boolean): { text: string; next: number } {
  let s = '';
  let off = start;
  while (off < end) {
    if (keepIncomplete && isIncompletePrefix(bytes, off, end)) break;
    const r = decodeUtf8At(bytes, off, end);
    if (r < 0) {
      s += REPLACEMENT_CHAR;
      off += 1;
    } else {
      s += String.fromCodePoint(r & 0x1fffff);
      off += r >>> 21;
    }
  }
  return { text: s, next: off };
}

/**
 * Whether bytes[off, end) could still become a valid character if more bytes arrived. Used by the
 * stream decoder to hold back a partial sequence instead of emitting U+FFFD for it.
 */
export function isIncompletePrefix(bytes: ArrayLike<number>, off: number, end: number): boolean {
  const need = utf8SequenceLength(bytes[off]);
  if (need === 0 || end - off >= need) return false;
  for (let i = off + 1; i < end; i++) if (!isTrail(bytes[i])) return false;
  return true;
}

/** Appends the UTF-8 bytes of one code point to `out`. */
export function pushUtf8(cp: number, out: number[]): void {
  if (cp < 0x80) out.push(cp);
  else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
  else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  else {
    out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  }
}
