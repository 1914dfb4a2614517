// `openelm bench`: llama-bench-style throughput. Prefill ("pp") is one forward pass over
// prompt-tokens random ids; decode ("tg") is gen-tokens single-token steps on top of that prompt,
// each feeding a random id (no sampling), like llama-bench's test_gen. A warm-up run of the same
// shape comes first (JIT, buffer growth, thread start-up). Also reports peak RSS (and a GPU
// backend's device memory) and the tokenizer's encoding throughput on a built-in English text.

import type { CommandSpec, ParsedFlags } from '../args.js';
import { get } from '../args.js';
import { peakRssKb } from '../../platform/node.js';
import { JSON_FLAG, MODEL_FLAGS, loadFromFlags, printJson, resolveModelDir } from '../common.js';
import { OpenELMError } from '../../core/errors.js';
import { Rng } from '../../core/rng.js';
import { readModelConfig } from '../../io/model-folder.js';
import { weightsBytes } from '../../model/openelm.js';
import type { OpenELM } from '../../model/openelm.js';
import { measureTokenizerThroughput } from '../../tokenizer/bench.js';
import { kvValuesPerToken } from '../../model/config.js';

export const spec: CommandSpec = {
  name: 'bench',
  summary: 'prefill / decode throughput (llama-bench style), peak memory and tokenizer speed',
  usage: 'openelm bench --model DIR [--dtype D] [--prompt-tokens 128] [--gen-tokens 128] [--threads N] [--backend B] [--repeats R] [--json]',
  flags: [
    ...MODEL_FLAGS,
    { name: 'prompt-tokens', type: 'int', help: 'tokens in the prefill pass', default: 128, min: 1 },
    { name: 'gen-tokens', type: 'int', help: 'single-token decode steps after the prompt', default: 128, min: 1 },
    { name: 'repeats', type: 'int', help: 'timed runs; the median is reported', default: 1, min: 1 },
    { name: 'warmup', type: 'bool', help: 'run once untimed first (--warmup=false to skip)', default: true },
    { name: 'seed', type: 'int', help: 'seed of the random token ids', default: 0, min: 0 },
    JSON_FLAG,
  ],
};

export interface BenchOptions {
  promptTokens: number;
  genTokens: number;
  repeats?: number;
  warmup?: boolean;
  seed?: number;
}

export interface BenchTimes {
  prefill_tok_s: number;
  decode_tok_s: number;
  prefill_ms: number;
  decode_ms: number;
}

const median = (a: number[]) => { const s = a.slice().sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

/** Throw unless prompt + generated tokens fit the model's context. */
export function checkBenchFits(ctx: number, promptTokens: number, genTokens: number): void {
  if (promptTokens + genTokens > ctx) {
    throw new OpenELMError('context', `--prompt-tokens ${promptTokens} + --gen-tokens ${genTokens} = ${promptTokens + genTokens} tokens do not fit the model's context of ${ctx}`);
  }
}

/** Time prefill and decode on an already loaded model. */
export async function benchModel(model: OpenELM, o: BenchOptions): Promise<BenchTimes> {
  const c = model.config;
  checkBenchFits(c.maxContextLength, o.promptTokens, o.genTokens);
  const rng = new Rng(o.seed ?? 0);
  // Ids 0-2 are <unk>/<s>/</s>; random ids above them stand for ordinary text.
  const randomId = () => (c.vocabSize > 3 ? 3 + rng.int(c.vocabSize - 3) : rng.int(c.vocabSize));
  const run = async () => {
    const cache = model.newCache(o.promptTokens + o.genTokens);
    const prompt = Array.from({ length: o.promptTokens }, randomId);
    const t0 = performance.now();
    await model.forward([{ cache, tokens: prompt }]);
    const t1 = performance.now();
    // each step waits for its greedy pick (4 bytes back), as greedy generation does; a GPU backend
    // would otherwise send the whole logits row back every token
    for (let i = 0; i < o.genTokens; i++) {
      const { logits, rows } = model.forwardDevice([{ cache, tokens: [randomId()] }]);
      await model.backend.argmax(logits, rows, c.vocabSize);
    }
    const t2 = performance.now();
    // give the KV cache back: peak RSS should count one cache, as a real run holds
    cache.dispose();
    return { prefill: t1 - t0, decode: t2 - t1 };
  };
  if (o.warmup ?? true) await run();
  const pre: number[] = [], dec: number[] = [];
  for (let r = 0; r < Math.max(1, o.repeats ?? 1); r++) {
    const t = await run();
    pre.push(t.prefill); dec.push(t.decode);
  }
  const pm = median(pre), dm = median(dec);
  return { prefill_tok_s: o.promptTokens / (pm / 1000), decode_tok_s: o.genTokens / (dm / 1000), prefill_ms: pm, decode_ms: dm };
}

const WORDS = ('the of and to in is that it was for on are as with his they at be this from have or by one had not but what all ' +
  'were when we there can an your which their said if do will each about how up out them then she many some so these would other ' +
  'into has more her two like him see time could no make than first been its who now people my made over did down only way find use ' +
  'may water long little very after words called just where most know get through back much before go good new write our used me man ' +
  'too any day same right look think also around another came come work three word must because does part even place well such here ' +
  'take why things help put years different away again off went old number great tell men say small every found still between name ' +
  'should home big give air line set own under read last never us left end along while might next sound below saw something thought ' +
  'both few those always looked show large often together asked house world going want school important until form food keep children ' +
  'feet land side without boy once animals life enough took sometimes four head above kind began almost live page got earth need far ' +
  'hand high year mother light parts country father let night following picture being study second eyes soon times story boys since ' +
  'white days ever paper hard near sentence better best across during today others however sure means knew try told young miles ' +
  'sun ways thing whole hear example heard several change answer room sea against top turned learn point city play toward five using ' +
  'himself usually money seen car morning given list became Bill Mary London Monday 1984 2024 3.5 42% well-known e-mail').split(' ');

/** Deterministic English-like prose of about `bytes` UTF-8 bytes (sentences, commas, paragraphs). */
export function englishText(bytes: number, seed = 1): string {
  const rng = new Rng(seed);
  const parts: string[] = [];
  let n = 0;
  while (n < bytes) {
    const len = 6 + rng.int(14);
    const words: string[] = [];
    for (let i = 0; i < len; i++) {
      let w = WORDS[rng.int(WORDS.length)];
      if (i === 0) w = w[0].toUpperCase() + w.slice(1);
      if (i > 2 && i < len - 2 && rng.next() < 0.08) w += ',';
      words.push(w);
    }
    const s = words.join(' ') + (rng.next() < 0.1 ? '?' : '.') + (rng.next() < 0.15 ? '\n\n' : ' ');
    parts.push(s);
    n += s.length;
  }
  return parts.join('');
}

export async function run(flags: ParsedFlags): Promise<number> {
  const promptTokens = get.num(flags, 'prompt-tokens')!, genTokens = get.num(flags, 'gen-tokens')!;
  // Cheap checks before the (possibly slow) model load.
  const dir = await resolveModelDir(get.str(flags, 'model')!);
  checkBenchFits(readModelConfig(dir).maxContextLength, promptTokens, genTokens);
  const t0 = performance.now();
  const { model, tokenizer, backend, loadMs } = await loadFromFlags({ ...flags, model: dir });
  // What a user waits for before the first token: the backend's start (WebAssembly compiled, worker
  // threads up), the weights (load_ms, that part alone) and the tokenizer.
  const readyMs = performance.now() - t0;
  try {
    const t = await benchModel(model, { promptTokens, genTokens, repeats: get.num(flags, 'repeats'), warmup: get.bool(flags, 'warmup'), seed: get.num(flags, 'seed') });
    // Peak RSS of the model run itself, before the tokenizer measurement adds its own working set.
    const rssMb = peakRssKb() / 1024;
    const weightsMb = weightsBytes(model.weights) / 2 ** 20;
    const kvMb = (kvValuesPerToken(model.config) * (promptTokens + genTokens) * 4) / 2 ** 20;
    const tk = measureTokenizerThroughput(tokenizer, englishText(1 << 20));
    const res = {
      model: get.str(flags, 'model'), dtype: model.weights.layers[0]?.qkv.dtype ?? model.weights.embed.dtype,
      backend: backend.name, threads: backend.threads,
      native: backend.library, prompt_tokens: promptTokens, gen_tokens: genTokens,
      prefill_tok_s: round(t.prefill_tok_s), decode_tok_s: round(t.decode_tok_s),
      prefill_ms: round(t.prefill_ms), decode_ms: round(t.decode_ms),
      rss_mb: round(rssMb), weights_mb: round(weightsMb), kv_mb: round(kvMb), rss_over_weights_kv: round(rssMb / (weightsMb + kvMb)),
      load_ms: round(loadMs), ready_ms: round(readyMs),
      // a GPU backend's own memory (weights, KV cache, buffers kept for reuse): RSS does not show it
      ...(backend.device === 'gpu' ? { device_mb: round(backend.memory().reserved / 2 ** 20), device: backend.describe() } : {}),
      tokenizer_mb_s: round(tk.mb_per_s), tokenizer_tokens: tk.tokens,
    };
    if (get.bool(flags, 'json')) printJson(res);
    else {
      const lines = [
        `model ${res.model}  dtype ${res.dtype}  backend ${res.backend}${res.native ? ` + native sgemm (${res.native})` : ''}  threads ${res.threads}`,
        `prefill  pp${promptTokens}  ${res.prefill_tok_s.toFixed(2).padStart(10)} tok/s`,
        `decode   tg${genTokens}  ${res.decode_tok_s.toFixed(2).padStart(10)} tok/s`,
        `peak RSS ${res.rss_mb.toFixed(0)} MB   load ${(res.load_ms / 1000).toFixed(2)} s (ready ${(res.ready_ms / 1000).toFixed(2)} s)   tokenizer ${res.tokenizer_mb_s.toFixed(2)} MB/s`,
      ];
      if (res.device_mb !== undefined) lines.push(`device memory ${res.device_mb.toFixed(0)} MB on ${res.device}`);
      process.stdout.write(lines.join('\n') + '\n');
    }
    return 0;
  } finally {
    backend.dispose();
  }
}

function round(v: number): number { return Math.round(v * 100) / 100; }
