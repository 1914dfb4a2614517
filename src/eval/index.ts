// Evaluation harness (lm-evaluation-harness-compatible): tasks, request building, scoring, metrics.
export { evaluate, docArguments, goldIndex, LM_EVAL_COMMIT, type EvalOptions, type EvalOutput, type TaskResult, type TaskRequest } from './evaluator.js';
export { LoglikScorer, scoreRequests, type LLRequest, type LLResult, type ScoreOptions } from './loglik.js';
export { PairEncoder } from './encode.js';
export { FewshotSampler, fewshotContext, exampleText } from './fewshot.js';
export { rollingWindows, strideWindows } from './rolling.js';
export { mcScores, argmax, mean, meanStderr, perplexity, rollingMetrics } from './metrics.js';
export { PyRandom } from './pyrandom.js';
export { resolveTask, TASK_NAMES, GROUPS } from './tasks/index.js';
export { resultsTable } from './table.js';
export { paperScore, detectSize, paperVariant, ZERO_SHOT, OPEN_LLM, LLM360 } from './paper-results.js';
export { SUITES, suiteSummary, type Suite, type SuiteSummary } from './suites.js';
export { defaultDataDir } from './data-dir.js';
export type { Task, Doc } from './task.js';
