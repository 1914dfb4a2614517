// Parser for GBNF, llama.cpp's grammar format (grammars/README.md in llama.cpp):
//
//   root  ::= object            # a rule per line: name ::= alternatives
//   value ::= "lit" | [a-z0-9] | [^"\\] | . | name | ( group ) | x* | x+ | x? | x{m} | x{m,} | x{m,n}
//
// Names are [a-zA-Z0-9_-]+. Literals and classes take the escapes \x.. \u.... \U........ \t \r \n
// \\ \" \[ \] \-. A rule ends at the end of its line unless a group is open; `|` may be followed by
// a line break. `#` starts a comment. The grammar must define `root`. llama.cpp's token references
// (<[id]>, <name>, !<...>) are refused: grammars here constrain text, not token ids.
//
// Every error names the line and column (1-based, in characters) where it was found.

import { OpenELMError } from '../../core/errors.js';
import { MAX_CODE_POINT } from './utf8-ranges.js';

/** A grammar that does not parse or compile, with the 1-based line and column of the problem. */
export class GrammarError extends OpenELMError {
  constructor(message: string, readonly line = 0, readonly column = 0) {
    super('grammar', message);
    this.name = 'GrammarError';
  }
}

/** Offsets into the grammar text, for error messages. */
export type GItem =
  | { kind: 'lit'; cps: number[]; at: number }
  | { kind: 'class'; negated: boolean; ranges: Array<[number, number]>; at: number }
  | { kind: 'ref'; name: string; at: number }
  | { kind: 'group'; alts: GItem[][]; at: number }
  | { kind: 'repeat'; item: GItem; min: number; max: number; at: number };

export interface GRule { name: string; alts: GItem[][]; at: number }

export interface GrammarAst {
  rules: Map<string, GRule>;
  /** The grammar text and what to call it in messages (a file name, "grammar"). */
  text: string;
  source: string;
}

/** Largest {m,n} count accepted (each counted copy becomes states of the matcher). */
export const MAX_REPEAT = 10000;

export function lineCol(text: string, at: number): { line: number; column: number } {
  let line = 1, col = 1;
  for (let i = 0; i < at && i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x0a) { line++; col = 1; } else if (!(c >= 0xdc00 && c <= 0xdfff)) col++;
  }
  return { line, column: col };
}

/** Throws a GrammarError for position `at` of `text`. */
export function grammarError(text: string, source: string, at: number, msg: string): never {
  const { line, column } = lineCol(text, at);
  throw new GrammarError(`${source}:${line}:${column}: ${msg}`, line, column);
}

const isWord = (c: number): boolean =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f;
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

export function parseGbnf(text: string, source = 'grammar'): GrammarAst {
  let pos = 0;
  const rules = new Map<string, GRule>();
  const fail = (at: number, msg: string): never => grammarError(text, source, at, msg);
  const describe = (at: number): string => (at >= text.length ? 'the end of the grammar' : JSON.stringify(String.fromCodePoint(text.codePointAt(at)!)));

  const space = (newlineOk: boolean): void => {
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x09 || (newlineOk && (c === 0x0d || c === 0x0a))) pos++;
      else if (c === 0x23) { while (pos < text.length && text[pos] !== '\n' && text[pos] !== '\r') pos++; }
      else return;
    }
  };

  const name = (): string => {
    const start = pos;
    while (pos < text.length && isWord(text.charCodeAt(pos))) pos++;
    if (pos === start) fail(start, `expected a rule name, found ${describe(start)}`);
    return text.slice(start, pos);
  };

  const int = (): number => {
    const start = pos;
    while (pos < text.length && isDigit(text.charCodeAt(pos))) pos++;
    if (pos === start) fail(start, `expected a number, found ${describe(start)}`);
    const n = Number(text.slice(start, pos));
    if (n > MAX_REPEAT) fail(start, `repetition count ${n} is larger than ${MAX_REPEAT}`);
    return n;
  };

  const hex = (n: number, at: number): number => {
    const s = text.slice(pos, pos + n);
    if (s.length !== n || !/^[0-9a-fA-F]+$/.test(s)) fail(at, `expected ${n} hex digits after ${text.slice(at, pos)}`);
    pos += n;
    const v = parseInt(s, 16);
    if (v > MAX_CODE_POINT || (v >= 0xd800 && v <= 0xdfff)) fail(at, `${text.slice(at, pos)} is not a Unicode scalar value`);
    return v;
  };

  /** One (possibly escaped) character of a literal or class. */
  const char = (): number => {
    const at = pos;
    if (pos >= text.length) fail(at, 'unexpected end of the grammar (unclosed literal or class)');
    if (text[pos] === '\\') {
      const e = text[pos + 1];
      pos += 2;
      switch (e) {
        case 'x': return hex(2, at);
        case 'u': return hex(4, at);
        case 'U': return hex(8, at);
        case 't': return 0x09;
        case 'r': return 0x0d;
        case 'n': return 0x0a;
        case '\\': case '"': case '[': case ']': case '-': return e.charCodeAt(0);
        default: return fail(at, `unknown escape ${e === undefined ? '\\' : JSON.stringify('\\' + e)}`);
      }
    }
    const cp = text.codePointAt(pos)!;
    pos += cp > 0xffff ? 2 : 1;
    return cp;
  };

  const alternates = (nested: boolean): GItem[][] => {
    const alts: GItem[][] = [sequence(nested)];
    while (text[pos] === '|') {
      pos++;
      space(true);
      alts.push(sequence(nested));
    }
    return alts;
  };

  const sequence = (nested: boolean): GItem[] => {
    const seq: GItem[] = [];
    const repeat = (at: number, min: number, max: number): void => {
      const last = seq.pop();
      if (!last) fail(at, `${text[at]} needs an item before it`);
      if (max < min) fail(at, `repetition {${min},${max}} has its maximum below its minimum`);
      seq.push({ kind: 'repeat', item: last!, min, max, at });
    };
    while (pos < text.length) {
      const at = pos;
      const c = text[pos];
      if (c === '"') {
        pos++;
        const cps: number[] = [];
        while (text[pos] !== '"') {
          if (pos >= text.length) fail(at, 'unterminated string literal');
          cps.push(char());
        }
        pos++;
        seq.push({ kind: 'lit', cps, at });
      } else if (c === '[') {
        pos++;
        let negated = false;
        if (text[pos] === '^') { negated = true; pos++; }
        const ranges: Array<[number, number]> = [];
        while (text[pos] !== ']') {
          if (pos >= text.length) fail(at, 'unterminated character class');
          const a = char();
          let b = a;
          if (text[pos] === '-' && text[pos + 1] !== ']' && pos + 1 < text.length) {
            const rat = pos;
            pos++;
            b = char();
            if (b < a) fail(rat, `character range is reversed (U+${a.toString(16).toUpperCase()} > U+${b.toString(16).toUpperCase()})`);
          }
          ranges.push([a, b]);
        }
        pos++;
        seq.push({ kind: 'class', negated, ranges, at });
      } else if (c === '.') {
        pos++;
        seq.push({ kind: 'class', negated: true, ranges: [], at });
      } else if (c === '<' || c === '!') {
        fail(at, 'token references (<...>) are not supported; write the text instead');
      } else if (isWord(text.charCodeAt(pos))) {
        seq.push({ kind: 'ref', name: name(), at });
      } else if (c === '(') {
        pos++;
        space(true);
        const alts = alternates(true);
        if (text[pos] !== ')') fail(pos, `expected ")" to close the group opened at ${lineColText(at)}, found ${describe(pos)}`);
        pos++;
        seq.push({ kind: 'group', alts, at });
      } else if (c === '*') { pos++; repeat(at, 0, Infinity); }
      else if (c === '+') { pos++; repeat(at, 1, Infinity); }
      else if (c === '?') { pos++; repeat(at, 0, 1); }
      else if (c === '{') {
        pos++;
        space(nested);
        const min = int();
        space(nested);
        let max = min;
        if (text[pos] === ',') {
          pos++;
          space(nested);
          max = isDigit(text.charCodeAt(pos)) ? int() : Infinity;
          space(nested);
        }
        if (text[pos] !== '}') fail(pos, `expected "}" to close the repetition, found ${describe(pos)}`);
        pos++;
        repeat(at, min, max);
      } else break;
      space(nested);
    }
    return seq;
  };

  const lineColText = (at: number): string => { const { line, column } = lineCol(text, at); return `${line}:${column}`; };

  space(true);
  while (pos < text.length) {
    const at = pos;
    const n = name();
    space(false);
    if (!text.startsWith('::=', pos)) fail(pos, `expected "::=" after rule name "${n}", found ${describe(pos)}`);
    pos += 3;
    space(true);
    const alts = alternates(false);
    if (text[pos] === '\r') pos += text[pos + 1] === '\n' ? 2 : 1;
    else if (text[pos] === '\n') pos++;
    else if (pos < text.length) fail(pos, `unexpected ${describe(pos)} (expected "|", an item, or the end of the line)`);
    const prev = rules.get(n);
    if (prev) fail(at, `rule "${n}" is defined twice (first at ${lineColText(prev.at)})`);
    rules.set(n, { name: n, alts, at });
    space(true);
  }
  if (!rules.has('root')) {
    const { line, column } = lineCol(text, text.length);
    throw new GrammarError(`${source}: the grammar has no "root" rule`, line, column);
  }
  // References to rules that are never defined.
  const check = (items: GItem[]): void => {
    for (const it of items) {
      if (it.kind === 'ref' && !rules.has(it.name)) fail(it.at, `rule "${it.name}" is not defined`);
      else if (it.kind === 'group') it.alts.forEach(check);
      else if (it.kind === 'repeat') check([it.item]);
    }
  };
  for (const r of rules.values()) r.alts.forEach(check);
  return { rules, text, source };
}
