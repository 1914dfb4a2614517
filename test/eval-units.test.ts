// Unit tests of the evaluation harness pieces: Python-exact random and string semantics, metrics on
// hand-made cases, few-shot construction, request encoding, the scorer's batching/caching against a
// plain forward pass, windows, and the data loaders' errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { tinyModel } from './helpers/tiny.js';
import { TOL, assertClose } from './tolerances.js';
import { PyRandom } from '../src/eval/pyrandom.js';
import { pyCapitalize, pyCountWords, pyLen, pyRstrip, utf8Len } from '../src/core/pystr.js';
import { argmax, mcScores, meanStderr, pooledStderr, weightedMean, rollingMetrics } from '../src/eval/metrics.js';
import { mc2Score } from '../src/eval/tasks/truthfulqa.js';
import { FewshotSampler, fewshotContext } from '../src/eval/fewshot.js';
import { PairEncoder } from '../src/eval/encode.js';
import { LoglikScorer } from '../src/eval/loglik.js';
import { scoreTokens } from '../src/generate/score.js';
import { rollingWindows, strideWindows } from '../src/eval/rolling.js';
import { parseCsv } from '../src/eval/files.js';
import { parsePyLiteral, parsePyStrList } from '../src/eval/pyliteral.js';
import { hellaswagPreprocess } from '../src/eval/tasks/hellaswag.js';
import { resolveTask } from '../src/eval/tasks/index.js';
import { llmAdaptersAnswers, llmAdaptersPrompt } from '../src/eval/tasks/llm-adapters.js';
import { crowsScores } from '../src/eval/tasks/crows-pairs.js';
import { raceText } from '../src/eval/tasks/race.js';
import { MissingDataError } from '../src/eval/tasks/common.js';
import { SUITES, suiteSummary } from '../src/eval/suites.js';
import { docArguments, evaluate } from '../src/eval/evaluator.js';
import { wikitextDetokenize } from '../src/eval/wikitext.js';
import { detectSize, LLM360, OPEN_LLM, paperScore, ZERO_SHOT } from '../src/eval/paper-results.js';
import { resultsTable, suiteTable } from '../src/eval/table.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import type { Doc, Task } from '../src/eval/task.js';

// Expected values printed by CPython 3.11's random module.
test('PyRandom reproduces CPython random.Random', () => {
  let r = new PyRandom(1234);
  assert.deepEqual([r.getrandbits(32), r.getrandbits(32), r.getrandbits(32)], [4150886329, 3342196574, 1892932127]);
  assert.equal(new PyRandom(1234).random(), 0.9664535356921388);
  r = new PyRandom(1234);
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  assert.deepEqual(r.sample(range(100), 5), [99, 56, 14, 0, 11]);
  assert.deepEqual(r.sample(range(10), 7), [9, 0, 1, 8, 2, 7, 6]);
  assert.deepEqual(r.sample(range(2251), 25).slice(0, 10), [126, 64, 1417, 1983, 1898, 608, 373, 749, 468, 59]);
  assert.deepEqual(r.sample(range(40), 26).slice(0, 5), [17, 15, 12, 29, 33]);
  // Set-based branch of sample (population larger than the table size for k = 26).
  assert.deepEqual(new PyRandom(1234).sample(range(1119), 26), [902, 239, 15, 185, 71, 171, 201, 726, 484, 35, 63, 32, 708, 991, 949, 304, 186, 374, 234, 29, 1030, 996, 511, 132, 1108, 954]);
  r = new PyRandom(1234);
  assert.deepEqual(range(10).map(() => r.randbelow(7)), [6, 3, 0, 0, 0, 6, 4, 0, 5, 5]);
  r = new PyRandom(2n ** 40n + 5n);
  assert.equal(r.getrandbits(40), 569101979940);
  assert.equal(r.randbelow(1_000_000), 281652);
  const x = range(10);
  new PyRandom(0).shuffle(x);
  assert.deepEqual(x, [7, 8, 1, 5, 3, 4, 2, 0, 9, 6]);
  assert.throws(() => new PyRandom(1).sample([1, 2], 3), /larger than population/);
});

test('Python str semantics: rstrip, capitalize, len, word count', () => {
  assert.equal(pyRstrip('abc \x1c\x85\u3000\n').length, 3);
  assert.equal(pyRstrip('x\ufeff').length, 2, 'U+FEFF is not whitespace in Python');
  assert.equal(pyCapitalize('hello WORLD'), 'Hello world');
  assert.equal(pyCapitalize('ßtraße ABC'), 'Sstraße abc');
  assert.equal(pyCapitalize('\u01c6emal'), '\u01c5emal');
  assert.equal(pyCapitalize('éTÉ'), 'Été');
  assert.equal(pyLen('😀é'), 2);
  assert.equal(utf8Len('😀é'), 6);
  assert.equal(pyCountWords(' a  b\nc '), 5);
  assert.equal(pyCountWords(''), 1);
  assert.equal(pyCountWords('a\u00a0b'), 2);
});

test('acc and acc_norm: length normalization flips the prediction when choice lengths differ', () => {
  // " cat" vs " elephants": the longer choice has the lower total but the higher per-character ll.
  const s = mcScores([-4, -6], ['cat', 'elephants'], 1);
  assert.deepEqual([s.acc, s.acc_norm, s.pred, s.pred_norm], [0, 1, 0, 1]);
  // Lengths are Unicode code points: '😀😀' is 2 long (4 UTF-16 units), so -3/2 < -7/5 picks 'abcde'.
  const e = mcScores([-3, -7], ['😀😀', 'abcde'], 1);
  assert.deepEqual([e.acc, e.acc_norm, e.acc_bytes], [0, 1, 0]);
  // acc_bytes divides by UTF-8 bytes: 'é' is 1 character but 2 bytes.
  const b = mcScores([-3, -4.5], ['é', 'ab'], 1);
  assert.deepEqual([b.acc, b.acc_norm, b.acc_bytes], [0, 1, 0]);
  const c = mcScores([-3, -8], ['a', 'éé'], 1);
  assert.deepEqual([c.acc, c.acc_norm, c.acc_bytes], [0, 0, 1]);
  assert.equal(argmax([1, 3, 3]), 1, 'ties go to the first, as numpy');
});

test('mc2: normalized probability mass on the true answers, split at the first 0 label', () => {
  const lls = [0.4, 0.1, 0.3, 0.2].map(Math.log);
  assert.ok(Math.abs(mc2Score([1, 1, 0, 0], lls) - 0.5) < 1e-12);
  // lm-eval counts only the answers before the first 0 as true, even if a later label is 1.
  assert.ok(Math.abs(mc2Score([1, 0, 1, 0], lls) - 0.4) < 1e-12);
  // Very unlikely answers do not underflow to 0/0.
  assert.ok(Math.abs(mc2Score([1, 0], [-2000, -2000 + Math.log(3)]) - 0.25) < 1e-12);
});

test('aggregation: stderr, size-weighted group means, pooled stderr, rolling perplexities', () => {
  assert.ok(Math.abs(meanStderr([1, 0, 1, 1]) - Math.sqrt(0.25 / 4)) < 1e-12);
  assert.equal(weightedMean([0.5, 1], [2, 6]), 0.875);
  const p = pooledStderr([0.1, 0.2], [10, 30]);
  assert.ok(Math.abs(p - Math.sqrt((9 * 0.01 * 10 + 29 * 0.04 * 30) / 38 / 40)) < 1e-12);
  const r = rollingMetrics(-100, 20, 50);
  assert.ok(Math.abs(r.word_perplexity - Math.exp(5)) < 1e-9 && Math.abs(r.bits_per_byte - 2 / Math.LN2) < 1e-12);
});

function toyTask(over: Partial<Task> = {}): Task {
  return {
    name: 'toy', outputType: 'multiple_choice', metrics: ['acc'], evalSplit: 'validation', fewshotSplit: 'train',
    sampler: 'default', drawExtraShot: false, multipleInput: false,
    description: () => '',
    docToText: (d) => `Q${(d as { q: number }).q}`,
    docToChoice: () => ['no', 'yes'],
    docToTarget: (d) => (d as { q: number }).q % 2,
    load: async () => { throw new Error('unused'); },
    ...over,
  };
}

test('few-shot context: description, k shots "text target" joined by blank lines, then the question', () => {
  const pool: Doc[] = Array.from({ length: 30 }, (_, i) => ({ q: i }));
  const task = toyTask({ description: () => 'DESC\n\n' });
  const s = new FewshotSampler(task, pool, 'train');
  const want = new PyRandom(1234);
  const doc = { q: 100 };
  for (let round = 0; round < 3; round++) {
    const shots = want.sample(pool, 2) as { q: number }[];
    const expect = 'DESC\n\n' + shots.map((d) => `Q${d.q} ${d.q % 2 ? 'yes' : 'no'}`).join('\n\n') + '\n\nQ100';
    assert.equal(fewshotContext(task, doc, 2, s), expect, `round ${round}`);
  }
  // lm-eval draws k + 1 when fewshot_split == test_split (both unset for boolq/piqa/...), keeps the first k.
  const extra = new FewshotSampler(toyTask({ drawExtraShot: true }), pool, 'train');
  const w2 = new PyRandom(1234);
  const first = w2.sample(pool, 3).slice(0, 2) as { q: number }[];
  assert.equal(fewshotContext(toyTask(), doc, 2, extra), first.map((d) => `Q${d.q} ${d.q % 2 ? 'yes' : 'no'}`).join('\n\n') + '\n\nQ100');
  const second = w2.sample(pool, 3).slice(0, 2) as { q: number }[];
  assert.ok(fewshotContext(toyTask(), doc, 2, extra).startsWith(`Q${second[0].q} `));
  // The evaluated doc is skipped when the pool contains it.
  const self = new FewshotSampler(toyTask(), [{ q: 1 }, { q: 2 }], 'test');
  assert.equal(fewshotContext(toyTask(), { q: 1 }, 1, self).split('\n\n').length, 2);
  // first_n: the first k rows in order.
  const fn = new FewshotSampler(toyTask({ sampler: 'first_n' }), pool, 'dev');
  assert.equal(fewshotContext(toyTask(), doc, 3, fn), 'Q0 no\n\nQ1 yes\n\nQ2 no\n\nQ100');
  assert.throws(() => new FewshotSampler(toyTask({ drawExtraShot: true }), pool.slice(0, 5), 'train (5 docs)').check(5), /--num-fewshot 5 needs 6 examples but the few-shot split \(train \(5 docs\)\) has 5/);
});

test('WinoGrande partial scoring: options in the contexts, the shared rest is the continuation', () => {
  const w = resolveTask('winogrande')[0];
  const doc = { sentence: 'The trophy did not fit in the suitcase because _ was too big.', option1: 'the trophy', option2: 'the suitcase', answer: '1' };
  assert.deepEqual(w.docToChoice(doc), ['The trophy did not fit in the suitcase because the trophy', 'The trophy did not fit in the suitcase because the suitcase']);
  assert.equal(w.docToTarget(doc), 'was too big.');
  assert.equal(w.docToText(doc), 0);
  assert.equal(fewshotContext(w, doc, 0, null), '');
});

test('encoding pairs: trailing context whitespace moves to the continuation, BOS on both encodings', () => {
  const tok = loadTokenizer();
  const enc = new PairEncoder(tok, { bos: true, eotId: 2 });
  const a = enc.encode('Question: why?\nAnswer:', ' yes');
  assert.equal(a.ctx[0], 1);
  assert.deepEqual([...a.ctx, ...a.cont], tok.encode('Question: why?\nAnswer: yes', { bos: true }));
  const b = enc.encode('Answer: \n', 'yes');
  const whole = tok.encode('Answer: \nyes', { bos: true });
  assert.deepEqual(b.ctx, tok.encode('Answer:', { bos: true }));
  assert.deepEqual(b.cont, whole.slice(b.ctx.length));
  assert.deepEqual(enc.encode('', 'hello').ctx, [2], 'an empty context becomes the end-of-text token (dc90fec)');
});

test('the scorer (grouped contexts, batching, chunked continuations, truncation) equals plain full-sequence scoring', async () => {
  const { model } = tinyModel({ max_context_length: 64 }, 5);
  let seed = 7;
  const rnd = (n: number) => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return seed % n; };
  const toks = (n: number) => Array.from({ length: n }, () => 3 + rnd(290));
  const reqs: { ctx: number[]; cont: number[] }[] = [];
  for (let g = 0; g < 7; g++) {
    const ctx = [1, ...toks(2 + rnd(20))];
    for (let j = 0; j < 1 + rnd(4); j++) reqs.push({ ctx, cont: toks(1 + rnd(9)) });
  }
  reqs.push({ ctx: reqs[0].ctx, cont: reqs[0].cont }); // duplicate request
  reqs.push({ ctx: [1, ...toks(50)], cont: toks(20) }); // longer than the 48-token window: cut from the left
  const L = 48;
  const naive: { ll: number; greedy: boolean }[] = [];
  for (const { ctx, cont } of reqs) {
    const all = [...ctx, ...cont].slice(-(L + 1));
    const { logprobs, greedy } = await scoreTokens(model, all, all.length - cont.length);
    naive.push({ ll: logprobs.reduce((a, b) => a + b, 0), greedy: greedy.every(Boolean) });
  }
  for (const [batchSize, rowsPerCall] of [[1, 512], [3, 5], [16, 1]]) {
    const got = await new LoglikScorer(model, { batchSize, rowsPerCall, maxLength: L }).score(reqs);
    assertClose(got.map((r) => r.ll), naive.map((r) => r.ll), TOL.loglik, `batch ${batchSize} rows ${rowsPerCall}`);
    assert.deepEqual(got.map((r) => r.greedy), naive.map((r) => r.greedy));
  }
});

test('rolling windows score every token once; stride windows score all but the first', () => {
  const t = Array.from({ length: 23 }, (_, i) => 100 + i);
  for (const L of [1, 4, 7, 23, 40]) {
    const w = rollingWindows(t, 2, L);
    assert.deepEqual(w.flatMap((x) => x.cont), t);
    assert.deepEqual(w[0].ctx, [2]);
    for (const x of w) assert.ok(x.ctx.length + x.cont.length <= L + 1 && x.cont.length <= L);
    for (const x of w.slice(1)) assert.equal(x.ctx.length + x.cont.length, L + 1, 'later windows are full');
  }
  for (const [win, stride] of [[8, 3], [8, 1], [30, 5], [8, 7]]) {
    const w = strideWindows(t, win, stride);
    assert.deepEqual(w.flatMap((x) => x.cont), t.slice(1), `${win}/${stride}`);
    for (const x of w) assert.ok(x.ctx.length >= 1 && x.ctx.length + x.cont.length <= win);
  }
  // stride = window: independent windows, each window's first token only conditions (the old perplexity).
  const ind = strideWindows(t, 8, 8);
  assert.deepEqual(ind.map((x) => x.ctx), [[100], [108], [116]]);
  assert.deepEqual(ind.flatMap((x) => x.cont), t.filter((_, i) => i % 8 !== 0));
});

test('text helpers: CSV, Python list literals, HellaSwag preprocess, WikiText detokenizer', () => {
  const rows = parseCsv('a,"b ""q"", c"\r\n"multi\nline",2\n', 'f.csv');
  assert.deepEqual(rows.map((r) => r.value), [['a', 'b "q", c'], ['multi\nline', '2']]);
  assert.deepEqual(rows.map((r) => r.line), [1, 2]);
  assert.deepEqual(parseCsv('x;y\n', 'f', ';')[0].value, ['x', 'y']);
  assert.deepEqual(parsePyStrList(`['True, True', "it's", 'a\\'b\\n', '\\xe9']`, 'w'), ['True, True', 'it\'s', 'a\'b\n', 'é']);
  assert.throws(() => parsePyStrList('[1, 2]', 'f.csv:3'), /f\.csv:3: expected a quoted string/);
  // ast.literal_eval of the same text gives [{'a': "it's", 'b': (1, -2500.0, True, None)}, 'AéA\nz'].
  assert.deepEqual(parsePyLiteral(`[{'a': "it's", 'b': (1, -2.5e3, True, None)}, '\\x41\\u00e9\\101\\n' 'z']`, 'w'), [{ a: 'it\'s', b: [1, -2500, true, null] }, 'AéA\nz']);
  assert.throws(() => parsePyLiteral(`[{'a': 1,}`, 'race.jsonl:4 problems'), /race\.jsonl:4 problems: expected "," or "]" in Python literal/);
  assert.throws(() => parsePyLiteral(`{'a': 1} x`, 'w'), /unexpected text after the value/);
  assert.equal(hellaswagPreprocess(' Making a cake: [header] How to bake [title] Mix flour.  [step] Stir. '), 'Making a cake: How to bake. Mix flour.  Stir.', 'one pass of "  " -> " ", like str.replace');
  assert.equal(wikitextDetokenize(' = Title = \n The 1 @,@ 000 km ( 600 mi ) road , " big " . \n'), ' = Title =\nThe 1,000 km (600 mi) road, "big".\n');
});

test('paper numbers: size detection and lookup by task and shots', () => {
  assert.equal(detectSize({ numLayers: 16, modelDim: 1280 }), '270M');
  assert.equal(detectSize({ numLayers: 36, modelDim: 3072 }), '3B');
  assert.equal(detectSize({ numLayers: 2, modelDim: 64 }), null);
  assert.deepEqual(paperScore('1_1B', 'arc_challenge', 25), { value: 36.69, metric: 'acc_norm' });
  assert.deepEqual(paperScore('450M-Instruct', 'boolq', 0), { value: 60.37, metric: 'acc' });
  assert.equal(paperScore('270M', 'boolq', 5), null);
  const table = resultsTable({ arc_easy: { n: 10, num_fewshot: 0, acc: 0.5, acc_stderr: 0.1, acc_norm: 0.46, acc_norm_stderr: 0.1 } }, '270M');
  assert.match(table, /\|arc_easy\s*\|dc90fec\|none\s*\|0\s*\|acc\s*\|\s*0\.5000\|±\|0\.1000\|/);
  assert.match(table, /acc_norm\s*\|\s*0\.4600\|±\|0\.1000\|\s*45\.08\|\s*\+0\.92\|/);
});

// ---- data loaders ----------------------------------------------------------------------------

function tmpData(files: Record<string, string | Uint8Array>): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-data-'));
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(d, rel)), { recursive: true });
    fs.writeFileSync(path.join(d, rel), content);
  }
  return d;
}

test('loaders: original, gzip, brotli, HF jsonl and parquet layouts give the same documents', async () => {
  const piqa = resolveTask('piqa')[0];
  const lines = [{ goal: 'g1', sol1: 'a', sol2: 'b' }, { goal: 'g2', sol1: 'c', sol2: 'd' }];
  const orig = tmpData({ 'piqa/valid.jsonl': lines.map((l) => JSON.stringify(l)).join('\n') + '\n', 'piqa/valid-labels.lst': '1\n0\n' });
  const gz = tmpData({ 'piqa/valid.jsonl.gz': zlib.gzipSync(lines.map((l) => JSON.stringify(l)).join('\n')), 'piqa/valid-labels.lst': '1\n0\n' });
  const br = tmpData({ 'piqa/valid.jsonl.br': zlib.brotliCompressSync(lines.map((l) => JSON.stringify(l)).join('\n')), 'piqa/valid-labels.lst': '1\n0\n' });
  const hf = tmpData({ 'piqa/validation.jsonl': lines.map((l, i) => JSON.stringify({ ...l, label: 1 - i })).join('\n') });
  const pq = parquetWriteBuffer({ columnData: [
    { name: 'goal', data: ['g1', 'g2'], type: 'STRING' }, { name: 'sol1', data: ['a', 'c'], type: 'STRING' },
    { name: 'sol2', data: ['b', 'd'], type: 'STRING' }, { name: 'label', data: [1, 0], type: 'INT32' }] });
  const par = tmpData({ 'piqa/data/validation-00000-of-00001.parquet': new Uint8Array(pq) });
  const want = [{ goal: 'g1', sol1: 'a', sol2: 'b', label: 1 }, { goal: 'g2', sol1: 'c', sol2: 'd', label: 0 }];
  for (const d of [orig, gz, br, hf, par]) assert.deepEqual((await piqa.load(d, 'validation')).docs, want, d);
  // WinoGrande's release keeps train_xs ... train_xl side by side; the few-shot pool is xl alone.
  const row = (s: string) => JSON.stringify({ qID: s, sentence: `${s} _ x.`, option1: 'a', option2: 'b', answer: '1' });
  const wg = tmpData({ 'winogrande/train_xs.jsonl': row('xs'), 'winogrande/train_xl.jsonl': [row('xl1'), row('xl2')].join('\n'), 'winogrande/dev.jsonl': row('dev') });
  const wdocs = (await resolveTask('winogrande')[0].load(wg, 'train')).docs as { sentence: string }[];
  assert.deepEqual(wdocs.map((d) => d.sentence), ['xl1 _ x.', 'xl2 _ x.']);
});

test('loaders: bad input gives one clear line naming the file (and line)', async () => {
  const piqa = resolveTask('piqa')[0];
  const bad = tmpData({ 'piqa/valid.jsonl': '{"goal":"g","sol1":"a","sol2":"b"}\n{"goal": oops}\n', 'piqa/valid-labels.lst': '0\n1\n' });
  await assert.rejects(piqa.load(bad, 'validation'), /valid\.jsonl:2: malformed JSON line/);
  const field = tmpData({ 'piqa/valid.jsonl': '{"goal":"g","sol1":"a"}\n', 'piqa/valid-labels.lst': '0\n' });
  await assert.rejects(piqa.load(field, 'validation'), /valid\.jsonl:1: field "sol2" must be a string/);
  const labels = tmpData({ 'piqa/valid.jsonl': '{"goal":"g","sol1":"a","sol2":"b"}\n', 'piqa/valid-labels.lst': '0\n1\n' });
  await assert.rejects(piqa.load(labels, 'validation'), /has 2 labels but .* has 1 questions/);
  const empty = tmpData({});
  await assert.rejects(resolveTask('sciq')[0].load(empty, 'test'), (e: Error) => /^sciq: no test split in .*; download .*SciQ\.zip, take "SciQ dataset-2-3\/test\.json" out of it/.test(e.message) && !e.message.includes('\n'));
  const mmlu = tmpData({ 'mmlu/mmlu_anatomy.csv': 'question,choices,answer\nQ?,"[\'a\', \'b\']",1\n' });
  await assert.rejects(resolveTask('mmlu_anatomy')[0].load(mmlu, 'test'), /mmlu_anatomy\.csv:2: expected 4 choices, got 2/);
  await assert.rejects(resolveTask('mmlu_anatomy')[0].load(mmlu, 'dev'), /mmlu_anatomy: no dev split in .*data\.tar, take "data\/dev\/" out of it/);
  assert.throws(() => resolveTask('nope'), /unknown task "nope"; known tasks: arc_easy/);
});

// ---- tasks added for the paper's suites and the LLM-Adapters evaluation --------------------------

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/eval-data', import.meta.url));

test('LLM-Adapters: CoreNet\'s prompt, candidates from the answer format, no delimiter, shuffled order', async () => {
  const pad = ' '.repeat(16);
  assert.equal(llmAdaptersPrompt('Q?'), 'Below is an instruction that describes a task. Write a response that appropriately completes the request.  \n\n' +
    pad + '### Instruction:\n' + pad + 'Q?\n' + pad + '\n' + pad + '### Response:\n' + pad);
  assert.deepEqual(llmAdaptersAnswers('Q?\n\nAnswer format: true/false'), ['true', 'false']);
  assert.deepEqual(llmAdaptersAnswers('Q\n\nAnswer1: a Answer2: b\n\nAnswer format: answer1/answer2/answer3/answer4/answer5'), ['answer1', 'answer2', 'answer3', 'answer4', 'answer5']);
  assert.deepEqual(llmAdaptersAnswers('x\n\nOption1: a Option2: b Answer format: option1/option2'), ['option1', 'option2']);
  assert.deepEqual(llmAdaptersAnswers('x\n\nAnswer format: solution1/solution2'), ['solution1', 'solution2']);
  assert.deepEqual(llmAdaptersAnswers('x\n\nAnswer format: ending1/ending2/ending3/ending4'), ['ending1', 'ending2', 'ending3', 'ending4']);
  assert.deepEqual(llmAdaptersAnswers('Answer format: true/false\nsomething else'), [], 'only the last line counts');
  const t = resolveTask('llmadapters_hellaswag')[0];
  assert.equal(t.targetDelimiter, '');
  const docs = (await t.load(FIXTURES, 'test')).docs;
  // CPython: random.seed(83652); x = list(range(3)); random.shuffle(x) -> [0, 2, 1] (range(12): [0, 1, 2, 5, 7, 11, 3, 8, 4, 10, 9, 6]).
  const x = Array.from({ length: 12 }, (_, i) => i);
  new PyRandom(83652).shuffle(x);
  assert.deepEqual(x, [0, 1, 2, 5, 7, 11, 3, 8, 4, 10, 9, 6]);
  const raw = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'llm_adapters/hellaswag/test.json'), 'utf8')) as { instruction: string; answer: string }[];
  const order = [0, 1, 2];
  new PyRandom(83652).shuffle(order);
  assert.deepEqual(docs.map((d) => (d as { instruction: string }).instruction), order.map((i) => raw[i].instruction));
  const args = docArguments(t, docs[0], fewshotContext(t, docs[0], 0, null));
  assert.deepEqual(args.map((a) => a[1]), ['the correct answer is ending1', 'the correct answer is ending2', 'the correct answer is ending3', 'the correct answer is ending4']);
  assert.equal(args[0][0], llmAdaptersPrompt(raw[order[0]].instruction));
  assert.equal(t.docToTarget(docs[0]), Number(raw[order[0]].answer.slice(-1)) - 1);
  // The prompt's trailing "\n" + 16 spaces moves into the continuation, as lm-eval's HFLM encodes it.
  const enc = new PairEncoder(loadTokenizer(), { bos: true, eotId: 2 });
  const e = enc.encode(args[0][0], args[0][1]);
  assert.deepEqual(e.ctx, loadTokenizer().encode(args[0][0].trimEnd(), { bos: true }));
  // acc_norm divides by the characters of "the correct answer is <x>" (CoreNet: len(args[1])).
  const s = mcScores([-30, -30.5], ['the correct answer is solution1', 'the correct answer is solution22'], 1);
  assert.equal(s.acc, 0);
  assert.equal(s.acc_norm, 1);
  // Bad records name the file and record.
  const bad = tmpData({ 'llm_adapters/piqa/test.json': JSON.stringify([{ instruction: 'Q\n\nAnswer format: solution1/solution2', answer: 'solution3' }]) });
  await assert.rejects(resolveTask('llmadapters_piqa')[0].load(bad, 'test'), /test\.json record 1: answer "solution3" is not one of solution1, solution2/);
  const nofmt = tmpData({ 'llm_adapters/piqa/test.json': JSON.stringify([{ instruction: 'Q', answer: 'x' }]) });
  await assert.rejects(resolveTask('llmadapters_piqa')[0].load(nofmt, 'test'), /record 1: the instruction's last line names no answer format/);
  // LLM-Adapters' own dataset/ folder works as a data folder too.
  const own = tmpData({ 'piqa/test.json': JSON.stringify([{ instruction: 'Q\n\nAnswer format: solution1/solution2', answer: 'solution2' }]) });
  assert.equal((await resolveTask('llmadapters_piqa')[0].load(own, 'test')).docs.length, 1);
});

test('CrowS-Pairs: whole sentences after end-of-text, sent_more-only few-shot examples, pct_stereotype and likelihood_diff', async () => {
  const t = resolveTask('crows_pairs_english')[0];
  const docs = (await t.load(FIXTURES, 'test')).docs as { sent_more: string; sent_less: string }[];
  assert.equal(docs.length, 6);
  assert.equal(docs[1].sent_more, 'She said, "the bus is late" again.', 'quoted TSV fields with "" escapes');
  assert.deepEqual(docArguments(t, docs[0], fewshotContext(t, docs[0], 0, null)), [['', docs[0].sent_more], ['', docs[0].sent_less]]);
  const enc = new PairEncoder(loadTokenizer(), { bos: true, eotId: 2 });
  const e = enc.encode('', docs[0].sent_more);
  assert.deepEqual(e.ctx, [2]);
  assert.equal(e.cont[0], 1, 'dc90fec encodes the continuation with BOS after the end-of-text context');
  // Few-shot examples are the stereotypical sentences alone (no text, no delimiter), drawn from the test split.
  const sampler = new FewshotSampler(t, docs, 'test');
  const ctx = fewshotContext(t, docs[0], 2, sampler);
  const drawn = new PyRandom(1234).sample(docs, 2).filter((d) => d !== docs[0]);
  assert.equal(ctx, drawn.map((d) => d.sent_more).join('\n\n') + '\n\n');
  assert.deepEqual(crowsScores([-10, -12]), { likelihood_diff: 2, pct_stereotype: 1 });
  assert.deepEqual(crowsScores([-12, -12]), { likelihood_diff: 0, pct_stereotype: 0 });
  assert.deepEqual(t.processResults!(docs[0], [-20, -15]), { likelihood_diff: 5, pct_stereotype: 0 });
  const bad = tmpData({ 'crows_pairs/crows_pairs_EN_revised+210.csv': '\tsent_more\tsent_less\tstereo_antistereo\n0\ta\tb\tstereo\n' });
  await assert.rejects(t.load(bad, 'test'), /crows_pairs_EN_revised\+210\.csv:1: no "bias_type" column/);
});

test('RACE: article, earlier problems with answers, last question; dc90fec\'s cloze slice kept', async () => {
  const t = resolveTask('race')[0];
  const docs = (await t.load(FIXTURES, 'test')).docs;
  assert.equal(docs.length, 3);
  const d0 = docs[0] as { article: string };
  assert.equal(t.docToText(docs[0]), 'Article: ' + d0.article + '\n\n' +
    'Question: Where did Tom walk every morning?\nAnswer: the park\n' +
    // "The writer thinks the park is  _  ." renders as its last five characters plus the answer.
    ' _  .quiet\n' +
    'Who slept in the sun?');
  assert.deepEqual(t.docToChoice(docs[0]), ['the owner\'s dog', 'a cat', 'Tom', 'a bird']);
  assert.equal(t.docToTarget(docs[0]), 0);
  assert.equal(raceText({ article: 'A', problems: [{ question: 'q?', answer: 'D', options: ['w', 'x', 'y', 'z'] }] }), 'Article: A\n\nq?');
  assert.deepEqual(docArguments(t, docs[1], 'ctx').map((a) => a[1]), [' one week', ' a day', ' three years', ' two summers']);
  const bad = tmpData({ 'race/test.jsonl': JSON.stringify({ article: 'A', problems: "[{'answer': 'E', 'options': ['a', 'b', 'c', 'd'], 'question': 'q'}]" }) + '\n' });
  await assert.rejects(t.load(bad, 'test'), /test\.jsonl:1: a problem's answer must be one of A-D, got "E"/);
});

test('SciQ: support.lstrip(), the question, the correct answer last', async () => {
  const t = resolveTask('sciq')[0];
  const docs = (await t.load(FIXTURES, 'test')).docs;
  assert.equal(t.docToText(docs[0]), 'Plants use carbon dioxide, water and light to make sugar.\nQuestion: What gas do plants take in to make sugar?\nAnswer:');
  assert.equal(t.docToText(docs[1]), '\nQuestion: Which organ pumps blood?\nAnswer:', 'empty support leaves the leading newline');
  assert.deepEqual(t.docToChoice(docs[1]), ['liver', 'kidney', 'lung', 'heart']);
  assert.equal(t.docToTarget(docs[1]), 3);
});

test('suites: the paper\'s tasks, shots and metrics; an average only when every task ran', () => {
  const rows = (s: string) => SUITES[s].entries.map((e) => `${e.task}:${e.shots}:${e.metric}`);
  assert.deepEqual(rows('zero-shot'), ['arc_challenge:0:acc_norm', 'arc_easy:0:acc_norm', 'boolq:0:acc', 'hellaswag:0:acc_norm', 'piqa:0:acc_norm', 'sciq:0:acc', 'winogrande:0:acc']);
  assert.deepEqual(rows('openllm'), ['arc_challenge:25:acc_norm', 'hellaswag:10:acc_norm', 'mmlu:5:acc', 'truthfulqa_mc2:0:acc', 'winogrande:5:acc']);
  assert.deepEqual(rows('llm360'), ['arc_challenge:25:acc_norm', 'crows_pairs_english:25:pct_stereotype', 'hellaswag:10:acc_norm', 'mmlu:5:acc', 'piqa:0:acc_norm', 'race:0:acc', 'truthfulqa_mc2:0:acc', 'winogrande:5:acc']);
  assert.equal(SUITES['llm-adapters'].entries.length, 8);
  assert.deepEqual([ZERO_SHOT.length, OPEN_LLM.length, LLM360.length], [7, 5, 8]);
  // The paper's LLM360 average for 270M (45.13) is the mean of its eight numbers.
  const p = LLM360.map((e) => paperScore('270M', e.task, e.shots)!.value);
  assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) / 8 - 45.13) < 0.01);
  assert.deepEqual(paperScore('1_1B', 'crows_pairs_english', 25), { value: 71.74, metric: 'pct_stereotype' });
  const r = (v: number, k: number) => ({ n: 1, num_fewshot: k, acc: v, acc_norm: v });
  const full = suiteSummary(SUITES.openllm, { arc_challenge: r(0.4, 25), hellaswag: r(0.6, 10), mmlu: r(0.3, 5), truthfulqa_mc2: r(0.5, 0), winogrande: r(0.7, 5) }, {});
  assert.ok(full.complete && Math.abs(full.average! - 0.5) < 1e-12);
  const part = suiteSummary(SUITES.openllm, { arc_challenge: r(0.4, 25), hellaswag: r(0.6, 0) }, { mmlu: 'mmlu: no dev split …' });
  assert.equal(part.average, null);
  assert.equal(part.tasks[1].value, null, 'a result at other shots does not count');
  assert.equal(part.tasks[2].skipped, 'mmlu: no dev split …');
  const table = suiteTable(full, '270M');
  assert.match(table, /\|arc_challenge\s*\|25\s*\|acc_norm\|\s*0\.4000\|\s*27\.65\|\s*\+12\.35\|/);
  assert.match(table, /\|average\s*\|\s*\|\s*\|\s*0\.5000\|\s*38\.72\|\s*\+11\.28\|/);
  assert.match(suiteTable(part), /4 of 5 tasks skipped for missing data, so no average/);
});

test('missing data: one line naming the one file to fetch and where it goes; suites skip, --tasks fails', async () => {
  const empty = tmpData({});
  const sciq = resolveTask('sciq')[0];
  await assert.rejects(sciq.load(empty, 'test'), (e: Error) => e instanceof MissingDataError && !e.message.includes('\n') &&
    e.message === `sciq: no test split in ${empty} (SciQ is licensed CC BY-NC 3.0, so openelm does not ship it); download https://ai2-public-datasets.s3.amazonaws.com/sciq/SciQ.zip, take "SciQ dataset-2-3/test.json" out of it and save it as ${path.join('DIR', 'sciq', 'test.json')}, then pass --data-dir DIR`);
  const expect: [string, string, RegExp][] = [
    ['hellaswag', 'train', /download https:\/\/raw\.githubusercontent\.com\/rowanz\/hellaswag\/master\/data\/hellaswag_train\.jsonl and save it as DIR[/\\]hellaswag[/\\]hellaswag_train\.jsonl/],
    ['mmlu_anatomy', 'dev', /download https:\/\/people\.eecs\.berkeley\.edu\/~hendrycks\/data\.tar, take "data\/dev\/" out of it and save it as DIR[/\\]mmlu[/\\]dev[/\\]/],
    ['winogrande', 'train', /winogrande_1\.1\.zip, take "winogrande_1\.1\/train_xl\.jsonl" out of it and save it as DIR[/\\]winogrande[/\\]train_xl\.jsonl/],
    ['crows_pairs_english', 'test', /download https:\/\/gitlab\.inria\.fr\/french-crows-pairs\/acl-2022-paper-data-and-code\/-\/raw\/main\/data\/crows_pairs_EN_revised\+210\.csv and save it as DIR[/\\]crows_pairs[/\\]crows_pairs_EN_revised\+210\.csv/],
    ['race', 'test', /non-commercial research only.*download https:\/\/huggingface\.co\/datasets\/EleutherAI\/race\/resolve\/refs%2Fconvert%2Fparquet\/high\/test\/0000\.parquet and save it as DIR[/\\]race[/\\]test\.parquet/],
    ['llmadapters_hellaswag', 'test', /LLM-Adapters\/816657208af4db747803f87ba40a4c71383fed7a\/dataset\/hellaswag\/test\.json and save it as DIR[/\\]llm_adapters[/\\]hellaswag[/\\]test\.json/],
    ['piqa', 'train', /piqa\/data\/train\.jsonl and save it as DIR[/\\]piqa[/\\]train\.jsonl, and https:\/\/\S+\/train-labels\.lst as DIR[/\\]piqa[/\\]train-labels\.lst, then pass --data-dir DIR$/],
  ];
  for (const [name, split, re] of expect) {
    await assert.rejects(resolveTask(name)[0].load(empty, split), (e: Error) => e instanceof MissingDataError && re.test(e.message) && !e.message.includes('\n'), `${name} ${split}`);
  }
  // Through evaluate(): the user's folder is named as the destination, and the split's role is said.
  const { model } = tinyModel({ vocab_size: 32000, max_context_length: 128, rope_max_length: 128 });
  const tok = loadTokenizer();
  const mine = tmpData({ 'winogrande/README': 'not data' });
  const bundled = (await import('../src/eval/data-dir.js')).defaultDataDir();
  const base = { dataDir: [mine, bundled], limit: 1, progressStream: null };
  await assert.rejects(evaluate(model, tok, { ...base, tasks: [{ name: 'winogrande', numFewshot: 5 }] }),
    (e: Error) => e.message === `winogrande: no train split (the 5-shot examples) in ${mine} or ${bundled}; download https://storage.googleapis.com/ai2-mosaic/public/winogrande/winogrande_1.1.zip, take "winogrande_1.1/train_xl.jsonl" out of it and save it as ${path.join(mine, 'winogrande', 'train_xl.jsonl')}, then pass --data-dir ${mine}`);
  const out = await evaluate(model, tok, { ...base, skipMissing: true, tasks: [{ name: 'winogrande', numFewshot: 5 }, { name: 'mmlu', numFewshot: 5 }, { name: 'piqa', numFewshot: 0 }] });
  assert.deepEqual(Object.keys(out.results), ['piqa']);
  assert.deepEqual(Object.keys(out.skipped), ['winogrande', 'mmlu']);
  assert.match(out.skipped.mmlu, /^mmlu: no dev split \(the 5-shot examples\)/, 'a group is skipped whole, under its own name');
  // A folder holding only the few-shot pool completes the bundled evaluation split.
  const rows = Array.from({ length: 7 }, (_, i) => JSON.stringify({ sentence: `Row ${i} is _ here.`, option1: 'a', option2: 'b', answer: '1' })).join('\n');
  const pool = tmpData({ 'winogrande/train_xl.jsonl': rows });
  const ok = await evaluate(model, tok, { ...base, dataDir: [pool, bundled], tasks: [{ name: 'winogrande', numFewshot: 5 }] });
  assert.equal(ok.results.winogrande.num_fewshot, 5);
  assert.match(ok.sources.winogrande.source, /dev\.jsonl/);
});
