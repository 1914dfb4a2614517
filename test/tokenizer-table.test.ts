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

test('merges found on first use: pseudo-symbols, user-defined and unused pieces, a long word', () => {
  const { trainerSpec, normalizerSpec } = built.model;
  const p = (piece: string, score: number, type = 1) => ({ piece, score, type });
  // 'q' and 'z' occur only inside pieces (pseudo-symbols); 'qz' and 'zq' are pieces, 'zqz' is one
  // of them joined to 'z'; '<ud>' is user-defined, 'cc' unused (re-split on output).
  const pieces = [
    p('<unk>', 0, 2), p('<s>', 0, 3), p('</s>', 0, 3),
    ...Array.from({ length: 256 }, (_, b) => p(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, 0, 6)),
    p('\u2581', -1), p('a', -2), p('b', -2), p('c', -2), p('ab', -3), p('abc', -4), p('\u2581ab', -2.5),
    p('qz', -5), p('zq', -6), p('zqz', -7), p('<ud>', 0, 4), p('cc', -1, 5), p('ccc', -8), p('\u2581abc', -9),
  ];
  const t = new Tokenizer({ pieces, trainerSpec, normalizerSpec }, 'synthetic');
  const ids = (s: string): string[] => t.encode(s).map((id) => t.idToPiece(id));
  assert.deepEqual(ids('ab abc'), ['\u2581ab', '\u2581abc']);
  assert.deepEqual(ids('qz zqz qzq'), ['\u2581', 'qz', '\u2581', 'zqz', '\u2581', 'qz', '<0x71>']);
  assert.deepEqual(ids('a<ud>b'), ['\u2581', 'a', '<ud>', 'b']);
  assert.deepEqual(ids('cc ccc'), ['\u2581', 'c', 'c', '\u2581', 'ccc']);
  const long = 'abc'.repeat(100);
  assert.deepEqual(t.encode(long + ' ' + long), [...t.encode(long), ...t.encode(long).map((id, i) => (i === 0 ? t.pieceToId('\u2581abc') : id))]);
  // The same answers a second time, from the memo.
  assert.deepEqual(ids('qz zqz qzq'), ['\u2581', 'qz', '\u2581', 'zqz', '\u2581', 'qz', '<0x71>']);
});

test('a damaged table is an OpenELMError naming the file, not a stack', () => {
  const good = readFileSync(TABLE);
  const wrongMagic = Uint8Array.from(good.subarray(0, 64)); wrongMagic[0] ^= 0xff;
  const badJson = Uint8Array.from(good.subarray(0, 64)); badJson[12] = 0x7b; badJson[13] = 0x7b;
  for (const [bytes, why] of [[wrongMagic, /not a tokenizer table/], [badJson, /header is not JSON/], [new Uint8Array(4), /not a tokenizer table/]] as const) {
    assert.throws(() => decodeTokenizerTable(bytes, 'damaged.table'), (e: Error) => e.name === 'OpenELMError' && /damaged\.table/.test(e.message) && why.test(e.message));
  }
});
