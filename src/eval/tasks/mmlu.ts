// MMLU (lm-eval mmlu/default, 57 subject tasks in 4 groups): description "The following are multiple
// choice questions (with answers) about {subject}.\n\n", then "{question.strip()}\nA. …\nD. …\nAnswer:",
// choices " A".." D"; test split scored, few-shot = the first k rows of the dev split in order.
//
// Readers: the HF cais/mmlu (or hails/mmlu_no_train) download, per subject folder or "all", the
// original Hendrycks CSVs ({dev,test}/<subject>_{dev,test}.csv), and MMLU-Redux's 100-question
// samples (mmlu_<subject>.csv; test only, the original gold in column "answer"), which data/eval ships.

import * as path from 'node:path';
import { dataError, existing, hfSplitFiles, parseCsv, readRecords, readText } from '../files.js';
import { parsePyStrList } from '../pyliteral.js';
import { pyStrip } from '../../core/pystr.js';
import type { Doc, LoadedSplit, Task } from '../task.js';
import { getInt, getStr, getStrList, loaded, missingData, taskDirs, type Rec } from './common.js';

export const MMLU_GROUPS: Record<string, string[]> = {
  stem: ['abstract_algebra', 'anatomy', 'astronomy', 'college_biology', 'college_chemistry', 'college_computer_science', 'college_mathematics', 'college_physics', 'computer_security', 'conceptual_physics', 'electrical_engineering', 'elementary_mathematics', 'high_school_biology', 'high_school_chemistry', 'high_school_computer_science', 'high_school_mathematics', 'high_school_physics', 'high_school_statistics', 'machine_learning'],
  other: ['business_ethics', 'clinical_knowledge', 'college_medicine', 'global_facts', 'human_aging', 'management', 'marketing', 'medical_genetics', 'miscellaneous', 'nutrition', 'professional_accounting', 'professional_medicine', 'virology'],
  social_sciences: ['econometrics', 'high_school_geography', 'high_school_government_and_politics', 'high_school_macroeconomics', 'high_school_microeconomics', 'high_school_psychology', 'human_sexuality', 'professional_psychology', 'public_relations', 'security_studies', 'sociology', 'us_foreign_policy'],
  humanities: ['formal_logic', 'high_school_european_history', 'high_school_us_history', 'high_school_world_history', 'international_law', 'jurisprudence', 'logical_fallacies', 'moral_disputes', 'moral_scenarios', 'philosophy', 'prehistory', 'professional_law', 'world_religions'],
};

export const MMLU_SUBJECTS: string[] = Object.values(MMLU_GROUPS).flat().sort();

interface MmluDoc { question: string; choices: string[]; answer: number; }

const FOLDERS = ['mmlu', 'mmlu-redux', 'cais/mmlu', 'hails/mmlu_no_train'];
const LETTERS = ['A', 'B', 'C', 'D'];

function fromHf(rec: Rec, where: string): MmluDoc {
  const choices = getStrList(rec, 'choices', where);
  if (choices.length !== 4) throw dataError(`${where}: expected 4 choices, got ${choices.length}`);
  const answer = getInt(rec, 'answer', where);
  if (answer < 0 || answer > 3) throw dataError(`${where}: answer must be 0-3, got ${answer}`);
  return { question: getStr(rec, 'question', where), choices, answer };
}

/** Original release CSV: no header; question, A, B, C, D, answer letter. */
function fromOriginalCsv(file: string): MmluDoc[] {
  return parseCsv(readText(file), file).map(({ value: r, line }) => {
    if (r.length !== 6) throw dataError(`${file}:${line}: expected 6 columns (question, A, B, C, D, answer), got ${r.length}`);
    const answer = LETTERS.indexOf(r[5].trim());
    if (answer < 0) throw dataError(`${file}:${line}: answer must be A-D, got ${JSON.stringify(r[5])}`);
    return { question: r[0], choices: r.slice(1, 5), answer };
  });
}

/** MMLU-Redux CSV: header question,choices,answer,...; choices is a Python list literal. */
function fromReduxCsv(file: string, subject: string): MmluDoc[] {
  // The moral_scenarios file of MMLU-Redux is Windows-1252, every other one UTF-8.
  const text = subject === 'moral_scenarios' ? readText(file, 'windows-1252') : readText(file);
  // A few MMLU-Redux files are semicolon-separated; the header line tells which.
  const first = text.slice(0, text.indexOf('\n'));
  const rows = parseCsv(text, file, first.includes(';') && !first.includes(',') ? ';' : ',');
  if (!rows.length) throw dataError(`${file} is empty`);
  const head = rows[0].value;
  const col = (n: string) => { const i = head.indexOf(n); if (i < 0) throw dataError(`${file}:1: no "${n}" column in the header`); return i; };
  const qi = col('question'), ci = col('choices'), ai = col('answer');
  return rows.slice(1).map(({ value: r, line }) => {
    const where = `${file}:${line}`;
    if (r.length !== head.length) throw dataError(`${where}: ${r.length} columns, the header has ${head.length}`);
    const choices = parsePyStrList(r[ci], where);
    if (choices.length !== 4) throw dataError(`${where}: expected 4 choices, got ${choices.length}`);
    if (!/^[0-3]$/.test(r[ai].trim())) throw dataError(`${where}: answer must be 0-3, got ${JSON.stringify(r[ai])}`);
    return { question: r[qi], choices, answer: Number(r[ai].trim()) };
  });
}

const allCache = new Map<string, Map<string, MmluDoc[]>>();

async function fromHfAll(files: string[]): Promise<Map<string, MmluDoc[]>> {
  const key = files.join('\n');
  let m = allCache.get(key);
  if (!m) {
    m = new Map();
    for (const f of files) {
      for (const { rec, where } of await readRecords(f)) {
        const s = getStr(rec, 'subject', where);
        if (!m.has(s)) m.set(s, []);
        m.get(s)!.push(fromHf(rec, where));
      }
    }
    allCache.set(key, m);
  }
  return m;
}

async function loadSubject(subject: string, dataDir: string, split: string): Promise<LoadedSplit> {
  const wrap = (docs: MmluDoc[]): Doc[] => docs.map((d) => ({ ...d }));
  for (const dir of taskDirs(dataDir, FOLDERS)) {
    const per = hfSplitFiles(path.join(dir, subject), split);
    if (per.length) {
      const docs: MmluDoc[] = [];
      for (const f of per) for (const { rec, where } of await readRecords(f)) docs.push(fromHf(rec, where));
      return loaded(wrap(docs), `${per.join(', ')} (HF cais/mmlu ${subject})`);
    }
    const all = hfSplitFiles(path.join(dir, 'all'), split);
    if (all.length) {
      const docs = (await fromHfAll(all)).get(subject);
      if (docs?.length) return loaded(wrap(docs), `${all.join(', ')} (HF cais/mmlu all, subject ${subject})`);
    }
    const orig = existing(path.join(dir, split, `${subject}_${split}.csv`)) ?? existing(path.join(dir, 'data', split, `${subject}_${split}.csv`));
    if (orig) return loaded(wrap(fromOriginalCsv(orig)), `${orig} (original MMLU release)`);
    if (split === 'test') {
      const redux = existing(path.join(dir, `mmlu_${subject}.csv`));
      if (redux) {
        return loaded(wrap(fromReduxCsv(redux, subject)), `${redux} (MMLU-Redux sample of the test split)`,
          [`mmlu: MMLU-Redux holds 100 of each subject's test questions (5700 of 14042), so scores are on a subset`]);
      }
    }
  }
  // Hendrycks' data.tar is what hails/mmlu_no_train (lm-eval dc90fec's source) is built from; its
  // data/<split>/ folder holds one CSV per subject, so one extraction serves all 57 subjects.
  return missingData(`mmlu_${subject}`, split, dataDir, { url: 'https://people.eecs.berkeley.edu/~hendrycks/data.tar', extract: `data/${split}/`, dest: `mmlu/${split}/` });
}

export function mmluSubject(subject: string): Task {
  const groupName = Object.keys(MMLU_GROUPS).find((g) => MMLU_GROUPS[g].includes(subject))!;
  const desc = `The following are multiple choice questions (with answers) about ${subject.replaceAll('_', ' ')}.\n\n`;
  return {
    name: `mmlu_${subject}`, outputType: 'multiple_choice', metrics: ['acc'],
    evalSplit: 'test', fewshotSplit: 'dev', sampler: 'first_n', drawExtraShot: false,
    groups: [`mmlu_${groupName}`, 'mmlu'],
    multipleInput: false,
    description: () => desc,
    docToText: (d) => {
      const m = d as unknown as MmluDoc;
      return `${pyStrip(m.question)}\nA. ${m.choices[0]}\nB. ${m.choices[1]}\nC. ${m.choices[2]}\nD. ${m.choices[3]}\nAnswer:`;
    },
    docToChoice: () => LETTERS,
    docToTarget: (d) => (d as unknown as MmluDoc).answer,
    load: (dataDir, split) => loadSubject(subject, dataDir, split),
  };
}
