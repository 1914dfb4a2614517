// Schema fuzzing: random schemas from the supported subset, sampled at temperature 1 from a
// random-weight model through the token mask. Every output must parse and validate (Ajv).

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { compileJsonSchema } from '../src/generate/constrain/compile.js';
import { GrammarMasker } from '../src/generate/constrain/mask.js';
import { tokenizerVocab } from '../src/generate/constrain/vocab.js';
import { validateJson } from '../src/generate/constrain/validate.js';
import { Sampler } from '../src/generate/sampler.js';
import { Rng } from '../src/core/rng.js';
import { tinyModel } from './helpers/tiny.js';
import { ajvCheck } from './helpers/ajv.js';

const tok = loadTokenizer();
const vocab = tokenizerVocab(tok);

/** A random schema; sizes are bounded so that a near-uniform model finishes in a few hundred tokens. */
function randomSchema(rng: Rng): Record<string, unknown> {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rng.next() * xs.length)];
  const int = (a: number, b: number) => a + Math.floor(rng.next() * (b - a + 1));
  const defs: Record<string, unknown> = {};
  const gen = (depth: number): Record<string, unknown> => {
    // Mostly objects at the top, as structured output is used.
    const kinds = depth === 0 ? ['object', 'object', 'object', 'object', 'array', 'anyOf', 'ref', 'string', 'number'] : depth >= 3 ? ['string', 'number', 'integer', 'boolean', 'null', 'enum', 'const']
      : ['string', 'number', 'integer', 'boolean', 'null', 'enum', 'const', 'anyOf', 'array', 'object', 'object', 'ref', 'types'];
    switch (pick(kinds)) {
      case 'string': {
        const hi = int(0, 6);
        const s: Record<string, unknown> = { type: 'string', maxLength: hi };
        if (rng.next() < 0.5) s.minLength = int(0, hi);
        return s;
      }
      case 'number':
      case 'integer': {
        const s: Record<string, unknown> = { type: rng.next() < 0.5 ? 'number' : 'integer' };
        const a = Math.round((rng.next() * 200 - 100) * 4) / 4, b = a + Math.round(rng.next() * 300) / 10;
        if (rng.next() < 0.6) s.minimum = a;
        if (rng.next() < 0.6) s.maximum = b;
        if (s.type === 'integer' && s.minimum !== undefined && s.maximum !== undefined && Math.ceil(a) > Math.floor(b)) s.maximum = Math.ceil(a) + 3;
        return s;
      }
      case 'boolean': return { type: 'boolean' };
      case 'null': return { type: 'null', description: 'nothing' };
      case 'enum': return { enum: [pick(['x', 'y z', 'é']), int(-5, 5), null, { k: [1, 'v'] }, [true]].slice(0, int(1, 5)) };
      case 'const': return { const: pick(['c', 12.5, false, { a: null }, ['q', 2]]) };
      case 'types': return { type: ['string', 'null', 'integer'].slice(0, int(2, 3)), maxLength: int(0, 4), minimum: 0, maximum: 9 };
      case 'anyOf': return { anyOf: Array.from({ length: int(2, 3) }, () => gen(depth + 1)) };
      case 'array': {
        const hi = int(0, 3);
        const s: Record<string, unknown> = { type: 'array', items: gen(depth + 1), maxItems: hi };
        if (rng.next() < 0.4) s.minItems = int(0, Math.min(hi, 1));
        return s;
      }
      case 'object': {
        const n = int(depth === 0 ? 1 : 0, 5);
        const props: Record<string, unknown> = {};
        for (let i = 0; i < n; i++) props[pick(['id', 'name', 'value', 'items', 'x', 'ok', 'note', 'ünï', 'a b'])] = gen(depth + 1);
        const keys = Object.keys(props);
        const s: Record<string, unknown> = { type: 'object', properties: props, required: keys.filter(() => rng.next() < 0.5) };
        if (rng.next() < 0.5) s.additionalProperties = false;
        return s;
      }
      case 'ref': {
        const name = `d${Object.keys(defs).length}`;
        if (rng.next() < 0.3) {
          // Recursive: a node with at most one optional child of its own kind.
          defs[name] = { type: 'object', properties: { v: { type: 'integer', minimum: 0, maximum: 9 }, child: { $ref: `#/$defs/${name}` } }, required: ['v'] };
        } else defs[name] = gen(depth + 1);
        return { $ref: `#/$defs/${name}` };
      }
    }
    return { type: 'null' };
  };
  const root = gen(0);
  return Object.keys(defs).length ? { ...root, $defs: defs } : root;
}

test('schema fuzzing: sampled outputs of a random-weight model always parse and validate', async () => {
  const { model } = tinyModel({ vocab_size: tok.vocabSize, max_context_length: 1024, rope_max_length: 1024 }, 3);
  const rng = new Rng(99);
  let done = 0, tokens = 0;
  for (let round = 0; round < 30; round++) {
    const schema = randomSchema(rng);
    let c: GrammarMasker;
    try { c = new GrammarMasker(compileJsonSchema(schema), vocab); } catch (e) {
      assert.fail(`${JSON.stringify(schema)} does not compile: ${(e as Error).message}`);
    }
    for (let sample = 0; sample < 2; sample++) {
      const m = c.newMatcher();
      const sampler = new Sampler({ temperature: 1, seed: round * 10 + sample });
      const cache = model.newCache(1024);
      const ids: number[] = [];
      let logits = await model.forward([{ cache, tokens: [tok.bosId] }]);
      for (;;) {
        m.mask(logits);
        const id = sampler.sample(logits);
        assert.ok(m.accept(id), `sampled a token outside the mask: ${id}`);
        if (id === tok.eosId) break;
        ids.push(id);
        if (m.isTerminal) break;
        assert.ok(cache.length + 1 < cache.capacity, `${JSON.stringify(schema)}: no end in sight after ${ids.length} tokens: ${tok.decode(ids).slice(0, 200)}`);
        logits = await model.forward([{ cache, tokens: [id] }]);
      }
      const text = tok.decode(ids);
      let value: unknown;
      assert.doesNotThrow(() => { value = JSON.parse(text); }, `${JSON.stringify(schema)}: not JSON: ${text}`);
      assert.equal(ajvCheck(schema, value), null, `${JSON.stringify(schema)}: ${text}`);
      assert.equal(validateJson(schema, value), null, `${JSON.stringify(schema)}: ${text}`);
      cache.dispose();
      done++;
      tokens += ids.length;
    }
  }
  assert.equal(done, 60);
  assert.ok(tokens > 300, `only ${tokens} tokens sampled`);
});

test('a GrammarMatcher drives the shared decode step: the text parses, validates, and ends with finish "stop"', async () => {
  const { SequenceDecoder } = await import('../src/generate/decode.js');
  const { model } = tinyModel({ vocab_size: tok.vocabSize, max_context_length: 512, rope_max_length: 512 }, 8);
  const schema = { type: 'object', properties: { id: { type: 'integer', minimum: 1, maximum: 999 }, tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 3 }, ok: { type: 'boolean' } }, required: ['id', 'ok'] };
  const masker = new GrammarMasker(compileJsonSchema(schema), vocab);
  for (let seed = 0; seed < 4; seed++) {
    const prompt = [tok.bosId, ...tok.encode('JSON:')];
    const dec = new SequenceDecoder(tok, prompt, tok.eosId, { temperature: 1, seed, maxTokens: 400, constraint: masker.newMatcher() });
    const cache = model.newCache(512);
    let logits = await model.forward([{ cache, tokens: prompt }]);
    for (;;) {
      const r = dec.step(logits, cache.length + 1 < cache.capacity);
      if (r.done) break;
      logits = await model.forward([{ cache, tokens: [r.id] }]);
    }
    cache.dispose();
    assert.equal(dec.finish, 'stop', dec.text);
    assert.equal(ajvCheck(schema, JSON.parse(dec.text)), null, dec.text);
  }
});
