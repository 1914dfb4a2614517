// Streaming file bytes, optionally decompressed (gzip, zstd), in blocks of about 1 MiB, starting at a
// byte offset of the *decompressed* stream. Plain files seek; compressed ones cannot, so resuming
// inside a .gz/.zst file decompresses and discards everything before the offset (costs time, not
// memory).

import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { OpenELMError } from '../../core/errors.js';

export type Compression = 'none' | 'gzip' | 'zstd';

export interface ByteStream {
  /** The next block (never empty), or null at the end of the file. */
  read(): Promise<Uint8Array | null>;
  close(): Promise<void>;
}

const BLOCK = 1 << 20;

export function compressionOf(file: string): Compression {
  if (/\.gz$/i.test(file)) return 'gzip';
  if (/\.zst$/i.test(file)) return 'zstd';
  return 'none';
}

function dataError(file: string, e: unknown): OpenELMError {
  if (e instanceof OpenELMError) return e;
  const err = e as NodeJS.ErrnoException;
  if (err?.code === 'ENOENT') return new OpenELMError('data', `data file ${file} does not exist`);
  return new OpenELMError('data', `cannot read data file ${file}: ${err?.message ?? String(e)}`);
}

class RawStream implements ByteStream {
  private pos: number;
  constructor(private fh: fs.promises.FileHandle, private file: string, offset: number) { this.pos = offset; }
  async read(): Promise<Uint8Array | null> {
    const buf = new Uint8Array(BLOCK);
    let n: number;
    try { n = (await this.fh.read(buf, 0, BLOCK, this.pos)).bytesRead; } catch (e) { throw dataError(this.file, e); }
    if (n === 0) return null;
    this.pos += n;
    return n === BLOCK ? buf : buf.subarray(0, n);
  }
  async close(): Promise<void> { await this.fh.close().catch(() => undefined); }
}

class GzipStream implements ByteStream {
  private raw: fs.ReadStream;
  private gz: zlib.Gunzip;
  private it: AsyncIterator<Buffer>;
  constructor(private file: string) {
    this.raw = fs.createReadStream(file, { highWaterMark: BLOCK });
    this.gz = zlib.createGunzip({ chunkSize: 256 * 1024 });
    this.raw.on('error', (e) => this.gz.destroy(e));
    this.raw.pipe(this.gz);
    this.it = this.gz[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }
  async read(): Promise<Uint8Array | null> {
    for (;;) {
      let r: IteratorResult<Buffer>;
      try { r = await this.it.next(); } catch (e) { throw dataError(this.file, e); }
      if (r.done) return null;
      if (r.value.length) return new Uint8Array(r.value.buffer, r.value.byteOffset, r.value.length);
    }
  }
  async close(): Promise<void> { this.raw.destroy(); this.gz.destroy(); }
}

class ZstdStream implements ByteStream {
  private queue: Uint8Array[] = [];
  private dec: ZstdDecompress;
  private pos = 0;
  private ended = false;
  constructor(private fh: fs.promises.FileHandle, private file: string) {
    this.dec = new ZstdDecompress((chunk: Uint8Array) => { if (chunk.length) this.queue.push(chunk); });
  }
  async read(): Promise<Uint8Array | null> {
    while (!this.queue.length) {
      if (this.ended) return null;
      const buf = new Uint8Array(BLOCK);
      let n: number;
      try { n = (await this.fh.read(buf, 0, BLOCK, this.pos)).bytesRead; } catch (e) { throw dataError(this.file, e); }
      this.pos += n;
      try {
        if (n === 0) { this.ended = true; this.dec.push(new Uint8Array(0), true); } else this.dec.push(buf.subarray(0, n));
      } catch (e) {
        throw new OpenELMError('data', `data file ${this.file} is not valid zstd: ${(e as Error).message}`);
      }
    }
    return this.queue.shift()!;
  }
  async close(): Promise<void> { await this.fh.close().catch(() => undefined); }
}

/** Open `file` and position it at `offset` bytes into its (decompressed) contents. */
export async function openByteStream(file: string, compression: Compression, offset = 0): Promise<ByteStream> {
  let s: ByteStream;
  if (compression === 'gzip') {
    if (!fs.existsSync(file)) throw dataError(file, { code: 'ENOENT' });
    s = new GzipStream(file);
  } else {
    let fh: fs.promises.FileHandle;
    try { fh = await fs.promises.open(file, 'r'); } catch (e) { throw dataError(file, e); }
    if (compression === 'none') return new RawStream(fh, file, offset);
    s = new ZstdStream(fh, file);
  }
  if (offset > 0) return skipBytes(s, offset, file);
  return s;
}

/** Wrap `s` so that its first `n` bytes are dropped (the block holding byte n is cut). */
async function skipBytes(s: ByteStream, n: number, file: string): Promise<ByteStream> {
  let left = n;
  let first: Uint8Array | null = null;
  while (left > 0) {
    const b = await s.read();
    if (!b) throw new OpenELMError('data', `data file ${file} is shorter than the saved position (${n} bytes); was it changed since the checkpoint?`);
    if (b.length > left) { first = b.subarray(left); left = 0; } else left -= b.length;
  }
  return {
    read: async () => { if (first) { const f = first; first = null; return f; } return s.read(); },
    close: () => s.close(),
  };
}

/** Splits a byte stream into lines (LF; a trailing CR is dropped) and tracks their byte offsets. */
export class LineReader {
  private buf = new Uint8Array(0);
  private pos = 0;
  private base: number;       // stream offset of buf[0]
  private line: number;       // 1-based number of the next line
  private eof = false;

  constructor(private s: ByteStream, startOffset: number, startLine: number) {
    this.base = startOffset;
    this.line = startLine;
  }

  /** Offset and 1-based number of the next line to be returned. */
  get nextOffset(): number { return this.base + this.pos; }
  get nextLine(): number { return this.line; }

  async next(): Promise<{ bytes: Uint8Array; offset: number; line: number } | null> {
    for (;;) {
      const nl = this.buf.indexOf(10, this.pos);
      if (nl >= 0) {
        const start = this.pos;
        let end = nl;
        if (end > start && this.buf[end - 1] === 13) end--;
        const res = { bytes: this.buf.subarray(start, end), offset: this.base + start, line: this.line };
        this.pos = nl + 1;
        this.line++;
        return res;
      }
      if (this.eof) {
        if (this.pos >= this.buf.length) return null;
        const start = this.pos;
        let end = this.buf.length;
        if (end > start && this.buf[end - 1] === 13) end--;
        const res = { bytes: this.buf.subarray(start, end), offset: this.base + start, line: this.line };
        this.pos = this.buf.length;
        this.line++;
        return res;
      }
      const more = await this.s.read();
      if (!more) { this.eof = true; continue; }
      this.compactAppend(more);
    }
  }

  private compactAppend(more: Uint8Array): void {
    const rest = this.buf.subarray(this.pos);
    const nb = new Uint8Array(rest.length + more.length);
    nb.set(rest, 0);
    nb.set(more, rest.length);
    this.base += this.pos;
    this.buf = nb;
    this.pos = 0;
  }
}

/**
 * Cuts a byte stream into chunks of `words` space-separated words (the space byte 0x20 never occurs
 * inside a multi-byte UTF-8 sequence, so cutting bytes equals cutting the decoded text). Chunks
 * longer than maxBytes (a file without spaces) are cut at a UTF-8 character boundary.
 */
export class WordChunker {
  private buf = new Uint8Array(0);
  private pos = 0;
  private base: number;
  private eof = false;
  private done = false;

  constructor(private s: ByteStream, startOffset: number, private words: number, private maxBytes = 8 << 20) {
    this.base = startOffset;
  }

  get nextOffset(): number { return this.base + this.pos; }
  /** The last chunk of the file has been returned. */
  get finished(): boolean { return this.done; }

  async next(): Promise<Uint8Array | null> {
    if (this.done) return null;
    let scan = this.pos, n = 0;
    for (;;) {
      while (n < this.words) {
        const sp = this.buf.indexOf(32, scan);
        if (sp < 0) break;
        n++;
        scan = sp + 1;
        if (n === this.words) {
          const chunk = this.buf.subarray(this.pos, sp);
          this.pos = sp + 1;
          return chunk;
        }
      }
      scan = this.buf.length;
      if (this.buf.length - this.pos > this.maxBytes) {
        let cut = this.pos + this.maxBytes;
        while (cut > this.pos && (this.buf[cut] & 0xc0) === 0x80) cut--;
        const chunk = this.buf.subarray(this.pos, cut);
        this.pos = cut;
        return chunk;
      }
      if (this.eof) {
        // Python's split keeps the (possibly empty) last word run; an empty file gives one empty chunk.
        this.done = true;
        const chunk = this.buf.subarray(this.pos);
        this.pos = this.buf.length;
        return chunk;
      }
      const more = await this.s.read();
      if (!more) { this.eof = true; continue; }
      const rest = this.buf.subarray(this.pos);
      const nb = new Uint8Array(rest.length + more.length);
      nb.set(rest, 0);
      nb.set(more, rest.length);
      scan = scan - this.pos;
      this.base += this.pos;
      this.buf = nb;
      this.pos = 0;
    }
  }
}
