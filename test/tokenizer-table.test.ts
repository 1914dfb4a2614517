import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { PieceTable } from '../src/tokenizer/piece-table.js';
import { tokenizerFromFile } from '../src/io/tokenizer-file.js';
import {
  bundledTokenizerTable, decodeTokenizerTable, encodeTokenizerTable, sha256Hex, tableStateFor, tokenizerFromTable,
} from '../src/io/tokenizer-table.js';

// Compiled to dist/test/, so the repo root is two levels up.
const ROOT = new URL('../../', import.meta.url);
const MODEL = new URL('assets/tokenizer/tokenizer.model', ROOT);
const TABLE = new URL('assets/tokenizer/tokenizer.table', ROOT);
const modelBytes = readFileSync(MODEL);
const built = Tokenizer.fromBytes(modelBytes, 'tokenizer.model');

test('the bundled table is current: made from this tokenizer.model, byte for byte what the script writes now', () => {
  const t = decodeTokenizerTable(readFileSync(TABLE), TABLE.href);
  assert.equal(t.sha256, sha256Hex(modelBytes));
  assert.equal(t.sourceBytes, modelBytes.length);
  // Regenerate with `npm run build && node scripts/make-tokenizer-table.mjs` when this fails.
  assert.ok(Buffer.from(encodeTokenizerTable(built, modelBytes)).equals(readFileSync(TABLE)), 'assets/tokenizer/tokenizer.table is stale');
});

test('a tokenizer from the table has the constructor\'s pieces, specs and state', () => {
  const fromTable = tokenizerFromTable(modelBytes, 'x');
  assert.ok(fromTable);
  assert.deepEqual(fromTable.state, built.state);
  assert.deepEqual(fromTable.model, built.model);
  for (const k of ['vocabSize', 'unkId', 'bosId', 'eosId', 'padId'] as const) assert.equal(fromTable[k], built[k]);
  // tokenizerFromFile takes the table for the bundled file.
  assert.deepEqual(tokenizerFromFile(MODEL).state, built.state);
});

test('table and constructor encode and decode alike (reference lines, random text, lone surrogates)', () => {
  const fromTable = tokenizerFromTable(modelBytes, 'x')!;
  const lines = readFileSync(new URL('test/fixtures/tokenizer/spm-reference-encodings.jsonl', ROOT), 'utf8').split('\n').filter((l) => l);
  let r = 7;
  const rnd = (): number => {
    r = (Math.imul(r, 1103515245) + 12345) >>> 0;
    return r / 2 ** 32;
  };
  let text = lines.map((l) => (JSON.parse(l) as { text: string }).text).join('\n');
  for (let i = 0; i < 20000; i++) {
    const k = rnd();
    text += k < 0.5 ? String.fromCodePoint(0x20 + ((rnd() * 0x3000) | 0)) : k < 0.6 ? String.fromCodePoint(0x10000 + ((rnd() * 0x20000) | 0))
      : k < 0.62 ? String.fromCharCode(0xd800 + ((rnd() * 0x800) | 0)) : ' ab\n▁'[(rnd() * 5) | 0];
  }
  const a = built.encode(text, { bos: true, eos: true }), b = fromTable.encode(text, { bos: true, eos: true });
  assert.deepEqual(b, a);
  assert.equal(fromTable.decode(b), built.decode(a));
});

test('the table is not used for other bytes or other pieces', () => {
  const other = Uint8Array.from(modelBytes);
  other[other.length - 100] ^= 1;
  assert.equal(tokenizerFromTable(other, 'x'), undefined);
  assert.equal(tokenizerFromTable(modelBytes.subarray(1), 'x'), undefined);
  const t = bundledTokenizerTable()!.table;
  assert.ok(tableStateFor(new PieceTable(t.text, t.start.slice(), t.scores.slice(), t.types.slice())));
  const scores = t.scores.slice();
  scores[1000] += 1;
  assert.equal(tableStateFor(new PieceTable(t.text, t.start, scores, t.types)), undefined);
  const types = t.types.slice();
  types[1000] = 5;
  assert.equal(tableStateFor(new PieceTable(t.text, t.start, t.scores, types)), undefined);
  assert.equal(tableStateFor(new PieceTable(t.text.slice(0, -1) + 'x', t.start, t.scores, t.types)), undefined);
});
