import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { JSON_FLAG, MODEL_FLAGS, loadFromFlags, printJson } from '../common.js';
import { OpenELMError, UsageError } from '../../core/errors.js';
import { defaultDataDir } from '../../eval/data-dir.js';
import { evaluate, LM_EVAL_COMMIT, type TaskRequest } from '../../eval/evaluator.js';
import { detectSize, paperScore, paperVariant } from '../../eval/paper-results.js';
import { SUITES, SUITE_NAMES, suiteSummary } from '../../eval/suites.js';
import { resultsTable, suiteTable } from '../../eval/table.js';
import { resolveTask, TASK_NAMES } from '../../eval/tasks/index.js';

export const spec: CommandSpec = {
  name: 'eval',
  summary: 'lm-evaluation-harness-compatible benchmarks (log-likelihood scoring, lm-eval dc90fec semantics)',
  usage: 'openelm eval --model DIR (--tasks arc_challenge:25,hellaswag,mmlu | --suite zero-shot|openllm|llm360|llm-adapters) [--num-fewshot N] [--limit N] [--data-dir D] [--batch-size B] [--log-samples FILE] [--compare-paper] [--json]',
  flags: [
    ...MODEL_FLAGS,
    { name: 'tasks', type: 'string', help: `comma-separated tasks, each optionally name:shots (${TASK_NAMES.join(', ')}, mmlu_<subject>)` },
    { name: 'suite', type: 'string', choices: SUITE_NAMES, help: 'run one of the paper\'s suites with its published shots (zero-shot, openllm, llm360) or the LLM-Adapters commonsense suite; tasks without data are skipped with the file to fetch' },
    { name: 'num-fewshot', type: 'int', help: 'few-shot examples for tasks without name:shots (default 0; not with --suite)', min: 0 },
    { name: 'limit', type: 'float', help: 'score only the first N documents of each task (a value below 1 is a fraction)', min: 0 },
    { name: 'data-dir', type: 'string', help: 'folder with one sub-folder of data per task, searched before the data shipped in data/eval (so it may hold just the files that are missing)' },
    { name: 'batch-size', type: 'int', help: 'contexts scored per forward call', default: 8, min: 1 },
    { name: 'max-length', type: 'int', help: 'window in tokens; longer prompts are cut from the left (default: the model context)', min: 2 },
    { name: 'log-samples', type: 'string', help: 'write one JSON line per document (contexts, choices, log-likelihoods) to this file' },
    { name: 'compare-paper', type: 'bool', help: 'print Apple\'s reported scores for this model size beside ours' },
    { name: 'instruct', type: 'bool', help: 'compare with the -Instruct row (default: when the model name says Instruct)' },
    JSON_FLAG,
  ],
};

export function parseTaskList(s: string): TaskRequest[] {
  const out: TaskRequest[] = [];
  for (const part of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9_]+)(?::(\d+))?$/.exec(part);
    if (!m) throw new UsageError(`--tasks: cannot read "${part}" (expected name or name:shots)`);
    out.push({ name: m[1], numFewshot: m[2] === undefined ? undefined : Number(m[2]) });
  }
  if (!out.length) throw new UsageError('--tasks needs at least one task');
  return out;
}

export async function run(flags: ParsedFlags): Promise<number> {
  const suiteName = get.str(flags, 'suite');
  const taskList = get.str(flags, 'tasks');
  if (suiteName && taskList) throw new UsageError('--suite and --tasks are alternatives; give one');
  if (!suiteName && !taskList) throw new UsageError('give --tasks (e.g. --tasks arc_challenge:25,hellaswag) or --suite (zero-shot, openllm, llm360, llm-adapters)');
  const suite = suiteName ? SUITES[suiteName] : null;
  if (suite && flags['num-fewshot'] !== undefined) throw new UsageError(`--suite ${suite.name} fixes each task's shots; drop --num-fewshot`);
  const tasks = suite ? suite.entries.map((e) => ({ name: e.task, numFewshot: e.shots })) : parseTaskList(taskList!);
  for (const t of tasks) resolveTask(t.name);
  const userDir = get.str(flags, 'data-dir');
  if (userDir !== undefined && !(fs.existsSync(userDir) && fs.statSync(userDir).isDirectory())) throw new OpenELMError('usage', `--data-dir ${userDir} is not a folder`);
  const dataDir = userDir === undefined ? [defaultDataDir()] : [userDir, defaultDataDir()];
  const limit = get.num(flags, 'limit');
  if (limit !== undefined && limit <= 0) throw new UsageError('--limit must be > 0');
  const json = get.bool(flags, 'json');
  const logFile = get.str(flags, 'log-samples');
  let logFd: number | null = null;
  if (logFile) {
    try {
      fs.mkdirSync(path.dirname(path.resolve(logFile)), { recursive: true });
      logFd = fs.openSync(logFile, 'w');
    } catch (e) {
      throw new OpenELMError('usage', `cannot write --log-samples file ${logFile}: ${(e as Error).message}`);
    }
  }
  const loaded = await loadFromFlags(flags);
  const { model, tokenizer, backend } = loaded;
  try {
    const out = await evaluate(model, tokenizer, {
      tasks, numFewshot: get.num(flags, 'num-fewshot'), limit, dataDir, skipMissing: suite !== null,
      batchSize: get.num(flags, 'batch-size'), maxLength: get.num(flags, 'max-length'),
      logSample: logFd === null ? undefined : (rec) => fs.writeSync(logFd!, JSON.stringify(rec) + '\n'),
      progressStream: process.stderr,
    });
    const size = detectSize(model.config);
    const instruct = get.bool(flags, 'instruct') || loaded.isInstruct;
    const variant = get.bool(flags, 'compare-paper') && size ? paperVariant(size, instruct) : null;
    if (variant) {
      for (const [name, r] of Object.entries(out.results)) {
        const p = paperScore(variant, name, r.num_fewshot);
        if (p) { r.paper = p.value / 100; r.paper_metric = p.metric; }
      }
    }
    const notes = Object.entries(out.sources).flatMap(([, s]) => s.notes).filter((n, i, a) => a.indexOf(n) === i);
    const summary = suite ? suiteSummary(suite, out.results, out.skipped) : null;
    if (json) {
      printJson({
        results: out.results,
        ...(summary ? { suite: summary } : {}),
        config: {
          model: get.str(flags, 'model'), model_size: size, paper_variant: variant, tasks: tasks.map((t) => t.name),
          ...(suite ? { suite: suite.name, shots: Object.fromEntries(tasks.map((t) => [t.name, t.numFewshot])) } : {}),
          num_fewshot: get.num(flags, 'num-fewshot') ?? 0, limit: limit ?? null, batch_size: get.num(flags, 'batch-size'),
          max_length: get.num(flags, 'max-length') ?? model.config.maxContextLength, add_bos_token: true,
          data_dirs: dataDir, data_sources: out.sources, skipped: out.skipped, notes, lm_eval_commit: LM_EVAL_COMMIT, dtype: get.str(flags, 'dtype'),
          backend: backend.name, timing: out.timing,
        },
      });
    } else {
      if (get.bool(flags, 'compare-paper') && !size) process.stderr.write(`--compare-paper: ${model.config.numLayers} layers x ${model.config.modelDim} is not one of the released OpenELM sizes; no paper numbers to show\n`);
      process.stdout.write(resultsTable(out.results, variant) + '\n');
      if (summary) process.stdout.write('\n' + suiteTable(summary, variant) + '\n');
      for (const n of notes) process.stdout.write(`note: ${n}\n`);
      for (const m of Object.values(out.skipped)) process.stdout.write(`skipped ${m}\n`);
      process.stdout.write(`${out.timing.docs} docs, ${out.timing.requests} requests in ${out.timing.seconds.toFixed(1)}s (${out.timing.docs_per_s.toFixed(2)} docs/s, ${out.timing.requests_per_s.toFixed(2)} requests/s)\n`);
    }
    return 0;
  } finally {
    if (logFd !== null) fs.closeSync(logFd);
    backend.dispose();
  }
}
