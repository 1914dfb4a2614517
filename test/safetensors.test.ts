import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OpenELMError } from '../src/core/errors.js';
import {
  SafetensorsFile,
  writeSafetensors,
  writeSafetensorsSync,
  type TensorToWrite,
} from '../src/io/safetensors.js';
import { f16ToF32 } from '../src/core/dtype.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-st-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const fresh = (name = 'f.safetensors') => path.join(tmp, `${counter++}-${name}`);

/** Build file bytes exactly as the safetensors spec describes: u64 LE length, JSON header, data. */
function rawFile(header: string | object, data: Uint8Array = new Uint8Array(0), lenOverride?: bigint | number): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(lenOverride ?? json.length));
  return Buffer.concat([len, json, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

function writeRaw(bytes: Uint8Array, name?: string): string {
  const p = fresh(name);
  fs.writeFileSync(p, bytes);
  return p;
}

/** Fast element-wise equality for big arrays (deepEqual on millions of elements is slow). */
function sameBits(a: Float32Array | Uint16Array, b: Float32Array | Uint16Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  return Buffer.compare(x, y) === 0;
}

function u16(...v: number[]) {
  return new Uint16Array(v);
}

/** Assert that opening `p` throws an OpenELMError naming the file and matching `re`. */
function assertBad(p: string, re: RegExp) {
  assert.throws(
    () => SafetensorsFile.open(p),
    (e: unknown) => {
      assert.ok(e instanceof OpenELMError, `expected OpenELMError, got ${String(e)}`);
      assert.ok(e.message.includes(p), `message should name the file: ${e.message}`);
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    },
  );
}

function tempLeftovers(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.includes('.tmp-'));
}

// ------------------------------------------------------------ compatibility with the real format

test('reads a file whose bytes are hand-written per the safetensors spec (as Python writes it)', () => {
  // Python's safetensors.torch.save({"a": tensor([1., 2.]), "b": tensor([[1, 2]], dtype=int64)},
  // metadata={"format": "pt"}): __metadata__ first, compact JSON, spaces to a multiple of 8.
  let json = '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"I64","shape":[1,2],"data_offsets":[8,24]}}';
  while (json.length % 8) json += ' ';
  const data = Buffer.alloc(24);
  data.writeFloatLE(1, 0);
  data.writeFloatLE(2, 4);
  data.writeBigInt64LE(1n, 8);
  data.writeBigInt64LE(2n, 16);
  const p = writeRaw(rawFile(json, data));
  const f = SafetensorsFile.open(p);
  assert.deepEqual(f.metadata, { format: 'pt' });
  assert.deepEqual(
    f.tensors().map((t) => [t.name, t.dtype, [...t.shape], t.byteLength]),
    [
      ['a', 'F32', [2], 8],
      ['b', 'I64', [1, 2], 16],
    ],
  );
  assert.deepEqual([...f.readF32('a')], [1, 2]);
  const b = f.readRaw('b');
  assert.deepEqual([...new BigInt64Array(b.buffer, b.byteOffset, 2)], [1n, 2n]);
  f.close();
});

test('writer output is byte-identical to the spec layout', () => {
  const p = fresh();
  writeSafetensorsSync(
    p,
    [
      { name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
      { name: 'b', dtype: 'I64', shape: [1, 2], data: new BigInt64Array([1n, 2n]) },
    ],
    { format: 'pt' },
  );
  let json = '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"I64","shape":[1,2],"data_offsets":[8,24]}}';
  while (json.length % 8) json += ' ';
  const data = Buffer.alloc(24);
  data.writeFloatLE(1, 0);
  data.writeFloatLE(2, 4);
  data.writeBigInt64LE(1n, 8);
  data.writeBigInt64LE(2n, 16);
  assert.deepEqual(fs.readFileSync(p), rawFile(json, data));
});

test('header is padded with spaces to a multiple of 8 and offsets are contiguous in the given order', () => {
  const p = fresh();
  const names = ['zeta', 'alpha', 'm.1', 'ünïcode'];
  writeSafetensorsSync(
    p,
    names.map((name, i) => ({ name, dtype: 'BF16' as const, shape: [i + 1, 3], data: new Uint16Array((i + 1) * 3) })),
  );
  const buf = fs.readFileSync(p);
  const n = Number(buf.readBigUInt64LE(0));
  assert.equal(n % 8, 0);
  const text = buf.subarray(8, 8 + n).toString('utf8');
  assert.match(text, /^\{.*\} *$/);
  const h = JSON.parse(text) as Record<string, { data_offsets: [number, number] }>;
  assert.deepEqual(Object.keys(h), names);
  let off = 0;
  for (const k of names) {
    assert.equal(h[k].data_offsets[0], off);
    off = h[k].data_offsets[1];
  }
  assert.equal(buf.length, 8 + n + off);
  const f = SafetensorsFile.open(p);
  assert.deepEqual(f.names(), names);
  assert.deepEqual(f.metadata, {});
  f.close();
});

// ------------------------------------------------------------ float conversions on known bit patterns

test('BF16 round trip and bf16 -> f32 on known bit patterns', async () => {
  const p = fresh();
  // 1, -2, pi(bf16), +inf, -0, smallest normal, NaN
  const bits = u16(0x3f80, 0xc000, 0x4049, 0x7f80, 0x8000, 0x0080, 0x7fc0);
  await writeSafetensors(p, [{ name: 'w', dtype: 'BF16', shape: [7], data: bits }]);
  const f = SafetensorsFile.open(p);
  assert.deepEqual(f.readBF16('w'), bits);
  const x = f.readF32('w');
  assert.deepEqual([...x.slice(0, 6)], [1, -2, 3.140625, Infinity, -0, 2 ** -126]);
  assert.ok(Number.isNaN(x[6]));
  assert.deepEqual(f.readF16('w').slice(0, 5), u16(0x3c00, 0xc000, 0x4248, 0x7c00, 0x8000));
  f.close();
});

test('F32 -> BF16 rounds to nearest even, keeps NaN/Inf, overflows to Inf', () => {
  const p = fresh();
  const src = new Uint32Array([
    0x3f800000, // 1.0 -> 3f80
    0x3f808000, // tie, even below -> 3f80
    0x3f818000, // tie, odd below -> 3f82
    0x3f808001, // above tie -> 3f81
    0x40490fdb, // pi -> 4049
    0x7f7fffff, // max f32 -> inf
    0xff800000, // -inf
    0x7fc00000, // NaN
    0x7f800001, // signalling NaN stays NaN
    0x00000001, // tiny subnormal -> 0
  ]);
  writeSafetensorsSync(p, [{ name: 'x', dtype: 'F32', shape: [src.length], data: src }]);
  const f = SafetensorsFile.open(p);
  assert.deepEqual(
    f.readBF16('x'),
    u16(0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x4049, 0x7f80, 0xff80, 0x7fc0, 0x7fc0, 0x0000),
  );
  assert.deepEqual(new Uint32Array(f.readF32('x').buffer), src);
  f.close();
});

test('F16 round trip, f16 -> f32 and f32 -> f16 on known bit patterns', () => {
  const p = fresh();
  const h = u16(0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x7c00, 0xfc00, 0x3555);
  const f32 = new Float32Array([1, -2, 65504, 65520, 2 ** -24, 2 ** -25, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 0.1]);
  writeSafetensorsSync(p, [
    { name: 'h', dtype: 'F16', shape: [8], data: h },
    { name: 'f', dtype: 'F32', shape: [9], data: f32 },
  ]);
  const f = SafetensorsFile.open(p);
  assert.deepEqual(f.readF16('h'), h);
  assert.deepEqual([...f.readF32('h')], [1, -2, 65504, 2 ** -24, 2 ** -14, Infinity, -Infinity, 0.333251953125]);
  // 65520 is the tie between 65504 and 65536 -> inf; 2^-25 ties to 0; 1+2^-11 ties to 1; 1+3·2^-11 -> 1+2^-9
  assert.deepEqual(f.readF16('f'), u16(0x3c00, 0xc000, 0x7bff, 0x7c00, 0x0001, 0x0000, 0x3c00, 0x3c02, 0x2e66));
  assert.deepEqual(f.readBF16('h').slice(0, 3), u16(0x3f80, 0xc000, 0x4780)); // 65504 -> 65536 in bf16
  f.close();
});

test('F64 reads as f32 / bf16 / f16', () => {
  const p = fresh();
  const d = new Float64Array([1, -2.5, 1e300, Math.PI]);
  writeSafetensorsSync(p, [{ name: 'd', dtype: 'F64', shape: [2, 2], data: d }]);
  const f = SafetensorsFile.open(p);
  assert.deepEqual([...f.readF32('d')], [1, -2.5, Infinity, Math.fround(Math.PI)]);
  assert.deepEqual(f.readBF16('d'), u16(0x3f80, 0xc020, 0x7f80, 0x4049));
  assert.deepEqual(f.readF16('d'), u16(0x3c00, 0xc100, 0x7c00, 0x4248));
  f.close();
});

test('large tensors stream through the staging buffer in chunks, with a destination offset', () => {
  const p = fresh();
  const n = 3_000_003; // > 4 MB as bf16 and as f32, odd length
  const bf = new Uint16Array(n);
  const f32 = new Float32Array(n);
  const f64 = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = ((i % 256) - 128) / 2; // exact in bf16
    bf[i] = (new Uint32Array(new Float32Array([v]).buffer)[0] >>> 16) & 0xffff;
    f32[i] = v;
    f64[i] = v;
  }
  writeSafetensorsSync(p, [
    { name: 'bf', dtype: 'BF16', shape: [n], data: bf },
    { name: 'f32', dtype: 'F32', shape: [n], data: f32 },
    { name: 'f64', dtype: 'F64', shape: [1, n], data: f64 },
  ]);
  const f = SafetensorsFile.open(p);
  for (const name of ['bf', 'f32', 'f64']) {
    const dst = new Float32Array(n + 5).fill(7);
    f.readF32(name, dst, 3);
    assert.deepEqual([dst[0], dst[1], dst[2], dst[n + 3], dst[n + 4]], [7, 7, 7, 7, 7], name);
    assert.ok(sameBits(dst.subarray(3, n + 3), f32), name);
    assert.ok(sameBits(f.readBF16(name), bf), name);
  }
  f.close();
});

test('16-bit tensors read as f32 in place: every bit pattern, any range, other type, no array per read', () => {
  const p = fresh();
  const n = 65536 * 2 + 7; // every 16-bit pattern twice, past one conversion slice
  const bits = new Uint16Array(n);
  for (let i = 0; i < n; i++) bits[i] = (i * 40503) & 0xffff;
  writeSafetensorsSync(p, [
    { name: 'bf', dtype: 'BF16', shape: [n], data: bits },
    { name: 'h', dtype: 'F16', shape: [n], data: bits },
  ]);
  const f = SafetensorsFile.open(p);
  const ref = (name: string, i: number) => (name === 'bf' ? new Float32Array(new Uint32Array([bits[i] << 16]).buffer)[0] : f16ToF32(bits[i]));
  const same = (a: number, b: number) => a === b || (Number.isNaN(a) && Number.isNaN(b));
  for (const name of ['bf', 'h']) {
    const all = f.readF32(name);
    for (let i = 0; i < n; i++) if (!same(all[i], ref(name, i))) assert.fail(`${name}[${i}]: ${all[i]} != ${ref(name, i)}`);
    const dst = new Float32Array(70000);
    for (const [start, count] of [[0, 0], [0, 1], [5, 64], [1, 65537], [n - 3, 3], [n - 70000, 70000]]) {
      dst.fill(7);
      const before = process.memoryUsage().arrayBuffers;
      assert.equal(f.readF32Range(name, start, count, dst), dst);
      // the values land where they are read: no staging copy and no array per call
      assert.ok(process.memoryUsage().arrayBuffers - before < 4096, `${name} [${start}, +${count}) allocated`);
      for (let i = 0; i < count; i++) if (!same(dst[i], all[start + i])) assert.fail(`${name} range at ${start}: [${i}] ${dst[i]} != ${all[start + i]}`);
      if (count < dst.length) assert.equal(dst[count], 7, 'nothing written past count');
    }
  }
  // the other 16-bit type, re-encoded where it lands: the same bits as from the f32 values
  const p32 = fresh();
  writeSafetensorsSync(p32, [{ name: 'bf', dtype: 'F32', shape: [n], data: f.readF32('bf') }, { name: 'h', dtype: 'F32', shape: [n], data: f.readF32('h') }]);
  const g = SafetensorsFile.open(p32);
  assert.ok(sameBits(f.readF16('bf'), g.readF16('bf')), 'BF16 read as F16');
  assert.ok(sameBits(f.readBF16('h'), g.readBF16('h')), 'F16 read as BF16');
  const off = new Uint16Array(n + 4).fill(9);
  f.readF16('bf', off, 2);
  assert.deepEqual([off[0], off[1], off[n + 2], off[n + 3]], [9, 9, 9, 9]);
  assert.ok(sameBits(off.subarray(2, n + 2), g.readF16('bf')), 'with a destination offset');
  g.close();
  f.close();
});

test('integer and bool dtypes round-trip raw; zero-size and scalar tensors work', () => {
  const p = fresh();
  const ts: TensorToWrite[] = [
    { name: 'i64', dtype: 'I64', shape: [2], data: new BigInt64Array([-1n, 2n ** 40n]) },
    { name: 'i32', dtype: 'I32', shape: [3], data: new Int32Array([-7, 0, 2 ** 30]) },
    { name: 'i16', dtype: 'I16', shape: [2], data: new Int16Array([-300, 300]) },
    { name: 'i8', dtype: 'I8', shape: [2], data: new Int8Array([-1, 1]) },
    { name: 'u8', dtype: 'U8', shape: [1, 3], data: new Uint8Array([0, 128, 255]) },
    { name: 'u16', dtype: 'U16', shape: [2], data: new Uint16Array([1, 65535]) },
    { name: 'u32', dtype: 'U32', shape: [1], data: new Uint32Array([4e9]) },
    { name: 'bool', dtype: 'BOOL', shape: [2], data: new Uint8Array([1, 0]) },
    { name: 'empty', dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
    { name: 'scalar', dtype: 'F32', shape: [], data: new Float32Array([42]) },
  ];
  writeSafetensorsSync(p, ts);
  const f = SafetensorsFile.open(p);
  for (const t of ts) {
    const info = f.info(t.name);
    assert.equal(info.dtype, t.dtype);
    assert.deepEqual(info.shape, t.shape);
    const want = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    assert.deepEqual(f.readRaw(t.name), want, t.name);
    const big = new Uint8Array(want.length + 4);
    assert.deepEqual(f.readRaw(t.name, big), want);
  }
  assert.deepEqual([...f.readF32('scalar')], [42]);
  assert.equal(f.readF32('empty').length, 0);
  assert.throws(() => f.readF32('i32'), (e: unknown) => e instanceof OpenELMError && /dtype I32/.test(e.message));
  assert.throws(() => f.readRaw('i32', new Uint8Array(2)), /too small/);
  assert.throws(() => f.readF32('scalar', new Float32Array(4), 4), /does not fit/);
  assert.throws(() => f.info('nope'), /tensor nope not found in/);
  f.close();
  assert.throws(() => f.readRaw('i8'), /closed/);
});

test('writes views into larger buffers (byteOffset respected)', () => {
  const p = fresh();
  const big = new Float32Array([9, 1, 2, 3, 9]);
  writeSafetensorsSync(p, [{ name: 'v', dtype: 'F32', shape: [3], data: big.subarray(1, 4) }]);
  const f = SafetensorsFile.open(p);
  assert.deepEqual([...f.readF32('v')], [1, 2, 3]);
  f.close();
});

// ------------------------------------------------------------ malformed files

const goodEntry = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
const eightBytes = new Uint8Array(8);

test('malformed: missing file, too short, bad header length', () => {
  assert.throws(() => SafetensorsFile.open(path.join(tmp, 'missing.safetensors')), (e: unknown) =>
    e instanceof OpenELMError && /not found: .*missing\.safetensors/.test(e.message));
  assertBad(writeRaw(new Uint8Array([1, 2, 3])), /only 3 bytes, shorter than the 8-byte header length/);
  assertBad(writeRaw(rawFile('{}', new Uint8Array(0), 1000)), /header length 1000 is larger than the rest of the file/);
  assertBad(writeRaw(rawFile('{}', new Uint8Array(0), 2n ** 60n)), /header length \d+ is absurd/);
  assertBad(writeRaw(rawFile('{}', new Uint8Array(0), 200 * 1024 * 1024)), /absurd/);
});

test('malformed: header not UTF-8, not JSON, not an object, bad metadata', () => {
  const bad = Buffer.concat([Buffer.from('{"a'), Buffer.from([0xff, 0xfe]), Buffer.from('":1}')]);
  const b2 = Buffer.alloc(8 + bad.length);
  b2.writeBigUInt64LE(BigInt(bad.length));
  bad.copy(b2, 8);
  assertBad(writeRaw(b2), /header is not valid UTF-8/);
  assertBad(writeRaw(rawFile('{"a": {"dtype": "F32",}')), /header is not valid JSON: .*line 1 column 23/);
  assertBad(writeRaw(rawFile('')), /not valid JSON: unexpected end of input/);
  assertBad(writeRaw(rawFile('[1,2]')), /header is not a JSON object \(got array\)/);
  assertBad(writeRaw(rawFile('"x"')), /header is not a JSON object \(got string\)/);
  assertBad(writeRaw(rawFile({ __metadata__: { format: 3 } })), /__metadata__ value for "format" is not a string/);
});

test('malformed: tensor entries', () => {
  const cases: [object, RegExp][] = [
    [{ w: { shape: [2], data_offsets: [0, 8] } }, /tensor w: missing "dtype"/],
    [{ w: { dtype: 'F32', data_offsets: [0, 8] } }, /tensor w: missing "shape"/],
    [{ w: { dtype: 'F32', shape: [2] } }, /tensor w: missing "data_offsets"/],
    [{ w: 5 }, /tensor w: entry is not an object/],
    [{ w: { ...goodEntry, dtype: 'Q4_K' } }, /tensor w: unknown dtype "Q4_K"/],
    [{ w: { ...goodEntry, shape: [2.5] } }, /tensor w: shape \[2.5\] is not a list of non-negative integers/],
    [{ w: { ...goodEntry, shape: [-2] } }, /tensor w: shape/],
    [{ w: { ...goodEntry, data_offsets: [0.5, 8] } }, /tensor w: data_offsets \[0.5,8\] is not a pair of non-negative integers/],
    [{ w: { ...goodEntry, data_offsets: ['0', 8] } }, /tensor w: data_offsets/],
    [{ w: { ...goodEntry, data_offsets: [0] } }, /tensor w: data_offsets/],
    [{ w: { ...goodEntry, data_offsets: [8, 0] } }, /tensor w: data_offsets \[8,0\] has begin > end/],
    [{ w: { ...goodEntry, data_offsets: [0, 16] } }, /tensor w: data ends at byte 16 .* only has 8 data bytes \(file truncated\?\)/],
    [{ w: { ...goodEntry, shape: [3] } }, /tensor w: data_offsets span 8 bytes, but shape \[3\] of F32 needs 12/],
    [{ w: { ...goodEntry, dtype: 'BF16' } }, /tensor w: .*shape \[2\] of BF16 needs 4/],
    [
      { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, b: { dtype: 'F16', shape: [4], data_offsets: [2, 10] } },
      /tensors a and b overlap/,
    ],
  ];
  for (const [header, re] of cases) {
    const data = header === cases[cases.length - 1][0] ? new Uint8Array(10) : eightBytes;
    assertBad(writeRaw(rawFile(header, data)), re);
  }
});

test('truncated file (data section cut short) is reported', () => {
  const p = fresh();
  writeSafetensorsSync(p, [
    { name: 'a', dtype: 'F32', shape: [4], data: new Float32Array(4) },
    { name: 'b', dtype: 'F32', shape: [4], data: new Float32Array(4) },
  ]);
  fs.truncateSync(p, fs.statSync(p).size - 3);
  assertBad(p, /tensor b: data ends at byte 32 .* only has 29 data bytes \(file truncated\?\)/);
});

// ------------------------------------------------------------ atomic writes

function withPrevious(): { p: string; before: Buffer } {
  const dir = fs.mkdtempSync(path.join(tmp, 'atomic-'));
  const p = path.join(dir, 'model.safetensors');
  writeSafetensorsSync(p, [{ name: 'old', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]);
  return { p, before: fs.readFileSync(p) };
}

test('failed write (data length != shape) leaves no temp file and the previous file intact', async () => {
  const { p, before } = withPrevious();
  const bad: TensorToWrite[] = [
    { name: 'ok', dtype: 'F32', shape: [2], data: new Float32Array(2) },
    { name: 'w', dtype: 'BF16', shape: [2, 3], data: new Uint16Array(5) },
  ];
  assert.throws(() => writeSafetensorsSync(p, bad), (e: unknown) =>
    e instanceof OpenELMError && e.message.includes(p) && /tensor w: data has 10 bytes, but shape \[2,3\] of BF16 needs 12/.test(e.message));
  await assert.rejects(writeSafetensors(p, bad), OpenELMError);
  assert.deepEqual(fs.readFileSync(p), before);
  assert.deepEqual(tempLeftovers(path.dirname(p)), []);
});

test('error in the middle of writing data removes the temp file and keeps the previous file', async () => {
  const { p, before } = withPrevious();
  for (const write of [writeSafetensorsSync, writeSafetensors]) {
    let reads = 0;
    const flaky = {
      name: 'flaky',
      dtype: 'F32' as const,
      shape: [2],
      get data(): ArrayBufferView {
        if (reads++ > 0) throw new Error('disk on fire');
        return new Float32Array(2);
      },
    };
    const ts = [{ name: 'first', dtype: 'F32' as const, shape: [1000], data: new Float32Array(1000) }, flaky];
    await assert.rejects(async () => write(p, ts), (e: unknown) =>
      e instanceof OpenELMError && /cannot write .*disk on fire/.test(e.message));
    assert.deepEqual(fs.readFileSync(p), before);
    assert.deepEqual(tempLeftovers(path.dirname(p)), []);
  }
});

test('writing into a non-existent directory fails cleanly', async () => {
  const p = path.join(tmp, 'no-such-dir', 'x.safetensors');
  const ts: TensorToWrite[] = [{ name: 'a', dtype: 'F32', shape: [1], data: new Float32Array(1) }];
  assert.throws(() => writeSafetensorsSync(p, ts), (e: unknown) =>
    e instanceof OpenELMError && /cannot write .*no-such-dir.* does not exist/.test(e.message));
  await assert.rejects(writeSafetensors(p, ts), /does not exist/);
  assert.equal(fs.existsSync(path.join(tmp, 'no-such-dir')), false);
});

test('writer rejects duplicate names, unknown dtypes, bad shapes and non-string metadata', () => {
  const p = fresh();
  const a = { name: 'a', dtype: 'F32' as const, shape: [1], data: new Float32Array(1) };
  assert.throws(() => writeSafetensorsSync(p, [a, a]), /duplicate tensor name a/);
  assert.throws(() => writeSafetensorsSync(p, [{ ...a, dtype: 'F7' as 'F32' }]), /unknown dtype "F7"/);
  assert.throws(() => writeSafetensorsSync(p, [{ ...a, shape: [-1] }]), /shape \[-1\]/);
  assert.throws(() => writeSafetensorsSync(p, [{ ...a, name: '__metadata__' }]), /invalid tensor name/);
  assert.throws(() => writeSafetensorsSync(p, [a], { n: 1 as unknown as string }), /metadata value for "n"/);
  assert.equal(fs.existsSync(p), false);
  assert.deepEqual(tempLeftovers(tmp), []);
});

test('overwriting an existing file replaces it atomically', async () => {
  const { p } = withPrevious();
  await writeSafetensors(p, [{ name: 'new', dtype: 'F16', shape: [1], data: u16(0x3c00) }], { k: 'v' });
  const f = SafetensorsFile.open(p);
  assert.deepEqual(f.names(), ['new']);
  assert.deepEqual(f.metadata, { k: 'v' });
  assert.deepEqual([...f.readF32('new')], [1]);
  f.close();
  assert.deepEqual(tempLeftovers(path.dirname(p)), []);
});
