// Structured output end to end: response_format / grammar / json_schema on both endpoints, n > 1,
// streaming, the grammar cache, bad schemas and grammars (400s that say what is wrong), schema
// fuzzing through the server, the library's jsonSchema/grammar options and the CLI flags.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, type LoadedModel } from '../src/api.js';
import { createServer, type OpenELMServer } from '../src/serve/server.js';
import { GrammarCache } from '../src/generate/constrain/cache.js';
import { Rng } from '../src/core/rng.js';
import { tinyModelDir } from './helpers/tiny.js';
import { post as postTo, sseEvents } from './helpers/http.js';
import { ajvCheck } from './helpers/ajv.js';
import { randomSchema } from './helpers/random-schema.js';
import { runCli } from './helpers/cli.js';

const dir = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 512, rope_max_length: 512 }, 41);
const model: LoadedModel = await loadModel(dir, { backend: 'js' });
const lines: string[] = [];
const srv: OpenELMServer = await createServer({ model, port: 0, slots: 4, log: (l) => lines.push(l) });
await srv.ready;
after(async () => { await srv.close(); model.dispose(); });

const post = (route: string, body: unknown) => postTo(`${srv.url}${route}`, body);

function expect400(r: { status: number; json: () => { error: { message: string } } }, re: RegExp) {
  assert.equal(r.status, 400, JSON.stringify(r.json()));
  assert.match(r.json().error.message, re);
}

const PERSON = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 6 }, age: { type: 'integer', minimum: 0, maximum: 99 }, ok: { type: 'boolean' } },
  required: ['name', 'age', 'ok'],
};
const msgs = [{ role: 'user', content: 'Describe a person as JSON.' }];

test('response_format json_schema on chat: every choice parses, validates and stops when the value is complete; n choices = n seeds', async () => {
  const body = { messages: msgs, response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON, strict: true } }, temperature: 1, seed: 11, max_tokens: 200 };
  const r = await post('/v1/chat/completions', { ...body, n: 3 });
  assert.equal(r.status, 200, r.text);
  const j = r.json();
  assert.deepEqual(j.choices.map((c: { index: number }) => c.index), [0, 1, 2]);
  for (const c of j.choices) {
    assert.equal(c.finish_reason, 'stop', c.message.content);
    assert.equal(ajvCheck(PERSON, JSON.parse(c.message.content)), null, c.message.content);
  }
  // Choice k is what one choice with seed + k gives (each choice is its own sequence); the prompt
  // counts once in usage, the completions add up.
  let completion = 0;
  for (let k = 0; k < 3; k++) {
    const one = (await post('/v1/chat/completions', { ...body, seed: 11 + k })).json();
    assert.equal(one.choices[0].message.content, j.choices[k].message.content);
    assert.equal(one.usage.prompt_tokens, j.usage.prompt_tokens);
    completion += one.usage.completion_tokens;
  }
  assert.equal(j.usage.completion_tokens, completion);
  // Streamed, the content deltas add up to the same text.
  const s = await post('/v1/chat/completions', { ...body, stream: true });
  const ev = sseEvents(s.text);
  const text = ev.map((e) => e.choices[0]?.delta?.content ?? '').join('');
  const plain = (await post('/v1/chat/completions', body)).json().choices[0].message.content;
  assert.equal(text, plain);
  assert.equal(ev[ev.length - 1].choices[0].finish_reason, 'stop');
});

test('json_object on completions, grammar (GBNF) on completions and chat, llama.cpp json_schema field', async () => {
  const o = (await post('/v1/completions', { prompt: 'JSON:', response_format: { type: 'json_object' }, temperature: 1, seed: 3, max_tokens: 60, n: 2 })).json();
  for (const c of o.choices) {
    if (c.finish_reason === 'stop') {
      const v = JSON.parse(c.text);
      assert.ok(v && typeof v === 'object' && !Array.isArray(v), c.text);
    } else assert.match(c.text, /^\{/);
  }
  const grammar = 'root ::= ("yes" | "no") " " [0-9]{2}';
  for (const route of ['/v1/completions', '/v1/chat/completions']) {
    const b = route.includes('chat') ? { messages: msgs } : { prompt: 'Answer:' };
    const g = (await post(route, { ...b, grammar, temperature: 1, seed: 5, max_tokens: 50, n: 4 })).json();
    for (const c of g.choices) {
      const text = c.text ?? c.message.content;
      assert.match(text, /^(yes|no) [0-9]{2}$/);
      assert.equal(c.finish_reason, 'stop');
    }
  }
  const js = (await post('/v1/completions', { prompt: 'x', json_schema: { enum: ['red', 'green', 7] }, temperature: 1, seed: 1, max_tokens: 20 })).json();
  assert.ok(['"red"', '"green"', '7'].includes(js.choices[0].text), js.choices[0].text);
});

test('bad schemas and grammars are 400s that say what is wrong; conflicting constraints too', async () => {
  const rf = (schema: unknown) => ({ messages: msgs, response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } });
  expect400(await post('/v1/chat/completions', rf({ type: 'object', properties: { a: { type: 'string', pattern: '^x' } } })), /"pattern" is not supported/);
  expect400(await post('/v1/chat/completions', rf({ type: 'object', properties: { a: { type: 'string', pattern: '^x' } } })), /#\/properties\/a/);
  expect400(await post('/v1/chat/completions', rf({ type: 'integer', minimum: 5, maximum: 2 })), /unsatisfiable/);
  expect400(await post('/v1/completions', { prompt: 'x', grammar: 'root ::= "a"\nitem ::= ( "b" ' }), /^grammar:2:\d+: /);
  expect400(await post('/v1/completions', { prompt: 'x', grammar: 'root ::= nothing' }), /grammar:1:\d+: .*nothing/);
  expect400(await post('/v1/completions', { prompt: 'x', grammar: 'root ::= "a"', response_format: { type: 'json_object' } }), /give one of "response_format"/);
  expect400(await post('/v1/chat/completions', { messages: msgs, response_format: { type: 'xml' } }), /"response_format" type "xml" is not supported/);
  expect400(await post('/v1/chat/completions', { messages: msgs, response_format: { type: 'json_schema', json_schema: { name: 'x' } } }), /json_schema.schema" is required/);
  expect400(await post('/v1/chat/completions', { messages: msgs, response_format: { type: 'json_schema', json_schema: { name: 'a b', schema: {} } } }), /json_schema.name" must be/);
  expect400(await post('/v1/chat/completions', { messages: msgs, grammar: 42 }), /"grammar" must be GBNF text/);
  // "text" is the unconstrained default.
  assert.equal((await post('/v1/chat/completions', { messages: msgs, response_format: { type: 'text' }, max_tokens: 2 })).status, 200);
});

test('grammars are compiled once and shared (LRU); /metrics and the access log show constrained requests', async () => {
  const schema = { type: 'object', properties: { k: { enum: ['a', 'b'] } }, required: ['k'] };
  const before = model.grammars.stats();
  for (let i = 0; i < 3; i++) {
    const r = (await post('/v1/completions', { prompt: 'x', json_schema: schema, temperature: 1, seed: i, max_tokens: 30 })).json();
    assert.match(r.choices[0].text, /^\{"k": ?"[ab]"\}$/);
  }
  const after = model.grammars.stats();
  assert.equal(after.misses - before.misses, 1);
  assert.equal(after.hits - before.hits, 2);
  const m = await (await fetch(`${srv.url}/metrics`)).text();
  assert.match(m, /^# TYPE openelm_requests_total counter$/m);
  assert.match(m, /^openelm_requests_total\{route="\/v1\/completions",status="200"\} \d+$/m);
  assert.match(m, /^openelm_constrained_choices_total\{kind="json_schema"\} \d+$/m);
  assert.match(m, /^openelm_grammar_cache_hits_total \d+$/m);
  assert.match(m, /^openelm_generated_tokens_total \d+$/m);
  assert.match(m, /^openelm_request_duration_seconds_bucket\{route="\/v1\/completions",le="\+Inf"\} \d+$/m);
  const line = lines.filter((l) => l.includes('"POST /v1/completions" 200')).pop()!;
  assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z 127\.0\.0\.1 "POST \/v1\/completions" 200 \d+ms prompt=\d+ completion=\d+ choices=1 finish=stop constraint=json_schema$/);
});

test('GrammarCache: least recently used goes first; the key is the exact schema text', () => {
  const c = new GrammarCache(model.tokenizer, 2);
  const a = c.masker({ kind: 'json_schema', schema: { const: 1 } });
  const b = c.masker({ kind: 'grammar', text: 'root ::= "b"' });
  assert.equal(c.masker({ kind: 'json_schema', schema: { const: 1 } }), a);
  c.masker({ kind: 'json_object' });
  assert.equal(c.stats().entries, 2);
  assert.equal(c.masker({ kind: 'json_schema', schema: { const: 1 } }), a, 'a was used last, so b went');
  assert.notEqual(c.masker({ kind: 'grammar', text: 'root ::= "b"' }), b);
  assert.deepEqual({ hits: c.stats().hits, misses: c.stats().misses }, { hits: 2, misses: 4 });
  assert.throws(() => new GrammarCache(model.tokenizer, 0), /capacity must be an integer >= 1/);
});

test('schema fuzzing through the server: random schemas, temperature 1, two choices each: every output validates', async () => {
  const rng = new Rng(2024);
  let n = 0;
  for (let round = 0; round < 6; round++) {
    const schema = randomSchema(rng);
    const r = await post('/v1/chat/completions', { messages: msgs, response_format: { type: 'json_schema', json_schema: { name: 'fuzz', schema } }, temperature: 1, seed: round, max_tokens: 450, n: 2 });
    assert.equal(r.status, 200, `${JSON.stringify(schema)}: ${r.text}`);
    for (const c of r.json().choices) {
      assert.equal(c.finish_reason, 'stop', `${JSON.stringify(schema)}: ${c.message.content}`);
      assert.equal(ajvCheck(schema, JSON.parse(c.message.content)), null, `${JSON.stringify(schema)}: ${c.message.content}`);
      n++;
    }
  }
  assert.equal(n, 12);
});

test('library: generate/stream with jsonSchema or grammar', async () => {
  const r = await model.generate('Person:', { jsonSchema: PERSON, temperature: 1, seed: 4, maxTokens: 200 });
  assert.equal(r.finishReason, 'stop');
  assert.equal(ajvCheck(PERSON, JSON.parse(r.text)), null, r.text);
  const s = model.stream('Answer:', { grammar: 'root ::= [a-c]{3} "!"', temperature: 1, seed: 2 });
  let text = '';
  for await (const c of s) text += c.text;
  assert.match(text, /^[a-c]{3}!$/);
  assert.throws(() => model.stream('x', { jsonSchema: {}, grammar: 'root ::= "a"' }), /jsonSchema or grammar, not both/);
  assert.throws(() => model.stream('x', { jsonSchema: { type: 'string', format: 'email' } }), /"format" is not supported/);
});

test('CLI: generate --json-schema FILE / --grammar FILE; bad files are one-line usage errors (exit 2)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-cli-schema-'));
  const schemaFile = path.join(tmp, 'person.json');
  fs.writeFileSync(schemaFile, JSON.stringify(PERSON));
  const out = runCli(['generate', '--model', dir, '--prompt', 'Person:', '--json-schema', schemaFile, '--temperature', '1', '--seed', '3', '--max-tokens', '200', '--json', '--backend', 'js']);
  assert.equal(out.status, 0, out.stderr);
  const j = JSON.parse(out.stdout);
  assert.equal(j.finish_reason, 'stop');
  assert.equal(ajvCheck(PERSON, JSON.parse(j.text)), null, j.text);
  const gFile = path.join(tmp, 'yn.gbnf');
  fs.writeFileSync(gFile, 'root ::= "yes" | "no"\n');
  const g = runCli(['generate', '--model', dir, '--prompt', 'Q:', '--grammar', gFile, '--temperature', '1', '--seed', '1', '--backend', 'js']);
  assert.equal(g.status, 0, g.stderr);
  assert.match(g.stdout, /^(yes|no)\n$/);
  const bad = (args: string[], re: RegExp) => {
    const r = runCli(['generate', '--model', dir, '--prompt', 'x', '--backend', 'js', ...args]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  };
  fs.writeFileSync(path.join(tmp, 'broken.gbnf'), 'root ::= "a"\nx ::= [b-\n');
  bad(['--grammar', path.join(tmp, 'broken.gbnf')], /--grammar .*broken\.gbnf:2:\d+: /);
  fs.writeFileSync(path.join(tmp, 'pat.json'), JSON.stringify({ type: 'string', pattern: 'x' }));
  bad(['--json-schema', path.join(tmp, 'pat.json')], /--json-schema .*pat\.json: .*"pattern" is not supported/);
  fs.writeFileSync(path.join(tmp, 'nojson.json'), '{type: object}');
  bad(['--json-schema', path.join(tmp, 'nojson.json')], /--json-schema .*nojson\.json: not valid JSON/);
  bad(['--json-schema', path.join(tmp, 'missing.json')], /--json-schema .*missing\.json: no such file/);
  bad(['--json-schema', schemaFile, '--grammar', gFile], /--json-schema and --grammar are alternatives/);
});
