// The checks every command that writes a user-named output file makes before it starts: the output
// must not be one of the files it reads (an atomic rename over an input would silently replace the
// model being converted), must not be a folder, and an existing file is only replaced when asked.
// "The same file" is decided on what the names point at: real paths (so a symlink to an input is the
// input) and device + inode (so a hard link to an input is the input too).

import * as fs from 'node:fs';
import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';

export interface OutputCheck {
  /** Files the command reads (missing ones are ignored). */
  inputs: readonly string[];
  /** Replace an existing output file (the CLI's --force). */
  overwrite?: boolean;
  /** How the output is named in messages (default "--out"). */
  flag?: string;
}

function statOrNull(p: string): fs.Stats | null {
  try { return fs.statSync(p); } catch { return null; }
}

function realOrResolved(p: string): string {
  try { return fs.realpathSync(p); } catch { return path.resolve(p); }
}

/** True when `a` and `b` name the same file (through symlinks or hard links). */
export function sameFile(a: string, b: string): boolean {
  if (realOrResolved(a) === realOrResolved(b)) return true;
  const sa = statOrNull(a), sb = statOrNull(b);
  return !!sa && !!sb && sa.ino !== 0 && sa.dev === sb.dev && sa.ino === sb.ino;
}

/** Throw a usage error unless `out` may be written as a new file or (with overwrite) replace an unrelated one. */
export function checkOutputFile(out: string, o: OutputCheck): void {
  const flag = o.flag ?? '--out';
  const dir = path.dirname(path.resolve(out));
  const dst = statOrNull(dir);
  if (!dst) throw new OpenELMError('usage', `output folder ${dir} does not exist`);
  if (!dst.isDirectory()) throw new OpenELMError('usage', `${dir} is not a folder`);
  const st = statOrNull(out);
  if (!st) return;
  if (st.isDirectory()) throw new OpenELMError('usage', `${flag} ${out} is a folder; give a file name`);
  for (const input of o.inputs) {
    if (statOrNull(input) && sameFile(out, input)) {
      const what = path.resolve(out) === path.resolve(input) ? 'an input of this command' : `the same file as ${input}, an input of this command`;
      throw new OpenELMError('usage', `${flag} ${out} is ${what}; writing it would destroy that input, so choose another output file`);
    }
  }
  if (!o.overwrite) throw new OpenELMError('usage', `${flag} ${out} already exists; pass --force to replace it`);
}
