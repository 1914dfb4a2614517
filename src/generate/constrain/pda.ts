// The grammar's pushdown automaton, run byte by byte, with everything memoized.
//
// A stack is a hash-consed linked list of frames (node, parent): the top frame's node is where
// the next byte is read, the frames below are return points. Ids 0 and 1 are markers: 0 (ACCEPT)
// is below root, so popping into it means the value is complete; 1 (BOTTOM) stands for "some
// unknown context" and is used to learn what a token does inside one rule, whatever encloses it.
// A state is the set of stacks alive after the bytes read so far (the grammar may be ambiguous
// for a while); states are interned, and the transition of a state on a byte is computed once and
// kept, so matching turns into table lookups: a lazily built DFA over stack sets. Because the
// compiled grammar has no dead nodes, a non-empty state is always a valid prefix.
//
// A reference whose return node ends its rule with nothing after it does not push a frame (a
// tail call), so right recursion and repetition run in constant stack depth.

import type { CompiledGrammar } from './grammar.js';

export const ACCEPT = 0;
export const BOTTOM = 1;
/** The state with no stacks: the bytes so far cannot start a match. */
export const DEAD = 0;

export const HAS_ACCEPT = 1;
export const HAS_BOTTOM = 2;
/** Only ACCEPT: the value is complete and nothing may follow. */
export const TERMINAL = 4;

const UNKNOWN = -2;

export class GrammarRuntime {
  readonly g: CompiledGrammar;
  private readonly N: number;
  // Stacks (ids >= 2): frames are (node, parent).
  private stackNode: Int32Array = new Int32Array(1024);
  private stackParent: Int32Array = new Int32Array(1024);
  private nStacks = 2;
  private readonly stackIds = new Map<number, number>();
  private readonly expandMemo = new Map<number, Int32Array>();
  private readonly advanceMemo = new Map<number, Int32Array>();
  // States.
  private readonly sets: Int32Array[] = [];
  private readonly stateIds = new Map<string, number>();
  /** Per state, the next state for each byte (UNKNOWN until computed, DEAD when none). */
  readonly trans: Int32Array[] = [];
  flags: Uint8Array = new Uint8Array(256);
  /** The state before any byte. */
  readonly initial: number;

  constructor(g: CompiledGrammar) {
    this.g = g;
    this.N = g.nodeCount;
    this.intern(new Int32Array(0)); // DEAD
    this.initial = this.intern(this.expand(g.ruleStart[g.rootRule], ACCEPT));
  }

  get stateCount(): number { return this.sets.length; }
  get stackCount(): number { return this.nStacks; }

  /** The stacks of a state (sorted ids; ACCEPT/BOTTOM markers included). */
  stacks(state: number): Int32Array { return this.sets[state]; }
  /** The node a stack (id >= 2) reads its next byte at. */
  topNode(stack: number): number { return this.stackNode[stack]; }

  /** The state after `byte`. */
  step(state: number, byte: number): number {
    const t = this.trans[state];
    const r = t[byte];
    return r !== UNKNOWN ? r : this.computeStep(state, byte);
  }

  /** The state after all of `bytes`, DEAD as soon as one does not fit. */
  run(state: number, bytes: Uint8Array): number {
    let s = state;
    for (let i = 0; i < bytes.length && s !== DEAD; i++) {
      const r = this.trans[s][bytes[i]];
      s = r !== UNKNOWN ? r : this.computeStep(s, bytes[i]);
    }
    return s;
  }

  /** The state holding the single stack (node, BOTTOM): `node`'s rule inside an unknown context. */
  localState(node: number): number {
    return this.intern(Int32Array.of(this.stackId(node, BOTTOM)));
  }

  private computeStep(state: number, byte: number): number {
    const set = this.sets[state];
    let next: number;
    if (set.length === 1 && set[0] >= 2) next = this.intern(this.advance(set[0], byte));
    else {
      const acc: number[] = [];
      for (let i = 0; i < set.length; i++) {
        if (set[i] < 2) continue;
        const a = this.advance(set[i], byte);
        for (let j = 0; j < a.length; j++) acc.push(a[j]);
      }
      next = this.intern(canonical(acc));
    }
    this.trans[state][byte] = next;
    return next;
  }

  private advance(stack: number, byte: number): Int32Array {
    const key = stack * 256 + byte;
    let r = this.advanceMemo.get(key);
    if (r === undefined) {
      const t = this.g.byteTarget(this.stackNode[stack], byte);
      r = t < 0 ? EMPTY : this.expand(t, this.stackParent[stack]);
      this.advanceMemo.set(key, r);
    }
    return r;
  }

  private stackId(node: number, parent: number): number {
    const key = parent * this.N + node;
    let id = this.stackIds.get(key);
    if (id === undefined) {
      id = this.nStacks++;
      if (id >= this.stackNode.length) {
        const grow = (a: Int32Array) => { const b = new Int32Array(a.length * 2); b.set(a); return b; };
        this.stackNode = grow(this.stackNode);
        this.stackParent = grow(this.stackParent);
      }
      this.stackNode[id] = node;
      this.stackParent[id] = parent;
      this.stackIds.set(key, id);
    }
    return id;
  }

  /**
   * The stacks reached from being at `node` with `parent` below, without reading a byte: nodes with
   * byte edges become stacks, references push a frame and enter the rule, the end of a rule pops.
   */
  private expand(node: number, parent: number): Int32Array {
    const key = parent * this.N + node;
    const memo = this.expandMemo.get(key);
    if (memo) return memo;
    const g = this.g;
    const out: number[] = [];
    const seen = new Set<number>();
    const todo: number[] = [node, parent];
    while (todo.length) {
      const p = todo.pop()!, n = todo.pop()!;
      const k = p * this.N + n;
      if (seen.has(k)) continue;
      seen.add(k);
      if (g.rangeStart[n + 1] > g.rangeStart[n]) out.push(this.stackId(n, p));
      for (let i = g.refStart[n], e = g.refStart[n + 1]; i < e; i++) {
        const t = g.refTarget[i];
        const tail = g.nodeFinal[t] === 1 && g.rangeStart[t + 1] === g.rangeStart[t] && g.refStart[t + 1] === g.refStart[t];
        todo.push(g.ruleStart[g.refRule[i]], tail ? p : this.stackId(t, p));
      }
      if (g.nodeFinal[n]) {
        if (p < 2) out.push(p);
        else todo.push(this.stackNode[p], this.stackParent[p]);
      }
    }
    const r = canonical(out);
    this.expandMemo.set(key, r);
    return r;
  }

  private intern(set: Int32Array): number {
    const key = set.join(',');
    let id = this.stateIds.get(key);
    if (id !== undefined) return id;
    id = this.sets.length;
    this.sets.push(set);
    this.stateIds.set(key, id);
    this.trans.push(id === DEAD ? new Int32Array(256).fill(DEAD) : new Int32Array(256).fill(UNKNOWN));
    if (id >= this.flags.length) { const f = new Uint8Array(this.flags.length * 2); f.set(this.flags); this.flags = f; }
    let fl = 0;
    if (set.length && set[0] === ACCEPT) fl |= HAS_ACCEPT;
    if (set.includes(BOTTOM)) fl |= HAS_BOTTOM;
    if (set.length === 1 && set[0] === ACCEPT) fl |= TERMINAL;
    this.flags[id] = fl;
    return id;
  }
}

const EMPTY = new Int32Array(0);

function canonical(a: ArrayLike<number>): Int32Array {
  const s = Int32Array.from(a).sort();
  let w = 0;
  for (let i = 0; i < s.length; i++) if (i === 0 || s[i] !== s[i - 1]) s[w++] = s[i];
  return w === s.length ? s : s.slice(0, w);
}
