// Validation of a JSON value against the supported JSON-schema subset (see json-schema.ts), with
// JSON Schema's own semantics: a missing additionalProperties allows other keys, minLength counts
// code points, integers are numbers with no fraction. Used to keep the `enum`/`const` values that
// also satisfy their sibling keywords, and to check outputs.

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

/** Resolves a local JSON pointer ("#", "#/$defs/x") in `root`; undefined when it does not exist. */
export function resolvePointer(root: unknown, ref: string): unknown {
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) return undefined;
  let cur: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    let key: string;
    try { key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~'); } catch { return undefined; }
    if (Array.isArray(cur) && /^(0|[1-9]\d*)$/.test(key)) cur = cur[Number(key)];
    else if (isObject(cur) && Object.hasOwn(cur, key)) cur = cur[key];
    else return undefined;
  }
  return cur;
}

function typeOk(t: string, v: unknown): boolean {
  switch (t) {
    case 'string': return typeof v === 'string';
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'integer': return typeof v === 'number' && Number.isInteger(v);
    case 'boolean': return typeof v === 'boolean';
    case 'null': return v === null;
    case 'object': return isObject(v);
    case 'array': return Array.isArray(v);
    default: return false;
  }
}

/** Returns null when `value` satisfies `schema`, else a message naming where it fails. */
export function validateJson(schema: unknown, value: unknown, root: unknown = schema, path = '$'): string | null {
  if (schema === true) return null;
  if (schema === false) return `${path}: no value is allowed here`;
  if (!isObject(schema)) return `${path}: invalid schema`;
  const s = schema;
  if (typeof s.$ref === 'string') {
    const target = resolvePointer(root, s.$ref);
    if (target === undefined) return `${path}: $ref ${s.$ref} not found`;
    const e = validateJson(target, value, root, path);
    if (e) return e;
  }
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type as string[] : [s.type as string];
    if (!types.some((t) => typeOk(t, value))) return `${path}: expected ${types.join(' or ')}`;
  }
  if (Object.hasOwn(s, 'const') && !jsonEqual(s.const, value)) return `${path}: expected the constant ${JSON.stringify(s.const)}`;
  if (Array.isArray(s.enum) && !s.enum.some((e) => jsonEqual(e, value))) return `${path}: not one of the enum values`;
  if (Array.isArray(s.anyOf) && !s.anyOf.some((sub) => validateJson(sub, value, root, path) === null)) return `${path}: matches none of anyOf`;
  if (typeof value === 'string') {
    const n = [...value].length;
    if (typeof s.minLength === 'number' && n < s.minLength) return `${path}: shorter than minLength ${s.minLength}`;
    if (typeof s.maxLength === 'number' && n > s.maxLength) return `${path}: longer than maxLength ${s.maxLength}`;
  }
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) return `${path}: below minimum ${s.minimum}`;
    if (typeof s.maximum === 'number' && value > s.maximum) return `${path}: above maximum ${s.maximum}`;
  }
  if (isObject(value)) {
    const props = isObject(s.properties) ? s.properties : {};
    if (Array.isArray(s.required)) for (const k of s.required as string[]) if (!Object.hasOwn(value, k)) return `${path}: missing required property ${JSON.stringify(k)}`;
    for (const [k, v] of Object.entries(value)) {
      if (Object.hasOwn(props, k)) {
        const e = validateJson(props[k], v, root, `${path}.${k}`);
        if (e) return e;
      } else if (s.additionalProperties === false) return `${path}: property ${JSON.stringify(k)} is not allowed`;
    }
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === 'number' && value.length < s.minItems) return `${path}: fewer than minItems ${s.minItems}`;
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) return `${path}: more than maxItems ${s.maxItems}`;
    if (s.items !== undefined) {
      for (let i = 0; i < value.length; i++) {
        const e = validateJson(s.items, value[i], root, `${path}[${i}]`);
        if (e) return e;
      }
    }
  }
  return null;
}
