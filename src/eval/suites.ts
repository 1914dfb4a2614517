// The evaluation suites of the OpenELM paper (Table 3), run as published: which tasks, at how many
// shots, and which metric each contributes to the suite's average; plus the LLM-Adapters commonsense
// suite of the paper's PEFT results. `openelm eval --suite NAME` runs one.

import { LLM360, OPEN_LLM, ZERO_SHOT, type PaperEntry } from './paper-results.js';
import type { TaskResult } from './evaluator.js';
import { LLM_ADAPTERS_TASKS } from './tasks/llm-adapters.js';

export interface SuiteEntry { task: string; shots: number; metric: string; }

export interface Suite { name: string; title: string; entries: SuiteEntry[]; }

const fromPaper = (e: PaperEntry[]): SuiteEntry[] => e.map(({ task, shots, metric }) => ({ task, shots, metric }));

export const SUITES: Record<string, Suite> = {
  'zero-shot': { name: 'zero-shot', title: 'standard zero-shot (paper Table 3a)', entries: fromPaper(ZERO_SHOT) },
  openllm: { name: 'openllm', title: 'OpenLLM leaderboard (paper Table 3b)', entries: fromPaper(OPEN_LLM) },
  llm360: { name: 'llm360', title: 'LLM360 (paper Table 3c)', entries: fromPaper(LLM360) },
  'llm-adapters': {
    name: 'llm-adapters', title: 'LLM-Adapters commonsense, scored as CoreNet\'s PEFT evaluation',
    entries: LLM_ADAPTERS_TASKS.map((t) => ({ task: t.task, shots: 0, metric: 'acc' })),
  },
};

export const SUITE_NAMES = Object.keys(SUITES);

export interface SuiteSummary {
  suite: string;
  title: string;
  tasks: { task: string; shots: number; metric: string; value: number | null; skipped?: string }[];
  /** Mean of the entries' metrics (as the paper averages them), only when every task ran. */
  average: number | null;
  complete: boolean;
}

/** The suite's rows from an evaluation's results; `skipped` maps a task to why it did not run. */
export function suiteSummary(suite: Suite, results: Record<string, TaskResult>, skipped: Record<string, string>): SuiteSummary {
  const tasks = suite.entries.map(({ task, shots, metric }) => {
    const r = results[task];
    const v = r && r.num_fewshot === shots ? r[metric] : undefined;
    return { task, shots, metric, value: typeof v === 'number' ? v : null, ...(skipped[task] ? { skipped: skipped[task] } : {}) };
  });
  const complete = tasks.every((t) => t.value !== null);
  const average = complete ? tasks.reduce((a, t) => a + t.value!, 0) / tasks.length : null;
  return { suite: suite.name, title: suite.title, tasks, average, complete };
}
