// Code point classes as byte-level automata. Grammars are matched byte by byte (tokens are byte
// strings and may end inside a character), so a class such as [^"\\] over code points becomes the
// set of UTF-8 byte sequences that encode exactly its members. Only well-formed UTF-8 is produced:
// no surrogates (U+D800..U+DFFF), no overlong forms, nothing above U+10FFFF, which is also what the
// tokenizer's decoder accepts as text (anything else it turns into U+FFFD).
//
// The split follows the classic construction (as in RE2 and Rust's regex-syntax): cut a range at
// the encoded-length boundaries, then wherever a lower continuation byte would not span its full
// 0x80..0xBF range, until every piece is a product of byte ranges.

export const MAX_CODE_POINT = 0x10ffff;

/** One byte sequence pattern: byte i lies in [lo[i], hi[i]]. */
export type ByteRangeSeq = Array<[number, number]>;

/** Sorted, merged, non-overlapping inclusive ranges [lo, hi] of the code points a class contains. */
export function normalizeRanges(ranges: ReadonlyArray<readonly [number, number]>): Array<[number, number]> {
  const r = ranges.filter(([a, b]) => a <= b).map(([a, b]) => [a, b] as [number, number]).sort((x, y) => x[0] - y[0]);
  const out: Array<[number, number]> = [];
  for (const [a, b] of r) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** The complement of normalized ranges within [0, MAX_CODE_POINT]. */
export function complementRanges(ranges: ReadonlyArray<readonly [number, number]>): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let next = 0;
  for (const [a, b] of normalizeRanges(ranges)) {
    if (a > next) out.push([next, a - 1]);
    next = b + 1;
  }
  if (next <= MAX_CODE_POINT) out.push([next, MAX_CODE_POINT]);
  return out;
}

function encode(cp: number): number[] {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
}

const LENGTH_LIMITS = [0x7f, 0x7ff, 0xffff, MAX_CODE_POINT];

function splitSameLength(lo: number, hi: number, out: ByteRangeSeq[]): void {
  const n = encode(lo).length;
  for (let i = 1; i < n; i++) {
    const m = (1 << (6 * i)) - 1;
    if ((lo & ~m) !== (hi & ~m)) {
      if ((lo & m) !== 0) {
        splitSameLength(lo, lo | m, out);
        splitSameLength((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) !== m) {
        splitSameLength(lo, (hi & ~m) - 1, out);
        splitSameLength(hi & ~m, hi, out);
        return;
      }
    }
  }
  const a = encode(lo), b = encode(hi);
  out.push(a.map((x, i) => [x, b[i]] as [number, number]));
}

/** UTF-8 byte sequence patterns whose union is exactly the encodings of the code points in `ranges`. */
export function utf8Sequences(ranges: ReadonlyArray<readonly [number, number]>): ByteRangeSeq[] {
  const out: ByteRangeSeq[] = [];
  for (const [a0, b0] of normalizeRanges(ranges)) {
    // Surrogates have no UTF-8 encoding.
    const parts: Array<[number, number]> = [];
    if (a0 < 0xd800) parts.push([a0, Math.min(b0, 0xd7ff)]);
    if (b0 > 0xdfff) parts.push([Math.max(a0, 0xe000), b0]);
    for (const [a1, b1] of parts) {
      let lo = a1;
      for (const lim of LENGTH_LIMITS) {
        if (lo > b1) break;
        if (lo > lim) continue;
        const hi = Math.min(b1, lim);
        splitSameLength(lo, hi, out);
        lo = hi + 1;
      }
    }
  }
  return out;
}
