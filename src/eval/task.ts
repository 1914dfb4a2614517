// What a benchmark task is, in lm-evaluation-harness terms (a ConfigurableTask's YAML fields), so the
// request building, few-shot sampling and metrics can follow lm-eval's code paths exactly.

/** A task document after loading (task-specific fields; opaque to the generic code). */
export type Doc = Readonly<Record<string, unknown>>;

export type OutputType = 'multiple_choice' | 'loglikelihood';

/**
 * Metrics lm-eval reports (acc for truthfulqa_mc2 is the mc2 probability mass, as lm-eval names it;
 * CrowS-Pairs reports likelihood_diff and pct_stereotype).
 */
export type MetricName = 'acc' | 'acc_norm' | 'perplexity' | 'likelihood_diff' | 'pct_stereotype';

export interface LoadedSplit {
  docs: Doc[];
  /** Where the docs came from, e.g. "data/eval/piqa/valid.jsonl (original PIQA release)". */
  source: string;
  /** Caveats that change scores versus lm-eval (subset, preprocessing differences). */
  notes: string[];
}

export interface Task {
  name: string;
  /** What the results table shows as the task's version (default: the lm-eval commit). */
  version?: string;
  outputType: OutputType;
  metrics: MetricName[];
  /** Split that is scored (lm-eval: test if the task has one, else validation). */
  evalSplit: string;
  /** Split few-shot examples are drawn from, or null when the task has no few-shot pool. */
  fewshotSplit: string | null;
  sampler: 'default' | 'first_n';
  /**
   * lm-eval's ContextSampler draws num_fewshot + 1 docs whenever the config's fewshot_split equals its
   * test_split, which includes the case where both are unset (boolq, hellaswag, piqa, winogrande).
   * The extra draw changes which examples later docs get, so it is reproduced.
   */
  drawExtraShot: boolean;
  /** A num_fewshot fixed by the task's YAML (truthfulqa: 0); --num-fewshot does not override it. */
  fixedNumFewshot?: number;
  /** Group for aggregated scores (the MMLU categories). */
  groups?: string[];
  /** The prepended description (MMLU), else ''. */
  description(doc: Doc): string;
  /** doc_to_text: a string, or for multiple-input tasks (WinoGrande) the index of the gold choice. */
  docToText(doc: Doc): string | number;
  /** doc_to_target: an index into the choices, or the target string (loglikelihood tasks). */
  docToTarget(doc: Doc): number | string;
  docToChoice(doc: Doc): string[];
  /** True when the choices are alternative contexts and the target is the shared continuation. */
  multipleInput: boolean;
  /**
   * What joins a question and its answer, in requests and in few-shot examples (lm-eval's
   * target_delimiter): ' ' unless the task says otherwise (CrowS-Pairs and the LLM-Adapters tasks: '').
   */
  targetDelimiter?: string;
  /** Custom per-doc metric instead of acc/acc_norm (truthfulqa_mc2). */
  processResults?: (doc: Doc, lls: number[]) => Record<string, number>;
  load(dataDir: string, split: string): Promise<LoadedSplit>;
}

export const TARGET_DELIMITER = ' ';

export function targetDelimiter(task: Task): string { return task.targetDelimiter ?? TARGET_DELIMITER; }
export const FEWSHOT_DELIMITER = '\n\n';

export function str(doc: Doc, key: string, where = 'document'): string {
  const v = doc[key];
  if (typeof v !== 'string') throw new Error(`${where}: field "${key}" is not a string`);
  return v;
}
