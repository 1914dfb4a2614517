import { test } from 'node:test';
import assert from 'node:assert/strict';

import { parseGbnf, GrammarError } from '../src/generate/constrain/gbnf.js';
import { compileGbnf } from '../src/generate/constrain/compile.js';
import { GrammarRuntime, DEAD, HAS_ACCEPT } from '../src/generate/constrain/pda.js';
import { utf8Sequences, complementRanges, normalizeRanges } from '../src/generate/constrain/utf8-ranges.js';
import { EarleyRecognizer } from './helpers/earley.js';
import { Rng } from '../src/core/rng.js';

const enc = new TextEncoder();

/** Matches whole strings with the compiled grammar: 'complete', 'prefix' or 'no'. */
function matcherOf(text: string) {
  const rt = new GrammarRuntime(compileGbnf(text));
  return (s: string | Uint8Array): 'complete' | 'prefix' | 'no' => {
    const st = rt.run(rt.initial, typeof s === 'string' ? enc.encode(s) : s);
    if (st === DEAD) return 'no';
    return rt.flags[st] & HAS_ACCEPT ? 'complete' : 'prefix';
  };
}

const JSON_GBNF = String.raw`# JSON, one space allowed after ":" and ","
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null")

object ::=
  "{" (
    string ":" " "? value
    ("," " "? string ":" " "? value)*
  )? "}"

array  ::= "[" ( value ("," " "? value)* )? "]"
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\""   # escapes
number ::= "-"? ([0-9] | [1-9] [0-9]{1,15}) ("." [0-9]+)? ([eE] [-+]? [0-9]+)?
`;

test('GBNF: a JSON grammar in llama.cpp style parses and matches', () => {
  const ast = parseGbnf(JSON_GBNF);
  assert.deepEqual([...ast.rules.keys()], ['root', 'value', 'object', 'array', 'string', 'number']);
  const m = matcherOf(JSON_GBNF);
  assert.equal(m('{"a": [1, 2.5e3, "x\\n\\u00e9é"], "b":{"c":null}}'), 'complete');
  assert.equal(m('{"a": [1, 2'), 'prefix');
  assert.equal(m('{}'), 'complete');
  assert.equal(m('{"a":  1}'), 'no'); // two spaces
  assert.equal(m('{"a": 01}'), 'no');
  assert.equal(m('{"a": "\x01"}'), 'no'); // raw control character
  assert.equal(m('[1]'), 'no'); // root is an object
  assert.equal(m('{"a": tru'), 'prefix');
  assert.equal(m('{"a": truE'), 'no');
});

test('GBNF: literals, escapes, classes, any, groups and every repetition form', () => {
  const g = String.raw`root ::= "a\x41\u00e9\U0001F600\t\"\\" [b-d\-\]] [^x-z] . ("p" | "q")+ "r"* "s"? "t"{2} "u"{1,} "v"{0,2} "w"{1,3} end
end ::= "!"`;
  const m = matcherOf(g);
  const head = 'aAé😀\t"\\';
  assert.equal(m(head + '-aZpqtttuvw!'), 'no'); // "t"{2} means exactly two
  assert.equal(m(head + '-aZpqttuvw!'), 'complete');
  assert.equal(m(head + ']\u0100😀pqqrrrsttuuuvvwww!'), 'complete');
  assert.equal(m(head + 'bxZpttu!'), 'no'); // [^x-z]
  assert.equal(m(head + 'e'), 'no'); // [b-d\-\]]
  assert.equal(m(head + 'ba\nptt'), 'prefix'); // . matches a newline
  assert.equal(m(head + 'ba.ptuvvv'), 'no'); // "t"{2}
  assert.equal(m(head + 'ba.ptt' + 'u' + 'vvv'), 'no'); // at most two v
  assert.equal(m(head + 'ba.pttuwwww'), 'no'); // at most three w
  assert.equal(m(head + 'ba.pttuwww'), 'prefix');
  assert.equal(m(head + 'ba.pttuwww!'), 'complete');
});

test('GBNF: rule names with digits, dashes and underscores; an empty first alternative; generated-style grammars', () => {
  const g = String.raw`root ::= "[" space item ("," space item){1,3} "]" space
item ::= "{" space item_name-kv "," space item-age2 "}" space
item_name-kv ::= "\"name\"" space ":" space "\"" char{1,8} "\"" space
item-age2 ::= "\"age\"" space ":" space ([0-9] | [1-8] [0-9] | "1" ([0-4] [0-9] | "50")) space
char ::= [^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})
space ::= | " " | "\n" [ \t]{0,4}`;
  const m = matcherOf(g);
  assert.equal(m('[{"name": "Ann", "age": 150}, {"name":"B\\n","age":7}]'), 'complete');
  assert.equal(m('[{"name": "Ann", "age": 151}, {"name":"B","age":7}]'), 'no');
  assert.equal(m('[{"name": "Ann", "age": 15}]'), 'no'); // needs two items
  assert.equal(m('[{"name": "Ann",\\n"age": 1}'), 'no'); // a backslash and "n" are not a line break
  assert.equal(m('[{"name": "Ann",\n\t"age": 1},{"name":"x","age":2}]\n  '), 'complete');
});

test('GBNF: alternatives may continue after "|" on the next line; comments and blank lines anywhere', () => {
  const m = matcherOf('# header\n\nroot ::= "a" |\n  "b" # trailing\n\n# end\n');
  assert.equal(m('a'), 'complete');
  assert.equal(m('b'), 'complete');
  assert.equal(m('c'), 'no');
});

test('GBNF: right recursion, nullable rules and repetition of nullable items compile (no left recursion)', () => {
  const m = matcherOf('root ::= list\nlist ::= "x" list | ""\nopt ::= "y"?\nextra ::= opt*');
  assert.equal(m('xxxx'), 'complete');
  assert.equal(m(''), 'complete');
  const m2 = matcherOf('root ::= ( "a"? )* "b"');
  assert.equal(m2('aab'), 'complete');
  assert.equal(m2('b'), 'complete');
});

test('GBNF: a class excludes surrogates and overlong forms; only well-formed UTF-8 is matched', () => {
  const m = matcherOf('root ::= [^a]+');
  assert.equal(m(Uint8Array.of(0xed, 0xa0, 0x80)), 'no'); // U+D800 encoded
  assert.equal(m(Uint8Array.of(0xc0, 0x80)), 'no'); // overlong NUL
  assert.equal(m(Uint8Array.of(0xf4, 0x90, 0x80, 0x80)), 'no'); // above U+10FFFF
  assert.equal(m(Uint8Array.of(0xe2, 0x82)), 'prefix');
  assert.equal(m(Uint8Array.of(0xe2, 0x82, 0xac)), 'complete');
});

interface ErrCase { g: string; at: [number, number]; msg: RegExp }
const ERRORS: ErrCase[] = [
  { g: 'root ::= "abc', at: [1, 10], msg: /unterminated string literal/ },
  { g: 'root ::= [abc', at: [1, 10], msg: /unterminated character class/ },
  { g: 'root ::= "\\q"', at: [1, 11], msg: /unknown escape "\\\\q"/ },
  { g: 'root ::= "\\x4"', at: [1, 11], msg: /expected 2 hex digits/ },
  { g: 'root ::= "\\uD800"', at: [1, 11], msg: /not a Unicode scalar value/ },
  { g: 'root ::= "a"\nnext = "b"', at: [2, 6], msg: /expected "::=" after rule name "next"/ },
  { g: 'root ::= "a" thing', at: [1, 14], msg: /rule "thing" is not defined/ },
  { g: 'start ::= "a"', at: [1, 14], msg: /no "root" rule/ },
  { g: 'root ::= "a"\nroot ::= "b"', at: [2, 1], msg: /defined twice \(first at 1:1\)/ },
  { g: 'root ::= ( "a" | "b"\n', at: [2, 1], msg: /expected "\)" to close the group opened at 1:10/ },
  { g: 'root ::= * "a"', at: [1, 10], msg: /\* needs an item before it/ },
  { g: 'root ::= "a"{3,1}', at: [1, 13], msg: /maximum below its minimum/ },
  { g: 'root ::= "a"{2', at: [1, 15], msg: /expected "}"/ },
  { g: 'root ::= "a"{99999}', at: [1, 14], msg: /larger than 10000/ },
  { g: 'root ::= [z-a]', at: [1, 12], msg: /character range is reversed/ },
  { g: 'root ::= <[42]>', at: [1, 10], msg: /token references/ },
  { g: 'root ::= "a" ) "b"', at: [1, 14], msg: /unexpected "\)"/ },
  { g: 'root ::= "a"\n  | "b"', at: [2, 3], msg: /expected a rule name, found "\|"/ },
  { g: 'root ::= expr\nexpr ::= expr "+" "1" | "1"', at: [2, 1], msg: /rule "expr" is left-recursive \(expr -> expr/ },
  { g: 'root ::= a\na ::= b? "x"\nb ::= "y"? a "z"', at: [2, 1], msg: /left-recursive \(a -> b -> a/ },
  { g: 'root ::= []', at: [1, 1], msg: /matches nothing/ },
  { g: 'root ::= loop\nloop ::= "x" loop', at: [1, 1], msg: /matches nothing/ },
];

test('GBNF errors name the line and column', () => {
  for (const c of ERRORS) {
    let err: unknown;
    try { compileGbnf(c.g, 'g.gbnf'); } catch (e) { err = e; }
    assert.ok(err instanceof GrammarError, `${JSON.stringify(c.g)} should fail`);
    const e = err as GrammarError;
    assert.match(e.message, c.msg, JSON.stringify(c.g));
    assert.deepEqual([e.line, e.column], c.at, `${JSON.stringify(c.g)}: ${e.message}`);
    assert.ok(e.message.startsWith(`g.gbnf:${c.at[0]}:${c.at[1]}: `) || /no "root"/.test(e.message), e.message);
    assert.ok(!e.message.includes('\n'), 'one line');
  }
});

test('utf8Sequences: exactly the encodings of the class members, for random classes', () => {
  const rng = new Rng(7);
  const cps: number[] = [];
  for (let cp = 0; cp <= 0x10ffff; cp += cp < 0x1000 ? 1 : 97) cps.push(cp);
  for (const edge of [0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xe000, 0xfffd, 0xffff, 0x10000, 0x10ffff]) cps.push(edge);
  for (let round = 0; round < 12; round++) {
    const ranges: Array<[number, number]> = [];
    for (let k = 0; k < 1 + (round % 4); k++) {
      const a = Math.floor(rng.next() * (round < 6 ? 0x3000 : 0x110000));
      ranges.push([a, Math.min(0x10ffff, a + Math.floor(rng.next() * 5000))]);
    }
    const set = round % 2 ? complementRanges(ranges) : ranges;
    const seqs = utf8Sequences(set);
    const inClass = (cp: number) => set.some(([a, b]) => a <= cp && cp <= b) && !(cp >= 0xd800 && cp <= 0xdfff);
    for (const cp of cps) {
      const bytes = [...enc.encode(String.fromCodePoint(cp))];
      const hits = seqs.filter((s) => s.length === bytes.length && s.every(([lo, hi], i) => lo <= bytes[i] && bytes[i] <= hi)).length;
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      assert.equal(hits, inClass(cp) ? 1 : 0, `U+${cp.toString(16)} round ${round}`);
    }
    // Nothing else: the sequences cover exactly as many byte strings as there are members.
    let covered = 0, members = 0;
    for (const s of seqs) covered += s.reduce((a, [lo, hi]) => a * (hi - lo + 1), 1);
    for (const [a, b] of normalizeRanges(set)) members += b - a + 1 - Math.max(0, Math.min(b, 0xdfff) - Math.max(a, 0xd800) + 1);
    assert.equal(covered, members);
  }
});

test('compiled grammars agree with an Earley recognizer on random byte strings', () => {
  const grammars = [
    JSON_GBNF,
    'root ::= (expr "\\n")+\nexpr ::= term (("+" | "-") term)*\nterm ::= factor (("*" | "/") factor)*\nfactor ::= [0-9]+ | "(" expr ")" | "-" factor',
    'root ::= a | b\na ::= "x" a "y" | "xy"\nb ::= "x"* "z"{1,3}',
    'root ::= ( [a-c] | "ab" | "abc" )* "." ( [^.]{0,3} )',
  ];
  const rng = new Rng(11);
  for (const g of grammars) {
    const ast = parseGbnf(g);
    const ref = new EarleyRecognizer(ast);
    const rt = new GrammarRuntime(compileGbnf(g));
    const alphabet = [...new Set(enc.encode(g + 'é😀'))];
    for (let trial = 0; trial < 300; trial++) {
      let chart = ref.begin();
      let st = rt.initial;
      const len = 1 + Math.floor(rng.next() * 40);
      const bytes: number[] = [];
      for (let i = 0; i < len; i++) {
        // Mostly bytes that keep a valid prefix (to get deep), sometimes any byte.
        const live = alphabet.filter((x) => rt.step(st, x) !== DEAD);
        const pool = live.length && rng.next() < 0.85 ? live : alphabet;
        const b = pool[Math.floor(rng.next() * pool.length)];
        bytes.push(b);
        const next = ref.step(chart, b);
        st = rt.step(st, b);
        assert.equal(st !== DEAD, next !== null, `${JSON.stringify(Buffer.from(bytes).toString('latin1'))} in ${JSON.stringify(g.slice(0, 30))}`);
        if (!next) break;
        chart = next;
        assert.equal((rt.flags[st] & HAS_ACCEPT) !== 0, ref.complete(chart));
      }
    }
  }
});
