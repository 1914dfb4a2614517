import { test } from 'node:test';
import assert from 'node:assert/strict';

import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { parseGbnf } from '../src/generate/constrain/gbnf.js';
import { compileGbnf, compileJsonSchema, compileJsonObject } from '../src/generate/constrain/compile.js';
import { jsonSchemaToGbnf } from '../src/generate/constrain/json-schema.js';
import type { CompiledGrammar } from '../src/generate/constrain/grammar.js';
import { GrammarRuntime, DEAD, HAS_ACCEPT } from '../src/generate/constrain/pda.js';
import { GrammarMasker } from '../src/generate/constrain/mask.js';
import { tokenizerVocab, TokenTrie } from '../src/generate/constrain/vocab.js';
import { EarleyRecognizer } from './helpers/earley.js';
import { Rng } from '../src/core/rng.js';

const tok = loadTokenizer();
const vocab = tokenizerVocab(tok);
const V = vocab.size;
const bit = (m: Uint32Array, id: number) => (m[id >>> 5] >>> (id & 31)) & 1;

test('vocabulary bytes follow the decoder: pieces with spaces, <0xNN> bytes, control tokens excluded, first-token space dropped', () => {
  const id = (p: string) => tok.pieceToId(p);
  assert.deepEqual([...vocab.bytes[id('▁{')]!], [0x20, 0x7b]);
  assert.deepEqual([...vocab.startBytes[id('▁{')]!], [0x7b]);
  assert.deepEqual([...vocab.bytes[id('<0xE2>')]!], [0xe2]);
  assert.deepEqual([...vocab.startBytes[id('<0x20>')]!], [0x20]);
  assert.equal(vocab.bytes[tok.bosId], null);
  assert.equal(vocab.bytes[tok.eosId], null);
  assert.equal(vocab.bytes[tok.unkId], null);
  assert.deepEqual(vocab.eosIds, [2]);
  // Whatever the grammar, the text of a token sequence is its bytes (decode drops the first space).
  const rng = new Rng(5);
  for (let k = 0; k < 200; k++) {
    const ids = Array.from({ length: 1 + Math.floor(rng.next() * 6) }, () => 259 + Math.floor(rng.next() * (V - 259)));
    const bytes = Buffer.concat(ids.map((t, i) => (i === 0 ? vocab.startBytes[t]! : vocab.bytes[t]!)));
    assert.equal(bytes.toString('utf8'), tok.decode(ids), JSON.stringify(ids));
  }
});

test('the token trie holds every token once, in byte order, with contiguous subtrees', () => {
  const t = new TokenTrie(vocab.bytes);
  const n = vocab.bytes.filter((b) => b).length;
  assert.equal(t.sortedIds.length, n);
  for (let k = 1; k < n; k++) assert.ok(Buffer.compare(t.sortedBytes[k - 1], t.sortedBytes[k]) <= 0);
  // Spelling each token by walking down the trie ends on a node that lists it.
  const spelled = new Int32Array(n).fill(-1);
  const path: number[] = [];
  for (let i = 0; i < t.nodeCount; i++) {
    path.length = t.nodeDepth[i] - 1;
    path.push(t.nodeByte[i]);
    for (let k = t.tokLo[i]; k < t.tokHi[i]; k++) { assert.deepEqual([...t.sortedBytes[k]], path); spelled[k] = i; }
    for (let k = t.tokLo[i]; k < t.subHi[i]; k++) assert.deepEqual([...t.sortedBytes[k].subarray(0, path.length)], path);
  }
  assert.ok(spelled.every((x) => x >= 0));
});

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 130 },
    score: { type: 'number', minimum: -2.5, maximum: 99.75 },
    tags: { type: 'array', items: { type: 'string', minLength: 1 }, maxItems: 3 },
    kind: { enum: ['alpha', 'beta', 7, null] },
    note: { type: ['string', 'null'] },
    tree: { $ref: '#/$defs/t' },
  },
  required: ['name', 'tags'],
  additionalProperties: false,
  $defs: { t: { type: 'object', properties: { v: { type: 'boolean' }, kids: { type: 'array', items: { $ref: '#/$defs/t' } } }, required: ['v'] } },
};

interface G { name: string; gbnf: string; compiled: () => CompiledGrammar }
const GRAMMARS: G[] = [
  { name: 'json schema', gbnf: jsonSchemaToGbnf(SCHEMA), compiled: () => compileJsonSchema(SCHEMA) },
  { name: 'json object', gbnf: jsonSchemaToGbnf({ type: 'object' }), compiled: compileJsonObject },
  {
    name: 'ambiguous, recursive, non-ASCII',
    gbnf: 'root ::= item ("," " "? item)* "."?\nitem ::= ("ab" | "a" "bc"? | "«" [^»\\x00-\\x1F]{0,6} "»" | "(" root ")")+',
    compiled: () => compileGbnf('root ::= item ("," " "? item)* "."?\nitem ::= ("ab" | "a" "bc"? | "«" [^»\\x00-\\x1F]{0,6} "»" | "(" root ")")+'),
  },
];

test('token masks are exact: each token checked from scratch, EOS exactly when complete, on random walks', () => {
  const rng = new Rng(2024);
  for (const G of GRAMMARS) {
    const g = G.compiled();
    const c = new GrammarMasker(g, vocab);
    const fresh = new GrammarRuntime(G.compiled()); // its own caches: matches bytes from scratch
    const earley = new EarleyRecognizer(parseGbnf(G.gbnf));
    for (let walk = 0; walk < 3; walk++) {
      const m = c.newMatcher();
      let prefix = new Uint8Array(0);
      let chart = earley.begin();
      for (let step = 0; step < 30 && !m.isTerminal; step++) {
        const mask = m.allowed();
        const atStart = m.isFirstToken;
        const prefixState = fresh.run(fresh.initial, prefix);
        assert.notEqual(prefixState, DEAD);
        const allowed: number[] = [], denied: number[] = [];
        for (let id = 0; id < V; id++) {
          const b = (atStart ? vocab.startBytes : vocab.bytes)[id];
          let want: boolean;
          if (vocab.eosIds.includes(id)) want = (fresh.flags[prefixState] & HAS_ACCEPT) !== 0;
          else want = b !== null && fresh.run(prefixState, b) !== DEAD;
          assert.equal(bit(mask, id), want ? 1 : 0, `${G.name}: token ${id} ${JSON.stringify(tok.idToPiece(id))} after ${JSON.stringify(Buffer.from(prefix).toString())}`);
          if (b !== null && !vocab.eosIds.includes(id)) (want ? allowed : denied).push(id);
        }
        // The same mask by a plain walk of the whole trie (no node cache).
        assert.deepEqual(c.maskByWalk(m.stateId, atStart), mask);
        // The byte-level semantics against the Earley reference, on a sample.
        assert.equal(earley.complete(chart), m.isComplete);
        for (const pool of [allowed, denied]) {
          for (let k = 0; k < 60 && pool.length; k++) {
            const id = pool[Math.floor(rng.next() * pool.length)];
            const b = (atStart ? vocab.startBytes : vocab.bytes)[id]!;
            assert.equal(earley.run(chart, b) !== null, pool === allowed, `${G.name}: Earley disagrees on ${JSON.stringify(tok.idToPiece(id))} after ${JSON.stringify(Buffer.from(prefix).toString())}`);
          }
        }
        if (!allowed.length) { assert.ok(m.isComplete); break; }
        const id = allowed[Math.floor(rng.next() * allowed.length)];
        const b = (atStart ? vocab.startBytes : vocab.bytes)[id]!;
        assert.ok(m.accept(id));
        prefix = Buffer.concat([prefix, b]);
        chart = earley.run(chart, b)!;
      }
      if (m.isTerminal) {
        const mask = m.allowed();
        for (let id = 0; id < V; id++) assert.equal(bit(mask, id), id === tok.eosId ? 1 : 0);
      }
    }
  }
});

test('a matcher follows a tokenized document to completion; a wrong token is refused without changing the state', () => {
  const c = new GrammarMasker(compileJsonSchema(SCHEMA), vocab);
  const doc = '{"name": "Zoë 😀", "age": 41, "score": -2.5, "tags": ["a", "b c"], "kind": "beta", "note": null, "tree": {"v": true, "kids": [{"v": false}]}}';
  const m = c.newMatcher();
  const ids = tok.encode(doc);
  for (const id of ids) {
    assert.equal(bit(m.allowed(), id), 1, JSON.stringify(tok.idToPiece(id)));
    const before = m.stateId;
    assert.equal(m.accept(tok.pieceToId('<0x0A>')), false); // a raw line break fits nowhere
    assert.equal(m.stateId, before);
    assert.ok(m.accept(id));
  }
  assert.ok(m.isComplete && m.isTerminal);
  assert.ok(m.accept(tok.eosId));
  assert.equal(m.accept(tok.eosId), false);
  assert.equal(tok.decode(ids), doc);
});

test('when the automaton caches are started over, running matchers carry on with the same masks', () => {
  const g = compileJsonSchema(SCHEMA);
  const small = new GrammarMasker(g, vocab, { maxStates: 40 });
  const big = new GrammarMasker(g, vocab);
  const doc = '{"name": "Ann", "tags": ["x"], "tree": {"v": true, "kids": [{"v": false, "kids": []}]}}';
  const ids = tok.encode(doc);
  const a = small.newMatcher(), b = big.newMatcher();
  const epoch0 = small.epoch;
  for (let i = 0; i < ids.length; i++) {
    if (i % 5 === 4) small.newMatcher(); // replaces the automaton once it holds more than 40 states
    assert.deepEqual(a.allowed(), b.allowed(), `token ${i}`);
    assert.ok(a.accept(ids[i]) && b.accept(ids[i]));
  }
  assert.ok(small.epoch > epoch0, 'the automaton was replaced');
  assert.ok(a.isTerminal && b.isTerminal);
});
