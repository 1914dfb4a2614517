// Parsing JSON text with errors that say where the first problem is (line, column, byte offset).
// No file access: files are read by io/json.ts, fetched bytes by the browser entry.

import { OpenELMError } from './errors.js';

/** Parse JSON text; `label` names its origin in the error message. */
export function parseJsonText(text: string, label: string): unknown {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    return JSON.parse(text);
  } catch (err) {
    const loc = locateJsonError(text);
    const { line, col } = lineCol(text, loc.pos);
    throw new OpenELMError(
      'json',
      `${label} is not valid JSON: ${loc.reason} at line ${line} column ${col} (offset ${loc.pos})` +
        (loc.reason === 'syntax error' ? ` (${(err as Error).message})` : ''),
    );
  }
}

function lineCol(text: string, pos: number): { line: number; col: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < pos && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, col: pos - lineStart + 1 };
}

// V8's JSON.parse messages do not always carry a position ("Unexpected token '}', ... is not valid
// JSON"), so on failure we rescan with a small strict JSON grammar checker to find the first bad char.
// It only runs after JSON.parse has already failed, so its speed does not matter.
class JsonLocateError {
  constructor(
    readonly pos: number,
    readonly reason: string,
  ) {}
}

function locateJsonError(s: string): { pos: number; reason: string } {
  let i = 0;
  const fail = (reason: string, at = i): never => {
    throw new JsonLocateError(at, reason);
  };
  const ws = () => {
    while (i < s.length) {
      const c = s[i];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') i++;
      else break;
    }
  };
  const expectEnd = (what: string) => {
    if (i >= s.length) fail(`unexpected end of input, expected ${what}`);
  };
  const str = () => {
    i++; // opening quote
    for (;;) {
      if (i >= s.length) fail('unterminated string');
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail('control character in string');
      if (c === 0x5c) {
        const e = s[i + 1];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6))) fail('bad \\u escape in string');
          i += 6;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else fail('bad escape in string');
      } else i++;
    }
  };
  const num = () => {
    const m = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(s.slice(i, i + 400));
    if (!m || m[0] === '' || m[0] === '-') fail('invalid number');
    i += m![0].length;
  };
  const value = (depth: number): void => {
    if (depth > 10000) fail('nesting too deep');
    ws();
    expectEnd('a value');
    const c = s[i];
    if (c === '{') {
      i++;
      ws();
      if (s[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        expectEnd('a property name');
        if (s[i] !== '"') fail('expected a double-quoted property name');
        str();
        ws();
        expectEnd("':'");
        if (s[i] !== ':') fail("expected ':' after property name");
        i++;
        value(depth + 1);
        ws();
        expectEnd("',' or '}'");
        if (s[i] === ',') {
          i++;
          continue;
        }
        if (s[i] === '}') {
          i++;
          return;
        }
        fail("expected ',' or '}' after property value");
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (s[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1);
        ws();
        expectEnd("',' or ']'");
        if (s[i] === ',') {
          i++;
          continue;
        }
        if (s[i] === ']') {
          i++;
          return;
        }
        fail("expected ',' or ']' after array element");
      }
    }
    if (c === '"') { str(); return; }
    if (c === '-' || (c >= '0' && c <= '9')) { num(); return; }
    for (const lit of ['true', 'false', 'null']) {
      if (s.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    fail(`unexpected character ${JSON.stringify(c)}`);
  };
  try {
    value(0);
    ws();
    if (i < s.length) fail('unexpected data after the JSON value');
  } catch (e) {
    if (e instanceof JsonLocateError) return { pos: e.pos, reason: e.reason };
    throw e;
  }
  // JSON.parse failed but the checker found nothing (should not happen): report V8's message.
  return { pos: 0, reason: 'syntax error' };
}
