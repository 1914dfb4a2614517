// Token masks: which tokens keep the output a valid prefix of the grammar, exactly (a token is
// allowed iff all its bytes fit) and fast.
//
// Three layers, in the spirit of XGrammar's adaptive token-mask cache:
//   1. Per automaton node, once: walk the vocabulary trie from the single stack (node, BOTTOM).
//      A token whose bytes stay inside the node's rule (or end exactly where it ends) is accepted
//      or rejected whatever the stack below holds: context-independent. A token that would read
//      past the end of the rule depends on the enclosing rules: it is kept on a short list.
//   2. Per state: the union of the cached accepted sets of its stacks' top nodes, plus the listed
//      context-dependent tokens checked one by one against the real state. Typically a few
//      hundred tokens of a few bytes each, on memoized transitions.
//   3. Per state again, the finished mask is memoized: inside a string the state repeats token
//      after token.
// A mask is a bitset over token ids (Uint32Array, bit id&31 of word id>>5).

import { GrammarRuntime, DEAD, HAS_ACCEPT, HAS_BOTTOM, TERMINAL } from './pda.js';
import type { TokenConstraint } from '../decode.js';
import type { CompiledGrammar } from './grammar.js';
import { trieOf, type TokenTrie, type TokenVocab } from './vocab.js';

interface NodeMask { accepted: Uint32Array; /** sorted-index ranges [lo, hi) of context-dependent tokens */ dependent: Int32Array }

/** Masks memoized per state at most (each is vocab/8 bytes: 4 KB for 32000 tokens). */
const STATE_MASK_LIMIT = 4096;
/**
 * Automaton states kept before the automaton's caches start over (each holds a 1 KB transition
 * table). Deeply nested documents keep creating stacks; a server must not grow without bound.
 */
const STATE_LIMIT = 50_000;

export interface ConstraintOptions {
  /** Start the automaton's caches over beyond this many states (default 50000). */
  maxStates?: number;
}

export interface MaskStats {
  nodeMasks: number;
  stateMasks: number;
  states: number;
  stacks: number;
  /** Context-dependent tokens checked (cumulative). */
  dependentChecks: number;
}

/** A grammar bound to a vocabulary, with all caches. Shared by every matcher of that grammar. */
export class GrammarMasker {
  private runtime_: GrammarRuntime;
  private epoch_ = 0;
  private readonly maxStates: number;
  readonly vocab: TokenVocab;
  readonly trie: TokenTrie;
  readonly words: number;
  private readonly nodeMasks = new Map<number, NodeMask>();
  private stateMasks = new Map<number, Uint32Array>();
  private startMasks = new Map<number, Uint32Array>();
  private readonly eosWords: Array<[number, number]>;
  private depth: Int32Array;
  private esc: Uint8Array;
  private dependentChecks = 0;

  constructor(readonly grammar: CompiledGrammar, vocab: TokenVocab, opts: ConstraintOptions = {}) {
    this.runtime_ = new GrammarRuntime(grammar);
    this.maxStates = opts.maxStates ?? STATE_LIMIT;
    this.vocab = vocab;
    this.trie = trieOf(vocab.bytes);
    this.words = (vocab.size + 31) >>> 5;
    this.eosWords = vocab.eosIds.map((id) => [id >>> 5, 1 << (id & 31)]);
    this.depth = new Int32Array(this.trie.maxDepth + 1);
    this.esc = new Uint8Array(this.trie.maxDepth + 1);
  }

  private get startTrie(): TokenTrie { return trieOf(this.vocab.startBytes); }

  /** The automaton; replaced by a fresh one (and `epoch` incremented) when its caches grow too large. */
  get runtime(): GrammarRuntime { return this.runtime_; }
  get epoch(): number { return this.epoch_; }

  newMatcher(): GrammarMatcher {
    if (this.runtime_.stateCount > this.maxStates) {
      // Node masks hold no state ids and stay; matchers replay their bytes on the new automaton.
      this.runtime_ = new GrammarRuntime(this.grammar);
      this.stateMasks = new Map();
      this.startMasks = new Map();
      this.epoch_++;
    }
    return new GrammarMatcher(this);
  }

  stats(): MaskStats {
    return { nodeMasks: this.nodeMasks.size, stateMasks: this.stateMasks.size, states: this.runtime.stateCount, stacks: this.runtime.stackCount, dependentChecks: this.dependentChecks };
  }

  /** Computes the node-level cache for every node reachable so far (optional warm-up). */
  warm(): void {
    for (let n = 0; n < this.grammar.nodeCount; n++) if (this.grammar.hasBytes(n)) this.nodeMask(n);
  }

  /** The mask of `state` (a shared array: copy it before changing it). `atStart`: first token of a generation. */
  mask(state: number, atStart = false): Uint32Array {
    if (atStart) {
      let m = this.startMasks.get(state);
      if (!m) {
        m = new Uint32Array(this.words);
        this.walk(this.startTrie, state, m, null);
        this.addEos(state, m);
        this.startMasks.set(state, m);
      }
      return m;
    }
    let m = this.stateMasks.get(state);
    if (m) return m;
    m = new Uint32Array(this.words);
    const rt = this.runtime;
    const stacks = rt.stacks(state);
    const seen = new Set<number>();
    const deps: Int32Array[] = [];
    for (let i = 0; i < stacks.length; i++) {
      if (stacks[i] < 2) continue;
      const node = rt.topNode(stacks[i]);
      if (seen.has(node)) continue;
      seen.add(node);
      const nm = this.nodeMask(node);
      const a = nm.accepted;
      for (let w = 0; w < a.length; w++) m[w] |= a[w];
      if (nm.dependent.length) deps.push(nm.dependent);
    }
    const ids = this.trie.sortedIds, bytes = this.trie.sortedBytes;
    for (const d of deps) {
      for (let r = 0; r < d.length; r += 2) {
        for (let k = d[r]; k < d[r + 1]; k++) {
          const id = ids[k];
          if (m[id >>> 5] & (1 << (id & 31))) continue;
          this.dependentChecks++;
          if (rt.run(state, bytes[k]) !== DEAD) m[id >>> 5] |= 1 << (id & 31);
        }
      }
    }
    this.addEos(state, m);
    if (this.stateMasks.size >= STATE_MASK_LIMIT) this.stateMasks = new Map();
    this.stateMasks.set(state, m);
    return m;
  }

  /** The mask of `state` by walking the whole trie through the automaton (no node cache): for checks. */
  maskByWalk(state: number, atStart = false): Uint32Array {
    const m = new Uint32Array(this.words);
    this.walk(atStart ? this.startTrie : this.trie, state, m, null);
    this.addEos(state, m);
    return m;
  }

  private addEos(state: number, m: Uint32Array): void {
    if (this.runtime.flags[state] & HAS_ACCEPT) for (const [w, bit] of this.eosWords) m[w] |= bit;
  }

  private nodeMask(node: number): NodeMask {
    let nm = this.nodeMasks.get(node);
    if (nm) return nm;
    const accepted = new Uint32Array(this.words);
    const dep: number[] = [];
    this.walk(this.trie, this.runtime.localState(node), accepted, dep);
    nm = { accepted, dependent: Int32Array.from(dep) };
    this.nodeMasks.set(node, nm);
    return nm;
  }

  /**
   * Walks `trie` from `start`: sets the bits of the tokens whose bytes all fit. With `dep`, records
   * the sorted-index ranges of tokens that read past BOTTOM (the start state's own rule ended).
   */
  private walk(trie: TokenTrie, start: number, out: Uint32Array, dep: number[] | null): void {
    const rt = this.runtime;
    const trans = rt.trans;
    const { nodeByte, nodeDepth, nodeEnd, tokLo, tokHi, subHi, sortedIds } = trie;
    const st = this.depth, esc = this.esc;
    if (start === DEAD) return;
    st[0] = start;
    esc[0] = 0;
    for (let k = 0; k < trie.rootTokHi; k++) { const id = sortedIds[k]; out[id >>> 5] |= 1 << (id & 31); }
    const M = nodeByte.length;
    let i = 0;
    while (i < M) {
      const d = nodeDepth[i];
      const p = st[d - 1];
      let s = trans[p][nodeByte[i]];
      if (s < 0) s = rt.step(p, nodeByte[i]);
      if (s === DEAD) {
        if (dep !== null && (esc[d - 1] || (rt.flags[p] & HAS_BOTTOM))) {
          const lo = tokLo[i], hi = subHi[i];
          if (hi > lo) {
            const L = dep.length;
            if (L && dep[L - 1] === lo) dep[L - 1] = hi; else dep.push(lo, hi);
          }
        }
        i = nodeEnd[i];
        continue;
      }
      st[d] = s;
      esc[d] = esc[d - 1] | (rt.flags[p] & HAS_BOTTOM);
      for (let k = tokLo[i], e = tokHi[i]; k < e; k++) { const id = sortedIds[k]; out[id >>> 5] |= 1 << (id & 31); }
      i++;
    }
  }
}

/**
 * One generation's position in the grammar: the decode step's TokenConstraint (mask the logits,
 * accept the chosen token, end the sequence once the value is complete).
 */
export class GrammarMatcher implements TokenConstraint {
  private state: number;
  private atStart = true;
  private ended = false;
  private epoch: number;
  /** Every byte accepted, to find the state again if the constraint's automaton is replaced. */
  private history: number[] = [];

  constructor(readonly masker: GrammarMasker) {
    this.state = masker.runtime.initial;
    this.epoch = masker.epoch;
  }

  private sync(): number {
    const c = this.masker;
    if (this.epoch !== c.epoch) {
      this.state = c.runtime.run(c.runtime.initial, Uint8Array.from(this.history));
      this.epoch = c.epoch;
    }
    return this.state;
  }

  /** Allowed tokens now, as a bitset over ids (shared: do not modify). Empty after EOS was accepted. */
  allowed(): Uint32Array {
    if (this.ended) return new Uint32Array(this.masker.words);
    return this.masker.mask(this.sync(), this.atStart);
  }

  /** Sets the logits of disallowed tokens to -Infinity. */
  mask(logits: Float32Array): void {
    const m = this.allowed();
    const n = logits.length;
    for (let w = 0; w < m.length; w++) {
      const bits = m[w];
      if (bits === 0xffffffff) continue;
      const base = w << 5;
      const end = Math.min(base + 32, n);
      if (bits === 0) { logits.fill(-Infinity, base, end); continue; }
      for (let i = base; i < end; i++) if (!((bits >>> (i - base)) & 1)) logits[i] = -Infinity;
    }
  }

  isAllowed(id: number): boolean {
    const m = this.allowed();
    return (m[id >>> 5] & (1 << (id & 31))) !== 0;
  }

  /** Advances by one token; false (and no change) if the token is not allowed. */
  accept(id: number): boolean {
    if (this.ended) return false;
    const c = this.masker;
    if (c.vocab.eosIds.includes(id)) {
      if (!this.isComplete) return false;
      this.ended = true;
      return true;
    }
    const b = (this.atStart ? c.vocab.startBytes : c.vocab.bytes)[id];
    if (!b || !this.advance(b)) return false;
    this.atStart = false;
    return true;
  }

  /** Advances by raw bytes (not the first-token rule); false (and no change) if they do not fit. */
  acceptBytes(bytes: Uint8Array): boolean {
    if (this.ended || !this.advance(bytes)) return false;
    if (bytes.length) this.atStart = false;
    return true;
  }

  private advance(bytes: Uint8Array): boolean {
    const s = this.masker.runtime.run(this.sync(), bytes);
    if (s === DEAD) return false;
    this.state = s;
    for (let i = 0; i < bytes.length; i++) this.history.push(bytes[i]);
    return true;
  }

  /** The text so far is a complete value (EOS is allowed). */
  get isComplete(): boolean { return !this.ended && (this.masker.runtime.flags[this.sync()] & HAS_ACCEPT) !== 0; }
  /** The decode step ends the sequence when this turns true: nothing but EOS may follow. */
  get complete(): boolean { return this.isTerminal; }
  /** Complete and nothing may follow: generation can stop without asking the model. */
  get isTerminal(): boolean { return this.ended || (this.masker.runtime.flags[this.sync()] & TERMINAL) !== 0; }
  get isFirstToken(): boolean { return this.atStart; }
  /** The automaton state in the constraint's current automaton (for tests and diagnostics). */
  get stateId(): number { return this.sync(); }
}
