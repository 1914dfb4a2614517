// Finds the tokenizer for a model directory, falling back to the Llama-2 tokenizer shipped in the
// package (assets/tokenizer/tokenizer.model; every OpenELM model uses it).
//
// The bundled file is located relative to this module: compiled, it lives at
// <pkg>/dist/src/tokenizer/load.js, so the asset is three levels up; when run from source
// (<pkg>/src/tokenizer/load.ts, e.g. with tsx) it is two levels up. Both are tried.

import { OpenELMError } from '../core/errors.js';
import { Tokenizer, nodeFs } from './tokenizer.js';

const BUNDLED_CANDIDATES = [
  new URL('../../../assets/tokenizer/tokenizer.model', import.meta.url),
  new URL('../../assets/tokenizer/tokenizer.model', import.meta.url),
];

/** URL of the tokenizer.model shipped with the package. */
export function bundledTokenizerPath(): URL {
  const fs = nodeFs();
  for (const u of BUNDLED_CANDIDATES) if (fs.existsSync(u)) return u;
  throw new OpenELMError(
    'tokenizer',
    `bundled tokenizer not found at ${BUNDLED_CANDIDATES[0].href} (is the package's assets/ folder missing?)`,
  );
}

let bundled: Tokenizer | undefined;

/**
 * `<modelDir>/tokenizer.model` when that file exists, otherwise the bundled Llama-2 tokenizer
 * (parsed once and shared).
 */
export function loadTokenizer(modelDir?: string): Tokenizer {
  if (modelDir !== undefined) {
    const fs = nodeFs();
    const sep = modelDir.endsWith('/') || modelDir.endsWith('\\') ? '' : '/';
    const path = `${modelDir}${sep}tokenizer.model`;
    if (fs.existsSync(path)) return Tokenizer.fromFile(path);
  }
  bundled ??= Tokenizer.fromFile(bundledTokenizerPath());
  return bundled;
}
