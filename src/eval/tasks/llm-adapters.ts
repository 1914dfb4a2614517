// The 8 LLM-Adapters commonsense test sets (boolq, piqa, social_i_qa, hellaswag, winogrande,
// ARC-Challenge, ARC-Easy, openbookqa), scored as Apple's CoreNet scores its PEFT runs
// (corenet/cli/main_eval_llmadapters.py, multiple-choice mode): the Alpaca-style prompt around the
// record's instruction, one candidate "the correct answer is <x>" per possible answer with no
// delimiter, log-likelihoods as lm-eval's HFLM computes them, acc = argmax of the log-likelihoods and
// acc_norm = argmax of log-likelihood / characters of the candidate. CoreNet shuffles each test set
// with random.seed(83652) before applying its limit, so the documents are served in that order and
// --limit N scores the same N documents CoreNet would. docs/evaluation.md has the details.

import * as path from 'node:path';
import { dataError, existing, readJson } from '../files.js';
import { PyRandom } from '../pyrandom.js';
import type { Doc, LoadedSplit, Task } from '../task.js';
import { getStr, loaded, missingData, type Rec } from './common.js';

/** LLM-Adapters at the commit CoreNet's README pins. */
export const LLM_ADAPTERS_COMMIT = '816657208af4db747803f87ba40a4c71383fed7a';
export const LLM_ADAPTERS_SHUFFLE_SEED = 83652;

/**
 * LLM-Adapters' prompt for a record without input, with an empty response, exactly as CoreNet's
 * commonsense_170k.generate_prompt_and_response writes it (two spaces after "request.", 16-space
 * indents, a line of 16 spaces between the instruction and "### Response:").
 */
export function llmAdaptersPrompt(instruction: string): string {
  const pad = ' '.repeat(16);
  return 'Below is an instruction that describes a task. Write a response that appropriately completes the request.  \n\n' +
    `${pad}### Instruction:\n${pad}${instruction}\n${pad}\n${pad}### Response:\n${pad}`;
}

/**
 * The possible answers CoreNet derives from the instruction's last line: true/false, or
 * {answer|ending|option|solution}1..N with N the line's last digit (a later word wins, as in its loop).
 */
export function llmAdaptersAnswers(instruction: string): string[] {
  const last = instruction.split('\n').at(-1)!;
  // re.match anchors at the start; Python's "." is anything but \n (JavaScript's also stops at \r).
  if (/^[^\n]*Answer format: true\/false/.test(last)) return ['true', 'false'];
  let out: string[] = [];
  for (const word of ['answer', 'ending', 'option', 'solution']) {
    if (new RegExp(`^[^\\n]*Answer format: [^\\n]*${word}(\\d)$`).test(last)) {
      const n = Number(last.at(-1));
      out = Array.from({ length: n }, (_, i) => `${word}${i + 1}`);
    }
  }
  return out;
}

export const llmAdaptersCandidate = (answer: string): string => `the correct answer is ${answer}`;

interface LaDoc { instruction: string; answer: string; answers: string[]; gold: number; }

function toDoc(rec: Rec, where: string): LaDoc {
  const instruction = getStr(rec, 'instruction', where);
  const answer = getStr(rec, 'answer', where);
  const answers = llmAdaptersAnswers(instruction);
  if (!answers.length) throw dataError(`${where}: the instruction's last line names no answer format (expected "Answer format: true/false" or "...answer1/.../answerN")`);
  const gold = answers.indexOf(answer);
  if (gold < 0) throw dataError(`${where}: answer "${answer}" is not one of ${answers.join(', ')}`);
  return { instruction, answer, answers, gold };
}

interface Spec { task: string; folder: string; }

/** Our task names and LLM-Adapters' dataset folder names (dataset/<folder>/test.json). */
export const LLM_ADAPTERS_TASKS: Spec[] = [
  { task: 'llmadapters_boolq', folder: 'boolq' },
  { task: 'llmadapters_piqa', folder: 'piqa' },
  { task: 'llmadapters_social_i_qa', folder: 'social_i_qa' },
  { task: 'llmadapters_hellaswag', folder: 'hellaswag' },
  { task: 'llmadapters_winogrande', folder: 'winogrande' },
  { task: 'llmadapters_arc_challenge', folder: 'ARC-Challenge' },
  { task: 'llmadapters_arc_easy', folder: 'ARC-Easy' },
  { task: 'llmadapters_openbookqa', folder: 'openbookqa' },
];

/**
 * Where a test set may be: openelm's layout (llm_adapters/<folder>/test.json), LLM-Adapters' own
 * dataset/ folder passed as --data-dir (<folder>/test.json), and for ARC the copy the lm-eval ARC
 * tasks read (arc_easy/ARC-Easy.test.json), which is the same file.
 */
function candidates(dataDir: string, folder: string): string[] {
  const out = [path.join(dataDir, 'llm_adapters', folder, 'test.json'), path.join(dataDir, folder, 'test.json')];
  if (folder.startsWith('ARC-')) out.push(path.join(dataDir, folder === 'ARC-Easy' ? 'arc_easy' : 'arc_challenge', `${folder}.test.json`));
  return out;
}

function make({ task, folder }: Spec): Task {
  async function load(dataDir: string, split: string): Promise<LoadedSplit> {
    if (split !== 'test') throw dataError(`${task} has only a test split`);
    const file = candidates(dataDir, folder).map(existing).find((f) => f);
    if (!file) {
      return missingData(task, split, dataDir, {
        url: `https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Adapters/${LLM_ADAPTERS_COMMIT}/dataset/${folder}/test.json`,
        dest: `llm_adapters/${folder}/test.json`,
      });
    }
    const arr = readJson(file);
    if (!Array.isArray(arr)) throw dataError(`${file}: expected a JSON array of LLM-Adapters records`);
    const docs: Doc[] = arr.map((rec: unknown, i) => {
      const where = `${file} record ${i + 1}`;
      if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) throw dataError(`${where} is not a JSON object`);
      return { ...toDoc(rec as Rec, where) };
    });
    new PyRandom(LLM_ADAPTERS_SHUFFLE_SEED).shuffle(docs);
    return loaded(docs, `${file} (LLM-Adapters ${folder} test, in CoreNet's shuffled order)`);
  }
  return {
    name: task, version: 'corenet', outputType: 'multiple_choice', metrics: ['acc', 'acc_norm'],
    evalSplit: 'test', fewshotSplit: null, sampler: 'default', drawExtraShot: false, fixedNumFewshot: 0,
    multipleInput: false, targetDelimiter: '',
    description: () => '',
    docToText: (d) => llmAdaptersPrompt((d as unknown as LaDoc).instruction),
    docToChoice: (d) => (d as unknown as LaDoc).answers.map(llmAdaptersCandidate),
    docToTarget: (d) => (d as unknown as LaDoc).gold,
    load,
  };
}

export const llmAdaptersTasks: Record<string, () => Task> = Object.fromEntries(LLM_ADAPTERS_TASKS.map((s) => [s.task, () => make(s)]));
