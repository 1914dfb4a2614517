// The evaluation harness against tools/eval_goldens.py: prompts built with Python's own string and
// random semantics (and lm-eval's samplers.py), token ids from SentencePiece, log-likelihoods from the
// float64 PyTorch reference of a tiny formula-weight model, and the scores (CoreNet's LLM-Adapters
// predictions, CrowS-Pairs' metrics) computed from them in Python. Tasks whose data openelm does not
// ship are checked on the hand-written files in test/fixtures/eval-data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { formulaModel } from './golden/eval/formula-model.js';
import { TOL, assertClose } from './tolerances.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { defaultDataDir } from '../src/eval/data-dir.js';
import { PairEncoder } from '../src/eval/encode.js';
import { docArguments } from '../src/eval/evaluator.js';
import { FewshotSampler, fewshotContext } from '../src/eval/fewshot.js';
import { LoglikScorer } from '../src/eval/loglik.js';
import { mcScores } from '../src/eval/metrics.js';
import { crowsScores } from '../src/eval/tasks/crows-pairs.js';
import { rollingWindows } from '../src/eval/rolling.js';
import { pyCountWords, utf8Len } from '../src/core/pystr.js';
import { resolveTask } from '../src/eval/tasks/index.js';
import type { Doc, Task } from '../src/eval/task.js';
import type { OpenELMHFConfig } from '../src/model/config.js';

interface GoldReq { context: string; continuation: string; ctx_ids: number[]; cont_ids: number[]; ll: number; greedy: boolean; }
interface Golden {
  model_config: OpenELMHFConfig;
  weight_probes: Record<string, number[]>;
  cases: { task: string; num_fewshot: number; doc: number; requests: GoldReq[]; data?: 'fixture'; scores?: Record<string, number | string> }[];
  truncation: { max_length: number; requests: GoldReq[] };
  rolling: { text: string; max_length: number; prefix_token: number; windows: { ctx_ids: number[]; cont_ids: number[]; ll: number }[]; loglikelihood: number; words: number; bytes: number };
  prompt_digests: Record<string, { docs: number; requests: number; prompts_sha256: string; ids_sha256?: string; ids_docs?: number; data?: 'fixture' }>;
  fewshot_digests: Record<string, { docs: number; requests: number; prompts_sha256: string; first_context: string; data?: 'fixture' }>;
}

const G = JSON.parse(fs.readFileSync(fileURLToPath(new URL('../../test/golden/eval/loglik.json', import.meta.url)), 'utf8')) as Golden;
const model = formulaModel(G.model_config);
const tokenizer = loadTokenizer();
const enc = new PairEncoder(tokenizer, { bos: true, eotId: 2 });
const DATA = defaultDataDir();
const FIXTURES = fileURLToPath(new URL('../../test/fixtures/eval-data', import.meta.url));
const dataOf = (x: { data?: 'fixture' }): string => (x.data === 'fixture' ? FIXTURES : DATA);

function task1(name: string): Task {
  const ts = resolveTask(name);
  assert.equal(ts.length, 1);
  return ts[0];
}

async function prompts(task: Task, k: number, upTo: number, dir = DATA): Promise<[string, string][][]> {
  const docs = (await task.load(dir, task.evalSplit)).docs;
  const sampler = k > 0 ? new FewshotSampler(task, task.fewshotSplit === task.evalSplit ? docs : (await task.load(dir, task.fewshotSplit!)).docs, 'pool') : null;
  const out: [string, string][][] = [];
  for (let i = 0; i < upTo; i++) out.push(docArguments(task, docs[i] as Doc, fewshotContext(task, docs[i], k, sampler)));
  return out;
}

function sha(parts: string[]): string { return createHash('sha256').update(parts.join('\x1e'), 'utf8').digest('hex'); }

test('the formula model has the golden weights', () => {
  const probe = G.weight_probes['transformer.token_embeddings.weight'];
  const emb = model.weights.embed.data as Float32Array;
  assert.deepEqual(Array.from(emb.subarray(0, 4)), probe);
});

test('per-item prompts, token ids, log-likelihoods and scores match the reference for every task format', async () => {
  const scorer = new LoglikScorer(model, { batchSize: 3 });
  for (const c of G.cases) {
    const task = task1(c.task);
    const dir = dataOf(c);
    const args = (await prompts(task, c.num_fewshot, c.doc + 1, dir))[c.doc];
    assert.deepEqual(args, c.requests.map((r) => [r.context, r.continuation]), `${c.task} k=${c.num_fewshot} doc ${c.doc}: prompt`);
    const reqs = args.map(([x, y]) => enc.encode(x, y));
    reqs.forEach((r, i) => {
      assert.deepEqual(r.ctx, c.requests[i].ctx_ids, `${c.task} doc ${c.doc} request ${i}: context ids`);
      assert.deepEqual(r.cont, c.requests[i].cont_ids, `${c.task} doc ${c.doc} request ${i}: continuation ids`);
    });
    const res = await scorer.score(reqs);
    assertClose(res.map((r) => r.ll), c.requests.map((r) => r.ll), TOL.loglik, `${c.task} k=${c.num_fewshot} doc ${c.doc}`);
    assert.deepEqual(res.map((r) => r.greedy), c.requests.map((r) => r.greedy));
    if (c.scores) await checkScores(task, c, res.map((r) => r.ll), dir);
  }
  assert.ok(G.cases.filter((c) => c.scores).length >= 20, 'the reference scored the LLM-Adapters and CrowS-Pairs cases');
});

/** The per-document scores, from our log-likelihoods, equal the reference's from its own. */
async function checkScores(task: Task, c: Golden['cases'][number], lls: number[], dir: string): Promise<void> {
  const doc = (await task.load(dir, task.evalSplit)).docs[c.doc];
  const s = c.scores!;
  if (task.name.startsWith('llmadapters_')) {
    const choices = task.docToChoice(doc);
    const word = (i: number) => choices[i].split(' ').at(-1);
    const m = mcScores(lls, choices, task.docToTarget(doc) as number);
    assert.equal(word(m.pred), s.pred, `${c.task} doc ${c.doc}: CoreNet's prediction`);
    assert.equal(word(m.pred_norm), s.pred_norm, `${c.task} doc ${c.doc}: CoreNet's length-normalized prediction`);
    assert.equal(m.acc, +(s.pred === s.answer));
    assert.equal(m.acc_norm, +(s.pred_norm === s.answer));
  } else {
    const m = crowsScores(lls);
    assert.equal(m.pct_stereotype, s.pct_stereotype, `${c.task} doc ${c.doc}: pct_stereotype`);
    assertClose([m.likelihood_diff], [s.likelihood_diff as number], TOL.loglik, `${c.task} doc ${c.doc}: likelihood_diff`);
  }
}


test('prompts longer than max_length are cut from the left like lm-eval', async () => {
  const t = G.truncation;
  const res = await new LoglikScorer(model, { maxLength: t.max_length }).score(t.requests.map((r) => ({ ctx: r.ctx_ids, cont: r.cont_ids })));
  assertClose(res.map((r) => r.ll), t.requests.map((r) => r.ll), TOL.loglik, 'truncated boolq');
});

test('rolling log-likelihood windows and totals match lm-eval loglikelihood_rolling', async () => {
  const R = G.rolling;
  const ids = tokenizer.encode(R.text, { bos: true });
  const wins = rollingWindows(ids, R.prefix_token, R.max_length);
  assert.deepEqual(wins.map((w) => [w.ctx, w.cont]), R.windows.map((w) => [w.ctx_ids, w.cont_ids]));
  const res = await new LoglikScorer(model, { maxLength: R.max_length, batchSize: 2 }).score(wins);
  assertClose(res.map((r) => r.ll), R.windows.map((w) => w.ll), TOL.loglik, 'rolling windows');
  assert.equal(pyCountWords(R.text), R.words);
  assert.equal(utf8Len(R.text), R.bytes);
});

test('zero-shot prompts of every shipped document match the Python construction', async () => {
  for (const [name, d] of Object.entries(G.prompt_digests)) {
    const task = task1(name);
    const docs = (await task.load(dataOf(d), task.evalSplit)).docs;
    assert.equal(docs.length, d.docs, `${name}: document count`);
    const strings: string[] = [];
    const ids: string[] = [];
    docs.forEach((doc, j) => {
      for (const [c, x] of docArguments(task, doc, fewshotContext(task, doc, 0, null))) {
        strings.push(c + '\x1f' + x);
        if (d.ids_sha256 && j < d.ids_docs!) { const e = enc.encode(c, x); ids.push(e.ctx.join(',') + '|' + e.cont.join(',')); }
      }
    });
    assert.equal(strings.length, d.requests, `${name}: request count`);
    assert.equal(sha(strings), d.prompts_sha256, `${name}: prompt digest`);
    if (d.ids_sha256) assert.equal(sha(ids), d.ids_sha256, `${name}: token id digest`);
  }
});

test('few-shot prompts follow lm-eval\'s random.Random(1234) sampler draw for draw', async () => {
  for (const [key, d] of Object.entries(G.fewshot_digests)) {
    const [name, k] = key.split(':');
    const args = await prompts(task1(name), Number(k), d.docs, dataOf(d));
    const strings = args.flat().map(([c, x]) => c + '\x1f' + x);
    assert.equal(args[0][0][0], d.first_context, `${key}: first context`);
    assert.equal(strings.length, d.requests);
    assert.equal(sha(strings), d.prompts_sha256, `${key}: digest`);
  }
});
