// The evaluation data shipped with the package (data/eval/), located relative to this module:
// compiled it is <pkg>/dist/src/eval/data-dir.js (three levels up), from source two levels up.

import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const CANDIDATES = [new URL('../../../data/eval/', import.meta.url), new URL('../../data/eval/', import.meta.url)];

export function defaultDataDir(): string {
  const u = CANDIDATES.find((c) => fs.existsSync(c)) ?? CANDIDATES[0];
  return fileURLToPath(u).replace(/[\\/]$/, '');
}
