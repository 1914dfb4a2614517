import * as path from 'node:path';
import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { JSON_FLAG, MODEL_FLAGS, loadFromFlags, printJson, readTextFile } from '../common.js';
import { OpenELMError, UsageError } from '../../core/errors.js';
import { readRecords } from '../../eval/files.js';
import { LoglikScorer, type LLRequest } from '../../eval/loglik.js';
import { rollingMetrics } from '../../eval/metrics.js';
import { Progress } from '../../eval/progress.js';
import { pyCountWords, utf8Len } from '../../core/pystr.js';
import { rollingWindows, strideWindows } from '../../eval/rolling.js';
import { wikitextArticles, wikitextDetokenize } from '../../eval/wikitext.js';

export const spec: CommandSpec = {
  name: 'perplexity',
  summary: 'perplexity of a text file: fixed windows, sliding windows (--stride) or lm-eval rolling windows (--rolling)',
  usage: 'openelm perplexity --model DIR --file F [--context N] [--stride S | --rolling] [--documents whole|wikitext] [--wikitext] [--json]',
  flags: [
    ...MODEL_FLAGS,
    { name: 'file', type: 'string', help: 'UTF-8 text file, or .jsonl/.json/.parquet of documents (see --text-key)', required: true },
    { name: 'context', type: 'int', help: 'window length in tokens', default: 2048, min: 2 },
    { name: 'stride', type: 'int', help: 'sliding windows: start a window every S tokens and score only its new tokens (default: --context, i.e. disjoint windows)', min: 1 },
    { name: 'rolling', type: 'bool', help: 'lm-eval loglikelihood_rolling windows (every token scored once, the first one after a prefix token)' },
    { name: 'prefix-token', type: 'string', help: 'token before the first rolling window: eos (lm-eval dc90fec, OpenELM\'s) or bos (lm-eval >= v0.4.2)', default: 'eos', choices: ['eos', 'bos'] },
    { name: 'documents', type: 'string', help: 'how a text file splits into documents: whole, or wikitext articles', default: 'whole', choices: ['whole', 'wikitext'] },
    { name: 'wikitext', type: 'bool', help: 'lm-eval wikitext task: detokenize each document before scoring, count words and bytes on the original' },
    { name: 'text-key', type: 'string', help: 'field holding the text in .jsonl/.json/.parquet files (default: text, else page)' },
    { name: 'batch-size', type: 'int', help: 'windows scored per forward call', default: 4, min: 1 },
    JSON_FLAG,
  ],
};

async function readDocuments(file: string, documents: string, textKey: string | undefined): Promise<string[]> {
  const base = file.endsWith('.gz') ? file.slice(0, -3) : file;
  if (/\.(jsonl|json|parquet)$/.test(base)) {
    const recs = await readRecords(file);
    return recs.map(({ rec, where }) => {
      const key = textKey ?? ('text' in rec ? 'text' : 'page');
      const v = rec[key];
      if (typeof v !== 'string') throw new OpenELMError('data', `${where}: field "${key}" is not a string (set --text-key)`);
      return v;
    });
  }
  const text = readTextFile(file, 'input file');
  return documents === 'wikitext' ? wikitextArticles(text) : [text];
}

export async function run(flags: ParsedFlags): Promise<number> {
  const file = get.str(flags, 'file')!;
  const json = get.bool(flags, 'json');
  const rolling = get.bool(flags, 'rolling');
  const stride = get.num(flags, 'stride');
  if (rolling && stride !== undefined) throw new UsageError('--stride and --rolling are different methods; give one');
  const docs = await readDocuments(file, get.str(flags, 'documents')!, get.str(flags, 'text-key'));
  const { model, tokenizer, backend } = await loadFromFlags(flags);
  try {
    const ctx = get.num(flags, 'context')!;
    if (ctx > model.config.maxContextLength) {
      throw new OpenELMError('context', `--context ${ctx} is longer than the model's context (${model.config.maxContextLength} tokens)`);
    }
    if (stride !== undefined && stride > ctx) throw new UsageError(`--stride ${stride} must not exceed --context ${ctx}`);
    const prefix = get.str(flags, 'prefix-token') === 'bos' ? model.config.bosTokenId : model.config.eosTokenId;
    const wikitext = get.bool(flags, 'wikitext');
    const reqs: LLRequest[] = [];
    let words = 0, bytes = 0;
    for (const original of docs) {
      const ids = tokenizer.encode(wikitext ? wikitextDetokenize(original) : original, { bos: true });
      words += pyCountWords(original);
      bytes += utf8Len(original);
      const windows = rolling ? rollingWindows(ids, prefix, ctx) : strideWindows(ids, ctx, stride ?? ctx);
      reqs.push(...windows);
    }
    if (reqs.length === 0) throw new OpenELMError('usage', 'the file has no text to score');
    const bar = new Progress(`perplexity ${path.basename(file)}`, reqs.reduce((a, r) => a + r.cont.length, 0), 'tokens', json ? null : process.stderr);
    const tokensDone: number[] = [];
    let acc = 0;
    for (const r of reqs) { acc += r.cont.length; tokensDone.push(acc); }
    const t0 = performance.now();
    // Windows are long: one forward call per window keeps the logits buffer at one window's size.
    const scorer = new LoglikScorer(model, { batchSize: get.num(flags, 'batch-size'), maxLength: ctx, rowsPerCall: 512 });
    const res = await scorer.score(reqs, (done) => bar.update(Math.round((done / reqs.length) * acc)));
    let ll = 0, n = 0;
    res.forEach((r, i) => { ll += r.ll; n += reqs[i].cont.length; });
    const nll = -ll / n;
    const out = {
      tokens: n, nll, ppl: Math.exp(nll), seconds: (performance.now() - t0) / 1000,
      mode: rolling ? 'rolling' : stride !== undefined && stride < ctx ? 'stride' : 'windows',
      context: ctx, stride: rolling ? null : stride ?? ctx, documents: docs.length, loglikelihood: ll, words, bytes,
      ...rollingMetrics(ll, words, bytes),
    };
    if (json) printJson(out);
    else {
      bar.finish(acc);
      process.stderr.write(`tokens ${out.tokens}  nll ${out.nll.toFixed(6)}  ppl ${out.ppl.toFixed(4)}  word_ppl ${out.word_perplexity.toFixed(4)}  byte_ppl ${out.byte_perplexity.toFixed(4)}  bits/byte ${out.bits_per_byte.toFixed(4)}\n`);
    }
    return 0;
  } finally {
    backend.dispose();
  }
}
