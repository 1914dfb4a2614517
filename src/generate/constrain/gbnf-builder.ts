// Writes GBNF text: named rules with identical bodies shared, names kept valid ([a-zA-Z0-9-]) and
// unique. Generated grammars go through the same parser as users' grammars, so what a schema
// compiles to can be printed and read.

export class GbnfBuilder {
  private readonly bodies = new Map<string, string>();
  private readonly byBody = new Map<string, string>();
  private readonly order: string[] = [];

  /** A rule with this body (an existing one when the body was seen before). */
  add(hint: string, body: string): string {
    const known = this.byBody.get(body);
    if (known !== undefined) return known;
    const name = this.reserve(hint);
    this.define(name, body);
    return name;
  }

  /** A fresh rule name, defined later with define() (for recursive rules). */
  reserve(hint: string): string {
    const base = hint.replace(/[^a-zA-Z0-9-]+/g, '-').replace(/^-+|-+$/g, '') || 'r';
    let name = base;
    for (let i = 2; this.bodies.has(name); i++) name = `${base}-${i}`;
    this.bodies.set(name, '');
    this.order.push(name);
    return name;
  }

  define(name: string, body: string): void {
    this.bodies.set(name, body);
    if (!this.byBody.has(body)) this.byBody.set(body, name);
  }

  has(name: string): boolean { return this.bodies.has(name); }

  toString(): string {
    // root first, for the reader.
    const names = [...this.order].sort((a, b) => (a === 'root' ? -1 : b === 'root' ? 1 : 0));
    return names.map((n) => `${n} ::= ${this.bodies.get(n)}`).join('\n') + '\n';
  }
}

/** A GBNF string literal for `s`. */
export function gbnfLiteral(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += '\\' + ch;
    else if (cp === 0x0a) out += '\\n';
    else if (cp === 0x0d) out += '\\r';
    else if (cp === 0x09) out += '\\t';
    else if (cp < 0x20 || cp === 0x7f) out += '\\x' + cp.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + '"';
}
