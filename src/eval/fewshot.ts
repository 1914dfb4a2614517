// Few-shot prompts as lm-eval builds them (ConfigurableTask.fewshot_context + ContextSampler):
// description, then k solved examples joined by "\n\n" plus a trailing "\n\n", then the question.
// The default sampler is one random.Random(1234) per task, drawing in document order, so a doc's
// examples depend on the docs before it (and --limit keeps the first docs' prompts unchanged).

import { OpenELMError } from '../core/errors.js';
import { PyRandom } from './pyrandom.js';
import { FEWSHOT_DELIMITER, targetDelimiter, type Doc, type Task } from './task.js';

export const FEWSHOT_SEED = 1234;

/** "doc_to_text + target delimiter + gold answer" for one solved example. */
export function exampleText(task: Task, doc: Doc): string {
  const text = task.docToText(doc);
  const q = typeof text === 'number' ? task.docToChoice(doc)[text] : text;
  const t = task.docToTarget(doc);
  const a = typeof t === 'number' && task.outputType === 'multiple_choice' ? String(task.docToChoice(doc)[t]) : String(t);
  return q + targetDelimiter(task) + a;
}

function sameDoc(a: Doc, b: Doc): boolean { return a === b || JSON.stringify(a) === JSON.stringify(b); }

export class FewshotSampler {
  private readonly rnd = new PyRandom(FEWSHOT_SEED);
  constructor(private readonly task: Task, private readonly pool: Doc[], private readonly poolName: string) {}

  /** Draws needed for k examples (k + 1 where lm-eval draws an extra one). */
  draws(k: number): number { return this.task.drawExtraShot ? k + 1 : k; }

  /** Throws the one-line error lm-eval would hit (sample larger than population) before any scoring. */
  check(k: number): void {
    const n = this.draws(k);
    if (n > this.pool.length) {
      throw new OpenELMError('usage', `${this.task.name}: --num-fewshot ${k} needs ${n} examples but the few-shot split (${this.poolName}) has ${this.pool.length}`);
    }
  }

  /** The solved examples block for `doc` (ends with the few-shot delimiter). */
  context(doc: Doc, k: number): string {
    const n = this.draws(k);
    const drawn = this.task.sampler === 'first_n' ? this.pool.slice(0, n) : this.rnd.sample(this.pool, n);
    const chosen = drawn.filter((d) => !sameDoc(d, doc)).slice(0, k);
    return chosen.map((d) => exampleText(this.task, d)).join(FEWSHOT_DELIMITER) + FEWSHOT_DELIMITER;
  }
}

/** The full context string lm-eval's fewshot_context returns for `doc`. */
export function fewshotContext(task: Task, doc: Doc, k: number, sampler: FewshotSampler | null): string {
  const description = task.description(doc);
  let labeled = description;
  if (k > 0) {
    if (!sampler) throw new OpenELMError('usage', `${task.name} has no few-shot split`);
    labeled = description + sampler.context(doc, k);
  }
  if (task.multipleInput) return labeled;
  const example = task.docToText(doc);
  return labeled + (typeof example === 'number' ? task.docToChoice(doc)[example] : example);
}
