// JSON schema → GBNF, for the subset structured output promises to enforce:
//
//   type (one name or a list), properties, required, additionalProperties (false; true is the same
//   as leaving it out), items, enum, const, anyOf, $ref (local: "#", "#/$defs/..", any JSON
//   pointer) with $defs/definitions, minLength/maxLength, minimum/maximum, minItems/maxItems.
//
// Annotations that do not constrain a value (title, description, default, examples, $comment,
// $schema, deprecated, readOnly, writeOnly) are accepted and ignored. Any other keyword is an
// error naming it and where it is: a constraint that were silently dropped would let invalid
// output through. A schema no value can satisfy is an error too.
//
// What is generated (every output validates; not every valid document can be generated):
//   - whitespace: none, except at most one space after ":" and ","; no line breaks;
//   - objects list their properties in the schema's order, each at most once; optional ones may be
//     left out; undeclared properties are never written (a schema without `properties` gets any
//     JSON object);
//   - strings escape only what JSON requires or allows (\uXXXX never names a surrogate, so minLength
//     and maxLength count code points exactly);
//   - numbers have at most 16 integer and 16 fraction digits and a 2-digit exponent, and no
//     exponent when bounded (see number-range.ts);
//   - enum/const values are written as JSON.stringify writes them.

import { OpenELMError } from '../../core/errors.js';
import { GbnfBuilder, gbnfLiteral } from './gbnf-builder.js';
import { numberRange, INTEGER_BODY, NUMBER_BODY } from './number-range.js';
import { resolvePointer, validateJson } from './validate.js';
import { MAX_REPEAT } from './gbnf.js';

/** A schema the compiler refuses: unsupported keyword, bad value, or unsatisfiable. */
export class SchemaError extends OpenELMError {
  constructor(message: string, readonly path = '#') {
    super('schema', message);
    this.name = 'SchemaError';
  }
}

const TYPES = ['string', 'number', 'integer', 'boolean', 'null', 'object', 'array'] as const;
type JsonType = (typeof TYPES)[number];

const SUPPORTED = new Set(['type', 'properties', 'required', 'additionalProperties', 'items', 'enum', 'const', 'anyOf', '$ref', '$defs', 'definitions',
  'minLength', 'maxLength', 'minimum', 'maximum', 'minItems', 'maxItems']);
const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$comment', '$schema', 'deprecated', 'readOnly', 'writeOnly']);
const CONTAINERS = new Set(['$defs', 'definitions']);
const TYPE_KEYWORDS: Record<string, JsonType> = {
  minLength: 'string', maxLength: 'string', minimum: 'number', maximum: 'number',
  properties: 'object', required: 'object', additionalProperties: 'object', items: 'array', minItems: 'array', maxItems: 'array',
};

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Rule names from schema paths start with "s-", apart from the shared rules (value, string, ...). */
const hint = (path: string, what: string) => `s${path.slice(1)}-${what}`;

const pointerKey = (k: string) => k.replace(/~/g, '~0').replace(/\//g, '~1');

const GENERIC: Record<string, string> = {
  sp: '" "?',
  char: '[^"\\\\\\x00-\\x1F] | "\\\\" ( ["\\\\/bfnrt] | "u" ( [0-9a-cA-Ce-fE-F] [0-9a-fA-F] | [dD] [0-7] ) [0-9a-fA-F]{2} )',
  string: '"\\"" char* "\\""',
  number: NUMBER_BODY,
  integer: INTEGER_BODY,
  boolean: '"true" | "false"',
  null: '"null"',
  value: 'object | array | string | number | boolean | null',
  object: '"{" ( string ":" sp value ( "," sp string ":" sp value )* )? "}"',
  array: '"[" ( value ( "," sp value )* )? "]"',
};

class Converter {
  readonly gb = new GbnfBuilder();
  private readonly refs = new Map<string, string>();
  /** $refs entered since the last object or array: a repeat means a schema that contains itself. */
  private chain: string[] = [];
  /** Why parts of the schema can never be satisfied (first one reported if the root is). */
  readonly reasons: string[] = [];

  constructor(private readonly root: unknown) {}

  private generic(name: string): string {
    if (this.gb.has(name)) return name;
    const deps: Record<string, string[]> = {
      string: ['char'], value: ['object', 'array', 'string', 'number', 'boolean', 'null'],
      object: ['string', 'sp', 'value'], array: ['value', 'sp'],
    };
    this.gb.reserve(name);
    for (const d of deps[name] ?? []) this.generic(d);
    this.gb.define(name, GENERIC[name]);
    return name;
  }

  private fail(path: string, msg: string): never {
    throw new SchemaError(`JSON schema ${path}: ${msg}`, path);
  }

  private unsat(path: string, why: string): null {
    this.reasons.push(`${path}: ${why}`);
    return null;
  }

  private count(s: Record<string, unknown>, key: string, path: string): number | undefined {
    const v = s[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) this.fail(path, `"${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
    if ((key === 'maxLength' || key === 'maxItems' || key === 'minLength' || key === 'minItems') && (v as number) > MAX_REPEAT) {
      this.fail(path, `"${key}" ${v} is larger than the supported ${MAX_REPEAT}`);
    }
    return v as number;
  }

  private bound(s: Record<string, unknown>, key: string, path: string): number | undefined {
    const v = s[key];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(path, `"${key}" must be a number, got ${JSON.stringify(v)}`);
    return v as number;
  }

  /** A GBNF expression for the values of `schema`, or null when none can exist. */
  visit(schema: unknown, path: string): string | null {
    if (schema === true) return this.generic('value');
    if (schema === false) return this.unsat(path, 'the schema is false');
    if (!isObject(schema)) this.fail(path, `a schema must be an object or a boolean, got ${JSON.stringify(schema)}`);
    const s = schema as Record<string, unknown>;
    for (const k of Object.keys(s)) {
      if (!SUPPORTED.has(k) && !ANNOTATIONS.has(k)) this.fail(path, `keyword "${k}" is not supported`);
    }
    for (const c of CONTAINERS) if (s[c] !== undefined && !isObject(s[c])) this.fail(path, `"${c}" must be an object of schemas`);
    const constraints = Object.keys(s).filter((k) => SUPPORTED.has(k) && !CONTAINERS.has(k));

    if (s.$ref !== undefined) {
      const other = constraints.find((k) => k !== '$ref');
      if (other) this.fail(path, `"$ref" together with "${other}" is not supported`);
      return this.ref(s.$ref, path);
    }
    if (s.anyOf !== undefined) {
      const other = constraints.find((k) => k !== 'anyOf');
      if (other) this.fail(path, `"anyOf" together with "${other}" is not supported`);
      if (!Array.isArray(s.anyOf) || s.anyOf.length === 0) this.fail(path, '"anyOf" must be a non-empty array of schemas');
      const alts = (s.anyOf as unknown[]).map((sub, i) => this.visit(sub, `${path}/anyOf/${i}`)).filter((x): x is string => x !== null);
      if (!alts.length) return this.unsat(path, 'no "anyOf" branch can be satisfied');
      return alts.length === 1 ? alts[0] : this.gb.add(hint(path, 'anyof'), alts.join(' | '));
    }

    const types = this.types(s, path);
    for (const k of ['minLength', 'maxLength', 'minItems', 'maxItems']) this.count(s, k, path);
    for (const k of ['minimum', 'maximum']) this.bound(s, k, path);
    this.checkObjectKeywords(s, path);
    if (s.items !== undefined && !isObject(s.items) && typeof s.items !== 'boolean') {
      this.fail(path, Array.isArray(s.items) ? '"items" as an array (tuple validation) is not supported' : '"items" must be a schema');
    }

    if (Object.hasOwn(s, 'const') || s.enum !== undefined) {
      if (s.enum !== undefined && !Array.isArray(s.enum)) this.fail(path, '"enum" must be an array');
      const values = Object.hasOwn(s, 'const') ? [s.const] : (s.enum as unknown[]);
      const ok = values.filter((v) => validateJson(s, v, this.root) === null);
      if (!ok.length) return this.unsat(path, `no ${Object.hasOwn(s, 'const') ? '"const"' : '"enum"'} value satisfies the other keywords`);
      const lits = [...new Set(ok.map((v) => gbnfLiteral(JSON.stringify(v))))];
      return this.gb.add(hint(path, 'enum'), lits.join(' | '));
    }

    if (types === null) return this.generic('value');
    const alts: string[] = [];
    for (const t of types) {
      if (t === 'integer' && types.includes('number')) continue;
      const e = this.typed(t, s, path);
      if (e !== null) alts.push(e);
    }
    if (!alts.length) return this.unsat(path, types.length === 1 ? `no ${types[0]} satisfies the keywords` : 'no type satisfies the keywords');
    return alts.length === 1 ? alts[0] : this.gb.add(hint(path, 'types'), alts.join(' | '));
  }

  /** The types to generate, or null for any JSON value. */
  private types(s: Record<string, unknown>, path: string): JsonType[] | null {
    if (s.type !== undefined) {
      const list = Array.isArray(s.type) ? s.type : [s.type];
      if (!list.length) this.fail(path, '"type" must not be an empty list');
      for (const t of list) if (!TYPES.includes(t as JsonType)) this.fail(path, `"type" ${JSON.stringify(t)} is not one of ${TYPES.join(', ')}`);
      return [...new Set(list as JsonType[])];
    }
    const inferred = new Set<JsonType>();
    for (const k of Object.keys(s)) if (TYPE_KEYWORDS[k]) inferred.add(TYPE_KEYWORDS[k]);
    return inferred.size ? [...inferred] : null;
  }

  private checkObjectKeywords(s: Record<string, unknown>, path: string): void {
    if (s.properties !== undefined && !isObject(s.properties)) this.fail(path, '"properties" must be an object of schemas');
    if (s.required !== undefined && (!Array.isArray(s.required) || s.required.some((r) => typeof r !== 'string'))) this.fail(path, '"required" must be an array of property names');
    const ap = s.additionalProperties;
    if (ap !== undefined && typeof ap !== 'boolean') this.fail(path, '"additionalProperties" as a schema is not supported (only false, or true)');
  }

  private ref(ref: unknown, path: string): string | null {
    if (typeof ref !== 'string') this.fail(path, '"$ref" must be a string');
    const p = ref as string;
    if (!p.startsWith('#')) this.fail(path, `"$ref" ${JSON.stringify(p)} is not supported (only local references starting with "#")`);
    if (this.chain.includes(p)) this.fail(path, `"$ref" ${JSON.stringify(p)} refers to itself without an enclosing object or array`);
    const known = this.refs.get(p);
    if (known !== undefined) return known;
    const target = resolvePointer(this.root, p);
    if (target === undefined) this.fail(path, `"$ref" ${JSON.stringify(p)} does not point into the schema`);
    const name = this.gb.reserve(`ref${p.slice(1)}`);
    this.refs.set(p, name);
    this.chain.push(p);
    const body = this.visit(target, p);
    this.chain.pop();
    // An empty class matches nothing: the grammar compiler prunes what depends on it.
    this.gb.define(name, body ?? '[]');
    return name;
  }

  private nested<T>(f: () => T): T {
    const saved = this.chain;
    this.chain = [];
    try { return f(); } finally { this.chain = saved; }
  }

  private typed(t: JsonType, s: Record<string, unknown>, path: string): string | null {
    switch (t) {
      case 'null': return this.generic('null');
      case 'boolean': return this.generic('boolean');
      case 'integer':
      case 'number': {
        const lo = s.minimum as number | undefined, hi = s.maximum as number | undefined;
        const e = numberRange(this.gb, t, lo, hi);
        return e ?? this.unsat(path, `no ${t} lies in [${lo ?? '-inf'}, ${hi ?? 'inf'}]`);
      }
      case 'string': {
        const lo = (s.minLength as number | undefined) ?? 0, hi = s.maxLength as number | undefined;
        if (hi !== undefined && lo > hi) return this.unsat(path, `minLength ${lo} is above maxLength ${hi}`);
        if (lo === 0 && hi === undefined) return this.generic('string');
        this.generic('char');
        return this.gb.add(`string-${lo}-${hi ?? 'inf'}`, `"\\"" char{${lo},${hi ?? ''}} "\\""`);
      }
      case 'array': return this.nested(() => this.array(s, path));
      case 'object': return this.nested(() => this.object(s, path));
    }
  }

  private array(s: Record<string, unknown>, path: string): string | null {
    const lo = (s.minItems as number | undefined) ?? 0, hi = s.maxItems as number | undefined;
    if (hi !== undefined && lo > hi) return this.unsat(path, `minItems ${lo} is above maxItems ${hi}`);
    if (hi === 0) return this.gb.add('empty-array', '"[" "]"');
    const item = s.items === undefined ? this.generic('value') : this.visit(s.items, `${path}/items`);
    if (item === null) return lo === 0 ? this.gb.add('empty-array', '"[" "]"') : this.unsat(path, `minItems ${lo} but no item can be satisfied`);
    if (lo === 0 && hi === undefined && item === 'value') return this.generic('array');
    const sp = this.generic('sp');
    const more = (a: number, b: number | undefined) => (a === 0 && b === undefined ? '*' : `{${a},${b ?? ''}}`);
    const body = lo === 0
      ? `"[" ( ${item} ( "," ${sp} ${item} )${more(0, hi === undefined ? undefined : hi - 1)} )? "]"`
      : `"[" ${item} ( "," ${sp} ${item} )${more(lo - 1, hi === undefined ? undefined : hi - 1)} "]"`;
    return this.gb.add(hint(path, 'array'), body);
  }

  private object(s: Record<string, unknown>, path: string): string | null {
    const props = (s.properties ?? {}) as Record<string, unknown>;
    const required = new Set((s.required ?? []) as string[]);
    const closed = s.additionalProperties === false;
    if (s.properties === undefined && !closed && required.size === 0) return this.generic('object');
    const sp = this.generic('sp');
    const entries: Array<{ kv: string; required: boolean }> = [];
    const names = [...Object.keys(props), ...[...required].filter((r) => !Object.hasOwn(props, r))];
    for (const name of names) {
      const isReq = required.has(name);
      let value: string | null;
      if (Object.hasOwn(props, name)) value = this.visit(props[name], `${path}/properties/${pointerKey(name)}`);
      else if (closed) return this.unsat(path, `required property ${JSON.stringify(name)} is not in "properties" and additionalProperties is false`);
      else value = this.generic('value');
      if (value === null) {
        if (isReq) return this.unsat(path, `required property ${JSON.stringify(name)} can never be satisfied`);
        continue;
      }
      entries.push({ kv: `${gbnfLiteral(JSON.stringify(name))} ":" ${sp} ${value}`, required: isReq });
    }
    // first(i): nothing written yet, properties i.. remain; after(i): something written before.
    const after: string[] = new Array(entries.length + 1);
    after[entries.length] = '';
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i];
      const rest = after[i + 1] ? ` ${after[i + 1]}` : '';
      const body = e.required ? `"," ${sp} ${e.kv}${rest}` : `( "," ${sp} ${e.kv} )?${rest}`;
      after[i] = this.gb.add(hint(path, `a${i}`), body);
    }
    let first = '';
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i];
      const rest = after[i + 1] ? ` ${after[i + 1]}` : '';
      const body = e.required ? `${e.kv}${rest}` : `${e.kv}${rest} | ${first || '""'}`;
      first = this.gb.add(hint(path, `f${i}`), body);
    }
    return this.gb.add(hint(path, 'object'), first ? `"{" ${first} "}"` : '"{" "}"');
  }
}

/** GBNF for the values of a JSON schema (the supported subset above). Throws SchemaError. */
export function jsonSchemaToGbnf(schema: unknown): string {
  const c = new Converter(schema);
  const root = c.visit(schema, '#');
  if (root === null) throw new SchemaError(`JSON schema is unsatisfiable: ${c.reasons[0] ?? 'no value matches it'}`);
  c.gb.define(c.gb.reserve('root'), root);
  return c.gb.toString();
}

/** GBNF for any JSON object (OpenAI's response_format {"type": "json_object"}), same whitespace rule. */
export function jsonObjectGbnf(): string {
  return jsonSchemaToGbnf({ type: 'object' });
}
