// Rebuilds this folder from the original files (run once by a maintainer; training never runs it):
//   node data/corpus/prepare.mjs <gutenberg-dir> <tinyshakespeare-input.txt>
// Project Gutenberg files: drop the BOM, turn CRLF / bare CR into LF, keep only the text between
// the "*** START OF" and "*** END OF" marker lines (the licence header and footer are not part of
// the book), and drop the transcriber credits and the closing "End of the Project Gutenberg" line.
import fs from 'node:fs';
import path from 'node:path';

const [gdir, shakes] = process.argv.slice(2);
const here = path.dirname(new URL(import.meta.url).pathname);
const BOOKS = [
  'pg11_alice-s-adventures-in-wonderland.txt',
  'pg1342_pride-and-prejudice.txt',
  'pg1661_the-adventures-of-sherlock-holmes.txt',
  'pg35_the-time-machine.txt',
  'pg84_frankenstein.txt',
];

function clean(text) {
  return text.replace(/^\uFEFF/, '').replace(/\r\n?/g, '\n');
}

function stripGutenberg(text, name) {
  const lines = clean(text).split('\n');
  const start = lines.findIndex((l) => l.startsWith('*** START OF'));
  const end = lines.findIndex((l) => l.startsWith('*** END OF'));
  if (start < 0 || end < 0 || end <= start) throw new Error(`${name}: Gutenberg markers not found`);
  let body = lines.slice(start + 1, end).join('\n').trim();
  // Transcriber credits before the text and the "End of (the) Project Gutenberg ..." line after it.
  body = body.replace(/^Produced by[\s\S]*?\n\s*\n/, '').replace(/\n\s*End of (the )?Project Gutenberg[\s\S]*$/i, '');
  return body.trim() + '\n';
}

for (const b of BOOKS) {
  const out = stripGutenberg(fs.readFileSync(path.join(gdir, b), 'utf8'), b);
  fs.writeFileSync(path.join(here, 'gutenberg', b.replace(/^pg\d+_/, '')), out);
}
fs.writeFileSync(path.join(here, 'tinyshakespeare.txt'), clean(fs.readFileSync(shakes, 'utf8')));
