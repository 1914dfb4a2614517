// Random JSON schemas from the subset structured output supports (schema fuzzing).
import type { Rng } from '../../src/core/rng.js';

/** A random schema; sizes are bounded so that a near-uniform model finishes in a few hundred tokens. */
export function randomSchema(rng: Rng): Record<string, unknown> {
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

