// Shared pieces of the task loaders: finding a task's folder under --data-dir, checking record
// fields with errors that name the file and line, and the "data missing" message.

import * as path from 'node:path';
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
  if (!arr || !arr.every((x) => typeof x === 'number' || typeof x === 'bigint')) throw dataError(`${where}: field "${key}" must be a list of integers`);
  return arr.map((x) => Number(x));
}

export function loaded(docs: Doc[], source: string, notes: string[] = []): LoadedSplit {
  if (docs.length === 0) throw dataError(`${source} holds no documents`);
  return { docs, source, notes };
}

/**
 * The one-line error for a task whose data is absent: which split, where we looked, which files
 * would do and where they come from.
 */
export function missingData(task: string, split: string, dataDir: string, folders: string[], expected: string[]): never {
  const where = folders.map((f) => path.join(dataDir, f)).join(', ');
  throw dataError(`${task}: no data for the ${split} split in ${where}; expected ${expected.join('; or ')}`);
}
