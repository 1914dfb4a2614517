// Speculative decoding: decode speed and acceptance of prompt lookup and of a draft model against
// plain greedy decoding, on a natural prompt and on a repetitive one (output that copies its input,
// where lookup shines).
//
//   npx tsc -p tsconfig.json && node dist/bench/speculative.js --model runs/quickstart
//     [--draft-model DIR] [--dtype auto] [--threads 2] [--tokens 128] [--rounds 3] [--draft-max 3]
//
// One process, the model loaded once; the modes alternate within each round and each keeps its
// best decode speed (the machines are shared). Every mode must produce the plain run's tokens
// (greedy), or the benchmark fails. Prints one JSON object: per prompt and mode, decode tok/s, the
// speed-up over plain, the acceptance rate (accepted / drafted) and tokens per verification step.

import { benchArgs } from './args.js';
import { loadModel, type LoadedModel } from '../src/api.js';
import type { SpeculativeOptions } from '../src/generate/speculative.js';

const { values: a } = benchArgs({
  options: {
    model: { type: 'string' }, 'draft-model': { type: 'string' }, dtype: { type: 'string', default: 'auto' },
    threads: { type: 'string' }, tokens: { type: 'string', default: '128' }, rounds: { type: 'string', default: '3' },
    'draft-max': { type: 'string', default: '3' }, backend: { type: 'string', default: 'wasm' },
  },
});
if (!a.model) { process.stderr.write('usage: node dist/bench/speculative.js --model DIR [--draft-model DIR] [--dtype D] [--threads N] [--tokens N] [--rounds N]\n'); process.exit(2); }

const threads = a.threads === undefined ? undefined : Number(a.threads);
const tokens = Number(a.tokens), rounds = Number(a.rounds), maxDraft = Number(a['draft-max']);
const dtype = a.dtype as 'auto';
const m = await loadModel(a.model, { dtype, threads, backend: a.backend, native: 'off' });
let draft: LoadedModel | undefined;
if (a['draft-model']) draft = await loadModel(a['draft-model'], { dtype, backend: m.backend });

const PASSAGE = 'To be, or not to be, that is the question: Whether \'tis nobler in the mind to suffer the slings and arrows of outrageous fortune, or to take arms against a sea of troubles and by opposing end them.';
const prompts: Record<string, string> = {
  natural: 'ROMEO:\nBut soft, what light through yonder window breaks?',
  repetitive: `${PASSAGE}\n\n${PASSAGE}\n\n${PASSAGE}\n\nTo be, or not to be,`,
};
const modes: Record<string, SpeculativeOptions | undefined> = { plain: undefined, lookup: { lookup: true, maxDraft } };
if (draft) modes.draft = { draftModel: draft, maxDraft };

const out: Record<string, Record<string, Record<string, number>>> = {};
for (const [pname, text] of Object.entries(prompts)) {
  const ids = m.encode(text);
  const best: Record<string, { tps: number; drafted: number; accepted: number; steps: number; n: number }> = {};
  let want: number[] | undefined;
  for (let r = 0; r < rounds; r++) {
    // alternate the order each round so no mode always runs first (warm caches, turbo)
    const names = Object.keys(modes);
    if (r % 2) names.reverse();
    for (const name of names) {
      const res = await m.generate(ids, { temperature: 0, repetitionPenalty: 1, maxTokens: tokens, ignoreEos: true, speculative: modes[name] });
      if (!want) want = res.ids;
      else if (res.ids.join() !== want.join()) throw new Error(`${name} on the ${pname} prompt differs from plain greedy decoding`);
      const tps = res.timings.predicted_per_second;
      const s = res.speculative ?? { drafted: 0, accepted: 0, steps: res.ids.length - 1 };
      if (!best[name] || tps > best[name].tps) best[name] = { tps, ...s, n: res.ids.length };
    }
  }
  out[pname] = {};
  for (const [name, b] of Object.entries(best)) {
    out[pname][name] = {
      decode_tok_s: +b.tps.toFixed(2),
      speedup: +(b.tps / best.plain.tps).toFixed(3),
      acceptance: b.drafted ? +(b.accepted / b.drafted).toFixed(3) : 0,
      tokens_per_step: +((b.n - 1) / Math.max(1, b.steps)).toFixed(3),
    };
  }
}
process.stdout.write(JSON.stringify({
  model: a.model, draft_model: a['draft-model'] ?? null, dtype: a.dtype, backend: m.backend.describe(), tokens, rounds, draft_max: maxDraft, results: out,
}, null, 1) + '\n');
draft?.dispose();
m.dispose();
