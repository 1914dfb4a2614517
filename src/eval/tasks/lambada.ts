// LAMBADA, OpenAI version (lm-eval lambada_openai.yaml): context = text.split(' ')[:-1] joined by ' ',
// target = ' ' + the last space-separated word; test split; acc = the target is the greedy
// continuation, perplexity = exp(-mean log-likelihood).
// Readers: the {"text"} jsonl (OpenAI's lambada_test.jsonl, HF EleutherAI/lambada_openai) and
// MosaicML's llm-foundry {"context","continuation"} copy, which data/eval ships.

import * as path from 'node:path';
import { existing, hfSplitFiles, readRecords } from '../files.js';
import type { Doc, LoadedSplit, Task } from '../task.js';
import { getStr, loaded, missingData, taskDirs, type Rec } from './common.js';

interface LambadaDoc { text: string; }

function toDoc(rec: Rec, where: string): LambadaDoc {
  if ('text' in rec) return { text: getStr(rec, 'text', where) };
  // llm-foundry split the text at its last space; joining with one space restores it.
  return { text: getStr(rec, 'context', where) + ' ' + getStr(rec, 'continuation', where) };
}

const FOLDERS = ['lambada_openai', 'lambada', 'llm-foundry-icl'];

async function load(dataDir: string, split: string): Promise<LoadedSplit> {
  for (const dir of taskDirs(dataDir, FOLDERS)) {
    const files = hfSplitFiles(dir, split, ['default', 'en']);
    if (!files.length) {
      const f = ['lambada_test_en.jsonl', 'lambada_test.jsonl', 'lambada_openai.jsonl'].map((n) => existing(path.join(dir, n))).find((x) => x);
      if (f && split === 'test') files.push(f);
    }
    if (files.length) {
      const docs: Doc[] = [];
      for (const f of files) for (const { rec, where } of await readRecords(f)) docs.push({ ...toDoc(rec, where) });
      return loaded(docs, files.join(', '));
    }
  }
  return missingData('lambada_openai', split, dataDir, { url: 'https://openaipublic.blob.core.windows.net/gpt-2/data/lambada_test.jsonl', dest: 'lambada_openai/lambada_test.jsonl' });
}

function words(d: Doc): string[] { return (d as unknown as LambadaDoc).text.split(' '); }

export const lambadaOpenai = (): Task => ({
  name: 'lambada_openai', outputType: 'loglikelihood', metrics: ['perplexity', 'acc'],
  // No train/validation split: lm-eval draws few-shot examples from test itself (skipping the doc).
  evalSplit: 'test', fewshotSplit: 'test', sampler: 'default', drawExtraShot: false,
  multipleInput: false,
  description: () => '',
  docToText: (d) => words(d).slice(0, -1).join(' '),
  docToTarget: (d) => ' ' + words(d).slice(-1)[0],
  docToChoice: () => [],
  load,
});
