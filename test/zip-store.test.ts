// The ZIP container under .pt files: stored records, 64-byte aligned data, ZIP64 records (forced here
// with a low threshold; real files need them past 4 GiB), and strided tensor views.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ZipReader, ZipWriter, crc32 } from '../src/io/zip-store.js';
import { Pickler, TorchTensorRef, PyTuple } from '../src/io/pickle.js';
import { TorchFile, asStateDict } from '../src/io/torch-file.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-zip-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function writePt(file: string, zip64Above?: number): Float32Array {
  const data = Float32Array.from({ length: 30 }, (_, i) => i + 1);
  // w is the transpose view (stride [1, 5]) of a [6, 5] storage, from offset 0; v a slice at offset 10.
  const pkl = Pickler.dumps(new Map<string, TorchTensorRef>([
    ['w', new TorchTensorRef({ key: '0', dtype: 'F32', numel: 30, location: 'cpu' }, 0, [5, 6], [1, 5])],
    ['v', new TorchTensorRef({ key: '0', dtype: 'F32', numel: 30, location: 'cpu' }, 10, [2, 5], [5, 1])],
  ]) as never);
  const enc = new TextEncoder();
  const fd = fs.openSync(file, 'w');
  const z = new ZipWriter(fd, 64, zip64Above);
  z.add('archive/data.pkl', pkl.length, [pkl]);
  z.add('archive/byteorder', 6, [enc.encode('little')]);
  z.add('archive/data/0', 120, [new Uint8Array(data.buffer, 0, 60), new Uint8Array(data.buffer, 60, 60)]);
  z.add('archive/version', 2, [enc.encode('3\n')]);
  z.finish();
  fs.closeSync(fd);
  return data;
}

test('stored records with aligned data and CRCs; ZIP64 records read back the same', () => {
  for (const z64 of [undefined, 100]) {
    const f = path.join(tmp, `a${z64 ?? ''}.pt`);
    const data = writePt(f, z64);
    const r = ZipReader.open(f);
    try {
      const e = r.entry('archive/data/0');
      assert.equal(e.size, 120);
      assert.equal(e.crc32, crc32(new Uint8Array(data.buffer)));
      assert.deepEqual(new Float32Array(r.read('archive/data/0').buffer.slice(0)), data);
      assert.deepEqual(new Float32Array(r.readRange('archive/data/0', 8, 8).buffer), data.subarray(2, 4));
    } finally { r.close(); }
    const raw = fs.readFileSync(f);
    const at = raw.indexOf(Buffer.from('archive/data/0')) + 'archive/data/0'.length;
    const extra = raw.readUInt16LE(raw.indexOf(Buffer.from('archive/data/0')) - 2);
    assert.equal((at + extra) % 64, 0, 'tensor data starts on a 64-byte boundary');
    if (z64) assert.ok(raw.includes(Buffer.from([0x50, 0x4b, 0x06, 0x06])), 'ZIP64 end record present');
  }
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
});

test('tensor views: a transposed view and an offset slice of one storage', () => {
  const f = path.join(tmp, 'views.pt');
  const data = writePt(f, 100);
  const tf = TorchFile.open(f);
  try {
    const sd = asStateDict(tf.root)!;
    const w = tf.readF32(sd.get('w')!);
    for (let i = 0; i < 5; i++) for (let j = 0; j < 6; j++) assert.equal(w[i * 6 + j], data[j * 5 + i]);
    assert.deepEqual(tf.readF32(sd.get('v')!), data.subarray(10, 20));
    assert.ok(!(sd.get('w')!.shape instanceof PyTuple));
  } finally { tf.close(); }
});
