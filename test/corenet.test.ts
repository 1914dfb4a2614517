// CoreNet checkpoints: `.pt` files made by real torch.save (test/fixtures/corenet, see
// tools/make_corenet_fixtures.py) read without Python, both forms (weights only, training state);
// conversion to HF and back is exact; averaging equals CoreNet's average_ckpts; a training state
// seeds `openelm train --resume`; bad files fail in one line and write nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { TorchFile, TorchTensorRef, asStateDict, pyGet, saveTorchFile, type PyValue } from '../src/io/torch-file.js';
import { unpickle, Pickler, PyTuple } from '../src/io/pickle.js';
import { ZipWriter } from '../src/io/zip-store.js';
import { writeAtomicSync } from '../src/io/atomic.js';
import { openCorenetCheckpoint, writeCorenetCheckpoint, averageCheckpoints, corenetModelFromYaml, readYamlFile } from '../src/formats/corenet.js';
import { seedRunFromCorenet } from '../src/formats/corenet-run.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { loadRecipe } from '../src/train/recipe.js';
import { readCheckpoint } from '../src/train/state.js';
import { train } from '../src/train/trainer.js';
import { paramLayout } from '../src/model/layout.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { OpenELMError } from '../src/core/errors.js';
import { runCli } from './helpers/cli.js';

const FIX = fileURLToPath(new URL('../../test/fixtures/corenet/', import.meta.url));
const fix = (f: string) => path.join(FIX, f);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-corenet-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface Desc { dtype: string; shape: number[]; sha256: string; first: number[]; }
const manifest = JSON.parse(fs.readFileSync(fix('MANIFEST.json'), 'utf8')) as {
  files: Record<string, { bytes: number; content: Record<string, Desc | unknown> }>;
  average_of_avg_0_1_2: Record<string, Desc>;
};
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const TORCH_DTYPE: Record<string, string> = { F32: 'float32', BF16: 'bfloat16', F16: 'float16', I64: 'int64' };

function oneLine(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof OpenELMError, String(e));
    assert.ok(!e.message.includes('\n'), e.message);
    assert.match(e.message, re);
    return true;
  });
}

/** Every tensor in a pickled object, by the dotted path the manifest uses. */
function tensorsOf(v: PyValue, prefix = '', out = new Map<string, TorchTensorRef>()): Map<string, TorchTensorRef> {
  if (v instanceof TorchTensorRef) out.set(prefix, v);
  else if (v instanceof Map) for (const [k, x] of v) tensorsOf(x, prefix ? `${prefix}.${String(k)}` : String(k), out);
  else if (Array.isArray(v)) v.forEach((x, i) => { tensorsOf(x, `${prefix}[${i}]`, out); });
  else if (v instanceof PyTuple) v.items.forEach((x, i) => { tensorsOf(x, `${prefix}[${i}]`, out); });
  return out;
}

test('every tensor of every torch.save fixture reads back bit for bit (weights-only and training states, f32/bf16)', () => {
  let n = 0;
  for (const [f, m] of Object.entries(manifest.files)) {
    const tf = TorchFile.open(fix(f));
    try {
      const got = tensorsOf(tf.root);
      const want = Object.entries(m.content).filter(([, d]) => typeof d === 'object' && d !== null && 'sha256' in d) as [string, Desc][];
      assert.equal(got.size, want.length, f);
      for (const [k, d] of want) {
        const t = got.get(k);
        assert.ok(t, `${f}: ${k}`);
        assert.equal(TORCH_DTYPE[t.storage.dtype], d.dtype, `${f}: ${k}`);
        assert.deepEqual(t.shape, d.shape, `${f}: ${k}`);
        assert.equal(sha(tf.readBytes(t)), d.sha256, `${f}: ${k}`);
        assert.deepEqual(Array.from(tf.readF32(t).subarray(0, 3)), d.first, `${f}: ${k}`);
        n++;
      }
    } finally { tf.close(); }
  }
  assert.ok(n > 100, `${n} tensors`);
});

test('training state: plain values come through (iterations, epoch, best_metric inf, param groups)', () => {
  const tf = TorchFile.open(fix('tiny-training.pt'));
  try {
    const r = tf.root;
    assert.equal(pyGet(r, 'iterations'), 3);
    assert.equal(pyGet(r, 'epoch'), 0);
    assert.equal(pyGet(r, 'best_metric'), Infinity);
    assert.equal(pyGet(r, 'is_interval_ckpt'), true);
    const groups = pyGet(pyGet(r, 'optim_state_dict'), 'param_groups') as PyValue[];
    assert.equal(groups.length, 2);
    assert.deepEqual((pyGet(groups[0], 'betas') as PyTuple).items, [0.9, 0.95]);
    assert.equal(pyGet(groups[1], 'weight_decay'), 0);
    assert.equal((pyGet(groups[0], 'param_names') as string[])[0], 'token_embeddings.weight');
  } finally { tf.close(); }
});

test('a CoreNet checkpoint opens under HF names with the embedding cut to the vocabulary', () => {
  const ck = openCorenetCheckpoint(fix('tiny-f32.pt'), fix('tiny-config.json'));
  try {
    assert.equal(ck.training, undefined);
    assert.equal(ck.embeddingRows, 96);
    assert.equal(ck.config.vocabSize, 80);
    assert.deepEqual(ck.source.info('transformer.token_embeddings.weight').shape, [80, 32]);
    const all = ck.file.readF32(ck.source.stored('transformer.token_embeddings.weight'));
    assert.deepEqual(ck.source.readF32('transformer.token_embeddings.weight'), all.subarray(0, 80 * 32));
    assert.equal(ck.source.names().length, 1 + 2 * 8 + 1);
  } finally { ck.source.close(); }
  const bf = openCorenetCheckpoint(fix('tiny-bf16.pt'), fix('tiny-config.json'));
  try {
    assert.equal(bf.source.info('transformer.layers.1.ffn.proj_1.weight').dtype, 'BF16');
    const raw = bf.source.readBF16('transformer.layers.1.ffn.proj_1.weight');
    const f = bf.source.readF32('transformer.layers.1.ffn.proj_1.weight');
    for (let i = 0; i < raw.length; i++) assert.equal(new Float32Array(new Uint32Array([raw[i] << 16]).buffer)[0], f[i]);
  } finally { bf.source.close(); }
});

test('row ranges of a CoreNet checkpoint read as the same slice of the whole tensor, from just their bytes (f32, bf16, f16, f64, training state, strided view)', () => {
  const f32 = openCorenetCheckpoint(fix('tiny-f32.pt'), fix('tiny-config.json'));
  const made: string[] = [];
  try {
    for (const dtype of ['F16', 'F64'] as const) {
      const out = path.join(tmp, `tiny-${dtype}.pt`);
      writeCorenetCheckpoint(f32.source, f32.config, out, { dtype });
      made.push(out);
    }
  } finally { f32.source.close(); }
  const cases: [string, string][] = [
    [fix('tiny-f32.pt'), fix('tiny-config.json')], [fix('tiny-bf16.pt'), fix('tiny-config.json')],
    [fix('tiny-training.pt'), fix('tiny-config.json')], [fix('gpt-test-bf16.pt'), fix('gpt-test.yaml')],
    ...made.map((f): [string, string] => [f, fix('tiny-config.json')]),
  ];
  for (const [pt, cfg] of cases) {
    const ck = openCorenetCheckpoint(pt, cfg);
    try {
      for (const name of ck.source.names()) {
        const shape = ck.source.info(name).shape, all = ck.source.readF32(name);
        const cols = shape[shape.length - 1], rows = all.length / cols;
        const ranges: [number, number][] = [[0, all.length], [0, cols], [(rows - 1) * cols, cols], [all.length, 0], [3, cols - 5]];
        if (rows > 3) ranges.push([cols, Math.floor(rows / 2) * cols], [cols + 3, 2 * cols - 5]);
        for (const [start, count] of ranges) {
          const dst = new Float32Array(count + 1).fill(7);
          ck.source.readF32Range(name, start, count, dst);
          assert.ok(dst.subarray(0, count).every((v, i) => Object.is(v, all[start + i])), `${pt} ${name} [${start}, +${count})`);
          assert.equal(dst[count], 7, 'nothing past count');
        }
      }
      // the embedding's rows: only their bytes, through a buffer kept between reads
      const emb = 'transformer.token_embeddings.weight', [rows, cols] = ck.source.info(emb).shape;
      const half = Math.floor(rows / 2) * cols, dst = new Float32Array(half);
      ck.source.readF32Range(emb, 0, half, dst);
      const before = process.memoryUsage().arrayBuffers;
      ck.source.readF32Range(emb, cols, half, dst);
      const grew = process.memoryUsage().arrayBuffers - before;
      assert.ok(grew < 4 * cols, `${pt}: a range of ${half} values allocated ${grew} bytes`);
      // a view that is not contiguous (a transpose) reads the same values as a whole read does
      const ref = ck.source.stored(emb), [a, b] = ref.shape;
      const t = new TorchTensorRef(ref.storage, ref.offset, [b, a], [ref.stride[1], ref.stride[0]]);
      const whole = ck.file.readF32(t), part = new Float32Array(a + 3);
      ck.file.readF32Range(t, a - 1, a + 3, part);
      assert.deepEqual(part, whole.subarray(a - 1, 2 * a + 2));
      oneLine(() => ck.file.readF32Range(t, 1, a * b, new Float32Array(a * b)), /a tensor of storage \S+: range \[1, \d+\) is outside its \d+ values/);
      oneLine(() => ck.source.readF32Range(emb, 1, rows * cols, new Float32Array(rows * cols)), /range \[1, \d+\) is outside its \d+ values/);
    } finally { ck.source.close(); }
  }
});

test('training state: AdamW moments and step per parameter, through param_names and through CoreNet\'s grouping', () => {
  const ck = openCorenetCheckpoint(fix('tiny-training.pt'), fix('tiny-config.json'));
  const content = manifest.files['tiny-training.pt'].content as Record<string, Desc>;
  const names = (manifest.files['tiny-training.pt'].content as Record<string, unknown>);
  try {
    const opt = ck.training!.optimizer!;
    assert.equal(ck.training!.iterations, 3);
    assert.equal(opt.step, 3);
    assert.deepEqual(opt.betas, [0.9, 0.95]);
    assert.equal(opt.eps, 1e-8);
    assert.equal(opt.weightDecay, 0.1);
    // state index → name through param_groups[g].param_names
    const idName = new Map<number, string>();
    for (let g = 0; g < 2; g++) {
      for (let i = 0; ; i++) {
        const id = names[`optim_state_dict.param_groups[${g}].params[${i}]`];
        if (id === undefined) break;
        idName.set(id as number, `transformer.${names[`optim_state_dict.param_groups[${g}].param_names[${i}]`] as string}`);
      }
    }
    assert.equal(idName.size, 18);
    for (const [id, name] of idName) {
      const want = content[`optim_state_dict.state.${id}.exp_avg`];
      const m = opt.m.get(name)!;
      if (name.endsWith('token_embeddings.weight')) {
        assert.equal(m.length, 80 * 32);
        continue;
      }
      assert.equal(sha(new Uint8Array(m.buffer, m.byteOffset, m.byteLength)), want.sha256, name);
    }
  } finally { ck.source.close(); }

  // The same state without param_names (older torch): matched by CoreNet's decay / no-decay order.
  const tf = TorchFile.open(fix('tiny-training.pt'));
  const groups = pyGet(pyGet(tf.root, 'optim_state_dict'), 'param_groups') as Map<string, PyValue>[];
  for (const g of groups) g.delete('param_names');
  const bare = path.join(tmp, 'bare-training.pt');
  // Re-save with our writer: tensors as stored, plain values unchanged.
  const copy = (v: PyValue): never | PyValue | { tensor: { dtype: 'F32'; shape: number[]; data: Float32Array } } => {
    if (v instanceof TorchTensorRef) return { tensor: { dtype: 'F32', shape: v.shape, data: tf.readF32(v) } } as never;
    if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, copy(x)])) as never;
    if (Array.isArray(v)) return v.map(copy) as never;
    return v;
  };
  saveTorchFile(bare, copy(tf.root) as never);
  tf.close();
  const a = openCorenetCheckpoint(fix('tiny-training.pt'), fix('tiny-config.json'));
  const b = openCorenetCheckpoint(bare, fix('tiny-config.json'));
  try {
    for (const [n, m] of a.training!.optimizer!.m) assert.deepEqual(b.training!.optimizer!.m.get(n), m, n);
    for (const [n, v] of a.training!.optimizer!.v) assert.deepEqual(b.training!.optimizer!.v.get(n), v, n);
  } finally { a.source.close(); b.source.close(); }
});

test('CoreNet YAML: model_name gives the size, the padding index the vocabulary; unknown sizes are refused', () => {
  const m = corenetModelFromYaml(readYamlFile(fix('gpt-test.yaml'), 'yaml'), 'gpt-test.yaml');
  assert.equal(m.modelName, 'gpt-test');
  assert.equal(m.corenetVocab, 264);
  assert.equal(m.hf.vocab_size, 260);
  const ck = openCorenetCheckpoint(fix('gpt-test-bf16.pt'), fix('gpt-test.yaml'));
  assert.equal(ck.embeddingRows, 264);
  assert.deepEqual(ck.config.numQueryHeads, [1]);
  assert.deepEqual(ck.config.ffnDims, [256]);
  ck.source.close();
  const doc = (name: string) => ({ model: { language_modeling: { general_gpt: { model_name: name, vocab_size: 32128, padding_index: 32000 } } } });
  const real = corenetModelFromYaml(doc('OpenELM-270M'), 'x.yaml');
  assert.equal(real.hf.vocab_size, 32000);
  assert.equal(real.hf.num_transformer_layers, 16);
  oneLine(() => corenetModelFromYaml(doc('OpenELM-7B'), 'x.yaml'), /x\.yaml: model\.language_modeling\.general_gpt\.model_name "OpenELM-7B" is not a known size/);
  oneLine(() => corenetModelFromYaml({ model: {} }, 'y.yaml'), /y\.yaml: model\.language_modeling\.general_gpt is missing/);
});

test('CLI: .pt → HF → .pt is exact (f32 training state and bf16 weights), and the written file is a torch.save zip', () => {
  for (const [pt, cfg, dtype] of [['tiny-training.pt', 'tiny-config.json', 'F32'], ['gpt-test-bf16.pt', 'gpt-test.yaml', 'BF16']] as const) {
    const hf = path.join(tmp, `${pt}-hf`), back = path.join(tmp, `${pt}-back.pt`);
    let r = runCli(['convert', '--model', fix(pt), '--config', fix(cfg), '--to', 'hf', '--out', hf, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const ck = openCheckpoint(hf);
    assert.equal(ck.info('transformer.layers.0.attn.qkv_proj.weight').dtype, dtype);
    ck.close();
    const cfgJson = JSON.parse(fs.readFileSync(path.join(hf, 'config.json'), 'utf8'));
    assert.equal(cfgJson.torch_dtype, dtype === 'BF16' ? 'bfloat16' : 'float32');
    r = runCli(['convert', '--model', hf, '--to', 'corenet', '--pad-from', fix(pt), '--config', fix(cfg), '--out', back]);
    assert.equal(r.status, 0, r.stderr);
    const a = TorchFile.open(fix(pt)), b = TorchFile.open(back);
    try {
      const sa = asStateDict(pyGet(a.root, 'model_state_dict') ?? a.root)!, sb = asStateDict(b.root)!;
      assert.deepEqual([...sb.keys()], [...sa.keys()], 'CoreNet order');
      for (const [k, t] of sa) {
        const u = sb.get(k)!;
        assert.equal(u.storage.dtype, t.storage.dtype, k);
        assert.deepEqual(u.shape, t.shape, k);
        assert.deepEqual(b.readBytes(u), a.readBytes(t), k);
      }
    } finally { a.close(); b.close(); }
  }
  // The records torch.load expects, data 64-byte aligned.
  const raw = fs.readFileSync(path.join(tmp, 'gpt-test-bf16.pt-back.pt'));
  assert.equal(raw.readUInt32LE(0), 0x04034b50);
  for (const rec of ['archive/data.pkl', 'archive/byteorder', 'archive/version', 'archive/data/0']) assert.ok(raw.includes(Buffer.from(rec)), rec);
});

test('average equals CoreNet\'s average_ckpts bit for bit (float64 mean, cast back per key)', () => {
  const out = path.join(tmp, 'avg.pt');
  const r = runCli(['average', fix('avg-0.pt'), fix('avg-1.pt'), fix('avg-2.pt'), '--out', out, '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).checkpoints, 3);
  const tf = TorchFile.open(out);
  try {
    const sd = asStateDict(tf.root)!;
    assert.deepEqual([...sd.keys()].sort(), Object.keys(manifest.average_of_avg_0_1_2).sort());
    for (const [k, want] of Object.entries(manifest.average_of_avg_0_1_2)) {
      const t = sd.get(k)!;
      assert.equal(TORCH_DTYPE[t.storage.dtype], want.dtype, k);
      assert.equal(sha(tf.readBytes(t)), want.sha256, `${k} differs from CoreNet's average`);
    }
  } finally { tf.close(); }
  // The library call gives the same file contents.
  const again = path.join(tmp, 'avg2.pt');
  averageCheckpoints([fix('avg-0.pt'), fix('avg-1.pt'), fix('avg-2.pt')], again);
  const x = TorchFile.open(out), y = TorchFile.open(again);
  for (const [k, t] of asStateDict(x.root)!) assert.deepEqual(y.readBytes(asStateDict(y.root)!.get(k)!), x.readBytes(t));
  x.close(); y.close();
});

test('a CoreNet training state seeds a run that `train --resume` continues', async () => {
  const tokens = path.join(tmp, 'ids.bin');
  const ids = new Uint16Array(4000);
  for (let i = 0; i < ids.length; i++) ids[i] = (i * 7919 + 13) % 80;
  fs.writeFileSync(tokens, new Uint8Array(ids.buffer));
  const cfg = JSON.parse(fs.readFileSync(fix('tiny-config.json'), 'utf8'));
  const model = Object.fromEntries(['num_transformer_layers', 'model_dim', 'head_dim', 'num_gqa_groups', 'qkv_multipliers', 'ffn_multipliers', 'ffn_dim_divisor', 'vocab_size', 'max_context_length'].map((k) => [k, cfg[k]]));
  const recipeFile = path.join(tmp, 'seed.yaml');
  fs.writeFileSync(recipeFile, JSON.stringify({
    model: { config: model }, data: { train: [{ path: tokens, format: 'tokens' }] }, seq_len: 16, batch_size: 2, steps: 6,
    optimizer: { lr: 0.001, betas: [0.9, 0.95], eps: 1e-8, weight_decay: 0.1 }, schedule: { type: 'constant', warmup_steps: 0 },
    out_dir: path.join(tmp, 'run'), checkpoint_every: 100, log_every: 1,
  }));
  const recipe = loadRecipe(recipeFile);
  const ck = openCorenetCheckpoint(fix('tiny-training.pt'), fix('tiny-config.json'));
  let seeded: Awaited<ReturnType<typeof seedRunFromCorenet>>;
  try { seeded = await seedRunFromCorenet(ck, recipe, loadTokenizer()); } finally { ck.source.close(); }
  assert.equal(seeded.step, 3);
  assert.deepEqual(seeded.differences, []);
  // The seeded checkpoint holds exactly the training state's weights and moments.
  const ck2 = openCorenetCheckpoint(fix('tiny-training.pt'), fix('tiny-config.json'));
  const layout = paramLayout(ck2.config);
  const p = new Float32Array(layout.total), m = new Float32Array(layout.total), v = new Float32Array(layout.total);
  const loaded = readCheckpoint(seeded.dir, layout, p, m, v);
  assert.equal(loaded.optStep, 3);
  assert.equal(loaded.state.step, 3);
  for (const e of layout.entries) {
    assert.deepEqual(p.subarray(e.offset, e.offset + e.size), ck2.source.readF32(e.name), e.name);
    assert.deepEqual(m.subarray(e.offset, e.offset + e.size), ck2.training!.optimizer!.m.get(e.name), e.name);
    assert.deepEqual(v.subarray(e.offset, e.offset + e.size), ck2.training!.optimizer!.v.get(e.name), e.name);
  }
  ck2.source.close();
  const res = await train({ recipe, resume: true, log: () => {} });
  assert.equal(res.status, 'done');
  assert.equal(res.step, 6);
  assert.ok(Number.isFinite(res.lastLoss!));
  // Seeding again into a folder that holds a run is refused.
  const ck3 = openCorenetCheckpoint(fix('tiny-training.pt'), fix('tiny-config.json'));
  await assert.rejects(seedRunFromCorenet(ck3, recipe, loadTokenizer()), /already holds checkpoints/);
  // An sft/dpo run builds its own data state; it starts from a converted folder instead.
  const chats = path.join(tmp, 'chats.jsonl');
  fs.writeFileSync(chats, JSON.stringify({ prompt: 'a', completion: 'b' }) + '\n');
  const sftFile = path.join(tmp, 'seed-sft.yaml');
  fs.writeFileSync(sftFile, JSON.stringify({
    task: 'sft', model: { config: model }, data: { train: [{ path: chats, format: 'jsonl' }] }, batch_size: 1, steps: 6,
    optimizer: { lr: 0.001 }, out_dir: path.join(tmp, 'run-sft'),
  }));
  await assert.rejects(seedRunFromCorenet(ck3, loadRecipe(sftFile), loadTokenizer()), /is for task pretrain; for task sft, convert .* with --to hf/);
  ck3.source.close();
});

// ------------------------------------------------------------------------------------------------
// Bad input

/** A .pt whose pickle asks for `module.name` (e.g. os.system); building it runs nothing. */
function evilPt(file: string, module: string, name: string): void {
  const enc = new TextEncoder();
  const pkl = Uint8Array.from([0x80, 2, 0x63, ...enc.encode(`${module}\n${name}\n`), 0x58, 4, 0, 0, 0, ...enc.encode('echo'), 0x85, 0x52, 0x2e]);
  writeAtomicSync(file, (fd) => {
    const z = new ZipWriter(fd);
    z.add('archive/data.pkl', pkl.length, [pkl]);
    z.add('archive/version', 2, [enc.encode('3\n')]);
    z.finish();
  });
}

test('a pickle that asks for anything but tensors and containers is refused by name, never run', () => {
  const f = path.join(tmp, 'evil.pt');
  for (const [mod, name] of [['posix', 'system'], ['builtins', 'eval'], ['torch', 'load']]) {
    evilPt(f, mod, name);
    oneLine(() => TorchFile.open(f), new RegExp(`the pickle asks for ${mod}\\.${name}; only tensors and plain containers are allowed \\(nothing was executed\\)`));
  }
  oneLine(() => unpickle(Uint8Array.from([0x80, 2, 0x69, 0x2e]), { source: 'x' }), /opcode 0x69 is not supported/);
  const out = path.join(tmp, 'evil-out');
  const r = runCli(['convert', '--model', f, '--config', fix('tiny-config.json'), '--to', 'hf', '--out', out]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^openelm convert: .*the pickle asks for torch\.load/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  assert.equal(fs.existsSync(out), false, 'nothing written');
});

test('a truncated .pt, a .pt without --config, a weights-only file for --to run: one line each, nothing written', () => {
  const b = fs.readFileSync(fix('tiny-training.pt'));
  for (const cut of [10, 2000, b.length - 30]) {
    const f = path.join(tmp, `cut${cut}.pt`);
    fs.writeFileSync(f, b.subarray(0, cut));
    oneLine(() => openCorenetCheckpoint(f, fix('tiny-config.json')), /is truncated|is not a ZIP archive/);
  }
  const out = path.join(tmp, 'never');
  let r = runCli(['convert', '--model', fix('tiny-f32.pt'), '--to', 'hf', '--out', out]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /is a PyTorch checkpoint: pass --config with its CoreNet YAML/);
  const yaml = path.join(tmp, 'bad.yaml');
  fs.writeFileSync(yaml, 'model:\n  language_modeling:\n    general_gpt:\n      model_name: OpenELM-9B\n      vocab_size: 32128\n');
  r = runCli(['convert', '--model', fix('tiny-f32.pt'), '--config', yaml, '--to', 'hf', '--out', out]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /model_name "OpenELM-9B" is not a known size \(OpenELM-270M, OpenELM-450M, OpenELM-1_1B, OpenELM-3B, gpt-test\)/);
  r = runCli(['convert', '--model', fix('tiny-f32.pt'), '--config', fix('gpt-test.yaml'), '--to', 'hf', '--out', out]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /tensor (layers\.0\.attn\.qkv_proj\.weight|token_embeddings\.weight) has shape/);
  const recipe = path.join(tmp, 'r.yaml');
  fs.writeFileSync(recipe, JSON.stringify({ model: { preset: 'OpenELM-270M' }, data: { train: [{ path: fix('gpt-test.yaml'), format: 'text' }] }, steps: 10, schedule: { warmup_steps: 0 }, out_dir: out }));
  r = runCli(['convert', '--model', fix('tiny-f32.pt'), '--config', fix('tiny-config.json'), '--to', 'run', '--recipe', recipe]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /holds weights only; seeding a run needs a CoreNet training state/);
  for (const res of [r]) assert.equal(res.stderr.trim().split('\n').length, 1);
  assert.equal(fs.existsSync(out), false, 'nothing written');
});

test('pickle writer output is what the reader reads (ints, floats, big ints, tuples, nested dicts)', () => {
  const v = new Map<string | number, PyValue>([['a', 1], ['b', -5], ['c', 2 ** 40], ['d', 0.5], ['e', new PyTuple([1, 'x', null])], ['f', [true, false]], [7, new Map([['z', 'ü']])]]);
  const back = unpickle(Pickler.dumps(v as never), { source: 't' }) as Map<unknown, PyValue>;
  assert.equal(back.get('a'), 1);
  assert.equal(back.get('b'), -5);
  assert.equal(back.get('c'), 2 ** 40);
  assert.equal(back.get('d'), 0.5);
  assert.deepEqual((back.get('e') as PyTuple).items, [1, 'x', null]);
  assert.deepEqual(back.get('f'), [true, false]);
  assert.equal((back.get(7) as Map<string, PyValue>).get('z'), 'ü');
});
