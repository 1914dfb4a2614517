// Entry points: text or schema in, compiled grammar out.

import { parseGbnf, GrammarError } from './gbnf.js';
import { compileGrammar, type CompiledGrammar } from './grammar.js';
import { jsonObjectGbnf, jsonSchemaToGbnf, SchemaError } from './json-schema.js';

/** Compiles GBNF text; errors (GrammarError) name `source`, the line and the column. */
export function compileGbnf(text: string, source = 'grammar'): CompiledGrammar {
  return compileGrammar(parseGbnf(text, source));
}

/** Compiles a JSON schema (the supported subset); errors are SchemaError. */
export function compileJsonSchema(schema: unknown): CompiledGrammar {
  const text = jsonSchemaToGbnf(schema);
  try {
    return compileGbnf(text, 'json-schema');
  } catch (e) {
    // The converter rules out local contradictions; what is left is recursion that never ends.
    if (e instanceof GrammarError && /matches nothing/.test(e.message)) {
      throw new SchemaError('JSON schema is unsatisfiable: every value would have to nest forever through its "$ref"s');
    }
    throw e;
  }
}

/** Any JSON object (response_format {"type": "json_object"}). */
export function compileJsonObject(): CompiledGrammar {
  return compileGbnf(jsonObjectGbnf(), 'json-object');
}
