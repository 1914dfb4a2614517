// A sum of squares over several tensors that equals the sum over one tensor holding them in order.
// The backends reduce Σ x² in fixed blocks (each block's partial sum computed in its own fixed
// order, the partials then added in block order), so the result depends on where the block
// boundaries fall. Over a concatenation the boundaries fall at multiples of the block size counted
// from the first tensor's start: each tensor's whole blocks are reduced where they lie, and a block
// that spans the end of one tensor and the start of the next is gathered into one place first, so
// every partial is the one a single tensor would have, and they are added in the same order.

/** Values [offset, offset + n) of tensor t. */
export interface Piece<T> { t: T; offset: number; n: number; }

/**
 * Σ over the block partials of the concatenation of `xs`, added in f64 in block order starting
 * from 0. `partials(x, offset, n)` gives the partials of x[offset, offset + n) in blocks of `block`
 * values starting at offset (the last one may be shorter); `gathered(pieces, n)` the single partial
 * of the block made of `pieces` in order (n values, at most `block`).
 */
export async function blockedSumSquares<T>(xs: readonly T[], length: (x: T) => number, block: number,
  partials: (x: T, offset: number, n: number) => Promise<ArrayLike<number>>,
  gathered: (pieces: Piece<T>[], n: number) => Promise<number>): Promise<number> {
  const parts: Promise<ArrayLike<number>>[] = [];
  let pend: Piece<T>[] = [], pendN = 0;
  const flush = (): void => {
    if (pendN === 0) return;
    const p = pend, n = pendN;
    parts.push(p.length === 1 ? partials(p[0].t, p[0].offset, p[0].n) : gathered(p, n).then((s) => [s]));
    pend = []; pendN = 0;
  };
  for (const x of xs) {
    const n = length(x);
    let i = 0;
    if (pendN > 0) {
      // complete the block begun in the tensors before
      i = Math.min(n, block - pendN);
      if (i > 0) { pend.push({ t: x, offset: 0, n: i }); pendN += i; }
      if (pendN === block) flush();
    }
    const whole = Math.floor((n - i) / block) * block;
    if (whole > 0) { parts.push(partials(x, i, whole)); i += whole; }
    if (i < n) { pend.push({ t: x, offset: i, n: n - i }); pendN += n - i; }
  }
  flush();
  let s = 0;
  for (const p of await Promise.all(parts)) for (let i = 0; i < p.length; i++) s += p[i];
  return s;
}

/** The tensors of a sumSquares argument: one tensor, or a list of them. */
export function tensorList<T extends object>(x: T | readonly T[]): readonly T[] {
  return Array.isArray(x) ? (x as readonly T[]) : [x as T];
}
