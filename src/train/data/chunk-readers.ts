// Per-file readers that turn one data file into a stream of text chunks (documents already split
// into `splitWords`-word pieces), each with a cursor that says where the *next* chunk starts, so a
// run can stop after any chunk and reopen the file exactly there.
//   text:    the whole file is one document, cut into word chunks while streaming;
//   jsonl:   one JSON object per line (plain, .gz or .zst), text under `textKey`; a line that is
//            not valid JSON or lacks the key is skipped and reported;
//   parquet: the `textKey` column, read one row group at a time;
//   llm-adapters: LLM-Adapters' instruction records (a JSON array or JSON Lines), each rendered
//            into one document by its prompt template and never split (as CoreNet's commonsense_170k).

import * as fs from 'node:fs';
import { parquetMetadataAsync, parquetReadObjects, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { OpenELMError } from '../../core/errors.js';
import { LineReader, WordChunker, compressionOf, openByteStream } from './byte-stream.js';
import { splitWords } from './text.js';
import { instructionRecord, llmAdaptersPrompt, readRecords } from './llm-adapters.js';

/** Where the next chunk of a file starts. Which fields are used depends on the format. */
export interface FileCursor {
  /** text/jsonl: byte offset in the (decompressed) file. */
  offset?: number;
  /** jsonl: 1-based line number at `offset`. */
  line?: number;
  /** parquet: row group and row inside it. */
  rg?: number;
  row?: number;
  /** jsonl/parquet: chunks of the current document already returned. text: chunks returned so far. */
  sub?: number;
  /** text: the final chunk has been returned. */
  ended?: boolean;
}

export interface TextChunk {
  text: string;
  /** Identifies the chunk inside its file independently of reading order (used by the held-out split). */
  key: [number, number, number];
}

export interface BadLine { file: string; line: number; reason: string; }

export interface ChunkReader {
  next(): Promise<TextChunk | null>;
  cursor(): FileCursor;
  close(): Promise<void>;
}

export interface ChunkReaderOptions {
  splitWords: number;
  textKey?: string;
  onBadLine?: (b: BadLine) => void;
  onDocument?: () => void;
}

const utf8 = new TextDecoder('utf-8');

export async function openChunkReader(file: string, format: 'text' | 'jsonl' | 'parquet' | 'llm-adapters', cursor: FileCursor | null,
  opts: ChunkReaderOptions): Promise<ChunkReader> {
  if (format === 'text') return TextFileReader.open(file, cursor, opts);
  if (format === 'llm-adapters') return InstructionReader.open(file, cursor, opts);
  if (format === 'jsonl') return JsonlReader.open(file, cursor, opts);
  return ParquetReader.open(file, cursor, opts);
}

class TextFileReader implements ChunkReader {
  private ord: number;
  private ended: boolean;
  private constructor(private ch: WordChunker | null, private close_: () => Promise<void>, c: FileCursor) {
    this.ord = c.sub ?? 0;
    this.ended = c.ended ?? false;
  }

  static async open(file: string, cursor: FileCursor | null, opts: ChunkReaderOptions): Promise<TextFileReader> {
    const c = cursor ?? {};
    if (c.ended) return new TextFileReader(null, async () => undefined, c);
    const s = await openByteStream(file, compressionOf(file), c.offset ?? 0);
    if ((c.offset ?? 0) === 0) opts.onDocument?.();
    return new TextFileReader(new WordChunker(s, c.offset ?? 0, opts.splitWords), () => s.close(), c);
  }

  async next(): Promise<TextChunk | null> {
    if (this.ended || !this.ch) return null;
    const b = await this.ch.next();
    if (!b) { this.ended = true; return null; }
    const key: [number, number, number] = [this.ord, 0, 0];
    this.ord++;
    if (this.ch.finished) this.ended = true;
    return { text: utf8.decode(b), key };
  }

  cursor(): FileCursor { return { offset: this.ch?.nextOffset ?? 0, sub: this.ord, ended: this.ended }; }
  async close(): Promise<void> { await this.close_(); }
}

/** Parse one JSONL line; returns the text or a reason it is unusable. */
export function jsonlText(line: string, key: string): { text?: string; reason?: string } {
  let obj: unknown;
  try { obj = JSON.parse(line); } catch (e) { return { reason: `invalid JSON (${(e as Error).message.split('\n')[0]})` }; }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return { reason: 'not a JSON object' };
  const v = (obj as Record<string, unknown>)[key];
  if (typeof v !== 'string') return { reason: v === undefined ? `no "${key}" field` : `"${key}" is not a string` };
  return { text: v };
}

class JsonlReader implements ChunkReader {
  private doc: string[] | null = null;
  private docOffset = 0;
  private docLine = 0;
  private sub = 0;

  private constructor(private file: string, private lr: LineReader, private close_: () => Promise<void>,
    private key: string, private opts: ChunkReaderOptions, resumeSub: number) {
    this.sub = resumeSub;
  }

  static async open(file: string, cursor: FileCursor | null, opts: ChunkReaderOptions): Promise<JsonlReader> {
    const c = cursor ?? {};
    const s = await openByteStream(file, compressionOf(file), c.offset ?? 0);
    const lr = new LineReader(s, c.offset ?? 0, c.line ?? 1);
    return new JsonlReader(file, lr, () => s.close(), opts.textKey ?? 'text', opts, c.sub ?? 0);
  }

  async next(): Promise<TextChunk | null> {
    for (;;) {
      if (this.doc && this.sub < this.doc.length) {
        const i = this.sub++;
        return { text: this.doc[i], key: [this.docLine, i, 0] };
      }
      if (this.doc) { this.doc = null; this.sub = 0; }
      const l = await this.lr.next();
      if (!l) return null;
      if (l.bytes.length === 0 || isBlank(l.bytes)) continue;
      const r = jsonlText(utf8.decode(l.bytes), this.key);
      if (r.text === undefined) {
        this.opts.onBadLine?.({ file: this.file, line: l.line, reason: r.reason! });
        continue;
      }
      this.doc = splitWords(r.text, this.opts.splitWords);
      this.docOffset = l.offset;
      this.docLine = l.line;
      // this.sub carries a resumed position into the first document only
      if (this.sub > this.doc.length) this.sub = this.doc.length;
      if (this.sub === 0) this.opts.onDocument?.();
    }
  }

  cursor(): FileCursor {
    if (this.doc && this.sub < this.doc.length) return { offset: this.docOffset, line: this.docLine, sub: this.sub };
    return { offset: this.lr.nextOffset, line: this.lr.nextLine, sub: 0 };
  }

  async close(): Promise<void> { await this.close_(); }
}

function isBlank(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) { const c = b[i]; if (c !== 32 && c !== 9 && c !== 13) return false; }
  return true;
}

/** LLM-Adapters records: the whole file is parsed at open (CommonSense-170k is ~80 MB); the cursor is the record index. */
class InstructionReader implements ChunkReader {
  private constructor(private file: string, private items: { value: unknown; at: number; error?: string }[], private next_: number,
    private opts: ChunkReaderOptions) {}

  static async open(file: string, cursor: FileCursor | null, opts: ChunkReaderOptions): Promise<InstructionReader> {
    const { items } = await readRecords(file);
    return new InstructionReader(file, items, cursor?.row ?? 0, opts);
  }

  async next(): Promise<TextChunk | null> {
    while (this.next_ < this.items.length) {
      const i = this.next_++;
      const it = this.items[i];
      const r = it.error ? { reason: it.error } : instructionRecord(it.value);
      if (!r.record) {
        this.opts.onBadLine?.({ file: this.file, line: it.at, reason: r.reason! });
        continue;
      }
      this.opts.onDocument?.();
      return { text: llmAdaptersPrompt(r.record), key: [i, 0, 2] };
    }
    return null;
  }

  cursor(): FileCursor { return { row: this.next_ }; }
  async close(): Promise<void> { this.items = []; }
}

/** An AsyncBuffer over a local file that reads only the byte ranges hyparquet asks for. */
async function fileAsyncBuffer(file: string): Promise<{ buf: AsyncBuffer; close: () => Promise<void> }> {
  let fh: fs.promises.FileHandle;
  try { fh = await fs.promises.open(file, 'r'); } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new OpenELMError('data', err.code === 'ENOENT' ? `data file ${file} does not exist` : `cannot read data file ${file}: ${err.message}`);
  }
  const size = (await fh.stat()).size;
  const buf: AsyncBuffer = {
    byteLength: size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const e = Math.min(end ?? size, size);
      const out = new Uint8Array(Math.max(0, e - start));
      let got = 0;
      while (got < out.length) {
        const { bytesRead } = await fh.read(out, got, out.length - got, start + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return out.buffer;
    },
  };
  return { buf, close: () => fh.close().catch(() => undefined) };
}

class ParquetReader implements ChunkReader {
  private rows: (string | null)[] | null = null;
  private doc: string[] | null = null;
  private rg: number;
  private row: number;
  private sub: number;
  private rgStart: number[] = [];

  private constructor(private file: string, private buf: AsyncBuffer, private meta: FileMetaData, private key: string,
    private close_: () => Promise<void>, private opts: ChunkReaderOptions, c: FileCursor) {
    this.rg = c.rg ?? 0;
    this.row = c.row ?? 0;
    this.sub = c.sub ?? 0;
    let s = 0;
    for (const g of meta.row_groups) { this.rgStart.push(s); s += Number(g.num_rows); }
  }

  static async open(file: string, cursor: FileCursor | null, opts: ChunkReaderOptions): Promise<ParquetReader> {
    const { buf, close } = await fileAsyncBuffer(file);
    let meta: FileMetaData;
    try { meta = await parquetMetadataAsync(buf); } catch (e) {
      await close();
      throw new OpenELMError('data', `data file ${file} is not a valid Parquet file: ${(e as Error).message}`);
    }
    const cols = meta.schema.slice(1).map((s) => s.name);
    let key = opts.textKey;
    if (key === undefined) key = cols.includes('text') ? 'text' : cols.includes('content') ? 'content' : undefined;
    if (key === undefined || !cols.includes(key)) {
      await close();
      throw new OpenELMError('data', `Parquet file ${file} has no column "${key ?? 'text'}"${opts.textKey === undefined ? ' or "content"' : ''} (columns: ${cols.join(', ')}); set text_key`);
    }
    return new ParquetReader(file, buf, meta, key, close, opts, cursor ?? {});
  }

  private async loadGroup(): Promise<boolean> {
    while (this.rg < this.meta.row_groups.length) {
      const start = this.rgStart[this.rg], n = Number(this.meta.row_groups[this.rg].num_rows);
      if (this.row >= n) { this.rg++; this.row = 0; this.sub = 0; continue; }
      let objs: Record<string, unknown>[];
      try {
        objs = await parquetReadObjects({ file: this.buf, metadata: this.meta, columns: [this.key], rowStart: start, rowEnd: start + n, compressors });
      } catch (e) {
        throw new OpenELMError('data', `cannot read row group ${this.rg} of Parquet file ${this.file}: ${(e as Error).message}`);
      }
      this.rows = objs.map((o) => { const v = o[this.key]; return typeof v === 'string' ? v : null; });
      return true;
    }
    return false;
  }

  async next(): Promise<TextChunk | null> {
    for (;;) {
      if (this.doc && this.sub < this.doc.length) {
        const i = this.sub++;
        return { text: this.doc[i], key: [this.rgStart[this.rg] + this.row, i, 1] };
      }
      if (this.doc) { this.doc = null; this.sub = 0; this.row++; }
      if (!this.rows) { if (!(await this.loadGroup())) return null; }
      const rows = this.rows!;
      if (this.row >= rows.length) { this.rows = null; this.rg++; this.row = 0; this.sub = 0; continue; }
      const v = rows[this.row];
      if (v === null) { this.row++; this.sub = 0; continue; }
      this.doc = splitWords(v, this.opts.splitWords);
      if (this.sub > this.doc.length) this.sub = this.doc.length;
      if (this.sub === 0) this.opts.onDocument?.();
    }
  }

  cursor(): FileCursor {
    if (this.doc && this.sub < this.doc.length) return { rg: this.rg, row: this.row, sub: this.sub };
    if (this.doc) return { rg: this.rg, row: this.row + 1, sub: 0 };
    return { rg: this.rg, row: this.row, sub: 0 };
  }

  async close(): Promise<void> { this.rows = null; this.doc = null; await this.close_(); }
}
