// End-to-end sft and dpo runs on a tiny model: metrics (TRL's rewards/* and logps/* for DPO),
// report, checkpoints, bit-identical resumption, the reference log-probabilities kept in
// checkpoints, dpo.reference, Ctrl-C, and bad input reported one line at a time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OpenELMError } from '../src/core/errors.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { parseRecipe, type Recipe } from '../src/train/recipe.js';
import { train } from '../src/train/trainer.js';
import { metricValue, type MetricLine } from '../src/train/report.js';
import { eventFiles, readEventFile } from '../src/train/tensorboard.js';
import { DPO_METRIC_KEYS } from '../src/train/dpo-loss.js';
import { loadModel } from '../src/api.js';
import { SHOWN_SKIPS } from '../src/train/instruct-task.js';
import { interruptTrain } from './helpers/interrupt-train.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-instruct-run-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const TINY = { num_transformer_layers: 2, model_dim: 32, head_dim: 8, num_gqa_groups: 2, ffn_dim_divisor: 32, max_context_length: 64 };

function jsonl(name: string, lines: unknown[]): string {
  const f = path.join(tmp, name);
  fs.writeFileSync(f, lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n');
  return f;
}

const topics = ['the sea', 'a cat', 'rain', 'bread', 'a clock', 'the moon', 'tea', 'a bridge', 'snow', 'a violin', 'maps', 'bees'];
const SFT_DATA = jsonl('sft.jsonl', topics.flatMap((t, i) => [
  { messages: [{ role: 'user', content: `Tell me about ${t}.` }, { role: 'assistant', content: `${t} is worth a look, friend number ${i}.` }] },
  { prompt: `Describe ${t}:`, completion: ` it is ${t}, plain and simple.` },
]));
const PAIRS = jsonl('pairs.jsonl', topics.map((t, i) => (i % 2
  ? { prompt: `Name ${t}.`, chosen: ` It is ${t}.`, rejected: ' No idea at all, sorry.' }
  : { chosen: [{ role: 'user', content: `Say ${t}.` }, { role: 'assistant', content: `${t}.` }], rejected: [{ role: 'user', content: `Say ${t}.` }, { role: 'assistant', content: 'Something else entirely.' }] })));

let n = 0;
function recipe(task: 'sft' | 'dpo', over: Record<string, unknown> = {}): Recipe {
  const dir = path.join(tmp, `run${n++}`);
  fs.mkdirSync(dir);
  const raw = {
    task, model: { config: TINY }, seed: 5,
    data: { train: [{ path: task === 'sft' ? SFT_DATA : PAIRS }], valid_fraction: 0.2, eval_batches: 2 },
    max_length: 48, ...(task === 'dpo' ? { max_prompt_length: 24, dpo: { beta: 0.5, loss_type: 'sigmoid' } } : {}),
    batch_size: 2, grad_accum: 2, steps: 6, pipeline: { shuffle: true },
    optimizer: { lr: 3e-3 }, schedule: { warmup_steps: 1 },
    out_dir: path.join(dir, 'out'), log_every: 1, eval_every: 3, checkpoint_every: 2,
    ...over,
  };
  for (const k of Object.keys(raw) as (keyof typeof raw)[]) if (raw[k] === undefined) delete raw[k];
  const file = path.join(dir, 'recipe.yaml');
  fs.writeFileSync(file, JSON.stringify(raw));
  return parseRecipe(raw, file);
}

const quiet = { log: () => undefined };
function metrics(r: Recipe): MetricLine[] {
  return fs.readFileSync(path.join(r.outDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as MetricLine);
}
const withoutSpeed = (ms: MetricLine[]) => ms.map(({ tokens_per_s: _t, ...rest }) => rest);
const weights = (dir: string) => fs.readFileSync(path.join(dir, 'model.safetensors'));

async function straightAndResumed(make: () => Recipe, stopAt: number): Promise<[Recipe, Recipe]> {
  const a = make();
  const ra = await train({ recipe: a, ...quiet });
  assert.equal(ra.status, 'done');
  const b = make();
  const first = await train({ recipe: b, stopAfter: stopAt, ...quiet });
  assert.equal(first.status, 'stopped');
  const second = await train({ recipe: b, resume: true, ...quiet });
  assert.equal(second.status, 'done');
  assert.deepEqual(withoutSpeed(metrics(b)), withoutSpeed(metrics(a)));
  assert.ok(weights(path.join(b.outDir, `step-0000000${a.steps}`)).equals(weights(path.join(a.outDir, `step-0000000${a.steps}`))), 'final weights are bit-identical');
  return [a, b];
}

test('sft: metrics, validation, report and checkpoints; stop + resume is bit-identical to a straight run', async () => {
  const [a] = await straightAndResumed(() => recipe('sft'), 3);
  const ms = metrics(a);
  assert.deepEqual(ms.map((m) => m.step), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(ms.filter((m) => m.val_loss !== undefined).map((m) => m.step), [3, 6]);
  assert.ok(ms[0].loss > 9 && ms[0].loss < 11.5, `initial loss ≈ ln(32000): ${ms[0].loss}`);
  assert.ok(ms[5].loss < ms[0].loss);
  for (const m of ms) assert.equal(Object.keys(m).filter((k) => k.startsWith('rewards/')).length, 0);
  assert.match(fs.readFileSync(path.join(a.outDir, 'report.html'), 'utf8'), /finished: 6 steps/);
});

test('sft with epochs: the run length comes from the example count; mask_prompt false trains on more tokens', async () => {
  const logs: string[] = [];
  const r = recipe('sft', { steps: undefined, epochs: 1, eval_every: 0, data: { train: [{ path: SFT_DATA }] } });
  const res = await train({ recipe: r, log: (l) => logs.push(l) });
  // 24 examples / (2 × 2) per step
  assert.equal(res.steps, 6);
  assert.ok(logs.some((l) => l.includes('1 epochs × 24 examples / (2 × 2 per step) = 6 steps')), logs.join('\n'));
  const all = recipe('sft', { steps: undefined, epochs: 1, eval_every: 0, mask_prompt: false, data: { train: [{ path: SFT_DATA }] } });
  await train({ recipe: all, ...quiet });
  assert.ok(metrics(all)[5].tokens > metrics(r)[5].tokens * 1.5, `${metrics(all)[5].tokens} vs ${metrics(r)[5].tokens}`);
});

test('sft with epochs and model.init: eval_every and checkpoint_every hold once the run length is known', async () => {
  const base = recipe('sft', { steps: 1, eval_every: 0 });
  const init = (await train({ recipe: base, ...quiet })).checkpoint!;
  const r = recipe('sft', { model: { init: path.dirname(init) }, steps: undefined, epochs: 1, eval_every: 2, checkpoint_every: 3, data: { train: [{ path: SFT_DATA }], valid_fraction: 0.2 } });
  const res = await train({ recipe: r, ...quiet });
  const evals = metrics(r).filter((m) => m.val_loss !== undefined).map((m) => m.step);
  assert.deepEqual(evals, Array.from({ length: Math.floor(res.steps / 2) }, (_, i) => 2 * (i + 1)).concat(res.steps % 2 ? [res.steps] : []));
  assert.deepEqual(fs.readdirSync(r.outDir).filter((f) => f.startsWith('step-')).sort(),
    [...new Set([3 * Math.floor((res.steps - 1) / 3), res.steps])].map((s) => `step-${String(s).padStart(8, '0')}`));
});

test('eval_tasks with sft and dpo: benchmark scores of the trained weights; the default interval waits for the run length', async () => {
  const sft = recipe('sft', { steps: undefined, epochs: 1, eval_every: 0, checkpoint_every: 4, data: { train: [{ path: SFT_DATA }] }, eval_tasks: { tasks: ['piqa'], limit: 3 } });
  const res = await train({ recipe: sft, ...quiet });
  assert.equal(res.steps, 6);
  // every defaults to checkpoint_every (eval_every is 0), the last step always
  assert.deepEqual(metrics(sft).filter((m) => m.eval).map((m) => m.step), [4, 6]);
  const dpo = recipe('dpo', { eval_tasks: { tasks: ['piqa', 'lambada_openai'], limit: 3, every: 3 } });
  await train({ recipe: dpo, ...quiet });
  const ms = metrics(dpo);
  assert.deepEqual(ms.filter((m) => m.eval).map((m) => m.step), [3, 6]);
  assert.ok(Number.isFinite(ms[2].eval!.piqa.acc) && ms[2].eval!.piqa.n === 3, JSON.stringify(ms[2].eval));
  // the policy's scores move with its weights
  assert.notEqual(ms[2].eval!.lambada_openai.perplexity, ms[5].eval!.lambada_openai.perplexity);
  // TensorBoard carries the task's own numbers beside the benchmark scores
  const ev = readEventFile(eventFiles(dpo.outDir)[0]).filter((e) => e.step === 6 && e.scalars).map((e) => e.scalars!)[0];
  for (const tag of ['train/loss', 'train/rewards/margins', 'train/logps/chosen', 'val/loss', 'val/rewards/accuracies', 'eval/piqa/acc']) assert.ok(tag in ev, `${tag} in ${Object.keys(ev).join(', ')}`);
  assert.equal(ev['train/rewards/margins'], Math.fround(metricValue(ms[5], 'rewards/margins')!));
});

test('sft with chat_template: FILE: checkpoints carry the template, so the chat renders as the model was trained', async () => {
  const chatml = path.join(tmp, 'chatml.jinja');
  fs.writeFileSync(chatml, "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + eos_token + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}");
  const r = recipe('sft', { chat_template: chatml, steps: 2, eval_every: 0 });
  const res = await train({ recipe: r, ...quiet });
  const cfg = JSON.parse(fs.readFileSync(path.join(res.checkpoint!, 'tokenizer_config.json'), 'utf8'));
  assert.equal(cfg.chat_template, fs.readFileSync(chatml, 'utf8'));
  const m = await loadModel(res.checkpoint!, { backend: 'js' });
  try {
    assert.equal(m.chatTemplate.render([{ role: 'user', content: 'hi' }]), '<|im_start|>user\nhi</s>\n<|im_start|>assistant\n');
  } finally { m.dispose(); }
  // the built-in template needs no file: the chat falls back to it
  const plain = recipe('sft', { steps: 1, eval_every: 0 });
  const res2 = await train({ recipe: plain, ...quiet });
  assert.ok(!fs.existsSync(path.join(res2.checkpoint!, 'tokenizer_config.json')));
});

test('dpo: TRL metrics in metrics.jsonl, policy == reference at the first step, reference kept in checkpoints, resume bit-identical', async () => {
  const make = () => recipe('dpo', { pipeline: { shuffle: false } });
  const [a] = await straightAndResumed(make, 3);
  const ms = metrics(a);
  for (const m of ms) for (const k of DPO_METRIC_KEYS) assert.ok(Number.isFinite(m[k]), `${k} at step ${m.step}`);
  for (const k of DPO_METRIC_KEYS) assert.ok(Number.isFinite(ms[2][`val_${k}`]), `val_${k}`);
  // Before the first update the policy is the reference: every reward is 0 and the sigmoid loss is ln 2.
  assert.equal(ms[0]['rewards/chosen'], 0);
  assert.equal(ms[0]['rewards/margins'], 0);
  assert.equal(ms[0]['rewards/accuracies'], 0, 'a tie is not a win (strict >, as TRL)');
  assert.ok(Math.abs(ms[0].loss - Math.LN2) < 1e-12, `${ms[0].loss}`);
  assert.ok(metricValue(ms[5], 'rewards/margins')! > 0, 'the margin grows');
  const ck = SafetensorsFile.open(path.join(a.outDir, 'step-00000006', 'data_state.safetensors'));
  try {
    assert.equal(ck.info('ref_logps_train').dtype, 'F64');
    const ref = ck.readRaw('ref_logps_train');
    assert.ok(ref.byteLength > 0 && ref.byteLength % 16 === 0);
  } finally { ck.close(); }
  assert.match(fs.readFileSync(path.join(a.outDir, 'report.html'), 'utf8'), /<h2>Rewards<\/h2>/);
});

test('sft and dpo with a peft block: PEFT adapter checkpoints, the base untouched, resume with adapter dropout bit-identical', async () => {
  const init = (await train({ recipe: recipe('sft', { steps: 1, eval_every: 0 }), ...quiet })).checkpoint!;
  const baseBytes = weights(init);
  const peft = { type: 'lora', r: 4, alpha: 8, dropout: 0.1 };
  const adapterBytes = (dir: string) => fs.readFileSync(path.join(dir, 'adapter_model.safetensors'));
  for (const task of ['sft', 'dpo'] as const) {
    const make = () => recipe(task, { model: { init }, peft, pipeline: { shuffle: false }, optimizer: { lr: 2e-2 } });
    const a = make();
    assert.equal((await train({ recipe: a, ...quiet })).status, 'done');
    const b = make();
    assert.equal((await train({ recipe: b, stopAfter: 3, ...quiet })).status, 'stopped');
    assert.equal((await train({ recipe: b, resume: true, ...quiet })).status, 'done');
    assert.deepEqual(withoutSpeed(metrics(b)), withoutSpeed(metrics(a)), task);
    const last = (r: Recipe) => path.join(r.outDir, 'step-00000006');
    assert.ok(adapterBytes(last(b)).equals(adapterBytes(last(a))), `${task}: the resumed adapter is bit-identical`);
    assert.ok(fs.existsSync(path.join(last(a), 'adapter_config.json')) && !fs.existsSync(path.join(last(a), 'model.safetensors')), `${task}: checkpoints are adapter folders`);
    assert.ok(weights(init).equals(baseBytes), 'the base is never written');
    const ms = metrics(a);
    assert.ok(Number.isFinite(ms[5].val_loss), `${task}: validation`);
    if (task === 'dpo') {
      // PEFT's LoRA init has B = 0: the adapted policy starts as the reference, dropout or not
      assert.equal(ms[0]['rewards/margins'], 0);
      assert.ok(Math.abs(ms[0].loss - Math.LN2) < 1e-12, `${ms[0].loss}`);
      assert.ok(metricValue(ms[5], 'rewards/margins')! > 0, `dpo: the margin grows (${ms[5]['rewards/margins']})`);
    } else {
      assert.ok(ms[5].loss < ms[0].loss, `sft: the loss falls (${ms[0].loss} → ${ms[5].loss})`);
    }
    // the adapter checkpoint is usable on its base
    const m = await loadModel(init, { backend: 'js', adapter: last(a) });
    m.dispose();
  }
});

test('sft and dpo from peft.init: the examples are rendered with the adapter folder\'s chat template, and the checkpoints keep it', async () => {
  const init = (await train({ recipe: recipe('sft', { steps: 1, eval_every: 0 }), ...quiet })).checkpoint!;
  assert.ok(!fs.existsSync(path.join(init, 'tokenizer_config.json')), 'the base renders with the built-in template');
  const chatml = path.join(tmp, 'chatml-adapter.jinja');
  fs.writeFileSync(chatml, "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + eos_token + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}");
  const peft = { type: 'lora', r: 4, alpha: 8 };
  const adapter = (await train({ recipe: recipe('sft', { model: { init }, peft, chat_template: chatml, steps: 1, eval_every: 0 }), ...quiet })).checkpoint!;
  const template = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')).chat_template as string;
  assert.equal(template(adapter), fs.readFileSync(chatml, 'utf8'));
  // The training data's digest (a hash of its token ids) tells which template rendered it.
  const digest = (ck: string) => (JSON.parse(fs.readFileSync(path.join(ck, 'trainer_state.json'), 'utf8')) as { data: { digest: string } }).data.digest;
  for (const task of ['sft', 'dpo'] as const) {
    const run = async (over: Record<string, unknown>) => (await train({ recipe: recipe(task, { model: { init }, steps: 1, eval_every: 0, ...over }), ...quiet })).checkpoint!;
    const fromAdapter = await run({ peft: { init: adapter } });
    const explicit = await run({ peft: { init: adapter }, chat_template: chatml });
    const fresh = await run({ peft });
    assert.equal(digest(fromAdapter), digest(explicit), `${task}: rendered with the adapter's template`);
    assert.notEqual(digest(fromAdapter), digest(fresh), `${task}: the built-in template gives other tokens`);
    assert.equal(template(fromAdapter), fs.readFileSync(chatml, 'utf8'), `${task}: the checkpoint keeps the template`);
    assert.ok(!fs.existsSync(path.join(fresh, 'tokenizer_config.json')));
  }
});

test('dpo.reference: a folder with the initial weights gives the same run as the default; another model changes the rewards', async () => {
  // an SFT checkpoint as the starting model, and an earlier one as a different reference
  const base = recipe('sft', { eval_every: 0, checkpoint_every: 3 });
  await train({ recipe: base, ...quiet });
  const init = path.join(base.outDir, 'step-00000006'), other = path.join(base.outDir, 'step-00000003');
  const over = (ref?: string) => ({ model: { init }, pipeline: { shuffle: false }, steps: 2, eval_every: 0, ...(ref ? { dpo: { beta: 0.5, reference: ref } } : {}) });
  const def = recipe('dpo', over()), same = recipe('dpo', over(init)), diff = recipe('dpo', over(other));
  const logs: string[] = [];
  for (const r of [def, same]) await train({ recipe: r, ...quiet });
  await train({ recipe: diff, log: (l) => logs.push(l) });
  assert.deepEqual(withoutSpeed(metrics(same)), withoutSpeed(metrics(def)));
  assert.ok(logs.some((l) => l.startsWith('reference: scoring') && l.includes('step-00000003')), logs.join('\n'));
  assert.notEqual(metrics(diff)[0]['rewards/chosen'], 0);
});

test('dpo.reference under precision: bf16 computes as the policy does: a copy of the initial weights gives the default run', async () => {
  const base = recipe('sft', { eval_every: 0, checkpoint_every: 3, steps: 3 });
  await train({ recipe: base, ...quiet });
  const init = path.join(base.outDir, 'step-00000003');
  const over = (ref?: string) => ({ model: { init }, precision: 'bf16', pipeline: { shuffle: false }, steps: 2, eval_every: 0, ...(ref ? { dpo: { beta: 0.5, reference: ref } } : {}) });
  const def = recipe('dpo', over()), same = recipe('dpo', over(init));
  for (const r of [def, same]) await train({ recipe: r, ...quiet });
  // the policy before its first update is the reference, to the bit, only if both ran in bf16
  assert.equal(metrics(same)[0]['rewards/chosen'], 0);
  assert.equal(metrics(same)[0]['rewards/rejected'], 0);
  assert.deepEqual(withoutSpeed(metrics(same)), withoutSpeed(metrics(def)));
});

test('dpo: Ctrl-C while the reference is being scored stops before the first step without a checkpoint; --resume then starts over', async () => {
  const r = recipe('dpo', { steps: 2, eval_every: 0 });
  const ac = new AbortController();
  const logs: string[] = [];
  const res = await train({ recipe: r, signal: ac.signal, log: (l) => { logs.push(l); if (l.startsWith('reference: scoring')) ac.abort(); } });
  assert.equal(res.status, 'interrupted');
  assert.equal(res.step, 0);
  assert.equal(res.checkpoint, null);
  assert.ok(!logs.some((l) => /^reference: \d+ pairs in/.test(l)), 'the scoring stopped');
  const again = await train({ recipe: r, resume: true, ...quiet });
  assert.equal(again.status, 'done');
  assert.equal(again.step, 2);
});

test('bad lines are named as they are met (file:line, the first few), then counted; a data set without usable lines is one error', async () => {
  const bad = jsonl('bad-pairs.jsonl', [
    'not json',
    { prompt: 'p', chosen: 'a' },
    { prompt: 'p', chosen: '', rejected: 'b' },
    { chosen: [{ role: 'wizard', content: 'x' }, { role: 'assistant', content: 'y' }], rejected: [{ role: 'wizard', content: 'x' }, { role: 'assistant', content: 'z' }] },
    { prompt: 'word '.repeat(60), chosen: 'a', rejected: 'b' },
    ...Array.from({ length: 9 }, () => '{"prompt": 3}'),
    { prompt: 'Name a colour.', chosen: ' Red.', rejected: ' Seven.' },
    { prompt: 'Name a fruit.', chosen: ' Pear.', rejected: ' Brick.' },
  ]);
  const logs: string[] = [];
  const r = recipe('dpo', { data: { train: [{ path: bad }] }, steps: 1, eval_every: 0 });
  await train({ recipe: r, log: (l) => logs.push(l) });
  const shown = logs.filter((l) => l.includes('bad-pairs.jsonl:'));
  assert.equal(shown.length, SHOWN_SKIPS, logs.join('\n'));
  assert.match(shown[0], /bad-pairs\.jsonl:1: skipped: invalid JSON/);
  assert.match(shown[1], /:2: skipped: no "rejected" field/);
  assert.match(shown[2], /:3: skipped: empty chosen completion/);
  assert.match(shown[3], /:4: skipped: .*unknown role "wizard"/);
  assert.match(shown[4], /:5: skipped: the prompt has \d+ tokens, more than max_prompt_length 24/);
  assert.ok(logs.includes('data train: further skipped lines are counted, not shown'));
  assert.ok(logs.some((l) => /^data train: 10 lines skipped so far \(\d+ malformed, 1 empty, 1 too long\)$/.test(l)), logs.join('\n'));
  assert.ok(logs.some((l) => l === 'data train: 16 lines, 2 pairs kept, skipped: 12 malformed, 1 empty, 1 too long'), logs.join('\n'));

  // a DPO recipe whose data holds no pairs (SFT chats), and an empty file: one line each, naming the file
  const err = async (rr: Recipe): Promise<OpenELMError> => {
    try { await train({ recipe: rr, ...quiet }); } catch (e) { if (e instanceof OpenELMError) return e; throw e; }
    assert.fail('expected an error');
  };
  const e1 = await err(recipe('dpo', { data: { train: [{ path: SFT_DATA }] }, eval_every: 0 }));
  assert.match(e1.message, /^recipe\.data\.train \(.*sft\.jsonl\) gives no preference pairs: 24 lines read, none usable \(first: .*sft\.jsonl:1: no "chosen" field\); task dpo needs JSONL lines of preference pairs/);
  assert.ok(!e1.message.includes('\n'));
  const e2 = await err(recipe('sft', { data: { train: [{ path: jsonl('empty.jsonl', ['']) }] }, eval_every: 0 }));
  assert.match(e2.message, /^recipe\.data\.train \(.*empty\.jsonl\) holds no lines; task sft needs JSONL lines of/);
  const e3 = await err(recipe('sft', { max_length: 200 }));
  assert.match(e3.message, /recipe\.max_length \(200\) needs 199 positions; the model's max_context_length is 64/);
});

test('sft: SIGINT finishes the step, writes a checkpoint, and --resume completes the run', async () => {
  const r = recipe('sft', { steps: 100000, eval_every: 0, checkpoint_every: 100000 });
  const { stderr, step, checkpoint } = await interruptTrain(r.file, 2);
  const state = JSON.parse(fs.readFileSync(path.join(checkpoint, 'trainer_state.json'), 'utf8'));
  assert.equal(state.step, step);
  assert.equal(typeof state.data.digest, 'string');
  assert.match(stderr, /--resume/);
});
