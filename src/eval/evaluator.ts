// `openelm eval` end to end: load each task's documents, build lm-eval's requests (few-shot
// contexts, choices, partial scoring), encode them, score them with the batched prefix-cached scorer,
// and turn the log-likelihoods into lm-eval's metrics. All data is loaded and every prompt built
// before the first forward pass, so missing files or bad lines fail fast.
//
// Data folders are searched in order, split by split: a user's --data-dir first, then the bundled
// data, so a folder holding only the missing few-shot file completes the bundled evaluation set.

import * as path from 'node:path';
import { OpenELMError } from '../core/errors.js';
import { defaultDataDir } from './data-dir.js';
import type { OpenELM } from '../model/openelm.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { PairEncoder } from './encode.js';
import { FewshotSampler, fewshotContext } from './fewshot.js';
import { LoglikScorer, type LLRequest } from './loglik.js';
import { mcScores, mean, meanStderr, perplexity, pooledStderr, weightedMean } from './metrics.js';
import { Progress } from './progress.js';
import { targetDelimiter, type Doc, type Task } from './task.js';
import { MissingDataError } from './tasks/common.js';
import { GROUPS, resolveTask } from './tasks/index.js';

/** lm-eval commit whose task definitions and model code this follows (OpenELM's evaluation). */
export const LM_EVAL_COMMIT = 'dc90fecc8ba31b682d30e096980f678c18ddc435';

export interface TaskRequest { name: string; numFewshot?: number; }

export interface EvalOptions {
  tasks: TaskRequest[];
  /** Shots for tasks without their own (default 0). */
  numFewshot?: number;
  /** First N documents per task, or a fraction (< 1) of them, as lm-eval's --limit. */
  limit?: number;
  /** Data folders, searched in order for each split (e.g. [--data-dir, bundled data]). */
  dataDir: string | string[];
  /**
   * Leave out a requested task whose data is missing (recording why in `skipped`) instead of
   * failing; suites use this. Other data errors still fail.
   */
  skipMissing?: boolean;
  batchSize?: number;
  maxLength?: number;
  /** Prepend BOS when encoding (OpenELM's runs: add_bos_token=True). */
  bos?: boolean;
  /** Receives one record per document when set. */
  logSample?: (rec: Record<string, unknown>) => void;
  /** stderr progress (null: silent). */
  progressStream?: NodeJS.WriteStream | null;
}

export interface TaskResult {
  [metric: string]: number | string | string[] | undefined;
  n: number;
  num_fewshot: number;
}

export interface EvalOutput {
  results: Record<string, TaskResult>;
  /** Per task: where the documents came from, and caveats. */
  sources: Record<string, { source: string; notes: string[] }>;
  /** Requested tasks left out for missing data (skipMissing), with the one-line fetch instructions. */
  skipped: Record<string, string>;
  timing: { seconds: number; docs: number; requests: number; docs_per_s: number; requests_per_s: number };
}

interface Prepared {
  task: Task;
  k: number;
  docs: Doc[];
  /** Per doc: its [context, continuation] strings; their encoded requests follow in order in `reqs`. */
  args: [string, string][][];
  reqs: LLRequest[];
  source: string;
  notes: string[];
}

function applyLimit(n: number, limit: number | undefined): number {
  if (limit === undefined) return n;
  return limit < 1 ? Math.ceil(n * limit) : Math.min(n, Math.floor(limit));
}

/** lm-eval construct_requests for one doc. */
export function docArguments(task: Task, doc: Doc, ctx: string): [string, string][] {
  if (task.outputType === 'loglikelihood') return [[ctx, String(task.docToTarget(doc))]];
  const choices = task.docToChoice(doc);
  const delim = targetDelimiter(task);
  if (task.multipleInput) {
    const cont = String(task.docToTarget(doc));
    return choices.map((c) => [ctx + c, delim + cont]);
  }
  return choices.map((c) => [ctx, delim + c]);
}

/** Gold index of a multiple-choice doc (multiple-input tasks keep it in doc_to_text). */
export function goldIndex(task: Task, doc: Doc): number {
  const g = task.multipleInput ? task.docToText(doc) : task.docToTarget(doc);
  if (typeof g !== 'number') throw new OpenELMError('eval', `${task.name}: gold is not an index`);
  return g;
}

function dataDirs(opts: EvalOptions): string[] {
  return Array.isArray(opts.dataDir) ? opts.dataDir : [opts.dataDir];
}

/** One split from the first data folder that has it; else where to get it, naming the user's folder. */
async function loadSplit(task: Task, split: string, opts: EvalOptions, role?: string) {
  const dirs = dataDirs(opts);
  let missing: MissingDataError | null = null;
  for (const dir of dirs) {
    try {
      return await task.load(dir, split);
    } catch (e) {
      if (!(e instanceof MissingDataError)) throw e;
      missing ??= e;
    }
  }
  const bundled = path.resolve(defaultDataDir());
  const userDir = dirs.find((d) => path.resolve(d) !== bundled);
  throw new MissingDataError(missing!.task, missing!.split, dirs, missing!.hint, userDir, role);
}

async function prepare(task: Task, k: number, opts: EvalOptions, enc: PairEncoder): Promise<Prepared> {
  const split = await loadSplit(task, task.evalSplit, opts);
  const docs = split.docs.slice(0, applyLimit(split.docs.length, opts.limit));
  let sampler: FewshotSampler | null = null;
  const notes = [...split.notes];
  if (k > 0) {
    if (!task.fewshotSplit) throw new OpenELMError('usage', `${task.name} has no few-shot split; use --num-fewshot 0`);
    const pool = task.fewshotSplit === task.evalSplit ? split : await loadSplit(task, task.fewshotSplit, opts, `the ${k}-shot examples`);
    sampler = new FewshotSampler(task, pool.docs, `${task.fewshotSplit}: ${pool.source}`);
    sampler.check(k);
    notes.push(...pool.notes.filter((n) => !notes.includes(n)));
  }
  const args: [string, string][][] = [];
  const reqs: LLRequest[] = [];
  for (const doc of docs) {
    const ctx = fewshotContext(task, doc, k, sampler);
    const a = docArguments(task, doc, ctx);
    args.push(a);
    for (const [c, x] of a) reqs.push(enc.encode(c, x));
  }
  return { task, k, docs, args, reqs, source: split.source, notes };
}

function taskResult(p: Prepared, lls: number[][], greedy: boolean[][], opts: EvalOptions): TaskResult {
  const { task } = p;
  const per: Record<string, number[]> = {};
  const push = (m: string, v: number) => { per[m] ??= []; per[m].push(v); };
  p.docs.forEach((doc, i) => {
    let metrics: Record<string, number>;
    if (task.outputType === 'loglikelihood') {
      metrics = { perplexity: lls[i][0], acc: +greedy[i][0] };
    } else if (task.processResults) {
      metrics = task.processResults(doc, lls[i]);
    } else {
      const s = mcScores(lls[i], task.docToChoice(doc), goldIndex(task, doc));
      metrics = { acc: s.acc };
      if (task.metrics.includes('acc_norm')) { metrics.acc_norm = s.acc_norm; metrics.acc_bytes = s.acc_bytes; }
    }
    for (const [m, v] of Object.entries(metrics)) push(m, v);
    if (opts.logSample) {
      const a = p.args[i];
      opts.logSample({
        task: task.name, doc_id: i, doc,
        target: task.outputType === 'loglikelihood' ? task.docToTarget(doc) : goldIndex(task, doc),
        ...(task.multipleInput ? { contexts: a.map((x) => x[0]), continuation: a[0][1] } : { context: a[0][0], continuations: a.map((x) => x[1]) }),
        ...(task.outputType === 'multiple_choice' ? { choices: task.docToChoice(doc) } : {}),
        loglikelihoods: lls[i], is_greedy: greedy[i],
        ...metrics,
      });
    }
  });
  const r: TaskResult = { n: p.docs.length, num_fewshot: p.k, ...(task.version ? { version: task.version } : {}) };
  for (const [m, vs] of Object.entries(per)) {
    if (m === 'perplexity') { r.perplexity = perplexity(vs); continue; }
    r[m] = mean(vs);
    r[`${m}_stderr`] = meanStderr(vs);
  }
  return r;
}

function groupResults(results: Record<string, TaskResult>, requested: Set<string>): Record<string, TaskResult> {
  const out: Record<string, TaskResult> = {};
  for (const [g, members] of Object.entries(GROUPS)) {
    if (!members.every((m) => results[m])) continue;
    // Report a subgroup only when it or its parent was asked for (mmlu -> all four categories).
    if (!requested.has(g) && !(g.startsWith('mmlu_') && requested.has('mmlu'))) continue;
    const rs = members.map((m) => results[m]);
    const sizes = rs.map((r) => r.n);
    const r: TaskResult = { n: sizes.reduce((a, b) => a + b, 0), num_fewshot: rs[0].num_fewshot };
    r.acc = weightedMean(rs.map((x) => x.acc as number), sizes);
    r.acc_stderr = pooledStderr(rs.map((x) => x.acc_stderr as number), sizes);
    out[g] = r;
  }
  return out;
}

export async function evaluate(model: OpenELM, tokenizer: Tokenizer, opts: EvalOptions): Promise<EvalOutput> {
  const enc = new PairEncoder(tokenizer, { bos: opts.bos ?? true, eotId: model.config.eosTokenId });
  const scorer = new LoglikScorer(model, { batchSize: opts.batchSize, maxLength: opts.maxLength });
  const stream = opts.progressStream === undefined ? process.stderr : opts.progressStream;
  const requested = new Set(opts.tasks.map((t) => t.name));
  // Resolve every name first so an unknown task fails before any data is read.
  const plan: { request: string; tasks: { task: Task; k: number }[] }[] = [];
  const seen = new Set<string>();
  for (const t of opts.tasks) {
    const tasks: { task: Task; k: number }[] = [];
    for (const task of resolveTask(t.name)) {
      if (seen.has(task.name)) continue;
      seen.add(task.name);
      tasks.push({ task, k: task.fixedNumFewshot ?? t.numFewshot ?? opts.numFewshot ?? 0 });
    }
    plan.push({ request: t.name, tasks });
  }
  const prepared: Prepared[] = [];
  const skipped: Record<string, string> = {};
  for (const { request, tasks } of plan) {
    // A group (mmlu) runs whole or not at all.
    const part: Prepared[] = [];
    try {
      for (const { task, k } of tasks) part.push(await prepare(task, k, opts, enc));
    } catch (e) {
      if (!(opts.skipMissing && e instanceof MissingDataError)) throw e;
      // Name the group (mmlu), not the subject that happened to be loaded first.
      skipped[request] = e.task === request ? e.message : new MissingDataError(request, e.split, e.searched, e.hint, e.userDir, e.role).message;
      continue;
    }
    prepared.push(...part);
  }
  if (!prepared.length && Object.keys(skipped).length) throw new OpenELMError('data', Object.values(skipped)[0]);

  const results: Record<string, TaskResult> = {};
  const sources: EvalOutput['sources'] = {};
  const t0 = performance.now();
  let docsTotal = 0, reqsTotal = 0;
  try {
    for (const p of prepared) {
      const bar = new Progress(p.task.name, p.docs.length, 'docs', stream);
      // Requests finish in scoring order, not doc order; count a doc when all its requests are done.
      const perDoc = p.args.map((a) => a.length);
      const owner: number[] = [];
      perDoc.forEach((n, d) => { for (let j = 0; j < n; j++) owner.push(d); });
      const res = await scorer.score(p.reqs, (done) => bar.update(Math.floor((done / Math.max(1, p.reqs.length)) * p.docs.length)));
      bar.finish(p.docs.length);
      const lls: number[][] = perDoc.map(() => []), greedy: boolean[][] = perDoc.map(() => []);
      res.forEach((r, i) => { lls[owner[i]].push(r.ll); greedy[owner[i]].push(r.greedy); });
      results[p.task.name] = taskResult(p, lls, greedy, opts);
      sources[p.task.name] = { source: p.source, notes: p.notes };
      docsTotal += p.docs.length;
      reqsTotal += p.reqs.length;
    }
  } finally {
    scorer.dispose();
  }
  Object.assign(results, groupResults(results, requested));
  const seconds = (performance.now() - t0) / 1000;
  return {
    results, sources, skipped,
    timing: { seconds, docs: docsTotal, requests: reqsTotal, docs_per_s: docsTotal / seconds, requests_per_s: reqsTotal / seconds },
  };
}
