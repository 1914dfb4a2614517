// PIQA (lm-eval piqa.yaml): "Question: {goal}\nAnswer:", choices [sol1, sol2], gold = label;
// validation split scored. Readers: the original release (valid.jsonl + valid-labels.lst) and the HF
// `piqa` download.

import * as path from 'node:path';
import { dataError, existing, hfSplitFiles, readLines, readRecords } from '../files.js';
import type { Doc, LoadedSplit, Task } from '../task.js';
import { getInt, getStr, loaded, missingData, taskDirs, type Rec } from './common.js';

interface PiqaDoc { goal: string; sol1: string; sol2: string; label: number; }

function toDoc(rec: Rec, where: string, label?: number): PiqaDoc {
  return {
    goal: getStr(rec, 'goal', where), sol1: getStr(rec, 'sol1', where), sol2: getStr(rec, 'sol2', where),
    label: label ?? getInt(rec, 'label', where),
  };
}

const FOLDERS = ['piqa'];

async function load(dataDir: string, split: string): Promise<LoadedSplit> {
  const base = split === 'validation' ? 'valid' : split;
  for (const dir of taskDirs(dataDir, FOLDERS)) {
    const jsonl = existing(path.join(dir, `${base}.jsonl`));
    const labels = existing(path.join(dir, `${base}-labels.lst`));
    if (jsonl && labels) {
      const recs = await readRecords(jsonl);
      const labs = readLines(labels);
      if (labs.length !== recs.length) throw dataError(`${labels} has ${labs.length} labels but ${jsonl} has ${recs.length} questions`);
      const docs = recs.map(({ rec, where }, i) => {
        const l = labs[i].value.trim();
        if (l !== '0' && l !== '1') throw dataError(`${labels}:${labs[i].line}: expected label 0 or 1, got ${JSON.stringify(l.slice(0, 20))}`);
        return { ...toDoc(rec, where, Number(l)) };
      });
      return loaded(docs, `${jsonl} + ${labels} (original PIQA release)`);
    }
    const files = hfSplitFiles(dir, split);
    if (files.length) {
      const docs: Doc[] = [];
      for (const f of files) for (const { rec, where } of await readRecords(f)) docs.push({ ...toDoc(rec, where) });
      return loaded(docs, `${files.join(', ')} (HF piqa)`);
    }
    if (jsonl && !labels) throw dataError(`piqa: ${jsonl} has no labels file next to it (${path.join(dir, `${base}-labels.lst`)})`);
  }
  // The release keeps the gold labels in a second file next to the questions; both are needed.
  const at = 'https://raw.githubusercontent.com/ybisk/ybisk.github.io/master/piqa/data';
  return missingData('piqa', split, dataDir, { url: `${at}/${base}.jsonl`, dest: `piqa/${base}.jsonl`, and: [{ url: `${at}/${base}-labels.lst`, dest: `piqa/${base}-labels.lst` }] });
}

export const piqa = (): Task => ({
  name: 'piqa', outputType: 'multiple_choice', metrics: ['acc', 'acc_norm'],
  evalSplit: 'validation', fewshotSplit: 'train', sampler: 'default', drawExtraShot: true,
  multipleInput: false,
  description: () => '',
  docToText: (d) => `Question: ${(d as unknown as PiqaDoc).goal}\nAnswer:`,
  docToChoice: (d) => { const p = d as unknown as PiqaDoc; return [p.sol1, p.sol2]; },
  docToTarget: (d) => (d as unknown as PiqaDoc).label,
  load,
});
