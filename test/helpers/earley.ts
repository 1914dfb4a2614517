// An Earley recognizer over bytes, built straight from a parsed GBNF AST: the reference the
// constrained-decoding matcher is checked against. It shares nothing with the matcher but the
// parser and the UTF-8 range split (tested on its own): no inlining, no determinization, no
// stacks, no caches. Unproductive productions are dropped first, so "some item survives the
// last byte" means "the bytes are a prefix of some sentence".

import type { GItem, GrammarAst } from '../../src/generate/constrain/gbnf.js';
import { complementRanges, utf8Sequences } from '../../src/generate/constrain/utf8-ranges.js';

type Sym = { nt: number } | { lo: number; hi: number };
interface Prod { lhs: number; rhs: Sym[] }

export class EarleyRecognizer {
  private readonly prods: Prod[] = [];
  private byLhs: number[][] = [];
  private nullable: boolean[] = [];
  private readonly start: number;
  private nts = 0;

  constructor(ast: GrammarAst) {
    const ruleNt = new Map<string, number>();
    for (const name of ast.rules.keys()) ruleNt.set(name, this.nts++);
    const fresh = () => this.nts++;
    const add = (lhs: number, rhs: Sym[]) => { this.prods.push({ lhs, rhs }); };
    const seq = (items: GItem[]): Sym[] => items.flatMap(item);
    const item = (it: GItem): Sym[] => {
      switch (it.kind) {
        case 'lit': return [...Buffer.from(String.fromCodePoint(...it.cps), 'utf8')].map((b) => ({ lo: b, hi: b }));
        case 'class': {
          const x = fresh();
          for (const s of utf8Sequences(it.negated ? complementRanges(it.ranges) : it.ranges)) add(x, s.map(([lo, hi]) => ({ lo, hi })));
          return [{ nt: x }];
        }
        case 'ref': return [{ nt: ruleNt.get(it.name)! }];
        case 'group': {
          const x = fresh();
          for (const a of it.alts) add(x, seq(a));
          return [{ nt: x }];
        }
        case 'repeat': {
          const body = item(it.item);
          const out: Sym[] = [];
          for (let i = 0; i < it.min; i++) out.push(...body);
          if (!Number.isFinite(it.max)) {
            const star = fresh();
            add(star, []);
            add(star, [...body, { nt: star }]);
            out.push({ nt: star });
          } else if (it.max > it.min) {
            let opt = fresh();
            add(opt, []);
            add(opt, body);
            for (let k = it.min + 1; k < it.max; k++) {
              const o2 = fresh();
              add(o2, []);
              add(o2, [...body, { nt: opt }]);
              opt = o2;
            }
            out.push({ nt: opt });
          }
          return out;
        }
      }
    };
    for (const [name, r] of ast.rules) for (const a of r.alts) add(ruleNt.get(name)!, seq(a));
    this.start = ruleNt.get('root')!;

    // Drop productions that use a nonterminal deriving no finite string.
    const productive = new Array<boolean>(this.nts).fill(false);
    for (let changed = true; changed;) {
      changed = false;
      for (const p of this.prods) {
        if (productive[p.lhs]) continue;
        if (p.rhs.every((s) => !('nt' in s) || productive[s.nt])) { productive[p.lhs] = true; changed = true; }
      }
    }
    const kept = this.prods.filter((p) => productive[p.lhs] && p.rhs.every((s) => !('nt' in s) || productive[s.nt]));
    this.prods.length = 0;
    this.prods.push(...kept);
    this.byLhs = Array.from({ length: this.nts }, () => []);
    this.prods.forEach((p, i) => { this.byLhs[p.lhs].push(i); });
    this.nullable = new Array<boolean>(this.nts).fill(false);
    for (let changed = true; changed;) {
      changed = false;
      for (const p of this.prods) {
        if (this.nullable[p.lhs]) continue;
        if (p.rhs.every((s) => 'nt' in s && this.nullable[s.nt])) { this.nullable[p.lhs] = true; changed = true; }
      }
    }
  }

  /** The chart after no bytes. */
  begin(): EarleyChart {
    const set = new ItemSet();
    for (const p of this.byLhs[this.start]) set.add(p, 0, 0);
    this.close(set, []);
    return [set];
  }

  /** The chart after one more byte (the input chart is not changed); null when no item survives. */
  step(chart: EarleyChart, byte: number): EarleyChart | null {
    const i = chart.length - 1;
    const next = new ItemSet();
    const cur = chart[i];
    for (let k = 0; k < cur.prod.length; k++) {
      const p = this.prods[cur.prod[k]], d = cur.dot[k];
      const s = p.rhs[d];
      if (s && !('nt' in s) && s.lo <= byte && byte <= s.hi) next.add(cur.prod[k], d + 1, cur.origin[k]);
    }
    if (next.prod.length === 0) return null;
    const out = [...chart, next];
    this.close(next, out);
    return out;
  }

  run(chart: EarleyChart, bytes: Uint8Array): EarleyChart | null {
    let c: EarleyChart | null = chart;
    for (const b of bytes) { c = this.step(c, b); if (!c) return null; }
    return c;
  }

  /** The bytes read form a complete sentence. */
  complete(chart: EarleyChart): boolean {
    const set = chart[chart.length - 1];
    for (let k = 0; k < set.prod.length; k++) {
      const p = this.prods[set.prod[k]];
      if (p.lhs === this.start && set.origin[k] === 0 && set.dot[k] === p.rhs.length) return true;
    }
    return false;
  }

  /** Prediction and completion on the newest set (index chart.length - 1, or 0 for begin()). */
  private close(set: ItemSet, chart: EarleyChart): void {
    const i = Math.max(0, chart.length - 1);
    for (let k = 0; k < set.prod.length; k++) {
      const pi = set.prod[k], d = set.dot[k], o = set.origin[k];
      const p = this.prods[pi];
      if (d === p.rhs.length) {
        const from = o === i ? set : chart[o];
        for (let j = 0; j < from.prod.length; j++) {
          const q = this.prods[from.prod[j]];
          const s = q.rhs[from.dot[j]];
          if (s && 'nt' in s && s.nt === p.lhs) set.add(from.prod[j], from.dot[j] + 1, from.origin[j]);
        }
        continue;
      }
      const s = p.rhs[d];
      if ('nt' in s) {
        for (const q of this.byLhs[s.nt]) set.add(q, 0, i);
        if (this.nullable[s.nt]) set.add(pi, d + 1, o);
      }
    }
  }
}

export type EarleyChart = ItemSet[];

class ItemSet {
  readonly prod: number[] = [];
  readonly dot: number[] = [];
  readonly origin: number[] = [];
  private readonly seen = new Set<number>();
  add(p: number, d: number, o: number): void {
    const key = (p * 4096 + d) * 65536 + o;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.prod.push(p); this.dot.push(d); this.origin.push(o);
  }
}
