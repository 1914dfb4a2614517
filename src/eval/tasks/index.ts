// The task registry: names accepted by `openelm eval --tasks`, and the groups lm-eval aggregates.

import { OpenELMError } from '../../core/errors.js';
import type { Task } from '../task.js';
import { arcChallenge, arcEasy } from './arc.js';
import { boolq } from './boolq.js';
import { crowsPairsEnglish } from './crows-pairs.js';
import { hellaswag } from './hellaswag.js';
import { lambadaOpenai } from './lambada.js';
import { llmAdaptersTasks } from './llm-adapters.js';
import { MMLU_GROUPS, MMLU_SUBJECTS, mmluSubject } from './mmlu.js';
import { openbookqa } from './openbookqa.js';
import { piqa } from './piqa.js';
import { race } from './race.js';
import { sciq } from './sciq.js';
import { truthfulqaMc1, truthfulqaMc2 } from './truthfulqa.js';
import { winogrande } from './winogrande.js';

const SINGLE: Record<string, () => Task> = {
  arc_easy: arcEasy, arc_challenge: arcChallenge, boolq, hellaswag, piqa, sciq, winogrande,
  truthfulqa_mc1: truthfulqaMc1, truthfulqa_mc2: truthfulqaMc2, openbookqa, lambada_openai: lambadaOpenai,
  crows_pairs_english: crowsPairsEnglish, race,
  ...llmAdaptersTasks,
};

/** Groups: name -> member tasks (size-weighted means, as lm-eval's group scores). */
export const GROUPS: Record<string, string[]> = {
  mmlu: MMLU_SUBJECTS.map((s) => `mmlu_${s}`),
  ...Object.fromEntries(Object.entries(MMLU_GROUPS).map(([g, subs]) => [`mmlu_${g}`, subs.map((s) => `mmlu_${s}`)])),
};

export const TASK_NAMES: string[] = [...Object.keys(SINGLE), 'mmlu'];

/** Tasks for one requested name: a single task, or every member of a group (mmlu, mmlu_stem, ...). */
export function resolveTask(name: string): Task[] {
  if (Object.hasOwn(SINGLE, name)) return [SINGLE[name]()];
  if (Object.hasOwn(GROUPS, name)) return GROUPS[name].map((t) => mmluSubject(t.slice('mmlu_'.length)));
  if (name.startsWith('mmlu_') && MMLU_SUBJECTS.includes(name.slice(5))) return [mmluSubject(name.slice(5))];
  throw new OpenELMError('usage', `unknown task "${name}"; known tasks: ${TASK_NAMES.join(', ')} (and mmlu_<subject>, mmlu_stem, mmlu_humanities, mmlu_social_sciences, mmlu_other)`);
}
