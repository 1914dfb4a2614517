// Ajv (JSON Schema 2020-12) as the independent validator of constrained outputs.
import * as Ajv2020Module from 'ajv/dist/2020.js';

interface AjvLike {
  compile(schema: object): ((v: unknown) => boolean) & { errors?: unknown };
  errorsText(errors: unknown): string;
}
// A CommonJS module: the class is its default export.
const Ajv2020 = (Ajv2020Module as unknown as { default: new (o: object) => AjvLike }).default;
const ajv = new Ajv2020({ strict: false });
const compiled = new Map<string, ReturnType<AjvLike['compile']>>();

/** null when `value` is valid under `schema`, else Ajv's error text. */
export function ajvCheck(schema: unknown, value: unknown): string | null {
  const key = JSON.stringify(schema);
  let f = compiled.get(key);
  if (!f) { f = ajv.compile(schema as object); compiled.set(key, f); }
  return f(value) ? null : ajv.errorsText(f.errors);
}
