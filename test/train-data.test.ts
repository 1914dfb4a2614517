// The training data pipeline: CoreNet's text steps, every file format, both layouts, mixtures,
// shuffling, the held-out split and exact resumption of the loader state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { codePointLength, passesCharFilter, slimPajamaNormalize, splitWords } from '../src/train/data/text.js';
import { WordChunker, openByteStream } from '../src/train/data/byte-stream.js';
import { PAD, createSource, type PipelineOptions, type RowSource, type SourceOptions, type SourceSpec } from '../src/train/data/sources.js';
import { TrainLoader, readRows } from '../src/train/data/loader.js';
import { expandDataPath } from '../src/train/data/files.js';
import { parseRecipe } from '../src/train/recipe.js';
import { createTrainLoader } from '../src/train/pretrain-task.js';

const tok = loadTokenizer();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-train-data-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

function write(name: string, data: string | Uint8Array): string {
  const p = path.join(tmp, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, data);
  return p;
}

const PIPE: PipelineOptions = { mode: 'pad', seqLen: 16, splitWords: 2048, minChars: 0, minTokens: 0 };

function source(spec: Partial<SourceSpec> & { files: string[]; format: SourceSpec['format'] }, o: Partial<Omit<SourceOptions, 'pipe'>> & { pipe?: Partial<PipelineOptions> } = {}): RowSource {
  return createSource({ name: 'test', weight: 1, ...spec }, {
    split: { role: 'all', fraction: 0 }, seed: 1, loop: false, shuffleFiles: false, vocabSize: 32000,
    ...o, pipe: { ...PIPE, ...(o.pipe ?? {}) },
  }, tok);
}

async function allRows(s: RowSource): Promise<Int32Array[]> {
  const out: Int32Array[] = [];
  for (let r = await s.nextRow(); r; r = await s.nextRow()) out.push(r);
  await s.close();
  return out;
}

/** Python's [" ".join(w[i:i+n]) for i in range(0, len(w), n)] with w = s.split(" "). */
function pySplit(s: string, n: number): string[] {
  const w = s.split(' ');
  const out: string[] = [];
  for (let i = 0; i < w.length; i += n) out.push(w.slice(i, i + n).join(' '));
  return out;
}

// ------------------------------------------------------------------------------ text steps

test('SlimPajama normalisation: lower-case, ASCII punctuation removed, whitespace collapsed', () => {
  assert.equal(slimPajamaNormalize('  Hello, World!\n\n  It\'s  "fine" -- (really).  '), 'hello world its fine really');
  // Only ASCII punctuation goes (Python's string.punctuation); curly quotes and dashes stay.
  assert.equal(slimPajamaNormalize('“Quoted”—dash…'), '“quoted”—dash…');
  assert.equal(codePointLength('a😀b'), 3);
  assert.equal(passesCharFilter('ab, cd!', 5), true);   // "ab cd" = 5
  assert.equal(passesCharFilter('ab, cd!', 6), false);
  assert.equal(passesCharFilter('!!!!!!!!!!', 1), false);
});

test('splitWords matches Python split(" ") + join, including empty words and edges', () => {
  const cases = ['', 'a', 'a b', 'a b c d e', 'a  b   c', ' lead', 'trail ', 'x\ny z\tw', 'α β γ δ ε ζ'];
  for (const s of cases) for (const n of [1, 2, 3, 5]) assert.deepEqual(splitWords(s, n), pySplit(s, n), `${JSON.stringify(s)} / ${n}`);
});

test('a text file streamed in word chunks equals splitting it whole (multi-byte text, >1 MiB)', async () => {
  const words: string[] = [];
  for (let i = 0, len = 0; len < 1.3e6; i++) {
    const w = i % 7 === 0 ? `ünïcödé${i}\n` : i % 11 === 0 ? '' : `w${i}😀`;
    words.push(w);
    len += w.length + 1;
  }
  const text = words.join(' ');
  const f = write('big.txt', text);
  const dec = new TextDecoder();
  for (const n of [1000, 2048]) {
    const bs = await openByteStream(f, 'none');
    const ch = new WordChunker(bs, 0, n);
    const got: string[] = [];
    for (let b = await ch.next(); b; b = await ch.next()) got.push(dec.decode(b));
    await bs.close();
    assert.deepEqual(got, pySplit(text, n));
  }
});

// ------------------------------------------------------------------------------ layouts

test('pad layout: BOS + ids + EOS, first T+1 kept, right-padded; filters drop short chunks', async () => {
  const long = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
  const f = write('pad/a.txt', `${long}\nshort one`);
  // split into 2 chunks by words
  const rows = await allRows(source({ files: [f], format: 'text' }, { pipe: { splitWords: 40, seqLen: 16 } }));
  const c1 = tok.encode(pySplit(`${long}\nshort one`, 40)[0], { bos: true, eos: true });
  const c2 = tok.encode(pySplit(`${long}\nshort one`, 40)[1], { bos: true, eos: true });
  assert.equal(rows.length, 2);
  assert.deepEqual(Array.from(rows[0]), c1.slice(0, 17));
  assert.equal(rows[0][0], 1);
  assert.deepEqual(Array.from(rows[1]).slice(0, c2.length), c2);
  assert.equal(c2[c2.length - 1], 2);
  assert.ok(Array.from(rows[1]).slice(c2.length).every((v) => v === PAD));
  assert.equal(rows[1].length, 17);

  // min_tokens drops the short chunk, min_chars too
  const s2 = source({ files: [f], format: 'text' }, { pipe: { splitWords: 40, minTokens: c2.length + 1 } });
  assert.equal((await allRows(s2)).length, 1);
  assert.equal(s2.stats.droppedTokens, 1);
  const s3 = source({ files: [f], format: 'text' }, { pipe: { splitWords: 40, minChars: 'short one'.length + 1 } });
  assert.equal((await allRows(s3)).length, 1);
  assert.equal(s3.stats.droppedChars, 1);
});

test('pack layout: chunks concatenated, rows are windows [kT, kT+T+1) with no padding', async () => {
  const docs = ['The quick brown fox jumps over the lazy dog.', 'Pack me tightly, please!', 'A third document, rather longer than the others, to fill rows.'];
  const f = write('pack.jsonl', docs.map((d) => JSON.stringify({ text: d })).join('\n') + '\n');
  const stream = docs.flatMap((d) => tok.encode(d, { bos: true, eos: true }));
  const T = 8;
  const rows = await allRows(source({ files: [f], format: 'jsonl', textKey: 'text' }, { pipe: { mode: 'pack', seqLen: T } }));
  assert.equal(rows.length, Math.floor((stream.length - 1) / T));
  rows.forEach((r, k) => { assert.deepEqual(Array.from(r), stream.slice(k * T, k * T + T + 1)); });
});

test('NFC normalisation before encoding', async () => {
  const decomposed = 'Cafe\u0301 '.repeat(10);
  const f = write('nfc.txt', decomposed);
  const rows = await allRows(source({ files: [f], format: 'text' }, { pipe: { seqLen: 64 } }));
  const want = tok.encode(decomposed.normalize('NFC'), { bos: true, eos: true });
  assert.deepEqual(Array.from(rows[0]).slice(0, want.length), want);
});

// ------------------------------------------------------------------------------ formats

const JSONL_LINES = [
  '{"text": "alpha beta gamma delta"}',
  '{"text": "zstd second document here"}',
  'not json at all',
  '{"other": 1}',
  '{"text": "third one"}',
];
// The same five lines compressed with `zstd -19` (Node 20 has no zstd compressor).
const ZST_B64 = 'KLUv/SR8xQIAYgYTEbA9+LiBQzvejomY1FpI0wdOoLKztuWh82EFPz/fmAKler+XNZj2GwOV/fnZZ74iaWULa8ThlocTVO5XXrbXarP9PraPU80r+KU/0wIAZwQOZzb1BMCGYJc=';

test('JSONL plain, .gz and .zst: same rows; corrupt lines skipped and reported with file:line', async () => {
  const text = JSONL_LINES.join('\n') + '\n';
  const files = [write('j/a.jsonl', text), write('j/a.jsonl.gz', zlib.gzipSync(text)), write('j/a.jsonl.zst', Buffer.from(ZST_B64, 'base64'))];
  const want = ['alpha beta gamma delta', 'zstd second document here', 'third one'].map((d) => tok.encode(d, { bos: true, eos: true }));
  for (const f of files) {
    const s = source({ files: [f], format: 'jsonl', textKey: 'text' }, { pipe: { seqLen: 12 } });
    const rows = await allRows(s);
    assert.equal(rows.length, 3, f);
    rows.forEach((r, i) => { assert.deepEqual(Array.from(r).slice(0, want[i].length), want[i]); });
    assert.equal(s.stats.badLines, 2);
    assert.equal(s.stats.badExamples.length, 2);
    assert.match(s.stats.badExamples[0], new RegExp(`${path.basename(f).replace(/\./g, '\\.')}:3: invalid JSON`));
    assert.match(s.stats.badExamples[1], /:4: no "text" field/);
  }
});

test('JSONL .gz / .zst resume inside a document (decompress-and-skip) gives the same rows', async () => {
  const docs = Array.from({ length: 30 }, (_, i) => JSON.stringify({ text: Array.from({ length: 7 }, (_, j) => `g${i}w${j}`).join(' ') }));
  const text = docs.join('\r\n') + '\r\n';
  for (const f of [write('j/resume.jsonl.gz', zlib.gzipSync(text)), write('j/resume.jsonl', text)]) {
    const mk = () => source({ files: [f], format: 'jsonl', textKey: 'text' }, { pipe: { splitWords: 3, seqLen: 6 } });
    const all = await allRows(mk());
    assert.equal(all.length, 90);
    for (const cut of [1, 2, 44, 89]) {
      const a = mk();
      for (let i = 0; i < cut; i++) await a.nextRow();
      const st = a.getState();
      await a.close();
      const b = mk();
      b.setState(JSON.parse(JSON.stringify(st.json)), st.tensors);
      assert.deepEqual((await allRows(b)).map((r) => Array.from(r)), all.slice(cut).map((r) => Array.from(r)), `${f} cut ${cut}`);
    }
  }
});

test('a corrupt .gz file is a clear error naming the file', async () => {
  const gz = zlib.gzipSync(JSONL_LINES.join('\n'));
  const f = write('j/broken.jsonl.gz', gz.subarray(0, gz.length - 12));
  const s = source({ files: [f], format: 'jsonl', textKey: 'text' });
  await assert.rejects(allRows(s), (e: Error) => e.message.includes('broken.jsonl.gz'));
});

test('Parquet: row groups read one at a time, `content` auto-detected, text_key honoured', async () => {
  const docs = Array.from({ length: 25 }, (_, i) => `parquet document number ${i} with some words`);
  const buf = parquetWriteBuffer({ columnData: [{ name: 'id', data: docs.map((_, i) => i), type: 'INT32' }, { name: 'content', data: docs, type: 'STRING' }], rowGroupSize: 10 });
  const f = write('p/rw.parquet', new Uint8Array(buf));
  const rows = await allRows(source({ files: [f], format: 'parquet' }, { pipe: { seqLen: 32 } }));
  assert.equal(rows.length, 25);
  docs.forEach((d, i) => {
    const w = tok.encode(d, { bos: true, eos: true });
    assert.deepEqual(Array.from(rows[i]).slice(0, w.length), w);
  });
  const pile = parquetWriteBuffer({ columnData: [{ name: 'text', data: ['pile text here'], type: 'STRING' }, { name: 'meta', data: ['x'], type: 'STRING' }] });
  const f2 = write('p/pile.parquet', new Uint8Array(pile));
  assert.equal((await allRows(source({ files: [f2], format: 'parquet' }))).length, 1);
  await assert.rejects(allRows(source({ files: [f2], format: 'parquet', textKey: 'body' })), /no column "body".*columns: text, meta/);
});

test('parquet resume inside a row group and inside a document gives the same rows', async () => {
  const docs = Array.from({ length: 12 }, (_, i) => Array.from({ length: 9 }, (_, j) => `d${i}w${j}`).join(' '));
  const f = write('p/resume.parquet', new Uint8Array(parquetWriteBuffer({ columnData: [{ name: 'text', data: docs, type: 'STRING' }], rowGroupSize: 5 })));
  const mk = () => source({ files: [f], format: 'parquet' }, { pipe: { splitWords: 4, seqLen: 8 } });
  const all = await allRows(mk());
  for (const cut of [1, 2, 7, 13, 20]) {
    const a = mk();
    for (let i = 0; i < cut; i++) await a.nextRow();
    const st = a.getState();
    await a.close();
    const b = mk();
    b.setState(st.json, st.tensors);
    const rest = await allRows(b);
    assert.deepEqual(rest.map((r) => Array.from(r)), all.slice(cut).map((r) => Array.from(r)), `cut ${cut}`);
  }
});

test('format tokens, shuffle off: batch k is tokens [k·B·T, (k+1)·B·T + 1) as B rows of T', async () => {
  const N = 1000;
  const ids = new Uint16Array(N);
  for (let i = 0; i < N; i++) ids[i] = (i * 37 + 11) % 32000;
  write('tok/a.bin', new Uint8Array(ids.buffer));
  const recipeFile = write('tok/r.yaml', '');
  const r = parseRecipe({
    model: { config: { num_transformer_layers: 1, model_dim: 16, head_dim: 8 } },
    data: { train: [{ path: 'a.bin', format: 'tokens' }] },
    seq_len: 10, batch_size: 3, steps: 5, optimizer: { lr: 1e-3 }, pipeline: { shuffle: false },
  }, recipeFile);
  const B = 3, T = 10;
  const loader = createTrainLoader(r, tok, 32000);
  for (let k = 0; k < Math.floor((N - 1) / (B * T)); k++) {
    const b = await loader.nextBatch(B);
    for (let row = 0; row < B; row++) for (let t = 0; t < T; t++) {
      const at = k * B * T + row * T + t;
      assert.equal(b.inputs[row * T + t], ids[at]);
      assert.equal(b.targets[row * T + t], ids[at + 1]);
    }
    assert.equal(b.validTokens, B * T);
  }
  await loader.close();
});

test('token files: odd size and out-of-vocabulary ids are errors naming the file', async () => {
  const odd = write('tok/odd.bin', new Uint8Array(7));
  await assert.rejects(allRows(source({ files: [odd], format: 'tokens' })), /odd\.bin has an odd size/);
  const big = write('tok/big.bin', new Uint8Array(new Uint16Array(40).fill(40000).buffer));
  await assert.rejects(allRows(source({ files: [big], format: 'tokens' })), /big\.bin: id 40000 at token 0 is outside/);
});

// ------------------------------------------------------------------------------ mixture, shuffle, split

function constTokens(name: string, id: number, n: number): string {
  return write(name, new Uint8Array(new Uint16Array(n).fill(id).buffer));
}

test('mixture weights: rows drawn from sources in proportion to weight', async () => {
  const a = constTokens('mix/a.bin', 5, 2000), b = constTokens('mix/b.bin', 7, 2000);
  const T = 4;
  const o = { loop: true, pipe: { seqLen: T } };
  const loader = new TrainLoader([source({ files: [a], format: 'tokens', weight: 3 }, o), source({ files: [b], format: 'tokens', weight: 1 }, o)],
    { seqLen: T, shuffleBuffer: 0, seed: 3 });
  let fromA = 0;
  const n = 4000;
  for (let i = 0; i < n; i++) if ((await loader.nextRow())[0] === 5) fromA++;
  assert.ok(Math.abs(fromA / n - 0.75) < 0.03, `share of source a: ${fromA / n}`);
  await loader.close();
});

test('shuffle buffer: a seeded permutation of the same rows', async () => {
  const ids = new Uint16Array(2001);
  for (let i = 0; i < ids.length; i++) ids[i] = i;
  const f = write('shuf/a.bin', new Uint8Array(ids.buffer));
  const T = 4;
  const take = async (buf: number, seed: number) => {
    const l = new TrainLoader([source({ files: [f], format: 'tokens' }, { loop: true, pipe: { seqLen: T } })], { seqLen: T, shuffleBuffer: buf, seed });
    const out: number[] = [];
    for (let i = 0; i < 100; i++) out.push((await l.nextRow())[0]);
    await l.close();
    return out;
  };
  const plain = await take(0, 1);
  assert.deepEqual(plain, Array.from({ length: 100 }, (_, i) => i * T));
  const s1 = await take(16, 1), s1b = await take(16, 1), s2 = await take(16, 2);
  assert.deepEqual(s1, s1b);
  assert.notDeepEqual(s1, plain);
  assert.notDeepEqual(s1, s2);
  assert.ok(s1.every((v) => v % T === 0 && v < 2000));
  assert.equal(new Set(s1).size, 100, 'no row repeated within the first epoch');
});

test('held-out split: train and validation chunks are disjoint and together make the whole source', async () => {
  const docs = Array.from({ length: 200 }, (_, i) => JSON.stringify({ text: `document ${i}` }));
  const f = write('split/a.jsonl', docs.join('\n'));
  const firstIds = async (role: 'all' | 'train' | 'valid') => (await allRows(source({ files: [f], format: 'jsonl', textKey: 'text' }, { split: { role, fraction: 0.2 }, pipe: { seqLen: 8 } })))
    .map((r) => tok.decode(Array.from(r).filter((v) => v !== PAD)));
  const all = await firstIds('all'), tr = await firstIds('train'), va = await firstIds('valid');
  assert.equal(all.length, 200);
  assert.ok(va.length > 20 && va.length < 60, `validation share ${va.length}/200`);
  assert.deepEqual([...tr, ...va].sort(), [...all].sort());
  assert.equal(tr.filter((x) => va.includes(x)).length, 0);
  // readRows takes the validation set round-robin and stops at the limit
  const rows = await readRows([source({ files: [f], format: 'jsonl', textKey: 'text' }, { split: { role: 'valid', fraction: 0.2 }, pipe: { seqLen: 8 } })], 5);
  assert.equal(rows.length, 5);
});

test('loader state round trip: a restored loader continues with exactly the same batches', async () => {
  const books = [write('st/a.txt', fs.readFileSync(new URL('../../data/corpus/gutenberg/the-time-machine.txt', import.meta.url), 'utf8').slice(0, 60000)),
    write('st/b.jsonl', Array.from({ length: 50 }, (_, i) => JSON.stringify({ text: `line ${i} `.repeat(30) })).join('\n'))];
  const mk = () => new TrainLoader([
    source({ files: [books[0]], format: 'text' }, { loop: true, shuffleFiles: true, pipe: { mode: 'pack', seqLen: 16, splitWords: 100 } }),
    source({ files: [books[1]], format: 'jsonl', textKey: 'text', weight: 2 }, { loop: true, seed: 9, pipe: { mode: 'pack', seqLen: 16, splitWords: 100 } }),
  ], { seqLen: 16, shuffleBuffer: 8, seed: 4 });
  const ref = mk();
  const want: Int32Array[] = [];
  for (let i = 0; i < 60; i++) want.push((await ref.nextBatch(2)).inputs);
  await ref.close();
  const a = mk();
  for (let i = 0; i < 25; i++) await a.nextBatch(2);
  const st = JSON.parse(JSON.stringify(a.getState().json));
  const tensors = a.getState().tensors;
  await a.close();
  const b = mk();
  b.setState(st, tensors);
  for (let i = 25; i < 60; i++) assert.deepEqual((await b.nextBatch(2)).inputs, want[i], `batch ${i}`);
  await b.close();
});

test('sources loop over epochs; an empty corpus is a clear error', async () => {
  const f = write('ep/a.txt', 'one two three four five six seven eight nine ten');
  const s = source({ files: [f], format: 'text' }, { loop: true, pipe: { seqLen: 4, mode: 'pack' } });
  for (let i = 0; i < 20; i++) assert.ok(await s.nextRow());
  await s.close();
  const empty = source({ files: [f], format: 'text' }, { loop: true, pipe: { minChars: 1000 } });
  await assert.rejects(empty.nextRow(), /no chunk survived the filters.*1 with fewer than min_chars = 1000/);
});

test('data paths: folders, globs, and missing files named with their recipe key', () => {
  write('dir/x1.jsonl', '{}'); write('dir/x2.jsonl', '{}'); write('dir/readme.md', '');
  assert.deepEqual(expandDataPath(path.join(tmp, 'dir'), 'jsonl', 'k').map((p) => path.basename(p)), ['x1.jsonl', 'x2.jsonl']);
  assert.deepEqual(expandDataPath(path.join(tmp, 'dir', 'x*.jsonl'), undefined, 'k').map((p) => path.basename(p)), ['x1.jsonl', 'x2.jsonl']);
  assert.throws(() => expandDataPath(path.join(tmp, 'nope.txt'), 'text', 'recipe.data.train[0].path'), /recipe\.data\.train\[0\]\.path: data file .*nope\.txt does not exist/);
});
