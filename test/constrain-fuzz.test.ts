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
import { randomSchema } from './helpers/random-schema.js';

const tok = loadTokenizer();
const vocab = tokenizerVocab(tok);

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
