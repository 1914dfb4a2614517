// Tokenizer files on disk: a `tokenizer.model` path, a model folder's, or the Llama-2 tokenizer shipped
// in the package (assets/tokenizer/tokenizer.model; every OpenELM model uses it). The tokenizer itself
// (tokenizer/) only parses bytes.
//
// The bundled file is located relative to this module: compiled, it lives at
// <pkg>/dist/src/io/tokenizer-file.js, so the asset is three levels up; when run from source
// (<pkg>/src/io/tokenizer-file.ts, e.g. with tsx) it is two levels up. Both are tried.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { Tokenizer } from '../tokenizer/tokenizer.js';
import { tokenizerFromTable } from './tokenizer-table.js';

const BUNDLED_CANDIDATES = [
  new URL('../../../assets/tokenizer/tokenizer.model', import.meta.url),
  new URL('../../assets/tokenizer/tokenizer.model', import.meta.url),
];

/** URL of the tokenizer.model shipped with the package. */
export function bundledTokenizerPath(): URL {
  for (const u of BUNDLED_CANDIDATES) if (fs.existsSync(u)) return u;
  throw new OpenELMError(
    'tokenizer',
    `bundled tokenizer not found at ${BUNDLED_CANDIDATES[0].href} (is the package's assets/ folder missing?)`,
  );
}

/** Read a `tokenizer.model` file. */
export function tokenizerFromFile(file: string | URL): Tokenizer {
  const name = typeof file === 'string' ? file : file.href;
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'not found' : code === 'EISDIR' ? 'is a directory' : String((e as Error).message);
    throw new OpenELMError('tokenizer', `cannot read tokenizer model ${name}: ${why}`);
  }
  // The bundled tokenizer (or a byte-identical copy, as every OpenELM checkpoint has) from its prebuilt table.
  return tokenizerFromTable(bytes, name) ?? Tokenizer.fromBytes(bytes, name);
}

let bundled: Tokenizer | undefined;

/**
 * `<modelDir>/tokenizer.model` when that file exists, otherwise the bundled Llama-2 tokenizer
 * (parsed once and shared).
 */
export function loadTokenizer(modelDir?: string): Tokenizer {
  if (modelDir !== undefined) {
    const file = path.join(modelDir, 'tokenizer.model');
    if (fs.existsSync(file)) return tokenizerFromFile(file);
  }
  bundled ??= tokenizerFromFile(bundledTokenizerPath());
  return bundled;
}
