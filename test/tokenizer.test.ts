import { tokenizerFromFile } from '../src/io/tokenizer-file.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { OpenELMError } from '../src/core/errors.js';
import { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { StreamDecoder } from '../src/tokenizer/stream-decoder.js';
import { loadTokenizer, bundledTokenizerPath } from '../src/io/tokenizer-file.js';
import { measureTokenizerThroughput } from '../src/tokenizer/bench.js';
import { PieceType, parseSentencePieceModel } from '../src/tokenizer/sentencepiece-model.js';

// Compiled to dist/test/, so the repo root is two levels up.
const ROOT = new URL('../../', import.meta.url);
const FIXTURES = new URL('test/fixtures/tokenizer/', ROOT);
const MODEL = new URL('assets/tokenizer/tokenizer.model', ROOT);

const tok = tokenizerFromFile(MODEL);

interface RefLine {
  source: string;
  text: string;
  ids: number[];
}
const reference: RefLine[] = readFileSync(new URL('spm-reference-encodings.jsonl', FIXTURES), 'utf8')
  .split('\n')
  .filter((l) => l.length > 0)
  .map((l) => JSON.parse(l) as RefLine);

test('matches SentencePiece on every line of spm-reference-encodings.jsonl', () => {
  assert.equal(reference.length, 1591);
  const mismatches: string[] = [];
  for (const r of reference) {
    const got = tok.encode(r.text);
    if (JSON.stringify(got) !== JSON.stringify(r.ids)) {
      mismatches.push(`${r.source} ${JSON.stringify(r.text.slice(0, 60))}: got ${got.slice(0, 12)} want ${r.ids.slice(0, 12)}`);
    }
  }
  assert.deepEqual(mismatches.slice(0, 5), []);
  assert.equal(mismatches.length, 0);
});

test('matches the 46 llama.cpp / HF cases (ggml-vocab-llama-spm.gguf.inp/.out)', () => {
  const inp = readFileSync(new URL('ggml-vocab-llama-spm.gguf.inp', FIXTURES), 'utf8');
  const out = readFileSync(new URL('ggml-vocab-llama-spm.gguf.out', FIXTURES), 'utf8');
  // Every input is followed by "\n__ggml_vocab_test__\n".
  const inputs = inp.split('\n__ggml_vocab_test__\n');
  assert.equal(inputs.pop(), '');
  const expected = out.split('\n');
  assert.equal(expected.pop(), '');
  assert.equal(inputs.length, 46);
  assert.equal(expected.length, 46);
  for (let i = 0; i < inputs.length; i++) {
    const want = expected[i].trim() === '' ? [] : expected[i].trim().split(/\s+/).map(Number);
    assert.deepEqual(tok.encode(inputs[i]), want, `case ${i}: ${JSON.stringify(inputs[i])}`);
  }
});

test('matches SentencePiece on 1000 fuzz strings and 1000 random-id decodes (spm-fuzz.jsonl)', () => {
  const lines = readFileSync(new URL('spm-fuzz.jsonl', FIXTURES), 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as { kind: 'encode' | 'decode'; text: string; ids: number[] });
  let enc = 0;
  let dec = 0;
  for (const l of lines) {
    if (l.kind === 'encode') {
      assert.deepEqual(tok.encode(l.text), l.ids, JSON.stringify(l.text));
      enc++;
    } else {
      assert.equal(tok.decode(l.ids), l.text, JSON.stringify(l.ids));
      assert.equal(streamAll(l.ids).text, l.text, `stream ${JSON.stringify(l.ids)}`);
      dec++;
    }
  }
  assert.equal(enc, 1000);
  assert.equal(dec, 1000);
});

test('model facts: special ids, vocab, piece lookup', () => {
  assert.equal(tok.vocabSize, 32000);
  assert.equal(tok.unkId, 0);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.equal(tok.padId, -1);
  assert.equal(tok.idToPiece(1), '<s>');
  assert.equal(tok.idToPiece(3), '<0x00>');
  assert.equal(tok.idToPiece(29871), '\u2581');
  assert.equal(tok.pieceToId('\u2581\u2581'), 259);
  assert.equal(tok.pieceToId('</s>'), 2);
  assert.equal(tok.pieceToId('definitely-not-a-piece'), tok.unkId);
  assert.equal(tok.pieceType(2), PieceType.CONTROL);
  assert.equal(tok.pieceType(3), PieceType.BYTE);
  assert.equal(tok.idToPiece(30143), '\uFEFF');
  assert.throws(() => tok.idToPiece(32000), OpenELMError);
});

test('BOS / EOS options', () => {
  assert.deepEqual(tok.encode('Hello world!', { bos: true }), [1, 15043, 3186, 29991]);
  assert.deepEqual(tok.encode('Hello world!'), [15043, 3186, 29991]);
  assert.deepEqual(tok.encode('Hello world!', { eos: true }), [15043, 3186, 29991, 2]);
  assert.deepEqual(tok.encode('Hello world!', { bos: true, eos: true }), [1, 15043, 3186, 29991, 2]);
  assert.deepEqual(tok.encode('', { bos: true, eos: true }), [1, 2]);
  assert.equal(tok.decode([1, 15043, 3186, 29991, 2]), 'Hello world!');
  assert.equal(tok.decode([1, 15043, 3186, 29991, 2], { skipSpecial: false }), '<s> Hello world!</s>');
});

test('special-token text is plain text; whitespace is kept', () => {
  assert.deepEqual(tok.encode('<s>'), [529, 29879, 29958]);
  assert.deepEqual(tok.encode('x  y'), [921, 29871, 343]);
  assert.deepEqual(tok.encode('\n'), [29871, 13]);
  assert.deepEqual(tok.encode(' Hello world'), [29871, 15043, 3186]);
});

test('byte fallback: emoji, CJK, ligature round trip', () => {
  for (const s of ['😀👍🏽', '🦙', '你好，世界', '日本語のテキスト', 'ﬁne', 'ＡＢＣ', 'a\u0000b', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢']) {
    const ids = tok.encode(s);
    assert.equal(tok.decode(ids), s, JSON.stringify(s));
  }
  const fine = tok.encode('ﬁne');
  assert.deepEqual(fine, [29871, 31017, 484]);
  // U+1F600 (F0 9F 98 80) is not a piece: four byte tokens after the dummy-prefix piece.
  assert.deepEqual(tok.encode('😀'), [29871, 0xf0 + 3, 0x9f + 3, 0x98 + 3, 0x80 + 3]);
  // A lone surrogate is encoded as U+FFFD (EF BF BD), as TextEncoder would.
  assert.deepEqual(tok.encode('\uD800'), tok.encode('\uFFFD'));
});

test('decode(encode(x)) == x', () => {
  const extra = [
    '', ' ', '  ', 'a', ' a', 'a ', '\n\n', ' \n ', '\t\tx', 'Hello, world!', '  leading and trailing  ',
    'mixed 😀 text with 日本語 and ünïcödé', 'numbers 1234567890 3.14', 'tabs\tand\r\nCRLF', '<s> not special </s>',
    'zero\u200bwidth', 'combining e\u0301', 'a'.repeat(1000),
    ' '.repeat(100), '\u{10FFFF}\u{E000}',
  ];
  let n = 0;
  for (const s of [...reference.map((r) => r.text), ...extra]) {
    assert.equal(tok.decode(tok.encode(s)), s, JSON.stringify(s.slice(0, 80)));
    assert.equal(tok.decode(tok.encode(s, { bos: true, eos: true })), s);
    n++;
  }
  assert.ok(n > 1600);
  // As in SentencePiece, a literal U+2581 in the input is indistinguishable from an escaped space.
  assert.equal(tok.decode(tok.encode('a\u2581b')), 'a b');
});

test('decode follows SentencePiece for the leading space, unknowns and invalid bytes', () => {
  assert.equal(tok.decode([15043]), 'Hello');
  assert.equal(tok.decode([29871, 15043]), ' Hello');
  assert.equal(tok.decode([1, 29871, 15043]), ' Hello');
  assert.equal(tok.decode([15043, 15043]), 'Hello Hello');
  assert.equal(tok.decode([0]), ' \u2047 ');
  assert.equal(tok.decode([]), '');
  // 0xE2 0x82 then 'A' (0x41): SentencePiece emits one U+FFFD per invalid byte.
  assert.equal(tok.decode([0xe2 + 3, 0x82 + 3, 0x41 + 3]), '\uFFFD\uFFFDA');
  // Overlong encoding and an encoded surrogate are rejected byte by byte.
  assert.equal(tok.decode([0xc0 + 3, 0x80 + 3]), '\uFFFD\uFFFD');
  assert.equal(tok.decode([0xed + 3, 0xa0 + 3, 0x80 + 3]), '\uFFFD\uFFFD\uFFFD');
  assert.throws(() => tok.decode([32000]), OpenELMError);
  assert.throws(() => tok.decode([-1]), OpenELMError);
});

function streamAll(ids: number[], opts?: { skipSpecial?: boolean }): { parts: string[]; text: string } {
  const sd = new StreamDecoder(tok, opts);
  const parts = ids.map((id) => sd.push(id));
  parts.push(sd.flush());
  return { parts, text: parts.join('') };
}

test('StreamDecoder: emoji split across byte tokens is held back until complete', () => {
  const ids = tok.encode('Hi 🦙! 你好 😀👍🏽 ﬁne', { bos: true });
  const { parts, text } = streamAll(ids);
  assert.equal(text, tok.decode(ids));
  for (const p of parts) assert.ok(!p.includes('\uFFFD'), `partial output ${JSON.stringify(p)}`);

  const sd = new StreamDecoder(tok);
  const llama = tok.encode('🦙'); // ▁, F0, 9F, A6, 99
  assert.equal(llama.length, 5);
  assert.equal(sd.push(llama[0]), '');
  assert.equal(sd.push(llama[1]), '');
  assert.equal(sd.push(llama[2]), '');
  assert.equal(sd.push(llama[3]), '');
  assert.ok(sd.hasPending);
  assert.equal(sd.push(llama[4]), '🦙');
  assert.equal(sd.push(tok.pieceToId('\u2581ok')), ' ok');
  assert.equal(sd.flush(), '');
});

test('StreamDecoder output concatenates to decode(all ids)', () => {
  const cases: number[][] = reference.slice(0, 400).map((r) => r.ids);
  cases.push(
    [29871, 15043],
    [1, 29871, 29871, 15043],
    [0xe2 + 3, 0x82 + 3, 0x41 + 3, 15043],
    [0xf0 + 3, 0x9f + 3, 15043, 0xf0 + 3],
    [0xf0 + 3, 0x9f + 3],
    [0xed + 3, 0xa0 + 3, 0x80 + 3],
    [0x80 + 3, 0xff + 3, 0xc3 + 3, 0xa9 + 3],
    [1, 2, 1, 15043, 0],
    [13, 15043],
  );
  for (const ids of cases) {
    assert.equal(streamAll(ids).text, tok.decode(ids), JSON.stringify(ids.slice(0, 20)));
    assert.equal(streamAll(ids, { skipSpecial: false }).text, tok.decode(ids, { skipSpecial: false }));
  }
});

// Literal transcription of sentencepiece's bpe_model.cc Encode (string pieces, whole text, no
// splitting or caching), used to check the optimized encoder on inputs without stored references.
function referenceEncode(t: Tokenizer, text: string): number[] {
  const norm = t.normalize(text);
  if (norm === '') return [];
  const mergeable = (id: number): boolean => {
    const ty = t.pieceType(id);
    return ty === PieceType.NORMAL || ty === PieceType.USER_DEFINED || ty === PieceType.UNUSED;
  };
  const pieceId = (s: string): number => {
    const id = t.pieceToId(s);
    return t.idToPiece(id) === s && mergeable(id) ? id : -1;
  };
  const syms = Array.from(norm);
  const prev = syms.map((_, i) => i - 1);
  const next = syms.map((_, i) => (i + 1 < syms.length ? i + 1 : -1));
  type Pair = { l: number; r: number; score: number; size: number };
  const agenda: Pair[] = [];
  const add = (l: number, r: number): void => {
    if (l < 0 || r < 0) return;
    const s = syms[l] + syms[r];
    const id = pieceId(s);
    if (id >= 0) agenda.push({ l, r, score: t.pieceScore(id), size: s.length });
  };
  for (let i = 1; i < syms.length; i++) add(i - 1, i);
  while (agenda.length > 0) {
    let best = 0;
    for (let i = 1; i < agenda.length; i++) {
      const a = agenda[i];
      const b = agenda[best];
      if (a.score > b.score || (a.score === b.score && a.l < b.l)) best = i;
    }
    const top = agenda.splice(best, 1)[0];
    if (syms[top.l] === '' || syms[top.r] === '' || syms[top.l].length + syms[top.r].length !== top.size) continue;
    syms[top.l] += syms[top.r];
    syms[top.r] = '';
    next[top.l] = next[top.r];
    if (next[top.r] >= 0) prev[next[top.r]] = top.l;
    add(prev[top.l], top.l);
    add(top.l, next[top.l]);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0; i = next[i]) {
    const id = t.pieceToId(syms[i]);
    if (id !== t.unkId) out.push(id);
    else for (const b of new TextEncoder().encode(syms[i])) out.push(t.pieceToId(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`));
  }
  return out;
}

test('optimized encoder equals a literal whole-text BPE on multi-line and odd inputs', () => {
  const chunk = reference
    .filter((r) => r.source === 'tinyshakespeare-2000char-chunk')
    .slice(0, 3)
    .map((r) => r.text);
  const odd = [
    '   \n\n  \t  x',
    'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    '▁▁▁literal▁markers▁',
    'word,word.word;word:word!word?word',
    '1,000,000.00 $$$ %%% ^^^',
    '    def f(x):\n        return x  # comment\n',
    'ÀÉÎÕÜ àéîõü ßœæ Привет мир Γειά σου κόσμε',
    '\u{1F469}\u200D\u{1F4BB} family: \u{1F468}\u200D\u{1F469}\u200D\u{1F467}',
  ];
  for (const s of [...chunk, ...odd]) {
    assert.deepEqual(tok.encode(s), referenceEncode(tok, s), JSON.stringify(s.slice(0, 60)));
  }
});

test('long inputs: 1 MB of text and a 200k-character run without word boundaries', () => {
  const base = reference.map((r) => r.text).join('\n');
  let big = base;
  while (big.length < 1_000_000) big += '\n' + base;
  const ids = tok.encode(big);
  assert.equal(tok.decode(ids), big);
  // Same ids whether the cache is cold or warm.
  tok.clearCache();
  assert.deepEqual(tok.encode(big.slice(0, 50_000)), tok.encode(big.slice(0, 50_000)));

  const run = 'a'.repeat(200_000);
  const t0 = performance.now();
  const runIds = tok.encode(run);
  assert.ok(performance.now() - t0 < 5000, 'no quadratic blow-up');
  assert.equal(tok.decode(runIds), run);
  assert.deepEqual(runIds.slice(0, 50), referenceEncode(tok, 'a'.repeat(200)).slice(0, 50));
});

test('measureTokenizerThroughput reports tokens and a positive rate', () => {
  const r = measureTokenizerThroughput(tok, reference.slice(0, 200).map((x) => x.text).join('\n'), 1);
  assert.ok(r.tokens > 1000);
  assert.ok(r.mb_per_s > 0);
});

test('errors name the file for a missing, empty, truncated or garbage model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'openelm-tok-'));
  try {
    const missing = join(dir, 'nope', 'tokenizer.model');
    assert.throws(() => tokenizerFromFile(missing), (e: unknown) => {
      assert.ok(e instanceof OpenELMError);
      assert.ok(e.message.includes(missing) && e.message.includes('not found'), e.message);
      return true;
    });
    const full = readFileSync(MODEL);
    const cases: [string, Uint8Array][] = [
      ['empty.model', new Uint8Array(0)],
      ['truncated-mid.model', full.subarray(0, 250_000)],
      ['truncated-end.model', full.subarray(0, full.length - 3)],
      ['garbage.model', new TextEncoder().encode('this is not a protobuf file at all')],
    ];
    for (const [name, bytes] of cases) {
      const p = join(dir, name);
      writeFileSync(p, bytes);
      assert.throws(() => tokenizerFromFile(p), (e: unknown) => {
        assert.ok(e instanceof OpenELMError, String(e));
        assert.ok(e.message.includes(p), e.message);
        return true;
      }, name);
    }
    assert.throws(() => Tokenizer.fromBytes(full.subarray(0, 1000), 'cut.model'), /cut\.model/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the compact vocabulary read from bytes equals the parsed pieces, piece for piece', () => {
  const bytes = readFileSync(MODEL);
  const parsed = parseSentencePieceModel(bytes, 'tokenizer.model');
  const fromObjects = new Tokenizer(parsed, 'tokenizer.model');
  assert.deepEqual(tok.model.pieces, parsed.pieces);
  assert.deepEqual(tok.model.trainerSpec, parsed.trainerSpec);
  for (let id = 0; id < parsed.pieces.length; id++) {
    const p = parsed.pieces[id];
    assert.equal(tok.idToPiece(id), p.piece);
    assert.equal(tok.pieceType(id), p.type);
    assert.equal(tok.pieceScore(id), Math.fround(p.score));
    assert.equal(tok.pieceToId(p.piece), fromObjects.pieceToId(p.piece), p.piece);
  }
  assert.equal(tok.pieceToId('not a piece at all'), tok.unkId);
  const text = reference.slice(0, 200).map((r) => r.text).join('\n');
  assert.deepEqual(tok.encode(text), fromObjects.encode(text));
});

test('a piece that is not UTF-8 on its own is refused, even when the pieces joined would decode', () => {
  // "▁t" (id 260) ends in 0xC2 and "er" (id 261) starts with 0x80: together a valid U+0080.
  const bytes = Uint8Array.from(readFileSync(MODEL));
  const at = (piece: string, from: number): number => {
    const pat = Buffer.from([0x0a, Buffer.byteLength(piece), ...Buffer.from(piece)]);
    const i = Buffer.from(bytes.buffer).indexOf(pat, from);
    assert.ok(i >= 0, piece);
    return i + 2;
  };
  const a = at('\u2581t', 0), b = at('er', a);
  bytes[a + Buffer.byteLength('\u2581t') - 1] = 0xc2;
  bytes[b] = 0x80;
  assert.throws(() => Tokenizer.fromBytes(bytes, 'joined.model'), (e: unknown) =>
    e instanceof OpenELMError && /^tokenizer model joined\.model is malformed or truncated: string at byte \d+ is not valid UTF-8$/.test(e.message));
});

test('loadTokenizer: model dir first, bundled asset otherwise', () => {
  const dir = mkdtempSync(join(tmpdir(), 'openelm-tok-'));
  try {
    const bundled = loadTokenizer();
    assert.equal(bundled, loadTokenizer(dir), 'falls back to the shared bundled tokenizer');
    assert.ok(bundledTokenizerPath().href.endsWith('/assets/tokenizer/tokenizer.model'));
    copyFileSync(MODEL, join(dir, 'tokenizer.model'));
    const local = loadTokenizer(dir);
    assert.notEqual(local, bundled);
    assert.deepEqual(local.encode('Hello world!'), [15043, 3186, 29991]);
    writeFileSync(join(dir, 'tokenizer.model'), new Uint8Array([0x0a, 0x05, 0x0a]));
    assert.throws(() => loadTokenizer(dir), (e: unknown) => e instanceof OpenELMError && e.message.includes(dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
