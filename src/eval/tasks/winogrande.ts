// WinoGrande (lm-eval winogrande/default.yaml, winogrande_xl): partial scoring. The two options go
// into the context (sentence up to the blank + option) and the rest of the sentence after the blank
// is the shared continuation; gold = {"1": 0, "2": 1}[answer]; validation split scored, acc only.

import * as path from 'node:path';
import { dataError, existing, hfSplitFiles, readLines, readRecords } from '../files.js';
import { pyStrip } from '../../core/pystr.js';
import type { Doc, LoadedSplit, Task } from '../task.js';
import { getStr, loaded, missingData, taskDirs, type Rec } from './common.js';

interface WinoDoc { sentence: string; option1: string; option2: string; answer: string; }

function toDoc(rec: Rec, where: string, answer?: string): WinoDoc {
  const sentence = getStr(rec, 'sentence', where);
  if (!sentence.includes('_')) throw dataError(`${where}: sentence has no "_" blank`);
  const a = answer ?? String(rec['answer'] ?? '');
  if (a !== '1' && a !== '2') throw dataError(`${where}: answer must be "1" or "2", got ${JSON.stringify(rec['answer'])}`);
  return { sentence, option1: getStr(rec, 'option1', where), option2: getStr(rec, 'option2', where), answer: a };
}

const FOLDERS = ['winogrande'];

async function load(dataDir: string, split: string): Promise<LoadedSplit> {
  const base = split === 'validation' ? 'dev' : split === 'train' ? 'train_xl' : split;
  for (const dir of taskDirs(dataDir, FOLDERS)) {
    const files = hfSplitFiles(dir, split, ['winogrande_xl']);
    if (files.length) {
      const docs: Doc[] = [];
      for (const f of files) for (const { rec, where } of await readRecords(f)) docs.push({ ...toDoc(rec, where) });
      return loaded(docs, `${files.join(', ')} (HF winogrande, winogrande_xl)`);
    }
    const jsonl = existing(path.join(dir, `${base}.jsonl`));
    if (jsonl) {
      const recs = await readRecords(jsonl);
      const labFile = existing(path.join(dir, `${base}-labels.lst`));
      const labs = labFile ? readLines(labFile) : null;
      if (labs && labs.length !== recs.length) throw dataError(`${labFile} has ${labs.length} labels but ${jsonl} has ${recs.length} sentences`);
      // The release's jsonl carries the answer; the labels file is the fallback for files without it.
      const docs = recs.map(({ rec, where }, i) => ({ ...toDoc(rec, where, rec['answer'] === undefined && labs ? labs[i].value.trim() : undefined) }));
      return loaded(docs, `${jsonl} (WinoGrande 1.1 release)`);
    }
  }
  // winogrande_1.1.zip is what the HF winogrande dataset (lm-eval's source) is built from.
  return missingData('winogrande', split, dataDir, { url: 'https://storage.googleapis.com/ai2-mosaic/public/winogrande/winogrande_1.1.zip', extract: `winogrande_1.1/${base}.jsonl`, dest: `winogrande/${base}.jsonl` });
}

function blank(s: string): number { return s.indexOf('_'); }

export const winogrande = (): Task => ({
  name: 'winogrande', outputType: 'multiple_choice', metrics: ['acc'],
  evalSplit: 'validation', fewshotSplit: 'train', sampler: 'default', drawExtraShot: true,
  multipleInput: true,
  description: () => '',
  docToText: (d) => ({ '1': 0, '2': 1 })[(d as unknown as WinoDoc).answer as '1' | '2'],
  docToTarget: (d) => { const s = (d as unknown as WinoDoc).sentence; return pyStrip(s.slice(blank(s) + 1)); },
  docToChoice: (d) => { const w = d as unknown as WinoDoc; const p = w.sentence.slice(0, blank(w.sentence)); return [p + w.option1, p + w.option2]; },
  load,
});
