// Dropout masks from an integer hash instead of a random stream, so that every backend (a GPU
// thread per element, a WASM chunk per thread, the plain-JS reference) draws the same mask for the
// same (seed, index) with 32-bit integer arithmetic only, and a backward pass can regenerate the
// mask of its forward instead of keeping it.
//
// The mixer is lowbias32 (Chris Wellons' hash-prospector: x ^= x >> 16; x *= 0x7feb352d;
// x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16), a bijection on u32 with low bias. Element i of a
// mask with seed s is kept when
//   h(s, i) = lowbias32(lowbias32(i + lowbias32(s)) ^ lowbias32(s))   (all u32, + wraps)
// is at least floor(p · 2³²). Kept elements carry 1/(1 − p), as torch.nn.Dropout scales them.

export function lowbias32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The hash element i of a mask with this seed is tested with (u32). */
export function dropoutHash(seed: number, i: number): number {
  const s = lowbias32(seed >>> 0);
  return lowbias32(((lowbias32(((i >>> 0) + s) >>> 0) ^ s) >>> 0));
}

/** Elements whose hash is below this are dropped (u32; 0 keeps everything). */
export function dropoutThreshold(p: number): number {
  return Math.min(0xffffffff, Math.floor(p * 4294967296));
}

/** The multipliers of kept and dropped elements, as f32 (mask) or for the complement (1 − mask). */
export function dropoutValues(p: number, complement: boolean): { kept: number; dropped: number } {
  const k = Math.fround(1 / (1 - p));
  return complement ? { kept: Math.fround(1 - k), dropped: 1 } : { kept: k, dropped: 0 };
}

/** A seed for one use of a mask: the mix of a run's seed with small integers (step, micro-batch, module). */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) h = lowbias32((h ^ lowbias32((p >>> 0) + 0x9e3779b9)) >>> 0);
  return h;
}
