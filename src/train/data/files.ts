// Which files a data source names: a file, a folder (every file in it with a matching extension,
// sorted by name), or a glob with * and ? in the last path component. The format comes from the
// recipe or, when absent, from the extension.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { OpenELMError } from '../../core/errors.js';

export type DataFormat = 'text' | 'jsonl' | 'parquet' | 'tokens' | 'llm-adapters';
export const DATA_FORMATS: readonly DataFormat[] = ['text', 'jsonl', 'parquet', 'tokens', 'llm-adapters'];

const EXT: Record<DataFormat, RegExp> = {
  text: /\.(txt|text|md)(\.gz|\.zst)?$/i,
  jsonl: /\.(jsonl|json|ndjson)(\.gz|\.zst)?$/i,
  parquet: /\.parquet$/i,
  tokens: /\.(bin|tokens|u16)$/i,
  // Never chosen from the extension (.json files default to jsonl): name it in the recipe.
  'llm-adapters': /\.(json|jsonl)(\.gz|\.zst)?$/i,
};

export function formatFromExtension(file: string): DataFormat | undefined {
  for (const f of DATA_FORMATS) if (f !== 'llm-adapters' && EXT[f].test(file)) return f;
  return undefined;
}

function globToRegExp(g: string): RegExp {
  const esc = g.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${esc}$`);
}

/** Expand one recipe path (already absolute) to a sorted list of files. `where` names the recipe key. */
export function expandDataPath(p: string, format: DataFormat | undefined, where: string): string[] {
  const base = path.basename(p);
  if (/[*?]/.test(base)) {
    const dir = path.dirname(p);
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new OpenELMError('data', `${where}: folder ${dir} does not exist`);
    const re = globToRegExp(base);
    const files = fs.readdirSync(dir).filter((n) => re.test(n)).sort().map((n) => path.join(dir, n)).filter((f) => fs.statSync(f).isFile());
    if (!files.length) throw new OpenELMError('data', `${where}: no file matches ${p}`);
    return files;
  }
  if (!fs.existsSync(p)) throw new OpenELMError('data', `${where}: data file ${p} does not exist`);
  const st = fs.statSync(p);
  if (st.isFile()) return [p];
  if (!st.isDirectory()) throw new OpenELMError('data', `${where}: ${p} is not a file or folder`);
  const files = fs.readdirSync(p).sort().map((n) => path.join(p, n))
    .filter((f) => fs.statSync(f).isFile() && (format ? EXT[format].test(f) : formatFromExtension(f) !== undefined));
  if (!files.length) throw new OpenELMError('data', `${where}: folder ${p} has no ${format ?? 'data'} files`);
  return files;
}
