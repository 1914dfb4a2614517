// Encoding throughput, used by the benchmark command.

import type { Tokenizer } from './tokenizer.js';

export interface TokenizerThroughput {
  /** Megabytes (10^6 bytes of UTF-8 input) encoded per second. */
  mb_per_s: number;
  /** Number of tokens the text encodes to. */
  tokens: number;
}

/**
 * Encodes `text` with a cold word cache (cleared before each timed run) after a short JIT warm-up
 * and reports the best of `repeats` runs.
 */
export function measureTokenizerThroughput(tok: Tokenizer, text: string, repeats = 3): TokenizerThroughput {
  const bytes = new TextEncoder().encode(text).length;
  tok.encode(text.slice(0, 65536));
  let best = Infinity;
  let tokens = 0;
  for (let r = 0; r < Math.max(1, repeats); r++) {
    tok.clearCache();
    const t0 = performance.now();
    tokens = tok.encode(text).length;
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  tok.clearCache();
  return { mb_per_s: bytes / 1e6 / Math.max(best, 1e-9), tokens };
}
