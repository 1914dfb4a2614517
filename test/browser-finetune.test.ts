// Fine-tuning as the page runs it (browser/finetune-data.ts, browser/full-finetune.ts), here in
// Node on the same WASM backend: which tokens the loss sees, that training lowers the loss, that
// chatting with the tuned model reads the trained weights, and that the saved model folder loads
// back to the same greedy ids.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadModel } from '../src/api.js';
import { openCheckpoint } from '../src/io/checkpoint.js';
import { WasmBackend } from '../src/backends/wasm/wasm-backend.js';
import { corenetInstructTemplate } from '../src/chat/template.js';
import { PAD, WindowSampler, trainingWindows } from '../src/browser/finetune-data.js';
import { fullFineTuner } from '../src/browser/full-finetune.js';
import { loraFineTuner } from '../src/browser/lora-finetune.js';
import { fineTuneMethods, requireFineTuner, type FineTuneSettings, type FineTuneStep } from '../src/browser/finetune.js';
import { keepWeightSource } from '../src/browser/weight-files.js';
import { OpenELMError } from '../src/core/errors.js';
import type { LoadedModel } from '../src/loaded-model.js';
import { GOLDEN_ROOT } from './helpers/golden.js';
import { readModelConfig } from '../src/io/model-folder.js';
import { paramLayout } from '../src/model/layout.js';

const DIR = path.join(GOLDEN_ROOT, 'mha-hd64');
const TEXT = 'in the a b c in the a b c in the a b c\n\nin the a b c in the a b c';
const SETTINGS: FineTuneSettings = {
  method: 'full', rank: 8, alpha: 16, dropout: 0, targets: [], learningRate: 1e-3, steps: 6, batchSize: 2, sequenceLength: 16, seed: 0,
};

async function goldenModel(): Promise<LoadedModel> {
  const lm = await loadModel(DIR, { backend: 'wasm', threads: 2 });
  keepWeightSource(lm, { open: async () => openCheckpoint(DIR) });
  return lm;
}

/** Ids of the positions whose next token counts in the loss, and those next tokens. */
function learnt(w: ReturnType<typeof trainingWindows>): number[][] {
  return w.rows.map((r) => [...r.targets].filter((t) => t !== PAD));
}

test('LoRA, DoRA and full-model training are registered for the page', () => {
  assert.deepEqual(fineTuneMethods(), ['lora', 'dora', 'full']);
  assert.equal(requireFineTuner('full'), fullFineTuner);
  assert.equal(requireFineTuner('lora'), loraFineTuner);
  assert.equal(requireFineTuner('dora'), loraFineTuner);
  assert.throws(() => requireFineTuner('qlora' as 'lora'), (e: unknown) => e instanceof OpenELMError && /not part of this build \(it trains: lora, dora, full\)/.test(e.message));
});

test('training windows: text learns every token in windows; prompt/completion and chat learn only the answer and its EOS', async () => {
  const lm = await goldenModel();
  try {
    const tok = lm.tokenizer, tpl = corenetInstructTemplate();
    // text: two paragraphs, each BOS … EOS, one stream cut into windows of 8 predictions
    const t = trainingWindows(tok, tpl, { format: 'text', content: TEXT }, 8);
    const stream = [...tok.encode('in the a b c in the a b c in the a b c', { bos: true }), tok.eosId, ...tok.encode('in the a b c in the a b c', { bos: true }), tok.eosId];
    assert.equal(t.T, 8);
    assert.equal(t.rows.length, Math.ceil((stream.length - 1) / 8));
    assert.deepEqual(learnt(t).flat(), stream.slice(1));
    assert.deepEqual([...t.rows[1].inputs], stream.slice(8, 16));
    assert.equal(t.tokens, stream.length - 1);

    // prompt/completion: loss on the completion and EOS only
    const pc = trainingWindows(tok, tpl, { format: 'jsonl', content: '{"prompt": "in the", "completion": " a b c"}\n\n{"text": "a b"}' }, 64);
    assert.equal(pc.examples, 2);
    assert.deepEqual(learnt(pc)[0], [...tok.encode(' a b c', { bos: false }), tok.eosId]);
    assert.deepEqual(learnt(pc)[1], [...tok.encode('a b', { bos: false }), tok.eosId]);
    assert.deepEqual([...pc.rows[0].inputs.subarray(0, 3)], tok.encode('in the', { bos: true }));

    // chat: with the CoreNet template the assistant's reply is "<|assistant|>\n" … "</s>"; only that is learnt
    const chat = trainingWindows(tok, tpl, { format: 'chat', content: JSON.stringify({ messages: [{ role: 'user', content: 'a b' }, { role: 'assistant', content: 'in the' }] }) }, 64);
    assert.equal(tok.decode(learnt(chat)[0]).trim(), 'in the');
    assert.equal(learnt(chat)[0].at(-1), tok.eosId);
    assert.ok(chat.rows[0].inputs.filter((i) => i !== PAD).length > learnt(chat)[0].length, 'the prompt is input but not learnt');

    assert.throws(() => trainingWindows(tok, tpl, { format: 'chat', content: '{"messages": [{"role": "user", "content": "hi"}]}' }, 64),
      /line 1: a chat example needs at least one "assistant" message/);
    assert.throws(() => trainingWindows(tok, tpl, { format: 'text', content: '  \n' }, 64), /the training data is empty/);

    // The sampler visits every row once per epoch.
    const s = new WindowSampler(t, 3), seen = new Set<string>();
    for (let i = 0; i < t.rows.length; i++) seen.add(String(s.next(1).inputs));
    assert.equal(seen.size, t.rows.length);
  } finally { lm.dispose(); }
});

test('full fine-tuning lowers the loss; the tuned model generates from the trained weights and saves a folder that loads to the same ids', async () => {
  const lm = await goldenModel();
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-ft-'));
  try {
    const before = (await lm.generate('in the', { maxTokens: 8, temperature: 0 })).ids;
    const job = await fullFineTuner.prepare(lm, { format: 'text', content: TEXT }, SETTINGS);
    const steps: FineTuneStep[] = [];
    await job.run((s) => steps.push(s), new AbortController().signal);
    assert.equal(steps.length, SETTINGS.steps);
    assert.deepEqual(steps.map((s) => s.step), [1, 2, 3, 4, 5, 6]);
    assert.ok(steps.every((s) => Number.isFinite(s.loss) && s.tokens > 0));
    assert.ok(steps[5].loss < steps[0].loss * 0.9, `loss ${steps.map((s) => s.loss.toFixed(4)).join(' → ')}`);

    const tuned = await job.use(true);
    const after = (await tuned.generate('in the', { maxTokens: 8, temperature: 0 })).ids;
    assert.notDeepEqual(after, before, 'training on the text should change the greedy continuation');
    assert.deepEqual((await (await job.use(false)).generate('in the', { maxTokens: 8, temperature: 0 })).ids, before, 'the base model is untouched');

    const files = await job.files();
    assert.deepEqual(files.map((f) => f.name), ['config.json', 'model.safetensors']);
    for (const f of files) fs.writeFileSync(path.join(out, f.name), f.bytes);
    const back = await loadModel(out, { backend: 'wasm', threads: 2 });
    try {
      assert.deepEqual((await back.generate('in the', { maxTokens: 8, temperature: 0 })).ids, after);
    } finally { back.dispose(); }
    job.dispose();
  } finally {
    lm.dispose();
    fs.rmSync(out, { recursive: true, force: true });
  }
});

test('stopping ends training between steps; a model without a known weight source or past the memory limit is refused in one line', async () => {
  const lm = await goldenModel();
  try {
    const job = await fullFineTuner.prepare(lm, { format: 'text', content: TEXT }, SETTINGS);
    const ctl = new AbortController();
    const steps: number[] = [];
    await job.run((s) => { steps.push(s.step); if (s.step === 2) ctl.abort(); }, ctl.signal);
    assert.deepEqual(steps, [1, 2]);
    job.dispose();
  } finally { lm.dispose(); }

  const plain = await loadModel(DIR, { backend: 'wasm' });
  try {
    await assert.rejects(fullFineTuner.prepare(plain, { format: 'text', content: TEXT }, SETTINGS), /its weights cannot be read again for training/);
  } finally { plain.dispose(); }

  // a memory of 16 bytes per parameter: the model (4 bytes per parameter and its buffers) loads,
  // its weights, gradients and AdamW moments (16 bytes per parameter) cannot fit beside it
  const small = await WasmBackend.create({ memoryLimit: 16 * paramLayout(readModelConfig(DIR)).total });
  const tight = await loadModel(DIR, { backend: small });
  keepWeightSource(tight, { open: async () => openCheckpoint(DIR) });
  try {
    await assert.rejects(fullFineTuner.prepare(tight, { format: 'text', content: TEXT }, SETTINGS),
      /full fine-tuning of .* needs about .*16 bytes × [\d,]+ parameters.*more than the .* left to this page; train an adapter \(LoRA\)/);
  } finally { tight.dispose(); small.dispose(); }
});

for (const method of ['lora', 'dora'] as const) {
  test(`${method} in the page's trainer lowers the loss; chatting uses the merged adapter, and the saved PEFT files load in Node to the same ids`, async () => {
    const lm = await goldenModel();
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-ft-peft-'));
    try {
      const before = (await lm.generate('in the', { maxTokens: 8, temperature: 0 })).ids;
      const s: FineTuneSettings = { ...SETTINGS, method, targets: ['qkv_proj', 'out_proj', 'proj_1', 'proj_2'], learningRate: 2e-2, steps: 8 };
      const job = await loraFineTuner.prepare(lm, { format: 'text', content: TEXT }, s);
      const losses: number[] = [];
      await job.run((st) => losses.push(st.loss), new AbortController().signal);
      assert.equal(losses.length, 8);
      assert.ok(losses[7] < losses[0] * 0.9, `loss ${losses.map((l) => l.toFixed(4)).join(' → ')}`);
      const after = (await (await job.use(true)).generate('in the', { maxTokens: 8, temperature: 0 })).ids;
      assert.notDeepEqual(after, before, 'the adapter should change the greedy continuation');
      assert.deepEqual((await (await job.use(false)).generate('in the', { maxTokens: 8, temperature: 0 })).ids, before);
      const files = await job.files();
      assert.deepEqual(files.map((f) => f.name), ['adapter_config.json', 'adapter_model.safetensors']);
      const cfg = JSON.parse(new TextDecoder().decode(files[0].bytes)) as Record<string, unknown>;
      assert.equal(cfg.peft_type, 'LORA');
      assert.equal(cfg.use_dora, method === 'dora');
      assert.equal(cfg.r, 8);
      for (const f of files) fs.writeFileSync(path.join(out, f.name), f.bytes);
      job.dispose();
      const back = await loadModel(DIR, { backend: 'wasm', threads: 2, adapter: out });
      try {
        assert.deepEqual((await back.generate('in the', { maxTokens: 8, temperature: 0 })).ids, after);
      } finally { back.dispose(); }
    } finally {
      lm.dispose();
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
}
