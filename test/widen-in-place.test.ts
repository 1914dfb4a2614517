import { test } from 'node:test';
import assert from 'node:assert/strict';
import { widenInPlace } from '../src/core/widen-in-place.js';
import { bf16ArrayToF32, bf16ToF32, f16ArrayToF32, f16ToF32 } from '../src/core/dtype.js';

// Stored values: every 16-bit pattern class (zeros, subnormals, normals, Inf, NaN) from a fixed LCG.
function words(n: number, seed: number): Uint16Array {
  const w = new Uint16Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; w[i] = s >>> 16; }
  return w;
}

const kinds = [
  { name: 'bf16', one: bf16ToF32, all: bf16ArrayToF32 },
  { name: 'f16', one: f16ToF32, all: f16ArrayToF32 },
];

test('widenInPlace: 16-bit values read into the top of an f32 range and widened there equal the value-by-value conversion', () => {
  for (const k of kinds) {
    const file = words(301, k.name.length);
    const bytes = new Uint8Array(file.buffer);
    // odd and even counts, source offsets, and destinations that start inside a larger array
    for (const count of [0, 1, 2, 7, 64, 99, 300]) {
      for (const start of [0, 1, 300 - count]) {
        for (const at of [0, 3]) {
          if (start + count > file.length) continue;
          const whole = new Float32Array(at + count + 2).fill(-7);
          const dst = whole.subarray(at);
          const got = widenInPlace(dst, count, 2, (raw) => raw.set(bytes.subarray(start * 2, start * 2 + raw.length)),
            (raw, out) => k.all(new Uint16Array(raw.buffer, raw.byteOffset, out.length), out, 0));
          assert.equal(got, dst);
          const where = `${k.name} count ${count} start ${start} at ${at}`;
          for (let i = 0; i < count; i++) assert.ok(Object.is(dst[i], k.one(file[start + i])), `${where}: value ${i}`);
          for (let i = 0; i < at; i++) assert.equal(whole[i], -7, `${where}: before the range`);
          assert.deepEqual([dst[count], dst[count + 1]], [-7, -7], `${where}: past the range`);
        }
      }
    }
  }
});

test('widenInPlace: 1-byte values (int8) widen in place as well', () => {
  const file = Int8Array.from({ length: 37 }, (_, i) => ((i * 53) % 256) - 128);
  const dst = new Float32Array(38).fill(9);
  widenInPlace(dst, 37, 1, (raw) => raw.set(new Uint8Array(file.buffer)), (raw, out) => {
    const v = new Int8Array(raw.buffer, raw.byteOffset, out.length);
    for (let i = 0; i < out.length; i++) out[i] = v[i];
  });
  assert.deepEqual(Array.from(dst.subarray(0, 37)), Array.from(file));
  assert.equal(dst[37], 9);
});
