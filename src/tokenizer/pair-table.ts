// Open-addressing hash map from a pair of non-negative int32 symbol ids to an int32 value.
// The BPE inner loop does one lookup per candidate pair; a JS Map keyed by `a * n + b` would hash
// heap numbers (keys exceed the small-integer range), which is several times slower.

export class PairTable {
  private keysA: Int32Array;
  private keysB: Int32Array;
  private values: Int32Array;
  private mask: number;
  private count = 0;

  constructor(expected: number) {
    let cap = 16;
    while (cap < expected * 2) cap <<= 1;
    this.keysA = new Int32Array(cap).fill(-1);
    this.keysB = new Int32Array(cap);
    this.values = new Int32Array(cap);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.count;
  }

  private static hash(a: number, b: number): number {
    let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77);
    h ^= h >>> 15;
    return h;
  }

  /** Value stored for (a, b), or -1. */
  get(a: number, b: number): number {
    const ka = this.keysA;
    const mask = this.mask;
    let i = PairTable.hash(a, b) & mask;
    for (;;) {
      const k = ka[i];
      if (k === -1) return -1;
      if (k === a && this.keysB[i] === b) return this.values[i];
      i = (i + 1) & mask;
    }
  }

  set(a: number, b: number, value: number): void {
    if ((this.count + 1) * 2 > this.keysA.length) this.grow();
    const mask = this.mask;
    let i = PairTable.hash(a, b) & mask;
    for (;;) {
      const k = this.keysA[i];
      if (k === -1) {
        this.keysA[i] = a;
        this.keysB[i] = b;
        this.values[i] = value;
        this.count++;
        return;
      }
      if (k === a && this.keysB[i] === b) {
        this.values[i] = value;
        return;
      }
      i = (i + 1) & mask;
    }
  }

  /** Every key, [a, b] in pairs, in slot order. */
  keys(): Int32Array {
    const out = new Int32Array(2 * this.count);
    let k = 0;
    for (let i = 0; i < this.keysA.length; i++) {
      if (this.keysA[i] === -1) continue;
      out[k++] = this.keysA[i];
      out[k++] = this.keysB[i];
    }
    return out;
  }

  private grow(): void {
    const oa = this.keysA;
    const ob = this.keysB;
    const ov = this.values;
    const cap = oa.length * 2;
    this.keysA = new Int32Array(cap).fill(-1);
    this.keysB = new Int32Array(cap);
    this.values = new Int32Array(cap);
    this.mask = cap - 1;
    this.count = 0;
    for (let i = 0; i < oa.length; i++) if (oa[i] !== -1) this.set(oa[i], ob[i], ov[i]);
  }
}
