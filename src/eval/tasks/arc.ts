// ARC-Easy / ARC-Challenge (lm-eval arc_easy.yaml): "Question: {question}\nAnswer:", choices.text,
// gold = choices.label.index(answerKey); test split scored, few-shot from train.
//
// Readers: the HF allenai/ai2_arc download, AI2's original ARC-*-{Train,Test}.jsonl, and the
// LLM-Adapters instruction files (what data/eval ships). MosaicML's llm-foundry arc_*.jsonl are not
// read: their gold index is off by one on the numerically-labelled questions and they pad
// 3-choice questions with duplicates / drop fifth choices.

import * as path from 'node:path';
import { dataError, existing, hfSplitFiles, readJson, readRecords } from '../files.js';
import type { Doc, LoadedSplit, Task } from '../task.js';
import { getObj, getStr, getStrList, loaded, missingData, taskDirs, type Rec } from './common.js';

interface ArcDoc { question: string; choices: string[]; gold: number; }

const PREFIX = 'Please choose the correct answer to the question: ';

/** Recover question, choices and gold from one LLM-Adapters ARC record. */
export function parseLlmAdaptersArc(rec: Rec, where: string): ArcDoc {
  const inst = getStr(rec, 'instruction', where);
  const answer = getStr(rec, 'answer', where);
  if (!inst.startsWith(PREFIX)) throw dataError(`${where}: instruction does not start with "${PREFIX.trim()}"`);
  let body = inst.slice(PREFIX.length);
  const f = body.lastIndexOf('\n\nAnswer format: ');
  if (f < 0) throw dataError(`${where}: instruction has no "Answer format:" line`);
  const n = body.slice(f + '\n\nAnswer format: '.length).split('/').length;
  body = body.slice(0, f);
  const a = body.lastIndexOf('\n\nAnswer1: ');
  if (a < 0) throw dataError(`${where}: instruction has no "Answer1:" list`);
  const question = body.slice(0, a);
  const parts = body.slice(a + 2).split(/(?:^| )Answer(\d+): /);
  const choices: string[] = [];
  for (let k = 1; k < parts.length; k += 2) {
    if (Number(parts[k]) !== choices.length + 1) throw dataError(`${where}: answers are not numbered 1..${n}`);
    choices.push(parts[k + 1]);
  }
  if (choices.length !== n) throw dataError(`${where}: ${choices.length} answers listed but the answer format names ${n}`);
  const m = /^answer(\d+)$/.exec(answer);
  if (!m || Number(m[1]) < 1 || Number(m[1]) > n) throw dataError(`${where}: answer "${answer}" is not one of answer1..answer${n}`);
  return { question, choices, gold: Number(m[1]) - 1 };
}

function fromHf(rec: Rec, where: string): ArcDoc {
  const question = getStr(rec, 'question', where);
  const ch = getObj(rec, 'choices', where);
  const text = getStrList(ch, 'text', where + ' choices');
  const label = getStrList(ch, 'label', where + ' choices');
  const key = getStr(rec, 'answerKey', where);
  const gold = label.indexOf(key);
  if (gold < 0) throw dataError(`${where}: answerKey "${key}" is not among the labels ${label.join(',')}`);
  return { question, choices: text, gold };
}

function fromAi2(rec: Rec, where: string): ArcDoc {
  const q = getObj(rec, 'question', where);
  const stem = getStr(q, 'stem', where);
  const chs = q['choices'];
  if (!Array.isArray(chs)) throw dataError(`${where}: question.choices must be a list`);
  const text = chs.map((c: Rec) => getStr(c, 'text', where));
  const label = chs.map((c: Rec) => getStr(c, 'label', where));
  const key = getStr(rec, 'answerKey', where);
  const gold = label.indexOf(key);
  if (gold < 0) throw dataError(`${where}: answerKey "${key}" is not among the labels ${label.join(',')}`);
  return { question: stem, choices: text, gold };
}

function makeArc(name: 'arc_easy' | 'arc_challenge', config: 'ARC-Easy' | 'ARC-Challenge'): Task {
  const folders = [name, 'ai2_arc', 'llm-adapters-commonsense/test', 'llm-adapters-commonsense/train-partial'];
  async function load(dataDir: string, split: string): Promise<LoadedSplit> {
    // AI2's release calls the validation split Dev.
    const cap = split === 'validation' ? 'Dev' : split[0].toUpperCase() + split.slice(1);
    for (const dir of taskDirs(dataDir, folders)) {
      const hf = hfSplitFiles(dir, split, [config]);
      if (hf.length) {
        const docs: Doc[] = [];
        for (const f of hf) for (const { rec, where } of await readRecords(f)) docs.push({ ...fromHf(rec, where) });
        return loaded(docs, `${hf.join(', ')} (HF allenai/ai2_arc ${config})`);
      }
      const ai2 = existing(path.join(dir, `${config}-${cap}.jsonl`)) ?? existing(path.join(dir, config, `${config}-${cap}.jsonl`));
      if (ai2) {
        const docs = (await readRecords(ai2)).map(({ rec, where }) => ({ ...fromAi2(rec, where) }));
        return loaded(docs, `${ai2} (AI2 ARC release)`);
      }
      const la = existing(path.join(dir, `${config}.${split}.json`)) ?? existing(path.join(dir, config, `${split}.json`));
      if (la) {
        const arr = readJson(la);
        if (!Array.isArray(arr)) throw dataError(`${la}: expected a JSON array of LLM-Adapters records`);
        const docs = arr.map((rec: Rec, i) => ({ ...parseLlmAdaptersArc(rec, `${la} record ${i + 1}`) }));
        return loaded(docs, `${la} (LLM-Adapters ${config} ${split}, question and choices recovered from the instruction)`);
      }
    }
    if (split === 'test' || split === 'train') {
      return missingData(name, split, dataDir, { url: `https://raw.githubusercontent.com/AGI-Edgerunners/LLM-Adapters/816657208af4db747803f87ba40a4c71383fed7a/dataset/${config}/${split}.json`, dest: `${name}/${config}/${split}.json` });
    }
    return missingData(name, split, dataDir, { url: 'https://ai2-public-datasets.s3.amazonaws.com/arc/ARC-V1-Feb2018.zip', extract: `ARC-V1-Feb2018-2/${config}/${config}-${cap}.jsonl`, dest: `${name}/${config}-${cap}.jsonl` });
  }
  return {
    name, outputType: 'multiple_choice', metrics: ['acc', 'acc_norm'],
    evalSplit: 'test', fewshotSplit: 'train', sampler: 'default', drawExtraShot: false,
    multipleInput: false,
    description: () => '',
    docToText: (d) => `Question: ${(d as unknown as ArcDoc).question}\nAnswer:`,
    docToChoice: (d) => (d as unknown as ArcDoc).choices,
    docToTarget: (d) => (d as unknown as ArcDoc).gold,
    load,
  };
}

export const arcEasy = (): Task => makeArc('arc_easy', 'ARC-Easy');
export const arcChallenge = (): Task => makeArc('arc_challenge', 'ARC-Challenge');
