// Cost of constrained decoding per generated token (a script, not a test): the token mask for the
// Llama-2 vocabulary (32000 tokens), applying it to a logits row, and advancing the matcher, while
// following tokenized JSON documents through a schema grammar. Prints one JSON object:
// Wall-clock figures suffer on a shared machine; *CpuMs are the process's CPU time for the same work.
//   compileMs         schema → GBNF → compiled grammar
//   firstDoc          a fresh grammar (nothing cached): per-token mask ms (mean, p50, p90, max) and
//                     the total; the first visit of each automaton node walks the vocabulary trie
//   newDocs           other documents on the same grammar (node masks cached, states mostly new)
//   repeatDocs        the same documents again (state masks cached)
//   applyMs, acceptMs per token: masking a Float32Array(32000) and advancing the matcher
//   fullWalkMs        one uncached-style walk of the whole trie from a string state (the worst case)
// A decode step of OpenELM-270M takes about 10 ms, so 1 ms per token is a 10% slowdown.
//
// By default the process first runs a few throwaway documents (JIT warm-up, as in a server that
// already answered constrained requests); --cold skips that.
//
//   npx tsc -p tsconfig.json && node dist/bench/constrain-mask.bench.js [--cold]

import { benchArgs } from './args.js';
import type { Tokenizer } from '../src/tokenizer/tokenizer.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { compileJsonSchema, compileJsonObject } from '../src/generate/constrain/compile.js';
import { GrammarMasker } from '../src/generate/constrain/mask.js';
import { tokenizerVocab, trieOf } from '../src/generate/constrain/vocab.js';
import type { CompiledGrammar } from '../src/generate/constrain/grammar.js';

const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', description: 'full name' },
    age: { type: 'integer', minimum: 0, maximum: 150 },
    email: { type: 'string' },
    address: { type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' }, zip: { type: 'string', maxLength: 10 } }, required: ['city'] },
    tags: { type: 'array', items: { type: 'string' }, maxItems: 8 },
    score: { type: 'number', minimum: 0, maximum: 100 },
    active: { type: 'boolean' },
    role: { enum: ['admin', 'user', 'guest'] },
  },
  required: ['name', 'age', 'email'],
  additionalProperties: false,
};

const PERSON_DOCS = [
  '{"name": "Alice Johnson", "age": 34, "email": "alice.johnson@example.com", "address": {"street": "12 Baker Street", "city": "London", "zip": "NW1 6XE"}, "tags": ["engineer", "cyclist", "coffee"], "score": 87.5, "active": true, "role": "admin"}',
  '{"name": "Bob", "age": 7, "email": "bob@example.org", "tags": [], "active": false, "role": "guest"}',
  '{"name": "Chloé Durand", "age": 61, "email": "chloe.durand@exemple.fr", "address": {"city": "Lyon"}, "score": 42, "role": "user"}',
  '{"name":"Dmitri Ivanov","age":45,"email":"d.ivanov@example.net","address":{"street":"Nevsky Prospekt 28","city":"Saint Petersburg","zip":"191186"},"tags":["chess","history"],"score":99.25,"active":true}',
];

const OBJECT_DOCS = [
  '{"id": 17, "title": "Quarterly report", "items": [{"sku": "A-1", "qty": 3, "price": 9.99}, {"sku": "B-22", "qty": 1, "price": 120}], "paid": false, "notes": null}',
  '{"query": "weather in Paris", "results": [{"temp": 18.5, "unit": "C", "sky": "cloudy"}], "cached": true}',
  '{"a": {"b": {"c": [1, 2, 3, {"d": "deep"}]}}, "e": "end"}',
];

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return { tokens: xs.length, mean: r(xs.reduce((a, b) => a + b, 0) / xs.length), p50: r(q(0.5)), p90: r(q(0.9)), max: r(s[s.length - 1]), total: r(xs.reduce((a, b) => a + b, 0)) };
}

function run(name: string, compile: () => CompiledGrammar, docs: string[], tok: Tokenizer) {
  const vocab = tokenizerVocab(tok);
  const t0 = performance.now();
  const g = compile();
  const compileMs = performance.now() - t0;
  const c = new GrammarMasker(g, vocab);
  const logits = new Float32Array(vocab.size);
  const apply: number[] = [], accept: number[] = [];
  const follow = (doc: string): number[] => {
    const m = c.newMatcher();
    const times: number[] = [];
    for (const id of tok.encode(doc)) {
      let t = performance.now();
      const mask = m.allowed();
      times.push(performance.now() - t);
      if (!((mask[id >>> 5] >>> (id & 31)) & 1)) throw new Error(`${name}: the grammar refuses ${JSON.stringify(tok.idToPiece(id))} in ${doc}`);
      logits.fill(0);
      t = performance.now();
      m.mask(logits);
      apply.push(performance.now() - t);
      t = performance.now();
      m.accept(id);
      accept.push(performance.now() - t);
    }
    if (!m.isComplete) throw new Error(`${name}: ${doc} is not complete`);
    return times;
  };
  const cpu = <T>(f: () => T): [T, number] => { const c0 = process.cpuUsage(); const r = f(); const d = process.cpuUsage(c0); return [r, Math.round((d.user + d.system) / 100) / 10]; };
  const [firstTimes, firstDocCpuMs] = cpu(() => follow(docs[0]));
  const [newTimes, newDocsCpuMs] = cpu(() => docs.slice(1).flatMap(follow));
  const firstDoc = stats(firstTimes), newDocs = stats(newTimes);
  let repeat: number[] = [];
  for (let r = 0; r < 2; r++) repeat = docs.flatMap(follow);
  const [, repeatDocsCpuMs] = cpu(() => { repeat = docs.flatMap(follow); });
  // The worst case: a whole-trie walk from inside a string (what a never-seen wide state costs
  // without the node cache), timed after one warm-up walk.
  const m = c.newMatcher();
  m.acceptBytes(new TextEncoder().encode(docs[0].slice(0, docs[0].indexOf(':') + 4)));
  c.maskByWalk(m.stateId);
  const w0 = performance.now();
  for (let i = 0; i < 5; i++) c.maskByWalk(m.stateId);
  const fullWalkMs = (performance.now() - w0) / 5;
  return {
    compileMs: Math.round(compileMs), nodes: g.nodeCount, firstDoc, firstDocCpuMs, newDocs, newDocsCpuMs, repeatDocs: stats(repeat), repeatDocsCpuMs,
    applyMs: stats(apply).mean, acceptMs: stats(accept).mean, fullWalkMs: Math.round(fullWalkMs * 1000) / 1000, cache: c.stats(),
  };
}

const tok = loadTokenizer();
const t0 = performance.now();
trieOf(tokenizerVocab(tok).bytes);
trieOf(tokenizerVocab(tok).startBytes);
const vocabMs = Math.round(performance.now() - t0);
// A process that already served constrained requests: JIT-compiled, but these grammars are new.
const WARM_SCHEMA = { type: 'object', properties: { q: { type: 'string', maxLength: 8 }, n: { type: 'number' }, l: { type: 'array', items: { type: 'integer' } } } };
const { values: args } = benchArgs({ options: { cold: { type: 'boolean', default: false } } });
if (!args.cold) for (let i = 0; i < 4; i++) run('warm-up', () => compileJsonSchema(WARM_SCHEMA), ['{"q": "warm up", "n": -1.5e3, "l": [1, 22, 333]}', '{"l": []}'], tok);
console.log(JSON.stringify({
  vocabSize: tok.vocabSize, vocabAndTriesMs: vocabMs, jitWarmedUp: !args.cold,
  person: run('person schema', () => compileJsonSchema(PERSON), PERSON_DOCS, tok),
  jsonObject: run('json_object', compileJsonObject, OBJECT_DOCS, tok),
}, null, 1));
