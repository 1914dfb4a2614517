// Instruction-tuning data: SFT and DPO lines → ids and loss masks, against the goldens of
// tools/make_instruct_goldens.py (sentencepiece + jinja2 + offset-based spans + TRL 0.8.6's length
// rules); skipped lines named by file and line; batches; epoch order; spans under other templates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadTokenizer } from '../src/io/tokenizer-file.js';
import { corenetInstructTemplate, jinjaTemplate, type ChatMessage } from '../src/chat/template.js';
import { encodeChatText } from '../src/chat/tokenize.js';
import { assistantSpans, ExampleError } from '../src/train/data/chat-spans.js';
import { tokenizeDpo, tokenizeSft, truncatePair, TooLongError } from '../src/train/data/instruct-examples.js';
import { DpoSet, EpochOrder, SftSet, collateRows, dpoBatch, sftBatch, type SkippedLine } from '../src/train/data/instruct-set.js';
import { PAD } from '../src/train/data/sources.js';
import { GOLDEN_ROOT } from './helpers/golden.js';
import { InstructGolden, foldIds } from './helpers/instruct-golden.js';

const DIR = path.join(GOLDEN_ROOT, 'instruct');
const tok = loadTokenizer();
const template = corenetInstructTemplate();

interface SftExpect { line: number; skip?: string; kind?: string; ids?: number[]; trained?: number[]; truncated?: boolean }
interface DpoExpect { line: number; skip?: string; prompt?: number[]; chosen?: number[]; rejected?: number[]; truncated?: boolean; chat?: boolean }
const data = JSON.parse(fs.readFileSync(path.join(DIR, 'data.json'), 'utf8')) as {
  template: string;
  sft: { max_length: number; mask_prompt: SftExpect[]; all: SftExpect[] };
  dpo: { max_length: number; max_prompt_length: number; pairs: DpoExpect[] };
};

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-instruct-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

test('the built-in template is the one the goldens rendered', () => {
  const viaJinja = jinjaTemplate(data.template);
  const msgs: ChatMessage[] = [{ role: 'system', content: 'S' }, { role: 'user', content: 'U' }, { role: 'assistant', content: 'A' }];
  assert.equal(template.render(msgs, { addGenerationPrompt: false }), viaJinja.render(msgs, { addGenerationPrompt: false }));
});

for (const mode of ['mask_prompt', 'all'] as const) {
  test(`SFT ${mode}: every line of sft.jsonl tokenizes and masks as the golden, skipped lines named with file:line`, async () => {
    const skipped: SkippedLine[] = [];
    const file = path.join(DIR, 'sft.jsonl');
    const set = await SftSet.load([file], { tok, template, maxLength: data.sft.max_length, maskPrompt: mode === 'mask_prompt' }, { onSkip: (s) => skipped.push(s) });
    const want = data.sft[mode];
    const kept = want.filter((w) => !w.skip);
    assert.equal(set.size, kept.length);
    kept.forEach((w, i) => {
      const r = set.row(i);
      assert.deepEqual([...r.ids], w.ids, `line ${w.line} ids`);
      assert.deepEqual([...r.trained], w.trained, `line ${w.line} trained mask`);
    });
    const skips = want.filter((w) => w.skip);
    assert.deepEqual(skipped.map((s) => [s.line, s.kind]), skips.map((w) => [w.line, w.skip]));
    for (const s of skipped) assert.equal(s.file, file);
    assert.deepEqual(skipped.map((s) => s.count), skipped.map((s, i) => skipped.slice(0, i + 1).filter((x) => x.kind === s.kind).length), 'running counts');
    assert.equal(set.stats.kept, kept.length);
    assert.equal(set.stats.truncated, kept.filter((w) => w.truncated).length);
    assert.equal(set.stats.malformed + set.stats.empty + set.stats.tooLong, skips.length);
    // the messages are the ids `openelm chat` would feed the model for the same conversation
    const first = JSON.parse(fs.readFileSync(file, 'utf8').split('\n')[0]) as { messages: ChatMessage[] };
    assert.deepEqual([...set.row(0).ids], encodeChatText(tok, template.render(first.messages, { addGenerationPrompt: false }), template).slice(0, data.sft.max_length));
  });
}

test('SFT skip reasons say what is wrong', async () => {
  const reasons: string[] = [];
  await SftSet.load([path.join(DIR, 'sft.jsonl')], { tok, template, maxLength: data.sft.max_length, maskPrompt: true }, { onSkip: (s) => reasons.push(`${s.line}: ${s.reason}`) });
  const byLine = new Map(reasons.map((r) => [Number(r.split(':')[0]), r]));
  assert.match(byLine.get(5)!, /invalid JSON/);
  assert.match(byLine.get(6)!, /unknown role "tool"/);
  assert.match(byLine.get(7)!, /empty completion/);
  assert.match(byLine.get(8)!, /no assistant message/);
  assert.match(byLine.get(10)!, /nothing to train on within max_length 48/);
  assert.match(byLine.get(12)!, /"completion" is not a string/);
});

test('DPO: every line of dpo.jsonl tokenizes and truncates as the golden (TRL 0.8.6 rules)', async () => {
  const skipped: SkippedLine[] = [];
  const file = path.join(DIR, 'dpo.jsonl');
  const set = await DpoSet.load([file], { tok, template, maxLength: data.dpo.max_length, maxPromptLength: data.dpo.max_prompt_length }, { onSkip: (s) => skipped.push(s) });
  const kept = data.dpo.pairs.filter((w) => !w.skip);
  assert.equal(set.size, kept.length);
  kept.forEach((w, i) => {
    const c = set.row(i, 0), r = set.row(i, 1);
    const p = w.prompt!.length;
    assert.deepEqual([...c.ids], [...w.prompt!, ...w.chosen!], `line ${w.line} chosen row`);
    assert.deepEqual([...r.ids], [...w.prompt!, ...w.rejected!], `line ${w.line} rejected row`);
    assert.deepEqual([...c.trained], c.ids.length ? [...Array(p).fill(0), ...Array(w.chosen!.length).fill(1)] : []);
  });
  assert.deepEqual(skipped.map((s) => [s.line, s.kind]), data.dpo.pairs.filter((w) => w.skip).map((w) => [w.line, w.skip]));
  assert.equal(set.stats.truncated, kept.filter((w) => w.truncated).length);
  assert.ok(set.stats.truncated >= 1 && set.stats.tooLong >= 1 && set.stats.kinds.chat! >= 2 && set.stats.kinds.strings! >= 1, JSON.stringify(set.stats));
  const reasons = new Map(skipped.map((s) => [s.line, s.reason]));
  assert.match(reasons.get(5)!, /prompt has \d+ tokens, more than max_prompt_length 56/);
  assert.match(reasons.get(6)!, /differ before their last message/);
  assert.match(reasons.get(7)!, /empty rejected completion/);
  assert.match(reasons.get(8)!, /last message of "chosen" must be the assistant's/);
  assert.match(reasons.get(10)!, /no "rejected" field/);
});

test('DPO length rules: completions cut to max_length − max_prompt_length only when the pair is too long', () => {
  const ids = (n: number, v: number) => Array<number>(n).fill(v);
  // fits: nothing cut
  let p = truncatePair({ prompt: ids(10, 5), chosen: ids(20, 6), rejected: ids(5, 7) }, 32, 16, false);
  assert.deepEqual([p.chosen.length, p.rejected.length, p.truncated], [20, 5, false]);
  // too long: both cut to 32 − 16 = 16, even though prompt + rejected alone would fit
  p = truncatePair({ prompt: ids(10, 5), chosen: ids(30, 6), rejected: ids(17, 7) }, 32, 16, false);
  assert.deepEqual([p.prompt.length, p.chosen.length, p.rejected.length, p.truncated], [10, 16, 16, true]);
  // a prompt over max_prompt_length drops the pair
  assert.throws(() => truncatePair({ prompt: ids(17, 5), chosen: ids(2, 6), rejected: ids(2, 7) }, 32, 16, false), TooLongError);
});

test('SFT and DPO batches: one row per example, right-padded with PAD, targets only where trained (as the goldens)', async () => {
  const g = new InstructGolden();
  for (const mode of ['mask_prompt', 'all'] as const) {
    const kept = data.sft[mode].filter((w) => !w.skip);
    const b = collateRows(kept.map((w) => ({ ids: Int32Array.from(foldIds(w.ids!, g.vocab)), trained: Uint8Array.from(w.trained!) })));
    assert.deepEqual([...b.inputs], [...g.i32(`sft.${mode}.input_ids`)]);
    assert.deepEqual([...b.targets], [...g.i32(`sft.${mode}.targets`)]);
    assert.equal(b.validTokens, [...b.targets].filter((t) => t !== PAD).length);
  }
  const set = await DpoSet.load([path.join(DIR, 'dpo.jsonl')], { tok, template, maxLength: data.dpo.max_length, maxPromptLength: data.dpo.max_prompt_length });
  const b = dpoBatch(set, Array.from({ length: set.size }, (_, i) => i));
  const fold = (a: Int32Array) => Int32Array.from(a, (v) => (v === PAD ? PAD : foldIds([v], g.vocab)[0]));
  assert.deepEqual([...fold(b.inputs)], [...g.i32('dpo.input_ids')]);
  assert.deepEqual([...fold(b.targets)], [...g.i32('dpo.targets')]);
  assert.equal(b.rows, 2 * b.pairs);
  const s = await SftSet.load([path.join(DIR, 'sft.jsonl')], { tok, template, maxLength: 48, maskPrompt: true });
  const sb = sftBatch(s, [2, 0]);
  assert.equal(sb.rows, 2);
  assert.equal(sb.T, Math.max(s.row(2).ids.length, s.row(0).ids.length) - 1);
  g.close();
});

test('epoch order: file order without shuffle, a seeded permutation per epoch with it, state round trip', () => {
  const o = new EpochOrder(5, false, 1);
  assert.deepEqual(o.take(12), [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]);
  assert.deepEqual(o.getState(), { epoch: 2, pos: 2 });
  const a = new EpochOrder(7, true, 42), b = new EpochOrder(7, true, 42);
  const ea = a.take(7), eb = a.take(7);
  assert.deepEqual([...ea].sort(), [0, 1, 2, 3, 4, 5, 6]);
  assert.notDeepEqual(ea, eb, 'each epoch has its own permutation');
  b.take(3);
  const c = new EpochOrder(7, true, 42);
  c.setState(b.getState());
  assert.deepEqual(c.take(11), b.take(11), 'a restored order continues identically');
  assert.notDeepEqual(new EpochOrder(7, true, 43).take(7), new EpochOrder(7, true, 42).take(7));
  assert.throws(() => c.setState({ epoch: 0, pos: 7 }), /does not fit 7 examples/);
  assert.throws(() => new EpochOrder(0, false, 0), /no usable examples/);
});

test('assistant spans under other templates: ChatML-style and a stripping Llama-2-style template', () => {
  const chatml = jinjaTemplate("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + eos_token + '\\n' }}{% endfor %}");
  const msgs: ChatMessage[] = [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello there' }, { role: 'user', content: 'Bye' }, { role: 'assistant', content: 'Bye now' }];
  const s = assistantSpans(tok, chatml, msgs);
  const text = (a: number, b: number) => tok.decode(s.ids.slice(a, b), { skipSpecial: false });
  assert.deepEqual(s.spans.map(([a, b]) => text(a, b)), ['Hello there</s>', 'Bye now</s>']);
  const llama = jinjaTemplate("{% for m in messages %}{% if m['role'] == 'user' %}{{ bos_token + '[INST] ' + m['content'].strip() + ' [/INST]' }}{% else %}{{ ' ' + m['content'].strip() + ' ' + eos_token }}{% endif %}{% endfor %}");
  const s2 = assistantSpans(tok, llama, [{ role: 'user', content: 'Q1' }, { role: 'assistant', content: '  A one  ' }, { role: 'user', content: 'Q2' }, { role: 'assistant', content: 'A two' }]);
  assert.deepEqual(s2.spans.map(([a, b]) => tok.decode(s2.ids.slice(a, b), { skipSpecial: false }).trim()), ['A one </s>', 'A two </s>']);
  // the content appears earlier in the turn (inside the header): the occurrence next to </s> is the one trained
  const s3 = assistantSpans(tok, template, [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'ass' }]);
  assert.equal(tok.decode(s3.ids.slice(...s3.spans[0]), { skipSpecial: false }), 'ass</s>');
  assert.throws(() => assistantSpans(tok, template, [{ role: 'user', content: 'x' }, { role: 'assistant', content: '  ' }]), (e: unknown) => e instanceof ExampleError && e.kind === 'empty');
  // a template that refuses a conversation skips that example; one that cannot render prefixes stops the run
  const strict = jinjaTemplate("{% if messages[0]['role'] != 'user' %}{{ raise_exception('must start with user') }}{% endif %}{% for m in messages %}{{ m['content'] + eos_token }}{% endfor %}");
  assert.throws(() => assistantSpans(tok, strict, [{ role: 'assistant', content: 'a' }]), (e: unknown) => e instanceof ExampleError && /must start with user/.test(e.message));
  assert.deepEqual(assistantSpans(tok, strict, [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }]).spans.length, 1);
  const odd = jinjaTemplate("{{ messages | length }}{% for m in messages %}{{ m['content'] + eos_token }}{% endfor %}");
  assert.throws(() => assistantSpans(tok, odd, [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }]), /does not start the whole conversation/);
});

test('DPO message layouts: a message-list prompt with string completions; a string prompt alongside answer-only lists', () => {
  const t = { tok, template, maxLength: 1024, maxPromptLength: 512 };
  const a = tokenizeDpo({ prompt: [{ role: 'user', content: 'Q?' }], chosen: 'Yes.', rejected: 'No.' }, t);
  const b = tokenizeDpo({ prompt: 'Q?', chosen: [{ role: 'assistant', content: 'Yes.' }], rejected: [{ role: 'assistant', content: 'No.' }] }, t);
  const c = tokenizeDpo({ chosen: [{ role: 'user', content: 'Q?' }, { role: 'assistant', content: 'Yes.' }], rejected: [{ role: 'user', content: 'Q?' }, { role: 'assistant', content: 'No.' }] }, t);
  for (const p of [b, c]) { assert.deepEqual(p.prompt, a.prompt); assert.deepEqual(p.chosen, a.chosen); assert.deepEqual(p.rejected, a.rejected); }
  // the prompt ends with the assistant header, exactly the ids the chat feeds the model before it answers
  assert.deepEqual([...a.prompt], encodeChatText(tok, template.render([{ role: 'user', content: 'Q?' }], { addGenerationPrompt: true }), template));
  assert.equal(a.chosen[a.chosen.length - 1], tok.eosId);
  assert.throws(() => tokenizeDpo({ prompt: 'Q', chosen: 'a', rejected: [{ role: 'assistant', content: 'b' }] }, t), /both be strings or both be message lists/);
  assert.throws(() => tokenizeDpo({ chosen: [{ role: 'robot', content: 'a' }], rejected: [{ role: 'assistant', content: 'b' }] }, t), /unknown role "robot"/);
  assert.throws(() => tokenizeSft({ prompt: 'p' }, { tok, template, maxLength: 64, maskPrompt: true }), /no "completion" field/);
  assert.throws(() => tokenizeSft({ foo: 1 }, { tok, template, maxLength: 64, maskPrompt: true }), /no "messages", "prompt"\/"completion" or "text" field/);
});

test('example files: gzip input, blank lines, a held-out fraction that splits lines the same way every time', async () => {
  const zlib = await import('node:zlib');
  const lines = Array.from({ length: 40 }, (_, i) => JSON.stringify({ prompt: `p${i}`, completion: ` c${i}` }));
  const plain = path.join(tmp, 'ex.jsonl'), gz = path.join(tmp, 'ex.jsonl.gz');
  fs.writeFileSync(plain, lines.join('\n\n') + '\n');
  fs.writeFileSync(gz, zlib.gzipSync(Buffer.from(lines.join('\n') + '\n')));
  const t = { tok, template, maxLength: 64, maskPrompt: true };
  const a = await SftSet.load([plain], t), b = await SftSet.load([gz], t);
  assert.equal(a.size, 40); assert.equal(a.digest(), b.digest());
  const train = await SftSet.load([gz], t, { split: { role: 'train', fraction: 0.25 } });
  const valid = await SftSet.load([gz], t, { split: { role: 'valid', fraction: 0.25 } });
  assert.equal(train.size + valid.size, 40);
  assert.ok(valid.size > 0 && train.size > 0);
  assert.equal(train.stats.heldOut, valid.size);
  const again = await SftSet.load([gz], t, { split: { role: 'valid', fraction: 0.25 } });
  assert.equal(again.digest(), valid.digest());
  await assert.rejects(SftSet.load([path.join(tmp, 'missing.jsonl')], t), /does not exist/);
});
