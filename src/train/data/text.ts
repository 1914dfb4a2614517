// CoreNet's text-side steps of the pretraining pipeline (docs/training.md, Data pipeline), applied to each document:
//   1. split on single spaces into chunks of `splitWords` words (Python's str.split(" ") then
//      " ".join of every run of splitWords words; newlines stay inside words);
//   2. a length filter on a normalised copy (SlimPajama's step: lower-case, drop ASCII
//      punctuation, collapse whitespace); the chunk itself is NOT changed by it;
//   3. Unicode NFC before tokenization.
// CoreNet runs ftfy.fix_text(normalization="NFC") in step 3. ftfy is Python-only and also repairs
// mojibake, straightens nothing by default but removes some control characters and fixes broken
// HTML entities in some modes; we apply only the NFC part (String.prototype.normalize), which is
// the piece that changes ids on clean text. Text that ftfy would "repair" tokenizes differently.

/** Python's string.punctuation: the 32 ASCII punctuation characters. */
const ASCII_PUNCT = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;

/** SlimPajama/CoreNet `_process_text`: lower-case, strip ASCII punctuation, collapse whitespace. */
import { pyLen } from '../../core/pystr.js';
export function slimPajamaNormalize(text: string): string {
  return text.toLowerCase().replace(ASCII_PUNCT, '').trim().replace(/\s+/g, ' ');
}

/** Length in Unicode code points (Python's len on str). */
export const codePointLength = pyLen;

/** True when the chunk keeps at least minChars characters after slimPajamaNormalize. */
export function passesCharFilter(text: string, minChars: number): boolean {
  if (minChars <= 0) return true;
  // Cheap upper bound first: normalisation never lengthens the text.
  if (text.length < minChars) return false;
  return codePointLength(slimPajamaNormalize(text)) >= minChars;
}

export function nfc(text: string): string {
  return text.normalize('NFC');
}

/**
 * Split a document into chunks of `words` words exactly like
 * `[" ".join(ws[i:i+words]) for i in range(0, len(ws), words)]` with ws = doc.split(" ").
 * An empty document gives one empty chunk, as in Python.
 */
export function splitWords(doc: string, words: number): string[] {
  const out: string[] = [];
  let start = 0;
  for (;;) {
    let pos = start - 1, n = 0;
    // find the `words`-th space after start
    while (n < words) {
      pos = doc.indexOf(' ', pos + 1);
      if (pos < 0) break;
      n++;
    }
    if (pos < 0) { out.push(doc.slice(start)); return out; }
    out.push(doc.slice(start, pos));
    start = pos + 1;
  }
}
