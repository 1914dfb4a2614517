// HellaSwag (lm-eval hellaswag.yaml + utils.py): query = preprocess(activity_label + ": " + ctx_a +
// " " + capitalize(ctx_b)), choices = preprocess(endings), gold = int(label); validation scored.
//
// Readers: the HF `hellaswag` download, Rowan Zellers' hellaswag_{train,val}.jsonl (same fields), and
// klosax's 6-lines-per-item text (what data/eval ships: all 10042 validation items). The text form
// only has the joined context, so ctx_b is not capitalized the way lm-eval does it: scores on it are
// close, not exact.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { dataError, existing, hfSplitFiles, readRecords, readText } from '../files.js';
import { pyCapitalize, pyStrip } from '../../core/pystr.js';
import type { Doc, LoadedSplit, Task } from '../task.js';
import { getInt, getStr, getStrList, loaded, missingData, taskDirs, type Rec } from './common.js';

interface HellaswagDoc { query: string; choices: string[]; gold: number; }

/** lm-eval's hellaswag preprocess(). Python's `.` matches anything but \n, hence [^\n]. */
export function hellaswagPreprocess(text: string): string {
  text = pyStrip(text);
  text = text.replaceAll(' [title]', '. ');
  text = text.replace(/\[[^\n]*?\]/g, '');
  return text.replaceAll('  ', ' ');
}

function fromFields(rec: Rec, where: string): HellaswagDoc {
  const ctx = getStr(rec, 'ctx_a', where) + ' ' + pyCapitalize(getStr(rec, 'ctx_b', where));
  return {
    query: hellaswagPreprocess(getStr(rec, 'activity_label', where) + ': ' + ctx),
    choices: getStrList(rec, 'endings', where).map(hellaswagPreprocess),
    gold: getInt(rec, 'label', where),
  };
}

/** klosax/hellaswag_text_data: per item, the context line, the gold label, then the four endings. */
function fromKlosax(file: string): HellaswagDoc[] {
  const lines = readText(file).split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  if (lines.length % 6 !== 0) throw dataError(`${file}: ${lines.length} lines is not a multiple of 6 (context, label, 4 endings per item)`);
  const docs: HellaswagDoc[] = [];
  for (let i = 0; i < lines.length; i += 6) {
    const label = lines[i + 1].trim();
    if (!/^[0-3]$/.test(label)) throw dataError(`${file}:${i + 2}: expected the gold label 0-3, got ${JSON.stringify(label.slice(0, 20))}`);
    docs.push({ query: hellaswagPreprocess(lines[i]), choices: lines.slice(i + 2, i + 6).map(hellaswagPreprocess), gold: Number(label) });
  }
  return docs;
}

const FOLDERS = ['hellaswag'];

async function load(dataDir: string, split: string): Promise<LoadedSplit> {
  const short = split === 'validation' ? 'val' : split;
  for (const dir of taskDirs(dataDir, FOLDERS)) {
    const files = hfSplitFiles(dir, split);
    const rowan = existing(path.join(dir, `hellaswag_${short}.jsonl`));
    if (!files.length && rowan) files.push(rowan);
    if (files.length) {
      const docs: Doc[] = [];
      for (const f of files) for (const { rec, where } of await readRecords(f)) docs.push({ ...fromFields(rec, where) });
      return loaded(docs, `${files.join(', ')} (HellaSwag fields)`);
    }
    if (split === 'validation') {
      const txt = fs.readdirSync(dir).filter((f) => /^hellaswag_val.*\.txt(\.gz|\.br|\.bz2)?$/.test(f)).sort().map((f) => path.join(dir, f));
      if (txt.length) {
        const docs = fromKlosax(txt[0]).map((d) => ({ ...d }));
        const notes = ['hellaswag: klosax text format: ctx_b is not capitalized as lm-eval does, so scores are close to but not exactly lm-eval\'s'];
        if (docs.length < 10042) notes.push(`hellaswag: ${docs.length} of the 10042 validation items`);
        return loaded(docs, `${txt[0]} (klosax text format)`, notes);
      }
    }
  }
  // The HF hellaswag dataset (lm-eval's source) reads these files from rowanz/hellaswag, in order.
  return missingData('hellaswag', split, dataDir, { url: `https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_${short}.jsonl`, dest: `hellaswag/hellaswag_${short}.jsonl` });
}

export const hellaswag = (): Task => ({
  name: 'hellaswag', outputType: 'multiple_choice', metrics: ['acc', 'acc_norm'],
  evalSplit: 'validation', fewshotSplit: 'train', sampler: 'default', drawExtraShot: true,
  multipleInput: false,
  description: () => '',
  docToText: (d) => (d as unknown as HellaswagDoc).query,
  docToChoice: (d) => (d as unknown as HellaswagDoc).choices,
  docToTarget: (d) => (d as unknown as HellaswagDoc).gold,
  load,
});
