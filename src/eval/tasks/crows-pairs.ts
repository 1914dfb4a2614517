// CrowS-Pairs, English (lm-eval crows_pairs_english.yaml + utils.py at dc90fec): no prompt and no
// target delimiter, so each request scores a whole sentence after the end-of-text token (or after the
// few-shot block); choices [sent_more, sent_less], target 0. Per pair: likelihood_diff =
// |ll(sent_more) - ll(sent_less)|, pct_stereotype = 1 when the more stereotypical sentence is the more
// likely one. Only a test split exists, so few-shot examples come from it (lm-eval draws k, drops the
// document itself, and may then use k - 1).
//
// lm-eval's data is BigScienceBiasEval/crows_pairs_multilingual "english": the revised English
// CrowS-Pairs of Névéol et al. 2022 (1677 pairs), a tab-separated file read with pandas.

import * as path from 'node:path';
import { dataError, existing, hfSplitFiles, parseCsv, readRecords, readText } from '../files.js';
import type { Doc, LoadedSplit, Task } from '../task.js';
import { getStr, loaded, missingData, taskDirs, type Rec } from './common.js';

interface CrowsDoc { sent_more: string; sent_less: string; stereo_antistereo: string; bias_type: string; }

export const CROWS_FILE = 'crows_pairs_EN_revised+210.csv';
const FIELDS = ['sent_more', 'sent_less', 'stereo_antistereo', 'bias_type'] as const;

/** The release's TSV: a header whose first column is the unnamed index, then one pair per row. */
function fromTsv(file: string): CrowsDoc[] {
  const rows = parseCsv(readText(file), file, '\t');
  if (!rows.length) throw dataError(`${file} is empty`);
  const head = rows[0].value;
  const col = FIELDS.map((f) => {
    const i = head.indexOf(f);
    if (i < 0) throw dataError(`${file}:1: no "${f}" column in the header`);
    return i;
  });
  return rows.slice(1).map(({ value: r, line }) => {
    if (r.length !== head.length) throw dataError(`${file}:${line}: ${r.length} columns, the header has ${head.length}`);
    const [sent_more, sent_less, stereo_antistereo, bias_type] = col.map((i) => r[i]);
    return { sent_more, sent_less, stereo_antistereo, bias_type };
  });
}

function fromRecord(rec: Rec, where: string): CrowsDoc {
  const [sent_more, sent_less, stereo_antistereo, bias_type] = FIELDS.map((f) => getStr(rec, f, where));
  return { sent_more, sent_less, stereo_antistereo, bias_type };
}

const FOLDERS = ['crows_pairs_english', 'crows_pairs'];

async function load(dataDir: string, split: string): Promise<LoadedSplit> {
  for (const dir of taskDirs(dataDir, FOLDERS)) {
    const tsv = split === 'test' ? existing(path.join(dir, CROWS_FILE)) : null;
    if (tsv) return loaded(fromTsv(tsv).map((d) => ({ ...d })), `${tsv} (revised English CrowS-Pairs)`);
    const files = hfSplitFiles(dir, split, ['english']);
    if (files.length) {
      const docs: Doc[] = [];
      for (const f of files) for (const { rec, where } of await readRecords(f)) docs.push({ ...fromRecord(rec, where) });
      return loaded(docs, `${files.join(', ')} (HF crows_pairs_multilingual english)`);
    }
  }
  return missingData('crows_pairs_english', split, dataDir, {
    url: `https://gitlab.inria.fr/french-crows-pairs/acl-2022-paper-data-and-code/-/raw/main/data/${CROWS_FILE}`, dest: `crows_pairs/${CROWS_FILE}`,
  });
}

/** lm-eval's crows_pairs process_results for one pair. */
export function crowsScores(lls: readonly number[]): { likelihood_diff: number; pct_stereotype: number } {
  return { likelihood_diff: Math.abs(lls[0] - lls[1]), pct_stereotype: lls[0] > lls[1] ? 1 : 0 };
}

export const crowsPairsEnglish = (): Task => ({
  name: 'crows_pairs_english', outputType: 'multiple_choice', metrics: ['likelihood_diff', 'pct_stereotype'],
  evalSplit: 'test', fewshotSplit: 'test', sampler: 'default', drawExtraShot: false,
  multipleInput: false, targetDelimiter: '',
  description: () => '',
  docToText: () => '',
  docToChoice: (d) => { const c = d as unknown as CrowsDoc; return [c.sent_more, c.sent_less]; },
  docToTarget: () => 0,
  processResults: (_d, lls) => crowsScores(lls),
  load,
});
