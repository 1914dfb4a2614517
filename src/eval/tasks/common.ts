// Shared pieces of the task loaders: finding a task's folder under --data-dir, checking record
// fields with errors that name the file and line, and the "data missing" error that says which one
// file to download and where to put it.

import * as path from 'node:path';
import { OpenELMError } from '../../core/errors.js';
import { dataError, isDir } from '../files.js';
import type { Doc, LoadedSplit } from '../task.js';

export type Rec = Record<string, unknown>;

/** Existing folders among `names` under dataDir (the task's own name first, then aliases). */
export function taskDirs(dataDir: string, names: string[]): string[] {
  return names.map((n) => path.join(dataDir, n)).filter(isDir);
}

export function getStr(rec: Rec, key: string, where: string): string {
  const v = rec[key];
  if (typeof v !== 'string') throw dataError(`${where}: field "${key}" must be a string, got ${v === undefined ? 'nothing' : JSON.stringify(v)?.slice(0, 40)}`);
  return v;
}

export function getStrList(rec: Rec, key: string, where: string): string[] {
  const v = rec[key];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw dataError(`${where}: field "${key}" must be a list of strings`);
  return v as string[];
}

export function getObj(rec: Rec, key: string, where: string): Rec {
  const v = rec[key];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw dataError(`${where}: field "${key}" must be an object`);
  return v as Rec;
}

/** An integer label stored as a number, a digit string or (BoolQ) a boolean. */
export function getInt(rec: Rec, key: string, where: string): number {
  const v = rec[key];
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string' && /^\d+$/.test(v.trim())) return Number(v.trim());
  throw dataError(`${where}: field "${key}" must be an integer label, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
}

/** A list-like column from Parquet/JSON (hyparquet may return typed arrays) as an array of numbers. */
export function getIntList(rec: Rec, key: string, where: string): number[] {
  const v = rec[key];
  const arr = Array.isArray(v) ? v : ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number | bigint>) : null;
  if (!arr?.every((x) => typeof x === 'number' || typeof x === 'bigint')) throw dataError(`${where}: field "${key}" must be a list of integers`);
  return arr.map((x) => Number(x));
}

export function loaded(docs: Doc[], source: string, notes: string[] = []): LoadedSplit {
  if (docs.length === 0) throw dataError(`${source} holds no documents`);
  return { docs, source, notes };
}

/** The one file that supplies a missing split, and where it goes under a data folder. */
export interface FetchHint {
  /** What to download. */
  url: string;
  /** For an archive: the member (file or folder) to take out of it. */
  extract?: string;
  /** Where the file (or the extracted member) goes, relative to the data folder. */
  dest: string;
  /** Files needed beside it (PIQA keeps its labels in a second file). */
  and?: { url: string; dest: string }[];
  /** Why openelm does not ship it, when the reason is its license. */
  why?: string;
}

/**
 * A split that no data folder holds. The message is one line: which task and split, where openelm
 * looked, and exactly which file to fetch and where to save it so that `--data-dir` picks it up.
 */
export class MissingDataError extends OpenELMError {
  constructor(
    readonly task: string, readonly split: string, readonly searched: string[], readonly hint: FetchHint,
    /** The folder the user passed with --data-dir, named in the instructions; else "DIR". */
    readonly userDir?: string,
    /** What the split is for, e.g. "the few-shot pool of hellaswag:10". */
    readonly role?: string,
  ) {
    super('data', missingMessage(task, split, searched, hint, userDir, role));
    this.name = 'MissingDataError';
  }
}

function missingMessage(task: string, split: string, searched: string[], h: FetchHint, userDir?: string, role?: string): string {
  const root = userDir ?? 'DIR';
  const dest = path.join(root, h.dest);
  const what = `${task}: no ${split} split${role ? ` (${role})` : ''} in ${searched.join(' or ')}${h.why ? ` (${h.why})` : ''}`;
  const get = h.extract ? `download ${h.url}, take "${h.extract}" out of it and save it as ${dest}` : `download ${h.url} and save it as ${dest}`;
  const more = (h.and ?? []).map((x) => `, and ${x.url} as ${path.join(root, x.dest)}`).join('');
  return `${what}; ${get}${more}, then pass --data-dir ${root}`;
}

/** Throws the MissingDataError for `split` of `task`, having searched `dataDir`. */
export function missingData(task: string, split: string, dataDir: string, hint: FetchHint): never {
  throw new MissingDataError(task, split, [dataDir], hint);
}
