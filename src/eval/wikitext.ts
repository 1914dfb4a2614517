// WikiText helpers for document perplexity: lm-eval's wikitext_detokenizer (tasks/wikitext/
// preprocess_wikitext.py) and a split of a WikiText file into articles.

import { PY_WS_CLASS } from '../core/pystr.js';

const S = `[${PY_WS_CLASS}]*`;
const BRACKETS: [RegExp, string][] = [
  [new RegExp(`\\(${S}([^\\)]*?)${S}\\)`, 'g'), '($1)'],
  [new RegExp(`\\[${S}([^\\]]*?)${S}\\]`, 'g'), '[$1]'],
  [new RegExp(`\\{${S}([^}]*?)${S}\\}`, 'g'), '{$1}'],
  [new RegExp(`"${S}([^"]*?)${S}"`, 'g'), '"$1"'],
  [new RegExp(`'${S}([^']*?)${S}'`, 'g'), '\'$1\''],
];

/** lm-eval's wikitext_detokenizer, step for step. */
export function wikitextDetokenize(s: string): string {
  s = s.replaceAll('s \'', 's\'');
  s = s.replace(/\/' [0-9]\//g, '/\'[0-9]/');
  s = s.replaceAll(' @-@ ', '-').replaceAll(' @,@ ', ',').replaceAll(' @.@ ', '.');
  for (const p of [' : ', ' ; ', ' . ', ' ! ', ' ? ', ' , ']) s = s.replaceAll(p, p.slice(1));
  for (const [re, rep] of BRACKETS) s = s.replace(re, rep);
  s = s.replaceAll('= = = =', '====').replaceAll('= = =', '===').replaceAll('= =', '==');
  s = s.replaceAll(' \u00b0 ', '\u00b0');
  s = s.replaceAll(' \n', '\n').replaceAll('\n ', '\n');
  s = s.replaceAll(' N ', ' 1 ');
  s = s.replaceAll(' \'s', '\'s');
  return s;
}

/**
 * Articles of a WikiText file: a top-level heading line (" = Title = ", one "=" each side) starts a
 * new article. This approximates EleutherAI/wikitext_document_level's pages; its own parquet
 * (column "page") is exact.
 */
export function wikitextArticles(text: string): string[] {
  const lines = text.split('\n');
  const out: string[] = [];
  let cur: string[] = [];
  for (const line of lines) {
    if (/^ = [^=].* = $/.test(line) && cur.some((l) => l.trim() !== '')) {
      out.push(cur.join('\n'));
      cur = [];
    }
    cur.push(line);
  }
  if (cur.some((l) => l.trim() !== '')) out.push(cur.join('\n'));
  return out;
}
