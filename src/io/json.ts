// Reading JSON files the user gave us (config.json, index files, tokenizer files) with errors that
// say which file, what kind of problem, and where in the file.

import * as fs from 'node:fs';
import { OpenELMError } from '../core/errors.js';
import { writeFileAtomicSync } from './atomic.js';
import { parseJsonText } from '../core/json-text.js';

export { parseJsonText };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Read and parse a JSON file. `what` names it for messages, e.g. "model config" or "checkpoint index".
 * Throws OpenELMError('json', ...) for a missing/unreadable file, invalid UTF-8 or malformed JSON
 * (with line:column and byte offset of the first error).
 */
export function readJsonFile(file: string, what: string): unknown {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new OpenELMError('json', `${what} not found: ${file}`);
    if (e.code === 'EISDIR') throw new OpenELMError('json', `${what} ${file} is a directory, expected a JSON file`);
    if (e.code === 'EACCES' || e.code === 'EPERM') {
      throw new OpenELMError('json', `cannot read ${what} ${file}: permission denied`);
    }
    throw new OpenELMError('json', `cannot read ${what} ${file}: ${e.message}`);
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new OpenELMError('json', `${what} ${file} is not valid UTF-8 text`);
  }
  return parseJsonText(text, `${what} ${file}`);
}

/** Atomically write `value` as pretty JSON with a trailing newline. */
export function writeJsonFileAtomic(file: string, value: unknown): void {
  writeFileAtomicSync(file, JSON.stringify(value, null, 2) + '\n');
}
