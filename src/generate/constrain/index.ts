// Constrained decoding: grammars (GBNF, JSON schema) matched byte by byte, and exact token masks.
export { parseGbnf, GrammarError, type GrammarAst, type GItem, type GRule } from './gbnf.js';
export { compileGrammar, CompiledGrammar } from './grammar.js';
export { GrammarRuntime } from './pda.js';
export { tokenizerVocab, TokenTrie, trieOf, type TokenVocab } from './vocab.js';
export { GrammarMasker, GrammarMatcher, type MaskStats, type ConstraintOptions } from './mask.js';
export { jsonSchemaToGbnf, jsonObjectGbnf, SchemaError } from './json-schema.js';
export { validateJson, jsonEqual } from './validate.js';
export { compileGbnf, compileJsonSchema, compileJsonObject } from './compile.js';
export { GrammarCache, constraintKey, warmConstraintCode, type ConstraintSpec, type GrammarCacheStats } from './cache.js';
