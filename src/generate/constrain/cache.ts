// Compiled grammars bound to a vocabulary, kept per grammar text: compiling a schema costs tens of
// milliseconds and its masks fill in as documents are generated, so a server or a library user that
// sends the same schema again should find the warm GrammarMasker. Least recently used first out.

import type { Tokenizer } from '../../tokenizer/tokenizer.js';
import { OpenELMError } from '../../core/errors.js';
import { compileGbnf, compileJsonObject, compileJsonSchema } from './compile.js';
import { GrammarMasker, type GrammarMatcher } from './mask.js';
import { tokenizerVocab } from './vocab.js';

/** What a generation is constrained to. */
export type ConstraintSpec =
  | { kind: 'json_object' }
  | { kind: 'json_schema'; schema: unknown }
  /** GBNF text; `source` names it in errors (a file name, a request field). */
  | { kind: 'grammar'; text: string; source?: string };

export interface GrammarCacheStats {
  entries: number;
  capacity: number;
  hits: number;
  misses: number;
  /** Milliseconds spent compiling grammars (cache misses). */
  compileMs: number;
}

/** The cache key: the kind and the exact text (property order matters: it is the output's order). */
export function constraintKey(spec: ConstraintSpec): string {
  switch (spec.kind) {
    case 'json_object': return 'json_object';
    case 'json_schema': return `json_schema\n${JSON.stringify(spec.schema)}`;
    case 'grammar': return `grammar\n${spec.text}`;
  }
}

export class GrammarCache {
  private readonly entries = new Map<string, GrammarMasker>();
  private hits = 0;
  private misses = 0;
  private compileMs = 0;

  /** `capacity`: grammars kept (default 16); each holds its masks (4 KB per cached state for 32000 tokens). */
  constructor(private readonly tokenizer: Tokenizer, readonly capacity = 16) {
    if (!(Number.isInteger(capacity) && capacity >= 1)) throw new OpenELMError('usage', `grammar cache capacity must be an integer >= 1, got ${capacity}`);
  }

  /** The shared masker for `spec`, compiled on first use. Throws SchemaError / GrammarError. */
  masker(spec: ConstraintSpec): GrammarMasker {
    const key = constraintKey(spec);
    const hit = this.entries.get(key);
    if (hit) {
      this.hits++;
      // Map order is insertion order: re-inserting makes it the most recently used.
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    this.misses++;
    const t0 = performance.now();
    const grammar = spec.kind === 'json_object' ? compileJsonObject()
      : spec.kind === 'json_schema' ? compileJsonSchema(spec.schema)
      : compileGbnf(spec.text, spec.source ?? 'grammar');
    const masker = new GrammarMasker(grammar, tokenizerVocab(this.tokenizer));
    this.compileMs += performance.now() - t0;
    this.entries.set(key, masker);
    while (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    return masker;
  }

  /** A fresh matcher (one generation's position) for `spec`. */
  matcher(spec: ConstraintSpec): GrammarMatcher {
    return this.masker(spec).newMatcher();
  }

  stats(): GrammarCacheStats {
    return { entries: this.entries.size, capacity: this.capacity, hits: this.hits, misses: this.misses, compileMs: this.compileMs };
  }
}

const WARM_SCHEMA = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 40 }, count: { type: 'integer', minimum: 0, maximum: 99 }, tags: { type: 'array', items: { enum: ['a', 'b'] } } },
  required: ['name'],
};
const WARM_DOC = '{"name": "warm up", "count": 12, "tags": ["a", "b"]}';

/**
 * Compiles a small schema and follows a document through it, masks included, so that a server's
 * first constrained request does not pay for the JIT and for the vocabulary's byte tables. Returns
 * the milliseconds it took. Nothing is kept but the per-tokenizer vocabulary.
 */
export function warmConstraintCode(tokenizer: Tokenizer): number {
  const t0 = performance.now();
  const masker = new GrammarMasker(compileJsonSchema(WARM_SCHEMA), tokenizerVocab(tokenizer));
  const m = masker.newMatcher();
  const row = new Float32Array(tokenizer.vocabSize);
  for (const id of tokenizer.encode(WARM_DOC)) {
    m.mask(row);
    if (!m.accept(id)) break;
  }
  return performance.now() - t0;
}
