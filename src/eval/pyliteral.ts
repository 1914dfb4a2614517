// Python literals as `ast.literal_eval` reads them, for data files that store Python reprs in text
// columns: MMLU-Redux keeps each choice list as `['a', "b's"]`, lm-eval's RACE keeps every article's
// questions as a repr'd list of dicts. Strings, ints, floats, True/False/None, lists, tuples and
// dicts; string escapes as CPython decodes them.

import { dataError } from './files.js';

export type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue };

const SIMPLE_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '\'': '\'', '"': '"', a: '\x07', b: '\b', f: '\f', v: '\v' };

class Reader {
  i = 0;
  constructor(readonly s: string, readonly where: string, readonly what: string) {}

  fail(msg: string): never {
    const s = this.s;
    throw dataError(`${this.where}: ${msg} in ${this.what} ${JSON.stringify(s.length > 60 ? s.slice(0, 60) + '…' : s)}`);
  }

  ws(): void { while (this.i < this.s.length && /\s/.test(this.s[this.i])) this.i++; }

  value(): PyValue {
    this.ws();
    const c = this.s[this.i];
    if (c === '\'' || c === '"') return this.string();
    if (c === '[' || c === '(') return this.seq(c === '[' ? ']' : ')');
    if (c === '{') return this.dict();
    const m = /^(?:True|False|None|[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)/.exec(this.s.slice(this.i));
    if (!m) this.fail('expected a value');
    this.i += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    if (m[0] === 'None') return null;
    return Number(m[0].replaceAll('_', ''));
  }

  string(): string {
    // Adjacent literals concatenate, as in Python source.
    let out = '';
    do {
      const q = this.s[this.i];
      const triple = this.s.startsWith(q.repeat(3), this.i);
      const close = triple ? q.repeat(3) : q;
      this.i += close.length;
      for (;;) {
        if (this.i >= this.s.length) this.fail('unterminated string');
        if (this.s.startsWith(close, this.i)) { this.i += close.length; break; }
        const c = this.s[this.i];
        if (c !== '\\') { out += c; this.i++; continue; }
        out += this.escape();
      }
      this.ws();
    } while (this.s[this.i] === '\'' || this.s[this.i] === '"');
    return out;
  }

  escape(): string {
    const s = this.s;
    const e = s[this.i + 1];
    this.i += 2;
    if (e === undefined) this.fail('unterminated string');
    if (Object.hasOwn(SIMPLE_ESCAPES, e)) return SIMPLE_ESCAPES[e];
    if (e === '\n') return '';
    const hex = (n: number): string => {
      const h = s.slice(this.i, this.i + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) this.fail(`bad \\${e} escape`);
      this.i += n;
      return String.fromCodePoint(parseInt(h, 16));
    };
    if (e === 'x') return hex(2);
    if (e === 'u') return hex(4);
    if (e === 'U') return hex(8);
    if (/[0-7]/.test(e)) {
      let o = e;
      while (o.length < 3 && /[0-7]/.test(s[this.i] ?? '')) o += s[this.i++];
      return String.fromCodePoint(parseInt(o, 8));
    }
    return '\\' + e;
  }

  seq(close: string): PyValue[] {
    this.i++;
    const out: PyValue[] = [];
    for (;;) {
      this.ws();
      if (this.s[this.i] === close) { this.i++; return out; }
      out.push(this.value());
      this.ws();
      if (this.s[this.i] === ',') { this.i++; continue; }
      if (this.s[this.i] === close) { this.i++; return out; }
      this.fail(`expected "," or "${close}"`);
    }
  }

  dict(): { [key: string]: PyValue } {
    this.i++;
    const out: { [key: string]: PyValue } = {};
    for (;;) {
      this.ws();
      if (this.s[this.i] === '}') { this.i++; return out; }
      const k = this.value();
      if (typeof k !== 'string') this.fail('dict keys must be strings');
      this.ws();
      if (this.s[this.i] !== ':') this.fail('expected ":"');
      this.i++;
      Object.defineProperty(out, k, { value: this.value(), enumerable: true, writable: true, configurable: true });
      this.ws();
      if (this.s[this.i] === ',') { this.i++; continue; }
      if (this.s[this.i] === '}') { this.i++; return out; }
      this.fail('expected "," or "}"');
    }
  }

  end(): void {
    this.ws();
    if (this.i !== this.s.length) this.fail('unexpected text after the value');
  }
}

/** ast.literal_eval for the literal kinds above; errors name `where` and quote the text. */
export function parsePyLiteral(s: string, where: string): PyValue {
  const r = new Reader(s, where, 'Python literal');
  const v = r.value();
  r.end();
  return v;
}

/** A Python list of strings such as `['a', "b's"]`. */
export function parsePyStrList(s: string, where: string): string[] {
  const r = new Reader(s, where, 'Python list literal');
  r.ws();
  if (r.s[r.i] !== '[') r.fail('expected "["');
  r.i++;
  const out: string[] = [];
  for (;;) {
    r.ws();
    if (r.s[r.i] === ']' ) { r.i++; break; }
    if (r.s[r.i] !== '\'' && r.s[r.i] !== '"') r.fail('expected a quoted string');
    out.push(r.string());
    r.ws();
    if (r.s[r.i] === ',') { r.i++; continue; }
    if (r.s[r.i] === ']') { r.i++; break; }
    r.fail('expected "," or "]"');
  }
  r.end();
  return out;
}
