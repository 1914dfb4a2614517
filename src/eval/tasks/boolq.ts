// BoolQ (lm-eval super_glue/boolq/default.yaml): "{passage}\nQuestion: {question}?\nAnswer:",
// choices ["no", "yes"], gold = label; validation split scored, acc only.

import * as path from 'node:path';
import { existing, hfSplitFiles, readRecords } from '../files.js';
import type { Doc, LoadedSplit, Task } from '../task.js';
import { getInt, getStr, loaded, missingData, taskDirs, type Rec } from './common.js';

interface BoolqDoc { passage: string; question: string; label: number; }

function toDoc(rec: Rec, where: string): BoolqDoc {
  // HF super_glue and SuperGLUE's val.jsonl call the gold "label"; Google's original release "answer".
  const label = getInt(rec, 'label' in rec ? 'label' : 'answer', where);
  return { passage: getStr(rec, 'passage', where), question: getStr(rec, 'question', where), label };
}

const FOLDERS = ['boolq', 'super_glue/boolq', 'super_glue'];

async function load(dataDir: string, split: string): Promise<LoadedSplit> {
  const orig = split === 'validation' ? ['dev.jsonl', 'val.jsonl'] : [`${split}.jsonl`];
  for (const dir of taskDirs(dataDir, FOLDERS)) {
    const files = hfSplitFiles(dir, split, ['boolq']);
    let src = 'HF super_glue/boolq';
    if (!files.length) {
      const f = orig.map((n) => existing(path.join(dir, n))).find((x) => x);
      if (f) { files.push(f); src = 'BoolQ / SuperGLUE release'; }
    }
    if (files.length) {
      const docs: Doc[] = [];
      for (const f of files) for (const { rec, where } of await readRecords(f)) docs.push({ ...toDoc(rec, where) });
      return loaded(docs, `${files.join(', ')} (${src})`);
    }
  }
  // SuperGLUE's BoolQ.zip is what the HF super_glue/boolq dataset (lm-eval's source) is built from.
  const member = split === 'validation' ? 'val.jsonl' : `${split}.jsonl`;
  return missingData('boolq', split, dataDir, { url: 'https://dl.fbaipublicfiles.com/glue/superglue/data/v2/BoolQ.zip', extract: `BoolQ/${member}`, dest: `boolq/${member}` });
}

export const boolq = (): Task => ({
  name: 'boolq', outputType: 'multiple_choice', metrics: ['acc'],
  evalSplit: 'validation', fewshotSplit: 'train', sampler: 'default', drawExtraShot: true,
  multipleInput: false,
  description: () => '',
  docToText: (d) => { const b = d as unknown as BoolqDoc; return `${b.passage}\nQuestion: ${b.question}?\nAnswer:`; },
  docToChoice: () => ['no', 'yes'],
  docToTarget: (d) => (d as unknown as BoolqDoc).label,
  load,
});
