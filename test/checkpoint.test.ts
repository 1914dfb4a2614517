import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { OpenELMError } from '../src/core/errors.js';
import { INDEX_FILE, SINGLE_FILE, openCheckpoint, saveCheckpoint, saveCheckpointSync } from '../src/io/checkpoint.js';
import { readJsonFile } from '../src/io/json.js';
import { SafetensorsFile, writeSafetensorsSync, type TensorToWrite } from '../src/io/safetensors.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-ckpt-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const freshDir = () => {
  const d = path.join(tmp, `c${counter++}`);
  fs.mkdirSync(d);
  return d;
};

const isErr = (re: RegExp) => (e: unknown) => {
  assert.ok(e instanceof OpenELMError, `expected OpenELMError, got ${String(e)}`);
  assert.match(e.message, re);
  assert.ok(!e.message.includes('\n'), 'one line');
  return true;
};

/** A tiny OpenELM-shaped tensor set (HF names), mixed dtypes. */
function tinyModel(layers = 3, d = 16): TensorToWrite[] {
  const out: TensorToWrite[] = [];
  let seed = 1;
  const rnd = () => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed / 2 ** 32) * 2 - 1; };
  const f32 = (shape: number[]) => {
    const a = new Float32Array(shape.reduce((x, y) => x * y, 1));
    for (let i = 0; i < a.length; i++) a[i] = rnd();
    return a;
  };
  const bf16 = (shape: number[]) => {
    const a = f32(shape);
    const bits = new Uint32Array(a.buffer);
    const h = new Uint16Array(a.length);
    for (let i = 0; i < a.length; i++) h[i] = bits[i] >>> 16;
    return h;
  };
  out.push({ name: 'transformer.token_embeddings.weight', dtype: 'BF16', shape: [64, d], data: bf16([64, d]) });
  for (let i = 0; i < layers; i++) {
    const p = `transformer.layers.${i}.`;
    out.push({ name: p + 'attn_norm.weight', dtype: 'F32', shape: [d], data: f32([d]) });
    out.push({ name: p + 'attn.qkv_proj.weight', dtype: 'BF16', shape: [3 * d, d], data: bf16([3 * d, d]) });
    out.push({ name: p + 'attn.out_proj.weight', dtype: 'F16', shape: [d, d], data: new Uint16Array(d * d).fill(0x3c00) });
    out.push({ name: p + 'ffn.proj_1.weight', dtype: 'BF16', shape: [4 * d, d], data: bf16([4 * d, d]) });
  }
  out.push({ name: 'transformer.norm.weight', dtype: 'F32', shape: [d], data: f32([d]) });
  return out;
}

function bytes(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function checkAll(dir: string, ts: TensorToWrite[]) {
  const ck = openCheckpoint(dir);
  try {
    assert.deepEqual(ck.names().slice().sort(), ts.map((t) => t.name).sort());
    for (const t of ts) {
      const info = ck.expectShape(t.name, t.shape);
      assert.equal(info.dtype, t.dtype);
      assert.deepEqual(ck.readRaw(t.name), bytes(t.data), t.name);
      if (t.dtype === 'BF16') {
        const want = new Float32Array(new Uint32Array([...(t.data as Uint16Array)].map((h) => h << 16)).buffer);
        assert.deepEqual(ck.readF32(t.name), want);
      }
    }
  } finally {
    ck.close();
  }
}

const leftovers = (dir: string) => fs.readdirSync(dir).filter((f) => f.includes('.tmp-'));

test('single-file checkpoint: save, open, read, metadata format=pt', async () => {
  const dir = freshDir();
  const ts = tinyModel();
  const written = await saveCheckpoint(dir, ts);
  assert.deepEqual(written, [path.join(dir, SINGLE_FILE)]);
  assert.deepEqual(fs.readdirSync(dir), [SINGLE_FILE]);
  checkAll(dir, ts);
  const ck = openCheckpoint(dir);
  assert.equal(ck.sharded, false);
  assert.deepEqual(ck.metadata, { format: 'pt' });
  assert.equal(ck.info('transformer.norm.weight').file, path.join(dir, SINGLE_FILE));
  ck.close();
  // A direct file path works too.
  const ck2 = openCheckpoint(path.join(dir, SINGLE_FILE));
  assert.equal(ck2.names().length, ts.length);
  ck2.close();
});

test('sharded checkpoint round trip with index.json', async () => {
  const dir = freshDir();
  const ts = tinyModel(4);
  const written = await saveCheckpoint(dir, ts, { maxShardBytes: 5000 });
  assert.ok(written.length > 2);
  const shards = fs.readdirSync(dir).filter((f) => f !== INDEX_FILE).sort();
  assert.ok(shards.length >= 2);
  shards.forEach((f, i) => { assert.equal(f, `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`); });
  const index = readJsonFile(path.join(dir, INDEX_FILE), 'index') as {
    metadata: { total_size: number };
    weight_map: Record<string, string>;
  };
  const total = ts.reduce((s, t) => s + t.data.byteLength, 0);
  assert.equal(index.metadata.total_size, total);
  assert.deepEqual(Object.keys(index.weight_map), ts.map((t) => t.name));
  for (const f of shards) {
    const sf = SafetensorsFile.open(path.join(dir, f));
    const size = sf.tensors().reduce((s, t) => s + t.byteLength, 0);
    assert.ok(size <= 5000 || sf.tensors().length === 1, `${f} too big`);
    for (const n of sf.names()) assert.equal(index.weight_map[n], f);
    sf.close();
  }
  checkAll(dir, ts);
  const ck = openCheckpoint(dir);
  assert.equal(ck.sharded, true);
  assert.deepEqual(ck.metadata, { total_size: total });
  assert.equal(ck.filePaths().length, shards.length);
  // Same API as single-file, readF32 into an offset.
  const dst = new Float32Array(20);
  ck.readF32('transformer.norm.weight', dst, 4);
  assert.deepEqual(dst.subarray(4), new Float32Array(ts[ts.length - 1].data.buffer as ArrayBuffer));
  ck.close();
});

test('sync save works and a tensor larger than maxShardBytes gets its own shard', () => {
  const dir = freshDir();
  const ts = tinyModel(1);
  saveCheckpointSync(dir, ts, { maxShardBytes: 100 });
  const index = readJsonFile(path.join(dir, INDEX_FILE), 'index') as { weight_map: Record<string, string> };
  assert.equal(new Set(Object.values(index.weight_map)).size, ts.length);
  checkAll(dir, ts);
});

test('re-saving switches between single and sharded and removes stale files only', async () => {
  const dir = freshDir();
  fs.writeFileSync(path.join(dir, 'config.json'), '{}');
  const ts = tinyModel(4);
  await saveCheckpoint(dir, ts, { maxShardBytes: 4000 });
  const many = fs.readdirSync(dir).length;
  await saveCheckpoint(dir, ts, { maxShardBytes: 8000 }); // fewer shards: old extra shards removed
  assert.ok(fs.readdirSync(dir).length < many);
  checkAll(dir, ts);
  await saveCheckpoint(dir, ts);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', SINGLE_FILE]);
  checkAll(dir, ts);
  await saveCheckpoint(dir, ts, { maxShardBytes: 4000 });
  assert.ok(!fs.readdirSync(dir).includes(SINGLE_FILE));
  assert.ok(fs.readdirSync(dir).includes('config.json'));
  checkAll(dir, ts);
});

test('failed save leaves the previous checkpoint intact and no temp files', async () => {
  const dir = freshDir();
  const ts = tinyModel(2);
  await saveCheckpoint(dir, ts, { maxShardBytes: 3000 });
  const snapshot = new Map(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f))]));
  const bad = [...tinyModel(2), { name: 'late.bad', dtype: 'F32' as const, shape: [3], data: new Float32Array(2) }];
  await assert.rejects(saveCheckpoint(dir, bad, { maxShardBytes: 3000 }), isErr(/tensor late\.bad: data has 8 bytes, but shape \[3\] of F32 needs 12/));
  assert.throws(() => saveCheckpointSync(dir, bad), isErr(/late\.bad/));
  // Failure after some shards were already written to temp files.
  let reads = 0;
  const flaky = {
    name: 'late.flaky',
    dtype: 'F32' as const,
    shape: [1],
    get data(): ArrayBufferView {
      if (reads++ > 1) throw new Error('boom'); // 1st: up-front check, 2nd: header plan, 3rd: data write
      return new Float32Array(1);
    },
  };
  await assert.rejects(saveCheckpoint(dir, [...tinyModel(2), flaky], { maxShardBytes: 3000 }), isErr(/boom/));
  assert.throws(() => saveCheckpointSync(dir, [...tinyModel(2), { name: 'a', dtype: 'F32', shape: [1], data: new Float32Array(1) }, { name: 'a', dtype: 'F32', shape: [1], data: new Float32Array(1) }]), isErr(/duplicate tensor name a/));
  assert.deepEqual(leftovers(dir), []);
  assert.deepEqual(fs.readdirSync(dir).sort(), [...snapshot.keys()].sort());
  for (const [f, b] of snapshot) assert.deepEqual(fs.readFileSync(path.join(dir, f)), b, f);
  checkAll(dir, ts);
});

test('missing tensor, wrong shape and prefix hints name the tensor and folder', () => {
  const dir = freshDir();
  saveCheckpointSync(dir, tinyModel(1));
  const ck = openCheckpoint(dir);
  assert.throws(
    () => ck.readF32('transformer.layers.3.attn.qkv_proj.weight'),
    isErr(new RegExp(`^tensor transformer\\.layers\\.3\\.attn\\.qkv_proj\\.weight not found in ${dir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`)),
  );
  assert.throws(() => ck.info('layers.0.attn_norm.weight'), isErr(/not found in .*uses HF names with the 'transformer\.' prefix/));
  assert.throws(
    () => ck.expectShape('transformer.layers.0.attn.qkv_proj.weight', [48, 32]),
    isErr(/^tensor transformer\.layers\.0\.attn\.qkv_proj\.weight has shape \[48,16\], expected \[48,32\]/),
  );
  assert.throws(() => ck.expectShape('transformer.norm.weight', [16, 1]), isErr(/has shape \[16\], expected \[16,1\]/));
  ck.close();

  const corenet = freshDir();
  saveCheckpointSync(corenet, [{ name: 'norm.weight', dtype: 'F32', shape: [2], data: new Float32Array(2) }]);
  const c2 = openCheckpoint(corenet);
  assert.throws(() => c2.info('transformer.norm.weight'), isErr(/without the 'transformer\.' prefix/));
  c2.close();
});

test('folder problems: missing folder, no model files, MLX weights.safetensors', () => {
  assert.throws(() => openCheckpoint(path.join(tmp, 'nope')), isErr(/checkpoint .*nope does not exist/));
  const empty = freshDir();
  assert.throws(() => openCheckpoint(empty), isErr(/no model\.safetensors or model\.safetensors\.index\.json in .*/));
  const mlx = freshDir();
  writeSafetensorsSync(path.join(mlx, 'weights.safetensors'), [{ name: 'norm.weight', dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) }]);
  const ck = openCheckpoint(mlx);
  assert.deepEqual([...ck.readF32('norm.weight')], [1]);
  ck.close();
});

test('broken index files are reported with the index path and the shard/tensor at fault', () => {
  const dir = freshDir();
  const ts = tinyModel(2);
  saveCheckpointSync(dir, ts, { maxShardBytes: 3000 });
  const indexPath = path.join(dir, INDEX_FILE);
  const good = fs.readFileSync(indexPath, 'utf8');
  const idx = JSON.parse(good) as { weight_map: Record<string, string> };
  const shard2 = idx.weight_map['transformer.norm.weight'];

  fs.renameSync(path.join(dir, shard2), path.join(dir, 'moved'));
  assert.throws(() => openCheckpoint(dir), isErr(new RegExp(`${INDEX_FILE.replace(/\./g, '\\.')}: shard ${shard2} \\(holding tensor .*\\) is missing from`)));
  fs.renameSync(path.join(dir, 'moved'), path.join(dir, shard2));

  const wrong = { ...idx, weight_map: { ...idx.weight_map, 'transformer.norm.weight': idx.weight_map['transformer.token_embeddings.weight'] } };
  fs.writeFileSync(indexPath, JSON.stringify(wrong));
  assert.throws(() => openCheckpoint(dir), isErr(/maps tensor transformer\.norm\.weight to shard model-00001-of-\d+\.safetensors, but that shard has no such tensor/));

  fs.writeFileSync(indexPath, JSON.stringify({ ...idx, weight_map: { ...idx.weight_map, x: '../evil.safetensors' } }));
  assert.throws(() => openCheckpoint(dir), isErr(/tensor x maps to "\.\.\/evil\.safetensors", which is not a file name/));

  fs.writeFileSync(indexPath, JSON.stringify({ metadata: {} }));
  assert.throws(() => openCheckpoint(dir), isErr(/missing "weight_map" object/));

  fs.writeFileSync(indexPath, '{\n  "weight_map": {\n    "a": "b",\n  }\n}');
  assert.throws(() => openCheckpoint(dir), isErr(/checkpoint index .*index\.json is not valid JSON: .* at line 4 column 3/));

  fs.writeFileSync(indexPath, good);
  checkAll(dir, ts);
});

test('readJsonFile: missing, directory, invalid UTF-8, malformed with position', () => {
  const dir = freshDir();
  assert.throws(() => readJsonFile(path.join(dir, 'config.json'), 'model config'), isErr(/^model config not found: .*config\.json$/));
  assert.throws(() => readJsonFile(dir, 'model config'), isErr(/is a directory/));
  const p = path.join(dir, 'c.json');
  fs.writeFileSync(p, Buffer.from([0x7b, 0xff, 0x7d]));
  assert.throws(() => readJsonFile(p, 'model config'), isErr(/is not valid UTF-8/));
  const cases: [string, RegExp][] = [
    ['{"a": 1,}', /expected a double-quoted property name at line 1 column 9 \(offset 8\)/],
    ['{"a": 1', /unexpected end of input, expected ',' or '}' at line 1 column 8/],
    ['{\n "a": tru\n}', /unexpected character "t" at line 2 column 7/],
    ['{"a": 01}', /expected ',' or '}' after property value at line 1 column 8/],
    ['{} x', /unexpected data after the JSON value at line 1 column 4/],
    ['["a\nb"]', /control character in string at line 1 column 4/],
    ['', /unexpected end of input, expected a value at line 1 column 1/],
  ];
  for (const [text, re] of cases) {
    fs.writeFileSync(p, text);
    assert.throws(() => readJsonFile(p, 'model config'), isErr(new RegExp(`^model config .*c\\.json is not valid JSON: ${re.source}`)), text);
  }
  fs.writeFileSync(p, '\ufeff{"ok": [1, 2.5e3, "\\u00e9", null, true]}');
  assert.deepEqual(readJsonFile(p, 'x'), { ok: [1, 2500, 'é', null, true] });
});

// Fixtures written by Python's safetensors (another task produces them); checked when present.
const goldenRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test/golden');
const goldenDirs = fs.existsSync(goldenRoot)
  ? fs.readdirSync(goldenRoot).filter((d) => fs.existsSync(path.join(goldenRoot, d, SINGLE_FILE)) || fs.existsSync(path.join(goldenRoot, d, INDEX_FILE)))
  : [];

test('golden fixtures written by Python safetensors open and have OpenELM names/shapes', { skip: goldenDirs.length === 0 && 'no test/golden fixtures yet' }, () => {
  for (const d of goldenDirs) {
    const ck = openCheckpoint(path.join(goldenRoot, d));
    try {
      const names = ck.names();
      assert.ok(names.includes('transformer.token_embeddings.weight'), `${d}: embeddings`);
      assert.ok(names.includes('transformer.norm.weight'), `${d}: final norm`);
      const emb = ck.info('transformer.token_embeddings.weight');
      assert.equal(emb.shape.length, 2);
      const dModel = emb.shape[1];
      ck.expectShape('transformer.norm.weight', [dModel]);
      for (let i = 0; ck.has(`transformer.layers.${i}.attn_norm.weight`); i++) {
        ck.expectShape(`transformer.layers.${i}.attn_norm.weight`, [dModel]);
        ck.expectShape(`transformer.layers.${i}.ffn_norm.weight`, [dModel]);
        const qkv = ck.info(`transformer.layers.${i}.attn.qkv_proj.weight`);
        assert.equal(qkv.shape[1], dModel);
        const p1 = ck.info(`transformer.layers.${i}.ffn.proj_1.weight`);
        ck.expectShape(`transformer.layers.${i}.ffn.proj_2.weight`, [dModel, p1.shape[0] / 2]);
      }
      for (const n of names) {
        const t = ck.info(n);
        if (['F32', 'BF16', 'F16', 'F64'].includes(t.dtype)) {
          const x = ck.readF32(n);
          assert.ok(x.every((v) => Number.isFinite(v)), `${d}: ${n} has non-finite values`);
        }
      }
    } finally {
      ck.close();
    }
  }
});

test('a sharded save is atomic as a set: stopped after any file, the folder reads as the old or the new checkpoint, whole', async () => {
  const old = tinyModel(4);
  // Same names and shapes, other values: a mix of the two sets would read back as neither.
  const next = old.map((t) => ({ ...t, data: t.dtype === 'F32' ? (t.data as Float32Array).map((x) => x + 1) : (t.data as Uint16Array).map((x) => x ^ 1) }));
  const plan = fs.readdirSync(saveInto(freshDir(), next)).filter((f) => f.endsWith('.safetensors')).length;
  assert.ok(plan >= 3, 'several shards');
  for (const save of [saveCheckpointSync, saveCheckpoint]) {
    for (let stopAfter = 1; stopAfter <= plan + 1; stopAfter++) {
      const dir = freshDir();
      await save(dir, old, { maxShardBytes: 4000 });
      let committed = 0;
      const crash = () => { if (++committed === stopAfter) throw new Error('power cut'); };
      await assert.rejects(async () => save(dir, next, { maxShardBytes: 4000, afterCommit: crash }), /power cut/);
      // Shards only: still the old set. The index was the last rename: already the new set.
      checkAll(dir, stopAfter <= plan ? old : next);
      // The next save after the crash completes normally.
      await save(dir, next, { maxShardBytes: 4000 });
      checkAll(dir, next);
      await save(dir, old, { maxShardBytes: 4000 });
      checkAll(dir, old);
      assert.deepEqual(leftovers(dir), []);
    }
  }
});

function saveInto(dir: string, ts: TensorToWrite[]): string {
  saveCheckpointSync(dir, ts, { maxShardBytes: 4000 });
  return dir;
}
