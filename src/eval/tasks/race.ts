// RACE, high-school level (lm-eval race.yaml + preprocess_race.py at dc90fec; dataset EleutherAI/race
// "high", test split): one document per article, whose `problems` field is the repr of a Python list
// of {question, answer, options}. The prompt is "Article: {article}\n\n", then every problem but the
// last with its answer, then the last problem's question; choices are the last problem's four
// options, gold its answer letter; acc only.
//
// dc90fec renders an earlier cloze question (one ending "  _  .") as its last five characters plus
// the answer, not the question up to the blank: `problem["question"][-5:]` where later lm-eval has
// `[:-5]`. That is what produced the published numbers, so it is kept.

import { dataError, hfSplitFiles, readRecords } from '../files.js';
import { parsePyLiteral, type PyValue } from '../pyliteral.js';
import type { Doc, LoadedSplit, Task } from '../task.js';
import { getStr, loaded, missingData, taskDirs, type Rec } from './common.js';

interface Problem { question: string; answer: string; options: string[]; }
interface RaceDoc { article: string; problems: Problem[]; }

const LETTERS = ['A', 'B', 'C', 'D'];

function toProblem(v: PyValue, where: string): Problem {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw dataError(`${where}: each problem must be a dict`);
  const { question, answer, options } = v as Record<string, PyValue>;
  if (typeof question !== 'string') throw dataError(`${where}: a problem has no "question" string`);
  if (typeof answer !== 'string' || !LETTERS.includes(answer)) throw dataError(`${where}: a problem's answer must be one of A-D, got ${JSON.stringify(answer)}`);
  if (!Array.isArray(options) || options.length < 4 || !options.every((o) => typeof o === 'string')) throw dataError(`${where}: a problem needs 4 string options`);
  return { question, answer, options: options as string[] };
}

function toDoc(rec: Rec, where: string): RaceDoc {
  const article = getStr(rec, 'article', where);
  const raw = rec['problems'];
  // The HF dataset stores the list as its Python repr; a JSON list of dicts is accepted too.
  const list = typeof raw === 'string' ? parsePyLiteral(raw, `${where} problems`) : (raw as PyValue);
  if (!Array.isArray(list) || list.length === 0) throw dataError(`${where}: "problems" must be a non-empty list`);
  return { article, problems: list.map((p) => toProblem(p, where)) };
}

const FOLDERS = ['race'];

async function load(dataDir: string, split: string): Promise<LoadedSplit> {
  for (const dir of taskDirs(dataDir, FOLDERS)) {
    const files = hfSplitFiles(dir, split, ['high']);
    if (files.length) {
      const docs: Doc[] = [];
      for (const f of files) for (const { rec, where } of await readRecords(f)) docs.push({ ...toDoc(rec, where) });
      return loaded(docs, `${files.join(', ')} (HF EleutherAI/race high)`);
    }
  }
  return missingData('race', split, dataDir, {
    url: `https://huggingface.co/datasets/EleutherAI/race/resolve/refs%2Fconvert%2Fparquet/high/${split}/0000.parquet`,
    dest: `race/${split}.parquet`,
    why: 'RACE may be used for non-commercial research only, so openelm does not ship it',
  });
}

/** Python slicing on code points, as `s[a:]` / `s[:b]` with negative indices. */
function pySliceFrom(s: string, start: number): string { return Array.from(s).slice(start).join(''); }

function answerOption(p: Problem): string { return p.options[LETTERS.indexOf(p.answer)]; }

/** dc90fec's preprocess_race.doc_to_text. */
export function raceText(d: RaceDoc): string {
  let text = 'Article: ' + d.article + '\n\n';
  for (const p of d.problems.slice(0, -1)) {
    if (pySliceFrom(p.question, -6) === '  _  .') text += pySliceFrom(p.question, -5) + answerOption(p) + '\n';
    else text += 'Question: ' + p.question + '\n' + 'Answer: ' + answerOption(p) + '\n';
  }
  return text + d.problems[d.problems.length - 1].question;
}

export const race = (): Task => ({
  name: 'race', outputType: 'multiple_choice', metrics: ['acc'],
  evalSplit: 'test', fewshotSplit: null, sampler: 'default', drawExtraShot: false,
  multipleInput: false,
  description: () => '',
  docToText: (d) => raceText(d as unknown as RaceDoc),
  docToChoice: (d) => { const p = (d as unknown as RaceDoc).problems.at(-1)!; return p.options.slice(0, 4); },
  docToTarget: (d) => LETTERS.indexOf((d as unknown as RaceDoc).problems.at(-1)!.answer),
  load,
});
