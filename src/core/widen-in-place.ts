// Reading narrow values (16-bit floats, small integers) as f32 straight into the caller's array:
// range reads of a load convert every weight, row chunk by row chunk, and a staging buffer per
// read was garbage the size of the file. Shared by the safetensors and PyTorch readers, each with
// its own byte source and conversion.

/**
 * `count` values of `bytes` (1 to 4) bytes each, read as f32 into dst[0, count) with no buffer
 * between. `read` fills `raw`, the top bytes·count bytes of those count f32 slots, with the values
 * as stored; `widen` then converts raw into `out` (dst[0, count)) front to back, reading each value
 * before writing its f32. Every f32 written lands only on values already converted: value i's f32
 * takes bytes [4i, 4i + 4), and value j > i lies at (4 - bytes)·count + bytes·j ≥ 4i + 4.
 */
export function widenInPlace(dst: Float32Array, count: number, bytes: number,
  read: (raw: Uint8Array) => void, widen: (raw: Uint8Array, out: Float32Array) => void): Float32Array {
  const raw = new Uint8Array(dst.buffer, dst.byteOffset + (4 - bytes) * count, bytes * count);
  read(raw);
  widen(raw, dst.subarray(0, count));
  return dst;
}
