// Python `str` semantics the lm-eval prompts depend on. JavaScript differs in small ways that change
// prompts: `trimEnd` strips U+FEFF but not U+001C..U+001F or U+0085, `length` counts UTF-16 units
// rather than code points, and `.` in a regex also refuses \r, U+2028 and U+2029.

/** The characters for which Python's str.isspace() is true (what strip()/split()/\s use). */
const PY_SPACE_CHARS = '\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000';
const PY_SPACE = new Set(PY_SPACE_CHARS);

/** A regex character-class body matching Python's `\s` on str patterns. */
export const PY_WS_CLASS = PY_SPACE_CHARS.replace(/[\s\S]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

export function pyIsSpace(ch: string): boolean { return PY_SPACE.has(ch); }

export function pyRstrip(s: string): string {
  let e = s.length;
  while (e > 0 && PY_SPACE.has(s[e - 1])) e--;
  return s.slice(0, e);
}

export function pyLstrip(s: string): string {
  let b = 0;
  while (b < s.length && PY_SPACE.has(s[b])) b++;
  return s.slice(b);
}

export function pyStrip(s: string): string { return pyLstrip(pyRstrip(s)); }

/** len(s) in Python: Unicode code points (a lone surrogate counts as one). */
export function pyLen(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** len(s.encode("utf-8")). */
export function utf8Len(s: string): number { return Buffer.byteLength(s, 'utf8'); }

/**
 * str.capitalize() (Python >= 3.8): the first character in title case, the rest lower case.
 * Title case equals upper case except for a few digraph letters, handled here.
 */
export function pyCapitalize(s: string): string {
  if (s.length === 0) return s;
  const first = String.fromCodePoint(s.codePointAt(0)!);
  return titleCase(first) + s.slice(first.length).toLowerCase();
}

const TITLE: Record<string, string> = {
  '\u01c4': '\u01c5', '\u01c5': '\u01c5', '\u01c6': '\u01c5',
  '\u01c7': '\u01c8', '\u01c8': '\u01c8', '\u01c9': '\u01c8',
  '\u01ca': '\u01cb', '\u01cb': '\u01cb', '\u01cc': '\u01cb',
  '\u01f1': '\u01f2', '\u01f2': '\u01f2', '\u01f3': '\u01f2',
  '\u00df': 'Ss', '\ufb00': 'Ff', '\ufb01': 'Fi', '\ufb02': 'Fl', '\ufb03': 'Ffi', '\ufb04': 'Ffl', '\ufb05': 'St', '\ufb06': 'St',
};

function titleCase(ch: string): string { return TITLE[ch] ?? ch.toUpperCase(); }

/** len(re.split(r"\s+", s)): lm-eval's word count for word_perplexity (empty ends count as words). */
export function pyCountWords(s: string): number {
  return s.split(new RegExp(`[${PY_WS_CLASS}]+`, 'u')).length;
}
