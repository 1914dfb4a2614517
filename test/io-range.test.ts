import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeSafetensorsSync, SafetensorsFile } from '../src/io/safetensors.js';
import { f32ToBf16 } from '../src/core/dtype.js';

test('readF32Range reads a slice of F32 and BF16 tensors, and rejects ranges outside', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'range-'));
  const f = path.join(dir, 'm.safetensors');
  const v = Float32Array.from({ length: 64 }, (_, i) => i * 0.5 - 3);
  const h = Uint16Array.from(v, (x) => f32ToBf16(x));
  writeSafetensorsSync(f, [{ name: 'a', dtype: 'F32', shape: [8, 8], data: v }, { name: 'b', dtype: 'BF16', shape: [8, 8], data: h }]);
  const st = SafetensorsFile.open(f);
  const dst = new Float32Array(16);
  assert.deepEqual(Array.from(st.readF32Range('a', 24, 16, dst)), Array.from(v.subarray(24, 40)));
  assert.deepEqual(Array.from(st.readF32Range('b', 8, 16, dst)), Array.from(v.subarray(8, 24)));
  assert.throws(() => st.readF32Range('a', 60, 8, dst), /outside tensor a/);
  st.close();
});
