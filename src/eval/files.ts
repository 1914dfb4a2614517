// Reading evaluation data files: plain, gzip- or brotli-compressed text, JSON, JSON lines, CSV and
// Parquet, with errors that name the file and line. Every reader accepts `<name>.gz` and `<name>.br`
// transparently, so the vendored copies can stay compressed while users point at the original
// release files. Both decoders are in Node's zlib, so compression adds no dependency.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { OpenELMError } from '../core/errors.js';

export function dataError(message: string): OpenELMError { return new OpenELMError('data', message); }

function readBytes(file: string): Buffer {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw dataError(`data file ${file} not found`);
    if (e.code === 'EISDIR') throw dataError(`${file} is a folder, expected a data file`);
    throw dataError(`cannot read data file ${file}: ${e.message}`);
  }
  if (file.endsWith('.gz')) {
    try {
      buf = zlib.gunzipSync(buf);
    } catch (e) {
      throw dataError(`${file} is not a valid gzip file: ${(e as Error).message}`);
    }
  }
  if (file.endsWith('.br')) {
    try {
      buf = zlib.brotliDecompressSync(buf);
    } catch (e) {
      throw dataError(`${file} is not a valid brotli file: ${(e as Error).message}`);
    }
  }
  if (file.endsWith('.bz2') || file.endsWith('.zst') || file.endsWith('.xz')) {
    throw dataError(`${file} is compressed in a format openelm does not read; decompress it (or recompress with gzip) first`);
  }
  return buf;
}

/** Whole file as text (UTF-8 unless told otherwise); a leading BOM is dropped. */
export function readText(file: string, encoding: 'utf-8' | 'windows-1252' = 'utf-8'): string {
  const buf = readBytes(file);
  let text: string;
  try {
    text = new TextDecoder(encoding, { fatal: true }).decode(buf);
  } catch {
    throw dataError(`${file} is not valid ${encoding} text`);
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** A JSON file (array or object). */
export function readJson(file: string): unknown {
  const text = readText(file);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw dataError(`${file}: malformed JSON (${(e as Error).message})`);
  }
}

export interface Line<T> { value: T; line: number; }

/** JSON lines: one value per non-blank line, each with its 1-based line number for later errors. */
export function readJsonl(file: string): Line<unknown>[] {
  const lines = readText(file).split('\n');
  const out: Line<unknown>[] = [];
  for (let i = 0; i < lines.length; i++) {
    const s = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (s.trim() === '') continue;
    try {
      out.push({ value: JSON.parse(s), line: i + 1 });
    } catch (e) {
      throw dataError(`${file}:${i + 1}: malformed JSON line (${(e as Error).message})`);
    }
  }
  return out;
}

/** Non-blank lines of a text file, each trimmed of its line ending. */
export function readLines(file: string): Line<string>[] {
  const lines = readText(file).split('\n');
  const out: Line<string>[] = [];
  for (let i = 0; i < lines.length; i++) {
    const s = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (s.trim() !== '') out.push({ value: s, line: i + 1 });
  }
  return out;
}

/** RFC 4180 CSV (quoted fields may span lines; "" escapes a quote). Each row keeps its starting line. */
export function parseCsv(text: string, file: string, delimiter = ','): Line<string[]>[] {
  const rows: Line<string[]>[] = [];
  let row: string[] = [], field = '', i = 0, line = 1, rowLine = 1, quoted = false, any = false;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
        quoted = false; i++; continue;
      }
      if (c === '\n') line++;
      field += c; i++; continue;
    }
    if (c === '"' && field === '') { quoted = true; any = true; i++; continue; }
    if (c === delimiter) { row.push(field); field = ''; any = true; i++; continue; }
    if (c === '\r' && text[i + 1] === '\n') { i++; continue; }
    if (c === '\n') {
      if (any || field !== '') { row.push(field); rows.push({ value: row, line: rowLine }); }
      row = []; field = ''; any = false; line++; rowLine = line; i++; continue;
    }
    field += c; any = true; i++;
  }
  if (quoted) throw dataError(`${file}:${rowLine}: unterminated quoted CSV field`);
  if (any || field !== '') { row.push(field); rows.push({ value: row, line: rowLine }); }
  return rows;
}

/** Rows of a Parquet file as plain objects (struct columns become nested objects). */
export async function readParquet(file: string): Promise<Record<string, unknown>[]> {
  const { parquetReadObjects } = await import('hyparquet');
  let compressors: unknown;
  try {
    const mod = (await import('hyparquet-compressors' as string)) as { compressors?: unknown };
    compressors = mod.compressors;
  } catch {
    compressors = undefined;
  }
  const buf = readBytes(file);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  try {
    const rows = await parquetReadObjects({ file: ab, ...(compressors ? { compressors: compressors as never } : {}) });
    return rows as Record<string, unknown>[];
  } catch (e) {
    throw dataError(`${file}: cannot read Parquet (${(e as Error).message})`);
  }
}

/** Records of a JSON-lines, JSON-array or Parquet file, each with a location label for errors. */
export async function readRecords(file: string): Promise<{ rec: Record<string, unknown>; where: string }[]> {
  const base = stripCompression(file);
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (base.endsWith('.parquet')) {
    return (await readParquet(file)).map((rec, i) => ({ rec, where: `${file} row ${i + 1}` }));
  }
  if (base.endsWith('.json')) {
    const v = readJson(file);
    if (!Array.isArray(v)) throw dataError(`${file}: expected a JSON array of records`);
    return v.map((rec, i) => {
      if (!isObj(rec)) throw dataError(`${file}: record ${i + 1} is not a JSON object`);
      return { rec, where: `${file} record ${i + 1}` };
    });
  }
  return readJsonl(file).map(({ value, line }) => {
    if (!isObj(value)) throw dataError(`${file}:${line}: expected a JSON object on this line`);
    return { rec: value, where: `${file}:${line}` };
  });
}

/** The file name without a `.gz` / `.br` suffix. */
export function stripCompression(file: string): string {
  return file.endsWith('.gz') || file.endsWith('.br') ? file.slice(0, -3) : file;
}

function isFile(f: string): boolean {
  try { return fs.statSync(f).isFile(); } catch { return false; }
}

/** The path if it exists (also trying `<path>.gz` and `<path>.br`), else null. */
export function existing(file: string): string | null {
  for (const f of [file, file + '.gz', file + '.br']) if (isFile(f)) return f;
  return null;
}

const RECORD_EXT = /\.(parquet|jsonl|json)(\.gz|\.br)?$/;

/**
 * Files holding split `split` in a Hugging Face style download: `<split>.jsonl`, `<split>.parquet`,
 * `<split>-00000-of-00001[-hash].parquet`, `<split>/0000.parquet`, searched in `dir`, in the preferred
 * config subfolders (e.g. "ARC-Easy") and in `data/`. Shards come back in name order.
 */
export function hfSplitFiles(dir: string, split: string, configDirs: string[] = []): string[] {
  const candidates = [...configDirs.map((c) => path.join(dir, c)), ...configDirs.map((c) => path.join(dir, c, 'data')), dir, path.join(dir, 'data')];
  // Exact names and HF shard names only: a looser prefix match would also take WinoGrande's
  // train_xs/train_s/... next to train_xl.
  const re = new RegExp(`^${split}(-\\d+-of-\\d+(-[0-9a-f]+)?)?\\.(parquet|jsonl)(\\.gz|\\.br)?$`);
  for (const d of candidates) {
    if (!isDir(d)) continue;
    const names = fs.readdirSync(d).filter((f) => re.test(f) && fs.statSync(path.join(d, f)).isFile()).sort();
    if (names.length) return names.map((f) => path.join(d, f));
    const sub = path.join(d, split);
    if (isDir(sub)) {
      const shards = fs.readdirSync(sub).filter((f) => RECORD_EXT.test(f) && !f.endsWith('.json')).sort();
      if (shards.length) return shards.map((f) => path.join(sub, f));
    }
  }
  return [];
}

export function isDir(d: string): boolean {
  try { return fs.statSync(d).isDirectory(); } catch { return false; }
}
