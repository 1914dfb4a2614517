import { test } from 'node:test';
import assert from 'node:assert/strict';

import { compileJsonSchema, compileJsonObject } from '../src/generate/constrain/compile.js';
import { jsonSchemaToGbnf, SchemaError } from '../src/generate/constrain/json-schema.js';
import { validateJson } from '../src/generate/constrain/validate.js';
import { GrammarRuntime, DEAD, HAS_ACCEPT } from '../src/generate/constrain/pda.js';
import { OpenELMError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { ajvCheck } from './helpers/ajv.js';

const enc = new TextEncoder();

function matcher(schema: unknown) {
  const rt = new GrammarRuntime(compileJsonSchema(schema));
  return (s: string): boolean => {
    const st = rt.run(rt.initial, enc.encode(s));
    return st !== DEAD && (rt.flags[st] & HAS_ACCEPT) !== 0;
  };
}

interface Case { name: string; schema: unknown; yes: string[]; no: string[] }

const CASES: Case[] = [
  { name: 'type string', schema: { type: 'string' }, yes: ['""', '"a b"', '"é😀\\n\\"\\u00e9\\/"'], no: ['a', '"\n"', '"\\x"', '"\\ud800"', '1', 'null'] },
  { name: 'type number', schema: { type: 'number' }, yes: ['0', '-1.5', '12e3', '1E-07', '-0.0001'], no: ['01', '.5', '1.', '+1', '"1"', '1e123', '12345678901234567'] },
  { name: 'type integer', schema: { type: 'integer' }, yes: ['0', '-7', '1234567890123456'], no: ['1.0', '1e3', '-', '00'] },
  { name: 'type boolean', schema: { type: 'boolean' }, yes: ['true', 'false'], no: ['True', '1'] },
  { name: 'type null', schema: { type: 'null' }, yes: ['null'], no: ['nul', '"null"'] },
  { name: 'type list', schema: { type: ['string', 'null'] }, yes: ['"x"', 'null'], no: ['1', 'true'] },
  { name: 'type object (any object)', schema: { type: 'object' }, yes: ['{}', '{"a": 1, "b":[{}]}'], no: ['[]', '{"a"}', '{ }'] },
  { name: 'type array (any array)', schema: { type: 'array' }, yes: ['[]', '[1, "a", null, [true]]'], no: ['[1,]', '[ 1]'] },
  { name: 'empty schema: any value', schema: {}, yes: ['1', '"s"', '{"a": [null]}', 'false'], no: ['', 'nan'] },
  {
    name: 'properties and required (schema order, optional ones may be left out, nothing else)',
    schema: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'string' }, c: { type: 'boolean' } }, required: ['b'] },
    yes: ['{"b": "x"}', '{"a": 1, "b": "x"}', '{"a":1,"b":"x","c":true}', '{"b":"x", "c":false}'],
    no: ['{}', '{"a": 1}', '{"b": "x", "a": 1}', '{"b": "x", "d": 1}', '{"b": 1}', '{"a": 1, "a": 2, "b": "x"}'],
  },
  {
    name: 'all optional', schema: { type: 'object', properties: { a: { type: 'null' }, b: { type: 'null' } } },
    yes: ['{}', '{"a": null}', '{"b": null}', '{"a": null, "b": null}'], no: ['{,"b": null}', '{"a": null,}'],
  },
  {
    name: 'additionalProperties false', schema: { type: 'object', properties: { x: { type: 'number' } }, required: ['x'], additionalProperties: false },
    yes: ['{"x": 1}'], no: ['{"x": 1, "y": 2}', '{}'],
  },
  {
    name: 'required names not in properties get any value', schema: { type: 'object', required: ['k'] },
    yes: ['{"k": [1, {"z": null}]}'], no: ['{}', '{"j": 1}'],
  },
  {
    name: 'property names are JSON-escaped', schema: { type: 'object', properties: { 'a"b\\c\u00e9': { const: 1 } }, required: ['a"b\\c\u00e9'] },
    yes: ['{"a\\"b\\\\cé": 1}'], no: ['{"a"b\\cé": 1}'],
  },
  { name: 'items', schema: { type: 'array', items: { type: 'integer' } }, yes: ['[]', '[1]', '[1, 2,3]'], no: ['[1.5]', '["a"]'] },
  { name: 'minItems/maxItems', schema: { type: 'array', items: { type: 'null' }, minItems: 1, maxItems: 3 }, yes: ['[null]', '[null, null, null]'], no: ['[]', '[null, null, null, null]'] },
  { name: 'maxItems 0', schema: { type: 'array', maxItems: 0 }, yes: ['[]'], no: ['[1]'] },
  { name: 'minItems only', schema: { type: 'array', items: { const: 0 }, minItems: 2 }, yes: ['[0, 0]', '[0,0,0,0,0]'], no: ['[0]'] },
  { name: 'enum', schema: { enum: ['red', 2, null, { a: [1, true] }, [1]] }, yes: ['"red"', '2', 'null', '{"a":[1,true]}', '[1]'], no: ['"blue"', '{"a": [1, true]}', '3'] },
  { name: 'enum filtered by type', schema: { type: 'string', enum: ['a', 1, 'bb'], maxLength: 1 }, yes: ['"a"'], no: ['1', '"bb"'] },
  { name: 'const', schema: { const: 'x"y' }, yes: ['"x\\"y"'], no: ['"x"'] },
  { name: 'anyOf', schema: { anyOf: [{ type: 'integer', minimum: 10 }, { type: 'string', maxLength: 1 }] }, yes: ['10', '99', '"a"'], no: ['9', '"ab"', 'null'] },
  {
    name: '$ref/$defs with recursion (linked list)',
    schema: { $ref: '#/$defs/node', $defs: { node: { type: 'object', properties: { v: { type: 'integer' }, next: { anyOf: [{ $ref: '#/$defs/node' }, { type: 'null' }] } }, required: ['v', 'next'] } } },
    yes: ['{"v": 1, "next": null}', '{"v": 1, "next": {"v": 2, "next": {"v": 3, "next": null}}}'], no: ['{"v": 1}', '{"v": 1, "next": {"v": 2}}'],
  },
  {
    name: 'definitions and the root "#"', schema: { type: 'array', items: { anyOf: [{ $ref: '#' }, { $ref: '#/definitions/leaf' }] }, maxItems: 2, definitions: { leaf: { type: 'boolean' } } },
    yes: ['[]', '[true, [false, []]]'], no: ['[1]', '[true, true, true]'],
  },
  { name: 'minLength/maxLength count code points; an escape is one', schema: { type: 'string', minLength: 2, maxLength: 3 }, yes: ['"ab"', '"é😀"', '"\\n\\t"', '"a\\u0041b"'], no: ['"a"', '"abcd"', '"😀"', '""'] },
  { name: 'minimum/maximum (integer)', schema: { type: 'integer', minimum: -5, maximum: 12 }, yes: ['-5', '0', '-0', '12', '7'], no: ['-6', '13', '120', '-50', '1.0'] },
  { name: 'minimum/maximum (number)', schema: { type: 'number', minimum: 0.25, maximum: 3 }, yes: ['0.25', '0.250', '1', '2.9999', '3', '3.000'], no: ['0.2', '0.24999', '3.0001', '4', '1e0', '-1'] },
  { name: 'annotations are ignored', schema: { title: 't', description: 'd', default: 1, examples: [1], $comment: 'c', $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'integer', deprecated: false }, yes: ['1'], no: ['"1"'] },
];

test('JSON schema: each keyword, accepted and rejected documents (accepted ones validate with Ajv)', () => {
  for (const c of CASES) {
    const m = matcher(c.schema);
    for (const y of c.yes) {
      assert.ok(m(y), `${c.name}: should accept ${y}`);
      const v = JSON.parse(y);
      assert.equal(ajvCheck(c.schema, v), null, `${c.name}: Ajv rejects ${y}`);
      assert.equal(validateJson(c.schema, v), null, `${c.name}: validateJson rejects ${y}`);
    }
    for (const n of c.no) assert.ok(!m(n), `${c.name}: should reject ${n}`);
  }
});

test('JSON schema whitespace: at most one space after ":" and ",", none elsewhere', () => {
  const m = matcher({ type: 'object', properties: { a: { type: 'array', items: { type: 'integer' } }, b: { type: 'integer' } }, required: ['a', 'b'] });
  for (const y of ['{"a":[1,2],"b":3}', '{"a": [1, 2], "b": 3}', '{"a": [1,2],"b": 3}']) assert.ok(m(y), y);
  for (const n of ['{"a":  [1], "b": 3}', '{ "a": [1], "b": 3}', '{"a" : [1], "b": 3}', '{"a": [1 ], "b": 3}', '{"a": [1],\n"b": 3}', '{"a": [1], "b": 3} ', ' {"a": [1], "b": 3}', '{"a": [1],\t"b": 3}']) {
    assert.ok(!m(n), JSON.stringify(n));
  }
});

test('json_object mode: any JSON object, nothing else', () => {
  const rt = new GrammarRuntime(compileJsonObject());
  const ok = (s: string) => { const st = rt.run(rt.initial, enc.encode(s)); return st !== DEAD && (rt.flags[st] & HAS_ACCEPT) !== 0; };
  assert.ok(ok('{"a": {"b": [1, "x", null, true, -2.5e-3]}}'));
  assert.ok(ok('{}'));
  assert.ok(!ok('[]'));
  assert.ok(!ok('"s"'));
  assert.ok(!ok('{"a": 1} {}'));
});

const ERRORS: Array<{ schema: unknown; msg: RegExp }> = [
  { schema: { type: 'string', pattern: '^a' }, msg: /JSON schema #: keyword "pattern" is not supported/ },
  { schema: { type: 'object', properties: { d: { type: 'string', format: 'date' } } }, msg: /#\/properties\/d: keyword "format" is not supported/ },
  { schema: { oneOf: [{ type: 'string' }] }, msg: /keyword "oneOf"/ },
  { schema: { allOf: [{ type: 'string' }] }, msg: /keyword "allOf"/ },
  { schema: { not: { type: 'string' } }, msg: /keyword "not"/ },
  { schema: { type: 'number', exclusiveMinimum: 0 }, msg: /keyword "exclusiveMinimum"/ },
  { schema: { type: 'array', prefixItems: [{ type: 'string' }] }, msg: /keyword "prefixItems"/ },
  { schema: { $id: 'x', type: 'string' }, msg: /keyword "\$id"/ },
  { schema: { type: 'array', items: [{ type: 'string' }] }, msg: /tuple validation/ },
  { schema: { type: 'object', additionalProperties: { type: 'string' } }, msg: /"additionalProperties" as a schema/ },
  { schema: { type: 'object', anyOf: [{ required: ['a'] }] }, msg: /"anyOf" together with "type"/ },
  { schema: { $ref: '#/$defs/a', maxLength: 3, $defs: { a: { type: 'string' } } }, msg: /"\$ref" together with "maxLength"/ },
  { schema: { $ref: 'https://example.com/s.json' }, msg: /only local references/ },
  { schema: { $ref: '#/$defs/missing' }, msg: /does not point into the schema/ },
  { schema: { $ref: '#/%E0%A4%A' }, msg: /does not point into the schema/ },
  { schema: { $ref: '#/$defs/a', $defs: { a: { anyOf: [{ $ref: '#/$defs/a' }, { type: 'null' }] } } }, msg: /refers to itself without an enclosing object or array/ },
  { schema: { type: 'strng' }, msg: /"type" "strng" is not one of/ },
  { schema: { type: 'string', minLength: -1 }, msg: /"minLength" must be a non-negative integer/ },
  { schema: { type: 'string', maxLength: 1e6 }, msg: /larger than the supported 10000/ },
  { schema: { type: 'number', minimum: 'a' }, msg: /"minimum" must be a number/ },
  { schema: 42, msg: /a schema must be an object or a boolean/ },
  // Unsatisfiable.
  { schema: false, msg: /unsatisfiable: #: the schema is false/ },
  { schema: { type: 'string', minLength: 5, maxLength: 2 }, msg: /unsatisfiable: #: minLength 5 is above maxLength 2/ },
  { schema: { type: 'integer', minimum: 1.2, maximum: 1.8 }, msg: /unsatisfiable: #: no integer lies in \[1.2, 1.8\]/ },
  { schema: { type: 'number', minimum: 3, maximum: 2 }, msg: /unsatisfiable/ },
  { schema: { type: 'integer', minimum: 1e17 }, msg: /unsatisfiable/ },
  { schema: { type: 'string', enum: [1, 2] }, msg: /unsatisfiable: #: no "enum" value satisfies the other keywords/ },
  { schema: { type: 'object', properties: {}, required: ['a'], additionalProperties: false }, msg: /required property "a" is not in "properties"/ },
  { schema: { type: 'object', properties: { a: false }, required: ['a'] }, msg: /unsatisfiable: #\/properties\/a: the schema is false/ },
  { schema: { type: 'object', properties: { a: { $ref: '#/$defs/x' } }, required: ['a'], $defs: { x: { type: 'object', properties: { z: { $ref: '#/$defs/x' } }, required: ['z'] } } }, msg: /nest forever/ },
  { schema: { anyOf: [false, { type: 'array', minItems: 2, maxItems: 1 }] }, msg: /unsatisfiable: #\/anyOf\/0: the schema is false/ },
  { schema: { type: 'array', items: false, minItems: 1 }, msg: /unsatisfiable: #\/items: the schema is false/ },
  { schema: { type: 'array', items: { type: 'string', enum: [] }, minItems: 1 }, msg: /unsatisfiable: #\/items: no "enum" value/ },
  { schema: { $ref: '#/$defs/a', $defs: { a: { type: 'object', properties: { n: { $ref: '#/$defs/a' } }, required: ['n'] } } }, msg: /unsatisfiable: every value would have to nest forever/ },
];

test('JSON schema errors: unsupported keywords are named with their path; unsatisfiable schemas are refused', () => {
  for (const c of ERRORS) {
    assert.throws(() => compileJsonSchema(c.schema), (e: unknown) => {
      assert.ok(e instanceof OpenELMError, String(e));
      assert.match((e as Error).message, c.msg, JSON.stringify(c.schema));
      assert.ok(!(e as Error).message.includes('\n'));
      return true;
    }, JSON.stringify(c.schema));
  }
  // Parts that cannot be satisfied but are optional are simply left out.
  const m = matcher({ type: 'object', properties: { a: false, b: { type: 'integer', minimum: 5, maximum: 1 }, c: { const: 1 } } });
  assert.ok(m('{"c": 1}'));
  assert.ok(m('{}'));
  assert.ok(!m('{"a": 1}'));
  const arr = matcher({ type: 'array', items: { enum: [] } });
  assert.ok(arr('[]'));
  assert.ok(!arr('[1]'));
  assert.ok(SchemaError.prototype instanceof OpenELMError);
});

test('number ranges: the grammar accepts exactly the plain decimals within [minimum, maximum]', () => {
  const rng = new Rng(3);
  const pick = (): number | undefined => {
    const r = rng.next();
    if (r < 0.15) return undefined;
    const scale = [1, 10, 100, 4][Math.floor(rng.next() * 4)];
    return Math.round((rng.next() * 600 - 300) * scale) / scale;
  };
  const candidates: string[] = [];
  for (let i = -320; i <= 320; i++) candidates.push(String(i));
  for (let i = -3200; i <= 3200; i += 7) candidates.push((i / 10).toFixed(1), (i / 10).toFixed(2), (i / 10 + 0.005).toFixed(3));
  for (let i = 0; i < 400; i++) candidates.push((rng.next() * 640 - 320).toFixed(1 + Math.floor(rng.next() * 5)));
  candidates.push('-0', '-0.0', '00', '01', '1.', '.5', '1e2', '-', '0.0000000000000001', '299.99999999999999');
  const plainInt = /^-?(0|[1-9]\d{0,15})$/, plainNum = /^-?(0|[1-9]\d{0,15})(\.\d{1,16})?$/;
  for (let round = 0; round < 40; round++) {
    let lo = pick(), hi = pick();
    if (lo !== undefined && hi !== undefined && lo > hi) [lo, hi] = [hi, lo];
    const kind = round % 2 ? 'integer' : 'number';
    const schema: Record<string, unknown> = { type: kind };
    if (lo !== undefined) schema.minimum = lo;
    if (hi !== undefined) schema.maximum = hi;
    let m: (s: string) => boolean;
    try { m = matcher(schema); } catch (e) {
      // Only an integer range with no integer in it may fail.
      assert.ok(kind === 'integer' && lo !== undefined && hi !== undefined && Math.ceil(lo) > Math.floor(hi), `${JSON.stringify(schema)}: ${(e as Error).message}`);
      continue;
    }
    for (const s of candidates) {
      const v = Number(s);
      const plain = (kind === 'integer' ? plainInt : plainNum).test(s) || (lo === undefined && hi === undefined && kind === 'number' && /^-?(0|[1-9]\d{0,15})(\.\d{1,16})?([eE][-+]?\d{1,2})?$/.test(s));
      const want = plain && (lo === undefined || v >= lo) && (hi === undefined || v <= hi);
      assert.equal(m(s), want, `${JSON.stringify(schema)} on ${s}`);
    }
  }
});

test('the generated GBNF is readable: root first, shared rules named, one space rule', () => {
  const g = jsonSchemaToGbnf({ type: 'object', properties: { a: { type: 'string' }, b: { type: 'array', items: { type: 'string' } } }, required: ['a', 'b'] });
  const lines = g.trim().split('\n');
  assert.match(lines[0], /^root ::= /);
  assert.ok(lines.some((l) => l.startsWith('string ::= "\\"" char* "\\""')), g);
  assert.ok(lines.some((l) => l === 'sp ::= " "?'), g);
});

test('validateJson agrees with Ajv on the cases above and on near misses', () => {
  const values: unknown[] = [null, true, 0, -1, 1.5, 12, 'a', 'ab', 'é😀', [], [1], [null, null], {}, { a: 1 }, { b: 'x' }, { v: 1, next: null }, { x: 1, y: 2 }];
  for (const c of CASES) {
    for (const v of values) assert.equal(validateJson(c.schema, v) === null, ajvCheck(c.schema, v) === null, `${c.name} on ${JSON.stringify(v)}`);
  }
});

test('long counted repetitions unroll linearly and stay exact', () => {
  const g = compileJsonSchema({ type: 'array', items: { type: 'string', minLength: 1, maxLength: 300 }, maxItems: 2 });
  assert.ok(g.nodeCount < 300 * 20, `${g.nodeCount} nodes`);
  const rt = new GrammarRuntime(g);
  const ok = (s: string) => { const st = rt.run(rt.initial, enc.encode(s)); return st !== DEAD && (rt.flags[st] & HAS_ACCEPT) !== 0; };
  assert.ok(ok(`["${'é'.repeat(300)}", "x"]`));
  assert.ok(!ok(`["${'é'.repeat(301)}"]`));
  assert.ok(!ok('[""]'));
});
