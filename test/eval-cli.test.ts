// `openelm eval` and the extended `openelm perplexity` as users run them, on a tiny random model with
// the real vocabulary (so the bundled tokenizer's ids fit) and the data shipped in data/eval.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli, type CliResult } from './helpers/cli.js';
import { tinyModelDir } from './helpers/tiny.js';
import { MMLU_SUBJECTS } from '../src/eval/tasks/mmlu.js';

const dir = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 512, rope_max_length: 512 }, 11);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-cli-'));

function json(r: CliResult) {
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, 'one JSON object and nothing else on stdout');
  return JSON.parse(lines[0]);
}

function fails(args: string[], re: RegExp, status?: number): string {
  const r = runCli(args);
  assert.notEqual(r.status, 0, `expected failure for ${args.join(' ')}`);
  if (status !== undefined) assert.equal(r.status, status, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`);
  assert.match(lines[0], re);
  assert.equal(r.stdout, '');
  return lines[0];
}

const base = ['eval', '--model', dir, '--backend', 'js'];

test('eval --json: results per task with lm-eval metric names, and the run config', () => {
  const j = json(runCli([...base, '--tasks', 'arc_easy:2,boolq,winogrande,truthfulqa_mc2,lambada_openai', '--limit', '3', '--num-fewshot', '0', '--json'], { timeoutMs: 120_000 }));
  assert.deepEqual(Object.keys(j), ['results', 'config']);
  assert.deepEqual(Object.keys(j.results).sort(), ['arc_easy', 'boolq', 'lambada_openai', 'truthfulqa_mc2', 'winogrande']);
  for (const r of Object.values(j.results) as Array<{ n: number; acc: number }>) {
    assert.equal(r.n, 3);
    assert.ok(r.acc >= 0 && r.acc <= 1);
  }
  assert.ok(typeof j.results.arc_easy.acc_norm === 'number' && typeof j.results.arc_easy.acc_stderr === 'number');
  assert.equal(j.results.boolq.acc_norm, undefined, 'boolq reports acc only, as lm-eval');
  assert.equal(j.results.winogrande.acc_norm, undefined);
  assert.ok(j.results.lambada_openai.perplexity > 1);
  assert.ok(j.results.truthfulqa_mc2.acc > 0 && j.results.truthfulqa_mc2.acc < 1);
  assert.equal(j.results.arc_easy.num_fewshot, 2);
  assert.equal(j.results.truthfulqa_mc2.num_fewshot, 0, 'truthfulqa fixes num_fewshot at 0');
  assert.equal(j.config.add_bos_token, true);
  assert.equal(j.config.limit, 3);
  assert.match(j.config.lm_eval_commit, /^dc90fec/);
  assert.ok(j.config.timing.docs_per_s > 0);
  assert.match(j.config.data_sources.arc_easy.source, /ARC-Easy\.test\.json/);
});

test('eval: batch size does not change the numbers; --log-samples writes one line per document', () => {
  const log = path.join(tmp, 'samples.jsonl');
  const a = json(runCli([...base, '--tasks', 'arc_challenge:3,piqa', '--limit', '4', '--batch-size', '1', '--log-samples', log, '--json']));
  const b = json(runCli([...base, '--tasks', 'arc_challenge:3,piqa', '--limit', '4', '--batch-size', '16', '--json']));
  assert.deepEqual(a.results.arc_challenge.acc, b.results.arc_challenge.acc);
  assert.deepEqual(a.results.piqa.acc_norm, b.results.piqa.acc_norm);
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 8);
  const s = lines[0];
  assert.equal(s.task, 'arc_challenge');
  assert.equal(s.context.split('\n\n').length, 4, 'three shots then the question');
  assert.equal(s.loglikelihoods.length, s.choices.length);
  assert.equal(s.continuations[0], ' ' + s.choices[0]);
  assert.ok(s.loglikelihoods.every((x: number) => x < 0));
  assert.equal(lines[4].task, 'piqa');
});

test('eval: mmlu groups are size-weighted means of the subjects; the table names tasks and metrics', () => {
  const j = json(runCli([...base, '--tasks', 'mmlu', '--limit', '1', '--json'], { timeoutMs: 120_000 }));
  assert.equal(j.results.mmlu.n, 57);
  assert.equal(j.results.mmlu_stem.n, 19);
  const subjects = Object.keys(j.results).filter((k) => /^mmlu_/.test(k) && !['mmlu_stem', 'mmlu_humanities', 'mmlu_social_sciences', 'mmlu_other'].includes(k));
  assert.equal(subjects.length, 57);
  const mean = subjects.reduce((a, k) => a + j.results[k].acc, 0) / 57;
  assert.ok(Math.abs(j.results.mmlu.acc - mean) < 1e-12);
  assert.ok(j.config.notes.some((n: string) => /MMLU-Redux/.test(n)));
  const t = runCli([...base, '--tasks', 'hellaswag', '--limit', '2', '--compare-paper']);
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /^\|Tasks\s*\|Version\|Filter\|n-shot\|Metric/);
  assert.match(t.stdout, /\|hellaswag\s*\|dc90fec\|none\s*\|0\s*\|acc\s/);
  assert.match(t.stdout, /note: hellaswag: klosax text format/);
  assert.match(t.stderr, /not one of the released OpenELM sizes/);
});

test('eval: bad input fails with one clear line', () => {
  fails([...base, '--tasks', 'arc_easy,nope'], /unknown task "nope"; known tasks: arc_easy, arc_challenge/, 2);
  fails([...base, '--tasks', 'sciq'], /^openelm eval: sciq: no test split in \S+data[/\\]eval \(SciQ is licensed CC BY-NC 3\.0, so openelm does not ship it\); download https:\/\/ai2-public-datasets\.s3\.amazonaws\.com\/sciq\/SciQ\.zip, take "SciQ dataset-2-3\/test\.json" out of it and save it as DIR[/\\]sciq[/\\]test\.json, then pass --data-dir DIR$/, 1);
  fails([...base, '--tasks', 'mmlu_anatomy:5'], /mmlu_anatomy: no dev split \(the 5-shot examples\) in .*hendrycks\/data\.tar, take "data\/dev\/" out of it and save it as DIR[/\\]mmlu[/\\]dev/);
  fails([...base, '--tasks', 'winogrande:5'], /winogrande: no train split \(the 5-shot examples\) in .*winogrande_1\.1\.zip, take "winogrande_1\.1\/train_xl\.jsonl" out of it/);
  const mine = path.join(tmp, 'mine');
  fs.mkdirSync(mine, { recursive: true });
  fails([...base, '--tasks', 'race', '--data-dir', mine], new RegExp(`race: no test split in ${esc(mine)} or \\S+ \\(RACE may be used for non-commercial research only.*save it as ${esc(path.join(mine, 'race', 'test.parquet'))}, then pass --data-dir ${esc(mine)}$`), 1);
  fails([...base, '--tasks', 'crows_pairs_english:25'], /crows_pairs_english: no test split .*crows_pairs_EN_revised\+210\.csv and save it as DIR/, 1);
  fails([...base, '--tasks', 'llmadapters_hellaswag'], /llmadapters_hellaswag: no test split .*dataset\/hellaswag\/test\.json and save it as DIR[/\\]llm_adapters[/\\]hellaswag[/\\]test\.json/, 1);
  fails([...base, '--suite', 'zero-shot', '--tasks', 'piqa'], /--suite and --tasks are alternatives/, 2);
  fails([...base, '--suite', 'nope'], /--suite must be one of zero-shot, openllm, llm360, llm-adapters; got "nope"/, 2);
  fails([...base, '--suite', 'openllm', '--num-fewshot', '3'], /--suite openllm fixes each task's shots; drop --num-fewshot/, 2);
  fails([...base], /give --tasks .* or --suite/, 2);
  fails([...base, '--tasks', 'arc_easy:x'], /--tasks: cannot read "arc_easy:x"/, 2);
  const bad = path.join(tmp, 'bad');
  fs.mkdirSync(path.join(bad, 'piqa'), { recursive: true });
  fs.writeFileSync(path.join(bad, 'piqa', 'valid.jsonl'), '{"goal":"g","sol1":"a","sol2":"b"}\n{"goal":"g2","sol1":"a"\n');
  fs.writeFileSync(path.join(bad, 'piqa', 'valid-labels.lst'), '0\n1\n');
  fails([...base, '--tasks', 'piqa', '--data-dir', bad], /piqa[/\\]valid\.jsonl:2: malformed JSON line/);
  const small = path.join(tmp, 'small');
  fs.mkdirSync(path.join(small, 'arc_easy'), { recursive: true });
  const row = (q: string) => JSON.stringify({ question: q, choices: { text: ['a', 'b'], label: ['A', 'B'] }, answerKey: 'B' });
  fs.writeFileSync(path.join(small, 'arc_easy', 'test.jsonl'), row('t1') + '\n');
  fs.writeFileSync(path.join(small, 'arc_easy', 'train.jsonl'), [row('r1'), row('r2')].join('\n'));
  fails([...base, '--tasks', 'arc_easy:3', '--data-dir', small], /arc_easy: --num-fewshot 3 needs 3 examples but the few-shot split \(train: .*train\.jsonl.*\) has 2/, 2);
  const ok = json(runCli([...base, '--tasks', 'arc_easy:2', '--data-dir', small, '--json']));
  assert.equal(ok.results.arc_easy.n, 1);
  fails([...base, '--tasks', 'piqa', '--data-dir', path.join(tmp, 'nowhere')], /--data-dir .*nowhere is not a folder/);
});

test('perplexity: default windows keep their numbers; --stride, --rolling and --wikitext add document metrics', () => {
  const f = path.join(tmp, 'wiki.txt');
  fs.writeFileSync(f, ' = Alpha = \n\n The alpha river , about 1 @,@ 200 km long , runs north . \n\n = Beta = \n\n Beta is a town ( pop. 300 ) . \n');
  const common = ['perplexity', '--model', dir, '--file', f, '--context', '16', '--backend', 'js', '--json'];
  const w = json(runCli(common));
  assert.ok(w.tokens > 10 && Math.abs(Math.exp(w.nll) - w.ppl) < 1e-9 * w.ppl);
  assert.equal(w.mode, 'windows');
  const s = json(runCli([...common, '--stride', '4']));
  assert.equal(s.mode, 'stride');
  assert.ok(s.tokens > w.tokens, 'overlapping windows score every token after the first');
  const r = json(runCli([...common, '--rolling']));
  assert.equal(r.mode, 'rolling');
  assert.equal(r.tokens, s.tokens + 1, 'rolling windows also score the BOS token after the prefix token');
  assert.ok(r.word_perplexity > 0 && r.byte_perplexity > 0 && Math.abs(r.bits_per_byte - Math.log2(r.byte_perplexity)) < 1e-9);
  const d = json(runCli([...common, '--rolling', '--documents', 'wikitext', '--wikitext']));
  assert.equal(d.documents, 2);
  assert.equal(d.bytes, r.bytes - 1, 'bytes are counted on the original text (less the newline between the two articles)');
  fails(['perplexity', '--model', dir, '--file', f, '--stride', '4', '--rolling'], /--stride and --rolling are different methods/, 2);
});

function esc(s: string): string { return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'); }

test('eval --suite: runs the suite\'s tasks at their published shots, names the file for each task without data', () => {
  const z = json(runCli([...base, '--suite', 'zero-shot', '--limit', '2', '--json'], { timeoutMs: 120_000 }));
  assert.deepEqual(Object.keys(z.results), ['arc_challenge', 'arc_easy', 'boolq', 'hellaswag', 'piqa', 'winogrande']);
  assert.equal(z.suite.suite, 'zero-shot');
  assert.deepEqual(z.suite.tasks.map((t: { task: string; shots: number; metric: string }) => `${t.task}:${t.shots}:${t.metric}`), ['arc_challenge:0:acc_norm', 'arc_easy:0:acc_norm', 'boolq:0:acc', 'hellaswag:0:acc_norm', 'piqa:0:acc_norm', 'sciq:0:acc', 'winogrande:0:acc']);
  assert.equal(z.suite.tasks[0].value, z.results.arc_challenge.acc_norm);
  assert.equal(z.suite.tasks[5].value, null);
  assert.match(z.suite.tasks[5].skipped, /^sciq: no test split .*SciQ\.zip/);
  assert.equal(z.suite.average, null);
  assert.equal(z.suite.complete, false);
  assert.match(z.config.skipped.sciq, /SciQ\.zip/);
  assert.equal(z.config.suite, 'zero-shot');
  const t = runCli([...base, '--suite', 'llm-adapters', '--limit', '1']);
  assert.equal(t.status, 0, t.stderr);
  assert.match(t.stdout, /\|llmadapters_boolq\s*\|corenet\|none\s*\|0\s*\|acc\s/);
  assert.match(t.stdout, /Suite llm-adapters: .*\(1 of 8 tasks skipped for missing data, so no average\)/);
  assert.match(t.stdout, /^skipped llmadapters_hellaswag: no test split .*LLM-Adapters\/816657208af4db747803f87ba40a4c71383fed7a\/dataset\/hellaswag\/test\.json/m);
});

test('eval --suite openllm completes with a folder holding only the missing few-shot files', () => {
  const d = path.join(tmp, 'fewshot');
  fs.mkdirSync(path.join(d, 'hellaswag'), { recursive: true });
  fs.writeFileSync(path.join(d, 'hellaswag', 'hellaswag_train.jsonl'), Array.from({ length: 12 }, (_, i) => JSON.stringify({
    ind: i, activity_label: 'Cooking', ctx_a: `A cook lights stove ${i}.`, ctx_b: 'the cook', endings: ['stirs a pot.', 'sings.', 'sleeps.', 'runs away.'], label: '0', split: 'train',
  })).join('\n') + '\n');
  fs.mkdirSync(path.join(d, 'winogrande'));
  fs.writeFileSync(path.join(d, 'winogrande', 'train_xl.jsonl'), Array.from({ length: 8 }, (_, i) => JSON.stringify({ qID: `q${i}`, sentence: `Ann gave Bo ${i} apples because _ had many.`, option1: 'Ann', option2: 'Bo', answer: '1' })).join('\n') + '\n');
  fs.mkdirSync(path.join(d, 'mmlu', 'dev'), { recursive: true });
  for (const s of MMLU_SUBJECTS) {
    fs.writeFileSync(path.join(d, 'mmlu', 'dev', `${s}_dev.csv`), Array.from({ length: 5 }, (_, i) => `"Q${i} about ${s}?",a,b,c,d,${'ABCD'[i % 4]}`).join('\n') + '\n');
  }
  const j = json(runCli([...base, '--suite', 'openllm', '--limit', '1', '--data-dir', d, '--json'], { timeoutMs: 300_000 }));
  assert.deepEqual(j.config.skipped, {});
  assert.equal(j.suite.complete, true);
  assert.deepEqual(j.suite.tasks.map((t: { task: string; shots: number }) => [t.task, t.shots]), [['arc_challenge', 25], ['hellaswag', 10], ['mmlu', 5], ['truthfulqa_mc2', 0], ['winogrande', 5]]);
  const vals = j.suite.tasks.map((t: { value: number }) => t.value);
  assert.ok(Math.abs(j.suite.average - vals.reduce((a: number, b: number) => a + b, 0) / 5) < 1e-12);
  assert.equal(j.results.mmlu.n, 57);
  assert.equal(j.results.hellaswag.num_fewshot, 10);
  assert.match(j.config.data_sources.hellaswag.source, /hellaswag_val_full\.txt\.br/, 'the evaluated split still comes from the bundled data');
  assert.match(j.config.data_sources.mmlu_anatomy.source, /MMLU-Redux/);
  assert.deepEqual(j.config.data_dirs.length, 2);
});

test('eval --help\'s example and the README\'s eval commands run on the bundled data', () => {
  const help = runCli(['eval', '--help']);
  assert.equal(help.status, 0);
  const m = /--tasks (\S+)/.exec(help.stdout);
  assert.ok(m, help.stdout);
  const h = json(runCli([...base, '--tasks', m[1], '--limit', '1', '--json'], { timeoutMs: 120_000 }));
  assert.ok(Object.keys(h.results).length >= 3);
  const readme = fs.readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
  const cmds = readme.split('\n').map((l) => /^\s*npx openelm (eval .*?)(?:\s+#.*)?$/.exec(l)?.[1]).filter((x): x is string => !!x);
  assert.ok(cmds.length >= 2, 'README shows eval commands');
  for (const c of cmds) {
    const args = c.split(/\s+/);
    const i = args.indexOf('--model');
    args.splice(i, 2, '--model', dir);
    const r = runCli([...args, '--backend', 'js', '--limit', '1'], { timeoutMs: 120_000 });
    assert.equal(r.status, 0, `${c}: ${r.stderr}`);
    assert.match(r.stdout, /\|Tasks/);
  }
});
