// Speculative decoding: greedy output is the plain decode's token for token (on every backend and
// weight format, with prompt lookup and with draft models that agree always, sometimes or never),
// sampling keeps the distribution (the accept/reject rule against the exact one), and the options
// are checked.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sampler } from '../src/generate/sampler.js';
import { generateBatch } from '../src/generate/generate.js';
import { lookupDraft, Speculator, type SpeculativeOptions } from '../src/generate/speculative.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { loadModelFolder } from '../src/io/model-folder.js';
import { Rng } from '../src/core/rng.js';
import { BACKEND_CASES } from './helpers/backends.js';
import { tinyModel, tinyModelDir } from './helpers/tiny.js';
import type { OpenELM } from '../src/model/openelm.js';
import type { GenerateOptions } from '../src/generate/generate.js';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel, type LoadedModel } from '../src/api.js';
import { Engine } from '../src/serve/engine.js';
import { createServer } from '../src/serve/server.js';
import { runCli } from './helpers/cli.js';

const tok = loadTokenizer();

test('prompt lookup proposes what followed the latest earlier match of the longest n-gram', () => {
  //            0  1  2  3  4  5  6  7  8  9
  const seq = [5, 6, 7, 8, 9, 5, 6, 7, 1, 5, 6];
  // trailing [5, 6]: latest earlier match at 5 → 7, 1, 5, 6 (up to k)
  assert.deepEqual(lookupDraft(seq, 3, 2, 3), [7, 1, 5]);
  // trailing 3-gram [1, 5, 6] never occurred earlier; n = 2 matches
  assert.deepEqual(lookupDraft(seq, 10, 2, 3), [7, 1, 5, 6]);
  assert.deepEqual(lookupDraft([1, 2, 3, 4], 4, 1, 3), []);
  assert.deepEqual(lookupDraft([4, 2, 3, 4], 4, 1, 3), [2, 3, 4]);
  assert.deepEqual(lookupDraft(seq, 0, 1, 3), []);
});

/** Total variation distance between two distributions over the same support. */
function tv(a: number[], b: number[]): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += Math.abs(a[i] - b[i]);
  return d / 2;
}

test('speculative sampling draws from the model distribution whatever the draft distribution', () => {
  const logits = [1.2, 0.3, -0.5, 2.0, 0.9, -2.0];
  const V = logits.length;
  const opts = { temperature: 0.8, topK: 5 };
  // the exact target distribution: temperature, then the top 5
  const ref = new Sampler(opts).distribution(Float32Array.from(logits));
  const p = new Array(V).fill(0);
  for (let i = 0; i < ref.ids.length; i++) p[ref.ids[i]] = ref.w[i] / ref.total;
  const n = 30000;
  // a draft distribution far from p (it even favours a token p excludes), and a certain draft
  const qs: (number[] | null)[] = [[0.05, 0.4, 0.1, 0.05, 0.1, 0.3], null];
  for (const qa of qs) {
    const s = new Sampler({ ...opts, seed: 7 }), draw = new Rng(11);
    const h = new Array(V).fill(0);
    let accepted = 0;
    for (let t = 0; t < n; t++) {
      let d = 0;
      if (qa) { let r = draw.next(); while (d < V - 1 && (r -= qa[d]) >= 0) d++; } else d = t % V;
      const id = s.speculate(Float32Array.from(logits), [], [], d, qa ? Float64Array.from(qa) : null);
      h[id]++;
      if (id === d) accepted++;
    }
    const f = h.map((c) => c / n);
    assert.ok(tv(f, p) < 0.015, `distribution ${f.map((v) => v.toFixed(3))} vs ${p.map((v) => v.toFixed(3))}`);
    // acceptance is Σ min(p, q) (or the mean of p over the uniform certain drafts)
    const want = qa ? p.reduce((a, pi, i) => a + Math.min(pi, qa[i]), 0) : p.reduce((a, v) => a + v, 0) / V;
    assert.ok(Math.abs(accepted / n - want) < 0.015, `acceptance ${accepted / n} vs ${want}`);
  }
  // greedy needs no rule: the argmax, whatever was drafted
  assert.equal(new Sampler({ temperature: 0 }).speculate(Float32Array.from(logits), [], [], 1, null), 3);
});

const PROMPTS = [
  // repetitive: prompt lookup finds its continuations
  [1, 17, 29, 40, 17, 29, 40, 17, 29, 40, 17, 29],
  [1, 250, 3, 9, 77, 120, 41],
];

async function both(model: OpenELM, prompts: number[][], opts: GenerateOptions, spec: SpeculativeOptions) {
  const plain = await generateBatch(model, tok, prompts, opts);
  const fast = await generateBatch(model, tok, prompts, { ...opts, speculative: spec });
  return { plain, fast };
}

for (const bc of BACKEND_CASES) {
  test(`[${bc.name}] speculative greedy equals plain greedy, every dtype, lookup and draft models`, { skip: bc.available() ?? false }, async () => {
    const hf = { vocab_size: 300, max_context_length: 96 };
    const dir = tinyModelDir(hf, 3), draftDir = tinyModelDir({ ...hf, num_transformer_layers: 2 }, 9);
    for (const dtype of ['f32', 'bf16', 'q8', 'q4'] as const) {
      const be = await bc.make();
      try {
        const model = loadModelFolder(dir, { backend: be, dtype });
        const other = loadModelFolder(draftDir, { backend: be, dtype });
        const cases: [string, SpeculativeOptions, GenerateOptions][] = [
          ['lookup', { lookup: true }, {}],
          ['lookup n-gram 1, 7 per step', { lookup: { ngramMin: 1, ngramMax: 3 }, maxDraft: 7 }, {}],
          ['itself as draft', { draftModel: model, maxDraft: 3 }, {}],
          ['another draft', { draftModel: other }, {}],
          ['lookup with penalties and a stop string', { lookup: { ngramMin: 1 } }, { repetitionPenalty: 1.3, stop: ['ab'] }],
        ];
        for (const [what, spec, extra] of cases) {
          for (const maxTokens of [1, 2, 40]) {
            const opts = { temperature: 0, maxTokens, ignoreEos: true, ...extra };
            const { plain, fast } = await both(model, PROMPTS, opts, spec);
            for (let i = 0; i < PROMPTS.length; i++) {
              assert.deepEqual(fast[i].ids, plain[i].ids, `${dtype} ${what} max ${maxTokens} prompt ${i}`);
              assert.equal(fast[i].text, plain[i].text);
              assert.equal(fast[i].finishReason, plain[i].finishReason);
            }
            const st = fast[0].speculative!;
            assert.ok(st.accepted <= st.drafted);
            if (what === 'itself as draft' && maxTokens === 40) {
              // a model agrees with itself: every proposal is taken, 4 tokens a step
              assert.equal(st.accepted, st.drafted, `${dtype}: ${JSON.stringify(st)}`);
              assert.ok(st.steps <= Math.ceil(39 / 4) + 1, `${dtype}: ${JSON.stringify(st)}`);
            }
          }
        }
        // the repetitive prompt makes lookup pay: fewer steps than tokens
        const { fast } = await both(model, [PROMPTS[0]], { temperature: 0, maxTokens: 40, ignoreEos: true }, { lookup: { ngramMin: 1 } });
        const st = fast[0].speculative!;
        assert.ok(st.accepted > 0 && st.steps < 39, `${dtype}: ${JSON.stringify(st)}`);
      } finally { be.dispose(); }
    }
  });
}

test('speculative sampling: seeded runs repeat, tokens stay in the vocabulary, stops still apply', async () => {
  const { model } = tinyModel({ vocab_size: 300, max_context_length: 96 }, 3);
  const { model: draft } = tinyModel({ vocab_size: 300, max_context_length: 96, num_transformer_layers: 2 }, 9);
  for (const spec of [{ lookup: { ngramMin: 1 } }, { draftModel: draft }] as SpeculativeOptions[]) {
    const opts = { temperature: 0.9, topP: 0.95, seed: 5, maxTokens: 30, speculative: spec };
    const a = await generateBatch(model, tok, PROMPTS, opts);
    const b = await generateBatch(model, tok, PROMPTS, opts);
    for (let i = 0; i < PROMPTS.length; i++) {
      assert.deepEqual(a[i].ids, b[i].ids);
      assert.ok(a[i].ids.length >= 1 && a[i].ids.length <= 30);
      assert.ok(a[i].ids.every((t) => t >= 0 && t < 300));
      if (a[i].finishReason === 'length') assert.equal(a[i].ids.length, 30);
    }
  }
});

test('speculative options are checked', () => {
  const { model } = tinyModel({ vocab_size: 300 }, 3);
  const { model: wide } = tinyModel({ vocab_size: 320 }, 3);
  assert.throws(() => new Speculator(model, { maxDraft: 8 }), /from 1 to 7/);
  assert.throws(() => new Speculator(model, { maxDraft: 0 }), /from 1 to 7/);
  assert.throws(() => new Speculator(model, { lookup: { ngramMin: 3, ngramMax: 2 } }), /n-gram/);
  assert.throws(() => new Speculator(model, { lookup: true, draftModel: model }), /not both/);
  assert.throws(() => new Speculator(model, { draftModel: wide }), /vocabulary has 320 tokens but the model's has 300/);
});

// ---------------------------------------------------------------------------------------------
// the front doors: CLI generate, the server's engine, the server with a draft model it loads

const big = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 128, rope_max_length: 128 }, 11);
const bigDraft = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 1, max_context_length: 128, rope_max_length: 128 }, 12);
const narrow = tinyModelDir({ vocab_size: 300 }, 12);
const REPEAT = 'the cat sat on the mat. the cat sat on the mat. the cat sat on the';

test('CLI: generate --lookup and --draft-model print what plain greedy prints, with acceptance figures', () => {
  const base = ['generate', '--model', big, '--prompt', REPEAT, '--max-tokens', '24', '--ignore-eos', '--backend', 'wasm', '--json'];
  const plain = runCli(base);
  assert.equal(plain.status, 0, plain.stderr);
  const want = JSON.parse(plain.stdout);
  for (const extra of [['--lookup'], ['--draft-model', bigDraft, '--draft-max', '5']]) {
    const r = runCli([...base, ...extra]);
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout);
    assert.deepEqual(got.ids, want.ids, extra.join(' '));
    assert.equal(got.text, want.text);
    assert.ok(got.speculative.drafted >= got.speculative.accepted && got.speculative.steps > 0, JSON.stringify(got.speculative));
  }
  const text = runCli(base.filter((a) => a !== '--json').concat('--lookup'));
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stderr, /\d+\/\d+ drafted tokens accepted/);
});

test('CLI: speculative misuse is one line and exit 2', () => {
  const base = ['generate', '--model', big, '--prompt', 'x', '--max-tokens', '2', '--backend', 'js'];
  for (const [extra, re] of [
    [['--lookup', '--draft-model', bigDraft], /two ways to draft: give one/],
    [['--draft-model', narrow], /vocabulary of 300 tokens but the model's has 32000/],
    [['--lookup', '--draft-max', '8'], /--draft-max/],
    [['--draft-model', path.join(os.tmpdir(), 'no-such-openelm-draft')], /does not exist|not found/],
  ] as [string[], RegExp][]) {
    const r = runCli([...base, ...extra]);
    assert.equal(r.status, 2, `${extra.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('server: speculative engine answers concurrent greedy requests exactly as the plain one', async () => {
  const m = await loadModel(big, { backend: 'js' });
  const draft = await loadModel(bigDraft, { backend: m.backend });
  try {
    const prompts = [REPEAT, 'Once upon a time', 'a b a b a b a b'].map((t) => m.encode(t));
    const drain = async (g: AsyncGenerator<unknown, { ids: number[]; text: string }>) => { let r; do r = await g.next(); while (!r.done); return r.value; };
    const run = (spec?: SpeculativeOptions) => {
      const e = new Engine(m.model, m.tokenizer, { slots: 2, contextSize: 96, speculative: spec });
      return Promise.all(prompts.map((p, i) => drain(e.submit(p, { temperature: 0, maxTokens: 20 + 5 * i, ignoreEos: true }))));
    };
    const plain = await run();
    for (const spec of [{ lookup: true }, { draftModel: draft, maxDraft: 4 }] as SpeculativeOptions[]) {
      const fast = await run(spec);
      for (let i = 0; i < prompts.length; i++) assert.deepEqual(fast[i].ids, plain[i].ids, `${Object.keys(spec)} prompt ${i}`);
    }
    // the server loads the draft onto the model's backend once the model is ready, and frees it on close
    const body = JSON.stringify({ prompt: REPEAT, max_tokens: 16, temperature: 0, ignore_eos: true });
    const texts: string[] = [];
    for (const speculative of [undefined, { draftModel: (mm: LoadedModel) => loadModel(bigDraft, { backend: mm.backend }) }]) {
      const srv = await createServer({ model: m, port: 0, speculative });
      await srv.ready;
      const r = await fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      assert.equal(r.status, 200);
      texts.push(((await r.json()) as { choices: { text: string }[] }).choices[0].text);
      await srv.close();
    }
    assert.equal(texts[1], texts[0]);
  } finally {
    draft.dispose();
    m.dispose();
  }
});

test('speculation combines with a grammar and logprobs: same tokens, same logprobs, in generate and the engine', async () => {
  const m = await loadModel(big, { backend: 'js' });
  try {
    const grammar = { kind: 'grammar' as const, text: 'root ::= ("the cat " | "sat on " | "the mat ")+ "."' };
    const prompts = [REPEAT, 'the cat sat on the cat sat on the'].map((t) => m.encode(t));
    const opts = (): GenerateOptions => ({ temperature: 0, maxTokens: 24, logprobs: 2 });
    const drain = async (g: AsyncGenerator<{ ids: number[]; logprobs?: unknown[] }, { ids: number[]; logprobs?: unknown[] }>) => {
      const streamed: unknown[] = [];
      let r;
      while (!(r = await g.next()).done) { assert.equal(r.value.logprobs?.length, r.value.ids.length, 'a chunk has one logprob per id'); streamed.push(...r.value.logprobs!); }
      assert.deepEqual(streamed, r.value.logprobs);
      return r.value;
    };
    const viaEngine = (spec?: SpeculativeOptions) => {
      const e = new Engine(m.model, m.tokenizer, { slots: 2, contextSize: 96, speculative: spec });
      return Promise.all(prompts.map((p) => drain(e.submit(p, { ...opts(), constraint: m.grammars.matcher(grammar) }))));
    };
    const viaGenerate = (spec?: SpeculativeOptions) => Promise.all(prompts.map((p) =>
      generateBatch(m.model, m.tokenizer, [p], { ...opts(), constraint: m.grammars.matcher(grammar), speculative: spec }).then((r) => r[0])));
    const plain = await viaEngine();
    for (const r of plain) {
      // a valid prefix of the grammar's language (the token budget may end it inside a word)
      assert.match(m.tokenizer.decode(r.ids), /^(the cat |sat on |the mat )*(\.|t|th|the|the |the c|the ca|the cat|the m|the ma|the mat|s|sa|sat|sat |sat o|sat on)?$/);
      assert.equal(r.logprobs?.length, r.ids.length);
    }
    const spec = await viaEngine({ lookup: true });
    const gen = await viaGenerate({ lookup: true });
    const genPlain = await viaGenerate();
    for (let i = 0; i < prompts.length; i++) {
      assert.deepEqual(spec[i].ids, plain[i].ids, `engine, prompt ${i}`);
      assert.deepEqual(spec[i].logprobs, plain[i].logprobs, `engine logprobs, prompt ${i}`);
      assert.deepEqual(gen[i].ids, genPlain[i].ids, `generate, prompt ${i}`);
      assert.deepEqual(gen[i].logprobs, genPlain[i].logprobs, `generate logprobs, prompt ${i}`);
      assert.deepEqual(genPlain[i].ids, plain[i].ids);
    }
    assert.ok(gen[0].speculative!.accepted > 0, 'lookup drafts were accepted under the grammar');
  } finally {
    m.dispose();
  }
});
