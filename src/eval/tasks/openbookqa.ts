// OpenBookQA (lm-eval openbookqa.yaml, config main): the bare question_stem, choices.text,
// gold = choices.label.index(answerKey.lstrip()); test split scored, few-shot from train.
// Readers: the HF openbookqa download, the original OBQA Main/{train,test}.jsonl, and MosaicML's
// llm-foundry openbook_qa.jsonl (test only; query = question_stem), which data/eval ships.

import * as path from 'node:path';
import { dataError, existing, hfSplitFiles, readRecords } from '../files.js';
import { pyLstrip } from '../../core/pystr.js';
import type { Doc, LoadedSplit, Task } from '../task.js';
import { getInt, getObj, getStr, getStrList, loaded, missingData, taskDirs, type Rec } from './common.js';

interface ObqaDoc { question: string; choices: string[]; gold: number; }

function gold(labels: string[], key: string, where: string): number {
  const g = labels.indexOf(pyLstrip(key));
  if (g < 0) throw dataError(`${where}: answerKey "${key}" is not among the labels ${labels.join(',')}`);
  return g;
}

function fromHf(rec: Rec, where: string): ObqaDoc {
  const ch = getObj(rec, 'choices', where);
  return { question: getStr(rec, 'question_stem', where), choices: getStrList(ch, 'text', where), gold: gold(getStrList(ch, 'label', where), getStr(rec, 'answerKey', where), where) };
}

function fromOriginal(rec: Rec, where: string): ObqaDoc {
  const q = getObj(rec, 'question', where);
  const chs = q['choices'];
  if (!Array.isArray(chs)) throw dataError(`${where}: question.choices must be a list`);
  return {
    question: getStr(q, 'stem', where), choices: chs.map((c: Rec) => getStr(c, 'text', where)),
    gold: gold(chs.map((c: Rec) => getStr(c, 'label', where)), getStr(rec, 'answerKey', where), where),
  };
}

function fromFoundry(rec: Rec, where: string): ObqaDoc {
  const choices = getStrList(rec, 'choices', where);
  const g = getInt(rec, 'gold', where);
  if (g >= choices.length) throw dataError(`${where}: gold ${g} is out of range for ${choices.length} choices`);
  return { question: getStr(rec, 'query', where), choices, gold: g };
}

const FOLDERS = ['openbookqa', 'llm-foundry-icl'];

async function load(dataDir: string, split: string): Promise<LoadedSplit> {
  const cap = split[0].toUpperCase() + split.slice(1);
  for (const dir of taskDirs(dataDir, FOLDERS)) {
    const files = path.basename(dir) === 'llm-foundry-icl' ? [] : hfSplitFiles(dir, split, ['main']);
    if (files.length) {
      const docs: Doc[] = [];
      for (const f of files) for (const { rec, where } of await readRecords(f)) docs.push({ ...fromHf(rec, where) });
      return loaded(docs, `${files.join(', ')} (HF openbookqa main)`);
    }
    const member = split === 'validation' ? 'dev' : split;
    const orig = existing(path.join(dir, 'Main', `${member}.jsonl`)) ?? existing(path.join(dir, `${cap}.jsonl`));
    if (orig) return loaded((await readRecords(orig)).map(({ rec, where }) => ({ ...fromOriginal(rec, where) })), `${orig} (OpenBookQA release)`);
    const foundry = split === 'test' ? existing(path.join(dir, 'openbook_qa.jsonl')) : null;
    if (foundry) return loaded((await readRecords(foundry)).map(({ rec, where }) => ({ ...fromFoundry(rec, where) })), `${foundry} (llm-foundry ICL copy of the test split)`);
  }
  // OpenBookQA-V1-Sep2018.zip is what the HF openbookqa dataset (lm-eval's source) is built from.
  const member = split === 'validation' ? 'dev' : split;
  return missingData('openbookqa', split, dataDir, { url: 'https://s3-us-west-2.amazonaws.com/ai2-website/data/OpenBookQA-V1-Sep2018.zip', extract: `OpenBookQA-V1-Sep2018/Data/Main/${member}.jsonl`, dest: `openbookqa/Main/${member}.jsonl` });
}

export const openbookqa = (): Task => ({
  name: 'openbookqa', outputType: 'multiple_choice', metrics: ['acc', 'acc_norm'],
  evalSplit: 'test', fewshotSplit: 'train', sampler: 'default', drawExtraShot: false,
  multipleInput: false,
  description: () => '',
  docToText: (d) => (d as unknown as ObqaDoc).question,
  docToChoice: (d) => (d as unknown as ObqaDoc).choices,
  docToTarget: (d) => (d as unknown as ObqaDoc).gold,
  load,
});
