// Grammars for JSON numbers within [minimum, maximum], exactly.
//
// A bound is written as its shortest round-trip decimal (Number.prototype.toExponential() without
// an argument), and the grammar accepts exactly the decimal strings whose value lies between the
// decimal bounds. That is exact for the JSON parser too: parsing rounds monotonically, so a decimal
// d >= decimal(lo) parses to a double >= lo. The language is regular; it is built as a digit
// automaton whose states are (position, still equal to the lower bound's digits, still equal to the
// upper bound's digits), one GBNF rule per state.
//
// Plain JSON numbers are limited to 16 integer digits, 16 fraction digits and a 2-digit exponent,
// so that a model cannot wander into endless digits; a bounded number has no exponent.

import type { GbnfBuilder } from './gbnf-builder.js';

export const MAX_INT_DIGITS = 16;
export const MAX_FRAC_DIGITS = 16;

export const INTEGER_BODY = '"-"? ( "0" | [1-9] [0-9]{0,15} )';
export const NUMBER_BODY = '"-"? ( "0" | [1-9] [0-9]{0,15} ) ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?';

interface Dec { int: string; frac: string }

/** The shortest round-trip decimal digits of a finite x >= 0 (no leading/trailing zeros). */
export function decimalDigits(x: number): Dec {
  const [m, e] = x.toExponential().split('e');
  const digits = m.replace('.', '');
  const E = Number(e);
  let int: string, frac: string;
  if (E >= 0) {
    int = digits.length <= E + 1 ? digits + '0'.repeat(E + 1 - digits.length) : digits.slice(0, E + 1);
    frac = digits.length <= E + 1 ? '' : digits.slice(E + 1);
  } else {
    int = '0';
    frac = '0'.repeat(-E - 1) + digits;
  }
  return { int: int.replace(/^0+(?=\d)/, ''), frac: frac.replace(/0+$/, '') };
}

function digitClass(a: number, b: number): string {
  return a === b ? `[${a}]` : `[${a}-${b}]`;
}

/** Runs of digits dl..dh grouped by the tightness flags they lead to. */
function digitRuns(dl: number, dh: number, tl: boolean, th: boolean): Array<{ a: number; b: number; tl: boolean; th: boolean }> {
  const runs: Array<{ a: number; b: number; tl: boolean; th: boolean }> = [];
  for (let d = dl; d <= dh; d++) {
    const ntl = tl && d === dl, nth = th && d === dh;
    const last = runs[runs.length - 1];
    if (last && last.tl === ntl && last.th === nth && last.b === d - 1) last.b = d;
    else runs.push({ a: d, b: d, tl: ntl, th: nth });
  }
  return runs;
}

/**
 * Decimal strings "I" or "I.F" (I without leading zeros, at most 16+16 digits) with a <= value <= b
 * (b null: no upper bound). Returns a GBNF expression, or null when no such string exists.
 */
function magnitude(gb: GbnfBuilder, name: string, a: Dec, b: Dec | null, integer: boolean): string | null {
  if (b && b.int.length > MAX_INT_DIGITS) b = null;
  const lenA = a.int.length;
  const maxL = b ? b.int.length : MAX_INT_DIGITS;
  if (lenA > maxL) return null;
  const digitAt = (s: string, i: number) => (i < s.length ? s.charCodeAt(i) - 48 : 0);
  const memo = new Map<string, string | null>();
  const rule = (key: string, alts: string[]): string | null => {
    if (!alts.length) return null;
    return gb.add(`${name}-${key}`, alts.join(' | '));
  };

  // Fraction digits after p of them were written (p >= 1), or the optional fraction (p = 0).
  const frac = (p: number, tl: boolean, th: boolean): string | null => {
    // Past the lower bound's last digit, any digits keep the value at or above it.
    if (tl && a.frac.length <= p) tl = false;
    const key = `f${p}-${+tl}${+th}`;
    if (memo.has(key)) return memo.get(key)!;
    let r: string | null;
    if (integer) r = !tl || a.frac.length === 0 ? '""' : null;
    else if (!tl && !th) r = p === 0 ? gb.add('frac', `( "." [0-9]{1,${MAX_FRAC_DIGITS}} )?`) : gb.add(`frac-rest-${p}`, `[0-9]{0,${MAX_FRAC_DIGITS - p}}`);
    else {
      const alts: string[] = [];
      if (!tl || a.frac.length <= p) alts.push('""');
      if (p < MAX_FRAC_DIGITS) {
        const dl = tl ? digitAt(a.frac, p) : 0, dh = th ? digitAt(b!.frac, p) : 9;
        const digits: string[] = [];
        for (const run of digitRuns(dl, dh, tl, th)) {
          const next = frac(p + 1, run.tl, run.th);
          if (next !== null) digits.push(next === '""' ? digitClass(run.a, run.b) : `${digitClass(run.a, run.b)} ${next}`);
        }
        if (digits.length) alts.push(p === 0 ? `"." ( ${digits.join(' | ')} )` : digits.join(' | '));
      }
      r = rule(key, alts);
    }
    memo.set(key, r);
    return r;
  };

  // Integer digits of an L-digit integer part after pos of them were written.
  const int = (L: number, pos: number, tl: boolean, th: boolean): string | null => {
    const key = `i${L}-${pos}-${+tl}${+th}`;
    if (memo.has(key)) return memo.get(key)!;
    let r: string | null;
    if (pos === L) r = frac(0, tl, th);
    else if (!tl && !th && pos > 0) {
      const tail = frac(0, false, false)!;
      r = gb.add(`${integer ? 'int' : 'num'}-rest-${L - pos}`, `[0-9]{${L - pos}}${tail === '""' ? '' : ' ' + tail}`);
    } else {
      const dl = tl ? digitAt(a.int, pos) : pos === 0 && L > 1 ? 1 : 0;
      const dh = th ? digitAt(b!.int, pos) : 9;
      const alts: string[] = [];
      for (const run of digitRuns(dl, dh, tl, th)) {
        const next = int(L, pos + 1, run.tl, run.th);
        if (next !== null) alts.push(next === '""' ? digitClass(run.a, run.b) : `${digitClass(run.a, run.b)} ${next}`);
      }
      r = rule(key, alts);
    }
    memo.set(key, r);
    return r;
  };

  const alts: string[] = [];
  for (let L = lenA; L <= maxL; L++) {
    const r = int(L, 0, L === lenA, b !== null && L === b.int.length);
    if (r !== null) alts.push(r);
  }
  return alts.length ? (alts.length === 1 ? alts[0] : `( ${alts.join(' | ')} )`) : null;
}

/**
 * A GBNF expression for JSON numbers (or integers) x with lo <= x <= hi, either bound optional.
 * Returns null when no value fits (e.g. an integer between 1.2 and 1.8).
 */
export function numberRange(gb: GbnfBuilder, kind: 'number' | 'integer', lo: number | undefined, hi: number | undefined): string | null {
  const integer = kind === 'integer';
  if (lo === undefined && hi === undefined) return gb.add(kind, integer ? INTEGER_BODY : NUMBER_BODY);
  if (integer) {
    if (lo !== undefined) lo = Math.ceil(lo);
    if (hi !== undefined) hi = Math.floor(hi);
  }
  if (lo !== undefined && hi !== undefined && lo > hi) return null;
  const name = `${kind}-${lo ?? 'inf'}-${hi ?? 'inf'}`;
  const alts: string[] = [];
  if (hi === undefined || hi >= 0) {
    const m = magnitude(gb, name + '-pos', decimalDigits(lo === undefined || lo <= 0 ? 0 : lo), hi === undefined ? null : decimalDigits(hi), integer);
    if (m !== null) alts.push(m);
  }
  if (lo === undefined || lo < 0) {
    // Negative values as "-" and their magnitude; with 0 in range that includes "-0" (= 0).
    const m = magnitude(gb, name + '-neg', decimalDigits(hi === undefined || hi >= 0 ? 0 : -hi), lo === undefined ? null : decimalDigits(-lo), integer);
    if (m !== null) alts.push(`"-" ${m}`);
  }
  if (!alts.length) return null;
  return gb.add(name, alts.join(' | '));
}
