// The ZIP container of PyTorch's `torch.save` files, read and written without holding the archive
// in memory.
//
// PyTorch writes every record uncompressed ("stored"), pads each local header's extra field so the
// record's data starts on a 64-byte boundary (so a loader can map tensors straight from the file),
// and switches to ZIP64 records once a size or an offset passes 4 GiB. The reader takes any ZIP
// (deflated records are inflated with node:zlib) and reads each record by position with fs.readSync,
// so a many-gigabyte training state is never read as a whole; the writer streams records one at a
// time into a staged file (src/io/atomic.ts). Format: PKWARE APPNOTE 6.3.x §4.3, §4.5.3 (ZIP64).

import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { OpenELMError } from '../core/errors.js';
import { writeAllSync } from './atomic.js';

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  localHeaderOffset: number;
}

const big = (v: bigint, file: string): number => {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new OpenELMError('zip', `${file}: a ZIP64 field is implausibly large (corrupt file?)`);
  return Number(v);
};

export class ZipReader {
  readonly entries = new Map<string, ZipEntry>();
  private readonly dataStart = new Map<string, number>();

  private constructor(readonly file: string, private readonly fd: number, readonly size: number) {}

  static open(file: string, what = 'file'): ZipReader {
    let fd: number;
    try { fd = fs.openSync(file, 'r'); } catch (e) {
      throw new OpenELMError('zip', `cannot open ${what} ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (e as Error).message}`);
    }
    const z = new ZipReader(file, fd, fs.fstatSync(fd).size);
    try { z.readDirectory(what); } catch (e) { fs.closeSync(fd); throw e; }
    return z;
  }

  private bytes(pos: number, n: number): Buffer {
    if (pos < 0 || pos + n > this.size) throw new OpenELMError('zip', `${this.file} is truncated: ${n} bytes needed at offset ${pos}, the file has ${this.size}`);
    const b = Buffer.alloc(n);
    let done = 0;
    while (done < n) {
      const k = fs.readSync(this.fd, b, done, n - done, pos + done);
      if (k <= 0) throw new OpenELMError('zip', `${this.file}: read failed at offset ${pos + done}`);
      done += k;
    }
    return b;
  }

  private readDirectory(what: string): void {
    const tailLen = Math.min(this.size, 22 + U16_MAX);
    const tail = this.bytes(this.size - tailLen, tailLen);
    let e = -1;
    for (let i = tailLen - 22; i >= 0; i--) if (tail.readUInt32LE(i) === SIG_EOCD) { e = i; break; }
    if (e < 0) {
      const head = this.size >= 4 ? this.bytes(0, 4).readUInt32LE(0) : 0;
      throw new OpenELMError('zip', head === SIG_LOCAL
        ? `${this.file} is truncated (its ZIP directory is missing)`
        : `${this.file} is not a ZIP archive (a ${what} saved by torch.save since PyTorch 1.6 is one)`);
    }
    const eocdPos = this.size - tailLen + e;
    let count = tail.readUInt16LE(e + 10);
    let cdSize = tail.readUInt32LE(e + 12);
    let cdOffset = tail.readUInt32LE(e + 16);
    if (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
      const loc = this.bytes(eocdPos - 20, 20);
      if (loc.readUInt32LE(0) !== SIG_EOCD64_LOCATOR) throw new OpenELMError('zip', `${this.file}: ZIP64 end record locator missing`);
      const r = this.bytes(big(loc.readBigUInt64LE(8), this.file), 56);
      if (r.readUInt32LE(0) !== SIG_EOCD64) throw new OpenELMError('zip', `${this.file}: ZIP64 end record missing`);
      count = big(r.readBigUInt64LE(32), this.file);
      cdSize = big(r.readBigUInt64LE(40), this.file);
      cdOffset = big(r.readBigUInt64LE(48), this.file);
    }
    const cd = this.bytes(cdOffset, cdSize);
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) throw new OpenELMError('zip', `${this.file}: ZIP directory entry ${i} is corrupt`);
      const method = cd.readUInt16LE(p + 10);
      const crc32 = cd.readUInt32LE(p + 16);
      let compressedSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28), extraLen = cd.readUInt16LE(p + 30), commentLen = cd.readUInt16LE(p + 32);
      let localHeaderOffset = cd.readUInt32LE(p + 42);
      const name = cd.subarray(p + 46, p + 46 + nameLen).toString('utf8');
      // ZIP64 extra field (id 1): the 64-bit values of exactly the fields saturated above, in order.
      let x = p + 46 + nameLen;
      const xEnd = x + extraLen;
      while (x + 4 <= xEnd) {
        const id = cd.readUInt16LE(x), len = cd.readUInt16LE(x + 2);
        if (id === 1) {
          let q = x + 4;
          if (size === U32_MAX) { size = big(cd.readBigUInt64LE(q), this.file); q += 8; }
          if (compressedSize === U32_MAX) { compressedSize = big(cd.readBigUInt64LE(q), this.file); q += 8; }
          if (localHeaderOffset === U32_MAX) { localHeaderOffset = big(cd.readBigUInt64LE(q), this.file); q += 8; }
        }
        x += 4 + len;
      }
      this.entries.set(name, { name, method, compressedSize, size, crc32, localHeaderOffset });
      p = xEnd + commentLen;
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): ZipEntry {
    const e = this.entries.get(name);
    if (!e) throw new OpenELMError('zip', `${this.file} has no record ${name}`);
    return e;
  }

  /** Absolute file position of a stored entry's data. */
  private start(e: ZipEntry): number {
    let s = this.dataStart.get(e.name);
    if (s === undefined) {
      const h = this.bytes(e.localHeaderOffset, 30);
      if (h.readUInt32LE(0) !== SIG_LOCAL) throw new OpenELMError('zip', `${this.file}: local header of ${e.name} is corrupt`);
      s = e.localHeaderOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
      if (s + e.compressedSize > this.size) throw new OpenELMError('zip', `${this.file} is truncated: record ${e.name} ends past the end of the file`);
      this.dataStart.set(e.name, s);
    }
    return s;
  }

  /** A whole record, inflated when it was deflated. */
  read(name: string): Buffer {
    const e = this.entry(name);
    const raw = this.bytes(this.start(e), e.compressedSize);
    if (e.method === 0) return raw;
    if (e.method === 8) return zlib.inflateRawSync(raw);
    throw new OpenELMError('zip', `${this.file}: record ${name} uses ZIP compression method ${e.method} (only stored and deflate are supported)`);
  }

  /** `n` bytes of a record from byte `offset`, into dst (stored records read only that range). */
  readRange(name: string, offset: number, n: number, dst: Uint8Array = new Uint8Array(n)): Uint8Array {
    const e = this.entry(name);
    if (offset < 0 || offset + n > e.size) throw new OpenELMError('zip', `${this.file}: bytes [${offset}, ${offset + n}) are outside record ${name} (${e.size} bytes)`);
    if (e.method !== 0) { dst.set(this.read(name).subarray(offset, offset + n)); return dst; }
    const pos = this.start(e) + offset;
    let done = 0;
    while (done < n) {
      const k = fs.readSync(this.fd, dst, done, Math.min(n - done, 1 << 26), pos + done);
      if (k <= 0) throw new OpenELMError('zip', `${this.file} is truncated: record ${name} could not be read`);
      done += k;
    }
    return dst;
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

// ------------------------------------------------------------------------------------------------
// Writer

const CRC_TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

export function crc32(data: Uint8Array, crc = 0): number {
  let c = ~crc;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

interface Written { name: Buffer; crc: number; size: number; offset: number; }

/**
 * Writes stored records into an open file descriptor, each record's data aligned to `align` bytes
 * (PyTorch uses 64). Records are given as chunks so large tensors need not be joined in memory.
 */
export class ZipWriter {
  private pos = 0;
  private readonly done: Written[] = [];

  /** `zip64Above`: sizes and offsets at or above this use ZIP64 records (4 GiB − 1; lower only to test them). */
  constructor(private readonly fd: number, private readonly align = 64, private readonly zip64Above = U32_MAX) {}

  private put(b: Uint8Array): void {
    writeAllSync(this.fd, b, this.pos);
    this.pos += b.length;
  }

  /** One record of `size` bytes, produced by `chunks`; its CRC is filled in once the data is written. */
  add(name: string, size: number, chunks: Iterable<Uint8Array>): void {
    const nameBuf = Buffer.from(name, 'utf8');
    const zip64 = size >= this.zip64Above || this.pos >= this.zip64Above;
    const z64Len = zip64 ? 20 : 0;
    // Pad with PyTorch's own extra-field id ("FB") so the data starts on an aligned offset.
    const base = this.pos + 30 + nameBuf.length + z64Len;
    const pad = (this.align - ((base + 4) % this.align)) % this.align;
    const h = Buffer.alloc(30 + nameBuf.length + z64Len + 4 + pad);
    h.writeUInt32LE(SIG_LOCAL, 0);
    h.writeUInt16LE(zip64 ? 45 : 20, 4);
    h.writeUInt16LE(0, 6);
    h.writeUInt16LE(0, 8);
    h.writeUInt32LE(0, 10);
    h.writeUInt32LE(zip64 ? U32_MAX : size, 18);
    h.writeUInt32LE(zip64 ? U32_MAX : size, 22);
    h.writeUInt16LE(nameBuf.length, 26);
    h.writeUInt16LE(h.length - 30 - nameBuf.length, 28);
    nameBuf.copy(h, 30);
    let x = 30 + nameBuf.length;
    if (zip64) {
      h.writeUInt16LE(1, x); h.writeUInt16LE(16, x + 2);
      h.writeBigUInt64LE(BigInt(size), x + 4); h.writeBigUInt64LE(BigInt(size), x + 12);
      x += 20;
    }
    h.writeUInt16LE(0x4246, x); h.writeUInt16LE(pad, x + 2);
    const offset = this.pos;
    this.put(h);
    let crc = 0, written = 0;
    for (const c of chunks) { crc = crc32(c, crc); written += c.length; this.put(c); }
    if (written !== size) throw new OpenELMError('zip', `record ${name}: ${written} bytes produced, ${size} declared`);
    const c = Buffer.alloc(4);
    c.writeUInt32LE(crc, 0);
    writeAllSync(this.fd, c, offset + 14);
    this.done.push({ name: nameBuf, crc, size, offset });
  }

  /** Central directory and end records; returns the archive size. */
  finish(): number {
    const cdStart = this.pos;
    for (const w of this.done) {
      const big = (v: number) => v >= this.zip64Above;
      const need64 = big(w.size) || big(w.offset);
      const ext: number[] = [];
      if (big(w.size)) ext.push(w.size, w.size);
      if (big(w.offset)) ext.push(w.offset);
      const xLen = need64 ? 4 + 8 * ext.length : 0;
      const c = Buffer.alloc(46 + w.name.length + xLen);
      c.writeUInt32LE(SIG_CENTRAL, 0);
      c.writeUInt16LE(need64 ? 45 : 20, 4);
      c.writeUInt16LE(need64 ? 45 : 20, 6);
      c.writeUInt32LE(w.crc, 16);
      c.writeUInt32LE(big(w.size) ? U32_MAX : w.size, 20);
      c.writeUInt32LE(big(w.size) ? U32_MAX : w.size, 24);
      c.writeUInt16LE(w.name.length, 28);
      c.writeUInt16LE(xLen, 30);
      c.writeUInt32LE(big(w.offset) ? U32_MAX : w.offset, 42);
      w.name.copy(c, 46);
      if (need64) {
        let x = 46 + w.name.length;
        c.writeUInt16LE(1, x); c.writeUInt16LE(8 * ext.length, x + 2);
        x += 4;
        for (const v of ext) { c.writeBigUInt64LE(BigInt(v), x); x += 8; }
      }
      this.put(c);
    }
    const cdSize = this.pos - cdStart;
    const n = this.done.length;
    const z64 = n >= U16_MAX || cdStart >= this.zip64Above || cdSize >= this.zip64Above;
    if (z64) {
      const eocd64Pos = this.pos;
      const r = Buffer.alloc(56);
      r.writeUInt32LE(SIG_EOCD64, 0);
      r.writeBigUInt64LE(44n, 4);
      r.writeUInt16LE(45, 12); r.writeUInt16LE(45, 14);
      r.writeBigUInt64LE(BigInt(n), 24); r.writeBigUInt64LE(BigInt(n), 32);
      r.writeBigUInt64LE(BigInt(cdSize), 40); r.writeBigUInt64LE(BigInt(cdStart), 48);
      this.put(r);
      const l = Buffer.alloc(20);
      l.writeUInt32LE(SIG_EOCD64_LOCATOR, 0);
      l.writeBigUInt64LE(BigInt(eocd64Pos), 8);
      l.writeUInt32LE(1, 16);
      this.put(l);
    }
    const e = Buffer.alloc(22);
    e.writeUInt32LE(SIG_EOCD, 0);
    e.writeUInt16LE(z64 ? U16_MAX : n, 8);
    e.writeUInt16LE(z64 ? U16_MAX : n, 10);
    e.writeUInt32LE(z64 ? U32_MAX : cdSize, 12);
    e.writeUInt32LE(z64 ? U32_MAX : cdStart, 16);
    this.put(e);
    return this.pos;
  }
}
