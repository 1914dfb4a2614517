// A parsed grammar compiled for matching: each rule becomes a deterministic byte automaton whose
// edges are byte ranges or references to other rules (a recursive transition network, as in
// XGrammar). Matching is then a pushdown automaton whose stack frames are automaton nodes.
//
// Compilation:
//   1. Rules that are not recursive and small are inlined where they are referenced, so that
//      regular pieces (a JSON string with its character class, a number, a key literal) live inside
//      one automaton. That is what makes the token-mask cache effective: a token that stays inside
//      one rule is accepted or rejected whatever the stack below holds.
//   2. Each remaining rule is built as a Thompson NFA over bytes (code point classes go through
//      utf8-ranges) and determinized per rule (subset construction over bytes and rule references).
//   3. Nodes that cannot reach the end of their rule, and references to rules that match nothing,
//      are removed, so every stack the matcher holds can still be completed. A root that matches
//      nothing is an error, as is left recursion (the matcher would expand it forever).

import { grammarError, type GItem, type GRule, type GrammarAst, GrammarError } from './gbnf.js';
import { complementRanges, utf8Sequences } from './utf8-ranges.js';

// TextEncoder, not Buffer: this module runs in browsers too (same bytes, U+FFFD for lone surrogates).
const UTF8 = new TextEncoder();

/** Inline a non-recursive rule where it is used when its body is at most this many byte steps. */
const INLINE_LIMIT = 512;
/**
 * A rule used in several places is kept as one automaton when it loops or is large: a JSON string
 * inlined at every property would give each copy of its character loop its own node, and each
 * would pay for its own walk of the vocabulary. Small non-looping rules (a character class with
 * its escapes, a number) are still inlined: a rule that ends after one character would make
 * nearly every token depend on the enclosing rule.
 */
const SHARED_INLINE_LIMIT = 64;

export class CompiledGrammar {
  constructor(
    readonly source: string,
    /** The rule names (kept rules only; inlined rules have no automaton of their own). */
    readonly ruleNames: string[],
    readonly ruleStart: Int32Array,
    readonly rootRule: number,
    readonly nodeFinal: Uint8Array,
    /** Byte edges of node n: indices rangeStart[n] .. rangeStart[n+1]-1, sorted by byte. */
    readonly rangeStart: Int32Array,
    readonly rangeLo: Uint8Array,
    readonly rangeHi: Uint8Array,
    readonly rangeTarget: Int32Array,
    /** Rule-reference edges of node n: refStart[n] .. refStart[n+1]-1. */
    readonly refStart: Int32Array,
    readonly refRule: Int32Array,
    readonly refTarget: Int32Array,
  ) {}

  get nodeCount(): number { return this.nodeFinal.length; }

  /** The node reached from `node` on `byte`, or -1. */
  byteTarget(node: number, byte: number): number {
    for (let i = this.rangeStart[node], e = this.rangeStart[node + 1]; i < e; i++) {
      if (byte < this.rangeLo[i]) return -1;
      if (byte <= this.rangeHi[i]) return this.rangeTarget[i];
    }
    return -1;
  }

  hasBytes(node: number): boolean { return this.rangeStart[node + 1] > this.rangeStart[node]; }
  hasRefs(node: number): boolean { return this.refStart[node + 1] > this.refStart[node]; }
}

interface NfaNode { eps: number[]; edges: number[]; /* lo, hi, target triples */ refs: number[]; /* rule, target pairs */ }

interface DfaNode { final: boolean; ranges: number[]; /* lo, hi, target triples (sorted) */ refs: number[]; /* rule, target pairs */ }

function classRanges(item: Extract<GItem, { kind: 'class' }>): Array<[number, number]> {
  return item.negated ? complementRanges(item.ranges) : item.ranges;
}

function itemSize(item: GItem, sizeOfRef: (name: string) => number): number {
  switch (item.kind) {
    case 'lit': return item.cps.length;
    case 'class': return Math.max(1, utf8Sequences(classRanges(item)).length);
    case 'ref': return sizeOfRef(item.name);
    case 'group': return item.alts.reduce((a, s) => a + s.reduce((b, it) => b + itemSize(it, sizeOfRef), 0), 0);
    case 'repeat': {
      const one = itemSize(item.item, sizeOfRef);
      return one * (Number.isFinite(item.max) ? Math.max(1, item.max) : item.min + 1);
    }
  }
}

function forEachRef(items: GItem[][], f: (name: string) => void): void {
  const walk = (it: GItem): void => {
    if (it.kind === 'ref') f(it.name);
    else if (it.kind === 'group') it.alts.forEach((s) => { s.forEach(walk); });
    else if (it.kind === 'repeat') walk(it.item);
  };
  items.forEach((s) => { s.forEach(walk); });
}

/** Rules that are part of a reference cycle (Tarjan's strongly connected components). */
function recursiveRules(rules: Map<string, GRule>): Set<string> {
  const index = new Map<string, number>(), low = new Map<string, number>();
  const stack: string[] = [], on = new Set<string>(), out = new Set<string>();
  let counter = 0;
  const succ = (n: string): string[] => { const s: string[] = []; forEachRef(rules.get(n)!.alts, (m) => s.push(m)); return s; };
  // Iterative Tarjan: deep grammars (long counted chains) must not overflow the JS stack.
  for (const start of rules.keys()) {
    if (index.has(start)) continue;
    const work: Array<{ n: string; s: string[]; i: number }> = [];
    const visit = (n: string) => { index.set(n, counter); low.set(n, counter); counter++; stack.push(n); on.add(n); work.push({ n, s: succ(n), i: 0 }); };
    visit(start);
    while (work.length) {
      const top = work[work.length - 1];
      if (top.i < top.s.length) {
        const m = top.s[top.i++];
        if (m === top.n) out.add(m);
        if (!index.has(m)) visit(m);
        else if (on.has(m)) low.set(top.n, Math.min(low.get(top.n)!, index.get(m)!));
        continue;
      }
      work.pop();
      if (work.length) { const p = work[work.length - 1].n; low.set(p, Math.min(low.get(p)!, low.get(top.n)!)); }
      if (low.get(top.n) === index.get(top.n)) {
        const comp: string[] = [];
        let m: string;
        do { m = stack.pop()!; on.delete(m); comp.push(m); } while (m !== top.n);
        if (comp.length > 1) for (const c of comp) out.add(c);
      }
    }
  }
  return out;
}

export function compileGrammar(ast: GrammarAst): CompiledGrammar {
  const { rules, text, source } = ast;
  const recursive = recursiveRules(rules);

  // Inline cost of each rule, with its own inlinable references expanded.
  const size = new Map<string, number>();
  const uses = new Map<string, number>();
  for (const r of rules.values()) forEachRef(r.alts, (m) => uses.set(m, (uses.get(m) ?? 0) + 1));
  const loops = (items: GItem[][]): boolean => items.some((seq) => seq.some(function l(it: GItem): boolean {
    if (it.kind === 'repeat') return !Number.isFinite(it.max) || l(it.item);
    return it.kind === 'group' && loops(it.alts);
  }));
  const inlinable = (name: string): boolean => {
    if (name === 'root' || recursive.has(name)) return false;
    const size = sizeOf(name);
    if ((uses.get(name) ?? 0) > 1 && (size > SHARED_INLINE_LIMIT || loops(rules.get(name)!.alts))) return false;
    return size <= INLINE_LIMIT;
  };
  function sizeOf(name: string): number {
    const known = size.get(name);
    if (known !== undefined) return known;
    if (recursive.has(name)) { size.set(name, 1); return 1; }
    size.set(name, Infinity); // guards against cycles (none remain among non-recursive rules)
    const r = rules.get(name)!;
    const s = Math.max(1, r.alts.reduce((a, seq) => a + seq.reduce((b, it) => b + itemSize(it, (m) => (inlinable(m) ? sizeOf(m) : 1)), 0), 0));
    size.set(name, s);
    return s;
  }

  // Kept rules: root and every rule referenced from a kept rule but not inlined there.
  const kept: string[] = [];
  const keptIndex = new Map<string, number>();
  const keep = (name: string): number => {
    let i = keptIndex.get(name);
    if (i === undefined) { i = kept.length; kept.push(name); keptIndex.set(name, i); }
    return i;
  };
  keep('root');

  const dfa: DfaNode[] = [];
  const ruleStartList: number[] = [];
  for (let k = 0; k < kept.length; k++) {
    const rule = rules.get(kept[k])!;
    const nfa: NfaNode[] = [];
    const node = (): number => { nfa.push({ eps: [], edges: [], refs: [] }); return nfa.length - 1; };
    const build = (item: GItem, from: number, inlining: string[]): number => {
      switch (item.kind) {
        case 'lit': {
          let cur = from;
          for (const cp of item.cps) {
            for (const b of UTF8.encode(String.fromCodePoint(cp))) {
              const n = node();
              nfa[cur].edges.push(b, b, n);
              cur = n;
            }
          }
          return cur;
        }
        case 'class': {
          const end = node();
          for (const seq of utf8Sequences(classRanges(item))) {
            let cur = from;
            for (let i = 0; i < seq.length; i++) {
              const n = i === seq.length - 1 ? end : node();
              nfa[cur].edges.push(seq[i][0], seq[i][1], n);
              cur = n;
            }
          }
          return end;
        }
        case 'ref': {
          if (inlinable(item.name) && !inlining.includes(item.name)) {
            return buildAlts(rules.get(item.name)!.alts, from, [...inlining, item.name]);
          }
          const end = node();
          nfa[from].refs.push(keep(item.name), end);
          return end;
        }
        case 'group': return buildAlts(item.alts, from, inlining);
        case 'repeat': {
          let cur = from;
          for (let i = 0; i < item.min; i++) cur = build(item.item, cur, inlining);
          if (!Number.isFinite(item.max)) {
            // A fresh loop head: edges added to it later must not re-enter earlier constructs.
            const head = node();
            nfa[cur].eps.push(head);
            const back = build(item.item, head, inlining);
            nfa[back].eps.push(head);
            return head;
          }
          const end = node();
          for (let i = item.min; i < item.max; i++) {
            nfa[cur].eps.push(end);
            cur = build(item.item, cur, inlining);
          }
          nfa[cur].eps.push(end);
          return end;
        }
      }
    };
    const buildAlts = (alts: GItem[][], from: number, inlining: string[]): number => {
      const end = node();
      for (const seq of alts) {
        // Each alternative starts at a fresh node (a loop inside one must not see the others).
        let cur = node();
        nfa[from].eps.push(cur);
        for (const it of seq) cur = build(it, cur, inlining);
        nfa[cur].eps.push(end);
      }
      return end;
    };
    const start = node();
    const final = buildAlts(rule.alts, start, [rule.name]);
    ruleStartList.push(determinize(nfa, start, final, dfa));
  }
  minimize(dfa, ruleStartList);

  // Liveness: a node is live when the end of its rule can be reached from it.
  const nRules = kept.length;
  const { node: live, rule: productive } = backwardClosure(dfa, ruleStartList, true, () => true, () => true);
  if (!productive[0]) {
    const r = rules.get('root')!;
    grammarError(text, source, r.at, 'the grammar matches nothing (no text can complete "root")');
  }
  // Keep live nodes reachable from root's start.
  const newId = new Int32Array(dfa.length).fill(-1);
  const order: number[] = [];
  const reachRule = new Int32Array(nRules).fill(-1);
  const visitNode = (n0: number): void => {
    const todo = [n0];
    if (newId[n0] >= 0) return;
    newId[n0] = order.length; order.push(n0);
    while (todo.length) {
      const n = todo.pop()!;
      const d = dfa[n];
      const go = (t: number) => { if (live[t] && newId[t] < 0) { newId[t] = order.length; order.push(t); todo.push(t); } };
      for (let i = 0; i < d.ranges.length; i += 3) go(d.ranges[i + 2]);
      for (let i = 0; i < d.refs.length; i += 2) {
        const r = d.refs[i];
        if (!productive[r]) continue;
        go(d.refs[i + 1]);
        if (reachRule[r] < 0) { reachRule[r] = 0; go(ruleStartList[r]); }
      }
    }
  };
  reachRule[0] = 0;
  visitNode(ruleStartList[0]);

  // Left recursion: a rule reachable from its own start without consuming a byte.
  // Nullable rules: the end of the rule is reachable through references to nullable rules alone.
  const { rule: nullable } = backwardClosure(dfa, ruleStartList, false,
    (r) => productive[r] === 1 && reachRule[r] >= 0, (r, t) => productive[r] === 1 && live[t] === 1);
  const leftRefs = (r: number): number[] => {
    const seen = new Set<number>([ruleStartList[r]]);
    const todo = [ruleStartList[r]];
    const out = new Set<number>();
    while (todo.length) {
      const d = dfa[todo.pop()!];
      for (let i = 0; i < d.refs.length; i += 2) {
        const s = d.refs[i], t = d.refs[i + 1];
        if (!productive[s] || !live[t]) continue;
        out.add(s);
        if (nullable[s] && !seen.has(t)) { seen.add(t); todo.push(t); }
      }
    }
    return [...out];
  };
  const color = new Uint8Array(nRules);
  const path: number[] = [];
  const lr = (r: number): void => {
    color[r] = 1;
    path.push(r);
    for (const s of leftRefs(r)) {
      if (color[s] === 1) {
        const names = [...path.slice(path.indexOf(s)), s].map((i) => kept[i]);
        grammarError(text, source, rules.get(kept[s])!.at, `rule "${kept[s]}" is left-recursive (${names.join(' -> ')} without consuming text); rewrite it with repetition`);
      }
      if (color[s] === 0) lr(s);
    }
    path.pop();
    color[r] = 2;
  };
  for (let r = 0; r < nRules; r++) if (reachRule[r] >= 0 && color[r] === 0) lr(r);

  // Flatten.
  const N = order.length;
  const nodeFinal = new Uint8Array(N);
  const rangeStart = new Int32Array(N + 1), refStart = new Int32Array(N + 1);
  const lo: number[] = [], hi: number[] = [], tgt: number[] = [], rr: number[] = [], rt: number[] = [];
  for (let i = 0; i < N; i++) {
    const d = dfa[order[i]];
    nodeFinal[i] = d.final ? 1 : 0;
    rangeStart[i] = lo.length;
    for (let j = 0; j < d.ranges.length; j += 3) {
      const t = newId[d.ranges[j + 2]];
      if (t < 0) continue;
      lo.push(d.ranges[j]); hi.push(d.ranges[j + 1]); tgt.push(t);
    }
    refStart[i] = rr.length;
    for (let j = 0; j < d.refs.length; j += 2) {
      const r = d.refs[j], t = newId[d.refs[j + 1]];
      if (!productive[r] || t < 0) continue;
      rr.push(r); rt.push(t);
    }
  }
  rangeStart[N] = lo.length;
  refStart[N] = rr.length;
  const ruleStart = Int32Array.from(ruleStartList, (s, r) => (reachRule[r] >= 0 ? newId[s] : -1));
  return new CompiledGrammar(source, kept, ruleStart, 0, nodeFinal, rangeStart, Uint8Array.from(lo), Uint8Array.from(hi), Int32Array.from(tgt),
    refStart, Int32Array.from(rr), Int32Array.from(rt));
}

/**
 * The least node set containing the final nodes and closed under "has an edge into the set":
 * byte edges (when `ranges`), and reference edges (rule, target) with the target in the set and
 * the rule accepted (`ruleOk`) and started from a node of the set. A worklist over reversed edges,
 * linear in the size of the automaton.
 */
function backwardClosure(dfa: DfaNode[], starts: number[], ranges: boolean, ruleOk: (r: number) => boolean,
  edgeOk: (r: number, t: number) => boolean): { node: Uint8Array; rule: Uint8Array } {
  const n = dfa.length;
  const node = new Uint8Array(n), rule = new Uint8Array(starts.length);
  const preds: number[][] = Array.from({ length: n }, () => []); // (source, rule or -1) pairs
  const byRule: number[][] = Array.from({ length: starts.length }, () => []); // (source, target) pairs
  const startOf: number[][] = Array.from({ length: n }, () => []);
  starts.forEach((s, r) => { if (s >= 0) startOf[s].push(r); });
  for (let i = 0; i < n; i++) {
    const d = dfa[i];
    if (ranges) for (let j = 0; j < d.ranges.length; j += 3) preds[d.ranges[j + 2]].push(i, -1);
    for (let j = 0; j < d.refs.length; j += 2) {
      const r = d.refs[j], t = d.refs[j + 1];
      if (!edgeOk(r, t)) continue;
      preds[t].push(i, r);
      byRule[r].push(i, t);
    }
  }
  const queue: number[] = [];
  const mark = (i: number) => { if (!node[i]) { node[i] = 1; queue.push(i); } };
  for (let i = 0; i < n; i++) if (dfa[i].final) mark(i);
  while (queue.length) {
    const t = queue.pop()!;
    const p = preds[t];
    for (let j = 0; j < p.length; j += 2) if (p[j + 1] < 0 || rule[p[j + 1]]) mark(p[j]);
    for (const r of startOf[t]) {
      if (rule[r] || !ruleOk(r)) continue;
      rule[r] = 1;
      const e = byRule[r];
      for (let j = 0; j < e.length; j += 2) if (node[e[j + 1]]) mark(e[j]);
    }
  }
  return { node, rule };
}

/** Subset construction of one rule's NFA; appends its DFA nodes to `out` and returns the start node. */
function determinize(nfa: NfaNode[], start: number, final: number, out: DfaNode[]): number {
  const closure = (set: Iterable<number>): number[] => {
    const seen = new Set<number>();
    const todo = [...set];
    for (const n of todo) seen.add(n);
    while (todo.length) {
      const n = todo.pop()!;
      for (const m of nfa[n].eps) if (!seen.has(m)) { seen.add(m); todo.push(m); }
    }
    return [...seen].sort((a, b) => a - b);
  };
  const ids = new Map<string, number>();
  const pending: Array<[number, number[]]> = [];
  const intern = (set: number[]): number => {
    const key = set.join(',');
    let id = ids.get(key);
    if (id === undefined) {
      id = out.length;
      out.push({ final: set.includes(final), ranges: [], refs: [] });
      ids.set(key, id);
      pending.push([id, set]);
    }
    return id;
  };
  const s0 = intern(closure([start]));
  while (pending.length) {
    const [id, set] = pending.pop()!;
    // Byte edges: split 0..255 at every edge boundary, then group the pieces by target set.
    const edges: number[] = [];
    const cuts = new Set<number>([0, 256]);
    for (const n of set) {
      const e = nfa[n].edges;
      for (let i = 0; i < e.length; i += 3) { edges.push(e[i], e[i + 1], e[i + 2]); cuts.add(e[i]); cuts.add(e[i + 1] + 1); }
    }
    if (edges.length) {
      const pts = [...cuts].sort((a, b) => a - b);
      const ranges = out[id].ranges;
      for (let k = 0; k + 1 < pts.length; k++) {
        const a = pts[k], b = pts[k + 1] - 1;
        const targets: number[] = [];
        for (let i = 0; i < edges.length; i += 3) if (edges[i] <= a && b <= edges[i + 1]) targets.push(edges[i + 2]);
        if (!targets.length) continue;
        const t = intern(closure(targets));
        const L = ranges.length;
        if (L && ranges[L - 1] === t && ranges[L - 2] === a - 1) ranges[L - 2] = b;
        else ranges.push(a, b, t);
      }
    }
    const byRule = new Map<number, number[]>();
    for (const n of set) {
      const r = nfa[n].refs;
      for (let i = 0; i < r.length; i += 2) {
        const l = byRule.get(r[i]) ?? [];
        l.push(r[i + 1]);
        byRule.set(r[i], l);
      }
    }
    for (const [rule, targets] of byRule) out[id].refs.push(rule, intern(closure(targets)));
  }
  return s0;
}

/**
 * Merges nodes with the same future, in place: fewer nodes means fewer vocabulary walks (e.g.
 * "inside a string, just after the quote" and "inside a string, after a character" become one).
 * Strongly connected components are visited successors first (Tarjan's order); a node outside any
 * cycle is merged with an earlier node of identical signature (finality, and edges to merged
 * targets), and each cycle is refined on its own (Moore) before its classes are registered. Every
 * merge joins nodes with identical transitions, so the language is unchanged; the work is linear
 * apart from the refinement inside cycles, which are small.
 */
function minimize(dfa: DfaNode[], starts: number[]): void {
  const n = dfa.length;
  const succ = (i: number): number[] => {
    const d = dfa[i], out: number[] = [];
    for (let j = 0; j < d.ranges.length; j += 3) out.push(d.ranges[j + 2]);
    for (let j = 0; j < d.refs.length; j += 2) out.push(d.refs[j + 1]);
    return out;
  };
  const canon = new Int32Array(n).fill(-1);
  const bySig = new Map<string, number>();
  let next = 0;
  /** The signature of node i with targets named by `name` (-1: not named yet). */
  const signature = (i: number, name: (t: number) => string): string => {
    const d = dfa[i];
    let sig = d.final ? 'F' : 'N';
    let lastT = '', lastHi = -2;
    for (let j = 0; j < d.ranges.length; j += 3) {
      const t = name(d.ranges[j + 2]);
      if (t === lastT && d.ranges[j] === lastHi + 1) sig += `~${d.ranges[j + 1]}`;
      else sig += `,${d.ranges[j]}-${d.ranges[j + 1]}>${t}`;
      lastT = t; lastHi = d.ranges[j + 1];
    }
    const refs: string[] = [];
    for (let j = 0; j < d.refs.length; j += 2) refs.push(`${d.refs[j]}>${name(d.refs[j + 1])}`);
    return sig + '|' + refs.sort().join(',');
  };
  const finish = (members: number[]): void => {
    if (members.length === 1 && !succ(members[0]).includes(members[0])) {
      const sig = signature(members[0], (t) => String(canon[t]));
      let id = bySig.get(sig);
      if (id === undefined) { id = next++; bySig.set(sig, id); }
      canon[members[0]] = id;
      return;
    }
    // A cycle: refine its members, with targets outside it already named.
    const inside = new Map<number, number>();
    members.forEach((m) => { inside.set(m, 0); });
    let count = 1;
    for (;;) {
      const ids = new Map<string, number>();
      const cls = new Map<number, number>();
      for (const m of members) {
        const sig = `${inside.get(m)}|` + signature(m, (t) => (inside.has(t) ? `s${inside.get(t)}` : String(canon[t])));
        let id = ids.get(sig);
        if (id === undefined) { id = ids.size; ids.set(sig, id); }
        cls.set(m, id);
      }
      for (const [m, c] of cls) inside.set(m, c);
      if (ids.size === count) break;
      count = ids.size;
    }
    const base = next;
    next += count;
    for (const m of members) canon[m] = base + inside.get(m)!;
    // Register each class, so that nodes outside any cycle with the same transitions merge into it.
    for (const m of members) {
      const sig = signature(m, (t) => String(canon[t]));
      if (!bySig.has(sig)) bySig.set(sig, canon[m]);
    }
  };
  // Iterative Tarjan: components come out after every component they reach.
  const index = new Int32Array(n).fill(-1), low = new Int32Array(n), onStack = new Uint8Array(n);
  const stack: number[] = [];
  let counter = 0;
  for (let root = 0; root < n; root++) {
    if (index[root] >= 0) continue;
    const work: Array<{ v: number; s: number[]; i: number }> = [];
    const visit = (v: number) => { index[v] = low[v] = counter++; stack.push(v); onStack[v] = 1; work.push({ v, s: succ(v), i: 0 }); };
    visit(root);
    while (work.length) {
      const top = work[work.length - 1];
      if (top.i < top.s.length) {
        const w = top.s[top.i++];
        if (index[w] < 0) visit(w);
        else if (onStack[w]) low[top.v] = Math.min(low[top.v], index[w]);
        continue;
      }
      work.pop();
      if (work.length) { const p = work[work.length - 1].v; low[p] = Math.min(low[p], low[top.v]); }
      if (low[top.v] === index[top.v]) {
        const members: number[] = [];
        let w: number;
        do { w = stack.pop()!; onStack[w] = 0; members.push(w); } while (w !== top.v);
        finish(members);
      }
    }
  }
  if (next === n) return;
  const rep = new Int32Array(next).fill(-1);
  for (let i = 0; i < n; i++) if (rep[canon[i]] < 0) rep[canon[i]] = i;
  const merged: DfaNode[] = [];
  for (let c = 0; c < next; c++) {
    const d = dfa[rep[c]];
    const ranges: number[] = [];
    for (let j = 0; j < d.ranges.length; j += 3) {
      const t = canon[d.ranges[j + 2]], L = ranges.length;
      if (L && ranges[L - 1] === t && ranges[L - 2] === d.ranges[j] - 1) ranges[L - 2] = d.ranges[j + 1];
      else ranges.push(d.ranges[j], d.ranges[j + 1], t);
    }
    const refs: number[] = [];
    for (let j = 0; j < d.refs.length; j += 2) refs.push(d.refs[j], canon[d.refs[j + 1]]);
    merged.push({ final: d.final, ranges, refs });
  }
  dfa.length = merged.length;
  for (let c = 0; c < merged.length; c++) dfa[c] = merged[c];
  for (let r = 0; r < starts.length; r++) starts[r] = canon[starts[r]];
}

export { GrammarError };
