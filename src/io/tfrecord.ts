// TFRecord framing, the container of TensorBoard event files (docs/training-logs.md):
//   uint64 length (little-endian) | uint32 masked CRC32C of those 8 bytes | data | uint32 masked CRC32C of data
// The CRC is CRC-32C (Castagnoli), masked as TensorFlow does so that a CRC stored inside data that is
// itself checksummed does not cancel out.

import { OpenELMError } from '../core/errors.js';

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC32C_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One record, framed. */
export function encodeRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length + 4);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, BigInt(data.length), true);
  dv.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  dv.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

/**
 * Every record of a TFRecord file, checking both CRCs. A record cut short at the very end (a writer
 * that was killed mid-write) ends the list; any other damage is an error naming the byte offset.
 */
export function decodeRecords(buf: Uint8Array, what = 'TFRecord file'): Uint8Array[] {
  const out: Uint8Array[] = [];
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off < buf.length) {
    if (off + 12 > buf.length) break;
    const len = dv.getBigUint64(off, true);
    if (dv.getUint32(off + 8, true) !== maskedCrc32c(buf.subarray(off, off + 8))) {
      throw new OpenELMError('data', `${what}: bad length checksum in the record at byte ${off}`);
    }
    if (len > BigInt(buf.length - off - 16)) break;
    const n = Number(len);
    const data = buf.subarray(off + 12, off + 12 + n);
    if (dv.getUint32(off + 12 + n, true) !== maskedCrc32c(data)) {
      throw new OpenELMError('data', `${what}: bad data checksum in the record at byte ${off}`);
    }
    out.push(data);
    off += 16 + n;
  }
  return out;
}
