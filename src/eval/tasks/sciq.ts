// SciQ (lm-eval sciq.yaml): "{support.lstrip()}\nQuestion: {question}\nAnswer:", choices
// [distractor1, distractor2, distractor3, correct_answer], gold 3; test split scored.
// No SciQ data ships with openelm; readers for the HF download and the original release.

import * as path from 'node:path';
import { existing, hfSplitFiles, readRecords } from '../files.js';
import { pyLstrip } from '../../core/pystr.js';
import type { Doc, LoadedSplit, Task } from '../task.js';
import { getStr, loaded, missingData, taskDirs, type Rec } from './common.js';

interface SciqDoc { support: string; question: string; choices: string[]; }

function toDoc(rec: Rec, where: string): SciqDoc {
  return {
    support: getStr(rec, 'support', where), question: getStr(rec, 'question', where),
    choices: ['distractor1', 'distractor2', 'distractor3', 'correct_answer'].map((k) => getStr(rec, k, where)),
  };
}

const FOLDERS = ['sciq'];

async function load(dataDir: string, split: string): Promise<LoadedSplit> {
  const orig = split === 'validation' ? 'valid' : split;
  for (const dir of taskDirs(dataDir, FOLDERS)) {
    const files = hfSplitFiles(dir, split);
    let src = 'HF allenai/sciq';
    if (!files.length) {
      const f = existing(path.join(dir, `${orig}.json`)) ?? existing(path.join(dir, 'SciQ dataset-2-3', `${orig}.json`));
      if (f) { files.push(f); src = 'SciQ release'; }
    }
    if (files.length) {
      const docs: Doc[] = [];
      for (const f of files) for (const { rec, where } of await readRecords(f)) docs.push({ ...toDoc(rec, where) });
      return loaded(docs, `${files.join(', ')} (${src})`);
    }
  }
  // SciQ.zip is what the HF sciq dataset (lm-eval's source) is built from.
  return missingData('sciq', split, dataDir, {
    url: 'https://ai2-public-datasets.s3.amazonaws.com/sciq/SciQ.zip', extract: `SciQ dataset-2-3/${orig}.json`, dest: `sciq/${orig}.json`,
    why: 'SciQ is licensed CC BY-NC 3.0, so openelm does not ship it',
  });
}

export const sciq = (): Task => ({
  name: 'sciq', outputType: 'multiple_choice', metrics: ['acc', 'acc_norm'],
  evalSplit: 'test', fewshotSplit: 'train', sampler: 'default', drawExtraShot: false,
  multipleInput: false,
  description: () => '',
  docToText: (d) => { const s = d as unknown as SciqDoc; return `${pyLstrip(s.support)}\nQuestion: ${s.question}\nAnswer:`; },
  docToChoice: (d) => (d as unknown as SciqDoc).choices,
  docToTarget: () => 3,
  load,
});
