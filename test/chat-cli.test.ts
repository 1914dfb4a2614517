import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { loadModel } from '../src/api.js';
import { tinyModelDir } from './helpers/tiny.js';
import { adaptedModules } from '../src/adapters/targets.js';
import { Rng } from '../src/core/rng.js';
import { readModelConfig } from '../src/io/model-folder.js';
import { writePeftAdapter } from '../src/io/peft-folder.js';
import { CLI } from './helpers/cli.js';
import { runCliAsync, spawnCli } from './helpers/cli-async.js';

const raw = tinyModelDir({ vocab_size: 32000, model_dim: 64, head_dim: 16, num_transformer_layers: 2, max_context_length: 2048, rope_max_length: 2048 }, 41);
const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'openelm-chatcli-')), 'OpenELM-tiny-Instruct');
fs.renameSync(raw, dir);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(get: () => string, re: RegExp, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!re.test(get())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${re} in ${JSON.stringify(get().slice(-500))}`);
    await sleep(10);
  }
}

test('chat REPL over a pipe: one answer per line, same as a ChatSession; /system, /reset, /exit', async () => {
  const input = 'Hello\n/system Be nice\nHi again\n/reset\nThird\n/bogus\n/exit\nnever answered\n';
  const r = await runCliAsync(['chat', '--model', dir, '--backend', 'js', '--max-tokens', '6', '--stats'], { input });
  assert.equal(r.status, 0, r.stderr);
  const m = await loadModel(dir, { backend: 'js' });
  try {
    const s = m.chat({ defaults: { maxTokens: 6 } });
    const a1 = (await s.send('Hello')).text;
    s.setSystem('Be nice');
    const a2 = (await s.send('Hi again')).text;
    s.reset();
    const a3 = await s.send('Third');
    assert.equal(r.stdout, `${a1}\n${a2}\n${a3.text}\n`);
    assert.ok(a3.cachedTokens > 0);
  } finally {
    m.dispose();
  }
  assert.match(r.stderr, /\[system prompt set\]/);
  assert.match(r.stderr, /\[conversation cleared\]/);
  assert.match(r.stderr, /unknown command \/bogus/);
  // --stats: the second turn reuses the cache.
  const stats = [...r.stderr.matchAll(/\[(\d+) prompt tokens prefilled, (\d+) from cache/g)].map((x) => Number(x[2]));
  assert.equal(stats.length, 3);
  assert.equal(stats[0], 0);
  assert.ok(stats[2] > 0);
});

test('chat REPL: Ctrl-C (SIGINT) stops the current answer, not the program; history stays within the context', async () => {
  const child = spawnCli(['chat', '--model', dir, '--backend', 'js', '--max-tokens', '1500', '--ignore-eos', '--ctx-size', '1600']);
  let out = '', err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  child.stdin.write('Tell me everything\n');
  await until(() => out, /.{10,}/s);
  child.kill('SIGINT');
  await until(() => err, /\[stopped\]/);
  const firstLen = out.length;
  child.stdin.write('Short one\n');
  await until(() => out.slice(firstLen), /.{10,}/s);
  child.kill('SIGINT');
  await until(() => err, /\[stopped\][\s\S]*\[stopped\]/);
  child.stdin.end();
  const code = await new Promise<number | null>((r) => child.on('close', r));
  assert.equal(code, 0, err);
  // A small context: old turns are dropped with a note, and the chat goes on.
  const r = await runCliAsync(['chat', '--model', dir, '--backend', 'js', '--max-tokens', '8', '--ctx-size', '60'],
    { input: 'first message here\nsecond message here\nthird message here\nfourth message here\n' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /\[dropped the 2 oldest messages to fit the context\]/);
  assert.equal(r.stdout.split('\n').length >= 5, true);
});

test('chat --adapter DIR renders with the chat template the adapter folder carries; --chat-template FILE still wins', async () => {
  const c = readModelConfig(dir), rng = new Rng(5), r = 2;
  const modules = adaptedModules(c, ['qkv_proj']).map((module) => ({
    module, A: Float32Array.from({ length: r * module.inFeatures }, () => 0.1 * rng.normal()), B: Float32Array.from({ length: module.outFeatures * r }, () => 0.1 * rng.normal()),
  }));
  const adapter = path.join(path.dirname(dir), 'adapter');
  writePeftAdapter(adapter, { settings: { type: 'lora', r, alpha: 4, dropout: 0, targets: ['qkv_proj'], rslora: false }, modules });
  // a template whose long preamble makes its prompts far longer than CoreNet's format makes them
  const preamble = 'You are a careful assistant who answers briefly. '.repeat(8);
  const tpl = `{{ bos_token }}${preamble}{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}`;
  fs.writeFileSync(path.join(adapter, 'tokenizer_config.json'), JSON.stringify({ chat_template: tpl, bos_token: '<s>', eos_token: '</s>' }));
  const prefilled = (stderr: string): number => Number(/\[(\d+) prompt tokens prefilled/.exec(stderr)?.[1]);

  const withAdapter = await runCliAsync(['chat', '--model', dir, '--adapter', adapter, '--backend', 'js', '--max-tokens', '2', '--stats'], { input: 'Hello\n' });
  assert.equal(withAdapter.status, 0, withAdapter.stderr);
  const m = await loadModel(dir, { backend: 'js', adapter });
  try {
    assert.equal(m.chatTemplate.source, path.join(adapter, 'tokenizer_config.json'));
    const want = await m.chat({ defaults: { maxTokens: 2 } }).send('Hello');
    assert.equal(prefilled(withAdapter.stderr), want.prefilledTokens);
    assert.equal(withAdapter.stdout, `${want.text}\n`);
    assert.ok(want.prefilledTokens > 60, `the adapter's preamble is in the prompt (${want.prefilledTokens} tokens)`);
  } finally {
    m.dispose();
  }
  const file = path.join(path.dirname(dir), 'short.jinja');
  fs.writeFileSync(file, '{% for m in messages %}{{ m.content }}{% endfor %}');
  const overridden = await runCliAsync(['chat', '--model', dir, '--adapter', adapter, '--chat-template', file, '--backend', 'js', '--max-tokens', '2', '--stats'], { input: 'Hello\n' });
  assert.equal(overridden.status, 0, overridden.stderr);
  assert.ok(prefilled(overridden.stderr) < 5, overridden.stderr);
});

const hasScript = spawnSync('script', ['--version']).status === 0;

test('chat REPL in a pseudo-terminal (util-linux script): prompt, Ctrl-C stops the answer, /exit', { skip: !hasScript && 'no `script` command' }, async () => {
  const cmd = `'${process.execPath}' '${CLI}' chat --model '${dir}' --backend js --max-tokens 1500 --ignore-eos`;
  const child = spawn('script', ['-qfec', cmd, '/dev/null'], { stdio: 'pipe' });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  await until(() => out, /> \S*$/);
  child.stdin.write('Hello\r');
  await until(() => out, /Hello\r?\r\n.{20,}/s);
  child.stdin.write('\x03');
  await until(() => out, /\[stopped\]/);
  child.stdin.write('\x03');
  await until(() => out, /press Ctrl-C again or type \/exit to quit/);
  child.stdin.write('/exit\r');
  const code = await new Promise<number | null>((r) => child.on('close', r));
  assert.equal(code, 0, out);
});
