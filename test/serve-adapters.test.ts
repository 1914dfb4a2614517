// Adapters per request: named LoRA adapters loaded once over one base and applied unmerged at run
// time, selected by a request's `model`. Checked against PEFT's own adapted logits (goldens) and
// against the same adapter merged at load.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { loadModel, type LoadedModel } from '../src/api.js';
import { createServer, type OpenELMServer } from '../src/serve/server.js';
import { OpenELMError } from '../src/core/errors.js';
import { splitAdapterFlags } from '../src/cli/common.js';
import { GOLDEN_ROOT, Golden } from './helpers/golden.js';
import { tinyModelDir } from './helpers/tiny.js';
import { runCliAsync } from './helpers/cli-async.js';
import { TOL, assertClose } from './tolerances.js';

const BASE = path.join(GOLDEN_ROOT, 'gqa4-hd32');
const adapterDir = (c: string) => path.join(GOLDEN_ROOT, 'peft', c, 'adapter');
const PROMPT = [1, 17, 250, 3, 99, 42, 7, 311];
const MAX = 12;

const model: LoadedModel = await loadModel(BASE, { backend: 'js', adapters: { lora: adapterDir('lora'), rs: adapterDir('lora-rslora') } });
const srv: OpenELMServer = await createServer({ model, port: 0, modelId: 'base', slots: 4, warmup: false });
await srv.ready;
after(async () => { await srv.close(); model.dispose(); });

async function complete(body: Record<string, unknown>) {
  const res = await fetch(`${srv.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: JSON.parse(await res.text()) };
}

async function greedyText(m: string | undefined): Promise<string> {
  const r = await complete({ ...(m === undefined ? {} : { model: m }), prompt: PROMPT, max_tokens: MAX, temperature: 0 });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.model, m ?? 'base');
  assert.equal(r.json.usage.completion_tokens, MAX);
  return r.json.choices[0].text;
}

test('unmerged run-time LoRA gives PEFT\'s adapted logits (goldens), and the base stays the base', async () => {
  for (const [name, c] of [['lora', 'lora'], ['rs', 'lora-rslora']] as const) {
    const g = new Golden(path.join('peft', c));
    const ids = g.i32('forward.input_ids'), [B, T] = g.shape('forward.input_ids'), V = model.config.vocabSize;
    const want = g.f32('forward.logits');
    for (let b = 0; b < B; b++) {
      const got = await model.modelFor(name).logitsAll(Array.from(ids.subarray(b * T, (b + 1) * T)));
      assertClose(got, want.subarray(b * T * V, (b + 1) * T * V), TOL.refLogits, `${c} row ${b}`);
    }
    // the base view is untouched by the adapter views (a shared workspace, separate adapters)
    const base = await model.model.logitsAll(Array.from(ids.subarray(0, T)));
    let diff = 0;
    for (let i = 0; i < base.length; i++) diff = Math.max(diff, Math.abs(base[i] - want[i]));
    assert.ok(diff > 1e-3, `${c}: the adapter changes the logits (max diff ${diff})`);
    g.close();
  }
});

test('over HTTP, greedy output with an adapter equals the adapter merged at load; mixed concurrent requests each get their own', async () => {
  const expected = new Map<string | undefined, number[]>();
  for (const [name, c] of [['lora', 'lora'], ['rs', 'lora-rslora'], [undefined, null]] as const) {
    const merged = await loadModel(BASE, { backend: 'js', ...(c ? { adapter: adapterDir(c) } : {}) });
    try {
      // merged vs unmerged logits: the tolerance the greedy comparison relies on
      if (name) assertClose(await model.modelFor(name).logitsAll(PROMPT), await merged.model.logitsAll(PROMPT), TOL.adapterUnmerged, `${name} unmerged vs merged`);
      const r = await merged.generate(PROMPT, { maxTokens: MAX });
      expected.set(name, r.ids);
    } finally {
      merged.dispose();
    }
  }
  assert.notDeepEqual(expected.get('lora'), expected.get(undefined), 'the adapter changes the greedy output');
  assert.notDeepEqual(expected.get('rs'), expected.get('lora'));
  const tok = model.tokenizer;
  const asText = (ids: number[]) => tok.decode(ids);
  // one at a time
  for (const m of ['lora', 'rs', undefined] as const) assert.deepEqual(await greedyText(m), asText(expected.get(m)!), `${m ?? 'base'} alone`);
  assert.deepEqual(await greedyText('base'), asText(expected.get(undefined)!), 'the base id selects the base');
  // all at once (plus a second lora request so one group holds two rows)
  const steps0 = srv.engine!.totals.steps;
  const order = ['lora', undefined, 'rs', 'lora'] as const;
  const got = await Promise.all(order.map((m) => greedyText(m)));
  order.forEach((m, i) => { assert.deepEqual(got[i], asText(expected.get(m)!), `${m ?? 'base'} concurrent`); });
  // three groups of MAX tokens each cannot share steps: at least 3·MAX forward calls
  assert.ok(srv.engine!.totals.steps - steps0 >= 3 * MAX, 'one adapter per forward call');
});

test('/v1/models lists the base and its adapters', async () => {
  const r = await fetch(`${srv.url}/v1/models`);
  const j = await r.json() as { data: { id: string; parent: string | null; root: string }[] };
  assert.deepEqual(j.data.map((d) => d.id), ['base', 'lora', 'rs']);
  assert.deepEqual(j.data.map((d) => d.parent), [null, 'base', 'base']);
});

test('an unknown model name is a 404 in OpenAI\'s error shape once adapters are loaded; with none, any name is the base', async () => {
  const r = await complete({ model: 'lorra', prompt: PROMPT, max_tokens: 2 });
  assert.equal(r.status, 404);
  assert.equal(r.json.error.code, 404);
  assert.match(r.json.error.message, /"lorra" does not exist; this server has "base", "lora", "rs"/);
  const chat = await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'nope', messages: [{ role: 'user', content: 'hi' }] }) });
  assert.equal(chat.status, 404);
  assert.equal((await complete({ model: 7, prompt: PROMPT, max_tokens: 1 })).status, 400);
  const plain = await loadModel(tinyModelDir({}, 3), { backend: 'js' });
  const s = await createServer({ model: plain, port: 0, modelId: 'tiny', warmup: false });
  try {
    await s.ready;
    const res = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o', prompt: [1, 5], max_tokens: 1 }) });
    assert.equal(res.status, 200);
  } finally {
    await s.close();
    plain.dispose();
  }
});

test('bad adapters are refused with one line: unknown name, missing folder, another base, DoRA, bad names', async () => {
  const oneLine = async (p: Promise<unknown>, re: RegExp) => {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof OpenELMError, String(e));
      assert.ok(!e.message.includes('\n'), e.message);
      assert.match(e.message, re);
      return true;
    });
  };
  await oneLine(model.generate(PROMPT, { adapter: 'nope', maxTokens: 1 }), /no adapter named "nope" is loaded \(loaded: lora, rs\)/);
  await oneLine(loadModel(BASE, { backend: 'js', adapters: { x: path.join(GOLDEN_ROOT, 'no-such-adapter') } }), /adapter folder .*no-such-adapter does not exist/);
  await oneLine(loadModel(path.join(GOLDEN_ROOT, 'mha-hd64'), { backend: 'js', adapters: { x: adapterDir('lora') } }), /another base/);
  await oneLine(loadModel(BASE, { backend: 'js', adapters: { d: adapterDir('dora') } }), /adapter d is DoRA, which cannot be applied per request/);
  await oneLine(loadModel(BASE, { backend: 'js', adapters: { 'a/b': adapterDir('lora') } }), /adapter name "a\/b" is not allowed/);
  const clash = await createServer({ model: () => loadModel(BASE, { backend: 'js', adapters: { base: adapterDir('lora') } }), modelId: 'base', port: 0, warmup: false });
  await oneLine(clash.ready, /adapter name "base" is also the base model's id/);
  await clash.close();
});

test('CLI: NAME=DIR is a per-request adapter (serve only), a bare DIR is merged; --help says so', async () => {
  assert.deepEqual(splitAdapterFlags(['a=x/y', 'plain/dir', 'b=z']), { merged: ['plain/dir'], named: { a: 'x/y', b: 'z' } });
  assert.throws(() => splitAdapterFlags(['a=x', 'a=y']), /given twice/);
  const gen = await runCliAsync(['generate', '--model', BASE, '--adapter', `x=${adapterDir('lora')}`, '--prompt', 'hi', '--max-tokens', '1']);
  assert.equal(gen.status, 2, gen.stderr);
  assert.match(gen.stderr, /--adapter x=DIR \(an adapter chosen per request\) is for openelm serve/);
  const help = await runCliAsync(['serve', '--help']);
  assert.match(help.stdout + help.stderr, /NAME=DIR: a LoRA adapter folder .* applied per request/);
  assert.match(help.stdout + help.stderr, /a bare DIR is merged into the model on load/);
});

test('echo + logprobs (lm-eval\'s scoring) scores the prompt under the selected adapter', async () => {
  const score = async (m: string | undefined) => {
    const r = await complete({ ...(m ? { model: m } : {}), prompt: PROMPT, max_tokens: 1, echo: true, logprobs: 1, temperature: 0 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json.choices[0].logprobs.token_logprobs.slice(1, PROMPT.length) as number[];
  };
  const want = async (m: string | undefined) => {
    const logits = await model.modelFor(m).logitsAll(PROMPT), V = model.config.vocabSize;
    return PROMPT.slice(1).map((t, i) => {
      const row = logits.subarray(i * V, (i + 1) * V);
      let mx = -Infinity, s = 0;
      for (const v of row) mx = Math.max(mx, v);
      for (const v of row) s += Math.exp(v - mx);
      return row[t] - mx - Math.log(s);
    });
  };
  const lora = await score('lora'), base = await score(undefined);
  assertClose(lora, await want('lora'), TOL.refLogits, 'lora prompt logprobs');
  assertClose(base, await want(undefined), TOL.refLogits, 'base prompt logprobs');
  assert.ok(Math.abs(lora[2] - base[2]) > 1e-4, 'the adapter changes the scores');
});
