import { resolveChatTemplate } from '../src/io/chat-template-file.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Template } from '@huggingface/jinja';
import {
  CORENET_INSTRUCT_TEMPLATE, corenetInstructTemplate, jinjaTemplate, type ChatMessage,
} from '../src/chat/template.js';
import { encodeChatText } from '../src/chat/tokenize.js';
import { OpenELMError } from '../src/core/errors.js';
import { ChatSession } from '../src/chat/session.js';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { generate } from '../src/generate/generate.js';
import { tinyModel } from './helpers/tiny.js';

const tok = loadTokenizer();
const builtin = corenetInstructTemplate();

function jinjaRender(messages: ChatMessage[], add: boolean): string {
  return new Template(CORENET_INSTRUCT_TEMPLATE).render({ messages, eos_token: '</s>', bos_token: '<s>', add_generation_prompt: add });
}

test('CoreNet instruct template: the exact text of CoreNet openelm-instruct.yaml', () => {
  const msgs: ChatMessage[] = [
    { role: 'system', content: 'S' }, { role: 'user', content: 'U' }, { role: 'assistant', content: 'A' }, { role: 'user', content: 'U2' },
  ];
  const want = '<|system|>\nS</s>\n<|user|>\nU</s>\n<|assistant|>\nA</s>\n<|user|>\nU2</s>\n<|assistant|>\n';
  assert.equal(builtin.render(msgs), want);
  assert.equal(jinjaRender(msgs, true), want, '@huggingface/jinja renders the YAML template string the same way');
  assert.equal(jinjaTemplate(CORENET_INSTRUCT_TEMPLATE).render(msgs), want);
});

test('the native renderer equals the Jinja template on many conversations', () => {
  const convs: ChatMessage[][] = [
    [],
    [{ role: 'user', content: 'Hello' }],
    [{ role: 'user', content: '' }, { role: 'assistant', content: 'multi\nline  answer ' }],
    [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'x' }, { role: 'tool', content: 'skipped' }, { role: 'assistant', content: 'y' }],
    [{ role: 'user', content: ' {{ not jinja }} {% raw %} ' }],
  ];
  for (const c of convs) {
    for (const add of [true, false]) assert.equal(builtin.render(c, { addGenerationPrompt: add }), jinjaRender(c, add), JSON.stringify({ c, add }));
  }
});

test('token ids: `</s>` becomes EOS id 2 and each segment is tokenized on its own (multi-turn)', () => {
  const msgs: ChatMessage[] = [{ role: 'user', content: 'Hi' }];
  const ids = encodeChatText(tok, builtin.render(msgs), builtin);
  assert.deepEqual(ids, [1, 529, 29989, 1792, 29989, 29958, 13, 18567, 2, 29871, 13, 29966, 29989, 465, 22137, 29989, 29958, 13]);
  // BOS + "<|user|>\nHi" + EOS + "\n<|assistant|>\n" (with its own dummy-prefix space "▁" = 29871).
  assert.deepEqual(ids, [1, ...tok.encode('<|user|>\nHi'), 2, ...tok.encode('\n<|assistant|>\n')]);

  const conv: ChatMessage[] = [
    { role: 'system', content: 'You are helpful.' }, { role: 'user', content: 'What is 2+2?' },
    { role: 'assistant', content: 'It is 4.' }, { role: 'user', content: 'And 3+3?' },
  ];
  const text = builtin.render(conv);
  const full = encodeChatText(tok, text, builtin);
  const want = [1, ...tok.encode('<|system|>\nYou are helpful.'), 2, ...tok.encode('\n<|user|>\nWhat is 2+2?'), 2,
    ...tok.encode('\n<|assistant|>\nIt is 4.'), 2, ...tok.encode('\n<|user|>\nAnd 3+3?'), 2, ...tok.encode('\n<|assistant|>\n')];
  assert.deepEqual(full, want);
  assert.equal(full.filter((i) => i === 2).length, 4, 'one EOS id per message');
  assert.equal(full.filter((i) => i === 1).length, 1, 'one BOS');
  assert.ok(!tok.decode(full, { skipSpecial: false }).includes('</s>\n<|assistant|>\n</s>'));
  assert.equal(tok.decode(full, { skipSpecial: false }), '<s> ' + text.replaceAll('</s>\n', '</s> \n'));
  assert.deepEqual(encodeChatText(tok, text, builtin, { bos: false }), full.slice(1));
});

test('an adapter folder\'s chat template wins over the base folder\'s; --chat-template over both; adapters that disagree are refused', () => {
  const folder = (tpl?: string): string => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-tpl-'));
    if (tpl !== undefined) fs.writeFileSync(path.join(d, 'tokenizer_config.json'), JSON.stringify({ chat_template: tpl, eos_token: '</s>' }));
    return d;
  };
  const base = folder('BASE{{ messages[0].content }}'), bare = folder(), adapter = folder('ADAPTER{{ messages[0].content }}');
  const msg = [{ role: 'user', content: '!' }];
  assert.equal(resolveChatTemplate({ adapterDirs: [adapter], modelDir: base }).render(msg), 'ADAPTER!');
  assert.equal(resolveChatTemplate({ adapterDirs: [adapter], modelDir: base }).source, path.join(adapter, 'tokenizer_config.json'));
  // an adapter without a template (or without tokenizer_config.json) leaves the base's
  assert.equal(resolveChatTemplate({ adapterDirs: [bare], modelDir: base }).render(msg), 'BASE!');
  assert.equal(resolveChatTemplate({ adapterDirs: [bare, adapter], modelDir: base }).render(msg), 'ADAPTER!');
  const file = path.join(bare, 'mine.jinja');
  fs.writeFileSync(file, 'FILE{{ messages[0].content }}');
  assert.equal(resolveChatTemplate({ file, adapterDirs: [adapter], modelDir: base }).render(msg), 'FILE!');
  // two adapters with the same template agree; different ones need --chat-template
  assert.equal(resolveChatTemplate({ adapterDirs: [adapter, folder('ADAPTER{{ messages[0].content }}')] }).render(msg), 'ADAPTER!');
  const other = folder('OTHER');
  assert.throws(() => resolveChatTemplate({ adapterDirs: [adapter, other], modelDir: base }),
    (e: Error) => e instanceof OpenELMError && /^the adapters carry different chat templates \(.*tokenizer_config\.json and .*tokenizer_config\.json\); choose one with --chat-template FILE$/.test(e.message));
  assert.equal(resolveChatTemplate({ file, adapterDirs: [adapter, other] }).render(msg), 'FILE!');
});

test('Jinja templates from tokenizer_config.json (bos/eos strings become ids) and from a file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-tpl-'));
  const tpl = "{{ bos_token }}{% for m in messages %}{{ m['role'] | upper }}: {{ m['content'] }}{{ eos_token }}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}";
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: tpl, bos_token: { content: '<s>' }, eos_token: '</s>' }));
  const t = resolveChatTemplate({ modelDir: dir });
  assert.equal(t.source, path.join(dir, 'tokenizer_config.json'));
  const text = t.render([{ role: 'user', content: 'Hi' }]);
  assert.equal(text, '<s>USER: Hi</s>ASSISTANT:');
  const ids = encodeChatText(tok, text, t);
  assert.deepEqual(ids, [1, ...tok.encode('USER: Hi'), 2, ...tok.encode('ASSISTANT:')], 'the template\'s own <s> is the BOS; none is added twice');
  // A named-template list picks "default".
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'X' }, { name: 'default', template: 'D{{ messages[0].content }}' }] }));
  assert.equal(resolveChatTemplate({ modelDir: dir }).render([{ role: 'user', content: '!' }]), 'D!');
  // --chat-template FILE wins over the folder.
  const file = path.join(dir, 'zephyr.jinja');
  fs.writeFileSync(file, "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}");
  const f = resolveChatTemplate({ file, modelDir: dir });
  assert.equal(f.render([{ role: 'user', content: 'U' }]), '<|user|>\nU</s>\n<|assistant|>\n');
  // No template anywhere: the built-in CoreNet format.
  assert.equal(resolveChatTemplate({ modelDir: fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-none-')) }).source, 'builtin:corenet-instruct');
  assert.throws(() => resolveChatTemplate({ file: path.join(dir, 'missing.jinja') }), /chat template file .*missing\.jinja does not exist/);
  fs.writeFileSync(file, '{% for %}');
  assert.throws(() => resolveChatTemplate({ file }), /chat template .*zephyr\.jinja does not parse/);
  assert.throws(() => builtin.render([{ role: 'user', content: 3 as unknown as string }]), /chat message 0 \(user\) needs a string "content"/);
});

// A random tiny model over the real vocabulary, so the real tokenizer's ids fit.
const { model } = tinyModel({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 160, rope_max_length: 160 }, 11);

async function fresh(msgs: ChatMessage[], maxTokens: number, extra: object = {}) {
  return generate(model, tok, encodeChatText(tok, builtin.render(msgs), builtin), { temperature: 0, maxTokens, ...extra });
}

test('chat session: only the new turn is prefilled, and answers equal a fresh run over the whole conversation', async () => {
  const s = new ChatSession(model, tok, { system: 'Be brief.', defaults: { temperature: 0, maxTokens: 4 } });
  // Turn 1 ends with EOS (forced by a logit bias): the cache continues from the model's own tokens.
  const eos = { logitBias: { 2: 100 } };
  const r1 = await s.send('Hello there', eos);
  assert.deepEqual(r1.ids, [2]);
  assert.equal(r1.finishReason, 'stop');
  assert.equal(r1.cachedTokens, 0);
  const r2 = await s.send('And again?');
  const conv2: ChatMessage[] = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there' }, { role: 'assistant', content: '' }, { role: 'user', content: 'And again?' }];
  const want2 = encodeChatText(tok, builtin.render(conv2), builtin);
  assert.equal(r2.promptTokens, want2.length);
  assert.equal(r2.cachedTokens, r1.promptTokens, 'the whole first prompt came from the cache');
  assert.equal(r2.prefilledTokens, want2.length - r1.promptTokens);
  assert.deepEqual(r2.ids, (await fresh(conv2, 4)).ids);
  // Turn 2 ended on max tokens, not EOS: turn 3 re-tokenizes and keeps the common prefix.
  assert.equal(r2.finishReason, 'length');
  const r3 = await s.send('Third.');
  const conv3: ChatMessage[] = [...conv2, { role: 'assistant', content: r2.text }, { role: 'user', content: 'Third.' }];
  assert.ok(r3.cachedTokens >= want2.length, `cached ${r3.cachedTokens} >= ${want2.length}`);
  assert.deepEqual(r3.ids, (await fresh(conv3, 4)).ids);
  assert.deepEqual(s.messages, [...conv3, { role: 'assistant', content: r3.text }]);
});

test('chat session: /system changes and reset keep answers exact', async () => {
  const s = new ChatSession(model, tok, { defaults: { temperature: 0, maxTokens: 3 } });
  await s.send('One');
  s.setSystem('New rules.');
  const r = await s.send('Two');
  const conv = [{ role: 'system', content: 'New rules.' }, { role: 'user', content: 'One' }, { role: 'assistant', content: s.messages[2].content }, { role: 'user', content: 'Two' }];
  assert.deepEqual(r.ids, (await fresh(conv, 3)).ids);
  s.reset();
  assert.deepEqual(s.messages, [{ role: 'system', content: 'New rules.' }]);
  const r2 = await s.send('Three');
  assert.ok(r2.cachedTokens > 0, 'the system prompt prefix is reused after reset');
  assert.deepEqual(r2.ids, (await fresh([{ role: 'system', content: 'New rules.' }, { role: 'user', content: 'Three' }], 3)).ids);
});

test('chat session: history beyond the context drops the oldest turns (system kept) and rebuilds', async () => {
  const s = new ChatSession(model, tok, { system: 'Sys', contextSize: 80, defaults: { temperature: 0, maxTokens: 8 } });
  let dropped = 0;
  for (let i = 0; i < 6; i++) {
    const r = await s.send(`Message number ${i} with some words`);
    dropped += r.droppedMessages;
    assert.ok(r.promptTokens + 8 <= 80);
    const conv = s.messages.slice(0, -1);
    assert.deepEqual(r.ids, (await fresh(conv, 8)).ids, `turn ${i}`);
  }
  assert.ok(dropped > 0);
  assert.equal(s.messages[0].role, 'system');
  assert.ok(!s.messages.some((m) => m.content.includes('number 0')));
  const tooLong = new ChatSession(model, tok, { contextSize: 20, defaults: { maxTokens: 4 } });
  await assert.rejects(tooLong.send('word '.repeat(40)), /the message needs \d+ prompt tokens but the chat context holds 20; shorten it/);
});

test('chat session: abort stops the answer, keeps it, and the next turn works; turns are serialized', async () => {
  const s = new ChatSession(model, tok, { defaults: { temperature: 0, maxTokens: 30, ignoreEos: true } });
  const ac = new AbortController();
  const st = s.stream('Tell me a long story', { signal: ac.signal });
  let n = 0;
  for await (const c of st) { n += c.ids.length; if (n === 3) ac.abort(); }
  const r = await st.result;
  assert.equal(r.finishReason, 'abort');
  assert.equal(r.ids.length, 3);
  assert.equal(s.messages[1].content, r.text);
  // An early break also ends the turn cleanly.
  const st2 = s.stream('Another');
  for await (const _ of st2) break;
  assert.equal((await st2.result).finishReason, 'abort');
  // Two sends at once run one after the other.
  const [a, b] = await Promise.all([s.send('first', { maxTokens: 2 }), s.send('second', { maxTokens: 2 })]);
  assert.equal(a.ids.length, 2);
  assert.equal(b.ids.length, 2);
  const msgs = s.messages;
  assert.deepEqual(msgs.slice(-4).map((m) => m.content), ['first', a.text, 'second', b.text]);
});
