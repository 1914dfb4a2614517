// The web app in a real browser (Debian's Chromium through playwright-core), served as static files
// by a plain server that sets COOP/COEP: the page itself loads and runs the model in its Web Worker.
// Greedy ids in the page must equal Node's; bad input must end in a clear message in the page.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, Locator, Page } from 'playwright-core';
import { loadModel } from '../src/api.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { DEFAULT_FINETUNE, type FineTuneSettings } from '../src/browser/finetune.js';
import { loraFineTuner } from '../src/browser/lora-finetune.js';
import { keepWeightSource } from '../src/browser/weight-files.js';
import { kvValuesPerToken, parameterCount, resolveConfig } from '../src/model/config.js';
import { GOLDEN_ROOT, goldenNames } from './helpers/golden.js';
import { TOL, assertClose } from './tolerances.js';
import { presetWithLayers, tinyModelDir } from './helpers/tiny.js';
import { startStaticServer, type StaticServer } from './helpers/static-server.js';
import { browserUnavailable, builtWebApp, launchChromium, newPage, runHook, type PageDocument } from './helpers/browser.js';

declare const document: PageDocument;
declare const navigator: { deviceMemory?: number };

/** The names in the app's OPFS folder, and the Cache API caches (in the page; a string: no DOM types here). */
const KEPT_JS = `(async () => {
  const root = await navigator.storage.getDirectory();
  const names = [];
  try { for await (const n of (await root.getDirectoryHandle('openelm-models')).keys()) names.push(n); } catch {}
  return { names: names.sort(), caches: await caches.keys() };
})()`;

// Every token of this prompt is inside the golden models' 384-token vocabulary (checked below).
const PROMPT = 'in the a b c';
const MAX_TOKENS = 12;
// Fine-tuning in the page: a few LoRA steps on a text the golden models can tokenize.
const FT_TEXT = 'in the a b c in the a b c in the a b c\n\nin the a b c in the a b c';
const FT: FineTuneSettings = { ...DEFAULT_FINETUNE, method: 'lora', learningRate: 2e-2, steps: 5, batchSize: 2, sequenceLength: 16 };
const SHOTS = process.env.OPENELM_SCREENSHOTS ?? path.join(os.tmpdir(), 'openelm-screenshots');

async function nodeIds(dir: string, backend = 'wasm'): Promise<number[]> {
  const lm = await loadModel(dir, { backend, threads: 2 });
  try {
    const ids = lm.encode(PROMPT);
    assert.ok(ids.every((i) => i < lm.config.vocabSize), `prompt ids ${ids} must fit the vocabulary`);
    return (await lm.generate(PROMPT, { maxTokens: MAX_TOKENS, temperature: 0 })).ids;
  } finally {
    lm.dispose();
  }
}

/** FT's LoRA run on mha-hd64 in Node on WASM with 2 threads: the losses, and the tuned model's greedy ids. */
async function nodeLora(): Promise<{ losses: number[]; tunedIds: number[] }> {
  // native: 'off': the page has no native sgemm, and its products must be the same WASM kernels
  const lm = await loadModel(path.join(GOLDEN_ROOT, 'mha-hd64'), { backend: 'wasm', threads: 2, native: 'off' });
  keepWeightSource(lm, { open: async () => openCheckpoint(path.join(GOLDEN_ROOT, 'mha-hd64')) });
  const job = await loraFineTuner.prepare(lm, { format: 'text', content: FT_TEXT }, FT);
  try {
    const losses: number[] = [];
    await job.run((s) => losses.push(s.loss), new AbortController().signal);
    const tunedIds = (await (await job.use(true)).generate(PROMPT, { maxTokens: MAX_TOKENS, temperature: 0 })).ids;
    return { losses, tunedIds };
  } finally {
    job.dispose(); lm.dispose();
  }
}

/** FT's LoRA run through the Fine-tune tab of a page with a model loaded: its losses, and a screenshot. */
async function loraInPage(page: Page, shot: string): Promise<{ ft: Locator; losses: number[] }> {
  await page.locator('nav.tabs button[data-tab=finetune]').click();
  const ft = page.locator('.finetune-view');
  await ft.locator('.segmented button[data-format=text]').click();
  await ft.locator('textarea').fill(FT_TEXT);
  await ft.locator('.settings-grid select').selectOption('lora');
  const num = ft.locator('.settings-grid input[type=number]');
  await num.nth(2).fill(String(FT.learningRate));
  await num.nth(3).fill(String(FT.steps));
  await num.nth(4).fill(String(FT.batchSize));
  await num.nth(5).fill(String(FT.sequenceLength));
  await ft.locator('button.primary').click();
  await page.waitForFunction(() => /done in/.test(document.querySelector('.train-status')?.textContent ?? ''), null, { timeout: 60_000 });
  const losses = JSON.parse(await page.evaluate(() => document.body.dataset.losses ?? '[]')) as number[];
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, shot), fullPage: true });
  return { ft, losses };
}

const hook = (model: string, extra: Record<string, string> = {}) => ({
  model, prompt: PROMPT, max_tokens: String(MAX_TOKENS), temperature: '0', backend: 'wasm', threads: '2', keep: '0', ...extra,
});

describe('the web app in Chromium', { skip: browserUnavailable() ?? false }, () => {
  let browser: Browser;
  let srv: StaticServer;
  let fixtures: string;
  let tiny: string;

  before(async () => {
    const app = await builtWebApp();
    fixtures = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-browser-fixtures-'));
    fs.mkdirSync(path.join(fixtures, 'empty'));
    // A small random model with a long context and an EOS it never emits, for streaming and stop:
    // wide and deep enough (2.5M parameters) that 3000 tokens take many seconds, so stop has time to land.
    tiny = tinyModelDir({ max_context_length: 4096, rope_max_length: 4096, eos_token_id: 1 << 20, model_dim: 256, num_transformer_layers: 6, head_dim: 32 });
    srv = await startStaticServer({
      mounts: {
        '/': app, '/models/': GOLDEN_ROOT, '/fixtures/': fixtures, '/tiny/': tiny,
        // The hub's URL layout: <endpoint>/<org>/<name>/resolve/<revision>/<file>
        '/hub/test/mha-hd64/resolve/main/': path.join(GOLDEN_ROOT, 'mha-hd64'),
        // the golden models again, where a weight download breaks off part way
        '/cut/': GOLDEN_ROOT,
      },
      cut: { '/cut/mha-hd64/model.safetensors': 100_000 },
    });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await srv?.close();
    if (fixtures) fs.rmSync(fixtures, { recursive: true, force: true });
    if (tiny) fs.rmSync(tiny, { recursive: true, force: true });
  });

  test('greedy ids in the page equal Node\'s on the golden models (wasm, cross-origin isolated, 2 threads)', async () => {
    const names = goldenNames();
    assert.ok(names.length >= 3);
    for (const name of names) {
      const want = await nodeIds(path.join(GOLDEN_ROOT, name));
      const { context, page, pageErrors } = await newPage(browser);
      const r = await runHook(page, srv.url, hook(`./models/${name}/`));
      await context.close();
      assert.equal(r.error, undefined, `${name}: ${r.error}`);
      assert.deepEqual(r.ids, want, `${name}: page ids differ from Node's`);
      assert.equal(r.backend, 'wasm');
      assert.equal(r.threads, 2);
      assert.equal(r.isolated, true);
      assert.deepEqual(pageErrors, []);
    }
  });

  test('greedy ids in the page on WebGPU (navigator.gpu) equal Node\'s WASM ids on the golden models', async () => {
    for (const name of goldenNames()) {
      const want = await nodeIds(path.join(GOLDEN_ROOT, name));
      const { context, page, pageErrors } = await newPage(browser);
      const r = await runHook(page, srv.url, hook(`./models/${name}/`, { backend: 'webgpu' }));
      await context.close();
      assert.ok(r.backends.includes('webgpu'), `the page offers ${r.backends.join(', ')}`);
      assert.equal(r.error, undefined, `${name}: ${r.error}`);
      assert.equal(r.backend, 'webgpu');
      assert.deepEqual(r.ids, want, `${name}: WebGPU ids in the page differ from Node's WASM ids`);
      assert.deepEqual(pageErrors, []);
    }
  });

  test('WebGPU asked for where the browser gives no adapter is a clear error in the page; auto runs WASM there', async () => {
    // Chromium on Linux without --enable-unsafe-webgpu has navigator.gpu but no adapter.
    const plain = await launchChromium([], { webgpu: false });
    try {
      let { context, page, pageErrors } = await newPage(plain);
      let r = await runHook(page, srv.url, hook('./models/mha-hd64/', { backend: 'webgpu' }));
      await context.close();
      assert.match(r.error ?? '(no error)', /^no WebGPU adapter found: WebGPU is off in this browser or its GPU is blocklisted .*use the wasm backend instead$/);
      assert.equal(r.ids, undefined);
      assert.ok(r.bannerVisible, 'the message is shown');
      assert.equal(r.uncaught, undefined);
      assert.deepEqual(pageErrors, []);

      ({ context, page, pageErrors } = await newPage(plain));
      r = await runHook(page, srv.url, hook('./models/mha-hd64/', { backend: 'auto' }));
      await context.close();
      assert.equal(r.error, undefined, r.error);
      assert.equal(r.backend, 'wasm');
      assert.deepEqual(r.ids, await nodeIds(path.join(GOLDEN_ROOT, 'mha-hd64')));
      assert.deepEqual(pageErrors, []);
    } finally {
      await plain.close();
    }
  });

  test('a hub id is read through the hub\'s resolve/ URLs', async () => {
    const { context, page } = await newPage(browser);
    const r = await runHook(page, srv.url, hook('test/mha-hd64', { hub: `${srv.url}/hub` }));
    await context.close();
    assert.equal(r.error, undefined, r.error);
    assert.deepEqual(r.ids, await nodeIds(path.join(GOLDEN_ROOT, 'mha-hd64')));
    assert.ok(srv.requests.includes('GET /hub/test/mha-hd64/resolve/main/model.safetensors'));
  });

  test('without COOP/COEP headers the service worker isolates the page; with it off WASM runs on one thread', async () => {
    const plain = await startStaticServer({ mounts: { '/': await builtWebApp(), '/models/': GOLDEN_ROOT }, isolate: false });
    try {
      const want = await nodeIds(path.join(GOLDEN_ROOT, 'gqa2-hd64'));
      let { context, page, pageErrors } = await newPage(browser);
      let r = await runHook(page, plain.url, hook('./models/gqa2-hd64/'));
      await context.close();
      assert.equal(r.error, undefined, r.error);
      assert.equal(r.isolated, true, 'sw.js should have made the page cross-origin isolated');
      assert.equal(r.threads, 2);
      assert.deepEqual(r.ids, want);
      assert.deepEqual(pageErrors, []);

      ({ context, page, pageErrors } = await newPage(browser));
      r = await runHook(page, plain.url, hook('./models/gqa2-hd64/', { sw: '0' }));
      await context.close();
      assert.equal(r.error, undefined, r.error);
      assert.equal(r.isolated, false);
      assert.equal(r.threads, 1);
      assert.deepEqual(r.ids, want);
    } finally {
      await plain.close();
    }
  });

  test('bad input ends in a clear message in the page, never a blank screen or an uncaught error', async () => {
    const cases: [string, Record<string, string>, RegExp][] = [
      ['a URL that is not a model folder', hook('./fixtures/empty/'), /fixtures\/empty\/ is not a model folder: it has no config\.json/],
      ['a URL that does not exist', hook('./nowhere/'), /is not a model folder/],
      ['a hub id that does not exist', hook('nobody/no-such-model', { hub: `${srv.url}/hub` }), /hub model nobody\/no-such-model was not found/],
      ['a backend that does not exist', hook('./models/mha-hd64/', { backend: 'cuda' }), /the cuda backend is not available in this build/],
      ['a prompt outside the vocabulary', hook('./models/mha-hd64/', { prompt: 'hello' }), /token id 22172 is outside the vocabulary/],
      ['a bad max_tokens', hook('./models/mha-hd64/', { max_tokens: 'lots' }), /max_tokens must be a whole number/],
      ['an unknown dtype', hook('./models/mha-hd64/', { dtype: 'q3' }), /unknown dtype "q3"/],
      ['a model value that is neither', hook('not a model'), /neither a URL of a model folder .* nor a hub id/],
    ];
    for (const [what, query, want] of cases) {
      const { context, page, pageErrors } = await newPage(browser);
      const r = await runHook(page, srv.url, query);
      await context.close();
      assert.match(r.error ?? '(no error)', want, what);
      assert.equal(r.ids, undefined, what);
      assert.ok(r.bannerVisible, `${what}: the message is shown`);
      assert.equal(r.uncaught, undefined, `${what}: uncaught ${r.uncaught}`);
      assert.deepEqual(pageErrors, [], what);
    }
  });

  test('a model too large for the page is refused before its download, saying what would fit', async () => {
    const { context, page, pageErrors } = await newPage(browser);
    await page.goto(`${srv.url}/?sw=0`);
    const deviceGiB = await page.evaluate(() => navigator.deviceMemory ?? 0);
    assert.ok(deviceGiB > 0, 'Chromium reports navigator.deviceMemory');
    const budget = deviceGiB * 2 ** 30 / 2;
    // Deeper OpenELM-3Bs (folders with config.json and a stand-in weight file): one whose bf16 is
    // about 1.3x the page's budget (q8 fits), one that no dtype fits.
    const deeper = (factor: number): number => {
      for (let layers = 36; ; layers += 2) {
        const c = resolveConfig(presetWithLayers('OpenELM-3B-Instruct', layers));
        if (parameterCount(c) * 2 + kvValuesPerToken(c) * c.maxContextLength * 4 > factor * budget) return layers;
      }
    };
    for (const [name, layers] of [['deep', deeper(1.3)], ['huge', deeper(3.5)]] as const) {
      fs.mkdirSync(path.join(fixtures, name), { recursive: true });
      fs.writeFileSync(path.join(fixtures, name, 'config.json'), JSON.stringify(presetWithLayers('OpenELM-3B-Instruct', layers)));
      fs.writeFileSync(path.join(fixtures, name, 'model.safetensors'), new Uint8Array(16));
    }
    const requests = srv.requests.length;
    let r = await runHook(page, srv.url, hook('./fixtures/deep/', { sw: '0' }));
    assert.match(r.error ?? '', /fixtures\/deep\/ is too large for this browser: it needs about [\d.]+ GiB \([\d.]+ GiB of bf16 weights \+ [\d.]+ (MiB|GiB) KV cache for 2048 tokens\), more than the [\d.]+ GiB a page may use here \(half of the [\d.]+ GiB this device reports\); it fits with dtype q8 \([\d.]+ GiB\)/);
    r = await runHook(page, srv.url, hook('./fixtures/huge/', { sw: '0' }));
    assert.match(r.error ?? '', /fixtures\/huge\/ is too large for this browser: .*; a smaller model fits, e\.g\. apple\/OpenELM-/);
    assert.ok(!srv.requests.slice(requests).some((q) => q === 'GET /fixtures/deep/model.safetensors' || q === 'GET /fixtures/huge/model.safetensors'), 'no weight download');
    await context.close();
    assert.deepEqual(pageErrors, []);
  });

  test('storage quota exceeded is a clear message', async () => {
    const { context, page, pageErrors } = await newPage(browser);
    await page.goto(`${srv.url}/?sw=0`);
    const cdp = await context.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: srv.url, quotaSize: 1000 });
    const r = await runHook(page, srv.url, hook('./models/mha-hd64/', { keep: '1', sw: '0' }));
    await context.close();
    assert.match(r.error ?? '', /storage quota exceeded: keeping model\.safetensors needs 460\.1 KiB/);
    assert.deepEqual(pageErrors, []);
  });

  test('the chat UI: inspect shows size and memory, load, stream, stop', async () => {
    const { context, page, pageErrors } = await newPage(browser);
    await page.goto(`${srv.url}/?model=./tiny/`);
    const load = page.locator('.plan button.primary');
    await load.waitFor();
    const plan = await page.locator('.plan').innerText();
    assert.match(plan, /Download\s+[\d.]+ (KB|MB)/);
    assert.match(plan, /Memory\s+about [\d.]+ MB: .* weights \+ .* KV cache \(4096 tokens\)/);
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, 'model-desktop.png'), fullPage: true });
    await load.click();
    await page.locator('.chat-view').waitFor({ state: 'visible' });
    await page.locator('details.settings summary').click();
    await page.locator('.settings-grid input[type=number]').first().fill('3000');
    await page.locator('.composer textarea').fill(PROMPT);
    await page.locator('.composer button.send').click();
    await page.locator('.turn.assistant.streaming').waitFor();
    await page.waitForFunction(() => (document.querySelector('.turn.assistant .bubble')?.textContent ?? '').length > 0);
    await page.locator('.composer button.stop').click();
    await page.waitForFunction(() => /stopped/.test(document.querySelector('.stats')?.textContent ?? ''), null, { timeout: 20_000 });
    const stats = await page.locator('.stats').innerText();
    const n = Number(/(\d+) tokens/.exec(stats)?.[1]);
    assert.ok(n > 0 && n < 3000, `stopped after ${n} tokens: ${stats}`);
    assert.match(stats, /tok\/s .* wasm, 2 threads/);
    await context.close();
    assert.deepEqual(pageErrors, []);
  });

  test('a model picked as files runs in the page: the completion equals Node\'s; dropped files load too', async () => {
    const dir = path.join(GOLDEN_ROOT, 'gqa4-hd32');
    const lm = await loadModel(dir, { backend: 'wasm', threads: 2 });
    const want = (await lm.generate(PROMPT, { maxTokens: MAX_TOKENS, temperature: 0 })).text;
    lm.dispose();
    const { context, page, pageErrors } = await newPage(browser);
    await page.goto(`${srv.url}/`);
    await page.waitForFunction(() => document.body.dataset.ready === 'true');
    await page.locator('nav.tabs button[data-tab=model]').click();
    await page.locator('input[type=file][multiple]:not([webkitdirectory])').setInputFiles(['config.json', 'model.safetensors'].map((f) => path.join(dir, f)));
    const load = page.locator('.plan button.primary');
    await load.waitFor();
    assert.match(await page.locator('.plan').innerText(), /picked files[\s\S]*Download\s+nothing \([\d.]+ KB already in this browser\)/);
    await load.click();
    await page.locator('.chat-view').waitFor({ state: 'visible' });
    await page.locator('details.settings summary').click();
    const num = page.locator('.chat-view .settings-grid input[type=number]');
    await num.nth(0).fill(String(MAX_TOKENS));
    await num.nth(1).fill('0');
    await num.nth(4).fill('1');
    await page.locator('.chat-view .settings-grid select').selectOption('complete');
    await page.locator('.composer textarea').fill(PROMPT);
    await page.locator('.composer button.send').click();
    await page.waitForFunction(() => /tok\/s/.test(document.querySelector('.stats')?.textContent ?? ''), null, { timeout: 30_000 });
    const got = await page.locator('.turn.assistant .bubble').last().innerText();
    assert.equal(got.trim(), want.trim());

    // Files dropped on the Model tab (as a drop of plain files hands them over) replace the model.
    await page.locator('nav.tabs button[data-tab=model]').click();
    // (a string: this file is compiled without the DOM's types)
    await page.evaluate(`(async () => {
      const dt = new DataTransfer();
      for (const f of ['config.json', 'model.safetensors']) {
        dt.items.add(new File([await (await fetch('./models/mha-hd64/' + f)).blob()], f));
      }
      document.querySelector('.dropzone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    })()`);
    await page.waitForFunction(() => /2 layers/.test(document.querySelector('.plan')?.textContent ?? ''));
    await page.locator('.plan button.primary').click();
    await page.locator('.chat-view').waitFor({ state: 'visible' });
    await context.close();
    assert.deepEqual(pageErrors, []);
  });

  test('screenshots of the chat and fine-tune views (desktop and phone)', async () => {
    fs.mkdirSync(SHOTS, { recursive: true });
    const { context, page, pageErrors } = await newPage(browser);
    const r = await runHook(page, srv.url, hook('./models/gqa4-hd32/', { max_tokens: '24' }));
    assert.equal(r.error, undefined, r.error);
    await page.locator('.turn.assistant .bubble').waitFor();
    await page.locator('nav.tabs button[data-tab=finetune]').click();
    await page.locator('.finetune-view textarea').fill('{"messages": [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "A small model, tuned in your browser."}]}\n');
    const shots: string[] = [];
    for (const [label, viewport] of [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]] as const) {
      await page.setViewportSize(viewport);
      await page.locator('nav.tabs button[data-tab=chat]').click();
      shots.push(path.join(SHOTS, `chat-${label}.png`));
      await page.screenshot({ path: shots[shots.length - 1] });
      await page.locator('nav.tabs button[data-tab=finetune]').click();
      await page.waitForFunction(() => /1 example/.test(document.querySelector('.finetune-view .row.spread span')?.textContent ?? ''));
      shots.push(path.join(SHOTS, `finetune-${label}.png`));
      await page.screenshot({ path: shots[shots.length - 1], fullPage: true });
    }
    const banner = await page.$('#error-banner');
    assert.ok(banner === null || !(await banner.isVisible()), `an error is shown: ${await page.evaluate(() => document.body.dataset.error)}`);
    await context.close();
    for (const f of shots) assert.ok(fs.statSync(f).size > 10_000, `${f} looks empty`);
    assert.deepEqual(pageErrors, []);
  });

  test('a few LoRA steps in the page lower the loss as Node\'s do, and save the adapter Node trains (PEFT files)', async () => {
    const { context, page, pageErrors } = await newPage(browser);
    await page.goto(`${srv.url}/?model=./models/mha-hd64/`);
    await page.waitForFunction(() => document.body.dataset.finetune !== undefined);
    const methods = (await page.evaluate(() => document.body.dataset.finetune ?? '')).split(',');
    assert.deepEqual(methods, ['lora', 'dora', 'full']);
    await page.locator('.plan button.primary').click();
    await page.locator('.chat-view').waitFor({ state: 'visible' });
    const { ft, losses } = await loraInPage(page, 'finetune-trained-desktop.png');

    // The same run in Node (same kernels, 2 threads): the same losses, bit for bit.
    const { losses: want, tunedIds } = await nodeLora();
    assert.equal(losses.length, FT.steps);
    assert.ok(losses[FT.steps - 1] < losses[0], `loss ${losses[0]} → ${losses[FT.steps - 1]}`);
    assert.deepEqual(losses, want, 'page losses differ from Node\'s');

    // Saving hands over PEFT's two files; Node loads the base with them to the tuned model.
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-page-ft-'));
    try {
      const names: string[] = [];
      page.on('download', (d) => { names.push(d.suggestedFilename()); void d.saveAs(path.join(out, d.suggestedFilename())); });
      await ft.locator('button', { hasText: 'Save adapter (PEFT)' }).click();
      for (let i = 0; i < 100 && !(fs.existsSync(path.join(out, 'adapter_model.safetensors')) && fs.existsSync(path.join(out, 'adapter_config.json'))); i++) await new Promise((r) => setTimeout(r, 100));
      await context.close();
      assert.deepEqual(names.sort(), ['adapter_config.json', 'adapter_model.safetensors']);
      const back = await loadModel(path.join(GOLDEN_ROOT, 'mha-hd64'), { backend: 'wasm', threads: 2, adapter: out });
      try {
        assert.deepEqual((await back.generate(PROMPT, { maxTokens: MAX_TOKENS, temperature: 0 })).ids, tunedIds);
      } finally { back.dispose(); }
    } finally { fs.rmSync(out, { recursive: true, force: true }); }
    assert.deepEqual(pageErrors, []);
  });

  test('LoRA in the page on WebGPU: the losses are Node\'s WASM losses (TOL.adapterCurve), and chat shows the backend', async () => {
    const { context, page, pageErrors } = await newPage(browser);
    const r = await runHook(page, srv.url, hook('./models/mha-hd64/', { backend: 'webgpu' }));
    assert.equal(r.error, undefined, r.error);
    assert.equal(r.backend, 'webgpu');
    assert.match(await page.locator('.chat-view').innerText(), /webgpu on .*\(a software adapter: slow\)/);
    const { losses } = await loraInPage(page, 'finetune-webgpu-desktop.png');
    await context.close();
    const { losses: want } = await nodeLora();
    assert.ok(losses[FT.steps - 1] < losses[0], `loss ${losses[0]} → ${losses[FT.steps - 1]}`);
    assertClose(losses, want, TOL.adapterCurve, 'page WebGPU LoRA losses vs Node WASM');
    assert.deepEqual(pageErrors, []);
  });
  test('downloads are kept in OPFS: a second load reads no weight file from the network; a broken download is never kept; the Storage card lists and deletes', async () => {
    const want = await nodeIds(path.join(GOLDEN_ROOT, 'gqa2-hd64'));
    const { context, page, pageErrors } = await newPage(browser);
    // A download that breaks off: an error, and nothing in OPFS (not even the partial file).
    let r = await runHook(page, srv.url, hook('./cut/mha-hd64/', { keep: '1' }));
    assert.match(r.error ?? '(no error)', /download of http:\/\/127\.0\.0\.1:\d+\/cut\/mha-hd64\/model\.safetensors (failed after|was cut short)/);
    let kept = await page.evaluate(KEPT_JS) as { names: string[]; caches: string[] };
    assert.deepEqual(kept.names, [], 'a broken download left files behind');

    let mark = srv.requests.length;
    r = await runHook(page, srv.url, hook('./models/gqa2-hd64/', { keep: '1' }));
    assert.equal(r.error, undefined, r.error);
    assert.deepEqual(r.ids, want);
    assert.ok(srv.requests.slice(mark).includes('GET /models/gqa2-hd64/model.safetensors'));
    kept = await page.evaluate(KEPT_JS) as { names: string[]; caches: string[] };
    assert.equal(kept.names.length, 2, `one file and its record: ${kept.names.join(', ')}`);
    assert.ok(kept.names.some((n) => n.endsWith('.json')) && !kept.names.some((n) => n.endsWith('.part')));
    assert.ok(!kept.caches.includes('openelm-models-v1'), 'kept in OPFS, not the Cache API');

    // A second page of the same origin: the weights come from OPFS, with no request for them.
    const page2 = await context.newPage();
    page2.on('pageerror', (e) => pageErrors.push(e.message));
    mark = srv.requests.length;
    r = await runHook(page2, srv.url, hook('./models/gqa2-hd64/', { keep: '1' }));
    assert.equal(r.error, undefined, r.error);
    assert.deepEqual(r.ids, want);
    const weightRequests = srv.requests.slice(mark).filter((q) => /\.safetensors/.test(q));
    assert.deepEqual(weightRequests, [], 'the second load asked the server for weights');

    // The Storage card: the model with its size, what the site uses, a delete control.
    await page2.locator('nav.tabs button[data-tab=model]').click();
    const card = page2.locator('.card.storage');
    await card.locator('.kept-list li').first().waitFor();
    const size = fs.statSync(path.join(GOLDEN_ROOT, 'gqa2-hd64', 'model.safetensors')).size;
    assert.match(await card.innerText(), new RegExp(`1 model, ${Math.round(size / 1024)} KB kept in this browser's private file system \\(OPFS\\)`));
    assert.match(await card.locator('.kept-list li').innerText(), /models\/gqa2-hd64\s+1 file · \d+ KB/);
    assert.match(await card.innerText(), /This site uses [\d.]+ (B|KB|MB) of the [\d.]+ (MB|GB) the browser allows it/);
    fs.mkdirSync(SHOTS, { recursive: true });
    await page2.screenshot({ path: path.join(SHOTS, 'storage-desktop.png'), fullPage: true });
    await page2.setViewportSize({ width: 390, height: 844 });
    await card.scrollIntoViewIfNeeded();
    await page2.screenshot({ path: path.join(SHOTS, 'storage-phone.png') });
    await card.locator('.kept-list li button.delete').click();
    await page2.waitForFunction(() => /Nothing kept yet/.test(document.querySelector('.card.storage')?.textContent ?? ''));
    kept = await page2.evaluate(KEPT_JS) as { names: string[]; caches: string[] };
    assert.deepEqual(kept.names, []);
    await context.close();
    assert.deepEqual(pageErrors, []);
  });

  test('a model with a tensor larger than the GPU allows is refused before its download, naming the need and the limit; WASM is offered', async () => {
    // An OpenELM-3B shape (folder with config.json and a stand-in weight file): its bf16 embedding
    // is 187.5 MiB, over a device asked for WebGPU's smallest binding limit (128 MiB).
    fs.mkdirSync(path.join(fixtures, 'gpu3b'), { recursive: true });
    fs.writeFileSync(path.join(fixtures, 'gpu3b', 'config.json'), JSON.stringify(presetWithLayers('OpenELM-3B-Instruct', 2)));
    fs.writeFileSync(path.join(fixtures, 'gpu3b', 'model.safetensors'), new Uint8Array(16));
    const { context, page, pageErrors } = await newPage(browser);
    const mark = srv.requests.length;
    const r = await runHook(page, srv.url, hook('./fixtures/gpu3b/', { backend: 'webgpu', gpu_max_buffer: String(128 * 2 ** 20) }));
    assert.match(r.error ?? '(no error)', /^\.\/fixtures\/gpu3b\/ does not fit this GPU: its largest tensor, transformer\.token_embeddings\.weight \(32000×3072 bf16\), needs one buffer of 187\.5 MiB, more than the 128 MiB one buffer may take on .+ \(maxStorageBufferBindingSize\); it fits with dtype q8 \(largest buffer [\d.]+ MiB\) or q4 \(largest buffer [\d.]+ MiB\), or on the wasm backend$/);
    assert.ok(r.bannerVisible);
    assert.equal(r.uncaught, undefined);
    assert.ok(!srv.requests.slice(mark).includes('GET /fixtures/gpu3b/model.safetensors'), 'no weight download');
    const offer = page.locator('.model-view .fallback');
    assert.ok(await offer.isVisible(), 'the WASM fallback is offered');
    assert.match(await offer.innerText(), /Load on WebAssembly instead/);
    fs.mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, 'gpu-refused-desktop.png') });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: path.join(SHOTS, 'gpu-refused-phone.png') });
    await context.close();
    assert.deepEqual(pageErrors, []);
  });
  test('the GPU lost while a model loads in the page: one line naming the model, the page stays usable, and WASM (offered, not taken) loads it', async () => {
    const dir = path.join(GOLDEN_ROOT, 'gqa4-hd32');
    const lm = await loadModel(dir, { backend: 'wasm', threads: 2 });
    const want = (await lm.generate(PROMPT, { maxTokens: MAX_TOKENS, temperature: 0 })).text;
    lm.dispose();
    const { context, page, pageErrors } = await newPage(browser);
    await page.goto(`${srv.url}/?model=./models/gqa4-hd32/`);
    await page.locator('.plan button.primary').waitFor();
    await page.locator('.model-view .grid3 select').first().selectOption('webgpu');
    await page.waitForFunction(() => document.querySelector('.plan button.primary') !== null && !/Looking at/.test(document.querySelector('.plan')?.textContent ?? ''));
    await page.locator('.plan button.primary').click();
    // While the kernels compile (seconds on SwiftShader), Chromium's GPU process goes down (DevTools
    // protocol Browser.crashGpuProcess): every device is lost, as when a GPU driver resets.
    await page.waitForFunction(() => /Compiling the GPU kernels/.test(document.querySelector('.progress-text')?.textContent ?? ''), null, { timeout: 30_000 });
    await (await browser.newBrowserCDPSession()).send('Browser.crashGpuProcess');
    await page.waitForFunction(() => document.body.dataset.error !== undefined, null, { timeout: 30_000 });
    const error = await page.evaluate(() => document.body.dataset.error ?? '');
    assert.match(error, /^\.\/models\/gqa4-hd32\/ could not be loaded on the GPU \(the GPU device was lost .*\); what it had allocated is freed: load it with a narrower dtype \(q8, q4\) or on the wasm backend$/);
    assert.ok(!error.includes('\n'));
    const offer = page.locator('.model-view .fallback button');
    assert.ok(await offer.isVisible(), 'WASM is offered');
    assert.equal(await page.locator('.status-text').innerText(), 'no model', 'nothing switched by itself');
    await offer.click();
    await page.locator('.chat-view').waitFor({ state: 'visible' });
    assert.match(await page.locator('.status-text').innerText(), /gqa4-hd32 · wasm/);
    await page.locator('details.settings summary').click();
    const num = page.locator('.chat-view .settings-grid input[type=number]');
    await num.nth(0).fill(String(MAX_TOKENS));
    await num.nth(1).fill('0');
    await num.nth(4).fill('1');
    await page.locator('.chat-view .settings-grid select').selectOption('complete');
    await page.locator('.composer textarea').fill(PROMPT);
    await page.locator('.composer button.send').click();
    await page.waitForFunction(() => /tok\/s/.test(document.querySelector('.stats')?.textContent ?? ''), null, { timeout: 30_000 });
    assert.equal((await page.locator('.turn.assistant .bubble').last().innerText()).trim(), want.trim());
    await context.close();
    assert.deepEqual(pageErrors, []);
  });
});
